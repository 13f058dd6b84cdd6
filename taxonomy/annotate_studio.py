"""Label Studio as the annotation front end: push threads with pre-annotations, pull raters' labels back.

``push`` creates (or updates) a project whose labeling config is generated from the taxonomy
(:mod:`taxonomy.annotate_config`) and imports threads as tasks, the classifier's stored
predictions riding along as pre-annotations with their scores and model version. ``pull`` reads
every rater's annotations, checks them against the store and the taxonomy before writing
anything, computes agreement per dimension, and writes in one transaction:

* ``human_annotations``: one row per rater, task, defect and dimension (provenance of every label);
* ``human_labels``: the final label per defect and dimension (agreed, single rater, majority or
  adjudicated), where ``reeng classify train`` and ``reeng analyze --human`` read them.

The API key comes from ``LABEL_STUDIO_API_KEY`` and only ever travels in the request header.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from reeng.errors import ReengError
from taxonomy.annotate import ensure_human_labels, queue, record_queued, suggestions, write_human_labels
from taxonomy.annotate_config import (DEFAULT_DEFECT_SLOTS, NO_LABEL, OutsideTaxonomy, labeling_config, parse_result,
                                      result_item, taxonomy_tag, thread_html)
from taxonomy.model import Taxonomy, load_taxonomy
from taxonomy.rules import LABEL_DIMENSIONS

API_KEY_ENV = "LABEL_STUDIO_API_KEY"
_TAG = re.compile(r"reeng taxonomy (\S+)")
ANNOTATIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS human_annotations (
    project       TEXT NOT NULL,     -- Label Studio URL and project title
    task          INTEGER NOT NULL,  -- Label Studio task id
    annotation    INTEGER NOT NULL,  -- Label Studio annotation id
    rater         TEXT NOT NULL,     -- the annotator's e-mail (or user id)
    role          TEXT NOT NULL,     -- rater / adjudicator
    annotated_at  TEXT,
    repo          TEXT NOT NULL,
    number        INTEGER NOT NULL,
    defect_index  INTEGER NOT NULL,
    dimension     TEXT NOT NULL,
    label         TEXT NOT NULL,
    pulled_at     TEXT NOT NULL,
    PRIMARY KEY (project, annotation, defect_index, dimension)
)
"""


def api_key_from_env(environ: dict[str, str] | None = None) -> str:
    import os

    key = (environ if environ is not None else os.environ).get(API_KEY_ENV, "").strip()
    if not key:
        raise ReengError(f"set {API_KEY_ENV} to your Label Studio access token (Account & Settings > Access Token)")
    return key


