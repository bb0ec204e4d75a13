"""Layout-to-image (notebook 09, LDM §4.3.1): the canvases are what they claim, τ_θ's tokens follow the objects and
padding is invisible to ε_θ, the --layout parser refuses what the model never saw, every measure gives the exact
answer on synthetic canvases, and the smoke preset trains end to end, reloads and samples a layout."""
import dataclasses
from collections import deque
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from minildm import presets, recipes
from minildm.__main__ import main
from minildm.autoencoder import AutoencoderKL, compute_scale_factor
from minildm.checkpoint import load_checkpoint
from minildm.conditioning import ConditionalUNet, LayoutEncoder, encoder_from_spec, fourier_features
from minildm.conditions import conditions_for, parse_layout
from minildm.data import mnist
from minildm.guidance import condition_dropout
from minildm.latents import encode_dataset
from minildm.attention_maps import region_share
from minildm.layout import (MAX_OBJECTS, NO_OBJECT, LayoutConfig, attention_in_boxes, connected_components,
                            count_digits, ink_box_iou, ink_outside, layout_dataset, object_crops, place_boxes,
                            random_layouts, read_objects, square_digit)
from minildm.release import load_diffusion
from minildm.layers import coordinate_features
from minildm.unet import UNet, UNetConfig
from conftest import randomise
from test_cli import one_error_line

S = 64
EXAMPLE = "7@0.05,0.05,0.45,0.45;2@0.55,0.50,0.95,0.95"


@pytest.fixture(scope="module")
def canvases():
    return layout_dataset(48, "train", seed=3)


# ------------------------------------------------------------------------------------------ the data set
def test_canvases_on_a_known_seed(canvases):
    d = canvases
    assert d.images.shape == (48, 1, S, S)
    assert d.layouts.shape == (48, MAX_OBJECTS, 5)
    assert torch.equal(d.valid, d.layouts[..., 0] != NO_OBJECT)
    assert set(d.valid.sum(1).tolist()) == {1, 2, 3}
    assert d.images.min() >= -1 and d.images.max() <= 1
    assert not d.valid[:, 0].logical_not().any()  # objects first, empty slots after
    _, labels = mnist("train", size=28)
    pool, _ = mnist("train", size=28)
    for i in range(len(d)):
        inside = torch.zeros(S, S, dtype=torch.bool)
        boxes = []
        for k in range(MAX_OBJECTS):
            c, x0, y0, x1, y1 = d.layouts[i, k].tolist()
            if not d.valid[i, k]:
                assert d.sources[i, k] == -1 and [x0, y0, x1, y1] == [0, 0, 0, 0]
                continue
            assert c == labels[d.sources[i, k]]  # the class is the source digit's label
            px = [v * S for v in (x0, y0, x1, y1)]
            assert all(float(v).is_integer() for v in px)  # whole pixels, exactly
            c0, r0, c1, r1 = map(int, px)
            assert 0 <= c0 < c1 <= S and 0 <= r0 < r1 <= S  # inside the canvas
            assert c1 - c0 == r1 - r0 and 20 <= c1 - c0 <= 36  # square, side 20–36 px
            # the box holds its source digit, cropped to its ink, squared and resized to the box
            want = F.interpolate(square_digit(pool[d.sources[i, k]])[None], size=(c1 - c0, c1 - c0), mode="bilinear",
                                 antialias=True, align_corners=False)[0].clamp(-1, 1)
            assert_close(d.images[i, :, r0:r1, c0:c1], want)
            inside[r0:r1, c0:c1] = True
            boxes.append((c0, r0, c1, r1))
        assert (d.images[i, 0][~inside] == -1).all()  # ink inside the boxes only
        for a in range(len(boxes)):  # no overlap: at least gap = 4 px apart along x or along y
            for b in range(a):
                (ac0, ar0, ac1, ar1), (bc0, br0, bc1, br1) = boxes[a], boxes[b]
                assert ac1 + 4 <= bc0 or bc1 + 4 <= ac0 or ar1 + 4 <= br0 or br1 + 4 <= ar0


def test_canvases_are_deterministic_per_seed_and_index(canvases):
    again = layout_dataset(8, "train", seed=3, start=40)  # canvases 40..47, drawn alone
    assert torch.equal(again.images, canvases.images[40:])
    assert torch.equal(again.layouts, canvases.layouts[40:])
    other = layout_dataset(8, "train", seed=4, start=40)
    assert not torch.equal(other.layouts, again.layouts)
    assert torch.equal(random_layouts(5, seed=2), random_layouts(5, seed=2))
    assert not torch.equal(random_layouts(5, seed=2), random_layouts(5, seed=3))


