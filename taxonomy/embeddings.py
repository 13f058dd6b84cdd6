"""Optional sentence-embedding features from a local sentence-transformers model.

The n-gram and evidence features see words; an embedding sees what a sentence means, which
helps when a thread says "the weights don't load" instead of naming an exception. The model is
read from a folder the user names (``--embedding-model PATH``) and never downloaded: hub access
fails on these machines and a study must not depend on a model silently changing upstream.
"""

from __future__ import annotations

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
    """The model folder, after checking the package and the folder exist (one clear error otherwise)."""
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is None:
        raise ReengError("--embedding-model: the sentence-transformers package is not installed "
                         "(pip install 'reeng[embeddings]'), or leave the option out")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ReengError(f"--embedding-model: {folder}: no such local model folder (models are never downloaded)")
    return folder.resolve()


@cache
def _encoder(folder: str) -> Any:
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(folder, device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure means "not a usable model folder"
        raise ReengError(f"--embedding-model: {folder}: not a sentence-transformers model ({type(exc).__name__})") from None


def identity(folder: Path | str) -> dict[str, str]:
    """How a model names its encoder: the folder's name and a version (SHA-256 of its config files), never a path."""
    import hashlib

    folder = check_model(folder)
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    return {"name": folder.name if folder.name != "model" else folder.parent.name, "version": digest.hexdigest()[:12]}


def embed(folder: Path | str, texts: list[str]) -> np.ndarray:
    """Unit-length sentence embeddings of the start of each text (rows follow ``texts``)."""
    encoder = _encoder(str(check_model(folder)))
    vectors = encoder.encode([t[:EMBEDDING_TEXT_CHARS] for t in texts], batch_size=32, normalize_embeddings=True,
                             show_progress_bar=False, convert_to_numpy=True)
    return EMBEDDING_SCALE * np.asarray(vectors, dtype=np.float64)
