"""Does the layout UNet need to know where it is?  Coordinate channels against none, over training seeds (issue 17).

The first layout model (no coordinate channels) drew 54% of its boxes as the requested digit and left 28% of its ink
outside every box. Its cross-attention must match "this latent pixel" to "the token whose box holds it", but a
convolutional UNet knows a pixel's position only through the zero padding at the borders. With
``UNetConfig.coord_freqs`` set, γ(x, y) of every latent pixel (:func:`minildm.layers.coordinate_features`) is
concatenated to z_t (CoordConv), so the queries can carry their position from the first layer on.

Each run is the cpu preset ``presets.latent_mnist_layout("cpu")`` with only ``coord_freqs`` and the training seed
changed (the same cached latents of the same 20,000 canvases, the same autoencoder, batch, lr and steps), saved under
``runs/cpu/layout_study/``, resumable, a finished one loaded. Each is measured as ``measure_layout.py`` measures
(50 ancestral steps, the independent judge, 95% bootstrap intervals over objects or canvases) at one guidance scale
on one seed of layouts and noise, the same for every run: ``--guidance`` 3 and ``--seed`` 1 by default, the
shipped first model's chosen scale and its report seed. ``--also`` measures finished checkpoints (or shipped names)
on that same footing, e.g. the main run ``runs/cpu/latent_mnist_layout.pt`` trained by ``python -m minildm train``.

    PYTHONPATH=. python scripts/layout_study.py --coords 4 --seeds 1 --train-only   # beside the main run, then:
    PYTHONPATH=. python scripts/layout_study.py --coords 4 --seeds 1 --also runs/cpu/latent_mnist_layout.pt
    PYTHONPATH=. python scripts/layout_study.py --coords none 4 --seeds 0 1 2 --steps 1000 --n 200
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import measure_layout  # noqa: E402  (the same measures, the same sampler)

from minildm import config, presets, recipes  # noqa: E402
from minildm.checkpoint import load_checkpoint  # noqa: E402
from minildm.evaluate import Evaluator  # noqa: E402
from minildm.layout import LayoutConfig, random_layouts  # noqa: E402
from minildm.release import load_diffusion  # noqa: E402


def run(coords: int | None, seed: int, steps: int):
    """Train (or load) one variant; returns (DiffusionModel, checkpoint path)."""
    p = presets.latent_mnist_layout("cpu")
    name = f"layout_coords{'none' if coords is None else coords}_seed{seed}_{steps}"
    p = dataclasses.replace(p, name=name, unet=dataclasses.replace(p.unet, coord_freqs=coords),
                            train=dataclasses.replace(p.train, steps=steps, seed=seed, sample_every=0))
    path = config.runs_dir("cpu") / "layout_study" / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return recipes.train_layout(p, ckpt_path=path, progress=False), path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--coords", nargs="+", default=["none", "4"], help="coord_freqs values; 'none' = no channels")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--steps", type=int, default=presets.LAYOUT_CPU_STEPS)
    ap.add_argument("--also", nargs="*", default=[],
                    help="finished layout checkpoints or shipped names to measure too, each PATH or LABEL=PATH")
    ap.add_argument("--n", type=int, default=500, help="layouts per measurement")
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=1, help="the layouts and noise every model is measured on")
    ap.add_argument("--json", default=None)
    ap.add_argument("--train-only", action="store_true", help="train (or resume) the runs, measure nothing")
    args = ap.parse_args()

    models = {}
    for c in args.coords:
        coords = None if c == "none" else int(c)
        for seed in args.seeds:
            t0 = time.perf_counter()
            model, path = run(coords, seed, args.steps)
            print(f"trained {path} ({time.perf_counter() - t0:.0f} s this call)", flush=True)
            models[f"coordinates {c}, seed {seed}" if coords is not None else f"no coordinates, seed {seed}"] = \
                (model, path)
    if args.train_only:
        return
    for entry in args.also:  # PATH, or LABEL=PATH
        label, _, name = entry.rpartition("=")
        models[label or name] = (load_diffusion(name), name)

    torch.set_grad_enabled(False)
    ev = Evaluator()
    layouts = random_layouts(args.n, seed=args.seed, cfg=LayoutConfig())
    print(f"\nn = {args.n} layouts (seed {args.seed}), s = {args.guidance:g}, {measure_layout.STEPS} ancestral steps; "
          "95% bootstrap intervals\n")
    print("| model | coord_freqs | training s | judge accuracy | IoU | ink outside | count right | "
          "attention, all layers | s |\n|---|---|---:|---|---|---|---|---|---:|")
    rows = {}
    for label, (model, path) in models.items():
        r = measure_layout.sample_run(model, ev, layouts, args.guidance, args.seed)
        ckpt = load_checkpoint(path) if Path(str(path)).exists() else {}  # a shipped name: no file path here
        train_s = ckpt["history"][-1][-1] if ckpt.get("history") else None  # a shipped file keeps no history
        print(f"| {label} | {model.unet.unet.cfg.coord_freqs} | "
              f"{'—' if train_s is None else f'{train_s:.0f}'} | **{r['accuracy']:.1%}** | **{r['iou']:.3f}** | "
              f"{r['outside']:.1%} | {r['count']:.1%} | {r['layers'][measure_layout.ALL]:.2f} | {r['seconds']:.0f} |",
              flush=True)
        rows[label] = dict(measure_layout.as_json(r), path=str(path), train_s=train_s)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(n=args.n, guidance=args.guidance, seed=args.seed, steps=args.steps, rows=rows), fh, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
