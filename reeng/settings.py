"""Where reeng finds data and keeps its cache.

``REENG_DATA_DIR`` names a folder laid out like the published data (``jiang2024-cv-reengineering/``,
``denchmark/``); the Makefile sets it when ``../shared/data`` exists. Without it, the dataset
loaders download the public originals into ``REENG_CACHE_DIR`` (default ``~/.cache/reeng``).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DATA_DIR_ENV = "REENG_DATA_DIR"
CACHE_DIR_ENV = "REENG_CACHE_DIR"


def data_dir() -> Path | None:
    """The configured local copy of the research data, or None when none is configured."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """Where downloaded originals are kept, created on demand."""
    value = os.environ.get(CACHE_DIR_ENV, "").strip()
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "reeng"
    path.mkdir(parents=True, exist_ok=True)
    return path


def keyed_cache_file(folder: str, name: str, version: str, key_parts: tuple[str, ...], suffix: str) -> Path:
    """A cached file that depends on what built it: ``<folder>/<name>-v<version>-<key><suffix>`` in the
    cache, the key being 16 hex digits of a hash of the version and the key parts (another input, another file)."""
    key = hashlib.sha256("|".join((version, *key_parts)).encode()).hexdigest()[:16]
    return cache_dir() / folder / f"{name}-v{version}-{key}{suffix}"


def cached_arrays(path: Path, build: Callable[[], T | None], from_arrays: Callable[[Any], T]) -> T | None:
    """What ``path`` keeps as plain arrays (``np.savez``, read back without pickle), else ``build()`` kept there.

    ``build`` returns an object with ``to_arrays()`` (a dict of numpy arrays), or None when
    there is nothing to keep (then nothing is written). A damaged file is rebuilt; a new one is
    written beside the target and renamed, so a crash leaves no half-written cache.
    """
    import numpy as np

    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return from_arrays(arrays)
        except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error):
            pass  # a damaged cache file is rebuilt below
    made = build()
    if made is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **made.to_arrays())  # type: ignore[attr-defined]
    tmp.replace(path)
    return made
