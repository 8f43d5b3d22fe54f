"""fairlib.topomap: force values, one relaxation step by hand, layout and rendering."""

import numpy as np
import pandas as pd
import pytest

from fairlib.topomap import channel_profiles, color_limit, force, plot_map_grid, relax, render_maps, scale_unit


def test_force_hand_values():
    np.testing.assert_allclose(force(0.0), 1.5 - 15)
    np.testing.assert_allclose(force(1.0), 1.5 / 8 - 15 * np.exp(-0.5))
    assert force(30.0) > 0 > force(5.0)  # attraction wins only far away


def test_two_particles_one_step_by_hand():
    p = np.array([[0.0, 0.0], [1.0, 0.0]])
    c = (np.tanh(-3) + 1) / 2  # one step: x_0 = -3
    f1 = 1.5 / 8 - 15 * np.exp(-0.5)
    move = (1.0 * c * f1 / 2) / 2  # mean over both particles; the self term is zero
    out = relax(p, n_steps=1, rescale=False)
    np.testing.assert_allclose(out, [[move, 0], [1 - move, 0]], rtol=1e-5)
    assert out[0, 0] < 0  # repelled


def test_distance_is_clipped_at_001():
    p = np.array([[0.0, 0.0], [0.0, 0.0], [0.001, 0.0]])
    out = relax(p, n_steps=1, rescale=False)
    c = (np.tanh(-3) + 1) / 2
    w = c * force(0.01) / 2 / 3
    # particle 0: (p1 - p0) = 0, (p2 - p0) = 0.001 with d clipped to 0.01
    np.testing.assert_allclose(out[0, 0], 0.001 * w, rtol=1e-4)


def _relax_by_definition(p, n_steps):
    """The update rule written pair by pair, as in the paper (the reference for relax)."""
    p = np.array(p, dtype=np.float64)
    for x in np.linspace(-3, 6, n_steps):
        c = (np.tanh(x) + 1) / 2
        move = np.zeros_like(p)
        for i in range(len(p)):
            for j in range(len(p)):
                d = max(np.linalg.norm(p[j] - p[i]), 0.01)
                move[i] += (p[j] - p[i]) * c * force(d) / 2
        p += move / len(p)
    return p


@pytest.mark.parametrize("chunk", [1, 3, 128])
def test_relax_matches_the_pairwise_definition_across_strips(chunk):
    # chunks smaller than N exercise the symmetric half of the computation
    p = np.random.default_rng(3).random((7, 2))
    np.testing.assert_allclose(relax(p, n_steps=4, rescale=False, chunk=chunk),
                               _relax_by_definition(p, 4), rtol=1e-4, atol=1e-5)


