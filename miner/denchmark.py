"""Reader for the Denchmark archive of deep-learning bug reports (Kim et al., MSR 2021).

The archive holds one XML file per issue, ``bugreports/<owner>+<repo>/<number>.xml``, with the
issue text HTML-escaped and GitHub's Markdown flattened into the archive's own markup
(``<denchmark-code>``, ``<denchmark-link:URL>``, ``<denchmark-h:hN>``). This module reads the
``.tar.xz`` in place (never unpacking it) and turns each file into the thread shape of the store,
with the markup turned back into Markdown so mined and imported threads read alike.
"""

from __future__ import annotations

import html
import re
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reeng.errors import ReengError

MEMBER = re.compile(r"(?:^|/)bugreports/(?P<owner>[^/+]+)\+(?P<repo>[^/]+)/(?P<number>\d+)\.xml$")
STRUCTURE_TAGS = r"(?:bug|summary|description|comments|comment)"
NO_DESCRIPTION = "No description provided."

_CODE = re.compile(r"<denchmark-code>(.*?)</denchmark-code>", re.S)
_LINK = re.compile(r"<denchmark-link:(?P<url>[^>]*)>(?P<text>.*?)</denchmark-link>", re.S)
_HEADING = re.compile(r"<denchmark-h:h(?P<level>[1-6])>(?P<text>.*?)</denchmark-h>", re.S)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass
class ArchiveStats:
    """Counters that fill in while the archive is read."""

    files: int = 0
    recovered: int = 0
    unreadable: list[str] = field(default_factory=list)
    # repositories asked for that the archive, read to its end, does not hold (an import sets it)
    lacking: list[str] = field(default_factory=list)


def to_markdown(text: str) -> str:
    """Undo the archive's markup and HTML entities; trim the XML indentation around the text."""
    text = _CODE.sub(lambda m: f"\n```\n{m.group(1).strip(chr(10))}\n```\n", text)
    text = _HEADING.sub(lambda m: f"{'#' * int(m.group('level'))} {m.group('text').strip()}", text)

    def link(m: re.Match[str]) -> str:
        url, label = m.group("url").strip(), m.group("text").strip()
        return url if not label or label == url else f"[{label}]({url})"

    text = _LINK.sub(link, text)
    text = html.unescape(text).strip()
    return "" if text == NO_DESCRIPTION else text


def _sanitize(data: str) -> str:
    """Make a malformed file parseable: drop control characters, escape stray markup and ampersands."""
    data = _CONTROL.sub("", data)
    data = re.sub(rf"<(?!/?{STRUCTURE_TAGS}\b)", "&lt;", data).replace("]]>", "]]&gt;")
    return re.sub(r"&(?!(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);)", "&amp;", data)


def parse_bug(data: bytes, owner: str, repo: str, number: int) -> tuple[dict[str, Any], bool]:
    """One XML file as an issue dict with a ``comments`` list; the flag says whether it needed repair."""
    text = data.decode("utf-8", errors="replace")
    recovered = False
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        root = ET.fromstring(_sanitize(text))  # a second failure propagates to the caller
        recovered = True
    full = f"{owner}/{repo}"
    comments = []
    for el in root.iterfind("./comments/comment"):
        comments.append({
            "comment_id": int(el.get("id", len(comments) + 1)),
            "author": el.get("author"),
            "body": to_markdown("".join(el.itertext())),
            "created_at": el.get("date"),
            "updated_at": el.get("date"),
        })
    closed = root.get("closed_time") or None
    stamps = [s for s in (root.get("open_date"), closed, *(c["created_at"] for c in comments)) if s]
    issue = {
        "repo": full,
        "number": number,
        "title": to_markdown(root.findtext("summary") or ""),
        "body": to_markdown("".join(root.find("description").itertext()) if root.find("description") is not None else ""),
        "state": "closed" if closed else "open",
        "author": root.get("author"),
        "labels": [],
        "created_at": root.get("open_date"),
        # The archive keeps no update time: the latest event of the thread stands in for it.
        "updated_at": max(stamps) if stamps else None,
        "closed_at": closed,
        "comments_count": len(comments),
        "reactions": {},
        "url": f"https://github.com/{full}/issues/{number}",
        "comments": comments,
    }
    return issue, recovered


