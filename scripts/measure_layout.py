"""A layout model measured (issue 17): what is drawn, where, and where each object token is read, with spreads.

n random layouts (:func:`minildm.layout.random_layouts`, placed as the training canvases, classes uniform) are
sampled with the ancestral "ddpm" sampler on 50 steps (as ``measure_shipped.py`` samples the other models), in
batches of ``BATCH`` from one generator seeded with the run's seed, so every guidance scale starts from the same
noise. Per run, each number with its 95% bootstrap interval (:mod:`minildm.uncertainty`):

* **judge accuracy**: each requested box cropped and read by the independent judge
  (:func:`~minildm.layout.read_objects`), right or wrong per object; bootstrap over objects;
* **IoU**: each box against the bounding box of the ink drawn in it (:func:`~minildm.layout.ink_box_iou`), over
  objects;
* **ink outside**: the share of a canvas's ink outside every requested box (:func:`~minildm.layout.ink_outside`),
  over the canvases that hold ink;
* **count**: the share of canvases whose digit count (:func:`~minildm.layout.count_digits`) is the number of
  objects asked for;
* **attention**: the cross-attention maps of every layer, head-averaged, over all 50 steps, of the conditional rows
  only (a guided batch is [y; ∅]); per object token share / chance (:func:`~minildm.layout.attention_in_boxes`:
  its mass inside its box over the box's share of the canvas, 1 = no better than uniform), averaged over objects,
  per layer and for all layers' maps averaged together (upsampled to the largest grid).

**Choices are made on one seed and reported on another.** Every ``--guidance`` scale is measured on
``--seed-choose`` (its layouts and its noise); the rule is *fidelity first*: the smallest scale whose judge accuracy
is ≥ 90%, IoU ≥ 0.6 and ink outside ≤ 10% (the issue's targets; a larger scale only trades diversity away), else
the most accurate.
(:func:`minildm.evaluate.pick_guidance` does not fit: it ranks by diversity within class, which layouts lack.) At the
chosen scale the layer with the highest share / chance on the choose seed is the "best layer"; the chosen scale is
then re-measured on ``--seed-report``, new layouts and new noise, and the best layer's ratio is reported from there.
The ceiling: the same measures on n real test canvases (:func:`~minildm.layout.layout_dataset`), where ink sits
in its boxes by construction (no attention: they were never sampled).

Memory stays bounded whatever n: attention is captured one batch at a time, each record keeps only the conditional
rows averaged over heads (``AttentionStore(rows=, mean_heads=True)``: the maps ``token_maps`` would give, 2·heads
times smaller), and the store is reduced to
per-object shares and cleared after every batch (~10 MB a layer per batch of 50 in cpu mode).

    python scripts/measure_layout.py runs/cpu/latent_mnist_layout.pt                # n = 500, s ∈ {1, 2, 3}
    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/measure_layout.py PATH --n 40 --guidance 1 2   # not installed
    python scripts/measure_layout.py latent_mnist_layout --n 200 --guidance 1 2 --json /tmp/layout.json
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from minildm.attention_maps import AttentionStore, capture_attention
from minildm.evaluate import Evaluator
from minildm.layout import (NO_OBJECT, LayoutConfig, attention_in_boxes, count_digits, ink_box_iou, ink_outside,
                            layout_dataset, random_layouts, read_objects)
from minildm.release import load_diffusion
from minildm.uncertainty import Estimate, bootstrap_mean

BATCH = 50  # layouts sampled (and their attention captured) at a time
STEPS = 50  # ancestral steps, as measure_shipped.py samples
ALL = "all layers"


def mean_of(values, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """bootstrap_mean of the finite values; NaN (no interval) if fewer than 2."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2:
        return Estimate(float(v.mean()) if v.size else float("nan"), float("nan"), float("nan"), "too few", v.size)
    return bootstrap_mean(v, n_boot=n_boot, seed=seed)


