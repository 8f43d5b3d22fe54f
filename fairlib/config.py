"""Profiles, devices and seeding: the small set of switches every chapter shares.

A chapter keeps one settings dict per profile and picks one with :func:`select`::

    SETTINGS = {"quick": {"n": 2_000}, "full": {"n": 200_000}}
    cfg = fairlib.select(SETTINGS, PROFILE)

``quick`` is offline, CPU-only and uses embedded data (what CI and the rendered book run);
``full`` uses the papers' real datasets and pretrained weights at the largest scale one free Colab
session (one T4) finishes; ``paper`` runs the papers' complete grids, as resumable sweeps.

Two more switches serve the build machines, which have neither a GPU nor the network:

``FAIRLIB_SCALE=rehearsal``
    Rehearse ``full`` (or ``paper``): the same code path with every size shrunk (a few images
    per group, one epoch, torchvision backbones fed 64-pixel inputs), on the miniature copies of
    the sources that ``python -m data_scripts.rehearse`` writes. :func:`rehearsing` tells the
    settings to shrink.
``FAIRLIB_WEIGHTS=random``
    Random initialisations instead of pretrained weights (nothing is downloaded);
    :func:`pretrained` returns ``None`` for every weights name.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import torch

from fairlib._validation import integer

__all__ = [
    "PROFILES",
    "DEFAULT_PROFILE",
    "get_profile",
    "select",
    "get_device",
    "seed_everything",
    "profile_note",
    "rehearsing",
    "pretrained",
    "SCALES",
    "WEIGHT_MODES",
]

PROFILES: tuple[str, ...] = ("quick", "full", "paper")
#: ``FAIRLIB_SCALE``: ``normal`` (default) or ``rehearsal`` (see the module docstring).
SCALES: tuple[str, ...] = ("normal", "rehearsal")
#: ``FAIRLIB_WEIGHTS``: ``pretrained`` (default) or ``random``.
WEIGHT_MODES: tuple[str, ...] = ("pretrained", "random")
DEFAULT_PROFILE = "quick"

#: What each profile's data is, said in every figure title or caption made from it.
_PROFILE_NOTES = {
    "quick": "quick profile: synthetic data, not a finding about real people",
    "full": "full profile",
    "paper": "paper profile",
}
_REHEARSAL_NOTE = ("REHEARSAL of the {profile} profile: miniature stand-in data"
                   "{weights}; the numbers mean nothing")

T = TypeVar("T")


def get_profile(profile: str | None = None) -> str:
    """Return a validated profile name.

    Parameters
    ----------
    profile
        ``"quick"``, ``"full"`` or ``"paper"``. ``None`` reads the ``FAIRLIB_PROFILE`` environment
        variable and falls back to ``"quick"``.
    """
    name = profile if profile is not None else os.environ.get("FAIRLIB_PROFILE", DEFAULT_PROFILE)
    name = str(name).strip().lower()
    if name not in PROFILES:
        raise ValueError(
            f"profile: unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
            "(set it in the notebook's parameters cell or with FAIRLIB_PROFILE)"
        )
    return name


def select(settings: Mapping[str, T], profile: str | None = None) -> T:
    """Pick the settings of one profile from a ``{profile: settings}`` mapping.

    ``"paper"`` falls back to ``"full"`` when the mapping has no entry for it (the full settings
    are then the paper's). An optional ``"rehearsal"`` entry holds the values that replace a
    real-data profile's under ``FAIRLIB_SCALE=rehearsal`` (sizes, epochs; nested dicts merged key
    by key); the result is then a merged copy.

    Raises
    ------
    ValueError
        If the profile is unknown or the mapping has no entry for it.
    """
    if not isinstance(settings, Mapping):
        raise ValueError(f"settings: expected a dict {{profile: settings}}, e.g. {{'quick': ..., 'full': ...}}, "
                         f"got {type(settings).__name__}")
    name = get_profile(profile)
    key = "full" if name == "paper" and name not in settings else name
    if key not in settings:
        raise ValueError(
            f"settings: no entry for profile {name!r}; the mapping has {sorted(settings)}"
        )
    value = settings[key]
    if rehearsing(name) and "rehearsal" in settings and isinstance(value, Mapping):
        from copy import deepcopy

        merged = deepcopy(dict(value))
        for k, v in settings["rehearsal"].items():
            if isinstance(v, Mapping) and isinstance(merged.get(k), Mapping):
                merged[k] = {**merged[k], **deepcopy(dict(v))}
            else:
                merged[k] = deepcopy(v)
        return merged  # type: ignore[return-value]
    return value


def profile_note(profile: str | None = None, *, data: str | None = None) -> str:
    """A short phrase for figure titles and captions naming where the numbers come from.

    ``data`` names the quick profile's data when it is not synthetic (e.g. Chapter 2's
    "scikit-learn's 8×8 handwritten digits"): real, but a small stand-in for the paper's data.
    A rehearsal says so, so that no figure of miniature data reads as a result.
    """
    name = get_profile(profile)
    if data is not None and (not isinstance(data, str) or not data.strip()):
        raise ValueError(f"data: expected a short description of the quick profile's data, got {data!r}")
    if rehearsing(name):
        random_weights = _switch("FAIRLIB_WEIGHTS", WEIGHT_MODES, "pretrained") == "random"
        return _REHEARSAL_NOTE.format(profile=name, weights=" and random weights" if random_weights else "")
    if name == "quick" and data is not None:
        return f"quick profile: {data}, a small stand-in for the paper's data"
    return _PROFILE_NOTES[name]


def _switch(variable: str, allowed: tuple[str, ...], default: str) -> str:
    value = os.environ.get(variable, "").strip().lower() or default
    if value not in allowed:
        raise ValueError(f"{variable}: unknown value {value!r}; choose one of {', '.join(allowed)} (or unset it)")
    return value


def rehearsing(profile: str | None = None) -> bool:
    """True when ``FAIRLIB_SCALE=rehearsal`` and ``profile`` is not ``quick``.

    The quick profile is already small; a rehearsal shrinks the real-data profiles only.
    """
    return get_profile(profile) != "quick" and _switch("FAIRLIB_SCALE", SCALES, "normal") == "rehearsal"


def pretrained(weights: str | None) -> str | None:
    """The weights name to load: ``weights`` itself, or ``None`` under ``FAIRLIB_WEIGHTS=random``."""
    if _switch("FAIRLIB_WEIGHTS", WEIGHT_MODES, "pretrained") == "random":
        return None
    return weights



def get_device(prefer: str | None = None) -> torch.device:
    """Choose a device: ``prefer`` if given, else CUDA, then Apple's MPS, then CPU.

    ``FAIRLIB_DEVICE`` overrides the automatic choice (e.g. ``cpu`` on a GPU machine).
    """
    choice = prefer or os.environ.get("FAIRLIB_DEVICE")
    if choice:
        source = "prefer" if prefer else "FAIRLIB_DEVICE"
        if not isinstance(choice, (str, torch.device)):
            raise ValueError(f"{source}: expected a device name such as 'cpu', 'cuda' or 'mps', got {choice!r}")
        try:
            device = torch.device(choice)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"{source}: unknown device {choice!r}; use 'cpu', 'cuda', 'cuda:0' or 'mps'") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device: CUDA was requested but torch.cuda.is_available() is False")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, *, deterministic: bool | None = None) -> np.random.Generator:
    """Seed Python, NumPy and PyTorch so that a quick-profile run repeats exactly.

    Parameters
    ----------
    seed
        A non-negative integer.
    deterministic
        Also ask PyTorch for deterministic kernels (``warn_only`` so that an op without a
        deterministic implementation warns instead of failing) and turn cuDNN benchmarking off.
        ``None`` (default): only in the quick profile (``FAIRLIB_PROFILE``), which must repeat
        exactly; a full or paper run on a GPU keeps the fast kernels and ``cudnn.benchmark``.

    Returns
    -------
    numpy.random.Generator
        A generator seeded with ``seed``, for code that prefers explicit generators.
    """
    seed = integer(seed, "seed", minimum=0)
    if deterministic is None:
        deterministic = get_profile() == "quick"
    if not isinstance(deterministic, (bool, np.bool_)):
        raise ValueError(f"deterministic: expected True, False or None, got {deterministic!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        # cuBLAS needs this set before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        if hasattr(torch.backends, "cudnn"):
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
    else:
        torch.use_deterministic_algorithms(False)
        if hasattr(torch.backends, "cudnn"):
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.deterministic = False
    return np.random.default_rng(seed)


def settings_table(settings: Mapping[str, Mapping[str, Any]]) -> "Any":
    """The per-profile settings as a pandas DataFrame (one column per profile)."""
    import pandas as pd

    return pd.DataFrame({k: pd.Series(dict(v)) for k, v in settings.items()})
