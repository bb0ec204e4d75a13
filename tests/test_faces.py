"""Faces (notebook 06): the attribute encoder τ_θ and its null condition, face data with the toy stand-in labelled,
the attribute classifier's rates, attention localisation, editing with the noise held fixed, and the face presets
end to end (smoke size), their checkpoints and the command line."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from minildm import presets, recipes
from minildm.__main__ import main
from minildm.attention_maps import capture_attention, region_share
from minildm.celeba import CELEBA_ATTRIBUTES, CelebADataMissing, read_celeba_attributes
from minildm.checkpoint import load_checkpoint
from minildm.conditioning import AttributeEncoder, ConditionalUNet, encoder_from_spec
from minildm.face_classifier import (AttributeClassifier, attribute_rates, carried_spread, chance_rates,
                                     load_attribute_classifier, predict_attributes, train_attribute_classifier)
from minildm.faces import (FACE_ATTRIBUTES, NULL, TOY_LABEL, attention_localisation, attribute_vector,
                           edit_attribute, load_faces, random_attributes, select_attributes, slerp)
from minildm.guidance import attribute_dropout, condition_dropout
from minildm.release import load_diffusion
from minildm.losses import PerceptualLoss
from minildm.schedule import make_schedule
from minildm.toyfaces import attribute_regions, write_toy_faces
from minildm.train import TrainConfig, train_diffusion
from minildm.unet import UNet

M = len(FACE_ATTRIBUTES)


# ------------------------------------------------------------------------------------------ τ_θ for attributes
def test_attribute_encoder_one_token_per_attribute():
    enc = AttributeEncoder(FACE_ATTRIBUTES, 8)
    y = torch.randint(0, 2, (3, M))
    tokens = enc(y)
    assert tokens.shape == (3, M, 8)
    j = FACE_ATTRIBUTES.index("Eyeglasses")
    y2 = y.clone()
    y2[:, j] = 1 - y2[:, j]
    changed = (enc(y2) - tokens).abs().amax(dim=(0, 2)) > 1e-6  # (M,): which tokens moved
    assert changed.tolist() == [m == j for m in range(M)]  # token m carries attribute m and nothing else
    # the same value gives different tokens for different attributes (a_m), the null is all-2
    assert not torch.allclose(tokens[0, 0], enc(torch.full((1, M), int(y[0, 0])))[0, 1])
    null = enc.null_condition(4)
    assert null.shape == (4, M)
    assert (null == NULL).all()
    assert null.dtype == torch.long


def test_attribute_encoder_errors_say_what_to_pass():
    enc = AttributeEncoder(FACE_ATTRIBUTES, 8)
    with pytest.raises(ValueError, match=rf"\(B, {M}\).*got shape \(2, 40\).*select_attributes"):
        enc(torch.zeros(2, 40, dtype=torch.long))
    with pytest.raises(ValueError, match=r"0 \(absent\), 1 \(present\) or 2.*\(a \+ 1\) // 2"):
        enc(torch.full((2, M), -1))
    with pytest.raises(ValueError, match="distinct"):
        AttributeEncoder(["Smiling", "Smiling"], 8)


def test_encoder_from_spec_keeps_the_names():
    spec = dict(type="attributes", names=list(FACE_ATTRIBUTES), dim=8)
    enc, tok = encoder_from_spec(spec)
    assert isinstance(enc, AttributeEncoder)
    assert tok is None
    assert enc.names == FACE_ATTRIBUTES
    assert enc.dim == 8
    with pytest.raises(ValueError, match="names"):
        encoder_from_spec(dict(type="attributes", dim=8))


def test_condition_dropout_drops_whole_attribute_vectors():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (4000, M), generator=g)
    null = AttributeEncoder(FACE_ATTRIBUTES, 8).null_condition(1)[0]  # (M,)
    out = condition_dropout(y, null, 0.1, generator=torch.Generator().manual_seed(1))
    dropped = (out == NULL).all(1)
    assert abs(dropped.float().mean().item() - 0.1) < 0.02
    assert not (out[~dropped] == NULL).any()
    assert torch.equal(out[~dropped], y[~dropped])  # all or nothing
    # attribute_dropout: each entry on its own
    out = attribute_dropout(y, null, 0.05, generator=torch.Generator().manual_seed(2))
    is_null = out == NULL
    assert abs(is_null.float().mean().item() - 0.05) < 0.01
    assert torch.equal(out[~is_null], y[~is_null])
    assert 0 < is_null.any(1).float().mean() < 0.8  # some vectors partly specified, most not all-∅
    assert (is_null.all(1)).sum() == 0


class Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.seen = torch.nn.Conv2d(3, 3, 1), []

    def forward(self, x, t, y=None):
        self.seen.append(y)
        return self.conv(x)


def test_train_diffusion_with_attribute_dropout():
    data, y = torch.randn(16, 3, 4, 4), torch.randint(0, 2, (16, M))
    model = Recorder()
    cfg = TrainConfig(steps=5, batch_size=200, warmup=0, p_uncond=0.1, p_unspecified=0.05, log_every=0, ckpt_every=0)
    train_diffusion(model, data, make_schedule("linear", 50), cfg, labels=y, null_condition=torch.full((M,), NULL),
                    progress=False)
    seen = torch.cat(model.seen)  # (1000, M)
    whole = (seen == NULL).all(1)
    assert 0.06 < whole.float().mean() < 0.14
    assert 0.02 < (seen[~whole] == NULL).float().mean() < 0.08
    with pytest.raises(ValueError, match="all-∅ vector"):
        train_diffusion(Recorder(), data, make_schedule("linear", 50), cfg, labels=y, progress=False)


def test_cross_attention_only_levels():
    cfg = presets.latent_faces("smoke").unet
    assert cfg.attn_levels == (0, 1)
    assert cfg.self_attn_levels == (1,)
    unet = UNet(cfg)
    blocks = {name: m for name, m in unet.named_modules() if type(m).__name__ == "TransformerBlock"}
    assert blocks
    assert all(b.attn2.is_cross for b in blocks.values())
    # level 0 (16×16: down.0, up.2, up.3) keeps no self-attention; level 1 (8×8) and the middle do
    no_self = {n for n, b in blocks.items() if b.attn1 is None}
    assert no_self == {"down.0.1.blocks.0", "up.2.1.blocks.0", "up.3.1.blocks.0"}
    assert len(blocks) == 7
    model = ConditionalUNet(unet, AttributeEncoder(FACE_ATTRIBUTES, cfg.context_dim))
    out = model(torch.randn(2, 3, 16, 16), torch.tensor([3, 500]), y=torch.randint(0, 3, (2, M)))
    assert out.shape == (2, 3, 16, 16)


# ------------------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return tmp_path_factory.mktemp("faces")


def test_load_faces_falls_back_to_labelled_toy_faces(toy_root, capsys):
    data = load_faces("train", root=toy_root, mode="smoke")
    assert "NOT CelebA" in capsys.readouterr().out
    assert data.label == TOY_LABEL
    assert data.toy
    assert data.source == "toy"
    assert data.folder == toy_root / "toyfaces_400" / "celeba"
    assert data.images.shape == (320, 3, 64, 64)
    assert data.images.dtype == torch.uint8
    assert data.attrs.shape == (320, M)
    assert set(data.attrs.unique().tolist()) == {0, 1}
    assert data.names == FACE_ATTRIBUTES
    assert len(load_faces("test", n=7, root=toy_root, mode="smoke")) == 7
    x = data.float(5)
    assert x.shape == (5, 3, 64, 64)
    assert -1 <= x.min() < x.max() <= 1
    with pytest.raises(CelebADataMissing, match="Kaggle"):
        load_faces("train", root=toy_root, source="celeba")


def test_load_faces_prefers_celeba_and_explains_a_missing_attribute_file(tmp_path, capsys):
    """A folder in CelebA's layout without the toy marker is taken as CelebA; remove its attribute file and it is
    the documented error (source="celeba"), or a note and the toy faces (source="auto")."""
    write_toy_faces(tmp_path, n=30, seed=1)
    (tmp_path / "celeba" / "TOY_FACES.txt").unlink()  # now it looks like a real CelebA
    data = load_faces("all", root=tmp_path, mode="smoke", verbose=False)
    assert not data.toy
    assert data.source == "celeba"
    assert data.attrs.shape == (30, M)
    _, all40, _ = read_celeba_attributes(tmp_path)
    assert torch.equal(data.attrs, select_attributes(all40))
    assert all40.shape == (30, 40)
    (tmp_path / "celeba" / "list_attr_celeba.txt").unlink()
    with pytest.raises(CelebADataMissing, match="list_attr_celeba.txt"):
        load_faces("train", root=tmp_path, source="celeba")
    capsys.readouterr()
    fallback = load_faces("test", root=tmp_path, mode="smoke")
    out = capsys.readouterr().out
    assert fallback.toy
    assert "note: CelebA data missing" in out
    assert "list_attr_celeba.txt" in out
    assert "NOT CelebA" in out


def test_select_attributes_and_vectors():
    a = torch.zeros(2, 40, dtype=torch.long)
    a[:, CELEBA_ATTRIBUTES.index("Smiling")] = 1
    assert select_attributes(a, ["Male", "Smiling"]).tolist() == [[0, 1], [0, 1]]
    with pytest.raises(ValueError, match=r"\(N, 40\)"):
        select_attributes(torch.zeros(2, 16))
    with pytest.raises(ValueError, match="did you mean.*Eyeglasses"):
        select_attributes(a, ["Eyeglases"])
    v = attribute_vector(FACE_ATTRIBUTES, Smiling=1, Eyeglasses=0)
    assert v.shape == (M,)
    assert v[FACE_ATTRIBUTES.index("Smiling")] == 1
    assert v[1] == 0
    assert (v[2:] == NULL).all()
    with pytest.raises(ValueError, match="0 \\(absent\\)"):
        attribute_vector(FACE_ATTRIBUTES, Smiling=3)
    r = random_attributes(50, FACE_ATTRIBUTES, seed=0)
    assert r.shape == (50, M)
    assert torch.equal(r, random_attributes(50, FACE_ATTRIBUTES, seed=0))
    hair = [FACE_ATTRIBUTES.index(n) for n in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")]
    assert (r[:, hair].sum(1) <= 1).all()


# ------------------------------------------------------------------------------------------ the attribute classifier
class Oracle(AttributeClassifier):
    """Predicts attribute m present iff pixel (0, 0, m) of the image is positive: a classifier with known answers."""

    def forward(self, x):
        return x[:, 0, 0, :len(self.names)].float() * 10


def test_attribute_rates_known_case():
    names = ["Smiling", "Eyeglasses", "Male"]
    clf = Oracle(names)
    images = -torch.ones(4, 3, 64, 64)
    images[:, 0, 0, 0] = torch.tensor([1.0, 1, 1, -1])  # sees Smiling on 3 of 4
    images[:, 0, 0, 1] = torch.tensor([-1.0, -1, 1, 1])  # sees Eyeglasses on the last 2
    assert predict_attributes(clf, images)[:, :2].tolist() == [[1, 0], [1, 0], [1, 1], [0, 1]]
    asked = torch.tensor([[1, 1, NULL], [1, 1, NULL], [0, 0, NULL], [0, 0, NULL]])
    rates = attribute_rates(clf, images, asked)
    assert_close(rates[:2], torch.tensor([0.75, 0.0]))  # Smiling ✓ ✓ ✗ ✓; Eyeglasses ✗ ✗ ✗ ✗
    assert torch.isnan(rates[2])  # never asked for
    # chance: requests half 1, a generator showing the attribute with p = 0.8 meets them half the time
    assert_close(chance_rates(asked, torch.tensor([0.8, 0.2, 0.5]))[:2], torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"\(N, M\) = \(4, 3\)"):
        attribute_rates(clf, images, asked[:, :2])
    # real faces read with what the classifier sees as their labels: the reference rate is 1 for every attribute
    assert_close(attribute_rates(clf, images, predict_attributes(clf, images)), torch.ones(3))


def test_carried_spread_is_the_mean_rate_with_an_interval_that_covers_it():
    """The headline "attributes carried" and its bootstrap interval: on a known case the estimate equals the mean of
    attribute_rates (∅ skipped); over 200 synthetic generators whose true per-face hit rate is 0.7, the 95% interval
    covers 0.7 about 95% of the time (tolerance: 88–99%, a binomial spread of 200 trials)."""
    names = ["Smiling", "Eyeglasses", "Male"]
    clf = Oracle(names)
    images = -torch.ones(4, 3, 64, 64)
    images[:, 0, 0, 0] = torch.tensor([1.0, 1, 1, -1])
    images[:, 0, 0, 1] = torch.tensor([-1.0, -1, 1, 1])
    asked = torch.tensor([[1, 1, NULL], [1, 1, NULL], [0, 0, NULL], [0, 0, NULL]])
    est = carried_spread(clf, images, asked, n_boot=100)
    assert est.value == pytest.approx(attribute_rates(clf, images, asked).nanmean().item())  # (0.75 + 0) / 2
    assert est.low <= est.value <= est.high
    g = torch.Generator().manual_seed(0)
    covered = 0
    for trial in range(200):
        n = 100
        truth = (torch.rand(n, 2, generator=g) < 0.5).long()  # what each face shows
        hit = torch.rand(n, 2, generator=g) < 0.7  # the request is met with p = 0.7
        imgs = -torch.ones(n, 3, 64, 64)
        imgs[:, 0, 0, :2] = truth.float() * 2 - 1
        req = torch.cat([torch.where(hit, truth, 1 - truth), torch.full((n, 1), NULL)], 1)
        covered += carried_spread(clf, imgs, req, n_boot=200, seed=trial).contains(0.7)
    assert 0.88 <= covered / 200 <= 0.99, covered
    with pytest.raises(ValueError, match=r"\(N, M\) = \(4, 3\)"):
        carried_spread(clf, images, asked[:, :2])


def test_classifier_trains_saves_and_serves_perceptual_features(toy_root, tmp_path):
    data = load_faces("train", root=toy_root, mode="smoke", verbose=False)
    test = load_faces("test", root=toy_root, mode="smoke", verbose=False)
    path = tmp_path / "clf.pt"
    clf, acc = train_attribute_classifier(data.names, data.images, data.attrs, test.images, test.attrs, steps=15,
                                          batch_size=16, ckpt_path=path, progress=False)
    assert acc.shape == (M,)
    assert ((0 <= acc) & (acc <= 1)).all()
    assert_close(acc, attribute_rates(clf, test.images, test.attrs))  # accuracy = the rate on real faces
    loaded = load_attribute_classifier(path)
    assert loaded.names == FACE_ATTRIBUTES
    assert torch.equal(loaded.test_accuracy, acc)
    x = test.float(4)
    assert_close(loaded(x), clf(x))
    assert_close(loaded(test.images[:4]), clf(x))  # uint8 works as well
    again, acc2 = train_attribute_classifier(data.names, data.images, data.attrs, test.images, test.attrs, steps=15,
                                             ckpt_path=path, progress=False)  # loads, no training
    assert torch.equal(acc2, acc)
    with pytest.raises(ValueError, match="delete it to retrain"):
        train_attribute_classifier(["Smiling"], data.images, data.attrs[:, :1], test.images, test.attrs[:, :1],
                                   steps=1, ckpt_path=path, progress=False)
    feats = clf.features(x)
    assert [f.shape[1:] for f in feats] == [(32, 64, 64), (64, 32, 32), (128, 16, 16)]
    perceptual = PerceptualLoss(clf)
    assert perceptual(x, x).abs().max() < 1e-6
    assert (perceptual(x, x.flip(-2)) > 0).all()
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\).*got \(2, 3, 32, 32\).*load_faces"):
        clf(torch.zeros(2, 3, 32, 32))


# ------------------------------------------------------------------------------------------ localisation
def test_region_share_on_synthetic_maps():
    H = W = 8
    regions = torch.zeros(3, H, W, dtype=torch.bool)
    regions[0, :2, :] = True  # 16 of 64 pixels
    regions[1, :, :4] = True  # 32 of 64
    maps = torch.zeros(2, 3, H, W)
    maps[:, 0, :2, :] = 1.0  # token 0: all inside
    maps[:, 1] = 1.0  # token 1: uniform → chance
    maps[:, 2, :, :] = 0.5  # token 2: an empty region
    share, chance = region_share(maps, regions)
    assert_close(share[:2], torch.tensor([1.0, 0.5]))
    assert_close(chance[:2], torch.tensor([0.25, 0.5]))
    assert torch.isnan(share[2])
    assert torch.isnan(chance[2])
    maps[1, 0] = 0
    maps[1, 0, 7, 7] = 3.0  # image 2 puts 3 units outside; image 1 has 16 inside → 16/19 over the batch
    assert_close(region_share(maps, regions)[0][0], torch.tensor(16 / 19))
    with pytest.raises(ValueError, match=r"token_maps\(size=mask size\)"):
        region_share(maps, regions[:, :4, :4])
    # the same masks given per image, (B, M, H, W), give the same answer
    same = region_share(maps, regions[None].expand(2, 3, H, W))
    assert_close(same[0][:2], region_share(maps, regions)[0][:2])
    assert_close(same[1][:2], region_share(maps, regions)[1][:2])


def test_region_share_with_a_region_per_image():
    """One region per image shared by all tokens, (B, 1, H, W), as notebook 05 uses each digit's ink."""
    H = W = 4
    regions = torch.zeros(2, 1, H, W, dtype=torch.bool)
    regions[0, 0, 0, :] = True  # image 0: the top row, 4 of 16 pixels
    regions[1, 0, :, :2] = True  # image 1: the left half, 8 of 16
    maps = torch.zeros(2, 2, H, W)
    maps[0, 0, 0, :] = 0.25  # token 0 inside its image's region in both images (1 unit each)
    maps[1, 0, :, :2] = 0.125
    maps[:, 1] = 1 / 16  # token 1 uniform: 1 unit per image
    share, chance = region_share(maps, regions)
    assert_close(share, torch.tensor([1.0, (4 / 16 + 8 / 16) / 2]))
    assert_close(chance, torch.tensor([(4 / 16 + 8 / 16) / 2] * 2))  # the regions' mean area
    with pytest.raises(ValueError, match=r"per image \(2, 2 or 1, 4, 4\)"):
        region_share(maps, regions[:1].expand(3, 1, H, W))


