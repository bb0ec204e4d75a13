"""The conditions y a model is sampled with: defaults per conditioning kind, and parsing them from text.
Notebooks 05, 06 · LDM §3.3.

A conditional model needs one condition per sample, and what a condition *is* depends on its τ_θ:

=======================  ==========================================  ==============================================
conditioning             y                                           default for n samples
=======================  ==========================================  ==============================================
class (notebook 05)      class ids (n,)                              0, 1, …, 9, 0, 1, … (each digit in turn)
text (notebook 05)       token ids (n, L) of a prompt                "a zero", "a one", … cycling
attributes (notebook 06) attribute vectors (n, M) in {0, 1, 2 = ∅}   plausible random faces (toy faces' rules)
=======================  ==========================================  ==============================================

:func:`conditions_for` builds them (what ``python -m minildm sample`` and ``train``'s final grid use), and
:func:`parse_attributes` reads ``"Smiling=1,Eyeglasses=0"``. Every wrong request is a ``ValueError`` that says
what the model takes instead.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .captions import DIGITS
from .faces import NULL, attribute_vector, random_attributes
from .ldm import DiffusionModel


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


def digit_named(prompt: str) -> int:
    """The digit a prompt names ("a thick seven" → 7), or −1 if it names none."""
    return next((DIGITS.index(w) for w in prompt.lower().split() if w in DIGITS), -1)


def conditions_for(model: DiffusionModel, n: int, label: int | None = None, prompt: str | None = None,
                   attributes: str | None = None, seed: int = 0) -> tuple[Tensor | None, Tensor | None]:
    """The conditions y for ``n`` samples of ``model``, and the labels to store beside them: ``(y, labels)``.

    Unconditional models: ``(None, None)``. Class models: ``label`` for all, or 0..9 cycling. Text models:
    ``prompt`` for all (its words must be in the model's vocabulary), or "a zero", "a one", … cycling; the stored
    label is the digit the prompt names (−1 if none). Attribute models (faces): n plausible attribute vectors
    (:func:`minildm.faces.random_attributes` from ``seed``), with the values of ``attributes``
    ("Smiling=1,Eyeglasses=0") set in all of them; stored as (n, M).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1 (got {n})")
    given = [name for name, v in (("label", label), ("prompt", prompt), ("attributes", attributes)) if v is not None]
    if not model.is_conditional:
        if given:
            raise ValueError(f"{given[0]} (--{given[0]}) given, but {model.name} is unconditional")
        return None, None
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
