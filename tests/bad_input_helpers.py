"""Shared pieces of the bad-input tests: a minimal valid gold sheet and the one-clean-error check."""

from __future__ import annotations

import re
from pathlib import Path

GOOD_HEADER = (",URL,Repo owner,Repo name,Issue #,Repo type,Research Prototype,Framework,Same Code?,Same Data?,"
               "Impacts,Part of Implementation,Project Type,Reporter,Defect types,Root Causes,Manifestation\n")
GOOD_ROW = ("0,https://github.com/a/b/issues/1,a,b,1,Solo Repository,No,pytorch,Yes,Yes,Crash,Environment,"
            '"User ""fork""",Re-user,External interface,API defects,Basic defects\n')


def gold_csv(path: Path, rows: int = 1, repo: str = "a/b") -> Path:
    """A valid defect sheet with ``rows`` defects (issue numbers 1..rows) of ``repo``."""
    owner, name = repo.split("/")
    body = "".join(GOOD_ROW.replace("0,", f"{i},", 1).replace("/a/b/issues/1,a,b,1,", f"/{owner}/{name}/issues/{i + 1},"
                                                                f"{owner},{name},{i + 1},") for i in range(rows))
    path.write_text(GOOD_HEADER + body, encoding="utf-8")
    return path


def error_line(stderr: str, progress: bool = False) -> str:
    """The one ``error:`` line that is all a failed command may print on stderr (after its progress
    bars, with ``progress``)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not (progress and "━" in line)]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    return lines[0]


LOG_PATH = re.compile(r"details in (\S+\.log)")


def boundary_ok(code: int, stderr: str, allow_success: bool = False) -> str | None:
    """What the error boundary promises for any input: success, one ``error:`` line with exit 2, or,
    for a bug, one line with exit 1 naming the log file that holds the traceback. The log's path when
    it was a bug, else None."""
    if code == 0 and allow_success:
        assert "Traceback" not in stderr, stderr
        return None
    line = error_line(stderr)
    if code == 2:
        return None
    assert code == 1 and "unexpected failure" in line, (code, stderr)
    log = LOG_PATH.search(line)
    assert log and Path(log[1]).is_file() and "Traceback" in Path(log[1]).read_text(), line
    return log[1]


def nothing_beside(out: Path) -> None:
    """Neither ``out`` nor a staging copy of it exists."""
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
