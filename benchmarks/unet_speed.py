"""How fast is minildm's UNet? Training and sampling throughput on 32×32×1 inputs, next to diffusers.

Why: the course promises that the cpu-mode models train on a laptop in minutes, and a learner will ask whether
a from-scratch UNet is slower than a library one. This script measures, for each config:

* **train img/s**: one optimisation step is ε_θ(x_t, t) forward, the DDPM loss ‖ε − ε_θ‖² (MSE), backward and
  an AdamW step, on a batch of ``--batch`` random images; ``--warmup`` steps are run first (oneDNN picks its
  kernels, the allocator settles), then ``--steps`` steps are timed with ``time.perf_counter``.
* **sampling s/img**: ``minildm.samplers.ddim_sample`` (η = 0) runs ``--sample-steps`` steps on a batch of 64
  under ``torch.no_grad()``; the time per UNet evaluation and image (ms/img/NFE) is that over steps × 64.
  DDIM-50 = 50 × it, DDPM-1000 = 1000 × it: the UNet is the whole cost, the sampler's arithmetic is negligible.

The reference is ``diffusers.UNet2DModel`` built to the same widths (see :func:`diffusers_unet`), if installed.
``ratio`` = diffusers time / minildm time, so > 1 means minildm is faster. Both models get the same
treatment: ``channels_last`` memory format unless ``--no-channels-last`` (oneDNN's convolutions prefer NHWC).
Random weights and inputs: speed does not depend on what the model has learnt.

    python benchmarks/unet_speed.py                      # the course's presets, batch 128
    python benchmarks/unet_speed.py --quick              # a few steps: checks that everything runs
    python benchmarks/unet_speed.py --configs "cpu preset" --threads 4 --steps 50
"""
from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from minildm.samplers import ddim_sample
from minildm.schedule import make_schedule
from minildm.layers import num_groups
from minildm.unet import UNet, UNetConfig, count_parameters

try:
    import diffusers
except ImportError:
    diffusers = None

SAMPLE_BATCH = 64  # images per sampling batch
H = W = 32  # MNIST padded to 32×32, as in the course


def course_configs() -> tuple[dict[str, UNetConfig], str]:
    """The configs to benchmark and where they came from: the course's presets if present, else a fixed list."""
    base32 = UNetConfig(in_channels=1, base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, attn_levels=(2,))
    try:
        from minildm.presets import pixel_mnist
        return ({"cpu preset": pixel_mnist("cpu").unet, "base 32": base32, "gpu preset": pixel_mnist("gpu").unet},
                "minildm.presets.pixel_mnist (+ base 32)")
    except (ImportError, AttributeError):
        return ({"cpu preset": UNetConfig(in_channels=1, base_channels=16, channel_mult=(1, 2, 4),
                                          num_res_blocks=1, attn_levels=(2,)),
                 "base 32": base32,
                 "gpu preset": UNetConfig(in_channels=1, base_channels=64, channel_mult=(1, 2, 2),
                                          num_res_blocks=2, attn_levels=(2,))},
                "built-in list (minildm/presets.py not found)")


