"""Faces: data, attribute vectors, editing, attention localisation.  Notebook 06 · LDM §4.3 (conditional LDMs).

* **data** — :func:`load_faces` gives CelebA 64×64 if it is on disk under the data root, else the toy faces of
  :mod:`minildm.toyfaces` (written on first use), *labelled* as the stand-in they are (``FaceData.toy``, ``.label``);
* **attribute vectors** — y (B, M) with one value per attribute of ``names``: 0 absent, 1 present, 2 = ∅
  unspecified (:class:`minildm.conditioning.AttributeEncoder`); :func:`attribute_vector` builds one by name;
* **editing** — :func:`edit_attribute`: the same starting noise z_T (and the same seed for any per-step noise),
  once per value of one attribute, so the attribute vector is the only thing that differs between the images;
* **localisation** — :func:`attention_localisation`: the share of each attribute token's cross-attention mass
  inside the region where the toy faces draw that attribute, against the share expected by chance.

The training run on these faces (data → attribute classifier → RGB autoencoder → latents → LDM) is
:func:`minildm.recipes.train_faces`. CelebA itself is read by :mod:`minildm.celeba` (LDM trains on it, App. E.2;
attribute-conditional faces are this course's own extension, not an experiment of the paper).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .attention_maps import region_share
from .celeba import CELEBA_ATTRIBUTES, FACE_SIZE, HUB_GB, CelebA, CelebADataMissing, attribute_index
from .conditioning import AttributeEncoder
from .config import Mode, data_root, get_mode
from .ldm import DiffusionModel
from .presets import toy_faces_count
from .toyfaces import MARKER, RENDERED_ATTRIBUTES, attribute_regions, sample_attributes, write_toy_faces

FACE_ATTRIBUTES: tuple[str, ...] = RENDERED_ATTRIBUTES  # the 16 the toy faces draw; all of them CelebA attributes
NULL = AttributeEncoder.NULL  # 2: "unspecified", per attribute; all-NULL is the unconditional input ∅
TOY_LABEL = "TOY FACES, a procedural stand-in drawn by minildm.toyfaces, NOT CelebA"


@dataclass
class FaceData:
    """Face images and their attributes, in memory."""

    images: Tensor               # (N, 3, 64, 64) uint8 in [0, 255]; .float() gives [−1, 1]
    attrs: Tensor                # (N, M) int64 in {0, 1}, columns in the order of ``names``
    names: tuple[str, ...]       # the M attributes
    toy: bool                    # True: the toy-faces stand-in; False: real CelebA
    folder: Path = field(default_factory=Path)  # the <root>/celeba folder they were read from

    @property
    def label(self) -> str:
        """What these faces are, for every plot title and printout."""
        return TOY_LABEL if self.toy else "CelebA (aligned, centre crop 148, 64×64)"

    @property
    def source(self) -> str:
        """"toy" or "celeba": part of every checkpoint name, so a toy run never resumes as a CelebA one."""
        return "toy" if self.toy else "celeba"

    def float(self, n: int | None = None) -> Tensor:
        """The first ``n`` images (all if None) as float (n, 3, 64, 64) in [−1, 1]."""
        return self.images[:n].float() / 127.5 - 1

    def __len__(self) -> int:
        return self.images.shape[0]


def select_attributes(attrs: Tensor, names=FACE_ATTRIBUTES) -> Tensor:
    """CelebA's (N, 40) attribute columns → the (N, M) columns of ``names``, in that order."""
    if attrs.ndim != 2 or attrs.shape[1] != 40:
        raise ValueError(f"attrs must be CelebA's (N, 40) table (minildm.celeba.CelebA.attrs), "
                         f"got {tuple(attrs.shape)}")
    return attrs[:, [attribute_index(CELEBA_ATTRIBUTES, n) for n in names]]


def load_faces(split: str = "train", n: int | None = None, names=FACE_ATTRIBUTES, source: str = "auto",
               root: str | Path | None = None, mode: Mode | None = None, verbose: bool = True) -> FaceData:
    """Faces of ``split`` ("train", "valid", "test") at 64×64 with attributes ``names``: the first ``n`` (None: all).

    ``source``: "celeba" reads ``<root>/celeba`` (:class:`~minildm.celeba.CelebA`; :class:`CelebADataMissing` says
    where to put the files); "toy" uses toy faces, written once to ``<root>/toyfaces_<count>/celeba``
    (:func:`minildm.presets.toy_faces_count` per run mode); "auto" takes CelebA if it is there and the toy faces otherwise, and
    says so. ``root`` defaults to the data root (``MINILDM_DATA``). ``n`` None keeps at most
    :func:`~minildm.presets.toy_faces_count` faces in smoke and cpu mode (CelebA's 162,770 training faces are 2 GB as uint8),
    all of them in gpu mode.
    """
    if source not in ("auto", "celeba", "toy"):
        raise ValueError(f"source must be 'auto', 'celeba' or 'toy', got {source!r}")
    root = Path(root) if root is not None else data_root()
    data = None
    if source != "toy":
        try:
            data = CelebA(root, split=split, size=FACE_SIZE)
        except CelebADataMissing as missing:
            if source == "celeba":
                raise
            if verbose and (root / "celeba").exists():  # a half-placed CelebA: say so, not only "toy faces"
                first, what = str(missing).splitlines()[:2]
                print(f"note: {first} {what.strip()} … so the toy faces stand in. Online (Colab included), `from "
                      f"minildm.celeba_hub import download_celeba; download_celeba()` fetches CelebA (about {HUB_GB} GB); "
                      "load_faces(source='celeba') raises with every way to get it")
    if data is None:
        count = toy_faces_count(mode)
        folder = write_toy_faces(root / f"toyfaces_{count}", n=count, seed=0)
        data = CelebA(folder.parent, split=split, size=FACE_SIZE)
    toy = (data.folder / MARKER).is_file()  # toy faces carry their marker file wherever they were written
    if n is None and (mode or get_mode()) != "gpu":
        n = toy_faces_count(mode)
    images = data.images[:n].clone() if n is not None and n < len(data) else data.images  # a copy frees the rest
    out = FaceData(images, select_attributes(data.attrs[:n], names), tuple(names), toy, data.folder)
    if verbose:
        print(f"{len(out)} {split} faces from {out.folder}: {out.label}")
    return out


