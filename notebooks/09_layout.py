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
# # 09 · Layout-to-image: digits placed by bounding-box tokens through cross-attention
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/minildm/minildm/blob/main/notebooks/09_layout.ipynb)
#
# **Papers:** LDM §4.3.1 (transformer encoders τ_θ for LDMs: text- and layout-to-image, Fig. 8; App. D.3) and §3.3
# (Eq. 3); Mildenhall et al. 2020 (NeRF), §5.1 (Fourier features γ of a coordinate); Liu et al. 2018 (CoordConv:
# coordinates as input channels); Ho & Salimans 2021 (classifier-free guidance).
#
# Cross-attention does not care what its keys are made of. Notebook 05 gave it one token per word; LDM §4.3.1 makes
# the point that τ_θ may be *any* encoder of *any* set of tokens, and one of its examples is a **layout**: a list of
# objects, each a class and a bounding box, (class, x0, y0, x1, y1). Here a layout is up to K = 3 digits on a
# 64 × 64 canvas, and each digit must come out as the asked class, inside its box, with nothing drawn elsewhere.
#
# | symbol | code | here |
# |---|---|---|
# | y | `layouts` (B, K, 5) | rows (class, x0, y0, x1, y1) in canvas fractions; class −1 = empty slot |
# | γ(box) | `conditioning.fourier_features` | 4·(2F + 1) numbers per box (F = 8 frequencies) |
# | τ_θ(y) | `conditioning.LayoutEncoder` | (B, 1 + K, 64): ∅, then one token per slot |
# | key mask | `LayoutEncoder.key_mask` | (B, 1 + K) bool: empty slots may not be attended |
# | x, z | `layout_dataset`, `first_stage.encode_latents` | canvases (B, 1, 64, 64) → s·ℰ(x) (B, 4, 16, 16) |
#
# **You will:** look at the training canvases and their 16 × 16 latents; build an object's token by hand (Fourier
# features, class embedding, LayerNorm) and check it against `minildm`; show that ε_θ ignores the order of the
# objects and whatever sits in an empty slot, and what the key mask is for; train (or load) the layout model; draw
# digits where you ask for them; edit one object at a time with the noise held fixed; **measure** what is drawn and
# where (judge accuracy per box, IoU, ink outside the boxes, digit count) with intervals, against the real canvases'
# ceiling and the targets; and measure where each object token is read by cross-attention.
#
# **Two paths** (the first code cell): `FAST = True`, the default in smoke and cpu mode, loads the shipped layout
# model of `minildm/weights/` and its autoencoder, and trains only a short live run of the same preset, so that you
# see the loss fall; `FAST = False`, the default in gpu mode, trains the autoencoder and the layout model here.
# Measured on 2 CPU cores (one thread), from an empty runs folder: the fast path 8.6 min of CPU time, 8.8 min wall
# beside a training run on the other core (most of it sampling the 150 layouts per guidance scale of §6); the full
# path about 70 min more (the autoencoder, then the layout model's 3,000 steps; `notebooks/RUNS.md`). On a Colab T4 expect the
# fast path in 2–3 minutes (not measured yet).

# %%
# Colab only: install minildm from GitHub (a no-op anywhere else), and nothing more: Colab ships every dependency,
# and upgrading its own IPython, ipykernel or ipywidgets would ask for a runtime restart.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "minildm @ git+https://github.com/minildm/minildm"], check=True)

# %%
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch.testing import assert_close

import minildm
from minildm import config, evaluate, presets, recipes, uncertainty, viz
from minildm.attention_maps import AttentionStore, capture_attention
from minildm.checkpoint import load_checkpoint
from minildm.conditioning import ConditionalUNet, LayoutEncoder, fourier_features
from minildm.conditions import LAYOUT_EXAMPLE, parse_layout
from minildm.exercises import check
from minildm.shipped import shipped
from minildm.guidance import condition_dropout
from minildm.layers import coordinate_features
from minildm.layout import (NO_OBJECT, LayoutConfig, attention_in_boxes, count_digits, ink_box_iou, ink_outside,
                            layout_dataset, random_layouts, read_objects)

FAST = config.get_mode() != "gpu"  # True: the shipped model + a short live run; False: train every model here
LIVE_STEPS = config.pick(smoke=3, cpu=40, gpu=300)  # the live run's steps (§3)
print(config.describe())
print(viz.mode_banner())
print(f"{'fast path: the shipped layout model' if FAST else 'full path: every model trained here'}")
device = config.get_device()
preset = presets.latent_mnist_layout()
print(f"layout preset ({preset.mode}):\n  {preset.unet}\n  {preset.train}")
ev = evaluate.Evaluator(device=device)  # the judge: an MNIST classifier no training loss of the course touched
S = preset.image_size  # 64: the canvas side, pixels
LATENT = (preset.unet.in_channels, S // preset.f, S // preset.f)  # (4, 16, 16): ε_θ's space
STEPS = config.pick(smoke=5, cpu=50, gpu=50)  # ancestral ("ddpm") sampling steps, as scripts/measure_layout.py
N_BOOT = config.pick(smoke=50, cpu=1000, gpu=1000)  # bootstrap resamples per interval
torch.manual_seed(0);

# %% [markdown]
# ## 1 · Why layouts, and what the data looks like
#
# LDM §4.3.1 trains one latent diffusion model per kind of condition, and for each one only τ_θ changes: a
# BERT-like transformer over words for text, and for layouts the same kind of transformer over a sequence that
# spells out each object's class and box. The UNet and its cross-attention stay as they were. All the UNet needs
# is a set of tokens it can attend to, and (a small UNet needs it, §2.1) a way to know where each of its pixels is.
#
# MNIST has no layouts, so `minildm.layout.layout_dataset` makes them: each canvas holds 1–3 real MNIST digits, each
# cropped to its ink and resized into a square box of side 20–36 px, placed at random so that no two boxes overlap or
# touch. The layout is the list of those boxes and the digits' labels, so the condition is true of the image by
# construction. Canvas i is the same for the same (seed, i), whatever else is drawn.
#
# A helper draws layouts: boxes in canvas fractions, on an axis whose image spans (0, 1) × (0, 1), so the same call
# draws them on a 64 × 64 canvas and on its 16 × 16 latent.

# %%
def draw_layout(ax, layout, labels=None, color="tab:orange"):
    """Boxes of ``layout`` (K, 5) on ``ax`` (its image drawn with extent (0, 1, 1, 0)); ``labels`` per slot."""
    for k, (c, x0, y0, x1, y1) in enumerate(layout.tolist()):
        if int(c) == NO_OBJECT:
            continue
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.2))
        ax.text(x0 + 0.01, y0 + 0.01, str(int(c)) if labels is None else labels[k], color=color, fontsize=7,
                ha="left", va="top")


