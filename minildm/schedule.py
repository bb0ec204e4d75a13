"""Noise schedules and the forward process q(x_t | x_0).  Notebook 01 · DDPM §2 · LDM §3.2 / App. B.

Notation (kept the same in every module and notebook):

=================  ===========================  ====================================================
code               paper                        meaning
=================  ===========================  ====================================================
``betas[t]``       β_t                          variance added at step t (DDPM Eq. 2)
``alphas[t]``      α_t = 1 − β_t
``alpha_bar[t]``   ᾱ_t = ∏_{s≤t} α_s            signal kept after t steps (DDPM Eq. 4)
``alpha_bar_prev`` ᾱ_{t−1}, with ᾱ_{−1} = 1
``x0``, ``x_t``    x_0, x_t                     clean / noised sample
``eps``            ε ~ N(0, I)
``snr``            SNR(t) = ᾱ_t / (1 − ᾱ_t)     signal-to-noise ratio (Kingma et al. 2021)
``v``              v = √ᾱ_t ε − √(1 − ᾱ_t) x_0  the velocity target (Salimans & Ho 2022, §4)
=================  ===========================  ====================================================

Indexing: the paper counts t = 1 … T; the code counts ``t = 0 … T-1`` (index ``t`` is the paper's t+1),
as diffusers does. Every function is pure: tensors in, tensors out.

**Notation trap.** DDIM (Song et al. 2021) writes α_t for what DDPM calls ᾱ_t. We always write
``alpha_bar``. And LDM's config calls its schedule ``linear``, but it is linear in √β, not in β:
β_t = (√β_start + t/(T−1)·(√β_end − √β_start))². diffusers named it ``scaled_linear``, and so do we.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

SCHEDULES = ("linear", "scaled_linear", "cosine")
ZERO_SNR = "_zero_snr"  # a suffix: "linear_zero_snr" is the linear schedule rescaled to ᾱ_T = 0 (Lin et al. 2024)


def linear_beta_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's schedule (Ho et al. 2020 §4): β linear from 1e-4 to 0.02 over T = 1000 steps. Shape (T,)."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def scaled_linear_beta_schedule(T: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> Tensor:
    """LDM / Stable Diffusion's schedule: linear in √β (the "linear" of LDM's configs). Shape (T,)."""
    # β_t = (√β_start + (t / (T-1)) (√β_end − √β_start))²
    return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2


def cosine_beta_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Improved DDPM's schedule (Nichol & Dhariwal 2021, Eq. 17). Shape (T,).

    ᾱ(t) = f(t)/f(0) with f(t) = cos²(((t/T) + s)/(1 + s) · π/2), and β_t = 1 − ᾱ_t/ᾱ_{t−1},
    clipped at ``max_beta`` so the last step does not divide by ~0.
    """
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    # β_t = 1 − ᾱ_t / ᾱ_{t−1}   (Nichol & Dhariwal Eq. 17's companion)
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=max_beta)


def make_betas(name: str, T: int = 1000) -> Tensor:
    """β schedule by name: ``linear`` (DDPM), ``scaled_linear`` (LDM), ``cosine`` (improved DDPM)."""
    if T < 2:
        raise ValueError(f"a schedule needs T >= 2 steps, got T={T}")
    if name.endswith(ZERO_SNR) and name[: -len(ZERO_SNR)] in SCHEDULES:
        return rescale_zero_terminal_snr(make_betas(name[: -len(ZERO_SNR)], T))
    if name == "linear":
        # DDPM's endpoints are tuned for T = 1000; scale them so that shorter chains still end at ~pure noise
        # (Improved DDPM's rule), and cap β < 1 so that very short chains stay valid.
        return linear_beta_schedule(T, 1e-4 * 1000 / T, 0.02 * 1000 / T).clamp(max=0.999)
    if name == "scaled_linear":
        return scaled_linear_beta_schedule(T)
    if name == "cosine":
        return cosine_beta_schedule(T)
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)} (or one of them + "
                     f"{ZERO_SNR!r}: rescaled to zero terminal SNR, for v-prediction)")


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """The same schedule with ᾱ_T = 0 exactly: pure noise at the last step (Lin et al. 2024, Alg. 1). Shape (T,).

    DDPM's linear schedule ends at ᾱ_T ≈ 4e-5, so training never shows the model pure noise while sampling starts
    from it (the leak notebook 01 measures). Shift √ᾱ so that its last value is 0, scale it so that its first is
    unchanged, and read the β back: β_t = 1 − ᾱ_t / ᾱ_{t−1}, so β_T = 1. At t = T an ε-model then has nothing to
    predict (x_T = ε) and x̂_0 = (x_T − ε̂)/0 is undefined: this schedule needs v-prediction (:func:`x0_from_v`).
    """
    sqrt_ab = alpha_bar_from_betas(betas.double()).sqrt()  # (T,)
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    # √ᾱ ← (√ᾱ − √ᾱ_T) · √ᾱ_1 / (√ᾱ_1 − √ᾱ_T)
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    ab = sqrt_ab**2
    # α_t = ᾱ_t / ᾱ_{t−1} (α_1 = ᾱ_1), β_t = 1 − α_t
    alphas = torch.cat([ab[:1], ab[1:] / ab[:-1]])
    return 1 - alphas


def alpha_bar_from_betas(betas: Tensor) -> Tensor:
    """ᾱ_t = ∏_{s≤t} (1 − β_s)  (DDPM Eq. 4's notation). Shape (T,)."""
    return torch.cumprod(1 - betas, dim=0)


