"""The benchmark scripts are not run by the tests (they print speed and quality figures, minutes each), but
every one must at least compile and say what it measures: a broken script is found here, not by the
next person who measures."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_benchmark_script_compiles_and_documents_itself(script: Path) -> None:
    tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))  # a SyntaxError fails the test
    compile(tree, str(script), "exec")
    assert (ast.get_docstring(tree) or "").strip(), f"{script.name} has no docstring saying what it measures"


def test_there_are_benchmarks() -> None:
    assert len(SCRIPTS) >= 10
