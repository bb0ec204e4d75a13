"""CelebA from a Hugging Face mirror, converted once into the layout :mod:`minildm.celeba` reads.  Notebook 06.

:func:`download_celeba` fetches the ungated Hugging Face mirror ``flwrlabs/celeba`` with
``huggingface_hub`` and converts it once into this layout (``pyarrow`` reads its parquet; both are optional
dependencies, both preinstalled on Colab). The mirror's format, as read from its dataset card and file listing on
huggingface.co (revision 2d738f5) and from two public programs that read it:

* one config, ``img_align+identity+attr``: ``img_align+identity+attr/train-000NN-of-00019.parquet`` (19 files of
  ~0.5 GB), ``valid-0000N-of-00003.parquet`` and ``test-0000N-of-00003.parquet`` (3 each, ~0.4 GB apiece), about
  12 GB in all; 163k / 19.9k / 20k rows, i.e. CelebA's official train / valid / test split;
* columns ``image`` (the ``datasets`` Image feature, stored as a struct ``{bytes: binary, path: string}``; the bytes
  are the 178×218 aligned crops as lossless **PNG**: ~58 KB a row, where the original JPEGs are ~7 KB),
  ``celeb_id`` (int64), then the 40 attributes under their CelebA names, as **bool**.

The conversion writes the PNG bytes as they are (no re-encoding: the pixels are the mirror's) as
``img_align_celeba/000001.png …`` (JPEG bytes would be kept as ``.jpg`` alike), numbered in the mirror's order
(train, valid, test; shards in order), and writes the two lists (True/False → 1/−1): the loader reads file names
from the lists, so ``.png`` and ``.jpg`` load alike. ``FROM_HUB.txt`` records the source; the conversion goes shard
by shard, deletes each downloaded shard once converted (so the peak disk use is the data set plus one shard), and
resumes after an interruption.
"""
from __future__ import annotations

import importlib
import os
import re
import shutil
from pathlib import Path

from tqdm.auto import tqdm

from .celeba import (ATTR_FILE, CELEBA_ATTRIBUTES, HUB_CONFIG, HUB_GB, HUB_MARKER, HUB_REPO, IMAGE_DIR, PARTITION_FILE,
                     SPLIT_SIZES, SPLITS, _celeba_dir, _hub_done)

_SHARD = re.compile(rf"^{re.escape(HUB_CONFIG)}/(train|valid|test)-(\d{{5}})-of-(\d{{5}})\.parquet$")


def _optional(module: str, what: str):
    """Import an optional dependency of :func:`download_celeba`, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise ImportError(f"download_celeba needs {package} ({what}): pip install {package}") from None




def _write_atomic(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)  # a reader never sees half a list


def _image_suffix(data, where: str) -> str:
    if isinstance(data, (bytes, bytearray)) and data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if isinstance(data, (bytes, bytearray)) and data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    got = bytes(data[:8]) if isinstance(data, (bytes, bytearray)) else data
    raise ValueError(f"{where}: the image is not embedded PNG or JPEG bytes (got {got!r}); is this a CelebA mirror?")


def _convert_shard(pq, path: Path, name: str, code: int, first: int, image_dir: Path, bar) -> list[str]:
    """Write one parquet shard's images as ``{first:06d}.png …``; its rows as '<file> <split code> <40 × ±1>'."""
    parquet = pq.ParquetFile(path)
    columns = parquet.schema_arrow.names
    missing = [c for c in ("image",) + CELEBA_ATTRIBUTES if c not in columns]
    if missing:
        raise ValueError(f"{name}: not the CelebA mirror's format, it has no column(s) {missing}; its columns are "
                         f"{columns}")
    rows = []
    for batch in parquet.iter_batches(batch_size=256, columns=["image", *CELEBA_ATTRIBUTES]):
        images = batch.column("image").to_pylist()  # [{"bytes": b"\x89PNG…", "path": …}, …]
        attrs = [batch.column(a).to_pylist() for a in CELEBA_ATTRIBUTES]  # 40 columns of bool
        for i, cell in enumerate(images):
            where = f"{name}, row {len(rows)}"
            data = cell.get("bytes") if isinstance(cell, dict) else cell
            fname = f"{first + len(rows):06d}{_image_suffix(data, where)}"
            values = [column[i] for column in attrs]
            if any(v is None for v in values):
                raise ValueError(f"{where}: attribute {CELEBA_ATTRIBUTES[values.index(None)]} is missing")
            (image_dir / fname).write_bytes(data)  # as they are: the mirror's pixels, not re-encoded
            rows.append(f"{fname} {code} " + " ".join(f"{1 if v > 0 else -1:2d}" for v in values))  # True → 1
            bar.update(1)
    return rows


