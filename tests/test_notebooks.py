"""Every notebook in notebooks/ runs top to bottom, offline, on the shared data.

Each one executes with nbclient in the venv's ``python3`` kernel, in its own empty working
folder, with this checkout first on the kernel's import path; any cell error fails the test.
New notebooks are picked up automatically.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert {"reproduce_study_figures.ipynb", "mine_classify_analyse.ipynb"} <= names


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(notebook: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("REENG_DATA_DIR", str(data_dir))
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(notebook, as_version=4)
    work = tmp_path / "cwd"
    work.mkdir()
    # CellExecutionError (with the failing cell's traceback) fails the test.
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