def snr(alpha_bar: Tensor) -> Tensor:
    """SNR(t) = ᾱ_t / (1 − ᾱ_t): how much signal is left relative to noise."""
    return alpha_bar / (1 - alpha_bar)


@dataclass(frozen=True)
class NoiseSchedule:
    """A β schedule and everything derived from it, as float64 tensors of shape (T,).

    Build one with :func:`make_schedule`. It holds data only; the maths lives in the functions below.
    """

    name: str
    betas: Tensor

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    @property
    def alphas(self) -> Tensor:
        return 1 - self.betas

    @property
    def alpha_bar(self) -> Tensor:
        return alpha_bar_from_betas(self.betas)

    @property
    def alpha_bar_prev(self) -> Tensor:
        # ᾱ_{t−1} with the convention ᾱ_{−1} = 1 (nothing has been noised before the first step)
        return torch.cat([torch.ones(1, dtype=self.betas.dtype), self.alpha_bar[:-1]])

    @property
    def snr(self) -> Tensor:
        return snr(self.alpha_bar)


def make_schedule(name: str = "linear", T: int = 1000) -> NoiseSchedule:
    """The :class:`NoiseSchedule` named ``name`` with ``T`` steps."""
    return NoiseSchedule(name, make_betas(name, T))


def extract(values: Tensor, t: Tensor, ndim: int) -> Tensor:
    """Gather ``values[t]`` per batch item and shape it (B, 1, …, 1) to broadcast over an ``ndim`` tensor."""
    if t.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"timesteps must be integer indices 0..T-1, got dtype {t.dtype}")
    if (t < 0).any() or (t >= values.shape[0]).any():
        raise IndexError(f"timesteps must lie in 0..{values.shape[0] - 1}, got {t.min().item()}..{t.max().item()}")
    out = values.to(t.device)[t]
    return out.reshape(t.shape[0], *([1] * (ndim - 1)))  # (B, 1, 1, 1)


def q_sample(x0: Tensor, t: Tensor, alpha_bar: Tensor, eps: Tensor | None = None) -> Tensor:
    """Sample x_t ~ q(x_t | x_0) in one jump (DDPM Eq. 4).

    Args: x0 (B, …) clean data; t (B,) int indices; alpha_bar (T,) ᾱ; eps (B, …) the noise, drawn if None.
    """
    if eps is None:
        eps = torch.randn_like(x0)
    ab = extract(alpha_bar, t, x0.ndim).to(x0.dtype)
    # x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε        (DDPM Eq. 4, reparameterised)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def q_step(x_prev: Tensor, t: Tensor, betas: Tensor, eps: Tensor | None = None) -> Tensor:
    """One step of the chain, x_t ~ q(x_t | x_{t−1}) (DDPM Eq. 2). Iterating it must match :func:`q_sample`."""
    if eps is None:
        eps = torch.randn_like(x_prev)
    beta = extract(betas, t, x_prev.ndim).to(x_prev.dtype)
    # x_t = √(1 − β_t) · x_{t−1} + √β_t · ε      (DDPM Eq. 2)
    return (1 - beta).sqrt() * x_prev + beta.sqrt() * eps


def predict_x0_from_eps(x_t: Tensor, t: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """Invert Eq. 4 for x_0 given a noise estimate: x̂_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t (DDPM Eq. 15)."""
    ab = extract(alpha_bar, t, x_t.ndim).to(x_t.dtype)
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


def q_posterior(x0: Tensor, x_t: Tensor, t: Tensor, sched: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t−1} | x_t, x_0) (DDPM Eq. 6–7). Variance has shape (B, 1, …, 1)."""
    n = x_t.ndim
    beta = extract(sched.betas, t, n)
    ab = extract(sched.alpha_bar, t, n)
    ab_prev = extract(sched.alpha_bar_prev, t, n)
    # μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t     (DDPM Eq. 7)
    mean = (ab_prev.sqrt() * beta / (1 - ab)) * x0 + ((1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)) * x_t
    # β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t                                               (DDPM Eq. 7)
    var = (1 - ab_prev) / (1 - ab) * beta
    return mean.to(x_t.dtype), var.to(x_t.dtype)


# ------------------------------------------------------------------ the v-parameterisation (Salimans & Ho 2022)
def v_target(x0: Tensor, eps: Tensor, t: Tensor, alpha_bar: Tensor) -> Tensor:
    """v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022, §4 / App. D): what a v-model learns to predict."""
    ab = extract(alpha_bar, t, x0.ndim).to(x0.dtype)
    return ab.sqrt() * eps - (1 - ab).sqrt() * x0


def x0_from_v(x_t: Tensor, v: Tensor, t: Tensor, alpha_bar: Tensor) -> Tensor:
    """x̂_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v̂: defined at ᾱ_t = 0 too (x̂_0 = −v̂), where ε-prediction's Eq. 15 is not."""
    ab = extract(alpha_bar, t, x_t.ndim).to(x_t.dtype)
    return ab.sqrt() * x_t - (1 - ab).sqrt() * v


def eps_from_v(x_t: Tensor, v: Tensor, t: Tensor, alpha_bar: Tensor) -> Tensor:
    """ε̂ = √(1 − ᾱ_t) x_t + √ᾱ_t v̂: a v-model's noise estimate, so every ε-sampler can run it."""
    ab = extract(alpha_bar, t, x_t.ndim).to(x_t.dtype)
    return (1 - ab).sqrt() * x_t + ab.sqrt() * v
