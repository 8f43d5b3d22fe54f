"""Figures shared by several chapters (matplotlib only)."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["reliability_diagram"]


def reliability_diagram(bins: pd.DataFrame, ax: Any = None, *, label: str | None = None,
                        color: str | None = None) -> Any:
    """Draw a reliability diagram from :func:`fairlib.metrics.calibration_bins`.

    Bars show each non-empty bin's accuracy at its mean confidence; the diagonal is perfect
    calibration, so bars below it mean overconfidence. Returns the axes.
    """
    import matplotlib.pyplot as plt

    if not isinstance(bins, pd.DataFrame):
        raise ValueError(f"bins: expected the DataFrame of fairlib.metrics.calibration_bins, got {type(bins).__name__}")
    missing = [c for c in ("lower", "upper", "count", "accuracy") if c not in bins.columns]
    if missing:
        raise ValueError(f"bins: missing column(s) {missing}; pass the frame of fairlib.metrics.calibration_bins")
    if bins.empty:
        raise ValueError("bins: is empty; pass the frame of fairlib.metrics.calibration_bins")
    if ax is not None and not hasattr(ax, "bar"):
        raise ValueError(f"ax: expected matplotlib axes (e.g. from plt.subplots()) or None, got {type(ax).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    used = bins[bins["count"] > 0]
    width = float((bins["upper"] - bins["lower"]).iloc[0])
    ax.bar(used["lower"], used["accuracy"], width=width, align="edge", alpha=0.6, edgecolor="black",
           label=label, color=color)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    return ax
