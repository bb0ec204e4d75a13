"""Answer checks for the exercises at the end of each notebook.

Each check computes the expected answer with the library (nothing is hard-coded). A right answer passes silently
(the cell shows ``True``), a wrong one prints the hint, and an exercise left as ``None`` prints nothing at all, so
"Run all" always works and the hint never gives the answer away before you have tried.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from . import schedule
from .attention import SpatialTransformer
from .attention_maps import capture_attention
from .autoencoder import AutoencoderConfig, AutoencoderKL
from .concat import resize_mask
from .conditioning import LayoutEncoder, fourier_features
from .conditions import parse_layout
from .distributions import DiagonalGaussian
from .faces import FACE_ATTRIBUTES, attention_localisation, attribute_vector
from .guidance import guided
from .layers import coordinate_features
from .layout import attention_in_boxes
from .pairs import consistency
from .presets import autoencoder_mnist, latent_mnist, latent_mnist_class, latent_mnist_inpaint
from .samplers import ddim_sample, ddim_step, ddpm_sample
from .solvers import heun_sample, sigma_ladder
from .semantic import semantic_condition
from .spacing import SPACINGS, spaced_timesteps
from .toyfaces import PARTS

_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {}


def exercise(name: str, hint: str):
    """Register ``fn(answer) -> bool`` as the check for exercise ``name``."""
    def register(fn: Callable[[Any], bool]):
        _CHECKS[name] = (fn, hint)
        return fn
    return register


def check(name: str, answer: Any) -> bool | None:
    """Check a learner's answer: ``True`` (silently) when right, ``False`` and the hint when wrong, ``None`` and
    nothing printed when not attempted (``answer is None``)."""
    if name not in _CHECKS:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(_CHECKS))}")
    fn, hint = _CHECKS[name]
    if answer is None:
        return None
    if bool(fn(answer)):
        return True
    print(f"[{name}] not yet. Hint: {hint}")
    return False


# --- notebook 01 ------------------------------------------------------------------------------------------

@exercise("01.alpha_bar_half", "ᾱ is a cumulative product of (1 − β); index 499 is the paper's t = 500.")
def _(answer) -> bool:
    expected = schedule.make_schedule("linear", 1000).alpha_bar[499].item()
    return abs(float(answer) - expected) < 1e-6


@exercise("01.snr_below_one", "find the first index t where SNR(t) = ᾱ_t/(1 − ᾱ_t) < 1, for the cosine schedule, T = 1000.")
def _(answer) -> bool:
    s = schedule.make_schedule("cosine", 1000).snr
    return int(answer) == int(torch.nonzero(s < 1)[0].item())


@exercise("01.q_sample", "x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε; gather ᾱ at t and reshape it to (B, 1, 1, 1).")
def _(fn) -> bool:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 1, 8, 8, generator=g)
    t = torch.randint(0, 1000, (8,), generator=g)
    eps = torch.randn(8, 1, 8, 8, generator=g)
    ab = schedule.make_schedule("linear", 1000).alpha_bar
    return torch.allclose(fn(x0, t, ab, eps).double(), schedule.q_sample(x0, t, ab, eps).double(), atol=1e-5)


@exercise("01.more_signal", "the signal left in x_t is √ᾱ_t: read both curves of the first figure at t = 500 "
                            "(index 499), or compare make_schedule(name, 1000).alpha_bar[499] for the two names.")
def _more_signal(answer) -> bool:
    kept = {name: schedule.make_schedule(name, 1000).alpha_bar[499].item() for name in ("linear", "cosine")}
    return str(answer).strip().lower() == max(kept, key=kept.get)


# --- notebook 02 ------------------------------------------------------------------------------------------

@exercise("02.posterior_variance", "β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t, with ᾱ_{t−1} = sched.alpha_bar_prev[t].")
def _(answer) -> bool:
    s = schedule.make_schedule("linear", 1000)
    t = torch.tensor([10])
    _, var = schedule.q_posterior(torch.zeros(1), torch.zeros(1), t, s)
    return abs(float(answer) - var.item()) < 1e-9


@exercise("02.ddim_step", "x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t, then x_s = √ᾱ_s x̂_0 + √(1−ᾱ_s) ε̂ (DDIM Eq. 12, σ = 0).")
def _(fn) -> bool:

    g = torch.Generator().manual_seed(0)
    x_t, eps = torch.randn(4, 1, 4, 4, generator=g), torch.randn(4, 1, 4, 4, generator=g)
    ab = schedule.make_schedule("linear", 1000).alpha_bar
    want, _ = ddim_step(x_t, torch.full((4,), 500), torch.full((4,), 480), eps, ab, eta=0.0)
    got = fn(x_t, eps, ab[500].float(), ab[480].float())
    return got is not None and torch.allclose(torch.as_tensor(got).float(), want.float(), atol=1e-5)


def _sampled_twice(name: str) -> bool:
    """Whether sampler ``name`` returns the same x_0 from the same x_T under two different noise generators."""
    sched = schedule.make_schedule("linear", 1000)

    def model(x_t, t):  # a stand-in ε_θ: any fixed function of (x_t, t) will do
        return 0.5 * x_t

    x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    outs = []
    for seed in (1, 2):
        g = torch.Generator().manual_seed(seed)
        if name == "ddpm":
            outs.append(ddpm_sample(model, x_T, sched, timesteps=torch.arange(999, -1, -50), generator=g))
        else:
            outs.append(ddim_sample(model, x_T, sched, steps=20, eta=0.0 if name == "ddim_eta0" else 1.0,
                                    generator=g))
    return torch.equal(outs[0], outs[1])


@exercise("02.same_digit", "a sampler forgets x_T exactly when it adds fresh noise on the way down: which of the three "
                           "adds none? (Answer with a set of names.)")
def _same_digit(answer) -> bool:
    names = {answer} if isinstance(answer, str) else set(answer)
    return names == {n for n in ("ddpm", "ddim_eta0", "ddim_eta1") if _sampled_twice(n)}


# --- notebook 03 ------------------------------------------------------------------------------------------

@exercise("03.kl_value", "½(μ² + σ² − 1 − log σ²) with μ = 1 and σ² = 0.25.")
def _(answer) -> bool:

    q = DiagonalGaussian(torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 0.25).log())
    return abs(float(answer) - q.kl().item()) < 1e-4


@exercise("03.pixels_per_latent", "the latent is (32/f)×(32/f)×4 numbers; divide 32·32 pixels by that.")
def _(answer) -> bool:

    cfg = autoencoder_mnist("cpu", f=8).ae
    return abs(float(answer) - 32 * 32 / ((32 // cfg.f) ** 2 * cfg.z_channels)) < 1e-6


@exercise("03.precise_or_shifted", "KL = ½ Σ (μ² + σ² − 1 − log σ²): which term is large when σ² = 10⁻⁴? Compute "
                                   "DiagonalGaussian(mean, logvar).kl() for both if unsure.")
def _precise_or_shifted(answer) -> bool:
    precise = DiagonalGaussian(torch.zeros(1, 1, 1, 1), torch.full((1, 1, 1, 1), 1e-4).log()).kl().item()
    shifted = DiagonalGaussian(torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)).kl().item()
    return str(answer).strip().lower() == ("precise" if precise > shifted else "shifted")


# --- notebook 04 ------------------------------------------------------------------------------------------

@exercise("04.positions", "count positions, not numbers: (32·32) / (8·8); the channels do not change the grid.")
def _positions(answer) -> bool:
    side = latent_mnist().image_size // latent_mnist().f
    return int(answer) == (32 * 32) // (side * side)


@exercise("04.latent_shape", "(z_channels, H/f, W/f): the encoder halves the grid log2(f) times.")
def _latent_shape(answer) -> bool:
    ae = AutoencoderKL(AutoencoderConfig(in_channels=3, base_channels=8, channel_mult=(1, 2, 2), z_channels=3))
    with torch.no_grad():
        shape = tuple(ae.encode(torch.zeros(1, 3, 64, 64)).mode().shape[1:])
    return tuple(int(a) for a in answer) == shape


@exercise("04.snr_unscaled", "diffusing σ_z·u for a unit-variance u, SNR(t) = σ_z² ᾱ_t / (1 − ᾱ_t): the first index "
                             "where 0.09 · schedule.make_schedule('linear', 1000).snr falls below 1.")
def _snr_unscaled(answer) -> bool:
    snr = 0.3 ** 2 * schedule.make_schedule("linear", 1000).snr
    return int(answer) == int(torch.nonzero(snr < 1)[0].item())


# --- notebook 05 ------------------------------------------------------------------------------------------

@exercise("05.probs_shape", "one query per pixel of the 8×8 grid, one key per prompt token, one map per head.")
def _probs_shape(answer) -> bool:
    st = SpatialTransformer(32, context_dim=16, heads=4)
    with capture_attention(st, which="cross") as store, torch.no_grad():
        st(torch.zeros(1, 32, 8, 8), torch.zeros(1, 5, 16))
    return tuple(int(a) for a in answer) == tuple(store.records[0].probs.shape[1:])


@exercise("05.cfg", "ε̃ = ε_∅ + s·(ε_y − ε_∅): start from the unconditional prediction, move s times the difference.")
def _cfg(fn) -> bool:

    g = torch.Generator().manual_seed(0)
    table = torch.randn(3, 2, 4, 4, generator=g)  # a fake ε_θ: a fixed prediction per condition

    def model(x_t, t, y):
        return x_t + table[y]

    x_t, y, null = torch.randn(2, 2, 4, 4, generator=g), torch.tensor([0, 1]), torch.tensor([2, 2])
    for s in (0.0, 1.0, 2.5):
        got = fn(model(x_t, 0, y), model(x_t, 0, null), s)
        if got is None or not torch.allclose(torch.as_tensor(got), guided(model, s, y, null)(x_t, torch.zeros(2)),
                                             atol=1e-5):
            return False
    return True


@exercise("05.null_per_batch", "each example is dropped independently with probability p_uncond: the mean is p·B.")
def _null_per_batch(answer) -> bool:
    cfg = latent_mnist_class("cpu").train
    return abs(float(answer) - cfg.p_uncond * cfg.batch_size) < 0.05


@exercise("05.s_for_w", "expand (1 + w) ε_y − w ε_∅ and match it with ε_∅ + s (ε_y − ε_∅): s is a function of w.")
def _s_for_w(answer) -> bool:
    g = torch.Generator().manual_seed(0)
    table = torch.randn(2, 1, 4, 4, generator=g)  # a fake ε_θ: one fixed prediction per condition (0: y, 1: ∅)

    def model(x_t, t, y):
        return x_t + table[y]

    x_t, y, null = torch.randn(1, 1, 4, 4, generator=g), torch.tensor([0]), torch.tensor([1])
    w = 1.0
    ho_salimans = (1 + w) * model(x_t, 0, y) - w * model(x_t, 0, null)
    return torch.allclose(guided(model, float(answer), y, null)(x_t, torch.zeros(1)), ho_salimans, atol=1e-6)


# --- notebook 06 ------------------------------------------------------------------------------------------

@exercise("06.attribute_vector", "faces.attribute_vector(names, Smiling=1, Eyeglasses=1): the rest stay 2 (∅).")
def _attribute_vector(answer) -> bool:
    want = attribute_vector(FACE_ATTRIBUTES, Smiling=1, Eyeglasses=1)
    got = torch.as_tensor(answer)
    return got.shape == want.shape and bool((got.long() == want).all())


@exercise("06.uniform_ratio", "a token that attends evenly puts inside a region the region's share of the image's area; "
                              "compare that with how attention_maps.region_share defines chance")
def _uniform_ratio(answer) -> bool:
    maps = torch.full((2, len(FACE_ATTRIBUTES), 16, 16), 1 / 256)  # every token attends evenly
    share, chance = attention_localisation(maps, FACE_ATTRIBUTES)
    i = FACE_ATTRIBUTES.index("Eyeglasses")
    return abs(float(answer) - (share[i] / chance[i]).item()) < 1e-6


# --- notebook 07 ------------------------------------------------------------------------------------------

@exercise("07.heun_nfe", "two slopes a step (the Euler predictor's and the corrector's), except on the last step, "
                         "to σ = 0, which has no slope to average with.")
def _heun_nfe(answer) -> bool:
    calls = []

    def model(x_t, t):  # counts its evaluations
        calls.append(1)
        return torch.zeros_like(x_t)

    heun_sample(model, torch.zeros(1, 1, 2, 2), schedule.make_schedule("linear", 1000), steps=10)
    return int(answer) == len(calls)


@exercise("07.starts_at_T", "print spacing.spaced_timesteps(1000, 10, name)[0] for each name in spacing.SPACINGS; "
                            "more than one may start at 999.")
def _starts_at_T(answer) -> bool:
    names = {answer} if isinstance(answer, str) else set(answer)
    return names == {sp for sp in SPACINGS if int(spaced_timesteps(1000, 10, sp)[0]) == 999}


@exercise("07.sigma_max", "σ_t = √((1 − ᾱ_t)/ᾱ_t) = 1/√SNR(t), at index 999 of the linear schedule's alpha_bar: "
                          "don't forget the square root.")
def _sigma_max(answer) -> bool:
    sched = schedule.make_schedule("linear", 1000)
    expected = sigma_ladder(sched, [999])[0]
    return abs(float(answer) - expected) < 1e-4 * expected


# --- notebook 08 ------------------------------------------------------------------------------------------


@exercise("08.inpaint_in_channels", "[z_t, c] with c = [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), P, m↓]: z_t's latent channels, "
                                    "the masked image's latent channels, the known pixels (each 4 × 4 block of one "
                                    "channel), and one for the mask.")
def _inpaint_in_channels(answer) -> bool:
    return int(answer) == latent_mnist_inpaint("cpu").unet.in_channels


@exercise("08.nearest_consistency", "each 4 × 4 block of the nearest upsample repeats one LR pixel: what is the "
                                    "average of 16 copies of a number?")
def _nearest_consistency(answer) -> bool:
    lr = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    expected = consistency(torch.nn.functional.interpolate(lr, scale_factor=4), lr).mean().item()
    return abs(float(answer) - expected) < 1e-6


def _box_mask() -> torch.Tensor:
    m = torch.zeros(1, 1, 32, 32)
    m[..., 10:22, 10:22] = 1  # rows and columns 10–21
    return m


@exercise("08.box_cells", "a latent cell is to be generated if *any* of its 4 × 4 pixels is (a max-pool): which "
                          "cells do rows 10–21 touch? Pixel row r lies in cell r // 4.")
def _box_cells(answer) -> bool:
    return abs(float(answer) - resize_mask(_box_mask(), 8).mean().item()) < 1e-6


def _mouth_map() -> torch.Tensor:
    parts = torch.zeros(1, 64, 64, dtype=torch.long)  # all background
    parts[0, 47:49, 25:39] = PARTS.index("mouth")  # a closed mouth: rows 47–48, columns 25–38
    return parts


@exercise("08.mouth_share", "area resizing averages each 4 × 4 block of pixels: which cells do rows 47 and 48 fall "
                            "in (pixel row r lies in cell r // 4), and how many of a cell's 16 pixels are mouth?")
def _mouth_share(answer) -> bool:
    return abs(float(answer) - semantic_condition(_mouth_map())[0, PARTS.index("mouth")].max().item()) < 1e-6


# --- notebook 09 ------------------------------------------------------------------------------------------

@exercise("09.num_tokens", "τ_θ gives ∅ first, then one token per slot, empty or not; the key mask hides the empty "
                           "ones: LayoutEncoder(10, 64, 3)(y).shape[1] and key_mask(y).sum().")
def _num_tokens(answer) -> bool:
    enc = LayoutEncoder(10, 16, max_objects=3)
    y = parse_layout("7@0.05,0.05,0.45,0.45;2@0.55,0.50,0.95,0.95", max_objects=3)[None]  # (1, 3, 5): 2 objects
    try:
        tokens, attendable = (int(a) for a in answer)
    except (TypeError, ValueError):
        return False
    with torch.no_grad():
        return (tokens, attendable) == (enc(y).shape[1], int(enc.key_mask(y).sum()))


@exercise("09.fourier_dim", "γ(c) = [c, sin(2^i π c), cos(2^i π c)] for i < F: 2F + 1 numbers per coordinate, "
                            "and a box has 4 coordinates.")
def _fourier_dim(answer) -> bool:
    return int(answer) == fourier_features(torch.zeros(4), num_freqs=8).numel()


@exercise("09.box_pixels", "pixel (row, column) has its centre at ((column + ½)/16, (row + ½)/16) and is inside when "
                           "x0 ≤ x < x1 and y0 ≤ y < y1: which columns j have 0.1 ≤ (j + ½)/16 < 0.5?")
def _box_pixels(answer) -> bool:
    box = parse_layout("3@0.1,0.1,0.5,0.5", max_objects=1)[0, 1:]  # a square of side 0.4
    g = coordinate_features(16, 16, num_freqs=0)[0]  # (2, 16, 16): x and y of every latent pixel's centre
    inside = (g[0] >= box[0]) & (g[0] < box[2]) & (g[1] >= box[1]) & (g[1] < box[3])
    return int(answer) == int(inside.sum())


@exercise("09.chance_share", "a uniform map puts the same mass on every cell, so the share inside a box is the box's "
                             "area as a fraction of the canvas's.")
def _chance_share(answer) -> bool:
    y = parse_layout("3@0.1,0.1,0.5,0.5", max_objects=1)[None]  # (1, 1, 5): a square of side 0.4
    _, chance = attention_in_boxes(torch.full((1, 2, 16, 16), 0.5), y)  # ∅ and the object, uniform maps
    return abs(float(answer) - chance[0, 0].item()) < 1e-3
