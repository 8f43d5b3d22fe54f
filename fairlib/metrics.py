r"""Bias metrics used throughout the course: one metric, one definition, one formula.

Every function accepts numpy arrays, torch tensors or Python lists, validates its input and
raises :class:`ValueError` naming the argument and what is wrong with it.

Every metric that compares groups follows fairlearn's argument convention: the true labels,
then the predictions, then the group labels as **keyword-only** arguments
(``bias_amplification(y_true, y_pred, groups=g)``), so that a swapped argument is an error
instead of a plausible wrong number.

=======================================  ==============================================================
function                                 paper
=======================================  ==============================================================
:func:`bias_amplification`               Wang & Russakovsky's BiasAmp\ :sub:`A→T` (Hall et al., Eq. 1–3)
:func:`attribute_bias_amplification`     BA with a test-set baseline (Iofinova et al., Sec. 2.2)
:func:`threshold_calibration_bias`       TCB (Iofinova et al., Sec. 2.3)
:func:`uncertainty_rate`                 share of uncertain outputs (Iofinova et al., Sec. 2.3)
:func:`expected_calibration_error`       ECE (Guo et al.; Iofinova et al. and Hall et al. RQ4)
:func:`label_interrelation`              R² of each output on the others (Iofinova et al., Sec. 2.3)
:func:`group_accuracy`,                  per-group accuracy and its variance (the adversarial-
:func:`accuracy_variance`                invariance paper's bias surrogate, Table 1)
:func:`bootstrap_interval`,              their uncertainty: a within-group bootstrap of test
:func:`simulated_group_interval`         predictions, or a binomial simulation of quoted accuracies
:func:`bias_transfer_score`              Spearman ρ of association scores (Ranjit et al.)
=======================================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from fairlib._validation import (
    as_1d,
    as_binary,
    as_labels,
    as_probability,
    number,
    positive_int,
    same_label_kind,
    same_length,
    show,
    to_numpy,
)

__all__ = [
    "bias_amplification",
    "bias_amplification_table",
    "attribute_bias_amplification",
    "expected_calibration_error",
    "calibration_bins",
    "threshold_calibration_bias",
    "uncertainty_rate",
    "label_interrelation",
    "group_accuracy",
    "accuracy_interval",
    "accuracy_variance",
    "worst_group_accuracy",
    "accuracy_gap",
    "GROUP_STATISTICS",
    "bootstrap_interval",
    "simulated_group_interval",
    "bias_transfer_score",
]

ArrayLike = Any  # numpy array, torch tensor or list


def _check_pred_labels(t: np.ndarray, p: np.ndarray, labels: ArrayLike | None) -> None:
    """Predicted classes must occur in the labels (or in ``labels``): anything else is most likely
    another encoding of the same classes (-1/+1 against 0/1, names against codes)."""
    known = np.unique(t) if labels is None else np.union1d(np.unique(t), np.asarray(labels))
    extra = np.setdiff1d(np.unique(p), known)
    if extra.size:
        raise ValueError(
            f"y_pred: predicts {show(extra[0])!r}, which never occurs in y_true (labels "
            f"{[show(v) for v in known[:6]]}); encode both the same way, or pass labels= with every class of the task")


def _floats(arr: np.ndarray, name: str) -> np.ndarray:
    """``arr`` as float64, or a ``ValueError`` naming ``name`` (strings, objects)."""
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected numbers, got dtype {arr.dtype}") from None


def _finite_number(value: Any, name: str) -> float:
    return number(value, name)


def _codes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique values and the integer code of each element."""
    uniques, codes = np.unique(x, return_inverse=True)
    return uniques, codes.reshape(-1)


