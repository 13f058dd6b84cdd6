"""Prepare and extract evidence for many threads at once, in parallel, one bad row never stopping the rest.

A thread comes in as its title, the reporter's part (opening post and own follow-ups) and the
discussion, or as a :class:`~taxonomy.thread.RawThread` that the worker splits into those parts
itself (:mod:`taxonomy.thread`: bots, quotes and URLs dropped); each part is prepared on its
own so that every dimension can read the part that decides it, and the evidence remembers
which part it is from.

All of it (role split, hygiene, preparation, evidence) runs in worker processes, each building
the matchers once; the parent only reads the store and collects the results. :func:`map_chunks`
is the one process pool, also used to label the analysed threads in parallel. A row that fails
(text that is not text, say) comes back as an :class:`Analysed` with ``error`` set, and its
predictions abstain with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from taxonomy.evidence import Evidence, default_extractor
from taxonomy.text import PreparedText, combine, prepare
from taxonomy.thread import RawThread

CHUNK = 64

A = TypeVar("A")
B = TypeVar("B")


@dataclass
class Analysed:
    """A thread's prepared text (whole, and the reporter's part) and evidence, or the error that prevented them."""

    prepared: PreparedText | None
    evidence: list[Evidence] = field(default_factory=list)
    error: str | None = None
    opening: PreparedText | None = None

    def part(self, which: str) -> PreparedText | None:
        """``"opening"`` (the reporter's part) or ``"whole"`` (the thread)."""
        return self.opening if which == "opening" else self.prepared


Row = tuple[object, list[object]] | tuple[object, list[object], list[object]] | RawThread


def analyse(title: object, parts: list[object], discussion: list[object] = (), with_evidence: bool = True) -> Analysed:  # type: ignore[assignment]
    """Prepare one thread and extract its evidence; any failure becomes an error, not an exception.

    ``parts`` is the reporter's part (the body, and their follow-ups), ``discussion`` the
    others' comments; a table row has no discussion.
    """
    texts = [*parts, *discussion]
    if title is not None and not isinstance(title, str) or any(p is not None and not isinstance(p, str) for p in texts):
        return Analysed(None, error="text is not a string")
    try:
        opening = prepare(title, parts)  # type: ignore[arg-type]
        rest = prepare(None, list(discussion)) if discussion else None  # type: ignore[arg-type]
        whole = combine(opening, rest) if rest is not None else opening
        evidence = []
        if whole.english and with_evidence:
            extractor = default_extractor()
            evidence = extractor.extract(opening, "opening") + (extractor.extract(rest, "discussion") if rest else [])
            _ = whole.evidence_logs  # condensed here, once, like the parts' for their evidence: it travels with the thread
    except Exception as exc:  # noqa: BLE001 - one row's failure must not stop the batch
        return Analysed(None, error=f"{type(exc).__name__} while analysing")
    return Analysed(whole, evidence, opening=opening)


def analyse_row(row: Row, with_evidence: bool = True) -> Analysed:
    """:func:`analyse` for one row: (title, parts[, discussion]), or a raw thread split by role first."""
    if isinstance(row, RawThread):
        try:
            parts = row.split()
        except Exception as exc:  # noqa: BLE001 - one row's failure must not stop the batch
            return Analysed(None, error=f"{type(exc).__name__} while splitting the thread")
        return analyse(parts.title, parts.opening, parts.discussion, with_evidence)
    return analyse(row[0], row[1], row[2] if len(row) > 2 else (), with_evidence)  # type: ignore[misc]


def _analyse_chunk(rows: list[Row], with_evidence: bool = True) -> list[Analysed]:
    return [analyse_row(row, with_evidence) for row in rows]


def chunked(rows: Iterable[A], size: int = CHUNK) -> Iterator[list[A]]:
    """``rows`` in lists of ``size`` (the last one shorter)."""
    chunk: list[A] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


_STEP: Callable[[Any], Any] | None = None  # a worker process's step, set once by its initializer


def _set_step(step: Callable[[Any], Any]) -> None:
    global _STEP
    _STEP = step


def _run_step(chunk: Any) -> Any:
    assert _STEP is not None, "the pool's initializer sets the step"
    return _STEP(chunk)


def map_chunks(step: Callable[[list[A]], list[B]], chunks: Iterable[list[A]], workers: int) -> Iterator[list[B]]:
    """``step`` over each chunk, results in order: in this process for one worker, else in a pool.

    The step (a function, or a bound method whose object holds loaded models) goes to each
    worker once, at its start, not with every chunk; where processes are forked, what the
    parent has loaded before (cached models) is shared with the workers, not loaded again.
    """
    if workers == 1:
        yield from map(step, chunks)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_set_step, initargs=(step,)) as pool:
        yield from pool.map(_run_step, chunks)


def analyse_many(rows: Iterable[Row], total: int | None = None, workers: int | None = None,
                 progress: bool = True, label: str = "evidence", with_evidence: bool = True) -> list[Analysed]:
    """:func:`analyse_row` for many rows, in order, with a progress bar."""
    from functools import partial

    from reeng.progress import progress_bar

    results: list[Analysed] = []
    # The bar goes to stderr: stdout stays clean for --json.
    with progress_bar(progress) as bar:
        task = bar.add_task(label, total=total)
        for done in map_chunks(partial(_analyse_chunk, with_evidence=with_evidence), chunked(rows),
                               workers or default_workers()):
            results.extend(done)
            bar.advance(task, len(done))
    return results
