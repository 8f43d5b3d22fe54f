r"""Controlled bias amplification experiments (Hall et al., *A Systematic Study of Bias Amplification*).

The recipe turns a multi-class image dataset into a binary task with two groups whose
correlation with the label is set exactly by one number, :math:`\varepsilon\in[0, 1/2]`:

1. :func:`binarize_classes` marks a random half of the original classes *positive*;
2. :func:`assign_inversion` picks, within every original class of :math:`n` images, exactly
   :math:`\mathrm{round}(n(1/2-\varepsilon))` images to invert if the class is positive and
   :math:`\mathrm{round}(n(1/2+\varepsilon))` if it is negative; :func:`invert` flips the pixels.
   The group is "inverted or not": at :math:`\varepsilon=0` it says nothing about the label, at
   :math:`\varepsilon=1/2` it decides it;
3. for RQ6, :func:`overlay` mixes a *group image* into each *class image*,
   :math:`\eta\,I_\text{group} + (1-\eta)\,I_\text{class}`, so that :math:`\eta` sets how visible
   the group is relative to the class (:func:`assign_overlay_groups`, :func:`make_overlay_task`).

:func:`make_inversion_task` and :func:`make_overlay_task` return a :class:`Task` (tensors
``x``, ``y``, ``group``) that :func:`fairlib.training.train_and_evaluate` consumes.
:func:`mean_ci` summarises repeated runs as a mean and a 95% confidence interval.

Data: :func:`load_split` reads every dataset through :func:`fairlib.data.load_dataset`:
scikit-learn's 8×8 digits (the quick profile) and Fashion-MNIST, CIFAR-10 and CIFAR-100 (the
full profile), from where ``python -m data_scripts.fetch`` writes them.

Experiments: Chapter 2's research questions are registered sweeps (:func:`fairlib.sweep.register`,
chapter ``02_bias_amplification``): :func:`run_inversion` trains and scores one model on an
inversion task (RQ1 ``rq1``, RQ2 ``rq2``, RQ3 ``rq3``, RQ5 ``rq5``), :func:`run_overlay` one on an
overlay task (RQ6 ``rq6``); ``rqN_grid(profile)`` lists each one's configurations, built from
:func:`settings`. RQ4 (calibration) reads the ECE of the RQ1 and RQ2 runs. :func:`by_knob` and
:func:`history_frame` reshape the sweeps' frames, :func:`band` draws a mean with its interval.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from fairlib import sweep
from fairlib._validation import as_binary, as_labels, integer, positive_int, show

__all__ = [
    "Task",
    "binarize_classes",
    "binary_labels",
    "inversion_counts",
    "assign_inversion",
    "invert",
    "overlay",
    "assign_overlay_groups",
    "equal_update_epochs",
    "overlay_group_counts",
    "draw_group_images",
    "make_inversion_task",
    "make_overlay_task",
    "swap_roles",
    "mean_ci",
    "summarize",
    "paired_difference",
    "load_split",
    "TASK_DATASETS",
    "FULL_DATASETS",
    "AUGMENT_PAD",
    "CAPACITY_KNOBS",
    "settings",
    "inversion_tasks",
    "overlay_tasks",
    "run_inversion",
    "run_overlay",
    "rq1_grid",
    "rq2_grid",
    "rq3_grid",
    "rq5_grid",
    "rq6_grid",
    "rq6_group_grid",
    "by_knob",
    "history_frame",
    "band",
]

FULL_DATASETS = ("fashionmnist", "cifar10", "cifar100")
#: Augmentation's crop padding per dataset (:attr:`Task.pad`; 4 for the others): the paper pads
#: CIFAR with zeros before cropping, as He et al., and not Fashion-MNIST.
AUGMENT_PAD = {"fashionmnist": 0}
#: Every dataset :func:`load_split` reads (quick: digits; full: the paper's three).
TASK_DATASETS = ("digits", *FULL_DATASETS)


@dataclass
class Task:
    """A binary task with two groups: images ``x`` (N, C, H, W) float32, labels ``y`` and ``group`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    group: torch.Tensor
    #: The standardised value of a black pixel, one per channel (what augmentation pads with).
    black: torch.Tensor | None = None
    #: Padding of augmentation's random crop, in pixels: 4 (He et al.'s recipe, CIFAR); 0 leaves
    #: only the flips, since a crop of the full size from an unpadded image is the image itself
    #: (the paper on Fashion-MNIST: "We did not use such padding").
    pad: int = 4

    def __post_init__(self) -> None:
        for name in ("x", "y", "group"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise ValueError(f"{name}: expected a torch tensor, got {type(getattr(self, name)).__name__}")
        sizes = {name: int(getattr(self, name).shape[0]) if getattr(self, name).ndim else 0
                 for name in ("x", "y", "group")}
        if len(set(sizes.values())) > 1:
            detail = ", ".join(f"{k} has {n}" for k, n in sizes.items())
            raise ValueError(f"x/y/group: mismatched lengths: {detail}; all must describe the same examples")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: Any) -> "Task":
        index = torch.as_tensor(index)
        n = len(self)
        if index.ndim != 1:
            raise ValueError(f"index: expected a 1-D list of positions or a boolean mask, got shape "
                             f"{tuple(index.shape)}; write [i] for a single example")
        if index.dtype == torch.bool:
            if index.shape != (n,):
                raise ValueError(f"index: a boolean mask must have shape ({n},), got {tuple(index.shape)}")
        elif index.dtype.is_floating_point or index.dtype.is_complex:
            raise ValueError(f"index: expected integer positions or a boolean mask, got dtype {index.dtype}")
        elif index.numel() and (int(index.min()) < -n or int(index.max()) >= n):
            raise ValueError(f"index: positions must lie in [-{n}, {n - 1}] for a task of {n} examples")
        return Task(self.x[index], self.y[index], self.group[index], self.black, self.pad)


# --------------------------------------------------------------------------- labels and groups
def _check_epsilon(epsilon: float, name: str = "epsilon") -> float:
    return _unit_number(epsilon, name, 0.0, 0.5, "[0, 1/2]")


def _unit_number(value: Any, name: str, low: float, high: float, shown: str) -> float:
    """``value`` as a float in ``[low, high]`` (``shown`` is the interval as the message writes it)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, (bool, np.bool_, str, bytes)) or not low <= number <= high:
        raise ValueError(f"{name}: must lie in {shown}, got {show(value)!r}")
    return number


def _seed(seed: Any, name: str = "seed") -> int:
    return integer(seed, name, minimum=0)


def _positive(positive_classes: Any, fine: np.ndarray) -> np.ndarray:
    """``positive_classes`` as a 1-D array, refused when None, empty or absent from ``fine``."""
    if positive_classes is None:
        raise ValueError("positive_classes: got None; pass the classes that form the positive label "
                         "(e.g. binarize_classes(n_classes, seed))")
    positive = np.asarray(positive_classes).reshape(-1)
    if positive.size == 0:
        raise ValueError("positive_classes: is empty, so every label would be 0")
    missing = np.setdiff1d(positive, fine)
    if missing.size == positive.size:
        raise ValueError(f"positive_classes: none of {positive.tolist()[:5]} occurs in fine_labels")
    return positive


def binarize_classes(n_classes: int, seed: int) -> np.ndarray:
    """A random half of ``range(n_classes)``, sorted: the original classes that become positive.

    ``n_classes // 2`` classes are chosen; equal seeds give equal assignments. The paper
    averages every experiment over 20 such assignments.
    """
    n_classes = integer(n_classes, "n_classes", minimum=2)
    rng = np.random.default_rng(_seed(seed))
    return np.sort(rng.choice(int(n_classes), size=int(n_classes) // 2, replace=False))


def binary_labels(fine_labels: Any, positive_classes: Any) -> np.ndarray:
    """1 where the original class is in ``positive_classes``, else 0 (int64)."""
    fine = as_labels(fine_labels, "fine_labels")
    positive = _positive(positive_classes, fine)
    return np.isin(fine, positive).astype(np.int64)


def _round_half_up(x: float) -> int:
    # n * (1/2 - eps) is computed in floating point (10 * 0.2 = 2.0000000000000004): a tiny
    # tolerance keeps exact halves and integers where arithmetic says they are.
    return int(math.floor(x + 0.5 + 1e-9))


def inversion_counts(n: int, positive: bool, epsilon: float) -> int:
    r"""How many of a class's ``n`` images are inverted: round(n(1/2 − ε)) if positive, round(n(1/2 + ε)) if not.

    Halves round up (n = 5, ε = 0 inverts 3 in both kinds of class, so ε = 0 stays unbiased).
    """
    n = integer(n, "n", minimum=0, meaning="(images in the class)")
    if not isinstance(positive, (bool, np.bool_)):
        raise ValueError(f"positive: expected True or False (is the class positive?), got {positive!r}")
    eps = _check_epsilon(epsilon)
    rate = 0.5 - eps if positive else 0.5 + eps
    return min(int(n), max(0, _round_half_up(n * rate)))


def assign_inversion(fine_labels: Any, positive_classes: Any, epsilon: float, seed: int) -> np.ndarray:
    r"""Which images to invert (a bool array), chosen at random within each original class.

    Parameters
    ----------
    fine_labels
        Shape ``(N,)``: the original class of every image.
    positive_classes
        The original classes that form the positive label (see :func:`binarize_classes`).
    epsilon
        Dataset bias in [0, 1/2]; :func:`inversion_counts` gives the exact count per class.
    seed
        Seed for the random choice. Use the same ε (not the same seed) for train and test.
    """
    fine = as_labels(fine_labels, "fine_labels")
    eps = _check_epsilon(epsilon)
    positive = set(_positive(positive_classes, fine).tolist())
    rng = np.random.default_rng(_seed(seed))
    inverted = np.zeros(fine.size, dtype=bool)
    for c in np.unique(fine):
        members = np.flatnonzero(fine == c)
        k = inversion_counts(members.size, c.item() in positive, eps)
        inverted[rng.choice(members, size=k, replace=False)] = True
    return inverted


def invert(images: Any) -> Any:
    """Inverted images: ``255 − x`` for uint8, ``1 − x`` for floats in [0, 1] (numpy or torch)."""
    if isinstance(images, torch.Tensor):
        if images.dtype == torch.uint8:
            return 255 - images
        _check_unit_floats(images.detach().cpu().numpy())
        return 1.0 - images
    if images is None:
        raise ValueError("images: got None; pass uint8 images (0-255) or floats in [0, 1]")
    arr = np.asarray(images)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"images: expected uint8 images (0-255) or floats in [0, 1], got dtype {arr.dtype}")
    if arr.dtype == np.uint8:
        return (255 - arr).astype(np.uint8)
    if arr.dtype.kind in "iu":
        raise ValueError(f"images: integer images must be uint8 (0…255), got {arr.dtype}")
    _check_unit_floats(arr)
    return 1.0 - arr


def _check_unit_floats(arr: np.ndarray) -> None:
    if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
        raise ValueError("images: float images must be finite and lie in [0, 1] (1 - x inverts them); pass uint8 "
                         "images (0-255) or divide by 255 first")


def overlay(class_images: Any, group_images: Any, eta: float) -> Any:
    r"""The convex combination :math:`\eta\,I_\text{group} + (1-\eta)\,I_\text{class}` (paper, Eq. 5)."""
    _unit_number(eta, "eta", 0.0, 1.0, "[0, 1]")
    for name, images in (("class_images", class_images), ("group_images", group_images)):
        if not isinstance(images, (np.ndarray, torch.Tensor)):
            raise ValueError(f"{name}: expected a numpy array or torch tensor, got {type(images).__name__}")
    if tuple(class_images.shape) != tuple(group_images.shape):
        raise ValueError(
            f"class_images/group_images: shapes differ, {tuple(class_images.shape)} vs {tuple(group_images.shape)}"
        )
    return eta * group_images + (1.0 - eta) * class_images


def overlay_group_counts(n: int, positive: bool, epsilon: float) -> int:
    r"""How many of a class's ``n`` images go to group *a*: round(n(1/2 + ε)) if positive, round(n(1/2 − ε)) if not.

    Halves round up, as in :func:`inversion_counts`.
    """
    n = integer(n, "n", minimum=0, meaning="(images in the class)")
    if not isinstance(positive, (bool, np.bool_)):
        raise ValueError(f"positive: expected True or False (is the class positive?), got {positive!r}")
    eps = _check_epsilon(epsilon)
    rate = 0.5 + eps if positive else 0.5 - eps
    return min(int(n), max(0, _round_half_up(n * rate)))


def assign_overlay_groups(fine_labels: Any, positive_classes: Any, epsilon: float, seed: int) -> np.ndarray:
    r"""Group of each example for the overlay task: 0 is group *a*, 1 is group *b*, by exact counts.

    Within each original class of ``n`` images, exactly :func:`overlay_group_counts` of them
    (round(n(1/2 + ε)) for a positive class, round(n(1/2 − ε)) for a negative one, halves up) are
    in group *a*, chosen at random with ``seed``; the rest are in group *b*. Like the inversion
    (:func:`assign_inversion`), the realised bias is then the nominal ε up to rounding, not a
    coin flip per image (which, on a test split of a few hundred images, moves ε by ±0.05).

    Parameters
    ----------
    fine_labels
        Shape ``(N,)``: the original class of every example.
    positive_classes
        The original classes that form the positive label.
    epsilon
        Dataset bias in [0, 1/2].
    seed
        Seed for the random choice within each class.

    Returns
    -------
    numpy.ndarray
        Shape ``(N,)``, int64: 0 (group *a*) or 1 (group *b*).
    """
    fine = as_labels(fine_labels, "fine_labels")
    eps = _check_epsilon(epsilon)
    positive = set(_positive(positive_classes, fine).tolist())
    rng = np.random.default_rng(_seed(seed))
    groups = np.ones(fine.size, dtype=np.int64)
    for c in np.unique(fine):
        members = np.flatnonzero(fine == c)
        k = overlay_group_counts(members.size, c.item() in positive, eps)
        groups[rng.choice(members, size=k, replace=False)] = 0
    return groups


def draw_group_images(groups: Any, pool_sizes: tuple[int, int], seed: int) -> np.ndarray:
    """For each example, an index into its group's pool of images, drawn without replacement.

    If a group needs more images than its pool holds, a fresh random permutation of the pool
    is appended (each image is reused as rarely as possible).
    """
    g = as_binary(groups, "groups")
    if not isinstance(pool_sizes, (tuple, list)) or len(pool_sizes) != 2:
        raise ValueError(f"pool_sizes: expected a pair (images of group 0, images of group 1), got {pool_sizes!r}")
    sizes = [integer(v, f"pool_sizes[{k}]", minimum=0) for k, v in enumerate(pool_sizes)]
    rng = np.random.default_rng(_seed(seed))
    out = np.zeros(g.size, dtype=np.int64)
    for k in (0, 1):
        where = np.flatnonzero(g == k)
        size = sizes[k]
        if where.size and size < 1:
            raise ValueError(f"pool_sizes: group {k} needs images but its pool is empty")
        reps = -(-where.size // max(size, 1))
        order = np.concatenate([rng.permutation(size) for _ in range(max(reps, 0))]) if reps else np.zeros(0, int)
        out[where] = order[: where.size]
    return out


def _to_float_images(images: Any, name: str = "images") -> torch.Tensor:
    if images is None or not (isinstance(images, torch.Tensor) or np.asarray(images).dtype.kind in "biuf"):
        raise ValueError(f"{name}: expected uint8 images (0-255) or floats in [0, 1], got {type(images).__name__}")
    x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = x.float()
    if x.ndim == 3:  # (N, H, W)
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # (N, H, W, C)
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4:
        raise ValueError(f"{name}: expected (N, H, W), (N, H, W, C) or (N, C, H, W), got {tuple(x.shape)}")
    return x.contiguous()


def _reference(normalize_with: Any, x: torch.Tensor) -> torch.Tensor:
    """``normalize_with`` as float images with the channels of ``x``."""
    ref = _to_float_images(normalize_with, "normalize_with")
    if ref.shape[1] != x.shape[1]:
        raise ValueError(f"normalize_with: has {ref.shape[1]} channel(s) but images have {x.shape[1]}; pass the "
                         "training images of the same dataset")
    return ref


def _pair(value: Any, name: str) -> tuple[Any, Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list, np.ndarray)) or len(value) != 2:
        raise ValueError(f"{name}: expected a pair of original classes, e.g. (3, 5), got {value!r}")
    return value[0], value[1]


def _standardize(x: torch.Tensor, stats_from: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` standardised per channel with the statistics of ``stats_from``, and black's value, ``(C,)``."""
    ref = x if stats_from is None else stats_from
    mean = ref.mean(dim=(0, 2, 3), keepdim=True)
    std = ref.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (x - mean) / std, (-mean / std).reshape(-1)


