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
# # 08 · Conditioning by concatenation: super-resolution, inpainting and semantic maps, on digits and faces
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/minildm/minildm/blob/main/notebooks/08_concat_conditioning.ipynb)
#
# **Papers:** LDM §3.3 (the two conditioning mechanisms), §4.4 and Table 5 (super-resolution, the regression
# baseline), §4.5 (inpainting); Saharia et al. 2021 (SR3, where Table 5's regression row comes from); Blau &
# Michaeli 2018 (the perception–distortion trade-off); Lugmayr et al. 2022 (RePaint, whose "replace" step is the
# baseline here).
#
# Notebooks 05 and 06 gave ε_θ a condition through **cross-attention** on τ_θ(y): a class, a caption, a set of
# attributes, none of which has a place in the image. Some conditions *are* images: a low-resolution digit to be
# sharpened, a digit with its right half missing, a map of parts. They are aligned pixel for pixel with what is
# to be drawn, and LDM feeds them the simplest way there is: it stacks them onto z_t along the channels (§3.3,
# "for spatially aligned conditioning information … concatenation"):
#
# $$L_{LDM} = \mathbb E_{\mathcal E(x),\,c,\,\varepsilon,\,t}\Big[\big\|\varepsilon - \varepsilon_\theta([z_t, c], t)\big\|_2^2\Big],
# \qquad c \in \mathbb R^{C_c\times h\times w}\ \text{on}\ z_t\text{'s grid}.$$
#
# | symbol | code | here |
# |---|---|---|
# | $[z_t, c]$ | `concat.ConcatUNet`: `torch.cat([z_t, c], 1)` before the UNet's first conv | (B, 4 + C_c, 8, 8) |
# | LR | `pairs.low_resolution(x)`: the 4 × 4 average pool | (B, 1, 8, 8): already the latent grid |
# | m, m↓ | `pairs.random_masks`, `concat.resize_mask` (1 = to be generated) | (B, 1, 32, 32) → (B, 1, 8, 8) |
# | c of inpainting | `pairs.inpaint_condition`: [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), m↓] (LDM's); the shipped model's adds the known pixels P before m↓ | (B, 4 + 1, 8, 8); (B, 4 + 16 + 1, 8, 8) |
# | ∅ | `concat.null_condition`: the fully masked input | zeros, m↓ = 1 |
# | c of semantic synthesis | `semantic.semantic_condition`: the one-hot part map, area-resized | (B, 8, 16, 16) |
#
# **You will:** see where each route puts its condition and what it costs in weights; build ×4 super-resolution
# pairs by hand and check them against `minildm.pairs`; train an SR model and the regression baseline of LDM
# Table 5 (the same network trained with L1) and measure both against bicubic for distortion (PSNR, SSIM), for
# perception (FD) and for what the judge reads, with intervals; build the inpainting condition by hand and see
# why the latent is zeroed under the mask; train an inpainting model and compare it with the "replace" baseline on
# the shipped unconditional model; draw digits from nothing with the fully masked condition; and draw toy faces
# from maps of their parts, judged by a segmenter that reads each pixel's part, then edit the maps (move the mouth,
# add glasses) with the noise held fixed; then take super-resolution and inpainting to the faces (16 × 16 → 64 × 64,
# and a masked region filled as the attributes ask: glasses put on, or taken off), judged by the face judge.
#
# **Two paths** (the first cell below): `FAST = True`, the default in smoke and cpu mode, loads the shipped models
# of `minildm/weights/` (each trained by the command its README records) and trains only a short live run, so that
# you see the loss fall and the first samples appear; `FAST = False`, the default in gpu mode, trains every model
# here. Measured on 2 CPU cores, from an empty runs folder: the fast path 8.2 min of CPU time (the same wall, on one
# thread, the machine otherwise idle; on two threads 5.3 min wall for 10.2 min of CPU), nearly all of it measuring (500 digits per method, 300 part maps, 200 faces for SR and 100 for inpainting); the full path about
# 4 hours more (seven models' training, `notebooks/RUNS.md`; the face inpainting preset's 9,000 steps, since
# 2026-12-04, add about 40 min to that). On a Colab T4 expect the fast path in a few minutes
# (not measured yet).

# %%
# Colab only: install minildm from GitHub (a no-op anywhere else), and nothing more: Colab ships every dependency,
# and upgrading its own IPython, ipykernel or ipywidgets would ask for a runtime restart.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "minildm @ git+https://github.com/minildm/minildm"], check=True)

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from minildm import concat, config, evaluate, pairs, presets, recipes, release, viz
from minildm.checkpoint import load_checkpoint
from minildm.exercises import check
from minildm.restoration import inpaint, paste_inpaint, upscale
from minildm.shipped import shipped
from minildm.uncertainty import bootstrap_mean

print(config.describe())
print(viz.mode_banner())
device = config.get_device()
ev = evaluate.Evaluator(device=device)  # the judge: an MNIST classifier no training loss of the course touched

FAST = config.get_mode() != "gpu"  # True: the shipped models + a short live run; False: train every model here
LIVE_STEPS = config.pick(smoke=20, cpu=400, gpu=400)  # the live run's steps (the fast path's glimpse of training)
SEED = 0
N_EVAL = config.pick(smoke=16, cpu=500, gpu=1000)  # test digits restored per method (as many others: FD's reference)
N_BOOT = config.pick(smoke=50, cpu=200, gpu=200)  # bootstrap resamples per interval
STEPS = config.pick(smoke=10, cpu=50, gpu=50)  # sampling steps of every diffusion row
SAMPLERS = ("ddpm", "ddim")  # ancestral (the course's default) and DDIM η = 0, as scripts/measure_restoration.py
N_SHOW = 8  # test digits in each figure
# MNIST test digits (no model here trained on them), a seeded permutation: x the digits to restore (N_EVAL, 1, 32, 32),
# their labels, and x_ref other test digits, disjoint: the reference of every FD
x, labels, x_ref = evaluate.real_test_sets(N_EVAL, seed=SEED)
print(f"n = {N_EVAL} test digits per method (bootstrap {N_BOOT}), {STEPS} sampling steps, samplers {SAMPLERS}; "
      f"{'fast path: the shipped models' if FAST else 'full path: every model trained here'}")
if config.get_mode() == "smoke":
    print("smoke mode: tiny models trained for a few steps; no number or picture below says anything about quality")

# %% [markdown]
# ## 1 · Two routes for a condition
#
# Cross-attention (notebook 05) lets every pixel of the UNet's feature maps *look up* the condition's tokens: the
# condition may be anywhere or nowhere in the image, and any number of tokens long. Concatenation gives pixel (i, j)
# of z_t the condition's pixel (i, j) and nothing else, at the input: it is the right tool exactly when the two
# grids are the same grid.
#
# | route | where c enters | c | suits | LDM uses it for |
# |---|---|---|---|---|
# | cross-attention on τ_θ(y) | every transformer block, as keys and values | M tokens (B, M, d) | global, token-wise conditions: a class, a prompt, attributes, boxes as tokens | text-to-image, class-conditional ImageNet, layouts (§4.3) |
# | concatenation [z_t, c] | the first conv only, as extra input channels | an image (B, C_c, h, w) on z_t's grid | spatially aligned conditions: a low-resolution image, a masked image and its mask, a semantic map | super-resolution (§4.4), inpainting (§4.5), semantic synthesis (§4.3.2) |
#
# A concatenation model is an ordinary UNet whose first conv is wider: `in_channels = 4 + C_c`, and its last still
# returns the 4 channels of ε. For ×4 super-resolution c is the 8 × 8 low-resolution digit (C_c = 1); for
# inpainting it is the masked digit's 4-channel latent and the mask (C_c = 5, LDM's condition), and in the shipped
# model the known pixels as well (16 more channels, §3). `recipes.build_unet` builds both from
# their presets (untrained here: only the shapes matter):

# %%
sr_preset, inp_preset = presets.latent_mnist_sr(), presets.latent_mnist_inpaint()
nets = {p.name: recipes.build_unet(p, device="cpu") for p in (presets.latent_mnist(), sr_preset, inp_preset)}
nets["latent_mnist_class (cross-attention)"] = recipes.build_unet(presets.latent_mnist_class(), device="cpu")
n_params = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
for name, net in nets.items():
    unet = getattr(net, "unet", net)  # a ConcatUNet / ConditionalUNet wraps a UNet
    print(f"{name:>38}: conv_in {tuple(unet.conv_in.weight.shape)} (out, in, 3, 3), conv_out "
          f"{tuple(unet.conv_out.weight.shape)}, {n_params(net):,} parameters")

# %% [markdown]
# The concatenation models differ from the unconditional `latent_mnist` only in `conv_in`'s input channels: 9·C_c
# more weights per output channel (one 3 × 3 filter per extra input channel). The cross-attention model adds τ_θ
# and a transformer block at each attended level. A concatenation model's forward pass, written out, is one
# `torch.cat` before the UNet, and it must agree with `ConcatUNet`:

# %%
inp_net = nets[inp_preset.name].eval()
g = torch.Generator().manual_seed(SEED)
z_t = torch.randn(2, 4, 8, 8, generator=g)  # (B, C_z, h, w): a noisy latent
c = torch.randn(2, inp_net.condition_channels, 8, 8, generator=g)  # (B, C_c, h, w): a condition on the same grid
t = torch.tensor([10, 900])
with torch.no_grad():
    mine = inp_net.unet(torch.cat([z_t, c], 1), t)  # [z_t, c]: (B, 4 + C_c, 8, 8) → ε (B, 4, 8, 8)
    torch.testing.assert_close(mine, inp_net(z_t, t, y=c))
print(f"[z_t, c] {tuple(torch.cat([z_t, c], 1).shape)} → ε {tuple(mine.shape)}: by hand == ConcatUNet ✓")

