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

import numpy as np
import pandas as pd
from scipy.special import expit

__all__ = [
    "simulate_predictions",
    "simulate_group_predictions",
    "simulate_multilabel",
    "simulate_association_scores",
]


def _check_prob(value: float, name: str) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{name}: must lie in [0, 1], got {value}")


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
    if n < 1:
        raise ValueError(f"n: need at least one example, got {n}")
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
    sizes = np.asarray(group_sizes, dtype=np.int64)
    accs = np.asarray(accuracies, dtype=np.float64)
    if sizes.shape != accs.shape or sizes.ndim != 1:
        raise ValueError(
            f"group_sizes/accuracies: need two 1-D sequences of equal length, got {sizes.shape} and {accs.shape}"
        )
    if (sizes < 1).any():
        raise ValueError(f"group_sizes: every group needs at least one example, got {sizes.tolist()}")
    if ((accs < 0) | (accs > 1)).any():
        raise ValueError(f"accuracies: must lie in [0, 1], got {accs.tolist()}")
    rng = np.random.default_rng(seed)
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
    if n < 2 or n_labels < 2:
        raise ValueError(f"n/n_labels: need at least 2 of each, got n={n}, n_labels={n_labels}")
    rng = np.random.default_rng(seed)
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
    if n_concepts < 2:
        raise ValueError(f"n_concepts: need at least 2, got {n_concepts}")
    if not -1 <= retention <= 1:
        raise ValueError(f"retention: must lie in [-1, 1], got {retention}")
    rng = np.random.default_rng(seed)
    before = rng.standard_normal(n_concepts)
    after = retention * before + np.sqrt(1 - retention**2) * rng.standard_normal(n_concepts)
    return before, after
