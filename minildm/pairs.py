"""Training pairs for the concatenation-conditioned models, made on the fly, and the measures that judge them.
Notebook 08 · LDM §4.4 (super-resolution), §4.5 (inpainting).

Every pair is (x, c): the image x (B, C, H, W) in [−1, 1], whose latent z = s·ℰ(x) is what ε_θ learns to denoise, and
the condition c (B, C_c, h, w) on z's grid (h = H / f), concatenated with z_t (:class:`~minildm.concat.ConcatUNet`).

=======================  =================================================================================
code                     meaning
=======================  =================================================================================
``low_resolution``       LR = the k × k average pool of x (MNIST 32 → 8, toy faces 64 → 16: k = 4)
``random_masks``         m (B, 1, H, W) in {0, 1}, 1 = to be generated (LDM's): boxes, strokes, a share full
``masked_image``         x ⊙ (1 − m): the unknown pixels set to 0, mid-grey in [−1, 1] (LDM's convention)
``inpaint_condition``    c = [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), m↓]: the masked image's latent, zeroed under m↓
                         (faces: [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), A, m↓], A the attributes as constant planes)
``attribute_planes``     A (B, M, h, w): +1 where attribute m is present, −1 absent, 0 unspecified (∅)
``face_masks``           the face masks: ``random_masks`` and, a share of them, one attribute's region
``region_mask``          where an attribute can be drawn (toy faces' :func:`~minildm.toyfaces.attribute_regions`)
``bicubic``              the classic baseline: LR upsampled ×k by bicubic interpolation
``consistency``          ‖downsample(SR) − LR‖: mean |avgpool_k(SR) − LR|, 0 for an SR that keeps the LR exactly
``error_outside_mask``   mean |y − x| over the known pixels (m = 0), per image
``paste_known``          m ⊙ y + (1 − m) ⊙ x: the known pixels put back (then the error outside the mask is 0)
=======================  =================================================================================

Why zero the latent under m↓: ℰ sees a grey box where the mask is, and its latent there describes the box, not the
image; zeroing makes the fully masked condition exactly ∅ (zeros, m↓ = 1), whatever ℰ is. Everything here is
deterministic per ``seed`` (NumPy's generator), so a run's pairs can be made again rather than stored.

:func:`pixel_inpaint_condition` is the pixel-space counterpart of ``inpaint_condition``, c = [x ⊙ (1 − m), m] at
full resolution (f = 1, no ℰ), for the pixel-vs-latent comparison of LDM Table 6
(``benchmarks/inpaint_pixel_vs_latent.py``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .autoencoder import AutoencoderKL
from .concat import area_resize, resize_mask
from .conditioning import AttributeEncoder
from .toyfaces import attribute_regions

SR_FACTOR = 4  # ×4 super-resolution: MNIST 8 → 32, toy faces 16 → 64 (LDM §4.4 trains ×4 too)


# ------------------------------------------------------------------------------------------ super-resolution
def low_resolution(x: Tensor, factor: int = SR_FACTOR) -> Tensor:
    """LR = the ``factor`` × ``factor`` average pool of x (B, C, H, W) → (B, C, H/factor, W/factor)."""
    return area_resize(x, x.shape[-1] // factor)


def bicubic(lr: Tensor, factor: int = SR_FACTOR) -> Tensor:
    """LR (B, C, h, w) upsampled ×``factor`` by bicubic interpolation, clamped to [−1, 1]: the classic baseline."""
    return F.interpolate(lr, scale_factor=factor, mode="bicubic", align_corners=False).clamp(-1, 1)


def consistency(sr: Tensor, lr: Tensor, factor: int = SR_FACTOR) -> Tensor:
    """‖downsample(SR) − LR‖ per image (B,): mean |avgpool_factor(SR) − LR| in the images' units ([−1, 1])."""
    if sr.shape[-1] != lr.shape[-1] * factor:
        raise ValueError(f"SR {tuple(sr.shape)} is not ×{factor} of LR {tuple(lr.shape)}")
    return (low_resolution(sr, factor) - lr).abs().flatten(1).mean(1)


