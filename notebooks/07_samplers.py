# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Samplers: the probability-flow ODE, why deterministic DDIM falls short here, and quality per evaluation
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/minildm/minildm/blob/main/notebooks/07_samplers.ipynb)
#
# **Papers:** Song et al. 2021 (DDIM) §4.3, Eq. 14 (DDIM as an ODE); Karras et al. 2022 ("Elucidating the design
# space", EDM) §3 and Alg. 1 (Heun); Lu et al. 2022 (DPM-Solver++), Alg. 2; Lin et al. 2024 ("Common diffusion
# noise schedules and sample steps are flawed") §3.3, Table 2 (timestep spacing); Meng et al. 2022 (SDEdit) §3.
#
# Notebook 02 wrote two samplers as loops: DDPM's ancestral one, 1000 noisy steps, and DDIM's, 50 deterministic
# ones. Notebook 04 found that on the course's small latent model deterministic DDIM (η = 0) scores clearly worse
# than ancestral sampling, which contradicts DDIM's own Table 1, where η = 0 is the best at 50 steps. A learner
# should not leave with "DDIM drifts" as folklore. This notebook takes the samplers apart and measures them on the
# **shipped** models (`minildm/weights/latent_mnist.pt`, and `latent_faces_toy.pt` for the faces), so no training
# is needed:
#
# | sampler (`sampler=`) | view | network evaluations (NFE) for K steps | stochastic? |
# |---|---|---|---|
# | `ddpm` | Markov chain: the posterior q(x_{t−1} \| x_t, x̂_0) (DDPM Alg. 2), respaced for K < T | K | yes (η = 1) |
# | `ddim` | DDIM Eq. 12; η = 0 is Euler's method on the ODE | K | η > 0 only |
# | `euler` | the probability-flow ODE in σ, first order | K | no |
# | `heun` | the same ODE, second order (Karras Alg. 1) | 2K − 1 | no |
# | `dpmpp_2m` | the ODE solved exactly in log σ for a linear x̂_0, second order (Lu et al. 2022) | K | no |
# | `euler_ancestral` | an Euler step down, fresh noise back up: the SDE counterpart | K | yes |
#
# **You will:** rewrite $x_t$ so that the forward process only *adds* noise, and see DDIM η = 0 turn into Euler's
# method on an ODE; write Euler, Heun, DPM-Solver++(2M) and Euler-ancestral as naive loops and check each against
# `minildm`; measure their order of accuracy on the real ε_θ; compare the three timestep spacings; **diagnose**
# deterministic DDIM's gap with one measurement per candidate cause; plot quality against network evaluations and
# against wall-clock; and edit real digits with SDEdit and DDIM inversion.
#
# **Two paths** (the first cell below). The notebook trains nothing: both paths load the shipped models, and differ
# only in how much they measure. `FAST = True`, the default in smoke and cpu mode, is the fast path: n = 200 samples
# per Fréchet distance and the budgets of 10 and 25 network evaluations in §4; `FAST = False`, the default in gpu
# mode, is the full path: n = 500 on a CPU (2,000 on a GPU) and budgets up to 50 (100 on a GPU). Measured on one
# thread of a 2-core machine: the fast path 4.5 minutes of kernel CPU time (4.9 min wall, beside another
# notebook's run on the other core, 2026-12-06); the full path 19.2 min at n = 500 (2026-12-02, on a shared CPU; about 14 min expected on idle cores). On a Colab T4 expect a few minutes for either
# (not measured). Where the smaller n leaves a comparison open, the prose quotes the n = 2,000 study
# (`scripts/sampler_study.py`), labelled as recorded.

# %%
# Colab only: install minildm from GitHub (a no-op anywhere else), and nothing more: Colab ships every dependency,
# and upgrading its own IPython, ipykernel or ipywidgets would ask for a runtime restart.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "minildm @ git+https://github.com/minildm/minildm"], check=True)

# %%
import copy
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import minildm
from minildm import config, editing, evaluate, faces, release, samplers, schedule, solvers, spacing, uncertainty, viz
from minildm.data import mnist
from minildm.exercises import check
from minildm.face_classifier import carried_spread, chance_rates, load_attribute_classifier
from minildm.latents import encode_dataset
from minildm.shipped import shipped

print(config.describe())
print(viz.mode_banner())
device = config.get_device()
model = release.load_diffusion(shipped("latent_mnist"), map_location=device)  # ε_θ + schedule + the f = 4 autoencoder
unet, sched, ae = model.unet, model.sched, model.first_stage
print(f"shipped {model.name}: ε_θ on latents {model.sample_shape}, {sum(p.numel() for p in unet.parameters()):,} "
      f"parameters, {sched.T} training steps; trained {model.checkpoint_info.get('step', '?')} steps")
ev = evaluate.Evaluator(device=device)  # the judge: an MNIST classifier no training loss of the course touched

FAST = config.get_mode() != "gpu"  # True: smaller measurements (fast path); False: the full sizes. Nothing trains
SEED = 0  # every sampler starts from the same z_T (the seed's first draw): differences are the samplers'
N = config.pick(smoke=32, cpu=200 if FAST else 500, gpu=2000)  # samples per Fréchet distance (FD)
N_BOOT = config.pick(smoke=50, cpu=200, gpu=200)  # bootstrap resamples per interval
REF_STEPS = config.pick(smoke=100, cpu=1000, gpu=1000)  # the reference: DDPM's ancestral sampler on all its steps
DDIM_STEPS = config.pick(smoke=(10, 50), cpu=(10, 50, 250), gpu=(10, 50, 250, 1000))  # §3.1: does the gap close?
NFES = config.pick(smoke=(10,), cpu=(10, 25) if FAST else (10, 25, 50), gpu=(10, 15, 25, 50, 100))  # §4: NFE per sample
N_HELD = config.pick(smoke=64, cpu=1000, gpu=2000)  # held-out test digits, encoded, for §3.3
N_TRAIN_Z = config.pick(smoke=256, cpu=2000, gpu=5000)  # training digits encoded for the spread of z_0
N_FACES = config.pick(smoke=4, cpu=32, gpu=512)  # generated faces per setting in §3.6
FACE_STEPS = config.pick(smoke=10, cpu=50, gpu=50)
N_EDIT = config.pick(smoke=8, cpu=200, gpu=500)  # digits edited by SDEdit (§5)
N_INV = config.pick(smoke=4, cpu=32, gpu=256)  # digits inverted (§5)
print(f"{'fast' if FAST else 'full'} path (nothing is trained): n = {N} samples per FD (bootstrap {N_BOOT}), "
      f"reference DDPM-{REF_STEPS}, DDIM steps {DDIM_STEPS}, NFE {NFES}")

# %% [markdown]
# ## 1 · The probability-flow ODE in σ
#
# The forward process of notebook 01 scales the signal down as it adds noise: $x_t = \sqrt{\bar\alpha_t}\,x_0 +
# \sqrt{1-\bar\alpha_t}\,\varepsilon$. Divide by $\sqrt{\bar\alpha_t}$ and only the noise changes:
#
# $$\tilde x = \frac{x_t}{\sqrt{\bar\alpha_t}} = x_0 + \sigma_t\,\varepsilon,\qquad
#   \sigma_t = \sqrt{\frac{1-\bar\alpha_t}{\bar\alpha_t}} = \frac{1}{\sqrt{\mathrm{SNR}(t)}} .$$
#
# This is Karras et al.'s form ($s(t) = 1$, $\sigma(t) = t$): the data plus Gaussian noise of std σ. The
# *probability-flow ODE* carries a sample of $p_\sigma$ to one of $p_{\sigma'}$ without any randomness (Karras Eq. 1
# and 3; DDIM §4.3, Eq. 14):
#
# $$\frac{d\tilde x}{d\sigma} = \frac{\tilde x - D(\tilde x;\sigma)}{\sigma} = \hat\varepsilon,\qquad
#   D(\tilde x;\sigma) = \tilde x - \sigma\,\hat\varepsilon = \hat x_0,$$
#
# with $\hat\varepsilon = \varepsilon_\theta(x_t, t)$ asked at $x_t = \tilde x/\sqrt{1+\sigma_t^2}$: an ε-model *is*
# a denoiser $D$. One **Euler step** from σ to σ′ is $\tilde x' = \tilde x + (\sigma'-\sigma)\,\hat\varepsilon =
# \hat x_0 + \sigma'\hat\varepsilon$; multiply by $\sqrt{\bar\alpha'}$ and it reads $\sqrt{\bar\alpha'}\,\hat x_0 +
# \sqrt{1-\bar\alpha'}\,\hat\varepsilon$, which is **DDIM's Eq. 12 with η = 0**. Deterministic DDIM is Euler's
# method on this ODE, on the σ-ladder of its timesteps. The figure shows that ladder: σ spans several orders of
# magnitude between t = 0 and t = 999 (both ends are printed below it).

# %%
alpha_bar = sched.alpha_bar  # (T,) float64
sigma = ((1 - alpha_bar) / alpha_bar).sqrt()  # σ_t = √((1 − ᾱ_t) / ᾱ_t)
fig, ax = plt.subplots(1, 2, figsize=(10, 2.8))
ax[0].semilogy(sigma.numpy()); ax[0].set(xlabel="t", ylabel="σ_t", title="σ_t = √((1 − ᾱ_t)/ᾱ_t): the noise in x̃")
ax[1].plot(-sigma.log().numpy()); ax[1].set(xlabel="t", ylabel="λ_t = −log σ_t", title="half log-SNR (DPM-Solver's λ)")
for a in ax:
    a.grid(alpha=0.3)
fig.tight_layout()
print(f"σ_0 = {sigma[0]:.4f}, σ_{sched.T - 1} = {sigma[-1]:.1f}: x̃ at t = {sched.T - 1} is x_T × "
      f"{math.sqrt(1 + sigma[-1]**2):.1f}")


# %% [markdown]
# Written out: the state is x̃, the network sees $x_t = \tilde x/\sqrt{1+\sigma^2}$, and each step moves x̃ along
# the slope ε̂. It must agree with `samplers.ddim_sample(eta=0)` (Eq. 12, in $x_t$) and `solvers.euler_sample`.
# The check runs in float64, so that only the algebra differs: x̃ at t = 999 is x_T scaled up by the factor
# printed above, and in float32 the two routes round differently.

# %%
def sigma_at(t: int) -> float:
    """σ_t, and 0 past the last step (t = −1: x̃ = x_0)."""
    return 0.0 if t < 0 else math.sqrt((1 - alpha_bar[t].item()) / alpha_bar[t].item())


unet64 = copy.deepcopy(unet).double()  # a float64 copy for the checks


def eps_hat(x_t, t: int):
    """ε_θ(x_t, t) at one integer t for the whole batch."""
    return unet64(x_t, torch.full((x_t.shape[0],), t, device=x_t.device))


@torch.no_grad()
def naive_euler(x_T, ts):
    x = x_T * math.sqrt(1 + sigma_at(ts[0]) ** 2)  # x̃ = x_T / √ᾱ_{t_0}
    for i, t in enumerate(ts):
        s, s_next = sigma_at(t), sigma_at(ts[i + 1] if i + 1 < len(ts) else -1)
        d = eps_hat(x / math.sqrt(1 + s**2), t)  # dx̃/dσ = ε̂(x_t, t),  x_t = x̃ / √(1 + σ²)
        x = x + (s_next - s) * d  # Euler: x̃' = x̃ + (σ' − σ) ε̂
    return x


