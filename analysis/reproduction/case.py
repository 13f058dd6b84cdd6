"""The case format: metadata, the four callables of a differential test, and the verdict rule.

A case reproduces one real defect as a small program. Its metadata ties it to the study (issue
URLs, taxonomy labels) so results join the analysis report; its body holds a reference, the
reimplementation in its buggy and its fixed form, and a comparison. The verdict is computed
here, not by the case, so every case is judged by the same rule: ``reproduced`` only when the
buggy form deviates AND the fixed form agrees with the reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

LABEL_DIMENSIONS = ("stage", "manifestation", "impact", "root_cause")
REFERENCE_KINDS = ("implementation", "onnx", "recorded", "metric")
VERDICTS = ("reproduced", "not_reproduced", "error", "skipped")
MECHANISMS = ("weight port", "preprocessing", "numerics", "evaluator", "data loading", "training schedule",
              "export", "environment/API")
"""The mechanism classes a case names, so results can be grouped by how a port goes wrong."""
EVIDENCE_PARTS = ("reported", "diagnosis", "fix", "model")
"""What a case's ``evidence`` states, in the case author's own words, from reading its thread:
what the reporter saw and where; what the maintainers diagnosed; what fixed it (comment, commit
or PR and where in the thread); how the case models that mechanism."""
_ISSUE_URL = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+/issues/\d+$")
_CASE_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class SkipCase(Exception):
    """Raised from anywhere in a case when it cannot run here (no CUDA, a package missing)."""


class MetadataError(Exception):
    """A case whose metadata is malformed; it runs to verdict ``error`` with this reason."""


@dataclass(frozen=True)
class CaseMeta:
    """What a case claims: which defect it reproduces and how.

    ``versions`` maps a distribution name to a PEP 440 specifier the case is known to
    reproduce on (e.g. ``{"torch": ">=2.0"}``); outside it the case is skipped, because a
    defect that depends on a library's behaviour may simply not exist in another release.
    """

    id: str
    title: str
    issues: tuple[str, ...]
    labels: dict[str, str]
    reference: str
    reference_kind: str
    requires: tuple[str, ...] = ()
    needs_cuda: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    defect_class: str = ""
    mechanism: str = ""
    evidence: dict[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Everything wrong with the metadata, validated against the shipped taxonomy."""
        from taxonomy.model import load_taxonomy

        found: list[str] = []
        if not _CASE_ID.match(self.id or ""):
            found.append(f"id {self.id!r} is not a lower_snake_case name")
        if not self.issues:
            found.append("no issue URL given")
        found += [f"issue {url!r} is not a GitHub issue URL" for url in self.issues if not _ISSUE_URL.match(str(url))]
        if self.reference_kind not in REFERENCE_KINDS:
            found.append(f"reference_kind {self.reference_kind!r} not one of {', '.join(REFERENCE_KINDS)}")
        # optional for a researcher's own case; the shipped library requires both (its tests)
        if self.mechanism and self.mechanism not in MECHANISMS:
            found.append(f"mechanism {self.mechanism!r} not one of {', '.join(MECHANISMS)}")
        if self.evidence:
            found += [f"evidence part {part!r} missing or empty" for part in EVIDENCE_PARTS
                      if not str(self.evidence.get(part, "")).strip()]
            found += [f"unknown evidence part {k!r}" for k in self.evidence if k not in EVIDENCE_PARTS]
        tax = load_taxonomy()
        for dim_id in LABEL_DIMENSIONS:
            value = self.labels.get(dim_id)
            if value is None:
                found.append(f"label {dim_id} missing")
                continue
            if value not in tax.dimension(dim_id).ids:
                found.append(f"label {dim_id}={value!r} is not a {dim_id} category id")
        found += [f"unknown label dimension {k!r}" for k in self.labels if k not in LABEL_DIMENSIONS]
        for dist, spec in self.versions.items():
            from packaging.specifiers import InvalidSpecifier, SpecifierSet

            try:
                SpecifierSet(spec)
            except InvalidSpecifier:
                found.append(f"version specifier {spec!r} for {dist} is not PEP 440")
        return found


