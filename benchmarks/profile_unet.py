"""Where does a UNet step spend its time on CPU?  torch.profiler per-op self time, grouped, for minildm and diffusers.

For each (library, config, batch) this profiles a **train** step (forward, MSE loss, backward, AdamW step) and a
**forward** under ``torch.no_grad()`` (one sampling evaluation), both in ``channels_last`` as the benchmarks run
them, and prints:

* the wall time of one call without the profiler (median of ``--steps`` calls, after ``--warmup``);
* the profiler's self time per op category, as ms per call and % of all op time: ``conv`` (oneDNN convolutions
  and their backward), ``group_norm``, ``attention`` (SDPA / bmm / softmax), ``linear``, ``copy`` (``copy_``,
  ``contiguous``, ``clone``: memory-format changes), ``cat/interp`` (the skips' concatenation, the nearest
  upsampling), ``elementwise`` (SiLU, add, mul and their backward), ``optimizer`` (AdamW's foreach kernels),
  ``other``; and the number of ATen op calls per step;
* ``--top N`` ops by self time.

``fixed cost`` is the wall time of the same call at batch 1: what every call pays whatever the batch (Python,
module calls, op dispatch, kernel set-up). It is what stops a 16× smaller grid from being 16× faster.

    python benchmarks/profile_unet.py                              # cpu preset, batch 128 and 64, both libraries
    python benchmarks/profile_unet.py --configs "latent f=4" --batch 128 64 --top 15
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unet_speed import diffusers  # noqa: E402  (None if diffusers is not installed)
from unet_speed import diffusers_unet  # noqa: E402

from minildm.presets import latent_mnist, pixel_mnist  # noqa: E402
from minildm.unet import UNet, UNetConfig  # noqa: E402

CONFIGS = {
    "cpu preset": (lambda: pixel_mnist("cpu").unet, (1, 32, 32)),
    "base 32": (lambda: UNetConfig(in_channels=1, base_channels=32, channel_mult=(1, 2, 2), attn_levels=(2,)),
                (1, 32, 32)),
    "latent f=4": (lambda: latent_mnist("cpu", f=4).unet, (4, 8, 8)),
}

CATEGORIES = [  # (category, substrings of ATen op names), first match wins
    ("conv", ("convolution", "conv2d", "mkldnn_conv")),
    ("group_norm", ("group_norm",)),
    ("attention", ("scaled_dot_product", "flash_attention", "bmm", "softmax", "baddbmm")),
    ("linear", ("addmm", "aten::mm", "linear", "matmul")),
    ("copy", ("copy_", "contiguous", "clone", "to_dense", "_to_copy")),
    ("cat/interp", ("cat", "upsample", "interpolate")),
    ("optimizer", ("_foreach", "adam")),
    ("elementwise", ("silu", "add", "mul", "sub", "div", "mse", "sum", "neg", "pow", "sqrt", "exp", "sin", "cos",
                     "threshold", "fill_", "zero_")),
]


def category(name: str) -> str:
    for cat, keys in CATEGORIES:
        if any(k in name for k in keys):
            return cat
    return "other"


def make_model(lib: str, cfg: UNetConfig) -> torch.nn.Module:
    torch.manual_seed(0)
    model = UNet(cfg) if lib == "minildm" else diffusers_unet(cfg)
    return model.to(memory_format=torch.channels_last)


def step_fns(model, shape, batch):
    x = torch.randn(batch, *shape).contiguous(memory_format=torch.channels_last)
    eps, t = torch.randn_like(x), torch.randint(0, 1000, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def train():
        model.train()
        loss = F.mse_loss(model(x, t), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forward():
        model.eval()
        with torch.no_grad():
            model(x, t)

    return dict(train=train, forward=forward)


def wall_ms(fn, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def profile_ms(fn, steps: int):
    """(per-category self ms per call, [(op, self ms per call, calls per call)], ATen calls per step)."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    cats, ops, calls = defaultdict(float), [], 0
    for ev in prof.key_averages():
        if not ev.key.startswith("aten::"):
            continue
        ms = ev.self_cpu_time_total / 1e3 / steps
        cats[category(ev.key)] += ms
        ops.append((ev.key, ms, ev.count / steps))
        calls += ev.count
    return cats, sorted(ops, key=lambda o: -o[1]), calls / steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["cpu preset"], choices=list(CONFIGS))
    p.add_argument("--libs", nargs="+", default=["minildm", "diffusers"], choices=["minildm", "diffusers"])
    p.add_argument("--batch", type=int, nargs="+", default=[128, 64])
    p.add_argument("--what", nargs="+", default=["train", "forward"], choices=["train", "forward"])
    p.add_argument("--steps", type=int, default=10, help="timed / profiled calls (default 10)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--top", type=int, default=10, help="ops listed by self time (default 10)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    libs = [lib for lib in a.libs if lib == "minildm" or diffusers is not None]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"diffusers {diffusers.__version__ if diffusers else 'not installed'}; channels_last")
    cols = [c for c, _ in CATEGORIES] + ["other"]
    for name in a.configs:
        make_cfg, shape = CONFIGS[name]
        for what in a.what:
            print(f"\n### {name}, {what}  (ms per call; self time by category from torch.profiler)\n")
            print("| library | batch | wall ms | fixed cost ms (batch 1) | " + " | ".join(cols) + " | ATen calls |")
            print("|---|---:|---:|---:|" + "---:|" * len(cols) + "---:|")
            tops = []
            for lib in libs:
                fixed = wall_ms(step_fns(make_model(lib, make_cfg()), shape, 1)[what], a.warmup, a.steps)
                for batch in a.batch:
                    fn = step_fns(make_model(lib, make_cfg()), shape, batch)[what]
                    wall = wall_ms(fn, a.warmup, a.steps)
                    cats, ops, calls = profile_ms(fn, a.steps)
                    total = sum(cats.values())
                    cells = " | ".join(f"{cats[c]:.1f} ({100 * cats[c] / total:.0f}%)" for c in cols)
                    print(f"| {lib} | {batch} | {wall:.1f} | {fixed:.1f} | {cells} | {calls:.0f} |", flush=True)
                    tops.append((lib, batch, ops[:a.top]))
            for lib, batch, ops in tops:
                print(f"\n{lib}, batch {batch}, top {a.top} ops by self time (ms per call, calls per call):")
                for op, ms, n in ops:
                    print(f"    {op:<48} {ms:8.2f} ms  {n:5.0f}×")


if __name__ == "__main__":
    main()
