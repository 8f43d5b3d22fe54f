r"""Constructed predictions with a known amount of bias, for teaching and testing metrics.

Nothing here is a model of real people: every generator turns a few dials (how biased the
labels are, how much a "model" leans on the group, how confident it is) into labels and
predictions, so that a reader can watch a metric respond to each dial in isolation.

The score model used by :func:`simulate_predictions` is

.. math::

    x = (2t - 1)\,s + \ell\,(2a - 1) + o + \varepsilon,\qquad \varepsilon \sim \mathcal N(0, 1),
    \qquad \mathrm{logit} = 2 s\,\kappa\,x,\qquad \hat t = [x > 0]

with signal strength :math:`s`, lean on the group :math:`\ell`, offset :math:`o` and sharpness
:math:`\kappa`. For balanced labels, :math:`\ell = o = 0` and :math:`\kappa = 1` the logit is the
Bayes posterior log-odds, i.e. the probabilities are perfectly calibrated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from fairlib._validation import integer, number, positive_int, show

__all__ = [
    "simulate_predictions",
    "simulate_group_predictions",
    "simulate_multilabel",
    "simulate_association_scores",
    "run_group_accuracy",
    "group_accuracy_grid",
    "run_biasamp",
    "biasamp_grid",
    "explore_biasamp",
]


def _check_prob(value: float, name: str) -> None:
    if not 0 <= _number(value, name) <= 1:
        raise ValueError(f"{name}: must lie in [0, 1], got {value}")


def _number(value: Any, name: str) -> float:
    return number(value, name)


def _seed(seed: Any) -> int:
    return integer(seed, "seed", minimum=0)


def simulate_predictions(
    n: int,
    *,
    label_bias: float = 0.0,
    lean: float = 0.0,
    signal: float = 1.0,
    offset: float = 0.0,
    sharpness: float = 1.0,
    base_rate: float = 0.5,
    group_share: float = 0.5,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Binary labels for two groups and the predictions of a toy scoring model.

    Parameters
    ----------
    n
        Number of examples.
    label_bias
        :math:`P(t=1 \mid a=1) = \text{base\_rate} + \text{label\_bias}` and
        :math:`P(t=1 \mid a=0) = \text{base\_rate} - \text{label\_bias}` (like Hall et al.'s ε
        when ``base_rate`` is 1/2). Must keep both rates in [0, 1].
    lean
        How much the model's score moves toward positive for group 1 (and toward negative for
        group 0), whatever the true label: > 0 amplifies a positive label bias, < 0 dampens it.
    signal
        Separation of the classes in the score; accuracy of a group-blind model is Φ(signal).
    offset
        Added to every score: < 0 under-predicts the positive class (threshold miscalibration).
    sharpness
        Multiplies the logit: > 1 is overconfident, < 1 underconfident.
    base_rate
        The average positive rate.
    group_share
        :math:`P(a=1)`.
    seed
        Seed of the generator; equal seeds give equal frames.

    Returns
    -------
    pandas.DataFrame
        ``n`` rows with ``group`` (0/1), ``target`` (0/1), ``logit``, ``prob`` (sigmoid of the
        logit) and ``pred`` (0/1).
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: need at least one example (a positive integer), got {show(n)!r}")
    for name, value in (("label_bias", label_bias), ("lean", lean), ("signal", signal), ("offset", offset),
                        ("sharpness", sharpness)):
        _number(value, name)
    seed = _seed(seed)
    _check_prob(base_rate, "base_rate")
    _check_prob(group_share, "group_share")
    hi, lo = base_rate + label_bias, base_rate - label_bias
    if not (0 <= lo <= 1 and 0 <= hi <= 1):
        raise ValueError(
            f"label_bias: {label_bias} puts a group's positive rate outside [0, 1] at base_rate "
            f"{base_rate}; use |label_bias| <= {min(base_rate, 1 - base_rate)}"
        )
    if signal < 0 or sharpness < 0:
        raise ValueError("signal/sharpness: must be non-negative")
    rng = np.random.default_rng(seed)
    group = (rng.random(n) < group_share).astype(np.int64)
    rate = np.where(group == 1, hi, lo)
    target = (rng.random(n) < rate).astype(np.int64)
    x = (2 * target - 1) * signal + lean * (2 * group - 1) + offset + rng.standard_normal(n)
    logit = 2 * signal * sharpness * x
    return pd.DataFrame(
        {"group": group, "target": target, "logit": logit, "prob": expit(logit), "pred": (x > 0).astype(np.int64)}
    )


def simulate_group_predictions(
    group_sizes: Sequence[int], accuracies: Sequence[float], *, seed: int = 0
) -> pd.DataFrame:
    """Labels and predictions for several groups, each right with its own probability.

    Parameters
    ----------
    group_sizes
        Shape ``(G,)``: examples per group.
    accuracies
        Shape ``(G,)``: the probability that a prediction in each group is correct.
    seed
        Seed of the generator.

    Returns
    -------
    pandas.DataFrame
        ``sum(group_sizes)`` rows with ``group`` (0 … G−1), ``target`` and ``pred`` (0/1;
        the targets are balanced coin flips).
    """
    for name, value in (("group_sizes", group_sizes), ("accuracies", accuracies)):
        if value is None or isinstance(value, (str, bytes)) or np.ndim(value) != 1 or len(value) == 0:
            raise ValueError(f"{name}: expected a non-empty list (one entry per group), got {value!r}")
    sizes = np.asarray([positive_int(v, f"group_sizes[{i}]", meaning="(examples in the group)")
                        for i, v in enumerate(group_sizes)], dtype=np.int64)
    try:
        accs = np.asarray(accuracies, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"accuracies: expected numbers in [0, 1], got {accuracies!r}") from None
    if sizes.shape != accs.shape or sizes.ndim != 1:
        raise ValueError(
            f"group_sizes/accuracies: need two 1-D sequences of equal length, got {sizes.shape} and {accs.shape}"
        )
    if (sizes < 1).any():
        raise ValueError(f"group_sizes: every group needs at least one example, got {sizes.tolist()}")
    if not ((accs >= 0) & (accs <= 1)).all():
        raise ValueError(f"accuracies: must lie in [0, 1], got {accs.tolist()}")
    rng = np.random.default_rng(_seed(seed))
    group = np.repeat(np.arange(len(sizes)), sizes)
    target = rng.integers(0, 2, group.size)
    correct = rng.random(group.size) < accs[group]
    pred = np.where(correct, target, 1 - target)
    return pd.DataFrame({"group": group, "target": target, "pred": pred})


def simulate_multilabel(
    n: int, n_labels: int, *, shared: float = 0.0, signal: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Independent binary labels whose predicted probabilities share a common factor.

    Each label's score is :math:`x_k = (2t_k - 1)s + \text{shared}\cdot u + \varepsilon_k` with one
    :math:`u \sim \mathcal N(0,1)` per example: the larger ``shared``, the more the outputs move
    together although the labels are independent (what a less expressive feature layer does).

    Returns
    -------
    (targets, probs)
        Both of shape ``(n, n_labels)``: 0/1 labels and sigmoid probabilities.
    """
    for name, value in (("n", n), ("n_labels", n_labels)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"{name}: expected an integer >= 2, got {show(value)!r}")
    if n < 2 or n_labels < 2:
        raise ValueError(f"n/n_labels: need at least 2 of each, got n={n}, n_labels={n_labels}")
    _number(shared, "shared")
    _number(signal, "signal")
    rng = np.random.default_rng(_seed(seed))
    targets = rng.integers(0, 2, (n, n_labels))
    u = rng.standard_normal((n, 1))
    x = (2 * targets - 1) * signal + shared * u + rng.standard_normal((n, n_labels))
    return targets, expit(2 * signal * x)


