"""The command line: every command's --help, sampling checkpoints into PNG + .npz, export, and one-line errors."""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import minildm.shipped
from minildm import presets, recipes
from minildm.__main__ import main
from minildm.autoencoder import AutoencoderKL, compute_scale_factor
from minildm.checkpoint import load_checkpoint, save_checkpoint
from minildm.data import mnist
from minildm.latents import encode_dataset
from minildm.release import load_diffusion

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m minildm ARGS`` in a fresh process (smoke mode, one thread), from the repository root."""
    env = {**os.environ, "MINILDM_MODE": "smoke", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "minildm", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def one_error_line(err: str) -> str:
    """stderr must be exactly one line, ``error: …``, and no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Tiny checkpoints trained here: a latent one (with its autoencoder), a class-conditional pixel one, and the
    autoencoder's own checkpoint."""
    d = tmp_path_factory.mktemp("cli")
    x, y = mnist("train", size=32, n=32)
    torch.manual_seed(0)
    ae = AutoencoderKL(presets.autoencoder_mnist("smoke").ae).eval()
    compute_scale_factor(ae, x)
    save_checkpoint(d / "ae.pt", dict(model=ae.state_dict()), kind="autoencoder_kl", config=ae.cfg.to_dict())

    latent = presets.latent_mnist("smoke")
    latent.train = dataclasses.replace(latent.train, steps=4, ckpt_every=4)
    recipes.train_preset(latent, encode_dataset(ae, x), ckpt_path=d / "latent.pt", progress=False, first_stage=ae)

    pixel = presets.pixel_mnist("smoke")
    pixel.unet = dataclasses.replace(pixel.unet, num_classes=10)
    pixel.train = dataclasses.replace(pixel.train, steps=3, ckpt_every=3)
    recipes.train_preset(pixel, x, labels=y, ckpt_path=d / "cond.pt", progress=False)
    return SimpleNamespace(dir=d, latent=d / "latent.pt", cond=d / "cond.pt", ae=d / "ae.pt")


# ------------------------------------------------------------------------------------------ --help
HELP = {
    "demo": ["--out", "--n", "--steps", "--seed", "--train"],
    "train": ["autoencoder-mnist", "pixel-mnist", "latent-mnist", "latent-mnist-class", "latent-mnist-text", "--mode",
              "--out", "--no-progress"],
    "sample": ["checkpoint", "--n", "--sampler", "--steps", "--spacing", "--eta", "--seed", "--label", "--out",
               "--npz", "--device", "--info", "--prompt", "--guidance"],
    "export": ["src", "dst", "--half", "--command-line", "--note", "--guidance"],
    "notebook": ["name", "--mode", "--out", "--timeout"],
}


@pytest.mark.parametrize("command", list(HELP))
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m minildm {command}")
    for option in HELP[command]:
        assert option in out, (command, option)


