"""The package's structure, as its map (the docstring of minildm/__init__.py) states it: every module is on the map,
imports run one way (a module imports only from its own floor or the floors above it on the map), there is no
import cycle, and no import of a minildm module hides inside a function."""
import ast
import re
from pathlib import Path

import minildm

PKG = Path(minildm.__file__).resolve().parent


def floors() -> dict[str, int]:
    """module → floor index (0 = the first group of the map), read from the package docstring's table."""
    floor, out = -1, {}
    for line in minildm.__doc__.splitlines():
        if re.match(r"^\*[^*]+\*$", line.strip()):
            floor += 1
        m = re.match(r"^``(\w+)``\s", line)
        if m:
            out[m.group(1)] = floor
    return out


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported minildm module, imported inside a function?) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f) if n is not f}
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 and not mod:  # from . import a, b
                names = [a.name for a in node.names]
            elif node.level == 1:
                names = [mod.split(".")[0]]
            elif mod.startswith("minildm."):
                names = [mod.split(".")[1]]
            elif mod == "minildm":
                names = [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("minildm.")]
        out += [(n, id(node) in nested) for n in names]
    return out


MODULES = sorted(p.stem for p in PKG.glob("*.py") if p.stem != "__init__")


def test_every_module_is_on_the_map_and_the_map_names_only_modules():
    mapped = floors()
    assert sorted(mapped) == MODULES


def test_imports_run_one_way_and_none_hides_in_a_function():
    floor = floors()
    upward, hidden = [], []
    for name in MODULES:
        for dep, in_function in imports(PKG / f"{name}.py"):
            if dep not in floor:
                continue  # e.g. "weights", a data folder
            if floor[dep] > floor[name]:
                upward.append(f"{name} (floor {floor[name]}) imports {dep} (floor {floor[dep]})")
            if in_function:
                hidden.append(f"{name} imports {dep} inside a function")
    assert upward == [], upward
    assert hidden == [], hidden


def test_no_import_cycle():
    graph = {name: {d for d, _ in imports(PKG / f"{name}.py") if d in MODULES and d != name} for name in MODULES}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join(path + [node, dep])}"
            if dep not in state:
                visit(dep, path + [node])
        state[node] = 2

    for name in MODULES:
        if name not in state:
            visit(name, [])


def test_the_checker_sees_an_upward_and_a_hidden_import(tmp_path):
    """The checks above would catch a violation: an import inside a function, written the ways the package does."""
    src = tmp_path / "mod.py"
    src.write_text("from . import schedule\nfrom .config import get_mode\n\ndef f():\n    from .recipes import train\n"
                   "    import minildm.presets\n")
    assert imports(src) == [("schedule", False), ("config", False), ("recipes", True), ("presets", True)]
