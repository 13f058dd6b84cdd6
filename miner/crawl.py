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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from miner import payloads, store
from miner.client import AuthError, GitHubClient, NotFound, ServerTrouble
from reeng.errors import ReengError

log = logging.getLogger("reeng.miner")
REPO_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
MORE_COMMENTS_BATCH = 10
MIN_PAGE = 10          # GraphQL pages shrink no further when the server keeps failing
SHRINK_AFTER = 2       # server errors at one GraphQL page size before halving it

THREAD_FIELDS = """
  number title body state url createdAt updatedAt closedAt
  author { login }
  labels(first: 100) { nodes { name } }
  reactionGroups { content reactors { totalCount } }
  comments(first: $comments) { totalCount pageInfo { hasNextPage endCursor } nodes { ...Comment } }
"""
COMMENT_FIELDS = "fragment Comment on IssueComment { databaseId author { login } body createdAt updatedAt }"
ISSUES_QUERY = f"""
query Issues($owner: String!, $name: String!, $first: Int!, $comments: Int!, $after: String, $since: DateTime) {{
  rateLimit {{ cost remaining resetAt }}
  repository(owner: $owner, name: $name) {{
    hasIssuesEnabled stargazerCount description createdAt
    issues(first: $first, after: $after, orderBy: {{field: UPDATED_AT, direction: ASC}}, filterBy: {{since: $since}}) {{
      totalCount
      pageInfo {{ hasNextPage endCursor }}
      nodes {{ {THREAD_FIELDS} }}
    }}
  }}
}}
{COMMENT_FIELDS}
"""


def check_repo_name(name: str) -> str:
    """``owner/repo`` or a clear error (before any request is made)."""
    if not REPO_NAME.match(name or ""):
        raise ReengError(f"{name!r}: not a repository name (expected OWNER/REPO)")
    return name


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


