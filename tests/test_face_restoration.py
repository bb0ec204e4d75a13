"""Toy-face super-resolution and attribute inpainting (notebook 08, LDM §4.4–4.5 on notebook 06's faces): the
attribute planes and the face masks are what they claim on known inputs, ∅ is the same rule with attributes, the
pairs leave attributes unsaid at their rate, a model told attributes refuses bad ones in one line, and the FD ratio
and the judge's reads give their exact answers on cases with one."""
import dataclasses

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from minildm import face_restoration as fr
from minildm import presets, recipes
from minildm.autoencoder import AutoencoderKL, compute_scale_factor
from minildm.concat import ConcatUNet, null_condition, resize_mask, wrap_unet
from minildm.face_classifier import AttributeClassifier
from minildm.faces import FACE_ATTRIBUTES, FaceData
from minildm.ldm import DiffusionModel
from minildm.pairs import (FACE_REGIONS, attribute_planes, face_masks, inpaint_condition, low_resolution,
                           region_mask)
from minildm.restoration import inpaint
from minildm.schedule import make_schedule
from minildm.toyfaces import attribute_regions
from minildm.unet import UNet, UNetConfig
from conftest import randomise

M = len(FACE_ATTRIBUTES)


@pytest.fixture(scope="module")
def face_ae():
    torch.manual_seed(0)
    model = AutoencoderKL(presets.autoencoder_faces("smoke").ae).eval()
    compute_scale_factor(model, torch.rand(16, 3, 64, 64) * 2 - 1)
    return model


def tiny_concat(condition_channels: int, task: str = "inpaint", attributes=()) -> ConcatUNet:
    unet = UNet(UNetConfig(in_channels=3 + condition_channels, out_channels=3, base_channels=8, channel_mult=(1, 2),
                           attn_levels=(), heads=1))
    return randomise(ConcatUNet(unet, task, 3, condition_channels, 16, attributes))


