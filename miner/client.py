"""A polite GitHub client: PyGithub's requester underneath, GitHub's rate-limit rules on top.

Why not PyGithub's own retry: its urllib3 ``Retry`` sleeps inside the library, so a crawl could
neither show nor bound its waits, count them, switch tokens, nor be tested without sleeping
for real. Here every request goes through one loop that

* waits out the primary limit (remaining 0 -> sleep until reset, or use the next token),
* honours secondary limits (403/429): ``Retry-After`` when given, else at least 60 s, doubling,
* retries 5xx answers and dropped connections with exponential backoff,
* gives up after a bounded number of attempts, or at once when a wait exceeds ``max_wait``,
* sends ``If-None-Match`` when an ETag is known (a 304 costs nothing against the limit),
* and hands every raw response to the archive, without the Authorization header.

The clock and the sleeper are injectable so tests exercise the rules without waiting.
Tokens live only in PyGithub's auth objects; no message built here ever contains one.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse

import requests
from github import Auth, Github
from github.Requester import Requester

from reeng.errors import ReengError

log = logging.getLogger("reeng.miner")

GITHUB_API = "https://api.github.com"


@dataclass
class Politeness:
    """How patient and how gentle a crawl is; the defaults follow GitHub's published rules."""

    max_attempts: int = 6            # tries per request, the first one included
    secondary_wait: float = 60.0     # GitHub: wait at least a minute after a secondary limit without Retry-After
    backoff: float = 1.0             # first wait after a 5xx or a dropped connection; doubles per attempt
    max_wait: float = 3600.0         # longest single wait accepted; a longer one fails the request
    min_interval: float | None = None  # seconds between requests; None: PyGithub's pacing on github.com, none elsewhere
    timeout: float = 60.0


@dataclass
class RunStats:
    """What a run cost; printed at the end of every crawl (``--json``: as an object)."""

    requests: int = 0
    not_modified: int = 0
    retries: int = 0
    waits: int = 0
    waited_seconds: float = 0.0
    budget_used: int = 0
    issues: int = 0
    comments: int = 0
    pulls_skipped: int = 0
    repositories: dict[str, str] = field(default_factory=dict)
    rate_limit: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["waited_seconds"] = round(self.waited_seconds, 2)
        return data


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    data: Any
    raw: str


