"""fairlib.pruning: schedule, global/N:M masks, calibration, CIEs and overrides against hand values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from fairlib import pruning as P
from fairlib import sweep
from fairlib.models import spatial_resnet


def _tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


# --------------------------------------------------------------------------- schedule
def test_cubic_schedule_hand_values():
    kw = dict(final=0.9, start=10, end=20, initial=0.05)
    assert P.cubic_sparsity(5, **kw) == 0.0
    assert P.cubic_sparsity(10, **kw) == pytest.approx(0.05)
    # middle: 0.9 - 0.85 * 0.5**3 = 0.79375
    assert P.cubic_sparsity(15, **kw) == pytest.approx(0.79375)
    assert P.cubic_sparsity(20, **kw) == pytest.approx(0.9)
    assert P.cubic_sparsity(30, **kw) == pytest.approx(0.9)


def test_pruning_steps_every_frequency_and_reach_final():
    steps = P.pruning_steps(final=0.9, start=10, end=15, frequency=2)
    assert [t for t, _ in steps] == [10, 12, 14, 15]
    assert steps[-1][1] == pytest.approx(0.9)
    assert all(a[1] < b[1] for a, b in zip(steps, steps[1:]))


@pytest.mark.parametrize("kw", [dict(final=1.0, start=0, end=1), dict(final=0.5, start=3, end=3),
                                dict(final=0.5, start=0, end=2, initial=0.6)])
def test_schedule_bad_input(kw):
    with pytest.raises(ValueError):
        P.cubic_sparsity(1, **kw)


# --------------------------------------------------------------------------- global magnitude pruning
@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None)


def test_global_pruning_resnet18_exact_and_global(resnet18):
    model = resnet18
    params = P.prunable_weights(model)
    dense = torch.cat([m.weight.detach().abs().reshape(-1) for m, _ in params])
    s = P.global_magnitude_prune(model, 0.9)
    assert abs(s - 0.9) < 1e-3
    kept = torch.cat([m.weight_mask.reshape(-1) for m, _ in params]).bool()
    # survivors are exactly the globally largest magnitudes
    assert dense[kept].min() >= dense[~kept].max()
    # layers lose different fractions: the ranking is global, not per layer
    per_layer = [float((m.weight_mask == 0).float().mean()) for m, _ in params]
    assert max(per_layer) - min(per_layer) > 0.1
    # biases and BatchNorm are untouched
    assert not hasattr(model.fc, "bias_mask") and not hasattr(model.bn1, "weight_mask")

    # a second call reaches the new global target instead of compounding (0.9 + 0.1*0.99)
    s2 = P.global_magnitude_prune(model, 0.99)
    assert abs(s2 - 0.99) < 1e-3
    kept2 = torch.cat([m.weight_mask.reshape(-1) for m, _ in params]).bool()
    assert not (kept2 & ~kept).any()  # never revives a weight
    assert dense[kept2].min() >= dense[kept & ~kept2].max()


def test_masks_survive_optimizer_steps_and_export():
    model = _tiny()
    P.global_magnitude_prune(model, 0.5)
    zero = [(m.weight_mask == 0).clone() for m, _ in P.prunable_weights(model)]
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    for _ in range(3):
        loss = model(torch.randn(6, 4, 5, 5)).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for (m, _), z in zip(P.prunable_weights(model), zero):
        assert (m.weight[z] == 0).all()
    P.make_permanent(model)
    assert not any(P.is_pruned(m) for m, _ in P.prunable_weights(model))
    assert "0.weight_orig" not in model.state_dict()
    assert P.measure_sparsity(model) == pytest.approx(0.5, abs=0.01)


def test_global_prune_bad_input():
    model = _tiny()
    with pytest.raises(ValueError, match="sparsity"):
        P.global_magnitude_prune(model, 1.5)
    P.global_magnitude_prune(model, 0.6)
    with pytest.raises(ValueError, match="already"):
        P.global_magnitude_prune(model, 0.3)
    with pytest.raises(ValueError, match="no Conv or Linear"):
        P.global_magnitude_prune(nn.Sequential(nn.ReLU()), 0.5)


# --------------------------------------------------------------------------- N:M
@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (1, 8)])
def test_nm_masks_have_n_per_group(n, m):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Conv2d(16, 8, 3), nn.Flatten(), nn.Linear(8, 2),
                          nn.Linear(2, 16))
    # make the expected keepers recognisable: largest |w| in each group survive
    P.nm_prune(model, n, m)
    conv = model[1]
    groups = conv.weight_mask.movedim(1, -1).reshape(-1, m)
    assert (groups.sum(1) == n).all()
    w = conv.weight_orig.detach().abs().movedim(1, -1).reshape(-1, m)
    kept_min = torch.where(groups.bool(), w, torch.inf).min(1).values
    dropped_max = torch.where(groups.bool(), -torch.inf, w).max(1).values
    assert (kept_min >= dropped_max).all()
    fc = model[3]
    assert (fc.weight_mask.reshape(-1, m).sum(1) == n).all()
    # the RGB stem (3 inputs) and the 2-input layer are left dense
    assert not P.is_pruned(model[0]) and not P.is_pruned(model[4])


def test_nm_bad_input():
    model = nn.Sequential(nn.Linear(6, 4))
    with pytest.raises(ValueError, match="n, m"):
        P.nm_prune(model, 4, 4)
    with pytest.raises(ValueError, match="multiple of 4"):
        P.nm_prune(model, 2, 4, skip_incompatible=False)
    model = nn.Sequential(nn.Linear(8, 4))
    P.global_magnitude_prune(model, 0.5)
    with pytest.raises(ValueError, match="make_permanent"):
        P.nm_prune(model, 2, 4)


# --------------------------------------------------------------------------- GMP training
def test_train_gmp_returns_each_target():
    torch.manual_seed(0)
    x = torch.randn(64, 4, 6, 6)
    y = (x.mean((1, 2, 3)) > 0).long()[:, None].repeat(1, 3)
    seen = []
    out = P.train_gmp(_tiny(), x, y, targets=[0.5, 0.8, 0.9], epochs=4, start=1, end=2, lr=0.05,
                      finetune_epochs=0.25, batch_size=32, callback=lambda s, m: seen.append(s))
    assert list(out) == [0.5, 0.8, 0.9] and sorted(seen) == [0.5, 0.8, 0.9]
    for s, m in out.items():
        assert P.measure_sparsity(m) == pytest.approx(s, abs=0.02)
    with pytest.raises(ValueError, match="variant"):
        P.train_gmp(_tiny(), x, y, targets=[0.5], epochs=3, start=0, end=1, variant="xx")


# --------------------------------------------------------------------------- calibration
def test_calibrate_thresholds_hand_example():
    logits = np.array([[3.0, -1.0, 0.0], [2.0, -2.0, 1.0], [1.0, -3.0, 2.0], [0.0, -4.0, 2.0]])
    labels = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]])
    t = P.calibrate_thresholds(logits, labels)
    # k = 2 -> 2nd largest 2.0; k = 0 -> the largest, -1.0; k = 2 with a tie at 2.0 -> 2.0
    np.testing.assert_array_equal(t, [2.0, -1.0, 2.0])
    pred = P.apply_thresholds(logits, t)
    np.testing.assert_array_equal(pred.sum(0), [1, 0, 0])  # k - 1; ties at the threshold are negative
    assert P.apply_thresholds([[2.5, 0.0, 3.0]], t).tolist() == [[1, 1, 1]]


def test_calibrate_bad_input():
    with pytest.raises(ValueError, match="shapes differ"):
        P.calibrate_thresholds(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="0/1"):
        P.calibrate_thresholds(np.zeros(3), np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="one per attribute"):
        P.apply_thresholds(np.zeros((2, 3)), [0.0, 1.0])


# --------------------------------------------------------------------------- CIEs and overrides
def test_cies_on_constructed_predictions():
    dense = np.array([[1, 0, 1, 0], [1, 0, 0, 0], [1, 1, 1, 0]])   # modes 1 0 1 0
    sparse = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 1, 0, 1]])  # modes 1 1 0 0
    np.testing.assert_array_equal(P.compression_identified_exemplars(dense, sparse), [False, True, True, False])
    # a tie (2 runs, 1 vs 0) goes to the smaller label
    np.testing.assert_array_equal(P.modal_prediction([[1, 0], [0, 0]]), [0, 0])
    with pytest.raises(ValueError, match="per-run shapes"):
        P.compression_identified_exemplars(dense, sparse[:, :3])


def test_overrides_on_constructed_predictions():
    probs = np.array([0.99, 0.52, 0.10, 0.45, 0.70, 0.01, 0.95, 0.60, 0.97, 0.02])
    sparse = np.zeros(10, dtype=int)
    truth = np.ones(10, dtype=int)
    new, mask = P.override_uncertain(sparse, probs, truth, 0.2)  # 2 most uncertain: 0.52, 0.45
    assert np.flatnonzero(mask[:, 0]).tolist() == [1, 3]
    assert new[:, 0].tolist() == [0, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    new, mask = P.override_uncertain(sparse, probs, truth, 0.3)  # + 0.60
    assert np.flatnonzero(mask[:, 0]).tolist() == [1, 3, 7]
    new, _ = P.override_uncertain(sparse, probs, truth, 0.0)
    assert new.sum() == 0
    with pytest.raises(ValueError, match="fraction"):
        P.override_uncertain(sparse, probs, truth, 5)
    with pytest.raises(ValueError, match="shapes differ"):
        P.override_uncertain(sparse, probs[:5], truth, 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        P.most_uncertain(probs * 3, 0.1)


# --------------------------------------------------------------------------- the quick-profile model
@pytest.mark.parametrize("size,side", [(24, 6), (25, 7), (32, 8)])
def test_spatial_resnet_shapes_and_pruning(size, side):
    model = spatial_resnet(5, image_size=size, width=4)
    assert model[-1].in_features == 16 * side * side  # width * 2**2 channels, two stride-2 stages
    assert model(torch.rand(3, 3, size, size)).shape == (3, 5)
    assert P.global_magnitude_prune(model, 0.9) == pytest.approx(0.9, abs=1e-3)
    wide = spatial_resnet(5, image_size=size, width=4, hidden=7)
    assert [m.out_features for m in wide if isinstance(m, nn.Linear)] == [7, 5]
    assert wide(torch.rand(2, 3, size, size)).shape == (2, 5)
    with pytest.raises(ValueError, match="image_size"):
        spatial_resnet(5, image_size=2)
    with pytest.raises(ValueError, match="hidden"):
        spatial_resnet(5, image_size=24, hidden=0)
    with pytest.raises(ValueError, match="num_outputs"):
        spatial_resnet(0, image_size=24)


# --------------------------------------------------------------------------- analysis helpers
def _ba_example():
    """40 test examples, identity 1 on the first 20; 15 + 10 positives; training ties A to identity 1."""
    ident = np.r_[np.ones(20), np.zeros(20)].astype(int)
    y = np.r_[np.ones(15), np.zeros(5), np.ones(10), np.zeros(10)].astype(int)
    # every positive predicted, plus the 5 negatives of identity 1: 20 of 30 predicted positives in g*
    pred = np.r_[np.ones(20), np.ones(10), np.zeros(10)].astype(int)
    train_y = np.r_[np.ones(8), np.zeros(2), np.ones(2), np.zeros(8)].astype(int)
    train_i = np.r_[np.ones(10), np.zeros(10)].astype(int)
    return ident, y, pred, train_y, train_i


def test_ba_table_hand_value_and_identity_diagonal():
    ident, y, pred, train_y, train_i = _ba_example()
    # second column: the identity itself, which is never scored against itself
    table = P.ba_table(np.c_[pred, ident], np.c_[y, ident], {"g": ident}, np.c_[train_y, train_i], {"g": train_i},
                       ["a", "g"])
    assert list(table.index) == ["a", "g"] and list(table.columns) == ["g"]
    assert table.loc["a", "g"] == pytest.approx(20 / 30 - 15 / 25)
    assert np.isnan(table.loc["g", "g"])
    with pytest.raises(ValueError, match="same K columns"):
        P.ba_table(pred, np.c_[y, y], {"g": ident}, train_y, {"g": train_i}, ["a"])
    with pytest.raises(ValueError, match="different categories"):
        P.ba_table(pred, y, {"g": ident}, train_y, {"h": train_i}, ["a"])


def test_mean_and_worst_ba_skip_undefined_pairs():
    ba = np.array([[0.1, np.nan], [-0.3, 0.5]])
    assert P.mean_ba(ba) == pytest.approx(0.1)
    assert P.worst_ba(ba) == pytest.approx(0.5)
    assert P.mean_ba(ba, pairs=[[True, True], [False, False]]) == pytest.approx(0.1)
    assert np.isnan(P.mean_ba(ba, pairs=np.zeros((2, 2), bool)))
    assert np.isnan(P.worst_ba(np.full((2, 2), np.nan)))
    with pytest.raises(ValueError, match="pairs"):
        P.mean_ba(ba, pairs=np.ones(3, bool))


def test_summarise_perfect_and_constant_models():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 5)
    perfect = P.summarise(np.where(y == 1, 9.0, -9.0), y, ba=[[0.2, np.nan]])
    assert perfect["accuracy"] == 1.0 and perfect["auc"] == 1.0 and perfect["tcb"] == 1.0
    assert perfect["uncertainty"] == 0.0 and perfect["ece"] < 1e-3
    assert perfect["mean_ba"] == pytest.approx(0.2) and perfect["worst_ba"] == pytest.approx(0.2)
    assert list(perfect) == list(P.SUMMARY_METRICS)
    # all logits 0: every probability is 0.5 (uncertain), nothing predicted, chance AUC
    rare = (np.arange(20) < 5).astype(int)
    flat = P.summarise(np.zeros(20), rare)
    assert flat["uncertainty"] == 1.0 and flat["auc"] == 0.5 and flat["accuracy"] == 0.75
    assert flat["tcb"] == 0.0 and np.isnan(flat["interrelation"]) and np.isnan(flat["mean_ba"])
    with pytest.raises(ValueError, match="shapes differ"):
        P.summarise(np.zeros((20, 2)), y[:, :1])


def test_sigmoid_matches_the_formula_without_overflow():
    z = np.array([-1000.0, -2.0, 0.0, 3.0, 1000.0])
    np.testing.assert_allclose(P.sigmoid(z)[1:4], 1 / (1 + np.exp(-z[1:4])))
    assert P.sigmoid(z)[0] == 0.0 and P.sigmoid(z)[-1] == 1.0


def test_stamp_marks_only_the_selected_corners():
    x = torch.zeros(3, 3, 16, 16, dtype=torch.uint8)
    out = P.stamp(x, np.array([1, 0, 1]))
    assert (x == 0).all(), "the input is not modified"
    k = 2  # max(2, 16 // 8)
    assert out[0, :, :k, :k].tolist() == [[[255] * k] * k, [[255] * k] * k, [[0] * k] * k]
    assert out[0].sum() == 2 * 255 * k * k and out[1].sum() == 0
    assert (out[2] == out[0]).all()
    assert P.stamp(torch.zeros(1, 3, 40, 40, dtype=torch.uint8), [True])[0, 0].sum() == 255 * 25
    with pytest.raises(ValueError, match="mask"):
        P.stamp(x, [1, 0])


def test_backdoor_flags_follow_the_rates_and_the_seed():
    y = np.r_[np.ones(300), np.zeros(700)].astype(int)
    train, test = P.backdoor_flags(y, 500, (1.0, 0.0), seed=3)
    np.testing.assert_array_equal(train, y)
    assert 0.4 < test.mean() < 0.6 and test.dtype == np.int64
    train, test2 = P.backdoor_flags(y, 500, (0.95, 0.05), seed=3)
    assert 0.9 < train[:300].mean() and train[300:].mean() < 0.1
    np.testing.assert_array_equal(test, test2)  # the test draw comes after the same number of draws
    assert not np.array_equal(P.backdoor_flags(y, 500, seed=4)[1], test)


def test_backdoor_row_hand_values():
    ident, y, pred, train_y, train_i = _ba_example()
    z_trig = np.where(pred == 1, 2.0, -2.0)
    row = P.backdoor_row(z_trig, np.where(y == 1, 1.0, -1.0), y, ident, train_y, train_i)
    assert row["accuracy_triggered"] == pytest.approx(35 / 40)
    assert row["accuracy_clean"] == 1.0
    assert row["positive_rate"] == pytest.approx(30 / 40)
    assert row["ba"] == pytest.approx(20 / 30 - 15 / 25)


# --------------------------------------------------------------------------- the experiments
def test_grids_and_registration():
    quick, full, paper = P.main_grid("quick", seed=4), P.main_grid("full"), P.main_grid("paper")
    assert [c["seed"] for c in quick] == [4, 5, 6] and [c["seed"] for c in paper] == list(range(5))
    assert [c["seed"] for c in full] == [0, 1, 2]
    assert quick[0]["split_options"]["train"] == {"n": 2500, "seed": 4}
    assert full[0]["split_options"] == {"train": {"n": 40_000, "seed": 0}}, "full: a subset of CelebA's training split"
    assert paper[0]["split_options"] == {} and paper[0]["dense_epochs"] == 100, "paper: the whole split, 100 epochs"
    assert quick[0]["sparsities"] == P.SPARSITIES and paper[0]["variant"] == "ri" and full[0]["variant"] == "pt"
    assert len({sweep.config_key(c) for c in quick}) == 3  # JSON-serialisable and distinct
    (bd,) = P.backdoor_grid("quick")
    assert bd["attribute"] == "fringe" and bd["epochs"] == quick[0]["single_epochs"]
    assert {k: bd[k] for k in ("model", "variant", "prune_epochs")} == \
        {k: quick[0][k] for k in ("model", "variant", "prune_epochs")}
    sweep.config_key(bd)
    found = sweep.experiments("05_pruning_bias")
    assert found["main"].fn is P.run_seed and found["backdoor"].fn is P.run_backdoor
    assert found["main"].configs("quick") == P.main_grid("quick")


_TINY = {"split_options": {"train": {"n": 240, "seed": 0}, "val": {"n": 120, "seed": 0},
                           "test": {"n": 240, "seed": 0}},
         "model_options": {"width": 4, "hidden": 8}, "batch_size": 80, "prune_epochs": 2, "prune_start": 0,
         "prune_end": 1}


def _tiny_configs() -> list[dict]:
    return [{**c, **_TINY, "dense_epochs": 1, "single_epochs": 1, "single": ["earrings"], "sparsities": [0.5, 0.8]}
            for c in P.main_grid("quick")]


@pytest.fixture(scope="module")
def tiny_main(tmp_path_factory):
    """Three seeds of run_seed on 240 SynthFaces images, one epoch each (a few seconds)."""
    return sweep.run(P.run_seed, _tiny_configs(), store=tmp_path_factory.mktemp("main"), progress=False)


def test_run_seed_results_are_flat_and_consistent(tiny_main):
    data = P.load_attribute_splits("synthfaces", P.main_grid("quick")[0]["data_options"], _TINY["split_options"],
                                   drop=["smile", "blush", "mole", "headband"],
                                   identities=["angular", "smooth", "wide", "light"])
    r = tiny_main.iloc[0]
    k, n_id, n = len(r["attributes"]), len(r["identities"]), len(data.labels["test"])
    assert r["attributes"] == data.attributes and k == 12 and n_id == 4
    assert r["sparsity"] == [0.0, 0.5, 0.8]
    np.testing.assert_allclose(r["measured_sparsity"], [0.0, 0.5, 0.8], atol=0.01)
    assert len(r["ba"]) == 3 * k * n_id and len(r["test_predictions"]) == 3 * n * k
    preds = np.reshape(r["test_predictions"], (3, n, k))
    # the summary metrics were computed from the same predictions
    np.testing.assert_allclose(r["accuracy"], (preds == data.labels["test"]).mean(axis=(1, 2)))
    np.testing.assert_array_equal(preds[0], (np.reshape(r["dense_test_logits"], (n, k)) > 0).astype(int))
    # the default-threshold method reproduces the plain BA tables
    mit = P.ba_cube(tiny_main, "mitigation_ba")
    assert mit.shape == (3, 3, 6, k, n_id) and r["mitigation_methods"][0] == "default threshold"
    np.testing.assert_array_equal(mit[:, :, 0], P.ba_cube(tiny_main))
    assert r["single_attribute"] == ["earrings", "earrings"] and r["single_training"] == ["joint", "single"]
    assert r["nm_pattern"] == ["2:4", "1:4", "1:8"] and 0.4 < r["nm_sparsity"][0] <= 0.5
    assert 0 <= r["control_accuracy_triggered"] <= 1 and 0 <= r["control_positive_rate"] <= 1
    assert r["n_weights"] == sum(m.weight.numel() for m, _ in P.prunable_weights(
        spatial_resnet(k, image_size=24, width=4, hidden=8)))


def test_run_seed_restores_threads_and_repeats_exactly(tiny_main):
    before = torch.get_num_threads()
    again = P.run_seed(**_tiny_configs()[1])
    assert torch.get_num_threads() == before
    assert again["accuracy"] == tiny_main.iloc[1]["accuracy"]
    assert again["test_predictions"] == tiny_main.iloc[1]["test_predictions"]


def test_tables_from_the_sweep(tiny_main):
    table = P.sparsity_table(tiny_main)
    assert len(table) == 9 and list(table.columns[:3]) == ["seed", "sparsity", "measured_sparsity"]
    cube = P.ba_cube(tiny_main)
    dense = P.dense_ba_table(tiny_main)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pairs
        np.testing.assert_allclose(dense.to_numpy(), np.nanmean(cube[:, 0], axis=0))
    pos = dense.fillna(0) > 0
    mit = P.mitigation_table(tiny_main, pos)
    assert len(mit) == 9 and list(mit.columns[2:]) == tiny_main.iloc[0]["mitigation_methods"]
    expected = [P.mean_ba(cube[i, j], pos) for i in range(3) for j in range(3)]
    np.testing.assert_allclose(mit["default threshold"], expected)
    worst = P.worst_ba_table(tiny_main)
    assert set(worst.sparsity) <= {0.0, 0.5, 0.8} and worst["worst BA"].notna().all()
    assert worst["worst BA"].max() == pytest.approx(np.nanmax(cube))
    single = P.single_table(tiny_main)
    assert len(single) == 6 and "BA angular" in single.columns
    cies = P.cie_table(tiny_main)
    assert list(cies.index) == [0.5, 0.8] and ((cies["share of CIEs"] >= 0) & (cies["share of CIEs"] <= 1)).all()
    preds = np.stack([np.reshape(r, (3, -1, 12)) for r in tiny_main["test_predictions"]])
    assert cies.loc[0.8, "share of CIEs"] == pytest.approx(
        P.compression_identified_exemplars(preds[:, 0], preds[:, 2]).mean())
    nm = P.nm_table(tiny_main)
    assert list(nm.index) == ["2:4", "1:4", "1:8"]
    assert nm.loc["1:8", "measured sparsity"] == pytest.approx(np.mean([r[2] for r in tiny_main["nm_sparsity"]]))


def test_run_backdoor_and_its_table(tiny_main, tmp_path):
    (config,) = P.backdoor_grid("quick")
    config.update(_TINY, epochs=1, sparsities=[0.8])
    frame = sweep.run(P.run_backdoor, [config], store=tmp_path, progress=False)
    r = frame.iloc[0]
    assert r["sparsity"] == [0.0, 0.8] and len(r["ba"]) == 2
    table = P.backdoor_table(frame, tiny_main)
    assert list(table.index) == [("trained with trigger", 0.0), ("trained with trigger", 0.8),
                                 ("clean joint model", 0.0)]
    assert table.loc[("clean joint model", 0.0), "accuracy, trigger on half"] == \
        tiny_main.iloc[0]["control_accuracy_triggered"]
    assert len(P.backdoor_table(frame)) == 2
    with pytest.raises(ValueError, match="seed"):
        P.backdoor_table(frame, tiny_main[tiny_main.seed == 2])


def test_load_attribute_splits_is_cached_and_checks_names():
    opts = {"mode": "multi", "size": 24}
    splits = {s: {"n": 40, "seed": 1} for s in ("train", "val", "test")}
    a = P.load_attribute_splits("synthfaces", opts, splits, drop=["mole"], identities=["angular"])
    assert P.load_attribute_splits("synthfaces", opts, splits, drop=["mole"], identities=["angular"]) is a
    assert "mole" not in a.attributes and "angular" in a.attributes and a.image_size == 24
    assert a.labels["test"].shape == (40, len(a.attributes)) and set(a.identity["val"]) == {"angular"}
    with pytest.raises(ValueError, match="not attributes"):
        P.load_attribute_splits("synthfaces", opts, splits, identities=["Male"])


def test_stamp_copies_large_splits_into_a_file_backed_map(monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRLIB_CACHE", str(tmp_path))
    monkeypatch.setattr(P, "_STAMP_IN_MEMORY", 10)  # every split counts as large
    images = torch.zeros(5, 3, 16, 16, dtype=torch.uint8)
    out = P.stamp(images, [True, False, True, False, False])
    assert int(images.sum()) == 0, "the input is not changed"
    assert out[0, :, 0, 0].tolist() == [255, 255, 0] and int(out[1].sum()) == 0
    assert out[0, :, :2, :2].sum() == 2 * 2 * 2 * 255 and int(out[0, :, 2:, :].sum()) == 0, "a 2-pixel square (16 // 8)"
    assert list((tmp_path / "scratch").iterdir()) == [], "the map's file is unlinked at once"
