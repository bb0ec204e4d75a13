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
# # 02 · Pixel-space DDPM: learn to predict the noise, then walk back from it
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/minildm/minildm/blob/main/notebooks/02_pixel_ddpm.ipynb)
#
# **Paper:** LDM §3.2, Eq. 1 (the objective, taken from DDPM); Ho et al. 2020 §3 (DDPM, Algorithm 1–2); Song et al.
# 2021 §4 (DDIM). This notebook is the *baseline*: diffusion directly on pixels. Its measured cost, at the end, is
# what latent diffusion (notebook 04) has to beat.
#
# Notebook 01 gave us $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$. If a network
# $\varepsilon_\theta(x_t, t)$ can tell which noise $\varepsilon$ was added, we can remove it, a little at a time.
# DDPM shows that maximising a variational bound on $\log p(x_0)$ reduces, after re-weighting, to plain regression
# on the noise (DDPM Eq. 14, LDM Eq. 1):
#
# $$L_{DM} = \mathbb E_{x_0,\ \varepsilon\sim\mathcal N(0,I),\ t\sim\mathcal U\{1..T\}}\Big[\big\|\varepsilon - \varepsilon_\theta(x_t, t)\big\|_2^2\Big].$$
#
# **You will:** build the loss, the timestep embedding and the UNet piece by piece (each checked against
# `minildm`), train on MNIST with a live loss curve, write the DDPM and DDIM samplers as explicit loops, watch
# $x_T \to x_0$, and measure what it all costs.

# %%
# Colab only: install minildm from GitHub (a no-op anywhere else), and nothing more: Colab ships every dependency,
# and upgrading its own IPython, ipykernel or ipywidgets would ask for a runtime restart.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "minildm @ git+https://github.com/minildm/minildm"], check=True)

# %%
import inspect
import json
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from minildm import config, layers, presets, recipes, samplers, schedule, train, unet, viz
from minildm.data import mnist
from minildm.exercises import check
from minildm.objective import diffusion_loss

print(config.describe())
print(viz.mode_banner())
preset = presets.pixel_mnist()
print(f"preset for {preset.mode} mode:\n  UNet: {preset.unet}\n  train: {preset.train}")
device = config.get_device()
x_train, y_train = mnist("train", size=preset.image_size, n=preset.n_train)
print(f"training on {len(x_train)} MNIST digits of shape {tuple(x_train.shape[1:])}, values in [-1, 1]")

# %% [markdown]
# ## 1 · The objective, naively and from the library
#
# Algorithm 1 of DDPM, one step: pick $x_0$, $t$ and $\varepsilon$; make $x_t$ with Eq. 4; regress $\varepsilon$.

# %%
sched = schedule.make_schedule(preset.schedule, preset.T)
alpha_bar = sched.alpha_bar
x0 = x_train[:8]
g = torch.Generator().manual_seed(0)
t = torch.randint(0, preset.T, (8,), generator=g)
eps = torch.randn(x0.shape, generator=g)
toy_model = lambda x_t, t: 0.1 * x_t  # any function of (x_t, t) will do to compare the two losses  # noqa: E731

ab = alpha_bar[t].float().view(-1, 1, 1, 1)  # (B, 1, 1, 1)
x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps  # Eq. 4
naive = ((eps - toy_model(x_t, t)) ** 2).mean()  # L_DM for this batch
torch.testing.assert_close(naive, diffusion_loss(toy_model, x0, alpha_bar, t=t, eps=eps))
print(f"naive L_DM = {naive:.4f} == minildm.objective.diffusion_loss ✓")

# %% [markdown]
# ## 2 · Telling the network what t is: sinusoidal embeddings
#
# One network serves all $t$, so $t$ is an input. Like a Transformer's positions, it becomes a vector of sines and
# cosines at geometrically spaced frequencies $\omega_i = 10000^{-i/(d/2)}$: fast ones separate neighbouring steps,
# slow ones give the coarse position.

