"""Toy faces: a procedural, offline **stand-in for CelebA** in CelebA's exact on-disk format.  docs/DESIGN.md "Data routes".

No CelebA exists offline (or in CI), so :func:`write_toy_faces` draws simple faces and writes them as
``<root>/celeba/img_align_celeba/000001.jpg …`` (178 wide × 218 high), ``list_attr_celeba.txt`` and
``list_eval_partition.txt``, exactly as CelebA ships them; :class:`minildm.celeba.CelebA` reads both alike.
A marker file ``TOY_FACES.txt`` says that these are **not** CelebA; show that label wherever they are shown.

Because we draw the faces, we know what each attribute looks like and *where* it is:

* :data:`RENDERED_ATTRIBUTES` change the picture (Smiling, Eyeglasses, Wearing_Hat, hair colour, …);
  the other 40 − 16 CelebA columns are random bits unrelated to the picture (so a model cannot learn them).
* The face geometry is fixed, so :func:`attribute_regions` gives, for each localised attribute, the pixels
  (in the 64×64 loader output) where it is drawn: the ground truth for "does the cross-attention of the
  token *Eyeglasses* look at the glasses?".

All geometry below is in the coordinates of the 148×148 centre crop that the loader keeps.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Mapping, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from minildm.celeba import ATTR_FILE, CELEBA_ATTRIBUTES, IMAGE_DIR, PARTITION_FILE
from minildm.config import data_root

RENDERED_ATTRIBUTES: tuple[str, ...] = (
    "Smiling", "Eyeglasses", "Wearing_Hat", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Bald",
    "Male", "Pale_Skin", "Bangs", "Mouth_Slightly_Open", "Wearing_Lipstick", "Young", "No_Beard", "Rosy_Cheeks",
)
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")  # at most one; none of them → red hair
W, H, CROP = 178, 218, 148  # CelebA's aligned image size, and the centre crop the loader keeps
OFFSET = ((W - CROP) // 2, (H - CROP) // 2)  # where the crop's (0, 0) lies in the full image: (15, 35)
MARKER = "TOY_FACES.txt"
VERSION = 1

# Fixed geometry, as boxes (x0, y0, x1, y1) in the 148×148 crop.
FACE = (32, 28, 116, 132)
HAIR_SHORT = (28, 14, 120, 84)
HAIR_LONG = [(22, 12, 126, 100), (22, 56, 126, 146)]  # an ellipse on top of a rectangle, down to the shoulders
EYES = [(56, 68), (92, 68)]
LENSES = [(41, 58, 71, 80), (77, 58, 107, 80)]
CHEEKS = [(36, 84, 56, 98), (92, 84, 112, 98)]
BANGS = [(34, 44), (38, 30), (50, 22), (74, 18), (98, 22), (110, 30), (114, 44), (106, 51), (98, 42), (90, 51),
         (82, 42), (74, 51), (66, 42), (58, 51), (50, 42), (42, 51)]
WRINKLES = [[(52, 38), (96, 38)], [(56, 44), (92, 44)],                      # forehead
            [(35, 63), (41, 66)], [(35, 71), (41, 69)], [(113, 63), (107, 66)], [(113, 71), (107, 69)],  # crow's feet
            [(62, 90), (56, 106)], [(86, 90), (92, 106)]]                    # nose-to-mouth folds
HAT_CROWN, HAT_BRIM = (38, 0, 110, 34), (16, 22, 132, 40)

Attrs = Union[Mapping[str, int], Tensor]


def _attr_dict(attrs: Attrs) -> dict[str, int]:
    """Dict name → 0/1 from a dict or a (40,) tensor; missing names take CelebA's commonest value."""
    if isinstance(attrs, Tensor):
        if attrs.shape != (40,):
            raise ValueError(f"attrs tensor must have shape (40,) in CelebA's order, got {tuple(attrs.shape)}")
        return {n: int(v) for n, v in zip(CELEBA_ATTRIBUTES, attrs.tolist())}
    unknown = set(attrs) - set(CELEBA_ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown attribute(s) {sorted(unknown)}; see minildm.celeba.CELEBA_ATTRIBUTES")
    out = {n: 0 for n in CELEBA_ATTRIBUTES} | {"No_Beard": 1, "Young": 1}
    return out | {n: int(v) for n, v in attrs.items()}


def sample_attributes(rng: np.random.Generator) -> Tensor:
    """Draw one face's 40 attributes, (40,) int64 in {0, 1}, respecting the rules the renderer needs.

    Rules: at most one hair colour; Bald only for men without a hat (a hat hides baldness, so Wearing_Hat
    wins); Bald → no hair colour, no bangs; beards (No_Beard = 0) only on men. Unrendered attributes: p = 0.3.
    """
    a = {n: int(rng.random() < 0.3) for n in CELEBA_ATTRIBUTES}  # the unrendered ones keep these random bits
    a["Male"] = int(rng.random() < 0.5)
    a["Wearing_Hat"] = int(rng.random() < 0.3)
    a["Bald"] = int(a["Male"] and not a["Wearing_Hat"] and rng.random() < 0.3)
    hair = rng.choice(5, p=[0.3, 0.2, 0.25, 0.1, 0.15])  # black, blond, brown, gray, none (red)
    for k, name in enumerate(HAIR_COLOURS):
        a[name] = int(hair == k and not a["Bald"])
    a["Bangs"] = int(not a["Bald"] and rng.random() < 0.35)
    a["No_Beard"] = int(not (a["Male"] and rng.random() < 0.5))
    a["Wearing_Lipstick"] = int(rng.random() < (0.05 if a["Male"] else 0.6))
    for name, p in [("Smiling", 0.5), ("Mouth_Slightly_Open", 0.45), ("Eyeglasses", 0.3), ("Pale_Skin", 0.3),
                    ("Young", 0.6), ("Rosy_Cheeks", 0.3)]:
        a[name] = int(rng.random() < p)
    return torch.tensor([a[n] for n in CELEBA_ATTRIBUTES], dtype=torch.int64)


# ----------------------------------------------------------------------------------------------------------------
# One drawing function per feature, used twice: on the RGB face with colours, and on a mask with fill=255.

def _hair(d: ImageDraw.ImageDraw, c, long: bool) -> None:
    if long:
        d.ellipse(HAIR_LONG[0], fill=c)
        d.rectangle(HAIR_LONG[1], fill=c)
    d.ellipse(HAIR_SHORT, fill=c)


def _bangs(d: ImageDraw.ImageDraw, c) -> None:
    d.polygon(BANGS, fill=c)


def _cheeks(d: ImageDraw.ImageDraw, c) -> None:
    for box in CHEEKS:
        d.ellipse(box, fill=c)


def _beard(d: ImageDraw.ImageDraw, c) -> None:
    d.chord(FACE, 22, 158, fill=c)  # the bottom of the face, below y ≈ 100


def _wrinkles(d: ImageDraw.ImageDraw, c) -> None:
    for line in WRINKLES:
        d.line(line, fill=c, width=2)


def _mouth(d: ImageDraw.ImageDraw, lips, inside, teeth, smiling: bool, open_: bool) -> None:
    if open_ and smiling:  # open smile: a "D" lying on its back, teeth on top
        d.chord((58, 96, 90, 122), 0, 180, fill=inside, outline=lips, width=3)
        d.rectangle((64, 110, 84, 112), fill=teeth)
    elif open_:  # an open "o"
        d.ellipse((64, 103, 84, 119), fill=inside, outline=lips, width=3)
    elif smiling:  # corners up: the bottom arc of an ellipse
        d.arc((58, 94, 90, 116), 15, 165, fill=lips, width=5)
    else:  # flat, closed
        d.line((60, 109, 88, 109), fill=lips, width=5)


def _glasses(d: ImageDraw.ImageDraw, c) -> None:
    for box in LENSES:
        d.rounded_rectangle(box, radius=6, outline=c, width=3)
    d.line((71, 67, 77, 67), fill=c, width=3)  # bridge
    d.line((41, 66, 33, 63), fill=c, width=3)  # temples, to the edge of the face
    d.line((107, 66, 115, 63), fill=c, width=3)


def _hat(d: ImageDraw.ImageDraw, c, band) -> None:
    d.rounded_rectangle(HAT_CROWN, radius=10, fill=c)
    d.rectangle((HAT_CROWN[0], 20, HAT_CROWN[2], 27), fill=band)
    d.ellipse(HAT_BRIM, fill=c)


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(round((1 - t) * x + t * y)) for x, y in zip(a, b))


