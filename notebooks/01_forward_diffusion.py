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
# # 01 · The forward process: how diffusion destroys an image
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/minildm/minildm/blob/main/notebooks/01_forward_diffusion.ipynb)
#
# **Paper:** Rombach et al., *High-Resolution Image Synthesis with Latent Diffusion Models* (CVPR 2022), §3 and
# App. B, which build on Ho et al., *Denoising Diffusion Probabilistic Models* (DDPM, 2020), §2.
#
# A diffusion model learns to *undo* a fixed process that slowly turns data into noise. Before we can learn
# the reverse, we need the forward process exactly, because the training objective (notebook 02) samples from it.
#
# | | equation | where |
# |---|---|---|
# | one step | $q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big)$ | DDPM Eq. 2 |
# | many steps at once | $q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big)$, $\ \bar\alpha_t = \prod_{s\le t}(1-\beta_s)$ | DDPM Eq. 4 |
# | signal-to-noise | $\mathrm{SNR}(t) = \bar\alpha_t / (1-\bar\alpha_t)$ | Kingma et al. 2021 |
#
# **You will:** plot three β schedules (and meet the naming trap in LDM's), check the closed form of
# Eq. 4 against running the chain of Eq. 2 step by step, noise real MNIST digits across t, and *measure* whether
# $x_T$ really is indistinguishable from $\mathcal N(0, I)$.
#
# Code indices run `t = 0 … T-1` (index `t` is the paper's $t+1$). Names follow the paper: `x0`, `x_t`, `eps`,
# `betas`, `alpha_bar`.
#
# **Two paths**: this notebook trains nothing, so there is no fast/full switch and both paths are the same: every
# cell computes schedules and noises digits. Measured on one thread of a 2-core machine (2 CPU cores, shared with
# other runs), from an empty runs folder: 4.9 min in cpu mode, 4.7 min of it the cell of §2 that runs 20,000 chains
# step by step. On a Colab T4 expect a few minutes (not measured; nothing here uses the GPU).

# %%
# Colab only: install minildm from GitHub (a no-op anywhere else), and nothing more: Colab ships every dependency,
# and upgrading its own IPython, ipykernel or ipywidgets would ask for a runtime restart.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "minildm @ git+https://github.com/minildm/minildm"], check=True)

# %%
import math

import matplotlib.pyplot as plt
import torch

from minildm import config, schedule, viz
from minildm.data import mnist
from minildm.exercises import check

print(config.describe())
print(viz.mode_banner())
gen = config.seed_everything(0)

# %% [markdown]
# ## 1 · Three β schedules
#
# A schedule fixes how much noise $\beta_t$ each step adds. Three are in common use:
#
# * **linear** (DDPM): $\beta_t$ from $10^{-4}$ to $0.02$ over $T=1000$ steps.
# * **cosine** (Nichol & Dhariwal 2021, Eq. 17): defined through $\bar\alpha_t = f(t)/f(0)$ with
#   $f(t) = \cos^2\!\big(\tfrac{t/T+s}{1+s}\cdot\tfrac{\pi}{2}\big)$, $s = 0.008$, so that information is destroyed more
#   evenly over $t$. Dividing by $f(0)$ makes $\bar\alpha_0 = 1$ before the first step. The β's follow as
#   $\beta_t = 1 - \bar\alpha_t/\bar\alpha_{t-1}$, and they are **clipped at 0.999**: at $t = T$, $f(T) = \cos^2(\pi/2) = 0$, so
#   the last β would be exactly 1 (all signal gone in one step, and a division by ~0 when the step is inverted).
# * **scaled linear** (what LDM and Stable Diffusion use). **Naming trap:** LDM's configs call it `linear`, but it
#   is linear in $\sqrt{\beta}$: $\beta_t = \big(\sqrt{0.00085} + \tfrac{t}{T-1}(\sqrt{0.012}-\sqrt{0.00085})\big)^2$.
#   diffusers renamed it `scaled_linear`; so do we. Its end point is much gentler than DDPM's, and we will see
#   what that costs at $t=T$.

# %% [markdown]
# First the naive version: $\bar\alpha_t$ as a Python loop over the product, checked against the library.

# %%
T = 1000
betas = schedule.make_betas("linear", T)
alpha_bar_naive = []
prod = 1.0
for beta in betas.tolist():
    prod *= 1 - beta  # ᾱ_t = ∏_{s≤t} (1 − β_s)
    alpha_bar_naive.append(prod)
