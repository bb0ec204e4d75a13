"""Training loop and checkpoints: it learns, resumes bit for bit, and fails clearly on bad files."""
import math
import os

import pytest
from conftest import StopRun, stop_after
import torch
from torch import nn

from minildm.checkpoint import (CheckpointError, CheckpointNotFoundError, load_checkpoint, save_checkpoint)
from minildm.schedule import make_schedule
from minildm.train import EMA, TrainConfig, TrainResult, ema_decay_at, lr_at, train_diffusion



class TinyEps(nn.Module):
    """A 2-layer conv ε_θ that uses t trivially (a learned per-channel bias times t/T), with dropout so the
    global RNG matters, and an optional label embedding with a null class."""

    def __init__(self, channels=1, hidden=16, num_classes=None):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1)
        self.t_scale = nn.Parameter(torch.zeros(hidden))
        self.drop = nn.Dropout(0.1)
        self.emb = nn.Embedding(num_classes + 1, hidden) if num_classes else None
        self.seen_y = []

    def forward(self, x, t, y=None):
        h = self.conv1(x) + (t.float() / 50).reshape(-1, 1, 1, 1) * self.t_scale.reshape(1, -1, 1, 1)
        if y is not None:
            self.seen_y.append(y)
            h = h + self.emb(y)[:, :, None, None]
        return self.conv2(self.drop(torch.relu(h)))


def build(config):
    torch.manual_seed(config.get("init_seed", 0))
    return TinyEps(hidden=config["hidden"], num_classes=config.get("num_classes"))


SCHED = make_schedule("linear", 50)
DATA = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1  # (N, C, H, W) in [−1, 1]
MC = {"hidden": 16}


def cfg(**kw):
    base = dict(steps=12, batch_size=8, lr=1e-2, warmup=3, ema_decay=0.9, log_every=4, ckpt_every=3, seed=0)
    return TrainConfig(**{**base, **kw})


def test_overfits_a_tiny_batch():
    res = train_diffusion(build(MC), DATA[:4], SCHED, cfg(steps=80, batch_size=16, warmup=5), progress=False)
    losses = [h[1] for h in res.history]
    assert isinstance(res, TrainResult)
    assert res.steps_done == 80
    assert len(res.history) == 80
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    assert [h[0] for h in res.history] == list(range(1, 81))
    assert all(h[2] <= 1e-2 for h in res.history)
    assert res.history[0][2] == pytest.approx(1e-2 / 5)  # warm-up


