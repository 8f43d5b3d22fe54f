r"""Neuron Activation Profiles (NAPs; Krug & Stober 2025, Sec. 4.2 and 5.4).

For a group :math:`G` of inputs and a layer :math:`l`,

.. math::

    \overline{A_l(G)} = \frac{1}{|G|}\sum_{a\in A_l(G)} a, \qquad
    \mathbb E(\overline{A_l}) = \frac{1}{\sum_{G\in\mathbf G}|G|}\sum_{G\in\mathbf G}\sum_{a\in A_l(G)} a,
    \qquad NAP_l(G) = \overline{A_l(G)} - \mathbb E(\overline{A_l}),

i.e. the expected activation is the group-size-weighted mean of the group means.
:func:`neuron_activation_profiles` computes them in memory; :class:`StreamingNAPs` consumes
batches and keeps only per-group float64 sums (memory O(groups x layer size)).
:func:`union_profiles` gives NAPs of unions of groups normalised with the *intersectional*
groups' expected activation, as the paper does. :func:`variance_share` says how much of a
layer's activation variance the (intersectional or union) NAPs carry,

.. math::

    \eta^2_l = \frac{\sum_{G} |G|\,\lVert NAP_l(G)\rVert^2}
                     {\sum_{x} \lVert A_l(x) - \mathbb E(\overline{A_l})\rVert^2},

the between-group share of the total variance (a cheap, training-free separability criterion
for choosing a layer; under no group effect it is about ``(n_groups - 1) / (N - 1)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["neuron_activation_profiles", "StreamingNAPs", "union_profiles", "variance_share"]


def _as_groups(groups, n: int) -> np.ndarray:
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups: expected one label per example, shape ({n},), got {g.shape}")
    return g


def neuron_activation_profiles(activations, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NAPs of every group present in ``groups``.

    Parameters
    ----------
    activations
        ``(N, ...)`` activations of one layer (array, memmap or tensor).
    groups
        ``(N,)`` group labels (any sortable type).

    Returns
    -------
    profiles : numpy.ndarray
        ``(n_groups, ...)``: group mean minus expected activation (float64).
    expected : numpy.ndarray
        ``(...)``: mean over all instances of all groups.
    group_labels : numpy.ndarray
        Sorted unique labels, the row order of ``profiles``.
    """
    a = np.asarray(activations.detach().cpu() if hasattr(activations, "detach") else activations)
    g = _as_groups(groups, len(a))
    s = StreamingNAPs()
    s.update(a, g)
    return s.result()


