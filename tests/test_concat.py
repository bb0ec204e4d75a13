"""Conditioning by concatenation (notebook 08, LDM §3.3, §4.4, §4.5): c is aligned with z_t at every f, the pairs are
what they claim on known inputs, every measure and baseline gives the exact answer on synthetic cases, condition
dropout hits its rate, the smoke presets train end to end, reload and sample, and the CLI's doors hold."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from minildm import presets, recipes
from minildm.__main__ import main
from minildm.autoencoder import AutoencoderKL, compute_scale_factor
from minildm.checkpoint import load_checkpoint
from minildm.concat import ConcatUNet, area_resize, resize_mask, wrap_unet
from minildm.data import mnist
from minildm.guidance import condition_dropout
from minildm.ldm import DiffusionModel
from minildm.pairs import (bicubic, consistency, error_outside_mask, half_mask, inpaint_condition, low_resolution,
                           masked_image, paste_known, random_masks)
from minildm.release import load_diffusion
from minildm.restoration import load_regression, paste_inpaint, train_regression
from minildm.samplers import SAMPLERS
from minildm.schedule import make_schedule
from minildm.unet import UNet, UNetConfig
from conftest import randomise
from test_cli import one_error_line


def tiny_unet(in_ch: int, out_ch: int | None = None) -> UNet:
    return UNet(UNetConfig(in_channels=in_ch, out_channels=out_ch, base_channels=8, channel_mult=(1, 2),
                           attn_levels=(), heads=1))


@pytest.fixture(scope="module")
def ae():
    torch.manual_seed(0)
    model = AutoencoderKL(presets.autoencoder_mnist("smoke").ae).eval()
    compute_scale_factor(model, mnist("train", size=32, n=64)[0])
    return model


# ------------------------------------------------------------------------------------------ alignment
@pytest.mark.parametrize("f", [2, 4, 8])
def test_condition_is_aligned_with_the_latent_at_every_f(f):
    """[z_t, c] at the latent grid 32/f: ε_θ has z_t's shape; a c on another grid or a UNet of the wrong width is
    refused; c changes ε (it really enters the network)."""
    h = 32 // f
    net = randomise(ConcatUNet(tiny_unet(4 + 5, 4), "inpaint", 4, 5, h))
    z, c = torch.randn(2, 4, h, h), torch.randn(2, 5, h, h)
    eps = net(z, torch.tensor([3, 500]), y=c)
    assert eps.shape == z.shape
    assert not torch.allclose(eps, net(z, torch.tensor([3, 500]), y=c + 1))
    with pytest.raises(ValueError, match="aligned with z_t"):
        net(z, 3, y=torch.randn(2, 5, 2 * h, 2 * h))
    with pytest.raises(ValueError, match="in_channels=9, out_channels=4"):
        ConcatUNet(tiny_unet(4), "inpaint", 4, 5, h)
    m = torch.zeros(2, 1, 32, 32)
    assert resize_mask(m, h).shape == (2, 1, h, h)


def test_mask_resizing_is_exact_on_known_masks():
    m = torch.zeros(1, 1, 32, 32)
    m[..., 8:16, 4:12] = 1  # a box on the f = 4 grid: cells (2, 1) and (3, 1), (2, 2), (3, 2)
    want = torch.zeros(1, 1, 8, 8)
    want[..., 2:4, 1:3] = 1
    assert torch.equal(resize_mask(m, 8), want)
    one = torch.zeros(1, 1, 32, 32)
    one[..., 13, 30] = 1  # one unknown pixel makes its whole cell unknown (max rule)
    cell = torch.zeros(1, 1, 8, 8)
    cell[..., 3, 7] = 1
    assert torch.equal(resize_mask(one, 8), cell)
    onehot = F.one_hot(torch.randint(0, 5, (2, 64, 64)), 5).permute(0, 3, 1, 2).float()  # a part map
    assert_close(area_resize(onehot, 16).sum(1), torch.ones(2, 16, 16))  # fractions that sum to 1
    with pytest.raises(ValueError, match="multiples"):
        resize_mask(torch.zeros(1, 1, 30, 30), 8)


# ------------------------------------------------------------------------------------------ the pairs
def test_low_resolution_is_the_average_pool():
    x = torch.arange(2 * 32 * 32, dtype=torch.float32).reshape(2, 1, 32, 32) / 2048 - 1
    lr = low_resolution(x)
    want = torch.tensor([[[[x[b, 0, 4 * i:4 * i + 4, 4 * j:4 * j + 4].mean() for j in range(8)] for i in range(8)]]
                         for b in range(2)]).reshape(2, 1, 8, 8)
    assert_close(lr, want, rtol=0, atol=1e-6)
    digits, _ = mnist("test", size=32, n=4)
    assert low_resolution(digits).shape == (4, 1, 8, 8)


def test_masks_on_a_seed():
    a, b = random_masks(400, 32, seed=1), random_masks(400, 32, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, random_masks(400, 32, seed=2))
    assert set(a.unique().tolist()) <= {0.0, 1.0} and a.shape == (400, 1, 32, 32)
    full = (a.flatten(1).mean(1) == 1).float().mean().item()
    assert abs(full - 0.1) < 0.05  # 400 draws of p = 0.1: sd 0.015, so ±0.05 is > 3 sd
    partial = a[a.flatten(1).mean(1) < 1]
    assert (partial.flatten(1).mean(1) > 0).all()  # every other mask hides something, never everything
    boxes = random_masks(50, 32, seed=3, p_full=0.0, p_box=1.0)
    for m in boxes[:, 0]:  # a box: its bounding rectangle is all masked
        ys, xs = m.nonzero(as_tuple=True)
        assert m[ys.min():ys.max() + 1, xs.min():xs.max() + 1].all()
    h = half_mask(2, 32)
    assert h[..., :16].sum() == 0 and h[..., 16:].all()


def is_rectangle(m: torch.Tensor) -> bool:
    ys, xs = m.nonzero(as_tuple=True)
    return bool(m[ys.min():ys.max() + 1, xs.min():xs.max() + 1].all())


def test_masks_include_the_four_halves_at_their_share():
    """2,000 masks: a share p_half = 0.2 is exactly one of the four half masks (binomial sd 0.009, so ±0.04 is > 4 sd),
    each side ~1/4 of them (0.05 ± 0.025, sd 0.005); the fully masked share is still p_full (0.1 ± 0.03, sd 0.007);
    of the rest, boxes (their bounding rectangle all masked: a box is at most 3/4 of a side, never a half) are p_box
    (0.5 ± 0.06, sd 0.013 over ~1,400). p_half = 0: no half at all."""
    n = 2000
    m = random_masks(n, 32, seed=0)
    halves = torch.cat([half_mask(1, 32, side) for side in ("right", "left", "bottom", "top")])  # (4, 1, 32, 32)
    side = (m[:, None] == halves[None]).flatten(2).all(2)  # (n, 4): mask i is half k
    full = m.flatten(1).mean(1) == 1
    assert abs(side.any(1).float().mean().item() - 0.2) < 0.04
    assert ((side.float().mean(0) - 0.05).abs() < 0.025).all()
    assert abs(full.float().mean().item() - 0.1) < 0.03
    rest = m[~side.any(1) & ~full, 0]
    assert abs(np.mean([is_rectangle(r) for r in rest]) - 0.5) < 0.06
    assert all(not is_rectangle(r) or (r.sum(0).max() <= 24 and r.sum(1).max() <= 24) for r in rest)
    none = random_masks(500, 32, seed=0, p_half=0.0)
    assert not (none[:, None] == halves[None]).flatten(2).all(2).any()
    assert abs((none.flatten(1).mean(1) == 1).float().mean().item() - 0.1) < 0.045  # sd 0.013
    only = random_masks(40, 32, seed=1, p_full=0.0, p_half=1.0)
    assert (only[:, None] == halves[None]).flatten(2).all(2).any(1).all()


def test_concat_pairs_repeat_each_digit_with_masks_of_seeds_0_to_k(ae):
    """Inpainting: K·N pairs, z repeated in order (z_out[k·N + i] = z[i]), block k conditioned on the masks of seed k
    (its last channel is m↓ of random_masks(seed=k)), so the K conditions of one digit differ. SR: (z, LR), as
    given."""
    preset = presets.latent_mnist_inpaint("smoke")
    x, _ = mnist("train", size=32, n=5)
    z = torch.randn(5, 4, 8, 8)
    zs, cs = recipes.concat_pairs(preset, ae, x, z, masks_per_image=3)
    shares = preset.conditioning.get("masks", {})  # the preset's mask shares (random_masks' defaults if none)
    assert zs.shape == (15, 4, 8, 8) and cs.shape == (15, 5 + presets.INPAINT_PIXEL_CHANNELS, 8, 8)
    for k in range(3):
        assert torch.equal(zs[5 * k:5 * k + 5], z)
        assert torch.equal(cs[5 * k:5 * k + 5, -1:], resize_mask(random_masks(5, 32, seed=k, **shares), 8))
    for i in range(5):
        assert not torch.equal(cs[i], cs[5 + i]) and not torch.equal(cs[5 + i], cs[10 + i])
    assert recipes.concat_pairs(preset, ae, x, z)[0].shape[0] == 5 * recipes.INPAINT_MASKS_PER_IMAGE == 20
    zs, lr = recipes.concat_pairs(presets.latent_mnist_sr("smoke"), ae, x, z)
    assert zs is z and torch.equal(lr, low_resolution(x))


def test_concat_pairs_draw_masks_in_the_shares_the_spec_names(ae):
    """The spec's ``masks`` reach random_masks: p_half = 1 makes every training mask one of the four halves, and the
    preset's own shares are the ones its pairs are made with."""
    preset = presets.latent_mnist_inpaint("smoke")
    x, _ = mnist("train", size=32, n=8)
    halves = resize_mask(torch.cat([half_mask(1, 32, s) for s in ("right", "left", "bottom", "top")]), 8)
    only = dataclasses.replace(preset, conditioning=preset.conditioning | dict(masks=dict(p_full=0.0, p_half=1.0)))
    m = recipes.concat_conditions(only, ae, x)[:, -1:]  # m↓ (8, 1, 8, 8)
    assert (m[:, None] == halves[None]).flatten(2).all(2).any(1).all()
    shares = preset.conditioning.get("masks", {})
    assert torch.equal(recipes.concat_conditions(preset, ae, x)[:, -1:], resize_mask(random_masks(8, 32, **shares), 8))