def test_square_digit_and_impossible_placements():
    digit = -torch.ones(1, 28, 28)
    digit[0, 5:15, 10:14] = 0.5  # ink 10 tall, 4 wide
    sq = square_digit(digit)
    assert sq.shape == (1, 10, 10)
    assert (sq[0, :, 3:7] == 0.5).all() and (sq[0, :, :3] == -1).all() and (sq[0, :, 7:] == -1).all()
    tight = LayoutConfig(canvas=40, min_objects=3, max_objects=3, min_side=20, max_side=20, tries=5, restarts=3)
    with pytest.raises(ValueError, match=r"could not place 3 boxes of side 20–20 px, 4 px apart, in a 40×40 canvas"):
        place_boxes(np.random.default_rng(0), 3, tight)
    with pytest.raises(ValueError, match="cannot fit a 16×16 canvas"):
        place_boxes(np.random.default_rng(0), 1, LayoutConfig(canvas=16))


# ------------------------------------------------------------------------------------------ τ_θ for layouts
def _layouts():
    y = torch.tensor([[[7, 0.05, 0.05, 0.45, 0.45], [2, 0.55, 0.5, 0.95, 0.95], [1, 0.1, 0.6, 0.4, 0.9]],
                      [[3, 0.2, 0.2, 0.7, 0.7], [NO_OBJECT, 0, 0, 0, 0], [NO_OBJECT, 0, 0, 0, 0]]])
    return y  # (2, 3, 5): three objects; one object and two empty slots


def test_fourier_features_known_values():
    f = fourier_features(torch.tensor([[0.5, 0.25]]), num_freqs=2)  # (1, 2·5)
    want = [0.5, 1, 0, 0, -1,  # 0.5: c, sin(π/2), sin(π), cos(π/2), cos(π)
            0.25, 2 ** -0.5, 1, 2 ** -0.5, 0]
    assert_close(f, torch.tensor([want]), atol=1e-6, rtol=0)


def test_coordinate_features_read_boxes_as_the_layouts_do(canvases):
    g = coordinate_features(S, S, num_freqs=2)  # (1, 2·(2·2 + 1), S, S): [γ(x), γ(y)]
    assert g.shape == (1, 10, S, S)
    assert_close(g[0, :5, 3, 10], fourier_features(torch.tensor([10.5 / S]), 2))  # γ(x) of column 10's centre
    assert_close(g[0, 5:, 3, 10], fourier_features(torch.tensor([3.5 / S]), 2))  # γ(y) of row 3's centre
    x, y = g[0, 0], g[0, 5]
    for i in range(16):  # a box's pixels are the positions inside it: its side² of them, and all the ink there
        union = torch.zeros(S, S, dtype=torch.bool)
        for k in range(int(canvases.valid[i].sum())):
            _, x0, y0, x1, y1 = canvases.layouts[i, k].tolist()
            box = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
            assert box.sum() == round((x1 - x0) * S) * round((y1 - y0) * S)
            union |= box
        assert not ((canvases.images[i, 0] > -1) & ~union).any()
    small = coordinate_features(16, 16, num_freqs=2)  # fractions, not pixels: latent pixel (r, c) ↔ canvas 4r+1.5
    assert_close(small[0, [0, 5], 2, 7], torch.tensor([7.5 / 16, 2.5 / 16]))


def test_unet_coordinate_channels():
    cfg = UNetConfig(in_channels=4, base_channels=8, channel_mult=(1, 2), attn_levels=(1,), heads=2, coord_freqs=3)
    assert cfg.coord_channels == 14 and UNetConfig(in_channels=4).coord_channels == 0
    assert UNetConfig.from_dict({"in_channels": 4}).coord_freqs is None  # a checkpoint from before: no coordinates
    torch.manual_seed(0)
    unet = randomise(UNet(cfg)).eval()
    assert unet.conv_in.in_channels == 4 + 14
    with torch.no_grad():
        for size in (8, 16):  # fractions of the image, so any size the levels allow
            assert unet(torch.randn(2, 4, size, size), 5).shape == (2, 4, size, size)
        # the coordinates are the input's extra channels: zeroing conv_in's weights on them removes them exactly
        plain = UNet(dataclasses.replace(cfg, coord_freqs=None)).eval()
        state = unet.state_dict()
        state["conv_in.weight"] = state["conv_in.weight"][:, :4]
        plain.load_state_dict(state)
        x = torch.randn(2, 4, 8, 8)
        unet.conv_in.weight[:, 4:] = 0
        assert_close(unet(x, 5), plain(x, 5))
    with pytest.raises(ValueError, match="coord_freqs"):
        UNetConfig(coord_freqs=-1)


