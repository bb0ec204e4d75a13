"""Layouts of digits: canvases made on the fly from real MNIST, and what a drawn canvas is measured by.
Notebook 09 · LDM §4.3.1 (layout-to-image).

A *layout* is a list of objects (class, x0, y0, x1, y1): a digit and its box, in fractions of the canvas from the
top-left corner (x to the right, y down), so box (x0, y0, x1, y1) covers the pixel columns [x0·S, x1·S) and rows
[y0·S, y1·S) of an S × S canvas. :func:`layout_dataset` draws a canvas per index, the same one for the same
(seed, index): 1–3 real MNIST digits, each cropped to its ink, padded to a square (centred) and resized to a
square box of side 20–36 px, the boxes placed uniformly at random by rejection sampling, never overlapping and at
least ``gap`` pixels apart. The digits are the 28 × 28 MNIST ones (``mnist(size=28)``: the course's 32 × 32 digit is
the same one zero-padded by 2, and the padding is cropped away anyway). Values in [−1, 1] as every image of the
course; outside the boxes exactly −1.

=================  ============  ===============================================================================
code               paper         meaning
=================  ============  ===============================================================================
``layouts``        y             (N, K, 5) float: rows (class, x0, y0, x1, y1); class −1 (NO_OBJECT) = empty slot
``valid``          —             (N, K) bool: the slots that hold an object (class ≥ 0)
``images``         x             (N, 1, S, S) in [−1, 1], S = 64 (an f = 4 latent of 16 × 16)
ink                —             pixels above ``INK`` = 0 (half intensity, in [−1, 1])
=================  ============  ===============================================================================

**Measures** (every one per object or per canvas, so that the notebook can bootstrap them):
:func:`read_objects` — each requested box cropped, resized so its long side is 20 px (MNIST's digit box) and
centred in 32 × 32, read by the independent judge; :func:`ink_box_iou` — the IoU of each requested box with the
bounding box of the ink inside it, enlarged by ``margin`` of its side (a digit drawn a little off its box still
counts as its own); :func:`ink_outside` — the share of ink pixels outside every requested box; :func:`count_digits`
— how many digits a canvas holds, read as the 8-connected components of the ink dilated by one pixel that hold at
least ``MIN_AREA`` ink pixels (the dilation joins strokes broken by a pixel; the data's ``gap`` keeps two digits
apart); :func:`attention_in_boxes` — each object token's cross-attention mass inside its own box, against the
box's share of the canvas (what a token attending uniformly would get). Real canvases score the first four by
construction or nearly (tests/test_layout.py), the ceiling to compare samples with; scripts/measure_layout.py runs them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .conditioning import LayoutEncoder
from .config import DictConfig
from .data import mnist
from .evaluate import Evaluator

CANVAS_SIZE = 64  # S: an f = 4 autoencoder turns it into a 16 × 16 latent
MAX_OBJECTS = 3  # K: objects per layout, the width of every layout tensor
NUM_CLASSES = 10
NO_OBJECT = LayoutEncoder.NO_OBJECT  # −1: the class of an empty slot
INK = 0.0  # a pixel is ink above this (images in [−1, 1]: half intensity)
MIN_AREA = 10  # ink pixels a connected component needs to count as a digit (smaller ones are specks)
JUDGE_SIZE, DIGIT_BOX = 32, 20  # the judge's input, and the box MNIST fits its digits in (so do our crops)


@dataclass
class LayoutConfig(DictConfig):
    """How :func:`layout_dataset` draws canvases."""

    canvas: int = CANVAS_SIZE      # S = H = W of a canvas, pixels
    min_objects: int = 1           # objects per canvas, drawn uniformly in min..max
    max_objects: int = MAX_OBJECTS
    min_side: int = 20             # a box's side in pixels, drawn uniformly in min..max (boxes are square)
    max_side: int = 36
    gap: int = 4                   # empty pixels at least between two boxes: two digits' ink never touches
    tries: int = 100               # placements tried per box before the canvas starts over
    # fresh starts of a canvas before giving up with an error: with 3 objects a start succeeds ~15% of the time
    # (measured): 50 starts failed on one of the 20,000 cpu training canvases (seed 0); 1,000 fail with p ≈ 1e-70
    restarts: int = 1000


@dataclass
class LayoutData:
    """Canvases and their layouts, index by index."""

    images: Tensor    # (N, 1, S, S) in [−1, 1]
    layouts: Tensor   # (N, K, 5) float: (class, x0, y0, x1, y1), class NO_OBJECT in empty slots
    valid: Tensor     # (N, K) bool
    sources: Tensor   # (N, K) long: each object's index in the MNIST split (−1 for empty slots)

    def __len__(self) -> int:
        return self.images.shape[0]


def _apart(a: tuple[int, int, int], b: tuple[int, int, int], gap: int) -> bool:
    """Two square boxes (x0, y0, side) are ≥ gap pixels apart along x or along y (so they do not overlap)."""
    (ax, ay, a_s), (bx, by, b_s) = a, b
    return ax + a_s + gap <= bx or bx + b_s + gap <= ax or ay + a_s + gap <= by or by + b_s + gap <= ay


def place_boxes(rng: np.random.Generator, n: int, cfg: LayoutConfig) -> list[tuple[int, int, int]]:
    """``n`` square boxes (x0, y0, side) in pixels, by rejection sampling. Each start draws the n sides
    ~ U{min_side..max_side}, then places the boxes one by one, each corner uniform in the canvas and drawn again
    while the box comes closer than ``gap`` to one already placed; a box refused ``tries`` times starts the canvas
    over with new sides, and ``restarts`` starts give up with a ValueError. (Drawing a new side with every try
    instead would favour small boxes much more: large ones are refused more often.)"""
    S = cfg.canvas
    if cfg.min_side > S:
        raise ValueError(f"boxes of side ≥ {cfg.min_side} px cannot fit a {S}×{S} canvas; lower min_side")
    for _ in range(cfg.restarts):
        boxes: list[tuple[int, int, int]] = []
        for side in rng.integers(cfg.min_side, cfg.max_side + 1, size=n).tolist():
            for _ in range(cfg.tries):
                box = (int(rng.integers(0, S - side + 1)), int(rng.integers(0, S - side + 1)), side)
                if all(_apart(box, b, cfg.gap) for b in boxes):
                    boxes.append(box)
                    break
            else:
                break  # this start is stuck: start over with new sides
        if len(boxes) == n:
            return boxes
    raise ValueError(f"could not place {n} boxes of side {cfg.min_side}–{cfg.max_side} px, {cfg.gap} px apart, in a "
                     f"{S}×{S} canvas ({cfg.restarts} starts × {cfg.tries} tries per box); lower max_objects, "
                     "min_side or gap, or enlarge the canvas")


def square_digit(digit: Tensor) -> Tensor:
    """A digit (1, h, w) in [−1, 1] cropped to the bounding box of its ink (> −1) and padded with −1 to a square,
    centred: (1, L, L) with L its long side. Resized to a box, the digit then spans the box's side."""
    rows, cols = (digit[0] > -1).any(1).nonzero(), (digit[0] > -1).any(0).nonzero()
    crop = digit[:, int(rows[0]):int(rows[-1]) + 1, int(cols[0]):int(cols[-1]) + 1]  # (1, h, w)
    h, w = crop.shape[1:]
    L = max(h, w)
    top, left = (L - h) // 2, (L - w) // 2
    return F.pad(crop, (left, L - w - left, top, L - h - top), value=-1.0)  # (1, L, L)


