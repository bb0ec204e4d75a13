"""Which β schedule should the course's latent models train with?  DDPM's linear one against LDM's scaled-linear one.

Issue 13, defect 5. Notebook 01 teaches that LDM trains with the *scaled-linear* schedule (β from 0.00085 to 0.012,
linear in √β; ``schedule.scaled_linear_beta_schedule``), while every latent preset of the course uses DDPM's
*linear* one (β from 1e-4 to 0.02). This script decides between them by measurement, at equal budget: the cpu
preset of notebook 04 (``presets.latent_mnist("cpu")``: f = 4, the same UNet, batch, learning rate and EMA), trained
for the same number of steps from the same cached latents with only ``schedule`` changed, over several training seeds.

Each run is sampled with 50 ancestral steps (the course's default sampler) and judged by the MNIST judge
(``mnist_judge.pt``: no training loss touched it): FD to real test digits over the real-vs-real floor (FD bootstrapped
over the samples, the floor over 3 disjoint real pairs), and each digit's share of the samples. The table gives each
seed's ratio with its 95% interval, the mean and range over seeds, and the per-seed difference (the seeds are paired:
a seed fixes the initial weights and the batches).

Two facts to keep in mind when reading it: the scaled-linear schedule ends at ᾱ_T ≈ 0.0047 (√ᾱ_T ≈ 0.07 of the signal
left at t = T) where the linear one ends at ≈ 4e-5, so sampling from pure noise is a slightly larger mismatch for it
(Lin et al. 2024); and its β are smaller at every t, so its x_t are less noisy for most of the chain (see
notebook 01's SNR plot). A finished run is loaded, not retrained: the script can be stopped, resumed and re-run.

    python scripts/schedule_study.py                     # 2 schedules × 3 seeds × 1,000 steps, ~30 min on one core
    python scripts/schedule_study.py --steps 2000 --seeds 0 1 2 3
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from minildm import config, evaluate, presets, recipes
from minildm.uncertainty import over_repeats


def run(schedule: str, seed: int, steps: int, ae, z_train):
    p = presets.latent_mnist("cpu")
    p = dataclasses.replace(p, schedule=schedule, name=f"schedule_{schedule}_seed{seed}_{steps}",
                            train=dataclasses.replace(p.train, steps=steps, seed=seed, sample_every=0))
    path = config.runs_dir("cpu") / "schedule_study" / f"{p.name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    result, _ = recipes.train_preset(p, z_train, ckpt_path=path, first_stage=ae, progress=False)
    return recipes.to_model(p, result.ema, ae), result.history


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schedules", nargs="+", default=["linear", "scaled_linear"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1000, help="training steps per run (the shipped model: 20,000)")
    ap.add_argument("--n", type=int, default=1000, help="samples judged per run")
    ap.add_argument("--json", default=None, help="write the table here as JSON")
    args = ap.parse_args()

    torch.manual_seed(0)
    ae, _, _ = recipes.first_stage(presets.autoencoder_mnist("cpu"))
    ae = ae.eval().requires_grad_(False)
    z_train, _ = recipes.latents(ae, "train", mode="cpu")
    ev = evaluate.Evaluator()
    rows = {}
    for schedule in args.schedules:
        for seed in args.seeds:
            t0 = time.perf_counter()
            model, history = run(schedule, seed, args.steps, ae, z_train)
            x = model.sample(args.n, sampler="ddpm", steps=50, seed=4)
            r = ev.report_spread(x)
            shares = [e.value for e in r["digit_shares"]]
            rows[(schedule, seed)] = dict(ratio=r["fd_ratio"], loss=history[-1][1], train_s=history[-1][4],
                                          shares=(min(shares), max(shares)))
            print(f"{schedule:>13} seed {seed}: FD / floor {r['fd_ratio']:.2f}, digit shares "
                  f"{min(shares):.1%}–{max(shares):.1%}, final loss {history[-1][1]:.4f} "
                  f"({history[-1][4] / 60:.1f} min of training; {time.perf_counter() - t0:.0f} s this call)", flush=True)

    print(f"\n{args.steps} steps each, n = {args.n} samples per run, 50 ancestral steps; 95% intervals")
    print(f"{'schedule':>13} | " + " | ".join(f"seed {s}" + " " * 14 for s in args.seeds) + " | mean (range over seeds)")
    summary = {}
    for schedule in args.schedules:
        vals = [rows[(schedule, s)]["ratio"] for s in args.seeds]
        over = over_repeats([v.value for v in vals], "training seeds") if len(vals) > 1 else vals[0]
        summary[schedule] = over
        print(f"{schedule:>13} | " + " | ".join(f"{v.value:5.2f} [{v.low:.2f}, {v.high:.2f}]" for v in vals)
              + f" | {over.value:.2f} [{over.low:.2f}, {over.high:.2f}]")
    if len(args.schedules) == 2 and len(args.seeds) > 1:
        a, b = args.schedules
        diffs = [rows[(b, s)]["ratio"].value - rows[(a, s)]["ratio"].value for s in args.seeds]
        d = over_repeats(diffs, "training seeds")
        print(f"{b} − {a}, paired by seed: {d.value:+.2f} (range {d.low:+.2f} to {d.high:+.2f}; "
              f"{sum(x < 0 for x in diffs)} of {len(diffs)} seeds favour {b})")
    if args.json:
        out = {f"{k[0]}/seed{k[1]}": dict(ratio=[v["ratio"].value, v["ratio"].low, v["ratio"].high], loss=v["loss"],
                                          train_s=v["train_s"], shares=v["shares"]) for k, v in rows.items()}
        with open(args.json, "w") as fh:
            json.dump(dict(steps=args.steps, n=args.n, runs=out,
                           mean={k: [v.value, v.low, v.high] for k, v in summary.items()}), fh, indent=1)


if __name__ == "__main__":
    main()
