"""The course's attribute classifier for faces: a judge for samples and a feature net for the RGB autoencoder.
Notebook 06.

The two jobs of :mod:`minildm.classifier` (notebook 03), for faces:

* **evaluation**: is a face generated for "Smiling = 1, Eyeglasses = 0" smiling, without glasses?
  :func:`attribute_rates` gives, per attribute, the share of samples on which the classifier finds the value that
  was asked for. The same function on *real* images with their true labels is the classifier's own accuracy: the
  reference, the rate a perfect generator would reach. :func:`chance_rates` is the rate of a generator that
  ignores the request;
* **perceptual loss**: offline there is no VGG for LPIPS, so the RGB autoencoder compares images through this
  net's activations (:meth:`AttributeClassifier.features`), as notebook 03 did with the MNIST classifier. It is
  cheap (three conv blocks), but it only knows what telling attributes apart needed: LPIPS' VGG, trained on
  ImageNet and calibrated to human judgements, sees far more (textures, fine edges).

The network is :class:`minildm.classifier.MNISTClassifier`'s CNN unchanged (conv blocks at 64², 32², 16² with
GroupNorm, max-pooled to 2×2, an embedding, a linear head), built for 3×64×64 input with one logit per
attribute and trained multi-label: L = Σ_m BCE(logit_m, a_m), one independent yes/no question per attribute.

As for digits, the two jobs go to two networks: the classifier (``face_classifier_<source>.pt``) is the
autoencoder's perceptual net, and a judge of another architecture and seed (:data:`JUDGE_CONFIG`,
:func:`minildm.recipes.face_judge`, ``face_judge_<source>.pt``), which no training loss touched, measures samples.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .checkpoint import CheckpointNotFoundError, load_checkpoint, save_checkpoint
from .classifier import ClassifierConfig, MNISTClassifier, warmup_cosine_lr
from .uncertainty import Estimate, bootstrap

KIND = "face_classifier"
# The judge of generated faces (recipes.face_judge): the MNIST judge's architecture for 3×64×64, another seed.
JUDGE_CONFIG = ClassifierConfig(in_channels=3, widths=(32, 64, 128), image_size=64, arch="strided", dropout=0.2)


def _as_float(x: Tensor) -> Tensor:
    """uint8 images [0, 255] → float [−1, 1]; float images pass unchanged."""
    return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x


class AttributeClassifier(MNISTClassifier):
    """x (B, 3, 64, 64) in [−1, 1] (or uint8) → one logit per attribute (B, M); ``names`` are the M attributes."""

    def __init__(self, names, cfg: ClassifierConfig | None = None):
        names = tuple(names)
        cfg = cfg or ClassifierConfig(in_channels=3, widths=(32, 64, 128), image_size=64)
        cfg = ClassifierConfig(**{**cfg.to_dict(), "num_classes": len(names)})  # one logit per attribute
        super().__init__(cfg)
        self.names = names

    def features(self, x: Tensor) -> list[Tensor]:
        """Activations after each conv block [(B, 32, 64, 64), (B, 64, 32, 32), (B, 128, 16, 16)]: the perceptual
        loss's feature maps (PerceptualLoss(classifier))."""
        n, s = self.cfg.in_channels, self.cfg.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (n, s, s):
            raise ValueError(f"the attribute classifier takes face images (B, {n}, {s}, {s}) in [−1, 1] (or uint8), "
                             f"got {tuple(x.shape)}; load faces at size {s} (minildm.faces.load_faces)")
        return super().features(_as_float(x))


@torch.no_grad()
def predict_attributes(model: AttributeClassifier, images: Tensor, batch_size: int = 500) -> Tensor:
    """The attributes the classifier sees, (N, M) in {0, 1}: logit_m > 0, i.e. P(a_m = 1 | x) > ½."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [(model(images[i:i + batch_size].to(device)) > 0).long().cpu() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, len(model.names), dtype=torch.long)


def attribute_rates(model: AttributeClassifier, images: Tensor, attrs: Tensor) -> Tensor:
    """Per attribute, the share of ``images`` on which the classifier finds the value in ``attrs``. (M,) in [0, 1].

    rate_m = (1/N_m) Σ_i [â_im = a_im] over the N_m images whose a_im is specified (0 or 1; the value 2, ∅, is
    skipped; NaN if none is). On generated images with the attributes they were asked for, it says how often the
    request is met; on real images with their labels it is the classifier's accuracy: the reference.
    """
    hits, given = attribute_hits(model, images, attrs)
    return hits.sum(0).float() / given.sum(0).float()  # (M,); 0/0 → NaN


def attribute_hits(model: AttributeClassifier, images: Tensor, attrs: Tensor) -> tuple[Tensor, Tensor]:
    """(N, M) each: whether the classifier finds the value in ``attrs``, and whether that value is specified (∅,
    the value 2, is skipped: never a hit)."""
    M = len(model.names)
    if attrs.ndim != 2 or attrs.shape != (images.shape[0], M):
        raise ValueError(f"attrs must be (N, M) = ({images.shape[0]}, {M}): one value per image and attribute, in "
                         f"the classifier's order ({', '.join(model.names[:3])}, …), got {tuple(attrs.shape)}")
    given = (attrs != 2).cpu()  # (N, M): skip ∅
    return (predict_attributes(model, images) == attrs.cpu()) & given, given


def carried_rate(hits: np.ndarray, given: np.ndarray) -> float:
    """The mean over attributes of each one's hit rate among the faces that specify it: the statistic of
    :func:`carried_spread`, from :func:`attribute_hits`' two (N, M) arrays (an attribute nobody asked for is
    skipped)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.nanmean(hits.sum(0) / given.sum(0)))


