"""Semantic-map synthesis on toy faces: a face drawn from a map of its parts, concatenated with z_t.  Notebook 08 ·
LDM §4.3.2 (semantic synthesis on landscapes, Fig. 8).

The toy-face renderer (:func:`minildm.toyfaces.render_face`) paints every face stroke by stroke, so it can paint the
same strokes with part indices instead of colours: each face comes with its **part map**, the ground truth of where
its hair, eyes, mouth, glasses and hat are. The mouth and the glasses move (``offsets``), so maps differ in more
than which parts are present, and a map can be edited (move the mouth, add glasses) and rendered again:

=========================  ==========================================================================================
code                       meaning
=========================  ==========================================================================================
``PARTS``                  the 8 parts: background, clothes, skin, hair, eyes, mouth, glasses, hat
``semantic_faces``         n faces (N, 3, 64, 64) in [−1, 1] with their maps (N, 64, 64) (part indices), seeded
``semantic_condition``     c = the one-hot map, area-resized to the 16 × 16 latent grid (N, 8, 16, 16)
``PartSegmenter``          the **judge**: a small conv net that reads the part of every pixel, trained on renders
                           only (no diffusion loss touches it), :func:`train_segmenter`
``part_hits``              per face and requested part: is it drawn in its region (precision and recall of its
                           pixels ≥ 0.5, within 1 px: :func:`part_match`)?
=========================  ==========================================================================================

The model is ε_θ([z_t, c], t) (:class:`minildm.concat.ConcatUNet`, task ``semantic``) on the latents of notebook
06's frozen face autoencoder; ∅ is the all-zero map, so classifier-free guidance works as for the other conditions.
Colours (skin, hair colour, lipstick, background) are not in the map: the model draws them, which is where the
diversity of faces from one map comes from.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from .concat import area_resize
from .toyfaces import CROP, MOVABLE, OFFSET, PARTS, render_face, sample_attributes
from .uncertainty import Estimate, bootstrap_mean

MAP_SIZE = 64  # the maps and faces of notebook 06's resolution
LOCALISED = ("hair", "eyes", "mouth", "glasses", "hat")  # the parts whose place the measure checks
# How far the movable parts move, in pixels of the 148 × 148 crop (÷ 2.3 at 64 × 64): the mouth up to ±4 px
# sideways and −3…+3 px up and down at 64 px, the glasses ±2.5 px up and down
MOUTH_DX, MOUTH_DY, GLASSES_DY = (-10, 10), (-8, 6), (-6, 6)


@dataclass
class SemanticFaces:
    """Faces and their part maps: ``images`` (N, 3, 64, 64) in [−1, 1], ``parts`` (N, 64, 64) int64 indices into
    :data:`PARTS`, ``attrs`` (N, 40) CelebA attributes, ``offsets`` (N, 2, 2): (dx, dy) of the mouth and the glasses
    in crop pixels, and ``seeds`` (N,): the colour seed of each (:func:`render_pair` redraws face i from them)."""

    images: Tensor
    parts: Tensor
    attrs: Tensor
    offsets: Tensor
    seeds: list

    def __len__(self) -> int:
        return len(self.images)


def random_offsets(rng: np.random.Generator) -> dict[str, tuple[int, int]]:
    """Where the mouth and the glasses go for one face: {part: (dx, dy)} in crop pixels, uniform integers."""
    return {"mouth": (int(rng.integers(MOUTH_DX[0], MOUTH_DX[1] + 1)), int(rng.integers(MOUTH_DY[0], MOUTH_DY[1] + 1))),
            "glasses": (0, int(rng.integers(GLASSES_DY[0], GLASSES_DY[1] + 1)))}


def render_pair(attrs, seed, offsets=None, size: int = MAP_SIZE) -> tuple[Tensor, Tensor]:
    """One face and its map at ``size``: (3, size, size) in [−1, 1] (the loader's crop + bicubic resize, as
    notebook 06's faces) and (size, size) int64 part indices (each pixel's commonest part under it)."""
    img, part_map = render_face(attrs, seed, offsets=offsets, parts=True)
    face = img.crop((OFFSET[0], OFFSET[1], OFFSET[0] + CROP, OFFSET[1] + CROP)).resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(face, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
    # each part's share of the pixels under each output pixel, a part at a time through PIL (a one-hot tensor of the
    # 148 × 148 map per face fragments the heap: 1.4 MB a face that glibc kept, 11 GB for 10,000 faces)
    labels = np.asarray(part_map)
    share = np.stack([np.asarray(Image.fromarray((labels == k).astype(np.uint8) * 255).resize((size, size), Image.BOX))
                      for k in range(len(PARTS))])  # (P, size, size) uint8
    return x, torch.from_numpy(share.argmax(0).astype(np.int64))


def semantic_faces(n: int, seed: int = 0, size: int = MAP_SIZE, move: bool = True) -> SemanticFaces:
    """``n`` random faces with their maps; face i depends only on (seed, i) (NumPy's generator), so a run's data can
    be made again rather than stored. ``move=False``: notebook 06's fixed geometry. ~3 ms a face."""
    xs, maps, attrs, offs, seeds = [], [], [], [], []
    for i in range(n):
        rng = np.random.default_rng([seed, 8, i])  # 8: notebook 08's stream, apart from the toy faces' own
        a = sample_attributes(rng)
        o = random_offsets(rng) if move else {p: (0, 0) for p in MOVABLE}
        colour_seed = int(rng.integers(2**31))
        x, m = render_pair(a, colour_seed, o, size)
        xs.append(x), maps.append(m), attrs.append(a), seeds.append(colour_seed)
        offs.append(torch.tensor([o["mouth"], o["glasses"]]))
    return SemanticFaces(torch.stack(xs), torch.stack(maps), torch.stack(attrs), torch.stack(offs), seeds)


def one_hot(parts: Tensor) -> Tensor:
    """Part indices (N, H, W) → one-hot maps (N, P, H, W) float."""
    if parts.dtype not in (torch.int64, torch.int32, torch.uint8) or parts.ndim != 3:
        raise ValueError(f"part maps must be integer (N, H, W) indices into PARTS, got {parts.dtype} "
                         f"{tuple(parts.shape)}")
    if parts.numel() and (parts.min() < 0 or parts.max() >= len(PARTS)):
        raise ValueError(f"part indices must lie in 0..{len(PARTS) - 1} (PARTS = {PARTS}), got "
                         f"{int(parts.min())}..{int(parts.max())}")
    return F.one_hot(parts.long(), len(PARTS)).permute(0, 3, 1, 2).float()


def semantic_condition(parts: Tensor, size: int = 16) -> Tensor:
    """c for ε_θ([z_t, c], t): the one-hot map area-resized to the latent grid, (N, P, size, size); each cell holds
    the share of its 4 × 4 pixels that each part covers (a column sums to 1)."""
    return area_resize(one_hot(parts), size)


# a colour per part, for figures: background, clothes, skin, hair, eyes, mouth, glasses, hat
PALETTE = torch.tensor([[40, 40, 40], [70, 110, 200], [230, 190, 150], [120, 70, 30], [250, 250, 250],
                        [220, 30, 60], [30, 200, 220], [240, 200, 40]], dtype=torch.float32) / 127.5 - 1


def colour_map(parts: Tensor) -> Tensor:
    """Part maps (N, H, W) → pictures of them (N, 3, H, W) in [−1, 1], one colour per part (:data:`PALETTE`)."""
    return PALETTE[one_hot(parts).argmax(1)].permute(0, 3, 1, 2)


@torch.no_grad()
def draw(model, parts: Tensor, seed: int = 0, steps: int = 50, guidance: float = 1.0, **sample_kw) -> Tensor:
    """Faces (N, 3, 64, 64) in [−1, 1] drawn from part maps (N, 64, 64) by a semantic model."""
    unet = model.unet
    if getattr(unet, "task", None) != "semantic":
        raise ValueError(f"{model.name or 'this model'} is not a semantic-map model; give latent_faces_semantic")
    c = semantic_condition(parts, unet.size)
    return model.sample(len(parts), y=c, seed=seed, steps=steps, guidance=guidance, **sample_kw).cpu()


# ------------------------------------------------------------------------------------------ the judge
def _block(c_in: int, c_out: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation), nn.GroupNorm(8, c_out),
                         nn.SiLU())


