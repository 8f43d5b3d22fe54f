"""fairlib.pruning: schedule, global/N:M masks, calibration, CIEs and overrides against hand values."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
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
    start = _tiny()
    before = [p.detach().clone() for p in start.parameters()]
    out = P.train_gmp(start, x, y, targets=[0.5, 0.8, 0.9], epochs=4, start=1, end=2, lr=0.05,
                      finetune_epochs=0.5, batch_size=32, callback=lambda s, m: seen.append(s))
    assert list(out) == [0.5, 0.8, 0.9] and sorted(seen) == [0.5, 0.8, 0.9]
    for s, m in out.items():
        assert P.measure_sparsity(m) == pytest.approx(s, abs=0.02)
    # one complete run per target: 4 epochs of 2 batches, then half an epoch (1 step)
    assert [P.train_steps(m) for m in out.values()] == [9, 9, 9]
    assert all(torch.equal(a, b) for a, b in zip(before, start.parameters())), "the start model is not changed"
    assert P.train_steps(start) == 0
    dense = P.train_gmp(start, x, y, targets=[0.0], epochs=3, start=0, end=1, lr=0.05, batch_size=32)
    assert P.measure_sparsity(dense[0.0]) == 0.0 and P.train_steps(dense[0.0]) == 6, "a 0% run trains unpruned"
    with pytest.raises(ValueError, match="variant"):
        P.train_gmp(_tiny(), x, y, targets=[0.5], epochs=3, start=0, end=1, variant="xx")


def test_train_gmp_with_crops_and_flips_changes_the_run():
    torch.manual_seed(2)
    x = torch.randn(64, 4, 6, 6)
    y = (x.mean((1, 2, 3)) > 0).long()[:, None].repeat(1, 3)
    plain = P.train_gmp(_tiny(4), x, y, targets=[0.5], epochs=3, start=0, end=1, lr=0.05, batch_size=32)[0.5]
    augmented = P.train_gmp(_tiny(4), x, y, targets=[0.5], epochs=3, start=0, end=1, lr=0.05, batch_size=32,
                            augment=1)[0.5]
    assert P.measure_sparsity(augmented) == pytest.approx(0.5, abs=0.02)
    assert not torch.equal(plain[0].weight, augmented[0].weight), "augmented batches give another trajectory"


def test_train_gmp_same_start_same_seed_same_run():
    """Each target's run is independent of the others: 0.8 alone equals 0.8 beside 0.5."""
    torch.manual_seed(1)
    x = torch.randn(64, 4, 6, 6)
    y = (x.mean((1, 2, 3)) > 0).long()[:, None].repeat(1, 3)
    start = _tiny(3)
    both = P.train_gmp(start, x, y, targets=[0.5, 0.8], epochs=3, start=0, end=1, lr=0.05, batch_size=32)
    alone = P.train_gmp(start, x, y, targets=[0.8], epochs=3, start=0, end=1, lr=0.05, batch_size=32)
    for a, b in zip(both[0.8].state_dict().values(), alone[0.8].state_dict().values()):
        torch.testing.assert_close(a, b)


def test_warmup_cosine_schedule_hand_values():
    from types import SimpleNamespace

    from fairlib.training import cosine_schedule, warmup_cosine_schedule

    f = warmup_cosine_schedule(1.0)  # 4 steps per epoch, 12 steps: W = 4 warm-up steps, then 8 of cosine
    at = [f(SimpleNamespace(step=t, total_steps=12, steps_per_epoch=4)) for t in range(12)]
    np.testing.assert_allclose(at[:4], [0.25, 0.5, 0.75, 1.0])
    assert at[4] == pytest.approx(1.0) and at[8] == pytest.approx(0.5)  # cos(pi * 4/8) = 0
    assert at[11] == pytest.approx(0.5 * (1 + np.cos(np.pi * 7 / 8)))
    plain = warmup_cosine_schedule(0)
    for t in range(12):
        state = SimpleNamespace(step=t, total_steps=12, steps_per_epoch=4)
        assert plain(state) == pytest.approx(cosine_schedule(state))