def test_help_in_a_real_process():
    """``python -m minildm sample --help`` in a fresh process: exit 0, the usage, and nothing on stderr (no warning
    at import). One command is enough: the others share the import and the parser (test_help, in process)."""
    proc = run_cli("sample", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("usage: python -m minildm sample")


# ------------------------------------------------------------------------------------------ sample
def test_sample_latent_checkpoint(ckpts, tmp_path, capsys):
    png, npz = tmp_path / "grid.png", tmp_path / "out" / "s.npz"
    assert main(["sample", str(ckpts.latent), "--n", "6", "--steps", "3", "--out", str(png), "--npz", str(npz),
                 "--info"]) == 0
    out = capsys.readouterr().out
    assert "latent diffusion" in out
    assert "(4, 8, 8)" in out
    assert "'step': 4" in out
    assert png.read_bytes()[:8] == PNG_MAGIC
    with np.load(npz) as f:
        assert set(f.files) == {"images"}  # no labels for an unconditional model
        images = f["images"]
    assert images.shape == (6, 1, 32, 32)
    assert images.dtype == np.float32
    assert images.min() >= 0
    assert images.max() <= 1
    # exactly the model's samples for the default seed 0, mapped [−1, 1] → [0, 1]
    want = (load_diffusion(ckpts.latent).sample(6, sampler="ddpm", steps=3, seed=0) + 1) / 2  # the CLI default
    assert_close(torch.from_numpy(images), want, atol=1e-5, rtol=0)


def test_sample_class_conditional_checkpoint(ckpts, tmp_path, capsys):
    npz = tmp_path / "c.npz"
    assert main(["sample", str(ckpts.cond), "--n", "6", "--steps", "3", "--out", str(tmp_path / "c.png"),
                 "--npz", str(npz)]) == 0
    with np.load(npz) as f:
        assert f["images"].shape == (6, 1, 32, 32)
        assert f["labels"].tolist() == [0, 1, 2, 3, 4, 5]  # default: 0..9 cycling
    assert main(["sample", str(ckpts.cond), "--n", "6", "--steps", "3", "--label", "3",
                 "--out", str(tmp_path / "c3.png"), "--npz", str(npz)]) == 0
    with np.load(npz) as f:
        assert f["labels"].tolist() == [3] * 6
    capsys.readouterr()
    assert main(["sample", str(ckpts.cond), "--n", "2", "--label", "10", "--out", str(tmp_path / "x.png")]) == 2
    assert "0..9" in one_error_line(capsys.readouterr().err)


def test_sample_ddpm_with_few_steps(ckpts, tmp_path, capsys):
    """``--sampler ddpm --steps 3``: ancestral sampling on 3 respaced steps."""
    npz = tmp_path / "d.npz"
    rc = main(["sample", str(ckpts.latent), "--sampler", "ddpm", "--steps", "3", "--n", "2",
               "--out", str(tmp_path / "d.png"), "--npz", str(npz)])
    assert rc == 0, capsys.readouterr().err
    with np.load(npz) as f:
        assert f["images"].shape == (2, 1, 32, 32)


def test_sample_with_an_ode_solver_and_a_spacing(tmp_path, capsys):
    """``sample latent_mnist --sampler heun --steps 4 --spacing trailing``: the shipped model's images, exactly the
    library's for that sampler and spacing."""
    npz, png = tmp_path / "h.npz", tmp_path / "h.png"
    rc = main(["sample", "latent_mnist", "--sampler", "heun", "--steps", "4", "--spacing", "trailing", "--n", "2",
               "--out", str(png), "--npz", str(npz)])
    assert rc == 0, capsys.readouterr().err
    assert "heun-4 (trailing spacing)" in capsys.readouterr().out
    assert png.read_bytes()[:8] == PNG_MAGIC
    with np.load(npz) as f:
        images = f["images"]
    want = load_diffusion(minildm.shipped.shipped("latent_mnist")).sample(2, sampler="heun", steps=4,
                                                                          spacing="trailing", seed=0)
    assert_close(torch.from_numpy(images), (want + 1) / 2, atol=1e-5, rtol=0)


@pytest.mark.parametrize("argv, needle", [
    (["--sampler", "plms"], "unknown sampler 'plms'; choose one of ddpm, ddim, euler, heun, dpmpp_2m, euler_ancestral"),
    (["--spacing", "uniform"], "unknown spacing 'uniform'; choose one of leading, trailing, linspace"),
    (["--sampler", "dpmpp_2m", "--eta", "0.5"], "the dpmpp_2m sampler is deterministic"),
])
def test_sample_bad_sampler_or_spacing_is_one_line(tmp_path, capsys, argv, needle):
    png = tmp_path / "x.png"
    assert main(["sample", "latent_mnist", "--n", "2", "--steps", "2", *argv, "--out", str(png)]) == 2
    assert needle in one_error_line(capsys.readouterr().err)
    assert not png.exists()


def test_label_on_unconditional_model(ckpts, tmp_path, capsys):
    png = tmp_path / "x.png"
    assert main(["sample", str(ckpts.latent), "--n", "2", "--steps", "2", "--label", "3", "--out", str(png)]) == 2
    assert "unconditional" in one_error_line(capsys.readouterr().err)
    assert not png.exists()


# ------------------------------------------------------------------------------------------ errors: one line, exit 2
def test_missing_checkpoint_in_a_real_process(tmp_path):
    proc = run_cli("sample", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert "nope.pt" in one_error_line(proc.stderr)
    assert not (tmp_path / "x.png").exists()


def test_sample_errors(ckpts, tmp_path, capsys):
    png = str(tmp_path / "x.png")
    assert main(["sample", str(tmp_path / "missing.pt"), "--out", png]) == 2
    assert "missing.pt" in one_error_line(capsys.readouterr().err)

    assert main(["sample", str(ckpts.ae), "--out", png]) == 2  # an autoencoder is not a diffusion model
    assert "'autoencoder_kl'" in one_error_line(capsys.readouterr().err)

    junk = tmp_path / "junk.pt"
    junk.write_bytes(torch.randint(0, 256, (2048,), generator=torch.Generator().manual_seed(0),
                                   dtype=torch.uint8).numpy().tobytes())
    assert main(["sample", str(junk), "--out", png]) == 2
    assert "not a minildm checkpoint" in one_error_line(capsys.readouterr().err)

    assert main(["sample", str(ckpts.latent), "--n", "0", "--out", png]) == 2
    assert "--n must be at least 1" in one_error_line(capsys.readouterr().err)
    assert not Path(png).exists()


def test_train_unknown_preset_lists_presets(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path))
    assert main(["train", "nonexistent-preset"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "'nonexistent-preset'" in line
    for name in presets.PRESETS:
        assert name in line
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_demo_without_shipped_weights(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(minildm.shipped, "WEIGHTS_DIR", tmp_path / "weights")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "no shipped weights named 'latent_mnist'" in line
    assert "--train" in line
    assert not (tmp_path / "demo").exists()


# ------------------------------------------------------------------------------------------ export
def test_export(ckpts, tmp_path, capsys):
    dst = tmp_path / "release.pt"
    assert main(["export", str(ckpts.latent), str(dst), "--note", "4 steps", "--command-line", "pytest"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert dst.stat().st_size < ckpts.latent.stat().st_size
    ckpt = load_checkpoint(dst, kind="latent_mnist")
    assert "optimizer" not in ckpt
    assert ckpt["release"] == {"command": "pytest", "note": "4 steps"}
    want = load_diffusion(ckpts.latent).sample(3, steps=2, seed=0)
    assert torch.equal(load_diffusion(dst).sample(3, steps=2, seed=0), want)
    # and the release file samples from the command line too
    assert main(["sample", str(dst), "--n", "3", "--steps", "2", "--out", str(tmp_path / "r.png")]) == 0

    assert main(["export", str(ckpts.ae), str(tmp_path / "bad.pt")]) == 2
    assert "'autoencoder_kl'" in one_error_line(capsys.readouterr().err)


def test_guidance_flag_errors(ckpts, tmp_path, capsys):
    """--guidance on an unconditional model, or on a label-embedding model without a null condition: one line."""
    for ckpt, needle in ((ckpts.latent, "unconditional"), (ckpts.cond, "null condition")):
        rc = main(["sample", str(ckpt), "--n", "2", "--steps", "2", "--guidance", "2", "--out", str(tmp_path / "g.png")])
        assert rc == 2
        assert needle in one_error_line(capsys.readouterr().err)


@pytest.fixture(scope="module")
def text_ckpt(tmp_path_factory):
    """recipes.train("latent-mnist-text", "smoke") end to end: captions → tokenizer → text-conditional checkpoint."""
    d = tmp_path_factory.mktemp("text")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINILDM_RUNS", str(d))
    try:
        _, ckpt = recipes.train("latent-mnist-text", "smoke", progress=False)
    finally:
        mp.undo()
    return ckpt


def test_text_checkpoint_carries_its_tokenizer(text_ckpt):
    ckpt = load_checkpoint(text_ckpt, kind="latent_mnist")
    spec = ckpt["conditioning"]
    assert spec["type"] == "text"
    assert spec["tokenizer"]["vocab"][:3] == ["<pad>", "<unk>", "<null>"]
    model = load_diffusion(text_ckpt)
    assert model.tokenizer is not None
    assert "seven" in model.tokenizer.vocab
    y = model.tokenizer.encode_batch(["a seven", "a thick two"])
    assert model.sample(2, steps=2, y=y, guidance=2.0).shape == (2, 1, 32, 32)


def test_sample_prompt(text_ckpt, tmp_path, capsys):
    npz = tmp_path / "p.npz"
    assert main(["sample", str(text_ckpt), "--n", "3", "--steps", "2", "--prompt", "a thick seven",
                 "--out", str(tmp_path / "p.png"), "--npz", str(npz)]) == 0
    assert np.load(npz)["labels"].tolist() == [7, 7, 7]  # the digit the prompt names
    # an unknown word, a label for a text model, a prompt for an unconditional model: one line each
    for argv, needle in ((["--prompt", "a purple seven"], "unknown word 'purple'"), (["--label", "3"], "--prompt"),):
        assert main(["sample", str(text_ckpt), "--n", "2", "--steps", "2", *argv, "--out", str(tmp_path / "x.png")]) == 2
        assert needle in one_error_line(capsys.readouterr().err)


def test_prompt_on_unconditional_model(ckpts, tmp_path, capsys):
    assert main(["sample", str(ckpts.latent), "--n", "2", "--steps", "2", "--prompt", "a seven",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "unconditional" in one_error_line(capsys.readouterr().err)


def test_demo_attention_maps(text_ckpt, tmp_path, capsys):
    from minildm.__main__ import _demo_attention
    from minildm.release import load_diffusion as load

    args = SimpleNamespace(prompt="a thick seven", sampler="ddpm", steps=2, seed=0)
    _demo_attention(load(text_ckpt), args, tmp_path)
    assert (tmp_path / "attention.png").read_bytes()[:8] == PNG_MAGIC


def test_train_text_preset_writes_its_grid(tmp_path, monkeypatch, capsys):
    """`train latent-mnist-text` end to end in smoke mode, final grid included (it once crashed there)."""
    monkeypatch.setenv("MINILDM_RUNS", str(tmp_path))
    assert main(["train", "latent-mnist-text", "--mode", "smoke", "--no-progress"]) == 0
    assert (tmp_path / "smoke" / "latent_mnist_text_samples.png").read_bytes()[:8] == PNG_MAGIC
    assert "digits 0–9 cycling" in capsys.readouterr().out


def test_train_faces_data_choice(tmp_path, monkeypatch, capsys):
    """--faces celeba without CelebA on disk: one line saying where the files go; --faces on an MNIST preset: refused."""
    monkeypatch.setenv("MINILDM_DATA", str(tmp_path))  # an empty data root: no CelebA here
    assert main(["train", "latent-faces", "--mode", "smoke", "--faces", "celeba", "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "celeba" in line.lower()
    assert "list_attr_celeba.txt" in line
    assert main(["train", "latent-mnist", "--mode", "smoke", "--faces", "toy"]) == 2
    assert "MNIST" in one_error_line(capsys.readouterr().err)