def test_concat_cpu_presets_drop_the_lr_within_the_run(monkeypatch):
    """cpu mode: the ×0.1 drop comes after the warm-up and before the last step (else it never happens)."""
    monkeypatch.delenv("MINILDM_MAX_STEPS", raising=False)
    for preset in (presets.latent_mnist_sr("cpu"), presets.latent_mnist_inpaint("cpu")):
        cfg = preset.train
        assert cfg.warmup < cfg.lr_drop_at < cfg.steps and cfg.lr_drop < 1, preset.name
    assert presets.latent_mnist_inpaint("smoke").train == presets.latent_mnist("smoke").train  # smoke: untouched
    assert presets.latent_mnist_sr("smoke").train == dataclasses.replace(presets.latent_mnist("smoke").train,
                                                                         p_uncond=0.1)  # and SR's condition dropout


def test_masked_image_and_inpaint_condition(ae):
    x, _ = mnist("test", size=32, n=6)
    m = random_masks(6, 32, seed=0, p_full=0.0)
    m[0] = 1  # one fully masked example
    xm = masked_image(x, m)
    assert (xm[m.expand_as(x) == 1] == 0).all()  # 0 (mid-grey in [−1, 1]) where masked, LDM's convention
    assert torch.equal(xm[m.expand_as(x) == 0], x[m.expand_as(x) == 0])
    c = inpaint_condition(ae, x, m)
    assert c.shape == (6, 5, 8, 8)
    assert torch.equal(c[:, 4:], resize_mask(m, 8))
    assert (c[:, :4][resize_mask(m, 8).expand(-1, 4, -1, -1) == 1] == 0).all()  # the latent zeroed under m↓
    null = ConcatUNet(tiny_unet(9, 4), "inpaint", 4, 5, 8).null_condition(1)
    assert torch.equal(c[:1], null)  # fully masked = ∅, whatever ℰ is
    with torch.no_grad():
        known = ae.encode_latents(xm[1:2]) * (1 - resize_mask(m[1:2], 8))
    assert_close(c[1:2, :4], known)


