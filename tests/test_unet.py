"""UNet ε_θ(x_t, t): shapes, conditioning on t, zero init, errors that teach; the ε-prediction loss."""
import pytest
import torch
from torch.testing import assert_close

from minildm.objective import diffusion_loss
from minildm.schedule import make_schedule
from minildm.unet import UNet, UNetConfig, count_parameters, timestep_embedding
from conftest import randomise

TINY = dict(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(1,), heads=2)


@pytest.mark.parametrize("C, H, W, cfg", [
    (1, 8, 8, dict(TINY)),
    (3, 16, 16, dict(TINY, attn_levels=())),
    (4, 16, 32, dict(TINY, base_channels=16)),
    (1, 32, 32, dict(base_channels=8, channel_mult=(1, 2, 2), attn_levels=(2,), heads=2)),
    (3, 8, 8, dict(TINY, num_classes=10, num_res_blocks=2)),
])
def test_output_shape_equals_input_shape(C, H, W, cfg):
    model = randomise(UNet(UNetConfig(in_channels=C, **cfg)))
    x = torch.randn(2, C, H, W)
    y = torch.tensor([3, 7]) if cfg.get("num_classes") else None
    with torch.no_grad():
        assert model(x, torch.tensor([0, 999]), y=y).shape == x.shape


def test_out_channels():
    model = UNet(UNetConfig(in_channels=3, out_channels=6, **TINY))
    assert model(torch.randn(1, 3, 8, 8), 5).shape == (1, 6, 8, 8)


def test_channels_last_gives_the_same_output():
    model = randomise(UNet(UNetConfig(in_channels=1, **TINY))).eval()
    x, t = torch.randn(2, 1, 8, 16), torch.tensor([4, 90])
    with torch.no_grad():
        ref = model(x, t)
        out = model.to(memory_format=torch.channels_last)(x, t)
    assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_fresh_model_predicts_zero():
    model = UNet(UNetConfig(in_channels=1, **TINY))
    out = model(torch.randn(2, 1, 8, 8), torch.tensor([1, 500]))
    assert torch.equal(out, torch.zeros_like(out))


def test_time_changes_the_output():
    model = randomise(UNet(UNetConfig(in_channels=1, **TINY))).eval()
    x = torch.randn(1, 1, 8, 8).expand(2, -1, -1, -1)
    with torch.no_grad():
        same = model(x, torch.tensor([10, 10]))
        diff = model(x, torch.tensor([10, 600]))
        scalar = model(x, 10)  # a python int broadcasts over the batch
    assert_close(same[0], same[1])
    assert_close(scalar, same)
    assert (diff[0] - diff[1]).abs().max() > 1e-4


def test_class_label_changes_the_output():
    model = randomise(UNet(UNetConfig(in_channels=1, num_classes=10, **TINY))).eval()
    x = torch.randn(1, 1, 8, 8).expand(2, -1, -1, -1)
    with torch.no_grad():
        out = model(x, 3, y=torch.tensor([1, 2]))
    assert (out[0] - out[1]).abs().max() > 1e-4


def test_bad_size_raises_with_the_divisor():
    model = UNet(UNetConfig(in_channels=1, base_channels=8, channel_mult=(1, 2, 2), heads=2))
    with pytest.raises(ValueError, match=r"not divisible by 4.*pad or resize"):
        model(torch.randn(1, 1, 30, 32), 0)


def test_bad_channels_t_and_context_raise():
    model = UNet(UNetConfig(in_channels=1, **TINY))
    with pytest.raises(ValueError, match="in_channels=1"):
        model(torch.randn(1, 3, 8, 8), 0)
    with pytest.raises(ValueError, match="t must be"):
        model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="cross-attention"):
        model(torch.randn(1, 1, 8, 8), 0, context=torch.randn(1, 4, 8))
    with pytest.raises(ValueError, match="num_classes"):
        model(torch.randn(1, 1, 8, 8), 0, y=torch.tensor([1]))


def test_config_round_trip():
    cfg = UNetConfig(in_channels=4, channel_mult=(1, 2, 4), attn_levels=(1, 2), num_classes=10)
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="attn_levels"):
        UNetConfig(channel_mult=(1, 2), attn_levels=(2,))
    assert count_parameters(UNet(UNetConfig(**TINY))) > 0


