"""Scaled dot-product attention, multi-head self/cross-attention, and the blocks LDM builds from them.

Notebook 02 (self-attention in the UNet) and 05 (cross-attention) · LDM §3.3 · Vaswani et al. 2017.

======================  ===============================  ======================================================
code                    paper                            meaning
======================  ===============================  ======================================================
``x``                   φ_i(z_t)                         UNet features as tokens, (B, N, C); queries come from here
``context``             τ_θ(y)                           conditioning tokens, (B, M, d_τ); keys/values in cross-attn
``q, k, v``             Q = W_Q φ, K = W_K τ, V = W_V τ  per head: (B, heads, N or M, d)
``probs``               softmax(QKᵀ/√d)                  attention weights, (B, heads, Nq, Nk); each row sums to 1
``to_out``              W_O                              the heads' outputs, concatenated, projected back to C
``TransformerBlock``    LDM App. E "transformer block"   x + SelfAttn(LN x); x + CrossAttn(LN x, τ_θ(y)); x + FF(LN x)
``SpatialTransformer``  LDM §3.3, Fig. 3                 (B, C, H, W) → H·W tokens → blocks → back, plus the input
======================  ===============================  ======================================================

Self-attention is the case ``context is None``: K and V come from ``x`` itself. Every :class:`Attention` built with a
``context_dim`` is a cross-attention layer and says so: ``is_cross`` is True (how :mod:`minildm.attention_maps`
finds them).

**Looking inside.** Set ``module.probs_hook = fn`` on an :class:`Attention` and ``fn(probs)`` is called with
its attention map on every forward (the explicit path is then used, since the fused kernel never forms
``probs``). :class:`SelfAttention2d` and :class:`SpatialTransformer` also write the query grid's (H, W) into
``spatial_size`` before each call, so a map can be put back on the image. ``None`` (the default) costs nothing;
:func:`minildm.attention_maps.capture_attention` sets and removes the hooks for you.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .layers import group_norm


def attention(q: Tensor, k: Tensor, v: Tensor, return_probs: bool = False,
              mask: Optional[Tensor] = None) -> Tensor | tuple[Tensor, Tensor]:
    """Attention(Q, K, V) = softmax(QKᵀ/√d)·V  (LDM §3.3, Vaswani et al. Eq. 1).

    Args: q (B, heads, Nq, d); k, v (B, heads, Nk, d); mask, bool, broadcastable to (B, heads, Nq, Nk), True
    where a query may attend to a key (a masked key gets probability 0; every row needs one True).
    Returns: out (B, heads, Nq, d), and probs (B, heads, Nq, Nk) if ``return_probs``.
    Without ``return_probs`` the fused ``F.scaled_dot_product_attention`` is used: same maths, less memory.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention needs q (…, Nq, d), k (…, Nk, d), v (…, Nk, d_v); "
                         f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if not return_probs:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, Nq, d); scale 1/√d
    d = q.shape[-1]
    # scores = Q Kᵀ / √d          (the √d keeps the logits' variance ~1 whatever the head size)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)  # (B, heads, Nq, Nk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # exp(−∞) = 0: masked keys get no weight
    # probs = softmax over the keys: each query distributes a total weight of 1
    probs = scores.softmax(dim=-1)  # (B, heads, Nq, Nk)
    # out = probs · V
    out = probs @ v  # (B, heads, Nq, d)
    return out, probs


