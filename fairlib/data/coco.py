"""COCO 2017 (images, instance annotations and captions) as an :class:`~fairlib.data.AttributeDataset`.

The layout is COCO's own, under ``<data root>/coco/``::

    annotations/instances_<split>.json    images, categories, object annotations
    annotations/captions_<split>.json     five captions per image (read unless captions=False)
    <split>/<file_name>                   the images (split: val2017 or train2017)

:func:`load_coco` (``load_dataset("coco", split=..., size=...)``) returns one row per image of the
annotation file: ``attributes`` holds one Categorical ``[0, 1]`` column per COCO category name
(multi-label: an image may hold several), in the order of the category ids; ``metadata`` holds
``image_id``, ``file_name`` and ``gender``, the caption gender (:func:`gender_of_captions`).
Images are read lazily, file by file, and scaled (not cropped) to ``size x size``.

:func:`multilabel_targets` turns such a dataset into ``(image, labels)`` items for multi-label
fine-tuning (Chapter 7's targets, :func:`fairlib.transfer.coco_multilabel`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from fairlib.data.loaders import AttributeDataset, _check_size_option, _check_split, _codes_cat, _pil_loader
from fairlib.data.paths import DatasetNotFoundError, data_root, dataset_dir

__all__ = ["COCO_SPLITS", "MAN_WORDS", "WOMAN_WORDS", "gender_of_captions", "load_coco", "multilabel_targets"]

#: The splits :func:`load_coco` reads ("train" and "val" are accepted as aliases).
COCO_SPLITS: tuple[str, ...] = ("val2017", "train2017")

#: Caption words that mark a person as a man / a woman (lower case, whole words).
MAN_WORDS: tuple[str, ...] = ("man", "men", "boy", "boys", "male", "gentleman", "gentlemen", "guy", "guys")
WOMAN_WORDS: tuple[str, ...] = ("woman", "women", "girl", "girls", "female", "lady", "ladies")


def gender_of_captions(captions: Sequence[str]) -> str | None:
    """``"man"`` if the captions hold a word of :data:`MAN_WORDS` and none of :data:`WOMAN_WORDS`,
    ``"woman"`` for the converse, ``None`` when they hold neither or both (ambiguous, left out).

    Words are whole lower-case words (``"mannequin"`` is not ``"man"``).
    """
    if isinstance(captions, str):
        raise ValueError(f"captions: expected a list of caption strings, got one string; use [{captions[:30]!r}...]")
    if captions is None or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"captions: expected a list of caption strings, got {captions!r}")
    words: set[str] = set()
    for c in captions:
        words.update(re.findall(r"[a-z]+", c.lower()))
    man, woman = bool(words & set(MAN_WORDS)), bool(words & set(WOMAN_WORDS))
    if man and not woman:
        return "man"
    if woman and not man:
        return "woman"
    return None


def _coco_files(base: Path, directory: Path, split: str, kinds: Sequence[str]) -> dict[str, Path]:
    """The annotation files of ``split``; raises :class:`DatasetNotFoundError` when any file or the
    image folder is missing."""
    files = {k: directory / "annotations" / f"{k}_{split}.json" for k in kinds}
    for f in files.values():
        if not f.is_file():
            raise DatasetNotFoundError("coco", directory, f"annotations/{f.name}", base)
    if not (directory / split).is_dir():
        raise DatasetNotFoundError("coco", directory, f"image folder {split}/", base)
    return files


class _FileImages:
    """``fn(i)``: image ``i`` read from its file as ``uint8 (3, H, W)`` (picklable, for loader workers)."""

    def __init__(self, paths: list[Path], size: int | None):
        self.paths, self.size = paths, size

    def __call__(self, i: int) -> torch.Tensor:
        return _pil_loader(self.size)(self.paths[i])


def load_coco(split: str = "val2017", *, root=None, transform: Callable | None = None, size: int | None = 224,
              captions: bool = True) -> AttributeDataset:
    """COCO 2017 images with one 0/1 attribute per category and the caption gender.

    Parameters
    ----------
    split
        ``"val2017"`` (5,000 images) or ``"train2017"`` (118,287); ``"val"``/``"train"`` are aliases.
    root
        Data root (the dataset is read from ``<root>/coco``); ``None``: :func:`fairlib.data.data_root`.
    transform
        Applied to the ``uint8`` image in ``__getitem__`` (default: ``float32`` in [0, 1]).
    size
        Images are scaled (not cropped) to ``size x size``; ``None`` keeps each file's size.
    captions
        Read ``captions_<split>.json`` and derive ``metadata["gender"]``; ``False`` skips the file
        (``gender`` is then ``None`` everywhere).

    Returns
    -------
    AttributeDataset
        One row per image of ``instances_<split>.json``, sorted by image id. ``attributes``: one
        Categorical column per category name, categories ``[0, 1]`` (1: at least one instance),
        in category-id order; ``metadata``: ``image_id``, ``file_name``, ``gender``
        (``"man"``, ``"woman"`` or ``None``, see :func:`gender_of_captions`).

    Raises
    ------
    DatasetNotFoundError
        An annotation file or the image folder is missing.
    ValueError
        Unknown split.
    """
    split = _check_split("coco", split, COCO_SPLITS, {"val": "val2017", "train": "train2017"})
    if transform is not None and not callable(transform):
        raise ValueError(f"transform: expected a callable or None, got {type(transform).__name__}")
    if not isinstance(captions, (bool, np.bool_)):
        raise ValueError(f"captions: expected True or False, got {captions!r}")
    size = _check_size_option(size)
    base = data_root(root)
    directory = dataset_dir("coco", root).expanduser()
    files = _coco_files(base, directory, split, ("instances", "captions") if captions else ("instances",))
    inst = json.loads(files["instances"].read_text())
    cats = sorted(inst["categories"], key=lambda c: c["id"])
    col = {c["id"]: k for k, c in enumerate(cats)}
    images = sorted(inst["images"], key=lambda im: im["id"])
    row = {im["id"]: k for k, im in enumerate(images)}
    labels = np.zeros((len(images), len(cats)), dtype=np.int64)
    for ann in inst["annotations"]:
        if ann["image_id"] in row:
            labels[row[ann["image_id"]], col[ann["category_id"]]] = 1
    gender: list[str | None] = [None] * len(images)
    if captions:
        caps: dict[int, list[str]] = {}
        for ann in json.loads(files["captions"].read_text())["annotations"]:
            caps.setdefault(ann["image_id"], []).append(ann["caption"])
        gender = [gender_of_captions(caps.get(im["id"], [])) for im in images]
    attributes = pd.DataFrame({c["name"]: _codes_cat(labels[:, k], [0, 1]) for k, c in enumerate(cats)})
    metadata = pd.DataFrame({"image_id": [int(im["id"]) for im in images],
                             "file_name": [str(im["file_name"]) for im in images],
                             "gender": pd.Series(gender, dtype=object)})
    paths = [directory / split / f for f in metadata["file_name"]]
    return AttributeDataset(attributes, _FileImages(paths, size), name="coco", split=split, transform=transform,
                            metadata=metadata)


class _CocoMultiLabel(torch.utils.data.Dataset):
    """Rows of a COCO :class:`AttributeDataset` as ``(uint8 image, float labels)`` items."""

    def __init__(self, dataset: AttributeDataset, rows: np.ndarray):
        self.dataset, self.rows = dataset, np.asarray(rows, dtype=np.int64)
        self.categories = list(dataset.attributes.columns)
        codes = np.stack([dataset.attributes[c].cat.codes.to_numpy()[self.rows] for c in self.categories], axis=1)
        self.labels = torch.as_tensor(codes, dtype=torch.float32)
        self.image_ids = dataset.metadata["image_id"].to_numpy()[self.rows].tolist()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.raw_image(int(self.rows[i])), self.labels[i]

    def raw_image(self, i: int) -> torch.Tensor:
        """Item ``i``'s image as stored: ``uint8 (C, H, W)`` (what :func:`fairlib.data.image_tensor` caches)."""
        return self.dataset.raw_image(int(self.rows[i]))

    @property
    def cache_key(self) -> str | None:
        """The parent split's cache key and a digest of the rows and their files: this subset's name in the
        image cache (another data root, e.g. a miniature mirror with the same file names, gets another file)."""
        parent = getattr(self.dataset, "cache_key", None)
        if not parent:
            return None
        h = hashlib.sha1(self.rows.tobytes())
        paths = getattr(getattr(self.dataset, "_image_fn", None), "paths", None)
        if paths is not None:
            h.update("\n".join(str(Path(paths[int(r)]).resolve()) for r in self.rows).encode())
        digest = h.hexdigest()[:10]
        return f"{parent}-rows{len(self.rows)}-{digest}"


