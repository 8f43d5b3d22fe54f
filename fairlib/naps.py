r"""Neuron Activation Profiles (NAPs; Krug & Stober 2025, Sec. 4.2 and 5.4).

For a group :math:`G` of inputs and a layer :math:`l`,

.. math::

    \overline{A_l(G)} = \frac{1}{|G|}\sum_{a\in A_l(G)} a, \qquad
    \qquad NAP_l(G) = \overline{A_l(G)} - \mathbb E(\overline{A_l}),

where the expected activation :math:`\mathbb E` is, by default, the unweighted mean of the group
means, :math:`\frac{1}{|\mathbf G|}\sum_G \overline{A_l(G)}` (the authors' code,
``expected="group_mean"``); the paper's text defines it as the mean over all instances, the
group-size-weighted mean :math:`\frac{1}{\sum_G|G|}\sum_G |G|\,\overline{A_l(G)}`
(``expected="overall"``).
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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairlib._memo import Memo
from fairlib._validation import integer, positive_int, renamed, to_numpy
from fairlib.activations import PAPER_LAYERS  # re-exported: the chapter draws these layers

__all__ = ["neuron_activation_profiles", "expected_activation", "EXPECTED",
           "StreamingNAPs", "union_profiles", "variance_share", "stream_naps",
           "layer_shares", "category_contrast", "SETTINGS", "NapSample", "nap_sample", "analysed_layers",
           "run_layer_shares", "layer_shares_grid", "shared_network", "PAPER_LAYERS"]


def _as_activations(activations, name: str = "activations") -> np.ndarray:
    """``(N, ...)`` numeric activations as numpy (a tensor on any device, a memmap or a list); N >= 1."""
    if activations is None:
        raise ValueError(f"{name}: got None; pass the (N, ...) activations of one layer")
    a = to_numpy(activations, name)
    if a.ndim == 0 or len(a) == 0:
        raise ValueError(f"{name}: expected (N, ...) activations with N >= 1, got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected numbers, got dtype {a.dtype}")
    return a


def _frame(table, name: str = "table") -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{name}: expected a pandas DataFrame (intersectional_groups' table), "
                         f"got {type(table).__name__}")
    return table


def _columns(names, table: pd.DataFrame, name: str) -> list:
    """Column names: a list (a string is refused with the fix), each a column of ``table``."""
    if isinstance(names, str) or not isinstance(names, (Sequence, np.ndarray, pd.Index)):
        raise ValueError(f"{name}: expected a list of column names, got {names!r}; write e.g. [{names!r}]")
    missing = [v for v in names if v not in table.columns]
    if missing:
        raise ValueError(f"{name}: {missing} not in table; columns are {list(table.columns)}")
    return list(names)




def _as_groups(groups, n: int) -> np.ndarray:
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups: expected one label per example, shape ({n},), got {g.shape}")
    return g


def neuron_activation_profiles(activations, groups, *, expected: str | Any = "group_mean"
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""NAPs of every group present in ``groups``: :math:`NAP(G) = \overline{A(G)} - \mathbb E`.

    Parameters
    ----------
    activations
        ``(N, ...)`` activations of one layer (array, memmap or tensor).
    groups
        ``(N,)`` group labels (any sortable type).
    expected
        The reference :math:`\mathbb E` (see :func:`expected_activation`): ``"group_mean"``
        (default, the authors' code: the unweighted mean of the group means), ``"overall"`` (the
        paper's formula: the mean over all examples, i.e. the size-weighted mean of the group
        means) or an array of the layer's shape, used as given.

    Returns
    -------
    profiles : numpy.ndarray
        ``(n_groups, ...)``: group mean minus the expected activation (float64).
    expected : numpy.ndarray
        ``(...)``: the reference used.
    group_labels : numpy.ndarray
        Sorted unique labels, the row order of ``profiles``.
    """
    a = _as_activations(activations)
    g = _as_groups(groups, len(a))
    s = StreamingNAPs()
    s.update(a, g)
    return s.result(expected=expected)


#: The named references :func:`expected_activation` knows.
EXPECTED = ("group_mean", "overall")


