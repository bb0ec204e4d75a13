"""Attention maps you can see: capture softmax(QKᵀ/√d) from a model's attention layers.  Notebook 05 · LDM §3.3.

The mechanism is explicit: every :class:`~minildm.attention.Attention` has a ``probs_hook`` attribute, and
:func:`capture_attention` sets it on the chosen layers for the length of a ``with`` block, then puts the old
value back (also when the block raises). Nothing is patched; outside the block the fused kernel runs as before,
and inside it the explicit path computes the same output (up to float rounding), so capturing changes nothing
the model computes::

    with capture_attention(unet, which="cross") as store:
        images = model.sample(4, y=prompt_ids)            # one record per cross-attention layer per call
    maps = store.token_maps(size=(32, 32))                # (B, M, 32, 32): where each token is looked at

=================  ===========================  ==========================================================
code               paper                        meaning
=================  ===========================  ==========================================================
``probs``          softmax(QKᵀ/√d)              (B, heads, Nq, Nk); Nq = h·w pixels of φ_i(z_t), Nk = M tokens
``size``           —                            (h, w) of the query grid at that layer (8×8, 4×4, … in latent)
``step``           denoising step i             which call of the model the record belongs to
map[b, m, r, c]    —                            how much pixel (r, c) attends to token m: Σ_m map = 1
=================  ===========================  ==========================================================

Queries are the pixels in row-major order, the order of ``rearrange(x, "b c h w -> b (h w) c")``: pixel (r, c)
is query r·w + c, so :func:`probs_to_spatial` undoes that rearrange on the query axis.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .attention import Attention


def probs_to_spatial(probs: Tensor, h: int, w: int) -> Tensor:
    """Put the query axis back on its grid: (B, heads, h·w, M) → (B, heads, M, h, w).

    ``out[b, n, m, r, c] = probs[b, n, r·w + c, m]``: the inverse of ``"b c h w -> b (h w) c"`` on the queries.
    """
    if probs.ndim != 4 or probs.shape[2] != h * w:
        raise ValueError(f"probs must be (B, heads, h·w = {h * w}, M) for a {h}×{w} query grid, "
                         f"got {tuple(probs.shape)}")
    return rearrange(probs, "b n (h w) m -> b n m h w", h=h, w=w)  # (B, heads, M, h, w)


@dataclass
class AttentionRecord:
    """One call of one attention layer."""

    name: str                              # the layer's name in the model, e.g. "mid.1.blocks.0.attn2"
    step: int                              # store.step if set, else how often this layer was called before
    probs: Tensor                          # (B, heads, Nq, Nk), detached (on the CPU unless to_cpu=False)
    size: Optional[tuple[int, int]]        # (h, w) of the queries' grid, None for a layer that is not 2-D
    is_cross: bool                         # keys from the condition τ_θ(y) (True) or from the features (False)


class AttentionStore:
    """Collects an :class:`AttentionRecord` per call of each hooked layer; filled by :func:`capture_attention`.

    ``step``: set it (``store.step = i``) before a model call to label what follows; left at None, a record's step
    is the number of earlier calls of its layer in this store, which is the sampler's step index when each step
    calls the model once (as :func:`minildm.guidance.guided` does, even with guidance). Capture one sampling run of
    one batch (``DiffusionModel.sample(..., batch_size=n)``): :meth:`token_maps` averages records by position in
    the batch, so two batches of equal size would be mixed. With guidance the batch is [y; ∅], 2B rows: the first
    B are the conditional half.

    ``rows`` and ``mean_heads`` shrink what is kept, for long runs: only the first ``rows`` batch rows of each call
    (the conditional half of [y; ∅]), and the mean over heads instead of every head (2·heads times less memory; then
    :meth:`token_maps` gives what a full store's ``token_maps(rows=slice(0, rows))`` gives).
    """

    def __init__(self, to_cpu: bool = True, rows: Optional[int] = None, mean_heads: bool = False):
        self.to_cpu, self.rows, self.mean_heads = to_cpu, rows, mean_heads
        self.step: Optional[int] = None
        self.records: list[AttentionRecord] = []
        self._calls: dict[str, int] = {}

    def hook_for(self, name: str, module: Attention):
        """The ``probs_hook`` for layer ``name``: it appends one record per call."""
        def hook(probs: Tensor) -> None:
            calls = self._calls.get(name, 0)
            self._calls[name] = calls + 1
            p = probs.detach() if self.rows is None else probs.detach()[:self.rows]  # (B, heads, Nq, Nk)
            if self.mean_heads:
                p = p.mean(1, keepdim=True)  # (B, 1, Nq, Nk)
            self.records.append(AttentionRecord(name, calls if self.step is None else self.step,
                                                p.cpu() if self.to_cpu else p, module.spatial_size, module.is_cross))
        return hook

    def clear(self) -> None:
        self.records.clear()
        self._calls.clear()

    @property
    def names(self) -> list[str]:
        """The layers that recorded something, in order of their first call."""
        return list(dict.fromkeys(r.name for r in self.records))

    @property
    def steps(self) -> list[int]:
        return sorted({r.step for r in self.records})

    def select(self, layers: Union[str, Iterable[str]] = "all",
               steps: Union[None, int, Iterable[int]] = None) -> list[AttentionRecord]:
        """The records of ``layers`` ("all" or names) at ``steps`` (None = all, an int, or several)."""
        out = self.records
        if layers != "all":
            names = {layers} if isinstance(layers, str) else set(layers)
            unknown = names - set(self.names)
            if unknown:
                raise ValueError(f"no records from layers {sorted(unknown)}; recorded: {self.names}")
            out = [r for r in out if r.name in names]
        if steps is not None:
            wanted = {steps} if isinstance(steps, int) else set(steps)
            out = [r for r in out if r.step in wanted]
        return out

    def token_maps(self, size: Optional[tuple[int, int]] = None, heads: Union[str, int] = "mean",
                   layers: Union[str, Iterable[str]] = "all", steps: Union[None, int, Iterable[int]] = None,
                   rows: Optional[slice] = None) -> Tensor:
        """Per-token maps (B, M, H, W): the attention each pixel pays to each token, averaged over records.

        Each record's probs (B, heads, h·w, M) are reduced over heads (``"mean"``, or one head's index), put on
        their (h, w) grid, upsampled bilinearly to ``size`` (default: the largest grid recorded), then averaged
        over the chosen ``layers`` and ``steps``. Bilinear weights are convex, so at every pixel the maps still sum
        to 1 over the M tokens. All chosen records must have the same B and M (cross-attention to one context).
        ``rows`` keeps those batch rows before upsampling (``slice(0, n)``: the conditional half of a guided batch
        [y; ∅]); the same numbers as slicing the result, without upsampling the rows thrown away.
        """
        recs = self.select(layers, steps)
        if not recs:
            raise ValueError(f"no attention records for layers={layers!r}, steps={steps!r}; recorded layers "
                             f"{self.names}, steps {self.steps}. Run the model inside capture_attention(...)")
        flat = [r.name for r in recs if r.size is None]
        if flat:
            raise ValueError(f"layers {sorted(set(flat))} have no spatial size (they are not in a 2-D block); "
                             "pick layers from SpatialTransformer / SelfAttention2d")
        shapes = {(r.probs.shape[0], r.probs.shape[-1]) for r in recs}
        if len(shapes) > 1:
            raise ValueError(f"records differ in (batch, tokens): {sorted(shapes)}; choose layers that attend to "
                             "the same context (e.g. which='cross'), and steps of one sampling run")
        if size is None:
            size = max((r.size for r in recs), key=lambda s: s[0] * s[1])
        total = 0.0
        for r in recs:
            p = r.probs.float() if rows is None else r.probs[rows].float()  # (B, heads, h·w, M)
            p = p.mean(1, keepdim=True) if heads == "mean" else p[:, [heads]]  # (B, 1, h·w, M)
            m = probs_to_spatial(p, *r.size)[:, 0]  # (B, M, h, w)
            if tuple(r.size) != tuple(size):
                m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)  # (B, M, H, W)
            total = total + m
        return total / len(recs)  # (B, M, H, W)


def attention_layers(model: nn.Module, which: str = "cross") -> dict[str, Attention]:
    """The model's :class:`Attention` layers by name: ``which`` = "cross", "self" or "all"."""
    if which not in ("cross", "self", "all"):
        raise ValueError(f"which must be 'cross', 'self' or 'all', got {which!r}")
    return {name: m for name, m in model.named_modules() if isinstance(m, Attention)
            and (which == "all" or m.is_cross == (which == "cross"))}


