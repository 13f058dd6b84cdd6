"""Prediction-powered inference: equal to the ppi-python package, and valid coverage on simulated labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.ppi import ppi_mean, ppi_ratio, prediction_powered
from analysis.synthetic import synthetic_defects
from analysis.tables import prepare_defects
from reeng.errors import ReengError


def _simulate(rng: np.random.Generator, n: int, big_n: int, p: np.ndarray, confusion: np.ndarray):
    """True classes drawn from p; the 'classifier' answers through a confusion matrix (rows: truth)."""
    k = len(p)
    truth = rng.choice(k, size=big_n, p=p)
    cum = confusion.cumsum(axis=1)[truth]
    pred = (rng.random(big_n)[:, None] > cum).sum(axis=1)
    labeled = rng.choice(big_n, size=n, replace=False)
    eye = np.eye(k)
    return eye[truth[labeled]], eye[pred[labeled]], eye[pred]


# ppi_py.ppi_mean_ci(y, yhat, yu, alpha=0.05, lam=..., lam_optim_mode="element") of ppi-python 0.2.3 on the draw
# below. The package is not a dependency: it installs a top-level ``tests`` package that shadows this one.
PPI_PY_REFERENCE = {
    1.0: ([0.43300075776, 0.23084988179, 0.175245405336], [0.552332575574, 0.349683451543, 0.258887927997]),
    None: ([0.416429339763, 0.252335751057, 0.188863575343], [0.516795080605, 0.348733542907, 0.264102824079]),
}


def test_matches_ppi_python():
    rng = np.random.default_rng(1)
    confusion = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.2, 0.2, 0.6]])
    y, yhat, yu = _simulate(rng, 300, 5000, np.array([0.5, 0.3, 0.2]), confusion)
    for lam, (ref_low, ref_high) in PPI_PY_REFERENCE.items():
        _, low, high, _ = ppi_mean(y, yhat, yu, lam=lam)
        np.testing.assert_allclose(low, ref_low, atol=1e-10)
        np.testing.assert_allclose(high, ref_high, atol=1e-10)


def test_coverage_is_nominal_despite_a_biased_classifier():
    """Over 400 seeded draws the 95% PPI interval covers the true shares at 95% within Monte-Carlo error,
    while the machine-only interval, fooled by the classifier's bias, almost never does."""
    p = np.array([0.5, 0.3, 0.2])
    confusion = np.array([[0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])  # over-predicts class 1
    draws, covered, naive_covered, ratio_covered = 400, np.zeros(3), np.zeros(3), 0
    true_ratio = p[1] / (p[1] + p[2])
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        y, yhat, yu = _simulate(rng, 200, 4000, p, confusion)
        _, low, high, _ = ppi_mean(y, yhat, yu)
        covered += (low <= p) & (p <= high)
        share = yu.mean(0)
        half = 1.96 * np.sqrt(share * (1 - share) / len(yu))
        naive_covered += (share - half <= p) & (p <= share + half)
        den = (y[:, 1] + y[:, 2], yhat[:, 1] + yhat[:, 2], yu[:, 1] + yu[:, 2])
        _, r_low, r_high = ppi_ratio((y[:, 1], yhat[:, 1], yu[:, 1]), den)
        ratio_covered += r_low <= true_ratio <= r_high
    mc_error = 3 * np.sqrt(0.95 * 0.05 / draws)  # three Monte-Carlo standard errors
    assert np.all(np.abs(covered / draws - 0.95) <= mc_error), covered / draws
    assert abs(ratio_covered / draws - 0.95) <= mc_error, ratio_covered / draws
    # classes 0 and 1 are mis-estimated by the classifier; class 2's machine share happens to be unbiased (0.2)
    assert np.all(naive_covered[:2] / draws < 0.5), naive_covered / draws


def test_report_rows_and_threads_outside_the_corpus():
    machine = synthetic_defects(2000, seed=5, provenance="model:builtin@1")
    human = machine.sample(150, random_state=0).copy()
    flip = human.index[:40]
    human.loc[flip, "stage"] = "training"
    human["provenance"] = "lab:adjudicated"
    result = prediction_powered(prepare_defects(machine, "machine"), prepare_defects(human, "human"))
    stage = {r["category"]: r for r in result["marginals"]["stage"]}
    # per-share power tuning (PPI++) lets the shares' sum drift a little from 1
    assert abs(sum(r["ppi"]["share"] for r in stage.values()) - 1) < 0.02
    for row in stage.values():
        assert row["ppi"]["ci"][0] <= row["ppi"]["share"] <= row["ppi"]["ci"][1]
        assert row["human"]["n"] == 150 and row["machine"]["n"] == 2000
    assert result["tables"]["stage_x_manifestation"]
    assert result["claims"]["reported_by_re_users"]["available"]
    stranger = human.copy()
    stranger.loc[stranger.index[0], "issue_url"] = "https://github.com/nobody/nothing/issues/1"
    with pytest.raises(ReengError, match="not in the machine-labeled corpus") as refused:
        prediction_powered(prepare_defects(machine, "machine"), prepare_defects(stranger, "human.csv"))
    # it advised labeling a `reeng sample` draw: the study's protocol, no random sample, which PPI then warns of
    assert "annotate export --sample N" in str(refused.value) and "reeng sample" not in str(refused.value)
    assert isinstance(pd.DataFrame(result["marginals"]["stage"]), pd.DataFrame)


def test_a_claim_without_human_labeled_defects_in_its_denominator_is_not_estimated():
    """No human-labeled reproducibility defect: the classifier's error among them is unmeasured, so the claim's
    PPI share is not estimated (it read 100 % [100 %, 100 %] from a zero variance), while the others are."""
    machine = synthetic_defects(2000, seed=5, provenance="model:builtin@1")
    human = machine.sample(150, random_state=0).copy()
    human.loc[human["manifestation"] == "reproducibility", "manifestation"] = "basic"
    human["provenance"] = "lab:adjudicated"
    result = prediction_powered(prepare_defects(machine, "machine"), prepare_defects(human, "human"))
    claim = result["claims"]["reproducibility_in_training"]
    assert claim["human"]["denominator"] == 0 and claim["machine"]["denominator"] > 0
    assert claim["human"]["share"] is None and claim["human"]["ci"] == [None, None]  # not 0 % - 79 % of nothing
    assert np.isnan(claim["ppi"]["share"]) and "unmeasured" in claim["ppi"]["reason"]
    other = result["claims"]["reported_by_re_users"]["ppi"]
    assert "reason" not in other and other["ci"][0] < other["share"] < other["ci"][1]


def test_a_dimension_the_human_sample_left_unlabeled_is_not_estimated():
    """Human labels of a few dimensions only (code error left blank in every row): those dimensions' shares are not
    estimated, with a reason, and their human-only share is n/a, not 0 % [0 %, 79 %]; it ended in a ValueError
    (`reeng analyze --human` exit 1, "unexpected failure")."""
    machine = synthetic_defects(2000, seed=5, provenance="model:builtin@1")
    human = machine.sample(150, random_state=0).copy()
    human["code_error"] = None
    human.loc[human.index[1:], "root_cause"] = None  # one labeled thread: too few as well
    human["provenance"] = "lab:adjudicated"
    result = prediction_powered(prepare_defects(machine, "machine"), prepare_defects(human, "human"))
    for dim, labeled in (("code_error", 0), ("root_cause", 1)):
        for row in result["marginals"][dim]:
            assert np.isnan(row["ppi"]["share"]) and "too few" in row["ppi"]["reason"], row
            assert row["ppi"]["n_human_threads"] == labeled and row["human"]["n"] == labeled
        assert all(r["human"]["share"] is None for r in result["marginals"][dim]) == (labeled == 0)
    assert all(r["ppi"]["ci"][0] <= r["ppi"]["share"] for r in result["marginals"]["stage"])
    assert all(np.isnan(r["ppi"]["share"]) for r in result["tables"]["stage_x_code_error"])


def test_human_labels_join_the_corpus_whatever_the_case_of_the_repository_name(tmp_path):
    """GitHub's names are case-insensitive (the miner and the gold join read them so): human labels typed
    `Owner0/Model0` were "not in the machine-labeled corpus" for PPI, and fell out of a paired comparison."""
    from analysis.compare import paired_agreement

    machine = synthetic_defects(400, seed=5, provenance="model:builtin@1")
    human = machine.sample(60, random_state=0).copy()
    human["provenance"] = "lab:adjudicated"
    typed = human.assign(issue_url=human["issue_url"].str.replace(r"github\.com/([^/]+/[^/]+)",
                                                                  lambda m: "github.com/" + m.group(1).upper(), regex=True))
    assert not set(typed["issue_url"]) & set(machine["issue_url"])
    same, upper = (prediction_powered(prepare_defects(machine, "machine"), prepare_defects(h, "human")) for h in (human, typed))
    assert upper["n_human_threads"] == same["n_human_threads"] and upper["marginals"] == same["marginals"]
    paired = paired_agreement(prepare_defects(typed, "human"), prepare_defects(machine, "machine"))
    assert paired == paired_agreement(prepare_defects(human, "human"), prepare_defects(machine, "machine"))
    assert paired["threads"] == human["issue_url"].nunique()
    from analysis.study_stages import same_threads  # the study's choice of threads to pair

    typed.to_csv(tmp_path / "human.csv", index=False)
    machine.to_csv(tmp_path / "machine.csv", index=False)
    a, b = same_threads(tmp_path / "human.csv", tmp_path / "machine.csv")
    assert len(a) == len(typed) and b["issue_url"].nunique() == human["issue_url"].nunique()