torch.testing.assert_close(torch.tensor(alpha_bar_naive, dtype=torch.float64), schedule.alpha_bar_from_betas(betas))
print("naive loop == minildm.schedule.alpha_bar_from_betas ✓")

# %%
scheds = {name: schedule.make_schedule(name, T) for name in schedule.SCHEDULES}
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
viz.plot_curves({n: s.betas for n, s in scheds.items()}, ylabel="β_t", title="noise added per step", ax=axes[0])
viz.plot_curves({n: s.alpha_bar for n, s in scheds.items()}, ylabel="ᾱ_t", title="signal kept: ᾱ_t", ax=axes[1])
viz.plot_curves({n: s.snr.log() for n, s in scheds.items()}, ylabel="log SNR(t)", title="log signal-to-noise", ax=axes[2])
fig.tight_layout()

# %% [markdown]
# Golden values (these numbers are checked by nbval on every CI run, and by the package's tests):

# %%
# NBVAL_CHECK_OUTPUT
for name, s in scheds.items():
    print(f"{name:>13}: β_0={s.betas[0].item():.6f}  β_T={s.betas[-1].item():.6f}  "
          f"ᾱ_0={s.alpha_bar[0].item():.6f}  ᾱ_T={s.alpha_bar[-1].item():.3e}  √ᾱ_T={s.alpha_bar[-1].sqrt().item():.4f}")

# %% [markdown]
# Look at the last column: after 1000 steps, DDPM's linear and the cosine schedule keep $\sqrt{\bar\alpha_T}\approx 0.006$
# and $0$ of the signal, but the scaled-linear one still keeps **7%** of it. We come back to this in §4.
#
# The cosine row's `β_T=0.999000` is the clip, not the formula (which gives 1), and it is why its $\bar\alpha_T$ is
# $2.4\times10^{-9}$ (0.001 of $\bar\alpha_{T-1}$) rather than 0. It is also the spike at the right of the first panel
# above: as $\bar\alpha_t \to 0$, the ratio $\bar\alpha_t/\bar\alpha_{t-1}$ falls fast, so the cosine β climbs from about 0.02 at
# t = 900 to 0.09 at t = 980 and 0.75 at t = 999, and would reach 1 at t = 1000 without the clip; its last 20
# or so steps do most of the final destroying.
#
# ## 2 · The closed form equals the chain
#
# Eq. 4 claims that $T$ small Gaussian steps compose into one Gaussian jump. We check it in distribution: start many
# chains at the same digit $x_0$, run Eq. 2 step by step to $t$, and compare the empirical mean and variance per
# pixel with $\sqrt{\bar\alpha_t}x_0$ and $1-\bar\alpha_t$.

# %%
x_train, y_train = mnist("train", size=32, n=config.pick(smoke=512, cpu=10000, gpu=60000))
x0 = x_train[:1]  # (1, 1, 32, 32), one digit in [-1, 1]
n_chains = config.pick(smoke=2000, cpu=20000, gpu=20000)
s = scheds["linear"]
t_check = 300

x = x0.double().expand(n_chains, -1, -1, -1)  # (n, 1, 32, 32): n copies of the same digit
for step in range(t_check + 1):  # indices 0..t_check, i.e. the paper's t = 1 … t_check+1
    x = schedule.q_step(x, torch.full((n_chains,), step), s.betas)  # q(x_t | x_{t−1}), Eq. 2

ab = s.alpha_bar[t_check]
mean_err = (x.mean(0) - ab.sqrt() * x0[0]).abs().max().item()
var_err = (x.var(0) - (1 - ab)).abs().max().item()
print(f"after {t_check + 1} steps of Eq. 2 with {n_chains} chains: "
      f"max |mean − √ᾱ x0| = {mean_err:.4f},  max |var − (1 − ᾱ)| = {var_err:.4f}")
# the standard error of a mean over n chains is √((1 − ᾱ)/n); allow 5 of them, over 1024 pixels
tol = 5 * ((1 - ab) / n_chains).sqrt().item()
assert mean_err < tol and var_err < 5 * (2 / n_chains) ** 0.5, "the chain and the closed form disagree"
print(f"within 5 standard errors ({tol:.4f}) ✓")

# %% [markdown]
# The library's `q_sample` is that closed form; one call replaces $t$ steps:

