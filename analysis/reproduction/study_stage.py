"""The ``reproduce`` stage of ``reeng study``: run the case library into the study folder."""

from __future__ import annotations

import json
from typing import Any

from reeng.study import StudyContext


def reproduce_stage(ctx: StudyContext) -> dict[str, Any]:
    """Run the library (config section ``reproduce``: select, device, dtype, repeat, cases) and
    leave ``reproduction/results.json`` for the report stage. Without the ``reproduce`` extra
    (torch) the stage is skipped with a note, so the rest of a study runs on a light install."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        from analysis.reproduce_cli import EXTRA_HINT

        return {"skipped": "torch not installed",
                "lines": [f"skipped: the case library needs the 'reproduce' extra ({EXTRA_HINT})"]}
    from analysis.reproduction.runner import discover, parse_dtypes, parse_select, run_cases, select

    cfg = ctx.section("reproduce")
    extra = [p for p in (ctx.path(v) for v in cfg.get("cases") or []) if p is not None]
    entries = select(discover(extra), list(cfg.get("names") or []), parse_select(cfg.get("select")))
    out = ctx.out / "reproduction"
    out.mkdir()
    report = run_cases(entries, str(cfg.get("device") or "auto"), parse_dtypes(str(cfg.get("dtype") or "fp32")),
                       int(cfg.get("repeat") or 5), out, progress=False)
    path = out / "results.json"
    path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    ctx.artifacts["reproduction"] = path
    counts: dict[str, int] = {}
    for row in report["results"]:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    seconds = sum(r["seconds"] for r in report["results"])
    return {"cases": len(report["results"]), **counts,
            "lines": [f"{len(report['results'])} cases on {report['run']['device']} in {seconds:.1f}s: "
                      + ", ".join(f"{v} {n}" for v, n in counts.items())]}