def test_layout_tokens_follow_the_objects():
    enc = LayoutEncoder(10, 16, 3)
    y = _layouts()
    tok = enc(y)
    assert tok.shape == (2, 4, 16)  # ∅ + 3 slots
    assert torch.equal(enc.key_mask(y), torch.tensor([[True] * 4, [True, True, False, False]]))
    perm = torch.tensor([2, 0, 1])
    tok_p = enc(y[:, perm])
    assert_close(tok_p[:, 1:], tok[:, 1:][:, perm])  # permuting the objects permutes the tokens
    assert_close(tok_p[:, 0], tok[:, 0])  # ∅ stays first
    junk = y.clone()
    junk[1, 1:, 1:] = torch.tensor([0.3, 0.1, 0.9, 0.8])  # what an empty slot holds is ignored
    assert torch.equal(enc(junk), tok)
    moved = y.clone()
    moved[0, 0, 1:] += 0.05
    assert not torch.allclose(enc(moved)[:, 1], tok[:, 1])  # a box is carried by its token
    null = enc.null_condition(2)
    assert torch.equal(enc.key_mask(null), torch.tensor([[True, False, False, False]] * 2))
    assert torch.equal(condition_dropout(y, null[0], p=1.0), null)  # condition dropout gives the empty layout
    rebuilt, tok_none = encoder_from_spec(dict(type="layout", num_classes=10, dim=16, max_objects=3, num_freqs=8))
    assert isinstance(rebuilt, LayoutEncoder) and tok_none is None and rebuilt.max_objects == 3
    for bad, needle in ((y[:, :2], r"\(B, 3, 5\)"), (y.clone().index_fill_(2, torch.tensor([0]), 10.0), "0..9"),
                        (y + torch.tensor([0, 0, 0, 0.7, 0]), r"\[0, 1\]")):
        with pytest.raises(ValueError, match=needle):
            enc(bad)


def _layout_unet(max_objects=3):
    cfg = UNetConfig(in_channels=4, base_channels=8, channel_mult=(1, 2), attn_levels=(0, 1), heads=2, context_dim=16,
                     self_attn_levels=(1,))
    torch.manual_seed(0)
    return ConditionalUNet(randomise(UNet(cfg)), LayoutEncoder(10, 16, max_objects)).eval()


def test_unet_ignores_object_order_and_padding():
    model = _layout_unet()
    y = _layouts()
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([10, 600])
    with torch.no_grad():
        out = model(x, t, y=y)
        assert_close(model(x, t, y=y[:, [1, 2, 0]]), out, atol=1e-5, rtol=1e-5)  # order: no effect
        # padding as if absent: one object in 3 slots == the same object in an encoder with 1 slot, same weights
        one = ConditionalUNet(model.unet, LayoutEncoder(10, 16, 1)).eval()
        one.encoder.load_state_dict(model.encoder.state_dict())
        assert_close(one(x[1:], t[1:], y=y[1:, :1]), out[1:], atol=1e-5, rtol=1e-5)
        moved = y.clone()
        moved[1, 0, 1:] = torch.tensor([0.5, 0.5, 0.9, 0.9])
        assert (model(x, t, y=moved)[1] - out[1]).abs().max() > 1e-3  # the box does change ε_θ
        model.encoder.key_mask = lambda y: torch.ones(y.shape[0], 4, dtype=torch.bool)  # the mask turned off
        assert (model(x, t, y=y)[1] - out[1]).abs().max() > 1e-4  # …and the padding would leak in
    with pytest.raises(ValueError, match="hides every token"):
        model.unet(x, t, context=torch.randn(2, 4, 16), context_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"bool of shape \(B, M\) = \(2, 4\)"):
        model.unet(x, t, context=torch.randn(2, 4, 16), context_mask=torch.ones(2, 4))


