"""Checkpoints that survive crashes and explain themselves when they can't be read.  Notebooks 02–06.

A checkpoint is one ``torch.save`` of a plain dict::

    {"format": "minildm-checkpoint", "version": 1, "kind": "latent_mnist", "config": {...}, **payload}

* **atomic**: written to a temporary file in the same directory, flushed, fsync'ed, then ``os.replace``'d
  over the old one, so a crash mid-save leaves the previous checkpoint intact, never half a file;
* **safe to load**: only tensors, dicts, lists, tuples, numbers, strings and None are stored (RNG states as
  uint8 tensors), so :func:`load_checkpoint` can use ``torch.load(weights_only=True)``, which runs no
  arbitrary pickled code;
* **self-describing**: ``kind`` says what it holds and ``config`` is what is needed to rebuild the model, so a
  wrong file gives a clear error, not a shape mismatch. The kinds the course writes:

  ====================================  =====================================================================
  kind                                  written by
  ====================================  =====================================================================
  :data:`DIFFUSION_KINDS`               :func:`minildm.train.train_diffusion` (read by ``minildm.release``)
  ``autoencoder_kl``                    :func:`minildm.train.train_autoencoder`
  ``latents``                           :func:`minildm.latents.encode_dataset`'s cache
  ``mnist_classifier``                  :func:`minildm.classifier.train_classifier`
  ``face_classifier``                   :func:`minildm.face_classifier.train_attribute_classifier`
  ====================================  =====================================================================
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

FORMAT = "minildm-checkpoint"
# the kinds of a diffusion model's checkpoint, one per family of presets (minildm.presets.DiffusionPreset.kind)
DIFFUSION_KINDS = ("pixel_mnist", "latent_mnist", "latent_faces")
VERSION = 1
_RESERVED = ("format", "version", "kind", "config")
_PLAIN = (torch.Tensor, int, float, bool, str, bytes, type(None), torch.dtype, torch.Size)


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, damaged, from elsewhere, too new, or of the wrong kind."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No file at the path (also a ``FileNotFoundError``)."""


def _check_plain(obj, where: str = "payload") -> None:
    """Refuse objects that ``weights_only`` loading would reject, naming where they are, at save time."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: checkpoint dict keys must be str or int, got {type(k).__name__}")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"{where} is a {type(obj).__name__}; checkpoints store only tensors, dicts, lists, "
                        "numbers and strings (use .state_dict(), dataclasses.asdict, or tensors for RNG states)")


def save_checkpoint(path: str | os.PathLike, payload: dict, *, kind: str, config: dict) -> Path:
    """Write ``{"format", "version", "kind", "config", **payload}`` to ``path`` atomically. Returns the path."""
    clash = [k for k in _RESERVED if k in payload]
    if clash:
        raise ValueError(f"payload keys {clash} are reserved for the checkpoint header; rename them")
    obj = {"format": FORMAT, "version": VERSION, "kind": kind, "config": dict(config), **payload}
    _check_plain(obj, "checkpoint")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory as the target, so os.replace is a rename on one file system (atomic on POSIX and Windows).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable; not possible on every platform, and harmless to skip
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def _first_line(e: BaseException) -> str:
    """The informative line of a load error: torch's weights_only errors bury it under boilerplate."""
    text = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    key = next((line for line in text if "Unsupported" in line), text[0] if text else "")
    key = key.split(". ")[0].rstrip(".")  # the first sentence: torch's advice that follows is not for this case
    return f"{type(e).__name__}: {key}" if key else type(e).__name__


def load_checkpoint(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None,
                    map_location="cpu") -> dict:
    """Load and check a checkpoint written by :func:`save_checkpoint`; ``kind`` (one or a tuple) must match."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.pt"))[:4]
        raise CheckpointNotFoundError(
            f"{path} is a folder, not a checkpoint file; give the .pt file itself"
            + (f", e.g. {path / inside[0]} (the folder holds {', '.join(inside)})" if inside else ""))
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): a copy or a save that did not finish; delete it and re-run "
                              "training (it starts over when no checkpoint is left), or copy the file again")
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"no checkpoint at {path}: train one (minildm.train.train_diffusion(..., ckpt_path=...)) "
            "or use the shipped weights in minildm/weights/")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        if "deserialize object on" in str(e) or "Storage device not recognized" in str(e):  # the file is fine
            raise CheckpointError(
                f"{path} cannot be loaded onto {map_location} ({_first_line(e)[:200]}); load it with "
                "map_location='cpu', or pick a device this machine has (minildm.config.get_device)") from e
        if "Unsupported global" in str(e):  # a real pickle of Python objects, not a damaged file
            raise CheckpointError(
                f"{path} is not a minildm checkpoint: it holds pickled Python objects that safe loading refuses "
                f"({_first_line(e)[:200]}); re-save it with minildm.checkpoint.save_checkpoint") from e
        raise CheckpointError(
            f"{path} is damaged or not a minildm checkpoint ({_first_line(e)[:200]}); delete it and re-run "
            "training (it starts over when no checkpoint is left), or copy the shipped weights again") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = sorted(map(str, ckpt))[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not a minildm checkpoint (no format={FORMAT!r} header; found {found}); "
                              "load it with torch.load, or re-save it with save_checkpoint")
    version = ckpt.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {version}, but this minildm reads up to version "
                              f"{VERSION}; update minildm (pip install -U -e .)")
    if kind is not None:
        expected = (kind,) if isinstance(kind, str) else tuple(kind)
        if ckpt.get("kind") not in expected:
            want = " or ".join(map(repr, expected))
            raise CheckpointError(f"{path} holds a {ckpt.get('kind')!r} checkpoint, expected {want}; "
                                  "check the path (a training run resumes only a checkpoint of its own kind), "
                                  "or pass the kind it holds")
    return ckpt
