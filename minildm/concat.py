"""Conditioning by concatenation: ε_θ([z_t, c], t), c spatially aligned with z_t.  Notebook 08 · LDM §3.3, §4.3.2,
§4.4, §4.5.

LDM conditions two ways. Cross-attention on τ_θ(y) (:mod:`minildm.conditioning`, notebooks 05–06) is for conditions
with no place in the image (a class, a prompt); a condition that *is* an image, aligned pixel for pixel with the
output, is simply stacked onto z_t along the channels (LDM §3.3, "for spatially aligned conditioning information
… concatenation"):

    L_LDM = E_{ℰ(x), c, ε, t} ‖ε − ε_θ([z_t, c], t)‖²,   c (B, C_c, h, w) on z_t's grid (B, C_z, h, w)

so the UNet's first conv takes C_z + C_c channels and its last still returns C_z (ε has z_t's shape). What c is,
per task (:mod:`minildm.pairs` builds each):

=============  ======================================================  =============================================
task           c                                                       ∅ (:meth:`ConcatUNet.null_condition`)
=============  ======================================================  =============================================
``sr``         the low-resolution image, at the latent grid (§4.4)     none by default; with dropout a plane of
                                                                       ``null_value`` (−2: never an LR image)
``inpaint``    [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), m↓]  (§4.5)                the fully masked input: zeros, m↓ = 1
               faces: [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), A, m↓], A the      the same, A = 0 (no attribute said)
               attribute planes (:func:`minildm.pairs.attribute_planes`)
``semantic``   one-hot part map, area-resized to the grid (§4.3.2)     the empty map: all zeros (no part anywhere)
=============  ======================================================  =============================================

m is the mask (1 = to be generated, LDM's convention) and m↓ = :func:`resize_mask` it at the latent grid. The null
conditions are fixed inputs, not learned vectors: a fully masked image *is* "no condition" (and inpainting must
learn it anyway, to draw from nothing), and an all-zero map is never a real map (a real one has a 1 per pixel), so
neither can be mistaken for a condition. Super-resolution has none by default (LDM's SR model is not guided: the
LR image all but fixes the output, and a grey LR image, zeros, is a real input); a preset may train one with a
constant plane outside [−1, 1] (``null_value``), which no LR image can be, so that guidance can sharpen the digit
the LR image most implies (notebook 08 measures whether it does). :func:`minildm.train.train_diffusion` replaces
c by ∅ with p_uncond.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conditioning import ConditionalUNet, encoder_from_spec
from .text import Tokenizer

TASKS = ("sr", "inpaint", "semantic")


def resize_mask(mask: Tensor, size: int) -> Tensor:
    """m (B, 1, H, W) in {0, 1} → m↓ (B, 1, size, size): a latent cell is to be generated if *any* pixel under it is
    (a max-pool over each f × f block, f = H / size), so no unknown pixel hides under a "known" cell."""
    B, C, H, W = mask.shape
    if H % size or W % size:
        raise ValueError(f"a {H}×{W} mask cannot be resized to a {size}×{size} latent grid: H and W must be "
                         f"multiples of it (f = H / size)")
    return F.max_pool2d(mask.float(), H // size)  # (B, 1, size, size)


def area_resize(x: Tensor, size: int) -> Tensor:
    """An image or one-hot map (B, C, H, W) → (B, C, size, size) by averaging each f × f block (f = H / size): a
    map's channels stay fractions that sum to 1, an image's block means are its f-fold average pool."""
    B, C, H, W = x.shape
    if H % size or W % size:
        raise ValueError(f"{H}×{W} cannot be area-resized to {size}×{size}: H and W must be multiples of it")
    return F.avg_pool2d(x, H // size)  # (B, C, size, size)


class ConcatUNet(nn.Module):
    """ε_θ([z_t, c], t): a UNet whose input is z_t (C_z channels) and the aligned condition c (C_c), concatenated.

    Called like the conditional UNets, ``model(z_t, t, y=c)``, so :func:`minildm.train.train_diffusion`'s ``labels``
    (conditions (N, C_c, h, w)), its condition dropout and every sampler's ``model_kwargs`` flow in unchanged.
    ``task`` is one of :data:`TASKS`; ``size`` the latent grid h = w; ``attributes`` the names of the attribute
    planes an inpainting model's c carries (the faces of notebook 08; none for MNIST); ``known_pixels``: an
    inpainting model's c also carries the masked image's pixels, stacked onto the latent grid
    (:func:`minildm.pairs.inpaint_condition`). The checkpoint keeps :attr:`spec`.
    """

    def __init__(self, unet: nn.Module, task: str, latent_channels: int, condition_channels: int, size: int,
                 attributes=(), null_value: float | None = None, known_pixels: bool = False):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"unknown concatenation task {task!r}; expected one of {TASKS}")
        cfg = unet.cfg
        if cfg.in_channels != latent_channels + condition_channels or (cfg.out_channels or cfg.in_channels) != \
                latent_channels:
            raise ValueError(f"a concatenation UNet takes [z_t, c]: build it with UNetConfig(in_channels="
                             f"{latent_channels + condition_channels}, out_channels={latent_channels}); got "
                             f"in_channels={cfg.in_channels}, out_channels={cfg.out_channels}")
        self.attributes = tuple(attributes)
        if known_pixels and task != "inpaint":
            raise ValueError(f"known_pixels is for inpainting (the masked image's pixels in c), not task {task!r}")
        if self.attributes and known_pixels:
            raise ValueError("an inpainting model takes attribute planes or the known pixels in c, not both (yet)")
        if self.attributes and (task != "inpaint" or condition_channels != latent_channels
                                + len(self.attributes) + 1):
            raise ValueError(f"attribute planes are for inpainting, c = [z, A, m↓]: condition_channels must be "
                             f"{latent_channels + len(self.attributes) + 1} for {len(self.attributes)} attributes, "
                             f"got task {task!r} with {condition_channels}")
        if null_value is not None and (task != "sr" or -1 <= null_value <= 1):
            raise ValueError(f"null_value is super-resolution's ∅, a constant plane outside the images' [-1, 1] "
                             f"(so never a real LR image): give a value beyond ±1 for task 'sr', got {null_value} "
                             f"for task {task!r}")
        if cfg.vector_dim is not None and cfg.vector_dim != len(self.attributes):
            raise ValueError(f"a concatenation UNet with vector_dim={cfg.vector_dim} reads its attribute planes into "
                             f"the time embedding as well: it needs that many attributes, got "
                             f"{len(self.attributes)}")
        self.unet, self.task, self.null_value, self.known_pixels = unet, task, null_value, bool(known_pixels)
        self.latent_channels, self.condition_channels, self.size = latent_channels, condition_channels, size

    @property
    def cfg(self):
        """The UNet's config: lets DiffusionModel treat this like a UNet (its sample space is out_channels)."""
        return self.unet.cfg

    @property
    def spec(self) -> dict:
        """What a checkpoint stores to rebuild this wrapper (:func:`wrap_unet`)."""
        spec = dict(type="concat", task=self.task, latent_channels=self.latent_channels,
                    condition_channels=self.condition_channels, size=self.size)
        return (spec | (dict(attributes=list(self.attributes)) if self.attributes else {})
                | (dict(null_value=self.null_value) if self.null_value is not None else {})
                | (dict(known_pixels=True) if self.known_pixels else {}))

    def check_condition(self, c, n: int | None = None) -> Tensor:
        """c as float (n, C_c, size, size), or a ValueError that says what is expected."""
        c = torch.as_tensor(c, dtype=torch.float32)
        want = (self.condition_channels, self.size, self.size)
        if c.ndim != 4 or tuple(c.shape[1:]) != want or (n is not None and c.shape[0] != n):
            raise ValueError(f"this {self.task} model is conditioned by concatenation: pass y of shape "
                             f"({n if n is not None else 'n'}, {', '.join(map(str, want))}), one condition per sample "
                             f"on the latent grid (minildm.pairs builds them), got {tuple(c.shape)}")
        return c

    def forward(self, x: Tensor, t: Tensor | int, y: Optional[Tensor] = None) -> Tensor:
        """z_t (B, C_z, h, w), t (B,), y = c (B, C_c, h, w) → ε_θ (B, C_z, h, w)."""
        if y is None:
            raise ValueError(f"ConcatUNet ({self.task}) needs its condition y = c (B, {self.condition_channels}, "
                             f"{self.size}, {self.size})")
        B, C, H, W = x.shape
        if y.shape != (B, self.condition_channels, H, W):
            raise ValueError(f"the condition c must be aligned with z_t: ({B}, {self.condition_channels}, {H}, {W}), "
                             f"got {tuple(y.shape)}")
        y = y.to(x.dtype)
        if self.unet.cfg.vector_dim is None:
            return self.unet(torch.cat([x, y], 1), t)  # [z_t, c]: (B, C_z + C_c, h, w) → (B, C_z, h, w)
        # a global condition also through the embedding: the attribute planes are constant, so their means are A
        a = y[:, self.latent_channels:self.latent_channels + len(self.attributes)].mean((2, 3))  # (B, M)
        return self.unet(torch.cat([x, y], 1), t, vec=a)

    def null_condition(self, batch: int, device=None) -> Tensor:
        """∅ for a batch (batch, C_c, size, size): the fully masked input (inpainting), the empty map (semantic),
        or, for a super-resolution model trained with condition dropout, its constant plane ``null_value``."""
        return null_condition(self.task, self.condition_channels, self.size, batch, device, self.null_value)


