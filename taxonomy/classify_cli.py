"""``reeng classify`` and ``reeng annotate``: the classifier's commands.

Heavy libraries (spaCy, scikit-learn, pandas) are imported inside the commands so that
``reeng --help`` stays light.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from reeng.errors import ReengError

DEFAULT_THRESHOLD = 0.5  # mirrors taxonomy.labelers.DEFAULT_THRESHOLD without importing it at start-up


def _cols(value: str) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()]


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@click.group("classify")
def classify_group() -> None:
    """Filter issue threads and label them against the taxonomy, with evidence and probabilities."""


@classify_group.command("train")
@click.option("--data", type=click.Path(path_type=Path), help="CSV or Parquet with text columns and a label column.")
@click.option("--text-cols", default="title,body", show_default=True, help="Text columns, the first being the title.")
@click.option("--label-col", help="The label column (any labels: taxonomy ids, or bug/feature/question).")
@click.option("--store", type=click.Path(path_type=Path), help="Train from weak labels over this store's threads instead.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Model file to write (.skops).")
@click.option("--fast", is_flag=True, help="Hashed word n-grams only (no spaCy evidence features): faster, less accurate.")
@click.option("--weak-method", type=click.Choice(["weighted", "label-model"]), default="weighted", show_default=True,
              help="With --store: how the rules' votes become training labels.")
@click.option("--embedding-model", type=click.Path(path_type=Path), help="Local sentence-transformers model folder (optional).")
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON.")
def train_command(data: Path | None, text_cols: str, label_col: str | None, store: Path | None, out: Path, fast: bool,
                  weak_method: str, embedding_model: Path | None, as_json: bool) -> None:
    """Train a classifier from a labeled table, or from weak labels over a store (--store)."""
    from taxonomy import classify, models

    if embedding_model is not None:
        from taxonomy.embeddings import check_model

        check_model(embedding_model)  # fail before minutes of evidence extraction, not after
    started = time.perf_counter()
    if store is not None:
        from miner.store import open_store

        conn = open_store(store, create=False)
        _, analysed, _ = classify.analyse_store(conn, with_evidence=True)
        extracted = time.perf_counter()
        model, summary = classify.weak_model(analysed, fast=fast, method=weak_method, embedding_model=embedding_model)
        summary["evidence_seconds"] = round(extracted - started, 1)
        summary["fit_seconds"] = round(time.perf_counter() - extracted, 1)
    else:
        if data is None or not label_col:
            raise ReengError("train needs --data FILE --label-col COL (or --store S for weak supervision)")
        table = classify.read_labeled_table(data, _cols(text_cols), label_col, with_evidence=not fast)
        model, summary = classify.train_table(table, label_col, fast=fast,
                                              params={"data": str(data), "text_cols": _cols(text_cols), "label_col": label_col},
                                              embedding_model=embedding_model)
    models.save(model, out)
    summary.update({"model": str(out), "targets": model.meta["targets"], "seconds": round(time.perf_counter() - started, 1)})
    if as_json:
        _echo_json(summary)
        return
    for target, info in model.meta["targets"].items():
        click.echo(f"{target}: {info['n_train']} rows, {len(info['classes'])} classes ({info['classifier']})")
    click.echo(f"model written to {out} in {summary['seconds']} s")


@classify_group.command("evaluate")
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="A trained model (omit with --cv).")
@click.option("--data", required=True, type=click.Path(path_type=Path))
@click.option("--text-cols", default="title,body", show_default=True)
@click.option("--label-col", required=True)
@click.option("--cv", "folds", type=int, help="k-fold cross-validation of a fresh model on --data instead of --model.")
@click.option("--fast", is_flag=True, help="With --cv: cross-validate the fast model.")
@click.option("--json", "as_json", is_flag=True)
def evaluate_command(model_path: Path | None, data: Path, text_cols: str, label_col: str, folds: int | None, fast: bool,
                     as_json: bool) -> None:
    """Macro-F1, per-class precision/recall/F1, accuracy, Cohen's kappa and confusion matrix."""
    from taxonomy import classify, models
    from taxonomy.evaluation import cross_validate, scores
    from taxonomy.evidence import evidence_keys

    if (model_path is None) == (folds is None):
        raise ReengError("evaluate needs exactly one of --model MODEL or --cv K")
    if folds is not None:
        table = classify.read_labeled_table(data, _cols(text_cols), label_col, with_evidence=not fast)
        rows = [i for i in classify.usable(table) if table.labels[i] is not None]
        idx, pred = cross_validate([table.analysed[i].prepared for i in rows],  # type: ignore[misc]
                                   None if fast else [evidence_keys(table.analysed[i].evidence) for i in rows],
                                   [table.labels[i] for i in rows], label_col, folds=folds, fast=fast)
        result = scores([table.labels[rows[i]] for i in idx], pred)  # type: ignore[misc]
        result["folds"] = folds
    else:
        model = models.load(model_path)  # type: ignore[arg-type]
        table = classify.read_labeled_table(data, _cols(text_cols), label_col, with_evidence=not model.fast)
        target = label_col if label_col in model.targets else model.targets[0]
        preds = classify.model_predictions(model, table.analysed, threshold=0.0)
        rows = [i for i, y in enumerate(table.labels) if y is not None]
        result = scores([table.labels[i] for i in rows], [preds[i][target].candidate for i in rows])  # type: ignore[misc]
        result["target"] = target
    if as_json:
        _echo_json(result)
        return
    click.echo(f"n {result['n']}  macro-F1 {result['macro_f1']:.3f}  accuracy {result['accuracy']:.3f}  "
               f"kappa {result['kappa'] if result['kappa'] is None else round(result['kappa'], 3)}")
    for label, m in result["per_class"].items():
        click.echo(f"  {label:<32} P {m['precision']:.2f}  R {m['recall']:.2f}  F1 {m['f1']:.2f}  n {m['support']}")


