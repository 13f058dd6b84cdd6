"""The analysis run end to end: files, report contents, robustness, and the report seen in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import numpy as np
import pytest

from analysis.analyze import analyze
from analysis.figures import category_style
from analysis.synthetic import synthetic_defects
from tests.analysis_helpers import gold_eval_document
from taxonomy.model import load_taxonomy

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A short report: three dimensions, two cross-tables, a comparison, and every optional input."""
    root = tmp_path_factory.mktemp("analysis")
    cols = ["owner", "repo", "number", "issue_url", "stage", "manifestation", "reporter", "provenance"]
    synthetic_defects(300, seed=3)[cols].to_csv(root / "human.csv", index=False)
    synthetic_defects(300, seed=4)[cols].to_parquet(root / "machine.parquet", index=False)
    (root / "lint.json").write_text(json.dumps({"findings": [
        {"kind": "duplicate_rows", "rows": ["1", "2"], "column": None, "detail": "identical in every column"}]}))
    (root / "agreement.json").write_text(json.dumps({"dimensions": {"stage": {"kappa": 0.18, "agreement": 0.4, "n": 40, "missing": 0}}}))
    (root / "gold_eval.json").write_text(json.dumps(gold_eval_document(development=3, held_out=2)))
    (root / "reproduction.json").write_text(json.dumps({"results": [
        {"case": "yolo-anchor", "issues": ["ultralytics/yolov5#1"], "labels": {"stage": "training"},
         "verdict": "reproduced", "figures": ["loss.png"], "seconds": 12.5, "versions": {"torch": "2.13.0"}},
        {"case": "partial-entry"},
        {"case": "long-error", "verdict": "error", "reason": "RuntimeError: " + "x" * 400,
         "versions": {f"package{i}": "1.0.0+cu121.post" + "9" * 30 for i in range(8)}}]}))
    out = root / "out"
    result = analyze(root / "human.csv", out, compare=root / "machine.parquet",
                     extras={k: root / f"{k}.json" for k in ("lint", "agreement", "gold_eval", "reproduction")},
                     title="Synthetic check", command="reeng analyze --defects human.csv", formats=("png", "pdf"))
    return root, out, result


