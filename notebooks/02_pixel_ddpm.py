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
# DDPM starts from a variational bound on $\log p(x_0)$ and, after dropping a weight per step (a choice, derived in §1),
# arrives at plain regression on the noise (DDPM Eq. 14, LDM Eq. 1):
#
# $$L_{DM} = \mathbb E_{x_0,\ \varepsilon\sim\mathcal N(0,I),\ t\sim\mathcal U\{1..T\}}\Big[\big\|\varepsilon - \varepsilon_\theta(x_t, t)\big\|_2^2\Big].$$
#
# **You will:** derive $L_{DM}$ from the bound and check each step numerically; build the loss, the timestep embedding
# and the UNet's blocks (the loss, the embedding, the ResBlock and the Down/Up blocks written out and checked against
# `minildm`; the whole UNet traced shape by shape); train on MNIST with a live loss curve; write the DDPM and DDIM
# samplers as explicit loops (both checked against the library); see why the same $x_T$ gives different digits once
# noise is added on the way down; watch $x_T \to x_0$; and measure what it all costs.
#
# **Two paths** (the first cell below): `FAST = True`, the default in smoke and cpu mode, loads the shipped
# `minildm/weights/pixel_mnist.pt` (this preset, 3,000 steps, trained by `python -m minildm train pixel-mnist --mode
# cpu`) and trains only a short live run of 200 steps on 5,000 digits, so that you see the loss fall and the first
# samples appear, and draws 16 samples per sampler in §7; `FAST = False`, the default in gpu mode, trains the model
# here (3,000 steps in cpu mode) and draws 64. Measured on one thread of a 2-core machine (2 CPU cores, shared with
# other runs), from an empty runs folder: the fast path 4.9 min of CPU time (5.0 min wall), of which the live run
# took 2.4 min and DDPM's 1000-step sampling 1.8 min (the check of §5 and the 16 samples of §7); the full path about 30–55 min more (the
# shipped model's 3,000 steps took 49.5 min of recorded training on shared cores, an earlier run of the same preset
# 28 min, `notebooks/RUNS.md`). On a Colab T4 expect the fast path in a few minutes (not measured).

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
from minildm.checkpoint import load_checkpoint
from minildm.data import mnist
from minildm.exercises import check
from minildm.objective import diffusion_loss