ts10 = spacing.spaced_timesteps(sched.T, 10, "leading").tolist()
z_T = torch.randn((8, *model.sample_shape), generator=torch.Generator().manual_seed(SEED)).to(device).double()
mine = naive_euler(z_T, ts10)
torch.testing.assert_close(mine, samplers.ddim_sample(unet64, z_T, sched, ts10, eta=0.0), rtol=1e-7, atol=1e-7)
torch.testing.assert_close(mine, solvers.euler_sample(unet64, z_T, sched, ts10), rtol=1e-7, atol=1e-7)
print(f"naive Euler in σ == samplers.ddim_sample(η=0) == solvers.euler_sample ✓  (10 steps, t = {ts10[:3]} … "
      f"{ts10[-1]})")

# %% [markdown]
# **Heun** (Karras et al. 2022, Alg. 1, without "churn") takes the Euler step as a *predictor*, asks ε_θ for the
# slope again where it landed, and steps with the mean of the two slopes: the trapezoid rule, second order. The
# second slope is asked at the next timestep of the list, so ε_θ only ever sees indices it was trained on. The
# last step, to σ = 0, has no slope to average with, so it stays Euler: **K steps cost 2K − 1 evaluations.**
#
# **DPM-Solver++(2M)** (Lu et al. 2022) uses that the ODE is *linear* in x̃ apart from the denoiser. In
# $\lambda = -\log\sigma$ it integrates exactly: $\tilde x' = \frac{\sigma'}{\sigma}\tilde x + \big(1 -
# \frac{\sigma'}{\sigma}\big)\hat D$. With $\hat D = D$ (x̂_0 held constant over the step) this is DDIM again; the
# second-order "2M" variant extrapolates x̂_0 linearly in λ from this step's and the previous one's,
# $\hat D = (1+\tfrac{1}{2r})D_i - \tfrac{1}{2r}D_{i-1}$ with $r = h_{i-1}/h_i$, $h = \lambda_{i+1}-\lambda_i$:
# second order from **one** evaluation per step, because the previous x̂_0 is reused ("multistep").

# %%
@torch.no_grad()
def naive_heun(x_T, ts):
    x = x_T * math.sqrt(1 + sigma_at(ts[0]) ** 2)
    for i, t in enumerate(ts):
        s, s_next = sigma_at(t), sigma_at(ts[i + 1] if i + 1 < len(ts) else -1)
        d = eps_hat(x / math.sqrt(1 + s**2), t)
        x_euler = x + (s_next - s) * d  # the predictor
        if s_next == 0:
            x = x_euler  # last step: Euler (Alg. 1, line 6)
        else:
            d_next = eps_hat(x_euler / math.sqrt(1 + s_next**2), ts[i + 1])  # the slope where Euler landed
            x = x + (s_next - s) * (d + d_next) / 2  # the trapezoid (Alg. 1, line 8)
    return x


@torch.no_grad()
def naive_dpmpp_2m(x_T, ts):
    x = x_T * math.sqrt(1 + sigma_at(ts[0]) ** 2)
    old_D, s_prev = None, None
    for i, t in enumerate(ts):
        s, s_next = sigma_at(t), sigma_at(ts[i + 1] if i + 1 < len(ts) else -1)
        D = x - s * eps_hat(x / math.sqrt(1 + s**2), t)  # D(x̃; σ) = x̂_0
        if s_next == 0:
            x = D  # λ = ∞: the exact solution is x̂_0 itself
        else:
            h = math.log(s / s_next)  # λ_{i+1} − λ_i
            if old_D is None:
                D_hat = D  # first step: DPM-Solver++(1), i.e. DDIM
            else:
                r = math.log(s_prev / s) / h
                D_hat = (1 + 1 / (2 * r)) * D - (1 / (2 * r)) * old_D  # x̂_0 extrapolated linearly in λ
            x = (s_next / s) * x + (1 - s_next / s) * D_hat
        old_D, s_prev = D, s
    return x


torch.testing.assert_close(naive_heun(z_T, ts10), solvers.heun_sample(unet64, z_T, sched, ts10), rtol=1e-7, atol=1e-7)
torch.testing.assert_close(naive_dpmpp_2m(z_T, ts10), solvers.dpmpp_2m_sample(unet64, z_T, sched, ts10),
                           rtol=1e-7, atol=1e-7)
print("naive Heun == solvers.heun_sample ✓   naive DPM-Solver++(2M) == solvers.dpmpp_2m_sample ✓")

# %% [markdown]
# **Euler-ancestral** is the stochastic counterpart (k-diffusion's `sample_euler_ancestral`). From σ it takes an
# Euler step *past* σ′, down to $\sigma_\downarrow$, then adds fresh noise of std $\sigma_\uparrow$ back up, with
# $\sigma_\downarrow^2+\sigma_\uparrow^2 = \sigma'^2$ and
# $\sigma_\uparrow = \eta\,\sigma'\sqrt{\sigma^2-\sigma'^2}/\sigma$. Written in x̃ this is DDIM's Eq. 12 with its
# $\sigma_t(\eta)$ of Eq. 16: η = 1 samples the posterior of the respaced chain (DDPM's ancestral sampler) and η = 0 is
# Euler. With the same generator it must give `samplers.ddim_sample`'s numbers for the same η:

# %%
@torch.no_grad()
def naive_euler_ancestral(x_T, ts, eta, generator):
    x = x_T * math.sqrt(1 + sigma_at(ts[0]) ** 2)
    for i, t in enumerate(ts):
        s, s_next = sigma_at(t), sigma_at(ts[i + 1] if i + 1 < len(ts) else -1)
        d = eps_hat(x / math.sqrt(1 + s**2), t)
        if s_next == 0 or eta == 0:
            x = x + (s_next - s) * d
            continue
        s_up = min(s_next, eta * s_next * math.sqrt(s**2 - s_next**2) / s)  # the noise put back
        s_down = math.sqrt(s_next**2 - s_up**2)  # where the deterministic part of the step aims
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = x + (s_down - s) * d + s_up * noise
    return x