def make_inversion_task(
    images: Any,
    fine_labels: Any,
    positive_classes: Any,
    epsilon: float,
    seed: int,
    *,
    normalize_with: Any = None,
) -> Task:
    """Binary labels, inverted images and groups (1 = inverted) for one split.

    ``images`` are uint8 (0…255) or floats in [0, 1]. Images are standardised per channel with
    the mean and std of the *original* (non-inverted) ``normalize_with`` images (default: these
    images), as in the paper.
    """
    x = _to_float_images(images)
    fine = as_labels(fine_labels, "fine_labels")
    if len(fine) != x.shape[0]:
        raise ValueError(f"images/fine_labels: {x.shape[0]} images but {len(fine)} labels")
    inv = assign_inversion(fine, positive_classes, epsilon, seed)
    mask = torch.as_tensor(inv)
    ref = None if normalize_with is None else _reference(normalize_with, x)
    xs = torch.where(mask[:, None, None, None], invert(x), x)
    xs, black = _standardize(xs, x if ref is None else ref)
    return Task(xs, torch.as_tensor(binary_labels(fine, positive_classes)), mask.long(), black)


def make_overlay_task(
    images: Any,
    fine_labels: Any,
    class_pair: tuple[int, int],
    group_pair: tuple[int, int],
    epsilon: float,
    eta: float,
    seed: int,
    *,
    normalize_with: Any = None,
) -> Task:
    """The RQ6 task: class images of ``class_pair`` (positive, negative) overlaid with group images.

    Group images come from the two original classes of ``group_pair`` (group *a*, group *b*),
    drawn without replacement (:func:`draw_group_images`) from the same split.
    """
    x = _to_float_images(images)
    fine = as_labels(fine_labels, "fine_labels")
    if len(fine) != x.shape[0]:
        raise ValueError(f"images/fine_labels: {x.shape[0]} images but {len(fine)} labels")
    for name, pair in (("class_pair", class_pair), ("group_pair", group_pair)):
        for c in _pair(pair, name):
            if not (fine == c).any():
                raise ValueError(f"{name}: class {c!r} does not occur in fine_labels")
    if len(set(class_pair) | set(group_pair)) != 4:
        raise ValueError(f"class_pair/group_pair: need four distinct classes, got {class_pair} and {group_pair}")
    seed = _seed(seed)
    idx = np.flatnonzero(np.isin(fine, class_pair))
    y = (fine[idx] == class_pair[0]).astype(np.int64)
    groups = assign_overlay_groups(fine[idx], [class_pair[0]], epsilon, seed)
    pools = [np.flatnonzero(fine == group_pair[0]), np.flatnonzero(fine == group_pair[1])]
    draw = draw_group_images(groups, (pools[0].size, pools[1].size), seed + 1)
    group_idx = np.where(groups == 0, pools[0][np.minimum(draw, pools[0].size - 1)],
                         pools[1][np.minimum(draw, pools[1].size - 1)])
    mixed = overlay(x[torch.as_tensor(idx)], x[torch.as_tensor(group_idx)], eta)
    ref = x if normalize_with is None else _reference(normalize_with, x)
    xs, black = _standardize(mixed, ref)
    return Task(xs, torch.as_tensor(y), torch.as_tensor(groups), black)