class DiffusersEps(nn.Module):
    """Wraps ``UNet2DModel`` so it is called like minildm's UNet: ``model(x_t, t) -> ε̂`` (a tensor)."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, return_dict=False)[0]


def diffusers_unet(cfg: UNetConfig) -> nn.Module:
    """``diffusers.UNet2DModel`` with minildm's layout: same widths, blocks per level, attention levels and heads.

    Differences diffusers does not let us remove: one GroupNorm group count for the whole network (we take
    minildm's at the narrowest width, which divides every wider one; minildm grows it to 32 with the width),
    and biases on the attention's Q, K, V projections (minildm has none).
    """
    widths = [cfg.base_channels * m for m in cfg.channel_mult]
    attn = set(cfg.attn_levels)
    # diffusers gives a head size, not a head count: heads = width / head_dim at the deepest (mid) level
    head_dim = widths[-1] // cfg.heads
    if any(widths[i] % head_dim for i in attn):
        raise ValueError(f"attention widths {[widths[i] for i in attn]} do not all split into heads of {head_dim}")
    unet = diffusers.UNet2DModel(
        sample_size=H, in_channels=cfg.in_channels, out_channels=cfg.out_channels or cfg.in_channels,
        block_out_channels=tuple(widths), layers_per_block=cfg.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if i in attn else "DownBlock2D" for i in range(len(widths))),
        up_block_types=tuple("AttnUpBlock2D" if i in attn else "UpBlock2D" for i in reversed(range(len(widths)))),
        attention_head_dim=head_dim, norm_num_groups=num_groups(widths[0]),
        attn_norm_num_groups=num_groups(widths[-1]),  # the mid block's attention, as minildm's
        flip_sin_to_cos=True, freq_shift=0, dropout=cfg.dropout,  # [cos, sin] embedding, as minildm's
    )
    return DiffusersEps(unet)


def time_training(model: nn.Module, batch: int, warmup: int, steps: int) -> float:
    """Images per second of forward + MSE loss + backward + AdamW step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x_t = torch.randn(batch, 1, H, W)  # (B, 1, H, W) stands in for q_sample's output
    eps = torch.randn_like(x_t)
    t = torch.randint(0, 1000, (batch,))
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        loss = F.mse_loss(model(x_t, t), eps)  # ‖ε − ε_θ(x_t, t)‖², DDPM Eq. 14
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


def time_sampling(model: nn.Module, sample_steps: int) -> float:
    """Seconds per image per UNet evaluation, from one DDIM run over a batch of SAMPLE_BATCH."""
    model.eval()
    sched = make_schedule("linear", 1000)
    x_T = torch.randn(SAMPLE_BATCH, 1, H, W)  # (B, 1, H, W)
    with torch.no_grad():
        model(x_T, torch.zeros(SAMPLE_BATCH, dtype=torch.long))  # warm-up: first eval-mode call
        start = time.perf_counter()
        ddim_sample(model, x_T, sched, steps=sample_steps)
    return (time.perf_counter() - start) / (sample_steps * SAMPLE_BATCH)


def measure(model: nn.Module, args) -> dict:
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    per_nfe = time_sampling(model, args.sample_steps)
    return dict(params=count_parameters(model), train=time_training(model, args.batch, args.warmup, args.steps),
                nfe=per_nfe, ddim50=50 * per_nfe, ddpm1000=1000 * per_nfe)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> None:
    configs, source = course_configs()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=128, help="training batch size (default 128)")
    p.add_argument("--steps", type=int, default=20, help="timed training steps (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed training steps first (default 3)")
    p.add_argument("--sample-steps", type=int, default=50, help="DDIM steps timed for sampling (default 50)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: torch's)")
    p.add_argument("--configs", nargs="+", default=list(configs), metavar="NAME",
                   help=f"configs to run (default: all of {list(configs)})")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="keep NCHW instead of channels_last (applied to both libraries)")
    p.add_argument("--quick", action="store_true", help="tiny step counts: checks that it runs, times mean nothing")
    args = p.parse_args(argv)
    unknown = [c for c in args.configs if c not in configs]
    if unknown:
        p.error(f"unknown config(s) {unknown}; choose from {list(configs)} (quote names with spaces)")
    if args.quick:
        args.batch, args.steps, args.warmup, args.sample_steps = min(args.batch, 16), 2, 1, 2
    torch.set_num_threads(args.threads)

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"cpu: {cpu_model()}, {torch.multiprocessing.cpu_count()} cores; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; diffusers {diffusers.__version__ if diffusers else 'not installed'}")
    print(f"configs from {source}; input {H}x{W}x1; train batch {args.batch}, {args.warmup} warm-up + {args.steps} "
          f"timed steps; sampling batch {SAMPLE_BATCH}, DDIM {args.sample_steps} steps; "
          f"channels_last={args.channels_last}" + ("  [--quick: timings are not meaningful]" if args.quick else ""))
    if diffusers is None:
        print("diffusers is not installed, so only minildm is measured; `pip install diffusers` adds the comparison.")
    print()
    print("| config | library | params | train img/s | ms/img/NFE | DDIM-50 s/img | DDPM-1000 s/img "
          "| ratio train | ratio sample |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.configs:
        cfg = configs[name]
        torch.manual_seed(0)
        ours = measure(UNet(cfg), args)
        rows = [("minildm", ours, "", "")]
        if diffusers is not None:
            ref = measure(diffusers_unet(cfg), args)
            # ratio = diffusers time / minildm time (> 1: minildm faster); train time ∝ 1 / throughput
            rows.append(("diffusers", ref, f"{ours['train'] / ref['train']:.2f}", f"{ref['nfe'] / ours['nfe']:.2f}"))
        for lib, r, rt, rs in rows:
            print(f"| {name} | {lib} | {r['params'] / 1e6:.2f}M | {r['train']:.1f} | {r['nfe'] * 1e3:.3f} | "
                  f"{r['ddim50']:.3f} | {r['ddpm1000']:.2f} | {rt} | {rs} |", flush=True)


if __name__ == "__main__":
    main()
