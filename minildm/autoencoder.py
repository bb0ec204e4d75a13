"""The first stage: a KL-regularised autoencoder x → z → x̃.  Notebook 03 · LDM §3.1, App. G (AutoencoderKL).

=================  ===========================  ====================================================
code               paper                        meaning
=================  ===========================  ====================================================
``x``              x ∈ R^{H×W×3}                an image, (B, C, H, W) in [−1, 1]
``encoder``        ℰ                            x → the parameters (μ, log σ²) of q(z|x), (B, 2·z_channels, h, w)
``posterior``      q_ℰ(z|x)                     :class:`~minildm.distributions.DiagonalGaussian`
``z``              z = ℰ(x) ∈ R^{h×w×c}          a latent, (B, z_channels, H/f, W/f)
``decoder``        𝒟                            z → x̃ = 𝒟(z), (B, C, H, W)
``f``              f = H/h = 2^m                the downsampling factor (LDM's "LDM-f")
``scale_factor``   s (App. D.1 / G)             diffusion runs on s·z with s = 1 / std(z), unit variance
=================  ===========================  ====================================================

Layout (as LDM's ``ldm/modules/diffusionmodules/model.py``, smaller): a conv in; one level per entry of
``channel_mult`` with ``num_res_blocks`` ResBlocks (no time embedding) and a stride-2 conv between levels; a
middle Res → [Attn] → Res; GN → SiLU → conv to 2·z_channels. The decoder mirrors it (with one more ResBlock a
level, as LDM's) and ends GN → SiLU → conv to the image channels. Left out: LDM's 1×1 ``quant_conv`` /
``post_quant_conv`` (a linear map right after a linear conv, so it adds nothing to what can be represented).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from .attention import SelfAttention2d
from .checkpoint import load_checkpoint
from .config import DictConfig
from .distributions import DiagonalGaussian
from .layers import Downsample, ResBlock, Upsample, group_norm


@dataclass
class AutoencoderConfig(DictConfig):
    in_channels: int = 1  # image channels: 1 for MNIST, 3 for CelebA
    base_channels: int = 32  # width of the first level; level i has base_channels · channel_mult[i]
    channel_mult: tuple[int, ...] = (1, 2, 2)  # one level per entry; len − 1 halvings, so f = 2^(len − 1)
    num_res_blocks: int = 1  # ResBlocks per encoder level (the decoder has one more, as LDM's)
    z_channels: int = 4  # c, the latent channels (LDM's KL models use 3 or 4)
    attn_bottleneck: bool = False  # self-attention between the two middle ResBlocks (LDM has it; costly at f=1)

    def __post_init__(self):
        self.channel_mult = tuple(self.channel_mult)

    @property
    def f(self) -> int:
        """The downsampling factor f = H/h = 2^(len(channel_mult) − 1)."""
        return 2 ** (len(self.channel_mult) - 1)



def _middle(ch: int, attn: bool) -> nn.Sequential:
    """Res → [Attn] → Res at the lowest resolution."""
    layers = [ResBlock(ch, ch, None)]
    if attn:
        layers.append(SelfAttention2d(ch, heads=1, norm=group_norm(ch)))  # one head, as LDM's AttnBlock
    layers.append(ResBlock(ch, ch, None))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """ℰ: x (B, C, H, W) → (μ, log σ²) stacked along channels, (B, 2·z_channels, H/f, W/f)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        ch = cfg.base_channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, ch, 3, padding=1)]
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(ch, cfg.base_channels * mult, None))
                ch = cfg.base_channels * mult
            if level != len(cfg.channel_mult) - 1:
                layers.append(Downsample(ch))  # H, W halve
        layers += [_middle(ch, cfg.attn_bottleneck), group_norm(ch), nn.SiLU(),
                   nn.Conv2d(ch, 2 * cfg.z_channels, 3, padding=1)]  # → μ and log σ²
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, 2·z_channels, H/f, W/f)


