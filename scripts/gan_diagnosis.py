"""Why is notebook 03's patch-GAN idle?  A small, controlled experiment (issue 13, defect 2).

One autoencoder (the cpu preset's f = 4 network) is first trained with L1 + perceptual for ``--pretrain`` steps on
``--n`` MNIST digits; each discriminator recipe then continues from that same checkpoint for ``--gan-steps`` steps
with the GAN on. Per recipe it prints, over the GAN phase: the discriminator's mean logit on real digits D(x) and on
reconstructions D(x̃) (their gap is what the discriminator can tell apart), its hinge loss (1.0 = cannot tell), the
adaptive weight λ, and the reconstruction loss; and at the end the discriminator's accuracy on held-out digits and
their reconstructions (a patch is called real when its logit > 0; chance = 50%) and the reconstructions' PSNR.

    python scripts/gan_diagnosis.py                            # all recipes, ~20 min on 2 cores
    python scripts/gan_diagnosis.py --recipes preset "λ ≤ 1"   # some of them
"""
from __future__ import annotations

import argparse
import warnings
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import torch

from minildm import evaluate, presets
from minildm.autoencoder import AutoencoderKL
from minildm.classifier import load_classifier
from minildm.data import mnist
from minildm.losses import PatchDiscriminator
from minildm.train import train_autoencoder


def recipes(base_loss, base_train):
    """name → (loss config, train config): one change at a time from the preset's (λ adaptive, clamped at 1e4)."""
    r = lambda **kw: dataclasses.replace(base_loss, **kw)  # noqa: E731
    slow = dataclasses.replace(base_train, lr=base_train.lr / 10)
    return {
        "no GAN (same steps)": (r(disc_weight=0.0), base_train),  # D_ψ trains and is measured, 𝒟 ignores it
        "preset": (base_loss, base_train),
        "λ = 1 (not adaptive)": (r(adaptive=False), base_train),
        "D lr ×4": (r(disc_lr_scale=4.0), base_train),
        "λ ≤ 1": (r(max_weight=1.0), base_train),
        "λ ≤ 0.1": (r(max_weight=0.1), base_train),
        # the decoder settles when the GAN starts: its lr ÷ 10, the discriminator's kept (the no-GAN run beside it)
        "𝒟 lr ÷ 10, no GAN": (r(disc_weight=0.0, disc_lr_scale=10.0), slow),
        "𝒟 lr ÷ 10": (r(disc_lr_scale=10.0), slow),
    }


def d_accuracy(disc, x, x_rec) -> float:
    with torch.no_grad():
        real, fake = disc(x), disc(x_rec)
    return 0.5 * ((real > 0).float().mean().item() + (fake < 0).float().mean().item())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=4000, help="training digits (default 4000)")
    p.add_argument("--pretrain", type=int, default=200, help="L1 + perceptual steps before the GAN (default 200)")
    p.add_argument("--gan-steps", type=int, default=150, help="steps with the GAN on (default 150)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--recipes", nargs="+", default=None)
    p.add_argument("--pretrained", default=None, help="reuse this pre-trained checkpoint (from an earlier run)")
    args = p.parse_args()
    warnings.filterwarnings("ignore", message="resuming")  # each recipe resumes the pre-trained checkpoint

    x, _ = mnist("train", n=args.n)
    x_val, _ = mnist("test", n=1000)
    x_other = mnist("test")[0][5000:6000]  # other real digits: what reconstructions' FD is measured against
    judge = evaluate.Evaluator()  # the judge: not the perceptual-loss classifier
    floor = judge.fid(x_val, x_other)
    clf = load_classifier()
    preset = presets.autoencoder_mnist("cpu", f=4)
    total = args.pretrain + args.gan_steps
    train = dataclasses.replace(preset.train, steps=total, batch_size=args.batch, warmup=20, log_every=10**9,
                                ckpt_every=args.pretrain)
    loss = dataclasses.replace(preset.loss, disc_start=args.pretrain)
    work = Path(tempfile.mkdtemp(prefix="gan_diagnosis_"))
    pre = work / "pretrained.pt"
    torch.manual_seed(0)
    t0 = time.perf_counter()
    if args.pretrained:
        shutil.copy(args.pretrained, pre)
    train_autoencoder(AutoencoderKL(preset.ae), x, dataclasses.replace(loss, disc_start=10**9),
                      dataclasses.replace(train, steps=args.pretrain), feature_net=clf, ckpt_path=pre, progress=False)
    print(f"pre-trained {args.pretrain} steps (L1 + perceptual) in {time.perf_counter() - t0:.0f} s")

    rows = []
    for name, spec in recipes(loss, train).items():
        if args.recipes and name not in args.recipes:
            continue
        loss_r, train_r = spec
        ckpt = work / f"{name}.pt"
        shutil.copy(pre, ckpt)
        torch.manual_seed(1)
        disc = PatchDiscriminator(1, preset.disc_base, preset.disc_layers)
        t0 = time.perf_counter()
        res = train_autoencoder(AutoencoderKL(preset.ae), x, loss_r, train_r, feature_net=clf, disc=disc,
                                ckpt_path=ckpt, progress=False)
        h = [row for row in res.history if row[0] > args.pretrain]
        quarter = max(1, len(h) // 4)
        for part, rs in (("first ¼", h[:quarter]), ("last ¼", h[-quarter:])):
            m = lambda i: sum(r[i] for r in rs) / len(rs)  # noqa: E731
            print(f"{name:>16} {part:>8}: D(x) {m(6):+.3f}  D(x̃) {m(7):+.3f}  hinge {m(4):.3f}  λ {m(5):9.3g}  "
                  f"rec {m(1):.4f}")
        res.model.eval()
        disc.eval()
        with torch.no_grad():
            x_rec = res.model(x_val, sample_posterior=False)[0].clamp(-1, 1)
        rows.append((name, d_accuracy(disc, x_val, x_rec), evaluate.psnr(x_rec, x_val), judge.fid(x_rec, x_other),
                     time.perf_counter() - t0))
    print(f"\nFD floor (judge, {len(x_val)} real vs {len(x_other)} other real test digits): {floor:.2f}")
    print("| recipe | D accuracy, held-out real vs reconstructed patches | PSNR dB | FD of reconstructions (judge) | s |"
          "\n|---|---:|---:|---:|---:|")
    for name, acc, psnr, fd, s in rows:
        print(f"| {name} | {acc:.1%} | {psnr:.2f} | {fd:.2f} ({fd / floor:.2f}× floor) | {s:.0f} |")


if __name__ == "__main__":
    main()
