"""Small helpers that let one chapter serve three readers: Colab, a local Jupyter and the book.

The book build sets ``FAIRLIB_BOOK=1``: progress bars stay quiet and interactive widgets give
way to static figures, so the rendered pages show results, not widgets without a kernel.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = ["in_colab", "building_book", "interactive", "progress", "glue"]

T = TypeVar("T")


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


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


def glue(name: str, value: Any, display: bool = False) -> None:
    """Store a result for the book's prose (``{glue:text}`name```) via myst-nb.

    Outside a myst-nb environment (e.g. a plain Colab runtime without myst-nb) nothing is
    stored, and the value is shown if ``display`` is true. Returns ``None``, so that a cell that
    ends with a ``glue`` call prints no stray value (such as ``np.float64(…)``) in the book.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name: expected a non-empty string (the key of {{glue:text}}`name`), got {name!r}")
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


class _Text(str):
    """A string whose repr is itself, so that ``{glue:text}`` shows it without quotes."""

    def __repr__(self) -> str:
        return str(self)