def simulate_association_scores(
    n_concepts: int, *, retention: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Association scores of concepts before and after a simulated fine-tuning.

    ``after = retention * before + sqrt(1 - retention**2) * noise`` with standard normal
    ``before`` and ``noise``, so the population rank correlation grows with ``retention``
    (``retention`` 1: the ranking survives intact; 0: it is reshuffled).

    Returns
    -------
    (before, after)
        Both of shape ``(n_concepts,)``.
    """
    if not isinstance(n_concepts, (int, np.integer)) or isinstance(n_concepts, bool) or n_concepts < 2:
        raise ValueError(f"n_concepts: need at least 2 (an integer), got {show(n_concepts)!r}")
    if not -1 <= _number(retention, "retention") <= 1:
        raise ValueError(f"retention: must lie in [-1, 1], got {retention}")
    rng = np.random.default_rng(_seed(seed))
    before = rng.standard_normal(n_concepts)
    after = retention * before + np.sqrt(1 - retention**2) * rng.standard_normal(n_concepts)
    return before, after


# --------------------------------------------------------------------------- experiments (Chapter 1)
#: Sizes of Chapter 1's constructed data; only sizes differ between the profiles (``paper`` is
#: ``full``: the chapter reproduces no grid of a paper). A rehearsal runs the full code at quick size.
SETTINGS = {
    "quick": {"n": 4_000, "repeats": 40, "sweep_points": 11},
    "full": {"n": 100_000, "repeats": 400, "sweep_points": 41},
    "rehearsal": {"n": 2_000, "repeats": 8, "sweep_points": 5},
}

#: The invariance paper's test split: 474 images per group, five groups, 88% mean accuracy.
PAPER_PER_GROUP, PAPER_GROUPS, PAPER_ACCURACY = 474, 5, 0.88


def run_group_accuracy(spread: float, per_group: int, repeat: int, seed: int = 0) -> dict[str, float]:
    """Accuracy variance (pp²) and worst-group accuracy of constructed per-group predictions.

    Five groups of ``per_group`` examples whose true accuracies are spread evenly over
    ``0.88 ± spread``; ``repeat`` draws a new sample (the seed also depends on ``spread``).
    """
    from fairlib import metrics

    limit = round(1 - PAPER_ACCURACY, 6)
    if abs(_number(spread, "spread")) > limit:
        raise ValueError(f"spread: {spread} puts a group's accuracy outside [0, 1] around {PAPER_ACCURACY}; "
                         f"use |spread| <= {limit}")
    positive_int(per_group, "per_group")
    integer(repeat, "repeat", minimum=0)
    _seed(seed)
    true_acc = PAPER_ACCURACY + spread * np.linspace(-1, 1, PAPER_GROUPS)
    d = simulate_group_predictions([per_group] * PAPER_GROUPS, true_acc,
                                   seed=seed + 1000 * repeat + int(round(spread * 1e4)))
    return {"variance": metrics.accuracy_variance(d.target, d.pred, groups=d.group),
            "worst": metrics.worst_group_accuracy(d.target, d.pred, groups=d.group)}


def _settings(profile: str | None) -> dict:
    from fairlib.config import select

    return select(SETTINGS, profile)


def group_accuracy_grid(profile: str) -> list[dict]:
    """Spreads 0-10 pp, the paper's 474 per group and a small 20 per group, ``repeats`` samples each."""
    from fairlib import sweep

    cfg = _settings(profile)
    return sweep.grid(spread=np.linspace(0, 0.10, cfg["sweep_points"]).round(6).tolist(),
                      per_group=[PAPER_PER_GROUP, 20], repeat=list(range(cfg["repeats"])))


def run_biasamp(label_bias: float, lean: float, repeat: int, n: int, seed: int = 0) -> dict[str, float]:
    """BiasAmp of :func:`simulate_predictions` with label bias ``label_bias`` and a model lean ``lean``."""
    from fairlib import metrics

    integer(repeat, "repeat", minimum=0)
    _seed(seed)
    d = simulate_predictions(n, label_bias=label_bias, lean=lean, seed=seed + 100 * repeat + 1)
    return {"biasamp": metrics.bias_amplification(d.target, d.pred, groups=d.group),
            "accuracy": float((d.target == d.pred).mean())}


def biasamp_grid(profile: str) -> list[dict]:
    """Label bias 0-0.3 against leans -1.5…1.5, ``repeats / 4`` samples each."""
    from fairlib import sweep

    cfg = _settings(profile)
    leans = np.linspace(-1.5, 1.5, cfg["sweep_points"]).round(6).tolist()
    return sweep.grid(label_bias=[0.0, 0.1, 0.2, 0.3], lean=leans, repeat=list(range(cfg["repeats"] // 4)),
                      n=[cfg["n"]])


def explore_biasamp(label_bias: float = 0.2, lean: float = 0.5, signal: float = 1.0, *, n: int = 4_000,
                    seed: int = 0) -> pd.DataFrame:
    """Chapter 1's slider: print accuracy and BiasAmp of one constructed sample; return its terms."""
    from fairlib import metrics

    d = simulate_predictions(n, label_bias=label_bias, lean=lean, signal=signal, seed=seed)
    print(f"accuracy {100 * (d.target == d.pred).mean():.1f}%   "
          f"BiasAmp {metrics.bias_amplification(d.target, d.pred, groups=d.group):+.3f}")
    return metrics.bias_amplification_table(d.target, d.pred, groups=d.group).round(3)


# --------------------------------------------------------------------------- compute plans (fairlib.plan)
# Chapter 1 trains no network: every configuration is O(rows) NumPy work on the CPU, so its stages
# plan no FLOPs, only CPU time and the host memory of the constructed frame. CPU time per
# configuration, measured on the build machine with sweep.run (store write included):
# run_group_accuracy at 2,370 rows 5 ms, run_biasamp at 100,000 rows 24 ms, i.e. about 4.5 ms
# plus 0.2 us per row.
_RUN_S, _ROW_S = 4.5e-3, 0.2e-6


def _group_accuracy_cost(config: dict[str, Any]) -> list:
    """One draw of :func:`run_group_accuracy`: ``5 * per_group`` rows of group, target, prediction.

    Host memory: 3 int64 columns, about 3 copies alive while the frame is built (8 bytes each).
    """
    from fairlib.plan import Stage

    rows = PAPER_GROUPS * int(config["per_group"])
    return [Stage("simulate", host_bytes=3 * 3 * 8 * rows, cpu_seconds=_RUN_S + _ROW_S * rows)]


def _biasamp_cost(config: dict[str, Any]) -> list:
    """One draw of :func:`run_biasamp`: :func:`simulate_predictions` of ``n`` rows.

    Host memory: the frame's 5 float64/int64 columns plus about 5 temporaries of ``n`` values
    (random draws, rates, scores): 10 x 8 bytes per row.
    """
    from fairlib.plan import Stage

    rows = int(config["n"])
    return [Stage("simulate", host_bytes=10 * 8 * rows, cpu_seconds=_RUN_S + _ROW_S * rows)]


def _register() -> None:
    from fairlib import sweep

    sweep.register("01_measuring_bias", "group_accuracy", run_group_accuracy, group_accuracy_grid,
                   "accuracy variance and worst group against the true spread, at two group sizes",
                   cost=_group_accuracy_cost)
    sweep.register("01_measuring_bias", "biasamp", run_biasamp, biasamp_grid,
                   "BiasAmp against label bias and the model's lean on the group", cost=_biasamp_cost)


_register()
