"""Presets: every size the course trains at, per run mode, in one place.  COURSE.md "Run modes".

A preset bundles the configs of one training job (model, optimisation, schedule, data budget). Notebooks and
``python -m minildm train PRESET`` both build from here, so a notebook and the command line train the same thing.
Each preset is a function of the run mode: ``pixel_mnist("cpu")``, or ``pixel_mnist()`` for the current mode.

cpu-mode sizes were chosen by measurement on a 2-core CPU (see notebooks/RUNS.md and benchmarks/RESULTS.md);
gpu-mode sizes follow DDPM/LDM's recipes scaled to MNIST, and their costs are expectations, not measurements.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .config import Mode, get_mode, pick
from .train import TrainConfig
from .unet import UNetConfig


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
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["unet"], d["train"] = self.unet.to_dict(), self.train.to_dict()
        return d


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


PRESETS = {"pixel-mnist": pixel_mnist}


def build_unet(preset: DiffusionPreset, device=None):
    """The preset's UNet, seeded from its TrainConfig's seed, on ``device`` (channels-last on CPU: ~25% faster)."""
    import torch

    from .config import get_device
    from .unet import UNet

    device = torch.device(device) if device is not None else get_device()
    torch.manual_seed(preset.train.seed)
    model = UNet(preset.unet).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model


def train_preset(preset: DiffusionPreset, data, labels=None, ckpt_path=None, callback=None, progress: bool = True,
                 kind: str | None = None):
    """Build the preset's UNet and schedule and train it with :func:`minildm.train.train_diffusion`.

    With ``ckpt_path`` the run is resumable: re-running it after it finished just loads the result.
    Returns ``(TrainResult, NoiseSchedule)``.
    """
    from .schedule import make_schedule
    from .train import train_diffusion

    model = build_unet(preset)
    sched = make_schedule(preset.schedule, preset.T)
    device = next(model.parameters()).device
    result = train_diffusion(model, data.to(device), sched, preset.train, labels=labels, ckpt_path=ckpt_path,
                             model_config=preset.unet.to_dict(), kind=kind or preset.name, callback=callback,
                             progress=progress)
    return result, sched
