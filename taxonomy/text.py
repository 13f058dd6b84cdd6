"""Text preparation: split an issue thread into prose, code, logs and quoted replies.

Why: the words that decide a defect label live in different places. The reporter's own prose
says what they did ("on my own dataset", "lower than reported"); tracebacks and logs say how it
failed (``RuntimeError: CUDA out of memory``); quoted replies repeat someone else's words and
would count them twice. Everything here is plain regular expressions so it stays fast on the
hot path and bounded on pathological input (a thread of 1 MB of logs is cut, never choked on).
Where a log is cut, its exception lines, its start and its end are kept: the start says what was
run, the end how it failed (the exception line a traceback closes with).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

# Bump when what :func:`prepare` gives changes: the caches built from prepared text (the semantic space,
# the filters, the built-in text models) hold it in their keys and are rebuilt.
PREPARE_VERSION = "4"
PREPARE_KEY = f"text{PREPARE_VERSION}"  # the part of those cache keys that names it
# Caps that bound the work per thread; a thread longer than these is still labeled, from its start and its end.
MAX_PROSE_CHARS = 6_000
MAX_LOG_CHARS = 4_000
MAX_MODEL_CHARS = 8_000
MAX_PART_CHARS = 20 * MAX_PROSE_CHARS  # raw text read per part: enough for every real thread's content
TAIL_CHARS = 20_000  # of every MAX_PART_CHARS kept of longer posts, this many are from their ends
MIN_POST_CHARS = 4_000  # a post is never cut shorter than this: with many long posts the part is cut as a whole

_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.S)
# A Python traceback pasted without a code fence. Its frames are indented by two spaces and their source
# lines by four, one line each, so no indented block holds them: the block runs from "Traceback" over
# frames (each with the source line after it, whatever its indent), other indented lines and blank lines
# between them, to the exception line that ends it ("KeyError: 'x'", "StopIteration").
_TRACEBACK = re.compile(
    r"^[ \t]*Traceback \(most recent call last\):[^\n]*\n"
    r"(?:[ \t]*File \"[^\n]*\n(?:(?![ \t]*File \")(?![A-Za-z_][\w.]*:[ \t])[^\n]*\n)?"
    r"|[ \t]+\S[^\n]*\n|[ \t]*\n(?=[ \t]*File \"|[ \t]+\S))*"
    r"(?:[A-Za-z_][\w.]*(?::[ \t][^\n]*|:?[ \t]*)$)?",
    re.M,
)
_INDENTED = re.compile(r"(?:^(?: {4}|\t)[^\n]*\n?){2,}", re.M)
# Line patterns open with [ \t]*, never \s*: \s* would run over blank lines into the next ones, and a
# long run of blank lines before a line that fails the rest cost cubic time (4,000 blank lines: 71 s).
_QUOTE_LINE = re.compile(r"^[ \t]*>[^\n]*$", re.M)
_LOG_LINE = re.compile(
    r"^[ \t]*(?:Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d"
    r"|[\w.]*(?:Error|Exception|Warning)\b[^\n]*:|\d+/\d+ \[|Epoch \d+|at [\w.$]+\()[^\n]*$",
    re.M,
)
_SIGNAL_LINE = re.compile(
    r"^[^\n]*(?:File \"|Error|Exception|Traceback|nan\b|inf\b|out of memory|mismatch|version|cuda|cudnn|Killed|Segmentation)[^\n]*$",
    re.I | re.M,
)
_BLANK_RUN = re.compile(r"\n{3,}")
_WORD = re.compile(r"[^\W\d_]{2,}")
# Frequent English function words: a prose part with none of them is unlikely to be English.
_STOPWORDS = frozenset(
    "the a an is are was were be been to of in on for and or but not it this that with as at by from i my we "
    "you have has had do does did can could should would when if so no yes there here what how why".split()
)


@dataclass(frozen=True)
class PreparedText:
    """One thread's text, separated by kind and capped, ready for rules and vectorizers."""

    title: str
    prose: str
    code: str
    logs: str
    quotes: str
    words: int
    english: bool
    truncated: bool
    flags: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.words == 0

    @cached_property
    def evidence_logs(self) -> str:
        """The thread's code and logs condensed to the lines that carry failure signals (where exceptions live)."""
        return condense_log(f"{self.logs}\n{self.code}")

    @cached_property
    def model_text(self) -> str:
        """What the n-gram vectorizers see: title twice (it is the densest summary), prose, log signals."""
        return f"{self.title}\n{self.title}\n{self.prose}\n{self.evidence_logs}"[:MAX_MODEL_CHARS]