print(config.describe())
print(viz.mode_banner())
FAST = config.get_mode() != "gpu"  # True: shipped models + a short live run; False: train every model here
LIVE_STEPS = config.pick(smoke=20, cpu=200, gpu=200)  # the live run's steps (the fast path's glimpse of training)
print(f"fast path: the shipped pixel model, and a live run of {LIVE_STEPS} steps" if FAST else
      "full path: the pixel model is trained here")
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
# ### Where $L_{DM}$ comes from: a variational bound, then a re-weighting (DDPM §3.2–3.4)
#
# DDPM trains on the usual variational bound of the negative log-likelihood (DDPM Eq. 3, rewritten as Eq. 5):
#
# $$\mathbb E\big[-\log p_\theta(x_0)\big] \le \mathbb E_q\Big[\underbrace{D_{KL}\big(q(x_T\mid x_0)\,\|\,p(x_T)\big)}_{L_T}
# + \sum_{t>1}\underbrace{D_{KL}\big(q(x_{t-1}\mid x_t,x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big)}_{L_{t-1}}
# \ \underbrace{-\ \log p_\theta(x_0\mid x_1)}_{L_0}\Big].$$
#
# $L_T$ has no parameters (notebook 01 measured it: a few hundredths of a nat for this schedule). Each $L_{t-1}$
# compares two Gaussians:
#
# * the forward process's posterior $q(x_{t-1}\mid x_t,x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I)$, with
#   $\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}x_0 + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t$
#   and $\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$ (Eq. 6–7; `schedule.q_posterior`);
# * the model $p_\theta(x_{t-1}\mid x_t) = \mathcal N(\mu_\theta(x_t,t), \sigma_t^2 I)$, with a *fixed* variance (§3.2:
#   $\sigma_t^2 = \beta_t$ or $\tilde\beta_t$; we take $\tilde\beta_t$, as the sampler of §5 does).
#
# For two Gaussians with the same covariance $\sigma^2 I$, the trace and log-determinant terms of the KL cancel:
# $D_{KL}\big(\mathcal N(\mu_1,\sigma^2 I)\,\|\,\mathcal N(\mu_2,\sigma^2 I)\big) = \|\mu_1-\mu_2\|^2/(2\sigma^2)$ (with
# $\sigma_t^2 \ne \tilde\beta_t$ they leave a constant $C$ that has no θ in it). Hence DDPM's Eq. 8:
#
# $$L_{t-1} = \mathbb E_q\Big[\tfrac{1}{2\sigma_t^2}\big\|\tilde\mu_t(x_t,x_0) - \mu_\theta(x_t,t)\big\|^2\Big] + C.$$
#
# **The ε-parameterisation.** Put $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}$ into $\tilde\mu_t$:
# $\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\varepsilon\big)$ (Eq. 10). The model sees only
# $x_t$, so it is given the same form with a prediction of ε (Eq. 11):
# $\mu_\theta(x_t,t) = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\varepsilon_\theta(x_t,t)\big)$. The two
# means differ by $\frac{\beta_t}{\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t}}(\varepsilon_\theta - \varepsilon)$, so (Eq. 12)
#
# $$L_{t-1} - C = \mathbb E_{x_0,\varepsilon}\Big[\underbrace{\frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}}_{\lambda_t}
# \big\|\varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\ t\big)\big\|^2\Big],
# \qquad \lambda_t = \frac{\beta_t}{2\alpha_t(1-\bar\alpha_{t-1})}\ \text{ for } \sigma_t^2 = \tilde\beta_t .$$
#
# **$L_{simple}$ drops $\lambda_t$** (Eq. 14): $\mathbb E_{t,x_0,\varepsilon}\|\varepsilon - \varepsilon_\theta\|^2$ with $t$ uniform, the
# $L_{DM}$ above ($L_0$ becomes its $t = 1$ term, §3.3). This is a **choice, not a consequence of the bound**:
# DDPM found it trains more stably and samples better (§3.4, Table 2), and says what it does, it "down-weights loss
# terms corresponding to small t", so that the network spends its effort on the harder denoising at larger t. The
# price: $L_{simple}$ is no longer a bound on the likelihood. The next cell checks each step on real digits, with a
# stand-in ε_θ that is wrong by a known amount, and draws λ_t.

# %%
tt = torch.tensor([1, 10, 300, 900])  # code indices (the paper's t = 2, 11, 301, 901)
x0_d = x_train[:4].double()
eps_d = torch.randn(x0_d.shape, generator=g, dtype=torch.float64)
eps_theta = eps_d + 0.3 * torch.randn(x0_d.shape, generator=g, dtype=torch.float64)  # a stand-in ε_θ(x_t, t)
x_t_d = schedule.q_sample(x0_d, tt, sched.alpha_bar, eps_d)  # Eq. 4
mu_tilde, var_tilde = schedule.q_posterior(x0_d, x_t_d, tt, sched)  # Eq. 6–7: μ̃_t and β̃_t
beta_t, alpha_t, ab_t = (v[tt].view(-1, 1, 1, 1) for v in (sched.betas, sched.alphas, sched.alpha_bar))  # (B, 1, 1, 1)
# Eq. 10: μ̃_t written with ε instead of x_0
torch.testing.assert_close(mu_tilde, (x_t_d - beta_t / (1 - ab_t).sqrt() * eps_d) / alpha_t.sqrt())
mu_theta = (x_t_d - beta_t / (1 - ab_t).sqrt() * eps_theta) / alpha_t.sqrt()  # Eq. 11
# the KL of two Gaussians of the same variance σ_t² = β̃_t, from torch.distributions, against ‖μ̃ − μ_θ‖²/(2σ_t²)
std = var_tilde.sqrt().expand_as(mu_tilde)
kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu_tilde, std),
                                       torch.distributions.Normal(mu_theta, std)).flatten(1).sum(1)  # (B,) nats
