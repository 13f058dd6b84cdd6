"""A latent semantic space of deep-learning bug reports (LSA), learned without labels from the local archive.

Why: the built-in labeler's text models learn from annotated threads, 891 of them of 17 CV model
repositories. Their n-grams know the words of those repositories; a thread of a new repository
names the same failure with other words, and its n-grams then carry little weight. A latent
semantic space (TF-IDF, then a truncated SVD, then unit length: LSA) learned from the
reports of the archive's other deep-learning projects maps words that occur together onto
shared dimensions, so "anchors" and "stride" or "cudnn" and "driver" land near each other
without one label. The space's coordinates join the text models' features
(:func:`taxonomy.annotations.train_text_models`), as a sentence encoder's would, with no model
download and no optional dependency.

What it reads: every Denchmark thread outside the annotated CV model repositories
(:data:`taxonomy.defect_filter.CV_MODEL_REPOS`, which hold every study issue in the archive),
at most :data:`PER_REPO` per project, prepared exactly as the labeler prepares a thread (roles
and hygiene, then the text the vectorizers read), both the whole thread and the reporter's
part. No label is read, and no thread of the CV annotations or of the study (the other projects'
threads the project annotated, :func:`taxonomy.annotations.other_annotations`, may be among
them, read as text). ``docs/classifier.md`` gives the
measurements; the space is fitted on first use in a cache folder and kept there as arrays
(loaded without pickle).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from taxonomy.text import PREPARE_KEY

SPACE_VERSION = "1"  # bump when the corpus or the recipe changes: cached spaces and text models are then rebuilt
COMPONENTS = 200
PER_REPO = 300  # threads per project at most: the big frameworks (TensorFlow: 5,514) would drown the rest
TEXT_CHARS = 2_000  # a text's start, as the fast n-gram model reads it (the title twice, then the prose)
TOKEN_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z0-9_]+\b"  # words, not numbers or hashes


class SemanticSpace(TransformerMixin, BaseEstimator):
    """Texts -> unit vectors of ``n_components`` latent dimensions (TF-IDF, truncated SVD, L2 norm).

    A scikit-learn transformer (``fit`` / ``transform`` / ``get_params``). ``fit`` learns the
    vocabulary (words in at least ``min_df`` and at most ``max_df`` of the texts, English stop
    words left out), their IDF and the SVD's components. Both read a text's first
    ``max_chars`` characters.
    """

    def __init__(self, n_components: int = COMPONENTS, min_df: int = 3, max_df: float = 0.5, max_chars: int = TEXT_CHARS,
                 random_state: int = 0) -> None:
        self.n_components = n_components
        self.min_df = min_df
        self.max_df = max_df
        self.max_chars = max_chars
        self.random_state = random_state

    def _vectorizer(self, **kwargs: Any) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(sublinear_tf=True, min_df=self.min_df, max_df=self.max_df, stop_words="english",
                               token_pattern=TOKEN_PATTERN, dtype=np.float32, **kwargs)

    def fit(self, X: Iterable[str], y: Any = None) -> SemanticSpace:  # noqa: ARG002 - no labels: unsupervised
        from sklearn.decomposition import TruncatedSVD

        from reeng.errors import ReengError

        texts = [t[:self.max_chars] for t in X]
        self.vectorizer_ = self._vectorizer()
        try:
            counts = self.vectorizer_.fit_transform(texts)
        except ValueError:  # no word left (empty texts, or every word too rare or too common)
            raise ReengError(f"a semantic space needs texts with shared words: {len(texts)} texts gave none") from None
        if min(counts.shape) <= self.n_components:
            raise ReengError(f"a semantic space of {self.n_components} dimensions needs more texts and words than "
                             f"{counts.shape[0]} texts and {counts.shape[1]} words")
        self.svd_ = TruncatedSVD(self.n_components, random_state=self.random_state).fit(counts)
        return self

    def transform(self, X: Iterable[str]) -> np.ndarray:
        from sklearn.preprocessing import normalize

        return normalize(self.svd_.transform(self.vectorizer_.transform([t[:self.max_chars] for t in X]))).astype(np.float32)

    @cached_property
    def identity(self) -> dict[str, str]:
        """Name and version of the fitted space: what a text model records and a cache key holds (the
        version ends in a digest of the vocabulary and the components: another fit, another version)."""
        digest = hashlib.sha256(json.dumps(self.vectorizer_.get_feature_names_out().tolist()).encode())
        digest.update(np.ascontiguousarray(self.svd_.components_, dtype=np.float32).tobytes())
        return {"name": "denchmark-lsa", "version": f"{SPACE_VERSION}-{self.n_components}-{digest.hexdigest()[:12]}"}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted space as plain arrays (``np.savez``; read back with ``allow_pickle=False``)."""
        return {"params": np.array(json.dumps(self.get_params())), "terms": self.vectorizer_.get_feature_names_out().astype(str),
                "idf": self.vectorizer_.idf_.astype(np.float32), "components": self.svd_.components_.astype(np.float32)}

    @classmethod
    def from_arrays(cls, arrays: Any) -> SemanticSpace:
        from sklearn.decomposition import TruncatedSVD

        space = cls(**json.loads(str(arrays["params"])))
        terms, idf, components = arrays["terms"], arrays["idf"], arrays["components"]
        if components.shape != (space.n_components, len(terms)) or idf.shape != (len(terms),):
            raise ValueError("semantic space arrays of inconsistent shapes")
        space.vectorizer_ = space._vectorizer(vocabulary={str(t): i for i, t in enumerate(terms)})
        space.vectorizer_.vocabulary_ = space.vectorizer_.vocabulary
        space.vectorizer_.idf_ = idf
        space.svd_ = TruncatedSVD(space.n_components)
        space.svd_.components_ = components
        return space