class StreamingNAPs:
    """NAPs from batches: per-group running sums and counts in float64.

    Memory is ``O(n_groups x layer size)`` whatever the number of examples. A per-feature sum
    of squares (over all examples) is kept as well, for :meth:`total_variance`.

    Examples
    --------
    >>> s = StreamingNAPs()
    >>> for xb, gb in batches:           # doctest: +SKIP
    ...     s.update(xb, gb)
    >>> profiles, expected, labels = s.result()  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._sums: dict = {}
        self._counts: dict = {}
        self._sumsq: np.ndarray | None = None
        self.shape: tuple[int, ...] | None = None

    def update(self, activations, groups) -> "StreamingNAPs":
        """Add a batch: ``activations`` ``(B, ...)``, ``groups`` ``(B,)``."""
        a = activations.detach().cpu().numpy() if hasattr(activations, "detach") else np.asarray(activations)
        g = _as_groups(groups, len(a))
        if self.shape is None:
            self.shape = tuple(a.shape[1:])
        elif tuple(a.shape[1:]) != self.shape:
            raise ValueError(f"activations: per-example shape {a.shape[1:]} differs from the "
                             f"earlier batches' {self.shape}")
        flat = a.reshape(len(a), -1)
        sq = np.einsum("nd,nd->d", flat, flat, dtype=np.float64)
        self._sumsq = sq if self._sumsq is None else self._sumsq + sq
        labels, inverse = np.unique(g, return_inverse=True)
        for j, lab in enumerate(labels):
            rows = flat[inverse == j]
            key = lab.item() if hasattr(lab, "item") else lab
            if key not in self._sums:
                self._sums[key] = np.zeros(flat.shape[1], np.float64)
                self._counts[key] = 0
            self._sums[key] += rows.sum(axis=0, dtype=np.float64)
            self._counts[key] += len(rows)
        return self

    @property
    def counts(self) -> pd.Series:
        """Examples seen per group."""
        keys = sorted(self._counts)
        return pd.Series([self._counts[k] for k in keys], index=keys, name="count")

    def means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(group means, counts, sorted labels)``."""
        if not self._sums:
            raise ValueError("StreamingNAPs: no data yet; call update() first")
        keys = sorted(self._sums)
        sums = np.stack([self._sums[k] for k in keys])
        counts = np.array([self._counts[k] for k in keys], np.int64)
        return (sums / counts[:, None]).reshape(len(keys), *self.shape), counts, np.array(keys)

    def total_variance(self) -> np.ndarray:
        """Per-feature variance over all examples seen, shape ``self.shape`` (population
        variance, i.e. divided by ``N``)."""
        means, counts, _ = self.means()
        n = counts.sum()
        mean = np.tensordot(counts / n, means, axes=1)
        return np.maximum(self._sumsq.reshape(self.shape) / n - mean ** 2, 0.0)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(profiles, expected, group_labels)`` as in :func:`neuron_activation_profiles`."""
        means, counts, keys = self.means()
        # group-size-weighted mean of group means = mean over all instances
        expected = np.tensordot(counts / counts.sum(), means, axes=1)
        return means - expected, expected, keys


def union_profiles(activations_or_nap, groups=None, *, table: pd.DataFrame,
                   by: Sequence[str] | str, group_ids: np.ndarray | None = None
                   ) -> tuple[np.ndarray, pd.DataFrame]:
    """NAPs of unions of intersectional groups that share the categories of ``by``.

    The union's mean is the size-weighted mean of its member groups' means; it is normalised
    with the expected activation of *all intersectional groups* (the paper's choice), so
    union and intersection maps share one reference.

    Parameters
    ----------
    activations_or_nap
        A fitted :class:`StreamingNAPs` (preferred: no second pass), or ``(N, ...)``
        activations together with ``groups``.
    groups
        ``(N,)`` intersectional group ids (rows of ``table``), when activations are given.
    table
        One row per intersectional group (``fairlib.data.intersectional_groups``), with the
        variables as columns; row ``i`` is group id ``i``.
    by
        One or two variables the unions share, e.g. ``"age"`` or ``["age", "style"]``.

    Returns
    -------
    profiles : numpy.ndarray
        ``(n_unions, ...)``.
    unions : pandas.DataFrame
        One row per union (non-empty only), in category order: the ``by`` columns
        (Categorical with the table's categories where the table's are) and ``count``.
    """
    by = [by] if isinstance(by, str) else list(by)
    missing = [v for v in by if v not in table.columns]
    if missing:
        raise ValueError(f"by: {missing} not in table; columns are {list(table.columns)}")
    if isinstance(activations_or_nap, StreamingNAPs):
        s = activations_or_nap
    else:
        if groups is None:
            raise ValueError("groups: pass group ids together with activations")
        a = np.asarray(activations_or_nap)
        s = StreamingNAPs().update(a, _as_groups(groups, len(a)))
    means, counts, keys = s.means()
    if keys.min() < 0 or keys.max() >= len(table):
        raise ValueError(f"groups: ids must be rows of table (0..{len(table) - 1})")
    expected = np.tensordot(counts / counts.sum(), means, axes=1)
    sub = table.iloc[keys][by].reset_index(drop=True)
    sub["_n"] = counts
    rows, profiles = [], []
    for cats, part in sub.groupby(by, observed=True, sort=True):
        w = part["_n"].to_numpy(np.float64)
        m = np.tensordot(w / w.sum(), means[part.index.to_numpy()], axes=1)
        profiles.append(m - expected)
        cats = cats if isinstance(cats, tuple) else (cats,)
        rows.append({**dict(zip(by, cats)), "count": int(w.sum())})
    out = pd.DataFrame(rows)
    for v in by:  # keep the table's categories (and their order) for plotting
        if isinstance(table[v].dtype, pd.CategoricalDtype):
            out[v] = pd.Categorical(out[v], categories=table[v].cat.categories)
    return np.stack(profiles), out


def variance_share(nap: StreamingNAPs, *, table: pd.DataFrame | None = None,
                   by: Sequence[str] | str | None = None) -> float:
    r"""Between-group share of a layer's activation variance, :math:`\eta^2` (module doc).

    :math:`\eta^2 = \sum_G |G|\,\lVert NAP(G)\rVert^2 / \sum_x \lVert A(x) - \mathbb E\rVert^2`:
    0 when every group has the same mean activation, 1 when all variation lies between the
    group means. It is computed from one pass (:class:`StreamingNAPs`), needs no training,
    and weights each feature by its variance (trace ratio). Finite samples inflate it: with
    ``g`` groups and ``N`` examples and no group effect it is about ``(g - 1) / (N - 1)``.

    Parameters
    ----------
    nap
        A fitted :class:`StreamingNAPs` of one layer (intersectional group ids).
    table, by
        Optional: the share of the unions that share the categories of ``by``
        (:func:`union_profiles`) instead of the intersectional groups.

    Returns
    -------
    float
        In [0, 1].
    """
    if not isinstance(nap, StreamingNAPs):
        raise ValueError(f"nap: expected a fitted StreamingNAPs, got {type(nap).__name__}")
    if by is None:
        profiles, _, _ = nap.result()
        counts = nap.means()[1]
    else:
        if table is None:
            raise ValueError("table: pass the intersectional group table together with by")
        profiles, unions = union_profiles(nap, table=table, by=by)
        counts = unions["count"].to_numpy()
    flat = profiles.reshape(len(profiles), -1)
    between = float(np.dot(counts, np.einsum("gd,gd->g", flat, flat)))
    total = float(nap.total_variance().sum() * counts.sum())
    return between / total if total > 0 else 0.0
