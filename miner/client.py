"""A polite GitHub client: PyGithub's requester underneath, GitHub's rate-limit rules on top.

Why not PyGithub's own retry: its urllib3 ``Retry`` sleeps inside the library, so a crawl could
neither show nor bound its waits, count them, switch tokens, nor be tested without sleeping
for real. Here every request goes through one loop that

* sends each request with the idle token that has the most budget left (one request per token
  at a time), and drops a token GitHub rejects (401), naming it by position only,
* waits out the primary limit (remaining 0 -> sleep until reset, or use the next token),
* honours secondary limits (403/429): ``Retry-After`` when given (seconds or an HTTP date), else
  at least 60 s, doubling,
* retries 5xx answers and dropped connections with exponential backoff,
* gives up after a bounded number of attempts, or at once when a wait exceeds ``max_wait``,
* sends ``If-None-Match`` when an ETag is known (a 304 costs nothing against the limit),
* and hands every raw response to the archive, without the Authorization header.

The clock and the sleeper are injectable so tests exercise the rules without waiting.
Tokens live only in PyGithub's auth objects; no message built here ever contains one.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse

import requests
from github import Auth, Github
from github.Requester import Requester

from reeng.errors import ReengError, ReengWarning, scrub

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

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ReengError(f"max_attempts {self.max_attempts}: must be 1 or more")
        for name in ("secondary_wait", "backoff", "max_wait", "min_interval", "timeout"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ReengError(f"{name} {value}: must be 0 or more seconds")


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
    events: int = 0
    fixes: int = 0
    fix_requests: int = 0
    removed: int = 0
    renamed: dict[str, str] = field(default_factory=dict)
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
    token: Any = None


class NotFound(ReengError):
    """404 or 410 from GitHub: the caller names the repository in the message it raises."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ServerTrouble(ReengError):
    """The server kept failing (5xx, dropped connections, GraphQL timeouts): smaller requests may pass."""


class AuthError(ReengError):
    """401: the token is wrong or revoked; every further request would fail the same way."""


class Stopped(BaseException):
    """The run was interrupted (``reeng mine --jobs N``: SIGINT or SIGTERM reached the main thread);
    a worker stops at its next request or wait. Not an error of the repository, so no ``except`` of the crawl holds it."""


def tokens_from_env(env: dict[str, str]) -> list[str]:
    """``GITHUB_TOKENS`` (comma/space separated, used in turn) or else ``GITHUB_TOKEN``."""
    many = [t for t in env.get("GITHUB_TOKENS", "").replace(",", " ").split() if t]
    return many or ([env["GITHUB_TOKEN"].strip()] if env.get("GITHUB_TOKEN", "").strip() else [])


NO_TOKENS = "no GITHUB_TOKEN or GITHUB_TOKENS: unauthenticated requests (github.com allows 60 an hour)"


def client_tokens(tokens: list[str] | str | None = None) -> list[str]:
    """The tokens a crawl uses: ``tokens`` when given, else the environment's (:func:`tokens_from_env`);
    with none, one warning on the miner's log (``reeng mine`` and ``Corpus.mine`` say the same)."""
    chosen = [tokens] if isinstance(tokens, str) else list(tokens) if tokens is not None \
        else tokens_from_env(dict(os.environ))
    if not chosen:
        log.warning(NO_TOKENS)
    return chosen


class _Token:
    """One token's PyGithub connection and what the server last said about its budgets.

    GitHub keeps separate budgets per resource (core REST, graphql, search), so a spent REST
    budget must not hold up GraphQL queries, and the other way round. ``busy`` makes every token
    carry at most one request at a time (GitHub: requests for one user go serially).
    """

    UNKNOWN = 1 << 62  # a budget not seen yet counts as full: every token is tried once

    def __init__(self, github: Github, position: int) -> None:
        self.requester: Requester = github.requester
        self.position = position  # 1-based place in GITHUB_TOKENS: the only way a token is ever named
        self.budget: dict[str, tuple[int, float]] = {}  # resource -> (remaining, reset epoch)
        self.busy = False

    def remaining(self, resource: str) -> int:
        return self.budget.get(resource, (self.UNKNOWN, 0.0))[0]

    def spent(self, resource: str, now: float) -> bool:
        remaining, reset = self.budget.get(resource, (1, 0.0))
        return remaining == 0 and reset > now

    def exhaust(self, resource: str, reset: float) -> None:
        self.budget[resource] = (0, reset)


def _resource(url: str) -> str:
    path = urlparse(url).path
    return "graphql" if path.endswith("/graphql") else "search" if "/search/" in path else "core"


