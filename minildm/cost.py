"""What a model costs: training images per second and seconds per sample, measured.  Notebooks 02, 04 · LDM §4.1.

Used by notebook 04's pixel-vs-latent table and by ``benchmarks/pixel_vs_latent.py``, so the notebook and the
benchmark measure the same thing the same way; :func:`training_memory` estimates a GPU preset's training memory on
a CPU (``tests/test_gpu_presets.py``, ``scripts/gpu_check.py``). Speed does not depend on what a model has learnt, so these run on
random inputs of the model's shape (and work on untrained models too). Timings are wall-clock
(``time.perf_counter``, CUDA synchronised), after warm-up steps (oneDNN / cuDNN pick kernels, the allocator
settles); on a machine that runs anything else at the same time they are meaningless.
"""
from __future__ import annotations

import time
import weakref

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

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


# ------------------------------------------------------------------------------------------ memory, estimated
class PeakMemory(TorchDispatchMode):
    """Counts the bytes of every tensor storage created while active and still alive: ``live`` now, ``peak`` the
    most at any moment. It sees what autograd saves for the backward pass, the gradients and the optimizer's state,
    on any device (CPU included), so a GPU's training memory can be estimated on a laptop. Not counted: tensors that
    existed before (the weights themselves), the CUDA context, kernels' workspaces and the allocator's rounding."""

    def __init__(self):
        super().__init__()
        self.live, self.peak = 0, 0
        self._refs: dict[int, int] = {}   # storage address → live tensors on it (views share one storage)
        self._bytes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tree_map_only(torch.Tensor, self._track, out)
        return out

    def _track(self, t: torch.Tensor) -> None:
        key = t.untyped_storage().data_ptr()
        if not key:
            return  # an empty tensor
        if key not in self._refs:
            self._refs[key], self._bytes[key] = 0, t.untyped_storage().nbytes()
            self.live += self._bytes[key]
            self.peak = max(self.peak, self.live)
        self._refs[key] += 1
        weakref.finalize(t, self._release, key)  # a tensor's Python object lives as long as the tensor does

    def _release(self, key: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            del self._refs[key]
            self.live -= self._bytes.pop(key)


def training_memory(step, model: nn.Module, batch: int, probe: tuple[int, int] = (2, 4)) -> dict:
    """Peak memory of one training step at ``batch``, estimated from two small probe batches run here (bytes).

    ``step(b)`` runs forward and backward on a batch of ``b`` (no optimizer step). Saved activations grow linearly
    with the batch while the gradients do not, so with p(b) the peak of ``step(b)``:

        activations per example  s = (p(b₂) − p(b₁)) / (b₂ − b₁)
        forward + backward       p(B) ≈ p(b₁) + s·(B − b₁)   (activations and gradients)
        total                    weights + max(AdamW's moments + p(B),  gradients + AdamW's step)

    since from the second step on the optimizer's moments are alive during forward and backward. Returns
    ``dict(weights, per_example, forward_backward, moments, optimizer_step, total)`` in bytes, float32 throughout
    (mixed precision stores activations in about half as many bytes).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    weights = sum(p.numel() * p.element_size() for p in params)
    peaks = []
    for b in probe:
        model.zero_grad(set_to_none=True)
        with PeakMemory() as m:
            step(b)
        peaks.append(m.peak)
    b1, b2 = probe
    per_example = max(0.0, (peaks[1] - peaks[0]) / (b2 - b1))
    forward_backward = peaks[0] + per_example * (batch - b1)
    opt = torch.optim.AdamW(params, lr=0.0)  # lr 0: a step that changes nothing, to measure what it allocates
    with PeakMemory() as m:
        opt.step()
    model.zero_grad(set_to_none=True)
    moments, optimizer_step = m.live, weights + m.peak  # the gradients (as big as the weights) stay through the step
    return dict(weights=weights, per_example=per_example, forward_backward=forward_backward, moments=moments,
                optimizer_step=optimizer_step, total=weights + max(moments + forward_backward, optimizer_step))
