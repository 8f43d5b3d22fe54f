r"""Topographic activation maps (Krug & Stober 2025, Sec. 4.2 "Visualization").

A layer's feature maps (channels) are placed in 2-D so that channels with similar profiles lie
close together, then each group's NAP is painted at those positions:

1. :func:`umap_positions`: UMAP of each channel's profile vector (its NAP values over the
   groups), scaled to [0, 1].
2. :func:`relax`: the paper's particle step that evens out the layout. With
   :math:`f(d) = 1.5\,(d+1)^{-3} - 15\,e^{-d/2}` (:func:`force`; attraction minus repulsion),
   at step :math:`s` of :math:`n` every particle moves by

   .. math::

      \Delta p_i = \frac{1}{|N|}\sum_{j\in N} (p_j - p_i)\,\frac{c_s\, f(d_{ij})}{2},\qquad
      c_s = \frac{\tanh(x_s) + 1}{2},\; x_s \in \mathrm{linspace}(-3, 6, n),

   with :math:`d_{ij}` the Euclidean distance clipped below at 0.01 (the :math:`j = i` term is
   zero); the result is rescaled to [0, 1]. The sum is computed as a matrix product, so
   there is no Python loop over particles.
3. :func:`render_maps`: per group, each channel's spatially averaged NAP value at its
   position, linearly interpolated onto a 100 x 100 grid; :func:`color_limit` sets one
   0-symmetric scale per layer (0.5/99.5 percentile or the absolute maximum) and
   :func:`plot_map_grid` lays the maps out like the group-count table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from fairlib._validation import integer, number, positive_int, show, to_numpy

__all__ = [
    "plot_map_grids",
    "force",
    "relax",
    "scale_unit",
    "channel_profiles",
    "umap_positions",
    "topographic_layout",
    "render_maps",
    "color_limit",
    "plot_map_grid",
]


def _numeric(x: Any, name: str, *, finite: bool = True) -> np.ndarray:
    """``x`` as a float64 array, or a ``ValueError`` naming ``name`` (non-numbers, NaN/inf)."""
    arr = to_numpy(x, name)
    if arr.dtype.kind not in "iufb":
        raise ValueError(f"{name}: expected numbers, got {arr.dtype} values")
    arr = arr.astype(np.float64)
    if finite and not np.isfinite(arr).all():
        bad = arr[~np.isfinite(arr)][0]
        raise ValueError(f"{name}: contains {'NaN' if np.isnan(bad) else show(bad)}; pass finite values")
    return arr


def _positions(x: Any, name: str) -> np.ndarray:
    p = _numeric(x, name, finite=False)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 1:
        raise ValueError(f"{name}: expected shape (N, 2), got {p.shape}")
    return _numeric(p, name)


def force(d):
    """The paper's pairwise force :math:`1.5 (d+1)^{-3} - 15 e^{-d/2}` (negative = repulsion)."""
    if isinstance(d, torch.Tensor):
        return 1.5 * (d + 1) ** -3 - 15 * torch.exp(-d / 2)
    d = _numeric(d, "d")
    if (d < 0).any():
        raise ValueError(f"d: distances must be non-negative, found {show(d[d < 0][0])!r}")
    return 1.5 * (d + 1) ** -3 - 15 * np.exp(-d / 2)


def scale_unit(positions: np.ndarray) -> np.ndarray:
    """Shift and scale ``(N, 2)`` positions into [0, 1], each axis separately.

    As the authors' code (``iNNtrospect``, ``src/topomaps.py``: ``zero_one_feature_scaling``
    after UMAP and after the relaxation), so that a map fills its square on both axes; an axis
    without spread stays at 0.
    """
    p = _positions(positions, "positions")
    p = p - p.min(axis=0)
    span = p.max(axis=0)
    return np.divide(p, span, out=np.zeros_like(p), where=span > 0)


