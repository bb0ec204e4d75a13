"""Run modes, device, seeding and the data root: the one place the course reads its environment.

COURSE.md, "Run modes". Three sizes of everything:

======  ==========================================  ===========================================
mode    chosen when                                 what it is for
======  ==========================================  ===========================================
smoke   ``CI`` is set, or ``MINILDM_MODE=smoke``    every cell runs in seconds; *no quality claims*
cpu     no GPU (the default on a laptop)            small models that still learn real digits
gpu     CUDA is available                           the full recipe for a Colab T4 / A100
======  ==========================================  ===========================================

``MINILDM_MODE`` always wins. Library code never reads notebook globals: it calls :func:`get_mode`
(or receives a config built from :func:`preset`).
"""
from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch

Mode = Literal["smoke", "cpu", "gpu"]
MODES: tuple[Mode, ...] = ("smoke", "cpu", "gpu")
T = TypeVar("T")


class DictConfig:
    """Mixin for a config dataclass that round-trips through a plain dict (what checkpoints store).

    ``from_dict`` is strict: an unknown key is an error that lists the known ones, so a checkpoint written by a
    different version of a model fails loudly instead of building the wrong network.
    """

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


def get_mode() -> Mode:
    """The run mode: ``MINILDM_MODE`` if set, else ``smoke`` under CI, else ``gpu``/``cpu`` by hardware."""
    env = os.environ.get("MINILDM_MODE", "").strip().lower()
    if env:
        if env not in MODES:
            raise ValueError(f"MINILDM_MODE={env!r} is not a run mode; use one of {', '.join(MODES)}.")
        return env  # type: ignore[return-value]
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return "smoke"
    return "gpu" if torch.cuda.is_available() else "cpu"


def pick(smoke: T, cpu: T, gpu: T, mode: Mode | None = None) -> T:
    """Choose a value by run mode, e.g. ``steps = pick(smoke=20, cpu=4000, gpu=20000)``."""
    mode = mode or get_mode()
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[mode]


def get_device(prefer: str | None = None) -> torch.device:
    """cuda → mps → cpu, unless ``prefer`` (or ``MINILDM_DEVICE``) names one."""
    prefer = prefer or os.environ.get("MINILDM_DEVICE")
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); returns a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def in_colab() -> bool:
    """True inside Google Colab (its kernel module is importable only there)."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def data_root() -> Path:
    """Where data sets live: ``MINILDM_DATA``; else ``/content/data`` on Colab; else ``<repo>/data``.

    ``<repo>`` is the checkout this package was installed from (editable install); for a plain
    ``pip install`` it falls back to ``./data`` in the working directory.
    """
    env = os.environ.get("MINILDM_DATA")
    if env:
        return Path(env).expanduser()
    if in_colab():
        return Path("/content/data")
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").exists():
        return repo / "data"
    return Path.cwd() / "data"


def runs_dir(mode: Mode | None = None) -> Path:
    """Where training runs write checkpoints: ``MINILDM_RUNS``, else ``runs/<mode>`` beside the data root.

    One folder per run mode, so a smoke run in CI never resumes from (or overwrites) a cpu-mode checkpoint.
    """
    env = os.environ.get("MINILDM_RUNS")
    base = Path(env).expanduser() if env else data_root().parent / "runs"
    return base / (mode or get_mode())


def describe() -> str:
    """One line for a notebook's first cell: mode, device, torch version, data root."""
    return (f"minildm mode={get_mode()} device={get_device()} torch={torch.__version__} "
            f"threads={torch.get_num_threads()} data={data_root()}")