class PartSegmenter(nn.Module):
    """Reads the part of every pixel of a 64 × 64 face: (N, 3, H, W) in [−1, 1] → logits (N, P, H, W).

    Two full-resolution convs (thin strokes: a closed mouth is 2 px high), then half resolution with dilations 1,
    2, 4 (a receptive field of ~40 px: enough to tell hair from a hat by where it is), upsampled and joined with the
    full-resolution features. 0.04 M parameters at width 16 (0.5 s a step of 32 on a busy core)."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.width = width
        self.stem = nn.Sequential(_block(3, width), _block(width, width))
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * width),
                                  nn.SiLU(), _block(2 * width, 2 * width), _block(2 * width, 2 * width, 2),
                                  _block(2 * width, 2 * width, 4))
        self.up = _block(3 * width, width)
        self.head = nn.Conv2d(width, len(PARTS), 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        d = F.interpolate(self.down(h), size=h.shape[-2:], mode="nearest")
        return self.head(self.up(torch.cat([h, d], 1)))

    @torch.no_grad()
    def segment(self, x: Tensor, batch_size: int = 256) -> Tensor:
        """Faces (N, 3, H, W) in [−1, 1] → part indices (N, H, W)."""
        was = self.training
        self.eval()
        device = next(self.parameters()).device
        out = torch.cat([self(x[i:i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)])
        self.train(was)
        return out


def _augment(x: Tensor, g: torch.Generator) -> Tensor:
    """What a decoded sample may look like and a render does not: a little blur (the decoder's), noise, a shift of
    brightness. Per image: blur with p = 0.5 (a 3 × 3 box), Gaussian noise σ ~ U(0, 0.08), brightness ± 0.1."""
    n = len(x)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    pick = (torch.rand(n, 1, 1, 1, generator=g) < 0.5).float()
    x = pick * blurred + (1 - pick) * x
    x = x + torch.randn(x.shape, generator=g) * torch.rand(n, 1, 1, 1, generator=g) * 0.08
    return (x + (torch.rand(n, 1, 1, 1, generator=g) - 0.5) * 0.2).clamp(-1, 1)


def train_segmenter(data: SemanticFaces, steps: int = 600, batch_size: int = 32, lr: float = 2e-3, seed: int = 0,
                    reconstructions: Tensor | None = None,
                    progress: bool = False) -> tuple[PartSegmenter, list[float]]:
    """The judge: :class:`PartSegmenter` trained with class-weighted cross-entropy (weights ∝ 1/√(pixel share)) on
    rendered faces and their maps (augmented, :func:`_augment`), AdamW at ``lr`` with a ×0.1 drop for the last
    quarter. ``reconstructions`` (the renders
    through the frozen autoencoder, :func:`reconstruct`): each example is its reconstruction with p = 0.5, so that
    the judge reads decoded faces as well as renders (trained on renders alone it found 12% of the glasses in
    reconstructions: 1-px frames, blurred). Returns (model in eval mode, losses)."""
    torch.manual_seed(seed)
    model = PartSegmenter()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    # class weights ∝ 1/√(pixel share), mean 1: glasses and a closed mouth are < 1% of the pixels, and unweighted
    # cross-entropy found only 62% of the glasses pixels of renders (31% of reconstructions) after 500 steps
    share = torch.bincount(data.parts.flatten(), minlength=len(PARTS)).float().clamp_min(1) / data.parts.numel()
    weight = share.rsqrt() / share.rsqrt().mean()
    g = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(steps):
        if step == 3 * steps // 4:
            for group in opt.param_groups:
                group["lr"] = lr * 0.1
        idx = torch.randint(0, len(data), (batch_size,), generator=g)
        x = data.images[idx]
        if reconstructions is not None:
            use = (torch.rand(batch_size, 1, 1, 1, generator=g) < 0.5).float()
            x = use * reconstructions[idx] + (1 - use) * x
        loss = F.cross_entropy(model(_augment(x, g)), data.parts[idx], weight=weight)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"segmenter: non-finite loss at step {step + 1}; lower lr ({lr:g})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress and (step + 1) % 100 == 0:
            print(f"segmenter step {step + 1}/{steps}: cross-entropy {loss.item():.4f}")
    return model.eval(), losses


# ------------------------------------------------------------------------------------------ the measures
def part_iou(pred: Tensor, want: Tensor, part: str) -> Tensor:
    """IoU of one part's pixels, per face: pred and want (N, H, W) part indices → (N,), NaN where neither has it."""
    k = PARTS.index(part)
    p, w = pred == k, want == k
    inter, union = (p & w).flatten(1).sum(1).float(), (p | w).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, float("nan")))


