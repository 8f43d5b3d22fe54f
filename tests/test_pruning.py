"""fairlib.pruning: schedule, global/N:M masks, calibration, CIEs and overrides against hand values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from fairlib import pruning as P
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
