"""CI gates of the shipped concatenation models (notebook 08): ×4 super-resolution and inpainting of MNIST.

Both are judged on real MNIST test digits they never saw (`evaluate.real_test_sets`, as scripts/measure_restoration.py
draws them), sampled as that script and ``python -m minildm upscale / inpaint`` do (50 steps, the ancestral "ddpm"
sampler, seed 0, the model's recommended guidance), by the judge (minildm/weights/mnist_judge.pt), which no training loss touched. The figures measured
when the weights were made (n = 1000, with intervals) are in minildm/weights/README.md; the thresholds here sit below
them with room for the noise of a 200-digit estimate, so a regression fails and a reseed does not.
"""
import pytest
import torch

from minildm.checkpoint import load_checkpoint
from minildm.concat import ConcatUNet
from minildm.evaluate import Evaluator, real_test_sets
from minildm.pairs import bicubic, consistency, error_outside_mask, half_mask, low_resolution
from minildm.release import load_diffusion
from minildm.restoration import inpaint, upscale
from minildm.shipped import shipped

N = 200  # test digits per gate
STEPS = 50
# measured on the shipped weights at n = 200, seed 0 (and at n = 1000 in minildm/weights/README.md); a 200-digit
# estimate has sd ≈ 1.2 points at 97% and ≈ 2.1 at 90%, so each threshold sits ≥ 3 sd below its measurement
# SR at its shipped guidance 3 (the 2026-12-04 model, 36,000 steps, trained with a ∅ so it can be guided; s chosen
# on seed 0 from 1 / 2 / 3 → 96.3 / 96.2 / 96.5%): 96.9% [95.9, 97.9] on seed 1 (target 97%: missed by 0.1), FD
# 1.04× the floor; on these 200 digits 97.5% [95.0, 99.0], FD 0.98×, consistency 0.013 (bicubic 0.049)
SR_ACCURACY_MIN = 0.90
SR_FD_RATIO_MAX = 1.5  # issue 16's target
SR_GUIDANCE = 3.0
# the model with the known pixels in c, 48,000 steps (2026-12-04), at the shipped guidance 2: 89.0% [87.3, 91.1] on
# seed 0 and 90.4% [88.8, 92.1] on seed 1 at n = 1000 (target 90%: met; s = 1 / 3 on seed 0: 87.3% / 89.8%, the
# 24,000-step model 88.5% on seed 1); on these 200 digits 86.0%, outside 0.010. A 200-digit estimate has sd ≈ 2.1
# points here, so the gate sits 3 sd below the n = 1000 figure and 2 points below this sample's
INPAINT_ACCURACY_MIN = 0.84
INPAINT_GUIDANCE = 2.0
OUTSIDE_MAX = 0.05  # issue 16's target: mean |y − x| over the known pixels, [0, 1] units, without pasting


@pytest.fixture(scope="module")
@torch.no_grad()  # not torch.set_grad_enabled(False): that would leak into the next test file on this worker
def sr():
    model = load_diffusion(shipped("latent_mnist_sr"))
    x, labels, ref = real_test_sets(N, seed=0)
    lr = low_resolution(x)
    out = [upscale(model, (lr + 1) / 2, seed=s, steps=STEPS, sampler="ddpm", guidance=model.guidance) * 2 - 1
           for s in (0, 1)]
    return model, x, labels, ref, lr, out


@pytest.fixture(scope="module")
@torch.no_grad()
def inp():
    model = load_diffusion(shipped("latent_mnist_inpaint"))
    x, labels, ref = real_test_sets(N, seed=0)
    m = half_mask(N, 32, "right")
    raw = [inpaint(model, (x + 1) / 2, m, seed=s, steps=STEPS, sampler="ddpm", paste=False, guidance=model.guidance)
           for s in (0, 1)]
    return model, x, labels, ref, m, raw


@pytest.mark.parametrize("name,task,channels", [("latent_mnist_sr", "sr", 1), ("latent_mnist_inpaint", "inpaint", 21)])
def test_shipped_concat_models_are_small_releases(name, task, channels):
    path = shipped(name)
    assert path.stat().st_size < 5e6  # "a few MB"
    ckpt = load_checkpoint(path)
    assert "optimizer" not in ckpt and "model" not in ckpt  # a release: EMA weights only
    assert ckpt["release"]["command"].startswith(f"python -m minildm train {name.replace('_', '-')}")
    model = load_diffusion(path)
    assert isinstance(model.unet, ConcatUNet) and model.unet.task == task
    assert model.unet.condition_channels == channels and model.sample_shape == (4, 8, 8)


def test_sr_gate_reads_as_the_true_digit(sr):
    model, x, labels, ref, lr, out = sr
    assert model.guidance == SR_GUIDANCE and model.unet.null_value is not None  # guided against its own ∅
    r = Evaluator().reconstruction_report(out[0], x, labels, ref)
    assert r["accuracy"].value >= SR_ACCURACY_MIN, r["accuracy"]
    assert r["fd_ratio"].value <= SR_FD_RATIO_MAX, r["fd_ratio"]


def test_sr_gate_keeps_the_low_resolution_image_better_than_bicubic(sr):
    """‖avgpool₄(SR) − LR‖ below bicubic's on the same digits (issue 16's target), paired per digit."""
    _, x, _, _, lr, out = sr
    ours, theirs = consistency(out[0], lr), consistency(bicubic(lr), lr)
    assert ours.mean() < theirs.mean(), (ours.mean().item(), theirs.mean().item())
    assert (ours < theirs).float().mean() > 0.5  # on most digits, not on average only


def test_sr_gate_draws_differ_but_agree_with_the_input(sr):
    """Two seeds give two different digits for the same LR (a sampler, not a regression), both consistent with it."""
    _, _, _, _, lr, out = sr
    apart = (out[0] - out[1]).abs().flatten(1).mean(1)
    assert apart.mean() > 0.01, apart.mean()
    assert consistency(out[1], lr).mean() < consistency(bicubic(lr), lr).mean()


def test_inpaint_gate_reads_as_the_true_digit(inp):
    model, x, labels, ref, m, raw = inp
    assert model.guidance == INPAINT_GUIDANCE  # the recommended scale the CLI samples with by default
    filled = m * (raw[0] * 2 - 1) + (1 - m) * x  # the known half pasted back, as `inpaint` does by default
    acc = (Evaluator().logits(filled).argmax(1) == labels).float().mean().item()
    assert acc >= INPAINT_ACCURACY_MIN, acc


def test_inpaint_gate_keeps_the_known_half(inp):
    model, x, _, _, m, raw = inp
    outside = error_outside_mask(raw[0], (x + 1) / 2, m)
    assert outside.mean() <= OUTSIDE_MAX, outside.mean()
    pasted = inpaint(model, (x[:4] + 1) / 2, m[:4], seed=0, steps=2)  # paste=True: the known pixels exactly
    assert torch.equal(pasted * (1 - m[:4]), (x[:4] + 1) / 2 * (1 - m[:4]))


def test_inpaint_gate_fills_differ_between_seeds(inp):
    _, _, _, _, m, raw = inp
    inside = ((raw[0] - raw[1]).abs() * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    assert inside.mean() > 0.01, inside.mean()