def relax(positions, n_steps: int = 1000, *, rescale: bool = True, chunk: int = 128) -> np.ndarray:
    """Spread particles evenly with the paper's attraction/repulsion steps (see module doc).

    Parameters
    ----------
    positions
        ``(N, 2)`` start positions (UMAP output scaled to [0, 1]).
    n_steps
        Number of steps (paper: 1000).
    rescale
        Rescale the result to [0, 1] (:func:`scale_unit`).
    chunk
        Rows of the ``N x N`` distance matrix computed at once; small chunks stay in cache.

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` float64 positions.
    """
    p0 = _positions(positions, "positions")
    n_steps = integer(n_steps, "n_steps", minimum=0)
    chunk = positive_int(chunk, "chunk")
    p = torch.from_numpy(p0).float()
    n = len(p)
    xs = np.linspace(-3, 6, n_steps) if n_steps else np.zeros(0)
    with torch.no_grad():
        for x in xs:
            c = (np.tanh(x) + 1) / 2
            step = torch.zeros_like(p)
            for a in range(0, n, chunk):
                # f(d_ij) is symmetric, so each strip of rows a:e needs only the columns j >= a:
                # it moves its own rows (sum_j w_ij (p_j - p_i) = w @ p - rowsum(w) p_i) and,
                # through the transpose, the rows j >= e, which halves the N x N work.
                e = min(a + chunk, n)
                pa, ps = p[a:e], p[a:]
                d = torch.cdist(pa, ps).clamp_(min=0.01)
                r = (d + 1).reciprocal_()
                w = r.mul_(r.square()).sub_(d.mul_(-0.5).exp_().mul_(10))  # f(d) / 1.5
                step[a:e] += w @ ps - w.sum(1, keepdim=True) * pa
                wt = w[:, e - a:]
                step[e:] += wt.t() @ pa - wt.sum(0).unsqueeze(1) * p[e:]
            p += step.mul_(1.5 * c / (2 * n))
    out = p.double().numpy()
    return scale_unit(out) if rescale else out


def channel_profiles(profiles: np.ndarray) -> np.ndarray:
    """Rearrange group NAPs ``(G, C, ...)`` into one vector per channel ``(C, G * ...)``."""
    a = to_numpy(profiles, "profiles")
    if a.ndim < 2:
        raise ValueError(f"profiles: expected (groups, channels, ...), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"profiles: is empty (shape {a.shape}); pass at least one group and channel")
    _numeric(a, "profiles")
    return np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)


def umap_positions(vectors: np.ndarray, seed: int = 0, n_neighbors: int = 15,
                   min_dist: float = 0.1) -> np.ndarray:
    """UMAP of ``(C, D)`` channel vectors to 2-D, scaled to [0, 1] (umap-learn)."""
    v = _numeric(vectors, "vectors").astype(np.float32)
    if v.ndim != 2 or len(v) < 4:
        raise ValueError(f"vectors: expected (channels >= 4, features), got shape {v.shape}")
    seed = integer(seed, "seed", minimum=0, allow_none=True)
    n_neighbors = integer(n_neighbors, "n_neighbors", minimum=2)
    number(min_dist, "min_dist", low=0, expected="a finite number >= 0")
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(v) - 1),
                        min_dist=min_dist, random_state=seed, n_jobs=1,
                        init="random" if len(v) < 16 else "spectral")
    return scale_unit(reducer.fit_transform(v))


def topographic_layout(profiles: np.ndarray, *, n_steps: int = 1000, seed: int = 0,
                       min_feature: float = 0.01) -> np.ndarray:
    """Channel positions for a layer: UMAP of :func:`channel_profiles`, then :func:`relax`.

    Parameters
    ----------
    profiles
        Group NAPs ``(G, C)`` (spatially averaged) or ``(G, C, H, W)``; finite values.
    n_steps
        Relaxation steps: the paper's text says 1000, the authors' code (``distribute_to_circle``)
        runs 100 by default.
    min_feature
        Before UMAP, drop the features (one group at one spatial position) whose largest magnitude
        over all channels is at most this, as the authors' code does (0.01): positions where no
        channel departs from its expected activation only add noise to the distances. ``0``
        keeps every feature that is not exactly zero everywhere.

    Returns
    -------
    numpy.ndarray
        ``(C, 2)`` in [0, 1].

    Raises
    ------
    ValueError
        If no feature exceeds ``min_feature`` (activations on a much smaller scale, e.g. a randomly
        initialised network): the message gives the largest magnitude and says to lower it.
    """
    n_steps = integer(n_steps, "n_steps", minimum=0)
    number(min_feature, "min_feature", low=0, expected="a magnitude >= 0 (the authors' code: 0.01)")
    vectors = channel_profiles(profiles)
    keep = np.abs(vectors).max(axis=0) > min_feature
    if not keep.any():
        raise ValueError(f"min_feature: no feature of the NAPs exceeds {min_feature:g} in magnitude (the largest is "
                         f"{np.abs(vectors).max():.3g}); pass a smaller min_feature, e.g. min_feature=0")
    return relax(umap_positions(vectors[:, keep], seed=seed), n_steps)


