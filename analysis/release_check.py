"""``reeng release validate``: every check a reader of a release would want before trusting it.

Checksums match and cover every file; the Data Package validates against its own schemas and
hashes (Frictionless); each CSV equals its Parquet twin; the Croissant description loads;
the datasheet has every heading; labels are taxonomy ids with complete provenance; and a
pseudonymised release holds no login, e-mail or @mention. Each problem is one line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from analysis.pseudonyms import CODE, EMAIL, MENTION, MENTION_MARK, PSEUDONYM
from analysis.release import DATASHEET_HEADINGS, DEFECT_LABEL_COLUMNS, FILTER_DECISION_COLUMNS, PROVENANCE_KINDS
from reeng.datasets import sha256_file
from reeng.outputs import from_spreadsheet
from taxonomy.model import load_taxonomy

REQUIRED_FILES = ("README.md", "datapackage.json", "CITATION.cff", "SHA256SUMS")


def check_checksums(root: Path) -> list[str]:
    problems = []
    listed: dict[str, str] = {}
    for line in (root / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if not name:
            problems.append(f"SHA256SUMS: malformed line {line!r}")
            continue
        listed[name] = digest
    for name, digest in listed.items():
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: listed in SHA256SUMS but missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name}: SHA-256 differs from SHA256SUMS")
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_file() and name != "SHA256SUMS" and name not in listed:
            problems.append(f"{name}: not listed in SHA256SUMS")
    return problems


def check_package(root: Path) -> list[str]:
    """Frictionless validation of every resource (schema, types, keys, bytes and hash)."""
    from frictionless import FrictionlessException, Package, system

    try:
        with system.use_context(trusted=True):
            report = Package(str(root / "datapackage.json")).validate()
    except FrictionlessException as exc:
        return [f"datapackage.json: {exc.error.message}"]
    problems = []
    for task in report.tasks:
        for error in task.errors[:5]:
            problems.append(f"datapackage.json: {task.name}: {error.message}")
    for error in report.errors[:5]:
        problems.append(f"datapackage.json: {error.message}")
    return problems


def check_twins(root: Path, package: dict) -> list[str]:
    """Each CSV resource and its Parquet twin hold the same table."""
    problems = []
    for resource in package.get("resources", []):
        csv = root / resource["path"]
        parquet = csv.with_suffix(".parquet")
        if not parquet.is_file() or not csv.is_file():
            problems.append(f"{resource['path']}: {'file' if not csv.is_file() else 'Parquet twin'} missing")
            continue
        a = from_spreadsheet(pd.read_csv(csv, dtype=str, keep_default_na=False))  # formula-escaped cells, as written
        b = pd.read_parquet(parquet)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            problems.append(f"{resource['path']}: CSV and Parquet differ in columns or rows")
            continue
        # Cell by cell: a label edited in the CSV (even with every checksum rewritten) differs from its twin.
        b_text = b.astype(object).where(b.notna(), "").map(str)
        differs = (a.to_numpy() != b_text.to_numpy())
        if differs.any():
            row, col = (int(x[0]) for x in differs.nonzero())
            problems.append(f"{resource['path']}: {int(differs.sum())} cell(s) differ from the Parquet twin "
                            f"(first: row {row + 1}, column {a.columns[col]!r})")
    return problems


# A folder made by tempfile.mkdtemp(prefix=".name.") (the staging folders of reeng's writers).
STAGING_PATH = re.compile(r"/\.[^/\s]+\.[A-Za-z0-9_]{8}(?=/|\b)")


def check_paths(root: Path) -> list[str]:
    """No published text names a temporary staging folder (it means nothing to a reader)."""
    problems = []
    for name in ("README.md", "datapackage.json", "croissant.json", "CITATION.cff"):
        path = root / name
        if path.is_file() and (match := STAGING_PATH.search(path.read_text(encoding="utf-8", errors="replace"))):
            problems.append(f"{name}: names a temporary staging folder ({match.group(0)})")
    return problems


def check_labels(root: Path) -> list[str]:
    """Labels are taxonomy ids; model labels carry model, version and a probability in [0, 1]."""
    path = root / "data" / "defect_labels.parquet"
    if not path.is_file():
        return ["data/defect_labels.parquet: missing"]
    labels = pd.read_parquet(path)
    problems = []
    missing = [c for c in DEFECT_LABEL_COLUMNS if c not in labels]
    if missing:
        return [f"defect_labels: missing column(s) {', '.join(missing)}"]
    tax = load_taxonomy()
    dims = {d.id: set(d.ids) for d in tax.dimensions}
    for dim, label in labels[["dimension", "label"]].drop_duplicates().itertuples(index=False):
        if label not in dims.get(dim, set()):
            problems.append(f"defect_labels: {dim}/{label} is not a taxonomy category")
    bad_kind = set(labels["provenance"]) - set(PROVENANCE_KINDS)
    if bad_kind:
        problems.append(f"defect_labels: unknown provenance {sorted(bad_kind)}")
    model = labels[labels["provenance"] == "model"]
    if len(model) and (model["model"].isna().any() or model["model_version"].isna().any()):
        problems.append("defect_labels: model labels without model name or version")
    unscored = model.index[~model["probability"].between(0, 1)]  # NaN too: a model label carries its probability
    if len(unscored):
        first = unscored[0]
        problems.append(f"defect_labels: row {first + 1}, column probability: a model label needs a probability in [0, 1] "
                        f"(got {model.at[first, 'probability']}" + (f"; {len(unscored)} such rows)" if len(unscored) > 1 else ")"))
    raters = labels[labels["provenance"] == "human_rater"]
    if len(raters) and raters["rater"].isna().any():
        problems.append("defect_labels: human_rater labels without a rater")
    return problems


def _first_row(mask: pd.Series) -> int:
    """The 1-based row number of the first True in ``mask``."""
    return int(mask.to_numpy().nonzero()[0][0]) + 1


def check_filter_decisions(root: Path, readme: str) -> list[str]:
    """The classifier filter's decisions: one row per model and thread, a reason on every dropped thread and on
    no other, and per model the counts the datasheet states (threads, labeled, dropped, kept)."""
    from analysis.report import code_span
    from taxonomy.predictions import FILTER_DECISIONS

    path = root / "data" / "filter_decisions.parquet"
    if not path.is_file():
        return []
    table = pd.read_parquet(path)
    missing = [c for c in FILTER_DECISION_COLUMNS if c not in table]
    if missing:
        return [f"filter_decisions: missing column(s) {', '.join(missing)}"]
    problems = []
    repeated = table.duplicated(["model", "repo", "number"])
    if repeated.any():
        problems.append(f"filter_decisions: row {_first_row(repeated)}: model, repo and number repeat an earlier row "
                        f"({int(repeated.sum())} such rows)")
    unknown = ~table["decision"].isin(FILTER_DECISIONS)
    if unknown.any():
        problems.append(f"filter_decisions: row {_first_row(unknown)}, column decision: "
                        f"{table['decision'][unknown].iloc[0]!r} is none of {', '.join(FILTER_DECISIONS)}")
    unexplained = (table["decision"] == "dropped") != table["reason"].notna()
    if unexplained.any():
        problems.append(f"filter_decisions: row {_first_row(unexplained)}, column reason: a dropped thread has a reason, "
                        "no other thread has one")
    for (model, version), rows in table.groupby(["model", "model_version"]):
        name = f"{model}@{version}"
        stated = re.search(rf"The classifier {re.escape(str(code_span(name)))} labeled (\d+) of the (\d+) threads"
                           r"(?: of sample \d+)?\.\s+Its filter dropped (\d+) of them.*?(\d+) threads keep its labels\.",
                           readme, re.S)
        if stated is None:
            problems.append(f"filter_decisions: the datasheet states no filter counts of {name}")
            continue
        counts = rows["decision"].value_counts()
        found = (int(counts.get("kept", 0) + counts.get("dropped", 0)), len(rows), int(counts.get("dropped", 0)),
                 int(counts.get("kept", 0)))
        said = tuple(int(n) for n in stated.groups())
        if found != said:
            problems.append(f"filter_decisions: {name}: {found[0]} labeled of {found[1]} threads, {found[2]} dropped, "
                            f"{found[3]} kept; the datasheet says {said[0]} of {said[1]}, {said[2]} dropped, {said[3]} kept")
    return problems


def check_privacy(root: Path) -> list[str]:
    """A pseudonymised release: authors are pseudonyms and no text holds an e-mail or @mention."""
    problems = []
    for name in ("issues", "comments"):
        path = root / "data" / f"{name}.parquet"
        if not path.is_file():
            continue
        table = pd.read_parquet(path)
        authors = table["author"].dropna().astype(str) if "author" in table else pd.Series(dtype=str)
        if not authors.map(lambda a: bool(PSEUDONYM.match(a))).all():
            problems.append(f"{name}: author column holds values that are not pseudonyms")
        for col in ("title", "body"):
            if col in table:
                text = table[col].dropna().astype(str)
                if text.map(lambda t: bool(EMAIL.search(t))).any():
                    problems.append(f"{name}.{col}: holds an e-mail address")
                # Code may keep decorators (@torch.no_grad); only prose is checked for mentions.
                if text.map(lambda t: bool(MENTION.search(CODE.sub("", t).replace(MENTION_MARK, "")))).any():
                    problems.append(f"{name}.{col}: holds an @mention")
    return problems


def check_croissant(root: Path) -> list[str]:
    path = root / "croissant.json"
    if not path.is_file():
        return []
    try:
        import mlcroissant as mlc
    except ImportError:
        return []
    try:
        dataset = mlc.Dataset(jsonld=str(path))
    except Exception as exc:  # noqa: BLE001 - mlcroissant raises many types; each is a finding
        return [f"croissant.json: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"]
    names = {r.name for r in dataset.metadata.record_sets}
    package = json.loads((root / "datapackage.json").read_text(encoding="utf-8"))
    expected = {r["name"] for r in package.get("resources", [])}
    if names != expected:
        return [f"croissant.json: record sets {sorted(names)} differ from resources {sorted(expected)}"]
    problems = []
    for name in sorted(names):  # the first record proves the description reads its file
        try:
            next(iter(dataset.records(name)), None)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"croissant.json: record set {name} does not load ({str(exc).splitlines()[0][:200]})")
    return problems


def validate_release(root: Path) -> list[str]:
    """Every problem found in the release folder ``root`` (empty: the release is valid)."""
    if not root.is_dir():
        return [f"{root}: no such folder"]
    problems = [f"{name}: missing" for name in REQUIRED_FILES if not (root / name).is_file()]
    if problems:
        return problems
    try:
        package = json.loads((root / "datapackage.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [f"datapackage.json: not JSON ({exc.msg})"]
    readme = (root / "README.md").read_text(encoding="utf-8")
    problems += [f"README.md: no '## {h}' section" for h in DATASHEET_HEADINGS if f"\n## {h}\n" not in readme]
    if not package.get("licenses"):
        problems.append("datapackage.json: no license")
    if "citation" not in package:
        problems.append("datapackage.json: no citation")
    problems += check_checksums(root)
    problems += check_package(root)
    problems += check_twins(root, package)
    problems += check_labels(root)
    problems += check_filter_decisions(root, readme)
    problems += check_paths(root)
    if package.get("reeng", {}).get("pseudonymised", True):
        problems += check_privacy(root)
    problems += check_croissant(root)
    return problems
