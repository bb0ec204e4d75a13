"""Run modes, device, seeding and the data root: the one place the course reads its environment.

docs/DESIGN.md, "Run modes". Three sizes of everything:

======  ==========================================  ===========================================
mode    chosen when                                 what it is for
======  ==========================================  ===========================================
smoke   ``CI`` is set, or ``MINILDM_MODE=smoke``    every cell runs in seconds; *no quality claims*
cpu     no GPU (the default on a laptop)            small models that still learn real digits
gpu     CUDA is available                           the full recipe for a Colab T4 / A100
======  ==========================================  ===========================================

``MINILDM_MODE`` always wins. Library code never reads notebook globals: it calls :func:`get_mode`
(or receives a preset from :mod:`minildm.presets`, built for a mode).

The environment variables, each checked where it is read (a bad value is a ValueError that says what to write):
``MINILDM_MODE`` (smoke, cpu, gpu), ``MINILDM_DEVICE`` (cpu, cuda, cuda:N, mps: :func:`check_device`),
``MINILDM_DATA`` and ``MINILDM_RUNS`` (folders, not files), ``MINILDM_OFFLINE`` (yes/no: :func:`env_flag`) and
``CI`` (any value but a "no" means smoke mode). docs/DOORS.md lists what each bad value prints.
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

    The one rule, for every config of the course (``UNetConfig``, ``AutoencoderConfig``, ``TrainConfig`` …):

    * ``from_dict`` is **strict**: an unknown key is an error that lists the known ones, so a checkpoint written by a
      different version of a model fails loudly instead of building the wrong network;
    * a **missing** key takes the field's default: that is how checkpoints written before a field existed still
      load, so a field may only be added with a default that reproduces the old behaviour (``UNetConfig``'s
      ``context_dim=None`` builds exactly the network saved before cross-attention existed), and a field is never
      renamed or removed while checkpoints that hold it are shipped;
    * lists come back as tuples where the field's default is a tuple (``torch.save`` may store either).
    """

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - set(fields)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(fields)}")
        tuples = {name for name, f in fields.items() if isinstance(f.default, tuple)}
        return cls(**{k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in d.items()})


def get_mode() -> Mode:
    """The run mode: ``MINILDM_MODE`` if set, else ``smoke`` under CI, else ``gpu``/``cpu`` by hardware."""
    env = os.environ.get("MINILDM_MODE", "").strip().lower()
    if env:
        if env not in MODES:
            raise ValueError(f"MINILDM_MODE={env!r} is not a run mode; use one of {', '.join(MODES)}, or unset it "
                             "(then: smoke under CI, else gpu with CUDA and cpu without).")
        return env  # type: ignore[return-value]
    # CI is set by CI systems, to "true", "1" or their own name (CI=woodpecker): any value but a "no" means CI
    if os.environ.get("CI", "").strip().lower() not in FALSE_WORDS:
        return "smoke"
    return "gpu" if torch.cuda.is_available() else "cpu"


def pick(smoke: T, cpu: T, gpu: T, mode: Mode | None = None) -> T:
    """Choose a value by run mode, e.g. ``steps = pick(smoke=20, cpu=4000, gpu=20000)``."""
    mode = mode or get_mode()
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[mode]


def get_device(prefer: str | None = None) -> torch.device:
    """cuda → mps → cpu, unless ``prefer`` (or ``MINILDM_DEVICE``) names one: then that one, checked by
    :func:`check_device` (a ValueError that says what this machine has, rather than a failure later on)."""
    if prefer:
        return check_device(prefer)
    env = os.environ.get("MINILDM_DEVICE", "").strip()
    if env:
        return check_device(env, source="MINILDM_DEVICE=")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


DEVICE_TYPES = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def check_device(name: str | torch.device, source: str = "device ") -> torch.device:
    """``name`` ("cpu", "cuda", "cuda:N", "mps") as a :class:`torch.device` that this machine has; otherwise a
    ValueError that lists the choices and says what is missing. ``source`` starts the message (``"MINILDM_DEVICE="``)."""
    text = str(name).strip().lower()
    kind, _, index = text.partition(":")
    what = f"{source}{str(name)!r}"
    if kind not in DEVICE_TYPES or (index and not (kind == "cuda" and index.isdigit())):
        raise ValueError(f"{what} is not a device minildm runs on; use cpu, cuda, cuda:N (N = 0, 1, …: one GPU of "
                         "several) or mps (Apple silicon), or leave it unset for the best one available")
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"{what}: CUDA is not available on this machine ({why}); use cpu"
                             + (" or mps" if _mps_available() else "") + ", or leave it unset for the best one "
                             "available")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise ValueError(f"{what}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                             f"(cuda:0{f'..cuda:{count - 1}' if count > 1 else ''}); use one of those, or cuda")
    if kind == "mps" and not _mps_available():
        raise ValueError(f"{what}: MPS (Apple silicon's GPU) is not available on this machine; use cpu"
                         + (" or cuda" if torch.cuda.is_available() else "") + ", or leave it unset for the best "
                         "one available")
    return torch.device(text)


FALSE_WORDS = ("", "0", "false", "no", "off")
TRUE_WORDS = ("1", "true", "yes", "on")


def env_flag(name: str) -> bool:
    """A yes/no environment variable (``MINILDM_OFFLINE``): unset, "", 0, false, no, off → False; 1, true, yes,
    on → True (any case); anything else is a ValueError, so that ``MINILDM_OFFLINE=flase`` is not read as a yes."""
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in FALSE_WORDS:
        return False
    if value in TRUE_WORDS:
        return True
    raise ValueError(f"{name}={raw!r} is not a yes/no value; use {name}=1 (yes) or {name}=0 (no), or unset it")


def max_steps() -> int | None:
    """``MINILDM_MAX_STEPS``: a cap on every preset's training steps (unset: none). For a quick pass through the
    recipes at full size, e.g. ``scripts/gpu_check.py`` running each notebook's gpu path in minutes; no quality."""
    raw = os.environ.get("MINILDM_MAX_STEPS", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"MINILDM_MAX_STEPS={raw!r} must be a whole number of steps ≥ 1, or unset (no cap)")
    return int(raw)


def _env_folder(name: str) -> Path | None:
    """The folder an environment variable names (``MINILDM_DATA``, ``MINILDM_RUNS``), or None if it is unset.
    It need not exist yet (it is created when first written to), but it cannot be, or lie under, a regular file."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    blocker = next((p for p in (path, *path.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        where = "" if blocker == path else f"; {blocker} in that path"
        raise ValueError(f"{name}={raw} must name a folder, but it{where} is a regular file; point {name} at a "
                         "folder (it is created if missing), or unset it for the default")
    return path


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
    env = _env_folder("MINILDM_DATA")  # a ValueError if it names a regular file
    if env is not None:
        return env
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
    env = _env_folder("MINILDM_RUNS")  # a ValueError if it names a regular file
    base = env if env is not None else data_root().parent / "runs"
    return base / (mode or get_mode())


def describe() -> str:
    """One line for a notebook's first cell: mode, device, torch version, data root."""
    return (f"minildm mode={get_mode()} device={get_device()} torch={torch.__version__} "
            f"threads={torch.get_num_threads()} data={data_root()}")
