"""Readers for each dataset's on-disk layout (the layout ``data_scripts.fetch`` writes).

======================  ===========================================================
dataset                 files under ``<root>/<name>/``
======================  ===========================================================
fashionmnist            ``FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``
cifar10                 ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``
cifar100                ``cifar-100-python/{train,test,meta}``
fairface                ``fairface_label_{train,val}.csv`` + the images its ``file`` column names
utkface                 ``UTKFace/[age]_[gender]_[race]_[date&time].jpg`` (any depth)
celeba                  ``list_attr_celeba.txt``, ``list_eval_partition.txt``, ``img_align_celeba/``
======================  ===========================================================
"""

from __future__ import annotations

import gzip
import operator
import os
import pickle
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fairlib._validation import integer, number, positive_int
from fairlib.data.paths import DatasetNotFoundError, data_root, dataset_dir

__all__ = [
    "AttributeDataset",
    "FASHIONMNIST_CLASSES",
    "FAIRFACE_AGES",
    "FAIRFACE_GENDERS",
    "FAIRFACE_RACES",
    "UTKFACE_GENDERS",
    "UTKFACE_RACES",
    "parse_utkface_name",
]

FASHIONMNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FAIRFACE_AGES = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69",
                 "more than 70")
FAIRFACE_GENDERS = ("Male", "Female")
FAIRFACE_RACES = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian",
                  "Indian", "Middle Eastern")
UTKFACE_GENDERS = ("Male", "Female")  # 0 male, 1 female in the file names
UTKFACE_RACES = ("White", "Black", "Asian", "Indian", "Others")
#: UTKFace ages (0-116) binned like FairFace's, so the two can share analyses.
UTKFACE_AGE_EDGES = (0, 3, 10, 20, 30, 40, 50, 60, 70, 200)


class AttributeDataset(torch.utils.data.Dataset):
    """Images with categorical attributes: the common shape of every registry dataset.

    Parameters
    ----------
    attributes
        One row per sample; Categorical columns with the dataset's own category names.
    image_fn
        ``image_fn(i)`` returns sample ``i`` as a ``uint8`` tensor ``(C, H, W)``.
    transform
        Optional callable on that tensor; without one, ``__getitem__`` returns ``float32``
        in [0, 1].
    metadata
        Optional per-sample extras that are not categorical (file names, exact ages).
    images
        The whole split as one ``uint8`` tensor ``(N, C, H, W)`` when it is held in memory
        (small datasets, rendered ones); ``None`` for datasets read file by file.

    Attributes
    ----------
    attributes : pandas.DataFrame
    schema : dict[str, list]
        Attribute name -> categories, in code order.
    images : torch.Tensor or None
    cache_key : str or None
        Set by :func:`fairlib.data.load_dataset`: names this split and its options in the
        image cache (:func:`fairlib.data.image_tensor`).
    """

    def __init__(self, attributes: pd.DataFrame, image_fn: Callable[[int], torch.Tensor] | None = None, *,
                 name: str, split: str, transform: Callable | None = None,
                 metadata: pd.DataFrame | None = None, images: torch.Tensor | None = None):
        if not isinstance(attributes, pd.DataFrame):
            raise TypeError("attributes: expected a pandas DataFrame (one row per sample), "
                            f"got {type(attributes).__name__}")
        plain = [c for c in attributes if not isinstance(attributes[c].dtype, pd.CategoricalDtype)]
        if plain:
            raise ValueError(f"attributes: columns {plain} are not Categorical; convert with .astype('category') "
                             "(non-categorical extras belong in metadata)")
        if image_fn is not None and not callable(image_fn):
            raise TypeError("image_fn: expected a function image_fn(i) -> uint8 (C, H, W), "
                            f"got {type(image_fn).__name__}")
        if images is not None:
            if not isinstance(images, torch.Tensor) or images.dim() != 4:
                raise TypeError("images: expected a torch tensor (N, C, H, W), got "
                                f"{type(images).__name__} {tuple(getattr(images, 'shape', ()))}")
            if len(images) != len(attributes):
                raise ValueError(f"mismatched lengths: images has {len(images)}, attributes has {len(attributes)}; "
                                 "all must describe the same examples")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform: expected a function of one image or None, got {type(transform).__name__}")
        if image_fn is None:
            if images is None:
                raise ValueError("image_fn/images: give a function that reads one image, or the images")
            image_fn = images.__getitem__
        self.images = images
        self.cache_key: str | None = None
        self.attributes = attributes.reset_index(drop=True)
        self.schema = {c: list(self.attributes[c].cat.categories) for c in self.attributes}
        self._image_fn = image_fn
        self.transform = transform
        self.metadata = metadata.reset_index(drop=True) if metadata is not None else None
        self.name = name
        self.split = split
        self._codes = {c: self.attributes[c].cat.codes.to_numpy() for c in self.attributes}

    def __len__(self) -> int:
        return len(self.attributes)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, int]]:
        """Return ``(image, row)``; ``row`` maps each attribute to its category code
        (an index into ``schema[name]``; -1 for a missing value), which collates in a
        DataLoader."""
        img = self.raw_image(i)
        img = self.transform(img) if self.transform is not None else img.float() / 255
        return img, {c: int(v[i]) for c, v in self._codes.items()}

    def raw_image(self, i: int) -> torch.Tensor:
        """Sample ``i`` as stored: ``uint8 (C, H, W)``, before any transform."""
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"i: expected an integer index, got {i!r}") from None
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        return self._image_fn(int(i) % len(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, split={self.split!r}, n={len(self)})"


def _cat(values: Any, categories: Sequence) -> pd.Categorical:
    return pd.Categorical(values, categories=list(categories))


def _codes_cat(codes: np.ndarray, categories: Sequence) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=list(categories))


