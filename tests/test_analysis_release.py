"""Dataset releases: contents, pseudonymisation, descriptors, and validation that catches tampering."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.pseudonyms import pseudonym, scrub_text
from analysis.release import ReleaseOptions, write_release
from analysis.release_check import validate_release
from analysis.synthetic import synthetic_defects
from tests.analysis_helpers import gold_eval_document
from reeng.errors import ReengError

SALT = "test-salt-0123456789abcdef"
LOGINS = ("alice-dev", "Bob42")


def make_store(path: Path) -> Path:
    """A store made with the miner's API: two threads, a repository, and the classifier's predictions table."""
    from miner.store import open_store, save_thread, transaction, upsert_repository

    conn = open_store(path)
    save_thread(conn, {
        "repo": "owner0/model0", "number": 7, "title": "Crash when @alice-dev loads weights",
        "body": "Contact alice@example.org\n```\n@torch.no_grad()\n```", "state": "closed", "author": "alice-dev",
        "labels": ["bug"], "created_at": "2021-01-01T00:00:00Z", "updated_at": "2021-01-03T00:00:00Z",
        "closed_at": "2021-01-03T00:00:00Z", "comments_count": 1, "reactions": {"+1": 1},
        "url": "https://github.com/owner0/model0/issues/7",
        "comments": [{"comment_id": 11, "author": "Bob42", "body": "thanks @Alice-Dev, mail bob@corp.io",
                      "created_at": "2021-01-02T00:00:00Z"}],
    }, source="api", fetched_at="2024-05-01T00:00:00Z", etag='W/"e1"')
    save_thread(conn, {
        "repo": "owner1/model1", "number": 3, "title": "Accuracy lower", "body": "no personal data", "state": "open",
        "author": None, "created_at": "2021-02-01T00:00:00Z", "comments_count": 1,
        "url": "https://github.com/owner1/model1/issues/3",
        "comments": [{"comment_id": 12, "author": "alice-dev", "body": "see `@property` and @Bob42",
                      "created_at": "2021-02-02T00:00:00Z"}],
    }, source="api", fetched_at="2024-05-01T00:00:00Z")
    with transaction(conn):
        upsert_repository(conn, {"repo": "owner0/model0", "stars": 12, "repo_type": "solo", "source": "api"})
        conn.execute("""CREATE TABLE predictions(repo TEXT, number INTEGER, dimension TEXT, label TEXT, probability REAL,
                        model TEXT, model_version TEXT, evidence TEXT, created_at TEXT)""")
        conn.executemany("INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?)", [
            ("owner0/model0", 7, "stage", "environment", 0.93, "tfidf-logreg", "0.3.1", "[]", "2024-05-02"),
            ("owner1/model1", 3, "manifestation", "Reproducibility defect", 0.58, "tfidf-logreg", "0.3.1", "[]", "2024-05-02"),
            ("owner1/model1", 3, "stage", None, None, "tfidf-logreg", "0.3.1", "[]", "2024-05-02"),  # an abstention
            # the classifier's filter decision: about the thread, not a defect label
            ("owner1/model1", 3, "issue_type", "defect", 0.8, "tfidf-logreg", "0.3.1", "[]", "2024-05-02"),
        ])
    conn.close()
    return path


@pytest.fixture()
def inputs(tmp_path):
    store = make_store(tmp_path / "store.sqlite")
    defects = synthetic_defects(40, seed=9, provenance="jiang2024:adjudicated")
    defects.loc[0, "stage"] = None  # a missing label produces no row
    defects.to_parquet(tmp_path / "defects.parquet", index=False)
    machine = synthetic_defects(10, seed=10, provenance="model:tfidf-logreg@0.3.1")[["owner", "repo", "number", "defect_index", "stage", "provenance"]]
    machine["stage_probability"] = 0.75
    machine.to_csv(tmp_path / "machine.csv", index=False)
    return tmp_path, store


def _release(tmp_path: Path, store: Path | None, **kw) -> Path:
    out = tmp_path / "release"
    defects = kw.pop("defects", [tmp_path / "defects.parquet", tmp_path / "machine.csv"])
    write_release(out, store=store, defects=defects, options=ReleaseOptions(salt=SALT, **kw))
    return out


def test_release_contents_and_provenance(inputs):
    tmp_path, store = inputs
    out = _release(tmp_path, store)
    assert validate_release(out) == []
    for name in ("issues", "comments", "defect_labels"):
        assert (out / "data" / f"{name}.parquet").is_file() and (out / "data" / f"{name}.csv").is_file()
    labels = pd.read_parquet(out / "data" / "defect_labels.parquet")
    human = labels[labels["provenance"] == "adjudicated"]
    assert len(human) == 40 * 11 - 1 and set(human["source"]) == {"jiang2024"}
    model = labels[labels["provenance"] == "model"]
    from_table = model[model["source"] == "model"]
    assert len(from_table) == 10 and set(from_table["probability"]) == {0.75} and set(from_table["model_version"]) == {"0.3.1"}
    stored = model[model["source"] == "store"].set_index("dimension")
    assert len(stored) == 2  # neither the abstention nor the filter decision is a defect label
    assert stored.loc["manifestation", "label"] == "reproducibility" and stored.loc["stage", "probability"] == 0.93
    assert stored["defect_index"].isna().all()
    issues = pd.read_parquet(out / "data" / "issues.parquet")
    assert "etag" not in issues and list(issues["repo"]) == ["owner0/model0", "owner1/model1"]
    assert pd.read_parquet(out / "data" / "repositories.parquet")["repo_type"].tolist() == ["solo"]
    package = json.loads((out / "datapackage.json").read_text())
    assert {r["name"] for r in package["resources"]} == {"issues", "comments", "repositories", "defect_labels", "filter_decisions"}
    assert package["licenses"][0]["name"] == "CC-BY-4.0" and package["citation"]
    assert "cff-version: 1.2.0" in (out / "CITATION.cff").read_text()
    readme = (out / "README.md").read_text()
    for heading in ("Motivation", "Composition", "Collection process", "Uses", "Distribution", "Maintenance"):
        assert f"\n## {heading}\n" in readme
    croissant = json.loads((out / "croissant.json").read_text())
    assert {rs["name"] for rs in croissant["recordSet"]} == {"issues", "comments", "repositories", "defect_labels",
                                                             "filter_decisions"}


def test_people_are_pseudonymised_everywhere(inputs):
    tmp_path, store = inputs
    out = _release(tmp_path, store)
    everything = "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.suffix in {".csv", ".json", ".md", ".cff"})
    blobs = b"".join(p.read_bytes() for p in out.rglob("*.parquet"))
    for secret in (*LOGINS, "alice@example.org", "bob@corp.io", SALT):
        assert secret not in everything and secret.encode() not in blobs, secret
    comments = pd.read_parquet(out / "data" / "comments.parquet")
    assert list(comments["author"]) == [pseudonym("Bob42", SALT), pseudonym("alice-dev", SALT)]
    issues = pd.read_parquet(out / "data" / "issues.parquet")
    assert issues.loc[0, "author"] == pseudonym("ALICE-DEV", SALT)  # logins are case-insensitive
    assert "@torch.no_grad()" in issues.loc[0, "body"] and "`@property`" in comments.loc[1, "body"]


def test_keep_identities_is_explicit(inputs):
    tmp_path, store = inputs
    out = _release(tmp_path, store, keep_identities=True)
    assert validate_release(out) == []
    comments = pd.read_parquet(out / "data" / "comments.parquet")
    assert list(comments["author"]) == ["Bob42", "alice-dev"] and "bob@corp.io" in comments.loc[0, "body"]
    assert json.loads((out / "datapackage.json").read_text())["reeng"]["pseudonymised"] is False


def test_generated_salt_stays_private_and_stable(inputs, tmp_path_factory):
    tmp_path, store = inputs
    salt_file = tmp_path_factory.mktemp("private") / "salt"
    first = write_release(tmp_path / "r1", store=store, options=ReleaseOptions(salt_file=salt_file))
    write_release(tmp_path / "r2", store=store, options=ReleaseOptions(salt_file=salt_file))
    assert "generated" in first.salt_origin and oct(salt_file.stat().st_mode)[-3:] == "600"
    salt = salt_file.read_text().strip()
    assert all(salt not in p.read_text(errors="replace") for p in (tmp_path / "r1").rglob("*") if p.is_file())
    a, b = (pd.read_parquet(tmp_path / r / "data" / "comments.parquet")["author"].tolist() for r in ("r1", "r2"))
    assert a == b
    with pytest.raises(ReengError, match="outside the release"):
        write_release(tmp_path / "r3", store=store, options=ReleaseOptions(salt_file=tmp_path / "r3" / "salt"))


def test_defects_only_release(inputs):
    tmp_path, _ = inputs
    out = _release(tmp_path, None, defects=[tmp_path / "defects.parquet"])
    assert validate_release(out) == []
    assert sorted(p.name for p in (out / "data").iterdir()) == ["defect_labels.csv", "defect_labels.parquet"]
    assert "No issue threads are included" in (out / "README.md").read_text()


@pytest.mark.parametrize("tamper, expected", [
    (lambda out: (out / "data" / "issues.csv").write_text("repo,number\nx,1\n"), "SHA-256 differs"),
    (lambda out: (out / "extra.txt").write_text("hi"), "not listed in SHA256SUMS"),
    (lambda out: (out / "data" / "comments.parquet").unlink(), "listed in SHA256SUMS but missing"),
    (lambda out: (out / "README.md").write_text("# nothing\n"), "no '## Motivation' section"),
])
def test_validate_fails_on_any_mismatch(inputs, tamper, expected):
    tmp_path, store = inputs
    out = _release(tmp_path, store)
    tamper(out)
    problems = validate_release(out)
    assert any(expected in p for p in problems), problems


def test_validate_catches_a_leaked_login_even_with_fixed_checksums(inputs):
    from analysis.release import write_checksums

    tmp_path, store = inputs
    out = _release(tmp_path, store)
    comments = pd.read_parquet(out / "data" / "comments.parquet")
    comments.loc[0, "body"] = "ping @someone-real"
    comments.to_parquet(out / "data" / "comments.parquet", index=False)
    write_checksums(out)
    assert any("comments.body: holds an @mention" in p for p in validate_release(out))


def test_release_cli_and_bad_input(inputs, reeng):
    tmp_path, store = inputs
    out = tmp_path / "cli-release"
    done = reeng("release", "--store", str(store), "--defects", str(tmp_path / "defects.parquet"), "--out", str(out),
                 "--salt", SALT, "--author", "A. Researcher")
    assert done.returncode == 0, done.stderr
    assert reeng("release", "validate", str(out)).returncode == 0
    (out / "data" / "issues.csv").write_text("tampered\n")
    bad = reeng("release", "validate", str(out))
    assert bad.returncode == 2 and "issues.csv: SHA-256 differs" in bad.stdout and bad.stderr.startswith("error:")
    not_store = tmp_path / "plain.txt"
    not_store.write_text("hello")
    failed = reeng("release", "--store", str(not_store), "--out", str(tmp_path / "x"), "--salt", SALT)
    assert failed.returncode == 2 and "not a usable store" in failed.stderr and not (tmp_path / "x").exists()
    missing = reeng("release", "--store", str(tmp_path / "nope.sqlite"), "--out", str(tmp_path / "y"), "--salt", SALT)
    assert missing.returncode == 2 and "no such store" in missing.stderr and not (tmp_path / "nope.sqlite").exists()


def test_scrub_text_rules():
    text = "Hi @dev-one (dev@x.org)\n```py\n@torch.jit.script\ndef f(): ...  # thanks @dev-one\n```\nuse `@tf.function`"
    scrubbed = scrub_text(text, frozenset({"dev-one"}))
    assert scrubbed.count("@[user]") == 2 and "[email]" in scrubbed
    assert "@torch.jit.script" in scrubbed and "`@tf.function`" in scrubbed and "dev-one" not in scrubbed


def test_validate_catches_a_changed_label_with_rewritten_checksums(inputs):
    """Content, not only checksums: a label edited in the CSV, every checksum and hash rewritten, is still caught."""
    from analysis.release import write_checksums
    from reeng.datasets import sha256_file

    tmp_path, store = inputs
    out = _release(tmp_path, store)
    csv = out / "data" / "defect_labels.csv"
    labels = pd.read_csv(csv, dtype=str, keep_default_na=False)
    row = labels.index[labels["dimension"] == "stage"][0]
    labels.loc[row, "label"] = "training" if labels.loc[row, "label"] != "training" else "environment"
    labels.to_csv(csv, index=False)
    package = json.loads((out / "datapackage.json").read_text())
    for resource in package["resources"]:
        path = out / resource["path"]
        resource["bytes"], resource["hash"] = path.stat().st_size, f"sha256:{sha256_file(path)}"
    (out / "datapackage.json").write_text(json.dumps(package))
    (out / "croissant.json").unlink(missing_ok=True)
    write_checksums(out)
    problems = validate_release(out)
    assert any("defect_labels.csv" in p and "differ from the Parquet twin" in p for p in problems), problems


def test_machine_labels_release_with_model_provenance_and_datasheet(inputs):
    """The classifier's older provenance spelling releases as a model label with its probability; the datasheet
    says how each label was assigned and states the measured agreement; no staging path is published."""
    tmp_path, store = inputs
    machine = pd.read_csv(tmp_path / "machine.csv")
    machine["provenance"] = "machine:builtin@1"
    machine.to_csv(tmp_path / "machine_old.csv", index=False)
    hidden = tmp_path / ".study1.abcd_123" / "corpus"
    hidden.mkdir(parents=True)
    (hidden / "store.sqlite").write_bytes(store.read_bytes())
    out = tmp_path / "release"
    write_release(out, store=hidden / "store.sqlite", defects=[tmp_path / "defects.parquet", tmp_path / "machine_old.csv"],
                  options=ReleaseOptions(salt=SALT, machine_evaluation={"stage": {"macro_f1": 0.61, "kappa": 0.52, "n": 120}}))
    labels = pd.read_parquet(out / "data" / "defect_labels.parquet")
    builtin = labels[labels["model"] == "builtin"]
    assert len(builtin) == 10 and (builtin["probability"] == 0.75).all() and set(builtin["provenance"]) == {"model"}
    readme = (out / "README.md").read_text()
    assert "two human raters" in readme and "`builtin` version `1`" in readme
    assert "stage: at threshold, coverage n/a, kappa 0.52, macro-F1 0.61," in readme and "over 120 defects" in readme
    assert ".study1." not in readme and validate_release(out) == []
    (out / "README.md").write_text(readme + "\nbuilt from /tmp/x/.study1.abcd_123/corpus\n")
    from analysis.release import write_checksums

    write_checksums(out)
    assert any("staging folder" in p for p in validate_release(out))


def test_datasheet_states_the_gold_set_coverage_and_intervals(inputs, reeng):
    """`reeng release --gold-eval` states the classifier's agreement as measured: by gold set, with coverage and
    95 % intervals, saying when no held-out thread was measured; the labeler's name arrives escaped. A file that
    is not a gold-eval is one error line, and nothing is written."""
    tmp_path, store = inputs
    attack = "<script>alert('x')</script>"
    (tmp_path / "gold_eval.json").write_text(json.dumps(gold_eval_document(development=3, held_out=0, label_source=attack)))
    result = reeng("release", "--store", str(store), "--defects", str(tmp_path / "machine.csv"), "--out",
                   str(tmp_path / "r"), "--salt", SALT, "--gold-eval", str(tmp_path / "gold_eval.json"))
    assert result.returncode == 0, result.stderr
    readme = (tmp_path / "r" / "README.md").read_text()
    for part in ("Development set (3 defects in 3 issues)", "coverage 60%, kappa 0.91 [0.70, 1.00]",
                 "with abstentions wrong 0.52 [0.31, 0.72]", "best guess kappa 0.58 [0.35, 0.82]",
                 "No held-out human-labeled thread was measured", "&lt;script&gt;"):
        assert part in readme, part
    assert "<script" not in readme
    (tmp_path / "list.json").write_text(json.dumps({"dimensions": ["stage"]}))
    for bad, problem in (("list.json", "no scores per dimension"), ("missing.json", "file not found")):
        failed = reeng("release", "--store", str(store), "--out", str(tmp_path / "r2"), "--salt", SALT,
                       "--gold-eval", str(tmp_path / bad))
        assert failed.returncode == 2 and failed.stderr.strip() == f"error: --gold-eval {tmp_path / bad}: {problem}"
        assert not (tmp_path / "r2").exists()


def test_release_bad_input_all_abstained_and_salt_file_device(inputs, reeng, tmp_path):
    from miner.store import open_store

    _, store = inputs
    conn = open_store(store, create=False)
    with conn:
        conn.execute("UPDATE predictions SET label = NULL, probability = NULL")
    conn.close()
    failed = reeng("release", "--store", str(store), "--out", str(tmp_path / "r"), "--salt", SALT)
    assert failed.returncode == 2 and "all abstained" in failed.stderr and not (tmp_path / "r").exists()
    full = reeng("release", "--defects", str(inputs[0] / "defects.parquet"), "--out", str(tmp_path / "r2"),
                 "--salt-file", "/dev/full")
    assert full.returncode == 2 and full.stderr.startswith("error:") and "/dev/full" in full.stderr
    assert "Traceback" not in full.stderr and not (tmp_path / "r2").exists()


def test_a_model_label_without_a_probability_is_refused_and_caught(inputs, reeng):
    """A model-made label carries a probability in [0, 1]: the release refuses one without (one error line, nothing
    written), and validate names the table, row and column of one that reached a release (NaN, not only > 1)."""
    from analysis.release import write_checksums

    tmp_path, store = inputs
    machine = pd.read_csv(tmp_path / "machine.csv")
    machine.loc[3, "stage_probability"] = None
    machine.to_csv(tmp_path / "unscored.csv", index=False)
    refused = reeng("release", "--defects", str(tmp_path / "unscored.csv"), "--out", str(tmp_path / "r"), "--salt", SALT)
    assert refused.returncode == 2 and refused.stderr.count("error:") == 1 and not (tmp_path / "r").exists()
    assert f"model label stage/{machine.loc[3, 'stage']}" in refused.stderr and "column stage_probability" in refused.stderr

    out = _release(tmp_path, store)
    labels = pd.read_parquet(out / "data" / "defect_labels.parquet")
    row = labels.index[labels["provenance"] == "model"][1]
    labels.loc[row, "probability"] = float("nan")
    labels.to_parquet(out / "data" / "defect_labels.parquet", index=False)
    write_checksums(out)
    problems = [p for p in validate_release(out) if "column probability" in p]
    assert problems == [f"defect_labels: row {row + 1}, column probability: a model label needs a probability in [0, 1] (got nan)"]


def test_release_names_each_thread_the_filter_dropped_and_why(inputs):
    """The datasheet counted the threads the classifier's filter dropped; `filter_decisions` names each stored thread's
    decision per model (kept, dropped with the reason, unlabeled), and validate holds it to the datasheet's counts."""
    from analysis.release import write_checksums
    from miner.store import open_store, save_thread

    tmp_path, store = inputs
    conn = open_store(store, create=False)
    save_thread(conn, {"repo": "owner2/model2", "number": 5, "title": "no prediction yet", "body": "", "state": "open",
                       "author": "carol", "created_at": "2021-03-01T00:00:00Z", "comments_count": 0,
                       "url": "https://github.com/owner2/model2/issues/5", "comments": []}, source="api")
    with conn:
        conn.execute("UPDATE predictions SET label = 'question' WHERE dimension = 'issue_type'")
        conn.executemany("INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?)", [
            ("owner1/model1", 3, "reengineering", "no", 0.7, "tfidf-logreg", "0.3.1", "[]", "2024-05-02"),
            # a second model, named like a spreadsheet formula: one thread, kept
            ("owner2/model2", 5, "stage", "training", 0.6, "=cmd|x", "2", "[]", "2024-05-02")])
    conn.close()
    out = _release(tmp_path, store)
    assert validate_release(out) == []
    decisions = pd.read_parquet(out / "data" / "filter_decisions.parquet")
    assert list(decisions.columns) == ["repo", "number", "issue_url", "model", "model_version", "decision", "reason"]
    ours = decisions[decisions["model"] == "tfidf-logreg"].set_index("number")
    assert set(ours["model_version"]) == {"0.3.1"} and ours["decision"].to_dict() == {7: "kept", 3: "dropped", 5: "unlabeled"}
    assert ours.at[3, "reason"] == "issue_type: question; reengineering: no" and ours["reason"].isna().sum() == 2
    assert ours.at[3, "issue_url"] == "https://github.com/owner1/model1/issues/3"
    other = decisions[decisions["model"] == "=cmd|x"]
    assert other.set_index("number")["decision"].to_dict() == {7: "unlabeled", 3: "unlabeled", 5: "kept"}
    assert "'=cmd|x" in (out / "data" / "filter_decisions.csv").read_text()  # a formula-like name is escaped in the CSV
    labels = pd.read_parquet(out / "data" / "defect_labels.parquet")
    assert not len(labels[(labels["model"] == "tfidf-logreg") & (labels["repo"] == "owner1/model1")])  # dropped: no labels
    readme = (out / "README.md").read_text()
    assert "Its filter dropped 1 of them" in readme and "`filter_decisions`: 6 rows" in readme
    package = json.loads((out / "datapackage.json").read_text())
    [resource] = [r for r in package["resources"] if r["name"] == "filter_decisions"]
    assert resource["schema"]["primaryKey"] == ["model", "repo", "number"]
    assert all(f.get("description") for f in resource["schema"]["fields"])

    tampered = decisions.copy()
    tampered.loc[tampered["decision"] == "dropped", ["decision", "reason"]] = ["kept", None]
    tampered = pd.concat([tampered, tampered.iloc[[0]]], ignore_index=True)
    tampered.to_parquet(out / "data" / "filter_decisions.parquet", index=False)
    write_checksums(out)
    problems = [p for p in validate_release(out) if p.startswith("filter_decisions:")]
    assert problems == [
        "filter_decisions: row 7: model, repo and number repeat an earlier row (1 such rows)",
        "filter_decisions: =cmd|x@2: 1 labeled of 4 threads, 0 dropped, 1 kept; the datasheet says 1 of 3, 0 dropped, 1 kept",
        "filter_decisions: tfidf-logreg@0.3.1: 2 labeled of 3 threads, 0 dropped, 2 kept; "
        "the datasheet says 2 of 3, 1 dropped, 1 kept"], problems


