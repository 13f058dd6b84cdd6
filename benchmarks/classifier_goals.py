"""The classifier's quality goals (issue 9) against the study's gold labels, one line per dimension.

Usage:
  REENG_DATA_DIR=... python benchmarks/classifier_goals.py                      # the development set, offline
  REENG_DATA_DIR=... GITHUB_TOKEN=... python benchmarks/classifier_goals.py --store gold.sqlite --fetch [--cv]

The goals are set on gold threads *outside* the 25-issue development set, read by the built-in
labeler with no training on gold, at coverage >= 0.9: its best guess answers every thread
(coverage 1.00), so the best guess's Cohen's kappa is the figure. Without ``--store`` the script
builds a temporary store of the gold issues found in the local Denchmark archive (the development
set: the only gold threads readable offline). ``--fetch`` first runs ``reeng gold fetch-threads``
into ``--store`` (every gold issue, through the miner; needs GITHUB_TOKEN, or ``--api-url`` of a
compatible server), so the held-out split, the goals' own test set, is scored too. "Trained on
gold, with leave-one-repository-out, it does better", the issue says: ``--adapt`` adds the
built-in labeler trained also on the gold labels of the other repositories (``gold-eval --adapt``:
the text models trained once per repository, about 40 s each), ``--cv`` models trained on the
gold labels alone, both leave-one-repository-out over every gold defect in the store.

For each split and dimension: n, the best guess's kappa with its 95 % bootstrap interval (issues
resampled), the goal, and a verdict that reads the interval: ``met`` (the whole interval at or
above the goal), ``not met`` (the whole interval below), otherwise where the point estimate lies
and that the interval holds the goal.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# Issue 9's goals: Cohen's kappa of the default labeler on held-out gold threads, coverage >= 0.9.
GOALS = {"impact": 0.60, "manifestation": 0.45, "stage": 0.45, "root_cause": 0.30, "code_error": 0.30, "reporter": 0.30}


def verdict(kappa: float | None, ci: list[float] | None, goal: float) -> str:
    """Met, not met, or undecided, read from the interval (a point estimate alone on a few dozen rows says little)."""
    if kappa is None:
        return "no score"
    if ci is None:
        return "above the goal (no interval)" if kappa >= goal else "below the goal (no interval)"
    if ci[0] >= goal:
        return "met"
    if ci[1] < goal:
        return "not met"
    return f"{'above' if kappa >= goal else 'below'} the goal; the interval holds it"


def development_store(folder: Path) -> Path:
    """A store of the gold issues whose threads are in the local Denchmark archive (the development set)."""
    from miner.denchmark import read_archive
    from miner.store import open_store, save_thread
    from reeng.datasets import locate
    from taxonomy.gold import import_defects

    gold = import_defects(locate("jiang2024-defects"))
    keys = {(f"{o}/{r}".lower(), int(n)) for o, r, n in gold[["owner", "repo", "number"]].itertuples(index=False)}
    path = folder / "development.sqlite"
    conn = open_store(path)
    threads, _ = read_archive(locate("denchmark-bugreports"), repos=sorted({k[0] for k in keys}))
    for thread in threads:
        if (thread["repo"].lower(), thread["number"]) in keys:
            save_thread(conn, thread, source="denchmark")
    conn.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, help="a store holding gold threads (default: a temporary store of the development set)")
    parser.add_argument("--fetch", action="store_true", help="first fetch every gold issue's thread into --store (GITHUB_TOKEN)")
    parser.add_argument("--api-url", default="https://api.github.com", help="GitHub API or a compatible server (with --fetch)")
    parser.add_argument("--adapt", action="store_true", help="also the built-in labeler trained on gold as well, leave-one-repository-out")
    parser.add_argument("--cv", action="store_true", help="also models trained on gold alone, leave-one-repository-out")
    args = parser.parse_args()
    if args.fetch and args.store is None:
        parser.error("--fetch needs --store: the fetched threads are kept there")

    from miner.store import open_store
    from reeng.cli import main as reeng
    from reeng.datasets import locate
    from taxonomy.classify import BUILTIN_VERSION, GOLD_SPLIT_NAMES, gold_eval
    from taxonomy.evaluation import format_score

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or development_store(Path(tmp))
        if args.fetch:
            try:
                reeng(["gold", "fetch-threads", "--store", str(store), "--api-url", args.api_url])
            except SystemExit as exc:  # the CLI's exit: go on only when it succeeded
                if exc.code:
                    sys.exit(exc.code)
        conn = open_store(store, create=False)
        result = gold_eval(conn, locate("jiang2024-defects"), cv=args.cv)
        adapted = gold_eval(conn, locate("jiang2024-defects"), cv=False, adapt=True) if args.adapt else None
        conn.close()
    if not result["defects"]:
        sys.exit(f"{store}: {result['note']}: nothing to score (`--fetch` brings the gold threads in)")
    print(f"builtin@{BUILTIN_VERSION} against the study's gold labels: {result['defects']} defects in {result['threads']} "
          f"threads of {store if args.store else 'the development set'} ({time.perf_counter() - started:.0f} s)")
    if result["splits"] is None:
        sys.exit("no readable local Denchmark archive (REENG_DATA_DIR): the development set and the held-out threads "
                 "cannot be told apart")
    for name, split in result["splits"].items():
        print(f"\n{GOLD_SPLIT_NAMES[name]}: {split['defects']} defects in {split['issues']} issues")
        if not split["defects"]:
            print("  nothing to score" + (": `--store S --fetch` with a GitHub token brings them in" if name == "held_out" else ""))
            continue
        print(f"  {'dimension':<14} {'n':>3}  {'best guess kappa [95 % CI]':<26} {'goal':>5}  verdict"
              + ("; trained on gold too (by repository)" if adapted else ""))
        for dim, goal in GOALS.items():
            best = split["dimensions"].get(dim, {}).get("builtin_best_guess", {})
            line = (f"  {dim:<14} {best.get('n', 0):>3}  {format_score(best.get('kappa'), best.get('kappa_ci')):<26} "
                    f"{goal:>5.2f}  {verdict(best.get('kappa'), best.get('kappa_ci'), goal)}")
            if adapted:
                other = adapted["splits"][name]["dimensions"].get(dim, {}).get("builtin_best_guess", {})
                line += f"; {format_score(other.get('kappa'), other.get('kappa_ci'))}"
            print(line)
    if args.cv:
        print(f"\ntrained on gold, leave-one-repository-out over all {result['defects']} gold defects in the store "
              f"({result['repositories']} repositories):")
        for dim in GOALS:
            model = result["systems"].get(dim, {}).get("gold_cv_by_repository", {})
            builtin = result["systems"].get(dim, {}).get("builtin_best_guess", {})
            shown = model.get("skipped") or f"kappa {format_score(model.get('kappa'), model.get('kappa_ci'))}"
            print(f"  {dim:<14} {shown}   (built-in best guess on the same defects: "
                  f"{format_score(builtin.get('kappa'), builtin.get('kappa_ci'))})")


if __name__ == "__main__":
    main()
