"""The shipped weights: small trained checkpoints in ``minildm/weights/``, found by name.  Notebooks 04–06.

``minildm/weights/README.md`` records how each file was trained (command, wall time, measured quality); the CI
gates in ``tests/test_shipped.py`` check that they still sample what they promise. Everything that takes "a
checkpoint path or a shipped model's name" (``python -m minildm sample latent_mnist``, the notebooks' fast paths)
resolves it here.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from .checkpoint import CheckpointError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def shipped_names(prefix: str = "") -> list[str]:
    """The names of the shipped checkpoints (file stems in ``minildm/weights/``) that start with ``prefix``."""
    return [p.stem for p in sorted(WEIGHTS_DIR.glob(f"{prefix}*.pt"))]


def shipped(name: str) -> Path:
    """The path of a shipped checkpoint (``latent_mnist``) in minildm/weights/, or a clear error if it is absent."""
    path = WEIGHTS_DIR / f"{name}.pt"
    if not path.is_file():
        names = shipped_names()
        close = difflib.get_close_matches(name, names, n=2)
        hint = f"did you mean {' or '.join(close)}?" if close else \
            "`python -m minildm demo --train` retrains latent_mnist and latent_mnist_text"
        raise CheckpointError(f"no shipped weights named {name!r} in {WEIGHTS_DIR}; {hint} (shipped: "
                              f"{', '.join(names) or 'none'})")
    return path


def resolve(name_or_path: str | Path) -> Path:
    """A checkpoint path as given; a bare name without a suffix (``latent_mnist``) that is not a file is the shipped
    model so named, or an error listing the shipped ones."""
    path = Path(name_or_path)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    return shipped(str(name_or_path))