def test_inpaint_condition_with_the_known_pixels_on_the_latent_grid(ae):
    """known_pixels: c = [z ⊙ (1 − m↓), 16 pixel planes, m↓] (B, 4 + 16 + 1, 8, 8). Pixel (4i + dy, 4j + dx) of the
    masked image lands in channel 4 + 4·dy + dx of cell (i, j) (checked on an image whose pixels are all different);
    the other channels are the plain condition's; fully masked is still ∅; a ConcatUNet keeps the flag in its spec
    (a checkpoint's reload rebuilds it), and refuses it for another task."""
    x = (torch.arange(2 * 32 * 32, dtype=torch.float32).reshape(2, 1, 32, 32) / 2048) * 2 - 1
    m = half_mask(2, 32, "right")
    m[1] = 1
    c, plain = inpaint_condition(ae, x, m, known_pixels=True), inpaint_condition(ae, x, m)
    assert c.shape == (2, 21, 8, 8)
    assert torch.equal(c[:, :4], plain[:, :4]) and torch.equal(c[:, -1:], plain[:, -1:])
    for i, j, dy, dx in [(0, 0, 0, 0), (3, 1, 1, 2), (7, 3, 3, 3), (5, 2, 2, 0)]:  # cells of the known left half
        assert c[0, 4 + 4 * dy + dx, i, j] == x[0, 0, 4 * i + dy, 4 * j + dx]
    assert (c[0, 4:20, :, 4:] == 0).all()  # the masked right half: no pixels
    net = ConcatUNet(tiny_unet(25, 4), "inpaint", 4, 21, 8, known_pixels=True)
    assert torch.equal(c[1:], net.null_condition(1))
    again, _ = wrap_unet(tiny_unet(25, 4), net.spec)
    assert again.known_pixels and again.spec == net.spec and net.spec["known_pixels"] is True
    assert "known_pixels" not in ConcatUNet(tiny_unet(9, 4), "inpaint", 4, 5, 8).spec  # old checkpoints unchanged
    with pytest.raises(ValueError, match="known_pixels is for inpainting"):
        ConcatUNet(tiny_unet(5, 4), "sr", 4, 1, 8, known_pixels=True)


