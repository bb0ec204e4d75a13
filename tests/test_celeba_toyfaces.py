"""CelebA loader and the toy-faces stand-in: format, errors, determinism, and attribute localisation."""
from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import torch

from minildm.celeba import (
    CELEBA_ATTRIBUTES, CelebA, CelebADataMissing, center_crop_resize, read_celeba_attributes, read_celeba_partition,
)
from minildm.toyfaces import (
    HAIR_COLOURS, RENDERED_ATTRIBUTES, attribute_regions, render_face, sample_attributes, write_toy_faces,
)

N = 60


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_toy_faces(root, n=N, seed=0)
    return root


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the CelebA loader must not touch the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)


def to_tensor(img) -> torch.Tensor:
    """The loader's path: centre crop 148, resize to 64, scale to [-1, 1]. (3, 64, 64)."""
    arr = np.array(center_crop_resize(img, 64, 148))
    return torch.from_numpy(arr).permute(2, 0, 1).float() / 127.5 - 1


def test_reader_parses_toy_faces(toy_root):
    files, attrs, names = read_celeba_attributes(toy_root)
    assert names == CELEBA_ATTRIBUTES
    assert len(names) == 40
    assert names[0] == "5_o_Clock_Shadow"
    assert attrs.shape == (N, 40)
    assert attrs.dtype == torch.int64
    assert set(attrs.unique().tolist()) == {0, 1}
    assert files[0] == "000001.jpg"
    assert files[-1] == f"{N:06d}.jpg"
    part = read_celeba_partition(toy_root)
    assert [sum(v == k for v in part.values()) for k in (0, 1, 2)] == [48, 6, 6]
    # exclusivity rules hold in the written labels
    col = {n: attrs[:, i] for i, n in enumerate(names)}
    assert (sum(col[h] for h in HAIR_COLOURS) <= 1).all()
    assert (col["Bald"] * (col["Bangs"] + col["Wearing_Hat"] + sum(col[h] for h in HAIR_COLOURS)) == 0).all()


def test_dataset_splits_items_and_cache(toy_root):
    sizes = {s: len(CelebA(toy_root, split=s, cache=False)) for s in ("train", "valid", "test", "all")}
    assert sizes == {"train": 48, "valid": 6, "test": 6, "all": 60}
    test = CelebA(toy_root, split="test", cache=False)
    assert test.filenames[0] == "000055.jpg"
    x, a = test[0]
    assert x.shape == (3, 64, 64)
    assert x.dtype == torch.float32
    assert a.shape == (40,)
    assert -1 <= x.min() < x.max() <= 1
    assert test.attr_index("Smiling") == 31
    with pytest.raises(ValueError, match="Smiling"):
        test.attr_index("Smilling")

    first = CelebA(toy_root, split="valid", cache=True)
    assert first.cache_path.is_file()
    assert first.images.dtype == torch.uint8
    assert first.images.shape == (6, 3, 64, 64)
    again = CelebA(toy_root, split="valid", cache=True)  # loads the file
    assert torch.equal(first.images, again.images)
    assert torch.equal(first.attrs, again.attrs)
    assert torch.equal(again[3][0], _item(toy_root, "valid", 3))


def _item(root, split, i):
    return CelebA(root, split=split, cache=False)[i][0]


def test_missing_files_fail_fast_with_instructions(tmp_path, no_network):
    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)
    t0 = time.perf_counter()
    with pytest.raises(CelebADataMissing) as err:
        CelebA(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "celeba" / "list_attr_celeba.txt") in msg
    assert "Kaggle" in msg
    assert "write_toy_faces" in msg
    assert "mmlab.ie.cuhk.edu.hk" in msg
    with pytest.raises(CelebADataMissing, match="Kaggle"):
        read_celeba_attributes(tmp_path)

    other = tmp_path / "no_images"
    (other / "celeba").mkdir(parents=True)
    for f in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        (other / "celeba" / f).write_text("")
    with pytest.raises(CelebADataMissing) as err:
        CelebA(other)
    assert str(other / "celeba" / "img_align_celeba") in str(err.value)
    assert "Kaggle" in str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert time.perf_counter() - t0 < 2


