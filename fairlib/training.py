r"""The one training engine and the one batched prediction helper of fairlib.

Every method module trains through :func:`train` and predicts through :func:`predict`; what is
specific to a paper is a *step function* or a *callback*, never another loop:

- the Fader network's alternating discriminator/encoder update is a step function
  (:mod:`fairlib.invariance`), its model selection a callback;
- gradual magnitude pruning's mask schedule is a callback (:mod:`fairlib.pruning`);
- the linear probe's L1/L2 penalty is the ``penalty`` of :func:`supervised_step`
  (:mod:`fairlib.probes`).

The engine's rules
------------------
Minibatches
    Each epoch shuffles the examples with the run's own generator (seeded by ``seed``) and cuts
    them into batches of ``batch_size``. The last, partial batch is kept, except a lone example
    left over when ``batch_size > 1`` (it would break batch normalisation and adds a one-example
    step); ``batch_size=1`` trains on every example. One batch covering all the data is not
    shuffled. See :func:`batch_plan`.
Epochs
    An integer, or a fraction for a short fine-tune: ``epochs * steps_per_epoch`` steps,
    rounded, at least one.
State
    Nothing global is left changed when :func:`train` returns: the global RNG is forked
    (``torch.random.fork_rng``) and seeded inside, so initialisation and dropout are
    reproducible without touching the caller's RNG; thread counts, flush-to-zero, cuDNN and
    determinism flags are restored.
CUDA
    ``amp`` runs the step under autocast (float16) with a ``GradScaler``;
    ``channels_last`` converts model and inputs; both default to on for CUDA (off on a CPU),
    and :func:`predict` autocasts on CUDA unless ``amp=False``. ``cudnn.benchmark`` is on
    unless ``deterministic``.
Checkpoints
    With ``checkpoint=PATH`` the run writes its complete state (model, optimizers, scaler,
    generators, history, callback states) atomically after every finished epoch and, when
    called again with the same path, resumes after the last finished epoch. A checkpoint of a
    different model is refused.

Chapter 2 (bias amplification) uses :func:`train_and_evaluate` and :func:`fit`: Hall et al.'s
schedule (after He et al.): SGD with Nesterov momentum 0.9, weight decay in the optimizer, one
warm-up epoch at ``lr/10``, then ``lr``, divided by 10 at 50% and again at 75% of the epochs (the
paper: 500 epochs, lr 0.1, decays after 250 and 375). Every ``eval_every`` epochs (and after the
last) the model is evaluated on the test task and the history row gets:

==================  ===========================================================================
column              meaning
==================  ===========================================================================
``epoch``           epochs completed
``lr``              learning rate of the last epoch
``loss``            mean training loss of the last epoch
``accuracy``        test accuracy
``biasamp``         BiasAmp\ :sub:`A→T` (:func:`fairlib.metrics.bias_amplification`) on the test set
``ece``             expected calibration error, 15 bins, max-softmax confidence
``acc_c{c}_g{g}``   accuracy on test examples of class ``c`` and group ``g``
==================  ===========================================================================
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from fairlib import metrics
from fairlib._validation import device as as_device
from fairlib._validation import integer, number, positive_int
from fairlib.config import get_device
from fairlib.notebook import progress

__all__ = [
    "train",
    "predict",
    "supervised_step",
    "batch_plan",
    "make_optimizer",
    "Callback",
    "KeepBest",
    "TrainState",
    "CheckpointError",
    "step_decay_schedule",
    "cosine_schedule",
    "warmup_cosine_schedule",
    "lr_at_epoch",
    "evaluate",
    "augment_batch",
    "train_and_evaluate",
    "fit",
]

OUTPUTS = ("logits", "probs", "labels")


def _callable(value: Any, name: str, *, allow_none: bool = True, what: str = "a function") -> None:
    """Raise a ``TypeError`` naming ``name`` unless ``value`` is callable (or ``None`` when allowed)."""
    if value is None and allow_none:
        return
    if not callable(value):
        raise TypeError(f"{name}: expected {what}{' or None' if allow_none else ''}, got {type(value).__name__}")


def _module(model: Any, name: str = "model") -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name}: expected a torch.nn.Module, got {type(model).__name__}")


def _number(value: Any, name: str, *, minimum: float = 0.0, strict: bool = False, what: str = "") -> float:
    """A finite real number >= ``minimum`` (> with ``strict``), or a ``ValueError`` naming ``name``."""
    return number(value, name, low=minimum, low_open=strict,
                  expected=what or f"a finite number {'>' if strict else '>='} {minimum:g}")


def _device(value: Any) -> torch.device:
    return as_device(value)


def _task(task: Any, name: str) -> None:
    missing = [a for a in ("x", "y", "group") if not hasattr(task, a)]
    if missing:
        raise TypeError(f"{name}: expected a task with tensors x, y and group (fairlib.amplification.Task), "
                        f"got {type(task).__name__} without {missing}")


class CheckpointError(ValueError):
    """A checkpoint file does not belong to this model or run."""


# --------------------------------------------------------------------------- data
class TensorBatches(torch.utils.data.Dataset):
    """Tensors (or arrays) indexed by whole batches: one fancy-indexing call per batch.

    ``DataLoader`` calls :meth:`__getitems__` with a batch's indices, so a batch costs one
    gather per tensor instead of one ``__getitem__`` per example. Numpy arrays and memory maps
    are read with sorted indices (sequential reads) and returned in the batch's order.
    """

    def __init__(self, *tensors: Any):
        n = {len(t) for t in tensors}
        if len(n) != 1:
            raise ValueError(f"data: tensors of different lengths {[len(t) for t in tensors]}; pass one row per "
                             "example in each")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, i: int) -> tuple:
        return tuple(gather_rows(t, [i])[0] for t in self.tensors)

    def __getitems__(self, indices: Sequence[int]) -> tuple:
        return tuple(gather_rows(t, indices) for t in self.tensors)


def gather_rows(t: Any, indices: Sequence[int]) -> torch.Tensor:
    """Rows ``indices`` of a tensor, array or memory map as a tensor, in the order given.

    Arrays and memory maps are read with sorted indices (sequential reads) and put back in order.
    """
    if isinstance(t, torch.Tensor):
        return t[torch.as_tensor(indices, dtype=torch.long, device=t.device)]
    idx = np.asarray(indices, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    block = np.asarray(t[idx[order]])
    out = np.empty_like(block)
    out[order] = block
    return torch.from_numpy(out)


def _identity(batch: Any) -> Any:
    return batch


def _as_dataset(data: Any) -> tuple[torch.utils.data.Dataset, bool]:
    """A Dataset from tensors / arrays / a Dataset; the flag says whether it is batch-indexed."""
    if isinstance(data, torch.utils.data.Dataset):
        return data, hasattr(data, "__getitems__")
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return TensorBatches(data), True
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, (torch.Tensor, np.ndarray)) for t in data):
        return TensorBatches(*data), True
    raise TypeError("data: expected a tensor, a tuple of tensors (inputs, targets[, weights]) or a "
                    f"torch.utils.data.Dataset, got {type(data).__name__}")


def batch_plan(n: int, batch_size: int) -> list[int]:
    """Sizes of one epoch's batches under the engine's last-batch rule.

    ``n // batch_size`` full batches, then the remainder, unless it is a single example and
    ``batch_size > 1`` (a lone example breaks batch normalisation): ``batch_plan(10, 4)`` is
    ``[4, 4, 2]``, ``batch_plan(9, 4)`` is ``[4, 4]``, ``batch_plan(3, 1)`` is ``[1, 1, 1]``.
    """
    n = positive_int(n, "n", meaning="(examples)")
    batch_size = positive_int(batch_size, "batch_size")
    sizes = [batch_size] * (n // batch_size)
    rest = n % batch_size
    if rest > 1 or (rest == 1 and not sizes):
        sizes.append(rest)
    return sizes


class _EpochBatches(torch.utils.data.Sampler):
    """Yields one epoch's batches of indices, shuffled with the run's generator."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, shuffle: bool, keep_all: bool = False):
        # prediction keeps every example; training follows the last-batch rule of batch_plan
        sizes = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
        self.sizes = sizes if keep_all else batch_plan(n, batch_size)
        self.n, self.generator, self.shuffle = n, generator, shuffle

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self) -> Iterator[list[int]]:
        many = len(self.sizes) > 1 or self.sizes[0] < self.n
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle and many else torch.arange(self.n)
        start = 0
        for size in self.sizes:
            yield order[start:start + size].tolist()
            start += size


