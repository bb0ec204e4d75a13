"""The training loops: AdamW, warm-up, EMA, atomic checkpoints, exact resume.  Notebooks 02–06.

:func:`train_diffusion` trains the pixel DDPM (notebook 02, L_DM = LDM Eq. 1) and the latent one (notebook 04,
L_LDM = LDM Eq. 2): only ``data`` changes, images in [−1, 1] or scaled latents z = s·E(x).
:func:`train_autoencoder` trains the first stage ℰ, 𝒟 with its discriminator (notebook 03, LDM App. G Eq. 25).
Each writes out its *step* (one batch, one optimizer update) in full; what the two share — resume, the
checkpoint cadence, the progress bar, logging and sample callbacks, ``max_seconds``, stopping on a non-finite loss
and on Ctrl-C — is written once, in :class:`_Loop`.

Reproducibility, on purpose: every random draw of the loop (the batch indices, t, ε and condition dropout)
comes from one CPU generator ``g`` seeded with ``cfg.seed``, and the checkpoint stores ``g``'s state and torch's
global RNG state (for dropout inside the model) next to the weights, optimizer and EMA. So a run stopped at
step k and resumed in a new process continues *bit for bit* as if never stopped (on CPU; GPU kernels may not
be deterministic). The model's initialisation is the caller's business: seed before building it.

No run loses work: checkpoints are atomic (:mod:`minildm.checkpoint`); Ctrl-C (or a notebook's interrupt) ends
the step in progress, writes a checkpoint and then raises ``KeyboardInterrupt``, so re-running resumes there; a
non-finite loss raises :class:`NonFiniteLossError` before anything is written, so the last checkpoint on disk is
the last good one.

Mixed precision (``cfg.precision``, :func:`resolve_precision`): the weights, the optimizer, the EMA and the
checkpoint stay float32 (the *master* weights); only the forward and the loss run under ``torch.autocast`` in
bf16 (or fp16, with a ``torch.amp.GradScaler`` whose state the checkpoint keeps). The KL of the first stage is
computed in float32 too; its encoding of the data set (:mod:`minildm.latents`) and the evaluation never autocast.

Several processes (``torchrun --nproc-per-node N -m minildm train PRESET``, :mod:`minildm.distributed`): every
process runs the same generator ``g`` and draws the *global* batch (``cfg.batch_size`` indices, t, ε, condition
dropout), then computes its own rows of it, and DistributedDataParallel averages the gradients: N processes take
the step one process would on that batch (up to the rounding of the average), with the same learning rate (never
scaled). Rank 0 alone writes checkpoints and shows progress; all processes stop together. docs/TRAINING.md says
what a resume with another N keeps.
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import DIFFUSION_KINDS, CheckpointError, load_checkpoint, save_checkpoint
from .config import DictConfig
from .distributions import DiagonalGaussian
from .guidance import attribute_dropout, condition_dropout
from .losses import AutoencoderLossConfig, PerceptualLoss, adaptive_weight, hinge_d_loss, hinge_g_loss, l1
from .objective import PREDICTIONS, diffusion_loss, prediction_of
from .schedule import NoiseSchedule


@dataclass
class TrainConfig(DictConfig):
    """Optimisation settings for :func:`train_diffusion` and :func:`train_autoencoder` (which has no EMA and no
    conditions, so it ignores ``ema_decay``, ``p_uncond`` and ``p_unspecified``)."""

    steps: int = 2000          # optimizer steps in total (a resumed run continues up to this)
    batch_size: int = 128      # images (or latents) per step, drawn with replacement; the global batch under torchrun
    lr: float = 1e-3           # peak AdamW learning rate, constant after warm-up (until lr_drop_at)
    lr_drop_at: int = 0        # from this step on the lr is lr·lr_drop (0 = never): the autoencoders settle their
                               # decoder before the discriminator joins (notebook 03, §4; benchmarks/RESULTS.md)
    lr_drop: float = 0.1       # the factor lr_drop_at applies
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    warmup: int = 100          # linear LR warm-up over this many steps (0 = none)
    ema_decay: float = 0.999   # the EMA's largest decay: θ_ema ← d·θ_ema + (1 − d)·θ after each step (ema_decay_at)
    ema_power: float = 0.75    # the EMA's warm-up: d_n = min(ema_decay, 1 − (1 + n)^−ema_power) at update n
    grad_clip: float = 1.0     # clip the global gradient norm to this (0 = no clipping, norm still recorded)
    log_every: int = 50        # steps between progress-bar updates and "log" callbacks
    sample_every: int = 0      # steps between "sample" callbacks (0 = never)
    ckpt_every: int = 500      # steps between checkpoints (one more is always written at the end)
    seed: int = 0              # seeds the generator for batches, t, ε and condition dropout
    p_uncond: float = 0.0      # condition dropout for classifier-free guidance (notebook 05): P(y → null condition)
    p_unspecified: float = 0.0 # attribute vectors only (notebook 06): P(one attribute → ∅), each entry on its own
    max_seconds: float = 0.0   # also stop once training has taken this long (0 = no limit): equal-time comparisons
    precision: str | None = None  # "fp32", "bf16" or "fp16" for the forward and loss; None: by device (resolve_precision)
    target: str = "eps"        # what ε_θ learns to predict: "eps" (the noise) or "v" (√ᾱ ε − √(1 − ᾱ) x_0, needed
                               # by a zero-terminal-SNR schedule; objective.diffusion_loss, notebook 07 §2)
    compile: bool = False      # torch.compile the network the step calls (off: 2–3 min to compile; docs/TRAINING.md §4)


@dataclass
class TrainResult:
    model: nn.Module        # the raw weights θ after the last step
    ema: nn.Module          # the EMA weights θ_ema (AveragedModel.module): sample with these
    # one row per step, across resumes: (step, loss, lr, grad_norm, seconds) for train_diffusion,
    # (step, rec_loss, kl, g_loss, d_loss, lambda, D(x), D(x̃), seconds) for train_autoencoder
    history: list = field(default_factory=list)
    seconds: float = 0.0    # wall time of this call
    steps_done: int = 0     # optimizer steps taken in this call (0 if the checkpoint was already complete)


def lr_at(step: int, cfg: TrainConfig, drop: bool = True) -> float:
    """Linear warm-up from lr/warmup to lr over ``cfg.warmup`` steps, then constant; × ``cfg.lr_drop`` from step
    ``cfg.lr_drop_at`` on (if set and ``drop``: the discriminator's optimiser keeps the undropped lr)."""
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else cfg.lr
    return lr * cfg.lr_drop if drop and 0 < cfg.lr_drop_at <= step else lr


def ema_decay_at(n: int, max_decay: float, power: float = 0.75) -> float:
    """The EMA's decay at its n-th update (n = 0, 1, …): d_n = min(max_decay, 1 − (1 + n)^−power).

    Why a warm-up: with a constant decay from step 0 the EMA starts as a copy of the random initial weights and
    forgets them only at rate d per step, so in a short run much of θ_ema is early weights (at d = 0.995 and 200
    steps, 37% of its mass is the initial copy). With d_n = 1 − (1 + n)^−p, d_0 = 0 (the first update copies θ)
    and the EMA averages over about n^p recent steps, a window that grows with the run until it reaches the
    constant decay's 1/(1 − max_decay) steps. p = 1 would be the plain mean of every step's weights; p = 3/4 is
    the value k-diffusion's EMAWarmup and diffusers' EMAModel suggest for short runs (inv_gamma = 1).
    """
    return min(max_decay, 1.0 - (1.0 + n) ** -power)


class EMA(AveragedModel):
    """θ_ema, a ``torch.optim.swa_utils.AveragedModel`` with the warm-up of :func:`ema_decay_at`.

    ``ema.update_parameters(model)`` after each optimizer step: θ_ema ← d_n·θ_ema + (1 − d_n)·θ with n the number
    of updates so far (``ema.n_averaged``, saved in checkpoints, so a resumed run continues the schedule). Only
    parameters are averaged; buffers (running statistics, fixed tables) are copied from the model as they are,
    since an average of running statistics is not the statistics of the averaged network.
    """

    def __init__(self, model: nn.Module, max_decay: float, power: float = 0.75):
        def lerp(ema_params, params, n_averaged) -> None:  # θ_ema += (1 − d_n)(θ − θ_ema), all tensors at once
            torch._foreach_lerp_(ema_params, params, 1.0 - ema_decay_at(int(n_averaged), max_decay, power))

        super().__init__(model, multi_avg_fn=lerp, use_buffers=False)

    def update_parameters(self, model: nn.Module) -> None:
        super().update_parameters(model)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)