def test_attention_localisation_uses_the_toy_regions():
    names = ["Eyeglasses", "Pale_Skin", "Smiling"]
    regions = attribute_regions(16)
    inside = torch.stack([regions["Eyeglasses"].float(), torch.ones(16, 16), regions["Smiling"].float()])[None]
    share, chance = attention_localisation(inside, names)
    assert_close(share[[0, 2]], torch.ones(2))
    assert torch.isnan(share[1])
    assert_close(chance[0], regions["Eyeglasses"].float().mean())
    with pytest.raises(ValueError, match="one square map per attribute"):
        attention_localisation(inside, names[:2])


def test_slerp():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    assert_close(slerp(a, b, 0.0), a)
    assert_close(slerp(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)
    # nearly orthogonal noises of norm ≈ √D: the midpoint keeps the norm, a straight line would shrink it by √2
    ratio = mid.flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1)
    assert (ratio > 0.9).all()
    assert ((a + b) / 2).flatten(1).norm(dim=1).mean() < 0.8 * a.flatten(1).norm(dim=1).mean()


# ------------------------------------------------------------------------------------------ the presets, end to end
@pytest.fixture(scope="module")
def faces_run(tmp_path_factory):
    """`python -m minildm train latent-faces --mode smoke`'s pipeline on a fresh data and runs folder."""
    d = tmp_path_factory.mktemp("faces_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINILDM_DATA", str(d / "data"))
        mp.setenv("MINILDM_RUNS", str(d / "runs"))
        model, ckpt = recipes.train("latent-faces", "smoke", progress=False)
        ae, ae_ckpt = recipes.train("autoencoder-faces", "smoke", progress=False)  # done already: loads
        yield SimpleNamespace(dir=d, model=model, ckpt=ckpt, ae=ae, ae_ckpt=ae_ckpt)


