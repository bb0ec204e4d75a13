"""The probability-flow ODE in σ: Euler (DDIM η = 0), Heun, DPM-Solver++(2M), Euler-ancestral.  Notebook 07 ·
DDIM §4.3 (Eq. 14) · Karras et al. 2022 §3, Alg. 1 · Lu et al. 2022 (DPM-Solver++), Alg. 2.

DDIM §4.3 rewrites its η = 0 update as an Euler step of an ODE. Divide x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε by √ᾱ_t::

    x̃ = x_t / √ᾱ_t = x_0 + σ_t ε,        σ_t = √((1 − ᾱ_t) / ᾱ_t) = 1 / √SNR(t)

so in x̃ the forward process only adds noise of std σ (Karras et al.'s form with s(t) = 1, σ(t) = t), and the
probability-flow ODE reads::

    dx̃/dσ = (x̃ − D(x̃; σ)) / σ = ε̂,      D(x̃; σ) = x̃ − σ ε̂ = x̂_0        (Karras Eq. 1 and 3; DDIM Eq. 14)

with D the *denoiser*: the x̂_0 that ε̂ implies (DDPM Eq. 15). So the course's ε-models are denoisers as they are:
ε_θ is asked at x_t = √ᾱ_t x̃ = x̃ / √(1 + σ_t²) and the integer t of σ_t. A solver walks the ladder
σ_{t_0} > … > σ_{t_{K−1}} > σ_K = 0 of the sampler's timesteps (:mod:`minildm.spacing`): it starts at
x̃ = x_T / √ᾱ_{t_0} and stops at σ = 0, where x̃ is x_0. Each solver is a pure step (floats σ, tensors x̃) and a loop.

==================  ======================  ======================================================================
code                paper                   meaning
==================  ======================  ======================================================================
``x``               x̃ = x_t / √ᾱ_t          the state in σ-space (x_t is what ε_θ sees)
``sigma``           σ_i, ``sigma_next``     the noise level now, and after the step (0 at the end)
``denoised``        D(x̃; σ) = x̂_0           the denoiser's output
``d``               dx̃/dσ = (x̃ − D) / σ     the ODE's slope: ε̂ (or, when x̂_0 is clipped, the ε that it implies)
``h``               λ_{i+1} − λ_i           DPM-Solver++'s step in λ = −log σ
``sigma_up/down``   σ_up, σ_down            Euler-ancestral: the noise it adds, and the level its ODE step aims at
==================  ======================  ======================================================================

**Notation trap.** σ here is the std of the noise in x̃ (Karras et al., k-diffusion, diffusers' Euler schedulers),
not DDPM's per-step σ_t nor DDIM's σ_t(η) of :mod:`minildm.samplers`. DPM-Solver++ writes α_t, σ_t for √ᾱ_t,
√(1 − ᾱ_t): their ratio is this σ, and its half log-SNR λ_t = log(α_t / σ_t) is −log σ here.

Network evaluations: one per step, except Heun's two (none extra on the last step, to σ = 0: 2K − 1 in all).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .schedule import NoiseSchedule
from .spacing import Callback, _call_model, _noise_like, timestep_list


def sigma_ladder(sched: NoiseSchedule, ts: list[int]) -> list[float]:
    """σ_{t_0} > … > σ_{t_{K−1}}, then 0: the levels a solver walks, as Python floats (float64). Length K + 1."""
    ab = sched.alpha_bar[ts]  # (K,) float64
    # σ_t = √((1 − ᾱ_t) / ᾱ_t)
    return ((1 - ab) / ab).sqrt().tolist() + [0.0]


def denoise(model, x: Tensor, t: int, sigma: float, model_kwargs: dict | None = None,
            clip_x0: float | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The ε-model as a denoiser at x̃ = ``x`` (B, …), index t of level σ. Returns (D, d, x_t, eps_pred), each (B, …).

    ``clip_x0`` clamps D = x̂_0 to [−c, c]; the slope d is then the ε that the clipped x̂_0 implies, as in
    :func:`~minildm.samplers.ddim_step`, so Euler equals DDIM with clipping too.
    """
    # x_t = √ᾱ_t x̃ = x̃ / √(1 + σ²)
    x_t = x / math.sqrt(1 + sigma**2)
    _, eps_pred = _call_model(model, x_t, t, model_kwargs)
    # D(x̃; σ) = x̃ − σ ε̂ = x̂_0
    denoised = x - sigma * eps_pred
    if clip_x0 is None:
        return denoised, eps_pred, x_t, eps_pred
    denoised = denoised.clamp(-clip_x0, clip_x0)
    # d = (x̃ − D) / σ
    return denoised, (x - denoised) / sigma, x_t, eps_pred


