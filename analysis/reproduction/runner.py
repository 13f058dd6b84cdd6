"""Finding, selecting and running cases; one result per case, whatever happens inside it.

A case that raises, has malformed metadata, or cannot be imported yields verdict ``error`` with
the reason, and the run goes on. Results follow the layer contract
``{"results": [{"case", "issues", "labels", "verdict", "figures", "seconds", "versions"}]}``;
reasons and measured figures of each check sit beside them under ``"details"`` so the result
rows keep exactly the agreed keys.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import pkgutil
import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.reproduction.case import (
    LABEL_DIMENSIONS,
    REFERENCE_KINDS,
    CaseContext,
    Comparison,
    ReproCase,
    SkipCase,
)
from analysis.reproduction.parity import versions
from reeng.errors import ReengError

SELECT_KEYS = (*LABEL_DIMENSIONS, "id", "issue", "reference_kind")
DTYPES = ("fp32", "fp16", "bf16")
CORE_DISTRIBUTIONS = ("torch", "numpy")


@dataclass
class CaseEntry:
    """A discovered case: its class, or why it could not be loaded."""

    id: str
    module: str
    cls: type[ReproCase] | None = None
    load_error: str | None = None

    @property
    def meta(self) -> Any:
        return getattr(self.cls, "meta", None) if self.cls else None

    def describe(self) -> dict[str, Any]:
        meta = self.meta
        if meta is None:
            return {"case": self.id, "module": self.module, "error": self.problem()}
        return {"case": self.id, "title": meta.title, "issues": list(meta.issues), "labels": meta.labels,
                "reference": meta.reference, "reference_kind": meta.reference_kind,
                "requires": list(meta.requires), "needs_cuda": meta.needs_cuda, "versions": meta.versions,
                "defect_class": meta.defect_class, "mechanism": meta.mechanism, "evidence": meta.evidence,
                "module": self.module, "error": self.problem()}

    def problem(self) -> str | None:
        if self.load_error:
            return self.load_error
        if self.cls is None:
            return "no case class"
        if getattr(self.cls, "meta_error", None):
            return f"malformed metadata: {self.cls.meta_error}"
        problems = self.meta.problems()
        return f"malformed metadata: {'; '.join(problems)}" if problems else None


def _entries_from_module(module: Any, name: str, short: str) -> list[CaseEntry]:
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, ReproCase) and c is not ReproCase and c.__module__ == module.__name__]
    if not classes:
        return [CaseEntry(short, name, load_error="module defines no case")]
    entries = []
    for cls in classes:
        meta = getattr(cls, "meta", None)
        fallback = getattr(cls, "meta_id", "") or short
        entries.append(CaseEntry(meta.id if meta else fallback, name, cls))
    return entries


def _load(module_name: str, path: Path | None = None) -> list[CaseEntry]:
    short = path.stem if path is not None else module_name.rsplit(".", 1)[-1]
    try:
        if path is None:
            module = importlib.import_module(module_name)
        else:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # a broken case file must not stop the others
        return [CaseEntry(short, module_name, load_error=f"import failed: {type(exc).__name__}: {exc}")]
    return _entries_from_module(module, module_name, short)


def discover(extra: list[Path] | None = None) -> list[CaseEntry]:
    """The shipped library (``analysis.reproduction.cases``) plus case files or folders given.
    A named file that is not a loadable case module is an error, and so is a folder without case files."""
    import analysis.reproduction.cases as library

    entries: list[CaseEntry] = []
    for info in sorted(pkgutil.iter_modules(library.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            entries += _load(f"{library.__name__}.{info.name}")
    for path in extra or []:
        if not path.is_dir():
            entries += _load_named(path)
            continue
        files = [file for file in sorted(path.glob("*.py")) if not file.name.startswith("_")]
        if not files:
            raise ReengError(f"--cases {path}: no case files (*.py) in this folder")
        for file in files:
            entries += _load(f"reeng_user_case_{file.stem}", file)
    seen: dict[str, str] = {}
    for entry in entries:  # one id, one row in the results: a second case of the same id would shadow the first
        if entry.id in seen:
            raise ReengError(f"case id {entry.id!r} is defined twice ({seen[entry.id]} and {entry.module}); "
                             "give your case another id")
        seen[entry.id] = entry.module
    return entries


def _load_named(path: Path) -> list[CaseEntry]:
    """A case file the user named: anything but a loadable case module is bad input (in a
    folder, a broken module is an ``error`` entry instead, so the others still run)."""
    if path.suffix != ".py":
        raise ReengError(f"--cases {path}: not a Python case file (expected a .py file or a folder of them)")
    entries = _load(f"reeng_user_case_{path.stem}", path)
    broken = next((e.load_error for e in entries if e.load_error), None)
    if broken:
        raise ReengError(f"--cases {path}: {broken}")
    return entries


def parse_select(expr: str | None) -> dict[str, set[str]]:
    """``'stage=training,manifestation=reproducibility'`` → filters; ``a|b`` means either."""
    if not expr:
        return {}
    filters: dict[str, set[str]] = {}
    for part in (p.strip() for p in expr.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise ReengError(f"--select {part!r}: expected key=value")
        if key not in SELECT_KEYS:
            raise ReengError(f"--select: unknown key {key!r} (known: {', '.join(SELECT_KEYS)})")
        values = {v.strip() for v in value.split("|")}
        if key == "issue":  # GitHub reads owner/repo case-insensitively; a pasted URL may end in "/"
            values = {v.lower().rstrip("/") for v in values}
        if key == "reference_kind" and values - set(REFERENCE_KINDS):
            raise ReengError(f"--select: unknown reference_kind {', '.join(sorted(values - set(REFERENCE_KINDS)))} "
                             f"(known: {', '.join(REFERENCE_KINDS)})")
        if key in LABEL_DIMENSIONS:
            from taxonomy.model import load_taxonomy

            ids = load_taxonomy().dimension(key).ids
            bad = sorted(v for v in values if v not in ids)
            if bad:  # a misspelt category would otherwise select nothing, silently
                raise ReengError(f"--select: unknown {key} {', '.join(bad)} (known: {', '.join(ids)})")
        filters.setdefault(key, set()).update(values)
    return filters


def matches(entry: CaseEntry, filters: dict[str, set[str]]) -> bool:
    """Label filters accept a category or any of its ancestors (root_cause=training selects
    every training-defect leaf)."""
    from taxonomy.model import load_taxonomy

    if not filters:
        return True
    meta = entry.meta
    if meta is None:
        return set(filters) <= {"id"} and entry.id in filters.get("id", set())
    tax = load_taxonomy()
    for key, wanted in filters.items():
        if key == "id":
            ok = meta.id in wanted
        elif key == "issue":
            ok = bool(issue_keys(meta.issues) & wanted)
        elif key == "reference_kind":
            ok = meta.reference_kind in wanted
        else:
            value = meta.labels.get(key)
            dim = tax.dimension(key)
            lineage = {value, *dim.ancestors(value)} if value in dim.ids else {value}
            ok = bool(lineage & wanted)
        if not ok:
            return False
    return True


def issue_keys(urls: Any) -> set[str]:
    """What ``--select issue=`` matches of a case's issues: each URL and its ``owner/repo``, lower-cased."""
    keys: set[str] = set()
    for url in (u.lower().rstrip("/") for u in urls):
        keys |= {url, url.rsplit("/issues/", 1)[0].split("github.com/")[-1]}
    return keys