def test_attribute_planes_are_plus_minus_one_and_zero_for_unsaid():
    a = torch.tensor([[0, 1, 2], [2, 2, 1]])
    planes = attribute_planes(a, 4)
    assert planes.shape == (2, 3, 4, 4)
    assert_close(planes[:, :, 2, 3], torch.tensor([[-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert bool((planes == planes[:, :, :1, :1]).all())  # constant over the grid
    with pytest.raises(ValueError, match="values 0, 1 or 2"):
        attribute_planes(torch.tensor([[0, 3]]), 4)
    with pytest.raises(ValueError, match=r"\(B, M\)"):
        attribute_planes(torch.tensor([0, 1]), 4)


def test_inpaint_condition_with_attributes_keeps_the_mask_last_and_null_is_the_same_rule(face_ae):
    """c = [z ⊙ (1 − m↓), A, m↓]: the first 3 channels are the attribute-free condition's, m↓ is last; fully masked
    and nothing said is exactly concat.null_condition, the ∅ that training drops to."""
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    mask = face_masks(3, 64, seed=4)
    attrs = torch.randint(0, 3, (3, M))
    c = inpaint_condition(face_ae, x, mask, attrs=attrs)
    plain = inpaint_condition(face_ae, x, mask)
    assert c.shape == (3, 3 + M + 1, 16, 16)
    assert_close(c[:, :3], plain[:, :3])
    assert_close(c[:, -1:], plain[:, -1:])
    assert_close(c[:, 3:-1], attribute_planes(attrs, 16))
    full = inpaint_condition(face_ae, x, torch.ones(3, 1, 64, 64), attrs=torch.full((3, M), 2))
    assert torch.equal(full, null_condition("inpaint", 3 + M + 1, 16, batch=3))
    with pytest.raises(ValueError, match="one attribute vector per image"):
        inpaint_condition(face_ae, x, mask, attrs=attrs[:2])


def test_region_masks_cover_where_the_attribute_is_drawn():
    for name in FACE_REGIONS:
        m = region_mask(name)
        region = attribute_regions(64)[name]
        assert m.shape == (1, 1, 64, 64) and set(m.unique().tolist()) <= {0.0, 1.0}
        assert bool(m[0, 0][region].all())  # every pixel the attribute can be drawn on is masked
        assert 0 < float(m.mean()) < 0.5  # a region, not the face
    with pytest.raises(ValueError, match="no region for attribute 'Male_Pattern'"):
        region_mask("Male_Pattern")


def test_face_masks_mix_regions_at_their_share_on_a_seed():
    n, p = 2000, 0.4
    masks = face_masks(n, 64, seed=3, p_region=p)
    assert torch.equal(masks, face_masks(n, 64, seed=3, p_region=p))
    assert not torch.equal(masks, face_masks(n, 64, seed=4, p_region=p))
    table = torch.cat([region_mask(r) for r in FACE_REGIONS]).flatten(1)  # (R, 4096)
    is_region = (masks.flatten(1)[:, None] == table[None]).all(-1).any(1)
    share = float(is_region.float().mean())
    assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n)  # binomial, 4 standard errors
    assert set(masks.unique().tolist()) == {0.0, 1.0}


def test_concat_unet_carries_its_attributes_through_the_spec():
    net = tiny_concat(3 + M + 1, attributes=FACE_ATTRIBUTES)
    rebuilt, _ = wrap_unet(net.unet, net.spec)
    assert rebuilt.attributes == tuple(FACE_ATTRIBUTES) and net.spec["attributes"] == list(FACE_ATTRIBUTES)
    assert "attributes" not in tiny_concat(4).spec  # MNIST's spec is unchanged
    with pytest.raises(ValueError, match="condition_channels must be 21 for 17 attributes"):
        tiny_concat(3 + M + 1, attributes=FACE_ATTRIBUTES + ("Extra",))
    with pytest.raises(ValueError, match="attribute planes are for inpainting"):
        tiny_concat(3 + M + 1, task="semantic", attributes=FACE_ATTRIBUTES)


def test_attribute_embedding_reads_the_planes_the_condition_carries(face_ae):
    """UNetConfig(vector_dim=M): the ConcatUNet passes the UNet exactly the attribute vector of the planes (+1 / −1 /
    0 unsaid), so the request reaches the time embedding; ∅ (nothing said) gives it the zero vector."""
    unet = UNet(UNetConfig(in_channels=3 + 3 + M + 1, out_channels=3, base_channels=8, channel_mult=(1, 2),
                           attn_levels=(), heads=1, vector_dim=M))
    net = randomise(ConcatUNet(unet, "inpaint", 3, 3 + M + 1, 16, FACE_ATTRIBUTES))
    seen = []
    net.unet.vector_embed.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].clone()))
    attrs = torch.randint(0, 3, (2, M), generator=torch.Generator().manual_seed(0))
    c = inpaint_condition(face_ae, torch.rand(2, 3, 64, 64) * 2 - 1, face_masks(2, 64, seed=0), attrs=attrs)
    with torch.no_grad():
        net(torch.randn(2, 3, 16, 16), torch.tensor([5, 500]), y=c)
        net(torch.randn(2, 3, 16, 16), 7, y=net.null_condition(2))
    want = torch.where(attrs == 2, 0.0, attrs.float() * 2 - 1)
    assert_close(seen[0], want)
    assert_close(seen[1], torch.zeros(2, M))
    rebuilt, _ = wrap_unet(net.unet, net.spec)  # the route is the UNet's config: checkpoints rebuild it
    assert rebuilt.unet.cfg.vector_dim == M
    with pytest.raises(ValueError, match="vector_dim=16 .* needs that many attributes, got 0"):
        ConcatUNet(UNet(UNetConfig(in_channels=7, out_channels=3, base_channels=8, channel_mult=(1, 2),
                                   attn_levels=(), heads=1, vector_dim=M)), "inpaint", 3, 4, 16)


def _model(net: ConcatUNet, ae) -> DiffusionModel:
    return DiffusionModel(net, make_schedule("linear", 1000), first_stage=ae, image_size=64)


def test_inpaint_with_attributes_refuses_bad_ones_and_defaults_to_unsaid(face_ae):
    model = _model(tiny_concat(3 + M + 1, attributes=FACE_ATTRIBUTES), face_ae)
    x, m = torch.rand(2, 3, 64, 64), face_masks(2, 64, seed=0)
    with pytest.raises(ValueError, match=r"attrs must be \(N, M\) = \(2, 16\)"):
        inpaint(model, x, m, attrs=torch.zeros(2, 3, dtype=torch.long), steps=2)
    unsaid = inpaint(model, x, m, steps=2, seed=1)
    assert_close(unsaid, inpaint(model, x, m, attrs=torch.full((2, M), 2), steps=2, seed=1))
    assert not torch.allclose(unsaid, inpaint(model, x, m, attrs=torch.ones(2, M, dtype=torch.long), steps=2, seed=1))
    plain = _model(tiny_concat(4), face_ae)
    with pytest.raises(ValueError, match="not told attributes"):
        inpaint(plain, x, m, attrs=torch.ones(2, M, dtype=torch.long), steps=2)


