"""The study scripts change only what they say they change (scripts/parameterisation_study.py's variants)."""
import dataclasses
import importlib.util
from pathlib import Path

import pytest

from minildm import presets

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("parameterisation_study", SCRIPTS / "parameterisation_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wide_variant_changes_only_the_width(study):
    """--width 32: the latent-mnist cpu preset with v, scaled-linear, the lr drop for the last sixth, and a UNet of
    base width 32 (2.74 M parameters against 0.69 M); every other UNet and training field as the preset's."""
    base = presets.PRESETS["latent-mnist"]("cpu")
    p = study.variant_preset("v_scaled", 20000, 0, width=32)
    assert (p.train.target, p.schedule) == ("v", "scaled_linear")
    assert p.train.lr_drop_at == 20000 - 20000 // 6
    assert dataclasses.replace(p.unet, base_channels=base.unet.base_channels) == base.unet
    assert p.unet.base_channels == 32
    assert round(presets.unet_parameters(p.unet) / 1e6, 2) == 2.74
    assert round(presets.unet_parameters(base.unet) / 1e6, 2) == 0.69
    assert p.train.ema_decay == base.train.ema_decay
    narrow = study.variant_preset("v_scaled", 20000, 0)
    assert narrow.unet == base.unet
    assert dataclasses.replace(p, unet=base.unet) == narrow


def test_ema_variant_changes_only_the_decay(study):
    p = study.variant_preset("v_scaled", 20000, 0, ema_decay=0.9995)
    q = study.variant_preset("v_scaled", 20000, 0)
    assert p.train.ema_decay == 0.9995 != q.train.ema_decay
    assert dataclasses.replace(p, train=dataclasses.replace(p.train, ema_decay=q.train.ema_decay)) == q


def test_dropout_variant_changes_only_the_unets_dropout(study):
    p = study.variant_preset("v_scaled", 20000, 0, dropout=0.1)
    q = study.variant_preset("v_scaled", 20000, 0)
    assert (p.unet.dropout, q.unet.dropout) == (0.1, 0.0)
    assert dataclasses.replace(p, unet=q.unet) == q


def test_run_names_keep_snapshots_apart(study, tmp_path):
    """Each variant has its own file stem, and a snapshot's step is read back from its name even when the stem
    itself holds "ema" (``v_scaled_ema9995``)."""
    assert study.run_name("v_scaled", None) == "v_scaled"
    assert study.run_name("v_scaled", 32) == "v_scaled_w32"
    assert study.run_name("v_scaled", None, 0.9995) == "v_scaled_ema9995"
    assert study.run_name("v_scaled", None, None, 0.1) == "v_scaled_do10"
    for name in ("v_scaled", "v_scaled_w32", "v_scaled_ema9995", "v_scaled_do10"):
        snap = study.snapshot_path(tmp_path, name, 0, 2500)
        assert int(snap.stem.rsplit("ema", 1)[1]) == 2500
        snap.touch()
    assert len(list(tmp_path.glob("v_scaled_s0_ema*.pt"))) == 1  # the narrow run does not pick up the others'
