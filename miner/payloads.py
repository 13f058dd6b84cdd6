"""GitHub's JSON (REST and GraphQL) as the store's thread dicts, and the reaction vocabulary.

The two APIs name the same facts differently (``user.login`` vs ``author.login``, ``+1`` vs
``THUMBS_UP``, ``closed`` vs ``CLOSED``); mapping both onto one shape here is what makes a store
mined through GraphQL equal to one mined through REST or imported from a corpus. Reactions are
kept as the non-zero counts only, so "no reactions" reads the same from every source.
"""

from __future__ import annotations

from typing import Any

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


def graphql_comment(node: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL ``IssueComment`` node as a store comment dict."""
    return {
        "comment_id": int(node["databaseId"]),
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
        "comments": [graphql_comment(c) for c in node["comments"]["nodes"]],
    }
