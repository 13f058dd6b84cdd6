"""GitHub's JSON (REST and GraphQL) as the store's thread dicts, and the reaction vocabulary.

The two APIs name the same facts differently (``user.login`` vs ``author.login``, ``+1`` vs
``THUMBS_UP``, ``closed`` vs ``CLOSED``); mapping both onto one shape here is what makes a store
mined through GraphQL equal to one mined through REST or imported from a corpus. Reactions are
kept as the non-zero counts only, so "no reactions" reads the same from every source.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

log = logging.getLogger("reeng.miner")

# GraphQL ReactionContent -> REST reaction key, in GitHub's order.
REACTIONS: dict[str, str] = {
    "THUMBS_UP": "+1", "THUMBS_DOWN": "-1", "LAUGH": "laugh", "HOORAY": "hooray",
    "CONFUSED": "confused", "HEART": "heart", "ROCKET": "rocket", "EYES": "eyes",
}


def _login(user: dict[str, Any] | None) -> str | None:
    return user.get("login") if user else None


def rest_reactions(reactions: dict[str, Any] | None) -> dict[str, int]:
    """REST ``reactions`` object -> non-zero counts by REST key."""
    reactions = reactions or {}
    return {key: int(reactions[key]) for key in REACTIONS.values() if reactions.get(key)}


def graphql_reactions(groups: list[dict[str, Any]] | None) -> dict[str, int]:
    """GraphQL ``reactionGroups`` -> non-zero counts by REST key."""
    counts = {REACTIONS[g["content"]]: int(g["reactors"]["totalCount"]) for g in groups or [] if g["content"] in REACTIONS}
    return {key: counts[key] for key in REACTIONS.values() if counts.get(key)}


def is_pull_request(item: dict[str, Any]) -> bool:
    """GitHub's REST issue listings include pull requests, marked by the raw ``pull_request`` key."""
    return "pull_request" in item


def rest_issue(repo: str, item: dict[str, Any]) -> dict[str, Any]:
    """A REST issue object as a store issue dict (without comments)."""
    return {
        "repo": repo,
        "number": int(item["number"]),
        "title": item.get("title") or "",
        "body": item.get("body") or "",
        "state": item.get("state"),
        "author": _login(item.get("user")),
        "labels": [lab["name"] if isinstance(lab, dict) else str(lab) for lab in item.get("labels") or []],
        "created_at": item.get("created_at"),
        "updated_at": item.get("updated_at"),
        "closed_at": item.get("closed_at"),
        "comments_count": int(item.get("comments") or 0),
        "reactions": rest_reactions(item.get("reactions")),
        "url": item.get("html_url"),
        "state_reason": item.get("state_reason"),
        "issue_id": int(item["id"]) if item.get("id") is not None else None,
    }


def rest_comment(item: dict[str, Any]) -> dict[str, Any]:
    """A REST issue comment as a store comment dict."""
    return {
        "comment_id": int(item["id"]),
        "author": _login(item.get("user")),
        "body": item.get("body") or "",
        "created_at": item.get("created_at"),
        "updated_at": item.get("updated_at"),
    }


def big_id(value: Any) -> int | None:
    """GitHub's ``fullDatabaseId`` (a BigInt, serialised as a string) as an int; ``None`` stays ``None``."""
    return None if value is None else int(value)