def test_outputs_are_complete(small_run):
    _, out, result = small_run
    tables = json.loads((out / "tables.json").read_text())
    assert set(tables["stage_x_manifestation"]) <= set(load_taxonomy().dimension("stage").ids)
    assert {"claims", "marginals", "unavailable"} <= set(tables)
    assert "stage_x_code_error" in tables["unavailable"]
    assert (out / "tables" / "stage_x_manifestation.csv").is_file()
    assert (out / "tables" / "marginal_stage.csv").is_file()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stage_x_manifestation"]["cramers_v"] > 0.3  # the generator ties manifestation to stage
    for name in ("marginals", "stage_x_manifestation_bars", "stage_x_manifestation_heatmap"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000
        assert (out / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    assert json.loads((out / "compare.json").read_text())["labels"] == ["human", "machine"]
    assert len(result.figures) == 5


def test_html_is_self_contained_and_complete(small_run):
    root, out, _ = small_run
    html = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", html)
    assert "<script" not in html and "<link" not in html
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(images) == 5 and all(i.startswith("data:image/png;base64,") for i in images)
    for text in ("Cramér's V", "Monte-Carlo p", "Wilson 95% interval", "Comparison: human vs machine",
                 "duplicate_rows", "0.180", "yolo-anchor", "reproduced", "partial-entry",
                 "3 cases. Verdicts: error 1, reproduced 1, unknown 1.", "Design: independent samples",
                 "Rao-Scott corrected p", "bias-corrected (Bergsma 2013)", "Holm p", "cluster bootstrap, by repository",
                 "no data: no code_error column", "reeng analyze --defects human.csv"):
        assert text in html, text
    from reeng.datasets import sha256_file
    assert sha256_file(root / "human.csv") in html and sha256_file(root / "machine.parquet") in html


def test_classifier_scores_keep_coverage_intervals_and_the_gold_set(small_run):
    """The classifier's section shows κ with its interval and coverage, at the threshold and as best guess, for
    the development set apart from the held-out threads, and the model trained on gold by repository."""
    _, out, _ = small_run
    for name in ("report.html", "report.md"):
        text = unescape((out / name).read_text())
        section = text[text.index("Classifier vs human labels"):text.index("Reproduction results")]
        for part in ("Labeler: rules and text models", "Development set: 3 defects in 3 issues",
                     "Held-out gold threads: 2 defects in 2 issues", "never read while the labeler was developed",
                     "7 gold defects have no stored thread", "60%", "0.91 [0.70, 1.00]", "0.52 [0.31, 0.72]",
                     "95%", "0.58 [0.35, 0.82]", "stage 0.11 [-0.17, 0.40]", "Note: few rows."):
            assert part in section, (name, part)
        assert "No held-out gold thread" not in section, name


def test_classifier_section_says_when_nothing_was_held_out(tmp_path):
    """Only development threads scored: the report says nothing measures the labeler on new threads and how to;
    a document with bare dimensions (another tool's) still shows what it holds."""
    synthetic_defects(60, seed=5)[["stage", "manifestation"]].to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "dev.json").write_text(json.dumps(gold_eval_document(development=3, held_out=0)))
    (tmp_path / "bare.json").write_text(json.dumps({"dimensions": {"stage": {"macro_f1": 0.61, "kappa": 0.52, "n": 348}}}))
    for name, expected, absent in (
            ("dev", ["Development set: 3 defects", "No held-out gold thread is in the store", "reeng gold fetch-threads"],
             ["Held-out gold threads:"]),
            ("bare", ["Gold defects with a stored thread", "| stage | 348 | n/a | 0.52 |"], ["No held-out", "Development set"])):
        analyze(tmp_path / "d.csv", tmp_path / name, extras={"gold_eval": tmp_path / f"{name}.json"}, workers=1)
        md = (tmp_path / name / "report.md").read_text()
        assert all(e in md for e in expected) and not any(a in md for a in absent), (name, md[md.index("## Classifier"):])


def test_classifier_section_against_a_stores_own_human_labels(tmp_path):
    """A gold-eval document scored against the store's adjudicated labels names them, titles its sets by whether
    the built-in labeler trained on the threads, and says when no thread new to it was scored."""
    synthetic_defects(60, seed=5)[["stage", "manifestation"]].to_csv(tmp_path / "d.csv", index=False)
    document = gold_eval_document(development=3, held_out=0)
    document |= {"reference": "human_labels",
                 "splits": {"annotated": document["splits"]["development"], "unannotated": document["splits"]["held_out"]}}
    (tmp_path / "human.json").write_text(json.dumps(document))
    analyze(tmp_path / "d.csv", tmp_path / "out", extras={"gold_eval": tmp_path / "human.json"}, workers=1)
    md = (tmp_path / "out" / "report.md").read_text()
    start = md.index("## Classifier")
    section = md[start:md.index("\n## ", start)]
    assert "3 adjudicated defects (the store" in section and "Threads the labeler was trained on: 3 defects" in section
    assert "nothing here measures it on threads it never saw" in section
    assert "gold" not in section.lower()  # neither the gold wording nor the GitHub hint for gold threads


def test_markdown_links_existing_figures(small_run):
    _, out, _ = small_run
    md = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links and all((out / link).is_file() for link in links)
    assert "| **total** |" in md and "## Classifier vs human labels" in md


def test_bad_optional_inputs_become_explicit_sections(tmp_path):
    synthetic_defects(80, seed=5)[["stage", "manifestation"]].to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "lint.json").write_text("{not json")
    (tmp_path / "gold_eval.json").write_text(json.dumps({"something": 1}))
    analyze(tmp_path / "d.csv", tmp_path / "out", extras={"lint": tmp_path / "lint.json", "gold_eval": tmp_path / "gold_eval.json",
                                                         "reproduction": tmp_path / "missing.json"}, workers=1)
    html = unescape((tmp_path / "out" / "report.html").read_text())
    assert "not available: not readable JSON" in html
    assert "not available: no 'dimensions' entry" in html
    assert "not available: file not found" in html
    assert "Rater agreement (Cohen's kappa)</h2>\n<p class=\"nodata\">not available: not provided" in html


