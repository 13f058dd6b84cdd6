"""Crawling issue threads into the store: incremental, resumable, with as few requests as possible.

Order and resumption. Issues are listed by ``updated`` ascending from the repository's high-water
mark (``crawl_state.since``). Each page is committed in one transaction together with the new
mark, so a crawl killed at any instant resumes at the last committed page: nothing is lost (every
issue updated after the mark is listed again) and nothing duplicated (threads are keyed by
``(repo, number)`` and replaced whole). Pages are addressed by the mark itself (keyset paging:
"updated at or after T"), not by page numbers, so issues that move to the end of the listing
while a crawl runs cannot shift others out of view. The query starts one second before the mark
because GitHub timestamps have one-second resolution.

Few requests. The GraphQL path gets 100 issues with their first 100 comments per query; only
threads with more comments get extra queries, batched several issues per query. Before listing,
a conditional probe (the most recently updated issue, with the ETag saved when the last crawl
completed) answers 304 when nothing changed, so re-crawling an unchanged repository costs one
request answered 304 (two on the REST path, which also asks for the repository conditionally),
and GitHub counts neither. The REST path fetches comments only for threads
whose ``updated_at`` or comment count changed, conditionally where an ETag is known.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from miner import payloads, store
from miner.store import check_repo_name
from miner.client import AuthError, GitHubClient, NotFound, ServerTrouble
from reeng.errors import ReengError

log = logging.getLogger("reeng.miner")
MORE_COMMENTS_BATCH = 10
MIN_PAGE = 10          # GraphQL pages shrink no further when the server keeps failing
SHRINK_AFTER = 2       # server errors at one GraphQL page size before halving it

THREAD_FIELDS = """
  number title body state stateReason url createdAt updatedAt closedAt fullDatabaseId
  author { login }
  labels(first: 100) { nodes { name } }
  reactionGroups { content reactors { totalCount } }
  comments(first: $comments) { totalCount pageInfo { hasNextPage endCursor } nodes { ...Comment } }
"""
# comment ids: fullDatabaseId (a BigInt as a string); databaseId is a 32-bit Int that comment ids outgrew in 2024
COMMENT_FIELDS = "fragment Comment on IssueComment { id fullDatabaseId author { login } body createdAt updatedAt }"
TIMELINE_TYPES = "[CLOSED_EVENT, CROSS_REFERENCED_EVENT, REFERENCED_EVENT, LABELED_EVENT, UNLABELED_EVENT]"
TIMELINE_FIELDS = """fragment Timeline on IssueTimelineItems {
  __typename
  ... on ClosedEvent { id createdAt actor { login } stateReason
      closer { __typename ... on Commit { oid repository { nameWithOwner } }
               ... on PullRequest { number repository { nameWithOwner } } } }
  ... on CrossReferencedEvent { id createdAt actor { login } willCloseTarget
      source { __typename ... on PullRequest { number repository { nameWithOwner } }
               ... on Issue { number repository { nameWithOwner } } } }
  ... on ReferencedEvent { id createdAt actor { login } commit { oid } commitRepository { nameWithOwner } }
  ... on LabeledEvent { id createdAt actor { login } label { name } }
  ... on UnlabeledEvent { id createdAt actor { login } label { name } }
}"""
TIMELINE = (f"timelineItems(first: $comments, itemTypes: {TIMELINE_TYPES}) "
            "{ pageInfo { hasNextPage endCursor } nodes { ...Timeline } }")


def issues_query(fixes: bool) -> str:
    """The page query: 100 issues with their first 100 comments (and timeline items, with ``fixes``)."""
    return f"""
