"""Seeded, replayable study samples drawn from a store.

Jiang et al. (EMSE 2024) sampled, per repository, closed issues with at least 10 comments: 10%
of them, or 20 issues where at most 200 qualified. Their draw was not seeded, so it cannot be
repeated; here every draw is seeded per repository (the seed and the repository name fix the
generator, so adding a repository does not change the others' draws) and recorded in the store
(``samples`` / ``sample_issues``) with its protocol and parameters.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import random
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from miner import store
from reeng.errors import ReengError


@dataclass(frozen=True)
class Protocol:
    """Which issues qualify and how many of them are drawn per repository."""

    state: str = "closed"          # "": any state
    min_comments: int = 10
    fraction: float = 0.10         # share drawn where more than ``small_population`` qualify
    small_population: int = 200
    small_draw: int = 20           # drawn (at most) where at most ``small_population`` qualify

    def size(self, population: int) -> int:
        if population <= self.small_population:
            return min(population, self.small_draw)
        return round(population * self.fraction)


PROTOCOLS = {"jiang2024": Protocol()}


STATES = {"open": "open", "closed": "closed", "any": ""}  # what `--state` and ``state=`` take -> Protocol.state


def protocol(name: str, **overrides: Any) -> Protocol:
    """A named protocol with some parameters replaced (``None`` values are ignored).

    ``state`` is ``open``, ``closed`` or ``any``; a parameter the protocol does not have, or a value
    of the wrong type, is one clear error (``reeng sample`` and ``Corpus.sample`` alike).
    """
    if name not in PROTOCOLS:
        raise ReengError(f"{name!r}: unknown sampling protocol (known: {', '.join(PROTOCOLS)})")
    defaults = asdict(PROTOCOLS[name])
    for key in overrides:
        if key not in defaults:
            raise ReengError(f"{key}: not a parameter of protocol {name!r} (its parameters: {', '.join(defaults)})")
    values = {**defaults, **{k: v for k, v in overrides.items() if v is not None}}
    if values["state"] not in STATES.values():
        if values["state"] not in STATES:
            raise ReengError(f"state {values['state']!r}: one of {', '.join(STATES)}")
        values["state"] = STATES[values["state"]]
    if isinstance(values["fraction"], bool) or not isinstance(values["fraction"], (int, float)):
        raise ReengError(f"fraction {values['fraction']!r}: a number in (0, 1]")
    for key in ("min_comments", "small_population", "small_draw"):
        if isinstance(values[key], bool) or not isinstance(values[key], int):
            raise ReengError(f"{key.replace('_', '-')} {values[key]!r}: a whole number, 0 or more")
    if not 0 < values["fraction"] <= 1:
        raise ReengError(f"fraction {values['fraction']}: must be in (0, 1]")
    for key in ("min_comments", "small_population", "small_draw"):
        if values[key] < 0:
            raise ReengError(f"{key.replace('_', '-')} {values[key]}: must be 0 or more")
    return Protocol(**values)


def _rng(seed: int, repo: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{repo}".encode()).digest()[:8], "big"))


def _known(conn: sqlite3.Connection, repos: list[str]) -> list[str]:
    """The stored names of ``repos`` (case-insensitive, former names too); an unknown one is an error."""
    stored = {r for (r,) in conn.execute("SELECT DISTINCT repo FROM issues")}
    names = []
    for repo in repos:
        store.check_repo_name(repo)
        name = store.canonical_repo(conn, repo)
        if name not in stored:
            held = ", ".join(sorted(stored)[:5]) + (", ..." if len(stored) > 5 else "")
            raise ReengError(f"{repo}: no threads of this repository in the store (it holds: {held or 'none'})")
        names.append(name)
    return names


def draw(conn: sqlite3.Connection, name: str, params: Protocol, seed: int,
         repos: list[str] | None = None) -> dict[str, Any]:
    """Draw and record a sample; return its id, counts per repository and the drawn issues."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ReengError(f"seed {seed!r}: a whole number, 0 or more")
    where, args = ["comments_count >= ?"], [params.min_comments]
    if params.state:
        where.append("state = ?")
        args.append(params.state)
    if repos:
        repos = _known(conn, repos)
        where.append(f"repo IN ({', '.join('?' for _ in repos)})")
        args.extend(repos)
    rows = conn.execute(f"SELECT repo, number FROM issues WHERE {' AND '.join(where)} ORDER BY repo, number", args)
    population: dict[str, list[int]] = {}
    for row in rows:
        population.setdefault(row["repo"], []).append(row["number"])
    drawn = {repo: sorted(_rng(seed, repo).sample(numbers, params.size(len(numbers))))
             for repo, numbers in population.items()}
    total = sum(len(v) for v in population.values())
    with store.transaction(conn):
        cur = conn.execute(
            "INSERT INTO samples(protocol, parameters, seed, created_at, population, drawn) VALUES (?, ?, ?, ?, ?, ?)",
            (name, json.dumps({**asdict(params), "repos": repos}, sort_keys=True), seed,
             datetime.now(timezone.utc).isoformat(timespec="seconds"), total, sum(len(v) for v in drawn.values())))
        sample_id = cur.lastrowid
        conn.executemany("INSERT INTO sample_issues(sample_id, repo, number) VALUES (?, ?, ?)",
                         [(sample_id, repo, n) for repo, numbers in drawn.items() for n in numbers])
    return {"sample_id": sample_id, "protocol": name, "parameters": asdict(params), "seed": seed,
            "population": {r: len(v) for r, v in population.items()},
            "drawn": [{"repo": r, "number": n} for r, numbers in drawn.items() for n in numbers]}


def sample_keys(conn: sqlite3.Connection, sample: int, source: str) -> set[tuple[str, int]]:
    """The (repo, number) threads of a recorded sample; an unknown sample id is an error naming the known ones."""
    if isinstance(sample, bool) or not isinstance(sample, numbers.Integral):
        raise ReengError(f"sample {sample!r}: a sample id (a whole number, as reeng sample printed it)")
    present = store.table_names(conn)
    known = [r[0] for r in conn.execute("SELECT sample_id FROM samples ORDER BY sample_id")] if "samples" in present else []
    if sample not in known:
        listed = ", ".join(map(str, known)) if known else "none (draw one with `reeng sample`)"
        raise ReengError(f"{source}: no sample {sample} (recorded samples: {listed})")
    rows = conn.execute("SELECT repo, number FROM sample_issues WHERE sample_id = ?", (sample,)).fetchall()
    return {(r[0], int(r[1])) for r in rows}
