"""v-prediction and zero terminal SNR end to end: the exact v-model of Gaussian data sampled on the zero-SNR schedule
(where an ε-model has no x̂_0), the training option, and the checkpoint that remembers what its network predicts.

Data x_0 ~ N(μ, s²). E[x_0 | x_t] = μ + √ᾱ s² (x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ) and E[ε | x_t] in closed form give the exact
v* = √ᾱ E[ε | x_t] − √(1 − ᾱ) E[x_0 | x_t]. At ᾱ_T = 0, x_T is pure noise, v* = −μ, and the probability-flow ODE maps
x_T to x_0 = μ + s·x_T exactly (the σ → ∞ limit of the solution in tests/test_solvers.py).
"""
import dataclasses
import math
import types

import pytest
import torch

from minildm import presets, recipes
from minildm.checkpoint import CheckpointError
from minildm.editing import ddim_invert, inversion_round_trip, sdedit
from minildm.ldm import DiffusionModel
from minildm.objective import VPrediction
from minildm.release import load_diffusion
from minildm.samplers import ddim_sample, ddpm_sample
from minildm.schedule import extract, make_schedule
from minildm.solvers import euler_sample, heun_sample
from minildm.spacing import spaced_timesteps
from minildm.train import TrainConfig, train_diffusion
from test_train import TinyEps

D = torch.float64
MU, S = 0.3, 0.5
ZERO = make_schedule("linear_zero_snr", 1000)


def v_star(sched, mu=MU, s=S):
    """The exact v-predictor of N(μ, s²) data under ``sched``, as ``model(x_t, t)``."""
    def model(x_t, t):
        a = extract(sched.alpha_bar, t, x_t.ndim).to(x_t.dtype)
        denom = a * s**2 + 1 - a
        eps = (1 - a).sqrt() * (x_t - a.sqrt() * mu) / denom  # E[ε | x_t]
        x0 = mu + a.sqrt() * s**2 * (x_t - a.sqrt() * mu) / denom  # E[x_0 | x_t]
        return a.sqrt() * eps - (1 - a).sqrt() * x0
    return model


def eps_only(sched):
    v = VPrediction(v_star(sched), sched.alpha_bar)
    return lambda x_t, t: v(x_t, t)  # the same ε̂, but without eps_and_x0: what an ε-model gives a sampler


def test_ddim_on_zero_snr_converges_to_the_exact_ode_solution_at_first_order():
    """DDIM (trailing: it starts at t = T − 1, where ᾱ = 0 and x̂_0 = −v̂) with the exact v-model: the error
    against x_0 = μ + s·x_T falls with the step count, about as 1/K (first order)."""
    x_T = torch.linspace(-2.5, 2.5, 11, dtype=D).reshape(-1, 1)
    exact = MU + S * x_T
    errors = {}
    for k in (10, 20, 40, 80):
        out = ddim_sample(VPrediction(v_star(ZERO), ZERO.alpha_bar), x_T, ZERO, steps=k, spacing="trailing")
        assert torch.isfinite(out).all()
        errors[k] = (out - exact).abs().max().item()
    orders = [math.log2(errors[k] / errors[2 * k]) for k in (10, 20, 40)]
    assert all(0.7 < p < 1.4 for p in orders), (errors, orders)
    assert errors[80] < errors[10] / 6  # eight times the steps, about an eighth of the error


def test_ancestral_sampling_on_zero_snr_draws_the_data_distribution():
    """DDPM's ancestral sampler on all 1000 zero-SNR steps with the exact v-model: 20,000 draws have mean μ and
    standard deviation s (tolerances: 5 standard errors of each)."""
    n = 20000
    x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(0), dtype=D)
    out = ddpm_sample(VPrediction(v_star(ZERO), ZERO.alpha_bar), x_T, ZERO,
                      generator=torch.Generator().manual_seed(1))
    assert abs(out.mean().item() - MU) < 5 * S / math.sqrt(n)
    assert abs(out.std().item() - S) < 5 * S / math.sqrt(2 * n)


def test_an_eps_model_at_zero_snr_and_the_sigma_solvers_are_clear_errors():
    x_T = torch.randn(4, 1, dtype=D)
    with pytest.raises(ValueError, match="zero terminal SNR.*v-prediction"):
        ddim_sample(eps_only(ZERO), x_T, ZERO, steps=10, spacing="trailing")
    for solver in (euler_sample, heun_sample):
        with pytest.raises(ValueError, match="σ-space solvers"):
            solver(VPrediction(v_star(ZERO), ZERO.alpha_bar), x_T, ZERO, steps=10, spacing="trailing")
    # leading spacing starts at t = 980 < T − 1, where ᾱ > 0: an ε-model runs there
    assert torch.isfinite(ddim_sample(eps_only(ZERO), x_T, ZERO, steps=50, spacing="leading")).all()


class ExactV(torch.nn.Module):
    """v* as a network DiffusionModel can hold: one pixel, one channel."""
    cfg = types.SimpleNamespace(in_channels=1, out_channels=1)

    def __init__(self, sched):
        super().__init__()
        self.anchor, self.v = torch.nn.Parameter(torch.zeros(())), v_star(sched)

    def forward(self, x_t, t):
        return self.v(x_t, t)


