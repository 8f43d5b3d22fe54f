r"""Training loop for the bias amplification experiments, with a history of bias metrics.

The schedule follows Hall et al. (after He et al.): SGD with Nesterov momentum 0.9, weight decay
in the optimizer, one warm-up epoch at ``lr/10``, then ``lr``, divided by 10 at 50% and again at
75% of the epochs (the paper: 500 epochs, lr 0.1, decays after 250 and 375). Every
``eval_every`` epochs (and after the last) the model is evaluated on the test task and one row is
added to the history:

==================  ===========================================================================
column              meaning
==================  ===========================================================================
``epoch``           epochs completed
``lr``              learning rate of the last epoch
``loss``            mean training loss of the last epoch
``accuracy``        test accuracy
``biasamp``         BiasAmp\ :sub:`A→T` (:func:`fairlib.metrics.bias_amplification`) on the test set
``ece``             expected calibration error, 15 bins, max-softmax confidence
``acc_c{c}_g{g}``   accuracy on test examples of class ``c`` and group ``g`` (four columns)
==================  ===========================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from fairlib import metrics
from fairlib.config import get_device, seed_everything
from fairlib.notebook import progress

__all__ = [
    "lr_at_epoch",
    "predict",
    "evaluate",
    "augment_batch",
    "train_and_evaluate",
    "fit",
]


def lr_at_epoch(epoch: int, epochs: int, lr: float, warmup: bool = True) -> float:
    """Learning rate of 0-based ``epoch``: lr/10 for the warm-up epoch, ×0.1 from 50%, ×0.01 from 75%."""
    if epochs < 1:
        raise ValueError(f"epochs: need at least 1, got {epochs}")
    if warmup and epoch == 0 and epochs > 1:
        return lr / 10
    if epoch >= int(round(0.75 * epochs)) and epochs >= 4:
        return lr * 0.01
    if epoch >= int(round(0.5 * epochs)) and epochs >= 2:
        return lr * 0.1
    return lr


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024, device: Any = None) -> torch.Tensor:
    """Logits of ``model`` on ``x`` (on the CPU), in evaluation mode and without gradients."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = [model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(outs)


def _probabilities(logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Hard predictions and max-softmax confidence, for one logit (binary) or several."""
    if logits.ndim == 1:
        p = torch.sigmoid(logits)
        return (p > 0.5).long().numpy(), torch.maximum(p, 1 - p).numpy()
    probs = torch.softmax(logits, dim=1)
    conf, pred = probs.max(dim=1)
    return pred.numpy(), conf.numpy()


def evaluate(model: nn.Module, task: Any, *, batch_size: int = 1024, device: Any = None) -> dict[str, Any]:
    """Accuracy, BiasAmp, ECE (15 bins) and the per-(class, group) accuracies of ``model`` on ``task``.

    ``task`` has tensors ``x``, ``y`` and ``group`` (a :class:`fairlib.amplification.Task`). The
    returned dict also holds ``preds`` (numpy) for further analysis.
    """
    logits = predict(model, task.x, batch_size, device)
    preds, conf = _probabilities(logits)
    y = task.y.cpu().numpy()
    g = task.group.cpu().numpy()
    correct = (preds == y).astype(np.int64)
    out: dict[str, Any] = {
        "accuracy": float(correct.mean()),
        "biasamp": metrics.bias_amplification(y, preds, groups=g),
        "ece": metrics.expected_calibration_error(np.clip(conf, 0.0, 1.0), correct, n_bins=15),
    }
    for c in (0, 1):
        for a in (0, 1):
            sel = (y == c) & (g == a)
            out[f"acc_c{c}_g{a}"] = float(correct[sel].mean()) if sel.any() else float("nan")
    out["preds"] = preds
    return out


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crops (zero padding of ``pad``, a random shift per image) and horizontal flips (p = 1/2)."""
    n, _, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
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


def train_and_evaluate(
    model: nn.Module,
    train: Any,
    test: Any,
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
) -> pd.DataFrame:
    """Train ``model`` on ``train`` and return the history of test metrics (see the module docstring).

    Parameters
    ----------
    model
        A network with one output logit (binary cross-entropy) or two (cross-entropy).
    train, test
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
    if epochs < 1:
        raise ValueError(f"epochs: need at least 1, got {epochs}")
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    x_all, y_all = train.x.to(device), train.y.to(device)
    n = len(y_all)
    bs = n if batch_size is None else min(int(batch_size), n)
    binary = getattr(model, "num_outputs", 1) == 1
    history = []
    epoch_iter = progress(range(epochs), desc="epochs", leave=False) if show_progress else range(epochs)
    for epoch in epoch_iter:
        rate = lr_at_epoch(epoch, epochs, lr)
        for group in opt.param_groups:
            group["lr"] = rate
        model.train()
        order = torch.randperm(n, generator=gen).to(device) if bs < n else torch.arange(n, device=device)
        total, count = 0.0, 0
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            if len(idx) < 2 and count > 0:  # a batch of one breaks BatchNorm; skip the remainder
                continue
            xb, yb = x_all[idx], y_all[idx]
            if augment:
                xb = augment_batch(xb, gen)
            out = model(xb)
            loss = F.binary_cross_entropy_with_logits(out, yb.float()) if binary else F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        done = epoch + 1
        if done == epochs or (eval_every and done % eval_every == 0):
            res = evaluate(model, test, device=device)
            res.pop("preds")
            history.append({"epoch": done, "lr": rate, "loss": total / max(count, 1), **res})
    return pd.DataFrame(history)


def fit(
    arch: str,
    model_kwargs: Mapping[str, Any],
    train: Any,
    test: Any,
    *,
    seed: int,
    **train_kwargs: Any,
) -> pd.DataFrame:
    """Seed everything, build a model (:func:`fairlib.models.build_model`) and train it; returns the history."""
    from fairlib.models import build_model

    seed_everything(seed)
    model = build_model(arch, **dict(model_kwargs))
    return train_and_evaluate(model, train, test, seed=seed, **train_kwargs)
