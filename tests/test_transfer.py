"""fairlib.transfer: hand-computed association scores, permutation test calibration, the Bias
Transfer Score's interval, fine-tuning helpers, COCO through load_dataset (canonical sets with their
image ids, multi-label targets without them), the quick profile's data builders and Chapter 7's
run function and grid."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

from fairlib import sweep
from fairlib import transfer as T
from fairlib.data import DatasetNotFoundError, load_dataset

R2 = math.sqrt(0.5)  # cos 45°


# --------------------------------------------------------------------------- association scores
def test_association_scores_hand_computed():
    # "x": along the a-axis: cos 1 to a, 0 to b.  "d": on the diagonal: cos 1/sqrt2 to both
    # a-vectors, cos -1/sqrt2 to the b-vector (-1, 0): score 1/sqrt2 - (-1/sqrt2) = sqrt2.
    concepts = {"x": np.array([[2.0, 0.0]]), "d": torch.tensor([[1.0, 1.0], [3.0, 3.0]])}
    a = np.array([[1.0, 0.0], [0.0, 5.0]])  # norms must not matter
    b = np.array([[-1.0, 0.0]])
    s = T.association_scores(concepts, a, b)
    assert list(s.index) == ["x", "d"]
    # x: mean cos to a = (1 + 0)/2 = 0.5; to b = -1  -> 1.5
    assert s["x"] == pytest.approx(1.5)
    assert s["d"] == pytest.approx(2 * R2)


def test_effect_size_hand_computed():
    # m(y) for concept x = (1, 0): a-images -> 1 and 1/sqrt2; b-images -> 0 and -1
    concepts = {"x": np.array([[1.0, 0.0]])}
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[0.0, 1.0], [-1.0, 0.0]])
    out = T.association_effect_sizes(concepts, a, b, n_permutations=50, seed=0)
    m = np.array([1.0, R2, 0.0, -1.0])
    score = (1 + R2) / 2 - (0 - 1) / 2
    assert out.loc["x", "score"] == pytest.approx(score)
    assert out.loc["x", "effect_size"] == pytest.approx(score / np.std(m, ddof=1))
    # 4 images, 2 in a: only 6 labellings; the observed one is the most extreme (|.| tied with its
    # mirror image), so about a third of permutations reach it: p is far from tiny.
    assert 0.2 < out.loc["x", "p_value"] < 0.5
    assert list(out.columns) == ["score", "effect_size", "p_value"]


def _null_p(seed: int) -> float:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((10, 16)) + 2.0  # a shared offset makes cosines non-trivial
    a = rng.standard_normal((15, 16)) + 2.0
    b = rng.standard_normal((15, 16)) + 2.0
    return float(T.association_effect_sizes({"c": x}, a, b, n_permutations=199, seed=seed)["p_value"].iloc[0])


def test_permutation_p_value_is_uniform_under_the_null():
    p = np.array([_null_p(s) for s in range(200)])
    assert 0.01 <= (p < 0.05).mean() <= 0.10
    assert 0.35 <= (p < 0.5).mean() <= 0.65
    assert p.min() >= 1 / 200  # (1 + #)/(1 + P) is never below 1/(P + 1)


def test_permutation_p_value_is_small_under_a_planted_effect():
    rng = np.random.default_rng(1)
    direction = np.zeros(16)
    direction[0] = 3.0
    x = rng.standard_normal((10, 16)) + direction
    a = rng.standard_normal((15, 16)) + direction  # a shares the concept's direction
    b = rng.standard_normal((15, 16)) - direction
    null = rng.standard_normal((10, 16))
    out = T.association_effect_sizes({"planted": x, "null": null}, a, b, n_permutations=999, seed=0)
    assert out.loc["planted", "p_value"] == pytest.approx(1 / 1000)
    assert out.loc["planted", "effect_size"] > 1.0
    assert out.loc["planted", "score"] > 0


def test_permutation_test_is_seeded():
    rng = np.random.default_rng(2)
    x, a, b = rng.standard_normal((5, 8)), rng.standard_normal((6, 8)), rng.standard_normal((6, 8))
    one = T.association_effect_sizes({"c": x}, a, b, n_permutations=300, seed=4)
    two = T.association_effect_sizes({"c": x}, a, b, n_permutations=300, seed=4)
    pd.testing.assert_frame_equal(one, two)


@pytest.mark.parametrize(
    "concepts, a, b, match",
    [
        ({}, np.ones((2, 3)), np.ones((2, 3)), "concept_embeddings"),
        ({"c": np.ones((2, 3))}, np.ones((2, 4)), np.ones((2, 3)), "attribute_b"),
        ({"c": np.ones((2, 4))}, np.ones((2, 3)), np.ones((2, 3)), "concept_embeddings\\['c'\\]"),
        ({"c": np.ones(3)}, np.ones((2, 3)), np.ones((2, 3)), "\\(n, D\\)"),
        ({"c": np.ones((2, 3))}, np.zeros((2, 3)), np.ones((2, 3)), "all zeros"),
        ({"c": np.full((2, 3), np.nan)}, np.ones((2, 3)), np.ones((2, 3)), "NaN"),
        ({"c": np.ones((2, 3))}, np.ones((0, 3)), np.ones((2, 3)), "attribute_a: is empty"),
    ],
)
def test_association_bad_input(concepts, a, b, match):
    with pytest.raises(ValueError, match=match):
        T.association_scores(concepts, a, b)


def test_effect_size_bad_input():
    x = {"c": np.eye(3)}
    with pytest.raises(ValueError, match="n_permutations"):
        T.association_effect_sizes(x, np.eye(3), np.eye(3), n_permutations=0)
    with pytest.raises(ValueError, match="at least 3"):
        T.association_effect_sizes(x, np.eye(3)[:1], np.eye(3)[1:2])


# --------------------------------------------------------------------------- BTS and its interval
def test_bts_is_one_for_identical_and_minus_one_for_reversed_rankings():
    before = pd.Series([0.3, -0.1, 0.05, 0.2, -0.4], index=list("abcde"))
    same_ranking = np.exp(before)  # monotone: the ranking is identical
    rho, low, high = T.bias_transfer_interval(before, same_ranking, n_boot=500)
    assert (rho, low, high) == pytest.approx((1.0, 1.0, 1.0))
    rho, low, high = T.bias_transfer_interval(before, -3 * before, n_boot=500)
    assert (rho, low, high) == pytest.approx((-1.0, -1.0, -1.0))


def test_bts_aligns_series_by_concept():
    before = pd.Series([1.0, 2.0, 3.0, 4.0], index=list("abcd"))
    after = pd.Series([4.0, 3.0, 2.0, 1.0], index=list("dcba"))  # same values per concept
    assert T.bias_transfer_interval(before, after, n_boot=200)[0] == pytest.approx(1.0)


def test_bootstrap_interval_contains_the_point_estimate():
    rng = np.random.default_rng(0)
    before = rng.standard_normal(30)
    after = 0.6 * before + 0.8 * rng.standard_normal(30)
    rho, low, high = T.bias_transfer_interval(before, after, n_boot=2000, level=0.95, seed=0)
    assert -1 <= low < rho < high <= 1
    _, low90, high90 = T.bias_transfer_interval(before, after, n_boot=2000, level=0.90, seed=0)
    assert low <= low90 and high90 <= high  # a lower level gives a nested interval


def test_bootstrap_skips_constant_resamples():
    # with 3 concepts, 3 of the 27 resamples draw one concept three times: ρ is undefined there
    rho, low, high = T.bias_transfer_interval([0.0, 1.0, 2.0], [0.0, 2.0, 1.0], n_boot=3000, seed=1)
    assert rho == pytest.approx(0.5)
    assert np.isfinite([low, high]).all() and -1 <= low <= rho <= high <= 1


def test_bootstrap_bad_input():
    with pytest.raises(ValueError, match="at least 3 concepts"):
        T.bias_transfer_interval([0.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="level"):
        T.bias_transfer_interval([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        T.bias_transfer_interval([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], n_boot=0)
    with pytest.raises(ValueError, match="all scores are equal"):
        T.bias_transfer_interval([1.0, 1.0, 1.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="concepts differ"):
        T.bias_transfer_interval(pd.Series([1.0, 2.0, 3.0], index=list("abc")),
                                 pd.Series([1.0, 2.0, 3.0], index=list("abd")))


def test_association_changes():
    before = pd.Series({"kept": 0.5, "flipped": 0.4, "introduced": 0.05, "vanished": -0.6, "none": 0.01})
    after = pd.Series({"kept": 0.3, "flipped": -0.5, "introduced": -0.3, "vanished": 0.1, "none": -0.02})
    out = T.association_changes(before, after, threshold=0.2)
    assert out["status"].to_dict() == {k: k for k in before.index}
    with pytest.raises(ValueError, match="threshold"):
        T.association_changes(before, after, threshold=0)


# --------------------------------------------------------------------------- embeddings, fine-tuning
class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.body(x).mean(dim=(2, 3)))


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    y = (x.float().mean(dim=(1, 2, 3)) > 127).long()
    return x, y


def test_embed_pools_to_n_by_d_and_rejects_unknown_layers():
    torch.manual_seed(0)
    model, (x, _) = _Tiny(), _data(10)
    e = T.embed(model, x, "body", device="cpu")
    assert e.shape == (10, 4)
    with torch.no_grad():
        expected = model.body(x.float() / 255).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(e, expected, atol=1e-5)
    with pytest.raises(ValueError, match="available names"):
        T.embed(model, x, "nope", device="cpu")


def test_linear_probe_keeps_the_backbone_and_full_fine_tuning_changes_it():
    torch.manual_seed(0)
    model, data = _Tiny(), _data()
    before = T.embed(model, data[0], "body", device="cpu")
    probe, losses = T.fine_tune(model, data, head="fc", n_outputs=3, mode="linear", epochs=2,
                                lr=1e-2, batch_size=16, device="cpu")
    assert probe.fc.out_features == 3 and len(losses) == 2
    np.testing.assert_allclose(T.embed(probe, data[0], "body", device="cpu"), before, atol=1e-6)
    full, _ = T.fine_tune(model, data, head="fc", n_outputs=3, mode="full", epochs=2, lr=1e-2,
                          batch_size=16, device="cpu")
    assert np.abs(T.embed(full, data[0], "body", device="cpu") - before).max() > 1e-3
    np.testing.assert_allclose(T.embed(model, data[0], "body", device="cpu"), before, atol=1e-6)  # untouched


def test_fine_tuning_bad_input():
    model, data = _Tiny(), _data(8)
    with pytest.raises(ValueError, match="linear layers: \\['fc'\\]"):
        T.replace_head(model, "head", 2)
    with pytest.raises(ValueError, match="mode"):
        T.fine_tune(model, data, head="fc", n_outputs=2, mode="partial")
    with pytest.raises(ValueError, match="labels"):
        T.fine_tune(model, (data[0], data[1][:3]), head="fc", n_outputs=2, device="cpu")
    with pytest.raises(ValueError, match="n_outputs=3"):
        T.fine_tune(model, (data[0], torch.zeros(8, 2)), head="fc", n_outputs=3, multilabel=True, device="cpu")


def test_transfer_run_on_scenes():
    sets = T.scene_canonical_sets(24, n_objects=4, size=16, seed=0)
    assert list(sets.concepts) == ["disc", "square", "diamond", "ring"]
    assert len(sets.attribute_a) == len(sets.attribute_b) == 12
    assert all(len(v) == 6 for v in sets.paired_b.values())
    torch.manual_seed(0)
    model, data = _Tiny(), _data(32)
    data = (torch.nn.functional.interpolate(data[0].float(), size=16).to(torch.uint8), data[1])
    res = T.transfer_run(model, sets, data, layer="body", head="fc", n_outputs=2, mode="linear",
                         n_permutations=50, n_boot=200, epochs=1, batch_size=16, device="cpu")
    # a linear probe leaves the backbone as it was: identical scores, BTS exactly 1
    pd.testing.assert_frame_equal(res.before, res.after)
    assert (res.rho, res.low, res.high) == pytest.approx((1.0, 1.0, 1.0))
    assert list(res.before.columns) == ["score", "effect_size", "p_value", "paired_score"]


# --------------------------------------------------------------------------- COCO through load_dataset
def _write_coco(root, n_each=3, concepts=("car", "surfboard")):
    from PIL import Image

    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    cats = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 42, "name": "surfboard"},
            {"id": 64, "name": "potted plant"}] + ([{"id": 38, "name": "kite"}] if "kite" in concepts else [])
    images, anns, caps = [], [], []
    plan = []  # (categories, caption)
    for cat in concepts:
        plan += [((cat,), f"a {cat} on its own")] * n_each
        plan += [((cat, "person"), f"A man with a {cat}.")] * n_each
        plan += [((cat, "person"), f"a woman near the {cat}")] * n_each
    plan += [(("person",), "a man standing")] * n_each + [(("person",), "Two women talking")] * n_each
    plan += [(("person",), "a man and a woman")]  # ambiguous: left out
    plan += [(("person",), "a mannequin in a shop")]  # no whole gendered word: left out
    plan += [(("potted plant",), "a plant")]  # too rare to be a concept
    name_to_id = {c["name"]: c["id"] for c in cats}
    for i, (cs, cap) in enumerate(plan, start=1):
        fname = f"{i:012d}.jpg"
        Image.fromarray(np.full((6, 10, 3), i, dtype=np.uint8)).save(root / "val2017" / fname)
        images.append({"id": i, "file_name": fname, "height": 6, "width": 10})
        for c in cs:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": name_to_id[c], "bbox": [0, 0, 1, 1]})
        caps.append({"id": len(caps) + 1, "image_id": i, "caption": cap})
        caps.append({"id": len(caps) + 1, "image_id": i, "caption": "a photo"})
    (root / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps({"images": images, "annotations": caps}))
    return plan


def _pixel_ids(t):
    """Images of the fixture are filled with their image id."""
    return sorted(int(v) for v in t[:, 0, 0, 0])


def test_load_dataset_coco(tmp_path):
    plan = _write_coco(tmp_path / "coco")
    ds = load_dataset("coco", split="val2017", root=tmp_path, size=8)
    assert ds.name == "coco" and ds.split == "val2017" and len(ds) == len(plan)
    assert list(ds.attributes.columns) == ["person", "car", "surfboard", "potted plant"]  # category-id order
    assert all(ds.schema[c] == [0, 1] for c in ds.attributes)
    assert list(ds.metadata.columns) == ["image_id", "file_name", "gender"]
    assert ds.metadata["image_id"].tolist() == list(range(1, len(plan) + 1))
    for i, (cats, caption) in enumerate(plan):
        assert {c for c in ds.attributes if ds.attributes[c].iloc[i] == 1} == set(cats)
        expected = None if "man and a woman" in caption or "mannequin" in caption else (
            "woman" if "wom" in caption.lower() else "man" if "man" in caption.lower() else None)
        assert ds.metadata["gender"].iloc[i] == expected, caption
    x = ds.raw_image(4)
    assert x.dtype == torch.uint8 and x.shape == (3, 8, 8) and int(x[0, 0, 0]) == 5  # resized, lazily read
    img, row = ds[0]
    assert img.dtype == torch.float32 and row["car"] == 1 and row["person"] == 0
    assert load_dataset("coco", split="val", root=tmp_path, size=None).raw_image(0).shape == (3, 6, 10)
    no_caps = load_dataset("coco", split="val2017", root=tmp_path, captions=False)
    assert no_caps.metadata["gender"].isna().all()


def test_load_dataset_coco_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="instances_val2017.json"):
        load_dataset("coco", split="val2017", root=tmp_path)
    _write_coco(tmp_path / "coco")
    with pytest.raises(DatasetNotFoundError, match="image folder train2017/"):
        (tmp_path / "coco" / "annotations" / "instances_train2017.json").write_text("{}")
        (tmp_path / "coco" / "annotations" / "captions_train2017.json").write_text("{}")
        load_dataset("coco", split="train2017", root=tmp_path)
    (tmp_path / "coco" / "annotations" / "captions_val2017.json").unlink()
    with pytest.raises(DatasetNotFoundError, match="captions_val2017.json"):
        load_dataset("coco", split="val2017", root=tmp_path)
    assert len(load_dataset("coco", split="val2017", root=tmp_path, captions=False)) > 0
    with pytest.raises(ValueError, match="split: coco has splits 'val2017', 'train2017'"):
        load_dataset("coco", split="test2017", root=tmp_path)
    with pytest.raises(ValueError, match="does not take colour"):
        load_dataset("coco", root=tmp_path, colour=True)


def test_coco_canonical_sets_on_tiny_files(tmp_path):
    plan = _write_coco(tmp_path / "coco")
    sets = T.coco_canonical_sets(tmp_path, min_images=3, n_per_set=10, size=8)
    assert sets.names == ("man", "woman")
    assert sorted(sets.concepts) == ["car", "surfboard"]  # potted plant: 1 image < min_images
    assert sets.sizes().to_dict("list") == {"alone": [3, 3], "with man": [3, 3], "with woman": [3, 3]}
    assert sets.attribute_a.shape == sets.attribute_b.shape == (3, 3, 8, 8)
    assert sets.concepts["car"].dtype == torch.uint8
    # images are filled with their id: the sets hold exactly the planned images
    assert _pixel_ids(sets.attribute_a) == [i for i, (cs, c) in enumerate(plan, 1)
                                            if cs == ("person",) and c == "a man standing"]
    assert _pixel_ids(sets.paired_b["surfboard"]) == [i for i, (cs, c) in enumerate(plan, 1)
                                                     if cs == ("surfboard", "person") and "woman" in c]
    small = T.coco_canonical_sets(tmp_path, min_images=3, n_per_set=2, size=8, categories=["car", "surfboard"])
    assert len(small.concepts["car"]) == 2 and len(small.attribute_b) == 2


def test_coco_canonical_sets_keep_their_image_ids(tmp_path):
    _write_coco(tmp_path / "coco")
    sets = T.coco_canonical_sets(tmp_path, min_images=3, n_per_set=2, size=8, seed=3)
    expected_keys = {"attribute_a", "attribute_b"} | {f"{p}:{c}" for p in ("concept", "paired_a", "paired_b")
                                                      for c in ("car", "surfboard")}
    assert set(sets.ids) == expected_keys
    tensors = {"attribute_a": sets.attribute_a, "attribute_b": sets.attribute_b,
               **{f"concept:{c}": x for c, x in sets.concepts.items()},
               **{f"paired_a:{c}": x for c, x in sets.paired_a.items()},
               **{f"paired_b:{c}": x for c, x in sets.paired_b.items()}}
    for key, x in tensors.items():
        assert sets.ids[key] == _pixel_ids(x), key  # the ids name exactly the images, in order
    assert sets.all_ids() == sorted({i for v in sets.ids.values() for i in v})
    assert len(sets.all_ids()) == 2 * 8  # 2 per set, 8 sets, no image in two sets here


def test_coco_builder_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="python -m data_scripts.fetch coco --root"):
        T.coco_canonical_sets(tmp_path / "absent")
    _write_coco(tmp_path / "coco")
    with pytest.raises(ValueError, match="unknown COCO categories \\['surf'\\]"):
        T.coco_canonical_sets(tmp_path, categories=["car", "surf"], min_images=3)
    with pytest.raises(ValueError, match="'potted plant' has only 1"):
        T.coco_canonical_sets(tmp_path, categories=["car", "potted plant"], min_images=3)
    with pytest.raises(ValueError, match="only 0 concept"):
        T.coco_canonical_sets(tmp_path, min_images=4)


def test_coco_multilabel(tmp_path):
    plan = _write_coco(tmp_path / "coco")
    ds = T.coco_multilabel(tmp_path, size=8, exclude=[1])
    assert len(ds) == len(plan) - 1 and 1 not in ds.image_ids
    x, y = ds[0]  # image 2: a car alone
    assert x.shape == (3, 8, 8) and y.shape == (4,) and int(x[0, 0, 0]) == 2
    assert y.tolist() == [0.0, 1.0, 0.0, 0.0]  # categories sorted by id: person, car, surfboard, plant
    assert ds.categories == ["person", "car", "surfboard", "potted plant"]
    assert ds.labels.shape == (len(plan) - 1, 4)
    five = T.coco_multilabel(tmp_path, size=8, n=5, seed=0)
    assert len(five) == 5 and five.image_ids == sorted(five.image_ids)
    assert five.image_ids == T.coco_multilabel(tmp_path, size=8, n=5, seed=0).image_ids  # seeded
    with pytest.raises(ValueError, match="n: expected 1..3"):
        T.coco_multilabel(tmp_path, size=8, n=4, exclude=range(1, len(plan) - 2))


def test_coco_targets_exclude_the_canonical_images(tmp_path):
    plan = _write_coco(tmp_path / "coco")
    sets = T.coco_canonical_sets(tmp_path, min_images=3, n_per_set=10, size=8)
    target = T.coco_multilabel(tmp_path, size=8, exclude=sets)
    assert not set(target.image_ids) & set(sets.all_ids())
    assert sorted(target.image_ids + sets.all_ids()) == list(range(1, len(plan) + 1))
    assert T.coco_multilabel(tmp_path, size=8, exclude=sets.all_ids()).image_ids == target.image_ids


def test_cached_coco_target_equals_the_lazy_one(tmp_path, monkeypatch):
    """Item 4 of #18: the uint8 cache gives the same tensors as decoding every item, and is reused."""
    plan = _write_coco(tmp_path / "coco")
    monkeypatch.setenv("FAIRLIB_CACHE", str(tmp_path / "cache"))
    sets = T.coco_canonical_sets(tmp_path, min_images=3, n_per_set=2, size=8, seed=3)
    lazy = T.coco_multilabel(tmp_path, size=8, n=10, exclude=sets, seed=1)
    cached = T.cached_multilabel(lazy)
    images, labels = cached  # a tuple: fine_tune reads it batch by batch
    assert images.dtype == torch.uint8 and images.shape == (10, 3, 8, 8)
    assert torch.equal(images, torch.stack([lazy[i][0] for i in range(len(lazy))]))
    assert torch.equal(labels, torch.stack([lazy[i][1] for i in range(len(lazy))]))
    assert cached.image_ids == lazy.image_ids and cached.categories == lazy.categories
    assert _pixel_ids(images) == lazy.image_ids  # the fixture fills each image with its id
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 1
    again = T.cached_multilabel(T.coco_multilabel(tmp_path, size=8, n=10, exclude=sets, seed=1))
    assert torch.equal(again.images, images) and len(list((tmp_path / "cache").glob("*.u8"))) == 1  # reused
    other = T.cached_multilabel(T.coco_multilabel(tmp_path, size=8, n=10, exclude=sets, seed=2))
    assert _pixel_ids(other.images) == other.image_ids  # another subset, another cache file
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 2
    assert len(plan) > 10
    with pytest.raises(ValueError, match="coco_multilabel"):
        T.cached_multilabel(torch.utils.data.TensorDataset(images))


