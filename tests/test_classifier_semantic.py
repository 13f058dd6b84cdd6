"""The archive's semantic space (taxonomy.semantic): what it learns, what it reads, how it is kept and checked."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from reeng.errors import ReengError
from taxonomy.semantic import SemanticSpace, corpus_texts
from tests.miner_helpers import denchmark_archive

# Two topics whose words occur together in the corpus, never across: LSA should put two texts of one
# topic that share no word close together, and texts of the two topics far apart.
TOPICS = {"anchors": ["anchor", "stride", "grid", "scale", "aspect", "ratio", "kmeans", "prior"],
          "cuda": ["cuda", "driver", "nvcc", "toolkit", "cudnn", "nvidia", "runtime", "kernel"]}


def topic_corpus(n: int = 120, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        words = TOPICS["anchors" if i % 2 else "cuda"]
        docs.append(" ".join(rng.sample(words, 5)))
    return docs


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_texts_of_one_topic_land_together_though_they_share_no_word() -> None:
    space = SemanticSpace(n_components=2, min_df=2).fit(topic_corpus())
    a, b, c = space.transform(["anchor stride grid", "scale aspect ratio", "cuda driver nvcc"])
    assert cosine(a, b) > 0.9  # no word in common, one topic
    assert abs(cosine(a, c)) < 0.3  # different topics
    assert np.allclose(np.linalg.norm(space.transform(["kmeans prior", "toolkit"]), axis=1), 1.0, atol=1e-5)
    assert set(space.get_params()) == {"n_components", "min_df", "max_df", "max_chars", "random_state"}
    cut = SemanticSpace(n_components=2, min_df=2, max_chars=20).fit(topic_corpus())
    assert np.allclose(cut.transform(["anchor stride grid " + "cuda " * 50]), cut.transform(["anchor stride grid"]))


def test_a_space_kept_as_arrays_transforms_alike_and_keeps_its_identity(tmp_path: Path) -> None:
    space = SemanticSpace(n_components=2, min_df=2).fit(topic_corpus())
    path = tmp_path / "space.npz"
    np.savez_compressed(path, **space.to_arrays())
    with np.load(path, allow_pickle=False) as arrays:  # no pickle needed to read it back
        again = SemanticSpace.from_arrays(arrays)
    texts = ["anchor grid", "nvidia cudnn kernel", "nothing known here"]
    assert np.allclose(space.transform(texts), again.transform(texts), atol=1e-6)
    assert again.identity == space.identity and again.identity["name"] == "denchmark-lsa"
    other = SemanticSpace(n_components=2, min_df=2).fit(topic_corpus(seed=1))
    assert other.identity != space.identity  # another fit, another version


def test_a_space_needs_texts_with_shared_words() -> None:
    with pytest.raises(ReengError, match="shared words"):
        SemanticSpace().fit(["", "   "])
    with pytest.raises(ReengError, match="200 dimensions"):
        SemanticSpace().fit(topic_corpus(40))


def archive(path: Path, repos: dict[str, int]) -> Path:
    """A Denchmark-shaped .tar.xz: ``repos`` maps "owner/name" to how many reports it holds."""
    return denchmark_archive(path, ((repo, i, f"{repo.split('/')[1]} report {i}",
                                     "The training loss diverges after a few epochs when I run the script.")
                                    for repo, n in repos.items() for i in range(1, n + 1)))


def test_the_corpus_reads_other_projects_only_and_caps_each(tmp_path: Path) -> None:
    # ultralytics/yolov3 is an annotated CV model repository (and holds study issues): never read.
    path = archive(tmp_path / "d.tar.xz", {"ultralytics/yolov3": 5, "acme/zoo": 7, "acme/tiny": 2})
    texts = corpus_texts(path, per_repo=4)
    assert texts and not any("yolov3" in t for t in texts)
    titles = {t.split("\n")[0] for t in texts}
    assert sum(t.startswith("zoo ") for t in titles) == 4 and sum(t.startswith("tiny ") for t in titles) == 2
    assert len(texts) == 2 * len(titles)  # the whole thread's text and the reporter's part, per thread
    assert corpus_texts(path, per_repo=4) == texts  # a seeded sample


def test_a_model_that_reads_a_space_refuses_to_predict_without_it() -> None:
    from taxonomy.supervised import predict_proba, train
    from taxonomy.text import prepare

    space = SemanticSpace(n_components=2, min_df=2).fit(topic_corpus())
    docs = topic_corpus(40, seed=2)
    prepared = [prepare("", [d]) for d in docs]
    model = train(prepared, None, {"topic": ["a" if "anchor" in d or "grid" in d else "c" for d in docs]},
                  fast=True, semantic_space=space)
    assert model.meta["semantic_space"] == space.identity
    assert predict_proba(model, prepared[:3])["topic"].shape == (3, 2)
    model.semantic_space = None
    with pytest.raises(ReengError, match="semantic space denchmark-lsa .* not given"):
        predict_proba(model, prepared[:3])
    model.semantic_space = SemanticSpace(n_components=2, min_df=2).fit(topic_corpus(seed=3))
    with pytest.raises(ReengError, match="semantic space"):
        predict_proba(model, prepared[:3])


def test_an_archive_too_small_for_a_space_gives_none_and_caches_nothing(tmp_path: Path, monkeypatch) -> None:
    from taxonomy import defect_filter, semantic

    small = archive(tmp_path / "d.tar.xz", {"acme/zoo": 3})
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(defect_filter, "local_archive", lambda: small)
    semantic.default_space.cache_clear()
    try:
        assert semantic.default_space() is None  # 6 texts cannot make 200 dimensions
        assert not list((tmp_path / "cache").rglob("*.npz"))
    finally:
        semantic.default_space.cache_clear()


def test_cached_arrays_rebuilds_a_damaged_file_and_keeps_nothing_half_written(tmp_path: Path) -> None:
    from reeng.settings import cached_arrays

    space = SemanticSpace(n_components=2, min_df=2).fit(topic_corpus())
    path = tmp_path / "labelers" / "space.npz"
    built = []

    def build() -> SemanticSpace:
        built.append(1)
        return space

    assert cached_arrays(path, build, SemanticSpace.from_arrays) is space and path.is_file()
    again = cached_arrays(path, build, SemanticSpace.from_arrays)  # read back, not built
    assert len(built) == 1 and again.identity == space.identity
    path.write_bytes(b"PK\x03\x04 damaged")
    assert cached_arrays(path, build, SemanticSpace.from_arrays) is space and len(built) == 2
    assert cached_arrays(tmp_path / "none.npz", lambda: None, SemanticSpace.from_arrays) is None
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["labelers", "space.npz"]