def test_face_presets_train_end_to_end(faces_run):
    runs = faces_run.dir / "runs" / "smoke"
    assert {p.name for p in runs.glob("*.pt")} == {"face_classifier_toy.pt", "autoencoder_faces_toy.pt",
                                                    "latents_faces_train_toy.pt", "latent_faces_toy.pt"}
    assert faces_run.ckpt == runs / "latent_faces_toy.pt"
    assert faces_run.ae_ckpt == runs / "autoencoder_faces_toy.pt"
    assert faces_run.ae.cfg.in_channels == 3
    assert faces_run.ae.cfg.f == 4
    assert float(faces_run.ae.scale_factor) != 1.0
    ckpt = load_checkpoint(faces_run.ckpt, kind="latent_faces")
    assert ckpt["conditioning"] == dict(type="attributes", names=list(FACE_ATTRIBUTES), dim=presets.CONTEXT_DIM)
    assert ckpt["sampling"]["image_size"] == 64
    assert ckpt["train_config"]["p_uncond"] == 0.1
    assert presets.autoencoder_faces("cpu").ae.in_channels == 3
    assert presets.latent_faces("cpu").f == 4


def test_faces_checkpoint_round_trip_and_sampling(faces_run):
    model = load_diffusion(faces_run.ckpt)
    assert model.name == "latent_faces"
    assert model.attributes == FACE_ATTRIBUTES
    assert model.is_latent
    assert model.sample_shape == (3, 16, 16)
    assert model.guidance == 2.0
    y = random_attributes(3, model.attributes, seed=1)
    a = model.sample(3, y=y, guidance=2.0, seed=4, steps=4)
    assert a.shape == (3, 3, 64, 64)
    assert -1 <= a.min()
    assert a.max() <= 1
    assert_close(a, faces_run.model.sample(3, y=y, guidance=2.0, seed=4, steps=4))  # the trained model, reloaded
    with pytest.raises(ValueError, match=rf"\(n, {M}\).*y.expand\(n, -1\)"):
        model.sample(3, y=y[0], steps=2)
    with pytest.raises(ValueError, match=rf"\(B, {M}\).*got shape \(3, 40\)"):
        model.sample(3, y=torch.zeros(3, 40, dtype=torch.long), steps=2)
    with pytest.raises(ValueError, match=r"x_T must be .* \(2, 3, 16, 16\)"):
        model.sample(2, y=y[:2], x_T=torch.randn(2, 4, 16, 16), steps=2)


