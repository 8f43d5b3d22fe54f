r"""Intersectional linear classifier probes (Krug & Stober 2025, Sec. 4.1 and 5.3).

A probe asks whether the intersectional groups :math:`G \in \mathbf G` are *linearly*
separable from a layer's activations :math:`A_l(x)`. As in the paper:

- up to 128 examples per group, split 90/10 per group into training and validation
  (:func:`probe_split`);
- feature maps reduced to at most 8 x 8 (:func:`fairlib.activations.downsample`);
- the probe is flatten -> dropout(0.25) -> linear to :math:`|\mathbf G|` outputs, trained with
  cross-entropy plus :math:`10^{-5}\lVert W\rVert_1 + 10^{-4}\lVert W\rVert_2^2` (Keras's
  L1L2 kernel regulariser), Adam with default settings, 50 epochs (:func:`train_probe`);
- summaries: final accuracies per layer (:func:`probe_layers`) and the most frequent
  (true group -> predicted group) confusions (:func:`frequent_errors`).

Running a whole network: :func:`probe_network` captures the activations of a model's layers
(optionally a few layers per pass, into float16 memory maps that are deleted after probing, so
that a FairFace-scale run fits a small disk) and probes every layer under every reduction.

Also here: :class:`SmallCNN` and :func:`train_small_cnn`, the quick profile's stand-in for an
ImageNet model, :func:`train_unrelated_cnn` (a SmallCNN trained on a task that is *not* the
group variables: the accessories and expression of SynthFaces' multi-attribute faces) and
:func:`build_network` (a trained or randomly initialised network by name, for either profile).
"""

from __future__ import annotations

import inspect
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fairlib._validation import as_labels, integer, number, positive_int, show, to_numpy
from fairlib.activations import PAPER_LAYERS
from fairlib.config import get_device
from fairlib.data.synthfaces import MULTI_ATTRIBUTES
from fairlib.models import TORCHVISION_SIZES, SmallCNN, build_model
from fairlib.training import Callback, TrainState, gather_rows, predict, supervised_step, train
from fairlib.training import cpu_threads as limit_cpu_threads

__all__ = [
    "probe_split",
    "LinearProbe",
    "ProbeResult",
    "train_probe",
    "probe_layers",
    "frequent_errors",
    "probe_network",
    "train_small_cnn",
    "UnrelatedTask",
    "UNRELATED_TASK_ATTRIBUTES",
    "train_unrelated_cnn",
    "NATIVE_SIZES",
    "Network",
    "build_network",
    "SETTINGS",
    "selection_halves",
    "ProbeSample",
    "probe_sample",
    "run_probing",
    "probing_grid",
    "probing_summary",
    "probing_curves",
    "network_label",
    "paper_error_table",
    "PAPER_ERROR_ROWS",
]


