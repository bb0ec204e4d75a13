"""Run modes and paths (COURSE.md "Run modes")."""
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
    assert config.get_mode() in ("cpu", "gpu")


def test_bad_mode_is_explained(monkeypatch):
    monkeypatch.setenv("MINILDM_MODE", "turbo")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        config.get_mode()


def test_data_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MINILDM_DATA", str(tmp_path))
    assert config.data_root() == tmp_path


def test_seed_everything_reproducible():
    import torch
    config.seed_everything(3)
    a = torch.randn(3)
    config.seed_everything(3)
    assert torch.equal(a, torch.randn(3))