def test_malformed_attribute_file_names_the_file(tmp_path):
    folder = tmp_path / "celeba"
    folder.mkdir()
    names = list(CELEBA_ATTRIBUTES)
    names[5] = "Fringe"
    (folder / "list_attr_celeba.txt").write_text("1\n" + " ".join(names) + "\n000001.jpg" + " 1" * 40 + "\n")
    with pytest.raises(ValueError, match="list_attr_celeba.txt.*line 2.*Fringe"):
        read_celeba_attributes(tmp_path)
    (folder / "list_attr_celeba.txt").write_text("1\n" + " ".join(CELEBA_ATTRIBUTES) + "\n000001.jpg" + " 0" * 40)
    with pytest.raises(ValueError, match="list_attr_celeba.txt, line 3"):
        read_celeba_attributes(tmp_path)


def test_toy_faces_deterministic(tmp_path):
    a, b, c = (write_toy_faces(tmp_path / k, n=12, seed=s) for k, s in [("a", 0), ("b", 0), ("c", 1)])
    for f in ["list_attr_celeba.txt", "img_align_celeba/000001.jpg", "img_align_celeba/000012.jpg"]:
        assert (a / f).read_bytes() == (b / f).read_bytes()
    assert (a / "img_align_celeba/000001.jpg").read_bytes() != (c / "img_align_celeba/000001.jpg").read_bytes()
    assert "NOT CelebA" in (a / "TOY_FACES.txt").read_text()
    attrs = sample_attributes(np.random.default_rng(3))
    assert np.array_equal(np.array(render_face(attrs, 7)), np.array(render_face(attrs, 7)))
    assert not np.array_equal(np.array(render_face(attrs, 7)), np.array(render_face(attrs, 8)))
    assert render_face(attrs, 7).size == (178, 218)
    mtime = (a / "img_align_celeba/000001.jpg").stat().st_mtime_ns
    write_toy_faces(tmp_path / "a", n=12, seed=0)  # same n and seed: nothing rewritten
    assert (a / "img_align_celeba/000001.jpg").stat().st_mtime_ns == mtime


LOCALISED = ["Eyeglasses", "Smiling", "Wearing_Hat", "Mouth_Slightly_Open", "Wearing_Lipstick", "Bangs",
             "Rosy_Cheeks", "No_Beard", "Young", "Male", "Bald", *HAIR_COLOURS]


@pytest.mark.parametrize("name", LOCALISED)
def test_attribute_changes_only_its_region(name):
    regions = attribute_regions(64)
    assert set(LOCALISED) <= set(regions)
    assert set(regions) <= set(RENDERED_ATTRIBUTES)
    region = regions[name]
    assert region.shape == (64, 64)
    assert region.dtype == torch.bool
    assert 0 < region.sum() < 64 * 64 * 0.7
    for seed in range(4):
        a = dict(zip(CELEBA_ATTRIBUTES, sample_attributes(np.random.default_rng(seed)).tolist()))
        a.update(Bald=0, Wearing_Hat=0, **{h: 0 for h in HAIR_COLOURS})  # nothing hides the attribute
        if name == "Bald":
            a["Bangs"] = 1
        diff = (to_tensor(render_face({**a, name: 1}, seed)) - to_tensor(render_face({**a, name: 0}, seed)))
        changed = diff.abs().amax(0) > 0.05  # (64, 64)
        assert changed.sum() >= 5, f"{name} made no visible change"
        inside = (changed & region).sum() / changed.sum()
        assert inside >= 0.95, f"{name}: only {inside:.0%} of changed pixels lie in its region"


def test_a_second_writer_waits_for_the_first(tmp_path):
    """Two processes asking for the same toy faces (two notebooks, two CI workers): while one holds the write lock,
    the other waits instead of writing beside it, then returns the finished folder."""
    import subprocess
    import sys
    import time

    from minildm.toyfaces import MARKER, _exclusive

    code = ("from minildm.toyfaces import write_toy_faces; print('imported', flush=True); "
            f"write_toy_faces({str(tmp_path)!r}, n=6, seed=0)")
    with _exclusive(tmp_path / ".celeba.lock"):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "imported"
        time.sleep(1.5)  # ample time to write 6 faces (about 0.1 s), had it not waited
        assert proc.poll() is None  # still waiting on the lock
        assert not (tmp_path / "celeba" / MARKER).exists()  # and it wrote nothing
    assert proc.wait(timeout=120) == 0
    assert (tmp_path / "celeba" / MARKER).read_text().endswith("n=6\nseed=0\n")  # the finished stamp
