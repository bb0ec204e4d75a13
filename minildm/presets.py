"""Presets: every size the course trains at, per run mode, in one place, and nothing else.  docs/DESIGN.md "Run modes".

A preset bundles the configs of one training job (model, optimisation, schedule, data budget). Notebooks and
``python -m minildm train PRESET`` both build from here, so a notebook and the command line train the same thing.
Each preset is a function of the run mode: ``pixel_mnist("cpu")``, or ``pixel_mnist()`` for the current mode.
What is *done* with a preset (data → first stage → latents → ε_θ) is :mod:`minildm.recipes`.

cpu-mode sizes were chosen by measurement on a 2-core CPU (see notebooks/RUNS.md and benchmarks/RESULTS.md);
gpu-mode sizes follow DDPM/LDM's recipes scaled to MNIST, and their costs are expectations, not measurements.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .autoencoder import AutoencoderConfig
from .celeba import FACE_SIZE
from .checkpoint import DIFFUSION_KINDS
from .config import Mode, get_mode, max_steps, pick
from .layout import CANVAS_SIZE, MAX_OBJECTS, NUM_CLASSES
from .losses import AutoencoderLossConfig
from .toyfaces import RENDERED_ATTRIBUTES
from .train import TrainConfig
from .unet import UNet, UNetConfig


def capped(preset_fn):
    """A preset function whose training steps obey ``MINILDM_MAX_STEPS`` (:func:`minildm.config.max_steps`), the one
    override of a size: a GAN that starts halfway starts halfway through the capped run."""
    def build(*args, **kwargs):
        preset = preset_fn(*args, **kwargs)
        cap = max_steps()
        if cap is None or preset.train.steps <= cap:
            return preset
        changes = dict(train=dataclasses.replace(preset.train, steps=cap))
        if isinstance(preset, AutoencoderPreset):
            changes["loss"] = dataclasses.replace(preset.loss, disc_start=min(preset.loss.disc_start, cap // 2))
        return dataclasses.replace(preset, **changes)

    build.__name__, build.__qualname__, build.__doc__ = preset_fn.__name__, preset_fn.__qualname__, preset_fn.__doc__
    build.__wrapped__ = preset_fn
    return build


@dataclass
class DiffusionPreset:
    """One diffusion training job: what to build, how long to train, how to sample."""

    name: str                     # the preset's name, also the checkpoint's file stem
    mode: str                     # the run mode it was built for
    unet: UNetConfig              # ε_θ's architecture
    train: TrainConfig            # optimisation
    schedule: str = "linear"      # β schedule (minildm.schedule.SCHEDULES)
    T: int = 1000                 # diffusion steps
    image_size: int = 32          # MNIST 28×28 zero-padded to 32×32 (a UNet halves it cleanly)
    n_train: int | None = None    # training images (None: all 60,000)
    n_samples: int = 64           # samples drawn for grids
    ddim_steps: int = 50          # DDIM steps for quick samples
    clip_x0: float | None = 1.0   # clamp x̂_0 to [−1, 1] while sampling pixels (None for latents)
    f: int = 1                    # 1: ε_θ on pixels; 2, 4, 8: on s·ℰ(x) of autoencoder_mnist(f=f) (notebook 04)
    kind: str = "pixel_mnist"     # the checkpoint's kind (minildm.checkpoint.DIFFUSION_KINDS)
    guidance: float = 1.0         # the classifier-free guidance scale `sample` and `demo` use by default
    conditioning: dict | None = None  # τ_θ's spec (minildm.conditioning.encoder_from_spec); None: unconditional

    def __post_init__(self):
        if self.kind not in DIFFUSION_KINDS:
            raise ValueError(f"{self.name}: kind must be one of {DIFFUSION_KINDS} (got {self.kind!r})")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["unet"], d["train"] = self.unet.to_dict(), self.train.to_dict()
        return d


@capped
def pixel_mnist(mode: Mode | None = None) -> DiffusionPreset:
    """Notebook 02: DDPM in pixel space on MNIST 32×32 (L_DM, LDM Eq. 1)."""
    mode = mode or get_mode()
    unet = pick(
        smoke=UNetConfig(in_channels=1, base_channels=8, channel_mult=(1, 2), attn_levels=(1,), heads=2),
        # 0.69 M parameters; ~200 training images/s on 2 cores (benchmarks/RESULTS.md)
        cpu=UNetConfig(in_channels=1, base_channels=16, channel_mult=(1, 2, 4), attn_levels=(2,), heads=4),
        gpu=UNetConfig(in_channels=1, base_channels=64, channel_mult=(1, 2, 2), num_res_blocks=2, attn_levels=(2,),
                       heads=4, dropout=0.1),
        mode=mode)
    train = pick(
        smoke=TrainConfig(steps=30, batch_size=16, lr=1e-3, warmup=5, ema_decay=0.9, log_every=10, ckpt_every=30),
        cpu=TrainConfig(steps=3000, batch_size=64, lr=2e-3, warmup=200, ema_decay=0.995, log_every=100,
                        sample_every=1000, ckpt_every=250),
        gpu=TrainConfig(steps=20000, batch_size=128, lr=2e-4, warmup=500, ema_decay=0.9995, log_every=200,
                        sample_every=5000, ckpt_every=1000),
        mode=mode)
    return DiffusionPreset(name="pixel_mnist", mode=mode, unet=unet, train=train,
                           n_train=pick(smoke=512, cpu=None, gpu=None, mode=mode),
                           n_samples=pick(smoke=16, cpu=64, gpu=64, mode=mode),
                           ddim_steps=pick(smoke=10, cpu=50, gpu=50, mode=mode))


@capped
def latent_mnist(mode: Mode | None = None, f: int = 4, matched_params: bool = False) -> DiffusionPreset:
    """Notebook 04: latent diffusion on MNIST (L_LDM, LDM Eq. 2): ε_θ on z = s·ℰ(x), (4, 32/f, 32/f).

    The UNet is pixel_mnist's, *matched* (same widths, depths and attention; only its input has the latent's
    4 channels), so the comparison of notebook 04 and ``benchmarks/pixel_vs_latent.py`` isolates what the
    smaller grid buys. At f = 8 the 4×4 latent allows one level fewer, which leaves 0.18 M parameters against
    0.69 M; ``matched_params=True`` widens its base width instead, to the parameter count nearest f = 4's (cpu: 32,
    0.70 M), so that notebook 04's f-study compares networks of one size (issue 13: the unmatched f = 8 had a
    quarter of the others' capacity).
    """
    mode = mode or get_mode()
    if f not in (2, 4, 8):
        raise ValueError(f"f must be 2, 4 or 8 (the autoencoders of notebook 03; f = 1 is pixel_mnist), got {f}")
    pixel = pixel_mnist(mode)
    mult, attn = pixel.unet.channel_mult, pixel.unet.attn_levels
    unet = dataclasses.replace(pixel.unet, in_channels=4, out_channels=None)
    if f == 8 and len(mult) > 2:
        unet = dataclasses.replace(unet, channel_mult=mult[:2], attn_levels=(1,))
        if matched_params:
            unet = _matching_width(unet, target=unet_parameters(dataclasses.replace(unet, channel_mult=mult,
                                                                                     attn_levels=attn)))
    train = pick(
        smoke=dataclasses.replace(pixel.train),
        cpu=TrainConfig(steps=LATENT_CPU_STEPS, batch_size=128, lr=2e-3, warmup=200, ema_decay=0.998, log_every=100,
                        sample_every=1000, ckpt_every=500),
        gpu=dataclasses.replace(pixel.train),
        mode=mode)
    name = "latent_mnist" if f == 4 else f"latent_mnist_f{f}"
    return DiffusionPreset(name=name, mode=mode, unet=unet, train=train, n_train=pixel.n_train,
                           n_samples=pixel.n_samples, ddim_steps=pixel.ddim_steps, clip_x0=None, f=f,
                           kind="latent_mnist")


def unet_parameters(cfg: UNetConfig) -> int:
    """The parameter count of ``UNet(cfg)``, built on the meta device (no memory, no initialisation)."""
    with torch.device("meta"):
        return sum(p.numel() for p in UNet(cfg).parameters())


def _matching_width(cfg: UNetConfig, target: int) -> UNetConfig:
    """``cfg`` with the base width (a multiple of 8, from today's up to 4×) whose parameter count is nearest ``target``."""
    widths = range(cfg.base_channels, 4 * cfg.base_channels + 1, 8)
    best = min(widths, key=lambda w: abs(unet_parameters(dataclasses.replace(cfg, base_channels=w)) - target))
    return dataclasses.replace(cfg, base_channels=best)


LATENT_CPU_STEPS = 20000
CONTEXT_DIM = 64  # width of τ_θ's tokens, the keys/values of the UNet's cross-attention (notebook 05)


@capped
def latent_mnist_class(mode: Mode | None = None) -> DiffusionPreset:
    """Notebook 05: class-conditional latent diffusion, y → τ_θ(y) (one token) → cross-attention (LDM §3.3).

    latent_mnist's UNet with its attention blocks turned into SpatialTransformers (self- + cross-attention), a
    :class:`~minildm.conditioning.ClassEncoder` trained jointly, and condition dropout (p_uncond = 0.1) so that
    the same network is also unconditional and can be sampled with classifier-free guidance. Its default scale,
    2, was chosen by :func:`minildm.evaluate.pick_guidance` for the cpu model (8,000 steps, 2026-12-01;
    ``scripts/measure_shipped.py``: 50 ancestral steps, n = 2000, the judge): s = 1 / 1.5 / 2 / 3 drew the named
    digit 92.5 / 98.0 / 99.5 / 99.9% of the time at FD 2.73 / 2.11 / 2.61 / 3.72× the real floor; s = 2 is the most
    varied within each class of the scales at ≥ 99%.
    """
    base = latent_mnist(mode)
    unet = dataclasses.replace(base.unet, context_dim=CONTEXT_DIM)
    train = dataclasses.replace(base.train, p_uncond=0.1,
                                steps=pick(smoke=base.train.steps, cpu=8000, gpu=base.train.steps, mode=base.mode))
    return dataclasses.replace(base, name="latent_mnist_class", unet=unet, train=train, guidance=2.0,
                               conditioning=dict(type="class", num_classes=10, dim=CONTEXT_DIM))


@capped
def latent_mnist_text(mode: Mode | None = None) -> DiffusionPreset:
    """Notebook 05: text-conditional latent diffusion on captions such as "a thick slanted seven" (LDM §3.3, §4.3).

    latent_mnist_class with τ_θ a small :class:`~minildm.conditioning.TextEncoder` (2 layers) over the words of
    :func:`minildm.captions.captions_for`; the tokenizer is built from the training captions by
    :func:`minildm.recipes.text_conditions` and stored in the checkpoint's conditioning spec. Its default scale, 1.5,
    was chosen by :func:`minildm.evaluate.pick_guidance` for the cpu model (4,000 steps, 2026-12-01;
    ``scripts/measure_shipped.py``, n = 2000, the judge): s = 1 / 1.5 / 2 / 3 drew the named digit 96.6 / 99.4 / 100
    / 100% of the time at FD 2.50 / 4.56 / 7.34 / 11.9× the real floor and within-class diversity 2.9 / 3.5 / 5.0 /
    7.3× real: past s = 1.5 the samples of each digit grow alike fast.
    """
    base = latent_mnist_class(mode)
    # cross-attention at every level (8×8, 4×4, 2×2 at f = 4), not only the lowest: per-word attention maps need
    # queries on a grid finer than 2×2 (notebook 05, §8); the class model's single token needs no map
    unet = dataclasses.replace(base.unet, attn_levels=tuple(range(len(base.unet.channel_mult))))
    # attention at 8×8 makes a step ~2.5× dearer than the class model's on 2 CPU cores: half the steps
    train = dataclasses.replace(base.train, steps=pick(smoke=base.train.steps, cpu=4000, gpu=base.train.steps,
                                                       mode=base.mode))
    return dataclasses.replace(base, name="latent_mnist_text", unet=unet, train=train, guidance=1.5,
                               conditioning=dict(type="text", dim=CONTEXT_DIM, depth=2, heads=4))


@dataclass
class AutoencoderPreset:
    """One first-stage training job (notebook 03): the autoencoder, its losses, and the discriminator's size."""

    name: str                      # also the checkpoint's file stem
    mode: str                      # the run mode it was built for
    ae: AutoencoderConfig          # ℰ and 𝒟
    loss: AutoencoderLossConfig    # L1 + perceptual + KL + GAN weights (LDM App. G, Eq. 25)
    train: TrainConfig             # optimisation (both optimisers)
    disc_base: int = 32            # PatchGAN width (0 = no discriminator)
    disc_layers: int = 2           # PatchGAN depth: 2 → a 6×6 grid of patch logits on 32×32 input
    image_size: int = 32
    n_train: int | None = None     # training images (None: all 60,000)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["ae"], d["loss"], d["train"] = self.ae.to_dict(), self.loss.to_dict(), self.train.to_dict()
        return d


AE_VARIANTS = ("l1", "l1+perceptual", "full")  # the loss ablation of notebook 03, one term added at a time


def gan_schedule(steps: int) -> tuple[int, int]:
    """When the patch-GAN joins a first-stage run of ``steps`` steps: ``(disc_start, disc_lead)``.

    L_adv joins the decoder's loss halfway (taming's recipe, on a budget); a tenth of the run before that the
    learning rate drops ×0.1 (``TrainConfig.lr_drop_at``) and D_ψ starts training (``disc_lead``), at its own,
    undropped lr. Without the drop the decoder was still improving fast at a constant lr when the GAN joined, D_ψ
    stayed at chance (hinge loss 1.00) and λ climbed to ~550: notebook 03 lost 5 dB of PSNR to an idle
    discriminator (benchmarks/RESULTS.md, "Why notebook 03's patch-GAN discriminator was idle").
    """
    lead = max(1, steps // 10)
    return steps // 2, lead


@capped
def autoencoder_mnist(mode: Mode | None = None, f: int = 4, variant: str = "full", short: bool = False) -> AutoencoderPreset:
    """Notebook 03: the KL autoencoder for MNIST 32×32 at downsampling factor ``f`` (2, 4 or 8).

    ``variant`` picks the loss for the ablation: ``l1`` (pixels only), ``l1+perceptual``, or ``full`` (+ patch-GAN);
    ``vae`` is ``l1+perceptual`` with a VAE-strength KL weight of 1 instead of LDM's 1e-6, to show why LDM's is tiny.
    ``short`` is the budget of the ablation and f-study runs (all at the same budget, so they compare fairly);
    the main model (f=4, full, not short) is the one notebook 04 builds on.
    """
    mode = mode or get_mode()
    if f not in (2, 4, 8):
        raise ValueError(f"f must be 2, 4 or 8 for 32×32 MNIST (got {f})")
    if variant not in AE_VARIANTS + ("vae",):
        raise ValueError(f"variant must be one of {AE_VARIANTS + ('vae',)} (got {variant!r})")
    levels = {2: 2, 4: 3, 8: 4}[f]  # f = 2^(levels − 1)
    ae = AutoencoderConfig(in_channels=1, base_channels=pick(smoke=8, cpu=24, gpu=64, mode=mode),
                           channel_mult=(1, 2, 2, 4)[:levels], num_res_blocks=1, z_channels=4)
    steps = pick(smoke=12, cpu=300 if short else 1000, gpu=3000 if short else 10000, mode=mode)
    disc_start, lead = gan_schedule(steps)
    train = TrainConfig(steps=steps, batch_size=pick(smoke=16, cpu=64, gpu=128, mode=mode), lr=pick(
        smoke=1e-3, cpu=1e-3, gpu=4.5e-4, mode=mode), warmup=pick(smoke=2, cpu=50, gpu=200, mode=mode),
        lr_drop_at=disc_start - lead,  # every variant, so the loss ablation stays an ablation
        ema_decay=0.999, grad_clip=1.0, log_every=pick(smoke=4, cpu=50, gpu=200, mode=mode), ckpt_every=200, seed=0)
    loss = AutoencoderLossConfig(
        l1_weight=1.0,
        perceptual_weight=0.0 if variant == "l1" else 1.0,
        kl_weight=1.0 if variant == "vae" else 1e-6,  # LDM's 1e-6 only keeps z from drifting in scale (notebook 03, §2)
        disc_weight=0.5, disc_start=disc_start, disc_lead=lead)
    name = f"autoencoder_mnist_f{f}" + ("" if variant == "full" else "_" + variant.replace("+", "_")) + ("_short" if short else "")
    return AutoencoderPreset(name=name, mode=mode, ae=ae, loss=loss, train=train,
                             disc_base=0 if variant != "full" else pick(smoke=8, cpu=32, gpu=64, mode=mode),
                             n_train=pick(smoke=256, cpu=None, gpu=None, mode=mode))


# ------------------------------------------------------------------------------ faces (notebook 06)
def toy_faces_count(mode: Mode | None = None) -> int:
    """How many toy faces to write (80/10/10 train/valid/test). ~0.9 s per 1,000 to write, ~0.8 s to decode."""
    return pick(smoke=400, cpu=20000, gpu=20000, mode=mode)


@dataclass
class FaceClassifierPreset:
    """The attribute classifier's training budget (notebook 06): the judge of face samples and the face
    autoencoder's perceptual features (:func:`minildm.face_classifier.train_attribute_classifier`)."""

    mode: str
    steps: int
    batch_size: int


CLASSIFIER_CPU_STEPS = 400  # 161 s on one core (~1.5 min on 2), 98.4% mean test accuracy on the 20,000 toy faces


def face_classifier(mode: Mode | None = None) -> FaceClassifierPreset:
    """Notebook 06: the attribute classifier's steps and batch size per run mode."""
    mode = mode or get_mode()
    steps = pick(smoke=10, cpu=CLASSIFIER_CPU_STEPS, gpu=3000, mode=mode)
    return FaceClassifierPreset(mode=mode, steps=min(steps, max_steps() or steps),
                                batch_size=pick(smoke=16, cpu=64, gpu=128, mode=mode))



@capped
def autoencoder_faces(mode: Mode | None = None) -> AutoencoderPreset:
    """Notebook 06: the RGB KL autoencoder for 64×64 faces, f = 4 → z (3, 16, 16) (LDM's KL-f4 has c = 3 too).

    notebook 03's recipe (L1 + perceptual + KL 1e-6 + patch-GAN from halfway), with the perceptual features of
    the course's attribute classifier (:mod:`minildm.face_classifier`) instead of the MNIST classifier's.
    cpu budget: ~7 min on 2 cores (AE_FACES_CPU_STEPS, measured step times beside it).
    """
    mode = mode or get_mode()
    ae = AutoencoderConfig(in_channels=3, base_channels=pick(smoke=8, cpu=AE_FACES_CPU_WIDTH, gpu=64, mode=mode),
                           channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=3)
    steps = pick(smoke=12, cpu=AE_FACES_CPU_STEPS, gpu=20000, mode=mode)
    disc_start, lead = gan_schedule(steps)
    train = TrainConfig(steps=steps, batch_size=pick(smoke=8, cpu=AE_FACES_CPU_BATCH, gpu=64, mode=mode),
                        lr=pick(smoke=1e-3, cpu=1e-3, gpu=4.5e-4, mode=mode),
                        warmup=pick(smoke=2, cpu=50, gpu=500, mode=mode), ema_decay=0.999, grad_clip=1.0,
                        lr_drop_at=disc_start - lead,
                        log_every=pick(smoke=4, cpu=50, gpu=200, mode=mode), ckpt_every=pick(smoke=12, cpu=250,
                                                                                             gpu=1000, mode=mode))
    loss = AutoencoderLossConfig(l1_weight=1.0, perceptual_weight=1.0, kl_weight=1e-6, disc_weight=0.5,
                                 disc_start=disc_start, disc_lead=lead)
    # PatchGAN with 2 stride-2 layers: 64 → 32 → 16 → 15 → 14, a 14×14 grid of patch logits
    return AutoencoderPreset(name="autoencoder_faces", mode=mode, ae=ae, loss=loss, train=train,
                             disc_base=pick(smoke=8, cpu=32, gpu=64, mode=mode), disc_layers=2,
                             image_size=FACE_SIZE, n_train=pick(smoke=256, cpu=5000, gpu=None, mode=mode))


# cpu budgets, from step times measured on one core of the 2-core machine (÷ 1.8 for two cores, the ratio measured on
# autoencoder_mnist): the autoencoder at width 24, batch 16, 0.76 s/step without the GAN, 1.06 with it → ~0.5 s/step
# on 2 cores, 800 steps ≈ 7 min (width 24 beat 16 and 32 in PSNR at equal time); the LDM at batch 64, 0.74 s/step →
# ~0.41 on 2 cores, 1,800 steps ≈ 12 min (measured by the real run: 469 s for the autoencoder, 959 s for the LDM,
# 0.53 s/step on 2 cores).
AE_FACES_CPU_WIDTH, AE_FACES_CPU_BATCH, AE_FACES_CPU_STEPS = 24, 16, 800
LATENT_FACES_CPU_STEPS = 1800


def cross_attention_unet(in_channels: int, mode: Mode) -> UNetConfig:
    """The UNet of the attribute faces and the layouts: cross-attention to τ_θ(y) at the two finest levels (where
    small regions and boxes are resolvable) and the middle, self-attention at the second level only in cpu mode."""
    return pick(
        smoke=UNetConfig(in_channels=in_channels, base_channels=8, channel_mult=(1, 2), attn_levels=(0, 1), heads=2,
                         context_dim=CONTEXT_DIM, self_attn_levels=(1,)),
        cpu=UNetConfig(in_channels=in_channels, base_channels=32, channel_mult=(1, 2, 2), attn_levels=(0, 1),
                       heads=4, context_dim=CONTEXT_DIM, self_attn_levels=(1,)),
        gpu=UNetConfig(in_channels=in_channels, base_channels=128, channel_mult=(1, 2, 2), num_res_blocks=2,
                       attn_levels=(0, 1), heads=8, context_dim=CONTEXT_DIM, dropout=0.1),
        mode=mode)


@capped
def latent_faces(mode: Mode | None = None, attributes=None) -> DiffusionPreset:
    """Notebook 06: attribute-conditional latent diffusion on 64×64 faces: ε_θ(z_t, t, τ_θ(a)) on z (3, 16, 16).

    τ_θ is an :class:`~minildm.conditioning.AttributeEncoder`: one token per attribute of ``attributes`` (default
    :data:`minildm.faces.FACE_ATTRIBUTES`, the 16 that the toy faces draw, all CelebA attributes), read by
    cross-attention at 16×16 and 8×8 (and the 4×4 middle), so each attribute token gets an attention map fine
    enough to show where it looks. In cpu mode the 16×16 blocks have no self-attention (``self_attn_levels``):
    (16·16)² per head made a step 1.9× dearer, while cross-attention to 16 tokens costs 16·16·16.
    Condition dropout p_uncond = 0.1 for classifier-free guidance, and each attribute alone → ∅ with
    p_unspecified = 0.05, so that a request may leave attributes unspecified. The guidance default is 2: on the
    cpu model (notebook 06, §5, 200 toy faces) s = 1 / 2 / 4 carried 86.1 / 92.7 / 95.4% of the requested values.
    """
    mode = mode or get_mode()
    names = list(attributes or RENDERED_ATTRIBUTES)
    # 1.48 M parameters, 0.74 s/step at batch 64 on one core; the 1,800 steps took 959 s on 2 cores
    unet = cross_attention_unet(in_channels=3, mode=mode)
    train = pick(
        smoke=TrainConfig(steps=20, batch_size=16, lr=1e-3, warmup=5, ema_decay=0.9, log_every=10, ckpt_every=20,
                          p_uncond=0.1, p_unspecified=0.05),
        cpu=TrainConfig(steps=LATENT_FACES_CPU_STEPS, batch_size=64, lr=1e-3, warmup=200, ema_decay=0.998,
                        log_every=100, sample_every=1000, ckpt_every=500, p_uncond=0.1, p_unspecified=0.05),
        gpu=TrainConfig(steps=40000, batch_size=128, lr=2e-4, warmup=1000, ema_decay=0.9995, log_every=200,
                        sample_every=5000, ckpt_every=2000, p_uncond=0.1, p_unspecified=0.05),
        mode=mode)
    return DiffusionPreset(name="latent_faces", mode=mode, unet=unet, train=train, image_size=FACE_SIZE,
                           n_samples=pick(smoke=8, cpu=64, gpu=64, mode=mode), ddim_steps=pick(smoke=10, cpu=50,
                                                                                              gpu=50, mode=mode),
                           clip_x0=None, f=4, kind="latent_faces", guidance=2.0,
                           conditioning=dict(type="attributes", names=names, dim=CONTEXT_DIM))


# ------------------------------------------------------------------------------ layouts (notebook 09)
# cpu budget: a step at batch 64 measured 1.19–1.31 s on one thread of the 2-core machine while another job held
# both cores (2026-12-02; latent_faces' UNet of the same widths took 0.74 s/step on an idle core), so 3,000 steps
# are ~60 min contended, ~40 min on an idle core
LAYOUT_CPU_STEPS = 3000
# the UNet's coordinate channels, γ(x, y) with F = 4 (periods down to ¼ of the canvas, 4 latent pixels at 16 × 16):
# the first model, without them, drew 54% of its boxes as the requested digit and left 28% of its ink outside every
# box (benchmarks/RESULTS.md), its queries knowing their position only through the convolutions' zero padding
LAYOUT_COORD_FREQS = 4


@capped
def latent_mnist_layout(mode: Mode | None = None) -> DiffusionPreset:
    """Notebook 09: layout-to-image (LDM §4.3.1): digits placed by bounding-box tokens through cross-attention.

    ε_θ on z = s·ℰ(x) of 64 × 64 canvases (:mod:`minildm.layout`), (4, 16, 16) through notebook 03's f = 4
    autoencoder, unchanged: it is fully convolutional, and its scale factor still applies (std(s·z) over 500 test
    canvases measured 1.04). τ_θ is a :class:`~minildm.conditioning.LayoutEncoder`: ∅ + one token per object (class
    + Fourier features of its box), empty slots masked. Boxes of 20–36 px are 5–9 latent pixels at 16 × 16 and 2.5–4.5
    at 8 × 8, so cross-attention sits at those two levels (and the 4 × 4 middle); in cpu mode the 16 × 16 blocks have
    no self-attention, as latent_faces' (the same UNet, 1.49 M parameters with τ_θ), with γ(x, y) of every latent
    pixel concatenated to z_t (``coord_freqs``, 18 channels) so that a query knows where it is. Condition dropout
    p_uncond = 0.1 for classifier-free guidance; the preset's scale 2 is the class model's, and the shipped weights
    store the scale ``scripts/measure_layout.py`` chose.
    """
    mode = mode or get_mode()
    # latent_faces' UNet, on 4 latent channels, with γ(x, y) of each latent pixel beside them
    unet = dataclasses.replace(cross_attention_unet(in_channels=4, mode=mode), coord_freqs=LAYOUT_COORD_FREQS)
    train = pick(
        smoke=TrainConfig(steps=30, batch_size=16, lr=1e-3, warmup=5, ema_decay=0.9, log_every=10, ckpt_every=30,
                          p_uncond=0.1),
        cpu=TrainConfig(steps=LAYOUT_CPU_STEPS, batch_size=64, lr=1e-3, warmup=200, ema_decay=0.998, log_every=100,
                        sample_every=1000, ckpt_every=250, p_uncond=0.1),
        gpu=TrainConfig(steps=40000, batch_size=128, lr=2e-4, warmup=1000, ema_decay=0.9995, log_every=200,
                        sample_every=5000, ckpt_every=2000, p_uncond=0.1),
        mode=mode)
    return DiffusionPreset(name="latent_mnist_layout", mode=mode, unet=unet, train=train, image_size=CANVAS_SIZE,
                           n_train=pick(smoke=256, cpu=20000, gpu=60000, mode=mode),
                           n_samples=pick(smoke=8, cpu=64, gpu=64, mode=mode),
                           ddim_steps=pick(smoke=10, cpu=50, gpu=50, mode=mode), clip_x0=None, f=4,
                           kind="latent_mnist", guidance=2.0,
                           conditioning=dict(type="layout", num_classes=NUM_CLASSES, dim=CONTEXT_DIM,
                                             max_objects=MAX_OBJECTS, num_freqs=8))


# ------------------------------------------------------------------------------ concatenation (notebook 08)
# cpu budget: a step at batch 128 (forward, backward, AdamW; EMA) measured 0.11–0.13 s on one thread of the 2-core
# machine beside another job, 0.2–0.35 s beside three (2026-12-02): 12,000 steps are 25–60 min. The first runs
# (7,000 and 6,500 steps, constant lr) ended with their losses still falling and missed the SR and inpainting
# targets; these run 1.7× longer and drop the lr ×0.1 for the last sixth (the autoencoders' recipe, notebook 03)
# inpainting then ran 2× longer (2026-12-03: 24,000 steps, the drop at 20,000): 83.5% → 86.1% of half-masked digits
# read right at s = 2 on test seed 0, FD 2.53× → 1.71× the floor. 2026-12-04: both run longer again, the drop for
# the last sixth: SR 3× (36,000 steps, 4,167 s on one thread beside other jobs; 96.3% → 96.9% on seed 1 at the s
# chosen on seed 0, now 3), inpainting 2× (48,000 steps, 5,209 s; 88.5% → 90.4% on seed 1 at s = 2)
SR_CPU_STEPS, CONCAT_CPU_LR_DROP_AT = 36000, 30000
INPAINT_CPU_STEPS, INPAINT_CPU_LR_DROP_AT = 48000, 40000
SR_NULL = -2.0  # latent_mnist_sr's ∅: a constant plane outside the images' [−1, 1]


def _concat_preset(mode, name: str, task: str, condition_channels: int, steps: int,
                   guidance: float = 1.0, lr_drop_at: int = CONCAT_CPU_LR_DROP_AT) -> DiffusionPreset:
    """latent_mnist's UNet, its first conv widened to [z_t, c] (4 + C_c channels), its last still giving ε (4)."""
    base = latent_mnist(mode)
    unet = dataclasses.replace(base.unet, in_channels=4 + condition_channels, out_channels=4)
    train = pick(smoke=base.train, cpu=dataclasses.replace(base.train, steps=steps, lr_drop_at=lr_drop_at),
                 gpu=base.train, mode=base.mode)
    return dataclasses.replace(base, name=name, unet=unet, train=train, guidance=guidance,
                               conditioning=dict(type="concat", task=task, latent_channels=4,
                                                 condition_channels=condition_channels, size=32 // base.f))


@capped
def latent_mnist_sr(mode: Mode | None = None) -> DiffusionPreset:
    """Notebook 08: ×4 super-resolution, MNIST 8×8 → 32×32 (LDM §4.4): ε_θ([z_t, LR], t) on the f = 4 latent (4, 8, 8).

    The LR image (the 4 × 4 average pool of the digit, :func:`minildm.pairs.low_resolution`) is already on the
    8 × 8 latent grid, so it is concatenated as it is, as LDM's SR model does: in_channels 4 + 1. Condition dropout
    p_uncond = 0.1 to ∅ = a plane of :data:`SR_NULL` (beyond ±1, never an LR digit; :mod:`minildm.concat`), which
    LDM's SR model does not have: at the same budget it changed nothing unguided (95.7% against the first model's
    95.6% read right, test seed 0) and guidance (s = 2 for the 12,000-step model, s = 3 for the 36,000-step one,
    each chosen on seed 0) sharpens the digit the LR image implies (benchmarks/RESULTS.md). The regression baseline
    (:func:`minildm.recipes.train_sr_regression`) trains this very UNet with this TrainConfig (its L1 has no
    condition to drop).
    """
    p = _concat_preset(mode, "latent_mnist_sr", "sr", 1, SR_CPU_STEPS, guidance=3.0)
    return dataclasses.replace(p, train=dataclasses.replace(p.train, p_uncond=0.1),
                               conditioning=p.conditioning | dict(null_value=SR_NULL))


INPAINT_PIXEL_CHANNELS = 16  # the known pixels in c: MNIST's 1 channel × each 4 × 4 block of a latent cell


@capped
def latent_mnist_inpaint(mode: Mode | None = None, known_pixels: bool = True) -> DiffusionPreset:
    """Notebook 08: inpainting (LDM §4.5): ε_θ([z_t, s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), P, m↓], t), in_channels 4 + 4 + 16
    + 1, P the masked image's pixels stacked onto the latent grid (``known_pixels``,
    :func:`minildm.pairs.inpaint_condition`). LDM's condition is the first two; with P as well, half-masked digits
    were read right 86.4% of the time against 83.5% at 12,000 steps and 88.4% against 86.1% at 24,000 (test seed 0,
    s = 2), where a 1.5× wider UNet did not help; at 48,000 steps 89.0% there, 90.4% on seed 1 (benchmarks/RESULTS.md).

    Masks of boxes and strokes, 20 % halves, 10 % fully masked (:func:`minildm.pairs.random_masks`), four masks a
    digit (:func:`minildm.recipes.concat_pairs`): the fully masked input is the model's ∅, so it also draws digits
    from nothing, and is guided: s = 2 recommended (chosen on test seed 0; reported on seed 1, benchmarks/RESULTS.md).
    ``known_pixels=False``: LDM's condition alone, c = [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), m↓], in_channels 4 + 4 + 1
    (the Table 6 benchmark's, which compares pixel and latent space, not the two conditions).
    """
    p = _concat_preset(mode, "latent_mnist_inpaint", "inpaint", 5 + (INPAINT_PIXEL_CHANNELS if known_pixels else 0),
                       INPAINT_CPU_STEPS, guidance=2.0, lr_drop_at=INPAINT_CPU_LR_DROP_AT)
    return dataclasses.replace(p, conditioning=p.conditioning | dict(known_pixels=True)) if known_pixels else p


# cpu budget: 1.1 s a step at batch 64 on one thread of the 2-core machine beside three other jobs, ~0.5 s beside
# one (2026-12-02): 4,000 steps are 35–70 min. At 1,000 steps the samples were still blotches of colour
SEMANTIC_CPU_STEPS, SEMANTIC_CPU_LR_DROP_AT = 4000, 3400
SEMANTIC_PARTS = 8  # minildm.toyfaces.PARTS: background, clothes, skin, hair, eyes, mouth, glasses, hat


@capped
def latent_faces_semantic(mode: Mode | None = None) -> DiffusionPreset:
    """Notebook 08: semantic-map synthesis (LDM §4.3.2) on toy faces: ε_θ([z_t, c], t), c the one-hot part map
    area-resized to the 16 × 16 latent grid (:func:`minildm.semantic.semantic_condition`), in_channels 3 + 8.

    The latent is notebook 06's: z (3, 16, 16) of its frozen face autoencoder (taken from the shipped
    ``latent_faces_toy``, :func:`minildm.recipes.train_semantic`). The UNet is latent_faces' widths without
    cross-attention (nothing to attend to: the condition is in the input), self-attention at 8 × 8 and the middle.
    Condition dropout p_uncond = 0.1 to the empty map, so guidance can be tried.
    """
    return _latent_faces_concat("latent_faces_semantic", "semantic", SEMANTIC_PARTS, mode or get_mode(), p_uncond=0.1,
                                cpu_steps=(SEMANTIC_CPU_STEPS, SEMANTIC_CPU_LR_DROP_AT), gpu_n_train=20000)


FACE_CONCAT_CPU_STEPS, FACE_CONCAT_CPU_LR_DROP_AT = 3000, 2600  # face SR, cpu mode (inpainting: below)
# face inpainting, cpu mode: three times as long. At 3,000 steps the fills ignored the request for a smile (as it was
# + flipped 108%, where 100% is "ignored") and redrew the known region 3x the autoencoder's error; at 9,000 the
# smile is followed (152%) and the error is the autoencoder's (benchmarks/RESULTS.md, 2026-12-04)
FACE_INPAINT_CPU_STEPS, FACE_INPAINT_CPU_LR_DROP_AT = 9000, 8000


def _latent_faces_concat(name: str, task: str, condition_channels: int, mode: Mode, p_uncond: float,
                         attributes=(), cpu_steps=(FACE_CONCAT_CPU_STEPS, FACE_CONCAT_CPU_LR_DROP_AT),
                         gpu_n_train: int | None = None) -> DiffusionPreset:
    """The toy-face concatenation presets of notebook 08 (semantic maps, SR, inpainting): one UNet and budget on
    [z_t, c] over the face latent (3, 16, 16), c of ``condition_channels``; ``cpu_steps`` (steps, lr drop)."""
    channels = 3 + condition_channels
    unet = pick(
        smoke=UNetConfig(in_channels=channels, out_channels=3, base_channels=8, channel_mult=(1, 2), attn_levels=(1,),
                         heads=2),
        cpu=UNetConfig(in_channels=channels, out_channels=3, base_channels=32, channel_mult=(1, 2, 2),
                       attn_levels=(1,), heads=4),
        gpu=UNetConfig(in_channels=channels, out_channels=3, base_channels=128, channel_mult=(1, 2, 2),
                       num_res_blocks=2, attn_levels=(1, 2), heads=8, dropout=0.1),
        mode=mode)
    train = pick(
        smoke=TrainConfig(steps=20, batch_size=16, lr=1e-3, warmup=5, ema_decay=0.9, log_every=10, ckpt_every=20,
                          p_uncond=p_uncond),
        cpu=TrainConfig(steps=cpu_steps[0], batch_size=64, lr=1e-3, warmup=200, ema_decay=0.998,
                        lr_drop_at=cpu_steps[1], log_every=100, sample_every=1000, ckpt_every=250,
                        p_uncond=p_uncond),
        gpu=TrainConfig(steps=40000, batch_size=128, lr=2e-4, warmup=1000, ema_decay=0.9995, log_every=200,
                        sample_every=5000, ckpt_every=2000, p_uncond=p_uncond),
        mode=mode)
    spec = dict(type="concat", task=task, latent_channels=3, condition_channels=condition_channels,
                size=FACE_SIZE // 4) | (dict(attributes=list(attributes)) if attributes else {})
    return DiffusionPreset(name=name, mode=mode, unet=unet, train=train, image_size=FACE_SIZE,
                           n_train=pick(smoke=256, cpu=10000, gpu=gpu_n_train, mode=mode),
                           n_samples=pick(smoke=8, cpu=64, gpu=64, mode=mode),
                           ddim_steps=pick(smoke=10, cpu=50, gpu=50, mode=mode), clip_x0=None, f=4,
                           kind="latent_faces", guidance=1.0, conditioning=spec)


@capped
def latent_faces_sr(mode: Mode | None = None) -> DiffusionPreset:
    """Notebook 08: ×4 super-resolution of toy faces, 16 × 16 → 64 × 64 (LDM §4.4): ε_θ([z_t, LR], t). The LR face
    (3, 16, 16) is on the 16 × 16 grid of notebook 06's f = 4 latent (3, 16, 16), so it concatenates as it is
    (in_channels 3 + 3), as latent_mnist_sr's 8 × 8 digit does. No condition dropout: the LR image all but fixes
    the face, and a grey LR face is a real input (:func:`minildm.concat.null_condition`)."""
    return _latent_faces_concat("latent_faces_sr", "sr", 3, mode or get_mode(), p_uncond=0.0)


@capped
def latent_faces_inpaint(mode: Mode | None = None, attribute_embedding: bool = True) -> DiffusionPreset:
    """Notebook 08: toy-face inpainting told the attributes (LDM §4.5, and the attributes of notebook 06):
    c = [s·ℰ(x ⊙ (1 − m)) ⊙ (1 − m↓), A, m↓] with A the 16 attributes as constant planes (+1 / −1 / 0 unspecified,
    :func:`minildm.pairs.attribute_planes`), in_channels 3 + 3 + 16 + 1. The masks include the region of one
    attribute (:func:`minildm.pairs.face_masks`), so "the eyes masked out, Eyeglasses = 1" is a training case.
    Condition dropout p_uncond = 0.1 to ∅ (fully masked, nothing said).

    ``attribute_embedding``: A also enters the time embedding (``UNetConfig(vector_dim=16)``, a linear map added
    to it, so every ResBlock sees it), not only the first conv. A global condition has no place in the image; with
    the planes alone (False, the first shipped model) the fills ignored the request for glasses and smiles
    (benchmarks/RESULTS.md). In cpu mode it trains 9,000 steps (:data:`FACE_INPAINT_CPU_STEPS`), three times the
    face SR preset's: at 3,000 the smile was still ignored."""
    names = RENDERED_ATTRIBUTES
    p = _latent_faces_concat("latent_faces_inpaint", "inpaint", 3 + len(names) + 1, mode or get_mode(),
                             p_uncond=0.1, attributes=names,
                             cpu_steps=(FACE_INPAINT_CPU_STEPS, FACE_INPAINT_CPU_LR_DROP_AT))
    return dataclasses.replace(p, unet=dataclasses.replace(p.unet, vector_dim=len(names))) if attribute_embedding \
        else p


# ------------------------------------------------------------------------------ the command line's presets
PRESETS = {"autoencoder-mnist": autoencoder_mnist, "pixel-mnist": pixel_mnist, "latent-mnist": latent_mnist,
           "latent-mnist-class": latent_mnist_class, "latent-mnist-text": latent_mnist_text,
           "autoencoder-faces": autoencoder_faces, "latent-faces": latent_faces,
           "latent-mnist-layout": latent_mnist_layout, "latent-mnist-sr": latent_mnist_sr,
           "latent-mnist-inpaint": latent_mnist_inpaint, "latent-faces-semantic": latent_faces_semantic,
           "latent-faces-sr": latent_faces_sr, "latent-faces-inpaint": latent_faces_inpaint}
