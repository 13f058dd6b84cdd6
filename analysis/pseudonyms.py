"""Pseudonymising people in a released dataset.

Logins become stable salted hashes (HMAC-SHA-256 keyed with a secret salt), so a reader can
still follow one person across issues and comments without learning who they are, and nobody
without the salt can test a guessed login against the release. E-mail addresses and
@mentions are removed from free text. The salt never goes into a release: it is either given
by the user or generated once and kept in a private file outside the release folder.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from reeng.errors import ReengError
from reeng.settings import cache_dir

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A GitHub handle after an @ that does not continue a word, an e-mail or a path.
MENTION = re.compile(r"(?<![\w@./`-])@([A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})\b(?![@.]?\w*\()")
# Fenced blocks and inline code, where "@name" is usually a decorator, not a person.
CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.S)
PSEUDONYM = re.compile(r"^u_[0-9a-f]{16}$")
EMAIL_MARK, MENTION_MARK = "[email]", "@[user]"
SALT_BYTES = 32


def pseudonym(login: str, salt: str) -> str:
    """``u_`` + 16 hex digits of HMAC-SHA-256(salt, login); logins compare case-insensitively on GitHub."""
    digest = hmac.new(salt.encode("utf-8"), login.strip().casefold().encode("utf-8"), hashlib.sha256).hexdigest()
    return f"u_{digest[:16]}"


def scrub_text(text: str, known_logins: frozenset[str] = frozenset()) -> str:
    """Remove e-mails everywhere and @mentions outside code; inside code only known logins go.

    Python decorators (``@torch.no_grad``) are common in deep-learning issue threads and sit in
    code, so a blanket @-rule there would damage the text without protecting anyone.
    """
    text = EMAIL.sub(EMAIL_MARK, text)

    def in_code(match: re.Match[str]) -> str:
        return MENTION.sub(lambda m: MENTION_MARK if m.group(1).casefold() in known_logins else m.group(0), match.group(0))

    pieces, last = [], 0
    for match in CODE.finditer(text):
        pieces.append(MENTION.sub(MENTION_MARK, text[last:match.start()]))
        pieces.append(in_code(match))
        last = match.end()
    pieces.append(MENTION.sub(MENTION_MARK, text[last:]))
    return "".join(pieces)


def default_salt_file() -> Path:
    """Where a generated salt is kept: the user's private cache, never a release folder."""
    return cache_dir() / "release-salt"


def resolve_salt(salt: str | None, salt_file: Path | None, release_dir: Path) -> tuple[str, str]:
    """The salt to use and a description of where it came from (for the log, never the release).

    An explicit ``salt`` wins; otherwise the salt file is read, or created with a fresh random
    salt (mode 0600) when it does not exist. A salt file inside the release is refused.
    """
    if salt is not None:
        if len(salt) < 16:
            raise ReengError("--salt: use at least 16 characters (a short salt lets anyone test guessed logins)")
        return salt, "given on the command line"
    path = (salt_file or default_salt_file()).expanduser().resolve()
    if path.is_relative_to(release_dir.resolve()):
        raise ReengError(f"{path}: the salt file must live outside the release folder")
    if path.is_file():
        value = path.read_text(encoding="utf-8").strip()
        if len(value) < 16:
            raise ReengError(f"{path}: salt file holds fewer than 16 characters")
        return value, f"read from {path}"
    if path.exists():
        raise ReengError(f"--salt-file {path}: exists and is not a regular file")
    value = secrets.token_hex(SALT_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise ReengError(f"--salt-file {path}: cannot write the salt ({exc.strerror or exc})") from None
    return value, f"generated and kept in {path}"
