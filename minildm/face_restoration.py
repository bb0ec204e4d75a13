"""Super-resolution and attribute inpainting of toy faces, measured.  Notebook 08 · LDM §4.4, §4.5 on notebook 06's
faces.

The MNIST models of notebook 08 are judged by a digit classifier; faces have no label but their attributes, so
both measures here read faces with the face judge (``face_judge_toy``, a network no training loss touched) and
compare its Fréchet distance in the judge's features with the real-vs-real floor:

* :func:`measure_sr` — ×4 super-resolution 16 → 64 against bicubic (and the autoencoder's own reconstruction, the
  ceiling of any latent model): PSNR, SSIM, consistency ‖avgpool₄(SR) − LR‖, attributes carried (the judge finds
  the true attributes on the SR face), FD / floor, and the spread between two draws;
* :func:`measure_attribute_inpainting` — the region where an attribute is drawn masked out (the eyes and any
  glasses, the mouth, the hat: :func:`~minildm.pairs.region_mask`), the face filled three ways: told the true
  attributes ("as it was"), told that attribute flipped ("flipped": glasses on a face that had none), told nothing
  ("unsaid": what the rest of the face implies); each scored by whether the judge reads the requested value in the
  filled face (for "unsaid" and the masked input itself: the true value), with the other attributes' rate and the
  error outside the mask beside it.

Every number is an :class:`~minildm.uncertainty.Estimate` with its 95% bootstrap interval over the faces.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .evaluate import FrechetReference, feature_stats, psnr_per_image, ssim_per_image
from .face_classifier import AttributeClassifier, carried_spread, predict_attributes
from .ldm import DiffusionModel
from .pairs import bicubic, consistency, error_outside_mask, low_resolution, masked_image, paste_known, region_mask
from .restoration import NULL, inpaint, upscale
from .uncertainty import Estimate, bootstrap, bootstrap_mean

INPAINT_TESTS = ("Eyeglasses", "Smiling", "Wearing_Hat")  # the attributes whose region notebook 08 masks out


@torch.no_grad()
def face_features(judge: AttributeClassifier, images: Tensor, batch_size: int = 500) -> Tensor:
    """The face judge's last conv block, averaged over positions: (N, 128) float64, the features of every face FD
    here (as the digit judge's penultimate layer is for digits)."""
    judge.eval()
    device = next(judge.parameters()).device
    out = [judge.features(images[i:i + batch_size].to(device))[-1].mean((2, 3)).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).double()


def fd_ratio(judge: AttributeClassifier, y: Tensor, x: Tensor, reference: Tensor, n_boot: int = 200,
             seed: int = 0) -> Estimate:
    """FD(y, reference) / FD(x, reference) in the judge's features, resampled in pairs and recentred: 1 when the
    faces ``y`` are as far from other real faces as the real faces ``x`` are (the floor)."""
    ref = FrechetReference(*feature_stats(face_features(judge, reference)))
    f_y, f_x = face_features(judge, y).numpy(), face_features(judge, x).numpy()

    def fd(f):
        return ref.distance(*feature_stats(f))

    return bootstrap(lambda a, b: fd(a) / fd(b), f_y, f_x, recentre=True, n_boot=n_boot, seed=seed)


@torch.no_grad()
def measure_sr(model: DiffusionModel, judge: AttributeClassifier, x: Tensor, attrs: Tensor, reference: Tensor,
               seed: int = 0, steps: int = 50, n_boot: int = 200, sampler: str = "ddim") -> dict:
    """×4 super-resolution of real faces x (N, 3, 64, 64) in [−1, 1] (attributes ``attrs`` (N, M)), FD against
    ``reference`` (other real faces, as many). Rows ``bicubic``, ``reconstruction`` (𝒟(ℰ(x)): what the latent
    space keeps), ``diffusion`` (the model, ``sampler`` with ``steps``, seed ``seed``), ``real`` (x itself: the
    judge's own accuracy, FD ratio 1); columns ``psnr``, ``ssim``, ``consistency``, ``carried``, ``fd_ratio``.
    Returns {"rows": {row: {col: Estimate}}, "diversity": Estimate (mean |a − b| of two draws, in [0, 1] units),
    "images": {row: (N, 3, 64, 64)}}."""
    lr = low_resolution(x)
    draw = lambda s: upscale(model, (lr + 1) / 2, seed=s, steps=steps, sampler=sampler) * 2 - 1  # noqa: E731
    sr = draw(seed)
    ae = model.first_stage
    rec = torch.cat([ae(x[i:i + 250].to(ae.scale_factor.device), sample_posterior=False)[0].clamp(-1, 1).cpu()
                     for i in range(0, len(x), 250)])
    images = {"bicubic": bicubic(lr), "reconstruction": rec, "diffusion": sr, "real": x}
    kw = dict(n_boot=n_boot, seed=seed)
    rows = {}
    for name, y in images.items():
        rows[name] = dict(psnr=bootstrap_mean(psnr_per_image(y, x).clamp(max=99).numpy(), **kw),
                          ssim=bootstrap_mean(ssim_per_image(y, x).numpy(), **kw),
                          consistency=bootstrap_mean(consistency(y, lr).numpy(), **kw),
                          carried=carried_spread(judge, y, attrs, **kw),
                          fd_ratio=fd_ratio(judge, y, x, reference, **kw))
    diversity = bootstrap_mean((sr - draw(seed + 1)).abs().flatten(1).mean(1).numpy() / 2, **kw)
    return dict(rows=rows, diversity=diversity, images=images, lr=lr)


def _reads(judge: AttributeClassifier, images: Tensor, j: int, want: Tensor, n_boot: int, seed: int) -> Estimate:
    """The share of ``images`` on which the judge reads attribute ``j`` as ``want`` (N,)."""
    hit = predict_attributes(judge, images)[:, j] == want
    return bootstrap_mean(hit.float().numpy(), n_boot=n_boot, seed=seed)


@torch.no_grad()
def measure_attribute_inpainting(model: DiffusionModel, judge: AttributeClassifier, x: Tensor, attrs: Tensor,
                                 names=INPAINT_TESTS, seed: int = 0, steps: int = 50, n_boot: int = 200,
                                 sampler: str = "ddim") -> dict:
    """For each attribute in ``names``: mask its region (:func:`~minildm.pairs.region_mask`) on every face x (N, 3,
    64, 64) in [−1, 1] with attributes ``attrs`` (N, M) in the model's order, and fill it told ``as it was`` (the
    true attributes), ``flipped`` (that one attribute flipped) and ``unsaid`` (nothing said). Per attribute:

    * ``masked input`` / ``as it was`` / ``flipped`` / ``unsaid``: the share of faces whose filled face the judge
      reads with the requested value of that attribute (the true value for the masked input and ``unsaid``);
    * ``others``: attributes carried over the other attributes, on the ``as it was`` fills;
    * ``outside``: mean |y − x| outside the mask before the known pixels are pasted back ([−1, 1] units).

    Returns {name: {col: Estimate}, "images": {name: {"masked": …, "as it was": …, "flipped": …, "unsaid": …}}}."""
    order = list(model.unet.attributes)
    if attrs.shape != (len(x), len(order)):
        raise ValueError(f"attrs must be (N, M) = ({len(x)}, {len(order)}) in the model's order, got "
                         f"{tuple(attrs.shape)}")
    out, pictures = {}, {}
    x01 = (x + 1) / 2
    for name in names:
        j = order.index(name)
        m = region_mask(name, x.shape[-1]).expand(len(x), -1, -1, -1).contiguous()
        flipped = attrs.clone()
        flipped[:, j] = 1 - attrs[:, j]
        requests = {"as it was": attrs, "flipped": flipped, "unsaid": torch.full_like(attrs, NULL)}
        raw = {k: inpaint(model, x01, m, attrs=a, seed=seed, steps=steps, sampler=sampler, paste=False) * 2 - 1
               for k, a in requests.items()}
        filled = {k: paste_known(y, x, m) for k, y in raw.items()}
        kw = dict(n_boot=n_boot, seed=seed)
        others = attrs.clone()
        others[:, j] = NULL
        row = {"masked input": _reads(judge, masked_image(x, m), j, attrs[:, j], **kw)}
        for k, y in filled.items():
            row[k] = _reads(judge, y, j, (attrs if k == "unsaid" else requests[k])[:, j], **kw)
        row["others"] = carried_spread(judge, filled["as it was"], others, **kw)
        row["outside"] = bootstrap_mean(error_outside_mask(raw["as it was"], x, m).numpy(), **kw)
        out[name] = row
        pictures[name] = {"masked": masked_image(x, m), **filled}
    return out | {"images": pictures}


def sr_table(result: dict) -> str:
    """:func:`measure_sr`'s rows as a markdown table."""
    lines = ["| row | PSNR dB | SSIM | consistency | attributes carried | FD / floor |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in result["rows"].items():
        lines.append(f"| {name} | {r['psnr'].value:.2f} | {r['ssim'].value:.3f} | {r['consistency'].value:.4f} | "
                     f"{r['carried']:.1%} | {r['fd_ratio']:.2f} |")
    return "\n".join(lines)


def inpainting_table(result: dict) -> str:
    """:func:`measure_attribute_inpainting`'s rows as a markdown table (shares in %)."""
    cols = ("masked input", "unsaid", "as it was", "flipped", "others")
    lines = ["| region masked | " + " | ".join(cols) + " | outside |", "|---" * (len(cols) + 2) + "|"]
    for name, r in result.items():
        if name == "images":
            continue
        lines.append(f"| {name} | " + " | ".join(f"{r[c]:.1%}" for c in cols) + f" | {r['outside'].value:.3f} |")
    return "\n".join(lines)