# ------------------------------------------------------------------------------------------ measures, baselines
def test_consistency_and_bicubic_on_exact_cases():
    lr = torch.rand(3, 1, 8, 8) * 2 - 1
    nearest = F.interpolate(lr, scale_factor=4)
    assert_close(consistency(nearest, lr), torch.zeros(3), rtol=0, atol=1e-6)  # block-constant: pools back exactly
    assert_close(consistency((nearest + 0.25).clamp(max=5), lr), torch.full((3,), 0.25), rtol=0, atol=1e-6)
    flat = torch.full((2, 3, 16, 16), 0.3)
    assert_close(bicubic(flat), torch.full((2, 3, 64, 64), 0.3))  # a constant image upsamples to itself
    assert bicubic(lr).shape == (3, 1, 32, 32) and bicubic(lr).abs().max() <= 1
    with pytest.raises(ValueError, match="×4"):
        consistency(torch.zeros(1, 1, 30, 30), lr[:1])


def test_error_outside_mask_and_paste_on_exact_cases():
    x = torch.zeros(2, 1, 4, 4)
    y = torch.full((2, 1, 4, 4), 0.5)
    m = torch.zeros(2, 1, 4, 4)
    m[:, :, :, 2:] = 1
    y[:, :, :, 2:] = 9.0  # what happens under the mask does not count
    assert_close(error_outside_mask(y, x, m), torch.tensor([0.5, 0.5]))
    pasted = paste_known(y, x, m)
    assert torch.equal(pasted[..., :2], x[..., :2]) and torch.equal(pasted[..., 2:], y[..., 2:])
    assert torch.equal(error_outside_mask(pasted, x, m), torch.zeros(2))


