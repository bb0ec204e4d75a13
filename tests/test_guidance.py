"""Classifier-free guidance: condition dropout at the configured rate, ε̃ = ε_∅ + s·(ε_y − ε_∅) in one batched
forward (s = 1 is the conditional model, s = 0 the unconditional one), and the encoders' null conditions."""
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from minildm.conditioning import ClassEncoder, ConditionalUNet, TextEncoder
from minildm.guidance import condition_dropout, guided, rescale_guided
from minildm.ldm import DiffusionModel
from minildm.samplers import ddim_sample
from minildm.schedule import make_schedule
from minildm.train import TrainConfig, train_diffusion
from minildm.unet import UNet, UNetConfig

TINY = dict(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(1,), heads=2)
SCHED = make_schedule("linear", 50)


def _jitter(model, std=0.05):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(std * torch.randn_like(p))
    return model


def class_model(num_classes=10):
    torch.manual_seed(0)
    unet = UNet(UNetConfig(in_channels=1, context_dim=8, **TINY))
    return _jitter(ConditionalUNet(unet, ClassEncoder(num_classes, 8))).eval()


# ------------------------------------------------------------------------------------------ null conditions
def test_class_encoder_one_token_and_null_class():
    enc = ClassEncoder(10, 8)
    assert enc(torch.tensor([0, 9, 10])).shape == (3, 1, 8)
    assert enc.null_condition(4).tolist() == [10] * 4
    with pytest.raises(ValueError, match=r"0..10 \(10 = the null class\)"):
        enc(torch.tensor([11]))
    with pytest.raises(ValueError, match="context_dim .* must equal the encoder's dim"):
        ConditionalUNet(UNet(UNetConfig(context_dim=6, **TINY)), enc)


# ------------------------------------------------------------------------------------------ condition dropout
def test_condition_dropout_rate_and_what_is_dropped():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (5000,), generator=g)
    out = condition_dropout(y, 10, 0.2, generator=torch.Generator().manual_seed(1))
    dropped = out == 10
    assert abs(dropped.float().mean().item() - 0.2) < 0.03
    assert torch.equal(out[~dropped], y[~dropped])
    # token ids: whole prompts become the <null> prompt, or stay as they are
    null = torch.tensor([2, 0, 0, 0])
    ids = torch.randint(3, 20, (5000, 4), generator=g)
    out = condition_dropout(ids, null, 0.2, generator=torch.Generator().manual_seed(2))
    is_null = (out == null).all(1)
    assert abs(is_null.float().mean().item() - 0.2) < 0.03
    assert torch.equal(out[~is_null], ids[~is_null])
    # the training loop's draws are unchanged from before (one uniform per example from its generator)
    old = torch.where(torch.rand(5000, generator=torch.Generator().manual_seed(1)) < 0.2, torch.full_like(y, 10), y)
    assert torch.equal(condition_dropout(y, 10, 0.2, generator=torch.Generator().manual_seed(1)), old)


class PromptEps(nn.Module):
    """A conv ε_θ that reads token ids (B, L) through a mean embedding, and records what it was given."""

    def __init__(self):
        super().__init__()
        self.conv, self.emb, self.seen = nn.Conv2d(1, 1, 3, padding=1), nn.Embedding(20, 1), []

    def forward(self, x, t, y=None):
        self.seen.append(y)
        return self.conv(x) + self.emb(y).mean(1)[:, :, None, None]


def test_train_diffusion_drops_prompts_to_the_null_prompt():
    data = torch.randn(16, 1, 4, 4)
    ids = torch.randint(3, 20, (16, 4), generator=torch.Generator().manual_seed(0))
    null = torch.tensor([2, 0, 0, 0])
    model = PromptEps()
    cfg = TrainConfig(steps=5, batch_size=200, warmup=0, p_uncond=0.25, log_every=0, ckpt_every=0)
    train_diffusion(model, data, SCHED, cfg, labels=ids, null_condition=null, progress=False)
    seen = torch.cat(model.seen)  # (1000, 4)
    is_null = (seen == null).all(1)
    assert abs(is_null.float().mean().item() - 0.25) < 0.05
    assert all(any(torch.equal(row, r) for r in ids) for row in seen[~is_null][:50])
    with pytest.raises(ValueError, match="null_condition=tokenizer.null"):
        train_diffusion(PromptEps(), data, SCHED, cfg, labels=ids, progress=False)


