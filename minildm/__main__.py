"""The command line: ``python -m minildm COMMAND`` (or ``minildm COMMAND`` once installed).

Commands (``python -m minildm COMMAND --help`` for each):
  demo              sample digits from the shipped weights in seconds (``--train``: retrain them first, cpu mode)
  train PRESET      train a preset (autoencoder-mnist, pixel-mnist, latent-mnist, latent-mnist-class, …,
                    autoencoder-faces, latent-faces); resumes
  sample CKPT       sample a diffusion checkpoint (or a shipped model's name) into a PNG grid and an .npz
  export SRC DST    a small release checkpoint (EMA weights + first stage, no optimizer) from a training one
  notebook NN       execute notebook NN headless (cpu mode by default) and write its figures as PNG files

Errors the user can fix (a missing file, a wrong checkpoint, missing data) print one line and exit with code 2.
"""
from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class CLIError(Exception):
    """An error the user can fix; printed as one line, exit code 2, no traceback."""


def cmd_notebook(args: argparse.Namespace) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb_dir = ROOT / "notebooks"
    matches = sorted(nb_dir.glob(f"{args.name}*.ipynb"))
    if not matches:
        known = ", ".join(p.stem for p in sorted(nb_dir.glob("[0-9][0-9]_*.ipynb"))) or "none found"
        raise CLIError(f"no notebook matches {args.name!r} in {nb_dir} (known: {known})")
    path = matches[0]
    out = Path(args.out) / path.stem
    out.mkdir(parents=True, exist_ok=True)
    os.environ["MINILDM_MODE"] = args.mode
    nb = nbformat.read(path, as_version=4)
    print(f"executing {path.name} in {args.mode} mode …", flush=True)
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


def _resolve_checkpoint(name: str) -> Path:
    """A path, or the name of a shipped model (``latent_mnist``) in minildm/weights/."""
    from minildm.ldm import WEIGHTS_DIR

    path = Path(name)
    if not path.exists() and not path.suffix and (WEIGHTS_DIR / f"{name}.pt").exists():
        return WEIGHTS_DIR / f"{name}.pt"
    return path


def _write_samples(images, labels, out: str | None, npz: str | None, nrow: int | None = None) -> None:
    """images (N, C, H, W) in [−1, 1] → a PNG grid and/or an .npz with images (N, C, H, W) float32 in [0, 1]."""
    import numpy as np

    from minildm.viz import save_grid

    if out:
        print(f"wrote {save_grid(images, out, nrow=nrow)}")
    if npz:
        arrays = dict(images=((images.float().cpu() + 1) / 2).clamp(0, 1).numpy().astype(np.float32))
        if labels is not None:
            arrays["labels"] = labels.cpu().numpy().astype(np.int64)
        Path(npz).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(npz, **arrays)
        print(f"wrote {npz}: " + ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in arrays.items()))


