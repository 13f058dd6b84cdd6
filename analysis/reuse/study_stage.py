"""The ``reuse`` stage of ``reeng study``: the model-reuse suite at a small setting, for the report.

Config section ``reuse`` (all optional): ``enabled`` (false skips the stage), ``setting``
(tiny | small | large), ``device`` (cpu | cuda | auto), ``seeds`` (a list; empty: the setting's)
and ``experiments`` (a subset of seam, inherit, decompose). It leaves ``reuse/reuse.json``
(``{"claims": [...], "runs": {...}}``) for the analysis report's side-by-side table.
"""

from __future__ import annotations

import json
from typing import Any

from analysis.reuse.suite import EXPERIMENTS, run_suite
from reeng.errors import ReengError
from reeng.study import StudyContext


def reuse_stage(ctx: StudyContext) -> dict[str, Any]:
    cfg = ctx.section("reuse")
    if cfg.get("enabled") is False:
        return {"skipped": True, "lines": ["skipped (reuse.enabled is false)"]}
    seeds = cfg.get("seeds")
    if seeds not in (None, []) and not (isinstance(seeds, list) and all(isinstance(s, int) for s in seeds)):
        raise ReengError(f"reuse.seeds: a list of integers, not {seeds!r}")
    experiments = cfg.get("experiments") or list(EXPERIMENTS)
    if not isinstance(experiments, list):
        raise ReengError(f"reuse.experiments: a list (of {', '.join(EXPERIMENTS)}), not {experiments!r}")
    result = run_suite(str(cfg.get("setting") or "small"), {"seeds": seeds} if seeds else None,
                       str(cfg.get("device") or "cpu"), tuple(experiments))
    out = ctx.out / "reuse"
    out.mkdir()
    path = out / "reuse.json"
    path.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    ctx.artifacts["reuse"] = path
    holds = [c["holds"] for c in result["claims"]]
    return {"claims": len(holds), "holds": holds.count(True), "fails": holds.count(False),
            "untestable": holds.count(None), "seconds_suite": round(result["runs"]["seconds"], 1),
            "lines": [f"{holds.count(True)} of {len(holds)} paper claims hold here, {holds.count(False)} do not, "
                      f"{holds.count(None)} cannot be tested ({result['runs']['seconds']:.0f} s)"]}
