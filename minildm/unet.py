"""The time-conditional UNet ε_θ(x_t, t) of DDPM / LDM.  Notebook 02 · DDPM App. B · LDM §3.3 / App. E.

=================  ===========================  ====================================================
code               paper                        meaning
=================  ===========================  ====================================================
``x``              x_t (or z_t in latent space) the noised input, (B, C, H, W)
``t``              t                            timestep indices 0 … T-1, (B,)
``emb``            —                            time (+ class) embedding, (B, emb_dim), fed to every ResBlock
``y``              y                            optional class labels, (B,) ints
``vec``            —                            optional global condition vector (B, vector_dim), e.g. attributes
``context``        τ_θ(y)                       conditioning tokens (B, M, context_dim) for cross-attention
``context_mask``   —                            (B, M) bool: False for padding tokens no pixel may attend to
output             ε_θ(x_t, t)                  predicted noise, same shape as ``x``
=================  ===========================  ====================================================

Layout (as LDM's ``openaimodel.py``, smaller): a conv in; one *level* per entry of ``channel_mult``, each with
``num_res_blocks`` ResBlocks (+ self-attention on ``attn_levels``) and a stride-2 conv between levels; a middle
Res → Attn → Res; the mirror-image decoder, which concatenates the encoder's activations (skips); a zero conv
out. Zero-initialised last layers make every ResBlock / attention block start as the identity and the whole
network start by predicting ε = 0.

**Cross-attention (notebook 05, LDM §3.3).** With ``UNetConfig(context_dim=d_τ)`` every attention block (on
``attn_levels`` and in the middle) is a :class:`~minildm.attention.SpatialTransformer` instead of a
:class:`~minildm.attention.SelfAttention2d`: self-attention, then cross-attention to ``context`` = τ_θ(y), then a
feed-forward layer, ``transformer_depth`` times. ``context_dim=None`` (the default) builds exactly the network of
notebooks 02 and 04, with the same parameter names, so their configs and checkpoints load unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import SelfAttention2d, SpatialTransformer
from .config import DictConfig
from .layers import Downsample, ResBlock, Upsample, coordinate_features, group_norm


def timestep_embedding(t: Tensor | int | float, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of timesteps (Transformer positional encoding, DDPM App. B). (B,) → (B, dim).

    With half = dim // 2 and frequencies ω_i = max_period^(−i/half), i = 0 … half−1:
    emb(t) = [cos(t ω_0), …, cos(t ω_{half−1}), sin(t ω_0), …, sin(t ω_{half−1})]   (cos first, as LDM's code;
    an odd ``dim`` gets a trailing 0). Low i vary fast with t, high i slowly: every t gets a distinct code.
    """
    t = torch.as_tensor(t, dtype=torch.float32).reshape(-1)  # (B,)
    half = dim // 2
    # ω_i = exp(−ln(max_period) · i / half)
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None] * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2·half)
    if dim % 2:
        emb = F.pad(emb, (0, 1))  # (B, dim)
    return emb