def expected_activation(means: np.ndarray, counts: np.ndarray, expected: str | Any = "group_mean") -> np.ndarray:
    r"""The reference :math:`\mathbb E` of the NAPs, from the group means ``(G, ...)`` and sizes ``(G,)``.

    ``"group_mean"``: :math:`\frac1{|\mathbf G|}\sum_G \overline{A(G)}`, every group counting
    once, as the authors' code computes it (``iNNtrospect``, ``src/naps.py``); ``"overall"``:
    :math:`\sum_G \frac{|G|}{\sum_H |H|}\overline{A(G)}`, the mean over all examples, the paper's
    formula (Sec. 3). They differ when groups differ in size. An array of the means' per-group
    shape is returned as given (e.g. the intersectional groups' reference for their unions).
    """
    if isinstance(expected, str):
        if expected == "group_mean":
            return means.mean(axis=0)
        if expected == "overall":
            return np.tensordot(counts / counts.sum(), means, axes=1)
        raise ValueError(f"expected: unknown reference {expected!r}; choose one of {list(EXPECTED)} or pass an "
                         "array of the layer's shape")
    ref = np.asarray(expected, dtype=np.float64)
    if ref.shape != means.shape[1:]:
        raise ValueError(f"expected: an array must have the layer's shape {means.shape[1:]}, got {ref.shape}")
    if not np.isfinite(ref).all():
        raise ValueError("expected: holds NaN or inf")
    return ref


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
        a = _as_activations(activations)
        g = _as_groups(groups, len(a))
        if self.shape is None:
            self.shape = tuple(a.shape[1:])
        elif tuple(a.shape[1:]) != self.shape:
            raise ValueError(f"activations: per-example shape {a.shape[1:]} differs from the "
                             f"earlier batches' {self.shape}")
        flat = a.reshape(len(a), -1)
        if flat.dtype.kind == "f" and not np.isfinite(flat).all():
            row = int(np.flatnonzero(~np.isfinite(flat).all(axis=1))[0])
            raise ValueError(f"activations: example {row} of this batch holds NaN or inf; a NAP (and eta^2) of "
                             "non-finite activations is meaningless: check the inputs and the model")
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

    def result(self, expected: str | Any = "group_mean") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(profiles, expected, group_labels)`` as in :func:`neuron_activation_profiles` (same ``expected``)."""
        means, counts, keys = self.means()
        reference = expected_activation(means, counts, expected)
        return means - reference, reference, keys


def union_profiles(activations_or_nap, groups=None, *, table: pd.DataFrame,
                   by: Sequence[str] | str, group_ids: np.ndarray | None = None,
                   expected: str | Any = "group_mean") -> tuple[np.ndarray, pd.DataFrame]:
    """NAPs of unions of intersectional groups that share the categories of ``by``.

    The union's mean is the size-weighted mean of its member groups' means; it is normalised
    with the expected activation of *all intersectional groups* (the paper's choice, Sec. 5.4),
    computed as ``expected`` says (:func:`expected_activation`; default the authors'
    ``"group_mean"``), so union and intersection maps share one reference.

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
    table = _frame(table)
    by = [by] if isinstance(by, str) else list(by) if isinstance(by, (Sequence, np.ndarray, pd.Index)) else by
    if not isinstance(by, list) or not by:
        raise ValueError(f"by: expected one or two column names of table, got {by!r}; "
                         f"columns are {list(table.columns)}")
    missing = [v for v in by if v not in table.columns]
    if missing:
        raise ValueError(f"by: {missing} not in table; columns are {list(table.columns)}")
    if group_ids is not None:
        raise ValueError("group_ids: not used; pass the group ids as groups (with activations) or a fitted "
                         "StreamingNAPs")
    if isinstance(activations_or_nap, StreamingNAPs):
        s = activations_or_nap
    else:
        if groups is None:
            raise ValueError("groups: pass group ids together with activations")
        a = _as_activations(activations_or_nap, "activations_or_nap")
        s = StreamingNAPs().update(a, _as_groups(groups, len(a)))
    means, counts, keys = s.means()
    if keys.dtype.kind == "f" and (keys == np.round(keys)).all():
        keys = keys.astype(np.int64)
    if keys.dtype.kind not in "iu":
        raise ValueError(f"groups: expected integer group ids (rows of table), got {keys[:3].tolist()!r}")
    if keys.min() < 0 or keys.max() >= len(table):
        raise ValueError(f"groups: ids must be rows of table (0..{len(table) - 1})")
    reference = expected_activation(means, counts, expected)  # of the intersectional groups
    sub = table.iloc[keys][by].reset_index(drop=True)
    sub["_n"] = counts
    rows, profiles = [], []
    for cats, part in sub.groupby(by, observed=True, sort=True):
        w = part["_n"].to_numpy(np.float64)
        m = np.tensordot(w / w.sum(), means[part.index.to_numpy()], axes=1)
        profiles.append(m - reference)
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
    if by is None and table is not None:
        raise ValueError("by: pass the variable(s) whose unions to measure together with table, e.g. by='age'; "
                         "without table and by, the intersectional groups are measured")
    # the between/total decomposition holds around the mean over all examples ("overall"),
    # whatever reference the maps use
    if by is None:
        profiles, _, _ = nap.result(expected="overall")
        counts = nap.means()[1]
    else:
        if table is None:
            raise ValueError("table: pass the intersectional group table together with by")
        profiles, unions = union_profiles(nap, table=table, by=by, expected="overall")
        counts = unions["count"].to_numpy()
    flat = profiles.reshape(len(profiles), -1)
    between = float(np.dot(counts, np.einsum("gd,gd->g", flat, flat)))
    total = float(nap.total_variance().sum() * counts.sum())
    return between / total if total > 0 else 0.0


# --------------------------------------------------------------------------- streaming a network (Chapter 4)
def stream_naps(model: Any, data: Any, groups: np.ndarray, layers: Mapping[str, str], *,
                transform: Callable | None = None, batch_size: int = 256, num_workers: int = 0,
                device: Any = None, show_progress: bool = False, spatial: str = "mean") -> dict[str, StreamingNAPs]:
    """One pass of ``data`` through ``model``: the NAPs of every layer in ``layers``.

    Parameters
    ----------
    model
        A network; ``layers`` maps display names to its module names
        (:func:`fairlib.activations.layer_preset`).
    data
        A dataset of ``(image, ...)`` items in the order of ``groups`` (e.g. a ``Subset``).
    groups
        ``(N,)`` intersectional group id of each item.
    transform
        The network's batch transform (after images become [0, 1] floats).
    spatial
        ``"mean"``: each channel's spatial mean, ``(C,)`` per example (the maps' values, and all
        that eta^2 needs); ``"full"``: the whole ``(C, H, W)`` map, as the authors' code keeps for
        the layout (a channel's profile then spans groups x positions). Memory is
        ``groups x C x H x W`` float64 per layer.

    Returns
    -------
    dict
        Layer name -> fitted :class:`StreamingNAPs` of ``(N, C)`` channel means or ``(N, C, H, W)`` maps.
    """
    import torch

    from fairlib.activations import ActivationExtractor, spatial_mean
    from fairlib.config import get_device
    from fairlib.notebook import progress

    if not isinstance(layers, Mapping) or not layers:
        raise ValueError(f"layers: expected a non-empty mapping {{display name: module name}} "
                         f"(fairlib.activations.layer_preset), got {layers!r}")
    batch_size = positive_int(batch_size, "batch_size")
    num_workers = integer(num_workers, "num_workers", minimum=0, meaning="(0: load in this process)")
    if transform is not None and not callable(transform):
        raise ValueError(f"transform: expected a function of a batch or None, got {type(transform).__name__}")
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise ValueError(f"data: expected a dataset of (image, ...) items, got {type(data).__name__}")
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"groups: expected one group id per item, shape (N,), got {groups.shape}")
    if len(groups) != len(data):
        raise ValueError(f"groups: {len(groups)} group ids for {len(data)} items; pass one per item, in order")
    if spatial not in ("mean", "full"):
        raise ValueError(f"spatial: expected 'mean' or 'full', got {spatial!r}")
    device = torch.device(device) if device is not None else get_device()
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    out = {layer: StreamingNAPs() for layer in layers}
    start = 0
    reduce = (lambda t: spatial_mean(t.float())) if spatial == "mean" else (lambda t: t.float())
    with ActivationExtractor(model, dict(layers), device=device, reduce=reduce) as ex:
        for batch in (progress(loader, desc="NAPs") if show_progress else loader):
            xb = (batch[0] if isinstance(batch, (tuple, list)) else batch).to(device)
            xb = xb.float() / 255 if xb.dtype == torch.uint8 else xb
            for layer, acts in ex(transform(xb) if transform is not None else xb).items():
                out[layer].update(acts, groups[start:start + len(xb)])
            start += len(xb)
    return out