# %%
def naive_embedding(t, dim):
    half = dim // 2
    freqs = torch.tensor([10000 ** (-i / half) for i in range(half)])
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=1)


ts = torch.arange(preset.T)
emb = unet.timestep_embedding(ts, 64)
torch.testing.assert_close(naive_embedding(ts, 64), emb, atol=1e-4, rtol=1e-4)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.2))
axes[0].imshow(emb.T, aspect="auto", cmap="RdBu", interpolation="nearest")
axes[0].set(xlabel="t", ylabel="dimension", title="timestep_embedding(t, 64)  (cos | sin)")
sim = F.normalize(emb, dim=1) @ F.normalize(emb, dim=1).T
axes[1].imshow(sim, cmap="viridis")
axes[1].set(xlabel="t", ylabel="t", title="cosine similarity of embeddings: near t ≈ similar")
fig.tight_layout()

# %% [markdown]
# ## 3 · The UNet, piece by piece
#
# $\varepsilon_\theta$ must output an image-shaped tensor, see both fine detail and the whole digit, and know $t$.
# The UNet of DDPM/LDM does all three:
#
# * **ResBlock**: GroupNorm → SiLU → conv, then the time embedding is *added* as a per-channel bias, then GroupNorm →
#   SiLU → conv. Its last conv starts at zero, so every block starts as the identity.
# * **Down/Up**: a stride-2 conv halves the resolution; nearest-neighbour ×2 + conv doubles it back.
# * **Skip connections**: the decoder concatenates the encoder's activations at each resolution, so detail never has
#   to squeeze through the bottleneck.
# * **Self-attention** at the lowest resolution only (cost grows with (H·W)²): every position sees every other.
# * **Zero-initialised output**: an untrained model predicts ε = 0, i.e. the loss starts at E‖ε‖² = 1.

# %%
block = layers.ResBlock(16, 32, emb_dim=64)
h = block(torch.randn(2, 16, 32, 32), torch.randn(2, 64))
print("ResBlock(16→32):", tuple(h.shape), " Downsample:", tuple(layers.Downsample(32)(h).shape),
      " Upsample:", tuple(layers.Upsample(32)(h).shape))

model = recipes.build_unet(preset, device="cpu")
print(f"the {preset.mode} UNet has {unet.count_parameters(model):,} parameters")
shapes = []
hooks = [m.register_forward_hook(lambda m, i, o, n=n: shapes.append((n, tuple(o.shape))))
         for n, m in [("conv_in", model.conv_in), *[(f"down[{i}]", b) for i, b in enumerate(model.down)],
                      ("mid", model.mid), *[(f"up[{i}]", b) for i, b in enumerate(model.up)], ("conv_out", model.conv_out)]]
with torch.no_grad():
    out = model(x0, t)
for hk in hooks:
    hk.remove()
for name, shape in shapes:
    print(f"  {name:>9} → {shape}")
print("untrained output is exactly zero:", bool((out == 0).all()))

# %% [markdown]
# The UNet halves the image `len(channel_mult) - 1` times, so sizes must divide by that power of two. MNIST is 28×28;
# we pad it to 32×32. A wrong size gets an error that says what to do:

# %%
try:
    model(torch.randn(1, 1, 30, 30), torch.tensor([0]))
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# ## 4 · Training
#
# The loop lives in `minildm/train.py`: AdamW with linear warm-up, gradient clipping, an EMA of the weights (via
# `torch.optim.swa_utils`; we sample with the EMA), and an atomic checkpoint every few hundred steps, so an interrupted
# run resumes exactly where it stopped (re-run this cell after an interruption). Here is its heart, one step:

# %%
src = inspect.getsource(train.train_diffusion)
print(src[src.index("    def one_step"): src.index("    def payload")])

