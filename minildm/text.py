"""A word-level tokenizer for short prompts: text → token ids y for the text encoder τ_θ.  Notebook 05 · LDM §3.3.

LDM conditions on text through a BERT-like encoder over a WordPiece tokenizer (the text-to-image model, §4.3);
our captions ("a thick slanted seven") use a few dozen words, so a word-level vocabulary is enough and every id
can be read. A prompt becomes a fixed-length LongTensor:

=================  ==================================================================================
id                 meaning
=================  ==================================================================================
0  ``<pad>``       fills a prompt up to ``length``; the text encoder masks it out (never attended to)
1  ``<unk>``       a word that is not in the vocabulary (``strict=True`` raises instead)
2  ``<null>``      the empty prompt ∅ of classifier-free guidance: ``encode("")`` = [<null>, <pad>, …]
3 …                the words of the captions, sorted
=================  ==================================================================================

Text is lower-cased and split on whitespace (no punctuation handling: captions have none). ``<unk>`` never
occurs in training captions, so its embedding stays untrained: an unknown word is noise to the model, which is
why notebook 05 encodes user prompts with ``strict=True``.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch
from torch import Tensor

PAD, UNK, NULL = "<pad>", "<unk>", "<null>"
SPECIALS = (PAD, UNK, NULL)


class Tokenizer:
    """Words ↔ ids. Build it with :meth:`from_captions`; keep it in a checkpoint with :meth:`to_dict` (plain lists)."""

    def __init__(self, vocab: Sequence[str], max_len: int):
        vocab = list(vocab)
        if tuple(vocab[:3]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with the special tokens {list(SPECIALS)}, got {vocab[:3]}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("the vocabulary has duplicate words")
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1 (got {max_len})")
        self.vocab, self.max_len = vocab, int(max_len)
        self.ids = {w: i for i, w in enumerate(vocab)}
        self.pad_id, self.unk_id, self.null_id = (self.ids[s] for s in SPECIALS)

    @staticmethod
    def words(text: str) -> list[str]:
        """Lower-case and split on whitespace: "A Thick  seven" → ["a", "thick", "seven"]."""
        return text.lower().split()

    @classmethod
    def from_captions(cls, captions: Iterable[str], max_len: Optional[int] = None) -> "Tokenizer":
        """The specials, then every word of ``captions`` sorted; ``max_len`` defaults to the longest caption."""
        captions = list(captions)
        words = sorted({w for c in captions for w in cls.words(c)} - set(SPECIALS))
        longest = max((len(cls.words(c)) for c in captions), default=1)
        return cls([*SPECIALS, *words], max(longest, 1) if max_len is None else max_len)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, length: Optional[int] = None, strict: bool = False) -> Tensor:
        """``text`` → ids (length,), long, padded with <pad>; ``length`` defaults to ``max_len``.

        Unknown words become <unk>, or raise ValueError with ``strict``. The empty prompt "" is the <null> prompt.
        A prompt longer than ``length`` is an error (no silent truncation: a cut-off prompt means something else).
        """
        length = self.max_len if length is None else length
        words = self.words(text) or [NULL]
        if len(words) > length:
            raise ValueError(f"the prompt {text!r} has {len(words)} words but prompts hold at most {length}; "
                             "shorten it (or build the tokenizer and text encoder with a larger max_len)")
        ids = []
        for w in words:
            if w not in self.ids and strict:
                raise ValueError(f"unknown word {w!r}: it is not among the {self.vocab_size} words of the vocabulary "
                                 f"(e.g. {', '.join(self.vocab[3:13])}); use only those, or strict=False for <unk>")
            ids.append(self.ids.get(w, self.unk_id))
        return torch.tensor(ids + [self.pad_id] * (length - len(ids)), dtype=torch.long)  # (length,)

    def encode_batch(self, texts: Sequence[str], length: Optional[int] = None, strict: bool = False) -> Tensor:
        """A list of prompts → (B, length) ids."""
        return torch.stack([self.encode(t, length, strict) for t in texts])  # (B, length)

    def null(self, batch: Optional[int] = None, length: Optional[int] = None) -> Tensor:
        """The <null> prompt ∅, ``encode("")``: (length,), or (batch, length) with ``batch``."""
        ids = self.encode("", length)
        return ids if batch is None else ids.expand(batch, -1).clone()

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """ids (L,) → the words, <pad> dropped, joined by single spaces (the inverse of encode on lower-case text)."""
        ids = torch.as_tensor(ids).reshape(-1).tolist()
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids {bad} are not in 0..{self.vocab_size - 1}")
        return " ".join(self.vocab[i] for i in ids if i != self.pad_id)

    def to_dict(self) -> dict:
        return dict(vocab=list(self.vocab), max_len=self.max_len)

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        if set(d) != {"vocab", "max_len"}:
            raise ValueError(f"a Tokenizer dict has keys ['max_len', 'vocab'], got {sorted(d)}")
        return cls(d["vocab"], d["max_len"])

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, max_len={self.max_len})"
