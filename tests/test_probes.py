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
