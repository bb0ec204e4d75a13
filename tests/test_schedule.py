"""The forward process (DDPM §2): golden schedule values, Eq. 4 against iterating Eq. 2."""
import math

import pytest
import torch

from minildm import schedule


def test_linear_endpoints_are_ddpms():
    b = schedule.make_betas("linear", 1000)
    assert b.shape == (1000,)
    assert b[0].item() == pytest.approx(1e-4)
    assert b[-1].item() == pytest.approx(0.02)


def test_scaled_linear_is_linear_in_sqrt_beta():
    b = schedule.make_betas("scaled_linear", 1000)
    assert b[0].item() == pytest.approx(0.00085)
    assert b[-1].item() == pytest.approx(0.012)
    d = torch.diff(b.sqrt())
    torch.testing.assert_close(d, torch.full_like(d, d[0].item()))  # constant steps in √β ...
    assert torch.diff(b).std() > 0  # ... so not constant steps in β: the naming trap


def test_cosine_starts_near_one_and_ends_near_zero():
    s = schedule.make_schedule("cosine", 1000)
    assert s.alpha_bar[0].item() == pytest.approx(1.0, abs=1e-4)
    assert s.alpha_bar[-1].item() < 1e-6
    assert s.betas.max().item() <= 0.999


@pytest.mark.parametrize("name", schedule.SCHEDULES)
@pytest.mark.parametrize("T", [10, 1000])
def test_alpha_bar_strictly_decreasing_in_unit_interval(name, T):
    s = schedule.make_schedule(name, T)
    ab = s.alpha_bar
    assert (torch.diff(ab) < 0).all()
    assert (ab > 0).all()
    assert (ab < 1).all()
    assert (torch.diff(s.snr) < 0).all()
    assert s.alpha_bar_prev[0].item() == 1.0
    torch.testing.assert_close(s.alpha_bar_prev[1:], ab[:-1])


def test_golden_values():
    # ᾱ_T of each schedule at T = 1000: what notebook 01 prints (NBVAL_CHECK_OUTPUT) and discusses
    assert schedule.make_schedule("linear").alpha_bar[-1].item() == pytest.approx(4.036e-05, rel=1e-3)
    assert schedule.make_schedule("scaled_linear").alpha_bar[-1].item() == pytest.approx(4.660e-03, rel=1e-3)
    assert schedule.make_schedule("linear").alpha_bar[499].item() == pytest.approx(
        math.prod(1 - (1e-4 + (0.02 - 1e-4) * i / 999) for i in range(500)), rel=1e-9)


def test_bad_schedule_and_timesteps_are_explained():
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'"):
        schedule.make_betas("quadratic", 100)
    ab = schedule.make_schedule("linear", 10).alpha_bar
    with pytest.raises(IndexError, match="0..9"):
        schedule.q_sample(torch.zeros(1, 1, 2, 2), torch.tensor([10]), ab)
    with pytest.raises(TypeError, match="integer"):
        schedule.q_sample(torch.zeros(1, 1, 2, 2), torch.tensor([1.0]), ab)


