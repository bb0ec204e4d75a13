"""Captions for MNIST digits, from attributes measured on each image: "a small thick slanted seven".  Notebook 05.

LDM's text-to-image model learns from (image, caption) pairs (§4.3). MNIST has labels, not captions, so we write
them from three measurements of each digit's ink (pixels above ``ink_threshold``; images in [−1, 1] as
:func:`minildm.data.mnist` gives them), each turned into a word by terciles among digits of the same class:

===========  ==========================================================================  ==========  ==========
attribute    measure                                                                     lowest 1/3  highest 1/3
===========  ==========================================================================  ==========  ==========
thickness    mean stroke width ≈ 2·ink area / boundary pixels, in pixels (a band of width  "thin"      "thick"
             w ≥ 2 and length L has area w·L and 2·L pixels that a 3×3 erosion removes;
             measured on a 2× bilinear upsampling, where MNIST strokes are ≥ 2 px wide)
slant        |angle| from vertical of the ink's lean, atan(cov(x, y) / var(y)) with y up   "upright"   "slanted"
             (the moment MNIST deskewing uses); ``attributes["slant"]`` is signed, > 0 leans right
size         ink bounding-box height × width, in pixels²                                 "small"     "large"
===========  ==========================================================================  ==========  ==========

The middle third gets no word, so captions have 2 to 5 words: "a seven", "a thin upright one", "an eight".
**Why per class.** MNIST's digits were scaled to fit a 20-pixel box, so most are 20 px tall and the box's area
mostly tells a wide digit from a narrow one: with data-set-wide cuts nearly every one would be "small", a word that
repeats the digit's name. Cut within each class, "small" means small *for a seven*, and the words carry information
of their own. Classes absent from the images use the data-set-wide cuts. Everything is deterministic; pass the
training set's ``thresholds`` when captioning other images, so that "thick" means the same everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# attribute → (word for the lowest third, word for the highest third), in caption order
WORDS = {"size": ("small", "large"), "thickness": ("thin", "thick"), "slant": ("upright", "slanted")}


@dataclass
class Captions:
    captions: list[str]                 # one per image
    attributes: dict[str, Tensor]       # "thickness" (px), "slant" (signed degrees), "size" (px²): (N,) each
    thresholds: dict[str, Tensor]       # per attribute, (10, 2): the (low, high) cut for each digit class


def _erode(ink: Tensor) -> Tensor:
    """Binary erosion by a 3×3 square: a pixel stays ink only if its 8 neighbours are ink. (N, 1, H, W) float."""
    return -F.max_pool2d(-ink, 3, stride=1, padding=1)  # min over the 3×3 window (padding counts as ink)


@torch.no_grad()
def measure(images: Tensor, ink_threshold: float = 0.0, batch_size: int = 2048) -> dict[str, Tensor]:
    """Thickness (px), slant (signed degrees, > 0 leans right) and size (px²) of each digit; images (N, 1, H, W).

    Works through ``batch_size`` images at a time (the 2× upsampling of all 60,000 would take a few GB).
    """
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (N, 1, H, W) grey digits, got {tuple(images.shape)}")
    parts = [_measure(images[i:i + batch_size].cpu(), ink_threshold) for i in range(0, images.shape[0], batch_size)]
    return {k: torch.cat([p[k] for p in parts]) for k in ("thickness", "slant", "size")}


def _measure(images: Tensor, ink_threshold: float) -> dict[str, Tensor]:
    # stroke width on a 2× upsampling (strokes ≥ 2 px there), halved back to the image's pixels
    ink2 = (F.interpolate(images.float(), scale_factor=2, mode="bilinear", align_corners=False) > ink_threshold).float()
    area2 = ink2.sum((1, 2, 3))  # (N,)
    boundary2 = (ink2 - _erode(ink2)).sum((1, 2, 3))  # (N,) ink pixels with a background neighbour
    # width ≈ 2 · area / boundary   (band of width w, length L: area w·L, boundary 2·L)
    thickness = (2 * area2 / boundary2.clamp(min=1)) / 2

    ink = (images > ink_threshold).float()  # (N, 1, H, W)
    area = ink.sum((1, 2, 3))  # (N,)

    N, _, H, W = ink.shape
    rows = torch.arange(H, dtype=torch.float32).reshape(1, H, 1)
    cols = torch.arange(W, dtype=torch.float32).reshape(1, 1, W)
    m = ink[:, 0]  # (N, H, W)
    n = area.clamp(min=1)[:, None, None]
    x = cols - (m * cols).sum((1, 2), keepdim=True) / n  # (N, 1, W) column, centred
    y = -(rows - (m * rows).sum((1, 2), keepdim=True) / n)  # (N, H, 1) row, centred, pointing up
    # shear = cov(x, y) / var(y): how far the ink moves right per pixel up
    shear = (m * x * y).sum((1, 2)) / (m * y * y).sum((1, 2)).clamp(min=1e-6)  # (N,)
    slant = torch.rad2deg(torch.atan(shear))

    has_row, has_col = m.amax(2) > 0, m.amax(1) > 0  # (N, H), (N, W)
    size = _extent(has_row) * _extent(has_col)  # bounding-box height × width
    return dict(thickness=thickness, slant=slant, size=size)


def _extent(occupied: Tensor) -> Tensor:
    """(N, L) bool → last − first occupied index + 1 (0 where nothing is occupied). (N,) float."""
    L = occupied.shape[1]
    idx = torch.arange(L).expand_as(occupied)
    first = torch.where(occupied, idx, L).amin(1)
    last = torch.where(occupied, idx, -1).amax(1)
    return (last - first + 1).clamp(min=0).float()


def _cuts(v: Tensor) -> Tensor:
    """The 1/3 and 2/3 quantiles of v (n,) → (2,) float64."""
    return torch.quantile(v.double(), torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))


def terciles(attributes: dict[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
    """Per attribute, the (low, high) terciles within each digit class, (10, 2) (|slant| for slant)."""
    labels = torch.as_tensor(labels).reshape(-1)
    out = {}
    for name in WORDS:
        v = attributes[name].abs() if name == "slant" else attributes[name]  # (N,)
        overall = _cuts(v)
        out[name] = torch.stack([_cuts(v[labels == d]) if bool((labels == d).any()) else overall for d in range(10)])
    return out


def captions_for(images: Tensor, labels: Tensor, thresholds: Optional[dict[str, Tensor]] = None,
                 ink_threshold: float = 0.0) -> Captions:
    """A caption per digit, e.g. "a small thick slanted seven": images (N, 1, H, W) in [−1, 1], labels (N,) 0..9.

    Words come from :func:`measure` cut at ``thresholds`` (default: these images' own :func:`terciles`):
    below the low cut of the digit's class the first word of :data:`WORDS`, above the high cut the second,
    in between none. Returns the captions, the measured attributes and the thresholds used.
    """
    labels = torch.as_tensor(labels).reshape(-1)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels; they must pair up")
    if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) <= 9):
        raise ValueError(f"labels must be digits 0..9, got values in {int(labels.min())}..{int(labels.max())}")
    attrs = measure(images, ink_threshold)
    thresholds = thresholds if thresholds is not None else terciles(attrs, labels)
    captions = []
    for i, label in enumerate(labels.tolist()):
        words = []
        for name, (low_word, high_word) in WORDS.items():
            v = float(attrs[name][i].abs() if name == "slant" else attrs[name][i])
            lo, hi = thresholds[name][label].tolist()
            if v < lo:
                words.append(low_word)
            elif v > hi:
                words.append(high_word)
        words.append(DIGITS[label])
        article = "an" if words[0][0] in "aeiou" else "a"  # "an eight", "an upright one"
        captions.append(" ".join([article, *words]))
    return Captions(captions, attrs, dict(thresholds))