def test_a_bad_report_input_on_the_command_line_is_one_error_line(tmp_path, capsys):
    """The same inputs named on `reeng analyze`'s command line are bad input (a mistyped path gave a report without
    the section, exit 0); nothing is written."""
    from tests.conftest import run_main

    synthetic_defects(40, seed=5)[["stage", "manifestation"]].to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "lint.json").write_text("{not json")
    (tmp_path / "agreement.json").write_text(json.dumps({"something": 1}))
    for option, path, problem in (("--lint", tmp_path / "lint.json", "not readable JSON (JSONDecodeError)"),
                                  ("--agreement", tmp_path / "agreement.json", "no 'dimensions' entry"),
                                  ("--reproduction", tmp_path / "missing.json", "file not found"),
                                  ("--gold-eval", tmp_path, "not readable JSON (IsADirectoryError)")):
        code, out, err = run_main(["analyze", "--defects", str(tmp_path / "d.csv"), "--out", str(tmp_path / "out"),
                                   option, str(path)], capsys)
        assert code == 2 and err.strip() == f"error: {option} {path}: {problem}", err
        assert not (tmp_path / "out").exists()


def test_one_category_table_reports_instead_of_failing(tmp_path):
    import pandas as pd

    pd.DataFrame({"stage": ["training"] * 5, "manifestation": ["basic", "basic", "evolutionary", "basic", "evolutionary"]}).to_csv(
        tmp_path / "d.csv", index=False)
    result = analyze(tmp_path / "d.csv", tmp_path / "out", workers=1)
    assert result.tests["stage_x_manifestation"].statistic is None
    assert "not tested: fewer than two categories" in (tmp_path / "out" / "report.html").read_text()


def test_cli_json_and_errors_leave_no_partial_output(tmp_path, reeng):
    synthetic_defects(60, seed=6)[["stage", "manifestation", "reporter"]].to_csv(tmp_path / "d.csv", index=False)
    done = reeng("analyze", "--defects", str(tmp_path / "d.csv"), "--out", str(tmp_path / "out"), "--json", "--formats", "png")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["claims"]["reported_by_re_users"]["denominator"] == 60
    assert not list((tmp_path / "out" / "figures").glob("*.pdf"))
    (tmp_path / "bad.csv").write_text("stage,manifestation\nenvironment,explodes\n")
    failed = reeng("analyze", "--defects", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "out2"))
    assert failed.returncode == 2 and failed.stderr.startswith("error:") and "'explodes'" in failed.stderr
    assert "Traceback" not in failed.stderr and not (tmp_path / "out2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out2")]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(small_run, tmp_path):
    """The report as a browser shows it: tables styled, figures decoded and drawn, no-data boxes visible."""
    from PIL import Image

    _, out, _ = small_run
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--hide-scrollbars", "--window-size=1280,4200", f"--screenshot={shot}", (out / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    assert len(pixels) == 1280 * 4200
    non_white = (pixels < 245).any(axis=1).mean()
    assert non_white > 0.03, f"only {non_white:.1%} of the page is drawn"

    def share_near(hex_colour: str, tol: int = 6) -> float:
        target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        return float((np.abs(pixels - target).max(axis=1) <= tol).mean())

    assert share_near("#dde3ee") > 0.001, "table headers are not rendered"
    colour, _ = category_style(load_taxonomy().dimension("manifestation"), "basic")
    assert share_near(colour, tol=10) > 0.001, "the figures' category colours are not on screen"
    assert share_near("#fff4d6") > 0.0005, "the no-data sections are not rendered"
    assert len(np.unique(pixels[::7], axis=0)) > 200

    # Horizontal overflow at a laptop width: the page must not scroll sideways (wide tables scroll in their box).
    probe = tmp_path / "probe.html"
    probe.write_text((out / "report.html").read_text().replace("</body>", """<script>
document.body.setAttribute("data-overflow", document.documentElement.scrollWidth - document.documentElement.clientWidth);
</script></body>"""))
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--window-size=1024,800", "--dump-dom", probe.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    overflow = re.search(r'data-overflow="(-?\d+)"', dom)
    assert overflow is not None, "the probe did not run"
    assert int(overflow.group(1)) <= 0, f"the report overflows horizontally by {overflow.group(1)} px"