# ------------------------------------------------------------------------------------------ parsing --layout
def test_parse_layout():
    y = parse_layout(EXAMPLE)
    assert_close(y, torch.tensor([[7, 0.05, 0.05, 0.45, 0.45], [2, 0.55, 0.50, 0.95, 0.95], [-1, 0, 0, 0, 0]]))
    assert torch.equal(parse_layout(" 3@0,0,0.5,0.5 ; 4@0.5,0,1,0.5; "), parse_layout("3@0,0,0.5,0.5;4@0.5,0,1,0.5"))
    errors = {"": "is empty", " ; ": "is empty",
              "7": "CLASS@x0,y0,x1,y1", "7@0.1,0.2,0.3": "CLASS@x0,y0,x1,y1", "x@0,0,1,1": "CLASS@x0,y0,x1,y1",
              "7@a,b,c,d": "CLASS@x0,y0,x1,y1", "7.5@0,0,1,1": "CLASS@x0,y0,x1,y1",
              "10@0,0,0.5,0.5": "class 10 is not one of 0..9", "-1@0,0,0.5,0.5": "class -1 is not one of 0..9",
              "7@0.1,0.1,1.2,0.4": "1.2 is outside", "7@-0.1,0.1,0.5,0.4": "-0.1 is outside",
              "7@nan,0.1,0.5,0.4": "nan is outside",
              "7@0.5,0.1,0.2,0.4": "x1 = 0.2 ≤ x0 = 0.5", "7@0.1,0.4,0.3,0.4": "y1 = 0.4 ≤ y0 = 0.4",
              "1@0,0,.2,.2;2@.3,0,.5,.2;3@.6,0,.8,.2;4@0,.5,.2,.7": "has 4 objects but the model draws at most 3",
              "7@0.1,0.1,0.5,0.5;2@0.4,0.4,0.9,0.9": "overlap"}
    for text, needle in errors.items():
        with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
            parse_layout(text)
    assert parse_layout("7@0,0,0.5,0.5;2@0.5,0,1,0.5")[1, 0] == 2  # boxes that touch do not overlap


def test_conditions_for_layout_models():
    lay = SimpleNamespace(is_conditional=True, max_objects=3, num_classes=10, name="lay", attributes=None,
                          tokenizer=None)
    y, stored = conditions_for(lay, 4, seed=1)
    assert torch.equal(y, random_layouts(4, seed=1)) and stored is y
    y, _ = conditions_for(lay, 3, layout=EXAMPLE)
    assert torch.equal(y, parse_layout(EXAMPLE).expand(3, -1, -1))
    with pytest.raises(ValueError, match="conditioned on layouts.*not --label"):
        conditions_for(lay, 2, label=3)
    cls = SimpleNamespace(is_conditional=True, max_objects=None, num_classes=10, name="cls", attributes=None,
                          tokenizer=None)
    with pytest.raises(ValueError, match=r"for layout models \(latent_mnist_layout\); cls takes a label"):
        conditions_for(cls, 2, layout=EXAMPLE)
    with pytest.raises(ValueError, match="layout .* given, but unc is unconditional"):
        conditions_for(SimpleNamespace(is_conditional=False, name="unc"), 2, layout=EXAMPLE)


# ------------------------------------------------------------------------------------------ the measures
def _blank(n=1):
    return -torch.ones(n, 1, S, S)


def _layout(*boxes):
    """Pixel boxes (class, c0, r0, c1, r1) → a layout (1, 3, 5)."""
    y = torch.zeros(1, MAX_OBJECTS, 5)
    y[..., 0] = NO_OBJECT
    for k, (c, c0, r0, c1, r1) in enumerate(boxes):
        y[0, k] = torch.tensor([c, c0 / S, r0 / S, c1 / S, r1 / S])
    return y