def attribute_vector(names, default: int = NULL, **values: int) -> Tensor:
    """One attribute vector (M,) long: ``values`` by name (0 or 1), every other attribute ``default`` (2 = ∅).

    ``attribute_vector(model.attributes, Smiling=1, Eyeglasses=1)``; expand to a batch with ``.expand(n, -1)``.
    """
    y = torch.full((len(names),), default, dtype=torch.long)
    for name, v in values.items():
        if v not in (0, 1, NULL):
            raise ValueError(f"{name}={v!r}: an attribute value is 0 (absent), 1 (present) or {NULL} (unspecified)")
        y[attribute_index(names, name)] = v
    return y


def random_attributes(n: int, names=FACE_ATTRIBUTES, seed: int = 0) -> Tensor:
    """n plausible attribute vectors (n, M) in {0, 1}, drawn with the toy faces' rules (one hair colour at most,
    no hair when bald, beards on men): requests for sample grids when no real labels are at hand."""
    rng = np.random.default_rng(seed)
    return select_attributes(torch.stack([sample_attributes(rng) for _ in range(n)]), names)


# ------------------------------------------------------------------------------------------ editing
@torch.no_grad()
def edit_attribute(model: DiffusionModel, attrs: Tensor, name: str, values=(0, 1), *, seed: int = 0,
                   guidance: float | None = None, sampler: str = "ddpm", steps: int = 50,
                   eta: float | None = None) -> Tensor:
    """The same faces once per value of attribute ``name``: (len(values), B, 3, H, W) in [−1, 1].

    ``attrs`` (B, M) or (M,): the attribute vectors to start from; in copy k, column ``name`` is set to
    ``values[k]`` and nothing else changes. Every copy starts from the same z_T and draws the same per-step noise
    (η > 0, "ddpm") as ``model.sample(B, seed=seed)`` would: the attribute vector is the only difference, and a
    copy whose attributes are unchanged is that ordinary sample. (Until 2026-12 z_T was re-drawn here from the
    seed and the sampler's first noise *equalled* z_T, so edits started ~40% off the latent distribution.) ``guidance`` defaults to the model's recommended scale. The default sampler is 50
    ancestral steps: deterministic DDIM (η = 0) drifts off the latent distribution with the cpu-budget face model
    (notebook 06, §7).
    """
    if model.attributes is None:
        raise ValueError("edit_attribute needs an attribute-conditional model (latent_faces); this one has no "
                         "AttributeEncoder")
    y = torch.as_tensor(attrs, dtype=torch.long)
    y = y[None] if y.ndim == 1 else y  # (B, M)
    j = attribute_index(model.attributes, name)
    B = y.shape[0]
    x_T = torch.randn((B, *model.sample_shape), generator=torch.Generator().manual_seed(seed))  # sample()'s z_T
    guidance = model.guidance if guidance is None else guidance
    out = []
    for v in values:
        y_v = y.clone()
        y_v[:, j] = v
        out.append(model.sample(B, y=y_v, x_T=x_T, seed=seed, guidance=guidance, sampler=sampler, steps=steps,
                                eta=eta, batch_size=B))
    return torch.stack(out)  # (V, B, 3, H, W)


def slerp(a: Tensor, b: Tensor, w: float) -> Tensor:
    """Spherical interpolation between two noises (per example): the path keeps ‖z‖ ≈ √D, as N(0, I) draws have,
    where a straight line would pass through low-norm noise the model never saw. w = 0 → a, w = 1 → b.

    slerp(a, b; w) = sin((1 − w)θ)/sin θ · a + sin(wθ)/sin θ · b,   cos θ = ⟨a, b⟩ / (‖a‖‖b‖)
    """
    B = a.shape[0]
    fa, fb = a.reshape(B, -1), b.reshape(B, -1)  # (B, D)
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1))
    theta = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))[:, None]  # (B, 1)
    out = (torch.sin((1 - w) * theta) * fa + torch.sin(w * theta) * fb) / torch.sin(theta)
    return out.reshape(a.shape)


# ------------------------------------------------------------------------------------------ localisation
def attention_localisation(maps: Tensor, names) -> tuple[Tensor, Tensor]:
    """Per attribute token, the share of its attention inside the attribute's drawn region, and by chance. (M,) each.

    ``maps`` (B, M, H, W) from :meth:`~minildm.attention_maps.AttentionStore.token_maps` (the conditional rows), for
    a model with the attributes ``names``; the regions are :func:`minildm.toyfaces.attribute_regions` at H×W, so
    this measures toy faces only (CelebA's faces are not drawn at known places). Attributes without a region
    (Pale_Skin: the whole face) get NaN. See :func:`minildm.attention_maps.region_share`.
    """
    B, M, H, W = maps.shape
    if M != len(names) or H != W:
        raise ValueError(f"maps must be (B, M = {len(names)}, H, H), one square map per attribute of names, got "
                         f"{tuple(maps.shape)}")
    regions = attribute_regions(H)
    masks = torch.stack([regions.get(n, torch.zeros(H, W, dtype=torch.bool)) for n in names])  # (M, H, W)
    return region_share(maps, masks)