# ------------------------------------------------------------------------------------------ inpainting masks
def _box(rng: np.random.Generator, size: int) -> np.ndarray:
    """One axis-aligned box covering 25–75 % of each side, anywhere on the canvas."""
    h, w = rng.integers(size // 4, 3 * size // 4 + 1, size=2)
    y0, x0 = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    m = np.zeros((size, size), np.float32)
    m[y0:y0 + h, x0:x0 + w] = 1
    return m


def _stroke(rng: np.random.Generator, size: int) -> np.ndarray:
    """A brush stroke: a random walk of 2–5 segments, each pixel within ``radius`` of a segment masked."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    m = np.zeros((size, size), bool)
    radius = rng.uniform(size / 16, size / 8)
    p = rng.uniform(0, size, size=2)
    for _ in range(rng.integers(2, 6)):
        q = np.clip(p + rng.normal(0, size / 3, size=2), 0, size - 1)
        d = q - p
        # distance of every pixel to the segment p → q: project onto it, clamp to its ends
        s = np.clip(((xx - p[0]) * d[0] + (yy - p[1]) * d[1]) / max(float(d @ d), 1e-6), 0, 1)
        m |= (xx - p[0] - s * d[0]) ** 2 + (yy - p[1] - s * d[1]) ** 2 <= radius ** 2
        p = q
    return m.astype(np.float32)


def random_masks(n: int, size: int, seed: int = 0, p_full: float = 0.1, p_half: float = 0.2,
                 p_box: float = 0.5) -> Tensor:
    """n masks (n, 1, size, size) in {0, 1} (1 = to be generated): a share ``p_full`` fully masked (the model also
    learns to draw from nothing, and that is ∅ for guidance), a share ``p_half`` one of the four halves (LDM's large
    masks: without them a box of at most 3/4 of a side never hides a whole half, and the half-masked test digits of
    notebook 08 were out of the training distribution), of the rest a share ``p_box`` one box, the others one brush
    stroke. The same ``seed`` gives the same masks."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 1, size, size), np.float32)
    sides = ("right", "left", "bottom", "top")
    for i in range(n):
        u = rng.uniform()
        if u < p_full:
            out[i, 0] = 1.0
        elif u < p_full + p_half:
            out[i, 0] = half_mask(1, size, sides[rng.integers(4)])[0, 0].numpy()
        else:
            out[i, 0] = _box(rng, size) if rng.uniform() < p_box else _stroke(rng, size)
    return torch.from_numpy(out)


def half_mask(n: int, size: int, side: str = "right") -> Tensor:
    """n copies of the mask of one half (n, 1, size, size): "right", "left", "top" or "bottom" is to be generated."""
    m = torch.zeros(n, 1, size, size)
    half = {"right": (slice(None), slice(size // 2, None)), "left": (slice(None), slice(0, size // 2)),
            "bottom": (slice(size // 2, None), slice(None)), "top": (slice(0, size // 2), slice(None))}
    if side not in half:
        raise ValueError(f"side must be one of {sorted(half)}, got {side!r}")
    m[(..., *half[side])] = 1
    return m


# the face regions a mask may cover (notebook 08's face inpainting): each hides what one attribute draws
FACE_REGIONS = ("Eyeglasses", "Smiling", "Wearing_Hat", "Bangs", "Rosy_Cheeks", "No_Beard")


def region_mask(name: str, size: int = 64) -> Tensor:
    """The mask (1, 1, size, size) of the pixels where the toy faces can draw attribute ``name`` (every way it can
    be drawn, :func:`~minildm.toyfaces.attribute_regions`), grown by one more pixel: masking it hides the attribute
    whatever the face, e.g. ``Eyeglasses`` hides both lenses and the eyes behind them."""
    regions = attribute_regions(size)
    if name not in regions:
        raise ValueError(f"no region for attribute {name!r}; the toy faces localise {', '.join(sorted(regions))}")
    m = regions[name].float()[None, None]
    return F.max_pool2d(m, 3, stride=1, padding=1)  # (1, 1, size, size)


def face_masks(n: int, size: int = 64, seed: int = 0, p_region: float = 0.4, regions=FACE_REGIONS) -> Tensor:
    """n face masks (n, 1, size, size): a share ``p_region`` the region of one attribute of ``regions`` (chosen
    uniformly: the test of notebook 08 masks these), the rest :func:`random_masks` (boxes, strokes, halves, full).
    The same ``seed`` gives the same masks."""
    rng = np.random.default_rng(seed)
    out = random_masks(n, size, seed=seed + 1_000_003)  # its own stream, so p_region does not shift the others
    table = torch.cat([region_mask(r, size) for r in regions])  # (R, 1, size, size)
    pick = rng.uniform(size=n) < p_region
    which = rng.integers(len(regions), size=n)
    out[torch.from_numpy(pick)] = table[torch.from_numpy(which[pick])]
    return out


def attribute_planes(attrs: Tensor, size: int) -> Tensor:
    """Attribute vectors (B, M) in {0, 1, 2 = ∅} → constant planes (B, M, size, size): +1 where attribute m is
    present, −1 where absent, 0 where unspecified, so that "nothing said" is the zero of the input (as the fully
    masked image is) and ∅ of the whole condition stays all zeros but m↓."""
    a = torch.as_tensor(attrs)
    if a.ndim != 2 or not bool(((a == 0) | (a == 1) | (a == AttributeEncoder.NULL)).all()):
        raise ValueError(f"attributes must be (B, M) with values 0, 1 or {AttributeEncoder.NULL} (unspecified), got "
                         f"shape {tuple(a.shape)}" + (f" and values {sorted(set(a.unique().tolist()))}" if a.ndim == 2
                                                      else ""))
    v = torch.where(a == AttributeEncoder.NULL, torch.zeros(()), a.float() * 2 - 1)  # (B, M) in {−1, 0, +1}
    return v[:, :, None, None].expand(-1, -1, size, size).contiguous()


def masked_image(x: Tensor, mask: Tensor) -> Tensor:
    """x ⊙ (1 − m): the pixels to be generated set to 0 (mid-grey in [−1, 1], LDM's ``masked_image``)."""
    return x * (1 - mask)


@torch.no_grad()
def inpaint_condition(ae: AutoencoderKL, x: Tensor, mask: Tensor, batch_size: int = 500,
                      attrs: Tensor | None = None, known_pixels: bool = False) -> Tensor:
    """c = [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), m↓] (B, z_channels + 1, h, w) for images x (B, C, H, W) in [−1, 1] and masks
    m (B, 1, H, W), with the frozen first stage ``ae`` (posterior means, on the CPU). With attribute vectors
    ``attrs`` (B, M) (the faces), c = [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), A, m↓] (B, z_channels + M + 1, h, w), A their
    :func:`attribute_planes`. ``known_pixels`` adds the masked image itself before m↓, each f × f block of pixels
    stacked into C·f² channels of its latent cell (``F.pixel_unshuffle``, f = H / h): the known pixels exactly, not
    only what ℰ keeps of them. m↓ stays the last channel, so ∅ (zeros, m↓ = 1) is the same rule for all three."""
    if mask.shape != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(f"the mask must be (B, 1, H, W) = ({x.shape[0]}, 1, {x.shape[2]}, {x.shape[3]}) for images "
                         f"{tuple(x.shape)}, got {tuple(mask.shape)}")
    was_training = ae.training
    ae.eval()
    device = ae.scale_factor.device
    xm = masked_image(x, mask)  # x ⊙ (1 − m): (B, C, H, W)
    z = torch.cat([ae.encode_latents(xm[i:i + batch_size].to(device)).cpu()
                   for i in range(0, x.shape[0], batch_size)])  # (B, z_channels, h, w)
    ae.train(was_training)
    h = z.shape[-1]
    m = resize_mask(mask, h)  # (B, 1, h, w)
    planes = [z * (1 - m)]  # (B, z_channels, h, w)
    if attrs is not None:
        if len(attrs) != len(x):
            raise ValueError(f"one attribute vector per image: got {len(attrs)} for {len(x)} images")
        planes.append(attribute_planes(attrs, h))  # (B, M, h, w)
    if known_pixels:  # (B, C·f², h, w): channel c·f² + f·dy + dx of cell (i, j) is pixel (f·i + dy, f·j + dx)
        planes.append(F.pixel_unshuffle(xm, x.shape[-1] // h))
    return torch.cat(planes + [m], 1)


def error_outside_mask(y: Tensor, x: Tensor, mask: Tensor) -> Tensor:
    """Mean |y − x| over the known pixels (m = 0) of each image, all channels: (B,). NaN where nothing is known."""
    keep = (1 - mask).expand_as(x)
    return ((y - x).abs() * keep).flatten(1).sum(1) / keep.flatten(1).sum(1)


def paste_known(y: Tensor, x: Tensor, mask: Tensor) -> Tensor:
    """m ⊙ y + (1 − m) ⊙ x: the generated pixels where m = 1, the known ones elsewhere."""
    return mask * y + (1 - mask) * x


def pixel_inpaint_condition(x: Tensor, mask: Tensor) -> Tensor:
    """c = [x ⊙ (1 − m), m] (B, C + 1, H, W) for images x (B, C, H, W) in [−1, 1] and masks m (B, 1, H, W): the
    pixel-space counterpart of :func:`inpaint_condition`, for an ε_θ([x_t, c], t) on pixels (f = 1, LDM Table 6's
    pixel row, ``benchmarks/inpaint_pixel_vs_latent.py``). There is no ℰ and no m↓ (m↓ = m at f = 1), and the masked
    image is already 0 under m, so the same rule holds: the fully masked condition is ∅ (zeros, m = 1)."""
    if mask.shape != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(f"the mask must be (B, 1, H, W) = ({x.shape[0]}, 1, {x.shape[2]}, {x.shape[3]}) for images "
                         f"{tuple(x.shape)}, got {tuple(mask.shape)}")
    return torch.cat([masked_image(x, mask), mask.to(x.dtype)], 1)  # (B, C + 1, H, W)
