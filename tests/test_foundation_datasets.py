"""Published files: a configured local copy wins; otherwise a pinned download is checked by SHA-256."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reeng import datasets
from reeng.errors import ReengError


@pytest.fixture
def origin(tmp_path):
    """A local HTTP server standing in for the artifact repository."""
    root = tmp_path / "origin"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _publish(monkeypatch, origin, content: bytes, sha: str) -> None:
    root, url = origin
    (root / "defects.csv").write_bytes(content)
    spec = replace(datasets.FILES["jiang2024-defects"], url=f"{url}/defects.csv", sha256=sha)
    monkeypatch.setitem(datasets.FILES, "jiang2024-defects", spec)


def test_local_copy_is_used_when_configured(monkeypatch, tmp_path):
    local = tmp_path / "data" / "jiang2024-cv-reengineering"
    local.mkdir(parents=True)
    (local / "CV_Reengineeirng_Defects.csv").write_text("x")
    monkeypatch.setenv("REENG_DATA_DIR", str(tmp_path / "data"))
    assert datasets.locate("jiang2024-defects") == local / "CV_Reengineeirng_Defects.csv"


def test_download_is_verified_and_cached(monkeypatch, tmp_path, origin):
    content = b"published bytes"
    _publish(monkeypatch, origin, content, hashlib.sha256(content).hexdigest())
    monkeypatch.delenv("REENG_DATA_DIR", raising=False)
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    path = datasets.locate("jiang2024-defects")
    assert path.read_bytes() == content
    assert path.is_relative_to(tmp_path / "cache")
    (origin[0] / "defects.csv").unlink()  # a second call is served from the cache
    assert datasets.locate("jiang2024-defects") == path


def test_checksum_mismatch_is_an_error_and_nothing_is_cached(monkeypatch, tmp_path, origin):
    _publish(monkeypatch, origin, b"tampered", "0" * 64)
    monkeypatch.delenv("REENG_DATA_DIR", raising=False)
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ReengError, match="SHA-256"):
        datasets.locate("jiang2024-defects")
    assert not any(p.is_file() for p in Path(tmp_path / "cache").rglob("*"))


def test_file_without_public_copy_asks_for_a_local_one(monkeypatch, tmp_path):
    monkeypatch.delenv("REENG_DATA_DIR", raising=False)
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ReengError, match="REENG_DATA_DIR"):
        datasets.locate("jiang2024-kappa-final1")
