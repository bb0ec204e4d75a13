"""Does v-prediction stop the toy-face model's deterministic drift? ε and v at equal budget (issue 15's face target).

Notebook 07 §3.6 found that DDIM η = 0 on the shipped face model (``latent_faces_toy``, ε-prediction) ends 1.23×
wider than the training latents already at s = 1, and carries fewer requested attributes than ancestral sampling;
on latent MNIST, v-prediction halved DDIM's gap at equal budget (``scripts/parameterisation_study.py``). This
trains notebook 06's ``latent-faces`` preset twice on the shipped face autoencoder's latents of the same toy
faces, identical but for the target (ε, v), and measures for each, at s = 1 and at the shipped s, with DDIM η = 0
and ancestral sampling from the same z_T and the same requests:

* std(z_0) ÷ the training latents' std (target for DDIM: within 1.2×), both with bootstrap intervals over samples;
* the requested attribute values carried, read by the face judge (``face_judge_toy``, no training loss touched it;
  target for DDIM: within 3 points of ancestral sampling), with bootstrap intervals; DDIM − ancestral is paired
  (the same requests and z_T in both rows).

    python scripts/face_v_study.py --train-only                # both runs, resumable (runs/<mode>/face_v_study/)
    python scripts/face_v_study.py --measure-only --n 500 --json benchmarks/face_v_study.json
    python scripts/face_v_study.py --shipped --rescale 0 0.7 1 --json benchmarks/face_guidance_rescale.json

``--shipped`` measures the shipped ``latent_faces_toy`` instead of the two runs; ``--rescale`` adds guidance-rescale
rows (Lin et al. 2024 §3.4, φ) at the guided scale.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from minildm import faces, presets, recipes, uncertainty
from minildm.config import runs_dir
from minildm.face_classifier import attribute_hits, carried_rate, load_attribute_classifier
from minildm.faces import NULL
from minildm.latents import encode_dataset
from minildm.release import load_diffusion
from minildm.shipped import shipped

TARGETS = ("eps", "v")


def variant_preset(target: str, attributes, mode: str | None = None) -> presets.DiffusionPreset:
    """Notebook 06's latent-faces preset, with ``target`` as what the network predicts; nothing else changed."""
    base = presets.latent_faces(mode, attributes=attributes)
    return dataclasses.replace(base, train=dataclasses.replace(base.train, target=target))


def run_path(root: Path, target: str) -> Path:
    return root / f"latent_faces_{target}.pt"


def std_spread(z: torch.Tensor, n_boot: int) -> uncertainty.Estimate:
    return uncertainty.bootstrap(lambda a: float(a.std()), z.flatten(1).double().numpy(), n_boot=n_boot, seed=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    p.add_argument("--n", type=int, default=500, help="faces per row (default 500)")
    p.add_argument("--steps", type=int, default=50, help="sampling steps of both samplers (default 50)")
    p.add_argument("--seed", type=int, default=0, help="the z_T seed shared by every row")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--measure-only", action="store_true")
    p.add_argument("--shipped", action="store_true", help="measure the shipped latent_faces_toy (ε), train nothing")
    p.add_argument("--rescale", type=float, nargs="+", default=[0.0],
                   help="guidance rescale φ for the guided rows (default 0: off)")
    p.add_argument("--guided-only", action="store_true", help="skip the s = 1 rows")
    p.add_argument("--dir", default=None, help="where the runs live (default runs/<mode>/face_v_study)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    root = Path(args.dir) if args.dir else runs_dir() / "face_v_study"
    root.mkdir(parents=True, exist_ok=True)

    ae = recipes.face_first_stage()  # the shipped face model's frozen autoencoder
    data = faces.load_faces("train", source="toy", verbose=False)
    if not (args.measure_only or args.shipped):
        z = encode_dataset(ae, data.images, cache_path=root / "latents_train.pt")
        null = torch.full((len(data.names),), NULL)
        for target in args.targets:
            preset = variant_preset(target, data.names)
            t0 = time.perf_counter()
            recipes.train_preset(preset, z, labels=data.attrs, ckpt_path=run_path(root, target), first_stage=ae,
                                 null_condition=null)
            print(f"trained {target}: {preset.train.steps} steps, {time.perf_counter() - t0:.0f} s this call",
                  flush=True)
    if args.train_only:
        return

    judge = load_attribute_classifier(shipped("face_judge_toy"))
    z_train = encode_dataset(ae, data.images[:2000])
    train_std = std_spread(z_train, args.n_boot)
    print(f"training latents (2000 toy faces): std {train_std}")
    rows = []
    print("| model | s | φ | sampler | std(z_0) ÷ training | carried | DDIM − ancestral, carried (paired) |")
    print("|---|---|---|---|---|---|---|", flush=True)
    runs = {"shipped ε": shipped("latent_faces_toy")} if args.shipped else \
        {target: run_path(root, target) for target in args.targets}
    for target, path in runs.items():
        model = load_diffusion(path)
        y = faces.random_attributes(args.n, model.attributes, seed=1)
        # (s, φ, sampler): both samplers at s = 1 and at the model's s; DDIM again for each φ > 0, paired with the
        # ancestral row of the same s (φ = 0: ancestral sampling corrects its own drift, the rows say whether DDIM's
        # needs the rescale)
        scales = [model.guidance] if args.guided_only else sorted({1.0, model.guidance})
        settings = [(s, 0.0, sampler) for s in scales for sampler in ("ddpm", "ddim")]
        settings += [(model.guidance, phi, "ddim") for phi in args.rescale if phi > 0]
        ancestral = {}
        for s, phi, sampler in settings:
            t0 = time.perf_counter()
            img, z0 = model.sample(args.n, sampler=sampler, steps=args.steps, seed=args.seed, y=y, guidance=s,
                                   guidance_rescale=phi, return_latents=True)
            hits = tuple(a.double().numpy() for a in attribute_hits(judge, img, y))  # (hits, given), (N, M) each
            carried = uncertainty.bootstrap(carried_rate, *hits, n_boot=args.n_boot, seed=0)
            wide = uncertainty.ratio(std_spread(z0.cpu(), args.n_boot), train_std)
            row = dict(target=target, guidance=s, rescale=phi, sampler=sampler, std_ratio=wide.value,
                       std_low=wide.low, std_high=wide.high, carried=carried.value, carried_low=carried.low,
                       carried_high=carried.high, seconds=time.perf_counter() - t0)
            gap = ""
            if sampler == "ddpm":
                ancestral[s] = hits
            else:  # paired: resample the same faces in both rows
                (ha, ga), (hd, gd) = ancestral[s], hits
                d = uncertainty.bootstrap(lambda a, b, c, e: carried_rate(c, e) - carried_rate(a, b),
                                          ha, ga, hd, gd, n_boot=args.n_boot, seed=0)
                row.update(carried_gap=d.value, gap_low=d.low, gap_high=d.high)
                gap = f"{100 * d.value:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}] points"
            rows.append(row)
            print(f"| {target} | {s:g} | {phi:g} | {sampler}-{args.steps} | {wide} | {100 * carried.value:.1f}% "
                  f"[{100 * carried.low:.1f}, {100 * carried.high:.1f}] | {gap} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(n=args.n, steps=args.steps, seed=args.seed, train_std=train_std.value, rows=rows), f,
                      indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