def test_canonical_overlap_counts_planted_leaks(tmp_path):
    """Item 2 of #18: canonical images found in other data, by content (scenes) and by COCO id."""
    data = T.scene_transfer_data(n_objects=4, size=16, canonical_n=24, pretrain_n=40, seed=0)
    x, y = data.pretrain
    assert T.canonical_overlap(data.sets, data.pretrain) == 0
    ids = T.content_ids(x)
    assert ids.dtype == np.int64 and (ids >= 0).all() and len(set(ids.tolist())) == 40
    assert np.array_equal(T.content_ids(x.clone()), ids)  # content, not identity
    # plant 3 canonical images (one of them twice) into a copy of the pretraining scenes
    leaked = x.clone()
    leaked[[0, 5, 7, 9]] = torch.stack([data.sets.attribute_a[0], data.sets.concepts["disc"][1],
                                        data.sets.paired_b["ring"][2], data.sets.attribute_a[0]])
    assert T.canonical_overlap(data.sets, (leaked, y)) == 3
    assert T.canonical_overlap(data.sets, data.pretrain, (leaked, y)) == 3
    # COCO: by image id
    _write_coco(tmp_path / "coco")
    sets = T.coco_canonical_sets(tmp_path, min_images=3, n_per_set=10, size=8)
    assert T.canonical_overlap(sets, T.coco_multilabel(tmp_path, size=8, exclude=sets)) == 0
    everything = T.coco_multilabel(tmp_path, size=8)
    assert T.canonical_overlap(sets, everything) == len(sets.all_ids())
    with pytest.raises(ValueError, match=r"data\[0\]: expected a dataset with image_ids"):
        T.canonical_overlap(sets, [1, 2])
    with pytest.raises(ValueError, match="images: expected a"):
        T.content_ids(torch.zeros(3, 4))


