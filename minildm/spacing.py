"""Which timesteps a sampler visits, and what every sampler shares.  Notebook 02 · DDIM §4.2 · Lin et al. 2024 §3.3.

A sampler with K < T steps visits a descending sub-sequence τ of the training indices 0..T−1 (code index t is the
paper's t+1, as in ``schedule.py``). Where τ starts and ends is a choice with consequences: Lin et al. (2024,
"Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2) name three, as diffusers'
``DDIMScheduler.set_timesteps`` does:

============  ================================  ===================  ========================================
spacing       τ (ascending, then flipped)       T = 1000, K = 50     note
============  ================================  ===================  ========================================
``leading``   ⌊i·T/K⌋, i = 0…K−1                980, 960, …, 20, 0   DDIM's; starts at T−1 only if K = T
``trailing``  round(j·T/K) − 1, j = 1…K         999, 979, …, 39, 19  starts at T−1, the noisiest step trained
``linspace``  round(i·(T−1)/(K−1)), i = 0…K−1   999, 979, 958, …, 0  both ends
============  ================================  ===================  ========================================

``round`` is round-half-to-even, as NumPy's. All three are computed in integers, so no float rounding can merge
two indices. They are diffusers' lists (``tests/test_solvers.py`` compares them) but for step counts K that do not
divide T: diffusers' ``leading`` uses the stride ⌊T/K⌋ (T = 1000, K = 7: it starts at 852, this one at 857); its
float ``arange`` gives ``trailing`` one index too many, −1, for some K (61, 103, … at T = 1000); and where the exact
value is a half (999·13/26 = 499.5 for ``linspace`` with K = 27), its float arithmetic lands on either side of it.
Every sampler lands on x_0 after the last index of τ: t_prev = −1 there, with ᾱ_{−1} = 1.

The helpers below are the contract of :mod:`minildm.samplers` (DDPM, DDIM) and :mod:`minildm.solvers` (the ODE
solvers in σ): ε̂ is asked for at integer t of x_t's shape, and noise is drawn on the CPU.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

SPACINGS = ("leading", "trailing", "linspace")
Callback = Optional[Callable[[dict], None]]  # every sampler's callback(dict(i, t, x_t, x0_pred, eps_pred))


def _round_half_even(num: int, den: int) -> int:
    """round(num / den) for integers, ties to even (NumPy's rule), with no float in between."""
    q, r = divmod(num, den)
    return q + (2 * r > den or (2 * r == den and q % 2 == 1))


def spaced_timesteps(T: int, steps: int, spacing: str = "leading") -> Tensor:
    """τ: ``steps`` indices of 0..T−1 by ``spacing`` (the table above), strictly descending. Long tensor (steps,)."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)} (leading: DDIM's, "
                         f"starts a stride below T-1; trailing: starts at T-1; linspace: both ends)")
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be between 1 and T={T} (got {steps}): DDIM picks a sub-sequence of 0..T-1.")
    if spacing == "leading":
        # τ_i = ⌊i·T/K⌋: gaps ⌊T/K⌋ or ⌈T/K⌉, ends at 0
        tau = [i * T // steps for i in range(steps)]
    elif spacing == "trailing":
        # τ_j = round(j·T/K) − 1: ends at T−1; gaps ≥ 1 since T/K ≥ 1 (two ties one apart would need T/K = 1)
        tau = [_round_half_even(j * T, steps) - 1 for j in range(1, steps + 1)]
    else:
        # τ_i = round(i·(T−1)/(K−1)): 0 and T−1 both in; K = 1 gives [0], as np.linspace(0, T−1, 1) does
        tau = [_round_half_even(i * (T - 1), steps - 1) for i in range(steps)] if steps > 1 else [0]
    return torch.tensor(tau, dtype=torch.long).flip(0)  # (steps,) descending


def timestep_list(T: int, timesteps: Tensor | None, steps: int, spacing: str = "leading") -> list[int]:
    """The indices a sampler visits: ``timesteps`` as given (checked), else :func:`spaced_timesteps`."""
    if timesteps is None:
        timesteps = spaced_timesteps(T, steps, spacing)
    ts = torch.as_tensor(timesteps).cpu().long().reshape(-1).tolist()
    if any(a <= b for a, b in zip(ts, ts[1:])) or not ts or ts[-1] < 0 or ts[0] >= T:
        raise ValueError(f"timesteps must be strictly descending indices in 0..{T - 1}, got {ts[:5]}…")
    return ts


def _noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, I) of x's shape, drawn on the CPU (reproducible per seed on every device), then moved."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.randn(x.shape, generator=generator, dtype=dtype).to(x.device, x.dtype)


def _call_model(model, x_t: Tensor, t: int, model_kwargs: dict | None) -> tuple[Tensor, Tensor]:
    """Run ε_θ(x_t, t) with t broadcast to a (B,) long tensor; returns (t_batch, eps_pred in x_t's dtype)."""
    B = x_t.shape[0]
    t_batch = torch.full((B,), int(t), dtype=torch.long, device=x_t.device)  # (B,)
    eps_pred = model(x_t, t_batch, **(model_kwargs or {}))
    if eps_pred.shape != x_t.shape:
        raise ValueError(f"the model must return ε̂ of x_t's shape {tuple(x_t.shape)}, got {tuple(eps_pred.shape)}")
    return t_batch, eps_pred.to(x_t.dtype)


def _call_model_x0(model, x_t: Tensor, t: int, model_kwargs: dict | None,
                   alpha_bar: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """:func:`_call_model`, plus the model's own x̂_0 when it has one (a v-model, :class:`~minildm.objective.VPrediction`):
    ``(t_batch, eps_pred, x0_pred or None)``. Where ᾱ_t = 0 an ε-model has no x̂_0 (0/0), which is an error that says so."""
    if hasattr(model, "eps_and_x0"):
        B = x_t.shape[0]
        t_batch = torch.full((B,), int(t), dtype=torch.long, device=x_t.device)  # (B,)
        eps_pred, x0_pred = model.eps_and_x0(x_t, t_batch, **(model_kwargs or {}))
        return t_batch, eps_pred.to(x_t.dtype), x0_pred.to(x_t.dtype)
    if float(alpha_bar[int(t)]) == 0.0:
        raise ValueError(f"ᾱ_{int(t)} = 0 (zero terminal SNR): an ε-model's x̂_0 = (x_t − ε̂)/√ᾱ_t is 0/0 there; "
                         "sample a v-prediction model (TrainConfig(target='v'), objective.VPrediction)")
    return (*_call_model(model, x_t, t, model_kwargs), None)
