"""The analysis layer's stages of ``reeng study``: the report, then the dataset release.

They read what earlier stages left in ``ctx.artifacts`` (the gold defect table, lint findings,
rater agreement, and when those stages ran: the classifier's gold comparison and machine
labels, the reproduction results, the store) and write one ``report/`` and one ``release/``
folder into the study output.
"""

from __future__ import annotations

from typing import Any

from pathlib import Path

from reeng.errors import ReengError
from reeng.study import StudyContext

REPORT_INPUTS = ("lint", "agreement", "gold_eval", "reproduction", "reuse")


def _defects(ctx: StudyContext, stage: str) -> Path:
    """The gold stage's defect table, which both stages start from."""
    if "defects" not in ctx.artifacts:
        raise ReengError(f"the {stage} stage needs the defect table of the gold stage: run it with --stage gold")
    return ctx.artifacts["defects"]


def analysis_stage(ctx: StudyContext) -> dict[str, Any]:
    """Tables, statistics, figures and the report for the study's defects (vs machine labels when present)."""
    from analysis.analyze import analyze

    cfg = ctx.section("analysis")
    machine = ctx.artifacts.get("machine_defects")
    result = analyze(
        _defects(ctx, "analysis"),
        ctx.out / "report",
        compare=machine,
        labels=("human", "machine"),
        extras={key: ctx.artifacts.get(key) for key in REPORT_INPUTS},
        title=cfg.get("title") or f"Study {ctx.config.get('name', '')}: defect analysis".replace("  ", " "),
        command="reeng study",
        relative_to=ctx.out,
    )
    ctx.artifacts["report"] = result.out / "report.html"
    ctx.artifacts["tables"] = result.out / "tables.json"
    lines = [f"{c['statement']}: {c['numerator']}/{c['denominator']} = {c['percent']}%"
             for c in result.tables.claims.values() if c.get("available")]
    if machine is not None:
        lines.append("human vs machine comparison included")
    lines.append(f"report: {ctx.artifacts['report'].name} with {len(result.figures)} figures")
    return {"figures": len(result.figures), "claims": {k: c.get("percent") for k, c in result.tables.claims.items()},
            "lines": lines}


def release_stage(ctx: StudyContext) -> dict[str, Any]:
    """A dataset release of the study's labels (and the store's threads and predictions when there is a store)."""
    from analysis.release import ReleaseOptions, write_release

    cfg = ctx.section("release")
    options = ReleaseOptions(salt_file=ctx.path(cfg.get("salt_file")), keep_identities=bool(cfg.get("keep_identities")))
    for key in ("title", "version", "license"):
        if cfg.get(key):
            setattr(options, key, str(cfg[key]))
    if cfg.get("authors"):
        options.authors = tuple(cfg["authors"])
    tables = [_defects(ctx, "release")] + ([ctx.artifacts["machine_defects"]] if cfg.get("include_machine_defects") and ctx.artifacts.get("machine_defects") else [])
    summary = write_release(ctx.out / "release", store=ctx.artifacts.get("store"), defects=tables, options=options)
    ctx.artifacts["release"] = summary.out
    lines = [", ".join(f"{n}: {rows} rows" for n, rows in summary.rows.items())]
    if summary.salt_origin:
        lines.append(f"pseudonym salt {summary.salt_origin}")
    return {"rows": summary.rows, "lines": lines}