@contextlib.contextmanager
def capture_attention(model: nn.Module, which: str = "cross", store: Optional[AttentionStore] = None,
                      to_cpu: bool = True) -> Iterator[AttentionStore]:
    """``with capture_attention(model) as store:`` records every call's attention map of the chosen layers.

    Sets ``probs_hook`` on each :class:`Attention` of ``model`` selected by ``which`` ("cross", "self", "all")
    and restores the previous hooks on exit, even on an exception. ``store`` (new if None) gets the records;
    ``to_cpu`` moves each detached map to the CPU as it arrives (GPU memory stays free).
    """
    layers = attention_layers(model, which)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no {which}-attention layers to capture"
                         + ("; cross-attention needs a UNet built with UNetConfig(context_dim=...)"
                            if which == "cross" else ""))
    store = store if store is not None else AttentionStore(to_cpu=to_cpu)
    previous = {name: m.probs_hook for name, m in layers.items()}
    try:
        for name, m in layers.items():
            m.probs_hook = store.hook_for(name, m)
        yield store
    finally:
        for name, m in layers.items():
            m.probs_hook = previous[name]


def region_share(maps: Tensor, regions: Tensor) -> tuple[Tensor, Tensor]:
    """How much of each token's attention falls inside its region, and how much would by chance. Notebooks 05, 06.

    ``maps`` (B, M, H, W) from :meth:`AttentionStore.token_maps`; ``regions`` bool, token m's region R_m: (M, H, W),
    the same for every image (where a toy-face attribute is drawn, :func:`minildm.toyfaces.attribute_regions`), or
    per image (B, M, H, W) or (B, 1, H, W) (each digit's own ink, notebook 05). Returns (share, chance), each (M,):

        share_m  = Σ_b Σ_{p ∈ R_bm} map[b, m, p] / Σ_b Σ_p map[b, m, p]   token m's attention mass inside its region
        chance_m = (1/B) Σ_b |R_bm| / (H·W)                                the share if it attended uniformly

    share_m ≫ chance_m: token m is read where its region is. An empty region gives NaN for both.
    """
    if maps.ndim != 4:
        raise ValueError(f"maps must be (B, M, H, W) (AttentionStore.token_maps), got {tuple(maps.shape)}")
    B, M, H, W = maps.shape
    r = regions[None] if regions.ndim == 3 else regions  # (1 or B, M or 1, H, W)
    if r.ndim != 4 or r.shape[0] not in (1, B) or r.shape[1] not in (1, M) or tuple(r.shape[2:]) != (H, W):
        raise ValueError(f"regions must be one (H, W) mask per token, (M, H, W) = {(M, H, W)}, or per image "
                         f"({B}, {M} or 1, {H}, {W}), got {tuple(regions.shape)}; for masks at another size pass "
                         "token_maps(size=mask size)")
    r = r.to(maps.device, torch.bool).expand(B, M, H, W)
    mass = maps.float().sum(dim=(0, 2, 3))  # (M,) Σ_b Σ_p
    inside = (maps.float() * r).sum(dim=(0, 2, 3))  # (M,) Σ_b Σ_{p ∈ R_bm}
    area = r.float().mean(dim=(0, 2, 3))  # (M,) mean over b of |R_bm| / (H·W)
    empty = area == 0
    share = torch.where(empty, torch.nan, inside / mass.clamp_min(1e-12))
    return share, torch.where(empty, torch.nan, area)
