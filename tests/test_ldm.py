"""Latent diffusion (notebook 04): latents s·ℰ(x) and back, the cached encoding, training ε_θ on latents,
sampling images from a DiffusionModel, and loading / exporting its checkpoints."""
import copy
import dataclasses
import warnings
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

import minildm.samplers

from minildm import presets, recipes
from minildm.autoencoder import AutoencoderKL, compute_scale_factor
from minildm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minildm.data import mnist
from minildm.latents import encode_dataset, fingerprint
from minildm.ldm import DiffusionModel
from minildm.release import export_diffusion, load_diffusion
from minildm.shipped import shipped
from minildm.schedule import make_schedule
from minildm.unet import UNet, UNetConfig


def make_ae(seed: int = 0, f: int = 4) -> AutoencoderKL:
    """An untrained smoke-size first stage (z_channels 4, f = 4: 32×32 → 4×8×8)."""
    torch.manual_seed(seed)
    return AutoencoderKL(presets.autoencoder_mnist("smoke", f=f).ae).eval()


def header_free(ckpt: dict) -> dict:
    return {k: v for k, v in ckpt.items() if k not in ("format", "version", "kind", "config")}


@pytest.fixture(scope="module")
def digits():
    return mnist("train", size=32, n=64)  # (64, 1, 32, 32) in [−1, 1], (64,)


@pytest.fixture(scope="module")
def ae(digits):
    """The first stage every latent test shares, with s = 1/std(z) set on the digits. Do not modify: copy it."""
    model = make_ae()
    compute_scale_factor(model, digits[0])
    return model


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory, ae, digits):
    """latent_mnist (smoke) trained for 60 steps on the cached latents of 64 real digits, with a checkpoint."""
    d = tmp_path_factory.mktemp("latent_run")
    z = encode_dataset(ae, digits[0], cache_path=d / "latents.pt")
    preset = presets.latent_mnist("smoke")
    preset.train = dataclasses.replace(preset.train, steps=60)
    result, sched = recipes.train_preset(preset, z, ckpt_path=d / "latent.pt", progress=False, first_stage=ae)
    return SimpleNamespace(dir=d, z=z, preset=preset, result=result, sched=sched, ckpt=d / "latent.pt",
                           model=recipes.to_model(preset, result.ema, ae))