def layer_shares(naps: Mapping[str, StreamingNAPs], table: pd.DataFrame, variables: Sequence[str]) -> pd.DataFrame:
    """:func:`variance_share` of every layer: all intersectional groups, and the unions of each variable.

    Columns ``layer``, ``channels``, ``eta2 (all N groups)``, ``eta2 (<variable>)`` per variable.
    """
    if not isinstance(naps, Mapping) or not naps:
        raise ValueError(f"naps: expected a non-empty mapping {{layer: StreamingNAPs}} (stream_naps), "
                         f"got {type(naps).__name__}")
    bad = [k for k, v in naps.items() if not isinstance(v, StreamingNAPs)]
    if bad:
        raise ValueError(f"naps: the values of {bad} are not fitted StreamingNAPs (use stream_naps)")
    variables = _columns(variables, _frame(table), "variables")
    rows = []
    for layer, s in naps.items():
        rows.append({"layer": layer, "channels": int(np.prod(s.shape)),
                     f"eta2 (all {len(table)} groups)": variance_share(s),
                     **{f"eta2 ({v})": variance_share(s, table=table, by=v) for v in variables}})
    return pd.DataFrame(rows)


def category_contrast(profiles: np.ndarray, table: pd.DataFrame, *, within: str, contrast: str,
                      total_variance: float) -> pd.DataFrame:
    r"""How far apart the two categories of ``contrast`` are within each category of ``within``.

    For the union NAPs of ``contrast`` x ``within`` (:func:`union_profiles`), the distance
    :math:`\lVert NAP(b, w) - NAP(a, w)\rVert` beside the distance that sampling noise alone gives two
    groups of those sizes, :math:`\sqrt{V (1/n_a + 1/n_b)}` with :math:`V` the layer's total variance
    (an upper bound for the within-group variance). Categories of ``within`` that lack one of the
    two are skipped.

    Returns
    -------
    pandas.DataFrame
        Rows ``contrast`` and ``noise level``; one column per category of ``within``.
    """
    table = _frame(table)
    for name, v in (("within", within), ("contrast", contrast)):
        _columns([v], table, name)
    if "count" not in table.columns:
        raise ValueError("table: lacks the 'count' column; pass the unions table of union_profiles")
    if not isinstance(table[within].dtype, pd.CategoricalDtype):
        raise ValueError(f"within: column {within!r} is not categorical; pass the unions table of union_profiles")
    if len(profiles) != len(table):
        raise ValueError(f"profiles, table: {len(profiles)} profiles for {len(table)} rows; pass the two outputs "
                         "of one union_profiles call")
    try:
        ok = np.isfinite(float(total_variance)) and float(total_variance) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"total_variance: expected a finite number >= 0 (StreamingNAPs.total_variance().sum()), "
                         f"got {total_variance!r}")
    out = {}
    for cat in table[within].cat.categories:
        rows = table.index[table[within] == cat]
        if len(rows) == 2:
            n0, n1 = table.loc[rows, "count"]
            out[cat] = {"contrast": float(np.linalg.norm(profiles[rows[1]] - profiles[rows[0]])),
                        "noise level": float(np.sqrt(total_variance * (1 / n0 + 1 / n1)))}
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- experiments (Chapter 4)
_SAMPLES = Memo(1)  # the capped sample of the last dataset
_NETWORKS = Memo(2)  # the trained and the random network

