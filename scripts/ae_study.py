"""Does the patch-GAN earn its place at MNIST scale?  The f = 4 autoencoder, with and without it, over seeds.

Issue 13, defect 2. Each run is the cpu preset of notebook 03 (``presets.autoencoder_mnist("cpu", f=4, variant=…)``,
1,000 steps at batch 64, the learning rate ×0.1 from step 400, D_ψ training from step 400 and L_adv in the decoder's
loss from step 500), with its training seed replaced. Seed 0 writes the very checkpoints notebook 03 trains
(``runs/cpu/autoencoder_mnist_f4.pt`` and ``…_l1_perceptual.pt``), so the notebook loads them; the other seeds go to
``runs/cpu/ae_study/``. A finished run is loaded, not retrained, so the script can be stopped, resumed, split over
processes (``--variants full`` in one, ``--variants l1+perceptual`` in the other) and re-run to print the table.

Measured on held-out test digits (set A: the first 2,000) against 2,000 other real test digits (set B: the next
2,000, from the same writers):

* PSNR and SSIM of the reconstructions of A;
* FD of the reconstructions of A to B, in the judge's features (``mnist_judge.pt``: no loss touched it), beside the
  floor FD(A, B): a reconstruction set as good as the originals sits at 1× (bootstrap over images, recentred);
* the judge's accuracy on the reconstructions (all with 95% bootstrap intervals over the images:
  ``Evaluator.reconstruction_report``);
* D_ψ's accuracy on A's patches and their reconstructions' (logit > 0 read as real; chance 50%), and the gap
  D(x) − D(x̃) and λ over the last 100 training steps.

    python scripts/ae_study.py                                    # everything, ~60 min on 2 cores
    python scripts/ae_study.py --seeds 0 1 2 --variants full      # one process' share
    python scripts/ae_study.py --seeds 0 --variants full --probe  # + D_ψ trained alone on its reconstructions
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from minildm import config, evaluate, presets, recipes
from minildm.checkpoint import load_checkpoint
from minildm.classifier import load_classifier
from minildm.data import mnist
from minildm.autoencoder import AutoencoderKL
from minildm.losses import PatchDiscriminator, hinge_d_loss
from minildm.uncertainty import over_repeats

from gan_diagnosis import d_accuracy  # scripts/ is on sys.path when a script in it runs


def run_path(preset, seed: int):
    runs = config.runs_dir("cpu")
    if seed == 0 and preset.name in ("autoencoder_mnist_f4", "autoencoder_mnist_f4_l1_perceptual", "autoencoder_mnist_f4_l1"):
        return runs / f"{preset.name}.pt"  # notebook 03's own checkpoints
    return runs / "ae_study" / f"{preset.name}_seed{seed}.pt"


def train_or_load(variant: str, seed: int, x_train, clf, gan_start: int = 0):
    p = presets.autoencoder_mnist("cpu", f=4, variant=variant)
    p = dataclasses.replace(p, train=dataclasses.replace(p.train, seed=seed))
    if gan_start and p.disc_base:  # the same run until D_ψ starts; L_adv joins later, after a longer head start
        lead = gan_start - p.train.lr_drop_at
        p = dataclasses.replace(p, name=f"{p.name}_gan{gan_start}",
                                loss=dataclasses.replace(p.loss, disc_start=gan_start, disc_lead=lead))
    path = run_path(p, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if variant == "full" and seed == 0 and not gan_start:  # notebook 03's main model: first_stage also writes its scale factor
        model, history, _ = recipes.first_stage(p, x_train, feature_net=clf, ckpt_path=path, progress=False)
    else:
        r = recipes.train_autoencoder_preset(p, x_train, feature_net=clf, ckpt_path=path, progress=False)
        model, history = r.model, r.history
    print(f"{variant} seed {seed}: {len(history)} steps ({history[-1][-1] / 60:.1f} min of training; "
          f"{time.perf_counter() - t0:.0f} s in this call) → {path}", flush=True)
    disc = None
    if p.disc_base:
        disc = PatchDiscriminator(1, p.disc_base, p.disc_layers)
        disc.load_state_dict(load_checkpoint(path, kind="autoencoder_kl")["disc"])
        disc.eval()
    return p, model.eval(), disc, history


@torch.no_grad()
def measure(model, disc, history, x_a, y_a, x_b, judge: evaluate.Evaluator, p) -> dict:
    x_rec = torch.cat([model(x_a[i:i + 500], sample_posterior=False)[0] for i in range(0, len(x_a), 500)]).clamp(-1, 1)
    rep = judge.reconstruction_report(x_rec, x_a, y_a, x_b)
    out = {k: dict(value=e.value, low=e.low, high=e.high) for k, e in rep.items() if k != "n"}
    last = [r for r in history if r[0] >= p.train.steps - 100]
    if disc is not None:
        out["d_acc"] = d_accuracy(disc, x_a, x_rec)
        out["d_gap_last100"] = float(np.mean([r[6] - r[7] for r in last]))
        out["lam_last100"] = float(np.mean([r[5] for r in last]))
    out["rec_last100"] = float(np.mean([r[1] for r in last]))
    return out


def probe_discriminator(path, preset, lrs=(1e-3, 4e-3), steps=400, seed=0) -> None:
    """Can D_ψ tell these reconstructions apart at all, given time? A fresh PatchGAN trained alone (hinge loss,
    the recipe's optimiser) on 4,096 training digits and their reconstructions by the finished autoencoder at
    ``path``, which does not move; its patch accuracy on 1,000 held-out digits and their reconstructions."""
    model = AutoencoderKL(preset.ae)
    model.load_state_dict(load_checkpoint(path, kind="autoencoder_kl")["model"])
    model.eval()
    x, _ = mnist("train", n=4096)
    xv, _ = mnist("test", n=1000)
    with torch.no_grad():
        xr, xvr = (torch.cat([model(a[i:i + 512], sample_posterior=False)[0] for i in range(0, len(a), 512)])
                   for a in (x, xv))
    for lr in lrs:
        torch.manual_seed(seed)
        disc = PatchDiscriminator(1, preset.disc_base, preset.disc_layers)
        opt = torch.optim.AdamW(disc.parameters(), lr=lr, betas=(0.5, 0.9), weight_decay=0.0)
        g, out = torch.Generator().manual_seed(seed), []
        for step in range(1, steps + 1):
            idx = torch.randint(len(x), (preset.train.batch_size,), generator=g)
            loss = hinge_d_loss(disc(x[idx]), disc(xr[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step in (50, 100, 200, 400, steps):
                acc = d_accuracy(disc, xv, xvr)
                out.append(f"step {step}: hinge {loss.item():.3f}, held-out accuracy {acc:.1%}")
        print(f"D_ψ alone, lr {lr:g}, on {path.name}'s reconstructions: " + " | ".join(dict.fromkeys(out)), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=["full", "l1+perceptual"])
    ap.add_argument("--gan-start", type=int, default=0,
                    help="L_adv joins at this step instead of the preset's 500 (D_ψ still from the lr drop at 400)")
    ap.add_argument("--probe", action="store_true",
                    help="also train a fresh D_ψ alone on each finished GAN run's reconstructions (probe_discriminator)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", default=None, help="also write the measurements here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x_train, _ = mnist("train", size=32)
    x_test, y_test = mnist("test", size=32)
    # disjoint: A reconstructed, B the reference; both from the test set's first half (NIST's SD-3 writers: its
    # second half, SD-1, is another population: FD 5.8 across the halves vs 1.1 within the first, n = 2,000)
    x_a, y_a, x_b = x_test[:2000], y_test[:2000], x_test[2000:4000]
    judge = evaluate.Evaluator()
    floor = judge.fid(x_a, x_b)
    clf = load_classifier()  # the perceptual-loss network (not the judge)
    rows = {}
    for seed in args.seeds:
        for variant in args.variants:
            p, model, disc, history = train_or_load(variant, seed, x_train, clf, args.gan_start)
            rows[(variant, seed)] = measure(model, disc, history, x_a, y_a, x_b, judge, p)
            if args.probe and p.disc_base:
                probe_discriminator(run_path(p, seed), p)
    print(f"\nfloor FD(A, B), judge features, n = 2,000 each: {floor:.2f}")
    print("| variant | seed | PSNR dB | SSIM | FD(x̃_A, B) | FD / floor | judge acc | D acc | D(x)−D(x̃), last 100 | λ, last 100 |")
    print("|---|---:|---|---|---|---|---|---:|---:|---:|")

    def e(m, fmt=".2f", scale=1.0):
        return f"{m['value'] * scale:{fmt}} [{m['low'] * scale:{fmt}}, {m['high'] * scale:{fmt}}]"

    for (variant, seed), m in rows.items():
        d = (f"{m['d_acc']:.1%} | {m['d_gap_last100']:+.3f} | {m['lam_last100']:.3g}" if "d_acc" in m else "— | — | —")
        print(f"| {variant} | {seed} | {e(m['psnr'])} | {e(m['ssim'], '.3f')} | {e(m['fd'])} | {e(m['fd_ratio'])} | "
              f"{e(m['accuracy'], '.1f', 100)}% | {d} |")
    print("\nover seeds (mean [min, max]):")
    for variant in args.variants:
        ms = [m for (v, _), m in rows.items() if v == variant]
        if len(ms) < 2:
            continue
        print(f"  {variant:>14}: PSNR {over_repeats([m['psnr']['value'] for m in ms], 'seeds')} dB, "
              f"SSIM {over_repeats([m['ssim']['value'] for m in ms], 'seeds')}, "
              f"FD/floor {over_repeats([m['fd_ratio']['value'] for m in ms], 'seeds')}, "
              f"judge acc {over_repeats([m['accuracy']['value'] for m in ms], 'seeds')}"
              + (f", D acc {over_repeats([m['d_acc'] for m in ms], 'seeds')}" if "d_acc" in ms[0] else ""))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(floor=floor, rows=[dict(variant=v, seed=s, **m) for (v, s), m in rows.items()]), fh, indent=1)


if __name__ == "__main__":
    main()
