r"""Gradual magnitude pruning and the bias countermeasures of Iofinova, Peste & Alistarh (CVPR 2023).

Pruning uses PyTorch's own reparametrisation (:mod:`torch.nn.utils.prune`): every pruned layer
keeps ``weight_orig`` and a ``weight_mask`` buffer, and a forward pre-hook multiplies them, so
pruned weights stay exactly zero through any number of optimizer steps.
:func:`make_permanent` folds the masks into plain weights for export.

=====================================  ===================================================================
function                               paper
=====================================  ===================================================================
:func:`cubic_sparsity`                 the gradual (cubic) sparsity schedule of GMP (Zhu & Gupta), Sec. 2.4
:func:`global_magnitude_prune`         global magnitude pruning over all conv/linear weights, Sec. 2.4
:func:`nm_prune`                       N:M semi-structured masks (2:4, 1:4, 1:8), Sec. 2.4 / App. F
:func:`train_gmp`                      GMP-RI (from random init, SGD) and GMP-PT (from dense, Adam)
:func:`calibrate_thresholds`           per-attribute threshold calibration, Sec. 4.1
:func:`compression_identified_exemplars`  CIEs: modal dense label ≠ modal sparse label, Sec. 4.2
:func:`override_uncertain`             overrides of the most uncertain examples, Sec. 4.2
=====================================  ===================================================================

The metrics (BA, TCB, uncertainty, ECE, label interrelation) live in :mod:`fairlib.metrics`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn
from torch.nn.utils import prune

from fairlib._validation import as_matrix, binary, positive_int
from fairlib.training import Callback, TrainState, cosine_schedule, make_optimizer, supervised_step, train

__all__ = [
    "cubic_sparsity",
    "pruning_steps",
    "prunable_weights",
    "measure_sparsity",
    "is_pruned",
    "global_magnitude_prune",
    "nm_prune",
    "make_permanent",
    "clone_model",
    "train_multilabel",
    "train_gmp",
    "calibrate_thresholds",
    "apply_thresholds",
    "modal_prediction",
    "compression_identified_exemplars",
    "most_uncertain",
    "override_uncertain",
]

_PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


# --------------------------------------------------------------------------- schedule
def cubic_sparsity(step: float, *, final: float, start: float, end: float, initial: float = 0.05) -> float:
    r"""Sparsity target of the cubic GMP schedule at ``step`` (an epoch or an iteration).

    .. math::

        s(t) = s_f - (s_f - s_i)\Bigl(1 - \frac{t - t_0}{t_1 - t_0}\Bigr)^3,
        \qquad t_0 \le t \le t_1,

    0 before ``start`` and ``final`` after ``end``. Pruning fast early and slowly late gives the
    network time to recover from the last, most damaging, steps.

    Parameters
    ----------
    step
        The current step :math:`t`.
    final, initial
        :math:`s_f` and :math:`s_i`, fractions in [0, 1) with ``initial <= final``.
    start, end
        :math:`t_0 < t_1`.
    """
    for name, v in (("final", final), ("initial", initial)):
        if not 0.0 <= float(v) < 1.0:
            raise ValueError(f"{name}: expected a sparsity fraction in [0, 1), got {v!r} (99% is 0.99)")
    if initial > final:
        raise ValueError(f"initial: {initial} exceeds final {final}; the schedule only increases sparsity")
    if not end > start:
        raise ValueError(f"end: must be after start, got start={start}, end={end}")
    if step < start:
        return 0.0
    if step >= end:
        return float(final)
    frac = (step - start) / (end - start)
    return float(final - (final - initial) * (1.0 - frac) ** 3)


def pruning_steps(*, final: float, start: int, end: int, frequency: int = 1,
                  initial: float = 0.05) -> list[tuple[int, float]]:
    """The ``(epoch, sparsity)`` pruning steps: every ``frequency`` epochs from ``start`` to ``end`` inclusive."""
    frequency = positive_int(frequency, "frequency", meaning="(epochs between pruning steps)")
    steps = list(range(int(start), int(end) + 1, int(frequency)))
    if steps[-1] != end:
        steps.append(int(end))  # always reach the final sparsity
    return [(t, cubic_sparsity(t, final=final, start=start, end=end, initial=initial)) for t in steps]


# --------------------------------------------------------------------------- masks
def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, "weight")`` for every convolution and linear layer; biases and norm layers are excluded."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    params = [(m, "weight") for m in model.modules() if isinstance(m, _PRUNABLE)]
    if not params:
        raise ValueError("model: has no Conv or Linear layers to prune")
    return params


def is_pruned(module: nn.Module) -> bool:
    """True when ``module.weight`` is reparametrised by :mod:`torch.nn.utils.prune`."""
    return hasattr(module, "weight_mask")


@torch.no_grad()
def measure_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero effective weights over all prunable weights (biases and norms excluded)."""
    params = prunable_weights(model)
    zeros = sum(int((getattr(m, n) == 0).sum()) for m, n in params)
    total = sum(getattr(m, n).numel() for m, n in params)
    return zeros / total


