"""Shared test fixtures: the research data folder and a way to run the CLI like a user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared research data (REENG_DATA_DIR); tests that need it skip without it."""
    value = os.environ.get("REENG_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("REENG_DATA_DIR is not set to the shared research data")
    return Path(value)


@pytest.fixture(scope="session")
def jiang_dir(data_dir: Path) -> Path:
    path = data_dir / "jiang2024-cv-reengineering"
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


def run_reeng(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              unset: tuple[str, ...] = (), timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m reeng ARGS`` in a subprocess, as a user would, with this checkout first on the path.

    ``unset`` drops variables of the calling environment (tokens, say) before ``env`` is applied.
    """
    full_env = {**{k: v for k, v in os.environ.items() if k not in unset}, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "reeng", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in this process (fast, for many calls): exit code, stdout, stderr."""
    from reeng.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def reeng():
    """The CLI runner as a fixture."""
    return run_reeng


@pytest.fixture
def without_local_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A user's machine without the local data: no archive, no study labels (as offline, where the CSV cannot be
    downloaded), an empty cache; the per-process memos of the archive's models are cleared before and after."""
    from taxonomy import annotations, defect_filter, labelers, semantic

    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("REENG_DATA_DIR", str(empty))
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "no-data-cache"))
    monkeypatch.setattr(labelers, "study_labels", lambda: None)
    memoised = (annotations._default_text_models, defect_filter.default_reengineering_filter,
                defect_filter.default_defect_filter, semantic.default_space)  # what other tests of this process loaded with the archive
    for memo in memoised:
        memo.cache_clear()
    yield
    for memo in memoised:
        memo.cache_clear()  # and nothing of the archive-less run reaches the tests after it