kl_means = ((mu_tilde - mu_theta) ** 2).flatten(1).sum(1) / (2 * var_tilde.flatten())  # Eq. 8 without C
torch.testing.assert_close(kl, kl_means)
# Eq. 12: the same number as a weighted ε-regression
lam = (beta_t ** 2 / (2 * var_tilde * alpha_t * (1 - ab_t))).flatten()  # λ_t, (B,)
sq = ((eps_d - eps_theta) ** 2).flatten(1).sum(1)  # ‖ε − ε_θ‖², (B,)
torch.testing.assert_close(kl, lam * sq)
print("Eq. 10 (μ̃ in ε), the same-variance KL == ‖μ̃ − μ_θ‖²/(2σ²) (Eq. 8), == λ_t ‖ε − ε_θ‖² (Eq. 12) ✓")
for t_i, k, l_i, q in zip(tt.tolist(), kl.tolist(), lam.tolist(), sq.tolist()):
    print(f"  t = {t_i + 1:>3}: KL {k:8.3f} nats = λ_t {l_i:.4f} × ‖ε − ε_θ‖² {q:7.1f}")

# λ_t over all t (code index 0 is L_0, the decoder term: β̃ = 0 there, so it is left out)
betas, alphas, ab, ab_prev = sched.betas, sched.alphas, sched.alpha_bar, sched.alpha_bar_prev
lam_tilde = (betas / (2 * alphas * (1 - ab_prev)))[1:]  # σ_t² = β̃_t
lam_beta = (betas / (2 * alphas * (1 - ab)))[1:]  # σ_t² = β_t, DDPM's other choice
t_axis = torch.arange(2, preset.T + 1)  # the paper's t
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
axes[0].plot(t_axis, lam_tilde, label="σ_t² = β̃_t")
axes[0].plot(t_axis, lam_beta, "--", label="σ_t² = β_t")
axes[0].set(yscale="log", xlabel="t", ylabel="λ_t", title="the bound's weight on ‖ε − ε_θ‖² (Eq. 12)")
axes[0].legend()
share = lam_tilde / lam_tilde.sum()  # the share of the bound's total weight that sits on each t
axes[1].plot(t_axis, share.cumsum(0), label="the bound (λ_t, σ_t² = β̃_t)")
axes[1].plot(t_axis, torch.arange(1, preset.T) / (preset.T - 1), "--", label="L_simple (every t alike)")
axes[1].set(xlabel="t", ylabel="share of the weight on steps ≤ t", title="where each loss puts its weight")
axes[1].legend()
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()
k = int(0.1 * preset.T)
print(f"λ_t (σ_t² = β̃_t): {lam_tilde[0]:.3f} at t = 2, {lam_tilde[8]:.4f} at t = 10, {lam_tilde[498]:.4f} at t = 500, "
      f"{lam_tilde[-1]:.4f} at t = {preset.T}: {lam_tilde[0] / lam_tilde[-1]:.0f}× more on t = 2 than on t = {preset.T}")
print(f"the first {k} steps carry {share[:k - 1].sum():.0%} of the bound's weight; L_simple gives them {(k - 1) / (preset.T - 1):.0%}")

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
#   SiLU → conv, added to a skip path. Its last conv starts at zero, so a new block is just its skip path: the
#   identity when the channels stay the same, a 1×1 conv when they change (16 → 32 below).
# * **Down/Up**: a stride-2 conv halves the resolution; nearest-neighbour ×2 + conv doubles it back.
# * **Skip connections**: the decoder concatenates the encoder's activations at each resolution, so detail never has
#   to squeeze through the bottleneck.
# * **Self-attention** at the lowest resolution only (cost grows with (H·W)²): every position sees every other.
# * **Zero-initialised output**: an untrained model predicts ε = 0, i.e. the loss starts at E‖ε‖² = 1.

# %% [markdown]
# Each block written out with plain `torch.nn.functional` calls and the module's own weights, checked against
# `minildm.layers` (for the ResBlock, once as built and once with its last conv given random weights, so that both
# branches count):

