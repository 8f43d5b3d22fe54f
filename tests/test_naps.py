"""fairlib.naps: hand-computed NAPs, streaming = in-memory, unions with the shared reference."""

import numpy as np
import pandas as pd
import pytest
import torch

import fairlib.naps as N
from fairlib.naps import StreamingNAPs, neuron_activation_profiles, union_profiles, variance_share


def test_hand_computed_example_with_both_references():
    # group "a": values 1, 3 (mean 2); group "b": 10 (mean 10)
    acts = np.array([[1.0], [10.0], [3.0]])
    # the authors' code (default): E = mean of the group means = (2 + 10) / 2 = 6
    profiles, expected, labels = neuron_activation_profiles(acts, ["a", "b", "a"])
    assert labels.tolist() == ["a", "b"]
    np.testing.assert_allclose(expected, [6.0])
    np.testing.assert_allclose(profiles[:, 0], [-4.0, 4.0])
    np.testing.assert_allclose(profiles.sum(axis=0), 0, atol=1e-12)  # the unweighted NAPs sum to zero
    # the paper's formula: E = mean over all examples = (1 + 3 + 10) / 3 = 14/3
    profiles, expected, _ = neuron_activation_profiles(acts, ["a", "b", "a"], expected="overall")
    np.testing.assert_allclose(expected, [14 / 3])
    np.testing.assert_allclose(profiles[:, 0], [2 - 14 / 3, 10 - 14 / 3])
    np.testing.assert_allclose(2 * profiles[0] + 1 * profiles[1], 0, atol=1e-12)  # size-weighted sum is zero
    # an array is used as given
    profiles, expected, _ = neuron_activation_profiles(acts, ["a", "b", "a"], expected=np.array([1.0]))
    np.testing.assert_allclose(profiles[:, 0], [1.0, 9.0])
    with pytest.raises(ValueError, match="expected: unknown reference 'mean'; choose one of"):
        neuron_activation_profiles(acts, ["a", "b", "a"], expected="mean")
    with pytest.raises(ValueError, match=r"expected: an array must have the layer's shape \(1,\)"):
        neuron_activation_profiles(acts, ["a", "b", "a"], expected=np.zeros(2))


def test_unions_share_the_intersectional_reference_and_eta2_uses_the_overall_mean():
    # intersections (age, style): ids 0 = (young, A) x2 values 0, 0; 1 = (young, B) value 6; 2 = (old, A) value 3
    table = pd.DataFrame({"age": ["young", "young", "old"], "style": ["A", "B", "A"]})
    acts, groups = np.array([[0.0], [0.0], [6.0], [3.0]]), np.array([0, 0, 1, 2])
    s = StreamingNAPs().update(acts, groups)
    # group means 0, 6, 3 -> unweighted E = 3; union "young" = size-weighted mean of its members (0, 0, 6) = 2
    prof, unions = union_profiles(s, table=table, by="age")
    assert unions["age"].tolist() == ["old", "young"]
    np.testing.assert_allclose(prof[:, 0], [3 - 3, 2 - 3])
    prof, _ = union_profiles(s, table=table, by="age", expected="overall")  # E = 9 / 4
    np.testing.assert_allclose(prof[:, 0], [3 - 2.25, 2 - 2.25])
    # eta^2 = between / total around the overall mean 2.25: between = 2(0-2.25)^2 + (6-2.25)^2 + (3-2.25)^2
    between = 2 * 2.25 ** 2 + 3.75 ** 2 + 0.75 ** 2
    total = float(((acts[:, 0] - 2.25) ** 2).sum())
    assert variance_share(s) == pytest.approx(between / total) == pytest.approx(1.0)


def test_streaming_equals_in_memory_and_keeps_shape():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(503, 4, 3, 3)).astype(np.float32)
    groups = rng.integers(0, 7, 503)
    ref = neuron_activation_profiles(torch.from_numpy(acts), groups, expected="overall")
    s = StreamingNAPs()
    for i in range(0, 503, 64):
        s.update(acts[i:i + 64], groups[i:i + 64])
    out = s.result(expected="overall")
    assert out[0].shape == (7, 4, 3, 3) and out[1].shape == (4, 3, 3)
    for a, b in zip(ref, out):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out[1], acts.mean(axis=0), atol=1e-6)
    assert s.counts.sum() == 503


