"""Tables, claims and statistics: the study's numbers from its data, and behaviour on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.compare import compare_tables
from analysis.stats import chi_square
from analysis.synthetic import synthetic_defects
from analysis.tables import compute_tables, load_defects, prepare_defects, wilson_interval
from reeng.errors import ReengError


@pytest.fixture(scope="module")
def gold_tables(jiang_dir):
    from taxonomy.gold import import_defects

    defects = import_defects(jiang_dir / "CV_Reengineeirng_Defects.csv")
    return compute_tables(prepare_defects(defects, "gold"))


@pytest.mark.shared_data
def test_gold_cross_tables_equal_the_study(gold_tables):
    j = gold_tables.to_json()
    manif = j["stage_x_manifestation"]
    assert {s: (r["basic"], r["evolutionary"], r["reproducibility"]) for s, r in manif.items()} == {
        "environment": (134, 17, 6), "training": (32, 32, 26), "data_pipeline": (41, 23, 4), "modeling": (18, 13, 2)}
    assert j["reporter_x_manifestation"]["re_user"] == {"basic": 161, "reproducibility": 34, "evolutionary": 8}
    assert j["marginals"]["manifestation"] == {"basic": 225, "reproducibility": 38, "evolutionary": 85}
    assert j["unavailable"] == {}
    # Every cross-table counts each defect once (repo_type is missing for one defect).
    for name, table in gold_tables.cross.items():
        assert int(table.counts.to_numpy().sum()) + table.excluded == 348, name
    assert gold_tables.cross["repo_type_x_manifestation"].excluded == 1


@pytest.mark.shared_data
def test_gold_claims_equal_the_abstract(gold_tables):
    claims = gold_tables.claims
    got = {k: (c["numerator"], c["denominator"], c["percent"]) for k, c in claims.items()}
    assert got == {
        "reported_by_re_users": (203, 348, 58.3),
        "reproducibility_in_training": (26, 38, 68.4),
        "environment_interface": (138, 157, 87.9),
        "environment_api": (73, 157, 46.5),
    }
    for c in claims.values():
        assert c["ci_low"] < c["share"] < c["ci_high"]


@pytest.mark.shared_data
def test_bucket_is_its_own_last_column(gold_tables):
    columns = list(gold_tables.cross["stage_x_root_cause"].counts.columns)
    assert columns[-1] == "low_frequency"
    assert columns.index("api_defect") < columns.index("gpu_usage")  # taxonomy order
    assert list(gold_tables.cross["impact_x_stage"].counts.index)[-1] == "low_frequency"


def test_wilson_matches_scipy():
    k = np.array([0, 1, 26, 203, 348])
    low, high = wilson_interval(k, 348)
    for i, ki in enumerate(k):
        ci = stats.binomtest(int(ki), 348).proportion_ci(method="wilson")
        assert low[i] == pytest.approx(ci.low, abs=1e-9)
        assert high[i] == pytest.approx(ci.high, abs=1e-9)


def test_chi_square_detects_association_and_flags_sparse_tables():
    dependent = chi_square(pd.DataFrame([[40, 2], [3, 45]]))
    independent = chi_square(pd.DataFrame([[20, 20], [21, 19]]))
    assert dependent.p_value < 1e-6 and dependent.p_monte_carlo < 0.01 and dependent.cramers_v > 0.7
    assert independent.p_monte_carlo > 0.5 and independent.cramers_v < 0.1
    sparse = chi_square(pd.DataFrame([[3, 0, 1], [0, 2, 1]]))
    assert "unreliable" in sparse.note and sparse.p_monte_carlo is not None


def test_one_category_is_not_tested():
    result = chi_square(pd.DataFrame([[5, 3, 2]]))
    assert result.statistic is None and "fewer than two categories" in result.note


def test_raw_spellings_are_normalised_and_unknown_labels_named():
    frame = pd.DataFrame({"stage": ["Environment", "training "], "manifestation": ["Basic defect", "basic"]})
    defects = prepare_defects(frame, "t")
    assert list(defects.frame["stage"]) == ["environment", "training"]
    with pytest.raises(ReengError, match="unknown stage label.*'Cloud'"):
        prepare_defects(pd.DataFrame({"stage": ["Cloud"]}), "t")


def test_missing_dimensions_become_unavailable_tables_and_claims():
    tables = compute_tables(prepare_defects(pd.DataFrame({"stage": ["environment", "training"]}), "t"))
    assert tables.cross["stage_x_manifestation"].counts is None
    assert "no manifestation column" in tables.cross["stage_x_manifestation"].reason
    assert tables.claims["reproducibility_in_training"]["available"] is False
    assert set(tables.to_json()["unavailable"]) == set(tables.cross)


def test_empty_and_label_free_tables_are_errors(tmp_path):
    with pytest.raises(ReengError, match="no rows"):
        prepare_defects(pd.DataFrame({"stage": []}), "t")
    with pytest.raises(ReengError, match="no label column"):
        prepare_defects(pd.DataFrame({"x": [1]}), "t")
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ReengError, match="bad.csv"):
        load_defects(tmp_path / "bad.csv")


def test_compare_identical_and_different_label_sets():
    a = compute_tables(prepare_defects(synthetic_defects(600, seed=1), "a"))
    same = compare_tables(a, a, "human", "machine")
    test = same["tables"]["stage_x_manifestation"]["test"]
    assert test["statistic"] == pytest.approx(0) and test["p_monte_carlo"] == 1.0
    assert all(c["difference_pp"] == 0 for c in same["marginals"]["stage"]["cells"])
    b = compute_tables(prepare_defects(synthetic_defects(600, seed=2), "b"))
    diff = compare_tables(a, b, "study", "corpus")
    assert diff["marginals"]["stage"]["test"]["p_monte_carlo"] < 0.01
    cells = diff["marginals"]["stage"]["cells"]
    assert sum(c["difference_pp"] for c in cells) == pytest.approx(0, abs=0.05)
    assert {"study", "corpus", "share_study", "share_corpus"} <= set(cells[0])


def test_every_cell_share_has_a_wilson_interval():
    tables = compute_tables(prepare_defects(synthetic_defects(500, seed=7), "t"))
    shares = tables.cross["stage_x_manifestation"].row_share_intervals()
    assert (shares.groupby("stage")["share"].sum().round(9) == 1).all()
    assert ((shares["ci_low"] <= shares["share"]) & (shares["share"] <= shares["ci_high"])).all()
    row = shares.iloc[0]
    ci = stats.binomtest(int(row["count"]), int(row["row_total"])).proportion_ci(method="wilson")
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))
    cell = compare_tables(tables, tables, "a", "b")["marginals"]["stage"]["cells"][0]
    assert cell["ci_a"] == cell["ci_b"] and cell["ci_a"][0] < cell["share_a"] < cell["ci_a"][1]


def test_bias_corrected_cramers_v_on_the_study(gold_tables):
    """Bergsma's correction on the study's stage x root cause table: 0.822 uncorrected, 0.802 corrected."""
    from analysis.stats import cramers_v_corrected

    counts = gold_tables.cross["stage_x_root_cause"].counts
    assert round(chi_square(counts).cramers_v, 3) == 0.822
    assert round(cramers_v_corrected(counts.to_numpy()), 3) == 0.802
    # no association: the correction removes the small-sample bias that plain V keeps
    rng = np.random.default_rng(0)
    noise = np.array([np.histogram2d(rng.integers(0, 4, 60), rng.integers(0, 5, 60), bins=(4, 5))[0] for _ in range(300)])
    plain = np.mean([chi_square(t, resamples=9).cramers_v for t in noise[:60]])
    corrected = np.nanmean(cramers_v_corrected(noise))
    assert corrected < plain / 2


def test_holm_and_benjamini_hochberg():
    from analysis.stats import adjust

    adjusted = adjust({"a": 0.01, "b": 0.04, "c": 0.03, "untested": None})
    assert {k: tuple(round(x, 6) for x in v) for k, v in adjusted.items()} == {
        "a": (0.03, 0.03), "b": (0.06, 0.04), "c": (0.06, 0.04)}


def test_clustered_tests_and_intervals_widen_with_clustering():
    """The same counts, once from independent defects and once from a few repositories that each hold one
    kind of defect: the cluster-aware test and intervals react, the naive ones cannot."""
    from analysis.stats import clustered_chi_square, clustered_share_intervals

    rng = np.random.default_rng(4)
    stages = rng.choice(["environment", "training"], 400)
    manif = np.where(rng.random(400) < 0.6, np.where(stages == "training", "reproducibility", "basic"), "evolutionary")
    independent = pd.DataFrame({"owner": [f"o{i}" for i in range(400)], "repo": "r", "stage": stages, "manifestation": manif})
    independent["issue_url"] = [f"u{i}" for i in range(400)]
    order = np.argsort(stages + manif)  # sort so that consecutive blocks of 40 form homogeneous repositories
    clustered = independent.iloc[order].reset_index(drop=True)
    clustered["owner"] = [f"o{i // 40}" for i in range(400)]
    counts = pd.crosstab(independent["stage"], independent["manifestation"])
    free, tied = (clustered_chi_square(f, "stage", "manifestation", counts, resamples=99) for f in (independent, clustered))
    assert free.statistic == tied.statistic  # same counts
    assert abs(free.design_effect - 1) < 0.3 and tied.design_effect > 3
    assert tied.p_rao_scott > free.p_rao_scott
    assert tied.v_ci_repository[1] - tied.v_ci_repository[0] > free.v_ci_repository[1] - free.v_ci_repository[0]
    wide = clustered_share_intervals(clustered, "stage", ["environment", "training"])
    narrow = clustered_share_intervals(independent, "stage", ["environment", "training"])
    width = lambda t: float((t["ci_repository_high"] - t["ci_repository_low"]).iloc[0])  # noqa: E731
    assert width(wide) > 2 * width(narrow)
