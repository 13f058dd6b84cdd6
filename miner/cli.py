"""The miner's commands: repos search, mine, sample, import, export, serve-github.

Wiring only: each command parses options, opens the store and calls the module that does the
work. Heavy libraries (pandas, graphql-core, PyGithub) load inside the commands.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from reeng.errors import ReengError

STORE = click.option("--store", "store_path", required=True, type=click.Path(path_type=Path), help="SQLite store file.")


class _LogFile(logging.FileHandler):
    """``--log``: a log line that cannot be written (a full disk, /dev/full) is an error, not a traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        raise ReengError(f"--log {self.baseFilename}: cannot write the log file")


def _setup_logging(log_file: Path | None) -> None:
    """Waits and retries as one line each on stderr (and in ``--log``); never request headers."""
    logger = logging.getLogger("reeng.miner")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        try:
            handler = _LogFile(log_file, encoding="utf-8")
            handler.stream.write(f"{formatter.formatTime(logging.makeLogRecord({}), '%Y-%m-%d %H:%M:%S')} "
                                 "INFO reeng mine started\n")
            handler.stream.flush()
        except OSError as exc:
            raise ReengError(f"--log {log_file}: cannot write ({exc.strerror or exc})") from None
        handlers.append(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.propagate = False


def _stamp() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _public(params: dict) -> dict:
    """A command's parameters for the ``runs`` table: paths as text, tokens and URL credentials scrubbed."""
    from reeng.errors import scrub

    clean = {}
    for key, value in params.items():
        clean[key] = [scrub(str(v)) for v in value] if isinstance(value, (list, tuple)) else (
            value if value is None or isinstance(value, (int, float, bool)) else scrub(str(value)))
    return clean


class Terminated(KeyboardInterrupt):
    """SIGTERM during a recorded run: unwinds like Ctrl-C (SIGINT), so the run is recorded and the store closed."""

    exit_code = 128 + signal.SIGTERM


def _terminate(signum: int, frame: object) -> None:
    raise Terminated("SIGTERM")


@contextmanager
def _signals_ignored(main: bool) -> Iterator[None]:
    """SIGINT and SIGTERM ignored for the block (main thread only; elsewhere Python delivers no signal):
    a second Ctrl-C, or a SIGTERM after one, cannot cut the write of a run's status short."""
    if not main:
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


@contextmanager
def _run(conn, command: str, stats: dict) -> Iterator[None]:
    """Record the command in the store's ``runs`` table: version, arguments, start, end, statistics.

    Status ``ok``, ``failed`` (with the error) or ``interrupted`` (SIGINT or SIGTERM, named in the
    statistics' ``error``); for the run's length SIGTERM unwinds as SIGINT does instead of killing the process,
    and while the status is written both signals are ignored (the first one still sets the exit status).
    """
    from miner.store import finish_run, start_run

    params = _public(click.get_current_context().params)
    run_id = start_run(conn, command, params, _stamp())
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main else None
    status, error = "ok", {}
    try:
        yield
    except KeyboardInterrupt as exc:
        status, error = "interrupted", {"error": f"interrupted by {'SIGTERM' if isinstance(exc, Terminated) else 'SIGINT'}"}
        raise
    except BaseException as exc:
        status, error = "failed", {"error": str(exc)[:500]}
        raise
    finally:
        with _signals_ignored(main):
            finish_run(conn, run_id, status, _stamp(), {**stats, **error})
        if main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@click.command("mine")
@click.argument("repos", nargs=-1, required=True, metavar="OWNER/REPO...")
@STORE
@click.option("--api-url", default="https://api.github.com", show_default=True,
              help="REST base URL (GitHub Enterprise: https://HOST/api/v3; the local server's URL).")
@click.option("--api", type=click.Choice(["graphql", "rest"]), default="graphql", show_default=True)
@click.option("--fixes", is_flag=True,
              help="Also store each issue's timeline (events) and the files of the pull requests and commits "
                   "that fixed it (GraphQL).")
@click.option("--jobs", type=click.IntRange(1, 10), default=1, show_default=True,
              help="Repositories crawled at once; each token still carries one request at a time.")
@click.option("--check-removed", is_flag=True,
              help="Look for deleted and transferred issues even where nothing else changed (one GraphQL "
                   "request per repository).")
@click.option("--archive", type=click.Path(path_type=Path), help="Keep every raw response in this archive file.")
@click.option("--page-size", type=click.IntRange(1, 100), default=100, show_default=True)
@click.option("--max-wait", type=click.FloatRange(min=0), default=3600, show_default=True,
              help="Longest single wait (seconds) accepted; a longer one fails the repository (resume later).")
@click.option("--attempts", type=click.IntRange(1, 20), default=6, show_default=True, help="Tries per request.")
@click.option("--secondary-wait", type=click.FloatRange(min=0), default=60, show_default=True,
              help="First wait after a secondary limit without Retry-After (GitHub asks for >= 60).")
@click.option("--backoff", type=click.FloatRange(min=0), default=1, show_default=True, help="First wait after a 5xx or reset; doubles.")
@click.option("--min-interval", type=click.FloatRange(min=0), default=None,
              help="Seconds between requests (default: PyGithub's pacing on github.com, none elsewhere).")
@click.option("--log", "log_file", type=click.Path(path_type=Path), help="Also write log lines to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's statistics as one JSON object.")
@click.option("--progress/--no-progress", default=True, help="Progress bars per repository (stderr).")
def mine_command(repos: tuple[str, ...], store_path: Path, api_url: str, api: str, fixes: bool, jobs: int,
                 check_removed: bool, archive: Path | None, page_size: int, max_wait: float, attempts: int, secondary_wait: float,
                 backoff: float, min_interval: float | None, log_file: Path | None, as_json: bool,
                 progress: bool) -> None:
    """Collect every issue of OWNER/REPO... with all comments into --store (token: GITHUB_TOKEN[S])."""
    from miner.archive import Archive
    from miner.client import GitHubClient, Politeness, check_api_url, client_tokens
    from miner.crawl import mine
    from miner.store import check_repo_name, opened

    for repo in repos:
        check_repo_name(repo)
    api_url = check_api_url(api_url)  # without credentials: they are never used, and the archive records URLs
    if fixes and api != "graphql":
        raise ReengError("--fixes reads the timeline through GraphQL: use --api graphql")
    # the files this run creates, removed with a store it creates and leaves without a thread
    new_archive, new_log = (p if p is not None and not p.exists() else None for p in (archive, log_file))
    _setup_logging(log_file)
    policy = Politeness(max_attempts=attempts, secondary_wait=secondary_wait, backoff=backoff, max_wait=max_wait,
                        min_interval=min_interval)
    tokens = client_tokens()
    summary: dict = {}
    raw = None
    try:
        with opened(store_path) as conn:  # the store first: bad input there leaves no archive file behind
            raw = Archive(archive) if archive else None  # refuses the store itself, or any other store
            client = GitHubClient(api_url, tokens, politeness=policy, archive=raw)
            with _run(conn, "mine", summary):
                failures = mine(client, conn, list(repos), api=api, page_size=page_size, progress=progress,
                                fixes=fixes, jobs=jobs, check_removed=check_removed)
                summary.update(client.stats.to_dict(), failures=failures)
                _echo_mine_stats(client.stats.to_dict(), failures, len(repos), fixes, as_json)
                if failures:  # the run is recorded as failed; a store it created and left without a thread goes
                    raise ReengError("; ".join(failures.values()))
    finally:
        if raw:
            raw.close()
        if not store_path.exists():  # opened removed the store this run created: its archive and log go with it
            _discard(new_archive, new_log)


def _echo_mine_stats(stats: dict, failures: dict[str, str], n_repos: int, fixes: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**stats, "failures": failures}, sort_keys=True))
    else:
        click.echo(f"{stats['issues']} issues, {stats['comments']} comments from {n_repos} repositories; "
                   f"{stats['requests']} requests ({stats['not_modified']} answered 304), {stats['retries']} retries, "
                   f"{stats['waits']} waits ({stats['waited_seconds']} s), rate-limit budget used {stats['budget_used']}"
                   + (f"; {stats['fixes']} fixes, {stats['events']} timeline events" if fixes else ""))