def part_match(pred: Tensor, want: Tensor, part: str, tolerance: int = 1) -> tuple[Tensor, Tensor]:
    """Precision and recall of one part's pixels with a tolerance, per face (the boundary-F measure's idea, for
    parts 1–2 px thin): precision = share of the drawn part's pixels within ``tolerance`` px of the requested ones,
    recall = share of the requested pixels within ``tolerance`` px of drawn ones. (N,) each; NaN where undefined
    (nothing drawn, nothing requested)."""
    k = PARTS.index(part)
    p, w = pred == k, want == k
    grow = lambda m: F.max_pool2d(m[:, None].float(), 2 * tolerance + 1, 1, tolerance)[:, 0] > 0  # noqa: E731
    ratio = lambda a, b: torch.where(b > 0, a / b.clamp_min(1), torch.full_like(b, float("nan")))  # noqa: E731
    n_p, n_w = p.flatten(1).sum(1).float(), w.flatten(1).sum(1).float()
    return ratio((p & grow(w)).flatten(1).sum(1).float(), n_p), ratio((w & grow(p)).flatten(1).sum(1).float(), n_w)


def part_hits(pred: Tensor, want: Tensor, parts=LOCALISED, tolerance: int = 1,
              threshold: float = 0.5) -> dict[str, Tensor]:
    """For each part, over the faces whose requested map has it: is it drawn in its region? Yes when both the
    precision and the recall of :func:`part_match` (``tolerance`` px) reach ``threshold``: most of what is drawn of
    the part lies on the requested pixels, and most of those are drawn. part → BoolTensor (faces with the part,)."""
    out = {}
    for part in parts:
        has = (want == PARTS.index(part)).flatten(1).any(1)
        precision, recall = part_match(pred[has], want[has], part, tolerance)
        out[part] = (precision.nan_to_num(0.0) >= threshold) & (recall >= threshold)
    return out