def _prepare(x: torch.Tensor, device: torch.device, transform: Callable | None, channels_last: bool) -> torch.Tensor:
    """Inputs on the device: uint8 images become floats in [0, 1], then ``transform``."""
    x = x.to(device, non_blocking=True)
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    if transform is not None:
        x = transform(x)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _split_batch(batch: Any) -> tuple:
    if isinstance(batch, torch.Tensor):
        return (batch,)
    if isinstance(batch, (tuple, list)):
        return tuple(batch)
    raise TypeError(f"data: a batch must be a tensor or a tuple, got {type(batch).__name__}")


# --------------------------------------------------------------------------- optimisers and schedules
def make_optimizer(params: Any, name: str, *, lr: float, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.999), momentum: float = 0.9) -> torch.optim.Optimizer:
    """``"sgd"`` (Nesterov momentum, He et al.'s recipe) or ``"adam"`` (coupled L2 weight decay)."""
    number(lr, "lr", low=0, low_open=True, expected="a positive finite learning rate")
    if isinstance(params, nn.Module):
        raise TypeError("params: got a model; pass model.parameters() (or a list of parameter groups)")
    _number(weight_decay, "weight_decay", what="a finite, non-negative weight decay")
    _number(momentum, "momentum", what="a finite, non-negative momentum")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2
            and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
        raise ValueError(f"betas: expected two numbers in [0, 1), e.g. (0.9, 0.999), got {betas!r}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    raise ValueError(f"optimizer: unknown optimizer {name!r}; choose 'sgd' or 'adam'")


def lr_at_epoch(epoch: int, epochs: int, lr: float, warmup: bool = True) -> float:
    """Learning rate of 0-based ``epoch``: lr/10 for the warm-up epoch, ×0.1 from 50%, ×0.01 from 75%."""
    epochs = positive_int(epochs, "epochs")
    epoch = integer(epoch, "epoch", minimum=0, meaning="(0-based)")
    _number(lr, "lr", strict=True, what="a positive finite learning rate")
    if warmup and epoch == 0 and epochs > 1:
        return lr / 10
    if epoch >= int(round(0.75 * epochs)) and epochs >= 4:
        return lr * 0.01
    if epoch >= int(round(0.5 * epochs)) and epochs >= 2:
        return lr * 0.1
    return lr


def step_decay_schedule(warmup: bool = True) -> Callable[[TrainState], float]:
    """Hall et al.'s per-epoch multiplier (:func:`lr_at_epoch` with ``lr = 1``)."""
    if not isinstance(warmup, (bool, np.bool_)):
        raise TypeError(f"warmup: expected True or False, got {warmup!r}")
    def schedule(state: TrainState) -> float:
        return lr_at_epoch(state.epoch, state.epochs, 1.0, warmup=warmup)
    return schedule


def cosine_schedule(state: TrainState) -> float:
    r"""Per-step cosine decay :math:`\tfrac12(1 + \cos(\pi\,t/T))` over the run's ``T`` steps."""
    if not (hasattr(state, "step") and hasattr(state, "total_steps")):
        raise TypeError(f"state: expected the run's TrainState (pass cosine_schedule itself as schedule=, "
                        f"without calling it), got {type(state).__name__}")
    return 0.5 * (1 + math.cos(math.pi * state.step / state.total_steps))


def warmup_cosine_schedule(warmup_epochs: float) -> Callable[[TrainState], float]:
    r"""Linear warm-up, then a per-step cosine decay: the authors' ``CosineLR`` of Iofinova et al.

    With :math:`W = \operatorname{round}(w \cdot \text{steps per epoch})` warm-up steps
    (``w = warmup_epochs``, at most :math:`T - 1`) out of the run's :math:`T` steps, the factor
    before step :math:`t` (0-based) is

    .. math::
        f(t) = \frac{t + 1}{W} \quad (t < W), \qquad
        f(t) = \tfrac12\Bigl(1 + \cos\frac{\pi (t - W)}{T - W}\Bigr) \quad (t \ge W).

    ``warmup_epochs = 0`` is :func:`cosine_schedule`. The authors warm up for 5 of 100 epochs
    (``configs/celeba_resnet18_*_ep100.yaml``: ``warmup_length 5``).
    """
    w = _number(warmup_epochs, "warmup_epochs", what="a number of warm-up epochs >= 0")

    def schedule(state: TrainState) -> float:
        if not (hasattr(state, "step") and hasattr(state, "total_steps")):
            raise TypeError(f"state: expected the run's TrainState, got {type(state).__name__}")
        total = int(state.total_steps)
        warm = min(int(round(w * state.steps_per_epoch)), max(total - 1, 0))
        if state.step < warm:
            return (state.step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (state.step - warm) / max(total - warm, 1)))

    return schedule