def _check_fraction(value: float, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}") from None
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name}: expected a fraction in [0, 1), got {value!r} (write 99% as 0.99)")
    return v


@torch.no_grad()
def global_magnitude_prune(model: nn.Module, sparsity: float) -> float:
    """Prune all conv/linear weights to a global ``sparsity`` by one magnitude ranking.

    All prunable weights (:func:`prunable_weights`) compete in a single ranking of ``|w|``, so
    layers lose different fractions (``prune.global_unstructured`` with
    ``prune.L1Unstructured``). On an already pruned model only the surviving weights are
    ranked, and exactly enough of them are removed to reach the new *global* target: the
    amount is passed as an absolute count, because a fractional amount would be applied to the
    survivors and compound.

    Parameters
    ----------
    model
        Modified in place; masks persist through training.
    sparsity
        Target fraction of zero weights in [0, 1); it may not be below the current sparsity.

    Returns
    -------
    float
        The measured sparsity over the prunable weights (:func:`measure_sparsity`).
    """
    target = _check_fraction(sparsity, "sparsity")
    params = prunable_weights(model)
    total = sum(getattr(m, n).numel() for m, n in params)
    already = sum(int((m.weight_mask == 0).sum()) for m, n in params if is_pruned(m))
    wanted = int(round(target * total))
    if wanted < already:
        raise ValueError(
            f"sparsity: the model is already {already / total:.4f} sparse; pruning cannot go back to "
            f"{target} (start again from the dense model)"
        )
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=wanted - already)
    return measure_sparsity(model)


@torch.no_grad()
def nm_prune(model: nn.Module, n: int, m: int, *, skip_incompatible: bool = True) -> float:
    """N:M semi-structured pruning: keep the ``n`` largest of every ``m`` consecutive input weights.

    Groups run along the input dimension (input features of a linear layer; input channels of
    a convolution, at each output channel and kernel position), the layout sparse tensor cores
    accelerate. Masks are installed with ``prune.custom_from_mask``.

    Parameters
    ----------
    model
        An unpruned model (call :func:`make_permanent` first otherwise); modified in place.
    n, m
        ``1 <= n < m``, e.g. 2:4, 1:4, 1:8.
    skip_incompatible
        Leave dense the layers whose input dimension is not a multiple of ``m`` (e.g. an RGB
        stem with 3 input channels), as NVIDIA's tooling does; ``False`` raises instead.

    Returns
    -------
    float
        The measured sparsity over all prunable weights (below ``1 - n/m`` when layers were skipped).
    """
    if not all(isinstance(v, (int, np.integer)) for v in (n, m)) or not 1 <= n < m:
        raise ValueError(f"n, m: need integers with 1 <= n < m (e.g. 2:4), got {n}:{m}")
    for module, name in prunable_weights(model):
        if is_pruned(module):
            raise ValueError("model: is already pruned; call make_permanent(model) before nm_prune")
        w = module.weight
        c_in = w.shape[1]
        if c_in % m:
            if skip_incompatible:
                continue
            raise ValueError(
                f"m: layer {type(module).__name__}{tuple(w.shape)} has {c_in} inputs, not a multiple of {m}; "
                "pass skip_incompatible=True to leave it dense"
            )
        # (out, in, *k) -> (out, *k, in) so that groups of m are consecutive input channels
        moved = w.movedim(1, -1)
        groups = moved.abs().reshape(-1, m)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(1, groups.topk(n, dim=1).indices, True)
        mask = keep.reshape(moved.shape).movedim(-1, 1).to(w.dtype)
        prune.custom_from_mask(module, name, mask)
    return measure_sparsity(model)


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy that works on pruned models after training.

    A forward pass leaves each pruned ``weight`` as a non-leaf tensor (``weight_orig * mask``),
    which ``copy.deepcopy`` refuses; it is recomputed here without a graph first (the next
    forward pass recomputes it anyway).
    """
    with torch.no_grad():
        for module in model.modules():
            if is_pruned(module):
                module.weight = module.weight_orig * module.weight_mask
    return copy.deepcopy(model)


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every pruning mask into a plain ``weight`` (``prune.remove``) for export; returns ``model``."""
    for module, name in prunable_weights(model):
        if is_pruned(module):
            prune.remove(module, name)
    return model


