"""Who wrote what in an issue thread: bot and template comments, the opening post, the discussion.

Why: a defect's labels are decided by different people's words. What the reporter saw (impact,
manifestation) and who they are (reporter type) is in the opening post and the reporter's own
follow-ups; why it failed (root cause, code error type) is in the whole discussion, where the
maintainers diagnose it and name the fix. Bot comments (welcome, stale, CI templates) say the
same words in every thread ("docker", "custom data", "tutorial") and must decide nothing.

Bots are recognised by author (``[bot]`` logins, known bot accounts) and, where authors are
unknown or unreliable (the Denchmark archive gives every comment the issue's author), by the
fixed phrases of the templates they post. Comments are cleaned before anything reads them:
quoted replies, URLs, markdown link targets, images and HTML comments go (GitHub does not show
a comment: it is an issue template's instructions, which a corpus mined from the REST API
keeps and the rendered Denchmark archive almost never holds: 9 of its 26,145 threads); long logs are condensed by
:mod:`taxonomy.text`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from taxonomy.text import fold_case

# Accounts that post automatically (lower case); any login ending in "[bot]" is one too.
KNOWN_BOTS = frozenset({
    "github-actions", "stale", "stale-bot", "dependabot", "dependabot-preview", "codecov", "codecov-io",
    "codecov-commenter", "mergify", "allcontributors", "welcome", "lgtm-com", "sonarcloud", "pre-commit-ci",
    "glenn-jocher-bot", "ultralytics-assistant", "mmdet-bot", "tensorflow-bot", "tensorflowbutler", "googlebot",
    "facebook-github-bot", "pytorchbot", "issue-label-bot", "no-response", "probot-stale", "copybara-service",
})
# Fixed phrases of the templates bots post (welcome, stale, CLA, CI status, automated triage).
# Written from the bots' public documentation; each is specific enough never to occur in a human report.
BOT_TEMPLATES = (
    r"has been automatically marked as stale",
    r"this issue (?:has been|was) automatically (?:closed|locked)",
    r"will be closed (?:automatically )?if no further activity occurs",
    r"thank you for your contributions?\.? (?:this issue|it will be closed)",
    r"hello @[\w-]+, thank you for your interest in",
    r"👋 hello @[\w-]+",
    r"thanks for your interest in (?:our work|this project)",
    r"if this is a (?:🐛 )?bug report, please provide screenshots and \*\*minimum viable code to reproduce",
    r"thanks for submitting (?:the|this|your) (?:issue|pull request)[.!] ?(?:we will|someone will|a maintainer)",
    r"please sign (?:our|the) contributor license agreement",
    r"this (?:issue|pull request) has been automatically",
    r"codecov report",
    r"automated (?:message|comment|response)",
    r"i'?m a bot",
    r"beep boop",
    r"are you satisfied with the resolution of your issue\?",
    r"closing (?:this issue|due to) (?:as stale|inactivity|lack of activity) automatically",
)
# All templates (written in lower case) in one case-sensitive pattern, searched in the case-folded
# comment (taxonomy.text.fold_case finds exactly what re.I would): one scan instead of one per
# template, and several times faster than re.I.
_BOT_TEMPLATE = re.compile("|".join(f"(?:{p})" for p in BOT_TEMPLATES))
# A bot's template opens its comment: only its first characters are searched, which keeps the
# search short on long human comments; a phrase deep inside one (a user quoting a bot) is not a
# bot. Over the 125,377 comments of the Denchmark archive this differs from searching whole
# comments on one, a human e-mail reply that quotes a bot.
BOT_HEAD_CHARS = 300
# Every template holds one of these words outside its optional parts (a test checks): the pattern
# is searched only in a head that holds one, which few human comments do (a few substring tests
# cost a fifth of a search). The thanking templates are hinted by their longer phrases, not by
# "thank": of the archive's 125,377 comment heads, 24,023 say "thank", 1,388 these phrases, so
# the pattern runs on 8,483 heads instead of 30,179.
BOT_TEMPLATE_HINTS = ("automat", "for your contribution", "for your interest", "thanks for submitting",
                      "no further activity", "👋", "screenshots", "contributor license", "codecov", "a bot",
                      "beep boop", "satisfied with the resolution")


def is_bot(author: str | None, body: str | None) -> bool:
    """A comment written by a bot account, or one that opens with a bot template."""
    login = (author or "").strip().lower()
    if login.endswith("[bot]") or login in KNOWN_BOTS:
        return True
    if not body:
        return False
    head = fold_case(body[:BOT_HEAD_CHARS])
    for hint in BOT_TEMPLATE_HINTS:  # a plain loop: any() over a generator cost half as much again
        if hint in head:
            return _BOT_TEMPLATE.search(head) is not None
    return False


_QUOTE = re.compile(r"^[ \t]*>[^\n]*\n?", re.M)
# Whether a quote is there to drop: in the first line, or after a newline. "^" gives the regex engine no
# character to skip to, so the substitution tries every position; on 5,000 threads only 116 of the 1,615
# texts holding a ">" quote, and these two patterns find them in a fifth of the substitution's time.
_QUOTE_FIRST = re.compile(r"[ \t]*>")
_QUOTE_LATER = re.compile(r"\n[ \t]*>")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
# A markdown link: its text, then its target (no spaces; balanced parentheses one deep) and an optional
# title. The target is written as runs of plain characters between parenthesised parts, not as one
# alternation per character (which the regex engine walked a character at a time): the same matches (a
# test checks), and the substitution costs a third as much on long link targets.
_LINK = re.compile(r"\[([^\]\n]*)\]\([^()\s]*(?:\([^()\s]*\)[^()\s]*)*(?:\s+\"[^\"]*\")?\)")
# A URL: "http(s)://", "ftp://" or "www." after a non-word character (what r"\b" would say), then up to a
# space or a closing bracket. Written in lower case, searched in the case-folded text (r"\b(...)" with
# re.I tried every position and cost twice as much). One pattern per kind, each opening with its word,
# which the regex engine finds as fast as str.find, and a lookbehind then checks the word boundary; one
# pattern for all three kinds opened a match at every "h", "f" and "w": the removal cost half as much again.
_URL_TAIL = r"[^\s<>)\]]+"
_URL_STARTS = (r"http(?<!\whttp)s?://", r"ftp(?<!\wftp)://", r"www(?<!\wwww)\.")
_URLS = tuple(re.compile(start + _URL_TAIL) for start in _URL_STARTS)
_URL_ANY_CASE = re.compile(f"(?:{'|'.join(_URL_STARTS)}){_URL_TAIL}", re.I)
_HTML_TAG = re.compile(r"</?(?:img|a|details|summary|br|p|sub|sup)\b[^>]*>", re.I)
# An HTML comment, never rendered by GitHub: an issue template's instructions ("<!-- A clear and concise
# description of what the bug is. -->"). One left open runs to the next code fence or the end: GitHub hides it.
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_MENTION = re.compile(r"@(?<![\w@]@)[A-Za-z0-9-]+")  # "@" first: the regex engine jumps from "@" to "@"


def clean(text: str | None) -> str:
    """A comment without HTML comments, quoted replies, images, link targets, bare URLs, HTML tags and @mentions.

    Link text is kept (``[the docs](url)`` reads "the docs"); a fenced code block is left alone
    here (a ``>`` inside code is not a quote), the text splitter handles it.
    """
    if not text:
        return ""
    pieces = _fence_split(text)
    out = []
    # Each pattern needs a literal most comments lack: a substitution runs only where it can match.
    for i, piece in enumerate(pieces):
        if i % 2:  # inside a fence
            out.append(_drop_urls(piece) if _may_hold_url(piece) else piece)
            continue
        if "<!--" in piece:
            piece = _HTML_COMMENT.sub("", piece)
        if ">" in piece and (_QUOTE_FIRST.match(piece) or _QUOTE_LATER.search(piece)):
            piece = _QUOTE.sub("", piece)
        if "!" in piece and "![" in piece:  # one character is found several times faster than two; 1 text in 8 has "!"
            piece = _IMAGE.sub("", piece)
        if "](" in piece:
            piece = _LINK.sub(lambda m: m.group(1), piece)
        if _may_hold_url(piece):
            piece = _drop_urls(piece)
        if "<" in piece:
            piece = _HTML_TAG.sub(" ", piece)
        out.append(_MENTION.sub("", piece) if "@" in piece else piece)
    return "".join(out)


def _drop_urls(text: str) -> str:
    """``text`` without its URLs (:data:`_URLS` matched in the case-folded text, cut from the original)."""
    folded = fold_case(text)
    if len(folded) != len(text):  # a character whose lower case is longer: positions would shift (rare)
        return _URL_ANY_CASE.sub("", text)
    # What one pattern of all kinds finds, left to right. A URL of one kind that starts inside one of
    # another kind (a "www." after "http://") ends where that one ends, at the same space or bracket: it
    # is passed over, and the next of its kind starts after both.
    kept, pos = [], 0
    for start, end in sorted(m.span() for url in _URLS for m in url.finditer(folded)):
        if start >= pos:
            kept.append(text[pos:start])
            pos = end
    return "".join([*kept, text[pos:]]) if kept else text


def _may_hold_url(text: str) -> bool:
    """Whether a URL (:data:`_URLS`) can match: a scheme, or "www." in any case (lower-casing only where "W" is)."""
    return "://" in text or "www." in text or ("W" in text and "www." in text.lower())


def _fence_split(text: str) -> list[str]:
    """``text`` as [outside, fence, outside, ...]: a fence runs from ``` to the next ``` (or the end).

    What ``re.split(r"(```.*?(?:```|\\Z))", text, flags=re.S)`` gives, by ``str.find`` (the lazy
    pattern tested for a closing fence at every character).
    """
    pieces, pos = [], 0
    while (start := text.find("```", pos)) >= 0:
        end = text.find("```", start + 3)
        end = len(text) if end < 0 else end + 3
        pieces += [text[pos:start], text[start:end]]
        pos = end
    pieces.append(text[pos:])
    return pieces


@dataclass
class ThreadParts:
    """A thread's human text split by role, cleaned; bots and templates counted, not kept."""

    title: str
    opening: list[str]  # the opening post and the reporter's own follow-ups
    discussion: list[str]  # everybody else's comments, in order (maintainers' diagnosis, the fix)
    dropped_bot_comments: int = 0
    authors_known: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def whole(self) -> list[str]:
        return [*self.opening, *self.discussion]