PARTS: tuple[str, ...] = ("background", "clothes", "skin", "hair", "eyes", "mouth", "glasses", "hat")
MOVABLE = ("mouth", "glasses")  # the parts that ``offsets`` may move (the semantic maps of notebook 08)


def render_face(attrs: Attrs, seed: int | np.random.Generator = 0, offsets: Mapping[str, tuple[int, int]] | None = None,
                parts: bool = False):
    """Draw one toy face as a CelebA-sized RGB image (178 wide × 218 high), the face filling the centre 148×148.

    ``attrs``: dict name → 0/1 (missing names: 0, except No_Beard and Young: 1) or a (40,) tensor.
    ``seed`` (or a numpy Generator) chooses the colours only; it draws the same random numbers whatever the
    attributes, so the same seed with one attribute flipped changes only that attribute's region.
    ``offsets``: {part: (dx, dy)} moves a part of :data:`MOVABLE` by that many pixels of the 148×148 crop (none: the
    fixed geometry of notebook 06's data, pixel for pixel). ``parts=True`` returns ``(image, part_map)``: the map a
    148×148 "L" image whose pixels are indices into :data:`PARTS`, painted by the very strokes that paint the face
    (cheeks, wrinkles and nose count as skin, beard and bangs as hair, eyebrows as eyes).
    """
    a = _attr_dict(attrs)
    offsets = dict(offsets or {})
    if set(offsets) - set(MOVABLE):
        raise ValueError(f"offsets can move {MOVABLE} only, got {sorted(set(offsets) - set(MOVABLE))}")
    rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed
    u = rng.random(12)  # every random number, drawn up front in a fixed order
    background = tuple(int(v) for v in rng.integers(30, 230, 3))
    clothes = tuple(int(v) for v in rng.integers(20, 235, 3))
    hat, band = tuple(int(v) for v in rng.integers(20, 200, 3)), tuple(int(v) for v in rng.integers(0, 255, 3))
    iris = tuple(int(v) for v in rng.integers(30, 150, 3))
    # Skin: pale is clearly lighter than the range of the others.
    skin = _mix((250, 228, 214), (238, 212, 196), u[0]) if a["Pale_Skin"] else _mix((214, 160, 122), (110, 72, 48), u[1])
    hair_base = {"Black_Hair": (25, 22, 22), "Blond_Hair": (236, 206, 120), "Brown_Hair": (112, 70, 38),
                 "Gray_Hair": (170, 170, 172)}
    hair = next((hair_base[n] for n in HAIR_COLOURS if a[n]), (180, 62, 30))  # no hair colour named → red
    hair = _mix(hair, (0, 0, 0) if u[2] < 0.5 else (255, 255, 255), 0.12 * u[3])
    lips = _mix((200, 20, 50), (150, 10, 40), u[4]) if a["Wearing_Lipstick"] else _mix(skin, (120, 40, 40), 0.45)
    cheek = _mix(skin, (235, 70, 100), 0.55)
    line = _mix(skin, (40, 20, 10), 0.4)
    frame = (20, 20, 25) if u[5] < 0.7 else (150, 110, 40)

    def eyes(d, c):
        for x, y in EYES:
            d.ellipse((x - 8, y - 4, x + 8, y + 4), fill=c((245, 245, 240)))
            d.ellipse((x - 4, y - 4, x + 4, y + 4), fill=c(iris))
            d.ellipse((x - 2, y - 2, x + 2, y + 2), fill=c((10, 10, 10)))
            d.line((x - 10, y - 13, x + 10, y - 14), fill=c(_mix(line, (0, 0, 0), 0.4)), width=3)  # eyebrow

    # The face, stroke by stroke in paint order: (part, draw(d, c)), c mapping a colour to what is painted.
    strokes = [("clothes", lambda d, c: d.ellipse((8, 128, 140, 230), fill=c(clothes)))]  # shoulders
    if not a["Bald"]:
        strokes.append(("hair", lambda d, c: _hair(d, c(hair), long=not a["Male"])))
    strokes += [("skin", lambda d, c: d.rectangle((60, 110, 88, 140), fill=c(_mix(skin, (0, 0, 0), 0.1)))),  # neck
                ("skin", lambda d, c: d.ellipse(FACE, fill=c(skin)))]
    if a["Rosy_Cheeks"]:
        strokes.append(("skin", lambda d, c: _cheeks(d, c(cheek))))
    if not a["No_Beard"]:
        strokes.append(("hair", lambda d, c: _beard(d, c(hair if not a["Bald"] else (60, 45, 35)))))
    if not a["Young"]:
        strokes.append(("skin", lambda d, c: _wrinkles(d, c(line))))
    strokes += [("skin", lambda d, c: d.line([(74, 72), (70, 90), (77, 92)], fill=c(line), width=2)),  # nose
                ("eyes", eyes),
                ("mouth", lambda d, c: _mouth(d, c(lips), c((70, 15, 25)), c((250, 250, 245)), bool(a["Smiling"]),
                                              bool(a["Mouth_Slightly_Open"])))]
    if a["Bangs"] and not a["Bald"]:
        strokes.append(("hair", lambda d, c: _bangs(d, c(hair))))
    if a["Eyeglasses"]:
        strokes.append(("glasses", lambda d, c: _glasses(d, c(frame))))
    if a["Wearing_Hat"]:
        strokes.append(("hat", lambda d, c: _hat(d, c(hat), c(band))))

    face = Image.new("RGB", (CROP, CROP), background)
    part_map = Image.new("L", (CROP, CROP), 0) if parts else None
    for part, draw in strokes:
        _paint(face, draw, lambda colour: colour, offsets.get(part))
        if parts:
            label = PARTS.index(part)
            _paint(part_map, draw, lambda colour: label, offsets.get(part))

    img = Image.new("RGB", (W, H), background)
    img.paste(face, OFFSET)
    return (img, part_map) if parts else img