def probe_split(groups: Sequence[int] | np.ndarray, per_group: int = 128, val_fraction: float = 0.1,
                seed: int = 0, min_per_group: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Balanced probe data: up to ``per_group`` random examples of each group, split per group.

    Parameters
    ----------
    groups
        ``(N,)`` integer group id per example (``-1`` = unassigned, ignored).
    per_group
        Cap per group (paper: 128).
    val_fraction
        Share of each group's sample for validation (paper: 0.1), at least one example.
    min_per_group
        A non-empty group with fewer examples raises ValueError naming it.

    Returns
    -------
    train_idx, val_idx : numpy.ndarray
        Sorted positional indices.
    """
    g = to_numpy(groups, "groups")
    if g.ndim != 1:
        raise ValueError(f"groups: expected a 1-D array of group ids, got shape {g.shape}")
    g = as_labels(g, "groups")
    if g.dtype.kind not in "iu":
        raise ValueError(f"groups: expected integer group ids (-1 = unassigned), got dtype {g.dtype}; "
                         "encode them first (fairlib.data.intersectional_groups)")
    if not (g >= 0).any():
        raise ValueError("groups: no example is assigned to a group (all are -1 or the array is empty)")
    per_group = integer(per_group, "per_group", minimum=2, meaning="(one validation and one training example)")
    min_per_group = integer(min_per_group, "min_per_group", minimum=2)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: expected a value in (0, 1), got {val_fraction!r}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for gid in np.unique(g[g >= 0]):
        members = np.flatnonzero(g == gid)
        if members.size < min_per_group:
            raise ValueError(f"groups: group {gid} has {members.size} examples, fewer than "
                             f"min_per_group={min_per_group}; merge categories or drop it")
        members = rng.permutation(members)[:per_group]
        n_val = max(1, int(round(val_fraction * members.size)))
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


class LinearProbe(nn.Module):
    """Flatten -> (standardise) -> dropout(``p``) -> linear layer to ``n_groups`` logits (the paper's probe).

    ``shift`` and ``scale`` (buffers, ``(n_features,)``; identity by default) standardise each
    feature as ``(x - shift) / scale`` before the dropout: :func:`train_probe` with
    ``standardize=True`` sets them to the training split's mean and standard deviation.
    """

    def __init__(self, n_features: int, n_groups: int, dropout: float = 0.25):
        super().__init__()
        n_features = positive_int(n_features, "n_features")
        n_groups = integer(n_groups, "n_groups", minimum=2)
        _fraction(dropout, "dropout")
        self.drop = nn.Dropout(dropout)
        self.linear = nn.Linear(n_features, n_groups)
        self.register_buffer("shift", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.linear.in_features
        if x.dim() < 2 or x[0].numel() != n:
            raise ValueError(f"x: expected (N, ...) activations with {n} features per example, got shape "
                             f"{tuple(x.shape)}")
        z = (torch.flatten(x, 1) - self.shift) / self.scale
        return self.linear(self.drop(z))

    def penalty(self, l1: float, l2: float) -> torch.Tensor:
        """Keras L1L2 kernel regulariser: ``l1 * sum|W| + l2 * sum W^2`` (bias not penalised)."""
        _nonnegative(l1, "l1")
        _nonnegative(l2, "l2")
        w = self.linear.weight
        return l1 * w.abs().sum() + l2 * (w * w).sum()


def _nonnegative(value: Any, name: str) -> None:
    number(value, name, low=0, expected="a finite non-negative number")


def _fraction(value: Any, name: str) -> None:
    number(value, name, low=0, high=1, high_open=True, expected="a probability in [0, 1)")


def _indices(idx: Any, name: str, n: int) -> np.ndarray:
    arr = to_numpy(idx, name)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"{name}: expected a 1-D array of integer positions (see probe_split), got "
                         f"dtype {arr.dtype} and shape {arr.shape}")
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise ValueError(f"{name}: positions must lie in 0..{n - 1}, got {show(arr.min())}..{show(arr.max())}")
    return arr


@dataclass
class ProbeResult:
    """A trained probe and its learning curves (accuracy per epoch, after the epoch).

    ``probe`` is ``None`` when the caller chose not to keep the weights (``keep_probes=False``
    in :func:`probe_layers`); ``train_pred`` / ``val_pred`` follow the order of the sorted
    ``train_idx`` / ``val_idx``.
    """

    probe: LinearProbe | None
    history: pd.DataFrame
    n_groups: int
    train_pred: np.ndarray = field(repr=False)
    val_pred: np.ndarray = field(repr=False)

    @property
    def train_accuracy(self) -> float:
        return float(self.history["train_accuracy"].iloc[-1])

    @property
    def val_accuracy(self) -> float:
        return float(self.history["val_accuracy"].iloc[-1])

    @property
    def chance(self) -> float:
        return 1.0 / self.n_groups


def _rows(x, idx: np.ndarray) -> torch.Tensor:
    """Rows ``idx`` of the activations, flattened to float32 ``(len(idx), features)``."""
    return gather_rows(x, idx).float().reshape(len(idx), -1)


class _RowData(torch.utils.data.Dataset):
    """Rows ``idx`` of an activation array (memory map, array) with their labels, read a batch at a time."""

    def __init__(self, x: Any, idx: np.ndarray, y: np.ndarray):
        self.x, self.idx, self.y = x, idx, torch.from_numpy(y[idx])

    def __len__(self) -> int:
        return len(self.idx)

    def __getitems__(self, batch: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        b = np.asarray(batch, dtype=np.int64)
        return _rows(self.x, self.idx[b]), self.y[torch.from_numpy(b)]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows, labels = self.__getitems__([i])
        return rows[0], labels[0]


class _ProbeAccuracy(Callback):
    """Training and validation accuracy of the probe (eval mode) after every epoch."""

    def __init__(self, train_data: Any, val_data: Any, y_train: np.ndarray, y_val: np.ndarray):
        self.train_data, self.val_data, self.y_train, self.y_val = train_data, val_data, y_train, y_val
        self.train_pred = self.val_pred = None

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        self.train_pred = predict(state.model, self.train_data, output="labels", batch_size=4096).numpy()
        self.val_pred = predict(state.model, self.val_data, output="labels", batch_size=1024).numpy()
        row["train_accuracy"] = float((self.train_pred == self.y_train).mean())
        row["val_accuracy"] = float((self.val_pred == self.y_val).mean())


def train_probe(x: Any, y: Sequence[int] | np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
                *, n_groups: int | None = None, epochs: int = 50, batch_size: int = 32,
                dropout: float = 0.25, l1: float = 1e-5, l2: float = 1e-4, lr: float = 1e-3,
                seed: int = 0, device: Any = None, cpu_threads: int | None = 1,
                standardize: bool = False) -> ProbeResult:
    """Train the paper's linear probe on ``x[train_idx]`` and track accuracies per epoch.

    Parameters
    ----------
    x
        ``(N, ...)`` activations: numpy array, memory map (read in batches) or tensor.
    y
        ``(N,)`` group ids in ``0 .. n_groups - 1``.
    epochs, batch_size, lr
        Paper: 50 epochs; Adam defaults (lr 1e-3); Keras's default batch size 32.
    l1, l2
        Penalties on the weights (paper: 1e-5 and 1e-4).
    cpu_threads
        Intra-op threads while training on CPU (restored afterwards). A probe's steps are
        small matrix products for which thread synchronisation costs more than it saves: one
        thread was 2-10x cheaper in CPU time than two on a 2-core machine. ``None`` keeps
        torch's setting.
    standardize
        Standardise every feature with the mean and standard deviation of the *training* split
        (a constant feature is only centred), inside the probe (:class:`LinearProbe`), so that
        validation examples are scaled with training statistics. Not the paper's recipe: it
        takes the activations' scale out of the comparison, which matters when one network's
        activations barely vary between images (a randomly initialised one) and the raw probe
        cannot fit in the paper's 50 epochs.

    Returns
    -------
    ProbeResult
        ``history`` columns ``epoch``, ``loss``, ``train_accuracy``, ``val_accuracy``
        (accuracies of the probe in eval mode, i.e. without dropout).
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    elif not hasattr(x, "shape"):
        x = to_numpy(x, "x")
    y = as_labels(y, "y")
    if y.dtype.kind not in "iu":
        raise ValueError(f"y: expected integer group ids, got dtype {y.dtype}; encode the groups first")
    y = y.astype(np.int64)
    if len(y) != len(x):
        raise ValueError(f"y: has {len(y)} labels but x has {len(x)} examples")
    train_idx, val_idx = _indices(train_idx, "train_idx", len(y)), _indices(val_idx, "val_idx", len(y))
    if train_idx.size == 0 or val_idx.size == 0:
        raise ValueError("train_idx/val_idx: both splits need examples (see probe_split)")
    if np.intersect1d(train_idx % len(y), val_idx % len(y)).size:
        raise ValueError("val_idx: shares examples with train_idx; the validation accuracy would not be held out "
                         "(see probe_split)")
    n_groups = integer(n_groups, "n_groups", minimum=2, allow_none=True)
    k = n_groups if n_groups is not None else int(y.max()) + 1
    if y[train_idx].min() < 0 or y[train_idx].max() >= k:
        raise ValueError(f"y: group ids must lie in 0..{k - 1}")
    if y[val_idx].min() < 0 or y[val_idx].max() >= k:
        raise ValueError(f"y: group ids at val_idx must lie in 0..{k - 1}")
    _fraction(dropout, "dropout")
    _nonnegative(l1, "l1")
    _nonnegative(l2, "l2")
    number(lr, "lr", low=0, low_open=True, expected="a positive finite learning rate")
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    if not isinstance(standardize, (bool, np.bool_)):
        raise ValueError(f"standardize: expected True or False, got {standardize!r}")
    device = torch.device(device) if device is not None else get_device()
    return _train_probe(x, y, train_idx, val_idx, k, epochs, batch_size, dropout, l1, l2, lr, seed, device,
                        cpu_threads, bool(standardize))


def _feature_statistics(x: Any, rows: np.ndarray, block: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and standard deviation (population) of ``x[rows]``, read ``block`` rows at a
    time (memmap-friendly), in float64; a zero standard deviation becomes 1 (the feature is only centred)."""
    total = sq = None
    for i in range(0, len(rows), block):
        part = _rows(x, rows[i:i + block]).double().flatten(1)
        total = part.sum(0) if total is None else total + part.sum(0)
        sq = (part * part).sum(0) if sq is None else sq + (part * part).sum(0)
    mean = total / len(rows)
    std = (sq / len(rows) - mean * mean).clamp_min(0).sqrt()
    std[std == 0] = 1.0
    return mean.float(), std.float()


def _train_probe(x, y, train_idx, val_idx, k, epochs, batch_size, dropout, l1, l2, lr, seed,
                 device, cpu_threads, standardize=False) -> ProbeResult:
    n_features = int(np.prod(x.shape[1:]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = LinearProbe(n_features, k, dropout)
    if standardize:
        probe.shift, probe.scale = _feature_statistics(x, train_idx)
    # small training sets fit in memory: load once instead of re-reading the memmap every epoch
    if len(train_idx) * n_features * 4 <= 2**30:
        train_data = (_rows(x, train_idx).to(device), torch.from_numpy(y[train_idx]).to(device))
    else:
        train_data = _RowData(x, train_idx, y)
    tracker = _ProbeAccuracy(train_data, _RowData(x, val_idx, y), y[train_idx], y[val_idx])
    history = train(
        probe, train_data, epochs=epochs, batch_size=batch_size,
        optimizer=lambda m: torch.optim.Adam(m.parameters(), lr=lr),
        step=supervised_step("cross_entropy", penalty=lambda m: m.penalty(l1, l2)),
        callbacks=[tracker], seed=seed, device=device, num_threads=cpu_threads,
        # tiny activations (e.g. of a random network) drive Adam's state into denormal floats,
        # which are ~100x slower on CPU; flushing them to zero changes nothing measurable
        flush_denormal=True)
    history = history[["epoch", "loss", "train_accuracy", "val_accuracy"]]
    return ProbeResult(probe.cpu(), history, k, tracker.train_pred, tracker.val_pred)


def _same_array(a: Any, b: Any, block: int = 1024) -> bool:
    """Exact equality of two ``(N, ...)`` arrays, compared in blocks of rows (memmap-friendly)."""
    if a is b:
        return True
    if a.shape != b.shape:
        return False
    return all(np.array_equal(np.asarray(a[i:i + block]), np.asarray(b[i:i + block]))
               for i in range(0, len(a), block))


#: How a probe sees the activations: as they are (the paper), or standardised with the training
#: split's statistics (:func:`train_probe`'s ``standardize``).
SCALINGS = ("raw", "standardized")


def _scalings(scalings: Any) -> list[str]:
    if isinstance(scalings, str):
        raise ValueError(f"scalings: expected a list, got the string {scalings!r}; use ({scalings!r},)")
    out = list(scalings)
    bad = [v for v in out if v not in SCALINGS]
    if not out or bad or len(set(out)) != len(out):
        raise ValueError(f"scalings: expected distinct values of {list(SCALINGS)}, got {scalings!r}")
    return out


def _check_probe_kwargs(kwargs: dict, name: str) -> None:
    accepted = [p for p in inspect.signature(train_probe).parameters if p not in ("x", "y", "train_idx", "val_idx")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown} for train_probe; accepted: {accepted}")


def selection_halves(y: Sequence[int] | np.ndarray, seed: int = 0) -> np.ndarray:
    """Split validation examples into a *selection* half (``True``) and a *report* half (``False``),
    stratified by group: within each group a seeded shuffle, then alternately one to each half.

    Choosing the best layer on the selection half and reporting its accuracy on the report half
    keeps the reported number free of the choice's optimism (choosing and reporting on one split
    picks, among many noisy accuracies, one that is high partly by chance).

    Parameters
    ----------
    y
        ``(N,)`` group ids of the validation examples, in the order of the predictions.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` bool.
    """
    y = as_labels(y, "y")
    if y.size == 0:
        raise ValueError("y: is empty; pass the validation examples' group ids")
    rng = np.random.default_rng(integer(seed, "seed", minimum=0))
    select = np.zeros(y.size, dtype=bool)
    for g in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == g))
        select[members[::2]] = True
    return select


def probe_layers(store: Any, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, *,
                 layers: Sequence[str] | None = None, reductions: Sequence[str] | None = None,
                 show_progress: bool = False, reuse_identical: bool = True,
                 keep_probes: bool = True, layer_offset: int = 0, scalings: Sequence[str] = ("raw",),
                 **kwargs: Any) -> tuple[pd.DataFrame, dict]:
    """Train one probe per (layer, reduction) of an :class:`~fairlib.activations.ActivationStore`.

    Parameters
    ----------
    store
        Activations of ``N`` examples (:func:`fairlib.activations.capture_activations`).
    y, train_idx, val_idx
        ``(N,)`` group ids and the split of :func:`probe_split` (positions in the store).
    layers, reductions
        Default: all of the store's, in its order.
    reuse_identical
        Where two reductions leave a layer's array identical (a flat layer, or a feature map
        already at most 8 x 8, where subsampling and average pooling both keep every value),
        train one probe and report it under both reductions (``shared_with`` names the first).
    keep_probes
        ``False`` drops each probe's weights after training (``ProbeResult.probe`` is
        ``None``): for large layers of large networks, whose probes hold millions of weights.
    layer_offset
        Added to ``layer_index`` (when the store holds a later slice of a network's layers).
    scalings
        ``"raw"`` (the paper's probe on the activations as they are) and/or ``"standardized"``
        (:func:`train_probe` with ``standardize=True``): one probe per (layer, reduction) each.
    **kwargs
        Passed to :func:`train_probe` (``epochs``, ``n_groups``, ``device``, ...).

    Returns
    -------
    summary : pandas.DataFrame
        One row per probe: ``scaling``, ``reduction``, ``layer_index`` (0 = input), ``layer``,
        ``n_features``, ``train_accuracy``, ``val_accuracy``, ``chance``, ``shared_with``.
    results : dict
        ``(reduction, layer) -> ProbeResult`` for raw probes, ``(reduction, layer, scaling)`` for
        the others (learning curves, predictions).
    """
    from fairlib.notebook import progress

    if not all(hasattr(store, a) for a in ("layers", "reductions", "get")):
        raise ValueError(f"store: expected an ActivationStore (fairlib.activations.capture_activations), "
                         f"got {type(store).__name__}")
    _check_probe_kwargs(kwargs, "kwargs")
    scalings = _scalings(scalings)
    if "standardize" in kwargs:
        raise ValueError("kwargs: pass scalings=('standardized',) instead of standardize=")
    layers = list(layers) if layers is not None else list(store.layers)
    reductions = list(reductions) if reductions is not None else list(store.reductions)
    jobs = [(sc, r, i, layer) for sc in scalings for r in reductions for i, layer in enumerate(layers)]
    results, rows = {}, []

    def key(sc: str, r: str, layer: str) -> tuple:
        return (r, layer) if sc == "raw" else (r, layer, sc)

    for sc, r, i, layer in (progress(jobs, desc="probes") if show_progress else jobs):
        x = store.get(layer, r)
        twin = None
        if reuse_identical:
            twin = next((q for q in reductions[:reductions.index(r)]
                         if key(sc, q, layer) in results and _same_array(x, store.get(layer, q))), None)
        if twin is not None:
            res = results[key(sc, twin, layer)]
        else:
            res = train_probe(x, y, train_idx, val_idx, standardize=sc == "standardized", **kwargs)
            if not keep_probes:
                res.probe = None
        results[key(sc, r, layer)] = res
        rows.append({"scaling": sc, "reduction": r, "layer_index": i + layer_offset, "layer": layer,
                     "n_features": int(np.prod(x.shape[1:])), "train_accuracy": res.train_accuracy,
                     "val_accuracy": res.val_accuracy, "chance": res.chance,
                     "shared_with": twin or ""})
    return pd.DataFrame(rows), results


def frequent_errors(y_true: Sequence[int], y_pred: Sequence[int], table: pd.DataFrame,
                    variables: Sequence[str] | None = None, top: int = 10) -> pd.DataFrame:
    """The most frequent (true group -> predicted group) confusions (the paper's Tables 1-4).

    Parameters
    ----------
    y_true, y_pred
        Group ids (rows of ``table``).
    table
        One row per group with a column per variable (e.g. the table returned by
        :func:`fairlib.data.intersectional_groups`).
    variables
        Columns of ``table`` to show; default every column except ``count``.
    top
        Rows to return.

    Returns
    -------
    pandas.DataFrame
        Columns ``true <var>`` and ``pred <var>`` per variable, ``count``, ``error_rate`` (the
        confusion's count divided by the number of examples of the true group) and ``differs``
        (the variables whose category is wrong); sorted by error rate, then count.
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table: expected a DataFrame with one row per group, got {type(table).__name__}")
    if isinstance(variables, str):
        raise ValueError(f"variables: expected a list of column names, got the string {variables!r}; "
                         f"use [{variables!r}]")
    top = positive_int(top, "top")
    t, p = np.asarray(y_true), np.asarray(y_pred)
    t = as_labels(t, "y_true") if t.size else t
    p = as_labels(p, "y_pred") if p.size else p
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and arr.dtype.kind not in "iu":
            raise ValueError(f"{name}: expected integer group ids (rows of table), got dtype {arr.dtype}")
    t, p = t.astype(np.int64), p.astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_pred: shape {p.shape} differs from y_true's {t.shape}")
    variables = [c for c in table.columns if c != "count"] if variables is None else list(variables)
    missing = [v for v in variables if v not in table.columns]
    if missing:
        raise ValueError(f"variables: {missing} not in table; columns are {list(table.columns)}")
    if len(t) and (max(t.max(), p.max()) >= len(table) or min(t.min(), p.min()) < 0):
        raise ValueError(f"y_true/y_pred: ids must index the {len(table)} rows of table")
    sizes = np.bincount(t, minlength=len(table))
    wrong = t != p
    pairs = pd.DataFrame({"true": t[wrong], "pred": p[wrong]}).value_counts().rename("count").reset_index()
    pairs["error_rate"] = pairs["count"] / sizes[pairs["true"].to_numpy()]
    pairs = pairs.sort_values(["error_rate", "count", "true", "pred"],
                              ascending=[False, False, True, True]).head(top)
    out = {}
    for side in ("true", "pred"):
        for v in variables:
            out[f"{side} {v}"] = table[v].to_numpy()[pairs[side].to_numpy()]
    out = pd.DataFrame(out)
    out["count"] = pairs["count"].to_numpy()
    out["error_rate"] = pairs["error_rate"].to_numpy()
    out["differs"] = [", ".join(v for v in variables if a[f"true {v}"] != a[f"pred {v}"])
                      for _, a in out.iterrows()]
    return out.reset_index(drop=True)


def probe_network(model: nn.Module, data: Any, y: Sequence[int] | np.ndarray,
                  train_idx: np.ndarray, val_idx: np.ndarray, *, layers: Any = None,
                  reductions: Sequence[str] = ("subsample", "avgpool"), max_size: int = 8,
                  transform: Any = None, directory: str | Path | None = None,
                  layers_per_pass: int | None = None, batch_size: int = 64, num_workers: int = 0,
                  keep_store: bool = False, keep_probes: bool = True, device: Any = None,
                  cpu_threads: int | None = 1, show_progress: bool = False, scalings: Sequence[str] = ("raw",),
                  **probe_kwargs: Any) -> tuple[pd.DataFrame, dict]:
    r"""Capture a network's activations layer by layer and probe each layer (Sec. 5.3).

    For each pass (``layers_per_pass`` consecutive layers, or all of them at once) the
    activations of ``data`` are captured with
    :func:`fairlib.activations.capture_activations` (reduced to at most
    ``max_size x max_size``), every (layer, reduction) gets a probe (:func:`probe_layers`), and
    the pass's store is deleted unless ``keep_store``. Peak storage is therefore that of one
    pass: a ResNet50 layer of 2048 x 7 x 7 values for 16,000 images is 3.2 GB in float16.

    Parameters
    ----------
    model
        Any torch model with a layer preset or explicit ``layers`` (see
        :func:`fairlib.activations.resolve_layers`).
    data
        The probe sample only: ``(N, C, H, W)`` images or a Dataset of ``N`` items.
    y
        ``(N,)`` group ids of ``data``.
    train_idx, val_idx
        Positions in ``data`` (see :func:`probe_split`).
    reductions, max_size, transform, batch_size, num_workers, device
        Passed to :func:`~fairlib.activations.capture_activations`.
    directory
        ``None`` keeps activations in memory (float32); a path writes float16 memory maps
        into ``directory/pass_<k>``.
    layers_per_pass
        Layers captured per forward sweep over ``data``; ``None``: all in one pass.
    cpu_threads
        Torch threads for capture and probes on CPU (see :func:`train_probe`).
    scalings
        Passed to :func:`probe_layers` (raw and/or standardised probes).
    **probe_kwargs
        Passed to :func:`train_probe` (``epochs``, ``n_groups``, ...).

    Returns
    -------
    summary, results
        As :func:`probe_layers`, for all layers (``layer_index`` 0 = input).
    """
    from fairlib.activations import capture_activations, resolve_layers

    if isinstance(reductions, str):
        raise ValueError(f"reductions: expected a list of reductions, got the string {reductions!r}; "
                         f"use ({reductions!r},)")
    _check_probe_kwargs(probe_kwargs, "probe_kwargs")
    resolved = resolve_layers(model, layers)
    names = list(resolved)
    step = positive_int(layers_per_pass, "layers_per_pass", allow_none=True) or len(names)
    y = as_labels(y, "y").astype(np.int64)
    if len(y) != len(data):
        raise ValueError(f"y: has {len(y)} labels but data has {len(data)} examples; pass the "
                         "probe sample's images and their group ids")
    probe_kwargs.setdefault("device", device)
    summaries, results = [], {}
    for start in range(0, len(names), step):
        chunk = names[start:start + step]
        where = None if directory is None else Path(directory) / f"pass_{start // step}"
        if where is not None and where.exists():
            shutil.rmtree(where)  # a stale or interrupted pass
        with limit_cpu_threads(cpu_threads, torch.device(device) if device is not None else get_device()):
            store = capture_activations(model, data, {n: resolved[n] for n in chunk},
                                        reductions=reductions, max_size=max_size,
                                        batch_size=batch_size, transform=transform,
                                        directory=where, device=device, num_workers=num_workers,
                                        show_progress=show_progress)
        summary, res = probe_layers(store, y, train_idx, val_idx, layer_offset=start,
                                    keep_probes=keep_probes, show_progress=show_progress,
                                    cpu_threads=cpu_threads, scalings=scalings, **probe_kwargs)
        summaries.append(summary)
        results.update(res)
        del store
        if where is not None and not keep_store:
            shutil.rmtree(where, ignore_errors=True)
    summary = pd.concat(summaries, ignore_index=True)
    order = {**{r: i for i, r in enumerate(reductions)}, **{sc: i for i, sc in enumerate(SCALINGS)}}
    summary = summary.sort_values(["scaling", "reduction", "layer_index"], key=lambda c: c.map(order)
                                  if c.name in ("reduction", "scaling") else c, kind="stable")
    return summary.reset_index(drop=True), results


def train_small_cnn(images: torch.Tensor, targets: torch.Tensor, *, epochs: int = 3,
                    batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
                    device: Any = None, cpu_threads: int | None = None) -> tuple[SmallCNN, list[float]]:
    """Train a :class:`SmallCNN` on multi-label binary ``targets`` ``(N, T)`` (BCE, Adam).

    ``images`` are ``uint8`` or float ``(N, 3, H, W)``. ``cpu_threads`` limits torch's threads
    while training on CPU (``None``: unchanged; see :func:`train_probe`). Returns the model
    (eval mode) and the mean loss of each epoch.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images: expected a (N, 3, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if not isinstance(targets, torch.Tensor):
        raise ValueError(f"targets: expected a tensor (N, T), got {type(targets).__name__}; use torch.as_tensor")
    if targets.dim() != 2 or len(targets) != len(images):
        raise ValueError("targets: expected (N, T) binary labels matching images")
    if not bool(((targets == 0) | (targets == 1)).all()):
        raise ValueError("targets: expected binary 0/1 labels (multi-label BCE); map other codes to 0/1 first")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(targets.shape[1])
    history = train(model, (images, targets), epochs=epochs, batch_size=batch_size,
                    optimizer=lambda m: torch.optim.Adam(m.parameters(), lr=lr),
                    step=supervised_step("bce"), seed=seed, device=device, num_threads=cpu_threads)
    return model, history["loss"].tolist()


#: The quick profile's unrelated task: SynthFaces' 12 accessory/expression attributes.
UNRELATED_TASK_ATTRIBUTES: tuple[str, ...] = tuple(MULTI_ATTRIBUTES)


@dataclass
class UnrelatedTask:
    """A :class:`SmallCNN` trained on :data:`UNRELATED_TASK_ATTRIBUTES`, with its evaluation.

    ``evaluation`` has one row per attribute: ``base_rate`` (held-out share of positives),
    ``accuracy`` (threshold 0.5), ``majority_accuracy`` (always predicting the majority value)
    and ``auc`` (ROC AUC; NaN when the held-out set has one class only).
    """

    model: SmallCNN
    losses: list[float]
    evaluation: pd.DataFrame


def train_unrelated_cnn(n: int = 4000, *, size: int = 32, epochs: int = 6, batch_size: int = 64,
                        lr: float = 3e-3, n_eval: int = 1000, seed: int = 0,
                        device: Any = None, cpu_threads: int | None = 1) -> UnrelatedTask:
    """Train a :class:`SmallCNN` on a task that is independent of the face groups by construction.

    The quick profile's stand-in for an ImageNet classifier: a network trained for something
    *other* than ``palette x age x style``, so that probing it asks the paper's question (does
    a network trained for another task encode the groups?). The task is multi-label detection
    of the 12 accessories and expressions of :func:`fairlib.data.render_multiattribute`
    (glasses, hat, smile, ...), rendered with ``correlations={}``: every attribute is drawn
    independently of the identity variables, the skin palette is drawn uniformly at random,
    age (wrinkles, grey hair) and hair length vary at random. The network therefore sees all
    the variation that defines the groups of :func:`fairlib.data.render_faces`, but its labels
    carry no information about it.

    Parameters
    ----------
    n
        Training images.
    size
        Image side (use the size of the faces that will be probed).
    epochs, batch_size, lr
        Passed to :func:`train_small_cnn` (BCE, Adam).
    n_eval
        Held-out images (another seed) for ``evaluation``.
    seed
        Seeds rendering (``seed`` and ``seed + 1``) and training.
    cpu_threads
        Torch threads while training on CPU (see :func:`train_small_cnn`); one thread cost
        a fifth of the CPU time of two on a busy 2-core machine.

    Returns
    -------
    UnrelatedTask
        The model (eval mode; ``head`` has 12 outputs, one logit per attribute), the mean loss
        per epoch and a per-attribute evaluation on held-out images.
    """
    from sklearn.metrics import roc_auc_score

    from fairlib.data import render_multiattribute

    for name, v in (("n", n), ("n_eval", n_eval), ("epochs", epochs)):
        positive_int(v, name)

    def targets(attrs: pd.DataFrame) -> torch.Tensor:
        return torch.from_numpy(np.stack([attrs[a].cat.codes.to_numpy() for a in
                                          UNRELATED_TASK_ATTRIBUTES], 1).astype(np.float32))

    x, a = render_multiattribute(n, size=size, correlations={}, seed=seed)
    model, losses = train_small_cnn(x, targets(a), epochs=epochs, batch_size=batch_size, lr=lr,
                                    seed=seed, device=device, cpu_threads=cpu_threads)
    xe, ae = render_multiattribute(n_eval, size=size, correlations={}, seed=seed + 1)
    te = targets(ae).numpy()
    logits = predict(model, xe, batch_size=512).numpy()
    rows = []
    for j, attr in enumerate(UNRELATED_TASK_ATTRIBUTES):
        t, s = te[:, j], logits[:, j]
        rate = float(t.mean())
        rows.append({"attribute": attr, "base_rate": rate,
                     "accuracy": float(((s > 0) == (t > 0.5)).mean()),
                     "majority_accuracy": max(rate, 1 - rate),
                     "auc": float(roc_auc_score(t, s)) if 0 < rate < 1 else float("nan")})
    return UnrelatedTask(model, losses, pd.DataFrame(rows).set_index("attribute"))


#: Input sides of the paper's networks (Keras defaults; the paper resizes bilinearly).
NATIVE_SIZES: dict[str, int] = {k: TORCHVISION_SIZES[k] for k in ("vgg16", "resnet50", "inception_v3")}


@dataclass
class Network:
    """A network to probe: the model (eval mode) and how to feed it.

    ``transform`` is the batch transform for :func:`~fairlib.activations.capture_activations`
    (``None``: uint8 images become floats in [0, 1]); ``task`` is the quick CNN's
    :class:`UnrelatedTask` when it was trained here, else ``None``.
    """

    name: str
    model: nn.Module
    trained: bool
    transform: Any = None
    input_size: int | None = None
    task: UnrelatedTask | None = None


def build_network(name: str, *, trained: bool = True, seed: int = 0, weights: str = "IMAGENET1K_V1",
                  device: Any = None, **task_kwargs: Any) -> Network:
    """A trained or randomly initialised network to probe, by name.

    Parameters
    ----------
    name
        ``"small_cnn"`` (quick profile) or a torchvision ImageNet model of the paper:
        ``"vgg16"``, ``"resnet50"``, ``"inception_v3"``.
    trained
        ``True``: ``small_cnn`` is trained on the unrelated task (:func:`train_unrelated_cnn`,
        ``task_kwargs`` passed on); a torchvision model loads ``weights`` (downloaded into
        :func:`fairlib.data.configure_weights_cache`'s directory). ``False``: the same
        architecture with its default random initialisation (seeded), the control.
    weights
        torchvision weight name; ``IMAGENET1K_V1`` is the original release of each model,
        the closest to the Keras weights the paper used.

    Returns
    -------
    Network
        For torchvision models ``transform`` is
        :func:`~fairlib.activations.imagenet_transform` at the native size (224 or 299).
    """
    key = str(name).lower().replace("-", "_")
    if key == "small_cnn":
        accepted = [p for p in inspect.signature(train_unrelated_cnn).parameters if p not in ("seed", "device")]
        unknown = sorted(set(task_kwargs) - set(accepted))
        if unknown:
            raise ValueError(f"task_kwargs: unknown option(s) {unknown} for the small CNN's task; accepted: {accepted}")
        if trained:
            task = train_unrelated_cnn(seed=seed, device=device, **task_kwargs)
            return Network(key, task.model, True, None, task_kwargs.get("size", 32), task)
        model = build_model("small_cnn", seed=seed, n_outputs=len(UNRELATED_TASK_ATTRIBUTES)).eval()
        return Network(key, model, False, None, task_kwargs.get("size", 32))
    if key not in NATIVE_SIZES:
        raise ValueError(f"name: expected 'small_cnn' or one of {list(NATIVE_SIZES)}, got {name!r}")
    if task_kwargs:
        raise ValueError(f"task_kwargs: {sorted(task_kwargs)} only apply to 'small_cnn'")
    model = build_model(f"torchvision.{key}", seed=seed, weights=weights if trained else None)
    return Network(key, model.eval(), trained, model.preprocess, model.input_size)


# --------------------------------------------------------------------------- experiments (Chapter 3)
#: Chapter 3's settings. quick: SynthFaces faces (palette 7 x age 9 x style 2 = 126 groups, FairFace's
#: schema), 32x32, a balanced set of 64 per group; the network is the SmallCNN trained on an UNRELATED
#: task plus the same architecture with random weights; 15 probe epochs (paper: 50). full: FairFace's
#: training split capped at 640 per group, up to 128 per group, torchvision's ImageNet VGG16, ResNet50
#: and InceptionV3 plus a random ResNet50; activations in float16 memory maps, 4 layers per pass.
SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {"dataset": "synthfaces", "data_options": {"n": 126 * 64, "size": 32, "group_weights": "uniform"},
              "variables": ["palette", "age", "style"], "cap": 640, "per_group": 64, "epochs": 15,
              "networks": ["small_cnn"], "control": "small_cnn", "control_reductions": ["subsample"],
              "task": {"n": 4000, "size": 32, "epochs": 6}, "layers_per_pass": None,
              "batch_size": 256, "num_workers": 0},
    "full": {"dataset": "fairface", "data_options": {"size": 224}, "variables": ["race", "age", "gender"], "cap": 640,
             "per_group": 128, "epochs": 50, "networks": ["vgg16", "resnet50", "inception_v3"],
             "control": "resnet50", "control_reductions": ["subsample", "avgpool"], "task": {},
             "layers_per_pass": 4, "batch_size": 64, "num_workers": 2},
    # FAIRLIB_SCALE=rehearsal: the full code on the miniature FairFace mirror (3 images per group)
    # (2 per group; 8 layers per pass keeps the multi-pass capture but 2-3 passes on a CPU)
    "rehearsal": {"cap": 2, "per_group": 2, "epochs": 1, "batch_size": 64, "layers_per_pass": 8},
}

#: The two ways of shrinking a feature map that the paper compares.
REDUCTIONS = ("subsample", "avgpool")


@dataclass
class ProbeSample:
    """Chapter 3's probe sample: which images are fed to the networks and how they split.

    ``sample`` indexes the dataset (sorted); ``y`` is each sampled image's group id (a row of
    ``groups``); ``train_idx`` / ``val_idx`` index ``sample``.
    """

    dataset: Any
    groups: pd.DataFrame
    ids: np.ndarray
    capped: np.ndarray
    sample: np.ndarray
    y: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray


def probe_sample(dataset_name: str, data_options: dict, variables: Sequence[str], *, cap: int, per_group: int,
                 seed: int = 0) -> ProbeSample:
    """Load the dataset, cap every group at ``cap`` and draw ``per_group`` per group (90/10 train/val)."""
    from fairlib.data import cap_groups, intersectional_groups, load_dataset

    if isinstance(variables, str):
        raise ValueError(f"variables: expected a list of attribute names, got the string {variables!r}; "
                         f"use [{variables!r}]")
    if not isinstance(data_options, dict):
        raise ValueError(f"data_options: expected a dict of load_dataset options, got {type(data_options).__name__}")
    positive_int(per_group, "per_group")
    dataset = load_dataset(dataset_name, "train", **data_options)
    ids, groups = intersectional_groups(dataset.attributes, list(variables))
    capped = cap_groups(dataset.attributes, list(variables), cap, seed=seed)
    tr, va = probe_split(ids[capped], per_group=per_group, seed=seed)
    sample = np.sort(capped[np.concatenate([tr, va])])  # only these images are ever fed to a network
    is_val = np.isin(sample, capped[va])
    return ProbeSample(dataset, groups, ids, capped, sample, ids[sample], np.flatnonzero(~is_val),
                       np.flatnonzero(is_val))


def run_probing(network: str, trained: bool, dataset: str, data_options: dict, variables: list, cap: int,
                per_group: int, epochs: int, reductions: list, task: dict, batch_size: int,
                layers_per_pass: int | None = None, num_workers: int = 0, seed: int = 0,
                store: str | None = None, scalings: Sequence[str] = ("raw",)) -> dict[str, Any]:
    """Probe every layer of one network (trained or randomly initialised) for the intersectional groups.

    Returns flat lists, one entry per (scaling, reduction, layer): ``scaling`` (``scalings``: raw
    and/or standardised probes, :func:`probe_layers`), ``reduction``, ``layer``, ``layer_index``,
    ``n_features``, ``train_accuracy``, ``val_accuracy`` (and ``val_select_accuracy`` /
    ``val_report_accuracy`` on the two halves of :func:`selection_halves`); the learning curves as ``curve_row`` (the
    entry's position), ``curve_epoch``, ``curve_train``, ``curve_val``; the best subsampled
    layer's predictions ``best_layer``, ``train_pred``, ``val_pred`` (of the first scaling's
    probes); the same for the paper's layer of a pretrained VGG16, ResNet-50 or InceptionV3
    (:data:`fairlib.activations.PAPER_LAYERS`), ``paper_layer``, ``paper_train_pred``,
    ``paper_val_pred`` (``None`` for other networks and the random control); and, for a network trained here
    (the quick profile's small CNN), its own task's evaluation ``task_attribute``, ``task_auc``,
    ``task_accuracy``, ``task_majority``.
    """
    import shutil
    import tempfile

    from fairlib.config import get_device

    s = probe_sample(dataset, data_options, variables, cap=cap, per_group=per_group, seed=seed)
    device = get_device()
    net = build_network(network, trained=trained, seed=seed, device=device, **task)
    directory = Path(store) if store else Path(tempfile.mkdtemp(prefix="fairlib_probes_"))
    try:
        summary, results = probe_network(
            net.model, torch.utils.data.Subset(s.dataset, s.sample), s.y, s.train_idx, s.val_idx,
            reductions=tuple(reductions), transform=net.transform,
            directory=directory / f"{network}_{'trained' if trained else 'random'}", layers_per_pass=layers_per_pass,
            batch_size=batch_size, num_workers=num_workers, device=device, n_groups=len(s.groups),
            epochs=epochs, seed=seed, keep_probes=False, scalings=tuple(scalings))
    finally:
        if not store:
            shutil.rmtree(directory, ignore_errors=True)
    out: dict[str, Any] = {k: summary[k].tolist() for k in ("scaling", "reduction", "layer", "layer_index",
                                                            "n_features", "train_accuracy", "val_accuracy")}
    rows, epochs_, tr, va = [], [], [], []
    for i, (sc, red, layer) in enumerate(zip(summary["scaling"], summary["reduction"], summary["layer"])):
        h = results[(red, layer) if sc == "raw" else (red, layer, sc)].history
        rows += [i] * len(h)
        epochs_ += h["epoch"].tolist()
        tr += h["train_accuracy"].tolist()
        va += h["val_accuracy"].tolist()
    out.update(curve_row=rows, curve_epoch=epochs_, curve_train=tr, curve_val=va)
    # accuracy on the two halves of the validation split (selection_halves): choose on one, report the other
    val_y = s.y[np.sort(s.val_idx)]
    half = selection_halves(val_y, seed=seed)
    sel, rep = [], []
    for sc, red, layer in zip(summary["scaling"], summary["reduction"], summary["layer"]):
        pred = results[(red, layer) if sc == "raw" else (red, layer, sc)].val_pred
        sel.append(float(np.mean(pred[half] == val_y[half])))
        rep.append(float(np.mean(pred[~half] == val_y[~half])))
    out.update(val_select_accuracy=sel, val_report_accuracy=rep)
    first = summary[summary["scaling"] == scalings[0]]
    sub = first[first["reduction"] == "subsample"] if (first["reduction"] == "subsample").any() else first
    best = sub.sort_values("val_accuracy").iloc[-1]
    res = results[(best["reduction"], best["layer"]) if scalings[0] == "raw"
                  else (best["reduction"], best["layer"], scalings[0])]
    out.update(best_layer=str(best["layer"]), train_pred=res.train_pred.tolist(), val_pred=res.val_pred.tolist())
    # the layer of the paper's frequent-error table (Tables 2-4) for this network, when probed
    paper = PAPER_LAYERS.get(network) if trained else None
    if paper is not None and paper in set(sub["layer"]):
        kept = results[(sub["reduction"].iloc[0], paper) if scalings[0] == "raw"
                       else (sub["reduction"].iloc[0], paper, scalings[0])]
        out.update(paper_layer=paper, paper_train_pred=kept.train_pred.tolist(),
                   paper_val_pred=kept.val_pred.tolist())
    else:
        out.update(paper_layer=None, paper_train_pred=None, paper_val_pred=None)
    if net.task is not None:
        ev = net.task.evaluation
        out.update(task_attribute=list(ev.index), task_auc=ev["auc"].tolist(), task_accuracy=ev["accuracy"].tolist(),
                   task_majority=ev["majority_accuracy"].tolist())
    return out


def probing_grid(profile: str) -> list[dict]:
    """One configuration per network: the profile's trained networks, then the random control."""
    from fairlib.config import select

    cfg = select(SETTINGS, profile)
    common = {k: cfg[k] for k in ("dataset", "data_options", "variables", "cap", "per_group", "epochs", "task",
                                  "batch_size", "layers_per_pass", "num_workers")}
    # every network's probes on raw activations (the paper) and standardised ones (our control of
    # the activations' scale, see train_probe)
    common["scalings"] = list(SCALINGS)
    configs = [{"network": name, "trained": True, "reductions": list(REDUCTIONS), **common}
               for name in cfg["networks"]]
    configs.append({"network": cfg["control"], "trained": False, "reductions": list(cfg["control_reductions"]),
                    **common})
    return configs


def network_label(network: str, trained: bool) -> str:
    """How the chapter names a probed network: ``"vgg16 (trained)"``, ``"resnet50 (random init)"``."""
    if not isinstance(network, str):
        raise ValueError(f"network: expected a network name, got {network!r}")
    if not isinstance(trained, (bool, np.bool_)):
        raise ValueError(f"trained: expected True or False, got {trained!r}")
    return f"{network} ({'trained' if trained else 'random init'})"


def _check_runs(runs: Any, name: str, columns: Sequence[str], *, frame: bool) -> None:
    kind = pd.DataFrame if frame else pd.Series
    what = "the DataFrame of run_probing rows (sweep.run)" if frame else "one run_probing row (a Series)"
    if not isinstance(runs, kind):
        raise ValueError(f"{name}: expected {what}, got {type(runs).__name__}")
    if frame and runs.empty:
        raise ValueError(f"{name}: is empty; pass the rows of at least one run")
    present = runs.columns if frame else runs.index
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(f"{name}: missing {missing}; expected {what}")


def probing_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (network, scaling, reduction, layer) from :func:`run_probing` rows of a sweep."""
    _check_runs(runs, "runs", ("network", "trained", "reduction", "layer_index", "layer", "n_features",
                                "train_accuracy", "val_accuracy"), frame=True)
    parts = []
    for _, r in runs.iterrows():
        keys = ["reduction", "layer_index", "layer", "n_features", "train_accuracy", "val_accuracy"]
        keys += [k for k in ("val_select_accuracy", "val_report_accuracy") if isinstance(r.get(k), list)]
        part = pd.DataFrame({k: r[k] for k in keys})
        part.insert(0, "scaling", r["scaling"] if isinstance(r.get("scaling"), list) else "raw")
        part.insert(0, "network", network_label(r["network"], r["trained"]))
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def probing_curves(run: pd.Series) -> pd.DataFrame:
    """The learning curves of one :func:`run_probing` row: ``scaling``, ``reduction``, ``layer``, ``epoch``,
    ``train_accuracy``, ``val_accuracy``."""
    _check_runs(run, "run", ("reduction", "layer", "curve_row", "curve_epoch", "curve_train", "curve_val"),
                frame=False)
    rows = np.asarray(run["curve_row"], dtype=int)
    scaling = np.asarray(run["scaling"] if isinstance(run.get("scaling"), list) else ["raw"] * len(run["layer"]))
    return pd.DataFrame({"scaling": scaling[rows], "reduction": np.asarray(run["reduction"])[rows],
                         "layer": np.asarray(run["layer"])[rows],
                         "epoch": run["curve_epoch"], "train_accuracy": run["curve_train"],
                         "val_accuracy": run["curve_val"]})


def paper_error_table(rows: Sequence[tuple]) -> pd.DataFrame:
    """The paper's frequent-error rows ``(true race, age, gender, predicted race, age, gender, rate %)``
    with a ``differs`` column naming the variables that are wrong."""
    if isinstance(rows, Mapping) or not all(isinstance(r, (tuple, list)) and len(r) == 7 for r in rows):
        raise ValueError("rows: expected a list of 7-tuples (true race, age, gender, predicted race, age, gender, "
                         "rate %), e.g. one value of PAPER_ERROR_ROWS")
    t = pd.DataFrame(rows, columns=["true race", "true age", "true gender", "pred race", "pred age", "pred gender",
                                    "error rate (%)"])
    t["differs"] = [", ".join(v for v in ("race", "age", "gender") if r[f"true {v}"] != r[f"pred {v}"])
                    for _, r in t.iterrows()]
    return t


#: Krug & Stober's Tables 2-4: the ten most frequent training errors at one layer of each network
#: (FairFace; error rates in percent of the true group's examples).
PAPER_ERROR_ROWS: dict[str, list[tuple]] = {
    "Table 2: VGG16, layer 4 (block4_pool)": [
        ("Indian", "60-69", "Male", "Indian", "70+", "Male", 15.65),
        ("Latino_Hispanic", "70+", "Male", "Indian", "70+", "Male", 13.04),
        ("Indian", "60-69", "Female", "Indian", "70+", "Male", 6.96),
        ("White", "70+", "Male", "Indian", "70+", "Male", 5.97),
        ("White", "60-69", "Male", "Indian", "70+", "Male", 5.22),
        ("East Asian", "40-49", "Female", "Middle Eastern", "50-59", "Female", 5.22),
        ("Latino_Hispanic", "70+", "Male", "White", "50-59", "Male", 4.35),
        ("Latino_Hispanic", "70+", "Male", "Southeast Asian", "50-59", "Male", 4.35),
        ("Indian", "60-69", "Female", "Indian", "50-59", "Female", 4.35),
        ("Indian", "50-59", "Male", "Indian", "70+", "Male", 3.48)],
    "Table 3: ResNet50, layer 15 (conv5_block1_out)": [
        ("White", "30-39", "Male", "White", "20-29", "Male", 4.35),
        ("Latino_Hispanic", "20-29", "Female", "Indian", "10-19", "Female", 3.48),
        ("Middle Eastern", "30-39", "Male", "White", "20-29", "Male", 3.48),
        ("Latino_Hispanic", "3-9", "Female", "Middle Eastern", "3-9", "Female", 3.48),
        ("Indian", "40-49", "Female", "Indian", "50-59", "Female", 3.48),
        ("Latino_Hispanic", "40-49", "Male", "White", "40-49", "Male", 3.48),
        ("Latino_Hispanic", "40-49", "Male", "White", "20-29", "Male", 3.48),
        ("Latino_Hispanic", "40-49", "Male", "Indian", "30-39", "Male", 3.48),
        ("Middle Eastern", "50-59", "Female", "White", "60-69", "Female", 3.48),
        ("Southeast Asian", "3-9", "Female", "East Asian", "3-9", "Female", 2.61)],
    "Table 4: InceptionV3, layer 9 (mixed7)": [
        ("Latino_Hispanic", "30-39", "Male", "Latino_Hispanic", "40-49", "Male", 6.09),
        ("East Asian", "70+", "Male", "East Asian", "60-69", "Male", 5.13),
        ("Middle Eastern", "50-59", "Male", "Latino_Hispanic", "40-49", "Male", 4.35),
        ("Middle Eastern", "0-2", "Female", "Middle Eastern", "0-2", "Male", 4.00),
        ("Black", "70+", "Male", "Black", "50-59", "Male", 4.00),
        ("Black", "30-39", "Male", "Latino_Hispanic", "40-49", "Male", 3.48),
        ("Southeast Asian", "0-2", "Female", "East Asian", "0-2", "Female", 2.94),
        ("Latino_Hispanic", "70+", "Female", "Latino_Hispanic", "40-49", "Male", 2.04),
        ("Indian", "70+", "Male", "Latino_Hispanic", "40-49", "Male", 1.85),
        ("White", "0-2", "Female", "Latino_Hispanic", "0-2", "Female", 1.74)],
}


# --------------------------------------------------------------------------- compute plans (fairlib.plan)
#: Training images of the datasets the chapter may read (FairFace's train split; SynthFaces: ``n``).
_TRAIN_SIZES = {"fairface": 86_744}
#: Side of a source image as stored (FairFace's 0.25-padding crops are 224 x 224 JPEGs).
_SOURCE_SIDES = {"fairface": 224}


def _n_groups(dataset: str, variables: Sequence[str]) -> int:
    """Intersectional groups of ``variables``: the product of their category counts (schemas in fairlib.data)."""
    from fairlib.data.loaders import FAIRFACE_AGES, FAIRFACE_GENDERS, FAIRFACE_RACES
    from fairlib.data.synthfaces import FACE_SCHEMA

    schemas = {"fairface": {"race": len(FAIRFACE_RACES), "age": len(FAIRFACE_AGES), "gender": len(FAIRFACE_GENDERS)},
               "synthfaces": {k: len(v) for k, v in FACE_SCHEMA.items()}}
    if dataset not in schemas:
        raise ValueError(f"dataset: no schema for {dataset!r} in the cost model; add it to _n_groups")
    return math.prod(schemas[dataset][v] for v in variables)


def _unrelated_cnn_stages(task: Mapping[str, Any], shared: str | None = None) -> list:
    """:func:`train_unrelated_cnn` with ``task``'s options: render, train a :class:`SmallCNN`, evaluate.

    ``n`` rendered images trained ``epochs`` epochs (Adam: two states per parameter, BCE on 12
    attributes) at ``batch_size``; ``n_eval`` more rendered and predicted at batch 512. Host: the
    ``uint8`` images and float targets of both renders.
    """
    from fairlib.plan import Stage, amp_default, builder
    from fairlib.training import batch_plan

    defaults = {p: v.default for p, v in inspect.signature(train_unrelated_cnn).parameters.items()
                if v.default is not inspect.Parameter.empty}
    o = {**defaults, **dict(task)}
    size, k = int(o["size"]), len(UNRELATED_TASK_ATTRIBUTES)
    host = (3 * size * size + 4 * k) * (int(o["n"]) + int(o["n_eval"]))
    model = builder(SmallCNN, k)
    return [Stage("train the unrelated-task CNN", model, (3, size, size), batch_size=int(o["batch_size"]),
                  train_samples=int(o["epochs"]) * sum(batch_plan(int(o["n"]), int(o["batch_size"]))),
                  optimizer_state=2, amp=amp_default(train), host_bytes=host, shared=shared),
            Stage("evaluate the unrelated-task CNN", model, (3, size, size), eval_samples=int(o["n_eval"]),
                  eval_batch_size=512, amp=amp_default(predict), host_bytes=host, shared=shared)]


def _network_builder(network: str) -> Any:
    """The architecture of :func:`build_network` (random weights: the cost is the same)."""
    import torchvision

    from fairlib.plan import builder

    if network == "small_cnn":
        return builder(SmallCNN, len(UNRELATED_TASK_ATTRIBUTES))
    options = {"init_weights": True} if network == "inception_v3" else {}
    return builder(getattr(torchvision.models, network), weights=None, **options)


def _probing_cost(config: Mapping[str, Any]) -> list:
    r"""The work of one :func:`run_probing` configuration.

    * The probe sample holds at most ``per_group`` images of each intersectional group (an upper
      bound: small groups hold fewer), ``max(1, round(0.1 m))`` of a group's ``m`` for validation.
    * :func:`probe_network` captures ``layers_per_pass`` layers per pass: each pass decodes every
      sample image again and runs the network up to the pass's last layer (under autocast), then
      trains one probe per layer and reduction (one when both reductions keep every value: a flat
      layer or a map of at most 8 x 8).
    * A probe (:func:`train_probe`) is ``Linear(features, groups)``: ``epochs`` epochs of batches
      of 32 (Adam), and after every epoch a prediction of its training rows (batch 4096) and
      validation rows (batch 1024). Rows of at most 1 GiB are copied to the GPU once (host and
      device hold them), larger ones are read from the float16 memory map (page cache).
    * Quick profile: the trained small CNN is trained here first (:func:`train_unrelated_cnn`).
    """
    from fairlib.activations import capture_activations, downsample, layer_preset
    from fairlib.plan import Stage, amp_default, builder, output_shapes, stop_at
    from fairlib.training import batch_plan

    network, dataset = str(config["network"]), str(config["dataset"])
    options = dict(config.get("data_options") or {})
    groups = _n_groups(dataset, config["variables"])
    per_group = int(config["per_group"])
    n_images = int(options.get("n", _TRAIN_SIZES.get(dataset, groups * per_group)))
    m = min(per_group, max(1, n_images // groups))
    n_val_group = max(1, int(round(0.1 * m)))
    n_train, n_val = groups * (m - n_val_group), groups * n_val_group
    sample = n_train + n_val
    side = int(TORCHVISION_SIZES.get(network, options.get("size", 32)))
    stored = int(options.get("size") or _SOURCE_SIDES.get(dataset, side))
    in_memory = dataset == "synthfaces"
    host = 3 * stored * stored * n_images if in_memory else 0  # rendered faces stay in RAM; files are read lazily
    stages: list = []
    if network == "small_cnn" and config.get("trained"):
        stages += _unrelated_cnn_stages(config.get("task") or {})
    model = _network_builder(network)
    preset = layer_preset(network)
    shapes = output_shapes(model, (3, side, side), preset)
    names = list(preset)
    step = int(config.get("layers_per_pass") or len(names))
    reductions = list(config["reductions"])
    batch = int(config["batch_size"])
    pipeline = {"pipeline": "memory"} if in_memory else {
        "pipeline": "decode", "source_pixels": stored * stored, "workers": int(config.get("num_workers", 0)),
        "data": (dataset,)}
    weights = (f"{network}.IMAGENET1K_V1",) if config.get("trained") and network != "small_cnn" else ()
    for start in range(0, len(names), step):
        chunk = names[start:start + step]
        stages.append(Stage("capture activations", builder(stop_at, model, preset[chunk[-1]]), (3, side, side),
                            eval_samples=sample, eval_batch_size=batch, amp=amp_default(capture_activations),
                            host_bytes=host,
                            weights=weights, **pipeline))
        for layer in chunk:
            shape = shapes[layer]
            if len(shape) == 1 or (shape[-1] <= 8 and shape[-2] <= 8):
                features = [math.prod(shape)]  # both reductions keep every value: one probe
            else:
                # the reduction itself, on the meta device: its output size, nothing computed
                meta = torch.empty(1, *shape, device="meta")
                features = [math.prod(downsample(meta, 8, r).shape[1:]) for r in reductions]
            # one probe per scaling (raw, standardised) of every reduction
            for f in features * len(config.get("scalings") or ["raw"]):
                rows = 4 * f * n_train
                on_gpu = rows if rows <= 2**30 else 0
                epochs = int(config["epochs"])
                probe = builder(LinearProbe, f, groups)
                stages.append(Stage("train probes", probe, (f,), batch_size=32, optimizer_state=2,
                                    train_samples=epochs * sum(batch_plan(n_train, 32)), amp=amp_default(train),
                                    host_bytes=host + on_gpu, gpu_bytes=on_gpu))
                stages.append(Stage("probe accuracies", probe, (f,), eval_samples=epochs * n_train,
                                    eval_batch_size=4096, amp=amp_default(predict), host_bytes=host + on_gpu,
                                    gpu_bytes=on_gpu))
                stages.append(Stage("probe accuracies", probe, (f,), eval_samples=epochs * n_val,
                                    eval_batch_size=1024, amp=amp_default(predict), host_bytes=host,
                                    gpu_bytes=on_gpu))
    return stages


def _register() -> None:
    from fairlib import sweep

    sweep.register("03_linear_probes", "probing", run_probing, probing_grid,
                   "linear probes on every layer of each network (and a random-init control)", cost=_probing_cost)


_register()
