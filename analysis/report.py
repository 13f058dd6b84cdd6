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
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader

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
    return Extra(title, str(path), data=data[top])


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
        "claims": tables.claims,
        "marginals": marginals,
        "marginals_figure": figure("marginals"),
        "cross": cross,
        "comparison": comparison,
        "ppi": ppi,
        "extras": extras,
        "reproduction": reproduction_rows(extras["reproduction"].data) if "reproduction" in extras else [],
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
    env.filters["num"] = _num
    env.filters["count_of"] = lambda v: len(v) if isinstance(v, (list, tuple, dict)) else ("" if v is None else v)
    env.filters["cell"] = lambda v: "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")
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
