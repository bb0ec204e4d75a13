"""download_celeba: the Hugging Face mirror (flwrlabs/celeba) converted once into CelebA's layout, offline.

The test writes a tiny mirror in the real one's exact format (minildm/celeba_hub.py's docstring says where that was read):
``img_align+identity+attr/{split}-NNNNN-of-NNNNN.parquet``, columns ``image`` (struct {bytes: binary, path: string},
PNG bytes of 178x218 faces), ``celeb_id`` (int64) and the 40 attributes (bool), with the ``huggingface`` schema
metadata that ``datasets`` writes. A fake ``huggingface_hub`` module serves it, so the hub code path runs as online,
without a network.
"""
from __future__ import annotations

import inspect
import io
import json
import shutil
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from minildm.celeba import (
    ATTR_FILE, CELEBA_ATTRIBUTES, HUB_CONFIG, HUB_MARKER, HUB_REPO, IMAGE_DIR, PARTITION_FILE, CelebA,
    CelebADataMissing, load_image,
)
from minildm.celeba_hub import download_celeba
from minildm.toyfaces import render_face, sample_attributes

pa = pytest.importorskip("pyarrow", reason="the mirror is parquet: pip install -e '.[dev]' brings pyarrow")
import pyarrow.parquet as pq  # noqa: E402

# 6 faces: train in two shards (3 + 1), valid 1, test 1; plus the files the real repo has beside the shards
SHARDS = {"train-00000-of-00002.parquet": 3, "train-00001-of-00002.parquet": 1,
          "valid-00000-of-00001.parquet": 1, "test-00000-of-00001.parquet": 1}
OTHER_FILES = [".gitattributes", "LICENSE", "README.md"]
FEATURES = {"image": {"_type": "Image"}, "celeb_id": {"dtype": "int64", "_type": "Value"},
            **{a: {"dtype": "bool", "_type": "Value"} for a in CELEBA_ATTRIBUTES}}


def png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A local folder laid out as the mirror's repository: (folder, {split: [(png bytes, attrs (40,) 0/1)]})."""
    folder = tmp_path_factory.mktemp("mirror")
    (folder / HUB_CONFIG).mkdir()
    for name in OTHER_FILES:
        (folder / name).write_text("not data\n")
    faces: dict[str, list] = {"train": [], "valid": [], "test": []}
    k = 0
    for shard, n in SHARDS.items():
        rows = []
        for _ in range(n):
            rng = np.random.default_rng([7, k])
            attrs = sample_attributes(rng)
            rows.append((png(render_face(attrs, rng)), attrs))
            k += 1
        faces[shard.split("-")[0]] += rows
        images = pa.array([{"bytes": b, "path": None if i % 2 else f"{k}.png"} for i, (b, _) in enumerate(rows)],
                          pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        columns = {"image": images, "celeb_id": pa.array([100 + i for i in range(n)], pa.int64())}
        columns |= {a: pa.array([bool(attrs[j]) for _, attrs in rows], pa.bool_())
                    for j, a in enumerate(CELEBA_ATTRIBUTES)}
        metadata = {"huggingface": json.dumps({"info": {"features": FEATURES}})}  # as `datasets` writes it
        table = pa.table(columns).replace_schema_metadata(metadata)
        pq.write_table(table, folder / HUB_CONFIG / shard)
    return SimpleNamespace(folder=folder, faces=faces)


class FakeHub:
    """Stands in for huggingface_hub: lists and 'downloads' the mirror's files, logging each call; ``fail_on`` makes
    the download of that file raise, as a dropped connection would."""

    def __init__(self, mirror, fail_on: str | None = None):
        self.mirror, self.fail_on, self.downloads, self.listings = mirror, fail_on, [], 0

    def list_repo_files(self, repo_id, *, revision=None, repo_type=None, token=None):
        assert (repo_id, repo_type) == (HUB_REPO, "dataset")
        self.listings += 1
        root = self.mirror.folder
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def hf_hub_download(self, repo_id, filename, *, repo_type=None, revision=None, local_dir=None, **kwargs):
        assert (repo_id, repo_type) == (HUB_REPO, "dataset")
        self.downloads.append(filename)
        if filename.endswith(self.fail_on or "\0"):
            raise ConnectionError("the connection dropped")
        out = Path(local_dir) / filename  # what the real one does with local_dir: the file itself, in that folder
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.mirror.folder / filename, out)
        return str(out)