class Attention(nn.Module):
    """Multi-head attention: self-attention on ``x``, or cross-attention from ``x`` to ``context``.

    Q = W_Q x, K = W_K context, V = W_V context (context = x for self-attention), each split into ``heads``
    heads of size ``dim_head``; the heads' outputs are concatenated and projected back to ``query_dim``.
    """

    def __init__(self, query_dim: int, context_dim: Optional[int] = None, heads: int = 4,
                 dim_head: Optional[int] = None):
        super().__init__()
        if dim_head is None:
            if query_dim % heads != 0:
                raise ValueError(f"query_dim={query_dim} does not split into heads={heads}; "
                                 f"choose heads dividing {query_dim} or pass dim_head explicitly")
            dim_head = query_dim // heads
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.context_dim = context_dim if context_dim is not None else query_dim
        self.to_q = nn.Linear(query_dim, inner, bias=False)  # W_Q
        self.to_k = nn.Linear(self.context_dim, inner, bias=False)  # W_K
        self.to_v = nn.Linear(self.context_dim, inner, bias=False)  # W_V
        self.to_out = nn.Linear(inner, query_dim)  # W_O
        self.is_cross = context_dim is not None  # keys and values from another sequence: cross-attention
        # called with probs (B, heads, N, M) when set; see the module docstring
        self.probs_hook: Optional[Callable[[Tensor], None]] = None
        self.spatial_size: Optional[tuple[int, int]] = None  # (H, W) of the queries' grid, set by 2-D blocks

    def forward(self, x: Tensor, context: Optional[Tensor] = None, key_mask: Optional[Tensor] = None) -> Tensor:
        """x (B, N, query_dim), context (B, M, context_dim) or None → (B, N, query_dim).

        ``key_mask`` (B, M) bool, True for the keys that may be attended (the text encoder's padding mask).
        """
        if context is None:
            context = x  # self-attention
        if context.shape[-1] != self.context_dim:
            raise ValueError(f"context has {context.shape[-1]} features per token but this layer was built "
                             f"with context_dim={self.context_dim}; context must be (B, M, {self.context_dim})")
        h = self.heads
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=h)  # (B, heads, N, d)
        k = rearrange(self.to_k(context), "b m (h d) -> b h m d", h=h)  # (B, heads, M, d)
        v = rearrange(self.to_v(context), "b m (h d) -> b h m d", h=h)  # (B, heads, M, d)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, M) broadcast over heads, queries
        if self.probs_hook is None:
            out = attention(q, k, v, mask=mask)
        else:
            out, probs = attention(q, k, v, return_probs=True, mask=mask)
            self.probs_hook(probs)
        out = rearrange(out, "b h n d -> b n (h d)")  # (B, N, heads·d)
        return self.to_out(out)  # (B, N, query_dim)


