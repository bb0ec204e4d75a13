"""One training loop for diffusion models: AdamW, warm-up, EMA, atomic checkpoints, exact resume.  Notebooks 02–06.

The same loop trains the pixel DDPM (notebook 02, L_DM = LDM Eq. 1) and the latent one (notebook 04,
L_LDM = LDM Eq. 2): only ``data`` changes, images in [−1, 1] or scaled latents z = s·E(x).

Reproducibility, on purpose: every random draw of the loop (the batch indices, t, ε and condition dropout)
comes from one CPU generator ``g`` seeded with ``cfg.seed``, and the checkpoint stores ``g``'s state and torch's
global RNG state (for dropout inside the model) next to the weights, optimizer and EMA. So a run stopped at
step k and resumed in a new process continues *bit for bit* as if never stopped (on CPU; GPU kernels may not
be deterministic). The model's initialisation is the caller's business: seed before building it.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .objective import diffusion_loss
from .schedule import NoiseSchedule


@dataclass
class TrainConfig:
    """Optimisation settings for :func:`train_diffusion`."""

    steps: int = 2000          # optimizer steps in total (a resumed run continues up to this)
    batch_size: int = 128      # images (or latents) per step, drawn with replacement
    lr: float = 1e-3           # peak AdamW learning rate, constant after warm-up
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    warmup: int = 100          # linear LR warm-up over this many steps (0 = none)
    ema_decay: float = 0.999   # θ_ema ← decay·θ_ema + (1 − decay)·θ after each step; sample with θ_ema
    grad_clip: float = 1.0     # clip the global gradient norm to this (0 = no clipping, norm still recorded)
    log_every: int = 50        # steps between progress-bar updates and "log" callbacks
    sample_every: int = 0      # steps between "sample" callbacks (0 = never)
    ckpt_every: int = 500      # steps between checkpoints (one more is always written at the end)
    seed: int = 0              # seeds the generator for batches, t, ε and condition dropout
    p_uncond: float = 0.0      # condition dropout for classifier-free guidance (notebook 05): P(y → null label)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TrainResult:
    model: nn.Module        # the raw weights θ after the last step
    ema: nn.Module          # the EMA weights θ_ema (AveragedModel.module): sample with these
    history: list = field(default_factory=list)  # (step, loss, lr, grad_norm, seconds) per step, across resumes
    seconds: float = 0.0    # wall time of this call
    steps_done: int = 0     # optimizer steps taken in this call (0 if the checkpoint was already complete)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up from lr/warmup to lr over ``cfg.warmup`` steps, then constant."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else cfg.lr


def train_diffusion(model: nn.Module, data: Tensor, sched: NoiseSchedule, cfg: TrainConfig | None = None, *,
                    labels: Tensor | None = None, num_classes: int | None = None,
                    ckpt_path: str | Path | None = None, resume: bool = True, model_config: dict | None = None,
                    kind: str = "pixel_ddpm", callback: Optional[Callable[[dict], None]] = None,
                    progress: bool = True) -> TrainResult:
    """Train ε_θ on ``data`` (N, C, H, W) with the ε-prediction loss (LDM Eq. 1/2); returns a :class:`TrainResult`.

    ``labels`` (N,) optional class labels, passed as ``model(x_t, t, y=labels[idx])``. With ``cfg.p_uncond > 0``
    each label is replaced, with that probability, by the null label ``num_classes`` (so the model needs
    num_classes + 1 label embeddings) — that is classifier-free guidance's training (notebook 05).
    ``num_classes`` defaults to ``model_config["num_classes"]``, else ``labels.max() + 1``.
    ``callback(event)`` gets ``dict(event="log", step, loss, lr, grad_norm, history, model, ema)`` every
    ``log_every`` steps and ``dict(event="sample", step, model, ema)`` every ``sample_every`` steps.
    With ``ckpt_path`` a checkpoint is written every ``ckpt_every`` steps and at the end, and if one exists
    (and ``resume``) training continues from it; both ``model`` and torch's global RNG are restored.
    """
    t_call = time.perf_counter()
    cfg = cfg or TrainConfig()
    device = next(model.parameters()).device
    model_config = dict(model_config or {})
    N = data.shape[0]
    if labels is not None and labels.shape[0] != N:
        raise ValueError(f"labels has {labels.shape[0]} entries but data has {N} examples; they must pair up")
    if labels is not None and num_classes is None:
        num_classes = int(model_config.get("num_classes", int(labels.max()) + 1))
    g = torch.Generator().manual_seed(cfg.seed)  # CPU: the one stream of randomness of this loop
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    step, history, train_seconds = 0, [], 0.0

    if ckpt_path is not None and resume and Path(ckpt_path).exists():
        ckpt = load_checkpoint(ckpt_path, kind=kind)
        old = {k: v for k, v in ckpt["train_config"].items() if k not in ("steps", "log_every", "sample_every",
                                                                          "ckpt_every")}
        new = {k: v for k, v in cfg.to_dict().items() if k in old}
        if old != new:
            warnings.warn(f"resuming {ckpt_path} with different settings ({old} → {new}); "
                          "the run will not match an uninterrupted one", stacklevel=2)
        model.load_state_dict(ckpt["model"])
        ema.module.load_state_dict(ckpt["ema"])
        ema.n_averaged.copy_(ckpt["ema_n_averaged"])
        opt.load_state_dict(ckpt["optimizer"])
        g.set_state(ckpt["generator_state"])
        torch.set_rng_state(ckpt["rng_state"])
        step, history = ckpt["step"], [tuple(h) for h in ckpt["history"]]
        train_seconds = history[-1][4] if history else 0.0

    def checkpoint() -> None:
        payload = dict(model=model.state_dict(), ema=ema.module.state_dict(), ema_n_averaged=ema.n_averaged,
                       optimizer=opt.state_dict(), step=step, history=[list(h) for h in history],
                       generator_state=g.get_state(), rng_state=torch.get_rng_state(),
                       train_config=cfg.to_dict())
        save_checkpoint(ckpt_path, payload, kind=kind, config=model_config)

    start_step = step
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc=kind, dynamic_ncols=True)
    t0 = time.perf_counter() - train_seconds
    while step < cfg.steps:
        # ---- a batch: indices, then (optionally) labels with condition dropout, all from g
        idx = torch.randint(N, (cfg.batch_size,), generator=g)  # (B,)
        x0 = data[idx].to(device)  # (B, C, H, W)
        kw = {}
        if labels is not None:
            y = labels[idx]  # (B,)
            if cfg.p_uncond > 0:
                drop = torch.rand(cfg.batch_size, generator=g) < cfg.p_uncond  # (B,) bool
                y = torch.where(drop, torch.full_like(y, num_classes), y)  # null label = num_classes
            kw["y"] = y.to(device)
        # ---- one optimizer step on L = ‖ε − ε_θ(x_t, t)‖²  (t and ε drawn from g inside)
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = diffusion_loss(model, x0, sched.alpha_bar, generator=g, **kw)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # clip_grad_norm_ returns the norm *before* clipping; max_norm=inf only measures it
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        opt.step()
        ema.update_parameters(model)
        step += 1
        history.append((step, loss.item(), lr, grad_norm.item(), time.perf_counter() - t0))
        bar.update(1)
        # ---- logging, samples, checkpoints
        if (cfg.log_every > 0 and step % cfg.log_every == 0) or step == cfg.steps:
            recent = [h[1] for h in history[-max(cfg.log_every, 1):]]
            mean_loss = sum(recent) / len(recent)
            bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.1e}")
            if callback is not None:
                callback(dict(event="log", step=step, loss=mean_loss, lr=lr, grad_norm=history[-1][3],
                              history=history, model=model, ema=ema.module))
                model.train()  # in case the callback sampled in eval mode
        if callback is not None and cfg.sample_every > 0 and step % cfg.sample_every == 0:
            callback(dict(event="sample", step=step, model=model, ema=ema.module))
            model.train()
        if ckpt_path is not None and ((cfg.ckpt_every > 0 and step % cfg.ckpt_every == 0) or step == cfg.steps):
            checkpoint()
    bar.close()
    model.eval()
    ema.module.eval()
    return TrainResult(model=model, ema=ema.module, history=history, seconds=time.perf_counter() - t_call,
                       steps_done=step - start_step)


def load_model(path: str | Path, build_fn: Callable[[dict], nn.Module], kind: str | tuple | None = None,
               ema: bool = True, map_location="cpu") -> nn.Module:
    """Rebuild a model from a checkpoint: ``build_fn(ckpt["config"])``, then the EMA (default) or raw weights.

    Returned in eval mode. E.g. ``load_model("ckpt/ddpm.pt", lambda c: UNet(UNetConfig(**c)))``.
    """
    ckpt = load_checkpoint(path, kind=kind, map_location=map_location)
    model = build_fn(ckpt["config"])
    model.load_state_dict(ckpt["ema" if ema else "model"])
    return model.eval()