# --------------------------------------------------------------------------- the quick profile's data
def test_planted_association_and_cooccurrence_tables():
    np.testing.assert_allclose(T.planted_association([0.1, 0.5, 0.9]), [0.8, 0.0, -0.8])
    with pytest.raises(ValueError, match="p_b"):
        T.planted_association([1.5])
    pre, tgt = T.cooccurrence_tables(8, seed=0)
    levels = np.linspace(0.1, 0.9, 8)
    np.testing.assert_allclose(np.sort(pre), levels)
    np.testing.assert_allclose(np.sort(tgt), levels)
    assert abs(pd.Series(pre).corr(pd.Series(tgt), method="spearman")) < 0.1
    again = T.cooccurrence_tables(8, seed=0)
    np.testing.assert_array_equal(again[0], pre)
    np.testing.assert_array_equal(again[1], tgt)
    assert not np.array_equal(T.cooccurrence_tables(8, seed=1)[0], pre)


def test_scene_transfer_data():
    data = T.scene_transfer_data(n_objects=4, size=16, canonical_n=24, pretrain_n=40, seed=0)
    assert list(data.planted.index) == list(data.sets.concepts) == ["disc", "square", "diamond", "ring"]
    np.testing.assert_allclose(data.planted["target"], 1 - 2 * data.target_pb)
    x, y = data.pretrain
    assert x.shape == (40, 3, 16, 16) and x.dtype == torch.uint8 and y.dtype == torch.long
    assert set(y.tolist()) <= set(range(4))
    # the scene sets keep their row indices: icon k is drawn in rows k, k + 4, ...
    assert data.sets.ids["concept:square"] == data.sets.ids["paired_b:square"] == list(range(1, 24, 4))
    assert len(data.sets.ids["attribute_a"]) == 12