@pytest.fixture(scope="module")
def jittered(faces_run):
    """The smoke model with jittered weights, so the condition visibly matters after 20 training steps."""
    model = load_diffusion(faces_run.ckpt)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.unet.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def test_edit_attribute_holds_the_noise_fixed(jittered, monkeypatch):
    model = jittered
    calls, starts = [], []
    original = model.sample

    def recording(n, **kw):
        calls.append(kw)
        return original(n, **kw, callback=lambda e: starts.append(e["x_t"].clone()) if e["i"] == 0 else None)

    monkeypatch.setattr(model, "sample", recording)
    y = random_attributes(2, model.attributes, seed=3)
    out = edit_attribute(model, y, "Smiling", seed=7, guidance=1.0, steps=4)
    assert out.shape == (2, 2, 3, 64, 64)
    assert len(calls) == 2
    assert torch.equal(starts[0], starts[1])  # the same z_T enters the sampler
    j = model.attributes.index("Smiling")
    y0, y1 = calls[0]["y"], calls[1]["y"]
    assert (y0[:, j] == 0).all()
    assert (y1[:, j] == 1).all()
    assert torch.equal(torch.cat([y0[:, :j], y0[:, j + 1:]], 1), torch.cat([y1[:, :j], y1[:, j + 1:]], 1))
    assert calls[0]["seed"] == calls[1]["seed"] == 7
    assert (out[0] - out[1]).abs().max() > 1e-4  # the attribute changes the face
    # unconditional (s = 0): the attribute vector is ignored, so the two runs are identical, even when the
    # sampler adds noise at every step (ancestral, η = 1): that noise is held fixed as well
    for sampler in ("ddim", "ddpm"):
        same = edit_attribute(model, y, "Eyeglasses", seed=7, guidance=0.0, steps=4, sampler=sampler)
        assert torch.equal(same[0], same[1])
    with pytest.raises(ValueError, match="did you mean"):
        edit_attribute(model, y, "Smilling")


