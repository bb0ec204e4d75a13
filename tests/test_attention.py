"""Attention: rows of softmax(QKᵀ/√d) sum to 1; fused and explicit paths agree; cross-attention semantics."""
import torch
from torch.testing import assert_close

from minildm.attention import Attention, SelfAttention2d, attention


def _qkv(B=2, h=3, Nq=5, Nk=7, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, h, n, d, generator=g) for n in (Nq, Nk, Nk)]


def test_probs_are_a_distribution_over_keys():
    q, k, v = _qkv()
    out, probs = attention(q, k, v, return_probs=True)
    assert probs.shape == (2, 3, 5, 7) and out.shape == (2, 3, 5, 8)
    assert (probs >= 0).all()
    assert_close(probs.sum(-1), torch.ones(2, 3, 5))


def test_fused_equals_explicit():
    q, k, v = _qkv()
    out, probs = attention(q, k, v, return_probs=True)
    assert_close(attention(q, k, v), out, atol=1e-5, rtol=1e-5)
    # and both equal the textbook formula softmax(QKᵀ/√d)·V
    ref = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, -1) @ v
    assert_close(out, ref)


def test_cross_attention_single_key_is_constant_over_queries():
    torch.manual_seed(0)
    attn = Attention(query_dim=16, context_dim=6, heads=2)
    x, context = torch.randn(3, 10, 16), torch.randn(3, 1, 6)  # M = 1: softmax over one key is 1
    out = attn(x, context)  # (3, 10, 16)
    expected = attn.to_out(attn.to_v(context))  # (3, 1, 16): out-projection of the value projection
    assert_close(out, expected.expand_as(out), atol=1e-5, rtol=1e-5)


def test_self_attention_when_context_is_none():
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=4)
    x = torch.randn(2, 9, 16)
    assert_close(attn(x), attn(x, context=x))


def test_probs_hook_sees_the_map():
    torch.manual_seed(0)
    attn = Attention(query_dim=8, context_dim=4, heads=2)
    seen = []
    attn.probs_hook = seen.append
    x, context = torch.randn(2, 5, 8), torch.randn(2, 3, 4)
    out = attn(x, context)
    assert seen[0].shape == (2, 2, 5, 3)
    attn.probs_hook = None
    assert_close(attn(x, context), out, atol=1e-5, rtol=1e-5)


def test_self_attention_2d_shape_and_fresh_identity():
    x = torch.randn(2, 16, 4, 6)
    block = SelfAttention2d(16, heads=4)
    assert_close(block(x), x)  # zero-initialised output projection: starts as identity
    torch.nn.init.normal_(block.attn.to_out.weight, std=0.1)
    y = block(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
