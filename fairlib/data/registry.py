"""One entry point for every dataset: :func:`load_dataset`."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from typing import Any

from fairlib.data import loaders
from fairlib.data.coco import load_coco
from fairlib.data.loaders import AttributeDataset

__all__ = ["DATASETS", "FETCHABLE", "list_datasets", "load_dataset"]

#: Datasets that ``python -m data_scripts.fetch NAME`` can download: the one list of them
#: (``data_scripts.fetch.FETCHERS`` is this tuple; fairlib never imports data_scripts).
FETCHABLE: tuple[str, ...] = ("fairface", "utkface", "celeba", "cifar10", "cifar100",
                              "fashionmnist", "coco")


def _load_synthfaces(split: str = "train", *, root=None, transform=None, n: int = 10_000,
                     mode: str = "faces", seed: int = 0, **options: Any) -> AttributeDataset:
    """SynthFaces rendered on the fly; each split is a different seed stream."""
    from fairlib.data.synthfaces import SynthFaces

    offsets = {"train": 0, "val": 1, "test": 2}
    if split not in offsets:
        raise ValueError(f"split: synthfaces has splits 'train', 'val', 'test'; got {split!r}")
    del root  # rendered, never read from disk
    return SynthFaces(n, mode=mode, seed=seed * 3 + offsets[split], split=split, transform=transform, **options)


def _load_digits(split: str = "train", *, root=None, transform=None, **options: Any):
    del root
    return loaders.load_digits_dataset(split, transform=transform, **options)


DATASETS: dict[str, Callable[..., AttributeDataset]] = {
    "synthfaces": _load_synthfaces,
    "digits": _load_digits,
    "fashionmnist": loaders.load_fashionmnist,
    "cifar10": loaders.load_cifar10,
    "cifar100": loaders.load_cifar100,
    "fairface": loaders.load_fairface,
    "utkface": loaders.load_utkface,
    "celeba": loaders.load_celeba,
    "coco": load_coco,
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return list(DATASETS)


def load_dataset(name: str, split: str = "train", root=None, **options: Any) -> AttributeDataset:
    """Load a dataset by name.

    Parameters
    ----------
    name
        One of :func:`list_datasets`: ``synthfaces``, ``digits``, ``fashionmnist``,
        ``cifar10``, ``cifar100``, ``fairface``, ``utkface``, ``celeba``, ``coco``.
    split
        ``"train"``, ``"val"`` or ``"test"`` where the dataset has them (see the datasets
        page); an unavailable split raises ValueError listing the available ones.
    root
        Data root; ``None`` uses :func:`fairlib.data.data_root`.
    **options
        Per-dataset options, e.g. ``transform`` (all), ``size`` (face datasets: resize),
        ``n``/``mode``/``strengths`` (synthfaces).

    Returns
    -------
    AttributeDataset
        A torch Dataset with ``attributes`` (DataFrame of Categorical columns), ``schema``
        (name -> categories) and ``__getitem__`` -> ``(image, {attribute: code})``; images
        are ``float32 (C, H, W)`` in [0, 1] unless a ``transform`` is given.

    Raises
    ------
    DatasetNotFoundError
        A real dataset is not under the data root; the message gives the fetch command.
    ValueError
        Unknown name, split or option.
    """
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ValueError(f"name: unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    fn = DATASETS[key]
    # the wrappers take **options; check against the function they pass them to
    params = inspect.signature({"digits": loaders.load_digits_dataset}.get(key, fn)).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if not takes_any:
        allowed = [p for p in params if p not in ("split", "root")]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(
                f"options: {key} does not take {', '.join(unknown)}; it takes "
                f"{', '.join(allowed) or 'no options'}"
            )
    dataset = fn(split, root=root, **options)
    # the image cache names a split by its dataset, split and options (never by its transform,
    # which is applied after the cache)
    shown = {k: v for k, v in options.items() if k != "transform"}
    digest = hashlib.sha1(json.dumps(shown, sort_keys=True, default=repr).encode()).hexdigest()[:10]
    dataset.cache_key = f"{key}-{dataset.split}-{digest}"
    return dataset
