"""The taxonomy as typed objects, loaded from the versioned YAML shipped in the package.

Everything that speaks in categories (gold import, agreement, the classifier, the analysis
tables) goes through :func:`load_taxonomy` and :meth:`Dimension.normalize`, so a spelling in the
data maps to one stable id in one place.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from reeng.errors import ReengError

DEFAULT_TAXONOMY = "jiang2024"
ORIGINS = ("instrument", "data", "bucket", "group")


class UnknownLabel(ReengError):
    """A raw label that no category of the dimension accepts."""

    def __init__(self, dimension: str, value: str) -> None:
        super().__init__(f"unknown {dimension} label {value!r}")
        self.dimension = dimension
        self.value = value


def label_key(raw: str) -> str:
    """Reduce a raw label to the form aliases are compared in.

    Spreadsheets leave control characters (Excel writes a backspace as ``_x0008_``), odd
    dashes, repeated and trailing spaces; none of those should make a new category.
    """
    text = re.sub(r"\s+", " ", raw.replace("_x0008_", ""))
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = text.replace("\u2013", "-").replace("\u2014", "-")
    return re.sub(r"\s+", " ", text).strip().casefold()


@dataclass(frozen=True)
class Category:
    """One category of a dimension, with its place in the hierarchy."""

    id: str
    name: str
    origin: str
    definition: str
    aliases: tuple[str, ...] = ()
    parent: str | None = None

    @property
    def is_label(self) -> bool:
        """True for categories a defect is counted under (not groups, not buckets)."""
        return self.origin in ("instrument", "data")


@dataclass(frozen=True)
class Dimension:
    """A labeling question with its categories, in the taxonomy's order."""

    id: str
    name: str
    question: str
    categories: tuple[Category, ...]
    _by_key: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for cat in self.categories:
            for spelling in (cat.id, cat.name, *cat.aliases):
                key = label_key(spelling)
                owner = self._by_key.setdefault(key, cat.id)
                if owner != cat.id:
                    raise ValueError(f"{self.id}: {spelling!r} names both {owner} and {cat.id}")

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.categories]

    def category(self, cat_id: str) -> Category:
        for cat in self.categories:
            if cat.id == cat_id:
                return cat
        raise KeyError(f"{self.id} has no category {cat_id!r}")

    def lookup(self, raw: str) -> str | None:
        """The category id for a raw spelling, or None when nothing matches."""
        return self._by_key.get(label_key(raw))

    def normalize(self, raw: str) -> str:
        """The category id for a raw spelling; :class:`UnknownLabel` when nothing matches."""
        found = self.lookup(raw)
        if found is None:
            raise UnknownLabel(self.id, raw)
        return found

    def children(self, cat_id: str | None) -> list[str]:
        return [c.id for c in self.categories if c.parent == cat_id]

    def ancestors(self, cat_id: str) -> list[str]:
        """Parents from the nearest up, so a leaf can be rolled up to any level."""
        chain: list[str] = []
        parent = self.category(cat_id).parent
        while parent is not None:
            chain.append(parent)
            parent = self.category(parent).parent
        return chain


@dataclass(frozen=True)
class Taxonomy:
    """A versioned set of dimensions."""

    id: str
    version: str
    title: str
    source: str
    dimensions: tuple[Dimension, ...]

    def dimension(self, dim_id: str) -> Dimension:
        for dim in self.dimensions:
            if dim.id == dim_id:
                return dim
        known = ", ".join(d.id for d in self.dimensions)
        raise ReengError(f"unknown dimension {dim_id!r} (known: {known})")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``reeng taxonomy show --json``."""
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "source": self.source,
            "dimensions": [
                {
                    "id": d.id,
                    "name": d.name,
                    "question": d.question,
                    "categories": [
                        {
                            "id": c.id,
                            "name": c.name,
                            "origin": c.origin,
                            "parent": c.parent,
                            "definition": c.definition,
                            "aliases": list(c.aliases),
                        }
                        for c in d.categories
                    ],
                }
                for d in self.dimensions
            ],
        }


def _category(raw: dict[str, Any], dim_id: str) -> Category:
    origin = raw.get("origin", "instrument")
    if origin not in ORIGINS:
        raise ValueError(f"{dim_id}.{raw['id']}: origin {origin!r} not in {ORIGINS}")
    return Category(
        id=str(raw["id"]),
        name=str(raw["name"]),
        origin=origin,
        definition=" ".join(str(raw["definition"]).split()),
        aliases=tuple(str(a) for a in raw.get("aliases", ())),
        parent=raw.get("parent"),
    )


@cache
def load_taxonomy(name: str = DEFAULT_TAXONOMY) -> Taxonomy:
    """Load a taxonomy shipped in ``taxonomy/data/<name>.yaml`` (cached: it never changes at run time)."""
    path = resources.files("taxonomy") / "data" / f"{name}.yaml"
    if not path.is_file():
        raise ReengError(f"no taxonomy named {name!r} is shipped")
    raw = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    dims = []
    for d in raw["dimensions"]:
        cats = tuple(_category(c, d["id"]) for c in d["categories"])
        ids = [c.id for c in cats]
        for c in cats:
            if c.parent is not None and c.parent not in ids:
                raise ValueError(f"{d['id']}.{c.id}: parent {c.parent!r} is not a category")
        dims.append(Dimension(id=d["id"], name=d["name"], question=" ".join(d["question"].split()), categories=cats))
    return Taxonomy(
        id=raw["id"],
        version=str(raw["version"]),
        title=raw["title"],
        source=" ".join(raw["source"].split()),
        dimensions=tuple(dims),
    )