# --------------------------------------------------------------------------- state and callbacks
@dataclass
class TrainState:
    """What a step function and the callbacks see of a running :func:`train`.

    ``epoch`` is the 0-based epoch being trained, ``step`` the number of optimiser steps done,
    ``total_steps`` the planned number, ``epochs`` the number of (possibly partial) epochs.
    ``generator`` is the run's CPU generator (shuffling; use it for augmentation and any other
    randomness of a step so that a resumed run repeats it).
    """

    model: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    device: torch.device
    generator: torch.Generator
    epochs: int
    total_steps: int
    steps_per_epoch: int
    amp: bool = False
    scaler: Any = None
    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)

    def optimize(self, loss: torch.Tensor, optimizer: str = "main") -> None:
        """Zero the gradients, backpropagate ``loss`` (scaled under AMP) and step ``optimizer``."""
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError(f"loss: expected a scalar tensor, got {type(loss).__name__}"
                            f"{' of shape ' + str(tuple(loss.shape)) if isinstance(loss, torch.Tensor) else ''}; "
                            "reduce it with .mean() or .sum() first")
        if optimizer not in self.optimizers:
            raise ValueError(f"optimizer: unknown optimiser {optimizer!r}; this run has {list(self.optimizers)}")
        if not torch.isfinite(loss.detach()).all():
            raise FloatingPointError(
                f"the loss is {float(loss.detach())} at step {self.step + 1} (epoch {self.epoch + 1}); "
                "training stopped. Likely causes: a learning rate that is too high, or inputs outside the "
                "expected range (NaN or inf pixels, unscaled images)")
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
        else:
            loss.backward()
            opt.step()


