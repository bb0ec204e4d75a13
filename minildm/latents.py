"""The data set, encoded once: z = s·ℰ(x) for every image, cached on disk.  Notebooks 04, 06 · LDM §3.2, Eq. 2.

LDM trains ε_θ with the first stage frozen, so ℰ runs *once* over the data set and each training step costs only
the UNet on the small latent grid. :func:`encode_dataset` does that and caches the latents, keyed by the
autoencoder's :func:`fingerprint` and a hash of the images, so a retrained autoencoder (or other images) re-encodes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor

from .autoencoder import AutoencoderKL
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint


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