def select(entries: list[CaseEntry], names: list[str], filters: dict[str, set[str]]) -> list[CaseEntry]:
    """The entries named (all when none) that pass the filters; an unknown name is an error, in
    ``--select id=`` too, and so is an issue or repository no case names."""
    known = {e.id for e in entries}
    unknown = [n for n in [*names, *sorted(filters.get("id", ()))] if n not in known]
    if unknown:
        raise ReengError(f"unknown case(s) {', '.join(unknown)} (see `reeng reproduce list`)")
    issues = issue_keys(url for e in entries if e.meta for url in e.meta.issues)
    unknown = sorted(filters.get("issue", set()) - issues)
    if unknown:  # a mistyped repository would select nothing and run zero cases, exit 0
        raise ReengError(f"--select issue={'|'.join(unknown)}: no case names this issue or repository "
                         "(see `reeng reproduce list`)")
    return [e for e in entries if (not names or e.id in names) and matches(e, filters)]


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ReengError("--device cuda: CUDA is not available here (use auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise ReengError(f"--device {device!r}: expected auto, cpu or cuda")
    return device


def parse_dtypes(spec: str) -> tuple[str, ...]:
    dtypes = tuple(d.strip() for d in spec.split(",") if d.strip())
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        raise ReengError(f"--dtype {spec!r}: expected a comma list of {', '.join(DTYPES)}")
    return dtypes


def _skip_reason(meta: Any, device: str) -> str | None:
    from packaging.specifiers import SpecifierSet

    missing = [p for p in meta.requires if importlib.util.find_spec(p) is None]
    if missing:
        return f"needs package(s) not installed: {', '.join(missing)}"
    if meta.needs_cuda and device != "cuda":
        return f"needs CUDA (device resolved to {device})"
    for dist, spec in meta.versions.items():
        have = versions(dist)[dist]
        if have == "absent" or have not in SpecifierSet(spec, prereleases=True):
            return f"reproduces on {dist}{spec}; installed: {have}"
    return None


def _judge(case: ReproCase, ctx: CaseContext, form: str, reference: Any, inputs: Any) -> Comparison:
    """Run one form and compare it; an expected crash of the buggy form is its deviation."""
    runner = getattr(case, form)
    try:
        candidate = runner(ctx, copy.deepcopy(inputs))
    except case.expect_raises as exc:
        if form == "fixed":
            return Comparison(False, "raised", f"{type(exc).__name__}: {exc}")
        return Comparison(False, "raised", f"raises {type(exc).__name__}: {exc}")
    return case.compare(ctx, reference, candidate, copy.deepcopy(inputs))


def run_case(entry: CaseEntry, ctx: CaseContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """One case → (result row, details). Never raises for anything the case does."""
    import numpy as np
    import torch

    started = time.perf_counter()
    meta = entry.meta
    requires = tuple(meta.requires) if meta else ()
    row: dict[str, Any] = {
        "case": entry.id,
        "issues": list(meta.issues) if meta else [],
        "labels": dict(meta.labels) if meta else {},
        "verdict": "error",
        "figures": [],
        "seconds": 0.0,
        "versions": versions(*CORE_DISTRIBUTIONS, *requires),
    }
    detail: dict[str, Any] = {"reason": None, "buggy": None, "fixed": None}
    problem = entry.problem()
    if problem:
        detail["reason"] = problem
    elif reason := _skip_reason(meta, ctx.device):
        row["verdict"], detail["reason"] = "skipped", reason
    else:
        try:
            random.seed(ctx.seed)
            np.random.seed(ctx.seed)
            torch.manual_seed(ctx.seed)
            case = entry.cls()
            inputs = case.inputs(ctx)
            # each part gets its own copy: one rewriting its inputs in place (x /= 255) must not
            # hand the others other inputs
            reference = case.reference(ctx, copy.deepcopy(inputs))
            buggy = _judge(case, ctx, "buggy", reference, inputs)
            fixed = _judge(case, ctx, "fixed", reference, inputs)
            detail["buggy"] = {"agrees": buggy.agrees, "status": buggy.status, "detail": buggy.detail,
                               "figures": buggy.figures}
            detail["fixed"] = {"agrees": fixed.agrees, "status": fixed.status, "detail": fixed.detail,
                               "figures": fixed.figures}
            reproduced = not buggy.agrees and fixed.agrees
            row["verdict"] = "reproduced" if reproduced else "not_reproduced"
            if not reproduced:
                detail["reason"] = ("the fixed form deviates too: " + fixed.detail) if not fixed.agrees else \
                    ("the buggy form agrees with the reference: " + buggy.detail)
        except SkipCase as exc:
            row["verdict"], detail["reason"] = "skipped", str(exc)
        except (Exception, SystemExit) as exc:  # the verdict of a case that raises (or calls sys.exit)
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            detail["reason"] = f"{type(exc).__name__}: {exc} (at {Path(frame.filename).name}:{frame.lineno})"
    if ctx.out is not None:
        row["figures"] = [str(p.relative_to(ctx.out.parent)) for p in ctx.figures if p.exists()]
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row, detail


def run_cases(
    entries: list[CaseEntry],
    device: str = "auto",
    dtypes: tuple[str, ...] = ("fp32",),
    repeat: int = 5,
    out: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the selected cases; ``out`` (a folder) receives one sub-folder of figures per case."""
    from reeng.progress import progress_bar

    resolved = resolve_device(device)
    results, details = [], {}
    with progress_bar(progress) as bar:
        task = bar.add_task("reproducing", total=len(entries))
        for entry in entries:
            bar.update(task, description=entry.id)
            ctx = CaseContext(device=resolved, dtypes=dtypes, repeat=repeat,
                              out=(out / entry.id) if out is not None else None)
            row, detail = run_case(entry, ctx)
            results.append(row)
            details[entry.id] = detail
            bar.advance(task)
    return {"results": results, "details": details,
            "run": {"device": resolved, "dtypes": list(dtypes), "repeat": repeat,
                    "versions": versions("torch", "numpy", "onnx", "onnxruntime")}}