@pytest.fixture
def hub(monkeypatch, mirror):
    def refuse(*args, **kwargs):
        raise AssertionError("download_celeba must not touch the network in this test")
    monkeypatch.setattr(socket.socket, "connect", refuse)

    def install(**kwargs) -> FakeHub:
        fake = FakeHub(mirror, **kwargs)
        monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
        return fake
    return install


def check_converted(root: Path, mirror) -> None:
    """The loader reads the result: split sizes, 0/1 attributes from the ±1 list, the mirror's exact pixels."""
    for split, faces in mirror.faces.items():
        data = CelebA(root, split=split, cache=False)
        assert len(data) == len(faces)
        assert torch.equal(data.attrs, torch.stack([a for _, a in faces]))
        for i, (b, _) in enumerate(faces):  # PNG bytes copied as they are: the same pixels, crop/resize included
            assert torch.equal(data.images[i], load_image(io.BytesIO(b)))
    lines = (root / "celeba" / ATTR_FILE).read_text().splitlines()
    assert lines[0] == "6" and lines[1].split() == list(CELEBA_ATTRIBUTES)
    assert lines[2].split()[0] == "000001.png" and set(lines[2].split()[1:]) <= {"-1", "1"}
    partition = (root / "celeba" / PARTITION_FILE).read_text().splitlines()
    assert partition == [f"{i:06d}.png {code}" for i, code in zip(range(1, 7), [0, 0, 0, 0, 1, 2])]


def test_converts_the_mirror_into_the_layout_the_loader_reads(hub, mirror, tmp_path, capsys):
    fake = hub()
    folder = download_celeba(tmp_path)
    assert folder == tmp_path / "celeba"
    check_converted(tmp_path, mirror)
    assert fake.downloads == [f"{HUB_CONFIG}/{s}" for s in SHARDS]  # shards only, train → valid → test
    assert not (folder / ".hub_download").exists() and not (folder / ".hub_partial").exists()  # cleaned up
    assert (folder / HUB_MARKER).read_text().splitlines()[-1] == "done: train=4 valid=1 test=1"
    out = capsys.readouterr().out
    assert "CelebA ready in" in out and "4 train, 1 valid, 1 test" in out and "official split" in out


def test_a_second_call_is_a_no_op(hub, mirror, tmp_path):
    hub()
    download_celeba(tmp_path, progress=False)
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "celeba").rglob("*")}
    fake = hub()  # a fresh hub that counts calls
    assert download_celeba(tmp_path) == tmp_path / "celeba"
    assert (fake.listings, fake.downloads) == (0, [])
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "celeba").rglob("*")} == files


def test_an_interrupted_conversion_is_detected_and_resumed(hub, mirror, tmp_path):
    hub(fail_on="test-00000-of-00001.parquet")
    with pytest.raises(ConnectionError):
        download_celeba(tmp_path, progress=False)
    folder = tmp_path / "celeba"
    with pytest.raises(CelebADataMissing, match="interrupted download_celeba"):  # no lists beside half the images
        CelebA(tmp_path, split="train")
    assert not (folder / PARTITION_FILE).exists() and (folder / IMAGE_DIR / "000005.png").is_file()  # valid: done
    (folder / IMAGE_DIR / "000006.png").write_bytes(b"\x89PNG half an image")  # test: as if stopped mid-write
    fake = hub()
    download_celeba(tmp_path, progress=False)
    assert fake.downloads == [f"{HUB_CONFIG}/test-00000-of-00001.parquet"]  # the converted shards are kept
    check_converted(tmp_path, mirror)


