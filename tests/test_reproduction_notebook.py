"""The walkthrough notebook ships with cleared outputs and runs offline."""

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "reproduce_a_defect.ipynb"


def test_notebook_outputs_are_cleared():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


@pytest.mark.slow
def test_notebook_executes():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parents[1])}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c["cell_type"] == "code" for o in c["outputs"])
    assert "reproduced" in printed and "divergence introduced at: bn1" in printed