# --------------------------------------------------------------------------- training
def _check_data(x: torch.Tensor, y: torch.Tensor) -> None:
    if not torch.is_tensor(x) or not torch.is_tensor(y):
        raise ValueError("x, y: expected torch tensors (images (N, C, H, W) and 0/1 labels (N,) or (N, K))")
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"x, y: need the same number (>= 2) of examples, got {len(x)} and {len(y)}")


def train_multilabel(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: float, lr: float,
                     optimizer: str | torch.optim.Optimizer = "sgd", weight_decay: float = 5e-4,
                     batch_size: int = 128, seed: int = 0, cosine: bool = True) -> torch.optim.Optimizer:
    """Train with binary cross-entropy, one logit per attribute (the paper's loss).

    ``epochs`` may be fractional (a short fine-tune of a few batches). The learning rate follows
    a cosine decay over the run when ``cosine``. ``optimizer`` is ``"sgd"`` (Nesterov momentum),
    ``"adam"`` or an optimiser to keep training with. Returns the optimizer, so a caller can keep
    its state. uint8 images are scaled to [0, 1] batch by batch.
    """
    _check_data(x, y)
    if isinstance(optimizer, str):
        opt = make_optimizer(model.parameters(), optimizer, lr=lr, weight_decay=weight_decay)
    else:
        opt = optimizer
        for g in opt.param_groups:
            g["lr"] = lr
    device = next(model.parameters()).device
    train(model, (x, y), epochs=epochs, batch_size=batch_size, optimizer=opt, step=supervised_step("bce"),
          schedule=cosine_schedule if cosine else None, seed=seed, device=device)
    return opt


class _GradualPruning(Callback):
    """GMP's mask schedule: at each pruning epoch, snapshot the targets the step passes, then prune."""

    def __init__(self, steps: dict[int, float], targets: list[float], snapshot: Callable[[float, nn.Module, int], None],
                 seed: int):
        self.steps, self.targets, self.snapshot, self.seed = steps, targets, snapshot, seed
        self.current = 0.0
        self.taken: list[float] = []

    def on_epoch_start(self, state: TrainState) -> None:
        s = self.steps.get(state.epoch)
        if s is None:
            return
        for t in self.targets[:-1]:
            if self.current < t <= s and t not in self.taken:
                self.taken.append(t)
                self.snapshot(t, state.model, self.seed + 7919 * len(self.taken))
        if s > self.current:
            self.current = s
            # momentum buffers of removed weights are irrelevant: the mask zeroes them in forward
            global_magnitude_prune(state.model, s)


