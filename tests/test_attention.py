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
    assert probs.shape == (2, 3, 5, 7)
    assert out.shape == (2, 3, 5, 8)
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


def _naive_self_attention(attn, x):
    """softmax(QKᵀ/√d)·V per head, Q, K and V all projected from x; heads concatenated, then W_O. No einops."""
    B, N, _ = x.shape
    h, d = attn.heads, attn.dim_head
    q, k, v = (x @ w.weight.T for w in (attn.to_q, attn.to_k, attn.to_v))  # (B, N, h·d) each
    out = torch.empty(B, N, h * d, dtype=x.dtype)
    for b in range(B):
        for i in range(h):
            sl = slice(i * d, (i + 1) * d)  # head i owns features i·d … (i+1)·d − 1
            scores = q[b, :, sl] @ k[b, :, sl].T / d**0.5  # (N, N): every token against every token of x
            out[b, :, sl] = torch.softmax(scores, dim=-1) @ v[b, :, sl]
    return out @ attn.to_out.weight.T + attn.to_out.bias


def test_self_attention_when_context_is_none():
    """context=None is self-attention: keys and values come from x itself, per head, scaled by √dim_head."""
    torch.manual_seed(0)
    x = torch.randn(2, 9, 16)
    for attn in (Attention(query_dim=16, heads=4), Attention(query_dim=16, heads=2, dim_head=5)):
        with torch.no_grad():
            ref = _naive_self_attention(attn, x)
            assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)  # fused path
            seen = []
            attn.probs_hook = seen.append
            assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)  # explicit path
            attn.probs_hook = None
        assert seen[0].shape == (2, attn.heads, 9, 9)  # a map over x's own 9 tokens


def test_self_attention_is_permutation_equivariant():
    """No positions inside attention: shuffling the tokens shuffles the output the same way, and nothing else."""
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=4)
    x = torch.randn(2, 9, 16)
    perm = torch.randperm(9)
    with torch.no_grad():
        out = attn(x)
        assert_close(attn(x[:, perm]), out[:, perm], atol=1e-5, rtol=1e-5)
        # and each token's output depends on the other tokens (it is attention, not a per-token MLP)
        y = x.clone()
        y[:, 0] += 1.0
        assert not torch.allclose(attn(y)[:, 1:], out[:, 1:], atol=1e-4)


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
    assert y.shape == x.shape
    assert not torch.allclose(y, x)
