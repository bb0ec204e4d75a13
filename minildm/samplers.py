"""Samplers: from x_T ~ N(0, I) back to x_0.  Notebook 02 · DDPM §3.2 / Alg. 2 · DDIM §4 · LDM §3.2.

After k-diffusion's ``sampling.py`` and diffusers' ``scheduling_ddim.py``: each update is a pure *step*
function (tensors in, tensors out) and each *sampler* is the loop around it, written out. Every sampler
has the same signature::

    sampler(model, x_T, sched, timesteps=None, *, eta=..., steps=..., spacing="leading", generator=None,
            callback=None, model_kwargs=None, clip_x0=None) -> x_0

and :data:`SAMPLERS` names them: ``"ddpm"`` (ancestral, on all T steps or respaced to ``steps``) and ``"ddim"``
here, the Markov-chain view; ``"euler"`` (= DDIM with η = 0), ``"heun"``, ``"dpmpp_2m"`` and ``"euler_ancestral"``
in :mod:`minildm.solvers`, the probability-flow ODE view in σ. ``timesteps`` None visits ``steps`` indices by
``spacing`` (:func:`~minildm.spacing.spaced_timesteps`: leading, trailing or linspace).

``model(x_t, t, **model_kwargs)`` returns ε̂ of x_t's shape; ``t`` is a (B,) long tensor of indices 0..T-1
(code index t is the paper's t+1, as in ``schedule.py``). ``callback(dict(i, t, x_t, x0_pred, eps_pred))``
is called once per step. ``clip_x0`` clamps x̂_0 to [−c, c]: 1.0 for pixel models, None for latents
(LDM's latents are not bounded). Noise comes from ``torch.randn(..., generator=generator)`` on the CPU and
is then moved to x_T's device, so a seed gives the same samples on any device.

Notation (as in ``schedule.py``):

===================  =====================  =============================================================
code                 paper                  meaning
===================  =====================  =============================================================
``eps_pred``         ε_θ(x_t, t)            the model's noise estimate
``x0_pred``          x̂_0                    x_0 implied by ε̂ (DDPM Eq. 15)
``alpha_bar[t]``     ᾱ_t (DDIM: α_t)        signal kept after t steps
``alpha_bar_prev``   ᾱ_{t−1}, ᾱ_{−1} = 1    at the step that lands on x_0
``sigma``            σ_t (DDPM), σ_t(η)     std of the noise added per step (DDIM Eq. 16)
``eta``              η                      0: deterministic DDIM, 1: DDPM-like ancestral
===================  =====================  =============================================================

**Notation trap.** DDIM's α_t *is* DDPM's ᾱ_t (the cumulative product). We always write ``alpha_bar``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .schedule import NoiseSchedule, extract, predict_x0_from_eps, q_posterior
from .solvers import dpmpp_2m_sample, euler_ancestral_sample, euler_sample, heun_sample
from .spacing import Callback, _call_model_x0, _noise_like, spaced_timesteps, timestep_list


# ----------------------------------------------------------------------------------------------- DDPM
def ddpm_step(x_t: Tensor, t: Tensor, eps_pred: Tensor, sched: NoiseSchedule, noise: Tensor | None = None,
              clip_x0: float | None = None, x0_pred: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One ancestral step x_t → x_{t−1} ~ p_θ(x_{t−1} | x_t) = q(x_{t−1} | x_t, x̂_0) (DDPM Eq. 6–7, 15).

    Same as Algorithm 2's ε form, x_{t−1} = (x_t − β_t/√(1−ᾱ_t) ε̂)/√α_t + σ_t z with σ_t² = β̃_t:
    substituting x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t into μ̃_t of Eq. 7 gives exactly Eq. 11. Going through
    x̂_0 lets us clip it. Args: x_t, eps_pred (B, …); t (B,) long; noise (B, …) z, drawn if None.
    Returns (x_prev, x0_pred). No noise is added where t = 0 (the step that lands on x_0). ``x0_pred``: the
    model's own x̂_0 (a v-model's, defined where ᾱ_t = 0) instead of Eq. 15's.
    """
    if x0_pred is None:
        # x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t          (DDPM Eq. 15)
        x0_pred = predict_x0_from_eps(x_t, t, eps_pred, sched.alpha_bar)
    if clip_x0 is not None:
        x0_pred = x0_pred.clamp(-clip_x0, clip_x0)
    # μ̃_t(x_t, x̂_0) and β̃_t of q(x_{t−1} | x_t, x̂_0)   (DDPM Eq. 6–7)
    mean, var = q_posterior(x0_pred, x_t, t, sched)
    if noise is None:
        noise = torch.randn_like(x_t)
    not_last = (t != 0).to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))  # (B, 1, 1, 1)
    # x_{t−1} = μ̃_t + σ_t z,  σ_t = √β̃_t,  z = 0 at the last step
    x_prev = mean + not_last * var.sqrt() * noise
    return x_prev, x0_pred


