"""Selecting repositories to mine: GitHub search with the study's criteria, and the zoo/solo rule.

Jiang et al. chose CV reengineering repositories with at least 1,000 stars and 50 closed issues,
found by architecture keywords, at most five per architecture, and told "zoo" repositories (many
models under one roof) from "solo" ones (one model). They did not publish the rule as code; the
rule here is written down, defaults to the study's numbers and can be overridden from YAML:

* a repository is a **zoo** if it is listed under ``zoo.repos``, or its description contains one
  of ``zoo.description_patterns``, or the search found it for at least ``zoo.min_architectures``
  different architecture keywords;
* otherwise it is **solo**.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from miner import store
from miner.client import GitHubClient
from reeng.errors import ReengError

DEFAULT_CRITERIA: dict[str, Any] = {
    "min_stars": 1000,
    "min_closed_issues": 50,
    "per_architecture": 5,
    "candidates_per_architecture": 30,
    "architectures": ["yolo", "faster-rcnn", "mask-rcnn", "retinanet", "centernet", "pix2pix", "cyclegan",
                      "efficientnet", "detr"],
    "zoo": {
        "repos": ["tensorflow/models", "open-mmlab/mmdetection", "pytorch/vision", "facebookresearch/detectron2",
                  "rwightman/pytorch-image-models"],
        "description_patterns": ["model zoo", "toolbox", "collection of", "library of models"],
        "min_architectures": 3,
    },
}


def load_criteria(path: Path | None) -> dict[str, Any]:
    """The defaults, with a YAML file's keys replacing them (``zoo`` merged key by key)."""
    criteria = copy.deepcopy(DEFAULT_CRITERIA)
    if path is None:
        return criteria
    if not path.is_file():
        raise ReengError(f"{path}: no such selection config")
    try:
        override = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError:
        raise ReengError(f"{path}: not a YAML text file (not UTF-8)") from None
    except yaml.YAMLError as exc:
        raise ReengError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(override, dict):
        raise ReengError(f"{path}: a selection config is a mapping of criteria")
    unknown = set(override) - set(criteria)
    if unknown:
        raise ReengError(f"{path}: unknown criteria {', '.join(sorted(unknown))} (known: {', '.join(criteria)})")
    zoo_override = override.pop("zoo", None) or {}
    if not isinstance(zoo_override, dict):
        raise ReengError(f"{path}: zoo must be a mapping (repos, description_patterns, min_architectures)")
    unknown = set(zoo_override) - set(criteria["zoo"])
    if unknown:
        raise ReengError(f"{path}: unknown zoo criteria {', '.join(sorted(unknown))}")
    zoo = {**criteria["zoo"], **zoo_override}
    criteria.update(override)
    criteria["zoo"] = zoo
    _check_types(path, criteria)
    return criteria