def test_scale_unit_rescales_each_axis_separately():
    p = scale_unit(np.array([[0.0, 10.0], [2.0, 10.5], [1.0, 11.0]]))
    np.testing.assert_allclose(p, [[0.0, 0.0], [1.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(scale_unit(np.array([[1.0, 3.0], [2.0, 3.0]])), [[0.0, 0.0], [1.0, 0.0]])


def test_relax_spreads_and_rescales():
    rng = np.random.default_rng(0)
    p = scale_unit(rng.normal(size=(60, 2)) * 0.01)
    out = relax(p, 200)
    assert (out.min(axis=0) == 0).all() and (out.max(axis=0) == 1).all(), "each axis fills [0, 1]"
    d = np.linalg.norm(out[:, None] - out[None], axis=-1) + np.eye(60)
    d0 = np.linalg.norm(p[:, None] - p[None], axis=-1) + np.eye(60)
    assert d.min() > d0.min()  # no two particles are left on top of each other
    with pytest.raises(ValueError, match="positions"):
        relax(np.zeros((3, 3)))


def test_channel_profiles_and_render():
    profiles = np.arange(24.0).reshape(3, 4, 2)  # 3 groups, 4 channels, 2 positions
    assert channel_profiles(profiles).shape == (4, 6)
    pos = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    values = np.array([[0, 1, 2, 3.0]])
    maps = render_maps(values, pos, resolution=3)
    # bilinear-like plane v = x + 2y is linear, so interpolation is exact
    np.testing.assert_allclose(maps[0], [[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]], atol=1e-12)


def test_color_limit():
    v = np.concatenate([np.linspace(-1, 1, 1001), [-50.0]])
    assert color_limit(v, "max") == 50
    lim = color_limit(v, "percentile")
    assert 0.98 < lim < 1.0
    assert color_limit(np.array([0.0, 2.0, -0.5]), "max") == 2


def test_plot_map_grid_lays_out_like_the_count_table():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from fairlib.topomap import plot_map_grid

    labels = pd.DataFrame({"age": pd.Categorical(["y", "o", "y"], categories=["y", "o"]),
                           "style": pd.Categorical(["A", "A", "B"], categories=["A", "B"])})
    maps = np.arange(3 * 4 * 4, dtype=float).reshape(3, 4, 4)
    fig = plot_map_grid(maps, labels, rows="style", cols="age", vmax=1.0, title="t")
    grid = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(grid) == 4  # 2 styles x 2 ages, one cell (B, o) empty
    assert [len(ax.images) for ax in grid] == [1, 1, 1, 0]
    assert grid[1].get_title() == "o" and grid[2].get_ylabel() == "B"
    np.testing.assert_array_equal(grid[1].images[0].get_array(), maps[1])
    plt.close(fig)
    with pytest.raises(ValueError, match="labels"):
        plot_map_grid(maps[:2], labels, rows="style", cols="age", vmax=1.0)


def test_plot_map_grid_marks_groups_with_few_images():
    import matplotlib

    matplotlib.use("Agg")
    labels = pd.DataFrame({"age": pd.Categorical(["young", "old"], categories=["young", "old"]), "count": [3, 40]})
    fig = plot_map_grid(np.zeros((2, 4, 4)), labels, rows=[], cols="age", vmax=1.0, min_count=5)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == ["n=3"], "only the group below min_count is marked"
    fig = plot_map_grid(np.zeros((2, 4, 4)), labels.drop(columns="count"), rows=[], cols="age", vmax=1.0)
    assert not [t for ax in fig.axes for t in ax.texts], "without counts nothing is marked"


def test_plot_map_grids_gives_one_figure_per_level_with_its_own_maps():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fairlib.topomap import plot_map_grids

    labels = pd.DataFrame({"age": pd.Categorical(["y", "o", "y", "o"], categories=["y", "o"]),
                           "style": pd.Categorical(["B", "B", "A", "A"], categories=["A", "B"])})
    maps = np.arange(4 * 2 * 2, dtype=float).reshape(4, 2, 2)
    figs = plot_map_grids(maps, labels, split="style", rows=[], cols="age", vmax=1.0, title="t")
    assert [f._suptitle.get_text() for f in figs] == ["t\nstyle = A", "t\nstyle = B"]  # categorical order
    first = [ax for ax in figs[0].axes if ax.get_label() != "<colorbar>"]
    # style A holds rows 2 (y) and 3 (o) of the input, in the column order y, o
    np.testing.assert_array_equal(first[0].images[0].get_array(), maps[2])
    np.testing.assert_array_equal(first[1].images[0].get_array(), maps[3])
    for f in figs:
        plt.close(f)
    with pytest.raises(ValueError, match=r"split: unknown variable 'gender'; labels has columns \['age', 'style'\]"):
        plot_map_grids(maps, labels, split="gender", rows=[], cols="age", vmax=1.0)


def test_topographic_layout_drops_features_no_channel_departs_on():
    # the authors' rule: features (group x position) whose largest magnitude over channels is at
    # most 0.01 do not enter UMAP, so near-zero positions leave the layout exactly unchanged
    from fairlib.topomap import topographic_layout

    rng = np.random.default_rng(0)
    informative = rng.normal(size=(6, 20, 1))  # 6 groups, 20 channels, one position
    flat = rng.uniform(-0.005, 0.005, size=(6, 20, 1))
    with_flat = np.concatenate([informative, flat], axis=2)
    a = topographic_layout(with_flat, n_steps=5, seed=0)
    b = topographic_layout(informative, n_steps=5, seed=0)
    np.testing.assert_allclose(a, b)
    kept_all = topographic_layout(with_flat, n_steps=5, seed=0, min_feature=0)
    assert kept_all.shape == (20, 2)
    with pytest.raises(ValueError, match=r"no feature of the NAPs exceeds 0.01 .*min_feature=0"):
        topographic_layout(flat, n_steps=5, seed=0)
