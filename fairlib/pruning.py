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
:func:`train_gmp`                      GMP-RI (random init, SGD) and GMP-PT (from dense, Adam), one run per sparsity
:func:`training_budget`                each model's epochs and optimiser steps (equal across sparsities)
:func:`pair_tests`                     which attribute-identity pairs are significantly associated (BA's pairs)
:func:`calibrate_thresholds`           per-attribute threshold calibration, Sec. 4.1
:func:`compression_identified_exemplars`  CIEs: modal dense label ≠ modal sparse label, Sec. 4.2
:func:`override_uncertain`             overrides of the most uncertain examples, Sec. 4.2
=====================================  ===================================================================

The metrics (BA, TCB, uncertainty, ECE, label interrelation) live in :mod:`fairlib.metrics`;
:func:`summarise` and :func:`ba_table` apply them to one model's outputs.

Chapter 5's experiments (registered with :mod:`fairlib.sweep`): :func:`run_seed` trains and
measures one seed (dense joint and single-attribute models, one GMP run per sparsity, N:M masks,
countermeasures), :func:`run_backdoor` plants a trigger; :func:`main_grid` and
:func:`backdoor_grid` hold their configurations per profile, and the ``*_table`` functions turn
the sweeps' frames into the chapter's tables.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import special, stats
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn.utils import prune

from fairlib import metrics, sweep
from fairlib._memo import Memo
from fairlib._validation import (
    as_1d,
    as_binary,
    as_matrix,
    binary,
    integer,
    number,
    positive_int,
    renamed,
    same_length,
    show,
    to_numpy,
)
from fairlib.config import get_device
from fairlib.data.cache import file_backed_copy
from fairlib.models import build_model
from fairlib.training import (
    Callback,
    KeepBest,
    TrainState,
    augment_batch,
    cosine_schedule,
    cpu_threads,
    gather_rows,
    make_optimizer,
    predict,
    supervised_step,
    train,
    warmup_cosine_schedule,
)

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
    "train_steps",
    "training_budget",
    "two_proportion_pvalue",
    "pair_tests",
    "cie_examples",
    "mitigation_effects",
    "mean_interval",
    "calibrate_thresholds",
    "apply_thresholds",
    "modal_prediction",
    "compression_identified_exemplars",
    "most_uncertain",
    "override_uncertain",
    "AttributeSplits",
    "load_attribute_splits",
    "build_multilabel_model",
    "sigmoid",
    "ba_table",
    "mean_ba",
    "worst_ba",
    "SUMMARY_METRICS",
    "summarise",
    "stamp",
    "backdoor_flags",
    "backdoor_row",
    "SPARSITIES",
    "run_seed",
    "run_backdoor",
    "main_grid",
    "backdoor_grid",
    "ba_cube",
    "sparsity_table",
    "dense_ba_table",
    "worst_ba_table",
    "single_table",
    "cie_table",
    "mitigation_table",
    "nm_table",
    "backdoor_table",
]

_PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _real(value: Any, name: str, *, minimum: float | None = None, meaning: str = "") -> Any:
    """``value`` unchanged when it is a finite real number (``>= minimum``), else a ``ValueError`` naming ``name``."""
    number(value, name, low=minimum, meaning=meaning,
           expected="a finite number" if minimum is None else f"a finite number >= {minimum}")
    return value


def _whole(value: Any, name: str, *, minimum: int = 0, meaning: str = "") -> int:
    """A whole number ``>= minimum`` (an int, or a float such as ``10.0``) as an ``int``."""
    _real(value, name, meaning=meaning)
    if float(value) != int(value) or value < minimum:
        kind = "a positive" if minimum == 1 else "a non-negative" if minimum == 0 else f">= {minimum}"
        raise ValueError(f"{name}: expected {kind} whole number{' ' + meaning if meaning else ''}, got {value!r}")
    return int(value)


