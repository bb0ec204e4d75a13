"""The pixel-vs-latent inpainting comparison (benchmarks/inpaint_pixel_vs_latent.py, a small LDM Table 6): the pixel
condition is exactly [x ⊙ (1 − m), m], the two UNets differ by exactly their first and last convolutions' channels,
the two runs share every training setting and the very same masks, and the pixel model samples without a first stage."""
import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from minildm import presets, recipes
from minildm.autoencoder import AutoencoderKL
from minildm.concat import ConcatUNet, null_condition, resize_mask
from minildm.data import mnist
from minildm.pairs import pixel_inpaint_condition
from minildm.unet import count_parameters

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def table6():
    spec = importlib.util.spec_from_file_location("inpaint_pixel_vs_latent",
                                                  ROOT / "benchmarks" / "inpaint_pixel_vs_latent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pixel_inpaint_condition_on_a_known_input():
    """c = [x ⊙ (1 − m), m]: the masked pixels exactly 0, the known ones exactly x, the mask channel exactly m; the
    fully masked image is ∅ of the inpainting task (zeros, m = 1); a mask of the wrong shape is refused."""
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4) / 16 - 0.9  # (2, 1, 4, 4), no zeros
    m = torch.zeros(2, 1, 4, 4)
    m[0, :, :, 2:] = 1  # the right half of the first image
    m[1, :, 1, 1] = 1  # one pixel of the second
    c = pixel_inpaint_condition(x, m)
    assert c.shape == (2, 2, 4, 4)
    assert torch.equal(c[:, 1:], m)
    assert torch.equal(c[0, 0, :, 2:], torch.zeros(4, 2)) and torch.equal(c[0, 0, :, :2], x[0, 0, :, :2])
    assert c[1, 0, 1, 1] == 0 and int((c[1, 0] == 0).sum()) == 1
    assert torch.equal(c[1, 0][m[1, 0] == 0], x[1, 0][m[1, 0] == 0])
    assert torch.equal(pixel_inpaint_condition(x, torch.ones(2, 1, 4, 4)), null_condition("inpaint", 2, 4, batch=2))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\) = \(2, 1, 4, 4\)"):
        pixel_inpaint_condition(x, torch.zeros(2, 1, 2, 2))


@pytest.mark.parametrize("mode", ["smoke", "cpu"])
def test_the_two_unets_differ_only_in_their_first_and_last_convs(table6, mode):
    """The same UNetConfig but for in/out channels, so the parameter counts differ by exactly the 3 × 3 convs' weights
    on the extra channels: conv_in (C_in_latent − C_in_pixel)·b·9, conv_out (C_out_latent − C_out_pixel)·(b·9 + 1),
    b = base_channels · channel_mult[0]. Smoke: (9 − 3)·8·9 + (4 − 1)·(8·9 + 1) = 432 + 219 = 651."""
    latent, pixel = table6.table6_presets(mode)
    a, b = dataclasses.asdict(latent.unet), dataclasses.asdict(pixel.unet)
    assert {k for k in a if a[k] != b[k]} == {"in_channels", "out_channels"}
    assert (latent.unet.in_channels, latent.unet.out_channels) == (4 + 5, 4)
    assert (pixel.unet.in_channels, pixel.unet.out_channels) == (1 + 2, 1)
    width = latent.unet.base_channels * latent.unet.channel_mult[0]
    diff = (9 - 3) * width * 3 * 3 + (4 - 1) * (width * 3 * 3 + 1)
    if mode == "smoke":  # built by the script's presets, as the benchmark trains them
        assert diff == 651
        nets = [recipes.build_unet(p, device="cpu") for p in (latent, pixel)]
        assert isinstance(nets[1], ConcatUNet) and (nets[1].latent_channels, nets[1].condition_channels,
                                                    nets[1].size) == (1, 2, 32)
        assert count_parameters(nets[0]) - count_parameters(nets[1]) == diff
    else:  # cpu: base 16, on the meta device (no memory)
        assert diff == 1299
        assert presets.unet_parameters(latent.unet) - presets.unet_parameters(pixel.unet) == diff


def test_both_runs_share_every_training_setting(table6):
    """One budget: the same TrainConfig (steps, batch, lr, warm-up, seed, …), schedule and T; cpu's ×0.1 lr drop at
    10,000 of 12,000 steps lands at the same fraction of 1,500: 1,250; the pixel preset is f = 1, kind pixel_mnist."""
    latent, pixel = table6.table6_presets("cpu", steps=1500, batch=64)
    assert latent.train == pixel.train
    assert (latent.train.steps, latent.train.batch_size, latent.train.lr_drop_at) == (1500, 64, 1250)
    assert (latent.schedule, latent.T) == (pixel.schedule, pixel.T)
    assert (pixel.f, pixel.image_size, pixel.kind, pixel.clip_x0) == (1, 32, "pixel_mnist", 1.0)
    assert latent.f == 4


def test_pixel_pairs_use_the_latent_runs_masks(table6):
    """Every training digit under the same K = 4 masks in both runs: the pixel pairs' mask channel, max-pooled to the
    8 × 8 grid, is exactly the latent pairs' m↓, and the pixel targets are the digits repeated K times."""
    latent, pixel = table6.table6_presets("smoke")
    torch.manual_seed(0)
    ae = AutoencoderKL(presets.autoencoder_mnist("smoke").ae).eval()
    images = mnist("train", size=32, n=6)[0]
    _, c_latent = recipes.concat_pairs(latent, ae, images, torch.zeros(6, 4, 8, 8))
    x, c_pixel = table6.pixel_pairs(pixel, images)
    assert x.shape == (24, 1, 32, 32) and c_pixel.shape == (24, 2, 32, 32)
    assert torch.equal(x, images.repeat(4, 1, 1, 1))
    assert torch.equal(resize_mask(c_pixel[:, 1:], 8), c_latent[:, -1:])


def test_the_pixel_model_fills_without_a_first_stage(table6):
    """The pixel ConcatUNet as a DiffusionModel with no first stage: the script's fill gives (n, 1, 32, 32) in
    [−1, 1] on pixels (DDIM, 2 steps), the sample space x itself."""
    _, pixel = table6.table6_presets("smoke")
    model = recipes.to_model(pixel, recipes.build_unet(pixel, device="cpu"))
    assert not model.is_latent and model.sample_shape == (1, 32, 32)
    x = mnist("test", size=32, n=3)[0]
    m = torch.zeros(3, 1, 32, 32)
    m[..., 16:] = 1
    y = table6.fill(model, x, m, steps=2)
    assert y.shape == (3, 1, 32, 32) and bool(torch.isfinite(y).all()) and float(y.abs().max()) <= 1
