"""Condition encoders τ_θ: a class label, a prompt, attributes or a layout → tokens for the UNet's cross-attention.
Notebooks 05, 06, 09 · LDM §3.3, §4.3.1.

LDM conditions ε_θ on y through a domain-specific encoder τ_θ that maps y to M tokens of width d_τ, which the
UNet's cross-attention layers read as keys and values (LDM Eq. 3):

    L_LDM = E_{ℰ(x), y, ε~N(0,1), t} ‖ε − ε_θ(z_t, t, τ_θ(y))‖²,   with ε_θ and τ_θ optimised jointly.

=====================  ============  ==============================================================================
code                   paper         meaning
=====================  ============  ==============================================================================
``ClassEncoder``       τ_θ (class)   y (B,) class ids → (B, 1, dim): one learned token per class (+ the null class)
``TextEncoder``        τ_θ (text)    y (B, L) token ids → (B, L, dim): a small transformer (LDM §4.3 uses BERT-like)
``AttributeEncoder``   τ_θ (attrs)   y (B, M) values in {0, 1, ∅} → (B, M, dim): one token per attribute (notebook 06)
``LayoutEncoder``      τ_θ (layout)  y (B, K, 5) objects (class, x0, y0, x1, y1) → (B, 1 + K, dim): ∅ + one per object
``null_condition``     ∅             the input meaning "no condition", for classifier-free guidance
``ConditionalUNet``    ε_θ(·, t, τ)  UNet + τ_θ as one module, so both train together and sample together
=====================  ============  ==============================================================================

Every encoder has a null input: the class ``num_classes``, the <null> prompt (``Tokenizer.encode("")``), the
all-∅ attribute vector (every value ``AttributeEncoder.NULL`` = 2), and the empty layout (every slot
``LayoutEncoder.NO_OBJECT`` = −1). An encoder with a ``key_mask(y)`` method (the layout one) also says which of its
tokens are padding; :class:`ConditionalUNet` hands that mask to every cross-attention layer.
Training replaces y by it with probability p_uncond (:func:`minildm.guidance.condition_dropout`), so the same
network also learns ε_θ(z_t, t, τ_θ(∅)), the unconditional model that guidance needs.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .attention import Attention, FeedForward
from .layers import fourier_features  # noqa: F401  (defined beside the UNet's coordinate channels; imported from here too)
from .text import Tokenizer


class ClassEncoder(nn.Module):
    """τ_θ for class labels: y (B,) in 0..num_classes → one token (B, 1, dim). ``num_classes`` is the null class."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes, self.dim = num_classes, dim
        self.embed = nn.Embedding(num_classes + 1, dim)  # row num_classes: ∅

    def forward(self, y: Tensor) -> Tensor:
        if y.ndim != 1:
            raise ValueError(f"ClassEncoder takes class ids of shape (B,), got {tuple(y.shape)}")
        if y.numel() and not (0 <= int(y.min()) and int(y.max()) <= self.num_classes):
            raise ValueError(f"class ids must be in 0..{self.num_classes} ({self.num_classes} = the null class), "
                             f"got values in {int(y.min())}..{int(y.max())}")
        return self.embed(y)[:, None, :]  # (B, 1, dim)

    def null_condition(self, batch: int, device=None) -> Tensor:
        """∅ for a batch: the null class, (batch,) long."""
        return torch.full((batch,), self.num_classes, dtype=torch.long, device=device)


class EncoderLayer(nn.Module):
    """A pre-LN transformer encoder layer: x ← x + Attn(LN x) over the real tokens; x ← x + MLP(LN x)."""

    def __init__(self, dim: int, heads: int, ff_mult: int = 4):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads=heads)
        self.norm2, self.ff = nn.LayerNorm(dim), FeedForward(dim, ff_mult, glu=False)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        """x (B, L, dim), keep (B, L) bool: False for <pad>, which no token may attend to."""
        x = x + self.attn(self.norm1(x), key_mask=keep)  # (B, L, dim)
        return x + self.ff(self.norm2(x))