def graphql_comment(node: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL ``IssueComment`` node as a store comment dict.

    The id is ``fullDatabaseId`` (64-bit; ``databaseId`` is a 32-bit Int that comment ids outgrew
    in 2024). Where GitHub gives none, a stable negative id is derived from the node id, so the
    comment is kept and can never collide with a real one.
    """
    comment_id = big_id(node.get("fullDatabaseId"))
    if comment_id is None:
        node_id = node.get("id") or f"{node.get('createdAt')}:{(node.get('author') or {}).get('login')}"
        comment_id = -int.from_bytes(hashlib.sha1(str(node_id).encode()).digest()[:7], "big")
        log.warning("a comment without fullDatabaseId (node %s): stored under the derived id %d", node_id, comment_id)
    return {
        "comment_id": comment_id,
        "author": _login(node.get("author")),
        "body": node.get("body") or "",
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
    }


def graphql_issue(repo: str, node: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL ``Issue`` node (with its first page of comments) as a store issue dict."""
    return {
        "repo": repo,
        "number": int(node["number"]),
        "title": node.get("title") or "",
        "body": node.get("body") or "",
        "state": (node.get("state") or "").lower() or None,
        "author": _login(node.get("author")),
        "labels": [lab["name"] for lab in (node.get("labels") or {}).get("nodes") or []],
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "closed_at": node.get("closedAt"),
        "comments_count": int(node["comments"]["totalCount"]),
        "reactions": graphql_reactions(node.get("reactionGroups")),
        "url": node.get("url"),
        "state_reason": (node.get("stateReason") or "").lower() or None,
        "issue_id": big_id(node.get("fullDatabaseId")),
        "comments": [graphql_comment(c) for c in node["comments"]["nodes"]],
    }


def _repo_of(node: dict[str, Any] | None) -> str | None:
    return ((node or {}).get("repository") or {}).get("nameWithOwner")


def graphql_event(node: dict[str, Any]) -> dict[str, Any] | None:
    """A timeline item (closed, cross-referenced, referenced, labeled, unlabeled) as an ``events`` row."""
    kind = {"ClosedEvent": "closed", "CrossReferencedEvent": "cross-referenced", "ReferencedEvent": "referenced",
            "LabeledEvent": "labeled", "UnlabeledEvent": "unlabeled"}.get(node.get("__typename", ""))
    if kind is None or not node.get("id"):
        return None
    event = {"event_id": node["id"], "kind": kind, "actor": _login(node.get("actor")), "created_at": node.get("createdAt"),
             "label": (node.get("label") or {}).get("name"), "state_reason": None, "source_kind": None,
             "source_repo": None, "source_ref": None, "will_close": None}
    if kind == "closed":
        event["state_reason"] = (node.get("stateReason") or "").lower() or None
        source = node.get("closer")
    elif kind == "cross-referenced":
        event["will_close"] = int(bool(node.get("willCloseTarget")))
        source = node.get("source")
    elif kind == "referenced":
        source = {"__typename": "Commit", **(node.get("commit") or {}), "repository": node.get("commitRepository")}
    else:
        source = None
    if source and source.get("__typename") in ("Commit", "PullRequest", "Issue"):
        typename = source["__typename"]
        event["source_kind"] = {"Commit": "commit", "PullRequest": "pull", "Issue": "issue"}[typename]
        event["source_repo"] = _repo_of(source)
        event["source_ref"] = source.get("oid") if typename == "Commit" else str(source.get("number"))
    return event


LINKS = ("closer", "cross-referenced", "referenced")  # how strongly the timeline ties a fix to the issue


def linked_fixes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pull requests and commits that fixed an issue, by its timeline, strongest link first.

    * ``closer``: the commit or pull request of a ``ClosedEvent``;
    * ``cross-referenced``: a pull request whose ``willCloseTarget`` is set (it says "fixes #N");
    * ``referenced``: a commit that mentions the issue.
    """
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for event in events:
        if not event["source_repo"] or not event["source_ref"]:
            continue
        if event["kind"] == "closed" and event["source_kind"] in ("pull", "commit"):
            link = "closer"
        elif event["kind"] == "cross-referenced" and event["source_kind"] == "pull" and event["will_close"]:
            link = "cross-referenced"
        elif event["kind"] == "referenced" and event["source_kind"] == "commit":
            link = "referenced"
        else:
            continue
        key = (event["source_kind"], event["source_repo"], event["source_ref"])
        if key not in found or LINKS.index(link) < LINKS.index(found[key]["link"]):
            found[key] = {"kind": key[0], "fix_repo": key[1], "fix_ref": key[2], "link": link}
    return sorted(found.values(), key=lambda f: (LINKS.index(f["link"]), f["kind"], f["fix_repo"], f["fix_ref"]))


PATCH_LIMIT = 200_000  # bytes of unified diff kept per fix


def fix_files(fix: dict[str, Any], files: list[dict[str, Any]], limit: int = PATCH_LIMIT) -> dict[str, Any]:
    """A fix with its changed files (REST ``files`` items), totals and a patch bounded to ``limit`` bytes."""
    rows = [{"path": f.get("filename"), "status": f.get("status"), "additions": int(f.get("additions") or 0),
             "deletions": int(f.get("deletions") or 0)} for f in files]
    patch = "".join(f"diff --git a/{f.get('filename')} b/{f.get('filename')}\n{f['patch']}\n"
                    for f in files if f.get("patch"))
    raw = patch.encode("utf-8")
    truncated = len(raw) > limit
    if truncated:
        patch = raw[:limit].decode("utf-8", errors="ignore")
    web = "pull" if fix["kind"] == "pull" else "commit"
    return {**fix, "url": f"https://github.com/{fix['fix_repo']}/{web}/{fix['fix_ref']}", "files": rows,
            "additions": sum(r["additions"] for r in rows), "deletions": sum(r["deletions"] for r in rows),
            "patch": patch or None, "patch_truncated": int(truncated)}
