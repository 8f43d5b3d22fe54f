"""fairlib.amplification: inversion counts, overlay arithmetic, class binarisation, summaries, loaders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from formats import N_PER_FILE, fetched

from fairlib import amplification as A
from fairlib import sweep
from fairlib.data import DatasetNotFoundError, load_dataset


def test_inversion_counts_hand_values():
    assert A.inversion_counts(10, True, 0.3) == 2  # round(10 * 0.2)
    assert A.inversion_counts(10, False, 0.3) == 8  # round(10 * 0.8)
    assert A.inversion_counts(10, True, 0.0) == 5
    assert A.inversion_counts(10, True, 0.5) == 0
    assert A.inversion_counts(10, False, 0.5) == 10
    assert A.inversion_counts(7, True, 0.1) == 3  # round(2.8)
    assert A.inversion_counts(7, False, 0.1) == 4  # round(4.2)
    assert A.inversion_counts(5, True, 0.0) == A.inversion_counts(5, False, 0.0) == 3  # halves round up


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3, 0.45, 0.5])
def test_assign_inversion_exact_per_class(eps):
    sizes = {0: 10, 1: 10, 2: 7, 3: 13}
    fine = np.concatenate([[c] * n for c, n in sizes.items()])
    positive = [0, 2]
    inv = A.assign_inversion(fine, positive, eps, seed=3)
    assert inv.dtype == bool and inv.shape == fine.shape
    for c, n in sizes.items():
        rate = 0.5 - eps if c in positive else 0.5 + eps
        assert inv[fine == c].sum() == int(np.floor(n * rate + 0.5 + 1e-9))
    # random within class, deterministic per seed
    assert np.array_equal(inv, A.assign_inversion(fine, positive, eps, seed=3))


def test_assign_inversion_hand_example_and_validation():
    fine = np.array([0] * 10 + [1] * 10)
    inv = A.assign_inversion(fine, [0], 0.3, seed=0)
    assert inv[:10].sum() == 2 and inv[10:].sum() == 8
    with pytest.raises(ValueError, match="epsilon"):
        A.assign_inversion(fine, [0], 0.6, seed=0)


def test_invert_twice_is_identity_and_values():
    u8 = np.array([[0, 10, 255]], dtype=np.uint8)
    assert A.invert(u8).tolist() == [[255, 245, 0]]
    assert np.array_equal(A.invert(A.invert(u8)), u8)
    f = torch.tensor([0.0, 0.25, 1.0])
    assert torch.allclose(A.invert(f), torch.tensor([1.0, 0.75, 0.0]))
    assert torch.equal(A.invert(A.invert(f)), f)
    t8 = torch.tensor([3, 200], dtype=torch.uint8)
    assert torch.equal(A.invert(A.invert(t8)), t8)


def test_overlay_arithmetic():
    cls = np.array([0.0, 1.0, 0.5])
    grp = np.array([1.0, 1.0, 0.0])
    assert np.allclose(A.overlay(cls, grp, 0.2), [0.2, 1.0, 0.4])
    assert np.allclose(A.overlay(cls, grp, 0.0), cls)
    assert np.allclose(A.overlay(cls, grp, 1.0), grp)
    with pytest.raises(ValueError, match="eta"):
        A.overlay(cls, grp, 1.5)


def test_overlay_groups_are_exact_counts_per_class_and_draws_without_replacement():
    # classes 7 (positive, 10 images), 3 (negative, 10) and 5 (positive, 5), eps = 0.3
    fine = np.array([7] * 10 + [3] * 10 + [5] * 5)
    g = A.assign_overlay_groups(fine, [7, 5], 0.3, seed=1)
    assert (g[fine == 7] == 0).sum() == 8, "round(10 * 0.8) of a positive class in group a"
    assert (g[fine == 3] == 0).sum() == 2, "round(10 * 0.2) of a negative class in group a"
    assert (g[fine == 5] == 0).sum() == 4, "round(5 * 0.8) = 4"
    assert (A.assign_overlay_groups(fine, [7, 5], 0.0, seed=1)[fine == 5] == 0).sum() == 3, "2.5 rounds up"
    again = A.assign_overlay_groups(fine, [7, 5], 0.3, seed=2)
    assert (again[fine == 7] == 0).sum() == 8 and not np.array_equal(again, g), "the seed picks which, not how many"
    assert A.overlay_group_counts(200, True, 0.2) == 140 and A.overlay_group_counts(200, False, 0.2) == 60
    groups = np.array([0, 0, 0, 1, 1])
    draw = A.draw_group_images(groups, (3, 5), seed=0)
    assert sorted(draw[groups == 0].tolist()) == [0, 1, 2]  # each image once
    assert len(set(draw[groups == 1].tolist())) == 2


def test_binarize_classes_half_and_deterministic():
    for n in (10, 100):
        pos = A.binarize_classes(n, seed=5)
        assert len(pos) == n // 2 and len(set(pos.tolist())) == n // 2
        assert np.array_equal(pos, A.binarize_classes(n, seed=5))
    assert any(not np.array_equal(A.binarize_classes(10, 0), A.binarize_classes(10, s)) for s in range(1, 5))
    assert A.binary_labels([0, 1, 2, 3], [1, 3]).tolist() == [0, 1, 0, 1]


def test_tasks_and_swap():
    images = np.random.default_rng(0).integers(0, 256, (40, 6, 6), dtype=np.uint8)
    fine = np.repeat(np.arange(4), 10)
    task = A.make_inversion_task(images, fine, [0, 1], 0.3, seed=0)
    assert task.x.shape == (40, 1, 6, 6) and task.group.sum() == 2 + 2 + 8 + 8
    swapped = A.swap_roles(task)
    assert torch.equal(swapped.y, task.group) and torch.equal(swapped.group, task.y)
    ov = A.make_overlay_task(images, fine, (0, 1), (2, 3), 0.2, 0.5, seed=0)
    assert len(ov) == 20 and set(ov.y.tolist()) == {0, 1}


def test_mean_ci():
    m, lo, hi = A.mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and np.isclose(hi - m, 4.302653 * 1 / np.sqrt(3), atol=1e-5)
    assert A.mean_ci([4.0]) == (4.0, 4.0, 4.0)


def test_digits_split_is_the_registrys():
    x, y = A.load_split("digits", "train")
    xt, yt = A.load_split("digits", "test")
    assert x.dtype == torch.uint8 and x.shape == (1347, 1, 8, 8) and len(yt) == 450
    assert np.bincount(yt).min() >= 43  # 25% of each digit (174 eights -> 43)
    assert torch.equal(x, load_dataset("digits", "train").images), "the same split as load_dataset"


@pytest.mark.parametrize("name", A.FULL_DATASETS)
def test_load_split_reads_what_fetch_writes(tmp_path, name):
    root = tmp_path / "data"
    fetched(root, name)
    x, y = A.load_split(name, "train", root=root)
    n_train = 5 * N_PER_FILE if name == "cifar10" else N_PER_FILE  # CIFAR-10 has five training batches
    shape = (1, 28, 28) if name == "fashionmnist" else (3, 32, 32)
    assert x.dtype == torch.uint8 and x.shape == (n_train, *shape) and y.shape == (n_train,)
    assert y.tolist() == [i % (100 if name == "cifar100" else 10) for i in range(N_PER_FILE)] * (n_train // N_PER_FILE)
    xt, _ = A.load_split(name, "test", root=root)
    assert len(xt) == N_PER_FILE


def test_load_split_missing_names_the_fetch_command(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="python -m data_scripts.fetch cifar10"):
        A.load_split("cifar10", "train", root=tmp_path)
    with pytest.raises(ValueError, match="name: unknown dataset 'imagenet'; choose one of digits"):
        A.load_split("imagenet", "train")
    with pytest.raises(ValueError, match="split: expected 'train' or 'test'"):
        A.load_split("digits", "val")


# --------------------------------------------------------------------------- experiments (Chapter 2's sweeps)
def _tiny(**changes):
    """A quick-profile RQ1 configuration shrunk to a 2-epoch, width-2 model (well under a second)."""
    config = {**A.rq1_grid("quick")[0], "epochs": 2, "width": 2, "eps": 0.3}
    config.update(changes)
    return config


def test_registered_experiments_and_their_functions():
    found = sweep.experiments("02_bias_amplification")
    assert sorted(found) == ["rq1", "rq2", "rq3", "rq5", "rq6", "rq6_groups"]
    assert {n: e.fn for n, e in found.items()} == {"rq1": A.run_inversion, "rq2": A.run_inversion,
                                                    "rq3": A.run_inversion, "rq5": A.run_inversion,
                                                    "rq6": A.run_overlay, "rq6_groups": A.run_overlay}
    groups = A.rq6_group_grid("quick")
    assert {c["swap"] for c in groups} == {True} and {c["eps"] for c in groups} == {0.0}
    assert sorted({c["eta"] for c in groups}) == A.settings("quick")["etas"]
    assert found["rq1"].configs("quick") == A.rq1_grid("quick")


@pytest.mark.parametrize("profile", ["quick", "full", "paper"])
def test_grids_are_complete_unique_and_serialisable(profile):
    s = A.settings(profile)
    sizes = {"rq1": sum(len(s.get("rq1_eps", {}).get(d, s["eps"])) for d in s["rq1_data"]) * s["seeds"],
             "rq3": len(s["fractions"]) * len(s["sweep_eps"]) * s["seeds"],
             "rq5": 2 * s.get("rq5_seeds", s["seeds"]),
             "rq6": len(s.get("rq6_eps", s["sweep_eps"])) * len(s["etas"]) * s["seeds"]}
    knob_values = len(s["depths"]) + len(s["widths"]) + len(s["weight_decays"]) - 2  # the base once, not thrice
    sizes["rq2"] = knob_values * len(s["sweep_eps"]) * s["rq2_seeds"]
    for name, size in sizes.items():
        configs = getattr(A, f"{name}_grid")(profile)
        assert len(configs) == size, name
        assert len({sweep.config_key(c) for c in configs}) == size, f"{name}: duplicated configurations"
        keys = {tuple(c) for c in configs}
        assert len(keys) == 1, f"{name}: every configuration names the same parameters"
    inversion = A.rq1_grid(profile)[0]
    assert set(inversion) == {"dataset", "arch", "depth", "width", "in_channels", "epochs", "batch_size", "lr",
                              "weight_decay", "augment", "eps", "seed", "fraction", "swap", "eval_every"}
    assert all(c["eval_every"] == s["eval_every"] for c in A.rq5_grid(profile))
    assert {c["swap"] for c in A.rq5_grid(profile)} == {False, True}
    assert {c["eps"] for c in A.rq3_grid(profile)} == set(s["sweep_eps"])
    assert {c["dataset"] for c in A.rq6_grid(profile)} == {s["overlay_data"]}


def test_paper_grids_are_the_authors():
    """The paper profile's run counts, checked by hand against the authors' config generators
    (facebookresearch/cv_bias_amplification): RQ1 11 ε × 20 (Fashion-MNIST) + 6 × 20 (CIFAR-100);
    RQ2 12 depths + 5 widths + 8 weight decays (+ the base 1e-4), the shared base once, × 6 ε × 20;
    RQ3 10 fractions × 6 ε × 20; RQ5 2 × 50 (the paper's Figs. 8-9); RQ6 3 ε × 11 η × 20."""
    counts = {name: len(getattr(A, f"{name}_grid")("paper")) for name in ("rq1", "rq2", "rq3", "rq5", "rq6")}
    assert counts == {"rq1": 340, "rq2": (12 + 5 + 9 - 2) * 6 * 20, "rq3": 1200, "rq5": 100, "rq6": 660}


def test_rq2_grid_changes_one_knob_at_a_time():
    configs = A.rq2_grid("quick")
    base = {"depth": 8, "width": 4, "weight_decay": 1e-4}
    changed = [sum(c[k] != v for k, v in base.items()) for c in configs]
    assert max(changed) == 1
    assert changed.count(0) == 2 * 3, "the base model once per ε and assignment"
    assert sorted({c["width"] for c in configs}) == [2, 4, 8, 16]


def test_paper_grid_uses_the_papers_models_and_rehearsal_shrinks_full(monkeypatch):
    rq1 = A.rq1_grid("paper")
    fashion = next(c for c in rq1 if c["dataset"] == "fashionmnist")
    assert fashion["arch"] == "resnet18" and fashion["depth"] is None and fashion["in_channels"] == 1
    assert fashion["width"] == 64 and {c["depth"] for c in rq1 if c["dataset"] == "cifar100"} == {110}
    assert {c["depth"] for c in A.rq2_grid("paper")} == {8, 14, 20, 26, 32, 38, 44, 50, 56, 74, 92, 110}
    # RQ5 as the paper's Figs. 8-9: 50 models, evaluated after every epoch
    rq5 = A.rq5_grid("paper")
    assert len({c["seed"] for c in rq5}) == 50 and {c["eval_every"] for c in rq5} == {1}
    assert A.settings("paper")["train"]["epochs"] == 500 and A.settings("paper")["seeds"] == 20
    full = A.rq1_grid("full")
    monkeypatch.setenv("FAIRLIB_SCALE", "rehearsal")
    small = A.rq1_grid("full")
    assert {c["epochs"] for c in small} == {1} and len(small) < len(full)
    assert {c["dataset"] for c in small} == {c["dataset"] for c in full}, "a rehearsal keeps every dataset"
    assert A.rq1_grid("quick") == A.rq1_grid("quick")


def test_inversion_tasks_subsample_is_stratified_and_the_test_set_whole():
    train, test = A.inversion_tasks("digits", 0.3, seed=1, fraction=0.5)
    full, test_full = A.inversion_tasks("digits", 0.3, seed=1)
    assert len(full) == 1347 and len(test) == len(test_full) == 450
    assert abs(len(train) - 1347 / 2) <= 1
    assert torch.equal(test.x, test_full.x) and torch.equal(test.group, test_full.group)
    assert abs(float(train.y.float().mean()) - float(full.y.float().mean())) < 0.02
    with pytest.raises(ValueError, match="fraction"):
        A.inversion_tasks("digits", 0.3, seed=1, fraction=0.0)


def test_overlay_tasks_use_four_distinct_digits():
    train, test = A.overlay_tasks("digits", 0.2, 0.5, seed=3)
    again, _ = A.overlay_tasks("digits", 0.2, 0.5, seed=3)
    assert torch.equal(train.x, again.x)
    pick = np.random.default_rng(3).permutation(10)[:4]  # class digits, then group digits
    (_, f_tr), (_, f_te) = A.load_split("digits", "train"), A.load_split("digits", "test")
    assert len(train) == np.isin(f_tr, pick[:2]).sum() and len(test) == np.isin(f_te, pick[:2]).sum()
    assert train.y.sum() == (f_tr == pick[0]).sum(), "the first class digit is the positive class"
    assert set(train.y.tolist()) == {0, 1} and set(train.group.tolist()) == {0, 1}


def test_run_inversion_through_sweep_history_and_final_agree(tmp_path):
    configs = [_tiny(), _tiny(eval_every=1)]
    frame = sweep.run(A.run_inversion, configs, store=tmp_path, progress=False)
    plain, tracked = frame.iloc[0], frame.iloc[1]
    for key in ("accuracy", "biasamp", "ece", "loss", "acc_c0_g0", "acc_c1_g1"):
        assert 0 <= plain[key] <= 1 or key in ("biasamp", "loss")
        assert plain[key] == pytest.approx(tracked[key]), f"{key}: evaluating along the way changed the model"
    assert plain.trained_epochs == 2 and not isinstance(plain.hist_epoch, list), "no history without eval_every"
    assert tracked.hist_epoch == [1, 2] and len(tracked.hist_biasamp) == 2
    assert tracked.hist_biasamp[-1] == pytest.approx(tracked.biasamp)
    assert tracked.hist_lr[0] == pytest.approx(0.01), "the warm-up epoch runs at lr / 10"


def test_run_inversion_fraction_keeps_the_number_of_updates():
    out = A.run_inversion(**_tiny(epochs=1, fraction=0.5))
    assert out["trained_epochs"] == 2
    full_train, _ = A.inversion_tasks(_tiny()["dataset"], _tiny()["eps"], _tiny()["seed"], 1.0)
    half, _ = A.inversion_tasks(_tiny()["dataset"], _tiny()["eps"], _tiny()["seed"], 0.5)
    assert out["n_train"] == len(half.y) < len(full_train.y), "n_train counts the subset's images"
    assert "hist_epoch" not in out


def test_run_inversion_at_full_bias_reproduces_the_labels():
    # ε = 1/2: the group decides the label and inversion is recognised without error, so the quick
    # profile's base model reproduces the labels exactly: no amplification (the right end of RQ1).
    # Swapped, class and group are again each other's complement: the same holds.
    config = next(c for c in A.rq1_grid("quick") if c["eps"] == 0.5)
    for swap in (False, True):
        out = A.run_inversion(**{**config, "swap": swap})
        assert out["accuracy"] == 1.0 and out["biasamp"] == 0.0, f"swap={swap}"


def test_run_overlay_small():
    config = {**A.rq6_grid("quick")[0], "epochs": 2, "width": 2, "eta": 1.0}
    out = A.run_overlay(**config)
    assert {"accuracy", "biasamp", "ece", "loss", "trained_epochs"} <= set(out)
    assert out["trained_epochs"] == 2 and 0 <= out["accuracy"] <= 1


def test_by_knob_gives_each_sweep_its_rows_and_the_base_to_all():
    rows = [{"depth": 8, "width": 4, "weight_decay": 1e-4, "v": 0},
            {"depth": 14, "width": 4, "weight_decay": 1e-4, "v": 1},
            {"depth": 8, "width": 8, "weight_decay": 1e-4, "v": 2},
            {"depth": 8, "width": 16, "weight_decay": 1e-4, "v": 3},
            {"depth": 8, "width": 4, "weight_decay": 1e-3, "v": 4}]
    out = A.by_knob(pd.DataFrame(rows))
    assert out.groupby("knob").v.apply(sorted).to_dict() == {"depth": [0, 1], "width": [0, 2, 3],
                                                             "weight_decay": [0, 4]}
    assert out[out.knob == "width"].value.tolist() == [4.0, 8.0, 16.0]
    with pytest.raises(ValueError, match="more than one"):
        A.by_knob(pd.DataFrame(rows + [{"depth": 14, "width": 8, "weight_decay": 1e-4, "v": 5}] * 3))


def test_history_frame_explodes_the_lists():
    frame = pd.DataFrame([
        {"seed": 0, "swap": False, "biasamp": 0.3, "hist_epoch": [1, 2], "hist_biasamp": [0.1, 0.3], "duration_s": 1},
        {"seed": 1, "swap": True, "biasamp": 0.5, "hist_epoch": [1, 2], "hist_biasamp": [0.2, 0.5], "duration_s": 1},
        {"seed": 2, "swap": False, "biasamp": 0.0, "hist_epoch": np.nan, "hist_biasamp": np.nan, "duration_s": 1},
    ])
    long = A.history_frame(frame)
    assert list(long.columns) == ["seed", "swap", "epoch", "biasamp"]
    assert long.epoch.tolist() == [1, 2, 1, 2] and long.biasamp.tolist() == [0.1, 0.3, 0.2, 0.5]
    assert long.seed.tolist() == [0, 0, 1, 1] and long.epoch.dtype == np.int64
    assert long[~long.swap].seed.tolist() == [0, 0], "swap stays boolean"
    with pytest.raises(ValueError, match="eval_every"):
        A.history_frame(frame.drop(columns=["hist_epoch", "hist_biasamp"]))


def test_band_draws_the_mean_and_its_interval():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame({"x": [0, 0, 0, 1, 1, 1], "y": [1.0, 2.0, 3.0, 5.0, 5.0, 5.0]})
    fig, ax = plt.subplots()
    table = A.band(ax, frame, "x", "y", label="y")
    assert ax.lines[0].get_ydata().tolist() == [2.0, 5.0]
    assert table["low"].iloc[1] == table["high"].iloc[1] == 5.0 and table["n"].tolist() == [3, 3]
    plt.close(fig)


def test_equal_update_epochs_counts_the_engines_batches():
    from fairlib.training import batch_plan

    # the digits' 1,347 training images in batches of 256: 6 updates per epoch (5 full, 1 of 67);
    # a quarter (337 images): 2 per epoch, so 12 epochs of the whole set (72 updates) are 36 of the quarter
    assert len(batch_plan(1347, 256)) == 6 and len(batch_plan(337, 256)) == 2
    assert A.equal_update_epochs(12, 1347, 337, 256) == 36
    assert A.equal_update_epochs(12, 1347, 674, 256) == 24
    assert A.equal_update_epochs(1, 1000, 1000, 256) == 1
    with pytest.raises(ValueError, match="n_subset"):
        A.equal_update_epochs(12, 1347, 0, 256)


def test_augmentation_pads_with_black_and_fashion_mnist_is_not_padded():
    from fairlib.training import augment_batch

    # a standardised batch whose black is -2 in channel 0 and -1 in channel 1: the padding shows it
    x = torch.zeros(1, 2, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, g, pad=4, flip=False, fill=torch.tensor([-2.0, -1.0]))
    # a shift shows border pixels: channel 0's are -2, channel 1's -1, the image's own pixels 0
    assert {float(v) for v in out[0, 0].unique()} <= {0.0, -2.0}
    assert {float(v) for v in out[0, 1].unique()} <= {0.0, -1.0}
    assert (out[0, 0] == -2).any(), "with pad 4 on a 4x4 image the crop shows border unless the shift is 4, 4"
    assert torch.equal(augment_batch(x, torch.Generator().manual_seed(0), pad=4, flip=False),
                       augment_batch(x, torch.Generator().manual_seed(0), pad=4, flip=False, fill=0.0))
    with pytest.raises(ValueError, match="fill: expected a number or 2 values"):
        augment_batch(x, g, fill=torch.zeros(3))
    # the task carries black's standardised value: (0 - mean) / std of the reference images
    images = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]]).repeat(4, 1, 1, 1)
    task = A.make_inversion_task(images, np.array([0, 1, 0, 1]), [1], 0.0, seed=0)
    ref = images
    np.testing.assert_allclose(task.black.numpy(), [(-ref.mean() / ref.std()).item()], rtol=1e-5)
    assert task.subset([0, 1]).black is task.black
    assert task.subset([0, 1]).pad == task.pad == 4 and A.swap_roles(task).pad == 4
    # the paper crops and flips both datasets but pads only CIFAR: Fashion-MNIST's tasks carry pad 0,
    # with which the engine's augmentation is a flip (a crop of the full size is the image itself)
    for profile in ("full", "paper"):
        assert all(c["augment"] for c in A.rq1_grid(profile)), "the paper augments every dataset"
    from fairlib.training import _augment_for

    flat = A.Task(images, torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long), task.black, pad=0)
    fn = _augment_for(flat)
    assert fn.keywords["pad"] == 0 and fn.keywords["fill"] is task.black
    out = fn(images, torch.Generator().manual_seed(1))
    for i in range(4):  # every image is itself or its mirror image
        assert torch.equal(out[i], images[i]) or torch.equal(out[i], images[i].flip(-1))


