"""The notebooks' exercise checks: each accepts a right answer, rejects a wrong one, and hints when unanswered."""
import math
import re
from pathlib import Path

import pytest
import torch

from minildm import exercises, schedule
from minildm.exercises import check

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _ddim_step(x_t, eps, ab_t, ab_s):
    x0 = (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
    return ab_s.sqrt() * x0 + (1 - ab_s).sqrt() * eps


def _cfg(eps_cond, eps_uncond, s):
    return eps_uncond + s * (eps_cond - eps_uncond)


# name → (a right answer, a wrong one), worked out by hand where the exercise is arithmetic
ANSWERS = {
    "01.alpha_bar_half": (schedule.make_schedule("linear", 1000).alpha_bar[499].item(),
                          schedule.make_schedule("linear", 1000).alpha_bar[500].item()),
    "01.snr_below_one": (int(torch.nonzero(schedule.make_schedule("cosine", 1000).snr < 1)[0]), 0),
    "01.q_sample": (schedule.q_sample, lambda x0, t, ab, eps: x0),
    "01.more_signal": ("cosine", "linear"),  # √ᾱ_500: cosine 0.71, linear 0.28 (notebook 01's first figure)
    "02.same_digit": ({"ddim_eta0"}, {"ddim_eta0", "ddim_eta1"}),  # only η = 0 draws no noise after x_T
    "02.posterior_variance": (None, 0.5),  # the right value is filled in below from the closed form
    "02.ddim_step": (_ddim_step, lambda x_t, eps, ab_t, ab_s: x_t),
    "03.kl_value": (0.5 * (1 + 0.25 - 1 - math.log(0.25)), 0.5),
    "03.pixels_per_latent": (16, 64),  # f = 8: 32·32 / (4·4·4)
    "03.precise_or_shifted": ("precise", "shifted"),  # ½(10⁻⁴ − 1 + 9.21) = 4.1 nats vs ½(1 + 1 − 1 − 0) = 0.5
    "04.positions": (16, 4),  # 32·32 / (8·8)
    "04.latent_shape": ((3, 16, 16), (3, 64, 64)),
    "04.snr_unscaled": (None, None),  # both filled in below from the linear schedule
    "05.probs_shape": ((4, 64, 5), (64, 4, 5)),
    "05.cfg": (_cfg, lambda c, u, s: c + s * (c - u)),
    "05.null_per_batch": (12.8, 0.1),
    "05.s_for_w": (2.0, 1.0),  # (1 + w) ε_y − w ε_∅ = ε_∅ + (1 + w)(ε_y − ε_∅): s = 1 + w; s = w is the trap
    "06.attribute_vector": (None, torch.zeros(16, dtype=torch.long)),  # filled in below
    "06.uniform_ratio": (1.0, None),  # share = chance = the region's area; the wrong one is that area itself
    "07.heun_nfe": (19, 20),  # 2·10 − 1: no second slope on the last step, to σ = 0
    "07.starts_at_T": ({"trailing", "linspace"}, "trailing"),  # linspace includes both ends, so it starts there too
    "07.sigma_max": (None, None),  # both filled in below from ᾱ_999
    "08.inpaint_in_channels": (25, 21),  # 4 (z_t) + 4 (s·ℰ(x ⊙ (1 − m))) + 16 (known pixels) + 1 (m↓); 21: no z_t
    "08.nearest_consistency": (0.0, 0.25),  # avgpool₄ of a nearest upsample is the LR image itself
    "08.box_cells": (16 / 64, 144 / 1024),  # rows 10–21 touch cells 2–5: 4 × 4 cells; the wrong one is the pixel share
    "08.mouth_share": (0.25, 28 / 1024),  # each of rows 47 | 48 is one row of a cell: 4 of its 16 pixels; not the pixel share
    "09.num_tokens": ((4, 3), (2, 2)),  # ∅ + 3 slots; the empty slot is masked, not dropped
    "09.fourier_dim": (68, 64),  # 4·(2·8 + 1): the raw coordinate counts too
    "09.chance_share": (0.16, 0.4),  # 0.4²: an area, not a side
    "09.box_pixels": (36, 41),  # columns and rows 2–7; not (0.4·16)² = 41, a box is whole pixels by their centres
}


def _right(name):
    if name == "02.posterior_variance":  # β̃_10 = (1 − ᾱ_9)/(1 − ᾱ_10)·β_10 (DDPM Eq. 7)
        s = schedule.make_schedule("linear", 1000)
        return ((1 - s.alpha_bar[9]) / (1 - s.alpha_bar[10]) * s.betas[10]).item()
    if name == "06.attribute_vector":  # Smiling and Eyeglasses present, every other attribute ∅ (2)
        from minildm.faces import FACE_ATTRIBUTES

        y = torch.full((len(FACE_ATTRIBUTES),), 2)
        y[FACE_ATTRIBUTES.index("Smiling")] = y[FACE_ATTRIBUTES.index("Eyeglasses")] = 1
        return y
    if name == "07.sigma_max":
        return _sigma_max()
    if name == "04.snr_unscaled":  # latents of std 0.3 unscaled: SNR(t) = 0.09 ᾱ_t/(1 − ᾱ_t), by hand
        return _first_below(0.3 ** 2)
    return ANSWERS[name][0]


def _wrong(name):
    if name == "04.snr_unscaled":  # the unit-variance latents' crossing: forgets σ_z² = 0.09
        return _first_below(1.0)
    if name == "06.uniform_ratio":  # the share itself (the eyeglasses band's area), not share / chance
        from minildm.toyfaces import attribute_regions

        return attribute_regions(16)["Eyeglasses"].float().mean().item()
    if name == "07.sigma_max":  # 1/SNR(999) without the square root: σ² instead of σ
        ab = schedule.make_schedule("linear", 1000).alpha_bar[999].item()
        return (1 - ab) / ab
    return ANSWERS[name][1]


def _first_below(var: float) -> int:
    """The first index t with var·ᾱ_t/(1 − ᾱ_t) < 1, from ᾱ_t as a cumulative product of (1 − β_t) written out."""
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)  # DDPM's linear schedule
    ab = 1.0
    for t, b in enumerate(betas.tolist()):
        ab *= 1 - b
        if var * ab / (1 - ab) < 1:
            return t
    raise AssertionError("SNR never falls below 1")