def test_training_budgets_are_equal_across_sparsities():
    for profile in ("quick", "full", "paper"):
        config = P.main_grid(profile)[0]
        budget = P.training_budget(config)
        sparse = budget[budget.sparsity > 0]
        assert list(sparse.sparsity) == config["sparsities"]
        assert sparse.optimizer_steps.nunique() == 1 and sparse.epochs.nunique() == 1, profile
        assert budget.schedule.nunique() == 1 and "warm-up" in budget.schedule.iloc[0], "one schedule family"
        if config["variant"] == "ri":
            assert budget.optimizer_steps.nunique() == 1, f"{profile}: GMP-RI runs are as long as the dense run"
        else:
            matched = budget[budget.model == "dense, same budget"]
            assert matched.optimizer_steps.iloc[0] == sparse.optimizer_steps.iloc[0]
    quick = P.training_budget(P.main_grid("quick")[0])
    # 2,500 images in batches of 32: 78 full batches and one of 4 -> 79 steps per epoch; 8 dense + 4 GMP epochs
    assert quick.optimizer_steps.tolist() == [8 * 79] + [12 * 79] * 4
    assert quick.pruning_epochs.iloc[-1] == "0, 1, 2"
    for config in P.backdoor_grid("full"):
        b = P.training_budget(config)
        assert b.optimizer_steps.nunique() == 1, "the full backdoor's dense run is as long as its GMP-RI runs"


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
    # hard predictions of two independent balanced columns: R^2 = 0 each; no constant output
    assert perfect["interrelation"] == pytest.approx(0.0, abs=1e-12) and perfect["constant_outputs"] == 0.0
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
    assert quick[0]["sparsities"] == [0.9, 0.98, 0.995] and paper[0]["sparsities"] == P.SPARSITIES
    assert paper[0]["variant"] == "ri" and full[0]["variant"] == "ri" and quick[0]["variant"] == "pt"
    assert quick[0]["prune_lr"] < quick[0]["lr"], "GMP-PT: Adam at a lower rate than the dense training"
    assert paper[0]["prune_frequency"] == 10 and paper[0]["warmup_epochs"] == 5, "the authors' schedule"
    assert quick[0]["augment"] is None and full[0]["augment"] == 9 and paper[0]["augment"] == 16, "crops and flips"
    assert len({sweep.config_key(c) for c in quick}) == 3  # JSON-serialisable and distinct
    (bd,) = P.backdoor_grid("quick")
    assert bd["attribute"] == "fringe" and bd["epochs"] == quick[0]["single_epochs"]
    assert [c["seed"] for c in P.backdoor_grid("full")] == [0, 1, 2]
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
    return [{**c, **_TINY, "dense_epochs": 1, "single_epochs": 1, "single": ["earrings"], "sparsities": [0.5, 0.8],
             "single_sparsities": [0.8]} for c in P.main_grid("quick")]


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
    assert r["single_attribute"] == ["earrings"] * 4 and r["single_training"] == ["joint", "single"] * 2
    assert r["single_sparsity"] == [0.0, 0.0, 0.8, 0.8]
    assert r["single_accuracy"][2] == pytest.approx(float((preds[2][:, r["attributes"].index("earrings")] ==
                                                           data.labels["test"][:, r["attributes"].index("earrings")])
                                                          .mean())), "the joint row at 0.8 is the 0.8 joint model"
    assert r["nm_pattern"] == ["2:4", "1:4", "1:8"] and 0.4 < r["nm_sparsity"][0] <= 0.5
    assert 0 <= r["control_accuracy_triggered"] <= 1 and 0 <= r["control_positive_rate"] <= 1
    assert r["n_weights"] == sum(m.weight.numel() for m, _ in P.prunable_weights(
        spatial_resnet(k, image_size=24, width=4, hidden=8)))
    # budgets: 240 images in batches of 80 = 3 steps per epoch; dense 1 epoch, GMP-PT 2 more for each target
    assert r["train_steps"] == [3, 9, 9] and r["matched_train_steps"] == 9
    budget = P.training_budget(_tiny_configs()[0])
    assert budget.optimizer_steps.tolist() == [3, 9, 9, 9]
    assert set(r.index) >= {f"matched_{k}" for k in P.SUMMARY_METRICS}
    p = np.reshape(r["pair_p"], (k, n_id))
    assert np.isnan(p[r["attributes"].index("angular"), 0]) and np.nanmax(p) <= 1
    # BA is defined only for pairs whose training association is significant (p < 0.01)
    ba = P.ba_cube(tiny_main)[0, 0]
    assert not np.isfinite(ba[~(p < 0.01)]).any()


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
    assert len(single) == 12 and "BA angular" in single.columns and set(single.sparsity) == {0.0, 0.8}
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
    assert list(zip(table.model, table.sparsity)) == [("trained with trigger", 0.0), ("trained with trigger", 0.8),
                                                      ("clean joint model", 0.0)]
    assert table["accuracy, trigger on half"].iloc[2] == tiny_main.iloc[0]["control_accuracy_triggered"]
    assert len(P.backdoor_table(frame)) == 2
    with pytest.raises(ValueError, match="seed"):
        P.backdoor_table(frame, tiny_main[tiny_main.seed == 2])


