"""Pictures: image grids, strips over t, schedule plots, and the smoke-mode banner.  All notebooks.

Everything takes images in model space ([−1, 1], shape (B, C, H, W)) unless it says otherwise, and
returns the matplotlib ``Figure`` so a notebook can save or tweak it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from .config import get_mode


def to_numpy_grid(x: Tensor, nrow: int | None = None, pad: int = 1, value_range: tuple[float, float] = (-1, 1)) -> np.ndarray:
    """Tile a batch (B, C, H, W) into one array (rows·H, cols·W[, C]) in [0, 1], ready for ``imshow``."""
    x = x.detach().float().cpu()
    lo, hi = value_range
    x = ((x - lo) / (hi - lo)).clamp(0, 1)
    B, C, H, W = x.shape
    nrow = nrow or math.ceil(math.sqrt(B))
    ncol = math.ceil(B / nrow)
    grid = torch.ones(C, ncol * (H + pad) + pad, nrow * (W + pad) + pad)
    for i in range(B):
        r, c = divmod(i, nrow)
        grid[:, pad + r * (H + pad): pad + r * (H + pad) + H, pad + c * (W + pad): pad + c * (W + pad) + W] = x[i]
    grid = grid.permute(1, 2, 0).numpy()  # (rows·H, cols·W, C)
    return grid[..., 0] if C == 1 else grid


def show_grid(x: Tensor, nrow: int | None = None, title: str | None = None, ax=None, figsize: float = 5,
              value_range: tuple[float, float] = (-1, 1)):
    """Show a batch of images as one grid; returns the figure."""
    grid = to_numpy_grid(x, nrow, value_range=value_range)
    if ax is None:
        fig, ax = plt.subplots(figsize=(figsize, figsize * grid.shape[0] / grid.shape[1]))
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def save_grid(x: Tensor, path: str | Path, nrow: int | None = None, value_range: tuple[float, float] = (-1, 1)) -> Path:
    """Write a batch as one PNG grid (no axes) to ``path``; returns the path."""
    from PIL import Image

    grid = (to_numpy_grid(x, nrow, value_range=value_range) * 255).round().astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path


def show_strip(frames: Sequence[Tensor], labels: Sequence[str] | None = None, title: str | None = None,
               size: float = 1.3, value_range: tuple[float, float] = (-1, 1)):
    """Rows of images over a process: ``frames[j]`` is a batch (B, C, H, W) shown as column j.

    Used for x_0 → x_T (forward noising) and x_T → x_0 (a sampler's trajectory).
    """
    B = frames[0].shape[0]
    fig, axes = plt.subplots(B, len(frames), figsize=(size * len(frames), size * B), squeeze=False)
    for j, f in enumerate(frames):
        for i in range(B):
            img = to_numpy_grid(f[i:i + 1], 1, pad=0, value_range=value_range)
            axes[i, j].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            axes[i, j].set_axis_off()
        if labels is not None:
            axes[0, j].set_title(labels[j], fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves(curves: dict[str, Tensor | np.ndarray], xlabel: str = "t", ylabel: str = "", logy: bool = False,
                title: str | None = None, ax=None):
    """Several 1-D curves on one axis (schedules, SNR, losses)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for name, y in curves.items():
        y = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
        ax.plot(y, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax.figure


def mode_banner() -> str:
    """The line a notebook prints under its first cell: in smoke mode it warns that nothing is a result."""
    mode = get_mode()
    if mode == "smoke":
        return ("SMOKE MODE (CI): tiny models, a few steps. Every cell runs, but the pictures and numbers below "
                "are NOT results; set MINILDM_MODE=cpu or gpu to train for real.")
    return f"{mode.upper()} mode: the figures below come from a real run at this mode's budget."


class LiveLoss:
    """A training callback that redraws the loss curve in place in a notebook (one figure, updated).

    ``train_diffusion(..., callback=viz.LiveLoss())``. Outside a notebook it does nothing visible.
    """

    def __init__(self, title: str = "training loss"):
        self.title, self.handle = title, None

    def __call__(self, event: dict) -> None:
        if event.get("event") != "log":
            return
        from IPython.display import display

        fig = plot_loss(event["history"], title=self.title)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)


def plot_loss(history: Sequence[Sequence[float]], title: str = "training loss", smooth: int = 50, ax=None):
    """Loss per step (faint) and its running mean over ``smooth`` steps, from a training history."""
    steps = np.array([h[0] for h in history])
    loss = np.array([h[1] for h in history])
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    ax.plot(steps, loss, alpha=0.25, lw=0.8, label="per step")
    if len(loss) >= smooth:
        ax.plot(steps[smooth - 1:], np.convolve(loss, np.ones(smooth) / smooth, mode="valid"), label=f"mean of {smooth}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax.figure


def chain(*callbacks):
    """Combine several training callbacks into one."""
    def call(event: dict) -> None:
        for cb in callbacks:
            if cb is not None:
                cb(event)
    return call


def show_attention(images: Tensor, maps: Tensor, words: Sequence[str], title: str | None = None, size: float = 1.4,
                   vmax: float | str | None = None):
    """Per-token attention maps beside the images they produced: row b is image b, then one column per word.

    images (B, C, H, W) in [−1, 1]; maps (B, M, H, W) from :meth:`minildm.attention_maps.AttentionStore.token_maps`
    (M ≥ len(words): the first len(words) tokens are shown), with the outline of the image's ink (its 0 level) in
    cyan. ``vmax=None``: each map in ``inferno`` scaled to its own min..max (the differences between pixels are
    often a few per cent: read the numbers, not just the colours). ``vmax`` a number, or ``"shared"`` (the largest
    shown value): every map on one scale 0..vmax, with a colour bar, so that two figures drawn with the same vmax
    (one layer vs all layers) can be compared by eye. Returns the figure (notebooks 05, 06, ``minildm demo``).
    """
    B, n = images.shape[0], len(words)
    shown = maps[:, :n].float().cpu()
    if vmax == "shared":
        vmax = float(shown.max())
    elif isinstance(vmax, str):
        raise ValueError(f"vmax must be None, a number or 'shared', got {vmax!r}")
    scale = {} if vmax is None else dict(vmin=0.0, vmax=float(vmax))
    fig, axes = plt.subplots(B, n + 1, figsize=(size * (n + 1) + (0.6 if scale else 0), size * B), squeeze=False)
    im = None
    for b in range(B):
        img = to_numpy_grid(images[b:b + 1], 1, pad=0)
        axes[b, 0].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        grey = img if img.ndim == 2 else img.mean(-1)
        for j in range(n):
            im = axes[b, j + 1].imshow(shown[b, j].numpy(), cmap="inferno", **scale)
            axes[b, j + 1].contour(grey, levels=[0.5], colors="cyan", linewidths=0.6)
    for ax in axes.flat:
        ax.set_axis_off()
    for j, w in enumerate(["sample", *words]):
        axes[0, j].set_title(w, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if scale and im is not None:
        fig.colorbar(im, ax=axes[:, 1:].ravel().tolist(), shrink=0.8, label="attention")
    return fig
