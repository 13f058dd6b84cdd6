"""From a store to findings: `reeng analyze --store`, samples, probabilities, human labels, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.store_defects import store_machine_defects
from analysis.synthetic import synthetic_defects
from miner.store import open_store, save_thread
from tests.analysis_helpers import gold_eval_document, make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    truth = make_store(root / "s.db")
    return root, truth


def test_machine_table_carries_model_provenance_probability_and_filter(store):
    root, truth = store
    table = store_machine_defects(root / "s.db")
    assert set(table["provenance"]) == {"model:builtin@1"}
    assert table["stage_probability"].between(0, 1).all()
    features = truth[truth["number"] % 17 == 0]
    assert not set(features["issue_url"]) & set(table["issue_url"]), "the filter's feature requests are not defects"
    assert len(table) == len(truth) - len(features)
    sampled = store_machine_defects(root / "s.db", sample=1)
    assert 0 < len(sampled) <= len(truth) // 3
    confident = store_machine_defects(root / "s.db", min_probability=0.8)
    assert confident["stage"].isna().sum() > table["stage"].isna().sum()
    assert confident.loc[confident["stage"].notna(), "stage_probability"].min() >= 0.8


def test_analyze_store_with_human_labels_reports_three_intervals(store, reeng, tmp_path):
    root, truth = store
    human = truth[truth["number"] % 17 != 0].iloc[-80:].copy()  # outside make_store's sample 1 (its first third)
    human["provenance"] = "lab:adjudicated"
    human.to_csv(tmp_path / "human.csv", index=False)
    out = tmp_path / "findings"
    run = reeng("analyze", "--store", str(root / "s.db"), "--human", str(tmp_path / "human.csv"), "--out", str(out),
               "--formats", "png")
    assert run.returncode == 0, run.stderr
    assert "(PPI)" in run.stdout and "warning:" not in run.stderr
    ppi = json.loads((out / "ppi.json").read_text())
    row = ppi["marginals"]["stage"][0]
    assert {"machine", "human", "ppi"} <= set(row)
    html = (out / "report.html").read_text()
    assert "prediction-powered inference" in html and "machine only" in html
    n = len(store_machine_defects(root / "s.db"))
    assert (f"<strong>Machine labels.</strong> {n} of the {n} defects are labeled by a classifier (<code>builtin@1</code>)"
            in html and "corrects the shares for its errors" in html)
    provenance = json.loads((out / "provenance.json").read_text())
    assert any(i["path"].endswith("s.db") for i in provenance["inputs"])


def test_ppi_warns_when_the_active_learning_queue_chose_human_labeled_threads(reeng, tmp_path):
    """Threads handed out by `annotate push --queue` are the model's hardest, not a random sample: analyze --human
    store still runs, and says so once on the terminal, in ppi.json and in the report."""
    from taxonomy.annotate import record_queued, store_labels

    truth = make_store(tmp_path / "q.db", n=120)
    labeled = truth[truth["number"] % 17 != 0].iloc[-30:]  # outside make_store's sample 1 (its first third)
    rows = [{"issue": url, "defect_index": 1, "dimension": "stage", "label": stage, "provenance": "agreed:a|b"}
            for url, stage in zip(labeled["issue_url"], labeled["stage"])]
    conn = open_store(tmp_path / "q.db", create=False)
    store_labels(conn, pd.DataFrame(rows))
    with conn:
        record_queued(conn, [(f"{o}/{r}", int(n)) for o, r, n in labeled[["owner", "repo", "number"]].iloc[:8].itertuples(index=False)],
                      "annotate push --queue: test")
    conn.close()
    out = tmp_path / "findings"
    run = reeng("analyze", "--store", str(tmp_path / "q.db"), "--human", "store", "--out", str(out), "--formats", "png")
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "8 of the 30 human-labeled threads were chosen by the active-learning queue" in warned[0]
    assert "8 of the 30" in json.loads((out / "ppi.json").read_text())["warning"]
    assert "**Warning:** 8 of the 30" in (out / "report.md").read_text()


def test_ppi_warns_of_labels_on_threads_taken_from_the_printed_queue(reeng, tmp_path):
    """Threads hand-picked from the list `annotate queue` prints are as queue-chosen as those push --queue hands out:
    the command records its list, says so, and analyze --human store warns of their labels."""
    from taxonomy.annotate import store_labels

    truth = make_store(tmp_path / "q.db", n=120)
    listed = reeng("annotate", "queue", "--store", str(tmp_path / "q.db"), "-n", "12")
    assert listed.returncode == 0, listed.stderr
    assert "12 threads recorded as queue-chosen" in listed.stderr and "analyze --human store warns" in listed.stderr
    truth["key"] = truth["owner"] + "/" + truth["repo"] + "#" + truth["number"].astype(str)
    picked = truth[truth["key"].isin([line.split()[0] for line in listed.stdout.splitlines()])]
    assert len(picked) == 12
    picked = picked[picked["number"] % 17 != 0]  # the filter's feature requests are no defects to label
    random = truth[(truth["number"] % 17 != 0) & ~truth["key"].isin(picked["key"])].iloc[-5:]
    labeled = pd.concat([picked, random])
    conn = open_store(tmp_path / "q.db", create=False)
    store_labels(conn, pd.DataFrame([{"issue": url, "defect_index": 1, "dimension": "stage", "label": stage,
                                      "provenance": "agreed:a|b"} for url, stage in zip(labeled["issue_url"], labeled["stage"])]))
    conn.close()
    run = reeng("analyze", "--store", str(tmp_path / "q.db"), "--human", "store", "--out", str(tmp_path / "findings"),
                "--formats", "png")
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    expected = f"{len(picked)} of the {len(picked) + 5} human-labeled threads were chosen by the active-learning queue"
    assert len(warned) == 1 and expected in warned[0] and "annotate queue" in warned[0]


def test_a_report_of_machine_labels_says_so_and_how_to_check_them(store, reeng, tmp_path):
    """Machine labels are named as such above every interval, with where their measured agreement is (or that it
    was not given) and how to correct the shares; a table of human labels gets no such notice."""
    root, truth = store
    (tmp_path / "gold_eval.json").write_text(json.dumps(gold_eval_document()))
    human = truth.assign(provenance="lab:adjudicated")
    human.to_csv(tmp_path / "human.csv", index=False)
    for name, args, expected in (
            ("plain", ["--store", str(root / "s.db")], ["was not given to this report (`--gold-eval F`", "(`--human`)"]),
            ("checked", ["--store", str(root / "s.db"), "--gold-eval", str(tmp_path / "gold_eval.json")],
             ['is under "Classifier vs human labels"', "Development set: 3 defects"]),
            ("human", ["--defects", str(tmp_path / "human.csv")], [])):
        run = reeng("analyze", *args, "--out", str(tmp_path / name), "--formats", "png")
        assert run.returncode == 0, run.stderr
        md = (tmp_path / name / "report.md").read_text()
        assert ("**Machine labels.**" in md) == bool(expected) and all(e in md for e in expected), (name, md[:900])


@pytest.mark.parametrize("case", ["empty_store", "no_predictions", "unknown_sample", "human_outside", "out_is_file",
                                  "abstained"])
def test_bad_input_is_one_error_line_and_nothing_written(case, store, reeng, tmp_path):
    root, truth = store
    db, out = root / "s.db", tmp_path / "out"
    extra: list[str] = []
    expected = ""
    if case == "empty_store":  # used to say "no predictions (label it first)", and labeling it then said "no threads"
        db = tmp_path / "empty.db"
        open_store(db).close()
        expected = "the store holds no threads (mine or import some first)"
    elif case == "no_predictions":
        db = tmp_path / "unlabeled.db"
        conn = open_store(db)
        save_thread(conn, {"repo": "a/b", "number": 1, "title": "t", "body": "b", "state": "closed", "comments": []},
                    source="test")
        conn.close()
        expected = "no predictions"
    elif case == "unknown_sample":
        extra, expected = ["--sample", "99"], "no sample 99"
    elif case == "human_outside":
        other = synthetic_defects(30, seed=99)
        other["issue_url"] = other["issue_url"].str.replace("owner", "stranger")
        other.to_csv(tmp_path / "h.csv", index=False)
        extra, expected = ["--human", str(tmp_path / "h.csv")], "not in the machine-labeled corpus"
    elif case == "out_is_file":
        out.write_text("keep me")
        expected = "is not a folder"
    elif case == "abstained":
        db = tmp_path / "abstained.db"
        make_store(db, n=40, abstain_all=True)
        expected = "abstained"
    run = reeng("analyze", "--store", str(db), "--out", str(out), "--formats", "png", *extra)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith("error:") and expected in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    if case == "out_is_file":
        assert out.read_text() == "keep me"
    else:
        assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.")]


def test_the_report_says_how_the_filter_shaped_the_corpus_and_which_intervals_it_leaves_out(store, reeng, tmp_path):
    """A report of a mined store used to open with "N defects" alone: nothing said how many threads the store
    held, how many the filter dropped and why, or that 6 repositories are too few for intervals by repository
    (those intervals were then the repositories' own shares, narrower than Wilson's)."""
    root, truth = store
    features = int((truth["number"] % 17 == 0).sum())
    run = reeng("analyze", "--store", str(root / "s.db"), "--out", str(tmp_path / "out"), "--formats", "png")
    assert run.returncode == 0, run.stderr
    corpus = json.loads((tmp_path / "out" / "tables.json").read_text())["corpus"]
    assert corpus == {"threads": len(truth), "labeled": len(truth), "unlabeled": 0, "dropped": features,
                      "dropped_by": {"issue_type": features, "reengineering": 0}, "kept": len(truth) - features,
                      "model": "builtin@1", "sample": None}
    sentence = (f"{len(truth)} threads in the store, {len(truth)} of them labeled by builtin@1; its filter dropped "
                f"{features} ({features} as not a defect")
    assert f"corpus: {sentence}" in run.stdout
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"**Corpus.** {sentence}" in md and "The defects come from 6 repositories: too few" in md
    shares = pd.read_csv(tmp_path / "out" / "tables" / "marginal_stage.csv")
    assert shares["ci_repository_low"].isna().all() and shares["ci_issue_low"].notna().all()
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["stage_x_root_cause"]["p_rao_scott"] is None


def test_a_claim_counts_the_defects_it_leaves_out_for_a_missing_label(tmp_path, reeng):
    """Claims dropped defects whose second label was missing without a word (124/124 = 100 % of environment
    defects were interface defects, over 165 environment defects)."""
    table = synthetic_defects(240, seed=3)
    env = table.index[table["stage"] == "environment"]
    table.loc[env[:5], "code_error"] = None
    table.to_csv(tmp_path / "d.csv", index=False)
    run = reeng("analyze", "--defects", str(tmp_path / "d.csv"), "--out", str(tmp_path / "out"), "--formats", "png")
    assert run.returncode == 0, run.stderr
    claim = json.loads((tmp_path / "out" / "tables.json").read_text())["claims"]["environment_interface"]
    assert claim["excluded"] == 5 and claim["denominator"] == len(env) - 5
    assert "(5 lacking a label it needs, not counted)" in run.stdout
    assert "(5 lacking a label it needs, not counted)" in (tmp_path / "out" / "report.md").read_text()


def test_release_leaves_out_the_labels_of_threads_the_filter_dropped(store, reeng, tmp_path):
    """`reeng release --store` published every thread's taxonomy labels, the filter's feature requests too, unlike
    the analysis and the notebook API's release, and the datasheet did not say the filter existed."""
    root, truth = store
    features = {int(n) for n in truth.loc[truth["number"] % 17 == 0, "number"]}
    run = reeng("release", "--store", str(root / "s.db"), "--out", str(tmp_path / "rel"), "--salt", "a-salt-of-sixteen-chars")
    assert run.returncode == 0, run.stderr
    labels = pd.read_parquet(tmp_path / "rel" / "data" / "defect_labels.parquet")
    assert features and not features & set(labels["number"].astype(int))
    assert len(pd.read_parquet(tmp_path / "rel" / "data" / "issues.parquet")) == len(truth)  # the threads stay
    readme = (tmp_path / "rel" / "README.md").read_text()
    assert (f"Its filter dropped {len(features)} of them as no reengineering defect ({len(features)} by `issue_type`)"
            in readme)
    from reeng.api import Corpus

    api = Corpus(root / "s.db").release(tmp_path / "api", salt="a-salt-of-sixteen-chars")
    assert api.rows["defect_labels"] == len(labels)