def _to_layout(boxes: list[tuple[int, int, int]], classes: list[int], S: int, K: int) -> Tensor:
    """Pixel boxes (x0, y0, side) and their classes → one padded layout (K, 5) in canvas fractions."""
    y = torch.zeros(K, 5)
    y[:, 0] = NO_OBJECT
    for k, ((x0, y0, s), c) in enumerate(zip(boxes, classes)):
        y[k] = torch.tensor([c, x0 / S, y0 / S, (x0 + s) / S, (y0 + s) / S])
    return y


def layout_dataset(n: int, split: str = "train", seed: int = 0, cfg: LayoutConfig | None = None,
                   start: int = 0) -> LayoutData:
    """Canvases ``start`` … ``start + n − 1`` of MNIST ``split`` with ``seed``: each from its own generator,
    ``np.random.default_rng([seed, index])``, so canvas i is the same whatever n, start or the order of calls.
    The objects' classes are their source digits' MNIST labels."""
    cfg = cfg or LayoutConfig()
    S, K = cfg.canvas, cfg.max_objects
    pool, labels = mnist(split, size=28)  # (P, 1, 28, 28) in [−1, 1], (P,)
    images = torch.full((n, 1, S, S), -1.0)
    layouts, sources = torch.zeros(n, K, 5), torch.full((n, K), -1, dtype=torch.long)
    for i in range(n):
        rng = np.random.default_rng([seed, start + i])
        boxes = place_boxes(rng, int(rng.integers(cfg.min_objects, cfg.max_objects + 1)), cfg)
        idx = rng.integers(len(pool), size=len(boxes)).tolist()
        for k, ((x0, y0, s), j) in enumerate(zip(boxes, idx)):
            digit = F.interpolate(square_digit(pool[j])[None], size=(s, s), mode="bilinear", antialias=True,
                                  align_corners=False)[0]  # (1, s, s)
            images[i, :, y0:y0 + s, x0:x0 + s] = digit.clamp(-1, 1)
            sources[i, k] = j
        layouts[i] = _to_layout(boxes, labels[idx].tolist(), S, K)
    return LayoutData(images, layouts, layouts[..., 0] != NO_OBJECT, sources)


