"""Cross-attention (LDM §3.3): the transformer blocks, the UNet with context, and attention maps captured without
changing what the model computes, put back on the image correctly."""
import hashlib

import pytest
import torch
from einops import rearrange
from torch import nn
from torch.testing import assert_close

from minildm.attention import Attention, SpatialTransformer, TransformerBlock, attention
from minildm.attention_maps import AttentionStore, attention_layers, capture_attention, probs_to_spatial
from minildm.unet import UNet, UNetConfig
from conftest import randomise

TINY = dict(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(1,), heads=2)


def _context_unet(M=3, context_dim=6, depth=1):
    cfg = UNetConfig(in_channels=2, context_dim=context_dim, transformer_depth=depth, **dict(TINY, attn_levels=(0, 1)))
    return randomise(UNet(cfg)).eval()


# ------------------------------------------------------------------------------------------ attention itself
def test_masked_probs_are_a_distribution_and_fused_equals_explicit():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 8, generator=g) for n in (5, 7, 7))
    mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    mask[0, ..., 4:] = False  # the first sequence has 3 pad keys
    out, probs = attention(q, k, v, return_probs=True, mask=mask)
    assert (probs >= 0).all()
    assert_close(probs.sum(-1), torch.ones(2, 3, 5))
    assert (probs[0, ..., 4:] == 0).all()  # masked keys get no weight
    assert_close(attention(q, k, v, mask=mask), out, atol=1e-5, rtol=1e-5)  # fused == explicit
    assert_close(out[0], attention(q[:1], k[:1, :, :4], v[:1, :, :4])[0], atol=1e-5, rtol=1e-5)  # = dropping them


def test_single_token_cross_attention_is_its_value_projection_everywhere():
    attn = Attention(query_dim=16, context_dim=6, heads=2)
    assert attn.is_cross
    assert not Attention(16, heads=2).is_cross
    x, context = torch.randn(3, 10, 16), torch.randn(3, 1, 6)
    expected = attn.to_out(attn.to_v(context))  # W_O·W_V·τ: softmax over one key is 1 at every query
    assert_close(attn(x, context), expected.expand(3, 10, 16), atol=1e-5, rtol=1e-5)


def test_transformer_block_and_spatial_transformer():
    block = TransformerBlock(16, context_dim=6, heads=2)
    assert block.attn2.is_cross
    assert not block.attn1.is_cross
    assert block(torch.randn(2, 9, 16), torch.randn(2, 4, 6)).shape == (2, 9, 16)
    st = SpatialTransformer(16, context_dim=6, heads=2, depth=2)
    x, context = torch.randn(2, 16, 4, 6), torch.randn(2, 3, 6)
    assert_close(st(x, context), x)  # zero proj_out: a fresh block is the identity
    randomise(st)
    y = st(x, context)
    assert y.shape == x.shape
    assert not torch.allclose(y, x)
    y2 = st(x, context + 1.0)  # the context now matters
    assert (y2 - y).abs().max() > 1e-4
    assert [b.attn2.spatial_size for b in st.blocks] == [(4, 6), (4, 6)]


# ------------------------------------------------------------------------------------------ the UNet with context
def test_unet_with_context_shape_errors_and_old_configs():
    model = _context_unet()
    x, ctx = torch.randn(2, 2, 8, 8), torch.randn(2, 3, 6)
    with torch.no_grad():
        assert model(x, torch.tensor([1, 500]), context=ctx).shape == x.shape
    assert sum(isinstance(m, SpatialTransformer) for m in model.modules()) == 7  # 2 down, mid, 2 + 2 up
    with pytest.raises(ValueError, match=r"context_dim=6.*pass context"):
        model(x, 0)
    with pytest.raises(ValueError, match=r"context must be \(B, M, context_dim\) = \(2, M, 6\)"):
        model(x, 0, context=torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="no cross-attention.*UNetConfig\\(context_dim=...\\)"):
        UNet(UNetConfig(in_channels=2, **TINY))(x, 0, context=ctx)


def _key_hash(model):
    sd = model.state_dict()
    names_and_shapes = ";".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(sd.items()))
    return len(sd), hashlib.sha1(names_and_shapes.encode()).hexdigest()[:16]


def test_old_configs_build_the_same_parameters_as_before():
    # (count, hash of sorted "name:shape") measured with the UNet of commit 357f9d5, before cross-attention existed:
    # checkpoints of notebooks 02 and 04 must keep loading
    assert _key_hash(UNet(UNetConfig(**TINY))) == (132, "1c786519149a13d1")
    assert _key_hash(UNet(UNetConfig())) == (170, "aa297d957e62208c")
    assert _key_hash(UNet(UNetConfig(in_channels=4, num_classes=11, **TINY))) == (133, "d2b6feaf3975d620")
    old_dict = {k: v for k, v in UNetConfig(**TINY).to_dict().items() if k not in ("context_dim", "transformer_depth")}
    assert UNetConfig.from_dict(old_dict) == UNetConfig(**TINY)  # a config saved before still loads
    assert not any("transformer" in k or "blocks" in k for k in UNet(UNetConfig(**TINY)).state_dict())


