"""Cold start of `reeng --help` (goal: <= 0.5 s), and proof that it imports no heavy library.

Run: python benchmarks/cli_cold_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "spacy", "sklearn", "matplotlib", "pandas", "github")


def time_command(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    baseline = time_command([sys.executable, "-c", "pass"], args.runs)
    commands = {"python -m reeng --help": [sys.executable, "-m", "reeng", "--help"]}
    script = shutil.which("reeng") or str(Path(sys.executable).with_name("reeng"))
    if Path(script).exists():
        commands["reeng --help"] = [script, "--help"]
    print(f"python startup alone: median {statistics.median(baseline):.3f} s over {args.runs} runs")
    for label, cmd in commands.items():
        times = time_command(cmd, args.runs)
        print(f"{label}: median {statistics.median(times):.3f} s, max {max(times):.3f} s (goal <= 0.5 s)")
    probe = ("import sys\nfrom reeng.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    print(f"heavy modules imported by --help: {out.stdout.strip().splitlines()[-1]}")


if __name__ == "__main__":
    main()