def random_layouts(n: int, seed: int = 0, cfg: LayoutConfig | None = None) -> Tensor:
    """``n`` layouts (n, K, 5) placed as :func:`layout_dataset` places them, with classes drawn uniformly (no
    digits drawn): the default conditions of a layout model (``python -m minildm sample`` without --layout)."""
    cfg = cfg or LayoutConfig()
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        boxes = place_boxes(rng, int(rng.integers(cfg.min_objects, cfg.max_objects + 1)), cfg)
        out.append(_to_layout(boxes, rng.integers(NUM_CLASSES, size=len(boxes)).tolist(), cfg.canvas, cfg.max_objects))
    return torch.stack(out)  # (n, K, 5)


# ------------------------------------------------------------------------------------------ measures
def _pixels(box: Tensor, S: int) -> tuple[int, int, int, int]:
    """A box (x0, y0, x1, y1) in fractions → pixel bounds (c0, r0, c1, r1), rounded, at least one pixel wide."""
    c0, r0, c1, r1 = (int(round(float(v) * S)) for v in box)
    return c0, r0, max(c1, c0 + 1), max(r1, r0 + 1)


def _objects(layouts: Tensor) -> list[tuple[int, int]]:
    """(image, slot) of every object of layouts (N, K, 5), in order."""
    return [tuple(ik) for ik in (layouts[..., 0] != NO_OBJECT).nonzero().tolist()]


def object_crops(images: Tensor, layouts: Tensor) -> Tensor:
    """Each object's box cut out of its canvas, resized (antialiased) so its long side is 20 px, and centred in a
    32 × 32 frame of −1: the format of the judge's MNIST digits (20 × 20 in 28 × 28, padded to 32). (M, 1, 32, 32),
    objects in the order of :func:`_objects`."""
    S = images.shape[-1]
    crops = torch.full((len(_objects(layouts)), images.shape[1], JUDGE_SIZE, JUDGE_SIZE), -1.0)
    for m, (i, k) in enumerate(_objects(layouts)):
        c0, r0, c1, r1 = _pixels(layouts[i, k, 1:], S)
        h, w = r1 - r0, c1 - c0
        th, tw = max(1, round(DIGIT_BOX * h / max(h, w))), max(1, round(DIGIT_BOX * w / max(h, w)))
        small = F.interpolate(images[i:i + 1, :, r0:r1, c0:c1].float(), size=(th, tw), mode="bilinear",
                              antialias=True, align_corners=False)[0]  # (C, th, tw)
        top, left = (JUDGE_SIZE - th) // 2, (JUDGE_SIZE - tw) // 2
        crops[m, :, top:top + th, left:left + tw] = small
    return crops


