"""Inpainting in pixel space vs in latent space, one UNet, one budget: a small LDM Table 6.  Notebook 08 · LDM §4.5.

LDM Table 6 trains the same inpainting model on pixels (LDM-1) and on f = 4 latents, and compares training and
sampling throughput and FID (§4.5 reports the latent models at least 2.7× faster and at least 1.6× better in FID).
This script does the same on MNIST, both models trained from scratch here:

* **latent f=4**: ``minildm.presets.latent_mnist_inpaint(mode)``, ε_θ([z_t, c], t) on z = s·ℰ(x) (4, 8, 8) with
  c = [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), m↓] (:func:`minildm.pairs.inpaint_condition`): in_channels 4 + 5, on the f = 4
  first stage of ``recipes.first_stage(presets.autoencoder_mnist(mode, f=4))`` (trained, or loaded when
  ``runs/<mode>/`` has it; ``--first-stage shipped`` takes the one inside the shipped ``latent_mnist_inpaint``);
* **pixel**: the *same* UNetConfig (widths, levels, attention, residual blocks) on x (1, 32, 32) with
  c = [x ⊙ (1 − m), m] at full resolution (:func:`minildm.pairs.pixel_inpaint_condition`): in_channels 1 + 2,
  out_channels 1, a :class:`~minildm.concat.ConcatUNet` with f = 1 (:func:`pixel_preset`).

Both train for ``--steps`` steps with the same batch, learning-rate schedule (the preset's, its ×0.1 drop kept at
the same fraction of the run), seed, and training pairs: every training digit under the 4 masks of seeds 0–3
(:func:`minildm.pairs.random_masks`, as :func:`minildm.recipes.concat_pairs` makes them), into
``runs/<mode>/table6/<name>.pt`` (re-running resumes, and a finished run just loads; the latent run on the shipped
autoencoder is ``latent_mnist_inpaint_shipped_ae.pt``). The latent model trains on pairs encoded once beforehand
(LDM §3.2): the first stage's training and encoding are not in its throughput.

Columns:

* ``train img/s``, ``train wall s``: from the training run itself, steps × batch over the training loop's recorded
  wall time (the checkpoint's history, across resumes; checkpoint writes and the EMA update included);
* ``DDIM-50 s/img``: the whole fill of the n test digits (latent: ℰ of the masked digit, 50 DDIM steps in z, 𝒟;
  pixel: 50 DDIM steps on x), after a 2-step warm-up, per image;
* ``judge acc``: the independent judge (``minildm/weights/mnist_judge.pt``) reads the filled digit, known pixels
  pasted back (:func:`minildm.pairs.paste_known`), as its true label; ``FD/floor``: FD(filled, reference) /
  FD(x, reference), the reference n other test digits, resampled in pairs
  (:meth:`minildm.evaluate.Evaluator.reconstruction_report`, as ``scripts/measure_restoration.py``); both with
  95% bootstrap intervals over the images;
* ``outside-mask error``: mean |fill − x| over the known half *before* pasting, in [0, 1] units.

The test digits are n MNIST test digits (``evaluate.real_test_sets``, ``--seed``), right half masked. The ratio
line is pixel time / latent time (> 1: latent is faster).

    python benchmarks/inpaint_pixel_vs_latent.py                        # cpu mode: 1,500 steps each, n = 500
    python benchmarks/inpaint_pixel_vs_latent.py --first-stage shipped --json benchmarks/table6.json
    MINILDM_MODE=smoke python benchmarks/inpaint_pixel_vs_latent.py --n 32 --steps 20   # checks that it runs
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import shlex
import sys
import time

import torch

from minildm import presets, recipes
from minildm.config import get_device, get_mode, runs_dir
from minildm.data import mnist
from minildm.evaluate import Evaluator, real_test_sets
from minildm.ldm import DiffusionModel
from minildm.pairs import error_outside_mask, half_mask, masked_image, paste_known, pixel_inpaint_condition
from minildm.presets import DiffusionPreset
from minildm.release import load_diffusion
from minildm.restoration import inpaint
from minildm.uncertainty import Estimate, bootstrap_mean
from minildm.unet import count_parameters

DEFAULT_STEPS = dict(smoke=None, cpu=1500, gpu=None)  # training steps per model; None: the latent preset's own
SAMPLE_STEPS = 50  # DDIM steps (η = 0) for both models


# ------------------------------------------------------------------------------------------ the two presets
def pixel_preset(latent: DiffusionPreset) -> DiffusionPreset:
    """The latent inpainting preset moved to pixels: the same UNetConfig but for its input and output channels,
    ε_θ([x_t, c], t) on x (1, 32, 32), c = [x ⊙ (1 − m), m] (2 channels), f = 1, and pixel sampling's x̂_0 clamp
    (``pixel_mnist``'s). Training settings, schedule and sampling steps are the latent preset's."""
    C = 1  # MNIST's one channel: x_t and ε
    cond = C + 1  # [x ⊙ (1 − m), m]
    unet = dataclasses.replace(latent.unet, in_channels=C + cond, out_channels=C)
    return dataclasses.replace(latent, name="pixel_mnist_inpaint", unet=unet, f=1, image_size=32, kind="pixel_mnist",
                               clip_x0=presets.pixel_mnist(latent.mode).clip_x0,
                               conditioning=dict(type="concat", task="inpaint", latent_channels=C,
                                                 condition_channels=cond, size=32))


def table6_presets(mode: str, steps: int | None = None, batch: int | None = None):
    """``(latent, pixel)``: ``latent_mnist_inpaint(mode, known_pixels=False)`` with ``steps`` training steps (its lr
    drop moved to the same fraction of the run: cpu's 10,000 of 12,000 becomes 1,250 of 1,500) and ``batch``, and its
    pixel twin. The latent model's c is LDM's, [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), m↓], without the shipped preset's known
    pixels (the table compares the two spaces, not the two conditions)."""
    latent = presets.latent_mnist_inpaint(mode, known_pixels=False)
    train = latent.train
    if steps is not None and steps != train.steps:
        drop = round(train.lr_drop_at * steps / train.steps) if train.lr_drop_at else 0
        train = dataclasses.replace(train, steps=steps, lr_drop_at=drop)
    if batch is not None:
        train = dataclasses.replace(train, batch_size=batch)
    latent = dataclasses.replace(latent, train=train)
    return latent, pixel_preset(latent)


def pixel_pairs(pixel: DiffusionPreset, images: torch.Tensor):
    """The pixel model's training pairs (x, c): :func:`minildm.recipes.concat_pairs` on the pixel preset, each digit
    under the masks of seeds 0, 1, … (the very masks the latent model gets), c = [x ⊙ (1 − m), m]:
    ((K·N, 1, 32, 32), (K·N, 2, 32, 32))."""
    return recipes.concat_pairs(pixel, None, images, images)


# ------------------------------------------------------------------------------------------ training
def first_stage_for(latent: DiffusionPreset, which: str, device):
    """The frozen f = 4 autoencoder, a line saying where it came from (its training is not counted), and the tag
    that keeps a latent run (and its latent cache) on one autoencoder: "" or "_shipped_ae"."""
    if which == "shipped":
        ae = load_diffusion("latent_mnist_inpaint", map_location=device).first_stage
        return ae, "the f = 4 autoencoder inside minildm/weights/latent_mnist_inpaint.pt (cpu preset)", "_shipped_ae"
    ae, history, path = recipes.first_stage(presets.autoencoder_mnist(latent.mode, f=latent.f))
    seconds = f", {history[-1][-1]:.0f} s recorded" if history else ""
    return ae, f"{path} ({len(history)} steps{seconds}; not counted below)", ""


def train_both(latent: DiffusionPreset, pixel: DiffusionPreset, ae, ae_tag: str = "", progress: bool = True) -> dict:
    """Train (or resume, or load) both into ``runs/<mode>/table6/``: {name: (DiffusionModel, history)}. The latent
    run's file carries ``ae_tag``, so a run on one autoencoder is never resumed, or loaded, on another's latents."""
    out = runs_dir(latent.mode) / "table6"
    images, _ = mnist("train", size=latent.image_size, n=latent.n_train)
    runs = {}
    for preset in (latent, pixel):
        if preset.f > 1:  # z = s·ℰ(x) once (cached), then c from the masked digits: recipes.train's concat path
            z, _ = recipes.latents(ae, "train", n=latent.n_train, name=f"f{latent.f}{ae_tag}", mode=latent.mode)
            data, c = recipes.concat_pairs(preset, ae, images, z)
        else:
            data, c = pixel_pairs(preset, images)
        first = ae if preset.f > 1 else None
        name = preset.name + (ae_tag if preset.f > 1 else "")
        result, _ = recipes.train_preset(preset, data, labels=c, ckpt_path=out / f"{name}.pt",
                                         progress=progress, first_stage=first)
        del data, c  # the pixel pairs are ~3 GB at 60,000 digits: free the latent ones first
        runs[preset.name] = (recipes.to_model(preset, result.ema, first), result.history)
    return runs


def throughput(history: list, batch: int) -> tuple[int, float, float]:
    """(steps, img/s, wall s) of a training run from its history rows (step, loss, lr, grad_norm, seconds)."""
    steps, seconds = history[-1][0], history[-1][-1]
    return steps, steps * batch / seconds, seconds


# ------------------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def fill(model: DiffusionModel, x: torch.Tensor, m: torch.Tensor, steps: int = SAMPLE_STEPS, seed: int = 0,
         batch_size: int = 256) -> torch.Tensor:
    """The model's fill of digits x (n, 1, 32, 32) in [−1, 1] under masks m, *not* pasted, in [−1, 1]: the latent
    model through :func:`minildm.restoration.inpaint` (ℰ, DDIM in z, 𝒟), the pixel one by
    :meth:`~minildm.ldm.DiffusionModel.sample` on c = [x ⊙ (1 − m), m] (there is no ℰ to go through)."""
    kw = dict(seed=seed, steps=steps, sampler="ddim", batch_size=batch_size)
    if model.is_latent:
        return inpaint(model, (x + 1) / 2, m, paste=False, **kw) * 2 - 1
    return model.sample(len(x), y=pixel_inpaint_condition(x, m), **kw).cpu()


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model: DiffusionModel, ev: Evaluator, x, labels, ref, m, batch_size: int) -> dict:
    """Sampling time per image, and the judge's accuracy, FD / floor and the outside-mask error of the fill."""
    device = next(model.unet.parameters()).device
    fill(model, x[:8], m[:8], steps=2, batch_size=batch_size)  # warm-up: kernels picked, allocator settled
    sync(device)
    t0 = time.perf_counter()
    raw = fill(model, x, m, batch_size=batch_size)
    sync(device)
    seconds = (time.perf_counter() - t0) / len(x)
    r = ev.reconstruction_report(paste_known(raw, x, m), x, labels, ref)
    return dict(sample_s=seconds, accuracy=r["accuracy"], fd_ratio=r["fd_ratio"],
                outside=bootstrap_mean(error_outside_mask((raw + 1) / 2, (x + 1) / 2, m).numpy()))


def plain(v):
    """An Estimate as JSON (value, interval, n); anything else as it is."""
    return v.to_dict() if isinstance(v, Estimate) else v


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["smoke", "cpu", "gpu"], default=None,
                   help="whose presets (default: MINILDM_MODE, else by hardware)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps for each model (default: cpu 1500; smoke and gpu the latent preset's)")
    p.add_argument("--batch", type=int, default=None, help="training batch (default: the latent preset's)")
    p.add_argument("--n", type=int, default=500, help="test digits to inpaint (default 500)")
    p.add_argument("--seed", type=int, default=0, help="which test digits, and the sampling seed")
    p.add_argument("--sample-batch", type=int, default=256, help="images per sampling batch (default 256)")
    p.add_argument("--first-stage", choices=["train", "shipped"], default="train",
                   help="train: recipes.first_stage (trained, or loaded from runs/<mode>/); shipped: the f = 4 "
                        "autoencoder inside minildm/weights/latent_mnist_inpaint.pt")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--json", default=None, help="also write the rows here")
    a = p.parse_args(argv)
    mode = a.mode or get_mode()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.steps is not None and a.steps < 1:
        p.error(f"--steps {a.steps}: train each model at least one step")
    if not 1 <= a.n <= 5000:
        p.error(f"--n {a.n}: needs 1 ≤ n and 2n ≤ 10000 test digits (the digits and a disjoint FD reference)")
    device = get_device()
    latent, pixel = table6_presets(mode, a.steps if a.steps is not None else DEFAULT_STEPS[mode], a.batch)

    ae, ae_note, ae_tag = first_stage_for(latent, a.first_stage, device)
    runs = train_both(latent, pixel, ae, ae_tag)

    x, labels, ref = real_test_sets(a.n, a.seed)
    m = half_mask(a.n, x.shape[-1], "right")
    ev = Evaluator()
    base = ev.reconstruction_report(masked_image(x, m), x, labels, ref)
    rows = [dict(name="masked input (no model)", input="—", params=None, steps=None, train_rate=None,
                 train_s=None, sample_s=None, accuracy=base["accuracy"], fd_ratio=base["fd_ratio"], outside=0.0)]
    for preset in (latent, pixel):
        model, history = runs[preset.name]
        steps, rate, wall = throughput(history, preset.train.batch_size)
        unet = model.unet
        space = "z_t" if preset.f > 1 else "x_t"
        rows.append(dict(name=f"{'latent f=4' if preset.f > 1 else 'pixel'} ({preset.name})",
                         input=f"[{space}, c] {unet.cfg.in_channels}×{unet.size}×{unet.size}",
                         params=count_parameters(unet), steps=steps, train_rate=rate, train_s=wall,
                         **measure(model, ev, x, labels, ref, m, a.sample_batch)))
        print(f"  measured {preset.name}", file=sys.stderr, flush=True)

    t = latent.train
    cpu = platform.processor() or platform.machine()
    command, date = shlex.join([sys.executable] + sys.argv), datetime.datetime.now().isoformat(timespec="seconds")
    print(f"command: {command}")
    print(f"date: {date}")
    print(f"device: {device} ({cpu}, {torch.get_num_threads()} threads); torch {torch.__version__}")
    print(f"presets: {mode} mode; {latent.name} and its pixel twin, the same UNetConfig; each {t.steps} steps × batch "
          f"{t.batch_size}, lr {t.lr:g} (warm-up {t.warmup}" + (f", ×{t.lr_drop:g} from step {t.lr_drop_at}"
                                                                  if t.lr_drop_at else "")
          + f"), seed {t.seed}; {recipes.INPAINT_MASKS_PER_IMAGE} masks per training digit (random_masks seeds "
          f"0–{recipes.INPAINT_MASKS_PER_IMAGE - 1}); checkpoints {runs_dir(mode) / 'table6'}/")
    print(f"first stage: {ae_note}")
    print(f"evaluation: n = {a.n} MNIST test digits (seed {a.seed}), right half masked; DDIM {SAMPLE_STEPS} steps "
          f"(η = 0, seed {a.seed}, batch {a.sample_batch}), known pixels pasted back; the judge "
          "minildm/weights/mnist_judge.pt; 95% bootstrap intervals over the images; FD / floor = FD(fill, ref) / "
          f"FD(x, ref), ref {a.n} other test digits, resampled in pairs; outside-mask error unpasted, [0, 1] units\n")
    if rows[1]["steps"] != rows[2]["steps"]:
        print(f"**unequal budgets**: the checkpoints hold {rows[1]['steps']} and {rows[2]['steps']} steps "
              "(trained before with another --steps); delete them to compare at one budget\n")
    print(f"| model | ε_θ input | UNet params | train img/s | train wall s | DDIM-{SAMPLE_STEPS} s/img "
          "| judge acc [95% CI] | FD/floor [95% CI] | outside-mask error |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cost = ("—",) * 4 if r["params"] is None else (
            f"{r['params'] / 1e6:.3f}M", f"{r['train_rate']:.0f}", f"{r['train_s']:.1f}", f"{r['sample_s']:.4f}")
        outside = f"{r['outside']:.3f}" if isinstance(r["outside"], Estimate) else f"{r['outside']:.3f} (input)"
        print(f"| {r['name']} | {r['input']} | {' | '.join(cost)} | {r['accuracy']:.1%} | {r['fd_ratio']:.2f} "
              f"| {outside} |")
    lat, px = rows[1], rows[2]
    ratios = dict(train=px["train_s"] / lat["train_s"], sample=px["sample_s"] / lat["sample_s"])
    print(f"\npixel / latent: training wall time ×{ratios['train']:.1f} ({px['train_rate']:.0f} vs "
          f"{lat['train_rate']:.0f} img/s), DDIM-{SAMPLE_STEPS} time per image ×{ratios['sample']:.1f} (the latent "
          "model's ℰ and 𝒟 included)")
    result = dict(command=command, date=date, device=str(device), threads=torch.get_num_threads(), mode=mode,
                  steps=t.steps, batch=t.batch_size, n=a.n, seed=a.seed, sample_steps=SAMPLE_STEPS,
                  first_stage=ae_note, ratios=ratios, rows=[{k: plain(v) for k, v in r.items()} for r in rows])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {a.json}")
    return result


if __name__ == "__main__":
    main()
