"""The Colab install cell installs only what Colab lacks and upgrades nothing that Colab's kernel has imported.

Colab's kernel imports its own IPython, ipykernel and ipywidgets (and with them tornado, pyzmq, jupyter-client) when it
starts; a pip upgrade of any of them there asks for a runtime restart or breaks the runtime (googlecolab/colabtools
#3020, #2837, #4525). So the first code cell of every notebook (the ``if "google.colab" in sys.modules:`` one) is read
here with what it installs (the requirements it names; for minildm, pyproject.toml's dependencies and the extras it
names), and each installed requirement must be a package Colab has, not one of the kernel's, with a version floor
that Colab's own version already satisfies, so that pip installs minildm alone.
"""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import shlex
import tomllib
from pathlib import Path

import jupytext
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# Colab's preinstalled versions: googlecolab/backend-info, pip-freeze.gpu.txt (pip-freeze.txt lists the same versions
# of these), commit a724079 of 2026-08-19 ("Upgrade to Python 3.13"; Python 3.13.15, Ubuntu 22.04.5). That repository
# publishes the freeze of each Colab runtime build; update this dict from its newest pip-freeze when Colab moves on.
COLAB = {
    # what Colab's kernel imports at start: never installed or upgraded by the cell
    "ipython": "7.34.0", "ipykernel": "6.17.1", "ipywidgets": "7.7.1", "tornado": "6.5.7", "jupyter-client": "7.4.9",
    "pyzmq": "26.2.1", "notebook": "6.5.7", "jupyter-core": "5.9.1", "jupyter-server": "2.20.0", "traitlets": "5.7.1",
    "widgetsnbextension": "3.6.10", "jupyterlab-widgets": "3.0.16",
    # minildm's dependencies, and what download_celeba and notebook 04 use
    "torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.1.3", "matplotlib": "3.10.0", "tqdm": "4.67.3",
    "einops": "0.8.2", "pillow": "11.3.0", "scipy": "1.16.3", "jupytext": "1.19.5", "huggingface-hub": "1.27.0",
    "pyarrow": "18.1.0",
}
KERNEL = {"ipython", "ipykernel", "ipywidgets", "tornado", "pyzmq", "jupyter-client", "jupyterlab", "notebook"}
NOT_ON_COLAB = {"jupyterlab"}  # absent from that freeze: installing it would pull in a Jupyter server stack
PIP_FLAGS = {"-q", "-qq", "--quiet", "--no-cache-dir", "--disable-pip-version-check", "--no-deps"}  # harmless ones


def install_cell(src: Path) -> str:
    code = [c.source for c in jupytext.read(src).cells if c.cell_type == "code"]
    assert code and 'if "google.colab" in sys.modules:' in code[0], f"{src.name}: the first code cell is not the " \
        "Colab install cell"
    return code[0]


def pip_arguments(cell: str) -> list[str]:
    """The arguments after ``pip install`` in the cell: from subprocess calls with a literal list, or from a
    ``!pip`` / ``%pip`` line."""
    calls = []
    for line in cell.splitlines():
        if re.match(r"\s*[!%]\s*(python -m )?pip\s+install\b", line):
            calls.append(shlex.split(line.split("install", 1)[1]))
    python = "\n".join(line for line in cell.splitlines() if not re.match(r"\s*[!%]", line))
    for node in ast.walk(ast.parse(python)):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.List):
            parts = [e.value if isinstance(e, ast.Constant) else None for e in node.args[0].elts]
            if "pip" in parts and "install" in parts:
                rest = parts[parts.index("install") + 1:]
                assert None not in rest, "the pip arguments must be literal strings, so that this test can read them"
                calls.append(rest)
    assert calls, "no pip install found in the Colab cell"
    return [a for call in calls for a in call]


def installed_set(cell: str) -> list[Requirement]:
    """Every requirement the cell asks pip to satisfy: the ones it names, minildm's own through pyproject.toml."""
    out = []
    for arg in pip_arguments(cell):
        if arg.startswith("-"):
            assert arg in PIP_FLAGS, f"pip flag {arg!r}: this test does not know what it does to Colab's packages"
            continue
        req = Requirement(arg)
        if canonicalize_name(req.name) != "minildm":
            out.append(req)
            continue
        out += [Requirement(r) for r in PROJECT["dependencies"]]
        for extra in sorted(req.extras):
            assert extra in PROJECT["optional-dependencies"], f"minildm has no extra {extra!r}"
            out += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    return out