# ------------------------------------------------------------------------------------------ capturing maps
def test_capture_changes_nothing_records_every_block_and_cleans_up():
    model = _context_unet(depth=2)
    x, t, ctx = torch.randn(2, 2, 8, 8), torch.tensor([3, 700]), torch.randn(2, 3, 6)
    with torch.no_grad():
        ref = model(x, t, context=ctx)
        with capture_attention(model, which="cross") as store:
            out = model(x, t, context=ctx)
            model(x, t, context=ctx)
    assert_close(out, ref, atol=1e-5, rtol=1e-5)  # explicit path == fused path
    layers = attention_layers(model, "cross")
    assert len(layers) == 14  # 7 transformers × depth 2
    assert all(m.probs_hook is None for m in layers.values())
    assert len(store.records) == 28
    assert store.steps == [0, 1]
    assert store.names == list(layers)
    for r in store.records:
        h, w = r.size
        assert r.probs.shape == (2, 2, h * w, 3)  # (B, heads, queries, tokens)
        assert r.is_cross
        assert (r.probs >= 0).all()
        assert_close(r.probs.sum(-1), torch.ones(2, 2, h * w))
    assert {r.size for r in store.records} == {(4, 4), (8, 8)}  # level 0 at 8×8; level 1 and the middle at 4×4

    class Boom(Exception):
        pass
    with pytest.raises(Boom):
        with capture_attention(model, which="all"):
            raise Boom
    assert all(m.probs_hook is None for m in attention_layers(model, "all").values())
    with pytest.raises(ValueError, match="no cross-attention layers.*context_dim"):
        with capture_attention(UNet(UNetConfig(**TINY))):
            pass


def test_probs_to_spatial_inverts_the_token_order():
    f = torch.randn(2, 5, 3, 4)  # (B, C, h, w): C plays the tokens
    tokens = rearrange(f, "b c h w -> b (h w) c")[:, None]  # (B, 1, h·w, C), the order SpatialTransformer uses
    assert torch.equal(probs_to_spatial(tokens, 3, 4)[:, 0], f)
    with pytest.raises(ValueError, match="h·w = 6"):
        probs_to_spatial(tokens, 2, 3)


class _GridCross(nn.Module):
    """A 2-D block around one cross-attention layer, as SpatialTransformer does: pixels → tokens → attend."""

    def __init__(self, M):
        super().__init__()
        self.attn = Attention(M, context_dim=M, heads=1)

    def forward(self, x, context):
        B, C, H, W = x.shape
        self.attn.spatial_size = (H, W)
        return self.attn(rearrange(x, "b c h w -> b (h w) c"), context)  # (B, H·W, C)


def test_known_answer_maps_pixel_row_r_attends_to_token_r_mod_M():
    M, H, W = 3, 6, 4
    block = _GridCross(M)
    with torch.no_grad():  # W_Q = 30·I, W_K = I: a query that is e_m picks key e_m almost surely
        block.attn.to_q.weight.copy_(30 * torch.eye(M))
        block.attn.to_k.weight.copy_(torch.eye(M))
    rows = torch.arange(H) % M  # pixel (r, c) carries the one-hot of r % M
    x = torch.nn.functional.one_hot(rows, M).T[None, :, :, None].float().expand(2, M, H, W)  # (B, M, H, W)
    context = torch.eye(M).expand(2, M, M)  # token m is e_m
    with capture_attention(block) as store:
        block(x, context)
    expected = (rows[None, :, None] == torch.arange(M)[:, None, None]).float().expand(M, H, W)  # (M, H, W)
    maps = store.token_maps()  # (B, M, H, W)
    assert maps.shape == (2, M, H, W)
    assert_close(maps, expected.expand(2, M, H, W), atol=1e-4, rtol=0)
    up = store.token_maps(size=(12, 8))  # bilinear upsampling keeps a distribution over tokens at each pixel
    assert up.shape == (2, M, 12, 8)
    assert_close(up.sum(1), torch.ones(2, 12, 8))


def test_token_maps_aggregate_layers_steps_and_heads():
    model = _context_unet()
    x, ctx = torch.randn(2, 2, 8, 8), torch.randn(2, 3, 6)
    store = AttentionStore()
    with torch.no_grad(), capture_attention(model, store=store):
        for i in range(3):
            store.step = 10 * i  # the caller's labels
            model(x, torch.tensor([999 - 300 * i] * 2), context=ctx)
    assert store.steps == [0, 10, 20]
    maps = store.token_maps(size=(16, 16))
    assert maps.shape == (2, 3, 16, 16)
    assert_close(maps.sum(1), torch.ones(2, 16, 16))
    mid = [n for n in store.names if n.startswith("mid")]
    one = store.token_maps(layers=mid, steps=10, heads=1)  # one layer, one step, one head: that record's map
    rec = store.select(mid, 10)[0]
    assert_close(one, probs_to_spatial(rec.probs[:, [1]], *rec.size)[:, 0])
    # rows picked before upsampling = the same rows of the full result (the conditional half of a guided batch)
    assert_close(store.token_maps(size=(16, 16), rows=slice(0, 1)), maps[:1])
    # every layer records once per step, so the all-layer map is the mean of the per-layer maps
    assert_close(torch.stack([store.token_maps(size=(16, 16), layers=n) for n in store.names]).mean(0), maps)
    with pytest.raises(ValueError, match="no records from layers"):
        store.token_maps(layers=["nope"])
    # a store that keeps only the first row, averaged over heads, gives the full store's maps of that row
    small = AttentionStore(rows=1, mean_heads=True)
    with torch.no_grad(), capture_attention(model, store=small):
        for i in range(3):
            small.step = 10 * i
            model(x, torch.tensor([999 - 300 * i] * 2), context=ctx)
    assert small.records[0].probs.shape[:2] == (1, 1)
    assert_close(small.token_maps(size=(16, 16)), maps[:1])
