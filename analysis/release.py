"""A publishable dataset release: tables, datasheet, Data Package, Croissant, checksums.

A release folder holds ``data/`` (every table as Parquet and CSV: issues, comments from a store,
the defect labels in long form, one row per defect, dimension and label with who assigned it,
and, with the store's predictions, each classifier filter's decision per thread), ``README.md``
(a datasheet with the headings of Gebru et al., "Datasheets for Datasets"),
``datapackage.json`` (Frictionless Data Package), ``croissant.json`` (ML Commons Croissant),
``CITATION.cff`` and ``SHA256SUMS``. People are pseudonymised unless the caller asks otherwise
(:mod:`analysis.pseudonyms`). :mod:`analysis.release_check` verifies all of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.pseudonyms import pseudonym, resolve_salt, scrub_text
from analysis.tables import LABEL_DIMENSIONS, prepare_defects
from reeng import __version__
from reeng.datasets import sha256_file
from reeng.errors import ReengError
from reeng.outputs import spreadsheet_safe, staged_dir
from reeng.tables import read_table
from taxonomy.model import load_taxonomy

DATASHEET_HEADINGS = (
    "Motivation", "Composition", "Collection process", "Preprocessing, cleaning and labeling",
    "Uses", "Distribution", "Maintenance",
)
PROVENANCE_KINDS = ("adjudicated", "human_rater", "model")
# Where human labels come from, as the datasheet says it (``source`` of the non-model labels; others by name).
HUMAN_SOURCES = {
    "jiang2024": "the study's published, adjudicated labeling (`jiang2024`)",
    "annotate": "human raters, through sheets adjudicated with `reeng annotate import` (`annotate`)",
    "label-studio": "human raters, through Label Studio and `reeng annotate pull` (`label-studio`)",
}
STUDY_REFERENCE = {
    "type": "article",
    "title": "Challenges and Practices of Deep Learning Model Reengineering: A Case Study on Computer Vision",
    "authors": [{"family-names": n.split()[-1], "given-names": " ".join(n.split()[:-1])} for n in (
        "Wenxin Jiang", "Vishnu Banna", "Naveen Vivek", "Abhinav Goel", "Nicholas Synovic",
        "George K. Thiruvathukal", "James C. Davis")],
    "journal": "Empirical Software Engineering", "year": 2024, "identifiers": [{"type": "other", "value": "arXiv:2303.07476"}],
}
# Long-form defect label table: column -> description (also the Data Package field descriptions).
DEFECT_LABEL_COLUMNS: dict[str, str] = {
    "repo": "repository, owner/name",
    "number": "issue number",
    "defect_index": "1-based defect within the issue; empty for issue-level model predictions",
    "issue_url": "canonical GitHub issue URL",
    "dimension": "taxonomy dimension id",
    "label": "taxonomy category id",
    "provenance": "who assigned the label: adjudicated, human_rater or model",
    "source": "the labeling effort or file the label comes from (e.g. jiang2024)",
    "rater": "rater id for human_rater labels",
    "model": "model name for model labels",
    "model_version": "model version for model labels",
    "probability": "model probability of the label (0-1) for model labels",
}
# The classifier's filter on each stored thread (from the store's predictions): column -> description.
FILTER_DECISION_COLUMNS: dict[str, str] = {
    "repo": "repository, owner/name",
    "number": "issue number",
    "issue_url": "canonical GitHub issue URL",
    "model": "the classifier whose filter decided",
    "model_version": "its version",
    "decision": "kept (its labels of the thread are in defect_labels), dropped (its filter says the thread is no "
                "reengineering defect: its labels are left out, the thread stays in issues) or unlabeled (no prediction of it)",
    "reason": "for dropped threads: the filter dimensions and labels that drop it (e.g. 'issue_type: feature'); "
              "empty otherwise",
}
STORE_TABLES = {"issues": ("repo", "number"), "comments": ("repo", "issue_number", "comment_id")}
OPTIONAL_STORE_TABLES = ("repositories", "predictions", "human_labels")
PRIVATE_COLUMNS = {"etag"}  # fetch bookkeeping with no research value


@dataclass
class ReleaseOptions:
    """Everything about a release that is not data."""

    title: str = "Defects in reengineered deep-learning models for computer vision"
    version: str = "1.0.0"
    license: str = "CC-BY-4.0"
    authors: tuple[str, ...] = ("reeng contributors",)
    description: str = ("Issue threads and labeled defects from the reengineering of computer-vision "
                        "deep-learning models, following the taxonomy of Jiang et al. (EMSE 2024).")
    url: str | None = None  # the dataset's home page, when it has one
    keep_identities: bool = False
    salt: str | None = None
    salt_file: Path | None = None
    # The classifier's measured agreement with human labels, stated in the datasheet when given:
    # a gold_eval JSON document (``docs/schemas.md``), or only its ``dimensions``.
    machine_evaluation: dict[str, Any] | None = None
    # Input paths are shown relative to this folder (a study names files inside its own output).
    relative_to: Path | None = None

    def __post_init__(self) -> None:
        """Text where a path or a list is expected means what a user typing it means: one path, one author."""
        if isinstance(self.salt_file, str):
            self.salt_file = Path(self.salt_file)
        self.authors = (self.authors,) if isinstance(self.authors, str) else tuple(self.authors)
        if not self.authors or not all(isinstance(a, str) and a.strip() for a in self.authors):
            raise ReengError(f"authors: names as text, one or more (got {list(self.authors)!r})")


@dataclass
class ReleaseSummary:
    out: Path
    rows: dict[str, int]
    salt_origin: str | None
    files: list[str] = field(default_factory=list)


# --- reading the inputs -----------------------------------------------------------------------

def read_store(path: Path) -> dict[str, pd.DataFrame]:
    """The store's issues, comments, repositories and (when the classifier wrote any) predictions.

    Opened through the miner's :func:`miner.store.open_store`, so a file that is not a store, or
    a store of another schema version, fails with the miner's message.
    """
    from miner.store import open_store, table_names

    con = open_store(path, create=False)
    try:
        present = table_names(con)
        names = [t for t in (*STORE_TABLES, *OPTIONAL_STORE_TABLES) if t in present]
        tables = {t: pd.read_sql_query(f"SELECT * FROM {t}", con) for t in names}
    finally:
        con.close()
    for name, key in STORE_TABLES.items():
        absent = [c for c in (*key, "author", "body") if c not in tables[name].columns]
        if absent:
            raise ReengError(f"{path}: table {name} lacks column(s) {', '.join(absent)}")
    if "repositories" in tables and tables["repositories"].empty:
        del tables["repositories"]
    return tables


def parse_provenance(value: str) -> tuple[str, str, str | None, str | None, str | None]:
    """(kind, source, rater, model, model_version) from a defect table's provenance string.

    Conventions: ``<source>:adjudicated``; ``<source>:rater:<id>``; ``model:<name>@<version>``
    (``machine:<name>@<version>``, the classifier's older spelling, is read as a model label); and those of a
    store's final human labels (``human_labels``): ``agreed:<sheets>`` / ``adjudicated:<sheets>`` of ``reeng
    annotate import`` (source ``annotate``), ``label-studio agreed|majority|adjudicated:<raters>`` of ``annotate
    pull`` (source ``label-studio``), both final labels, and ``label-studio single:<rater>``, one rater's.
    """
    parts = str(value).split(":")
    if parts[0] in ("model", "machine"):
        name, _, version = ":".join(parts[1:]).partition("@")
        return "model", "model", None, name or None, version or None
    if len(parts) >= 2 and parts[1] == "adjudicated":
        return "adjudicated", parts[0], None, None, None
    if len(parts) >= 3 and parts[1] == "rater":
        return "human_rater", parts[0], ":".join(parts[2:]), None, None
    tool, _, how = parts[0].rpartition(" ")
    if len(parts) >= 2 and tool in ("", "label-studio"):
        source = tool or "annotate"
        if how in ("agreed", "adjudicated") or (tool and how == "majority"):
            return "adjudicated", source, None, None, None
        if tool and how == "single":
            return "human_rater", source, ":".join(parts[1:]), None, None
    raise ReengError(f"provenance {value!r} is none of '<source>:adjudicated', '<source>:rater:<id>', 'model:<name>@<version>'")


def defect_labels(path: Path | pd.DataFrame) -> pd.DataFrame:
    """A defect table (normalized schema) in long form: one row per defect, dimension and label.

    A machine-labeled table may carry ``<dimension>_probability`` columns; they become the
    ``probability`` of the matching rows.
    """
    if isinstance(path, pd.DataFrame):
        source = str(path.attrs.get("source", "defect table"))
        missing = [c for c in ("owner", "repo", "number", "provenance") if c not in path.columns]
        if missing:
            raise ReengError(f"{source}: missing column(s) {', '.join(missing)}")
        frame = path
    else:
        source, frame = str(path), read_table(path, required=["owner", "repo", "number", "provenance"])
    defects = prepare_defects(frame, source).frame
    if "defect_index" not in defects:
        defects["defect_index"] = defects.groupby(["owner", "repo", "number"]).cumcount() + 1
    defects["repo"] = defects["owner"].astype(str) + "/" + defects["repo"].astype(str)
    dims = [d for d in LABEL_DIMENSIONS if d in defects.columns]
    ids = ["repo", "number", "defect_index", "provenance"]
    long = defects.melt(id_vars=ids, value_vars=dims, var_name="dimension", value_name="label")
    probs = pd.DataFrame({d: pd.to_numeric(defects.get(f"{d}_probability"), errors="coerce") if f"{d}_probability" in defects
                          else float("nan") for d in dims}, index=defects.index)
    long["probability"] = probs.melt(value_vars=dims)["value"].to_numpy(dtype=float)
    long = long.dropna(subset=["label"])
    parsed = {p: parse_provenance(p) for p in long["provenance"].unique()}
    raw = long["provenance"].to_list()
    for i, col in enumerate(("provenance", "source", "rater", "model", "model_version")):
        long[col] = [parsed[p][i] for p in raw]
    require_probabilities(long, source, "column {dimension}_probability")
    return long


def require_probabilities(labels: pd.DataFrame, source: str, where: str) -> None:
    """A model label carries its probability, in [0, 1] (``docs/schemas.md``): one error naming the first
    that does not; ``where`` names the input column (``{dimension}`` is filled in)."""
    bad = labels[(labels["provenance"] == "model") & ~pd.to_numeric(labels["probability"], errors="coerce").between(0, 1)]
    if len(bad):
        row = bad.iloc[0]
        raise ReengError(f"{source}: model label {row['dimension']}/{row['label']} of {row['repo']}#{row['number']} "
                         f"has no probability in [0, 1] (got {row['probability']}; {where.format(dimension=row['dimension'])})")


def prediction_labels(predictions: pd.DataFrame) -> pd.DataFrame:
    """The classifier's issue-level predictions from a store, in the long defect-label form.

    Abstentions (``label`` NULL: the classifier looked and was not confident) are not labels
    and are left out, and so are predictions on dimensions outside the taxonomy: the filter's
    ``issue_type`` / ``reengineering`` decisions and models trained on other label columns say
    which threads are defects, not what the defects are. A thread a model's filter dropped
    keeps none of that model's labels, as in the analysed corpus
    (:func:`taxonomy.predictions.machine_defects`).
    """
    from taxonomy.predictions import dropped_keys

    tax = load_taxonomy()
    predictions = predictions.assign(number=predictions["number"].astype(int))
    dropped = {(model, *key) for model, preds in predictions.groupby("model")
               for key in set().union(*dropped_keys(preds).values())}
    kept = pd.Series([key not in dropped for key in zip(predictions["model"], predictions["repo"], predictions["number"])],
                     index=predictions.index, dtype=bool)
    predictions = predictions[kept & predictions["label"].notna() & predictions["dimension"].isin(LABEL_DIMENSIONS)]
    bad = [(d, lab) for d, lab in predictions[["dimension", "label"]].drop_duplicates().itertuples(index=False)
           if tax.dimension(d).lookup(str(lab)) is None]
    if bad:
        raise ReengError(f"predictions: unknown dimension/label {bad[0][0]}/{bad[0][1]}")
    labels = pd.DataFrame({
        "repo": predictions["repo"], "number": predictions["number"], "defect_index": pd.NA,
        "dimension": predictions["dimension"],
        "label": [tax.dimension(d).lookup(str(lab)) for d, lab in zip(predictions["dimension"], predictions["label"])],
        "provenance": "model", "source": "store", "rater": None,
        "model": predictions["model"], "model_version": predictions["model_version"].astype("string"),
        "probability": pd.to_numeric(predictions["probability"], errors="coerce"),
    })
    require_probabilities(labels, "predictions", "predictions.probability")
    return labels


def _model_version(preds: pd.DataFrame) -> str:
    """The version of one model's stored predictions, as the datasheet names it."""
    version = preds["model_version"].dropna()
    return str(version.iloc[0]) if len(version) else "unknown"


def _issue_urls(frame: pd.DataFrame) -> pd.Series:
    owner_repo = frame["repo"].str.split("/", n=1, expand=True)
    return "https://github.com/" + owner_repo[0] + "/" + owner_repo[1] + "/issues/" + frame["number"].astype(str)


def decided_threads(defects: list[Path | pd.DataFrame], predictions: pd.DataFrame | None, store: Path | None,
                    store_tables: dict[str, pd.DataFrame]) -> list[tuple[str, pd.DataFrame, list[tuple[str, int]]]]:
    """(model, its stored predictions, the threads they decide on) for each filter whose counts the datasheet states
    (:func:`filter_summaries`) and whose decisions the store holds: each model of the released ``predictions`` over
    every stored thread; without them, each machine defect table made from the store's predictions
    (``attrs["corpus"]``, :func:`taxonomy.predictions.machine_defects`) over its threads, a sample's when it has one."""
    from taxonomy.predictions import filter_summary

    stored = list(zip(store_tables["issues"]["repo"], store_tables["issues"]["number"].astype(int))) if store_tables else []
    if predictions is not None and len(predictions):
        return [(model, preds, stored) for model, preds in predictions.groupby("model")]
    found: dict[str, tuple[str, pd.DataFrame, list[tuple[str, int]]]] = {}
    held = store_tables.get("predictions")
    for corpus in [p.attrs["corpus"] for p in defects if isinstance(p, pd.DataFrame) and p.attrs.get("corpus")]:
        name, _, version = str(corpus["model"]).rpartition("@")
        preds = held[held["model"] == name] if held is not None else pd.DataFrame()
        if preds.empty or name in found or _model_version(preds) != version:
            continue  # not this store's model, or counted already
        threads = stored
        if corpus.get("sample") is not None:
            drawn = _sample_threads(store, corpus["sample"])
            threads = sorted(drawn)
            preds = preds[[(r, int(n)) in drawn for r, n in zip(preds["repo"], preds["number"])]]
        counts = ("threads", "labeled", "dropped", "kept")
        if [filter_summary(preds, len(threads))[k] for k in counts] == [corpus.get(k) for k in counts]:
            found[name] = (name, preds, threads)  # else the table was made from other predictions than the store's
    return list(found.values())


def _sample_threads(store: Path, sample: int) -> set[tuple[str, int]]:
    """The threads of a recorded sample of the store; none when the store has no such sample."""
    from miner.sample import sample_keys
    from miner.store import open_store

    conn = open_store(store, create=False)
    try:
        return sample_keys(conn, sample, str(store))
    except ReengError:
        return set()
    finally:
        conn.close()


def filter_decision_table(decided: list[tuple[str, pd.DataFrame, list[tuple[str, int]]]]) -> pd.DataFrame:
    """Each filter's decision on each of its threads (:func:`taxonomy.predictions.filter_decisions`), ``decided``
    by :func:`decided_threads`: the threads behind the datasheet's counts of :func:`filter_summaries`."""
    from taxonomy.predictions import filter_decisions

    frame = pd.concat([filter_decisions(preds, threads).assign(model=model, model_version=_model_version(preds))
                       for model, preds, threads in decided], ignore_index=True)
    frame["issue_url"] = _issue_urls(frame)
    return frame[list(FILTER_DECISION_COLUMNS)].astype({"model": "string", "model_version": "string"})


def label_table(defect_tables: list[Path | pd.DataFrame], predictions: pd.DataFrame | None) -> pd.DataFrame:
    """All labels, human and machine, with their provenance, in one long table."""
    parts = [defect_labels(p) for p in defect_tables]
    if predictions is not None and len(predictions):
        machine = prediction_labels(predictions)
        if machine.empty and not defect_tables:
            raise ReengError("the store's predictions all abstained (no label on any taxonomy dimension): "
                             "nothing to release as defect labels; lower the classifier's threshold or add --defects")
        for table, labels in zip(defect_tables, parts):
            _refuse_repeated_predictions(table, labels, machine)
        parts.append(machine)
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in DEFECT_LABEL_COLUMNS})
    frame = pd.concat(parts, ignore_index=True)
    # CSV inputs arrive as text; Parquet and the store as numbers.
    frame["number"] = pd.to_numeric(frame["number"]).astype("int64")
    frame["defect_index"] = pd.to_numeric(frame["defect_index"]).astype("Int64")
    frame = frame.drop_duplicates()  # the same labels given twice (the store's human labels, also as a table): once
    frame["issue_url"] = _issue_urls(frame)
    frame["probability"] = frame["probability"].astype("float64")
    return frame[list(DEFECT_LABEL_COLUMNS)].sort_values(["repo", "number", "defect_index", "dimension", "provenance"],
                                                          kind="stable").reset_index(drop=True)