def _start(x_T: Tensor, sched: NoiseSchedule, timesteps, steps: int, spacing: str):
    """The timesteps (a list), their σ-ladder, and the starting state x̃ = x_T / √ᾱ_{t_0}."""
    ts = timestep_list(sched.T, timesteps, steps, spacing)
    if float(sched.alpha_bar[ts[0]]) == 0.0:
        raise ValueError(f"the {sched.name!r} schedule has zero SNR at t = {ts[0]}, where σ = √((1 − ᾱ)/ᾱ) is "
                         "infinite, so the σ-space solvers cannot start there: sample it with 'ddim' or 'ddpm' "
                         "(which take x̂_0 from a v-model), or with spacing='leading', which starts below T − 1")
    sigmas = sigma_ladder(sched, ts)
    # x̃ = x_T / √ᾱ_{t_0} = x_T √(1 + σ_{t_0}²)
    return ts, sigmas, x_T * math.sqrt(1 + sigmas[0] ** 2)


def _deterministic(name: str, eta: float) -> None:
    if eta != 0:
        raise ValueError(f"the {name} sampler is deterministic: it solves the probability-flow ODE, η = 0 (got "
                         f"eta={eta}); use sampler='euler_ancestral' or 'ddim' for η > 0")


# ------------------------------------------------------------------------------------------------ steps
def euler_step(x: Tensor, sigma: float, sigma_next: float, d: Tensor) -> Tensor:
    """One Euler step of dx̃/dσ = d from σ to σ_next (Karras Alg. 1, line 5). Equals DDIM's η = 0 update (Eq. 12):
    x̃ + (σ' − σ) ε̂ = x̂_0 + σ' ε̂, which is DDIM's √ᾱ' x̂_0 + √(1 − ᾱ') ε̂ divided by √ᾱ'."""
    # x̃_{i+1} = x̃_i + (σ_{i+1} − σ_i) d_i
    return x + (sigma_next - sigma) * d


def heun_step(x: Tensor, sigma: float, sigma_next: float, d: Tensor, d_next: Tensor) -> Tensor:
    """Heun's correction (Karras Alg. 1, line 8): the mean of the slope at σ and the slope ``d_next`` at the end of
    the Euler step, (x̃' − D(x̃'; σ_next)) / σ_next. The trapezoid rule: second order."""
    # x̃_{i+1} = x̃_i + (σ_{i+1} − σ_i) (d_i + d'_i) / 2
    return x + (sigma_next - sigma) * (d + d_next) / 2


def dpmpp_2m_step(x: Tensor, sigma: float, sigma_next: float, denoised: Tensor, old_denoised: Tensor | None = None,
                  sigma_prev: float | None = None) -> Tensor:
    """One DPM-Solver++(2M) step (Lu et al. 2022, Alg. 2): the ODE solved exactly in λ = −log σ for a denoiser
    that is linear in λ, through D at this step and the previous one (``old_denoised`` at ``sigma_prev``).

    Without a previous D (the first step) it is DPM-Solver++(1), which is DDIM; to σ_next = 0 (λ = ∞) it returns
    D, as DDIM's last step does (a first-order last step, as in k-diffusion).
    """
    if sigma_next == 0:
        return denoised
    # h = λ_{i+1} − λ_i,  λ = −log σ
    h = math.log(sigma / sigma_next)
    if old_denoised is None:
        D = denoised
    else:
        # r = h_{i−1} / h_i;  D̂ = (1 + 1/(2r)) D_i − 1/(2r) D_{i−1}
        r = math.log(sigma_prev / sigma) / h
        D = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
    # x̃_{i+1} = (σ_{i+1} / σ_i) x̃_i − (e^{−h} − 1) D̂
    return (sigma_next / sigma) * x - math.expm1(-h) * D


def euler_ancestral_step(x: Tensor, sigma: float, sigma_next: float, d: Tensor, eta: float = 1.0,
                         noise: Tensor | None = None) -> Tensor:
    """An Euler step down to σ_down, then fresh noise of std σ_up back up to σ_next (σ_down² + σ_up² = σ_next²).

    This is DDIM's Eq. 12 with σ_t(η) of Eq. 16, written in x̃ (divide by √ᾱ_{t−1}): σ_up is DDIM's σ_t(η) / √ᾱ_{t−1},
    so η = 1 samples DDPM's posterior q(x̃' | x̃, x̂_0) and η = 0 is :func:`euler_step`. ``noise`` (B, …) z, drawn
    if None and needed.
    """
    # σ_up = η σ_{i+1} √(σ_i² − σ_{i+1}²) / σ_i
    sigma_up = min(sigma_next, eta * sigma_next * math.sqrt(sigma**2 - sigma_next**2) / sigma)
    if sigma_up == 0:
        return euler_step(x, sigma, sigma_next, d)
    # σ_down = √(σ_{i+1}² − σ_up²)
    sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
    if noise is None:
        noise = torch.randn_like(x)
    # x̃_{i+1} = x̃_i + (σ_down − σ_i) d_i + σ_up z
    return euler_step(x, sigma, sigma_down, d) + sigma_up * noise


