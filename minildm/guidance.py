"""Classifier-free guidance: condition dropout when training, ε̃ = ε_∅ + s·(ε_y − ε_∅) when sampling.  Notebook 05.

Ho & Salimans (2021), used by LDM for its conditional models (§4.3): one network learns both the conditional
ε_θ(z_t, t, y) and the unconditional ε_θ(z_t, t, ∅), because training replaces y by the null condition ∅ with
probability p_uncond. Sampling then extrapolates from the unconditional prediction towards the conditional one:

    ε̃ = ε_θ(z_t, t, ∅) + s · (ε_θ(z_t, t, y) − ε_θ(z_t, t, ∅))      (Ho & Salimans Eq. 6 with s = 1 + w)

s = 1 is the conditional model, s = 0 the unconditional one, s > 1 trades diversity for fidelity to y.

**Guidance rescale** (Lin et al. 2024, §3.4): at large s the extrapolated prediction is larger than anything the
network was trained to output, and a deterministic sampler carries that excess to the end (over-exposed images).
With φ ∈ [0, 1] the guided output is pulled back towards the conditional one's spread, per example:

    ε̃' = φ · ε̃ · std(ε_y) / std(ε̃) + (1 − φ) · ε̃

φ = 0 is plain guidance, φ = 1 keeps ε̃'s direction at ε_y's spread. The paper writes it for its v-model's output;
diffusers (``rescale_noise_cfg``) and ComfyUI apply it to whatever the network predicts, as here (ε or v).

=================  ==============  ========================================================================
code               paper           meaning
=================  ==============  ========================================================================
``cond``           y               the condition: class ids (B,) or token ids (B, L)
``null``           ∅               the null condition: the null class, or the <null> prompt
``scale``          s (= 1 + w)     guidance scale
``eps_cond``       ε_θ(z_t, t, y)  conditional prediction
``eps_uncond``     ε_θ(z_t, t, ∅)  unconditional prediction
``rescale``        φ               guidance rescale: 0 off, 1 the guided output at the conditional one's std
=================  ==============  ========================================================================
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor


def condition_dropout(y: Tensor, null: Tensor | int, p: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """Replace each example's condition by ``null`` with probability ``p``: the training half of guidance.

    y (B,) or (B, L); null broadcastable to one example (a scalar class id, or an (L,) prompt). One uniform draw
    per example from ``generator`` (on the CPU), so a seeded training run replays exactly.
    """
    drop = torch.rand(y.shape[0], generator=generator) < p  # (B,) bool: True → ∅
    drop = drop.to(y.device).reshape(-1, *([1] * (y.ndim - 1)))  # (B, 1, …) broadcast over an example
    return torch.where(drop, torch.as_tensor(null, dtype=y.dtype, device=y.device), y)


def attribute_dropout(y: Tensor, null: Tensor, p: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """Replace each *entry* of attribute vectors y (B, M) by its ∅ value (null (M,)) with probability ``p``.

    :func:`condition_dropout` teaches the model "no condition at all"; this teaches it "these attributes are not
    specified" (:class:`~minildm.conditioning.AttributeEncoder`'s value 2), so a request may name only some of them
    ("Smiling = 1", the rest ∅). One uniform per entry from ``generator`` (on the CPU). Not for token ids.
    """
    drop = (torch.rand(y.shape, generator=generator) < p).to(y.device)  # (B, M) bool: True → ∅
    return torch.where(drop, torch.as_tensor(null, dtype=y.dtype, device=y.device).expand_as(y), y)


def check_rescale(rescale: float) -> None:
    """The one-line error for a guidance rescale φ outside [0, 1]."""
    if not 0 <= rescale <= 1:  # also False for NaN
        raise ValueError(f"guidance rescale φ must be in [0, 1]: 0 off, 0.7 Lin et al.'s choice, 1 the guided "
                         f"prediction at the conditional one's spread (got {rescale})")


def rescale_guided(guided_out: Tensor, cond_out: Tensor, rescale: float) -> Tensor:
    """Guidance rescale (Lin et al. 2024, §3.4): φ·ε̃·std(ε_y)/std(ε̃) + (1 − φ)·ε̃, the std over each example's
    entries. ``guided_out`` ε̃ and ``cond_out`` ε_y (B, …); ``rescale`` φ in [0, 1]."""
    check_rescale(rescale)
    if rescale == 0:
        return guided_out
    dims = tuple(range(1, guided_out.ndim))
    std_cond = cond_out.std(dim=dims, keepdim=True)  # (B, 1, …)
    std_guided = guided_out.std(dim=dims, keepdim=True).clamp_min(torch.finfo(guided_out.dtype).tiny)
    return rescale * guided_out * (std_cond / std_guided) + (1 - rescale) * guided_out


def guided(model, scale: float, cond: Tensor, null: Tensor,
           rescale: float = 0.0) -> Callable[[Tensor, Tensor], Tensor]:
    """An ε-function for the samplers, ``eps(x_t, t)``, that applies classifier-free guidance with scale s.

    ``model(x_t, t, y=...)`` is ε_θ (a :class:`~minildm.conditioning.ConditionalUNet`); ``cond`` (B, …) is y for
    the batch, ``null`` ∅ for the batch (B, …) or for one example (…). Each call makes ONE forward pass on the
    batch of 2B, [x_t; x_t] with [y; ∅]: the first B rows are conditional (what an attention capture sees first).
    s = 1 and s = 0 need only one half, so they run a single forward of B and return exactly ε_y or ε_∅.
    ``rescale`` φ > 0 applies :func:`rescale_guided` to ε̃ (not at s = 1 or 0, which return one prediction as is).
    Use as ``ddim_sample(guided(model, 3.0, y, null), x_T, sched, steps=50)``.
    """
    check_rescale(rescale)  # a bad φ: its error now, not at the first step
    B = cond.shape[0]
    null = torch.as_tensor(null, device=cond.device, dtype=cond.dtype)
    if null.shape != cond.shape:
        if null.shape != cond.shape[1:]:
            raise ValueError(f"null must be one condition {tuple(cond.shape[1:])} or one per example "
                             f"{tuple(cond.shape)}, got {tuple(null.shape)}")
        null = null.expand_as(cond)  # (B, …)

    def eps(x_t: Tensor, t: Tensor) -> Tensor:
        if x_t.shape[0] != B:
            raise ValueError(f"guided(...) was built for a batch of {B} conditions, got x_t with {x_t.shape[0]} rows")
        if scale == 1.0:  # ε̃ = ε_y: the conditional model alone
            return model(x_t, t, y=cond)
        if scale == 0.0:  # ε̃ = ε_∅: the unconditional model alone
            return model(x_t, t, y=null)
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(B)  # (B,)
        # one batched forward: [x_t; x_t] with [y; ∅]
        out = model(torch.cat([x_t, x_t]), torch.cat([t, t]), y=torch.cat([cond, null]))  # (2B, C, H, W)
        eps_cond, eps_uncond = out.chunk(2)  # (B, C, H, W) each
        # ε̃ = ε_∅ + s·(ε_y − ε_∅), then (φ > 0) back towards ε_y's spread
        return rescale_guided(eps_uncond + scale * (eps_cond - eps_uncond), eps_cond, rescale)

    return eps
