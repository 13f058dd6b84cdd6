"""Label Studio config and thread page generated from the taxonomy; pull's agreement and adjudication; sheet safety.

These need no server; the round trip against a real Label Studio is in test_annotation_studio.py.
"""

from __future__ import annotations

import os
import socket
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reeng.errors import ReengError
from taxonomy.annotate_config import (ANNOTATED_DIMENSIONS, DEFECT_DIMENSIONS, NO_LABEL, OutsideTaxonomy, labeling_config,
                                      parse_result, result_item, thread_html)
from taxonomy.annotate_studio import Annotation, _agreement, _decide, api_key_from_env
from taxonomy.model import load_taxonomy
from tests.conftest import run_main

TAXONOMY = load_taxonomy()


def test_config_has_one_block_per_dimension_and_defect_with_ids_names_and_definitions() -> None:
    root = ET.fromstring(labeling_config(TAXONOMY, defects=3))
    blocks = {el.get("name"): el for el in root.iter() if el.tag in ("Choices", "Taxonomy")}
    expected = {"framework"} | {f"{d}_{k}" for d in DEFECT_DIMENSIONS for k in (1, 2, 3)} | {"add_defect_2", "add_defect_3"}
    assert set(blocks) == expected
    for name, block in blocks.items():
        if name.startswith("add_defect"):
            continue
        dim = TAXONOMY.dimension(name.rsplit("_", 1)[0] if name[-1].isdigit() else name)
        choices = {c.get("alias"): c for c in block.iter("Choice")}
        assert {c.id for c in dim.categories if c.is_label} <= set(choices), name
        assert list(block)[-1].get("alias") == NO_LABEL and choices.pop(NO_LABEL).get("value") == "No label", name
        for cat_id, choice in choices.items():
            cat = dim.category(cat_id)
            assert choice.get("value") == cat.name and choice.get("hint") == cat.definition
    # root cause is a hierarchy whose first level is the pipeline stage group
    root_cause = blocks["root_cause_1"]
    assert root_cause.tag == "Taxonomy"
    top = [c.get("alias") for c in root_cause.findall("Choice")]
    assert {"data_pipeline", "modeling", "training", "environment"} <= set(top)
    assert "activation_function" in [c.get("alias") for c in root_cause.find("Choice[@alias='modeling']").iter("Choice")]
    assert blocks["stage_1"].tag == "Choices"
    # defect 3 unfolds only after defect 2 is added, which unfolds only when ticked
    views = [v for v in root.iter("View") if v.get("visibleWhen") == "choice-selected"]
    assert [v.get("whenTagName") for v in views] == ["add_defect_2", "add_defect_3"]
    assert views[1] in list(views[0].iter("View"))


def test_thread_page_escapes_everything_keeps_code_and_folds_bots() -> None:
    issue = {"repo": "acme/det", "number": 7, "title": "<img src=x onerror=alert(1)>", "author": "alice",
             "created_at": "2021-01-02T03:04:05Z", "body": "it fails:\n```python\nif a < b and c > d:\n    x = '<b>'\n```\nthanks"}
    comments = [{"author": "bob", "created_at": "2021-01-03", "body": "<script>alert('x')</script> try again"},
                {"author": "stale[bot]", "created_at": "2021-02-01", "body": "This issue has been automatically marked as stale."}]
    page = thread_html(issue, comments)
    assert "<script>" not in page and "<img" not in page and "&lt;script&gt;" in page
    assert "<pre><code>if a &lt; b and c &gt; d:\n    x = &#x27;&lt;b&gt;&#x27;\n</code></pre>" in page
    assert "<b>bob</b> commented 2021-01-03" in page and "<b>alice</b> opened 2021-01-02T03:04:05Z" in page
    assert page.index("<details><summary>Bot comment by stale[bot]") > page.index("try again")


def test_results_round_trip_through_the_config_names() -> None:
    results = [result_item(TAXONOMY, "framework", None, "pytorch"), result_item(TAXONOMY, "stage", 1, "training", 0.7),
               result_item(TAXONOMY, "root_cause", 1, "activation_function"), result_item(TAXONOMY, "impact", 2, "crash"),
               {"from_name": "add_defect_2", "type": "choices", "value": {"choices": ["Add defect 2"]}}]
    assert results[2]["value"]["taxonomy"] == [["modeling", "layers", "activation_function"]]
    assert results[1]["score"] == 0.7
    labels = parse_result(TAXONOMY, results)
    assert labels == {(0, "framework"): "pytorch", (1, "stage"): "training", (1, "root_cause"): "activation_function",
                      (2, "impact"): "crash"}
    # readable names (what a rater clicks when a config has no aliases) map to the same ids
    assert parse_result(TAXONOMY, [{"from_name": "stage_1", "value": {"choices": ["Data pipeline"]}}]) == {(1, "stage"): "data_pipeline"}
    with pytest.raises(OutsideTaxonomy) as caught:
        parse_result(TAXONOMY, [{"from_name": "impact_1", "value": {"choices": ["explodes"]}}])
    assert (caught.value.control, caught.value.value) == ("impact_1", "explodes")