def download_celeba(root: str | Path | None = None, repo_id: str = HUB_REPO, *, revision: str | None = None,
                    source_dir: str | Path | None = None, keep_download: bool = False, progress: bool = True) -> Path:
    """Fetch CelebA from the Hugging Face mirror ``repo_id`` and convert it once into ``<root>/celeba`` (the layout
    :class:`CelebA` reads); return that folder. About 12 GB to download and as much on disk; needs
    ``huggingface_hub`` and ``pyarrow`` (both on Colab). ``root`` defaults to the data root (``MINILDM_DATA``).

    Done already (or a CelebA placed by hand there): a no-op. Interrupted: the next call resumes, redoing the shard
    it stopped in. ``source_dir``: a folder that already holds the mirror's files (``img_align+identity+attr/
    *.parquet``, e.g. a copy on Google Drive); nothing is downloaded and ``huggingface_hub`` is not needed.
    ``keep_download``: keep the downloaded parquet files (``<root>/celeba/.hub_download``) instead of deleting each
    one once converted. A folder of toy faces is never overwritten.
    """
    root, folder = _celeba_dir(root)
    marker, image_dir = folder / HUB_MARKER, folder / IMAGE_DIR
    if marker.is_file() and _hub_done(marker):
        if progress:
            print(f"CelebA already in {folder} ({marker.read_text().splitlines()[-1]})")
        return folder
    if (folder / "TOY_FACES.txt").is_file():
        raise FileExistsError(f"{folder} holds toy faces (TOY_FACES.txt); refusing to write CelebA over them. Remove "
                              f"that folder, or give download_celeba another root")
    if not marker.is_file() and image_dir.is_dir() and all((folder / f).is_file() for f in (ATTR_FILE, PARTITION_FILE)):
        if progress:
            print(f"CelebA already in {folder} (placed by hand): nothing to download")
        return folder
    pq = _optional("pyarrow.parquet", "to read the mirror's parquet files")
    if source_dir is not None:
        source = Path(source_dir)
        names = sorted(p.relative_to(source).as_posix() for p in source.glob(f"{HUB_CONFIG}/*.parquet"))
    else:
        hub = _optional("huggingface_hub", "to download the Hugging Face mirror")
        try:
            names = hub.list_repo_files(repo_id, repo_type="dataset", revision=revision)
        except Exception as e:  # offline, a wrong repo id …: one clear line
            raise OSError(f"could not list the files of the dataset {repo_id} on the Hugging Face hub "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); download_celeba needs "
                          "the network, or source_dir= a local copy of the mirror") from None
    order = {s: i for i, s in enumerate(SPLIT_SIZES)}  # train, valid, test; each split's shards in order
    shards = sorted(((m.group(1), n) for n in names if (m := _SHARD.match(n))), key=lambda sn: (order[sn[0]], sn[1]))
    absent = [s for s in SPLIT_SIZES if s not in {split for split, _ in shards}]
    if absent:
        raise ValueError(f"{source_dir or repo_id} has no {HUB_CONFIG}/{absent[0]}-NNNNN-of-NNNNN.parquet (the "
                         f"mirror's format; see minildm.celeba); its files: {sorted(names)[:8]}")

    partial, download = folder / ".hub_partial", folder / ".hub_download"
    plan = [f"repo={source_dir or repo_id}", f"revision={revision}", *(n for _, n in shards)]
    if not (partial / "plan.txt").is_file() or (partial / "plan.txt").read_text().splitlines() != plan:
        shutil.rmtree(partial, ignore_errors=True)  # another source than the interrupted run's: start over
    partial.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(partial / "plan.txt", plan)
    origin = (f"a local copy of the mirror, {source_dir}" if source_dir is not None
              else f"the Hugging Face dataset {repo_id} (revision {revision or 'main'})")
    marker.write_text(f"CelebA from {origin}, being converted by minildm.celeba_hub.download_celeba: incomplete until the "
                      "last line says done.\n")
    for stale in [folder / ATTR_FILE, folder / PARTITION_FILE, *folder.glob("cache_*.pt")]:
        stale.unlink(missing_ok=True)  # the loader never sees old lists beside new images
    if progress:
        print(f"CelebA: {len(shards)} parquet files of {source_dir or repo_id} (about {HUB_GB} GB) → {folder}")
    rows: list[str] = []
    with tqdm(total=sum(SPLIT_SIZES.values()), unit="img", desc="CelebA", disable=not progress) as bar:
        for split, name in shards:
            done = partial / (Path(name).stem + ".rows")
            if done.is_file():  # converted before an interruption
                lines = done.read_text().splitlines()
                bar.update(len(lines))
            else:
                if source_dir is not None:
                    path = Path(source_dir) / name
                else:
                    path = Path(hub.hf_hub_download(repo_id, name, repo_type="dataset", revision=revision,
                                                    local_dir=download))
                lines = _convert_shard(pq, path, name, SPLITS[split], len(rows) + 1, image_dir, bar)
                _write_atomic(done, lines)
                if source_dir is None and not keep_download:
                    for p in {path, path.resolve()}:  # resolve(): the cache's blob, should the hub have linked it
                        p.unlink(missing_ok=True)
            rows += lines
        bar.total = len(rows)
        bar.refresh()
    if not rows:
        raise ValueError(f"{source_dir or repo_id}: its parquet files hold no images")
    fields = [r.split(" ", 2) for r in rows]  # file, split code, the 40 values
    _write_atomic(folder / PARTITION_FILE, [f"{f} {c}" for f, c, _ in fields])
    header = [str(len(rows)), " ".join(CELEBA_ATTRIBUTES) + " "]  # the count, the 40 names: CelebA's own lines 1-2
    _write_atomic(folder / ATTR_FILE, header + [f"{f} {v}" for f, _, v in fields])
    counts = {s: sum(c == str(SPLITS[s]) for _, c, _ in fields) for s in SPLIT_SIZES}
    with marker.open("a") as f:
        f.write("done: " + " ".join(f"{s}={n}" for s, n in counts.items()) + "\n")
    shutil.rmtree(partial, ignore_errors=True)
    if not keep_download:
        shutil.rmtree(download, ignore_errors=True)
    if progress:
        note = "" if counts == SPLIT_SIZES else f" (CelebA's official split is {SPLIT_SIZES})"
        print(f"CelebA ready in {folder}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + note)
    return folder