def test_the_stores_human_labels_are_released_once_with_their_provenance(inputs, reeng):
    """A researcher's final labels in the store (``reeng annotate import`` / ``pull``) are released beside the
    machine labels by ``reeng release --store``, which left them out, and by ``Corpus.release``, which refused the
    table of its own ``human_labels()`` ("provenance 'agreed:a.csv|b.csv' is none of ...")."""
    from miner.store import open_store
    from reeng import Corpus
    from taxonomy.annotate import write_human_labels

    tmp_path, store = inputs
    conn = open_store(store, create=False)
    with conn:
        write_human_labels(conn, [
            {"repo": "owner0/model0", "number": 7, "defect_index": 1, "dimension": "stage", "label": "environment",
             "provenance": "agreed:a.csv|b.csv", "created_at": "2024-06-01"},
            {"repo": "owner0/model0", "number": 7, "defect_index": 1, "dimension": "impact", "label": "crash",
             "provenance": "adjudicated:a.csv|b.csv", "created_at": "2024-06-01"},
            {"repo": "owner1/model1", "number": 3, "defect_index": 1, "dimension": "stage", "label": "training",
             "provenance": "label-studio single:rater@lab.org", "created_at": "2024-06-01"}])
    conn.close()
    result = reeng("release", "--store", str(store), "--out", str(tmp_path / "cli"), "--salt", SALT)
    assert result.returncode == 0, result.stderr
    corpus = Corpus(store)
    corpus.release(tmp_path / "api", defects=[corpus.human_labels()], salt=SALT)
    corpus.human_labels().to_csv(tmp_path / "human.csv", index=False)  # the same labels as a CSV beside the store
    result = reeng("release", "--store", str(store), "--defects", str(tmp_path / "human.csv"), "--out", str(tmp_path / "csv"),
                   "--salt", SALT)
    assert result.returncode == 0, result.stderr
    for out in (tmp_path / "cli", tmp_path / "api", tmp_path / "csv"):
        assert validate_release(out) == []
        labels = pd.read_parquet(out / "data" / "defect_labels.parquet")
        human = labels[labels["provenance"] != "model"].sort_values("label")
        assert list(zip(human["label"], human["provenance"], human["source"], human["rater"].fillna(""))) == [
            ("crash", "adjudicated", "annotate", ""), ("environment", "adjudicated", "annotate", ""),
            ("training", "human_rater", "label-studio", "rater@lab.org")], out
        assert "- `adjudicated` (2 labels)" in (out / "README.md").read_text()


