"""One analysis run: a defect table in, tables, statistics, figures and a report out.

Shared by ``reeng analyze``, the study's analysis stage, the notebooks and the benchmark, so
all four produce the same files. Everything is written into a staging folder and moved into
place at the end: an error leaves the previous output untouched and nothing half-written.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.compare import KINDS, compare_tables
from analysis.report import EXTRAS, build_context, provenance, read_extra, render
from analysis.stats import ChiSquare, adjust, clustered_chi_square, clustered_share_intervals
from analysis.tables import Defects, Tables, compute_tables, load_defects, prepare_defects
from reeng.errors import ReengError
from reeng.outputs import staged_dir

DefectInput = Path | str | Defects | pd.DataFrame


@dataclass
class AnalysisResult:
    """What a run produced, for callers that go on (the study summary, notebooks)."""

    out: Path
    tables: Tables
    tests: dict[str, ChiSquare]
    comparison: dict[str, Any] | None
    figures: dict[str, list[Path]]
    ppi: dict[str, Any] | None = None


def write_tables(tables: Tables, tests: dict[str, ChiSquare], shares: dict[str, pd.DataFrame], out: Path) -> None:
    """``tables.json``, ``stats.json`` and CSVs under ``tables/``: counts, row shares with Wilson intervals,
    marginals (``shares``: :func:`share_table` per dimension), claims."""
    (out / "tables.json").write_text(json.dumps(tables.to_json(), indent=2), encoding="utf-8")
    stats = {name: test.to_dict() for name, test in tests.items()}
    (out / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    csv_dir = out / "tables"
    csv_dir.mkdir()
    for name, table in tables.cross.items():
        if table.counts is not None:
            table.counts.to_csv(csv_dir / f"{name}.csv")
            table.row_share_intervals().to_csv(csv_dir / f"{name}_row_shares.csv", index=False)
    for dim_id, share in shares.items():
        share.rename_axis(dim_id).to_csv(csv_dir / f"marginal_{dim_id}.csv")
    pd.DataFrame.from_dict(tables.claims, orient="index").rename_axis("claim").to_csv(csv_dir / "claims.csv")


def share_table(tables: Tables, dim_id: str) -> pd.DataFrame:
    """A marginal's counts and shares with Wilson intervals and cluster-bootstrap intervals (by repository, by issue)."""
    shares = tables.marginals[dim_id].shares()
    return shares.join(clustered_share_intervals(tables.defects.frame, dim_id, list(shares.index)))


def as_defects(value: DefectInput, source: str, taxonomy=None) -> Defects:
    """A defect table from a path, a DataFrame or an already validated :class:`Defects`."""
    if isinstance(value, Defects):
        return value
    if isinstance(value, pd.DataFrame):
        return prepare_defects(value, value.attrs.get("source", source), taxonomy)
    return load_defects(value, taxonomy)


def cluster_tests(tables: Tables) -> dict[str, ChiSquare]:
    """Every cross-table's test, cluster-aware, with Holm and BH adjustment across the family."""
    frame = tables.defects.frame
    tests = {name: clustered_chi_square(frame, t.rows, t.columns, t.counts)
             for name, t in tables.cross.items() if t.counts is not None}
    primary = {name: t.p_rao_scott if t.p_rao_scott is not None else t.p_monte_carlo for name, t in tests.items()}
    for name, (holm, bh) in adjust(primary).items():
        tests[name].p_holm, tests[name].p_bh = holm, bh
    return tests


FIGURE_FORMATS = ("png", "pdf", "svg")  # png first: the report embeds it


def check_labels(labels: str | tuple[str, ...] | list[str]) -> tuple[str, str]:
    """The names of a comparison's two sides (a str: separated by a comma), or one clear error."""
    names = labels.split(",") if isinstance(labels, str) else list(labels) if isinstance(labels, (tuple, list)) else []
    names = [n.strip() if isinstance(n, str) else None for n in names]
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise ReengError("--labels: give two different names separated by a comma, e.g. human,machine")
    return names[0], names[1]


