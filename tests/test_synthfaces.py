"""SynthFaces: determinism, schema, configured imbalance and correlations, planted cues."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from fairlib.data.synthfaces import (
    AGE_BINS,
    DEFAULT_CORRELATIONS,
    DEFAULT_MULTI_RATES,
    FAIRFACE_AGE_COUNTS,
    IDENTITY_ATTRIBUTES,
    MULTI_ATTRIBUTES,
    OBJECT_NAMES,
    PALETTE_LEVELS,
    STYLE_LEVELS,
    SynthFaces,
    canonical_sets,
    default_group_weights,
    render_faces,
    render_multiattribute,
    render_scenes,
)


def test_same_seed_same_output_and_different_seed_differs():
    a_img, a_attr = render_faces(64, seed=3)
    b_img, b_attr = render_faces(64, seed=3)
    c_img, _ = render_faces(64, seed=4)
    assert torch.equal(a_img, b_img)
    pd.testing.assert_frame_equal(a_attr, b_attr)
    assert not torch.equal(a_img, c_img)
    m1, _ = render_multiattribute(32, seed=1)
    m2, _ = render_multiattribute(32, seed=1)
    assert torch.equal(m1, m2)


def test_chunking_does_not_change_output(monkeypatch):
    # parameters are drawn for all images before drawing in chunks, so the chunk size
    # (a cache-size tuning knob) must not change any pixel
    import fairlib.data.synthfaces as sf

    ref, _ = render_multiattribute(40, size=32, seed=5)
    monkeypatch.setattr(sf, "_CHUNK", 7)
    small, _ = render_multiattribute(40, size=32, seed=5)
    assert torch.equal(ref, small)


def test_shapes_dtype_and_schema():
    img, attr = render_faces(20, size=48, seed=0)
    assert img.shape == (20, 3, 48, 48) and img.dtype == torch.uint8
    assert list(attr.columns) == ["palette", "age", "style"]
    for col in attr:
        assert isinstance(attr[col].dtype, pd.CategoricalDtype)
    assert list(attr["palette"].cat.categories) == list(PALETTE_LEVELS) and len(PALETTE_LEVELS) == 7
    assert list(attr["age"].cat.categories) == list(AGE_BINS) and len(AGE_BINS) == 9
    assert list(attr["style"].cat.categories) == list(STYLE_LEVELS) == ["A", "B"]
    # images are not blank: every image has real contrast
    assert (img.float().std(dim=(1, 2, 3)) > 10).all()


def test_uniform_weights_give_exactly_equal_groups():
    _, attr = render_faces(126 * 3, size=16, group_weights="uniform", seed=0)
    counts = attr.groupby(["palette", "age", "style"], observed=False).size()
    assert len(counts) == 126 and (counts == 3).all()


def test_custom_weights_are_followed_exactly():
    w = np.zeros((7, 9, 2))
    w[0, 0, 0] = 3.0  # (P1, 0-2, A)
    w[6, 8, 1] = 1.0  # (P7, 70+, B)
    _, attr = render_faces(400, size=16, group_weights=w, seed=2)
    counts = attr.value_counts(["palette", "age", "style"])
    assert counts[("P1", "0-2", "A")] == 300
    assert counts[("P7", "70+", "B")] == 100
    assert counts.sum() == 400


def test_default_weights_follow_fairface_age_skew_and_rare_cells():
    w = default_group_weights()
    assert w.shape == (7, 9, 2) and np.isclose(w.sum(), 1)
    # rare intersection is one tenth of its neighbour with the same age and style
    assert np.isclose(w[5, 8, 1] / w[0, 8, 1], 0.1)
    n = 20_000
    _, attr = render_faces(n, size=16, seed=0)
    share = attr["age"].value_counts(normalize=True).reindex(AGE_BINS).to_numpy()
    fairface = np.asarray(FAIRFACE_AGE_COUNTS) / sum(FAIRFACE_AGE_COUNTS)
    assert np.abs(share - fairface).max() < 0.005
    assert share.argmax() == AGE_BINS.index("20-29")
    counts = attr.value_counts(["palette", "age", "style"])
    # 20,000 x w: the rare cell gets floor or ceil of its exact share
    exact = n * w[5, 8, 1]
    assert counts.get(("P6", "70+", "B"), 0) in (np.floor(exact), np.ceil(exact))


def _accuracy(attribute, strength, seed=1):
    img, attr = render_faces(2400, size=32, strengths={attribute: strength},
                             group_weights="uniform", seed=seed)
    x = torch.nn.functional.avg_pool2d(img.float() / 255, 4).reshape(len(img), -1).numpy()
    y = attr[attribute].cat.codes.to_numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))
    with threadpool_limits(1):  # BLAS threads thrash on small problems on a busy machine
        clf.fit(x[:1800], y[:1800])
        return clf.score(x[1800:], y[1800:])


@pytest.mark.parametrize(
    "attribute, chance, learnable_above",
    [("palette", 1 / 7, 0.40), ("age", 1 / 9, 0.18), ("style", 1 / 2, 0.57)],
)
def test_cue_learnable_at_full_strength_and_at_chance_at_zero(attribute, chance, learnable_above):
    # a linear probe on 8x8 downsampled pixels; 600 test images give a chance-level SD of
    # about 0.015-0.02, so chance + 0.06 is about 3 SD
    assert _accuracy(attribute, 1.0) > learnable_above
    assert _accuracy(attribute, 0.0) < chance + 0.06


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="^n:"):
        render_faces(-1)
    with pytest.raises(ValueError, match="^size:"):
        render_faces(4, size=256)
    with pytest.raises(ValueError, match=r"strengths\['age'\]"):
        render_faces(4, strengths={"age": 1.5})
    with pytest.raises(ValueError, match="unknown attribute 'colour'"):
        render_faces(4, strengths={"colour": 1})
    with pytest.raises(ValueError, match="^group_weights:"):
        render_faces(4, group_weights=np.ones((7, 9)))
    with pytest.raises(ValueError, match="^seed:"):
        render_faces(4, seed=-2)


def _phi(x, y):
    return np.corrcoef(x, y)[0, 1]


def test_multiattribute_rates_and_correlations_follow_configuration():
    n = 20_000
    _, attr = render_multiattribute(n, size=16, seed=0)
    assert list(attr.columns) == list(IDENTITY_ATTRIBUTES) + list(MULTI_ATTRIBUTES)
    assert len(MULTI_ATTRIBUTES) >= 12 and len(IDENTITY_ATTRIBUTES) == 4
    codes = {c: attr[c].cat.codes.to_numpy() for c in attr}
    for name in IDENTITY_ATTRIBUTES:
        assert abs(codes[name].mean() - DEFAULT_MULTI_RATES[name]) < 0.012
    for (a, i), phi in DEFAULT_CORRELATIONS.items():
        assert abs(codes[a].mean() - DEFAULT_MULTI_RATES[a]) < 0.015, a
        assert abs(_phi(codes[a], codes[i]) - phi) < 0.03, (a, i)
    # unlinked pairs are independent
    assert abs(_phi(codes["hat"], codes["angular"])) < 0.03
    assert abs(_phi(codes["necklace"], codes["smooth"])) < 0.03


def test_multiattribute_custom_and_infeasible_correlations():
    _, attr = render_multiattribute(20_000, size=16, correlations={("hat", "wide"): 0.4},
                                    rates={"hat": 0.2, "wide": 0.3}, seed=1)
    hat, wide = attr["hat"].cat.codes.to_numpy(), attr["wide"].cat.codes.to_numpy()
    assert abs(_phi(hat, wide) - 0.4) < 0.03
    # with these base rates phi cannot exceed sqrt(0.04*0.95/(0.96*0.05)) ~= 0.89... but
    # P(mustache)=0.04 and P(angular)=0.42 cap phi at 0.2425
    with pytest.raises(ValueError, match=r"impossible.*choose phi in \[-0\.\d+, 0\.24"):
        render_multiattribute(10, correlations={("mustache", "angular"): 0.5})
    with pytest.raises(ValueError, match="two identities"):
        render_multiattribute(10, correlations={("hat", "wide"): 0.1, ("hat", "light"): 0.1})


def test_attribute_strength_zero_makes_it_invisible():
    on, attr = render_multiattribute(400, size=32, seed=3)
    off, _ = render_multiattribute(400, size=32, strengths={"glasses": 0.0}, seed=3)
    has = attr["glasses"].cat.codes.to_numpy() == 1
    assert has.sum() > 5
    diff = (on != off).flatten(1).any(1).numpy()
    # exactly the images labelled with glasses change when glasses are made invisible
    assert np.array_equal(diff, has)


def test_scene_cooccurrence():
    _, attr = render_scenes(2000, n_objects=4, cooccurrence=1.0, size=16, seed=0)
    obj = attr["object"].cat.codes.to_numpy()
    sty = attr["style"].cat.codes.to_numpy()
    assert np.array_equal(sty, obj % 2)  # fully confounded: preferred style k % 2
    _, attr = render_scenes(8000, n_objects=4, cooccurrence=0.0, size=16, seed=0)
    frame = pd.crosstab(attr["object"], attr["style"], normalize="index")
    assert np.abs(frame.to_numpy() - 0.5).max() < 0.04
    table = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    _, attr = render_scenes(9000, n_objects=3, cooccurrence=table, size=16, seed=0)
    frame = pd.crosstab(attr["object"], attr["style"], normalize="index").to_numpy()
    assert np.abs(frame - table).max() < 0.04
    assert list(attr["object"].cat.categories) == list(OBJECT_NAMES[:3])
    with pytest.raises(ValueError, match="^cooccurrence:"):
        render_scenes(4, n_objects=3, cooccurrence=np.ones((3, 2)))


def test_canonical_sets_are_matched_counterfactuals():
    sets = canonical_sets(16, n_objects=4, size=64, seed=0)
    assert set(sets) == {"object_alone", "style_alone", "object_with_A", "object_with_B"}
    a, attr_a = sets["object_with_A"]
    b, attr_b = sets["object_with_B"]
    alone, attr_alone = sets["object_alone"]
    fig, attr_fig = sets["style_alone"]
    assert (attr_a["style"] == "A").all() and (attr_b["style"] == "B").all()
    assert list(attr_a["object"].cat.codes) == [i % 4 for i in range(16)]
    assert attr_alone["style"].isna().all() and attr_fig["object"].isna().all()
    assert list(attr_fig["style"].cat.codes) == [i % 2 for i in range(16)]
    # A and B differ only in the figure's hair, which never reaches the right side
    assert torch.equal(a[..., 36:], b[..., 36:])
    assert ((a != b).flatten(1).any(1)).all()
    # the figure (body included) stays left of x = 0.4; the icon lives on the right
    assert torch.equal(alone[..., 46:], a[..., 46:])
    assert ((alone[..., 46:] != fig[..., 46:]).flatten(1).any(1)).all()
    assert ((alone[..., :30] != a[..., :30]).flatten(1).any(1)).all()


def test_dataset_class():
    ds = SynthFaces(10, size=32, seed=0)
    assert len(ds) == 10
    x, row = ds[2]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32)
    assert 0 <= x.min() and x.max() <= 1
    assert row == {c: int(ds.attributes[c].cat.codes[2]) for c in ds.attributes}
    assert ds.schema["style"] == ["A", "B"]
    with pytest.raises(ValueError, match="^mode:"):
        SynthFaces(4, mode="portraits")