# --------------------------------------------------------------------------- BiasAmp A->T
def bias_amplification_table(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    groups: ArrayLike,
    reference: tuple[ArrayLike, ArrayLike] | None = None,
    labels: ArrayLike | None = None,
) -> pd.DataFrame:
    r"""Every (group, class) term of BiasAmp\ :sub:`A→T`, one row per pair.

    Columns: ``group``, ``target``, ``n_group``, ``p_target`` = P(T_t=1 | A_a=1),
    ``p_pred`` = P(T̂_t=1 | A_a=1), ``y`` = y_at, ``delta`` = Δ_at and
    ``contribution`` = y_at·Δ_at − (1 − y_at)·Δ_at. :func:`bias_amplification` is the mean
    of ``contribution``. See :func:`bias_amplification` for the parameters.
    """
    t = as_labels(y_true, "y_true")
    p = as_labels(y_pred, "y_pred")
    g = as_1d(groups, "groups")
    same_length(y_true=t, y_pred=p, groups=g)
    same_label_kind(y_true=t, y_pred=p)
    if labels is not None:
        labels = as_labels(labels, "labels")
    _check_pred_labels(t, p, labels)

    group_values, g_codes = _codes(g)
    if len(group_values) < 2:
        raise ValueError(
            f"groups: only one group ({show(group_values[0])!r}) is present; "
            "bias amplification compares at least two groups"
        )
    try:
        classes = np.union1d(t, p) if labels is None else np.union1d(np.union1d(t, p), np.asarray(labels))
    except TypeError as exc:
        raise ValueError(f"y_true/y_pred: labels of incomparable types ({exc})") from exc
    n_a = np.bincount(g_codes, minlength=len(group_values))

    if reference is None:
        ref_g, ref_t = g, t
    else:
        if not isinstance(reference, (tuple, list)) or len(reference) != 2:
            raise ValueError("reference: expected a pair (y_true, groups) from the reference split")
        ref_t = as_labels(reference[0], "reference y_true")
        ref_g = as_1d(reference[1], "reference groups")
        same_length(**{"reference y_true": ref_t, "reference groups": ref_g})
        missing = np.setdiff1d(group_values, ref_g)
        if missing.size:
            raise ValueError(
                f"reference: group {show(missing[0])!r} is absent from the reference split, "
                "so the direction of its bias is undefined"
            )
    ref_n = len(ref_g)

    rows = []
    for ai, a in enumerate(group_values):
        in_a = g_codes == ai
        ref_in_a = ref_g == a
        ref_n_a = int(ref_in_a.sum())
        for c in classes:
            ref_n_t = int((ref_t == c).sum())
            ref_n_at = int((ref_in_a & (ref_t == c)).sum())
            # Integer comparison: P(a,t) > P(a)P(t)  <=>  n_at * N > n_a * n_t, never rounded.
            y = int(ref_n_at * ref_n > ref_n_a * ref_n_t)
            p_target = float((t[in_a] == c).mean())
            p_pred = float((p[in_a] == c).mean())
            delta = p_pred - p_target
            rows.append(
                {
                    "group": a,
                    "target": c,
                    "n_group": int(n_a[ai]),
                    "p_target": p_target,
                    "p_pred": p_pred,
                    "y": y,
                    "delta": delta,
                    "contribution": y * delta - (1 - y) * delta,
                }
            )
    return pd.DataFrame(rows)


def bias_amplification(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    groups: ArrayLike,
    reference: tuple[ArrayLike, ArrayLike] | None = None,
    labels: ArrayLike | None = None,
) -> float:
    r"""Directional bias amplification BiasAmp\ :sub:`A→T` (Wang & Russakovsky, 2021).

    Hall et al., Eq. (1)–(3):

    .. math::

        \mathrm{BiasAmp}_{A\to T} = \frac{1}{|A||T|}\sum_{a,t} y_{at}\Delta_{at}
            - (1 - y_{at})\Delta_{at},\qquad
        \Delta_{at} = P(\hat T_t = 1 \mid A_a = 1) - P(T_t = 1 \mid A_a = 1),

    with :math:`y_{at} = [P(T_t = 1, A_a = 1) > P(T_t = 1) P(A_a = 1)]`, decided from exact
    integer counts (:math:`n_{at} N > n_a n_t`) so that rounding never flips it.

    Parameters
    ----------
    y_true, y_pred
        Shape ``(N,)``: each example's true class and the model's hard prediction. Any
        hashable, sortable labels.
    groups
        Keyword-only, shape ``(N,)``: the group (attribute) of each example.
    reference
        Optional ``(y_true, groups)`` of another split (e.g. the training labels) from which
        :math:`y_{at}` is taken. By default :math:`y_{at}` comes from ``y_true``/``groups``.
    labels
        Every class of the task. Needed only when the model predicts a class that never occurs
        in ``y_true``; without it, such a prediction is refused as a likely encoding mismatch
        (e.g. -1/+1 predictions against 0/1 labels).

    Returns
    -------
    float
        0 when predictions are exactly as biased as the labels, positive when the model
        amplifies the bias, negative when it dampens it. The pairs are all groups present in
        ``groups`` and all classes present in ``y_true`` or ``y_pred``.
    """
    table = bias_amplification_table(y_true, y_pred, groups=groups, reference=reference, labels=labels)
    return float(table["contribution"].mean())


