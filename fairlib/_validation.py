"""Input checks shared by every public function of fairlib: one implementation of each.

Each checker takes the value and the *argument's name* and raises with a message that names the
argument, says what was expected and, where there is one, the fix. Keeping them here (instead of
a copy per module) means a message is worded, and a corner case (``True`` is an ``int``; a
one-column matrix is a vector) is handled, in exactly one place.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "integer",
    "positive_int",
    "to_numpy",
    "as_1d",
    "same_length",
    "as_matrix",
    "binary",
    "as_binary",
    "as_probability",
    "as_labels",
    "same_label_kind",
    "show",
    "number",
    "device",
    "renamed",
]

ArrayLike = Any  # numpy array, torch tensor, pandas Series or list


def show(value: Any) -> Any:
    """A numpy scalar as its plain Python value, so messages read 1 and not np.int64(1)."""
    return value.item() if isinstance(value, np.generic) else value


# --------------------------------------------------------------------------- scalars
def integer(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
            allow_none: bool = False, meaning: str = "") -> int | None:
    """``value`` as a Python ``int`` within ``[minimum, maximum]``, or a ``ValueError`` naming ``name``.

    Booleans are refused (``True`` is an ``int`` in Python, but never a count); numpy integers
    are accepted. ``meaning`` is appended to the message, e.g. ``"(images per group)"``.
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if ok:
        ok = (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        if minimum == 1 and maximum is None:
            kind = "a positive integer"
        elif minimum == 0 and maximum is None:
            kind = "a non-negative integer"
        elif minimum is not None and maximum is not None:
            kind = f"an integer in [{minimum}, {maximum}]"
        elif minimum is not None:
            kind = f"an integer >= {minimum}"
        elif maximum is not None:
            kind = f"an integer <= {maximum}"
        else:
            kind = "an integer"
        if allow_none:
            kind += " or None"
        suffix = f" {meaning}" if meaning else ""
        raise ValueError(f"{name}: expected {kind}{suffix}, got {show(value)!r}")
    return int(value)


def positive_int(value: Any, name: str, *, allow_none: bool = False, meaning: str = "") -> int | None:
    """Shorthand for :func:`integer` with ``minimum=1`` (sizes, counts, epochs, batch sizes)."""
    return integer(value, name, minimum=1, allow_none=allow_none, meaning=meaning)


# --------------------------------------------------------------------------- arrays
def to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """A numpy array from a tensor (any device), a pandas object or a (nested) list."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    elif isinstance(x, (pd.Series, pd.Index, pd.DataFrame)):
        x = x.to_numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name}: cannot be read as an array ({exc})") from exc


def as_1d(x: ArrayLike, name: str) -> np.ndarray:
    """A non-empty 1-D array without NaN; an ``(N, 1)`` or ``(1, N)`` matrix is flattened."""
    arr = to_numpy(x, name)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: is empty; pass at least one example")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        what = "NaN" if np.isnan(arr[bad]) else show(arr[bad])
        raise ValueError(f"{name}: contains {what} at index {bad}; pass finite values")
    return arr


def as_labels(x: ArrayLike, name: str) -> np.ndarray:
    """A 1-D array of hard labels: integers, booleans (as 0/1) or strings; never scores.

    Floats are accepted only when every value is a whole number (``1.0``); a fractional value
    means probabilities or scores were passed where labels belong.
    """
    arr = as_1d(x, name)
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        frac = arr != np.round(arr)
        if frac.any():
            raise ValueError(f"{name}: expected hard labels (class codes), found {show(arr[frac][0])!r}; "
                             "apply argmax or a threshold to probabilities or scores first")
        return arr.astype(np.int64)
    if arr.dtype.kind == "c":
        raise ValueError(f"{name}: expected labels, got complex numbers")
    return arr


def _kind(arr: np.ndarray) -> str:
    if arr.dtype.kind in "iub":
        return "numbers"
    if arr.dtype.kind in "US":
        return "strings"
    kinds = {type(v).__name__ for v in arr[:1000]}
    return "strings" if kinds <= {"str"} else "numbers" if kinds <= {"int", "float", "bool"} else "mixed"


def same_label_kind(**arrays: np.ndarray) -> None:
    """Raise unless all label arrays hold the same kind of label (all numbers or all strings)."""
    kinds = {name: _kind(arr) for name, arr in arrays.items()}
    if len(set(kinds.values())) > 1 or "mixed" in kinds.values():
        detail = ", ".join(f"{k} holds {v}" for k, v in kinds.items())
        raise ValueError(f"{'/'.join(kinds)}: labels of different kinds ({detail}); encode them the same way")


def same_length(**arrays: Any) -> None:
    """Raise naming every argument's length unless all have the same length."""
    lengths = {}
    for k, v in arrays.items():
        try:
            lengths[k] = len(v)
        except TypeError:
            raise TypeError(f"{k}: expected an array, got {type(v).__name__}") from None
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ValueError(f"mismatched lengths: {detail}; all must describe the same examples")


def as_matrix(x: ArrayLike, name: str) -> np.ndarray:
    """A non-empty ``(N, K)`` array without NaN; a vector of shape ``(N,)`` becomes ``(N, 1)``."""
    arr = to_numpy(x, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name}: expected shape (N,) or (N, K) with N >= 1, got {arr.shape}")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{name}: contains NaN")
    return arr