def image_measures(ev: Evaluator, images: torch.Tensor, layouts: torch.Tensor, seed: int) -> dict[str, Estimate]:
    """What is drawn and where, for canvases (N, 1, S, S) and their layouts (N, K, 5)."""
    valid = layouts[..., 0] != NO_OBJECT  # (N, K)
    right = (read_objects(images, layouts, ev) == layouts[..., 0].long())[valid]  # (objects,)
    return dict(accuracy=mean_of(right, seed=seed), iou=mean_of(ink_box_iou(images, layouts)[valid], seed=seed),
                outside=mean_of(ink_outside(images, layouts), seed=seed),  # NaN (no ink) left out
                count=mean_of(count_digits(images) == valid.sum(1), seed=seed))


def sample_run(model, ev: Evaluator, layouts: torch.Tensor, guidance: float, seed: int) -> dict:
    """Sample ``layouts`` at ``guidance`` with noise from ``seed``; every measure, and share / chance per layer."""
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    images, ratios, grids = [], {}, {}
    for i in range(0, len(layouts), BATCH):
        y = layouts[i:i + BATCH]
        with capture_attention(model.unet, which="cross", store=AttentionStore(rows=len(y), mean_heads=True)) as store:
            images.append(model.sample(len(y), sampler="ddpm", steps=STEPS, generator=g, y=y, guidance=guidance,
                                       batch_size=BATCH))
        valid = y[..., 0] != NO_OBJECT
        for name in store.names + [ALL]:
            share, chance = attention_in_boxes(store.token_maps(layers=[name] if name != ALL else "all"), y)
            ratios.setdefault(name, []).append((share / chance)[valid])  # (objects,)
            grids.setdefault(name, store.select(name)[0].size if name != ALL else "mean")
        store.clear()
    images = torch.cat(images)
    out = image_measures(ev, images, layouts, seed)
    out["layers"] = {name: mean_of(torch.cat(r), seed=seed) for name, r in ratios.items()}
    out["grids"], out["seconds"] = grids, time.perf_counter() - t0
    return out


def choose_guidance(sweep: dict[float, dict], min_accuracy: float = 0.9, min_iou: float = 0.6,
                    max_outside: float = 0.1) -> float:
    """Fidelity first: the smallest scale with judge accuracy ≥ min_accuracy, IoU ≥ min_iou and ink outside the
    boxes ≤ max_outside (issue 17's three targets: IoU alone is met by noise, a canvas full of ink scores about
    1/1.2² ≈ 0.69 with the 10% margin), else the most accurate (the smaller on a tie)."""
    good = [s for s in sorted(sweep) if sweep[s]["accuracy"].value >= min_accuracy
            and sweep[s]["iou"].value >= min_iou and sweep[s]["outside"].value <= max_outside]
    return good[0] if good else max(sorted(sweep), key=lambda s: sweep[s]["accuracy"].value)


def best_layer(r: dict) -> str:
    """The single layer with the highest mean share / chance."""
    return max((k for k in r["layers"] if k != ALL), key=lambda k: r["layers"][k].value)


def show(label: str, guidance, seed: int, n: int, r: dict, layer: str | None) -> None:
    """One markdown row; ``layer`` the layer whose ratio to show (None: no attention)."""
    att = f"{layer}: {r['layers'][layer]:.2f}" if layer else "—"
    every = f"{r['layers'][ALL]:.2f}" if layer else "—"
    print(f"| {label} | {guidance if guidance is not None else '—'} | {seed} | {n} / {r['accuracy'].n} | "
          f"**{r['accuracy']:.1%}** | **{r['iou']:.3f}** | {r['outside']:.1%} | {r['count']:.1%} | {att} | {every} | "
          f"{r['seconds']:.0f} |", flush=True)


