"""A preset tried out on any device: built at its real widths, a few training steps, one sampling step, its size,
speed and estimated training memory.  For instructors and CI · docs/DESIGN.md "Run modes".

The gpu presets are written for a Colab GPU that CI does not have; a typo in one would break "Run all" for the very
learners it is for. :func:`dry_run` exercises a preset end to end on whatever device it is given, on random tensors
of the real shapes (a preset's *size* is what is checked here, not what it learns):

* the real networks (ε_θ with its τ_θ, the autoencoder and its PatchGAN, the attribute classifier), their parameters;
* ``steps`` optimizer steps through the course's own training loops at a reduced batch (the losses must be finite);
* one sampling step of a diffusion preset through :class:`~minildm.ldm.DiffusionModel` (decoded by an autoencoder
  of the preset's f, at its gpu widths), which must return images of the right shape;
* training images per second at the reduced batch, and :func:`minildm.cost.training_memory`'s estimate of the peak
  memory of one step at the preset's real batch size.

``tests/test_gpu_presets.py`` runs it for every gpu preset on CPU in CI; ``scripts/gpu_check.py`` runs it on a GPU
at the real batch size, where the measured peak memory can be set beside the estimate.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

from . import presets
from .autoencoder import AutoencoderKL
from .classifier import ClassifierConfig, MNISTClassifier
from .cost import training_memory
from .conditioning import LayoutEncoder
from .face_classifier import AttributeClassifier
from .layout import LayoutConfig, random_layouts
from .ldm import DiffusionModel
from .losses import PatchDiscriminator
from .objective import diffusion_loss
from .recipes import build_unet, concat_dropout_null
from .schedule import make_schedule
from .text import Tokenizer
from .train import train_autoencoder, train_diffusion

# every preset function with the variants the notebooks build (notebook 03's f-study, notebook 04's latents at f)
VARIANTS = {
    "autoencoder_mnist_f2": lambda m: presets.autoencoder_mnist(m, f=2),
    "autoencoder_mnist_f4": lambda m: presets.autoencoder_mnist(m, f=4),
    "autoencoder_mnist_f8": lambda m: presets.autoencoder_mnist(m, f=8),
    "pixel_mnist": presets.pixel_mnist,
    "latent_mnist_f2": lambda m: presets.latent_mnist(m, f=2),
    "latent_mnist": presets.latent_mnist,
    "latent_mnist_f8": lambda m: presets.latent_mnist(m, f=8),
    "latent_mnist_class": presets.latent_mnist_class,
    "latent_mnist_text": presets.latent_mnist_text,
    "autoencoder_faces": presets.autoencoder_faces,
    "latent_faces": presets.latent_faces,
    "latent_mnist_layout": presets.latent_mnist_layout,
    "latent_mnist_sr": presets.latent_mnist_sr,
    "latent_mnist_inpaint": presets.latent_mnist_inpaint,
}
CAPTIONS = ["a thin seven", "a thick slanted two", "a small zero"]  # a tokenizer for the text preset's τ_θ


@dataclass
class DryRun:
    """What :func:`dry_run` measured for one preset."""

    name: str
    parameters: int            # trainable parameters of the trained network(s)
    batch: int                 # the preset's real batch size
    losses: list               # the losses of the steps taken (all finite)
    images_per_second: float   # at the reduced batch, this device
    memory_estimate: float     # bytes, one training step at ``batch`` (cost.training_memory), float32
    sample_shape: tuple | None = None  # a diffusion preset's samples, (sample_n, C, H, W)
    sample_seconds: float = 0.0        # their wall time, decode included
    full_steps: int = 0                # the preset's whole training budget, in steps

    def row(self) -> str:
        return (f"| {self.name} | {self.parameters / 1e6:.2f} M | {self.batch} | {self.images_per_second:.1f} | "
                f"{self.memory_estimate / 2**30:.2f} GiB |")


def _first_stage(f: int, mode: str, channels: int, device) -> AutoencoderKL:
    """An untrained autoencoder of the preset's f at this mode's widths: it decodes shapes, not digits."""
    ae_preset = presets.autoencoder_faces(mode) if channels == 3 else presets.autoencoder_mnist(mode, f=f)
    return AutoencoderKL(ae_preset.ae).to(device).eval()


def _conditions(preset, n: int) -> tuple[torch.Tensor | None, torch.Tensor | None, presets.DiffusionPreset]:
    """Random conditions of the preset's kind, its null condition, and the preset (a text spec gets a tokenizer)."""
    spec = preset.conditioning
    if spec is None:
        return None, None, preset
    if spec["type"] == "class":
        return torch.arange(n) % spec["num_classes"], None, preset
    if spec["type"] == "text":
        tok = Tokenizer.from_captions(CAPTIONS)
        preset = dataclasses.replace(preset, conditioning={**spec, "tokenizer": tok.to_dict()})
        return tok.encode_batch([CAPTIONS[i % len(CAPTIONS)] for i in range(n)]), tok.null(), preset
    if spec["type"] == "layout":  # random layouts; ∅ the empty one
        null = LayoutEncoder(spec["num_classes"], spec["dim"], spec["max_objects"]).null_condition(1)[0]
        return random_layouts(n, cfg=LayoutConfig(max_objects=spec["max_objects"])), null, preset
    if spec["type"] == "concat":  # a random image condition c at the latent grid; ∅ (inpainting) the fully masked one
        shape = (n, spec["condition_channels"], spec["size"], spec["size"])
        c = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        return c, concat_dropout_null(preset), preset  # what training drops to: SR's plane, inpainting's full mask
    M = len(spec["names"])  # attributes: random 0/1 values, ∅ = 2 for the null condition
    return torch.randint(0, 2, (n, M), generator=torch.Generator().manual_seed(0)), torch.full((M,), 2), preset