def show_canvas(ax, image, layout=None, title=None, labels=None, cmap="gray", vmin=-1, vmax=1):
    """One image (1, H, W) or (H, W) stretched over the unit square, its layout on top."""
    ax.imshow(image.reshape(image.shape[-2:]).cpu(), cmap=cmap, vmin=vmin, vmax=vmax, extent=(0, 1, 1, 0),
              interpolation="nearest")
    if layout is not None:
        draw_layout(ax, layout, labels)
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_xticks([]); ax.set_yticks([])


real = layout_dataset(8, "train", seed=0)  # images (8, 1, 64, 64), layouts (8, 3, 5), valid (8, 3)
K = real.layouts.shape[1]  # slots per layout
print(f"images {tuple(real.images.shape)}, layouts {tuple(real.layouts.shape)}, objects per canvas "
      f"{real.valid.sum(1).tolist()}")
print("canvas 0's layout (class, x0, y0, x1, y1), empty slots of class −1:\n", real.layouts[0])

# %% [markdown]
# The first stage is notebook 03's f = 4 autoencoder, unchanged. It is fully convolutional, so a 64 × 64 canvas
# becomes a (4, 16, 16) latent, and its scale factor s still applies. The first row shows real canvases with their
# layouts drawn on top. The second shows what ε_θ will see: channel 0 of s·ℰ(x) on its 16 × 16 grid, with the same
# boxes. Each latent cell covers 4 × 4 pixels, and a box of 20–36 px spans 5–9 cells.

# %%
if FAST:  # the shipped layout model carries the autoencoder it was trained on
    ae = recipes.load_diffusion(shipped("latent_mnist_layout")).first_stage.to(device)
else:
    ae = recipes.first_stage(presets.autoencoder_mnist(f=preset.f), progress=False)[0].to(device)  # trained or loaded
with torch.no_grad():
    z_real = ae.encode_latents(real.images.to(device)).cpu()  # (8, 4, 16, 16): s·ℰ(x)
print(f"canvases {tuple(real.images.shape)} → latents {tuple(z_real.shape)}; std of s·z {z_real.std():.2f}")
fig, axes = plt.subplots(2, 8, figsize=(13, 3.6))
for i in range(8):
    show_canvas(axes[0, i], real.images[i], real.layouts[i])
    show_canvas(axes[1, i], z_real[i, 0], real.layouts[i], cmap="RdBu_r", vmin=-3, vmax=3)
axes[0, 0].set_ylabel("x (64×64)"); axes[1, 0].set_ylabel("s·ℰ(x), ch. 0 (16×16)")
fig.suptitle("training canvases and their latents, with their layouts")
fig.tight_layout()

# %% [markdown]
# ## 2 · The tokens, and why they look the way they do
#
# `LayoutEncoder` turns each object into **one token**:
#
# $$\text{token}_k = \mathrm{LN}\big(e_{c_k} + \mathrm{MLP}(\gamma(x_0, y_0, x_1, y_1))\big),\qquad
#   \gamma(c) = \big[c,\ \sin(2^i\pi c),\ \cos(2^i\pi c)\big]_{i<F},$$
#
# and puts a learned **∅ token** in front, whatever the layout. The design choices, one at a time:
#
# * **Fourier features γ** (NeRF's encoding). A raw coordinate is one slowly varying number, and an MLP is slow to
#   turn it into a sharp position code. With F = 8 frequencies the highest has a period of 2/2⁷ = 1/64 of the
#   canvas, one pixel. Each box gives 4·(2F + 1) numbers.
# * **One token per object, and no mixing between tokens.** LDM's layout τ_θ is a transformer, so each of its
#   tokens can carry information about the others. Here token k carries object k and nothing else, which makes
#   the cross-attention map of token k a statement about object k (§7). It also means there is no slot position:
#   **permuting the objects permutes the tokens**, and ε_θ's cross-attention, a weighted sum over keys, does not
#   notice the order.
# * **∅ is always present.** A background pixel needs a key that means "no object here". ∅ is also the whole
#   condition of the empty layout, which is what condition dropout trains for classifier-free guidance (§3).
# * **Empty slots are masked out of attention** (`key_mask`). Layouts have 1–3 objects but every tensor has K = 3
#   slots. An empty slot's token is set to ∅ and then hidden from every cross-attention layer, so whatever the slot
#   holds cannot change ε_θ. Without the mask, a one-object layout would show ∅ three times among its four keys,
#   and the number of empty slots would change what the model draws.
#
# These are properties of the architecture, so they can be checked before any training, on the preset's network
# with random weights. A fresh UNet's cross-attention output layers start at zero (notebook 05, §3), which would
# hide the condition entirely and make every check pass trivially. So the zero-initialised weights are filled
# with small random values first. First, γ by hand for one box, compared with the library. The check runs in
# float64, so that only the algebra differs.

# %%
net = recipes.build_unet(preset, device=device).eval()  # ConditionalUNet: ε_θ + τ_θ, random weights
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    for p in net.parameters():
        if not p.any():  # zero-initialised (output convs, attention out-projections): wake them up
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
enc0 = net.encoder  # a LayoutEncoder
y_ex = parse_layout(LAYOUT_EXAMPLE, max_objects=K, num_classes=enc0.num_classes)  # (K, 5): 2 objects, 1 empty
print(f"parse_layout({LAYOUT_EXAMPLE!r}) →\n{y_ex}")
F = enc0.num_freqs
box = y_ex[0, 1:].double()  # (4,): x0, y0, x1, y1 of the 7


def gamma(c: float) -> list[float]:
    """γ(c) = [c, sin(2^i π c) for i < F, cos(2^i π c) for i < F]: 2F + 1 numbers."""
    return [c] + [math.sin(2**i * math.pi * c) for i in range(F)] + [math.cos(2**i * math.pi * c) for i in range(F)]


mine = torch.tensor([v for c in box.tolist() for v in gamma(c)], dtype=torch.float64)  # (4·(2F + 1),)
lib = fourier_features(box, F)  # (4·(2F + 1),)
assert_close(mine, lib, rtol=0, atol=1e-12)
print(f"γ(box) by hand == fourier_features ✓  ({mine.numel()} = 4·(2·{F} + 1) numbers, max |Δ| = "
      f"{(mine - lib).abs().max():.1e})")

# %% [markdown]
# Next, the whole token by hand: the class embedding plus the box MLP of γ, then LayerNorm. τ_θ outputs (1 + K)
# tokens: ∅ first, then one per slot. The empty third slot holds ∅ as well, and the key mask hides it.

