"""Published datasets the toolkit reads, each pinned to a commit and a SHA-256.

A researcher with a local copy sets ``REENG_DATA_DIR``; anyone else gets the same bytes
downloaded from the public origin and checked, so results never depend on which copy was read.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reeng.errors import ReengError
from reeng.settings import cache_dir, data_dir

JIANG_ARTIFACT = "https://raw.githubusercontent.com/Wenxin-Jiang/EMSE-CVReengineering-Artifact/4cb1d7e/Defect-study"
DENCHMARK_REPO = "https://github.com/RosePasta/Denchmark_BRs"


@dataclass(frozen=True)
class PublishedFile:
    """One file of a published dataset: where it sits in a data folder and where it comes from."""

    name: str
    relpath: str
    sha256: str
    url: str | None  # None: no public copy in this exact form (it must be configured locally)
    note: str = ""


FILES: dict[str, PublishedFile] = {
    f.name: f
    for f in (
        PublishedFile(
            "jiang2024-defects",
            "jiang2024-cv-reengineering/CV_Reengineeirng_Defects.csv",
            "17d4d6727d74d3c36536441abf0632bbcea45065a28214c05e31872911974592",
            f"{JIANG_ARTIFACT}/CV_Reengineeirng_Defects.csv",
        ),
        PublishedFile(
            "jiang2024-non-reengineering",
            "jiang2024-cv-reengineering/Non_Reengineering_Defects.csv",
            "f93fc04482e321dbf4bc84fd48eacae5f220affcc721d7d19c41d83fade6ff5a",
            f"{JIANG_ARTIFACT}/Non_Reengineering_Defects.csv",
        ),
        PublishedFile(
            "jiang2024-kappa-final1",
            "jiang2024-cv-reengineering/kappa_Final1.csv",
            "8ea1c0914a6ac08694dca7e1bfe0ca902e7f66add7e2ac70b1b72924f28c8698",
            None,
            "exported from the artifact's 'Cohen's Kappa Calculation.xlsx', sheet Final1",
        ),
        PublishedFile(
            "jiang2024-kappa-final2",
            "jiang2024-cv-reengineering/kappa_Final2.csv",
            "0eaedf91b4d0752e7e9f7b35b2577e667186960057a30dd32b15324a915162a2",
            None,
            "exported from the artifact's 'Cohen's Kappa Calculation.xlsx', sheet Final2",
        ),
        PublishedFile(
            "denchmark-bugreports",
            "denchmark/denchmark_bugreports.tar.xz",
            "7048d6637db243f7df3b53767b7180fdf09f5a84eb25021d8bbe3a48e82ad570",
            None,
            f"{DENCHMARK_REPO} @4f40b47, Generator/data/stage2_bugreports/ packed as tar.xz",
        ),
    )
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(name: str) -> Path:
    """Path of a published file: the configured local copy, else a verified download."""
    spec = FILES[name]
    root = data_dir()
    if root is not None:
        local = root / spec.relpath
        if local.is_file():
            return local
    cached = cache_dir() / spec.relpath
    if cached.is_file() and sha256_file(cached) == spec.sha256:
        return cached
    if spec.url is None:
        raise ReengError(
            f"{spec.relpath} is not available: set REENG_DATA_DIR to a folder holding it ({spec.note})"
        )
    return _download(spec, cached)


def _download(spec: PublishedFile, target: Path) -> Path:
    import requests  # only when a download is needed: keeps start-up light

    try:
        response = requests.get(spec.url, timeout=60)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise ReengError(
            f"cannot download {spec.relpath} ({type(exc).__name__}); set REENG_DATA_DIR to a local copy"
        ) from None
    got = hashlib.sha256(response.content).hexdigest()
    if got != spec.sha256:
        raise ReengError(f"downloaded {spec.relpath} has SHA-256 {got}, expected {spec.sha256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(response.content)
    Path(tmp.name).replace(target)
    return target
