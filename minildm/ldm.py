"""Latent diffusion's sampling end: ε_θ on z = s·ℰ(x), sampled in latent space, decoded by 𝒟.  Notebook 04 · LDM §3.2.

The pixel DDPM of notebook 02 and the latent one of notebook 04 differ in one place: what ε_θ sees.

* pixel:  L_DM  = E_{x, ε, t} ‖ε − ε_θ(x_t, t)‖²,   x_t = √ᾱ_t·x + √(1−ᾱ_t)·ε,   x (B, 1, 32, 32)
* latent: L_LDM = E_{ℰ(x), ε, t} ‖ε − ε_θ(z_t, t)‖², z_t the same with z = s·ℰ(x),  z (B, 4, 8, 8) at f = 4

so the training loop, the schedule and the samplers are shared. :class:`DiffusionModel` holds ε_θ, its schedule
and (for latent models) the autoencoder in one object whose :meth:`~DiffusionModel.sample` returns *images* for
either kind: draw z_T ~ N(0, I) in latent space, denoise there, decode once with 𝒟(z_0 / s). The other ends live
beside it: :mod:`minildm.latents` encodes the data set once, :mod:`minildm.release` loads and exports checkpoints,
:mod:`minildm.shipped` finds the shipped weights.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from .autoencoder import AutoencoderKL
from .guidance import check_rescale, guided
from .objective import PREDICTIONS, VPrediction
from .samplers import get_sampler
from .schedule import NoiseSchedule
from .spacing import spaced_timesteps
from .unet import UNet


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
                 guidance: float = 1.0, prediction: str = "eps"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be 'eps' or 'v' (what the network predicts), got {prediction!r}")
        self.prediction = prediction  # "v": the network predicts v, sampled through objective.VPrediction
        self.unet, self.sched, self.first_stage = unet, sched, first_stage
        self.image_size, self.clip_x0, self.name = image_size, clip_x0, name
        self.tokenizer = tokenizer  # a text model's Tokenizer: model.tokenizer.encode_batch([...]) → y
        self.guidance = float(guidance)  # the guidance scale its preset recommends (the CLI's default)
        f = first_stage.cfg.f if first_stage is not None else 1
        if image_size % f:
            raise ValueError(f"image_size {image_size} is not divisible by the autoencoder's f = {f}")
        # ε_θ's space (C, h, w): its output's channels (a ConcatUNet's input also holds the condition c)
        self.sample_shape = (unet.cfg.out_channels or unet.cfg.in_channels, image_size // f, image_size // f)

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
    def max_objects(self) -> int | None:
        """A layout-conditional ε_θ's most objects per layout (its LayoutEncoder's, notebook 09); else None."""
        return getattr(getattr(self.unet, "encoder", None), "max_objects", None)

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
               spacing: str = "leading", seed: int | None = 0, generator: torch.Generator | None = None,
               y: Tensor | None = None, guidance: float = 1.0, guidance_rescale: float = 0.0,
               batch_size: int = 256, callback: Optional[Callable[[dict], None]] = None,
               return_latents: bool = False, x_T: Tensor | None = None):
        """Draw ``n`` images (n, C, H, W) in [−1, 1]; with ``return_latents`` also ε_θ's final x_0 / z_0.

        ``sampler`` "ddim" (``steps`` steps, default 50, η = ``eta`` or 0) or "ddpm": ancestral sampling, on all T
        steps by default or on ``steps`` evenly spaced ones (:func:`~minildm.samplers.ddpm_sample`: the respaced
        chain's posterior, which is DDIM's update with η = 1); or a solver of :mod:`minildm.solvers`: "euler",
        "heun", "dpmpp_2m" (η = 0) or "euler_ancestral" (η = ``eta`` or 1), ``steps`` default 50. ``spacing``
        picks the timesteps (:func:`~minildm.spacing.spaced_timesteps`: leading, trailing, linspace). Noise comes
        from a CPU generator seeded with ``seed`` (or ``generator``), so a seed gives the same images on any device. The
        starting noise z_T is drawn for all n at once, so deterministic sampling (DDIM, η = 0) gives the same
        images for any ``batch_size``; stochastic samplers draw per-step noise per batch, so theirs depend on it.
        ``y`` the conditions, one per sample: class labels (n,), token ids (n, L) for a text-conditional
        ConditionalUNet, or layouts (n, K, 5) for a layout-conditional one (kept as float). ``guidance`` s ≠ 1
        samples with classifier-free guidance, ε̃ = ε_∅ + s·(ε_y − ε_∅)
        (:func:`~minildm.guidance.guided`; needs ε_θ with ``null_condition``, i.e. a ConditionalUNet);
        ``guidance_rescale`` φ pulls ε̃ back towards ε_y's spread (:func:`~minildm.guidance.rescale_guided`).
        ``callback`` as the samplers' (per step, per batch).
        ``x_T`` (n, *sample_shape): the starting noise, instead of drawing it from the seed: the same x_T with two
        conditions isolates what the condition does (attribute editing, notebook 06), and an interpolation of two
        x_T walks between two samples. The seed still draws the stochastic samplers' per-step noise, from the same
        place in its stream as without ``x_T`` (the seed's own z_T is drawn and set aside first), so passing the
        seed's z_T as ``x_T`` changes nothing, and per-step noise never repeats an x_T drawn from that seed.
        """
        steps, eta, y = self._check_sample_args(n, sampler, steps, eta, y, guidance, spacing)
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else seed)
        device = next(self.unet.parameters()).device
        kw: dict = dict(generator=generator, callback=callback, clip_x0=None if self.is_latent else self.clip_x0,
                        steps=steps, eta=eta, spacing=spacing)
        # z_T first, for all n (batch-independent), and always drawn, so that the per-step noise is the rest of the
        # seed's stream whether or not x_T is given: sample(seed=s, x_T=z_T(s)) == sample(seed=s), and an x_T
        # drawn from the same seed is never re-used as the first step's noise (which makes the latent ~40% too big)
        z_T = torch.randn((n, *self.sample_shape), generator=generator)
        if x_T is None:
            x_T = z_T
        elif tuple(x_T.shape) != (n, *self.sample_shape):
            raise ValueError(f"x_T must be the starting noise of n = {n} samples in ε_θ's space, (n, C, h, w) = "
                             f"{(n, *self.sample_shape)}, got {tuple(x_T.shape)}")
        x_T = x_T.to(device, torch.float32)
        self.eval()
        zs = []
        for i in range(0, n, batch_size):
            eps_model, mk = self.denoiser(None if y is None else y[i:i + batch_size], guidance, guidance_rescale)
            zs.append(get_sampler(sampler)(eps_model, x_T[i:i + batch_size], self.sched, model_kwargs=mk, **kw))
        z0 = torch.cat(zs)  # (n, *sample_shape)
        images = torch.cat([self.decode(z0[i:i + batch_size]) for i in range(0, n, batch_size)])
        return (images, z0) if return_latents else images

    def denoiser(self, y: Tensor | None = None, guidance: float = 1.0, guidance_rescale: float = 0.0):
        """The ε-model the samplers and :mod:`minildm.editing` take, for one batch: ``(eps_model, model_kwargs)``.

        ``y`` the batch's conditions, as :meth:`sample` passes them after its checks (not checked again here); with
        ``guidance`` s ≠ 1 the model is :func:`~minildm.guidance.guided` (one batched forward of [y; ∅] per call),
        with ``guidance_rescale`` φ (:func:`~minildm.guidance.rescale_guided`). A v-model is wrapped in
        :class:`~minildm.objective.VPrediction` after guidance (which is linear in v̂), so a sampler or an edit
        gets ε̂ (and x̂_0) whatever the network predicts:
        ``eps, mk = model.denoiser(); editing.sdedit(eps, z0, model.sched, 0.5, model_kwargs=mk)``.
        """
        check_rescale(guidance_rescale)
        eps_model, mk = self.unet, None
        if y is not None:
            device = next(self.unet.parameters()).device
            yb = y.to(device)
            if guidance != 1.0:  # one batched forward of [y; ∅] per step
                eps_model = guided(self.unet, guidance, yb, self.unet.null_condition(len(yb), device),
                                   rescale=guidance_rescale)
            else:
                mk = {"y": yb}
        elif guidance != 1.0:
            raise ValueError(f"guidance={guidance} needs the conditions y of the batch")
        if self.prediction == "v":  # v̂ → (ε̂, x̂_0) for the samplers; after guidance, which is linear in v̂
            eps_model = VPrediction(eps_model, self.sched.alpha_bar)
        return eps_model, mk

    def _check_sample_args(self, n: int, sampler: str, steps, eta, y, guidance: float, spacing: str = "leading"):
        """:meth:`sample`'s arguments checked, with its defaults filled in: ``(steps, eta, y)``."""
        defaults = inspect.signature(get_sampler(sampler)).parameters  # the sampler's own steps and η
        if steps is None:
            steps = defaults["steps"].default or self.sched.T  # ddpm: None, all T steps
        if not 1 <= steps <= self.sched.T:
            raise ValueError(f"steps must be in 1..{self.sched.T} (got {steps})")
        spaced_timesteps(self.sched.T, steps, spacing)  # an unknown spacing: its error, before any work
        if eta is None:
            eta = defaults["eta"].default  # ddpm, euler_ancestral: 1; ddim and the ODE solvers: 0
        if not 0 <= eta <= 1:  # also False for NaN; η > 1 would ask for more noise than x_{t−1} has room for
            raise ValueError(f"eta (DDIM's η) must be in [0, 1]: 0 deterministic, 1 ancestral (got {eta})")
        if sampler == "ddpm" and eta != 1.0:
            raise ValueError(f"the ddpm sampler is ancestral, η = 1 (got eta={eta}); use sampler='ddim' for other η")
        if not math.isfinite(guidance):
            raise ValueError(f"guidance must be a finite number, e.g. 1 (the conditional model alone) or 2 "
                             f"(got {guidance})")
        if n < 1:
            raise ValueError(f"n must be at least 1 (got {n})")
        if self.is_conditional and y is None:
            what = "layout-conditional" if self.max_objects is not None else \
                f"class-conditional ({self.num_classes} classes)" if self.num_classes is not None else "conditional"
            raise ValueError(f"this model is {what}: pass labels y (its conditions, one per sample)")
        if y is not None and self.max_objects is not None:  # layouts (n, K, 5): float boxes, not ids
            y = torch.as_tensor(y, dtype=torch.float32)
            if y.ndim != 3 or y.shape[1:] != (self.max_objects, 5):
                raise ValueError(f"this model is conditioned on layouts: pass y of shape (n, {self.max_objects}, 5), "
                                 "one layout per sample (minildm.conditions.parse_layout, then .expand(n, -1, -1)), "
                                 f"got {tuple(y.shape)}")
        elif y is not None and hasattr(self.unet, "check_condition"):  # c (n, C_c, h, w), concatenated to z_t
            y = self.unet.check_condition(y, n)
        elif y is not None:
            y = torch.as_tensor(y, dtype=torch.long)
            if self.attributes is not None and y.ndim != 2:
                raise ValueError(f"this model is conditioned on {len(self.attributes)} attributes: pass y of shape "
                                 f"(n, {len(self.attributes)}), one attribute vector per sample in the order of "
                                 f"model.attributes (one vector for all: y.expand(n, -1)), got {tuple(y.shape)}")
            y = y.reshape(-1) if y.ndim <= 1 else y  # class ids (n,), or token ids (n, L) / attributes (n, M)
        if y is not None and y.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} labels for n = {n} samples")
        if guidance != 1.0 and (y is None or not hasattr(self.unet, "null_condition")):
            raise ValueError(f"guidance={guidance} needs a conditional ε_θ with a null condition (a ConditionalUNet "
                             "trained with p_uncond > 0) and its conditions y; use guidance=1.0 otherwise")
        return steps, float(eta), y