# %%
with torch.no_grad():
    tokens = enc0(y_ex[None].to(device))[0]  # (1 + K, 64)
    c0 = int(y_ex[0, 0])
    token_mine = enc0.norm(enc0.class_embed.weight[c0] + enc0.box_mlp(lib.float().to(device)))  # LN(e_c + MLP(γ))
assert_close(token_mine, tokens[1], rtol=1e-5, atol=1e-5)
assert torch.equal(tokens[0], enc0.null) and torch.equal(tokens[3], enc0.null)
print(f"τ_θ(y): {tuple(tokens.shape)} = (1 + K, dim); token 1 by hand == LayoutEncoder ✓ (max |Δ| "
      f"{(token_mine - tokens[1]).abs().max():.1e}); tokens 0 and 3 are ∅; key mask "
      f"{enc0.key_mask(y_ex[None])[0].tolist()}")

# %% [markdown]
# **What ε_θ sees.** On four random layouts, at noisy z_t, four comparisons with ε_θ itself:
#
# 1. reversing the slots' order permutes the tokens, and changes ε_θ only by float rounding;
# 2. junk in an empty slot's box changes nothing at all;
# 3. a one-object layout in K = 3 slots gives the same ε_θ as the same object in an encoder with a single slot
#    (the same weights), so the padding behaves as if it were absent;
# 4. with the mask off (the UNet called with `context_mask=None`) the padded copies of ∅ get in, and ε_θ changes.

# %%
def order_and_padding(cond_unet) -> dict[str, float]:
    """max |Δε_θ| for the four comparisons above, on 4 random layouts at t = 100, 400, 700, 900."""
    enc = cond_unet.encoder
    g = torch.Generator().manual_seed(1)
    y4 = random_layouts(4, seed=7, cfg=LayoutConfig(max_objects=K)).to(device)  # (4, K, 5)
    z_t = torch.randn(4, *LATENT, generator=g).to(device)  # (4, 4, 16, 16)
    t = torch.tensor([100, 400, 700, 900], device=device)
    perm = torch.arange(K - 1, -1, -1)  # the slots reversed, empty ones included
    empty = y4[..., :1] == NO_OBJECT  # (4, K, 1)
    junk = torch.cat([y4[..., :1], torch.where(empty, torch.tensor([0.3, 0.1, 0.9, 0.8], device=device),
                                               y4[..., 1:])], -1)  # only the empty slots' boxes change
    one = enc.null_condition(1, device)  # (1, K, 5): all slots empty …
    one[0, 0] = y4[0, 0]  # … but the first, which holds layout 0's first object
    enc1 = LayoutEncoder(enc.num_classes, enc.dim, max_objects=1, num_freqs=enc.num_freqs).to(device)
    enc1.load_state_dict(enc.state_dict())  # the same weights: none of them depends on K
    with torch.no_grad():
        assert_close(enc(y4[:, perm])[:, 1:], enc(y4)[:, 1:][:, perm])  # the tokens follow the objects
        eps, eps_one = cond_unet(z_t, t, y=y4), cond_unet(z_t[:1], t[:1], y=one)  # (4, 4, 16, 16), (1, 4, 16, 16)
        return {"slots reversed": (cond_unet(z_t, t, y=y4[:, perm]) - eps).abs().max().item(),
                "junk in empty slots": (cond_unet(z_t, t, y=junk) - eps).abs().max().item(),
                f"1 object: {K} slots vs 1": (ConditionalUNet(cond_unet.unet, enc1)(z_t[:1], t[:1], y=one[:, :1])
                                              - eps_one).abs().max().item(),
                "the same, mask off": (cond_unet.unet(z_t[:1], t[:1], context=enc(one), context_mask=None)
                                       - eps_one).abs().max().item(),
                "std of ε_θ": eps.std().item()}


def show_checks(d: dict[str, float]) -> None:
    assert d["slots reversed"] < 1e-4 and d["junk in empty slots"] == 0 and d[f"1 object: {K} slots vs 1"] < 1e-4
    print("  ".join(f"{k}: {v:.1e}" for k, v in d.items()))


show_checks(order_and_padding(net))  # random weights
print("order: float rounding only; empty slots: invisible; the mask is what makes the padding invisible")
del net

# %% [markdown]
# ### 2.1 · The queries must know where they are
#
# The tokens say where each box is. For cross-attention to put a digit there, the latent pixel at (row, column) must
# issue a query that matches "the token whose box holds me", so the query has to carry the pixel's position. A
# convolution is the same at every position (translation-equivariant), so a UNet knows where a pixel is only
# through the zero padding at the image's borders, a signal that fades towards the centre. The first layout model
# of this course had nothing else, and it drew 54% of its boxes as the asked digit and left 28% of its ink outside
# every box (§6.1 compares it with the present one).
#
# The fix is CoordConv (Liu et al. 2018): give the network its coordinates as input. `UNetConfig(coord_freqs=F)`
# concatenates γ(x, y) of each latent pixel's centre to z_t, the same Fourier features as the boxes' (with F = 4 for
# the pixels: the shortest period is ¼ of the canvas, 4 latent pixels at 16 × 16). x = (column + ½)/W and y =
# (row + ½)/H are in canvas fractions from the top-left corner, as the boxes' are, so "x₀ ≤ x < x₁" picks exactly
# the latent pixels of a box. The channels are fixed, the same for every example, and cost 2·(2F + 1) = 18 input
# channels of the first convolution (5,184 weights). Below: the 18 channels at 16 × 16, and the box of the example
# layout's 7 read off the first two of them.