@classify_group.command("predict")
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="A trained model file.")
@click.option("--builtin", is_flag=True, help="Use the built-in knowledge-based labeler (no training needed).")
@click.option("--store", required=True, type=click.Path(path_type=Path))
@click.option("--threshold", type=float, default=DEFAULT_THRESHOLD, show_default=True,
              help="Below this probability a dimension abstains (needs human review).")
@click.option("--json", "as_json", is_flag=True)
def predict_command(model_path: Path | None, builtin: bool, store: Path, threshold: float, as_json: bool) -> None:
    """Label every thread of a store; labels, probabilities and evidence go into its predictions table."""
    from miner.store import open_store
    from taxonomy import classify, models
    from taxonomy.predictions import write_predictions

    if builtin == (model_path is not None):
        raise ReengError("predict needs exactly one of --model MODEL or --builtin")
    model = models.load(model_path) if model_path else None  # load before the long pass: fail fast
    conn = open_store(store, create=False)
    started = time.perf_counter()
    ids, analysed, _ = classify.analyse_store(conn, with_evidence=True)
    if model is None:
        preds, name, version = classify.builtin_predictions(analysed, threshold), "builtin", classify.BUILTIN_VERSION
    else:
        preds = classify.model_predictions(model, analysed, threshold)
        name, version = Path(model_path).stem, model.meta["training_data_sha256"][:12]  # type: ignore[arg-type]
    written = write_predictions(conn, ((r, n, p) for (r, n), p in zip(ids, preds)), name, version)
    summary: dict[str, Any] = {"threads": len(ids), "rows": written, "model": name,
                               "seconds": round(time.perf_counter() - started, 1), "dimensions": {}}
    for dim in (preds[0] if preds else {}):
        labels = [p[dim].label for p in preds]
        counts: dict[str, int] = {}
        for label in labels:
            counts[label or "(needs review)"] = counts.get(label or "(needs review)", 0) + 1
        summary["dimensions"][dim] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    if as_json:
        _echo_json(summary)
        return
    click.echo(f"{len(ids)} threads labeled by {name} in {summary['seconds']} s ({written} prediction rows)")
    for dim, counts in summary["dimensions"].items():
        click.echo(f"  {dim}: " + ", ".join(f"{k} {v}" for k, v in list(counts.items())[:6]))