def test_editing_a_v_model_through_its_denoiser():
    """SDEdit and DDIM inversion take ε-models; a v-model goes in through DiffusionModel.denoiser(), which wraps it
    in VPrediction. With the exact v*, inversion then lands near the exact inverse of the ODE map (the formula of
    tests/test_solvers.py) and the round trip closes (< 0.03 at 80 steps); the raw v-network read as ε̂ lands far
    from it (its round trip closes too, being the same map both ways: only x_T shows the bypass)."""
    lin = make_schedule("linear", 1000)
    dm = DiffusionModel(ExactV(lin), lin, None, image_size=1, clip_x0=None, prediction="v")
    eps, mk = dm.denoiser()
    assert isinstance(eps, VPrediction) and mk is None
    x0 = (MU + S * torch.randn(256, 1, 1, 1, generator=torch.Generator().manual_seed(0), dtype=D))
    a0 = lin.alpha_bar[spaced_timesteps(1000, 80, "leading")[0]].item()  # where the 80 leading steps start
    sigma0 = math.sqrt((1 - a0) / a0)
    exact = (MU + (x0 - MU) * math.sqrt(S**2 + sigma0**2) / S) / math.sqrt(1 + sigma0**2)
    x_T, _, err = inversion_round_trip(eps, x0, lin, steps=80)
    assert err.pow(2).mean().sqrt() < 0.03
    assert (x_T - exact).abs().max() < 0.05
    x_T_raw = ddim_invert(dm.unet, x0, lin, steps=80)
    assert (x_T_raw - exact).abs().max() > 1.0  # the bypass this guards against
    assert torch.equal(sdedit(eps, x0, lin, 0.0), x0)
    half = sdedit(eps, x0, lin, 0.5, sampler="ddim", generator=torch.Generator().manual_seed(1))
    assert abs(half.mean().item() - MU) < 0.1 and abs(half.std().item() - S) < 0.1  # back on N(μ, s²)
    with pytest.raises(ValueError, match="needs the conditions y"):
        dm.denoiser(guidance=2.0)
    # zero terminal SNR: the top of the trailing list is σ = ∞, which no inversion reaches
    with pytest.raises(ValueError, match="zero SNR there"):
        ddim_invert(VPrediction(v_star(ZERO), ZERO.alpha_bar), x0, ZERO, steps=10, spacing="trailing")
    lead = inversion_round_trip(VPrediction(v_star(ZERO), ZERO.alpha_bar), x0, ZERO, steps=80)[2]
    assert lead.pow(2).mean().sqrt() < 0.03  # leading stops at t = 980, where inversion is fine


def test_train_diffusion_fits_v_when_asked_and_refuses_eps_at_zero_snr():
    """With data 0 and a network that outputs 0, the first loss is E‖ε‖² = 1 for ε-prediction but E[ᾱ_t] < 1 for
    v = √ᾱ ε (the target the loss was told to use); ε on a zero-SNR schedule is refused before any step."""
    sched = make_schedule("linear", 50)
    data = torch.zeros(16, 1, 8, 8)

    def first_loss(target):
        net = TinyEps()
        for p in net.parameters():
            torch.nn.init.zeros_(p)
        cfg = TrainConfig(steps=1, batch_size=256, lr=1e-12, warmup=0, log_every=1, target=target)
        return train_diffusion(net, data, sched, cfg, progress=False).history[0][1]

    assert first_loss("eps") == pytest.approx(1.0, abs=0.02)
    assert first_loss("v") == pytest.approx(sched.alpha_bar.mean().item(), abs=0.08)
    with pytest.raises(ValueError, match="zero SNR.*target='v'"):
        train_diffusion(TinyEps(), data, make_schedule("linear_zero_snr", 50), TrainConfig(steps=1), progress=False)
    with pytest.raises(ValueError, match="TrainConfig.target must be"):
        train_diffusion(TinyEps(), data, sched, TrainConfig(steps=1, target="x0"), progress=False)


@pytest.mark.filterwarnings("ignore:resuming")
def test_a_v_run_loads_as_a_v_model_and_cannot_be_resumed_as_eps(tmp_path):
    base = presets.PRESETS["pixel-mnist"]("smoke")
    preset = dataclasses.replace(base, schedule="linear_zero_snr",
                                 train=dataclasses.replace(base.train, steps=2, target="v", sample_every=0))
    images = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    recipes.train_preset(preset, images, ckpt_path=tmp_path / "v.pt", progress=False)
    model = load_diffusion(tmp_path / "v.pt")
    assert model.prediction == "v" and model.sched.name == "linear_zero_snr"
    x = model.sample(2, sampler="ddim", steps=5, spacing="trailing")  # starts at ᾱ = 0: needs x̂_0 = −v̂
    assert torch.isfinite(x).all()
    eps_preset = dataclasses.replace(preset, schedule="linear", train=dataclasses.replace(preset.train, target="eps"))
    with pytest.raises(CheckpointError, match="schedule|prediction target"):
        recipes.train_preset(eps_preset, images, ckpt_path=tmp_path / "v.pt", progress=False)
    v_linear = dataclasses.replace(preset, schedule="linear")  # same target, another schedule
    eps_zero = dataclasses.replace(preset, train=dataclasses.replace(preset.train, target="eps"))
    with pytest.raises(CheckpointError, match="'linear_zero_snr' β schedule"):
        recipes.train_preset(v_linear, images, ckpt_path=tmp_path / "v.pt", progress=False)
    with pytest.raises((CheckpointError, ValueError), match="prediction target|zero SNR"):
        recipes.train_preset(eps_zero, images, ckpt_path=tmp_path / "v.pt", progress=False)