def test_timestep_embedding():
    emb = timestep_embedding(torch.tensor([0, 1, 2, 999]), 32)
    assert emb.shape == (4, 32)
    assert_close(emb[0, :16], torch.ones(16))  # cos(0) = 1
    assert_close(emb[0, 16:], torch.zeros(16))  # sin(0) = 0
    assert torch.cdist(emb, emb).fill_diagonal_(1.0).min() > 0.1  # distinct t → distinct codes
    assert timestep_embedding(torch.tensor([3.5]), 7).shape == (1, 7)


# --- the objective -----------------------------------------------------------------------------------------

def test_loss_is_zero_for_the_oracle():
    alpha_bar = make_schedule("linear", 100).alpha_bar
    x0, eps = torch.randn(8, 1, 8, 8), torch.randn(8, 1, 8, 8)
    loss = diffusion_loss(lambda x_t, t: eps, x0, alpha_bar, eps=eps)
    assert loss.item() == 0.0


def test_loss_of_zero_model_is_about_one():
    alpha_bar = make_schedule("linear", 100).alpha_bar
    g = torch.Generator().manual_seed(0)
    loss = diffusion_loss(lambda x_t, t: torch.zeros_like(x_t), torch.randn(64, 1, 16, 16), alpha_bar, generator=g)
    assert abs(loss.item() - 1.0) < 0.02  # E‖ε‖² per element = 1; 16k samples


def test_loss_reproducible_with_generator_and_forwards_kwargs():
    alpha_bar = make_schedule("cosine", 50).alpha_bar
    model = randomise(UNet(UNetConfig(in_channels=1, num_classes=3, **TINY)))
    x0, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    a = diffusion_loss(model, x0, alpha_bar, generator=torch.Generator().manual_seed(1), y=y)
    b = diffusion_loss(model, x0, alpha_bar, generator=torch.Generator().manual_seed(1), y=y)
    c = diffusion_loss(model, x0, alpha_bar, generator=torch.Generator().manual_seed(2), y=y)
    assert a.item() == b.item()
    assert a.item() != c.item()
    a.backward()
    assert model.conv_out.weight.grad is not None


def test_vector_embedding_is_added_to_the_time_embedding():
    """vector_dim: emb(t) + W·vec + b reaches every ResBlock. With W = 0 and b = 0 the network is exactly the one
    without it (same other weights); with b alone it is the plain network whose time embedding is shifted by b."""
    torch.manual_seed(0)
    plain = randomise(UNet(UNetConfig(in_channels=2, **TINY))).eval()
    vec_net = UNet(UNetConfig(in_channels=2, vector_dim=5, **TINY)).eval()
    missing = vec_net.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["vector_embed.bias", "vector_embed.weight"]
    x, t, v = torch.randn(3, 2, 8, 8), torch.tensor([1, 50, 900]), torch.randn(3, 5)
    with torch.no_grad():
        nn_init = vec_net.vector_embed
        nn_init.weight.zero_(); nn_init.bias.zero_()
        assert_close(vec_net(x, t, vec=v), plain(x, t))
        nn_init.weight.normal_()
        out_a, out_b = vec_net(x, t, vec=v), vec_net(x, t, vec=-v)
    assert (out_a - out_b).abs().mean() > 1e-3  # the output depends on vec
    assert (out_a - plain(x, t)).abs().mean() > 1e-3


def test_vector_embedding_errors_say_what_to_pass():
    net = UNet(UNetConfig(in_channels=1, vector_dim=4, **TINY))
    with pytest.raises(ValueError, match=r"vector_dim=4: pass vec of shape \(2, 4\)"):
        net(torch.randn(2, 1, 8, 8), 3)
    with pytest.raises(ValueError, match=r"vector_dim=4: pass vec of shape \(2, 4\), got \(2, 3\)"):
        net(torch.randn(2, 1, 8, 8), 3, vec=torch.randn(2, 3))
    with pytest.raises(ValueError, match="no vector embedding"):
        UNet(UNetConfig(in_channels=1, **TINY))(torch.randn(2, 1, 8, 8), 3, vec=torch.randn(2, 4))
