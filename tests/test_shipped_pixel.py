"""The shipped pixel DDPM (minildm/weights/pixel_mnist.pt, notebook 02's fast path): it loads, and its digits pass
a gate judged by the course's judge (minildm/weights/mnist_judge.pt, which no training loss touched).

Measured when the weights were made (minildm/weights/README.md): at n = 1000, seed 0, FD 2.52× [2.00, 3.33] the
real-vs-real floor, each digit 7.5–12.5% of the samples, confidence 0.90. The thresholds below sit under the CI
measurement (n = 200, seed 0, in the comments) with room for a 200-sample estimate's noise.
"""
import pytest

from minildm.checkpoint import load_checkpoint
from minildm.evaluate import Evaluator
from minildm.release import load_diffusion
from minildm.shipped import shipped

N_GATE = 200


@pytest.fixture(scope="module")
def gate():
    model = load_diffusion(shipped("pixel_mnist"))
    images = model.sample(N_GATE, sampler="ddpm", steps=50, seed=0)  # what notebook 02's fast path draws
    ev = Evaluator()
    return model, images, ev.report(images), ev.logits(images).argmax(1).bincount(minlength=10)


def test_shipped_pixel_model_is_a_small_release_of_its_preset(gate):
    model, images, _, _ = gate
    ckpt = load_checkpoint(shipped("pixel_mnist"), kind="pixel_mnist")
    assert "optimizer" not in ckpt and ckpt["release"]["command"] == "python -m minildm train pixel-mnist --mode cpu"
    assert not model.is_latent and tuple(images.shape) == (N_GATE, 1, 32, 32)
    assert images.min() >= -1 and images.max() <= 1


def test_pixel_gate_fidelity(gate):
    """Near real digits: FD within 3× the floor at n = 200, and a confident judge."""
    _, _, r, _ = gate
    assert r["fd_ratio"] <= 3.0, r  # measured 0.92 (FD 15.2, floor 16.6 at n = 200)
    assert r["confidence"] >= 0.85, r  # measured 0.905


def test_pixel_gate_diversity(gate):
    """Every digit drawn, none dominating (10% each for MNIST)."""
    *_, counts = gate
    assert (counts > 0).all() and counts.max() <= 0.25 * N_GATE, counts.tolist()  # measured 10–31 of 200