def _refuse_repeated_predictions(table: Path | pd.DataFrame, labels: pd.DataFrame, stored: pd.DataFrame) -> None:
    """A model's label of a thread is released once: a defect table holding labels that the store's released
    predictions hold too (``classify predict --out``'s table beside its store) is one error, not every label twice."""
    def keys(frame: pd.DataFrame) -> pd.MultiIndex:  # as text: a CSV's numbers arrive as text
        return pd.MultiIndex.from_frame(frame[["repo", "number", "dimension", "model", "model_version"]].astype(str))

    model = labels[labels["provenance"] == "model"]
    twice = model[keys(model).isin(keys(stored))]
    if len(twice):
        row = twice.iloc[0]
        name = table.attrs.get("source", "defect table") if isinstance(table, pd.DataFrame) else table
        raise ReengError(f"{name}: its labels of {row['model']}@{row['model_version']} ({len(twice)}, e.g. {row['dimension']} of "
                         f"{row['repo']}#{row['number']}) are the store's predictions, released from --store already: "
                         "give one of the two")


# --- privacy ----------------------------------------------------------------------------------

def pseudonymise(tables: dict[str, pd.DataFrame], salt: str) -> dict[str, pd.DataFrame]:
    """Authors become salted hashes; e-mails and @mentions leave titles and bodies."""
    known = frozenset(str(a).casefold() for t in tables.values() if "author" in t for a in t["author"].dropna())
    out = {}
    for name, table in tables.items():
        table = table.copy()
        if "author" in table:
            table["author"] = table["author"].map(lambda a: None if pd.isna(a) else pseudonym(str(a), salt))
        for col in ("title", "body"):
            if col in table:
                table[col] = table[col].map(lambda t: t if pd.isna(t) else scrub_text(str(t), known))
        out[name] = table
    return out


