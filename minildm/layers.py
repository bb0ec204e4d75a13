"""Layers shared by the UNet, the autoencoder and the discriminator: GroupNorm, ResBlock, Down/Upsample; and the
Fourier features that encode positions, of boxes (the layout tokens) and of pixels (the UNet's coordinate channels).
Notebooks 02 (the UNet), 03 (the autoencoder) and 09 (layouts) · DDPM App. B · LDM App. G.

They live here, below :mod:`minildm.unet` and :mod:`minildm.autoencoder`, so that the first stage does not depend on
the diffusion network's module, and there is one rule for GroupNorm's group count (:func:`num_groups`).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def fourier_features(c: Tensor, num_freqs: int) -> Tensor:
    """γ(c) = [c, sin(2^i π c), cos(2^i π c)]_{i<F} per coordinate: (…, D) → (…, D·(2F + 1)) (NeRF's encoding).

    A raw coordinate in [0, 1] is one slowly varying number, which an MLP turns into sharp position codes only
    slowly; the highest frequency here has period 2/2^(F−1): F = 8 resolves 1/64, one pixel of the 64² canvas."""
    freqs = math.pi * 2.0 ** torch.arange(num_freqs, dtype=c.dtype, device=c.device)  # (F,) 2^i·π
    angles = c[..., None] * freqs  # (…, D, F)
    return torch.cat([c[..., None], angles.sin(), angles.cos()], -1).flatten(-2)  # (…, D·(2F + 1))


def coordinate_features(height: int, width: int, num_freqs: int, device=None, dtype=None) -> Tensor:
    """γ(x, y) of every pixel's centre, (1, 2·(2F + 1), H, W): channels [γ(x), γ(y)] (:func:`fourier_features`).

    x = (column + ½)/W to the right and y = (row + ½)/H down, fractions of the image from its top-left corner: the
    layout boxes' convention (:mod:`minildm.layout`), so a pixel's x lies in [x0, x1) exactly when its column lies
    in the box's. In fractions, not pixels, so a latent and its canvas (or any size) share the same positions."""
    x = (torch.arange(width, device=device, dtype=dtype or torch.float32) + 0.5) / width
    y = (torch.arange(height, device=device, dtype=dtype or torch.float32) + 0.5) / height
    gx = fourier_features(x[:, None], num_freqs).T[:, None, :].expand(-1, height, width)  # (2F + 1, H, W)
    gy = fourier_features(y[:, None], num_freqs).T[:, :, None].expand(-1, height, width)
    return torch.cat([gx, gy])[None]


def num_groups(ch: int, max_groups: int = 32) -> int:
    """GroupNorm's group count for ``ch`` channels: min(max_groups, ch // 4), lowered until it divides ``ch``
    (so at least 4 channels a group where ``ch`` allows, and never more than 32 groups, as DDPM/LDM use)."""
    g = max(1, min(max_groups, ch // 4))
    while ch % g:
        g -= 1
    return g


def group_norm(ch: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm over ``ch`` channels with :func:`num_groups` groups."""
    return nn.GroupNorm(num_groups(ch, max_groups), ch)


class ResBlock(nn.Module):
    """h = conv(drop(SiLU(GN(conv(SiLU(GN(x))) + W·emb)))); out = skip(x) + h  (DDPM's residual block).

    ``emb_dim=None`` builds the block without a time embedding (no ``+ W·emb``; call it as ``block(x)``):
    the autoencoder's Encoder and Decoder (notebook 03) reuse it that way.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: Optional[int], dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = group_norm(in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        # the time embedding becomes a per-channel bias (none at all when emb_dim is None)
        self.emb_proj = nn.Linear(emb_dim, out_ch) if emb_dim is not None else None
        self.norm2, self.drop = group_norm(out_ch), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # zero: the block starts as the identity (skip only)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor, emb: Optional[Tensor] = None) -> Tensor:
        if (emb is None) != (self.emb_proj is None):
            raise ValueError("ResBlock: pass emb (B, emb_dim) exactly when the block was built with an emb_dim "
                             f"(here emb_dim={None if self.emb_proj is None else self.emb_proj.in_features})")
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out_ch, H, W)
        if self.emb_proj is not None:
            h = h + self.emb_proj(F.silu(emb))[:, :, None, None]  # (B, out_ch, 1, 1) broadcast over H, W
        h = self.conv2(self.drop(F.silu(self.norm2(h))))  # (B, out_ch, H, W)
        return self.skip(x) + h


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3×3 conv (DDPM's choice over pooling)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)  # (B, C, H/2, W/2)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour ×2, then a 3×3 conv (avoids transposed-conv checkerboards)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)