class TextEncoder(nn.Module):
    """τ_θ for prompts: ids (B, L), L ≤ max_len → tokens (B, L, dim).

    Token + learned position embeddings, ``depth`` pre-LN :class:`EncoderLayer` with a padding mask (a <pad> is
    never a key, so what sits in pad positions cannot change the real tokens' outputs), and a final LayerNorm.
    The pad positions still get outputs and the UNet attends to all L tokens, as LDM's does to its 77.
    ``pad_id`` and ``null_id`` are :class:`minildm.text.Tokenizer`'s (0 and 2); see :meth:`for_tokenizer`.
    """

    def __init__(self, vocab_size: int, dim: int, max_len: int, depth: int = 2, heads: int = 4, pad_id: int = 0,
                 null_id: int = 2):
        super().__init__()
        self.vocab_size, self.dim, self.max_len = vocab_size, dim, max_len
        self.pad_id, self.null_id = pad_id, null_id
        self.token_embed = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Parameter(torch.randn(max_len, dim) * 0.02)  # one learned vector per position
        self.layers = nn.ModuleList(EncoderLayer(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    @classmethod
    def for_tokenizer(cls, tokenizer, dim: int, depth: int = 2, heads: int = 4) -> "TextEncoder":
        """An encoder sized for ``tokenizer`` (its vocabulary, max_len, pad and null ids)."""
        return cls(tokenizer.vocab_size, dim, tokenizer.max_len, depth, heads, tokenizer.pad_id, tokenizer.null_id)

    def forward(self, ids: Tensor) -> Tensor:
        if ids.ndim != 2 or ids.shape[1] > self.max_len:
            raise ValueError(f"TextEncoder takes token ids (B, L) with L ≤ max_len={self.max_len}, "
                             f"got {tuple(ids.shape)}; encode prompts with Tokenizer.encode_batch")
        B, L = ids.shape
        keep = ids != self.pad_id  # (B, L)
        if not bool(keep.any(1).all()):
            raise ValueError("a prompt is all <pad>: there is nothing to attend to. The empty prompt is the <null> "
                             "prompt, Tokenizer.encode('') or null_condition()")
        x = self.token_embed(ids) + self.pos_embed[:L]  # (B, L, dim)
        for layer in self.layers:
            x = layer(x, keep)  # (B, L, dim)
        return self.norm(x)  # (B, L, dim)

    def null_condition(self, batch: int, device=None) -> Tensor:
        """∅ for a batch: the <null> prompt [<null>, <pad>, …], (batch, max_len) long (= Tokenizer.null)."""
        ids = torch.full((batch, self.max_len), self.pad_id, dtype=torch.long, device=device)
        ids[:, 0] = self.null_id
        return ids


class AttributeEncoder(nn.Module):
    """τ_θ for binary attributes (notebook 06, CelebA's 40 or a subset): y (B, M) → M tokens (B, M, dim).

    token_m = LayerNorm(a_m + v_{y_m}):  a_m a learned vector per attribute (*which* attribute: Smiling,
    Eyeglasses, …), v a learned vector per value (0 absent, 1 present, 2 = ∅ unspecified), shared by all
    attributes. One token per attribute and no mixing between tokens, so token m carries attribute m and nothing
    else: the cross-attention map of token m shows where the UNet reads attribute m (where does "Eyeglasses"
    look?). The LayerNorm makes the step from v_0 to v_1 differ between attributes (a plain sum would shift
    every token's keys and values by the same v_1 − v_0). The null condition ∅ is all-2s.
    """

    NULL = 2  # the value meaning "not specified"; all-NULL is the unconditional input of classifier-free guidance

    def __init__(self, names, dim: int):
        super().__init__()
        self.names, self.dim = tuple(names), dim
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"AttributeEncoder needs distinct attribute names, got {list(self.names)}")
        self.attr_embed = nn.Embedding(len(self.names), dim)  # a_m, one row per attribute
        self.value_embed = nn.Embedding(3, dim)  # v_0, v_1, v_∅
        self.norm = nn.LayerNorm(dim)

    @property
    def num_attributes(self) -> int:
        return len(self.names)

    def forward(self, y: Tensor) -> Tensor:
        M = self.num_attributes
        if y.ndim != 2 or y.shape[1] != M:
            raise ValueError(f"AttributeEncoder takes attribute vectors (B, {M}), one value per attribute in the "
                             f"order of .names ({', '.join(self.names[:4])}, …), got shape {tuple(y.shape)}; "
                             "from CelebA's (N, 40) columns pick them with minildm.faces.select_attributes")
        if y.numel() and not (0 <= int(y.min()) and int(y.max()) <= self.NULL):
            raise ValueError(f"attribute values must be 0 (absent), 1 (present) or {self.NULL} (∅, unspecified), got "
                             f"values in {int(y.min())}..{int(y.max())}; CelebA's −1/1 become 0/1 as (a + 1) // 2")
        a = self.attr_embed.weight  # (M, dim)
        # token_m = LN(a_m + v_{y_m})
        return self.norm(a[None] + self.value_embed(y.long()))  # (B, M, dim)

    def null_condition(self, batch: int, device=None) -> Tensor:
        """∅ for a batch: every attribute unspecified, (batch, M) long filled with NULL."""
        return torch.full((batch, self.num_attributes), self.NULL, dtype=torch.long, device=device)


class LayoutEncoder(nn.Module):
    """τ_θ for layouts (notebook 09, LDM §4.3.1): y (B, K, 5) objects → 1 + K tokens (B, 1 + K, dim).

    An object is (class, x0, y0, x1, y1), its box in [0, 1] from the canvas's top-left corner; a slot with class
    ``NO_OBJECT`` (−1) is empty. token_k = LN(e_class + MLP(γ(box))), e a learned vector per class and γ
    :func:`fourier_features` of the 4 coordinates; no mixing between tokens and no slot position, so token k carries
    object k alone and permuting the objects permutes the tokens. Token 0 is a learned ∅, always present: the key
    for "no object here", which background pixels may attend to, and the only token of the empty layout
    (:meth:`null_condition`, what condition dropout gives). Empty slots are masked out of the UNet's cross-attention
    (:meth:`key_mask`), so what they hold cannot change ε_θ.
    """

    NO_OBJECT = -1  # the class of an empty slot

    def __init__(self, num_classes: int, dim: int, max_objects: int, num_freqs: int = 8):
        super().__init__()
        self.num_classes, self.dim, self.max_objects, self.num_freqs = num_classes, dim, max_objects, num_freqs
        self.class_embed = nn.Embedding(num_classes, dim)  # e_c
        self.box_mlp = nn.Sequential(nn.Linear(4 * (2 * num_freqs + 1), dim), nn.SiLU(), nn.Linear(dim, dim))
        self.null = nn.Parameter(torch.randn(dim))  # ∅
        self.norm = nn.LayerNorm(dim)

    def _objects(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """The checked class ids (B, K) long and validity (B, K) bool of layouts y (B, K, 5)."""
        K = self.max_objects
        if y.ndim != 3 or y.shape[1:] != (K, 5):
            raise ValueError(f"LayoutEncoder takes layouts (B, {K}, 5), rows (class, x0, y0, x1, y1) and class "
                             f"{self.NO_OBJECT} in empty slots, got {tuple(y.shape)}; build them with "
                             "minildm.conditions.parse_layout or minildm.layout.layout_dataset")
        cls = y[..., 0].round().long()  # (B, K)
        valid = cls != self.NO_OBJECT
        if bool(((cls < 0) | (cls >= self.num_classes))[valid].any()):
            raise ValueError(f"object classes must be in 0..{self.num_classes - 1} ({self.NO_OBJECT}: empty slot), "
                             f"got {sorted(set(cls[valid].tolist()))}")
        box = y[..., 1:][valid]  # (n, 4)
        if box.numel() and not bool(((box >= 0) & (box <= 1)).all()):
            raise ValueError("box coordinates must be fractions of the canvas in [0, 1], got values in "
                             f"{box.min().item():.3g}..{box.max().item():.3g}")
        return cls, valid

    def forward(self, y: Tensor) -> Tensor:
        cls, valid = self._objects(y)
        B, K = cls.shape
        box = torch.where(valid[..., None], y[..., 1:].float(), 0.0)  # (B, K, 4): empty slots' contents ignored
        # token_k = LN(e_{c_k} + MLP(γ(x0, y0, x1, y1)))
        obj = self.norm(self.class_embed(cls.clamp(min=0)) + self.box_mlp(fourier_features(box, self.num_freqs)))
        null = self.null.expand(B, 1, self.dim)  # (B, 1, dim)
        obj = torch.where(valid[..., None], obj, null)  # (B, K, dim): an empty slot holds ∅ (and is masked)
        return torch.cat([null, obj], 1)  # (B, 1 + K, dim)

    def key_mask(self, y: Tensor) -> Tensor:
        """(B, 1 + K) bool: ∅ and the objects may be attended, empty slots may not."""
        _, valid = self._objects(y)
        return torch.cat([torch.ones_like(valid[:, :1]), valid], 1)

    def null_condition(self, batch: int, device=None) -> Tensor:
        """∅ for a batch: the empty layout, (batch, K, 5) float with every class NO_OBJECT and zero boxes."""
        y = torch.zeros(batch, self.max_objects, 5, device=device)
        y[..., 0] = self.NO_OBJECT
        return y


class ConditionalUNet(nn.Module):
    """ε_θ(x_t, t, τ_θ(y)): a cross-attention UNet and its encoder τ_θ, one module trained jointly (LDM Eq. 3).

    Called like a class-conditional UNet, ``model(x_t, t, y=cond)``, so :func:`minildm.train.train_diffusion`'s
    ``labels`` (class ids (N,), token ids (N, L) or attribute vectors (N, M)) and the samplers' ``model_kwargs``
    flow in unchanged.
    """

    def __init__(self, unet: nn.Module, encoder: nn.Module):
        super().__init__()
        if unet.cfg.context_dim != encoder.dim:
            raise ValueError(f"the UNet's context_dim ({unet.cfg.context_dim}) must equal the encoder's dim "
                             f"({encoder.dim}): build the UNet with UNetConfig(context_dim={encoder.dim})")
        self.unet, self.encoder = unet, encoder

    @property
    def cfg(self):
        """The UNet's config (channels, sizes): lets DiffusionModel treat this like a UNet."""
        return self.unet.cfg

    def forward(self, x: Tensor, t: Tensor | int, y: Optional[Tensor] = None) -> Tensor:
        """x (B, C, H, W), t (B,), y the condition → ε_θ (B, C, H, W); y: (B,) class ids, (B, L) token ids,
        (B, M) attribute values or (B, K, 5) layouts."""
        if y is None:
            raise ValueError("ConditionalUNet needs the condition y; for the unconditional prediction pass "
                             "y=model.null_condition(B)")
        mask = self.encoder.key_mask(y) if hasattr(self.encoder, "key_mask") else None  # (B, M) or None: all
        return self.unet(x, t, context=self.encoder(y), context_mask=mask)  # τ_θ(y): (B, M, context_dim)

    def null_condition(self, batch: int, device=None) -> Tensor:
        return self.encoder.null_condition(batch, device)


def encoder_from_spec(spec: dict) -> tuple[nn.Module, Tokenizer | None]:
    """τ_θ from the plain dict a checkpoint stores (``DiffusionPreset.conditioning``), and its tokenizer.

    ``{"type": "class", "num_classes": 10, "dim": 64}`` → :class:`ClassEncoder`;
    ``{"type": "text", "dim": 64, "depth": 2, "heads": 4, "tokenizer": Tokenizer.to_dict()}`` → :class:`TextEncoder`;
    ``{"type": "attributes", "names": ["Smiling", …], "dim": 64}`` → :class:`AttributeEncoder` (names in token order);
    ``{"type": "layout", "num_classes": 10, "dim": 64, "max_objects": 3, "num_freqs": 8}`` → :class:`LayoutEncoder`.
    """
    kind = spec.get("type")
    if kind == "class":
        return ClassEncoder(int(spec["num_classes"]), int(spec["dim"])), None
    if kind == "text":
        if "tokenizer" not in spec:
            raise ValueError("a text conditioning spec needs its tokenizer (Tokenizer.to_dict()) under 'tokenizer'")
        tok = Tokenizer.from_dict(spec["tokenizer"])
        return TextEncoder.for_tokenizer(tok, int(spec["dim"]), int(spec.get("depth", 2)), int(spec.get("heads", 4))), tok
    if kind == "attributes":
        if not spec.get("names"):
            raise ValueError("an attributes conditioning spec needs its attribute names (in token order) under 'names'")
        return AttributeEncoder(list(spec["names"]), int(spec["dim"])), None
    if kind == "layout":
        return LayoutEncoder(int(spec["num_classes"]), int(spec["dim"]), int(spec["max_objects"]),
                             int(spec.get("num_freqs", 8))), None
    raise ValueError(f"unknown conditioning type {kind!r}; expected 'class', 'text', 'attributes' or 'layout'")