def render_maps(values: np.ndarray, positions: np.ndarray, resolution: int = 100) -> np.ndarray:
    """Interpolate per-channel values onto a grid, one map per group.

    Parameters
    ----------
    values
        ``(G, C)`` each channel's spatially averaged NAP value per group (``(G, C, H, W)``
        inputs are averaged over space first). A NaN value (a group without data) gives NaN
        around that channel in that group's map.
    positions
        ``(C, 2)`` in [0, 1] (:func:`topographic_layout`).
    resolution
        Grid side (paper: 100).

    Returns
    -------
    numpy.ndarray
        ``(G, resolution, resolution)``; NaN outside the channels' convex hull. Row 0 is
        ``y = 0``.
    """
    from scipy.interpolate import LinearNDInterpolator

    resolution = positive_int(resolution, "resolution", meaning="(grid side)")
    v = _numeric(values, "values", finite=False)
    if v.ndim > 2:
        v = v.reshape(v.shape[0], v.shape[1], -1).mean(axis=2)
    pos = _numeric(positions, "positions")
    if v.ndim != 2 or pos.shape != (v.shape[1], 2):
        raise ValueError(f"values/positions: need (G, C) and (C, 2), got {v.shape} and {pos.shape}")
    g = np.linspace(0, 1, resolution)
    gx, gy = np.meshgrid(g, g)
    # one triangulation for all groups (what griddata(method="linear") builds per call)
    interp = LinearNDInterpolator(pos, v.T)
    out = interp(np.column_stack([gx.ravel(), gy.ravel()]))  # (R*R, G)
    return out.T.reshape(len(v), resolution, resolution)


def color_limit(values: np.ndarray, mode: str = "percentile") -> float:
    """End of the 0-symmetric colour scale shared by all maps of a layer.

    ``"percentile"``: the 0.5th or 99.5th percentile of all values, whichever has the larger
    magnitude (the paper's contrast setting); ``"max"``: the largest absolute value.
    """
    v = _numeric(values, "values", finite=False)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("values: no finite values")
    if mode == "max":
        lim = np.abs(v).max()
    elif mode == "percentile":
        lo, hi = np.percentile(v, [0.5, 99.5])
        lim = max(abs(lo), abs(hi))
    else:
        raise ValueError(f"mode: expected 'percentile' or 'max', got {mode!r}")
    return float(lim) if lim > 0 else 1.0