def iter_members(path: Path | str,
                 wanted: Callable[[str, str, int], bool] | None = None) -> Iterator[tuple[str, str, str, int, bytes]]:
    """(member name, owner, repo, number, XML bytes) of the archive's bug reports, in archive order.

    ``wanted(owner, repo, number)`` skips a member before its bytes are read. An archive that
    cannot be opened, or is truncated or corrupt, raises :class:`ReengError`.
    """
    try:
        archive = tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ReengError(f"{path}: not a readable archive ({type(exc).__name__})") from None
    with archive:
        try:
            for member in archive:
                match = MEMBER.search(member.name)
                if not member.isfile() or not match:
                    continue
                owner, repo, number = match["owner"], match["repo"], int(match["number"])
                if wanted is not None and not wanted(owner, repo, number):
                    continue
                yield member.name, owner, repo, number, archive.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            # lzma raises EOFError / LZMAError (an OSError) on a truncated archive.
            raise ReengError(f"{path}: archive is truncated or corrupt ({type(exc).__name__})") from None


def members_by_repo(path: Path | str, wanted: Callable[[str, str, int], bool] | None = None
                    ) -> dict[str, list[tuple[int, bytes, str, str]]]:
    """The wanted members of :func:`iter_members` by ``"owner/repo"``: (number, XML bytes, owner, repo), by number."""
    members: dict[str, list[tuple[int, bytes, str, str]]] = {}
    for _, owner, repo, number, data in iter_members(path, wanted):
        members.setdefault(f"{owner}/{repo}", []).append((number, data, owner, repo))
    return {key: sorted(items, key=lambda item: item[0]) for key, items in members.items()}


def archived_issues(path: Path | str, keys: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
    """Which of ``keys`` (``"owner/repo"``, number; case-insensitive) have a thread in the archive.

    Reads member names only, never their XML (about 4 s for the whole archive).
    """
    wanted = {(repo.lower(), int(number)) for repo, number in keys}
    found: set[tuple[str, int]] = set()

    def note(owner: str, repo: str, number: int) -> bool:
        key = (f"{owner}/{repo}".lower(), number)
        if key in wanted:
            found.add(key)
        return False  # no member's bytes are needed

    for _ in iter_members(path, note):
        pass
    return found


def readable_issue(data: bytes, owner: str, repo: str, number: int) -> dict[str, Any] | None:
    """The issue of :func:`parse_bug`, or None for a member that cannot be read (samplers skip it, as
    :func:`read_archive` lists it among the unreadable)."""
    try:
        return parse_bug(data, owner, repo, number)[0]
    except (ET.ParseError, ValueError):
        return None


def check_limit(limit: int | None) -> int | None:
    """How many threads to read at most: None (all) or a whole number of 1 or more, else one clear error."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ReengError(f"limit {limit!r}: a whole number, 1 or more")
    return limit


def read_archive(
    path: Path | str, repos: Iterable[str] | None = None, limit: int | None = None
) -> tuple[Iterator[dict[str, Any]], ArchiveStats]:
    """Threads of the archive (optionally of some repositories, case-insensitive) and their counters.

    The counters fill in as the iterator is consumed. A member that cannot be parsed even after
    repair (an empty file, say) is listed in ``stats.unreadable``, never dropped silently; a
    truncated or corrupt archive raises :class:`ReengError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ReengError(f"{path}: no such archive")
    check_limit(limit)  # checked here: the limit is tested only after a thread was read
    wanted = {r.casefold() for r in repos} if repos is not None else None
    stats = ArchiveStats()

    def threads() -> Iterator[dict[str, Any]]:
        select = (lambda owner, repo, _: f"{owner}/{repo}".casefold() in wanted) if wanted is not None else None
        for name, owner, repo, number, data in iter_members(path, select):
            try:
                issue, recovered = parse_bug(data, owner, repo, number)
            except ET.ParseError:
                stats.unreadable.append(name)
                continue
            except ValueError:  # a malformed field (a comment id that is not a number): a corrupt archive
                raise ReengError(f"{path}: archive is truncated or corrupt (ValueError)") from None
            stats.files += 1
            stats.recovered += int(recovered)
            yield issue
            if limit is not None and stats.files >= limit:
                return

    return threads(), stats
