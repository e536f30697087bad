"""Tests of diffmic.metrics and diffmic.uncertainty, cross-checked against scikit-learn and scipy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from diffmic.metrics import (
    accuracy,
    auroc,
    classification_summary,
    cohen_kappa,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    per_class_report,
)
from diffmic.uncertainty import SampleUncertainty, batch_sample_uncertainty, sample_uncertainty

SEEDS = [0, 1, 2, 3]


def random_labels(seed: int, n: int = 200, num_classes: int = 5, skip: int | None = None):
    """Correlated random (y_true, y_pred); ``skip`` removes one class from both."""
    rng = np.random.default_rng(seed)
    classes = [c for c in range(num_classes) if c != skip]
    y_true = rng.choice(classes, size=n)
    noise = rng.choice(classes, size=n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, noise)
    return y_true, y_pred


# ---------------------------------------------------------------- label metrics vs scikit-learn


@pytest.mark.parametrize("seed", SEEDS)
def test_auroc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    neg, pos = rng.integers(0, 6, 50).astype(float), rng.integers(2, 9, 30).astype(float)
    expected = skm.roc_auc_score(np.r_[np.zeros(50), np.ones(30)], np.r_[neg, pos])
    assert auroc(neg, pos) == pytest.approx(expected, abs=1e-12)
    assert auroc([0, 1], [2, 3]) == 1.0 and auroc([2, 3], [0, 1]) == 0.0 and auroc([1, 1], [1]) == 0.5
    with pytest.raises(ValueError, match="at least one"):
        auroc([], [1.0])


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_and_accuracy_match_sklearn(seed):
    y_true, y_pred = random_labels(seed)
    cm = confusion_matrix(y_true, y_pred, 5)
    assert cm.dtype == np.int64 and cm.shape == (5, 5)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(5)))
    assert cm.sum() == len(y_true)
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


def test_confusion_matrix_rows_are_true_labels():
    cm = confusion_matrix([0, 0, 1], [1, 1, 1], 3)
    np.testing.assert_array_equal(cm, [[0, 2, 0], [0, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("seed", SEEDS)
def test_macro_f1_matches_sklearn(seed):
    y_true, y_pred = random_labels(seed)
    assert macro_f1(y_true, y_pred, 5) == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))


def test_macro_f1_ignores_classes_absent_from_both():
    y_true, y_pred = random_labels(7, num_classes=6, skip=2)
    expected = skm.f1_score(y_true, y_pred, average="macro")
    assert macro_f1(y_true, y_pred, 6) == pytest.approx(expected)
    # padding num_classes with unused classes changes nothing
    assert macro_f1(y_true, y_pred, 9) == pytest.approx(expected)


def test_macro_f1_counts_class_only_predicted_as_zero():
    y_true, y_pred = [0, 0, 1, 1], [0, 0, 1, 2]
    expected = skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
    assert macro_f1(y_true, y_pred, 3) == pytest.approx(expected)
    assert macro_f1(y_true, y_pred, 3) == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_matches_sklearn(seed, weights):
    y_true, y_pred = random_labels(seed)
    expected = skm.cohen_kappa_score(y_true, y_pred, labels=list(range(5)), weights=weights)
    assert cohen_kappa(y_true, y_pred, 5, weights=weights) == pytest.approx(expected)


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_weighted_kappa_uses_class_index_distance(weights):
    # class 2 is absent: the distance between grades 1 and 3 is still 2
    y_true, y_pred = random_labels(11, skip=2)
    expected = skm.cohen_kappa_score(y_true, y_pred, labels=list(range(5)), weights=weights)
    assert cohen_kappa(y_true, y_pred, 5, weights=weights) == pytest.approx(expected)
    # sklearn without labels would re-index the present classes 0..3 and shrink that distance
    assert expected != pytest.approx(skm.cohen_kappa_score(y_true, y_pred, weights=weights))


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_zero_denominator_is_zero_not_nan(weights):
    assert cohen_kappa([1, 1, 1], [1, 1, 1], 3, weights=weights) == 0.0


def test_cohen_kappa_perfect_agreement_is_one():
    assert cohen_kappa([0, 1, 2, 2], [0, 1, 2, 2], 3) == pytest.approx(1.0)
    assert cohen_kappa([0, 1, 2, 2], [0, 1, 2, 2], 3, weights="quadratic") == pytest.approx(1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_per_class_report_matches_sklearn(seed):
    y_true, y_pred = random_labels(seed, skip=4)  # class 4 has no support and no predictions
    names = ["a", "b", "c", "d", "e"]
    report = per_class_report(y_true, y_pred, names)
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=range(5), zero_division=0)
    assert [row["name"] for row in report] == names
    np.testing.assert_allclose([row["precision"] for row in report], p)
    np.testing.assert_allclose([row["recall"] for row in report], r)
    np.testing.assert_allclose([row["f1"] for row in report], f)
    assert [row["support"] for row in report] == list(s)
    assert report[4] == {"name": "e", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    json.dumps(report)


def test_float_integer_labels_are_accepted():
    assert accuracy(np.array([0.0, 1.0, 2.0]), [0, 1, 1]) == pytest.approx(2 / 3)


# ---------------------------------------------------------------- calibration


def test_ece_hand_computed():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y_true = [0, 1, 1, 0]
    # bins of width 0.2: (0.8,1] {0.9 right}, (0.6,0.8] {0.8 wrong, 0.7 right}, (0.4,0.6] {0.6 right}
    expected = 1 / 4 * abs(1 - 0.9) + 2 / 4 * abs(0.5 - 0.75) + 1 / 4 * abs(1 - 0.6)
    assert expected == pytest.approx(0.25)
    assert expected_calibration_error(probs, y_true, n_bins=5) == pytest.approx(expected)


def test_ece_single_bin_is_gap_between_accuracy_and_mean_confidence():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert expected_calibration_error(probs, [0, 1, 1, 0], n_bins=1) == pytest.approx(abs(0.75 - 0.75))
    assert expected_calibration_error(probs, [1, 1, 1, 0], n_bins=1) == pytest.approx(0.25)


def test_ece_zero_for_confident_correct_one_hot():
    y_true = np.array([0, 2, 1, 1, 0])
    probs = np.eye(3)[y_true]
    assert expected_calibration_error(probs, y_true) == 0.0


def test_ece_one_for_confident_wrong_one_hot():
    y_true = np.array([0, 2, 1])
    probs = np.eye(3)[(y_true + 1) % 3]
    assert expected_calibration_error(probs, y_true) == pytest.approx(1.0)


# ---------------------------------------------------------------- summary


def test_classification_summary_contents():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(60, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_true = rng.integers(0, 3, size=60)
    y_pred = probs.argmax(axis=1)
    names = ["none", "mild", "severe"]

    summary = classification_summary(y_true, probs, names, ordinal=True)
    assert set(summary) == {
        "accuracy",
        "macro_f1",
        "kappa",
        "kappa_weights",
        "ece",
        "confusion_matrix",
        "per_class",
        "n",
    }
    assert summary["n"] == 60
    assert summary["kappa_weights"] == "quadratic"
    assert summary["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert summary["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert summary["kappa"] == pytest.approx(skm.cohen_kappa_score(y_true, y_pred, weights="quadratic"))
    assert summary["ece"] == pytest.approx(expected_calibration_error(probs, y_true))
    assert summary["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred).tolist()
    assert [row["name"] for row in summary["per_class"]] == names
    json.dumps(summary, allow_nan=False)

    nominal = classification_summary(y_true, probs, names, ordinal=False)
    assert nominal["kappa_weights"] is None
    assert nominal["kappa"] == pytest.approx(skm.cohen_kappa_score(y_true, y_pred))


# ---------------------------------------------------------------- metric input validation


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: accuracy([0, 1], [0, 1, 1]), "different lengths"),
        (lambda: accuracy([], []), "y_true is empty"),
        (lambda: accuracy([[0, 1]], [[0, 1]]), "1-D"),
        (lambda: accuracy([0.5, 1.0], [0, 1]), "integer class labels"),
        (lambda: confusion_matrix([0, 3], [0, 1], 3), r"y_true has labels outside \[0, 3\): 3"),
        (lambda: macro_f1([0, 1], [0, -1], 3), r"y_pred has labels outside \[0, 3\): -1"),
        (lambda: confusion_matrix([0], [0], 0), "num_classes must be a positive integer"),
        (lambda: cohen_kappa([0, 1], [0, 1], 2, weights="cubic"), "weights must be one of"),
        (lambda: per_class_report([0], [0], []), "class_names is empty"),
        (lambda: per_class_report([0, 2], [0, 1], ["a", "b"]), "outside"),
        (lambda: expected_calibration_error(np.ones((3, 2)) / 2, [0, 1]), "3 rows but y_true has 2"),
        (lambda: expected_calibration_error(np.ones(2) / 2, [0]), "2-D"),
        (lambda: expected_calibration_error(np.zeros((0, 2)), []), "probs is empty"),
        (lambda: expected_calibration_error(np.array([[np.nan, 1.0]]), [0]), "NaN"),
        (lambda: expected_calibration_error(np.array([[1.5, -0.5]]), [0]), r"\[0, 1\]"),
        (lambda: expected_calibration_error(np.array([[0.5, 0.5]]), [2]), "outside"),
        (lambda: expected_calibration_error(np.array([[0.5, 0.5]]), [0], n_bins=0), "n_bins"),
        (
            lambda: classification_summary([0], np.array([[0.5, 0.5]]), ["a", "b", "c"], False),
            "3 class names",
        ),
    ],
)
def test_metric_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------- sample-based uncertainty


def test_unanimous_samples_are_distinguishable():
    rng = np.random.default_rng(0)
    base = np.array([0.8, 0.15, 0.05])
    samples = base + rng.normal(scale=0.02, size=(30, 3))
    samples = np.clip(samples, 0.0, 1.0)
    u = sample_uncertainty(samples)
    assert u.majority == 0
    assert u.agreement == 1.0
    np.testing.assert_allclose(u.vote, [1.0, 0.0, 0.0])
    assert u.top2 == (0, 1)
    assert u.p_value < 1e-10
    assert u.t_statistic > 0
    assert u.distinguishable
    np.testing.assert_allclose(u.mean, samples.mean(axis=0))
    np.testing.assert_allclose(u.std, samples.std(axis=0))
    assert u.n_samples == 30


def test_noisy_samples_with_equal_top2_means_are_not_distinguishable():
    rng = np.random.default_rng(1)
    eps = rng.uniform(-0.3, 0.3, size=20)
    eps = np.concatenate([eps, -eps])  # the top-2 means are exactly equal
    samples = np.stack([0.45 + eps, 0.45 - eps, np.full_like(eps, 0.1)], axis=1)
    u = sample_uncertainty(samples)
    assert set(u.top2) == {0, 1}
    assert u.mean[0] == pytest.approx(u.mean[1])
    assert abs(u.t_statistic) < 1e-6
    assert u.p_value == pytest.approx(1.0)
    assert not u.distinguishable
    assert u.agreement == pytest.approx(0.5)


def test_t_test_matches_scipy():
    rng = np.random.default_rng(2)
    samples = rng.dirichlet([3.0, 2.0, 1.0, 1.0], size=25)
    u = sample_uncertainty(samples, alpha=0.01)
    order = np.argsort(-samples.mean(axis=0))
    assert u.top2 == (int(order[0]), int(order[1]))
    ref = stats.ttest_rel(samples[:, u.top2[0]], samples[:, u.top2[1]])
    assert u.t_statistic == pytest.approx(ref.statistic)
    assert u.p_value == pytest.approx(ref.pvalue)
    assert u.distinguishable == (ref.pvalue < 0.01)


def test_majority_tie_goes_to_higher_mean():
    u = sample_uncertainty(np.array([[0.9, 0.1], [0.45, 0.55]]))
    assert u.majority == 0 and u.agreement == 0.5
    u = sample_uncertainty(np.array([[0.6, 0.4], [0.3, 0.7]]))
    assert u.majority == 1 and u.agreement == 0.5


def test_entropy_of_mean():
    u = sample_uncertainty(np.full((4, 4), 0.25))
    assert u.entropy == pytest.approx(math.log(4))
    u = sample_uncertainty(np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert u.entropy == pytest.approx(0.0)


def test_single_sample_is_never_distinguishable():
    u = sample_uncertainty(np.array([[0.9, 0.05, 0.05]]))
    assert (u.t_statistic, u.p_value, u.distinguishable) == (0.0, 1.0, False)
    assert u.agreement == 1.0 and u.majority == 0
    np.testing.assert_array_equal(u.std, [0.0, 0.0, 0.0])


def test_constant_nonzero_difference_gives_p_zero():
    u = sample_uncertainty(np.tile([0.7, 0.2, 0.1], (5, 1)))
    assert u.p_value == 0.0
    assert u.t_statistic == math.inf
    assert u.distinguishable


def test_identical_top2_gives_p_one():
    u = sample_uncertainty(np.tile([0.4, 0.4, 0.2], (5, 1)))
    assert u.top2 == (0, 1)
    assert (u.t_statistic, u.p_value, u.distinguishable) == (0.0, 1.0, False)


def test_to_dict_is_strict_json():
    names = ["benign", "malignant", "normal"]
    d = sample_uncertainty(np.tile([0.7, 0.2, 0.1], (5, 1))).to_dict(names)
    assert d["mean"] == pytest.approx({"benign": 0.7, "malignant": 0.2, "normal": 0.1})
    assert d["vote"] == {"benign": 1.0, "malignant": 0.0, "normal": 0.0}
    assert d["majority"] == "benign"
    assert d["top2"] == ["benign", "malignant"]
    assert d["t_statistic"] is None  # +inf is not valid JSON
    assert d["p_value"] == 0.0 and d["distinguishable"] is True
    assert d["n_samples"] == 5
    json.dumps(d, allow_nan=False)


def test_batch_matches_per_image():
    rng = np.random.default_rng(3)
    samples = rng.dirichlet([1.0, 2.0, 3.0], size=(4, 10))
    results = batch_sample_uncertainty(samples)
    assert len(results) == 4 and all(isinstance(r, SampleUncertainty) for r in results)
    for i, r in enumerate(results):
        single = sample_uncertainty(samples[i])
        np.testing.assert_allclose(r.mean, single.mean)
        assert (r.majority, r.top2, r.p_value) == (single.majority, single.top2, single.p_value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sample_uncertainty(np.array([0.5, 0.5])), "2-D"),
        (lambda: sample_uncertainty(np.zeros((0, 3))), "no samples"),
        (lambda: sample_uncertainty(np.ones((3, 1))), "at least 2 classes"),
        (lambda: sample_uncertainty(np.array([[np.nan, 0.5]])), "NaN"),
        (lambda: sample_uncertainty(np.array([[1.2, -0.2]])), r"\[0, 1\]"),
        (lambda: sample_uncertainty(np.zeros((2, 2))), "all zero"),
        (lambda: sample_uncertainty(np.full((2, 2), 0.5), alpha=1.5), "alpha"),
        (lambda: batch_sample_uncertainty(np.full((2, 2), 0.5)), "3-D"),
        (lambda: batch_sample_uncertainty(np.zeros((0, 2, 2))), "no images"),
        (lambda: sample_uncertainty(np.full((2, 2), 0.5)).to_dict(["a"]), "1 class names for 2"),
        (lambda: sample_uncertainty(np.full((2, 2), 0.5)).to_dict(["a", "a"]), "unique"),
    ],
)
def test_uncertainty_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_paired_bootstrap_interval_covers_the_difference_and_tightens_with_more_images():
    from diffmic.metrics import paired_bootstrap_ci

    rng = np.random.default_rng(0)
    a = rng.random(400) < 0.8
    b = a.copy()
    flip = rng.choice(400, 40, replace=False)
    b[flip] = ~b[flip]  # b differs from a on 10 % of the images
    low, high = paired_bootstrap_ci(a, b)
    assert low <= a.mean() - b.mean() <= high and high - low < 0.1
    same_low, same_high = paired_bootstrap_ci(a, a)
    assert same_low == same_high == 0.0  # paired: identical answers, no spread
    wide = paired_bootstrap_ci(a[:100], b[:100])
    assert wide[1] - wide[0] > high - low
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap_ci(a, b[:10])