def test_the_notebook_release_of_a_sample_names_each_thread_the_filter_dropped(store, tmp_path):
    """`Corpus.release` of a sample's machine table counted the filter's dropped threads in the datasheet without naming
    them; `filter_decisions` now lists the sample's threads with their decisions, and the release validates."""
    from analysis.release_check import validate_release
    from reeng.api import Corpus

    root, truth = store
    corpus = Corpus(root / "s.db")
    machine = corpus.defects(sample=1)
    summary = corpus.release(tmp_path / "rel", defects=[machine], salt="a-salt-of-sixteen-chars")
    assert validate_release(tmp_path / "rel") == []
    decisions = pd.read_parquet(tmp_path / "rel" / "data" / "filter_decisions.parquet")
    assert summary.rows["filter_decisions"] == len(decisions) == machine.attrs["corpus"]["threads"]
    dropped = decisions[decisions["decision"] == "dropped"]
    assert set(dropped["number"]) == set(decisions["number"][decisions["number"] % 17 == 0]) and len(dropped)
    assert set(dropped["reason"]) == {"issue_type: feature"} and set(decisions["model"]) == {"builtin"}
    assert set(decisions.loc[decisions["decision"] == "kept", "issue_url"]) == set(machine["issue_url"])
    other = make_store(tmp_path / "other.db", n=90, seed=3)  # a machine table of other predictions: none to name
    corpus.release(tmp_path / "mixed", defects=[Corpus(tmp_path / "other.db").defects()], salt="a-salt-of-sixteen-chars")
    assert not (tmp_path / "mixed" / "data" / "filter_decisions.csv").exists() and len(other)
    assert validate_release(tmp_path / "mixed") == []


