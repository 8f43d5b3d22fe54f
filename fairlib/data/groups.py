"""Intersectional groups and per-group sampling (capping, balancing)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fairlib._validation import integer, positive_int

__all__ = ["GroupTooSmallError", "intersectional_groups", "cap_groups", "balanced_sample"]


class GroupTooSmallError(ValueError):
    """A group has fewer samples than requested (and ``allow_smaller`` is off)."""


def _variables(attributes: pd.DataFrame, variables: Sequence[str] | str) -> list[str]:
    if not isinstance(attributes, pd.DataFrame):
        raise ValueError(f"attributes: expected a pandas DataFrame, got {type(attributes).__name__}")
    if isinstance(variables, str):
        variables = [variables]
    if not isinstance(variables, (list, tuple, pd.Index)):
        raise ValueError(f"variables: expected a column name or a list of them, got {variables!r}")
    variables = list(variables)
    if not variables:
        raise ValueError("variables: name at least one attribute column")
    missing = [v for v in variables if v not in attributes.columns]
    if missing:
        raise ValueError(
            f"variables: {missing} not in attributes; columns are {list(attributes.columns)}"
        )
    return variables


def intersectional_groups(
    attributes: pd.DataFrame, variables: Sequence[str] | str
) -> tuple[np.ndarray, pd.DataFrame]:
    """Assign each sample to the intersection of its values on ``variables``.

    Every combination of categories is a group, including empty ones (an empty intersection
    is a finding, not something to hide). Non-categorical columns are treated as categorical
    with their sorted unique values.

    Parameters
    ----------
    attributes
        ``N`` rows.
    variables
        Column names, e.g. ``["palette", "style"]``.

    Returns
    -------
    group_ids : numpy.ndarray
        ``int64``, shape ``(N,)``: row of ``table`` for each sample; -1 where any variable
        is missing.
    table : pandas.DataFrame
        One row per combination (``prod`` of category counts rows, in category order, last
        variable fastest): a column per variable (Categorical) and ``count``.
    """
    variables = _variables(attributes, variables)
    cats, codes = [], []
    for v in variables:
        col = attributes[v]
        if not isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype("category")
        cats.append(list(col.cat.categories))
        codes.append(col.cat.codes.to_numpy().astype(np.int64))
    dims = tuple(len(c) for c in cats)
    codes_arr = np.stack(codes) if codes else np.zeros((0, len(attributes)), np.int64)
    valid = (codes_arr >= 0).all(axis=0)
    ids = np.full(len(attributes), -1, dtype=np.int64)
    if valid.any():
        ids[valid] = np.ravel_multi_index(tuple(codes_arr[:, valid]), dims)
    n_groups = int(np.prod(dims))
    grid = np.unravel_index(np.arange(n_groups), dims)
    table = pd.DataFrame({
        v: pd.Categorical.from_codes(g, categories=c) for v, g, c in zip(variables, grid, cats)
    })
    table["count"] = np.bincount(ids[ids >= 0], minlength=n_groups)
    return ids, table


def _describe(table: pd.DataFrame, g: int, variables: list[str]) -> str:
    return "(" + ", ".join(f"{v}={table[v].iat[g]!r}" for v in variables) + ")"


def _check_count(value, name: str) -> int:
    return positive_int(value, name)


def _at_most_per_group(ids: np.ndarray, n_groups: int, limit: int, seed: int) -> np.ndarray:
    """Sorted indices keeping every member of groups up to ``limit``, a random ``limit`` of larger ones."""
    rng = np.random.default_rng(seed)
    keep = []
    for g in range(n_groups):
        members = np.flatnonzero(ids == g)
        if members.size > limit:
            members = rng.choice(members, limit, replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def cap_groups(
    attributes: pd.DataFrame, variables: Sequence[str] | str, max_per_group: int, seed: int = 0
) -> np.ndarray:
    """Keep at most ``max_per_group`` samples of every group (e.g. 640 for activation profiles).

    Smaller groups are kept whole; larger ones are subsampled without replacement.

    Returns
    -------
    numpy.ndarray
        Sorted ``int64`` positional indices into ``attributes``.
    """
    variables = _variables(attributes, variables)
    cap = _check_count(max_per_group, "max_per_group")
    seed = integer(seed, "seed", minimum=0)
    ids, table = intersectional_groups(attributes, variables)
    return _at_most_per_group(ids, len(table), cap, seed)


def balanced_sample(
    attributes: pd.DataFrame,
    variables: Sequence[str] | str,
    per_group: int,
    seed: int = 0,
    *,
    allow_smaller: bool = False,
) -> np.ndarray:
    """Draw exactly ``per_group`` samples from every group (e.g. 128 per group for probes).

    Parameters
    ----------
    allow_smaller
        Take every sample of a group smaller than ``per_group`` (possibly none) instead of
        raising.

    Returns
    -------
    numpy.ndarray
        Sorted ``int64`` positional indices into ``attributes``.

    Raises
    ------
    GroupTooSmallError
        A group (empty ones included) has fewer than ``per_group`` samples; the message names
        the smallest such group.
    """
    variables = _variables(attributes, variables)
    k = _check_count(per_group, "per_group")
    seed = integer(seed, "seed", minimum=0)
    if not isinstance(allow_smaller, (bool, np.bool_)):
        raise TypeError(f"allow_smaller: expected True or False, got {allow_smaller!r}")
    ids, table = intersectional_groups(attributes, variables)
    counts = table["count"].to_numpy()
    short = np.flatnonzero(counts < k)
    if short.size and not allow_smaller:
        g = short[np.argmin(counts[short])]
        raise GroupTooSmallError(
            f"per_group: group {_describe(table, g, variables)} has {counts[g]} samples, fewer "
            f"than per_group={k} ({short.size} of {len(table)} groups are short); lower "
            "per_group, merge categories, or pass allow_smaller=True"
        )
    return _at_most_per_group(ids, len(table), k, seed)