def _module(model: Any, name: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ValueError(f"{name}: expected a torch.nn.Module, got {type(model).__name__}")
    return model


def _sequence(values: Any, name: str, example: str) -> list:
    """A list from a list/tuple/array; a single value or a string is refused with the fix."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray, pd.Series)):
        raise ValueError(f"{name}: expected a list, got {values!r}; write e.g. {example}")
    return list(values)


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
        try:
            fv = float(v)
        except (TypeError, ValueError):
            fv = float("nan")
        if not 0.0 <= fv < 1.0:
            raise ValueError(f"{name}: expected a sparsity fraction in [0, 1), got {v!r} (99% is 0.99)")
    for name, v in (("step", step), ("start", start), ("end", end)):
        _real(v, name)
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
    _whole(start, "start", meaning="(first pruning epoch)")
    _whole(end, "end", meaning="(last pruning epoch)")
    if not end > start:
        raise ValueError(f"end: must be after start, got start={start}, end={end}")
    steps = list(range(int(start), int(end) + 1, int(frequency)))
    if steps[-1] != end:
        steps.append(int(end))  # always reach the final sparsity
    return [(t, cubic_sparsity(t, final=final, start=start, end=end, initial=initial)) for t in steps]


# --------------------------------------------------------------------------- masks
def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, "weight")`` for every convolution and linear layer; biases and norm layers are excluded."""
    _module(model)
    params = [(m, "weight") for m in model.modules() if isinstance(m, _PRUNABLE)]
    if not params:
        raise ValueError("model: has no Conv or Linear layers to prune")
    return params


def is_pruned(module: nn.Module) -> bool:
    """True when ``module.weight`` is reparametrised by :mod:`torch.nn.utils.prune`."""
    _module(module, "module")
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
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in (n, m)) \
            or not 1 <= n < m:
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
    _module(model)
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "weight_mask"):
                module.weight = module.weight_orig * module.weight_mask
    return copy.deepcopy(model)


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every pruning mask into a plain ``weight`` (``prune.remove``) for export; returns ``model``."""
    for module, name in prunable_weights(model):
        if is_pruned(module):
            prune.remove(module, name)
    return model


# --------------------------------------------------------------------------- training
def _check_data(model: Any, x: torch.Tensor, y: torch.Tensor) -> None:
    _module(model)
    if not torch.is_tensor(x) or not torch.is_tensor(y):
        raise ValueError("x, y: expected torch tensors (images (N, C, H, W) and 0/1 labels (N,) or (N, K))")
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"x, y: need the same number (>= 2) of examples, got {len(x)} and {len(y)}")
    if y.dim() not in (1, 2):
        raise ValueError(f"y: expected 0/1 labels of shape (N,) or (N, K), got {tuple(y.shape)}")
    binary(y.detach().cpu().numpy(), "y")


#: Attribute a trained model carries: optimiser steps taken since its initialisation (summed over
#: :func:`train_multilabel` and :func:`train_gmp` calls; copies made by :func:`clone_model` keep it).
STEPS_ATTRIBUTE = "fairlib_train_steps"


def train_steps(model: nn.Module) -> int:
    """Optimiser steps ``model`` has taken since initialisation (0 for an untrained model)."""
    _module(model)
    return int(getattr(model, STEPS_ATTRIBUTE, 0))


def _add_steps(model: nn.Module, history: pd.DataFrame) -> None:
    done = int(history["step"].iloc[-1]) if len(history) else 0
    setattr(model, STEPS_ATTRIBUTE, train_steps(model) + done)


def _augmenter(augment: int | None) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
    """``None``, or random crops (padding ``augment`` pixels) with horizontal flips."""
    if augment is None:
        return None
    if isinstance(augment, bool) or not isinstance(augment, (int, np.integer)) or augment < 0:
        raise ValueError(f"augment: expected None (no augmentation) or a padding in pixels >= 0 for random crops "
                         f"with flips, got {augment!r}")
    return functools.partial(augment_batch, pad=int(augment))


def val_accuracy(x: torch.Tensor, y: Any) -> Callable[[nn.Module], float]:
    """A score for :class:`fairlib.training.KeepBest`: mean accuracy over attributes at logit 0.

    ``x``: validation images ``(N, C, H, W)``; ``y``: their 0/1 labels ``(N, K)``. The authors
    keep the epoch of highest validation accuracy (``policies/manager.py``).
    """
    labels = np.asarray(y)
    if labels.ndim != 2 or len(labels) != len(x):
        raise ValueError(f"val: expected images (N, C, H, W) and labels (N, K) of the same N, got {len(x)} images "
                         f"and labels of shape {labels.shape}")

    def score(model: nn.Module) -> float:
        return float(((_logits(model, x) > 0) == labels).mean())

    return score


def selection_split(images: Any, labels: Any, n: int | None, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """The validation images that choose each model's best epoch: all of them, or a random ``n``.

    ``images`` ``(N, C, H, W)`` (a tensor or memory map) and ``labels`` ``(N, K)``; ``n=None`` (or
    ``n >= N``) keeps the whole split. The subset (drawn with ``seed``, in the split's order) only
    ranks epochs; thresholds and pair selection still use the whole validation split.
    """
    labels = np.asarray(labels)
    rows = _selection_rows(len(labels), n, seed)
    return (images, labels) if rows is None else (gather_rows(images, rows), labels[rows])


def _selection_rows(n_total: int, n: int | None, seed: int) -> np.ndarray | None:
    """The rows :func:`selection_split` keeps (sorted), or ``None`` for all of them."""
    if n is None or positive_int(n, "select_on", meaning="(validation images that rank epochs)") >= n_total:
        return None
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])


def train_multilabel(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: float, lr: float,
                     optimizer: str | torch.optim.Optimizer = "sgd", weight_decay: float = 5e-4,
                     batch_size: int = 128, seed: int = 0, cosine: bool = True,
                     warmup_epochs: float = 0.0, augment: int | None = None, momentum: float = 0.9,
                     val: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.optim.Optimizer:
    """Train with binary cross-entropy, one logit per attribute (the paper's loss).

    ``epochs`` may be fractional (a short fine-tune of a few batches). The learning rate follows
    a cosine decay over the run when ``cosine``, after a linear warm-up of ``warmup_epochs``
    (:func:`fairlib.training.warmup_cosine_schedule`; the authors warm up for 5 of 100 epochs).
    ``optimizer`` is ``"sgd"`` (Nesterov momentum), ``"adam"`` or an optimiser to keep training
    with. Returns the optimizer, so a caller can keep its state. uint8 images are scaled to [0, 1]
    batch by batch. ``augment``: ``None`` (no augmentation) or a padding in pixels for random
    crops with horizontal flips (:func:`fairlib.training.augment_batch`; 0: flips only). The steps
    taken are added to the model's count (:func:`train_steps`). ``momentum``: SGD's (Nesterov when
    positive; the authors' 0.875). ``val``: ``(images, labels)`` of a validation split; the model
    then ends with the weights of its epoch of highest mean validation accuracy
    (:func:`val_accuracy`, :class:`fairlib.training.KeepBest`), the paper's checkpoint rule.
    """
    _check_data(model, x, y)
    _real(warmup_epochs, "warmup_epochs", minimum=0, meaning="(0: no warm-up)")
    step = supervised_step("bce", augment=_augmenter(augment))
    callbacks = [KeepBest(val_accuracy(*val))] if val is not None else []
    if isinstance(optimizer, str):
        opt = make_optimizer(model.parameters(), optimizer, lr=lr, weight_decay=weight_decay, momentum=momentum)
    else:
        opt = optimizer
        for g in opt.param_groups:
            g["lr"] = lr
    device = next(model.parameters()).device
    schedule = (warmup_cosine_schedule(warmup_epochs) if warmup_epochs > 0 else cosine_schedule) if cosine else None
    history = train(model, (x, y), epochs=epochs, batch_size=batch_size, optimizer=opt,
                    step=step, schedule=schedule, callbacks=callbacks, seed=seed, device=device)
    _add_steps(model, history)
    return opt


class _GradualPruning(Callback):
    """GMP's mask schedule: at the start of each pruning epoch, prune globally to the step's sparsity."""

    def __init__(self, steps: dict[int, float]):
        self.steps = steps

    def on_epoch_start(self, state: TrainState) -> None:
        s = self.steps.get(state.epoch)
        if s is not None and s > 0:
            # momentum buffers of removed weights are irrelevant: the mask zeroes them in forward
            global_magnitude_prune(state.model, s)


def train_gmp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, targets: Sequence[float],
              epochs: int, start: int, end: int, frequency: int = 1, lr: float = 0.1,
              variant: str = "ri", initial: float = 0.05, finetune_epochs: float = 0.0,
              warmup_epochs: float = 0.0, augment: int | None = None, weight_decay: float = 5e-4,
              momentum: float = 0.9, batch_size: int = 128, seed: int = 0,
              val: tuple[torch.Tensor, torch.Tensor] | None = None,
              callback: Callable[[float, nn.Module], Any] | None = None) -> dict[float, nn.Module]:
    r"""Gradual magnitude pruning: one complete run per target sparsity, as in the paper's code.

    For each target :math:`s_f` a copy of ``model`` trains for ``epochs + finetune_epochs``
    epochs under one learning-rate schedule (a cosine decay after a linear warm-up of
    ``warmup_epochs``, :func:`fairlib.training.warmup_cosine_schedule`, the authors' ``CosineLR``).
    At the start of each pruning epoch :math:`t` of :func:`pruning_steps` (every ``frequency``
    epochs from ``start`` to ``end``, ``final`` :math:`= s_f`) the copy is pruned globally to
    :math:`s(t) = s_f - (s_f - s_i)(1 - \frac{t - t_0}{t_1 - t_0})^3`; from epoch ``end`` on it
    trains at :math:`s_f`. So every target gets the same number of optimiser steps
    (:func:`training_budget`), and a different sparsity is never a different training length.
    The authors (IST-DASLab/pruned-vision-model-bias, ``run_celeba_resnet18_sparse.sh``) likewise
    run one job per sparsity. A target of 0 trains the same schedule without pruning: a dense
    model with the sparse models' budget.

    Parameters
    ----------
    model
        ``variant="ri"`` (GMP-RI): a freshly initialised model, trained with SGD at ``lr``.
        ``variant="pt"`` (GMP-PT): a trained dense model, trained on with Adam at ``lr``
        (a lower rate than the dense training's, e.g. 1e-3); ``start`` may then be 0.
        ``model`` itself is not changed: each target starts from a copy.
    targets
        Sparsities to return, fractions in [0, 1).
    epochs, start, end, frequency, initial
        The schedule: prune every ``frequency`` epochs from ``start`` to ``end`` (< ``epochs``).
    finetune_epochs
        Further epochs at the target sparsity, in the same run and schedule (0: none).
    augment, momentum, val
        As in :func:`train_multilabel`: ``None`` or the padding of random crops with flips; SGD's
        momentum; a validation split ``(images, labels)`` to keep the epoch of highest mean
        validation accuracy among those at the target sparsity (from epoch ``end`` on, the
        authors' ``best_sparse``).
    callback
        Called as ``callback(sparsity, model)`` for each finished target.

    Returns
    -------
    dict
        ``{target: pruned model}``, masks still attached, in increasing order of sparsity.
    """
    _check_data(model, x, y)
    tgts = sorted({_check_fraction(t, "targets") for t in _sequence(targets, "targets", "[0.9, 0.99]")})
    if not tgts:
        raise ValueError("targets: give at least one sparsity")
    if variant not in ("ri", "pt"):
        raise ValueError(f"variant: unknown GMP variant {variant!r}; choose 'ri' (random init) or 'pt' (pretrained)")
    for name, v in (("epochs", epochs), ("start", start), ("end", end)):
        _whole(v, name)
    _real(finetune_epochs, "finetune_epochs", minimum=0, meaning="(0: no epochs after the schedule)")
    _real(warmup_epochs, "warmup_epochs", minimum=0, meaning="(0: no warm-up)")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback: expected a function callback(sparsity, model) or None, got {callback!r}")
    if not 0 <= start < end < epochs:
        raise ValueError(f"start, end, epochs: need 0 <= start < end < epochs, got {start}, {end}, {epochs}")
    opt_name = "sgd" if variant == "ri" else "adam"
    schedule = warmup_cosine_schedule(warmup_epochs)
    step = supervised_step("bce", augment=_augmenter(augment))
    out: dict[float, nn.Module] = {}
    for target in tgts:
        run = clone_model(model)
        steps = dict(pruning_steps(final=target, start=start, end=end, frequency=frequency,
                                   initial=min(initial, target))) if target > 0 else {}
        keep = [KeepBest(val_accuracy(*val), from_epoch=end)] if val is not None else []
        history = train(run, (x, y), epochs=epochs + finetune_epochs, batch_size=batch_size,
                        optimizer=lambda m: make_optimizer(m.parameters(), opt_name, lr=lr, weight_decay=weight_decay,
                                                           momentum=momentum),
                        step=step, schedule=schedule, callbacks=[_GradualPruning(steps), *keep],
                        seed=seed, device=next(model.parameters()).device)
        _add_steps(run, history)
        out[target] = run
        if callback is not None:
            callback(target, run)
    return out


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
    t = to_numpy(thresholds, "thresholds")
    if t.dtype.kind not in "biuf":
        raise ValueError("thresholds: expected numbers (one per attribute, from calibrate_thresholds), "
                         f"got {type(thresholds).__name__}")
    t = t.astype(np.float64).reshape(-1)
    if not np.isfinite(t).all():
        raise ValueError(f"thresholds: contains {t[~np.isfinite(t)][0]}; pass finite thresholds")
    if t.shape[0] != z.shape[1]:
        raise ValueError(f"thresholds: expected {z.shape[1]} (one per attribute), got {t.shape[0]}")
    return (z > t[None, :]).astype(np.int64)


def _runs(preds: Any, name: str) -> np.ndarray:
    arr = preds.detach().cpu().numpy() if torch.is_tensor(preds) else np.asarray(preds)
    if arr.ndim not in (2, 3) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name}: expected shape (runs, N) or (runs, N, K) of hard predictions, got {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected hard predictions (class codes), got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        frac = ~np.isfinite(arr) | (arr != np.round(arr))
        if frac.any():
            raise ValueError(f"{name}: expected hard predictions (class codes), found {show(arr[frac][0])!r}; "
                             "apply a threshold (logit > 0) or argmax to scores first")
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
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        f = float("nan")
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
    if dp.dtype.kind not in "biuf" or (dp < 0).any() or (dp > 1).any():
        raise ValueError("dense_probs: probabilities must lie in [0, 1] (apply a sigmoid to the dense logits first)")
    if not sp.shape == rep.shape == dp.shape:
        raise ValueError(
            f"sparse_preds, dense_probs, replacement: shapes differ, {sp.shape}, {dp.shape}, {rep.shape}"
        )
    mask = most_uncertain(dp, fraction)
    return np.where(mask, rep, sp), mask


# --------------------------------------------------------------------------- data of the chapter
@dataclass(frozen=True)
class AttributeSplits:
    """A multi-attribute dataset as Chapter 5's models see it (train, val and test splits).

    Attributes
    ----------
    attributes
        The model's targets in output order (the identity categories are targets too, as in the paper).
    identities
        The identity categories (binary columns) that bias amplification is measured against.
    images
        ``{split: uint8 tensor (N, C, H, W)}`` (a memory map for datasets read from files). Shared
        between calls of :func:`load_attribute_splits`: never modify it in place.
    labels
        ``{split: int64 array (N, K)}``, 0/1, columns as in ``attributes``.
    identity
        ``{split: {identity: int64 array (N,)}}``, 0/1.
    """

    attributes: list[str]
    identities: list[str]
    images: dict[str, torch.Tensor]
    labels: dict[str, np.ndarray]
    identity: dict[str, dict[str, np.ndarray]]

    @property
    def image_size(self) -> int:
        """The side of the (square) images."""
        return int(self.images["train"].shape[-1])


_SPLITS = ("train", "val", "test")
_SPLITS_MEMO = Memo(2)  # the run functions of one sweep share one copy of the data


def load_attribute_splits(data: str, data_options: Mapping[str, Any] | None = None,
                          split_options: Mapping[str, Mapping[str, Any]] | None = None, *,
                          drop: Sequence[str] = (), identities: Sequence[str] = (), workers: int = 0,
                          show_progress: bool = False) -> AttributeSplits:
    """Load the train, val and test splits of a multi-attribute dataset once per process.

    Parameters
    ----------
    data
        A name for :func:`fairlib.data.load_dataset` (``"synthfaces"`` in the quick profile,
        ``"celeba"`` in the full one).
    data_options
        Options for every split (e.g. ``{"mode": "multi", "size": 24}``).
    split_options
        Extra options per split, e.g. ``{"train": {"n": 2500, "seed": 0}}``.
    drop
        Attributes that are not targets (all other attribute columns are).
    identities
        The identity categories; each must be a binary attribute column.
    workers
        Workers of the one pass that reads a file-based split (:func:`fairlib.data.image_tensor`).

    Returns
    -------
    AttributeSplits
        Cached by its arguments: the run functions of one sweep share one copy.
    """

    drop = _sequence(drop, "drop", "['smile']")
    identities = _sequence(identities, "identities", "['Male', 'Young']")
    integer(workers, "workers", minimum=0, meaning="(0: read in this process)")
    parts = {"data": data, "data_options": data_options or {}, "split_options": split_options or {},
             "drop": list(drop), "identities": list(identities), "workers": workers}
    with renamed("name", "data"):
        return _SPLITS_MEMO.get(parts, lambda: _load_attribute_splits(data, data_options, split_options, drop,
                                                                      identities, workers, show_progress))




def _load_attribute_splits(data, data_options, split_options, drop, identities, workers, show_progress
                           ) -> AttributeSplits:
    from fairlib.data import image_tensor, load_dataset

    images, frames = {}, {}
    for split in _SPLITS:
        options = {**(data_options or {}), **(split_options or {}).get(split, {})}
        ds = load_dataset(data, split, **options)
        images[split] = image_tensor(ds, num_workers=workers, show_progress=show_progress)
        frames[split] = ds.attributes
    columns = list(frames["train"].columns)
    missing = sorted(set(identities) - set(columns)) + sorted(set(drop) - set(columns))
    if missing:
        raise ValueError(f"identities, drop: {missing} are not attributes of {data!r}; attributes: {columns}")
    attributes = [c for c in columns if c not in drop]
    labels = {s: np.stack([f[a].cat.codes.to_numpy() for a in attributes], 1).astype(np.int64)
              for s, f in frames.items()}
    identity = {s: {i: f[i].cat.codes.to_numpy().astype(np.int64) for i in identities} for s, f in frames.items()}
    return AttributeSplits(attributes, list(identities), images, labels, identity)


def build_multilabel_model(name: str, n_outputs: int, *, image_size: int, seed: int,
                           **options: Any) -> nn.Module:
    """A model with ``n_outputs`` logits from :func:`fairlib.models.build_model`, initialised from ``seed``.

    ``"torchvision.resnet18"`` (the paper's network, random initialisation) gets ``num_classes``;
    the course's models (``"spatial_resnet"``) get ``num_outputs`` and ``image_size``.
    """
    positive_int(n_outputs, "n_outputs", meaning="(one logit per attribute)")
    if str(name).startswith("torchvision."):
        return build_model(name, seed=seed, num_classes=n_outputs, **options)
    return build_model(name, seed=seed, num_outputs=n_outputs, image_size=image_size, **options)


# --------------------------------------------------------------------------- analysis
def sigmoid(z: Any) -> np.ndarray:
    """The logistic function, elementwise (``scipy.special.expit``: no overflow warnings)."""
    arr = to_numpy(z, "z")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"z: expected numbers (logits), got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError("z: contains NaN; the model's logits must be finite")
    return special.expit(arr)


def two_proportion_pvalue(labels: Any, group: Any) -> float:
    r"""Two-sided p-value of the two-proportion z-test that ``labels`` has the same rate in both groups.

    With :math:`n_g` examples and positive rate :math:`p_g` in group :math:`g \in \{0, 1\}` and the
    pooled rate :math:`\bar p`,

    .. math::
        z = \frac{p_1 - p_0}{\sqrt{\bar p (1 - \bar p)(1/n_0 + 1/n_1)}},\qquad p = 2\,\Phi(-|z|)

    (the same as a :math:`\chi^2` test of the 2x2 table without continuity correction). 1.0 when
    the pooled rate is 0 or 1 (no evidence of a difference).
    """
    y, g = as_binary(labels, "labels"), as_binary(group, "group")
    same_length(labels=y, group=g)
    n1, n0 = int(g.sum()), int((1 - g).sum())
    if n0 == 0 or n1 == 0:
        raise ValueError("group: both groups need examples for a two-proportion test")
    pooled = y.mean()
    if pooled in (0.0, 1.0):
        return 1.0
    z = (y[g == 1].mean() - y[g == 0].mean()) / np.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    return float(2 * stats.norm.sf(abs(z)))


def pair_tests(train_labels: Any, train_identity: Mapping[str, Any], attributes: Sequence[str],
               min_rel_diff: float = 0.1) -> pd.DataFrame:
    r"""Which (attribute, identity) pairs are associated in the training split.

    For each pair: the attribute's training rate without and with the identity, the authors'
    rule (the two rates differ by at least ``min_rel_diff`` of the smaller one, as in
    :func:`fairlib.metrics.attribute_bias_amplification`) and the two-sided p-value of the
    two-proportion test (:func:`two_proportion_pvalue`). An attribute is not paired with itself.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``attribute``, ``identity``, ``rate without``, ``rate with``,
        ``passes 10% rule``, ``p``.
    """
    yt = binary(as_matrix(train_labels, "train_labels"), "train_labels")
    attributes = _sequence(attributes, "attributes", "['Smiling', 'Young']")
    if len(attributes) != yt.shape[1]:
        raise ValueError(f"attributes: {len(attributes)} names for {yt.shape[1]} columns of train_labels")
    rows = []
    for name, values in train_identity.items():
        g = as_binary(values, f"train_identity[{name!r}]")
        same_length(train_labels=yt[:, 0], train_identity=g)
        for j, a in enumerate(attributes):
            if a == name:
                continue
            r0, r1 = yt[g == 0, j].mean(), yt[g == 1, j].mean()
            lo, hi = min(r0, r1), max(r0, r1)
            rule = bool(hi > 0 and (lo == 0 or (hi - lo) / lo >= min_rel_diff))
            rows.append({"attribute": a, "identity": name, "rate without": float(r0), "rate with": float(r1),
                         "passes 10% rule": rule, "p": two_proportion_pvalue(yt[:, j], g)})
    return pd.DataFrame(rows)


def ba_table(pred: Any, labels: Any, identity: Mapping[str, Any], train_labels: Any,
             train_identity: Mapping[str, Any], attributes: Sequence[str],
             alpha: float | None = None) -> pd.DataFrame:
    """Bias amplification per (attribute, identity) pair (:func:`fairlib.metrics.attribute_bias_amplification`).

    Parameters
    ----------
    pred, labels
        Shape ``(N, K)`` (or ``(N,)`` for one attribute), 0/1: test predictions and test labels.
    identity
        ``{name: (N,) 0/1}``: the test split's identity categories.
    train_labels, train_identity
        The same for the training split, which decides each pair's direction.
    attributes
        The ``K`` column names.
    alpha
        When set, also NaN for the pairs whose training association is not significant:
        two-proportion test p-value >= ``alpha`` (:func:`pair_tests`). The paper keeps only
        "significantly" biased pairs; the authors' code keeps those passing the 10% rule alone.

    Returns
    -------
    pandas.DataFrame
        Rows attributes, columns identities. NaN where the measurement is undefined (see the
        metric), where an attribute is the identity itself and (with ``alpha``) where the pair
        is not significantly associated in training.
    """
    p = binary(as_matrix(pred, "pred"), "pred")
    y = binary(as_matrix(labels, "labels"), "labels")
    yt = binary(as_matrix(train_labels, "train_labels"), "train_labels")
    attributes = _sequence(attributes, "attributes", "['Smiling', 'Young']")
    for name, value in (("identity", identity), ("train_identity", train_identity)):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name}: expected a mapping {{identity name: 0/1 array}}, got {type(value).__name__}")
    if not p.shape == y.shape or yt.shape[1] != p.shape[1] or len(attributes) != p.shape[1]:
        raise ValueError(f"pred, labels, train_labels, attributes: need the same K columns, got {p.shape}, "
                         f"{y.shape}, {yt.shape} and {len(attributes)} names")
    if set(identity) != set(train_identity):
        raise ValueError(f"identity, train_identity: different categories {sorted(identity)} vs "
                         f"{sorted(train_identity)}")
    for where, mapping, n in (("identity", identity, len(p)), ("train_identity", train_identity, len(yt))):
        for key, values in mapping.items():
            if len(to_numpy(values, where)) != n:
                raise ValueError(f"{where}: {key!r} has {len(to_numpy(values, where))} values for {n} examples; "
                                 "pass one 0/1 value per example of the same split")
    out = {}
    for name, values in identity.items():
        out[name] = [np.nan if a == name else
                     metrics.attribute_bias_amplification(y[:, j], p[:, j], identity=values, train_true=yt[:, j],
                                                          train_identity=train_identity[name])
                     for j, a in enumerate(attributes)]
    table = pd.DataFrame(out, index=attributes, dtype=float)
    if alpha is not None:
        if not 0 < _real(alpha, "alpha") < 1:
            raise ValueError(f"alpha: expected a significance level in (0, 1) such as 0.01, or None, got {alpha!r}")
        tests = pair_tests(yt, train_identity, attributes)
        weak = tests[tests["p"] >= alpha]
        for a, name in zip(weak["attribute"], weak["identity"]):
            table.loc[a, name] = np.nan
    return table


def _ba_values(ba: Any) -> np.ndarray:
    try:
        values = np.asarray(ba.to_numpy() if isinstance(ba, pd.DataFrame) else ba, dtype=float)
    except (TypeError, ValueError):
        values = None
    if ba is None or values is None:
        raise ValueError(f"ba: expected a BA table of numbers (ba_table), got {type(ba).__name__}")
    if values.size == 0:
        raise ValueError("ba: is empty; pass a BA table (ba_table)")
    return values


def _pairs(pairs: Any) -> np.ndarray:
    """A boolean mask of pairs; numbers other than 0/1 (a BA table itself) are refused."""
    mask = to_numpy(pairs, "pairs")
    if mask.dtype != bool:
        if mask.dtype.kind not in "iuf" or not np.isin(mask, (0, 1)).all():
            raise ValueError("pairs: expected a boolean mask of (attribute, identity) pairs, e.g. dense_ba > 0, "
                             f"got {mask.dtype} values")
        mask = mask.astype(bool)
    return mask


def mean_ba(ba: Any, pairs: Any = None) -> float:
    """Mean of the finite entries of a BA table (or of those where ``pairs`` is True); NaN if none."""
    values = _ba_values(ba)
    if pairs is not None:
        mask = _pairs(pairs)
        if mask.shape != values.shape[-mask.ndim:]:
            raise ValueError(f"pairs: shape {mask.shape} does not match the BA table {values.shape}")
        values = np.where(mask, values, np.nan)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def worst_ba(ba: Any) -> float:
    """Largest finite entry of a BA table (the worst-case amplification); NaN if none."""
    values = _ba_values(ba)
    return float(np.nanmax(values)) if np.isfinite(values).any() else float("nan")


#: The systematic metrics of :func:`summarise`, in display order.
SUMMARY_METRICS = ("accuracy", "auc", "tcb", "uncertainty", "ece", "interrelation", "interrelation_prob",
                   "constant_outputs", "mean_ba", "worst_ba")


def summarise(logits: Any, labels: Any, ba: Any = None) -> dict[str, float]:
    """The chapter's metrics of one model, each a mean over attributes.

    Parameters
    ----------
    logits
        Shape ``(N, K)`` (or ``(N,)``): test logits; predictions are ``logit > 0``.
    labels
        Same shape, 0/1.
    ba
        The model's BA table (:func:`ba_table`), for ``mean_ba`` and ``worst_ba`` (NaN without it).

    Returns
    -------
    dict
        ``accuracy``, ``auc`` (ROC AUC), ``tcb`` (threshold calibration bias), ``uncertainty``
        (share of sigmoid outputs in (0.1, 0.9)), ``ece`` (10 bins), ``interrelation`` (mean
        label interrelation R² of the hard predictions ``logit > 0``, a constant column counting
        1.0, as the authors' ``compute_interdependence``; NaN for one attribute),
        ``interrelation_prob`` (the same on the sigmoid probabilities, constant columns skipped),
        ``constant_outputs`` (share of attributes whose hard prediction is the same for every
        example), ``mean_ba``, ``worst_ba``.
    """
    z = as_matrix(logits, "logits").astype(np.float64)
    y = binary(as_matrix(labels, "labels"), "labels")
    if z.shape != y.shape:
        raise ValueError(f"logits, labels: shapes differ, {z.shape} vs {y.shape}")
    probs, pred = sigmoid(z), (z > 0).astype(int)
    each = range(z.shape[1])
    ba = np.full(1, np.nan) if ba is None else np.asarray(ba, dtype=float)
    return {
        "accuracy": float((pred == y).mean()),
        "auc": float(np.mean([roc_auc_score(y[:, c], z[:, c]) for c in each])),
        "tcb": float(np.mean([metrics.threshold_calibration_bias(y[:, c], pred[:, c]) for c in each])),
        "uncertainty": metrics.uncertainty_rate(probs),
        "ece": float(np.mean([metrics.expected_calibration_error(probs[:, c], y[:, c], n_bins=10) for c in each])),
        "interrelation": float(np.mean(metrics.label_interrelation(pred, constant=1.0)))
        if z.shape[1] > 1 else float("nan"),
        "interrelation_prob": float(np.nanmean(metrics.label_interrelation(probs)))
        if z.shape[1] > 1 and (probs.std(axis=0) > 0).any() else float("nan"),
        "constant_outputs": float(np.mean([np.unique(pred[:, c]).size == 1 for c in each])),
        "mean_ba": mean_ba(ba),
        "worst_ba": worst_ba(ba),
    }


#: Above this many bytes, :func:`stamp` copies into a file-backed memory map instead of RAM.
_STAMP_IN_MEMORY = 512 * 2**20


#: The paper's two backdoor triggers (§3.4): a yellow square in a corner, or the image in grayscale.
TRIGGERS = ("square", "grayscale")


def _check_trigger(trigger: Any) -> None:
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger: expected one of {list(TRIGGERS)}, got {trigger!r}")


def stamp(images: torch.Tensor, mask: Any, trigger: str = "square") -> torch.Tensor:
    """A copy of uint8 RGB ``images`` with the backdoor ``trigger`` on those selected by ``mask``.

    ``"square"``: a yellow square in the top-left corner whose side is an eighth of the image
    side (at least 2 pixels); ``"grayscale"``: the image replaced by its luminance
    (ITU-R 601: 0.299 R + 0.587 G + 0.114 B) in all three channels.
    """
    _check_trigger(trigger)
    if not torch.is_tensor(images) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected a tensor (N, 3, H, W), got {getattr(images, 'shape', type(images))}")
    sel = torch.as_tensor(binary(to_numpy(mask, "mask"), "mask"), dtype=torch.bool)
    if sel.shape != (len(images),):
        raise ValueError(f"mask: expected shape ({len(images)},), got {tuple(sel.shape)}")
    # a large uint8 split (CelebA's training set) is copied into a file-backed map, not into RAM
    large = images.dtype == torch.uint8 and images.numel() > _STAMP_IN_MEMORY
    out = file_backed_copy(images) if large else images.clone()
    if trigger == "grayscale":
        idx = torch.nonzero(sel).flatten()
        for start in range(0, len(idx), 1024):  # in blocks: a file-backed split is never read whole
            block = idx[start:start + 1024]
            x = images[block].float()
            gray = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
            gray = gray.round().clamp(0, 255) if images.dtype == torch.uint8 else gray
            out[block] = gray[:, None].expand(-1, 3, -1, -1).to(images.dtype)
        return out
    k = max(2, images.shape[-1] // 8)
    high = 255 if images.dtype == torch.uint8 else 1
    out[sel, :, :k, :k] = torch.tensor([high, high, 0], dtype=images.dtype)[:, None, None]
    return out


def _rates(rates: Any, name: str) -> tuple[float, float]:
    values = _sequence(rates, name, "(0.95, 0.05)")
    if len(values) != 2 or not all(_real(r, name) == r and 0 <= r <= 1 for r in values):
        raise ValueError(f"{name}: expected (share of positives, share of negatives), two fractions in [0, 1], "
                         f"got {rates!r}")
    return float(values[0]), float(values[1])


def backdoor_flags(train_labels: Any, n_test: int, rates: Sequence[float] = (0.95, 0.05),
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Which images carry the trigger: in training, tied to the label; in the test split, a random half.

    Parameters
    ----------
    train_labels
        Shape ``(M,)``, 0/1: the attribute the backdoor targets, on the training split.
    n_test
        Number of test images.
    rates
        ``(share of positives, share of negatives)`` stamped in training; the paper uses 95% / 5%.
    seed
        Seeds one generator for both draws.

    Returns
    -------
    (train_flags, test_flags)
        int64 0/1 arrays of shapes ``(M,)`` and ``(n_test,)``.
    """
    y = binary(as_matrix(train_labels, "train_labels"), "train_labels")
    if y.shape[1] != 1:
        raise ValueError(f"train_labels: expected one attribute (M,), got {y.shape}")
    n_test = positive_int(n_test, "n_test", meaning="(number of test images)")
    pos_rate, neg_rate = _rates(rates, "rates")
    g = np.random.default_rng(seed)
    n = len(y)
    train = np.where(y[:, 0] == 1, g.random(n) < pos_rate, g.random(n) < neg_rate).astype(np.int64)
    test = (g.random(int(n_test)) < 0.5).astype(np.int64)
    return train, test


def backdoor_row(z_triggered: Any, z_clean: Any, labels: Any, flags: Any, train_labels: Any,
                 train_flags: Any) -> dict[str, float]:
    """How a one-attribute model behaves on test images of which a random half carry the trigger.

    Parameters
    ----------
    z_triggered, z_clean
        Shape ``(N,)``: logits on the test images with the trigger where ``flags`` is 1, and on
        the clean test images.
    labels, flags
        Shape ``(N,)``, 0/1: the test labels and the test trigger flags.
    train_labels, train_flags
        The same on the training split (they set the direction of BA).

    Returns
    -------
    dict
        ``accuracy_triggered``, ``accuracy_clean``, ``positive_rate`` (on the triggered images) and
        ``ba``: bias amplification with "backdoored" as the identity category.
    """
    zt, zc = (as_1d(v, name).astype(float) for v, name in ((z_triggered, "z_triggered"), (z_clean, "z_clean")))
    y, flags = as_binary(labels, "labels"), as_binary(flags, "flags")
    same_length(z_triggered=zt, z_clean=zc, labels=y, flags=flags)
    train_labels, train_flags = as_binary(train_labels, "train_labels"), as_binary(train_flags, "train_flags")
    same_length(train_labels=train_labels, train_flags=train_flags)
    pred = (zt > 0).astype(int)
    return {"accuracy_triggered": float((pred == y).mean()),
            "accuracy_clean": float(((zc > 0).astype(int) == y).mean()),
            "positive_rate": float(pred.mean()),
            "ba": metrics.attribute_bias_amplification(y, pred, identity=flags, train_true=train_labels,
                                                        train_identity=train_flags)}


# --------------------------------------------------------------------------- experiments


@dataclass(frozen=True)
class _Recipe:
    """How a run builds, trains and prunes its models (the part of a config both experiments share)."""

    model: str
    model_options: dict
    image_size: int
    device: torch.device
    batch_size: int
    dense_optimizer: str
    lr: float
    variant: str
    prune_lr: float
    prune_epochs: int
    prune_start: int
    prune_end: int
    prune_frequency: int
    warmup_epochs: float
    augment: int | None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    prune_weight_decay: float = 5e-4
    best_val: bool = False

    def new_model(self, n_outputs: int, seed: int) -> nn.Module:
        return build_multilabel_model(self.model, n_outputs, image_size=self.image_size, seed=seed,
                                      **self.model_options).to(self.device)

    def dense(self, seed: int, x: torch.Tensor, y: torch.Tensor, epochs: float,
              val: tuple[torch.Tensor, Any] | None = None) -> nn.Module:
        """A dense model; with ``best_val``, the epoch of highest accuracy on ``val`` (images, labels)."""
        model = self.new_model(y.shape[1], seed)
        train_multilabel(model, x, y, epochs=epochs, lr=self.lr, optimizer=self.dense_optimizer,
                         batch_size=self.batch_size, seed=seed, warmup_epochs=self.warmup_epochs,
                         augment=self.augment, momentum=self.momentum, weight_decay=self.weight_decay,
                         val=val if self.best_val else None)
        return model

    def prune(self, seed: int, dense: nn.Module, x: torch.Tensor, y: torch.Tensor,
              targets: Sequence[float], val: tuple[torch.Tensor, Any] | None = None) -> dict[float, nn.Module]:
        """One :func:`train_gmp` run per target (a target of 0 is a dense model with the sparse runs' budget)."""
        start = dense if self.variant == "pt" else self.new_model(y.shape[1], seed + 1)
        return train_gmp(start, x, y, targets=targets, epochs=self.prune_epochs, start=self.prune_start,
                         end=self.prune_end, frequency=self.prune_frequency, lr=self.prune_lr, variant=self.variant,
                         warmup_epochs=self.warmup_epochs, augment=self.augment, batch_size=self.batch_size,
                         momentum=self.momentum, weight_decay=self.prune_weight_decay,
                         val=val if self.best_val else None, seed=seed + 2)


_RECIPE_KEYS = ("model", "model_options", "batch_size", "dense_optimizer", "lr", "variant", "prune_lr",
                "prune_epochs", "prune_start", "prune_end", "prune_frequency", "warmup_epochs")


def training_budget(config: Mapping[str, Any], *, dense_epochs: float | None = None,
                    n_train: int | None = None) -> pd.DataFrame:
    r"""What each model of a configuration is trained with, computed from the configuration alone.

    Dense: ``dense_epochs`` epochs from initialisation. Sparse: one :func:`train_gmp` run per
    target of ``prune_epochs`` epochs, from the dense model (GMP-PT, so its total adds the dense
    epochs) or from a fresh initialisation (GMP-RI). With GMP-PT a "dense, same budget" row is the
    0% run of :func:`run_seed`. With :math:`b` the batches of one epoch
    (:func:`fairlib.training.batch_plan`), a run of :math:`E` whole epochs takes :math:`E\,b` steps.

    Parameters
    ----------
    config
        A configuration of :func:`main_grid` (or :func:`backdoor_grid`: its ``epochs`` are the
        dense epochs, its ``sparsities`` the targets).
    dense_epochs, n_train
        Override the configuration's dense epochs and training-set size.

    Returns
    -------
    pandas.DataFrame
        One row per model: ``model``, ``sparsity``, ``optimizer``, ``lr``, ``schedule``,
        ``epochs`` (since initialisation), ``optimizer_steps`` (since initialisation) and
        ``pruning_epochs`` (the epochs of the GMP run, counted from 0, whose start prunes).
    """
    from fairlib.training import batch_plan

    if not isinstance(config, Mapping):
        raise ValueError(f"config: expected a configuration of main_grid or backdoor_grid, got {type(config).__name__}")
    missing = [k for k in (*_RECIPE_KEYS[2:], "data") if k not in config]
    if missing:
        raise ValueError(f"config: lacks {missing}; pass a configuration of P.main_grid or P.backdoor_grid")
    dense_e = float(dense_epochs if dense_epochs is not None else config.get("dense_epochs", config.get("epochs")))
    per_epoch = len(batch_plan(int(n_train) if n_train is not None else _split_size(config, "train"),
                               int(config["batch_size"])))

    def steps(epochs: float) -> int:
        return int(epochs) * per_epoch if float(epochs).is_integer() else max(1, int(round(epochs * per_epoch)))

    warm = float(config["warmup_epochs"])
    sched = f"cosine, {warm:g}-epoch linear warm-up" if warm > 0 else "cosine"
    pt = config["variant"] == "pt"
    e = int(config["prune_epochs"])
    pruning = [t for t, _ in pruning_steps(final=0.5, start=int(config["prune_start"]), end=int(config["prune_end"]),
                                           frequency=int(config["prune_frequency"]))]
    rows = [{"model": "dense", "sparsity": 0.0, "optimizer": config["dense_optimizer"], "lr": float(config["lr"]),
             "schedule": sched, "epochs": dense_e, "optimizer_steps": steps(dense_e), "pruning_epochs": ""}]
    base_e, base_s = (dense_e, steps(dense_e)) if pt else (0.0, 0)
    targets = list(config.get("sparsities") or ())
    if pt:
        targets = [0.0] + targets
    for t in targets:
        rows.append({"model": f"GMP-{config['variant'].upper()} to {100 * t:g}%" if t > 0 else "dense, same budget",
                     "sparsity": float(t), "optimizer": "sgd" if not pt else "adam", "lr": float(config["prune_lr"]),
                     "schedule": sched, "epochs": base_e + e, "optimizer_steps": base_s + steps(e),
                     "pruning_epochs": ", ".join(str(p) for p in pruning) if t > 0 else ""})
    return pd.DataFrame(rows)


#: What a single-attribute or backdoor recipe may change of the joint one (``single_recipe``).
RECIPE_OVERRIDES = ("lr", "prune_lr", "momentum", "weight_decay", "prune_weight_decay", "warmup_epochs",
                    "prune_epochs", "prune_start", "prune_end", "prune_frequency")


def _overrides(values: Any, name: str) -> dict[str, Any]:
    values = dict(values or {})
    unknown = sorted(set(values) - set(RECIPE_OVERRIDES))
    if unknown:
        raise ValueError(f"{name}: unknown keys {unknown}; give any of {list(RECIPE_OVERRIDES)}")
    return values


def _known(names: Sequence[str], attributes: Sequence[str], argument: str) -> None:
    unknown = [n for n in names if n not in attributes]
    if unknown:
        raise ValueError(f"{argument}: {unknown} are not targets of the data; choose from {list(attributes)}")


def _logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    z = predict(model, x)
    return (z[:, None] if z.ndim == 1 else z).numpy()


def _flat(values: Any) -> list:
    return np.asarray(values).reshape(-1).tolist()


def run_seed(seed: int, *, data: str, data_options: dict, split_options: dict, drop: list[str],
             identities: list[str], workers: int, model: str, model_options: dict, batch_size: int,
             dense_optimizer: str, lr: float, dense_epochs: float, single: list[str], single_epochs: float,
             variant: str, prune_lr: float, prune_epochs: int, prune_start: int, prune_end: int,
             prune_frequency: int, warmup_epochs: float, sparsities: list[float], augment: int | None = None,
             momentum: float = 0.9, weight_decay: float = 5e-4, prune_weight_decay: float = 5e-4,
             best_val: bool = False, select_on: int | None = None, alpha: float | None = 0.01,
             single_sparsities: Sequence[float] = (), single_recipe: Mapping[str, int] | None = None,
             nm_patterns: Sequence[Sequence[int]] = ((2, 4), (1, 4), (1, 8)),
             override_fractions: Sequence[float] = (0.05, 0.10), backdoor: str | None = None,
             backdoor_split: Sequence[float] = (0.95, 0.05)) -> dict[str, Any]:
    """One seed of the chapter: a dense joint model, single-attribute models and one GMP run per sparsity, measured.

    Trains a dense model on all targets jointly (``dense_epochs``), a dense model on each
    attribute in ``single`` alone (``single_epochs``) and, for every target in ``sparsities``,
    its own complete :func:`train_gmp` run (GMP-PT from the dense model, or GMP-RI from a
    fresh initialisation), all under the same schedule family (cosine after a linear warm-up of
    ``warmup_epochs``). With GMP-PT a 0% run of the same length is the dense model with the
    sparse models' budget (``matched_*``). Models do not leave the function: what the chapter
    analyses is measured here. On the CPU the run uses one torch thread.

    Parameters
    ----------
    seed
        Initialisation and shuffling (the dense models use ``seed``, GMP-RI's fresh model ``seed + 1``,
        the GMP run ``seed + 2``) and the backdoor control's trigger flags.
    data, data_options, split_options, drop, identities, workers
        The dataset (:func:`load_attribute_splits`).
    model, model_options
        The network (:func:`build_multilabel_model`).
    batch_size, dense_optimizer, lr, dense_epochs, single, single_epochs
        Dense training (:func:`train_multilabel`, cosine decay).
    variant, prune_lr, prune_epochs, prune_start, prune_end, prune_frequency, warmup_epochs, sparsities
        The GMP runs (:func:`train_gmp`).
    augment
        ``None``, or the padding of random crops with horizontal flips in every training run.
    momentum, weight_decay, prune_weight_decay
        SGD's momentum; the weight decay of dense training and of the GMP runs.
    best_val, select_on
        Keep each model's epoch of highest mean validation accuracy (among the epochs at the
        target sparsity for GMP runs), the paper's rule; ``False``: the last epoch. ``select_on``:
        rank the epochs on a random subset of that many validation images (:func:`selection_split`;
        ``None``: all of them).
    single_sparsities
        Sparsities (each in ``sparsities``) to which every single-attribute model is also pruned,
        with the joint models' recipe (the paper's Fig. 3); empty: dense single models only.
    single_recipe
        The single-attribute models' recipe where it differs from the joint one
        (:data:`RECIPE_OVERRIDES`; the authors train them 20 epochs with SGD at 0.1, momentum 0.9,
        weight decay 1e-4, pruning from epoch 2 to 16); ``None``: the joint recipe.
    alpha
        BA is measured only for pairs whose training association has a two-proportion test
        p-value below ``alpha`` (:func:`pair_tests`); ``None``: the 10% rule alone.
    nm_patterns
        ``[n, m]`` patterns applied one-shot (:func:`nm_prune`) to the dense model.
    override_fractions
        Shares of the most uncertain test examples overridden (:func:`override_uncertain`).
    backdoor, backdoor_split
        When set, the dense joint model is also shown the trigger (:func:`stamp`) on a random half
        of the test images (:func:`backdoor_flags` with this seed): the control of
        :func:`run_backdoor`.

    Returns
    -------
    dict
        Scalars and flat lists; "models" are dense then each sparsity, ``K`` targets, ``I``
        identities, ``N`` test examples, ``M`` mitigation methods.

        - ``attributes`` (K; the I identities are the configuration's ``identities``),
          ``sparsity`` (models: 0.0 then ``sparsities``), ``measured_sparsity`` (models),
          ``train_steps`` (models: optimiser steps since initialisation, :func:`train_steps`),
          ``pair_p`` and ``pair_rule`` (K × I: the training association's p-value and the 10% rule,
          NaN / False for an identity with itself), ``dense_val_ba`` (K × I: the dense model's BA
          on the validation split, to select pairs without using the test split);
        - with GMP-PT, ``matched_train_steps`` and ``matched_<metric>`` of :data:`SUMMARY_METRICS`
          for the 0% run (the dense model trained on for the sparse models' epochs);
          ``n_weights`` (prunable weights of the network), ``train_rate`` (K, positive rate of
          each target in training);
        - each of :data:`SUMMARY_METRICS` (models): :func:`summarise` of each joint model on the test split;
        - ``ba`` (models × K × I): each model's :func:`ba_table`; ``dense_auc`` (K);
        - ``mitigation_methods`` (M) and ``mitigation_ba`` (models × M × K × I): BA tables after
          the default threshold, calibrated thresholds (:func:`calibrate_thresholds` on each
          model's own validation logits), and human / dense-label overrides of each fraction;
        - ``test_predictions`` (models × N × K, 0/1) and ``dense_test_logits`` (N × K): for
          compression-identified exemplars, which need the runs of every seed;
        - ``single_attribute``, ``single_training`` (``"joint"``, ``"single"``), ``single_sparsity``
          (rows: per attribute, dense then each of ``single_sparsities``, joint then single),
          ``single_<metric>`` for accuracy, auc, tcb, uncertainty, ece, and ``single_ba`` (rows × I);
        - ``nm_pattern``, ``nm_sparsity`` and ``nm_<metric>`` per pattern;
        - with ``backdoor``: ``control_<key>`` of :func:`backdoor_row` for the dense joint model.
    """
    for t in _sequence(sparsities, "sparsities", "[0.9, 0.99]"):
        _check_fraction(t, "sparsities")
    for pattern in _sequence(nm_patterns, "nm_patterns", "[[2, 4], [1, 4]]"):
        if isinstance(pattern, (str, bytes)) or not isinstance(pattern, (Sequence, np.ndarray)) or len(pattern) != 2:
            raise ValueError(f"nm_patterns: expected [n, m] pairs such as [2, 4], got {pattern!r}")
    for f in _sequence(override_fractions, "override_fractions", "[0.05, 0.1]"):
        if not _real(f, "override_fractions") == f or not 0 <= f <= 1:
            raise ValueError(f"override_fractions: expected fractions in [0, 1] (5% is 0.05), got {f!r}")
    _rates(backdoor_split, "backdoor_split")
    single = _sequence(single, "single", "['earrings']")
    extra_single = [t for t in _sequence(single_sparsities, "single_sparsities", "[0.98]") if t not in sparsities]
    if extra_single:
        raise ValueError(f"single_sparsities: {extra_single} are not among sparsities {list(sparsities)}; the single "
                         "models are compared with the joint models of the same sparsity")
    single_recipe = _overrides(single_recipe, "single_recipe")
    d = load_attribute_splits(data, data_options, split_options, drop=drop, identities=identities, workers=workers)
    _known(single, d.attributes, "single")
    if backdoor is not None:
        _known([backdoor], d.attributes, "backdoor")
    device = get_device()
    recipe = _Recipe(model, dict(model_options), d.image_size, device, batch_size, dense_optimizer, lr, variant,
                     prune_lr, prune_epochs, prune_start, prune_end, prune_frequency, warmup_epochs, augment,
                     momentum=momentum, weight_decay=weight_decay, prune_weight_decay=prune_weight_decay,
                     best_val=best_val)
    Y, ident, attrs = d.labels, d.identity, d.attributes

    def table(pred: np.ndarray, cols: Sequence[int], split: str = "test") -> pd.DataFrame:
        cols = list(cols)
        return ba_table(pred, Y[split][:, cols], ident[split], Y["train"][:, cols], ident["train"],
                        [attrs[j] for j in cols], alpha=alpha)

    every = range(len(attrs))
    with cpu_threads(1, device):  # small nets thrash with more threads on a shared CPU
        y_train = torch.from_numpy(Y["train"])
        val_split = selection_split(d.images["val"], Y["val"], select_on, seed)
        dense = recipe.dense(seed, d.images["train"], y_train, dense_epochs, val_split)
        extra = [0.0] if variant == "pt" else []
        pruned = recipe.prune(seed, dense, d.images["train"], y_train, extra + list(sparsities), val_split)
        matched = pruned.pop(0.0, None)
        models = {0.0: dense, **pruned}
        val = {s: _logits(m, d.images["val"]) for s, m in models.items()}
        test = {s: _logits(m, d.images["test"]) for s, m in models.items()}
        tests = pair_tests(Y["train"], ident["train"], attrs).set_index(["attribute", "identity"])
        ids = list(ident["train"])
        out: dict[str, Any] = {
            "attributes": attrs, "sparsity": [float(s) for s in models],
            "measured_sparsity": [measure_sparsity(m) for m in models.values()],
            "train_steps": [train_steps(m) for m in models.values()],
            "n_weights": sum(m.weight.numel() for m, _ in prunable_weights(dense)),
            "train_rate": _flat(Y["train"].mean(0)),
            "pair_p": [float(tests.loc[(a, g), "p"]) if (a, g) in tests.index else float("nan")
                       for a in attrs for g in ids],
            "pair_rule": [bool(tests.loc[(a, g), "passes 10% rule"]) if (a, g) in tests.index else False
                          for a in attrs for g in ids],
            "dense_val_ba": _flat(table((val[0.0] > 0).astype(int), every, "val").to_numpy()),
        }

        # systematic and category bias of every joint model
        bas = {s: table((z > 0).astype(int), every) for s, z in test.items()}
        summaries = [summarise(z, Y["test"], bas[s]) for s, z in test.items()]
        out.update({k: [row[k] for row in summaries] for k in SUMMARY_METRICS})
        if matched is not None:
            z = _logits(matched, d.images["test"])
            out.update({f"matched_{k}": v for k, v in summarise(z, Y["test"], table((z > 0).astype(int), every))
                        .items()})
            out["matched_train_steps"] = train_steps(matched)
            del matched
        out["ba"] = _flat([b.to_numpy() for b in bas.values()])
        out["dense_auc"] = [float(roc_auc_score(Y["test"][:, j], test[0.0][:, j])) for j in every]

        # countermeasures, per model
        dense_p, dense_pred = sigmoid(test[0.0]), (test[0.0] > 0).astype(int)
        methods, cubes = None, []
        for s, z in test.items():
            preds = {"default threshold": (z > 0).astype(int),
                     "calibrated thresholds": apply_thresholds(z, calibrate_thresholds(val[s], Y["val"]))}
            for frac in override_fractions:
                preds[f"human override {frac:.0%}"] = override_uncertain(preds["default threshold"], dense_p,
                                                                         Y["test"], frac)[0]
                preds[f"dense-label override {frac:.0%}"] = override_uncertain(preds["default threshold"], dense_p,
                                                                               dense_pred, frac)[0]
            methods = list(preds)
            cubes.append([table(p, every).to_numpy() for p in preds.values()])
        out["mitigation_methods"], out["mitigation_ba"] = methods, _flat(cubes)
        out["test_predictions"] = _flat([(z > 0).astype(np.int64) for z in test.values()])
        out["dense_test_logits"] = _flat(test[0.0].astype(np.float64))

        # joint versus single-attribute training, dense and (single_sparsities) pruned with the same recipe
        rows = []
        for name in single:
            j = attrs.index(name)
            y_j = y_train[:, j:j + 1]
            val_j = (val_split[0], val_split[1][:, j:j + 1])
            alone_recipe = dataclasses.replace(recipe, **single_recipe)
            alone = alone_recipe.dense(seed, d.images["train"], y_j, single_epochs, val_j)
            alone_models = {0.0: alone, **(alone_recipe.prune(seed, alone, d.images["train"], y_j, single_sparsities,
                                                              val_j)
                                           if single_sparsities else {})}
            for s, m in alone_models.items():
                for training, z in (("joint", test[s][:, j:j + 1]), ("single", _logits(m, d.images["test"]))):
                    ba = table((z > 0).astype(int), [j])
                    rows.append({"attribute": name, "training": training, "sparsity": float(s),
                                 **summarise(z, Y["test"][:, [j]], ba), "ba": ba.to_numpy()[0]})
            del alone_models
        out["single_attribute"] = [r["attribute"] for r in rows]
        out["single_training"] = [r["training"] for r in rows]
        out["single_sparsity"] = [r["sparsity"] for r in rows]
        for k in ("accuracy", "auc", "tcb", "uncertainty", "ece"):
            out[f"single_{k}"] = [r[k] for r in rows]
        out["single_ba"] = _flat([r["ba"] for r in rows]) if rows else []

        # N:M masks, one-shot on the dense model
        nm = []
        for n, m in nm_patterns:
            pruned = clone_model(dense)
            s = nm_prune(pruned, int(n), int(m))
            z = _logits(pruned, d.images["test"])
            nm.append({"sparsity": s, **summarise(z, Y["test"], table((z > 0).astype(int), every))})
        out["nm_pattern"] = [f"{n}:{m}" for n, m in nm_patterns]
        for k in ("sparsity", *SUMMARY_METRICS):
            out[f"nm_{k}"] = [r[k] for r in nm]

        # the backdoor's control: a model never shown the trigger
        if backdoor is not None:
            j = attrs.index(backdoor)
            flags_train, flags_test = backdoor_flags(Y["train"][:, j], len(Y["test"]), backdoor_split, seed)
            z_trig = _logits(dense, stamp(d.images["test"], flags_test))[:, j]
            row = backdoor_row(z_trig, test[0.0][:, j], Y["test"][:, j], flags_test, Y["train"][:, j], flags_train)
            out.update({f"control_{k}": v for k, v in row.items()})
    return out


def run_backdoor(seed: int, *, data: str, data_options: dict, split_options: dict, drop: list[str],
                 identities: list[str], workers: int, model: str, model_options: dict, batch_size: int,
                 dense_optimizer: str, lr: float, epochs: float, variant: str, prune_lr: float,
                 prune_epochs: int, prune_start: int, prune_end: int, prune_frequency: int,
                 warmup_epochs: float, attribute: str, split: list[float], augment: int | None = None,
                 momentum: float = 0.9, weight_decay: float = 5e-4, prune_weight_decay: float = 5e-4,
                 best_val: bool = False, select_on: int | None = None, trigger: str = "square",
                 recipe: Mapping[str, Any] | None = None, sparsities: list[float]) -> dict[str, Any]:
    """A planted bias: a one-attribute model trained on backdoored images, dense and pruned.

    The trigger (:func:`stamp`) is put on ``split[0]`` of the training images whose ``attribute``
    is positive and ``split[1]`` of the negatives, and on a random half of the test images
    (:func:`backdoor_flags` with ``seed``). A dense model is trained on ``attribute`` alone
    (``epochs``) and pruned with the GMP recipe of :func:`run_seed` (same parameters, one run per
    target) to each of ``sparsities``. With ``best_val`` the checkpoint is chosen on the
    validation split backdoored like the training split (the data a practitioner would hold).
    ``trigger``: one of :data:`TRIGGERS`; ``recipe``: what differs from the joint recipe
    (:data:`RECIPE_OVERRIDES`; the paper trains single-attribute models for 20 epochs).

    Returns
    -------
    dict
        Lists over the models (dense, then each sparsity): ``sparsity``, ``measured_sparsity`` and
        the keys of :func:`backdoor_row` (``accuracy_triggered``, ``accuracy_clean``,
        ``positive_rate``, ``ba`` with "backdoored" as the identity).
    """
    for t in _sequence(sparsities, "sparsities", "[0.9, 0.99]"):
        _check_fraction(t, "sparsities")
    _rates(split, "split")
    _check_trigger(trigger)  # before the data are loaded
    changes = _overrides(recipe, "recipe")
    d = load_attribute_splits(data, data_options, split_options, drop=drop, identities=identities, workers=workers)
    _known([attribute], d.attributes, "attribute")
    device = get_device()
    recipe = _Recipe(model, dict(model_options), d.image_size, device, batch_size, dense_optimizer, lr, variant,
                     prune_lr, prune_epochs, prune_start, prune_end, prune_frequency, warmup_epochs, augment,
                     momentum=momentum, weight_decay=weight_decay, prune_weight_decay=prune_weight_decay,
                     best_val=best_val)
    recipe = dataclasses.replace(recipe, **changes)
    j = d.attributes.index(attribute)
    y_train, y_test = d.labels["train"][:, j], d.labels["test"][:, j]
    flags_train, flags_test = backdoor_flags(y_train, len(y_test), split, seed)
    with cpu_threads(1, device):  # small nets thrash with more threads on a shared CPU
        x_train = stamp(d.images["train"], flags_train, trigger)
        x_test = stamp(d.images["test"], flags_test, trigger)
        yb = torch.from_numpy(y_train[:, None].copy())
        y_val = d.labels["val"][:, j]
        flags_val = backdoor_flags(y_val, 1, split, seed + 1)[0]
        # stamp only the rows that rank epochs (selection_split's rows), not the whole split
        rows = _selection_rows(len(y_val), select_on, seed)
        x_val = d.images["val"] if rows is None else gather_rows(d.images["val"], rows)
        keep = slice(None) if rows is None else rows
        val = (stamp(x_val, flags_val[keep], trigger), y_val[keep][:, None])
        dense = recipe.dense(seed, x_train, yb, epochs, val)
        models = {0.0: dense, **recipe.prune(seed, dense, x_train, yb, sparsities, val)}
        rows = [backdoor_row(_logits(m, x_test)[:, 0], _logits(m, d.images["test"])[:, 0], y_test, flags_test,
                             y_train, flags_train) for m in models.values()]
    return {"sparsity": [float(s) for s in models], "measured_sparsity": [measure_sparsity(m) for m in models.values()],
            **{k: [r[k] for r in rows] for k in rows[0]}}


_QUICK = {
    # SynthFaces' multi-attribute mode at 24x24 (four identity categories); the rarest attributes
    # and identities are made more common than in CelebA (4-7%) so that 2,500 training images
    # hold enough positives and every identity group is sizeable
    "data": "synthfaces", "data_options": {"mode": "multi", "size": 24, "rates": {
        "glasses": 0.15, "hat": 0.15, "mustache": 0.12, "necklace": 0.15, "wide": 0.2, "light": 0.2}},
    "split_sizes": {"train": 2500, "val": 1000, "test": 2000},
    # at 24x24 these four are (almost) invisible by design: mole and blush are a pixel or a faint
    # tint, smile and headband a line or two; we drop them instead of scoring chance
    "drop": ["smile", "blush", "mole", "headband"],
    "identities": ["angular", "smooth", "wide", "light"], "workers": 0,
    # a small ResNet trunk with a spatial head (flattened features, a hidden layer of 256; about
    # 315k prunable weights, most of them cheap head weights)
    "model": "spatial_resnet", "model_options": {"width": 8, "hidden": 256}, "batch_size": 32,
    "dense_optimizer": "adam", "lr": 3e-3, "dense_epochs": 8, "warmup_epochs": 0.5, "augment": None,
    # this library's defaults (Adam ignores the momentum); every model keeps its best validation epoch
    "momentum": 0.9, "weight_decay": 5e-4, "prune_weight_decay": 5e-4, "best_val": True, "select_on": None,
    # both learnable at 24 px and both planted with "angular" (the Male stand-in), like Oval Face and Big Nose
    "single": ["lipstick", "beard"], "single_epochs": 5, "single_sparsities": [0.98], "single_recipe": None,
    # GMP-PT: each target's run starts from the seed's dense model (Adam at a third of the dense rate),
    # 4 epochs: cuts at the start of epochs 0, 1, 2, then 2 epochs at the target; three targets fit the
    # chapter's CPU budget (the paper's six in the full and paper profiles)
    "variant": "pt", "prune_lr": 1e-3, "prune_epochs": 4, "prune_start": 0, "prune_end": 2, "prune_frequency": 1,
    "sparsities": [0.9, 0.98, 0.995], "seeds": 3, "alpha": 0.01,
    "backdoor": "fringe", "backdoor_split": [0.95, 0.05], "backdoor_sparsities": [0.9, 0.995], "backdoor_seeds": 1,
}
#: The target sparsities of the paper's sweep (the full and paper profiles).
SPARSITIES = [0.8, 0.9, 0.95, 0.98, 0.99, 0.995]
_PAPER = {
    # The paper's setting: CelebA (40 attributes, identities Male, Young, Chubby, Pale_Skin),
    # torchvision ResNet18 from random initialisation, GMP-RI (100 epochs, pruning from epoch 10
    # to 80 every 10, as the authors' configs), SGD at the authors' rate and momentum with a
    # cosine schedule after a 5-epoch warm-up, one run per sparsity, 5 seeds: tens of T4-hours,
    # a sweep (`python -m fairlib.sweep plan 05_pruning_bias --profile paper`).
    # the aligned 178 x 218 crops, shorter side scaled to 224 and the centre square kept (the aspect
    # ratio unchanged; the authors resize to 256 and crop 224)
    "data": "celeba", "data_options": {"size": 224, "fit": "crop"}, "split_sizes": None,
    "drop": [], "identities": ["Male", "Young", "Chubby", "Pale_Skin"], "workers": 2,
    "model": "torchvision.resnet18", "model_options": {}, "batch_size": 256,
    "dense_optimizer": "sgd", "lr": 0.256, "dense_epochs": 100, "warmup_epochs": 5,
    # the authors' configs: momentum 0.875, no weight decay for dense training, 3.05e-5 for GMP;
    # the checkpoint is the epoch of highest validation accuracy (at the final sparsity)
    "momentum": 0.875, "weight_decay": 0.0, "prune_weight_decay": 3.05e-5, "best_val": True, "select_on": None,
    # random crops (shifts of up to 2 x 16 px, as the authors' 224 crops of 256 allow 32 px) and flips
    "augment": 16,
    # single-attribute models: the paper's seven attributes (§2.4), 20 epochs, SGD at 0.1 with momentum 0.9 and
    # weight decay 1e-4, pruned over 20 epochs from epoch 2 to 16 (the authors' ep20 configs)
    "single": ["Blond_Hair", "Smiling", "Oval_Face", "Big_Nose", "Mustache", "Receding_Hairline",
               "Bags_Under_Eyes"], "single_epochs": 20, "single_sparsities": list(SPARSITIES),
    "single_recipe": {"prune_epochs": 20, "prune_start": 2, "prune_end": 16, "prune_frequency": 1, "lr": 0.1,
                      "prune_lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "prune_weight_decay": 1e-4,
                      "warmup_epochs": 0},
    "variant": "ri", "prune_lr": 0.256, "prune_epochs": 100, "prune_start": 10, "prune_end": 80,
    "prune_frequency": 10, "sparsities": list(SPARSITIES), "seeds": 5, "alpha": 0.01,
    "backdoor": "Smiling", "backdoor_split": [0.95, 0.05], "backdoor_sparsities": list(SPARSITIES),
    "backdoor_seeds": 5,
    # the paper's backdoors (§3.4): Blond Hair and Smiling at 95/5, Oval Face and Big Nose at 65/35, each
    # with a yellow square and with grayscale, trained as single-attribute models (single_recipe)
    "backdoor_tasks": [["Blond_Hair", [0.95, 0.05]], ["Smiling", [0.95, 0.05]], ["Oval_Face", [0.65, 0.35]],
                       ["Big_Nose", [0.65, 0.35]]],
    "backdoor_triggers": ["square", "grayscale"],
}
#: One Colab session (<= 3 T4-hours, `python -m fairlib.sweep plan 05_pruning_bias`): the paper's data,
#: network, identities and GMP-RI (one run per sparsity from a fresh initialisation, as long as the
#: dense run), but a random 40,000 of CelebA's 162,770 training images, 10 epochs per run (pruning
#: at epochs 1 to 6), SGD at 0.1 and 3 seeds. Only what differs from the paper is written.
_FULL = {**_PAPER, "split_sizes": {"train": 40_000}, "dense_epochs": 10, "single_epochs": 5, "lr": 0.1,
         "single": ["Oval_Face", "Big_Nose"], "backdoor_sparsities": [0.9, 0.98, 0.995],
         # 128 px (a third of the paper's pixels: the Colab budget and an image cache that fits its disk)
         "data_options": {"size": 128, "fit": "crop"}, "augment": 9,
         "backdoor_tasks": None, "backdoor_triggers": ["square"],
         # epochs are ranked on 5,000 of the 19,867 validation images (all of them: over the 3 T4-hours)
         "single_sparsities": [], "single_recipe": None, "select_on": 5000,
         "warmup_epochs": 1, "prune_lr": 0.1, "prune_epochs": 10, "prune_start": 1, "prune_end": 6,
         "prune_frequency": 1, "seeds": 3, "backdoor_seeds": 3}
#: FAIRLIB_SCALE=rehearsal: the full code on the miniature CelebA mirror, two seeds of a few epochs, 64 px.
_REHEARSAL = {"dense_epochs": 2, "single_epochs": 1, "prune_epochs": 2, "prune_start": 0, "prune_end": 1,
              "prune_frequency": 1, "warmup_epochs": 0.5, "seeds": 2, "batch_size": 32, "workers": 2,
              "backdoor_sparsities": [0.9, 0.995], "backdoor_seeds": 1,
              "data_options": {"size": 64, "fit": "crop"},
              # the paper profile's single-attribute schedule, shrunk like the joint one
              "single_recipe": {"prune_epochs": 2, "prune_start": 0, "prune_end": 1}}
# the data and the training/pruning recipe, shared by both experiments
_SHARED = ("data", "data_options", "split_options", "drop", "identities", "workers", "model", "model_options",
           "batch_size", "dense_optimizer", "lr", "variant", "prune_lr", "prune_epochs", "prune_start", "prune_end",
           "prune_frequency", "warmup_epochs", "augment", "momentum", "weight_decay", "prune_weight_decay",
           "best_val", "select_on")


def _settings(profile: str, seed: int) -> dict[str, Any]:
    from fairlib.config import select

    s = copy.deepcopy(select({"quick": _QUICK, "full": _FULL, "paper": _PAPER, "rehearsal": _REHEARSAL}, profile))
    sizes = s.pop("split_sizes")
    s["split_options"] = {k: {"n": n, "seed": int(seed)} for k, n in sizes.items()} if sizes else {}
    return s


def main_grid(profile: str, seed: int = 0) -> list[dict[str, Any]]:
    """Configurations of :func:`run_seed`: one per seed (3 in quick and full, 5 in paper), from ``seed`` on.

    Every target sparsity gets its own GMP run of ``prune_epochs`` epochs (:func:`train_gmp`),
    under the dense training's schedule family (cosine after a linear warm-up).
    quick: SynthFaces (multi-attribute, 24x24, 2,500/1,000/2,000 images generated with ``seed``),
    ``spatial_resnet`` (width 8, hidden 256), Adam, 8 dense epochs, GMP-PT to 90%, 98% and 99.5%
    over 4 epochs each (and a dense run of the same 4 epochs). full: CelebA at 128x128 (40,000
    training images), torchvision ResNet18 from random initialisation, SGD, GMP-RI to each of the
    paper's six sparsities over 10 epochs, as long as the dense run. paper: the whole training
    split, 100 epochs per run (dense and each GMP-RI run, pruning from epoch 10 to 80, every 10), 5 seeds.
    """
    s = _settings(profile, seed)
    fixed = {k: s[k] for k in (*_SHARED, "dense_epochs", "single", "single_epochs", "backdoor", "backdoor_split",
                                "sparsities", "alpha", "single_sparsities", "single_recipe")}
    fixed.update(nm_patterns=[[2, 4], [1, 4], [1, 8]], override_fractions=[0.05, 0.10])
    return [{"seed": int(seed) + i, **fixed} for i in range(s["seeds"])]


def backdoor_grid(profile: str, seed: int = 0) -> list[dict[str, Any]]:
    """Configurations of :func:`run_backdoor`: one per task, trigger and seed, the main experiment's data and recipe.

    The single-attribute recipe of :func:`main_grid` (``single_recipe``) and epochs (GMP-RI: the
    GMP runs' epochs, so that dense and sparse models have the same budget). quick: "fringe" with
    the square, pruned to 90% and 99.5%, one seed; full: "Smiling" with the square, pruned to 90%,
    98% and 99.5%, 3 seeds; paper: the paper's four attributes (Blond Hair and Smiling at 95/5,
    Oval Face and Big Nose at 65/35) × both triggers × 5 seeds, pruned to every sparsity, 20 epochs.
    The first configuration is the chapter's main backdoor.
    """
    s = _settings(profile, seed)
    recipe = dict(s.get("single_recipe") or {})
    # GMP-RI trains every model from initialisation: the dense one as long as each sparse run
    epochs = recipe.get("prune_epochs", s["prune_epochs"]) if s["variant"] == "ri" else s["single_epochs"]
    tasks = s.get("backdoor_tasks") or [[s["backdoor"], s["backdoor_split"]]]
    triggers = s.get("backdoor_triggers") or ["square"]
    return [{"seed": int(seed) + i, **{k: s[k] for k in _SHARED}, "recipe": recipe or None,
             "epochs": epochs, "attribute": attribute, "split": list(split), "trigger": trigger,
             "sparsities": s["backdoor_sparsities"]}
            for attribute, split in tasks for trigger in triggers for i in range(s["backdoor_seeds"])]


# --------------------------------------------------------------------------- compute plans (fairlib.plan)
#: CelebA's official partition (train, val, test) and its attribute count; SynthFaces' multi-attribute
#: mode has 4 identities and 12 attributes.
_CELEBA_SPLITS = {"train": 162_770, "val": 19_867, "test": 19_962}
_N_ATTRIBUTES = {"celeba": 40, "synthfaces": 16}
#: CelebA's aligned crops are 178 x 218 JPEGs.
_CELEBA_SOURCE_PIXELS = 178 * 218


def _recipe_stages(config: Mapping[str, Any], n_outputs: int, sparsities: Sequence[float], dense_epochs: float,
                   host: float, matched: bool = False) -> tuple[list, dict[str, Any]]:
    """Dense training and one :func:`train_gmp` run per target (shared by :func:`run_seed` and :func:`run_backdoor`).

    Dense: ``dense_epochs`` epochs of the training split (fractional epochs are that share of the
    steps). GMP: ``prune_epochs`` epochs for each target (and, with ``matched``, the 0% run of
    GMP-PT). The images are read from the ``uint8`` cache (a memory map) by the training process
    (no loader workers); SGD keeps one state per parameter, Adam two. On the GPU beside the model
    being pruned (whose masks double its weights): the dense model and the finished pruned
    models, each with its masks. With ``best_val`` every epoch that may be selected (each dense
    epoch; each GMP epoch from ``prune_end`` on) is followed by a prediction of the validation split.
    """
    from fairlib.plan import Stage, amp_default, builder, measure
    from fairlib.training import batch_plan

    size = int(dict(config.get("data_options") or {}).get("size", 24))
    n_train = _split_size(config, "train")
    batch = int(config["batch_size"])
    model = builder(build_multilabel_model, config["model"], n_outputs, image_size=size, seed=0,
                    **dict(config.get("model_options") or {}))
    shape = (3, size, size)
    per_epoch = batch_plan(n_train, batch)

    def samples(epochs: float) -> int:
        steps = int(epochs) * len(per_epoch) if float(epochs).is_integer() else \
            max(1, int(round(float(epochs) * len(per_epoch))))
        return steps * batch

    state = {"sgd": 1, "adam": 2}
    weights = measure(model, shape, 1).param_bytes
    io = {**_pipeline(config, size), "amp": amp_default(train)}  # the engine's mixed precision on a GPU
    gmp_state = state["sgd" if config["variant"] == "ri" else "adam"]
    runs = len(set(sparsities)) + (1 if matched and config["variant"] == "pt" else 0)
    kept = len(set(sparsities))
    stages = [Stage("dense training", model, shape, train_samples=samples(dense_epochs), batch_size=batch,
                    optimizer_state=state[str(config["dense_optimizer"])], host_bytes=host, **io),
              Stage("GMP training, one run per target", model, shape,
                    train_samples=runs * int(config["prune_epochs"]) * sum(per_epoch),
                    batch_size=batch, optimizer_state=gmp_state, host_bytes=host,
                    gpu_bytes=weights * (2 + 2 * kept), **io)]
    if config.get("best_val"):
        candidates = math.ceil(float(dense_epochs)) + runs * (int(config["prune_epochs"]) - int(config["prune_end"]))
        stages.append(Stage("best-epoch selection on the validation split", model, shape,
                            eval_samples=candidates * _selection_size(config), eval_batch_size=1024,
                            host_bytes=host, gpu_bytes=weights * (2 + 2 * kept),
                            **{**io, "amp": amp_default(predict)}))
    return stages, {"model": model, "shape": shape, "io": io, "weights": weights, "kept": kept}


def _selection_size(config: Mapping[str, Any]) -> int:
    n = _split_size(config, "val")
    return min(n, int(config["select_on"])) if config.get("select_on") else n


def _split_size(config: Mapping[str, Any], split: str) -> int:
    n = dict(dict(config.get("split_options") or {}).get(split) or {}).get("n")
    if config["data"] == "celeba":
        return min(int(n), _CELEBA_SPLITS[split]) if n else _CELEBA_SPLITS[split]
    if not n:
        raise ValueError(f"split_options: the cost model needs the size of the {split!r} split of {config['data']!r}")
    return int(n)


def _pipeline(config: Mapping[str, Any], size: int) -> dict[str, Any]:
    """File-based images come from the cache (a memory map); rendered ones are tensors in RAM."""
    if config["data"] == "synthfaces":
        return {"pipeline": "memory"}
    return {"pipeline": "cache", "source_pixels": size * size, "data": (str(config["data"]),)}


def _cache_stage(config: Mapping[str, Any]) -> Any:
    """The one pass that decodes every split into the ``uint8`` cache (memoised: once per chapter)."""
    from fairlib.plan import Stage

    if config["data"] == "synthfaces":
        return None
    n = sum(_split_size(config, split) for split in _SPLITS)
    return Stage("cache the splits", images=n, pipeline="decode", source_pixels=_CELEBA_SOURCE_PIXELS,
                 workers=int(config.get("workers", 0)), data=(str(config["data"]),),
                 shared=f"05:cache:{config['data']}:{config.get('data_options')}:{config.get('split_options')}")


def _resident(config: Mapping[str, Any], n_outputs: int, models: int) -> float:
    """Host bytes a run holds: rendered images (quick), labels, logits and the result's lists.

    Labels: int64 (N x K) per split; logits: float32 (val + test) x K per model; the result keeps
    every model's test predictions and the dense logits as Python lists (8-byte references, 24-byte
    floats) and serialises them to JSON (about as large again).
    """
    size = int(dict(config.get("data_options") or {}).get("size", 24))
    n = {split: _split_size(config, split) for split in _SPLITS}
    images = 3 * size * size * sum(n.values()) if config["data"] == "synthfaces" else 0
    labels = 8 * n_outputs * sum(n.values())
    logits = 4 * n_outputs * models * (n["val"] + n["test"])
    results = 2 * (8 * models + 32) * n_outputs * n["test"]
    return images + labels + logits + results


def _run_seed_cost(config: Mapping[str, Any]) -> list:
    """The work of one :func:`run_seed` configuration: cache, dense + GMP models, then every measurement.

    After training, every joint model (dense and one per sparsity) predicts the validation and test
    splits (batch 1024); each attribute of ``single`` gets its own dense model (``single_epochs``)
    and a test prediction; each N:M pattern one test prediction of a pruned copy; the backdoor's
    control one more of the stamped test split (a file-backed copy: page cache). The metrics, BA
    tables and countermeasures are NumPy over (test images x attributes) arrays, a few per model
    and method: negligible next to the networks.
    """
    from fairlib.plan import Stage, amp_default

    k = _N_ATTRIBUTES[str(config["data"])] - len(config.get("drop") or ())
    sparsities = list(config["sparsities"])
    models = 1 + len(set(sparsities))
    host = _resident(config, k, models)
    stages, r = _recipe_stages(config, k, sparsities, config["dense_epochs"], host, matched=True)
    n_val, n_test = _split_size(config, "val"), _split_size(config, "test")
    common = {"eval_batch_size": 1024, "host_bytes": host, **r["io"], "amp": amp_default(predict)}
    extra = r["weights"] * (1 + 2 * r["kept"])
    matched = 1 if config["variant"] == "pt" else 0
    stages.append(Stage("validation and test logits", r["model"], r["shape"],
                        eval_samples=models * (n_val + n_test) + matched * n_test,
                        gpu_bytes=extra, **common))
    single = list(config.get("single") or ())
    if single:
        from fairlib.plan import builder

        size = r["shape"][-1]
        alone = builder(build_multilabel_model, config["model"], 1, image_size=size, seed=0,
                        **dict(config.get("model_options") or {}))
        dense, _ = _recipe_stages({**config, "prune_epochs": config["prune_end"]}, 1, [0.0],
                                  config["single_epochs"], host)
        stages.append(Stage("single-attribute models", alone, r["shape"],
                            train_samples=len(single) * dense[0].train_samples, batch_size=int(config["batch_size"]),
                            optimizer_state=dense[0].optimizer_state, host_bytes=host, gpu_bytes=extra, **r["io"]))
        if len(dense) > 2:  # the dense single models' best-epoch selection
            stages.append(dataclasses.replace(dense[2], name="single-attribute best-epoch selection",
                                              eval_samples=len(single) * dense[2].eval_samples))
        single_sparse = len(config.get("single_sparsities") or ())
        if single_sparse:
            gmp, _ = _recipe_stages({**config, **dict(config.get("single_recipe") or {})}, 1,
                                    list(config["single_sparsities"]), config["single_epochs"], host)
            stages.append(Stage("single-attribute GMP runs", alone, r["shape"],
                                train_samples=len(single) * gmp[1].train_samples, batch_size=int(config["batch_size"]),
                                optimizer_state=gmp[1].optimizer_state, host_bytes=host, gpu_bytes=extra, **r["io"]))
            if len(gmp) > 2:  # their selection, less the dense epochs already counted above
                dense_share = _selection_size(config) * math.ceil(float(config["single_epochs"]))
                stages.append(dataclasses.replace(gmp[2], name="single-attribute GMP best-epoch selection",
                                                  eval_samples=len(single) * (gmp[2].eval_samples - dense_share)))
        stages.append(Stage("single-attribute models", alone, r["shape"],
                            eval_samples=len(single) * (1 + single_sparse) * n_test, gpu_bytes=extra, **common))
    n_masks = len(config.get("nm_patterns") or ())
    controls = n_masks + (1 if config.get("backdoor") is not None else 0)
    stages.append(Stage("N:M masks and backdoor control", r["model"], r["shape"], eval_samples=controls * n_test,
                        gpu_bytes=extra + r["weights"], **common))
    cache = _cache_stage(config)
    return ([cache] if cache else []) + stages


def _run_backdoor_cost(config: Mapping[str, Any]) -> list:
    """The work of one :func:`run_backdoor` configuration.

    The trigger is stamped on copies of the training and test splits (file-backed maps above
    512 MiB: page cache, not RAM); a one-attribute model is trained ``epochs`` on them and pruned
    with the GMP recipe; every model (dense and each sparsity) predicts the test split twice, with
    and without the trigger.
    """
    from fairlib.plan import Stage, amp_default

    sparsities = list(config["sparsities"])
    models = 1 + len(set(sparsities))
    size = int(dict(config.get("data_options") or {}).get("size", 24))
    n_test = _split_size(config, "test")
    stamped = 3 * size * size * (_split_size(config, "train") + n_test)
    host = _resident(config, 1, models) + (stamped if stamped <= _STAMP_IN_MEMORY else 0)
    stages, r = _recipe_stages({**config, **dict(config.get("recipe") or {})}, 1, sparsities, config["epochs"], host)
    stages.append(Stage("test with and without the trigger", r["model"], r["shape"], eval_samples=2 * models * n_test,
                        eval_batch_size=1024, host_bytes=host, gpu_bytes=r["weights"] * (1 + 2 * r["kept"]),
                        **{**r["io"], "amp": amp_default(predict)}))
    cache = _cache_stage(config)
    return ([cache] if cache else []) + stages


sweep.register("05_pruning_bias", "main", run_seed, main_grid,
               "per seed: dense joint and single-attribute models and one GMP run per sparsity, with every metric",
               cost=_run_seed_cost)
sweep.register("05_pruning_bias", "backdoor", run_backdoor, backdoor_grid,
               "a backdoor trigger planted in training, measured with BA, dense and pruned", cost=_run_backdoor_cost)


# --------------------------------------------------------------------------- tables from the sweeps
def _rows(frame: pd.DataFrame, *columns: str, name: str = "frame", producer: str = "run_seed") -> list[pd.Series]:
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise ValueError(f"{name}: expected the non-empty frame that sweep.run returned for {producer}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: lacks the column(s) {missing}; pass the frame that sweep.run returned for "
                         f"{producer}")
    return [r for _, r in frame.iterrows()]


def ba_cube(frame: pd.DataFrame, key: str = "ba") -> np.ndarray:
    """BA tables of :func:`run_seed`'s frame as an array, one entry per seed (row).

    Returns
    -------
    numpy.ndarray
        ``key="ba"``: shape ``(seeds, models, K, I)``; ``key="mitigation_ba"``:
        ``(seeds, models, methods, K, I)``. Models are dense, then each sparsity.
    """
    if key not in ("ba", "mitigation_ba"):
        raise ValueError(f"key: unknown BA column {key!r}; choose 'ba' or 'mitigation_ba'")
    extra = ("mitigation_methods",) if key == "mitigation_ba" else ()
    cubes = []
    for r in _rows(frame, "sparsity", "attributes", "identities", key, *extra):
        shape = (len(r["sparsity"]),) + ((len(r["mitigation_methods"]),) if key == "mitigation_ba" else ()) \
            + (len(r["attributes"]), len(r["identities"]))
        cubes.append(np.asarray(r[key], dtype=float).reshape(shape))
    return np.stack(cubes)


def sparsity_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (seed, model): ``seed``, ``sparsity`` (0: dense), ``measured_sparsity``, :data:`SUMMARY_METRICS`."""
    return pd.DataFrame([{"seed": r["seed"], "sparsity": s, "measured_sparsity": r["measured_sparsity"][i],
                          **{k: r[k][i] for k in SUMMARY_METRICS}}
                         for r in _rows(frame, "seed", "sparsity", "measured_sparsity", *SUMMARY_METRICS)
                         for i, s in enumerate(r["sparsity"])])


def dense_ba_table(frame: pd.DataFrame) -> pd.DataFrame:
    """BA of the dense joint models per (attribute, identity), mean over seeds (NaN where every seed is NaN)."""
    first = _rows(frame, "attributes", "identities")[0]
    cube = ba_cube(frame)[:, 0]
    counts = np.isfinite(cube).sum(0)
    mean = np.where(counts > 0, np.nansum(cube, 0) / np.maximum(counts, 1), np.nan)
    return pd.DataFrame(mean, index=first["attributes"], columns=first["identities"])


def worst_ba_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Worst-case BA of each attribute over the identities: one row per (seed, sparsity, attribute) where defined."""
    cube = ba_cube(frame)
    rows = []
    for r, per_seed in zip(_rows(frame, "seed"), cube):
        for s, table in zip(r["sparsity"], per_seed):
            for a, values in zip(r["attributes"], table):
                if np.isfinite(values).any():
                    rows.append({"seed": r["seed"], "sparsity": s, "attribute": a, "worst BA": worst_ba(values)})
    return pd.DataFrame(rows, columns=["seed", "sparsity", "attribute", "worst BA"])


def single_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Joint versus single-attribute training: one row per (seed, attribute, training).

    Columns ``attribute``, ``training`` (``"joint"``/``"single"``), ``sparsity`` (0: dense),
    ``seed``, accuracy, auc, tcb, uncertainty, ece and ``BA <identity>`` for each identity category.
    """
    rows = []
    needed = ("seed", "identities", "single_ba", "single_attribute", "single_training",
              *(f"single_{k}" for k in ("accuracy", "auc", "tcb", "uncertainty", "ece")))
    for r in _rows(frame, *needed):
        n_id = len(r["identities"])
        ba = np.asarray(r["single_ba"], dtype=float).reshape(-1, n_id)
        sparsity = r["single_sparsity"] if "single_sparsity" in r else [0.0] * len(r["single_attribute"])
        for i, (a, t) in enumerate(zip(r["single_attribute"], r["single_training"])):
            rows.append({"attribute": a, "training": t, "sparsity": float(sparsity[i]), "seed": r["seed"],
                         **{k: r[f"single_{k}"][i] for k in ("accuracy", "auc", "tcb", "uncertainty", "ece")},
                         **{f"BA {g}": v for g, v in zip(r["identities"], ba[i])}})
    return pd.DataFrame(rows)


def _cie_inputs(frame: pd.DataFrame) -> tuple[list[pd.Series], np.ndarray, np.ndarray]:
    rows = _rows(frame, "attributes", "sparsity", "test_predictions", "dense_test_logits")
    preds, dense_prob = [], []
    for r in rows:
        k = len(r["attributes"])
        preds.append(np.asarray(r["test_predictions"], dtype=np.int64).reshape(len(r["sparsity"]), -1, k))
        dense_prob.append(sigmoid(np.asarray(r["dense_test_logits"], dtype=float).reshape(-1, k)))
    return rows, np.stack(preds), np.stack(dense_prob)


def cie_table(frame: pd.DataFrame) -> pd.DataFrame:
    r"""Compression-identified exemplars over the seeds, per sparsity, with the uncertainty of each dense model.

    For each sparsity, the CIEs (:func:`compression_identified_exemplars`) of the seeds' dense
    against their sparse test predictions (per example and attribute). Uncertainty is measured
    per dense model :math:`r` (not on the seed-averaged probability, which is pulled towards 0.5):
    :math:`u^{\mathrm{CIE}}_r` is the share of model :math:`r`'s probabilities on the CIEs in
    (0.1, 0.9), :math:`u_r` the same on all test predictions, and the enrichment is
    :math:`\bar u^{\mathrm{CIE}} / \bar u` (means over the dense models). Use an odd number of seeds.

    Returns
    -------
    pandas.DataFrame
        Index ``sparsity``; columns ``share of CIEs``, ``dense uncertainty on CIEs`` (mean over
        the dense models; NaN when there are no CIEs), its ``min``/``max`` over the models,
        ``dense uncertainty on all`` (mean over the models) and ``enrichment``.
    """
    rows, preds, prob = _cie_inputs(frame)
    u_all = np.array([metrics.uncertainty_rate(p) for p in prob])
    out = []
    for i, s in enumerate(rows[0]["sparsity"]):
        if i == 0:
            continue
        cie = compression_identified_exemplars(preds[:, 0], preds[:, i])
        u_cie = np.array([metrics.uncertainty_rate(p[cie]) for p in prob]) if cie.any() else np.full(len(prob), np.nan)
        out.append({"sparsity": s, "share of CIEs": float(cie.mean()),
                    "dense uncertainty on CIEs": float(u_cie.mean()),
                    "min over dense models": float(u_cie.min()), "max over dense models": float(u_cie.max()),
                    "dense uncertainty on all": float(u_all.mean()),
                    "enrichment": float(u_cie.mean() / u_all.mean()) if u_all.mean() > 0 else float("nan")})
    return pd.DataFrame(out).set_index("sparsity")


def cie_examples(frame: pd.DataFrame, sparsity: float, n: int = 8, seed: int = 0) -> pd.DataFrame:
    """A random sample of ``n`` compression-identified exemplars at ``sparsity``, for review by eye.

    Returns
    -------
    pandas.DataFrame
        One row per (test example, attribute): ``index`` (test image), ``attribute``,
        ``dense p`` (mean sigmoid of the dense models), ``dense modal`` and ``sparse modal``
        (the modal 0/1 predictions over the seeds). Fewer rows when there are fewer CIEs.
    """
    rows, preds, prob = _cie_inputs(frame)
    n = positive_int(n, "n", meaning="(examples to show)")
    sparsities = [float(v) for v in rows[0]["sparsity"]]
    if float(sparsity) not in sparsities[1:]:
        raise ValueError(f"sparsity: {sparsity!r} is not a sparse model of the frame; choose from {sparsities[1:]}")
    i = sparsities.index(float(sparsity))
    cie = compression_identified_exemplars(preds[:, 0], preds[:, i])
    where = np.argwhere(cie)
    pick = np.random.default_rng(seed).permutation(len(where))[:n]
    attrs = rows[0]["attributes"]
    dense_m, sparse_m = modal_prediction(preds[:, 0]), modal_prediction(preds[:, i])
    return pd.DataFrame([{"index": int(e), "attribute": attrs[a], "dense p": float(prob[:, e, a].mean()),
                          "dense modal": int(dense_m[e, a]), "sparse modal": int(sparse_m[e, a])}
                         for e, a in where[np.sort(pick)]],
                        columns=["index", "attribute", "dense p", "dense modal", "sparse modal"])


def mean_interval(values: Any, level: float = 0.95) -> tuple[float, float, float]:
    r"""Mean of the finite ``values`` and its Student-t interval, :math:`\bar x \pm t_{n-1}\, s/\sqrt n`.

    NaN bounds with fewer than two finite values.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if v.size < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def mitigation_effects(frame: pd.DataFrame, pairs: Any, sparsity: float) -> pd.DataFrame:
    r"""Each countermeasure's effect on the mean BA of ``pairs`` at ``sparsity``, with a t-interval over seeds.

    For seed :math:`r` and method :math:`m`, the paired difference
    :math:`\Delta_{r,m} = \overline{\mathrm{BA}}_{r,m} - \overline{\mathrm{BA}}_{r,\text{default}}`
    (means over the selected pairs). Reported: the baseline's mean and interval, each
    method's mean BA, :math:`\bar\Delta` and its interval, and a percentage change
    :math:`100\,\bar\Delta / \overline{\mathrm{BA}}_{\text{default}}` with its interval only when
    the baseline's interval lies wholly above 0 (NaN otherwise: a change relative to a baseline
    that may be zero or negative has no meaning).

    Returns
    -------
    pandas.DataFrame
        Index: method; columns ``mean BA``, ``change``, ``change low``, ``change high``,
        ``change %``, ``change % low``, ``change % high``.
    """
    table = mitigation_table(frame, pairs)
    at = table[np.isclose(table["sparsity"], float(sparsity))]
    if at.empty:
        raise ValueError(f"sparsity: no model at {sparsity!r}; choose from {sorted(set(table['sparsity']))}")
    methods = [c for c in at.columns if c not in ("seed", "sparsity")]
    base = at["default threshold"].to_numpy(dtype=float)
    b_mean, b_low, b_high = mean_interval(base)
    rows = []
    for m in methods:
        diff = at[m].to_numpy(dtype=float) - base
        d_mean, d_low, d_high = mean_interval(diff)
        ok = np.isfinite(b_low) and b_low > 0
        pct = [100 * v / b_mean if ok else float("nan") for v in (d_mean, d_low, d_high)]
        values = at[m].to_numpy(dtype=float)
        rows.append({"method": m, "mean BA": mean_interval(values)[0], "change": d_mean, "change low": d_low,
                     "change high": d_high, "change %": pct[0], "change % low": pct[1], "change % high": pct[2]})
    out = pd.DataFrame(rows).set_index("method")
    out.attrs["baseline"] = (b_mean, b_low, b_high)
    return out


def mitigation_table(frame: pd.DataFrame, pairs: Any) -> pd.DataFrame:
    """Mean BA over the selected (attribute, identity) ``pairs`` after each countermeasure.

    Parameters
    ----------
    pairs
        Boolean ``(K, I)`` (array or DataFrame): which pairs count, e.g. those whose dense BA is
        positive.

    Returns
    -------
    pandas.DataFrame
        One row per (seed, model): ``seed``, ``sparsity``, then one column per method of
        :func:`run_seed` (default threshold, calibrated thresholds, overrides).
    """
    mask = _pairs(pairs)
    cube = ba_cube(frame, "mitigation_ba")
    return pd.DataFrame([{"seed": r["seed"], "sparsity": s,
                          **{m: mean_ba(per_model[j], mask) for j, m in enumerate(r["mitigation_methods"])}}
                         for r, per_seed in zip(_rows(frame, "seed"), cube)
                         for s, per_model in zip(r["sparsity"], per_seed)])


def nm_table(frame: pd.DataFrame) -> pd.DataFrame:
    """N:M patterns applied one-shot to the dense models: mean over seeds of the measured sparsity and metrics."""
    rows = [{"pattern": p, "measured sparsity": r["nm_sparsity"][i], **{k: r[f"nm_{k}"][i] for k in SUMMARY_METRICS}}
            for r in _rows(frame, "nm_pattern", "nm_sparsity", *(f"nm_{k}" for k in SUMMARY_METRICS))
            for i, p in enumerate(r["nm_pattern"])]
    return pd.DataFrame(rows).groupby("pattern", sort=False).mean()


_BACKDOOR_COLUMNS = {"accuracy_triggered": "accuracy, trigger on half", "accuracy_clean": "accuracy, clean images",
                     "positive_rate": "predicted positive rate", "ba": "BA (backdoored)"}


def backdoor_table(backdoor: pd.DataFrame, main: pd.DataFrame | None = None) -> pd.DataFrame:
    """The backdoor experiment's models, and the clean dense joint model of the same seeds as a control.

    Parameters
    ----------
    backdoor
        The frame of :func:`run_backdoor`, one row per seed.
    main
        The frame of :func:`run_seed` run with ``backdoor`` set; the rows of the same seeds give
        the control ("clean joint model", never shown the trigger). ``None``: no control row.

    Returns
    -------
    pandas.DataFrame
        One row per (seed, model, sparsity): columns ``seed``, ``model``, ``sparsity``, accuracy
        with the trigger on half the test images, accuracy on clean images, predicted positive
        rate, BA (backdoored). Average with ``groupby(["model", "sparsity"]).mean()``.
    """
    rows = []
    for r in _rows(backdoor, "seed", "sparsity", *_BACKDOOR_COLUMNS, name="backdoor", producer="run_backdoor"):
        rows += [{"seed": r["seed"], "model": "trained with trigger", "sparsity": s,
                  **{v: r[k][i] for k, v in _BACKDOOR_COLUMNS.items()}} for i, s in enumerate(r["sparsity"])]
        if main is not None:
            _rows(main, "seed", name="main")
            same = main[main["seed"] == r["seed"]]
            if same.empty or "control_ba" not in same:
                raise ValueError(f"main: no run_seed row of seed {r['seed']} with the backdoor control")
            c = same.iloc[0]
            rows.append({"seed": r["seed"], "model": "clean joint model", "sparsity": 0.0,
                         **{v: c[f"control_{k}"] for k, v in _BACKDOOR_COLUMNS.items()}})
    return pd.DataFrame(rows)