# --- descriptors ------------------------------------------------------------------------------

def _field_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        return "number"
    return "string"


def _descriptions(name: str) -> dict[str, str]:
    return {"defect_labels": DEFECT_LABEL_COLUMNS, "filter_decisions": FILTER_DECISION_COLUMNS}.get(name, {})


def data_package(tables: dict[str, pd.DataFrame], root: Path, options: ReleaseOptions, pseudonymised: bool) -> dict[str, Any]:
    """The Frictionless Data Package descriptor of the CSV tables (Parquet twins are listed as extra files)."""
    keys = {"issues": ["repo", "number"], "comments": ["repo", "issue_number", "comment_id"], "repositories": ["repo"],
            "filter_decisions": ["model", "repo", "number"]}
    resources = []
    for name, frame in tables.items():
        csv = root / "data" / f"{name}.csv"
        fields = [{"name": c, "type": _field_type(frame[c]), **({"description": d} if (d := _descriptions(name).get(c)) else {})}
                  for c in frame.columns]
        schema: dict[str, Any] = {"fields": fields}
        if name in keys:
            schema["primaryKey"] = keys[name]
        resources.append({
            "name": name, "path": f"data/{name}.csv", "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
            "bytes": csv.stat().st_size, "hash": f"sha256:{sha256_file(csv)}", "schema": schema,
            "description": f"{len(frame)} rows; the same table as Parquet: data/{name}.parquet",
        })
    return {
        "name": "reeng-release", "title": options.title, "version": options.version, "description": options.description,
        "licenses": [{"name": options.license, "path": f"https://spdx.org/licenses/{options.license}.html"}],
        "contributors": [{"title": a, "role": "author"} for a in options.authors],
        **({"homepage": options.url} if options.url else {}),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "resources": resources,
        "citation": f"{', '.join(options.authors)}. {options.title} (version {options.version}). Built with reeng {__version__}.",
        "reeng": {"pseudonymised": pseudonymised, "tool": f"reeng {__version__}", "taxonomy": _taxonomy_id()},
    }


