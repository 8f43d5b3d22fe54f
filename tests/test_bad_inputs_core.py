"""Bad input to the core modules gets a clear error naming the argument (one row or more per public function).

Each row: (id, a zero-argument call, the exception type, a fragment of the message: the argument's
name and, where there is one, the fix). Modules: amplification, synthetic, metrics, config,
notebook, plotting, sweep, models.
"""

from __future__ import annotations

import re

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from fairlib import amplification as A
from fairlib import config as C
from fairlib import metrics as M
from fairlib import models as MO
from fairlib import notebook as N
from fairlib import plotting as PL
from fairlib import sweep as SW
from fairlib import synthetic as S

matplotlib.use("Agg")

Y = [1, 1, 0, 0, 1, 0]
G = [0, 0, 0, 1, 1, 1]
U8 = np.arange(6 * 16, dtype=np.uint8).reshape(6, 4, 4)
U12 = np.arange(12 * 16, dtype=np.uint8).reshape(12, 4, 4)
F12 = [0, 1, 2, 3] * 3
FRAME = pd.DataFrame({"x": [1, 1, 2], "v": [0.1, 0.2, 0.3]})
RUN = {"dataset": "digits", "arch": "cifar_resnet", "width": 2, "in_channels": 1, "eps": 0.1, "seed": 0,
       "epochs": 1, "batch_size": 8, "lr": 0.1, "weight_decay": 0.0}


def _task(n=2):
    return A.Task(torch.zeros(n, 1, 2, 2), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long))


def _ax():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plt.close(fig)
    return ax


def _bins():
    return M.calibration_bins([0.2, 0.8], [0, 1], n_bins=2)


