"""The local GitHub-compatible server as an HTTP peer: pagination, ETags, GraphQL, faults, CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from miner.server import FaultSpec
from reeng.errors import ReengError
from tests.conftest import run_main
from tests.miner_helpers import ROOT, build_corpus, served


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus") / "corpus.sqlite", {"acme/zoo": 45}, long_thread=3)


def test_rest_pagination_etags_and_rate_limit_headers(corpus):
    with served(corpus, "pulls=5") as url:
        first = requests.get(f"{url}/repos/acme/zoo/issues", params={"state": "all", "per_page": 20}, timeout=10)
        assert first.status_code == 200 and len(first.json()) == 20
        assert set(first.links) == {"next", "last"} and "page=3" in first.links["last"]["url"]
        seen = [i["number"] for i in first.json()]
        page = first
        while "next" in page.links:
            page = requests.get(page.links["next"]["url"], timeout=10)
            seen += [i["number"] for i in page.json()]
        assert sorted(seen) == list(range(1, 51)), "45 issues and 5 pull requests, each once"
        assert sum("pull_request" in i for i in page.json()) >= 1
        remaining = int(first.headers["X-RateLimit-Remaining"])
        again = requests.get(first.url, headers={"If-None-Match": first.headers["ETag"]}, timeout=10)
        assert again.status_code == 304 and again.content == b""
        assert int(again.headers["X-RateLimit-Remaining"]) <= remaining  # 304s spend nothing
        closed = requests.get(f"{url}/repos/acme/zoo/issues", params={"state": "closed", "per_page": 100}, timeout=10)
        assert all(i["state"] == "closed" for i in closed.json())
        assert requests.get(f"{url}/repos/acme/nothing", timeout=10).status_code == 404


def test_graphql_validates_queries_like_github(corpus):
    with served(corpus) as url:
        ok = requests.post(f"{url}/graphql", json={"query": "{ repository(owner: \"acme\", name: \"zoo\") "
                                                   "{ issues(first: 2) { totalCount nodes { number } } } }"}, timeout=10)
        assert ok.json()["data"]["repository"]["issues"]["totalCount"] == 45
        too_many = requests.post(f"{url}/graphql", json={"query": "{ repository(owner: \"acme\", name: \"zoo\") "
                                                         "{ issues(first: 101) { totalCount } } }"}, timeout=10)
        assert "more than 100" in too_many.json()["errors"][0]["message"]
        unknown = requests.post(f"{url}/graphql", json={"query": "{ viewer { login } }"}, timeout=10)
        assert "viewer" in unknown.json()["errors"][0]["message"]
        missing = requests.post(f"{url}/graphql", json={"query": "{ repository(owner: \"x\", name: \"y\") "
                                                        "{ hasIssuesEnabled } }"}, timeout=10)
        assert missing.json()["errors"][0]["type"] == "NOT_FOUND"


def test_fault_spec_parsing():
    spec = FaultSpec.parse("5xx=0.05,secondary403=0.02,secondary429_noretry=0.01,reset=0.01,primary_after=500")
    assert spec.rates == {"5xx": 0.05, "secondary403": 0.02, "secondary429_noretry": 0.01, "reset": 0.01}
    assert spec.primary_after == 500
    with pytest.raises(ReengError, match="unknown key 'bogus'"):
        FaultSpec.parse("bogus=1")
    with pytest.raises(ReengError, match="'5xx=2' is not KEY=VALUE"):
        FaultSpec.parse("5xx=2")
    for negative in ("primary_after=-5", "latency=-1", "primary_reset=-0.5", "seed=-1"):  # taken as given before
        with pytest.raises(ReengError, match=f"'{negative}' is not KEY=VALUE"):
            FaultSpec.parse(negative)



@pytest.mark.parametrize("spec", ["deleted=acme/zoo#abc", "deleted=acme/zoo", "deleted=acme/zoo#3+acme/zoo#x",
                                  "transferred=acme/zoo#abc>acme/other", "transferred=acme/zoo>acme/other"])
def test_a_malformed_issue_in_the_fault_spec_is_one_error_line(corpus, spec, capsys):
    """deleted= and transferred= name issues as OWNER/REPO#N; anything else ended in a ValueError traceback."""
    with pytest.raises(ReengError, match=f"'{spec.replace('+', '[+]')}' is not KEY=VALUE"):
        FaultSpec.parse(spec)
    code, out, err = run_main(["serve-github", "--corpus", str(corpus), "--faults", spec], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and err.startswith("error: fault spec: ") and not out

def test_serve_github_command_announces_its_port(corpus):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "reeng", "serve-github", "--corpus", str(corpus), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        assert requests.get(f"{line.split()[-1]}/repos/acme/zoo", timeout=10).json()["full_name"] == "acme/zoo"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