def test_q_sample_deterministic_given_eps_and_exact_at_extremes():
    s = schedule.make_schedule("linear", 1000)
    x0 = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 10, 500, 999])
    x_t = schedule.q_sample(x0, t, s.alpha_bar, eps)
    ab = s.alpha_bar[t].view(4, 1, 1, 1)
    torch.testing.assert_close(x_t, ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    # predict_x0_from_eps inverts Eq. 4 exactly when given the true noise
    torch.testing.assert_close(schedule.predict_x0_from_eps(x_t, t, eps, s.alpha_bar), x0)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_closed_form_matches_iterated_chain_in_distribution(name):
    """Eq. 4 vs Eq. 2 iterated: mean and variance of x_t over many chains from one fixed x0."""
    T, t_end, n = 200, 120, 40000
    s = schedule.make_schedule(name, T)
    g = torch.Generator().manual_seed(0)
    x0 = torch.linspace(-1, 1, 6, dtype=torch.float64)  # six "pixels"
    x = x0.expand(n, 6).clone()
    for step in range(t_end + 1):
        x = schedule.q_step(x, torch.full((n,), step), s.betas, torch.randn(n, 6, generator=g, dtype=torch.float64))
    ab = s.alpha_bar[t_end]
    se_mean = ((1 - ab) / n).sqrt()
    assert ((x.mean(0) - ab.sqrt() * x0).abs() < 5 * se_mean).all()
    assert ((x.var(0) - (1 - ab)).abs() < 5 * (1 - ab) * (2 / n) ** 0.5).all()
    # and the closed form, sampled directly, agrees with the chain's empirical moments
    y = schedule.q_sample(x0.expand(n, 6), torch.full((n,), t_end), s.alpha_bar,
                          torch.randn(n, 6, generator=g, dtype=torch.float64))
    assert ((y.mean(0) - x.mean(0)).abs() < 7 * se_mean).all()
    assert ((y.var(0) / x.var(0)) - 1).abs().max() < 0.05


def test_snr_from_betas_and_golden_values():
    """SNR(t) of DDPM's linear schedule from its β's alone, in Python floats, not through schedule's own code."""
    T = 1000
    s = schedule.make_schedule("linear", T)
    assert s.snr.dtype == torch.float64
    # t = 0: one step of Eq. 2 leaves signal 1 − β_0 and noise β_0, so SNR = 0.9999 / 1e-4 = 9999
    assert s.snr[0].item() == pytest.approx(9999.0, rel=1e-9)
    for t in (1, 10, 100, 499, 500, 998, 999):
        a_bar = math.prod(1 - (1e-4 + (0.02 - 1e-4) * i / (T - 1)) for i in range(t + 1))  # ᾱ_t = ∏_{i≤t} α_i
        assert s.snr[t].item() == pytest.approx(a_bar / (1 - a_bar), rel=1e-9), t
    assert s.snr[-1].item() == pytest.approx(4.036e-05, rel=1e-3)  # ≈ ᾱ_T: essentially pure noise at the end
    assert (torch.diff(s.snr) < 0).all()  # monotone: every step removes signal


@pytest.mark.parametrize("name,T,ts", [("linear", 1000, (0, 100, 200, 300, 400, 500)),
                                        ("cosine", 50, (0, 10, 20, 30, 40))])
def test_snr_is_the_empirical_signal_to_noise_ratio_of_q_sample(name, T, ts):
    """SNR(t) = (signal power) / (noise power) of x_t ~ q(x_t | x_0), measured over many noise draws of q_sample."""
    s = schedule.make_schedule(name, T)
    n, D = 20000, 64
    x0 = torch.randn(D, dtype=torch.float64)
    x0 = x0 / x0.pow(2).mean().sqrt()  # unit signal power, so SNR is the ratio of the two powers in x_t
    measured = []
    for t in ts:
        x_t = schedule.q_sample(x0.expand(n, D), torch.full((n,), t), s.alpha_bar)  # q_sample draws ε itself
        scale = (x_t.mean(0) @ x0) / (x0 @ x0)  # E[x_t] = (signal scale) · x_0
        noise_var = x_t.var(0).mean()  # Var[x_t] per pixel: the noise power
        measured.append((scale**2 / noise_var).item())
        assert measured[-1] == pytest.approx(s.snr[t].item(), rel=0.03), (t, measured[-1], s.snr[t].item())
    assert all(a > b for a, b in zip(measured, measured[1:]))  # less signal, more noise, as t grows


# ------------------------------------------------------------------ zero terminal SNR and v (issue 15)
@pytest.mark.parametrize("name", schedule.SCHEDULES)
def test_zero_terminal_snr_ends_at_pure_noise_and_keeps_the_start(name):
    """Lin et al. 2024, Alg. 1: ᾱ_T = 0 exactly, ᾱ_1 unchanged, √ᾱ an affine map of the original's (shift, scale),
    still strictly decreasing; β_T = 1 (the last step keeps no signal), every other β in (0, 1)."""
    base = schedule.make_schedule(name, 1000)
    z = schedule.make_schedule(name + schedule.ZERO_SNR, 1000)
    assert z.alpha_bar[-1].item() == 0.0
    assert z.alpha_bar[0].item() == pytest.approx(base.alpha_bar[0].item(), rel=1e-12)
    a, b = base.alpha_bar.sqrt(), z.alpha_bar.sqrt()
    slope = (b[0] - b[-1]) / (a[0] - a[-1])
    torch.testing.assert_close(b, slope * (a - a[-1]), rtol=0, atol=1e-12)
    assert (torch.diff(z.alpha_bar) < 0).all()
    assert z.betas[-1].item() == pytest.approx(1.0, abs=1e-12)
    assert ((z.betas[:-1] > 0) & (z.betas[:-1] < 1)).all()
    with pytest.raises(ValueError, match="_zero_snr"):
        schedule.make_betas("quadratic_zero_snr", 10)


@pytest.mark.parametrize("sched_name", ["linear", "linear_zero_snr"])
def test_v_eps_and_x0_round_trip(sched_name):
    """x_t = √ᾱ x_0 + √(1−ᾱ) ε and v = √ᾱ ε − √(1−ᾱ) x_0 are a rotation of (x_0, ε): from (x_t, v) both come back
    exactly, also at ᾱ_T = 0 where ε-prediction cannot recover x_0."""
    ab = schedule.make_schedule(sched_name, 1000).alpha_bar
    g = torch.Generator().manual_seed(0)
    x0, eps = (torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64) for _ in range(2))
    t = torch.tensor([0, 1, 250, 500, 998, 999])
    x_t = schedule.q_sample(x0, t, ab, eps)
    v = schedule.v_target(x0, eps, t, ab)
    torch.testing.assert_close(schedule.x0_from_v(x_t, v, t, ab), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(schedule.eps_from_v(x_t, v, t, ab), eps, rtol=0, atol=1e-12)
    # ‖x_t‖² + ‖v‖² = ‖x_0‖² + ‖ε‖² per element pair (a rotation by the angle φ_t, cos φ = √ᾱ)
    torch.testing.assert_close(x_t**2 + v**2, x0**2 + eps**2, rtol=0, atol=1e-12)


def test_v_loss_is_zero_for_the_v_oracle_and_samplers_run_a_v_model():
    """diffusion_loss(target="v") is 0 for a model that returns the true v; eps_model_from_v turns the exact v-model
    of Gaussian data into the exact ε-model, so DDIM gives the same samples from either."""
    from minildm.objective import diffusion_loss, eps_model_from_v
    from minildm.samplers import ddim_sample

    sched = schedule.make_schedule("linear", 1000)
    ab = sched.alpha_bar
    g = torch.Generator().manual_seed(1)
    x0, eps = (torch.randn(8, 1, 4, 4, generator=g, dtype=torch.float64) for _ in range(2))
    t = torch.randint(0, 1000, (8,), generator=g)
    oracle = lambda x_t, tt: schedule.v_target(x0, eps, tt, ab)  # noqa: E731
    assert diffusion_loss(oracle, x0, ab, t=t, eps=eps, target="v").item() < 1e-24
    assert diffusion_loss(oracle, x0, ab, t=t, eps=eps).item() > 0.1  # the same model judged as an ε-model
    with pytest.raises(ValueError, match="target must be"):
        diffusion_loss(oracle, x0, ab, t=t, eps=eps, target="x0")

    mu, s2 = 0.3, 0.25  # x_0 ~ N(μ, s²): E[ε | x_t] and E[x_0 | x_t] in closed form

    def eps_star(x_t, tt):
        a = schedule.extract(ab, tt, x_t.ndim)
        return (1 - a).sqrt() * (x_t - a.sqrt() * mu) / (a * s2 + 1 - a)

    def v_star(x_t, tt):
        a = schedule.extract(ab, tt, x_t.ndim)
        e = eps_star(x_t, tt)
        return a.sqrt() * e - (1 - a).sqrt() * (x_t - (1 - a).sqrt() * e) / a.sqrt()

    x_T = torch.randn(16, 1, 2, 2, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ddim_sample(eps_model_from_v(v_star, ab), x_T, sched, steps=20),
                               ddim_sample(eps_star, x_T, sched, steps=20), rtol=0, atol=1e-9)
