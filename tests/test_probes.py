"""fairlib.probes: balanced split, planted linear signal, chance without one, frequent errors."""

import numpy as np
import pandas as pd
import pytest

from fairlib.probes import frequent_errors, probe_split, train_probe


def test_probe_split_balanced_90_10():
    groups = np.repeat(np.arange(4), [200, 50, 20, 10])
    tr, va = probe_split(groups, per_group=128, seed=0)
    counts_tr = np.bincount(groups[tr], minlength=4)
    counts_va = np.bincount(groups[va], minlength=4)
    assert (counts_tr + counts_va).tolist() == [128, 50, 20, 10]
    assert counts_va.tolist() == [13, 5, 2, 1]
    assert not set(tr) & set(va)
    with pytest.raises(ValueError, match="group 1 has 1"):
        probe_split(np.array([0, 0, 1]), min_per_group=2)


def _data(signal: bool, n_groups=6, per=60, d=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=(len(y), d)).astype(np.float32)
    if signal:
        centers = rng.normal(size=(n_groups, d)) * 1.5
        x += centers[y].astype(np.float32)
    return x.reshape(len(y), 4, 10), y


def test_probe_recovers_planted_signal():
    x, y = _data(True)
    tr, va = probe_split(y, seed=0)
    res = train_probe(x, y, tr, va, epochs=20, device="cpu")
    assert res.val_accuracy > 0.9 and res.train_accuracy > 0.95
    assert len(res.history) == 20 and res.chance == pytest.approx(1 / 6)


def test_standardized_probe_fits_tiny_activations_that_the_raw_probe_cannot():
    # the planted signal shrunk a thousandfold, as a random network's activations are: with the
    # penalties and 10 epochs the raw probe stays near chance, the standardised one finds it
    x, y = _data(True)
    x = 1e-3 * x + 5.0  # tiny variation around a large offset
    tr, va = probe_split(y, seed=0)
    raw = train_probe(x, y, tr, va, epochs=10, device="cpu")
    std = train_probe(x, y, tr, va, epochs=10, device="cpu", standardize=True)
    assert raw.train_accuracy < 0.5 < 0.9 < std.val_accuracy
    # the statistics are the training split's: the probe's buffers hold them
    flat = x.reshape(len(x), -1)[tr].astype(np.float64)
    np.testing.assert_allclose(std.probe.shift.numpy(), flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std.probe.scale.numpy(), flat.std(0), rtol=1e-4)
    assert not raw.probe.shift.any() and (raw.probe.scale == 1).all(), "raw: identity"
    with pytest.raises(ValueError, match="standardize: expected True or False"):
        train_probe(x, y, tr, va, epochs=1, device="cpu", standardize="yes")


def test_probe_stays_near_chance_without_signal():
    x, y = _data(False)
    tr, va = probe_split(y, seed=0)
    res = train_probe(x, y, tr, va, epochs=20, device="cpu")
    # 36 validation examples, chance 1/6: allow sampling noise
    assert res.val_accuracy < 0.4


def test_frequent_errors_on_constructed_confusion():
    table = pd.DataFrame({"age": pd.Categorical(["young", "young", "old", "old"]),
                          "style": pd.Categorical(["A", "B", "A", "B"])})
    # group 0: 10 examples, 3 -> group 2 (age differs); group 1: 4 examples, 2 -> group 0 (style)
    # group 3: 20 examples, 2 -> group 0 (both differ)
    t = np.array([0] * 10 + [1] * 4 + [3] * 20)
    p = t.copy()
    p[:3] = 2
    p[10:12] = 0
    p[14:16] = 0
    out = frequent_errors(t, p, table)
    assert out["error_rate"].tolist() == pytest.approx([0.5, 0.3, 0.1])
    assert out["count"].tolist() == [2, 3, 2]
    assert out.loc[0, "true style"] == "B" and out.loc[0, "pred style"] == "A"
    assert out["differs"].tolist() == ["style", "age", "age, style"]
    assert len(frequent_errors(t, p, table, top=1)) == 1