#: Chapter 4's settings. quick: SynthFaces (FairFace's 126-group schema, 32 x 32) and Chapter 3's
#: small CNN trained on an unrelated task; full: FairFace capped at 640 per group and torchvision's
#: ImageNet ResNet-50 at 224 x 224.
SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {"dataset": "synthfaces", "data_options": {"n": 10_000, "size": 32, "seed": 0},
              "variables": ["palette", "age", "style"], "cap": 80,
              "network": "small_cnn", "task": {"n": 4000, "size": 32, "epochs": 6},  # as in Chapter 3
              "batch_size": 256, "num_workers": 0, "relax_steps": 1000, "min_channels": 16},
    "full": {"dataset": "fairface", "data_options": {"size": 224},
             "variables": ["race", "age", "gender"], "cap": 640,
             "network": "resnet50", "task": {},
             "batch_size": 128, "num_workers": 2, "relax_steps": 1000, "min_channels": 16},
    # FAIRLIB_SCALE=rehearsal: the full code on the miniature FairFace mirror
    "rehearsal": {"cap": 2, "batch_size": 64, "relax_steps": 100},
}


@dataclass
class NapSample:
    """Chapter 4's images: the dataset, its group table and the capped sample fed to the networks."""

    data: Any
    table: pd.DataFrame
    group_ids: np.ndarray
    keep: np.ndarray

    @property
    def groups(self) -> np.ndarray:
        """Group id of each kept image, in order."""
        return self.group_ids[self.keep]


