"""The fast path of a notebook, run for real in cpu mode from an empty runs folder, finishes within its budget.

Opt-in (it takes minutes): ``MINILDM_FAST_PATH=02 python -m pytest tests/test_fast_path_budget.py`` runs notebook 02
(any prefix works) the way a learner's "Run all" on a laptop does: cpu mode, only the shipped weights to load, one
thread. The budget is issue 14's 10 minutes on 2 CPU cores; the recorded runtimes (notebooks/RUNS.md, checked by
tests/test_notebook_paths.py) sit well under it, so the check is not a flaky timer: it fails when a change puts a
long training or measurement back on the fast path. CI (smoke mode, 15 minutes for everything) skips it.
"""
import importlib.util
import os
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 10 * 60
WHICH = os.environ.get("MINILDM_FAST_PATH", "").strip()

pytestmark = pytest.mark.skipif(not WHICH, reason="opt-in: MINILDM_FAST_PATH=NN runs notebook NN's fast path")


def _notebooks_script():
    spec = importlib.util.spec_from_file_location("notebooks_script", ROOT / "scripts" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fast_path_runs_within_budget(monkeypatch):
    nbs = _notebooks_script()
    (src,) = nbs.sources([WHICH])
    nb = nbs.to_notebook(src)
    with tempfile.TemporaryDirectory() as runs:
        monkeypatch.setenv("MINILDM_RUNS", runs)  # as on a fresh clone: nothing trained before
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        monkeypatch.setenv("MINILDM_MODE", "cpu")  # execute() sets it too; monkeypatch restores it afterwards
        monkeypatch.delenv("CI", raising=False)
        monkeypatch.setenv("PYTHONPATH", str(ROOT))
        t0 = time.perf_counter()
        nbs.execute(nb, "cpu", timeout=BUDGET_S)
        seconds = time.perf_counter() - t0
    print(f"{src.stem}: fast path in cpu mode {seconds / 60:.1f} min (budget {BUDGET_S / 60:.0f})")
    assert seconds <= BUDGET_S, f"{src.stem}'s fast path took {seconds / 60:.1f} min, over the 10-minute budget"