def test_face_pairs_leave_attributes_unsaid_at_their_rate(face_ae):
    n = 64
    g = torch.Generator().manual_seed(0)
    data = FaceData(torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g),
                    torch.randint(0, 2, (n, M), generator=g), tuple(FACE_ATTRIBUTES), True)
    z = torch.randn(n, 3, 16, 16)
    preset = presets.latent_faces_inpaint("smoke")
    zz, c = recipes.face_concat_pairs(preset, face_ae, data, z)
    assert zz.shape == (2 * n, 3, 16, 16) and torch.equal(zz[n:], z)
    assert c.shape == (2 * n, 3 + M + 1, 16, 16)
    planes = c[:, 3:-1, 0, 0]  # (2n, M) in {−1, 0, +1}
    unsaid = float((planes == 0).float().mean())
    p, k = recipes.P_ATTRIBUTE_UNSAID, planes.numel()
    assert abs(unsaid - p) < 4 * np.sqrt(p * (1 - p) / k)
    said = planes != 0
    truth = data.attrs.repeat(2, 1).float() * 2 - 1
    assert torch.equal(planes[said], truth[said])  # what is said is the face's own attribute
    sr = presets.latent_faces_sr("smoke")
    zs, cs = recipes.face_concat_pairs(sr, face_ae, data, z)
    assert torch.equal(zs, z) and torch.equal(cs, low_resolution(data.float()))


def test_face_presets_are_concat_on_the_face_latent_grid():
    for mode in ("smoke", "cpu", "gpu"):
        sr, ip = presets.latent_faces_sr(mode), presets.latent_faces_inpaint(mode)
        assert sr.unet.in_channels == 3 + 3 and sr.conditioning["size"] == 16 and sr.train.p_uncond == 0
        assert ip.unet.in_channels == 3 + 3 + M + 1 and tuple(ip.conditioning["attributes"]) == FACE_ATTRIBUTES
    assert {"latent-faces-sr", "latent-faces-inpaint"} <= set(presets.PRESETS)


def test_fd_ratio_of_real_faces_to_themselves_is_one_and_blur_is_farther():
    torch.manual_seed(0)
    judge = randomise(AttributeClassifier(FACE_ATTRIBUTES)).eval()
    x, ref = torch.rand(200, 3, 64, 64) * 2 - 1, torch.rand(200, 3, 64, 64) * 2 - 1
    same = fr.fd_ratio(judge, x, x, ref, n_boot=50)
    assert same.value == pytest.approx(1.0) and same.low == pytest.approx(1.0) and same.high == pytest.approx(1.0)
    grey = fr.fd_ratio(judge, torch.zeros_like(x), x, ref, n_boot=50)
    assert grey.value > 1.5


def test_reads_count_the_judges_value_of_one_attribute():
    """_reads on a judge that reads attribute j as 'mean brightness > 0': exact shares."""
    class Bright(AttributeClassifier):
        def forward(self, x):
            out = torch.zeros(len(x), M)
            out[:, 2] = x.float().mean((1, 2, 3))
            return out

    judge = Bright(FACE_ATTRIBUTES)
    images = torch.cat([torch.full((3, 3, 64, 64), 0.5), torch.full((1, 3, 64, 64), -0.5)])
    assert fr._reads(judge, images, 2, torch.tensor([1, 1, 0, 0]), n_boot=20, seed=0).value == pytest.approx(0.75)


# ------------------------------------------------------------------------------------------ runs and the CLI
@pytest.fixture(scope="module")
def face_runs(tmp_path_factory):
    """Both face presets through recipes.shipped_or_train in smoke mode with no shipped file (so they train: 4
    steps each, MINILDM_MAX_STEPS), in a fresh runs folder; what the fast path printed."""
    d = tmp_path_factory.mktemp("face_concat_runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINILDM_RUNS", str(d))
    mp.setenv("MINILDM_MAX_STEPS", "4")

    real = recipes.shipped

    def missing(name):  # the two face concatenation models are not shipped; the rest is (their autoencoder)
        if name in ("latent_faces_sr", "latent_faces_inpaint"):
            raise recipes.CheckpointError(f"no shipped weights named {name!r}")
        return real(name)

    mp.setattr(recipes, "shipped", missing)
    import contextlib
    import io
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            out = {name: recipes.shipped_or_train(name, fast=True, mode="smoke", progress=False)
                   for name in ("latent-faces-sr", "latent-faces-inpaint")}
    finally:
        mp.undo()
    return out, said.getvalue(), d


def test_a_missing_shipped_model_trains_instead_and_says_so(face_runs):
    out, said, d = face_runs
    for name, (model, path, was_shipped) in out.items():
        assert not was_shipped and path.parent == d / "smoke" and path.exists()
        assert isinstance(model.unet, ConcatUNet) and model.sample_shape == (3, 16, 16)
    assert "latent_faces_sr is not shipped: training it here" in said
    assert out["latent-faces-inpaint"][0].unet.attributes == tuple(FACE_ATTRIBUTES)