def plot_map_grid(maps: np.ndarray, labels: pd.DataFrame, rows: Sequence[str] | str,
                  cols: Sequence[str] | str, *, vmax: float, title: str = "",
                  cell: float = 0.9, cmap: str = "bwr", min_count: int = 5) -> Any:
    """Draw maps in a table: one row per combination of ``rows`` variables, one column per
    combination of ``cols`` (like the group-count table), one shared colour scale.

    Parameters
    ----------
    maps
        ``(G, R, R)`` from :func:`render_maps`.
    labels
        ``G`` rows with the variables as columns (categorical order is respected).
    rows, cols
        Variables on each axis (``[]`` for a single row or column).
    vmax
        Colour scale end (:func:`color_limit`); the scale is ``[-vmax, vmax]``.
    min_count
        When ``labels`` has a ``count`` column, maps of groups with fewer images carry their count
        in a grey corner label ("n=3"): a mean of so few images is mostly noise.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if not isinstance(labels, pd.DataFrame):
        raise TypeError(f"labels: expected a DataFrame with one row per map, got {type(labels).__name__}")
    maps = to_numpy(maps, "maps")
    if maps.ndim != 3:
        raise ValueError(f"maps: expected (G, R, R) maps from render_maps, got shape {maps.shape}")
    rows = [rows] if isinstance(rows, str) else list(rows)
    cols = [cols] if isinstance(cols, str) else list(cols)
    for name, vs in (("rows", rows), ("cols", cols)):
        unknown = [v for v in vs if v not in labels.columns]
        if unknown:
            raise ValueError(f"{name}: unknown variable(s) {unknown}; labels has columns {list(labels.columns)}")
    number(vmax, "vmax", low=0, low_open=True, expected="a positive finite colour limit (see color_limit)")
    number(cell, "cell", low=0, low_open=True, expected="a positive size in inches")
    import matplotlib

    if isinstance(cmap, str) and cmap not in matplotlib.colormaps:
        raise ValueError(f"cmap: unknown colour map {cmap!r}; e.g. 'bwr', 'RdBu_r', 'coolwarm' "
                         "(list(matplotlib.colormaps) has them all)")
    if len(labels) != len(maps):
        raise ValueError(f"labels: {len(labels)} rows for {len(maps)} maps")

    def levels(vs):
        if not vs:
            return [()]
        cats = [list(labels[v].cat.categories) if isinstance(labels[v].dtype, pd.CategoricalDtype)
                else sorted(labels[v].unique()) for v in vs]
        grid = pd.MultiIndex.from_product(cats).tolist()
        present = set(map(tuple, labels[vs].astype(object).itertuples(index=False)))
        return [k if isinstance(k, tuple) else (k,) for k in grid if (k if isinstance(k, tuple) else (k,)) in present]

    min_count = integer(min_count, "min_count", minimum=0)
    counts = labels["count"].to_numpy().astype(int) if "count" in labels.columns else None
    rlev, clev = levels(rows), levels(cols)
    pos = {}
    for i, rec in enumerate(labels.astype(object).itertuples(index=False)):
        d = rec._asdict()
        pos[(tuple(d[v] for v in rows), tuple(d[v] for v in cols))] = i
    # constrained layout keeps the title, row labels and colour bar clear of the maps; a
    # minimum width leaves room for a two-line title above a grid of only a few maps
    width = max(cell * len(clev) + 1.4, 5.0)
    fig, axes = plt.subplots(len(rlev), len(clev), figsize=(width, cell * len(rlev) + 0.9),
                             squeeze=False, layout="constrained")
    im = None
    for r, rk in enumerate(rlev):
        for c, ck in enumerate(clev):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            i = pos.get((rk, ck))
            if i is not None:
                im = ax.imshow(maps[i], origin="lower", cmap=cmap, vmin=-vmax, vmax=vmax,
                               interpolation="nearest")
                if counts is not None and counts[i] < min_count:
                    ax.text(0.03, 0.03, f"n={counts[i]}", transform=ax.transAxes, fontsize=6, color="0.2",
                            bbox={"facecolor": "0.85", "edgecolor": "none", "pad": 1})
            if r == 0:
                ax.set_title("\n".join(map(str, ck)), fontsize=7)
            if c == 0:
                ax.set_ylabel(", ".join(map(str, rk)), fontsize=7, rotation=0, ha="right", va="center")
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=min(0.9, 0.45 + 0.15 * len(rlev)), aspect=15,
                     label="NAP (shared scale)")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_map_grids(maps: np.ndarray, labels: pd.DataFrame, *, split: str, rows: Sequence[str] | str,
                   cols: Sequence[str] | str, vmax: float, title: str = "", **kwargs: Any) -> list:
    """:func:`plot_map_grid` once per level of ``split``: figures narrow enough for a book page.

    The 126 maps of three variables in one grid (7 rows, 18 columns) are too small to read at a
    page's width; one figure per level of the two-level variable gives 7 × 9 grids of twice the
    size. Every figure keeps the same colour scale ``vmax``, so they compare directly.

    Returns
    -------
    list of matplotlib.figure.Figure
        One per level of ``split`` present in ``labels``, in categorical order; each title ends
        with ``"split = level"``.
    """
    if not isinstance(labels, pd.DataFrame):
        raise TypeError(f"labels: expected a DataFrame with one row per map, got {type(labels).__name__}")
    if split not in labels.columns:
        raise ValueError(f"split: unknown variable {split!r}; labels has columns {list(labels.columns)}")
    maps = to_numpy(maps, "maps")
    if len(labels) != len(maps):
        raise ValueError(f"labels: {len(labels)} rows for {len(maps)} maps")
    column = labels[split]
    order = (list(column.cat.categories) if isinstance(column.dtype, pd.CategoricalDtype)
             else sorted(column.unique()))
    figures = []
    for level in order:
        keep = (column == level).to_numpy()
        if keep.any():
            head = f"{title}\n" if title else ""
            figures.append(plot_map_grid(maps[keep], labels[keep].reset_index(drop=True), rows, cols,
                                         vmax=vmax, title=f"{head}{split} = {level}", **kwargs))
    return figures