class NotFound(ReengError):
    """404 or 410 from GitHub: the caller names the repository in the message it raises."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ServerTrouble(ReengError):
    """The server kept failing (5xx, dropped connections, GraphQL timeouts): smaller requests may pass."""


class AuthError(ReengError):
    """401: the token is wrong or revoked; every further request would fail the same way."""


def tokens_from_env(env: dict[str, str]) -> list[str]:
    """``GITHUB_TOKENS`` (comma/space separated, used in turn) or else ``GITHUB_TOKEN``."""
    many = [t for t in env.get("GITHUB_TOKENS", "").replace(",", " ").split() if t]
    return many or ([env["GITHUB_TOKEN"].strip()] if env.get("GITHUB_TOKEN", "").strip() else [])


class _Token:
    """One token's PyGithub connection and what the server last said about its budgets.

    GitHub keeps separate budgets per resource (core REST, graphql, search), so a spent REST
    budget must not hold up GraphQL queries, and the other way round.
    """

    def __init__(self, github: Github) -> None:
        self.requester: Requester = github.requester
        self.budget: dict[str, tuple[int, float]] = {}  # resource -> (remaining, reset epoch)

    def spent(self, resource: str, now: float) -> bool:
        remaining, reset = self.budget.get(resource, (1, 0.0))
        return remaining == 0 and reset > now

    def exhaust(self, resource: str, reset: float) -> None:
        self.budget[resource] = (0, reset)


def _resource(url: str) -> str:
    path = urlparse(url).path
    return "graphql" if path.endswith("/graphql") else "search" if "/search/" in path else "core"


class GitHubClient:
    """Serial, polite requests against one GitHub (or GitHub Enterprise, or the local server)."""

    def __init__(self, api_url: str = GITHUB_API, tokens: list[str] | None = None, *,
                 politeness: Politeness | None = None, stats: RunStats | None = None,
                 archive: Any | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.api_url = api_url.rstrip("/")
        self.policy = politeness or Politeness()
        self.stats = stats or RunStats()
        self.archive = archive
        self._sleep, self._clock = sleep, clock
        on_github = urlparse(self.api_url).hostname == urlparse(GITHUB_API).hostname
        pace = self.policy.min_interval
        pacing = ({} if on_github and pace is None
                  else {"seconds_between_requests": pace or None, "seconds_between_writes": pace or None})
        auths = [Auth.Token(t) for t in tokens or []] or [None]
        self._tokens = [_Token(Github(base_url=self.api_url, auth=a, retry=None, timeout=int(self.policy.timeout),
                                      per_page=100, **pacing)) for a in auths]
        self._turn = 0
        self._failures = 0  # consecutive 5xx / connection failures, for the backoff

    # -- budget -----------------------------------------------------------------------------
    def _token(self, resource: str) -> _Token:
        """The token to use now: the current one while it has budget, else the next with budget."""
        now = self._clock()
        for offset in range(len(self._tokens)):
            candidate = self._tokens[(self._turn + offset) % len(self._tokens)]
            if not candidate.spent(resource, now):
                self._turn = (self._turn + offset) % len(self._tokens)
                return candidate
        soonest = min(self._tokens, key=lambda t: t.budget[resource][1])
        self._wait(soonest.budget[resource][1] - now + 1, f"primary rate limit ({resource}) exhausted, waiting for the reset")
        soonest.budget.pop(resource)
        return soonest

    def _note_budget(self, token: _Token, headers: dict[str, str]) -> None:
        if "x-ratelimit-remaining" not in headers:
            return
        remaining = int(float(headers["x-ratelimit-remaining"]))
        reset = float(headers.get("x-ratelimit-reset", 0))
        resource = headers.get("x-ratelimit-resource", "core")
        token.budget[resource] = (remaining, reset)
        self.stats.rate_limit[resource] = {
            "limit": int(float(headers.get("x-ratelimit-limit", 0))), "remaining": remaining,
            "used": int(float(headers.get("x-ratelimit-used", 0))), "reset": int(reset)}

    def _wait(self, seconds: float, reason: str) -> None:
        seconds = max(0.0, seconds)
        if seconds > self.policy.max_wait:
            raise ReengError(f"{reason}: GitHub asks to wait {math.ceil(seconds)} s, more than --max-wait "
                             f"{self.policy.max_wait:g} s; run again later to resume")
        log.warning("waiting %.1f s: %s", seconds, reason)
        self.stats.waits += 1
        self.stats.waited_seconds += seconds
        self._sleep(seconds)

    # -- requests ---------------------------------------------------------------------------
    def request(self, verb: str, url: str, *, params: dict[str, Any] | None = None, body: Any = None,
                etag: str | None = None, what: str = "", server_errors: int | None = None) -> Response:
        """One logical request, retried under the politeness rules; 404/410 raise :class:`NotFound`.

        ``server_errors``: raise :class:`ServerTrouble` after this many 5xx answers or dropped
        connections (the caller has a smaller request to try); rate limits still get every attempt.
        """
        what = what or url
        secondary = failures = 0
        attempts = self.policy.max_attempts
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self.stats.retries += 1
            wait, last = self._attempt(verb, url, params, body, etag, what, secondary)
            if isinstance(wait, Response):
                self._failures = 0
                return wait
            if last.startswith(("server error", "connection failed")):
                failures += 1
                if failures == server_errors:
                    raise ServerTrouble(f"{what}: {last}, {failures} times")
            secondary += last.startswith("secondary")
            if attempt < attempts and wait:
                self._wait(wait, f"{what}: {last} (attempt {attempt}/{attempts})")
        trouble = last.startswith(("server error", "connection failed"))
        raise (ServerTrouble if trouble else ReengError)(f"{what}: gave up after {attempts} attempts ({last})")

    def _attempt(self, verb: str, url: str, params: dict[str, Any] | None, body: Any, etag: str | None, what: str,
                 secondary: int) -> tuple[Response | float, str]:
        """Send once: the response, or how long to wait before retrying and why."""
        resource = _resource(url)
        token = self._token(resource)
        headers = {"Accept": "application/vnd.github+json"}
        if etag:
            headers["If-None-Match"] = etag
        self.stats.requests += 1
        try:
            status, resp_headers, raw = token.requester.requestJson(verb, url, params, headers, body)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            return self._backoff(), f"connection failed ({type(exc).__name__})"
        if self.archive is not None:
            self.archive.record(verb, url, params, body, headers, status, resp_headers, raw)
        self._note_budget(token, resp_headers)
        if status == 304:
            self.stats.not_modified += 1
            return Response(status, resp_headers, None, raw), ""
        data = _json(raw)
        if status < 300:
            self.stats.budget_used += 1
            return Response(status, resp_headers, data, raw), ""
        message = (data or {}).get("message", "") if isinstance(data, dict) else ""
        if status == 401:
            raise AuthError(f"GitHub rejected the token (401 {message or 'Bad credentials'})")
        if status in (404, 410):
            raise NotFound(status, f"{status} {message or 'not found'}")
        if status in (403, 429):
            is_secondary = status == 429 or Requester.isSecondaryRateLimitError(message.lower())
            if resp_headers.get("x-ratelimit-remaining") == "0" and not is_secondary:
                token.exhaust(resource, float(resp_headers.get("x-ratelimit-reset", self._clock() + 60)))
                return 0.0, "primary rate limit exhausted"  # the next _token() switches token or waits for the reset
            if "retry-after" in resp_headers:
                return float(resp_headers["retry-after"]), f"secondary rate limit ({status})"
            if is_secondary:
                return self.policy.secondary_wait * 2 ** secondary, f"secondary rate limit ({status})"
            raise ReengError(f"{what}: forbidden (403 {message})")
        if status >= 500:
            return self._backoff(), f"server error {status}"
        raise ReengError(f"{what}: GitHub answered {status} {message}".rstrip())

    def _backoff(self) -> float:
        """Exponential backoff for 5xx and dropped connections, doubling with consecutive failures."""
        self._failures += 1
        return self.policy.backoff * 2 ** (self._failures - 1)

    def get(self, path: str, params: dict[str, Any] | None = None, *, etag: str | None = None, what: str = "") -> Response:
        return self.request("GET", path, params=params, etag=etag, what=what)

    def graphql(self, query: str, variables: dict[str, Any], *, what: str = "",
                server_errors: int | None = None) -> dict[str, Any]:
        """Run one GraphQL query; errors in the answer become a clear error (NOT_FOUND: :class:`NotFound`).

        GitHub reports an exhausted GraphQL budget either as 403 (handled by :meth:`request`) or as
        200 with a ``RATE_LIMITED`` error; the latter waits for the reset and asks again.
        """
        url = self._tokens[0].requester.graphql_url
        for attempt in range(1, self.policy.max_attempts + 1):
            resp = self.request("POST", url, body={"query": query, "variables": variables}, what=what,
                                server_errors=server_errors)
            data = resp.data or {}
            errors = data.get("errors") or []
            if errors and errors[0].get("type") == "RATE_LIMITED" and attempt < self.policy.max_attempts:
                self.stats.retries += 1
                token = self._tokens[self._turn]
                token.exhaust("graphql", float(resp.headers.get("x-ratelimit-reset", self._clock() + 60)))
                continue  # the next request() waits for the reset or uses the next token
            break
        if errors:
            first = errors[0]
            if first.get("type") == "NOT_FOUND":
                raise NotFound(404, f"404 {first.get('message', 'not found')}")
            if "timeout" in first.get("message", "").lower():
                raise ServerTrouble(f"{what or 'GraphQL'}: query timed out on the server")
            raise ReengError(f"{what or 'GraphQL'}: query failed ({first.get('message', 'unknown error')})")
        cost = ((data.get("data") or {}).get("rateLimit") or {}).get("cost")
        if cost:
            self.stats.budget_used += int(cost) - 1
        return data.get("data") or {}


def _json(raw: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw[:200]}
