"""The ODE solvers in σ, the timestep spacings, SDEdit and DDIM inversion, against exact answers.

The reference case: data x_0 ~ N(μ, s² I). Its optimal ε-predictor is known in closed form,
ε*(x_t, t) = E[ε | x_t] = √(1 − ᾱ_t)(x_t − √ᾱ_t μ) / (ᾱ_t s² + 1 − ᾱ_t), and so is the probability-flow ODE's solution
in σ-space (x̃ = x_t/√ᾱ_t, σ = √((1 − ᾱ)/ᾱ)): x̃(σ) − μ = (x̃(σ_0) − μ)·√(s² + σ²)/√(s² + σ_0²). All in float64.
The spacings are checked against diffusers' ``DDIMScheduler.set_timesteps`` (0.42.1, steps_offset 0), recorded once.
"""
import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from minildm.editing import ddim_invert, inversion_round_trip, sdedit
from minildm.ldm import DiffusionModel
from minildm.samplers import SAMPLERS, ddim_sample, ddim_timesteps, ddpm_sample
from minildm.schedule import NoiseSchedule, make_schedule, q_sample
from minildm.solvers import euler_ancestral_sample, euler_sample
from minildm.spacing import spaced_timesteps
from test_guidance import class_model
from test_samplers import Tiny

D = torch.float64
MU, S = 0.3, 0.5
LINEAR = make_schedule("linear", 1000)
ODE = ("euler", "heun", "dpmpp_2m")
NEW = ODE + ("euler_ancestral",)


def eps_star(x_t, ab, mu=MU, s=S):
    # ε*(x_t, t) = √(1 − ᾱ) (x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ)
    return (1 - ab).sqrt() * (x_t - ab.sqrt() * mu) / (ab * s**2 + 1 - ab)


def gaussian_eps(sched, mu=MU, s=S):
    """The exact ε-predictor of N(μ, s² I) data under ``sched``, as a sampler's ``model(x_t, t)``."""
    def model(x_t, t):
        ab = sched.alpha_bar[t].reshape(-1, *[1] * (x_t.ndim - 1)).to(x_t.dtype)  # (B, 1, …)
        return eps_star(x_t, ab, mu, s)
    return model


def sigma_of(sched, t):
    ab = sched.alpha_bar[t].item()
    return math.sqrt((1 - ab) / ab)


def exact_x0(x_T, sched, t0, mu=MU, s=S):
    """The ODE's x_0 from x_T at index t0: x̃(0) − μ = (x̃(σ_0) − μ)·s/√(s² + σ_0²), x̃(σ_0) = x_T √(1 + σ_0²)."""
    sigma0 = sigma_of(sched, t0)
    return mu + (x_T * math.sqrt(1 + sigma0**2) - mu) * s / math.sqrt(s**2 + sigma0**2)


def ladder(n=40, sigma_min=1e-3, sigma_max=80.0, rho=7.0) -> NoiseSchedule:
    """A schedule whose n + 1 levels are Karras et al.'s ρ-ladder (their Eq. 5), σ_min at t = 0 to σ_max at t = n."""
    j = torch.arange(n + 1, dtype=D) / n
    sigma = (sigma_min ** (1 / rho) + j * (sigma_max ** (1 / rho) - sigma_min ** (1 / rho))) ** rho
    alpha_bar = 1 / (1 + sigma**2)  # σ² = (1 − ᾱ)/ᾱ
    return NoiseSchedule("karras-ladder", 1 - alpha_bar / torch.cat([torch.ones(1, dtype=D), alpha_bar[:-1]]))


def affine_law(name, sched, **kw):
    """Every ODE solver is affine in x_T for this linear ε*: x_0 = a·x_T + b, so x_T ~ N(0, 1) gives N(b, a²)."""
    b = SAMPLERS[name](gaussian_eps(sched), torch.zeros(1, 1, dtype=D), sched, **kw).item()
    return SAMPLERS[name](gaussian_eps(sched), torch.ones(1, 1, dtype=D), sched, **kw).item() - b, b