for eta in (1.0, 0.5):
    mine = naive_euler_ancestral(z_T, ts10, eta, torch.Generator().manual_seed(1))
    lib = solvers.euler_ancestral_sample(unet64, z_T, sched, ts10, eta=eta, generator=torch.Generator().manual_seed(1))
    ddim = samplers.ddim_sample(unet64, z_T, sched, ts10, eta=eta, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(mine, lib, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(lib, ddim, rtol=1e-6, atol=1e-6)
    print(f"η = {eta}: naive Euler-ancestral == solvers.euler_ancestral_sample == samplers.ddim_sample(η={eta}) ✓")

# %% [markdown]
# **Order of accuracy, on the real ε_θ.** A solver of order p has an error that falls like $K^{-p}$ (in NFE, like
# $\mathrm{NFE}^{-p}$). `tests/test_solvers.py` checks this on Gaussian data, where the exact answer is known. Here
# we check it on the shipped network. We start 8 latents at t = 999 (`trailing` spacing, so every K starts at the same
# place: §2). Each solver's $z_0$ is compared with a reference: Heun on all `REF_ODE` steps of the list. The figure
# shows the root-mean-square error against NFE on log–log axes, with the slopes of first and second order drawn for
# comparison.

# %%
REF_ODE = config.pick(smoke=50, cpu=1000, gpu=1000)
KS = config.pick(smoke=(2, 4, 8), cpu=(5, 10, 20, 40, 80), gpu=(5, 10, 20, 40, 80, 160))
z_T8 = z_T.float()
z_ref = solvers.heun_sample(unet, z_T8, sched, steps=REF_ODE, spacing="trailing")
order = {}
for name in ("euler", "heun", "dpmpp_2m"):
    rows = []
    for K in KS:
        z0 = samplers.get_sampler(name)(unet, z_T8, sched, steps=K, spacing="trailing")
        rows.append((2 * K - 1 if name == "heun" else K, (z0 - z_ref).pow(2).mean().sqrt().item()))
    nfe, err = np.array(rows).T
    order[name] = dict(nfe=nfe, err=err, slope=-np.polyfit(np.log(nfe), np.log(err), 1)[0])
fig, ax = plt.subplots(figsize=(5.2, 3.4))
for name, o in order.items():
    ax.loglog(o["nfe"], o["err"], "o-", label=f"{name}: fitted order {o['slope']:.2f}")
x0_, e0 = order["euler"]["nfe"][0], order["euler"]["err"][0]
nf = np.array([order["euler"]["nfe"][0], order["euler"]["nfe"][-1]])
ax.loglog(nf, e0 * (nf / x0_) ** -1.0, "k:", lw=1, label="slope −1")
ax.loglog(nf, e0 * (nf / x0_) ** -2.0, "k--", lw=1, label="slope −2")
ax.set(xlabel="network evaluations", ylabel=f"RMS error of z_0 vs Heun-{REF_ODE}", title="order of accuracy on ε_θ")
ax.legend(fontsize=8); ax.grid(alpha=0.3, which="both")
fig.tight_layout()
for name, o in order.items():
    print(f"{name:>9}: NFE {o['nfe'].astype(int).tolist()} → error {np.round(o['err'], 4).tolist()}; "
          f"fitted order {o['slope']:.2f}")

# %% [markdown]
# **What the run shows.** On the real ε_θ the fitted orders (printed above) fall short of the theory: Euler's is
# a little below 1, and Heun's and DPM-Solver++(2M)'s are nearer 1 than 2. The second-order solvers still end with
# about half of Euler's error at the same number of steps, but not with the K² law that held on the exact Gaussian
# model of `tests/test_solvers.py`. Two things cap the order here: the reference is itself a (Heun-1000) solution,
# and ε_θ is a network, not a smooth function of σ between its trained indices, so the Taylor argument behind
# "second order" only holds roughly. (In smoke mode the reference is short and the orders mean nothing.)

# %% [markdown]
# ## 2 · Which timesteps? Leading, trailing, linspace (Lin et al. 2024, Table 2)
#
# A sampler with K < T steps visits a descending list τ of the training indices 0…T−1 (code index t is the paper's
# t + 1), and it lands on $x_0$ after the last one. Where the list starts is a choice. DDIM's "uniform" list,
# **leading**, is ⌊i·T/K⌋, which ends at 0 and starts one stride below the top. **Trailing** is round(j·T/K) − 1, which
# starts at T − 1. **Linspace** includes both ends. Lin et al. (2024) point out that leading never asks ε_θ about
# the noisiest step it was trained on. Sampling starts from $z_T\sim\mathcal N(0, I)$ as though it were $x_{\tau_0}$,
# so the start is only right where $x_{\tau_0}$ really is (nearly) pure noise.

# %%
for K in (10, 50):
    for sp in spacing.SPACINGS:
        ts = spacing.spaced_timesteps(sched.T, K, sp).tolist()
        print(f"K = {K:>2} {sp:>9}: {ts[:5]} … {ts[-3:]}")
ab_T = alpha_bar[-1].item()
print(f"\nthe course's linear schedule (β from {sched.betas[0]:.0e} to {sched.betas[-1]:.2f}) does not reach zero SNR:")
print(f"  ᾱ_{sched.T - 1} = {ab_T:.3e},  SNR(t = {sched.T - 1}) = ᾱ/(1 − ᾱ) = {sched.snr[-1]:.3e},  "
      f"√ᾱ_{sched.T - 1} = {math.sqrt(ab_T):.4f} of z_0 is left in x_{sched.T - 1}")
for K in (10, 50):
    t0_lead = spacing.spaced_timesteps(sched.T, K, "leading")[0].item()
    print(f"  leading, K = {K}: starts at t = {t0_lead}, where √ᾱ = {alpha_bar[t0_lead].sqrt():.4f} "
          f"({alpha_bar[t0_lead].sqrt() / math.sqrt(ab_T):.1f}× the signal at t = {sched.T - 1}), "
          f"σ = {sigma[t0_lead]:.1f}")
zero = schedule.make_schedule(sched.name + schedule.ZERO_SNR, sched.T)  # Lin et al. 2024, Alg. 1
print(f"rescaled to zero terminal SNR ({zero.name!r}): ᾱ_{sched.T - 1} = {zero.alpha_bar[-1]:.1e}, "
      f"ᾱ_0 = {zero.alpha_bar[0]:.6f} (was {alpha_bar[0]:.6f}): σ_{sched.T - 1} = ∞")

# %% [markdown]
# The terminal SNR printed above is small but not zero: a trace of $z_0$ is left in $x_{999}$, so drawing
# $z_T \sim \mathcal N(0, I)$ is a close approximation rather than exact. Lin et al. rescale the β schedule so that
# ᾱ_T = 0 (the last line above: `schedule.make_schedule("linear_zero_snr")`), which then needs v-prediction
# (Salimans & Ho 2022). At zero SNR, x_T is pure noise, so an ε-model's x̂_0 = (x_T − ε̂)/√ᾱ_T is 0/0, and σ_T is
# infinite. The library has both parts (`TrainConfig(target="v")`, `objective.VPrediction`). The shipped digit
# model is ε on the nonzero-SNR schedule, and §§3–5 measure it; §3.8 compares v and zero SNR at equal budget.
#
# Leading's start is a larger mismatch. With few steps it begins well below the top, and the factor printed above
# says how much more of $z_0$ a true $x_{\tau_0}$ holds than $x_{999}$ does. The $\mathcal N(0, I)$ it starts from
# holds none of it. §3.5 measures what that costs.

# %% [markdown]
# ## 3 · Diagnosis: why is deterministic DDIM worse than ancestral sampling here?
#
# Issue 15 lists the candidates; each gets a measurement with its spread, on the same starting noises:
#
# 1. **Discretisation**: does the gap close as DDIM's steps grow? (§3.1)
# 2. **The spread of the samples**: do η = 0 latents end wider or narrower than the training latents? (§3.2)
# 3. **Model error**: does ε_θ systematically under-predict the noise on held-out latents? (§3.3)
# 4. **The trajectory**: where does x_t's spread leave the forward process's? (§3.4)
# 5. **The start step**: leading (starts below 999) against trailing (starts at 999). (§3.5)
# 6. **Guidance**: the face model at s = 1 and at its shipped s. (§3.6)
#
# Every sample set below is drawn once and kept in `runs_cache`, so §4 reuses it. FD is measured against one fixed
# set of N real test digits (the set that `Evaluator.report_spread` uses). The ratio to DDPM's FD is a *paired*
# bootstrap: the two sample sets share their $z_T$, so each resample takes the same rows of both, as in
# `scripts/sampler_study.py`.

# %%
x_real = ev.real_sets(N, seed=0)[0]  # the real set report_spread's FD uses at this n (as scripts/sampler_study.py)
real_ref = evaluate.FrechetReference(*evaluate.feature_stats(ev.embed(x_real)))  # μ, Σ, Σ^{1/2} computed once


def fd_of(feats) -> float:
    return real_ref.distance(*evaluate.feature_stats(feats))


class Spread:
    """A sampler callback: the std of x_t and of x̂_0 over all samples (and batches), at each visited t."""

    def __init__(self):
        self.acc = {}

    def __call__(self, e):
        for key in ("x_t", "x0_pred"):
            v = e[key].detach().double().cpu()
            s = self.acc.setdefault((key, e["t"]), [0.0, 0.0, 0])
            s[0] += v.sum().item(); s[1] += v.pow(2).sum().item(); s[2] += v.numel()

    def std(self, key):
        """(ts descending, std at each) for 'x_t' or 'x0_pred'."""
        ts = sorted({t for k, t in self.acc if k == key}, reverse=True)
        out = []
        for t in ts:
            s1, s2, n = self.acc[(key, t)]
            out.append(math.sqrt(s2 / n - (s1 / n) ** 2))
        return np.array(ts), np.array(out)


runs_cache = {}
REF_KEY = ("ddpm", REF_STEPS, "leading", None)  # the reference every ratio is paired with


def nfe_of(sampler: str, steps: int) -> int:
    return 2 * steps - 1 if sampler == "heun" else steps


def draw(sampler: str, steps: int, spacing_: str = "leading", eta: float | None = None) -> dict:
    """N samples from z_T(SEED), judged; cached by (sampler, steps, spacing, η). η None: the sampler's default."""
    key = (sampler, steps, spacing_, eta)
    if key not in runs_cache:
        spread = Spread()
        t0 = time.perf_counter()
        images, z0 = model.sample(N, sampler=sampler, steps=steps, spacing=spacing_, eta=eta, seed=SEED,
                                  return_latents=True, callback=spread)
        seconds = time.perf_counter() - t0
        feats = ev.embed(images).double().numpy()
        r = dict(images=images, z0=z0.cpu(), seconds=seconds, feats=feats, spread=spread, nfe=nfe_of(sampler, steps),
                 fd=uncertainty.bootstrap(fd_of, feats, n_boot=N_BOOT, seed=0, recentre=True))
        if key != REF_KEY:  # the reference is drawn first (below); row i of both sets started from the same z_T
            ref_feats = runs_cache[REF_KEY]["feats"]
            r["ratio"] = uncertainty.bootstrap(lambda a, b: fd_of(a) / fd_of(b), feats, ref_feats, n_boot=N_BOOT,
                                               seed=0, recentre=True)
        runs_cache[key] = r
    return runs_cache[key]


ref = draw("ddpm", REF_STEPS)
print(f"DDPM-{REF_STEPS}, n = {N}: FD {ref['fd']:.3g}, {ref['seconds']:.0f} s "
      f"({ref['seconds'] / N * 1e3:.1f} ms per sample)")

# %% [markdown]
# ### 3.1 Discretisation: DDIM η = 0 at more and more steps
#
# If DDIM's gap were discretisation error, it would close as the steps grow: at K = T = 1000 DDIM η = 0 is the ODE
# solved on every trained index. `Evaluator.report_spread` gives each FD with its bootstrap interval, the real floor
# at this n (over three disjoint pairs of real sets) and their ratio. The last column is the paired ratio to DDPM's
# FD. Each row also checks our fixed-reference FD against `report_spread`'s: the same real set, so the same number.

# %%
rep = {}
rows = [("ddpm", REF_STEPS)] + [("ddim", K) for K in DDIM_STEPS] + [("ddpm", 50)]
for sampler, K in rows:
    r = draw(sampler, K)
    rep[(sampler, K)] = ev.report_spread(r["images"], n_boot=N_BOOT)
    torch.testing.assert_close(rep[(sampler, K)]["fd"].value, r["fd"].value)  # the same FD, two routes
floor = rep[("ddpm", REF_STEPS)]["floor"]
print(f"n = {N}; real-vs-real floor {floor:.3g}")
print(f"{'sampler':>24} {'FD':>24} {'FD / floor':>24} {'÷ DDPM (paired)':>24} {'confidence':>11}")
for (sampler, K), rp in rep.items():
    r = draw(sampler, K)
    name = f"{'DDIM η=0' if sampler == 'ddim' else 'ancestral (ddpm)'}, {K} steps"
    ratio = f"{r['ratio']:.3g}" if "ratio" in r else "1 (reference)"
    print(f"{name:>24} {rp['fd']:>24.3g} {rp['fd_ratio']:>24.3g} {ratio:>24} {rp['confidence'].value:>11.3f}")

# %% [markdown]
# **What the run shows: it levels off.** DDIM's paired ratio to DDPM-1000 falls from 10 to 50 steps and then
# stays: 1.52× at 10 steps, 1.36× at 50, 1.32× at 250. At this run's n = 200 only the 10-step interval excludes 1
# (the 50- and 250-step ones reach down to about 0.9), so this table alone cannot rule out that the gap closes.
# The n = 2000 study settles it (recorded on 2026-12-02, not this run: `benchmarks/sampler_study_latent_mnist_partial.md`,
# from `OMP_NUM_THREADS=1 python scripts/sampler_study.py`, stopped after the deterministic samplers; see
# `benchmarks/RESULTS.md`): DDIM at 25, 50 and 100 steps sits at 1.54 [1.30, 1.81],
# 1.55 [1.31, 1.84] and 1.55 [1.32, 1.85]×, and every ODE solver converges to that value as its NFE grows. More
# steps do not close the gap, so it is not discretisation: the ODE converges, but to samples of its own that are
# worse than the ancestral chain's. The last row: ancestral sampling on 50 steps is level with all 1000 here
# (1.04 [0.68, 1.51]); the n = 2000 study recorded 0.84 [0.69, 1.06] (`benchmarks/sampler_study_latent_mnist_ddpm.md`,
# from `python scripts/sampler_study.py --samplers ddpm --json benchmarks/sampler_study_latent_mnist_ddpm.json`), a
# hint that 50 steps do better than 1000, not a settled result.

# %% [markdown]
# ### 3.2 The spread of the final latents
#
# The shipped autoencoder encodes real digits; its scale factor s = 1/std(z) (LDM App. D.1) was set on the training
# digits, so their latents have a std near 1. A sampler that ends wider (or narrower) than that draws latents the
# decoder never saw in training. Each sampler's std of $z_0$ is shown with a bootstrap interval over its samples,
# and as a ratio to the training latents' std.

# %%
x_tr, _ = mnist("train", size=32, n=N_TRAIN_Z)
z_train = encode_dataset(ae, x_tr)  # s·ℰ(x), the posterior means, in batches; on the CPU, not cached
var_z0 = z_train.var().item()


def std_spread(z):
    return uncertainty.bootstrap(lambda a: float(a.std()), z.flatten(1).double().numpy(), n_boot=N_BOOT, seed=0)


train_std = std_spread(z_train)
print(f"training latents s·ℰ(x) ({len(z_train)} digits): std {train_std:.4f}, mean {z_train.mean():+.3f}; "
      f"per channel {[round(v, 3) for v in z_train.transpose(0, 1).flatten(1).std(1).tolist()]}")
print(f"{'sampler':>24} {'std(z_0)':>26} {'÷ training std':>26}")
for (sampler, K) in rep:
    r = draw(sampler, K)
    r["std"] = std_spread(r["z0"])
    name = f"{'DDIM η=0' if sampler == 'ddim' else 'ancestral (ddpm)'}, {K} steps"
    print(f"{name:>24} {r['std']:>26.4f} {uncertainty.ratio(r['std'], train_std):>26.3f}")

# %% [markdown]
# **What the run shows.** For digits the final latents of every sampler are about as wide as the training
# latents: all ratios sit within about 4% of 1 (0.966–0.994), slightly *below* it, and DDIM-50's (0.990) is as
# close to 1 as ancestral-50's (0.985).
# The drift that notebook 06 saw on faces does not happen here, so on this model the spread is not the cause.

# %% [markdown]
# ### 3.3 Does ε_θ under-predict the noise?
#
# Take held-out latents (test digits, which ε_θ never saw), noise them to $z_t$ with known ε, and compare ε̂ with
# ε at each t. Two numbers per t, each with a bootstrap interval over the latents:
#
# * $\lVert\hat\varepsilon\rVert / \lVert\varepsilon\rVert$ (root-mean-square over the batch). Beware: this is **below
#   1 even for a perfect model**. The best predictor is $\mathbb E[\varepsilon\mid z_t]$, and it satisfies
#   $\mathbb E\lVert\varepsilon\rVert^2 = \mathbb E\lVert\hat\varepsilon\rVert^2 + \mathrm{MSE}$: wherever the noise
#   cannot be told from the signal, the best guess shrinks.
# * the **calibration slope** $c^*(t) = \langle\varepsilon,\hat\varepsilon\rangle / \lVert\hat\varepsilon\rVert^2$:
#   the factor by which ε̂ should be scaled to predict ε best. It is exactly 1 for the optimal predictor (the error is
#   orthogonal to the prediction), above 1 when ε̂ is too small (**systematic under-prediction**), and below 1 when
#   it is too large. Under-prediction at large t matters most for DDIM: $\hat x_0 = (x_t -
#   \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$ then keeps part of the noise, multiplied by σ_t.

# %%
x_te, _ = mnist("test", size=32, n=N_HELD)
z_held = encode_dataset(ae, x_te)
T_GRID = [0, 10, 25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 950, 980, 999]
g = torch.Generator().manual_seed(SEED)
calib = {}
for t in T_GRID:
    eps = torch.randn(z_held.shape, generator=g)
    tt = torch.full((len(z_held),), t)
    z_t = schedule.q_sample(z_held, tt, alpha_bar, eps)
    with torch.no_grad():
        eps_pred = torch.cat([unet(z_t[i:i + 500].to(device), tt[i:i + 500].to(device)).cpu()
                              for i in range(0, len(z_t), 500)])
    per = np.stack([eps_pred.pow(2).flatten(1).sum(1), eps.pow(2).flatten(1).sum(1),
                    (eps * eps_pred).flatten(1).sum(1)], 1).astype(np.float64)  # (n, 3): ‖ε̂‖², ‖ε‖², ⟨ε, ε̂⟩
    calib[t] = dict(norm=uncertainty.bootstrap(lambda a: float(np.sqrt(a[:, 0].sum() / a[:, 1].sum())), per,
                                               n_boot=N_BOOT, seed=0),
                    slope=uncertainty.bootstrap(lambda a: float(a[:, 2].sum() / a[:, 0].sum()), per, n_boot=N_BOOT,
                                                seed=0),
                    mse=float((eps_pred - eps).pow(2).mean()))
fig, ax = plt.subplots(1, 2, figsize=(10, 3))
for a, key, label in ((ax[0], "norm", "‖ε̂‖ / ‖ε‖"), (ax[1], "slope", "calibration slope ⟨ε, ε̂⟩ / ‖ε̂‖²")):
    v = np.array([[calib[t][key].value, calib[t][key].low, calib[t][key].high] for t in T_GRID])
    a.errorbar(T_GRID, v[:, 0], yerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]], fmt="o-", ms=3, capsize=2)
    a.set(xlabel="t", ylabel=label, title=f"{label} on {len(z_held)} held-out latents"); a.grid(alpha=0.3)
