"""The example notebooks (examples/*.ipynb): stored without outputs, and each runs top to bottom
at ``BUDGET = "smoke"`` (seconds of training on tiny presets and generated data) with nbclient.

The runs need the ``notebook`` extra (which the ``test`` extra includes); without nbclient or
ipykernel they are skipped and say why.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds for one cell; the smoke budget of every notebook together is far less


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {EXAMPLES}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_committed_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4, f"{path.name}: not an nbformat 4 notebook"
    dirty = [i for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} hold outputs or execution counts; clear them "
                       "(Jupyter: Edit > Clear All Outputs, or `jupyter nbconvert --clear-output --inplace`)")
    first = nb["cells"][0]
    assert first["cell_type"] == "code" and "BUDGET" in "".join(first["source"]), \
        f"{path.name}: the first cell sets BUDGET"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_notebook_runs_at_the_smoke_budget(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed: pip install -e '.[notebook]'")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed: pip install -e '.[notebook]'")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed: pip install -e '.[notebook]'")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    monkeypatch.setenv("ATTNLAB_BUDGET", "smoke")  # the kernel inherits it; the first cell reads it
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # any cell's error fails the test (CellExecutionError names the cell)
    seconds = time.perf_counter() - start
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("<iframe srcdoc=" in h for h in html), f"{path.name} shows no explorer inline"
    print(f"{path.name}: {seconds:.1f} s at the smoke budget")