def test_a_changed_source_starts_over(hub, mirror, tmp_path):
    hub(fail_on="valid-00000-of-00001.parquet")
    with pytest.raises(ConnectionError):
        download_celeba(tmp_path, progress=False)
    fake = hub()
    download_celeba(tmp_path, revision="abc123", progress=False)  # another revision: nothing of the old run is reused
    assert fake.downloads == [f"{HUB_CONFIG}/{s}" for s in SHARDS]
    check_converted(tmp_path, mirror)


def test_a_local_copy_needs_no_huggingface_hub(monkeypatch, mirror, tmp_path):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    download_celeba(tmp_path, source_dir=mirror.folder, progress=False)
    check_converted(tmp_path, mirror)
    assert (mirror.folder / HUB_CONFIG / "test-00000-of-00001.parquet").is_file()  # the source is left alone


@pytest.mark.parametrize("module, blocked", [
    ("huggingface_hub", ["huggingface_hub"]),
    ("pyarrow", ["pyarrow", "pyarrow.parquet"]),
])
def test_a_missing_optional_dependency_is_one_line(monkeypatch, tmp_path, module, blocked):
    for m in blocked:
        monkeypatch.setitem(sys.modules, m, None)
    with pytest.raises(ImportError) as err:
        download_celeba(tmp_path)
    assert str(err.value).endswith(f"pip install {module}")
    assert len(str(err.value).splitlines()) == 1
    assert not (tmp_path / "celeba").exists()


def test_unreachable_hub_and_foreign_formats_say_so(monkeypatch, mirror, tmp_path):
    def offline(*args, **kwargs):
        raise ConnectionError("Max retries exceeded\nwith url …")
    monkeypatch.setitem(sys.modules, "huggingface_hub", SimpleNamespace(list_repo_files=offline))
    with pytest.raises(OSError, match=r"could not list the files of the dataset flwrlabs/celeba .*source_dir="):
        download_celeba(tmp_path)
    other = tmp_path / "other"
    (other / HUB_CONFIG).mkdir(parents=True)
    shutil.copy(mirror.folder / HUB_CONFIG / "train-00000-of-00002.parquet", other / HUB_CONFIG)
    with pytest.raises(ValueError, match="has no img_align\\+identity\\+attr/valid-NNNNN-of-NNNNN.parquet"):
        download_celeba(tmp_path / "a", source_dir=other)
    for split in ("valid", "test"):
        pq.write_table(pa.table({"image": pa.array([b"x"]), "Smiling": pa.array([True])}),
                       other / HUB_CONFIG / f"{split}-00000-of-00001.parquet")
    (other / HUB_CONFIG / "train-00000-of-00002.parquet").unlink()
    pq.write_table(pa.table({"image": pa.array([b"x"]), "Smiling": pa.array([True])}),
                   other / HUB_CONFIG / "train-00000-of-00001.parquet")
    with pytest.raises(ValueError, match="not the CelebA mirror's format, it has no column"):
        download_celeba(tmp_path / "b", source_dir=other)


def test_toy_faces_and_a_celeba_placed_by_hand_are_left_alone(hub, tmp_path):
    from minildm.toyfaces import write_toy_faces
    write_toy_faces(tmp_path / "toy", n=10, seed=0)
    with pytest.raises(FileExistsError, match="holds toy faces"):
        download_celeba(tmp_path / "toy")
    by_hand = tmp_path / "hand" / "celeba"
    shutil.copytree(tmp_path / "toy" / "celeba", by_hand)
    (by_hand / "TOY_FACES.txt").unlink()
    fake = hub()
    assert download_celeba(tmp_path / "hand") == by_hand
    assert fake.downloads == [] and not (by_hand / HUB_MARKER).exists()


def test_the_real_huggingface_hub_takes_the_arguments_used():
    hf = pytest.importorskip("huggingface_hub")
    assert {"repo_type", "revision", "local_dir"} <= set(inspect.signature(hf.hf_hub_download).parameters)
    assert {"repo_type", "revision"} <= set(inspect.signature(hf.list_repo_files).parameters)