# --------------------------------------------------------------------------- BA (pruning paper)
def attribute_bias_amplification(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    identity: ArrayLike,
    train_true: ArrayLike,
    train_identity: ArrayLike,
    min_count: int = 10,
    min_rel_diff: float = 0.1,
) -> float:
    r"""Bias amplification of one binary attribute w.r.t. one binary identity category.

    Iofinova et al., Sec. 2.2, with the test labels as the baseline:

    .. math::

        \mathrm{BA} = \frac{N(\hat y = 1, I = g^*)}{N(\hat y = 1)}
                    - \frac{N(y = 1, I = g^*)}{N(y = 1)}

    where :math:`g^*` is the identity value whose *training* positive rate is higher.

    Parameters
    ----------
    y_true, y_pred
        Shape ``(N,)``, binary 0/1 (or bool): the test set's true and predicted attribute.
    identity
        Keyword-only, shape ``(N,)``, binary: the test set's identity category.
    train_true, train_identity
        Keyword-only, shape ``(M,)``, binary: the training split's attribute and identity labels,
        which decide the direction of the correlation.
    min_count
        Return NaN when either identity group has fewer than this many test positives.
    min_rel_diff
        Return NaN when the two training positive rates differ by less than this fraction of
        the smaller one (the attribute is not meaningfully correlated with the identity).

    Returns
    -------
    float
        Positive when the model over-predicts the attribute for the group it is already
        associated with; NaN when the measurement is unreliable (see above) or the model
        predicts no positives at all.
    """
    yt = as_binary(y_true, "y_true")
    yp = as_binary(y_pred, "y_pred")
    ident = as_binary(identity, "identity")
    same_length(y_true=yt, y_pred=yp, identity=ident)
    tr_y = as_binary(train_true, "train_true")
    tr_i = as_binary(train_identity, "train_identity")
    same_length(train_true=tr_y, train_identity=tr_i)
    if not isinstance(min_count, (int, np.integer)) or isinstance(min_count, (bool, np.bool_)) or min_count < 0:
        raise ValueError(f"min_count: must be non-negative (an integer count of positives), got {show(min_count)!r}")
    if _finite_number(min_rel_diff, "min_rel_diff") < 0:
        raise ValueError(f"min_rel_diff: must be non-negative, got {min_rel_diff}")
    for name, arr in (("train_identity", tr_i), ("identity", ident)):
        if np.unique(arr).size < 2:
            raise ValueError(f"{name}: only one identity value ({arr[0]}) is present; BA needs both")

    rates = np.array([tr_y[tr_i == v].mean() for v in (0, 1)])
    lo, hi = rates.min(), rates.max()
    if hi == 0 or (lo > 0 and (hi - lo) / lo < min_rel_diff):
        return float("nan")
    g_star = int(np.argmax(rates))

    test_pos = np.array([int(((yt == 1) & (ident == v)).sum()) for v in (0, 1)])
    if (test_pos < min_count).any():
        return float("nan")
    n_pred_pos = int(yp.sum())
    if n_pred_pos == 0:
        return float("nan")
    pred_share = ((yp == 1) & (ident == g_star)).sum() / n_pred_pos
    true_share = ((yt == 1) & (ident == g_star)).sum() / yt.sum()
    return float(pred_share - true_share)


# --------------------------------------------------------------------------- calibration
def calibration_bins(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 15) -> pd.DataFrame:
    """Equal-width confidence bins for ECE and reliability diagrams.

    Bin ``i`` is ``(i/n, (i+1)/n]``; a confidence of exactly 0 falls in the first bin.

    Parameters
    ----------
    confidences
        Shape ``(N,)`` in [0, 1]: max-softmax confidence, or a positive-class probability.
    correct
        Shape ``(N,)``, binary: whether the prediction was right, or the 0/1 label when
        ``confidences`` is a positive-class probability.
    n_bins
        Number of bins (at least 1).

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``lower``, ``upper``, ``count``, ``confidence`` (mean), ``accuracy``
        (mean of ``correct``); the means are NaN in empty bins.
    """
    conf = as_probability(confidences, "confidences")
    corr = as_binary(correct, "correct")
    same_length(confidences=conf, correct=corr)
    n_bins = positive_int(n_bins, "n_bins")
    edges = np.arange(n_bins + 1) / n_bins  # i/n is exact for the edge values users type
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(idx, weights=corr, minlength=n_bins) / count
    return pd.DataFrame(
        {"lower": edges[:-1], "upper": edges[1:], "count": count, "confidence": mean_conf, "accuracy": mean_acc}
    )


