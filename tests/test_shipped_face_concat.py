"""CI gates of the shipped face concatenation models (notebook 08, §5): toy faces ×4 super-resolution (16 → 64) and
inpainting told the attributes.

Test faces are the toy test split (no model trained on it), the FD reference the validation split; the judge is the
shipped face judge (`face_judge_toy`), which no training loss touched. The figures measured when the weights were
made (n = 1000, with intervals) are in minildm/weights/README.md; the thresholds here sit below them with room for
the noise of a small estimate (stated beside each), so a regression fails and a reseed does not.
"""
import pytest
import torch

from minildm import face_restoration as fr
from minildm.checkpoint import load_checkpoint
from minildm.concat import ConcatUNet
from minildm.face_classifier import load_attribute_classifier
from minildm.faces import FACE_ATTRIBUTES, load_faces
from minildm.release import load_diffusion
from minildm.shipped import shipped

N = 64  # test faces per gate
STEPS = 50
# SR, measured on these 64 faces when the weights were made: attributes carried 95.6% [93.9, 97.0] (bicubic 82.0%),
# FD / floor 1.08 (bicubic 3.03; at n = 64 the floor is inflated, so ratios sit closer to 1 than at n = 1000's
# 1.98), consistency 0.041 (bicubic 0.020: the decoder alone is 0.029 off, so no model on this latent keeps the LR
# face as well as bicubic does; weights README)
CARRIED_MIN, FD_MAX, CONSISTENCY_MAX = 0.90, 1.5, 0.06


@pytest.fixture(scope="module")
def faces():
    test = load_faces("test", source="toy", mode="cpu", verbose=False)
    ref = load_faces("valid", source="toy", mode="cpu", verbose=False)
    return test.float(N), test.attrs[:N], ref.float(N), load_attribute_classifier(shipped("face_judge_toy"))


@pytest.fixture(scope="module")
@torch.no_grad()  # not torch.set_grad_enabled(False): that would leak into the next test file on this worker
def sr(faces):
    x, attrs, ref, judge = faces
    return fr.measure_sr(load_diffusion(shipped("latent_faces_sr")), judge, x, attrs, ref, steps=STEPS, n_boot=100)


@pytest.fixture(scope="module")
@torch.no_grad()
def inpainted(faces):
    x, attrs, _, judge = faces
    model = load_diffusion(shipped("latent_faces_inpaint"))
    return fr.measure_attribute_inpainting(model, judge, x, attrs, steps=STEPS, n_boot=100)


@pytest.mark.parametrize("name,task,channels", [("latent_faces_sr", "sr", 3),
                                                ("latent_faces_inpaint", "inpaint", 3 + len(FACE_ATTRIBUTES) + 1)])
def test_shipped_face_models_are_small_releases(name, task, channels):
    path = shipped(name)
    assert path.stat().st_size < 5e6
    ckpt = load_checkpoint(path)
    assert "optimizer" not in ckpt and "model" not in ckpt  # EMA weights only
    assert ckpt["release"]["command"].startswith(f"python -m minildm train {name.replace('_', '-')}")
    model = load_diffusion(path)
    assert isinstance(model.unet, ConcatUNet) and model.unet.task == task
    assert model.unet.condition_channels == channels and model.sample_shape == (3, 16, 16)


def test_face_sr_beats_bicubic_and_keeps_the_lr_face(sr):
    """Closer to real faces and truer to their attributes than bicubic, and near the LR face (thresholds above)."""
    rows = sr["rows"]
    assert rows["diffusion"]["consistency"].value <= CONSISTENCY_MAX, rows["diffusion"]["consistency"]
    assert rows["diffusion"]["fd_ratio"].value < rows["bicubic"]["fd_ratio"].value
    assert rows["diffusion"]["carried"].value > rows["bicubic"]["carried"].value
    assert rows["diffusion"]["carried"].value >= CARRIED_MIN, rows["diffusion"]["carried"]
    assert rows["diffusion"]["fd_ratio"].value <= FD_MAX, rows["diffusion"]["fd_ratio"]
    assert sr["diversity"].value > 0.005  # two draws differ: it samples, it does not regress


def test_face_inpainting_follows_the_requested_attributes(inpainted):
    """Told the attributes, the fills follow them: a fill that ignored the request would score as-it-was + flipped
    = 1 exactly (the judge reads one value or the other), one that always obeyed 2. Measured at n = 500 (weights
    README): hat 1.78, glasses 1.58, smile 1.52; on these 64 faces 1.81, 1.53, 1.47. Gates about 3 standard errors
    (≈ 0.07 at n = 64) below the n = 500 values: hat ≥ 1.55, glasses ≥ 1.35, smile ≥ 1.30 (the 3,000-step model
    scored 1.50, 1.36 and 1.05 here: it fails the hat, smile and outside gates, not the glasses'). The error outside the mask before pasting, 0.056–0.061 at
    n = 500 and 0.057–0.063 here ([−1, 1] units; the autoencoder alone ≈ 0.05; the 3,000-step model 0.19), must stay
    ≤ 0.10."""
    for name, floor in (("Wearing_Hat", 1.55), ("Eyeglasses", 1.35), ("Smiling", 1.30)):
        r = inpainted[name]
        assert r["as it was"].value + r["flipped"].value >= floor, (name, r["as it was"], r["flipped"])
        assert r["outside"].value <= 0.10, (name, r["outside"])