def test_ink_box_iou_exact_answers():
    box = _layout((1, 10, 10, 30, 30), (2, 40, 40, 60, 60))  # two 20 × 20 boxes; the second stays empty
    cases = {(10, 30): 1.0,  # ink columns [10, 30), rows [10, 30): the ink fills the box
             (10, 20): 0.5,  # its left half: 200 / 400
             (12, 32): 360 / 440,  # 2 px to the right: still inside the enlarged box (margin 2 px)
             (14, 34): 320 / 440}  # 4 px to the right: the enlarged box cuts it at column 32
    for (c0, c1), want in cases.items():
        img = _blank()
        img[0, 0, 10:30, c0:c1] = 1.0
        img[0, 0, 0:3, 50:60] = 1.0  # ink far from both boxes changes nothing
        iou = ink_box_iou(img, box)
        assert iou[0, 0].item() == pytest.approx(want, abs=1e-6)
        assert iou[0, 1].item() == 0.0  # no ink in the second box
        assert torch.isnan(iou[0, 2])  # an empty slot
    img = _blank()
    img[0, 0, 10:30, 10:30] = 0.0  # exactly at the threshold: not ink
    assert ink_box_iou(img, box)[0, 0].item() == 0.0


def test_ink_outside_exact_answers():
    box = _layout((1, 10, 10, 30, 30))
    img = _blank(2)
    img[0, 0, 12:22, 12:22] = 1.0  # 100 ink pixels inside
    img[0, 0, 40:45, 40:45] = 0.5  # 25 outside
    out = ink_outside(img, box.expand(2, -1, -1))
    assert out[0].item() == pytest.approx(25 / 125, abs=1e-7)
    assert torch.isnan(out[1])  # a canvas without ink


def test_attention_in_boxes_exact_answers():
    y = _layout((1, 16, 16, 48, 48), (2, 0, 0, 16, 8)).expand(3, -1, -1).clone()  # two boxes, then an empty slot
    maps = torch.full((3, 1 + MAX_OBJECTS, 16, 16), 0.25)  # (B, ∅ + 3 slots, 16, 16): image 0 uniform
    maps[1:, 1] = 0.0
    maps[1, 1, 4:12, 4:12] = 1.0  # image 1: token 1 only inside its box (canvas px 16–48 = cells 4–12)
    maps[2, 1, 4:12, 4:8] = maps[2, 1, 0, 0] = 1.0  # image 2: 32 cells inside, 1 outside
    share, chance = attention_in_boxes(maps, y)
    assert share.shape == chance.shape == (3, MAX_OBJECTS)
    assert_close(chance[:, :2], torch.tensor([[0.25, 1 / 32]] * 3))  # the boxes' shares of the canvas
    assert_close(share[0, :2], chance[0, :2], rtol=1e-6, atol=0)  # a uniform map: share = chance
    assert share[1, 0].item() == pytest.approx(1.0, abs=1e-6)  # all of token 1's mass in its box
    assert share[2, 0].item() == pytest.approx(32 / 33, abs=1e-6)
    assert torch.isnan(share[:, 2]).all() and torch.isnan(chance[:, 2]).all()  # the empty slot
    # on cell edges it is region_share with the box as the token's region (one image, one token)
    box = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    box[..., 4:12, 4:12] = True
    assert_close(region_share(maps[2:, 1:2], box)[0][0], share[2, 0], rtol=1e-6, atol=0)
    # a box that cuts cells: a map 4 × 4 with all its mass in cell (0, 0), of which [0.1, 0.25)² is in the box
    cut = torch.tensor([[[3, 0.1, 0.1, 0.6, 0.35], [NO_OBJECT, 0, 0, 0, 0], [NO_OBJECT, 0, 0, 0, 0]]])
    corner = torch.zeros(1, 1 + MAX_OBJECTS, 4, 4)
    corner[0, 1, 0, 0] = 1.0
    share, chance = attention_in_boxes(corner, cut)
    assert share[0, 0].item() == pytest.approx(0.6 * 0.6, abs=1e-6)  # (0.25 − 0.1)·4 of the cell each way
    assert chance[0, 0].item() == pytest.approx(0.5 * 0.25, abs=1e-6)
    with pytest.raises(ValueError, match=r"need maps \(B, 1 \+ K, H, W\)"):
        attention_in_boxes(maps[:, 1:], y)  # ∅ left out


def _bfs_count(mask: np.ndarray) -> int:
    """The reference: 8-connected components by breadth-first search."""
    seen, count = np.zeros_like(mask), 0
    for r0, c0 in zip(*np.nonzero(mask)):
        if seen[r0, c0]:
            continue
        count += 1
        queue, seen[r0, c0] = deque([(r0, c0)]), True
        while queue:
            r, c = queue.popleft()
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < mask.shape[0] and 0 <= cc < mask.shape[1] and mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        queue.append((rr, cc))
    return count