def _taxonomy_id() -> str:
    tax = load_taxonomy()
    return f"{tax.id} {tax.version}"


def croissant(tables: dict[str, pd.DataFrame], root: Path, options: ReleaseOptions) -> dict[str, Any] | None:
    """The Croissant JSON-LD description, or None when mlcroissant is not installed."""
    try:
        import mlcroissant as mlc
    except ImportError:
        return None
    types = {"boolean": mlc.DataType.BOOL, "integer": mlc.DataType.INTEGER, "number": mlc.DataType.FLOAT, "string": mlc.DataType.TEXT}
    files, records = [], []
    for name, frame in tables.items():
        csv = root / "data" / f"{name}.csv"
        files.append(mlc.FileObject(id=f"{name}.csv", name=f"{name}.csv", content_url=f"data/{name}.csv",
                                    encoding_formats=["text/csv"], sha256=sha256_file(csv)))
        fields = [mlc.Field(id=f"{name}/{c}", name=c, data_types=[types[_field_type(frame[c])]],
                            source=mlc.Source(file_object=f"{name}.csv", extract=mlc.Extract(column=c)))
                  for c in frame.columns]
        records.append(mlc.RecordSet(id=name, name=name, fields=fields))
    metadata = mlc.Metadata(
        name=options.title, description=options.description, version=options.version,
        license=[f"https://spdx.org/licenses/{options.license}.html"], url=options.url,
        cite_as=f"{', '.join(options.authors)}. {options.title} (version {options.version}).",
        date_published=date.today().isoformat(), distribution=files, record_sets=records,
    )
    return metadata.to_json()


