"""Label space, the rule labeler as a scikit-learn estimator, joint decoding on synthetic labels, evaluation maths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taxonomy.evaluation import bootstrap_ci, calibration, paired_difference, risk_coverage, scores
from taxonomy.joint import JointDecoder
from taxonomy.label_space import BUCKET, LabelSpace
from taxonomy.labelers import RuleLabeler
from taxonomy.rules import RULES, dimension_rules

GENERIC = {"error", "errors", "train", "training", "speed", "gap", "docker", "tutorial", "install", "config",
           "loss", "gpu", "layer", "data", "dataset", "question", "fails", "failed", "exception"}


def test_rules_are_precise() -> None:
    from taxonomy.evidence import PHRASES

    assert all("*" not in key for rule in RULES for key in rule.when)
    phrases = {p for labels in PHRASES.values() if labels is not PHRASES["library"] for v in labels.values() for p in v}
    assert not phrases & GENERIC


def test_label_space_from_labels_maps_rare_into_the_bucket() -> None:
    labels = pd.DataFrame({"impact": ["crash"] * 5 + ["lower_speed"] * 2 + [BUCKET], "code_error": ["logic", "checking"] * 4})
    space = LabelSpace.from_labels(labels, ["impact", "code_error"])
    assert space.categories["impact"] == ["crash", BUCKET, "lower_speed"]
    assert space.map("impact", "hang") == BUCKET and space.map("impact", "crash") == "crash"
    assert space.map("code_error", "configuration") is None  # no bucket in the data: the vote is dropped
    folded = LabelSpace.from_labels(labels, ["impact"], min_count=3)
    assert folded.map("impact", "lower_speed") == BUCKET


def test_rule_labeler_follows_scikit_learn_conventions() -> None:
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    rules = dimension_rules("impact")
    rng = np.random.default_rng(0)
    classes = ("crash", "lower_speed", "memory_exhaustion", BUCKET)
    X = np.zeros((200, len(rules)))
    y = rng.choice(classes, 200)
    slow = [j for j, r in enumerate(rules) if r.name == "slow"][0]
    X[y == "lower_speed", slow] = 1
    est = RuleLabeler("impact", classes=classes)
    assert clone(est).get_params()["precision"] == est.precision
    fitted = est.fit(X, y)
    assert fitted.predict_proba(X).shape == (200, 4)
    assert np.allclose(fitted.predict_proba(X).sum(axis=1), 1)
    assert (fitted.predict(X[y == "lower_speed"]) == "lower_speed").all()
    assert cross_val_score(RuleLabeler("impact", classes=classes), X, y, cv=3).mean() > 0.3
    # no labelled rows where rules fire: the rule is right with its prior precision q, else says nothing
    prior_only = RuleLabeler("impact", precision=0.7, classes=classes).fit(np.zeros((4, len(rules))), list(classes))
    one = np.zeros((1, len(rules)))
    one[0, slow] = 1
    k = list(prior_only.classes_).index("lower_speed")
    assert prior_only.predict_proba(one)[0, k] == pytest.approx(0.7 + 0.3 * prior_only.prior_[k])
    # a rule for the majority class raises it, never lowers it (q below the class's prior)
    crash = [j for j, r in enumerate(rules) if r.name == "crash_words"][0]
    major = RuleLabeler("impact", precision=0.5, classes=classes).fit(np.zeros((10, 0)), ["crash"] * 7 + ["lower_speed"] * 3)
    one = np.zeros((1, len(rules)))
    one[0, crash] = 1
    c = list(major.classes_).index("crash")
    assert major.predict_proba(one)[0, c] > major.prior_[c] and major.predict(one)[0] == "crash"
    hang = [j for j, r in enumerate(rules) if r.name == "hang"][0]
    one = np.zeros((1, len(rules)))
    one[0, hang] = 1
    assert prior_only.predict(one)[0] == BUCKET  # "hang" is not a study category: it lands in the bucket


def synthetic_labels(n: int = 600, noise: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Known structure: stage is a function of root cause (90 %); manifestation of impact and reporter."""
    rng = np.random.default_rng(seed)
    causes = np.array(["api_defect", "gpu_usage", "data_preprocessing", "hyperparameters"])
    stage_of = {"api_defect": "environment", "gpu_usage": "environment", "data_preprocessing": "data_pipeline",
                "hyperparameters": "training"}
    rc = rng.choice(causes, n)
    stage = np.array([stage_of[c] if rng.random() > noise else rng.choice(list(set(stage_of.values()))) for c in rc])
    impact = rng.choice(["crash", "lower_accuracy"], n)
    reporter = rng.choice(["re_user", "adaptor"], n)
    manifestation = np.where(impact == "lower_accuracy", "reproducibility", np.where(reporter == "adaptor", "evolutionary", "basic"))
    return pd.DataFrame({"root_cause": rc, "stage": stage, "impact": impact, "reporter": reporter,
                         "manifestation": manifestation})


