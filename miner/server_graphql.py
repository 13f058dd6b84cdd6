"""The GraphQL side of the local GitHub-compatible server: a subset of GitHub's schema, executed.

The schema is written in GitHub's own names (``repository``, ``issues(orderBy, filterBy)``,
``reactionGroups``, ``IssueComment.databaseId``...) and run by graphql-core, so the miner's real
queries (fragments, aliases, variables) are parsed and validated exactly as a GraphQL server
would; a query the subset does not cover fails with GraphQL errors instead of a wrong answer.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphql import GraphQLSchema, build_schema, graphql_sync

from miner.payloads import REACTIONS

if TYPE_CHECKING:
    from miner.server import Corpus

SDL = """
scalar DateTime
scalar BigInt
scalar GitObjectID
enum IssueState { OPEN CLOSED }
enum IssueStateReason { COMPLETED NOT_PLANNED REOPENED DUPLICATE }
enum IssueOrderField { CREATED_AT UPDATED_AT COMMENTS }
enum OrderDirection { ASC DESC }
enum ReactionContent { THUMBS_UP THUMBS_DOWN LAUGH HOORAY CONFUSED HEART ROCKET EYES }
enum IssueTimelineItemsItemType { CLOSED_EVENT CROSS_REFERENCED_EVENT REFERENCED_EVENT LABELED_EVENT UNLABELED_EVENT }
input IssueOrder { field: IssueOrderField! direction: OrderDirection! }
input IssueFilters { since: DateTime states: [IssueState!] }