def test_the_fast_path_takes_a_shipped_model_when_there_is_one():
    model, path, was_shipped = recipes.shipped_or_train("latent-mnist-sr", fast=True)
    assert was_shipped and path == recipes.shipped("latent_mnist_sr") and model.unet.task == "sr"


def test_the_fast_path_finds_the_shipped_face_model_under_its_data_source():
    """latent-faces' checkpoint (and shipped file) is latent_faces_toy: the preset name plus the data source."""
    model, path, was_shipped = recipes.shipped_or_train("latent-faces", fast=True)
    assert was_shipped and path == recipes.shipped("latent_faces_toy")
    assert model.attributes is not None and model.sample_shape == (3, 16, 16)


def test_a_live_run_trains_its_steps_and_refuses_other_presets(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path))
    ae = recipes.load_diffusion(recipes.shipped("latent_mnist_sr")).first_stage
    model, history = recipes.live_run("latent-mnist-sr", 5, ae, n=64, progress=False)
    assert [row[0] for row in history] == [1, 2, 3, 4, 5]
    assert (tmp_path / "smoke" / "live" / "latent_mnist_sr.pt").exists() and model.unet.task == "sr"
    with pytest.raises(ValueError, match="live_run takes one of the MNIST presets pixel-mnist"):
        recipes.live_run("latent-faces-sr", 5, ae)
    with pytest.raises(ValueError, match="trains on latents: pass first_stage="):
        recipes.live_run("latent-mnist", 5)


def test_a_live_run_of_the_pixel_and_the_class_preset(tmp_path, monkeypatch):
    """The fast path's live runs of notebooks 02 and 05: pixels need no first stage, the class model its labels."""
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path))
    pixel, history = recipes.live_run("pixel-mnist", 3, n=32, progress=False)
    assert len(history) == 3 and pixel.first_stage is None
    assert tuple(pixel.sample(2, seed=0, steps=2).shape) == (2, 1, 32, 32)
    ae = recipes.load_diffusion(recipes.shipped("latent_mnist")).first_stage
    cls, history = recipes.live_run("latent-mnist-class", 3, ae, n=32, progress=False)
    assert len(history) == 3 and cls.num_classes == 10


def _npz(path, **arrays):
    np.savez(path, **{k: v.numpy() if hasattr(v, "numpy") else v for k, v in arrays.items()})
    return str(path)


def test_cli_inpaint_takes_attributes_for_the_face_model(face_runs, tmp_path, capsys):
    from minildm.__main__ import main
    from test_cli import one_error_line
    ckpt = str(face_runs[0]["latent-faces-inpaint"][1])
    x = torch.rand(2, 3, 64, 64)
    m = region_mask("Eyeglasses").expand(2, -1, -1, -1)
    xi, mi, out = _npz(tmp_path / "x.npz", images=x), _npz(tmp_path / "m.npz", mask=m), tmp_path / "y.npz"
    base = ["inpaint", ckpt, "--input", xi, "--mask", mi, "--out", str(out), "--steps", "2"]
    assert main(base + ["--attributes", "Eyeglasses=1"]) == 0
    y = torch.from_numpy(np.load(out)["images"])
    assert y.shape == (2, 3, 64, 64) and torch.equal(y * (1 - m), x * (1 - m))  # known pixels pasted back
    assert main(base) == 0  # nothing said
    assert not torch.equal(torch.from_numpy(np.load(out)["images"]), y)
    out.unlink()
    capsys.readouterr()
    rows = [(base + ["--attributes", "Eyeglasses=3"], "NAME=0 or NAME=1"),
            (base + ["--attributes", "Monocle=1"], "Monocle"),
            (["inpaint", "latent_mnist_inpaint", "--input", xi, "--mask", mi, "--out", str(out), "--attributes",
              "Eyeglasses=1"], "--attributes is for an inpainting model told attributes")]
    for argv, needle in rows:
        assert main(argv) == 2, argv
        assert needle in one_error_line(capsys.readouterr().err)
        assert not out.exists()


def test_a_live_run_of_the_layout_preset_trains_on_canvases_with_their_layouts(tmp_path, monkeypatch):
    """Notebook 09's live run: canvases, their layouts as y, and the empty layout as ∅ for condition dropout."""
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path))
    ae = recipes.load_diffusion(recipes.shipped("latent_mnist_layout")).first_stage
    model, history = recipes.live_run("latent-mnist-layout", 2, ae, n=16, progress=False)
    assert len(history) == 2 and model.max_objects == 3
    assert (tmp_path / "smoke" / "live" / "latent_mnist_layout.pt").exists()
