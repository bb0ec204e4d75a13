"""CI gates of the shipped layout model (notebook 09): digits drawn as asked, where asked, and read there.

N_LAYOUTS random layouts (:func:`minildm.layout.random_layouts`, seed 0), sampled as scripts/measure_layout.py does
(50 ancestral steps, the shipped guidance), judged per box by the judge (minildm/weights/mnist_judge.pt, no training
loss touched it). The figures measured when the weights were made (n = 500, with intervals, guidance chosen on one
seed and reported on another) are in minildm/weights/README.md; the thresholds here sit below them with room for the
noise of a small estimate.
"""
import pytest
import torch

from minildm.attention_maps import AttentionStore, capture_attention
from minildm.checkpoint import load_checkpoint
from minildm.evaluate import Evaluator
from minildm.layout import NO_OBJECT, attention_in_boxes, ink_box_iou, ink_outside, random_layouts, read_objects
from minildm.release import load_diffusion
from minildm.shipped import shipped

N_LAYOUTS = 60
# measured on the shipped weights (the coordinate-channel model of 2026-12-03) at their s = 2, n = 60, seed 0, 95%
# bootstrap intervals; issue 17's targets (accuracy ≥ 90%, IoU ≥ 0.6, ink outside ≤ 10%) are met at n = 500
# (minildm/weights/README.md). The gates sit below the n = 60 figures by about their interval's half-width, so a
# regression fails them and a reseed does not; the first model (no coordinates) would fail all four
ACCURACY_MIN = 0.85  # 93.5% [88.7, 97.6] of the boxes read as the requested digit (real canvases: 99.0%; first: 55.6%)
IOU_MIN = 0.62  # 0.670 [0.645, 0.692] (real canvases: 0.698; first model 0.506)
OUTSIDE_MAX = 0.08  # 3.3% [2.6, 3.9] of the ink outside every box (real canvases: 0; first model 27.9%)
ATTENTION_MIN = 1.5  # share / chance of object tokens inside their boxes, all layers' maps averaged: 1.69 [1.66, 1.72]

@pytest.fixture(scope="module")
@torch.no_grad()  # not torch.set_grad_enabled(False): that would leak into the next test file on this worker
def gate():
    model = load_diffusion(shipped("latent_mnist_layout"))
    y = random_layouts(N_LAYOUTS, seed=0)
    store = AttentionStore(rows=N_LAYOUTS, mean_heads=True)  # the conditional half of [y; ∅], head-averaged
    with capture_attention(model.unet, which="cross", store=store):
        images = model.sample(N_LAYOUTS, sampler="ddpm", steps=50, seed=0, y=y, guidance=model.guidance)
    share, chance = attention_in_boxes(store.token_maps(layers="all"), y)
    return model, y, images, share / chance


def test_shipped_layout_model_is_a_small_release():
    path = shipped("latent_mnist_layout")
    assert path.stat().st_size < 5e6
    ckpt = load_checkpoint(path)
    assert "optimizer" not in ckpt and "model" not in ckpt
    assert ckpt["release"]["command"].startswith("python -m minildm train latent-mnist-layout")
    model = load_diffusion(path)
    assert model.max_objects == 3 and model.sample_shape == (4, 16, 16)
    assert model.unet.unet.cfg.coord_freqs == 4  # the queries are told where they are (notebook 09 §2.1)


def test_layout_gate_uses_the_measured_guidance(gate):
    model, *_ = gate
    assert model.guidance == 2.0  # chosen by scripts/measure_layout.py on seed 0, reported on seed 1


def test_layout_gate_what_is_drawn(gate):
    """Each box, cropped and read by the judge, holds the requested digit."""
    _, y, images, _ = gate
    valid = y[..., 0] != NO_OBJECT
    right = (read_objects(images, y, Evaluator()) == y[..., 0].long())[valid]
    assert right.float().mean() >= ACCURACY_MIN, right.float().mean()


def test_layout_gate_where_it_is_drawn(gate):
    """The ink fills each box (IoU of the box with the ink's bounding box in it) and stays inside the boxes."""
    _, y, images, _ = gate
    valid = y[..., 0] != NO_OBJECT
    assert ink_box_iou(images, y)[valid].mean() >= IOU_MIN
    outside = ink_outside(images, y)
    assert outside[torch.isfinite(outside)].mean() <= OUTSIDE_MAX


def test_layout_gate_tokens_are_read_inside_their_boxes(gate):
    """Each object token's cross-attention mass sits in its own box more than a uniform map's would (1)."""
    _, y, _, ratio = gate
    assert ratio[y[..., 0] != NO_OBJECT].mean() >= ATTENTION_MIN