def test_a_store_whose_every_thread_the_filter_dropped_says_so(tmp_path, reeng):
    db = tmp_path / "s.db"
    truth = make_store(db, n=30)
    conn = open_store(db, create=False)
    with conn:
        conn.execute("UPDATE predictions SET label = 'question' WHERE dimension = 'issue_type'")
    conn.close()
    run = reeng("analyze", "--store", str(db), "--out", str(tmp_path / "out"))
    assert run.returncode == 2 and not (tmp_path / "out").exists()
    assert run.stderr.strip() == (f"error: {db}: the filter of 'builtin@1' dropped all {len(truth)} labeled threads "
                                  f"({len(truth)} on issue_type): no defect is left to analyse")


def test_reruns_leave_no_earlier_inputs_file_and_a_release_replaces_only_a_release(store, reeng, tmp_path):
    """A rerun of analyze left the earlier run's compare.json beside the new report; release wrote into any
    folder and its own validate then refused the result; an empty store released and validated; an --out that
    cannot be written was reported under the hidden staging name; report.md showed the command HTML-escaped."""
    root, truth = store
    db, out = root / "s.db", tmp_path / "an"
    truth.assign(provenance="lab:adjudicated").to_csv(tmp_path / "other.csv", index=False)
    assert reeng("analyze", "--store", str(db), "--compare", str(tmp_path / "other.csv"), "--out", str(out),
                 "--formats", "png").returncode == 0
    (out / "notes.txt").write_text("mine")
    run = reeng("analyze", "--store", str(db), "--out", str(out), "--formats", "png", "--title", "Kim's run")
    assert run.returncode == 0, run.stderr
    assert not (out / "compare.json").exists() and (out / "notes.txt").read_text() == "mine"
    assert "- command: `reeng analyze" in (out / "report.md").read_text() and "--title 'Kim'\"'\"'s run'`" in (
        out / "report.md").read_text()
    salt = ("--salt", "a-salt-of-sixteen-chars")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    run = reeng("release", "--store", str(db), "--out", str(folder), *salt)
    assert run.returncode == 2 and "holds files and is no earlier release" in run.stderr
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    rel = tmp_path / "rel"
    assert reeng("release", "--store", str(db), "--out", str(rel), *salt).returncode == 0
    (rel / "stray.txt").write_text("left over")
    assert reeng("release", "--store", str(db), "--out", str(rel), *salt).returncode == 0
    assert not (rel / "stray.txt").exists() and reeng("release", "validate", str(rel)).returncode == 0
    open_store(tmp_path / "empty.db").close()
    run = reeng("release", "--store", str(tmp_path / "empty.db"), "--out", str(tmp_path / "r0"), *salt)
    assert run.returncode == 2 and "holds no threads" in run.stderr and not (tmp_path / "r0").exists()
    if Path("/proc/self").is_dir():  # a folder nobody, root included, can create entries in
        run = reeng("analyze", "--store", str(db), "--out", "/proc/reeng-out")
        assert run.returncode == 2 and run.stderr.startswith("error: /proc/reeng-out: cannot write there ("), run.stderr