def null_condition(task: str, condition_channels: int, size: int, batch: int = 1, device=None,
                   null_value: float | None = None) -> Tensor:
    """∅ of a concatenation task for a batch (batch, C_c, size, size), from the task's spec alone (no UNet needed).
    Super-resolution has one only if it was trained with one: the constant plane ``null_value`` (spec key)."""
    if task == "sr":
        if null_value is None:
            raise ValueError("this super-resolution model has no null condition (trained without condition "
                             "dropout, its spec has no null_value); sample it with guidance=1")
        return torch.full((batch, condition_channels, size, size), float(null_value), device=device)
    c = torch.zeros(batch, condition_channels, size, size, device=device)
    if task == "inpaint":
        c[:, -1] = 1.0  # m↓ = 1 everywhere: nothing is known
    return c


def wrap_unet(unet: nn.Module, spec: dict | None) -> tuple[nn.Module, Tokenizer | None]:
    """ε_θ from a bare UNet and the conditioning spec a preset or checkpoint stores: the UNet itself (None), a
    :class:`ConcatUNet` (``{"type": "concat", …}``, :attr:`ConcatUNet.spec`), or a
    :class:`~minildm.conditioning.ConditionalUNet` with τ_θ (:func:`~minildm.conditioning.encoder_from_spec`);
    with a text model's tokenizer."""
    if spec is None:
        return unet, None
    if spec.get("type") == "concat":
        return ConcatUNet(unet, spec["task"], int(spec["latent_channels"]), int(spec["condition_channels"]),
                          int(spec["size"]), spec.get("attributes", ()), spec.get("null_value"),
                          bool(spec.get("known_pixels", False))), None
    encoder, tokenizer = encoder_from_spec(spec)
    return ConditionalUNet(unet, encoder), tokenizer
