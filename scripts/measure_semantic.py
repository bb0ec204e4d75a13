"""Semantic-map synthesis measured (issue 16): toy faces drawn from part maps, read back by the part segmenter.

n test maps (:func:`minildm.semantic.semantic_faces`, seed ``--seed``: a stream of faces that neither the diffusion
model (seed 0) nor the judge (seed 1) trained on) are drawn by the model (DDIM ``--steps``, each ``--guidance``),
and the judge (:class:`minildm.semantic.PartSegmenter`, ``--segmenter``, trained on renders only) reads every
pixel's part. Per part: the share of the faces whose map has it in which it is drawn in its region (IoU ≥ 0.5),
with 95% bootstrap intervals over the faces (:func:`minildm.semantic.measure`); rows for the renders themselves (the
judge's ceiling), their autoencoder reconstructions (a latent model's ceiling) and the drawn faces against another
face's map (chance). The guidance scale to adopt is chosen on ``--seed`` and reported on ``--seed`` + 1.

    PYTHONPATH=. python scripts/measure_semantic.py --model runs/cpu/latent_faces_semantic.pt --n 1000 \\
        --guidance 1 2 --json benchmarks/semantic_latent_faces_semantic.json
    python scripts/measure_semantic.py --model latent_faces_semantic --segmenter part_segmenter --n 200
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from minildm import recipes, semantic
from minildm.release import load_diffusion
from minildm.shipped import resolve
from minildm.uncertainty import Estimate


def as_json(result: dict) -> dict:
    return dict(rows={r: {c: e.to_dict() for c, e in cols.items()} for r, cols in result["rows"].items()},
                spurious={k: e.to_dict() for k, e in result["spurious"].items()},
                diversity=result["diversity"].to_dict())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a semantic-map checkpoint or shipped name (latent_faces_semantic)")
    p.add_argument("--segmenter", default="runs/cpu/part_segmenter.pt", help="the judge (checkpoint or shipped name)")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=recipes.SEMANTIC_TEST_SEED, help="the choosing split of test maps")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0])
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    model = load_diffusion(resolve(args.model))
    seg = recipes.load_segmenter(resolve(args.segmenter))
    out = dict(n=args.n, steps=args.steps, model=args.model, segmenter=args.segmenter, choose={}, report={})
    splits = {"choose": args.seed, "report": args.seed + 1} if len(args.guidance) > 1 else {"report": args.seed}
    for split, seed in splits.items():
        test = semantic.semantic_faces(args.n, seed=seed)
        scales = args.guidance if split == "choose" or len(splits) == 1 else [out["chosen"]]
        for s in scales:
            t0 = time.perf_counter()
            r = semantic.measure(model, seg, test, steps=args.steps, guidance=s)
            print(f"\n## {split} split (test maps of seed {seed}), guidance {s:g}, n = {args.n}, DDIM {args.steps} "
                  f"({time.perf_counter() - t0:.0f} s)\n")
            print(semantic.table(r))
            print("\nspurious: " + ", ".join(f"{k} {v:.1%}" for k, v in r["spurious"].items())
                  + f"; diversity (two draws of one map, mean |a − b| in [0, 1]): {r['diversity']:.3f}")
            out[split][f"{s:g}"] = as_json(r)
        if split == "choose":  # the scale whose weakest part is best, on this split only
            out["chosen"] = max(scales, key=lambda s: min(out["choose"][f"{s:g}"]["rows"]["drawn"][p]["value"]
                                                          for p in semantic.LOCALISED))
            print(f"\nchosen on seed {seed}: guidance {out['chosen']:g} (the best weakest part)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