def _memory_dataset(images: np.ndarray, attributes: pd.DataFrame, **kw) -> AttributeDataset:
    tensor = torch.from_numpy(np.array(images, order="C", copy=not images.flags.writeable))
    return AttributeDataset(attributes, images=tensor, **kw)


def _check_split(name: str, split: str, allowed: Sequence[str], aliases: dict | None = None) -> str:
    split = (aliases or {}).get(split, split)
    if split not in allowed:
        raise ValueError(
            f"split: {name} has splits {', '.join(map(repr, allowed))}; got {split!r}"
        )
    return split


def _require(name: str, root: Path, directory: Path, paths: Sequence[Path], what: str) -> None:
    if not directory.is_dir() or not all(p.exists() for p in paths):
        raise DatasetNotFoundError(name, directory, what, root)


#: How a file's image becomes ``size x size``: scaled to the square ("stretch", which changes the
#: aspect ratio of a non-square image), or its shorter side scaled to ``size`` and the centre
#: square cut out ("crop", the torchvision ``Resize(size)`` + ``CenterCrop(size)`` of most papers).
FITS = ("stretch", "crop")


def _check_fit(fit: Any) -> str:
    if fit not in FITS:
        raise ValueError(f"fit: expected one of {list(FITS)} (how an image becomes size x size), got {fit!r}")
    return fit


