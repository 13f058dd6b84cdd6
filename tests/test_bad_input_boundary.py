"""The CLI's one error boundary: one line for every failure, a private log for bugs, no token anywhere."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest

from reeng.cli import COMMANDS
from reeng.errors import ReengError, scrub
from tests.bad_input_helpers import LOG_PATH, error_line, gold_csv
from tests.conftest import ROOT, run_main

CLASSIC = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
FINE_GRAINED = "github_pat_11ABCDEFG0" + "123456789_abcdefghijklmnopqrstuvwxyz"
POOL = ("poolTokenOne_5d2e", "poolTokenTwo_9c1a")
LS_KEY = "lsKey_7f3b9e21d0c4"
SECRETS = (CLASSIC, FINE_GRAINED, *POOL, LS_KEY, "Bearer-opaque-42")

FAILURES = {
    "reeng": lambda: ReengError(f"{CLASSIC}: bad token for https://api.github.com"),
    "bug": lambda: RuntimeError(f"request failed: {{'Authorization': 'token {CLASSIC}'}}, pool {POOL[1]}, "
                                f"key {LS_KEY}, pat {FINE_GRAINED}\nAuthorization: Bearer Bearer-opaque-42"),
    "enospc": lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out/defects.parquet"),
    "epipe": lambda: BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE)),
    "sqlite-full": lambda: sqlite3.OperationalError("database or disk is full"),
    "not-a-store": lambda: sqlite3.DatabaseError("file is not a database"),
    "interrupt": lambda: KeyboardInterrupt(),
}


@click.command("boom")
@click.argument("kind")
def boom(kind: str) -> None:
    """Prints a little, then fails the way KIND says."""
    click.echo("partial output")
    raise FAILURES[kind]()


@pytest.fixture
def cli_with_boom(monkeypatch, tmp_path):
    monkeypatch.setitem(COMMANDS, "boom", (f"{__name__}:boom", "Fail on purpose (tests)."))
    monkeypatch.setenv("REENG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GITHUB_TOKEN", CLASSIC)
    monkeypatch.setenv("GITHUB_TOKENS", ",".join(POOL))
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", LS_KEY)
    return tmp_path / "cache"


def test_expected_failure_is_one_scrubbed_line(cli_with_boom, capsys):
    code, out, err = run_main(["boom", "reeng"], capsys)
    assert code == 2
    assert error_line(err) == "error: [redacted]: bad token for https://api.github.com"


def test_a_bug_is_one_line_and_a_private_log_without_tokens(cli_with_boom, capsys):
    code, out, err = run_main(["boom", "bug"], capsys)
    assert code == 1
    line = error_line(err)
    assert "RuntimeError" in line and "unexpected failure" in line
    log = Path(LOG_PATH.search(line)[1])
    assert log.parent == cli_with_boom / "errors"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text()
    assert "Traceback" in text and "raise FAILURES[kind]()" in text and "reeng boom bug" in text
    for secret in SECRETS:
        assert secret not in err and secret not in text, secret
    assert "[redacted]" in text


@pytest.mark.parametrize("kind, words, code", [
    ("enospc", ("no space left", "/data/out/defects.parquet"), 2),
    ("epipe", ("broken pipe",), 2),
    ("sqlite-full", ("disk is full",), 2),
    ("not-a-store", ("not an SQLite database",), 2),
    ("interrupt", ("aborted",), 130),
])
def test_environment_failures_are_one_clear_line(cli_with_boom, capsys, kind, words, code):
    got, out, err = run_main(["boom", kind], capsys)
    assert got == code
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(w in lines[0] for w in words), lines[0]


def test_usage_errors_are_one_line(capsys):
    code, _, err = run_main(["classify", "predict", "--threshold", "abc", "--store", "s.db"], capsys)
    assert code == 2 and "--threshold" in error_line(err)
    code, _, err = run_main(["no-such-command"], capsys)
    assert code == 2 and "no-such-command" in error_line(err)
    code, out, err = run_main([], capsys)  # not an error to squash into a line: the help, as click shows it
    assert "Usage: reeng [OPTIONS] COMMAND" in out + err and "\nCommands:" in out + err


@pytest.mark.parametrize("args", [["mine", "acme/det", "--min-interval", "-1"], ["mine", "acme/det", "--max-wait", "-5"],
                                  ["mine", "acme/det", "--backoff", "-1"], ["mine", "acme/det", "--secondary-wait", "-1"],
                                  ["annotate", "serve", "--port", "70000"], ["annotate", "serve", "--port", "0"]])
def test_out_of_range_numbers_are_one_line_before_any_work(args, tmp_path, capsys):
    """--min-interval -1 used to end in PyGithub's AssertionError; a negative wait or backoff was taken as given; a port
    outside 1..65535 started Label Studio, which then failed."""
    code, out, err = run_main([*args, "--store", str(tmp_path / "s.db")] if args[0] == "mine" else args, capsys)
    assert code == 2 and not out and f"Invalid value for '{args[-2]}'" in error_line(err)
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_numpy_cannot_take_is_one_line(seed, tmp_path, capsys):
    """reuse's --seed -1 ended in scikit-learn's InvalidParameterError (exit 1, 'please report it'); a study's too."""
    for command in (["reuse", "decompose"], ["reuse", "inherit"], ["reuse", "seam"], ["reuse", "train-source"]):
        code, out, err = run_main([*command, "--setting", "tiny", "--seed", seed, "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and f"Invalid value for '--seed': {seed} is not in the range" in error_line(err), (command, err)
    code, out, err = run_main(["reuse", "run", "--setting", "tiny", "--seeds", f"0,{seed}"], capsys)
    assert code == 2 and error_line(err) == f"error: --seeds '0,{seed}': give seeds between 0 and 4294967295, such as 0,1,2"
    (tmp_path / "study.yaml").write_text(f"reuse:\n  seeds: [{seed}]\n")
    code, out, err = run_main(["study", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "reuse.seeds.0: should be" in error_line(err)
    assert not (tmp_path / "o").exists()


def test_politeness_refuses_negative_seconds():
    from miner.client import Politeness

    with pytest.raises(ReengError, match="min_interval -1: must be 0 or more seconds"):
        Politeness(min_interval=-1)
    with pytest.raises(ReengError, match="max_attempts 0"):
        Politeness(max_attempts=0)
    assert Politeness(min_interval=0).min_interval == 0


def test_scrub_knows_the_token_shapes(monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    text = (f"x {CLASSIC} y {FINE_GRAINED} Authorization: token abc123def456 "
            "https://user:hunter2pass@example.org/?access_token=zzz999yyy")
    clean = scrub(text)
    for secret in (CLASSIC, FINE_GRAINED, "abc123def456", "hunter2pass", "zzz999yyy"):
        assert secret not in clean
    assert clean.startswith("x [redacted] y [redacted] Authorization: [redacted]")


@pytest.mark.parametrize("args", [
    ["taxonomy", "show", "--json"],
    ["taxonomy", "show"],
    ["gold", "lint", "GOLD"],
    ["gold", "lint", "GOLD", "--json"],
])
def test_full_stdout_is_one_error_line(tmp_path, args):
    gold = gold_csv(tmp_path / "gold.csv", rows=3)
    args = [str(gold) if a == "GOLD" else a for a in args]
    result = _to_dev_full(args, tmp_path)
    assert result.returncode == 2
    assert "no space left" in error_line(result.stderr)


def test_full_stdout_agreement(tmp_path, jiang_dir):
    from reeng.datasets import locate

    a, b = locate("jiang2024-kappa-final1"), locate("jiang2024-kappa-final2")
    result = _to_dev_full(["agreement", str(a), str(b), "--json"], tmp_path)
    assert result.returncode == 2
    assert "no space left" in error_line(result.stderr)


def _to_dev_full(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REENG_CACHE_DIR": str(tmp_path / "cache")}
    with open("/dev/full", "w") as full:
        return subprocess.run([sys.executable, "-m", "reeng", *args], stdout=full, stderr=subprocess.PIPE,
                              text=True, env=env, timeout=120)


def test_closed_pipe_is_one_line(tmp_path):
    """``reeng taxonomy show --json | head -c 0``: the reader is gone before the output comes."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        result = subprocess.run([sys.executable, "-m", "reeng", "taxonomy", "show", "--json"], stdout=write_end,
                                stderr=subprocess.PIPE, env=env, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.returncode == 2
    assert "broken pipe" in error_line(result.stderr)