def test_the_datasheet_names_where_its_human_labels_come_from(inputs):
    """The datasheet said "Human labels come from the study's published, adjudicated labeling" of every release: of
    one holding machine labels alone, and of one holding the researcher's own adjudicated labels."""
    tmp_path, store = inputs
    machine_only = (_release(tmp_path, store, defects=[]) / "README.md").read_text()
    assert "study's published" not in machine_only.replace("&#39;", "'")
    assert "No label was assigned by a person; machine labels from the reeng classifier." in machine_only
    own = synthetic_defects(5, seed=3, provenance="lab:adjudicated")
    both = (_release(tmp_path, None, defects=[tmp_path / "defects.parquet", own]) / "README.md").read_text()
    assert "Human labels come\nfrom the study's published, adjudicated labeling (`jiang2024`); `lab`." in both.replace("&#39;", "'")
    assert "machine labels from" not in both


def test_the_datasheet_says_where_the_threads_came_from(inputs):
    """Every datasheet said its threads were "collected ... through the GitHub API by the reeng miner", also of the
    default study's release, whose threads are read from the Denchmark archive, and of a release with no thread."""
    from analysis.release import thread_origins
    from miner.store import open_store, save_thread

    tmp_path, store = inputs
    conn = open_store(store, create=False)
    for number, source in ((901, "denchmark"), (902, "denchmark"), (903, "github:https://api.github.com")):
        save_thread(conn, {"repo": "owner0/model0", "number": number, "title": "t", "body": "b", "comments": []}, source=source)
    conn.close()
    text = (_release(tmp_path, store, defects=[]) / "README.md").read_text()
    assert "through the GitHub API by the reeng\nminer" not in text
    assert "2 threads read from the Denchmark bug-report archive (Kim et al., MSR 2021) by the reeng importer" in text
    assert "1 thread fetched through the GitHub API by the reeng miner" in text and "2 threads from `api`" in text
    assert "This release holds no issue threads" in (_release(tmp_path, None, defects=[tmp_path / "defects.parquet"])
                                                     / "README.md").read_text()
    assert thread_origins(pd.DataFrame({"source": ["github:http://127.0.0.1:8765", "archive:raw.jsonl.gz"]})) == [
        "1 thread fetched through a GitHub-compatible API (`http://127.0.0.1:8765`) by the reeng miner",
        "1 thread read from a reeng raw archive (`raw.jsonl.gz`)"]


