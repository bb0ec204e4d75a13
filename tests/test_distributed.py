"""Several processes (torchrun + DistributedDataParallel, Gloo on CPU): N processes on a global batch take the step
one process takes on it; a torchrun run writes one checkpoint that `sample` reads; a stopped run resumes with the
same or another number of processes. docs/TRAINING.md.

This file is also the program the torchrun tests launch (``-m test_distributed train …``): the command line with
pixel-mnist cut to 6 smoke steps (see :func:`launch`).
"""
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import minildm.ldm
from minildm import distributed, presets, recipes
from minildm.__main__ import main
from minildm.autoencoder import AutoencoderConfig, AutoencoderKL
from minildm.checkpoint import load_checkpoint
from minildm.losses import AutoencoderLossConfig, PatchDiscriminator
from minildm.schedule import make_schedule
from minildm.train import TrainConfig, train_autoencoder, train_diffusion

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCHED = make_schedule("linear", 50)
DATA = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
LABELS = torch.arange(16) % 3
IMAGES = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1  # the PatchGAN needs 16×16


# ------------------------------------------------------------------------------------------ without torchrun
def test_one_process_is_the_plain_loop():
    """No process group: every helper is the identity, so the single-process loop is untouched."""
    model = torch.nn.Linear(2, 2)
    assert (distributed.world(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert distributed.wrap(model) is model
    assert distributed.rows(7) == slice(None)
    assert distributed.mean([1, 2.5]) == (1.0, 2.5)
    assert distributed.anyone(True) and not distributed.anyone(False)
    assert distributed.gather("x") == ["x"]
    distributed.barrier()
    with distributed.main_first():
        pass
    assert distributed.init().type == "cpu"  # no WORLD_SIZE: no process group joined
    assert not torch.distributed.is_initialized()


def test_rows_split_the_global_batch(monkeypatch):
    monkeypatch.setattr(distributed, "world", lambda: 4)
    shares = []
    for r in range(4):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        shares.append(distributed.rows(64))
    assert shares == [slice(0, 16), slice(16, 32), slice(32, 48), slice(48, 64)]
    with pytest.raises(ValueError, match="batch_size 66 does not split evenly over 4 processes.*global batch"):
        distributed.rows(66)


# ------------------------------------------------------------------------------------------ (a) the same step
class Eps(torch.nn.Module):
    """A tiny conditional ε_θ without dropout (dropout draws from each process's own RNG), recording its labels."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.Conv2d(16, 1, 3, padding=1)
        self.t_scale, self.emb = torch.nn.Parameter(torch.randn(16)), torch.nn.Embedding(4, 16)
        self.seen_y = []

    def forward(self, x, t, y):
        self.seen_y.append(y)
        h = self.conv1(x) + (t.float() / 50)[:, None, None, None] * self.t_scale[None, :, None, None]
        return self.conv2(torch.relu(h + self.emb(y)[:, :, None, None]))


def diffusion_run(ckpt_path):
    torch.manual_seed(0)
    model = Eps()
    cfg = TrainConfig(steps=3, batch_size=8, lr=1e-2, warmup=0, grad_clip=0, ema_decay=0.9, p_uncond=0.5,
                      log_every=1, ckpt_every=3)
    res = train_diffusion(model, DATA, SCHED, cfg, labels=LABELS, model_config={"num_classes": 3},
                          ckpt_path=ckpt_path, progress=False)
    return dict(weights=res.model.state_dict(), ema=res.ema.state_dict(), history=[h[1:4] for h in res.history],
                grads={n: p.grad.clone() for n, p in model.named_parameters()},
                seen_y=[torch.cat(ys) for ys in zip(*distributed.gather(model.seen_y))],
                generator=load_checkpoint(ckpt_path)["generator_state"])


def autoencoder_run():
    torch.manual_seed(0)
    ae = AutoencoderKL(AutoencoderConfig(in_channels=1, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                                         z_channels=2))
    disc = PatchDiscriminator(1, 8, 2)
    loss = AutoencoderLossConfig(perceptual_weight=0.0, disc_start=0, adaptive=False)  # λ = 1: per process anyway
    res = train_autoencoder(ae, IMAGES, loss, TrainConfig(steps=1, batch_size=8, warmup=0, log_every=1), disc=disc,
                            progress=False)
    grads = {f"{what}.{n}": p.grad.clone() for what, m in (("ae", ae), ("disc", disc)) for n, p in m.named_parameters()}
    return dict(grads=grads, history=[h[1:6] for h in res.history])


def _ddp_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.init()  # from the environment, as under torchrun
    assert (distributed.world(), distributed.rank()) == (world, rank)
    result = dict(diffusion=diffusion_run(Path(out).with_suffix(".ckpt.pt")), autoencoder=autoencoder_run())
    if distributed.is_main():
        torch.save(result, out)
    distributed.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_take_the_step_one_process_takes(tmp_path):
    """2 processes × 4 rows = 1 process × 8 rows: the same batches, t, ε and condition dropout (each process drew
    the global batch and kept its rows), the same averaged gradients and weights, to float rounding."""
    mp.spawn(_ddp_worker, args=(2, free_port(), str(tmp_path / "ddp.pt")), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp.pt")
    one = dict(diffusion=diffusion_run(tmp_path / "one.pt"), autoencoder=autoencoder_run())

    a, b = one["diffusion"], ddp["diffusion"]
    assert all(torch.equal(x, y) for x, y in zip(a["seen_y"], b["seen_y"]))  # rank 0's rows, then rank 1's
    assert torch.equal(a["generator"], b["generator"])  # the same draws from g, in the same order
    for name in a["grads"]:
        torch.testing.assert_close(b["grads"][name], a["grads"][name], rtol=1e-5, atol=1e-6)
    for what in ("weights", "ema"):
        for name in a[what]:
            torch.testing.assert_close(b[what][name], a[what][name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor(b["history"]), torch.tensor(a["history"]), rtol=1e-5, atol=1e-6)

    # the first stage: ε of z ~ q(z|x) drawn for the global batch too, and both GAN steps. Its gradients (Adam's
    # first steps are ±lr wherever a gradient is mere rounding noise, so weights are compared above only)
    a, b = one["autoencoder"], ddp["autoencoder"]
    for name in a["grads"]:
        torch.testing.assert_close(b["grads"][name], a["grads"][name], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(torch.tensor(b["history"]), torch.tensor(a["history"]), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ torchrun
STEPS = 6
_sample = minildm.ldm.DiffusionModel.sample
_pixel = presets.PRESETS["pixel-mnist"]


def small_pixel(mode=None):
    """pixel-mnist in smoke mode, cut to 6 steps of batch 16 (8 per process) with a checkpoint every 3."""
    p = _pixel(mode)
    p.train = dataclasses.replace(p.train, steps=STEPS, ckpt_every=3, log_every=1)
    p.n_train = 64
    return p


def fast_sample(self, n, **kw):
    return _sample(self, n, **{**kw, "steps": 2})  # the final grid in 2 steps, not 50


def launch(argv) -> int:
    """The command line with pixel-mnist cut to :func:`small_pixel`; with STOP_AT=k, Ctrl-C reaches rank 0 alone
    (callbacks run there) at step k, and every process must stop with it."""
    presets.PRESETS["pixel-mnist"] = small_pixel
    minildm.ldm.DiffusionModel.sample = fast_sample
    stop_at, train = int(os.environ.get("STOP_AT", "0")), recipes.train

    def ctrl_c(event):
        if event["event"] == "log" and event["step"] == stop_at:
            os.kill(os.getpid(), signal.SIGINT)

    if stop_at:
        recipes.train = lambda *a, **kw: train(*a, **kw, callback=ctrl_c)
    return main(argv)


def torchrun(n: int, out: Path, runs: Path, stop_at: int = 0) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")])  # this file, this checkout
    env = {**os.environ, "MINILDM_MODE": "smoke", "MINILDM_RUNS": str(runs), "OMP_NUM_THREADS": "1",
           "STOP_AT": str(stop_at), "PYTHONPATH": path}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "test_distributed", "train", "pixel-mnist", "--no-progress", "--out", str(out)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp_run")
    proc = torchrun(2, d / "run.pt", d / "runs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return d, proc


def test_torchrun_writes_one_checkpoint_that_sample_reads(uninterrupted, capsys):
    d, proc = uninterrupted
    assert proc.stdout.count("pixel_mnist: 2 processes; lr 0.001 for global batch 16 = 2 × 8; not scaled") == 1
    assert proc.stdout.count("_samples.png") == 1  # rank 0 alone reports and draws the grid
    assert sorted(p.name for p in d.rglob("*") if p.is_file()) == ["run.pt", "run_samples.png"]
    ckpt = load_checkpoint(d / "run.pt", kind="pixel_mnist")
    assert ckpt["step"] == STEPS and len(ckpt["history"]) == STEPS
    assert len(ckpt["rng_states"]) == 2 and ckpt["precision"] == "fp32"
    assert main(["sample", str(d / "run.pt"), "--n", "4", "--steps", "2", "--out", str(d / "s.png")]) == 0
    assert (d / "s.png").exists()


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A 2-process run stopped by Ctrl-C on rank 0 at step 2: both processes stop there, with one checkpoint."""
    d = tmp_path_factory.mktemp("ddp_stopped")
    proc = torchrun(2, d / "run.pt", d / "runs", stop_at=2)
    assert proc.returncode != 0
    assert "interrupted: pixel_mnist at step 2; checkpoint written" in proc.stderr, proc.stderr
    assert load_checkpoint(d / "run.pt")["step"] == 2  # not a multiple of ckpt_every = 3: written for the stop
    return d / "run.pt"


def test_a_stopped_run_resumes_with_two_processes_bit_for_bit(uninterrupted, stopped, tmp_path):
    full = load_checkpoint(uninterrupted[0] / "run.pt")
    out = tmp_path / "run.pt"
    shutil.copy(stopped, out)
    resumed = torchrun(2, out, tmp_path / "runs")  # the same command again: continues from step 2
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    ckpt = load_checkpoint(out)
    assert ckpt["step"] == STEPS and [h[0] for h in ckpt["history"]] == list(range(1, STEPS + 1))
    for name, w in full["model"].items():  # the same N: bit for bit (Gloo's sums come in a fixed order)
        assert torch.equal(ckpt["model"][name], w), name
    assert [h[1] for h in ckpt["history"]] == [h[1] for h in full["history"]]


def test_a_two_process_checkpoint_resumes_in_one_process(uninterrupted, stopped, tmp_path, monkeypatch):
    """The same batches and noise, float rounding apart (one process sums the batch in another order)."""
    full = load_checkpoint(uninterrupted[0] / "run.pt")
    out = tmp_path / "one.pt"
    shutil.copy(stopped, out)
    monkeypatch.setitem(presets.PRESETS, "pixel-mnist", small_pixel)
    monkeypatch.setattr(minildm.ldm.DiffusionModel, "sample", fast_sample)
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path / "runs"))
    assert main(["train", "pixel-mnist", "--mode", "smoke", "--no-progress", "--out", str(out)]) == 0
    one = load_checkpoint(out)
    assert one["step"] == STEPS and "rng_states" not in one
    for name, w in full["model"].items():
        assert torch.isfinite(one["model"][name]).all()
        torch.testing.assert_close(one["model"][name], w, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.tensor([h[1] for h in one["history"]]),
                               torch.tensor([h[1] for h in full["history"]]), rtol=1e-4, atol=1e-5)


if __name__ == "__main__":  # what torchrun runs: python -m torch.distributed.run … -m test_distributed ARGS
    sys.exit(launch(sys.argv[1:]))
