"""The training loops: AdamW, warm-up, EMA, atomic checkpoints, exact resume.  Notebooks 02–06.

:func:`train_diffusion` trains the pixel DDPM (notebook 02, L_DM = LDM Eq. 1) and the latent one (notebook 04,
L_LDM = LDM Eq. 2): only ``data`` changes, images in [−1, 1] or scaled latents z = s·E(x).
:func:`train_autoencoder` trains the first stage ℰ, 𝒟 with its discriminator (notebook 03, LDM App. G Eq. 25),
with the same checkpoint and resume machinery.

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
from .guidance import attribute_dropout, condition_dropout
from .losses import AutoencoderLossConfig, PerceptualLoss, adaptive_weight, hinge_d_loss, hinge_g_loss, l1
from .objective import diffusion_loss
from .schedule import NoiseSchedule


@dataclass
class TrainConfig:
    """Optimisation settings for :func:`train_diffusion` and :func:`train_autoencoder` (which ignores the EMA and
    condition-dropout fields)."""

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
    p_uncond: float = 0.0      # condition dropout for classifier-free guidance (notebook 05): P(y → null condition)
    p_unspecified: float = 0.0 # attribute vectors only (notebook 06): P(one attribute → ∅), each entry on its own
    max_seconds: float = 0.0   # also stop once training has taken this long (0 = no limit): equal-time comparisons

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
    # one row per step, across resumes: (step, loss, lr, grad_norm, seconds) for train_diffusion,
    # (step, rec_loss, kl, g_loss, d_loss, lambda, seconds) for train_autoencoder
    history: list = field(default_factory=list)
    seconds: float = 0.0    # wall time of this call
    steps_done: int = 0     # optimizer steps taken in this call (0 if the checkpoint was already complete)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up from lr/warmup to lr over ``cfg.warmup`` steps, then constant."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else cfg.lr


# ---- resume helpers shared by train_diffusion and train_autoencoder
_FREE_ON_RESUME = ("steps", "max_seconds", "log_every", "sample_every", "ckpt_every")  # may change without changing the run


def _warn_if_changed(path, saved: dict, current: dict) -> None:
    """Warn when a run resumes with settings that make it differ from an uninterrupted one."""
    old = {k: v for k, v in saved.items() if k not in _FREE_ON_RESUME}
    new = {k: v for k, v in current.items() if k in old}
    if old != new:
        warnings.warn(f"resuming {path} with different settings ({old} → {new}); "
                      "the run will not match an uninterrupted one", stacklevel=3)


def _rng_payload(g: torch.Generator) -> dict:
    """The loop's generator and torch's global RNG state (for dropout), as checkpoint entries."""
    return dict(generator_state=g.get_state(), rng_state=torch.get_rng_state())


def _restore_rng(ckpt: dict, g: torch.Generator) -> None:
    g.set_state(ckpt["generator_state"])
    torch.set_rng_state(ckpt["rng_state"])


def train_diffusion(model: nn.Module, data: Tensor, sched: NoiseSchedule, cfg: TrainConfig | None = None, *,
                    labels: Tensor | None = None, num_classes: int | None = None,
                    null_condition: Tensor | None = None, ckpt_path: str | Path | None = None, resume: bool = True,
                    model_config: dict | None = None,
                    kind: str = "pixel_ddpm", callback: Optional[Callable[[dict], None]] = None,
                    progress: bool = True, extra: dict | None = None) -> TrainResult:
    """Train ε_θ on ``data`` (N, C, H, W) with the ε-prediction loss (LDM Eq. 1/2); returns a :class:`TrainResult`.

    ``labels`` (N, …) optional conditions, passed as ``model(x_t, t, y=labels[idx])``: class ids (N,), or token
    ids (N, L) / attribute vectors (N, M) for a :class:`~minildm.conditioning.ConditionalUNet` with a text /
    attribute encoder. With ``cfg.p_uncond > 0`` each example's condition is replaced, with that probability, by
    the null condition — classifier-free guidance's training (notebook 05,
    :func:`~minildm.guidance.condition_dropout`); ``cfg.p_unspecified`` first replaces single attributes by ∅
    (:func:`~minildm.guidance.attribute_dropout`). ``null_condition`` is one
    example's ∅ (e.g. the <null> prompt (L,)); by default it is the null label ``num_classes`` (so the model needs
    num_classes + 1 label embeddings), with ``num_classes`` defaulting to ``model_config["num_classes"]``, else
    ``labels.max() + 1``.
    ``callback(event)`` gets ``dict(event="log", step, loss, lr, grad_norm, history, model, ema)`` every
    ``log_every`` steps and ``dict(event="sample", step, model, ema)`` every ``sample_every`` steps.
    With ``ckpt_path`` a checkpoint is written every ``ckpt_every`` steps and at the end, and if one exists
    (and ``resume``) training continues from it; both ``model`` and torch's global RNG are restored.
    ``extra`` (plain values) is stored in every checkpoint as is: how to sample, the frozen first stage (notebook 04).
    """
    t_call = time.perf_counter()
    cfg = cfg or TrainConfig()
    device = next(model.parameters()).device
    model_config = dict(model_config or {})
    N = data.shape[0]
    if labels is not None and labels.shape[0] != N:
        raise ValueError(f"labels has {labels.shape[0]} entries but data has {N} examples; they must pair up")
    if labels is not None and null_condition is None:
        if labels.ndim > 1 and (cfg.p_uncond > 0 or cfg.p_unspecified > 0):
            raise ValueError(f"labels of shape {tuple(labels.shape)} are not class ids: condition dropout needs their "
                             "null condition, e.g. null_condition=tokenizer.null() for prompts, or the all-∅ vector "
                             "torch.full((M,), 2) for attribute vectors")
        if num_classes is None:
            nc = model_config.get("num_classes")
            num_classes = int(nc) if nc is not None else int(labels.max()) + 1
        null_condition = torch.tensor(num_classes)  # the null label
    g = torch.Generator().manual_seed(cfg.seed)  # CPU: the one stream of randomness of this loop
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    step, history, train_seconds = 0, [], 0.0

    if ckpt_path is not None and resume and Path(ckpt_path).exists():
        ckpt = load_checkpoint(ckpt_path, kind=kind)
        _warn_if_changed(ckpt_path, ckpt["train_config"], cfg.to_dict())
        model.load_state_dict(ckpt["model"])
        ema.module.load_state_dict(ckpt["ema"])
        ema.n_averaged.copy_(ckpt["ema_n_averaged"])
        opt.load_state_dict(ckpt["optimizer"])
        _restore_rng(ckpt, g)
        step, history = ckpt["step"], [tuple(h) for h in ckpt["history"]]
        train_seconds = history[-1][4] if history else 0.0

    def checkpoint() -> None:
        payload = dict(model=model.state_dict(), ema=ema.module.state_dict(), ema_n_averaged=ema.n_averaged,
                       optimizer=opt.state_dict(), step=step, history=[list(h) for h in history],
                       train_config=cfg.to_dict(), **_rng_payload(g), **(extra or {}))
        save_checkpoint(ckpt_path, payload, kind=kind, config=model_config)

    start_step = step
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc=kind, dynamic_ncols=True)
    t0 = time.perf_counter() - train_seconds
    while step < cfg.steps and not (cfg.max_seconds > 0 and time.perf_counter() - t0 >= cfg.max_seconds):
        # ---- a batch: indices, then (optionally) conditions with condition dropout, all from g
        idx = torch.randint(N, (cfg.batch_size,), generator=g)  # (B,)
        x0 = data[idx].to(device)  # (B, C, H, W)
        kw = {}
        if labels is not None:
            y = labels[idx]  # (B,), (B, L) or (B, M)
            if cfg.p_unspecified > 0:
                y = attribute_dropout(y, null_condition, cfg.p_unspecified, generator=g)  # a_m → ∅ w.p. p
            if cfg.p_uncond > 0:
                y = condition_dropout(y, null_condition, cfg.p_uncond, generator=g)  # y → ∅ with prob. p_uncond
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
    if ckpt_path is not None and step < cfg.steps and step > start_step:  # stopped by max_seconds
        checkpoint()
    bar.close()
    model.eval()
    ema.module.eval()
    return TrainResult(model=model, ema=ema.module, history=history, seconds=time.perf_counter() - t_call,
                       steps_done=step - start_step)


def train_autoencoder(model: nn.Module, data: Tensor, loss_cfg: AutoencoderLossConfig | None = None,
                      cfg: TrainConfig | None = None, *, feature_net: nn.Module | None = None,
                      disc: nn.Module | None = None, ckpt_path: str | Path | None = None, resume: bool = True,
                      model_config: dict | None = None, kind: str = "autoencoder_kl",
                      callback: Optional[Callable[[dict], None]] = None, progress: bool = True) -> TrainResult:
    """Train the first stage (LDM §3.1, App. G Eq. 25) on images ``data`` (N, C, H, W); returns a TrainResult.

    Per step, on a batch x drawn with the loop's generator g (which also draws z ~ q(z|x)):

    1. ℰ, 𝒟 step:  L = l1_w·|x − x̃| + p_w·d(x, x̃) + kl_w·KL/D [+ λ·disc_w·L_adv once step ≥ disc_start]
       with |x − x̃| a per-pixel mean, d the perceptual distance averaged over the batch, KL summed over latent
       dims and averaged over the batch, and D = C·H·W: exactly LDM's objective divided by D (see
       :mod:`minildm.losses`), so ``kl_weight`` keeps LDM's meaning. λ is :func:`~minildm.losses.adaptive_weight`.
    2. D_ψ step (once the GAN is on): the hinge loss on D(x) and D(x̃.detach()).

    ``feature_net`` (a net with ``features(x)``, or a ready PerceptualLoss) is needed when perceptual_weight > 0;
    ``disc`` (e.g. :class:`~minildm.losses.PatchDiscriminator`) enables the GAN, ``None`` trains without one.
    Both optimisers are AdamW with betas (0.5, 0.9), as taming's. There is no EMA: LDM's autoencoder trains
    without one, so ``result.ema`` is ``result.model``. History rows: (step, rec_loss, kl, g_loss, d_loss, λ,
    seconds), with rec_loss = l1_w·L1 + p_w·d, kl unweighted, and 0 for the GAN entries while it is off.
    ``callback`` gets ``dict(event="log", step, rec_loss, kl, g_loss, d_loss, lam, history, model, disc)`` every
    ``log_every`` steps and ``dict(event="sample", step, model, disc)`` every ``sample_every`` steps.
    Checkpoints and resume work as in :func:`train_diffusion` (bit for bit on CPU); they hold both models and
    both optimisers, and ``model_config`` (default ``model.cfg.to_dict()``) so that ``load_autoencoder`` rebuilds it.
    """
    t_call = time.perf_counter()
    cfg, loss_cfg = cfg or TrainConfig(), loss_cfg or AutoencoderLossConfig()
    device = next(model.parameters()).device
    if model_config is None:
        model_config = model.cfg.to_dict() if hasattr(model, "cfg") else {}
    perceptual = None
    if loss_cfg.perceptual_weight > 0:
        if feature_net is None:
            raise ValueError(f"perceptual_weight={loss_cfg.perceptual_weight} needs a feature_net (the course's MNIST "
                             "classifier, or minildm.losses.vgg_features()); pass one, or set perceptual_weight=0")
        perceptual = feature_net if isinstance(feature_net, PerceptualLoss) else PerceptualLoss(feature_net)
        perceptual.to(device)
    N, D = data.shape[0], data[0].numel()  # D = C·H·W pixels per image
    g = torch.Generator().manual_seed(cfg.seed)  # CPU: batches and posterior samples
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.5, 0.9), weight_decay=cfg.weight_decay)
    opt_d = None if disc is None else torch.optim.AdamW(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9),
                                                        weight_decay=cfg.weight_decay)
    step, history, train_seconds = 0, [], 0.0

    if ckpt_path is not None and resume and Path(ckpt_path).exists():
        ckpt = load_checkpoint(ckpt_path, kind=kind)
        _warn_if_changed(ckpt_path, ckpt["train_config"], cfg.to_dict())
        _warn_if_changed(ckpt_path, ckpt["loss_config"], loss_cfg.to_dict())
        if ckpt["disc"] is not None and disc is None:
            raise ValueError(f"{ckpt_path} was trained with a discriminator: pass disc= (built as before) to resume")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if disc is not None and ckpt["disc"] is not None:  # a checkpoint without one: D starts fresh
            disc.load_state_dict(ckpt["disc"])
            opt_d.load_state_dict(ckpt["disc_optimizer"])
        _restore_rng(ckpt, g)
        step, history = ckpt["step"], [tuple(h) for h in ckpt["history"]]
        train_seconds = history[-1][6] if history else 0.0

    def checkpoint() -> None:
        payload = dict(model=model.state_dict(), optimizer=opt.state_dict(),
                       disc=None if disc is None else disc.state_dict(),
                       disc_optimizer=None if opt_d is None else opt_d.state_dict(),
                       step=step, history=[list(h) for h in history], train_config=cfg.to_dict(),
                       loss_config=loss_cfg.to_dict(), **_rng_payload(g))
        save_checkpoint(ckpt_path, payload, kind=kind, config=model_config)

    def set_train() -> None:
        model.train()
        if disc is not None:
            disc.train()

    start_step = step
    set_train()
    clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc=kind, dynamic_ncols=True)
    t0 = time.perf_counter() - train_seconds
    while step < cfg.steps:
        idx = torch.randint(N, (cfg.batch_size,), generator=g)  # (B,)
        x = data[idx].to(device)  # (B, C, H, W)
        lr = lr_at(step, cfg)
        for o in (opt, opt_d) if opt_d is not None else (opt,):
            for group in o.param_groups:
                group["lr"] = lr
        gan_on = disc is not None and step >= loss_cfg.disc_start
        # ---- ℰ, 𝒟 step:  L = L_rec + kl_w·KL/D (+ λ·disc_w·L_adv)
        x_hat, posterior = model(x, sample_posterior=True, generator=g)  # z ~ q(z|x) drawn from g
        rec_loss = loss_cfg.l1_weight * l1(x, x_hat)
        if perceptual is not None:
            rec_loss = rec_loss + loss_cfg.perceptual_weight * perceptual(x, x_hat).mean()
        kl = posterior.kl().mean()  # Σ over latent dims, mean over the batch (as LDM)
        loss = rec_loss + loss_cfg.kl_weight * kl / D
        g_loss, lam = torch.zeros(()), torch.zeros(())
        if gan_on:
            g_loss = hinge_g_loss(disc(x_hat))
            lam = adaptive_weight(rec_loss, g_loss, model.last_layer()) if loss_cfg.adaptive else torch.ones(())
            loss = loss + lam * loss_cfg.disc_weight * g_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        # ---- D_ψ step: hinge loss on real x and the detached x̃ (no gradient reaches the decoder)
        d_loss = torch.zeros(())
        if gan_on:
            d_loss = hinge_d_loss(disc(x), disc(x_hat.detach()))
            opt_d.zero_grad(set_to_none=True)  # also drops the grads the ℰ, 𝒟 step left on D_ψ
            d_loss.backward()
            nn.utils.clip_grad_norm_(disc.parameters(), clip)
            opt_d.step()
        step += 1
        history.append((step, rec_loss.item(), kl.item(), g_loss.item(), d_loss.item(), lam.item(),
                        time.perf_counter() - t0))
        bar.update(1)
        # ---- logging, samples, checkpoints
        if (cfg.log_every > 0 and step % cfg.log_every == 0) or step == cfg.steps:
            recent = history[-max(cfg.log_every, 1):]
            means = [sum(h[i] for h in recent) / len(recent) for i in range(1, 6)]
            bar.set_postfix(rec=f"{means[0]:.4f}", kl=f"{means[1]:.1f}", d=f"{means[3]:.3f}")
            if callback is not None:
                callback(dict(event="log", step=step, rec_loss=means[0], kl=means[1], g_loss=means[2],
                              d_loss=means[3], lam=means[4], history=history, model=model, disc=disc))
                set_train()  # in case the callback decoded in eval mode
        if callback is not None and cfg.sample_every > 0 and step % cfg.sample_every == 0:
            callback(dict(event="sample", step=step, model=model, disc=disc))
            set_train()
        if ckpt_path is not None and ((cfg.ckpt_every > 0 and step % cfg.ckpt_every == 0) or step == cfg.steps):
            checkpoint()
    bar.close()
    model.eval()
    if disc is not None:
        disc.eval()
    return TrainResult(model=model, ema=model, history=history, seconds=time.perf_counter() - t_call,
                       steps_done=step - start_step)


def load_model(path: str | Path, build_fn: Callable[[dict], nn.Module], kind: str | tuple | None = None,
               ema: bool = True, map_location="cpu") -> nn.Module:
    """Rebuild a model from a checkpoint: ``build_fn(ckpt["config"])``, then the EMA (default) or raw weights.

    Returned in eval mode. E.g. ``load_model("ckpt/ddpm.pt", lambda c: UNet(UNetConfig(**c)))``.
    Checkpoints without EMA weights (the autoencoder's) give the raw weights.
    """
    ckpt = load_checkpoint(path, kind=kind, map_location=map_location)
    model = build_fn(ckpt["config"])
    model.load_state_dict(ckpt["ema" if ema and "ema" in ckpt else "model"])
    return model.eval()
