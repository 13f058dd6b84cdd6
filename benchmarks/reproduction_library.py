"""Benchmark: wall time of the whole case library on this machine (goal: CPU library ≤ 5 min).

Run: PYTHONPATH=. python benchmarks/reproduction_library.py [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

from analysis.reproduction.runner import discover, run_cases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    started = time.perf_counter()
    entries = discover()
    discovered = time.perf_counter() - started
    report = run_cases(entries, device=args.device, progress=False)
    total = time.perf_counter() - started
    for row in sorted(report["results"], key=lambda r: -r["seconds"]):
        print(f"{row['seconds']:7.2f}s  {row['verdict']:<15} {row['case']}")
    counts: dict[str, int] = {}
    for row in report["results"]:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    print(f"discovery {discovered:.2f}s; {len(entries)} cases on {report['run']['device']} in {total:.2f}s total: "
          + ", ".join(f"{v} {n}" for v, n in counts.items()))


if __name__ == "__main__":
    main()
