"""Where data and pretrained weights live, and the error raised when a dataset is missing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "COMPLETE_MARKER",
    "DatasetNotFoundError",
    "data_root",
    "dataset_dir",
    "weights_root",
    "configure_weights_cache",
    "fetch_command",
]

#: Written last by ``data_scripts.fetch`` (a JSON manifest with sha256 of every source file).
COMPLETE_MARKER = ".complete"


def _repo_root() -> Path:
    # fairlib/data/paths.py -> the repository that holds the fairlib package
    return Path(__file__).resolve().parents[2]


def _check_root(root: Any, name: str = "root") -> None:
    if root is not None and (not isinstance(root, (str, os.PathLike)) or str(root).strip() == ""):
        raise TypeError(f"{name}: expected a directory path (str or pathlib.Path) or None, got {root!r}")


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"name: expected a dataset name such as 'fairface', got {name!r}")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The directory holding every real dataset (one sub-directory per dataset).

    Parameters
    ----------
    root
        An explicit directory. ``None`` reads the ``FAIRLIB_DATA`` environment variable and
        falls back to ``data/`` beside the repository (ignored by git).
    """
    _check_root(root)
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("FAIRLIB_DATA")
    if env:
        return Path(env).expanduser()
    return _repo_root() / "data"


def dataset_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """The directory of one dataset under :func:`data_root`, e.g. ``<root>/fairface``."""
    _check_name(name)
    return data_root(root) / name


def weights_root(root: str | os.PathLike | None = None) -> Path:
    """``<data root>/weights``: where pretrained weights are cached."""
    return data_root(root) / "weights"


def configure_weights_cache(root: str | os.PathLike | None = None) -> Path:
    """Point torch's weight cache at ``<data root>/weights`` unless ``TORCH_HOME`` is set.

    torchvision and ``torch.hub`` read ``TORCH_HOME`` when they download weights, so calling
    this before building a pretrained model keeps weights beside the datasets.

    Returns
    -------
    pathlib.Path
        The ``TORCH_HOME`` now in effect.
    """
    _check_root(root)  # a bad argument is an error even when TORCH_HOME is already set
    if not os.environ.get("TORCH_HOME"):
        os.environ["TORCH_HOME"] = str(weights_root(root))
    return Path(os.environ["TORCH_HOME"])


def fetch_command(name: str, root: str | os.PathLike | None = None) -> str:
    """The shell command that downloads dataset ``name`` into ``root``."""
    from fairlib.data.registry import FETCHABLE

    if name not in FETCHABLE:
        hint = f" ({_BY_HAND[name]})" if name in _BY_HAND else ""
        raise ValueError(f"name: no fetcher for {name!r}{hint}; fetchable datasets: {', '.join(FETCHABLE)}")
    return f"python -m data_scripts.fetch {name} --root {data_root(root)}"


#: Datasets without a fetcher, and how to put them in place by hand (none at present: every
#: dataset of ``fairlib.data.registry.FETCHABLE`` has one).
_BY_HAND: dict[str, str] = {}


class DatasetNotFoundError(FileNotFoundError):
    """A real dataset is not on disk; the message says where we looked and how to fetch it."""

    def __init__(self, name: str, directory: Path, missing: str, root: Path):
        _check_name(name)
        _check_root(directory, "directory")
        _check_root(root)
        self.name = name
        self.directory = Path(directory)
        if name in _BY_HAND:
            how = f"There is no fetcher for it yet: {_BY_HAND[name]} (see the book's Datasets page)\n"
        else:
            how = f"Download it with:\n    {fetch_command(name, root)}\n"
        msg = (
            f"dataset {name!r} is not on disk: looked in {directory} and found no {missing}. {how}"
            "(or set FAIRLIB_DATA / pass root= to point at an existing copy)"
        )
        super().__init__(msg)