def read_objects(images: Tensor, layouts: Tensor, evaluator: Evaluator | None = None) -> Tensor:
    """The judge's reading of every requested box: (N, K) long, NO_OBJECT in empty slots. ``evaluator`` defaults
    to ``Evaluator()`` (the shipped judge, :mod:`minildm.classifier`), which no training loss touched.
    Accuracy = ``(read == layouts[..., 0])[valid]``."""
    evaluator = evaluator or Evaluator()
    read = torch.full(layouts.shape[:2], NO_OBJECT, dtype=torch.long)
    where = _objects(layouts)
    if where:
        pred = evaluator.logits(object_crops(images, layouts)).argmax(1)  # (M,)
        read[tuple(torch.tensor(where).T)] = pred
    return read


def ink_box_iou(images: Tensor, layouts: Tensor, margin: float = 0.1, threshold: float = INK) -> Tensor:
    """IoU of each requested box with the bounding box of the ink (> ``threshold``) inside that box enlarged by
    ``margin`` × its side on every side: (N, K), NaN in empty slots, 0 where the enlarged box holds no ink.
    Boxes are compared in canvas fractions; a pixel (r, c) spans [c/S, (c+1)/S) × [r/S, (r+1)/S)."""
    S = images.shape[-1]
    iou = torch.full(layouts.shape[:2], float("nan"))
    for i, k in _objects(layouts):
        x0, y0, x1, y1 = layouts[i, k, 1:].tolist()
        mx, my = margin * (x1 - x0), margin * (y1 - y0)
        c0, r0 = max(0, int(np.floor((x0 - mx) * S))), max(0, int(np.floor((y0 - my) * S)))
        c1, r1 = min(S, int(np.ceil((x1 + mx) * S))), min(S, int(np.ceil((y1 + my) * S)))
        ink = (images[i, :, r0:r1, c0:c1] > threshold).any(0)  # (h, w)
        rows, cols = ink.any(1).nonzero(), ink.any(0).nonzero()
        if len(rows) == 0:
            iou[i, k] = 0.0
            continue
        a0, b0 = (c0 + int(cols[0])) / S, (r0 + int(rows[0])) / S  # the ink's box, in fractions
        a1, b1 = (c0 + int(cols[-1]) + 1) / S, (r0 + int(rows[-1]) + 1) / S
        # IoU = |A ∩ B| / (|A| + |B| − |A ∩ B|)
        inter = max(0.0, min(x1, a1) - max(x0, a0)) * max(0.0, min(y1, b1) - max(y0, b0))
        iou[i, k] = inter / ((x1 - x0) * (y1 - y0) + (a1 - a0) * (b1 - b0) - inter)
    return iou


def ink_outside(images: Tensor, layouts: Tensor, threshold: float = INK) -> Tensor:
    """The share of each canvas's ink pixels (> ``threshold``) that lie outside every requested box: (N,), NaN for a
    canvas without ink. 0 for every real canvas of :func:`layout_dataset`."""
    N, _, H, W = images.shape
    inside = torch.zeros(N, H, W, dtype=torch.bool)
    for i, k in _objects(layouts):
        c0, r0, c1, r1 = _pixels(layouts[i, k, 1:], W)
        inside[i, r0:r1, c0:c1] = True
    ink = (images > threshold).any(1)  # (N, H, W)
    total = ink.flatten(1).sum(1).float()  # (N,)
    out = (ink & ~inside).flatten(1).sum(1).float()
    return torch.where(total > 0, out / total.clamp(min=1), torch.nan)


