"""The GPU check: every gpu-mode preset and every notebook's gpu path, run on a CUDA machine in under ~10 minutes.

    python scripts/gpu_check.py                      # on a GPU: the whole check, table into benchmarks/RESULTS.md
    python scripts/gpu_check.py --device cpu --steps 1 --batch 2 --skip-notebooks --presets latent_mnist --no-write
                                                     # anywhere: that the script itself runs (CI does this)

For each preset of :data:`minildm.dryrun.VARIANTS` in gpu mode (random tensors of the real shapes, so no data set is
needed): ``--steps`` training steps at the preset's real batch size through the course's own loop, the training
images per second, the **measured** peak GPU memory (``torch.cuda.max_memory_allocated``) beside the CPU-side
**estimate** CI checks (:func:`minildm.cost.training_memory`), the time the preset's full budget would take at that
speed, and one sampling pass (64 samples, 50 ancestral steps, decode included). Then every notebook is executed in
gpu mode with ``MINILDM_MAX_STEPS`` capping each training run (its figures are no results; the point is that every
cell runs on a GPU), in a scratch runs folder. The tables are written into ``benchmarks/RESULTS.md`` (section
"GPU check", replaced on each run) with the command, the GPU and the date.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minildm.dryrun import VARIANTS, dry_run  # noqa: E402  (after the path: runs from a checkout)

SECTION = "## GPU check (scripts/gpu_check.py)"


def check_presets(names, device: str, steps: int, batch: int | None) -> list[str]:
    rows = ["| preset | parameters | batch | train img/s | peak memory, measured | estimated (CPU, fp32) | full budget "
            "| 64 samples × 50 steps |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        real = VARIANTS[name]("gpu").train.batch_size
        run = dry_run(name, "gpu", device, steps=steps, batch=batch or real, sample_n=64 if batch is None else 2,
                      sample_steps=50 if batch is None else 1)
        measured = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
        budget = run.full_steps * (batch or real) / run.images_per_second / 60
        rows.append(f"| {name} | {run.parameters / 1e6:.2f} M | {batch or real} | {run.images_per_second:,.1f} | "
                    f"{measured:.2f} GiB | {run.memory_estimate / 2**30:.2f} GiB | {run.full_steps:,} steps ≈ "
                    f"{budget:.0f} min | {run.sample_seconds:.1f} s |")
        print(rows[-1], flush=True)
    return rows


def check_notebooks(max_steps: int, timeout: int) -> list[str]:
    import nbformat
    from nbclient import NotebookClient

    rows = ["| notebook | wall time | result |", "|---|---:|---|"]
    with tempfile.TemporaryDirectory() as runs:
        os.environ.update(MINILDM_MODE="gpu", MINILDM_MAX_STEPS=str(max_steps), MINILDM_RUNS=runs)
        os.environ.pop("CI", None)
        for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            t0 = time.perf_counter()
            try:
                NotebookClient(nb, timeout=timeout, kernel_name="python3",
                               resources={"metadata": {"path": str(path.parent)}}).execute()
                result = "ran"
            except Exception as e:  # noqa: BLE001  (any cell's failure is a row of the table, not the end of it)
                result = f"failed: {' '.join(str(e).split())[:200]}"
            rows.append(f"| {path.stem} | {time.perf_counter() - t0:.0f} s | {result} |")
            print(rows[-1], flush=True)
    return rows


def write(tables: list[list[str]], argv: list[str]) -> Path:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    text = "\n".join([SECTION, "", "```", f"command: python scripts/gpu_check.py {shlex.join(argv)}",
                      f"date: {datetime.datetime.now().isoformat(timespec='seconds')}",
                      f"device: {gpu}; torch {torch.__version__}; {platform.processor() or platform.machine()}", "```",
                      ""] + [line for t in tables for line in t + [""]])
    results = ROOT / "benchmarks" / "RESULTS.md"
    old = results.read_text()
    if SECTION in old:  # replace the previous check, keep what follows it
        head, rest = old.split(SECTION, 1)
        tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
        old = head.rstrip() + "\n\n" + text + tail
    else:
        old = old.rstrip() + "\n\n" + text
    results.write_text(old)
    return results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--presets", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=30, help="training steps per preset (the first ones warm up)")
    ap.add_argument("--batch", type=int, default=None, help="override the real batch sizes (for a CPU run)")
    ap.add_argument("--skip-notebooks", action="store_true")
    ap.add_argument("--notebook-steps", type=int, default=20, help="MINILDM_MAX_STEPS for the notebooks")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per notebook cell")
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/RESULTS.md alone")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: no CUDA GPU here; this check is for a GPU machine (--device cpu --batch 2 tries it anyway)")
    t0 = time.perf_counter()
    tables = [check_presets(args.presets, args.device, args.steps, args.batch)]
    if not args.skip_notebooks:
        tables.append(check_notebooks(args.notebook_steps, args.timeout))
    print(f"GPU check done in {(time.perf_counter() - t0) / 60:.1f} min")
    if not args.no_write:
        print(f"wrote {write(tables, argv)}")


if __name__ == "__main__":
    main()
