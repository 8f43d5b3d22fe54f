"""fairlib.metrics against hand-computed answers, properties and bad input."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from fairlib import metrics as M

# --------------------------------------------------------------------------- BiasAmp A->T
# Worked by hand (see the Chapter 1 worked example): group 0 is 3/4 positive, group 1 is 1/4
# positive, the model predicts the majority label of each group, so every one of the four
# (a, t) terms moves 1/4 in the direction of the existing bias.
G = [0, 0, 0, 0, 1, 1, 1, 1]
T = [1, 1, 1, 0, 1, 0, 0, 0]
P = [1, 1, 1, 1, 0, 0, 0, 0]


def test_bias_amplification_hand_computed():
    assert M.bias_amplification(T, P, groups=G) == pytest.approx(0.25)


def test_bias_amplification_table_terms():
    table = M.bias_amplification_table(T, P, groups=G)
    assert len(table) == 4
    row = table[(table.group == 0) & (table.target == 1)].iloc[0]
    assert row.y == 1 and row.p_target == pytest.approx(0.75) and row.p_pred == pytest.approx(1.0)
    assert table["contribution"].tolist() == pytest.approx([0.25] * 4)


def test_bias_amplification_zero_when_predictions_equal_labels():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 3, 500)
    t = (rng.random(500) < 0.2 + 0.25 * g).astype(int)
    assert M.bias_amplification(t, t, groups=g) == 0.0


def test_bias_amplification_dampening_is_negative():
    # Predictions ignore the group entirely: the labelled bias disappears from the output.
    preds = [1, 0, 1, 0, 1, 0, 1, 0]
    assert M.bias_amplification(T, preds, groups=G) < 0


def test_bias_amplification_invariant_to_group_order_and_label_encoding():
    base = M.bias_amplification(T, P, groups=G)
    g_named = ["women" if x == 0 else "men" for x in G]  # reverses the sort order
    t_named = ["pos" if x else "neg" for x in T]
    p_named = ["pos" if x else "neg" for x in P]
    assert M.bias_amplification(t_named, p_named, groups=g_named) == pytest.approx(base)
    perm = np.random.default_rng(1).permutation(len(G))
    assert M.bias_amplification(np.array(T)[perm], np.array(P)[perm], groups=np.array(G)[perm]) == pytest.approx(base)


def test_bias_amplification_counts_classes_present_only_in_preds():
    # Worked by hand: 6 pairs (2 groups x classes {0,1,2}); contributions -1/3, 0, -1/3, 0, 0, 0.
    g = [0, 0, 0, 1]
    t = [0, 0, 1, 1]
    p = [0, 2, 1, 1]
    assert M.bias_amplification(t, p, groups=g, labels=[0, 1, 2]) == pytest.approx(-1 / 9)
    with pytest.raises(ValueError, match=r"y_pred: predicts 2, which never occurs in y_true.*labels="):
        M.bias_amplification(t, p, groups=g)


def test_bias_amplification_reference_split_sets_direction():
    # The reference says the bias runs the other way, so every y_at flips and so does the sign.
    ref = ([0, 0, 1, 1], [0, 0, 1, 1])  # (y_true, groups) of the reference split
    assert M.bias_amplification(T, P, groups=G, reference=ref) == pytest.approx(-0.25)


def test_bias_amplification_direction_uses_exact_counts():
    # N=15, n_a=5, n_t=9, n_at=3: P(a,t) == P(a)P(t) exactly, but in floating point
    # 3/15 > (5/15)*(9/15). The indicator must be 0.
    assert (3 / 15) > (5 / 15) * (9 / 15)
    groups = ["a"] * 5 + ["b"] * 10
    targets = [1, 1, 1, 0, 0] + [1] * 6 + [0] * 4
    table = M.bias_amplification_table(targets, targets, groups=groups)
    assert table["y"].tolist() == [0, 0, 0, 0]


def test_bias_amplification_accepts_tensors():
    assert M.bias_amplification(torch.tensor(T), torch.tensor(P), groups=torch.tensor(G)) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "args, match",
    [
        (([1, 0], [1, 0], [0, 0]), "groups: only one group"),
        (([1, 0], [1, 0], [0, 1, 1]), "mismatched lengths"),
        (([], [], []), "y_true: is empty"),
    ],
)
def test_bias_amplification_bad_input(args, match):
    y_true, y_pred, groups = args
    with pytest.raises(ValueError, match=match):
        M.bias_amplification(y_true, y_pred, groups=groups)


def test_bias_amplification_reference_missing_group():
    with pytest.raises(ValueError, match="reference: group 1 is absent"):
        M.bias_amplification(T, P, groups=G, reference=([0, 1], [0, 0]))


# --------------------------------------------------------------------------- BA (pruning paper)
def _ba_fixture():
    train_identity = [0] * 10 + [1] * 10
    train_true = [1] * 2 + [0] * 8 + [1] * 6 + [0] * 4  # rates 0.2 vs 0.6 -> g* = 1
    identity = [0] * 20 + [1] * 20
    y_true = [1] * 10 + [0] * 10 + [1] * 10 + [0] * 10  # true share of g* among positives: 0.5
    y_pred = [1] * 4 + [0] * 16 + [1] * 12 + [0] * 8  # predicted share: 12/16 = 0.75
    return identity, y_true, y_pred, train_identity, train_true


def test_attribute_bias_amplification_hand_computed():
    i, yt, yp, ti, tt = _ba_fixture()
    assert M.attribute_bias_amplification(yt, yp, identity=i, train_true=tt, train_identity=ti) == pytest.approx(0.25)


def test_attribute_bias_amplification_direction_follows_training_labels():
    i, yt, yp, ti, tt = _ba_fixture()
    flipped_ti = [1 - v for v in ti]  # now identity 0 has the higher training rate
    ba = M.attribute_bias_amplification(yt, yp, identity=i, train_true=tt, train_identity=flipped_ti)
    assert ba == pytest.approx(4 / 16 - 0.5)


def test_attribute_bias_amplification_nan_when_unreliable():
    i, yt, yp, ti, tt = _ba_fixture()
    # too few test positives in one identity group
    ba = M.attribute_bias_amplification(yt, yp, identity=i, train_true=tt, train_identity=ti, min_count=11)
    assert math.isnan(ba)
    # training rates 0.50 vs 0.52 differ by 4% < 10% of the smaller one
    ti2 = [0] * 100 + [1] * 100
    tt2 = [1] * 50 + [0] * 50 + [1] * 52 + [0] * 48
    assert math.isnan(M.attribute_bias_amplification(yt, yp, identity=i, train_true=tt2, train_identity=ti2))


def test_attribute_bias_amplification_rejects_non_binary():
    i, yt, yp, ti, tt = _ba_fixture()
    bad = [-1 if v == 0 else 1 for v in yt]
    with pytest.raises(ValueError, match="y_true: expected binary 0/1"):
        M.attribute_bias_amplification(bad, yp, identity=i, train_true=tt, train_identity=ti)


# --------------------------------------------------------------------------- calibration
def test_ece_hand_computed():
    conf = [0.95, 0.85, 0.65, 0.55]
    correct = [1, 0, 1, 1]
    # each in its own bin of 10: (0.05 + 0.85 + 0.35 + 0.45) / 4
    assert M.expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.425)


def test_ece_bin_edges_are_right_closed_and_zero_in_first_bin():
    # bins (0, .5], (.5, 1]: {0.0, 0.5} share bin 0 -> mean conf .25, acc .5; {1.0} is exact.
    assert M.expected_calibration_error([0.0, 0.5, 1.0], [0, 1, 1], n_bins=2) == pytest.approx(1 / 6)
    bins = M.calibration_bins([0.3, 0.30000001], [1, 1], n_bins=10)
    assert bins["count"].tolist()[2:4] == [1, 1]  # 0.3 belongs to (0.2, 0.3]


def test_ece_perfectly_calibrated_is_zero():
    conf = np.repeat([0.25, 0.75], 4)
    correct = [1, 0, 0, 0, 1, 1, 1, 0]
    assert M.expected_calibration_error(conf, correct, n_bins=4) == pytest.approx(0.0)


def test_ece_rejects_probabilities_outside_unit_interval():
    with pytest.raises(ValueError, match=r"confidences: probabilities must lie in \[0, 1\]"):
        M.expected_calibration_error([0.2, 1.3], [1, 0])


# --------------------------------------------------------------------------- systematic bias
def test_threshold_calibration_bias_both_branches():
    assert M.threshold_calibration_bias([1, 0, 0, 0], [1, 1, 0, 0]) == pytest.approx(2.0)
    assert M.threshold_calibration_bias([1, 1, 1, 0], [1, 1, 1, 1]) == pytest.approx(0.0)
    # a 50/50 attribute takes the "otherwise" branch: N(pred=0)/N(y=0) = 1/2
    assert M.threshold_calibration_bias([1, 1, 0, 0], [1, 1, 1, 0]) == pytest.approx(0.5)


def test_threshold_calibration_bias_undefined_without_minority():
    with pytest.raises(ValueError, match="y_true: all labels are 0"):
        M.threshold_calibration_bias([0, 0, 0], [0, 1, 0])


def test_uncertainty_rate_is_strict():
    assert M.uncertainty_rate([0.05, 0.1, 0.5, 0.9, 0.95]) == pytest.approx(0.2)
    assert M.uncertainty_rate([[0.2, 0.95], [0.5, 0.99]]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="low/high"):
        M.uncertainty_rate([0.5], low=0.9, high=0.1)


def test_label_interrelation_hand_computed():
    # simple regression of x=[0,1,2] on y=[0,1,3] and back: R^2 = r^2 = 27/28
    np.testing.assert_allclose(M.label_interrelation([[0, 0], [1, 1], [2, 3]]), [27 / 28, 27 / 28])


def test_label_interrelation_exact_linear_dependence():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 50))
    r2 = M.label_interrelation(np.column_stack([a, b, a - 2 * b]))
    np.testing.assert_allclose(r2, 1.0)
    independent = M.label_interrelation(rng.normal(size=(5000, 3)))
    assert (independent < 0.01).all()


def test_label_interrelation_bad_shape():
    with pytest.raises(ValueError, match="preds: needs at least 2 columns"):
        M.label_interrelation([[1], [2]])


# --------------------------------------------------------------------------- group accuracy
def test_group_accuracy_and_variance_hand_computed():
    y_true = [1, 0, 1, 1, 0, 0]
    y_pred = [1, 0, 1, 1, 1, 0]
    groups = ["b", "b", "b", "a", "a", "a"]
    acc = M.group_accuracy(y_true, y_pred, groups=groups)
    assert list(acc.index) == ["a", "b"]
    np.testing.assert_allclose(acc.to_numpy(), [2 / 3, 1.0])
    # accuracies in percent: 66.67 and 100 -> (16.67^2 * 2) / 1
    assert M.accuracy_variance(y_true, y_pred, groups=groups) == pytest.approx(10000 / 18)
    assert M.worst_group_accuracy(y_true, y_pred, groups=groups) == pytest.approx(2 / 3)
    assert M.accuracy_gap(y_true, y_pred, groups=groups) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "accuracies, variance",
    [
        # Per-class accuracies (%) and variances of the adversarial-invariance paper's Table 1.
        ([92.41, 91.56, 84.07, 90.93, 88.61], 11.26),
        ([89.84, 90.25, 83.64, 92.02, 88.27], 10.11),
        ([85.65, 86.08, 80.90, 87.66, 83.86], 6.66),
    ],
)
def test_accuracy_variance_reproduces_paper_table(accuracies, variance):
    n = 10_000  # per class, so every accuracy with two decimals is exact
    y_true, y_pred, groups = [], [], []
    for k, acc in enumerate(accuracies):
        correct = round(acc * n / 100)
        y_true += [1] * n
        y_pred += [1] * correct + [0] * (n - correct)
        groups += [k] * n
    assert M.accuracy_variance(y_true, y_pred, groups=groups) == pytest.approx(variance, abs=0.005)


def test_accuracy_variance_needs_two_groups():
    with pytest.raises(ValueError, match="groups: only one group"):
        M.accuracy_variance([1, 0], [1, 1], groups=["x", "x"])


# --------------------------------------------------------------------------- bias transfer
def test_bias_transfer_score_extremes_and_ties():
    assert M.bias_transfer_score([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert M.bias_transfer_score([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties get average ranks: ranks [1,2,3,4] vs [1.5,1.5,3,4] -> 4.5 / sqrt(5 * 4.5)
    assert M.bias_transfer_score([1, 2, 3, 4], [1, 1, 2, 3]) == pytest.approx(4.5 / math.sqrt(22.5))


def test_bias_transfer_score_bad_input():
    with pytest.raises(ValueError, match="after: all scores are equal"):
        M.bias_transfer_score([1, 2, 3], [5, 5, 5])
    with pytest.raises(ValueError, match="mismatched lengths"):
        M.bias_transfer_score([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="before: contains NaN"):
        M.bias_transfer_score([1, np.nan, 3], [1, 2, 3])


def test_inputs_accept_pandas_and_column_vectors():
    acc = M.group_accuracy(pd.Series([1, 0]), np.array([[1], [1]]), groups=torch.tensor([0, 1]))
    np.testing.assert_allclose(acc.to_numpy(), [1.0, 0.0])


# --------------------------------------------------------------------------- argument convention
# fairlearn's convention: y_true, y_pred, then the groups keyword-only. Passing the groups (or
# the identity) positionally must be an error, never a plausible number from swapped arguments.
@pytest.mark.parametrize(
    "fn",
    [M.bias_amplification, M.bias_amplification_table, M.group_accuracy, M.accuracy_variance,
     M.worst_group_accuracy, M.accuracy_gap],
    ids=lambda f: f.__name__,
)
def test_groups_are_keyword_only(fn):
    with pytest.raises(TypeError):
        fn(T, P, G)
    fn(T, P, groups=G)  # the keyword form works


def test_attribute_bias_amplification_identity_is_keyword_only():
    i, yt, yp, ti, tt = _ba_fixture()
    with pytest.raises(TypeError):
        M.attribute_bias_amplification(yt, yp, i, train_true=tt, train_identity=ti)


def test_group_report_groups_are_keyword_only():
    from fairlib.invariance import group_report

    with pytest.raises(TypeError):
        group_report(T, P, G)
    assert group_report(T, P, groups=G)["overall"] == pytest.approx(75.0)


# --------------------------------------------------------------------------- inputs that used to give plausible numbers
@pytest.mark.parametrize("y_true, y_pred, match", [
    (T, [0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.4], r"y_pred: expected hard labels.*apply argmax or a threshold"),
    (T, [1, 1, 1, 1, -1, -1, -1, -1], r"y_pred: predicts -1, which never occurs in y_true"),
    (["pos", "pos", "pos", "neg", "pos", "neg", "neg", "neg"], P, r"y_true/y_pred: labels of different kinds"),
    (T, [1, 1, 1, np.inf, 0, 0, 0, 0], r"y_pred: contains inf at index 3"),
])
def test_bias_amplification_refuses_what_is_not_labels(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        M.bias_amplification(y_true, y_pred, groups=G)


@pytest.mark.parametrize("fn", [M.group_accuracy, M.accuracy_variance, M.worst_group_accuracy, M.accuracy_gap],
                         ids=lambda f: f.__name__)
def test_group_metrics_refuse_mismatched_or_soft_labels(fn):
    with pytest.raises(ValueError, match="labels of different kinds"):
        fn(["a", "b", "a", "b"], [0, 1, 0, 1], groups=[0, 0, 1, 1])
    with pytest.raises(ValueError, match="expected hard labels"):
        fn([0, 1, 0, 1], [0.2, 0.9, 0.4, 0.6], groups=[0, 0, 1, 1])


@pytest.mark.parametrize("fn", [M.accuracy_variance, M.worst_group_accuracy, M.accuracy_gap],
                         ids=lambda f: f.__name__)
def test_group_comparisons_need_two_groups(fn):
    with pytest.raises(ValueError, match="groups: only one group"):
        fn([1, 0], [1, 1], groups=["x", "x"])


def test_whole_number_floats_and_booleans_are_labels():
    assert M.bias_amplification(np.array(T, float), np.array(P, float), groups=G) == pytest.approx(0.25)
    assert M.bias_amplification(np.array(T, bool), np.array(P, bool), groups=G) == pytest.approx(0.25)


def test_accuracy_interval_is_the_wilson_interval():
    from fairlib.metrics import accuracy_interval

    # Wilson by hand for 8 of 10 at z = 1.95996: centre (8 + z²/2) / (10 + z²) = 0.7167, half-width
    # z·sqrt(10·0.8·0.2 + z²/4) / (10 + z²) = 0.2266
    low, high = accuracy_interval(0.8, 10)
    assert low == pytest.approx(0.7167 - 0.2266, abs=2e-4) and high == pytest.approx(0.7167 + 0.2266, abs=2e-4)
    assert accuracy_interval(0.0, 50)[0] == 0.0 < accuracy_interval(0.0, 50)[1]  # stays inside [0, 1]
    narrow, wide = accuracy_interval(0.5, 1000), accuracy_interval(0.5, 10)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    with pytest.raises(ValueError, match=r"accuracy: expected a fraction in \[0, 1\]"):
        accuracy_interval(80, 10)
    with pytest.raises(ValueError, match="n: expected the number of examples"):
        accuracy_interval(0.8, 0)


# --------------------------------------------------------------------------- intervals of per-group statistics
def _planted(n0=400, n1=400, right0=360, right1=240):
    """Two groups, every label 1: group 0 gets ``right0`` of ``n0`` right, group 1 ``right1`` of ``n1``."""
    y = np.ones(n0 + n1, dtype=int)
    pred = np.r_[np.ones(right0), np.zeros(n0 - right0), np.ones(right1), np.zeros(n1 - right1)].astype(int)
    return y, pred, np.r_[np.zeros(n0, int), np.ones(n1, int)]


def test_bootstrap_interval_points_are_the_statistics_of_the_data():
    y, pred, g = _planted()  # group accuracies 90% and 60%
    assert M.bootstrap_interval(y, pred, groups=g)[0] == pytest.approx(450.0)  # var([90, 60], ddof=1)
    assert M.bootstrap_interval(y, pred, groups=g)[0] == pytest.approx(M.accuracy_variance(y, pred, groups=g))
    assert M.bootstrap_interval(y, pred, groups=g, statistic="worst")[0] == pytest.approx(60.0)
    assert M.bootstrap_interval(y, pred, groups=g, statistic="gap")[0] == pytest.approx(30.0)
    assert M.bootstrap_interval(y, pred, groups=g, statistic="mean")[0] == pytest.approx(75.0)
    y, pred, g = _planted(n1=100, right1=60)  # unequal sizes: overall = (360 + 60) / 500
    assert M.bootstrap_interval(y, pred, groups=g, statistic="overall")[0] == pytest.approx(84.0)
    assert M.bootstrap_interval(y, pred, groups=g, statistic="mean")[0] == pytest.approx(75.0)
    first = M.bootstrap_interval(y, pred, groups=g, statistic=lambda a: a[:, 0] - a[:, 1])
    assert first[0] == pytest.approx(30.0)


def test_bootstrap_interval_widths_match_the_binomial_standard_error():
    y, pred, g = _planted()
    # mean of two group accuracies: SE = 100 * 0.5 * sqrt(0.9*0.1/400 + 0.6*0.4/400) = 1.436 pp
    _, low, high = M.bootstrap_interval(y, pred, groups=g, statistic="mean", n_boot=4000)
    assert (high - low) / 2 == pytest.approx(1.96 * 1.436, rel=0.1)
    assert low < 75 < high
    # the worst group is group 1 in every resample: 60% ± 1.96 * 100 * sqrt(0.24 / 400) = ± 4.80
    _, low, high = M.bootstrap_interval(y, pred, groups=g, statistic="worst", n_boot=4000)
    assert (high - low) / 2 == pytest.approx(4.80, rel=0.1)
    # every prediction right: no spread at all
    assert M.bootstrap_interval(y, y, groups=g) == (0.0, 0.0, 0.0)


def test_bootstrap_interval_pairs_the_two_models():
    y, pred, g = _planted()
    assert M.bootstrap_interval(y, pred, groups=g, compare_to=pred, statistic="worst") == (0.0, 0.0, 0.0)
    assert M.bootstrap_interval(y, pred, groups=g, compare_to=pred, contrast="ratio")[1:] == (1.0, 1.0)
    better = pred.copy()
    better[np.flatnonzero((g == 1) & (pred == 0))[:40]] = 1  # 40 more right in group 1: 60% -> 70%
    point, low, high = M.bootstrap_interval(y, pred, groups=g, compare_to=better, statistic="mean", n_boot=4000)
    assert point == pytest.approx(5.0)
    # paired: only the 40 changed examples move the difference; SE = 100 * 0.5 * sqrt(0.1 * 0.9 / 400) = 0.75
    assert (high - low) / 2 == pytest.approx(1.96 * 0.75, rel=0.15)
    assert M.bootstrap_interval(y, pred, groups=g, compare_to=better, statistic="worst")[0] == pytest.approx(10.0)
    again = M.bootstrap_interval(y, pred, groups=g, compare_to=better, statistic="mean", n_boot=4000)
    assert again == (point, low, high)  # the seed fixes the resamples


def test_simulated_group_interval_reproduces_the_papers_variances():
    table1 = {11.26: [92.41, 91.56, 84.07, 90.93, 88.61],  # Teru & Chakraborty, Table 1: SimpleCNN,
              10.11: [89.84, 90.25, 83.64, 92.02, 88.27],  # SimpleCNN-WL
              6.66: [85.65, 86.08, 80.90, 87.66, 83.86]}  # and FaderCNN, Class 0-4
    for variance, accs in table1.items():
        point, low, high = M.simulated_group_interval(accs, 474)
        assert round(point, 2) == variance  # ddof = 1
        assert 0 < low < point < high
    # with (almost) unlimited test data the noise vanishes
    point, low, high = M.simulated_group_interval(table1[11.26], 10**8, n_sim=1000)
    assert high - low < 0.05 and low <= point + 0.01 and point - 0.01 <= high
    # the worst group of [90, 60] at 400 per group: 60 ± 1.96 * 100 * sqrt(0.24 / 400) = ± 4.80
    _, low, high = M.simulated_group_interval([90, 60], 400, statistic="worst")
    assert (high - low) / 2 == pytest.approx(4.80, rel=0.05)
    # the relative drop 1 - 6.66 / 11.26 = 40.9%
    point, _, _ = M.simulated_group_interval(table1[11.26], 474, compare_to=table1[6.66], contrast="ratio")
    assert 1 - point == pytest.approx(1 - 6.6574 / 11.2581, abs=1e-4)
    # per-group sizes: "overall" weights by them
    assert M.simulated_group_interval([90, 60], [300, 100], statistic="overall")[0] == pytest.approx(82.5)


@pytest.mark.parametrize("call, match", [
    (lambda: M.bootstrap_interval([1, 0], [1, 1], groups=[0, 1], statistic="median"), r"statistic: expected one of"),
    (lambda: M.bootstrap_interval([1, 0], [1, 1], groups=[0, 1], statistic=lambda a: a), r"statistic: a callable"),
    (lambda: M.bootstrap_interval([1, 0], [1, 1], groups=[0, 0]), r"groups: only one group"),
    (lambda: M.bootstrap_interval([1, 0], [1, 1], groups=[0, 1], n_boot=10), r"n_boot: expected an integer >= 100"),
    (lambda: M.bootstrap_interval([1, 0], [1, 1], groups=[0, 1], confidence=95), r"confidence: expected a level"),
    (lambda: M.bootstrap_interval([1, 0], [1, 1], groups=[0, 1], contrast="minus"), r"contrast: expected"),
    (lambda: M.bootstrap_interval([1, 0], [1, 1], groups=[0, 1], compare_to=[1]), r"compare_to"),
    (lambda: M.bootstrap_interval([1, 0], [0.2, 0.9], groups=[0, 1]), r"y_pred: expected hard labels"),
    (lambda: M.bootstrap_interval([1, 1, 1, 1], [1, 1, 1, 1], groups=[0, 0, 1, 1], compare_to=[1, 0, 1, 0],
                                  contrast="ratio"), r"contrast: 'ratio' is undefined"),
    (lambda: M.simulated_group_interval([0.9, 0.8, 120], 100), r"accuracies: expected per-group accuracies in %"),
    (lambda: M.simulated_group_interval([90, 80], 0), r"n_per_group: expected one integer >= 1"),
    (lambda: M.simulated_group_interval([90, 80], [100, 100, 100]), r"n_per_group: expected one integer"),
    (lambda: M.simulated_group_interval([90, 80], 100, compare_to=[90]), r"compare_to: 1 groups against 2"),
    (lambda: M.simulated_group_interval([90], 100), r"groups: only one group"),
])
def test_interval_functions_name_the_bad_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bootstrap_interval_groups_are_keyword_only():
    with pytest.raises(TypeError):
        M.bootstrap_interval(T, P, G)


def test_label_interrelation_on_hard_predictions_hand_computed():
    """The authors' compute_interdependence: R² of each 0/1 prediction on the others (Chapter 5)."""
    # two columns: R² is the squared correlation, (0.2 / 1.2)^2 = 1/36 for both
    pred = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [1, 1]])
    np.testing.assert_allclose(M.label_interrelation(pred), [1 / 36, 1 / 36])
    # a copy is explained exactly, an orthogonal column not at all; a constant column is NaN by
    # default and 1.0 as scikit-learn's LinearRegression().score gives it
    a, b = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    hard = np.column_stack([a, b, a, np.ones(4, int)])
    np.testing.assert_allclose(M.label_interrelation(hard)[:3], [1.0, 0.0, 1.0], atol=1e-12)
    assert np.isnan(M.label_interrelation(hard)[3])
    assert M.label_interrelation(hard, constant=1.0)[3] == 1.0
    with pytest.raises(ValueError, match="constant: expected a number"):
        M.label_interrelation(hard, constant="one")


def test_label_interrelation_nearly_constant_column_stays_in_range():
    """A broken model's probabilities barely vary: R² stays in [0, 1] instead of blowing up."""
    rng = np.random.default_rng(0)
    probs = np.column_stack([rng.random(500), 0.5 + 1e-9 * rng.random(500), rng.random(500)])
    r2 = M.label_interrelation(probs)
    assert ((r2 >= 0) & (r2 <= 1)).all()