ax[0].plot(T_GRID, [math.sqrt(max(0.0, 1 - calib[t]["mse"])) for t in T_GRID], "k--", lw=1,
           label="√(1 − MSE): a calibrated predictor's")
ax[1].axhline(1, color="k", ls="--", lw=1, label="1: calibrated")
for a in ax:
    a.legend(fontsize=8)
fig.tight_layout()
print(f"{'t':>5} {'‖ε̂‖/‖ε‖':>26} {'√(1 − MSE)':>11} {'slope ⟨ε,ε̂⟩/‖ε̂‖²':>26}")
for t in T_GRID:
    c = calib[t]
    print(f"{t:>5} {c['norm']:>26.4f} {math.sqrt(max(0.0, 1 - c['mse'])):>11.4f} {c['slope']:>26.4f}")

# %% [markdown]
# **Reading the slope column.** For the best possible predictor ε* = E[ε | x_t] the slope ⟨ε, ε̂⟩/‖ε̂‖² is exactly
# 1; a model that predicts c·ε* has slope 1/c, so a slope above 1 means ε̂ is too small. In this run the slope is
# within 1% of 1 from t = 100 on, and within 0.3% from t = 300 to t = 999: at the steps where a sample's shape is
# decided, ε_θ is calibrated. It leaves 1 clearly only at the smallest t: about 11% above 1 at t = 10, 3% at t = 25. There ε_θ under-predicts (it keeps a
# little noise in x̂_0), but these last steps are the same for DDIM and for ancestral sampling, so they cannot
# explain a gap between them. The ratio ‖ε̂‖/‖ε‖ below 1 at small t is not a defect: it follows the dashed curve,
# what a perfect predictor would show when x_t still holds most of x_0.

# %% [markdown]
# ### 3.4 The spread of x_t along the trajectory
#
# Along the forward process, $x_t = \sqrt{\bar\alpha_t}z_0 + \sqrt{1-\bar\alpha_t}\varepsilon$ has
# $\mathrm{std}(x_t) = \sqrt{\bar\alpha_t\,\mathrm{Var}\,z_0 + 1 - \bar\alpha_t}$ (with Var z_0 from §3.2's training
# latents). A sampler that follows the right marginals keeps its x_t on that curve. The left panel shows each
# sampler's std(x_t) over the forward process's, where 1 means on the curve, with the final $z_0$ as a star at
# t = −1 against std(training latents). The right panel shows the std of the running guess x̂_0, against the
# training latents' std.

# %%
fwd = (alpha_bar * var_z0 + 1 - alpha_bar).sqrt().numpy()  # (T,) std(x_t) of the forward process
fig, ax = plt.subplots(1, 2, figsize=(11, 3.3))
traj_keys = [("ddpm", REF_STEPS), ("ddpm", 50)] + [("ddim", K) for K in DDIM_STEPS]  # leading spacing
for key in traj_keys:
    r = draw(*key)
    label = f"{'DDIM η=0' if key[0] == 'ddim' else 'ancestral'}-{key[1]}"
    ts, s = r["spread"].std("x_t")
    line, = ax[0].plot(ts, s / fwd[ts], label=label, lw=1.2)
    ax[0].plot([-1], [r["z0"].std().item() / math.sqrt(var_z0)], "*", color=line.get_color(), ms=9)
    ts, s = r["spread"].std("x0_pred")
    ax[1].plot(ts, s, label=label, lw=1.2)
ax[0].axhline(1, color="k", ls="--", lw=1)
ax[0].set(xlabel="t  (★: the final z_0)", ylabel="std(x_t) / forward std", title="x_t's spread against q(x_t)")
ax[1].axhline(math.sqrt(var_z0), color="k", ls="--", lw=1, label="training latents")
ax[1].set(xlabel="t", ylabel="std(x̂_0)", title="the running guess x̂_0", yscale="log")
for a in ax:
    a.invert_xaxis(); a.grid(alpha=0.3); a.legend(fontsize=7)
fig.tight_layout()
for key in traj_keys:
    ts, s = draw(*key)["spread"].std("x_t")
    dev = s / fwd[ts]
    print(f"{key[0]}-{key[1]:<5} std(x_t)/forward: max {dev.max():.3f} at t = {ts[dev.argmax()]}, "
          f"min {dev.min():.3f} at t = {ts[dev.argmin()]}; final z_0 "
          f"{draw(*key)['z0'].std().item() / math.sqrt(var_z0):.3f}")

# %% [markdown]
# **What the figure shows.** Every curve stays within about 4% of the forward process's spread all the way down:
# DDIM's rise at most 1.4% above it in the middle of the trajectory (t ≈ 390–420), DDIM-10's dips most (to 0.965,
# at t = 100), and all end slightly below 1, on the stars of §3.2. Nothing leaves the marginals, so the gap is not
# in the overall spread of x_t but in *which* samples the ODE reaches: the shape of the distribution, which only the
# FD sees.

# %% [markdown]
# ### 3.5 The start step: leading against trailing
#
# With the same budget, `trailing` starts at t = 999 and `leading` one stride lower (§2). Both are deterministic
# DDIM on the same $z_T$, so a paired bootstrap of their FD ratio isolates the start.

# %%
start = {}
for K in DDIM_STEPS[:2]:
    lead, trail = draw("ddim", K, "leading"), draw("ddim", K, "trailing")
    trail["std"] = std_spread(trail["z0"])
    start[K] = uncertainty.bootstrap(lambda a, b: fd_of(a) / fd_of(b), lead["feats"], trail["feats"], n_boot=N_BOOT,
                                     seed=0, recentre=True)
    t_lead = spacing.spaced_timesteps(sched.T, K, "leading")[0].item()
    print(f"DDIM-{K}: leading (t₀ = {t_lead}) FD {lead['fd']:.3g}, std(z_0)/train "
          f"{lead['z0'].std().item() / math.sqrt(var_z0):.3f} | trailing (t₀ = {sched.T - 1}) FD {trail['fd']:.3g}, "
          f"std(z_0)/train {trail['z0'].std().item() / math.sqrt(var_z0):.3f} | FD leading ÷ trailing (paired) "
          f"{start[K]:.3g}; trailing ÷ DDPM {trail['ratio']:.3g}")

# %% [markdown]
# **What the run shows.** For DDIM, leading ÷ trailing is 0.985 [0.951, 1.01] at 10 steps and 1.00 [0.995, 1.00] at
# 50 (intervals containing 1): starting at t = 900 instead of 999 costs DDIM nothing measurable, so the start step
# is not the cause. It is not the same for every solver: in §4 Heun and DPM-Solver++(2M) score better with trailing
# spacing at 9–10 evaluations (1.09× and 1.29× against 1.44× and 1.53× leading, in point estimate), and the
# n = 2000 study recorded the same clearly (1.28× and 1.37× trailing, 1.95× and 1.92× leading).
#
# **A fix to try: clip x̂_0 to the data's range.** Pixel models clip x̂_0 to [−1, 1]; latents have no fixed range,
# so the course samples them unclipped. A data-derived bound can stand in: the largest |z| of the training latents.
# The sampler then re-derives ε̂ from the clipped x̂_0 (`samplers.ddim_step`), so the step stays consistent.

# %%
clip = z_train.abs().max().item()
zT_all = torch.randn((N, *model.sample_shape), generator=torch.Generator().manual_seed(SEED))  # model.sample's z_T
t0 = time.perf_counter()
z_clip = torch.cat([samplers.ddim_sample(unet, zT_all[i:i + 256].to(device), sched, steps=50, clip_x0=clip).cpu()
                    for i in range(0, N, 256)])
x_clip = torch.cat([model.decode(z_clip[i:i + 256].to(device)).cpu() for i in range(0, N, 256)])
f_clip = ev.embed(x_clip).double().numpy()
fd_clip = uncertainty.bootstrap(fd_of, f_clip, n_boot=N_BOOT, seed=0, recentre=True)
ratio_clip = uncertainty.bootstrap(lambda a, b: fd_of(a) / fd_of(b), f_clip, ref["feats"], n_boot=N_BOOT, seed=0,
                                   recentre=True)
