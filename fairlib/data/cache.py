"""A split's images as one ``uint8`` array, written in one pass to a memory map and reused.

Training and activation capture read images many times; decoding a JPEG (and resizing it) every
epoch starves a GPU on Colab's two CPU cores, and holding a split as a Python list of tensors (or
``torch.stack`` of one) needs several times its size in RAM. :func:`image_tensor` instead

- returns the dataset's own tensor when the split is already held in memory (SynthFaces, digits,
  CIFAR, Fashion-MNIST): nothing is copied;
- otherwise decodes every image once, in batches (a ``DataLoader``, optionally with worker
  processes), and writes them in order to a ``uint8`` file ``(N, C, H, W)`` on local disk that
  is then opened as a memory map, so the peak memory is one batch whatever the split's size.
  The file is named by the dataset's ``cache_key`` (dataset, split and options, set by
  :func:`~fairlib.data.load_dataset`), written under a temporary name and renamed when
  complete, and reused by every later call.

The cache lives in ``$FAIRLIB_CACHE``, else ``~/.cache/fairlib`` (local disk: in Colab keep it off
Google Drive, which is slow for random reads; the data themselves may live on Drive).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairlib._validation import integer, positive_int

__all__ = ["cache_dir", "image_tensor", "file_backed_copy"]


def cache_dir() -> Path:
    """``$FAIRLIB_CACHE`` if set, else ``~/.cache/fairlib``."""
    env = os.environ.get("FAIRLIB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fairlib"


def file_backed_copy(images: torch.Tensor, *, chunk: int = 2048) -> torch.Tensor:
    """A writable copy of a ``uint8`` tensor held in a file-backed memory map, not in RAM.

    Copying a cached split (say CelebA's 162,770 training images at 128 px, 8 GB) with ``clone()``
    would need that much anonymous memory; the map's pages are page cache, which the kernel
    writes back and reclaims under pressure. The file, in ``cache_dir()/scratch``, is unlinked as
    soon as it is mapped, so nothing is left on disk when the tensor is freed (or the process dies).
    Copies ``chunk`` rows at a time.
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() < 1:
        raise ValueError(f"images: expected a uint8 tensor, got {getattr(images, 'dtype', type(images).__name__)}")
    positive_int(chunk, "chunk")
    scratch = cache_dir() / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=scratch, suffix=".u8")
    try:
        os.close(fd)
        mapped = np.memmap(name, dtype=np.uint8, mode="w+", shape=tuple(images.shape))
    finally:
        os.unlink(name)  # the mapping keeps the data alive; the name goes now
    out = torch.from_numpy(mapped)
    for start in range(0, len(images), chunk):
        out[start:start + chunk] = images[start:start + chunk]
    return out


class _Raw(torch.utils.data.Dataset):
    """The dataset's stored ``uint8`` images, without its transform."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.dataset.raw_image(i)


def _stack(images: list[torch.Tensor]) -> torch.Tensor:
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1 or images[0].dtype != torch.uint8:
        raise ValueError(f"dataset: images differ in size ({sorted(shapes)}) or are not uint8; pass size= to "
                         "load_dataset so that every image has the same side")
    return torch.stack(images)


def _open(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    # copy-on-write: a writable view (torch wants one) that never changes the file
    return torch.from_numpy(np.memmap(path, dtype=np.uint8, mode="c", shape=shape))


def image_tensor(dataset: Any, *, directory: str | os.PathLike | None = None, batch_size: int = 256,
                 num_workers: int = 0, show_progress: bool = False) -> torch.Tensor:
    """Every image of ``dataset`` as one ``uint8`` tensor ``(N, C, H, W)``.

    Parameters
    ----------
    dataset
        An :class:`~fairlib.data.AttributeDataset` from :func:`~fairlib.data.load_dataset`.
        Datasets read from files must have images of one size (pass ``size=`` to
        ``load_dataset`` for the face datasets).
    directory
        Cache directory (default :func:`cache_dir`).
    batch_size, num_workers
        How the single pass over the files is read (workers decode in parallel).

    Returns
    -------
    torch.Tensor
        The dataset's own tensor when it is in memory; else a tensor backed by the memory map
        (pages are read from disk when used).

    Raises
    ------
    ValueError
        The dataset has no ``cache_key`` (it did not come from ``load_dataset``), or its images
        differ in size.
    """
    if not isinstance(dataset, torch.utils.data.Dataset):
        raise TypeError(f"dataset: expected a dataset from fairlib.data.load_dataset, got {type(dataset).__name__}")
    batch_size = positive_int(batch_size, "batch_size")
    num_workers = integer(num_workers, "num_workers", minimum=0)
    if directory is not None and (not isinstance(directory, (str, os.PathLike)) or str(directory).strip() == ""):
        raise TypeError(f"directory: expected a directory path or None, got {directory!r}")
    images = getattr(dataset, "images", None)
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        return images
    key = getattr(dataset, "cache_key", None)
    if not key:
        raise ValueError("dataset: has no cache_key; load it with fairlib.data.load_dataset (which names the split "
                         "in the cache) or pass a dataset with an `images` tensor")
    if len(dataset) == 0:
        raise ValueError("dataset: is empty; there are no images to cache")
    root = Path(directory).expanduser() if directory is not None else cache_dir()
    data_path, meta_path = root / f"{key}.u8", root / f"{key}.json"
    if data_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("n") == len(dataset):
            return _open(data_path, tuple(meta["shape"]))
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{key}.{os.getpid()}.tmp"
    shape = None
    try:
        loader = torch.utils.data.DataLoader(_Raw(dataset), batch_size=batch_size, num_workers=num_workers,
                                             collate_fn=_stack)
        if show_progress:
            from fairlib.notebook import progress

            loader = progress(loader, desc=f"caching {key}")
        # sequential writes, not a writable memory map: dirty mapped pages would count towards
        # the process's memory, plain writes leave them to the page cache
        with open(tmp, "wb") as fh:
            for batch in loader:
                if shape is None:  # the first batch fixes the shape
                    shape = (len(dataset), *batch.shape[1:])
                elif tuple(batch.shape[1:]) != shape[1:]:
                    raise ValueError(f"dataset: images differ in size ({shape[1:]} and {tuple(batch.shape[1:])}); "
                                     "pass size= to load_dataset so that every image has the same side")
                fh.write(batch.numpy().tobytes())
        os.replace(tmp, data_path)
        meta_tmp = root / f".{key}.{os.getpid()}.json.tmp"
        meta_tmp.write_text(json.dumps({"n": shape[0], "shape": list(shape), "dtype": "uint8"}))
        os.replace(meta_tmp, meta_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _open(data_path, shape)