def test_category_styles_are_categorical_colour_blind_safe_and_greyscale_legible():
    """Nominal categories: Tol's colour-blind-safe palette (not a sequential map), a distinct (colour, hatch)
    pair per category even for 13-14 categories, and neighbours that differ in grey level and hatch."""
    from matplotlib.colors import to_rgb

    from analysis.figures import PALETTE

    for dim in load_taxonomy().dimensions:
        labels = [c.id for c in dim.categories if c.origin != "bucket"]
        styles = [category_style(dim, c) for c in labels]
        assert len(set(styles)) == len(styles), dim.id
        assert all(colour in PALETTE for colour, _ in styles), dim.id
        greys = [np.dot(to_rgb(colour), [0.299, 0.587, 0.114]) for colour, _ in styles]
        for (ga, (_, ha)), (gb, (_, hb)) in zip(zip(greys, styles), zip(greys[1:], styles[1:])):
            assert abs(ga - gb) > 0.1 and ha != hb, dim.id
        if len(labels) >= 4:  # a sequential map would make grey level monotone in taxonomy order
            assert not all(b > a for a, b in zip(greys, greys[1:])), dim.id


def _outside(fig) -> list[str]:
    """Texts (titles, tick labels, legend) whose bounding box leaves the figure, as drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    bad = []
    for text in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent")):
        if not text.get_visible() or not text.get_text():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < frame.x0 - 0.5 or box.y0 < frame.y0 - 0.5 or box.x1 > frame.x1 + 0.5 or box.y1 > frame.y1 + 0.5:
            bad.append(text.get_text()[:40])
    return bad


def test_figures_are_print_ready(tmp_path, monkeypatch):
    """Every figure, including the 13- and 14-category dimensions: no text outside the canvas, at most a
    double-column page wide, and PDFs with TrueType (Type 42) fonts only, never Type 3."""
    import matplotlib.pyplot as plt

    from analysis import figures
    from analysis.tables import compute_tables, prepare_defects

    seen = []
    original = figures.fit_canvas

    def spy(fig):
        original(fig)
        seen.append((fig.axes[0].get_title(), _outside(fig), fig.get_size_inches()))

    monkeypatch.setattr(figures, "fit_canvas", spy)
    defects = prepare_defects(synthetic_defects(400, seed=8), "synthetic")
    tables = compute_tables(defects)
    assert max(len(m.counts) for m in tables.marginals.values()) >= 13
    # the widest tables (14 and 20 columns) and the marginals: 5 of the 15 figures, to keep the test fast
    widest = {k: tables.cross[k] for k in ("stage_x_code_error", "stage_x_root_cause")}
    drawn = figures.draw_all(widest, tables.marginals, defects.taxonomy, tmp_path, ("png", "pdf"), workers=1)
    assert len(seen) == len(drawn) == 5
    for title, outside, (width, _) in seen:
        assert outside == [], (title, outside)
        assert width <= figures.DOUBLE_COLUMN_IN + 0.05, (title, width)
    for paths in drawn.values():
        pdf = paths[1].read_bytes()
        assert b"/Type3" not in pdf and b"/FontFile2" in pdf, paths[1].name
    # the check itself fails on a clipped title and on Type 3 fonts
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.set_title("a title much too long for a figure only two inches wide")
    assert _outside(fig)
    fig.savefig(tmp_path / "type3.pdf")
    plt.close(fig)
    assert b"/Type3" in (tmp_path / "type3.pdf").read_bytes()  # matplotlib's default, which STYLE overrides


def test_no_input_can_inject_markup(tmp_path):
    """A <script> in a comparison label, the title, the command line, an exception text and issue text arrives
    escaped in the HTML and the Markdown report, and in a release's datasheet."""
    attack = "<script>alert('x')</script>"
    cols = ["owner", "repo", "number", "issue_url", "stage", "manifestation", "provenance"]
    synthetic_defects(80, seed=5)[cols].to_csv(tmp_path / "a.csv", index=False)
    synthetic_defects(80, seed=6)[cols].to_csv(tmp_path / "b.csv", index=False)
    (tmp_path / "lint.json").write_text(json.dumps({"findings": [
        {"kind": "unknown_label", "rows": ["3"], "column": attack, "detail": f"issue text: {attack}"}]}))
    (tmp_path / "reproduction.json").write_text(json.dumps({"results": [
        {"case": attack, "issues": [f"owner/repo#1 {attack}"], "labels": {"stage": attack}, "verdict": "error",
         "reason": f"RuntimeError: {attack}", "figures": [], "seconds": 1.0, "versions": {"torch": attack}}]}))
    evaluation = gold_eval_document(label_source=attack) | {"note": attack}
    (tmp_path / "gold_eval.json").write_text(json.dumps(evaluation))
    out = tmp_path / "out"
    analyze(tmp_path / "a.csv", out, compare=tmp_path / "b.csv", labels=(attack, "machine"), title=attack,
            command=f"reeng analyze --title {attack}", formats=("png",),
            extras={"lint": tmp_path / "lint.json", "reproduction": tmp_path / "reproduction.json",
                    "gold_eval": tmp_path / "gold_eval.json"})
    for name in ("report.html", "report.md"):
        text = (out / name).read_text()
        assert "<script" not in text, name
        # title (x2 in HTML), label, command, exception, issue text, case, versions, the classifier's
        # label source and note: every one escaped
        assert text.count("&lt;script&gt;") >= 9, (name, text.count("&lt;script&gt;"))
    from analysis.release import ReleaseOptions, write_release

    write_release(tmp_path / "release", defects=[tmp_path / "a.csv"],
                  options=ReleaseOptions(title=attack, authors=(attack,), salt="s" * 20))
    readme = (tmp_path / "release" / "README.md").read_text()
    assert "<script" not in readme and "&lt;script&gt;" in readme