def nap_sample(dataset: str, data_options: Mapping[str, Any], variables: Sequence[str], *, cap: int,
               seed: int = 0) -> NapSample:
    """Load the dataset's training split and cap every intersectional group at ``cap`` images."""
    from fairlib.data import cap_groups, intersectional_groups, load_dataset

    cap = positive_int(cap, "cap", meaning="(images per intersectional group)")
    if isinstance(variables, str):
        raise ValueError(f"variables: expected a list of attribute names, got {variables!r}; write [{variables!r}]")
    if not isinstance(data_options, Mapping):
        raise ValueError(f"data_options: expected a mapping of load_dataset options, got {data_options!r}")
    def build() -> NapSample:
        with renamed("name", "dataset"):
            data = load_dataset(dataset, "train", **dict(data_options))
        group_ids, table = intersectional_groups(data.attributes, list(variables))
        keep = cap_groups(data.attributes, list(variables), cap, seed=seed)
        return NapSample(data, table, group_ids, keep)

    # the sweep's runs and the chapter share one sample (the runs only read it)
    parts = {"dataset": dataset, "data_options": dict(data_options), "variables": list(variables), "cap": cap,
             "seed": seed}
    return _SAMPLES.get(parts, build)


def shared_network(name: str, *, trained: bool, seed: int = 0, task: Mapping[str, Any] | None = None,
            device: Any = None) -> Any:
    """:func:`fairlib.probes.build_network`, remembered: the sweep's runs and the chapter's maps use
    the same network, which is built (for the quick profile's small CNN: trained) once per process.

    The networks are only read (activations), never trained further.
    """
    from fairlib.config import get_device
    from fairlib.probes import build_network

    device = device if device is not None else get_device()
    task = dict(task or {})
    parts = {"name": name, "trained": trained, "seed": seed, "task": task, "device": str(device)}
    return _NETWORKS.get(parts, lambda: build_network(name, trained=trained, seed=seed, device=device, **task))


def analysed_layers(network: str) -> dict[str, str]:
    """The network's preset layers without its final average pool and its output layer.

    The average pool is the last block's spatial mean again. The output layer's units are the
    class scores of the network's own task (1,000 ImageNet logits for torchvision's weights), not
    channels of a feature map: with that many units and no spatial extent its eta^2 is the
    highest of all and would win the layer choice, while the paper's maps are of hidden layers.
    """
    from fairlib.activations import layer_preset

    with renamed("name", "network"):
        preset = layer_preset(network)
    return {name: module for name, module in preset.items() if name not in ("avg_pool", "predictions")}