def test_connected_components_match_breadth_first_search():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(6, 40, 40, generator=g) < torch.tensor([0.2, 0.35, 0.45, 0.5, 0.55, 0.6])[:, None, None]
    spiral = torch.zeros(1, 40, 40, dtype=torch.bool)  # one long stroke, winding inwards
    r0, c0, r1, c1 = 0, 0, 39, 39
    while r0 <= r1 and c0 <= c1:
        spiral[0, r0, c0:c1 + 1] = spiral[0, r0:r1 + 1, c1] = True
        spiral[0, r1, c0 + 2:c1 + 1] = spiral[0, r0 + 2:r1 + 1, c0 + 2] = True
        r0, c0, r1, c1 = r0 + 2, c0 + 2, r1 - 2, c1 - 2
    masks = torch.cat([masks, spiral])
    labels = connected_components(masks)
    for m, lab in zip(masks, labels):
        assert ((lab > 0) == m).all()
        assert len(lab[lab > 0].unique()) == _bfs_count(m.numpy())


def test_count_digits_rule():
    img = _blank(3)
    img[0, 0, 5:10, 5:10] = 1.0  # 25 px
    img[0, 0, 40:44, 40:44] = 1.0  # 16 px
    img[0, 0, 20:22, 50:52] = 1.0  # 4 px: a speck, below MIN_AREA = 10
    img[1, 0, 10:15, 0:5] = img[1, 0, 10:15, 7:12] = 1.0  # 2 empty columns between: the dilation joins them
    img[2, 0, 10:15, 0:5] = img[2, 0, 10:15, 8:13] = 1.0  # 3 empty columns: two digits
    assert count_digits(img).tolist() == [2, 1, 2]


def test_measures_on_real_canvases():
    d = layout_dataset(60, "test", seed=1)
    assert (ink_outside(d.images, d.layouts) == 0).all()
    iou = ink_box_iou(d.images, d.layouts)[d.valid]
    assert (iou > 0).all() and (iou <= 1).all() and iou.mean() > 0.6  # 0.71 on 1,000 test canvases
    assert (count_digits(d.images) == d.valid.sum(1)).float().mean() >= 0.9  # 99.2% on 1,000
    crops = object_crops(d.images, d.layouts)
    assert crops.shape == (int(d.valid.sum()), 1, 32, 32)
    assert (crops[..., :6, :] == -1).all() and (crops[..., :, :6] == -1).all()  # long side 20, centred in 32
    read = read_objects(d.images, d.layouts)
    assert (read[~d.valid] == NO_OBJECT).all()
    right = (read == d.layouts[..., 0].long())[d.valid].float().mean()
    assert right >= 0.9  # the judge reads the real digits (98.2% of 1,015 objects on 500 test canvases)
    wrong = d.layouts.clone()
    wrong[..., 0] = torch.where(d.valid, (wrong[..., 0] + 1) % 10, wrong[..., 0])  # ask for the next digit
    assert (read == wrong[..., 0].long())[d.valid].float().mean() <= 0.2