def test_streaming_rejects_shape_change():
    s = StreamingNAPs().update(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="shape"):
        s.update(np.zeros((2, 4)), [0, 1])
    with pytest.raises(ValueError, match="groups"):
        StreamingNAPs().update(np.zeros((2, 3)), [0])


def test_union_profiles_use_intersectional_reference():
    table = pd.DataFrame({"age": pd.Categorical(["y", "y", "o", "o"]),
                          "style": pd.Categorical(["A", "B", "A", "B"])})
    # group sizes 1, 2, 1, 0 (group 3 empty); values per group 0, 3, 6
    acts = np.array([[0.0], [3.0], [3.0], [6.0]])
    groups = np.array([0, 1, 1, 2])
    prof, unions = union_profiles(acts, groups, table=table, by="age")
    expected = 12 / 4
    assert unions["age"].tolist() == ["o", "y"] and unions["count"].tolist() == [1, 3]
    np.testing.assert_allclose(prof[:, 0], [6 - expected, 2 - expected])
    assert list(unions["age"].cat.categories) == ["o", "y"]  # the table's categories are kept
    s = StreamingNAPs().update(acts, groups)
    prof2, unions2 = union_profiles(s, table=table, by=["age", "style"])
    assert len(unions2) == 3
    np.testing.assert_allclose(np.sort(prof2[:, 0]), np.sort([0 - 3, 3 - 3, 6 - 3]))
    with pytest.raises(ValueError, match="by"):
        union_profiles(s, table=table, by="race")


def test_total_variance_and_variance_share_by_hand():
    # groups a: 1, 3 (mean 2); b: 10; grand mean 14/3
    acts = np.array([[1.0], [10.0], [3.0]])
    s = StreamingNAPs().update(acts[:2], ["a", "b"]).update(acts[2:], ["a"])
    np.testing.assert_allclose(s.total_variance(), [acts[:, 0].var()])
    between = 2 * (2 - 14 / 3) ** 2 + (10 - 14 / 3) ** 2
    total = ((acts[:, 0] - 14 / 3) ** 2).sum()
    assert abs(variance_share(s) - between / total) < 1e-12
    # all variation between groups -> 1; identical group means -> 0
    assert abs(variance_share(StreamingNAPs().update(np.array([[0.0], [0.0], [5.0]]), [0, 0, 1])) - 1) < 1e-12
    assert variance_share(StreamingNAPs().update(np.array([[1.0], [3.0], [1.0], [3.0]]), [0, 0, 1, 1])) < 1e-12


def test_variance_share_of_unions_and_chance_level():
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"age": pd.Categorical(["y", "y", "o", "o"]),
                          "style": pd.Categorical(["A", "B", "A", "B"])})
    groups = rng.integers(0, 4, 4000)
    age = np.where(groups < 2, 0.0, 2.0)  # a planted age effect only
    acts = np.c_[age + rng.normal(size=4000), rng.normal(size=(4000, 2))]
    s = StreamingNAPs().update(acts, groups)
    full = variance_share(s)
    by_age = variance_share(s, table=table, by="age")
    by_style = variance_share(s, table=table, by="style")
    assert by_style <= by_age <= full <= 1
    assert abs(by_age - 1 / (1 + 3)) < 0.03  # between var 1 of total 1 + 1 + 1 + 1
    assert by_style < 0.01
    # no effect at all: about (g - 1) / (N - 1)
    s0 = StreamingNAPs().update(rng.normal(size=(4000, 3)), groups)
    assert variance_share(s0) < 5 * 3 / 3999
    with pytest.raises(ValueError, match="table"):
        variance_share(s, by="age")