def multilabel_targets(dataset: AttributeDataset, *, n: int | None = None, exclude: Any = (),
                       seed: int = 0) -> torch.utils.data.Dataset:
    """A COCO dataset as multi-label classification items (a fine-tuning target).

    Parameters
    ----------
    dataset
        From :func:`load_coco`.
    n
        Draw this many images (seeded, without replacement; kept in image-id order); ``None``: all.
    exclude
        Image ids to leave out (e.g. those of the canonical sets, so that the target never shows
        the model an image it is scored on).
    seed
        Seed of the draw.

    Returns
    -------
    torch.utils.data.Dataset
        Items ``(uint8 image (3, H, W), float labels (K,))``, one 0/1 label per category in the
        dataset's column order; attributes ``labels`` (all rows, ``(N, K)``), ``categories`` and
        ``image_ids``.
    """
    if getattr(dataset, "metadata", None) is None or "image_id" not in dataset.metadata:
        raise ValueError("dataset: expected a COCO dataset from load_dataset('coco', ...) (metadata with image_id)")
    if isinstance(exclude, (str, bytes)) or not hasattr(exclude, "__iter__"):
        raise ValueError(f"exclude: expected a list of image ids, got {exclude!r}")
    exclude = list(exclude)
    bad = [i for i in exclude if not isinstance(i, (int, np.integer)) or isinstance(i, bool)]
    if bad:
        raise ValueError(f"exclude: expected integer COCO image ids, found {bad[0]!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    excluded = {int(i) for i in exclude}
    ids = dataset.metadata["image_id"].to_numpy()
    rows = np.flatnonzero(~np.isin(ids, list(excluded))) if excluded else np.arange(len(ids))
    if len(rows) == 0:
        raise ValueError(f"exclude: leaves none of the {len(ids)} images; exclude fewer ids")
    if n is not None:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= len(rows):
            raise ValueError(f"n: expected 1..{len(rows)} images, got {n!r}")
        rows = np.sort(np.random.default_rng(seed).choice(rows, int(n), replace=False))
    return _CocoMultiLabel(dataset, rows)