class RepoCrawler:
    """Crawl one repository into the store through GraphQL or REST."""

    def __init__(self, client: GitHubClient, conn: sqlite3.Connection, repo: str, *, api: str = "graphql",
                 page_size: int = 100, progress: Any = None) -> None:
        self.client, self.conn, self.api = client, conn, api
        self.owner, self.name = repo.split("/", 1)
        self.repo = repo
        self.page_size = page_size
        self.progress = progress
        self.source = f"github:{api}"

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
            self._advance(0, total=0)
            return "unchanged"
        mark = state.get("since")
        since, cursor = query_since(mark), None
        seen: set[int] = set()
        while True:
            page = self._graphql_page(since, cursor) if self.api == "graphql" else self._rest_page(since, cursor)
            if page.last_updated and (mark is None or page.last_updated > mark):
                mark = page.last_updated
            fetched = now()
            with store.transaction(self.conn):
                for thread in page.threads:
                    store.write_thread(self.conn, thread, source=self.source, fetched_at=fetched, etag=thread.pop("_etag", None))
                store.set_crawl_state(self.conn, self.repo, since=mark, api=self.api, complete=0)
            new = [t for t in page.threads if t["number"] not in seen]  # pages overlap by the mark's second
            seen.update(t["number"] for t in new)
            self.client.stats.issues += len(new)
            self.client.stats.comments += sum(len(t["comments"]) for t in new)
            self._advance(len(new), total=page.total)
            if not page.has_next:
                break
            next_since = query_since(page.last_updated)
            if next_since and (since is None or next_since > since):
                since, cursor = next_since, None
            else:  # a whole page inside one second: page on within the same ``since``
                cursor = page.cursor
        with store.transaction(self.conn):
            store.set_crawl_state(self.conn, self.repo, complete=1, probe_etag=probe.headers.get("etag"),
                                  finished_at=now())
        return "complete"

    def _advance(self, n: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(self.repo, n, total)

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
        self._record_repository(data.get("stargazers_count"), data.get("description"), data.get("created_at"))
        if resp.headers.get("etag"):
            with store.transaction(self.conn):
                store.cache_etag(self.conn, key, resp.headers["etag"], now())

    def _record_repository(self, stars: int | None, description: str | None, created_at: str | None) -> None:
        known = self.conn.execute("SELECT repo_type FROM repositories WHERE repo = ?", (self.repo,)).fetchone()
        with store.transaction(self.conn):
            store.upsert_repository(self.conn, {
                "repo": self.repo, "stars": stars, "description": description, "created_at": created_at,
                "repo_type": known["repo_type"] if known else None, "source": self.source, "fetched_at": now()})

    # -- GraphQL -------------------------------------------------------------------------------
    def _graphql_page(self, since: str | None, after: str | None) -> Page:
        data = self._issues_query(since, after)
        repository = data.get("repository")
        if repository is None:
            raise NotFound(404, "404 not found")
        if repository.get("hasIssuesEnabled") is False:
            raise NotFound(410, "410 issues are disabled")
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
        self._more_comments(pending)
        nodes = listing["nodes"]
        return Page(threads, nodes[-1]["updatedAt"] if nodes else None, listing["pageInfo"]["hasNextPage"],
                    listing["pageInfo"]["endCursor"], listing.get("totalCount"))

    def _issues_query(self, since: str | None, after: str | None) -> dict[str, Any]:
        """One page of issues; halve the page when GitHub keeps failing on it (big pages time out)."""
        while True:
            variables = {"owner": self.owner, "name": self.name, "first": self.page_size,
                         "comments": self.page_size, "after": after, "since": since}
            shrinkable = self.page_size > MIN_PAGE
            try:
                return self.client.graphql(ISSUES_QUERY, variables, what=f"{self.repo}: issues",
                                           server_errors=SHRINK_AFTER if shrinkable else None)
            except ServerTrouble:
                if not shrinkable:
                    raise
                smaller = max(MIN_PAGE, self.page_size // 2)
                log.warning("%s: pages of %d issues keep failing; asking for %d", self.repo, self.page_size, smaller)
                self.page_size = smaller

    def _more_comments(self, pending: dict[int, tuple[dict[str, Any], str]]) -> None:
        """Fetch the remaining comment pages of long threads, several threads per query."""
        while pending:
            batch = list(pending.items())[:MORE_COMMENTS_BATCH]
            parts = [f"i{n}: issue(number: {n}) {{ comments(first: $first, after: {json.dumps(cursor)}) "
                     "{ pageInfo { hasNextPage endCursor } nodes { ...Comment } } }" for n, (_, cursor) in batch]
            query = (f"query MoreComments($owner: String!, $name: String!, $first: Int!) {{ rateLimit {{ cost }} "
                     f"repository(owner: $owner, name: $name) {{ {' '.join(parts)} }} }}\n{COMMENT_FIELDS}")
            data = self.client.graphql(query, {"owner": self.owner, "name": self.name, "first": self.page_size},
                                       what=f"{self.repo}: comments")
            repository = data.get("repository") or {}
            for number, (thread, _) in batch:
                comments = (repository.get(f"i{number}") or {}).get("comments")
                if comments is None:
                    raise ReengError(f"{self.repo}#{number}: comments vanished while crawling; run again")
                thread["comments"].extend(payloads.graphql_comment(c) for c in comments["nodes"])
                info = comments["pageInfo"]
                if info["hasNextPage"]:
                    pending[number] = (thread, info["endCursor"])
                else:
                    del pending[number]

    # -- REST ----------------------------------------------------------------------------------
    def _rest_page(self, since: str | None, page_number: int | None) -> Page:
        page_number = page_number or 1
        params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": self.page_size, "page": page_number}
        if since:
            params["since"] = since
        resp = self.client.get(f"/repos/{self.owner}/{self.name}/issues", params, what=f"{self.repo}: issues")
        items = resp.data or []
        known = store.issue_versions(self.conn, self.repo)
        threads = []
        for item in items:
            if payloads.is_pull_request(item):
                self.client.stats.pulls_skipped += 1
                continue
            issue = payloads.rest_issue(self.repo, item)
            stored = known.get(issue["number"])
            if stored and stored[:2] == (issue["updated_at"], issue["comments_count"]):
                continue  # unchanged since it was stored: nothing to fetch or write
            issue["comments"], issue["_etag"] = self._rest_comments(issue, stored)
            threads.append(issue)
        return Page(threads, items[-1]["updated_at"] if items else None, "next" in _links(resp.headers),
                    page_number + 1)

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


def mine(client: GitHubClient, conn: sqlite3.Connection, repos: list[str], *, api: str = "graphql",
         page_size: int = 100, progress: bool = True) -> dict[str, str]:
    """Crawl each repository in turn; return ``repo -> error`` for those that failed.

    A failing repository (not found, issues disabled, too long a wait) never affects the others:
    its committed pages stay, its high-water mark says where the next run resumes.
    """
    if api not in ("graphql", "rest"):
        raise ReengError(f"{api!r}: unknown API (expected graphql or rest)")
    if not 1 <= page_size <= 100:
        raise ReengError(f"page size {page_size}: GitHub pages hold 1 to 100 items")
    for repo in repos:
        check_repo_name(repo)
    failures: dict[str, str] = {}
    with _progress_bars(progress) as advance:
        for repo in repos:
            try:
                status = RepoCrawler(client, conn, repo, api=api, page_size=page_size, progress=advance).run()
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
    return failures