class Studio:
    """One Label Studio server reached through ``label-studio-sdk``, its failures turned into ReengErrors."""

    def __init__(self, url: str, api_key: str, timeout: float = 120) -> None:
        try:
            from label_studio_sdk.client import LabelStudio
        except ImportError:
            raise ReengError("the Label Studio client is not installed: pip install 'reeng[annotate]'") from None
        if not re.match(r"^https?://[^\s/]+", url or ""):
            raise ReengError(f"--url {url!r} is not an http(s) URL of a Label Studio server")
        self.url = url.rstrip("/")
        self.client = LabelStudio(base_url=self.url, api_key=api_key, timeout=timeout)

    @contextmanager
    def call(self, what: str) -> Iterator[None]:
        """Translate transport and API failures; the key is in no message (it lives only in a header)."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            yield
        except httpx.HTTPError as exc:
            raise ReengError(f"cannot reach Label Studio at {self.url} ({what}): {type(exc).__name__}") from None
        except ApiError as exc:
            if exc.status_code in (401, 403):
                raise ReengError(f"Label Studio at {self.url} refused the API key in {API_KEY_ENV} "
                                 f"(HTTP {exc.status_code} while trying to {what})") from None
            body = str(exc.body)[:300]
            raise ReengError(f"Label Studio at {self.url} answered HTTP {exc.status_code} to {what}: {body}") from None
        except ValueError as exc:  # a server that is not Label Studio answers with something that is not its JSON
            raise ReengError(f"{self.url} did not answer like a Label Studio server ({what}): {exc}") from None

    def check(self) -> str:
        with self.call("check the API key"):
            me = self.client.users.whoami()
        return str(getattr(me, "email", None) or getattr(me, "username", ""))

    def find_project(self, title: str) -> Any | None:
        with self.call(f"look up project {title!r}"):
            for project in self.client.projects.list(title=title):
                if project.title == title:
                    return project
        return None

    def ensure_project(self, title: str, config: str, tag: str) -> tuple[Any, bool]:
        """The project named ``title`` with this config, created when missing; another taxonomy is an error."""
        project = self.find_project(title)
        description = f"Defect labeling with reeng taxonomy {tag} (managed by `reeng annotate push`)"
        if project is None:
            with self.call(f"create project {title!r}"):
                return self.client.projects.create(title=title, label_config=config, description=description,
                                                   show_collab_predictions=True), True
        check_project_taxonomy(project, tag)
        with self.call(f"update project {title!r}"):
            return self.client.projects.update(id=project.id, label_config=config), False

    def project(self, title: str, tag: str) -> Any:
        project = self.find_project(title)
        if project is None:
            raise ReengError(f"Label Studio at {self.url} has no project {title!r}")
        check_project_taxonomy(project, tag)
        return project

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> None:
        with self.call("import tasks"):
            self.client.projects.import_tasks(id=project_id, request=tasks, return_task_ids=True)

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations, in one JSON export."""
        with self.call("export the project's tasks"):
            response = self.client._client_wrapper.httpx_client.request(
                f"api/projects/{project_id}/export", method="GET", params={"exportType": "JSON", "download_all_tasks": "true"})
            if response.status_code >= 400:
                from label_studio_sdk.core.api_error import ApiError

                raise ApiError(status_code=response.status_code, body=response.text)
            return response.json()

    def users(self) -> dict[int, str]:
        with self.call("list users"):
            return {u.id: (u.email or u.username or str(u.id)) for u in self.client.users.list()}


def check_project_taxonomy(project: Any, tag: str) -> None:
    m = _TAG.search(getattr(project, "description", None) or "")
    if m is None:
        raise ReengError(f"project {project.title!r} was not created by reeng (no taxonomy named in its description); "
                         "choose another --project name")
    if m.group(1) != tag:
        raise ReengError(f"project {project.title!r} was created for taxonomy {m.group(1)}, this reeng labels with {tag}: "
                         "push to a new --project")


# --- push -------------------------------------------------------------------------------------

def _thread_ids(conn: sqlite3.Connection, sample: int | None, queue_size: int | None, model: str) -> list[tuple[str, int]]:
    if sample is not None and queue_size is not None:
        raise ReengError("give --sample or --queue, not both")
    if queue_size is not None:
        if queue_size < 1:
            raise ReengError(f"--queue must be at least 1, got {queue_size}")
        return [(q["repo"], q["number"]) for q in queue(conn, model, queue_size)]
    if sample is not None:
        rows = conn.execute("SELECT repo, number FROM sample_issues WHERE sample_id = ? ORDER BY repo, number", (sample,)).fetchall()
        if not rows:
            raise ReengError(f"the store has no sample {sample} (see `reeng sample`)")
        return [(r[0], r[1]) for r in rows]
    rows = conn.execute("SELECT repo, number FROM issues ORDER BY repo, number").fetchall()
    if not rows:
        raise ReengError("the store holds no threads to annotate")
    return [(r[0], r[1]) for r in rows]


