"""Bad input to fairlib.pruning and fairlib.naps gets a clear error naming the argument (and the fix).

One row per public function: the call, the exception type and a fragment of the message. The
last tests check that inputs close to the refused ones (legitimate variants) still work.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fairlib import naps as N
from fairlib import pruning as P


def _tiny():
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 2))


def _xy(n=6, k=2):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 4, generator=g), torch.randint(0, 2, (n, k), generator=g)


def _nap():
    return N.StreamingNAPs().update(np.arange(8.0).reshape(4, 2), [0, 0, 1, 1])


_TABLE = pd.DataFrame({"age": pd.Categorical(["young", "old"]), "style": pd.Categorical(["a", "a"]), "count": [2, 2]})
_ONE = np.array([[1], [0], [1], [0]])
_MAIN = pd.DataFrame({"seed": [0], "sparsity": [[0.0]], "attributes": [["a"]], "identities": [["g"]], "ba": [[0.1]]})


def _cie_frame():
    return pd.DataFrame({"seed": [0], "sparsity": [[0.0, 0.9]], "attributes": [["a"]],
                         "test_predictions": [[0, 1, 1, 1]], "dense_test_logits": [[-1.0, 2.0]]})

PRUNING = [
    ("cubic_sparsity, NaN step", lambda: P.cubic_sparsity(float("nan"), final=0.9, start=0, end=2),
     ValueError, "step: expected a finite number"),
    ("cubic_sparsity, final None", lambda: P.cubic_sparsity(1, final=None, start=0, end=2),
     ValueError, "final: expected a sparsity fraction in [0, 1), got None (99% is 0.99)"),
    ("pruning_steps, start after end", lambda: P.pruning_steps(final=0.9, start=5, end=2),
     ValueError, "end: must be after start, got start=5, end=2"),
    ("prunable_weights, not a model", lambda: P.prunable_weights([nn.Linear(2, 2)]),
     ValueError, "model: expected a torch.nn.Module, got list"),
    ("measure_sparsity, no prunable layer", lambda: P.measure_sparsity(nn.ReLU()),
     ValueError, "model: has no Conv or Linear layers to prune"),
    ("is_pruned, a weight tensor", lambda: P.is_pruned(nn.Linear(2, 2).weight),
     ValueError, "module: expected a torch.nn.Module, got Parameter"),
    ("global_magnitude_prune, percent", lambda: P.global_magnitude_prune(_tiny(), 90),
     ValueError, "sparsity: expected a fraction in [0, 1), got 90 (write 99% as 0.99)"),
    ("nm_prune, boolean n", lambda: P.nm_prune(_tiny(), True, 4),
     ValueError, "n, m: need integers with 1 <= n < m (e.g. 2:4)"),
    ("make_permanent, None", lambda: P.make_permanent(None), ValueError, "model: expected a torch.nn.Module"),
    ("clone_model, None", lambda: P.clone_model(None), ValueError, "model: expected a torch.nn.Module, got NoneType"),
    ("train_multilabel, labels 0/1/2", lambda: P.train_multilabel(_tiny(), _xy()[0], _xy()[1] * 2, epochs=1, lr=0.1),
     ValueError, "y: expected binary 0/1 values, found 2"),
    ("train_multilabel, model None", lambda: P.train_multilabel(None, *_xy(), epochs=1, lr=0.1),
     ValueError, "model: expected a torch.nn.Module"),
    ("train_gmp, one target not in a list", lambda: P.train_gmp(_tiny(), *_xy(), targets=0.5, epochs=3, start=0, end=1),
     ValueError, "targets: expected a list, got 0.5; write e.g. [0.9, 0.99]"),
    ("train_gmp, epochs as text", lambda: P.train_gmp(_tiny(), *_xy(), targets=[0.5], epochs="3", start=0, end=1),
     ValueError, "epochs: expected a finite number, got '3'"),
    ("train_gmp, negative finetune", lambda: P.train_gmp(_tiny(), *_xy(), targets=[0.5], epochs=3, start=0, end=1,
                                                         finetune_epochs=-1),
     ValueError, "finetune_epochs: expected a finite number >= 0"),
    ("train_gmp, negative warm-up", lambda: P.train_gmp(_tiny(), *_xy(), targets=[0.5], epochs=3, start=0, end=1,
                                                        warmup_epochs=-1),
     ValueError, "warmup_epochs: expected a finite number >= 0"),
    ("train_multilabel, negative warm-up", lambda: P.train_multilabel(_tiny(), *_xy(), epochs=1, lr=0.1,
                                                                      warmup_epochs=-0.5),
     ValueError, "warmup_epochs: expected a finite number >= 0"),
    ("train_gmp, augment as True", lambda: P.train_gmp(_tiny(), *_xy(), targets=[0.5], epochs=3, start=0, end=1,
                                                       augment=True),
     ValueError, "augment: expected None (no augmentation) or a padding in pixels"),
    ("ba_table, alpha in percent", lambda: P.ba_table([[1], [0]] * 10, [[1], [0]] * 10, {"g": [0, 1] * 10},
                                                      [[1], [0]] * 10, {"g": [0, 1] * 10}, ["a"], alpha=1),
     ValueError, "alpha: expected a significance level in (0, 1)"),
    ("two_proportion_pvalue, one group", lambda: P.two_proportion_pvalue([0, 1, 1], [1, 1, 1]),
     ValueError, "group: both groups need examples"),
    ("training_budget, not a config", lambda: P.training_budget([1, 2]),
     ValueError, "config: expected a configuration of main_grid"),
    ("cie_examples, dense sparsity", lambda: P.cie_examples(_cie_frame(), 0.0),
     ValueError, "sparsity: 0.0 is not a sparse model of the frame"),
    ("calibrate_thresholds, labels 0/1/2", lambda: P.calibrate_thresholds(np.ones((3, 1)), [[0], [1], [2]]),
     ValueError, "val_labels: expected binary 0/1 values, found 2"),
    ("apply_thresholds, NaN threshold", lambda: P.apply_thresholds(np.ones((3, 1)), [np.nan]),
     ValueError, "thresholds: contains nan; pass finite thresholds"),
    ("apply_thresholds, None", lambda: P.apply_thresholds(np.ones((3, 1)), None),
     ValueError, "thresholds: expected numbers (one per attribute, from calibrate_thresholds), got NoneType"),
    ("modal_prediction, probabilities", lambda: P.modal_prediction(np.array([[0.2, 0.7], [0.3, 0.9]])),
     ValueError, "preds: expected hard predictions (class codes), found 0.2; apply a threshold"),
    ("compression_identified_exemplars, scores", lambda: P.compression_identified_exemplars([[0, 1]], [[0.3, 0.9]]),
     ValueError, "sparse_preds: expected hard predictions (class codes), found 0.3"),
    ("most_uncertain, fraction None", lambda: P.most_uncertain([0.2, 0.5], None),
     ValueError, "fraction: expected a fraction in [0, 1] (5% is 0.05), got None"),
    ("override_uncertain, logits as probabilities", lambda: P.override_uncertain([0, 1], [0.5, 3.0], [1, 1], 0.5),
     ValueError, "dense_probs: probabilities must lie in [0, 1] (apply a sigmoid to the dense logits first)"),
    ("load_attribute_splits, unknown data", lambda: P.load_attribute_splits("celebb"),
     ValueError, "data: unknown dataset 'celebb'; available: synthfaces"),
    ("load_attribute_splits, identities as a string", lambda: P.load_attribute_splits("synthfaces", identities="Male"),
     ValueError, "identities: expected a list, got 'Male'"),
    ("build_multilabel_model, no outputs", lambda: P.build_multilabel_model("spatial_resnet", 0, image_size=24, seed=0),
     ValueError, "n_outputs: expected a positive integer (one logit per attribute), got 0"),
    ("sigmoid, text", lambda: P.sigmoid(["1.5"]), ValueError, "z: expected numbers (logits)"),
    ("sigmoid, NaN", lambda: P.sigmoid([0.0, np.nan]), ValueError, "z: contains NaN"),
    ("ba_table, attributes as a string", lambda: P.ba_table(_ONE, _ONE, {"g": [0, 1, 0, 1]}, _ONE, {"g": [0, 1, 0, 1]},
                                                           "a"),
     ValueError, "attributes: expected a list, got 'a'"),
    ("ba_table, identity of another split", lambda: P.ba_table(_ONE, _ONE, {"g": [0, 1, 0]}, _ONE, {"g": [0, 1, 0, 1]},
                                                              ["a"]),
     ValueError, "identity: 'g' has 3 values for 4 examples"),
    ("ba_table, identity as an array", lambda: P.ba_table(_ONE, _ONE, np.array([0, 1, 0, 1]), _ONE, {"g": [0, 1, 0, 1]},
                                                         ["a"]),
     ValueError, "identity: expected a mapping {identity name: 0/1 array}, got ndarray"),
    ("mean_ba, None", lambda: P.mean_ba(None), ValueError, "ba: expected a BA table of numbers"),
    ("mean_ba, BA values as pairs", lambda: P.mean_ba([[0.1, -0.2]], [[0.1, -0.2]]),
     ValueError, "pairs: expected a boolean mask of (attribute, identity) pairs, e.g. dense_ba > 0"),
    ("worst_ba, None", lambda: P.worst_ba(None), ValueError, "ba: expected a BA table of numbers"),
    ("summarise, labels 0/1/2", lambda: P.summarise(np.ones((3, 1)), [[0], [1], [2]]),
     ValueError, "labels: expected binary 0/1 values, found 2"),
    ("stamp, probabilities as mask", lambda: P.stamp(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), [0.5, 0.2]),
     ValueError, "mask: expected binary 0/1 values, found 0.5"),
    ("stamp, numpy images", lambda: P.stamp(np.zeros((2, 3, 8, 8), np.uint8), [0, 1]),
     ValueError, "images: expected a tensor (N, 3, H, W)"),
    ("backdoor_flags, rate above 1", lambda: P.backdoor_flags([0, 1, 1], 4, (1.5, 0.05)),
     ValueError, "rates: expected (share of positives, share of negatives), two fractions in [0, 1]"),
    ("backdoor_flags, one rate", lambda: P.backdoor_flags([0, 1, 1], 4, 0.9),
     ValueError, "rates: expected a list, got 0.9; write e.g. (0.95, 0.05)"),
    ("backdoor_flags, negative n_test", lambda: P.backdoor_flags([0, 1, 1], -1),
     ValueError, "n_test: expected a positive integer (number of test images), got -1"),
    ("backdoor_row, mismatched lengths", lambda: P.backdoor_row([1, -1, 1], [1, 1, 1], [1, 0], [0, 1, 1], [1, 0],
                                                               [0, 1]),
     ValueError, "mismatched lengths: z_triggered has 3, z_clean has 3, labels has 2, flags has 3"),
    ("backdoor_row, NaN logit", lambda: P.backdoor_row([np.nan, -1], [1, 1], [1, 0], [0, 1], [1, 0], [0, 1]),
     ValueError, "z_triggered: contains NaN at index 0; pass finite values"),
    ("backdoor_row, train flags -1/+1", lambda: P.backdoor_row([1, -1], [1, 1], [1, 0], [0, 1], [1, 0], [-1, 1]),
     ValueError, "train_flags: expected binary 0/1 values, found -1"),
    ("run_seed, percent sparsity", lambda: P.run_seed(**{**P.main_grid("quick")[0], "sparsities": [90]}),
     ValueError, "sparsities: expected a fraction in [0, 1), got 90 (write 99% as 0.99)"),
    ("run_seed, override fraction in percent", lambda: P.run_seed(**{**P.main_grid("quick")[0],
                                                                      "override_fractions": [5]}),
     ValueError, "override_fractions: expected fractions in [0, 1] (5% is 0.05), got 5"),
    ("run_seed, single sparsity not swept", lambda: P.run_seed(**{**P.main_grid("quick")[0],
                                                                  "single_sparsities": [0.95]}),
     ValueError, "single_sparsities: [0.95] are not among sparsities"),
    ("run_seed, unexpected keyword", lambda: P.run_seed(**P.main_grid("quick")[0], sparsity=[0.9]),
     TypeError, "unexpected keyword argument 'sparsity'"),
    ("run_backdoor, split above 1", lambda: P.run_backdoor(**{**P.backdoor_grid("quick")[0], "split": [1.5, 0.05]}),
     ValueError, "split: expected (share of positives, share of negatives)"),
    ("main_grid, unknown profile", lambda: P.main_grid("fast"),
     ValueError, "profile: unknown profile 'fast'; choose one of quick, full"),
    ("backdoor_grid, unknown profile", lambda: P.backdoor_grid("ful"),
     ValueError, "profile: unknown profile 'ful'; choose one of quick, full"),
    ("ba_cube, unknown key", lambda: P.ba_cube(_MAIN, "bx"),
     ValueError, "key: unknown BA column 'bx'; choose 'ba' or 'mitigation_ba'"),
    ("sparsity_table, the backdoor frame", lambda: P.sparsity_table(pd.DataFrame({"seed": [0], "sparsity": [[0.0]]})),
     ValueError, "frame: lacks the column(s) ['measured_sparsity'"),
    ("dense_ba_table, None", lambda: P.dense_ba_table(None),
     ValueError, "frame: expected the non-empty frame that sweep.run returned for run_seed"),
    ("worst_ba_table, empty frame", lambda: P.worst_ba_table(pd.DataFrame()),
     ValueError, "frame: expected the non-empty frame"),
    ("single_table, missing columns", lambda: P.single_table(_MAIN), ValueError, "frame: lacks the column(s)"),
    ("cie_table, missing columns", lambda: P.cie_table(_MAIN),
     ValueError, "frame: lacks the column(s) ['test_predictions', 'dense_test_logits']"),
    ("mitigation_table, BA values as pairs", lambda: P.mitigation_table(_MAIN, [[0.1]]),
     ValueError, "pairs: expected a boolean mask"),
    ("nm_table, missing columns", lambda: P.nm_table(_MAIN), ValueError, "frame: lacks the column(s) ['nm_pattern'"),
    ("backdoor_table, the main frame", lambda: P.backdoor_table(_MAIN),
     ValueError, "backdoor: lacks the column(s) ['accuracy_triggered'"),
]

NAPS = [
    ("neuron_activation_profiles, empty", lambda: N.neuron_activation_profiles(np.zeros((0, 3)), []),
     ValueError, "activations: expected (N, ...) activations with N >= 1, got shape (0, 3)"),
    ("neuron_activation_profiles, None", lambda: N.neuron_activation_profiles(None, [0]),
     ValueError, "activations: got None"),
    ("neuron_activation_profiles, text", lambda: N.neuron_activation_profiles(np.array([["a"], ["b"]]), [0, 1]),
     ValueError, "activations: expected numbers"),
    ("StreamingNAPs.update, groups of another batch", lambda: N.StreamingNAPs().update(np.ones((3, 2)), [0, 1]),
     ValueError, "groups: expected one label per example, shape (3,)"),
    ("StreamingNAPs.update, NaN", lambda: N.StreamingNAPs().update(np.array([[np.nan], [1.0]]), [0, 1]),
     ValueError, "activations: example 0 of this batch holds NaN or inf"),
    ("StreamingNAPs.result, no data", lambda: N.StreamingNAPs().result(),
     ValueError, "StreamingNAPs: no data yet; call update() first"),
    ("union_profiles, table None", lambda: N.union_profiles(np.ones((2, 1)), [0, 1], table=None, by="age"),
     ValueError, "table: expected a pandas DataFrame"),
    ("union_profiles, by empty", lambda: N.union_profiles(_nap(), table=_TABLE, by=[]),
     ValueError, "by: expected one or two column names of table, got []; columns are ['age', 'style', 'count']"),
    ("union_profiles, fractional group ids", lambda: N.union_profiles(np.ones((2, 1)), [0.5, 1], table=_TABLE,
                                                                      by="age"),
     ValueError, "groups: expected integer group ids (rows of table)"),
    ("union_profiles, group_ids ignored", lambda: N.union_profiles(_nap(), table=_TABLE, by="age",
                                                                   group_ids=np.array([0, 1])),
     ValueError, "group_ids: not used; pass the group ids as groups"),
    ("variance_share, table without by", lambda: N.variance_share(_nap(), table=_TABLE),
     ValueError, "by: pass the variable(s) whose unions to measure together with table"),
    ("stream_naps, batch_size 0", lambda: N.stream_naps(_tiny(), torch.utils.data.TensorDataset(torch.zeros(2, 4)),
                                                        [0, 1], {"fc": "1"}, batch_size=0),
     ValueError, "batch_size: expected a positive integer, got 0"),
    ("stream_naps, layers as a list", lambda: N.stream_naps(_tiny(), torch.utils.data.TensorDataset(torch.zeros(2, 4)),
                                                            [0, 1], ["1"]),
     ValueError, "layers: expected a non-empty mapping {display name: module name}"),
    ("stream_naps, negative workers", lambda: N.stream_naps(_tiny(), torch.utils.data.TensorDataset(torch.zeros(2, 4)),
                                                            [0, 1], {"fc": "1"}, num_workers=-1),
     ValueError, "num_workers: expected a non-negative integer (0: load in this process), got -1"),
    ("layer_shares, variables as a string", lambda: N.layer_shares({"l": _nap()}, _TABLE, "age"),
     ValueError, "variables: expected a list of column names, got 'age'; write e.g. ['age']"),
    ("layer_shares, unknown variable", lambda: N.layer_shares({"l": _nap()}, _TABLE, ["race"]),
     ValueError, "variables: ['race'] not in table; columns are ['age', 'style', 'count']"),
    ("layer_shares, arrays instead of StreamingNAPs", lambda: N.layer_shares({"l": np.ones(3)}, _TABLE, ["age"]),
     ValueError, "naps: the values of ['l'] are not fitted StreamingNAPs (use stream_naps)"),
    ("category_contrast, unknown within", lambda: N.category_contrast(np.ones((2, 1)), _TABLE, within="race",
                                                                      contrast="style", total_variance=1.0),
     ValueError, "within: ['race'] not in table; columns are ['age', 'style', 'count']"),
    ("category_contrast, NaN variance", lambda: N.category_contrast(np.ones((2, 1)), _TABLE, within="age",
                                                                    contrast="style", total_variance=np.nan),
     ValueError, "total_variance: expected a finite number >= 0"),
    ("category_contrast, profiles of another table", lambda: N.category_contrast(np.ones((3, 1)), _TABLE, within="age",
                                                                                 contrast="style", total_variance=1.0),
     ValueError, "profiles, table: 3 profiles for 2 rows"),
    ("nap_sample, unknown dataset", lambda: N.nap_sample("fairfac", {}, ["age"], cap=10),
     ValueError, "dataset: unknown dataset 'fairfac'; available: synthfaces"),
    ("nap_sample, cap 0", lambda: N.nap_sample("synthfaces", {}, ["age"], cap=0),
     ValueError, "cap: expected a positive integer (images per intersectional group), got 0"),
    ("analysed_layers, unknown network", lambda: N.analysed_layers("resnet-51"),
     ValueError, "network: no layer preset 'resnet-51'; presets: vgg16, resnet50"),
    ("run_layer_shares, unknown network", lambda: N.run_layer_shares("vgg", True, "synthfaces", {}, ["age"], 10, {}),
     ValueError, "network: no layer preset 'vgg'; presets:"),
    ("layer_shares_grid, unknown profile", lambda: N.layer_shares_grid("fast"),
     ValueError, "profile: unknown profile 'fast'; choose one of quick, full"),
]


@pytest.mark.parametrize("call, error, fragment", [c[1:] for c in PRUNING + NAPS], ids=[c[0] for c in PRUNING + NAPS])
def test_bad_input_names_the_argument(call, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        call()


def test_legitimate_variants_still_work():
    # a container module is not pruned; a boolean tensor mask stamps; whole-number float group ids are rows
    assert P.is_pruned(_tiny()) is False
    out = P.stamp(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([True, False]))
    assert out[0].sum() > 0 and out[1].sum() == 0
    assert P.mean_ba(pd.DataFrame([[0.2, -0.1]]), pd.DataFrame([[True, False]])) == pytest.approx(0.2)
    assert P.mean_ba([[0.2, -0.1]], [[1, 0]]) == pytest.approx(0.2)
    profiles, unions = N.union_profiles(np.arange(4.0).reshape(4, 1), [0.0, 0.0, 1.0, 1.0], table=_TABLE, by="age")
    assert list(unions["count"]) == [2, 2] and profiles.shape == (2, 1)
    assert P.pruning_steps(final=0.9, start=0.0, end=2.0)[-1] == (2, 0.9)
    assert P.cubic_sparsity(np.float64(1.0), final=0.9, start=0, end=2) == pytest.approx(0.9 - 0.85 / 8)
    assert P.sigmoid(torch.tensor([0.0, np.inf])).tolist() == [0.5, 1.0]
    assert P.modal_prediction(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])).tolist() == [1.0, 1.0]
    row = P.backdoor_row([1.0, -1.0], [1.0, 1.0], [1, 0], [0, 1], [1, 0, 1, 0], [0, 1, 1, 0])
    assert row["accuracy_triggered"] == 1.0 and row["accuracy_clean"] == 0.5