def test_the_stores_predictions_are_not_released_twice(inputs, reeng):
    """`classify predict --out DIR` writes the store's predictions as a defect table; given beside that store to
    `reeng release`, every machine label was released twice (defect_index 1 and empty) and counted twice in the
    datasheet. One error now, nothing written."""
    tmp_path, store = inputs
    again = pd.DataFrame({"owner": ["owner0"], "repo": ["model0"], "number": [7], "stage": ["environment"],
                          "stage_probability": [0.93], "provenance": ["model:tfidf-logreg@0.3.1"]})
    again.to_csv(tmp_path / "again.csv", index=False)
    out = tmp_path / "twice"
    done = reeng("release", "--store", str(store), "--defects", str(tmp_path / "again.csv"), "--out", str(out), "--salt", SALT)
    assert done.returncode == 2 and not out.exists(), done.stderr
    assert done.stderr.startswith("error:") and len(done.stderr.splitlines()) == 1
    assert "again.csv: its labels of tfidf-logreg@0.3.1 (1, e.g. stage of owner0/model0#7) are the store's" in done.stderr
    done = reeng("release", "--store", str(store), "--defects", str(tmp_path / "machine.csv"), "--out", str(out), "--salt", SALT)
    assert done.returncode == 0, done.stderr  # the same model's labels of other threads are no repetition