@dataclass
class Comparison:
    """One comparison of a candidate against the reference.

    ``status`` separates the ways of disagreeing, because a NaN is a finding of its own: a
    model that outputs NaN does not merely exceed a tolerance.
    """

    agrees: bool
    status: str  # agree | deviate | nonfinite | raised | shape_mismatch
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaseContext:
    """What a case sees at run time: device, dtypes, repeats, seed and where figures go."""

    device: str = "cpu"
    dtypes: tuple[str, ...] = ("fp32",)
    repeat: int = 5
    seed: int = 0
    out: Path | None = None
    figures: list[Path] = field(default_factory=list)

    def require_cuda(self) -> None:
        if self.device != "cuda":
            raise SkipCase(f"needs CUDA (device resolved to {self.device})")

    def figure_path(self, name: str) -> Path | None:
        """Where to write a figure, recorded for the result; None when no output folder is set."""
        if self.out is None:
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / name
        self.figures.append(path)
        return path


class ReproCase:
    """Base class of a case. Subclasses set ``meta`` (via :func:`case`) and implement the parts.

    ``buggy``/``fixed`` may raise the exception types named in ``expect_raises`` when the
    defect is a crash: for the buggy form that counts as the deviation, for the fixed form it
    is always a failure to agree.
    """

    meta: ClassVar[CaseMeta]
    expect_raises: ClassVar[tuple[type[BaseException], ...]] = ()

    def inputs(self, ctx: CaseContext) -> Any:
        """Seeded deterministic inputs shared by all forms."""
        return None

    def reference(self, ctx: CaseContext, inputs: Any) -> Any:
        raise NotImplementedError

    def buggy(self, ctx: CaseContext, inputs: Any) -> Any:
        raise NotImplementedError

    def fixed(self, ctx: CaseContext, inputs: Any) -> Any:
        raise NotImplementedError

    def compare(self, ctx: CaseContext, reference: Any, candidate: Any, inputs: Any) -> Comparison:
        """Default: the fp64-anchored tolerance rule on tensors (see comparators)."""
        from analysis.reproduction.comparators import tolerance_check

        return tolerance_check(candidate, reference, self.reference64(ctx, inputs))

    def reference64(self, ctx: CaseContext, inputs: Any) -> Any:
        """The reference run in float64 (default: the reference itself, already exact)."""
        return self.reference(ctx, inputs)


def case(**meta: Any):
    """Class decorator attaching :class:`CaseMeta`; validation happens when the case runs.

    Validation is deferred so that one malformed case is reported as ``error`` with the reason
    instead of breaking the import of the whole library.
    """

    def wrap(cls: type[ReproCase]) -> type[ReproCase]:
        cls.meta_id = str(meta.get("id") or "")  # type: ignore[attr-defined]
        try:
            cls.meta = CaseMeta(
                id=meta.pop("id"),
                title=meta.pop("title"),
                issues=tuple(meta.pop("issues")),
                labels=dict(meta.pop("labels")),
                reference=meta.pop("reference"),
                reference_kind=meta.pop("reference_kind"),
                requires=tuple(meta.pop("requires", ())),
                needs_cuda=bool(meta.pop("needs_cuda", False)),
                versions=dict(meta.pop("versions", {})),
                defect_class=meta.pop("defect_class", ""),
                mechanism=meta.pop("mechanism", ""),
                evidence=dict(meta.pop("evidence", {})),
            )
            if meta:
                raise MetadataError(f"unknown metadata field(s) {', '.join(sorted(meta))}")
        except KeyError as exc:
            cls.meta_error = f"metadata field {exc.args[0]} missing"  # type: ignore[attr-defined]
        except (MetadataError, TypeError, ValueError) as exc:
            cls.meta_error = str(exc)  # type: ignore[attr-defined]
        return cls

    return wrap
