"""GitHub's rate-limit rules as the client applies them, with the sleeper injected (no real minutes)."""

from __future__ import annotations

import pytest

from miner.client import GitHubClient, NotFound, Politeness, tokens_from_env
from reeng.errors import ReengError
from tests.miner_helpers import FAKE_TOKEN, build_corpus, served


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus") / "corpus.sqlite", {"acme/zoo": 5})


def client(url, tokens=(FAKE_TOKEN,), **policy):
    waits: list[float] = []
    c = GitHubClient(url, list(tokens), politeness=Politeness(**policy), sleep=waits.append)
    return c, waits


def test_secondary_limit_without_retry_after_waits_a_minute_then_doubles(corpus):
    with served(corpus, "secondary429_noretry=1") as url:
        c, waits = client(url, max_attempts=4)
        with pytest.raises(ReengError, match="gave up after 4 attempts \\(secondary rate limit \\(429\\)\\)"):
            c.get("/repos/acme/zoo")
    assert waits == [60, 120, 240]
    assert c.stats.retries == 3 and c.stats.requests == 4


def test_retry_after_is_honoured(corpus):
    with served(corpus, "secondary403=1,retry_after=7") as url:
        c, waits = client(url, max_attempts=3)
        with pytest.raises(ReengError):
            c.get("/repos/acme/zoo")
    assert waits == [7, 7]


def test_server_errors_back_off_exponentially_and_recover(corpus):
    with served(corpus, "5xx=0.5,seed=4") as url:
        c, waits = client(url, backoff=2, max_attempts=20)
        for _ in range(20):
            assert c.get("/repos/acme/zoo").status == 200
    assert waits and all(w in (2, 4, 8, 16, 32, 64) for w in waits)
    assert c.stats.retries == len(waits)


def test_primary_limit_waits_for_the_reset_and_second_token_avoids_it(corpus):
    with served(corpus, "primary_after=3,primary_reset=1") as url:
        c, waits = client(url)
        c._sleep = __import__("time").sleep  # the reset is one real second away
        for _ in range(5):
            assert c.get("/repos/acme/zoo").status == 200
        assert c.stats.waits >= 1 and c.stats.rate_limit["core"]["limit"] == 3

        rotating, waits = client(url, tokens=(FAKE_TOKEN + "a", FAKE_TOKEN + "b"))
        for _ in range(6):
            assert rotating.get("/repos/acme/zoo").status == 200
    assert waits == [], "two tokens of 3 requests each serve 6 requests without waiting"


def test_max_wait_and_not_found(corpus):
    with served(corpus, "secondary403=1,retry_after=120") as url:
        c, waits = client(url, max_wait=30)
        with pytest.raises(ReengError, match="GitHub asks to wait 120 s, more than --max-wait 30 s"):
            c.get("/repos/acme/zoo", what="acme/zoo")
    assert waits == []
    with served(corpus) as url:
        c, _ = client(url)
        with pytest.raises(NotFound) as err:
            c.get("/repos/acme/none")
        assert err.value.status == 404
        assert c.get("/repos/acme/zoo", etag=c.get("/repos/acme/zoo").headers["etag"]).status == 304
        assert c.stats.not_modified == 1


def test_tokens_come_from_the_environment():
    assert tokens_from_env({"GITHUB_TOKENS": "a, b c", "GITHUB_TOKEN": "z"}) == ["a", "b", "c"]
    assert tokens_from_env({"GITHUB_TOKEN": " z "}) == ["z"]
    assert tokens_from_env({}) == []


def test_graphql_rate_limited_answer_waits_for_the_reset(corpus):
    with served(corpus, "graphql_ratelimited=0.5,seed=2") as url:
        c, waits = client(url, max_attempts=10)
        c._sleep = __import__("time").sleep  # the reset is at most a second away
        for _ in range(4):
            data = c.graphql('query { repository(owner: "acme", name: "zoo") { issues(first: 1) { totalCount } } }', {})
            assert data["repository"]["issues"]["totalCount"] == 5
    assert c.stats.retries >= 1 and c.stats.waits >= 1


def test_a_spent_rest_budget_does_not_hold_up_graphql(corpus):
    with served(corpus, "primary_after=3,primary_reset=600") as url:
        c, waits = client(url)
        for _ in range(3):
            c.get("/repos/acme/zoo")
        assert c.stats.rate_limit["core"]["remaining"] == 0
        data = c.graphql('query { repository(owner: "acme", name: "zoo") { hasIssuesEnabled } }', {})
        assert data["repository"]["hasIssuesEnabled"] is True and waits == []
        with pytest.raises(ReengError, match="more than --max-wait"):
            GitHubClient(url, [FAKE_TOKEN], politeness=Politeness(max_wait=60), sleep=waits.append).get("/repos/acme/zoo")