def test_paired_difference_pairs_runs_by_assignment():
    # hand-computed: the per-seed differences are 0.1 and 0.3, mean 0.2, sample sd √0.02, and the
    # 95% half-width t(0.975, 1) · 0.1414 / √2 = 12.706 · 0.1
    f = pd.DataFrame({"width": [2, 16, 2, 16, 8], "seed": [0, 0, 1, 1, 0], "eps": 0.2,
                      "acc": [0.5, 0.6, 0.7, 1.0, 0.9]})
    m, lo, hi = A.paired_difference(f, "acc", column="width", a=2, b=16)
    assert m == pytest.approx(0.2)
    assert hi - m == pytest.approx(12.7062 * 0.1, rel=1e-4) and m - lo == pytest.approx(hi - m)
    # unpaired means would give the same mean here but a narrower, wrong interval; a missing side fails
    with pytest.raises(ValueError, match=r"no rows with width == 4; present: \[2, 8, 16\]"):
        A.paired_difference(f, "acc", column="width", a=4, b=16)
    with pytest.raises(ValueError, match="no column 'run'"):
        A.paired_difference(f, "acc", column="width", a=2, b=16, pairs=["run"])
    g = f.assign(seed=[0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="has runs at both"):
        A.paired_difference(g[g.width != 8], "acc", column="width", a=2, b=16)
