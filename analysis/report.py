"""The report: every table, figure and statistic of an analysis in one self-contained HTML file
(figures embedded as base64 PNG) and a Markdown twin that links the figure files.

The report is built from plain data (:func:`build_context`) and rendered by Jinja2 templates
shipped in ``analysis/templates``. Optional inputs (lint findings, rater agreement, the
classifier's comparison with human labels, reproduction results) are read defensively: a
missing or malformed file becomes an explicit "not available" line, never a half-written
report.
"""

from __future__ import annotations

import base64
import json
import platform
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from reeng import __version__
from reeng.datasets import sha256_file
from analysis.stats import ChiSquare
from analysis.tables import Tables

# Optional report inputs: key -> (title, the top-level key a valid file must hold).
EXTRAS: dict[str, tuple[str, str]] = {
    "lint": ("Data-quality findings (lint)", "findings"),
    "agreement": ("Rater agreement (Cohen's kappa)", "dimensions"),
    "gold_eval": ("Classifier vs human labels", "dimensions"),
    "reproduction": ("Reproduction results", "results"),
    "reuse": ("Model reuse: paper claims vs measured", "claims"),
}


@dataclass
class Extra:
    """One optional input: its data, or why it is not shown."""

    title: str
    path: str | None
    data: Any = None
    problem: str | None = None
    document: dict[str, Any] | None = None  # the whole JSON object ``data`` was taken from


def read_extra(key: str, path: Path | None) -> Extra:
    """Read an optional JSON input; problems are described, not raised."""
    title, top = EXTRAS[key]
    if path is None:
        return Extra(title, None, problem="not provided")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Extra(title, str(path), problem="file not found")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Extra(title, str(path), problem=f"not readable JSON ({type(exc).__name__})")
    if not isinstance(data, dict) or top not in data:
        return Extra(title, str(path), problem=f"no {top!r} entry")
    return Extra(title, str(path), data=data[top], document=data)


def provenance(inputs: dict[str, Path | None], command: str, taxonomy: str, relative_to: Path | None = None) -> dict[str, Any]:
    """What a reader needs to re-create the report: inputs with SHA-256, versions, command, time."""
    import matplotlib
    import pandas
    import scipy

    def shown(path: Path) -> str:
        if relative_to is not None and path.resolve().is_relative_to(relative_to.resolve()):
            return path.resolve().relative_to(relative_to.resolve()).as_posix()
        return str(path)

    files = [{"role": role, "path": shown(Path(p)), "sha256": sha256_file(Path(p)), "bytes": Path(p).stat().st_size}
             for role, p in inputs.items() if p is not None and Path(p).is_file()]
    return {
        "inputs": files,
        "tool": f"reeng {__version__}",
        "taxonomy": taxonomy,
        "command": command,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": f"Python {platform.python_version()}, pandas {pandas.__version__}, "
                       f"scipy {scipy.__version__}, matplotlib {matplotlib.__version__}",
    }


