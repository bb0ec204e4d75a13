"""Editing real data with a trained ε_θ: SDEdit and DDIM inversion.  Notebook 07 · Meng et al. 2022 (SDEdit) §3 ·
DDIM §4.3 and §5.4 (Eq. 14 run from x_0 towards x_T).

**SDEdit.** Noise a real x_0 to x_{t_s} ~ q(x_{t_s} | x_0) (DDPM Eq. 4), t_s the first of the sampler's timesteps at
or below s·(T − 1) for a strength s ∈ [0, 1], and sample down from there with any sampler. A small s redraws the
details and keeps the layout; s = 1 starts at the top of the list, where almost nothing of x_0 is left.

**DDIM inversion.** Deterministic DDIM is Euler's method on the probability-flow ODE in σ (:mod:`minildm.solvers`),
so its steps can be taken upwards, x_0 → x_T: the starting noise that samples back to (nearly) x_0. The step from
t_a up to t_b needs ε̂ at t_a, which for the first one (t_a = −1, x_0 itself) ε_θ does not have; so each upward step
asks ε_θ at its *upper* timestep t_b about the current x_{t_a}, ε̂ = ε_θ(x_{t_a}, t_b) ≈ ε_θ(x_{t_b}, t_b), the
ε̂ that the step down between the same two levels uses (diffusers' ``DDIMInverseScheduler``, null-text inversion).
ε_θ is asked at exactly the timesteps the sampler visits on the way down, and the round trip misses x_0 by the
difference of the two ε̂ per step: first order, shrinking as the steps grow.

Both take x_0 in ε_θ's own space: pixels, or a latent model's s·ℰ(x) (``first_stage.encode_latents``), and an
ε-model: a v-model (``TrainConfig(target="v")``) goes in as ``DiffusionModel.denoiser()`` gives it, wrapped in
:class:`~minildm.objective.VPrediction` (the raw v-network would be read as ε̂ and edit nonsense).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .samplers import get_sampler
from .schedule import NoiseSchedule, q_sample
from .solvers import euler_step, sigma_ladder
from .spacing import Callback, _call_model, _noise_like, spaced_timesteps, timestep_list


@torch.no_grad()
def sdedit(model, x0: Tensor, sched: NoiseSchedule, strength: float, *, sampler: str = "ddim", steps: int = 50,
           spacing: str = "leading", generator: torch.Generator | None = None, **sampler_kwargs) -> Tensor:
    """SDEdit (Meng et al. 2022): x0 (B, …) noised to strength s, then denoised by ``sampler``. Returns x_0' (B, …).

    ``strength`` 0 returns x0 unchanged (as does an s·(T − 1) below the list's lowest timestep); 1 starts at the
    list's first timestep. ``sampler_kwargs``: the samplers' ``eta``, ``callback``, ``model_kwargs``,
    ``clip_x0``. The noise of the jump to x_{t_s}, then the sampler's own, come from ``generator`` in that order.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1]: 0 keeps x0, 1 starts from (nearly) pure noise (got {strength})")
    sample = get_sampler(sampler)
    ts = spaced_timesteps(sched.T, steps, spacing)
    # the timesteps at or below t_s ≈ s·(T − 1): the rest of the walk down
    ts = ts[ts <= strength * (sched.T - 1)]
    if strength == 0 or len(ts) == 0:
        return x0.clone()
    t_s = torch.full((x0.shape[0],), int(ts[0]), dtype=torch.long, device=x0.device)  # (B,)
    # x_{t_s} = √ᾱ_{t_s} x_0 + √(1 − ᾱ_{t_s}) ε        (DDPM Eq. 4)
    x_t = q_sample(x0, t_s, sched.alpha_bar, _noise_like(x0, generator))
    return sample(model, x_t, sched, ts, generator=generator, **sampler_kwargs)


@torch.no_grad()
def ddim_invert(model, x0: Tensor, sched: NoiseSchedule, timesteps: Tensor | None = None, *, steps: int = 50,
                spacing: str = "leading", callback: Callback = None, model_kwargs: dict | None = None) -> Tensor:
    """DDIM inversion: x_0 (B, …) → x_T (B, …) at the first (highest) of the timesteps, by DDIM steps upwards.

    ``timesteps`` None: ``steps`` by ``spacing``, the same list :func:`~minildm.solvers.euler_sample` walks down.
    ``callback`` once per step, as the samplers' (``i`` counts upwards, ``t`` rises).
    """
    ts = timestep_list(sched.T, timesteps, steps, spacing)[::-1]  # ascending: t_{K−1} < … < t_0
    if float(sched.alpha_bar[ts[-1]]) == 0.0:
        raise ValueError(f"cannot invert up to t = {ts[-1]}: the {sched.name!r} schedule has zero SNR there, so σ is "
                         "infinite and x_T keeps nothing of x_0; use spacing='leading', which stops below T − 1")
    sigmas = [0.0] + sigma_ladder(sched, ts)[:-1]  # 0 < σ_{t_{K−1}} < … < σ_{t_0}
    x = x0  # x̃ = x_0 at σ = 0
    for i, t in enumerate(ts):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        # x_{t_a} = √ᾱ_{t_a} x̃ = x̃ / √(1 + σ²): the current state, shown to ε_θ at the upper timestep t
        x_t = x / math.sqrt(1 + sigma**2)
        _, eps_pred = _call_model(model, x_t, t, model_kwargs)
        if callback is not None:
            # x̂_0 = x̃ − σ ε̂
            callback(dict(i=i, t=t, x_t=x_t, x0_pred=x - sigma * eps_pred, eps_pred=eps_pred))
        # x̃_b = x̃_a + (σ_b − σ_a) ε̂: DDIM's Eq. 12 from t_a up to t_b
        x = euler_step(x, sigma, sigma_next, eps_pred)
    # x_T = √ᾱ_{t_0} x̃ = x̃ / √(1 + σ_{t_0}²)
    return x / math.sqrt(1 + sigmas[-1] ** 2)


def inversion_round_trip(model, x0: Tensor, sched: NoiseSchedule, *, sampler: str = "euler", steps: int = 50,
                         spacing: str = "leading", model_kwargs: dict | None = None,
                         clip_x0: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """x_0 → x_T (:func:`ddim_invert`) → x_0' (``sampler``, deterministic, on the same timesteps).

    Returns (x_T, x0_back, error), error (B,) the root-mean-square of x0_back − x0 over each example's entries.
    ``sampler`` any but ddpm (which adds fresh noise at every step); the stochastic ones run with η = 0.
    """
    if sampler == "ddpm":
        raise ValueError("the round trip needs a deterministic sampler (euler, ddim, heun, dpmpp_2m): ddpm adds fresh "
                         "noise at every step, so x_T does not determine x_0")
    sample = get_sampler(sampler)
    ts = timestep_list(sched.T, None, steps, spacing)
    x_T = ddim_invert(model, x0, sched, ts, model_kwargs=model_kwargs)
    x0_back = sample(model, x_T, sched, ts, eta=0.0, model_kwargs=model_kwargs, clip_x0=clip_x0)
    error = (x0_back - x0).flatten(1).pow(2).mean(1).sqrt()  # (B,)
    return x_T, x0_back, error