# %%
def naive_resblock(b, x, emb):
    gn = lambda norm, v: F.group_norm(v, norm.num_groups, norm.weight, norm.bias, norm.eps)  # noqa: E731
    h = F.conv2d(F.silu(gn(b.norm1, x)), b.conv1.weight, b.conv1.bias, padding=1)  # (B, out, H, W)
    h = h + F.linear(F.silu(emb), b.emb_proj.weight, b.emb_proj.bias)[:, :, None, None]  # + W·emb, per channel
    h = F.conv2d(F.silu(gn(b.norm2, h)), b.conv2.weight, b.conv2.bias, padding=1)  # (B, out, H, W)
    skip = x if isinstance(b.skip, torch.nn.Identity) else F.conv2d(x, b.skip.weight, b.skip.bias)
    return skip + h


gb = torch.Generator().manual_seed(0)
block = layers.ResBlock(16, 32, emb_dim=64).eval()
x_in, emb_in = torch.randn(2, 16, 32, 32, generator=gb), torch.randn(2, 64, generator=gb)
with torch.no_grad():
    h = block(x_in, emb_in)
    torch.testing.assert_close(h, block.skip(x_in))  # as built: conv2 = 0, so the block is its 1×1 skip conv
    torch.nn.init.normal_(block.conv2.weight, std=0.05, generator=gb)
    h = block(x_in, emb_in)
    torch.testing.assert_close(naive_resblock(block, x_in, emb_in), h, atol=1e-5, rtol=1e-4)
    down, up = layers.Downsample(32), layers.Upsample(32)
    torch.testing.assert_close(down(h), F.conv2d(h, down.conv.weight, down.conv.bias, stride=2, padding=1))
    nearest = h.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # (B, C, 2H, 2W): each pixel copied 2×2
    torch.testing.assert_close(up(h), F.conv2d(nearest, up.conv.weight, up.conv.bias, padding=1))
print("ResBlock(16→32):", tuple(h.shape), " Downsample:", tuple(down(h).shape), " Upsample:", tuple(up(h).shape))
print("a new ResBlock == its skip conv; naive ResBlock, Downsample, Upsample == minildm.layers ✓")

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
# The whole UNet is these blocks, the skip concatenations and one self-attention layer (taken apart in notebook
# 05); here it is traced shape by shape rather than re-implemented. The UNet halves the image `len(channel_mult) - 1` times, so sizes must divide by that power of two. MNIST is 28×28;
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

# %% [markdown]
# **The model.** On the fast path it is the shipped `pixel_mnist.pt`: this preset trained by
# `python -m minildm train pixel-mnist --mode cpu` (a missing file trains instead, and says how long). The cell plots
# its loss history if the file keeps one, and prints what the export recorded. On the full path it trains here, into `runs/<mode>/pixel_mnist.pt`
# (re-running the cell after an interruption resumes it; a finished run just loads), with its loss drawn live and the
# same 16 noises sampled every 1,000 steps.

# %%
ckpt = config.runs_dir() / "pixel_mnist.pt"
fixed_noise = torch.randn(16, 1, preset.image_size, preset.image_size, generator=torch.Generator().manual_seed(1))
snapshots = []  # (step, samples) every sample_every steps: the same noise, sampled with DDIM


def snapshot(event):
    if event["event"] == "sample":
        x = samplers.ddim_sample(event["ema"], fixed_noise.to(device), sched, steps=preset.ddim_steps,
                                 clip_x0=preset.clip_x0)
        snapshots.append((event["step"], x.cpu()))


