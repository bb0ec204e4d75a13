"""Scaled dot-product attention, multi-head self/cross-attention, and a 2-D self-attention block.

Notebook 04 (self-attention in the UNet) and 05 (cross-attention) · LDM §3.3 · Vaswani et al. 2017.

=================  ===========================  ====================================================
code               paper                        meaning
=================  ===========================  ====================================================
``x``              φ_i(z_t)                     UNet features as tokens, (B, N, C); queries come from here
``context``        τ_θ(y)                       conditioning tokens, (B, M, d_τ); keys/values in cross-attn
``q, k, v``        Q = W_Q φ, K = W_K τ, V = W_V τ  per head: (B, heads, N or M, d)
``probs``          softmax(QKᵀ/√d)              attention weights, (B, heads, Nq, Nk); each row sums to 1
=================  ===========================  ====================================================

Self-attention is the case ``context is None``: K and V come from ``x`` itself.

**Looking inside.** Set ``module.probs_hook = fn`` on an :class:`Attention` and ``fn(probs)`` is called with
its attention map on every forward (the explicit path is then used, since the fused kernel never forms
``probs``). Notebook 05 uses this to draw cross-attention maps; ``None`` (the default) costs nothing.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def attention(q: Tensor, k: Tensor, v: Tensor, return_probs: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Attention(Q, K, V) = softmax(QKᵀ/√d)·V  (LDM §3.3, Vaswani et al. Eq. 1).

    Args: q (B, heads, Nq, d); k, v (B, heads, Nk, d).
    Returns: out (B, heads, Nq, d), and probs (B, heads, Nq, Nk) if ``return_probs``.
    Without ``return_probs`` the fused ``F.scaled_dot_product_attention`` is used: same maths, less memory.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention needs q (…, Nq, d), k (…, Nk, d), v (…, Nk, d_v); "
                         f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if not return_probs:
        return F.scaled_dot_product_attention(q, k, v)  # (B, heads, Nq, d); default scale is 1/√d
    d = q.shape[-1]
    # scores = Q Kᵀ / √d          (the √d keeps the logits' variance ~1 whatever the head size)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)  # (B, heads, Nq, Nk)
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
        # called with probs (B, heads, N, M) when set; see the module docstring
        self.probs_hook: Optional[Callable[[Tensor], None]] = None

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        """x (B, N, query_dim), context (B, M, context_dim) or None → (B, N, query_dim)."""
        if context is None:
            context = x  # self-attention
        if context.shape[-1] != self.context_dim:
            raise ValueError(f"context has {context.shape[-1]} features per token but this layer was built "
                             f"with context_dim={self.context_dim}; context must be (B, M, {self.context_dim})")
        h = self.heads
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=h)  # (B, heads, N, d)
        k = rearrange(self.to_k(context), "b m (h d) -> b h m d", h=h)  # (B, heads, M, d)
        v = rearrange(self.to_v(context), "b m (h d) -> b h m d", h=h)  # (B, heads, M, d)
        if self.probs_hook is None:
            out = attention(q, k, v)
        else:
            out, probs = attention(q, k, v, return_probs=True)
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
        self.norm = norm if norm is not None else nn.GroupNorm(_groups(channels), channels)
        self.attn = Attention(channels, heads=heads)
        nn.init.zeros_(self.attn.to_out.weight)
        nn.init.zeros_(self.attn.to_out.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        tokens = rearrange(self.norm(x), "b c h w -> b (h w) c")  # (B, H·W, C)
        out = self.attn(tokens)  # (B, H·W, C)
        out = rearrange(out, "b (h w) c -> b c h w", h=H, w=W)  # (B, C, H, W)
        return x + out


def _groups(channels: int, max_groups: int = 32) -> int:
    """GroupNorm group count: at most ``max_groups``, at least 4 channels a group when possible, dividing C."""
    g = max(1, min(max_groups, channels // 4))
    while channels % g:
        g -= 1
    return g