@pytest.mark.parametrize("src", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_colab_cell_installs_nothing_colab_has_imported_and_upgrades_nothing(src):
    reqs = installed_set(install_cell(src))
    assert any(canonicalize_name(r.name) == "torch" for r in reqs), "minildm's dependencies were not read"
    kernel = sorted({canonicalize_name(r.name) for r in reqs} & KERNEL)
    assert kernel == [], f"{src.name}: the Colab cell would install or upgrade {kernel}, which Colab's kernel has " \
        "imported already (a runtime restart, or a broken runtime)"
    for r in reqs:
        name = canonicalize_name(r.name)
        assert name in COLAB, f"{src.name}: {r} is not among Colab's packages: the cell would install it with its " \
            "dependencies; check that they pull in none of the kernel's packages, then record it in COLAB"
        assert r.specifier.contains(COLAB[name], prereleases=True), f"{src.name}: {r} asks for more than Colab's " \
            f"{name} {COLAB[name]}, so pip would upgrade it there"


def test_minildm_dependencies_pull_in_no_kernel_package():
    """The dependency closure of minildm's own requirements, as installed on this machine (the shape of each
    package's requirements changes little between versions): none of the kernel's packages is in it."""
    seen, todo, found = set(), [Requirement(r) for r in PROJECT["dependencies"]], []
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        if name in KERNEL:
            found.append(name)
        try:
            todo += [Requirement(r) for r in md.requires(req.name) or []]
        except md.PackageNotFoundError:
            continue  # not installed here (a platform-specific wheel): its own requirements are unknown
    assert {"torch", "numpy", "matplotlib"} <= seen
    assert found == [], f"minildm's dependencies pull in {found}"


def test_the_notebooks_extra_would_not_upgrade_colab_either():
    """Not what the cell installs, but a learner may type ``pip install minildm[notebooks]`` on Colab: its floors stay
    at or below Colab's versions (jupyterlab, which Colab lacks, is why the cell names no extra)."""
    for r in map(Requirement, PROJECT["optional-dependencies"]["notebooks"]):
        name = canonicalize_name(r.name)
        if name in NOT_ON_COLAB:
            continue
        assert r.specifier.contains(COLAB[name], prereleases=True), f"notebooks extra: {r} > Colab's {COLAB[name]}"


# The ipywidgets names the notebooks may use: each exists in ipywidgets 7.7.1, Colab's (checked against that wheel).
WIDGETS_7_7 = {
    "interact", "interactive", "interact_manual", "fixed", "IntSlider", "FloatSlider", "FloatLogSlider",
    "IntRangeSlider", "Dropdown", "Select", "SelectionSlider", "RadioButtons", "ToggleButtons", "ToggleButton",
    "Checkbox", "Button", "Play", "jslink", "IntText", "FloatText", "BoundedIntText", "BoundedFloatText", "Text",
    "Textarea", "Label", "HTML", "Image", "Output", "HBox", "VBox", "GridBox", "Tab", "Accordion", "Layout",
}


def test_widget_code_uses_only_what_ipywidgets_7_7_has():
    used = {}
    for path in NOTEBOOKS + sorted((ROOT / "minildm").glob("*.py")):
        text = path.read_text()
        for alias in re.findall(r"import ipywidgets as (\w+)", text):
            for name in re.findall(rf"\b{alias}\.(\w+)", text):
                used.setdefault(name, path.name)
        for names in re.findall(r"from ipywidgets import ([\w, ()]+)", text):
            for name in re.findall(r"\w+", names):
                used.setdefault(name, path.name)
    assert used, "no widget code found: the notebooks' sliders moved? update this test"
    unknown = {n: f for n, f in used.items() if n not in WIDGETS_7_7}
    assert unknown == {}, f"ipywidgets names not checked against Colab's ipywidgets 7.7.1: {unknown}"