# ------------------------------------------------------------------------------------------ checkpoints and the CLI
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A layout checkpoint trained one step on random tensors: enough for the doors."""
    d = tmp_path_factory.mktemp("layout")
    x = torch.rand(16, 1, S, S, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.manual_seed(0)
    ae = AutoencoderKL(presets.autoencoder_mnist("smoke").ae).eval()
    compute_scale_factor(ae, x)
    p = presets.latent_mnist_layout("smoke")
    p.train = dataclasses.replace(p.train, steps=1, ckpt_every=1)
    null = LayoutEncoder(10, 64, 3).null_condition(1)[0]
    recipes.train_preset(p, encode_dataset(ae, x), labels=random_layouts(16), ckpt_path=d / "layout.pt",
                         progress=False, first_stage=ae, null_condition=null)
    return d / "layout.pt"


def test_layout_doors(tiny, tmp_path, capsys):
    png = tmp_path / "x.png"
    rows = {("--layout", ""): "the layout (--layout) is empty",
            ("--layout", "7@0.05,0.05,0.45"): "each object of the layout (--layout) is CLASS@x0,y0,x1,y1",
            ("--layout", "12@0.1,0.1,0.4,0.4"): "class 12 is not one of 0..9",
            ("--layout", "7@0.1,0.1,1.2,0.4"): "1.2 is outside [0, 1]",
            ("--layout", "7@0.5,0.1,0.2,0.4"): "x1 = 0.2 ≤ x0 = 0.5",
            ("--layout", "1@0,0,.2,.2;2@.3,0,.5,.2;3@.6,0,.8,.2;4@0,.5,.2,.7"): "at most 3",
            ("--layout", "7@0.1,0.1,0.5,0.5;2@0.4,0.4,0.9,0.9"): "overlap",
            ("--label", "3"): "latent_mnist_layout is conditioned on layouts: give one as --layout"}
    for argv, needle in rows.items():
        assert main(["sample", str(tiny), "--n", "2", "--steps", "2", *argv, "--out", str(png)]) == 2
        assert needle in one_error_line(capsys.readouterr().err)
        assert not png.exists()
    with pytest.raises(ValueError, match=r"pass y of shape \(n, 3, 5\)"):
        load_diffusion(tiny).sample(2, steps=1, y=torch.zeros(2, 2, 5))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """recipes.train("latent-mnist-layout", "smoke") end to end in a fresh runs folder: MNIST canvases → a smoke
    autoencoder (trained here) → cached latents → ε_θ with τ_θ (8 steps each, MINILDM_MAX_STEPS)."""
    d = tmp_path_factory.mktemp("layout_run")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINILDM_RUNS", str(d))
    mp.setenv("MINILDM_MAX_STEPS", "8")
    try:
        model, ckpt = recipes.train("latent-mnist-layout", "smoke", progress=False)
    finally:
        mp.undo()
    return model, ckpt


def test_a_finished_layout_run_loads_without_drawing_canvases(smoke_run, monkeypatch):
    """recipes.train on a finished layout run loads it: no canvases drawn, no autoencoder touched, same weights."""
    model, ckpt = smoke_run
    monkeypatch.setenv("MINILDM_RUNS", str(ckpt.parent.parent))
    monkeypatch.setenv("MINILDM_MAX_STEPS", "8")

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run drew its training canvases again")
    monkeypatch.setattr(recipes, "layout_latents", refuse)
    monkeypatch.setattr(recipes, "first_stage", refuse)
    again, path = recipes.train("latent-mnist-layout", "smoke", progress=False)
    assert path == ckpt
    for a, b in zip(again.unet.state_dict().values(), model.unet.state_dict().values()):
        assert torch.equal(a, b)
    assert again.guidance == model.guidance and again.name == model.name


def test_smoke_preset_trains_reloads_and_samples_a_layout(smoke_run, tmp_path, capsys):
    model, ckpt = smoke_run
    assert ckpt.name == "latent_mnist_layout.pt"
    saved = load_checkpoint(ckpt, kind="latent_mnist")
    assert saved["conditioning"]["type"] == "layout" and saved["step"] == 8
    assert saved["sampling"]["image_size"] == S
    assert (ckpt.parent / "latents_layout_f4_train.pt").exists()  # the canvases' latents, cached
    loaded = load_diffusion(ckpt)
    assert loaded.max_objects == 3 and loaded.sample_shape == (4, 16, 16)
    for a, b in zip(loaded.unet.state_dict().values(), model.unet.state_dict().values()):
        assert torch.equal(a, b)  # the checkpoint holds the EMA weights the recipe returned
    npz = tmp_path / "l.npz"
    assert main(["sample", str(ckpt), "--layout", EXAMPLE, "--n", "3", "--steps", "3", "--out",
                 str(tmp_path / "l.png"), "--npz", str(npz)]) == 0
    with np.load(npz) as f:
        assert set(f.files) == {"images", "layouts"}
        assert f["images"].shape == (3, 1, S, S)
        assert_close(torch.from_numpy(f["layouts"]), parse_layout(EXAMPLE).expand(3, -1, -1))
        images = torch.from_numpy(f["images"])
    y = parse_layout(EXAMPLE).expand(3, -1, -1)
    want = (loaded.sample(3, sampler="ddpm", steps=3, seed=0, y=y, guidance=loaded.guidance) + 1) / 2
    assert_close(images, want, atol=1e-5, rtol=0)  # exactly the model's guided samples of that layout
    assert main(["sample", str(ckpt), "--n", "2", "--steps", "2", "--out", str(tmp_path / "r.png"), "--npz",
                 str(npz)]) == 0  # no --layout: random layouts, stored beside the images
    with np.load(npz) as f:
        assert torch.equal(torch.from_numpy(f["layouts"]), random_layouts(2, seed=0))