def test_two_proportion_pvalue_hand_value():
    # group 1: 30 of 50 positive, group 0: 20 of 50; pooled 0.5: z = 0.2 / sqrt(0.25 * 0.04) = 2
    y = np.r_[np.ones(30), np.zeros(20), np.ones(20), np.zeros(30)].astype(int)
    g = np.r_[np.ones(50), np.zeros(50)].astype(int)
    from scipy import stats

    assert P.two_proportion_pvalue(y, g) == pytest.approx(2 * stats.norm.sf(2.0))
    chi2 = stats.chi2_contingency([[30, 20], [20, 30]], correction=False)[1]
    assert P.two_proportion_pvalue(y, g) == pytest.approx(chi2)
    assert P.two_proportion_pvalue(np.zeros(100, int), g) == 1.0


def test_planted_pairs_pass_the_significance_filter():
    """On the quick profile's training split, every planted attribute-identity link is significant."""
    c = P.main_grid("quick")[0]
    d = P.load_attribute_splits(c["data"], c["data_options"], c["split_options"], drop=c["drop"],
                                identities=c["identities"])
    tests = P.pair_tests(d.labels["train"], d.identity["train"], d.attributes).set_index(["attribute", "identity"])
    planted = [("beard", "angular"), ("lipstick", "angular"), ("earrings", "angular"), ("mustache", "angular"),
               ("glasses", "smooth")]
    for pair in planted:
        assert tests.loc[pair, "p"] < 0.01 and tests.loc[pair, "passes 10% rule"], pair
    assert len(tests) == 12 * 4 - 4, "every attribute with every identity but itself"
    ba = P.ba_table(d.labels["train"], d.labels["train"], d.identity["train"], d.labels["train"], d.identity["train"],
                    d.attributes, alpha=0.01)
    for a, g in tests.index:
        if tests.loc[(a, g), "p"] >= 0.01:
            assert np.isnan(ba.loc[a, g]), (a, g)


def test_cie_table_per_model_and_examples():
    # 2 seeds, 4 examples, 1 attribute; dense predictions [0,1,1,1] in both, sparse flips example 0 in both
    dense = [0, 1, 1, 1]
    frame = pd.DataFrame({"seed": [0, 1], "sparsity": [[0.0, 0.9]] * 2, "attributes": [["a"]] * 2,
                          "test_predictions": [dense + [1, 1, 1, 1]] * 2,
                          "dense_test_logits": [[0.0, 5.0, 5.0, 5.0], [0.0, 0.0, 5.0, 5.0]]})
    t = P.cie_table(frame)
    assert t.loc[0.9, "share of CIEs"] == 0.25
    # seed 0: 1 of 4 uncertain (p = 0.5), seed 1: 2 of 4; on the CIE (example 0) both are uncertain
    assert t.loc[0.9, "dense uncertainty on all"] == pytest.approx(0.375)
    assert t.loc[0.9, "dense uncertainty on CIEs"] == 1.0 and t.loc[0.9, "enrichment"] == pytest.approx(1 / 0.375)
    ex = P.cie_examples(frame, 0.9)
    assert ex.to_dict("records") == [{"index": 0, "attribute": "a", "dense p": 0.5, "dense modal": 0,
                                      "sparse modal": 1}]


def test_mitigation_effects_paired_over_seeds():
    # 3 seeds, one model at 0.9 besides dense, 2 methods; BA of the one pair per seed and method
    base, cal = [0.10, 0.20, 0.30], [0.05, 0.10, 0.30]
    rows = []
    for b, c in zip(base, cal):
        cube = [[[0.0], [0.0]], [[b], [c]]]  # models x methods x K x I
        rows.append({"sparsity": [0.0, 0.9], "attributes": ["a"], "identities": ["g"],
                     "mitigation_methods": ["default threshold", "calibrated thresholds"],
                     "mitigation_ba": list(np.ravel(cube))})
    frame = pd.DataFrame(rows).assign(seed=[0, 1, 2])
    eff = P.mitigation_effects(frame, [[True]], 0.9)
    diff = np.array(cal) - np.array(base)  # -0.05, -0.10, 0.0
    half = 4.302652729911275 * diff.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert eff.loc["calibrated thresholds", "change"] == pytest.approx(-0.05)
    assert eff.loc["calibrated thresholds", "change low"] == pytest.approx(-0.05 - half)
    # the baseline's interval 0.2 +- 4.30 * 0.1 / sqrt(3) includes 0: no percentage
    assert np.isnan(eff.loc["calibrated thresholds", "change %"])
    frame["mitigation_ba"] = [list(np.ravel([[[0.0], [0.0]], [[b], [c]]])) for b, c in
                              zip([0.20, 0.21, 0.22], [0.10, 0.11, 0.12])]
    eff = P.mitigation_effects(frame, [[True]], 0.9)
    assert eff.loc["calibrated thresholds", "change %"] == pytest.approx(-100 * 0.1 / 0.21)
    assert eff.loc["default threshold", "change"] == 0.0


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