class Callback:
    """Hooks of :func:`train`, called in this order::

        on_fit_start
        for each epoch:  on_epoch_start, (step, on_step_end) per batch, on_epoch_end
        on_fit_end

    ``on_epoch_end`` may add entries to the epoch's history ``row``. A callback that keeps
    state across epochs returns it from :meth:`state_dict`, so that checkpoints resume it.
    """

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def on_step_end(self, state: TrainState, logs: Mapping[str, float]) -> None: ...

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None: ...

    def on_fit_end(self, state: TrainState) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class KeepBest(Callback):
    """Best-epoch checkpoint selection: the run ends with the weights of its best-scoring epoch.

    After every epoch from ``from_epoch`` on (0-based), ``score(model)`` (higher is better, e.g.
    a validation accuracy) is added to the history as ``val_score``; the weights of the best
    epoch so far are kept on the CPU and loaded into the model when the run ends. Earlier epochs
    are not candidates: GMP selects among the epochs at the final sparsity (the authors'
    ``best_sparse``). Ties keep the earlier epoch. The kept weights travel with checkpoints.

    Parameters
    ----------
    score
        ``score(model) -> float``, called in eval mode (under ``torch.no_grad`` by :func:`predict`).
    from_epoch
        First 0-based epoch that may be selected.
    """

    def __init__(self, score: Callable[[nn.Module], float], *, from_epoch: int = 0):
        _callable(score, "score", allow_none=False, what="a function score(model) -> float")
        self.score = score
        self.from_epoch = integer(from_epoch, "from_epoch", minimum=0, meaning="(0-based epoch)")
        self.best: float | None = None
        self.epoch: int | None = None
        self.weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        if state.epoch < self.from_epoch:
            return
        value = float(self.score(state.model))
        row["val_score"] = value
        if self.best is None or value > self.best:
            self.best, self.epoch = value, state.epoch
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in state.model.state_dict().items()}

    def on_fit_end(self, state: TrainState) -> None:
        if self.weights is not None:
            state.model.load_state_dict(self.weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "epoch": self.epoch, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.epoch, self.weights = state["best"], state["epoch"], state["weights"]


# --------------------------------------------------------------------------- steps
_LOSSES = ("cross_entropy", "bce", "mse")


def supervised_step(loss: str | Callable = "cross_entropy", *,
                    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
                    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
                    ) -> Callable[[TrainState, tuple], dict[str, float]]:
    """A step function for ``(inputs, targets[, weights])`` batches.

    Parameters
    ----------
    loss
        ``"cross_entropy"`` (class indices; a 1-logit model is treated as binary and gets
        ``"bce"``), ``"bce"`` (0/1 targets reshaped to the output), ``"mse"`` (against the
        targets, or against the inputs when the batch has none: an autoencoder), or a callable
        ``loss(outputs, batch) -> scalar``. Per-example ``weights`` (a third batch element)
        multiply the per-example loss before the mean.
    penalty
        ``penalty(model) -> scalar`` added to the loss that is optimised (not to the reported
        ``loss``), e.g. the probe's L1/L2 term.
    augment
        ``augment(inputs, generator)`` applied to the training inputs.
    """
    if isinstance(loss, str) and loss not in _LOSSES:
        raise ValueError(f"loss: unknown loss {loss!r}; choose one of {list(_LOSSES)} or pass a function")
    if not isinstance(loss, str):
        _callable(loss, "loss", allow_none=False, what=f"one of {list(_LOSSES)} or a function loss(outputs, batch)")
    _callable(penalty, "penalty", what="a function penalty(model)")
    _callable(augment, "augment", what="a function augment(inputs, generator)")

    def step(state: TrainState, batch: tuple) -> dict[str, float]:
        x = batch[0]
        if augment is not None:
            x = augment(x, state.generator)
        out = state.model(x)
        value = _loss(loss, out, batch)
        total = value if penalty is None else value + penalty(state.model)
        state.optimize(total)
        return {"loss": float(value.detach())}

    return step


def _loss(loss: str | Callable, out: torch.Tensor, batch: tuple) -> torch.Tensor:
    if callable(loss):
        return loss(out, batch)
    weights = batch[2] if len(batch) > 2 else None
    if loss == "mse":
        target = batch[1] if len(batch) > 1 else batch[0]
        per = F.mse_loss(out.float(), target.float(), reduction="none").flatten(1).mean(1)
    elif loss == "bce" or (loss == "cross_entropy" and out.dim() == 1):
        per = F.binary_cross_entropy_with_logits(out.float(), batch[1].float().reshape(out.shape), reduction="none")
        per = per.flatten(1).mean(1) if per.dim() > 1 else per
    else:
        per = F.cross_entropy(out.float(), _class_targets(batch[1], out.shape[-1]), reduction="none")
    return (per * weights).mean() if weights is not None else per.mean()


def _class_targets(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Cross-entropy targets as class indices in [0, n_classes), or a ``ValueError`` naming them."""
    if y.is_floating_point() and not bool((y == y.round()).all()):
        raise ValueError("targets: expected class indices for loss='cross_entropy', found fractional values; "
                         "pass hard labels (argmax of probabilities) or use loss='bce' / 'mse' for soft targets")
    y = y.long()
    if y.numel() and bool(((y < 0) | (y >= n_classes)).any()):
        bad = int(y[(y < 0) | (y >= n_classes)][0])
        raise ValueError(f"targets: class {bad} is outside [0, {n_classes}) for a model with {n_classes} outputs; "
                         "encode the classes as 0..C-1 or give the model more outputs")
    return y


# --------------------------------------------------------------------------- global state
def _flush_denormal_on() -> bool:
    # torch has no getter: a denormal times one is zero exactly when flushing is on
    return float(torch.tensor([1e-40], dtype=torch.float32).mul(1.0)[0]) == 0.0


@contextlib.contextmanager
def cpu_threads(n: int | None, device: Any) -> Iterator[None]:
    """Limit torch's intra-op threads to ``n`` while on the CPU, and restore them afterwards.

    ``None``, or a device that is not the CPU, leaves the setting alone. Small networks and probes
    run several times cheaper on one thread than on two busy cores of a shared machine.
    """
    if n is None or torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _isolated(seed: int, *, device: torch.device, num_threads: int | None, flush_denormal: bool,
              deterministic: bool) -> Iterator[None]:
    """Fork the RNG (seeded inside) and restore every torch setting the run changes."""
    cuda = device.type == "cuda"
    saved = {
        "flush": _flush_denormal_on(),
        "benchmark": torch.backends.cudnn.benchmark,
        "cudnn_det": torch.backends.cudnn.deterministic,
        "det": torch.are_deterministic_algorithms_enabled(),
        "det_warn": torch.is_deterministic_algorithms_warn_only_enabled(),
    }
    devices = [device.index or 0] if cuda else []
    with torch.random.fork_rng(devices=devices), cpu_threads(num_threads, device):
        torch.manual_seed(seed)
        try:
            if flush_denormal:
                torch.set_flush_denormal(True)
            if cuda:
                torch.backends.cudnn.benchmark = not deterministic
            if deterministic:
                torch.backends.cudnn.deterministic = True
                torch.use_deterministic_algorithms(True, warn_only=True)
            yield
        finally:
            torch.set_flush_denormal(saved["flush"])
            torch.backends.cudnn.benchmark = saved["benchmark"]
            torch.backends.cudnn.deterministic = saved["cudnn_det"]
            torch.use_deterministic_algorithms(saved["det"], warn_only=saved["det_warn"])


# --------------------------------------------------------------------------- checkpoints
def _fingerprint(model: nn.Module, optimizers: Mapping[str, torch.optim.Optimizer]) -> dict:
    return {"model": type(model).__name__,
            "tensors": [[k, list(v.shape)] for k, v in model.state_dict().items()],
            "optimizers": {k: type(o).__name__ for k, o in optimizers.items()}}


def _save_checkpoint(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _reattach_masks(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Give ``model`` the pruning masks a checkpoint has (``<module>.<name>_mask``) before loading it.

    A run that prunes as it trains (GMP) starts unpruned and is saved with ``torch.nn.utils.prune``'s
    ``weight_orig`` / ``weight_mask``; an identity mask makes the fresh model's keys match (the
    parameter keeps its identity, so the optimiser's state still applies to it).
    """
    from torch.nn.utils import prune

    for key in state:
        if not key.endswith("_mask"):
            continue
        module_name, _, name = key[: -len("_mask")].rpartition(".")
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            continue
        if f"{name}_mask" not in dict(module.named_buffers(recurse=False)) and name in dict(
                module.named_parameters(recurse=False)):
            prune.identity(module, name)


def _load_checkpoint(path: Path, fingerprint: dict) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"checkpoint: cannot read {path} ({exc}); delete it to start afresh") from exc
    if payload.get("fingerprint") != fingerprint:
        raise CheckpointError(f"checkpoint: {path} was written for a different model or optimiser "
                              f"({payload.get('fingerprint', {}).get('model')}); use another path or delete it")
    return payload


# --------------------------------------------------------------------------- the engine
def train(
    model: nn.Module,
    data: Any,
    *,
    epochs: int | float,
    batch_size: int,
    optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer] | Callable[[nn.Module], Any],
    step: Callable[[TrainState, tuple], Mapping[str, float]] | None = None,
    schedule: Callable[[TrainState], float] | None = None,
    callbacks: Sequence[Callback] = (),
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    shuffle: bool = True,
    seed: int = 0,
    device: Any = None,
    amp: bool | None = None,
    channels_last: bool | None = None,
    deterministic: bool = False,
    num_threads: int | None = None,
    flush_denormal: bool = False,
    num_workers: int = 0,
    checkpoint: str | os.PathLike | None = None,
    show_progress: bool = False,
    desc: str = "train",
) -> pd.DataFrame:
    """Train ``model`` in place; return one history row per epoch.

    Parameters
    ----------
    model
        Moved to ``device``; left in eval mode when the run ends.
    data
        A tensor of inputs, a tuple ``(inputs, targets[, weights])`` of tensors or arrays
        (memory maps are read batch by batch), or a ``Dataset`` of such tuples. uint8 inputs
        become floats in [0, 1] on the device; ``transform`` (e.g. a normalisation) follows.
    epochs
        Number of epochs; a fraction gives ``round(epochs * steps_per_epoch)`` steps (>= 1).
    batch_size
        Examples per step (see the module's last-batch rule; 1 is allowed).
    optimizer
        An optimiser, a dict of named optimisers (the step function chooses which one
        :meth:`TrainState.optimize` steps), or ``optimizer(model)`` returning either.
    step
        ``step(state, batch) -> {name: value}``: one update; the values are averaged over the
        epoch (weighted by batch size) into the history. Default: :func:`supervised_step`.
    schedule
        ``schedule(state) -> factor``: before every step, each parameter group's rate is its
        initial rate times the factor (:func:`step_decay_schedule`, :func:`cosine_schedule`).
    callbacks
        :class:`Callback` objects, called in the documented order.
    seed
        Seeds the shuffling generator and, inside a forked RNG, torch's global RNG (dropout,
        anything the step draws without the generator).
    amp, channels_last, deterministic
        CUDA options. ``amp`` (autocast to float16 with a gradient scaler) and ``channels_last``
        default to ``None``: on for CUDA, off elsewhere, so that a full run on a GPU gets both
        without every caller asking; on the CPU they are always off. cuDNN benchmarking is on
        unless ``deterministic``, which also turns it off (restored afterwards).
    num_threads, flush_denormal
        CPU options for the run only (restored afterwards). Flushing denormals helps when tiny
        activations drive Adam's state into denormal floats, ~100x slower on CPU.
    checkpoint
        File to resume from and to save to after every epoch (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        Columns ``epoch``, ``step``, ``lr`` (first group of the first optimiser, at the
        epoch's last step), the step's values, then whatever callbacks add.

    Raises
    ------
    FloatingPointError
        A non-finite loss: training stops at that step, and the message says which.
    CheckpointError
        ``checkpoint`` belongs to another model.
    """
    _module(model)
    batch_size = positive_int(batch_size, "batch_size")
    _callable(step, "step", what="a function step(state, batch)")
    _callable(schedule, "schedule", what="a function schedule(state) -> factor (e.g. cosine_schedule, uncalled)")
    _callable(transform, "transform", what="a function of the input batch")
    callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else callbacks
    if not isinstance(callbacks, list) or not all(isinstance(cb, Callback) for cb in callbacks):
        raise TypeError(f"callbacks: expected a list of fairlib.training.Callback objects, got {callbacks!r}")
    seed = integer(seed, "seed")
    num_threads = positive_int(num_threads, "num_threads", allow_none=True)
    num_workers = integer(num_workers, "num_workers", minimum=0)
    number(epochs, "epochs", low=0, low_open=True, expected="a positive number of epochs")
    dataset, batched = _as_dataset(data)
    n = len(dataset)
    if n == 0:
        raise ValueError("data: is empty; there is nothing to train on")
    device = _device(device) if device is not None else get_device()
    step = step or supervised_step()
    steps_per_epoch = len(batch_plan(n, batch_size))
    whole = float(epochs).is_integer()
    total_steps = int(epochs) * steps_per_epoch if whole else max(1, int(round(epochs * steps_per_epoch)))
    n_epochs = math.ceil(total_steps / steps_per_epoch)
    on_cuda = device.type == "cuda"
    amp = on_cuda if amp is None else bool(amp and on_cuda)
    channels_last = on_cuda if channels_last is None else bool(channels_last and on_cuda)

    with _isolated(seed, device=device, num_threads=num_threads, flush_denormal=flush_denormal,
                   deterministic=deterministic):
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        optimizers = optimizer(model) if callable(optimizer) and not isinstance(optimizer, torch.optim.Optimizer) \
            else optimizer
        if isinstance(optimizers, torch.optim.Optimizer):
            optimizers = {"main": optimizers}
        if not isinstance(optimizers, Mapping) or not optimizers:
            raise TypeError("optimizer: expected an optimiser, a dict of named optimisers or a function of the model")
        optimizers = dict(optimizers)
        for k, o in optimizers.items():
            rates = [g["lr"] for g in o.param_groups]
            if not all(isinstance(r, (int, float)) and math.isfinite(r) and r >= 0 for r in rates):
                raise ValueError(f"lr: optimiser {k!r} has learning rate(s) {rates}; pass a finite, non-negative rate")
        initial_lr = {k: [g.get("initial_lr", g["lr"]) for g in o.param_groups] for k, o in optimizers.items()}
        generator = torch.Generator().manual_seed(seed)
        scaler = torch.amp.GradScaler("cuda") if amp else None
        state = TrainState(model=model, optimizers=optimizers, device=device, generator=generator,
                           epochs=n_epochs, total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                           amp=amp, scaler=scaler)
        first_epoch = 0
        path = Path(checkpoint) if checkpoint is not None else None
        every, on_save = 0.0, None
        if path is None:  # inside a sweep run: a checkpoint in its store, saved every few minutes
            from fairlib import sweep

            run_context = sweep.current_run()
            if run_context is not None:
                path, every, on_save = run_context.next_checkpoint(), run_context.every_s, run_context.on_save
        fingerprint = _fingerprint(model, optimizers)
        if path is not None and path.exists():
            saved = _load_checkpoint(path, fingerprint)
            _reattach_masks(model, saved["model"])
            model.load_state_dict(saved["model"])
            for k, o in optimizers.items():
                o.load_state_dict(saved["optimizers"][k])
            if scaler is not None and saved.get("scaler"):
                scaler.load_state_dict(saved["scaler"])
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])
            state.history = list(saved["history"])
            state.step, first_epoch = saved["step"], saved["epoch"]
            for cb, cb_state in zip(callbacks, saved.get("callbacks", [])):
                cb.load_state_dict(cb_state)

        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=_EpochBatches(n, batch_size, generator, shuffle),
            collate_fn=_identity if batched else None, num_workers=num_workers,
            pin_memory=device.type == "cuda", persistent_workers=False)

        for cb in callbacks:
            cb.on_fit_start(state)
        started = last_save = time.monotonic()
        epochs_iter = range(first_epoch, n_epochs)
        if show_progress:
            epochs_iter = progress(epochs_iter, desc=desc, leave=False)
        for epoch in epochs_iter:
            state.epoch = epoch
            model.train()
            for cb in callbacks:
                cb.on_epoch_start(state)
            sums: dict[str, float] = {}
            seen = 0
            for raw in loader:
                if state.step >= total_steps:
                    break
                batch = _split_batch(raw)
                batch = (_prepare(batch[0], device, transform, channels_last),
                         *(b.to(device, non_blocking=True) if isinstance(b, torch.Tensor) else b for b in batch[1:]))
                if schedule is not None:
                    factor = float(schedule(state))
                    for k, o in optimizers.items():
                        for g, base in zip(o.param_groups, initial_lr[k]):
                            g["lr"] = base * factor
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    logs = step(state, batch)
                if scaler is not None:
                    scaler.update()
                state.step += 1
                size = len(batch[0])
                seen += size
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * size
                for cb in callbacks:
                    cb.on_step_end(state, logs)
            first_opt = next(iter(optimizers.values()))
            row: dict[str, Any] = {"epoch": epoch + 1, "step": state.step, "lr": first_opt.param_groups[0]["lr"]}
            row.update({k: v / max(seen, 1) for k, v in sums.items()})
            model.eval()
            for cb in callbacks:
                cb.on_epoch_end(state, row)
            state.history.append(row)
            now = time.monotonic()
            # an explicit file: every epoch; a sweep's: every `every` seconds, and after the last epoch
            # of a run that took a fifth of that (a short run is cheaper to repeat than to save)
            last = epoch + 1 == n_epochs
            due = path is not None and (now - last_save >= every or (last and now - started >= every / 5))
            if due:
                last_save = now
                _save_checkpoint(path, {
                    "fingerprint": fingerprint, "model": model.state_dict(),
                    "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                    "history": state.history, "step": state.step, "epoch": epoch + 1,
                    "callbacks": [cb.state_dict() for cb in callbacks]})
                if on_save is not None:
                    on_save(path)
        for cb in callbacks:
            cb.on_fit_end(state)
        model.eval()
        if channels_last:
            model.to(memory_format=torch.contiguous_format)
    return pd.DataFrame(state.history)