@dataclass
class UNetConfig(DictConfig):
    in_channels: int = 1  # channels of x_t: 1 for MNIST pixels, the autoencoder's z channels in latent space
    out_channels: Optional[int] = None  # channels of ε_θ; None = in_channels
    base_channels: int = 32  # width of the first level; level i has base_channels · channel_mult[i]
    channel_mult: tuple[int, ...] = (1, 2, 2)  # one level per entry; H, W halve between levels (len-1 times)
    num_res_blocks: int = 1  # ResBlocks per level (the decoder has one more, to consume the downsample's skip)
    attn_levels: tuple[int, ...] = (2,)  # indices into channel_mult that get self-attention (the middle always does)
    heads: int = 4  # attention heads
    dropout: float = 0.0  # dropout inside ResBlocks (DDPM used 0.1 on CIFAR-10)
    num_classes: Optional[int] = None  # if set, a learned class embedding is added to the time embedding
    # if set, a learned linear map of a global condition vector vec (B, vector_dim) is added to the time embedding,
    # so it reaches every ResBlock (ADM's class route, for a vector; SDXL adds its size conditions this way)
    vector_dim: Optional[int] = None
    time_emb_mult: int = 4  # emb_dim = base_channels · time_emb_mult (DDPM/LDM use 4)
    context_dim: Optional[int] = None  # if set, attention blocks become SpatialTransformers attending to τ_θ(y)
    transformer_depth: int = 1  # TransformerBlocks per SpatialTransformer (used only with context_dim)
    # with context_dim: the attn_levels whose SpatialTransformers keep self-attention (None: all of them, and the
    # middle always does); the others attend to the context only, (H·W)·M instead of (H·W)² work (notebook 06)
    self_attn_levels: Optional[tuple[int, ...]] = None
    # if set, γ(x, y) of each pixel's position (layers.coordinate_features, F = coord_freqs) is concatenated to x_t
    # before the first conv (CoordConv, Liu et al. 2018): convolutions are translation-equivariant, so without it the
    # network knows where it is only from the zero padding, and a query cannot match "inside box b" (notebook 09)
    coord_freqs: Optional[int] = None

    def __post_init__(self):
        self.channel_mult, self.attn_levels = tuple(self.channel_mult), tuple(self.attn_levels)
        if self.self_attn_levels is not None:
            self.self_attn_levels = tuple(self.self_attn_levels)
        bad = [i for i in self.attn_levels + (self.self_attn_levels or ()) if not 0 <= i < len(self.channel_mult)]
        if bad:
            raise ValueError(f"attn_levels {bad} are not level indices; channel_mult={self.channel_mult} "
                             f"has levels 0..{len(self.channel_mult) - 1}")
        if self.transformer_depth < 1:
            raise ValueError(f"transformer_depth must be at least 1 (got {self.transformer_depth})")
        if self.coord_freqs is not None and self.coord_freqs < 0:
            raise ValueError(f"coord_freqs must be None (no coordinate channels) or ≥ 0 (got {self.coord_freqs})")

    @property
    def coord_channels(self) -> int:
        """Channels of the coordinate features appended to x_t: 2·(2F + 1), or 0 without them."""
        return 0 if self.coord_freqs is None else 2 * (2 * self.coord_freqs + 1)

    @property
    def downsample_factor(self) -> int:
        """H and W must be multiples of this: 2^(number of levels − 1)."""
        return 2 ** (len(self.channel_mult) - 1)



class EmbedSequential(nn.Sequential):
    """A stack of layers where ResBlocks also receive ``emb`` and SpatialTransformers ``context`` (and its padding
    mask) (LDM's ``TimestepEmbedSequential``)."""

    def forward(self, x: Tensor, emb: Tensor, context: Optional[Tensor] = None,
                context_mask: Optional[Tensor] = None) -> Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context, context_mask)
            else:
                x = layer(x)
        return x