def connected_components(mask: Tensor) -> Tensor:
    """Labels (N, H, W) long of the 8-connected components of ``mask`` (N, H, W) bool: 0 off the mask, and one
    positive label per component (not consecutive). Each on-pixel starts with its own label and takes the largest
    label of its 3 × 3 neighbourhood on the mask until nothing changes: a component ends with its largest label."""
    N, H, W = mask.shape
    ids = torch.arange(1, H * W + 1, dtype=torch.float32).reshape(1, H, W)  # exact in float32 up to 2^24 pixels
    labels = torch.where(mask, ids, 0.0)  # (N, H, W)
    while True:
        grown = F.max_pool2d(labels[:, None], 3, stride=1, padding=1)[:, 0] * mask  # (N, H, W)
        # pointer jumping: a label is the id of a pixel of the same component; take that pixel's label (a shortcut
        # along the component, so long strokes need far fewer rounds)
        flat = grown.flatten(1)  # (N, H·W)
        grown = torch.maximum(grown, flat.gather(1, (flat.long() - 1).clamp(min=0)).reshape(N, H, W) * mask)
        if torch.equal(grown, labels):
            return labels.long()
        labels = grown


def count_digits(images: Tensor, threshold: float = INK, min_area: int = MIN_AREA) -> Tensor:
    """How many digits each canvas holds: (N,) long, the 8-connected components of its ink (> ``threshold``)
    dilated by one pixel (3 × 3) that hold at least ``min_area`` ink pixels."""
    ink = (images > threshold).any(1)  # (N, H, W)
    grown = F.max_pool2d(ink[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0  # one-pixel dilation
    labels = connected_components(grown) * ink  # each ink pixel with its component's label
    counts = []
    for lab in labels:
        _, area = lab[lab > 0].unique(return_counts=True)
        counts.append(int((area >= min_area).sum()))
    return torch.tensor(counts)


def attention_in_boxes(maps: Tensor, layouts: Tensor) -> tuple[Tensor, Tensor]:
    """Each object token's attention mass inside its own box, and the share a uniform map would put there.

    ``maps`` (B, 1 + K, H, W) from :meth:`~minildm.attention_maps.AttentionStore.token_maps` of a layout model:
    token 0 is ∅, token 1 + k is slot k of ``layouts`` (B, K, 5) (:class:`~minildm.conditioning.LayoutEncoder`'s
    order). Cell (r, c) of the H × W grid covers [c/W, (c+1)/W) × [r/H, (r+1)/H) of the canvas and counts with
    w_k(r, c), the fraction of it inside box k, so a box need not fall on cell edges. Returns (share, chance), each
    (B, K), NaN in empty slots:

        share_bk  = Σ_p w_bk(p) · map[b, 1+k, p] / Σ_p map[b, 1+k, p]
        chance_bk = Σ_p w_bk(p) / (H·W) = (x1 − x0)(y1 − y0)        the box's share of the canvas

    share / chance ≫ 1: token k is read where its digit is to be drawn.
    """
    B, K = layouts.shape[:2]
    if maps.ndim != 4 or maps.shape[:2] != (B, 1 + K) or layouts.shape[2:] != (5,):
        raise ValueError(f"need maps (B, 1 + K, H, W) (∅, then one token per slot) for layouts (B, K, 5), got maps "
                         f"{tuple(maps.shape)} and layouts {tuple(layouts.shape)}; take maps from token_maps("
                         "rows=slice(0, B)) of the batch's conditional rows")
    H, W = maps.shape[2:]
    x0, y0, x1, y1 = layouts[..., 1:].float().unbind(-1)  # (B, K) each

    def cover(lo: Tensor, hi: Tensor, n: int) -> Tensor:  # (B, K, n): the part of each of n cells in [lo, hi)
        edges = torch.arange(n + 1, dtype=torch.float32) / n
        return (torch.minimum(hi[..., None], edges[1:]) - torch.maximum(lo[..., None], edges[:-1])).clamp(min=0) * n

    w = cover(y0, y1, H)[..., :, None] * cover(x0, x1, W)[..., None, :]  # (B, K, H, W)
    obj = maps[:, 1:].float().cpu()  # (B, K, H, W): the object tokens' maps
    share = (obj * w).sum((2, 3)) / obj.sum((2, 3)).clamp_min(1e-12)
    valid = layouts[..., 0] != NO_OBJECT
    nan = torch.tensor(float("nan"))
    return torch.where(valid, share, nan), torch.where(valid, w.mean((2, 3)), nan)
