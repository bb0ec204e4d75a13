"""Mixed precision in the training loops (TrainConfig.precision): chosen by device, bf16 on CPU learns and resumes,
fp16's GradScaler is checkpointed, the weights stay float32, and old fp32 checkpoints resume as before."""
import math
import warnings

import pytest
import torch
from conftest import StopRun, stop_after
from test_train import DATA, MC, SCHED, build, cfg

from minildm.autoencoder import AutoencoderConfig, AutoencoderKL
from minildm.checkpoint import load_checkpoint, save_checkpoint
from minildm.losses import AutoencoderLossConfig, PatchDiscriminator
from minildm.train import TrainConfig, _Reconstruction, resolve_precision, train_autoencoder, train_diffusion


def test_precision_is_chosen_by_device(monkeypatch):
    assert resolve_precision(None, "cpu") == "fp32"
    assert [resolve_precision(p, "cpu") for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16 or None"):
        resolve_precision("half", "cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100
    assert resolve_precision(None, "cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)  # a T4
    assert resolve_precision(None, "cuda") == "fp16"
    with pytest.raises(ValueError, match="this GPU has no bfloat16"):
        resolve_precision("bf16", "cuda")


def test_fp16_on_a_cpu_without_it_is_a_clear_error(monkeypatch):
    def no_cpu_fp16(*a, **k):
        raise RuntimeError("CPU autocast does not support float16")  # what an older torch says

    monkeypatch.setattr(torch, "autocast", no_cpu_fp16)
    with pytest.raises(ValueError, match="precision='fp16' is not supported on cpu.*use 'bf16' or 'fp32'"):
        resolve_precision("fp16", "cpu")


def test_bf16_learns_a_tiny_batch():
    res = train_diffusion(build(MC), DATA[:4], SCHED, cfg(steps=80, batch_size=16, warmup=5, precision="bf16"),
                          progress=False)
    losses = [h[1] for h in res.history]
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    assert all(p.dtype == torch.float32 for p in res.model.parameters())  # float32 master weights
    assert all(p.dtype == torch.float32 for p in res.ema.parameters())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_killed_mixed_precision_run_resumes(tmp_path, precision):
    full = train_diffusion(build(MC), DATA, SCHED, cfg(precision=precision), ckpt_path=tmp_path / "a.pt",
                           model_config=MC, progress=False)
    with pytest.raises(StopRun):
        train_diffusion(build(MC), DATA, SCHED, cfg(log_every=1, precision=precision), ckpt_path=tmp_path / "b.pt",
                        model_config=MC, callback=stop_after(7), progress=False)
    torch.manual_seed(1234)
    resumed = train_diffusion(build({**MC, "init_seed": 99}), DATA, SCHED, cfg(log_every=1, precision=precision),
                              ckpt_path=tmp_path / "b.pt", model_config=MC, progress=False)
    assert resumed.steps_done == 6 and len(resumed.history) == 12
    assert all(torch.isfinite(p).all() for p in resumed.model.parameters())
    # bit for bit, as in fp32: the same CPU kernels in the same order
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert [h[1] for h in full.history] == [h[1] for h in resumed.history]
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    assert a["precision"] == b["precision"] == precision
    assert all(v.dtype == torch.float32 for v in b["model"].values())  # the checkpoint holds float32 weights
    if precision == "fp16":  # the GradScaler's state went into the checkpoint and came back: 12 good steps counted
        assert b["grad_scaler"] == a["grad_scaler"]
        assert b["grad_scaler"]["_growth_tracker"] == 12
    else:
        assert b["grad_scaler"] == {}


def test_fp16_skips_an_overflowing_step_instead_of_stopping():
    """fp16 gradients that overflow are the GradScaler's business: it skips the update and halves its scale; only a
    non-finite loss stops the run."""
    model = build(MC)
    with torch.no_grad():
        model.conv2.weight.mul_(1e3)  # outputs ~1e3: loss × 65536 overflows fp16 in the backward
    res = train_diffusion(model, DATA, SCHED, cfg(steps=3, precision="fp16"), progress=False)
    assert res.steps_done == 3
    assert all(math.isfinite(h[1]) for h in res.history)  # the losses are finite
    assert not any(math.isfinite(h[3]) for h in res.history)  # skipped updates: their gradient norms are not


def test_fp32_is_unchanged_and_old_checkpoints_resume_quietly(tmp_path):
    """A checkpoint written before precision existed (no precision, grad_scaler or new TrainConfig fields) resumes
    without a warning, bit for bit like any fp32 run."""
    full = train_diffusion(build(MC), DATA, SCHED, cfg(), ckpt_path=tmp_path / "a.pt", model_config=MC,
                           progress=False)
    with pytest.raises(StopRun):
        train_diffusion(build(MC), DATA, SCHED, cfg(log_every=1), ckpt_path=tmp_path / "b.pt", model_config=MC,
                        callback=stop_after(7), progress=False)
    ckpt = load_checkpoint(tmp_path / "b.pt")
    old = {k: v for k, v in ckpt.items() if k not in ("format", "version", "kind", "config", "precision",
                                                      "grad_scaler")}
    old["train_config"] = {k: v for k, v in old["train_config"].items() if k not in ("precision", "compile")}
    save_checkpoint(tmp_path / "b.pt", old, kind=ckpt["kind"], config=ckpt["config"])
    assert TrainConfig.from_dict(old["train_config"]) == cfg(log_every=1)  # missing keys take their defaults
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = train_diffusion(build(MC), DATA, SCHED, cfg(log_every=1), ckpt_path=tmp_path / "b.pt",
                                  model_config=MC, progress=False)
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.warns(UserWarning) as caught:  # resuming in another precision is a different run: said so
        train_diffusion(build(MC), DATA, SCHED, cfg(steps=14, precision="bf16"), ckpt_path=tmp_path / "b.pt",
                        model_config=MC, progress=False)
    assert any("trained in fp32, in bf16; the run will not match" in str(w.message) for w in caught)


def test_the_first_stage_under_bf16_keeps_q_and_its_kl_in_float32():
    torch.manual_seed(0)
    ae = AutoencoderKL(AutoencoderConfig(in_channels=1, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                                         z_channels=2))
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    net = _Reconstruction(ae, torch.Generator().manual_seed(0), 4, slice(None))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_hat, q = net(x)
    assert x_hat.dtype == torch.bfloat16  # the decoder ran in bf16
    assert q.mean.dtype == q.logvar.dtype == q.kl().dtype == torch.float32
    # and without autocast it is AutoencoderKL's own forward, draw for draw
    want, q_want = ae(x, sample_posterior=True, generator=torch.Generator().manual_seed(0))
    got, q_got = _Reconstruction(ae, torch.Generator().manual_seed(0), 4, slice(None))(x)
    assert torch.equal(got, want) and torch.equal(q_got.kl(), q_want.kl())

    images = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    res = train_autoencoder(ae, images, AutoencoderLossConfig(perceptual_weight=0.0, disc_start=2),
                            TrainConfig(steps=4, batch_size=8, warmup=0, precision="bf16"),
                            disc=PatchDiscriminator(1, 8, 2), progress=False)
    assert res.steps_done == 4 and all(all(v == v for v in h) for h in res.history)
    assert all(p.dtype == torch.float32 for p in ae.parameters())


def test_compile_switch_compiles_the_network_the_step_calls(monkeypatch):
    """cfg.compile wraps what the step calls in torch.compile (here a stand-in: compiling takes ~25 s on 2 cores);
    the model itself, its checkpoint keys and its EMA stay plain."""
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)
    model = build(MC)
    train_diffusion(model, DATA, SCHED, cfg(steps=2, compile=True), progress=False)
    assert compiled == [model]
    train_diffusion(build(MC), DATA, SCHED, cfg(steps=2), progress=False)
    assert compiled == [model]
