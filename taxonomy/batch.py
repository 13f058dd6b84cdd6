"""Prepare and extract evidence for many threads at once, in parallel, one bad row never stopping the rest.

Evidence extraction is the slow step (spaCy tokenization); it runs in worker processes, each
building the matchers once. A row that fails (text that is not text, say) comes back as an
:class:`Analysed` with ``error`` set, and its predictions abstain with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from taxonomy.evidence import Evidence, default_extractor
from taxonomy.text import PreparedText, prepare

CHUNK = 64


@dataclass
class Analysed:
    """A thread's prepared text and evidence, or the error that prevented them."""

    prepared: PreparedText | None
    evidence: list[Evidence] = field(default_factory=list)
    error: str | None = None


def analyse(title: object, parts: list[object], with_evidence: bool = True) -> Analysed:
    """Prepare one thread and extract its evidence; any failure becomes an error, not an exception."""
    if title is not None and not isinstance(title, str) or any(p is not None and not isinstance(p, str) for p in parts):
        return Analysed(None, error="text is not a string")
    try:
        prepared = prepare(title, parts)  # type: ignore[arg-type]
        evidence = default_extractor().extract(prepared) if prepared.english and with_evidence else []
    except Exception as exc:  # noqa: BLE001 - one row's failure must not stop the batch
        return Analysed(None, error=f"{type(exc).__name__} while analysing")
    return Analysed(prepared, evidence)


def _analyse_chunk(rows: list[tuple[object, list[object]]], with_evidence: bool = True) -> list[Analysed]:
    return [analyse(title, parts, with_evidence) for title, parts in rows]


def _chunks(rows: Iterable[tuple[object, list[object]]]) -> Iterator[list[tuple[object, list[object]]]]:
    chunk: list[tuple[object, list[object]]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def analyse_many(rows: Iterable[tuple[object, list[object]]], total: int | None = None, workers: int | None = None,
                 progress: bool = True, label: str = "evidence", with_evidence: bool = True) -> list[Analysed]:
    """:func:`analyse` for (title, [body, comments...]) rows, in order, with a progress bar."""
    from functools import partial

    from rich.progress import Progress

    workers = workers or default_workers()
    results: list[Analysed] = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(label, total=total)
        if workers == 1:
            for chunk in _chunks(rows):
                results.extend(_analyse_chunk(chunk, with_evidence))
                bar.advance(task, len(chunk))
            return results
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(partial(_analyse_chunk, with_evidence=with_evidence), _chunks(rows)):
                results.extend(done)
                bar.advance(task, len(done))
    return results