def _discard(archive: Path | None, log_file: Path | None) -> None:
    """The archive (with its WAL) and the ``--log`` file a failed run created beside a store it left nothing in."""
    from miner.store import remove_database

    logger = logging.getLogger("reeng.miner")
    for handler in [h for h in logger.handlers if isinstance(h, _LogFile)]:
        logger.removeHandler(handler)
        handler.close()
    if archive is not None:
        remove_database(archive)
    if log_file is not None:
        log_file.unlink(missing_ok=True)


@click.command("sample")
@STORE
@click.option("--protocol", "protocol_name", default="jiang2024", show_default=True)
@click.option("--seed", type=int, required=True, help="Seed of the draw (recorded with the sample).")
@click.option("--repos", help="Comma-separated OWNER/REPO list (default: every repository in the store).")
@click.option("--state", type=click.Choice(["open", "closed", "any"]), help="Override: issue state that qualifies.")
@click.option("--min-comments", type=int, help="Override: fewest comments for an issue to qualify.")
@click.option("--fraction", type=float, help="Override: share drawn from large populations.")
@click.option("--small-population", type=int, help="Override: largest population drawn by count instead.")
@click.option("--small-draw", type=int, help="Override: issues drawn from a small population.")
@click.option("--json", "as_json", is_flag=True, help="Print the sample (with its drawn issues) as JSON.")
def sample_command(store_path: Path, protocol_name: str, seed: int, repos: str | None, state: str | None,
                   min_comments: int | None, fraction: float | None, small_population: int | None,
                   small_draw: int | None, as_json: bool) -> None:
    """Draw a seeded study sample and record it (protocol, parameters, seed, issues) in the store."""
    from miner.sample import draw, protocol
    from miner.store import opened

    params = protocol(protocol_name, min_comments=min_comments, fraction=fraction, small_population=small_population,
                      small_draw=small_draw, state=state)
    with opened(store_path, create=False) as conn:
        result = draw(conn, protocol_name, params, seed, [r.strip() for r in repos.split(",")] if repos else None)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    click.echo(f"sample {result['sample_id']} ({protocol_name}, seed {seed}): {len(result['drawn'])} of "
               f"{sum(result['population'].values())} qualifying issues from {len(result['population'])} repositories")


