"""The GraphQL side of the local GitHub-compatible server: a subset of GitHub's schema, executed.

The schema is written in GitHub's own names (``repository``, ``issues(orderBy, filterBy)``,
``reactionGroups``, ``IssueComment.databaseId``...) and run by graphql-core, so the miner's real
queries (fragments, aliases, variables) are parsed and validated exactly as a GraphQL server
would; a query the subset does not cover fails with GraphQL errors instead of a wrong answer.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from graphql import GraphQLSchema, build_schema, graphql_sync

from miner.payloads import REACTIONS

if TYPE_CHECKING:
    from miner.server import Corpus

SDL = """
scalar DateTime
enum IssueState { OPEN CLOSED }
enum IssueOrderField { CREATED_AT UPDATED_AT COMMENTS }
enum OrderDirection { ASC DESC }
enum ReactionContent { THUMBS_UP THUMBS_DOWN LAUGH HOORAY CONFUSED HEART ROCKET EYES }
input IssueOrder { field: IssueOrderField! direction: OrderDirection! }
input IssueFilters { since: DateTime states: [IssueState!] }

type Query {
  rateLimit: RateLimit
  repository(owner: String!, name: String!): Repository
}
type RateLimit { cost: Int! limit: Int! remaining: Int! resetAt: DateTime }
type Repository {
  nameWithOwner: String!
  stargazerCount: Int!
  description: String
  createdAt: DateTime
  hasIssuesEnabled: Boolean!
  issues(first: Int, after: String, orderBy: IssueOrder, filterBy: IssueFilters, states: [IssueState!]): IssueConnection!
  issue(number: Int!): Issue
}
type PageInfo { hasNextPage: Boolean! endCursor: String }
type IssueConnection { totalCount: Int! pageInfo: PageInfo! nodes: [Issue!]! }
type Actor { login: String! }
type Label { name: String! }
type LabelConnection { totalCount: Int! nodes: [Label!]! }
type ReactorConnection { totalCount: Int! }
type ReactionGroup { content: ReactionContent! reactors: ReactorConnection! }
type IssueComment { databaseId: Int! author: Actor body: String! createdAt: DateTime! updatedAt: DateTime }
type IssueCommentConnection { totalCount: Int! pageInfo: PageInfo! nodes: [IssueComment!]! }
type Issue {
  number: Int!
  title: String!
  body: String!
  state: IssueState!
  url: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  closedAt: DateTime
  author: Actor
  labels(first: Int): LabelConnection
  reactionGroups: [ReactionGroup!]
  comments(first: Int, after: String): IssueCommentConnection!
}
"""


class QueryError(Exception):
    """An argument GitHub would refuse (e.g. ``first`` above 100)."""


def _cursor(offset: int) -> str:
    return base64.b64encode(f"cursor:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.b64decode(cursor).decode().split(":", 1)[1])
    except (ValueError, IndexError):
        raise QueryError(f"`{cursor}` does not appear to be a valid cursor.") from None


def paginate(items: list[Any], first: int | None, after: str | None) -> dict[str, Any]:
    """A GitHub-style connection over ``items``: at most ``first`` (1..100) after the cursor."""
    first = 100 if first is None else first
    if not 1 <= first <= 100:
        raise QueryError("Requesting more than 100 records (or fewer than 1) on a connection is not allowed.")
    start = _offset(after)
    chunk = items[start:start + first]
    end = start + len(chunk)
    return {"totalCount": len(items), "nodes": chunk,
            "pageInfo": {"hasNextPage": end < len(items), "endCursor": _cursor(end) if chunk else after}}


def _actor(login: str | None) -> dict[str, str] | None:
    return {"login": login} if login else None


def issue_node(issue: dict[str, Any], comments: list[dict[str, Any]]) -> dict[str, Any]:
    """A stored issue as a GraphQL ``Issue`` source object (connections resolved lazily)."""
    return {
        "number": issue["number"], "title": issue["title"] or "", "body": issue["body"] or "",
        "state": (issue["state"] or "open").upper(), "url": issue["url"], "createdAt": issue["created_at"],
        "updatedAt": issue["updated_at"], "closedAt": issue["closed_at"], "author": _actor(issue["author"]),
        "_labels": [{"name": n} for n in issue["labels"]],
        "reactionGroups": [{"content": c, "reactors": {"totalCount": issue["reactions"].get(k, 0)}}
                           for c, k in REACTIONS.items()],
        "_comments": comments,
    }


def comment_node(comment: dict[str, Any]) -> dict[str, Any]:
    return {"databaseId": comment["comment_id"], "author": _actor(comment["author"]), "body": comment["body"] or "",
            "createdAt": comment["created_at"], "updatedAt": comment["updated_at"]}


def build(corpus: Corpus) -> GraphQLSchema:
    """The executable schema over one corpus."""
    schema = build_schema(SDL)
    fields = {name: schema.type_map[name].fields for name in ("Query", "Repository", "Issue")}  # type: ignore[attr-defined]

    def repository(_: Any, info: Any, owner: str, name: str) -> dict[str, Any] | None:
        return corpus.repository_node(f"{owner}/{name}")

    def issues(repo: dict[str, Any], info: Any, first: int | None = None, after: str | None = None,
               orderBy: dict | None = None, filterBy: dict | None = None, states: list[str] | None = None) -> dict:
        order = orderBy or {"field": "CREATED_AT", "direction": "ASC"}
        filters = filterBy or {}
        wanted = states or filters.get("states")
        items = corpus.issue_list(repo["nameWithOwner"], since=filters.get("since"), order=order["field"],
                                  descending=order["direction"] == "DESC",
                                  states=[s.lower() for s in wanted] if wanted else None)
        page = paginate(items, first, after)
        page["nodes"] = [corpus.issue_node(repo["nameWithOwner"], i) for i in page["nodes"]]
        return page

    def issue(repo: dict[str, Any], info: Any, number: int) -> dict[str, Any] | None:
        found = corpus.find_issue(repo["nameWithOwner"], number)
        return corpus.issue_node(repo["nameWithOwner"], found) if found else None

    def labels(node: dict[str, Any], info: Any, first: int | None = None) -> dict[str, Any]:
        return paginate(node["_labels"], first, None)

    def comments(node: dict[str, Any], info: Any, first: int | None = None, after: str | None = None) -> dict:
        page = paginate(node["_comments"], first, after)
        page["nodes"] = [comment_node(c) for c in page["nodes"]]
        return page

    fields["Query"]["repository"].resolve = repository
    fields["Query"]["rateLimit"].resolve = lambda _, info: info.context["rate_limit"]
    fields["Repository"]["issues"].resolve = issues
    fields["Repository"]["issue"].resolve = issue
    fields["Issue"]["labels"].resolve = labels
    fields["Issue"]["comments"].resolve = comments
    return schema


def execute(schema: GraphQLSchema, payload: dict[str, Any], rate_limit: dict[str, Any]) -> dict[str, Any]:
    """Run one GraphQL request body; errors come back in GitHub's shape (``errors`` with ``type``)."""
    result = graphql_sync(schema, payload.get("query") or "", variable_values=payload.get("variables") or {},
                          operation_name=payload.get("operationName"), context_value={"rate_limit": rate_limit})
    body: dict[str, Any] = {}
    if result.data is not None:
        body["data"] = result.data
    if result.errors:
        body["errors"] = [{"message": e.message, "path": e.path, "locations": [loc._asdict() for loc in e.locations or []]}
                          for e in result.errors]
    if result.data and "repository" in result.data and result.data["repository"] is None:
        body.setdefault("errors", []).append({"type": "NOT_FOUND", "path": ["repository"],
                                              "message": "Could not resolve to a Repository with the given name."})
    return body
