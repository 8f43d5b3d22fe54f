"""Writers of torchvision's on-disk dataset formats, for fetch's injectable downloader.

Each writer has the signature of ``data_scripts.fetch.torchvision_download(name, dest)`` and
writes what torchvision's downloader leaves under ``dest``: CIFAR-10's and CIFAR-100's python
pickles (``cifar-10-batches-py/``: ``data_batch_1..5``, ``test_batch``, ``batches.meta`` with
``label_names``; ``cifar-100-python/``: ``train``, ``test`` with ``fine_labels`` and
``coarse_labels``, ``meta`` with ``fine_label_names`` and ``coarse_label_names``) and
Fashion-MNIST's idx files (``FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``,
magic 0x803 / 0x801, big-endian sizes), as documented by the datasets' authors and read by
torchvision. Tests fetch through them and then load, so fetch and load are tested as one path.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

N_PER_FILE = 12


def write_cifar(name: str, dest: Path, n: int = N_PER_FILE) -> None:
    rng = np.random.default_rng(1)
    if name == "cifar10":
        base = dest / "cifar-10-batches-py"
        base.mkdir(parents=True)
        for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(np.arange(n) % 10)}
            (base / f).write_bytes(pickle.dumps(entry))
        (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
        return
    base = dest / "cifar-100-python"
    base.mkdir(parents=True)
    for f in ("train", "test"):
        fine = np.arange(n) % 100
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": list(fine),
                 "coarse_labels": list(fine % 20)}
        (base / f).write_bytes(pickle.dumps(entry))
    (base / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)],
                                              "coarse_label_names": [f"s{i}" for i in range(20)]}))


def write_fashion_mnist(name: str, dest: Path, n: int = N_PER_FILE) -> None:
    raw = dest / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([0x803, n, 28, 28], dtype=">i4").tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([0x801, n], dtype=">i4").tobytes() + labels.tobytes())


def write_torchvision(name: str, dest: Path) -> None:
    """The injectable downloader for all three."""
    (write_fashion_mnist if name == "fashionmnist" else write_cifar)(name, dest)


def fetched(root: Path, name: str) -> Path:
    """Fetch ``name`` into ``root`` through the real fetch code with the writers above."""
    from data_scripts.fetch import fetch

    return fetch(name, root, tv_download=write_torchvision)
