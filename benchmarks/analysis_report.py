"""All figures and the report: from the gold data (goal <= 3 s) and from 100,000 synthetic rows (goal <= 30 s);
prediction-powered estimates of every share from 100,000 machine-labeled and 500 human-labeled defects (goal <= 10 s).

Times one full ``analyze`` run each (tables, statistics with Monte-Carlo p-values, every figure,
the HTML and Markdown report), after a warm-up run so imports and font caches are not counted.
The gold case needs REENG_DATA_DIR (or a download).

The gold case runs before and after side by side: the code of ``--baseline`` (a git revision,
by default the commit before the figure-speed work) and this tree, with the default formats
(PNG) and with PDFs requested. Each configuration is a long-lived process; the parent asks them
for one run in turn, so all of them see the same load on a shared machine.

Run: python benchmarks/analysis_report.py [--runs 5] [--rows 100000] [--human 500] [--baseline REV] [--gold-only]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "ffdaf3aa00f3e2f1099bf261b2bfa5f662879417"  # the tree before the figure-speed work (issue 10)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the figure workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _load() -> float:
    return os.getloadavg()[0]


def gold_defects():
    from analysis.tables import prepare_defects
    from reeng.datasets import locate
    from taxonomy.gold import import_defects

    source = locate("jiang2024-defects")
    return prepare_defects(import_defects(source), str(source))


def serve(formats: str | None) -> None:
    """Child mode: warm up, then one timed gold run per ``run`` line on stdin, answered ``wall cpu``."""
    from analysis.analyze import analyze

    gold = gold_defects()
    options = {} if formats is None else {"formats": tuple(formats.split(","))}
    with tempfile.TemporaryDirectory() as tmp:
        analyze(gold, Path(tmp) / "warm", command="benchmark", **options)  # imports, font cache, worker start
        print("ready", flush=True)
        for i, _ in enumerate(sys.stdin):
            start, cpu = time.perf_counter(), _cpu()
            analyze(gold, Path(tmp) / f"run{i}", command="benchmark", **options)
            print(f"{time.perf_counter() - start} {_cpu() - cpu}", flush=True)


def baseline_tree(rev: str, into: Path) -> Path:
    """The project's files at ``rev`` (``git archive``), for the "before" configuration."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "analysis", "taxonomy", "reeng", "miner"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def before_after(runs: int, baseline: str) -> None:
    """Median wall and CPU per configuration over ``runs`` interleaved runs, printed side by side."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            old = baseline_tree(baseline, Path(tmp))
        except (OSError, subprocess.CalledProcessError) as exc:  # no git, or a clone without that commit
            detail = exc.stderr.decode().strip() if isinstance(exc, subprocess.CalledProcessError) else exc
            print(f"baseline {baseline} unavailable ({detail}); only this tree is timed")
            old = None
        configs = ([(f"before ({baseline[:8]}, its default: PNG + PDF)", old, None)] if old else []) + [
            ("after, default formats (PNG)", ROOT, None), ("after, PNG + PDF requested", ROOT, "png,pdf")]
        procs = []
        for _, root, formats in configs:
            env = dict(os.environ, PYTHONPATH=str(root))
            cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", str(root)] + (["--formats", formats] if formats else [])
            procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env))
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit("a benchmark worker failed to start (is REENG_DATA_DIR set?)")
        times: list[list[tuple[float, float]]] = [[] for _ in configs]
        loads = []
        for _ in range(runs):
            for proc, got in zip(procs, times):  # one run each in turn: all configurations share the load
                loads.append(_load())
                proc.stdin.write("run\n")
                proc.stdin.flush()
                wall, cpu = map(float, proc.stdout.readline().split())
                got.append((wall, cpu))
        for proc in procs:
            proc.stdin.close()
            proc.wait()
    print(f"gold data (348 defects), {runs} interleaved runs per configuration, load average "
          f"{min(loads):.1f}-{max(loads):.1f} (goal <= 3 s wall)")
    print(f"  {'configuration':48s} {'wall median':>11s} {'wall best':>9s} {'CPU median':>10s}  vs before (wall, CPU)")
    first = None
    for (name, _, _), got in zip(configs, times):
        wall, cpu = statistics.median(w for w, _ in got), statistics.median(c for _, c in got)
        first = first or (wall, cpu)
        ratio = f"{wall / first[0]:.2f}x, {cpu / first[1]:.2f}x" if old else ""
        print(f"  {name:48s} {wall:10.2f}s {min(w for w, _ in got):8.2f}s {cpu:9.2f}s  {ratio}")


def timed(defects, runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds per run. CPU time does not depend on other load on the machine."""
    from analysis.analyze import analyze

    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            start, cpu = time.perf_counter(), _cpu()
            analyze(defects, Path(tmp) / f"run{i}", command="benchmark")
            walls.append(time.perf_counter() - start)
            cpus.append(_cpu() - cpu)
    return walls, cpus