# %% [markdown]
# ## 2 · Super-resolution ×4: 8 × 8 → 32 × 32 (LDM §4.4)
#
# The low-resolution image is the 4 × 4 **average pool** of the digit: each LR pixel is the mean of a 4 × 4 block.
# The f = 4 autoencoder of notebook 03 turns a 32 × 32 digit into an 8 × 8 latent, so the LR image is already on the
# latent grid and is concatenated as it is (LDM's SR models do the same with their f = 4 first stage). Written out,
# the pool is a reshape that puts each block on its own two axes, then a mean over them:

# %%
B, C, H, W = x[:N_SHOW].shape
k = pairs.SR_FACTOR  # 4
blocks = x[:N_SHOW].reshape(B, C, H // k, k, W // k, k)  # (B, C, 8, 4, 8, 4): block (i, j) is [:, :, i, :, j, :]
lr_mine = blocks.mean(dim=(3, 5))  # (B, C, 8, 8)
torch.testing.assert_close(lr_mine, pairs.low_resolution(x[:N_SHOW]))
print(f"HR {tuple(x[:N_SHOW].shape)} → LR {tuple(lr_mine.shape)}: by hand == pairs.low_resolution ✓")

# %% [markdown]
# **Consistency.** An SR output should pool back to its input: $\lVert\mathrm{avgpool}_4(\mathrm{SR}) -
# \mathrm{LR}\rVert$, here the mean absolute difference per image in the images' [−1, 1] units. It is 0 for an SR
# that keeps the LR exactly, whatever it draws inside each block, so it measures faithfulness to the input and
# nothing about sharpness. Bicubic interpolation, the classic baseline (`pairs.bicubic`), does *not* keep the block
# means exactly:

# %%
lr8 = pairs.low_resolution(x[:N_SHOW])  # (8, 1, 8, 8)
bic8 = pairs.bicubic(lr8)  # (8, 1, 32, 32), clamped to [−1, 1]
cons_mine = (bic8.reshape(B, C, 8, k, 8, k).mean(dim=(3, 5)) - lr8).abs().flatten(1).mean(1)  # (B,)
torch.testing.assert_close(cons_mine, pairs.consistency(bic8, lr8))
print(f"consistency of bicubic, by hand == pairs.consistency ✓: {cons_mine.mean():.4f} on average ([−1, 1] units)")

# %% [markdown]
# **Training.** `recipes.train("latent-mnist-sr")` is `python -m minildm train latent-mnist-sr`: the frozen f = 4
# autoencoder, MNIST's training digits encoded once (z_0), the LR image of each as its c, and L_LDM with
# ε_θ([z_t, LR], t). LDM's SR model has no condition dropout (the LR image all but fixes the output); this one
# drops the LR image for 10% of the training pairs, replacing it by ∅ = a plane of −2, a value no LR image in
# [−1, 1] can take (`presets.SR_NULL`, `concat.null_condition`), so that classifier-free guidance can push towards
# the digit the LR image implies (measured below). A finished run in `runs/<mode>/` just loads.
# `recipes.shipped_or_train` takes the shipped model on the fast path (and trains if it is missing), and this
# function on the full path; `show_training` plots a run's loss (a shipped file keeps no history: its record is
# `minildm/weights/README.md`).

# %%
def show_training(model, path, was_shipped, title):
    """Say where a model came from; plot its loss if it was trained here."""
    if was_shipped:
        steps = load_checkpoint(path)["step"]
        print(f"{model.name}: the shipped weights ({path.name}, {steps:,} steps; its command, time and figures are "
              f"in minildm/weights/README.md)")
        return
    history = load_checkpoint(path)["history"]  # rows (step, loss, lr, grad_norm, seconds)
    print(f"{model.name}: {history[-1][0]:,} steps in {history[-1][4] / 60:.1f} min of training (from {path.name})")
    viz.plot_loss(history, title=title)


sr_model, sr_ckpt, sr_shipped = recipes.shipped_or_train("latent-mnist-sr", fast=FAST,
                                                         callback=viz.LiveLoss("L_LDM, ×4 super-resolution"))
show_training(sr_model, sr_ckpt, sr_shipped, "L_LDM, ×4 super-resolution")
print(f"ε_θ on {sr_model.sample_shape} latents, c (1, 8, 8)")

# %% [markdown]
# **A live run.** On the fast path the model above was trained elsewhere; here the same preset trains from scratch
# for 400 steps on 5,000 digits (`recipes.live_run`, into `runs/<mode>/live/`), so that the loss is seen falling
# and the first samples appear. It is not measured: the shipped model had 30 times the steps. After 400 steps
# (43 s in this run) the middle row already holds digits that follow their LR inputs, ragged and with broken strokes.

# %%
live_sr, live_history = recipes.live_run("latent-mnist-sr", LIVE_STEPS, sr_model.first_stage,
                                         callback=viz.LiveLoss("L_LDM, ×4 SR, live run"), progress=False)
print(f"live run: {len(live_history)} steps in {live_history[-1][4]:.0f} s, loss {live_history[0][1]:.3f} → "
      f"{live_history[-1][1]:.3f}")
with torch.no_grad():
    lr_live = pairs.low_resolution(x[:16])
    early = upscale(live_sr, (lr_live + 1) / 2, seed=SEED, steps=STEPS, sampler="ddpm") * 2 - 1
viz.show_grid(torch.cat([F.interpolate(lr_live, scale_factor=4), early, x[:16]]), nrow=16,
              title=f"LR, the live run's SR after {LIVE_STEPS} steps, HR", figsize=8);

# %% [markdown]
# **The regression baseline** (LDM Table 5, "regression"; shipped as `latent_mnist_sr_regression`, trained here on
# the full path): the SR model's very network, same widths and the same
# input channels, fed z_t = 0 at t = 0 and read as ẑ_0 rather than ε, trained with L1 between 𝒟(ẑ_0 / s) and the
# HR digit through the frozen decoder, with the SR preset's optimiser (`restoration.Regression`,
# `recipes.train_sr_regression`). In cpu mode it trains 2,000 steps, not the SR model's 36,000: each of its steps
# back-propagates through the decoder at 32 × 32 and costs about 8 of the SR model's, so an equal number of steps
# would have taken hours. The baseline is weaker than an equal budget would make it; its loss curve shows how
# flat it was at the end. One input, one output: it can only predict the *average* of the HR digits that
# fit an LR image (the median, under L1), which is what distortion measures reward.

# %%
from minildm.restoration import load_regression  # noqa: E402
from minildm.shipped import shipped_names  # noqa: E402

if FAST and "latent_mnist_sr_regression" in shipped_names():
    reg_path = shipped("latent_mnist_sr_regression")
    reg = load_regression(reg_path).to(device)
else:
    reg = recipes.train_sr_regression(ae=sr_model.first_stage).to(device)
    reg_path = config.runs_dir() / f"{sr_preset.name}_regression.pt"
reg_seconds = load_checkpoint(reg_path, kind="regression")["seconds"]
print(f"regression ({reg_path.name}): {len(reg.history)} steps in {reg_seconds / 60:.1f} min of training, "
      f"{n_params(reg.net):,} parameters (the SR model: {n_params(sr_model.unet):,})")
viz.plot_loss([(i + 1, loss) for i, loss in enumerate(reg.history)], title="L1 regression baseline");

# %% [markdown]
# Eight test digits, one row per method. The LR image is shown nearest-upsampled (each of its 64 pixels as a 4 × 4
# block): that is all any method is given.

# %%
def show_rows(rows, labels, title=None, size=0.75):
    """One row of images per method, labelled on the left: rows[j] is a batch (B, 1, H, W) in [−1, 1]."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(size * len(rows[0]) + 1.6, size * len(rows)), squeeze=False)
    for ax, r, name in zip(axes[:, 0], rows, labels):
        ax.imshow(viz.to_numpy_grid(r, nrow=len(r)), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([]); ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


with torch.no_grad():
    sr8 = upscale(sr_model, (lr8 + 1) / 2, seed=SEED, steps=STEPS, sampler="ddpm") * 2 - 1  # [0, 1] in and out
    reg8 = reg.predict(lr8.to(device)).cpu()
show_rows([F.interpolate(lr8, scale_factor=k), bic8, reg8, sr8, x[:N_SHOW]],
          ["LR (nearest)", "bicubic", "regression (L1)", f"diffusion (ddpm {STEPS})", "HR (truth)"],
          title="×4 super-resolution of test digits");

# %% [markdown]
# **Measured** on n test digits, every number with its 95% bootstrap interval over the images
# (`Evaluator.reconstruction_report`): PSNR and SSIM against the HR digit (distortion), the judge's accuracy against
# the true label, and FD / floor: the Fréchet distance of the outputs to n *other* real test digits, divided by
# that of the HR digits themselves (1 = as close to real digits as real digits are; this is perception, which
# PSNR cannot see). Consistency as above. Diversity: the mean |SR_seed0 − SR_seed1| between two draws for the same
# LR image, exactly 0 for the two deterministic baselines. `scripts/measure_restoration.py` runs the same
# measurement at n = 1000; its table is in `benchmarks/RESULTS.md`.

# %%
lr = pairs.low_resolution(x)  # (N, 1, 8, 8)
sr_out, sr_seconds = {}, {}
t0 = time.perf_counter()
sr_out["bicubic"] = [pairs.bicubic(lr)] * 2  # deterministic: both "draws" are the same image
sr_seconds["bicubic"] = time.perf_counter() - t0
t0 = time.perf_counter()
with torch.no_grad():
    sr_out["regression (L1)"] = [reg.predict(lr.to(device)).cpu()] * 2
sr_seconds["regression (L1)"] = time.perf_counter() - t0
for sampler in SAMPLERS:
    t0 = time.perf_counter()
    sr_out[f"diffusion, {sampler}"] = [upscale(sr_model, (lr + 1) / 2, seed=s, steps=STEPS, sampler=sampler) * 2 - 1
                                       for s in (0, 1)]  # two draws per LR image: seeds 0 and 1
    sr_seconds[f"diffusion, {sampler}"] = (time.perf_counter() - t0) / 2
SR_S = sr_model.guidance  # the recommended scale stored with the model (chosen on other test digits, RESULTS.md)
if SR_S != 1:
    t0 = time.perf_counter()
    sr_out[f"diffusion, ddpm, s = {SR_S:g}"] = [upscale(sr_model, (lr + 1) / 2, seed=s, steps=STEPS, sampler="ddpm",
                                                        guidance=SR_S) * 2 - 1 for s in (0, 1)]
    sr_seconds[f"diffusion, ddpm, s = {SR_S:g}"] = (time.perf_counter() - t0) / 2
print(f"{len(sr_out)} methods × {N_EVAL} digits; diffusion: {N_EVAL} × 2 draws × {STEPS} steps per sampler")

# %%
sr_rows = {}
for name, (a, b) in sr_out.items():
    r = ev.reconstruction_report(a, x, labels, x_ref, n_boot=N_BOOT)
    r["consistency"] = bootstrap_mean(pairs.consistency(a, lr).numpy(), n_boot=N_BOOT)
    r["diversity"] = bootstrap_mean((a - b).abs().flatten(1).mean(1).numpy(), n_boot=N_BOOT)
    sr_rows[name] = r
print(f"{'method':>24} {'PSNR dB':>20} {'SSIM':>20} {'judge accuracy':>22} {'FD / floor':>20} "
      f"{'consistency':>22} {'diversity':>22} {'s':>5}")
for name, r in sr_rows.items():
    print(f"{name:>24} {r['psnr']:>20.2f} {r['ssim']:>20.3f} {r['accuracy']:>22.1%} {r['fd_ratio']:>20.2f} "
          f"{r['consistency']:>22.4f} {r['diversity']:>22.4f} {sr_seconds[name]:>5.1f}")
assert sr_rows["bicubic"]["diversity"].value == sr_rows["regression (L1)"]["diversity"].value == 0.0

# %% [markdown]
# **The perception–distortion point of LDM Table 5.** An estimate that minimises a distortion (L2, L1) predicts the
# mean (or median) of the plausible HR digits for an LR input: it is made to win PSNR, and it is a blur of digits.
# A sampler of p(x | LR) draws one plausible digit: it should be further from the truth pixel for pixel and closer
# to real digits as a set (Blau & Michaeli 2018: beyond a bound, no method can have both). LDM's Table 5 shows it
# on ImageNet 64 → 256: the image-regression row has the best PSNR and SSIM of the table and a far worse FID than
# LDM-4. Which method wins each column here, and whether the intervals separate the winner from the runner-up:

# %%
def winner(rows, key, best=max):
    """The method with the best point estimate of ``key``, the runner-up, and whether their intervals overlap."""
    order = sorted(rows, key=lambda k: rows[k][key].value, reverse=best is max)
    a, b = rows[order[0]][key], rows[order[1]][key]
    return order[0], order[1], a.low <= b.high and b.low <= a.high


for key, best, what in (("psnr", max, "highest PSNR (least distortion)"), ("ssim", max, "highest SSIM"),
                        ("fd_ratio", min, "lowest FD / floor (closest to real digits)"),
                        ("accuracy", max, "highest judge accuracy")):
    first, second, overlap = winner(sr_rows, key, best)
    print(f"{what:>44}: {first} (runner-up {second}; intervals {'overlap' if overlap else 'apart'})")
diff_best = max((k for k in sr_rows if k.startswith("diffusion")), key=lambda k: sr_rows[k]["accuracy"].value)
print(f"target (docs/DESIGN.md): ×4 SR read correctly ≥ 97%: {diff_best} {sr_rows[diff_best]['accuracy']:.1%}")

# %% [markdown]
# **What the run shows.** **The perception–distortion point of LDM Table 5 does not appear here.** The L1
# regression wins PSNR (23.7 vs 21.0–21.9 dB) and SSIM, as it must. It also has the lowest FD / floor (1.10 against
# 1.21 for unguided and 1.22 for guided ancestral diffusion, intervals overlapping) and is level with the guided
# model on the judge (96.4% against 96.2%, intervals overlapping). An 8 × 8 average pool of a digit leaves little to invent, so the regression's median digit is
# already sharp enough that the judge's features do not tell it from real digits. ImageNet at 64 → 256, where LDM
# measured, is another matter. What only the diffusion model does here is draw *different* plausible digits for one
# LR image: two seeds are 0.039 apart on average (0.028 guided), while both baselines are deterministic. Every
# sampler keeps the LR image three to four times better than bicubic does (consistency 0.013–0.016 vs 0.050).
#
# **Guidance.** This model was trained with a ∅, so it can be guided; s = 3 was chosen on other test digits at
# n = 1000 (96.3, 96.2 and 96.5% at s = 1, 2, 3, FD no worse), and here it raises the judge's reading from 95.8% to
# 96.2% [94.2, 97.8] and PSNR by 0.3 dB, and costs 28% of the diversity. Against issue 16's targets: FD ≤ 1.5× the
# floor is met (1.22×), consistency below bicubic's is met, and the judge's ≥ 97% is missed, narrowly: 96.2% here,
# **96.9% [95.9, 97.9]** at n = 1000 on a disjoint set of test digits (`benchmarks/RESULTS.md`), 0.1 points short.
# What was tried: a run 1.7× longer (95.5% → 95.6% at n = 1000), 250 sampling steps instead of 50 (no change),
# guidance (+0.4 to +0.8 points, inside the intervals), and the shipped run, 3× as long again (36,000 steps: the
# 12,000-step model's 96.3% [95.0, 97.5] became 96.9%). How much can any SR model read? Classifiers of the 8 × 8
# digit itself (the judge's architecture, trained 6 epochs, calibrated, two seeds averaged) read 97.6% of the same
# n = 1000 digits, and an *exact* sampler of p(x | LR) would be read right ≥ 96.1% of the time
# (`scripts/restoration_ceilings.py --epochs 6 --seeds 3 4`). So the LR image does carry 97%: the model now sits
# above the faithful-sampler estimate and 0.7 points below the likeliest-digit one, and the target asks for the
# latter.

# %% [markdown]
# ## 3 · Inpainting (LDM §4.5)
#
# The condition is a digit with a region missing, and the mask m that says where (1 = to be generated, LDM's
# convention). The training masks (`pairs.random_masks`) are boxes, brush strokes, halves (LDM trains on large
# masks too; without them no training mask hid a whole half, and the half-masked test of this section was outside
# the training distribution: the first run's 77%), and a share that hides the whole digit. Each is drawn again from
# its seed, so a run's pairs can be made again rather than stored:

# %%
masks = {"boxes": pairs.random_masks(N_SHOW, 32, seed=1, p_full=0.0, p_half=0.0, p_box=1.0),
         "strokes": pairs.random_masks(N_SHOW, 32, seed=2, p_full=0.0, p_half=0.0, p_box=0.0),
         "halves": pairs.random_masks(N_SHOW, 32, seed=4, p_full=0.0, p_half=1.0),
         "full": torch.ones(N_SHOW, 1, 32, 32)}
rows, names = [], []
for kind, m in masks.items():
    rows += [m * 2 - 1, pairs.masked_image(x[:N_SHOW], m)]  # the mask (white = to be generated), x ⊙ (1 − m)
    names += [f"m: {kind}", "x ⊙ (1 − m)"]
show_rows(rows, names, title="masks and masked digits (masked pixels are 0: mid-grey)")
train_masks = pairs.random_masks(2000, 32, seed=0)  # the training mixture's defaults
share = train_masks.flatten(1).mean(1)
print(f"in 2000 training masks: {(share == 1).float().mean():.1%} fully masked, {(share == 0.5).float().mean():.1%} "
      f"exactly half (a half mask, or by chance a box), {train_masks.mean():.1%} of the pixels masked on average; "
      f"each training digit gets {recipes.INPAINT_MASKS_PER_IMAGE} of them (seeds 0–"
      f"{recipes.INPAINT_MASKS_PER_IMAGE - 1})")

# %% [markdown]
# **The condition** is built on the latent grid: $c = [s\cdot\mathcal E(x\odot(1-m))\odot(1-m_\downarrow),\
# m_\downarrow]$. The masked digit is encoded by the frozen first stage (the same f = 4 autoencoder the SR model
# uses), and the mask is resized to 8 × 8 by a **max** over each 4 × 4 block: a latent cell is to be generated if
# *any* of its pixels is, so no unknown pixel hides under a "known" cell. Written out and checked against
# `pairs.inpaint_condition`:

# %%
ae = sr_model.first_stage  # notebook 03's f = 4 autoencoder, frozen, its scale factor s inside encode_latents
ae_device = ae.scale_factor.device
m8 = pairs.random_masks(N_SHOW, 32, seed=3, p_full=0.0)  # (8, 1, 32, 32): boxes and strokes
with torch.no_grad():
    xm8 = pairs.masked_image(x[:N_SHOW], m8)  # x ⊙ (1 − m): (8, 1, 32, 32)
    z_masked = ae.encode_latents(xm8.to(ae_device)).cpu()  # s·ℰ(x ⊙ (1 − m)): (8, 4, 8, 8)
m_down = m8.reshape(N_SHOW, 1, 8, k, 8, k).amax(dim=(3, 5))  # (8, 1, 8, 8): the max over each 4 × 4 block
c_ldm = torch.cat([z_masked * (1 - m_down), m_down], 1)  # (8, 4 + 1, 8, 8): LDM's condition
assert torch.equal(m_down, concat.resize_mask(m8, 8))
torch.testing.assert_close(c_ldm, pairs.inpaint_condition(ae, x[:N_SHOW], m8))
print(f"c {tuple(c_ldm.shape)}: by hand == pairs.inpaint_condition ✓ (m↓ by hand == concat.resize_mask ✓)")
# the shipped model's c also carries the known pixels: each 4 × 4 block of x ⊙ (1 − m) as 16 channels of its cell
pixels = xm8.reshape(N_SHOW, 1, 8, k, 8, k).permute(0, 1, 3, 5, 2, 4).reshape(N_SHOW, k * k, 8, 8)
c_mine = torch.cat([c_ldm[:, :4], pixels, m_down], 1)  # (8, 4 + 16 + 1, 8, 8), m↓ still last
torch.testing.assert_close(c_mine, pairs.inpaint_condition(ae, x[:N_SHOW], m8, known_pixels=True))
print(f"with the known pixels, c {tuple(c_mine.shape)}: by hand == pairs.inpaint_condition(…, known_pixels=True) ✓")

# %% [markdown]
# **The known pixels too.** LDM's c gives ε_θ the known region only through ℰ, and ℰ was trained on whole digits,
# not on digits with a grey half: its latent of the masked digit keeps the left half well enough for a classifier
# (94.4% read right against 95.2% of the masked pixels themselves, `scripts/inpaint_errors.py`), yet the model's
# wrong fills were confident digits that the known strokes rule out. So the shipped model also gets the pixels: each
# 4 × 4 block of x ⊙ (1 − m) stacked into 16 channels of its latent cell (a space-to-depth, `F.pixel_unshuffle`),
# 21 channels in all. At 12,000 training steps this alone raised the half-masked digits read right from 83.5% to
# 86.4% (test seed 0, s = 2), as much as twice the training had; a UNet 1.5× as wide, more half masks in training,
# RePaint's resampling and 1.5× more steps each moved it by less than a point (`benchmarks/RESULTS.md`). It also
# keeps the known pixels that share a cell with masked ones, which m↓'s max rule drops from the latent (below).
#
# **Why zero the latent under m↓.** ℰ never sees "nothing": under the mask it sees a grey box, and its latent there
# describes that box, which is not zero. Zeroing it (i) leaves no trace of the box's edges for ε_θ to copy and (ii)
# makes the fully masked condition the same constant whatever ℰ is: zeros and m↓ = 1, which is exactly the null
# condition ∅ (`concat.null_condition`). So ∅ costs nothing to learn separately: the 10% fully masked training
# pairs *are* the unconditional model, and a model that inpaints can also draw a digit from nothing (the end of §3),
# or be guided.

# %%
with torch.no_grad():
    z_grey = ae.encode_latents(torch.zeros(1, 1, 32, 32, device=ae_device)).cpu()  # ℰ of an all-grey image
print(f"s·ℰ(grey image): mean |z| = {z_grey.abs().mean():.3f} per entry (the latents of digits have std ≈ 1): "
      "not zero")
c_full = pairs.inpaint_condition(ae, x[:N_SHOW], masks["full"])
assert torch.equal(c_full, concat.null_condition("inpaint", 5, 8, N_SHOW))
c_full = pairs.inpaint_condition(ae, x[:N_SHOW], masks["full"], known_pixels=True)  # no pixels known: all 0
assert torch.equal(c_full, concat.null_condition("inpaint", 21, 8, N_SHOW))
print("the fully masked condition == concat.null_condition('inpaint', …) exactly ✓, for any digit, with or without "
      "the known pixels")

# %% [markdown]
# The max rule has a price: a known pixel that shares its 4 × 4 block with a masked one is dropped from c (its cell
# is zeroed), and only the pasting at the end (below) puts it back. For a right-half mask the boundary falls on the
# grid and nothing is lost; for the masks above:

# %%
lost = ((1 - m8) * F.interpolate(m_down, scale_factor=k)).flatten(1).sum(1) / (1 - m8).flatten(1).sum(1)
print(f"share of the known pixels whose latent cell is zeroed, per mask: {[round(v, 2) for v in lost.tolist()]}")

# %% [markdown]
# **Training.** `recipes.train("latent-mnist-inpaint")`: c for every training digit under four random masks
# (`recipes.concat_pairs`: the masked digits encoded once more, four times; the first run gave each digit one mask
# for the whole run), then L_LDM with ε_θ([z_t, c], t).

# %%
inp_model, inp_ckpt, inp_shipped = recipes.shipped_or_train("latent-mnist-inpaint", fast=FAST,
                                                            callback=viz.LiveLoss("L_LDM, inpainting"))
show_training(inp_model, inp_ckpt, inp_shipped, "L_LDM, inpainting")
print(f"c ({inp_model.unet.condition_channels}, 8, 8); the same first stage as the SR model's:",
      all(torch.equal(a, b) for a, b in zip(ae.state_dict().values(), inp_model.first_stage.state_dict().values())))

# %% [markdown]
# **The baseline without an inpainting model.** Any unconditional latent model can fill a hole: sample as usual
# and, before every step, overwrite the known latent cells of z_t with a fresh draw of q(z_t | z_0 = s·ℰ(x)), so
# that the unknown cells are denoised next to a correctly noised copy of the known ones (the "replace" method;
# RePaint adds resampling to it). `restoration.paste_inpaint` does this with DDIM (η = 0) on the shipped
# `latent_mnist`, which never saw a mask. Its weakness: the known half only reaches the unknown one through what
# ε_θ makes of the noisy z_t, step by step; the inpainting model is handed the known half, clean, at every step.
#
# The test: the **right half** of each digit masked. Rows: the masked input, the baseline, the inpainting model,
# both with the known half pasted back (`pairs.paste_known`), and the truth.

# %%
uncond = release.load_diffusion(shipped("latent_mnist"), map_location=device)  # notebook 04's model, shipped
m_half = pairs.half_mask(N_EVAL, 32, "right")  # (N, 1, 32, 32): 1 on the right half
with torch.no_grad():
    base8 = pairs.paste_known(paste_inpaint(uncond, x[:N_SHOW], m_half[:N_SHOW], steps=STEPS, seed=SEED).cpu(),
                              x[:N_SHOW], m_half[:N_SHOW])
    fill8 = inpaint(inp_model, (x[:N_SHOW] + 1) / 2, m_half[:N_SHOW], seed=SEED, steps=STEPS, sampler="ddpm") * 2 - 1
show_rows([pairs.masked_image(x[:N_SHOW], m_half[:N_SHOW]), base8, fill8, x[:N_SHOW]],
          ["input (right half masked)", f"replace baseline ({uncond.name})", f"inpainting model (ddpm {STEPS})",
           "truth"], title="inpainting the right half of test digits");

# %% [markdown]
# The right half is not determined by the left: one input, several seeds.

# %%
N_SEEDS = 8
one = x[:1].expand(N_SEEDS, -1, -1, -1)  # the first test digit, N_SEEDS times
with torch.no_grad():
    draws = torch.cat([inpaint(inp_model, (one[:1] + 1) / 2, m_half[:1], seed=s, steps=STEPS, sampler="ddpm") * 2 - 1
                       for s in range(N_SEEDS)])  # (N_SEEDS, 1, 32, 32)
show_rows([pairs.masked_image(one, m_half[:N_SEEDS]), draws], ["input", "seeds 0–7"],
          title=f"one input, {N_SEEDS} seeds (label {labels[0].item()}; the judge reads "
                f"{ev.logits(draws).argmax(1).tolist()})");

# %% [markdown]
# **Measured** on the same n test digits, right half masked. Judge accuracy against the true labels for the
# masked input itself (what the left half alone tells the judge), the baseline and the inpainting model, both
# pasted; PSNR and FD / floor as in §2. The error outside the mask is measured on the *unpasted* outputs (mean
# |y − x| over the known pixels, in [0, 1] units as the command line's images): how well each redraws what it was
# given, through the decoder. After pasting it is exactly 0, and the cell asserts it. Diversity: the mean
# |y_seed0 − y_seed1| inside the mask.

# %%
inp_raw, inp_seconds = {}, {}
t0 = time.perf_counter()
with torch.no_grad():
    inp_raw[f"replace baseline, ddim {STEPS}"] = [paste_inpaint(uncond, x, m_half, steps=STEPS, seed=s).cpu()
                                                 for s in (0, 1)]  # (N, 1, 32, 32) in [−1, 1], unpasted
inp_seconds[f"replace baseline, ddim {STEPS}"] = (time.perf_counter() - t0) / 2
for sampler in SAMPLERS:
    t0 = time.perf_counter()
    inp_raw[f"inpainting model, {sampler} {STEPS}"] = [
        inpaint(inp_model, (x + 1) / 2, m_half, seed=s, steps=STEPS, sampler=sampler, paste=False) * 2 - 1
        for s in (0, 1)]
    inp_seconds[f"inpainting model, {sampler} {STEPS}"] = (time.perf_counter() - t0) / 2
INP_S = inp_model.guidance  # the recommended scale (against ∅ = fully masked; chosen on other test digits)
if INP_S != 1:
    t0 = time.perf_counter()
    inp_raw[f"inpainting model, ddpm {STEPS}, s = {INP_S:g}"] = [
        inpaint(inp_model, (x + 1) / 2, m_half, seed=s, steps=STEPS, sampler="ddpm", paste=False,
                guidance=INP_S) * 2 - 1 for s in (0, 1)]
    inp_seconds[f"inpainting model, ddpm {STEPS}, s = {INP_S:g}"] = (time.perf_counter() - t0) / 2
print(f"{len(inp_raw)} methods × {N_EVAL} digits × 2 draws × {STEPS} steps")

# %%
def inside(a, b, m):
    """Mean |a − b| over the masked pixels of each image (B,)."""
    return ((a - b).abs() * m).flatten(1).sum(1) / m.flatten(1).sum(1)


masked_in = pairs.masked_image(x, m_half)
inp_rows = {"masked input": dict(**ev.reconstruction_report(masked_in, x, labels, x_ref, n_boot=N_BOOT),
                                 outside=None, diversity=None)}
for name, (a, b) in inp_raw.items():
    pasted = pairs.paste_known(a, x, m_half)
    assert torch.equal(pairs.error_outside_mask((pasted + 1) / 2, (x + 1) / 2, m_half), torch.zeros(N_EVAL))
    inp_rows[name] = dict(**ev.reconstruction_report(pasted, x, labels, x_ref, n_boot=N_BOOT),
                          outside=bootstrap_mean(pairs.error_outside_mask((a + 1) / 2, (x + 1) / 2, m_half).numpy(),
                                                 n_boot=N_BOOT),
                          diversity=bootstrap_mean(inside(a, b, m_half).numpy(), n_boot=N_BOOT))
print("pasted: error outside the mask exactly 0 for every image and method ✓")
fmt = lambda e, spec: "—" if e is None else format(e, spec)  # noqa: E731
print(f"{'method':>32} {'judge accuracy':>22} {'PSNR dB':>20} {'FD / floor':>20} {'outside, unpasted':>22} "
      f"{'diversity inside':>22} {'s':>5}")
for name, r in inp_rows.items():
    print(f"{name:>32} {r['accuracy']:>22.1%} {r['psnr']:>20.2f} {r['fd_ratio']:>20.2f} "
          f"{fmt(r['outside'], '>22.4f'):>22} {fmt(r['diversity'], '>22.4f'):>22} {inp_seconds.get(name, 0):>5.1f}")
best = max((k for k in inp_rows if k.startswith("inpainting")), key=lambda k: inp_rows[k]["accuracy"].value)
first, second, overlap = winner(inp_rows, "accuracy")
print(f"highest judge accuracy: {first} (runner-up {second}; intervals {'overlap' if overlap else 'apart'})")
print(f"target (docs/DESIGN.md): half-masked inpainting read correctly ≥ 90%: {best} "
      f"{inp_rows[best]['accuracy']:.1%}")

# %% [markdown]
# **What the run shows.** The inpainting model (with the known pixels in c, 48,000 steps) reads right 87.8%
# [84.6, 90.4] of the time unguided and **89.8% [87.0, 92.0]** at its recommended s = 2 (chosen on other test
# digits; **90.4% [88.8, 92.1]** at n = 1000 on a disjoint set), against 57.8% for the masked input and 59.4% for
# the replace-known baseline. The
# baseline is no better than the half it was given: its right halves are drawn by a model that never sees the left
# one (only the known latent cells are reset at every step), so its right halves often finish another digit. Issue
# 16's target of 90% is met, at the edge: by 0.4 points at n = 1000, with the interval reaching below it, and this
# run's 89.8% at n = 500 sits 0.2 under it. The left half is not the limit: calibrated classifiers trained on left halves alone read 96.6% of these
# digits right, and an *exact* sampler of p(x | left half) would be read right ≥ 94.2% of the time
# (`scripts/restoration_ceilings.py --epochs 6 --seeds 3 4`). The wrong fills of the model before this one (LDM's
# condition alone) were mostly confident digits that the known half rules out (a 4 finished as a 9, a 6 closed
# into a 0: `scripts/inpaint_errors.py`), which is why the known pixels were added. What was tried, at n = 1000
# (`benchmarks/RESULTS.md`): the first model (one fixed mask per digit, no half masks, 6,500 steps) read 77.1%;
# four masks per digit with 20% halves and 12,000 steps, 83.2% guided; 24,000 steps, 86.6% guided; then, each by
# less than a point, 250 sampling steps instead of 50, RePaint's resampling (each step taken 3 or 10 times), half
# masks 2.5× as often in training, 36,000 steps, and a UNet 1.5× as wide; the known pixels, +1.9 points at the same
# 24,000 steps (88.5%); and the shipped run, twice as long (48,000 steps), +1.9 again (90.4%). FD / floor is 1.53×
# here (1.64× at n = 1000; the 24,000-step model 2.01×, the first 4.75×). The error outside the mask without pasting
# is 0.011 in [0, 1] units at s = 2 (0.018 before the known pixels), so that target (≤ 0.05) is met, and with pasting
# it is exactly 0 (the assert above). Two seeds give fills 0.13–0.18 apart inside the mask, and the eight seeds for
# one input above are eight different right halves.
#
# ### Drawing from nothing
#
# The fully masked condition is ∅, and 10% of the training pairs had it: the inpainting model is also an
# unconditional model. Sampled from ∅ alone, does it draw every digit, as often as MNIST has them? The judge reads
# each sample; the shipped unconditional `latent_mnist` is sampled the same way for comparison, and both are
# compared with n test digits by FD (with the real-vs-real floor).

# %%
with torch.no_grad():
    free = inp_model.sample(N_EVAL, y=inp_model.unet.null_condition(N_EVAL), sampler="ddpm", steps=STEPS, seed=SEED)
    free_u = uncond.sample(N_EVAL, sampler="ddpm", steps=STEPS, seed=SEED)  # (N, 1, 32, 32)
viz.show_grid(free[:32], nrow=16, title="the inpainting model, from the fully masked condition ∅", figsize=8)
print(f"{'':>34} " + " ".join(f"{d:>5}" for d in range(10)) + f" {'FD to test digits':>18}")
for name, imgs in ((f"{inp_model.name} from ∅", free), (f"{uncond.name} (unconditional)", free_u),
                   ("test digits (their labels)", None)):
    cls = labels if imgs is None else ev.logits(imgs).argmax(1)
    share = torch.bincount(cls, minlength=10).float() / len(cls)
    fd = ev.fid(x if imgs is None else imgs, x_ref)
    print(f"{name:>34} " + " ".join(f"{s:>5.1%}" for s in share.tolist()) + f" {fd:>18.3g}")
print("(the test digits' FD is the real-vs-real floor at this n)")

# %% [markdown]
# **What the run shows.** From ∅ the inpainting model draws every digit, each 7.6–13.6% of the samples, so it has
# not collapsed onto a few classes (the 0s are the rarest, 7.6% against 10.2% of the test digits, the 3s the
# commonest, 13.6% against 8.6%). Its FD to test digits is 10.7, against 7.98 for the unconditional `latent_mnist`
# and a floor of 4.3 (the 24,000-step model: 12.3; LDM's condition alone: 11.7; the 12,000-step one: 14.9; the first
# run: 20.5). A tenth of the training pairs spent on empty conditions makes a usable but weaker unconditional model,
# and it is the ∅ that the guided rows of §3 extrapolate from: s = 2 adds 2.0 points here.

# %% [markdown]
# ## 4 · Semantic maps: faces drawn from a map of their parts (LDM §4.3.2)
#
# LDM's third use of concatenation draws a landscape from a segmentation map. A map needs a ground truth, and the
# toy faces of notebook 06 have one: the renderer paints each face stroke by stroke, so it can paint the same
# strokes with part indices instead of colours (`toyfaces.render_face(…, parts=True)`). Each face comes with its
# map of 8 parts, and the mouth and the glasses move from face to face (`offsets`), so maps differ in more than
# which parts are present. The condition is the one-hot map, area-resized to the 16 × 16 latent grid of notebook
# 06's face autoencoder: c (B, 8, 16, 16), each cell holding the share of its 4 × 4 pixels that each part covers.
# What the map does not say (skin, hair colour, lipstick, the background's colour) the model draws as it likes.
#
# | part | code | here |
# |---|---|---|
# | the map | `semantic.semantic_faces(n, seed)`: faces (n, 3, 64, 64) and maps (n, 64, 64) | indices into `toyfaces.PARTS` |
# | c | `semantic.semantic_condition(parts)`: one-hot, area-resized | (n, 8, 16, 16) |
# | ε_θ | `presets.latent_faces_semantic()`: a UNet on [z_t, c] | in_channels 3 + 8 |
# | ∅ | the all-zero map (never a real one: a real cell sums to 1) | p_uncond = 0.1 |
# | the judge | `semantic.PartSegmenter` (`recipes.part_segmenter`), trained on renders only | reads each pixel's part |

# %%
from minildm import semantic  # noqa: E402
from minildm.celeba import CELEBA_ATTRIBUTES  # noqa: E402
from minildm.toyfaces import PARTS  # noqa: E402

N_SEM = config.pick(smoke=16, cpu=300 if FAST else 500, gpu=1000)  # test maps judged (fewer on the fast path)
faces = semantic.semantic_faces(N_SHOW, seed=recipes.SEMANTIC_TEST_SEED)  # maps no model here trained on
show_rows([semantic.colour_map(faces.parts), faces.images], ["part map", "render"],
          title="toy faces and their part maps: " + ", ".join(PARTS), size=1.0)
# the condition by hand: the share of each 4 × 4 block of pixels that each part covers
hot = torch.stack([(faces.parts == k).float() for k in range(len(PARTS))], 1)  # (8, P, 64, 64)
c_mine = hot.reshape(N_SHOW, len(PARTS), 16, 4, 16, 4).mean(dim=(3, 5))  # (8, P, 16, 16)
torch.testing.assert_close(c_mine, semantic.semantic_condition(faces.parts))
print(f"c {tuple(c_mine.shape)}: by hand == semantic.semantic_condition ✓; every cell sums to 1: "
      f"{bool(torch.allclose(c_mine.sum(1), torch.ones(N_SHOW, 16, 16)))}")

# %% [markdown]
# **Training.** `recipes.train("latent-faces-semantic")`: faces with their maps (seed 0), z = s·ℰ(x) by notebook
# 06's frozen face autoencoder (taken from the shipped `latent_faces_toy`), then L_LDM with ε_θ([z_t, c], t) and the
# map dropped to ∅ for a tenth of the pairs.

# %%
sem_model, sem_ckpt, sem_shipped = recipes.shipped_or_train("latent-faces-semantic", fast=FAST,
                                                            callback=viz.LiveLoss("L_LDM, semantic maps"))
show_training(sem_model, sem_ckpt, sem_shipped, "L_LDM, semantic maps")
SEM_GUIDANCE = 1.0  # the measurement below; the shipped file's default is 2 (chosen on seed 2, RESULTS.md)

# %% [markdown]
# **The judge** reads the part of every pixel. It is a small convolutional net trained with cross-entropy on
# renders and their maps (4,000 faces of their own seed, blurred and noised a little, since decoded samples are
# softer than renders), and no loss of the diffusion model touched it. A part is **drawn in its region** when the
# judge's pixels of that part and the map's overlap with IoU ≥ 0.5. Three rows calibrate the measure: the renders
# themselves (the judge's own ceiling), their reconstructions 𝒟(ℰ(x)) (what the frozen autoencoder keeps: the
# ceiling of any latent model), and the drawn faces judged against *another* face's map (what the average face
# scores for free).

# %%
seg = recipes.load_segmenter(shipped("part_segmenter")) if FAST else recipes.part_segmenter()
sem_test = semantic.semantic_faces(N_SEM, seed=recipes.SEMANTIC_TEST_SEED)
t0 = time.perf_counter()
sem = semantic.measure(sem_model, seg, sem_test, steps=STEPS, seed=SEED, guidance=SEM_GUIDANCE)
print(f"{N_SEM} test maps × 2 draws, DDIM {STEPS} steps, guidance {SEM_GUIDANCE:g}, {time.perf_counter() - t0:.0f} s; "
      "shares of faces with the part drawn in its region (precision and recall ≥ 0.5 within 1 px), 95% intervals")
print(semantic.table(sem))
print("spurious (drawn where the map has none): "
      + ", ".join(f"{k} {v:.1%}" for k, v in sem["spurious"].items())
      + f"; diversity between two draws of one map: {sem['diversity']:.3f} (mean |a − b|, [0, 1] units)")
worst = min(semantic.LOCALISED, key=lambda p: sem["rows"]["drawn"][p].value)
print(f"target (docs/DESIGN.md): each requested part in its region in ≥ 90% of faces: lowest is {worst} "
      f"{sem['rows']['drawn'][worst]:.1%}")

# %%
show_rows([semantic.colour_map(sem_test.parts[:N_SHOW]), sem["drawn"][:N_SHOW], sem["second"][:N_SHOW],
           sem_test.images[:N_SHOW]], ["map", f"drawn (seed {SEED})", f"drawn (seed {SEED + 1})", "render"],
          title="faces drawn from test maps: two seeds, and the render of the same map", size=1.0);

# %% [markdown]
# **What the run shows** (300 maps on the fast path). Each requested part is drawn in its region in 90.7–100% of
# the faces: hair 96.8%, mouth 90.7% [87.0, 94.0], glasses 94.4%, hat 98.8%, and all of a face's parts at once in
# 85.7%. The criterion is the tolerant one of `semantic.part_hits` (precision and recall of the part's pixels ≥ 0.5
# within 1 px). Issue 16's target, ≥ 90% for each part, is met by the mouth's point estimate only: its interval
# reaches down to 87.0% (at n = 1000, `scripts/measure_semantic.py`, the mouth reads 93.0% [91.4, 94.5] at s = 2).
# The rows around it say what the numbers mean: the judge finds the parts of the renders themselves in 94.4–100%,
# and of their reconstructions in 89.9–100% (the glasses' 1-pixel frames are the hardest, for the autoencoder too),
# so the drawn faces sit just below what any model on this latent could reach; judged against *another* face's map
# the same faces score 26–43% (chance), except the eyes, which never move and so score 100% whatever is drawn (they
# count for nothing). The failure the measure shows is the other way round: a hat appears on 11.1% [6.9, 15.3] of
# the faces whose map has none, and glasses on 7.6%. (This is guidance s = 1; the shipped file's default s = 2,
# chosen on another set of maps, lifts the mouth to 93.0% and brings the uninvited hats down to 7.3%,
# `benchmarks/RESULTS.md`.) Two draws of one map differ by 0.29 on average: hair colour,
# skin and background change, the parts stay (the figure above).

# %% [markdown]
# ### Editing the map
#
# A map can be edited and rendered again, and the edited map drawn with the *same* noise z_T (DDIM with η = 0 and
# the same seed: every face keeps its starting noise). Two edits on the first test maps: the mouth moved 8 pixels
# of the 148-pixel crop (3.5 at 64) to the other side, and glasses added where there were none. The measure is the
# same: is the edited part drawn in its new region? And how much does the rest of the face change?

# %%
N_EDIT = config.pick(smoke=8, cpu=64, gpu=64)
glasses = CELEBA_ATTRIBUTES.index("Eyeglasses")
edited = {"mouth moved": [], "glasses added": []}
for i in range(N_EDIT):
    a, s = sem_test.attrs[i], sem_test.seeds[i]
    off = {"mouth": tuple(sem_test.offsets[i, 0].tolist()), "glasses": tuple(sem_test.offsets[i, 1].tolist())}
    dx = off["mouth"][0]
    moved = dict(off, mouth=(dx + 8 if dx <= 0 else dx - 8, off["mouth"][1]))
    edited["mouth moved"].append(semantic.render_pair(a, s, moved)[1])
    edited["glasses added"].append(semantic.render_pair(a.clone().index_fill_(0, torch.tensor([glasses]), 1), s,
                                                        off)[1])
before = sem["drawn"][:N_EDIT]  # the same maps, drawn with seed SEED above
for name, maps in edited.items():
    maps = torch.stack(maps)
    after = semantic.draw(sem_model, maps, seed=SEED, steps=STEPS)
    part = "mouth" if "mouth" in name else "glasses"
    k = PARTS.index(part)
    changed = (maps != sem_test.parts[:N_EDIT]).flatten(1).any(1)  # faces whose map the edit changed
    hit = semantic.part_hits(seg.segment(after[changed]), maps[changed], parts=(part,))[part]
    region = ((maps == k) | (sem_test.parts[:N_EDIT] == k))[:, None].float()  # the part's old and new pixels
    region = F.max_pool2d(region, 5, stride=1, padding=2)  # grown by 2 px
    delta = (after - before).abs().mean(1, keepdim=True) / 2  # [0, 1] units
    inside_d = ((delta * region).flatten(1).sum(1) / region.flatten(1).sum(1).clamp_min(1))[changed]
    outside_d = ((delta * (1 - region)).flatten(1).sum(1) / (1 - region).flatten(1).sum(1))[changed]
    print(f"{name}: {int(changed.sum())} maps changed; {part} in its new region in {hit.float().mean():.1%}; "
          f"mean change near the edit {inside_d.mean():.3f}, elsewhere {outside_d.mean():.3f}")
    show_rows([semantic.colour_map(maps[:N_SHOW]), before[:N_SHOW], after[:N_SHOW]],
              ["edited map", "before (same z_T)", "after"], title=f"edit: {name}", size=1.0)

# %% [markdown]
# **What the edits show.** Moving the mouth moves it: in 96.9% of the 64 edited faces it is drawn in its new
# place, and the image changes 0.060 near the mouth against 0.005 elsewhere, so the rest of the face stays as it
# was. Adding glasses works in 85.1% of the 47 faces that had none, with a change of 0.100 near the glasses and
# 0.019 elsewhere: glasses are larger, and the face under them is redrawn a little (the figure shows the same face
# with the frames on).

# %% [markdown]
# ## 5 · Faces: super-resolution 16 × 16 → 64 × 64, and inpainting told the attributes
#
# The two MNIST tasks again, on the toy faces of notebook 06 and its face latent (3, 16, 16) (the shipped
# `latent_faces_toy`'s autoencoder, as in §4). Super-resolution is the same recipe at 4× the size: the 4 × 4 average
# pool of a 64 × 64 face is 16 × 16, the latent grid, and is concatenated as it is. Inpainting gets something the
# digits did not need: the **attributes**. A face with its eyes masked out does not say whether it wore glasses, so
# the condition also carries the 16 attributes, each as a constant plane on the latent grid, +1 present, −1 absent,
# 0 unsaid (`pairs.attribute_planes`): the simplest way to hand a global condition to a concatenation model, one
# wider first conv. That alone was not enough: the first model trained so (planes only) all but ignored the request
# for glasses and smiles, because a constant plane reaches only the first conv, and GroupNorm removes part of a
# constant offset. So the same 16 values also go through a linear map into the **time embedding**
# (`UNetConfig(vector_dim=16)`), which every ResBlock adds, as class labels enter the UNet of Dhariwal & Nichol
# (2021). (The cross-attention route of notebook 06 would carry them as tokens; LDM's later models combine routes.)
# The training masks are the MNIST mixture plus, for 40% of them, the region
# where one attribute is drawn (`pairs.face_masks`), and each attribute of each training pair is left unsaid with
# probability 1/4 (`recipes.face_concat_pairs`), so "fill this, I say nothing" is a case it has seen.
#
# | model | c | in_channels |
# |---|---|---|
# | `latent_faces_sr` | the LR face (3, 16, 16) | 3 + 3 |
# | `latent_faces_inpaint` | [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), A, m↓], A (16, 16, 16) the attribute planes; A's 16 values also into the time embedding | 3 + 3 + 16 + 1 |
# | ∅ (inpainting) | fully masked, every attribute unsaid: zeros, m↓ = 1 | p_uncond = 0.1 |
#
# The judge is notebook 06's face judge (`face_judge_toy`), which no training loss touched; FD is measured in its
# features (the last conv block, averaged over positions) against other real faces, over the floor. Test faces are
# the toy test split, the FD reference the validation split: no model here trained on either. The condition by
# hand, checked against the library:

# %%
from minildm import face_restoration as fr  # noqa: E402
from minildm.face_classifier import load_attribute_classifier  # noqa: E402
from minildm.faces import FACE_ATTRIBUTES, load_faces  # noqa: E402

N_FACE = config.pick(smoke=16, cpu=200, gpu=1000)  # test faces per task
N_FACE_INP = config.pick(smoke=16, cpu=100 if FAST else 200, gpu=1000)  # of them, inpainted (9 fills a face)
face_test = load_faces("test", source="toy", verbose=False)
face_ref = load_faces("valid", source="toy", verbose=False)
xf, af = face_test.float(N_FACE), face_test.attrs[:N_FACE]  # (N, 3, 64, 64) in [−1, 1], (N, 16) in {0, 1}
face_judge = load_attribute_classifier(shipped("face_judge_toy"), device=device)
face_ae = sem_model.first_stage  # notebook 06's face autoencoder, as in §4
m_eyes = pairs.region_mask("Eyeglasses").expand(N_SHOW, -1, -1, -1)  # (8, 1, 64, 64): lenses, frames, the eyes
with torch.no_grad():
    z_masked = face_ae.encode_latents(xf[:N_SHOW] * (1 - m_eyes))  # (8, 3, 16, 16)
m_cells = F.max_pool2d(m_eyes, 4)  # (8, 1, 16, 16): a cell is unknown if any of its pixels is
planes = (af[:N_SHOW].float() * 2 - 1)[:, :, None, None].expand(-1, -1, 16, 16)  # (8, 16, 16, 16) in {−1, +1}
c_mine = torch.cat([z_masked * (1 - m_cells), planes, m_cells], 1)  # (8, 20, 16, 16)
torch.testing.assert_close(c_mine, pairs.inpaint_condition(face_ae, xf[:N_SHOW], m_eyes, attrs=af[:N_SHOW]))
print(f"c {tuple(c_mine.shape)}: by hand == pairs.inpaint_condition(…, attrs=) ✓; the eye region masks "
      f"{pairs.region_mask('Eyeglasses').mean():.1%} of the pixels, {m_cells[0].mean():.1%} of the latent cells")
show_rows([xf[:N_SHOW]] + [pairs.masked_image(xf[:N_SHOW], pairs.region_mask(r).expand(N_SHOW, -1, -1, -1))
                           for r in fr.INPAINT_TESTS],
          ["test face"] + [f"{r} region masked" for r in fr.INPAINT_TESTS],
          title="the regions the face test masks out (each covers every way the toy faces draw it)", size=1.0);

# %% [markdown]
# **The two models**, shipped on the fast path (`python -m minildm train latent-faces-sr` and `… latent-faces-inpaint`
# on the full path: 3,000 and 9,000 steps).

# %%
fsr_model, fsr_path, fsr_shipped = recipes.shipped_or_train("latent-faces-sr", fast=FAST,
                                                            callback=viz.LiveLoss("L_LDM, faces ×4 SR"))
show_training(fsr_model, fsr_path, fsr_shipped, "L_LDM, faces ×4 SR")
finp_model, finp_path, finp_shipped = recipes.shipped_or_train("latent-faces-inpaint", fast=FAST,
                                                               callback=viz.LiveLoss("L_LDM, face inpainting"))
show_training(finp_model, finp_path, finp_shipped, "L_LDM, face inpainting")

# %% [markdown]
# **Super-resolution, measured** on N_FACE test faces (`face_restoration.measure_sr`): PSNR, SSIM and consistency
# as for the digits; **attributes carried**, the judge's reading of the 16 attributes on each output against the
# face's true ones (on the HR faces themselves: the judge's own accuracy); FD / floor in the judge's features. The
# autoencoder's own reconstruction 𝒟(ℰ(x)) is the ceiling of any model on this latent.

# %%
t0 = time.perf_counter()
fsr = fr.measure_sr(fsr_model, face_judge, xf, af, face_ref.float(N_FACE), seed=SEED, steps=STEPS, n_boot=N_BOOT)
print(f"{N_FACE} test faces, DDIM {STEPS}, {time.perf_counter() - t0:.0f} s; 95% bootstrap intervals")
print(fr.sr_table(fsr))
print(f"two draws for one LR face differ by {fsr['diversity']:.4f} (mean |a − b|, [0, 1] units)")
show_rows([F.interpolate(fsr["lr"][:N_SHOW], scale_factor=4), fsr["images"]["bicubic"][:N_SHOW],
           fsr["images"]["diffusion"][:N_SHOW], xf[:N_SHOW]],
          ["LR 16 × 16 (nearest)", "bicubic", f"diffusion (ddim {STEPS})", "HR 64 × 64"],
          title="×4 super-resolution of toy test faces", size=1.0);

# %% [markdown]
# **What the run shows.** The SR faces carry their attributes 94.8% [93.9, 95.5] of the time, one point below what
# the autoencoder itself keeps (95.8%, the ceiling of any model on this latent; the judge on the real faces: 97.8%)
# and 14 points above bicubic (80.8%). Their FD is 1.21× the floor, level with the reconstructions' 1.22×, against
# bicubic's 6.45× (at n = 200 every ratio sits nearer 1 than at n = 1000, where the three are 1.98×, 1.76× and
# 25×: `benchmarks/RESULTS.md`). PSNR is 27.6 dB against bicubic's 22.6 and the reconstructions' 29.1. In the figure
# the glasses' frames, the eyes and the strands of hair come back from 16 × 16 blocks, and the backgrounds gain a
# faint texture the truth does not have. One column goes the other way: **consistency**, how well the output pools
# back to the LR face, is 0.043 for diffusion and 0.019 for bicubic. The decoder alone is 0.028 off (the
# reconstruction row), so no model that decodes through this autoencoder keeps the LR face as exactly as an
# interpolation of it does; on MNIST the SR model beat bicubic there (§2). Two draws for one LR face differ by
# 0.028: the LR face fixes most of the picture.

# %% [markdown]
# **Inpainting told the attributes, measured** (`face_restoration.measure_attribute_inpainting`): for each of three
# attributes, its region is masked on every test face and the face filled three ways: told the true attributes
# (**as it was**), told that one attribute flipped (**flipped**: glasses on a face that had none, off one that had
# them), and told nothing (**unsaid**: whatever the rest of the face suggests). Each cell is the share of faces on
# which the judge reads the requested value of that attribute (for the masked input and *unsaid*, the true value).
# *others*: the remaining attributes carried on the *as it was* fills; *outside*: mean |y − x| outside the mask
# before the known pixels are pasted back. The known pixels are pasted back for every judged face.

# %%
t0 = time.perf_counter()
finp = fr.measure_attribute_inpainting(finp_model, face_judge, xf[:N_FACE_INP], af[:N_FACE_INP], seed=SEED,
                                       steps=STEPS, n_boot=N_BOOT)
print(f"{N_FACE_INP} test faces × 3 regions × 3 requests, DDIM {STEPS}, {time.perf_counter() - t0:.0f} s")
print(fr.inpainting_table(finp))
pics = finp["images"]["Eyeglasses"]
show_rows([pics["masked"][:N_SHOW], pics["as it was"][:N_SHOW], pics["flipped"][:N_SHOW], pics["unsaid"][:N_SHOW],
           xf[:N_SHOW]], ["eyes masked", "told as it was", "told Eyeglasses flipped", "told nothing", "truth"],
          title="the eye region filled as the attributes ask (Eyeglasses of the truth: "
                f"{af[:N_SHOW, FACE_ATTRIBUTES.index('Eyeglasses')].tolist()})", size=1.0)
pics = finp["images"]["Smiling"]
show_rows([pics["masked"][:N_SHOW], pics["as it was"][:N_SHOW], pics["flipped"][:N_SHOW], xf[:N_SHOW]],
          ["mouth masked", "told as it was", "told Smiling flipped", "truth"],
          title="the mouth region filled (Smiling of the truth: "
                f"{af[:N_SHOW, FACE_ATTRIBUTES.index('Smiling')].tolist()})", size=1.0);

# %% [markdown]
# **What the run shows: the fills follow what they are told, the hat most, the smile least** (100 faces on the
# fast path, so each share is ±8 points). A fill that ignored the request would score *as it was* + *flipped* =
# 100%, since the judge reads one value or the other; one that always obeyed, 200%. The hat: 96.0% as it was, 83.0%
# flipped, 179% together. The glasses: 88.0% + 65.0% = 153%, *as it was* well above the masked input (72.0%, which
# the judge reads as "no glasses", right for the faces that had none). The smile: 75.0% + 74.0% = 149%. Told
# nothing, the fills score 55–65%, near the masked input: without a request the model guesses. In the figures the
# fills are whole faces, without smears: glasses put on and taken off as asked in most columns (the first face,
# told it has none, gets a pair anyway), and mouths drawn as mouths, an open smile where one is asked for. The other
# attributes are carried 95.7–97.1%, and the known region is redrawn 0.057–0.062 off before pasting, about the
# autoencoder's own error. At n = 500 (`scripts/measure_face_restoration.py`,
# `benchmarks/face_inpaint_latent_faces_inpaint.md`) the sums are 178%, 158% and 152%. It took two changes, each
# measured at n = 500 (`benchmarks/RESULTS.md`). With the attribute planes only and 3,000 steps the fills all but
# ignored the glasses and the smile (107% and 101%; hat 140%); the time embedding, at the same steps, made the
# glasses follow (137%; hat 156%) but not the smile (108%), and left the known region redrawn three times the
# autoencoder's error (0.17–0.18). Three times the steps (9,000) made the smile follow and brought the error down
# to the autoencoder's. No request is obeyed every time: a quarter of the mouths come out other than asked, and a
# third of the flipped glasses requests are not met.

# %% [markdown]
# ## 6 · Pixels or latents? LDM Table 6 in miniature
#
# LDM §4.5 trains its inpainting model twice, on pixels (LDM-1) and on f = 4 latents, and finds the latent one
# faster to train and to sample and better in FID (Table 6). `benchmarks/inpaint_pixel_vs_latent.py` does the same
# on MNIST: the inpainting preset's very UNet, once on z (4, 8, 8) with LDM's c = [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), m↓]
# (not the shipped model's known pixels: the table compares the two spaces) and
# once on x (1, 32, 32) with c = [x ⊙ (1 − m), m] (`pairs.pixel_inpaint_condition`), both from scratch for the same
# steps, batch, schedule and masks, then judged on half-masked test digits as in §3. Both trainings together take
# about half an hour on 2 cores, too long for this notebook, so the table below is that script's output, read from
# the file it wrote (its command and machine are in its header); the by-hand check is that the pixel condition's
# mask, max-pooled to the latent grid, is exactly the latent model's m↓:

# %%
from pathlib import Path  # noqa: E402

m_px = pairs.pixel_inpaint_condition(x[:N_SHOW], m_half[:N_SHOW])[:, -1:]  # (8, 1, 32, 32): m itself
assert torch.equal(F.max_pool2d(m_px, 4), concat.resize_mask(m_half[:N_SHOW], 8))
print("pixel c's mask, max-pooled to 8 × 8 == concat.resize_mask ✓")
table6 = Path(config.__file__).resolve().parents[1] / "benchmarks" / "inpaint_pixel_vs_latent_cpu.md"
print(table6.read_text() if table6.exists() else f"{table6} is not there: run the benchmark to make it")

# %% [markdown]
# **What the table shows.** At equal steps (1,500 each, batch 128) the **latent** model is the cheap one: it trained
# 4.8× faster (474 against 98 digits per second, 405 against 1,959 s) and fills a digit 9.2× faster (0.020 against
# 0.181 s for 50 DDIM steps, its ℰ and 𝒟 included). The **pixel** model is the better one at that budget: the
# judge reads 76.0% [72.4, 79.6] of its fills right against 68.8% [64.8, 72.0], FD 4.40× the floor against 11.2×,
# and it keeps the known half closer (0.025 against 0.048, the latent model redrawing it through the decoder).
# LDM §4.5 reports the opposite on Places at 256², latent models at least 2.7× faster *and* at least 1.6× better in
# FID. On 32 × 32 digits a pixel UNet is not yet expensive enough to need the autoencoder, and the latent model pays
# the first stage's error on top of its own. What LDM's argument buys is the step budget: the 4.8× here is 7,000
# latent steps in the pixel model's 1,959 s. The shipped latent model (with the known pixels in c) had 48,000 steps
# and reads 89.8% (§3), but its run shared the cores differently, so an equal-time comparison is left for a run of
# its own.

# %% [markdown]
# ## What we measured
#
# The lines below are printed from this run (n = N_EVAL test digits per method, judged by a network no training
# loss touched, 95% bootstrap intervals).

# %%
print(f"mode {config.get_mode()}, n = {N_EVAL}, {STEPS} sampling steps")
for name in sr_rows:
    r = sr_rows[name]
    print(f"SR ×4 ({name}): PSNR {r['psnr']:.2f} dB, judge {r['accuracy']:.1%}, FD / floor {r['fd_ratio']:.2f}, "
          f"consistency {r['consistency']:.4f}")
for name in inp_rows:
    r = inp_rows[name]
    print(f"inpainting ({name}): judge {r['accuracy']:.1%}, FD / floor {r['fd_ratio']:.2f}"
          + ("" if r["outside"] is None else f", outside unpasted {r['outside']:.4f}"))
for name in ("drawn", "reconstruction"):
    r = sem["rows"][name]
    print(f"semantic maps ({name}): " + ", ".join(f"{p} {r[p]:.1%}" for p in semantic.LOCALISED)
          + f", all {r['all']:.1%}")
r = fsr["rows"]["diffusion"]
print(f"faces SR ×4: attributes carried {r['carried']:.1%}, FD / floor {r['fd_ratio']:.2f}, PSNR {r['psnr']:.2f} dB, "
      f"consistency {r['consistency']:.4f} (bicubic {fsr['rows']['bicubic']['consistency']:.4f})")
for name in fr.INPAINT_TESTS:
    r = finp[name]
    print(f"faces inpainting, {name} region: as it was {r['as it was']:.1%}, flipped {r['flipped']:.1%}, "
          f"unsaid {r['unsaid']:.1%}, masked input {r['masked input']:.1%}")

# %% [markdown]
# * **Super-resolution.** Diffusion at its recommended s = 3: 96.2% read right here, 96.9% [95.9, 97.9] at n = 1000
#   on other digits (target 97%: missed by 0.1 points; unguided 95.8% here; classifiers of the LR digit itself
#   read 97.6%, an exact sampler ≥ 96.1%), FD 1.22× the floor (met), consistency 0.013 (bicubic's 0.050: met). The
#   L1 regression wins PSNR
#   and SSIM and ties or edges the rest, so LDM Table 5's perception–distortion point is not reproduced on 8 → 32
#   digits. Diffusion alone gives diverse outputs.
# * **Inpainting.** At s = 2, 89.8% read right with the right half masked, 90.4% [88.8, 92.1] at n = 1000 (target
#   90%: met by 0.4, at the edge; LDM's condition alone 86.6%; an exact sampler of p(x | left half) would score
#   ≥ 94.2%, the replace baseline 59.4%). The known pixels in c gave +1.9 points, twice the training +1.9 more. The
#   error outside the mask is 0.011 unpasted (met) and exactly 0 pasted.
# * **From ∅.** Every digit is drawn, but FD is 10.7 against the unconditional model's 7.98 (floor 4.3).
# * **Semantic maps.** Every part in its region in ≥ 90% of the faces (met at n = 1000; here, at n = 300, the mouth
#   lowest, 90.7% [87.0, 94.0]), 85.7% with all parts at once; hats drawn uninvited on 11% of faces; the edits land (mouth 96.9%, glasses 85.1%).
# * **Faces ×4 SR.** Attributes carried 94.8%, one point under the autoencoder's own 95.8%, 14 over bicubic; FD at
#   the reconstructions' level; consistency worse than bicubic's (0.043 vs 0.019), the decoder alone being 0.028 off.
# * **Faces inpainting told the attributes.** The fills follow the request: as it was + flipped 179% for the hat,
#   153% for glasses, 149% for the smile (100% is "ignored", 200% "always obeyed"; 178 / 158 / 152% at n = 500);
#   the known region redrawn at the autoencoder's error (0.06). The attributes in the time embedding made the
#   glasses follow, three times the steps the smile.
# * **Pixels or latents (§6).** At 1,500 steps each: latent 4.8× faster to train, 9.2× faster to sample; pixel
#   better, 76.0% against 68.8% and FD 4.4× against 11.2× the floor.
#
# Not done: the SR target on MNIST (97%), missed by 0.1 points after runs 1.7× and 3× as long and guidance up to
# s = 5 (the SR digits sit above what an exact sampler of p(x | LR) would score, 96.1%, below the likeliest digit's
# 97.6%).
# The inpainting target (90%) is met only at the edge of its interval, from one training seed; its known half
# allows ≥ 94.2%.
#
# ## Exercises
#
# **1.** How many input channels does the inpainting UNet's first conv take? (Count them from the condition's
# definition, then check in `inp_model.unet`.)

# %%
answer_1 = None  # an int
check("08.inpaint_in_channels", answer_1)

# %% [markdown]
# **2.** An "SR" that just nearest-upsamples the LR image (`F.interpolate(lr, scale_factor=4)`): what does
# `pairs.consistency` return for it? Why does this show that consistency alone is not a quality measure?

# %%
answer_2 = None  # a float
check("08.nearest_consistency", answer_2)

# %% [markdown]
# **3.** A 12 × 12 box masks the pixels of rows 10–21 and columns 10–21 of a 32 × 32 digit (14% of the image).
# What fraction of the 8 × 8 latent grid does m↓ = `concat.resize_mask(m, 8)` mark to be generated?

# %%
answer_3 = None  # a float in [0, 1]
check("08.box_cells", answer_3)

# %% [markdown]
# **4.** A closed mouth is a line 2 pixels high: rows 47–48, columns 25–38 of a 64 × 64 map. In the 16 × 16
# condition `semantic.semantic_condition`, what is the largest share of mouth in any cell? (What does that say about
# how visible a thin part is to ε_θ?)

# %%
answer_4 = None  # a float in [0, 1]
check("08.mouth_share", answer_4)

# %% [markdown]
# **5.** (Open.) Both MNIST models have a null condition, so both can be guided, and §2–§3 measured them at s = 1
# and at their recommended s (3 for SR, 2 for inpainting). Re-run the right-half measurement of §3 at s = 4 and
# s = 8, and plot the judge's accuracy against the diversity inside the mask. Does the accuracy keep rising, and at
# what cost in diversity and in FD? (At n = 1000 on test seed 0, `scripts/measure_restoration.py` found 87.3, 89.0
# and 89.8% at s = 1, 2, 3, with FD 1.65, 1.56 and 1.73× the floor.)
#
# **6.** (Open.) `paste_inpaint` replaces the known cells of z_t once per step. RePaint (Lugmayr et al. 2022) also
# goes back up: after a step, it re-noises z_{t−1} to z_t and repeats the step a few times. Write that loop around
# `samplers.ddim_step` and measure whether the baseline's accuracy moves towards the inpainting model's.