def _sigma_max():  # σ_999 = √((1 − ᾱ_999)/ᾱ_999), from the closed form
    ab = schedule.make_schedule("linear", 1000).alpha_bar[999].item()
    return math.sqrt((1 - ab) / ab)


def test_every_exercise_has_answers_here():
    assert set(exercises._CHECKS) == set(ANSWERS), "add the new exercise's right and wrong answer to ANSWERS"


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_right_answer_passes_silently(name, capsys):
    assert check(name, _right(name)) is True
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_wrong_answer_shows_the_hint(name, capsys):
    assert check(name, _wrong(name)) is False
    out = capsys.readouterr().out
    assert out.startswith(f"[{name}] not yet. Hint: ") and out.strip().endswith(exercises._CHECKS[name][1])


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_unattempted_prints_nothing(name, capsys):
    assert check(name, None) is None  # a notebook cell shows nothing for None
    assert capsys.readouterr().out == ""


CONCEPTUAL = {"01.more_signal", "02.same_digit", "03.precise_or_shifted", "04.snr_unscaled", "05.s_for_w",
              "06.uniform_ratio", "07.starts_at_T", "08.inpaint_in_channels", "09.num_tokens"}


def test_every_notebook_has_a_conceptual_check():
    """Each notebook's exercises include at least one question of reasoning (not arithmetic recall), checked."""
    by_notebook = {}
    for src in NOTEBOOKS.glob("[0-9][0-9]_*.py"):
        by_notebook[src.name[:2]] = set(re.findall(r'check\("([^"]+)"', src.read_text()))
    assert sorted(by_notebook) == [f"{i:02d}" for i in range(1, 10)]
    for nb, names in by_notebook.items():
        assert names & CONCEPTUAL, f"notebook {nb} has no conceptual exercise among {sorted(names)}"


def test_notebooks_only_call_known_exercises():
    used = {m for src in NOTEBOOKS.glob("[0-9][0-9]_*.py") for m in re.findall(r'check\("([^"]+)"', src.read_text())}
    assert used, "no exercise checks found in the notebook sources"
    assert used <= set(exercises._CHECKS)


def test_unknown_exercise_names_the_known_ones():
    with pytest.raises(KeyError, match="01.q_sample"):
        check("99.nothing", 1)