def split_roles(title: str | None, body: str | None, comments: Iterable[dict[str, Any]],
                reporter: str | None = None) -> ThreadParts:
    """Split a thread into the reporter's part and the discussion, without bots, quotes or URLs.

    Authors are unknown when no comment names one, or when every comment names the reporter
    (the Denchmark archive): then only the opening post counts as the reporter's, because a
    maintainer's answer would otherwise be read as the reporter's own words.
    """
    comments = list(comments)
    authors = [(c.get("author") or c.get("user") or "") for c in comments]
    reporter_login = (reporter or "").strip().lower()
    authors_known = bool(comments) and any(authors) and not (
        reporter_login and len(comments) > 1 and all(a.strip().lower() == reporter_login for a in authors))
    parts = ThreadParts((title or "").strip(), [clean(body)] if body else [], [], authors_known=authors_known)
    if not authors_known and comments:
        parts.notes.append("comment authors unknown: the opening post alone is the reporter's")
    for comment, author in zip(comments, authors):
        text = comment.get("body")
        if not isinstance(text, str) or not text.strip():
            continue
        if is_bot(author, text):
            parts.dropped_bot_comments += 1
            continue
        by_reporter = authors_known and reporter_login and author.strip().lower() == reporter_login
        (parts.opening if by_reporter else parts.discussion).append(clean(text))
    return parts


@dataclass(frozen=True)
class RawThread:
    """A stored thread reduced to what :func:`split_roles` reads: small to send to a worker process."""

    title: str | None
    body: str | None
    comments: list[dict[str, Any]]  # {"author", "body"} in thread order
    reporter: str | None

    @classmethod
    def of(cls, thread: Any) -> RawThread:
        """A store ``Thread`` (its ``issue`` dict names the reporter)."""
        issue = getattr(thread, "issue", {}) or {}
        reporter = issue.get("author") or issue.get("user")
        if isinstance(reporter, dict):
            reporter = reporter.get("login")
        comments = [{"author": c.get("author") or c.get("user"), "body": c.get("body")}
                    for c in getattr(thread, "comments", []) or []]
        return cls(thread.title, thread.body, comments, reporter)

    def split(self) -> ThreadParts:
        return split_roles(self.title, self.body, self.comments, self.reporter)


def thread_parts(thread: Any) -> ThreadParts:
    """:func:`split_roles` for a store ``Thread``."""
    return RawThread.of(thread).split()