# --------------------------------------------------------------------------- the experiment
_TINY_SCENES = dict(source="scenes", data_seed=0, backbone="small_cnn_supervised", n_objects=4, size=16,
                    canonical_n=24, pretrain_n=64,
                    pretrain_epochs=1, pretrain_lr=3e-3, target_n=32, target_seed=1, epochs=1, lr=1e-3,
                    batch_size=16, layer="pool", head="head", n_permutations=50, n_boot=200, threshold=0.5)


def test_run_transfer_linear_probe_keeps_every_association():
    out = T.run_transfer(target="small", mode="linear", seed=0, **_TINY_SCENES)
    assert (out["bts"], out["bts_low"], out["bts_high"]) == pytest.approx((1.0, 1.0, 1.0))
    assert out["concepts"] == ["disc", "square", "diamond", "ring"]
    assert out["score_after"] == pytest.approx(out["score_before"])
    assert out["effect_after"] == pytest.approx(out["effect_before"])
    assert out["introduced"] == out["vanished"] == out["flipped"] == 0
    assert out["kept"] + out["introduced"] + out["vanished"] + out["flipped"] <= 4
    assert out["n_target"] == 32 and len(out["losses"]) == 1
    assert out["n_overlap"] == 0 and out["overlap_checked"] == "pretraining and target"  # no leakage
    # the result is what a sweep stores: scalars and flat lists of scalars
    assert all(np.isscalar(v) or all(np.isscalar(u) for u in v) for v in out.values())