def _embed(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _name(tables: Tables, dim: str, cat: str) -> str:
    return tables.defects.taxonomy.dimension(dim).category(cat).name


def _text(value: Any) -> str:
    """A JSON value from another tool as short readable text (lists joined, mappings as ``key: value``)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return str(value)


def reproduction_rows(results: Any) -> list[dict[str, Any]]:
    """The reproduction results as table rows of plain text (never raw JSON, which overflows a page)."""
    rows = []
    for r in results if isinstance(results, list) else []:
        if not isinstance(r, dict):
            continue
        detail = r.get("detail") if isinstance(r.get("detail"), dict) else {}
        figures = r.get("figures")
        rows.append({
            "case": _text(r.get("case")), "issues": _text(r.get("issues")), "labels": _text(r.get("labels")),
            "verdict": _text(r.get("verdict")) or "unknown", "reason": _text(r.get("reason") or detail.get("reason")),
            "figures": len(figures) if isinstance(figures, (list, tuple, dict)) else "",
            "seconds": r.get("seconds"), "versions": _text(r.get("versions")),
        })
    return rows


# What each set of gold defects says about the scores measured on it (``gold_eval``'s ``splits``).
GOLD_SETS = {
    "development": ("Development set", "Gold issues whose threads are in the local Denchmark archive: the labeler "
                    "was developed and measured on these threads, so its scores there are optimistic"),
    "held_out": ("Held-out gold threads", "Gold issues outside the development set, never read while the labeler "
                 "was developed: the scores a new corpus can expect"),
    "all": ("All gold defects with a stored thread", "Which of them the labeler was developed on is not recorded "
            "(no local Denchmark archive when it was measured)"),
    # against the store's adjudicated labels (``reeng classify gold-eval --labels human``)
    "annotated": ("Threads the labeler was trained on", "Human-labeled threads among the project's own annotations, "
                  "which trained the built-in labeler's text models: its scores there are optimistic"),
    "unannotated": ("Threads new to the labeler", "Human-labeled threads the built-in labeler never trained on: "
                    "the scores a new corpus can expect"),
}
# What a gold_eval document scored against (its ``reference``), as the report names those labels.
REFERENCE_NAMES = {"gold": "gold defects", "human_labels": "adjudicated defects (the store's human labels)"}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _score_row(dim: str, at_threshold: Any, best_guess: Any) -> dict[str, Any]:
    """One dimension's scores: the labels at the threshold (what a store keeps) and the best guess."""
    t, b = _mapping(at_threshold), _mapping(best_guess)
    return {"dimension": dim, "n": t.get("n", b.get("n")), "coverage": t.get("coverage"), "kappa": t.get("kappa"),
            "kappa_ci": t.get("kappa_ci"), "kappa_abstain_wrong": t.get("kappa_abstain_wrong"),
            "kappa_abstain_wrong_ci": t.get("kappa_abstain_wrong_ci"), "macro_f1": t.get("macro_f1"),
            "macro_f1_ci": t.get("macro_f1_ci"), "best_kappa": b.get("kappa"), "best_kappa_ci": b.get("kappa_ci"),
            "best_coverage": b.get("coverage"), "best_macro_f1": b.get("macro_f1"), "best_macro_f1_ci": b.get("macro_f1_ci")}


def classifier_evaluation(document: Any) -> dict[str, Any] | None:
    """The classifier's comparison with human labels (a ``gold_eval`` JSON document, see
    ``docs/schemas.md``) as plain data for the report and the datasheet.

    Every score keeps its 95 % interval and its coverage: κ on answered rows alone overstates a
    labeler that abstains often. The gold defects are shown by set when the document has splits:
    the development set apart from held-out threads, and a missing held-out set is said. A
    document with ``dimensions`` only (another tool's, or an older one) gives what it holds.
    Returns None when there is no ``dimensions`` mapping.
    """
    document = _mapping(document)
    dims = _mapping(document.get("dimensions"))
    if not dims:
        return None
    systems, splits = _mapping(document.get("systems")), _mapping(document.get("splits"))
    sets = []
    for name, split in splits.items():
        split = _mapping(split)
        if not split.get("defects"):
            continue
        rows = [_score_row(d, _mapping(v).get("builtin"), _mapping(v).get("builtin_best_guess"))
                for d, v in _mapping(split.get("dimensions")).items()]
        sets.append({"name": name, **dict(zip(("title", "about"), GOLD_SETS.get(name, (name, "")))),
                     "defects": split.get("defects"), "issues": split.get("issues"), "rows": rows})
    if not sets:
        name = "all" if "splits" in document else None
        title, about = GOLD_SETS["all"] if name else ("Gold defects with a stored thread", "")
        sets.append({"name": name, "title": title, "about": about, "defects": document.get("defects"),
                     "issues": document.get("threads"),
                     "rows": [_score_row(d, v, _mapping(systems.get(d)).get("builtin_best_guess")) for d, v in dims.items()]})
    trained = [{"dimension": d, **{k: _mapping(s.get("gold_cv_by_repository")).get(k) for k in ("kappa", "kappa_ci", "n", "folds")}}
               for d, s in ((d, _mapping(systems.get(d))) for d in dims) if "gold_cv_by_repository" in s]
    reference = document.get("reference") if document.get("reference") in REFERENCE_NAMES else "gold"
    unseen = _mapping(splits.get("unannotated" if reference == "human_labels" else "held_out"))
    return {
        "reference": REFERENCE_NAMES[reference], "reference_kind": reference,
        "label_source": document.get("label_source"), "threshold": document.get("threshold"),
        "note": document.get("note"),
        "defects": document.get("defects"), "threads": document.get("threads"),
        "repositories": document.get("repositories"), "missing_threads": document.get("missing_threads"),
        "sets": sets, "trained": trained,
        "no_held_out": bool(unseen) and not unseen.get("defects"),
    }


FILTER_REASONS = {"issue_type": "not a defect (a feature request, question or documentation issue)",
                  "reengineering": "not a reengineering defect"}


def corpus_sentence(corpus: dict[str, Any] | None) -> str | None:
    """One sentence on how a machine-labeled corpus became the analysed table (``Defects.corpus``):
    threads stored, labeled, dropped by the classifier's filter and why, and kept."""
    if not corpus:
        return None
    where = f"sample {corpus['sample']} of the store" if corpus.get("sample") is not None else "the store"
    text = f"{corpus['threads']} threads in {where}, {corpus['labeled']} of them labeled by {corpus.get('model', 'the model')}"
    if corpus.get("unlabeled"):
        text += f" ({corpus['unlabeled']} without its predictions are left out)"
    reasons = [f"{n} as {FILTER_REASONS.get(dim, dim)}" for dim, n in corpus.get("dropped_by", {}).items() if n]
    if corpus.get("dropped"):
        text += f"; its filter dropped {corpus['dropped']} ({'; '.join(reasons)}{'; a thread can be both' if len(reasons) > 1 else ''})"
    return text + f"; {corpus['kept']} are analysed here, one defect each."


def few_repositories(frame: Any) -> str | None:
    """Why the intervals and tests by repository are missing, when the table holds too few repositories."""
    from analysis.stats import MIN_CLUSTERS

    if not {"owner", "repo"} <= set(frame.columns):
        return None
    n = int((frame["owner"].astype(str) + "/" + frame["repo"].astype(str)).nunique())
    if n >= MIN_CLUSTERS:
        return None
    return (f"The defects come from {n} repositor{'y' if n == 1 else 'ies'}: too few for intervals and tests by repository "
            f"(at least {MIN_CLUSTERS}; with fewer, a cluster bootstrap resamples a handful of values), so they are left "
            "out. The Wilson intervals and the Pearson and Monte-Carlo tests treat defects as independent, and defects "
            "of one repository are not: read them as too narrow.")


def machine_labels(frame: Any) -> dict[str, Any] | None:
    """How many of the analysed defects a classifier labeled, and which models (``name@version``),
    read from the defect table's ``provenance``; None when no row is a model's."""
    from analysis.release import parse_provenance
    from reeng.errors import ReengError

    if "provenance" not in frame:
        return None
    models: dict[str, int] = {}
    for value, count in frame["provenance"].dropna().astype(str).value_counts().items():
        try:
            kind, _, _, name, version = parse_provenance(value)
        except ReengError:
            continue
        if kind == "model":
            key = f"{name or 'unnamed'}@{version or 'unknown'}"
            models[key] = models.get(key, 0) + int(count)
    return {"defects": sum(models.values()), "models": models} if models else None


def build_context(tables: Tables, tests: dict[str, ChiSquare], figures: dict[str, list[Path]], out: Path,
                  prov: dict[str, Any], extras: dict[str, Extra], comparison: dict[str, Any] | None,
                  title: str, share_tables: dict[str, Any] | None = None, ppi: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plain data for the templates: labels resolved to names, figures as file names and embeddings."""
    tax = tables.defects.taxonomy
    png = {name: paths[0] for name, paths in figures.items() if paths and paths[0].suffix == ".png"}

    def figure(name: str) -> dict[str, str] | None:
        if name not in png:
            return None
        return {"src": _embed(png[name]), "file": str(png[name].relative_to(out))}

    marginals = []
    for dim_id, m in tables.marginals.items():
        shares = share_tables[dim_id] if share_tables and dim_id in share_tables else m.shares()
        marginals.append({
            "id": dim_id, "name": tax.dimension(dim_id).name, "missing": m.missing, "n": int(shares["count"].sum()),
            "rows": [{"id": c, "name": _name(tables, dim_id, c), **{k: float(v) for k, v in r.items()}}
                     for c, r in shares.iterrows()],
        })
    cross = []
    for name, t in tables.cross.items():
        entry: dict[str, Any] = {"name": name, "title": f"{tax.dimension(t.rows).name} x {tax.dimension(t.columns).name}",
                                 "reason": t.reason, "excluded": t.excluded}
        if t.counts is not None:
            entry |= {
                "columns": [_name(tables, t.columns, c) for c in t.counts.columns],
                "rows": [{"name": _name(tables, t.rows, r), "cells": [int(v) for v in row], "total": int(row.sum())}
                         for r, row in t.counts.iterrows()],
                "column_totals": [int(v) for v in t.counts.sum(axis=0)], "total": int(t.counts.to_numpy().sum()),
                "test": tests[name].to_dict(),
                "bars": figure(f"{name}_bars"), "heatmap": figure(f"{name}_heatmap"),
            }
        cross.append(entry)
    return {
        "title": title,
        "n_defects": len(tables.defects),
        "n_issues": int(tables.defects.frame["issue_url"].nunique()) if "issue_url" in tables.defects.frame else None,
        "missing_dimensions": tables.defects.missing_dimensions,
        "machine": machine_labels(tables.defects.frame),
        "corpus": corpus_sentence(tables.defects.corpus),
        "few_repositories": few_repositories(tables.defects.frame),
        "claims": tables.claims,
        "marginals": marginals,
        "marginals_figure": figure("marginals"),
        "cross": cross,
        "comparison": comparison,
        "ppi": ppi,
        "extras": extras,
        "reproduction": reproduction_rows(extras["reproduction"].data) if "reproduction" in extras else [],
        "classifier": classifier_evaluation(extras["gold_eval"].document) if "gold_eval" in extras else None,
        "provenance": prov,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _pct(value: Any, digits: int = 1) -> str:
    """A share as a percentage; anything that is not a number (missing, malformed input) is n/a."""
    return f"{100 * value:.{digits}f}%" if _is_number(value) else "n/a"


def _num(value: Any, digits: int = 3) -> str:
    if not _is_number(value):
        return "n/a"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def _ci(value: Any, digits: int = 2) -> str:
    """A 95 % interval as `` [low, high]`` (to follow its estimate); empty when the input holds none."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_is_number, value)):
        return f" [{value[0]:.{digits}f}, {value[1]:.{digits}f}]"
    return ""


def code_span(value: Any) -> Markup:
    """A Markdown code span of ``value``, shown literally, so not HTML-escaped (an escaped ``'`` showed as
    ``&#39;``); its fence is longer than any run of backticks in the text, and a table cell's ``|`` is escaped.
    Text holding ``<``, ``>`` or ``&`` is written escaped outside a span instead: a renderer that does not treat
    spans as CommonMark does would pass the markup through, and inside a span the entities would show."""
    text = "" if value is None else " ".join(str(value).split("\n")).replace("|", "\\|")
    if any(c in text for c in "<>&"):
        return Markup.escape(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Markup(f"{fence}{pad}{text}{pad}{fence}")


@lru_cache(maxsize=1)
def template_environment() -> Environment:
    """The Jinja2 environment of every shipped template (report, datasheet), made once per process
    so each template is compiled once (compiling the report's two took longer than rendering them).

    Autoescape is on for every template, HTML and Markdown alike: labels, titles, command lines,
    exception texts and issue texts come from users and other tools, and Markdown passes raw
    HTML through to the reader's browser. (``select_autoescape(["html"])`` never matched the
    ``.html.j2`` names, so nothing was escaped.)
    """
    # Lenient undefined on purpose: optional inputs come from other tools, and a field one of
    # them lacks must render as empty, not abort the report.
    env = Environment(loader=PackageLoader("analysis", "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["pct"] = _pct
    env.filters["ci"] = _ci
    env.filters["num"] = _num
    env.filters["count_of"] = lambda v: len(v) if isinstance(v, (list, tuple, dict)) else ("" if v is None else v)
    env.filters["cell"] = lambda v: "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")
    env.filters["code"] = code_span
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, ensure_ascii=False, default=str)
    return env


def render(context: dict[str, Any], out: Path) -> list[Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` into ``out``."""
    env = template_environment()
    html = env.get_template("report.html.j2").render(**context)
    md = env.get_template("report.md.j2").render(**context)
    (out / "report.html").write_text(html, encoding="utf-8")
    (out / "report.md").write_text(md, encoding="utf-8")
    return [out / "report.html", out / "report.md"]