class Decoder(nn.Module):
    """𝒟: z (B, z_channels, h, w) → x̃ (B, C, h·f, w·f). No output squashing (as LDM): x̃ is unbounded."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        ch = cfg.base_channels * cfg.channel_mult[-1]
        layers: list[nn.Module] = [nn.Conv2d(cfg.z_channels, ch, 3, padding=1), _middle(ch, cfg.attn_bottleneck)]
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResBlock(ch, cfg.base_channels * mult, None))
                ch = cfg.base_channels * mult
            if level != 0:
                layers.append(Upsample(ch))  # H, W double
        layers += [group_norm(ch), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.conv_out = nn.Conv2d(ch, cfg.in_channels, 3, padding=1)  # apart: it is the GAN's "last layer"

    def forward(self, z: Tensor) -> Tensor:
        return self.conv_out(self.net(z))  # (B, C, H, W)


class AutoencoderKL(nn.Module):
    """x → q(z|x) → z → x̃ (LDM §3.1). ``forward`` returns (x̃, posterior) for the training loss."""

    def __init__(self, cfg: Optional[AutoencoderConfig] = None):
        super().__init__()
        self.cfg = cfg = cfg or AutoencoderConfig()
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        # s: diffusion sees s·z. 1 until compute_scale_factor sets it; a buffer, so it is saved in state_dict
        self.register_buffer("scale_factor", torch.tensor(1.0))

    def _check(self, x: Tensor, channels: int, what: str, f: int) -> None:
        if x.ndim != 4:
            raise ValueError(f"{what} must be (B, C, H, W), got shape {tuple(x.shape)}")
        B, C, H, W = x.shape
        if C != channels:
            raise ValueError(f"{what} has {C} channels but the autoencoder was built for {channels} "
                             f"(AutoencoderConfig: in_channels={self.cfg.in_channels}, "
                             f"z_channels={self.cfg.z_channels})")
        if H % f or W % f:
            raise ValueError(f"input size {H}x{W} is not divisible by f = {f} (the encoder halves H and W "
                             f"{int(math.log2(f))} times): pad or resize the images to a multiple of {f} "
                             f"(MNIST: mnist(size=32)), or use fewer levels in channel_mult")

    def encode(self, x: Tensor) -> DiagonalGaussian:
        """q_ℰ(z|x) for images x (B, C, H, W); its mean/samples are (B, z_channels, H/f, W/f)."""
        self._check(x, self.cfg.in_channels, "x", self.cfg.f)
        return DiagonalGaussian(self.encoder(x))

    def decode(self, z: Tensor) -> Tensor:
        """x̃ = 𝒟(z): (B, z_channels, h, w) → (B, C, h·f, w·f)."""
        self._check(z, self.cfg.z_channels, "z", 1)
        return self.decoder(z)

    def forward(self, x: Tensor, sample_posterior: bool = True,
                generator: Optional[torch.Generator] = None) -> tuple[Tensor, DiagonalGaussian]:
        """(x̃, q(z|x)): decodes a sample z ~ q (training) or the mean (``sample_posterior=False``)."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()  # (B, z_channels, h, w)
        return self.decode(z), posterior

    def last_layer(self) -> Tensor:
        """The decoder's last weight: where the adaptive GAN weight compares gradients (LDM App. G Eq. 25)."""
        return self.decoder.conv_out.weight

    def encode_latents(self, x: Tensor, sample: bool = False,
                       generator: Optional[torch.Generator] = None) -> Tensor:
        """What the diffusion model sees: s·z, z the posterior mean (or a sample with ``sample=True``)."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mode()
        return z * self.scale_factor  # (B, z_channels, h, w)

    def decode_latents(self, z_scaled: Tensor) -> Tensor:
        """Back from diffusion space: x̃ = 𝒟(z / s)."""
        return self.decode(z_scaled / self.scale_factor)


@torch.no_grad()
def compute_scale_factor(model: AutoencoderKL, data: Tensor, batch_size: int = 256, sample: bool = False,
                         generator: Optional[torch.Generator] = None) -> float:
    """s = 1 / std(z) over ``data`` (N, C, H, W); sets ``model.scale_factor`` and returns s (LDM App. D.1/G).

    By default z is the posterior *mean*, the same z that :meth:`AutoencoderKL.encode_latents` gives, so the
    latents the diffusion model trains on have unit standard deviation. LDM itself uses one batch of posterior
    *samples* (``sample=True`` here): std(sample)² = var(μ) + E[σ²], and with the tiny KL weight a trained encoder
    has σ ≪ |μ|, so the two agree; on an untrained model (σ ≈ 1) they do not. The std is over every element
    of every latent (one scalar, as LDM), accumulated in float64 over the whole data set.
    """
    was_training = model.training
    model.eval()
    device = model.scale_factor.device
    n, s1, s2 = 0, 0.0, 0.0
    for i in range(0, data.shape[0], batch_size):
        posterior = model.encode(data[i:i + batch_size].to(device))
        z = (posterior.sample(generator) if sample else posterior.mode()).double()  # (b, z_channels, h, w)
        n, s1, s2 = n + z.numel(), s1 + z.sum().item(), s2 + z.pow(2).sum().item()
    # std = √(E[z²] − E[z]²), unbiased (n / (n − 1)) as torch.std
    std = math.sqrt(max(s2 / n - (s1 / n) ** 2, 0.0) * n / max(n - 1, 1))
    model.scale_factor.fill_(1.0 / std)
    model.train(was_training)
    return 1.0 / std


def load_autoencoder(path: str | Path, map_location="cpu") -> AutoencoderKL:
    """Rebuild an :class:`AutoencoderKL` from a ``train_autoencoder`` checkpoint, in eval mode."""
    ckpt = load_checkpoint(path, kind="autoencoder_kl", map_location=map_location)
    model = AutoencoderKL(AutoencoderConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()
