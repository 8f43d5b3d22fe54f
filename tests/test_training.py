"""fairlib.training: schedule, history, determinism, and one step of every full-profile model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from formats import fetched

import fairlib
from fairlib import amplification as A
from fairlib.metrics import bias_amplification
from fairlib.models import CifarResNet, SmallResNet
from fairlib.training import augment_batch, evaluate, fit, lr_at_epoch, train_and_evaluate


def test_schedule():
    lrs = [lr_at_epoch(e, 8, 0.1) for e in range(8)]
    assert np.allclose(lrs, [0.01, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    # the paper: 500 epochs, decays after 250 and 375
    assert lr_at_epoch(249, 500, 0.1) == 0.1 and np.isclose(lr_at_epoch(250, 500, 0.1), 0.01)
    assert np.isclose(lr_at_epoch(375, 500, 0.1), 0.001)


@pytest.fixture(scope="module")
def digits_tasks():
    train, test = A.load_split("digits", "train"), A.load_split("digits", "test")
    pos = A.binarize_classes(10, 0)
    tr = A.make_inversion_task(*train, pos, 0.3, seed=1)
    te = A.make_inversion_task(*test, pos, 0.3, seed=2, normalize_with=train[0])
    return tr.subset(torch.arange(400)), te


def test_history_columns_and_biasamp_matches_metric(digits_tasks):
    tr, te = digits_tasks
    fairlib.seed_everything(0)
    model = CifarResNet(depth=8, width=2, in_channels=1)
    hist = train_and_evaluate(model, tr, te, epochs=4, batch_size=200, eval_every=2, device="cpu")
    assert hist["epoch"].tolist() == [2, 4]
    for col in ("accuracy", "biasamp", "ece", "loss", "acc_c0_g0", "acc_c0_g1", "acc_c1_g0", "acc_c1_g1"):
        assert col in hist and hist[col].notna().all()
    res = evaluate(model, te, device="cpu")
    direct = bias_amplification(te.y.numpy(), res["preds"], groups=te.group.numpy())
    assert hist["biasamp"].iloc[-1] == pytest.approx(direct, abs=1e-12)
    assert res["accuracy"] == pytest.approx(hist["accuracy"].iloc[-1])
    assert 0 <= hist["ece"].iloc[-1] <= 1


def test_fit_is_deterministic(digits_tasks):
    tr, te = digits_tasks
    kw = dict(epochs=2, batch_size=128, device="cpu")
    a = fit("cifar_resnet", {"depth": 8, "width": 2, "in_channels": 1}, tr, te, seed=3, **kw)
    b = fit("cifar_resnet", {"depth": 8, "width": 2, "in_channels": 1}, tr, te, seed=3, **kw)
    assert a.equals(b)


def test_augment_batch_shapes_and_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = augment_batch(x, g, pad=0, flip=True)
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    assert augment_batch(x, g, pad=2).shape == x.shape


@pytest.mark.parametrize("name,model", [
    ("fashionmnist", lambda: SmallResNet(width=64, blocks=(2, 2, 2, 2), in_channels=1)),
    ("cifar100", lambda: CifarResNet(depth=110, width=16, in_channels=3)),
    ("cifar10", lambda: CifarResNet(depth=110, width=16, in_channels=3)),
])
def test_full_profile_one_training_step(tmp_path, name, model):
    """Each full-profile dataset in its real on-disk format, and one step of its model on CPU."""
    fetched(tmp_path, name)
    x, fine = A.load_split(name, "train", root=tmp_path)
    if name == "cifar10":  # the RQ6 overlay task
        fine = np.arange(len(fine)) % 4
        task = A.make_overlay_task(x, fine, (0, 1), (2, 3), 0.3, 0.5, seed=0)
    else:
        pos = A.binarize_classes(10 if name == "fashionmnist" else 100, 0)
        task = A.make_inversion_task(x, fine, pos, 0.3, seed=0)
    task = task.subset(torch.arange(6))
    fairlib.seed_everything(0)
    net = model()
    before = [p.detach().clone() for p in net.parameters()]
    hist = train_and_evaluate(net, task, task, epochs=1, batch_size=6, augment=True, device="cpu")
    assert len(hist) == 1 and np.isfinite(hist["loss"].iloc[0])  # one step: a single full batch
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
