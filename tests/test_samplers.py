"""Samplers against the maths: posterior closed form, ε-oracles, DDIM η=0 determinism, DDIM(η=1, all T) = DDPM."""
import math

import pytest
import torch

from minildm.samplers import SAMPLERS, ddim_sample, ddim_step, ddim_timesteps, ddpm_sample, ddpm_step
from minildm.schedule import make_schedule, q_posterior, q_sample, q_step

D = torch.float64



def oracle_eps(x0):
    """ε̂ that is exactly right for this x0: invert x_t = √ᾱ x0 + √(1−ᾱ) ε (DDPM Eq. 4)."""
    def model(x_t, t, alpha_bar):
        ab = alpha_bar[t].reshape(-1, 1, 1, 1).to(x_t.dtype)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
    return model


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x, t):
        return self.conv(x) + (t.float() / 1000).reshape(-1, 1, 1, 1)


# ------------------------------------------------------------------------------------------ posterior
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_posterior_matches_bayes_on_scalars(name):
    sched = make_schedule(name, 1000)
    x0, x_t = 0.7, -0.3
    for t in [0, 1, 2, 500, 999]:
        beta = sched.betas[t].item()
        ab_prev = sched.alpha_bar_prev[t].item()
        mean, var = q_posterior(torch.tensor([[x0]], dtype=D), torch.tensor([[x_t]], dtype=D),
                                torch.tensor([t]), sched)
        if t == 0:  # ᾱ_{−1} = 1: q(x_{−1} | x_0) is a point mass at x_0
            exp_mean, exp_var = x0, 0.0
        else:
            # prior q(x_{t−1}|x_0) = N(√ᾱ_{t−1} x0, 1−ᾱ_{t−1})  (Eq. 4); likelihood q(x_t|x_{t−1}) = N(√α_t x_{t−1}, β_t)  (Eq. 2)
            prec = (1 - beta) / beta + 1 / (1 - ab_prev)
            exp_var = 1 / prec
            exp_mean = exp_var * (math.sqrt(1 - beta) * x_t / beta + math.sqrt(ab_prev) * x0 / (1 - ab_prev))
        assert mean.item() == pytest.approx(exp_mean, rel=1e-9, abs=1e-12)
        assert var.item() == pytest.approx(exp_var, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("t", [1, 10, 49])
def test_posterior_matches_regression_on_forward_samples(t):
    sched = make_schedule("linear", 50)
    g = torch.Generator().manual_seed(t)
    N, x0 = 200_000, 0.8
    x0s = torch.full((N, 1), x0, dtype=D)
    x_prev = q_sample(x0s, torch.full((N,), t - 1), sched.alpha_bar, torch.randn(N, 1, generator=g, dtype=D))
    x_t = q_step(x_prev, torch.full((N,), t), sched.betas, torch.randn(N, 1, generator=g, dtype=D))
    # least squares x_{t−1} ≈ a x_t + b; the residual variance is Var[x_{t−1} | x_t]
    X = torch.cat([x_t, torch.ones_like(x_t)], 1)
    a, b = torch.linalg.lstsq(X, x_prev).solution.flatten().tolist()
    resid_var = (x_prev - X @ torch.tensor([[a], [b]], dtype=D)).var().item()
    # q_posterior is affine in x_t: read off its slope and intercept at x_t = 0 and 1
    m0, var = q_posterior(x0s[:1], torch.zeros(1, 1, dtype=D), torch.tensor([t]), sched)
    m1, _ = q_posterior(x0s[:1], torch.ones(1, 1, dtype=D), torch.tensor([t]), sched)
    assert a == pytest.approx((m1 - m0).item(), abs=0.01)
    assert b == pytest.approx(m0.item(), abs=0.01)
    assert resid_var == pytest.approx(var.item(), rel=0.02)


# ------------------------------------------------------------------------------------------- oracles
def test_ddpm_step_with_oracle_recovers_x0():
    sched = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 5, 5, generator=g, dtype=D) * 2 - 1
    for t in [0, 1, 300, 999]:
        tt = torch.full((4,), t)
        eps = torch.randn(x0.shape, generator=g, dtype=D)
        x_t = q_sample(x0, tt, sched.alpha_bar, eps)
        x_prev, x0_pred = ddpm_step(x_t, tt, eps, sched, noise=torch.zeros_like(x0))
        torch.testing.assert_close(x0_pred, x0, rtol=0, atol=1e-9)
        mean, _ = q_posterior(x0, x_t, tt, sched)  # with z = 0 the step lands on the true posterior mean
        torch.testing.assert_close(x_prev, mean, rtol=0, atol=1e-9)