def test_ppi_warns_when_the_human_labels_are_a_reeng_sample_draw_of_a_wider_corpus(store, reeng, tmp_path):
    """The docs called a `reeng sample` draw the random sample PPI needs; it is the study's protocol, and PPI
    corrected the shares of the whole corpus with it without a word."""
    root, truth = store
    conn = open_store(root / "s.db", create=False)
    drawn = {(r[0], int(r[1])) for r in conn.execute("SELECT repo, number FROM sample_issues WHERE sample_id = 1")}
    conn.close()
    in_draw = [(f"{o}/{r}", int(n)) in drawn for o, r, n in zip(truth["owner"], truth["repo"], truth["number"])]
    human = truth[pd.Series(in_draw, index=truth.index) & (truth["number"] % 17 != 0)].assign(provenance="lab:adjudicated")
    human.to_csv(tmp_path / "h.csv", index=False)
    wide = reeng("analyze", "--store", str(root / "s.db"), "--human", str(tmp_path / "h.csv"), "--out",
                 str(tmp_path / "wide"), "--formats", "png")
    assert wide.returncode == 0, wide.stderr
    assert f"warning: {len(human)} of the {len(human)} human-labeled threads belong to sample 1 drawn by reeng sample" \
        in wide.stderr
    assert "belong to sample 1" in json.loads((tmp_path / "wide" / "ppi.json").read_text())["warning"]
    alone = reeng("analyze", "--store", str(root / "s.db"), "--sample", "1", "--human", str(tmp_path / "h.csv"), "--out",
                  str(tmp_path / "alone"), "--formats", "png")
    assert alone.returncode == 0 and "reeng sample" not in alone.stderr, alone.stderr
