"""The one error type users see, and what the CLI's error boundary does with every other failure.

A :class:`ReengError` is a problem with the user's input or environment that they can fix: the
CLI prints ``error: <message>`` and exits with status 2. :func:`describe` turns the failures of
the environment that are just as expected (a full disk, a closed pipe, a file that is not an
SQLite store) into such a message. Anything else is a bug: :func:`write_error_log` keeps its
traceback in a private log file. Both paths pass through :func:`scrub`, so a token or API key in
an environment variable, a URL or an ``Authorization`` header never reaches the terminal or a log.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import tempfile
import time
import traceback
from pathlib import Path


class ReengError(Exception):
    """A problem with the user's input or environment that they can fix.

    The CLI prints ``error: <message>`` and exits with status 2; no traceback, and never a token
    (callers build messages from names and values, not from credentials).
    """


class ReengWarning(UserWarning):
    """Work went on, with less than it should have (a missing local file, a fallback): the CLI prints
    ``warning: <message>`` on stderr, once; a notebook shows it as any other warning."""


REDACTED = "[redacted]"
# Environment variables whose values are secrets wherever they appear.
SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY|^LABEL_STUDIO_.*KEY", re.I)
SECRET_PATTERNS = [
    # GitHub tokens: classic (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained (github_pat_).
    re.compile(r"\bgh[opusr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    # Authorization headers, as text ("Authorization: token X") or as a dict repr ('Authorization': 'Bearer X').
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:bearer|token|basic)\s+)?[^\s'\",}]+"),
    # Credentials in URLs (https://user:secret@host, https://TOKEN@host) and as query parameters (?access_token=X).
    re.compile(r"(?<=://)[^/\s@]+(?=@)"),
    re.compile(r"(?i)((?:access_token|api_key|apikey|token)=)[^&\s'\"]+"),
]


def _secret_values() -> list[str]:
    values = set()
    for name, value in os.environ.items():
        if SECRET_ENV.search(name):
            # GITHUB_TOKENS holds several tokens separated by commas or whitespace.
            values.update(v for v in re.split(r"[\s,;]+", value) if len(v) >= 6)
            if len(value.strip()) >= 6:
                values.add(value.strip())
    return sorted(values, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` with every token, key and credential it contains replaced by ``[redacted]``."""
    for value in _secret_values():
        text = text.replace(value, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + REDACTED, text)
    return text


# sqlite3 messages that describe the file or the disk, not a bug (lower case, as sqlite words them).
SQLITE_INPUT_PROBLEMS = {
    "database or disk is full": "the disk is full (SQLite: database or disk is full); free some space and run it again",
    "file is not a database": "a store given is not an SQLite database (file is not a database)",
    "database disk image is malformed": "a store given is damaged (SQLite: database disk image is malformed)",
    "attempt to write a readonly database": "a store given is read-only (SQLite: attempt to write a readonly database)",
    "unable to open database file": "a store could not be opened (SQLite: unable to open database file); check the path",
    "disk i/o error": "the disk failed while writing a store (SQLite: disk I/O error)",
}


def describe(exc: BaseException) -> str | None:
    """The one-line message for an expected failure, or None when ``exc`` is a bug."""
    if isinstance(exc, ReengError):
        return str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.IntegrityError):
        text = str(exc).lower()
        for needle, message in SQLITE_INPUT_PROBLEMS.items():
            if needle in text:
                return message
        return None
    if isinstance(exc, OSError) and exc.errno is not None:
        where = exc.filename if exc.filename is not None else None
        if exc.errno == errno.ENOSPC:
            target = f"writing {where}" if where else "writing standard output or an output file"
            return f"no space left on the device ({target}); free some space and run it again"
        if exc.errno == errno.EPIPE:
            return "the output was closed before everything was written (broken pipe)"
        if exc.errno in (errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR,
                         errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.EIO, errno.EFBIG, errno.ELOOP):
            reason = exc.strerror or os.strerror(exc.errno)
            return f"{where}: {reason.lower()}" if where else reason.lower()
    return None


def error_log_dir() -> Path:
    """Where tracebacks of unexpected failures are kept: ``<cache>/errors`` (else the temp folder)."""
    from reeng.settings import cache_dir

    try:
        path = cache_dir() / "errors"
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return Path(tempfile.gettempdir())


def write_error_log(exc: BaseException, argv: list[str]) -> Path | None:
    """Write the scrubbed traceback of ``exc`` to a new file readable only by its owner; its path, or None."""
    text = scrub("reeng " + " ".join(argv) + "\n\n" + "".join(traceback.format_exception(exc)))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        fd, name = tempfile.mkstemp(prefix=f"reeng-{stamp}-", suffix=".log", dir=error_log_dir())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp makes it 0600: tracebacks stay private
            handle.write(text)
        return Path(name)
    except OSError:
        return None