def test_train_probe_restores_cpu_threads():
    import torch

    x, y = _data(True, per=10)
    tr, va = probe_split(y, seed=0)
    before = torch.get_num_threads()
    train_probe(x, y, tr, va, epochs=1, device="cpu", cpu_threads=1)
    assert torch.get_num_threads() == before


def test_probe_layers_shares_identical_reductions_and_drops_weights():
    import torch

    from fairlib.activations import capture_activations
    from fairlib.models import SmallCNN
    from fairlib.probes import probe_layers

    torch.manual_seed(0)
    images = torch.randint(0, 256, (36, 3, 32, 32), dtype=torch.uint8)
    y = np.repeat(np.arange(3), 12)
    store = capture_activations(SmallCNN(2), images, reductions=("subsample", "avgpool"), device="cpu")
    tr, va = probe_split(y, seed=0)
    summary, results = probe_layers(store, y, tr, va, epochs=2, device="cpu", keep_probes=False)
    shared = summary.set_index(["reduction", "layer"])["shared_with"]
    # 32x32 input -> 8x8 by subsampling (k=4) or pooling: different; block3/block4 are 4x4 and
    # avg_pool/predictions are flat: identical under both reductions, so one probe serves both
    assert shared[("avgpool", "input")] == "" and shared[("avgpool", "block1")] == ""
    for layer in ("block3", "block4", "avg_pool", "predictions"):
        assert shared[("avgpool", layer)] == "subsample"
        assert results[("avgpool", layer)] is results[("subsample", layer)]
    assert all(r.probe is None for r in results.values())
    assert (summary["layer_index"].to_numpy() == np.tile(np.arange(7), 2)).all()


def test_probe_network_in_passes_matches_one_pass(tmp_path):
    import torch

    from fairlib.models import SmallCNN
    from fairlib.probes import probe_network

    torch.manual_seed(0)
    images = torch.randint(0, 256, (30, 3, 16, 16), dtype=torch.uint8)
    y = np.repeat(np.arange(3), 10)
    tr, va = probe_split(y, seed=0)
    model = SmallCNN(2)
    one, _ = probe_network(model, images, y, tr, va, epochs=2, device="cpu")
    split, res = probe_network(model, images, y, tr, va, epochs=2, device="cpu", layers_per_pass=3,
                               directory=tmp_path / "store")
    assert split["layer"].tolist() == one["layer"].tolist()
    assert split["layer_index"].tolist() == one["layer_index"].tolist()
    assert split["reduction"].tolist() == ["subsample"] * 7 + ["avgpool"] * 7
    # float16 storage changes activations slightly; the probes must still agree closely
    assert np.abs(split["train_accuracy"].to_numpy() - one["train_accuracy"].to_numpy()).max() <= 0.15
    assert not any((tmp_path / "store").glob("pass_*")), "each pass's files are deleted"
    with pytest.raises(ValueError, match="probe sample"):
        probe_network(model, images, y[:-1], tr, va, epochs=1, device="cpu")


def test_unrelated_cnn_learns_its_task_and_build_network():
    import torch

    from fairlib.probes import UNRELATED_TASK_ATTRIBUTES, build_network, train_unrelated_cnn

    task = train_unrelated_cnn(1500, size=32, epochs=3, n_eval=400, device="cpu")
    ev = task.evaluation
    assert list(ev.index) == list(UNRELATED_TASK_ATTRIBUTES)
    assert task.losses[-1] < task.losses[0]
    assert ev["auc"].max() > 0.75  # big accessories (e.g. hat) are learned quickly
    rand_a = build_network("small_cnn", trained=False, seed=3)
    rand_b = build_network("small_cnn", trained=False, seed=3)
    assert not rand_a.trained and rand_a.task is None and rand_a.transform is None
    for pa, pb in zip(rand_a.model.parameters(), rand_b.model.parameters()):
        assert torch.equal(pa, pb)
    with pytest.raises(ValueError, match="small_cnn"):
        build_network("alexnet")
    net = build_network("resnet50", trained=False)
    assert net.input_size == 224 and net.transform is not None and not net.model.training


