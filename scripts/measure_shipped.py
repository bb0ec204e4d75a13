"""Every shipped MNIST model's fidelity *and* diversity, judged by the judge, with spreads (issue 13, items 6–8).

For each model: n samples (50 ancestral steps, as ``demo`` draws them), judged by ``minildm/weights/mnist_judge.pt``
(a network no training loss touched; :mod:`minildm.classifier`). Printed per model, each with its 95% interval
(:mod:`minildm.uncertainty`): FD to n real test digits (bootstrap over samples), the real-vs-real floor at n
(over disjoint real pairs), their ratio, the judge's confidence, each digit's share of the samples (diversity:
10% each for MNIST), and for conditional models the share read as the digit asked for and the diversity *within*
each class (:meth:`Evaluator.within_class`: 1 = as varied as real digits of that class). Conditional models are
measured at several guidance scales on seed 0; :func:`minildm.evaluate.pick_guidance` chooses the default on
fidelity and diversity both (the most varied scale with ≥ 99% named digit), and the chosen scale and the stored
default are re-measured on seed 1 (``--report-seed``): a choice is made on one set of samples and reported on
another.

    python scripts/measure_shipped.py                 # all three, n = 2000 (~10 min on 2 cores)
    python scripts/measure_shipped.py --models latent_mnist --n 500
    python scripts/measure_shipped.py --models pixel_mnist --n 1000  # notebook 02's pixel DDPM
    python scripts/measure_shipped.py --dir runs/cpu  # the checkpoints of `train`, before they are exported
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from minildm.captions import DIGITS
from minildm.evaluate import Evaluator, pick_guidance
from minildm.release import load_diffusion
from minildm.shipped import shipped

PROMPTS = [("an " if d == "eight" else "a ") + d for d in DIGITS]  # "a zero" … "an eight", "a nine"


def conditions(model, name: str, n: int):
    """(y, labels): n conditions, digit k for samples k·n/10 … (as many of each digit)."""
    labels = torch.arange(10).repeat_interleave(n // 10)
    if name == "latent_mnist_class":
        return labels, labels
    return model.tokenizer.encode_batch([PROMPTS[k] for k in labels.tolist()], strict=True), labels


def unconditional(model) -> bool:
    """latent_mnist, pixel_mnist: no class and no words to condition on."""
    return model.num_classes is None and model.tokenizer is None


def row(ev: Evaluator, model, name: str, n: int, guidance: float, seed: int) -> dict:
    y, labels = (None, None) if unconditional(model) else conditions(model, name, n)
    t0 = time.perf_counter()
    images = model.sample(n, sampler="ddpm", steps=50, seed=seed, y=y, guidance=guidance)
    r = ev.report_spread(images, labels=labels, seed=seed)
    if labels is not None:
        r["within"] = ev.within_class(images, labels, seed=seed)
    r["seconds"] = time.perf_counter() - t0
    return r


def show(name: str, guidance, seed: int, r: dict) -> None:
    shares = r["digit_shares"]
    lo, hi = min(s.value for s in shares), max(s.value for s in shares)
    acc = f"{r['accuracy'].value:.1%} [{r['accuracy'].low:.1%}, {r['accuracy'].high:.1%}]" if "accuracy" in r else "—"
    print(f"| {name} | {guidance if guidance is not None else '—'} | {seed} | {r['n']} | {r['fd']} | {r['floor']} | "
          f"**{r['fd_ratio']}** | {acc} | {r['within'] if 'within' in r else '—'} | {lo:.1%}–{hi:.1%} | "
          f"{r['confidence']} | {r['seconds']:.0f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["latent_mnist", "latent_mnist_class", "latent_mnist_text"])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-seed", type=int, default=1)
    p.add_argument("--dir", type=Path, default=None,
                   help="load MODEL.pt from this folder (e.g. runs/cpu) instead of the shipped weights")
    p.add_argument("--min-accuracy", type=float, default=0.99, help="pick_guidance's accuracy bar")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    ev = Evaluator()
    print(f"judge: minildm/weights/mnist_judge.pt; n = {args.n}, 50 ancestral steps; 95% intervals\n")
    print("| model | guidance | seed | n | FD | floor | FD / floor | named digit | within class | "
          "digit shares (min–max) | confidence | s |\n|---|---:|---:|---:|---|---|---|---|---|---|---|---:|")
    for name in args.models:
        model = load_diffusion(args.dir / f"{name}.pt" if args.dir else shipped(name))
        if unconditional(model):
            for seed in (args.seed, args.report_seed):
                show(name, None, seed, row(ev, model, name, args.n, 1.0, seed))
            continue
        sweep = {}
        for s in args.guidance:
            sweep[s] = row(ev, model, name, args.n, s, args.seed)
            show(name, s, args.seed, sweep[s])
        chosen, default = pick_guidance(sweep, args.min_accuracy), model.guidance
        show(name + f" (chosen on seed {args.seed}: s = {chosen:g})", chosen, args.report_seed,
             row(ev, model, name, args.n, chosen, args.report_seed))
        if default is not None and default != chosen:
            show(name + f" (stored default s = {default:g})", default, args.report_seed,
                 row(ev, model, name, args.n, default, args.report_seed))


if __name__ == "__main__":
    main()
