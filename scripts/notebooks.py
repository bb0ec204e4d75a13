"""Build, execute and check the course notebooks.

The reviewable source of each notebook is ``notebooks/NN_name.py`` (jupytext ``py:percent``); the
``.ipynb`` beside it is generated from it, with the outputs of a real run, so learners see the figures on
the repository page.

    python scripts/notebooks.py build  [NAMES]                # .py → .ipynb, keep nothing executed
    python scripts/notebooks.py run    [NAMES] --mode cpu     # .py → .ipynb, execute, save outputs
    python scripts/notebooks.py prose  [NAMES]                # .py → .ipynb for markdown edits, keeping outputs
    python scripts/notebooks.py carry  [NAMES]                # .py → .ipynb after renames, keeping outputs (prints diffs)
    python scripts/notebooks.py check                         # each .ipynb's code equals its .py (CI)

NAMES are prefixes such as ``01`` (default: all). ``run`` records the wall time of each notebook in
``notebooks/RUNS.md``. ``carry`` is for code edits that cannot change what a cell computes or prints (a module
renamed in an import, a function called through its new module): it keeps each cell's outputs, requires the same
cells in the same order, and prints every changed code cell as a diff for the reviewer to check that claim.
"""
from __future__ import annotations

import argparse
import difflib
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"


def sources(names: list[str]) -> list[Path]:
    files = sorted(NB_DIR.glob("[0-9][0-9]_*.py"))
    if names:
        files = [f for f in files if any(f.name.startswith(n) for n in names)]
    if not files:
        sys.exit(f"no notebook sources match {names} in {NB_DIR}")
    return files


def to_notebook(src: Path) -> nbformat.NotebookNode:
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    nb.metadata["colab"] = {"provenance": []}
    nb.metadata["accelerator"] = "GPU"
    return nb


def execute(nb: nbformat.NotebookNode, mode: str, timeout: int) -> None:
    from nbclient import NotebookClient

    os.environ["MINILDM_MODE"] = mode  # the kernel inherits this environment
    if mode != "smoke":
        os.environ.pop("CI", None)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}}).execute()


def code_cells(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source.strip() for c in nb.cells if c.cell_type == "code"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["build", "run", "prose", "carry", "check"])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--mode", default="cpu", choices=["smoke", "cpu", "gpu"])
    ap.add_argument("--timeout", type=int, default=4 * 3600, help="seconds per cell")
    ap.add_argument("--fresh", action="store_true",
                    help="run: train into an empty, temporary runs folder (MINILDM_RUNS), as on a fresh clone, so "
                         "nothing trained before is loaded; the RUNS.md row says 'fresh'")
    args = ap.parse_args()

    if args.command == "check":
        stale = []
        for src in sources(args.names):
            ipynb = src.with_suffix(".ipynb")
            if not ipynb.exists() or code_cells(nbformat.read(ipynb, 4)) != code_cells(to_notebook(src)):
                stale.append(ipynb.name)
        if stale:
            sys.exit(f"out of date with their .py sources: {', '.join(stale)}; run "
                     f"`python scripts/notebooks.py run {' '.join(s[:2] for s in stale)} --mode cpu`")
        print("notebooks in sync with their sources")
        return

    for src in sources(args.names):
        nb = to_notebook(src)
        if args.command in ("prose", "carry"):  # carry the executed outputs over, cell by cell
            old = nbformat.read(src.with_suffix(".ipynb"), 4)
            old_code = [c for c in old.cells if c.cell_type == "code"]
            new_code = [c for c in nb.cells if c.cell_type == "code"]
            changed = [(i, o, n) for i, (o, n) in enumerate(zip(old_code, new_code)) if o.source.strip() != n.source.strip()]
            if args.command == "prose" and (changed or len(old_code) != len(new_code)):
                sys.exit(f"{src.name}: code cells changed, so the outputs would not match; use `run` (or `carry` "
                         "for renames)")
            if len(old_code) != len(new_code):
                sys.exit(f"{src.name}: {len(old_code)} code cells before, {len(new_code)} now; use `run`")
            for i, o, n in changed:
                diff = difflib.unified_diff(o.source.splitlines(), n.source.splitlines(), lineterm="", n=0)
                print(f"{src.name}, code cell {i}:\n  " + "\n  ".join(list(diff)[2:]))
            for o, n in zip(old_code, new_code):
                n.outputs, n.execution_count, n.metadata = o.outputs, o.execution_count, o.metadata
            if len(old.cells) == len(nb.cells):  # same cells: keep their ids, so the diff shows only what changed
                for o, n in zip(old.cells, nb.cells):
                    n.id = o.id
            nb.metadata = old.metadata  # kernel info and the saved widget state (progress bars, sliders)
        if args.command == "run":
            fresh = tempfile.TemporaryDirectory(prefix=f"minildm-runs-{src.stem[:2]}-") if args.fresh else None
            if fresh is not None:
                os.environ["MINILDM_RUNS"] = fresh.name  # the kernel inherits it
            t0, r0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
            try:
                execute(nb, args.mode, args.timeout)
            finally:  # a failed cell must not leave the next notebook in this folder
                if fresh is not None:
                    fresh.cleanup()
                    del os.environ["MINILDM_RUNS"]
            secs = time.time() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel, reaped at shutdown
            cpu_min = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / 60
            line = (f"| {src.stem} | {args.mode} | {secs / 60:.1f} min | {platform.processor() or platform.machine()}, "
                    f"{os.cpu_count()} cores{', fresh runs folder' if fresh else ''}, kernel CPU {cpu_min:.1f} min | "
                    f"{time.strftime('%Y-%m-%d')} |\n")
            runs = NB_DIR / "RUNS.md"
            if not runs.exists():
                runs.write_text("# Notebook runs\n\nWall time of the runs whose outputs are committed "
                                "(`python scripts/notebooks.py run NN --mode MODE`).\n\n"
                                "| notebook | mode | wall time | machine | date |\n|---|---|---|---|---|\n")
            rows = [r for r in runs.read_text().splitlines(keepends=True) if not r.startswith(f"| {src.stem} |")]
            # insert after the last table row, so notes below the table stay below it
            last = max((i for i, r in enumerate(rows) if r.startswith("|")), default=len(rows) - 1)
            rows.insert(last + 1, line)
            runs.write_text("".join(rows))
            print(f"{src.stem}: executed in {args.mode} mode in {secs:.0f} s (kernel CPU {cpu_min * 60:.0f} s)")
        nbformat.write(nb, src.with_suffix(".ipynb"))
        print(f"wrote {src.with_suffix('.ipynb').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
