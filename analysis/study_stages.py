"""The analysis layer's stages of ``reeng study``: the report, then the dataset release.

They read what earlier stages left in ``ctx.artifacts`` (the gold defect table, lint findings,
rater agreement, and when those stages ran: the classifier's gold comparison and machine
labels, the reproduction results, the store) and write one ``report/`` and one ``release/``
folder into the study output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from reeng.errors import ReengError
from reeng.study import StudyContext

REPORT_INPUTS = ("lint", "agreement", "gold_eval", "reproduction", "reuse")


def _defects(ctx: StudyContext, stage: str) -> Path:
    """The gold stage's defect table, which both stages start from."""
    if "defects" not in ctx.artifacts:
        raise ReengError(f"the {stage} stage needs the defect table of the gold stage: run it with --stage gold")
    return ctx.artifacts["defects"]


def same_threads(human: Path, machine: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The human and machine defect tables restricted to the threads both label."""
    from analysis.tables import thread_keys
    from reeng.tables import read_table

    a, b = read_table(human), read_table(machine)
    keys_a, keys_b = thread_keys(a["issue_url"]), thread_keys(b["issue_url"])
    shared = set(keys_a) & set(keys_b)
    a, b = a[keys_a.isin(shared)].copy(), b[keys_b.isin(shared)].copy()
    a.attrs["source"], b.attrs["source"] = f"{human.name} (threads also machine-labeled)", f"{machine.name} (same threads)"
    return a, b


def analysis_stage(ctx: StudyContext) -> dict[str, Any]:
    """Tables, statistics, figures and the report for the study's defects.

    With machine labels (the classify stage ran), ``analysis.compare`` chooses the comparison:
    ``auto`` (default) compares human and machine labels on the threads both label (paired),
    and only when there are none the machine-labeled corpus with the study, labeled "corpus vs
    study"; ``paired`` and ``corpus_vs_study`` force one; ``none`` leaves it out.
    """
    from analysis.analyze import analyze

    cfg = ctx.section("analysis")
    gold = _defects(ctx, "analysis")
    machine = ctx.artifacts.get("machine_defects")
    mode = str(cfg.get("compare") or "auto")
    if mode not in ("auto", "paired", "corpus_vs_study", "none"):
        raise ReengError(f"analysis.compare: {mode!r} is none of auto, paired, corpus_vs_study, none")
    formats = tuple(cfg.get("formats") or ("png",))
    if formats[0] != "png":
        raise ReengError("analysis.formats: png first (the report embeds it), then pdf or svg")
    base, compare, kind, labels = None, None, "independent", ("human", "machine")
    if machine is not None and mode != "none":
        shared = same_threads(gold, machine) if mode in ("auto", "paired") else None
        if shared is not None and len(shared[0]):
            (base, compare), kind = shared, "paired"
        elif mode == "paired":
            raise ReengError("analysis.compare: paired, but no thread is labeled by both humans and the classifier")
        else:
            compare, kind, labels = machine, "corpus_vs_study", ("study (human)", "corpus (machine)")
    result = analyze(
        gold,  # the study's own numbers stay on all of its defects; only the comparison is paired
        ctx.out / "report",
        compare=compare,
        compare_base=base,
        labels=labels,
        comparison_kind=kind,
        extras={key: ctx.artifacts.get(key) for key in REPORT_INPUTS},
        title=cfg.get("title") or f"Study {ctx.config.get('name', '')}: defect analysis".replace("  ", " "),
        command="reeng study",
        formats=formats,
        relative_to=ctx.out,
    )
    ctx.artifacts["report"] = result.out / "report.html"
    ctx.artifacts["tables"] = result.out / "tables.json"
    lines = [f"{c['statement']}: {c['numerator']}/{c['denominator']} = {c['percent']}%"
             for c in result.tables.claims.values() if c.get("available")]
    if compare is not None:
        lines.append(f"{labels[0]} vs {labels[1]} comparison included ({kind.replace('_', ' ')})")
    lines.append(f"report: {ctx.artifacts['report'].name} with {len(result.figures)} figures")
    return {"figures": len(result.figures), "claims": {k: c.get("percent") for k, c in result.tables.claims.items()},
            "comparison": kind if compare is not None else None, "lines": lines}


def release_stage(ctx: StudyContext) -> dict[str, Any]:
    """A dataset release of the study's labels (and the store's threads and predictions when there is a store)."""
    from analysis.release import ReleaseOptions, write_release
    from analysis.report import read_extra

    cfg = ctx.section("release")
    options = ReleaseOptions(salt_file=ctx.path(cfg.get("salt_file")), keep_identities=bool(cfg.get("keep_identities")))
    for key in ("title", "version", "license"):
        if cfg.get(key):
            setattr(options, key, str(cfg[key]))
    if cfg.get("authors"):
        options.authors = tuple(cfg["authors"])
    options.relative_to = ctx.out
    if ctx.artifacts.get("gold_eval"):
        options.machine_evaluation = read_extra("gold_eval", ctx.artifacts["gold_eval"]).document
    tables: list[Path | pd.DataFrame] = [_defects(ctx, "release")]
    store = ctx.artifacts.get("store")
    include_machine = bool(cfg.get("include_machine_defects"))
    if include_machine and store is not None:
        # From the stored predictions: model provenance and a probability per label, filtered to defects.
        from analysis.store_defects import store_machine_defects

        machine = store_machine_defects(store)
        machine.attrs["source"] = "the store's predictions"
        tables.append(machine)
    elif include_machine and ctx.artifacts.get("machine_defects"):
        tables.append(ctx.artifacts["machine_defects"])
    summary = write_release(ctx.out / "release", store=store, defects=tables, options=options,
                            include_predictions=False)
    ctx.artifacts["release"] = summary.out
    lines = [", ".join(f"{n}: {rows} rows" for n, rows in summary.rows.items())]
    if summary.salt_origin:
        lines.append(f"pseudonym salt {summary.salt_origin}")
    return {"rows": summary.rows, "lines": lines}