# ------------------------------------------------------------------------------------------ guided ε
class Counting(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.batches = model, []

    def forward(self, x, t, y=None):
        self.batches.append(x.shape[0])
        return self.model(x, t, y=y)


def test_guidance_scales_one_zero_and_s_in_one_batched_forward():
    model = Counting(class_model())
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([40, 40, 40])
    cond, null = torch.tensor([1, 7, 3]), torch.tensor(10)
    with torch.no_grad():
        eps_c, eps_u = model(x, t, y=cond), model(x, t, y=null.expand(3))
        assert (eps_c - eps_u).abs().max() > 1e-3  # the condition matters, so the checks below mean something
        model.batches.clear()
        assert torch.equal(guided(model, 1.0, cond, null)(x, t), eps_c)  # exactly the conditional model
        assert torch.equal(guided(model, 0.0, cond, null)(x, t), eps_u)  # exactly the unconditional one
        assert model.batches == [3, 3]
        model.batches.clear()
        for s in (0.5, 3.0, 7.5):
            assert_close(guided(model, s, cond, null)(x, t), eps_u + s * (eps_c - eps_u), atol=1e-5, rtol=1e-4)
        assert model.batches == [6, 6, 6]  # one forward of [y; ∅] per call
    with pytest.raises(ValueError, match="null must be one condition"):
        guided(model, 2.0, cond, torch.tensor([10, 10]))


def test_guided_sampling_through_the_sampler_and_diffusion_model():
    net = class_model()
    dm = DiffusionModel(net, SCHED, None, image_size=8, clip_x0=1.0)
    assert dm.is_conditional
    assert dm.num_classes == 10
    assert dm.sample_shape == (1, 8, 8)
    y = torch.tensor([2, 5])
    images = dm.sample(2, steps=3, y=y, guidance=3.0, seed=0)
    x_T = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    ref = ddim_sample(guided(net, 3.0, y, net.null_condition(2)), x_T, SCHED, steps=3, clip_x0=1.0).clamp(-1, 1)
    assert_close(images, ref)
    plain = dm.sample(2, steps=3, y=y, seed=0)  # guidance 1: the conditional model
    assert_close(plain, ddim_sample(net, x_T, SCHED, steps=3, clip_x0=1.0, model_kwargs={"y": y}).clamp(-1, 1))
    with pytest.raises(ValueError, match="pass labels y"):
        dm.sample(2, steps=3)
    unet = UNet(UNetConfig(in_channels=1, num_classes=10, **TINY))
    with pytest.raises(ValueError, match="guidance=2.0 needs .* null condition"):
        DiffusionModel(unet, SCHED, None, image_size=8).sample(2, steps=3, y=y, guidance=2.0)


def test_guidance_rescale_restores_the_conditional_spread_and_keeps_the_direction():
    """Lin et al. 2024 §3.4 on a case with a known answer: φ = 1 gives ε̃ scaled to exactly std(ε_y) per example
    (its direction kept), φ = 0 plain guidance, and φ in between the linear mix of the two."""
    g = torch.Generator().manual_seed(0)
    eps_c = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)
    eps_u = 0.5 * torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)
    cfg = eps_u + 4.0 * (eps_c - eps_u)  # s = 4: about 3.5× ε_y's spread
    assert (cfg.flatten(1).std(1) > 2.5 * eps_c.flatten(1).std(1)).all()
    full = rescale_guided(cfg, eps_c, 1.0)
    assert_close(full.flatten(1).std(1), eps_c.flatten(1).std(1))  # each example at its own conditional std
    ratio = full / cfg  # one positive factor per example: same direction
    assert_close(ratio, ratio[:, :1, :1, :1].expand_as(ratio))
    assert (ratio > 0).all()
    assert torch.equal(rescale_guided(cfg, eps_c, 0.0), cfg)
    assert_close(rescale_guided(cfg, eps_c, 0.7), 0.7 * full + 0.3 * cfg)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"guidance rescale φ must be in \[0, 1\]"):
            rescale_guided(cfg, eps_c, bad)


def test_guided_with_rescale_through_the_model_and_diffusion_model():
    """``guided(…, rescale=φ)`` is rescale_guided of the plain guided ε̃ with the same batched forward; s = 1 is
    untouched; DiffusionModel.sample(guidance_rescale=φ) samples through exactly that ε-function."""
    net = class_model()
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([40, 40, 40])
    cond, null = torch.tensor([1, 7, 3]), torch.tensor(10)
    with torch.no_grad():
        eps_c = net(x, t, y=cond)
        plain = guided(net, 3.0, cond, null)(x, t)
        assert_close(guided(net, 3.0, cond, null, rescale=0.7)(x, t), rescale_guided(plain, eps_c, 0.7))
        assert torch.equal(guided(net, 1.0, cond, null, rescale=1.0)(x, t), eps_c)
    with pytest.raises(ValueError, match="guidance rescale"):
        guided(net, 3.0, cond, null, rescale=2.0)  # at build time, before any step
    dm = DiffusionModel(net, SCHED, None, image_size=8, clip_x0=1.0)
    y = torch.tensor([2, 5])
    images = dm.sample(2, steps=3, y=y, guidance=3.0, guidance_rescale=0.7, seed=0)
    x_T = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    ref = ddim_sample(guided(net, 3.0, y, net.null_condition(2), rescale=0.7), x_T, SCHED, steps=3,
                      clip_x0=1.0).clamp(-1, 1)
    assert_close(images, ref)
    assert not torch.allclose(images, dm.sample(2, steps=3, y=y, guidance=3.0, seed=0))  # φ changed something
    with pytest.raises(ValueError, match="guidance rescale"):
        dm.sample(2, steps=3, y=y, guidance=3.0, guidance_rescale=-1)


def test_text_conditional_model_samples_from_prompts():
    torch.manual_seed(0)
    unet = UNet(UNetConfig(in_channels=1, context_dim=8, **TINY))
    net = _jitter(ConditionalUNet(unet, TextEncoder(vocab_size=12, dim=8, max_len=4, depth=1, heads=2))).eval()
    dm = DiffusionModel(net, SCHED, None, image_size=8)
    assert dm.is_conditional
    assert dm.num_classes is None
    ids = torch.tensor([[3, 4, 0, 0], [3, 5, 6, 0]])
    assert dm.sample(2, steps=2, y=ids, guidance=2.0).shape == (2, 1, 8, 8)