def _ann(task: int, rater: str, labels: dict, role: str = "rater", when: str = "2024-01-01") -> Annotation:
    return Annotation(task, hash((task, rater)) % 10_000, rater, role, when, "acme/det", task, labels)


def test_kappa_alpha_disagreements_and_adjudication() -> None:
    from sklearn.metrics import cohen_kappa_score

    a_stage = ["training", "modeling", "training", "environment", "data_pipeline", "training"]
    b_stage = ["training", "modeling", "modeling", "environment", "data_pipeline", "environment"]
    anns = [_ann(t, "a@x", {(1, "stage"): s}) for t, s in enumerate(a_stage)]
    anns += [_ann(t, "b@x", {(1, "stage"): s}) for t, s in enumerate(b_stage)]
    anns.append(_ann(2, "judge@x", {(1, "stage"): "training"}, role="adjudicator"))
    agreement = _agreement(anns, ["a@x", "b@x"], ANNOTATED_DIMENSIONS)
    assert agreement["stage"]["kappa"] == pytest.approx(cohen_kappa_score(a_stage, b_stage))
    assert agreement["stage"]["agreement"] == pytest.approx(4 / 6) and agreement["stage"]["paired_units"] == 6
    assert 0 < agreement["stage"]["alpha"] < agreement["stage"]["agreement"]
    assert agreement["impact"]["kappa"] is None and agreement["impact"]["units"] == 0
    final, disagreements = _decide(anns, "now", "p")
    assert [(d["task"], d["final"], d["decided_by"]) for d in disagreements] == [(2, "training", "adjudicated"), (5, None, None)]
    by_task = {r["number"]: r for r in final}
    assert set(by_task) == {0, 1, 2, 3, 4}  # task 5 stays open
    assert by_task[2]["provenance"] == "label-studio adjudicated:judge@x" and by_task[2]["raters"] == "judge@x"
    assert by_task[0]["provenance"] == "label-studio agreed:a@x|b@x" and by_task[0]["task"] == "p task 0"


def test_no_label_settles_a_disagreement_without_a_label() -> None:
    """'No label' is an answer: an adjudicator's closes the disagreement and stores nothing; two raters agreeing on
    it store nothing; one rater's 'No label' against another's category is a disagreement."""
    assert parse_result(TAXONOMY, [{"from_name": "impact_1", "value": {"choices": ["No label"]}},
                                   {"from_name": "root_cause_1", "value": {"taxonomy": [["none"]]}}]) == {
        (1, "impact"): NO_LABEL, (1, "root_cause"): NO_LABEL}
    anns = [_ann(0, "a@x", {(1, "impact"): "crash"}), _ann(0, "b@x", {(1, "impact"): "hang"}),
            _ann(0, "judge@x", {(1, "impact"): NO_LABEL}, role="adjudicator"),
            _ann(1, "a@x", {(1, "impact"): NO_LABEL}), _ann(1, "b@x", {(1, "impact"): NO_LABEL}),
            _ann(2, "a@x", {(1, "impact"): NO_LABEL}), _ann(2, "b@x", {(1, "impact"): "crash"}),
            _ann(3, "a@x", {(1, "impact"): "crash"}), _ann(3, "b@x", {(1, "impact"): "crash"})]
    final, disagreements = _decide(anns, "now", "p")
    assert [(r["number"], r["label"]) for r in final] == [(3, "crash")]
    assert [(d["task"], d["final"], d["decided_by"]) for d in disagreements] == [(0, NO_LABEL, "adjudicated"), (2, None, None)]


def test_alpha_for_three_raters_matches_the_krippendorff_package_and_majority_decides() -> None:
    import krippendorff

    rows = {"r1": ["crash", "hang", "crash", "crash"], "r2": ["crash", "hang", "hang", "crash"], "r3": ["crash", "crash", "hang", None]}
    anns = [_ann(t, r, {(1, "impact"): v}) for r, values in rows.items() for t, v in enumerate(values) if v]
    agreement = _agreement(anns, sorted(rows), ANNOTATED_DIMENSIONS)
    codes = {"crash": 0, "hang": 1}
    matrix = np.array([[codes[v] if v else np.nan for v in rows[r]] for r in sorted(rows)], dtype=float)
    assert agreement["impact"]["alpha"] == pytest.approx(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))
    assert agreement["impact"]["kappa"] is None  # Cohen's kappa is for two raters
    final, _ = _decide(anns, "now", "p")
    assert {r["number"]: (r["label"], r["provenance"].split(":")[0]) for r in final} == {
        0: ("crash", "label-studio agreed"), 1: ("hang", "label-studio majority"), 2: ("hang", "label-studio majority"),
        3: ("crash", "label-studio agreed")}


