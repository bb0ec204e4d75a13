"""Latent diffusion: ε_θ on z = s·ℰ(x), sampled in latent space, decoded by 𝒟.  Notebook 04 · LDM §3.2, Eq. 2.

The pixel DDPM of notebook 02 and the latent one of notebook 04 differ in one place: what ε_θ sees.

* pixel:  L_DM  = E_{x, ε, t} ‖ε − ε_θ(x_t, t)‖²,   x_t = √ᾱ_t·x + √(1−ᾱ_t)·ε,   x (B, 1, 32, 32)
* latent: L_LDM = E_{ℰ(x), ε, t} ‖ε − ε_θ(z_t, t)‖², z_t the same with z = s·ℰ(x),  z (B, 4, 8, 8) at f = 4

so the training loop, the schedule and the samplers are shared; this module adds the two ends:

* :func:`encode_dataset` — the frozen first stage runs *once* over the data set (LDM trains ε_θ with ℰ fixed),
  and the latents are cached on disk, so each training step costs only the UNet on the small grid;
* :class:`DiffusionModel` — ε_θ, its schedule and (for latent models) the autoencoder in one object whose
  :meth:`~DiffusionModel.sample` returns *images* for either kind: draw z_T ~ N(0, I) in latent space, denoise
  there, decode once with 𝒟(z_0 / s);
* :func:`load_diffusion` / :func:`export_diffusion` — one loader for every diffusion checkpoint (training or
  release), used by ``python -m minildm sample`` and the notebooks' "skip training" path.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from .autoencoder import AutoencoderConfig, AutoencoderKL
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .guidance import guided
from .samplers import SAMPLERS
from .schedule import NoiseSchedule, make_schedule
from .unet import UNet, UNetConfig

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"  # the shipped checkpoints (minildm/weights/README.md)

# the checkpoint kinds this module reads: the diffusion presets' names (minildm.presets), plus train_diffusion's default
DIFFUSION_KINDS = ("pixel_mnist", "latent_mnist", "latent_faces", "pixel_ddpm")


# ------------------------------------------------------------------------------------------ the data set, encoded
def fingerprint(ae: AutoencoderKL) -> str:
    """A short hash of the autoencoder's weights and scale factor: latents cached under one AE are stale for another."""
    h = hashlib.sha1()
    for name, t in sorted(ae.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_dataset(ae: AutoencoderKL, images: Tensor, batch_size: int = 500,
                   cache_path: str | Path | None = None) -> Tensor:
    """z = s·ℰ(x) (posterior means) for every image in ``images`` (N, C, H, W) → (N, z_channels, H/f, W/f), on CPU.

    ``images`` float in [−1, 1], or uint8 in [0, 255] (scaled to [−1, 1] a batch at a time, so a large face data
    set need not be held in memory as float: 20,000 RGB 64×64 images are 0.25 GB as uint8, 1 GB as float).

    With ``cache_path`` the latents are saved there (atomically) with the autoencoder's :func:`fingerprint` and a
    hash of the images, and later calls load them instead of encoding again — unless the autoencoder or the
    images changed, in which case they are recomputed (a damaged cache file is recomputed too).
    """
    data_hash = hashlib.sha1(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    key = dict(fingerprint=fingerprint(ae), data=data_hash, n=int(images.shape[0]), shape=list(images.shape[1:]))
    if cache_path is not None and Path(cache_path).exists():
        try:
            ckpt = load_checkpoint(cache_path, kind="latents")
            if ckpt["config"] == key:
                return ckpt["latents"]
        except CheckpointError:
            pass  # damaged or foreign: recompute and overwrite
    was_training = ae.training
    ae.eval()
    device = ae.scale_factor.device
    def batch(i: int) -> Tensor:
        x = images[i:i + batch_size].to(device)
        return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x  # uint8 [0, 255] → [−1, 1]

    out = [ae.encode_latents(batch(i)).cpu() for i in range(0, images.shape[0], batch_size)]
    ae.train(was_training)
    latents = torch.cat(out)  # (N, z_channels, h, w)
    if cache_path is not None:
        save_checkpoint(cache_path, dict(latents=latents), kind="latents", config=key)
    return latents


# --------------------------------------------------------------------------------------- ε_θ + schedule + 𝒟
class DiffusionModel(nn.Module):
    """A trained diffusion model that samples images: ε_θ, its noise schedule, and the first stage if latent.

    ``first_stage`` None: a pixel model, samples are ε_θ's own space (clamped x̂_0 with ``clip_x0``).
    ``first_stage`` an :class:`AutoencoderKL`: ε_θ works on s·z of shape ``(z_channels, H/f, W/f)`` and
    :meth:`sample` decodes at the end. Either way :meth:`sample` returns images in [−1, 1], (n, C, H, W).
    ``unet`` may also be a :class:`~minildm.conditioning.ConditionalUNet` (ε_θ with τ_θ, notebook 05): then
    :meth:`sample` takes its conditions as ``y`` and a classifier-free ``guidance`` scale.
    """

    def __init__(self, unet: UNet, sched: NoiseSchedule, first_stage: AutoencoderKL | None = None,
                 image_size: int = 32, clip_x0: float | None = 1.0, name: str = "", tokenizer=None,
                 guidance: float = 1.0):
        super().__init__()
        self.unet, self.sched, self.first_stage = unet, sched, first_stage
        self.image_size, self.clip_x0, self.name = image_size, clip_x0, name
        self.tokenizer = tokenizer  # a text model's Tokenizer: model.tokenizer.encode_batch([...]) → y
        self.guidance = float(guidance)  # the guidance scale its preset recommends (the CLI's default)
        f = first_stage.cfg.f if first_stage is not None else 1
        if image_size % f:
            raise ValueError(f"image_size {image_size} is not divisible by the autoencoder's f = {f}")
        self.sample_shape = (unet.cfg.in_channels, image_size // f, image_size // f)  # ε_θ's space (C, h, w)

    @property
    def is_latent(self) -> bool:
        return self.first_stage is not None

    @property
    def num_classes(self) -> int | None:
        """Classes of a class-conditional ε_θ: the UNet's label embedding, or a ConditionalUNet's ClassEncoder."""
        encoder = getattr(self.unet, "encoder", None)
        if encoder is not None and hasattr(encoder, "num_classes"):
            return encoder.num_classes
        return self.unet.cfg.num_classes

    @property
    def attributes(self) -> tuple[str, ...] | None:
        """An attribute-conditional ε_θ's attribute names, in the order of y's columns (notebook 06); else None."""
        return getattr(getattr(self.unet, "encoder", None), "names", None)

    @property
    def is_conditional(self) -> bool:
        """ε_θ needs a condition y: class labels (UNetConfig.num_classes), or a ConditionalUNet's ids."""
        return self.num_classes is not None or hasattr(self.unet, "null_condition")

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """ε_θ's space → images in [−1, 1]: 𝒟(z / s) for a latent model, a clamp for a pixel one."""
        x = self.first_stage.decode_latents(z) if self.is_latent else z
        return x.clamp(-1, 1)

    @torch.no_grad()
    def sample(self, n: int, *, sampler: str = "ddim", steps: int | None = None, eta: float | None = None,
               seed: int | None = 0, generator: torch.Generator | None = None, y: Tensor | None = None,
               guidance: float = 1.0, batch_size: int = 256, callback: Optional[Callable[[dict], None]] = None,
               return_latents: bool = False, x_T: Tensor | None = None):
        """Draw ``n`` images (n, C, H, W) in [−1, 1]; with ``return_latents`` also ε_θ's final x_0 / z_0.

        ``sampler`` "ddim" (``steps`` steps, η = ``eta`` or 0) or "ddpm" (all T steps; with ``steps`` < T,
        DDPM's ancestral sampler on ``steps`` evenly spaced timesteps, i.e. DDIM with η = 1). Noise comes from a
        CPU generator seeded with ``seed`` (or ``generator``), so a seed gives the same images on any device. The
        starting noise z_T is drawn for all n at once, so deterministic sampling (DDIM, η = 0) gives the same
        images for any ``batch_size``; stochastic samplers draw per-step noise per batch, so theirs depend on it.
        ``y`` the conditions, one per sample: class labels (n,), or token ids (n, L) for a text-conditional
        ConditionalUNet. ``guidance`` s ≠ 1 samples with classifier-free guidance, ε̃ = ε_∅ + s·(ε_y − ε_∅)
        (:func:`~minildm.guidance.guided`; needs ε_θ with ``null_condition``, i.e. a ConditionalUNet).
        ``callback`` as the samplers' (per step, per batch).
        ``x_T`` (n, *sample_shape): the starting noise, instead of drawing it from the seed: the same x_T with two
        conditions isolates what the condition does (attribute editing, notebook 06), and an interpolation of two
        x_T walks between two samples. The seed still draws the stochastic samplers' per-step noise.
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
        steps = steps or (50 if sampler == "ddim" else self.sched.T)
        if not 1 <= steps <= self.sched.T:
            raise ValueError(f"steps must be in 1..{self.sched.T} (got {steps})")
        if n < 1:
            raise ValueError(f"n must be at least 1 (got {n})")
        if self.is_conditional and y is None:
            what = f"class-conditional ({self.num_classes} classes)" if self.num_classes is not None else "conditional"
            raise ValueError(f"this model is {what}: pass labels y (its conditions, one per sample)")
        if y is not None:
            y = torch.as_tensor(y, dtype=torch.long)
            if self.attributes is not None and y.ndim != 2:
                raise ValueError(f"this model is conditioned on {len(self.attributes)} attributes: pass y of shape "
                                 f"(n, {len(self.attributes)}), one attribute vector per sample in the order of "
                                 f"model.attributes (one vector for all: y.expand(n, -1)), got {tuple(y.shape)}")
            y = y.reshape(-1) if y.ndim <= 1 else y  # class ids (n,), or token ids (n, L) / attributes (n, M)
            if y.shape[0] != n:
                raise ValueError(f"y has {y.shape[0]} labels for n = {n} samples")
        if guidance != 1.0 and (y is None or not hasattr(self.unet, "null_condition")):
            raise ValueError(f"guidance={guidance} needs a conditional ε_θ with a null condition (a ConditionalUNet "
                             "trained with p_uncond > 0) and its conditions y; use guidance=1.0 otherwise")
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else seed)
        device = next(self.unet.parameters()).device
        kw: dict = dict(generator=generator, callback=callback, clip_x0=None if self.is_latent else self.clip_x0)
        if sampler == "ddim":
            kw.update(steps=steps, eta=0.0 if eta is None else eta)
        else:
            kw.update(eta=1.0 if eta is None else eta)
            if steps < self.sched.T:  # ancestral sampling on a respaced chain: DDIM's update with η = 1
                sampler, kw["steps"] = "ddim", steps
        if x_T is None:
            x_T = torch.randn((n, *self.sample_shape), generator=generator)  # all noise first: batch-independent
        elif tuple(x_T.shape) != (n, *self.sample_shape):
            raise ValueError(f"x_T must be the starting noise of n = {n} samples in ε_θ's space, (n, C, h, w) = "
                             f"{(n, *self.sample_shape)}, got {tuple(x_T.shape)}")
        x_T = x_T.to(device, torch.float32)
        self.eval()
        zs = []
        for i in range(0, n, batch_size):
            eps_model, mk = self.unet, None
            if y is not None:
                yb = y[i:i + batch_size].to(device)
                if guidance != 1.0:  # one batched forward of [y; ∅] per step
                    eps_model = guided(self.unet, guidance, yb, self.unet.null_condition(len(yb), device))
                else:
                    mk = {"y": yb}
            zs.append(SAMPLERS[sampler](eps_model, x_T[i:i + batch_size], self.sched, model_kwargs=mk, **kw))
        z0 = torch.cat(zs)  # (n, *sample_shape)
        images = torch.cat([self.decode(z0[i:i + batch_size]) for i in range(0, n, batch_size)])
        return (images, z0) if return_latents else images


# ------------------------------------------------------------------------------------------ checkpoints
def shipped(name: str) -> Path:
    """The path of a shipped checkpoint (``latent_mnist``) in minildm/weights/, or a clear error if it is absent."""
    path = WEIGHTS_DIR / f"{name}.pt"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(WEIGHTS_DIR.glob("*.pt"))) or "none"
        raise CheckpointError(f"no shipped weights named {name!r} in {WEIGHTS_DIR} (shipped: {known}); "
                              f"train them with `python -m minildm demo --train`")
    return path


def first_stage_payload(ae: AutoencoderKL) -> dict:
    """The autoencoder as a checkpoint entry (its config and weights, scale factor included)."""
    return dict(config=ae.cfg.to_dict(), state=ae.state_dict())


def _first_stage_from(entry: dict | None, map_location) -> AutoencoderKL | None:
    if entry is None:
        return None
    ae = AutoencoderKL(AutoencoderConfig.from_dict(entry["config"]))
    ae.load_state_dict(entry["state"])
    return ae.to(map_location).eval()


def load_diffusion(path: str | Path, map_location="cpu", ema: bool = True) -> DiffusionModel:
    """Any diffusion checkpoint (a training one, resumable, or a release one from :func:`export_diffusion`) →
    a :class:`DiffusionModel` in eval mode. ``ema`` picks the EMA weights (what to sample with) if present."""
    ckpt = load_checkpoint(path, map_location=map_location)
    if ckpt.get("kind") not in DIFFUSION_KINDS:
        raise CheckpointError(f"{path} holds a {ckpt.get('kind')!r} checkpoint, not a diffusion model "
                              f"({', '.join(DIFFUSION_KINDS)}); sample a diffusion checkpoint such as "
                              "runs/<mode>/latent_mnist.pt (python -m minildm train latent-mnist) or a shipped "
                              f"model by name ({', '.join(p.stem for p in sorted(WEIGHTS_DIR.glob('latent_*.pt')))})")
    unet, tokenizer = UNet(UNetConfig.from_dict(ckpt["config"])), None
    if ckpt.get("conditioning") is not None:  # ε_θ with τ_θ (notebook 05): rebuild the encoder from its spec
        from .conditioning import ConditionalUNet, encoder_from_spec

        encoder, tokenizer = encoder_from_spec(ckpt["conditioning"])
        unet = ConditionalUNet(unet, encoder)
    weights = ckpt["ema"] if ema and "ema" in ckpt else ckpt.get("model", ckpt.get("ema"))
    unet.load_state_dict(weights)  # copies into the float32 parameters: a float16 release is cast back
    info = ckpt.get("sampling") or _default_sampling(ckpt["kind"])
    if info.get("latent") and ckpt.get("first_stage") is None:
        raise CheckpointError(f"{path} is a latent diffusion checkpoint without its autoencoder, so its samples "
                              "cannot be decoded; re-train or re-export it with minildm.presets / export_diffusion")
    model = DiffusionModel(unet.to(map_location).eval(), make_schedule(info["schedule"], info["T"]),
                           _first_stage_from(ckpt.get("first_stage"), map_location), image_size=info["image_size"],
                           clip_x0=info["clip_x0"], name=ckpt["kind"], tokenizer=tokenizer,
                           guidance=info.get("guidance", 1.0))
    model.checkpoint_info = {k: ckpt[k] for k in ("step", "train_config", "release") if k in ckpt}
    return model.eval()


def _default_sampling(kind: str) -> dict:
    """Sampling settings for checkpoints written before they were stored (notebook 02's pixel model)."""
    return dict(schedule="linear", T=1000, image_size=32, clip_x0=1.0, latent=False)


def sampling_payload(preset) -> dict:
    """What :func:`load_diffusion` needs besides the weights, from a :class:`minildm.presets.DiffusionPreset`."""
    return dict(schedule=preset.schedule, T=preset.T, image_size=preset.image_size, clip_x0=preset.clip_x0,
                latent=preset.f > 1, preset=preset.name, mode=preset.mode,
                guidance=float(preset.extra.get("guidance", 1.0)))


def export_diffusion(src: str | Path, dst: str | Path, half: bool = False, guidance: float | None = None,
                     **release) -> Path:
    """A small release checkpoint from a training one: the EMA weights, schedule and first stage, no optimizer.

    ``release`` (plain values: the training command, its wall time, measured quality …) is stored under
    ``"release"`` and shown by ``python -m minildm sample --info``. ``half`` stores the weights as float16
    (loaded back as float32); ``guidance`` replaces the recommended guidance scale stored with the sampling
    settings (e.g. chosen by a sweep after training). The result loads with :func:`load_diffusion`; it cannot
    resume training.
    """
    ckpt = load_checkpoint(src, kind=DIFFUSION_KINDS)
    def cast(sd: dict) -> dict:  # float16 halves the file; the scale factor stays exact
        return {k: v.half() if half and v.is_floating_point() and k != "scale_factor" else v for k, v in sd.items()}

    payload = dict(ema=cast(ckpt["ema"] if "ema" in ckpt else ckpt["model"]),
                   sampling=dict(ckpt.get("sampling") or _default_sampling(ckpt["kind"])),
                   step=ckpt.get("step"), train_config=ckpt.get("train_config"), release=dict(release))
    if guidance is not None:
        payload["sampling"]["guidance"] = float(guidance)
    if ckpt.get("conditioning") is not None:
        payload["conditioning"] = ckpt["conditioning"]
    if ckpt.get("first_stage") is not None:
        fs = ckpt["first_stage"]
        payload["first_stage"] = dict(config=fs["config"], state=cast(fs["state"]))
    return save_checkpoint(dst, payload, kind=ckpt["kind"], config=ckpt["config"])
