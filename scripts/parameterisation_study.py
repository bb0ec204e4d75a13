"""ε or v, and zero terminal SNR: three parameterisations of latent MNIST trained at equal budget (issue 15).

Three runs of the ``latent-mnist`` preset, identical but for what the network predicts and the β schedule, each on
the shipped ``latent_mnist``'s f = 4 autoencoder's latents of all 60,000 training digits, the same steps, batch,
optimiser and seed:

* ``eps``            ε-prediction on DDPM's linear schedule (the course's recipe; ᾱ_T ≈ 4e-5, a trace of z_0 left)
* ``v``              v-prediction (Salimans & Ho 2022) on the same schedule: the loss re-weighted by 1 + 1/SNR
* ``v_zero_snr``     v-prediction on the linear schedule rescaled to ᾱ_T = 0 (Lin et al. 2024, Alg. 1), so
                     training sees pure noise at t = T − 1, as sampling starts from it; it cannot be trained as ε
* ``eps_scaled``, ``v_scaled``  the same two targets on LDM's scaled-linear schedule (issue 13, defect 5: the
                     schedule notebook 01 teaches; v on scaled-linear is Stable Diffusion 2's recipe)

Each is then sampled from the same x_T by 50 ancestral and 50 deterministic DDIM steps (trailing spacing, which
starts at t = T − 1, Lin et al.'s recommendation; leading too for the linear schedule) and judged by the course's
judge (``mnist_judge.pt``, no training loss touched it): FD ÷ the real floor with bootstrap intervals, and
DDIM ÷ ancestral with a paired bootstrap. Every run also keeps its EMA at each ``--snapshot-every`` steps, so the
DDIM ÷ ancestral gap can be followed over training (model error: does the gap close as the model improves?).

    python scripts/parameterisation_study.py --steps 4000 --seeds 0            # train (resumable) and measure
    python scripts/parameterisation_study.py --steps 4000 --seeds 0 1 --measure-only --json benchmarks/param.json

Runs go to ``runs/<mode>/param_study/`` (resumable: run the same command again after a stop). ``--shipped`` also
measures the shipped ``latent_mnist`` (ε, 20,000 steps) the same way, as the reference for a run at its budget:

    python scripts/parameterisation_study.py --steps 20000 --variants v --dir runs/cpu/param_study_20k --shipped

``--width 32`` trains the same recipe with a UNet of twice the base width (2.74 M parameters against 0.69 M; the
run is named ``v_scaled_w32``): whether the small network is what holds FD and the DDIM gap (issues 13 and 15).
At 20,000 steps it is not (benchmarks/RESULTS.md, "How near the floor"); ``--ema-decay`` likewise for the EMA:

    python scripts/parameterisation_study.py --steps 20000 --seeds 0 --variants v_scaled --width 32 \
        --dir runs/cpu/param_study_20k --train-only
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from minildm import presets, recipes
from minildm.config import runs_dir
from minildm.evaluate import Evaluator, FrechetReference, feature_stats
from minildm.release import load_diffusion
from minildm.schedule import ZERO_SNR
from minildm.shipped import shipped
from minildm.uncertainty import bootstrap

# name → (what the network predicts, β schedule)
VARIANTS = {"eps": ("eps", "linear"), "v": ("v", "linear"), "v_zero_snr": ("v", "linear" + ZERO_SNR),
            "eps_scaled": ("eps", "scaled_linear"), "v_scaled": ("v", "scaled_linear")}


def variant_preset(name: str, steps: int, seed: int, mode: str = "cpu", width: int | None = None,
                   ema_decay: float | None = None, dropout: float | None = None) -> presets.DiffusionPreset:
    """The latent-mnist preset with the variant's target and schedule, ``steps`` steps, the lr ×0.1 for the last
    sixth (the course's recipe), samples and checkpoints every ``steps // 8``; ``width`` replaces the UNet's base
    width (the preset's 16: 0.69 M parameters; 32: 2.74 M), the capacity question of issue 13's FD target;
    ``ema_decay`` the EMA's final decay (the preset's 0.998: a horizon of ~500 steps); ``dropout`` the ResBlocks'
    dropout (the preset's 0; DDPM's CIFAR-10 model used 0.1)."""
    target, schedule = VARIANTS[name]
    base = presets.PRESETS["latent-mnist"](mode)
    train = dataclasses.replace(base.train, steps=steps, seed=seed, target=target, lr_drop_at=steps - steps // 6,
                                sample_every=max(steps // 8, 1), ckpt_every=max(steps // 8, 1),
                                ema_decay=base.train.ema_decay if ema_decay is None else ema_decay)
    unet = base.unet if width is None else dataclasses.replace(base.unet, base_channels=width)
    if dropout is not None:
        unet = dataclasses.replace(unet, dropout=dropout)
    return dataclasses.replace(base, train=train, schedule=schedule, unet=unet)


def run_name(name: str, width: int | None, ema_decay: float | None = None, dropout: float | None = None) -> str:
    """The variant's file stem: ``v_scaled``, ``v_scaled_w32`` for another width than the preset's,
    ``v_scaled_ema9995`` for another EMA decay, ``v_scaled_do10`` for dropout 0.1."""
    return name + ("" if width is None else f"_w{width}") + ("" if ema_decay is None else
                                                               f"_ema{str(ema_decay).split('.')[1]}") + \
        ("" if dropout is None else f"_do{round(100 * dropout):02d}")


def run_path(root: Path, name: str, seed: int) -> Path:
    return root / f"{name}_s{seed}.pt"


def snapshot_path(root: Path, name: str, seed: int, step: int) -> Path:
    return root / f"{name}_s{seed}_ema{step:06d}.pt"


def train(name: str, steps: int, seed: int, root: Path, ae, latents, width: int | None = None,
          ema_decay: float | None = None, dropout: float | None = None) -> float:
    """Train (or resume, or load) one variant; its EMA is saved at every "sample" event. Returns training seconds."""
    preset = variant_preset(name, steps, seed, width=width, ema_decay=ema_decay, dropout=dropout)
    name = run_name(name, width, ema_decay, dropout)

    def keep_ema(event: dict) -> None:
        if event["event"] == "sample":
            dst = snapshot_path(root, name, seed, event["step"])
            tmp = dst.with_suffix(".tmp")
            torch.save(event["ema"].state_dict(), tmp)
            tmp.replace(dst)  # atomic: a stop never leaves half a snapshot

    result, _ = recipes.train_preset(preset, latents, ckpt_path=run_path(root, name, seed), callback=keep_ema,
                                     first_stage=ae)
    return result.history[-1][-1] if result.history else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4000, help="optimizer steps of every run (default 4000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (each variant once per seed)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--width", type=int, default=None, help="the UNet's base width (default: the preset's, 16)")
    p.add_argument("--ema-decay", type=float, default=None, help="the EMA's final decay (default: the preset's)")
    p.add_argument("--dropout", type=float, default=None, help="the UNet's dropout (default: the preset's, 0)")
    p.add_argument("--samplers", nargs="+", default=["ddpm", "ddim"], choices=["ddpm", "ddim"],
                   help="what to measure: ancestral-50 (ddpm) and/or DDIM-50 (the gap needs both)")
    p.add_argument("--n", type=int, default=2000, help="samples per measurement (default 2000)")
    p.add_argument("--sample-seed", type=int, default=1, help="the x_T seed, shared by every row")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--measure-only", action="store_true", help="measure finished runs, train nothing")
    p.add_argument("--train-only", action="store_true", help="train (or resume) the runs, measure nothing")
    p.add_argument("--snapshots", action="store_true", help="also measure DDIM ÷ ancestral at every EMA snapshot")
    p.add_argument("--shipped", action="store_true", help="also measure the shipped latent_mnist (ε) the same way")
    p.add_argument("--dir", default=None, help="where the runs live (default runs/<mode>/param_study)")
    p.add_argument("--json", default=None, help="write every row here")
    args = p.parse_args()
    root = Path(args.dir) if args.dir else runs_dir() / "param_study"
    root.mkdir(parents=True, exist_ok=True)

    if not args.measure_only:
        ae = load_diffusion(shipped("latent_mnist")).first_stage
        latents, _ = recipes.latents(ae, "train", name="param_study")
        for seed in args.seeds:
            for name in args.variants:
                seconds = train(name, args.steps, seed, root, ae, latents, args.width, args.ema_decay, args.dropout)
                print(f"trained {run_name(name, args.width, args.ema_decay, args.dropout)} seed {seed}: {args.steps} steps, "
                      f"{seconds:.0f} s recorded", flush=True)
    if args.train_only:
        return

    ev = Evaluator()
    real = FrechetReference(*feature_stats(ev.embed(ev.real_sets(args.n, args.sample_seed)[0])))
    floor = ev.real_floor_spread(args.n, seed=args.sample_seed)

    def fd(f):
        return real.distance(*feature_stats(f))

    def ratio(a, b):
        return bootstrap(lambda x, y: fd(x) / fd(y), a, b, n_boot=args.n_boot, seed=0, recentre=True)

    print(f"n = {args.n}, x_T seed {args.sample_seed}; real-vs-real floor {floor}")
    print("| variant | training seed | step | sampler | spacing | FD | FD / floor | DDIM ÷ ancestral (paired) |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    rows = []
    names = [run_name(name, args.width, args.ema_decay, args.dropout) for name in args.variants]
    runs = [(name, seed, run_path(root, name, seed)) for seed in args.seeds for name in names]
    if args.shipped:  # the shipped ε-model, 20,000 steps: variant "shipped_eps", its training seed 0
        runs.append(("shipped_eps", 0, shipped("latent_mnist")))
    for name, seed, path in runs:
        model = load_diffusion(path)  # loaded once; snapshots are swapped into it
        last = model.checkpoint_info.get("step", args.steps)
        final_ema = {k: v.clone() for k, v in model.unet.state_dict().items()}
        steps_to_measure = [last]
        if args.snapshots:
            steps_to_measure = sorted({int(f.stem.rsplit("ema", 1)[1]) for f in
                                       root.glob(f"{name}_s{seed}_ema*.pt")} | {last})
        spacings = ["trailing"] + (["leading"] if ZERO_SNR not in model.sched.name else [])
        for step in steps_to_measure:
            model.unet.load_state_dict(final_ema if step == last else
                                       torch.load(snapshot_path(root, name, seed, step), weights_only=True))
            for spacing in spacings if step == last else ["trailing"]:
                feats = {}
                for sampler in args.samplers:
                    t0 = time.perf_counter()
                    x = model.sample(args.n, sampler=sampler, steps=50, spacing=spacing, seed=args.sample_seed)
                    feats[sampler] = ev.embed(x).double().numpy()
                    est = bootstrap(fd, feats[sampler], n_boot=args.n_boot, seed=0, recentre=True)
                    row = dict(variant=name, seed=seed, step=step, sampler=sampler, spacing=spacing,
                               fd=est.value, fd_low=est.low, fd_high=est.high, fd_floor=est.value / floor.value,
                               fd_floor_low=est.low / floor.value, fd_floor_high=est.high / floor.value,
                               seconds=time.perf_counter() - t0)
                    gap = ""
                    if sampler == "ddim" and "ddpm" in feats:
                        r = ratio(feats["ddim"], feats["ddpm"])
                        row.update(ddim_over_ancestral=r.value, gap_low=r.low, gap_high=r.high)
                        gap = f"**{r}**"
                    rows.append(row)
                    print(f"| {name} | {seed} | {step} | {sampler}-50 | {spacing} | {est} | "
                          f"{est.value / floor.value:.2f} [{est.low / floor.value:.2f}, "
                          f"{est.high / floor.value:.2f}] | {gap} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(n=args.n, sample_seed=args.sample_seed, steps=args.steps, floor=floor.value,
                           floor_low=floor.low, floor_high=floor.high, rows=rows), f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