# %%
coords = coordinate_features(*LATENT[1:], preset.unet.coord_freqs)[0]  # (2·(2F + 1), 16, 16)
print(f"coord_freqs F = {preset.unet.coord_freqs}: {coords.shape[0]} coordinate channels at {tuple(coords.shape[1:])}")
fig, axes = plt.subplots(2, coords.shape[0] // 2, figsize=(13, 2.0))
names = ["{c}"] + [f"sin 2^{i}π·{{c}}" for i in range(preset.unet.coord_freqs)] + \
        [f"cos 2^{i}π·{{c}}" for i in range(preset.unet.coord_freqs)]  # fourier_features' order
for row, axis in enumerate("xy"):
    for j, name in enumerate(names):
        ax = axes[row, j]
        ax.imshow(coords[row * len(names) + j], cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(name.format(c=axis), fontsize=7)
        ax.set_axis_off()
fig.suptitle("γ(x) (top) and γ(y) (bottom) of every latent pixel, concatenated to z_t")
fig.tight_layout()
box7 = parse_layout(LAYOUT_EXAMPLE, max_objects=K)[0, 1:]  # the 7's (x0, y0, x1, y1)
inside = (coords[0] >= box7[0]) & (coords[0] < box7[2]) & (coords[len(names)] >= box7[1]) & \
         (coords[len(names)] < box7[3])
print(f"the 7's box {[round(v, 2) for v in box7.tolist()]} holds {int(inside.sum())} latent pixels: rows and columns "
      f"{inside.any(1).nonzero().ravel().tolist()} of 16")

# %% [markdown]
# ## 3 · Training, condition dropout and classifier-free guidance
#
# `presets.latent_mnist_layout` is the UNet of the attribute faces (notebook 06) on 4 latent channels and the 18
# coordinate channels of §2.1, with cross-attention at the 16 × 16 and 8 × 8 levels and the 4 × 4 middle. The loss is Eq. 3 with the layout as y.
# `recipes.train` runs the whole recipe (autoencoder, canvases, their latents, then this model), resumes an
# interrupted run and loads a finished one; `python -m minildm train latent-mnist-layout` is the same call.
# `recipes.shipped_or_train` takes the shipped weights on the fast path (and trains if they are missing).

# %%
model, ckpt_path, was_shipped = recipes.shipped_or_train("latent-mnist-layout", fast=FAST,
                                                         callback=viz.LiveLoss("L_LDM with layouts"))
model = model.to(device).eval()
unet, enc = model.unet, model.unet.encoder  # ConditionalUNet = ε_θ + τ_θ; τ_θ is a LayoutEncoder
assert model.max_objects == K
ckpt = load_checkpoint(ckpt_path)
if was_shipped:  # the export keeps the weights and the command, not the loss history
    trained_steps, trained_note = ckpt["step"], f"the shipped weights ({ckpt_path.name}; {ckpt['release']['note']})"
else:
    history = ckpt["history"]  # rows (step, loss, lr, grad_norm, seconds)
    trained_steps, trained_note = history[-1][0], f"{history[-1][4] / 60:.1f} min of recorded training, {ckpt_path}"
    viz.plot_loss(history, title="L_LDM with layouts")
print(f"{model.name}: {trained_steps:,} steps; {trained_note}")
print(f"batch {preset.train.batch_size}, {preset.n_train} training canvases")
print(f"parameters: ε_θ {sum(p.numel() for p in unet.unet.parameters()):,}, τ_θ "
      f"{sum(p.numel() for p in enc.parameters()):,}; latents {model.sample_shape}, K = {K} slots")
print("the checks of §2 on the trained ε_θ:")
show_checks(order_and_padding(unet))

# %% [markdown]
# **A live run.** On the fast path the model above was trained elsewhere. Here the same preset trains from scratch
# for a few dozen steps on 1,000 canvases (`recipes.live_run`, into `runs/<mode>/live/`), so that the loss is seen
# falling. At about 1.2 s a step on one thread this is all the fast path can afford; the shipped model had 3,000
# steps, and the live one is not measured.

# %%
if FAST:
    live_model, live_history = recipes.live_run("latent-mnist-layout", LIVE_STEPS, ae, n=1000,
                                                callback=viz.LiveLoss("L_LDM with layouts, live run"), progress=False)
    print(f"live run: {len(live_history)} steps in {live_history[-1][4]:.0f} s, loss {live_history[0][1]:.3f} → "
          f"{live_history[-1][1]:.3f}")

# %% [markdown]
# **Condition dropout.** During training each layout is replaced by the empty layout ∅ (every slot `NO_OBJECT`, so
# τ_θ gives ∅ alone) with probability p_uncond. The same network therefore also learns ε_θ(z_t, t, ∅), and
# sampling can extrapolate from it towards the layout: **classifier-free guidance** (Ho & Salimans 2021; notebook
# 05, §6):
#
# $$\tilde\varepsilon = \varepsilon_\theta(z_t, t, \varnothing) + s\,\big(\varepsilon_\theta(z_t, t, y) -
#   \varepsilon_\theta(z_t, t, \varnothing)\big).$$
#
# s = 1 is the conditional model alone. s > 1 pushes harder towards "this class, in this box", at the price of
# diversity and of a second network evaluation per step (the batch [y; ∅]). The preset's default is the scale the
# class model of notebook 05 works well with, not one chosen for layouts. §6 measures accuracy and placement at
# several scales and picks one.

# %%
null = enc.null_condition(1)[0].cpu()  # (K, 5): the empty layout
lay_train = layout_dataset(config.pick(smoke=64, cpu=500, gpu=1000), "train", seed=0).layouts  # (N, K, 5)
dropped = condition_dropout(lay_train, null, p=preset.train.p_uncond, generator=torch.Generator().manual_seed(0))
is_null = (dropped[..., 0] == NO_OBJECT).all(1)
print(f"p_uncond = {preset.train.p_uncond}: {is_null.float().mean():.3f} of {len(lay_train)} layouts became ∅; "
      f"∅'s key mask {enc.key_mask(null[None])[0].tolist()} (∅ alone)")
print(f"guidance scale: the model's default s = {model.guidance:g} (preset.guidance = {preset.guidance:g})")

# %% [markdown]
# ## 4 · Digits where you ask for them
#
# `parse_layout` reads a layout from text: objects separated by `;`, each `CLASS@x0,y0,x1,y1` in canvas fractions
# from the top-left corner. It refuses what the model never saw (overlapping boxes, more than K objects,
# coordinates outside [0, 1]). Each row below is one layout; each column is a different noise, so the same layout
# is drawn with different handwriting. Above each canvas, the digits asked for → what the judge reads in each box.
# The boxes are in the size range of the training boxes (0.31–0.56 of the canvas).

# %%
LAYOUTS = [LAYOUT_EXAMPLE,  # a 7 top left, a 2 bottom right
           "3@0.05,0.05,0.40,0.40;8@0.55,0.05,0.90,0.40;5@0.30,0.55,0.65,0.90",  # three digits
           "0@0.25,0.25,0.80,0.80",  # one large digit, centred
           "1@0.05,0.30,0.40,0.65;4@0.55,0.30,0.90,0.65"]  # side by side
N_SEEDS = config.pick(smoke=3, cpu=6, gpu=8)  # noises per layout
fig, axes = plt.subplots(len(LAYOUTS), N_SEEDS, figsize=(1.5 * N_SEEDS, 1.65 * len(LAYOUTS)), squeeze=False)
for r, text in enumerate(LAYOUTS):
    y = parse_layout(text, K, model.num_classes)[None].expand(N_SEEDS, -1, -1).clone()  # (N_SEEDS, K, 5)
    x = model.sample(N_SEEDS, sampler="ddpm", steps=STEPS, y=y, guidance=model.guidance, seed=4).cpu()
    read = read_objects(x, y, ev)  # (N_SEEDS, K): the judge's reading per box
    for j in range(N_SEEDS):
        ks = [k for k in range(K) if y[j, k, 0] != NO_OBJECT]
        asked, got = " ".join(str(int(y[j, k, 0])) for k in ks), " ".join(str(int(read[j, k])) for k in ks)
        show_canvas(axes[r, j], x[j], y[j], title=f"{asked} → {got}")
fig.suptitle(f"samples for chosen layouts (s = {model.guidance:g}, {STEPS} ancestral steps)")
fig.tight_layout()

# %% [markdown]
# The grid is drawn at the shipped scale, s = 2, the one §6 chooses. Every digit is drawn in its box, with every
# noise, and no digit appears where no box asked for one. The judge's reading above each canvas (asked → read, per
# box) matches on 22 of the 24 canvases. In the second three-digit canvas the 8 is read as a 2 and the 5 as a 3,
# and in the last row one 4 is closed at the top and read as a 9. Not every digit is well formed, but the misses
# are of shape, not of place. §6 counts them.

# %% [markdown]
# ## 5 · Editing one object at a time, the noise held fixed
#
# The same seed gives the same starting noise z_T and the same per-step noise for every call of the ancestral
# sampler (with the same batch size), so two layouts sampled with one seed differ only in their condition. Four
# edits of the example layout: move the 2 up, turn it into a 3, add a 4, remove the 2. **What should stay the
# same:** the digits that were not edited (the 7, and the 2 when a digit is added), and the empty background.
# **What cannot be promised:** every pixel of z_t attends to every token and the UNet's convolutions mix
# neighbours, so an edit reaches the whole canvas through ε_θ, and ancestral sampling may amplify small
# differences. The measurement below shows how local the edits are in practice: mean |Δ| (in [−1, 1] pixel units,
# against the unedited layout, same noise) inside the edited boxes (old and new position), in the boxes that were
# kept, and in the rest of the canvas.

# %%
EDITS = {"layout": LAYOUT_EXAMPLE,
         "move the 2 up": "7@0.05,0.05,0.45,0.45;2@0.55,0.05,0.95,0.45",
         "2 → 3": "7@0.05,0.05,0.45,0.45;3@0.55,0.50,0.95,0.95",
         "add a 4": LAYOUT_EXAMPLE + ";4@0.05,0.55,0.40,0.90",
         "remove the 2": "7@0.05,0.05,0.45,0.45"}
N_EDIT = config.pick(smoke=2, cpu=4, gpu=8)  # noises, one row each
EDIT_SEED = 5


def box_mask(rows, size: int = S) -> torch.Tensor:
    """(size, size) bool: the pixels inside any object row (class, x0, y0, x1, y1) of ``rows``."""
    m = torch.zeros(size, size, dtype=torch.bool)
    for c, x0, y0, x1, y1 in rows.tolist():
        if int(c) != NO_OBJECT:
            m[round(y0 * size):round(y1 * size), round(x0 * size):round(x1 * size)] = True
    return m


edit_y = {name: parse_layout(text, K, model.num_classes) for name, text in EDITS.items()}  # name → (K, 5)
edit_x = {name: model.sample(N_EDIT, sampler="ddpm", steps=STEPS, y=y[None].expand(N_EDIT, -1, -1).clone(),
                             guidance=model.guidance, seed=EDIT_SEED, batch_size=N_EDIT).cpu()
          for name, y in edit_y.items()}  # name → (N_EDIT, 1, 64, 64), the same noise for every layout
again = model.sample(N_EDIT, sampler="ddpm", steps=STEPS, y=edit_y["layout"][None].expand(N_EDIT, -1, -1).clone(),
                     guidance=model.guidance, seed=EDIT_SEED, batch_size=N_EDIT).cpu()
print(f"the same layout and seed twice: max |Δ| = {(again - edit_x['layout']).abs().max():.1e} (the noise is fixed)")

# %%
base = edit_y["layout"]
print(f"{'edit':>14} {'edited boxes':>13} {'kept boxes':>11} {'background':>11} {'background ÷ edited':>20}")
for name, y in edit_y.items():
    if name == "layout":
        continue
    changed = [k for k in range(K) if not torch.equal(y[k], base[k])]  # the slots the edit touched
    edited = box_mask(torch.cat([base[changed], y[changed]]))  # old and new boxes of those slots
    kept = box_mask(base[[k for k in range(K) if k not in changed]]) & ~edited
    rest = ~edited & ~kept
    diff = (edit_x[name] - edit_x["layout"]).abs()[:, 0]  # (N_EDIT, 64, 64)
    d_in, d_kept, d_out = (diff[:, m].mean().item() if m.any() else float("nan") for m in (edited, kept, rest))
    print(f"{name:>14} {d_in:>13.3f} {d_kept:>11.3f} {d_out:>11.3f} {d_out / d_in if d_in > 0 else math.nan:>20.2f}")
fig, axes = plt.subplots(N_EDIT, len(EDITS), figsize=(1.7 * len(EDITS), 1.7 * N_EDIT), squeeze=False)
for j, (name, y) in enumerate(edit_y.items()):
    for i in range(N_EDIT):
        show_canvas(axes[i, j], edit_x[name][i], y, title=name if i == 0 else None)
fig.suptitle("one edit per column, one noise per row")
fig.tight_layout()

# %% [markdown]
# The edits are **nearly local**. With the noise fixed, the background changes by 0.02–0.05 of what the edited
# box does (mean |Δ| 0.008–0.026 against 0.47–0.67), and the boxes that were kept by 0.04–0.13 of it. In the
# figure, moving the 2 draws a 2 in the new box and leaves the old one empty in all four rows. 2 → 3 draws a 3 in
# the same box, and removing the 2 leaves its box empty. Adding a 4 draws a 4-like digit in its box in every row,
# malformed in the first, and in two rows a stroke reaches out of it towards the 2. The 7, whose token does not
# change, stays nearly the same in every column. The first model of this course, without the coordinate channels of
# §2.1, changed its background by 0.43–0.82 of what it changed in the edited box: its tokens steered the whole
# canvas.

# %% [markdown]
# ## 6 · Measured: what is drawn, and where
#
# n random layouts (`random_layouts`: boxes placed as in the training canvases, classes drawn uniformly), sampled
# with 50 ancestral steps (5 in smoke mode), then four measures, each with a 95% bootstrap interval:
#
# | measure | function | per | target (issue 17) |
# |---|---|---|---|
# | judge accuracy: the digit read in its box is the one asked for | `read_objects` + `Evaluator` | object | ≥ 90% |
# | IoU of the box with the bounding box of its ink (searched 10% beyond it) | `ink_box_iou` | object | ≥ 0.6 |
# | share of the canvas's ink outside every box | `ink_outside` | canvas | ≤ 10% |
# | digit count right (connected components of the ink) | `count_digits` | canvas | — |
#
# The same four measures on real test canvases are the **ceiling**. IoU is below 1 even there: a digit does not
# fill its square box (a 1 is narrow). The guidance scale is **chosen on one seed and reported on another**,
# following `scripts/measure_layout.py`. Every scale is measured on seed 0's layouts and noise; the rule is fidelity
# first, the smallest scale that meets all three targets, else the most accurate. The chosen scale is then measured
# again on seed 1, with new layouts and new noise. The number reported is not the best of several noisy ones.
# `scripts/measure_layout.py` runs the same measurement at n = 500.

# %%
N_MEAS = config.pick(smoke=8, cpu=150 if FAST else 200, gpu=1000)  # layouts per row (fewer on the fast path)
GUIDANCES = config.pick(smoke=(1.0, 2.0), cpu=(1.0, 2.0, 3.0), gpu=(1.0, 1.5, 2.0, 3.0))
SEED_CHOOSE, SEED_REPORT = 0, 1
BATCH = config.pick(smoke=8, cpu=100, gpu=500)
TARGETS = {"accuracy": (0.9, "≥"), "iou": (0.6, "≥"), "outside": (0.1, "≤")}
cfg = LayoutConfig(max_objects=K)


def mean_of(values, seed: int) -> uncertainty.Estimate:
    """The mean of the finite values with its 95% bootstrap interval (NaN: a canvas without ink, an empty slot)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2:  # too few for an interval (smoke mode)
        return uncertainty.Estimate(float(v.mean()) if v.size else float("nan"), float("nan"), float("nan"),
                                    "too few", int(v.size))
    return uncertainty.bootstrap_mean(v, n_boot=N_BOOT, seed=seed)


def measure(images, layouts, seed: int) -> dict:
    """The four measures of canvases (N, 1, S, S) against their layouts (N, K, 5)."""
    valid = layouts[..., 0] != NO_OBJECT  # (N, K)
    right = (read_objects(images, layouts, ev) == layouts[..., 0].long())[valid]  # (objects,) bool
    return dict(accuracy=mean_of(right, seed), iou=mean_of(ink_box_iou(images, layouts)[valid], seed),
                outside=mean_of(ink_outside(images, layouts), seed),
                count=mean_of(count_digits(images) == valid.sum(1), seed))


def sample_and_measure(layouts, s: float, seed: int) -> dict:
    t0 = time.perf_counter()
    x = model.sample(len(layouts), sampler="ddpm", steps=STEPS, y=layouts, guidance=s, seed=seed,
                     batch_size=BATCH).cpu()  # the same noise for every s: one seed
    return dict(measure(x, layouts, seed), images=x, seconds=time.perf_counter() - t0)


def row(label, s, seed, r) -> None:
    print(f"{label:>28} {s if s is not None else '—':>4} {seed:>4} {r['accuracy']:>24.1%} {r['iou']:>22.3f} "
          f"{r['outside']:>22.1%} {r['count']:>24.1%} {r['seconds']:>7.0f}")


HEADER = (f"{'':>28} {'s':>4} {'seed':>4} {'judge accuracy':>24} {'IoU':>22} {'ink outside':>22} "
          f"{'count right':>24} {'seconds':>7}")
layouts_choose = random_layouts(N_MEAS, seed=SEED_CHOOSE, cfg=cfg)  # (N_MEAS, K, 5)
print(f"n = {N_MEAS} layouts, {int((layouts_choose[..., 0] != NO_OBJECT).sum())} objects, {STEPS} ancestral steps")
print(HEADER)
sweep = {}
for s in GUIDANCES:
    sweep[s] = sample_and_measure(layouts_choose, s, SEED_CHOOSE)
    row("sweep (choose seed)", s, SEED_CHOOSE, sweep[s])

# %%
def choose_guidance(sweep: dict) -> float:
    """Fidelity first: the smallest scale that meets all three targets, else the most accurate (smaller on a tie)."""
    good = [s for s in sorted(sweep) if sweep[s]["accuracy"].value >= TARGETS["accuracy"][0]
            and sweep[s]["iou"].value >= TARGETS["iou"][0] and sweep[s]["outside"].value <= TARGETS["outside"][0]]
    return good[0] if good else max(sorted(sweep), key=lambda s: sweep[s]["accuracy"].value)


s_star = choose_guidance(sweep)
layouts_report = random_layouts(N_MEAS, seed=SEED_REPORT, cfg=cfg)  # new layouts …
report = sample_and_measure(layouts_report, s_star, SEED_REPORT)  # … and new noise
t0 = time.perf_counter()
ceiling_data = layout_dataset(N_MEAS, "test", seed=SEED_REPORT, cfg=cfg)  # real test canvases
ceiling = dict(measure(ceiling_data.images, ceiling_data.layouts, SEED_REPORT), seconds=time.perf_counter() - t0)
print(HEADER)
row("chosen s, report seed", s_star, SEED_REPORT, report)
row("real test canvases (ceiling)", None, SEED_REPORT, ceiling)
if config.get_mode() == "smoke":
    print(f"SMOKE MODE: a {trained_steps}-step model and {N_MEAS} layouts; these numbers say nothing about the "
          "method")

# %%
print(f"targets at s = {s_star:g} (chosen on seed {SEED_CHOOSE}, measured on seed {SEED_REPORT}, n = {N_MEAS}):")
for key, (target, sense) in TARGETS.items():
    e, fmt = report[key], ".3f" if key == "iou" else ".1%"
    margin = e.value - target if sense == "≥" else target - e.value  # > 0: on the right side of the target
    sure = (e.low >= target if sense == "≥" else e.high <= target) if math.isfinite(e.low) else False
    print(f"  {key:>8} {sense} {target:{fmt}}: {'met   ' if margin >= 0 else 'MISSED'} by {abs(margin):{fmt}} "
          f"({e:{fmt}}; {'the whole interval is' if sure else 'the interval is not all'} on the right side); "
          f"ceiling {ceiling[key]:{fmt}}")
fig, axes = plt.subplots(2, 8, figsize=(13, 3.6))
for j, ax in enumerate(axes.flat[:min(16, N_MEAS)]):
    show_canvas(ax, report["images"][j], layouts_report[j])
for ax in axes.flat[min(16, N_MEAS):]:
    ax.set_axis_off()
fig.suptitle(f"the first report samples (s = {s_star:g}, seed {SEED_REPORT}), boxes asked for in orange")
fig.tight_layout()

# %% [markdown]
# Guidance helps every measure, monotonically. From s = 1 to 2 to 3 on the choosing seed, judge accuracy goes from
# 64.0% to 91.7% to 97.1%, IoU from 0.605 to 0.669 to 0.696, and ink outside from 7.1% to 3.7% to 3.1%. s = 2 is
# the smallest scale that meets all three targets on seed 0, so the rule picks it; a larger one would only trade
# diversity away. Re-measured on new layouts and new noise (seed 1), **every target is met**. 91.6% [88.6, 94.6] of
# the boxes hold the requested digit, against a target of 90% and 98.7% on real canvases, though the interval
# reaches below the target. IoU is 0.691 [0.676, 0.707], against a target of 0.6 and 0.704 on real canvases. 3.7%
# [3.2, 4.4] of the ink is outside every box, against a target of 10% and exactly 0 on real canvases. The digit
# count is right on 92.7% of the canvases. These are n = 150 layouts per row, the fast path's size, so the
# accuracy interval is about ±3 points.
#
# The intervals shrink like 1/√n; `scripts/measure_layout.py` (n = 500 per row, the same rule and seeds, scales 2,
# 3 and 4) gives the table to quote (`benchmarks/RESULTS.md`, "Layouts"). It agrees with the rows above: s = 2 is
# chosen there too, and on seed 1 it gives 90.8% [89.0, 92.5], IoU 0.679 and 3.8% outside. The accuracy target is
# met by 0.8 points at s = 2; s = 3 gives 96–97%.

# %% [markdown]
# ### 6.1 · With and without coordinate channels, at equal budget
#
# The first layout model of this course had no coordinate channels (§2.1). `scripts/layout_study.py` trains the
# preset with and without them at the same budget (3,000 steps of 64 canvases, the same canvases, lr and EMA), the
# coordinate model on two training seeds, and measures every model on the same 500 layouts and noise at s = 3, the
# first model's chosen scale. The table is that recorded run (`benchmarks/layout_study.json`), read here, not
# sampled: 54.2% of the boxes right without coordinates, 96.1% and 97.6% with them; ink outside the boxes 27.6%
# against 3.1% and 2.2%; IoU 0.495 against 0.705 and 0.716. The two training seeds differ by 1.5 points of
# accuracy, and the gap to the first model is 42 points. The training loss does not show the difference: both
# runs end near 0.050.

# %%
study = json.loads((Path(minildm.__file__).resolve().parent.parent / "benchmarks" / "layout_study.json").read_text())
print(f"recorded: scripts/layout_study.py, n = {study['n']} layouts (seed {study['seed']}), s = {study['guidance']:g}, "
      f"{study['steps']:,} training steps each; 95% bootstrap intervals")
print(f"{'model':<56} {'judge accuracy':>22} {'IoU':>22} {'ink outside':>22} {'count right':>11}")
for label, r in sorted(study["rows"].items(), key=lambda kv: not kv[0].startswith("no ")):  # the first model first
    cells = [f"{r[k]['value']:.1%} [{r[k]['low']:.1%}, {r[k]['high']:.1%}]" if k != "iou" else
             f"{r[k]['value']:.3f} [{r[k]['low']:.3f}, {r[k]['high']:.3f}]" for k in ("accuracy", "iou", "outside")]
    print(f"{label:<56} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} {r['count']['value']:>11.1%}")

# %% [markdown]
# ## 7 · Where is each object token read?
#
# Notebook 05 found that a word's attention is mostly global. Here every object token has a place it *should* be
# read, its box, so the question can be asked exactly. `attention_in_boxes` gives, per object, the share of its
# token's attention mass that falls inside its box, and the share a token attending uniformly would get (the box's
# area as a fraction of the canvas). share / chance = 1 means the token is read no more in its box than anywhere
# else.
#
# Cross-attention is captured while sampling, as `scripts/measure_layout.py` does. With guidance the batch is
# [y; ∅], so `AttentionStore(rows=N, mean_heads=True)` keeps only the conditional rows, averaged over heads, as each
# record arrives. That is what `token_maps` would give, at 2·heads times less memory. The **best layer** is chosen on
# one half of the canvases and reported on the other (`uncertainty.split_halves`).

# %%
N_ATT = config.pick(smoke=4, cpu=64, gpu=256)  # canvases whose attention is captured (one batch)
ALL = "all layers"
y_att = random_layouts(N_ATT, seed=2, cfg=cfg)  # (N_ATT, K, 5): new layouts
with capture_attention(unet, which="cross", store=AttentionStore(rows=N_ATT, mean_heads=True)) as store:
    x_att = model.sample(N_ATT, sampler="ddpm", steps=STEPS, y=y_att, guidance=s_star, seed=2,
                         batch_size=N_ATT).cpu()
print(f"{len(store.records)} records = {len(store.names)} cross-attention layers × {len(store.steps)} steps; one "
      f"record {tuple(store.records[0].probs.shape)} = (canvases, head mean, queries, 1 + K tokens)")
valid_att = y_att[..., 0] != NO_OBJECT  # (N_ATT, K)
ratio = {}  # layer → (N_ATT, K) share / chance, NaN in empty slots
for name in store.names + [ALL]:
    maps = store.token_maps(layers=[name] if name != ALL else "all")  # (N_ATT, 1 + K, h, w)
    share, chance = attention_in_boxes(maps, y_att)
    ratio[name] = share / chance

# %%
half_a, half_b = uncertainty.split_halves(N_ATT, seed=0)  # choose on a, report on b
grid = {name: store.select(name)[0].size for name in store.names}
best = max(store.names, key=lambda n: np.nanmean(ratio[n][half_a].numpy()))
print(f"share / chance of object tokens in their boxes (1 = uniform), s = {s_star:g}, {N_ATT} canvases:")
print(f"{'layer':>32} {'grid':>6} {'half a (choose)':>16} {'half b (report)':>26}")
for name in store.names + [ALL]:
    g_txt = "×".join(map(str, grid[name])) if name in grid else "mean"
    print(f"{name + (' (best)' if name == best else ''):>32} {g_txt:>6} "
          f"{np.nanmean(ratio[name][half_a].numpy()):>16.2f} {mean_of(ratio[name][half_b], 0):>26.2f}")
print(f"best layer, chosen on half a, on half b: {mean_of(ratio[best][half_b], 0):.2f}")

# %% [markdown]
# Each object token's map from the best layer, over the canvas it drew, with that object's box. ∅'s map is in the
# second column: it should be read where there is no object.

# %%
n_show = min(4, N_ATT)
maps_best = store.token_maps(size=(S, S), layers=[best], rows=slice(0, n_show))  # (n_show, 1 + K, 64, 64)
fig, axes = plt.subplots(n_show, 2 + K, figsize=(1.7 * (2 + K), 1.8 * n_show), squeeze=False)
for i in range(n_show):
    show_canvas(axes[i, 0], x_att[i], y_att[i], title="sample" if i == 0 else None)
    show_canvas(axes[i, 1], maps_best[i, 0], cmap="inferno", vmin=None, vmax=None, title="∅" if i == 0 else None)
    for k in range(K):
        ax = axes[i, 2 + k]
        if not valid_att[i, k]:
            ax.set_axis_off()
            continue
        show_canvas(ax, maps_best[i, 1 + k], y_att[i, k:k + 1], cmap="inferno", vmin=None, vmax=None,
                    title=f"token {1 + k}: {int(y_att[i, k, 0])}, ×{ratio[best][i, k]:.1f}")
fig.suptitle(f"cross-attention per token, {best}: each map scaled to its own range, share / chance in the titles")
fig.tight_layout()
del store  # the records: tens of MB in cpu mode

# %% [markdown]
# Attention localises in the decoder's two 8 × 8 blocks (2.90 and 2.57 on half b) and much less elsewhere
# (1.10–1.33 at 16 × 16, in the encoder's 8 × 8 block and the 4 × 4 middle). The best layer, chosen on half a, is
# the decoder's first 8 × 8 block (`up.2`). On half b it puts 2.90× [2.76, 3.04] a uniform map's share of each
# token's attention inside its box, against 1.68× for all layers averaged; the first model, without coordinates,
# had 1.95× and 1.35×. In the maps each object token is read on its own box, and ∅ on the background around the
# boxes. The lowest ratio in the figure (×1.8) belongs to the largest box: a uniform map already puts a large share
# there, so there is less room above chance.

# %% [markdown]
# ## What we measured
#
# Printed from this run:

# %%
print(f"mode {config.get_mode()}, {'fast' if FAST else 'full'} path, {trained_steps:,} training steps, "
      f"{STEPS} ancestral steps")
print(f"guidance chosen on seed {SEED_CHOOSE} from {GUIDANCES}: s = {s_star:g}")
print(f"at s = {s_star:g}, seed {SEED_REPORT}, n = {N_MEAS}: judge accuracy {report['accuracy']:.1%}, IoU "
      f"{report['iou']:.3f}, ink outside {report['outside']:.1%}, count right {report['count']:.1%}")
print(f"real test canvases: accuracy {ceiling['accuracy']:.1%}, IoU {ceiling['iou']:.3f}, ink outside "
      f"{ceiling['outside']:.1%}, count right {ceiling['count']:.1%}")
print(f"attention: best layer {best} (chosen on half a), share / chance on half b "
      f"{mean_of(ratio[best][half_b], 0):.2f}; all layers {mean_of(ratio[ALL][half_b], 0):.2f}")

# %% [markdown]
# * **Drawing the asked digits in their boxes**: at the chosen s = 2, 92% of the boxes hold their digit, IoU is
#   0.69, and 3.7% of the ink falls outside the boxes (n = 150). Real canvases score 99%, 0.70 and 0%, and the
#   targets are 90%, 0.6 and 10%: all three are met, the accuracy one narrowly. At n = 500
#   (`scripts/measure_layout.py`) the figures are 90.8%, 0.679 and 3.8%.
# * **Coordinate channels** (§2.1, §6.1, recorded): at the same budget and s = 3, 54.2% of the boxes right without
#   them, 96.1% and 97.6% with them on two training seeds.
# * **Guidance**: s = 1 → 3 takes the accuracy from 64% to 97%. s = 2, the smallest scale that meets the targets,
#   was chosen on one seed and reported on another. The shipped weights store it as their default.
# * **Edits with the noise fixed**: nearly local. The background changes by 0.02–0.05 of what the edited box does.
# * **A live run** of the same preset from scratch: the loss falls from 1.0 to 0.23 in 40 steps (46 s on one
#   thread); the shipped model had 3,000.
# * **Attention**: the decoder's first 8 × 8 block reads each token inside its box at 2.90× chance (chosen on one
#   half of the canvases, reported on the other), and ∅ is read on the background.
#
# **What is left out.** LDM's layout models are trained on COCO and OpenImages (scenes of many object classes,
# with overlapping boxes, rather than isolated digits), with a transformer τ_θ over the layout's tokens. Here the
# objects never overlap (`parse_layout` refuses overlaps the model never saw), the training boxes are square
# (non-square boxes parse, but they are outside the training distribution), and τ_θ has no mixing between tokens,
# chosen so that the per-token attention maps of §7 belong to one object each. Also left out: a Fréchet distance
# or a per-class diversity measure for the layout samples (what guidance trades away here is only seen, not
# measured); the grounding variants of later work (GLIGEN's gated self-attention over box tokens, Li et al. 2023);
# and editing through attention (prompt-to-prompt, Hertz et al. 2022), as opposed to editing the condition with
# the noise held fixed as in §5.
#
# ## Exercises
#
# **1.** The model has K = 3 slots. For the two-digit layout of §4, `"7@0.05,0.05,0.45,0.45;2@0.55,0.50,0.95,0.95"`,
# how many tokens does τ_θ hand to cross-attention, and how many of them may be attended to?

# %%
answer_1 = None  # a tuple of two ints: (tokens, attendable tokens)
check("09.num_tokens", answer_1)

# %% [markdown]
# **2.** How many numbers does γ give for one box (its 4 coordinates) with F = 8 frequencies, i.e. how wide is the
# first layer of `LayoutEncoder.box_mlp`?

# %%
answer_2 = None  # an int
check("09.fourier_dim", answer_2)

# %% [markdown]
# **3.** A token that attends uniformly over the canvas: what share of its attention falls in a square box of side
# 0.4 (in canvas fractions), i.e. the "chance" of `attention_in_boxes`?

# %%
answer_3 = None  # a float in [0, 1]
check("09.chance_share", answer_3)

# %% [markdown]
# **4.** The UNet reads a box through its coordinate channels (§2.1). How many latent pixels of the 16 × 16 grid lie
# inside the box of `"3@0.1,0.1,0.5,0.5"` (a square of side 0.4), by the rule x₀ ≤ x < x₁, y₀ ≤ y < y₁ on their
# centres?

# %%
answer_4 = None  # an int
check("09.box_pixels", answer_4)

# %% [markdown]
# **5.** (Open.) Sample the example layout with the two boxes swapped in the string
# (`"2@0.55,0.50,0.95,0.95;7@0.05,0.05,0.45,0.45"`) and the same seed. §2 says ε_θ cannot tell; is the image the
# same, pixel for pixel? Then sample a layout with a *non-square* box (`"1@0.40,0.10,0.60,0.90"`): does the model
# stretch the digit, or draw a square one inside?
#
# **6.** (Open.) Turn the key mask off (`unet.encoder.key_mask = lambda y: torch.ones(len(y), 1 + K, dtype=bool)`)
# and re-run §4 (`del unet.encoder.key_mask` puts the mask back). Which layouts change most: those with one object
# or those with three? Why?
