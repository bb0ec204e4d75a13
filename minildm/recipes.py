"""Recipes: every training job end to end, data → first stage → latents → ε_θ; what ``python -m minildm train`` runs.
Notebooks 02–06, 09.

A preset (:mod:`minildm.presets`) says *how big*; a recipe says *what to do with it*:

* the building blocks — :func:`build_unet`, :func:`train_preset` (a diffusion preset on data or latents),
  :func:`train_autoencoder_preset`, :func:`first_stage` (train or load the autoencoder, set its scale factor),
  :func:`latents` (MNIST encoded once, cached), :func:`text_conditions` (captions → tokenizer → token ids),
  :func:`to_model` (trained ε_θ → a :class:`~minildm.ldm.DiffusionModel` that samples images);
* the face pipeline of notebook 06 — :func:`train_faces`: faces → attribute classifier (:func:`face_classifier`)
  → RGB autoencoder (:func:`face_autoencoder`) → latents → attribute-conditional LDM;
* concatenation, notebook 08 — :func:`concat_pairs` (z and c for training: LR, or masked latents + masks, several a digit),
  :func:`train_sr_regression` (the regression baseline of super-resolution);
* faces by concatenation, notebook 08 — :func:`train_face_concat` (toy faces ×4 super-resolution, and inpainting
  told the attributes, on notebook 06's autoencoder), :func:`face_concat_pairs`;
* semantic maps, notebook 08 — :func:`train_semantic` (toy faces with their part maps → notebook 06's autoencoder →
  map-conditioned LDM), :func:`part_segmenter` (the judge that reads the parts back);
* the layouts of notebook 09 — :func:`train_layout`: canvases of 1–3 digits (:mod:`minildm.layout`) → the f = 4
  autoencoder → latents (:func:`layout_latents`) → layout-conditional LDM;
* :func:`train` — a preset of :data:`minildm.presets.PRESETS` by name, end to end.

Every job is resumable: re-running it continues from its checkpoint, and a finished one just loads.
Under torchrun (:mod:`minildm.distributed`) :func:`train` and :func:`train_faces` join the process group; the
training loops share each batch out, and what is made once and read back (MNIST, latent caches, the face
classifier, the scale factor) is made by rank 0 first (``distributed.main_first``), the others waiting.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from . import distributed, presets
from .autoencoder import AutoencoderKL, compute_scale_factor
from .captions import captions_for
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .classifier import JUDGE_SEED, load_classifier
from .concat import null_condition, wrap_unet
from .conditioning import encoder_from_spec
from .config import Mode, get_device, get_mode, runs_dir
from .data import mnist
from .face_classifier import JUDGE_CONFIG as FACE_JUDGE_CONFIG
from .face_classifier import AttributeClassifier, train_attribute_classifier
from .faces import NULL, FaceData, load_faces
from .latents import encode_dataset
from .layout import layout_dataset
from .ldm import DiffusionModel
from .losses import PatchDiscriminator
from .objective import prediction_of
from .pairs import face_masks, inpaint_condition, low_resolution, pixel_inpaint_condition, random_masks
from .presets import PRESETS, AutoencoderPreset, DiffusionPreset
from .release import first_stage_payload, load_diffusion, sampling_payload
from .restoration import Regression, train_regression
from .schedule import make_schedule
from .semantic import PartSegmenter, reconstruct, semantic_condition, semantic_faces, train_segmenter
from .shipped import shipped
from .text import Tokenizer
from .train import TrainConfig, train_autoencoder, train_diffusion
from .unet import UNet


# ------------------------------------------------------------------------------------------ building blocks
def text_conditions(preset: DiffusionPreset, images, labels):
    """Captions for ``images`` (the preset's training digits), the tokenizer built from them, their token ids
    (N, max_len), and the preset with the tokenizer written into its conditioning spec (what the checkpoint keeps)."""
    caps = captions_for(images, labels)
    tok = Tokenizer.from_captions(caps.captions)
    spec = {**preset.conditioning, "tokenizer": tok.to_dict()}
    preset = dataclasses.replace(preset, conditioning=spec)
    return caps, tok, tok.encode_batch(caps.captions), preset


def train_autoencoder_preset(preset: AutoencoderPreset, data, feature_net=None, ckpt_path=None, callback=None,
                             progress: bool = True, device=None):
    """Build the preset's autoencoder (and PatchGAN) and train it; resumable, and a finished run just loads."""
    device = torch.device(device) if device is not None else get_device()
    torch.manual_seed(preset.train.seed)
    model = AutoencoderKL(preset.ae).to(device)
    disc = PatchDiscriminator(preset.ae.in_channels, preset.disc_base, preset.disc_layers).to(device) \
        if preset.disc_base else None
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    if feature_net is not None:
        feature_net = feature_net.to(device)
    return train_autoencoder(model, data.to(device), preset.loss, preset.train, feature_net=feature_net, disc=disc,
                             ckpt_path=ckpt_path, model_config=preset.ae.to_dict(), callback=callback, progress=progress)




def build_unet(preset: DiffusionPreset, device=None):
    """The preset's UNet, seeded from its TrainConfig's seed, on ``device`` (channels-last on CPU: a training step
    measured 1–6 % faster, within the noise, docs/TRAINING.md §4);
    a :class:`~minildm.conditioning.ConditionalUNet` (UNet + τ_θ) or a :class:`~minildm.concat.ConcatUNet` when the
    preset has a ``conditioning`` spec (:func:`~minildm.concat.wrap_unet`)."""
    device = torch.device(device) if device is not None else get_device()
    torch.manual_seed(preset.train.seed)
    model = wrap_unet(UNet(preset.unet), preset.conditioning)[0].to(device)  # + τ_θ or a concatenated c
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model


def train_preset(preset: DiffusionPreset, data, labels=None, ckpt_path=None, callback=None, progress: bool = True,
                 first_stage: AutoencoderKL | None = None, null_condition=None):
    """Build the preset's UNet and schedule and train it with :func:`minildm.train.train_diffusion`.

    ``data``: images in [−1, 1] for a pixel preset; for a latent one (``preset.f > 1``) the latents s·ℰ(x) from
    :func:`minildm.ldm.encode_dataset`, with the frozen autoencoder as ``first_stage`` (stored in the checkpoint,
    so that :func:`minildm.ldm.load_diffusion` can decode the samples).
    With ``ckpt_path`` the run is resumable: re-running it after it finished just loads the result. The
    checkpoint's kind is the preset's ``kind``. ``labels`` are the conditions of a conditional preset: class ids (N,), or token ids (N, L) / attribute
    vectors (N, M) with their ``null_condition`` (the <null> prompt, the all-∅ vector) for condition dropout.
    Returns ``(TrainResult, NoiseSchedule)``.
    """
    if preset.f > 1 and first_stage is None:
        raise ValueError(f"{preset.name} trains on latents: pass first_stage= (the autoencoder that encoded them)")
    channels = preset.unet.out_channels or preset.unet.in_channels  # a ConcatUNet's input also holds c
    if data.shape[1] != channels:
        what = "latents s·E(x) (minildm.ldm.encode_dataset)" if preset.f > 1 else "images"
        raise ValueError(f"{preset.name} expects {what} with {channels} channels, got data of shape "
                         f"{tuple(data.shape)}")
    model = build_unet(preset)
    sched = make_schedule(preset.schedule, preset.T)
    device = next(model.parameters()).device
    extra = dict(sampling=sampling_payload(preset), conditioning=preset.conditioning,
                 first_stage=None if first_stage is None else first_stage_payload(first_stage))
    result = train_diffusion(model, data.to(device), sched, preset.train, labels=labels, ckpt_path=ckpt_path,
                             model_config=preset.unet.to_dict(), kind=preset.kind, callback=callback,
                             progress=progress, extra=extra, null_condition=null_condition)
    return result, sched


def to_model(preset: DiffusionPreset, unet, first_stage: AutoencoderKL | None = None) -> DiffusionModel:
    """The trained ε_θ (e.g. ``result.ema``) as a :class:`~minildm.ldm.DiffusionModel` that samples images."""
    tok = (preset.conditioning or {}).get("tokenizer")  # a text model's, written by text_conditions
    return DiffusionModel(unet.eval(), make_schedule(preset.schedule, preset.T), first_stage, preset.image_size,
                          preset.clip_x0, preset.name, tokenizer=None if tok is None else Tokenizer.from_dict(tok),
                          guidance=preset.guidance, prediction=preset.train.target).eval()


def _latents_cache(ae: AutoencoderKL, split: str, name: str | None = None, mode: Mode | None = None):
    """Where :func:`latents` and :func:`train` cache the latents of MNIST ``split`` under ``ae``."""
    return runs_dir(mode) / f"latents_{name or f'f{ae.cfg.f}'}_{split}.pt"


def latents(ae: AutoencoderKL, split: str = "train", n: int | None = None, name: str | None = None,
            mode: Mode | None = None):
    """MNIST ``split`` encoded by ``ae`` as s·ℰ(x), cached in ``runs/<mode>/latents_<name>_<split>.pt``; with labels.

    The cache is keyed by the autoencoder's weights, so retraining it re-encodes (:func:`minildm.ldm.encode_dataset`).
    """
    images, labels = mnist(split, size=32, n=n)
    return encode_dataset(ae, images, cache_path=_latents_cache(ae, split, name, mode)), labels


def first_stage(preset: AutoencoderPreset | None = None, data=None, feature_net=None, ckpt_path=None,
                progress: bool = True):
    """The trained first stage, scale factor included: ``(autoencoder, history, ckpt_path)``.

    Trains the preset (default: the main f=4 MNIST autoencoder) or resumes it, or loads it if finished; then, once,
    sets its scale factor s = 1/std(z) over (up to 10,000 of) the training images and writes it into the checkpoint
    (LDM App. D.1). ``data`` defaults to MNIST's training split; ``feature_net`` to the course's classifier.
    """
    preset = preset or presets.autoencoder_mnist()
    ckpt_path = ckpt_path or runs_dir(preset.mode) / f"{preset.name}.pt"
    if data is None:
        with distributed.main_first():  # a download, if any, by one process
            data, _ = mnist("train", size=preset.image_size, n=preset.n_train)
    if feature_net is None and preset.loss.perceptual_weight > 0:
        feature_net = load_classifier()
    result = train_autoencoder_preset(preset, data, feature_net=feature_net, ckpt_path=ckpt_path, progress=progress)
    model = result.model.eval()
    ckpt = load_checkpoint(ckpt_path, kind="autoencoder_kl")
    if float(ckpt["model"]["scale_factor"]) == 1.0:  # not computed yet (an untouched buffer is exactly 1)
        with torch.no_grad():
            compute_scale_factor(model, data[:10000].to(next(model.parameters()).device))
        ckpt["model"]["scale_factor"] = model.scale_factor.detach().cpu().clone()
        payload = {k: v for k, v in ckpt.items() if k not in ("format", "version", "kind", "config")}
        if distributed.is_main():  # every process computed the same s; one writes it
            save_checkpoint(ckpt_path, payload, kind=ckpt["kind"], config=ckpt["config"])
        distributed.barrier()
    return model, result.history, ckpt_path


def train(name: str, mode: Mode | None = None, ckpt_path=None, progress: bool = True, callback=None,
          faces: str = "auto"):
    """Train (or resume, or load if finished) the preset called ``name`` (a key of :data:`PRESETS`), end to end:
    data, first stage for latent presets, training; what ``python -m minildm train NAME`` runs.

    Returns ``(model, ckpt_path)``: the :class:`~minildm.autoencoder.AutoencoderKL` for ``autoencoder-mnist`` and
    ``autoencoder-faces``, else a :class:`~minildm.ldm.DiffusionModel` with the EMA weights. The face presets run
    :func:`train_faces` (faces → attribute classifier → autoencoder → latents → LDM) on ``faces``:
    "auto" (CelebA if it is on disk, else the toy faces), "celeba" or "toy".
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    mode = mode or get_mode()
    distributed.init()  # under torchrun: join the other processes (nothing otherwise)
    if name in ("autoencoder-faces", "latent-faces"):
        ae_only = name == "autoencoder-faces"
        run = train_faces(mode, stop_after="autoencoder" if ae_only else "ldm", source=faces, ckpt_path=ckpt_path,
                          progress=progress, callback=callback)
        return (run.ae, run.ae_ckpt) if ae_only else (run.model, run.ckpt)
    preset = PRESETS[name](mode)
    ckpt_path = ckpt_path or runs_dir(mode) / f"{preset.name}.pt"
    if name == "autoencoder-mnist":
        ae, _, ckpt_path = first_stage(preset, ckpt_path=ckpt_path, progress=progress)
        return ae, ckpt_path
    if name in ("latent-faces-sr", "latent-faces-inpaint"):  # toy faces, on notebook 06's latents (notebook 08)
        return train_face_concat(preset, ckpt_path=ckpt_path, progress=progress, callback=callback), ckpt_path
    if name == "latent-faces-semantic":  # toy faces drawn with their part maps (notebook 08)
        return train_semantic(preset, ckpt_path=ckpt_path, progress=progress, callback=callback), ckpt_path
    if (preset.conditioning or {}).get("type") == "layout":  # canvases of several digits, not MNIST's images
        return train_layout(preset, ckpt_path=ckpt_path, progress=progress, callback=callback), ckpt_path
    with distributed.main_first():
        images, labels = mnist("train", size=preset.image_size, n=preset.n_train)
    ae, data = None, images
    if preset.f > 1:
        ae, _, _ = first_stage(presets.autoencoder_mnist(mode, f=preset.f), progress=progress)
        with distributed.main_first():  # rank 0 encodes and caches, the others read the cache
            data = encode_dataset(ae, images, cache_path=_latents_cache(ae, "train", mode=mode))
    spec, null = preset.conditioning, None
    if spec is None:
        labels = None
    elif spec["type"] == "concat":  # c on the latent grid, one per training image (notebook 08)
        data, labels = concat_pairs(preset, ae, images, data)
        null = concat_dropout_null(preset)  # SR's plane, inpainting's fully masked input; None without dropout
    elif spec["type"] == "text":  # captions measured on the same digits, in the same order as the latents
        _, tok, labels, preset = text_conditions(preset, images, labels)
        null = tok.null()
    result, _ = train_preset(preset, data, labels=labels, ckpt_path=ckpt_path, progress=progress, callback=callback,
                             first_stage=ae, null_condition=null)
    return to_model(preset, result.ema, ae), ckpt_path


def concat_dropout_null(preset: DiffusionPreset) -> Tensor | None:
    """∅ of a concatenation preset's c for condition dropout (:func:`minildm.concat.null_condition`: SR's plane of
    ``null_value``, inpainting's fully masked input with nothing said), or None when the preset trains without
    dropout (p_uncond = 0, e.g. the toy faces' SR). The training recipes and ``dryrun`` both take ∅ from here."""
    if preset.train.p_uncond <= 0:
        return None
    spec = preset.conditioning
    return null_condition(spec["task"], spec["condition_channels"], spec["size"], null_value=spec.get("null_value"))[0]


# ------------------------------------------------------------------------------------------ the notebooks' fast path
def _layout_null(preset: DiffusionPreset) -> Tensor:
    """∅ of a layout preset for condition dropout: the empty layout, every slot NO_OBJECT, (K, 5)."""
    return encoder_from_spec(preset.conditioning)[0].null_condition(1)[0]


# the shipped file of a preset whose checkpoint name is not the preset's: the face LDM's carries its data source
# (checkpoint_path: latent_faces_toy.pt), and only the toy-faces model is shipped
SHIPPED_AS = {"latent-faces": "latent_faces_toy"}


def shipped_or_train(name: str, fast: bool = True, mode: Mode | None = None, callback=None,
                     progress: bool = True) -> tuple[DiffusionModel, Path, bool]:
    """Preset ``name``'s model for a notebook: with ``fast`` its shipped weights (``minildm/weights/<preset>.pt``,
    trained by the command its README records; ``latent-faces``: ``latent_faces_toy.pt``, trained on the toy faces)
    if they are there, else :func:`train` (resumable; a finished run loads). Returns ``(model, path, was_shipped)``.
    A missing shipped file never stops the fast path: it says so, with the preset's step count, and trains."""
    preset = PRESETS[name](mode)
    stem = SHIPPED_AS.get(name, preset.name)
    if fast:
        try:
            path = shipped(stem)
        except CheckpointError:
            print(f"{stem} is not shipped: training it here ({preset.train.steps:,} steps, "
                  f"{preset.mode} mode), resumable in {runs_dir(preset.mode)}")
        else:
            return load_diffusion(path, map_location=get_device()), path, True
    if name == "latent-faces":  # notebook 06 has loaded (and announced) the faces already: say it once
        run = train_faces(preset.mode, progress=progress, callback=callback, verbose=False)
        return run.model, run.ckpt, False
    model, ckpt_path = train(name, mode=preset.mode, progress=progress, callback=callback)
    return model, Path(ckpt_path), False


LIVE_PRESETS = ("pixel-mnist", "latent-mnist", "latent-mnist-class", "latent-mnist-sr", "latent-mnist-inpaint",
                "latent-mnist-layout")


def live_run(name: str, steps: int, first_stage: AutoencoderKL | None = None, n: int = 5000, callback=None,
             progress: bool = True) -> tuple[DiffusionModel, list]:
    """A short run of the MNIST preset ``name`` (one of :data:`LIVE_PRESETS`) from scratch: ``steps`` steps on the
    first ``n`` training digits, or ``n`` layout canvases for ``latent-mnist-layout`` (encoded by ``first_stage``
    for a latent preset; none for ``pixel-mnist``), into
    ``runs/<mode>/live/`` (a finished one loads). The fast path's glimpse of training, the loss falling and the
    first samples; not a model to measure. Returns (model, history)."""
    if name not in LIVE_PRESETS:
        raise ValueError(f"live_run takes one of the MNIST presets {', '.join(LIVE_PRESETS)}, got {name!r}")
    preset = PRESETS[name]()
    if preset.f > 1 and first_stage is None:
        raise ValueError(f"{name} trains on latents: pass first_stage= (e.g. the shipped model's .first_stage)")
    warmup = min(preset.train.warmup, max(steps // 5, 1))
    train_cfg = dataclasses.replace(preset.train, steps=steps, warmup=warmup, lr_drop_at=0,
                                    ckpt_every=max(steps, 1), sample_every=0)
    preset = dataclasses.replace(preset, train=train_cfg)
    spec, null = preset.conditioning or {}, None
    if spec.get("type") == "layout":  # canvases of 1–3 digits and their layouts (notebook 09)
        canvases = layout_dataset(n, "train", seed=0)
        images, labels = canvases.images, canvases.layouts
        null = _layout_null(preset)
    else:
        images, labels = mnist("train", size=preset.image_size, n=n)
    ae = first_stage if preset.f > 1 else None  # pixels are diffused as they are
    data = images if ae is None else encode_dataset(ae, images)
    if spec.get("type") == "concat":
        data, labels = concat_pairs(preset, ae, images, data, masks_per_image=1)
        null = concat_dropout_null(preset)
    elif not spec:
        labels = None
    ckpt_path = runs_dir(preset.mode) / "live" / f"{preset.name}.pt"
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    result, _ = train_preset(preset, data, labels=labels, ckpt_path=ckpt_path, progress=progress, callback=callback,
                             first_stage=ae, null_condition=null)
    return to_model(preset, result.ema, ae), result.history


# ------------------------------------------------------------------------------------------ concatenation (notebook 08)
SR_REGRESSION_CPU_STEPS = 2000  # the regression baseline's steps in cpu mode (train_sr_regression)

INPAINT_MASKS_PER_IMAGE = 4  # inpainting: each training digit with this many masks (seeds 0, 1, …), not one

def concat_conditions(preset: DiffusionPreset, ae: AutoencoderKL | None, images: Tensor, seed: int = 0) -> Tensor:
    """The condition c of every training image (N, C_c, h, w) for a concatenation preset: the LR image (``sr``), or
    the masked image's latent and the resized mask (``inpaint``, masks :func:`~minildm.pairs.random_masks` of
    ``seed`` in the shares of the spec's ``masks``, e.g. ``dict(p_half=0.5)``; a pixel preset, f = 1, has no ℰ:
    c = [x ⊙ (1 − m), m], :func:`~minildm.pairs.pixel_inpaint_condition`). Made again on every call (the masked
    images are encoded once more: ~20 s for 60,000 on a core)."""
    task = preset.conditioning["task"]
    if task == "sr":
        return low_resolution(images)
    if task == "inpaint":
        masks = random_masks(len(images), images.shape[-1], seed=seed, **preset.conditioning.get("masks", {}))
        if preset.f == 1:
            return pixel_inpaint_condition(images, masks)
        return inpaint_condition(ae, images, masks, known_pixels=preset.conditioning.get("known_pixels", False))
    raise ValueError(f"{preset.name}: no MNIST pairs for the concatenation task {task!r} (only 'sr' and 'inpaint')")


def concat_pairs(preset: DiffusionPreset, ae: AutoencoderKL | None, images: Tensor, latents: Tensor,
                 masks_per_image: int = INPAINT_MASKS_PER_IMAGE) -> tuple[Tensor, Tensor]:
    """The training pairs (z, c) of a concatenation preset. SR: (latents, LR), one pair per image (the LR image is a
    function of the digit). Inpainting: each digit ``masks_per_image`` times, with the masks of seeds 0, 1, …, so the
    model does not see each digit behind one fixed mask for the whole run: (latents repeated (K·N, …), c (K·N, …)).
    A pixel preset (f = 1) passes the images as ``latents`` and no ``ae``."""
    if preset.conditioning["task"] != "inpaint":
        return latents, concat_conditions(preset, ae, images)
    cond = [concat_conditions(preset, ae, images, seed=k) for k in range(masks_per_image)]
    return latents.repeat(masks_per_image, *[1] * (latents.ndim - 1)), torch.cat(cond)


def train_sr_regression(mode: Mode | None = None, ckpt_path=None, progress: bool = True,
                        steps: int | None = None, ae: AutoencoderKL | None = None) -> Regression:
    """The regression baseline of LDM Table 5 for ``latent_mnist_sr``: its UNet and TrainConfig (``steps`` of them
    if given), trained with L1 to output the HR image (:func:`minildm.restoration.train_regression`);
    ``runs/<mode>/latent_mnist_sr_regression.pt``. In cpu mode it trains 2,000 steps, not the SR model's 7,000 (an
    L1 step also back-propagates through the decoder, and the session's cores were short): a weaker baseline than
    an equal budget would give, said wherever it is compared; its L1 curve is in the checkpoint's history. ``ae``:
    the frozen first stage to decode through (default: the f = 4 autoencoder run, trained if absent)."""
    mode = mode or get_mode()
    preset = presets.latent_mnist_sr(mode)
    if steps is None and mode == "cpu":
        steps = SR_REGRESSION_CPU_STEPS
    if steps is not None:
        preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, steps=steps))
    images, _ = mnist("train", size=preset.image_size, n=preset.n_train)
    if ae is None:  # the SR model's first stage (the shipped SR model carries the same one)
        ae, _, _ = first_stage(presets.autoencoder_mnist(mode, f=preset.f), progress=progress)
    return train_regression(preset.unet, preset.conditioning, preset.train, images, low_resolution(images), ae,
                            ckpt_path=ckpt_path or runs_dir(mode) / f"{preset.name}_regression.pt", progress=progress)


def _finished(preset: DiffusionPreset, ckpt_path: Path) -> bool:
    """Whether ``ckpt_path`` holds this preset's run, finished: all its steps, its TrainConfig and its sampling
    settings. The recipes whose data are slow to make check this before making them (layouts, semantic maps)."""
    if not ckpt_path.exists():
        return False
    ckpt = load_checkpoint(ckpt_path, kind=preset.kind)
    # a field added since the checkpoint was written takes its default (DictConfig's rule), in both dicts
    stored_train = TrainConfig.from_dict(ckpt.get("train_config") or {})
    stored_sampling = {**(ckpt.get("sampling") or {}), "prediction": prediction_of(ckpt.get("sampling"))}
    return ckpt.get("step", 0) >= preset.train.steps and stored_train == preset.train \
        and stored_sampling == sampling_payload(preset)


# ------------------------------------------------------------------------------------------ semantic maps (notebook 08)
SEGMENTER_DATA_SEED, SEMANTIC_TEST_SEED = 1, 2  # the training faces are seed 0: three disjoint streams of faces
SEGMENTER_STEPS = dict(smoke=20, cpu=800, gpu=2000)


def face_first_stage() -> AutoencoderKL:
    """Notebook 06's frozen face autoencoder (its scale factor set), as the shipped ``latent_faces_toy`` carries it:
    the semantic model shares the attribute model's latent space, and needs no autoencoder run of its own."""
    return load_diffusion(shipped("latent_faces_toy")).first_stage.eval()


def train_semantic(preset: DiffusionPreset, ckpt_path=None, progress: bool = True, callback=None) -> DiffusionModel:
    """The semantic-map preset end to end (resumable, a finished run loads): ``n_train`` toy faces with their maps
    (:func:`~minildm.semantic.semantic_faces`, seed 0) → z = s·ℰ(x) by notebook 06's frozen autoencoder → ε_θ([z_t, c],
    t) with c the one-hot map on the latent grid, dropped to the empty map with p_uncond."""
    ckpt_path = Path(ckpt_path or runs_dir(preset.mode) / f"{preset.name}.pt")
    if _finished(preset, ckpt_path):  # a finished run loads without drawing its faces again
        return load_diffusion(ckpt_path)
    ae = face_first_stage()
    data = semantic_faces(preset.n_train, seed=0)
    z = encode_dataset(ae, data.images, cache_path=runs_dir(preset.mode) / "latents_semantic_faces_train.pt")
    spec = preset.conditioning
    null = torch.zeros(spec["condition_channels"], spec["size"], spec["size"])  # ∅: the empty map
    result, _ = train_preset(preset, z, labels=semantic_condition(data.parts, spec["size"]), ckpt_path=ckpt_path,
                             progress=progress, callback=callback, first_stage=ae, null_condition=null)
    return to_model(preset, result.ema, ae)


FACE_MASKS_PER_IMAGE = 2  # face inpainting: each training face with this many masks (seeds 0, 1)
P_ATTRIBUTE_UNSAID = 0.25  # face inpainting: each attribute of a training pair left unspecified with this probability


def face_concat_pairs(preset: DiffusionPreset, ae: AutoencoderKL, data: FaceData, latents: Tensor,
                      masks_per_image: int = FACE_MASKS_PER_IMAGE) -> tuple[Tensor, Tensor]:
    """The training pairs (z, c) of a face concatenation preset. SR: (latents, LR face). Inpainting: each face
    ``masks_per_image`` times with the masks of :func:`~minildm.pairs.face_masks` (seeds 0, 1, …) and its
    attributes, each left unspecified (∅) with probability :data:`P_ATTRIBUTE_UNSAID` (seeded as the masks), so that
    a fill told only some attributes, or none, is a training case and not only the fully dropped condition."""
    n = len(latents)
    x = data.float(n)
    if preset.conditioning["task"] == "sr":
        return latents, low_resolution(x)
    cond = []
    for k in range(masks_per_image):
        g = torch.Generator().manual_seed(k)
        attrs = data.attrs[:n].clone()
        attrs[torch.rand(attrs.shape, generator=g) < P_ATTRIBUTE_UNSAID] = NULL
        cond.append(inpaint_condition(ae, x, face_masks(n, x.shape[-1], seed=k), attrs=attrs))
    return latents.repeat(masks_per_image, 1, 1, 1), torch.cat(cond)


def train_face_concat(preset: DiffusionPreset, ckpt_path=None, progress: bool = True,
                      callback=None) -> DiffusionModel:
    """A face concatenation preset (``latent_faces_sr``, ``latent_faces_inpaint``) end to end (resumable, a finished
    run loads): the first ``n_train`` toy training faces of notebook 06 → z = s·ℰ(x) by its frozen autoencoder (the
    shipped ``latent_faces_toy``'s) → ε_θ([z_t, c], t) on :func:`face_concat_pairs`."""
    ckpt_path = Path(ckpt_path or runs_dir(preset.mode) / f"{preset.name}.pt")
    if _finished(preset, ckpt_path):
        return load_diffusion(ckpt_path)
    ae = face_first_stage()
    data = load_faces("train", source="toy", mode=preset.mode, verbose=progress)
    n = min(preset.n_train or len(data), len(data))
    z = encode_dataset(ae, data.images[:n], cache_path=runs_dir(preset.mode) / "latents_faces_toy_shipped_ae.pt")
    z, c = face_concat_pairs(preset, ae, data, z)
    result, _ = train_preset(preset, z, labels=c, ckpt_path=ckpt_path, progress=progress, callback=callback,
                             first_stage=ae, null_condition=concat_dropout_null(preset))
    return to_model(preset, result.ema, ae)


def part_segmenter(mode: Mode | None = None, ckpt_path=None, progress: bool = True) -> PartSegmenter:
    """The judge of semantic synthesis, trained (or loaded): :class:`~minildm.semantic.PartSegmenter` on 4,000
    rendered faces of their own seed (none of them a training face of the diffusion model, none a test map) and
    their reconstructions by the frozen face autoencoder (the diffusion model's decoder, not its ε_θ), its
    steps per mode :data:`SEGMENTER_STEPS`; ``runs/<mode>/part_segmenter.pt``."""
    mode = mode or get_mode()
    ckpt_path = Path(ckpt_path or runs_dir(mode) / "part_segmenter.pt")
    if ckpt_path.exists():
        return load_segmenter(ckpt_path)
    data = semantic_faces(256 if mode == "smoke" else 4000, seed=SEGMENTER_DATA_SEED)
    rec = reconstruct(face_first_stage(), data.images)  # decoded faces are softer than renders: it reads both
    model, losses = train_segmenter(data, steps=SEGMENTER_STEPS[mode], reconstructions=rec, progress=progress)
    save_checkpoint(ckpt_path, dict(model=model.state_dict(), losses=losses, data_seed=SEGMENTER_DATA_SEED),
                    kind="part_segmenter", config=dict(width=model.width))
    return model


def load_segmenter(path) -> PartSegmenter:
    """A :func:`part_segmenter` checkpoint → the judge in eval mode (its training losses in ``.history``)."""
    ckpt = load_checkpoint(path, kind="part_segmenter")
    model = PartSegmenter(**ckpt["config"])
    model.load_state_dict(ckpt["model"])
    model.history = list(ckpt.get("losses", []))
    return model.eval()


# ------------------------------------------------------------------------------------------ layouts (notebook 09)
def layout_latents(preset: DiffusionPreset, ae: AutoencoderKL, split: str = "train", seed: int = 0):
    """The preset's ``n_train`` canvases of MNIST ``split`` (:func:`minildm.layout.layout_dataset`, ``seed``) encoded
    by the frozen ``ae`` as s·ℰ(x), cached in ``runs/<mode>/latents_layout_f<f>_<split>.pt``: (latents (N, 4, 16, 16),
    layouts (N, K, 5)). The canvases are drawn again on every call (~5 ms each), the cache checked against them."""
    with distributed.main_first():  # rank 0 encodes and caches, the others read the cache
        data = layout_dataset(preset.n_train, split, seed=seed)
        z = encode_dataset(ae, data.images, cache_path=runs_dir(preset.mode) / f"latents_layout_f{preset.f}_{split}.pt")
    return z, data.layouts


def train_layout(preset: DiffusionPreset, ckpt_path=None, progress: bool = True, callback=None) -> DiffusionModel:
    """A layout preset end to end (notebook 09; resumable, a finished run loads): canvases → the frozen f = 4
    autoencoder of notebook 03 (trained or loaded, its scale factor kept) → latents → ε_θ(z_t, t, τ_θ(layout)) with
    condition dropout to the empty layout. Returns the EMA model as a :class:`~minildm.ldm.DiffusionModel`."""
    ckpt_path = Path(ckpt_path or runs_dir(preset.mode) / f"{preset.name}.pt")
    if _finished(preset, ckpt_path):  # loads without drawing its 20,000 canvases again (1.5–3 min for nothing)
        return load_diffusion(ckpt_path)
    ae, _, _ = first_stage(presets.autoencoder_mnist(preset.mode, f=preset.f), progress=progress)
    z, layouts = layout_latents(preset, ae)
    null = _layout_null(preset)
    result, _ = train_preset(preset, z, labels=layouts, ckpt_path=ckpt_path, progress=progress, callback=callback,
                             first_stage=ae, null_condition=null)
    return to_model(preset, result.ema, ae)


# ------------------------------------------------------------------------------------------ faces (notebook 06)
def checkpoint_path(name: str, data: FaceData, mode: Mode | None = None) -> Path:
    """``runs/<mode>/<name>_<toy|celeba>.pt``: each data source keeps its own artefacts."""
    return runs_dir(mode) / f"{name}_{data.source}.pt"


def face_classifier(data: FaceData, test: FaceData, mode: Mode | None = None, ckpt_path=None,
                    progress: bool = True) -> tuple[AttributeClassifier, Tensor]:
    """The attribute classifier for ``data``'s attributes, trained (or loaded): (model, test accuracy (M,))."""
    size = presets.face_classifier(mode)
    return train_attribute_classifier(data.names, data.images, data.attrs, test.images, test.attrs, steps=size.steps,
                                      batch_size=size.batch_size, progress=progress,
                                      ckpt_path=ckpt_path or checkpoint_path("face_classifier", data, size.mode),
                                      data_info=dict(source=data.source, n=len(data)))




def face_judge(data: FaceData, test: FaceData, mode: Mode | None = None, ckpt_path=None,
               progress: bool = True) -> tuple[AttributeClassifier, Tensor]:
    """The judge of generated faces, trained (or loaded): (model, test accuracy (M,)). The attribute classifier's
    task, but the judge's architecture (:data:`~minildm.face_classifier.JUDGE_CONFIG`) and seed, and no training
    loss ever goes through it (the classifier is the face autoencoder's perceptual network)."""
    size = presets.face_classifier(mode)
    return train_attribute_classifier(data.names, data.images, data.attrs, test.images, test.attrs, steps=size.steps,
                                      batch_size=size.batch_size, progress=progress, cfg=FACE_JUDGE_CONFIG,
                                      seed=JUDGE_SEED, ckpt_path=ckpt_path or checkpoint_path("face_judge", data, size.mode),
                                      data_info=dict(source=data.source, n=len(data)))


def face_autoencoder(data: FaceData, classifier: AttributeClassifier, mode: Mode | None = None, ckpt_path=None,
                     progress: bool = True):
    """The RGB first stage for ``data`` (:func:`minildm.presets.autoencoder_faces`), trained, resumed or loaded,
    with the perceptual loss through ``classifier``'s features and its scale factor set: (ae, history, ckpt_path)."""
    preset = presets.autoencoder_faces(mode)
    return first_stage(preset, data=data.float(preset.n_train), feature_net=classifier,
                               ckpt_path=ckpt_path or checkpoint_path(preset.name, data, mode), progress=progress)


@dataclass
class FacesRun:
    """Everything :func:`train_faces` made, for the notebook to show."""

    data: FaceData
    test: FaceData
    classifier: AttributeClassifier
    classifier_accuracy: Tensor            # (M,) on the test split
    ae: object                             # the AutoencoderKL, scale factor set
    ae_history: list
    ae_ckpt: Path
    model: DiffusionModel | None = None    # None when only the autoencoder was asked for
    history: list = field(default_factory=list)
    ckpt: Path | None = None


def train_faces(mode: Mode | None = None, stop_after: str = "ldm", source: str = "auto", root=None,
                ckpt_path=None, progress: bool = True, callback=None, verbose: bool | None = None) -> FacesRun:
    """Notebook 06 end to end (resumable; finished stages load): faces → attribute classifier → RGB autoencoder
    (perceptual loss through the classifier's features) → latents s·ℰ(x) → attribute-conditional LDM.

    ``stop_after="autoencoder"`` stops before the LDM. Checkpoints: :func:`checkpoint_path` (``ckpt_path`` for the
    LDM's, or the autoencoder's with ``stop_after="autoencoder"``). ``verbose`` (default: ``progress``) prints
    which faces were loaded; a notebook that has loaded and announced them already passes False.
    """
    if stop_after not in ("autoencoder", "ldm"):
        raise ValueError(f"stop_after must be 'autoencoder' or 'ldm', got {stop_after!r}")
    mode = mode or get_mode()
    distributed.init()
    with distributed.main_first():  # rank 0 writes the toy faces and trains the classifier; the others load them
        verbose = progress if verbose is None else verbose
        data = load_faces("train", source=source, root=root, mode=mode, verbose=verbose)
        test = load_faces("test", source=source, root=root, mode=mode, verbose=verbose)
        clf, acc = face_classifier(data, test, mode, progress=progress and distributed.is_main())
    ae, ae_history, ae_ckpt = face_autoencoder(data, clf, mode, ckpt_path if stop_after == "autoencoder" else None,
                                               progress)
    run = FacesRun(data, test, clf, acc, ae, ae_history, ae_ckpt)
    if stop_after == "autoencoder":
        return run
    with distributed.main_first():
        z = encode_dataset(ae, data.images, cache_path=checkpoint_path("latents_faces_train", data, mode))
    preset = presets.latent_faces(mode, attributes=data.names)
    run.ckpt = Path(ckpt_path or checkpoint_path(preset.name, data, mode))
    null = torch.full((len(data.names),), NULL)  # ∅: every attribute unspecified
    result, _ = train_preset(preset, z, labels=data.attrs, ckpt_path=run.ckpt, progress=progress,
                              callback=callback, first_stage=ae, null_condition=null)
    run.model, run.history = to_model(preset, result.ema, ae), result.history
    return run