# ------------------------------------------------------------------------------------------ the reference itself
def test_the_closed_form_solves_the_ode():
    """dx̃/dσ = ε*(x̃/√(1 + σ²), ᾱ = 1/(1 + σ²)) along the closed form, by central differences (rel. 1e-7)."""
    x_start, sigma0 = torch.tensor([-1.3, 0.2, 2.5], dtype=D), 50.0
    path = lambda sig: MU + (x_start - MU) * math.sqrt(S**2 + sig**2) / math.sqrt(S**2 + sigma0**2)  # noqa: E731
    for sig in (0.05, 0.5, 3.0, 40.0):
        h = 1e-5 * sig
        slope = (path(sig + h) - path(sig - h)) / (2 * h)
        ab = torch.tensor(1 / (1 + sig**2), dtype=D)
        assert_close(slope, eps_star(path(sig) / math.sqrt(1 + sig**2), ab), rtol=1e-7, atol=0)


def test_the_solvers_send_noise_to_the_data():
    """x_T ~ q(x_{t_0}) exactly is sent to N(μ, s²) exactly by the closed form; from N(0, 1) (ᾱ_999 ≈ 4e-5) it misses
    by < 1e-3. The solvers' own laws N(b, a²) at 100 trailing steps: |a − a*| < 2e-2 (Euler), < 2e-3 (Heun, DPM++)."""
    ab = LINEAR.alpha_bar[999].item()
    b_star = exact_x0(torch.zeros(1, dtype=D), LINEAR, 999).item()
    a_star = exact_x0(torch.ones(1, dtype=D), LINEAR, 999).item() - b_star
    assert a_star * math.sqrt(ab) * MU + b_star == pytest.approx(MU, abs=1e-12)  # mean of q(x_T) = √ᾱ μ
    assert a_star**2 * (ab * S**2 + 1 - ab) == pytest.approx(S**2, abs=1e-12)  # its variance ᾱ s² + 1 − ᾱ
    assert abs(b_star - MU) < 1e-3 and abs(a_star**2 - S**2) < 1e-4  # from N(0, 1) instead
    for name, tol in (("euler", 2e-2), ("heun", 2e-3), ("dpmpp_2m", 2e-3)):
        a, b = affine_law(name, LINEAR, steps=100, spacing="trailing")
        assert abs(a - a_star) < tol, name
        assert abs(b - b_star) < tol * MU, name


