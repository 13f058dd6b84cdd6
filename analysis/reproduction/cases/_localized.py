"""Shared step of the porting cases: localize a candidate against the reference and plot it."""

from __future__ import annotations

from typing import Any

from analysis.reproduction.case import CaseContext, Comparison
from analysis.reproduction.localize import Localization, localize_models


def localize_into(ctx: CaseContext, name: str, reference: Any, candidate: Any, *inputs: Any,
                  mapping: dict[str, str] | None = None) -> Localization:
    """Localize, write the plot when the run has an output folder, and return the result."""
    found = localize_models(reference, candidate, *inputs, mapping=mapping)
    path = ctx.figure_path(f"localization_{name}.png")
    if path is not None:
        found.plot(path)
    return found


def with_localization(result: Comparison, found: Localization | None) -> Comparison:
    if found is not None:
        result.figures["culprit"] = found.culprit
        result.figures["layers"] = [{k: v for k, v in row.items() if k != "candidate_layer"} for row in found.table()]
        if found.culprit:
            result.detail += f"; divergence introduced at {found.culprit}"
    return result
