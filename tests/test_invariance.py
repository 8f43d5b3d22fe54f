"""Tests for fairlib.invariance: shapes, attribute conditioning, the adversarial sign, helpers."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from fairlib import invariance, metrics, sweep
from fairlib.data.groups import GroupTooSmallError
from fairlib.invariance import (
    ADVERSARIAL_TARGETS,
    CLASSIFIERS,
    PAPER_TRAIN_SHARE,
    SEEDS,
    STYLE_STRENGTH,
    TRAIN_STYLE_SHARE,
    FaderNet,
    LatentCNN,
    VanillaAutoencoder,
    adversarial_loss,
    autoencoder_step,
    classifier_grid,
    classifier_table,
    comparison_table,
    discriminator_step,
    encoder_channels,
    experiment_autoencoder,
    experiment_data,
    imbalanced_synthfaces,
    inverse_frequency_weights,
    lambda_grid,
    lambda_schedule,
    latent_probe,
    other_attribute,
    run_classifier,
    stratified_split,
    to_unit_range,
    train_fader,
    utkface_split,
)


@pytest.mark.parametrize("size, channels", [
    (64, [64, 128, 256, 512]),
    (128, [32, 64, 128, 256, 512]),
    (256, [16, 32, 64, 128, 256, 512]),
])
def test_encoder_channels_follow_the_paper_ladder(size, channels):
    assert encoder_channels(size) == channels


@pytest.mark.parametrize("size", [64, 128, 256])
def test_latent_and_discriminator_shapes(size):
    torch.manual_seed(0)
    net = FaderNet(size, 5, max_channels=64).eval()  # narrow: the shapes, not the width, are tested
    x = torch.zeros(2, 3, size, size)
    with torch.no_grad():
        z = net.encode(x)
        assert z.shape == (2, 64, 4, 4)
        assert net.discriminator(z).shape == (2, 5)
        assert net(x, torch.tensor([0, 4])).shape == x.shape
    assert len(net.decoder.layers) == len(encoder_channels(size))


def test_full_width_latent_is_512x4x4():
    net = FaderNet(64, 5).eval()
    with torch.no_grad():
        assert net.encode(torch.zeros(1, 3, 64, 64)).shape == (1, 512, 4, 4)
        assert net.discriminator(torch.zeros(1, 512, 4, 4)).shape == (1, 5)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="image_size"):
        encoder_channels(48)
    with pytest.raises(ValueError, match="n_attributes"):
        FaderNet(64, 1)
    with pytest.raises(ValueError, match="attr"):
        FaderNet(64, 3, max_channels=32).decode(torch.zeros(1, 32, 4, 4), torch.tensor([3]))


def test_attribute_reaches_every_decoder_layer():
    torch.manual_seed(0)
    net = FaderNet(64, 3, max_channels=32).eval()
    seen = []
    hooks = [layer.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().clone()))
             for layer in net.decoder.layers]
    z = torch.randn(2, 32, 4, 4)
    with torch.no_grad():
        out1 = net.decode(z, torch.tensor([0, 2]))
    for h in hooks:
        h.remove()
    assert len(seen) == len(net.decoder.layers) == 4
    for inp in seen:
        attr_maps = inp[:, -3:]  # the one-hot code occupies the last 3 channels, constant in space
        assert torch.equal(attr_maps[0], F.one_hot(torch.tensor(0), 3).float()[:, None, None].expand_as(attr_maps[0]))
        assert torch.equal(attr_maps[1], F.one_hot(torch.tensor(2), 3).float()[:, None, None].expand_as(attr_maps[1]))
    with torch.no_grad():
        out2 = net.decode(z, torch.tensor([1, 1]))
    assert not torch.allclose(out1, out2)


def test_vanilla_autoencoder_has_no_attribute_channels():
    net = VanillaAutoencoder(64, max_channels=32)
    assert net.decoder.layers[0][0].in_channels == 32
    assert FaderNet(64, 5, max_channels=32).decoder.layers[0][0].in_channels == 37
    assert not hasattr(net, "discriminator")


def test_lambda_schedule_hand_values():
    assert lambda_schedule(0, 0.5, 100) == 0.0
    assert lambda_schedule(25, 0.5, 100) == pytest.approx(0.125)
    assert lambda_schedule(100, 0.5, 100) == 0.5
    assert lambda_schedule(1000, 0.5, 100) == 0.5
    assert lambda_schedule(0, 0.5, 0) == 0.5
    with pytest.raises(ValueError, match="lambda_e"):
        lambda_schedule(0, -1.0, 10)


def test_other_attribute_is_always_different_and_covers_the_rest():
    a = torch.full((3000,), 2)
    o = other_attribute(a, 5, torch.Generator().manual_seed(0))
    assert (o != a).all()
    assert set(o.tolist()) == {0, 1, 3, 4}
    assert torch.equal(other_attribute(torch.tensor([0, 1]), 2), torch.tensor([1, 0]))


# --------------------------------------------------------------------------- the adversarial target
@pytest.mark.parametrize("k", [2, 5])
def test_both_targets_cost_log_k_when_the_discriminator_cannot_tell(k):
    logits, attr = torch.zeros(6, k), torch.arange(6) % k
    for target in ADVERSARIAL_TARGETS:
        loss = adversarial_loss(logits, attr, target=target, generator=torch.Generator().manual_seed(0))
        assert float(loss) == pytest.approx(math.log(k))


def _reveals_by_omission(k, n=4):
    """Discriminator outputs with P(y|z) = 0 (almost) and 1/(K-1) on every other value."""
    attr = torch.arange(n) % k
    logits = torch.zeros(n, k)
    logits[torch.arange(n), attr] = -50.0
    return logits, attr


def test_the_other_target_is_smallest_where_the_output_still_reveals_y():
    k = 5
    logits, attr = _reveals_by_omission(k)
    other = adversarial_loss(logits, attr, target="other", generator=torch.Generator().manual_seed(1))
    assert float(other) == pytest.approx(math.log(k - 1), abs=1e-6)  # log 4 = 1.386 ...
    assert float(other) < math.log(k)  # ... below the log 5 = 1.609 of "cannot tell"
    # the argmin of the output is y itself: the "invariant" code names the attribute
    assert torch.equal(logits.argmin(1), attr)
    # the uniform target punishes the same output (it needs every P(k|z) > 0)
    assert float(adversarial_loss(logits, attr, target="uniform")) > math.log(k)


def test_the_uniform_target_is_cross_entropy_to_uniform_and_its_minimum_is_log_k():
    g = torch.Generator().manual_seed(0)
    logits, attr = torch.randn(64, 5, generator=g) * 2, torch.randint(0, 5, (64,), generator=g)
    loss = adversarial_loss(logits, attr, target="uniform")
    p = torch.softmax(logits, 1)
    kl = (0.2 * (torch.log(torch.tensor(0.2)) - torch.log(p))).sum(1).mean()  # KL(u || p) by hand
    assert float(loss) == pytest.approx(math.log(5) + float(kl), abs=1e-5)
    assert float(loss) > math.log(5)
    at_uniform = torch.zeros(3, 5, requires_grad=True)
    adversarial_loss(at_uniform, torch.tensor([0, 1, 2]), target="uniform").backward()
    assert float(at_uniform.grad.abs().max()) < 1e-7  # "cannot tell" is a stationary point


def test_the_other_target_averages_the_other_values():
    logits, attr = torch.log(torch.tensor([[0.5, 0.3, 0.1, 0.1]])), torch.tensor([0])
    expected = -float(torch.log(torch.tensor([0.3, 0.1, 0.1])).mean())  # -(1/3) sum_{k != y} log P(k|z)
    g = torch.Generator().manual_seed(0)
    draws = [float(adversarial_loss(logits, attr, target="other", generator=g)) for _ in range(3000)]
    assert np.mean(draws) == pytest.approx(expected, rel=0.03)
    assert float(adversarial_loss(logits, attr, target="uniform")) == pytest.approx(
        -float(torch.log(torch.tensor([0.5, 0.3, 0.1, 0.1])).mean()), abs=1e-6)


def test_train_fader_runs_with_the_uniform_target():
    torch.manual_seed(0)
    net = FaderNet(64, 3, max_channels=32)
    x = (torch.rand(12, 3, 64, 64) * 255).to(torch.uint8)
    hist = train_fader(net, x, np.arange(12) % 3, epochs=1, batch_size=6, lambda_e=1.0, ramp_steps=0,
                       adversarial_target="uniform", device="cpu", show_progress=False)
    assert (hist["adv_loss"] >= math.log(3) - 1e-6).all()  # never below "cannot tell"
    with pytest.raises(ValueError, match="adversarial_target: expected one of"):
        train_fader(net, x, np.arange(12) % 3, epochs=1, adversarial_target="flip", device="cpu",
                    show_progress=False)


def _dis_loss(net, x, a):
    net.eval()
    with torch.no_grad():
        return float(F.cross_entropy(net.discriminator(net.encode(x)), a))


def test_training_steps_move_each_player_in_its_direction():
    torch.manual_seed(0)
    net = FaderNet(64, 2, max_channels=32, dis_dropout=0.0)
    x = torch.rand(16, 3, 64, 64) * 2 - 1
    a = torch.tensor([0, 1] * 8)
    x[a == 1] = x[a == 1] * 0.2 + 0.5  # the attribute is visible, so the discriminator can learn it
    opt_dis = torch.optim.Adam(net.discriminator.parameters(), lr=1e-3)
    opt_ae = torch.optim.Adam(list(net.encoder.parameters()) + list(net.decoder.parameters()), lr=1e-3)
    enc0 = [p.detach().clone() for p in net.encoder.parameters()]
    dis0 = [p.detach().clone() for p in net.discriminator.parameters()]
    before = _dis_loss(net, x, a)
    for _ in range(5):
        discriminator_step(net, opt_dis, x, a)
    after_dis = _dis_loss(net, x, a)
    assert after_dis < before  # the discriminator learns the true attribute
    assert all(torch.equal(p, q) for p, q in zip(net.encoder.parameters(), enc0))  # encoder untouched
    dis1 = [p.detach().clone() for p in net.discriminator.parameters()]
    assert any(not torch.equal(p, q) for p, q in zip(dis1, dis0))
    dec0 = [p.detach().clone() for p in net.decoder.parameters()]
    for _ in range(5):
        autoencoder_step(net, opt_ae, x, a, lam=10.0, recon_weight=0.0)
    after_ae = _dis_loss(net, x, a)
    assert after_ae > after_dis  # the encoder fools it: its loss on the TRUE attribute rises
    assert all(torch.equal(p, q) for p, q in zip(net.discriminator.parameters(), dis1))  # dis untouched
    assert any(not torch.equal(p, q) for p, q in zip(net.encoder.parameters(), enc0))
    # reconstruction-only steps move the decoder
    autoencoder_step(net, opt_ae, x, a, lam=0.0)
    assert any(not torch.equal(p, q) for p, q in zip(net.decoder.parameters(), dec0))


def test_train_fader_history_and_selection():
    torch.manual_seed(0)
    net = FaderNet(64, 2, max_channels=32)
    x = (torch.rand(24, 3, 64, 64) * 255).to(torch.uint8)
    a = np.array([0, 1] * 12)
    hist = train_fader(net, x, a, epochs=3, batch_size=8, lambda_e=1.0, ramp_steps=3,
                       device="cpu", show_progress=False)
    assert list(hist["epoch"]) == [1, 2, 3]
    assert list(hist["lambda"]) == [1.0, 1.0, 1.0]
    assert hist["selected"].sum() == 1
    assert hist["dis_classes"].between(1, 2).all()
    # the kept epoch is the one the selection rule ranks first on this history
    assert hist.loc[hist["selected"], "epoch"].iloc[0] == invariance._selected_epoch(hist, ramp_steps=3)
    post = hist[(hist["step"] >= 3) & (hist["dis_classes"] > 1)]
    if len(post):
        assert hist.loc[hist["selected"], "dis_acc"].iloc[0] == post["dis_acc"].min()
        assert list(hist["candidate"]) == list((hist["step"] >= 3) & (hist["dis_classes"] > 1))
    assert hist.loc[hist["selected"], "candidate"].all()


def test_selection_skips_a_discriminator_that_answers_one_group():
    # hand-made history, K = 5, ramp over 100 steps: epoch 1 ends before the ramp; epoch 3's
    # discriminator answers one group for every image (balanced accuracy exactly 1/5), which is
    # the lowest accuracy after the ramp but measures nothing about the latent
    hist = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "step": [50, 100, 150, 200, 250],
                         "dis_acc": [0.10, 0.30, 0.20, 0.24, 0.24], "dis_classes": [3, 5, 1, 4, 5]})
    assert invariance._selected_epoch(hist, ramp_steps=100) == 5  # 0.24 twice: the later epoch
    # every post-ramp discriminator collapsed: the lowest of them is kept (the fallback)
    collapsed = hist.assign(dis_classes=[3, 1, 1, 1, 1], dis_acc=[0.10, 0.20, 0.20, 0.20, 0.20])
    assert invariance._selected_epoch(collapsed, ramp_steps=100) == 5
    # no epoch after the ramp: every epoch is a candidate, collapsed ones still last
    assert invariance._selected_epoch(hist, ramp_steps=1000) == 1
    assert invariance._selected_epoch(hist.assign(dis_classes=[1, 5, 1, 4, 5]), ramp_steps=1000) == 5
    # a checkpoint saved under the earlier rule (dis_acc, epoch, after ramp) still loads and ranks
    tracker = invariance._FaderEpoch(torch.zeros(1, 3, 4, 4), torch.zeros(1, dtype=torch.long),
                                     lambda_e=1.0, ramp_steps=100, select=True)
    tracker.load_state_dict({"best": (0.2, 3, True), "best_state": {}})
    assert tracker.best == (True, True, -0.2, 3)


def test_to_unit_range():
    x = torch.tensor([0, 255], dtype=torch.uint8)
    assert torch.equal(to_unit_range(x), torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="images"):
        to_unit_range(torch.tensor([2.0]))


def test_inverse_frequency_weights_hand_values():
    # counts a:6, b:3, c:1, N=10, G=3 -> 10/18, 10/9, 10/3
    g = ["a"] * 6 + ["b"] * 3 + ["c"]
    w = inverse_frequency_weights(g)
    assert w[0] == pytest.approx(10 / 18) and w[6] == pytest.approx(10 / 9) and w[9] == pytest.approx(10 / 3)
    assert w.mean() == pytest.approx(1.0)
    assert w[:6].sum() == pytest.approx(w[6:9].sum()) == pytest.approx(w[9:].sum())


def test_stratified_split_equal_test_groups():
    g = np.array([0] * 500 + [1] * 40 + [2] * 25)
    train, val, test = stratified_split(g, 20, val_fraction=0.1, seed=0)
    assert np.bincount(g[test]).tolist() == [20, 20, 20]
    assert len(np.intersect1d(train, test)) == 0 and len(np.intersect1d(val, test)) == 0
    assert len(np.intersect1d(train, val)) == 0
    assert len(train) + len(val) + len(test) == len(g)
    assert len(val) == round(0.1 * (len(g) - 60))


def test_stratified_split_names_the_small_group():
    g = np.array(["White"] * 100 + ["Others"] * 10)
    with pytest.raises(GroupTooSmallError, match="'Others' has 10"):
        stratified_split(g, 10)


PAPER = {  # Teru & Chakraborty, Table 1: per-class accuracy (%) and variance
    "SimpleCNN": ([92.41, 91.56, 84.07, 90.93, 88.61], 11.26),
    "SimpleCNN-WL": ([89.84, 90.25, 83.64, 92.02, 88.27], 10.11),
    "FaderCNN": ([85.65, 86.08, 80.90, 87.66, 83.86], 6.66),
}


@pytest.mark.parametrize("model", list(PAPER))
def test_accuracy_variance_reproduces_the_paper(model):
    accs, variance = PAPER[model]
    n = 10_000
    yt, yp, g = [], [], []
    for k, acc in enumerate(accs):
        c = round(acc * n / 100)
        yt += [1] * n
        yp += [1] * c + [0] * (n - c)
        g += [k] * n
    assert metrics.accuracy_variance(yt, yp, groups=g) == pytest.approx(variance, abs=0.006)
    table = comparison_table({model: (yt, yp, g)})
    assert table.loc["Variance", model] == pytest.approx(variance, abs=0.006)
    assert table.loc["Worst group", model] == pytest.approx(min(accs))


def test_latent_probe_finds_a_planted_signal_and_not_noise():
    rng = np.random.default_rng(0)
    a = np.repeat(np.arange(3), 40)
    noise = rng.normal(size=(120, 2, 2, 2))
    planted = noise.copy()
    planted[:, 0, 0, 0] += 4 * a
    assert latent_probe(planted, a) > 0.9
    assert latent_probe(noise, a) < 0.6
    score, guess = latent_probe(planted, a, return_predictions=True)
    assert guess.shape == (120,) and score == pytest.approx(metrics.bootstrap_interval(
        a, guess, groups=a, statistic="mean")[0] / 100)  # balanced accuracy of the out-of-fold guesses


def test_latent_cnn_shape():
    assert LatentCNN(32, 2, width=32)(torch.zeros(3, 32, 4, 4)).shape == (3, 2)


# --------------------------------------------------------------------------- the chapter's data and experiments
def test_imbalanced_synthfaces_keeps_the_shares_and_splits_equal_held_out_groups():
    data = imbalanced_synthfaces(200, test_per_group=4, val_per_group=3, size=16, seed=1)
    n = len(data.groups)
    assert data.images.shape == (n, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.group_names == ["P1", "P3", "P5", "P6", "P7"] and data.target_names == ["A", "B"]
    assert set(np.unique(data.targets)) <= {0, 1}
    assert np.bincount(data.groups[data.test]).tolist() == [4] * 5
    assert np.bincount(data.groups[data.val]).tolist() == [3] * 5
    assert np.bincount(data.groups[data.train]).tolist() == [round(s * 200) for s in PAPER_TRAIN_SHARE]
    parts = np.concatenate([data.train, data.val, data.test])
    assert sorted(parts.tolist()) == list(range(n))  # disjoint and complete
    counts = data.group_counts()
    assert counts.loc["P1", "train"] == 176 and counts.loc["P7", "test"] == 4
    assert counts["train share (%)"].tolist() == [88.0, 4.0, 3.5, 3.0, 1.5]
    again = imbalanced_synthfaces(200, test_per_group=4, val_per_group=3, size=16, seed=1)
    assert torch.equal(again.images, data.images) and np.array_equal(again.test, data.test)


def test_imbalanced_synthfaces_plants_the_style_correlation_in_training_only():
    share = (0.5, 0.9, 0.1, 0.9, 0.1)
    data = imbalanced_synthfaces(1000, test_per_group=40, val_per_group=10, size=16, seed=0,
                                 train_style_share=share)
    for k, q in enumerate(share):
        train = data.train[data.groups[data.train] == k]
        # exact up to the rounding of 9 age cells: at most 9 images from the planted share
        assert abs(data.targets[train].sum() - q * len(train)) <= 9
        test = data.test[data.groups[data.test] == k]
        assert abs(data.targets[test].mean() - 0.5) < 0.2  # no correlation where the model is scored
    assert np.bincount(data.groups[data.test]).tolist() == [40] * 5
    assert np.bincount(data.groups[data.val]).tolist() == [10] * 5
    # every group learnable: at strength s the two styles render at least 2s - 1 apart
    assert min(STYLE_STRENGTH) > 0.5 and len(TRAIN_STYLE_SHARE) == len(STYLE_STRENGTH)
    with pytest.raises(ValueError, match=r"train_style_share: need one entry per group \(5\)"):
        imbalanced_synthfaces(100, train_style_share=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"n_train: group 'P7' gets 0 training images"):
        imbalanced_synthfaces(20, test_per_group=2, val_per_group=1)


def test_imbalanced_synthfaces_checks_its_groups():
    with pytest.raises(ValueError, match="one entry per group"):
        imbalanced_synthfaces(100, levels=("P1", "P2"), train_share=(0.5, 0.5), style_strength=(1.0,))
    with pytest.raises(ValueError, match="unknown palette"):
        imbalanced_synthfaces(100, levels=("P1", "Q9"), train_share=(0.5, 0.5), style_strength=(1.0, 1.0))


def test_utkface_split_reads_race_and_gender_from_file_names(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("FAIRLIB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "utkface" / "UTKFace"
    folder.mkdir(parents=True)
    for race in range(5):
        for i in range(4):
            Image.new("RGB", (20, 20), (40 * race, 10 * i, 0)).save(
                folder / f"{20 + i}_{i % 2}_{race}_2017011617452{race}{i}.jpg", quality=95)
    data = utkface_split(test_per_group=2, val_fraction=0.5, size=16, root=tmp_path, show_progress=False)
    assert data.group_names == ["White", "Black", "Asian", "Indian", "Others"]
    assert data.target_names == ["Male", "Female"]
    assert data.images.shape == (20, 3, 16, 16) and data.images.dtype == torch.uint8
    assert np.bincount(data.groups[data.test]).tolist() == [2] * 5
    assert len(data.val) == 5 and len(data.train) == 5
    assert np.bincount(data.targets).tolist() == [10, 10]
    # a balanced validation set (the chapter's choice in full): one image per race here
    balanced = utkface_split(test_per_group=2, val_per_group=1, size=16, root=tmp_path, show_progress=False)
    assert np.bincount(balanced.groups[balanced.val]).tolist() == [1] * 5
    assert np.bincount(balanced.groups[balanced.train]).tolist() == [1] * 5
    assert np.array_equal(balanced.test, data.test)  # the test set is drawn first, the same way
    assert len(np.intersect1d(balanced.val, balanced.test)) == 0


def test_grids_hold_the_profiles_settings():
    quick, full = classifier_grid("quick"), classifier_grid("full", seeds=[0, 1])
    # seed is the outer axis: the three classifiers of a seed share its two autoencoders
    assert [(c["seed"], c["classifier"]) for c in quick] == [(s, m) for s in SEEDS for m in CLASSIFIERS]
    assert {c["dataset"] for c in quick} == {"synthfaces"} and {c["dataset"] for c in full} == {"utkface"}
    assert len(full) == 6 and [c["seed"] for c in full] == [0, 0, 0, 1, 1, 1]
    assert full[0]["test_per_group"] == 474 and full[0]["size"] == 256 and full[0]["max_channels"] == 512
    assert full[0]["val_per_group"] == 200 and full[0].get("val_fraction") is None  # balanced validation
    assert quick[0]["test_per_group"] >= 200 and quick[0]["train_style_share"] == list(TRAIN_STYLE_SHARE)
    assert {c["adversarial_target"] for c in quick + full} == {"other"}  # the main runs: Fader's code
    lambdas = lambda_grid("quick")
    # the main value (1.0) included; every λ_E > 0 with both targets, λ_E = 0 (no adversary) once
    assert [(c["lambda_e"], c["adversarial_target"]) for c in lambdas] == [
        (0.0, "other"), (1.0, "other"), (1.0, "uniform"), (3.0, "other"), (3.0, "uniform")]
    assert {c["classifier"] for c in lambdas} == {"FaderCNN"}
    assert quick[2] == next(c for c in lambdas if c["lambda_e"] == quick[2]["lambda_e"])
    assert len(lambda_grid("full")) == 7 and len(lambda_grid("quick", targets=["uniform"])) == 3
    signature = inspect.signature(run_classifier)
    for config in quick + full + lambdas + lambda_grid("full"):
        signature.bind(**config)  # every key is an argument, none is missing
        sweep.config_key(config)  # JSON-serialisable
    registered = sweep.experiments("06_adversarial_invariance")
    assert {"classifiers", "lambda_sweep"} <= set(registered)
    assert registered["classifiers"].fn is run_classifier
    assert registered["lambda_sweep"].configs("quick") == lambdas


TINY = {"dataset": "synthfaces", "size": 16, "n_train": 120, "test_per_group": 5, "val_per_group": 2,
        "max_channels": 32, "ae_epochs": 1, "batch_size": 32, "lr": 1e-3, "lambda_e": 1.0, "ramp_steps": 2,
        "balance_discriminator": True, "cls_epochs": 1, "seed": 0}


def test_run_classifier_scores_every_group_and_shares_the_latents(tmp_path):
    configs = sweep.grid(classifier=list(CLASSIFIERS), **{k: [v] for k, v in TINY.items()})
    rows = sweep.run(run_classifier, configs, store=tmp_path, progress=False).set_index("classifier")
    for _, row in rows.iterrows():
        acc = np.array(row.per_group)
        assert len(acc) == 5 and ((acc >= 0) & (acc <= 100)).all()
        assert row.overall == pytest.approx(acc.mean())  # equal test groups: overall is the mean
        assert row.variance == pytest.approx(np.var(acc, ddof=1))
        assert row.worst == pytest.approx(acc.min()) and row.gap == pytest.approx(acc.max() - acc.min())
        assert 0 <= row.probe <= 100 and row.val_mse > 0 and row.selected_epoch == 1
        # the per-example results reproduce the summaries, so they can be bootstrapped
        assert len(row.test_predictions) == len(row.test_groups) == len(row.test_targets) == 25
        assert metrics.bootstrap_interval(row.test_targets, row.test_predictions, groups=row.test_groups,
                                          n_boot=100)[0] == pytest.approx(row.variance)
        assert metrics.bootstrap_interval(row.test_groups, row.probe_predictions, groups=row.test_groups,
                                          statistic="mean", n_boot=100)[0] == pytest.approx(row.probe)
        assert len(row.val_errors) == 10 and np.mean(row.val_errors) == pytest.approx(row.val_mse, rel=1e-4)
    assert math.isnan(rows.loc["SimpleCNN", "dis_acc"]) and 0 <= rows.loc["FaderCNN", "dis_acc"] <= 100
    # SimpleCNN and SimpleCNN-WL classify the same vanilla latent
    assert rows.loc["SimpleCNN", "probe"] == rows.loc["SimpleCNN-WL", "probe"]
    assert rows.loc["SimpleCNN", "val_mse"] == rows.loc["SimpleCNN-WL", "val_mse"]
    # with empty caches (a fresh process) the run gives the same numbers
    invariance._AUTOENCODERS.clear()
    invariance._DATA.clear()
    again = run_classifier("FaderCNN", **TINY)
    assert again["per_group"] == pytest.approx(rows.loc["FaderCNN", "per_group"])
    assert again["probe"] == pytest.approx(rows.loc["FaderCNN", "probe"])
    with pytest.raises(ValueError, match="classifier"):
        run_classifier("ResNet", **TINY)


def test_experiment_autoencoder_trains_once_per_setting():
    vanilla, history = experiment_autoencoder("vanilla", TINY, show_progress=False)
    assert experiment_autoencoder("vanilla", {**TINY, "lambda_e": 3.0}, show_progress=False)[0] is vanilla
    fader, fader_history = experiment_autoencoder("fader", TINY, show_progress=False)
    assert isinstance(fader, FaderNet) and fader_history["selected"].sum() == 1
    assert experiment_autoencoder("fader", dict(TINY), show_progress=False)[0] is fader
    assert experiment_autoencoder("fader", {**TINY, "lambda_e": 0.5}, show_progress=False)[0] is not fader
    assert list(history.columns) == ["epoch", "train_mse"]
    assert experiment_data(TINY).images.shape[-1] == 16
    with pytest.raises(ValueError, match="kind"):
        experiment_autoencoder("vae", TINY)
    with pytest.raises(ValueError, match="dataset"):
        experiment_data({**TINY, "dataset": "mnist"})


def test_classifier_table_averages_seeds():
    runs = pd.DataFrame({
        "classifier": ["A", "A", "B"], "seed": [0, 1, 0],
        "per_group": [[80.0, 60.0], [90.0, 70.0], [50.0, 50.0]], "overall": [70.0, 80.0, 50.0],
        "variance": [200.0, 200.0, 0.0], "worst": [60.0, 70.0, 50.0], "gap": [20.0, 20.0, 0.0]})
    table = classifier_table(runs, ["g0", "g1"])
    assert list(table.columns) == ["A", "B"]
    assert list(table.index) == ["All classes", "g0", "g1", "Variance", "Worst group", "Largest gap"]
    assert table["A"].tolist() == [75.0, 85.0, 65.0, 200.0, 65.0, 20.0]
    assert table.loc["g1", "B"] == 50.0
    with pytest.raises(ValueError, match="group_names"):
        classifier_table(runs, ["g0"])
