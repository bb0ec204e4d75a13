"""The conditions y a model is sampled with: defaults per conditioning kind, and parsing them from text.
Notebooks 05, 06 · LDM §3.3.

A conditional model needs one condition per sample, and what a condition *is* depends on its τ_θ:

=======================  ==========================================  ==============================================
conditioning             y                                           default for n samples
=======================  ==========================================  ==============================================
class (notebook 05)      class ids (n,)                              0, 1, …, 9, 0, 1, … (each digit in turn)
text (notebook 05)       token ids (n, L) of a prompt                "a zero", "a one", … cycling
attributes (notebook 06) attribute vectors (n, M) in {0, 1, 2 = ∅}   plausible random faces (toy faces' rules)
layout (notebook 09)     layouts (n, K, 5): (class, x0, y0, x1, y1)   random layouts placed as the training data's
=======================  ==========================================  ==============================================

:func:`conditions_for` builds them (what ``python -m minildm sample`` and ``train``'s final grid use),
:func:`parse_attributes` reads ``"Smiling=1,Eyeglasses=0"`` and :func:`parse_layout` reads
``"7@0.05,0.05,0.45,0.45;2@0.55,0.50,0.95,0.95"``. Every wrong request is a ``ValueError`` that says what the model
takes instead.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .captions import DIGITS
from .faces import NULL, attribute_vector, random_attributes
from .layout import MAX_OBJECTS, NO_OBJECT, NUM_CLASSES, LayoutConfig, random_layouts
from .ldm import DiffusionModel

LAYOUT_EXAMPLE = "7@0.05,0.05,0.45,0.45;2@0.55,0.50,0.95,0.95"


def parse_attributes(text: str) -> dict[str, int]:
    """ ``"Smiling=1,Eyeglasses=0"`` → ``{"Smiling": 1, "Eyeglasses": 0}`` (names are checked by the model's list)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if not name.strip() or value.strip() not in ("0", "1"):
            raise ValueError(f"attributes (--attributes) are NAME=0 or NAME=1 separated by commas, e.g. "
                             f"Smiling=1,Eyeglasses=0; "
                             f"got {part!r}")
        out[name.strip()] = int(value)
    return out


def parse_layout(text: str, max_objects: int = MAX_OBJECTS, num_classes: int = NUM_CLASSES) -> Tensor:
    """``"7@0.05,0.05,0.45,0.45;2@0.55,0.50,0.95,0.95"`` → the layout (max_objects, 5): one row (class, x0, y0, x1,
    y1) per object, in canvas fractions from the top-left corner, then empty rows (class NO_OBJECT).

    Objects are separated by ``;``, each CLASS@x0,y0,x1,y1. Refused, each with a ValueError that says what to write:
    no object, a malformed object, a class outside 0..num_classes−1, a coordinate outside [0, 1], x1 ≤ x0 or
    y1 ≤ y0, more than ``max_objects`` objects, and two boxes that overlap (the training canvases never have
    overlapping boxes, so the model never learnt what one would mean). Boxes need not be square.
    """
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if not parts:
        raise ValueError(f"the layout (--layout) is empty; give objects CLASS@x0,y0,x1,y1 separated by ';', e.g. "
                         f"{LAYOUT_EXAMPLE}")
    if len(parts) > max_objects:
        raise ValueError(f"the layout (--layout) has {len(parts)} objects but the model draws at most {max_objects}; "
                         "remove some")
    y = torch.zeros(max_objects, 5)
    y[:, 0] = NO_OBJECT
    for k, part in enumerate(parts):
        cls, at, coords = part.partition("@")
        try:
            c, box = int(cls), [float(v) for v in coords.split(",")]
        except ValueError:
            c, box = None, []
        if not at or c is None or len(box) != 4:
            raise ValueError(f"each object of the layout (--layout) is CLASS@x0,y0,x1,y1 (a digit, then its box in "
                             f"fractions of the canvas), e.g. {LAYOUT_EXAMPLE}; got {part!r}")
        if not 0 <= c < num_classes:
            raise ValueError(f"object {part!r} of the layout (--layout): class {c} is not one of 0..{num_classes - 1}")
        bad = [v for v in box if not 0 <= v <= 1]  # also nan
        if bad:
            raise ValueError(f"object {part!r} of the layout (--layout): {bad[0]:g} is outside [0, 1]; coordinates are "
                             "fractions of the canvas from its top-left corner")
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            which = f"x1 = {x1:g} ≤ x0 = {x0:g}" if x1 <= x0 else f"y1 = {y1:g} ≤ y0 = {y0:g}"
            raise ValueError(f"object {part!r} of the layout (--layout): {which}; a box is x0,y0,x1,y1 with x0 < x1 "
                             "(left < right) and y0 < y1 (top < bottom)")
        for j in range(k):
            a0, b0, a1, b1 = y[j, 1:].tolist()
            if min(x1, a1) > max(x0, a0) and min(y1, b1) > max(y0, b0):
                raise ValueError(f"objects {parts[j]!r} and {part!r} of the layout (--layout) overlap; the model was "
                                 "trained on boxes that never overlap: move or shrink one")
        y[k] = torch.tensor([c, *box])
    return y


def digit_named(prompt: str) -> int:
    """The digit a prompt names ("a thick seven" → 7), or −1 if it names none."""
    return next((DIGITS.index(w) for w in prompt.lower().split() if w in DIGITS), -1)


def conditions_for(model: DiffusionModel, n: int, label: int | None = None, prompt: str | None = None,
                   attributes: str | None = None, seed: int = 0,
                   layout: str | None = None) -> tuple[Tensor | None, Tensor | None]:
    """The conditions y for ``n`` samples of ``model``, and the labels to store beside them: ``(y, labels)``.

    Unconditional models: ``(None, None)``. Class models: ``label`` for all, or 0..9 cycling. Text models:
    ``prompt`` for all (its words must be in the model's vocabulary), or "a zero", "a one", … cycling; the stored
    label is the digit the prompt names (−1 if none). Attribute models (faces): n plausible attribute vectors
    (:func:`minildm.faces.random_attributes` from ``seed``), with the values of ``attributes``
    ("Smiling=1,Eyeglasses=0") set in all of them; stored as (n, M). Layout models: ``layout`` (:func:`parse_layout`)
    for all, or n random layouts (:func:`minildm.layout.random_layouts` from ``seed``); stored as (n, K, 5) float.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1 (got {n})")
    given = [name for name, v in (("label", label), ("prompt", prompt), ("attributes", attributes),
                                  ("layout", layout)) if v is not None]
    if not model.is_conditional:
        if given:
            raise ValueError(f"{given[0]} (--{given[0]}) given, but {model.name} is unconditional")
        return None, None
    unet = getattr(model, "unet", None)
    if hasattr(unet, "check_condition"):  # conditioned by concatenation on an image (notebook 08)
        task = unet.task
        raise ValueError(f"{model.name} is conditioned on an image ({task}): run python -m minildm "
                         f"{'upscale' if task == 'sr' else 'inpaint' if task == 'inpaint' else 'sample'} "
                         "with --input instead")
    if model.max_objects is not None:  # a layout-conditional model
        if layout is None and given:
            raise ValueError(f'{model.name} is conditioned on layouts: give one as --layout "{LAYOUT_EXAMPLE}" '
                             f"(CLASS@x0,y0,x1,y1 per object, at most {model.max_objects}), not --{given[0]}")
        y = parse_layout(layout, model.max_objects, model.num_classes)[None].expand(n, -1, -1).clone() \
            if layout is not None else random_layouts(n, seed=seed, cfg=LayoutConfig(max_objects=model.max_objects))
        return y, y
    if layout is not None:
        raise ValueError(f"a layout (--layout) is for layout models (latent_mnist_layout); {model.name} takes "
                         + ("attributes" if model.attributes is not None else "a prompt" if model.tokenizer is not None
                            else "a label"))
    if model.attributes is not None:  # an attribute-conditional face model
        if label is not None or prompt is not None:
            raise ValueError(f"{model.name} is conditioned on attributes: give them as attributes=\"Smiling=1\" "
                             f"(--attributes Smiling=1,Eyeglasses=0); names: {', '.join(model.attributes)}")
        y = random_attributes(n, model.attributes, seed=seed)
        chosen = attribute_vector(model.attributes, **parse_attributes(attributes or ""))
        y = torch.where(chosen != NULL, chosen, y)  # (n, M): the named values everywhere, the rest as drawn
        return y, y
    if attributes is not None:
        raise ValueError(f"attributes (--attributes) are for face models; {model.name} takes a label or a prompt")
    if model.tokenizer is not None:  # a text-conditional model
        if label is not None:
            raise ValueError(f'{model.name} takes prompts (--prompt), not labels, e.g. "a thick seven"')
        if prompt is not None and not prompt.strip():
            raise ValueError(f'the prompt (--prompt) is empty; {model.name} takes prompts such as "a thick seven"')
        prompts = [prompt] * n if prompt is not None else [f"a {DIGITS[i % 10]}" for i in range(n)]
        y = model.tokenizer.encode_batch(prompts, strict=True)  # unknown words: a ValueError listing the vocabulary
        return y, torch.tensor([digit_named(p) for p in prompts])
    if prompt is not None:
        raise ValueError(f"{model.name} is class-conditional: give a label (--label 0..{model.num_classes - 1}), not a "
                         "prompt")
    if label is not None and not 0 <= label < model.num_classes:
        raise ValueError(f"label (--label) must be in 0..{model.num_classes - 1} for {model.name} (got {label})")
    y = torch.full((n,), label) if label is not None else torch.arange(n) % model.num_classes
    return y, y