def as_json(r: dict) -> dict:
    out = {k: v.to_dict() for k, v in r.items() if isinstance(v, Estimate)}
    out["seconds"] = r["seconds"]
    if "layers" in r:
        out["layers"] = {k: dict(v.to_dict(), grid=r["grids"][k]) for k, v in r["layers"].items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a layout checkpoint (runs/cpu/latent_mnist_layout.pt) or a shipped model's name")
    p.add_argument("--n", type=int, default=500, help="layouts per run (default 500)")
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    p.add_argument("--seed-choose", type=int, default=0, help="layouts and noise the guidance and layer are chosen on")
    p.add_argument("--seed-report", type=int, default=1, help="layouts and noise the choice is reported on")
    p.add_argument("--json", default=None, help="write every row (values, intervals, seconds) here")
    args = p.parse_args()
    if args.seed_choose == args.seed_report:
        raise SystemExit("--seed-choose and --seed-report must differ: a choice reported on its own samples is "
                         "the maximum of noisy numbers")
    torch.set_grad_enabled(False)
    model = load_diffusion(args.model)
    if model.max_objects is None:
        raise SystemExit(f"{args.model} is not a layout model (no LayoutEncoder); measure latent_mnist_layout, e.g. "
                         "runs/cpu/latent_mnist_layout.pt")
    ev, cfg = Evaluator(), LayoutConfig(max_objects=model.max_objects)
    print(f"{args.model}: n = {args.n} random layouts per row, {STEPS} ancestral steps, judge "
          "minildm/weights/mnist_judge.pt; 95% bootstrap intervals (accuracy, IoU, attention over objects; ink "
          "outside, count over canvases); attention = mean share / chance of object tokens in their boxes\n")
    print("| row | guidance | seed | canvases / objects | judge accuracy | IoU | ink outside | count right | "
          "attention, best layer | attention, all layers | s |\n|---|---:|---:|---|---|---|---|---|---|---|---:|")
    choose = random_layouts(args.n, seed=args.seed_choose, cfg=cfg)
    sweep = {}
    for s in args.guidance:
        sweep[s] = sample_run(model, ev, choose, s, args.seed_choose)
        show(f"{model.name} (best layer on this seed)", s, args.seed_choose, args.n, sweep[s], best_layer(sweep[s]))
    chosen = choose_guidance(sweep)
    layer = best_layer(sweep[chosen])
    report = sample_run(model, ev, random_layouts(args.n, seed=args.seed_report, cfg=cfg), chosen, args.seed_report)
    show(f"**{model.name}, s = {chosen:g} and layer chosen on seed {args.seed_choose}**", chosen, args.seed_report,
         args.n, report, layer)
    t0 = time.perf_counter()
    real = layout_dataset(args.n, split="test", seed=args.seed_report, cfg=cfg)
    ceiling = image_measures(ev, real.images, real.layouts, args.seed_report)
    ceiling["seconds"] = time.perf_counter() - t0
    show("real test canvases (ceiling)", None, args.seed_report, args.n, ceiling, None)

    print(f"\nshare / chance per layer at s = {chosen:g}: chosen on seed {args.seed_choose}, reported on seed "
          f"{args.seed_report}\n\n| layer | grid | seed {args.seed_choose} | seed {args.seed_report} |\n"
          "|---|---|---|---|")
    for name in sweep[chosen]["layers"]:
        grid = sweep[chosen]["grids"][name]
        mark = " (best)" if name == layer else ""
        print(f"| {name}{mark} | {grid if isinstance(grid, str) else '×'.join(map(str, grid))} | "
              f"{sweep[chosen]['layers'][name]:.2f} | {report['layers'][name]:.2f} |")
    print(f"\nguidance chosen: {chosen:g} (smallest with judge accuracy ≥ 90%, IoU ≥ 0.6 and ink outside ≤ 10% on "
          f"seed {args.seed_choose}, else the most accurate); best layer: {layer}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(model=str(args.model), n=args.n, steps=STEPS, seed_choose=args.seed_choose,
                           seed_report=args.seed_report, chosen_guidance=chosen, best_layer=layer,
                           sweep={str(s): as_json(r) for s, r in sweep.items()}, report=as_json(report),
                           real=as_json(ceiling)), f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
