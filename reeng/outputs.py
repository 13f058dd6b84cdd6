"""Writing outputs so a failure never leaves anything half-written.

Commands build their files in a hidden staging folder (or file) beside the destination and move
them into place only when everything succeeded; on an error the staging copy is removed. A
destination that cannot be one (an existing file as an output folder, a device such as
``/dev/full``, a folder as an output file) is refused before anything is written.

A staging name records who made it: ``.NAME.reeng-<pid>@<host>.<random>``. A run killed before
it could clean up (SIGKILL, power loss) leaves its staging copy behind; the next run writing to
the same destination removes it once the recorded process is gone. Outputs get the permissions
of the user's umask, like any file the user creates, not the private 0700/0600 of a temporary.

Tables written as CSV or XLSX escape every text cell a spreadsheet would run as a formula
(:func:`spreadsheet_safe`); :func:`from_spreadsheet` reads such a table back as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reeng.errors import ReengError

if TYPE_CHECKING:  # pandas only where a table is written
    import pandas as pd

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
_STAGING = re.compile(r"\.reeng-(?P<pid>\d+)@(?P<host>[A-Za-z0-9_-]+)\.[^.]+$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prefix(name: str) -> str:
    return f".{name}.reeng-{os.getpid()}@{_HOST}."


def _alive(pid: int, since: float) -> bool:
    """Whether process ``pid`` runs and may have made something at time ``since``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = _start_time(pid)
    # A pid reused by a process started after the staging copy was made did not make it.
    return started is None or started <= since + 1


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), where /proc tells."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def clean_stale(dest: Path) -> list[Path]:
    """Remove staging copies of ``dest`` left by runs that were killed; the ones removed."""
    dest = Path(dest)
    removed = []
    try:
        candidates = list(dest.parent.glob(f".{glob_escape(dest.name)}.reeng-*"))
    except OSError:
        return removed
    for path in candidates:
        match = _STAGING.search(path.name)
        if not match or match["host"] != _HOST or not path.name.startswith(f".{dest.name}.reeng-"):
            continue
        try:
            made = path.lstat().st_mtime
        except OSError:
            continue
        if _alive(int(match["pid"]), made):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _check_parent(dest: Path) -> None:
    parent = dest.parent
    for folder in (parent, *parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ReengError(f"{dest}: {folder} exists and is not a folder")
            break


def _unwritable(dest: Path, make: Any) -> Any:
    """``make()`` (a staging copy beside ``dest``), its OSError named after ``dest``, not the hidden staging name."""
    try:
        return make()
    except OSError as exc:
        raise ReengError(f"{dest}: cannot write there ({exc.strerror or type(exc).__name__})") from None


def _check_writable(dest: Path) -> None:
    """A file can be made beside ``dest``: its nearest existing folder takes (and loses) a temporary file."""
    folder = next(f for f in (dest.parent, *dest.parent.parents) if f.exists())
    fd, name = _unwritable(dest, lambda: tempfile.mkstemp(prefix=_prefix(dest.name), dir=folder))
    os.close(fd)
    os.unlink(name)


def check_dir_target(out: Path) -> None:
    """What :func:`staged_dir` refuses before it writes: a command checks it before its long work, too."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReengError(f"{out}: exists and is not a folder; give a folder (new or existing) as the output")
    _check_parent(out)
    _check_writable(out)


def check_file_target(path: Path) -> None:
    """What :func:`staged_file` refuses before it writes: a command checks it before its long work, too."""
    path = Path(path)
    if path.is_dir():
        raise ReengError(f"{path}: is a folder; give a file name as the output")
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise ReengError(f"{path}: exists and is not a regular file (a device or pipe); give a file name as the output")
    _check_parent(path)
    _check_writable(path)


@contextmanager
def staged_dir(out: Path, owns: Iterable[str] = ()) -> Iterator[Path]:
    """Yield an empty staging folder; on success its files replace those of the same name in ``out``.

    ``owns``: names in ``out`` that belong to this kind of output although a run may not write them (an
    optional ``compare.json``); one the new run does not write is removed, so no earlier run's file is left
    beside the new ones as if it were theirs. Anything else already in ``out`` stays.
    """
    out = Path(out)
    check_dir_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    staging = Path(_unwritable(out, lambda: tempfile.mkdtemp(prefix=_prefix(out.name), dir=out.parent)))
    try:
        staging.chmod(0o777 & ~_umask())
        yield staging
        out.mkdir(parents=True, exist_ok=True)
        for name in owns:
            old = out / name
            if (staging / name).exists() or not (old.exists() or old.is_symlink()):
                continue
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
        for item in staging.iterdir():
            target = out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` atomically on success."""
    path = Path(path)
    check_file_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    fd, tmp = _unwritable(path, lambda: tempfile.mkstemp(prefix=_prefix(path.name), dir=path.parent))
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# What a spreadsheet runs as a formula when a cell starts with it (OWASP's CSV injection list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading ``'``; anything else is returned as it is."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def from_spreadsheet_cell(value: Any) -> Any:
    """The text :func:`spreadsheet_cell` escaped, as it was (a leading ``'`` before a formula start dropped)."""
    return value[1:] if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_START) else value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A table for CSV or XLSX: every text cell a spreadsheet would run as a formula escaped (:func:`spreadsheet_cell`).

    Text written to CSV comes from issue threads, raters' sheets or user files; opened in a spreadsheet,
    ``=HYPERLINK(...)`` in a title would run. Parquet and JSON outputs keep the text exactly.
    """
    return _text_columns(frame, spreadsheet_cell)


def from_spreadsheet(frame: pd.DataFrame) -> pd.DataFrame:
    """A table read from CSV or XLSX with the cells :func:`spreadsheet_safe` escaped as they were."""
    return _text_columns(frame, from_spreadsheet_cell)


def _text_columns(frame: pd.DataFrame, cell: Any) -> pd.DataFrame:
    from pandas.api.types import is_object_dtype, is_string_dtype

    return frame.apply(lambda col: col.map(cell) if is_object_dtype(col) or is_string_dtype(col) else col)