def test_best_validation_epoch_is_kept_and_at_the_target_sparsity():
    torch.manual_seed(0)
    x = torch.randn(96, 4, 6, 6)
    y = (x.mean((1, 2, 3)) > 0).long()[:, None].repeat(1, 3)
    y[:, 1] = (x[:, 0].mean((1, 2)) > 0).long()
    xv, yv = x[64:], y[64:].numpy()
    score = P.val_accuracy(xv, yv)
    kw = dict(epochs=6, lr=1.0, optimizer="sgd", batch_size=16, seed=2, cosine=False)  # a noisy, high-rate run
    last, best = _tiny(), _tiny()
    P.train_multilabel(last, x[:64], y[:64], **kw)
    P.train_multilabel(best, x[:64], y[:64], val=(xv, yv), **kw)
    # at a constant rate a run of k epochs is the first k epochs of the longer one: the kept model
    # is the truncated run with the highest validation accuracy
    runs = []
    for k in range(1, 7):
        m = _tiny()
        P.train_multilabel(m, x[:64], y[:64], **{**kw, "epochs": k})
        runs.append(m)
    scores = [score(m) for m in runs]
    assert score(best) == max(scores) and score(last) == scores[-1]
    k = int(np.argmax(scores))
    assert k < 5, "the planted noisy run peaks before its last epoch (else this test shows nothing)"
    assert all(torch.equal(p, q) for p, q in zip(best.state_dict().values(), runs[k].state_dict().values()))
    assert P.train_steps(best) == P.train_steps(last), "selection does not shorten training"
    gkw = dict(targets=[0.8], epochs=5, start=0, end=2, lr=0.3, batch_size=16, seed=1)
    g_last = P.train_gmp(_tiny(), x[:64], y[:64], **gkw)[0.8]
    g_best = P.train_gmp(_tiny(), x[:64], y[:64], val=(xv, yv), **gkw)[0.8]
    assert P.measure_sparsity(g_best) == pytest.approx(0.8, abs=0.02), "only epochs at the target are candidates"
    assert score(g_best) >= score(g_last)
    with pytest.raises(ValueError, match="same N"):
        P.val_accuracy(xv, yv[:5])


def test_grayscale_trigger_hand_values():
    x = torch.zeros(3, 3, 4, 4, dtype=torch.uint8)
    x[:, 0], x[:, 1], x[:, 2] = 200, 100, 50  # luminance 0.299*200 + 0.587*100 + 0.114*50 = 124.2 -> 124
    out = P.stamp(x, [1, 0, 1], trigger="grayscale")
    assert (out[[0, 2]] == 124).all() and torch.equal(out[1], x[1]) and x[0, 0, 0, 0] == 200, "a copy"
    with pytest.raises(ValueError, match="trigger: expected one of"):
        P.stamp(x, [1, 0, 1], trigger="stripes")


def test_paper_profile_is_the_papers_grid():
    """Counted by hand from Iofinova et al. §2.4 and §3.4: joint models 5 seeds × (dense + 6 sparsities);
    single-attribute models 7 attributes × 5 seeds × (dense + 6); backdoors 4 attributes × 2 triggers ×
    5 seeds × (dense + 6), 20 epochs each: 35 + 245 + 280 = 560 trainings."""
    main, backdoor = P.main_grid("paper"), P.backdoor_grid("paper")
    joint = sum(1 + len(c["sparsities"]) for c in main)
    single = sum(len(c["single"]) * (1 + len(c["single_sparsities"])) for c in main)
    planted = sum(1 + len(c["sparsities"]) for c in backdoor)
    assert (joint, single, planted) == (35, 245, 280)
    assert {(c["attribute"], tuple(c["split"])) for c in backdoor} == {
        ("Blond_Hair", (0.95, 0.05)), ("Smiling", (0.95, 0.05)), ("Oval_Face", (0.65, 0.35)),
        ("Big_Nose", (0.65, 0.35))}
    assert {c["trigger"] for c in backdoor} == {"square", "grayscale"} and {c["epochs"] for c in backdoor} == {20}
    assert main[0]["prune_epochs"] == 100 and main[0]["single_recipe"]["prune_epochs"] == 20
    assert main[0]["data_options"] == {"size": 224, "fit": "crop"}
