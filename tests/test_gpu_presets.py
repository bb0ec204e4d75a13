"""Every gpu-mode preset, exercised on CPU: built at its real widths, trained two steps at batch 2, sampled one step,
with its parameters and an estimate of its training memory at the real batch size (minildm.dryrun). A typo in a gpu
preset fails here, in CI, instead of in a learner's Colab session."""
import pytest
import torch
from torch import nn

from minildm.cost import PeakMemory, training_memory
from minildm.dryrun import VARIANTS, dry_run

T4 = 15 * 2**30  # a Colab T4 has 15 GiB for tensors; every gpu preset must fit it in float32
ROWS = []


@pytest.mark.parametrize("name", list(VARIANTS))
def test_gpu_preset_trains_and_samples(name):
    run = dry_run(name, mode="gpu", device="cpu", steps=2, batch=2)
    assert len(run.losses) == 2
    assert all(torch.isfinite(torch.tensor(run.losses)))
    assert run.parameters > 0
    assert 0 < run.memory_estimate < T4, f"{name}: {run.memory_estimate / 2**30:.1f} GiB at batch {run.batch}"
    preset = VARIANTS[name]("gpu")
    if hasattr(preset, "unet"):  # a diffusion preset: one decoded sample of the preset's image size
        channels = 3 if preset.unet.in_channels == 3 else 1
        assert run.sample_shape == (1, channels, preset.image_size, preset.image_size)
    ROWS.append(run.row())
    print(f"\n| preset | parameters | batch | img/s (CPU, batch 2) | est. peak memory |\n{run.row()}")


def test_peak_memory_counts_live_storages_once():
    with PeakMemory() as m:
        a = torch.empty(1000)  # 4,000 bytes
        b = a.view(10, 100)  # a view: the same storage, not counted again
        c = torch.empty(500)  # 2,000 bytes
        assert m.live == 6000
        del a, b
        assert m.live == 2000  # the storage goes when its last tensor does
        del c
    assert m.peak == 6000
    assert m.live == 0


def test_training_memory_extrapolates_the_batch():
    """The estimate at batch 16 from probes at 2 and 4 matches the peak measured at 16, within 5%: saved activations
    grow linearly with the batch (here a 3-layer MLP, whose activations are known: 4 per example and layer)."""
    torch.manual_seed(0)
    D = 256
    model = nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Linear(D, D), nn.ReLU(), nn.Linear(D, D))

    def step(b):
        model(torch.randn(b, D)).square().mean().backward()

    est = training_memory(step, model, batch=16)
    model.zero_grad(set_to_none=True)
    with PeakMemory() as m:
        step(16)
    assert est["forward_backward"] == pytest.approx(m.peak, rel=0.05)
    assert est["weights"] == sum(p.numel() for p in model.parameters()) * 4
    assert est["moments"] >= 2 * est["weights"]  # AdamW keeps two moments per weight
    assert est["per_example"] >= 4 * D * 4  # at least the input and the 3 layers' outputs of one example


def test_gpu_check_script_runs_and_replaces_its_section(tmp_path, monkeypatch, capsys):
    """scripts/gpu_check.py is ready for the day a GPU is lent: its preset pass runs (here on CPU, batch 2) and it
    writes its tables into RESULTS.md in place of the previous check, leaving the other sections alone."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    gpu_check.main(["--device", "cpu", "--steps", "1", "--batch", "2", "--skip-notebooks", "--presets", "latent_mnist",
                    "--no-write"])
    assert "| latent_mnist | 6.47 M | 2 |" in capsys.readouterr().out
    fake_root = tmp_path / "repo"
    (fake_root / "benchmarks").mkdir(parents=True)
    results = fake_root / "benchmarks" / "RESULTS.md"
    results.write_text(f"# Benchmark results\n\n## A\nkept\n\n{gpu_check.SECTION}\n\nold table\n\n## B\nkept too\n")
    monkeypatch.setattr(gpu_check, "ROOT", fake_root)
    gpu_check.write([["| new | table |"]], ["--steps", "1"])
    text = results.read_text()
    assert "old table" not in text
    assert "| new | table |" in text
    assert text.count(gpu_check.SECTION) == 1
    assert "## A\nkept" in text
    assert "## B\nkept too" in text