def test_an_unchanged_edit_is_the_ordinary_sample(jittered):
    """An edit that sets an attribute to the value it already has is model.sample with that seed, bit for bit,
    with per-step noise (ancestral sampling): the edits start from the seed's z_T and the sampler's own noise
    stream, not from a second generator seeded the same (which re-used z_T as the first step's noise)."""
    model = jittered
    y = random_attributes(3, model.attributes, seed=2)
    j = model.attributes.index("Smiling")
    y[:, j] = 1
    edited = edit_attribute(model, y, "Smiling", values=(0, 1), seed=9, guidance=2.0, steps=4, sampler="ddpm")
    ordinary = model.sample(3, y=y, seed=9, guidance=2.0, steps=4, sampler="ddpm", batch_size=3)
    assert torch.equal(edited[1], ordinary)
    assert not torch.equal(edited[0], ordinary)


def test_attention_maps_per_attribute_token(jittered):
    y = random_attributes(2, jittered.attributes, seed=0)
    with capture_attention(jittered.unet, which="cross") as store:
        jittered.sample(2, y=y, guidance=2.0, steps=3, batch_size=2)
    maps = store.token_maps(size=(16, 16))[:2]  # the conditional half of [y; ∅]
    assert maps.shape == (2, M, 16, 16)
    assert_close(maps.sum(1), torch.ones(2, 16, 16))
    share, chance = attention_localisation(maps, jittered.attributes)
    named = ~torch.isnan(share)
    assert named.sum() == M - 1  # all but Pale_Skin
    assert ((share[named] >= 0) & (share[named] <= 1)).all()