# ------------------------------------------------------------------------------------------ Euler is DDIM
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("clip", [None, 0.6])
def test_euler_is_ddim_eta0(spacing, clip):
    """Same timesteps, same x_T: the same x_0 and the same per-step x_t, x̂_0 to 1e-10 (float64), clipped or not."""
    x_T = torch.randn(8, 1, 3, 3, dtype=D, generator=torch.Generator().manual_seed(0))
    model = gaussian_eps(LINEAR)
    got, want = [], []
    a = euler_sample(model, x_T, LINEAR, steps=20, spacing=spacing, clip_x0=clip, callback=got.append)
    b = ddim_sample(model, x_T, LINEAR, steps=20, spacing=spacing, clip_x0=clip, callback=want.append)
    assert_close(a, b, rtol=0, atol=1e-10)
    for e, f in zip(got, want, strict=True):
        assert e["t"] == f["t"]
        for key in ("x_t", "x0_pred", "eps_pred"):
            assert_close(e[key], f[key], rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------------------ order of accuracy
@pytest.mark.parametrize("name, low, high", [("euler", 0.8, 1.2), ("heun", 1.8, 2.4), ("dpmpp_2m", 1.8, 2.4)])
def test_order_of_accuracy(name, low, high):
    """Max error against the closed form on a fixed σ ladder (80 → 1e-3, then 0) with 10, 20, 40 steps: the slope of
    log error against log steps is the solver's order (1 for Euler/DDIM, 2 for Heun and DPM-Solver++(2M))."""
    sched = ladder(40)
    x_T = torch.randn(64, 1, 2, 2, dtype=D, generator=torch.Generator().manual_seed(0))
    want = exact_x0(x_T, sched, 40)
    counts, errors = [10, 20, 40], []
    for k in counts:
        out = SAMPLERS[name](gaussian_eps(sched), x_T, sched, torch.arange(40, -1, -40 // k))  # k + 1 indices
        errors.append((out - want).abs().max().item())
    slope = -np.polyfit(np.log(counts), np.log(errors), 1)[0]
    assert low < slope < high, (errors, slope)


@pytest.mark.parametrize("name, nfe", [("euler", 10), ("heun", 19), ("dpmpp_2m", 10), ("euler_ancestral", 10)])
def test_network_evaluations(name, nfe):
    calls = []
    model = gaussian_eps(LINEAR)
    SAMPLERS[name](lambda x, t: calls.append(int(t[0])) or model(x, t), torch.zeros(2, 1, dtype=D), LINEAR, steps=10,
                   generator=torch.Generator().manual_seed(0))
    assert len(calls) == nfe
    assert set(calls) <= set(ddim_timesteps(1000, 10).tolist())  # only trained indices of the list


# ------------------------------------------------------------------------------------------ Euler-ancestral
@pytest.mark.parametrize("eta", [0.3, 1.0])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_euler_ancestral_is_ddim_with_the_same_eta(eta, spacing):
    """DDIM's Eq. 12 with σ_t(η), in x̃: the same numbers (1e-10, float64) from the same generator; η = 0 is Euler."""
    x_T = torch.randn(8, 1, 3, 3, dtype=D, generator=torch.Generator().manual_seed(0))
    model = gaussian_eps(LINEAR)
    a = euler_ancestral_sample(model, x_T, LINEAR, steps=20, eta=eta, spacing=spacing,
                               generator=torch.Generator().manual_seed(4))
    b = ddim_sample(model, x_T, LINEAR, steps=20, eta=eta, spacing=spacing, generator=torch.Generator().manual_seed(4))
    assert_close(a, b, rtol=0, atol=1e-10)
    zero = euler_ancestral_sample(model, x_T, LINEAR, steps=20, eta=0.0, spacing=spacing)
    assert torch.equal(zero, euler_sample(model, x_T, LINEAR, steps=20, spacing=spacing))


def test_euler_ancestral_all_steps_is_ddpm():
    sched = make_schedule("linear", 50)
    x_T = torch.randn(4, 1, 3, 3, dtype=D, generator=torch.Generator().manual_seed(0))
    a = euler_ancestral_sample(gaussian_eps(sched), x_T, sched, steps=50, generator=torch.Generator().manual_seed(1))
    b = ddpm_sample(gaussian_eps(sched), x_T, sched, generator=torch.Generator().manual_seed(1))
    assert_close(a, b, rtol=0, atol=1e-10)


def test_euler_ancestral_samples_the_data():
    """η = 1 on all 1000 steps, n = 20,000 draws from N(0, 1): mean and variance within 5 standard errors of μ, s²
    (s/√n for the mean, s²√(2/(n − 1)) for the variance)."""
    n = 20_000
    x_T = torch.randn(n, 1, dtype=D, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    out = euler_ancestral_sample(gaussian_eps(LINEAR), x_T, LINEAR, steps=1000, generator=g)
    assert abs(out.mean().item() - MU) < 5 * S / math.sqrt(n)
    assert abs(out.var().item() - S**2) < 5 * S**2 * math.sqrt(2 / (n - 1))


# ------------------------------------------------------------------------------------------ the shared contract
@pytest.mark.parametrize("name", NEW)
def test_contract_callback_seed_dtype_and_eta(name):
    sched = make_schedule("linear", 30)
    x_T = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    events = []
    run = lambda seed, **kw: SAMPLERS[name](Tiny(), x_T, sched, steps=8, spacing="trailing", clip_x0=1.0,  # noqa: E731
                                            generator=torch.Generator().manual_seed(seed), **kw)
    a = run(5, callback=events.append)
    assert [e["i"] for e in events] == list(range(8))
    assert [e["t"] for e in events] == spaced_timesteps(30, 8, "trailing").tolist()
    assert all(set(e) == {"i", "t", "x_t", "x0_pred", "eps_pred"} for e in events)
    assert all(e["x0_pred"].abs().max() <= 1.0 for e in events)  # clip_x0
    assert a.dtype == x_T.dtype and a.shape == x_T.shape
    assert torch.equal(a, run(5))
    assert torch.equal(a, run(6)) == (name in ODE)  # only euler_ancestral draws per-step noise
    if name in ODE:
        with pytest.raises(ValueError, match=f"the {name} sampler is deterministic.*euler_ancestral"):
            run(5, eta=0.5)


def test_through_diffusion_model_with_guidance():
    """DiffusionModel.sample(sampler=NAME, guidance=2) is NAME on ε̃ = ε_∅ + 2(ε_y − ε_∅), written out here."""
    unet = class_model()
    model = DiffusionModel(unet, make_schedule("linear", 50), None, image_size=8, clip_x0=None)  # no clamp to ±1
    y = torch.tensor([3, 5])
    null = unet.null_condition(2, torch.device("cpu"))

    def eps(x, t):
        e_y, e_null = unet(x, t, y=y), unet(x, t, y=null)
        return e_null + 2.0 * (e_y - e_null)

    for name in NEW:
        _, z0 = model.sample(2, sampler=name, steps=3, spacing="trailing", y=y, guidance=2.0, seed=0,
                             return_latents=True)
        g = torch.Generator().manual_seed(0)
        x_T = torch.randn((2, *model.sample_shape), generator=g)  # what sample draws first
        with torch.no_grad():
            want = SAMPLERS[name](eps, x_T, model.sched, steps=3, spacing="trailing", generator=g)
        assert_close(z0, want, rtol=1e-4, atol=1e-3)  # float32: one batched forward of 2B against two of B
        _, z1 = model.sample(2, sampler=name, steps=3, spacing="trailing", y=y, guidance=1.0, seed=0,
                             return_latents=True)
        assert (z0 - z1).abs().mean() > 1.0  # guidance changed them (the untrained x̂_0 are in the hundreds)


# ------------------------------------------------------------------------------------------ spacing
DIFFUSERS = {  # DDIMScheduler(num_train_timesteps=1000, timestep_spacing=…, steps_offset=0).set_timesteps(K)
    ("leading", 50): list(range(980, -1, -20)),
    ("trailing", 50): list(range(999, 0, -20)),
    ("linspace", 50): [999, 979, 958, 938, 917, 897, 877, 856, 836, 816, 795, 775, 754, 734, 714, 693, 673, 652, 632,
                       612, 591, 571, 550, 530, 510, 489, 469, 449, 428, 408, 387, 367, 347, 326, 306, 285, 265, 245,
                       224, 204, 183, 163, 143, 122, 102, 82, 61, 41, 20, 0],
    ("trailing", 7): [999, 856, 713, 570, 428, 285, 142],
    ("linspace", 7): [999, 832, 666, 500, 333, 166, 0],
    ("linspace", 3): [999, 500, 0],  # a tie (499.5), rounded to even as NumPy does
    ("leading", 10): [900, 800, 700, 600, 500, 400, 300, 200, 100, 0],
    ("trailing", 1): [999],
    ("linspace", 1): [0],
}


@pytest.mark.parametrize("spacing, K", list(DIFFUSERS))
def test_spacing_matches_diffusers(spacing, K):
    assert spaced_timesteps(1000, K, spacing).tolist() == DIFFUSERS[(spacing, K)]


@pytest.mark.parametrize("T", [1000, 7])
def test_every_spacing_for_every_step_count(T):
    for K in range(1, T + 1):
        for spacing in ("leading", "trailing", "linspace"):
            ts = spaced_timesteps(T, K, spacing)
            assert ts.dtype == torch.long and ts.shape == (K,)
            assert (ts[:-1] > ts[1:]).all()  # strictly descending, hence unique
            assert 0 <= ts[-1] and ts[0] <= T - 1
        assert torch.equal(spaced_timesteps(T, K, "leading"), ddim_timesteps(T, K))
        assert spaced_timesteps(T, K, "trailing")[0] == T - 1
        if K > 1:
            assert {0, T - 1} <= set(spaced_timesteps(T, K, "linspace").tolist())
        # diffusers' float formulas: equal but at exact halves, where float error rounds either way (and its arange
        # gives trailing an extra −1 for some K: compare the first K)
        j = np.arange(K, 0, -1)
        trailing = (np.round(np.arange(T, 0, -T / K)) - 1)[:K]
        agree(spaced_timesteps(T, K, "trailing"), trailing, tie=(2 * j * T) % K == 0)
        i = np.arange(K - 1, -1, -1)
        linspace = np.linspace(0, T - 1, K).round()[::-1]
        agree(spaced_timesteps(T, K, "linspace"), linspace, tie=(2 * i * (T - 1)) % max(K - 1, 1) == 0)


def agree(ours, theirs, tie):
    """Equal where j·T/K is not exactly k + ½; within 1 where it is (tie also marks exact integers, which agree)."""
    diff = np.abs(ours.numpy() - theirs)
    assert (diff[~tie] == 0).all() and (diff <= 1).all(), (ours, theirs)


def test_spacing_errors_teach():
    for bad in (0, 1001):
        with pytest.raises(ValueError, match="steps must be between 1 and T=1000"):
            spaced_timesteps(1000, bad, "trailing")
    with pytest.raises(ValueError, match="unknown spacing 'uniform'; choose one of leading, trailing, linspace"):
        spaced_timesteps(1000, 50, "uniform")
    with pytest.raises(ValueError, match="unknown spacing 'uniform'"):
        euler_sample(Tiny(), torch.zeros(1, 2, 4, 4), LINEAR, steps=5, spacing="uniform")


# ------------------------------------------------------------------------------------------ SDEdit
def x0_data(n=256):
    return MU + S * torch.randn(n, 1, 2, 2, dtype=D, generator=torch.Generator().manual_seed(3))


def test_sdedit_at_strength_zero_keeps_and_at_one_is_sampling():
    x0 = x0_data()
    model = gaussian_eps(LINEAR)
    assert torch.equal(sdedit(model, x0, LINEAR, 0.0), x0)
    # s = 0.001: one step at t = 0 (σ_0 = 0.01): back to x0 within 2σ_0 RMS
    near = sdedit(model, x0, LINEAR, 0.001, generator=torch.Generator().manual_seed(0))
    assert (near - x0).pow(2).mean().sqrt() < 2 * sigma_of(LINEAR, 0)
    # s = 1: x0 noised to the list's first t, then the whole list: exactly the sampler from there
    for name, spacing in (("euler_ancestral", "trailing"), ("heun", "leading")):
        got = sdedit(model, x0, LINEAR, 1.0, sampler=name, steps=20, spacing=spacing,
                     generator=torch.Generator().manual_seed(7))
        g = torch.Generator().manual_seed(7)
        ts = spaced_timesteps(1000, 20, spacing)
        x_t = q_sample(x0, ts[:1].expand(len(x0)), LINEAR.alpha_bar, torch.randn(x0.shape, generator=g, dtype=D))
        assert torch.equal(got, SAMPLERS[name](model, x_t, LINEAR, ts, generator=g))


def test_sdedit_starts_where_the_strength_says():
    seen = []
    sdedit(gaussian_eps(LINEAR), x0_data(4), LINEAR, 0.5, steps=50, callback=seen.append)
    assert [e["t"] for e in seen] == list(range(480, -1, -20))  # leading's indices ≤ 0.5·999
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        sdedit(gaussian_eps(LINEAR), x0_data(4), LINEAR, 1.5)


# ------------------------------------------------------------------------------------------ inversion
def test_inversion_round_trip_shrinks_with_steps():
    """On N(μ, s²) data with the exact ε*: the round trip's RMS error halves as the steps double (first order, each
    ratio within 1.6–2.4) and is < 0.03 (6% of s) at 80 steps; x_T approaches the exact inverse of the ODE map."""
    x0 = x0_data()
    model = gaussian_eps(LINEAR)
    rms, x_T_err = [], []
    for k in (10, 20, 40, 80):
        x_T, back, err = inversion_round_trip(model, x0, LINEAR, steps=k)
        assert err.shape == (len(x0),)
        assert_close(err, (back - x0).flatten(1).pow(2).mean(1).sqrt())
        rms.append(err.pow(2).mean().sqrt().item())
        t0 = ddim_timesteps(1000, k)[0].item()
        sigma0 = sigma_of(LINEAR, t0)
        # the exact inverse: x̃(σ_0) = μ + (x_0 − μ)·√(s² + σ_0²)/s, x_T = x̃(σ_0)/√(1 + σ_0²)
        exact = (MU + (x0 - MU) * math.sqrt(S**2 + sigma0**2) / S) / math.sqrt(1 + sigma0**2)
        x_T_err.append((x_T - exact).abs().max().item())
    assert all(1.6 < a / b < 2.4 for a, b in zip(rms, rms[1:])), rms
    assert rms[-1] < 0.03
    assert all(a > b for a, b in zip(x_T_err, x_T_err[1:])), x_T_err
    for name in ("heun", "dpmpp_2m", "ddim"):  # any deterministic sampler decodes it back as well
        assert inversion_round_trip(model, x0, LINEAR, sampler=name, steps=80)[2].pow(2).mean().sqrt() < 0.03
    with pytest.raises(ValueError, match="needs a deterministic sampler"):
        inversion_round_trip(model, x0, LINEAR, sampler="ddpm")


def test_inversion_visits_the_samplers_timesteps_upwards():
    seen = []
    ddim_invert(gaussian_eps(LINEAR), x0_data(2), LINEAR, steps=10, spacing="trailing", callback=seen.append)
    assert [e["t"] for e in seen] == spaced_timesteps(1000, 10, "trailing").flip(0).tolist()