@click.group("import")
def import_group() -> None:
    """Import published corpora or exports into a store."""


@import_group.command("denchmark")
@click.argument("path", type=click.Path(path_type=Path))
@STORE
@click.option("--repos", help="Comma-separated OWNER/REPO list to keep (case-insensitive).")
@click.option("--limit", type=click.IntRange(1), help="Stop after this many threads.")
def import_denchmark_command(path: Path, store_path: Path, repos: str | None, limit: int | None) -> None:
    """Read the Denchmark archive (.tar.xz, in place) into a store."""
    from miner.exchange import check_denchmark_import, import_denchmark
    from miner.store import opened

    path, wanted = check_denchmark_import(path, repos.split(",") if repos else None, limit)
    summary: dict = {}
    with opened(store_path) as conn, _run(conn, "import denchmark", summary):
        counts, stats = import_denchmark(path, conn, wanted, limit, require_all=True)
        summary.update(counts, recovered=stats.recovered, unreadable=len(stats.unreadable))
    click.echo(f"{counts['issues']} issues, {counts['comments']} comments imported "
               f"({stats.recovered} repaired, {len(stats.unreadable)} unreadable files skipped)")
    for name in stats.unreadable:
        click.echo(f"unreadable: {name}", err=True)


@import_group.command("jsonl")
@click.argument("folder", type=click.Path(path_type=Path))
@STORE
def import_jsonl_command(folder: Path, store_path: Path) -> None:
    """Read an export made with ``reeng export --format jsonl`` back into a store."""
    from miner.exchange import import_jsonl
    from miner.store import opened

    if not folder.is_dir():
        raise ReengError(f"{folder}: no such folder (expected an export made with --format jsonl)")
    summary: dict = {}
    with opened(store_path) as conn, _run(conn, "import jsonl", summary):
        counts = import_jsonl(folder, conn)
        summary.update(counts)
    click.echo(f"{counts['issues']} issues, {counts['comments']} comments imported")