def test_the_paste_baseline_keeps_the_known_region_exactly(ae):
    """RePaint's replace with an (untrained, randomised) unconditional model: the known latent cells of z_0 are
    s·ℰ(x) exactly, and the unknown ones are not."""
    model = DiffusionModel(randomise(tiny_unet(4)).eval(), make_schedule("linear", 1000), ae, 32, None)
    x, _ = mnist("test", size=32, n=3)
    m = half_mask(3, 32)
    images, z0 = paste_inpaint(model, x, m, steps=4, seed=0, return_latents=True)
    with torch.no_grad():
        known = ae.encode_latents(x)
    assert images.shape == x.shape
    assert torch.equal(z0[..., :4], known[..., :4])
    assert not torch.allclose(z0[..., 4:], known[..., 4:])


def test_condition_dropout_replaces_c_by_null_at_rate_p():
    """p = 0.3 over 4,000 conditions: the share replaced by ∅ is within ±0.03 of p (binomial sd 0.007: > 4 sd);
    replaced rows are ∅ exactly, the others untouched."""
    c = torch.rand(4000, 5, 8, 8) + 2  # never equal to ∅
    null = ConcatUNet(tiny_unet(9, 4), "inpaint", 4, 5, 8).null_condition(1)[0]
    out = condition_dropout(c, null, 0.3, generator=torch.Generator().manual_seed(0))
    dropped = (out == null).flatten(1).all(1)
    assert abs(dropped.float().mean().item() - 0.3) < 0.03
    assert torch.equal(out[~dropped], c[~dropped])
    with pytest.raises(ValueError, match="no null condition"):
        ConcatUNet(tiny_unet(5, 4), "sr", 4, 1, 8).null_condition(2)



def test_sr_null_plane_is_outside_the_images_and_survives_the_spec():
    """A super-resolution model trained with dropout has ∅ = a constant plane beyond ±1 (never an LR image, which
    lies in [−1, 1]); the value rides in the spec, so wrap_unet (a checkpoint's reload) rebuilds the same ∅, and a
    model without one keeps the spec it always had."""
    sr = ConcatUNet(tiny_unet(5, 4), "sr", 4, 1, 8, null_value=-2.0)
    assert torch.equal(sr.null_condition(3), torch.full((3, 1, 8, 8), -2.0))
    again, _ = wrap_unet(tiny_unet(5, 4), sr.spec)
    assert again.spec == sr.spec and sr.spec["null_value"] == -2.0
    assert torch.equal(again.null_condition(2), sr.null_condition(2))
    for bad in (0.0, 1.0, -1.0):  # a grey, white or black plane is a real LR image
        with pytest.raises(ValueError, match="beyond ±1"):
            ConcatUNet(tiny_unet(5, 4), "sr", 4, 1, 8, null_value=bad)
    with pytest.raises(ValueError, match="super-resolution's ∅"):
        ConcatUNet(tiny_unet(9, 4), "inpaint", 4, 5, 8, null_value=-2.0)
    assert "null_value" not in ConcatUNet(tiny_unet(5, 4), "sr", 4, 1, 8).spec  # old checkpoints: unchanged

# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """recipes.train(...) in smoke mode for both presets in one fresh runs folder (one smoke autoencoder, 6 steps
    each, MINILDM_MAX_STEPS), and the regression baseline."""
    d = tmp_path_factory.mktemp("concat_runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINILDM_RUNS", str(d))
    mp.setenv("MINILDM_MAX_STEPS", "6")
    try:
        out = {name: recipes.train(name, "smoke", progress=False) for name in ("latent-mnist-sr",
                                                                               "latent-mnist-inpaint")}
        out["regression"] = recipes.train_sr_regression("smoke", progress=False)
    finally:
        mp.undo()
    return out, d


@pytest.mark.parametrize("name,task,channels", [("latent-mnist-sr", "sr", 1), ("latent-mnist-inpaint", "inpaint", 21)])
def test_smoke_train_reload_sample(trained, name, task, channels):
    (model, ckpt), _ = trained[0][name], None
    spec = load_checkpoint(ckpt)["conditioning"]
    assert spec == dict(type="concat", task=task, latent_channels=4, condition_channels=channels, size=8) | (
        dict(null_value=presets.SR_NULL) if task == "sr" else dict(known_pixels=True))
    again = load_diffusion(ckpt)
    assert isinstance(again.unet, ConcatUNet) and again.sample_shape == (4, 8, 8)
    c = torch.randn(2, channels, 8, 8)
    for sampler in SAMPLERS:  # every sampler goes through DiffusionModel.sample
        out = again.sample(2, sampler=sampler, steps=2, y=c)
        assert out.shape == (2, 1, 32, 32) and out.abs().max() <= 1
    # the reload is the model (the trained one is channels-last: the same sums in another order, so ≤ 1e-5 apart)
    assert_close(again.sample(2, steps=2, y=c), model.sample(2, steps=2, y=c), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=rf"pass y of shape \(2, {channels}, 8, 8\)"):
        again.sample(2, steps=2, y=torch.randn(2, channels, 4, 4))
    # ∅ = fully masked (inpainting) or SR's plane beyond ±1: guidance is possible, at the preset's recommended s
    # (chosen on test seed 0: 3 for SR's 36,000-step model, 2 for inpainting), stored with the checkpoint
    assert again.guidance == {"sr": 3.0, "inpaint": 2.0}[task]
    assert again.sample(2, steps=2, y=c, guidance=2.0).shape == (2, 1, 32, 32)


def test_regression_baseline_is_the_same_network(trained):
    reg = trained[0]["regression"]
    sr_model, sr_model_ckpt = trained[0]["latent-mnist-sr"]
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(reg.net) == n(sr_model.unet)
    again = load_regression(sr_model_ckpt.parent / "latent_mnist_sr_regression.pt")
    lr = low_resolution(mnist("test", size=32, n=3)[0])
    assert_close(again.predict(lr), reg.predict(lr))
    assert again.predict(lr).shape == (3, 1, 32, 32) and len(again.history) == 6


def test_regression_stops_on_a_non_finite_loss_and_writes_nothing(trained, tmp_path):
    sr_model, _ = trained[0]["latent-mnist-sr"]
    preset = presets.latent_mnist_sr("smoke")
    x = mnist("test", size=32, n=8)[0]
    x[:, 0, 5, 5] = float("nan")  # a bad pixel in every image: the first L1 is NaN
    ckpt = tmp_path / "reg.pt"
    cfg = dataclasses.replace(preset.train, steps=50, batch_size=8)
    with pytest.raises(FloatingPointError, match="non-finite L1 at step 1"):
        train_regression(preset.unet, preset.conditioning, cfg, x, low_resolution(x), sr_model.first_stage,
                         ckpt_path=ckpt)
    assert not ckpt.exists()


def test_regression_steps_default_per_mode(monkeypatch):
    """cpu mode trains recipes.SR_REGRESSION_CPU_STEPS (not the SR model's 7,000); ``steps=`` overrides."""
    seen = []
    monkeypatch.setattr(recipes, "train_regression", lambda unet, spec, cfg, *a, **k: seen.append(cfg.steps))
    monkeypatch.setattr(recipes, "first_stage", lambda *a, **k: (None, None, None))
    monkeypatch.setattr(recipes, "mnist", lambda *a, **k: (torch.zeros(4, 1, 32, 32), None))
    monkeypatch.delenv("MINILDM_MAX_STEPS", raising=False)
    recipes.train_sr_regression("cpu", progress=False)
    recipes.train_sr_regression("cpu", progress=False, steps=7)
    recipes.train_sr_regression("smoke", progress=False)
    assert seen == [recipes.SR_REGRESSION_CPU_STEPS, 7, presets.latent_mnist_sr("smoke").train.steps]
    assert recipes.SR_REGRESSION_CPU_STEPS < presets.latent_mnist_sr("cpu").train.steps


# ------------------------------------------------------------------------------------------ the command line
def _npz(path, **arrays):
    np.savez(path, **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
    return str(path)


def test_cli_upscale_and_inpaint_shapes(trained, tmp_path, capsys):
    sr_ckpt, inp_ckpt = trained[0]["latent-mnist-sr"][1], trained[0]["latent-mnist-inpaint"][1]
    x = (mnist("test", size=32, n=3)[0] + 1) / 2
    lr = _npz(tmp_path / "lr.npz", images=low_resolution(x))
    out = tmp_path / "sr.npz"
    assert main(["upscale", str(sr_ckpt), "--input", lr, "--out", str(out), "--png", str(tmp_path / "g.png"),
                 "--steps", "2"]) == 0
    sr = np.load(out)["images"]
    assert sr.shape == (3, 1, 32, 32) and sr.dtype == np.float32 and 0 <= sr.min() and sr.max() <= 1
    assert (tmp_path / "g.png").exists()
    m = half_mask(3, 32)
    xi, mi, yo = _npz(tmp_path / "x.npz", images=x), _npz(tmp_path / "m.npz", mask=m), tmp_path / "y.npz"
    assert main(["inpaint", str(inp_ckpt), "--input", xi, "--mask", mi, "--out", str(yo), "--steps", "2"]) == 0
    y = torch.from_numpy(np.load(yo)["images"])
    assert y.shape == (3, 1, 32, 32)
    assert torch.equal(y[..., :16], x[..., :16])  # the known half pasted back exactly
    capsys.readouterr()


def test_cli_doors(trained, tmp_path, capsys):
    sr_ckpt, inp_ckpt = str(trained[0]["latent-mnist-sr"][1]), str(trained[0]["latent-mnist-inpaint"][1])
    x = (mnist("test", size=32, n=2)[0] + 1) / 2
    good_x, good_m = _npz(tmp_path / "x.npz", images=x), _npz(tmp_path / "m.npz", mask=half_mask(2, 32))
    out = tmp_path / "o.npz"
    up = lambda model, arr, name: ["upscale", model, "--input", _npz(tmp_path / name, images=arr),  # noqa: E731
                                   "--out", str(out), "--steps", "1"]
    inp = lambda xs, ms: ["inpaint", inp_ckpt, "--input", xs, "--mask", ms, "--out", str(out), "--steps", "1"]  # noqa: E731
    rows = [
        (up(sr_ckpt, x, "hr.npz"), "must be (N, 1, 8, 8) float in [0, 1], got shape (2, 1, 32, 32)"),
        (up(sr_ckpt, low_resolution(x) * 2 - 1, "pm.npz"), "got values in"),
        (up(inp_ckpt, low_resolution(x), "lr.npz"), "is an inpainting model; give a super-resolution model"),
        (inp(good_x, _npz(tmp_path / "b.npz", mask=half_mask(2, 32) * 0.5)), "the mask must be binary"),
        (inp(good_x, _npz(tmp_path / "s.npz", mask=half_mask(2, 16))), "the mask must be (N, 1, H, W) = (2, 1, 32, 32)"),
        (inp(good_x, _npz(tmp_path / "k.npz", images=half_mask(2, 32))), "has no array 'mask'"),
        (inp(_npz(tmp_path / "c.npz", images=x.expand(-1, 3, -1, -1)), good_m), "the images to inpaint must be (N, 1, 32, 32)"),
        (["inpaint", sr_ckpt, "--input", good_x, "--mask", good_m, "--out", str(out)], "give an inpainting model"),
        (["upscale", sr_ckpt, "--input", str(tmp_path / "none.npz"), "--out", str(out)], "no such file"),
        (["upscale", sr_ckpt, "--input", good_x, "--out", str(tmp_path / "o.png")], "must end in .npz"),
        (up("latent_faces_sr", low_resolution(x), "g.npz") + ["--guidance", "2"],  # trained without ∅
         "--guidance 2: this super-resolution model has no null condition"),
        (up(sr_ckpt, low_resolution(x), "q.npz") + ["--sampler", "euler9"], "--sampler 'euler9': choose one of"),
        (inp(good_x, good_m) + ["--guidance", "-1"], "--guidance -1.0: give a finite scale ≥ 0"),
        (["sample", sr_ckpt, "--n", "2", "--steps", "1", "--out", str(tmp_path / "s.png")],
         "conditioned on an image (sr): run python -m minildm upscale"),
    ]
    for argv, needle in rows:
        assert main(argv) == 2, argv
        assert needle in one_error_line(capsys.readouterr().err)
        assert not out.exists()
    assert main(["sample", sr_ckpt, "--info"]) == 0  # what the model is, then no sampling (it needs --input)
    assert "latent_mnist_sr: latent diffusion" in capsys.readouterr().out
