"""Registry, data root, missing-dataset errors and group sampling."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairlib.data import (
    DatasetNotFoundError,
    GroupTooSmallError,
    balanced_sample,
    cap_groups,
    configure_weights_cache,
    data_root,
    intersectional_groups,
    list_datasets,
    load_dataset,
)


def test_names_and_unknown_name_lists_them():
    assert list_datasets() == ["synthfaces", "digits", "fashionmnist", "cifar10", "cifar100",
                               "fairface", "utkface", "celeba", "coco"]
    with pytest.raises(ValueError, match="available: synthfaces, digits, fashionmnist"):
        load_dataset("imagenet")


def test_data_root_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRLIB_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("FAIRLIB_DATA")
    repo = Path(__file__).resolve().parents[1]
    assert data_root() == repo / "data"
    assert data_root(tmp_path / "x") == tmp_path / "x"


def test_weights_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCH_HOME", raising=False)
    assert configure_weights_cache(tmp_path) == tmp_path / "weights"
    assert os.environ["TORCH_HOME"] == str(tmp_path / "weights")
    monkeypatch.setenv("TORCH_HOME", "/somewhere/else")
    assert configure_weights_cache(tmp_path) == Path("/somewhere/else")


@pytest.mark.parametrize("name", ["fairface", "utkface", "celeba", "cifar10", "cifar100",
                                  "fashionmnist"])
def test_missing_dataset_gives_fetch_command(name, tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, root=tmp_path)
    msg = str(info.value)
    assert f"python -m data_scripts.fetch {name} --root {tmp_path}" in msg
    assert str(tmp_path / name) in msg
    assert isinstance(info.value, FileNotFoundError)


def test_digits_split():
    tr, te, al = (load_dataset("digits", s) for s in ("train", "test", "all"))
    assert (len(tr), len(te), len(al)) == (1347, 450, 1797)  # the course's one 75/25 split
    assert np.bincount(te.attributes["label"].cat.codes).min() >= 43  # stratified: 25% of 174 eights
    assert tr.schema == {"label": [str(k) for k in range(10)]}
    img, row = al[0]  # sklearn's first digit is a 0
    assert img.shape == (1, 8, 8) and row == {"label": 0}
    assert float(img.max()) == pytest.approx(239 / 255)  # its brightest cell is 15 of 16


def test_synthfaces_through_registry_and_bad_option():
    ds = load_dataset("synthfaces", "val", n=12, size=32)
    assert len(ds) == 12 and ds[0][0].shape == (3, 32, 32)
    tr = load_dataset("synthfaces", "train", n=12, size=32)
    assert not np.array_equal(ds[0][0].numpy(), tr[0][0].numpy())  # splits are distinct draws
    with pytest.raises(ValueError, match="does not take colour"):
        load_dataset("cifar10", colour=True)


def _frame():
    # 2 x 3 groups with hand-set sizes; (b, z) is empty
    rows = [("a", "x")] * 5 + [("a", "y")] * 2 + [("a", "z")] * 1 + [("b", "x")] * 4 + \
           [("b", "y")] * 3
    df = pd.DataFrame(rows, columns=["p", "q"])
    return df.astype({"p": pd.CategoricalDtype(["a", "b"]), "q": pd.CategoricalDtype(["x", "y", "z"])})


def test_intersectional_groups_table():
    df = _frame()
    ids, table = intersectional_groups(df, ["p", "q"])
    assert list(table["count"]) == [5, 2, 1, 4, 3, 0]
    assert list(table["p"]) == ["a", "a", "a", "b", "b", "b"]
    assert list(table["q"]) == ["x", "y", "z", "x", "y", "z"]
    assert list(ids[:8]) == [0] * 5 + [1, 1, 2] and list(ids[8:]) == [3] * 4 + [4] * 3
    with pytest.raises(ValueError, match="not in attributes"):
        intersectional_groups(df, ["p", "r"])


def test_cap_and_balance():
    df = _frame()
    kept = cap_groups(df, ["p", "q"], 3, seed=0)
    ids, _ = intersectional_groups(df, ["p", "q"])
    assert np.bincount(ids[kept], minlength=6).tolist() == [3, 2, 1, 3, 3, 0]
    assert np.array_equal(kept, cap_groups(df, ["p", "q"], 3, seed=0))
    with pytest.raises(GroupTooSmallError, match=r"group \(p='b', q='z'\) has 0 samples"):
        balanced_sample(df, ["p", "q"], 2)
    got = balanced_sample(df, ["p", "q"], 2, allow_smaller=True)
    assert np.bincount(ids[got], minlength=6).tolist() == [2, 2, 1, 2, 2, 0]
    got = balanced_sample(df, "p", 7)
    assert np.bincount(ids[got] // 3, minlength=2).tolist() == [7, 7]
    with pytest.raises(GroupTooSmallError, match=r"group \(p='b'\) has 7 samples"):
        balanced_sample(df, "p", 8)
