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

Also here: :class:`SmallCNN` and :func:`train_small_cnn`, the quick profile's stand-in for an
ImageNet model (a network trained on a task that is *not* the group variables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from fairlib.config import get_device

__all__ = [
    "probe_split",
    "LinearProbe",
    "ProbeResult",
    "train_probe",
    "probe_layers",
    "frequent_errors",
    "SmallCNN",
    "train_small_cnn",
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
    g = np.asarray(groups)
    if g.ndim != 1:
        raise ValueError(f"groups: expected a 1-D array of group ids, got shape {g.shape}")
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
    """Flatten -> dropout(``p``) -> linear layer to ``n_groups`` logits (the paper's probe)."""

    def __init__(self, n_features: int, n_groups: int, dropout: float = 0.25):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.linear = nn.Linear(n_features, n_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.drop(torch.flatten(x, 1)))

    def penalty(self, l1: float, l2: float) -> torch.Tensor:
        """Keras L1L2 kernel regulariser: ``l1 * sum|W| + l2 * sum W^2`` (bias not penalised)."""
        w = self.linear.weight
        return l1 * w.abs().sum() + l2 * (w * w).sum()


@dataclass
class ProbeResult:
    """A trained probe and its learning curves (accuracy per epoch, after the epoch)."""

    probe: LinearProbe
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
    # sorted fancy indexing reads memory maps sequentially
    order = np.argsort(idx)
    block = np.asarray(x[idx[order]], dtype=np.float32)
    out = np.empty_like(block)
    out[order] = block
    return torch.from_numpy(out.reshape(len(idx), -1))


@torch.no_grad()
def _predict(probe: LinearProbe, x, idx: np.ndarray, device, batch_size: int) -> np.ndarray:
    probe.eval()
    out = []
    for i in range(0, len(idx), batch_size):
        out.append(probe(_rows(x, idx[i:i + batch_size]).to(device)).argmax(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def train_probe(x: Any, y: Sequence[int] | np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
                *, n_groups: int | None = None, epochs: int = 50, batch_size: int = 32,
                dropout: float = 0.25, l1: float = 1e-5, l2: float = 1e-4, lr: float = 1e-3,
                seed: int = 0, device: Any = None) -> ProbeResult:
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

    Returns
    -------
    ProbeResult
        ``history`` columns ``epoch``, ``loss``, ``train_accuracy``, ``val_accuracy``
        (accuracies of the probe in eval mode, i.e. without dropout).
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    y = np.asarray(y, dtype=np.int64)
    if len(y) != len(x):
        raise ValueError(f"y: has {len(y)} labels but x has {len(x)} examples")
    train_idx, val_idx = np.asarray(train_idx), np.asarray(val_idx)
    if train_idx.size == 0 or val_idx.size == 0:
        raise ValueError("train_idx/val_idx: both splits need examples (see probe_split)")
    k = int(n_groups) if n_groups is not None else int(y.max()) + 1
    if y[train_idx].min() < 0 or y[train_idx].max() >= k:
        raise ValueError(f"y: group ids must lie in 0..{k - 1}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs: expected a positive integer, got {epochs!r}")
    device = torch.device(device) if device is not None else get_device()
    n_features = int(np.prod(x.shape[1:]))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    probe = LinearProbe(n_features, k, dropout).to(device)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    # small training sets fit in memory: load once instead of re-reading the memmap every epoch
    in_memory = len(train_idx) * n_features * 4 <= 2**30
    xtr = _rows(x, train_idx).to(device) if in_memory else None
    ytr = torch.from_numpy(y[train_idx]).to(device)
    rows = []
    # tiny activations (e.g. of a random network) drive Adam's state into denormal floats,
    # which are ~100x slower on CPU; flushing them to zero changes nothing measurable
    torch.set_flush_denormal(True)
    for epoch in range(epochs):
        probe.train()
        perm = torch.randperm(len(train_idx), generator=gen).numpy()
        total, seen = 0.0, 0
        for i in range(0, len(perm), batch_size):
            b = perm[i:i + batch_size]
            xb = xtr[torch.from_numpy(b).to(device)] if in_memory else _rows(x, train_idx[b]).to(device)
            loss = F.cross_entropy(probe(xb), ytr[torch.from_numpy(b).to(device)])
            opt.zero_grad(set_to_none=True)
            (loss + probe.penalty(l1, l2)).backward()
            opt.step()
            total += float(loss.detach()) * len(b)
            seen += len(b)
        if in_memory:
            with torch.no_grad():
                probe.eval()
                tr_pred = torch.cat([probe(xtr[i:i + 4096]).argmax(1) for i in
                                     range(0, len(xtr), 4096)]).cpu().numpy()
        else:
            tr_pred = _predict(probe, x, train_idx, device, 1024)
        va_pred = _predict(probe, x, val_idx, device, 1024)
        rows.append({"epoch": epoch + 1, "loss": total / seen,
                     "train_accuracy": float((tr_pred == y[train_idx]).mean()),
                     "val_accuracy": float((va_pred == y[val_idx]).mean())})
    return ProbeResult(probe.cpu(), pd.DataFrame(rows), k, tr_pred, va_pred)


def probe_layers(store: Any, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, *,
                 layers: Sequence[str] | None = None, reductions: Sequence[str] | None = None,
                 show_progress: bool = False, **kwargs: Any) -> tuple[pd.DataFrame, dict]:
    """Train one probe per (layer, reduction) of an :class:`~fairlib.activations.ActivationStore`.

    Returns
    -------
    summary : pandas.DataFrame
        One row per probe: ``reduction``, ``layer_index`` (0 = input), ``layer``,
        ``n_features``, ``train_accuracy``, ``val_accuracy``, ``chance``.
    results : dict
        ``(reduction, layer) -> ProbeResult`` (learning curves, predictions).
    """
    from fairlib.notebook import progress

    layers = list(layers) if layers is not None else list(store.layers)
    reductions = list(reductions) if reductions is not None else list(store.reductions)
    jobs = [(r, i, layer) for r in reductions for i, layer in enumerate(layers)]
    results, rows = {}, []
    for r, i, layer in (progress(jobs, desc="probes") if show_progress else jobs):
        x = store.get(layer, r)
        res = train_probe(x, y, train_idx, val_idx, **kwargs)
        results[(r, layer)] = res
        rows.append({"reduction": r, "layer_index": i, "layer": layer,
                     "n_features": int(np.prod(x.shape[1:])), "train_accuracy": res.train_accuracy,
                     "val_accuracy": res.val_accuracy, "chance": res.chance})
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
    t, p = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
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


class SmallCNN(nn.Module):
    """Four conv blocks (conv-BN-ReLU, the first three max-pooled), global average pool, linear.

    Layer names match the ``"small_cnn"`` preset of :mod:`fairlib.activations`.
    """

    def __init__(self, n_outputs: int, widths: Sequence[int] = (16, 32, 64, 64), in_channels: int = 3):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths: expected four channel counts, got {widths!r}")
        c = in_channels
        for i, w in enumerate(widths):
            layers = [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            setattr(self, f"block{i + 1}", nn.Sequential(*layers))
            c = w
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 5):
            x = getattr(self, f"block{i}")(x)
        return self.head(self.pool(x))


def train_small_cnn(images: torch.Tensor, targets: torch.Tensor, *, epochs: int = 3,
                    batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
                    device: Any = None) -> tuple[SmallCNN, list[float]]:
    """Train a :class:`SmallCNN` on multi-label binary ``targets`` ``(N, T)`` (BCE, Adam).

    ``images`` are ``uint8`` or float ``(N, 3, H, W)``. Returns the model (eval mode) and the
    mean loss of each epoch.
    """
    if targets.dim() != 2 or len(targets) != len(images):
        raise ValueError("targets: expected (N, T) binary labels matching images")
    device = torch.device(device) if device is not None else get_device()
    torch.manual_seed(seed)
    model = SmallCNN(targets.shape[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(images), generator=gen)
        total = 0.0
        for i in range(0, len(perm), batch_size):
            b = perm[i:i + batch_size]
            xb = images[b].to(device)
            xb = xb.float() / 255 if xb.dtype == torch.uint8 else xb.float()
            loss = F.binary_cross_entropy_with_logits(model(xb), targets[b].float().to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        losses.append(total / len(images))
    return model.eval(), losses
