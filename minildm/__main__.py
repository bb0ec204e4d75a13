"""The command line: ``python -m minildm COMMAND`` (or ``minildm COMMAND`` once installed).

Commands:
  notebook NN   execute notebook NN headless (cpu mode by default) and write its figures as PNG files
"""
from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class CLIError(Exception):
    """An error the user can fix; printed as one line, exit code 2, no traceback."""


def cmd_notebook(args: argparse.Namespace) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb_dir = ROOT / "notebooks"
    matches = sorted(nb_dir.glob(f"{args.name}*.ipynb"))
    if not matches:
        known = ", ".join(p.stem for p in sorted(nb_dir.glob("[0-9][0-9]_*.ipynb"))) or "none found"
        raise CLIError(f"no notebook matches {args.name!r} in {nb_dir} (known: {known})")
    path = matches[0]
    out = Path(args.out) / path.stem
    out.mkdir(parents=True, exist_ok=True)
    os.environ["MINILDM_MODE"] = args.mode
    nb = nbformat.read(path, as_version=4)
    print(f"executing {path.name} in {args.mode} mode …", flush=True)
    t0 = time.time()
    NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(nb_dir)}}).execute()
    n = 0
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            png = o.get("data", {}).get("image/png")
            if png:
                n += 1
                (out / f"figure_{n:02d}.png").write_bytes(base64.b64decode(png))
    nbformat.write(nb, out / path.name)
    print(f"done in {time.time() - t0:.0f} s: {n} figures and the executed notebook in {out}/")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minildm", description="minildm: latent diffusion, built from scratch.")
    sub = p.add_subparsers(dest="command", required=True)
    nb = sub.add_parser("notebook", help="execute a course notebook headless and write its figures")
    nb.add_argument("name", help="the notebook's number, e.g. 01")
    nb.add_argument("--mode", default=os.environ.get("MINILDM_MODE", "cpu"), choices=["smoke", "cpu", "gpu"])
    nb.add_argument("--out", default="outputs", help="folder for the figures (default: outputs/)")
    nb.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    nb.set_defaults(func=cmd_notebook)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CLIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