def test_cli_samples_a_face_model(faces_run, tmp_path, capsys):
    out, npz = tmp_path / "f.png", tmp_path / "f.npz"
    assert main(["sample", str(faces_run.ckpt), "--n", "3", "--steps", "2", "--attributes", "Smiling=1,Male=0",
                 "--out", str(out), "--npz", str(npz)]) == 0
    labels = np.load(npz)["labels"]
    assert labels.shape == (3, M)
    assert (labels[:, 0] == 1).all()  # Smiling is attribute 0
    assert (labels[:, FACE_ATTRIBUTES.index("Male")] == 0).all()
    capsys.readouterr()
    assert main(["sample", str(faces_run.ckpt), "--n", "2", "--steps", "2", "--attributes", "Smilling=1",
                 "--out", str(out)]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["sample", str(faces_run.ckpt), "--n", "2", "--label", "3", "--out", str(out)]) == 2
    assert "--attributes Smiling=1" in capsys.readouterr().err


def test_cli_train_face_presets_write_their_grids(faces_run, monkeypatch, capsys):
    monkeypatch.setenv("MINILDM_DATA", str(faces_run.dir / "data"))
    monkeypatch.setenv("MINILDM_RUNS", str(faces_run.dir / "runs"))
    for preset, what in [("autoencoder-faces", "test faces, then reconstructions"),
                         ("latent-faces", "random attribute vectors, guidance 2")]:
        assert main(["train", preset, "--mode", "smoke", "--no-progress"]) == 0  # finished: loads, then draws
        out = capsys.readouterr().out
        assert what in out
        grid = faces_run.dir / "runs" / "smoke" / f"{preset.replace('-', '_')}_toy_samples.png"
        assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
