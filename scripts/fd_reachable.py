"""How near the real floor can an unconditional MNIST model get? Two references that no diffusion model can beat.

The unconditional target (docs/DESIGN.md: FD ≤ 1.8× the floor at n = 2000) compares n samples with n real *test*
digits (``Evaluator.fid_to_real``) and divides by the FD of two disjoint real sets (``real_floor_spread``). A model
can at best draw what it was trained on, so two "perfect models" bound what is reachable (issue 13):

* **training digits themselves**: n real training digits, each set disjoint, in place of the samples;
* **their reconstructions** D(E(x)) by the shipped latent_mnist's first stage, the ceiling of any latent model that
  decodes through it (posterior mean, as ``recipes.latents`` encodes).

Each row: FD to the same test set as the models' rows (bootstrap over the n stand-ins, recentred), over the floor,
for ``--sets`` disjoint sets of training digits; beside them, the shipped models for comparison (optional), each
with every ``--samplers`` setting (``SAMPLER:STEPS[:ETA]``, from the same x_T): is the gap the sampler's?

    python scripts/fd_reachable.py --n 2000 --sets 3
    python scripts/fd_reachable.py --n 2000 --sets 3 --models latent_mnist \
        --samplers ddpm:50 ddim:50:0.5 ddim:50:0.75 ddpm:25 ddpm:100 ddpm:250
"""
from __future__ import annotations

import argparse

import torch

from minildm.data import mnist
from minildm.evaluate import Evaluator
from minildm.release import load_diffusion
from minildm.semantic import reconstruct
from minildm.shipped import resolve, shipped
from minildm.uncertainty import ratio


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--sets", type=int, default=3, help="disjoint sets of n training digits")
    p.add_argument("--seed", type=int, default=1, help="the test set's seed (1: the models' report seed)")
    p.add_argument("--models", nargs="*", default=[], help="also these models (x_T seed --seed)")
    p.add_argument("--samplers", nargs="+", default=["ddpm:50"],
                   help="SAMPLER:STEPS[:ETA] for each model (default ddpm:50, what demo draws)")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    ev = Evaluator()
    floor = ev.real_floor_spread(args.n, seed=args.seed)
    ae = load_diffusion(shipped("latent_mnist")).first_stage.eval()
    x_train = mnist("train")[0]
    perm = torch.randperm(x_train.shape[0], generator=torch.Generator().manual_seed(100 + args.seed))
    print(f"n = {args.n}; FD to {args.n} real test digits (seed {args.seed}), bootstrap over the stand-ins; "
          f"real-vs-real floor {floor}")
    print("| stand-in for the samples | set | FD | FD / floor |\n|---|---:|---|---|")

    def show(what: str, k, images) -> None:
        fd = ev.fd_spread(images, seed=args.seed)
        print(f"| {what} | {k} | {fd} | {ratio(fd, floor)} |", flush=True)

    for k in range(args.sets):
        x = x_train[perm[k * args.n:(k + 1) * args.n]]
        show("training digits", k, x)
        show("their reconstructions D(E(x))", k, reconstruct(ae, x, batch_size=500))
    for name in args.models:
        model = load_diffusion(resolve(name))
        for spec in args.samplers:
            sampler, steps, *eta = spec.split(":")
            kw = dict(eta=float(eta[0])) if eta else {}
            show(f"{name}, {sampler} {steps} steps" + (f", η = {eta[0]}" if eta else ""), "—",
                 model.sample(args.n, sampler=sampler, steps=int(steps), seed=args.seed, **kw))


if __name__ == "__main__":
    main()