def test_resume_is_bit_for_bit(tmp_path):
    full = train_diffusion(build(MC), DATA, SCHED, cfg(), ckpt_path=tmp_path / "a.pt", model_config=MC,
                           progress=False)

    with pytest.raises(StopRun):  # "kill" the run after step 7; the last checkpoint on disk is step 6
        train_diffusion(build(MC), DATA, SCHED, cfg(log_every=1), ckpt_path=tmp_path / "b.pt", model_config=MC,
                        callback=stop_after(7), progress=False)
    assert load_checkpoint(tmp_path / "b.pt")["step"] == 6
    torch.manual_seed(1234)  # a "new process": different global RNG and a differently initialised model
    fresh = build({**MC, "init_seed": 99})
    resumed = train_diffusion(fresh, DATA, SCHED, cfg(log_every=1), ckpt_path=tmp_path / "b.pt", model_config=MC,
                              progress=False)
    assert resumed.steps_done == 6
    assert len(resumed.history) == 12
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(full.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert [h[1] for h in full.history] == [h[1] for h in resumed.history]
    # an already finished run returns at once with its history
    again = train_diffusion(build(MC), DATA, SCHED, cfg(), ckpt_path=tmp_path / "a.pt", progress=False)
    assert again.steps_done == 0
    assert [h[1] for h in again.history] == [h[1] for h in full.history]
    # the checkpoint holds the EMA weights the run returned
    stored = load_checkpoint(tmp_path / "a.pt", kind="pixel_mnist")["ema"]
    for a, b in zip(stored.values(), full.ema.state_dict().values()):
        assert torch.equal(a, b)


def test_progress_bar_names_the_run_and_a_finished_run_draws_none(tmp_path, capsys):
    """The bar says which run trains (its checkpoint's name, e.g. latent_mnist_text, not the kind latent_mnist);
    loading a finished run prints no empty "100% 12/12" bar."""
    ckpt = tmp_path / "my_text_model.pt"
    train_diffusion(build(MC), DATA, SCHED, cfg(), ckpt_path=ckpt, model_config=MC, progress=True)
    assert "my_text_model: 100%" in capsys.readouterr().err
    again = train_diffusion(build(MC), DATA, SCHED, cfg(), ckpt_path=ckpt, model_config=MC, progress=True)
    assert again.steps_done == 0
    assert "100%" not in capsys.readouterr().err


def test_labels_and_condition_dropout():
    labels = torch.arange(16) % 3
    model = build({**MC, "num_classes": 3})
    train_diffusion(model, DATA, SCHED, cfg(steps=10, batch_size=32, p_uncond=0.3), labels=labels,
                    model_config={**MC, "num_classes": 3}, progress=False)
    y = torch.cat(model.seen_y)
    frac_null = (y == 3).float().mean().item()  # null label = num_classes
    assert 0.15 < frac_null < 0.45
    assert set(y.tolist()) == {0, 1, 2, 3}


def test_callback_events():
    events = []
    train_diffusion(build(MC), DATA, SCHED, cfg(steps=6, log_every=2, sample_every=3), callback=events.append,
                    progress=False)
    assert [(e["event"], e["step"]) for e in events] == [("log", 2), ("sample", 3), ("log", 4), ("log", 6),
                                                          ("sample", 6)]
    assert {"loss", "lr", "grad_norm", "history", "model", "ema"} <= set(events[0])


# ------------------------------------------------------------------------------------------ checkpoints
def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    p = tmp_path / "ckpt.pt"
    save_checkpoint(p, {"w": torch.randn(100, 100)}, kind="pixel_ddpm", config=MC)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or not a minildm checkpoint.*delete it and re-run training"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="damaged"):  # and training refuses to resume from it
        train_diffusion(build(MC), DATA, SCHED, cfg(), ckpt_path=p, progress=False)


def test_wrong_kind_missing_foreign_and_newer(tmp_path):
    p = tmp_path / "ae.pt"
    save_checkpoint(p, {"w": torch.ones(2)}, kind="autoencoder", config={})
    with pytest.raises(CheckpointError, match=r"holds a 'autoencoder' checkpoint, expected 'pixel_ddpm'"):
        load_checkpoint(p, kind="pixel_ddpm")
    assert load_checkpoint(p, kind=("ldm", "autoencoder"))["kind"] == "autoencoder"
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint at .*nope.pt.*shipped weights"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a minildm checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"format": "minildm-checkpoint", "version": 99, "kind": "x", "config": {}}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="version 99.*update minildm"):
        load_checkpoint(tmp_path / "new.pt")
    torch.save(nn.Linear(2, 2), tmp_path / "pickled.pt")  # a whole pickled module: refused by weights_only
    with pytest.raises(CheckpointError, match="not a minildm checkpoint"):
        load_checkpoint(tmp_path / "pickled.pt")
    with pytest.raises(TypeError, match=r"checkpoint\['m'\] is a Linear"):  # refused at save time
        save_checkpoint(tmp_path / "bad.pt", {"m": nn.Linear(2, 2)}, kind="x", config={})


def test_save_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "ckpt.pt"
    save_checkpoint(p, {"w": torch.zeros(3)}, kind="pixel_ddpm", config=MC)
    save_checkpoint(p, {"w": torch.ones(3)}, kind="pixel_ddpm", config=MC)
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temp files left behind

    def crash(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(p, {"w": torch.full((3,), 2.0)}, kind="pixel_ddpm", config=MC)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    assert torch.equal(load_checkpoint(p, kind="pixel_ddpm")["w"], torch.ones(3))  # the old one, intact


# ------------------------------------------------------------------------------------------------ the EMA
class Counter(nn.Module):
    """θ is one number, set to k at step k, and a buffer that holds the step: what the EMA does is readable."""

    def __init__(self):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(()))
        self.register_buffer("seen", torch.zeros(()))


def run_ema(steps: int, max_decay: float, power: float) -> tuple[EMA, Counter]:
    model = Counter()
    ema = EMA(model, max_decay, power)
    for k in range(1, steps + 1):
        with torch.no_grad():
            model.theta.fill_(k)
            model.seen.fill_(k)
        ema.update_parameters(model)
    return ema, model


def ema_weights(steps: int, max_decay: float, power: float) -> list:
    """The weight of step k's θ in θ_ema after ``steps`` updates, from the recursion's closed form:
    w_k = (1 − d_{k−1}) · Π_{j ≥ k} d_j  (update n = k − 1 mixes in step k's θ, d_0 = 0: the first copies θ)."""
    d = [ema_decay_at(n, max_decay, power) for n in range(steps)]
    w = []
    for k in range(1, steps + 1):
        tail = 1.0
        for j in range(k, steps):
            tail *= d[j]
        w.append((1 - d[k - 1]) * tail)
    return w


def test_ema_decay_warms_up_to_its_cap():
    assert ema_decay_at(0, 0.995) == 0.0  # the first update copies θ
    assert ema_decay_at(1, 0.995, power=1.0) == 0.5  # p = 1: the running mean (1 − 1/(n + 1))
    assert ema_decay_at(9, 0.999, power=0.75) == pytest.approx(1 - 10 ** -0.75)
    assert ema_decay_at(10**6, 0.995) == 0.995
    d = [ema_decay_at(n, 0.995) for n in range(3000)]
    assert all(a <= b for a, b in zip(d, d[1:]))
    assert d.index(0.995) == math.ceil(200 ** (1 / 0.75) - 1)  # capped once (1 + n)^−p ≤ 1 − 0.995


@pytest.mark.parametrize("steps, max_decay, power", [(50, 0.9, 0.75), (300, 0.995, 0.75), (40, 0.999, 1.0)])
def test_ema_gives_each_past_step_its_closed_form_weight(steps, max_decay, power):
    ema, model = run_ema(steps, max_decay, power)
    w = ema_weights(steps, max_decay, power)
    assert sum(w) == pytest.approx(1.0)
    expected = sum(k * wk for k, wk in zip(range(1, steps + 1), w))
    assert ema.module.theta.item() == pytest.approx(expected, rel=1e-5)
    assert ema.module.seen.item() == steps  # the buffer is copied, not averaged
    if power == 1.0 and max_decay ** steps < 1e-3:  # uncapped p = 1: the plain mean of every step's θ
        assert ema.module.theta.item() == pytest.approx((steps + 1) / 2, rel=1e-5)


def test_a_short_runs_ema_forgets_its_warm_up():
    """The defect: decay 0.995 from step 0 left ~37% of a 200-step run's EMA on the initial copy, and in a 3000-step
    run the first 200 steps kept weight through the constant decay. With the warm-up, after 3000 steps the first
    200 steps hold < 10⁻⁶ of θ_ema, and after 200 steps the initial copy holds < 1%."""
    w = ema_weights(3000, 0.995, 0.75)
    assert sum(w[:200]) < 1e-6
    assert ema_weights(200, 0.995, 0.75)[0] < 0.01
    assert 0.995 ** 200 > 0.36  # what the constant decay gave the initial copy


def test_lr_warms_up_then_drops_once():
    """lr_at: lr·(n+1)/warmup for the first ``warmup`` steps, then lr, then lr·lr_drop from lr_drop_at on; the
    discriminator's optimiser asks with drop=False and keeps lr. And the loop really uses it (history column 2)."""
    c = TrainConfig(lr=1e-3, warmup=4, lr_drop_at=8, lr_drop=0.1)
    assert [lr_at(n, c) for n in range(10)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3,
                                                              1e-4, 1e-4])
    assert [lr_at(n, c, drop=False) for n in (8, 100)] == pytest.approx([1e-3, 1e-3])
    assert lr_at(100, TrainConfig(lr=1e-3, warmup=4)) == pytest.approx(1e-3)  # lr_drop_at = 0: never
    res = train_diffusion(build(MC), DATA, SCHED, cfg(steps=10, lr_drop_at=6, lr_drop=0.5, ckpt_every=100),
                          progress=False)
    assert [row[2] for row in res.history] == pytest.approx([lr_at(n, res_cfg) for n, res_cfg in
                                                             zip(range(10), [cfg(lr_drop_at=6, lr_drop=0.5)] * 10)])
    assert res.history[-1][2] == pytest.approx(0.5e-2)
