"""The notebook API: one obvious entry, :class:`Corpus`, over DataFrames.

In the spirit of PyDriller's ``Repository(...).traverse_commits()``: open a corpus (a store
file), fill it, and ask it for threads, comments, labels, a defect table, an analysis, a
comparison or a release. Every method delegates to the layer that owns the work (miner,
taxonomy, analysis) and is what the CLI runs too, so notebook and command line agree::

    from reeng import Corpus, study_defects

    corpus = Corpus("corpus.sqlite")
    with corpus.serve() as url:              # the local GitHub-compatible server (offline)
        Corpus("mined.sqlite").mine(["owner/repo"], api_url=url)
    sample = corpus.sample(seed=1)
    corpus.label()                           # the built-in classifier -> predictions
    defects = corpus.defects(sample=sample)  # a DataFrame in the documented defect schema
    result = corpus.analyse("findings", sample=sample)
    corpus.release("release", defects=defects)

Nothing here reads SQL tables directly: the layers' documented functions do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from reeng.errors import ReengError


def study_defects() -> pd.DataFrame:
    """The study's published, human-labeled defects (Jiang et al. 2024) as a defect table."""
    from reeng.datasets import locate
    from taxonomy.gold import import_defects

    frame = import_defects(locate("jiang2024-defects"))
    frame.attrs["source"] = "jiang2024 (published labels)"
    return frame


def analyse(defects: pd.DataFrame | Path | str, out: Path | str, **options: Any):
    """Tables, statistics, figures and a report of any defect table (see :func:`analysis.analyze.analyze`)."""
    from analysis.analyze import analyze

    return analyze(defects, Path(out), command=options.pop("command", "reeng.api.analyse"), **options)


def compare(a: pd.DataFrame | Path | str, b: pd.DataFrame | Path | str, out: Path | str, *,
            labels: tuple[str, str] = ("a", "b"), design: str = "independent", **options: Any):
    """Analyse ``a`` and compare it with ``b``; ``design`` is independent, corpus_vs_study or paired."""
    return analyse(a, out, compare=b, labels=labels, comparison_kind=design, **options)