@pytest.mark.parametrize("sampler,kw", [(ddim_sample, dict(eta=0.0, steps=10)), (ddpm_sample, {})])
def test_full_sampler_with_oracle_returns_x0(sampler, kw):
    sched = make_schedule("linear", 1000 if sampler is ddim_sample else 50)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 1, 4, 4, generator=g, dtype=D) * 2 - 1
    preds = []
    out = sampler(oracle_eps(x0), torch.randn(x0.shape, generator=g, dtype=D), sched, generator=g,
                  model_kwargs=dict(alpha_bar=sched.alpha_bar), callback=lambda d: preds.append(d["x0_pred"]), **kw)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-8)
    for p in preds:
        torch.testing.assert_close(p, x0, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------- DDIM
def test_ddim_eta0_is_deterministic_and_ignores_the_generator():
    sched = make_schedule("linear", 100)
    x_T = torch.randn(2, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    outs = [ddim_sample(Tiny(), x_T, sched, steps=10, eta=0.0, generator=torch.Generator().manual_seed(s))
            for s in (0, 0, 123)]
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0], outs[2])


def test_ddim_eta1_sigma_equals_ddpm_posterior_variance():
    sched = make_schedule("linear", 1000)
    T = sched.T
    t = torch.arange(T)
    x_t = torch.randn(T, 1, 1, 1, dtype=D)
    eps = torch.randn(T, 1, 1, 1, dtype=D)
    step = lambda noise: ddim_step(x_t, t, t - 1, eps, sched.alpha_bar, eta=1.0, noise=noise)[0]
    # the noise enters as + σ_t ε_t, so σ_t = x_prev(ε_t = 1) − x_prev(ε_t = 0)
    sigma = (step(torch.ones_like(x_t)) - step(torch.zeros_like(x_t))).flatten()
    _, var = q_posterior(torch.zeros_like(x_t), x_t, t, sched)
    torch.testing.assert_close(sigma**2, var.flatten(), rtol=1e-9, atol=1e-15)
    # and the means agree: DDIM's Eq. 12 at η=1 and one-step hops is DDPM's μ̃ (Eq. 7)
    mean_ddpm = ddpm_step(x_t, t, eps, sched, noise=torch.zeros_like(x_t))[0]
    torch.testing.assert_close(step(torch.zeros_like(x_t)), mean_ddpm, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("t", [1, 50, 999])
def test_ddim_eta1_step_statistics_match_ddpm_step(t):
    sched = make_schedule("linear", 1000)
    N = 100_000
    x_t = torch.full((N, 1, 1, 1), 0.3, dtype=D)
    eps = torch.full_like(x_t, -0.5)
    tt = torch.full((N,), t)
    a = ddim_step(x_t, tt, tt - 1, eps, sched.alpha_bar, eta=1.0,
                  noise=torch.randn(x_t.shape, generator=torch.Generator().manual_seed(0), dtype=D))[0]
    b = ddpm_step(x_t, tt, eps, sched, noise=torch.randn(x_t.shape, generator=torch.Generator().manual_seed(1),
                                                          dtype=D))[0]
    sd = b.std().item()
    assert abs(a.mean().item() - b.mean().item()) < 5 * sd * math.sqrt(2 / N)
    assert a.var().item() == pytest.approx(b.var().item(), rel=0.03)


def test_ddim_all_steps_eta1_equals_ddpm_sampler():
    sched = make_schedule("linear", 20)
    x_T = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    # same seed → same ε_t at every step; clip_x0 keeps an untrained model's samples bounded
    a = ddpm_sample(Tiny(), x_T, sched, generator=torch.Generator().manual_seed(7), clip_x0=1.0)
    b = ddim_sample(Tiny(), x_T, sched, steps=sched.T, eta=1.0, generator=torch.Generator().manual_seed(7),
                    clip_x0=1.0)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("T", [1000, 7])
def test_ddim_timesteps_for_every_step_count(T):
    for steps in range(1, T + 1):
        ts = ddim_timesteps(T, steps)
        assert ts.dtype == torch.long
        assert ts.shape == (steps,)
        assert (ts[:-1] > ts[1:]).all()                      # strictly descending, hence unique
        assert ts[-1] == 0
        assert ts[0] <= T - 1  # ends at 0, inside 0..T−1
        assert ts[0] >= T - math.ceil(T / steps)             # starts within one stride of T−1
        gaps = set((ts[:-1] - ts[1:]).tolist())
        assert gaps <= {T // steps, math.ceil(T / steps)}    # evenly spaced
    assert ddim_timesteps(1000, 50)[:3].tolist() == [980, 960, 940]
    assert ddim_timesteps(T, T).tolist() == list(range(T - 1, -1, -1))
    for bad in (0, T + 1):
        with pytest.raises(ValueError, match="steps must be between 1 and T"):
            ddim_timesteps(T, bad)


# ------------------------------------------------------------------------------------ shared contract
@pytest.mark.parametrize("name,kw,n_steps", [("ddpm", {}, 30), ("ddim", dict(steps=8, eta=0.5), 8)])
def test_callback_once_per_step_and_reproducible(name, kw, n_steps):
    sched = make_schedule("linear", 30)
    x_T = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    events = []
    a = SAMPLERS[name](Tiny(), x_T, sched, generator=torch.Generator().manual_seed(5), callback=events.append,
               clip_x0=1.0, **kw)
    assert len(events) == n_steps
    assert [e["i"] for e in events] == list(range(n_steps))
    assert all(set(e) == {"i", "t", "x_t", "x0_pred", "eps_pred"} for e in events)
    assert events[0]["t"] == (29 if name == "ddpm" else 26)
    assert events[-1]["t"] == 0
    assert all(e["x0_pred"].abs().max() <= 1.0 for e in events)  # clip_x0
    b = SAMPLERS[name](Tiny(), x_T, sched, generator=torch.Generator().manual_seed(5), clip_x0=1.0, **kw)
    c = SAMPLERS[name](Tiny(), x_T, sched, generator=torch.Generator().manual_seed(6), clip_x0=1.0, **kw)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.dtype == x_T.dtype
    assert a.shape == x_T.shape


def test_bad_input_errors_teach():
    sched = make_schedule("linear", 10)
    x_T = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="η = 1.*use ddim_sample"):
        ddpm_sample(Tiny(), x_T, sched, eta=0.5)
    with pytest.raises(ValueError, match="shape"):
        ddim_sample(lambda x, t: x[:, :1], x_T, sched, steps=2)
    assert set(SAMPLERS) == {"ddpm", "ddim", "euler", "heun", "dpmpp_2m", "euler_ancestral"}


def test_ddpm_on_fewer_steps_is_the_respaced_chains_posterior():
    """ddpm_sample(steps=K < T) is ancestral sampling on the respaced chain τ: x_{τ_{i+1}} ~ q(· | x_{τ_i}, x̂_0) of
    that chain, i.e. mean √ᾱ_prev·x̂_0 + √(1 − ᾱ_prev − σ²)·ε̂ and σ² = (1 − ᾱ_prev)/(1 − ᾱ_t)·(1 − ᾱ_t/ᾱ_prev),
    written out here step by step, with the same noise draws."""
    sched = make_schedule("linear", 20)
    x_T = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    model = Tiny()
    got = ddpm_sample(model, x_T, sched, steps=5, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    ab = sched.alpha_bar.float()
    ts = ddim_timesteps(20, 5).tolist()
    x = x_T
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        with torch.no_grad():
            eps = model(x, torch.full((2,), t))
        ab_t, ab_prev = ab[t], (ab[t_prev] if t_prev >= 0 else torch.tensor(1.0))
        x0 = (x - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
        var = (1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - var).clamp(min=0).sqrt() * eps
        if t_prev >= 0:
            x = x + var.sqrt() * torch.randn(x.shape, generator=g)
    torch.testing.assert_close(got, x, rtol=1e-5, atol=1e-4)  # float32 rounding over 5 steps
    # with all T steps it is Algorithm 2 itself, not the respaced path
    full = ddpm_sample(model, x_T, sched, steps=20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(full, ddpm_sample(model, x_T, sched, generator=torch.Generator().manual_seed(3)))

