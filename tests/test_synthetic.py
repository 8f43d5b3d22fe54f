"""The constructed predictions behave as their docstrings promise (they back Chapter 1's claims)."""

import numpy as np
import pytest
from scipy.stats import norm

from fairlib import metrics as M
from fairlib.synthetic import (
    simulate_association_scores,
    simulate_group_predictions,
    simulate_multilabel,
    simulate_predictions,
)


def test_label_bias_sets_group_positive_rates():
    d = simulate_predictions(200_000, label_bias=0.2, base_rate=0.5, seed=0)
    rates = d.groupby("group")["target"].mean()
    assert rates[1] == pytest.approx(0.7, abs=0.01) and rates[0] == pytest.approx(0.3, abs=0.01)


def test_group_blind_model_dampens_as_theory_says():
    # Delta_a1 = (1 - acc)(1 - 2 p_a) with acc = Phi(signal); BiasAmp averages |Delta| with sign -.
    d = simulate_predictions(400_000, label_bias=0.2, signal=1.0, seed=1)
    expected = -(1 - norm.cdf(1.0)) * 0.4
    assert M.bias_amplification(d.target, d.pred, groups=d.group) == pytest.approx(expected, abs=0.005)


def test_lean_amplifies_and_is_deterministic():
    a = simulate_predictions(50_000, label_bias=0.2, lean=1.0, seed=3)
    b = simulate_predictions(50_000, label_bias=0.2, lean=1.0, seed=3)
    assert a.equals(b)
    assert M.bias_amplification(a.target, a.pred, groups=a.group) > 0.1


def test_sharpness_one_is_calibrated_and_higher_is_not():
    calibrated = simulate_predictions(200_000, seed=2)
    sharp = simulate_predictions(200_000, sharpness=3.0, seed=2)
    assert M.expected_calibration_error(calibrated.prob, calibrated.target, 10) < 0.01
    assert M.expected_calibration_error(sharp.prob, sharp.target, 10) > 0.05


def test_group_predictions_follow_accuracies():
    d = simulate_group_predictions([20_000, 20_000], [0.9, 0.6], seed=0)
    acc = M.group_accuracy(d.target, d.pred, groups=d.group)
    np.testing.assert_allclose(acc.to_numpy(), [0.9, 0.6], atol=0.01)
    with pytest.raises(ValueError, match="group_sizes/accuracies"):
        simulate_group_predictions([10, 10], [0.5])


def test_shared_factor_raises_interrelation_not_label_dependence():
    targets, free = simulate_multilabel(5000, 4, shared=0.0, seed=0)
    _, tied = simulate_multilabel(5000, 4, shared=2.0, seed=0)
    assert M.label_interrelation(free).mean() < 0.01 < 0.3 < M.label_interrelation(tied).mean()
    assert abs(np.corrcoef(targets.T)[0, 1]) < 0.05


def test_retention_one_keeps_the_ranking():
    before, after = simulate_association_scores(30, retention=1.0, seed=0)
    assert M.bias_transfer_score(before, after) == pytest.approx(1.0)


def test_label_bias_out_of_range_is_explained():
    with pytest.raises(ValueError, match=r"label_bias: 0.6 puts a group's positive rate outside \[0, 1\]"):
        simulate_predictions(10, label_bias=0.6)


def test_chapter1_run_functions_are_deterministic_and_match_the_metrics():
    from fairlib import synthetic as S

    a = S.run_biasamp(0.2, 0.5, 1, n=500, seed=0)
    d = S.simulate_predictions(500, label_bias=0.2, lean=0.5, seed=0 + 100 * 1 + 1)
    assert a == S.run_biasamp(0.2, 0.5, 1, n=500, seed=0)
    assert a["biasamp"] == pytest.approx(M.bias_amplification(d.target, d.pred, groups=d.group))
    g = S.run_group_accuracy(0.05, 474, 0)
    assert set(g) == {"variance", "worst"} and 0 <= g["worst"] <= 1 and g["variance"] > 0
    # quick: 11 spreads x 2 group sizes x 40 repeats; 4 label biases x 11 leans x 10 repeats
    assert len(S.group_accuracy_grid("quick")) == 11 * 2 * 40
    assert len(S.biasamp_grid("quick")) == 4 * 11 * 10