def _check_types(path: Path, criteria: dict[str, Any]) -> None:
    """Each criterion has the type and range its default has: one clear error otherwise."""
    counts = {"min_stars": 0, "min_closed_issues": 0, "per_architecture": 1, "candidates_per_architecture": 1}
    for key, least in counts.items():
        value = criteria[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ReengError(f"{path}: {key} must be an integer >= {least}, not {value!r}")
    if not 1 <= criteria["candidates_per_architecture"] <= 100:
        raise ReengError(f"{path}: candidates_per_architecture must be 1 to 100 (one search page)")
    zoo = criteria["zoo"]
    for key, value in (("architectures", criteria["architectures"]), ("zoo.repos", zoo["repos"]),
                       ("zoo.description_patterns", zoo["description_patterns"])):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ReengError(f"{path}: {key} must be a list of names, not {value!r}")
    if not criteria["architectures"]:
        raise ReengError(f"{path}: architectures is empty (nothing to search for)")
    minimum = zoo["min_architectures"]
    if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 1:
        raise ReengError(f"{path}: zoo.min_architectures must be an integer >= 1, not {minimum!r}")


def repo_type(repo: str, description: str | None, architectures: list[str], zoo: dict[str, Any]) -> tuple[str, str]:
    """``("zoo" | "solo", reason)`` by the written rule above."""
    if repo.casefold() in {r.casefold() for r in zoo.get("repos", [])}:
        return "zoo", "listed as a zoo"
    text = (description or "").casefold()
    for pattern in zoo.get("description_patterns", []):
        if pattern.casefold() in text:
            return "zoo", f"description mentions '{pattern}'"
    if len(architectures) >= zoo.get("min_architectures", 3):
        return "zoo", f"found for {len(architectures)} architectures"
    return "solo", f"found for {', '.join(architectures)}"


def _closed_issue_counts(client: GitHubClient, repos: list[str]) -> dict[str, int]:
    """Closed-issue counts through GraphQL, 20 repositories per query (search has no such qualifier)."""
    counts: dict[str, int] = {}
    for start in range(0, len(repos), 20):
        batch = repos[start:start + 20]
        parts = [f"r{i}: repository(owner: {json.dumps(r.split('/')[0])}, name: {json.dumps(r.split('/')[1])}) "
                 "{ issues(states: [CLOSED], first: 1) { totalCount } }" for i, r in enumerate(batch)]
        data = client.graphql(f"query ClosedIssues {{ {' '.join(parts)} }}", {}, what="closed-issue counts")
        for i, repo in enumerate(batch):
            node = data.get(f"r{i}")
            counts[repo] = node["issues"]["totalCount"] if node else 0
    return counts


def search(client: GitHubClient, criteria: dict[str, Any]) -> list[dict[str, Any]]:
    """Search each architecture keyword, keep qualifying repositories (at most N per architecture)."""
    found: dict[str, dict[str, Any]] = {}
    ranked: dict[str, list[str]] = {}
    for arch in criteria["architectures"]:
        resp = client.get("/search/repositories", {"q": f"{arch} stars:>={criteria['min_stars']}", "sort": "stars",
                                                   "order": "desc", "per_page": criteria["candidates_per_architecture"]},
                          what=f"search {arch}")
        ranked[arch] = []
        for item in (resp.data or {}).get("items", []):
            repo = item["full_name"]
            entry = found.setdefault(repo, {"repo": repo, "stars": item.get("stargazers_count"),
                                            "description": item.get("description"),
                                            "created_at": item.get("created_at"), "architectures": []})
            entry["architectures"].append(arch)
            ranked[arch].append(repo)
    closed = _closed_issue_counts(client, sorted(found))
    selected: dict[str, dict[str, Any]] = {}
    for repos in ranked.values():
        keep = [r for r in repos if closed.get(r, 0) >= criteria["min_closed_issues"]][:criteria["per_architecture"]]
        for repo in keep:
            selected[repo] = found[repo]
    for entry in selected.values():
        entry["closed_issues"] = closed[entry["repo"]]
        entry["repo_type"], entry["reason"] = repo_type(entry["repo"], entry["description"], entry["architectures"],
                                                        criteria["zoo"])
    return sorted(selected.values(), key=lambda e: (-(e["stars"] or 0), e["repo"]))


def preset_repositories(name: str) -> list[dict[str, Any]]:
    """A ready selection: ``jiang2024`` is the study's 27 repositories with their zoo/solo tags."""
    if name != "jiang2024":
        raise ReengError(f"{name!r}: unknown preset (known: jiang2024)")
    from reeng.datasets import locate
    from taxonomy.gold import import_defects

    defects = import_defects(locate("jiang2024-defects"))
    selection: dict[str, dict[str, Any]] = {}
    for row in defects[["owner", "repo", "repo_type"]].itertuples(index=False):
        entry = selection.setdefault(f"{row.owner}/{row.repo}", {"repo": f"{row.owner}/{row.repo}", "repo_type": None,
                                                                 "reason": "jiang2024 gold defects"})
        if entry["repo_type"] is None and isinstance(row.repo_type, str):
            entry["repo_type"] = row.repo_type
    return sorted(selection.values(), key=lambda e: e["repo"].casefold())


def record(conn: sqlite3.Connection, selection: list[dict[str, Any]], source: str) -> None:
    """Write a selection into the store's ``repositories`` table."""
    fetched = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with store.transaction(conn):
        for entry in selection:
            store.upsert_repository(conn, {**entry, "source": f"selection:{source}", "fetched_at": fetched})