def _paint(img: Image.Image, draw, c, offset) -> None:
    """Run one stroke on ``img``; with an offset (dx, dy), on a blank layer pasted that far away (clipped)."""
    if not offset or tuple(offset) == (0, 0):
        draw(ImageDraw.Draw(img), c)
        return
    layer, mask = Image.new(img.mode, img.size, 0), Image.new("L", img.size, 0)
    draw(ImageDraw.Draw(layer), c)
    draw(ImageDraw.Draw(mask), lambda colour: 255)
    img.paste(layer, (int(offset[0]), int(offset[1])), mask)


def attribute_regions(size: int = 64) -> dict[str, Tensor]:
    """Where each localised attribute is drawn: name → BoolTensor (size, size) in the loader's output pixels.

    Each mask is the union of every way the attribute can be drawn (e.g. all four mouths), mapped through the
    loader's crop + resize and grown by one pixel, since bicubic resizing spreads an edge by about a pixel.
    """
    def mask(draw_fn) -> Tensor:
        m = Image.new("L", (CROP, CROP), 0)
        draw_fn(ImageDraw.Draw(m))
        small = torch.from_numpy(np.asarray(m.resize((size, size), Image.BOX)) > 0).float()[None, None]
        return F.max_pool2d(small, 3, stride=1, padding=1)[0, 0].bool()  # (size, size), dilated by 1 px

    mouth = mask(lambda d: [_mouth(d, 255, 255, 255, s, o) for s in (0, 1) for o in (0, 1)])
    hair = mask(lambda d: (_hair(d, 255, long=True), _bangs(d, 255), _beard(d, 255)))
    regions = {
        "Eyeglasses": mask(lambda d: _glasses(d, 255)),
        "Smiling": mouth, "Mouth_Slightly_Open": mouth, "Wearing_Lipstick": mouth,
        "Wearing_Hat": mask(lambda d: _hat(d, 255, 255)),
        "Bangs": mask(lambda d: _bangs(d, 255)),
        "Rosy_Cheeks": mask(lambda d: _cheeks(d, 255)),
        "No_Beard": mask(lambda d: _beard(d, 255)),
        "Young": mask(lambda d: _wrinkles(d, 255)),
        "Male": mask(lambda d: _hair(d, 255, long=True)),
        "Bald": mask(lambda d: (_hair(d, 255, long=True), _bangs(d, 255))),
    }
    return regions | {name: hair for name in HAIR_COLOURS}


