"""Small helpers that let one chapter serve three readers: Colab, a local Jupyter and the book.

The book build sets ``FAIRLIB_BOOK=1``: progress bars stay quiet and interactive widgets give
way to static figures, so the rendered pages show results, not widgets without a kernel.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = ["in_colab", "building_book", "interactive", "progress", "glue", "verdict", "trend", "use_drive",
           "DRIVE_FOLDER"]

#: Where :func:`use_drive` keeps the course's files on Google Drive.
DRIVE_FOLDER = "/content/drive/MyDrive/fairlib-course"

T = TypeVar("T")


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def use_drive(folder: str | None = None) -> dict[str, str]:
    """On Colab, keep the real data, the image cache and the finished runs on Google Drive.

    A Colab runtime loses its disk when it disconnects. With the three locations on Drive, a new
    session finds the fetched datasets (``FAIRLIB_DATA``), the uint8 image caches
    (``FAIRLIB_CACHE``: one large file per dataset and size) and every finished run of a sweep
    (``FAIRLIB_RESULTS``: one small JSON file per configuration), so that it resumes instead of
    starting again. A variable that is already set is left alone. Outside Colab nothing is mounted
    and nothing changes.

    Parameters
    ----------
    folder
        The folder on Drive (default :data:`DRIVE_FOLDER`).

    Returns
    -------
    dict
        The three variables' values now in effect (unset ones omitted).
    """
    names = ("FAIRLIB_DATA", "FAIRLIB_CACHE", "FAIRLIB_RESULTS")
    if in_colab():
        from google.colab import drive  # type: ignore[import-not-found]

        drive.mount("/content/drive")
        base = folder or DRIVE_FOLDER
        for name, sub in zip(names, ("data", "cache", "results")):
            os.environ.setdefault(name, f"{base}/{sub}")
            os.makedirs(os.environ[name], exist_ok=True)
    where = {name: os.environ[name] for name in names if os.environ.get(name)}
    for name, value in where.items():
        print(f"{name}={value}")
    return where


def building_book() -> bool:
    """True while the Jupyter Book build executes the notebook (``FAIRLIB_BOOK=1``)."""
    return os.environ.get("FAIRLIB_BOOK", "").strip().lower() not in ("", "0", "false", "no")


def interactive() -> bool:
    """True when a live kernel can drive widgets: any notebook session except the book build."""
    if building_book():
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress(iterable: Iterable[T], **kwargs: Any) -> Iterable[T]:
    """Wrap a long loop in a ``tqdm.auto`` progress bar that is silent in the book build."""
    from tqdm.auto import tqdm

    if iterable is not None and not isinstance(iterable, Iterable):
        raise ValueError(f"iterable: expected something to loop over (a list, a range, a DataLoader), "
                         f"got {type(iterable).__name__}")
    kwargs.setdefault("disable", building_book())
    return tqdm(iterable, **kwargs)


def glue(name: str, value: Any, display: bool = False, *, missing: str | None = None) -> None:
    """Store a result for the book's prose (``{glue:text}`name```) via myst-nb.

    Outside a myst-nb environment (e.g. a plain Colab runtime without myst-nb) nothing is
    stored, and the value is shown if ``display`` is true. Returns ``None``, so that a cell that
    ends with a ``glue`` call prints no stray value (such as ``np.float64(…)``) in the book.

    Parameters
    ----------
    missing
        A missing value (``None`` or NaN) is refused, because the prose would print "nan" as if
        it were a result. When a missing value is expected, pass what it means in words (e.g.
        ``missing="not defined: no group had a positive"``): that text is glued instead, so the
        prose shows the explanation. The prose must then glue the name without a number format.

    Raises
    ------
    ValueError
        ``value`` is ``None`` or NaN and ``missing`` is not given.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name: expected a non-empty string (the key of {{glue:text}}`name`), got {name!r}")
    if missing is not None and (not isinstance(missing, str) or not missing.strip()):
        raise ValueError(f"missing: expected the words that explain a missing {name}, got {missing!r}")
    if _is_missing(value):
        if missing is None:
            raise ValueError(
                f"{name}: the value is {value!r}, which the prose would print as if it were a result; "
                f"find why it is missing, or pass missing='what it means' to glue that explanation instead")
        value = missing
    try:
        from myst_nb import glue as _glue
    except ImportError:
        if display:
            print(f"{name} = {value}")
        return None
    # myst-nb formats glued numbers from their text repr, which for numpy scalars reads
    # "np.float64(0.25)" and cannot be formatted: store plain Python numbers instead.
    plain = value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value
    # a str's repr carries quotes ("'block2'"), which {glue:text} would print in the prose
    _glue(name, _Text(plain) if isinstance(plain, str) else plain, display=display)
    return None


def _is_missing(value: Any) -> bool:
    """``None``, or a real scalar that is NaN (a float, a numpy scalar or a 0-d array/tensor)."""
    if value is None:
        return True
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    return isinstance(value, float) and value != value


def verdict(low: float, high: float, *, below: str, above: str, neither: str) -> str:
    """The words a confidence interval supports: ``below`` if it lies below zero, ``above`` if it lies
    above, ``neither`` if it contains zero (or is not finite), so that no direction word is typed.

    Examples
    --------
    >>> verdict(-0.3, -0.1, below="dampens", above="amplifies", neither="no clear effect")
    'dampens'
    """
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            raise ValueError(f"{name}: expected a number (an interval's end), got {value!r}")
    lo, hi = float(low), float(high)
    if lo == lo and hi == hi and lo > hi:
        raise ValueError(f"low, high: the interval's low end {lo} lies above its high end {hi}")
    if hi < 0:
        return below
    if lo > 0:
        return above
    return neither


def trend(x: Any, y: Any, *, rises: str, falls: str, flat: str, alpha: float = 0.05) -> str:
    """The words a monotone trend test supports, with its statistic: Spearman's rank correlation
    ρ between ``x`` and ``y`` (:func:`scipy.stats.spearmanr`, two-sided) decides ``rises`` (ρ > 0,
    p < ``alpha``), ``falls`` (ρ < 0, p < ``alpha``) or ``flat`` (otherwise, also when ``y`` is
    constant), and ``" (Spearman ρ = …, p = …)"`` is appended so that the reader sees the evidence.

    Parameters
    ----------
    x, y : array-like, shape (n,)
        One point per run (not per group mean: the test needs the run-to-run spread).

    Examples
    --------
    >>> trend([1, 2, 3, 4, 5, 6], [0.1, 0.3, 0.2, 0.5, 0.9, 0.8], rises="rises", falls="falls", flat="is flat")
    'rises (Spearman ρ = 0.89, p = 0.019)'
    """
    import numpy as np
    from scipy import stats

    xs, ys = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape or xs.size < 3:
        raise ValueError(f"x, y: need two equally long sequences of at least 3 points, got {xs.size} and {ys.size}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("x, y: contain NaN or infinite values; drop the failed runs first")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a level in (0, 1), got {alpha!r}")
    if np.ptp(ys) == 0 or np.ptp(xs) == 0:
        return f"{flat} (constant, no rank correlation)"
    rho, p = stats.spearmanr(xs, ys)
    words = rises if p < alpha and rho > 0 else falls if p < alpha else flat
    return f"{words} (Spearman ρ = {rho:.2f}, p = {p:.2g})"


class _Text(str):
    """A string whose repr is itself, so that ``{glue:text}`` shows it without quotes."""

    def __repr__(self) -> str:
        return str(self)
