"""Writers: a destination that cannot be one is refused, a killed run's staging copy is cleaned up,
outputs get the user's umask, and a full disk is one error line with nothing left behind."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reeng.errors import ReengError
from reeng.outputs import clean_stale, staged_dir, staged_file
from tests.bad_input_helpers import error_line, gold_csv, nothing_beside
from tests.conftest import ROOT, run_main


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_an_existing_file_is_not_an_output_folder(tmp_path, capsys):
    gold = gold_csv(tmp_path / "gold.csv")
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    before = _listing(tmp_path)
    code, _, err = run_main(["gold", "import", str(gold), "--out", str(taken)], capsys)
    assert code == 2 and "exists and is not a folder" in error_line(err)
    assert taken.read_text() == "keep me" and _listing(tmp_path) == before


def test_dev_full_is_not_an_output_folder(tmp_path, capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    before = _listing(Path("/dev"))
    code, _, err = run_main(["gold", "import", str(gold_csv(tmp_path / "gold.csv")), "--out", "/dev/full"], capsys)
    assert code == 2 and "/dev/full: exists and is not a folder" in error_line(err)
    assert _listing(Path("/dev")) == before
    with pytest.raises(ReengError, match="not a regular file"):
        with staged_file(Path("/dev/full")):
            pass
    assert _listing(Path("/dev")) == before


def test_a_folder_or_a_file_in_the_way_is_refused(tmp_path):
    with pytest.raises(ReengError, match="is a folder"):
        with staged_file(tmp_path):
            pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(ReengError, match="exists and is not a folder"):
        with staged_dir(tmp_path / "file" / "sub" / "out"):
            pass
    assert _listing(tmp_path) == {"file"}


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_outputs_get_the_users_umask(tmp_path, umask_027):
    with staged_file(tmp_path / "sheet.xlsx") as tmp:
        tmp.write_bytes(b"x")
    assert stat.S_IMODE((tmp_path / "sheet.xlsx").stat().st_mode) == 0o640
    with staged_dir(tmp_path / "out") as staging:
        assert stat.S_IMODE(staging.stat().st_mode) == 0o750
        (staging / "a.txt").write_text("a")
    assert stat.S_IMODE((tmp_path / "out" / "a.txt").stat().st_mode) == 0o640


HOLD = """
import sys, time
from pathlib import Path
from reeng.outputs import {helper}
with {helper}(Path(sys.argv[1])) as staging:
    {write}
    print("staged", flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("helper, write", [("staged_dir", "(staging / 'half.txt').write_text('half')"),
                                           ("staged_file", "staging.write_text('half')")])
def test_a_killed_runs_staging_copy_is_cleaned_by_the_next_run(tmp_path, helper, write):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(helper=helper, write=write), str(out)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "staged"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert len(left) == 1 and f"reeng-{proc.pid}@" in left[0].name
    with (staged_dir if helper == "staged_dir" else staged_file)(out) as staging:
        assert not left[0].exists()
        if helper == "staged_dir":
            (staging / "whole.txt").write_text("whole")
        else:
            staging.write_text("whole")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_only_stale_staging_copies_are_removed(tmp_path):
    """Removed: this host's copies whose process is gone. Kept: a live process's, another host's, others'."""
    from reeng.outputs import _HOST

    gone = _dead_pid()
    live = tmp_path / f".out.reeng-{os.getpid()}@{_HOST}.abc"
    stale = tmp_path / f".out.reeng-{gone}@{_HOST}.def"
    elsewhere = tmp_path / f".out.reeng-{gone}@another_host.ghi"
    unrelated = tmp_path / ".out.backup"
    for path in (live, stale, elsewhere, unrelated):
        path.mkdir()
    assert clean_stale(tmp_path / "out") == [stale]
    assert live.exists() and elsewhere.exists() and unrelated.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_study_is_cleaned_by_the_next_study(tmp_path, jiang_dir):
    out = tmp_path / "study"
    args = [sys.executable, "-m", "reeng", "study", "--out", str(out), "--stage", "gold", "--stage", "lint"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REENG_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".study.") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "the study ended before it could be killed"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".study.")]
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".study.")]
    assert (out / "summary.json").is_file()