if FAST:
    pixel_model, ckpt, was_shipped = recipes.shipped_or_train("pixel-mnist", fast=True, callback=viz.LiveLoss())
    ema, sched = pixel_model.unet, pixel_model.sched  # the EMA weights of ε_θ, and the schedule they were trained with
    payload = load_checkpoint(ckpt)
    history = payload.get("history") or (payload.get("release") or {}).get("history")
    origin = f"the shipped weights ({ckpt.name})" if was_shipped else f"trained here ({ckpt})"
    if history:
        print(f"{origin}: {history[-1][0]:,} steps in {history[-1][4] / 60:.1f} min of recorded training")
        if was_shipped:  # (had it been trained here instead, LiveLoss would have drawn this curve already)
            viz.plot_loss(history, title=f"L_DM of the shipped model's training ({preset.mode} mode)")
    else:
        print(f"{origin}, {payload.get('step')} steps; the file keeps no loss history (its record: "
              "minildm/weights/README.md)")
    for key, value in (payload.get("release") or {}).items():  # what the export recorded (command, time, …)
        print(f"  {key}: {value}")
else:
    result, sched = recipes.train_preset(preset, x_train, ckpt_path=ckpt,
                                         callback=viz.chain(viz.LiveLoss(), snapshot))
    ema, history = result.ema, result.history
    train_ips = preset.train.batch_size * len(history) / history[-1][4]
    print(f"{len(history)} steps in {history[-1][4] / 60:.1f} min of training ({train_ips:.0f} images/s); "
          f"checkpoint: {ckpt}")

# %% [markdown]
# **A live run.** So that training is seen and not only loaded: the same preset from scratch for a few hundred steps
# on 5,000 digits (`recipes.live_run`, into `runs/<mode>/live/`), its loss drawn as it falls. Then the 16 fixed noises
# sampled by the live model and by the full model (DDIM, EMA weights). It is a glimpse, not a model to measure. On the
# full path the snapshots of the real run are shown instead. In the committed run the loss fell from 0.87 (the mean
# of the first 20 steps) to 0.031 (the last 20) in 2.3 min; the live model's samples are broken strokes, some on a
# grey background, the full model's are digits.

# %%
if FAST:
    live_model, live_history = recipes.live_run("pixel-mnist", LIVE_STEPS, None, n=5000,
                                                callback=viz.LiveLoss(f"L_DM, a live run of {LIVE_STEPS} steps"), progress=False)
    train_ips = preset.train.batch_size * len(live_history) / live_history[-1][4]  # measured here, this preset
    print(f"live run: {live_history[-1][0]} steps in {live_history[-1][4] / 60:.1f} min ({train_ips:.0f} images/s), "
          f"loss {sum(h[1] for h in live_history[:20]) / 20:.3f} over its first 20 steps, "
          f"{sum(h[1] for h in live_history[-20:]) / 20:.3f} over its last 20")
    nets = {f"live run, step {live_history[-1][0]}": live_model.unet,
            f"full model, step {history[-1][0]:,}" if history else "full model": ema}
    snapshots = [(label, samplers.ddim_sample(net, fixed_noise.to(device), sched, steps=preset.ddim_steps,
                                              clip_x0=preset.clip_x0).cpu()) for label, net in nets.items()]
else:
    snapshots = [(f"step {step}", x) for step, x in snapshots]
if snapshots:
    fig, axes = plt.subplots(1, len(snapshots), figsize=(3 * len(snapshots), 3.4), squeeze=False)
    for ax, (label, x) in zip(axes[0], snapshots):
        viz.show_grid(x, nrow=4, title=label, ax=ax)
    fig.suptitle("the same 16 noises, sampled (DDIM, EMA weights)")
    fig.tight_layout()

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
# with $\sigma_t = \eta\sqrt{(1-\bar\alpha_s)/(1-\bar\alpha_t)}\sqrt{1-\bar\alpha_t/\bar\alpha_s}$ (Eq. 16). At η = 0 it is
# deterministic: the same $x_T$ always gives the same digit. Its 50 timesteps use DDIM's "leading" (uniform)
# spacing, τ_i = i · T/50 = 20 i for i = 0 … 49, walked downwards: they start at **980, not 999**, and end at 0. The
# first step therefore asks ε_θ about a slightly less noisy $x_t$ than the training's last one; on this schedule ᾱ is
# tiny at both (printed below), so it does not matter here. Notebook 07 §2 compares it with "trailing" spacing, which
# starts at 999. Written out, with η = 0:

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
print(f"DDIM's {preset.ddim_steps} timesteps: {taus[:4].tolist()} … {taus[-3:].tolist()}, every "
      f"{preset.T // preset.ddim_steps}; ᾱ at t = {taus[0]}: {sched.alpha_bar[taus[0]]:.1e}, at t = {preset.T - 1}: "
      f"{sched.alpha_bar[-1]:.1e}")