# --------------------------------------------------------------------------- prediction
@torch.no_grad()
def predict(
    model: nn.Module,
    data: Any,
    *,
    output: str = "logits",
    batch_size: int = 1024,
    device: Any = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    multilabel: bool = False,
    n_inputs: int = 1,
    amp: bool | None = None,
    num_workers: int = 0,
) -> torch.Tensor:
    """The model's outputs on ``data``, batch by batch, in eval mode and without gradients.

    Parameters
    ----------
    data
        A tensor of inputs, a tuple whose first element holds the inputs, or a ``Dataset``
        whose items are inputs or tuples starting with them. uint8 inputs become floats in
        [0, 1]; ``transform`` follows (as in :func:`train`).
    n_inputs
        How many leading elements of each batch the model takes (``model(x, attr)`` takes 2);
        only the first is converted and transformed.
    output
        ``"logits"``: the raw outputs (any shape: logits, latents, reconstructions);
        ``"probs"``: sigmoid for one logit per example or with ``multilabel``, else softmax
        over the last dimension; ``"labels"``: the hard decision (logit > 0, or argmax).
    device
        Where to run (default: where the model's parameters are). The model is returned to its
        previous device and training mode afterwards.

    Returns
    -------
    torch.Tensor
        On the CPU: float32 for logits and probabilities, int64 for labels.
    """
    _module(model)
    if output not in OUTPUTS:
        raise ValueError(f"output: expected one of {list(OUTPUTS)}, got {output!r}")
    batch_size = positive_int(batch_size, "batch_size")
    _callable(transform, "transform", what="a function of the input batch")
    num_workers = integer(num_workers, "num_workers", minimum=0)
    n_inputs = positive_int(n_inputs, "n_inputs")
    if isinstance(data, (tuple, list)) and data and isinstance(data[0], (torch.Tensor, np.ndarray)):
        data = tuple(data[:n_inputs]) if n_inputs > 1 else data[0]
    dataset, batched = _as_dataset(data)
    if len(dataset) == 0:
        raise ValueError("data: is empty; there is nothing to predict")
    params = next(iter(model.parameters()), None)
    home = params.device if params is not None else torch.device("cpu")
    device = _device(device) if device is not None else home
    was_training = model.training
    model.to(device).eval()
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=_EpochBatches(len(dataset), batch_size, torch.Generator(), shuffle=False, keep_all=True),
        collate_fn=_identity if batched else None, num_workers=num_workers)
    outs = []
    try:
        for raw in loader:
            batch = _split_batch(raw)
            if len(batch) < n_inputs:
                raise ValueError(f"n_inputs: the model takes {n_inputs} inputs but a batch holds {len(batch)}")
            rest = [b.to(device) for b in batch[1:n_inputs]]
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda" and amp is not False):
                out = model(_prepare(batch[0], device, transform, False), *rest).float()
            outs.append(_decide(out, output, multilabel).cpu())
    finally:
        model.to(home).train(was_training)
    return torch.cat(outs)


