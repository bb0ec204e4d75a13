"""The ε-prediction training objective.  Notebook 04 · DDPM Eq. 14 · LDM Eq. 1 and Eq. 2."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minildm.schedule import q_sample


def diffusion_loss(model: nn.Module, x0: Tensor, alpha_bar: Tensor, t: Optional[Tensor] = None,
                   eps: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                   rows: Optional[slice] = None, **model_kwargs: Any) -> Tensor:
    """L = E_{x0, ε~N(0,I), t~U{0..T-1}} ‖ε − ε_θ(x_t, t)‖²  with x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε. Scalar.

    This is L_DM (LDM Eq. 1; DDPM's "simple" loss, Eq. 14) when ``x0`` is an image, and L_LDM (LDM Eq. 2)
    when ``x0`` is a latent z = E(x) from the autoencoder, multiplied by its scale factor: the same loss,
    only in latent space. The squared error is averaged over every element (so a model predicting 0 scores ≈ 1).

    Args:
        model: ε_θ, called as ``model(x_t, t, **model_kwargs)`` (e.g. ``y=labels`` or ``context=τ_θ(y)``).
        x0: (B, C, H, W) clean images or latents.  alpha_bar: (T,) ᾱ from :mod:`minildm.schedule`.
        t: (B,) int timesteps; drawn uniformly when None.  eps: the noise ε (shape of x0); drawn when None.
        generator: draws t and ε from it when given, so a training run can be replayed exactly.
        rows: data parallel (:func:`minildm.distributed.rows`): ``x0`` (and ``t``, ``ε``, and every tensor of
            ``model_kwargs``) is the *global* batch, and this process computes the loss on these rows only. t and ε
            are still drawn for all of it, so N processes draw exactly what one process would, and the mean of
            their N losses is the one process's loss.
    """
    B = x0.shape[0]
    T = alpha_bar.shape[0]
    dev = generator.device if generator is not None else x0.device  # a generator draws on its own device
    if t is None:
        # t ~ Uniform{0, …, T−1}
        t = torch.randint(0, T, (B,), generator=generator, device=dev).to(x0.device)  # (B,)
    if eps is None:
        # ε ~ N(0, I)
        eps = torch.randn(x0.shape, generator=generator, device=dev, dtype=x0.dtype).to(x0.device)
    if rows is not None:  # this process's share of the global batch (t and ε were drawn for all of it)
        x0, t, eps = x0[rows], t[rows], eps[rows]
        model_kwargs = {k: v[rows] if isinstance(v, Tensor) else v for k, v in model_kwargs.items()}
    x_t = q_sample(x0, t, alpha_bar, eps)  # (B, C, H, W)   DDPM Eq. 4
    eps_pred = model(x_t, t, **model_kwargs)
    if eps_pred.shape != eps.shape:
        raise ValueError(f"the model predicted shape {tuple(eps_pred.shape)} but ε has shape {tuple(eps.shape)}; "
                         f"an ε-prediction model must return a tensor shaped like its input")
    # ‖ε − ε_θ(x_t, t)‖², averaged over batch and elements     (LDM Eq. 1 / Eq. 2)
    return F.mse_loss(eps_pred, eps)