def test_probing_frames_from_sweep_rows():
    import pandas as pd

    from fairlib.probes import paper_error_table, probing_curves, probing_grid, probing_summary

    row = {"network": "small_cnn", "trained": True, "reduction": ["subsample", "subsample", "avgpool"],
           "layer_index": [0, 1, 1], "layer": ["input", "block1", "block1"], "n_features": [3, 8, 8],
           "train_accuracy": [0.1, 0.5, 0.4], "val_accuracy": [0.1, 0.3, 0.2],
           "curve_row": [0, 0, 1, 1, 2, 2], "curve_epoch": [1, 2, 1, 2, 1, 2],
           "curve_train": [0.0, 0.1, 0.2, 0.5, 0.3, 0.4], "curve_val": [0.0, 0.1, 0.2, 0.3, 0.1, 0.2]}
    runs = pd.DataFrame([row, {**row, "trained": False}])
    summary = probing_summary(runs)
    assert summary.network.unique().tolist() == ["small_cnn (trained)", "small_cnn (random init)"]
    assert len(summary) == 6 and summary.columns[0] == "network"
    curves = probing_curves(runs.iloc[0])
    block1 = curves[(curves.reduction == "avgpool") & (curves.layer == "block1")]
    assert block1.train_accuracy.tolist() == [0.3, 0.4] and block1.epoch.tolist() == [1, 2]
    t = paper_error_table([("Indian", "60-69", "Male", "Indian", "70+", "Male", 15.65),
                           ("White", "0-2", "Female", "Black", "0-2", "Male", 1.0)])
    assert t["differs"].tolist() == ["age", "race, gender"]
    grid = probing_grid("full")
    assert [(g["network"], g["trained"]) for g in grid] == [("vgg16", True), ("resnet50", True),
                                                            ("inception_v3", True), ("resnet50", False)]


def test_selection_halves_split_every_group_evenly():
    from fairlib.probes import selection_halves

    y = np.array([0] * 5 + [1] * 4 + [2] * 1)
    half = selection_halves(y, seed=3)
    assert [int(half[y == g].sum()) for g in range(3)] == [3, 2, 1], "ceil(n / 2) of each group selects"
    np.testing.assert_array_equal(half, selection_halves(y, seed=3))  # seeded
    with pytest.raises(ValueError, match="y: is empty"):
        selection_halves([], seed=0)


def test_run_probing_keeps_the_papers_layer_for_imagenet_networks(monkeypatch):
    # the full profile's path with random weights at rehearsal sizes: a ResNet-50 keeps the
    # predictions of conv5_block1_out (the paper's Table 3) beside its best layer; the random
    # control and the small CNN have no paper layer
    from fairlib.probes import run_probing

    monkeypatch.setenv("FAIRLIB_WEIGHTS", "random")
    monkeypatch.setenv("FAIRLIB_SCALE", "rehearsal")
    common = {"dataset": "synthfaces", "data_options": {"n": 60, "size": 32, "seed": 0}, "variables": ["palette"],
              "cap": 6, "per_group": 6, "epochs": 1, "reductions": ["subsample"], "task": {}, "batch_size": 32}
    out = run_probing("resnet50", True, **common)
    assert out["paper_layer"] == "conv5_block1_out" and "conv5_block1_out" in out["layer"]
    assert len(out["paper_train_pred"]) == len(out["train_pred"]) and len(out["paper_val_pred"]) == len(out["val_pred"])
    control = run_probing("resnet50", False, **common)
    assert control["paper_layer"] is None and control["paper_train_pred"] is None
