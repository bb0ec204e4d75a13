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
    "02.posterior_variance": (None, 0.5),  # the right value is filled in below from the closed form
    "02.ddim_step": (_ddim_step, lambda x_t, eps, ab_t, ab_s: x_t),
    "03.kl_value": (0.5 * (1 + 0.25 - 1 - math.log(0.25)), 0.5),
    "03.pixels_per_latent": (16, 64),  # f = 8: 32·32 / (4·4·4)
    "04.positions": (16, 4),  # 32·32 / (8·8)
    "04.latent_shape": ((3, 16, 16), (3, 64, 64)),
    "05.probs_shape": ((4, 64, 5), (64, 4, 5)),
    "05.cfg": (_cfg, lambda c, u, s: c + s * (c - u)),
    "05.null_per_batch": (12.8, 0.1),
    "06.attribute_vector": (None, torch.zeros(16, dtype=torch.long)),  # filled in below
    "06.chance_share": (None, 0.5),
    "07.heun_nfe": (19, 20),  # 2·10 − 1: no second slope on the last step, to σ = 0
    "07.starts_at_T": ({"trailing", "linspace"}, "trailing"),  # linspace includes both ends, so it starts there too
    "07.sigma_max": (None, None),  # both filled in below from ᾱ_999
    "08.inpaint_in_channels": (9, 5),  # 4 (z_t) + 4 (s·ℰ of the masked digit) + 1 (m↓); 5 forgets z_t
    "08.nearest_consistency": (0.0, 0.25),  # avgpool₄ of a nearest upsample is the LR image itself
    "08.box_cells": (16 / 64, 144 / 1024),  # rows 10–21 touch cells 2–5: 4 × 4 cells; the wrong one is the pixel share
    "08.mouth_share": (0.25, 28 / 1024),  # each of rows 47 | 48 is one row of a cell: 4 of its 16 pixels; not the pixel share
    "09.num_tokens": ((4, 3), (2, 2)),  # ∅ + 3 slots; the empty slot is masked, not dropped
    "09.fourier_dim": (68, 64),  # 4·(2·8 + 1): the raw coordinate counts too
    "09.chance_share": (0.16, 0.4),  # 0.4²: an area, not a side
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
    if name == "06.chance_share":  # the region's area over the image's
        from minildm.toyfaces import attribute_regions

        return attribute_regions(64)["Eyeglasses"].sum().item() / 64 ** 2
    return ANSWERS[name][0]


def _wrong(name):
    if name == "07.sigma_max":  # 1/SNR(999) without the square root: σ² instead of σ
        ab = schedule.make_schedule("linear", 1000).alpha_bar[999].item()
        return (1 - ab) / ab
    return ANSWERS[name][1]


def _sigma_max():  # σ_999 = √((1 − ᾱ_999)/ᾱ_999), from the closed form
    ab = schedule.make_schedule("linear", 1000).alpha_bar[999].item()
    return math.sqrt((1 - ab) / ab)


def test_every_exercise_has_answers_here():
    assert set(exercises._CHECKS) == set(ANSWERS), "add the new exercise's right and wrong answer to ANSWERS"


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_check_accepts_right_and_rejects_wrong(name, capsys):
    assert check(name, _right(name)) is True
    assert check(name, _wrong(name)) is False
    assert "not yet" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_unanswered_prints_a_hint_and_does_not_raise(name, capsys):
    assert check(name, None) is False
    assert "Hint:" in capsys.readouterr().out


def test_notebooks_only_call_known_exercises():
    used = {m for src in NOTEBOOKS.glob("[0-9][0-9]_*.py") for m in re.findall(r'check\("([^"]+)"', src.read_text())}
    assert used, "no exercise checks found in the notebook sources"
    assert used <= set(exercises._CHECKS)


def test_unknown_exercise_names_the_known_ones():
    with pytest.raises(KeyError, match="01.q_sample"):
        check("99.nothing", 1)