class NonFiniteLossError(FloatingPointError):
    """Training met a loss (or gradient norm) that is NaN or infinite; nothing was written after it."""


_FREE_ON_RESUME = ("steps", "max_seconds", "log_every", "sample_every", "ckpt_every")  # may change without changing the run
PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_precision(precision: str | None, device: torch.device | str) -> str:
    """The precision a run on ``device`` uses: ``precision`` if given ("fp32", "bf16", "fp16"), else by device.

    None: bf16 on a GPU that has it (Ampere or newer: A100, L4, H100), fp16 with a GradScaler on one that does not
    (a T4, a V100), fp32 on the CPU (bf16 autocast measured 6–10× slower than fp32 on the course's 2-core CPU:
    docs/TRAINING.md §4) and on Apple's mps. Explicit values are honoured where torch can autocast them, else a
    ValueError that says so.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    if precision is None:
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} or None (chosen by device), got {precision!r}")
    if precision == "fp32":
        return precision
    if not torch.amp.is_autocast_available(device.type):
        raise ValueError(f"precision={precision!r}: torch cannot autocast on {device.type}; use precision='fp32' "
                         "(or None)")
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ValueError("precision='bf16': this GPU has no bfloat16 arithmetic (compute capability below 8.0, "
                         "e.g. a T4 or a V100); use 'fp16' (with its GradScaler), or None to choose by device")
    if precision == "fp16" and not cuda:
        try:  # CPU fp16 autocast and its GradScaler exist in recent torch only
            torch.amp.GradScaler(device.type)
            with torch.autocast(device.type, dtype=torch.float16):
                torch.ones(2, 2) @ torch.ones(2, 2)
        except (RuntimeError, AssertionError, TypeError) as e:
            raise ValueError(f"precision='fp16' is not supported on {device.type} by this torch "
                             f"({torch.__version__}: {e}); use 'bf16' or 'fp32'") from None
    return precision


def _warn_if_changed(path, saved: dict, current: dict) -> None:
    """Warn when a run resumes with settings that make it differ from an uninterrupted one."""
    old = {k: v for k, v in saved.items() if k not in _FREE_ON_RESUME}
    new = {k: v for k, v in current.items() if k in old}
    if old != new:
        warnings.warn(f"resuming {path} with different settings ({old} → {new}); "
                      "the run will not match an uninterrupted one", stacklevel=4)


def check_resumable(ckpt: dict, path, configs=("train_config",)) -> None:
    """A CheckpointError unless ``ckpt`` (loaded from ``path``) holds a training run's state, so that training can
    resume from it; a release file (the shipped weights, :func:`minildm.release.export_diffusion`) does not."""
    missing = [k for k in ("step", "history", "generator_state", "rng_state", "optimizer", *configs) if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"{path} cannot be resumed: it holds no training state ({', '.join(missing)} missing), as a release "
            "checkpoint (the shipped weights, or one written by export) does not; train into another path "
            "(python -m minildm train PRESET --out new.pt, or ckpt_path=), or delete it to start over")


def _check_same_schedule(ckpt: dict, sampling: dict | None, path) -> None:
    """A CheckpointError if the run in ``ckpt`` was trained with another β schedule than the one this call trains
    with (``sampling``, :func:`minildm.release.sampling_payload`): resumed, or loaded as finished, its ε_θ would be
    sampled with the wrong ᾱ_t, silently."""
    stored_settings = {**(ckpt.get("sampling") or {}), "prediction": prediction_of(ckpt.get("sampling"))}
    for key, what in (("schedule", "β schedule"), ("prediction", "prediction target")):
        stored, current = stored_settings.get(key), (sampling or {}).get(key)
        if stored is not None and current is not None and stored != current:
            raise CheckpointError(f"{path} was trained with the {stored!r} {what}, but "
                                  f"{sampling.get('preset', 'this run')} now uses {current!r}; train into another "
                                  "path (ckpt_path=), or delete it to start over")


def _all_finite(obj) -> bool:
    """No NaN or infinity in any floating-point tensor of a (nested) checkpoint payload."""
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_all_finite(v) for v in obj)
    return True


class _Loop:
    """What both training loops share around their step: resume, cadence, progress, time budget, safe stops.

    A loop body calls :meth:`resume` once (it returns the checkpoint to restore the models from, or None), then
    :meth:`run` with its ``step()`` — one optimizer update that returns the history row's values after ``step``
    and before ``seconds`` (the first one its loss) — and ``payload()``, the checkpoint entries besides the loop's
    own. The step calls its networks through :meth:`prepare`, computes the batch's ``rows`` of this process, runs
    its forward and loss under :meth:`autocast` and its backward and update through ``scaler``.
    """

    def __init__(self, cfg: TrainConfig, *, ckpt_path, kind: str, model_config: dict, resume: bool,
                 progress: bool, configs: dict, device: torch.device):
        self.cfg, self.ckpt_path, self.kind, self.model_config = cfg, ckpt_path, kind, model_config
        self.configs = configs  # e.g. {"train_config": cfg.to_dict()}: stored, and compared on resume
        self.do_resume, self.progress = resume, progress
        self.g = torch.Generator().manual_seed(cfg.seed)  # CPU: the one stream of randomness of the loop
        self.step, self.history, self.train_seconds = 0, [], 0.0
        self._stop_requested = False
        self.rows = distributed.rows(cfg.batch_size)  # this process's rows of each global batch (all in one process)
        if distributed.rank() > 0:  # dropout inside the model: a stream of its own per process (rank 0: as alone)
            torch.manual_seed(cfg.seed + 1_000_003 * distributed.rank())
        self.device, self.precision = device, resolve_precision(cfg.precision, device)
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        # fp16 only: the loss is multiplied by a scale before backward so small gradients do not underflow; with
        # enabled=False, scale(loss) is loss and step(opt) is opt.step()
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")

    def autocast(self):
        """The context for the forward and the loss: ``torch.autocast`` in bf16/fp16, nothing in fp32."""
        return contextlib.nullcontext() if self.dtype is None else torch.autocast(self.device.type, dtype=self.dtype)

    def prepare(self, module: nn.Module) -> nn.Module:
        """``module`` as the step calls it: DistributedDataParallel across processes, torch.compile'd with
        ``cfg.compile``; the module itself otherwise. The step saves and averages the module itself, never this."""
        net = distributed.wrap(module)
        return torch.compile(net) if self.cfg.compile else net

    def resume(self) -> dict | None:
        """Load the checkpoint if there is one to resume: restores the loop's state and returns it (else None)."""
        if self.ckpt_path is None or not self.do_resume or not Path(self.ckpt_path).exists():
            return None
        ckpt = load_checkpoint(self.ckpt_path, kind=self.kind)
        check_resumable(ckpt, self.ckpt_path, self.configs)
        for key, current in self.configs.items():
            _warn_if_changed(self.ckpt_path, ckpt[key], current)
        if ckpt.get("precision", "fp32") != self.precision:  # checkpoints before mixed precision were all fp32
            warnings.warn(f"resuming {self.ckpt_path}, trained in {ckpt.get('precision', 'fp32')}, in "
                          f"{self.precision}; the run will not match an uninterrupted one", stacklevel=3)
        self.g.set_state(ckpt["generator_state"])
        states, rank = ckpt.get("rng_states") or [ckpt["rng_state"]], distributed.rank()  # one per process
        if rank < len(states):
            torch.set_rng_state(states[rank])
        else:  # more processes than the run that wrote it: a fresh stream for this one
            torch.manual_seed(self.cfg.seed + 1_000_003 * rank + ckpt["step"])
        if ckpt.get("grad_scaler"):  # fp16: the loss scale and its growth counter
            self.scaler.load_state_dict(ckpt["grad_scaler"])
        self.step, self.history = ckpt["step"], [tuple(h) for h in ckpt["history"]]
        self.train_seconds = self.history[-1][-1] if self.history else 0.0
        return ckpt

    def _diverged(self, what: str) -> NonFiniteLossError:
        """The error for a run that met a NaN or an infinity: what, the usual causes, and which checkpoint is kept."""
        cfg = self.cfg
        last = load_checkpoint(self.ckpt_path)["step"] if self.ckpt_path and Path(self.ckpt_path).exists() else None
        return NonFiniteLossError(
            f"{self.kind}: {what}; the usual causes are a learning rate too high for this model (lr={cfg.lr:g}: try a "
            f"third of it, or a longer warm-up than {cfg.warmup}), no gradient clipping (grad_clip={cfg.grad_clip:g}), "
            "or data outside [−1, 1]. " + (f"The last good checkpoint, step {last}, is kept at {self.ckpt_path}; "
                                           "re-running resumes from it." if last is not None else
                                           "No checkpoint was written."))

    def save(self, payload: dict) -> None:
        if not _all_finite(payload):  # a finite loss, then an update that overflowed: never save that as "good"
            raise self._diverged(f"non-finite weights after step {self.step}, not saved")
        states = distributed.gather(torch.get_rng_state())  # every process's stream for the model's dropout
        if distributed.is_main():  # one writer; the others wait at the barrier until the file is in place
            save_checkpoint(self.ckpt_path, dict(**payload, step=self.step, history=[list(h) for h in self.history],
                                                 generator_state=self.g.get_state(), rng_state=states[0],
                                                 **(dict(rng_states=states) if len(states) > 1 else {}),
                                                 precision=self.precision, grad_scaler=self.scaler.state_dict(),
                                                 **self.configs), kind=self.kind, config=self.model_config)
        distributed.barrier()

    def _on_sigint(self, signum, frame) -> None:
        self._stop_requested = True  # finish the step in progress, then checkpoint and stop

    def run(self, step: Callable[[], tuple], payload: Callable[[], dict], log: Callable[[list], None],
            sample: Callable[[], None]) -> int:
        """Run ``step`` until ``cfg.steps`` (or ``cfg.max_seconds``); returns the steps taken in this call.

        ``log(recent_rows)`` every ``log_every`` steps and at the end, ``sample()`` every ``sample_every`` steps;
        a checkpoint every ``ckpt_every`` steps, at the end, when stopped by the time budget, and on Ctrl-C.
        Across processes every decision is shared: the row is averaged over them (a NaN on one is a NaN on all), and
        a Ctrl-C or the time budget on any one stops them all after the same step; only rank 0 logs and samples.
        """
        cfg, start, main_rank, n = self.cfg, self.step, distributed.is_main(), distributed.world()
        if n > 1 and main_rank:  # the learning-rate rule for the global batch, said out loud
            print(f"{self.kind}: {n} processes; lr {cfg.lr:g} for global batch {cfg.batch_size} = {n} × "
                  f"{cfg.batch_size // n}; not scaled", flush=True)
        # the bar is named after the run (its checkpoint's file name: latent_mnist_text, not the kind latent_mnist),
        # and a finished run that is only loaded draws none (no empty "100% 1000/1000" bar)
        name = Path(self.ckpt_path).stem if self.ckpt_path else self.kind
        self.bar = bar = tqdm(total=cfg.steps, initial=self.step, desc=name, dynamic_ncols=True,
                              disable=not (self.progress and main_rank) or self.step >= cfg.steps)
        t0 = time.perf_counter() - self.train_seconds
        main = threading.current_thread() is threading.main_thread()
        old_handler = signal.signal(signal.SIGINT, self._on_sigint) if main else None
        try:
            while self.step < cfg.steps and not (cfg.max_seconds > 0 and
                                                 distributed.anyone(time.perf_counter() - t0 >= cfg.max_seconds)):
                scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
                row = distributed.mean(step())  # each process's row is for its rows of the batch: their mean
                skipped = scale is not None and self.scaler.get_scale() < scale  # fp16: inf/NaN grads, no update
                if not math.isfinite(row[0]) or not (skipped or all(math.isfinite(v) for v in row)):
                    raise self._diverged(f"non-finite loss at step {self.step + 1} ({row})")
                self.step += 1
                self.history.append((self.step, *row, time.perf_counter() - t0))
                bar.update(1)
                if main_rank and ((cfg.log_every > 0 and self.step % cfg.log_every == 0) or self.step == cfg.steps):
                    log(self.history[-max(cfg.log_every, 1):])
                if main_rank and cfg.sample_every > 0 and self.step % cfg.sample_every == 0:
                    sample()
                if self.ckpt_path is not None and ((cfg.ckpt_every > 0 and self.step % cfg.ckpt_every == 0)
                                                   or self.step == cfg.steps):
                    self.save(payload())
                if distributed.anyone(self._stop_requested):
                    if self.ckpt_path is not None:
                        self.save(payload())
                    raise KeyboardInterrupt(f"{self.kind} interrupted at step {self.step}" + (
                        f"; checkpoint written to {self.ckpt_path}, re-run to resume" if self.ckpt_path else ""))
            if self.ckpt_path is not None and start < self.step < cfg.steps:  # stopped by max_seconds
                self.save(payload())
        finally:
            if main:
                signal.signal(signal.SIGINT, old_handler)
            bar.close()
        return self.step - start