# %%
eps = torch.randn(n_chains, 1, 32, 32, dtype=torch.float64, generator=gen)
x_jump = schedule.q_sample(x0.double().expand(n_chains, -1, -1, -1), torch.full((n_chains,), t_check), s.alpha_bar, eps)
fig, ax = plt.subplots(figsize=(5, 3))
ax.hist(x[:, 0, 16, 16].numpy(), bins=60, density=True, alpha=0.6, label="chain (Eq. 2, step by step)")
ax.hist(x_jump[:, 0, 16, 16].numpy(), bins=60, density=True, alpha=0.6, label="one jump (Eq. 4)")
ax.set(xlabel="value of the centre pixel x_t[16, 16]", ylabel="density",
       title=f"the centre pixel at t={t_check + 1}: two routes, one distribution")
ax.legend(fontsize=8);

# %% [markdown]
# ## 3 · Real digits across t
#
# Four digits, one noise draw shared by every column, so only $\bar\alpha_t$ changes from left to right. Each column is
# labelled with the paper's t and the signal's weight $\sqrt{\bar\alpha_t}$. (One grid image per schedule, shown at twice
# the native 32 px: pure noise compresses badly, and this keeps the notebook small.)

# %%
ts = [0, 50, 100, 200, 300, 500, 700, 999]
digits = x_train[:4]  # (4, 1, 32, 32)
eps = torch.randn(digits.shape, generator=gen)  # one noise draw, shared across t, so only ᾱ_t changes
fig, axes = plt.subplots(2, 1, figsize=(5.6, 6.2))
for ax, name in zip(axes, ("linear", "cosine")):
    ab = scheds[name].alpha_bar
    frames = torch.stack([schedule.q_sample(digits, torch.full((4,), t), ab, eps) for t in ts], 1)  # (4, 8, 1, 32, 32)
    viz.show_grid(frames.flatten(0, 1), nrow=len(ts), ax=ax)  # row = digit, column = t
    ax.set_axis_on()
    ax.set_yticks([])
    ax.set_xticks([1 + 33 * j + 16 for j in range(len(ts))],  # column centres: 32 px images, 1 px padding
                  [f"t={t + 1}\n√ᾱ={ab[t].sqrt():.2f}" for t in ts], fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"q(x_t | x_0), {name} schedule", fontsize=10)
fig.tight_layout()

# %% [markdown]
# The linear schedule's digits are still legible at t = 301 ($\sqrt{\bar\alpha} = 0.63$), though grainy, and almost gone at
# t = 501 ($\sqrt{\bar\alpha} = 0.28$): from there on, about half of its 1000 steps are spent on what is nearly pure noise. The
# cosine schedule keeps them clearly legible to t = 501 ($\sqrt{\bar\alpha} = 0.70$), faint at t = 701 (0.45), and destroys
# them only near the end. That is Nichol & Dhariwal's argument for cosine: information is removed more evenly over t.
#
# ### A slider over t
# Move the slider (in a live notebook; widgets are not saved in the file, so the static strip above stands in).

# %%
import ipywidgets as widgets


def show_t(t: int = 200, name: str = "linear") -> None:
    x_t = schedule.q_sample(digits, torch.full((4,), t - 1), scheds[name].alpha_bar, eps)
    viz.show_grid(x_t, nrow=4, title=f"{name}: t={t}, √ᾱ_t={scheds[name].alpha_bar[t - 1].sqrt():.3f}", figsize=6)
    plt.show()


widgets.interact(show_t, t=widgets.IntSlider(200, 1, T, 1), name=list(schedule.SCHEDULES));

# %% [markdown]
# ## 4 · Is $x_T$ really $\mathcal N(0, I)$?
#
# Sampling (notebook 02) starts from $x_T \sim \mathcal N(0, I)$, so the forward process must end there. We measure it
# three ways, on many digits, for each schedule:
#
# 1. the moments of $x_T$ (mean 0, std 1?);
# 2. the correlation between $x_T$ and $x_0$ (how much of the digit survives);
# 3. the exact KL divergence $\mathrm{KL}\big(q(x_T\mid x_0)\,\|\,\mathcal N(0,I)\big) = \tfrac12\sum_i\big(\bar\alpha_T x_{0,i}^2 + (1-\bar\alpha_T) - 1 - \log(1-\bar\alpha_T)\big)$, in nats per image.

# %%
# NBVAL_CHECK_OUTPUT
xs = x_train[:512]  # the same 512 digits in every mode, so nbval can check this table
eps = torch.randn(xs.shape, generator=torch.Generator().manual_seed(1))
rows = []
for name, s in scheds.items():
    x_T = schedule.q_sample(xs, torch.full((len(xs),), T - 1), s.alpha_bar, eps)
    ab = s.alpha_bar[-1].item()
    corr = torch.corrcoef(torch.stack([x_T.flatten(), xs.flatten()]))[0, 1].item()
    kl = 0.5 * (ab * xs.double().pow(2) - ab - math.log1p(-ab)).flatten(1).sum(1).mean().item()  # (1−ᾱ) − 1 = −ᾱ
    rows.append((name, x_T.mean().item(), x_T.std().item(), corr, kl))
