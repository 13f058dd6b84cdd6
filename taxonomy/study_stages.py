"""The taxonomy layer's stages of ``reeng study``: gold import, lint, rater agreement."""

from __future__ import annotations

import json
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
