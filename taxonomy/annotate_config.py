"""What Label Studio shows a rater: the labeling config generated from the taxonomy, and each thread as HTML.

The config has one block per dimension of the instrument. Category ids are the stored values
(``alias``), the readable names are what the rater clicks, and the definitions are hover hints.
Root cause is a hierarchical ``Taxonomy`` block: the stage-level group first, then the cause.
Framework is asked once per thread; the other dimensions form a group repeated for each defect
of the thread, the later copies unfolding behind an "Add defect" tick box. A result's
``from_name`` is ``<dimension>`` (thread level) or ``<dimension>_<k>`` (defect k), which is all
:func:`parse_result` needs to read annotations back. Every block ends with "No label"
(:data:`NO_LABEL`): the thread does not decide the dimension. A rater's "No label" is an answer
like any other; an adjudicator's settles a disagreement without a label, as ``none`` does in a
sheet's adjudication.

Thread text is untrusted: every piece is HTML-escaped before it is placed in the page.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: importing the taxonomy loader (and YAML) would slow every taxonomy command's start
    from taxonomy.model import Dimension, Taxonomy

THREAD_DIMENSIONS = ("framework",)
DEFECT_DIMENSIONS = ("stage", "root_cause", "code_error", "manifestation", "impact", "reporter", "same_code", "same_data")
ANNOTATED_DIMENSIONS = (*THREAD_DIMENSIONS, *DEFECT_DIMENSIONS)
# Shown as a tree (stage-level group, then the cause); the others are flat radio buttons whose groups
# (impact's "bad performance") are choices too, since a rater's label may stop there.
HIERARCHICAL_DIMENSIONS = ("root_cause",)
DEFAULT_DEFECT_SLOTS = 3
# The answer "this dimension gets no label" (the thread does not tell), in sheets and in Label Studio; no category is
# spelled so.
NO_LABEL = "none"
_NO_LABEL_NAME = "No label"
_NO_LABEL_HINT = ("The thread does not decide this dimension. An adjudicator's choice settles the raters' disagreement "
                  "without a label.")
OBJECT_NAME = "thread"
_SLOT_NAME = re.compile(r"^(?P<dim>[a-z_]+?)_(?P<k>\d+)$")
_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.S)
_BOTS = frozenset({"stale", "github-actions", "codecov", "dependabot", "mmdet-bot", "allcontributors", "pytorchbot"})
_STYLE = """
.reeng-thread { font-family: sans-serif; font-size: 14px; max-height: 560px; overflow-y: auto; }
.reeng-thread h2 { font-size: 18px; margin: 4px 0 8px; }
.reeng-post { border: 1px solid #d0d7de; border-radius: 6px; margin: 0 0 10px; }
.reeng-meta { background: #f6f8fa; border-bottom: 1px solid #d0d7de; padding: 4px 8px; color: #57606a; }
.reeng-body { padding: 6px 8px; white-space: pre-wrap; overflow-wrap: anywhere; }
.reeng-body pre { background: #f6f8fa; padding: 6px; overflow-x: auto; white-space: pre; font-family: monospace; font-size: 13px; }
"""


def taxonomy_tag(taxonomy: Taxonomy) -> str:
    """The taxonomy's name and version as written on a project: ``jiang2024@1.0.0``."""
    return f"{taxonomy.id}@{taxonomy.version}"


def is_bot(author: str | None) -> bool:
    name = (author or "").lower()
    return name.endswith("[bot]") or name.endswith("-bot") or name in _BOTS


def _body_html(text: str | None) -> str:
    """Prose escaped with its line breaks kept, fenced code blocks as ``<pre><code>``."""
    text = text or ""
    parts, last = [], 0
    for m in _FENCE.finditer(text):
        parts.append(html.escape(text[last:m.start()]))
        parts.append(f"<pre><code>{html.escape(m.group(1))}</code></pre>")
        last = m.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts).strip() or "<em>(empty)</em>"


def _post_html(author: str | None, when: str | None, body: str | None, label: str) -> str:
    meta = f"<b>{html.escape(author or 'unknown')}</b> {html.escape(label)} {html.escape(when or '')}"
    post = f'<div class="reeng-post"><div class="reeng-meta">{meta}</div><div class="reeng-body">{_body_html(body)}</div></div>'
    if label != "opened" and is_bot(author):
        return f"<details><summary>Bot comment by {html.escape(author or '')} ({html.escape(when or '')})</summary>{post}</details>"
    return post


def thread_html(issue: Mapping[str, Any], comments: Iterable[Mapping[str, Any]]) -> str:
    """A thread as a rater reads it: title, opening post, then comments with author and time."""
    title = f"{issue['repo']}#{issue['number']}: {issue.get('title') or ''}"
    posts = [_post_html(issue.get("author"), issue.get("created_at"), issue.get("body"), "opened")]
    posts += [_post_html(c.get("author"), c.get("created_at"), c.get("body"), "commented") for c in comments]
    return f'<div class="reeng-thread"><style>{_STYLE}</style><h2>{html.escape(title)}</h2>{"".join(posts)}</div>'


def _is_hierarchical(dim: Dimension) -> bool:
    return dim.id in HIERARCHICAL_DIMENSIONS


def _choice(parent: ET.Element, dim: Dimension, cat_id: str) -> ET.Element:
    cat = dim.category(cat_id)
    return ET.SubElement(parent, "Choice", value=cat.name, alias=cat.id, hint=cat.definition)


def _block(parent: ET.Element, dim: Dimension, name: str) -> None:
    ET.SubElement(parent, "Header", value=f"{dim.name}: {dim.question}", size="6")
    if _is_hierarchical(dim):
        tag = ET.SubElement(parent, "Taxonomy", name=name, toName=OBJECT_NAME, leafsOnly="false", showFullPath="true")

        def add(node: ET.Element, parent_id: str | None) -> None:
            for cat_id in dim.children(parent_id):
                if dim.category(cat_id).origin != "bucket":
                    add(_choice(node, dim, cat_id), cat_id)

        add(tag, None)
    else:
        tag = ET.SubElement(parent, "Choices", name=name, toName=OBJECT_NAME, choice="single-radio", showInline="true")
        for cat in dim.categories:
            if cat.origin != "bucket":
                _choice(tag, dim, cat.id)
    ET.SubElement(tag, "Choice", value=_NO_LABEL_NAME, alias=NO_LABEL, hint=_NO_LABEL_HINT)


def labeling_config(taxonomy: Taxonomy, defects: int = DEFAULT_DEFECT_SLOTS) -> str:
    """The Label Studio labeling config (XML) for the taxonomy, with ``defects`` defect groups."""
    if defects < 1:
        from reeng.errors import ReengError

        raise ReengError(f"--defects must be at least 1, got {defects}")
    root = ET.Element("View")
    ET.SubElement(root, "Header", value=f"Taxonomy {taxonomy_tag(taxonomy)}: label every defect the thread reports", size="5")
    ET.SubElement(root, "HyperText", name=OBJECT_NAME, value="$thread", inline="true")
    for dim_id in THREAD_DIMENSIONS:
        _block(root, taxonomy.dimension(dim_id), dim_id)
    holder = root
    for k in range(1, defects + 1):
        if k > 1:
            switch = ET.SubElement(holder, "Choices", name=f"add_defect_{k}", toName=OBJECT_NAME, choice="multiple")
            ET.SubElement(switch, "Choice", value=f"Add defect {k}")
            holder = ET.SubElement(holder, "View", visibleWhen="choice-selected", whenTagName=f"add_defect_{k}",
                                   whenChoiceValue=f"Add defect {k}")
        group = ET.SubElement(holder, "View", style="border: 1px solid #c9d1d9; border-radius: 6px; padding: 6px; margin: 8px 0")
        ET.SubElement(group, "Header", value=f"Defect {k}", size="4")
        for dim_id in DEFECT_DIMENSIONS:
            _block(group, taxonomy.dimension(dim_id), f"{dim_id}_{k}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def result_item(taxonomy: Taxonomy, dim_id: str, defect: int | None, label: str, score: float | None = None) -> dict[str, Any]:
    """One Label Studio result (used for pre-annotations) choosing ``label`` for a dimension."""
    dim = taxonomy.dimension(dim_id)
    name = dim_id if defect is None else f"{dim_id}_{defect}"
    if _is_hierarchical(dim):
        kind, value = "taxonomy", [[*reversed(dim.ancestors(label)), label]]
    else:
        kind, value = "choices", [label]
    item: dict[str, Any] = {"from_name": name, "to_name": OBJECT_NAME, "type": kind, "value": {kind: value}}
    if score is not None:
        item["score"] = score
    return item


class OutsideTaxonomy(ValueError):
    """A result whose value no category of its dimension accepts."""

    def __init__(self, control: str, value: str) -> None:
        super().__init__(f"{control}={value!r}")
        self.control, self.value = control, value


def parse_result(taxonomy: Taxonomy, result: Iterable[Mapping[str, Any]]) -> dict[tuple[int, str], str]:
    """An annotation's results as ``{(defect, dimension): category id}``; thread-level answers have defect 0.

    Values are matched through the taxonomy (ids, names or aliases); "No label" is :data:`NO_LABEL`;
    anything else raises :class:`OutsideTaxonomy`. Controls this config does not define
    (``add_defect_k``) are ignored.
    """
    labels: dict[tuple[int, str], str] = {}
    for item in result:
        name = str(item.get("from_name", ""))
        m = _SLOT_NAME.match(name)
        dim_id, defect = (m.group("dim"), int(m.group("k"))) if m else (name, 0)
        if dim_id not in ANNOTATED_DIMENSIONS or (defect == 0) != (dim_id in THREAD_DIMENSIONS):
            continue
        dim = taxonomy.dimension(dim_id)
        value = item.get("value") or {}
        picks = value.get("taxonomy") or value.get("choices") or []
        for pick in picks:
            raw = str(pick[-1] if isinstance(pick, list) else pick)
            if raw.strip().casefold() in (NO_LABEL, _NO_LABEL_NAME.casefold()):
                labels[(defect, dim_id)] = NO_LABEL
                continue
            found = dim.lookup(raw)
            if found is None:
                raise OutsideTaxonomy(name, raw)
            labels[(defect, dim_id)] = found
    return labels