def swap_roles(task: Task) -> Task:
    """The same images with class and group exchanged (RQ5's control experiment)."""
    if not isinstance(task, Task):
        raise ValueError(f"task: expected a Task (e.g. from make_inversion_task), got {type(task).__name__}")
    return Task(task.x, task.group.clone(), task.y.clone(), task.black, task.pad)


# --------------------------------------------------------------------------- summaries
def mean_ci(values: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and a Student-t confidence interval ``(mean, low, high)`` over repeated runs."""
    if values is None:
        raise ValueError("values: got None; pass the metric of every run")
    try:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"values: expected numbers (one per run), got {values!r}"[:200]) from None
    if v.size == 0:
        raise ValueError("values: is empty; pass the metric of at least one run")
    if np.isinf(v).any():
        raise ValueError("values: contains inf; pass finite values (NaN marks a missing run and is skipped)")
    _unit_number(confidence, "confidence", 0.0, 1.0, "(0, 1), e.g. 0.95")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence: must lie in (0, 1), e.g. 0.95, got {confidence}")
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (float("nan"),) * 3
    m = float(v.mean())
    if v.size == 1:
        return m, m, m
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def summarize(frame: pd.DataFrame, by: Any, value: str, confidence: float = 0.95) -> pd.DataFrame:
    """Per group of ``by``: ``mean``, ``low``, ``high`` (confidence interval) and ``n`` of ``value``."""
    _check_frame(frame, "frame")
    _check_columns(frame, by=by, value=value)
    rows = []
    for key, d in frame.groupby(by, sort=True):
        m, lo, hi = mean_ci(d[value], confidence)
        keys = key if isinstance(key, tuple) else (key,)
        names = by if isinstance(by, (list, tuple)) else [by]
        rows.append({**dict(zip(names, keys)), "mean": m, "low": lo, "high": hi, "n": int(d[value].notna().sum())})
    return pd.DataFrame(rows)


def paired_difference(frame: pd.DataFrame, value: str, *, column: str, a: Any, b: Any,
                      pairs: Sequence[str] = ("eps", "seed"), confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval ``(mean, low, high)`` of ``value`` at ``column == b`` minus at ``column == a``.

    The difference is taken within each pair of runs that share ``pairs`` (by default the dataset
    bias and the class assignment, which every sweep of this module repeats for each setting), so
    the interval is a paired one: the class split's own difficulty cancels. Pairs that lack one
    side are dropped.

    Examples
    --------
    >>> f = pd.DataFrame({"width": [2, 16, 2, 16], "seed": [0, 0, 1, 1], "acc": [0.5, 0.6, 0.7, 1.0]})
    >>> paired_difference(f, "acc", column="width", a=2, b=16, pairs=["seed"])[0]  # (0.1 + 0.3) / 2
    0.2
    """
    _check_frame(frame, "frame")
    _check_columns(frame, value=value, column=column, pairs=list(pairs))
    sides = {}
    for name, level in (("a", a), ("b", b)):
        rows = frame[frame[column] == level]
        if rows.empty:
            present = sorted(frame[column].unique().tolist())
            raise ValueError(f"{name}: no rows with {column} == {level!r}; present: {present}")
        sides[name] = rows.groupby(list(pairs))[value].mean()
    diff = (sides["b"] - sides["a"]).dropna()
    if diff.empty:
        raise ValueError(f"pairs: no {list(pairs)} combination has runs at both {column} == {a!r} and {b!r}")
    return mean_ci(diff.to_numpy(), confidence)


def _check_frame(frame: Any, name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name}: expected a pandas DataFrame (e.g. from fairlib.sweep.run), "
                         f"got {type(frame).__name__}")