CASES = [
    # ------------------------------------------------------------------ amplification
    ("Task, mismatched lengths", lambda: A.Task(torch.zeros(3, 1, 2, 2), torch.zeros(2), torch.zeros(2)),
     ValueError, "x/y/group: mismatched lengths: x has 3, y has 2"),
    ("Task, numpy", lambda: A.Task(np.zeros((2, 1, 2, 2)), torch.zeros(2), torch.zeros(2)),
     ValueError, "x: expected a torch tensor"),
    ("Task.subset, out of range", lambda: _task().subset([5]), ValueError, "index: positions must lie in [-2, 1]"),
    ("Task.subset, floats", lambda: _task().subset([0.5]), ValueError, "index: expected integer positions"),
    ("Task.subset, scalar", lambda: _task().subset(0), ValueError, "index: expected a 1-D list"),
    ("binarize_classes, float seed", lambda: A.binarize_classes(10, 1.5), ValueError,
     "seed: expected a non-negative integer"),
    ("binarize_classes, one class", lambda: A.binarize_classes(1, 0), ValueError,
     "n_classes: expected an integer >= 2"),
    ("binary_labels, NaN label", lambda: A.binary_labels([0, 1, np.nan], [1]), ValueError,
     "fine_labels: contains NaN"),
    ("binary_labels, fractional labels", lambda: A.binary_labels([0.5, 1.5], [1]), ValueError,
     "fine_labels: expected hard labels"),
    ("inversion_counts, negative n", lambda: A.inversion_counts(-3, True, 0.1), ValueError,
     "n: expected a non-negative integer"),
    ("inversion_counts, positive as a string", lambda: A.inversion_counts(3, "no", 0.1), ValueError,
     "positive: expected True or False"),
    ("inversion_counts, epsilon string", lambda: A.inversion_counts(3, True, "a"), ValueError,
     "epsilon: must lie in [0, 1/2], got 'a'"),
    ("assign_inversion, positive None", lambda: A.assign_inversion([0, 1, 2], None, 0.1, 0), ValueError,
     "positive_classes: got None"),
    ("assign_inversion, fractional labels", lambda: A.assign_inversion([0.5, 1.2], [1], 0.1, 0), ValueError,
     "fine_labels: expected hard labels"),
    ("assign_inversion, negative seed", lambda: A.assign_inversion([0, 1], [1], 0.1, -1), ValueError,
     "seed: expected a non-negative integer"),
    ("invert, None", lambda: A.invert(None), ValueError, "images: got None"),
    ("invert, strings", lambda: A.invert(["a"]), ValueError, "images: expected uint8 images (0-255) or floats"),
    ("overlay, lists", lambda: A.overlay([0.1], [0.2], 0.5), ValueError,
     "class_images: expected a numpy array or torch tensor"),
    ("overlay, eta string", lambda: A.overlay(np.zeros(2), np.zeros(2), "half"), ValueError,
     "eta: must lie in [0, 1]"),
    ("assign_overlay_groups, no positive class", lambda: A.assign_overlay_groups([0, 1], [5], 0.1, 0), ValueError,
     "positive_classes: none of [5] occurs in fine_labels"),
    ("assign_overlay_groups, empty", lambda: A.assign_overlay_groups([], [1], 0.1, 0), ValueError,
     "fine_labels: is empty"),
    ("draw_group_images, group 2", lambda: A.draw_group_images([0, 2], (3, 3), 0), ValueError,
     "groups: expected binary 0/1 values"),
    ("draw_group_images, scalar pool", lambda: A.draw_group_images([0, 1], 3, 0), ValueError,
     "pool_sizes: expected a pair"),
    ("draw_group_images, fractional pool", lambda: A.draw_group_images([0, 1], (2.5, 3), 0), ValueError,
     "pool_sizes[0]: expected a non-negative integer"),
    ("make_inversion_task, channels of normalize_with",
     lambda: A.make_inversion_task(U8, [0, 1, 2, 0, 1, 2], [1], 0.1, 0, normalize_with=np.zeros((2, 3, 4, 4))),
     ValueError, "normalize_with: has 3 channel(s) but images have 1"),
    ("make_inversion_task, 0-255 floats",
     lambda: A.make_inversion_task(U8.astype(float), [0, 1, 2, 0, 1, 2], [1], 0.1, 0), ValueError,
     "images: float images must be finite and lie in [0, 1]"),
    ("make_overlay_task, absent class", lambda: A.make_overlay_task(U12, F12, (0, 9), (2, 3), 0.1, 0.5, 0),
     ValueError, "class_pair: class 9 does not occur in fine_labels"),
    ("make_overlay_task, absent group class", lambda: A.make_overlay_task(U12, F12, (0, 1), (2, 9), 0.1, 0.5, 0),
     ValueError, "group_pair: class 9 does not occur in fine_labels"),
    ("make_overlay_task, class_pair int", lambda: A.make_overlay_task(U12, F12, 0, (2, 3), 0.1, 0.5, 0),
     ValueError, "class_pair: expected a pair of original classes"),
    ("make_overlay_task, lengths", lambda: A.make_overlay_task(U12, F12[:5], (0, 1), (2, 3), 0.1, 0.5, 0),
     ValueError, "images/fine_labels: 12 images but 5 labels"),
    ("make_overlay_task, seed None", lambda: A.make_overlay_task(U12, F12, (0, 1), (2, 3), 0.1, 0.5, None),
     ValueError, "seed: expected a non-negative integer"),
    ("swap_roles, tuple", lambda: A.swap_roles((1, 2, 3)), ValueError, "task: expected a Task"),
    ("mean_ci, confidence in percent", lambda: A.mean_ci([1, 2, 3], 95), ValueError,
     "confidence: must lie in (0, 1), e.g. 0.95"),
    ("mean_ci, None", lambda: A.mean_ci(None), ValueError, "values: got None"),
    ("mean_ci, inf", lambda: A.mean_ci([1, np.inf]), ValueError, "values: contains inf"),
    ("mean_ci, strings", lambda: A.mean_ci(["a"]), ValueError, "values: expected numbers"),
    ("summarize, unknown column", lambda: A.summarize(FRAME, "b", "v"), ValueError,
     "by: no column 'b' in frame; columns: ['x', 'v']"),
    ("summarize, not a frame", lambda: A.summarize([1, 2], "x", "v"), ValueError,
     "frame: expected a pandas DataFrame"),
    ("load_split, unknown dataset", lambda: A.load_split("mnist", "train"), ValueError,
     "name: unknown dataset 'mnist'; choose one of digits, fashionmnist, cifar10, cifar100"),
    ("settings, unknown profile", lambda: A.settings("fast"), ValueError,
     "profile: unknown profile 'fast'; choose one of quick, full"),
    ("inversion_tasks, unknown dataset", lambda: A.inversion_tasks("mnist", 0.1, 0), ValueError,
     "dataset: unknown dataset 'mnist'; choose one of digits"),
    ("inversion_tasks, eps", lambda: A.inversion_tasks("digits", 0.9, 0), ValueError, "eps: must lie in [0, 1/2]"),
    ("overlay_tasks, eta", lambda: A.overlay_tasks("digits", 0.1, 1.5, 0), ValueError, "eta: must lie in [0, 1]"),
    ("run_inversion, epochs 0", lambda: A.run_inversion(**{**RUN, "epochs": 0}), ValueError,
     "epochs: expected a positive integer"),
    ("run_inversion, unknown keyword", lambda: A.run_inversion(**RUN, epoch=3), TypeError,
     "unexpected keyword argument 'epoch'"),
    ("run_overlay, batch_size 0", lambda: A.run_overlay(**{**RUN, "eta": 0.5, "batch_size": 0}), ValueError,
     "batch_size: expected a positive integer"),
    ("rq1_grid, unknown profile", lambda: A.rq1_grid("fast"), ValueError, "profile: unknown profile 'fast'"),
    ("rq2_grid, unknown profile", lambda: A.rq2_grid("fast"), ValueError, "profile: unknown profile 'fast'"),
    ("rq3_grid, unknown profile", lambda: A.rq3_grid("fast"), ValueError, "profile: unknown profile 'fast'"),
    ("rq5_grid, unknown profile", lambda: A.rq5_grid("fast"), ValueError, "profile: unknown profile 'fast'"),
    ("rq6_grid, unknown profile", lambda: A.rq6_grid("fast"), ValueError, "profile: unknown profile 'fast'"),
    ("by_knob, missing column", lambda: A.by_knob(pd.DataFrame({"depth": [8]})), ValueError,
     "knobs: no column 'width' in frame"),
    ("by_knob, a string", lambda: A.by_knob(pd.DataFrame({"depth": [8]}), "depth"), ValueError,
     "knobs: expected a list of column names, got the string 'depth'; write ['depth']"),
    ("history_frame, not a frame", lambda: A.history_frame([1]), ValueError, "frame: expected a pandas DataFrame"),
    ("band, no axes", lambda: A.band(None, FRAME, "x", "v"), ValueError, "ax: expected matplotlib axes"),
    ("band, unknown column", lambda: A.band(_ax(), FRAME, "b", "v"), ValueError, "x: no column 'b' in frame"),
    # ------------------------------------------------------------------ synthetic
    ("simulate_predictions, fractional n", lambda: S.simulate_predictions(2.5), ValueError,
     "n: need at least one example (a positive integer), got 2.5"),
    ("simulate_predictions, NaN lean", lambda: S.simulate_predictions(5, lean=np.nan), ValueError,
     "lean: expected a finite number"),
    ("simulate_predictions, inf signal", lambda: S.simulate_predictions(5, signal=np.inf), ValueError,
     "signal: expected a finite number"),
    ("simulate_predictions, float seed", lambda: S.simulate_predictions(5, seed=1.5), ValueError,
     "seed: expected a non-negative integer"),
    ("simulate_group_predictions, fractional size", lambda: S.simulate_group_predictions([2.5, 3], [0.5, 0.5]),
     ValueError, "group_sizes[0]: expected a positive integer"),
    ("simulate_group_predictions, NaN accuracy", lambda: S.simulate_group_predictions([2, 3], [np.nan, 0.5]),
     ValueError, "accuracies: must lie in [0, 1]"),
    ("simulate_group_predictions, empty", lambda: S.simulate_group_predictions([], []), ValueError,
     "group_sizes: expected a non-empty list"),
    ("simulate_multilabel, fractional n", lambda: S.simulate_multilabel(2.5, 3), ValueError,
     "n: expected an integer >= 2"),
    ("simulate_multilabel, NaN shared", lambda: S.simulate_multilabel(4, 3, shared=np.nan), ValueError,
     "shared: expected a finite number"),
    ("simulate_association_scores, None", lambda: S.simulate_association_scores(None, retention=0.5), ValueError,
     "n_concepts: need at least 2"),
    ("simulate_association_scores, NaN retention", lambda: S.simulate_association_scores(3, retention=np.nan),
     ValueError, "retention: expected a finite number"),
    ("run_group_accuracy, spread too wide", lambda: S.run_group_accuracy(0.5, 10, 0), ValueError,
     "spread: 0.5 puts a group's accuracy outside [0, 1] around 0.88; use |spread| <= 0.12"),
    ("run_group_accuracy, negative repeat", lambda: S.run_group_accuracy(0.05, 10, -1), ValueError,
     "repeat: expected a non-negative integer"),
    ("group_accuracy_grid, unknown profile", lambda: S.group_accuracy_grid("fast"), ValueError,
     "profile: unknown profile 'fast'"),
    ("run_biasamp, negative repeat", lambda: S.run_biasamp(0.1, 0.5, -1, 10), ValueError,
     "repeat: expected a non-negative integer"),
    ("biasamp_grid, unknown profile", lambda: S.biasamp_grid("fast"), ValueError, "profile: unknown profile 'fast'"),
    ("explore_biasamp, n 0", lambda: S.explore_biasamp(n=0), ValueError, "n: need at least one example"),
    # ------------------------------------------------------------------ metrics
    ("bias_amplification, labels a string", lambda: M.bias_amplification(Y, Y, groups=G, labels="ab"), ValueError,
     "labels: expected a 1-D array"),
    ("bias_amplification, fractional reference",
     lambda: M.bias_amplification(Y, Y, groups=G, reference=([0.5, 1], [0, 1])), ValueError,
     "reference y_true: expected hard labels"),
    ("bias_amplification_table, probabilities", lambda: M.bias_amplification_table(Y, [0.2] * 6, groups=G),
     ValueError, "y_pred: expected hard labels (class codes), found 0.2; apply argmax or a threshold"),
    ("attribute_bias_amplification, fractional min_count",
     lambda: M.attribute_bias_amplification(Y, Y, identity=G, train_true=Y, train_identity=G, min_count=2.5),
     ValueError, "min_count: must be non-negative (an integer count"),
    ("attribute_bias_amplification, NaN min_rel_diff",
     lambda: M.attribute_bias_amplification(Y, Y, identity=G, train_true=Y, train_identity=G, min_rel_diff=np.nan),
     ValueError, "min_rel_diff: expected a finite number"),
    ("expected_calibration_error, logits", lambda: M.expected_calibration_error([2.0], [1]), ValueError,
     "confidences: probabilities must lie in [0, 1], found 2.0 (apply a sigmoid or softmax to logits first)"),
    ("calibration_bins, fractional n_bins", lambda: M.calibration_bins([0.5], [1], n_bins=2.5), ValueError,
     "n_bins: expected a positive integer, got 2.5"),
    ("threshold_calibration_bias, probabilities", lambda: M.threshold_calibration_bias(Y, [0.3] * 6), ValueError,
     "y_pred: expected binary 0/1 values, found 0.3"),
    ("uncertainty_rate, low a string", lambda: M.uncertainty_rate([0.5], low="a"), ValueError,
     "low: expected a finite number, got 'a'"),
    ("label_interrelation, strings", lambda: M.label_interrelation([["a", "b"], ["c", "d"]]), ValueError,
     "preds: expected numbers"),
    ("group_accuracy, NaN group", lambda: M.group_accuracy(Y, Y, groups=[0, 0, np.nan, 1, 1, 1]), ValueError,
     "groups: contains NaN at index 2"),
    ("accuracy_variance, probabilities", lambda: M.accuracy_variance(Y, [0.2] * 6, groups=G), ValueError,
     "y_pred: expected hard labels"),
    ("worst_group_accuracy, lengths", lambda: M.worst_group_accuracy(Y, Y[:5], groups=G), ValueError,
     "mismatched lengths: y_true has 6, y_pred has 5, groups has 6"),
    ("accuracy_gap, one group", lambda: M.accuracy_gap(Y, Y, groups=[0] * 6), ValueError, "groups: only one group"),
    ("bias_transfer_score, strings", lambda: M.bias_transfer_score(["a", "b"], [1, 2]), ValueError,
     "before: expected numbers"),
    # ------------------------------------------------------------------ config
    ("get_profile, unknown", lambda: C.get_profile("gpu"), ValueError,
     "profile: unknown profile 'gpu'; choose one of quick, full"),
    ("select, not a mapping", lambda: C.select([1, 2], "quick"), ValueError,
     "settings: expected a dict {profile: settings}"),
    ("get_device, unknown name", lambda: C.get_device("gpu"), ValueError,
     "prefer: unknown device 'gpu'; use 'cpu', 'cuda', 'cuda:0' or 'mps'"),
    ("get_device, a number", lambda: C.get_device(3), ValueError, "prefer: expected a device name"),
    ("seed_everything, deterministic string", lambda: C.seed_everything(0, deterministic="no"), ValueError,
     "deterministic: expected True, False or None"),
    ("profile_note, unknown", lambda: C.profile_note("fast"), ValueError, "profile: unknown profile 'fast'"),
    # ------------------------------------------------------------------ notebook
    ("progress, an int", lambda: N.progress(5), ValueError, "iterable: expected something to loop over"),
    ("glue, name None", lambda: N.glue(None, 1), ValueError, "name: expected a non-empty string"),
    # ------------------------------------------------------------------ plotting
    ("reliability_diagram, list", lambda: PL.reliability_diagram([1, 2]), ValueError,
     "bins: expected the DataFrame of fairlib.metrics.calibration_bins"),
    ("reliability_diagram, missing columns", lambda: PL.reliability_diagram(pd.DataFrame({"a": [1]})), ValueError,
     "bins: missing column(s) ['lower', 'upper', 'count', 'accuracy']"),
    ("reliability_diagram, empty", lambda: PL.reliability_diagram(_bins().iloc[:0]), ValueError, "bins: is empty"),
    ("reliability_diagram, bad axes", lambda: PL.reliability_diagram(_bins(), ax=3), ValueError,
     "ax: expected matplotlib axes"),
    # ------------------------------------------------------------------ sweep
    ("grid, no axis", lambda: SW.grid(), ValueError, "axes: pass at least one axis"),
    ("grid, bare value", lambda: SW.grid(a=None), TypeError, "a: expected a list of values for this axis"),
    ("config_key, None", lambda: SW.config_key(None), TypeError, "config: expected a dict of parameters"),
    ("run, unknown executor option", lambda: SW.run(S.run_biasamp, [], store=SW.default_store("t"), workers=3),
     ValueError, "executor_options: the 'local' executor takes no options, got ['workers']"),
    ("run, retry_failed string", lambda: SW.run(S.run_biasamp, [], store=SW.default_store("t"), retry_failed="yes"),
     ValueError, "retry_failed: expected True or False"),
    ("run, unknown executor", lambda: SW.run(S.run_biasamp, [], store=SW.default_store("t"), executor="dask"),
     ValueError, "executor: unknown executor 'dask'; available: ['local', 'ray']"),
    ("load, None", lambda: SW.load(None), TypeError, "store: a directory is required"),
    ("default_store, None", lambda: SW.default_store(None), ValueError, "chapter: expected a non-empty name"),
    ("default_store, a path", lambda: SW.default_store("x", "../y"), ValueError,
     "experiment: expected a non-empty name without '/'"),
    ("register, not callable", lambda: SW.register("99_bad_inputs", "n", 3, 4), ValueError,
     "fn: expected a run function"),
    ("experiments, unknown chapter", lambda: SW.experiments("nochapter"), ValueError,
     "chapter: no experiments registered for 'nochapter'"),
    ("Experiment.configs, unknown profile", lambda: SW.experiments("01_measuring_bias")["biasamp"].configs("fast"),
     ValueError, "profile: unknown profile 'fast'"),
    ("SweepError, without failed", lambda: SW.SweepError("m"), TypeError, "'failed'"),
    # ------------------------------------------------------------------ models
    ("BasicBlock, zero channels", lambda: MO.BasicBlock(0, 4), ValueError, "c_in: expected a positive integer"),
    ("BasicBlock, stride 0", lambda: MO.BasicBlock(2, 4, stride=0), ValueError, "stride: expected a positive integer"),
    ("CifarResNet, depth 10", lambda: MO.CifarResNet(depth=10), ValueError,
     "depth: 10 is not of the form 6n + 2; valid depths are 8, 14, 20"),
    ("CifarResNet.forward, wrong channels", lambda: MO.CifarResNet(depth=8, width=2)(torch.zeros(1, 1, 8, 8)),
     ValueError, "x: expected shape (N, 3, H, W), got (1, 1, 8, 8)"),
    ("SmallResNet, fractional blocks", lambda: MO.SmallResNet(width=2, blocks=(1.5,)), ValueError,
     "blocks[0]: expected a positive integer, got 1.5"),
    ("SmallResNet, blocks int", lambda: MO.SmallResNet(width=2, blocks=2), ValueError,
     "blocks: expected a list of block counts per stage"),
    ("SmallResNet.forward, no batch dimension", lambda: MO.SmallResNet(width=2, blocks=(1,))(torch.zeros(1, 8, 8)),
     ValueError, "x: expected shape (N, 1, H, W), got (1, 8, 8); add a batch dimension with x[None]"),
    ("SmallCNN, zero outputs", lambda: MO.SmallCNN(0), ValueError, "n_outputs: expected a positive integer"),
    ("SmallCNN, zero width", lambda: MO.SmallCNN(2, widths=(0, 1, 2, 3)), ValueError,
     "widths[0]: expected a positive integer"),
    ("SmallCNN.forward, a list", lambda: MO.SmallCNN(2)([[0.0]]), ValueError, "x: expected a torch tensor"),
    ("spatial_resnet, image_size None", lambda: MO.spatial_resnet(2, image_size=None), ValueError,
     "image_size: expected an integer >= 4"),
    ("build_model, unknown", lambda: MO.build_model("vgg"), ValueError, "name: unknown model 'vgg'; available:"),
    ("build_model, negative seed", lambda: MO.build_model("small_cnn", n_outputs=2, seed=-1), ValueError,
     "seed: expected a non-negative integer or None"),
    ("build_model, missing option", lambda: MO.build_model("small_cnn"), ValueError,
     "options: 'small_cnn' needs n_outputs=..."),
    ("count_parameters, None", lambda: MO.count_parameters(None), ValueError, "model: expected a torch.nn.Module"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=re.escape(match)):
        call()


def test_valid_inputs_still_work():
    assert A.mean_ci([4.0]) == (4.0, 4.0, 4.0)
    assert len(A.make_overlay_task(U12, F12, (0, 1), (2, 3), 0.1, 0.5, 0)) == 6
    assert len(_task(3).subset(torch.tensor([True, False, True]))) == 2
    assert len(_task(3).subset([-1, 0])) == 2
    assert MO.CifarResNet(depth=np.int64(8), width=2).depth == 8
    assert MO.count_parameters(MO.build_model("small_cnn", n_outputs=2, seed=0)) > 0
    assert len(S.group_accuracy_grid("quick")) > 0
