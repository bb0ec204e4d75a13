"""Prompts: the tokenizer round-trips and fails clearly, captions describe what is measured, and the text encoder
τ_θ never looks at padding."""
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from minildm.captions import DIGITS, captions_for, measure
from minildm.conditioning import TextEncoder
from minildm.data import mnist
from minildm.text import Tokenizer

CAPTIONS = ["a thick slanted seven", "a small three", "an upright eight", "a thin one"]


@pytest.fixture(scope="module")
def digits():
    return mnist("train", size=32, n=600)


# ------------------------------------------------------------------------------------------ tokenizer
def test_tokenizer_round_trip_padding_and_specials():
    tok = Tokenizer.from_captions(CAPTIONS)
    assert tok.vocab[:3] == ["<pad>", "<unk>", "<null>"]
    assert tok.pad_id == 0
    assert tok.max_len == 4
    assert tok.vocab_size == 3 + 11
    ids = tok.encode("A  Thick slanted SEVEN")  # lower-cased, whitespace-split
    assert ids.dtype == torch.long
    assert ids.shape == (4,)
    assert tok.decode(ids) == "a thick slanted seven"
    short = tok.encode("a small three", length=6)
    assert short.tolist()[3:] == [0, 0, 0]
    assert tok.decode(short) == "a small three"  # padded, pads dropped
    batch = tok.encode_batch(CAPTIONS)
    assert batch.shape == (4, 4)
    assert [tok.decode(r) for r in batch] == CAPTIONS
    assert tok.encode("").tolist() == [tok.null_id, 0, 0, 0] == tok.null().tolist()  # "" is the <null> prompt
    assert tok.null(3).shape == (3, 4)


def test_unknown_words_and_too_long_prompts():
    tok = Tokenizer.from_captions(CAPTIONS)
    assert tok.encode("a thick eleven").tolist() == [tok.ids["a"], tok.ids["thick"], tok.unk_id, 0]
    with pytest.raises(ValueError, match=r"unknown word 'eleven'.*14 words of the vocabulary"):
        tok.encode("a thick eleven", strict=True)
    with pytest.raises(ValueError, match=r"has 5 words but prompts hold at most 4"):
        tok.encode("a thin small slanted one")
    with pytest.raises(ValueError, match="not in 0..13"):
        tok.decode([3, 99])


def test_tokenizer_to_dict_from_dict():
    tok = Tokenizer.from_captions(CAPTIONS, max_len=6)
    back = Tokenizer.from_dict(tok.to_dict())
    assert back.vocab == tok.vocab
    assert back.max_len == 6
    assert torch.equal(back.encode_batch(CAPTIONS), tok.encode_batch(CAPTIONS))
    with pytest.raises(ValueError, match="keys"):
        Tokenizer.from_dict({"vocab": tok.vocab})
    with pytest.raises(ValueError, match="special tokens"):
        Tokenizer(["a", "b", "c"], 3)


# ------------------------------------------------------------------------------------------ captions
def test_captions_are_deterministic_and_name_the_digit(digits):
    x, y = digits
    a, b = captions_for(x, y), captions_for(x, y)
    assert a.captions == b.captions
    for cap, label in zip(a.captions, y.tolist()):
        words = cap.split()
        assert words[0] == ("an" if words[1][0] in "aeiou" else "a")
        assert words[-1] == DIGITS[label]
        assert 2 <= len(words) <= 5
    assert set(a.attributes) == {"thickness", "slant", "size"}
    assert a.attributes["slant"].shape == (600,)
    tok = Tokenizer.from_captions(a.captions)
    assert tok.max_len <= 5
    assert tok.vocab_size <= 3 + 2 + 6 + 10  # a/an, six attribute words, ten digits
    # other images cut at these thresholds get the same words as they would inside this set
    again = captions_for(x[:50], y[:50], thresholds=a.thresholds)
    assert again.captions == a.captions[:50]


def test_thicker_strokes_measure_thicker_and_say_thick(digits):
    x, y = digits
    res = captions_for(x, y)
    thin = [i for i, c in enumerate(res.captions) if "thick" not in c][:20]
    ink = (x[thin] + 1) / 2  # [0, 1]
    dilated = F.max_pool2d(ink, 3, stride=1, padding=1) * 2 - 1  # every stroke 2 px wider
    before, after = measure(x[thin])["thickness"], measure(dilated)["thickness"]
    assert (after > before + 1.0).all()  # a 3×3 dilation adds 2 px of width: the measure moves by about that
    fat = captions_for(dilated, y[thin], thresholds=res.thresholds).captions
    assert all("thick" in c for c in fat)


def test_slant_sign_and_size_on_synthetic_strokes():
    img = -torch.ones(2, 1, 32, 32)
    for r in range(6, 26):  # a bar leaning right: its column grows as the row goes up (r decreasing)
        c = 16 + (16 - r) // 3
        img[0, 0, r, c - 1:c + 2] = 1.0
    img[1, 0, 4:28, 14:17] = 1.0  # an upright bar, 3 px wide
    m = measure(img)
    assert m["slant"][0] > 10
    assert abs(m["slant"][1]) < 1e-4
    assert m["size"][1] == 24 * 3
    assert m["size"][0] > m["size"][1]
    assert 2.5 < m["thickness"][1] < 3.5  # 3 px wide (the ends count as boundary too, so a bit less)


# ------------------------------------------------------------------------------------------ text encoder τ_θ
def test_text_encoder_ignores_padding():
    tok = Tokenizer.from_captions(CAPTIONS, max_len=6)
    enc = TextEncoder.for_tokenizer(tok, dim=16, depth=2, heads=2).eval()
    ids = tok.encode_batch(["a small three", "a thin one"])  # (2, 6), 3 pads each
    out = enc(ids)
    assert out.shape == (2, 6, 16)
    assert_close(enc(ids[:, :3]), out[:, :3])  # as if the pads were not there at all
    with torch.no_grad():
        enc.token_embed.weight[tok.pad_id] += 5.0  # change what sits in the pad positions
        enc.pos_embed[3:] += 5.0
    assert_close(enc(ids)[:, :3], out[:, :3])
    assert not torch.allclose(enc(ids)[:, 3:], out[:, 3:])  # (the pad positions themselves did change)
    assert torch.equal(enc.null_condition(2), tok.null(2))
    with pytest.raises(ValueError, match="all <pad>.*<null> prompt"):
        enc(torch.zeros(1, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len=6"):
        enc(torch.ones(1, 7, dtype=torch.long))