def run_layer_shares(network: str, trained: bool, dataset: str, data_options: dict, variables: list, cap: int,
                     task: dict, batch_size: int = 256, num_workers: int = 0, seed: int = 0) -> dict[str, Any]:
    r""":math:`\eta^2` of every analysed layer of one network (trained or random), as flat lists.

    Returns ``layer``, ``channels``, ``eta2_all`` and ``eta2_<variable>`` per variable (lists in layer
    order), and for a network trained here its task's mean AUC ``task_auc`` (NaN for ImageNet weights).
    """
    import torch

    from fairlib.config import get_device

    layers = analysed_layers(network)  # an unknown network fails here, before the data is loaded
    positive_int(batch_size, "batch_size")
    s = nap_sample(dataset, data_options, variables, cap=cap, seed=seed)
    device = get_device()
    net = shared_network(network, trained=trained, seed=seed, task=task, device=device)
    naps = stream_naps(net.model, torch.utils.data.Subset(s.data, s.keep), s.groups, layers,
                       transform=net.transform, batch_size=batch_size, num_workers=num_workers, device=device)
    shares = layer_shares(naps, s.table, variables)
    out = {"layer": shares["layer"].tolist(), "channels": shares["channels"].tolist(),
           "eta2_all": shares[f"eta2 (all {len(s.table)} groups)"].tolist()}
    out.update({f"eta2_{v}": shares[f"eta2 ({v})"].tolist() for v in variables})
    out["task_auc"] = float(net.task.evaluation["auc"].mean()) if net.task is not None else float("nan")
    return out


def layer_shares_grid(profile: str) -> list[dict]:
    """The profile's network, trained and randomly initialised."""
    from fairlib.config import select

    cfg = select(SETTINGS, profile)
    common = {k: cfg[k] for k in ("dataset", "data_options", "variables", "cap", "task", "batch_size", "num_workers")}
    return [{"network": cfg["network"], "trained": trained, **common} for trained in (True, False)]


# --------------------------------------------------------------------------- compute plans (fairlib.plan)
def _layer_shares_cost(config: Mapping[str, Any]) -> list:
    """The work of one :func:`run_layer_shares` configuration.

    One forward pass (under autocast, as :class:`fairlib.activations.ActivationExtractor` runs on
    CUDA) of the capped sample through the network, up to the last analysed layer. The sample
    holds at most ``cap`` images per intersectional group and no more than the split (an upper
    bound: FairFace's small groups hold fewer). FairFace's JPEGs are decoded on the fly by
    ``num_workers`` loader processes; the quick profile's rendered faces stay in RAM (the sample
    is memoised, :func:`nap_sample`), as does the trained small CNN, trained once for both runs
    (:func:`shared_network`, Chapter 3's :func:`fairlib.probes.train_unrelated_cnn`). The
    streaming accumulators (group x channel sums) are negligible.
    """
    from fairlib.activations import ActivationExtractor
    from fairlib.plan import Stage, amp_default, builder, stop_at
    from fairlib.probes import _SOURCE_SIDES, _TRAIN_SIZES, _n_groups, _network_builder, _unrelated_cnn_stages

    network, dataset = str(config["network"]), str(config["dataset"])
    options = dict(config.get("data_options") or {})
    groups = _n_groups(dataset, config["variables"])
    n_images = int(options.get("n", _TRAIN_SIZES.get(dataset, 10_000)))
    sample = min(n_images, groups * int(config["cap"]))
    side = int(options.get("size", 32)) if network == "small_cnn" else 224
    stored = int(options.get("size") or _SOURCE_SIDES.get(dataset, side))
    in_memory = dataset == "synthfaces"
    stages: list = []
    if network == "small_cnn" and config.get("trained"):
        stages += _unrelated_cnn_stages(config.get("task") or {}, shared=f"04:small_cnn:{config.get('task')}")
    layers = analysed_layers(network)
    pipeline = {"pipeline": "memory"} if in_memory else {
        "pipeline": "decode", "source_pixels": stored * stored, "workers": int(config.get("num_workers", 0)),
        "data": (dataset,)}
    weights = (f"{network}.IMAGENET1K_V1",) if config.get("trained") and network != "small_cnn" else ()
    stages.append(Stage("neuron activation profiles", builder(stop_at, _network_builder(network),
                                                               list(layers.values())[-1]),
                        (3, side, side), eval_samples=sample, eval_batch_size=int(config.get("batch_size", 256)),
                        amp=amp_default(ActivationExtractor), weights=weights,
                        host_bytes=3 * stored * stored * n_images if in_memory else 0, **pipeline))
    return stages


def _register() -> None:
    from fairlib import sweep

    sweep.register("04_activation_profiles", "layer_shares", run_layer_shares, layer_shares_grid,
                   "between-group variance share (eta^2) of every layer, trained and random network",
                   cost=_layer_shares_cost)


_register()