class UNet(nn.Module):
    """ε_θ(x_t, t[, y]): predicts the noise in ``x`` at timestep ``t``. Output has the shape of ``x``.

    Speed on CPU: ``model.to(memory_format=torch.channels_last)`` trains ~25% faster (oneDNN's convolutions
    prefer NHWC; same outputs, and inputs need no conversion). Leave it off on MPS; on CUDA it pays with AMP.
    """

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.base_channels
        emb_dim = ch * cfg.time_emb_mult
        self.time_embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_embed = nn.Embedding(cfg.num_classes, emb_dim) if cfg.num_classes else None
        self.vector_embed = nn.Linear(cfg.vector_dim, emb_dim) if cfg.vector_dim else None

        def res(i: int, o: int) -> ResBlock:
            return ResBlock(i, o, emb_dim, cfg.dropout)

        def attn(c: int, level: int | None = None) -> nn.Module:
            if cfg.context_dim is not None:  # self- + cross-attention + feed-forward (LDM §3.3)
                keep_self = level is None or cfg.self_attn_levels is None or level in cfg.self_attn_levels
                return SpatialTransformer(c, cfg.context_dim, heads=cfg.heads, depth=cfg.transformer_depth,
                                          norm=group_norm(c), self_attn=keep_self)
            return SelfAttention2d(c, heads=cfg.heads, norm=group_norm(c))

        # encoder: remember every block's output channels, the decoder concatenates them back
        self.conv_in = nn.Conv2d(cfg.in_channels + cfg.coord_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skip_chs = [ch]
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [res(ch, cfg.base_channels * mult)]
                ch = cfg.base_channels * mult
                if level in cfg.attn_levels:
                    layers.append(attn(ch, level))
                self.down.append(EmbedSequential(*layers))
                skip_chs.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.down.append(EmbedSequential(Downsample(ch)))
                skip_chs.append(ch)

        self.mid = EmbedSequential(res(ch, ch), attn(ch), res(ch, ch))

        # decoder: num_res_blocks + 1 blocks a level, each eating one skip; upsample at the end of a level
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for j in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_chs.pop(), cfg.base_channels * mult)]
                ch = cfg.base_channels * mult
                if level in cfg.attn_levels:
                    layers.append(attn(ch, level))
                if level != 0 and j == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                self.up.append(EmbedSequential(*layers))

        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, cfg.out_channels or cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # zero: an untrained model predicts ε = 0
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, t: Tensor | int, y: Optional[Tensor] = None,
                context: Optional[Tensor] = None, context_mask: Optional[Tensor] = None,
                vec: Optional[Tensor] = None) -> Tensor:
        """x (B, C, H, W), t (B,) or a scalar, y (B,) class labels, context (B, M, context_dim) τ_θ(y),
        context_mask (B, M) bool (True: a token the cross-attention may read; None: all), vec (B, vector_dim) a
        global condition vector → ε_θ (B, out_channels, H, W)."""
        cfg = self.cfg
        if x.ndim != 4:
            raise ValueError(f"UNet expects x of shape (B, C, H, W), got {tuple(x.shape)}")
        B, C, H, W = x.shape
        if C != cfg.in_channels:
            raise ValueError(f"x has {C} channels but the UNet was built with in_channels={cfg.in_channels} "
                             f"(e.g. 1 for MNIST pixels, the autoencoder's z channels for latents)")
        f = cfg.downsample_factor
        if H % f or W % f:
            raise ValueError(f"input size {H}x{W} is not divisible by {f} = 2^{len(cfg.channel_mult) - 1} "
                             f"(the UNet halves H and W {len(cfg.channel_mult) - 1} times): pad or resize to "
                             f"a multiple of {f}, or use fewer levels in channel_mult")
        if cfg.context_dim is None and (context is not None or context_mask is not None):
            raise ValueError("this UNet has no cross-attention, so it cannot use context: build it with "
                             "UNetConfig(context_dim=...) (notebook 05), or use y= for class labels")
        if cfg.context_dim is not None:
            if context is None:
                raise ValueError(f"this UNet conditions through cross-attention (context_dim={cfg.context_dim}): "
                                 f"pass context=τ_θ(y) of shape ({B}, M, {cfg.context_dim}), e.g. from "
                                 "minildm.conditioning's encoders or ConditionalUNet")
            if context.ndim != 3 or context.shape[0] != B or context.shape[2] != cfg.context_dim:
                raise ValueError(f"context must be (B, M, context_dim) = ({B}, M, {cfg.context_dim}), "
                                 f"got {tuple(context.shape)}")
            if context_mask is not None and (context_mask.dtype != torch.bool
                                             or tuple(context_mask.shape) != tuple(context.shape[:2])):
                raise ValueError(f"context_mask must be bool of shape (B, M) = {tuple(context.shape[:2])}, True for "
                                 f"the tokens that may be attended; got {context_mask.dtype} "
                                 f"{tuple(context_mask.shape)}")
            if context_mask is not None and not bool(context_mask.any(1).all()):
                raise ValueError("context_mask hides every token of an example: softmax over no keys is undefined; "
                                 "keep at least one token (the layout encoder's ∅ token is always kept)")
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(B)  # (B,)
        if t.shape != (B,):
            raise ValueError(f"t must be a scalar or have shape (B,) = ({B},), got {tuple(t.shape)}")

        emb = self.time_embed(timestep_embedding(t, cfg.base_channels).to(x.dtype))  # (B, emb_dim)
        if self.label_embed is not None:
            if y is None:
                raise ValueError(f"this UNet was built with num_classes={cfg.num_classes}: pass labels y, "
                                 f"int tensor of shape ({B},)")
            emb = emb + self.label_embed(y)  # (B, emb_dim)
        elif y is not None:
            raise ValueError("labels y were given but the UNet has no class embedding; "
                             "build it with UNetConfig(num_classes=...)")
        if self.vector_embed is not None:
            if vec is None or tuple(vec.shape) != (B, cfg.vector_dim):
                raise ValueError(f"this UNet was built with vector_dim={cfg.vector_dim}: pass vec of shape "
                                 f"({B}, {cfg.vector_dim}), got {None if vec is None else tuple(vec.shape)}")
            emb = emb + self.vector_embed(vec.to(emb.dtype))  # (B, emb_dim)
        elif vec is not None:
            raise ValueError("a condition vector vec was given but the UNet has no vector embedding; "
                             "build it with UNetConfig(vector_dim=...)")

        if cfg.coord_freqs is not None:  # [x_t, γ(position)]: the same features for every example
            coords = coordinate_features(H, W, cfg.coord_freqs, device=x.device, dtype=x.dtype)
            x = torch.cat([x, coords.expand(B, -1, -1, -1)], dim=1)  # (B, C + coord_channels, H, W)
        h = self.conv_in(x)  # (B, base_channels, H, W)
        skips = [h]
        for block in self.down:
            h = block(h, emb, context, context_mask)
            skips.append(h)
        h = self.mid(h, emb, context, context_mask)  # (B, C_mid, H/f, W/f)
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, context, context_mask)  # concat along channels
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, out_channels, H, W)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
