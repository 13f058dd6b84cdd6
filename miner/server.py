"""``reeng serve-github``: a local GitHub-compatible API over a store's content, with faults on demand.

GitHub is not reachable from the machines this toolkit is tested on, and a miner that was only
ever tested against mocks would not deserve trust. This server speaks real HTTP on 127.0.0.1 and
answers the REST and GraphQL requests the miner makes, from a store's threads, with GitHub's
mechanics: ``Link`` pagination, weak ETags and 304s that cost nothing, ``X-RateLimit-*`` headers
and a primary limit, and injected faults (5xx, secondary limits with and without
``Retry-After``, dropped connections) drawn from a seeded random generator so runs repeat.

Fault spec (``--faults``): comma-separated ``key=value``. Probabilities per request:
``5xx``, ``secondary403``, ``secondary403_noretry``, ``secondary429``, ``secondary429_noretry``,
``reset``. Others: ``primary_after=N`` (budget per window), ``primary_reset=S`` (window length,
seconds), ``retry_after=S`` (value of Retry-After), ``pulls=N`` (synthetic pull requests mixed into
each repository's REST listing), ``disabled=OWNER/REPO+OWNER/REPO`` (issues disabled),
``bad_token=T`` (answered 401), ``graphql_timeout_above=N`` (GraphQL queries with a ``first``
variable above N answer 502, as GitHub does when a large page times out), ``seed=N``.
Changes to the corpus: ``rename=OWNER/OLD>OWNER/NEW`` (``+``-separated; the old name answers 301
as GitHub's does), ``deleted=OWNER/REPO#N`` (410), ``transferred=OWNER/REPO#N>OWNER/OTHER`` (301 to
the issue's new home), and ``edit_after=N`` (mid-crawl edits: after the N-th issue listing of a
repository, its least recently updated issue is edited and a new issue is opened). ``latency=S``
delays every answer by S seconds, as a distant server does (for concurrency benchmarks).

Timelines and the changed files of pull requests and commits are served from the corpus store's
``events`` and ``fixes`` tables (fixtures the tests write).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from miner import server_graphql
from miner.store import open_store
from reeng.errors import ReengError

PROBABILITIES = ("5xx", "secondary403", "secondary403_noretry", "secondary429", "secondary429_noretry", "reset",
                 "graphql_ratelimited")
SECONDARY_MESSAGE = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


_ISSUE_REF = re.compile(r"[^/#]+/[^/#]+#\d+")  # an issue in --faults: OWNER/REPO#N


@dataclass
class FaultSpec:
    """Parsed ``--faults``; every probability defaults to 0 and the budget to GitHub's 5,000/hour."""

    rates: dict[str, float] = field(default_factory=dict)
    primary_after: int = 5000
    primary_reset: float = 3600.0
    retry_after: int = 1
    pulls: int = 0
    disabled: set[str] = field(default_factory=set)
    bad_token: str | None = None
    graphql_timeout_above: int = 0
    seed: int = 0
    rename: dict[str, str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    transferred: dict[str, str] = field(default_factory=dict)
    edit_after: int = 0
    latency: float = 0.0

    @classmethod
    def parse(cls, spec: str | None) -> FaultSpec:
        faults = cls()
        for part in filter(None, (p.strip() for p in (spec or "").split(","))):
            key, sep, value = part.partition("=")
            try:
                if not sep:
                    raise ValueError
                if key in PROBABILITIES:
                    faults.rates[key] = float(value)
                    if not 0 <= faults.rates[key] <= 1:
                        raise ValueError
                elif key in ("primary_after", "retry_after", "pulls", "seed", "graphql_timeout_above", "edit_after"):
                    setattr(faults, key, int(value))
                    if getattr(faults, key) < 0:  # counts, seconds and a seed: none is negative
                        raise ValueError
                elif key in ("primary_reset", "latency"):
                    setattr(faults, key, float(value))
                    if not getattr(faults, key) >= 0:
                        raise ValueError
                elif key == "disabled":
                    faults.disabled = {r.casefold() for r in value.split("+") if r}
                elif key == "bad_token":
                    faults.bad_token = value
                elif key == "deleted":
                    faults.deleted = set(filter(None, value.split("+")))
                    if not all(_ISSUE_REF.fullmatch(item) for item in faults.deleted):  # OWNER/REPO#N
                        raise ValueError
                elif key in ("rename", "transferred"):
                    pairs = [item.split(">") for item in value.split("+") if item]
                    if any(len(pair) != 2 for pair in pairs):
                        raise ValueError
                    if key == "transferred" and not all(_ISSUE_REF.fullmatch(issue) for issue, _ in pairs):
                        raise ValueError
                    setattr(faults, key, dict(pairs))
                else:
                    raise ReengError(f"fault spec: unknown key {key!r} (known: {', '.join(PROBABILITIES)}, "
                                     "primary_after, primary_reset, retry_after, pulls, disabled, bad_token, "
                                     "graphql_timeout_above, seed, rename, deleted, transferred, edit_after, latency)")
            except ValueError:
                raise ReengError(f"fault spec: {part!r} is not KEY=VALUE with a valid value") from None
        return faults


class Corpus:
    """A store's threads in memory, indexed the ways the API endpoints need them.

    The corpus can change while it is served (renames, deleted and transferred issues, edits in
    the middle of a crawl), as GitHub's data does; :meth:`save` writes what it holds now.
    """

    def __init__(self, conn: sqlite3.Connection, faults: FaultSpec) -> None:
        self.faults = faults
        self.lock = threading.RLock()
        self.repos: dict[str, dict[str, Any]] = {}
        self.issues: dict[str, list[dict[str, Any]]] = {}
        self.by_number: dict[tuple[str, int], dict[str, Any]] = {}
        self.aliases: dict[str, str] = {}                          # former name casefolded -> current name
        self.gone: dict[tuple[str, int], tuple[str, str | None]] = {}  # (repo, number) -> (deleted | moved, new home)
        self.listings: dict[str, int] = {}
        comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for row in conn.execute("SELECT * FROM comments ORDER BY repo, issue_number, created_at, comment_id"):
            comments.setdefault((row["repo"], row["issue_number"]), []).append(dict(row))
        self.events: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for row in conn.execute("SELECT * FROM events ORDER BY repo, issue_number, created_at, event_id"):
            self.events.setdefault((row["repo"], row["issue_number"]), []).append(dict(row))
        self.fixes = {(r["fix_repo"].casefold(), r["kind"], r["fix_ref"]): dict(r) for r in conn.execute("SELECT * FROM fixes")}
        for row in conn.execute("SELECT * FROM issues WHERE removed IS NULL ORDER BY repo, number"):
            issue = dict(row)
            issue["labels"] = json.loads(issue["labels"] or "[]")
            issue["reactions"] = json.loads(issue["reactions"] or "{}")
            issue["_comments"] = comments.get((issue["repo"], issue["number"]), [])
            self.issues.setdefault(issue["repo"], []).append(issue)
            self.by_number[(issue["repo"], issue["number"])] = issue
        meta = {r["repo"]: dict(r) for r in conn.execute("SELECT * FROM repositories")}
        for repo in sorted(set(self.issues) | set(meta)):
            info = meta.get(repo, {})
            self.repos[repo.casefold()] = {
                "full_name": repo, "stars": info.get("stars") or 0, "description": info.get("description"),
                "created_at": info.get("created_at"), "has_issues": repo.casefold() not in faults.disabled,
                "id": 100_000_000 + _stable_id(repo, 0) % 900_000_000}  # repository ids still fit an Int
            self.issues.setdefault(repo, [])
        self.pulls: dict[str, list[dict[str, Any]]] = {repo: self._pulls(repo, faults.pulls) for repo in self.issues}
        for old, new in faults.rename.items():
            self.rename(old, new)
        for item in faults.deleted:
            repo, _, number = item.partition("#")
            self.remove(repo, int(number))
        for item, target in faults.transferred.items():
            repo, _, number = item.partition("#")
            self.remove(repo, int(number), to=target)

    # -- changes while serving -----------------------------------------------------------------
    def rename(self, old: str, new: str) -> None:
        """Rename (or transfer) a repository: the old name answers 301, as GitHub's does."""
        with self.lock:
            current = self.canonical(old)
            if current is None:
                raise ReengError(f"rename: no repository {old} in the corpus")
            info = self.repos.pop(current.casefold())
            info["full_name"] = new
            self.repos[new.casefold()] = info
            self.aliases[current.casefold()] = new
            for name, target in list(self.aliases.items()):
                if target == current:
                    self.aliases[name] = new
            for table in (self.issues, self.pulls):
                table[new] = table.pop(current, [])
            for issue in self.issues[new]:
                issue["repo"] = new
                issue["url"] = f"https://github.com/{new}/issues/{issue['number']}"
                self.by_number[(new, issue["number"])] = self.by_number.pop((current, issue["number"]))
            for key in [k for k in self.events if k[0] == current]:
                self.events[(new, key[1])] = self.events.pop(key)

    def remove(self, repo: str, number: int, to: str | None = None) -> None:
        """Delete an issue (410 from then on), or transfer it to repository ``to`` (301 to its new number)."""
        with self.lock:
            repo = self.canonical(repo) or repo
            issue = self.by_number.pop((repo, number), None)
            if issue is None:
                raise ReengError(f"no issue {repo}#{number} in the corpus")
            self.issues[repo] = [i for i in self.issues[repo] if i["number"] != number]
            home = None
            if to is not None:
                target = self.canonical(to)
                if target is None:
                    raise ReengError(f"transfer: no repository {to} in the corpus")
                new_number = max([i["number"] for i in self.issues[target] + self.pulls[target]], default=0) + 1
                moved = {**issue, "repo": target, "number": new_number,
                         "url": f"https://github.com/{target}/issues/{new_number}"}
                self.issues[target].append(moved)
                self.by_number[(target, new_number)] = moved
                home = (target, new_number)
            self.gone[(repo, number)] = ("moved" if to else "deleted", home)

    def listed(self, repo: str) -> None:
        """Count an issue listing of ``repo``; after the ``edit_after``-th, edit one issue and open one."""
        with self.lock:
            self.listings[repo] = self.listings.get(repo, 0) + 1
            if self.listings[repo] != self.faults.edit_after or not self.issues.get(repo):
                return
            items = self.issues[repo]
            oldest = min(items, key=lambda i: (i["updated_at"] or "", i["number"]))
            latest = max(i["updated_at"] or "" for i in items)
            later = (datetime.fromisoformat(latest.replace("Z", "+00:00")) + timedelta(days=1)).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
            edited = {**oldest, "body": (oldest["body"] or "") + "\n\n(edited while a crawl ran)", "updated_at": later}
            number = max(i["number"] for i in items + self.pulls.get(repo, [])) + 1
            created = {**edited, "number": number, "title": f"Opened while a crawl ran ({number})", "_comments": [],
                       "comments_count": 0, "url": f"https://github.com/{repo}/issues/{number}", "labels": [],
                       "reactions": {}, "created_at": later}
            # new dicts: an answer being written keeps the objects it already holds
            self.issues[repo] = [edited if i is oldest else i for i in items] + [created]
            self.by_number[(repo, oldest["number"])] = edited
            self.by_number[(repo, number)] = created

    def save(self, path: Path) -> Path:
        """Write the corpus as it is now into a new store (what a complete crawl should end with)."""
        from miner.store import save_thread, transaction, upsert_repository

        conn = open_store(path)
        try:
            with self.lock, transaction(conn):
                for info in self.repos.values():
                    upsert_repository(conn, {"repo": info["full_name"], "stars": info["stars"],
                                             "description": info["description"], "created_at": info["created_at"]})
                for repo, items in self.issues.items():
                    for issue in items:
                        thread = {k: v for k, v in issue.items() if not k.startswith("_")}
                        thread["comments"] = issue["_comments"]
                        thread["comments_count"] = len(issue["_comments"])
                        save_thread(conn, {**thread, "events": self.events.get((repo, issue["number"]), [])},
                                    source="served")
        finally:
            conn.close()
        return path

    @staticmethod
    def _stamp(i: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_500_000_000 + 86_400 * i))

    def _pulls(self, repo: str, n: int) -> list[dict[str, Any]]:
        """Synthetic pull requests: GitHub lists them among issues, marked by ``pull_request``."""
        top = max((i["number"] for i in self.issues[repo]), default=0)
        return [{"number": top + k + 1, "title": f"pull request {k + 1}", "body": "", "state": "closed",
                 "author": "contributor", "labels": [], "created_at": self._stamp(k), "updated_at": self._stamp(k),
                 "closed_at": self._stamp(k), "reactions": {}, "_comments": [], "_pull": True,
                 "url": f"https://github.com/{repo}/pull/{top + k + 1}"} for k in range(n)]

    def canonical(self, full_name: str) -> str | None:
        """The current name of a repository (any case), or ``None``; former names are not resolved here."""
        info = self.repos.get(full_name.casefold())
        return info["full_name"] if info else None

    def moved_to(self, full_name: str) -> str | None:
        """The current name of a renamed or transferred repository, from a former name."""
        return self.aliases.get(full_name.casefold())

    def by_id(self, repo_id: int) -> str | None:
        return next((i["full_name"] for i in self.repos.values() if i["id"] == repo_id), None)

    def repository_node(self, full_name: str) -> dict[str, Any] | None:
        """GraphQL ``repository(owner, name)``: like GitHub's, it resolves a former name to the repository."""
        info = self.repos.get(full_name.casefold()) or self.repos.get((self.moved_to(full_name) or "").casefold())
        if info is None:
            return None
        return {"nameWithOwner": info["full_name"], "stargazerCount": info["stars"], "description": info["description"],
                "createdAt": info["created_at"], "hasIssuesEnabled": info["has_issues"],
                "databaseId": info["id"], "id": _node_id("R", info["id"])}

    def issue_list(self, repo: str, *, since: str | None = None, order: str = "CREATED_AT", descending: bool = False,
                   states: list[str] | None = None, pulls: bool = False) -> list[dict[str, Any]]:
        """Issues (and, for REST, pull requests) filtered and sorted as GitHub does; ties by number."""
        with self.lock:
            items = self.issues.get(repo, []) + (self.pulls.get(repo, []) if pulls else [])
        if since:
            items = [i for i in items if (i["updated_at"] or "") >= since]
        if states:
            items = [i for i in items if i["state"] in states]
        return sorted(items, key=lambda i: server_graphql.sort_key(i, order), reverse=descending)

    def find_issue(self, repo: str, number: int) -> dict[str, Any] | None:
        return self.by_number.get((repo, number))

    def issue_node(self, repo: str, issue: dict[str, Any]) -> dict[str, Any]:
        return server_graphql.issue_node(issue, issue["_comments"], self.events.get((repo, issue["number"]), []),
                                         _stable_id(repo, issue["number"]))

    def files(self, repo: str, kind: str, ref: str) -> list[dict[str, Any]] | None:
        """REST ``files`` of a pull request or commit, from the corpus's ``fixes`` rows."""
        row = self.fixes.get((repo.casefold(), kind, ref))
        if row is None:
            return None
        patches = dict(re.findall(r"^diff --git a/(.*?) b/.*?\n(.*?)\n(?=diff --git a/|\Z)", row["patch"] or "",
                                  flags=re.S | re.M))
        return [{"filename": f["path"], "status": f["status"], "additions": f["additions"],
                 "deletions": f["deletions"], "changes": f["additions"] + f["deletions"],
                 **({"patch": patches[f["path"]]} if f["path"] in patches else {})}
                for f in json.loads(row["files"] or "[]")]

    # -- REST shapes ----------------------------------------------------------------------------
    def rest_issue(self, repo: str, issue: dict[str, Any], base: str) -> dict[str, Any]:
        api = f"{base}/repos/{repo}/issues/{issue['number']}"
        reactions = {"url": f"{api}/reactions", "total_count": sum(issue["reactions"].values()),
                     **{k: issue["reactions"].get(k, 0) for k in server_graphql.REACTIONS.values()}}
        item = {
            "id": _stable_id(repo, issue["number"]), "number": issue["number"], "title": issue["title"] or "",
            "body": issue["body"], "state": issue["state"], "user": _user(issue["author"]),
            "labels": [{"name": n} for n in issue["labels"]], "comments": len(issue["_comments"]),
            "created_at": issue["created_at"], "updated_at": issue["updated_at"], "closed_at": issue["closed_at"],
            "html_url": issue["url"], "url": api, "comments_url": f"{api}/comments",
            "repository_url": f"{base}/repos/{repo}", "reactions": reactions, "state_reason": issue.get("state_reason"),
        }
        if issue.get("_pull"):
            item["pull_request"] = {"url": f"{base}/repos/{repo}/pulls/{issue['number']}", "html_url": issue["url"]}
        return item

    @staticmethod
    def rest_comment(repo: str, comment: dict[str, Any], base: str) -> dict[str, Any]:
        return {"id": comment["comment_id"], "user": _user(comment["author"]), "body": comment["body"],
                "created_at": comment["created_at"], "updated_at": comment["updated_at"],
                "url": f"{base}/repos/{repo}/issues/comments/{comment['comment_id']}"}


