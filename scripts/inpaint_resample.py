"""Does resampling fix the inpainting model's wrong fills?  RePaint's "jumps" (Lugmayr et al. 2022, §4.2) on the
concatenation-conditioned model of notebook 08.

The wrong fills of ``latent_mnist_inpaint`` are confident digits that the known left half rules out
(``scripts/inpaint_errors.py``). RePaint's remedy for fills that do not agree with the known region is to let the
sampler go back and forth: after each step z_t → z_{t'} (ancestral, 50 respaced steps), draw z_t again from
q(z_t | z_{t'}) = N(√(ᾱ_t/ᾱ_{t'}) z_{t'}, (1 − ᾱ_t/ᾱ_{t'}) I) and redo the step, ``U`` times in all (U = 1: the
plain sampler; U network evaluations per step, ×2 with guidance). If the model's ε̂ *knows* the half but one pass
is too short to harmonise the two, the accuracy rises with U; if it stays, the error is in ε̂ itself.

    PYTHONPATH=. python scripts/inpaint_resample.py --n 500 --seed 0 --jumps 1 3 10

Right half masked (:func:`minildm.pairs.half_mask`), the known half pasted back, read by the judge; 95% bootstrap
intervals over the digits (:func:`minildm.evaluate.real_test_sets`, the digits ``measure_restoration.py`` uses).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from minildm.evaluate import Evaluator, real_test_sets
from minildm.pairs import half_mask, inpaint_condition, paste_known
from minildm.release import load_diffusion
from minildm.samplers import ddim_step
from minildm.spacing import _call_model_x0, _noise_like, timestep_list
from minildm.uncertainty import bootstrap_mean

BATCH = 250


@torch.no_grad()
def resample_sample(model, c: torch.Tensor, jumps: int, guidance: float, steps: int, g: torch.Generator):
    """Latents z_0 for conditions c: ancestral sampling on ``steps`` respaced steps, each step taken ``jumps`` times
    with a trip back to its t in between. Returns z_0 (B, 4, 8, 8)."""
    eps_model, mk = model.denoiser(c, guidance)
    ab = model.sched.alpha_bar
    z = torch.randn((len(c), *model.sample_shape), generator=g)
    ts = timestep_list(model.sched.T, None, steps, "leading")
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        for u in range(jumps if t_prev >= 0 else 1):
            tb, eps, x0 = _call_model_x0(eps_model, z, t, mk, ab)
            t_prev_b = torch.full((len(z),), t_prev, dtype=torch.long)
            noise = _noise_like(z, g) if t_prev >= 0 else None
            z_prev, _ = ddim_step(z, tb, t_prev_b, eps, ab, eta=1.0, noise=noise, x0_pred=x0)
            if u < jumps - 1 and t_prev >= 0:  # back to t: q(z_t | z_{t'})
                a = (ab[t] / ab[t_prev]).float()
                z = a.sqrt() * z_prev + (1 - a).sqrt() * _noise_like(z, g)
            else:
                z = z_prev
    return z


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="latent_mnist_inpaint")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--seed", type=int, default=0, help="which test digits")
    p.add_argument("--jumps", type=int, nargs="+", default=[1, 3, 10], help="U: passes per step (1: no resampling)")
    p.add_argument("--guidance", type=float, default=None, help="default: the model's recommended scale")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if min(args.jumps) < 1:
        raise SystemExit(f"--jumps {args.jumps}: each U must be ≥ 1 (1 = the plain sampler)")
    model = load_diffusion(args.model)
    w = model.guidance if args.guidance is None else args.guidance
    x, labels, _ = real_test_sets(args.n, args.seed)
    m = half_mask(args.n, x.shape[-1], "right")
    ev, rows = Evaluator(), []
    print(f"{args.model}, guidance {w:g}, {args.steps} ancestral steps, n = {args.n} (seed {args.seed}), right half masked")
    print("| U | network evaluations | judge reads the true digit | s |\n|---|---|---|---|")
    for U in args.jumps:
        t0, g, zs = time.perf_counter(), torch.Generator().manual_seed(0), []
        for i in range(0, args.n, BATCH):
            c = inpaint_condition(model.first_stage, x[i:i + BATCH], m[i:i + BATCH],
                                  known_pixels=model.unet.known_pixels)
            zs.append(resample_sample(model, c, U, w, args.steps, g))
        y = paste_known(model.decode(torch.cat(zs)).clamp(-1, 1), x, m)
        acc = bootstrap_mean((ev.logits(y).argmax(1) == labels).float().numpy())
        nfe = ((args.steps - 1) * U + 1) * (2 if w != 1 else 1)
        rows.append(dict(jumps=U, nfe=nfe, accuracy=acc.to_dict(), seconds=time.perf_counter() - t0))
        print(f"| {U} | {nfe} | {acc.value:.1%} [{acc.low:.1%}, {acc.high:.1%}] | {rows[-1]['seconds']:.0f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(model=args.model, guidance=w, steps=args.steps, n=args.n, seed=args.seed, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