class SelfAttention2d(nn.Module):
    """Residual self-attention over the pixels of a feature map, as in the DDPM/LDM UNet's low levels.

    x + Attention(GroupNorm(x)) with the H·W pixels as tokens. The output projection starts at zero, so a fresh
    block is the identity (the same trick as LDM's ``zero_module``): training decides how much to attend.
    """

    def __init__(self, channels: int, heads: int = 4, norm: Optional[nn.Module] = None):
        super().__init__()
        self.norm = norm if norm is not None else group_norm(channels)
        self.attn = Attention(channels, heads=heads)
        nn.init.zeros_(self.attn.to_out.weight)
        nn.init.zeros_(self.attn.to_out.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        tokens = rearrange(self.norm(x), "b c h w -> b (h w) c")  # (B, H·W, C)
        self.attn.spatial_size = (H, W)
        out = self.attn(tokens)  # (B, H·W, C)
        out = rearrange(out, "b (h w) c -> b c h w", h=H, w=W)  # (B, C, H, W)
        return x + out


class FeedForward(nn.Module):
    """The transformer's position-wise MLP: Linear → GEGLU (or GELU) → Linear, width ``mult``·dim inside.

    GEGLU (Shazeer 2020), LDM's default: FF(x) = W_2 (GELU(W_g x) ⊙ W_1 x), a gated GELU; ``glu=False`` gives
    the plain W_2 GELU(W_1 x) of Vaswani et al. (the text encoder uses that one).
    """

    def __init__(self, dim: int, mult: int = 4, glu: bool = True):
        super().__init__()
        inner = dim * mult
        self.glu = glu
        self.proj_in = nn.Linear(dim, inner * 2 if glu else inner)  # [W_1; W_g] for GEGLU, W_1 otherwise
        self.proj_out = nn.Linear(inner, dim)  # W_2

    def forward(self, x: Tensor) -> Tensor:
        h = self.proj_in(x)  # (B, N, 2·inner) or (B, N, inner)
        if self.glu:
            h, gate = h.chunk(2, dim=-1)  # (B, N, inner) each
            h = h * F.gelu(gate)  # GEGLU: W_1 x ⊙ GELU(W_g x)
        else:
            h = F.gelu(h)
        return self.proj_out(h)  # (B, N, dim)


class TransformerBlock(nn.Module):
    """LDM's ``BasicTransformerBlock`` (pre-LayerNorm, three residual sub-layers), on tokens (B, N, dim):

        x ← x + SelfAttn(LN(x))                 features attend to each other
        x ← x + CrossAttn(LN(x), τ_θ(y))        features (queries) attend to the condition (keys, values)
        x ← x + FF(LN(x))                       position-wise GEGLU MLP

    ``context_dim`` None makes the second layer self-attention too (LDM does the same when context is None).
    ``self_attn=False`` drops the first layer (``attn1`` is None): on a fine grid self-attention costs (H·W)² per
    head, cross-attention only H·W·M, so a cross-attention-only block gives fine attention maps cheaply (notebook 06).
    """

    def __init__(self, dim: int, context_dim: Optional[int], heads: int = 4, dim_head: Optional[int] = None,
                 ff_mult: int = 4, glu: bool = True, self_attn: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim) if self_attn else None
        self.attn1 = Attention(dim, heads=heads, dim_head=dim_head) if self_attn else None
        self.norm2, self.attn2 = nn.LayerNorm(dim), Attention(dim, context_dim, heads=heads, dim_head=dim_head)
        self.norm3, self.ff = nn.LayerNorm(dim), FeedForward(dim, ff_mult, glu)

    def forward(self, x: Tensor, context: Optional[Tensor] = None, context_mask: Optional[Tensor] = None) -> Tensor:
        """x (B, N, dim), context (B, M, context_dim), context_mask (B, M) bool (False: a padding token that no
        query may attend to) → (B, N, dim)."""
        if self.attn1 is not None:
            x = x + self.attn1(self.norm1(x))  # self-attention
        x = x + self.attn2(self.norm2(x), context, key_mask=context_mask)  # cross-attention: Q from x, K, V from τ_θ(y)
        return x + self.ff(self.norm3(x))  # (B, N, dim)


class SpatialTransformer(nn.Module):
    """Cross-attention conditioning on a feature map (LDM §3.3, Fig. 3; ``SpatialTransformer`` in LDM's code).

    GroupNorm → 1×1 conv ``proj_in`` → the H·W pixels as tokens (B, H·W, C) → ``depth`` × :class:`TransformerBlock`
    with ``context`` → back to (B, C, H, W) → 1×1 conv ``proj_out`` → + the input. ``proj_out`` starts at zero, so a
    fresh block is the identity (LDM's ``zero_module``), as for :class:`SelfAttention2d`.
    """

    def __init__(self, channels: int, context_dim: Optional[int], heads: int = 4, depth: int = 1,
                 dim_head: Optional[int] = None, norm: Optional[nn.Module] = None, self_attn: bool = True):
        super().__init__()
        self.norm = norm if norm is not None else group_norm(channels)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.blocks = nn.ModuleList(TransformerBlock(channels, context_dim, heads, dim_head, self_attn=self_attn)
                                    for _ in range(depth))
        self.proj_out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: Tensor, context: Optional[Tensor] = None, context_mask: Optional[Tensor] = None) -> Tensor:
        """x (B, C, H, W), context (B, M, context_dim), context_mask (B, M) bool or None → (B, C, H, W)."""
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x))  # (B, C, H, W)
        h = rearrange(h, "b c h w -> b (h w) c")  # (B, H·W, C): pixel (r, c) is token r·W + c
        for block in self.blocks:
            for attn in (block.attn1, block.attn2):
                if attn is not None:
                    attn.spatial_size = (H, W)  # for attention_maps
            h = block(h, context, context_mask)  # (B, H·W, C)
        h = rearrange(h, "b (h w) c -> b c h w", h=H, w=W)  # (B, C, H, W)
        return x + self.proj_out(h)