def test_run_transfer_full_fine_tuning_and_the_cached_setup(tmp_path):
    setup = T.transfer_setup(_TINY_SCENES)
    assert T.transfer_setup({**_TINY_SCENES, "seed": 5, "epochs": 3}) is setup  # the run's keys do not matter
    out = T.run_transfer(target="small", mode="full", seed=1, **_TINY_SCENES)
    assert T.transfer_setup(_TINY_SCENES) is setup  # one pretraining for every run
    assert out["score_before"] == pytest.approx(setup.before["score"].tolist())
    assert out["score_after"] != pytest.approx(out["score_before"])  # full fine-tuning moves the backbone
    rho = pd.Series(out["score_before"]).corr(pd.Series(out["score_after"]), method="spearman")
    assert out["bts"] == pytest.approx(rho) and out["bts_low"] <= out["bts"] <= out["bts_high"]
    planted = setup.planted.loc[out["concepts"], "target"]
    assert out["rho_target_data"] == pytest.approx(pd.Series(out["score_after"]).corr(
        pd.Series(planted.to_numpy()), method="spearman"))
    table = T.run_table({**_TINY_SCENES, **out})
    assert list(table.index) == out["concepts"]
    expected = T.association_changes(table["effect_before"], table["effect_after"], threshold=0.5)["status"]
    assert table["status"].tolist() == expected.tolist()
    assert (table["status"] == "introduced").sum() == out["introduced"]
    # through the sweep: one row per configuration, the config then the results
    configs = [{"target": "small", "mode": "full", "seed": 1, **_TINY_SCENES}]
    frame = sweep.run(T.run_transfer, configs, store=tmp_path / "store", progress=False)
    assert frame.loc[0, "bts"] == pytest.approx(out["bts"])  # the same run, reproduced