def tiny_pixel_model(num_classes=None, T=1000) -> DiffusionModel:
    """An untrained pixel DiffusionModel (the smoke UNet), optionally class-conditional. Its weights are jittered:
    a fresh UNet's zero-initialised output convs would predict ε = 0 whatever the input or label."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(presets.pixel_mnist("smoke").unet, num_classes=num_classes)
    unet = UNet(cfg)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return DiffusionModel(unet.eval(), make_schedule("linear", T), None, image_size=32, clip_x0=1.0)


# ------------------------------------------------------------------------------------------ latents and back
def test_latent_round_trip_and_unit_std(digits):
    x = digits[0]
    model = make_ae()
    with torch.no_grad():
        model.scale_factor.fill_(0.37)
        mu = model.encode(x[:8]).mode()
        z = model.encode_latents(x[:8])
        assert_close(z, 0.37 * mu)
        assert_close(model.decode_latents(z), model.decode(mu))  # 𝒟(s·z / s) = 𝒟(z)
        # s = 1/std(z) over the data, from the unscaled posterior means (the old s does not leak in)
        s = compute_scale_factor(model, x)
        assert s == pytest.approx(1 / model.encode(x).mode().std().item(), rel=1e-4)
        assert float(model.scale_factor) == pytest.approx(s)
        assert s != pytest.approx(0.37)
        assert model.encode_latents(x).std().item() == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------------------------------ encode_dataset
def test_encode_dataset_shape_and_batch_size(ae, digits):
    x = digits[0][:20]
    with torch.no_grad():
        ref = ae.encode_latents(x)
    ae.train()
    try:
        z = encode_dataset(ae, x, batch_size=7)  # 7 + 7 + 6
        assert ae.training  # the autoencoder's mode is restored
    finally:
        ae.eval()
    assert z.shape == (20, 4, 8, 8)
    assert z.device.type == "cpu"
    assert not z.requires_grad
    assert_close(z, ref)
    assert_close(encode_dataset(ae, x, batch_size=500), z)


def test_encode_dataset_cache_hit_and_invalidation(ae, digits, tmp_path):
    x, path = digits[0][:16], tmp_path / "latents.pt"
    z1 = encode_dataset(ae, x, cache_path=path)
    assert load_checkpoint(path, kind="latents")["config"]["fingerprint"] == fingerprint(ae)

    # a second call loads the cache: the encoder is never run
    same = copy.deepcopy(ae)
    def boom(*args, **kwargs):
        raise AssertionError("encoded again instead of loading the cache")
    same.encode_latents = boom
    same.encode = boom
    assert torch.equal(encode_dataset(same, x, cache_path=path), z1)

    # a changed autoencoder (one weight) makes the cache stale: recomputed, and the cache now holds the new latents
    changed = copy.deepcopy(ae)
    with torch.no_grad():
        changed.encoder.net[-1].weight.mul_(1.5)
    assert fingerprint(changed) != fingerprint(ae)
    z2 = encode_dataset(changed, x, cache_path=path)
    assert not torch.allclose(z2, z1)
    with torch.no_grad():
        assert_close(z2, changed.encode_latents(x))
    assert load_checkpoint(path, kind="latents")["config"]["fingerprint"] == fingerprint(changed)

    # the scale factor alone is part of the key too
    rescaled = copy.deepcopy(changed)
    rescaled.scale_factor.mul_(2)
    assert_close(encode_dataset(rescaled, x, cache_path=path), 2 * z2)

    # a different number of images is a different data set
    assert encode_dataset(rescaled, digits[0][:10], cache_path=path).shape == (10, 4, 8, 8)


def test_encode_dataset_cache_notices_changed_images(ae, digits, tmp_path):
    """The docstring promises a recompute when "the data changed"; same count and shape, other digits."""
    path = tmp_path / "latents.pt"
    encode_dataset(ae, digits[0][:16], cache_path=path)
    other = digits[0][16:32]
    with torch.no_grad():
        assert_close(encode_dataset(ae, other, cache_path=path), ae.encode_latents(other))


@pytest.mark.parametrize("damage", ["random_bytes", "truncated", "other_kind"])
def test_encode_dataset_damaged_cache_is_recomputed(ae, digits, tmp_path, damage):
    x, path = digits[0][:8], tmp_path / "latents.pt"
    z = encode_dataset(ae, x, cache_path=path)
    if damage == "random_bytes":
        path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        save_checkpoint(path, dict(latents=torch.zeros(8, 4, 8, 8)), kind="pixel_ddpm",
                        config=load_checkpoint(path)["config"])
    assert torch.equal(encode_dataset(ae, x, cache_path=path), z)
    assert torch.equal(load_checkpoint(path, kind="latents")["latents"], z)  # and the cache is whole again


def test_presets_latents_caches_under_runs_dir(ae, tmp_path, monkeypatch):
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path))
    z, labels = recipes.latents(ae, "test", n=12)
    path = tmp_path / "smoke" / "latents_f4_test.pt"
    assert path.is_file()
    assert z.shape == (12, 4, 8, 8)
    x, y = mnist("test", size=32, n=12)
    assert torch.equal(labels, y)
    with torch.no_grad():
        assert_close(z, ae.encode_latents(x))
    assert torch.equal(load_checkpoint(path, kind="latents")["latents"], z)


# ------------------------------------------------------------------------------------------ training on latents
def test_latent_preset_learns_on_cached_latents(latent_run, ae):
    res = latent_run.result
    losses = [h[1] for h in res.history]
    assert res.steps_done == 60
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10, (losses[:10], losses[-10:])
    # the latents it saw have unit std, as s was computed on them
    assert latent_run.z.std().item() == pytest.approx(1.0, abs=1e-4)
    # the checkpoint carries what load_diffusion needs: sampling settings and the frozen first stage
    ckpt = load_checkpoint(latent_run.ckpt, kind="latent_mnist")
    assert ckpt["step"] == 60
    assert ckpt["sampling"]["latent"] is True
    assert ckpt["sampling"]["clip_x0"] is None
    assert ckpt["sampling"]["T"] == latent_run.preset.T
    assert ckpt["sampling"]["image_size"] == 32
    assert ckpt["first_stage"]["config"] == ae.cfg.to_dict()
    assert torch.equal(ckpt["first_stage"]["state"]["scale_factor"], ae.scale_factor)


def test_train_preset_rejects_wrong_inputs(ae, digits, latent_run):
    preset = presets.latent_mnist("smoke")
    with pytest.raises(ValueError, match="first_stage"):
        recipes.train_preset(preset, latent_run.z, progress=False)
    with pytest.raises(ValueError, match=r"4 channels.*\(64, 1, 32, 32\)"):
        recipes.train_preset(preset, digits[0], progress=False, first_stage=ae)  # pixels to a latent preset
    with pytest.raises(ValueError, match="1 channels"):
        recipes.train_preset(presets.pixel_mnist("smoke"), latent_run.z, progress=False)  # and the reverse


def test_train_preset_refuses_a_run_trained_with_another_schedule(ae, latent_run):
    """A finished (or interrupted) run is loaded by its path; had the preset's β schedule changed since, its ε_θ would
    be sampled with the wrong ᾱ_t, silently. It is refused, with both schedules named."""
    assert latent_run.preset.schedule == "linear"
    other = dataclasses.replace(latent_run.preset, schedule="scaled_linear")
    with pytest.raises(CheckpointError, match=r"'linear' β schedule.*now uses 'scaled_linear'.*another path"):
        recipes.train_preset(other, latent_run.z, ckpt_path=latent_run.ckpt, progress=False, first_stage=ae)
    result, sched = recipes.train_preset(latent_run.preset, latent_run.z, ckpt_path=latent_run.ckpt, progress=False,
                                         first_stage=ae)  # the same schedule: loaded as before
    assert result.steps_done == 0 and torch.equal(sched.betas, latent_run.sched.betas)


# ------------------------------------------------------------------------------------------ sampling
def test_latent_sample_shapes_range_and_latents(latent_run):
    model = latent_run.model
    assert model.is_latent
    assert model.sample_shape == (4, 8, 8)
    assert model.num_classes is None
    images, z0 = model.sample(5, steps=4, seed=1, return_latents=True)
    assert images.shape == (5, 1, 32, 32)
    assert z0.shape == (5, 4, 8, 8)
    assert images.min() >= -1
    assert images.max() <= 1
    assert_close(images, model.decode(z0))  # the images are 𝒟(z_0 / s), clamped
    # latent samples are not clipped to [−1, 1] while sampling (LDM's latents are unbounded)
    assert z0.abs().max() > 1


def test_sample_is_seeded_and_batch_size_independent(latent_run):
    model = latent_run.model
    a = model.sample(8, steps=4, seed=3)
    assert torch.equal(a, model.sample(8, steps=4, seed=3))
    assert not torch.allclose(a, model.sample(8, steps=4, seed=4))
    assert_close(model.sample(8, steps=4, seed=3, batch_size=3), a, atol=1e-5, rtol=1e-5)
    # a generator instead of a seed: the same stream
    assert torch.equal(model.sample(8, steps=4, generator=torch.Generator().manual_seed(3)), a)


def test_stochastic_sample_is_seeded_but_batch_dependent(latent_run):
    """The docstring: stochastic samplers are reproducible per seed, but draw per-step noise per batch."""
    model = latent_run.model
    a = model.sample(8, steps=4, eta=1.0, seed=3, batch_size=8)
    assert torch.equal(model.sample(8, steps=4, eta=1.0, seed=3, batch_size=8), a)
    assert not torch.allclose(model.sample(8, steps=4, eta=1.0, seed=3, batch_size=3), a)


def test_given_x_T_leaves_the_per_step_noise_where_it_was(latent_run, monkeypatch):
    """sample(seed=s, x_T=z_T(s)) is sample(seed=s), for stochastic samplers too: the seed's z_T is drawn (and set
    aside) before the per-step noise either way. The defect this guards against: with x_T given, the generator
    started afresh, so the first per-step noise *was* x_T when x_T came from the same seed (notebook 06's edits)."""
    model = latent_run.model
    z_T = torch.randn((4, *model.sample_shape), generator=torch.Generator().manual_seed(5))
    for sampler, kw in (("ddpm", dict(steps=4)), ("ddim", dict(steps=4, eta=1.0))):
        ordinary = model.sample(4, sampler=sampler, seed=5, **kw)
        assert torch.equal(model.sample(4, sampler=sampler, seed=5, x_T=z_T, **kw), ordinary)
    drawn = []
    real_noise = minildm.samplers._noise_like
    monkeypatch.setattr(minildm.samplers, "_noise_like", lambda x, g: drawn.append(real_noise(x, g)) or drawn[-1])
    model.sample(4, sampler="ddpm", steps=4, seed=5, x_T=z_T)
    first = drawn[0].flatten()
    r = torch.corrcoef(torch.stack([first, z_T.flatten()]))[0, 1]
    assert abs(r) < 4 / first.numel() ** 0.5  # independent draws: |r| ~ 1/√D; the old stream gave r = 1


def test_ddpm_with_all_steps():
    model = tiny_pixel_model(T=20)
    images = model.sample(2, sampler="ddpm", steps=20, seed=0)
    assert images.shape == (2, 1, 32, 32)
    assert images.abs().max() <= 1
    assert torch.equal(model.sample(2, sampler="ddpm", steps=20, seed=0), images)
    assert not torch.allclose(model.sample(2, sampler="ddpm", steps=20, seed=1), images)


def test_ddpm_with_fewer_steps_than_T(latent_run):
    """The docstring: ddpm with ``steps`` < T takes that many evenly spaced steps, η = 1 — that is DDIM with η = 1
    on the same sub-sequence (DDIM Eq. 16 with η = 1 is DDPM's posterior variance on the respaced chain)."""
    model = latent_run.model
    images = model.sample(3, sampler="ddpm", steps=5, seed=0)
    assert images.shape == (3, 1, 32, 32)
    assert images.abs().max() <= 1
    assert_close(images, model.sample(3, sampler="ddim", steps=5, eta=1.0, seed=0))


def test_sample_argument_errors():
    model = tiny_pixel_model()
    with pytest.raises(ValueError, match="unknown sampler 'plms'.*ddpm.*ddim|unknown sampler 'plms'.*ddim.*ddpm"):
        model.sample(2, sampler="plms")
    with pytest.raises(ValueError, match="unknown spacing 'uniform'; choose one of leading, trailing, linspace"):
        model.sample(2, steps=2, spacing="uniform")
    for n in (0, -1):
        with pytest.raises(ValueError, match="n must be at least 1"):
            model.sample(n, steps=2)
    cond = tiny_pixel_model(num_classes=10)
    with pytest.raises(ValueError, match="class-conditional.*10 classes.*pass labels y"):
        cond.sample(2, steps=2)
    with pytest.raises(ValueError, match="3 labels for n = 2"):
        cond.sample(2, steps=2, y=torch.tensor([1, 2, 3]))


def test_class_conditional_sample():
    model = tiny_pixel_model(num_classes=10)
    assert model.num_classes == 10
    assert not model.is_latent
    assert model.sample_shape == (1, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    images = model.sample(4, steps=3, y=y)
    assert images.shape == (4, 1, 32, 32)
    assert images.abs().max() <= 1
    assert_close(model.sample(4, steps=3, y=y.tolist(), batch_size=3), images, atol=1e-5, rtol=1e-5)  # labels split too
    other = model.sample(4, steps=3, y=torch.tensor([7, 7, 7, 7]))
    assert not torch.allclose(other, images)  # the label reaches ε_θ


# ------------------------------------------------------------------------------------------ checkpoints
def test_load_diffusion_matches_the_trained_model(latent_run, ae):
    loaded = load_diffusion(latent_run.ckpt)
    assert isinstance(loaded, DiffusionModel)
    assert not loaded.training
    assert not loaded.unet.training
    assert loaded.is_latent
    assert loaded.name == "latent_mnist"
    assert loaded.sample_shape == (4, 8, 8)
    assert loaded.checkpoint_info["step"] == 60
    assert torch.equal(loaded.first_stage.scale_factor, ae.scale_factor)
    for (k, a), b in zip(ae.state_dict().items(), loaded.first_stage.state_dict().values()):
        assert torch.equal(a, b), k
    want = latent_run.model.sample(4, steps=4, seed=7)
    assert_close(loaded.sample(4, steps=4, seed=7), want, atol=1e-4, rtol=1e-4)
    # ema=False: the raw weights instead
    raw = load_diffusion(latent_run.ckpt, ema=False)
    raw_want = recipes.to_model(latent_run.preset, latent_run.result.model, ae).sample(4, steps=4, seed=7)
    assert_close(raw.sample(4, steps=4, seed=7), raw_want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(raw_want, want)


def test_export_diffusion(latent_run, tmp_path, ae):
    src = latent_run.ckpt
    dst = export_diffusion(src, tmp_path / "release.pt", command="pytest", seconds=1.5)
    assert dst.stat().st_size < src.stat().st_size
    ckpt = load_checkpoint(dst, kind="latent_mnist")
    assert "optimizer" not in ckpt
    assert "model" not in ckpt
    assert ckpt["step"] == 60
    assert ckpt["release"] == {"command": "pytest", "seconds": 1.5}
    want = load_diffusion(src).sample(4, steps=4, seed=2)
    released = load_diffusion(dst)
    assert released.checkpoint_info["release"]["command"] == "pytest"
    assert torch.equal(released.sample(4, steps=4, seed=2), want)

    half = export_diffusion(src, tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.7 * dst.stat().st_size
    stored = load_checkpoint(half)
    assert stored["ema"]["conv_in.weight"].dtype == torch.float16
    assert stored["first_stage"]["state"]["scale_factor"].dtype == torch.float32
    small = load_diffusion(half)
    assert all(p.dtype == torch.float32 for p in small.parameters())  # loaded back as float32
    assert torch.equal(small.first_stage.scale_factor, ae.scale_factor)  # exact
    assert_close(small.sample(4, steps=4, seed=2), want, atol=1e-2, rtol=0)


def test_load_diffusion_refuses_other_checkpoints(latent_run, ae, tmp_path):
    p = tmp_path / "ae.pt"
    save_checkpoint(p, dict(model=ae.state_dict()), kind="autoencoder_kl", config=ae.cfg.to_dict())
    with pytest.raises(CheckpointError, match="'autoencoder_kl'"):
        load_diffusion(p)
    with pytest.raises(CheckpointError, match="'autoencoder_kl'"):
        export_diffusion(p, tmp_path / "out.pt")
    # a latent checkpoint without its first stage cannot decode its samples
    ckpt = load_checkpoint(latent_run.ckpt)
    payload = {**header_free(ckpt), "first_stage": None}
    bare = save_checkpoint(tmp_path / "bare.pt", payload, kind=ckpt["kind"], config=ckpt["config"])
    with pytest.raises(CheckpointError, match="without its autoencoder"):
        load_diffusion(bare)


def test_load_diffusion_reads_latent_presets_at_every_f(digits, tmp_path):
    """latent_mnist(f=8) is named 'latent_mnist_f8'; its checkpoint must still load, export and sample."""
    ae8 = make_ae(f=8)
    preset = presets.latent_mnist("smoke", f=8)
    preset.train = dataclasses.replace(preset.train, steps=1)
    z = encode_dataset(ae8, digits[0][:8])
    recipes.train_preset(preset, z, ckpt_path=tmp_path / "f8.pt", progress=False, first_stage=ae8)
    assert load_checkpoint(tmp_path / "f8.pt")["sampling"]["preset"] == "latent_mnist_f8"
    model = load_diffusion(tmp_path / "f8.pt")
    assert model.is_latent
    assert model.sample_shape == (4, 4, 4)
    assert model.first_stage.cfg.f == 8
    images = model.sample(1, steps=2)
    assert images.shape == (1, 1, 32, 32)
    release = export_diffusion(tmp_path / "f8.pt", tmp_path / "f8_release.pt")
    assert torch.equal(load_diffusion(release).sample(1, steps=2), images)


def test_matched_params_gives_f8_the_capacity_of_the_other_factors():
    """Notebook 04's f-study compares networks of one size: at f = 8 (one level fewer on the 4×4 latent)
    ``matched_params`` widens the UNet to within 5% of f = 4's parameter count; without it the cpu preset's f = 8
    keeps the width and about a quarter of the parameters. Counted on real modules, not the meta device."""
    def count(preset):
        return sum(p.numel() for p in UNet(preset.unet).parameters())

    for mode in ("smoke", "cpu", "gpu"):
        n4 = count(presets.latent_mnist(mode, f=4))
        assert abs(count(presets.latent_mnist(mode, f=8, matched_params=True)) / n4 - 1) < 0.05, mode
        assert count(presets.latent_mnist(mode, f=2, matched_params=True)) == n4  # f = 2 and 4 already match
    assert count(presets.latent_mnist("cpu", f=8)) < 0.3 * count(presets.latent_mnist("cpu", f=4))


def test_shipped_missing_name_lists_what_is_shipped():
    with pytest.raises(CheckpointError, match=r"no shipped weights named 'no_such_model'.*shipped: .*mnist_classifier"):
        shipped("no_such_model")
    assert shipped("mnist_classifier").is_file()


# ------------------------------------------------------------------------------------------ time budget
def test_max_seconds_stops_early_and_resumes(latent_run, ae, tmp_path):
    preset = presets.latent_mnist("smoke")
    preset.train = dataclasses.replace(preset.train, steps=1000, max_seconds=0.5, ckpt_every=1000, log_every=1000)
    path = tmp_path / "timed.pt"
    res, _ = recipes.train_preset(preset, latent_run.z, ckpt_path=path, progress=False, first_stage=ae)
    n = res.steps_done
    assert 0 < n < 1000
    assert len(res.history) == n
    if n > 1:
        assert res.history[-2][4] < 0.5  # it kept going while under budget …
    assert load_checkpoint(path)["step"] == n  # … and checkpointed where it stopped

    # the budget is for the whole run: resuming with the same one takes no step and leaves the checkpoint alone.
    # (≤ 1: the resumed clock starts from the last step's recorded time, a few µs before the first run's final check)
    mtime = path.stat().st_mtime_ns
    again, _ = recipes.train_preset(preset, latent_run.z, ckpt_path=path, progress=False, first_stage=ae)
    assert again.steps_done <= 1
    if again.steps_done == 0:
        assert path.stat().st_mtime_ns == mtime
    n += again.steps_done

    # lifting the budget (and the step count) continues the same run, without a "different settings" warning
    preset.train = dataclasses.replace(preset.train, steps=n + 3, max_seconds=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        more, _ = recipes.train_preset(preset, latent_run.z, ckpt_path=path, progress=False, first_stage=ae)
    assert more.steps_done == 3
    assert [h[0] for h in more.history] == list(range(1, n + 4))
    assert load_checkpoint(path)["step"] == n + 3


# ------------------------------------------------------------------------------------------ conditional checkpoints
@pytest.fixture(scope="module")
def class_run(tmp_path_factory, ae, digits):
    """latent_mnist_class (smoke): a cross-attention UNet + ClassEncoder, 6 steps with condition dropout."""
    d = tmp_path_factory.mktemp("class_run")
    preset = presets.latent_mnist_class("smoke")
    preset.train = dataclasses.replace(preset.train, steps=6, ckpt_every=6)
    z = encode_dataset(ae, digits[0])
    result, _ = recipes.train_preset(preset, z, labels=digits[1], ckpt_path=d / "class.pt", progress=False,
                                     first_stage=ae)
    with torch.no_grad():  # a 6-step model is near its zero-initialised output: jitter so labels matter
        for p in result.ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return SimpleNamespace(dir=d, preset=preset, result=result, ckpt=d / "class.pt")


def test_class_conditional_checkpoint_round_trip(class_run, ae):
    """The checkpoint carries τ_θ's spec: load_diffusion rebuilds UNet + ClassEncoder and the preset's guidance."""
    ckpt = load_checkpoint(class_run.ckpt, kind="latent_mnist")
    assert ckpt["conditioning"] == dict(type="class", num_classes=10, dim=presets.CONTEXT_DIM)
    model = load_diffusion(class_run.ckpt)
    assert type(model.unet).__name__ == "ConditionalUNet"
    assert model.num_classes == 10
    assert model.guidance == 2.0
    y = torch.tensor([0, 3, 7])
    assert model.unet.encoder.embed.weight.shape == (11, presets.CONTEXT_DIM)  # 10 classes + the null class
    a = model.sample(3, steps=3, seed=1, y=y, guidance=2.0)
    assert a.shape == (3, 1, 32, 32)
    assert torch.equal(a, model.sample(3, steps=3, seed=1, y=y, guidance=2.0))


def test_guidance_scales_on_a_loaded_model(class_run):
    """s = 1 is the conditional model, s ≠ 1 changes the samples, and s = 0 ignores the labels."""
    model = recipes.to_model(class_run.preset, class_run.result.ema,
                             load_diffusion(class_run.ckpt).first_stage)
    y1, y2 = torch.tensor([1, 1]), torch.tensor([8, 8])
    cond = model.sample(2, steps=3, seed=0, y=y1, guidance=1.0)
    assert not torch.allclose(cond, model.sample(2, steps=3, seed=0, y=y1, guidance=4.0))
    assert not torch.allclose(cond, model.sample(2, steps=3, seed=0, y=y2, guidance=1.0))
    assert_close(model.sample(2, steps=3, seed=0, y=y1, guidance=0.0),
                 model.sample(2, steps=3, seed=0, y=y2, guidance=0.0))


def test_export_keeps_the_conditioning(class_run, tmp_path):
    dst = export_diffusion(class_run.ckpt, tmp_path / "rel.pt")
    a, b = load_diffusion(class_run.ckpt), load_diffusion(dst)
    y = torch.tensor([2, 5])
    assert torch.equal(a.sample(2, steps=3, seed=0, y=y, guidance=3.0), b.sample(2, steps=3, seed=0, y=y, guidance=3.0))


def test_a_loaded_model_reports_its_own_name():
    """The shipped class and text models are checkpoints of kind latent_mnist; they name themselves by their preset,
    in errors and in `sample --info` (they used to report the kind, latent_mnist)."""
    from minildm.conditions import conditions_for

    for name in ("latent_mnist", "latent_mnist_class", "latent_mnist_text"):
        model = load_diffusion(name)
        assert model.name == name
    with pytest.raises(ValueError, match="latent_mnist_class is class-conditional"):
        conditions_for(load_diffusion("latent_mnist_class"), 2, prompt="a seven")