torch.testing.assert_close(naive_ddim(ema_cpu, x_T, sched.alpha_bar, taus.tolist()),
                           samplers.ddim_sample(ema_cpu, x_T, sched, taus), atol=1e-4, rtol=1e-4)
print("naive DDIM (η=0) == minildm.samplers.ddim_sample ✓")

# %% [markdown]
# ## 7 · Samples, and what they cost
#
# From here on we use the library, with the EMA weights and $\hat x_0$ clipped to [−1, 1]. Both samplers start from
# the same noises $x_T$ (16 on the fast path, 64 on the full path); the digits still differ between the two grids,
# because DDPM adds fresh noise at each step (explained after the next figure). We time each sampler: this is the
# cost of pixel-space diffusion that notebook 04 compares against.

# %%
n = min(preset.n_samples, 16) if FAST else preset.n_samples  # DDPM-1000: 1000 UNet passes, seconds per sample on CPU
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
fig, axes = plt.subplots(1, 2, figsize=(11, 0.65 * math.ceil(n / 8) + 0.6))  # two grids of 8 per row
for ax, (name, x) in zip(axes, grids.items()):
    viz.show_grid(x, nrow=8, title=f"{name}: {timings[name]:.3f} s/sample", ax=ax)
fig.tight_layout()

# %% [markdown]
# Compare the two grids (16 samples each, in the committed run). DDPM's 1000 steps give clean black backgrounds and
# mostly legible digits. DDIM's 50 deterministic steps are 20× cheaper (4.0 against 0.20 s per sample here, at batch
# 16 on a shared core), but several of its samples keep a grey speckle in the background (most visibly the 4th and 5th
# of the top row and the 7th of the bottom row), and more of its strokes are broken or odd. The figure below shows
# that the speckle does not go away with more steps and is gone at η = 0.5 and 1. Deterministic DDIM is the weaker
# sampler for this small, briefly trained ε_θ, the opposite of what DDIM's Table 1 finds for its models: notebook 04
# §7 measures the gap with FD on the latent model, and notebook 07 §3 diagnoses where it comes from.
#
# ### Fewer steps, and η
#
# The first 16 of those noises $x_T$ in every panel. Top row: DDIM (η = 0) with 5 to 100 steps. Bottom row: 50 steps
# with η = 0, 0.5 and 1, the η = 1 panel twice, with two seeds of the generator that draws the noise added on the way
# down. Under the figure, how far apart two draws from the same $x_T$ land.

# %%
x_small = x_T[:16]
fig, axes = plt.subplots(2, 4, figsize=(13, 7))
for ax, steps in zip(axes[0], [5, 10, 25, 100]):
    x = samplers.ddim_sample(ema, x_small, sched, steps=steps, clip_x0=preset.clip_x0)
    viz.show_grid(x.cpu(), nrow=4, title=f"DDIM, {steps} steps, η=0", ax=ax)
draws = {(eta, seed): samplers.ddim_sample(ema, x_small, sched, steps=preset.ddim_steps, eta=eta,
                                          clip_x0=preset.clip_x0, generator=torch.Generator().manual_seed(seed)).cpu()
         for eta in (0.0, 0.5, 1.0) for seed in (0, 1)}
for ax, (eta, seed) in zip(axes[1], [(0.0, 0), (0.5, 0), (1.0, 0), (1.0, 1)]):
    viz.show_grid(draws[eta, seed], nrow=4, title=f"DDIM, {preset.ddim_steps} steps, η={eta}, noise seed {seed}", ax=ax)
fig.tight_layout()
plt.show()
unrelated = (draws[1.0, 0] - draws[1.0, 0].roll(1, dims=0)).abs().mean().item()  # samples from different x_T
for eta in (0.0, 0.5, 1.0):
    diff = (draws[eta, 0] - draws[eta, 1]).abs().mean().item()
    print(f"η = {eta}: the same x_T, noise seeds 0 and 1: mean |x_0 − x_0'| = {diff:.3f} per pixel")