def test_human_labels_of_no_taxonomy_dimension_are_one_error_or_none(inputs, reeng):
    """A human_labels table holding no taxonomy dimension (a filter's issue_type, written by hand) ended `analyze --human
    store` in "unexpected failure (KeyError: 0)"; `release --store` releases no human label from it."""
    from miner.store import open_store
    from taxonomy.annotate import write_human_labels

    tmp_path, store = inputs
    conn = open_store(store, create=False)
    with conn:
        write_human_labels(conn, [{"repo": "owner0/model0", "number": 7, "defect_index": 1, "dimension": "issue_type",
                                   "label": "feature", "provenance": "agreed:a.csv|b.csv", "created_at": "2024-06-01"}])
    conn.close()
    out = tmp_path / "findings"
    done = reeng("analyze", "--store", str(store), "--human", "store", "--out", str(out))
    assert done.returncode == 2 and not out.exists(), done.stderr
    assert "the store's human_labels hold no label of a taxonomy dimension" in done.stderr.strip().splitlines()[-1]
    done = reeng("release", "--store", str(store), "--out", str(tmp_path / "rel"), "--salt", SALT)
    assert done.returncode == 0, done.stderr
    labels = pd.read_parquet(tmp_path / "rel" / "data" / "defect_labels.parquet")
    assert set(labels["provenance"]) == {"model"}