def test_disk_full_simulated_is_one_line_and_nothing_written(tmp_path, capsys, monkeypatch):
    """ENOSPC raised by the writer (simulated; the tmpfs test below fills a real disk where mounting is allowed)."""
    import taxonomy.gold

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(taxonomy.gold, "write_table", full)
    out = tmp_path / "out"
    code, _, err = run_main(["gold", "import", str(gold_csv(tmp_path / "gold.csv")), "--out", str(out)], capsys)
    assert code == 2 and "no space left on the device" in error_line(err)
    nothing_beside(out)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 192 KiB tmpfs (needs root and permission to mount; skipped otherwise)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_real_disk_full_gold_import(tmp_path, capsys, tiny_disk):
    gold = gold_csv(tmp_path / "gold.csv", rows=3000)
    out = tiny_disk / "out"
    code, _, err = run_main(["gold", "import", str(gold), "--out", str(out)], capsys)
    assert code == 2 and "no space left on the device" in error_line(err)
    assert list(tiny_disk.iterdir()) == []


def test_real_disk_full_store(tmp_path, capsys, tiny_disk):
    from tests.miner_helpers import build_corpus, export_text

    export_text(build_corpus(tmp_path / "corpus.sqlite", {"acme/detector": 300}, long_thread=2), tmp_path / "export")
    code, _, err = run_main(["import", "jsonl", str(tmp_path / "export"), "--store", str(tiny_disk / "s.db")], capsys)
    assert code == 2
    line = error_line(err)
    assert "disk is full" in line or "no space left" in line, line


def test_every_csv_of_thread_text_is_safe_in_a_spreadsheet(tmp_path, capsys):
    """A title, body or login that a spreadsheet would run as a formula (=HYPERLINK..., +1+2, -2+3, @SUM) is written
    with a leading ' to CSV: `reeng export`, a release's data/*.csv (its Parquet twin keeps the text, and the release
    validates), and `annotate import`'s disagreements, whose adjudicated copy still reads back to the sheets' issues.
    Before, each CSV held the cells as they came."""
    import pandas as pd

    from miner.store import open_store, save_thread

    hostile = {"title": '=HYPERLINK("http://evil","x")', "body": "+1+2 CUDA out of memory", "author": "@SUM(A1)"}
    conn = open_store(tmp_path / "s.db")
    save_thread(conn, {"repo": "acme/det", "number": 1, **hostile, "created_at": "2024-01-01T00:00:00Z",
                       "comments": [{"comment_id": 5, "author": "someone", "body": "-2+3 error", "created_at": "2024-01-02T00:00:00Z"}]},
                source="test")
    conn.commit()
    conn.close()
    code, _, err = run_main(["export", "--store", str(tmp_path / "s.db"), "--format", "csv", "--out", str(tmp_path / "x")], capsys)
    assert code == 0, err
    issues = pd.read_csv(tmp_path / "x" / "issues.csv", dtype=str)
    assert issues.loc[0, ["title", "body", "author"]].tolist() == [f"'{v}" for v in hostile.values()]
    assert pd.read_csv(tmp_path / "x" / "comments.csv", dtype=str).loc[0, "body"] == "'-2+3 error"

    code, _, err = run_main(["release", "--store", str(tmp_path / "s.db"), "--out", str(tmp_path / "r"), "--keep-identities"],
                            capsys)
    assert code == 0, err
    csv_title = pd.read_csv(tmp_path / "r" / "data" / "issues.csv", dtype=str).loc[0, "title"]
    assert csv_title == "'" + hostile["title"]
    assert pd.read_parquet(tmp_path / "r" / "data" / "issues.parquet").loc[0, "title"] == hostile["title"]
    code, _, err = run_main(["release", "validate", str(tmp_path / "r")], capsys)
    assert code == 0, err
    assert "has a leading `'`" in (tmp_path / "r" / "README.md").read_text()  # the datasheet tells its readers

    urls = [hostile["title"], "https://github.com/acme/det/issues/2"]
    pd.DataFrame({"URL": urls, "Impact": ["Crash", "Hang"]}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"URL": urls, "Impact": ["Hang", "Hang"]}).to_csv(tmp_path / "b.csv", index=False)
    code, _, err = run_main(["annotate", "import", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out",
                             str(tmp_path / "adj")], capsys)
    assert code == 0, err
    disagreements = pd.read_csv(tmp_path / "adj" / "disagreements.csv", dtype=str)
    assert disagreements["issue"].tolist() == ["'" + hostile["title"]]
    disagreements.assign(adjudicated="crash").to_csv(tmp_path / "done.csv", index=False)
    code, _, err = run_main(["annotate", "import", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out",
                             str(tmp_path / "adj2"), "--adjudicated", str(tmp_path / "done.csv")], capsys)
    assert code == 0, err
    labels = pd.read_csv(tmp_path / "adj2" / "labels.csv", dtype=str)
    assert labels[labels["dimension"] == "impact"]["label"].tolist() == ["crash", "hang"]