def citation_cff(options: ReleaseOptions) -> str:
    """CITATION.cff for the release, referencing the study whose taxonomy it uses."""
    import yaml

    doc = {
        "cff-version": "1.2.0", "message": "If you use this dataset, please cite it as below.",
        "type": "dataset", "title": options.title, "version": options.version, "license": options.license,
        "date-released": date.today().isoformat(), "authors": [{"name": a} for a in options.authors],
        "references": [STUDY_REFERENCE],
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def filter_summaries(defects: list[Path | pd.DataFrame], predictions: pd.DataFrame | None, stored: int) -> list[dict[str, Any]]:
    """How each model's filter shaped the machine labels released: from a machine defect table's
    ``attrs["corpus"]`` (:func:`taxonomy.predictions.machine_defects`), or from the store's predictions."""
    from taxonomy.predictions import filter_summary

    found = [p.attrs["corpus"] for p in defects if isinstance(p, pd.DataFrame) and p.attrs.get("corpus")]
    if predictions is not None and len(predictions):
        for model, preds in predictions.groupby("model"):
            found.append(filter_summary(preds, stored) | {"model": f"{model}@{_model_version(preds)}"})
    return found


def thread_origins(issues: pd.DataFrame) -> list[str]:
    """Where the released threads came from, as the datasheet says it, from each issue's fetch ``source``: the
    miner's ``github:<API>``, the Denchmark importer's ``denchmark``, a reeng raw archive's ``archive:<file>``,
    ``reeng gold fetch-threads``' ``github``; any other source by name. Most threads first."""
    def origin(source: object) -> str:
        text = str(source)
        if text == "denchmark":
            return "read from the Denchmark bug-report archive (Kim et al., MSR 2021) by the reeng importer"
        if text == "github" or text == "github:https://api.github.com":
            return "fetched through the GitHub API by the reeng miner"
        if text.startswith("github:"):
            return f"fetched through a GitHub-compatible API (`{text[len('github:'):]}`) by the reeng miner"
        if text.startswith("archive:"):
            return f"read from a reeng raw archive (`{text[len('archive:'):]}`)"
        return f"from `{text}`"

    counts = issues["source"].map(origin).value_counts() if "source" in issues else pd.Series(dtype="int64")
    return [f"{n:,} {'thread' if n == 1 else 'threads'} {how}" for how, n in counts.items()]


def datasheet(tables: dict[str, pd.DataFrame], options: ReleaseOptions, pseudonymised: bool, sources: list[str],
              corpora: list[dict[str, Any]] | None = None) -> str:
    """README.md with the "Datasheets for Datasets" headings, filled from the release's own numbers;
    ``corpora``: :func:`filter_summaries`."""
    from analysis.report import classifier_evaluation, template_environment

    env = template_environment()
    given = options.machine_evaluation
    evaluation = classifier_evaluation(given if given is None or "dimensions" in given else {"dimensions": given})
    labels = tables["defect_labels"]
    by_kind = labels.groupby("provenance").size().to_dict() if len(labels) else {}
    models = (labels[labels["provenance"] == "model"].groupby(["model", "model_version"], dropna=False)
              .agg(labels=("label", "size"), probability=("probability", "median")).reset_index().to_dict("records")
              if len(labels) else [])
    return env.get_template("datasheet.md.j2").render(
        options=options, models=models, evaluation=evaluation, tables={n: len(t) for n, t in tables.items()}, pseudonymised=pseudonymised,
        sources=sources, by_kind=by_kind, headings=DATASHEET_HEADINGS, tool=f"reeng {__version__}",
        corpora=[c | {"sample": c.get("sample"), "reasons": ", ".join(f"{n} by `{dim}`" for dim, n in c["dropped_by"].items() if n)}
                 for c in corpora or []],
        human_sources=[HUMAN_SOURCES.get(src, f"`{src}`") for src in sorted(set(labels.loc[labels["provenance"] != "model", "source"]))],
        origins=thread_origins(tables["issues"]) if "issues" in tables else [],
        taxonomy=_taxonomy_id(), n_issues_labeled=int(labels[["repo", "number"]].drop_duplicates().shape[0]) if len(labels) else 0,
    )


# --- writing ----------------------------------------------------------------------------------

def write_checksums(root: Path) -> None:
    """SHA256SUMS in ``sha256sum -c`` format over every file of the release."""
    lines = [f"{sha256_file(p)}  {p.relative_to(root).as_posix()}"
             for p in sorted(root.rglob("*")) if p.is_file() and p.name != "SHA256SUMS"]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _shown(path: Path, relative_to: Path | None) -> str:
    """An input path as the datasheet names it: relative to ``relative_to`` when inside it, else its file name
    when it lies in a hidden (staging) folder, else as given."""
    path = Path(path)
    if relative_to is not None and path.resolve().is_relative_to(Path(relative_to).resolve()):
        return path.resolve().relative_to(Path(relative_to).resolve()).as_posix()
    if any(part.startswith(".") and part not in (".", "..") for part in path.parts):
        return path.name
    return str(path)


def _earlier_release(out: Path) -> list[str]:
    """What a release into ``out`` replaces: nothing in a new or empty folder, everything in an earlier release
    (a release is one whole: a file of the old one left beside the new would fail validation); any other
    folder with files is refused."""
    if not out.is_dir() or not any(out.iterdir()):
        return []
    if not (out / "SHA256SUMS").is_file():
        raise ReengError(f"--out {out}: the folder holds files and is no earlier release; give a new or empty folder")
    return [p.name for p in out.iterdir()]


def write_release(out: Path, *, store: Path | None = None, defects: list[Path | pd.DataFrame] | None = None,
                  options: ReleaseOptions | None = None, include_predictions: bool = True) -> ReleaseSummary:
    """Write a complete release into ``out`` (staged: nothing half-written on failure).

    ``include_predictions`` False leaves the store's raw predictions out (a machine defect table
    among ``defects`` then carries the machine labels, filtered to defects).
    """
    options = options or ReleaseOptions()
    defects = list(defects or [])
    if store is None and not defects:
        raise ReengError("a release needs a store (--store) or at least one defect table (--defects)")
    store_tables = read_store(store) if store is not None else {}
    if store is not None and not defects and not len(store_tables.get("issues", ())):
        raise ReengError(f"{store}: the store holds no threads (mine or import some first): nothing to release")
    human = store_tables.pop("human_labels", pd.DataFrame({"dimension": []}))
    if human["dimension"].isin(LABEL_DIMENSIONS).any():  # the researcher's final labels (reeng annotate import / pull)
        from analysis.store_defects import store_human_defects

        defects.append(store_human_defects(store))
    predictions = store_tables.get("predictions") if include_predictions else None
    decided = decided_threads(defects, predictions, store, store_tables)
    store_tables.pop("predictions", None)
    tables: dict[str, pd.DataFrame] = {}
    for name in (*STORE_TABLES, "repositories"):
        if name in store_tables:
            tables[name] = store_tables[name].drop(columns=[c for c in PRIVATE_COLUMNS if c in store_tables[name]])
    tables["defect_labels"] = label_table(defects, predictions)
    if decided:  # no login or thread text in it: nothing to pseudonymise
        tables["filter_decisions"] = filter_decision_table(decided)
    corpora = filter_summaries(defects, predictions, len(store_tables.get("issues", ())))
    salt_origin = None
    if not options.keep_identities:
        salt, salt_origin = resolve_salt(options.salt, options.salt_file, out)
        tables = pseudonymise(tables, salt)
    sources = [str(p.attrs.get("source", "defect table")) if isinstance(p, pd.DataFrame) else _shown(p, options.relative_to)
               for p in ([store] if store else []) + defects]
    with staged_dir(out, owns=_earlier_release(Path(out))) as root:
        (root / "data").mkdir()
        for name, frame in tables.items():
            frame.to_parquet(root / "data" / f"{name}.parquet", index=False)
            spreadsheet_safe(frame).to_csv(root / "data" / f"{name}.csv", index=False)  # the Parquet twin keeps the text exactly
        package = data_package(tables, root, options, not options.keep_identities)
        (root / "datapackage.json").write_text(json.dumps(package, indent=2, ensure_ascii=False), encoding="utf-8")
        jsonld = croissant(tables, root, options)
        if jsonld is not None:
            (root / "croissant.json").write_text(json.dumps(jsonld, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        (root / "CITATION.cff").write_text(citation_cff(options), encoding="utf-8")
        (root / "README.md").write_text(datasheet(tables, options, not options.keep_identities, sources, corpora),
                                        encoding="utf-8")
        write_checksums(root)
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return ReleaseSummary(out, {n: len(t) for n, t in tables.items()}, salt_origin, files)