type Query {
  rateLimit: RateLimit
  repository(owner: String!, name: String!): Repository
}
type RateLimit { cost: Int! limit: Int! remaining: Int! resetAt: DateTime }
type Repository {
  id: ID!
  databaseId: Int
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
type IssueComment {
  id: ID!
  databaseId: Int
  fullDatabaseId: BigInt
  author: Actor
  body: String!
  createdAt: DateTime!
  updatedAt: DateTime
}
type IssueCommentConnection { totalCount: Int! pageInfo: PageInfo! nodes: [IssueComment!]! }
type RepositoryRef { nameWithOwner: String! }
type Commit { oid: GitObjectID! repository: RepositoryRef }
type PullRequest { number: Int! repository: RepositoryRef }
union Closer = Commit | PullRequest
union ReferencedSubject = Issue | PullRequest
type ClosedEvent { id: ID! createdAt: DateTime! actor: Actor stateReason: IssueStateReason closer: Closer }
type CrossReferencedEvent { id: ID! createdAt: DateTime! actor: Actor willCloseTarget: Boolean! source: ReferencedSubject! }
type ReferencedEvent { id: ID! createdAt: DateTime! actor: Actor commit: Commit commitRepository: RepositoryRef! }
type LabeledEvent { id: ID! createdAt: DateTime! actor: Actor label: Label! }
type UnlabeledEvent { id: ID! createdAt: DateTime! actor: Actor label: Label! }
union IssueTimelineItems = ClosedEvent | CrossReferencedEvent | ReferencedEvent | LabeledEvent | UnlabeledEvent
type IssueTimelineItemsConnection { totalCount: Int! pageInfo: PageInfo! nodes: [IssueTimelineItems] }
type Issue {
  number: Int!
  databaseId: Int
  fullDatabaseId: BigInt
  repository: RepositoryRef
  title: String!
  body: String!
  state: IssueState!
  stateReason: IssueStateReason
  url: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  closedAt: DateTime
  author: Actor
  labels(first: Int): LabelConnection
  reactionGroups: [ReactionGroup!]
  comments(first: Int, after: String): IssueCommentConnection!
  timelineItems(first: Int, after: String, itemTypes: [IssueTimelineItemsItemType!]): IssueTimelineItemsConnection!
}
"""
KINDS = {"closed": "CLOSED_EVENT", "cross-referenced": "CROSS_REFERENCED_EVENT", "referenced": "REFERENCED_EVENT",
         "labeled": "LABELED_EVENT", "unlabeled": "UNLABELED_EVENT"}


def sort_key(item: dict[str, Any], order: str) -> tuple[Any, int]:
    """GitHub's order of a listing: the field, then the number (the keyset the GraphQL cursors encode)."""
    key = {"CREATED_AT": "created_at", "UPDATED_AT": "updated_at", "COMMENTS": "comments_count"}[order]
    return item.get(key) or (0 if key == "comments_count" else ""), item["number"]


class QueryError(Exception):
    """An argument GitHub would refuse (e.g. ``first`` above 100)."""


def _cursor(key: Any) -> str:
    return base64.b64encode(json.dumps(["cursor:v2", key]).encode()).decode()


def _after_key(cursor: str | None) -> Any:
    if not cursor:
        return None
    try:
        tag, key = json.loads(base64.b64decode(cursor))
        if tag != "cursor:v2":
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise QueryError(f"`{cursor}` does not appear to be a valid cursor.") from None
    return key


def paginate(items: list[Any], first: int | None, after: str | None, key: Callable[[Any], Any],
             descending: bool = False) -> dict[str, Any]:
    """A GitHub-style connection over sorted ``items``: at most ``first`` (1..100) after the cursor.

    Cursors are keyset cursors, as GitHub's are: they hold the sort key of the last item returned,
    and the next page starts after that key, so items that move or appear while a client pages
    cannot shift others out of its view (an offset cursor would skip one).
    """
    first = 100 if first is None else first
    if not 1 <= first <= 100:
        raise QueryError("Requesting more than 100 records (or fewer than 1) on a connection is not allowed.")
    last = _after_key(after)
    rest = items
    if last is not None:
        last = tuple(last)
        rest = [i for i in items if (tuple(key(i)) < last if descending else tuple(key(i)) > last)]
    chunk = rest[:first]
    return {"totalCount": len(items), "nodes": chunk,
            "pageInfo": {"hasNextPage": len(rest) > len(chunk),
                         "endCursor": _cursor(list(key(chunk[-1]))) if chunk else after}}


def _actor(login: str | None) -> dict[str, str] | None:
    return {"login": login} if login else None


def issue_node(issue: dict[str, Any], comments: list[dict[str, Any]], events: list[dict[str, Any]],
               issue_id: int) -> dict[str, Any]:
    """A stored issue as a GraphQL ``Issue`` source object (connections resolved lazily)."""
    return {
        "number": issue["number"], "title": issue["title"] or "", "body": issue["body"] or "",
        "state": (issue["state"] or "open").upper(), "url": issue["url"], "createdAt": issue["created_at"],
        "stateReason": (issue.get("state_reason") or "").upper() or None,
        "fullDatabaseId": str(issue_id), "databaseId": issue_id,
        "updatedAt": issue["updated_at"], "closedAt": issue["closed_at"], "author": _actor(issue["author"]),
        "_labels": [{"name": n} for n in issue["labels"]],
        "reactionGroups": [{"content": c, "reactors": {"totalCount": issue["reactions"].get(k, 0)}}
                           for c, k in REACTIONS.items()],
        "_comments": comments, "_events": events,
    }


def comment_node(comment: dict[str, Any]) -> dict[str, Any]:
    """``databaseId`` is GitHub's 32-bit Int: an id above 2^31 makes it fail as GitHub's does."""
    cid = comment["comment_id"]
    return {"id": f"IC_{cid}", "databaseId": cid, "fullDatabaseId": str(cid), "author": _actor(comment["author"]),
            "body": comment["body"] or "", "createdAt": comment["created_at"], "updatedAt": comment["updated_at"]}


def _ref(repo: str | None) -> dict[str, str]:
    return {"nameWithOwner": repo or ""}


def event_node(event: dict[str, Any]) -> dict[str, Any]:
    """An ``events`` row (a test fixture) as the timeline item GitHub would give."""
    kind, ref, repo = event["kind"], event["source_ref"], event["source_repo"]
    node: dict[str, Any] = {"id": event["event_id"], "createdAt": event["created_at"], "actor": _actor(event["actor"])}
    source = None
    if event["source_kind"] == "commit":
        source = {"__typename": "Commit", "oid": ref, "repository": _ref(repo)}
    elif event["source_kind"] in ("pull", "issue"):
        source = {"__typename": "PullRequest" if event["source_kind"] == "pull" else "Issue",
                  "number": int(ref), "repository": _ref(repo)}
    if kind == "closed":
        node.update(__typename="ClosedEvent", stateReason=(event["state_reason"] or "").upper() or None, closer=source)
    elif kind == "cross-referenced":
        node.update(__typename="CrossReferencedEvent", willCloseTarget=bool(event["will_close"]), source=source)
    elif kind == "referenced":
        node.update(__typename="ReferencedEvent", commit={"oid": ref, "repository": _ref(repo)},
                    commitRepository=_ref(repo))
    else:
        node.update(__typename="LabeledEvent" if kind == "labeled" else "UnlabeledEvent", label={"name": event["label"]})
    return node


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
        descending = order["direction"] == "DESC"
        items = corpus.issue_list(repo["nameWithOwner"], since=filters.get("since"), order=order["field"],
                                  descending=descending, states=[s.lower() for s in wanted] if wanted else None)
        page = paginate(items, first, after, lambda i: sort_key(i, order["field"]), descending)
        if "nodes" in {f.name.value for n in info.field_nodes for f in n.selection_set.selections}:
            corpus.listed(repo["nameWithOwner"])  # a listing (not just a count): mid-crawl edits may follow
        page["nodes"] = [corpus.issue_node(repo["nameWithOwner"], i) for i in page["nodes"]]
        return page

    def issue(repo: dict[str, Any], info: Any, number: int) -> dict[str, Any] | None:
        found = corpus.find_issue(repo["nameWithOwner"], number)
        return corpus.issue_node(repo["nameWithOwner"], found) if found else None

    def labels(node: dict[str, Any], info: Any, first: int | None = None) -> dict[str, Any]:
        return paginate(node["_labels"], first, None, lambda lab: [lab["name"]])

    def comments(node: dict[str, Any], info: Any, first: int | None = None, after: str | None = None) -> dict:
        page = paginate(node["_comments"], first, after, lambda c: [c["created_at"] or "", c["comment_id"]])
        page["nodes"] = [comment_node(c) for c in page["nodes"]]
        return page

    def timeline(node: dict[str, Any], info: Any, first: int | None = None, after: str | None = None,
                 itemTypes: list[str] | None = None) -> dict:
        events = [e for e in node["_events"] if itemTypes is None or KINDS[e["kind"]] in itemTypes]
        page = paginate(events, first, after, lambda e: [e["created_at"] or "", e["event_id"]])
        page["nodes"] = [event_node(e) for e in page["nodes"]]
        return page

    fields["Query"]["repository"].resolve = repository
    fields["Query"]["rateLimit"].resolve = lambda _, info: info.context["rate_limit"]
    fields["Repository"]["issues"].resolve = issues
    fields["Repository"]["issue"].resolve = issue
    fields["Issue"]["labels"].resolve = labels
    fields["Issue"]["comments"].resolve = comments
    fields["Issue"]["timelineItems"].resolve = timeline
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
