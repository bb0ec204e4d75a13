"""Toy-face super-resolution and attribute inpainting measured (issue 16), judged by the face judge.

n toy test faces (the first n of the test split: faces none of the models trained on; the FD reference is the first
n of the validation split) are upscaled ×4 from their 16 × 16 average pool by ``--sr`` and, region by region
(glasses and eyes, mouth, hat), masked and filled by ``--inpaint`` told the true attributes, that attribute flipped,
or nothing (:mod:`minildm.face_restoration`). The judge (``face_judge_toy``, trained on real toy faces only, never
inside a training loss) reads every face; 95% bootstrap intervals over the faces.

    PYTHONPATH=. python scripts/measure_face_restoration.py --sr latent_faces_sr --inpaint latent_faces_inpaint \\
        --n 1000 --json benchmarks/face_restoration.json
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from minildm import face_restoration as fr
from minildm.face_classifier import load_attribute_classifier
from minildm.faces import load_faces
from minildm.release import load_diffusion
from minildm.shipped import resolve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sr", default=None, help="a face SR checkpoint or shipped name (latent_faces_sr)")
    p.add_argument("--inpaint", default=None, help="a face inpainting checkpoint or shipped name")
    p.add_argument("--judge", default="face_judge_toy")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if not (args.sr or args.inpaint):
        raise SystemExit("give --sr MODEL and/or --inpaint MODEL (checkpoints or shipped names)")
    torch.set_grad_enabled(False)
    judge = load_attribute_classifier(resolve(args.judge))
    test = load_faces("test", source="toy", mode="cpu", verbose=False)
    ref = load_faces("valid", source="toy", mode="cpu", verbose=False)
    if args.n > min(len(test), len(ref)):
        raise SystemExit(f"--n {args.n}: at most {min(len(test), len(ref))} test faces (and as many references)")
    x, attrs = test.float(args.n), test.attrs[:args.n]
    out = dict(n=args.n, steps=args.steps, seed=args.seed, judge=args.judge)
    print(f"n = {args.n} toy test faces, FD reference = the first {args.n} validation faces, judge {args.judge}, "
          f"DDIM {args.steps}, seed {args.seed}; 95% bootstrap intervals over the faces")
    if args.sr:
        t0 = time.perf_counter()
        r = fr.measure_sr(load_diffusion(resolve(args.sr)), judge, x, attrs, ref.float(args.n), seed=args.seed,
                          steps=args.steps)
        print(f"\n## super-resolution ×4, 16 → 64: {args.sr} ({time.perf_counter() - t0:.0f} s)\n")
        print(fr.sr_table(r))
        print(f"\ndiversity (two draws of one LR face, mean |a − b| in [0, 1]): {r['diversity']:.4f}")
        out["sr"] = dict(model=args.sr, rows={k: {c: e.to_dict() for c, e in v.items()} for k, v in r["rows"].items()},
                         diversity=r["diversity"].to_dict())
    if args.inpaint:
        t0 = time.perf_counter()
        r = fr.measure_attribute_inpainting(load_diffusion(resolve(args.inpaint)), judge, x, attrs, seed=args.seed,
                                            steps=args.steps)
        print(f"\n## attribute inpainting: {args.inpaint} ({time.perf_counter() - t0:.0f} s)\n")
        print("share of faces on which the judge reads the requested value of the masked attribute (masked input "
              "and unsaid: the true value); others: the other attributes carried; outside: mean |y − x| outside "
              "the mask before pasting\n")
        print(fr.inpainting_table(r))
        out["inpaint"] = dict(model=args.inpaint, rows={k: {c: e.to_dict() for c, e in v.items()}
                                                        for k, v in r.items() if k != "images"})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