print(f"DDIM-50 with x̂_0 clipped to ±{clip:.2f}: FD {fd_clip:.3g}, ÷ DDPM {ratio_clip:.3g}, std(z_0)/train "
      f"{z_clip.std().item() / math.sqrt(var_z0):.3f}  (unclipped: FD {draw('ddim', 50)['fd']:.3g}, ÷ DDPM "
      f"{draw('ddim', 50)['ratio']:.3g}); {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# **What the run shows.** Clipping changes nothing: the FD (20.1 against 20.2) and the ratio (1.35 against 1.36)
# are the same as without it to within 0.1, so DDIM's x̂_0 (nearly) never leaves the training latents' range, and a
# data-derived clip is the wrong fix for this gap.

# %% [markdown]
# ### 3.6 Guidance: the face model at s = 1 and at its shipped scale
#
# Classifier-free guidance extrapolates, $\tilde\varepsilon = \varepsilon_\varnothing + s(\varepsilon_y -
# \varepsilon_\varnothing)$, and a deterministic sampler follows the extrapolated field all the way. Issue 15
# found the face model's η = 0 latents far wider than its training latents. Here the shipped toy-faces model
# (`latent_faces_toy`, **toy faces, not CelebA**) samples the same requests with DDIM η = 0 and with ancestral
# steps, at s = 1 (no guidance) and at its shipped s. The face judge (`face_judge_toy`, no training loss went
# through it) reads which requested attributes each face carries.

# %%
face_model = release.load_diffusion(shipped("latent_faces_toy"), map_location=device)
judge = load_attribute_classifier(shipped("face_judge_toy"), device=device)
train_faces = faces.load_faces("train", n=config.pick(smoke=64, cpu=500, gpu=2000), source="toy", verbose=False)
zf_train = encode_dataset(face_model.first_stage, train_faces.images)  # uint8 faces, scaled batch by batch
face_std = std_spread(zf_train)
y_faces = faces.random_attributes(N_FACES, face_model.attributes, seed=1)
chance = chance_rates(y_faces, faces.random_attributes(5000, face_model.attributes, seed=123).float().mean(0))
print(f"training face latents ({len(zf_train)} toy faces): std {face_std:.4f}; chance of carrying a request "
      f"{chance.nanmean():.1%}")
face_runs = {}
for s in sorted({1.0, face_model.guidance}):
    for name, kw in (("DDIM η=0", dict(sampler="ddim")), ("ancestral", dict(sampler="ddpm"))):
        t0 = time.perf_counter()
        img, zf = face_model.sample(N_FACES, steps=FACE_STEPS, seed=SEED, y=y_faces, guidance=s, return_latents=True,
                                    **kw)
        face_runs[(name, s)] = dict(images=img, std=std_spread(zf.cpu()), carried=carried_spread(judge, img, y_faces),
                                    seconds=time.perf_counter() - t0)
print(f"{'sampler':>10} {'s':>4} {'std(z_0) ÷ training':>26} {'attributes carried':>26}")
for (name, s), r in face_runs.items():
    print(f"{name:>10} {s:>4.1f} {uncertainty.ratio(r['std'], face_std):>26.3f} {r['carried']:>26.1%}")
fig, axes = plt.subplots(1, len(face_runs), figsize=(2.4 * len(face_runs), 2.6))
for a, ((name, s), r) in zip(axes, face_runs.items()):
    viz.show_grid(r["images"][:4], nrow=2, ax=a, title=f"{name}, s = {s:g}")
fig.suptitle(f"toy faces (not CelebA), {FACE_STEPS} steps, the same requests and z_T", fontsize=10)
fig.tight_layout()

# %% [markdown]
# **What the run shows.** On faces the drift is real and guidance does not start it: DDIM's final latents are
# about 23% wider than the training latents already at s = 1, and 25% at the shipped s = 2, while ancestral
# sampling stays within 3% of 1 at both. DDIM carries clearly fewer of the requested attributes (the carried
# column: 6 to 12 points below ancestral sampling, though well above the chance rate). Guidance adds a little to a
# drift it did not start: the faces model's ODE strays where the digits' does not. The issue's face target, deterministic samples within 1.2× the training spread
# and within 3 points of ancestral sampling's attributes, is not met (n = 32 faces per row: read the intervals).

# %% [markdown]
# ### 3.7 The verdict, from the numbers above
#
# Each line restates one measurement and what its interval says.

# %%
def where(e, one=1.0):
    return "contains 1" if e.low <= one <= e.high else ("above 1" if e.low > one else "below 1")


K_max = DDIM_STEPS[-1]
gap_max, gap_min = draw("ddim", K_max)["ratio"], draw("ddim", DDIM_STEPS[0])["ratio"]
print(f"1. discretisation: DDIM-{K_max} ÷ DDPM-{REF_STEPS} = {gap_max:.3g} ({where(gap_max)}); "
      f"DDIM-{DDIM_STEPS[0]}: {gap_min:.3g} ({where(gap_min)})")
wide_ddim, wide_anc = (uncertainty.ratio(draw(s, 50)["std"], train_std) for s in ("ddim", "ddpm"))
print(f"2. spread: std(z_0) ÷ training, DDIM-50 {wide_ddim:.3g} ({where(wide_ddim)}), ancestral-50 {wide_anc:.3g} "
      f"({where(wide_anc)})")
hi_t = [t for t in T_GRID if t >= 500]
print("3. ε̂ calibration slope, t ≥ 500: " + ", ".join(f"t={t}: {where(calib[t]['slope'])}" for t in hi_t)
      + "; t < 500: " + ", ".join(f"t={t}: {where(calib[t]['slope'])}" for t in T_GRID if t < 500))
for key in (("ddim", 50), ("ddpm", 50)):
    ts, sd = draw(*key)["spread"].std("x_t")
    dev = sd / fwd[ts]
    print(f"4. trajectory, {key[0]}-{key[1]}: std(x_t) ÷ forward from {dev.min():.3f} to {dev.max():.3f} (largest "
          f"at t = {ts[np.abs(dev - 1).argmax()]})")
print("5. start step: FD leading ÷ trailing, " + ", ".join(f"DDIM-{K} {e:.3g} ({where(e)})" for K, e in start.items()))
print("6. guidance (faces): std(z_0) ÷ training, " + ", ".join(
    f"{name} s = {s:g}: {uncertainty.ratio(r['std'], face_std):.3g} ({where(uncertainty.ratio(r['std'], face_std))})"
    for (name, s), r in face_runs.items()))

# %% [markdown]
# **The verdict.** The gap does not close with steps: in this run it levels off (line 1; at n = 200 the interval of
# DDIM-250 still reaches below 1), and the recorded n = 2000 study has every ODE solver converge to 1.55× (§3.1),
# so it is not discretisation. On digits η = 0 ends as
# wide as ancestral sampling (line 2) and stays on the forward marginals all the way (line 4); ε_θ is calibrated
# where samples take shape and under-predicts only at the last few steps, which both samplers share (line 3); the
# start step does not matter for DDIM (line 5), and neither does a clip of x̂_0. What is left is the model itself:
# ε_θ is not the exact score, and the ODE carries the error of every early step to the end, while each ancestral
# step replaces part of x_t with fresh noise and so forgets some of it (Karras et al. 2022, §4: "stochasticity
# … corrects errors made in earlier sampling steps"). DDIM's Table 1 comes from far larger models trained far
# longer; this run cannot say how the gap shrinks with the model, only that here it is the model's. On faces (line 6), where the model is weaker, the same cause shows as a drift of the latents' spread, with
# or without guidance. §3.8 measures the fixes that follow from this; §4, which sampler to use at a given budget.

# %% [markdown]
# ### 3.8 The fixes, measured: v-prediction, a longer run, guidance rescale
#
# The verdict points at the network, so the fixes are on the network's side. Three were on issue 15's list.
#
# **v-prediction** (Salimans & Ho 2022, §4). The network predicts $v = \sqrt{\bar\alpha_t}\,\varepsilon -
# \sqrt{1-\bar\alpha_t}\,x_0$ instead of ε. Both ε and $x_0$ follow from it and $x_t$:
# $\hat\varepsilon = \sqrt{1-\bar\alpha_t}\,x_t + \sqrt{\bar\alpha_t}\,\hat v$ and
# $\hat x_0 = \sqrt{\bar\alpha_t}\,x_t - \sqrt{1-\bar\alpha_t}\,\hat v$. So the samplers run it unchanged, through
# `objective.VPrediction`. Its error is $\hat\varepsilon - \varepsilon = \sqrt{\bar\alpha_t}(\hat v - v)$, so
# $\lVert \hat v - v\rVert^2 = (1 + 1/\mathrm{SNR}_t)\,\lVert\hat\varepsilon - \varepsilon\rVert^2$. The v-loss is
# the ε-loss re-weighted towards the low-noise steps, where DDIM's last steps read $\hat x_0$ and an ε-model's
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$ amplifies its error. It also has an
# $\hat x_0$ at ᾱ = 0, which an ε-model does not (§2), so only a v-model can use the zero-terminal-SNR schedule. The
# cell checks these identities on random tensors.

# %%
g = torch.Generator().manual_seed(SEED)
x0_chk = torch.randn(64, *model.sample_shape, generator=g)
eps_chk = torch.randn(x0_chk.shape, generator=g)
t_chk = torch.randint(0, sched.T, (64,), generator=g)
v_chk = schedule.v_target(x0_chk, eps_chk, t_chk, sched.alpha_bar)  # v = √ᾱ ε − √(1 − ᾱ) x_0
xt_chk = schedule.q_sample(x0_chk, t_chk, sched.alpha_bar, eps_chk)
v_hat = v_chk + 0.1 * torch.randn(v_chk.shape, generator=g)  # a v-model's error
a_chk = schedule.extract(sched.alpha_bar, t_chk, x0_chk.ndim)
eps_back = schedule.eps_from_v(xt_chk, v_chk, t_chk, sched.alpha_bar)
x0_back = schedule.x0_from_v(xt_chk, v_chk, t_chk, sched.alpha_bar)
err_eps = schedule.eps_from_v(xt_chk, v_hat, t_chk, sched.alpha_bar) - eps_chk
print(f"ε from (x_t, v): max error {(eps_back - eps_chk).abs().max():.1e}; x_0 from (x_t, v): "
      f"{(x0_back - x0_chk).abs().max():.1e}; "
      f"ε̂ − ε = √ᾱ (v̂ − v): {(err_eps - a_chk.sqrt() * (v_hat - v_chk)).abs().max():.1e}")

# %% [markdown]
# Training three models to compare takes longer than a notebook should (7–8 minutes each at 3,000 steps, 45–70 at
# the shipped model's 20,000), so `scripts/parameterisation_study.py` trains them and writes its measurements to
# `benchmarks/`. The cell below reads those files; it does not recompute them.
# Every run is the `latent-mnist` cpu preset on the shipped autoencoder's latents, identical but for the target and
# the β schedule, sampled from one z_T (seed 1) at n = 2000 and judged by the course's judge. The figure follows
# the DDIM-50 ÷ ancestral-50 gap (a paired bootstrap) over the training steps.

# %%
bench = Path(minildm.__file__).resolve().parent.parent / "benchmarks"


def recorded(name):
    path = bench / name
    if not path.exists():
        print(f"(no {name}: its command is in benchmarks/RESULTS.md)")
        return None
    return json.loads(path.read_text())


def fmt(r, key, low, high):
    return f"{r[key]:.2f} [{r[low]:.2f}, {r[high]:.2f}]"


print(f"{'variant':>12} {'steps':>6} {'spacing':>9} {'ancestral-50 FD/floor':>24} {'DDIM-50 FD/floor':>24} "
      f"{'DDIM ÷ ancestral':>22}")
param_rows = []
for name in ("param_study_eps_v.json", "param_study_v_zero_snr.json", "param_study_20k.json",
             "param_study_20k_scaled.json", "param_study_20k_w32.json"):  # the last: a 4× larger UNet (2.74 M)
    d = recorded(name)
    for r in (d or {}).get("rows", []):
        r = dict(r, file_steps=d["steps"])
        param_rows.append(r)
        if r["sampler"] == "ddim":
            anc = next(a for a in d["rows"] if a["sampler"] == "ddpm" and a["variant"] == r["variant"]
                       and a["spacing"] == r["spacing"] and a["step"] == r["step"])
            print(f"{r['variant']:>12} {r['step']:>6} {r['spacing']:>9} "
                  f"{fmt(anc, 'fd_floor', 'fd_floor_low', 'fd_floor_high'):>24} "
                  f"{fmt(r, 'fd_floor', 'fd_floor_low', 'fd_floor_high'):>24} "
                  f"{fmt(r, 'ddim_over_ancestral', 'gap_low', 'gap_high'):>22}")
v_study = recorded("sampler_study_v20k.json")  # the 20,000-step v-model against its own DDPM-1000, seed 0
if v_study:
    print(f"\nthe v-model at 20,000 steps, n = {v_study['n']}, seed {v_study['seed']}, FD ÷ its DDPM-1000 (paired; "
          "the shipped ε-model's rows are in §3.1 and §4):")
    for r in v_study["rows"][1:]:
        print(f"  {r['sampler']:>5} {r['spacing']:>9} NFE {r['nfe']:>3}: {fmt(r, 'ratio', 'ratio_low', 'ratio_high')}"
              f"  (FD / floor {r['fd_floor']:.2f})")
snaps = recorded("param_study_snapshots_n500.json")
if snaps:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for variant, color in (("eps", "tab:blue"), ("v", "tab:orange"), ("v_zero_snr", "tab:green")):
        rs = sorted((r for r in snaps["rows"] if r["variant"] == variant and r["sampler"] == "ddim"
                     and r["spacing"] == "trailing"), key=lambda r: r["step"])
        if rs:
            ax.errorbar([r["step"] for r in rs], [r["ddim_over_ancestral"] for r in rs],
                        yerr=[[r["ddim_over_ancestral"] - r["gap_low"] for r in rs],
                              [r["gap_high"] - r["ddim_over_ancestral"] for r in rs]],
                        fmt="o-", ms=3, capsize=2, color=color, label=f"{variant} (n = {snaps['n']})")
    long = [r for r in param_rows if r["sampler"] == "ddim" and r["spacing"] == "trailing" and r["step"] > 5000]
    for r in long:
        ax.errorbar([r["step"]], [r["ddim_over_ancestral"]], yerr=[[r["ddim_over_ancestral"] - r["gap_low"]],
                    [r["gap_high"] - r["ddim_over_ancestral"]]], fmt="s", ms=5, capsize=2,
                    color="tab:red" if "w32" in r["variant"] else "tab:blue" if "eps" in r["variant"] else
                    "tab:orange",
                    label=f"{r['variant']}, {r['step']} steps (n = 2000)")
    ax.axhline(1, color="k", lw=1); ax.axhline(1.3, color="k", ls=":", lw=1, label="1.3× target")
    ax.set(xscale="log", xlabel="training steps", ylabel="DDIM-50 ÷ ancestral-50 FD (paired)",
           title="the deterministic gap over training (trailing spacing)")
    ax.legend(fontsize=7); ax.grid(alpha=0.3, which="both")
    fig.tight_layout()

# %% [markdown]
# **What the recorded runs show.** At an equal 3,000-step budget, v is better with both samplers (ancestral FD 8.3×
# against 11.1× the floor), and most with DDIM (12.4× against 23.8×). Its gap to ancestral sampling closes from
# 2.15× to 1.48×. Zero terminal SNR adds nothing measurable on top: the linear schedule's ᾱ_T ≈ 4·10⁻⁵ leaves
# little of z_0 in z_T (§2). Over the first 3,000 steps the ε run's gap shrinks (the figure, n = 500 snapshots).
# But the 20,000-step rows show that it does not keep shrinking. The shipped ε-model's gap is 2.32×, and the v-model
# trained as long is at 1.79× (n = 2000, both): both samplers improve by about the same factor. So on digits, v
# lowers DDIM's FD a lot without closing its gap to ancestral sampling. The gap stays whichever target the
# network learns, and it is not the network's size: the rows `v_scaled_w32` are a UNet of twice the base width
# (2.74 M parameters against 0.69 M; v on the scaled-linear schedule, 20,000 steps, 47 min on two threads). Its
# ancestral FD is 2.75× the floor against the narrow `v_scaled`'s 2.69×, and its DDIM ÷ ancestral gap 1.64 against
# 1.61: four times the parameters change neither. (The 20,000-step v run had an lr drop that the shipped ε-model did not, so that pair
# is not a clean comparison; the 3,000-step one is.)
# Against its own DDPM-1000 (n = 2000, seed 0, as §3.1's ε rows), the v-model's DDIM-50 is at 1.47× [1.22, 1.73],
# where the shipped ε-model is at 1.55× [1.31, 1.84]. Issue 15's 1.3× target is missed by 0.17, though the interval
# reaches below it. v's DDPM-1000 is itself better (FD 4.26 against 6.40), and so ancestral-25 sits at 1.21× of it
# here, not the ε-model's 0.84×.
#
# **Faces.** Two fixes are tried on the face model, whose DDIM latents drift (§3.6). The first is **guidance rescale**
# (Lin et al. 2024, §3.4), which pulls the guided prediction back towards the conditional one's spread,
# $\tilde\varepsilon' = \phi\,\tilde\varepsilon\,\mathrm{std}(\varepsilon_y)/\mathrm{std}(\tilde\varepsilon) +
# (1-\phi)\,\tilde\varepsilon$ (`guidance.rescale_guided`; `sample --guidance-rescale`). The second is the same face
# model trained with v at the same budget (`scripts/face_v_study.py`, shipped as `latent_faces_toy_v`). Both run here
# live, on §3.6's requests and z_T; the recorded n = 200 rows follow.

# %%
# the rescale factor std(ε_y)/std(ε̃) itself, on noised training latents with their own attributes
with torch.no_grad():
    z_chk, y_chk = zf_train[:N_FACES].to(device), train_faces.attrs[:N_FACES].to(device)
    factors = {}
    for t in (999, 700, 400, 100, 10):
        t_b = torch.full((len(z_chk),), t, device=device)
        noise = torch.randn(z_chk.shape, generator=torch.Generator().manual_seed(t)).to(device)
        zt = schedule.q_sample(z_chk, t_b, face_model.sched.alpha_bar.to(device), noise)
        e_y = face_model.unet(zt, t_b, y=y_chk)
        e_0 = face_model.unet(zt, t_b, y=face_model.unet.null_condition(len(z_chk), device))
        e_g = e_0 + face_model.guidance * (e_y - e_0)
        factors[t] = (e_y.flatten(1).std(1) / e_g.flatten(1).std(1)).mean().item()
print(f"std(ε_y) / std(ε̃) at s = {face_model.guidance:g}, by t: "
      + ", ".join(f"t={t}: {f:.3f}" for t, f in factors.items()))
for phi in (0.7, 1.0):
    img, zf = face_model.sample(N_FACES, sampler="ddim", steps=FACE_STEPS, seed=SEED, y=y_faces,
                                guidance=face_model.guidance, guidance_rescale=phi, return_latents=True)
    face_runs[("DDIM η=0", face_model.guidance, phi)] = dict(images=img, std=std_spread(zf.cpu()),
                                                             carried=carried_spread(judge, img, y_faces))
face_v = release.load_diffusion(shipped("latent_faces_toy_v"), map_location=device)  # the same model, trained on v
for name, sampler in (("v: DDIM η=0", "ddim"), ("v: ancestral", "ddpm")):
    img, zf = face_v.sample(N_FACES, sampler=sampler, steps=FACE_STEPS, seed=SEED, y=y_faces,
                            guidance=face_v.guidance, return_latents=True)
    face_runs[(name, face_v.guidance, 0.0)] = dict(images=img, std=std_spread(zf.cpu()),
                                                   carried=carried_spread(judge, img, y_faces))
print(f"{'sampler':>13} {'s':>4} {'φ':>4} {'std(z_0) ÷ training':>26} {'attributes carried':>26}")
for key, r in face_runs.items():
    name, s, phi = key if len(key) == 3 else (*key, 0.0)
    print(f"{name:>13} {s:>4.1f} {phi:>4.1f} {uncertainty.ratio(r['std'], face_std):>26.3f} {r['carried']:>26.1%}")
for name in ("face_guidance_rescale.json", "face_v_study_shipped_eps.json", "face_v_study.json"):
    d = recorded(name)
    if d:
        print(f"\nrecorded, {name} (n = {d['n']} faces per row, {d['steps']} steps):")
        for r in d["rows"]:
            gap = (f"; DDIM − ancestral {100 * r['carried_gap']:+.1f} [{100 * r['gap_low']:+.1f}, "
                   f"{100 * r['gap_high']:+.1f}] points" if "carried_gap" in r else "")
            print(f"  {r['target']:>10} s = {r['guidance']:g} φ = {r['rescale']:g} {r['sampler']:>5}: std ÷ training "
                  f"{fmt(r, 'std_ratio', 'std_low', 'std_high')}, carried {100 * r['carried']:.1f}% "
                  f"[{100 * r['carried_low']:.1f}, {100 * r['carried_high']:.1f}]{gap}")

# %% [markdown]
# **What the run shows.** The rescale factor sits at 0.95–1.0 for every t (first line). An ε-model's outputs,
# guided or not, all have a spread of about 1, so pulling ε̃ back to std(ε_y) changes almost nothing. The rows
# agree: at φ = 0.7 and φ = 1, DDIM's latents stay as wide as without the rescale (n = 32 here; the recorded n = 200
# rows, 1.25 / 1.26 / 1.27× for φ = 0 / 0.7 / 1, say the same). The drift is there at s = 1 too, so guidance was
# never its cause. Lin et al. apply the rescale to a v-model's output, whose spread does move with guidance.
#
# **v-prediction fixes it.** In the live "v:" rows and the recorded ones (n = 200 faces), the face model trained
# with v at the ε-model's budget keeps DDIM's latents at 0.98× (s = 1) and 1.03× (s = 2) the training spread. Its
# attributes come out 0.6 and 0.5 points below ancestral sampling, where the ε-model is 9.1 and 5.8 points below.
# Ancestral sampling is no worse for it (96.5% against 96.0% at s = 2). Issue 15's face target, within 1.2× the
# spread and 3 points of the attributes, is met by the v-model and missed by the ε-model. That model is shipped as
# `latent_faces_toy_v`, with a CI gate on the target. It is one training seed, and notebook 06 still uses the
# ε-model.

# %% [markdown]
# ## 4 · Quality per network evaluation
#
# What a practitioner wants to know is the best FD for a given number of network evaluations, since nearly all
# of a sampler's cost is ε_θ. Each sampler runs at each budget in `NFES`, with each of the two spacings, from the
# same $z_T$: Heun at (NFE + 1)/2 steps, the others at NFE steps. DDPM on all its steps is the reference line.
# Euler-ancestral runs at η = ½: at η = 1 it is the respaced `ddpm` sampler computed in σ (§1 checked that), so it
# would repeat the `ddpm` row; the cell checks that once, on the smallest budget, and then spends the grid on the
# point between ODE and SDE. The left figure shows FD against NFE (error bars: the bootstrap interval over the
# samples), with solid lines for leading and dashed for trailing. The right figure shows the same against
# wall-clock seconds per sample, decode included.

# %%
SAMPLERS = ("ddim", "heun", "dpmpp_2m", "euler_ancestral", "ddpm")
ETA = {"euler_ancestral": 0.5}  # η per sampler in the grid; None: the sampler's default
torch.testing.assert_close(draw("euler_ancestral", NFES[0], eta=1.0)["z0"], draw("ddpm", NFES[0])["z0"],
                           rtol=1e-4, atol=1e-4)  # the same latents: σ-space and x_t-space round differently
print(f"euler_ancestral at η = 1 == ddpm respaced, {NFES[0]} steps, on the same seed ✓ (so the grid runs it at η = ½)")
grid = [(sampler, (nfe + 1) // 2 if sampler == "heun" else nfe, sp, ETA.get(sampler))  # Heun: NFE = 2·steps − 1
        for sampler in SAMPLERS for sp in ("leading", "trailing") for nfe in NFES]
for key in grid:
    draw(*key)  # the rows §3 drew come from runs_cache
print(f"n = {N}, floor {floor:.3g}; reference DDPM-{REF_STEPS} FD {ref['fd']:.3g}")
print(f"{'sampler':>20} {'spacing':>9} {'steps':>5} {'NFE':>4} {'FD':>24} {'÷ DDPM (paired)':>24} "
      f"{'std(z_0)/train':>14} {'ms/sample':>9}")
table = [(key, runs_cache[key]) for key in grid]  # sampler × spacing × NFE, in that order
for (sampler, steps, sp, eta), r in table:
    name = sampler + (f" η={eta:g}" if eta is not None else "")
    print(f"{name:>20} {sp:>9} {steps:>5} {r['nfe']:>4} {r['fd']:>24.3g} {r['ratio']:>24.3g} "
          f"{r['z0'].std().item() / math.sqrt(var_z0):>14.3f} {r['seconds'] / N * 1e3:>9.2f}")

# %%
fig, ax = plt.subplots(1, 2, figsize=(11.5, 3.8))
colors = dict(zip(SAMPLERS, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")))
for sampler in SAMPLERS:
    for sp, ls in (("leading", "-"), ("trailing", "--")):
        rs = sorted((r for (s, _, p, _), r in table if s == sampler and p == sp), key=lambda r: r["nfe"])
        if not rs:
            continue
        fd = np.array([[r["fd"].value, r["fd"].low, r["fd"].high] for r in rs])
        yerr = [fd[:, 0] - fd[:, 1], fd[:, 2] - fd[:, 0]]
        for a, x in ((ax[0], [r["nfe"] for r in rs]), (ax[1], [r["seconds"] / N * 1e3 for r in rs])):
            a.errorbar(x, fd[:, 0], yerr=yerr, fmt="o" + ls, ms=3, capsize=2, color=colors[sampler], lw=1.2,
                       label=f"{sampler}{' η=%g' % ETA[sampler] if sampler in ETA else ''}, {sp}")
for a in ax:
    a.axhline(ref["fd"].value, color="k", lw=1, label=f"DDPM-{REF_STEPS}")
    a.axhspan(ref["fd"].low, ref["fd"].high, color="k", alpha=0.08)
    a.axhline(floor.value, color="gray", ls=":", lw=1, label="real vs real")
    a.set_xscale("log"); a.set_ylabel(f"FD (n = {N})"); a.grid(alpha=0.3, which="both")
ax[0].set(xlabel="network evaluations per sample", title="quality per network evaluation")
ax[1].set(xlabel="ms per sample (decode included)", title="quality per second")
ax[1].plot([ref["seconds"] / N * 1e3], [ref["fd"].value], "k*", ms=10)
ax[0].legend(fontsize=6, ncol=2)
fig.tight_layout()
budget = [(k, r) for k, r in table if r["nfe"] <= 25]


def label_of(key) -> str:
    sampler, _, sp, eta = key
    return sampler + (f" η={eta:g}" if eta is not None else "") + f", {sp}"


met = [f"{label_of(k)} (NFE {r['nfe']}): {r['ratio']:.3g}" for k, r in budget if r["ratio"].value <= 1.1]
print(f"target (docs/DESIGN.md): a sampler with ≤ 25 NFE within 1.1× DDPM-{REF_STEPS}'s FD. At this n, point "
      f"estimates at or below 1.1: {'; '.join(met) if met else 'none'}")
best = min(budget, key=lambda kr: kr[1]["ratio"].value)
print(f"best at ≤ 25 NFE: {label_of(best[0])}, NFE {best[1]['nfe']}: ÷ DDPM {best[1]['ratio']:.3g}")

# %% [markdown]
# **What the run shows, and what n = 200 cannot.** In point estimate the stochastic samplers do best at both budgets:
# ancestral (`ddpm`, respaced) at 1.06× (leading) and 1.15× (trailing) DDPM-1000 with 10 evaluations and 0.91× and
# 0.96× with 25; Euler-ancestral at η = ½ at 0.99× with 10 and 1.16–1.20× with 25. Among the deterministic ones,
# trailing spacing matters more than the order: Heun with trailing at 9 evaluations (1.09×) and DPM-Solver++(2M) with
# trailing at 10 (1.29×) are the best ODE rows, DDIM and leading DPM-Solver++(2M) the worst (1.39–1.55×). But at
# n = 200 every ratio's interval is about ±0.4–0.5 wide: the intervals of nearly all rows overlap, and the target, a sampler with ≤ 25 NFE within 1.1×
# DDPM-1000, is met here only in point estimate (by six rows, Heun-trailing-9 among them), never with an interval.
# The recorded n = 2000 study (`benchmarks/sampler_study_latent_mnist_ddpm.md` and `…_partial.md`; commands in
# §3.1) settles what this run leaves open: ancestral sampling on 25 steps is at **0.84× [0.65, 1.03]** (leading),
# which meets the target with its interval (0.91× [0.72, 1.11] trailing); Heun with trailing spacing at 9 evaluations
# is at 1.28× [1.04, 1.55], so its 1.09× here is not confirmed, and no deterministic sampler meets the target; the
# ODE solvers do not improve with more evaluations (they drift up to the ODE's own 1.55× by 50–100). The study did
# not run Euler-ancestral at η = ½. The right panel is the left one against wall-clock. At 1000 steps ε_θ is nearly
# all of the cost (DDPM-1000 took 300 ms a sample, about 0.3 ms an evaluation, on one thread beside another
# notebook's run). At 10–25 steps it is not: DDIM-10 took 5.9 ms and DDIM-25 8.1 ms, so about 0.15 ms an evaluation
# on top of some 4 ms a sample that do not depend on the steps (the decode, the set-up). On a shared CPU, read it for the order of magnitude only.
#
# **The n = 2000 study.** `scripts/sampler_study.py` runs the same grid at n = 2000, with NFE up to 100, and writes
# `benchmarks/sampler_study_latent_mnist.json`. Where that file exists, its curves are plotted here (the paired ratio
# to DDPM-1000, with intervals).

# %%
study_path = Path(minildm.__file__).resolve().parent.parent / "benchmarks" / "sampler_study_latent_mnist.json"
if study_path.exists():
    study = json.loads(study_path.read_text())
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for sampler in SAMPLERS:
        for sp, ls in (("leading", "-"), ("trailing", "--")):
            rs = sorted((r for r in study["rows"] if r["sampler"] == sampler and r["spacing"] == sp
                         and r["nfe"] < 1000), key=lambda r: r["nfe"])
            if rs:
                lo, hi = [r["ratio"] - r["ratio_low"] for r in rs], [r["ratio_high"] - r["ratio"] for r in rs]
                ax.errorbar([r["nfe"] for r in rs], [r["ratio"] for r in rs], yerr=[lo, hi],
                            fmt="o" + ls, ms=3, capsize=2, color=colors[sampler], lw=1.2,
                            label=f"{sampler}{' (η=1: = ddpm)' if sampler == 'euler_ancestral' else ''}, {sp}")
    ax.axhline(1, color="k", lw=1, label="DDPM-1000"); ax.axhline(1.1, color="k", ls=":", lw=1, label="1.1× target")
    ax.set(xscale="log", xlabel="network evaluations per sample", ylabel="FD ÷ DDPM-1000 (paired)",
           title=f"scripts/sampler_study.py: {study['model']}, n = {study['n']}, seed {study['seed']}")
    ax.legend(fontsize=6, ncol=2); ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    ok = [r for r in study["rows"] if r["nfe"] <= 25 and r["ratio"] <= 1.1]
    print(f"n = {study['n']}: rows with ≤ 25 NFE at or below 1.1× DDPM-1000: "
          + ("; ".join(f"{r['sampler']} {r['spacing']} NFE {r['nfe']}: {r['ratio']:.3g} [{r['ratio_low']:.3g}, "
                       f"{r['ratio_high']:.3g}]" for r in ok) if ok else "none"))
else:
    print(f"no {study_path.name}: `OMP_NUM_THREADS=1 python scripts/sampler_study.py --json benchmarks/"
          f"{study_path.name}` produces it (about an hour on one thread), then re-run this cell")

# %% [markdown]
# The study's rows are recorded in two files instead (`benchmarks/sampler_study_latent_mnist_partial.md`, the
# deterministic samplers; `benchmarks/sampler_study_latent_mnist_ddpm.md`, the ancestral ones; `benchmarks/RESULTS.md`,
# "Quality per network evaluation"), so the cell above finds no combined JSON. Recorded, not this run: Heun and
# DPM-Solver++(2M) with trailing spacing best among the ODE solvers at 9–15 evaluations (1.28× and 1.37×), every ODE
# solver converging to 1.54–1.55× with more, and ancestral sampling at 0.84× with 25 steps and 0.79× with 100.

# %% [markdown]
# ## 5 · Editing real digits: SDEdit and DDIM inversion
#
# **SDEdit** (Meng et al. 2022) takes a real image, noises it to an intermediate $t_s$ with the forward process,
# and samples down from there: a small strength (t_s ≈ strength·999) redraws details and keeps the layout, and a
# strength near 1 keeps almost nothing. For a **latent** model the input must be in ε_θ's space: encode first,
# $z = s\cdot\mathcal E(x)$ with the scale factor s (`latents.encode_dataset`, i.e. `first_stage.encode_latents`),
# edit the latent, and decode the result with $\mathcal D(z/s)$. Here the sampler
# is ancestral (`ddpm`, 50 steps respaced), as in SDEdit's SDE, and each strength starts from the same noise. The
# figure shows eight test digits, their autoencoder reconstruction (strength 0), and the edits. The table below
# reports how often the judge still reads the original label, and how far the edit moved in pixels.

# %%
x_ed, y_ed = mnist("test", size=32, n=N_EDIT)
z_ed = encode_dataset(ae, x_ed).to(device)  # encode first: z = s·ℰ(x)
STRENGTHS = (0.2, 0.4, 0.6, 0.8)
edits = {0.0: model.decode(z_ed).cpu()}  # strength 0: the latent unchanged, decoded: D(E(x))
for s in STRENGTHS:
    z_s = editing.sdedit(unet, z_ed, sched, s, sampler="ddpm", steps=50, generator=torch.Generator().manual_seed(SEED))
    edits[s] = model.decode(z_s).cpu()  # decode the edited latent
labels = ["input"] + [f"strength {s:g}" + (": D(E(x))" if s == 0 else "") for s in edits]
viz.show_strip([x_ed[:8]] + [edits[s][:8] for s in edits], labels, size=0.9, title="SDEdit on encoded test digits")
ts50 = spacing.spaced_timesteps(sched.T, 50, "leading")
print(f"{'strength':>8} {'t_s':>5} {'label kept':>24} {'RMS change (pixels)':>24}")
for s, x in edits.items():
    t_s = ts50[ts50 <= s * (sched.T - 1)][0].item() if s > 0 else "—"
    kept = uncertainty.bootstrap_mean((ev.logits(x).argmax(1) == y_ed).numpy(), n_boot=N_BOOT, seed=0)
    rms = uncertainty.bootstrap_mean((x - x_ed).flatten(1).pow(2).mean(1).sqrt().numpy(), n_boot=N_BOOT, seed=0)
    print(f"{s:>8.1f} {t_s:>5} {kept:>24.1%} {rms:>24.3f}")

# %% [markdown]
# **The trade SDEdit makes, read from the table.** At strength 0 the only change is the autoencoder's round trip
# (its RMS is the floor). At 0.2 the digit keeps its label as often as the unedited one and only its strokes change;
# at 0.4 about one digit in five turns into another; by 0.6 most labels are gone and by 0.8 the share kept is near
# the 10% that any random digit would have: the output is a new sample, not an edit. For this model, editing turns
# into generation between strength 0.4 and 0.6.
#
# **DDIM inversion** runs the ODE the other way, $x_0 \to x_T$: Euler steps *up* the σ-ladder. Each step asks
# ε_θ at its upper timestep about the current state (`editing.ddim_invert`), which is the ε̂ that the step down
# between the same two levels will use. Sampling back down from that $x_T$ with a deterministic sampler on the same
# timesteps should return (nearly) $x_0$. The round trip misses by how much ε̂ changes within a step, so it
# shrinks as the steps grow. The error is the RMS over each latent's entries (latents have std ≈ 1).

# %%
INV_STEPS = config.pick(smoke=(5, 10), cpu=(10, 25, 50), gpu=(10, 25, 50, 100, 250))
z_inv = z_ed[:N_INV]
inv = {}
for name in ("euler", "heun", "dpmpp_2m"):
    for K in INV_STEPS:
        x_T_inv, z_back, err = editing.inversion_round_trip(unet, z_inv, sched, sampler=name, steps=K)
        inv[(name, K)] = dict(err=uncertainty.bootstrap_mean(err.cpu().numpy(), n_boot=N_BOOT, seed=0),
                              x_T=x_T_inv.cpu(), back=z_back)
print(f"{'down sampler':>12} " + " ".join(f"{f'K = {K}':>22}" for K in INV_STEPS)
      + "   (RMS error of z_0, latent units)")
for name in ("euler", "heun", "dpmpp_2m"):
    print(f"{name:>12} " + " ".join(f"{inv[(name, K)]['err']:>22.3g}" for K in INV_STEPS))
print(f"std of the inverted x_T (euler, K = {INV_STEPS[-1]}): {inv[('euler', INV_STEPS[-1])]['x_T'].std():.3f} "
      "(N(0, I) has 1)")
fig, ax = plt.subplots(figsize=(4.8, 3.2))
for name in ("euler", "heun", "dpmpp_2m"):
    e = np.array([[inv[(name, K)]["err"].value, inv[(name, K)]["err"].low, inv[(name, K)]["err"].high]
                  for K in INV_STEPS])
    ax.errorbar(INV_STEPS, e[:, 0], yerr=[e[:, 0] - e[:, 1], e[:, 2] - e[:, 0]], fmt="o-", ms=3, capsize=2, label=name)
ax.set(xscale="log", yscale="log", xlabel="steps (up, then down)", ylabel="RMS error of z_0",
       title="inversion round trip"); ax.legend(fontsize=8); ax.grid(alpha=0.3, which="both")
fig.tight_layout()
K_lo, K_hi = INV_STEPS[0], INV_STEPS[-1]
frames = [x_ed[:4], inv[("euler", K_lo)]["x_T"][:4, :1], model.decode(inv[("euler", K_lo)]["back"][:4]).cpu(),
          inv[("euler", K_hi)]["x_T"][:4, :1], model.decode(inv[("euler", K_hi)]["back"][:4]).cpu()]
fig = viz.show_strip([f.clamp(-1, 1) if i in (0, 2, 4) else (f / 3).clamp(-1, 1) for i, f in enumerate(frames)],
                     ["x_0", f"x_T, K={K_lo} (ch. 0)", f"back, K={K_lo}", f"x_T, K={K_hi} (ch. 0)", f"back, K={K_hi}"],
                     size=1.0, title="x_0 → x_T → x_0 (euler down)")

# %% [markdown]
# **What the run shows.** The round trip shrinks with K for every sampler coming down, Euler's by about 3× from 10
# to 50 steps (slower than 1/K: ε_θ is not smooth enough for the first-order rate). The mismatch argument (a
# second-order sampler is not the inverse of a first-order way up) is visible at K = 10, where Heun and
# DPM-Solver++ miss by more than Euler; from K = 25 on Heun's round trip is the best, because its own error is
# then smaller than the mismatch. The inverted x_T looks like noise, but its std is well below 1 (printed above):
# it is not a typical draw of N(0, I), which is why editing in x_T needs care (null-text inversion, Mokady et
# al. 2023).

# %% [markdown]
# ## What we measured
#
# The lines below are printed from this run (n = N samples per FD, judged by a network that no training loss touched,
# with 95% bootstrap intervals). The verdict of §3.7 and the quality-per-NFE figure of §4 are the headline.

# %%
print(f"mode {config.get_mode()}, n = {N}, real-vs-real floor {floor:.3g}")
print(f"DDPM-{REF_STEPS}: FD {ref['fd']:.3g} ({ref['seconds'] / N * 1e3:.1f} ms per sample)")
for K in DDIM_STEPS:
    print(f"DDIM η=0, {K} steps (leading): ÷ DDPM {draw('ddim', K)['ratio']:.3g}; std(z_0) ÷ training "
          f"{uncertainty.ratio(draw('ddim', K)['std'], train_std):.3g}")
print(f"ancestral, 50 steps: ÷ DDPM {draw('ddpm', 50)['ratio']:.3g}")
print(f"best at ≤ 25 NFE: {label_of(best[0])}, NFE {best[1]['nfe']}: ÷ DDPM {best[1]['ratio']:.3g}")
print(f"inversion round trip, euler, K = {INV_STEPS[-1]}: RMS {inv[('euler', INV_STEPS[-1])]['err']:.3g} "
      "(latent units)")
for who, keys in (("ε face model", (("DDIM η=0", face_model.guidance), ("ancestral", face_model.guidance))),
                  ("v face model", (("v: DDIM η=0", face_v.guidance, 0.0), ("v: ancestral", face_v.guidance, 0.0)))):
    d, a = face_runs[keys[0]], face_runs[keys[1]]
    print(f"{who}, s = {keys[0][1]:g}: DDIM std(z_0) ÷ training {uncertainty.ratio(d['std'], face_std):.3g}, "
          f"attributes {d['carried'].value:.1%} against ancestral {a['carried'].value:.1%} (n = {N_FACES})")

# %% [markdown]
# * **Deterministic DDIM's gap is the model's, not the step size's**: 1.52× DDPM-1000 at 10 steps, 1.36× at 50 and
#   1.32× at 250 in this run (at n = 200 only the 10-step interval excludes 1); the recorded n = 2000 study has
#   DDIM at 1.54–1.55× from 25 to 100 steps, intervals above 1, and every ODE solver converging there. Spread,
#   calibration, start step and clipping are ruled out on digits; on faces the ODE drifts to 1.23× the latents'
#   spread even without guidance.
# * **Best per budget**: in this run's point estimates, ancestral sampling (`ddpm`, respaced; 0.91× at 25 steps) and
#   Euler-ancestral at η = ½ (0.99× at 10); among deterministic samplers, Heun or DPM-Solver++(2M) with trailing
#   spacing at 9–10 evaluations (1.09× and 1.29×). At n = 200 these rows' intervals overlap; the recorded n = 2000
#   study orders them the same way for the samplers it ran. The course's default, 50 ancestral steps, stays.
# * **Target** (≤ 25 NFE within 1.1×): not settled at n = 200 (met in point estimate only); met with its interval in
#   the recorded n = 2000 study by ancestral-25, 0.84× [0.65, 1.03]; not met by any deterministic sampler there.
#   The faces target (DDIM within 1.2× the spread, 3 points of attributes): not met by the ε-model (1.23× at s = 1,
#   12 points), met by the v-model (§3.8).
#
# * **Fixes** (§3.8): v-prediction lowers DDIM's FD on digits (recorded: 12.4× against 23.8× the floor at 3,000
#   steps) but leaves a gap of 1.5–1.8× to ancestral sampling, at 3,000 and 20,000 steps alike, and at four times
#   the network's size (1.64×). On faces it removes
#   the drift: DDIM at 1.03× the spread and 0.5 points from ancestral sampling's attributes (recorded, n = 200),
#   which meets the faces target. Zero terminal SNR adds nothing measurable; guidance rescale changes nothing for
#   an ε-model, whose rescale factor is about 1.
#
# Not measured here: more than one training seed per variant. A larger network, the one thing the verdict
# suggested might shrink the digit gap, was measured (§3.8, recorded): four times the parameters left both the FD and
# the gap where they were. Recorded but not run here: guidance rescale on the v face model
# (φ = 0.7 narrows DDIM's latents from 1.03× to 0.98× the data's spread, attributes unchanged;
# `benchmarks/face_guidance_rescale_v.json`).
#
# ## Exercises
#
# **1.** How many network evaluations does Heun (`solvers.heun_sample`) spend with K = 10 steps?

# %%
answer_1 = None  # an int
check("07.heun_nfe", answer_1)

# %% [markdown]
# **2.** With K = 10 steps on the course's T = 1000, which of the three spacings (`spacing.SPACINGS`) start at
# t = 999, the noisiest trained step? (Give every one that does.)

# %%
answer_2 = None  # a set of spacing names, e.g. {"leading"}
check("07.starts_at_T", answer_2)

# %% [markdown]
# **3.** What is σ_999 = √((1 − ᾱ_999)/ᾱ_999), the noise level at which a `trailing` sampler starts, for the course's
# linear schedule with T = 1000? (Compute it from `schedule.make_schedule("linear", 1000).alpha_bar`.)

# %%
answer_3 = None  # a float
check("07.sigma_max", answer_3)

# %% [markdown]
# **4.** (Open.) Write the inverse of *Heun*: a second-order step upwards, from σ_a to σ_b, that asks ε_θ at both
# ends. Does the round trip with `heun` on the way down get better than Euler's? What does it cost in evaluations?
#
# **5.** (Open.) Re-run §3.1 with `"trailing"` spacing and with `sampler="dpmpp_2m"` at 50 steps. Which of the
# causes of §3 does each change address?
