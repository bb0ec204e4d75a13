"""Each committed notebook is generated from its reviewable py:percent source, and carries real outputs."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_in_sync_with_sources():
    r = subprocess.run([sys.executable, "scripts/notebooks.py", "check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_figures_and_no_errors(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    outs = [o for c in code for o in c.get("outputs", [])]
    assert all(c.get("execution_count") for c in code), "some cells were not executed"
    assert not [o for o in outs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outs), "no figures"
    assert path.stat().st_size < 2e6, (f"{path.name} is {path.stat().st_size / 1e6:.2f} MB; keep notebooks under 2 MB:"
                                       " fewer or smaller figures, or a smaller dpi")
    text = "".join("".join(o.get("text", "")) for o in outs)
    assert "SMOKE MODE" not in text, "committed outputs must come from a real (cpu/gpu) run, not smoke mode"


def test_cli_notebook_unknown_name_is_one_line(capsys):
    from minildm.__main__ import main
    assert main(["notebook", "99"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no notebook matches '99'")
    assert err.count("\n") == 1
