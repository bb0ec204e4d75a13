"""Diffusion checkpoints in and out: one loader for every kind, and small release files.  Notebooks 04–06.

* :func:`load_diffusion` — any diffusion checkpoint, a training one (resumable) or a release one, → a
  :class:`~minildm.ldm.DiffusionModel` that samples images; what ``python -m minildm sample`` and the notebooks'
  fast paths use. A checkpoint's kind is one of :data:`minildm.checkpoint.DIFFUSION_KINDS`.
* :func:`export_diffusion` — a release file from a training one: EMA weights, schedule and first stage, no
  optimizer (the shipped weights in ``minildm/weights/`` are such files, :mod:`minildm.shipped`).
* :func:`sampling_payload`, :func:`first_stage_payload` — what a training run stores beside ε_θ's weights so that
  the loader can rebuild the whole model.
"""
from __future__ import annotations

import math
from pathlib import Path

from .autoencoder import AutoencoderConfig, AutoencoderKL
from .checkpoint import DIFFUSION_KINDS, CheckpointError, load_checkpoint, save_checkpoint
from .concat import wrap_unet
from .ldm import DiffusionModel
from .objective import prediction_of
from .schedule import make_schedule
from .shipped import resolve, shipped_names
from .unet import UNet, UNetConfig


def first_stage_payload(ae: AutoencoderKL) -> dict:
    """The autoencoder as a checkpoint entry (its config and weights, scale factor included)."""
    return dict(config=ae.cfg.to_dict(), state=ae.state_dict())


def first_stage_from(entry: dict | None, map_location) -> AutoencoderKL | None:
    """The frozen first stage a release or checkpoint carries (its ``"first_stage"`` entry: config and weights), or
    None for a pixel-space model."""
    if entry is None:
        return None
    ae = AutoencoderKL(AutoencoderConfig.from_dict(entry["config"]))
    ae.load_state_dict(entry["state"])
    return ae.to(map_location).eval()


def load_diffusion(path: str | Path, map_location="cpu", ema: bool = True) -> DiffusionModel:
    """Any diffusion checkpoint (a training one, resumable, or a release one from :func:`export_diffusion`) →
    a :class:`DiffusionModel` in eval mode. ``path`` is a file, or a shipped model's name (``"latent_mnist"``,
    :mod:`minildm.shipped`). ``ema`` picks the EMA weights (what to sample with) if present."""
    path = resolve(path)
    ckpt = load_checkpoint(path, map_location=map_location)
    if ckpt.get("kind") not in DIFFUSION_KINDS:
        raise CheckpointError(f"{path} holds a {ckpt.get('kind')!r} checkpoint, not a diffusion model "
                              f"({', '.join(DIFFUSION_KINDS)}); sample a diffusion checkpoint such as "
                              "runs/<mode>/latent_mnist.pt (python -m minildm train latent-mnist) or a shipped "
                              f"model by name ({', '.join(shipped_names('latent_'))})")
    # ε_θ with τ_θ (notebook 05) or with a concatenated condition (notebook 08): rebuilt from the stored spec
    unet, tokenizer = wrap_unet(UNet(UNetConfig.from_dict(ckpt["config"])), ckpt.get("conditioning"))
    weights = ckpt["ema"] if ema and "ema" in ckpt else ckpt.get("model", ckpt.get("ema"))
    unet.load_state_dict(weights)  # copies into the float32 parameters: a float16 release is cast back
    info = ckpt.get("sampling") or OLD_SAMPLING
    if info.get("latent") and ckpt.get("first_stage") is None:
        raise CheckpointError(f"{path} is a latent diffusion checkpoint without its autoencoder, so its samples "
                              "cannot be decoded; re-train or re-export it with minildm.presets / export_diffusion")
    model = DiffusionModel(unet.to(map_location).eval(), make_schedule(info["schedule"], info["T"]),
                           first_stage_from(ckpt.get("first_stage"), map_location), image_size=info["image_size"],
                           clip_x0=info["clip_x0"], name=info.get("preset", ckpt["kind"]), tokenizer=tokenizer,
                           guidance=info.get("guidance", 1.0), prediction=prediction_of(info))
    model.checkpoint_info = {k: ckpt[k] for k in ("step", "train_config", "release") if k in ckpt}
    return model.eval()


# Checkpoints written before the sampling settings were stored with them were all notebook 02's pixel model.
OLD_SAMPLING = dict(schedule="linear", T=1000, image_size=32, clip_x0=1.0, latent=False)


def sampling_payload(preset) -> dict:
    """What :func:`load_diffusion` needs besides the weights, from a :class:`minildm.presets.DiffusionPreset`."""
    return dict(schedule=preset.schedule, T=preset.T, image_size=preset.image_size, clip_x0=preset.clip_x0,
                latent=preset.f > 1, preset=preset.name, mode=preset.mode,
                guidance=float(preset.guidance), prediction=preset.train.target)


def export_diffusion(src: str | Path, dst: str | Path, half: bool = False, guidance: float | None = None,
                     **release) -> Path:
    """A small release checkpoint from a training one: the EMA weights, schedule and first stage, no optimizer.

    ``release`` (plain values: the training command, its wall time, measured quality …) is stored under
    ``"release"`` and shown by ``python -m minildm sample --info``. ``half`` stores the weights as float16
    (loaded back as float32); ``guidance`` replaces the recommended guidance scale stored with the sampling
    settings (e.g. chosen by a sweep after training). The result loads with :func:`load_diffusion`; it cannot
    resume training.
    """
    if guidance is not None and not (math.isfinite(guidance) and guidance >= 0):
        raise ValueError(f"guidance must be a finite number ≥ 0, e.g. 2 (1: the conditional model alone), got {guidance}")
    ckpt = load_checkpoint(src, kind=DIFFUSION_KINDS)

    def cast(sd: dict) -> dict:  # float16 halves the file; the scale factor stays exact
        return {k: v.half() if half and v.is_floating_point() and k != "scale_factor" else v for k, v in sd.items()}

    payload = dict(ema=cast(ckpt["ema"] if "ema" in ckpt else ckpt["model"]),
                   sampling=dict(ckpt.get("sampling") or OLD_SAMPLING),
                   step=ckpt.get("step"), train_config=ckpt.get("train_config"), release=dict(release))
    if guidance is not None:
        payload["sampling"]["guidance"] = float(guidance)
    if ckpt.get("conditioning") is not None:
        payload["conditioning"] = ckpt["conditioning"]
    if ckpt.get("first_stage") is not None:
        fs = ckpt["first_stage"]
        payload["first_stage"] = dict(config=fs["config"], state=cast(fs["state"]))
    return save_checkpoint(dst, payload, kind=ckpt["kind"], config=ckpt["config"])