class Corpus:
    """A corpus of issue threads: one store file, created on first use."""

    def __init__(self, path: Path | str) -> None:
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise ReengError(f"Corpus({path!r}): give the store file's path")
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r})"

    def _open(self, create: bool = False):
        from miner.store import opened

        return opened(self.path, create=create)  # a store this call created is removed again if it fails

    # --- filling it -------------------------------------------------------------------------

    def import_denchmark(self, archive: Path | str | None = None, *, repos: list[str] | None = None,
                         limit: int | None = None) -> dict[str, int]:
        """Import threads of the Denchmark archive (default: the published copy), read in place."""
        from miner.exchange import check_denchmark_import, import_denchmark
        from reeng.datasets import locate

        path, wanted = check_denchmark_import(archive if archive else locate("denchmark-bugreports"), repos, limit)
        with self._open(create=True) as conn:
            counts, _ = import_denchmark(path, conn, wanted, limit, progress=False, require_all=True)
        return counts

    def mine(self, repos: list[str], *, api_url: str = "https://api.github.com", api: str = "graphql",
             tokens: list[str] | None = None) -> dict[str, Any]:
        """Collect every issue of ``repos`` with all comments (GitHub, or a local server's URL).

        ``tokens`` default: the environment's ``GITHUB_TOKEN`` or ``GITHUB_TOKENS``, as for ``reeng mine``.
        Repositories that could not be read are returned under ``failures``; when none of the store's
        threads came in (a misspelt repository, an unreachable URL) it is a :class:`ReengError`, and a
        store this call created is removed again, as ``reeng mine`` does.
        """
        from miner.client import GitHubClient, client_tokens
        from miner.crawl import check_mine_options, mine
        from miner.store import holds_threads

        repos = [repos] if isinstance(repos, str) else list(repos)
        check_mine_options(repos, api=api)
        client = GitHubClient(api_url, client_tokens(tokens))
        with self._open(create=True) as conn:
            failures = mine(client, conn, list(repos), api=api, progress=False)
            if failures and not holds_threads(conn):
                raise ReengError("; ".join(failures.values()))
        return {**client.stats.to_dict(), "failures": failures}

    @contextmanager
    def serve(self, faults: str | None = None) -> Iterator[str]:
        """Serve this corpus over the local GitHub-compatible API; yields its base URL."""
        from miner.server import running

        with running(self.path, faults) as url:
            yield url

    def sample(self, seed: int, protocol: str = "jiang2024", *, repos: list[str] | None = None, **overrides: Any) -> int:
        """Draw and record a seeded sample (``reeng sample``); returns its id.

        ``repos``: only these repositories (default: every one in the store); ``overrides``: the
        protocol's parameters (``state`` open, closed or any; ``min_comments``, ``fraction``, ...).
        """
        from miner.sample import draw, protocol as named

        params = named(protocol, **overrides)
        with self._open() as conn:
            return int(draw(conn, protocol, params, seed, [repos] if isinstance(repos, str) else repos)["sample_id"])

    # --- reading it -------------------------------------------------------------------------

    def _export(self) -> dict[str, pd.DataFrame]:
        from analysis.release import read_store

        return read_store(self.path)

    def threads(self, sample: int | None = None) -> pd.DataFrame:
        """One row per issue (the store's ``issues`` table), optionally only a sample's."""
        frame = self._export()["issues"]
        return frame if sample is None else frame.merge(self.sample_issues(sample), on=["repo", "number"])

    def comments(self, sample: int | None = None) -> pd.DataFrame:
        """One row per comment, optionally only those on a sample's issues."""
        frame = self._export()["comments"]
        if sample is None:
            return frame
        keys = self.sample_issues(sample).rename(columns={"number": "issue_number"})
        return frame.merge(keys, on=["repo", "issue_number"])

    def sample_issues(self, sample: int) -> pd.DataFrame:
        """The (repo, number) pairs of a recorded sample."""
        from miner.sample import sample_keys

        with self._open() as conn:
            keys = sample_keys(conn, sample, str(self.path))
        return pd.DataFrame(sorted(keys), columns=["repo", "number"])

    # --- labeling and findings --------------------------------------------------------------

    def label(self, threshold: float = 0.5, embedding_model: Path | str | None = None,
              issue_type_model: Path | str | None = None, adapt: bool = False) -> pd.DataFrame:
        """Label every thread with the built-in classifier; the predictions go into the store and are returned.

        ``embedding_model``: a local sentence-transformers folder; the built-in text models then
        also read sentence embeddings (optional; slower, measured in ``docs/classifier.md``).
        ``issue_type_model``: a model file trained (``reeng classify train --data``) on issues
        labeled bug / feature / question; it decides defect or not after the rules, in the defect
        filter's place (for a corpus mined from all issues, not only bug reports). ``adapt``: its text
        models also learn the store's adjudicated labels, the labeled threads labeled by models trained
        without them (``reeng classify predict --builtin --adapt``).
        """
        from taxonomy import classify
        from taxonomy.predictions import read_predictions, write_predictions

        classify.check_threshold(threshold)  # as `reeng classify predict` does, before anything is loaded or written
        folder = Path(embedding_model) if embedding_model is not None else None
        types = None
        if issue_type_model is not None:
            from taxonomy.defect_filter import load_issue_type_model

            types = load_issue_type_model(issue_type_model, folder)
        version = classify.builtin_version(folder, types)  # a bad folder or model fails here, before the long pass
        with self._open() as conn:
            classify.check_has_threads(conn, self.path)
            ids, analysed, _ = classify.analyse_store(conn, with_evidence=True)
            if adapt:
                preds, adapted = classify.adapted_predictions(conn, ids, analysed, threshold, embedding_model=folder,
                                                              issue_type_model=types)
                version = classify.adapted_version(version, adapted)
            else:
                preds = classify.builtin_predictions(analysed, threshold, embedding_model=folder, issue_type_model=types)
            write_predictions(conn, ((r, n, p) for (r, n), p in zip(ids, preds)), "builtin", version)
            return pd.DataFrame(read_predictions(conn, "builtin"))

    def defects(self, *, sample: int | None = None, min_probability: float | None = None,
                model: str | None = None) -> pd.DataFrame:
        """The machine-labeled defect table (model provenance and a probability per label)."""
        from analysis.store_defects import store_machine_defects

        frame = store_machine_defects(self.path, model=model, min_probability=min_probability, sample=sample)
        frame.attrs["source"] = str(self.path)
        return frame

    def human_labels(self) -> pd.DataFrame:
        """The store's final human labels (``reeng annotate import``) as a defect table."""
        from analysis.store_defects import store_human_defects

        return store_human_defects(self.path)

    def evaluate_labeler(self, *, gold: Path | str | None = None, threshold: float = 0.5, cv: bool = True,
                         adapt: bool = False) -> dict[str, Any]:
        """The built-in labeler against human labels of this corpus's threads, as ``reeng classify gold-eval --json``.

        The reference is the store's adjudicated labels (:meth:`human_labels`), or with ``gold`` a
        defects CSV in the study's format (:func:`reeng.datasets.locate` ``("jiang2024-defects")``
        is the study's own). Per dimension: κ and macro-F1 with 95 % bootstrap intervals, coverage at
        ``threshold``, the best guess's scores, and with ``cv`` a model trained on the reference
        labels, cross-validated by repository and by issue. ``splits`` scores apart the threads the
        labeler was developed or trained on and the others: read the latter. ``adapt``: the labeler
        adapted to the reference's labels, each thread labeled by models trained without its own
        (with ``gold``: without its repository's, leave-one-repository-out).
        """
        from taxonomy.classify import check_has_threads, gold_eval

        with self._open() as conn:
            check_has_threads(conn, self.path)
            return gold_eval(conn, gold, threshold=threshold, cv=cv, progress=False, adapt=adapt,
                             reference="gold" if gold is not None else "human_labels")

    def analyse(self, out: Path | str, *, sample: int | None = None, min_probability: float | None = None,
                human: pd.DataFrame | Path | str | None = None, **options: Any):
        """Analyse the machine labels (of a sample); ``human`` labels add PPI-corrected shares (a defect table,
        a CSV in the gold or defect-table format, or ``"store"``: this store's, as ``reeng analyze --human store``)."""
        if isinstance(human, (str, Path)):
            from analysis.store_defects import human_defects

            human = human_defects(human, self.path)
        return analyse(self.defects(sample=sample, min_probability=min_probability), out, human=human, **options)

    def release(self, out: Path | str, *, defects: list[pd.DataFrame | Path] | None = None, **options: Any):
        """A publishable release of the threads and labels (``defects`` default: the machine table)."""
        from dataclasses import fields

        from analysis.release import ReleaseOptions, write_release

        unknown = sorted(set(options) - {f.name for f in fields(ReleaseOptions)})
        if unknown:
            raise ReengError(f"release: unknown option(s) {', '.join(unknown)} "
                             f"(known: {', '.join(f.name for f in fields(ReleaseOptions))})")
        tables = defects if defects is not None else [self.defects()]
        return write_release(Path(out), store=self.path, defects=tables, options=ReleaseOptions(**options),
                             include_predictions=False)


def validate_release(folder: Path | str) -> list[str]:
    """Every problem found in a release folder (empty: valid), as ``reeng release validate`` reports them."""
    from analysis.release_check import validate_release as check

    return check(Path(folder))