# %%
ckpt = config.runs_dir() / "pixel_mnist.pt"
fixed_noise = torch.randn(16, 1, preset.image_size, preset.image_size, generator=torch.Generator().manual_seed(1))
snapshots = []  # (step, samples) every sample_every steps: the same noise, sampled with DDIM


def snapshot(event):
    if event["event"] == "sample":
        x = samplers.ddim_sample(event["ema"], fixed_noise.to(device), sched, steps=preset.ddim_steps,
                                 clip_x0=preset.clip_x0)
        snapshots.append((event["step"], x.cpu()))


result, sched = recipes.train_preset(preset, x_train, ckpt_path=ckpt, callback=viz.chain(viz.LiveLoss(), snapshot))
ema = result.ema
history = result.history
train_ips = preset.train.batch_size * len(history) / history[-1][4]
print(f"{len(history)} steps in {history[-1][4] / 60:.1f} min of training ({train_ips:.0f} images/s); "
      f"checkpoint: {ckpt}")

# %%
viz.plot_loss(history, title=f"L_DM during training ({preset.mode} mode)")
if snapshots:
    fig, axes = plt.subplots(1, len(snapshots), figsize=(3 * len(snapshots), 3.2), squeeze=False)
    for ax, (step, x) in zip(axes[0], snapshots):
        viz.show_grid(x, nrow=4, title=f"step {step}", ax=ax)
    fig.suptitle("the same noise, sampled as training goes on (DDIM, EMA weights)")

# %% [markdown]
# ## 5 · Sampling: DDPM's ancestral sampler, written out
#
# Algorithm 2 of DDPM: start at $x_T\sim\mathcal N(0,I)$ and for $t = T … 1$
#
# $$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon_\theta(x_t,t)\Big) + \sigma_t z,
# \qquad \sigma_t^2 = \tilde\beta_t = \tfrac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t,\quad z\sim\mathcal N(0,I)\ (z=0 \text{ at the last step}).$$
#
# The library computes the same step through $\hat x_0$ and the posterior $q(x_{t-1}\mid x_t,\hat x_0)$ (DDPM Eq. 6–7),
# which is algebraically identical and lets us clip $\hat x_0$ to $[-1, 1]$. Without clipping they must agree:

# %%
@torch.no_grad()
def naive_ddpm(model, x_T, sched, generator):
    betas, alphas, ab, ab_prev = (v.float() for v in (sched.betas, sched.alphas, sched.alpha_bar, sched.alpha_bar_prev))
    x = x_T
    for t in range(sched.T - 1, -1, -1):
        eps_pred = model(x, torch.full((x.shape[0],), t))
        mean = (x - betas[t] / (1 - ab[t]).sqrt() * eps_pred) / alphas[t].sqrt()  # DDPM Eq. 11
        if t > 0:
            sigma = ((1 - ab_prev[t]) / (1 - ab[t]) * betas[t]).sqrt()  # σ_t² = β̃_t
            x = mean + sigma * torch.randn(x.shape, generator=generator)
        else:
            x = mean
    return x


ema_cpu = ema.to("cpu")
x_T = torch.randn(4, 1, preset.image_size, preset.image_size, generator=torch.Generator().manual_seed(2))
mine = naive_ddpm(ema_cpu, x_T, sched, torch.Generator().manual_seed(3))
lib = samplers.ddpm_sample(ema_cpu, x_T, sched, generator=torch.Generator().manual_seed(3))
torch.testing.assert_close(mine, lib, atol=2e-3, rtol=1e-3)
print(f"naive Algorithm 2 == minildm.samplers.ddpm_sample ✓ (max diff {(mine - lib).abs().max():.1e})")