def as_binary(x: ArrayLike, name: str) -> np.ndarray:
    """A 1-D int64 array of 0/1 values (booleans accepted); other codes are refused."""
    return binary(as_1d(x, name), name)


def binary(arr: np.ndarray, name: str) -> np.ndarray:
    """``arr`` (any shape) as int64 0/1 values; booleans accepted, other codes refused."""
    if not isinstance(arr, np.ndarray):
        arr = to_numpy(arr, name)
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name}: expected binary 0/1 values, got dtype {arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        raise ValueError(
            f"{name}: expected binary 0/1 values, found {show(arr[bad][0])!r} "
            "(map -1/+1 or other encodings to 0/1 first)"
        )
    return arr.astype(np.int64)


def as_probability(x: ArrayLike, name: str) -> np.ndarray:
    """A 1-D float64 array of values in [0, 1]."""
    arr = to_numpy(x, name)
    arr = as_1d(arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr, name).astype(np.float64)
    bad = (arr < 0) | (arr > 1)
    if bad.any():
        raise ValueError(
            f"{name}: probabilities must lie in [0, 1], found {show(arr[bad][0])!r} "
            "(apply a sigmoid or softmax to logits first)"
        )
    return arr


# --------------------------------------------------------------------------- numbers, devices, names
def number(value: Any, name: str, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False, expected: str | None = None, meaning: str = "") -> float:
    """``value`` as a finite float within the given interval, or a ``ValueError`` naming ``name``.

    Booleans are refused. The message says ``expected`` when given (e.g. ``"a probability in [0, 1)"``),
    else the interval (``"a finite number in [0, 1]"``) or ``"a finite number"``.
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (low is None or (v > low if low_open else v >= low)) and (
            high is None or (v < high if high_open else v <= high))
    if not ok:
        if expected is None:
            if low is None and high is None:
                expected = "a finite number"
            else:
                lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
                hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
                expected = f"a finite number in {lo}, {hi}"
        suffix = f" {meaning}" if meaning else ""
        raise ValueError(f"{name}: expected {expected}{suffix}, got {show(value)!r}")
    return v


def device(value: Any) -> Any:
    """``torch.device(value)``, or a ``ValueError`` naming ``device`` and the usual choices."""
    import torch

    try:
        return torch.device(value)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device: cannot use {value!r} as a device ({exc}); pass 'cpu', 'cuda' or None "
                         "(fairlib.get_device())") from None


@contextlib.contextmanager
def renamed(inner: str, outer: str) -> Iterator[None]:
    """Re-raise a ``ValueError`` about a callee's argument ``inner`` as one about the caller's ``outer``."""
    try:
        yield
    except ValueError as exc:
        text = str(exc)
        if text.startswith(f"{inner}:"):
            raise ValueError(f"{outer}:{text[len(inner) + 1:]}") from exc
        raise
