"""What a model costs: training images per second and seconds per sample, measured.  Notebooks 02, 04 · LDM §4.1.

Used by notebook 04's pixel-vs-latent table and by ``benchmarks/pixel_vs_latent.py``, so the notebook and the
benchmark measure the same thing the same way. Speed does not depend on what a model has learnt, so these run on
random inputs of the model's shape (and work on untrained models too). Timings are wall-clock
(``time.perf_counter``, CUDA synchronised), after warm-up steps (oneDNN / cuDNN pick kernels, the allocator
settles); on a machine that runs anything else at the same time they are meaningless.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from .objective import diffusion_loss
from .schedule import make_schedule


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_rate(model: nn.Module, shape: tuple[int, ...], batch: int = 128, steps: int = 20, warmup: int = 3) -> float:
    """Training images per second of ε_θ ``model`` on inputs of ``shape`` (C, H, W): the L_DM / L_LDM forward,
    backward and an AdamW step per batch. The model's weights change (a throw-away optimizer): pass a copy."""
    device = next(model.parameters()).device
    alpha_bar = make_schedule("linear", 1000).alpha_bar.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    x = torch.randn(batch, *shape, device=device).contiguous(memory_format=torch.channels_last)
    was_training = model.training
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        loss = diffusion_loss(model, x, alpha_bar)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    seconds = time.perf_counter() - t0
    model.train(was_training)
    return batch * steps / seconds


@torch.no_grad()
def sample_cost(model, n: int = 128, steps: int = 50) -> dict:
    """Seconds per image of ``model.sample`` (a :class:`minildm.ldm.DiffusionModel`) with DDIM-``steps``, end to end,
    decode included, for one batch of ``n``. Returns ``dict(ddim, per_nfe, decode, ddpm1000)``: the end-to-end
    s/img, the UNet's s per evaluation per image, the decode's s/img (0 for pixel models), and DDPM-1000's s/img
    derived as 1000 evaluations + one decode (the sampler's own arithmetic is negligible next to the UNet)."""
    device = next(model.unet.parameters()).device
    model.sample(min(n, 8), sampler="ddim", steps=2, seed=0, batch_size=n)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    _, z = model.sample(n, sampler="ddim", steps=steps, seed=0, batch_size=n, return_latents=True)
    _sync(device)
    total = (time.perf_counter() - t0) / n
    decode = 0.0
    if model.is_latent:
        model.decode(z[:8])  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        model.decode(z)
        _sync(device)
        decode = (time.perf_counter() - t0) / n
    per_nfe = (total - decode) / steps
    return dict(ddim=total, per_nfe=per_nfe, decode=decode, ddpm1000=1000 * per_nfe + decode)