@classify_group.command("gold-eval")
@click.option("--store", required=True, type=click.Path(path_type=Path))
@click.option("--gold", type=click.Path(path_type=Path), help="Gold defects CSV (default: the study's published file).")
@click.option("--weak/--no-weak", default=True, show_default=True,
              help="Also score a model trained on weak labels of every non-gold thread in the store.")
@click.option("--json", "as_json", is_flag=True)
def gold_eval_command(store: Path, gold: Path | None, weak: bool, as_json: bool) -> None:
    """Machine vs human labels for the gold defects whose threads are in the store."""
    from miner.store import open_store
    from reeng.datasets import locate
    from taxonomy.classify import gold_eval

    conn = open_store(store, create=False)
    result = gold_eval(conn, gold or locate("jiang2024-defects"), weak=weak)
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{result['defects']} gold defects in {result['threads']} threads of the store "
               f"({result.get('note')})")
    for dim, systems in result.get("systems", {}).items():
        parts = []
        for name, m in systems.items():
            if m.get("macro_f1") is None:
                parts.append(f"{name} skipped")
            else:
                kappa = "n/a" if m["kappa"] is None else f"{m['kappa']:.2f}"
                parts.append(f"{name} F1 {m['macro_f1']:.2f} k {kappa}")
        click.echo(f"  {dim:<14} n {systems['builtin']['n']:>3}  " + "; ".join(parts))


@click.group("annotate")
def annotate_group() -> None:
    """Labeling sheets with suggestions, rater agreement and adjudication, active learning."""


@annotate_group.command("export")
@click.option("--store", required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Sheet path without suffix (.csv and .xlsx are written).")
@click.option("--sample", default=50, show_default=True, help="How many threads to put on the sheet.")
@click.option("--seed", default=0, show_default=True)
@click.option("--model", default="builtin", show_default=True, help="Whose stored predictions to suggest.")
def export_command(store: Path, out: Path, sample: int, seed: int, model: str) -> None:
    """Write a labeling sheet (CSV and XLSX) with suggestions and the instrument's definitions."""
    from miner.store import open_store
    from taxonomy.annotate import export_sheet

    result = export_sheet(open_store(store, create=False), out, sample=sample, seed=seed, model=model)
    click.echo(f"{result['threads']} threads: " + ", ".join(result["files"]))


@annotate_group.command("import")
@click.argument("sheet_a", type=click.Path(path_type=Path))
@click.argument("sheet_b", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("adjudication"), show_default=True,
              help="Folder for agreement.json and disagreements.csv.")
@click.option("--adjudicated", type=click.Path(path_type=Path), help="The disagreements file with 'adjudicated' filled in.")
@click.option("--store", type=click.Path(path_type=Path), help="Store the final labels (with provenance) in this store.")
@click.option("--json", "as_json", is_flag=True)
def import_command(sheet_a: Path, sheet_b: Path, out: Path, adjudicated: Path | None, store: Path | None, as_json: bool) -> None:
    """Kappa per dimension between two raters' sheets, disagreements to adjudicate, final labels."""
    from reeng.outputs import staged_dir
    from taxonomy.annotate import compare_sheets, dumps, final_labels, store_labels

    result, disagreements = compare_sheets(sheet_a, sheet_b)
    with staged_dir(out) as staging:
        (staging / "agreement.json").write_text(dumps(result), encoding="utf-8")
        disagreements.to_csv(staging / "disagreements.csv", index=False)
        stored = None
        if adjudicated is not None or disagreements.empty:
            labels = final_labels(sheet_a, sheet_b, adjudicated)
            labels.to_csv(staging / "labels.csv", index=False)
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
@click.option("--json", "as_json", is_flag=True)
def queue_command(store: Path, model: str, limit: int, as_json: bool) -> None:
    """The threads to label next, least confident first (active learning)."""
    from miner.store import open_store
    from taxonomy.annotate import queue

    items = queue(open_store(store, create=False), model, limit)
    if as_json:
        _echo_json(items)
        return
    for item in items:
        click.echo(f"{item['repo']}#{item['number']}  confidence {item['confidence']:.2f}  "
                   f"weakest {item['weakest_dimension']}  needs review in {item['needs_review']} dimension(s)")