def dry_run(name: str, mode: str = "gpu", device="cpu", steps: int = 2, batch: int = 2, sample_n: int = 1,
            sample_steps: int = 1) -> DryRun:
    """Build preset ``name`` (a key of :data:`VARIANTS`) of run mode ``mode`` on ``device``, train it ``steps`` steps
    at batch ``batch`` on random data of its shapes, draw ``sample_n`` samples with ``sample_steps`` ancestral steps,
    and estimate its memory at its real batch."""
    device = torch.device(device)
    preset = VARIANTS[name](mode)
    real_batch = preset.train.batch_size
    cfg = dataclasses.replace(preset.train, steps=steps, batch_size=batch, warmup=1, log_every=0, sample_every=0,
                              ckpt_every=0, max_seconds=0.0)
    g = torch.Generator().manual_seed(0)
    if isinstance(preset, presets.AutoencoderPreset):
        model = AutoencoderKL(preset.ae).to(device)
        C, S = preset.ae.in_channels, preset.image_size
        disc = PatchDiscriminator(C, preset.disc_base, preset.disc_layers).to(device) if preset.disc_base else None
        # the perceptual nets' architectures, untrained: sizes only
        features = AttributeClassifier(["Smiling", "Eyeglasses"]) if C == 3 else MNISTClassifier(ClassifierConfig())
        x = torch.rand(4 * batch, C, S, S, generator=g) * 2 - 1
        loss_cfg = dataclasses.replace(preset.loss, disc_start=0)  # the GAN on from the first step: exercise it
        t0 = time.perf_counter()
        result = train_autoencoder(model, x.to(device), loss_cfg, cfg, feature_net=features.to(device), disc=disc,
                                   progress=False)
        seconds = time.perf_counter() - t0
        losses = [h[1] for h in result.history]
        parameters = sum(p.numel() for p in model.parameters()) + (sum(p.numel() for p in disc.parameters())
                                                                   if disc is not None else 0)

        def step(b: int) -> None:
            xb = torch.rand(b, C, S, S, generator=g).to(device) * 2 - 1
            x_hat, posterior = model(xb, sample_posterior=True)
            (x_hat - xb).abs().mean().add(posterior.kl().mean() * 1e-6).backward()

        memory = training_memory(step, model, real_batch)["total"]
        return DryRun(name, parameters, real_batch, losses, steps * batch / seconds, memory,
                      full_steps=preset.train.steps)

    h = preset.image_size // preset.f
    spec = preset.conditioning or {}
    C = spec["latent_channels"] if spec.get("type") == "concat" else preset.unet.in_channels  # z_t's, not [z_t, c]'s
    y, null, preset = _conditions(preset, 4 * batch)
    model = build_unet(preset, device=device)
    x = torch.randn(4 * batch, C, h, h, generator=g)
    sched = make_schedule(preset.schedule, preset.T)
    t0 = time.perf_counter()
    result = train_diffusion(model, x.to(device), sched, cfg, labels=y, null_condition=null,
                             model_config=preset.unet.to_dict(), kind=preset.kind, progress=False)
    seconds = time.perf_counter() - t0
    fs = _first_stage(preset.f, mode, 3 if C == 3 else 1, device) if preset.f > 1 else None
    dm = DiffusionModel(result.ema, sched, fs, preset.image_size, preset.clip_x0, preset.name,
                        guidance=preset.guidance)
    t0 = time.perf_counter()
    yn = None if y is None else y[torch.arange(sample_n) % len(y)]
    images = dm.sample(sample_n, sampler="ddpm", steps=sample_steps, y=yn,
                       guidance=preset.guidance if y is not None else 1.0)
    sample_seconds = time.perf_counter() - t0
    alpha_bar = sched.alpha_bar.to(device)

    def step(b: int) -> None:
        kw = {} if y is None else {"y": y[:1].expand(b, *y.shape[1:]).to(device)}
        diffusion_loss(model, torch.randn(b, C, h, h, generator=g).to(device), alpha_bar, **kw).backward()

    memory = training_memory(step, model, real_batch)["total"]
    return DryRun(name, sum(p.numel() for p in model.parameters()), real_batch, [r[1] for r in result.history],
                  steps * batch / seconds, memory, tuple(images.shape), sample_seconds, preset.train.steps)
