"""Weight porting: rename a foreign state dict's keys by rules, check shapes, report the gaps.

Loading with ``strict=False`` silently is a defect class of its own (a layer keeps its random
initialisation, or a buffer the user configured is overwritten). These helpers make every key
accounted for: loaded, missing in the source, unexpected in the source, shape-mismatched, or
deliberately excluded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reeng.errors import ReengError


@dataclass
class PortReport:
    """Where every key went. ``complete`` means nothing was silently left out."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def to_dict(self) -> dict[str, Any]:
        return {"loaded": len(self.loaded), "missing": self.missing, "unexpected": self.unexpected,
                "mismatched": {k: [list(a), list(b)] for k, (a, b) in self.mismatched.items()},
                "excluded": self.excluded}

    def summary(self) -> str:
        return (f"{len(self.loaded)} loaded, {len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.mismatched)} shape-mismatched, {len(self.excluded)} excluded")


def map_keys(state_dict: Mapping[str, Any], rules: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Rename keys by ordered regex rules (each applied with ``re.sub``), e.g.
    ``[(r"^module\\.", ""), (r"\\.gamma$", ".weight")]``. Two source keys landing on one name is
    an error: one of them would be dropped without a trace."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in state_dict.items():
        new = key
        for pattern, repl in compiled:
            new = pattern.sub(repl, new)
        if new in out:
            raise ReengError(f"key mapping: {origin[new]!r} and {key!r} both map to {new!r}")
        out[new], origin[new] = value, key
    return out


def port_state_dict(
    source: Mapping[str, Any],
    target: Mapping[str, Any],
    rules: Iterable[tuple[str, str]] = (),
    exclude: Iterable[str] = (),
) -> tuple[dict[str, Any], PortReport]:
    """The part of ``source`` (after renaming) that fits ``target`` key for key and shape for
    shape, and a report of the rest. ``exclude`` holds regexes of target keys the user owns
    (e.g. configured anchors) that must never be taken from a checkpoint."""
    mapped = map_keys(source, rules)
    patterns = [re.compile(p) for p in exclude]
    report = PortReport()
    fitted: dict[str, Any] = {}
    for key, value in target.items():
        if any(p.search(key) for p in patterns):
            report.excluded.append(key)
        elif key not in mapped:
            report.missing.append(key)
        elif tuple(mapped[key].shape) != tuple(value.shape):
            report.mismatched[key] = (tuple(mapped[key].shape), tuple(value.shape))
        else:
            fitted[key] = mapped[key]
            report.loaded.append(key)
    report.unexpected = [k for k in mapped if k not in target and not any(p.search(k) for p in patterns)]
    return fitted, report


def load_ported(
    model: Any,
    source: Mapping[str, Any],
    rules: Iterable[tuple[str, str]] = (),
    exclude: Iterable[str] = (),
    allow: Iterable[str] = (),
) -> PortReport:
    """Load what fits and fail loudly on anything else, except keys matching ``allow``
    (regexes of target keys that are expected to stay as initialised, e.g. a new head)."""
    fitted, report = port_state_dict(source, model.state_dict(), rules, exclude)
    allowed = [re.compile(p) for p in allow]
    unexplained = [k for k in [*report.missing, *report.mismatched] if not any(p.search(k) for p in allowed)]
    if unexplained or report.unexpected:
        raise ReengError(f"weight port incomplete: {report.summary()}; "
                         f"first unexplained: {(unexplained + report.unexpected)[0]}")
    model.load_state_dict(fitted, strict=False)
    return report
