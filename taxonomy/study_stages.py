"""The taxonomy layer's stages of ``reeng study``: gold import, lint, rater agreement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reeng.datasets import locate
from reeng.study import StudyContext


def gold_stage(ctx: StudyContext) -> dict[str, Any]:
    """Import the human-labeled defects (and the study's negatives) as normalized tables."""
    from taxonomy.gold import import_defects, import_non_reengineering, write_table

    cfg = ctx.section("gold")
    defects_src = ctx.path(cfg.get("defects")) or locate("jiang2024-defects")
    out = ctx.out / "gold"
    out.mkdir()
    defects = import_defects(defects_src)
    write_table(defects, out, "defects")
    ctx.artifacts["defects"] = out / "defects.parquet"
    ctx.artifacts["gold_csv"] = defects_src
    lines = [f"{len(defects)} defects from {defects['issue_url'].nunique()} issues in "
             f"{defects[['owner', 'repo']].drop_duplicates().shape[0]} repositories"]
    for dim in ("manifestation", "stage", "reporter"):
        counts = defects[dim].value_counts()
        lines.append(f"{dim}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    negatives_src = ctx.path(cfg.get("non_reengineering")) or locate("jiang2024-non-reengineering")
    negatives = import_non_reengineering(negatives_src)
    write_table(negatives, out, "non_reengineering")
    ctx.artifacts["non_reengineering"] = out / "non_reengineering.parquet"
    lines.append(f"{len(negatives)} issues filtered out as non-reengineering")
    return {"defects": len(defects), "non_reengineering": len(negatives), "lines": lines}


def lint_stage(ctx: StudyContext) -> dict[str, Any]:
    """Record the data-quality findings of the gold sheet beside the outputs."""
    from taxonomy.lint import lint_file

    source = ctx.artifacts.get("gold_csv") or ctx.path(ctx.section("gold").get("defects")) or locate("jiang2024-defects")
    findings = [f.to_dict() for f in lint_file(source)]
    path = ctx.out / "lint.json"
    path.write_text(json.dumps({"findings": findings}, indent=2, ensure_ascii=False), encoding="utf-8")
    ctx.artifacts["lint"] = path
    kinds: dict[str, int] = {}
    for f in findings:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    return {"findings": len(findings), "lines": [f"{len(findings)} findings: " + ", ".join(f"{k} {v}" for k, v in kinds.items())]}


def agreement_stage(ctx: StudyContext) -> dict[str, Any]:
    """Cohen's kappa between the two raters' final-round sheets."""
    from taxonomy.agreement import agreement

    cfg = ctx.section("agreement")
    a = ctx.path(cfg.get("sheet_a")) or locate("jiang2024-kappa-final1")
    b = ctx.path(cfg.get("sheet_b")) or locate("jiang2024-kappa-final2")
    result = agreement(a, b).to_dict()
    path = ctx.out / "agreement.json"
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    ctx.artifacts["agreement"] = path
    kappas = ", ".join(f"{d} {v['kappa']:.2f}" for d, v in result["dimensions"].items() if v["kappa"] is not None)
    return {"aligned_rows": result["aligned_rows"], "lines": [f"Cohen's kappa: {kappas}"]}


def classify_stage(ctx: StudyContext) -> dict[str, Any]:
    """Label the store's threads, score them against the gold defects, write a machine defect table.

    Runs only when an earlier stage (``corpus``) produced a store; otherwise it says so and does
    nothing. The gold comparison covers the gold issues whose threads are in the store: a
    development set, reported as such.
    """
    store = ctx.artifacts.get("store")
    if store is None:
        return {"skipped": True, "lines": ["no store: the corpus stage produced none, nothing to classify"]}
    from miner.store import open_store
    from taxonomy import classify
    from taxonomy.evaluation import MIN_BOOTSTRAP_UNITS, format_score
    from taxonomy.gold import write_table
    from taxonomy.predictions import machine_defects, write_predictions

    cfg = ctx.section("classify")
    threshold = float(cfg.get("threshold", 0.5))
    local = ctx.path(cfg.get("embedding_model"))  # optional: sentence embeddings for the built-in text models
    encoder = local if local is None or local.exists() else Path(cfg["embedding_model"])  # or an installed package's name
    types = None  # optional: a user's issue-type model decides defect or not (a corpus mined from all issues)
    if cfg.get("issue_type_model"):
        from taxonomy.defect_filter import load_issue_type_model

        types = load_issue_type_model(ctx.path(cfg["issue_type_model"]), encoder)  # type: ignore[arg-type]
    version = classify.builtin_version(encoder, types)  # a bad folder or model fails here, before the long pass
    out = ctx.out / "classify"
    out.mkdir()
    conn = open_store(store, create=False)
    try:  # closed, so the WAL is checkpointed: the study's store file alone holds the predictions
        ids, analysed, _ = classify.analyse_store(conn)
        preds = classify.builtin_predictions(analysed, threshold, embedding_model=encoder, issue_type_model=types)
        write_predictions(conn, ((r, n, p) for (r, n), p in zip(ids, preds)), "builtin", version)
        table = machine_defects(conn, "builtin")
        write_table(table, out, "machine_defects")
        ctx.artifacts["machine_defects"] = out / "machine_defects.parquet"
        gold_src = ctx.artifacts.get("gold_csv") or ctx.path(ctx.section("gold").get("defects")) or locate("jiang2024-defects")
        result = classify.gold_eval(conn, gold_src, threshold=threshold, progress=False, embedding_model=encoder)
    finally:
        conn.close()
    (out / "gold_eval.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    ctx.artifacts["gold_eval"] = out / "gold_eval.json"
    lines = [f"{len(ids)} threads labeled by the built-in labeler; {len(table)} kept as reengineering defects"]
    if result["dimensions"]:
        lines.append(f"gold comparison on {result['threads']} threads / {result['defects']} defects "
                     "(built-in labeler; kappa of the best guess, and on the rows answered at the threshold; 95% CI "
                     f"from {MIN_BOOTSTRAP_UNITS} issues up):")
        for dim, m in result["dimensions"].items():
            best = result["systems"].get(dim, {}).get("builtin_best_guess", {})
            lines.append(f"  {dim}: best guess kappa {format_score(best.get('kappa'), best.get('kappa_ci'))} "
                         f"(coverage {best.get('coverage', 0):.2f}); answered kappa "
                         f"{format_score(m['kappa'], m.get('kappa_ci'))}, coverage {m['coverage']:.2f}, n {m['n']}")
        lines += classify.gold_split_lines(result)
    else:
        lines.append("no gold issue has its thread in the store: no machine-vs-human comparison")
    return {"threads": len(ids), "machine_defects": len(table), "gold_threads": result["threads"], "lines": lines}