def _check_columns(frame: pd.DataFrame, **columns: Any) -> None:
    """Each argument (a column name or a list of them) must name columns of ``frame``."""
    for name, cols in columns.items():
        for col in cols if isinstance(cols, (list, tuple)) else [cols]:
            if col not in frame.columns:
                raise ValueError(f"{name}: no column {col!r} in frame; columns: {list(frame.columns)}")


def _dataset(name: Any, argument: str) -> str:
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key not in TASK_DATASETS:
        raise ValueError(f"{argument}: unknown dataset {name!r}; choose one of {', '.join(TASK_DATASETS)}")
    return key


# --------------------------------------------------------------------------- data
def load_split(name: str, split: str, *, root: str | Path | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Images ``(N, C, H, W)`` uint8 and original class labels of one split, for the tasks above.

    ``name`` is ``digits`` (the quick profile: scikit-learn's digits, the course's one 75/25
    split), ``fashionmnist``, ``cifar10`` or ``cifar100`` (fine labels); ``split`` is ``train``
    or ``test``. Everything goes through :func:`fairlib.data.load_dataset`, so the data are read
    from where ``python -m data_scripts.fetch NAME`` writes them (``<data root>/<name>/``), and a
    missing dataset raises :class:`fairlib.data.DatasetNotFoundError` with that command.
    """
    from fairlib.data import image_tensor, load_dataset

    key = _dataset(name, "name")
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    dataset = load_dataset(key, split, root=root)
    labels = dataset.attributes["label"].cat.codes.to_numpy().astype(np.int64)
    return image_tensor(dataset), labels


# --------------------------------------------------------------------------- experiments
#: The values every grid below is built from, per profile (the paper's in ``full``).
#: ``models`` holds each dataset's network (:func:`fairlib.models.build_model` name and options;
#: ``depth`` is ``None`` for the ResNet-18-style model, which has none; an entry there overrides the
#: schedule's; Fashion-MNIST's crops are unpadded, :data:`AUGMENT_PAD`); ``train`` and
#: ``overlay_train`` the schedule (:func:`fairlib.training.train_and_evaluate`); ``seeds`` the
#: number of random class assignments (``rq2_seeds`` for the capacity sweeps, ``rq5_seeds`` for RQ5 when
#: given); ``eps`` RQ1's dataset biases (``rq1_eps`` per dataset where they differ), ``sweep_eps``
#: those of RQ2, RQ3 and RQ6 (``rq6_eps`` for RQ6 where given), ``rq5_eps`` the bias of RQ5;
#: ``eval_every`` how often RQ5 evaluates during training.
_SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {
        # scikit-learn's 8×8 digits (1,797 images, fixed stratified 75/25 split), tiny ResNets
        "rq1_data": ["digits"], "main_data": "digits", "overlay_data": "digits",
        "models": {"digits": {"arch": "cifar_resnet", "depth": 8, "width": 4, "in_channels": 1}},
        "train": {"epochs": 12, "batch_size": 256, "lr": 0.1, "weight_decay": 1e-4, "augment": False},
        "overlay_train": {"epochs": 30, "batch_size": 128, "lr": 0.1, "weight_decay": 1e-4, "augment": False},
        "eval_every": 1,
        "seeds": 5, "rq2_seeds": 3,
        "eps": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], "sweep_eps": [0.2, 0.4], "rq5_eps": 0.3,
        "depths": [8, 14, 20], "widths": [2, 4, 8, 16], "weight_decays": [1e-5, 1e-4, 1e-3, 1e-2],
        "fractions": [0.25, 0.5, 1.0], "etas": [0.0, 0.25, 0.5, 0.75, 1.0],
    },
    "paper": {
        # the paper's complete grids, with the values of the authors' config generators
        # (facebookresearch/cv_bias_amplification, configs/*/scripts/generate_experiment_configs.py)
        # where the paper gives ranges: Fashion-MNIST (ResNet-18-style) and CIFAR-100 (ResNet-110),
        # CIFAR-10 overlay, 500 epochs, 20 seeds (thousands of GPU-hours: run as a sweep)
        "rq1_data": ["fashionmnist", "cifar100"], "main_data": "cifar100", "overlay_data": "cifar10",
        "models": {"fashionmnist": {"arch": "resnet18", "depth": None, "width": 64, "in_channels": 1},
                   "cifar100": {"arch": "cifar_resnet", "depth": 110, "width": 16, "in_channels": 3},
                   "cifar10": {"arch": "cifar_resnet", "depth": 110, "width": 16, "in_channels": 3}},
        "train": {"epochs": 500, "batch_size": 128, "lr": 0.1, "weight_decay": 1e-4, "augment": True},
        "overlay_train": {"epochs": 500, "batch_size": 128, "lr": 0.1, "weight_decay": 1e-4, "augment": True},
        # RQ5: the paper evaluates after every epoch and averages 50 models (its Figs. 8-9)
        "eval_every": 1, "rq5_seeds": 50,
        "seeds": 20, "rq2_seeds": 20,
        # RQ1: ε in steps of 0.05 on Fashion-MNIST, 0.1 on CIFAR-100 (the authors' two generators);
        # RQ2 and RQ3 over 0-0.5 (the paper plots 0.2-0.4 and notes no amplification at 0); RQ6 at
        # the paper's "three different levels of bias"
        "eps": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5],
        "rq1_eps": {"cifar100": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]},
        "sweep_eps": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], "rq6_eps": [0.2, 0.3, 0.4],
        "rq5_eps": 0.3,
        "depths": [8, 14, 20, 26, 32, 38, 44, 50, 56, 74, 92, 110], "widths": [4, 8, 16, 32, 64],
        # the authors' grid, logspace(-5, -2, 8) (it holds the paper's reported optima 1.93e-4 and
        # 5.18e-4), plus the base 1e-4 that the depth and width sweeps use
        "weight_decays": sorted([float(v) for v in np.logspace(-5, -2, 8)] + [1e-4]),
        "fractions": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        "etas": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    },
    "full": {
        # one Colab session (<= 3 T4-hours, `python -m fairlib.sweep plan 02_bias_amplification`):
        # the paper's datasets; ResNet-20 instead of ResNet-110 and a narrower ResNet-18 for
        # Fashion-MNIST, 30 epochs instead of 500, 3 seeds instead of 20, fewer grid points
        "rq1_data": ["fashionmnist", "cifar100"], "main_data": "cifar100", "overlay_data": "cifar10",
        "models": {"fashionmnist": {"arch": "resnet18", "depth": None, "width": 16, "in_channels": 1},
                   "cifar100": {"arch": "cifar_resnet", "depth": 20, "width": 16, "in_channels": 3},
                   "cifar10": {"arch": "cifar_resnet", "depth": 20, "width": 16, "in_channels": 3}},
        "train": {"epochs": 30, "batch_size": 128, "lr": 0.1, "weight_decay": 1e-4, "augment": True},
        "overlay_train": {"epochs": 30, "batch_size": 128, "lr": 0.1, "weight_decay": 1e-4, "augment": True},
        "eval_every": 5,
        "seeds": 3, "rq2_seeds": 2,
        "eps": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], "sweep_eps": [0.3],
        "rq5_eps": 0.3,
        "depths": [8, 20, 56], "widths": [4, 16, 32],
        "weight_decays": [1e-5, 1e-4, 1e-3],
        "fractions": [0.25, 0.5, 1.0], "etas": [0.0, 0.5, 1.0],
    },
    # FAIRLIB_SCALE=rehearsal: the full code on the miniature mirrors, a run in seconds on a CPU
    "rehearsal": {
        # two seeds: the chapter's intervals need two; eps 0 and 0.5, the ends the chapter reads,
        # and one between (RQ4's trend test below 0.5 needs at least three runs)
        "eps": [0.0, 0.25, 0.5], "sweep_eps": [0.3], "seeds": 2, "rq2_seeds": 2, "rq5_seeds": 2, "eval_every": 1,
        "train": {"epochs": 1}, "overlay_train": {"epochs": 1},
        "depths": [8, 20], "widths": [4, 16], "weight_decays": [1e-4, 1e-3],
        "fractions": [0.5, 1.0], "etas": [0.0, 1.0],
    },
}

#: The capacity knobs of RQ2, in the order the chapter draws them.
CAPACITY_KNOBS = ("depth", "width", "weight_decay")


def settings(profile: str | None = None) -> dict[str, Any]:
    """A copy of the values the grids of ``profile`` are built from (see :data:`_SETTINGS`).

    Parameters
    ----------
    profile
        ``"quick"``, ``"full"`` or ``"paper"``; ``None`` reads ``FAIRLIB_PROFILE``. Under
        ``FAIRLIB_SCALE=rehearsal`` the real-data profiles take the ``"rehearsal"`` sizes
        (:func:`fairlib.config.select`).
    """
    from copy import deepcopy

    from fairlib.config import select

    return deepcopy(select(_SETTINGS, profile))


@functools.lru_cache(maxsize=4)
def _splits(name: str) -> tuple[tuple[torch.Tensor, np.ndarray], tuple[torch.Tensor, np.ndarray]]:
    """``(train, test)`` of :func:`load_split`, read once per process."""
    return load_split(name, "train"), load_split(name, "test")


def inversion_tasks(dataset: str, eps: float, seed: int, fraction: float = 1.0) -> tuple[Task, Task]:
    """The training and test :class:`Task` of one inversion experiment (RQ1–RQ5).

    Parameters
    ----------
    dataset
        A name of :data:`TASK_DATASETS` (read once per process through :func:`load_split`).
    eps
        Dataset bias ε, the same for both splits (:func:`assign_inversion`).
    seed
        The class assignment (:func:`binarize_classes`); the inversions are drawn with seeds
        ``10_000 + seed`` (train) and ``20_000 + seed`` (test).
    fraction
        Share of the training set kept, as a stratified subsample (RQ3; drawn with ``seed``);
        the test set is always whole.

    Returns
    -------
    tuple of Task
        ``(train, test)``, both standardised with the statistics of the whole, non-inverted
        training images.
    """
    _dataset(dataset, "dataset")
    _check_epsilon(eps, "eps")
    _seed(seed)
    _unit_number(fraction, "fraction", 0.0, 1.0, "(0, 1]")
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction: must lie in (0, 1], got {fraction}")
    (x_tr, f_tr), (x_te, f_te) = _splits(dataset)
    positive = binarize_classes(int(f_tr.max()) + 1, seed)
    x_sub, f_sub = x_tr, f_tr
    if fraction < 1:
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(np.arange(len(f_tr)), train_size=float(fraction), stratify=f_tr,
                                   random_state=seed)
        x_sub, f_sub = x_tr[torch.as_tensor(keep)], f_tr[keep]
    train = make_inversion_task(x_sub, f_sub, positive, eps, seed=10_000 + seed, normalize_with=x_tr)
    test = make_inversion_task(x_te, f_te, positive, eps, seed=20_000 + seed, normalize_with=x_tr)
    train.pad = test.pad = AUGMENT_PAD.get(dataset, 4)
    return train, test


def overlay_tasks(dataset: str, eps: float, eta: float, seed: int) -> tuple[Task, Task]:
    """The training and test :class:`Task` of one overlay experiment (RQ6).

    Four distinct original classes are drawn with ``seed``: the first two form the binary class
    (positive, negative), the last two give the group images (*a*, *b*); see
    :func:`make_overlay_task`. Group images are drawn with seeds ``10_000 + seed`` (train) and
    ``20_000 + seed`` (test).
    """
    _dataset(dataset, "dataset")
    _check_epsilon(eps, "eps")
    _unit_number(eta, "eta", 0.0, 1.0, "[0, 1]")
    _seed(seed)
    (x_tr, f_tr), (x_te, f_te) = _splits(dataset)
    pick = np.random.default_rng(seed).permutation(int(f_tr.max()) + 1)[:4]
    classes, groups = (int(pick[0]), int(pick[1])), (int(pick[2]), int(pick[3]))
    train = make_overlay_task(x_tr, f_tr, classes, groups, eps, eta, seed=10_000 + seed, normalize_with=x_tr)
    test = make_overlay_task(x_te, f_te, classes, groups, eps, eta, seed=20_000 + seed, normalize_with=x_tr)
    train.pad = test.pad = AUGMENT_PAD.get(dataset, 4)
    return train, test


def _model_kwargs(depth: int | None, width: int, in_channels: int) -> dict[str, int]:
    kwargs = {"width": int(width), "in_channels": int(in_channels)}
    if depth is not None:
        kwargs["depth"] = int(depth)
    return kwargs


def _results(history: pd.DataFrame, eval_every: int | None) -> dict[str, Any]:
    """The last evaluated row's metrics and, with ``eval_every``, every row's as ``hist_*`` lists."""
    last = history.iloc[-1]
    metrics = [c for c in history.columns if c not in ("epoch", "lr")]
    out: dict[str, Any] = {c: float(last[c]) for c in metrics}
    out["trained_epochs"] = int(last["epoch"])
    if eval_every:
        for c in history.columns:
            values = history[c].tolist()
            out[f"hist_{c}"] = [int(v) for v in values] if c == "epoch" else [float(v) for v in values]
    return out


def run_inversion(
    *,
    dataset: str,
    arch: str,
    width: int,
    in_channels: int,
    eps: float,
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    depth: int | None = None,
    augment: bool = False,
    fraction: float = 1.0,
    swap: bool = False,
    eval_every: int | None = None,
) -> dict[str, Any]:
    """Train one model on an inversion task and score it on the test task (RQ1, RQ2, RQ3, RQ5).

    Parameters
    ----------
    dataset, eps, seed, fraction
        The task (:func:`inversion_tasks`); ``seed`` also seeds the initialisation and shuffling.
    arch, depth, width, in_channels
        The network, built by :func:`fairlib.models.build_model` (``depth=None`` for models
        without one, e.g. ``"resnet18"``).
    epochs, batch_size, lr, weight_decay, augment
        Hall et al.'s schedule (:func:`fairlib.training.train_and_evaluate`). With ``fraction``
        below 1, the model trains :func:`equal_update_epochs` epochs, so that every training-set
        size gets the same number of updates as the whole set (the paper's RQ3 rule).
    swap
        Exchange class and group (:func:`swap_roles`), RQ5's control.
    eval_every
        Also evaluate every this many epochs and return the history (RQ5); ``None``: only the end.

    Returns
    -------
    dict
        The final test metrics ``accuracy``, ``biasamp``, ``ece``, ``loss`` (last epoch's training
        loss), ``acc_c{c}_g{g}`` (accuracy in each class–group cell), ``trained_epochs`` and
        ``n_train`` (training images after ``fraction``); with
        ``eval_every``, the same columns per evaluated epoch as lists ``hist_epoch``, ``hist_lr``,
        ``hist_loss``, ``hist_accuracy`` … (see :func:`history_frame`).
    """
    from fairlib.training import fit

    _check_schedule(epochs, batch_size, eval_every)
    train, test = inversion_tasks(dataset, eps, seed, fraction)
    if swap:
        train, test = swap_roles(train), swap_roles(test)
    n_full = len(_splits(dataset)[0][1])  # the whole training split (cached)
    n_epochs = equal_update_epochs(int(epochs), n_full, len(train.y), int(batch_size)) if fraction < 1 else int(epochs)
    history = fit(arch, _model_kwargs(depth, width, in_channels), train, test, seed=seed, epochs=n_epochs,
                  batch_size=batch_size, lr=lr, weight_decay=weight_decay, augment=augment, eval_every=eval_every)
    return {**_results(history, eval_every), "n_train": len(train.y)}


def equal_update_epochs(epochs: int, n_full: int, n_subset: int, batch_size: int) -> int:
    """Epochs on a subset of ``n_subset`` examples with as many updates as ``epochs`` on all ``n_full``.

    Updates are counted as the engine makes them (:func:`fairlib.training.batch_plan`: batches of
    ``min(batch_size, n)``, a lone leftover example dropped), not as ``epochs / fraction``, which
    rounding makes unequal on small sets (the digits: 96 against 72 updates at a quarter).
    Rounded to the nearest whole epoch, at least one.
    """
    from fairlib.training import batch_plan

    epochs, n_full, n_subset = (positive_int(v, name) for v, name in
                                ((epochs, "epochs"), (n_full, "n_full"), (n_subset, "n_subset")))
    batch_size = positive_int(batch_size, "batch_size")
    full = len(batch_plan(n_full, min(batch_size, n_full)))
    sub = len(batch_plan(n_subset, min(batch_size, n_subset)))
    return max(1, int(round(epochs * full / sub)))


def run_overlay(
    *,
    dataset: str,
    arch: str,
    width: int,
    in_channels: int,
    eps: float,
    eta: float,
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    depth: int | None = None,
    augment: bool = False,
    swap: bool = False,
) -> dict[str, Any]:
    """Train one model on an overlay task (:func:`overlay_tasks`) and score it on the test task (RQ6).

    The parameters are those of :func:`run_inversion`, with ``eta`` the weight of the group image.
    ``swap=True`` trains the same architecture to predict the *group* (:func:`swap_roles`): its test
    ``accuracy`` is then how well the group can be recognised at this ``eta``, the quantity the
    paper's explanation of RQ6 turns on. Returns the final test metrics, as :func:`run_inversion`
    without ``eval_every``.
    """
    from fairlib.training import fit

    _check_schedule(epochs, batch_size, None)
    if not isinstance(swap, (bool, np.bool_)):
        raise ValueError(f"swap: expected True or False, got {swap!r}")
    train, test = overlay_tasks(dataset, eps, eta, seed)
    if swap:
        train, test = swap_roles(train), swap_roles(test)
    history = fit(arch, _model_kwargs(depth, width, in_channels), train, test, seed=seed, epochs=epochs,
                  batch_size=batch_size, lr=lr, weight_decay=weight_decay, augment=augment)
    return _results(history, None)


def _check_schedule(epochs: Any, batch_size: Any, eval_every: Any) -> None:
    positive_int(epochs, "epochs")
    positive_int(batch_size, "batch_size")
    positive_int(eval_every, "eval_every", allow_none=True)


def _inversion_config(s: Mapping[str, Any], dataset: str, eps: float, seed: int, **changes: Any) -> dict[str, Any]:
    """One complete configuration of :func:`run_inversion`: the dataset's model and schedule, then ``changes``."""
    # the dataset's own entries (e.g. no augmentation for Fashion-MNIST) override the shared schedule
    config = {"dataset": dataset, **s["train"], **s["models"][dataset], "eps": eps, "seed": seed,
              "fraction": 1.0, "swap": False, "eval_every": None}
    unknown = set(changes) - set(config)
    if unknown:
        raise ValueError(f"changes: unknown keys {sorted(unknown)}")
    config.update(changes)
    return config


def rq1_grid(profile: str) -> list[dict]:
    """RQ1: every dataset of ``rq1_data`` × every ε of ``eps`` (``rq1_eps[dataset]`` where given) × ``seeds``
    class assignments."""
    s = settings(profile)
    return [_inversion_config(s, name, eps, seed)
            for name in s["rq1_data"] for eps in s.get("rq1_eps", {}).get(name, s["eps"])
            for seed in range(s["seeds"])]


def rq2_grid(profile: str) -> list[dict]:
    """RQ2: one capacity knob at a time (:data:`CAPACITY_KNOBS`) around the main model, × ``sweep_eps`` × ``rq2_seeds``.

    The base configuration, shared by the three sweeps, appears once; :func:`by_knob` gives
    each sweep its rows back.
    """
    s = settings(profile)
    main = s["main_data"]
    values = {"depth": s["depths"], "width": s["widths"], "weight_decay": s["weight_decays"]}
    configs: dict[str, dict] = {}
    for knob in CAPACITY_KNOBS:
        for value in values[knob]:
            for eps in s["sweep_eps"]:
                for seed in range(s["rq2_seeds"]):
                    config = _inversion_config(s, main, eps, seed, **{knob: value})
                    configs.setdefault(sweep.config_key(config), config)
    return list(configs.values())


def rq3_grid(profile: str) -> list[dict]:
    """RQ3: stratified training subsets (``fractions``) × ε in ``sweep_eps`` × ``seeds``, each trained for
    as many updates as the whole set (:func:`equal_update_epochs`)."""
    s = settings(profile)
    return [_inversion_config(s, s["main_data"], eps, seed, fraction=fraction)
            for eps in s["sweep_eps"] for fraction in s["fractions"] for seed in range(s["seeds"])]


def rq5_grid(profile: str) -> list[dict]:
    """RQ5: at ε = ``rq5_eps``, class and group as built and swapped, × ``rq5_seeds`` (default
    ``seeds``); a history every ``eval_every`` epochs."""
    s = settings(profile)
    return [_inversion_config(s, s["main_data"], s["rq5_eps"], seed, swap=swap, eval_every=s["eval_every"])
            for swap in (False, True) for seed in range(s.get("rq5_seeds", s["seeds"]))]


def rq6_grid(profile: str) -> list[dict]:
    """RQ6: overlay tasks, ``rq6_eps`` (default ``sweep_eps``) × ``etas`` × ``seeds`` (class assignments and
    image pairs)."""
    s = settings(profile)
    name = s["overlay_data"]
    model = s["models"][name]
    return [{"dataset": name, **model, **s["overlay_train"], "eps": eps, "eta": eta, "seed": seed}
            for eps in s.get("rq6_eps", s["sweep_eps"]) for eta in s["etas"] for seed in range(s["seeds"])]


def rq6_group_grid(profile: str) -> list[dict]:
    """RQ6's group recognisability: the overlay models trained to predict the group, at ε = 0 (the group
    then says nothing about the class), ``etas`` × ``seeds``."""
    s = settings(profile)
    name = s["overlay_data"]
    return [{"dataset": name, **s["models"][name], **s["overlay_train"], "eps": 0.0, "eta": eta, "seed": seed,
             "swap": True} for eta in s["etas"] for seed in range(s["seeds"])]


# --------------------------------------------------------------------------- analysis of sweep frames
def by_knob(frame: pd.DataFrame, knobs: Sequence[str] = CAPACITY_KNOBS) -> pd.DataFrame:
    """RQ2's rows, one block per knob: the rows where only that knob may differ from the base.

    The base value of each knob is its most frequent value (in a one-knob-at-a-time grid such as
    :func:`rq2_grid`'s, the base configuration's). Base rows appear once in every block.

    Returns
    -------
    pandas.DataFrame
        ``frame``'s rows with two more columns, ``knob`` (its name) and ``value`` (float).

    Raises
    ------
    ValueError
        If a row differs from the base in more than one knob.
    """
    _check_frame(frame, "frame")
    if isinstance(knobs, (str, bytes)):
        raise ValueError(f"knobs: expected a list of column names, got the string {knobs!r}; write [{knobs!r}]")
    knobs = list(knobs)
    _check_columns(frame, knobs=knobs)
    if frame.empty:
        raise ValueError("frame: is empty; run the sweep first")
    base = {k: frame[k].mode().iloc[0] for k in knobs}
    differs = pd.DataFrame({k: frame[k] != base[k] for k in knobs}, index=frame.index)
    if (differs.sum(axis=1) > 1).any():
        raise ValueError(f"frame: some rows change more than one of {knobs} from the base {base}")
    parts = []
    for k in knobs:
        rows = frame[~differs.drop(columns=k).any(axis=1)]
        parts.append(rows.assign(knob=k, value=rows[k].astype(float)))
    return pd.concat(parts, ignore_index=True)


def history_frame(frame: pd.DataFrame, prefix: str = "hist_") -> pd.DataFrame:
    """One row per (run, evaluated epoch) from the ``hist_*`` lists that :func:`run_inversion` returns.

    The ``hist_`` columns lose their prefix and replace the final metrics of the same name; the
    configuration columns are repeated on every epoch of their run. Runs without a history are
    left out.
    """
    _check_frame(frame, "frame")
    cols = [c for c in frame.columns if c.startswith(prefix)]
    if not cols:
        raise ValueError(f"frame: no {prefix}* columns; run with eval_every to record a history")
    names = [c[len(prefix):] for c in cols]
    rows = frame[frame[cols[0]].map(lambda v: isinstance(v, list))]
    keep = [c for c in frame.columns if c not in cols and c not in names and c != "duration_s"]
    long = rows[keep + cols].explode(cols, ignore_index=True).rename(columns=dict(zip(cols, names)))
    return long.astype({n: int if n == "epoch" else float for n in names})


# --------------------------------------------------------------------------- figures
def band(ax: Any, frame: pd.DataFrame, x: str, value: str, label: str | None = None, color: Any = None,
         marker: str = "o") -> pd.DataFrame:
    """Draw the mean of ``value`` against ``x`` with its 95% confidence interval as a shaded band.

    The mean and interval are over the rows sharing an ``x`` (the class assignments); returns
    :func:`summarize`'s table.
    """
    if not hasattr(ax, "fill_between"):
        raise ValueError(f"ax: expected matplotlib axes (e.g. from plt.subplots()), got {type(ax).__name__}")
    _check_frame(frame, "frame")
    _check_columns(frame, x=x, value=value)
    s = summarize(frame, x, value)
    ax.plot(s[x], s["mean"], marker=marker, ms=4, label=label, color=color)
    ax.fill_between(s[x], s["low"], s["high"], alpha=0.2, color=color)
    return s


# --------------------------------------------------------------------------- compute plans (fairlib.plan)
#: Examples of each split (:func:`load_split`; digits: the course's fixed 75/25 split of 1,797).
_SPLIT_SIZES = {"digits": (1347, 450), "fashionmnist": (60_000, 10_000), "cifar10": (50_000, 10_000),
                "cifar100": (50_000, 10_000)}
#: One image of each dataset, (C, H, W), and its number of original classes.
_IMAGE_SHAPES = {"digits": (1, 8, 8), "fashionmnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32)}
_N_CLASSES = {"digits": 10, "fashionmnist": 10, "cifar10": 10, "cifar100": 100}


def _evaluations(epochs: int, every: int | None) -> int:
    """How often :class:`fairlib.training._Evaluate` scores the test task: every ``every`` epochs and after the last."""
    if not every:
        return 1
    return epochs // every + (0 if epochs % every == 0 else 1)


def _training_cost(config: Mapping[str, Any], n_train: int, n_test: int, epochs: int, build_peak: float,
                   split: str) -> list:
    """The stages of one :func:`fairlib.training.fit` run: build the tasks, train, evaluate.

    ``train_and_evaluate`` trains ``epochs`` epochs of :func:`fairlib.training.batch_plan` batches of
    ``min(batch_size, n)`` (SGD with Nesterov momentum: one state per parameter) and evaluates the
    whole test task at batch 1024 every ``eval_every`` epochs and after the last. The tasks are
    float32 tensors in RAM (no input pipeline to wait for); :func:`_splits` keeps the ``uint8``
    splits of every dataset read (``lru_cache``), which stay resident. The metrics of an evaluation
    (accuracy, BiasAmp, ECE) are O(test examples) NumPy work: negligible.
    """
    from fairlib.models import build_model
    from fairlib.plan import Stage, amp_default, builder
    from fairlib.training import batch_plan, predict, train

    dataset = _dataset(config["dataset"], "dataset")
    shape = _IMAGE_SHAPES[dataset]
    pixels = math.prod(shape)
    cached = sum(pixels * sum(_SPLIT_SIZES[d]) for d in (FULL_DATASETS if dataset in FULL_DATASETS else (dataset,)))
    resident = cached + 4 * pixels * (n_train + n_test)  # uint8 splits + the float32 train and test tasks
    batch = min(int(config["batch_size"]), n_train)
    model = builder(build_model, config["arch"], **_model_kwargs(config.get("depth"), config["width"],
                                                                 config["in_channels"]))
    common = {"model": model, "input_shape": shape, "host_bytes": resident,
              "data": () if dataset == "digits" else (dataset,)}
    # mixed precision as the engine runs it on a GPU: train()'s and predict()'s defaults
    return [Stage(f"build {split} tasks", host_bytes=cached + build_peak),
            Stage("train", train_samples=epochs * sum(batch_plan(n_train, batch)), batch_size=batch,
                  optimizer_state=1, amp=bool(config.get("amp", amp_default(train))), **common),
            Stage("evaluate", eval_samples=_evaluations(epochs, config.get("eval_every")) * n_test,
                  batch_size=batch, eval_batch_size=1024, amp=amp_default(predict), **common)]


def _inversion_cost(config: Mapping[str, Any]) -> list:
    """The work of one :func:`run_inversion` configuration.

    The training subset is ``floor(fraction * N)`` images (scikit-learn's stratified split),
    trained :func:`equal_update_epochs` epochs (as many updates as the whole set). Building the tasks
    (:func:`make_inversion_task`) holds, at its peak, the float32 copy of the whole training split
    (the normalisation statistics), the subset's float32 images, their inversion, the selection and
    two standardisation temporaries, plus the ``uint8`` subset: ``4 (N + 4 n) + n`` bytes per pixel
    (the test task is built afterwards, with the train task alive, and peaks lower).
    """
    dataset = _dataset(config["dataset"], "dataset")
    n_train_all, n_test = _SPLIT_SIZES[dataset]
    fraction = float(config.get("fraction", 1.0))
    n_train = n_train_all if fraction >= 1 else int(math.floor(fraction * n_train_all))
    epochs = (equal_update_epochs(int(config["epochs"]), n_train_all, n_train, int(config["batch_size"]))
              if fraction < 1 else int(config["epochs"]))
    pixels = math.prod(_IMAGE_SHAPES[dataset])
    peak = pixels * max(4 * (n_train_all + 4 * n_train) + n_train,
                        4 * (n_train + n_train_all + 4 * n_test))
    return _training_cost(config, n_train, n_test, epochs, peak, "inversion")


def _overlay_cost(config: Mapping[str, Any]) -> list:
    """The work of one :func:`run_overlay` configuration: the images of two classes, overlaid.

    Each split keeps the ``2 / classes`` share of its images that belong to the class pair. Building
    (:func:`make_overlay_task`) holds the split as float32 twice (the images and the normalisation
    reference) and about five float32 copies of the pair's images (class, group and the mixing
    temporaries).
    """
    dataset = _dataset(config["dataset"], "dataset")
    n_train_all, n_test_all = _SPLIT_SIZES[dataset]
    share = 2 / _N_CLASSES[dataset]
    n_train, n_test = int(n_train_all * share), int(n_test_all * share)
    pixels = math.prod(_IMAGE_SHAPES[dataset])
    peak = 4 * pixels * (2 * n_train_all + 5 * n_train)
    return _training_cost(config, n_train, n_test, int(config["epochs"]), peak, "overlay")


_CHAPTER = "02_bias_amplification"
sweep.register(_CHAPTER, "rq1", run_inversion, rq1_grid, "RQ1: BiasAmp, accuracy and ECE against dataset bias ε",
               cost=_inversion_cost)
sweep.register(_CHAPTER, "rq2", run_inversion, rq2_grid, "RQ2: model capacity (depth, width, weight decay)",
               cost=_inversion_cost)
sweep.register(_CHAPTER, "rq3", run_inversion, rq3_grid, "RQ3: training-set size at equal numbers of updates",
               cost=_inversion_cost)
sweep.register(_CHAPTER, "rq5", run_inversion, rq5_grid, "RQ5: metrics during training, class and group swapped",
               cost=_inversion_cost)
sweep.register(_CHAPTER, "rq6", run_overlay, rq6_grid, "RQ6: group visibility η of the overlay task",
               cost=_overlay_cost)
sweep.register(_CHAPTER, "rq6_groups", run_overlay, rq6_group_grid,
               "RQ6: how well the group itself is recognised at each η (same model, group as the label)",
               cost=_overlay_cost)