def condense_log(log: str, max_chars: int = MAX_LOG_CHARS) -> str:
    """A long log reduced to its evidence: each distinct failure-signal line once, in order, capped.

    A 1 MB training log repeating one warning becomes that warning; a traceback becomes its
    exception line and its frames, each as file and function (``File "train.py", in main``: where
    it failed says which stage ran), and the other lines that name an error.

    When the distinct lines do not fit in ``max_chars``, the exception lines (``KeyError: 'x'``)
    are kept first, up to half the room, and the other lines fill the rest; each kind is taken
    from both ends inwards, since a log's start says what was run and its end how it failed.
    Kept lines stay in their order; a line longer than an eighth of the room is cut to that.
    """
    seen: set[str] = set()
    kept: list[str] = []
    for line in _signal_lines(log):
        frame = _FRAME.match(line)
        if frame:
            line = f'File "{frame[1]}", in {frame[2]}'
        else:
            line = re.sub(r"\d+", "0", line.strip()) if _PROGRESS.search(line) else line.strip()
        if line not in seen:
            seen.add(line)
            kept.append(line)
    if sum(map(len, kept)) + len(kept) - 1 <= max_chars:
        return "\n".join(kept)
    kept = [line[:max_chars // 8] for line in kept]
    exceptions = [i for i, line in enumerate(kept) if _EXCEPTION.search(line)]
    chosen = _from_both_ends(exceptions, kept, max_chars // 2)
    others = [i for i in range(len(kept)) if i not in chosen]
    chosen |= _from_both_ends(others, kept, max_chars - sum(len(kept[i]) + 1 for i in chosen))
    return "\n".join(kept[i] for i in sorted(chosen))


def _from_both_ends(indices: list[int], lines: list[str], room: int) -> set[int]:
    """Of ``indices``, taken alternately from the front and the back, those whose ``lines`` fit in ``room`` (a newline each)."""
    chosen: set[int] = set()
    front, back, take_front = 0, len(indices) - 1, True
    while front <= back:
        i = indices[front] if take_front else indices[back]
        if len(lines[i]) + 1 > room:
            break
        room -= len(lines[i]) + 1
        chosen.add(i)
        front, back = (front + 1, back) if take_front else (front, back - 1)
        take_front = not take_front
    return chosen


def cap_log(log: str, max_chars: int) -> str:
    """``log`` if it fits in ``max_chars``, else condensed to that (:func:`condense_log`): a cut log keeps its evidence."""
    return log if len(log) <= max_chars else condense_log(log, max_chars)


def fold_case(text: str) -> str:
    """``text`` lower-cased so that a case-sensitive pattern written in lower case finds what it would with re.I.

    Searching the lower-cased text is several times faster than ``re.I``. The few letters that
    ``re.I`` also equates with an ASCII letter (dotted and dotless i, long s, the Kelvin sign) are
    folded first, which also keeps every character at its position.
    """
    if not text.isascii() and any(c in text for c in _CASE_FOLD_CHARS):
        text = text.translate(_CASE_FOLD)
    return text.lower()


_PROGRESS = re.compile(r"\d+/\d+|\d+%|Epoch \d+", re.I)
_CASE_FOLD_CHARS = "\u0130\u0131\u017f\u212a"
_CASE_FOLD = str.maketrans(dict(zip(_CASE_FOLD_CHARS, "iisk")))
_FRAME = re.compile(r'\s*File "(?:[^"]*[/\\])?([^"/\\]+)", line \d+, in (\S+)')  # a frame line: its file's name, its function
_EXCEPTION = re.compile(r"[A-Za-z_][\w.]*(?:Error|Exception)\b[^\n]*:")  # an exception line: "RuntimeError: CUDA ..."
_SIGNAL = re.compile(r"file \"|error|exception|traceback|nan\b|inf\b|out of memory|mismatch|version|cuda|cudnn|killed|segmentation")


def _signal_lines(log: str) -> Iterator[str]:
    """The lines of ``log`` that hold a failure signal (:data:`_SIGNAL`, any case), in order.

    One search over the case-folded log, each hit widened to its line; the next search starts
    at the next line.
    """
    folded = fold_case(log)
    if len(folded) != len(log):  # a character whose lower case is longer: positions would shift
        yield from _SIGNAL_LINE.findall(log)
        return
    pos = 0
    while (m := _SIGNAL.search(folded, pos)) is not None:
        start = log.rfind("\n", 0, m.start()) + 1
        end = log.find("\n", m.end())
        end = len(log) if end < 0 else end
        yield log[start:end]
        pos = end + 1


def combine(first: PreparedText, second: PreparedText) -> PreparedText:
    """Two prepared parts of one thread as one (the reporter's part, then the discussion)."""
    def join(a: str, b: str, cap: int | None = None) -> str:
        return (f"{a}\n\n{b}" if a and b else a or b)[:cap]

    english = first.english or (second.english and not first.words)
    return PreparedText(
        title=first.title or second.title, prose=join(first.prose, second.prose, 2 * MAX_PROSE_CHARS),
        code=join(first.code, second.code, MAX_LOG_CHARS * 5), logs=cap_log(join(first.logs, second.logs), MAX_LOG_CHARS * 5),
        quotes=join(first.quotes, second.quotes, MAX_PROSE_CHARS), words=first.words + second.words, english=english,
        truncated=first.truncated or second.truncated, flags=[] if english else first.flags or second.flags)


def _take(pattern: re.Pattern[str], text: str, group: int = 0, needs: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """Pull every match out of ``text``: the matches and what remains (each match replaced by a newline).

    One scan; ``needs`` are literals of which every match holds one: without them, no scan.
    """
    if needs and not any(n in text for n in needs):
        return [], text
    found, kept, pos = [], [], 0
    for m in pattern.finditer(text):
        found.append(m.group(group))
        kept.append(text[pos:m.start()])
        pos = m.end()
    if not found:
        return found, text
    kept.append(text[pos:])
    return found, "\n".join(kept)


_TWO_DIGITS = re.compile(r"\d\D*\d")


def _numeric_lines(text: str) -> tuple[list[str], str]:
    """Lines that read like log output (numbers, no English function words), e.g. training progress."""
    logs, keep = [], []
    for line in text.split("\n"):
        if _TWO_DIGITS.search(line) and not any(w in _STOPWORDS for w in line.lower().split()):
            logs.append(line)
        else:
            keep.append(line)
    return logs, "\n".join(keep)


def is_english(text: str) -> bool:
    """A cheap guess: enough ASCII words and at least some English function words.

    A short text is given the benefit of the doubt; labels for a non-English thread would be
    noise, so callers abstain on it instead.
    """
    words = _WORD.findall(text.lower())
    if not words:
        return False
    ascii_share = sum(map(str.isascii, words)) / len(words)
    if len(words) < 20:
        # A title and a line or two around code: too few words to expect function words.
        return ascii_share >= 0.6
    stops = sum(map(_STOPWORDS.__contains__, words))
    # Logs pasted into the prose dilute the share of function words, so a handful also suffices.
    return ascii_share >= 0.6 and (stops / len(words) >= 0.04 or stops >= 5)


def _cut_post(raw: str, room: int) -> str:
    """A post longer than ``room``: its start and its end, the end's share that of :data:`TAIL_CHARS` in :data:`MAX_PART_CHARS`.

    Each side closes what it holds of a code fence cut in two, so the fences pair up as they did.
    """
    tail_chars = room * TAIL_CHARS // MAX_PART_CHARS
    head, tail = raw[:room - tail_chars], raw[len(raw) - tail_chars:]
    tail = tail[tail.find("\n") + 1:]  # from a line's start
    if head.count("```") % 2:
        head += "\n```"
    if tail.count("```") % 2:
        tail = "```\n" + tail
    return f"{head}\n\n{tail}"


def _fit_posts(posts: list[str]) -> tuple[str, bool]:
    """The posts of a part joined, and whether any was cut to fit :data:`MAX_PART_CHARS` in all.

    Each post keeps its start and its end: the room is shared out equally, a post shorter than its
    share keeps all of it and leaves the rest to the longer ones. Cutting the joined part instead
    kept the first post's start and the last post's end, so a long opening post lost its own end
    (the exception line of its log) to the reporter's follow-ups. No post is cut below
    :data:`MIN_POST_CHARS`: where many long posts share the room (a discussion of hundreds of
    comments), fragments of each would say little, so what is still too long is then cut as a
    whole, keeping the part's first posts and its last ones.
    """
    room = MAX_PART_CHARS - 2 * (len(posts) - 1)  # less the blank lines between them
    if sum(map(len, posts)) <= room:
        return "\n\n".join(posts), False
    shares = {}
    for k, i in enumerate(sorted(range(len(posts)), key=lambda i: len(posts[i]))):
        shares[i] = min(len(posts[i]), max(room // (len(posts) - k), MIN_POST_CHARS))
        room -= shares[i]
    joined = "\n\n".join(p if len(p) <= shares[i] else _cut_post(p, shares[i]) for i, p in enumerate(posts))
    return (joined if len(joined) <= MAX_PART_CHARS else _cut_post(joined, MAX_PART_CHARS)), True


def prepare(title: str | None, parts: list[str | None]) -> PreparedText:
    """Split a thread (title, then body and comments in order) into prose, code, logs and quotes."""
    title = (title or "").strip()[:500]
    raw, truncated = _fit_posts([p for p in parts if p])  # bounds all regex work
    code_blocks, rest = _take(_FENCE, raw, 1, needs=("```",))
    tracebacks, rest = _take(_TRACEBACK, rest, needs=("Traceback (most recent call last)",))
    indented, rest = _take(_INDENTED, rest, needs=("    ", "\t"))
    quotes, rest = _take(_QUOTE_LINE, rest, needs=(">",))
    log_lines, rest = _take(_LOG_LINE, rest)
    numeric, rest = _numeric_lines(_BLANK_RUN.sub("\n\n", rest)[: 2 * MAX_PROSE_CHARS])
    log_lines += numeric
    blocks = code_blocks + indented
    is_log = [_LOG_LINE.search(b) is not None for b in blocks]
    logs = [b for b, log in zip(blocks, is_log) if log] + tracebacks + log_lines
    code = [b for b, log in zip(blocks, is_log) if not log]
    prose = _BLANK_RUN.sub("\n\n", rest).strip()
    if len(prose) > MAX_PROSE_CHARS:
        prose, truncated = prose[:MAX_PROSE_CHARS], True
    words = len(_WORD.findall(title)) + len(_WORD.findall(prose))
    if not words and any(_WORD.search(b) for b in blocks + log_lines):
        words = 1  # code or logs only: not empty, but no prose to judge the language by
    english = is_english(f"{title}\n{prose}") if (title or prose) else False
    if english:
        flags: list[str] = []
    else:
        flags = ["empty" if not words else "non_english" if (title or prose) else "no_prose"]
    return PreparedText(
        title=title,
        prose=prose,
        code="\n".join(code)[:MAX_LOG_CHARS * 5],
        logs=cap_log("\n".join(logs), MAX_LOG_CHARS * 5),
        quotes="\n".join(q.lstrip(" >") for q in quotes)[:MAX_PROSE_CHARS],
        words=words,
        english=english,
        truncated=truncated,
        flags=flags,
    )