def _threads(conn: sqlite3.Connection, ids: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    wanted = set(ids)
    issues = {(r["repo"], r["number"]): dict(r) for r in conn.execute("SELECT repo, number, title, body, author, created_at FROM issues")
              if (r["repo"], r["number"]) in wanted}
    comments: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in conn.execute("SELECT repo, issue_number, author, body, created_at FROM comments ORDER BY created_at, comment_id"):
        if (r["repo"], r["issue_number"]) in wanted:
            comments[(r["repo"], r["issue_number"])].append(dict(r))
    return {key: thread_html(issue, comments[key]) for key, issue in issues.items()}


def _prediction(taxonomy: Taxonomy, preds: dict[str, dict[str, Any]], model: str) -> dict[str, Any] | None:
    results, scores, versions = [], [], set()
    for dim in LABEL_DIMENSIONS:
        p = preds.get(dim)
        if not p or not p.get("label"):
            continue  # an abstention pre-fills nothing
        score = float(p["probability"]) if p.get("probability") is not None else None
        results.append(result_item(taxonomy, dim, 1, p["label"], score))
        scores.append(score if score is not None else 0.0)
        versions.add(str(p.get("model_version") or ""))
    if not results:
        return None
    version = f"{model} {' '.join(sorted(v for v in versions if v))}".strip()
    return {"model_version": version, "score": min(scores), "result": results}


def push(conn: sqlite3.Connection, studio: Studio, project: str, *, sample: int | None = None, queue_size: int | None = None,
         model: str = "builtin", defects: int = DEFAULT_DEFECT_SLOTS, taxonomy: Taxonomy | None = None) -> dict[str, Any]:
    """Create or update ``project`` and import the chosen threads (skipping those already there) with pre-annotations."""
    taxonomy = taxonomy or load_taxonomy()
    tag = taxonomy_tag(taxonomy)
    config = labeling_config(taxonomy, defects)
    ids = _thread_ids(conn, sample, queue_size, model)
    studio.check()
    proj, created = studio.ensure_project(project, config, tag)
    present = set() if created else {t["data"].get("reeng_thread") for t in studio.export(proj.id)}
    todo = [key for key in ids if f"{key[0]}#{key[1]}" not in present]
    pages = _threads(conn, todo)
    preds = suggestions(conn, todo, model) if todo else {}
    tasks = []
    for rank, key in enumerate(todo, 1):
        repo, number = key
        task: dict[str, Any] = {"data": {"thread": pages[key], "reeng_thread": f"{repo}#{number}", "repo": repo, "number": number,
                                         "url": f"https://github.com/{repo}/issues/{number}", "taxonomy": tag, "rank": rank}}
        prediction = _prediction(taxonomy, preds.get(key, {}), model)
        if prediction is not None:
            task["predictions"] = [prediction]
        tasks.append(task)
    for start in range(0, len(tasks), 250):
        studio.import_tasks(proj.id, tasks[start:start + 250])
    if queue_size is not None and todo:
        with conn:
            record_queued(conn, todo, f"annotate push --queue: {project}")
    return {"project": project, "project_id": proj.id, "created": created, "url": f"{studio.url}/projects/{proj.id}",
            "threads": len(ids), "imported": len(tasks), "already_there": len(ids) - len(todo),
            "with_predictions": sum(1 for t in tasks if "predictions" in t)}


# --- pull -------------------------------------------------------------------------------------

@dataclass
class Annotation:
    task: int
    annotation: int
    rater: str
    role: str
    annotated_at: str | None
    repo: str
    number: int
    labels: dict[tuple[int, str], str]


@dataclass
class PullResult:
    project: str
    tasks: int
    annotations: list[Annotation]
    raters: list[str]
    adjudicators: list[str]
    agreement: dict[str, dict[str, Any]]
    disagreements: list[dict[str, Any]]
    final: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: fetch, check, agreement, store

    def summary(self) -> dict[str, Any]:
        provenance = Counter(row["provenance"].split(":", 1)[0] for row in self.final)
        return {"project": self.project, "tasks": self.tasks, "annotations": len(self.annotations), "raters": self.raters,
                "adjudicators": self.adjudicators, "agreement": self.agreement, "disagreements": len(self.disagreements),
                "open_disagreements": sum(1 for d in self.disagreements if d["final"] is None),
                "final_labels": len(self.final), "final_by": dict(sorted(provenance.items())), "seconds": self.timings}


def _expand_thread_level(labels: dict[tuple[int, str], str]) -> dict[tuple[int, str], str]:
    """Thread-level answers (defect 0) copied to every defect of the annotation, as the study's rows have them."""
    defects = sorted({k for k, _ in labels if k > 0}) or [1]
    out = {key: value for key, value in labels.items() if key[0] > 0}
    for (k, dim), value in labels.items():
        if k == 0:
            out.update({(d, dim): value for d in defects})
    return out


def read_annotations(taxonomy: Taxonomy, tasks: list[dict[str, Any]], users: dict[int, str], known: set[tuple[str, int]],
                     adjudicators: set[str], raters_per_task: int) -> list[Annotation]:
    """Every submitted annotation, checked: a thread missing from the store or a label outside the taxonomy is an error."""
    tag = taxonomy_tag(taxonomy)
    out, problems = [], []
    for task in tasks:
        data = task.get("data") or {}
        if data.get("taxonomy") not in (None, tag):
            problems.append(f"task {task.get('id')}: made for taxonomy {data.get('taxonomy')}, not {tag}")
            continue
        thread = (str(data.get("repo", "")), data.get("number"))
        annotations = sorted((a for a in task.get("annotations") or [] if not a.get("was_cancelled")),
                             key=lambda a: (str(a.get("created_at") or ""), a.get("id") or 0))
        if annotations and thread not in known:
            problems.append(f"task {task.get('id')}: thread {thread[0]}#{thread[1]} is not in the store")
            continue
        seen_raters: list[str] = []
        for a in annotations:
            rater = users.get(a.get("completed_by"), str(a.get("completed_by")))
            try:
                labels = _expand_thread_level(parse_result(taxonomy, a.get("result") or []))
            except OutsideTaxonomy as exc:
                problems.append(f"task {task.get('id')}, rater {rater}: {exc.control} value {exc.value!r} is not in taxonomy {tag}")
                continue
            if rater in adjudicators or a.get("ground_truth"):
                role = "adjudicator"
            elif rater in seen_raters or len(seen_raters) < raters_per_task:
                role = "rater"
                if rater not in seen_raters:
                    seen_raters.append(rater)
            else:
                role = "adjudicator"  # a further annotation after the raters': it settles their disagreements
            out.append(Annotation(int(task["id"]), int(a["id"]), rater, role, a.get("updated_at") or a.get("created_at"),
                                  thread[0], int(thread[1]), labels))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ReengError(f"{len(problems)} problem(s) in the project, nothing stored: {shown}")
    return out


def _agreement(annotations: list[Annotation], raters: list[str], dims: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per dimension: Cohen's kappa when the project has two raters, Krippendorff's alpha (nominal) always."""
    import krippendorff
    import numpy as np
    import pandas as pd

    from taxonomy.agreement import _kappa

    cells: dict[str, dict[tuple[int, int], dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    for a in annotations:
        if a.role == "rater":
            for (k, dim), label in a.labels.items():
                cells[dim][(a.task, k)][a.rater] = label
    out: dict[str, dict[str, Any]] = {}
    for dim in dims:
        units = cells.get(dim, {})
        paired = {u: v for u, v in units.items() if len(v) >= 2}
        entry: dict[str, Any] = {"units": len(units), "paired_units": len(paired), "kappa": None, "alpha": None,
                                 "agreement": None}
        if paired:
            entry["agreement"] = float(np.mean([len(set(v.values())) == 1 for v in paired.values()]))
            codes = {label: i for i, label in enumerate(sorted({lab for v in units.values() for lab in v.values()}))}
            matrix = np.full((len(raters), len(units)), np.nan)
            for j, by_rater in enumerate(units.values()):
                for rater, label in by_rater.items():
                    matrix[raters.index(rater), j] = codes[label]
            if len(codes) > 1:
                entry["alpha"] = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))
        if len(raters) == 2:
            a_col = pd.Series([v.get(raters[0]) for v in units.values()], dtype=object)
            b_col = pd.Series([v.get(raters[1]) for v in units.values()], dtype=object)
            entry["kappa"] = _kappa(a_col, b_col).kappa
        out[dim] = entry
    return out


def _decide(annotations: list[Annotation], now: str, project: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Final labels and the disagreement list, per (thread, defect, dimension).

    A decided :data:`NO_LABEL` (an adjudicator's "No label", or raters agreeing on it) settles the
    unit without a final label; its disagreement is closed, with ``final`` ``"none"``.
    """
    units: dict[tuple[int, int, str], dict[str, list[Annotation]]] = defaultdict(lambda: {"rater": [], "adjudicator": []})
    for a in annotations:
        for k, dim in a.labels:
            units[(a.task, k, dim)][a.role].append(a)
    final, disagreements = [], []
    for (task, k, dim), by_role in sorted(units.items()):
        raters, judges = by_role["rater"], by_role["adjudicator"]
        votes = {a.rater: a.labels[(k, dim)] for a in raters}
        some = (raters or judges)[0]
        counts = Counter(votes.values())
        decided, provenance, who = None, "", []
        if judges:
            last = max(judges, key=lambda a: (str(a.annotated_at or ""), a.annotation))
            decided, provenance, who = last.labels[(k, dim)], f"adjudicated:{last.rater}", [last]
        elif len(counts) == 1:
            decided = next(iter(counts))
            provenance = ("agreed:" if len(votes) > 1 else "single:") + "|".join(sorted(votes))
            who = raters
        elif counts.most_common(1)[0][1] * 2 > len(votes):
            decided = counts.most_common(1)[0][0]
            provenance, who = "majority:" + "|".join(sorted(r for r, v in votes.items() if v == decided)), raters
        if len(counts) > 1:
            disagreements.append({"task": task, "thread": f"{some.repo}#{some.number}", "defect_index": k, "dimension": dim,
                                  "labels": dict(sorted(votes.items())), "final": decided,
                                  "decided_by": provenance.split(":", 1)[0] if decided else None})
        if decided is not None and decided != NO_LABEL:
            final.append({"repo": some.repo, "number": some.number, "defect_index": k, "dimension": dim, "label": decided,
                          "provenance": f"label-studio {provenance}", "created_at": now,
                          "raters": "|".join(sorted({a.rater for a in who})), "task": f"{project} task {task}",
                          "annotated_at": max(str(a.annotated_at or "") for a in who) or None})
    return final, disagreements


def pull(conn: sqlite3.Connection, studio: Studio, project: str, *, adjudicators: tuple[str, ...] = (),
         raters_per_task: int = 2, taxonomy: Taxonomy | None = None) -> PullResult:
    """Fetch, check, score and store every rater's annotations; all or nothing."""
    from taxonomy.annotate_config import ANNOTATED_DIMENSIONS

    if raters_per_task < 2:
        raise ReengError(f"--raters-per-task must be at least 2, got {raters_per_task}")
    taxonomy = taxonomy or load_taxonomy()
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    proj = studio.project(project, taxonomy_tag(taxonomy))
    tasks = studio.export(proj.id)
    users = studio.users()
    lap("fetch")
    known = {(r[0], r[1]) for r in conn.execute("SELECT repo, number FROM issues")}
    annotations = read_annotations(taxonomy, tasks, users, known, set(adjudicators), raters_per_task)
    raters = sorted({a.rater for a in annotations if a.role == "rater"})
    label = f"{studio.url} {project}"
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    final, disagreements = _decide(annotations, now, label)
    lap("check")
    result = PullResult(project, len(tasks), annotations, raters, sorted({a.rater for a in annotations if a.role == "adjudicator"}),
                        _agreement(annotations, raters, ANNOTATED_DIMENSIONS), disagreements, final)
    lap("agreement")
    store_pull(conn, result, label, now)
    lap("store")
    result.timings = timings
    return result


def store_pull(conn: sqlite3.Connection, result: PullResult, project: str, now: str) -> None:
    """Replace this project's rows in ``human_annotations`` and upsert its final labels, in one transaction."""
    rows = [(project, a.task, a.annotation, a.rater, a.role, a.annotated_at, a.repo, a.number, k, dim, label, now)
            for a in result.annotations for (k, dim), label in sorted(a.labels.items())]
    with conn:
        conn.execute(ANNOTATIONS_SCHEMA)
        ensure_human_labels(conn)
        conn.execute("DELETE FROM human_annotations WHERE project = ?", (project,))
        prefix = f"{project} task "  # this project's earlier final labels: a label no longer decided must not linger
        conn.execute("DELETE FROM human_labels WHERE substr(task, 1, ?) = ?", (len(prefix), prefix))
        conn.executemany(f"INSERT INTO human_annotations VALUES ({', '.join('?' * 12)})", rows)
        write_human_labels(conn, result.final)