def train_gmp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, targets: Sequence[float],
              epochs: int, start: int, end: int, frequency: int = 1, lr: float = 0.1,
              variant: str = "ri", initial: float = 0.05, finetune_epochs: float = 0.5,
              finetune_lr: float | None = None, weight_decay: float = 5e-4, batch_size: int = 128,
              seed: int = 0, callback: Callable[[float, nn.Module], Any] | None = None) -> dict[float, nn.Module]:
    """One gradual magnitude pruning run that yields a model at every target sparsity.

    Training runs for ``epochs`` epochs; at each pruning step (:func:`pruning_steps`, with
    ``final = max(targets)``) the model is pruned globally to the cubic schedule's value. Each
    target that the schedule passes at a step is *snapshotted*: a copy of the model just before
    that step is pruned to exactly the target and fine-tuned for ``finetune_epochs``; the main
    run goes on. One run thus replaces one run per sparsity level (cheaper, and the sparse
    models share their trajectory, as in the paper's schedule; the last one is the run's end).

    Parameters
    ----------
    model
        ``variant="ri"`` (GMP-RI): a freshly initialised model, trained with SGD at ``lr``.
        ``variant="pt"`` (GMP-PT): a trained dense model, fine-tuned with Adam at ``lr``
        (use a lower rate, e.g. 1e-3); ``start`` may then be 0.
    targets
        Sparsities to return, fractions in [0, 1).
    epochs, start, end, frequency, initial
        The schedule: prune every ``frequency`` epochs from ``start`` to ``end`` (< ``epochs``).
    callback
        Called as ``callback(sparsity, snapshot)`` for each finished snapshot.

    Returns
    -------
    dict
        ``{target: pruned model}``, masks still attached: deep copies, except the highest
        target, which is ``model`` itself at the end of the run.
    """
    _check_data(x, y)
    tgts = sorted({_check_fraction(t, "targets") for t in targets})
    if not tgts:
        raise ValueError("targets: give at least one sparsity")
    if variant not in ("ri", "pt"):
        raise ValueError(f"variant: unknown GMP variant {variant!r}; choose 'ri' (random init) or 'pt' (pretrained)")
    if not 0 <= start < end < epochs:
        raise ValueError(f"start, end, epochs: need 0 <= start < end < epochs, got {start}, {end}, {epochs}")
    opt_name = "sgd" if variant == "ri" else "adam"
    ft_lr = finetune_lr if finetune_lr is not None else (lr / 10 if variant == "ri" else lr)
    schedule = dict(pruning_steps(final=tgts[-1], start=start, end=end, frequency=frequency,
                                  initial=min(initial, tgts[-1])))
    snapshots: dict[float, nn.Module] = {}

    def snapshot(target: float, base: nn.Module, sd: int) -> None:
        snap = clone_model(base)
        global_magnitude_prune(snap, target)
        if finetune_epochs > 0:
            train_multilabel(snap, x, y, epochs=finetune_epochs, lr=ft_lr, optimizer=opt_name,
                             weight_decay=weight_decay, batch_size=batch_size, seed=sd)
        snapshots[target] = snap
        if callback is not None:
            callback(target, snap)

    def rate(state: TrainState) -> float:  # constant, then a linear decay over the epochs after pruning
        return 1.0 if state.epoch <= end else (epochs - state.epoch) / (epochs - end)

    train(model, (x, y), epochs=epochs, batch_size=batch_size,
          optimizer=lambda m: make_optimizer(m.parameters(), opt_name, lr=lr, weight_decay=weight_decay),
          step=supervised_step("bce"), schedule=rate,
          callbacks=[_GradualPruning(schedule, tgts, snapshot, seed)], seed=seed,
          device=next(model.parameters()).device)
    snapshots[tgts[-1]] = model
    if callback is not None:
        callback(tgts[-1], model)
    return dict(sorted(snapshots.items()))


# --------------------------------------------------------------------------- countermeasures
def calibrate_thresholds(val_logits: Any, val_labels: Any) -> np.ndarray:
    """Per-attribute decision thresholds that match the validation positive rate (Sec. 4.1).

    For attribute ``j`` with ``k_j`` validation positives the threshold is the ``k_j``-th largest
    validation logit; predictions are ``logit > threshold`` (:func:`apply_thresholds`).
    The threshold ignores identity categories (it is not a fairness-aware adjustment).

    Edge cases and ties: the ``k``-th example itself sits *on* the threshold and is predicted
    negative, so the validation set gets ``k - 1`` positives when logits are distinct (and fewer
    if several logits tie at the threshold: all tied examples are negative). With ``k = 0`` the
    threshold is the largest validation logit, so no validation example is predicted positive
    but a higher test logit still can be; with ``k = N`` it is the smallest logit.

    Parameters
    ----------
    val_logits
        Shape ``(N, K)`` (or ``(N,)``): validation logits (any monotone score works).
    val_labels
        Same shape, 0/1.

    Returns
    -------
    numpy.ndarray
        Shape ``(K,)``.
    """
    z = as_matrix(val_logits, "val_logits").astype(np.float64)
    y = binary(as_matrix(val_labels, "val_labels"), "val_labels")
    if z.shape != y.shape:
        raise ValueError(f"val_logits, val_labels: shapes differ, {z.shape} vs {y.shape}")
    if not np.isfinite(z).all():
        raise ValueError("val_logits: contains infinite values")
    k = y.sum(axis=0)
    desc = -np.sort(-z, axis=0)  # each column sorted from largest to smallest
    idx = np.maximum(k - 1, 0)   # k = 0 -> the largest logit
    return desc[idx, np.arange(z.shape[1])]


