"""The command line: ``python -m minildm COMMAND`` (or ``minildm COMMAND`` once installed).

Commands (``python -m minildm COMMAND --help`` for each):
  demo              sample digits from the shipped weights in seconds (``--train``: retrain them first, cpu mode)
  train PRESET      train a preset (autoencoder-mnist, pixel-mnist, latent-mnist, latent-mnist-class, …,
                    autoencoder-faces, latent-faces); resumes
  sample CKPT       sample a diffusion checkpoint (or a shipped model's name) into a PNG grid and an .npz
  upscale MODEL     ×4 super-resolution of low-resolution images in an .npz (notebook 08)
  inpaint MODEL     fill the masked pixels of images in an .npz (notebook 08)
  export SRC DST    a small release checkpoint (EMA weights + first stage, no optimizer) from a training one
  notebook NN       execute notebook NN headless (cpu mode by default) and write its figures as PNG files

The command line parses arguments, calls the library and prints; the library decides (what a default condition is,
which sampler a name means, what a checkpoint holds). Errors the user can fix (a missing file, a wrong checkpoint,
missing data, an argument out of range) print one line and exit with code 2; Ctrl-C prints one line and exits
with 130 (``train`` has written a checkpoint first, so the same command resumes); docs/DOORS.md lists them all.
"""
from __future__ import annotations

import argparse
import base64
import math
import os
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import distributed, recipes, semantic
from .attention_maps import capture_attention
from .celeba import CelebADataMissing
from .checkpoint import CheckpointError, load_checkpoint
from .conditions import conditions_for, parse_attributes
from .config import MODES, get_device, get_mode, runs_dir
from .data import MNISTDataMissing, mnist
from .evaluate import Evaluator
from .faces import attribute_vector, load_faces
from .presets import PRESETS
from .release import export_diffusion, load_diffusion
from .restoration import example_grid, inpaint, upscale
from .samplers import SAMPLERS
from .shipped import resolve, shipped, shipped_names
from .spacing import SPACINGS
from .train import NonFiniteLossError, check_resumable
from .viz import save_grid, show_attention

ROOT = Path(__file__).resolve().parent.parent


class CLIError(Exception):
    """An error the user can fix; printed as one line, exit code 2, no traceback."""


def cmd_notebook(args: argparse.Namespace) -> None:
    if args.timeout < 1:
        raise CLIError(f"--timeout is the seconds each cell may take, at least 1 (got {args.timeout}); the default "
                       "is 3600")
    nb_dir = ROOT / "notebooks"
    known = [p.stem for p in sorted(nb_dir.glob("[0-9][0-9]_*.ipynb"))]
    name = args.name.strip()
    name = "0" + name if name in tuple("123456789") else name  # "1" is notebook 01
    # by number (a prefix: 01, 01_forward), else by a word of its name (celeba)
    matches = (sorted(nb_dir.glob(f"{name}*.ipynb")) or sorted(nb_dir.glob(f"[0-9][0-9]_*{name}*.ipynb"))) \
        if name else []
    if not matches:
        raise CLIError(f"no notebook matches {args.name!r} in {nb_dir}; give its number, e.g. 01 (known: "
                       f"{', '.join(known) or 'none found'})")
    if len(matches) > 1:
        raise CLIError(f"{args.name!r} matches {len(matches)} notebooks ({', '.join(p.stem for p in matches)}); give "
                       f"one's number, e.g. {matches[0].stem[:2]}")
    path = matches[0]
    out = Path(args.out) / path.stem
    _check_folder(f"--out {args.out}", out)
    mode = args.mode or get_mode()
    try:
        import nbformat  # the dev extra (pip install -e '.[dev]'), needed by this command only
        from nbclient import NotebookClient
    except ImportError as e:
        raise CLIError(f"the notebook command needs nbclient, nbformat and ipykernel ({e}); pip install -e '.[dev]'") \
            from None
    out.mkdir(parents=True, exist_ok=True)
    os.environ["MINILDM_MODE"] = mode
    nb = nbformat.read(path, as_version=4)
    print(f"executing {path.name} in {mode} mode …", flush=True)
    t0 = time.time()
    NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(nb_dir)}}).execute()
    n = 0
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            png = o.get("data", {}).get("image/png")
            if png:
                n += 1
                (out / f"figure_{n:02d}.png").write_bytes(base64.b64decode(png))
    nbformat.write(nb, out / path.name)
    print(f"done in {time.time() - t0:.0f} s: {n} figures and the executed notebook in {out}/")