@import_group.command("archive")
@click.argument("path", type=click.Path(path_type=Path))
@STORE
def import_archive_command(path: Path, store_path: Path) -> None:
    """Re-parse a raw archive (``reeng mine --archive``) into a store, offline."""
    from miner.archive import reparse
    from miner.store import opened

    if not path.is_file():
        raise ReengError(f"{path}: no such archive")
    summary: dict = {}
    with opened(store_path) as conn, _run(conn, "import archive", summary):
        counts = reparse(path, conn)
        summary.update(counts)
    click.echo(f"{counts['issues']} issues, {counts['comments']} comments re-parsed")


@click.command("export")
@STORE
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl", "csv"]), default="parquet", show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for issues.*, comments.*, events.* and fixes.*.")
def export_command(store_path: Path, fmt: str, out: Path) -> None:
    """Export the content of a store (no fetch metadata), in a deterministic order."""
    from miner.exchange import export_store
    from miner.store import opened

    with opened(store_path, create=False) as conn:
        counts = export_store(conn, out, fmt)
    click.echo(f"{counts['issues']} issues, {counts['comments']} comments, {counts['events']} events, "
               f"{counts['fixes']} fixes -> {out}")


@click.command("serve-github")
@click.option("--corpus", required=True, type=click.Path(path_type=Path), help="Store whose threads are served.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 picks a free port.")
@click.option("--faults", help="Fault spec, e.g. 5xx=0.05,secondary403=0.02,reset=0.01,primary_after=500.")
@click.option("--verbose", is_flag=True, help="Log every request.")
def serve_command(corpus: Path, port: int, faults: str | None, verbose: bool) -> None:
    """Serve a store over a local GitHub-compatible REST + GraphQL API (until interrupted)."""
    from miner.server import make_server

    server = make_server(corpus, port, faults, quiet=not verbose)
    click.echo(f"listening on http://127.0.0.1:{server.server_address[1]}", nl=True)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        click.echo(f"served: {json.dumps(server.counts, sort_keys=True)}", err=True)


@click.group("repos")
def repos_group() -> None:
    """Select repositories to mine."""


@repos_group.command("search")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="YAML selection criteria (see docs/miner.md).")
@click.option("--preset", type=click.Choice(["jiang2024"]), help="The study's 27 repositories instead of a search.")
@click.option("--api-url", default="https://api.github.com", show_default=True)
@click.option("--store", "store_path", type=click.Path(path_type=Path), help="Also record the selection in this store.")
@click.option("--json", "as_json", is_flag=True)
def repos_search_command(config_path: Path | None, preset: str | None, api_url: str, store_path: Path | None,
                         as_json: bool) -> None:
    """Find CV reengineering repositories by the study's criteria and tag each zoo or solo."""
    from miner.client import GitHubClient, check_api_url, client_tokens
    from miner.repos import load_criteria, preset_repositories, record, search

    if preset:
        selection = preset_repositories(preset)
    else:
        api_url = check_api_url(api_url)  # without credentials: the store records it as the selection's source
        criteria = load_criteria(config_path)
        _setup_logging(None)  # the client's warnings (no token, waits) as ``reeng mine`` shows them
        selection = search(GitHubClient(api_url, client_tokens()), criteria)
    if store_path is not None:
        from miner.store import opened

        with opened(store_path) as conn:
            record(conn, selection, source=preset or api_url)
    if as_json:
        click.echo(json.dumps(selection, sort_keys=True))
        return
    for repo in selection:
        click.echo(f"{repo['repo']:50} {repo.get('stars') or '':>7} {repo['repo_type']:5} {repo.get('reason', '')}")