def test_run_transfer_on_coco_files(tmp_path, monkeypatch):
    """The full profile's path on the COCO fixture, with a tiny model in place of the ResNet-50."""
    import fairlib.models

    _write_coco(tmp_path / "coco", concepts=("car", "surfboard", "kite"))
    monkeypatch.setenv("FAIRLIB_DATA", str(tmp_path))
    monkeypatch.setenv("FAIRLIB_CACHE", str(tmp_path / "cache"))

    def tiny(name, **_):
        assert name == "tiny"
        torch.manual_seed(0)
        model = _Tiny()
        model.preprocess = None
        return model

    monkeypatch.setattr(fairlib.models, "build_backbone", tiny)
    config = dict(source="coco", data_seed=0, backbone="tiny", size=8, canonical_n=10, min_images=3,
                  canonical_split="val2017", target_split="val2017", target_n=3, target_seed=0, epochs=1,
                  lr=1e-3, batch_size=2, layer="body", head="fc", n_permutations=20, n_boot=100, threshold=0.5)
    setup = T.transfer_setup(config)
    target = T.transfer_target(config)
    assert sorted(setup.sets.concepts) == ["car", "kite", "surfboard"] and setup.planted is None
    assert target.labels.shape == (3, 5) and not set(target.image_ids) & set(setup.sets.all_ids())
    assert isinstance(target, T.MultiLabelTensors) and _pixel_ids(target.images) == target.image_ids  # cached
    out = T.run_transfer(target="small", mode="full", seed=0, **config)
    assert len(out["concepts"]) == 3 and out["n_target"] == 3
    assert out["n_overlap"] == 0 and out["overlap_checked"] == "target"
    assert np.isnan(out["rho_target_data"]) and np.isnan(out["rho_pretraining_data"])
    with pytest.raises(ValueError, match="n: expected 1..3"):
        T.transfer_target({**config, "target_n": 4})  # only 3 images are outside the canonical sets


def test_transfer_grid_and_registration():
    quick = T.transfer_grid("quick")
    block = [("small", "linear", 0), ("small", "full", 0), ("large", "full", 0), ("small", "full", 1),
             ("large", "full", 1), ("small", "full", 2), ("large", "full", 2)]
    # one block per kind of pretraining of the small CNN, the supervised one first (the chapter's main)
    assert [(c["target"], c["mode"], c["seed"]) for c in quick] == block * 2
    assert [c["backbone"] for c in quick] == ["small_cnn_supervised"] * 7 + ["small_cnn_rotation"] * 7
    assert {c["target_n"] for c in quick if c["target"] == "large"} == {4000}
    assert all(sweep.config_key(c) for c in quick)  # JSON-serialisable
    assert [c["seed"] for c in T.transfer_grid("quick", seed=3)][:2] == [3, 3]
    assert {c["data_seed"] for c in T.transfer_grid("quick", seed=3)} == {3}
    full = T.transfer_grid("full")
    # the quick grid once per backbone of the paper's comparison, backbone outermost
    from fairlib.models import BACKBONES

    backbones = [c["backbone"] for c in full]
    assert {c["source"] for c in full} == {"coco"} and len(full) == len(block) * len(set(backbones))
    assert set(backbones) <= set(BACKBONES) and len(set(backbones)) == 4 and backbones[0] == "resnet50_in1k"
    assert backbones == sorted(backbones, key=backbones.index), "one block per backbone"
    assert {c["layer"] for c in full} == {"body"} and {c["head"] for c in full} == {"fc"}
    assert {c["target"]: c["target_split"] for c in full} == {"small": "val2017", "large": "train2017"}
    params = set(inspect.signature(T.run_transfer).parameters)
    assert all(set(c) <= params for c in quick + full)  # every key is a parameter of the run function
    exp = sweep.experiments("07_bias_transfer")["transfer"]
    assert exp.fn is T.run_transfer and exp.configs("quick") == quick
    with pytest.raises(ValueError, match="profile"):
        T.transfer_grid("medium")


# --------------------------------------------------------------------------- finding (2): two measures
def _contrast_runs(n=10, seeds=(0, 1, 2), introduce=5):
    """Planted: the small target keeps every ranking (BTS 1), the large one reverses it (BTS -1) and
    lifts the first ``introduce`` concepts' effect sizes from 0.1 to 0.9 (introduced)."""
    concepts = [f"c{i}" for i in range(n)]
    before = list(np.linspace(-1, 1, n))
    rows = []
    for s in seeds:
        rows.append(dict(target="small", mode="full", seed=s, concepts=concepts, score_before=before,
                         score_after=before, effect_before=[0.1] * n, effect_after=[0.1] * n, threshold=0.5))
        rows.append(dict(target="large", mode="full", seed=s, concepts=concepts, score_before=before,
                         score_after=before[::-1], effect_before=[0.1] * n,
                         effect_after=[0.9] * introduce + [0.1] * (n - introduce), threshold=0.5))
    rows.append(dict(target="small", mode="linear", seed=0, concepts=concepts, score_before=before,
                     score_after=before[::-1], effect_before=[0.1] * n, effect_after=[0.1] * n, threshold=0.5))
    return pd.DataFrame(rows)


def test_target_contrast_known_answers():
    out = T.target_contrast(_contrast_runs(), n_boot=500)
    assert out["n_seeds"] == 3
    # ranks: identical (rho 1) on the small target, reversed (rho -1) on the large one, in every resample
    assert (out["bts_small"], out["bts_small_low"], out["bts_small_high"]) == pytest.approx((1, 1, 1))
    assert (out["bts_large"], out["bts_large_low"], out["bts_large_high"]) == pytest.approx((-1, -1, -1))
    assert out["transfer_small"] == "supports" and out["transfer_large"] == "contradicts"
    assert (out["bts_diff"], out["bts_diff_low"], out["bts_diff_high"]) == pytest.approx((2, 2, 2))
    assert out["bts_direction"] == "supports" and out["bts_seeds"] == 3
    # 5 of 10 concepts introduced on the large target, none on the small one
    assert (out["intro_small"], out["intro_large"], out["intro_diff"]) == (0, 5, 5)
    assert 0 < out["intro_diff_low"] <= 5 <= out["intro_diff_high"] <= 10
    assert out["intro_direction"] == "supports" and out["intro_seeds"] == 3 and out["agree"]
    # nothing introduced anywhere: the counts cannot tell the targets apart, while the BTS still can
    quiet = T.target_contrast(_contrast_runs(introduce=0), n_boot=500)
    assert (quiet["intro_diff"], quiet["intro_diff_low"], quiet["intro_diff_high"]) == (0, 0, 0)
    assert quiet["intro_direction"] == "inconclusive" and quiet["bts_direction"] == "supports"
    assert not quiet["agree"]
    # swapped roles: the measures contradict the finding
    swapped = T.target_contrast(_contrast_runs(), small="large", large="small", n_boot=500)
    assert swapped["bts_direction"] == swapped["intro_direction"] == "contradicts"