print(f"(two samples from different x_T, η = 1: {unrelated:.3f} per pixel)")

# %% [markdown]
# **What the figure shows.** Top row: 25 and 100 steps give the same digits and 10 steps nearly so; 5 steps gives
# bolder strokes, and two digits (the top-right one and the last of the 2nd row) change between 5, 10 and 25 steps.
# The speckle of η = 0 stays at every step count up to 100. Bottom row: η = 0.5 and η = 1 draw clean backgrounds but *other digits* from the same $x_T$, and η = 1 with
# noise seed 1 draws others again. The numbers under it: from the same $x_T$, η = 0 gives exactly the same image under
# both seeds (0.000 per pixel), η = 0.5 differs by 0.246 and η = 1 by 0.265, as much as two samples from *different*
# $x_T$ (0.251): at η = 1 this model keeps no visible trace of $x_T$. And η = 0.5 and η = 1 with the same seed share
# several digits (the 1st, 3rd and 4th of the top row): those samples follow the noise drawn on the way down more
# than they follow $x_T$.
#
# **Why the same $x_T$ gives different digits when η > 0, and with DDPM.** Every step with $\sigma_t > 0$ adds
# $\sigma_t z$ with a *fresh* $z\sim\mathcal N(0,I)$ (Eq. 12; DDPM's Algorithm 2 is the case η = 1 over all T steps).
# The sample is then a function $x_0 = F(x_T, z_1, \dots, z_N)$ of $x_T$ *and* of every noise drawn on the way,
# and that noise is not a small perturbation: at η = 1 each step's $\sigma_t^2$ is the full variance of the
# posterior $q(x_s\mid x_t, x_0)$ (over all T steps, $\tilde\beta_t \approx \beta_t$: about as much noise as the forward
# process added at that step), so each step partly re-draws its $x_s$ instead of following $x_T$. The largest draws
# come at high t, where the digit's identity is being decided (§8), so another generator seed can send the same
# $x_T$ to another digit. At η = 0 no noise is drawn after $x_T$: the map $x_T \mapsto x_0$ is deterministic, a
# discretisation of the *probability-flow ODE* (DDIM §4.3, Eq. 14; notebook 07 §1 derives it), and an ODE can be run
# backwards, so $x_T$ works as a code for its image (DDIM §5.3–5.4 interpolates and reconstructs through it).
#
# ### A slider over steps and η
# Move the sliders (in a live notebook; widgets are not saved in the file, so the figure above stands in: its top row
# is the steps slider at η = 0, its bottom row the η slider at 50 steps). The eight digits start from the same $x_T$
# every time; change the noise seed at η = 0 and at η = 1 to see which of them listens to it.

# %%
import ipywidgets as widgets


def show_ddim(steps: int = 50, eta: float = 0.0, seed: int = 0) -> None:
    x = samplers.ddim_sample(ema, x_T[:8], sched, steps=steps, eta=eta, clip_x0=preset.clip_x0,
                             generator=torch.Generator().manual_seed(seed))
    viz.show_grid(x.cpu(), nrow=8, title=f"DDIM, {steps} steps, η = {eta:g}, noise seed {seed}", figsize=8)
    plt.show()


widgets.interact(show_ddim, steps=widgets.IntSlider(50, 2, 200, 1),
                 eta=widgets.FloatSlider(0.0, min=0.0, max=1.0, step=0.1), seed=widgets.IntSlider(0, 0, 9));

# %% [markdown]
# ## 8 · The trajectory $x_T \to x_0$
#
# Every sampler reports each step to a `callback`. We keep $x_t$ and the model's current guess $\hat x_0$ at 8 of the 50
# DDIM steps (η = 0), for 4 digits. (Each strip is one image at twice the native 32 px: noise compresses badly.)
# In the committed run: at t = 981 the guess $\hat x_0$ is sparse salt-and-pepper, white specks on black (ε_θ's
# guess from almost pure noise, clipped to [−1, 1]). By t = 841 it is a grey blob in the centre; at t = 701–561 a
# blurry outline that already has the final digit's shape in most rows; at t = 421 the digit is legible, while
# $x_t$ itself shows it only from about t = 281. Coarse structure is decided at high $t$, detail at low $t$.