def _parse_attributes(text: str) -> dict[str, int]:
    """ "Smiling=1,Eyeglasses=0" → {"Smiling": 1, "Eyeglasses": 0}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if value.strip() not in ("0", "1"):
            raise CLIError(f"--attributes takes NAME=0 or NAME=1 separated by commas, e.g. Smiling=1,Eyeglasses=0; "
                           f"got {part!r}")
        out[name.strip()] = int(value)
    return out


def _labels_for(model, n: int, label: int | None, prompt: str | None = None, attributes: str | None = None,
                seed: int = 0):
    """The conditions y for n samples, and the labels to store beside them (None for unconditional models).

    Class models: ``label`` for all, or 0..9 cycling. Text models: ``prompt`` for all (its words must be in the
    model's vocabulary), or "a zero", "a one", … cycling; the stored label is the digit the prompt names.
    Attribute models (faces): n plausible attribute vectors (:func:`minildm.faces.random_attributes`), with the
    values of ``attributes`` ("Smiling=1,Eyeglasses=0") set in all of them; stored as (n, M).
    """
    import torch

    from minildm.captions import DIGITS

    if not model.is_conditional:
        if label is not None or prompt is not None or attributes is not None:
            flag = "label" if label is not None else "prompt" if prompt is not None else "attributes"
            raise CLIError(f"--{flag} given, but {model.name} is unconditional")
        return None, None
    if model.attributes is not None:  # an attribute-conditional face model
        from minildm.faces import NULL, attribute_vector, random_attributes

        if label is not None or prompt is not None:
            raise CLIError(f"{model.name} is conditioned on attributes: use --attributes Smiling=1,Eyeglasses=0 "
                           f"(names: {', '.join(model.attributes)})")
        y = random_attributes(n, model.attributes, seed=seed)
        try:
            chosen = attribute_vector(model.attributes, **_parse_attributes(attributes or ""))
        except ValueError as e:
            raise CLIError(str(e)) from None
        y = torch.where(chosen != NULL, chosen, y)  # (n, M): the named values everywhere, the rest as drawn
        return y, y
    if attributes is not None:
        raise CLIError(f"--attributes is for face models; {model.name} takes --label or --prompt")
    if model.tokenizer is not None:  # a text-conditional model
        if label is not None:
            raise CLIError(f"{model.name} takes prompts, not labels: use --prompt \"a thick seven\"")
        prompts = [prompt] * n if prompt is not None else [f"a {DIGITS[i % 10]}" for i in range(n)]
        try:
            y = model.tokenizer.encode_batch(prompts, strict=True)
        except ValueError as e:
            raise CLIError(str(e)) from None
        named = [next((DIGITS.index(w) for w in p.lower().split() if w in DIGITS), -1) for p in prompts]
        return y, torch.tensor(named)
    if prompt is not None:
        raise CLIError(f"{model.name} is class-conditional: use --label K, not --prompt")
    if label is not None and not 0 <= label < model.num_classes:
        raise CLIError(f"--label must be in 0..{model.num_classes - 1} for {model.name} (got {label})")
    y = torch.full((n,), label) if label is not None else torch.arange(n) % model.num_classes
    return y, y


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from minildm.config import get_device
    from minildm.ldm import load_diffusion

    if args.n < 1:
        raise CLIError(f"--n must be at least 1 (got {args.n})")
    device = torch.device(args.device) if args.device else get_device()
    model = load_diffusion(_resolve_checkpoint(args.checkpoint), map_location=device)
    if args.info:
        print(f"{model.name}: {'latent' if model.is_latent else 'pixel'} diffusion, ε_θ on {model.sample_shape}, "
              f"{sum(p.numel() for p in model.unet.parameters()):,} UNet parameters; {model.checkpoint_info}")
    y, labels = _labels_for(model, args.n, args.label, args.prompt, args.attributes, args.seed)
    guidance = args.guidance if args.guidance is not None else model.guidance
    if y is None and args.guidance is not None and args.guidance != 1.0:
        raise CLIError(f"--guidance needs a conditional model; {model.name} is unconditional")
    if y is None:
        guidance = 1.0
    steps = args.steps or 50
    t0 = time.perf_counter()
    images = model.sample(args.n, sampler=args.sampler, steps=steps, seed=args.seed, y=y, eta=args.eta,
                          guidance=guidance)
    print(f"{args.n} samples with {args.sampler}-{steps}" + (f", guidance {guidance:g}" if y is not None else "")
          + f" in {time.perf_counter() - t0:.1f} s on {device}")
    _write_samples(images, labels, args.out, args.npz)


def cmd_train(args: argparse.Namespace) -> None:
    from minildm import presets
    from minildm.viz import save_grid

    if args.preset not in presets.PRESETS:
        raise CLIError(f"unknown preset {args.preset!r}; choose one of: {', '.join(presets.PRESETS)}")
    os.environ["MINILDM_MODE"] = args.mode
    t0 = time.perf_counter()
    if args.faces != "auto" and "faces" not in args.preset:
        raise CLIError(f"--faces chooses the data of the face presets; {args.preset} trains on MNIST")
    model, ckpt = presets.train(args.preset, args.mode, ckpt_path=args.out, progress=not args.no_progress,
                                faces=args.faces)
    print(f"{args.preset} ({args.mode} mode): checkpoint {ckpt} ({time.perf_counter() - t0:.0f} s in this call)")
    grid = Path(ckpt).with_name(Path(ckpt).stem + "_samples.png")
    if args.preset.startswith("autoencoder-"):  # 32 test images, then their reconstructions
        import torch

        if args.preset == "autoencoder-faces":
            from minildm.faces import load_faces

            x, what = load_faces("test", n=32, source=args.faces, mode=args.mode, verbose=False).float(), "faces"
        else:
            from minildm.data import mnist

            x, what = mnist("test", size=32, n=32)[0], "digits"
        with torch.no_grad():
            rec = model(x.to(model.scale_factor.device), sample_posterior=False)[0].clamp(-1, 1).cpu()
        print(f"wrote {save_grid(torch.cat([x, rec]), grid, nrow=16)} (test {what}, then reconstructions)")
    else:
        y, _ = _labels_for(model, 64, None)
        guidance = model.guidance if y is not None else 1.0
        images = model.sample(64, sampler="ddpm", steps=50, seed=0, y=y, guidance=guidance)
        what = "random attribute vectors" if model.attributes is not None else "digits 0–9 cycling"
        print(f"wrote {save_grid(images, grid, nrow=8)} (64 samples, 50 ancestral steps, seed 0"
              + (f", {what}, guidance {guidance:g})" if y is not None else ")"))


def cmd_export(args: argparse.Namespace) -> None:
    from minildm.ldm import export_diffusion

    release = dict(command=args.command_line or "", note=args.note or "")
    path = export_diffusion(args.src, args.dst, half=args.half, guidance=args.guidance, **release)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


def cmd_demo(args: argparse.Namespace) -> None:
    from minildm.classifier import load_classifier
    from minildm.evaluate import Evaluator
    from minildm.ldm import WEIGHTS_DIR, load_diffusion, shipped

    t0 = time.perf_counter()
    text_ckpt = WEIGHTS_DIR / "latent_mnist_text.pt"
    if args.train:
        from minildm import presets

        os.environ["MINILDM_MODE"] = "cpu"
        print("retraining the first stage, the latent UNet and the text-conditional UNet in cpu mode (about an hour "
              "on 2 idle cores; runs/cpu/ keeps the checkpoints, and an interrupted run resumes) …")
        presets.train("autoencoder-mnist", "cpu")
        _, ckpt = presets.train("latent-mnist", "cpu")
        _, text_ckpt = presets.train("latent-mnist-text", "cpu")
    else:
        ckpt = shipped("latent_mnist")
    model = load_diffusion(ckpt)
    images = model.sample(args.n, sampler=args.sampler, steps=args.steps, seed=args.seed)
    out = Path(args.out)
    _write_samples(images, None, str(out / "samples.png"), str(out / "samples.npz"))
    ev = Evaluator(load_classifier())
    conf = ev.confidence(images)
    digits = ev.logits(images).argmax(1).bincount(minlength=10).tolist()
    print(f"{args.n} digits from {ckpt} ({args.sampler}, {args.steps} steps, seed {args.seed}) in "
          f"{time.perf_counter() - t0:.1f} s; "
          f"the course's classifier is {100 * conf:.1f}% confident on average; digits drawn per class: {digits}")
    if Path(text_ckpt).exists():
        _demo_attention(load_diffusion(text_ckpt), args, out)


def _demo_attention(model, args: argparse.Namespace, out: Path) -> None:
    """Sample 4 digits for ``args.prompt`` and draw where each of its words is attended (notebook 05)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minildm.attention_maps import capture_attention
    from minildm.viz import show_attention

    t0 = time.perf_counter()
    try:
        y = model.tokenizer.encode_batch([args.prompt] * 4, strict=True)
    except ValueError as e:
        raise CLIError(str(e)) from None
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
    nb.add_argument("--mode", default=os.environ.get("MINILDM_MODE", "cpu"), choices=["smoke", "cpu", "gpu"])
    nb.add_argument("--out", default="outputs", help="folder for the figures (default: outputs/)")
    nb.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    nb.set_defaults(func=cmd_notebook)

    from minildm.presets import PRESETS  # light: no data or weights are touched at import

    d = sub.add_parser("demo", help="sample digits from the shipped weights (under a minute on CPU)",
                       description="Sample digits from the shipped latent diffusion weights into OUT/samples.png "
                                   "and OUT/samples.npz, and judge them with the course's classifier.")
    d.add_argument("--out", default="demo", help="output folder (default: demo/)")
    d.add_argument("--n", type=int, default=64, help="digits to draw (default 64)")
    d.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddpm",
                   help="ddpm: ancestral sampling (η = 1) on --steps evenly spaced steps, the best FD for this small "
                        "model (notebook 04, §7); ddim: deterministic (η = 0)")
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
    t.add_argument("--mode", default=os.environ.get("MINILDM_MODE") or ("smoke" if os.environ.get("CI") else "cpu"),
                   choices=["smoke", "cpu", "gpu"], help="run mode: the preset's size (default cpu, smoke under CI)")
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
    s.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddpm",
                   help="ddpm (default): ancestral sampling (η = 1), on --steps evenly spaced steps: the better "
                        "sampler for the course's small models (notebooks 04 and 06); ddim: deterministic (η = 0)")
    s.add_argument("--steps", type=int, default=None,
                   help="sampling steps (default 50; --steps 1000 with ddpm is DDPM's full chain)")
    s.add_argument("--eta", type=float, default=None, help="DDIM η (default 0; ddpm: 1)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--label", type=int, default=None, help="class for a class-conditional model (default: 0..9 cycling)")
    s.add_argument("--prompt", default=None,
                   help='prompt for a text-conditional model, e.g. "a thick seven" (default: "a zero", "a one", … cycling)')
    s.add_argument("--attributes", default=None,
                   help="attribute values for a face model, e.g. Smiling=1,Eyeglasses=0 (the others: plausible "
                        "random values)")
    s.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale s for a conditional model (default: its preset's, e.g. 3; "
                        "1 = the conditional model alone)")
    s.add_argument("--out", default="samples.png", help="PNG grid (default samples.png)")
    s.add_argument("--npz", default=None, help="also write the samples as an .npz")
    s.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    s.add_argument("--info", action="store_true", help="print what the checkpoint holds")
    s.set_defaults(func=cmd_sample)

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


def main(argv: list[str] | None = None) -> int:
    from minildm.celeba import CelebADataMissing
    from minildm.checkpoint import CheckpointError
    from minildm.data import MNISTDataMissing

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CLIError, CheckpointError, MNISTDataMissing, CelebADataMissing) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except ValueError as e:  # bad arguments caught by the library (an image size, a label, a sampler …)
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    return 0


def _one_line(e: BaseException) -> str:
    """The message as one line (multi-line help text joined), so a script's log stays readable."""
    return " ".join(part.strip() for part in str(e).splitlines() if part.strip())


if __name__ == "__main__":
    sys.exit(main())