# ------------------------------------------------------------------------------------------------ samplers
@torch.no_grad()
def euler_sample(model, x_T: Tensor, sched: NoiseSchedule, timesteps: Tensor | None = None, *, eta: float = 0.0,
                 steps: int = 50, spacing: str = "leading", generator: torch.Generator | None = None,
                 callback: Callback = None, model_kwargs: dict | None = None, clip_x0: float | None = None) -> Tensor:
    """Euler's method on the probability-flow ODE in σ (DDIM Eq. 14): deterministic DDIM, η = 0, written as an ODE
    solver, on the same timesteps. First order; one ε̂ per step. x_T (B, …) → x_0 (B, …)."""
    _deterministic("euler", eta)
    ts, sigmas, x = _start(x_T, sched, timesteps, steps, spacing)
    for i, t in enumerate(ts):
        denoised, d, x_t, eps_pred = denoise(model, x, t, sigmas[i], model_kwargs, clip_x0)
        if callback is not None:
            callback(dict(i=i, t=t, x_t=x_t, x0_pred=denoised, eps_pred=eps_pred))
        x = euler_step(x, sigmas[i], sigmas[i + 1], d)
    return x


@torch.no_grad()
def heun_sample(model, x_T: Tensor, sched: NoiseSchedule, timesteps: Tensor | None = None, *, eta: float = 0.0,
                steps: int = 50, spacing: str = "leading", generator: torch.Generator | None = None,
                callback: Callback = None, model_kwargs: dict | None = None, clip_x0: float | None = None) -> Tensor:
    """Heun's second-order method (Karras et al. 2022, Alg. 1, without churn). The second slope is taken at the
    next timestep of the list, so ε_θ is only ever asked at trained indices. 2·steps − 1 evaluations."""
    _deterministic("heun", eta)
    ts, sigmas, x = _start(x_T, sched, timesteps, steps, spacing)
    for i, t in enumerate(ts):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised, d, x_t, eps_pred = denoise(model, x, t, sigma, model_kwargs, clip_x0)
        if callback is not None:
            callback(dict(i=i, t=t, x_t=x_t, x0_pred=denoised, eps_pred=eps_pred))
        x_euler = euler_step(x, sigma, sigma_next, d)
        if sigma_next == 0:  # the last step: no slope at σ = 0, so Euler's (Alg. 1, line 6)
            x = x_euler
        else:
            _, d_next, _, _ = denoise(model, x_euler, ts[i + 1], sigma_next, model_kwargs, clip_x0)
            x = heun_step(x, sigma, sigma_next, d, d_next)
    return x


@torch.no_grad()
def dpmpp_2m_sample(model, x_T: Tensor, sched: NoiseSchedule, timesteps: Tensor | None = None, *, eta: float = 0.0,
                    steps: int = 50, spacing: str = "leading", generator: torch.Generator | None = None,
                    callback: Callback = None, model_kwargs: dict | None = None,
                    clip_x0: float | None = None) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): second order from one ε̂ per step, by reusing the previous step's x̂_0."""
    _deterministic("dpmpp_2m", eta)
    ts, sigmas, x = _start(x_T, sched, timesteps, steps, spacing)
    old_denoised = None
    for i, t in enumerate(ts):
        denoised, _, x_t, eps_pred = denoise(model, x, t, sigmas[i], model_kwargs, clip_x0)
        if callback is not None:
            callback(dict(i=i, t=t, x_t=x_t, x0_pred=denoised, eps_pred=eps_pred))
        x = dpmpp_2m_step(x, sigmas[i], sigmas[i + 1], denoised, old_denoised, sigmas[i - 1] if i else None)
        old_denoised = denoised
    return x


@torch.no_grad()
def euler_ancestral_sample(model, x_T: Tensor, sched: NoiseSchedule, timesteps: Tensor | None = None, *,
                           eta: float = 1.0, steps: int = 50, spacing: str = "leading",
                           generator: torch.Generator | None = None, callback: Callback = None,
                           model_kwargs: dict | None = None, clip_x0: float | None = None) -> Tensor:
    """Euler-ancestral (k-diffusion's ``sample_euler_ancestral``): the stochastic counterpart, η ∈ [0, 1].

    On the same timesteps and generator it gives DDIM's numbers for the same η (noise drawn at the same steps),
    computed in σ-space; η = 0 is :func:`euler_sample`. With η = 1 and all T steps it is DDPM's Algorithm 2.
    """
    if not 0 <= eta <= 1:
        raise ValueError(f"eta (η) must be in [0, 1]: 0 the ODE (euler), 1 ancestral (got {eta})")
    ts, sigmas, x = _start(x_T, sched, timesteps, steps, spacing)
    for i, t in enumerate(ts):
        denoised, d, x_t, eps_pred = denoise(model, x, t, sigmas[i], model_kwargs, clip_x0)
        if callback is not None:
            callback(dict(i=i, t=t, x_t=x_t, x0_pred=denoised, eps_pred=eps_pred))
        noise = _noise_like(x, generator) if eta > 0 and sigmas[i + 1] > 0 else None
        x = euler_ancestral_step(x, sigmas[i], sigmas[i + 1], d, eta, noise)
    return x
