"""Bad input gets a clear error naming the argument: the cases an independent probe found.

Each row: a call, the exception type and a fragment of the message (the argument's name and,
where there is one, the fix). Cases that are legitimate (batch size 1) must work.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fairlib import amplification as A
from fairlib import metrics as M
from fairlib import pruning as P
from fairlib import transfer as T
from fairlib.invariance import to_unit_range
from fairlib.probes import train_probe
from fairlib.training import make_optimizer, train

Y = [1, 1, 0, 0, 1, 0]
G = [0, 0, 0, 1, 1, 1]


def _tiny():
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 2))


def _xy(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g)


CASES = [
    # metrics: what is not a label must not become a plausible number
    ("bias_amplification, probabilities", lambda: M.bias_amplification(Y, [0.9, 0.8, 0.2, 0.1, 0.7, 0.3], groups=G),
     ValueError, "y_pred: expected hard labels"),
    ("bias_amplification, -1/+1 codes", lambda: M.bias_amplification(Y, [1, 1, -1, -1, 1, -1], groups=G),
     ValueError, "y_pred: predicts -1"),
    ("bias_amplification, inf", lambda: M.bias_amplification(Y, [1, 1, 0, np.inf, 1, 0], groups=G),
     ValueError, "y_pred: contains inf"),
    ("group_accuracy, strings vs ints", lambda: M.group_accuracy(list("ababab"), Y, groups=G),
     ValueError, "labels of different kinds"),
    ("worst_group_accuracy, one group", lambda: M.worst_group_accuracy(Y, Y, groups=[0] * 6),
     ValueError, "groups: only one group"),
    # amplification
    ("binary_labels, None", lambda: A.binary_labels([0, 1, 2], None), ValueError, "positive_classes: got None"),
    ("binary_labels, absent classes", lambda: A.binary_labels([0, 1, 2], [7, 8]), ValueError,
     "positive_classes: none of"),
    ("invert, 0-255 floats", lambda: A.invert(np.full((1, 2, 2), 200.0)), ValueError, "images: float images must"),
    # invariance
    ("to_unit_range, NaN pixel", lambda: to_unit_range(torch.tensor([[[[0.5, float("nan")]]]])), ValueError,
     "images: float images must be finite"),
    # transfer
    ("association_changes, NaN score",
     lambda: T.association_changes(pd.Series([0.7, np.nan], index=["a", "b"]), pd.Series([0.1, 0.2], index=["a", "b"]),
                                   threshold=0.5), ValueError, "before: the score of 'b' is not finite"),
    # the engine: training that would not happen, or would not be reported truthfully
    ("train, batch_size -1", lambda: train(_tiny(), _xy(), epochs=1, batch_size=-1, optimizer=lambda m: torch.optim.SGD(
        m.parameters(), lr=0.1), device="cpu"), ValueError, "batch_size: expected a positive integer"),
    ("train, epochs 0", lambda: train(_tiny(), _xy(), epochs=0, batch_size=4, optimizer=lambda m: torch.optim.SGD(
        m.parameters(), lr=0.1), device="cpu"), ValueError, "epochs: expected a positive number"),
    ("train, NaN learning rate", lambda: train(_tiny(), _xy(), epochs=1, batch_size=4,
                                               optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=float("nan")),
                                               device="cpu"), ValueError, "lr: optimiser 'main' has learning rate"),
    ("make_optimizer, NaN lr", lambda: make_optimizer(_tiny().parameters(), "adam", lr=math.nan), ValueError,
     "lr: expected a positive finite"),
    ("make_optimizer, unknown name", lambda: make_optimizer(_tiny().parameters(), "rmsprop", lr=0.1), ValueError,
     "optimizer: unknown optimizer 'rmsprop'; choose 'sgd' or 'adam'"),
    ("train, empty data", lambda: train(_tiny(), (torch.zeros(0, 4), torch.zeros(0)), epochs=1, batch_size=4,
                                        optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1), device="cpu"),
     ValueError, "data: is empty"),
    # probes: NaN features stop training; float labels are not truncated
    ("train_probe, NaN features", lambda: train_probe(np.full((20, 3), np.nan, np.float32), np.arange(20) % 2,
                                                      np.arange(16), np.arange(16, 20), epochs=1, device="cpu"),
     FloatingPointError, "the loss is nan"),
    ("train_probe, fractional labels", lambda: train_probe(np.ones((4, 3), np.float32), [0.0, 1.5, 1.0, 0.0],
                                                           np.arange(3), np.arange(3, 4), device="cpu"),
     ValueError, "y: expected hard labels"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _finishes_within(seconds: float, fn):
    """Run ``fn`` in a daemon thread; fail (instead of hanging the suite) if it does not return in time."""
    import threading

    result, errors = [], []

    def target():
        try:
            result.append(fn())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if errors:
        raise errors[0]
    assert result, f"did not finish within {seconds} s (a hang)"
    return result[0]


def test_batch_size_one_works_and_ends():
    """train_multilabel and train_gmp used to loop forever with batch_size=1."""
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4)
    y = torch.randint(0, 2, (6, 2))
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    _finishes_within(60, lambda: P.train_multilabel(model, x, y, epochs=1, lr=0.01, batch_size=1))
    out = _finishes_within(60, lambda: P.train_gmp(nn.Sequential(nn.Flatten(), nn.Linear(48, 2)), x, y, targets=[0.5],
                                                   epochs=3, start=0, end=1, lr=0.01, finetune_epochs=0.5,
                                                   batch_size=1))
    assert list(out) == [0.5]
