"""Quality per network evaluation: every sampler of ``minildm.samplers.SAMPLERS`` on a shipped model (issue 15).

For each sampler, spacing and budget of network evaluations (NFE), n samples from the *same* starting noises
(``seed``) are judged by the course's judge (``minildm/weights/mnist_judge.pt``, a network no training loss
touched): FD to n real test digits with its bootstrap interval, and FD ÷ DDPM-1000's FD with a *paired* bootstrap
(the two sample sets share their x_T, so each resample takes the same rows of both; one real set for all). The
reference is DDPM's ancestral sampler on all 1000 steps. Heun spends two evaluations a step but one on the last:
``steps`` = (NFE + 1) / 2 gives NFE = 2·steps − 1; every other sampler spends one a step.

    python scripts/sampler_study.py                                   # latent_mnist, n = 2000 (~1 h on one thread)
    python scripts/sampler_study.py --n 500 --nfe 10 25 --samplers ddim heun --json /tmp/s.json
    OMP_NUM_THREADS=1 python scripts/sampler_study.py --json benchmarks/sampler_study.json

Prints a markdown table (one row per sampler × spacing × NFE) for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from minildm.evaluate import Evaluator, FrechetReference, feature_stats
from minildm.release import load_diffusion
from minildm.samplers import SAMPLERS
from minildm.shipped import shipped
from minildm.spacing import SPACINGS
from minildm.uncertainty import bootstrap


def nfe_of(sampler: str, steps: int) -> int:
    """Network evaluations of ``steps`` steps (Heun: two a step but one on the last, 2·steps − 1)."""
    return 2 * steps - 1 if sampler == "heun" else steps


def steps_for(sampler: str, nfe: int) -> int:
    """The ``steps`` that spend ``nfe`` network evaluations (the inverse of :func:`nfe_of`, rounding up for Heun)."""
    return (nfe + 1) // 2 if sampler == "heun" else nfe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="latent_mnist", help="a shipped unconditional MNIST model, or a checkpoint")
    p.add_argument("--n", type=int, default=2000, help="samples per row (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="the x_T (and per-step noise) seed, shared by every row")
    p.add_argument("--nfe", type=int, nargs="+", default=[10, 15, 25, 50, 100], help="network evaluations per sample")
    p.add_argument("--samplers", nargs="+", default=["ddim", "heun", "dpmpp_2m", "euler_ancestral", "ddpm"],
                   choices=sorted(SAMPLERS))
    p.add_argument("--spacings", nargs="+", default=["leading", "trailing"], choices=SPACINGS)
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--json", default=None, help="write every row (values, intervals, seconds) here")
    args = p.parse_args()

    path = shipped(args.model) if not args.model.endswith(".pt") else args.model
    model = load_diffusion(path)
    if model.is_conditional:
        raise SystemExit(f"{args.model} is conditional; this study measures unconditional models (latent_mnist)")
    ev = Evaluator()
    real = FrechetReference(*feature_stats(ev.embed(ev.real_sets(args.n, args.seed)[0])))  # one real set for all
    floor = ev.real_floor_spread(args.n, seed=args.seed)

    def fd(f):
        return real.distance(*feature_stats(f))

    t0 = time.perf_counter()
    ref_images = model.sample(args.n, sampler="ddpm", steps=model.sched.T, seed=args.seed)
    ref_seconds = time.perf_counter() - t0
    ref_feats = ev.embed(ref_images).double().numpy()
    ref_fd = bootstrap(fd, ref_feats, n_boot=args.n_boot, seed=args.seed, recentre=True)
    print(f"{args.model}, n = {args.n}, seed {args.seed}: real-vs-real floor {floor}; DDPM-{model.sched.T} FD "
          f"{ref_fd} ({ref_seconds:.0f} s)", flush=True)
    print("| sampler | spacing | steps | NFE | FD | ÷ DDPM-1000 (paired) | FD / floor | s |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    rows = [dict(sampler="ddpm", spacing="leading", steps=model.sched.T, nfe=model.sched.T, fd=ref_fd.value,
                 fd_low=ref_fd.low, fd_high=ref_fd.high, ratio=1.0, ratio_low=1.0, ratio_high=1.0,
                 fd_floor=ref_fd.value / floor.value, seconds=ref_seconds)]
    for sampler in args.samplers:
        for spacing in args.spacings:
            for nfe in args.nfe:
                steps = steps_for(sampler, nfe)
                t0 = time.perf_counter()
                x = model.sample(args.n, sampler=sampler, steps=steps, spacing=spacing, seed=args.seed)
                seconds = time.perf_counter() - t0
                feats = ev.embed(x).double().numpy()
                est = bootstrap(fd, feats, n_boot=args.n_boot, seed=args.seed, recentre=True)
                # paired: row i of both sets started from the same x_T
                rat = bootstrap(lambda a, b: fd(a) / fd(b), feats, ref_feats, n_boot=args.n_boot, seed=args.seed,
                                recentre=True)
                nfe_used = nfe_of(sampler, steps)
                print(f"| {sampler} | {spacing} | {steps} | {nfe_used} | {est} | **{rat}** | "
                      f"{est.value / floor.value:.2f} | {seconds:.0f} |", flush=True)
                rows.append(dict(sampler=sampler, spacing=spacing, steps=steps, nfe=nfe_used, fd=est.value,
                                 fd_low=est.low, fd_high=est.high, ratio=rat.value, ratio_low=rat.low,
                                 ratio_high=rat.high, fd_floor=est.value / floor.value, seconds=seconds))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(model=args.model, n=args.n, seed=args.seed, floor=floor.value, floor_low=floor.low,
                           floor_high=floor.high, rows=rows), f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