def classes_of(labels: pd.DataFrame) -> dict[str, list[str]]:
    return {c: sorted(labels[c].unique()) for c in labels}


def test_joint_decoding_recovers_known_structure() -> None:
    labels = synthetic_labels()
    classes = classes_of(labels)
    decoder = JointDecoder(cliques=(("root_cause", "stage"), ("impact", "reporter", "manifestation"))).fit(labels, classes)
    prior = {d: labels[d].value_counts(normalize=True).reindex(classes[d]).to_numpy() for d in classes}
    # a confident root cause and an uninformed stage: the stage follows the root cause
    probs = {d: np.tile(prior[d], (4, 1)) for d in classes}
    probs["root_cause"] = np.eye(4) * 0.9 + 0.025
    decoded = decoder.decode(probs)
    stage = [classes["stage"][i] for i in decoded["stage"].argmax(axis=1)]
    assert stage == ["environment", "data_pipeline", "environment", "training"]  # api, data, gpu, hyperparameters
    # confident impact and reporter decide the manifestation the table says
    probs = {d: np.tile(prior[d], (2, 1)) for d in classes}
    probs["impact"] = np.array([[0.95, 0.05], [0.05, 0.95]])  # crash, lower_accuracy
    probs["reporter"] = np.array([[0.95, 0.05], [0.95, 0.05]])  # adaptor
    decoded = decoder.decode(probs)
    assert [classes["manifestation"][i] for i in decoded["manifestation"].argmax(axis=1)] == ["evolutionary", "reproducibility"]
    for d in decoded:
        assert np.allclose(decoded[d].sum(axis=1), 1)
    assert decoder.structure(labels)["root_cause -> stage"] > 0.8


def test_joint_decoding_leaves_independent_dimensions_alone() -> None:
    rng = np.random.default_rng(1)
    labels = pd.DataFrame({"root_cause": rng.choice(["a", "b"], 2000), "stage": rng.choice(["x", "y"], 2000)})
    classes = classes_of(labels)
    decoder = JointDecoder(cliques=(("root_cause", "stage"),)).fit(labels, classes)
    probs = {"root_cause": np.array([[0.99, 0.01]]), "stage": np.array([[0.3, 0.7]])}
    assert np.allclose(decoder.decode(probs)["stage"], [[0.3, 0.7]], atol=0.05)


def test_scores_keep_abstentions_apart_with_intervals() -> None:
    truth = ["a", "b", "a", "b", "a", "b", "a", "b"] * 2
    pred = ["a", "b", "a", "b", None, None, "a", "a"] * 2
    s = scores(truth, pred, probability=[0.9, 0.9, 0.8, 0.8, 0.1, 0.1, 0.7, 0.6] * 2)
    assert s["coverage"] == 0.75 and s["answered"] == 12
    assert s["kappa"] > s["kappa_abstain_wrong"]
    assert s["kappa_ci"][0] <= s["kappa"] <= s["kappa_ci"][1]
    assert s["risk_coverage"][-1]["coverage"] == 0.75 and s["calibration"]["ece"] is not None
    assert s["confusion"] == {"labels": ["a", "b", "(abstain)"], "matrix": [[6, 0, 2], [2, 4, 2], [0, 0, 0]]}


def test_scores_of_one_class_warn_of_nothing() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's confusion_matrix warned here, once per dimension of a small store
        s = scores(["a", "a"], ["a", "a"])
    assert s["confusion"] == {"labels": ["a"], "matrix": [[2]]} and s["kappa"] is None


def test_bootstrap_ci_narrows_with_more_rows_and_calibration_error_is_measured() -> None:
    rng = np.random.default_rng(0)

    def interval(n: int) -> float:
        t = list(rng.choice(["a", "b"], n))
        p = [x if rng.random() < 0.8 else ("b" if x == "a" else "a") for x in t]
        lo, hi = bootstrap_ci(t, p, lambda a, b: float(np.mean(np.array(a) == np.array(b))), n=300)
        return hi - lo

    assert interval(400) < interval(40)
    overconfident = calibration(["a"] * 10, ["a"] * 5 + ["b"] * 5, [0.95] * 10)
    assert overconfident["ece"] == pytest.approx(0.45)
    curve = risk_coverage(["a", "a", "b"], ["a", "b", "b"], [0.9, 0.2, 0.8])
    assert curve[0]["risk"] == 0.0 and curve[-1]["risk"] == pytest.approx(1 / 3)