@torch.no_grad()
def ddpm_sample(model, x_T: Tensor, sched: NoiseSchedule, timesteps: Tensor | None = None, *, eta: float = 1.0,
                steps: int | None = None, spacing: str = "leading", generator: torch.Generator | None = None,
                callback: Callback = None, model_kwargs: dict | None = None, clip_x0: float | None = None) -> Tensor:
    """DDPM ancestral sampling (Algorithm 2), on all T steps or on ``steps`` evenly spaced ones. x_T → x_0 (B, …).

    ``steps`` None or T (and ``timesteps`` None or all of T−1 … 0): Algorithm 2 as written, t = T−1 … 0.
    ``steps`` < T, or a shorter ``timesteps``: ancestral sampling on the *respaced* chain τ (by ``spacing``),
    each step drawn from the posterior q(x_{τ_{i+1}} | x_{τ_i}, x̂_0) of that shorter chain. That posterior's mean
    and variance are exactly DDIM's update with η = 1 (DDIM Eq. 12 and 16; ``tests/test_samplers.py`` checks
    σ(η = 1)² = β̃), so this case runs :func:`ddim_sample` with ``eta=1``: the same numbers under either name.
    ``eta`` exists only to share the signature: DDPM is η = 1.
    """
    T = sched.T
    if eta != 1.0:
        raise ValueError(f"DDPM's ancestral sampler is η = 1 (got eta={eta}); use ddim_sample for other η.")
    full = torch.arange(T - 1, -1, -1)
    respaced = (steps is not None and steps != T) or (
        timesteps is not None and not torch.equal(torch.as_tensor(timesteps).cpu().long(), full))
    if respaced:  # the shorter chain's posterior = DDIM's update with η = 1
        return ddim_sample(model, x_T, sched, timesteps, eta=1.0, steps=steps or T, spacing=spacing,
                           generator=generator, callback=callback, model_kwargs=model_kwargs, clip_x0=clip_x0)
    x = x_T
    for i, t in enumerate(full.tolist()):
        t_batch, eps_pred, x0_model = _call_model_x0(model, x, t, model_kwargs, sched.alpha_bar)
        noise = _noise_like(x, generator) if t > 0 else torch.zeros_like(x)
        x_prev, x0_pred = ddpm_step(x, t_batch, eps_pred, sched, noise=noise, clip_x0=clip_x0, x0_pred=x0_model)
        if callback is not None:
            callback(dict(i=i, t=t, x_t=x, x0_pred=x0_pred, eps_pred=eps_pred))
        x = x_prev
    return x


# ----------------------------------------------------------------------------------------------- DDIM
def ddim_timesteps(T: int, steps: int) -> Tensor:
    """The DDIM sub-sequence τ: ``steps`` indices of 0..T−1, evenly spaced, descending. Shape (steps,).

    "Leading"/uniform spacing (DDIM's ``ddim_discr_method='uniform'``): τ_i = ⌊i·T/steps⌋ for
    i = 0 … steps−1, then flipped; :func:`~minildm.spacing.spaced_timesteps` with ``spacing="leading"``. When
    ``steps`` divides T this is exactly ``range(0, T, T // steps)``; otherwise gaps are ⌊T/steps⌋ or ⌈T/steps⌉,
    so any steps in 1..T gives unique indices. It always ends at t = 0 and starts at ⌊(steps−1)·T/steps⌋
    ≥ T − ⌈T/steps⌉ (980 for T=1000, 50 steps), never at exactly T−1 unless steps = T; ``"trailing"``
    spacing starts there (Lin et al. 2024).
    """
    return spaced_timesteps(T, steps, "leading")