def test_api_key_and_url_problems_are_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("label_studio_sdk")
    from tests.test_classifier_store import make_store

    store = make_store(tmp_path / "s.sqlite")
    with pytest.raises(ReengError, match="LABEL_STUDIO_API_KEY"):
        api_key_from_env({})
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "secret-key-123456")
    code, out, err = run_main(["annotate", "push", "--store", str(store), "--project", "p", "--url", f"http://127.0.0.1:{port}"], capsys)
    assert code == 2 and err.startswith("error: cannot reach Label Studio at") and "secret-key" not in out + err
    code, _, err = run_main(["annotate", "pull", "--store", str(store), "--project", "p", "--url", "ftp://x"], capsys)
    assert code == 2 and "is not an http(s) URL" in err
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    code, _, err = run_main(["annotate", "pull", "--store", str(store), "--project", "p", "--url", f"http://127.0.0.1:{port}"], capsys)
    assert code == 2 and "set LABEL_STUDIO_API_KEY" in err


def test_serve_without_label_studio_says_how_to_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["annotate", "serve", "--env", str(tmp_path / "no-env"), "--data", str(tmp_path / "d")], capsys)
    assert code == 2 and "reeng annotate install" in err and "sheets" in err.lower()
    assert not (tmp_path / "d").exists()


@pytest.fixture
def sheet_store(tmp_path: Path) -> Path:
    from miner.store import open_store, save_thread

    conn = open_store(tmp_path / "s.sqlite")
    for number, title in enumerate(["=HYPERLINK(\"http://evil\",\"x\")", "+1+2", "-cmd", "@SUM(A1)", "plain title"], 1):
        save_thread(conn, {"repo": "acme/det", "number": number, "title": title, "body": "CUDA out of memory", "comments": []},
                    source="test")
    conn.close()
    return tmp_path / "s.sqlite"


def test_sheet_cells_never_become_formulas_and_files_follow_the_umask(sheet_store: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from openpyxl import load_workbook

    old = os.umask(0o022)
    try:
        code, _, err = run_main(["annotate", "export", "--store", str(sheet_store), "--out", str(tmp_path / "sheet"), "--sample", "5"], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    cells = [c for row in load_workbook(tmp_path / "sheet.xlsx")["labels"].iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    titles = set(pd.read_csv(tmp_path / "sheet.csv")["Title"])
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in titles and "'+1+2" in titles and "plain title" in titles
    assert not [t for t in titles if t[0] in "=+-@"]
    for name in ("sheet.csv", "sheet.xlsx", "sheet.definitions.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_export_to_a_device_writes_nothing(sheet_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = set(os.listdir("/dev"))
    code, _, err = run_main(["annotate", "export", "--store", str(sheet_store), "--out", "/dev/full", "--sample", "2"], capsys)
    assert code == 2 and err.startswith("error: --out /dev/full") and "not a regular file" in err
    assert set(os.listdir("/dev")) == before


def test_a_pull_replaces_its_project_rows_and_leaves_sheet_labels(tmp_path: Path) -> None:
    from miner.store import open_store, save_thread
    from taxonomy.annotate import store_labels
    from taxonomy.annotate_studio import PullResult, store_pull

    conn = open_store(tmp_path / "s.sqlite")
    save_thread(conn, {"repo": "acme/det", "number": 9, "title": "t", "body": "b", "state": "closed", "comments": []},
                source="test")
    store_labels(conn, pd.DataFrame([{"issue": "https://github.com/acme/det/issues/9", "defect_index": 1, "dimension": "stage",
                                      "label": "training", "provenance": "agreed:a.csv|b.csv"}]))
    anns = [_ann(1, "a@x", {(1, "stage"): "modeling"}), _ann(1, "b@x", {(1, "stage"): "modeling"})]
    final, _ = _decide(anns, "now", "http://ls P")
    store_pull(conn, PullResult("P", 1, anns, ["a@x", "b@x"], [], {}, [], final), "http://ls P", "now")
    rows = conn.execute("SELECT number, label, provenance, raters, task FROM human_labels ORDER BY number").fetchall()
    assert [tuple(r) for r in rows] == [(1, "modeling", "label-studio agreed:a@x|b@x", "a@x|b@x", "http://ls P task 1"),
                                        (9, "training", "agreed:a.csv|b.csv", None, None)]
    # the raters now disagree and nobody adjudicated: the project's old final label goes, the sheet's stays
    anns[1].labels = {(1, "stage"): "training"}
    final, _ = _decide(anns, "now", "http://ls P")
    store_pull(conn, PullResult("P", 1, anns, ["a@x", "b@x"], [], {}, [], final), "http://ls P", "now")
    assert [r[0] for r in conn.execute("SELECT number FROM human_labels")] == [9]
    assert conn.execute("SELECT COUNT(*) FROM human_annotations").fetchone()[0] == 2
