"""Super-resolution and inpainting with the concatenation models, and their baselines.  Notebook 08 · LDM §4.4, §4.5.

* :func:`upscale`, :func:`inpaint` — what ``python -m minildm upscale / inpaint`` run: images in [0, 1] (the npz
  convention of the command line) checked, turned into the condition c, sampled through
  :meth:`~minildm.ldm.DiffusionModel.sample` (so every sampler works), returned in [0, 1];
* :func:`paste_inpaint` — the baseline without an inpainting model: an *unconditional* latent model sampled with
  the known region replaced at every step by a draw of q(z_t | z_0) (the "replace" method of RePaint, Lugmayr et
  al. 2022, without its resampling);
* :class:`Regression`, :func:`train_regression` — the regression baseline of LDM Table 5: the SR model's very
  network (its :class:`~minildm.concat.ConcatUNet`, same widths, same input channels) fed z_t = 0 at t = 0 and
  read as ẑ_0 instead of ε, trained with L1 between 𝒟(ẑ_0 / s) and the HR image through the frozen decoder.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .autoencoder import AutoencoderKL
from .checkpoint import load_checkpoint, save_checkpoint
from .concat import ConcatUNet, resize_mask, wrap_unet
from .conditioning import AttributeEncoder
from .ldm import DiffusionModel
from .pairs import (SR_FACTOR, bicubic, half_mask, inpaint_condition, low_resolution, masked_image,
                    paste_known)
from .release import first_stage_from, first_stage_payload
from .samplers import ddim_step
from .schedule import q_sample
from .spacing import timestep_list
from .unet import UNet, UNetConfig

NULL = AttributeEncoder.NULL  # 2: an attribute not said


# ------------------------------------------------------------------------------------------ inputs, checked
def check_images(x, channels: int, size: int, what: str = "images") -> Tensor:
    """Images (N, channels, size, size) float in [0, 1] as a tensor, or a ValueError saying what is expected."""
    x = torch.as_tensor(x)
    want = f"(N, {channels}, {size}, {size}) float in [0, 1]"
    if x.ndim != 4 or tuple(x.shape[1:]) != (channels, size, size):
        raise ValueError(f"{what} must be {want}, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{what} must be {want}, got {x.dtype}; divide uint8 images by 255")
    if x.numel() and not (bool(torch.isfinite(x).all()) and 0 <= float(x.min()) and float(x.max()) <= 1):
        raise ValueError(f"{what} must be {want}, got values in {float(x.min()):.3g}..{float(x.max()):.3g}"
                         + ("; images in [−1, 1] become (x + 1) / 2" if float(x.min()) >= -1 else ""))
    return x.float()


def check_mask(mask, images: Tensor) -> Tensor:
    """A mask (N, 1, H, W) in {0, 1} (1 = to be generated) matching ``images`` (N, C, H, W), as float."""
    m = torch.as_tensor(mask)
    N, _, H, W = images.shape
    if tuple(m.shape) != (N, 1, H, W):
        raise ValueError(f"the mask must be (N, 1, H, W) = ({N}, 1, {H}, {W}) for images {tuple(images.shape)}, "
                         f"1 where the image is to be generated; got shape {tuple(m.shape)}")
    m = m.float()
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("the mask must be binary, 0 (keep) or 1 (generate), got other values such as "
                         f"{float(m[(m != 0) & (m != 1)][0]):.3g}; threshold it, e.g. (m > 0.5)")
    return m


def _concat(model: DiffusionModel, task: str) -> ConcatUNet:
    unet = model.unet
    if not isinstance(unet, ConcatUNet) or unet.task != task:
        what = {"sr": "a super-resolution model", "inpaint": "an inpainting model", "semantic": "a semantic-map model"
                }[unet.task] if isinstance(unet, ConcatUNet) else "not conditioned by concatenation on an image"
        name = {"sr": "a super-resolution model such as latent_mnist_sr",
                "inpaint": "an inpainting model such as latent_mnist_inpaint"}[task]
        raise ValueError(f"{model.name or 'this model'} is {what}; give {name}")
    return unet


# ------------------------------------------------------------------------------------------ the two tasks
def upscale(model: DiffusionModel, lr, seed: int = 0, steps: int = 50, sampler: str = "ddim", **sample_kw) -> Tensor:
    """LR images (N, C, h, w) in [0, 1] → SR images (N, C, h·k, w·k) in [0, 1], k = image_size / h."""
    unet = _concat(model, "sr")
    lr = check_images(lr, unet.condition_channels, unet.size, "the low-resolution images")
    sr = model.sample(len(lr), y=lr * 2 - 1, seed=seed, steps=steps, sampler=sampler, **sample_kw)
    return (sr.cpu() + 1) / 2


def inpaint(model: DiffusionModel, x, mask, seed: int = 0, steps: int = 50, sampler: str = "ddim",
            paste: bool = True, attrs=None, **sample_kw) -> Tensor:
    """Images (N, C, H, W) in [0, 1] and masks (N, 1, H, W) in {0, 1} (1 = to be generated) → the filled images in
    [0, 1]. ``paste`` puts the known pixels back (:func:`~minildm.pairs.paste_known`): the error outside the mask is
    then exactly 0; without it, 𝒟 redraws them too. A model told attributes (the faces' ``latent_faces_inpaint``)
    takes ``attrs`` (N, M) in {0, 1, 2 = unspecified}, in the order of its ``.unet.attributes``; None: nothing said."""
    unet = _concat(model, "inpaint")
    ae = model.first_stage
    x = check_images(x, ae.cfg.in_channels, model.image_size, "the images to inpaint")
    m = check_mask(mask, x)
    if attrs is not None and not unet.attributes:
        raise ValueError(f"{model.name or 'this model'} is not told attributes (it inpaints from the image alone); "
                         "drop attrs=")
    if unet.attributes:
        M = len(unet.attributes)
        attrs = torch.full((len(x), M), NULL) if attrs is None else torch.as_tensor(attrs)
        if tuple(attrs.shape) != (len(x), M):
            raise ValueError(f"attrs must be (N, M) = ({len(x)}, {M}), one value per image and attribute in the "
                             f"order {', '.join(unet.attributes[:3])}, …, got {tuple(attrs.shape)}")
    c = inpaint_condition(ae, x * 2 - 1, m, attrs=attrs, known_pixels=unet.known_pixels)
    y = (model.sample(len(x), y=c, seed=seed, steps=steps, sampler=sampler, **sample_kw).cpu() + 1) / 2
    return paste_known(y, x, m) if paste else y


@torch.no_grad()
def example_grid(model: DiffusionModel, x: Tensor, seed: int = 0, steps: int = 50) -> Tensor:
    """Rows of a figure for test images x (n, C, H, W) in [−1, 1], all in [−1, 1]: for SR the LR (nearest-upsampled),
    bicubic, the model's SR, the HR truth; for inpainting the right-half-masked input, the fill, the truth."""
    if _concat(model, model.unet.task).task == "sr":
        lr = low_resolution(x)
        sr = upscale(model, (lr + 1) / 2, seed=seed, steps=steps) * 2 - 1
        return torch.cat([F.interpolate(lr, scale_factor=SR_FACTOR), bicubic(lr), sr, x])
    m = half_mask(len(x), x.shape[-1])
    y = inpaint(model, (x + 1) / 2, m, seed=seed, steps=steps) * 2 - 1
    return torch.cat([masked_image(x, m), y, x])


@torch.no_grad()
def paste_inpaint(model: DiffusionModel, x: Tensor, mask: Tensor, steps: int = 50, eta: float = 0.0,
                  seed: int = 0, return_latents: bool = False):
    """The baseline: inpaint x (B, C, H, W) in [−1, 1] under m (B, 1, H, W) with an *unconditional* latent model.

    DDIM (η = ``eta``) in latent space; before every step the known cells (m↓ = 0) of z_t are replaced by a fresh
    draw of q(z_t | z_0 = s·ℰ(x)) = N(√ᾱ_t z_0, (1 − ᾱ_t) I) (DDPM Eq. 4), and at the end by z_0 itself, so the
    known latent cells come out exactly s·ℰ(x). Returns images (B, C, H, W) in [−1, 1] (and z_0)."""
    g = torch.Generator().manual_seed(seed)
    device = next(model.unet.parameters()).device
    z_known = model.first_stage.encode_latents(x.to(device))  # (B, C_z, h, w)
    m = resize_mask(mask, z_known.shape[-1]).to(device)  # (B, 1, h, w), 1 = generate
    ab = model.sched.alpha_bar.to(device)
    ts = timestep_list(model.sched.T, None, steps, "leading")
    z = torch.randn(z_known.shape, generator=g).to(device)
    B = z.shape[0]
    for i, t in enumerate(ts):
        tb = torch.full((B,), t, dtype=torch.long, device=device)
        t_prev = torch.full((B,), ts[i + 1] if i + 1 < len(ts) else -1, dtype=torch.long, device=device)
        # z_t ← m↓ ⊙ z_t + (1 − m↓) ⊙ (√ᾱ_t z_0 + √(1 − ᾱ_t) ε)
        z = m * z + (1 - m) * q_sample(z_known, tb, ab, torch.randn(z.shape, generator=g).to(device))
        noise = torch.randn(z.shape, generator=g).to(device) if eta > 0 else None
        z, _ = ddim_step(z, tb, t_prev, model.unet(z, tb), ab, eta=eta, noise=noise)
    z = m * z + (1 - m) * z_known  # z_0: the known cells exactly
    images = model.decode(z)
    return (images, z) if return_latents else images


# ------------------------------------------------------------------------------------------ regression baseline
class Regression(nn.Module):
    """x̂ = 𝒟(f_θ([0, c], t = 0) / s): the SR model's ConcatUNet read as a direct predictor of ẑ_0 (LDM Table 5)."""

    def __init__(self, net: ConcatUNet, first_stage: AutoencoderKL):
        super().__init__()
        self.net, self.first_stage = net, first_stage.eval().requires_grad_(False)

    def forward(self, c: Tensor) -> Tensor:
        """c (B, C_c, h, w) → x̂ (B, C, H, W), unclamped (the L1 loss sees the raw output)."""
        B, _, h, w = c.shape
        z0 = self.net(torch.zeros(B, self.net.latent_channels, h, w, device=c.device), 0, y=c)  # ẑ_0, not ε
        return self.first_stage.decode_latents(z0)

    @torch.no_grad()
    def predict(self, c: Tensor, batch_size: int = 256) -> Tensor:
        """x̂ in [−1, 1] for conditions c, in batches."""
        return torch.cat([self(c[i:i + batch_size]).clamp(-1, 1) for i in range(0, len(c), batch_size)])


def train_regression(unet_cfg: UNetConfig, spec: dict, train_cfg, images: Tensor, cond: Tensor,
                     first_stage: AutoencoderKL, ckpt_path=None, progress: bool = False) -> Regression:
    """Train :class:`Regression` with L1(𝒟(ẑ_0 / s), x) for ``train_cfg.steps`` AdamW steps (lr, batch size, seed
    and warm-up of the SR preset's TrainConfig); a finished run at ``ckpt_path`` just loads. images (N, C, H, W) in
    [−1, 1], cond (N, C_c, h, w)."""
    if ckpt_path is not None and Path(ckpt_path).exists():
        return load_regression(ckpt_path)
    torch.manual_seed(train_cfg.seed)
    model = Regression(wrap_unet(UNet(unet_cfg), spec)[0], first_stage)
    opt = torch.optim.AdamW(model.net.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, train_cfg.warmup)))
    g = torch.Generator().manual_seed(train_cfg.seed)
    t0, losses = time.perf_counter(), []
    for step in range(train_cfg.steps):
        idx = torch.randint(0, len(images), (train_cfg.batch_size,), generator=g)
        loss = (model(cond[idx]) - images[idx]).abs().mean()  # L1 in pixel space, through the frozen 𝒟
        if not torch.isfinite(loss):  # nothing is saved before the end, so nothing good is overwritten
            raise FloatingPointError(f"regression: non-finite L1 at step {step + 1}; lower lr ({train_cfg.lr:g})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        warm.step()
        losses.append(loss.item())
        if progress and (step + 1) % max(1, train_cfg.log_every) == 0:
            print(f"regression step {step + 1}/{train_cfg.steps}: L1 {loss.item():.4f}")
    model.history = losses
    if ckpt_path is not None:
        save_checkpoint(ckpt_path, dict(model=model.net.state_dict(), conditioning=spec,
                                        first_stage=first_stage_payload(first_stage), losses=losses,
                                        seconds=time.perf_counter() - t0), kind="regression", config=unet_cfg.to_dict())
    return model.eval()


def load_regression(path, map_location="cpu") -> Regression:
    """A :func:`train_regression` checkpoint (kind ``regression``) → :class:`Regression` in eval mode."""
    ckpt = load_checkpoint(path, kind="regression", map_location=map_location)
    net = wrap_unet(UNet(UNetConfig.from_dict(ckpt["config"])), ckpt["conditioning"])[0]
    net.load_state_dict(ckpt["model"])
    model = Regression(net, first_stage_from(ckpt["first_stage"], map_location))
    model.history = list(ckpt.get("losses", []))
    return model.eval()