print(f"{'schedule':>13} {'mean':>7} {'std':>6} {'corr(x_T,x0)':>13} {'KL nats/img':>12}")
for name, m, sd, c, kl in rows:
    print(f"{name:>13} {m:7.3f} {sd:6.3f} {c:13.3f} {kl:12.3f}")

# %% [markdown]
# Read the last two columns. For DDPM's linear and the cosine schedule, $x_T$ keeps no measurable trace of the digit
# (correlation ≈ 0.00, KL a few hundredths of a nat per image at most). The scaled-linear schedule of LDM / Stable
# Diffusion leaves a measurable correlation (≈ 0.04) and about 2 nats per image: its terminal SNR is not zero, so sampling from pure noise starts slightly
# "off-distribution". Lin et al. (2024, *Common Diffusion Noise Schedules and Sample Steps are Flawed*) traced
# Stable Diffusion's trouble with very bright or dark images to exactly this, and Stable Diffusion normalises its
# latents to unit variance (notebook 03): normalising does not remove the leak. Their fix, a schedule rescaled to
# zero terminal SNR, needs another parameterisation of the network's output (the samplers notebook).
#
# **Which schedule does this course use?** Its latent models (notebooks 04–06) train with DDPM's *linear* schedule,
# not LDM's. We measured the choice rather than assumed it (`scripts/schedule_study.py`: notebook 04's model, 1,000
# training steps, three seeds). The scaled-linear schedule gave clearly better samples at that budget: FD 7.6× the
# real floor against 11.5×, and better on every seed. A full-length pair (20,000 steps, one seed) kept the order:
# 2.8× against 3.5×. The course will switch when its models are next retrained.
# Until then the linear schedule stays, because every shipped model was trained with it. `docs/DESIGN.md` keeps the
# figures.
#
# The histograms tell the same story: pixels of $x_T$ against the density of $\mathcal N(0,1)$.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3), sharey=True)
grid = torch.linspace(-4, 4, 200)
for ax, (name, s) in zip(axes, scheds.items()):
    x_T = schedule.q_sample(xs, torch.full((len(xs),), T - 1), s.alpha_bar, eps)
    ax.hist(x_T.flatten().numpy(), bins=100, density=True, alpha=0.6, label="pixels of x_T")
    ax.plot(grid, torch.exp(-grid**2 / 2) / (2 * torch.pi) ** 0.5, "k", lw=1, label="N(0, 1)")
    ax.set(title=name, xlabel="pixel value of x_T")
axes[0].set_ylabel("density")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your answer and a cell that checks it. Leave `None` to skip.
#
# **1.** What is $\bar\alpha$ at the paper's $t = 500$ for the linear schedule with $T=1000$? (Compute it from `betas`.)

# %%
answer_1 = None  # e.g. float(...)
check("01.alpha_bar_half", answer_1)

# %% [markdown]
# **2.** At which code index `t` does the SNR of the cosine schedule ($T=1000$) first fall below 1, i.e. where noise
# starts to dominate?

# %%
answer_2 = None  # an int
check("01.snr_below_one", answer_2)

# %% [markdown]
# **3.** Write `q_sample` yourself (Eq. 4): `my_q_sample(x0, t, alpha_bar, eps)`.


# %%
def my_q_sample(x0, t, alpha_bar, eps):
    return None  # your code here


check("01.q_sample", my_q_sample if my_q_sample(torch.zeros(1, 1, 2, 2), torch.zeros(1, dtype=torch.long),
                                                  scheds["linear"].alpha_bar, torch.zeros(1, 1, 2, 2)) is not None else None)

# %% [markdown]
# **4.** (Conceptual.) A sampler has to undo every step of the schedule it was trained with, so it matters *where* a
# schedule spends its steps: steps taken after the digit is already gone teach the model little. At the paper's
# $t = 500$, the middle of the chain, which schedule keeps more of the digit in $x_t$: `"linear"` or `"cosine"`?
# Decide from §1 and §3 (what measures "how much of the digit" is left?), then answer with the schedule's name, a
# string.

# %%
answer_4 = None  # a string: one of the two schedule names
check("01.more_signal", answer_4)

# %% [markdown]
# **Next:** notebook 02 trains a network to predict the noise `eps` that `q_sample` added, and turns that into a
# sampler that walks from $\mathcal N(0, I)$ back to digits.