def timed_ppi(machine, human, runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of :func:`analysis.ppi.prediction_powered` (every marginal, cell and claim)."""
    from analysis.ppi import prediction_powered

    walls, cpus = [], []
    for _ in range(runs):
        start, cpu = time.perf_counter(), _cpu()
        prediction_powered(machine, human)
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return walls, cpus


def report(name: str, measured: tuple[list[float], list[float]], goal: float) -> None:
    walls, cpus = measured
    median = statistics.median(walls)
    verdict = "meets" if median <= goal else "MISSES"
    print(f"{name}: wall median {median:.2f} s, best {min(walls):.2f} s; CPU median {statistics.median(cpus):.2f} s "
          f"over {len(walls)} runs (goal <= {goal:.0f} s wall: {verdict}; load average {_load():.1f})")


def synthetic_cases(rows: int, runs: int, n_human: int) -> None:
    """100,000 synthetic rows through ``analyze``, and PPI on them (this tree only)."""
    import pandas as pd

    from analysis.synthetic import synthetic_defects
    from analysis.tables import prepare_defects

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.parquet"
        synthetic_defects(rows, seed=1).to_parquet(path, index=False)
        start = time.perf_counter()
        big = prepare_defects(pd.read_parquet(path), str(path))
        print(f"synthetic table: {rows} rows loaded and validated in {time.perf_counter() - start:.2f} s")
        timed(big, 1)  # warm-up
        report(f"synthetic data ({rows} rows)", timed(big, runs), 30)
        # PPI: the synthetic rows as machine labels; a random subset, 20% relabeled, as the human labels.
        frame = big.frame.drop_duplicates("issue_url")
        human = frame.sample(min(n_human, len(frame)), random_state=2).copy()
        flip = human.sample(frac=0.2, random_state=3).index
        human.loc[flip, "stage"] = human["stage"].sample(frac=1, random_state=4).loc[flip].to_numpy()
        machine = prepare_defects(frame, "machine")
        report(f"PPI ({len(machine)} machine-labeled threads, {len(human)} human-labeled)",
               timed_ppi(machine, prepare_defects(human, "human"), runs), 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--human", type=int, default=500, help="Human-labeled defects for the PPI case.")
    parser.add_argument("--baseline", default=BASELINE, help="Git revision timed as 'before' in the gold case.")
    parser.add_argument("--gold-only", action="store_true", help="Skip the synthetic and PPI cases.")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # child mode: the tree to time
    parser.add_argument("--formats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(args.serve or ROOT))
    if args.serve:
        serve(args.formats)
        return
    print(f"machine: {os.cpu_count()} CPU cores; Python {sys.version.split()[0]}")
    try:
        gold_defects()
    except Exception as exc:  # noqa: BLE001 - the synthetic case still runs without the data
        print(f"gold data unavailable ({exc}); skipping the gold case")
    else:
        before_after(args.runs, args.baseline)
    if not args.gold_only:
        synthetic_cases(args.rows, args.runs, args.human)


if __name__ == "__main__":
    main()
