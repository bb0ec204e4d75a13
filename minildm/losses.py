"""The autoencoder's training losses: L1 + perceptual + KL + patch-GAN.  Notebook 03 · LDM §3.1, App. G.

LDM trains its first stage "with a combination of a perceptual loss and a patch-based adversarial objective"
(§3.1; taming-transformers' ``LPIPSWithDiscriminator``), App. G Eq. 25:

    L_Autoencoder = min_{ℰ,𝒟} max_ψ ( L_rec(x, 𝒟(ℰ(x))) − L_adv(𝒟(ℰ(x))) + log D_ψ(x) + L_reg(x; ℰ, 𝒟) )

=================  ===========================  ====================================================
code               paper                        meaning
=================  ===========================  ====================================================
``l1``, ``PerceptualLoss``  L_rec               |x − x̃| + LPIPS-style feature distance (Zhang et al. 2018)
``PatchDiscriminator``      D_ψ                 a grid of real/fake logits, one per image patch (Isola et al. 2017)
``hinge_d_loss``            log D_ψ(x) terms    the discriminator's hinge loss (Lim & Ye 2017)
``hinge_g_loss``            L_adv               the generator's loss −D_ψ(x̃)
``adaptive_weight``         λ                   ‖∇L_rec‖ / (‖∇L_adv‖ + δ) at 𝒟's last layer (Esser et al. 2021 Eq. 7)
kl (distributions)          L_reg               KL(q(z|x) ‖ N(0, I)), weighted ~1e-6
=================  ===========================  ====================================================

Normalisation (used by :func:`minildm.train.train_autoencoder`): our L_rec is a *per-pixel mean*, whereas LDM's is
a per-image *sum* over pixels (and its KL a per-image sum over latent dims). We divide LDM's whole objective by
D = C·H·W, so the KL term becomes ``kl_weight · KL / D`` and ``kl_weight`` means what it means in LDM's configs.
The GAN term needs no such care: λ scales it relative to ‖∇L_rec‖ whatever L_rec's normalisation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import DictConfig, env_flag
from .data import online
from .layers import group_norm


def l1(x: Tensor, x_hat: Tensor) -> Tensor:
    """Mean absolute error |x − x̃| over every pixel: scalar. L1 blurs less than L2 (Isola et al. 2017)."""
    return (x - x_hat).abs().mean()


class PerceptualLoss(nn.Module):
    """d(x, x̃) = Σ_l 1/(H_l W_l) Σ_{h,w} ‖ŷ^l_hw − ŷ^l_{0,hw}‖²  (LPIPS, Zhang et al. 2018 Eq. 1, w_l = 1). (B,).

    ``feature_net.features(x)`` returns a list of maps (B, C_l, H_l, W_l); each is unit-normalised along its
    channels (ŷ = y / ‖y‖), then the squared differences are summed over channels, averaged over space and
    summed over layers (optionally weighted by ``layer_weights``). LPIPS also *learns* a weight per channel
    w_l, fitted to human similarity judgements; we use uniform weights (their uncalibrated "baseline", which
    they find already far closer to human judgements than L2 or SSIM). The network is frozen (eval, no gradients
    to its weights), but it is differentiable in its input, so the loss trains the decoder.
    """

    def __init__(self, feature_net: nn.Module, layer_weights: Optional[Sequence[float]] = None):
        super().__init__()
        if not callable(getattr(feature_net, "features", None)):
            raise TypeError(f"{type(feature_net).__name__} has no features(x) method; the perceptual loss needs "
                            "a network whose features(x) returns a list of (B, C, H, W) feature maps "
                            "(the course's MNIST classifier, or vgg_features())")
        self.net = feature_net.eval().requires_grad_(False)
        self.layer_weights = None if layer_weights is None else list(layer_weights)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.net.eval()  # frozen: no dropout, no BatchNorm statistic updates, ever
        return self

    def forward(self, x: Tensor, x_hat: Tensor) -> Tensor:
        feats_x, feats_y = self.net.features(x), self.net.features(x_hat)
        weights = self.layer_weights or [1.0] * len(feats_x)
        if len(weights) != len(feats_x):
            raise ValueError(f"layer_weights has {len(weights)} entries but features() gave {len(feats_x)} maps")
        d = x.new_zeros(x.shape[0])
        for w, fx, fy in zip(weights, feats_x, feats_y):
            # ŷ = y / (‖y‖₂ over channels + ε)   (LPIPS' normalize_tensor, ε = 1e-10)
            fx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)  # (B, C_l, H_l, W_l)
            fy = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            # 1/(H_l W_l) Σ_{h,w} ‖ŷ_x − ŷ_x̃‖²
            d = d + w * (fx - fy).pow(2).sum(dim=1).mean(dim=(1, 2))  # (B,)
        return d


class _VGGFeatures(nn.Module):
    """LPIPS' VGG16 taps: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3. Input in [−1, 1], 1 or 3 channels."""

    def __init__(self, vgg_features: nn.Sequential):
        super().__init__()
        cuts = [0, 4, 9, 16, 23, 30]  # torchvision's vgg16().features indices after each of those ReLUs
        self.slices = nn.ModuleList(vgg_features[a:b] for a, b in zip(cuts[:-1], cuts[1:]))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))  # ImageNet
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

    def features(self, x: Tensor) -> list[Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey → RGB, (B, 3, H, W)
        # [−1, 1] → [0, 1] → ImageNet-normalised (exactly LPIPS' ScalingLayer shift/scale)
        h = ((x + 1) / 2 - self.mean) / self.std
        out = []
        for s in self.slices:
            h = s(h)
            out.append(h)
        return out


class PretrainedWeightsUnavailable(RuntimeError):
    """The pretrained weights are neither cached nor downloadable; the message says what to do."""


def vgg_features(download: bool = True) -> nn.Module:
    """An LPIPS-style frozen VGG16 feature extractor (ImageNet weights through torchvision), for PerceptualLoss.

    Never hangs offline: it uses the torch hub cache if the file is there, and downloads (~530 MB) only when
    ``download`` is true, ``MINILDM_OFFLINE`` is unset and a 3-second connection check succeeds. Otherwise it raises
    :class:`PretrainedWeightsUnavailable`; the course's own MNIST classifier features are the fallback.
    """
    from torchvision.models import VGG16_Weights, vgg16

    weights = VGG16_Weights.IMAGENET1K_V1
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    offline = env_flag("MINILDM_OFFLINE")
    if not os.path.exists(cached) and not (download and not offline and online(("download.pytorch.org", 443))):
        raise PretrainedWeightsUnavailable(
            f"VGG16's ImageNet weights (LPIPS' backbone) are not cached at {cached} and cannot be downloaded "
            f"(offline, MINILDM_OFFLINE set, or download=False). Either copy {weights.url} to that path, or use "
            "the course's own MNIST classifier as the feature network: PerceptualLoss(classifier), with "
            "minildm.classifier (its features(x) gives the maps) — the fallback the notebooks use offline.")
    net = _VGGFeatures(vgg16(weights=weights, progress=False).features)
    return net.eval().requires_grad_(False)


class PatchDiscriminator(nn.Module):
    """D_ψ: PatchGAN (Isola et al. 2017; taming's NLayerDiscriminator). x (B, C, H, W) → logits (B, 1, h, w).

    Each output logit judges one receptive-field patch of the input as real (> 0) or fake (< 0), so the
    discriminator rewards local texture and sharpness, not global layout (L1 and the perceptual loss do that).
    Layers: 4×4 conv stride 2 + LeakyReLU(0.2), then ``n_layers − 1`` more stride-2 convs with norm, one stride-1
    conv with norm, a stride-1 conv to 1 channel. For 32×32 and n_layers=2: 16 → 8 → 7 → 6, a 6×6 grid.
    Norm: GroupNorm, not taming's BatchNorm. BatchNorm's statistics would come from an all-real or an all-fake
    batch (a shortcut the discriminator can exploit) and differ between train and eval; GroupNorm is per sample.
    """

    def __init__(self, in_channels: int = 1, base: int = 32, n_layers: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        ch = base
        for n in range(1, n_layers + 1):
            out = base * min(2 ** n, 8)
            stride = 2 if n < n_layers else 1  # the last hidden conv keeps the size (minus 1), as taming's
            layers += [nn.Conv2d(ch, out, 4, stride=stride, padding=1, bias=False), group_norm(out), nn.LeakyReLU(0.2)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))  # → one logit per patch
        self.net = nn.Sequential(*layers)
        for m in self.modules():  # DCGAN / taming initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, 1, h, w)


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """½ (E[relu(1 − D(x))] + E[relu(1 + D(x̃))]): zero once real ≥ 1 and fake ≤ −1 everywhere. Scalar."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: Tensor) -> Tensor:
    """L_adv = −E[D(x̃)]: the decoder is rewarded for patches the discriminator calls real. Scalar."""
    return -logits_fake.mean()


def adaptive_weight(rec_loss: Tensor, g_loss: Tensor, last_layer: Tensor, max_weight: float = 1e4,
                    eps: float = 1e-4) -> Tensor:
    """λ = ‖∇_{𝒟_L} L_rec‖ / (‖∇_{𝒟_L} L_adv‖ + δ), clamped to [0, max_weight], detached (LDM App. G Eq. 25).

    𝒟_L is the decoder's last layer (``last_layer``, a weight tensor in both graphs). λ·L_adv then pushes that
    layer exactly as hard as the reconstruction loss does, whatever the two losses' scales: the GAN never
    swamps (or vanishes next to) the reconstruction. Both graphs are kept (``retain_graph``) for the backward.
    """
    rec_grad, = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)
    g_grad, = torch.autograd.grad(g_loss, last_layer, retain_graph=True)
    # λ = ‖∇L_rec‖ / (‖∇L_adv‖ + δ)
    lam = rec_grad.norm() / (g_grad.norm() + eps)
    return lam.clamp(0.0, max_weight).detach()


@dataclass
class AutoencoderLossConfig(DictConfig):
    """Weights of L = l1·|x − x̃| + perceptual·d(x, x̃) + kl·KL/D + λ·disc·L_adv (see the module doc)."""

    l1_weight: float = 1.0  # per-pixel L1 reconstruction
    perceptual_weight: float = 1.0  # PerceptualLoss; 0 disables it (then no feature network is needed)
    # LDM's tiny KL weight: just enough to keep z near N(0, I) in scale, not enough to blur reconstructions
    # (a VAE's weight of 1 would trade detail for a smooth prior; the diffusion model is the prior here)
    kl_weight: float = 1e-6
    disc_weight: float = 0.5  # multiplies λ·L_adv (LDM's configs use 0.5)
    disc_start: int = 0  # step at which the GAN term joins 𝒟's loss (LDM: after 50k steps)
    adaptive: bool = True  # λ from gradient norms (Eq. 25); False: λ = 1
    max_weight: float = 1e4  # λ's clamp (taming's 1e4)
    disc_lead: int = 0  # D_ψ trains alone for this many steps before disc_start (0: both start at disc_start)
    disc_lr_scale: float = 1.0  # D_ψ's learning rate over 𝒟's

