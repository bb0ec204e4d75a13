"""The training objective: ε-prediction (DDPM Eq. 14, LDM Eq. 1 and 2) or v-prediction (Salimans & Ho 2022).  Notebook 04."""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minildm.schedule import eps_from_v, q_sample, v_target, x0_from_v

PREDICTIONS = ("eps", "v")  # what a diffusion network may be trained to predict (TrainConfig.target)


def prediction_of(sampling: dict | None) -> str:
    """What a checkpoint's network predicts, from its sampling settings (``sampling_payload``): their
    ``"prediction"``, or ``"eps"`` for checkpoints written before v-prediction existed (all of them ε-models)."""
    return (sampling or {}).get("prediction", "eps")


def diffusion_loss(model: nn.Module, x0: Tensor, alpha_bar: Tensor, t: Optional[Tensor] = None,
                   eps: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                   rows: Optional[slice] = None, target: str = "eps", **model_kwargs: Any) -> Tensor:
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
        target: ``"eps"`` (the model predicts ε, the course's default) or ``"v"``: it predicts
            v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022). At one x_t, ε − ε̂ = √ᾱ_t (v − v̂) and
            x_0 − x̂_0 = −√(1 − ᾱ_t) (v − v̂), so ‖v − v̂‖² = (1 + 1/SNR) ‖ε − ε̂‖² = (1 + SNR) ‖x_0 − x̂_0‖²: a
            re-weighting that stays finite where SNR = 0. Sample a v-model through :func:`eps_model_from_v`.
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
    if target not in PREDICTIONS:
        raise ValueError(f"target must be 'eps' (predict the noise) or 'v' (predict √ᾱ ε − √(1 − ᾱ) x_0), got {target!r}")
    pred = model(x_t, t, **model_kwargs)
    if pred.shape != eps.shape:
        raise ValueError(f"the model predicted shape {tuple(pred.shape)} but ε has shape {tuple(eps.shape)}; "
                         f"an ε- or v-prediction model must return a tensor shaped like its input")
    if target == "v":
        # ‖v − v_θ(x_t, t)‖²,  v = √ᾱ_t ε − √(1 − ᾱ_t) x_0     (Salimans & Ho 2022, §4)
        return F.mse_loss(pred, v_target(x0, eps, t, alpha_bar))
    # ‖ε − ε_θ(x_t, t)‖², averaged over batch and elements     (LDM Eq. 1 / Eq. 2)
    return F.mse_loss(pred, eps)


def eps_model_from_v(model: nn.Module, alpha_bar: Tensor) -> "VPrediction":
    """A v-prediction model as the ε-model every sampler takes: ε̂(x_t, t) = √(1 − ᾱ_t) x_t + √ᾱ_t v_θ(x_t, t)."""
    return VPrediction(model, alpha_bar)


class VPrediction(nn.Module):
    """A v-model v_θ seen as an ε-model: ``forward`` returns ε̂ = √(1 − ᾱ_t) x_t + √ᾱ_t v̂, so every sampler runs it.

    ε̂ alone is not enough where ᾱ_t = 0 (the zero-terminal-SNR schedule's last step): there x̂_0 = (x_t − ε̂)/√ᾱ_t
    is 0/0, although the v-model knows it, x̂_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v̂ = −v̂. So :meth:`eps_and_x0` returns both
    from one network call, and the DDPM/DDIM samplers take x̂_0 from it (``spacing._call_model_x0``). Classifier-free
    guidance combines v's before this wrapper (``VPrediction(guided(net, …))``): both conversions are linear in v̂,
    so guiding v or ε is the same thing.
    """

    def __init__(self, model: nn.Module, alpha_bar: Tensor):
        super().__init__()
        self.model, self.alpha_bar = model, alpha_bar

    def eps_and_x0(self, x_t: Tensor, t: Tensor, **model_kwargs: Any) -> tuple[Tensor, Tensor]:
        v = self.model(x_t, t, **model_kwargs)
        return eps_from_v(x_t, v, t, self.alpha_bar), x0_from_v(x_t, v, t, self.alpha_bar)

    def forward(self, x_t: Tensor, t: Tensor, **model_kwargs: Any) -> Tensor:
        return self.eps_and_x0(x_t, t, **model_kwargs)[0]