def expected_calibration_error(confidences: ArrayLike, correct: ArrayLike, n_bins: int = 15) -> float:
    r"""Expected calibration error over equal-width bins.

    .. math:: \mathrm{ECE} = \sum_b \frac{n_b}{N}\,\bigl|\,\overline{\mathrm{correct}}_b
              - \overline{\mathrm{confidence}}_b\bigr|

    with bins ``(i/n, (i+1)/n]`` (0 in the first); empty bins are skipped. Works both for
    max-softmax confidence with 0/1 correctness and for a positive-class probability with
    0/1 labels. See :func:`calibration_bins` for the parameters.
    """
    bins = calibration_bins(confidences, correct, n_bins)
    used = bins[bins["count"] > 0]
    weights = used["count"] / used["count"].sum()
    return float((weights * (used["accuracy"] - used["confidence"]).abs()).sum())


# --------------------------------------------------------------------------- systematic bias
def threshold_calibration_bias(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    r"""Threshold calibration bias (Iofinova et al., Sec. 2.3).

    .. math::

        \mathrm{TCB} = \begin{cases} N(\hat y = 1) / N(y = 1) & \text{if } \overline{y} < 0.5\\
                                     N(\hat y = 0) / N(y = 0) & \text{otherwise}\end{cases}

    The share of predictions of the attribute's *less common* value relative to its true
    share; 1 is ideal, below 1 means the rare value is under-predicted.

    Parameters
    ----------
    y_true, y_pred
        Shape ``(N,)``, binary 0/1.
    """
    yt = as_binary(y_true, "y_true")
    yp = as_binary(y_pred, "y_pred")
    same_length(y_true=yt, y_pred=yp)
    rare = 1 if yt.mean() < 0.5 else 0
    n_true = int((yt == rare).sum())
    if n_true == 0:
        raise ValueError(
            f"y_true: all labels are {1 - rare}; TCB needs at least one example of the other value"
        )
    return float((yp == rare).sum() / n_true)


def uncertainty_rate(probs: ArrayLike, low: float = 0.1, high: float = 0.9) -> float:
    """Fraction of probabilities strictly inside ``(low, high)`` (Iofinova et al., Sec. 2.3).

    Parameters
    ----------
    probs
        Shape ``(N,)`` or ``(N, K)``, sigmoid outputs in [0, 1]; a matrix is flattened.
    low, high
        The open interval counted as uncertain; ``0 <= low < high <= 1``.
    """
    arr = _floats(to_numpy(probs, "probs"), "probs").reshape(-1)
    arr = as_probability(arr, "probs")
    _finite_number(low, "low")
    _finite_number(high, "high")
    if not 0 <= low < high <= 1:
        raise ValueError(f"low/high: need 0 <= low < high <= 1, got low={low}, high={high}")
    return float(((arr > low) & (arr < high)).mean())


def label_interrelation(preds: ArrayLike, *, constant: float = np.nan) -> np.ndarray:
    r"""Label interrelation (Iofinova et al., Sec. 2.3): R² of each output on all the others.

    For column :math:`k` of the prediction matrix, fit an ordinary least-squares regression
    (with intercept) on the other :math:`K-1` columns and report
    :math:`R^2_k = 1 - \mathrm{SS}_{res}/\mathrm{SS}_{tot}`. The authors' code
    (``compute_interdependence``) does this on the *hard* 0/1 predictions.

    Parameters
    ----------
    preds
        Shape ``(N, K)`` with ``K >= 2``: one column per attribute (hard predictions,
        probabilities or logits).
    constant
        The value for a constant column, whose :math:`\mathrm{SS}_{tot}` is zero: NaN (R² is
        undefined; the default) or 1.0, what scikit-learn's ``LinearRegression().score`` and so
        the authors' code give (the regression fits a constant exactly).

    Returns
    -------
    numpy.ndarray
        Shape ``(K,)``; ``constant`` for a constant column.
    """
    x = _floats(to_numpy(preds, "preds"), "preds")
    if x.ndim != 2:
        raise ValueError(f"preds: expected an (N, K) matrix, got shape {x.shape}")
    n, k = x.shape
    if k < 2:
        raise ValueError(f"preds: needs at least 2 columns to regress one on the others, got {k}")
    if n < 2:
        raise ValueError(f"preds: needs at least 2 rows, got {n}")
    if not np.isfinite(x).all():
        raise ValueError("preds: contains NaN or infinite values")
    if not isinstance(constant, (int, float, np.floating, np.integer)) or isinstance(constant, (bool, np.bool_)):
        raise ValueError(f"constant: expected a number (NaN or 1.0) for constant columns, got {constant!r}")
    out = np.empty(k)
    # centred and scaled columns: the intercept drops out, and nearly constant columns (a broken
    # model's outputs) no longer make the least-squares problem ill-conditioned; constant ones carry
    # no information and leave the design
    centred = x - x.mean(axis=0)
    scale = np.sqrt((centred ** 2).sum(axis=0))
    varies = scale > 0
    z = np.where(varies, centred / np.where(varies, scale, 1.0), 0.0)
    for j in range(k):
        if not varies[j]:
            out[j] = constant
            continue
        others = [c for c in range(k) if c != j and varies[c]]
        if not others:
            out[j] = 0.0
            continue
        coef, *_ = np.linalg.lstsq(z[:, others], z[:, j], rcond=None)
        ss_res = float(((z[:, j] - z[:, others] @ coef) ** 2).sum())
        out[j] = float(np.clip(1.0 - ss_res, 0.0, 1.0))  # the scaled column's total sum of squares is 1
    return out


# --------------------------------------------------------------------------- per-group accuracy
def group_accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, groups: ArrayLike) -> pd.Series:
    """Accuracy per group, as a fraction, indexed by the sorted group labels.

    Parameters
    ----------
    y_true, y_pred
        Shape ``(N,)``: true and predicted labels.
    groups
        Keyword-only, shape ``(N,)``: the group of each example.
    """
    yt = as_labels(y_true, "y_true")
    yp = as_labels(y_pred, "y_pred")
    g = as_1d(groups, "groups")
    same_length(y_true=yt, y_pred=yp, groups=g)
    same_label_kind(y_true=yt, y_pred=yp)
    frame = pd.DataFrame({"group": g, "correct": (yt == yp).astype(float)})
    acc = frame.groupby("group", sort=True)["correct"].mean()
    acc.name = "accuracy"
    return acc