def test_figure_formats_default_to_png_and_a_study_can_ask_for_pdf(tmp_path):
    """The report needs PNG only, so PDFs (print, TrueType fonts) are drawn on request: `--formats png,pdf`
    or a study config's ``analysis.formats``; png must come first, and an unknown format is refused."""
    from analysis.study_stages import analysis_stage
    from reeng.errors import ReengError
    from reeng.study import StudyContext
    from reeng.study_config import validate_config

    cols = ["owner", "repo", "number", "issue_url", "stage", "manifestation", "provenance"]
    synthetic_defects(60, seed=7, provenance="jiang2024:adjudicated")[cols].to_parquet(tmp_path / "d.parquet", index=False)
    default = analyze(tmp_path / "d.parquet", tmp_path / "plain", workers=1)
    assert all([p.suffix for p in paths] == [".png"] for paths in default.figures.values())
    config = {"name": "t", "analysis": {"formats": ["png", "pdf"]}}
    ctx = StudyContext(config=config, out=tmp_path / "study", config_dir=tmp_path, artifacts={"defects": tmp_path / "d.parquet"})
    (tmp_path / "study").mkdir()
    assert analysis_stage(ctx)["figures"] == 3
    pdfs = sorted((tmp_path / "study" / "report" / "figures").glob("*.pdf"))
    assert len(pdfs) == 3 and all(b"/FontFile2" in p.read_bytes() for p in pdfs)
    config["analysis"]["formats"] = ["pdf", "png"]
    with pytest.raises(ReengError, match="png first"):
        analysis_stage(ctx)
    with pytest.raises(ReengError, match="formats"):
        validate_config({"name": "t", "analysis": {"formats": ["png", "jpg"]}})