def write_toy_faces(root: str | Path | None = None, n: int = 20000, seed: int = 0, overwrite: bool = False) -> Path:
    """Write ``n`` toy faces in CelebA's layout under ``<root>/celeba`` and return that folder.

    Deterministic: image i depends only on (seed, i). Split 80/10/10 in order (train, valid, test). Skips the
    work if the same (n, seed) is already there. Refuses to write over a real CelebA (no marker file).
    """
    folder = (Path(root) if root is not None else data_root()) / "celeba"
    # one writer at a time (two notebooks, or two test workers, asking for the same faces): the second waits, then
    # finds them written and returns
    with _exclusive(folder.parent / ".celeba.lock"):
        return _write_toy_faces(folder, n, seed, overwrite)


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Hold an exclusive lock on ``lock_path`` (POSIX ``flock``; where there is none, as on Windows, no lock)."""
    try:
        import fcntl
    except ImportError:  # Windows: one process at a time is the user's to keep
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # blocks until the other writer is done
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_toy_faces(folder: Path, n: int, seed: int, overwrite: bool) -> Path:
    marker, images = folder / MARKER, folder / IMAGE_DIR
    stamp = f"version={VERSION}\nn={n}\nseed={seed}\n"
    if marker.is_file() and marker.read_text().endswith(stamp) and not overwrite \
            and (images / f"{n:06d}.jpg").is_file() and (folder / PARTITION_FILE).is_file():
        return folder
    if (folder / ATTR_FILE).exists() and not marker.is_file() and not overwrite:
        raise FileExistsError(f"{folder} holds a data set that is not toy faces (no {MARKER}), perhaps a real CelebA; "
                              "refusing to overwrite it. Write the toy faces elsewhere (another root, or another "
                              "MINILDM_DATA), or remove that folder (overwrite=True from Python).")
    images.mkdir(parents=True, exist_ok=True)
    # the marker first, without the stamp: the folder is known as toy faces from here on, and an interrupted write
    # (no stamp at the end) is redone next time instead of being taken for a real CelebA
    marker.write_text("TOY FACES being written by minildm.toyfaces (incomplete until the stamp below).\n")
    for stale in list(folder.glob("cache_*.pt")) + [p for p in images.glob("*.jpg") if int(p.stem) > n]:
        stale.unlink()
    attr_lines = [f"{n}", " ".join(CELEBA_ATTRIBUTES) + " "]
    n_train, n_valid = round(0.8 * n), round(0.1 * n)
    part_lines = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        attrs = sample_attributes(rng)
        name = f"{i + 1:06d}.jpg"
        render_face(attrs, rng).save(images / name, quality=95, subsampling=0)
        attr_lines.append(name + " " + " ".join(f"{2 * v - 1:2d}" for v in attrs.tolist()))  # 0/1 → -1/1
        part_lines.append(f"{name} {0 if i < n_train else 1 if i < n_train + n_valid else 2}")
    for fname, lines in [(ATTR_FILE, attr_lines), (PARTITION_FILE, part_lines)]:
        tmp = folder / f"{fname}.tmp{os.getpid()}"
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, folder / fname)
    marker.write_text("TOY FACES: procedural stand-ins drawn by minildm.toyfaces, NOT CelebA.\n"
                      "Same file layout and attribute names as CelebA; only minildm.toyfaces.RENDERED_ATTRIBUTES\n"
                      "are drawn, the other columns are random bits.\n" + stamp)
    return folder