def accuracy_interval(accuracy: float, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` of an accuracy measured on ``n`` examples.

    The accuracy is turned back into a count, ``round(accuracy * n)`` correct answers, and
    :meth:`scipy.stats.binomtest(...).proportion_ci(method="wilson") <scipy.stats.binomtest>`
    gives the interval; unlike the normal approximation it stays inside [0, 1] near 0 and 1.

    Examples
    --------
    >>> [round(v, 4) for v in accuracy_interval(0.8, 10)]  # 8 of 10 correct
    [0.4902, 0.9433]
    """
    from scipy.stats import binomtest

    acc = _finite_number(accuracy, "accuracy")
    if not 0.0 <= acc <= 1.0:
        raise ValueError(f"accuracy: expected a fraction in [0, 1], got {accuracy!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected the number of examples (an integer >= 1), got {n!r}")
    conf = _finite_number(confidence, "confidence")
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence: expected a level in (0, 1), e.g. 0.95, got {confidence!r}")
    ci = binomtest(int(round(acc * int(n))), int(n)).proportion_ci(confidence_level=conf, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy_variance(y_true: ArrayLike, y_pred: ArrayLike, *, groups: ArrayLike) -> float:
    r"""Sample variance (ddof = 1) of the per-group accuracies, in percentage points squared.

    .. math:: \frac{1}{G-1}\sum_g (100\,\mathrm{acc}_g - \overline{100\,\mathrm{acc}})^2

    The bias surrogate of the adversarial-invariance paper (its Table 1: 11.26 for
    SimpleCNN). Every group counts once, whatever its size.
    """
    acc = group_accuracy(y_true, y_pred, groups=groups)
    if len(acc) < 2:
        raise ValueError(f"groups: only one group ({show(acc.index[0])!r}) is present; variance needs two")
    return float(np.var(100.0 * acc.to_numpy(), ddof=1))


def worst_group_accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, groups: ArrayLike) -> float:
    """The lowest per-group accuracy (a fraction)."""
    acc = group_accuracy(y_true, y_pred, groups=groups)
    if len(acc) < 2:
        raise ValueError(f"groups: only one group ({show(acc.index[0])!r}) is present; a worst group needs two")
    return float(acc.min())


def accuracy_gap(y_true: ArrayLike, y_pred: ArrayLike, *, groups: ArrayLike) -> float:
    """The largest difference between two groups' accuracies (a fraction)."""
    acc = group_accuracy(y_true, y_pred, groups=groups)
    if len(acc) < 2:
        raise ValueError(f"groups: only one group ({show(acc.index[0])!r}) is present; a gap needs two")
    return float(acc.max() - acc.min())


#: The per-group statistics of :func:`bootstrap_interval` and :func:`simulated_group_interval`.
GROUP_STATISTICS: tuple[str, ...] = ("variance", "worst", "gap", "mean", "overall")
_CONTRASTS = ("difference", "ratio")


def _group_statistic(statistic: Any, acc: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``statistic`` of every row of ``acc`` ``(B, G)`` (per-group accuracies in %) -> ``(B,)``."""
    if callable(statistic):
        out = np.asarray(statistic(acc), dtype=np.float64)
        if out.shape != (acc.shape[0],):
            raise ValueError(f"statistic: a callable must map the (n_resamples, n_groups) = {acc.shape} array of "
                             f"per-group accuracies (%) to one value per resample, shape ({acc.shape[0]},); "
                             f"got shape {out.shape}")
        return out
    if statistic == "variance":
        return acc.var(axis=1, ddof=1)
    if statistic == "worst":
        return acc.min(axis=1)
    if statistic == "gap":
        return acc.max(axis=1) - acc.min(axis=1)
    if statistic == "mean":
        return acc.mean(axis=1)
    return acc @ (sizes / sizes.sum())  # "overall"


def _check_statistic(statistic: Any, n_groups: int) -> None:
    if callable(statistic):
        return
    if not isinstance(statistic, str) or statistic not in GROUP_STATISTICS:
        raise ValueError(f"statistic: expected one of {list(GROUP_STATISTICS)} or a callable on the "
                         f"(n_resamples, n_groups) array of per-group accuracies (%), got {statistic!r}")
    if statistic in ("variance", "worst", "gap") and n_groups < 2:
        raise ValueError(f"groups: only one group is present; statistic={statistic!r} compares two or more")


def _contrast(a: np.ndarray, b: np.ndarray | None, contrast: str) -> np.ndarray:
    if b is None:
        return a
    if contrast == "difference":
        return b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a != 0, b / np.where(a != 0, a, 1.0), np.nan)


def _interval_options(contrast: Any, n: Any, n_name: str, confidence: Any, seed: Any) -> tuple[int, float]:
    if not isinstance(contrast, str) or contrast not in _CONTRASTS:
        raise ValueError(f"contrast: expected 'difference' (b - a) or 'ratio' (b / a), got {contrast!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 100:
        raise ValueError(f"{n_name}: expected an integer >= 100 (the number of resamples; 2000 or more for a 95% "
                         f"interval), got {n!r}")
    conf = _finite_number(confidence, "confidence")
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence: expected a level in (0, 1), e.g. 0.95, got {confidence!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(n), conf


def _percentile_interval(point: float, draws: np.ndarray, confidence: float, contrast: str
                         ) -> tuple[float, float, float]:
    finite = draws[np.isfinite(draws)]
    if finite.size < 0.95 * draws.size:
        raise ValueError(f"contrast: {contrast!r} is undefined in {100 * (1 - finite.size / draws.size):.0f}% of "
                         "the resamples (the first statistic is 0 there); use contrast='difference'")
    low, high = np.quantile(finite, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(point), float(low), float(high)


def bootstrap_interval(y_true: ArrayLike, y_pred: ArrayLike, *, groups: ArrayLike, statistic: Any = "variance",
                       compare_to: ArrayLike | None = None, contrast: str = "difference", n_boot: int = 2000,
                       confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    r"""A statistic of the per-group accuracies with a percentile bootstrap interval.

    The examples are resampled with replacement **within each group** (the test design fixes the
    number per group), ``n_boot`` times; each resample gives per-group accuracies
    :math:`a_{b,g}` (in %) and the statistic :math:`s(a_{b,\cdot})`. The interval is the
    :math:`(1\mp c)/2` quantiles of the :math:`s` values, for ``confidence`` :math:`c`.

    With ``compare_to`` (another model's predictions on the *same* examples), the same resamples
    score both models, and the result is the paired contrast :math:`s(b) - s(a)` (or
    :math:`s(b)/s(a)`), e.g. "does FaderCNN lower the variance of SimpleCNN?", read with
    :func:`fairlib.notebook.verdict`.

    Parameters
    ----------
    y_true, y_pred
        Shape ``(N,)``: true and predicted labels (model *a*).
    groups
        Keyword-only, shape ``(N,)``: the group of each example.
    statistic
        ``"variance"`` (sample variance, ddof = 1, pp², as :func:`accuracy_variance`),
        ``"worst"`` (lowest group, %), ``"gap"`` (highest minus lowest, pp), ``"mean"`` (the
        unweighted mean over groups, %: a balanced accuracy), ``"overall"`` (all examples, %), or
        a callable mapping the ``(n_boot, G)`` array of per-group accuracies in % (groups in
        sorted order) to ``(n_boot,)``.
    compare_to
        Shape ``(N,)``: the predictions of model *b*, or ``None``.
    contrast
        ``"difference"`` (:math:`s(b) - s(a)`) or ``"ratio"`` (:math:`s(b)/s(a)`).
    n_boot, confidence, seed
        Resamples (at least 100), the interval's level and the resampling seed.

    Returns
    -------
    (point, low, high)
        The statistic (or contrast) on the examples as given, and the interval's ends.

    Examples
    --------
    >>> y = [1] * 8
    >>> bootstrap_interval(y, [1, 1, 1, 0, 1, 1, 1, 1], groups=[0, 0, 0, 0, 1, 1, 1, 1], statistic="worst")[0]
    75.0
    """
    yt = as_labels(y_true, "y_true")
    yp = as_labels(y_pred, "y_pred")
    g = as_1d(groups, "groups")
    same_length(y_true=yt, y_pred=yp, groups=g)
    same_label_kind(y_true=yt, y_pred=yp)
    other = None
    if compare_to is not None:
        other = as_labels(compare_to, "compare_to")
        same_length(y_true=yt, compare_to=other)
        same_label_kind(y_true=yt, compare_to=other)
    n_boot, conf = _interval_options(contrast, n_boot, "n_boot", confidence, seed)
    codes, sizes = np.unique(g, return_inverse=True, return_counts=True)[1:]
    codes = codes.reshape(-1)
    _check_statistic(statistic, sizes.size)
    correct = [(yt == yp).astype(np.float64)] + ([] if other is None else [(yt == other).astype(np.float64)])
    rng = np.random.default_rng(seed)
    actual = [np.array([[100 * c[codes == k].mean() for k in range(sizes.size)]]) for c in correct]
    boot = [np.empty((n_boot, sizes.size)) for _ in correct]
    for k in range(sizes.size):
        members = np.flatnonzero(codes == k)
        draw = rng.integers(0, members.size, size=(n_boot, members.size))  # the same rows for both models
        for c, out in zip(correct, boot):
            out[:, k] = 100 * c[members][draw].mean(axis=1)
    stats_actual = [_group_statistic(statistic, a, sizes) for a in actual]
    stats_boot = [_group_statistic(statistic, b, sizes) for b in boot]
    point = _contrast(stats_actual[0], stats_actual[1] if other is not None else None, contrast)[0]
    draws = _contrast(stats_boot[0], stats_boot[1] if other is not None else None, contrast)
    if not np.isfinite(point):
        raise ValueError(f"contrast: {contrast!r} is undefined here (the statistic of y_pred is 0); "
                         "use contrast='difference'")
    return _percentile_interval(point, draws, conf, contrast)


def simulated_group_interval(accuracies: ArrayLike, n_per_group: Any, *, statistic: Any = "variance",
                             compare_to: ArrayLike | None = None, contrast: str = "difference",
                             n_sim: int = 20000, confidence: float = 0.95, seed: int = 0
                             ) -> tuple[float, float, float]:
    r"""The sampling noise of a statistic of *quoted* per-group accuracies (a parametric bootstrap).

    For a paper that reports only accuracies: each group's test accuracy is redrawn ``n_sim``
    times as :math:`100\,\mathrm{Binomial}(n_g, p_g)/n_g` with :math:`p_g` the quoted accuracy,
    and the interval is the :math:`(1\mp c)/2` quantiles of the statistic over the draws. It
    answers "how far could this number move with a new test set of the same size?", not "how
    far from the truth is it" (the quoted accuracies stand in for the true ones).

    Parameters
    ----------
    accuracies
        Shape ``(G,)``: per-group accuracies in % (0 to 100).
    n_per_group
        Test examples per group: one integer, or one per group.
    statistic
        As in :func:`bootstrap_interval` (``"overall"`` weights groups by ``n_per_group``).
    compare_to
        Shape ``(G,)``: a second model's accuracies; the result is the contrast
        :math:`s(b) - s(a)` or :math:`s(b)/s(a)`. The two models are drawn **independently**: the
        quoted numbers do not say which test examples both models got right, and models scored on
        the same test set are usually positively correlated, so this interval is wider than a
        paired one.
    contrast, n_sim, confidence, seed
        As ``contrast``, ``n_boot``, ``confidence`` and ``seed`` in :func:`bootstrap_interval`.

    Returns
    -------
    (point, low, high)
        The statistic (or contrast) of the quoted accuracies, and the interval's ends.

    Examples
    --------
    >>> # the paper's Table 1 (Teru & Chakraborty): SimpleCNN's variance of 11.26 at 474 test images per race
    >>> round(simulated_group_interval([92.41, 91.56, 84.07, 90.93, 88.61], 474)[0], 2)
    11.26
    """
    accs = []
    for name, values in (("accuracies", accuracies), ("compare_to", compare_to)):
        if values is None:
            continue
        a = _floats(as_1d(values, name), name)
        if not np.isfinite(a).all() or (a < 0).any() or (a > 100).any():
            raise ValueError(f"{name}: expected per-group accuracies in % (0 to 100), got {a.tolist()}")
        accs.append(a)
    if len(accs) == 2 and accs[1].size != accs[0].size:
        raise ValueError(f"compare_to: {accs[1].size} groups against {accs[0].size} in accuracies")
    n_groups = accs[0].size
    if isinstance(n_per_group, (bool, np.bool_)) or isinstance(n_per_group, (str, bytes)):
        raise ValueError(f"n_per_group: expected the number of test examples per group, got {n_per_group!r}")
    sizes = np.broadcast_to(np.asarray(n_per_group), (n_groups,)) if np.ndim(n_per_group) == 0 else \
        np.asarray(n_per_group)
    if sizes.shape != (n_groups,) or sizes.dtype.kind not in "iu" or (sizes < 1).any():
        raise ValueError(f"n_per_group: expected one integer >= 1, or one per group ({n_groups}), got {n_per_group!r}")
    sizes = sizes.astype(np.int64)
    n_sim, conf = _interval_options(contrast, n_sim, "n_sim", confidence, seed)
    _check_statistic(statistic, n_groups)
    rng = np.random.default_rng(seed)
    stats_actual = [_group_statistic(statistic, a[None, :], sizes) for a in accs]
    stats_sim = [_group_statistic(statistic, 100 * rng.binomial(sizes, a / 100, size=(n_sim, n_groups)) / sizes,
                                  sizes) for a in accs]
    second = len(accs) == 2
    point = _contrast(stats_actual[0], stats_actual[1] if second else None, contrast)[0]
    if not np.isfinite(point):
        raise ValueError(f"contrast: {contrast!r} is undefined here (the statistic of accuracies is 0); "
                         "use contrast='difference'")
    draws = _contrast(stats_sim[0], stats_sim[1] if second else None, contrast)
    return _percentile_interval(point, draws, conf, contrast)


# --------------------------------------------------------------------------- bias transfer
def bias_transfer_score(before: ArrayLike | Sequence[float], after: ArrayLike | Sequence[float]) -> float:
    r"""Bias Transfer Score: Spearman's rank correlation of association scores (Ranjit et al.).

    .. math:: \mathrm{BTS} = \rho_{\mathrm{Spearman}}(s^{\mathrm{before}}, s^{\mathrm{after}})

    Ties receive average ranks. 1 means fine-tuning kept the ranking of associations,
    −1 means it reversed it, around 0 means the ranking was reshuffled.

    Parameters
    ----------
    before, after
        Shape ``(C,)`` with ``C >= 2``: one association score per concept, in the same order.
    """
    b = _floats(as_1d(before, "before"), "before")
    a = _floats(as_1d(after, "after"), "after")
    same_length(before=b, after=a)
    if len(b) < 2:
        raise ValueError(f"before: needs at least 2 concepts to rank, got {len(b)}")
    for name, arr in (("before", b), ("after", a)):
        if np.all(arr == arr[0]):
            raise ValueError(f"{name}: all scores are equal, so their ranking (and ρ) is undefined")
    return float(stats.spearmanr(b, a)[0])
