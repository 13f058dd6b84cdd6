"""Synthetic defect tables in the normalized schema, for benchmarks and tests without shared data.

Labels are drawn per dimension from the taxonomy's label categories with skewed, seeded
weights; ``manifestation`` depends on ``stage`` so cross-tables carry a real association.
Nothing here imitates the study's numbers: those come only from its published data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.tables import LABEL_DIMENSIONS
from taxonomy.model import load_taxonomy


def synthetic_defects(n: int, seed: int = 0, provenance: str = "synthetic:adjudicated") -> pd.DataFrame:
    """``n`` defect rows over ``max(1, n // 40)`` repositories, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    tax = load_taxonomy()
    repos = max(1, n // 40)
    owner = rng.integers(0, repos, n)
    frame = pd.DataFrame({
        "owner": [f"owner{o}" for o in owner],
        "repo": [f"model{o}" for o in owner],
        "number": rng.integers(1, 5000, n),
    })
    frame["issue_url"] = "https://github.com/" + frame["owner"] + "/" + frame["repo"] + "/issues/" + frame["number"].astype(str)
    frame["defect_index"] = frame.groupby("issue_url").cumcount() + 1
    for dim_id in LABEL_DIMENSIONS:
        cats = [c.id for c in tax.dimension(dim_id).categories if c.is_label or c.origin == "bucket"]
        weights = rng.dirichlet(np.full(len(cats), 0.8))
        frame[dim_id] = rng.choice(cats, size=n, p=weights)
    stage_shift = {s: i for i, s in enumerate(tax.dimension("stage").ids)}
    manifest = tax.dimension("manifestation").ids
    frame["manifestation"] = [manifest[(stage_shift[s] + int(r)) % len(manifest)]
                              for s, r in zip(frame["stage"], rng.integers(0, 2, n))]
    frame["provenance"] = provenance
    return frame