query Issues($owner: String!, $name: String!, $first: Int!, $comments: Int!, $after: String, $since: DateTime) {{
  rateLimit {{ cost remaining resetAt }}
  repository(owner: $owner, name: $name) {{
    nameWithOwner id databaseId hasIssuesEnabled stargazerCount description createdAt
    everyIssue: issues {{ totalCount }}
    issues(first: $first, after: $after, orderBy: {{field: UPDATED_AT, direction: ASC}}, filterBy: {{since: $since}}) {{
      totalCount
      pageInfo {{ hasNextPage endCursor }}
      nodes {{ {THREAD_FIELDS} {TIMELINE if fixes else ""} }}
    }}
  }}
}}
{COMMENT_FIELDS}
{TIMELINE_FIELDS if fixes else ""}
"""


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def query_since(mark: str | None) -> str | None:
    """The ``since`` sent for a high-water mark: one second earlier, whatever GitHub's inclusivity."""
    if not mark:
        return None
    return (_parse(mark) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Page:
    threads: list[dict[str, Any]]   # complete threads (comments included) to write
    last_updated: str | None        # updated_at of the last listed item (pull requests included)
    has_next: bool
    cursor: Any                     # how to ask for the following page with the same ``since``
    total: int | None = None
    listed: tuple[int, ...] = ()    # numbers of every issue listed (changed or not)


MAX_BLOCK_PASSES = 5  # re-listings of a one-second block paged by page number before moving on


class RepoCrawler:
    """Crawl one repository into the store through GraphQL or REST."""

    def __init__(self, client: GitHubClient, conn: sqlite3.Connection, repo: str, *, api: str = "graphql",
                 page_size: int = 100, progress: Any = None, fixes: bool = False, check_removed: bool = False) -> None:
        self.client, self.conn, self.api = client, conn, api
        self.typed = repo
        self._use(store.canonical_repo(conn, repo))
        self.page_size = page_size
        self.progress = progress
        self.fixes = fixes
        self.check_removed = check_removed
        self.source = f"github:{api}"
        self.every_issue: int | None = None  # the repository's issue count, all states (removals show in it)
        self._fix_cache: dict[tuple[str, str, str], dict[str, Any]] = {}

    def _use(self, repo: str) -> None:
        self.repo = repo
        self.owner, self.name = repo.split("/", 1)

    # -- entry point ---------------------------------------------------------------------------
    def run(self) -> str:
        """Crawl; return ``"unchanged"`` (probe answered 304) or ``"complete"``."""
        if self.api == "rest":
            self._repository()  # GraphQL pages carry the repository's facts themselves
        state = store.crawl_state(self.conn, self.repo)
        probe = self.client.get(f"/repos/{self.owner}/{self.name}/issues",
                                {"state": "all", "sort": "updated", "direction": "desc", "per_page": 1},
                                etag=state.get("probe_etag") if state.get("complete") else None,
                                what=f"{self.repo}: change probe")
        if probe.status == 304:
            if self.check_removed:  # a deletion need not change the probe's answer
                self._check_removed()
            self._advance(0, total=0)
            return "unchanged"
        probe_repo = self.repo
        mark = state.get("since")
        since, cursor = query_since(mark), None
        seen: set[int] = set()
        block: tuple[str | None, str] | None = None  # (since, mark) of a one-second block paged by page number
        passes, block_new = 0, False
        while True:
            page = self._graphql_page(since, cursor) if self.api == "graphql" else self._rest_page(since, cursor)
            if page.last_updated and (mark is None or page.last_updated > mark):
                mark = page.last_updated
            fresh = [n for n in page.listed if n not in seen]
            block_new |= block is not None and passes > 0 and bool(fresh)
            fetched = now()
            with store.transaction(self.conn):
                for thread in page.threads:
                    store.write_thread(self.conn, thread, source=self.source, fetched_at=fetched, etag=thread.pop("_etag", None))
                # Inside an unverified block the mark stays at the block, so a resumed crawl re-lists it.
                store.set_crawl_state(self.conn, self.repo, since=block[1] if block else mark, api=self.api, complete=0)
            new = [t for t in page.threads if t["number"] not in seen]  # pages overlap by the mark's second
            seen.update(page.listed)
            seen.update(t["number"] for t in new)
            self.client.count(issues=len(new), comments=sum(len(t["comments"]) for t in new),
                              events=sum(len(t.get("events", [])) for t in new),
                              fixes=sum(len(t.get("fixes", [])) for t in new))
            self._advance(len(fresh), total=page.total)
            next_since = query_since(page.last_updated)
            advance = bool(next_since) and (since is None or next_since > since)
            if page.has_next and not advance:
                # a whole page inside one second: page on within the same ``since``
                if block is None and self.api == "rest":
                    block, passes, block_new = (since, page.last_updated or ""), 0, False
                cursor = page.cursor
                continue
            if block is not None:
                # REST pages are numbered: an issue edited mid-block leaves it, the rest of the block
                # shifts up a place and one issue can be skipped. Re-list the block (a window with
                # overlap, deduplicated by number) until a pass finds nothing new.
                if (passes == 0 or block_new) and passes < MAX_BLOCK_PASSES:
                    passes, block_new = passes + 1, False
                    since, cursor = block[0], None
                    continue
                if block_new:
                    log.warning("%s: issues kept moving while a one-second block at %s was listed; "
                                "run again to be sure of it", self.repo, block[1])
                block = None
            if not page.has_next:
                break
            since, cursor = next_since, None
        self._check_removed()
        with store.transaction(self.conn):
            store.set_crawl_state(self.conn, self.repo, since=mark, complete=1, finished_at=now(),
                                  probe_etag=probe.headers.get("etag") if probe_repo == self.repo else None)
        return "complete"

    def _advance(self, n: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(self.typed, n, total)

    # -- identity ------------------------------------------------------------------------------
    def _adopt(self, canonical: str | None, node_id: str | None, database_id: Any) -> None:
        """What GitHub calls this repository: adopt its spelling, move rows stored under former names."""
        if not canonical:
            return
        known = self.conn.execute("SELECT node_id, database_id FROM repositories WHERE repo = ?",
                                  (canonical,)).fetchone()
        ids = (node_id, int(database_id) if database_id is not None else None)
        if canonical == self.repo and known and tuple(known) == ids:
            return
        moved = store.adopt_identity(self.conn, self.typed, canonical, ids[0], ids[1], now())
        for old in moved:
            log.warning("%s is now %s on GitHub: its stored threads moved to the new name", old, canonical)
            with self.client._cond:
                self.client.stats.renamed[old] = canonical
        self._use(canonical)

    def _repository(self) -> None:
        """REST path: the repository's facts, conditionally (a 304 leaves the stored row)."""
        key = f"GET /repos/{self.owner}/{self.name}"
        resp = self.client.get(f"/repos/{self.owner}/{self.name}", etag=store.cached_etag(self.conn, key),
                               what=f"{self.repo}: repository")
        if resp.status == 304:
            return
        data = resp.data or {}
        if data.get("has_issues") is False:
            raise NotFound(410, "410 issues are disabled")
        self._adopt(data.get("full_name"), data.get("node_id"), data.get("id"))  # a 301 was followed to the new name
        self._record_repository(data.get("stargazers_count"), data.get("description"), data.get("created_at"))
        if resp.headers.get("etag"):
            with store.transaction(self.conn):
                store.cache_etag(self.conn, f"GET /repos/{self.owner}/{self.name}", resp.headers["etag"], now())

    def _record_repository(self, stars: int | None, description: str | None, created_at: str | None) -> None:
        known = self.conn.execute("SELECT repo_type FROM repositories WHERE repo = ?", (self.repo,)).fetchone()
        with store.transaction(self.conn):
            store.upsert_repository(self.conn, {
                "repo": self.repo, "stars": stars, "description": description, "created_at": created_at,
                "repo_type": known["repo_type"] if known else None, "source": self.source, "fetched_at": now()})

    # -- deleted and transferred issues --------------------------------------------------------
    def _check_removed(self) -> None:
        """Mark stored threads GitHub no longer lists here: deleted (404/410) or transferred (moved).

        Cheap unless something went: it runs only when the repository counts fewer issues than the
        store holds; then one GraphQL query per 100 stored issues finds the missing ones, and one
        REST request each tells deleted from transferred.
        """
        if self.every_issue is None:
            try:
                data = self.client.graphql("query Count($owner: String!, $name: String!) { repository(owner: $owner, "
                                           "name: $name) { issues { totalCount } } }",
                                           {"owner": self.owner, "name": self.name}, what=f"{self.repo}: issue count")
                self.every_issue = ((data.get("repository") or {}).get("issues") or {}).get("totalCount")
            except ReengError as exc:
                log.warning("%s: cannot count issues through GraphQL (%s); deleted issues are not checked", self.repo, exc)
        live = [n for (n,) in self.conn.execute("SELECT number FROM issues WHERE repo = ? AND removed IS NULL "
                                                "ORDER BY number", (self.repo,))]
        if self.every_issue is None or len(live) <= self.every_issue:
            return
        missing = []
        for start in range(0, len(live), 100):
            chunk = live[start:start + 100]
            parts = " ".join(f"i{n}: issue(number: {n}) {{ number }}" for n in chunk)
            data = self.client.graphql(f"query Exists($owner: String!, $name: String!) {{ repository(owner: $owner, "
                                       f"name: $name) {{ {parts} }} }}", {"owner": self.owner, "name": self.name},
                                       what=f"{self.repo}: issues still there", partial=True)
            repository = data.get("repository") or {}
            missing += [n for n in chunk if not repository.get(f"i{n}")]
        for number in missing:
            try:
                item = self.client.get(f"/repos/{self.owner}/{self.name}/issues/{number}",
                                       what=f"{self.repo}#{number}").data or {}
            except NotFound:
                how, moved_to = "deleted", None
            else:
                match = re.search(r"github\.com/([^/]+/[^/]+)/issues/(\d+)", item.get("html_url") or "")
                if not match or match[1].casefold() == self.repo.casefold():
                    continue  # still here (GraphQL and REST disagreed for a moment)
                how, moved_to = "transferred", f"{match[1]}#{match[2]}"
            log.warning("%s#%d was %s%s on GitHub: marked, its content kept", self.repo, number, how,
                        f" to {moved_to}" if moved_to else "")
            store.mark_removed(self.conn, self.repo, number, how, now(), moved_to)
            self.client.count(removed=1)

    # -- GraphQL -------------------------------------------------------------------------------
    def _graphql_page(self, since: str | None, after: str | None) -> Page:
        data = self._issues_query(since, after)
        repository = data.get("repository")
        if repository is None:
            raise NotFound(404, "404 not found")
        if repository.get("hasIssuesEnabled") is False:
            raise NotFound(410, "410 issues are disabled")
        self._adopt(repository.get("nameWithOwner"), repository.get("id"), repository.get("databaseId"))
        self.every_issue = (repository.get("everyIssue") or {}).get("totalCount")
        if after is None:
            self._record_repository(repository.get("stargazerCount"), repository.get("description"),
                                    repository.get("createdAt"))
        listing = repository["issues"]
        threads, pending = [], {}
        for node in listing["nodes"]:
            thread = payloads.graphql_issue(self.repo, node)
            threads.append(thread)
            info = node["comments"]["pageInfo"]
            if info["hasNextPage"]:
                pending[thread["number"]] = (thread, info["endCursor"])
            if self.fixes:
                thread["events"] = []
        self._more(pending, "comments")
        if self.fixes:
            timeline = {}
            for node, thread in zip(listing["nodes"], threads):
                thread["events"] = self._events(node["timelineItems"]["nodes"])
                if node["timelineItems"]["pageInfo"]["hasNextPage"]:
                    timeline[thread["number"]] = (thread, node["timelineItems"]["pageInfo"]["endCursor"])
            self._more(timeline, "timelineItems")
            for thread in threads:
                thread["fixes"] = [self._fix(f) for f in payloads.linked_fixes(thread["events"])]
        nodes = listing["nodes"]
        return Page(threads, nodes[-1]["updatedAt"] if nodes else None, listing["pageInfo"]["hasNextPage"],
                    listing["pageInfo"]["endCursor"], listing.get("totalCount"), tuple(t["number"] for t in threads))

    @staticmethod
    def _events(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in (payloads.graphql_event(n) for n in nodes) if e is not None]

    def _issues_query(self, since: str | None, after: str | None) -> dict[str, Any]:
        """One page of issues; halve the page when GitHub keeps failing on it (big pages time out)."""
        while True:
            variables = {"owner": self.owner, "name": self.name, "first": self.page_size,
                         "comments": self.page_size, "after": after, "since": since}
            shrinkable = self.page_size > MIN_PAGE
            try:
                return self.client.graphql(issues_query(self.fixes), variables, what=f"{self.repo}: issues",
                                           server_errors=SHRINK_AFTER if shrinkable else None)
            except ServerTrouble:
                if not shrinkable:
                    raise
                smaller = max(MIN_PAGE, self.page_size // 2)
                log.warning("%s: pages of %d issues keep failing; asking for %d", self.repo, self.page_size, smaller)
                self.page_size = smaller

    def _more(self, pending: dict[int, tuple[dict[str, Any], str]], field: str) -> None:
        """Fetch the remaining comment (or timeline) pages of long threads, several threads per query."""
        if field == "comments":
            selection, fragment, key = "nodes { ...Comment }", COMMENT_FIELDS, "comments"
        else:
            selection, fragment, key = "nodes { ...Timeline }", TIMELINE_FIELDS, "events"
        types = f", itemTypes: {TIMELINE_TYPES}" if field == "timelineItems" else ""
        while pending:
            batch = list(pending.items())[:MORE_COMMENTS_BATCH]
            parts = [f"i{n}: issue(number: {n}) {{ {field}(first: $first, after: {json.dumps(cursor)}{types}) "
                     f"{{ pageInfo {{ hasNextPage endCursor }} {selection} }} }}" for n, (_, cursor) in batch]
            query = (f"query More($owner: String!, $name: String!, $first: Int!) {{ rateLimit {{ cost }} "
                     f"repository(owner: $owner, name: $name) {{ {' '.join(parts)} }} }}\n{fragment}")
            data = self.client.graphql(query, {"owner": self.owner, "name": self.name, "first": self.page_size},
                                       what=f"{self.repo}: {key}")
            repository = data.get("repository") or {}
            for number, (thread, _) in batch:
                connection = (repository.get(f"i{number}") or {}).get(field)
                if connection is None:
                    raise ReengError(f"{self.repo}#{number}: {key} vanished while crawling; run again")
                if field == "comments":
                    thread["comments"].extend(payloads.graphql_comment(c) for c in connection["nodes"])
                else:
                    thread["events"].extend(self._events(connection["nodes"]))
                info = connection["pageInfo"]
                if info["hasNextPage"]:
                    pending[number] = (thread, info["endCursor"])
                else:
                    del pending[number]

    def _fix(self, fix: dict[str, Any]) -> dict[str, Any]:
        """A linked pull request or commit with its changed files (REST; cached within the run)."""
        key = (fix["kind"], fix["fix_repo"], fix["fix_ref"])
        if key not in self._fix_cache:
            path = (f"/repos/{fix['fix_repo']}/pulls/{fix['fix_ref']}/files" if fix["kind"] == "pull"
                    else f"/repos/{fix['fix_repo']}/commits/{fix['fix_ref']}")
            what = f"{self.repo}: fix {fix['fix_repo']}@{fix['fix_ref']}"
            files: list[dict[str, Any]] = []
            pages = 1
            try:
                resp = self.client.get(path, {"per_page": 100} if fix["kind"] == "pull" else None, what=what)
                files = resp.data if fix["kind"] == "pull" else (resp.data or {}).get("files", [])
                while fix["kind"] == "pull" and "next" in _links(resp.headers):
                    resp = self.client.get(_links(resp.headers)["next"], what=what)
                    files = files + (resp.data or [])
                    pages += 1
            except NotFound:
                log.warning("%s: not found (private or deleted); the link is kept without files", what)
            self._fix_cache[key] = payloads.fix_files(fix, files or [])
            self.client.count(fix_requests=pages)
        return {**self._fix_cache[key], "link": fix["link"]}

    # -- REST ----------------------------------------------------------------------------------
    def _rest_page(self, since: str | None, page_number: int | None) -> Page:
        page_number = page_number or 1
        params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": self.page_size, "page": page_number}
        if since:
            params["since"] = since
        resp = self.client.get(f"/repos/{self.owner}/{self.name}/issues", params, what=f"{self.repo}: issues")
        items = resp.data or []
        known = store.issue_versions(self.conn, self.repo)
        threads, listed = [], []
        for item in items:
            if payloads.is_pull_request(item):
                self.client.count(pulls_skipped=1)
                continue
            issue = payloads.rest_issue(self.repo, item)
            listed.append(issue["number"])
            stored = known.get(issue["number"])
            if stored and stored[:2] == (issue["updated_at"], issue["comments_count"]):
                continue  # unchanged since it was stored: nothing to fetch or write
            issue["comments"], issue["_etag"] = self._rest_comments(issue, stored)
            threads.append(issue)
        return Page(threads, items[-1]["updated_at"] if items else None, "next" in _links(resp.headers),
                    page_number + 1, listed=tuple(listed))

    def _rest_comments(self, issue: dict[str, Any], stored: tuple | None) -> tuple[list[dict[str, Any]], str | None]:
        if issue["comments_count"] == 0:
            return [], None
        number = issue["number"]
        # Conditional only for one-page threads whose count is unchanged: a 304 then proves them unchanged.
        etag = stored[2] if stored and stored[1] == issue["comments_count"] <= self.page_size else None
        url = f"/repos/{self.owner}/{self.name}/issues/{number}/comments"
        params: dict[str, Any] | None = {"per_page": self.page_size}
        resp = self.client.get(url, params, etag=etag, what=f"{self.repo}#{number}: comments")
        if resp.status == 304:
            return store.stored_comments(self.conn, self.repo, number), etag
        first_etag = resp.headers.get("etag")
        comments = [payloads.rest_comment(c) for c in resp.data or []]
        while "next" in _links(resp.headers):
            resp = self.client.get(_links(resp.headers)["next"], what=f"{self.repo}#{number}: comments")
            comments.extend(payloads.rest_comment(c) for c in resp.data or [])
        return comments, first_etag


def _links(headers: dict[str, str]) -> dict[str, str]:
    """RFC 8288 ``Link`` header as ``rel -> url``."""
    import requests.utils

    return {link["rel"]: link["url"] for link in requests.utils.parse_header_links(headers.get("link", "")) if "rel" in link}


@contextmanager
def _progress_bars(enabled: bool) -> Iterator[Any]:
    """A rich progress bar per repository (on stderr); yields ``advance(repo, n, total)``."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as bars:
        def advance(repo: str, n: int, total: int | None) -> None:
            if repo not in tasks:
                tasks[repo] = bars.add_task(repo, total=total)
            elif total is not None and bars.tasks[tasks[repo]].total is None:
                bars.update(tasks[repo], total=total)
            bars.advance(tasks[repo], n)
        yield advance


MAX_JOBS = 10  # concurrent repositories at most; GitHub allows 100 concurrent requests, one at a time per token


def check_mine_options(repos: list[str], *, api: str = "graphql", page_size: int = 100, jobs: int = 1,
                       fixes: bool = False) -> None:
    """:func:`mine`'s arguments, checked before a store is opened (``Corpus.mine`` leaves no store behind)."""
    if api not in ("graphql", "rest"):
        raise ReengError(f"{api!r}: unknown API (expected graphql or rest)")
    if not 1 <= page_size <= 100:
        raise ReengError(f"page size {page_size}: GitHub pages hold 1 to 100 items")
    if not 1 <= jobs <= MAX_JOBS:
        raise ReengError(f"--jobs {jobs}: expected 1 to {MAX_JOBS}")
    if fixes and api != "graphql":
        raise ReengError("--fixes reads the timeline through GraphQL: use --api graphql")
    for repo in repos:
        check_repo_name(repo)


def mine(client: GitHubClient, conn: sqlite3.Connection, repos: list[str], *, api: str = "graphql",
         page_size: int = 100, progress: bool = True, fixes: bool = False, jobs: int = 1,
         check_removed: bool = False) -> dict[str, str]:
    """Crawl the repositories (``jobs`` at a time); return ``repo -> error`` for those that failed.

    A failing repository (not found, issues disabled, too long a wait) never affects the others:
    its committed pages stay, its high-water mark says where the next run resumes. Names are
    matched case-insensitively and through the store's aliases, so a repository typed twice (or
    under a former name) is crawled once. With ``jobs`` > 1 each worker has its own connection to
    the store; the client lets each token carry one request at a time (GitHub's guidance: requests
    for one user go serially), so more jobs than tokens only overlaps the local work.
    """
    check_mine_options(repos, api=api, page_size=page_size, jobs=jobs, fixes=fixes)
    unique: dict[str, str] = {}
    for repo in repos:
        unique.setdefault(store.canonical_repo(conn, repo).casefold(), repo)
    failures: dict[str, str] = {}
    local = threading.local()
    opened: list[sqlite3.Connection] = []

    def crawl(repo: str, advance: Any) -> None:
        worker = conn
        if jobs > 1:
            worker = getattr(local, "conn", None)
            if worker is None:
                worker = local.conn = store.open_store(conn.path)
                opened.append(worker)
        try:
            status = RepoCrawler(client, worker, repo, api=api, page_size=page_size, progress=advance,
                                 fixes=fixes, check_removed=check_removed).run()
        except NotFound as exc:
            status = "failed"
            failures[repo] = (f"{repo}: issues are disabled (410)" if exc.status == 410
                              else f"{repo}: no such repository or no access ({exc})")
        except AuthError:
            raise
        except ReengError as exc:
            status = "failed"
            failures[repo] = str(exc) if str(exc).startswith(f"{repo}:") else f"{repo}: {exc}"
        client.stats.repositories[repo] = status

    with _progress_bars(progress) as advance:
        try:
            if jobs == 1:
                for repo in unique.values():
                    crawl(repo, advance)
            else:
                with ThreadPoolExecutor(jobs, thread_name_prefix="mine") as pool:
                    try:
                        for future in [pool.submit(crawl, repo, advance) for repo in unique.values()]:
                            future.result()
                    except BaseException:  # interrupted (or a 401): no queued repository starts, the running
                        client.stop()      # ones stop at their next request or wait, then the error goes on
                        pool.shutdown(cancel_futures=True)
                        raise
        finally:
            for worker in opened:
                worker.close()
    return failures
