"""CelebA (aligned faces, 40 binary attributes) from its standard layout, placed by hand or by minildm.celeba_hub.
Notebooks on conditioning · LDM §4.3.

torchvision's ``CelebA(download=True)`` fails most of the time (Google Drive quota, torchvision issues
#1920, #2262, #3708, #5705, #8204, #8283), and it also demands the md5-checked identity / bbox / landmark
files. This loader reads only what the course needs, in the standard layout::

    <root>/celeba/img_align_celeba/000001.jpg …      178 wide × 218 high aligned crops
    <root>/celeba/list_attr_celeba.txt                line 1: count, line 2: 40 names, then "000001.jpg -1  1 …"
    <root>/celeba/list_eval_partition.txt             "000001.jpg 0"  (0 train, 1 valid, 2 test)

(The Kaggle mirror's ``.csv`` lists and its nested ``img_align_celeba/img_align_celeba`` folder also work.)
Offline, :func:`minildm.toyfaces.write_toy_faces` writes a procedural stand-in in exactly this format.

**Online (Colab included)**, :func:`minildm.celeba_hub.download_celeba` fetches a Hugging Face mirror and
converts it once into this layout.

Preprocessing (as in LDM / DDPM's CelebA-64): centre crop 148×148, bicubic resize to ``size``×``size``,
scale to [-1, 1]. Attributes: CelebA's −1/1 become 0/1.
"""
from __future__ import annotations

import difflib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .config import data_root

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
SPLITS = {"train": 0, "valid": 1, "test": 2, "all": None}
ATTR_FILE, PARTITION_FILE, IMAGE_DIR = "list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba"
CACHE_VERSION = 1
SPLIT_SIZES = {"train": 162_770, "valid": 19_867, "test": 19_962}  # CelebA's official split (202,599 images)
HUB_REPO, HUB_CONFIG, HUB_MARKER = "flwrlabs/celeba", "img_align+identity+attr", "FROM_HUB.txt"
HUB_GB = 12  # the mirror's parquet files, about 12 GB to download (and as much on disk once converted)


FACE_SIZE = 64  # the course's face resolution: CelebA's aligned crops centre-cropped (148) and resized, or toy faces



def attribute_index(names, name: str) -> int:
    """The position of attribute ``name`` in ``names``; an unknown name is a ValueError suggesting the closest."""
    names = list(names)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        raise ValueError(f"{name!r} is not one of the attributes {names}" + (f"; did you mean {close}?" if close else ""))
    return names.index(name)

class CelebADataMissing(FileNotFoundError):
    """CelebA is not where the loader looks; the message says what is missing, where it goes, where to get it."""

    def __init__(self, root: Path, missing: list[Path]):
        folder = Path(root) / "celeba"
        lines = "\n".join(f"  - {p}" for p in missing)
        marker = folder / HUB_MARKER
        resume = (f"An interrupted download_celeba() left {marker}: run it again, it resumes where it stopped.\n"
                  if marker.is_file() and not _hub_done(marker) else "")
        call = "download_celeba()" if Path(root) == data_root() else f"download_celeba({str(root)!r})"
        super().__init__(
            f"CelebA data missing under {folder}:\n{lines}\n\n{resume}"
            f"Online (Colab included): `from minildm.celeba_hub import download_celeba; {call}` fetches the\n"
            f"Hugging Face mirror {HUB_REPO} (about {HUB_GB} GB; needs huggingface_hub and pyarrow, both on Colab)\n"
            f"and converts it once into the layout below. Or place the files by hand in this layout (the data root\n"
            f"is {root}; set MINILDM_DATA to change it):\n"
            f"  {folder / IMAGE_DIR}/*.jpg        (202,599 aligned 178x218 JPEGs: unzip img_align_celeba.zip)\n"
            f"  {folder / ATTR_FILE}\n"
            f"  {folder / PARTITION_FILE}\n"
            "Where to get them:\n"
            "  - the official page: https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html  (Img/img_align_celeba.zip,\n"
            "    Anno/list_attr_celeba.txt, Eval/list_eval_partition.txt)\n"
            "  - the Kaggle mirror \"jessicali9530/celeba-dataset\" (`kaggle datasets download -d\n"
            "    jessicali9530/celeba-dataset`; its list_*.csv files and nested img_align_celeba/ folder work as is)\n"
            "torchvision's automatic download is not attempted: it usually fails on Google Drive's quota.\n"
            "No CelebA at hand (offline, CI)? `minildm.toyfaces.write_toy_faces(root)` writes procedural toy faces\n"
            "in this exact format, a labelled stand-in for CelebA."
        )


def _celeba_dir(root: str | Path | None) -> tuple[Path, Path]:
    root = Path(root) if root is not None else data_root()
    return root, root / "celeba"