def test_target_contrast_errors():
    runs = _contrast_runs()
    with pytest.raises(ValueError, match="missing columns"):
        T.target_contrast(runs.drop(columns="threshold"))
    with pytest.raises(ValueError, match="no seed was run in mode 'full' on both"):
        T.target_contrast(runs[runs["target"] == "small"])
    odd = runs.copy()
    odd.at[0, "concepts"] = [f"d{i}" for i in range(10)]
    with pytest.raises(ValueError, match="different concepts"):
        T.target_contrast(odd)
    with pytest.raises(ValueError, match="at least 3 concepts"):
        T.target_contrast(_contrast_runs(n=2, introduce=0))


# --------------------------------------------------------------------------- finding (1): pretraining kinds
def test_rotation_pretext_rotates_each_image_by_its_label():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 3, 5, 5), generator=g, dtype=torch.uint8)
    rot, k = T.rotation_pretext(x, seed=3)
    assert rot.shape == x.shape and rot.dtype == x.dtype and k.dtype == torch.int64
    assert set(k.tolist()) == {0, 1, 2, 3}
    for i in range(len(x)):  # undoing the labelled rotation gives the image back
        assert torch.equal(torch.rot90(rot[i], -int(k[i]), dims=(-2, -1)), x[i])
    # 90 degrees counter-clockwise: the top row becomes the left column, read bottom-up
    one = torch.arange(9).reshape(1, 1, 3, 3)
    assert torch.equal(torch.rot90(one, 1, dims=(-2, -1))[0, 0, :, 0], torch.tensor([2, 1, 0]))
    assert torch.equal(T.rotation_pretext(x, seed=3)[1], k), "seeded"
    with pytest.raises(ValueError, match="square"):
        T.rotation_pretext(torch.zeros(2, 3, 4, 5))


def _backbone_rows(bts_sup, bts_ssl, p_sup=0.01, p_ssl=0.01):
    """Stored rows of two backbones; ``p_*``: the first concept's p-value beside a second of 0.5, or every p-value."""
    rows = []
    for name, values, p in (("sup", bts_sup, p_sup), ("ssl", bts_ssl, p_ssl)):
        p_before = list(p) if isinstance(p, (list, tuple)) else [p, 0.5]
        rows.append({"backbone": name, "mode": "linear", "target": "small", "seed": 0, "bts": 1.0,
                     "p_before": p_before})
        rows += [{"backbone": name, "mode": "full", "target": t, "seed": s, "bts": v, "p_before": p_before}
                 for (t, s), v in zip([("small", 0), ("large", 0), ("small", 1)], values)]
    return pd.DataFrame(rows)


def test_holm_significant_hand_computed():
    # sorted p 0.01, 0.02, 0.5 against 0.05/3, 0.05/2, 0.05/1 = 0.0167, 0.025, 0.05: two rejected
    # (Bonferroni's 0.0167 for all would reject one; uncorrected p < 0.05 two)
    assert T.holm_significant([0.5, 0.01, 0.02]).tolist() == [False, True, True]
    # sorted 0.01 <= 0.0125 rejected; 0.03 > 0.05/3 stops the procedure, so 0.04 is not reached (uncorrected: 3)
    assert T.holm_significant([0.04, 0.01, 0.03, 0.5]).tolist() == [False, True, False, False]
    # one p of 0.02 among three: 0.02 > 0.0167, nothing is rejected (uncorrected: 1)
    assert not T.holm_significant([0.02, 0.5, 0.6]).any()
    # the bounds are inclusive: 0.025 <= 0.05/2 and 0.05 <= 0.05/1
    assert T.holm_significant([0.05, 0.025]).tolist() == [True, True]
    assert T.holm_significant([0.02, 0.5, 0.6], alpha=0.1).tolist() == [True, False, False], "0.02 <= 0.1/3"
    assert T.holm_significant([0.01]).tolist() == [True]
    for bad in ([0.1, float("nan")], [1.5], [-0.1]):
        with pytest.raises(ValueError, match="p_values"):
            T.holm_significant(bad)
    with pytest.raises(ValueError, match="alpha"):
        T.holm_significant([0.01], alpha=0)


def test_pretraining_contrast_pairs_runs_and_needs_held_associations():
    # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, t(2) 97.5% = 4.3027 -> half-width 0.2484
    res = T.pretraining_contrast(_backbone_rows([0.5, 0.6, 0.7], [0.4, 0.4, 0.4]), supervised="sup",
                                 self_supervised="ssl")
    assert res["testable"] and res["n_pairs"] == 3 and res["held"] == {"sup": 1, "ssl": 1}  # 0.01 <= 0.05/2
    assert res["mean"] == pytest.approx(0.2)
    assert res["low"] == pytest.approx(0.2 - 4.302653 * 0.1 / math.sqrt(3), abs=1e-5)
    assert res["high"] == pytest.approx(0.2 + 4.302653 * 0.1 / math.sqrt(3), abs=1e-5)
    # the linear probe's BTS of 1 is not part of the contrast; rows pair by target and seed, not by order
    shuffled = _backbone_rows([0.5, 0.6, 0.7], [0.4, 0.4, 0.4]).sample(frac=1, random_state=0)
    assert T.pretraining_contrast(shuffled, supervised="sup", self_supervised="ssl")["mean"] == pytest.approx(0.2)
    # a backbone with no significant association before fine-tuning has nothing to keep
    none = T.pretraining_contrast(_backbone_rows([0.5, 0.6, 0.7], [0.4, 0.4, 0.4], p_ssl=0.2),
                                  supervised="sup", self_supervised="ssl")
    assert not none["testable"] and none["held"]["ssl"] == 0 and "no significant" in none["reason"]
    assert math.isnan(none["mean"])
    # the gate is Holm-corrected: uncorrected, both backbones would hold associations (2 and 1 p < 0.05); with
    # Holm's 0.05/3, 0.05/2, ... the supervised one holds 2 (0.01 <= 0.0167, 0.02 <= 0.025) and the other none
    # (0.02 > 0.0167), so the contrast is not testable
    holm = T.pretraining_contrast(_backbone_rows([0.5, 0.6, 0.7], [0.4, 0.4, 0.4], p_sup=[0.01, 0.02, 0.5],
                                                 p_ssl=[0.02, 0.5, 0.6]), supervised="sup", self_supervised="ssl")
    assert holm["held"] == {"sup": 2, "ssl": 0} and not holm["testable"] and "Holm" in holm["reason"]
    # the step-down stops at the first failure: 0.01 <= 0.0125, then 0.03 > 0.0167 (uncorrected: 3 of 4)
    held = T.pretraining_contrast(_backbone_rows([0.5, 0.6, 0.7], [0.4, 0.4, 0.4], p_ssl=[0.04, 0.01, 0.03, 0.5]),
                                  supervised="sup", self_supervised="ssl")
    assert held["held"] == {"sup": 1, "ssl": 1} and held["testable"]
    assert T.pretraining_contrast(_backbone_rows([0.5, 0.6, 0.7], [0.4, 0.4, 0.4], p_ssl=[0.02, 0.5, 0.6]),
                                  supervised="sup", self_supervised="ssl", alpha=0.1)["testable"], "0.02 <= 0.1/3"
    with pytest.raises(ValueError, match="no full fine-tuning runs of"):
        T.pretraining_contrast(_backbone_rows([0.5], [0.4]), supervised="sup", self_supervised="moco")
    with pytest.raises(ValueError, match="missing columns"):
        T.pretraining_contrast(pd.DataFrame({"bts": [1.0]}), supervised="sup", self_supervised="ssl")
    assert T.pretraining_kind("small_cnn_rotation").startswith("self-supervised")
    with pytest.raises(ValueError, match="choose from"):
        T.pretraining_kind("vit_huge")