# %% [markdown]
# ## 6 · DDIM: the same model, 20× fewer steps
#
# DDIM (Song et al. 2021) notices that the training objective only fixes the *marginals* $q(x_t\mid x_0)$, so other
# reverse processes share the trained model. Its step from $t$ to any earlier $s$ (Eq. 12; **notation trap**: DDIM
# writes $\alpha_t$ for DDPM's $\bar\alpha_t$):
#
# $$x_{s} = \sqrt{\bar\alpha_{s}}\,\hat x_0 + \sqrt{1-\bar\alpha_{s}-\sigma_t^2}\;\varepsilon_\theta(x_t,t) + \sigma_t z,
# \qquad \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta}{\sqrt{\bar\alpha_t}},$$
#
# with $\sigma_t = \eta\sqrt{(1-\bar\alpha_s)/(1-\bar\alpha_t)}\sqrt{1-\bar\alpha_t/\bar\alpha_s}$. At η = 0 it is
# deterministic: the same $x_T$ always gives the same digit. Written out, with η = 0:

# %%
@torch.no_grad()
def naive_ddim(model, x_T, alpha_bar, timesteps):
    ab = alpha_bar.float()
    x = x_T
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else None
        ab_s = ab[s] if s is not None else torch.tensor(1.0)  # ᾱ before the first step is 1
        eps_pred = model(x, torch.full((x.shape[0],), t))
        x0_pred = (x - (1 - ab[t]).sqrt() * eps_pred) / ab[t].sqrt()
        x = ab_s.sqrt() * x0_pred + (1 - ab_s).sqrt() * eps_pred  # DDIM Eq. 12, σ = 0
    return x


taus = samplers.ddim_timesteps(preset.T, preset.ddim_steps)
print(f"DDIM's {preset.ddim_steps} timesteps: {taus[:4].tolist()} … {taus[-3:].tolist()}")
torch.testing.assert_close(naive_ddim(ema_cpu, x_T, sched.alpha_bar, taus.tolist()),
                           samplers.ddim_sample(ema_cpu, x_T, sched, taus), atol=1e-4, rtol=1e-4)
print("naive DDIM (η=0) == minildm.samplers.ddim_sample ✓")

# %% [markdown]
# ## 7 · Samples, and what they cost
#
# From here on we use the library. The same starting noise for every sampler, the EMA weights, $\hat x_0$ clipped to
# [−1, 1]. We time each sampler: this is the cost of pixel-space diffusion that notebook 04 compares against.

# %%
n = preset.n_samples
ema = ema.to(device)
x_T = torch.randn(n, 1, preset.image_size, preset.image_size, generator=torch.Generator().manual_seed(4)).to(device)
timings, grids = {}, {}
for name, kw in [("DDPM, 1000 steps", dict(sampler="ddpm")), (f"DDIM, {preset.ddim_steps} steps, η=0", dict(sampler="ddim"))]:
    t0 = time.perf_counter()
    if kw["sampler"] == "ddpm":
        x = samplers.ddpm_sample(ema, x_T, sched, generator=torch.Generator().manual_seed(5), clip_x0=preset.clip_x0)
    else:
        x = samplers.ddim_sample(ema, x_T, sched, steps=preset.ddim_steps, clip_x0=preset.clip_x0)
    timings[name] = (time.perf_counter() - t0) / n
    grids[name] = x.cpu()
fig, axes = plt.subplots(1, 2, figsize=(11, 5.6))
for ax, (name, x) in zip(axes, grids.items()):
    viz.show_grid(x, nrow=8, title=f"{name}: {timings[name]:.3f} s/sample", ax=ax)
fig.tight_layout()

# %% [markdown]
# ### Fewer steps, and η
#
# DDIM trades steps for quality gracefully, and η moves it from deterministic (0) to DDPM-like (1).
# Same noise in every panel:

# %%
x_small = x_T[:16]
fig, axes = plt.subplots(2, 4, figsize=(13, 7))
for ax, steps in zip(axes[0], [5, 10, 25, 100]):
    x = samplers.ddim_sample(ema, x_small, sched, steps=steps, clip_x0=preset.clip_x0)
    viz.show_grid(x, nrow=4, title=f"DDIM, {steps} steps, η=0", ax=ax)