def _list_file(root: Path, name: str) -> Path:
    """The ``.txt`` list, or the Kaggle mirror's ``.csv`` of the same name; CelebADataMissing if neither."""
    folder = root / "celeba"
    for path in (folder / name, (folder / name).with_suffix(".csv")):
        if path.is_file():
            return path
    raise CelebADataMissing(root, [folder / name])


def _rows(path: Path) -> tuple[str | None, list[str], list[tuple[int, list[str]]]]:
    """(count line, header names, [(line number, fields)]) of a list; the Kaggle ``.csv`` has no count line."""
    lines = path.read_text(errors="replace").splitlines() + ["", ""]  # not text at all: the checks below say so
    if path.suffix == ".csv":
        count, header, body, first = None, lines[0].split(",")[1:], lines[1:], 2
    else:
        count, header, body, first = lines[0].strip(), lines[1].split(), lines[2:], 3
    rows = [(i, line.replace(",", " ").split()) for i, line in enumerate(body, first) if line.strip()]
    return count, header, rows


def read_celeba_attributes(root: str | Path | None = None) -> tuple[list[str], Tensor, tuple[str, ...]]:
    """Parse ``list_attr_celeba.txt``: (filenames, attrs (N, 40) int64 in {0, 1}, names). −1 → 0, 1 → 1."""
    root, _ = _celeba_dir(root)
    path = _list_file(root, ATTR_FILE)
    count, header, rows = _rows(path)
    if tuple(header) != CELEBA_ATTRIBUTES:
        bad = next((i for i, (a, b) in enumerate(zip(header, CELEBA_ATTRIBUTES)) if a != b), min(len(header), 40))
        got = header[bad] if bad < len(header) else "<end of line>"
        raise ValueError(f"{path}, line {1 if path.suffix == '.csv' else 2}: expected CelebA's 40 attribute names "
                         f"in the official order (minildm.celeba.CELEBA_ATTRIBUTES); name #{bad + 1} is {got!r}, "
                         f"expected {CELEBA_ATTRIBUTES[bad]!r} ({len(header)} names found)")
    if count is not None and (not count.isdigit() or int(count) != len(rows)):
        raise ValueError(f"{path}, line 1: the count {count!r} does not match the {len(rows)} image lines")
    for lineno, fields in rows:
        if len(fields) != 41 or any(v not in ("-1", "1") for v in fields[1:]):
            raise ValueError(f"{path}, line {lineno}: expected a filename and 40 values in {{-1, 1}}, "
                             f"got {' '.join(fields)[:120]!r}")
    filenames = [fields[0] for _, fields in rows]
    values = np.array([fields[1:] for _, fields in rows], dtype=np.int64).reshape(-1, 40)
    return filenames, torch.from_numpy((values + 1) // 2), CELEBA_ATTRIBUTES  # (N, 40): −1 → 0, 1 → 1


def read_celeba_partition(root: str | Path | None = None) -> dict[str, int]:
    """Parse ``list_eval_partition.txt``: filename → 0 (train), 1 (valid) or 2 (test)."""
    root, _ = _celeba_dir(root)
    path = _list_file(root, PARTITION_FILE)
    lines = path.read_text(errors="replace").splitlines()
    skip = 1 if path.suffix == ".csv" else 0  # the Kaggle csv has a header "image_id,partition"
    out = {}
    for lineno, line in enumerate(lines[skip:], skip + 1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(f"{path}, line {lineno}: expected '<file>.jpg 0|1|2', got {line[:120]!r}")
        out[fields[0]] = int(fields[1])
    return out


def center_crop_resize(img: Image.Image, size: int = 64, crop: int = 148) -> Image.Image:
    """Centre ``crop``×``crop`` (CelebA's aligned 178×218 → the face), then bicubic resize to ``size``×``size``."""
    W, H = img.size
    if W < crop or H < crop:
        raise ValueError(f"image is {W}x{H}, smaller than the {crop}x{crop} centre crop")
    left, top = (W - crop) // 2, (H - crop) // 2  # 178×218 → (15, 35)
    return img.convert("RGB").crop((left, top, left + crop, top + crop)).resize((size, size), Image.BICUBIC)


def load_image(path: str | Path, size: int = 64, crop: int = 148) -> Tensor:
    """One CelebA JPEG as uint8 (3, size, size), preprocessed by :func:`center_crop_resize`. A file that is not a
    readable image (truncated by a copy, not a JPEG) or is too small is a ValueError naming it."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(center_crop_resize(img, size, crop))  # (H, W, 3)
    except (OSError, SyntaxError, ValueError) as e:  # PIL: UnidentifiedImageError (an OSError), truncated data …
        raise ValueError(f"{path} is not a usable face image ({type(e).__name__}: {e}); copy it again from "
                         "img_align_celeba.zip (CelebA's aligned 178x218 JPEGs)") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (3, H, W)


class CelebA(Dataset):
    """CelebA at ``size``×``size``: items are (image (3, size, size) float in [-1, 1], attrs (40,) int64 in {0, 1}).

    ``cache=True`` decodes the whole split once into uint8 and saves it (atomically) as
    ``<root>/celeba/cache_{split}_{size}_{crop}.pt``; later runs load that file in a second, and rebuild it
    if the file list or the attribute file changed. ``.images`` (N, 3, size, size) uint8, ``.attrs`` (N, 40)
    and ``.names`` are there for fast in-memory training (index them directly, skip the DataLoader).
    """

    def __init__(self, root: str | Path | None = None, split: str = "train", size: int = 64, crop: int = 148,
                 cache: bool = True):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.root, self.folder = _celeba_dir(root)
        self.split, self.size, self.crop = split, size, crop
        self.image_dir = self.folder / IMAGE_DIR
        if (self.image_dir / IMAGE_DIR).is_dir():  # the Kaggle zip nests img_align_celeba/img_align_celeba/
            self.image_dir = self.image_dir / IMAGE_DIR
        missing = [p for p in (self.image_dir,) if not p.is_dir()]
        missing += [self.folder / f for f in (ATTR_FILE, PARTITION_FILE)
                    if not (self.folder / f).is_file() and not (self.folder / f).with_suffix(".csv").is_file()]
        if missing:
            raise CelebADataMissing(self.root, missing)
        filenames, attrs, self.names = read_celeba_attributes(self.root)
        if split != "all":
            part = read_celeba_partition(self.root)
            keep = [i for i, f in enumerate(filenames) if part.get(f) == SPLITS[split]]
            filenames, attrs = [filenames[i] for i in keep], attrs[keep]
        self.filenames, self.attrs = filenames, attrs  # attrs: (N, 40)
        for f in filenames[:1] + filenames[-1:]:  # fail fast on a half-copied folder
            if not (self.image_dir / f).is_file():
                raise CelebADataMissing(self.root, [self.image_dir / f])
        self.cache_path = self.folder / f"cache_{split}_{size}_{crop}.pt"
        self._images: Tensor | None = self._load_or_build_cache() if cache else None

    def __len__(self) -> int:
        return len(self.filenames)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x = self._images[i] if self._images is not None else load_image(self.image_dir / self.filenames[i],
                                                                          self.size, self.crop)
        return x.float() / 127.5 - 1, self.attrs[i]  # uint8 [0, 255] → float [-1, 1]

    @property
    def images(self) -> Tensor:
        """All images of the split as uint8 (N, 3, size, size), decoded on first use if ``cache=False``."""
        if self._images is None:
            self._images = self._decode_all()
        return self._images

    def attr_index(self, name: str) -> int:
        """Column of attribute ``name`` in ``attrs``, e.g. ``attr_index("Smiling") == 31``."""
        return attribute_index(self.names, name)

    def _decode_all(self) -> Tensor:
        paths = [self.image_dir / f for f in self.filenames]
        out = torch.empty(len(paths), 3, self.size, self.size, dtype=torch.uint8)  # (N, 3, size, size)
        # PIL releases the GIL while decoding and resizing, so threads give a real speed-up.
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for i, x in enumerate(pool.map(lambda p: load_image(p, self.size, self.crop), paths, chunksize=64)):
                out[i] = x
        return out

    def _fingerprint(self) -> str:
        """Hash of the attribute file: changes if the data set was replaced (e.g. toy faces with another seed)."""
        return hashlib.sha1(_list_file(self.root, ATTR_FILE).read_bytes()).hexdigest()

    def _load_or_build_cache(self) -> Tensor:
        fingerprint = self._fingerprint()
        if self.cache_path.is_file():
            try:
                blob = torch.load(self.cache_path, weights_only=True)
                if (blob.get("version") == CACHE_VERSION and blob.get("filenames") == self.filenames
                        and blob.get("fingerprint") == fingerprint):
                    return blob["images"]
            except Exception:  # a damaged or foreign file: rebuild it below
                pass
        images = self._decode_all()
        blob = {"version": CACHE_VERSION, "images": images, "filenames": self.filenames,
                "fingerprint": fingerprint, "size": self.size, "crop": self.crop}
        tmp = self.cache_path.with_name(f"{self.cache_path.name}.tmp{os.getpid()}")
        torch.save(blob, tmp)
        os.replace(tmp, self.cache_path)  # atomic: a reader never sees half a file
        return images


def _hub_done(marker: Path) -> bool:
    lines = marker.read_text().splitlines()
    return bool(lines) and lines[-1].startswith("done:")