def test_paired_difference_has_the_sign_of_the_better_labeler_and_a_paired_interval() -> None:
    rng = np.random.default_rng(3)
    truth = [str(v) for v in rng.integers(0, 3, 400)]

    def noisy(share: float) -> list[str]:
        return [str(rng.integers(0, 3)) if rng.random() < share else t for t in truth]

    good, poor = noisy(0.2), noisy(0.6)
    res = paired_difference(truth, good, poor)
    assert res["n"] == 400 and res["difference"] > 0.3
    assert 0 < res["difference_ci"][0] < res["difference"] < res["difference_ci"][1]
    back = paired_difference(truth, poor, good)
    assert back["difference"] == pytest.approx(-res["difference"])
    same = paired_difference(truth, good, good, "macro_f1")
    assert same["difference"] == 0 and same["difference_ci"] == [0.0, 0.0]  # the same rows in every draw
    # Pairing: a labeler that differs from another on 8 rows differs from it by far less than the width
    # of one labeler's own interval, which a comparison of two separate intervals would have to use.
    fixed = list(good)
    wrong_rows = [i for i, (t, g) in enumerate(zip(truth, good)) if t != g][:8]
    for i in wrong_rows:
        fixed[i] = truth[i]
    paired = paired_difference(truth, fixed, good)
    lo, hi = bootstrap_ci(truth, good, "kappa")
    assert paired["difference"] > 0 and paired["difference_ci"][0] >= 0
    assert paired["difference_ci"][1] - paired["difference_ci"][0] < (hi - lo) / 2
    by_repo = paired_difference(truth, good, poor, groups=[f"r{i % 20}" for i in range(400)])
    assert by_repo["difference"] == res["difference"] and by_repo["difference_ci"] != res["difference_ci"]


def test_temper_flattens_keeps_the_order_and_the_balanced_decision() -> None:
    from taxonomy.labelers import decide, temper

    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.full(6, 0.3), 200)
    prior = rng.dirichlet(np.full(6, 2.0))
    hot = temper(probs, 3.0)
    assert np.allclose(hot.sum(axis=1), 1) and (hot.max(axis=1) < probs.max(axis=1)).all()
    assert (hot.argmax(axis=1) == probs.argmax(axis=1)).all()
    assert (decide(hot, temper(prior, 3.0)[0]) == decide(probs, prior)).all()  # the same best guess
    assert np.array_equal(temper(probs, 1.0), probs)


def test_fit_temperature_recovers_a_known_overconfidence_and_lowers_the_calibration_error() -> None:
    from taxonomy.labelers import fit_temperature, temper

    rng = np.random.default_rng(7)
    true = rng.dirichlet(np.full(8, 0.5), 4000)  # calibrated probabilities
    truth = np.array([rng.choice(8, p=row) for row in true])
    overconfident = temper(true, 1 / 3)  # what a labeler three times too sure would report
    t = fit_temperature(overconfident, truth)
    assert 2.5 < t < 3.6
    guess = overconfident.argmax(axis=1)
    labels = [str(v) for v in truth]

    def ece(probs: np.ndarray) -> float:
        return calibration(labels, [str(g) for g in guess], list(probs[np.arange(len(guess)), guess]))["ece"]

    assert ece(temper(overconfident, t)) < 0.03 < 0.15 < ece(overconfident)
    assert 0.8 < fit_temperature(true, truth) < 1.25  # calibrated already: left about as it is


def test_decide_balanced_picks_what_the_evidence_raised_and_the_prior_without_evidence() -> None:
    from taxonomy.labelers import decide

    prior = np.array([0.7, 0.2, 0.1])
    assert list(decide(np.tile(prior, (2, 1)), prior)) == [0, 0]  # no evidence: every ratio is 1, the prior decides
    raised = np.array([[0.6, 0.15, 0.25]])  # the third category more than doubled but is still not the most likely
    assert decide(raised, prior, "balanced")[0] == 2 and decide(raised, prior, "map")[0] == 0
    with pytest.raises(ValueError, match="decision"):
        decide(raised, prior, "vote")


