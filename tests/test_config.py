"""Run modes and paths (docs/DESIGN.md "Run modes")."""
import pytest

from minildm import config


def test_mode_env_wins(monkeypatch):
    monkeypatch.setenv("MINILDM_MODE", "cpu")
    monkeypatch.setenv("CI", "true")
    assert config.get_mode() == "cpu"


def test_ci_means_smoke(monkeypatch):
    monkeypatch.delenv("MINILDM_MODE", raising=False)
    monkeypatch.setenv("CI", "true")
    assert config.get_mode() == "smoke"
    assert config.pick(smoke=1, cpu=2, gpu=3) == 1


def test_no_ci_means_hardware(monkeypatch):
    monkeypatch.delenv("MINILDM_MODE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    import torch
    assert config.get_mode() == ("gpu" if torch.cuda.is_available() else "cpu")  # this machine, as it is
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.get_mode() == "gpu"
    assert config.pick(smoke=1, cpu=2, gpu=3) == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.get_mode() == "cpu"
    assert config.pick(smoke=1, cpu=2, gpu=3) == 2


def test_bad_mode_is_explained(monkeypatch):
    monkeypatch.setenv("MINILDM_MODE", "turbo")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        config.get_mode()


def test_data_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MINILDM_DATA", str(tmp_path))
    assert config.data_root() == tmp_path


def test_seed_everything_reproducible():
    import random

    import numpy as np
    import torch

    def draws(g):  # one draw from each generator seed_everything promises to seed, and from the one it returns
        return (random.random(), np.random.rand(3).tolist(), torch.randn(3).tolist(),
                torch.randn(3, generator=g).tolist())

    a = draws(config.seed_everything(3))
    b = draws(config.seed_everything(3))
    for name, x, y in zip(("random", "numpy", "torch", "returned generator"), a, b):
        assert x == y, name
    c = draws(config.seed_everything(4))
    for name, x, y in zip(("random", "numpy", "torch", "returned generator"), a, c):
        assert x != y, f"{name}: seeds 3 and 4 gave the same draws; is the seed used?"