def _user(login: str | None) -> dict[str, Any] | None:
    return {"login": login, "type": "User"} if login else None


def _stable_id(repo: str, number: int) -> int:
    """A 64-bit id above 2^31, as GitHub's ids now are (tests must see both sizes work)."""
    return (1 << 32) + int.from_bytes(hashlib.sha1(f"{repo.casefold()}#{number}".encode()).digest()[:5], "big")


def _node_id(prefix: str, number: int) -> str:
    return f"{prefix}_" + base64.b64encode(str(number).encode()).decode().rstrip("=")


class Budget:
    """The primary rate limit per (token, resource): ``limit`` requests per window."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.state: dict[tuple[str, str], list[float]] = {}  # key -> [used, reset_epoch]

    def headers(self, key: tuple[str, str], spend: bool) -> tuple[bool, dict[str, str]]:
        """Spend one request if ``spend``; say whether the budget was already exhausted."""
        now = time.time()
        used, reset = self.state.get(key, [0, 0.0])
        if now >= reset:
            used, reset = 0, now + self.window
        exhausted = used >= self.limit
        if spend and not exhausted:
            used += 1
        self.state[key] = [used, reset]
        return exhausted, {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(max(0, self.limit - used)),
                           "X-RateLimit-Used": str(used), "X-RateLimit-Reset": str(int(reset + 0.999)),
                           "X-RateLimit-Resource": key[1]}


class GitHubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], corpus: Corpus, faults: FaultSpec, quiet: bool = True) -> None:
        super().__init__(address, Handler)
        self.corpus, self.faults, self.quiet = corpus, faults, quiet
        self.schema = server_graphql.build(corpus)
        self.rng = random.Random(faults.seed)
        self.budget = Budget(faults.primary_after, faults.primary_reset)
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.inflight: dict[str, int] = {}      # sha256(token) -> requests being answered now
        self.max_inflight: dict[str, int] = {}  # sha256(token) -> most at once
        self.max_total = 0

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


class Handler(BaseHTTPRequestHandler):
    server: GitHubServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # headers and body leave in one write (flushed after each request)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        if not self.server.quiet:
            super().log_message(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    # -- plumbing -------------------------------------------------------------------------------
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def _drop_connection(self) -> None:
        """Reset the TCP connection (RST) without answering, as a flaky network does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
        self.wfile = io.BytesIO()  # what the stdlib still writes after the reset goes nowhere

    def _token(self) -> str:
        auth = self.headers.get("Authorization", "")
        return auth.split(" ", 1)[1] if " " in auth else ""

    def _serve(self, verb: str) -> None:
        """Answer one request, tracking how many each token has in flight (GitHub asks for one at a time)."""
        srv, key = self.server, hashlib.sha256(self._token().encode()).hexdigest()
        with srv.lock:
            srv.inflight[key] = srv.inflight.get(key, 0) + 1
            srv.max_inflight[key] = max(srv.max_inflight.get(key, 0), srv.inflight[key])
            srv.max_total = max(srv.max_total, sum(srv.inflight.values()))
        try:
            if srv.faults.latency:
                time.sleep(srv.faults.latency)
            self._answer(verb)
        finally:
            with srv.lock:
                srv.inflight[key] -= 1

    def _answer(self, verb: str) -> None:
        srv = self.server
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else b""
        token = self._token()
        if srv.faults.bad_token is not None and token == srv.faults.bad_token:
            self._send(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
            return
        with srv.lock:
            roll = srv.rng.random()
        fault, edge = None, 0.0
        for name in PROBABILITIES:
            edge += srv.faults.rates.get(name, 0.0)
            if roll < edge:
                fault = name
                break
        if fault == "graphql_ratelimited" and url.path != "/graphql":
            fault = None  # only GraphQL answers a spent budget with 200 and a RATE_LIMITED error
        if fault:
            srv.count(fault)
            self._fault(fault)
            return
        resource = "graphql" if url.path.endswith("/graphql") else "search" if url.path.startswith("/search/") else "core"
        key = (hashlib.sha256(token.encode()).hexdigest(), resource)
        try:
            status, body, extra = self._route(verb, url, payload)
        except _Answer as answer:
            status, body, extra = answer.status, answer.body, answer.headers
        etag = None
        if verb == "GET" and status == 200:
            etag = 'W/"' + hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest() + '"'
            if self.headers.get("If-None-Match") == etag:
                with srv.lock:
                    _, limits = srv.budget.headers(key, spend=False)
                srv.count("304")
                self._send(304, None, {**limits, "ETag": etag})
                return
        with srv.lock:
            exhausted, limits = srv.budget.headers(key, spend=True)
        if exhausted:
            srv.count("primary")
            self._send(403, {"message": "API rate limit exceeded for user.", "documentation_url": "https://docs.github.com"},
                       limits)
            return
        srv.count(str(status))
        self._send(status, body, {**limits, **extra, **({"ETag": etag} if etag else {})})

    def _fault(self, fault: str) -> None:
        retry = {"Retry-After": str(self.server.faults.retry_after)}
        if fault == "reset":
            self._drop_connection()
        elif fault == "graphql_ratelimited":
            self._send(200, {"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user."}]},
                       {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "5000", "X-RateLimit-Resource": "graphql",
                        "X-RateLimit-Reset": str(int(time.time()) + 1)})
        elif fault == "5xx":
            self._send(self.server.rng.choice([500, 502, 503]), {"message": "Server Error"})
        else:
            status = 403 if fault.startswith("secondary403") else 429
            self._send(status, {"message": SECONDARY_MESSAGE}, {} if fault.endswith("noretry") else retry)

    # -- routes ---------------------------------------------------------------------------------
    def _route(self, verb: str, url: Any, payload: bytes) -> tuple[int, Any, dict[str, str]]:
        corpus = self.server.corpus
        base = f"http://{self.headers.get('Host', '127.0.0.1')}"
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        if verb == "POST" and parts == ["graphql"]:
            try:
                body = json.loads(payload or b"{}")
            except ValueError:
                raise _Answer(400, {"message": "Problems parsing JSON"}) from None
            limit = self.server.faults.graphql_timeout_above
            if limit and int((body.get("variables") or {}).get("first") or 0) > limit:
                raise _Answer(502, {"message": "We couldn't respond to your request in time."})
            with self.server.lock:
                _, limits = self.server.budget.headers(
                    (hashlib.sha256(self._token().encode()).hexdigest(), "graphql"), spend=False)
            rate = {"cost": 1, "limit": int(limits["X-RateLimit-Limit"]),
                    "remaining": int(limits["X-RateLimit-Remaining"]) - 1, "resetAt": None}
            try:
                return 200, server_graphql.execute(self.server.schema, body, rate), {}
            except server_graphql.QueryError as exc:
                return 200, {"errors": [{"message": str(exc)}]}, {}
        if verb != "GET":
            raise _Answer(404, {"message": "Not Found"})
        if parts == ["rate_limit"]:
            return 200, {"resources": {}}, {}
        if parts[:2] == ["search", "repositories"]:
            return self._search(query, base)
        if len(parts) >= 2 and parts[0] == "repositories" and parts[1].isdigit():
            repo, rest = corpus.by_id(int(parts[1])), parts[2:]
        elif len(parts) >= 3 and parts[0] == "repos":
            name, rest = f"{parts[1]}/{parts[2]}", parts[3:]
            repo = corpus.canonical(name)
            moved = corpus.moved_to(name) if repo is None else None
            if moved is not None:  # a renamed or transferred repository: 301 to its id, as GitHub answers
                location = "/".join([f"{base}/repositories/{corpus.repos[moved.casefold()]['id']}", *rest])
                raise _Answer(301, {"message": "Moved Permanently", "url": location},
                              {"Location": location + (f"?{url.query}" if url.query else "")})
        else:
            repo, rest = None, []
        if repo is None:
            raise _Answer(404, {"message": "Not Found"})
        info = corpus.repos[repo.casefold()]
        if not rest:
            return 200, {"full_name": repo, "name": repo.split("/")[1], "owner": {"login": repo.split("/")[0]},
                         "id": info["id"], "node_id": _node_id("R", info["id"]),
                         "stargazers_count": info["stars"], "description": info["description"],
                         "created_at": info["created_at"], "has_issues": info["has_issues"]}, {}
        if rest[0] in ("pulls", "commits") and len(rest) >= 2:
            files = corpus.files(repo, "pull" if rest[0] == "pulls" else "commit", rest[1])
            if files is None or (rest[0] == "pulls" and rest[2:] != ["files"]) or (rest[0] == "commits" and rest[2:]):
                raise _Answer(404, {"message": "Not Found"})
            if rest[0] == "commits":
                return 200, {"sha": rest[1], "files": files, "stats": {
                    "additions": sum(f["additions"] for f in files), "deletions": sum(f["deletions"] for f in files)}}, {}
            page, links = self._page(files, query, base, url.path)
            return 200, page, links
        if rest[0] != "issues":
            raise _Answer(404, {"message": "Not Found"})
        if not info["has_issues"]:
            raise _Answer(410, {"message": "Issues are disabled for this repo"})
        if len(rest) == 1:
            state = query.get("state", "open")
            items = corpus.issue_list(repo, since=query.get("since"), pulls=True,
                                      order={"created": "CREATED_AT", "updated": "UPDATED_AT", "comments": "COMMENTS"}
                                      .get(query.get("sort", "created"), "CREATED_AT"),
                                      descending=query.get("direction", "desc") == "desc",
                                      states=None if state == "all" else [state])
            page, links = self._page(items, query, base, url.path)
            corpus.listed(repo)
            return 200, [corpus.rest_issue(repo, i, base) for i in page], links
        number = int(rest[1]) if rest[1].isdigit() else -1
        issue = corpus.find_issue(repo, number)
        gone = corpus.gone.get((repo, number))
        if issue is None and gone is not None:
            if gone[0] == "deleted":
                raise _Answer(410, {"message": "This issue was deleted"})
            target, new_number = gone[1]
            location = "/".join([f"{base}/repositories/{corpus.repos[target.casefold()]['id']}/issues/{new_number}",
                                 *rest[2:]])
            raise _Answer(301, {"message": "Moved Permanently", "url": location}, {"Location": location})
        if issue is None:
            raise _Answer(404, {"message": "Not Found"})
        if len(rest) == 2:
            return 200, corpus.rest_issue(repo, issue, base), {}
        if rest[2:] == ["comments"]:
            page, links = self._page(issue["_comments"], query, base, url.path)
            return 200, [corpus.rest_comment(repo, c, base) for c in page], links
        raise _Answer(404, {"message": "Not Found"})

    @staticmethod
    def _page(items: list[Any], query: dict[str, str], base: str, path: str) -> tuple[list[Any], dict[str, str]]:
        """One page of ``items`` and its ``Link`` header (next, last, first, prev), as GitHub sends them."""
        try:
            per_page = min(100, max(1, int(query.get("per_page", 30))))
            page = max(1, int(query.get("page", 1)))
        except ValueError:
            raise _Answer(422, {"message": "Validation Failed"}) from None
        last = max(1, -(-len(items) // per_page))
        links = []

        def link(n: int, rel: str) -> None:
            links.append(f'<{base}{path}?{urlencode({**query, "per_page": per_page, "page": n})}>; rel="{rel}"')

        if page < last:
            link(page + 1, "next")
            link(last, "last")
        if page > 1:
            link(1, "first")
            link(page - 1, "prev")
        return items[(page - 1) * per_page: page * per_page], ({"Link": ", ".join(links)} if links else {})

    def _search(self, query: dict[str, str], base: str) -> tuple[int, Any, dict[str, str]]:
        """``/search/repositories``: free-text terms in name or description, ``stars:>=N``; by stars."""
        corpus = self.server.corpus
        terms, min_stars = [], 0
        for token in query.get("q", "").split():
            if token.startswith("stars:>="):
                min_stars = int(token[len("stars:>="):])
            elif token.startswith("stars:>"):
                min_stars = int(token[len("stars:>"):]) + 1
            elif ":" not in token:
                terms.append(token.casefold())
        found = [info for info in corpus.repos.values() if info["stars"] >= min_stars and all(
            t in f"{info['full_name']} {info['description'] or ''}".casefold() for t in terms)]
        found.sort(key=lambda i: (-i["stars"], i["full_name"]))
        page, links = self._page(found, query, base, "/search/repositories")
        items = [{"full_name": i["full_name"], "stargazers_count": i["stars"], "description": i["description"],
                  "created_at": i["created_at"], "has_issues": i["has_issues"]} for i in page]
        return 200, {"total_count": len(found), "incomplete_results": False, "items": items}, links


class _Answer(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def make_server(corpus_path: Path, port: int = 0, faults: str | None = None, quiet: bool = True) -> GitHubServer:
    """Load a store and bind the server (not yet serving); port 0 picks a free one."""
    spec = FaultSpec.parse(faults)
    conn = open_store(corpus_path, create=False)
    try:
        corpus = Corpus(conn, spec)
    finally:
        conn.close()
    try:
        return GitHubServer(("127.0.0.1", port), corpus, spec, quiet)
    except OSError as exc:
        raise ReengError(f"port {port}: cannot listen ({exc.strerror})") from None


class ServerURL(str):
    """The base URL of a running server; ``.server`` reaches the server (and its corpus) in-process."""

    server: GitHubServer


@contextmanager
def running(corpus_path: Path, faults: str | None = None, port: int = 0) -> Iterator[ServerURL]:
    """The server in a background thread (tests, benchmarks); yields its base URL."""
    server = make_server(corpus_path, port, faults)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = ServerURL(f"http://127.0.0.1:{server.server_address[1]}")
    url.server = server
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