def check_api_url(api_url: str) -> str:
    """An http(s) base URL with a host, or one clear error (before any request).

    Returned without credentials (``https://user:secret@host`` -> ``https://host``): requests
    authenticate only with the tokens from the environment (PyGithub connects to the host and
    port and never sends a URL's userinfo), and the URL is written to the archive, so the
    credentials are dropped here, once, with a warning, and reach no file.
    """
    try:
        parsed = urlparse(api_url)
        valid = parsed.scheme in ("http", "https") and bool(parsed.hostname)
        parsed.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise ReengError(f"--api-url {scrub(api_url)!r}: not an http(s) URL (e.g. https://api.github.com or "
                         "https://HOST/api/v3)")
    if "@" in parsed.netloc:
        warnings.warn("--api-url: the credentials in the URL are not used (requests authenticate with "
                      "GITHUB_TOKEN or GITHUB_TOKENS); they were removed", ReengWarning, stacklevel=2)
        parsed = parsed._replace(netloc=parsed.netloc.rpartition("@")[2])
    return parsed.geturl().rstrip("/")


def retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in either of its forms (seconds, or an HTTP date) as seconds from ``now``."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


class GitHubClient:
    """Polite requests against one GitHub (or GitHub Enterprise, or the local server).

    Safe to share between threads (``reeng mine --jobs N``): a token carries one request at a
    time, the token with the most remaining budget goes first, and every rule holds per token.
    """

    def __init__(self, api_url: str = GITHUB_API, tokens: list[str] | None = None, *,
                 politeness: Politeness | None = None, stats: RunStats | None = None,
                 archive: Any | None = None, sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.api_url = check_api_url(api_url)
        self.policy = politeness or Politeness()
        self.stats = stats or RunStats()
        self.archive = archive
        self._stopping = threading.Event()
        self._sleep, self._clock = sleep or self._stopping.wait, clock  # a wait ends early on stop()
        on_github = urlparse(self.api_url).hostname == urlparse(GITHUB_API).hostname
        pace = self.policy.min_interval
        pacing = ({} if on_github and pace is None
                  else {"seconds_between_requests": pace or None, "seconds_between_writes": pace or None})
        auths = [Auth.Token(t) for t in tokens or []] or [None]
        self._total = len(auths)
        self._tokens = [_Token(Github(base_url=self.api_url, auth=a, retry=None, timeout=int(self.policy.timeout),
                                      per_page=100, **pacing), i + 1) for i, a in enumerate(auths)]
        self.graphql_url = self._tokens[0].requester.graphql_url
        self._cond = threading.Condition()
        self._failures = 0  # consecutive 5xx / connection failures, for the backoff

    def stop(self) -> None:
        """From now on every request and wait raises :class:`Stopped` (and a wait under way ends)."""
        self._stopping.set()

    def _check_stopped(self) -> None:
        if self._stopping.is_set():
            raise Stopped("the run was interrupted")

    # -- budget -----------------------------------------------------------------------------
    def _token(self, resource: str) -> _Token:
        """An idle token with budget for ``resource``, the most remaining first; else wait for one."""
        with self._cond:
            while True:
                if not self._tokens:
                    raise AuthError("GitHub rejected every token (401)")
                now = self._clock()
                idle = [t for t in self._tokens if not t.busy and not t.spent(resource, now)]
                if idle:
                    token = max(idle, key=lambda t: (t.remaining(resource), -t.position))
                    token.busy = True
                    return token
                if any(t.busy for t in self._tokens):
                    self._cond.wait(1.0)
                    continue
                soonest = min(self._tokens, key=lambda t: t.budget[resource][1])
                soonest.busy = True
                break
        try:
            self._wait(soonest.budget[resource][1] - now + 1,
                       f"primary rate limit ({resource}) exhausted, waiting for the reset")
        except BaseException:
            self._release(soonest)
            raise
        soonest.budget.pop(resource, None)
        return soonest

    def _release(self, token: _Token) -> None:
        with self._cond:
            token.busy = False
            self._cond.notify_all()

    def _drop(self, token: _Token, message: str) -> None:
        """Take a rejected token out of the pool, naming it by position only."""
        with self._cond:
            if token in self._tokens:
                self._tokens.remove(token)
            left = len(self._tokens)
            self._cond.notify_all()
        log.warning("token %d of %d in GITHUB_TOKENS was rejected (401 %s): dropped, %d left",
                    token.position, self._total, message, left)

    def _note_budget(self, token: _Token, headers: dict[str, str]) -> None:
        if "x-ratelimit-remaining" not in headers:
            return
        remaining = int(float(headers["x-ratelimit-remaining"]))
        reset = float(headers.get("x-ratelimit-reset", 0))
        resource = headers.get("x-ratelimit-resource", "core")
        token.budget[resource] = (remaining, reset)
        with self._cond:
            self.stats.rate_limit[resource] = {
                "limit": int(float(headers.get("x-ratelimit-limit", 0))), "remaining": remaining,
                "used": int(float(headers.get("x-ratelimit-used", 0))), "reset": int(reset)}

    def count(self, **increments: float) -> None:
        """Add to the run's statistics (thread-safe)."""
        with self._cond:
            for key, value in increments.items():
                setattr(self.stats, key, getattr(self.stats, key) + value)

    def _wait(self, seconds: float, reason: str) -> None:
        seconds = max(0.0, seconds)
        if seconds > self.policy.max_wait:
            raise ReengError(f"{reason}: GitHub asks to wait {math.ceil(seconds)} s, more than --max-wait "
                             f"{self.policy.max_wait:g} s; run again later to resume")
        log.warning("waiting %.1f s: %s", seconds, reason)
        self.count(waits=1, waited_seconds=seconds)
        self._sleep(seconds)
        self._check_stopped()

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
                self.count(retries=1)
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
        self._check_stopped()
        resource = _resource(url)
        token = self._token(resource)
        headers = {"Accept": "application/vnd.github+json"}
        if etag:
            headers["If-None-Match"] = etag
        self.count(requests=1)
        try:
            status, resp_headers, raw = token.requester.requestJson(verb, url, params, headers, body)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            return self._backoff(), f"connection failed ({type(exc).__name__})"
        finally:
            self._release(token)
        if self.archive is not None:
            self.archive.record(verb, url, params, body, headers, status, resp_headers, raw)
        self._note_budget(token, resp_headers)
        if status == 304:
            self.count(not_modified=1)
            return Response(status, resp_headers, None, raw, token), ""
        data = _json(raw)
        if status < 300:
            self.count(budget_used=1)
            return Response(status, resp_headers, data, raw, token), ""
        message = (data or {}).get("message", "") if isinstance(data, dict) else ""
        if status == 401:
            if self._total == 1:
                raise AuthError(f"GitHub rejected the token (401 {message or 'Bad credentials'})")
            self._drop(token, message or "Bad credentials")
            if not self._tokens:
                raise AuthError(f"GitHub rejected all {self._total} tokens of GITHUB_TOKENS (401)")
            return 0.0, "token rejected"
        if status in (404, 410):
            raise NotFound(status, f"{status} {message or 'not found'}")
        if status in (403, 429):
            is_secondary = status == 429 or Requester.isSecondaryRateLimitError(message.lower())
            if resp_headers.get("x-ratelimit-remaining") == "0" and not is_secondary:
                token.exhaust(resource, float(resp_headers.get("x-ratelimit-reset", self._clock() + 60)))
                return 0.0, "primary rate limit exhausted"  # the next _token() switches token or waits for the reset
            after = retry_after(resp_headers.get("retry-after"), self._clock())
            if after is not None:
                return after, f"secondary rate limit ({status})"
            if is_secondary:
                return self.policy.secondary_wait * 2 ** secondary, f"secondary rate limit ({status})"
            raise ReengError(f"{what}: forbidden (403 {message})")
        if status >= 500:
            return self._backoff(), f"server error {status}"
        raise ReengError(f"{what}: GitHub answered {status} {message}".rstrip())

    def _backoff(self) -> float:
        """Exponential backoff for 5xx and dropped connections, doubling with consecutive failures."""
        with self._cond:
            self._failures += 1
            return self.policy.backoff * 2 ** (self._failures - 1)

    def get(self, path: str, params: dict[str, Any] | None = None, *, etag: str | None = None, what: str = "") -> Response:
        return self.request("GET", path, params=params, etag=etag, what=what)

    def graphql(self, query: str, variables: dict[str, Any], *, what: str = "",
                server_errors: int | None = None, partial: bool = False) -> dict[str, Any]:
        """Run one GraphQL query; errors in the answer become a clear error (NOT_FOUND: :class:`NotFound`).

        GitHub reports an exhausted GraphQL budget either as 403 (handled by :meth:`request`) or as
        200 with a ``RATE_LIMITED`` error; the latter waits for the reset and asks again.
        """
        url = self.graphql_url
        for attempt in range(1, self.policy.max_attempts + 1):
            resp = self.request("POST", url, body={"query": query, "variables": variables}, what=what,
                                server_errors=server_errors)
            data = resp.data or {}
            errors = data.get("errors") or []
            if errors and errors[0].get("type") == "RATE_LIMITED" and attempt < self.policy.max_attempts:
                self.count(retries=1)
                resp.token.exhaust("graphql", float(resp.headers.get("x-ratelimit-reset", self._clock() + 60)))
                continue  # the next request() waits for the reset or uses the next token
            break
        if partial and data.get("data") and all(
                e.get("type") == "NOT_FOUND" and len(e.get("path") or []) > 1 for e in errors):
            errors = []  # fields inside the answer that resolved to nothing: the caller reads them as null
        if errors:
            first = errors[0]
            if first.get("type") == "NOT_FOUND":
                raise NotFound(404, f"404 {first.get('message', 'not found')}")
            if "timeout" in first.get("message", "").lower():
                raise ServerTrouble(f"{what or 'GraphQL'}: query timed out on the server")
            raise ReengError(f"{what or 'GraphQL'}: query failed ({first.get('message', 'unknown error')})")
        cost = ((data.get("data") or {}).get("rateLimit") or {}).get("cost")
        if cost:
            self.count(budget_used=int(cost) - 1)
        return data.get("data") or {}


def _json(raw: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw[:200]}