def train_diffusion(model: nn.Module, data: Tensor, sched: NoiseSchedule, cfg: TrainConfig | None = None, *,
                    labels: Tensor | None = None, num_classes: int | None = None,
                    null_condition: Tensor | None = None, ckpt_path: str | Path | None = None, resume: bool = True,
                    model_config: dict | None = None,
                    kind: str = "pixel_mnist", callback: Optional[Callable[[dict], None]] = None,
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
    With ``ckpt_path`` a checkpoint is written every ``ckpt_every`` steps, at the end, when ``max_seconds`` runs out
    and on Ctrl-C, and if one exists (and ``resume``) training continues from it; both ``model`` and torch's global
    RNG are restored. A non-finite loss raises :class:`NonFiniteLossError`, keeping the last good checkpoint.
    ``kind`` is the checkpoint's kind, one of :data:`minildm.checkpoint.DIFFUSION_KINDS`.
    ``extra`` (plain values) is stored in every checkpoint as is: how to sample, the frozen first stage (notebook 04).
    ``cfg.precision`` chooses the forward's arithmetic (:func:`resolve_precision`; the weights stay float32), and
    under torchrun each process computes its rows of every global batch (the module docstring, docs/TRAINING.md).
    """
    t_call = time.perf_counter()
    cfg = cfg or TrainConfig()
    if cfg.target not in PREDICTIONS:
        raise ValueError(f"TrainConfig.target must be 'eps' (predict the noise) or 'v' (predict √ᾱ ε − √(1 − ᾱ) x_0), "
                         f"got {cfg.target!r}")
    if cfg.target == "eps" and float(sched.alpha_bar[-1]) == 0.0:
        raise ValueError(f"the {sched.name!r} schedule reaches zero SNR (ᾱ_T = 0), where an ε-model's x̂_0 = "
                         "(x_T − ε̂)/√ᾱ_T is 0/0: train it with TrainConfig(target='v') (Lin et al. 2024, §3.2)")
    if kind not in DIFFUSION_KINDS:
        raise ValueError(f"kind must be one of the diffusion checkpoint kinds {DIFFUSION_KINDS} (got {kind!r})")
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
    loop = _Loop(cfg, ckpt_path=ckpt_path, kind=kind, model_config=model_config, resume=resume, progress=progress,
                 configs=dict(train_config=cfg.to_dict()), device=device)
    g, rows, scaler = loop.g, loop.rows, loop.scaler
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMA(model, cfg.ema_decay, cfg.ema_power)
    ckpt = loop.resume()
    if ckpt is not None:
        _check_same_schedule(ckpt, (extra or {}).get("sampling"), ckpt_path)
        model.load_state_dict(ckpt["model"])
        ema.module.load_state_dict(ckpt["ema"])
        ema.n_averaged.copy_(ckpt["ema_n_averaged"])
        opt.load_state_dict(ckpt["optimizer"])
    net = loop.prepare(model)  # what the step calls: the model, or its DDP (and torch.compile) wrapper

    def one_step() -> tuple:
        # ---- a batch: indices, then (optionally) conditions with condition dropout, all from g
        idx = torch.randint(N, (cfg.batch_size,), generator=g)  # (B,) the global batch, in every process
        x0 = data[idx].to(device)  # (B, C, H, W)
        kw = {}
        if labels is not None:
            y = labels[idx]  # (B,), (B, L) or (B, M)
            if cfg.p_unspecified > 0:
                y = attribute_dropout(y, null_condition, cfg.p_unspecified, generator=g)  # a_m → ∅ w.p. p
            if cfg.p_uncond > 0:
                y = condition_dropout(y, null_condition, cfg.p_uncond, generator=g)  # y → ∅ with prob. p_uncond
            kw["y"] = y.to(device)
        # ---- one optimizer step on L = ‖ε − ε_θ(x_t, t)‖²  (t and ε drawn from g inside; this process's rows)
        lr = lr_at(loop.step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        with loop.autocast():  # bf16/fp16 for the forward and the loss (fp32: nothing); the weights stay float32
            loss = diffusion_loss(net, x0, sched.alpha_bar, generator=g, rows=rows, target=cfg.target, **kw)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # loss.backward() (fp16: of loss × scale); across processes grads averaged
        scaler.unscale_(opt)  # fp16: the gradients ÷ scale, before clipping (otherwise nothing)
        # clip_grad_norm_ returns the norm *before* clipping; max_norm=inf only measures it
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        scaler.step(opt)  # opt.step() (fp16: skipped if a gradient is inf/NaN)
        scaler.update()  # fp16: the scale halves after a skip, grows after 2000 good steps
        ema.update_parameters(model)
        return loss.item(), lr, grad_norm.item()  # history row: (step, loss, lr, grad_norm, seconds)

    def payload() -> dict:
        return dict(model=model.state_dict(), ema=ema.module.state_dict(), ema_n_averaged=ema.n_averaged,
                    optimizer=opt.state_dict(), **(extra or {}))

    def log(recent: list) -> None:
        mean_loss = sum(h[1] for h in recent) / len(recent)
        lr = recent[-1][2]
        loop.bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.1e}")
        if callback is not None:
            callback(dict(event="log", step=loop.step, loss=mean_loss, lr=lr, grad_norm=recent[-1][3],
                          history=loop.history, model=model, ema=ema.module))
            model.train()  # in case the callback sampled in eval mode

    def sample() -> None:
        if callback is not None:
            callback(dict(event="sample", step=loop.step, model=model, ema=ema.module))
            model.train()

    model.train()
    steps_done = loop.run(one_step, payload, log, sample)
    model.eval()
    ema.module.eval()
    return TrainResult(model=model, ema=ema.module, history=loop.history, seconds=time.perf_counter() - t_call,
                       steps_done=steps_done)


class _Reconstruction(nn.Module):
    """x → (x̃, q(z|x)) for the first stage's training step: ``AutoencoderKL.forward`` with z = μ + σ·ε drawn from
    ``g``, where ε is drawn for the whole global batch (``batch_size`` rows) and this process keeps its ``rows``, so
    N processes draw what one would. q(z|x) is built in float32 (its KL too) even under autocast. DDP wraps this."""

    def __init__(self, ae: nn.Module, g: torch.Generator, batch_size: int, rows: slice):
        super().__init__()
        self.ae, self.g, self.batch_size, self.rows = ae, g, batch_size, rows

    def forward(self, x: Tensor) -> tuple[Tensor, DiagonalGaussian]:
        q = self.ae.encode(x)
        q = DiagonalGaussian(q.mean.float(), q.logvar.float())  # (b, C, h, w); a no-op in float32
        eps = torch.randn((self.batch_size, *q.mean.shape[1:]), generator=self.g, device=self.g.device,
                          dtype=q.mean.dtype)[self.rows]  # ε ~ N(0, I) for the global batch; these rows
        return self.ae.decode(q.mean + q.std * eps.to(q.mean.device)), q


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
    D(x), D(x̃), seconds), with rec_loss = l1_w·L1 + p_w·d, kl unweighted, D(x) and D(x̃) the discriminator's mean
    logit on the real and the reconstructed batch (its D step), and 0 for the GAN entries while it is off.
    ``callback`` gets ``dict(event="log", step, rec_loss, kl, g_loss, d_loss, lam, d_real, d_fake, history, model,
    disc)`` every
    ``log_every`` steps and ``dict(event="sample", step, model, disc)`` every ``sample_every`` steps.
    Checkpoints, resume (bit for bit on CPU), ``max_seconds``, the safe stops, ``cfg.precision`` and several
    processes work as in :func:`train_diffusion` (under torchrun each process computes λ from its own rows);
    checkpoints hold both models and both optimisers, and ``model_config`` (default ``model.cfg.to_dict()``) so that
    :func:`~minildm.autoencoder.load_autoencoder` rebuilds it.
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
    loop = _Loop(cfg, ckpt_path=ckpt_path, kind=kind, model_config=model_config, resume=resume, progress=progress,
                 configs=dict(train_config=cfg.to_dict(), loss_config=loss_cfg.to_dict()), device=device)
    g, rows, scaler = loop.g, loop.rows, loop.scaler  # g (CPU): batches and posterior samples
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.5, 0.9), weight_decay=cfg.weight_decay)
    opt_d = None if disc is None else torch.optim.AdamW(disc.parameters(), lr=cfg.lr * loss_cfg.disc_lr_scale,
                                                        betas=(0.5, 0.9), weight_decay=cfg.weight_decay)
    ckpt = loop.resume()
    if ckpt is not None:
        if ckpt["disc"] is not None and disc is None:
            raise ValueError(f"{ckpt_path} was trained with a discriminator: pass disc= (built as before) to resume")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if disc is not None and ckpt["disc"] is not None:  # a checkpoint without one: D starts fresh
            disc.load_state_dict(ckpt["disc"])
            opt_d.load_state_dict(ckpt["disc_optimizer"])
    net = loop.prepare(_Reconstruction(model, g, cfg.batch_size, rows))  # x → (x̃, q(z|x)), as model(x) with g
    disc_net = None if disc is None else loop.prepare(disc)

    def set_train() -> None:
        model.train()
        if disc is not None:
            disc.train()

    clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")

    def one_step() -> tuple:
        idx = torch.randint(N, (cfg.batch_size,), generator=g)  # (B,) the global batch, in every process
        x = data[idx[rows]].to(device)  # (b, C, H, W): this process's rows of it (b = B in one process)
        lr = lr_at(loop.step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        for group in opt_d.param_groups if opt_d is not None else ():
            group["lr"] = lr_at(loop.step, cfg, drop=False) * loss_cfg.disc_lr_scale  # D_ψ keeps its pace
        gan_on = disc is not None and loop.step >= loss_cfg.disc_start  # L_adv in 𝒟's loss
        d_on = disc is not None and loop.step >= loss_cfg.disc_start - loss_cfg.disc_lead  # D_ψ trains
        # ---- ℰ, 𝒟 step:  L = L_rec + kl_w·KL/D (+ λ·disc_w·L_adv), the forward under autocast (bf16/fp16)
        with loop.autocast():
            x_hat, posterior = net(x)  # z ~ q(z|x) drawn from g; q in float32, so the KL is float32
            rec_loss = loss_cfg.l1_weight * l1(x, x_hat)
            if perceptual is not None:
                rec_loss = rec_loss + loss_cfg.perceptual_weight * perceptual(x, x_hat).mean()
            kl = posterior.kl().mean()  # Σ over latent dims, mean over the batch (as LDM)
            loss = rec_loss + loss_cfg.kl_weight * kl / D
            g_loss, lam = torch.zeros(()), torch.zeros(())
            if gan_on:
                g_loss = hinge_g_loss(disc_net(x_hat))
                lam = adaptive_weight(rec_loss, g_loss, model.last_layer(), loss_cfg.max_weight) \
                    if loss_cfg.adaptive else torch.ones(())
                loss = loss + lam * loss_cfg.disc_weight * g_loss
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # as in train_diffusion: fp16 scales the loss, DDP averages the grads
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(opt)
        # ---- D_ψ step: hinge loss on real x and the detached x̃ (no gradient reaches the decoder)
        d_loss, d_real, d_fake = torch.zeros(()), torch.zeros(()), torch.zeros(())
        if d_on:
            with loop.autocast():
                logits_real, logits_fake = disc_net(x), disc_net(x_hat.detach())
                d_loss = hinge_d_loss(logits_real, logits_fake)
            d_real, d_fake = logits_real.detach().float().mean(), logits_fake.detach().float().mean()
            opt_d.zero_grad(set_to_none=True)  # also drops the grads the ℰ, 𝒟 step left on D_ψ
            scaler.scale(d_loss).backward()
            scaler.unscale_(opt_d)
            nn.utils.clip_grad_norm_(disc.parameters(), clip)
            scaler.step(opt_d)
        scaler.update()  # once per step, after both optimizers
        # history row: (step, rec_loss, kl, g_loss, d_loss, λ, D(x), D(x̃), seconds)
        return rec_loss.item(), kl.item(), g_loss.item(), d_loss.item(), lam.item(), d_real.item(), d_fake.item()

    def payload() -> dict:
        return dict(model=model.state_dict(), optimizer=opt.state_dict(),
                    disc=None if disc is None else disc.state_dict(),
                    disc_optimizer=None if opt_d is None else opt_d.state_dict())

    def log(recent: list) -> None:
        means = [sum(h[i] for h in recent) / len(recent) for i in range(1, 8)]
        loop.bar.set_postfix(rec=f"{means[0]:.4f}", kl=f"{means[1]:.1f}", d=f"{means[3]:.3f}")
        if callback is not None:
            callback(dict(event="log", step=loop.step, rec_loss=means[0], kl=means[1], g_loss=means[2],
                          d_loss=means[3], lam=means[4], d_real=means[5], d_fake=means[6], history=loop.history,
                          model=model, disc=disc))
            set_train()  # in case the callback decoded in eval mode

    def sample() -> None:
        if callback is not None:
            callback(dict(event="sample", step=loop.step, model=model, disc=disc))
            set_train()

    set_train()
    steps_done = loop.run(one_step, payload, log, sample)
    model.eval()
    if disc is not None:
        disc.eval()
    return TrainResult(model=model, ema=model, history=loop.history, seconds=time.perf_counter() - t_call,
                       steps_done=steps_done)
