"""Where an inpainting model's wrong fills come from (issue 16): illegible, ambiguous, or against the known half?

The right half of n test digits masked (as ``scripts/measure_restoration.py``), filled by MODEL at ``--guidance``,
pasted, read by the judge. For each fill the judge reads wrong: whether it is illegible (the judge's top
probability < 0.5), and what a calibrated classifier of the left half alone (``scripts/restoration_ceilings.py``'s,
cached in runs/<mode>/ceiling_left_half.pt) says of the true digit and of the digit read in the fill. A fill that
is a confident digit the left half rules out (q(read | left) small) is the model ignoring its condition, not the
input being ambiguous. Also: the same classifier on 𝒟(ℰ(x ⊙ (1 − m))) re-masked (is the half still in the
condition's latent?) and the judge on unpasted fills (is pasting the cause?).

    PYTHONPATH=. python scripts/inpaint_errors.py --model latent_mnist_inpaint --n 1000 --seed 0 --guidance 2
"""
from __future__ import annotations

import argparse
import collections

import torch

from restoration_ceilings import calibrated_classifier, degrade_half
from minildm.evaluate import Evaluator, real_test_sets
from minildm.pairs import half_mask, masked_image, paste_known
from minildm.release import load_diffusion
from minildm.restoration import inpaint
from minildm.semantic import reconstruct


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="latent_mnist_inpaint")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", type=float, default=None, help="default: the model's recommended scale")
    args = p.parse_args()
    clf, temperature = calibrated_classifier("left_half", degrade_half)
    torch.set_grad_enabled(False)
    x, labels, _ = real_test_sets(args.n, args.seed)
    m = half_mask(args.n, 32, "right")
    model = load_diffusion(args.model)
    s = model.guidance if args.guidance is None else args.guidance
    raw = torch.cat([inpaint(model, (x[i:i + 250] + 1) / 2, m[i:i + 250], seed=0, steps=50, sampler="ddpm",
                             guidance=s, paste=False) * 2 - 1 for i in range(0, args.n, 250)])
    fill = paste_known(raw, x, m)
    judge = Evaluator()
    pj = judge.logits(fill).softmax(-1)
    read = pj.argmax(-1)
    wrong = read != labels
    q = (clf.logits(degrade_half(x)) / temperature).softmax(-1)
    q_read, q_true = q.gather(1, read[:, None])[:, 0], q.gather(1, labels[:, None])[:, 0]
    print(f"{args.model}, s = {s:g}, n = {args.n} (seed {args.seed}): judge accuracy pasted "
          f"{(~wrong).float().mean():.1%}, unpasted {(judge.logits(raw).argmax(-1) == labels).float().mean():.1%}")
    print(f"{int(wrong.sum())} wrong fills: illegible (judge top probability < 0.5) "
          f"{(pj.max(-1).values[wrong] < 0.5).float().mean():.0%}; the left-half classifier's q(true | left) median "
          f"{q_true[wrong].median():.2f}, q(read | left) median {q_read[wrong].median():.2f}, "
          f"q(read | left) < 0.05 for {(q_read[wrong] < 0.05).float().mean():.0%}")
    print("commonest (true → read):", collections.Counter(
        (int(a), int(b)) for a, b in zip(labels[wrong], read[wrong])).most_common(8))
    xm = masked_image(x, m)
    dec = reconstruct(model.first_stage, xm)
    acc = lambda z: (clf.logits(z).argmax(-1) == labels).float().mean().item()  # noqa: E731
    print(f"the left half in the condition's latent: the classifier reads x ⊙ (1 − m) {acc(xm):.1%}, "
          f"𝒟(ℰ(x ⊙ (1 − m))) re-masked {acc(masked_image(dec, m)):.1%}")


if __name__ == "__main__":
    main()