def imbalanced_rule_data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Known structure: a 70 % majority class; each minority class has a rule that fires on half its rows (and 5 % of others)."""
    rules = dimension_rules("impact")
    names = {"crash": "crash_words", "lower_speed": "slow", "lower_accuracy": "low_accuracy", "memory_exhaustion": "memory_growth"}
    classes = ("crash", "lower_accuracy", "lower_speed", "memory_exhaustion")
    rng = np.random.default_rng(seed)
    y = rng.choice(classes, n, p=[0.7, 0.1, 0.1, 0.1])
    X = np.zeros((n, len(rules)))
    for c, rule in names.items():
        j = [i for i, r in enumerate(rules) if r.name == rule][0]
        X[:, j] = np.where(y == c, rng.random(n) < 0.5, rng.random(n) < 0.05)
    return X, y, classes


@pytest.mark.parametrize("precision", [0.3, 0.6, 0.9])
def test_balanced_decision_beats_the_prior_on_synthetic_rules(precision: float) -> None:
    """The default decision recovers minority classes a rule points at; a constant (prior) answer fails the floor.

    The labeler is not fitted on the rows' labels (only the class prior), like the built-in one, so
    the precision it assumes is wrong for some of these rules: the decision must work anyway.
    """
    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

    X, y, classes = imbalanced_rule_data()
    prior_only = np.zeros((len(y), 0))
    est = RuleLabeler("impact", precision=precision, classes=classes).fit(prior_only, y)
    assert est.get_params()["decision"] == "balanced"
    balanced = est.predict(X)
    mapped = RuleLabeler("impact", precision=precision, classes=classes, decision="map").fit(prior_only, y).predict(X)
    constant = np.full(len(y), "crash")
    floor = 0.25
    assert cohen_kappa_score(y, balanced) >= floor and balanced_accuracy_score(y, balanced) > 0.5
    assert cohen_kappa_score(y, constant) < floor and balanced_accuracy_score(y, constant) == pytest.approx(0.25)
    assert balanced_accuracy_score(y, balanced) >= balanced_accuracy_score(y, mapped)
    if precision == 0.3:
        assert set(mapped) == {"crash"}  # the posterior's argmax answers the prior: the failure this rule fixes
    for c in classes[1:]:
        assert (balanced == c).sum() > 0.3 * (y == c).sum()  # each minority class is answered


def test_builtin_labeler_exposes_its_decision_rule() -> None:
    from sklearn.base import clone

    from taxonomy.labelers import BuiltinLabeler

    labels = pd.DataFrame({d: ["x", "y", "y", "y"] for d in ("stage", "manifestation", "impact", "code_error", "root_cause", "reporter")}
                          | {"issue_url": ["u1", "u2", "u3", "u4"]})
    lab = BuiltinLabeler(labels=labels, joint=False)
    assert lab.get_params()["decision"] == "balanced" and clone(lab).get_params()["threshold"] == lab.threshold
    assert BuiltinLabeler(labels=labels, joint=False, decision="map").labelers["stage"].decision == "map"
    with pytest.raises(ValueError, match="decision"):
        BuiltinLabeler(labels=labels, decision="majority")


def test_cli_mirrors_the_decision_rules() -> None:
    from taxonomy import cli, labelers

    assert (cli.DECISIONS, cli.DEFAULT_DECISION) == (labelers.DECISIONS, labelers.DEFAULT_DECISION)


def test_a_rule_labeler_follows_scikit_learns_conventions_on_misuse() -> None:
    """Predicting before fit is a NotFittedError (an AttributeError before), and a matrix whose columns are not
    the dimension's rules a ValueError saying so, in fit as in predict (fit ignored it, predict failed on a
    matmul, and cross_val_score gave NaN scores)."""
    from sklearn.exceptions import NotFittedError

    rules = dimension_rules("impact")
    with pytest.raises(NotFittedError):
        RuleLabeler("impact").predict(np.zeros((2, len(rules))))
    y = ["crash", "hang", "crash"]
    for wrong in (np.zeros((3, 3)), np.zeros(3)):
        with pytest.raises(ValueError, match=rf"RuleLabeler\('impact'\) reads one column per rule of the dimension \({len(rules)}"):
            RuleLabeler("impact").fit(wrong, y)
    fitted = RuleLabeler("impact").fit(np.zeros((3, 0)), y)  # the prior alone, as the built-in labeler fits it
    assert fitted.predict_proba(np.zeros((2, len(rules)))).shape == (2, 2)
    with pytest.raises(ValueError, match="reads one column per rule"):
        fitted.predict(np.zeros((2, 3)))


def test_no_interval_from_a_handful_of_rows() -> None:
    """Two answered rows, both right, gave kappa 1.00 [1.00, 1.00] (the study's root cause at 12 % coverage, in the
    datasheet); fewer than ten rows, or issues when whole issues are resampled, give no interval."""
    s = scores(["a", "b", "c"] * 5 + ["a", "b"], [None] * 15 + ["a", "b"])
    assert s["answered"] == 2 and s["kappa"] == 1.0 and s["kappa_ci"] is None and s["macro_f1_ci"] is None
    assert s["kappa_abstain_wrong_ci"] is not None  # all 17 rows
    truth, pred = list("abcab" * 2), list("abcaa" * 2)
    assert bootstrap_ci(truth[:9], pred[:9], "kappa") is None and bootstrap_ci(truth, pred, "kappa") is not None
    assert bootstrap_ci(truth, pred, "kappa", groups=[str(i % 5) for i in range(10)]) is None  # five issues
    assert paired_difference(truth[:9], pred[:9], truth[:9])["difference_ci"] is None