def _output(flag: str, path: str | None, suffix: str) -> Path | None:
    """Check an output path before any work is done: a file name ending in ``suffix`` whose folder exists or can be
    made, and is writable. Returns it as a Path (None stays None)."""
    if path is None:
        return None
    out = Path(path)
    if out.is_dir():
        stem = "checkpoint" if suffix == ".pt" else "samples"
        raise CLIError(f"{flag} {path} is a folder; give a file name, e.g. {out / (stem + suffix)}")
    if out.suffix.lower() != suffix:
        raise CLIError(f"{flag} {path} must end in {suffix}, e.g. {out.with_suffix(suffix)}")
    _check_folder(f"{flag} {path}", out.parent)
    return out


def _check_folder(what: str, folder: Path) -> None:
    """``folder`` is a writable folder, or can be made: its nearest existing parent is a writable folder. Creates
    nothing, so that a command refused later on leaves no trace."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents, Path(".")) if p.exists())
    if not existing.is_dir():
        raise CLIError(f"{what}: cannot create its folder {folder}: {existing} is a file; choose a writable path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CLIError(f"{what}: the folder {existing} is not writable; choose another path")


def _check_seed(seed: int) -> None:
    if not 0 <= seed < 2**64:  # torch's generators take 0 … 2**64 − 1, NumPy's (the face attributes) no negatives
        raise CLIError(f"--seed must be a whole number from 0 to 2**64 - 1 (got {seed})")


def _write_samples(images, labels, out: Path | None, npz: Path | None, nrow: int | None = None) -> None:
    """images (N, C, H, W) in [−1, 1] → a PNG grid and/or an .npz with images (N, C, H, W) float32 in [0, 1]."""
    if out:
        print(f"wrote {save_grid(images, out, nrow=nrow)}")
    if npz:
        npz.parent.mkdir(parents=True, exist_ok=True)
        arrays = dict(images=((images.float().cpu() + 1) / 2).clamp(0, 1).numpy().astype(np.float32))
        if labels is not None and labels.is_floating_point():  # a layout model's (N, K, 5): class, x0, y0, x1, y1
            arrays["layouts"] = labels.cpu().numpy().astype(np.float32)
        elif labels is not None:
            arrays["labels"] = labels.cpu().numpy().astype(np.int64)
        np.savez_compressed(npz, **arrays)
        print(f"wrote {npz}: " + ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in arrays.items()))


def cmd_sample(args: argparse.Namespace) -> None:
    if args.n < 1:
        raise CLIError(f"--n must be at least 1 (got {args.n})")
    _check_seed(args.seed)
    out, npz = _output("--out", args.out, ".png"), _output("--npz", args.npz, ".npz")
    device = get_device(args.device)
    model = load_diffusion(resolve(args.checkpoint), map_location=device)
    if args.info:
        print(f"{model.name}: {'latent' if model.is_latent else 'pixel'} diffusion, "
              f"{'v' if model.prediction == 'v' else 'ε'}_θ on {model.sample_shape}, "
              f"{sum(p.numel() for p in model.unet.parameters()):,} UNet parameters; {model.checkpoint_info}")
        if hasattr(model.unet, "check_condition"):  # an image-conditioned model samples through upscale / inpaint
            return
    y, labels = conditions_for(model, args.n, args.label, args.prompt, args.attributes, args.seed, layout=args.layout)
    if y is None and args.guidance is not None and args.guidance != 1.0:
        raise CLIError(f"--guidance needs a conditional model; {model.name} is unconditional")
    guidance = 1.0 if y is None else args.guidance if args.guidance is not None else model.guidance
    if args.guidance_rescale and y is None:
        raise CLIError(f"--guidance-rescale needs a conditional model; {model.name} is unconditional")
    if args.guidance_rescale and guidance in (0.0, 1.0):
        raise CLIError(f"--guidance-rescale acts on guided predictions: it needs --guidance other than 0 and 1 "
                       f"(here {guidance:g})")
    steps = 50 if args.steps is None else args.steps
    t0 = time.perf_counter()
    images = model.sample(args.n, sampler=args.sampler, steps=steps, seed=args.seed, y=y, eta=args.eta,
                          guidance=guidance, guidance_rescale=args.guidance_rescale, spacing=args.spacing)
    print(f"{args.n} samples from {model.name} with {args.sampler}-{steps}"
          + (f" ({args.spacing} spacing)" if args.spacing != "leading" else "")
          + (f", guidance {guidance:g}" if y is not None else "")
          + (f", rescaled φ = {args.guidance_rescale:g}" if args.guidance_rescale else "")
          + f" in {time.perf_counter() - t0:.1f} s on {device}")
    _write_samples(images, labels, out, npz)


def cmd_train(args: argparse.Namespace) -> None:
    if args.preset not in PRESETS:
        raise CLIError(f"unknown preset {args.preset!r}; choose one of: {', '.join(PRESETS)}")
    if args.faces != "auto" and "faces" not in args.preset:
        raise CLIError(f"--faces chooses the data of the face presets; {args.preset} trains on MNIST")
    mode = args.mode or get_mode()
    ckpt_out = _output("--out", args.out, ".pt")
    if ckpt_out is not None and ckpt_out.exists():  # a run to resume: checked now, not after the first stage trained
        kind = getattr(PRESETS[args.preset](mode), "kind", "autoencoder_kl")
        check_resumable(load_checkpoint(ckpt_out, kind=kind), ckpt_out)
    runs = runs_dir(mode)  # the first stage, latents and the face presets' checkpoints go here even with --out
    _check_folder(f"the runs folder {runs}" + (" (MINILDM_RUNS)" if os.environ.get("MINILDM_RUNS") else
                                               " (set MINILDM_RUNS to write elsewhere)"), runs)
    os.environ["MINILDM_MODE"] = mode
    t0 = time.perf_counter()
    distributed.init()  # under torchrun (torchrun --nproc-per-node N -m minildm train …): join the others
    main = distributed.is_main()  # rank 0 (or the only process) alone reports and writes the grid
    try:
        model, ckpt = recipes.train(args.preset, mode, ckpt_path=ckpt_out, progress=not args.no_progress,
                                    faces=args.faces)
    finally:
        distributed.cleanup()
    if not main:
        return
    print(f"{args.preset} ({mode} mode): checkpoint {ckpt} ({time.perf_counter() - t0:.0f} s in this call)")
    grid = Path(ckpt).with_name(Path(ckpt).stem + "_samples.png")
    if args.preset.startswith("autoencoder-"):  # 32 test images, then their reconstructions
        if args.preset == "autoencoder-faces":
            x, what = load_faces("test", n=32, source=args.faces, mode=mode, verbose=False).float(), "faces"
        else:
            x, what = mnist("test", size=32, n=32)[0], "digits"
        with torch.no_grad():
            rec = model(x.to(model.scale_factor.device), sample_posterior=False)[0].clamp(-1, 1).cpu()
        print(f"wrote {save_grid(torch.cat([x, rec]), grid, nrow=16)} (test {what}, then reconstructions)")
    elif getattr(model.unet, "task", None) == "semantic":  # test maps, the faces drawn from them, the rendered truth
        test = semantic.semantic_faces(16, seed=recipes.SEMANTIC_TEST_SEED)
        rows = torch.cat([semantic.colour_map(test.parts), semantic.draw(model, test.parts), test.images])
        print(f"wrote {save_grid(rows, grid, nrow=16)} (test maps, faces drawn from them, the renders)")
    elif hasattr(model.unet, "check_condition"):  # a concatenation model: test digits, conditioned, beside the truth
        x = load_faces("test", n=16, source="toy", mode=mode, verbose=False).float() if model.image_size == 64 \
            else mnist("test", size=32, n=16)[0]
        print(f"wrote {save_grid(example_grid(model, x), grid, nrow=16)}")
    else:
        y, _ = conditions_for(model, 64)
        guidance = model.guidance if y is not None else 1.0
        images = model.sample(64, sampler="ddpm", steps=50, seed=0, y=y, guidance=guidance)
        what = "random attribute vectors" if model.attributes is not None else "random layouts" \
            if model.max_objects is not None else "digits 0–9 cycling"
        print(f"wrote {save_grid(images, grid, nrow=8)} (64 samples, 50 ancestral steps, seed 0"
              + (f", {what}, guidance {guidance:g})" if y is not None else ")"))


def _read_npz(flag: str, path: str, key: str) -> np.ndarray:
    if not Path(path).is_file():
        raise CLIError(f"{flag} {path}: no such file; give an .npz holding {key} (N, C, H, W) float32 in [0, 1]")
    try:
        with np.load(path) as f:
            if key not in f:
                raise CLIError(f"{flag} {path} has no array {key!r} (it has {', '.join(f.files) or 'none'}); save it "
                               f"as np.savez(path, {key}=...)")
            return f[key]
    except (ValueError, OSError) as e:
        raise CLIError(f"{flag} {path} is not a readable .npz ({_one_line(e)[:120]})") from None


def _restore_kw(args: argparse.Namespace, model) -> dict:
    """--sampler and --guidance of upscale / inpaint, checked: the sampler by name, guidance ≠ 1 only where the
    model has a null condition to guide against (default: its recommended scale)."""
    if args.sampler not in SAMPLERS:
        raise CLIError(f"--sampler {args.sampler!r}: choose one of {', '.join(SAMPLERS)}")
    guidance = model.guidance if args.guidance is None else args.guidance
    if not (math.isfinite(guidance) and guidance >= 0):
        raise CLIError(f"--guidance {guidance}: give a finite scale ≥ 0 (1: the model alone, 2: guided)")
    if guidance != 1.0:
        try:
            model.unet.null_condition(1)
        except ValueError as e:
            raise CLIError(f"--guidance {guidance:g}: {_one_line(e)}") from None
    return dict(sampler=args.sampler, guidance=guidance)


def cmd_upscale(args: argparse.Namespace) -> None:
    _check_seed(args.seed)
    out, png = _output("--out", args.out, ".npz"), _output("--png", args.png, ".png")
    lr = _read_npz("--input", args.input, "images")
    model = load_diffusion(resolve(args.model))
    sr = upscale(model, torch.from_numpy(lr), seed=args.seed, steps=args.steps, **_restore_kw(args, model))
    _write_restored(sr, out, png, model, torch.from_numpy(lr))


def cmd_inpaint(args: argparse.Namespace) -> None:
    _check_seed(args.seed)
    out, png = _output("--out", args.out, ".npz"), _output("--png", args.png, ".png")
    x, m = _read_npz("--input", args.input, "images"), _read_npz("--mask", args.mask, "mask")
    model = load_diffusion(resolve(args.model))
    attrs = None
    if args.attributes is not None:  # the face model: the named attributes, every other one unsaid (∅)
        names = getattr(model.unet, "attributes", ())
        if not names:
            raise CLIError(f"--attributes is for an inpainting model told attributes (latent_faces_inpaint); "
                           f"{model.name} inpaints from the image alone")
        try:
            attrs = attribute_vector(names, **parse_attributes(args.attributes)).expand(len(x), -1)
        except ValueError as e:
            raise CLIError(_one_line(e)) from None
    y = inpaint(model, torch.from_numpy(x), torch.from_numpy(m), seed=args.seed, steps=args.steps, attrs=attrs,
                **_restore_kw(args, model))
    _write_restored(y, out, png, model, torch.from_numpy(x) * (1 - torch.from_numpy(m).float()))


def _write_restored(y, out: Path, png: Path | None, model, given) -> None:
    """y (N, C, H, W) in [0, 1] → the .npz (images) and, with --png, a grid: the inputs (resized), then the outputs."""
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, images=y.numpy().astype(np.float32))
    print(f"wrote {out}: images {tuple(y.shape)} float32 in [0, 1] ({model.name})")
    if png:
        given = torch.nn.functional.interpolate(given.float(), size=y.shape[-2:], mode="nearest")
        print(f"wrote {save_grid(torch.cat([given, y]) * 2 - 1, png, nrow=len(y))} (inputs, then outputs)")


def cmd_export(args: argparse.Namespace) -> None:
    if args.guidance is not None and not (math.isfinite(args.guidance) and args.guidance >= 0):
        raise CLIError(f"--guidance must be a finite number ≥ 0, e.g. 2 (1: the conditional model alone, 0: "
                       f"unconditional); got {args.guidance}")
    dst = _output("dst", args.dst, ".pt")
    if Path(args.src).exists() and dst.exists() and dst.resolve() == Path(args.src).resolve():
        raise CLIError(f"dst {args.dst} is the source checkpoint itself; a release file keeps no optimizer state, "
                       "so writing it there would end that training run; choose another dst, e.g. "
                       f"{dst.with_name(dst.stem + '_release.pt')}")
    release = dict(command=args.command_line or "", note=args.note or "")
    path = export_diffusion(args.src, dst, half=args.half, guidance=args.guidance, **release)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


def cmd_demo(args: argparse.Namespace) -> None:
    if args.n < 1:
        raise CLIError(f"--n must be at least 1 (got {args.n})")
    if args.steps < 1:
        raise CLIError(f"--steps must be at least 1 (got {args.steps})")
    _check_seed(args.seed)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {args.out} is a file; demo writes a folder (samples.png, samples.npz, attention.png), "
                       "e.g. --out demo")
    _check_folder(f"--out {args.out}", out)
    t0 = time.perf_counter()
    text_ckpt = shipped("latent_mnist_text") if "latent_mnist_text" in shipped_names() else None  # optional
    text_model = load_diffusion(text_ckpt) if text_ckpt is not None else None
    if text_model is not None:
        _encode_prompt(text_model, args.prompt)  # an unknown word is an error now, not after the digits are drawn
    if args.train:
        os.environ["MINILDM_MODE"] = "cpu"
        print("retraining the first stage, the latent UNet and the text-conditional UNet in cpu mode (about an hour "
              "on 2 idle cores; runs/cpu/ keeps the checkpoints, and an interrupted run resumes) …")
        recipes.train("autoencoder-mnist", "cpu")
        _, ckpt = recipes.train("latent-mnist", "cpu")
        text_model, text_ckpt = recipes.train("latent-mnist-text", "cpu")
    else:
        ckpt = shipped("latent_mnist")
    model = load_diffusion(ckpt)
    images = model.sample(args.n, sampler=args.sampler, steps=args.steps, seed=args.seed)
    _write_samples(images, None, out / "samples.png", out / "samples.npz")
    ev = Evaluator()  # the judge: no training loss touched it
    conf = ev.confidence(images)
    digits = ev.logits(images).argmax(1).bincount(minlength=10).tolist()
    print(f"{args.n} digits from {ckpt} ({args.sampler}, {args.steps} steps, seed {args.seed}) in "
          f"{time.perf_counter() - t0:.1f} s; "
          f"the course's judge is {100 * conf:.1f}% confident on average; digits drawn per class: {digits}")
    if text_model is not None:
        _demo_attention(text_model, args, out)


def _encode_prompt(model, prompt: str, n: int = 4):
    """``prompt`` as the token ids of n samples for a text model, or a one-line error naming what is wrong."""
    if not prompt.strip():
        raise CLIError('--prompt is empty; give words of the text model, e.g. "a thick seven"')
    try:
        return model.tokenizer.encode_batch([prompt] * n, strict=True)
    except ValueError as e:
        raise CLIError(f"--prompt {prompt!r}: {e}") from None


def _demo_attention(model, args: argparse.Namespace, out: Path) -> None:
    """Sample 4 digits for ``args.prompt`` and draw where each of its words is attended (notebook 05)."""
    t0 = time.perf_counter()
    y = _encode_prompt(model, args.prompt)
    out.mkdir(parents=True, exist_ok=True)
    with capture_attention(model.unet, which="cross") as store:
        images = model.sample(4, sampler=args.sampler, steps=args.steps, seed=args.seed, y=y,
                              guidance=model.guidance, batch_size=4)
    maps = store.token_maps(size=tuple(images.shape[-2:]))[:4]  # with guidance the first 4 rows are conditional
    words = model.tokenizer.words(args.prompt)
    fig = show_attention(images, maps, words, title=f'"{args.prompt}": cross-attention per word')
    fig.savefig(out / "attention.png", dpi=100)
    plt.close(fig)
    print(f"wrote {out / 'attention.png'}: 4 samples for \"{args.prompt}\" (guidance {model.guidance:g}) and the "
          f"attention each pixel pays to each word, averaged over heads, layers and steps "
          f"({time.perf_counter() - t0:.1f} s)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minildm", description="minildm: latent diffusion, built from scratch.")
    sub = p.add_subparsers(dest="command", required=True)
    nb = sub.add_parser("notebook", help="execute a course notebook headless and write its figures")
    nb.add_argument("name", help="the notebook's number, e.g. 01")
    nb.add_argument("--mode", default=None, choices=MODES,
                    help="run mode (default: minildm.config.get_mode(): MINILDM_MODE, smoke under CI, else by hardware)")
    nb.add_argument("--out", default="outputs", help="folder for the figures (default: outputs/)")
    nb.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    nb.set_defaults(func=cmd_notebook)

    d = sub.add_parser("demo", help="sample digits from the shipped weights (under a minute on CPU)",
                       description="Sample digits from the shipped latent diffusion weights into OUT/samples.png "
                                   "and OUT/samples.npz, and judge them with the course's judge network.")
    d.add_argument("--out", default="demo", help="output folder (default: demo/)")
    d.add_argument("--n", type=int, default=64, help="digits to draw (default 64)")
    d.add_argument("--sampler", default="ddpm", metavar="NAME",
                   help=f"one of {', '.join(SAMPLERS)}; ddpm (default): ancestral sampling (η = 1) on --steps evenly "
                        "spaced steps, the best FD for this small model (notebook 04, §7); ddim: deterministic (η = 0)")
    d.add_argument("--steps", type=int, default=50, help="sampling steps (default 50)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--prompt", default="a thick seven",
                   help='prompt for the attention maps (words of the shipped text model; default "a thick seven")')
    d.add_argument("--train", action="store_true",
                   help="retrain the autoencoder and the latent UNet in cpu mode first, and sample those instead")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("train", help="train a preset (resumable) and write a sample grid",
                       description="Train PRESET in the run mode; an existing checkpoint resumes, a finished one "
                                   "just loads. Latent presets train (or load) their autoencoder first.")
    t.add_argument("preset", help=f"one of: {', '.join(PRESETS)}")
    t.add_argument("--mode", default=None, choices=MODES,
                   help="run mode: the preset's size (default: minildm.config.get_mode(): MINILDM_MODE, smoke under "
                        "CI, else gpu with CUDA and cpu without)")
    t.add_argument("--out", default=None, help="checkpoint path (default runs/<mode>/<preset>.pt; the face presets "
                                               "add _toy or _celeba to the name)")
    t.add_argument("--faces", default="auto", choices=["auto", "celeba", "toy"],
                   help="face presets' data: CelebA if it is under data/celeba, else the toy faces (auto); or insist "
                        "on one (celeba: an error that says where to put the files when it is missing)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="sample a diffusion checkpoint into a PNG grid and an .npz",
                       description="Sample a diffusion checkpoint (a path, or a shipped model's name such as "
                                   "latent_mnist). The .npz holds images (N, C, H, W) float32 in [0, 1], and "
                                   "labels (N,) for a class-conditional model.")
    s.add_argument("checkpoint", help="a checkpoint path, or the name of a shipped model (latent_mnist, "
                                      "latent_mnist_class, latent_mnist_text, latent_faces_toy)")
    s.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--sampler", default="ddpm", metavar="NAME",
                   help=f"one of {', '.join(SAMPLERS)}. ddpm (default): ancestral sampling (η = 1), on --steps evenly "
                        "spaced steps: the better sampler for the course's small models (notebooks 04 and 06); ddim: "
                        "deterministic (η = 0); euler (= ddim with η = 0), heun (2·steps − 1 network evaluations), "
                        "dpmpp_2m: ODE solvers in σ; euler_ancestral: their stochastic counterpart (η = 1)")
    s.add_argument("--steps", type=int, default=None,
                   help="sampling steps (default 50; --steps 1000 with ddpm is DDPM's full chain)")
    s.add_argument("--spacing", default="leading", metavar="SPACING",
                   help=f"which timesteps the steps visit: one of {', '.join(SPACINGS)} (default leading: DDIM's, "
                        "starts at 980 for 50 steps of 1000; trailing starts at 999; linspace has both 999 and 0)")
    s.add_argument("--eta", type=float, default=None,
                   help="η of ddim and euler_ancestral (default: 0 for ddim, 1 for ddpm and euler_ancestral; the "
                        "ODE solvers are η = 0)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--label", type=int, default=None, help="class for a class-conditional model (default: 0..9 cycling)")
    s.add_argument("--prompt", default=None,
                   help='prompt for a text-conditional model, e.g. "a thick seven" (default: "a zero", "a one", … cycling)')
    s.add_argument("--attributes", default=None,
                   help="attribute values for a face model, e.g. Smiling=1,Eyeglasses=0 (the others: plausible "
                        "random values)")
    s.add_argument("--layout", default=None,
                   help='objects for a layout model, CLASS@x0,y0,x1,y1 separated by ";" in fractions of the canvas '
                        'from the top-left, e.g. "7@0.05,0.05,0.45,0.45;2@0.55,0.50,0.95,0.95" (default: random '
                        "layouts; the .npz gets them as layouts (N, K, 5))")
    s.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale s for a conditional model (default: the one stored with the "
                        "model, 2 for the shipped ones; 1 = the conditional model alone)")
    s.add_argument("--guidance-rescale", type=float, default=0.0, metavar="PHI",
                   help="guidance rescale φ in [0, 1] (Lin et al. 2024 §3.4): the guided prediction pulled back "
                        "towards the conditional one's spread; 0 off (default), 0.7 the paper's choice")
    s.add_argument("--out", default="samples.png", help="PNG grid (default samples.png)")
    s.add_argument("--npz", default=None, help="also write the samples as an .npz")
    s.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    s.add_argument("--info", action="store_true", help="print what the checkpoint holds")
    s.set_defaults(func=cmd_sample)

    u = sub.add_parser("upscale", help="×4 super-resolution of low-resolution images (a concatenation model)",
                       description="Upscale the images (N, C, h, w) float32 in [0, 1] of --input with a "
                                   "super-resolution model (latent_mnist_sr: h = w = 8 → 32); --out gets images "
                                   "(N, C, 4h, 4w) in [0, 1].")
    u.add_argument("model", help="a super-resolution checkpoint, or a shipped model's name (latent_mnist_sr)")
    u.add_argument("--input", required=True, help=".npz with images (N, C, h, w) float32 in [0, 1]")
    i = sub.add_parser("inpaint", help="fill the masked pixels of images (a concatenation model)",
                       description="Fill where --mask is 1 in the images of --input with an inpainting model "
                                   "(latent_mnist_inpaint); the known pixels are pasted back unchanged.")
    i.add_argument("model", help="an inpainting checkpoint, or a shipped model's name (latent_mnist_inpaint)")
    i.add_argument("--input", required=True, help=".npz with images (N, C, H, W) float32 in [0, 1]")
    i.add_argument("--mask", required=True, help=".npz with mask (N, 1, H, W) in {0, 1}, 1 = to be generated")
    i.add_argument("--attributes", default=None,
                   help="for latent_faces_inpaint: what the filled faces should show, e.g. Eyeglasses=1,Smiling=0 "
                        "(every other attribute unsaid; default: nothing said)")
    for q, fn in ((u, cmd_upscale), (i, cmd_inpaint)):
        q.add_argument("--out", required=True, help=".npz for the results: images (N, C, H, W) float32 in [0, 1]")
        q.add_argument("--png", default=None, help="also a PNG grid: the inputs, then the results")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--steps", type=int, default=50, help="sampling steps (default 50)")
        q.add_argument("--sampler", default="ddpm", metavar="NAME",
                       help=f"one of {', '.join(SAMPLERS)}; ddpm (default): ancestral, the better of the two measured "
                            "(inpainting 81%% of digits read right against DDIM's 77%%, benchmarks/RESULTS.md)")
        q.add_argument("--guidance", type=float, default=None,
                       help="classifier-free guidance scale (default: the model's recommended one, shown by "
                            "sample --info; latent_mnist_inpaint: 2); only for a model with a null condition")
        q.set_defaults(func=fn)

    e = sub.add_parser("export", help="write a small release checkpoint (no optimizer state) from a training one")
    e.add_argument("src")
    e.add_argument("dst")
    e.add_argument("--half", action="store_true", help="store weights as float16 (half the size)")
    e.add_argument("--command-line", default=None, help="the command that trained it, recorded in the file")
    e.add_argument("--note", default=None, help="free text recorded in the file (time, measured quality)")
    e.add_argument("--guidance", type=float, default=None,
                   help="the guidance scale `sample` and `demo` use by default for this model (conditional models)")
    e.set_defaults(func=cmd_export)
    return p


# what a user can fix: bad arguments caught by the library (ValueError: a size, a label, a sampler …), missing or
# damaged files and data, a training run that diverged (its last good checkpoint kept)
USER_ERRORS = (CLIError, CheckpointError, MNISTDataMissing, CelebADataMissing, NonFiniteLossError, ValueError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except USER_ERRORS as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # the last net: a file or folder the checks above did not foresee (disk full, permissions)
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # out of memory: too many samples at once, or too big a batch
        if not isinstance(e, MemoryError) and not any(m in str(e) for m in ("out of memory", "can't allocate memory")):
            raise  # a bug, not the user's input: keep the traceback
        n = getattr(args, "n", None)
        print(f"error: out of memory ({_one_line(e)[:160]}); ask for less at once"
              + (f", e.g. --n {max(1, n // 10)} instead of --n {n}" if n else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C: a training loop has written a checkpoint and says where
        msg = _one_line(e).replace(" interrupted at step", " at step").replace("re-run to resume",
                                                                              "re-run the same command to resume")
        if not msg:
            msg = "Ctrl-C" + ("; re-run the same command to resume from the last checkpoint written"
                              if args.command == "train" else "")
        print(f"interrupted: {msg}", file=sys.stderr)
        return 130
    return 0


def _one_line(e: BaseException) -> str:
    """The message as one line (multi-line help text joined), so a script's log stays readable."""
    return " ".join(part.strip() for part in str(e).splitlines() if part.strip())


if __name__ == "__main__":
    sys.exit(main())
