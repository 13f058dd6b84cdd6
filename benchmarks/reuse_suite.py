"""The model-reuse suite's cost, and its GPU path.

CPU (the goal: the default suite, all three experiments, 1 seed, in <= 10 min on 2 cores):

    OMP_NUM_THREADS=2 PYTHONPATH=. python benchmarks/reuse_suite.py                # setting "small"

GPU (the larger protocol: wider models, more epochs, 3 seeds, all 90 inter-reuse pairs):

    PYTHONPATH=. python benchmarks/reuse_suite.py --setting large --device cuda --out reuse-large.json

It prints the wall and CPU time of the whole run and of each part side by side, then the
claims table, and writes the full result (``{"claims", "runs"}``) with ``--out``. Wall time on
a shared machine is inflated by other work; CPU time (user + system of this process) is the
figure to compare with the 2-core budget.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from analysis.reuse.suite import SETTINGS, format_claims, run_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", default="small", choices=list(SETTINGS))
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--seeds", help="comma-separated seeds (default: the setting's)")
    parser.add_argument("--out", type=Path, help="write the full JSON result here")
    args = parser.parse_args()
    override = {"seeds": [int(s) for s in args.seeds.split(",")]} if args.seeds else None
    started = time.perf_counter()
    result = run_suite(args.setting, override, args.device, progress=lambda text: print(f"  {text}", flush=True))
    wall = time.perf_counter() - started
    runs = result["runs"]
    print(f"\nsetting {args.setting}, device {runs['device']}, seeds {runs['settings']['seeds']}, "
          f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'part':<12} {'wall s':>8}")
    for part, seconds in runs["timings"].items():
        print(f"{part:<12} {seconds:>8.1f}")
    print(f"{'total':<12} {wall:>8.1f}   (CPU {runs['cpu_seconds']:.1f} s; goal for 'small': <= 600 s on 2 cores)\n")
    print(format_claims(result["claims"]))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nfull result: {args.out}")


if __name__ == "__main__":
    main()