def carried_spread(model: AttributeClassifier, images: Tensor, attrs: Tensor, n_boot: int = 200,
                   seed: int = 0) -> Estimate:
    """The mean over attributes of :func:`attribute_rates` (the headline "attributes carried"), with its 95%
    bootstrap interval over the images: each resample of the N faces recomputes every attribute's rate and
    their mean, so a rare attribute's few faces weigh as they do in the estimate."""
    hits, given = attribute_hits(model, images, attrs)
    return bootstrap(carried_rate, hits.double().numpy(), given.double().numpy(), n_boot=n_boot, seed=seed)


def chance_rates(requested: Tensor, positive_rate: Tensor) -> Tensor:
    """The rates of a generator that ignores the request: its faces show attribute m with probability p_m (what the
    classifier finds on real faces, ``predict_attributes(real).float().mean(0)``), whatever was asked. (M,).

    chance_m = q_m·p_m + (1 − q_m)·(1 − p_m),  q_m the share of requests with a_m = 1 (∅ skipped).
    """
    given = requested != 2  # (N, M)
    q = ((requested == 1) & given).sum(0).float() / given.sum(0).float()  # (M,)
    p = positive_rate.float().cpu()
    return q * p + (1 - q) * (1 - p)


def train_attribute_classifier(names, images: Tensor, attrs: Tensor, test_images: Tensor, test_attrs: Tensor, *,
                               steps: int, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                               cfg: ClassifierConfig | None = None, ckpt_path: str | Path | None = None,
                               progress: bool = True, data_info: dict | None = None,
                               ) -> tuple[AttributeClassifier, Tensor]:
    """Train an :class:`AttributeClassifier` on ``images`` (N, 3, 64, 64) (uint8 or [−1, 1]) with labels ``attrs``
    (N, M) in {0, 1}; returns (model in eval mode, per-attribute test accuracy (M,)).

    AdamW, linear warm-up over 10% then cosine decay to 0, BCE per attribute, random horizontal flips (faces'
    attributes do not depend on the side). With ``ckpt_path`` the result is saved there (with the names, the test
    accuracy and ``data_info``), and a file already there is loaded instead of training (delete it to retrain).
    """
    names = tuple(names)
    if ckpt_path is not None and Path(ckpt_path).exists():
        model, ckpt = _load(ckpt_path)
        if model.names != names:
            raise ValueError(f"{ckpt_path} classifies {list(model.names)}, not {list(names)}: delete it to retrain")
        return model, torch.tensor(ckpt["test_accuracy"])
    if attrs.shape != (images.shape[0], len(names)):
        raise ValueError(f"attrs must be (N, M) = ({images.shape[0]}, {len(names)}), got {tuple(attrs.shape)}")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = AttributeClassifier(names, cfg)
    device = images.device
    model.to(device).train()
    g = torch.Generator().manual_seed(seed)  # CPU: batches and flips
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    for step in tqdm(range(steps), disable=not progress, desc=KIND, dynamic_ncols=True):
        idx = torch.randint(images.shape[0], (batch_size,), generator=g)  # (B,)
        x, a = _as_float(images[idx]), attrs[idx].to(device).float()  # (B, 3, 64, 64), (B, M)
        flip = (torch.rand(batch_size, generator=g) < 0.5).to(device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        for group in opt.param_groups:
            group["lr"] = warmup_cosine_lr(step, steps, lr)  # the MNIST classifier's schedule
        loss = F.binary_cross_entropy_with_logits(model(x), a)  # mean over B and M
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval().requires_grad_(False)
    accuracy = attribute_rates(model, test_images, test_attrs)  # (M,)
    if ckpt_path is not None:
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        save_checkpoint(ckpt_path, dict(model=weights, names=list(names), test_accuracy=accuracy.tolist(),
                                        steps=steps, seed=seed, seconds=time.perf_counter() - t0,
                                        data=dict(data_info or {})), kind=KIND, config=model.cfg.to_dict())
    return model, accuracy


def _load(path: str | Path, map_location="cpu") -> tuple[AttributeClassifier, dict]:
    ckpt = load_checkpoint(path, kind=KIND, map_location=map_location)
    model = AttributeClassifier(ckpt["names"], ClassifierConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(map_location).eval().requires_grad_(False), ckpt


def load_attribute_classifier(path: str | Path, device: str | torch.device = "cpu") -> AttributeClassifier:
    """A trained attribute classifier, frozen, in eval mode; ``.names`` its attributes, ``.test_accuracy`` (M,)."""
    if not Path(path).is_file():
        raise CheckpointNotFoundError(f"no attribute classifier at {path}; train it with minildm.faces."
                                      "face_classifier(mode) (about 2 minutes on 2 CPU cores in cpu mode)")
    model, ckpt = _load(path, map_location=device)
    model.test_accuracy = torch.tensor(ckpt["test_accuracy"])
    return model