def ddim_step(x_t: Tensor, t: Tensor, t_prev: Tensor, eps_pred: Tensor, alpha_bar: Tensor, eta: float = 0.0,
              noise: Tensor | None = None, clip_x0: float | None = None,
              x0_pred: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One DDIM step x_{τ_i} → x_{τ_{i−1}} (DDIM Eq. 12, σ from Eq. 16). Returns (x_prev, x0_pred).

    Args: x_t, eps_pred (B, …); t, t_prev (B,) long, with t_prev = −1 meaning "land on x_0" (ᾱ_{−1} = 1);
    alpha_bar (T,) ᾱ; eta η ∈ [0, 1]; noise (B, …) ε_t, drawn if None and needed.
    Notation trap: the paper's α_t here is DDPM's ᾱ_t. When x̂_0 is clipped, ε̂ is re-derived from the
    clipped x̂_0 (diffusers' ``use_clipped_model_output=True``, k-diffusion's view), so the step stays
    consistent with x_t and η = 1 over all T steps equals :func:`ddpm_step` even with clipping.
    ``x0_pred``: the model's own x̂_0 (a v-model's, :class:`~minildm.objective.VPrediction`), used instead of
    Eq. 12's; it is the only one there is where ᾱ_t = 0 (zero terminal SNR).
    """
    t = torch.as_tensor(t, device=x_t.device).long().reshape(-1)
    t_prev = torch.as_tensor(t_prev, device=x_t.device).long().reshape(-1)
    n = x_t.ndim
    # coefficients in float64, cast to x's dtype only when they meet x
    ab_t = extract(alpha_bar, t, n)  # (B, 1, 1, 1)  ᾱ_t
    ab_prev = torch.where(t_prev.reshape(-1, *([1] * (n - 1))) >= 0,
                          extract(alpha_bar, t_prev.clamp(min=0), n), torch.ones_like(ab_t))  # ᾱ_{t_prev}
    # σ_t(η) = η √((1 − ᾱ_{t−1}) / (1 − ᾱ_t)) √(1 − ᾱ_t / ᾱ_{t−1})          (DDIM Eq. 16)
    sigma = eta * ((1 - ab_prev) / (1 - ab_t)).sqrt() * (1 - ab_t / ab_prev).clamp(min=0).sqrt()
    # direction pointing to x_t: √(1 − ᾱ_{t−1} − σ_t²) ε̂  (clamped: rounding can make it −1e-17)
    dir_coef = (1 - ab_prev - sigma**2).clamp(min=0).sqrt()
    if x0_pred is None:
        # x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t                                    ("predicted x_0", Eq. 12)
        x0_pred = (x_t - (1 - ab_t).sqrt().to(x_t.dtype) * eps_pred) / ab_t.sqrt().to(x_t.dtype)
    if clip_x0 is not None:
        x0_pred = x0_pred.clamp(-clip_x0, clip_x0)
        # ε̂ = (x_t − √ᾱ_t x̂_0) / √(1 − ᾱ_t): the noise that the clipped x̂_0 implies
        eps_pred = (x_t - ab_t.sqrt().to(x_t.dtype) * x0_pred) / (1 - ab_t).sqrt().to(x_t.dtype)
    # x_{t−1} = √ᾱ_{t−1} x̂_0 + √(1 − ᾱ_{t−1} − σ_t²) ε̂ + σ_t ε_t                (DDIM Eq. 12)
    x_prev = ab_prev.sqrt().to(x_t.dtype) * x0_pred + dir_coef.to(x_t.dtype) * eps_pred
    if eta > 0 and bool((sigma > 0).any()):
        if noise is None:
            noise = torch.randn_like(x_t)
        x_prev = x_prev + sigma.to(x_t.dtype) * noise
    return x_prev, x0_pred


@torch.no_grad()
def ddim_sample(model, x_T: Tensor, sched: NoiseSchedule, timesteps: Tensor | None = None, *, eta: float = 0.0,
                steps: int = 50, spacing: str = "leading", generator: torch.Generator | None = None,
                callback: Callback = None, model_kwargs: dict | None = None, clip_x0: float | None = None) -> Tensor:
    """DDIM sampling (Song et al. 2021, §4.1–4.2) over ``timesteps`` (default: ``steps`` by ``spacing``).

    η = 0 is deterministic (the same x_T always gives the same x_0, no noise drawn); η = 1 with all T
    steps is DDPM's ancestral sampler. x_T (B, …) → x_0 (B, …).
    """
    ts = timestep_list(sched.T, timesteps, steps, spacing)
    x = x_T
    B = x.shape[0]
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1  # −1: the last step lands on x_0 (ᾱ_{−1} = 1)
        t_batch, eps_pred, x0_model = _call_model_x0(model, x, t, model_kwargs, sched.alpha_bar)
        t_prev_batch = torch.full((B,), t_prev, dtype=torch.long, device=x.device)  # (B,)
        noise = _noise_like(x, generator) if eta > 0 and t_prev >= 0 else None
        x_prev, x0_pred = ddim_step(x, t_batch, t_prev_batch, eps_pred, sched.alpha_bar, eta=eta, noise=noise,
                                    clip_x0=clip_x0, x0_pred=x0_model)
        if callback is not None:
            callback(dict(i=i, t=t, x_t=x, x0_pred=x0_pred, eps_pred=eps_pred))
        x = x_prev
    return x


# every sampler by name: DiffusionModel.sample(sampler=...), the CLI's --sampler, minildm.editing.sdedit
SAMPLERS = {"ddpm": ddpm_sample, "ddim": ddim_sample, "euler": euler_sample, "heun": heun_sample,
            "dpmpp_2m": dpmpp_2m_sample, "euler_ancestral": euler_ancestral_sample}



def get_sampler(name: str):
    """``SAMPLERS[name]``, or a ValueError that names the samplers there are."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]
