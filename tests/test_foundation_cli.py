"""The CLI wiring: help lists every layer's commands without importing torch or spaCy."""

from __future__ import annotations

import json
import subprocess
import sys

from reeng.cli import COMMANDS
from tests.conftest import ROOT


def test_help_lists_commands_and_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from reeng.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'spacy', 'sklearn', 'matplotlib', 'pandas') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in result.stdout or result.stdout.rstrip().endswith("HEAVY=")
    for name in COMMANDS:
        assert name in result.stdout


def test_every_wired_command_resolves(reeng):
    # --help of each command imports its module: a wiring typo fails here, not in a user's hands.
    for name in COMMANDS:
        result = reeng(name, "--help")
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_study_runs_the_foundation_stages(reeng, data_dir, tmp_path):
    out = tmp_path / "study"
    result = reeng("study", "--out", str(out), "--stage", "gold", "--stage", "lint", "--stage", "agreement",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"study outputs: {out}" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gold"]["defects"] == 348
    assert summary["gold"]["non_reengineering"] == 93
    assert (out / "gold" / "defects.parquet").is_file()
    assert json.loads((out / "agreement.json").read_text())["dimensions"]["manifestation"]["n"] > 100