def check_formats(formats: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The figure formats (a str: separated by commas), png first, or one clear error."""
    items = formats.split(",") if isinstance(formats, str) else formats if isinstance(formats, (tuple, list)) else []
    fmts = tuple(f.strip().lower() for f in items if f.strip()) if all(isinstance(f, str) for f in items) else ()
    if not fmts or fmts[0] != "png" or set(fmts) - set(FIGURE_FORMATS):
        raise ReengError("--formats: a comma-separated list of png, pdf, svg starting with png")
    return fmts


def check_design(kind: str) -> str:
    """How the two sides of a comparison relate (``--design``), or one clear error."""
    if kind not in KINDS:
        raise ReengError(f"--design {kind!r}: one of {', '.join(KINDS)}")
    return kind


def analyze(
    defects: DefectInput,
    out: Path,
    *,
    compare: DefectInput | None = None,
    compare_base: DefectInput | None = None,
    labels: tuple[str, str] = ("human", "machine"),
    comparison_kind: str = "independent",
    human: DefectInput | None = None,
    extras: dict[str, Path | None] | None = None,
    title: str = "Defect analysis",
    command: str | None = None,
    formats: tuple[str, ...] = ("png",),
    workers: int | None = None,
    relative_to: Path | None = None,
) -> AnalysisResult:
    """Count, test, draw and report ``defects`` into ``out`` (optionally against ``compare``).

    The comparison sets ``compare`` against ``defects`` themselves, or against ``compare_base``
    when given: a paired comparison uses the human labels of the threads the machine also
    labeled, while the analysis itself stays on all of ``defects``.

    ``extras`` maps the optional report inputs (``lint``, ``agreement``, ``gold_eval``,
    ``reproduction``) to JSON files; absent ones become "not available" sections. Input paths
    under ``relative_to`` are shown relative to it (a study names files inside its own folder).
    """
    from analysis.figures import FigureJobs  # matplotlib only when figures are drawn

    labels, formats, comparison_kind = check_labels(labels), check_formats(formats), check_design(comparison_kind)
    extras = extras or {}
    unknown = set(extras) - set(EXTRAS)
    if unknown:
        raise ValueError(f"unknown report inputs: {', '.join(sorted(unknown))}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReengError(f"--out {out}: exists and is not a folder")
    main = as_defects(defects, "defects")
    other = None if compare is None else as_defects(compare, "compare", main.taxonomy)
    base = None if compare_base is None else as_defects(compare_base, "compare base", main.taxonomy)
    if isinstance(human, (str, Path)):  # a CSV in the gold or defect-table format, or "store" (reeng analyze --human)
        from analysis.store_defects import human_defects

        human = human_defects(human)
    gold = None if human is None else as_defects(human, "human labels", main.taxonomy)
    tables = compute_tables(main)
    comparison = None
    if other is not None:
        comparison = compare_tables(tables if base is None else compute_tables(base), compute_tables(other), *labels,
                                    kind=comparison_kind)
    ppi = None
    if gold is not None:
        from analysis.ppi import prediction_powered

        ppi = prediction_powered(main, gold)
    inputs: dict[str, Path | None] = {"defects": Path(main.source)}
    if other is not None:
        inputs[f"compare ({labels[1]})"] = Path(other.source)
    if gold is not None:
        inputs["human labels"] = Path(gold.source)
    inputs |= {key: path for key, path in extras.items()}
    prov = provenance(inputs, command or " ".join(sys.argv), f"{main.taxonomy.id} {main.taxonomy.version}", relative_to)
    with staged_dir(out, owns=("compare.json", "ppi.json")) as staging, \
            FigureJobs(tables.cross, tables.marginals, main.taxonomy, staging / "figures", formats, workers) as drawing:
        # the figures need only the counts: they are drawn while the tests and intervals are computed
        tests = cluster_tests(tables)
        shares = {d: share_table(tables, d) for d in tables.marginals}
        write_tables(tables, tests, shares, staging)
        if comparison is not None:
            (staging / "compare.json").write_text(json.dumps(comparison, indent=2), encoding="utf-8")
        if ppi is not None:
            (staging / "ppi.json").write_text(json.dumps(ppi, indent=2), encoding="utf-8")
        report_extras = {key: read_extra(key, extras.get(key)) for key in EXTRAS}
        figures = drawing.result()
        context = build_context(tables, tests, figures, staging, prov, report_extras, comparison, title, shares, ppi)
        render(context, staging)
        (staging / "provenance.json").write_text(json.dumps(prov, indent=2), encoding="utf-8")
    figures = {name: [out / p.relative_to(staging) for p in paths] for name, paths in figures.items()}
    return AnalysisResult(out, tables, tests, comparison, figures, ppi)