# %%
frames_x, frames_x0, labels = [], [], []
keep = set(torch.linspace(0, preset.ddim_steps - 1, 8).round().long().tolist())


def record(step):
    if step["i"] in keep:
        frames_x.append(step["x_t"][:4].cpu())
        frames_x0.append(step["x0_pred"][:4].cpu())
        labels.append(f"t={step['t'] + 1}")


final = samplers.ddim_sample(ema, x_T[:4], sched, steps=preset.ddim_steps, clip_x0=preset.clip_x0, callback=record)
fig, axes = plt.subplots(2, 1, figsize=(6.4, 6.0))
for ax, frames, title in zip(axes, (frames_x, frames_x0), ("x_t along the DDIM trajectory",
                                                          "the model's guess x̂_0 at each step")):
    cols = frames + [final.cpu()]
    viz.show_grid(torch.stack(cols, 1).flatten(0, 1), nrow=len(cols), ax=ax)  # row = digit, column = step
    ax.set_axis_on()
    ax.set_yticks([])
    ax.set_xticks([1 + 33 * j + 16 for j in range(len(cols))], labels + ["x_0"], fontsize=8)  # 32 px + 1 px pad
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10)
fig.tight_layout()

# %% [markdown]
# ## 9 · The cost table
#
# Measured in this run, on this machine: the sampling times, and the training throughput (on the fast path, of the
# live run: the same preset and batch). The training minutes and steps are those of the run that trained the model
# (on the fast path the shipped model's, from its file: NaN where the file keeps no history). Notebook 04 reads the
# file back, from the same runs folder, and puts latent diffusion beside it.

# %%
cost = {
    "mode": preset.mode, "device": str(device), "params": unet.count_parameters(ema),
    "train_images_per_s": train_ips, "train_minutes": history[-1][4] / 60 if history else float("nan"),
    "train_steps": len(history) if history else payload.get("step"),
    "s_per_sample_ddpm1000": timings["DDPM, 1000 steps"],
    f"s_per_sample_ddim{preset.ddim_steps}": timings[f"DDIM, {preset.ddim_steps} steps, η=0"],
}
(config.runs_dir() / "pixel_mnist_cost.json").write_text(json.dumps(cost, indent=1))
print(f"{'':>32} {'pixel DDPM, ' + preset.mode + ' mode':>24}")
for k, v in cost.items():
    print(f"{k:>32} {v:>24,.3f}" if isinstance(v, float) else f"{k:>32} {v:>24}")

# %% [markdown]
# Sampling 1000 steps means 1000 full UNet passes over every pixel. DDIM cuts the number of passes; latent diffusion
# (notebooks 03–04) cuts the cost of each pass, by running the UNet on a grid 4× smaller per side at f = 4
# (8 × 8 instead of 32 × 32): 16× fewer positions.
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
# **3.** (Conceptual.) Which samplers can you rely on to give back *the same image* from the same $x_T$, whatever
# noise generator you hand them? It matters whenever $x_T$ is used as a code for an image: editing, interpolating
# between two samples, or comparing two models on "the same" noise. Among `"ddpm"` (Algorithm 2), `"ddim_eta0"` (DDIM,
# η = 0) and `"ddim_eta1"` (DDIM, η = 1), answer with the set of those that do, e.g. a Python set of strings (it may
# hold one, several or none). The check runs each sampler twice from one $x_T$ with two generators.

# %%
answer_3 = None  # a set of sampler names, from "ddpm", "ddim_eta0", "ddim_eta1"
check("02.same_digit", answer_3)

# %% [markdown]
# **4.** (Open.) Train with `preset.schedule = "cosine"` (and a new checkpoint name). Do 10-step DDIM samples get
# better or worse? Why might they (notebook 01, §3)?