def corpus_texts(archive: Path | str, per_repo: int = PER_REPO, seed: int = 0, progress: bool = False) -> list[str]:
    """What the space is learned from: threads of the archive's projects other than the CV model repositories.

    At most ``per_repo`` threads per project (a seeded sample), read as the labeler reads a
    store's (roles and hygiene, then preparation); each thread gives the text the vectorizers
    read of the whole thread and of the reporter's part.
    """
    from miner.denchmark import members_by_repo, readable_issue
    from taxonomy.batch import analyse_many
    from taxonomy.defect_filter import CV_MODEL_REPOS
    from taxonomy.thread import RawThread

    def wanted(owner: str, name: str, number: int) -> bool:  # noqa: ARG001
        return f"{owner}/{name}".lower() not in CV_MODEL_REPOS

    members = members_by_repo(archive, wanted)
    rng = random.Random(seed)
    rows = []
    for repo in sorted(members, key=str.lower):
        items = members[repo]
        for number, blob, owner, name in rng.sample(items, min(per_repo, len(items))):
            if (issue := readable_issue(blob, owner, name, number)) is not None:
                rows.append(RawThread(issue["title"], issue["body"], issue["comments"], issue["author"]))
    analysed = analyse_many(rows, total=len(rows), progress=progress, label="semantic space", with_evidence=False)
    return [p.model_text for a in analysed for p in (a.prepared, a.opening) if p is not None]


@cache
def default_space() -> SemanticSpace | None:
    """The space of the local archive: from the cache, else learned now (under a minute).

    None without the archive, or when it holds too few other projects' threads to learn one
    (the text models then read n-grams and evidence alone, and the labeler's source says so).
    """
    from reeng.errors import ReengError
    from reeng.settings import cached_arrays, keyed_cache_file
    from taxonomy.defect_filter import archive_fingerprint, local_archive

    archive = local_archive()
    if archive is None:
        return None
    path = keyed_cache_file("labelers", "semantic", SPACE_VERSION,
                            (archive_fingerprint(archive), str(PER_REPO), str(COMPONENTS), str(TEXT_CHARS), PREPARE_KEY),
                            ".npz")

    def build() -> SemanticSpace | None:
        try:
            return SemanticSpace().fit(corpus_texts(archive))
        except ReengError:
            return None

    return cached_arrays(path, build, SemanticSpace.from_arrays)