def apply_thresholds(logits: Any, thresholds: Any) -> np.ndarray:
    """Hard predictions ``logit > threshold`` per attribute; shape ``(N, K)``."""
    z = as_matrix(logits, "logits").astype(np.float64)
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if t.shape[0] != z.shape[1]:
        raise ValueError(f"thresholds: expected {z.shape[1]} (one per attribute), got {t.shape[0]}")
    return (z > t[None, :]).astype(np.int64)


def _runs(preds: Any, name: str) -> np.ndarray:
    arr = preds.detach().cpu().numpy() if torch.is_tensor(preds) else np.asarray(preds)
    if arr.ndim not in (2, 3) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name}: expected shape (runs, N) or (runs, N, K) of hard predictions, got {arr.shape}")
    return arr


def modal_prediction(preds: Any) -> np.ndarray:
    """The most common label across runs (axis 0); ties go to the smallest label (``scipy.stats.mode``)."""
    arr = _runs(preds, "preds")
    return stats.mode(arr, axis=0, keepdims=False).mode


def compression_identified_exemplars(dense_preds: Any, sparse_preds: Any) -> np.ndarray:
    """Compression-identified exemplars (Hooker et al.; Iofinova et al., Sec. 4.2).

    An example (per attribute) is a CIE when the modal prediction of the dense runs differs from
    the modal prediction of the sparse runs, whether or not either is correct. Use an odd number
    of runs for binary labels to avoid ties (ties go to the smaller label).

    Parameters
    ----------
    dense_preds, sparse_preds
        Shape ``(R_dense, N)`` / ``(R_sparse, N)``, or with a trailing attribute axis ``K``.

    Returns
    -------
    numpy.ndarray
        Boolean, shape ``(N,)`` or ``(N, K)``.
    """
    d = _runs(dense_preds, "dense_preds")
    s = _runs(sparse_preds, "sparse_preds")
    if d.shape[1:] != s.shape[1:]:
        raise ValueError(f"dense_preds, sparse_preds: per-run shapes differ, {d.shape[1:]} vs {s.shape[1:]}")
    return modal_prediction(d) != modal_prediction(s)


def most_uncertain(probs: Any, fraction: float) -> np.ndarray:
    """Boolean mask of the ``round(fraction·N)`` examples with the smallest ``|p − 0.5|``, per column.

    Ties in uncertainty go to the earlier example (a stable sort), so the mask is deterministic.
    """
    p = as_matrix(probs, "probs").astype(np.float64)
    if (p < 0).any() or (p > 1).any():
        raise ValueError("probs: probabilities must lie in [0, 1] (apply a sigmoid to logits first)")
    f = float(fraction)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"fraction: expected a fraction in [0, 1] (5% is 0.05), got {fraction!r}")
    n = int(round(f * p.shape[0]))
    order = np.argsort(np.abs(p - 0.5), axis=0, kind="stable")[:n]
    mask = np.zeros(p.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=0)
    return mask


def override_uncertain(sparse_preds: Any, dense_probs: Any, replacement: Any,
                       fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Replace the sparse model's predictions on the most uncertain examples (Sec. 4.2).

    Uncertainty comes from the *dense* model (:func:`most_uncertain` on ``dense_probs``), so the
    override list can be shipped with any compressed model. ``replacement`` is the true label
    (a "human" override) or the dense model's label.

    Parameters
    ----------
    sparse_preds, replacement
        Shape ``(N,)`` or ``(N, K)``, 0/1.
    dense_probs
        Same shape, dense sigmoid outputs in [0, 1].
    fraction
        Share of examples overridden per attribute, e.g. 0.05.

    Returns
    -------
    (preds, mask)
        The new predictions and the boolean mask of overridden entries, both ``(N, K)``.
    """
    sp = binary(as_matrix(sparse_preds, "sparse_preds"), "sparse_preds")
    rep = binary(as_matrix(replacement, "replacement"), "replacement")
    dp = as_matrix(dense_probs, "dense_probs")
    if not sp.shape == rep.shape == dp.shape:
        raise ValueError(
            f"sparse_preds, dense_probs, replacement: shapes differ, {sp.shape}, {dp.shape}, {rep.shape}"
        )
    mask = most_uncertain(dp, fraction)
    return np.where(mask, rep, sp), mask