# --------------------------------------------------------------------------- streaming a network (Chapter 4)
def test_stream_naps_matches_the_in_memory_profiles():
    import torch

    from fairlib.naps import StreamingNAPs, layer_shares, stream_naps

    torch.manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    groups = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1))
    naps = stream_naps(model, torch.utils.data.TensorDataset(images), groups, {"input": "input", "conv": "0"},
                       batch_size=3, device="cpu")
    x = images.float() / 255
    with torch.no_grad():
        conv = model(x)
    for name, acts in (("input", x), ("conv", conv)):
        expected = neuron_activation_profiles(acts.mean(dim=(2, 3)).numpy(), groups)[0]
        np.testing.assert_allclose(naps[name].result()[0], expected, atol=1e-6)
    table = pd.DataFrame({"v": pd.Categorical(["a", "b", "a"]), "count": [4, 3, 3]})
    shares = layer_shares(naps, table, ["v"])
    assert list(shares.columns) == ["layer", "channels", "eta2 (all 3 groups)", "eta2 (v)"]
    assert shares["channels"].tolist() == [3, 2]
    assert shares.iloc[0, 2] == pytest.approx(variance_share(naps["input"]))
    with pytest.raises(ValueError, match="groups: 9 group ids for 10 items"):
        stream_naps(model, torch.utils.data.TensorDataset(images), groups[:9], {"conv": "0"}, device="cpu")
    assert isinstance(naps["conv"], StreamingNAPs)
    # spatial="full" keeps every position; its spatial mean is the "mean" NAP (the map is linear)
    full = stream_naps(model, torch.utils.data.TensorDataset(images), groups, {"conv": "0"}, batch_size=4,
                       device="cpu", spatial="full")
    prof_full = full["conv"].result()[0]
    assert prof_full.shape == (3, 2, 4, 4)
    np.testing.assert_allclose(prof_full, neuron_activation_profiles(conv.numpy(), groups)[0], atol=1e-6)
    np.testing.assert_allclose(prof_full.mean(axis=(2, 3)), naps["conv"].result()[0], atol=1e-6)
    with pytest.raises(ValueError, match="spatial: expected 'mean' or 'full'"):
        stream_naps(model, torch.utils.data.TensorDataset(images), groups, {"conv": "0"}, spatial="max")


def test_category_contrast_hand_computed():
    from fairlib.naps import category_contrast

    table = pd.DataFrame({"style": pd.Categorical(["A", "B", "A", "B", "A"]),
                          "age": pd.Categorical(["young", "young", "old", "old", "mid"]),
                          "count": [4, 4, 1, 1, 3]})
    profiles = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0], [9.0, 9.0]])
    out = category_contrast(profiles, table, within="age", contrast="style", total_variance=2.0)
    assert sorted(out.columns) == ["old", "young"], "'mid' has one style only and is skipped"
    assert out.loc["contrast", "young"] == pytest.approx(5.0) and out.loc["contrast", "old"] == 0.0
    assert out.loc["noise level", "young"] == pytest.approx(np.sqrt(2.0 * (1 / 4 + 1 / 4)))
    assert out.loc["noise level", "old"] == pytest.approx(2.0)


def test_layer_shares_grid_pairs_trained_and_random():
    from fairlib.naps import layer_shares_grid

    grid = layer_shares_grid("quick")
    assert [g["trained"] for g in grid] == [True, False] and {g["network"] for g in grid} == {"small_cnn"}
    assert layer_shares_grid("full")[0]["network"] == "resnet50"


def test_streaming_naps_refuse_non_finite_activations():
    acts = np.ones((4, 3))
    acts[2, 1] = np.nan
    with pytest.raises(ValueError, match="activations: example 2 of this batch holds NaN or inf"):
        StreamingNAPs().update(acts, [0, 0, 1, 1])


def test_shared_network_is_built_once_per_setting():
    from fairlib.naps import shared_network

    a = shared_network("small_cnn", trained=False, seed=3, device="cpu")
    assert shared_network("small_cnn", trained=False, seed=3, device="cpu") is a
    assert shared_network("small_cnn", trained=False, seed=4, device="cpu") is not a


@pytest.mark.parametrize("network", ["resnet50", "vgg16", "inception_v3", "small_cnn"])
def test_analysed_layers_leave_out_the_output_layer_and_the_final_pool(network):
    from fairlib.activations import layer_preset

    layers = N.analysed_layers(network)
    preset = layer_preset(network)
    assert "predictions" in preset and "predictions" not in layers, "class scores are not a feature map"
    assert "avg_pool" not in layers
    assert list(layers) == [k for k in preset if k not in ("avg_pool", "predictions")], "order kept"
