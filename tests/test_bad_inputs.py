"""Bad input gets a clear error naming the argument: the cases an independent probe found.

Each row: a call, the exception type and a fragment of the message (the argument's name and,
where there is one, the fix). Cases that are legitimate (batch size 1) must work.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fairlib import amplification as A
from fairlib import metrics as M
from fairlib import pruning as P
from fairlib import transfer as T
from fairlib.invariance import to_unit_range, train_latent_classifier
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
    ("train_latent_classifier, fractional targets",
     lambda: train_latent_classifier(torch.zeros(4, 2, 2, 2), [0, 1.5, 1, 0]),
     ValueError, "attributes: expected hard labels"),
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


# --------------------------------------------------------------------------- one table per module
def _modules_table():
    from fairlib import activations, config, data, models, naps, probes, sweep, synthetic, topomap
    from fairlib import invariance as inv
    from fairlib import training as tr
    from fairlib.classroom import grade

    conv = nn.Sequential(nn.Conv2d(3, 2, 3))
    return [
        # config
        ("config.get_profile", lambda: config.get_profile("fast"), ValueError, "profile: unknown profile 'fast'"),
        ("config.select", lambda: config.select({"quick": 1}, "full"), ValueError,
         "settings: no entry for profile 'full'"),
        ("config.seed_everything", lambda: config.seed_everything(-1), ValueError, "seed: expected a non-negative"),
        # data
        ("data.load_dataset name", lambda: data.load_dataset("imagenet"), ValueError,
         "name: unknown dataset 'imagenet'; available: synthfaces"),
        ("data.load_dataset split", lambda: data.load_dataset("digits", "val"), ValueError, "split:"),
        ("data.load_dataset option", lambda: data.load_dataset("cifar10", "train", colour=True), ValueError,
         "options: cifar10 does not take colour"),
        ("data.render_faces size", lambda: data.render_faces(4, size=3), ValueError, "size: expected an integer in"),
        ("data.cap_groups", lambda: data.cap_groups(pd.DataFrame({"a": pd.Categorical(["x"])}), ["a"], 0),
         ValueError, "max_per_group: expected a positive integer"),
        # models
        ("models.build_model name", lambda: models.build_model("vgg"), ValueError, "name: unknown model 'vgg'"),
        ("models.build_model option", lambda: models.build_model("small_cnn", n_outputs=2, depth=3), ValueError,
         "options: unknown option(s) ['depth']"),
        ("models.CifarResNet depth", lambda: models.CifarResNet(depth=9), ValueError, "depth: 9 is not of the form"),
        # training
        ("training.predict output", lambda: tr.predict(_tiny(), torch.zeros(2, 4), output="scores"), ValueError,
         "output: expected one of"),
        ("training.batch_plan", lambda: tr.batch_plan(10, 0), ValueError, "batch_size: expected a positive integer"),
        ("training.lr_at_epoch", lambda: tr.lr_at_epoch(0, 0, 0.1), ValueError, "epochs: expected a positive integer"),
        # activations
        ("activations.downsample mode", lambda: activations.downsample(torch.zeros(1, 1, 9, 9), 8, "median"),
         ValueError, "mode: expected 'subsample' or 'avgpool'"),
        ("activations.downsample max_size", lambda: activations.downsample(torch.zeros(1, 1, 9, 9), 0), ValueError,
         "max_size: expected a positive integer"),
        ("activations.resolve_layers", lambda: activations.resolve_layers(conv, ["conv9"]), ValueError,
         "layers: unknown layer 'conv9'; available names are"),
        ("activations.layer_preset", lambda: activations.layer_preset("alexnet"), ValueError,
         "name: no layer preset 'alexnet'; presets: vgg16"),
        # naps and topomap
        ("naps.neuron_activation_profiles", lambda: naps.neuron_activation_profiles(np.ones((3, 2)), [0, 1]),
         ValueError, "groups: expected one label per example"),
        ("naps.variance_share", lambda: naps.variance_share(np.ones(3)), ValueError, "nap: expected a fitted"),
        ("naps.shared_network", lambda: naps.shared_network("alexnet", trained=False), ValueError,
         "name: expected 'small_cnn' or one of"),
        ("topomap.relax positions", lambda: topomap.relax(np.ones((3, 3))), ValueError, "positions: expected shape"),
        ("topomap.relax n_steps", lambda: topomap.relax(np.ones((3, 2)), n_steps=-1), ValueError,
         "n_steps: expected a non-negative integer"),
        ("topomap.color_limit mode", lambda: topomap.color_limit(np.ones(4), "median"), ValueError,
         "mode: expected 'percentile' or 'max'"),
        # sweep
        ("sweep.grid", lambda: sweep.grid(x=3), TypeError, "x: expected a list of values"),
        ("sweep.run executor", lambda: sweep.run(dict, [{"a": 1}], store="/tmp/never", executor="gpu"), ValueError,
         "executor: unknown executor 'gpu'"),
        ("sweep.experiments", lambda: sweep.experiments("99_nothing"), ValueError, "chapter: no experiments"),
        # synthetic
        ("synthetic.simulate_group_predictions", lambda: synthetic.simulate_group_predictions([5, 5], [0.9]),
         ValueError, "group_sizes/accuracies"),
        ("synthetic.simulate_association_scores", lambda: synthetic.simulate_association_scores(1, retention=0.5),
         ValueError, "n_concepts: need at least 2"),
        # probes
        ("probes.build_network", lambda: probes.build_network("alexnet"), ValueError, "name: expected 'small_cnn'"),
        ("probes.build_network task", lambda: probes.build_network("small_cnn", trained=False, epoch=3), ValueError,
         "task_kwargs: unknown option(s) ['epoch']"),
        # invariance
        ("invariance.lambda_schedule", lambda: inv.lambda_schedule(-1, 1.0, 10), ValueError, "step: must be"),
        ("invariance.encoder_channels", lambda: inv.encoder_channels(100, 4), ValueError, "image_size: 100"),
        ("invariance.stratified_split", lambda: inv.stratified_split([0, 0, 1, 1], 0), ValueError,
         "test_per_group: expected a positive integer"),
        ("invariance.inverse_frequency_weights", lambda: inv.inverse_frequency_weights([]), ValueError,
         "groups: is empty"),
        # transfer
        ("transfer.replace_head", lambda: T.replace_head(_tiny(), "fc", 3), ValueError,
         "head: 'fc' is not a linear layer (or 1x1 convolution) of this model; linear layers: ['1']"),
        ("transfer.bias_transfer_interval", lambda: T.bias_transfer_interval([1, 2, 3], [1, 3, 2], level=1.5),
         ValueError, "level: expected a confidence level"),
        ("transfer.association_changes threshold",
         lambda: T.association_changes(pd.Series([1.0]), pd.Series([1.0]), threshold=0), ValueError,
         "threshold: expected a positive number"),
        # pruning
        ("pruning.global_magnitude_prune", lambda: P.global_magnitude_prune(_tiny(), 1.5), ValueError,
         "sparsity: expected a fraction in [0, 1)"),
        ("pruning.nm_prune", lambda: P.nm_prune(_tiny(), 4, 2), ValueError, "n, m: need integers with 1 <= n < m"),
        ("pruning.calibrate_thresholds",
         lambda: P.calibrate_thresholds(np.array([[np.nan], [1.0]]), np.array([[0], [1]])), ValueError,
         "val_logits: contains NaN"),
        ("pruning.train_gmp variant", lambda: P.train_gmp(_tiny(), torch.zeros(4, 4), torch.zeros(4, 2), targets=[0.5],
                                                          epochs=3, start=0, end=1, variant="xx"), ValueError,
         "variant: unknown GMP variant 'xx'"),
        # amplification and metrics
        ("amplification.binarize_classes", lambda: A.binarize_classes(1, 0), ValueError,
         "n_classes: expected an integer >= 2"),
        ("amplification.overlay", lambda: A.overlay(np.zeros((1, 2)), np.zeros((1, 2)), 1.5), ValueError,
         "eta: must lie in [0, 1]"),
        ("metrics.calibration_bins", lambda: M.calibration_bins([0.5], [1], n_bins=0), ValueError,
         "n_bins: expected a positive integer"),
        ("metrics.uncertainty_rate", lambda: M.uncertainty_rate([0.5], low=0.9, high=0.1), ValueError, "low/high"),
        ("metrics.label_interrelation", lambda: M.label_interrelation([[1], [2]]), ValueError,
         "preds: needs at least 2"),
        ("metrics.attribute_bias_amplification", lambda: M.attribute_bias_amplification(
            [1, 0], [1, 0], identity=[0, 1], train_true=[1, 0], train_identity=[0, 1], min_count=-1), ValueError,
         "min_count: must be non-negative"),
        # classroom
        ("classroom.grade cells", lambda: grade("x.ipynb", "y.json", cells="some"), ValueError,
         "cells: expected one of"),
    ]


@pytest.mark.parametrize("case", _modules_table(), ids=lambda c: c[0])
def test_every_module_names_the_argument(case):
    _, call, error, fragment = case
    with pytest.raises(error, match=re.escape(fragment)):
        call()