def spurious(pred: Tensor, want: Tensor, parts=("glasses", "hat"), min_pixels: int = 20) -> dict[str, Tensor]:
    """For each part, over the faces whose map lacks it: is it drawn anyway (≥ ``min_pixels`` pixels of it)?"""
    out = {}
    for part in parts:
        k = PARTS.index(part)
        lacks = ~(want == k).flatten(1).any(1)
        out[part] = (pred[lacks] == k).flatten(1).sum(1) >= min_pixels
    return out


@torch.no_grad()
def reconstruct(ae, x: Tensor, batch_size: int = 250) -> Tensor:
    """𝒟(ℰ(x)) through the frozen first stage, (N, C, H, W) in [−1, 1]: the best a latent model can draw."""
    device = ae.scale_factor.device
    return torch.cat([ae.decode_latents(ae.encode_latents(x[i:i + batch_size].to(device))).clamp(-1, 1).cpu()
                      for i in range(0, len(x), batch_size)])


def _share(v: Tensor) -> Estimate:
    """The bootstrap mean of 0/1 outcomes; NaN when fewer than 2 faces count (a part absent from a tiny smoke set)."""
    v = v.float().numpy()
    return bootstrap_mean(v) if len(v) >= 2 else Estimate(float("nan"), float("nan"), float("nan"), "too few", len(v))


@torch.no_grad()
def measure(model, segmenter: PartSegmenter, test: SemanticFaces, steps: int = 50, guidance: float = 1.0,
            seed: int = 0, batch_size: int = 250) -> dict:
    """Semantic synthesis judged by the segmenter on ``test``'s maps (faces none of the models saw). Rows:

    * ``render``: the renders themselves (the judge's own accuracy: the ceiling);
    * ``reconstruction``: 𝒟(ℰ(render)) (what the frozen autoencoder keeps: a latent model's ceiling);
    * ``drawn``: faces drawn from the maps (``seed``); ``another map``: the same faces judged against the next
      face's map (the chance level: how much of a hit the average face gets for free).

    Each row: per part of :data:`LOCALISED`, the share of faces with the part drawn in its region (:func:`part_hits`), over
    the faces whose map has it; ``all``: the share of faces with every requested part in place; ``pixels``: the
    judge's pixel accuracy against the map; each a bootstrap 95% interval over the faces. ``spurious``: glasses or
    a hat drawn where the map has none. ``diversity``: mean |a − b| between two draws (seeds ``seed``, ``seed`` + 1)
    from the same map (0 would be one face per map). Returns {"rows": {row: {col: Estimate}}, "spurious": …,
    "diversity": Estimate, "drawn": images, "second": images}."""
    drawn = draw(model, test.parts, seed=seed, steps=steps, guidance=guidance, batch_size=batch_size)
    second = draw(model, test.parts, seed=seed + 1, steps=steps, guidance=guidance, batch_size=batch_size)
    images = {"render": test.images, "reconstruction": reconstruct(model.first_stage, test.images), "drawn": drawn}
    preds = {name: segmenter.segment(imgs) for name, imgs in images.items()}  # each set read once
    rows = {}
    for name, (pred, want) in {**{k: (v, test.parts) for k, v in preds.items()},
                               "another map": (preds["drawn"], test.parts.roll(1, 0))}.items():
        hits = part_hits(pred, want)
        every = torch.ones(len(want), dtype=torch.bool)
        for part in LOCALISED:
            has = (want == PARTS.index(part)).flatten(1).any(1)
            every[has] &= hits[part]
        rows[name] = {part: _share(h) for part, h in hits.items()}
        rows[name]["all"] = bootstrap_mean(every.float().numpy())
        rows[name]["pixels"] = bootstrap_mean((pred == want).flatten(1).float().mean(1).numpy())
    extra = {part: _share(v) for part, v in spurious(preds["drawn"], test.parts).items()}
    diversity = bootstrap_mean((drawn - second).abs().flatten(1).mean(1).numpy() / 2)  # in [0, 1] units
    return dict(rows=rows, spurious=extra, diversity=diversity, drawn=drawn, second=second)


def table(result: dict) -> str:
    """:func:`measure`'s rows as a markdown table (shares in %, 95% intervals)."""
    cols = list(LOCALISED) + ["all", "pixels"]
    lines = ["| row | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.1%}" for c in cols) + " |")
    return "\n".join(lines)