# --------------------------------------------------------------------------- which data the ranking follows
def _planted_runs(after_small, after_large, seeds=(0, 1, 2)):
    concepts = [f"c{i}" for i in range(len(after_small))]
    return pd.DataFrame([{"target": t, "mode": "full", "seed": s, "concepts": concepts, "score_after": list(a)}
                         for s in seeds for t, a in (("small", after_small), ("large", after_large))])


def test_planted_contrast_known_answers():
    a = np.arange(1.0, 7.0)
    planted = pd.DataFrame({"pretraining": a, "target": -a}, index=[f"c{i}" for i in range(6)])
    # small target: the scores keep the pretraining ranking (rho +1 with it, -1 with the target's): pull -2 in
    # every resample; large target: the target's ranking, pull +2; difference +4
    out = T.planted_contrast(_planted_runs(a, -a), planted, n_boot=300)
    assert out["n_seeds"] == 3
    assert (out["pull_small"], out["pull_small_low"], out["pull_small_high"]) == pytest.approx((-2, -2, -2))
    assert (out["pull_large"], out["pull_large_low"], out["pull_large_high"]) == pytest.approx((2, 2, 2))
    assert out["follows_small"] == "pretraining" and out["follows_large"] == "target"
    assert (out["pull_diff"], out["pull_diff_low"], out["pull_diff_high"]) == pytest.approx((4, 4, 4))
    assert out["pull_direction"] == "supports" and out["pull_seeds"] == 3
    swapped = T.planted_contrast(_planted_runs(a, -a), planted, small="large", large="small", n_boot=300)
    assert swapped["pull_direction"] == "contradicts" and swapped["pull_seeds"] == 0
    # the same ranking after both targets: no difference in any resample, so the interval [0, 0] decides nothing
    same = T.planted_contrast(_planted_runs(a, a), planted, n_boot=300)
    assert (same["pull_diff"], same["pull_diff_low"], same["pull_diff_high"]) == (0, 0, 0)
    assert same["pull_direction"] == "inconclusive"
    # the point estimate is the mean over seeds of scipy's rho with the target minus rho with the pretraining data
    rng = np.random.default_rng(0)
    pl = pd.DataFrame({"pretraining": rng.normal(size=8), "target": rng.normal(size=8)},
                      index=[f"c{i}" for i in range(8)])
    runs = pd.concat([_planted_runs(rng.normal(size=8), rng.normal(size=8), seeds=(s,)) for s in range(3)])
    out = T.planted_contrast(runs, pl, n_boot=300)
    for t in ("small", "large"):
        want = np.mean([stats.spearmanr(r["score_after"], pl["target"])[0]
                        - stats.spearmanr(r["score_after"], pl["pretraining"])[0]
                        for _, r in runs[runs["target"] == t].iterrows()])
        assert out[f"pull_{t}"] == pytest.approx(want)
        assert out[f"pull_{t}_low"] <= out[f"pull_{t}_high"]
    assert out["pull_diff"] == pytest.approx(out["pull_large"] - out["pull_small"])


def test_planted_contrast_errors():
    a = np.arange(1.0, 7.0)
    planted = pd.DataFrame({"pretraining": a, "target": -a}, index=[f"c{i}" for i in range(6)])
    runs = _planted_runs(a, -a)
    with pytest.raises(ValueError, match="missing columns"):
        T.planted_contrast(runs.drop(columns="score_after"), planted)
    with pytest.raises(ValueError, match="planted: expected"):
        T.planted_contrast(runs, planted.drop(columns="target"))
    with pytest.raises(ValueError, match="no planted association"):
        T.planted_contrast(runs, planted.iloc[:4])
    with pytest.raises(ValueError, match="no seed was run"):
        T.planted_contrast(runs[runs["target"] == "small"], planted)
    with pytest.raises(ValueError, match="at least 3 concepts"):
        T.planted_contrast(_planted_runs(a[:2], a[:2]), planted)


def test_scene_backbones_share_images_and_budget_and_differ_in_labels():
    sup = T.transfer_setup(_TINY_SCENES)
    rot = T.transfer_setup({**_TINY_SCENES, "backbone": "small_cnn_rotation"})
    assert sup.model.head.out_features == _TINY_SCENES["n_objects"] and rot.model.head.out_features == 4
    assert len(sup.pretrain_losses) == len(rot.pretrain_losses) == _TINY_SCENES["pretrain_epochs"]
    assert torch.equal(sup.data.pretrain[0], rot.data.pretrain[0]), "the same pretraining scenes"
    assert not torch.equal(sup.model.block1[0].weight, rot.model.block1[0].weight), "trained on different labels"
    with pytest.raises(ValueError, match="small_cnn_supervised"):
        T.transfer_setup({**_TINY_SCENES, "backbone": "resnet50_in1k"})