def _pil_loader(size: int | None, fit: str = "stretch") -> Callable[[Path], torch.Tensor]:
    from PIL import Image

    _check_fit(fit)

    def load(path: Path) -> torch.Tensor:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and fit == "crop":
                w, h = im.size
                scale = size / min(w, h)
                sw, sh = max(size, round(w * scale)), max(size, round(h * scale))
                im = im.resize((sw, sh), Image.BILINEAR)
                left, top = (sw - size) // 2, (sh - size) // 2
                im = im.crop((left, top, left + size, top + size))
            elif size is not None:
                im = im.resize((size, size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)

    return load


def _check_fraction(value: Any, name: str = "test_fraction") -> float:
    number(value, name, low=0, high=1, low_open=True, high_open=True,
           expected="a fraction strictly between 0 and 1 (e.g. 0.25)")
    return value


def _check_size_option(size: Any) -> int | None:
    return positive_int(size, "size", allow_none=True, meaning="(resize images to size x size)")


# --------------------------------------------------------------------------------------------
# digits (shipped with scikit-learn)


def load_digits_dataset(split: str = "train", *, transform=None, test_fraction: float = 0.25,
                        seed: int = 0) -> AttributeDataset:
    """scikit-learn's 8x8 handwritten digits, split 75/25 (stratified, fixed seed): 1,347 / 450.

    The one digits split of the course (Chapter 2's quick profile uses it).

    Images are ``uint8 (1, 8, 8)`` scaled from 0-16 to 0-255 (x 255/16, rounded); ``split`` is ``train``,
    ``test`` or ``all``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    split = _check_split("digits", split, ("train", "test", "all"))
    test_fraction, seed = _check_fraction(test_fraction), integer(seed, "seed", minimum=0)
    d = load_digits()
    images = np.round(d.images * (255 / 16)).astype(np.uint8)[:, None]
    idx = np.arange(len(images))
    if split != "all":
        tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                  stratify=d.target)
        idx = np.sort(tr if split == "train" else te)
    attrs = pd.DataFrame({"label": _codes_cat(d.target[idx], [str(k) for k in range(10)])})
    return _memory_dataset(images[idx], attrs, name="digits", split=split, transform=transform)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST (idx files, optionally gzipped, in torchvision's raw/ layout)


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (``.gz`` or plain): big-endian magic, dims, then uint8 data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} values, found {arr.size}")
    return arr.reshape(tuple(dims))


def _find_idx(raw: Path, stem: str) -> Path:
    for cand in (raw / stem, raw / f"{stem}.gz"):
        if cand.exists():
            return cand
    return raw / stem


def load_fashionmnist(split: str = "train", *, root=None, transform=None) -> AttributeDataset:
    """Fashion-MNIST: ``uint8 (1, 28, 28)`` images, ``label`` with the 10 class names."""
    split = _check_split("fashionmnist", split, ("train", "test"))
    base = data_root(root)
    d = dataset_dir("fashionmnist", root)
    raw = d / "FashionMNIST" / "raw"
    prefix = "train" if split == "train" else "t10k"
    img_p = _find_idx(raw, f"{prefix}-images-idx3-ubyte")
    lab_p = _find_idx(raw, f"{prefix}-labels-idx1-ubyte")
    _require("fashionmnist", base, d, [img_p, lab_p], f"{img_p.name}/{lab_p.name} in {raw}")
    images = read_idx(img_p)[:, None]
    labels = read_idx(lab_p).astype(np.int64)
    attrs = pd.DataFrame({"label": _codes_cat(labels, FASHIONMNIST_CLASSES)})
    return _memory_dataset(images, attrs, name="fashionmnist", split=split, transform=transform)


# --------------------------------------------------------------------------------------------
# CIFAR-10/100 (the python pickles torchvision downloads)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        obj = pickle.load(f, encoding="latin1")
    return obj


def _cifar_images(batch: dict) -> np.ndarray:
    return np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)


def load_cifar10(split: str = "train", *, root=None, transform=None) -> AttributeDataset:
    """CIFAR-10: ``uint8 (3, 32, 32)``; ``label`` with the names in ``batches.meta``."""
    split = _check_split("cifar10", split, ("train", "test"))
    base = data_root(root)
    d = dataset_dir("cifar10", root)
    folder = d / "cifar-10-batches-py"
    files = [folder / f"data_batch_{k}" for k in range(1, 6)] if split == "train" else [
        folder / "test_batch"]
    _require("cifar10", base, d, files + [folder / "batches.meta"],
             f"CIFAR-10 python batches in {folder}")
    names = _unpickle(folder / "batches.meta")["label_names"]
    batches = [_unpickle(f) for f in files]
    images = np.concatenate([_cifar_images(b) for b in batches])
    labels = np.concatenate([np.asarray(b["labels"], np.int64) for b in batches])
    attrs = pd.DataFrame({"label": _codes_cat(labels, names)})
    return _memory_dataset(images, attrs, name="cifar10", split=split, transform=transform)


def load_cifar100(split: str = "train", *, root=None, transform=None) -> AttributeDataset:
    """CIFAR-100: ``uint8 (3, 32, 32)``; ``label`` (100 fine classes) and ``coarse_label``
    (20 superclasses), named as in ``meta``."""
    split = _check_split("cifar100", split, ("train", "test"))
    base = data_root(root)
    d = dataset_dir("cifar100", root)
    folder = d / "cifar-100-python"
    f = folder / split
    _require("cifar100", base, d, [f, folder / "meta"], f"CIFAR-100 python files in {folder}")
    meta = _unpickle(folder / "meta")
    b = _unpickle(f)
    attrs = pd.DataFrame({
        "label": _codes_cat(np.asarray(b["fine_labels"]), meta["fine_label_names"]),
        "coarse_label": _codes_cat(np.asarray(b["coarse_labels"]), meta["coarse_label_names"]),
    })
    return _memory_dataset(_cifar_images(b), attrs, name="cifar100", split=split,
                           transform=transform)


# --------------------------------------------------------------------------------------------
# FairFace (label CSV + image files)


def _checked_cat(series: pd.Series, categories: Sequence[str], what: str) -> pd.Categorical:
    values = series.astype(str).str.strip()
    bad = sorted(set(values) - set(categories))
    if bad:
        raise ValueError(f"{what}: unexpected values {bad[:5]}; expected {list(categories)}")
    return _cat(values, categories)


def load_fairface(split: str = "train", *, root=None, transform=None,
                  size: int | None = None) -> AttributeDataset:
    """FairFace: ``age`` (9 bins), ``gender`` (2), ``race`` (7) from
    ``fairface_label_{train,val}.csv``; images are read lazily as ``uint8 (3, H, W)``
    (optionally resized to ``size``)."""
    split = _check_split("fairface", split, ("train", "val"), {"validation": "val"})
    size = _check_size_option(size)
    base = data_root(root)
    d = dataset_dir("fairface", root)
    csv = d / f"fairface_label_{split}.csv"
    _require("fairface", base, d, [csv], csv.name)
    table = pd.read_csv(csv)
    missing = {"file", "age", "gender", "race"} - set(table.columns)
    if missing:
        raise ValueError(f"{csv}: missing columns {sorted(missing)}")
    attrs = pd.DataFrame({
        "age": _checked_cat(table["age"], FAIRFACE_AGES, f"{csv.name} age"),
        "gender": _checked_cat(table["gender"], FAIRFACE_GENDERS, f"{csv.name} gender"),
        "race": _checked_cat(table["race"], FAIRFACE_RACES, f"{csv.name} race"),
    })
    files = [d / f for f in table["file"].astype(str)]
    load = _pil_loader(size)
    meta = pd.DataFrame({"file": table["file"].astype(str)})
    return AttributeDataset(attrs, lambda i: load(files[i]), name="fairface", split=split,
                            transform=transform, metadata=meta)


# --------------------------------------------------------------------------------------------
# UTKFace (labels in the file name)

_UTK_RE = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d+)[^/]*\.jpg$", re.IGNORECASE)


def parse_utkface_name(filename: str) -> tuple[int, int, int] | None:
    """``(age, gender, race)`` from ``[age]_[gender]_[race]_[date&time].jpg``; ``None`` for
    a malformed name (the real archive has a few, e.g. a missing race field)."""
    if not isinstance(filename, (str, os.PathLike)):
        raise TypeError(f"filename: expected a file name such as '25_0_1_2017.jpg', got {filename!r}")
    m = _UTK_RE.match(Path(filename).name)
    if not m:
        return None
    age = int(m.group(1))
    if age > 116:
        return None
    return age, int(m.group(2)), int(m.group(3))


def load_utkface(split: str = "train", *, root=None, transform=None, size: int | None = None,
                 test_fraction: float = 0.2, seed: int = 0) -> AttributeDataset:
    """UTKFace: ``age`` (FairFace's bins), ``gender``, ``race`` parsed from file names.

    UTKFace has no official split: files (sorted by name) are split ``1 - test_fraction`` /
    ``test_fraction`` with a fixed seed; ``split="all"`` returns every file. Exact ages are in
    ``metadata["age_years"]``. Malformed names are skipped.
    """
    split = _check_split("utkface", split, ("train", "test", "all"))
    test_fraction, seed = _check_fraction(test_fraction), integer(seed, "seed", minimum=0)
    size = _check_size_option(size)
    base = data_root(root)
    d = dataset_dir("utkface", root)
    files = sorted(d.rglob("*.jpg")) if d.is_dir() else []
    parsed = [(f, parse_utkface_name(f.name)) for f in files]
    parsed = [(f, lab) for f, lab in parsed if lab is not None]
    if not parsed:
        raise DatasetNotFoundError("utkface", d, "[age]_[gender]_[race]_[date&time].jpg files",
                                   base)
    files = [f for f, _ in parsed]
    labels = np.array([lab for _, lab in parsed], dtype=np.int64)
    idx = np.arange(len(files))
    if split != "all":
        perm = np.random.default_rng(seed).permutation(len(files))
        n_test = int(round(test_fraction * len(files)))
        idx = np.sort(perm[:n_test] if split == "test" else perm[n_test:])
    age_bin = np.digitize(labels[idx, 0], UTKFACE_AGE_EDGES[1:-1])
    attrs = pd.DataFrame({
        "age": _codes_cat(age_bin, FAIRFACE_AGES),
        "gender": _codes_cat(labels[idx, 1], UTKFACE_GENDERS),
        "race": _codes_cat(labels[idx, 2], UTKFACE_RACES),
    })
    chosen = [files[i] for i in idx]
    meta = pd.DataFrame({"file": [str(f.relative_to(d)) for f in chosen],
                         "age_years": labels[idx, 0]})
    load = _pil_loader(size)
    return AttributeDataset(attrs, lambda i: load(chosen[i]), name="utkface", split=split,
                            transform=transform, metadata=meta)


# --------------------------------------------------------------------------------------------
# CelebA (attribute and partition text files + aligned images)

CELEBA_SPLITS = {"train": 0, "val": 1, "test": 2}


def read_celeba_attributes(path: Path) -> pd.DataFrame:
    """Parse ``list_attr_celeba.txt``: a count line, a line of 40 names, then
    ``file v1 ... v40`` rows of -1/1. Returns ``file`` plus one int column per attribute."""
    with open(path) as f:
        count = int(f.readline().split()[0])
        names = f.readline().split()
    table = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, names=["file", *names])
    if len(table) != count:
        raise ValueError(f"{path}: header says {count} rows, found {len(table)}")
    values = table[names].to_numpy()
    if not np.isin(values, (-1, 1)).all():
        raise ValueError(f"{path}: attribute values must be -1 or 1")
    return table


def load_celeba(split: str = "train", *, root=None, transform=None,
                size: int | None = None, n: int | None = None, seed: int = 0,
                fit: str = "stretch") -> AttributeDataset:
    """CelebA: the 40 binary attributes (categories ``[0, 1]``: -1 in the file is 0) and the
    official partition (0 train, 1 valid, 2 test); images from ``img_align_celeba/``.

    ``n`` keeps a uniformly random subset of ``n`` images of the split (drawn with ``seed``, in file
    order); ``None`` or an ``n`` at least the split's size keeps the whole split. ``fit``: how the
    178 x 218 crops become ``size x size``, ``"stretch"`` or ``"crop"`` (aspect kept, centre
    square; see :data:`FITS`).
    """
    fit = _check_fit(fit)
    split = _check_split("celeba", split, tuple(CELEBA_SPLITS), {"valid": "val",
                                                                 "validation": "val"})
    size = _check_size_option(size)
    positive_int(n, "n", allow_none=True, meaning="(images kept of the split)")
    integer(seed, "seed", minimum=0)
    base = data_root(root)
    d = dataset_dir("celeba", root)
    attr_p, part_p = d / "list_attr_celeba.txt", d / "list_eval_partition.txt"
    _require("celeba", base, d, [attr_p, part_p, d / "img_align_celeba"],
             "list_attr_celeba.txt, list_eval_partition.txt and img_align_celeba/")
    table = read_celeba_attributes(attr_p)
    part = pd.read_csv(part_p, sep=r"\s+", header=None, names=["file", "partition"])
    table = table.merge(part, on="file", how="left", validate="one_to_one")
    if table["partition"].isna().any():
        raise ValueError(f"{part_p}: no partition for {table['file'][table['partition'].isna()].iloc[0]}")
    table = table[table["partition"] == CELEBA_SPLITS[split]].reset_index(drop=True)
    if n is not None and n < len(table):
        keep = np.sort(np.random.default_rng(seed).choice(len(table), size=n, replace=False))
        table = table.iloc[keep].reset_index(drop=True)
    names = [c for c in table.columns if c not in ("file", "partition")]
    attrs = pd.DataFrame({c: _codes_cat((table[c].to_numpy() > 0).astype(np.int64), [0, 1])
                          for c in names})
    files = [d / "img_align_celeba" / f for f in table["file"]]
    load = _pil_loader(size, fit)
    return AttributeDataset(attrs, lambda i: load(files[i]), name="celeba", split=split,
                            transform=transform, metadata=table[["file"]].copy())
