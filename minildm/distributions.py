"""The diagonal Gaussian posterior q(z|x) of the KL-regularised autoencoder.  Notebook 03 · LDM §3.1, App. G.

The encoder outputs 2·C channels per latent pixel: a mean μ and a log-variance log σ², so
q(z|x) = N(μ, diag σ²). Training samples z = μ + σ·ε (the reparameterisation trick, Kingma & Welling 2014),
and a small KL(q ‖ N(0, I)) keeps the latent space from drifting to arbitrary scales (LDM's "KL-reg").
As LDM's ``ldm/modules/distributions/distributions.py``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor


class DiagonalGaussian:
    """q = N(mean, diag(exp(logvar))) over latents (B, C, h, w).

    ``DiagonalGaussian(parameters)`` splits (B, 2C, h, w) into mean and logvar along channels (the encoder's
    output), or ``DiagonalGaussian(mean, logvar)`` takes them separately.
    """

    def __init__(self, parameters: Tensor, logvar: Optional[Tensor] = None):
        if logvar is None:
            if parameters.ndim < 2 or parameters.shape[1] % 2:
                raise ValueError(f"parameters must be (B, 2C, …) holding mean and logvar along dim 1, got "
                                 f"shape {tuple(parameters.shape)}; or pass DiagonalGaussian(mean, logvar)")
            mean, logvar = parameters.chunk(2, dim=1)  # (B, C, h, w) each
        else:
            mean = parameters
        if mean.shape != logvar.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} must have the same shape")
        self.mean = mean
        # Clamp log σ² to [−30, 20] (as LDM): exp(−30) ≈ 1e-13 and exp(20) ≈ 5e8 keep σ, 1/σ² and the KL's
        # log σ² finite in float32, so one wild encoder output early in training cannot produce inf/NaN.
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)  # σ
        self.var = torch.exp(self.logvar)  # σ²

    def sample(self, generator: Optional[torch.Generator] = None) -> Tensor:
        """z = μ + σ·ε, ε ~ N(0, I): differentiable in μ and σ. ε is drawn on the generator's device."""
        dev = generator.device if generator is not None else self.mean.device
        eps = torch.randn(self.mean.shape, generator=generator, device=dev, dtype=self.mean.dtype)
        return self.mean + self.std * eps.to(self.mean.device)  # (B, C, h, w)

    def mode(self) -> Tensor:
        """The most likely z: the mean μ."""
        return self.mean

    def kl(self) -> Tensor:
        """KL(q ‖ N(0, I)) per example, summed over every latent dimension: (B,).

        For one dimension, KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − 1 − log σ²); dimensions are independent, so
        the KLs add up. LDM's loss then averages this over the batch (and we divide by the pixel count too,
        see :mod:`minildm.losses`).
        """
        # ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)
        return 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar).flatten(1).sum(dim=1)

    def nll(self, x: Tensor) -> Tensor:
        """−log q(x) per example, summed over dimensions: ½ Σ (log 2π + log σ² + (x − μ)²/σ²). (B,)."""
        # −log N(x; μ, σ²) = ½ (log 2π + log σ² + (x − μ)² / σ²)
        nll = 0.5 * (math.log(2 * math.pi) + self.logvar + (x - self.mean).pow(2) / self.var)
        return nll.flatten(1).sum(dim=1)

    def __repr__(self) -> str:
        return f"DiagonalGaussian(shape={tuple(self.mean.shape)})"