for ax, (eta, seed) in zip(axes[1], [(0.0, 0), (0.5, 0), (1.0, 0), (1.0, 1)]):
    x = samplers.ddim_sample(ema, x_small, sched, steps=preset.ddim_steps, eta=eta, clip_x0=preset.clip_x0,
                             generator=torch.Generator().manual_seed(seed))
    viz.show_grid(x, nrow=4, title=f"DDIM, {preset.ddim_steps} steps, η={eta}, seed {seed}", ax=ax)
fig.tight_layout()

# %% [markdown]
# ## 8 · The trajectory $x_T \to x_0$
#
# Every sampler reports each step to a `callback`. We keep $x_t$ and the model's current guess $\hat x_0$ at a few
# steps. The guess is a blurry "average digit" early on and is committed to one digit long before the noise is gone:
# coarse structure is decided at high $t$, detail at low $t$.

# %%
frames_x, frames_x0, labels = [], [], []
keep = set(torch.linspace(0, preset.ddim_steps - 1, 8).round().long().tolist())


def record(step):
    if step["i"] in keep:
        frames_x.append(step["x_t"][:4].cpu())
        frames_x0.append(step["x0_pred"][:4].cpu())
        labels.append(f"t={step['t'] + 1}")


final = samplers.ddim_sample(ema, x_T[:4], sched, steps=preset.ddim_steps, clip_x0=preset.clip_x0, callback=record)
viz.show_strip(frames_x + [final.cpu()], labels + ["x_0"], title="x_t along the DDIM trajectory", size=1.2)
viz.show_strip(frames_x0 + [final.cpu()], labels + ["x_0"], title="the model's guess x̂_0 at each step", size=1.2);

# %% [markdown]
# ## 9 · The cost table
#
# Measured in this run, on this machine. Notebook 04 reads it back and puts latent diffusion beside it.

# %%
cost = {
    "mode": preset.mode, "device": str(device), "params": unet.count_parameters(ema),
    "train_images_per_s": train_ips, "train_minutes": history[-1][4] / 60, "train_steps": len(history),
    "s_per_sample_ddpm1000": timings["DDPM, 1000 steps"],
    f"s_per_sample_ddim{preset.ddim_steps}": timings[f"DDIM, {preset.ddim_steps} steps, η=0"],
}
(config.runs_dir() / "pixel_mnist_cost.json").write_text(json.dumps(cost, indent=1))
print(f"{'':>32} {'pixel DDPM, ' + preset.mode + ' mode':>24}")
for k, v in cost.items():
    print(f"{k:>32} {v:>24,.3f}" if isinstance(v, float) else f"{k:>32} {v:>24}")

# %% [markdown]
# Sampling 1000 steps means 1000 full UNet passes over every pixel. DDIM cuts the number of passes; latent diffusion
# (notebooks 03–04) cuts the cost of each pass, by running the UNet on a 4× smaller grid.
#
# ## Exercises
#
# **1.** The posterior variance $\tilde\beta_t$ (DDPM Eq. 7) at code index `t = 10` for the linear schedule, $T=1000$.

# %%
answer_1 = None  # a float, computed from sched.betas and sched.alpha_bar
check("02.posterior_variance", answer_1)

# %% [markdown]
# **2.** One deterministic DDIM step (η = 0): given `x_t`, `eps_pred`, `ab_t` $=\bar\alpha_t$ and `ab_s` $=\bar\alpha_s$,
# return $x_s$.


# %%
def my_ddim_step(x_t, eps_pred, ab_t, ab_s):
    return None  # your code here


check("02.ddim_step", my_ddim_step if my_ddim_step(torch.zeros(1), torch.zeros(1), torch.tensor(0.5),
                                                    torch.tensor(0.9)) is not None else None)

# %% [markdown]
# **3.** (Open.) Train with `preset.schedule = "cosine"` (and a new checkpoint name). Do 10-step DDIM samples get
# better or worse? Why might they (notebook 01, §3)?