def _decide(out: torch.Tensor, output: str, multilabel: bool) -> torch.Tensor:
    if output == "logits":
        return out
    binary = out.dim() == 1 or multilabel
    if output == "probs":
        return torch.sigmoid(out) if binary else torch.softmax(out, dim=-1)
    return (out > 0).long() if binary else out.argmax(-1)


# --------------------------------------------------------------------------- Chapter 2's recipe
def _probabilities(logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Hard predictions and max-softmax confidence, for one logit (binary) or several."""
    if logits.ndim == 1:
        p = torch.sigmoid(logits)
        return (p > 0.5).long().numpy(), torch.maximum(p, 1 - p).numpy()
    probs = torch.softmax(logits, dim=1)
    conf, pred = probs.max(dim=1)
    return pred.numpy(), conf.numpy()


def evaluate(model: nn.Module, task: Any, *, batch_size: int = 1024, device: Any = None) -> dict[str, Any]:
    """Accuracy, BiasAmp, ECE (15 bins) and per-(class, group) accuracies of ``model`` on ``task``.

    ``task`` has tensors ``x``, ``y`` and ``group`` (a :class:`fairlib.amplification.Task`). The
    returned dict also holds ``preds`` (numpy) for further analysis. There is one
    ``acc_c{c}_g{g}`` entry per class ``c`` and group ``g`` present in ``task``.
    """
    _module(model)
    _task(task, "task")
    logits = predict(model, task.x, batch_size=batch_size, device=device)
    preds, conf = _probabilities(logits)
    y = task.y.cpu().numpy()
    g = task.group.cpu().numpy()
    correct = (preds == y).astype(np.int64)
    out: dict[str, Any] = {
        "accuracy": float(correct.mean()),
        "biasamp": metrics.bias_amplification(y, preds, groups=g),
        "ece": metrics.expected_calibration_error(np.clip(conf, 0.0, 1.0), correct, n_bins=15),
    }
    for c in np.unique(y):
        for a in np.unique(g):
            sel = (y == c) & (g == a)
            out[f"acc_c{c}_g{a}"] = float(correct[sel].mean()) if sel.any() else float("nan")
    out["preds"] = preds
    return out


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True,
                  fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Random crops (padding of ``pad``, a random shift per image) and horizontal flips (p = 1/2).

    ``fill`` is the padding value: a number, or one value per channel ``(C,)``. For standardised
    images, pass the standardised value of a black pixel (``-mean / std``) to pad with black, as
    the paper's recipe pads the raw image before normalising it (zero would pad with the mean
    colour).
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected a torch tensor of images (N, C, H, W), got {got}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator (state.generator in a step), "
                        f"got {type(generator).__name__}")
    pad = integer(pad, "pad", minimum=0, meaning="(pixels)")
    n, _, h, w = x.shape
    if pad > 0:
        fill_t = torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(-1)
        if fill_t.numel() not in (1, x.shape[1]):
            raise ValueError(f"fill: expected a number or {x.shape[1]} values (one per channel), got {fill_t.numel()}")
        # pad with zeros, then put the fill value into the border (F.pad takes one value only)
        padded = F.pad(x, (pad, pad, pad, pad))
        if bool((fill_t != 0).any()):
            border = torch.ones(1, 1, *padded.shape[-2:], dtype=torch.bool, device=x.device)
            border[..., pad:pad + x.shape[-2], pad:pad + x.shape[-1]] = False
            padded = torch.where(border, fill_t.view(1, -1, 1, 1).expand(1, x.shape[1], 1, 1), padded)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)  # (n, h)
        cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)  # (n, w)
        idx = torch.arange(n, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x.contiguous()


class _Evaluate(Callback):
    """Adds :func:`evaluate`'s metrics to the history every ``every`` epochs and after the last."""

    def __init__(self, test: Any, every: int | None):
        self.test, self.every = test, every

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        done = state.epoch + 1
        if done == state.epochs or (self.every and done % self.every == 0):
            res = evaluate(state.model, self.test, device=state.device)
            res.pop("preds")
            row.update(res)


def _augment_for(task: Any) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """:func:`augment_batch` with the task's crop padding (``task.pad``, default 4) and padding
    with the task's black (``task.black``, when it has one)."""
    kwargs: dict[str, Any] = {"pad": int(getattr(task, "pad", 4))}
    black = getattr(task, "black", None)
    if black is not None:
        kwargs["fill"] = black
    return functools.partial(augment_batch, **kwargs)


def train_and_evaluate(
    model: nn.Module,
    train_task: Any,
    test_task: Any,
    *,
    epochs: int,
    lr: float = 0.1,
    weight_decay: float = 1e-4,
    batch_size: int | None = 128,
    eval_every: int | None = None,
    augment: bool = False,
    seed: int = 0,
    device: Any = None,
    show_progress: bool = False,
    checkpoint: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Train ``model`` on ``train`` with Hall et al.'s recipe; return the history of test metrics.

    Parameters
    ----------
    model
        A network with one output logit (binary cross-entropy) or two (cross-entropy).
    train_task, test_task
        Tasks with tensors ``x``, ``y``, ``group`` (:class:`fairlib.amplification.Task`).
    epochs, lr, weight_decay, batch_size
        The schedule; ``batch_size=None`` trains full-batch (one step per epoch).
    eval_every
        Evaluate every this many epochs (always after the last); ``None``: only at the end.
    augment
        Random crops and flips (:func:`augment_batch`) on the training batches.
    seed
        Seeds the shuffling and augmentation (the model's initialisation is the caller's: see :func:`fit`).
    device
        Defaults to :func:`fairlib.get_device`.
    """
    epochs = positive_int(epochs, "epochs")
    _task(train_task, "train_task")
    _task(test_task, "test_task")
    eval_every = positive_int(eval_every, "eval_every", allow_none=True)
    n = len(train_task.y)
    bs = n if batch_size is None else min(positive_int(batch_size, "batch_size"), n)
    history = train(
        model, (train_task.x, train_task.y), epochs=epochs, batch_size=bs,
        optimizer=lambda m: make_optimizer(m.parameters(), "sgd", lr=lr, weight_decay=weight_decay),
        step=supervised_step("cross_entropy", augment=_augment_for(train_task) if augment else None),
        schedule=step_decay_schedule(), callbacks=[_Evaluate(test_task, eval_every)], seed=seed, device=device,
        show_progress=show_progress, checkpoint=checkpoint, desc="epochs")
    # only the evaluated epochs are reported
    return history.dropna(subset=["accuracy"]).drop(columns="step").reset_index(drop=True)


def fit(
    arch: str,
    model_kwargs: Mapping[str, Any],
    train_task: Any,
    test_task: Any,
    *,
    seed: int,
    **train_kwargs: Any,
) -> pd.DataFrame:
    """Build a model (:func:`fairlib.models.build_model`) from ``seed`` and train it; returns the history.

    The initialisation is drawn from a forked RNG seeded with ``seed``, so the call repeats
    exactly and leaves the caller's RNG as it was.
    """
    from fairlib.models import build_model

    if not isinstance(model_kwargs, Mapping):
        raise TypeError(f"model_kwargs: expected a dict of the model's keyword arguments ({{}} for none), "
                        f"got {type(model_kwargs).__name__}")
    seed = integer(seed, "seed")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = build_model(arch, **dict(model_kwargs))
        except ValueError as exc:
            if str(exc).startswith("name: "):
                raise ValueError("arch: " + str(exc)[len("name: "):]) from None
            raise
    return train_and_evaluate(model, train_task, test_task, seed=seed, **train_kwargs)
