"""What does latent diffusion buy? Pixel vs latent diffusion at a matched UNet, side by side.  Notebook 04 · LDM §4.1.

The paper's central claim (LDM §3.2, §4.1, Fig. 6): running ε_θ on z = s·ℰ(x) instead of on x costs far less.
This script measures it on this machine for the course's own models:

* **pixel**: ``minildm.presets.pixel_mnist(mode)``'s UNet on x (B, 1, 32, 32) — notebook 02;
* **latent f=F**: ``minildm.presets.latent_mnist(mode, f=F)``'s UNet — the *same* widths, depths and attention
  (only its input has the latent's 4 channels) — on z (B, 4, 32/F, 32/F), plus the decoder 𝒟 of
  ``autoencoder_mnist(mode, f=F)`` once per sample — notebook 04.

Columns (the timings come from :mod:`minildm.cost`, as notebook 04's table):

* ``train img/s``: one optimisation step = L_DM / L_LDM forward, backward and AdamW, on a batch of ``--batch``
  random inputs of the model's shape (speed does not depend on content, so random weights and inputs; the
  first stage is *not* in the loop: LDM encodes the data set once, and notebook 04 caches the latents);
  ``--warmup`` steps first, then ``--steps`` timed with ``time.perf_counter``.
* ``DDIM-50 s/img``: ``DiffusionModel.sample`` end to end (50 UNet evaluations, and for latent models the decode
  𝒟(z/s)), ``--sample-batch`` images per batch, per image.
* ``DDPM-1000 s/img``: 1000 UNet evaluations per image, from the measured time per evaluation, + the decode.
* ``× train``, ``× sample``: pixel time / latent time (> 1: latent is faster). docs/DESIGN.md's target: ≥ 10 at f = 4.

    python benchmarks/pixel_vs_latent.py                 # cpu-mode presets, f = 2, 4, 8
    python benchmarks/pixel_vs_latent.py --quick         # a few steps: checks that everything runs
"""
from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys

import torch

from minildm import presets, recipes
from minildm.autoencoder import AutoencoderKL
from minildm.cost import sample_cost, train_rate
from minildm.unet import count_parameters


def build(mode: str, f: int, device) -> "presets.DiffusionModel":
    preset = presets.pixel_mnist(mode) if f == 1 else presets.latent_mnist(mode, f=f)
    unet = recipes.build_unet(preset, device=device)
    ae = None
    if f > 1:
        torch.manual_seed(0)
        ae = AutoencoderKL(presets.autoencoder_mnist(mode, f=f).ae).to(device).eval()
        if device.type == "cpu":
            ae = ae.to(memory_format=torch.channels_last)
    return recipes.to_model(preset, unet, ae)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", default="cpu", choices=["smoke", "cpu", "gpu"], help="whose presets (default cpu)")
    p.add_argument("--f", type=int, nargs="+", default=[2, 4, 8], help="latent downsampling factors (default 2 4 8)")
    p.add_argument("--batch", type=int, default=128, help="training batch (default 128)")
    p.add_argument("--steps", type=int, default=20, help="timed training steps (default 20)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--sample-batch", type=int, default=128, help="images per sampling batch (default 128)")
    p.add_argument("--sample-steps", type=int, default=50, help="DDIM steps (default 50)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help="2 steps of everything: a check that it runs")
    a = p.parse_args(argv)
    if a.quick:
        a.steps, a.warmup, a.sample_steps, a.batch, a.sample_batch = 2, 1, 2, 16, 8
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    rows = []
    for f in [1] + [f for f in a.f if f != 1]:
        model = build(a.mode, f, device)
        shape = model.sample_shape
        train = train_rate(model.unet, shape, a.batch, a.steps, a.warmup)
        c = sample_cost(model, a.sample_batch, a.sample_steps)
        rows.append(dict(name="pixel" if f == 1 else f"latent f={f}", grid="x".join(map(str, shape)),
                         params=count_parameters(model.unet), train=train, ddim=c["ddim"], ddpm=c["ddpm1000"],
                         decode=c["decode"]))
        print(f"  measured {rows[-1]['name']}", file=sys.stderr, flush=True)

    cpu = platform.processor() or platform.machine()
    print(f"command: {shlex.join([sys.executable] + sys.argv)}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"device: {device} ({cpu}, {torch.get_num_threads()} threads); torch {torch.__version__}")
    print(f"presets: {a.mode} mode; train batch {a.batch}, {a.warmup} warm-up + {a.steps} timed steps; "
          f"sampling batch {a.sample_batch}, DDIM {a.sample_steps} steps (+ decode for latent models)\n")
    print(f"| model | ε_θ input | UNet params | train img/s | DDIM-{a.sample_steps} s/img | decode s/img "
          f"| DDPM-1000 s/img | × train | × sample DDIM | × sample DDPM |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    px = rows[0]
    for r in rows:
        ratios = ("", "", "") if r is px else (f"{r['train'] / px['train']:.1f}", f"{px['ddim'] / r['ddim']:.1f}",
                                               f"{px['ddpm'] / r['ddpm']:.1f}")
        print(f"| {r['name']} | {r['grid']} | {r['params'] / 1e6:.2f}M | {r['train']:.0f} | {r['ddim']:.4f} "
              f"| {r['decode']:.4f} | {r['ddpm']:.3f} | {' | '.join(ratios)} |")


if __name__ == "__main__":
    main()
