"""Real datasets for tests, fetched through the real fetch code from a rehearsal mirror.

The mirror (``data_scripts.rehearse``) holds miniature copies of the sources in their published
formats: torchvision's ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` (python pickles with
``data``, ``labels`` / ``fine_labels`` + ``coarse_labels``, ``batches.meta`` / ``meta``) and
Fashion-MNIST's gzipped idx files, the Hugging Face parquet shards and archives, COCO's zips.
:func:`fetched` writes the source of one dataset, with :data:`N_PER_FILE` images per file for the
torchvision ones, and fetches it from there (``fetch(name, root, source=mirror)``), so that fetch
and load are tested as one path.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

# data_scripts lives beside fairlib in the checkout but is not installed (only fairlib is): test
# modules that import this one (before data_scripts, as isort orders them) can import it under a
# bare `pytest` too, not only under `python -m pytest`, which puts the working directory on the path.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

#: Images per file of the torchvision datasets: CIFAR-10 has five training batches and a test
#: batch of this many, CIFAR-100 and Fashion-MNIST a train and a test file; labels cycle 0, 1, 2, ...
N_PER_FILE = 12

_SMALL = {
    "cifar10": {"n_per_batch": N_PER_FILE, "n_test": N_PER_FILE},
    "cifar100": {"n_train": N_PER_FILE, "n_test": N_PER_FILE},
    "fashionmnist": {"n_train": N_PER_FILE, "n_test": N_PER_FILE},
}


def write_torchvision(name: str, mirror: Path) -> None:
    """Write the source files of torchvision dataset ``name`` (small) into the mirror ``mirror``."""
    from data_scripts import rehearse

    rehearse.WRITERS[name](Path(mirror), **_SMALL[name])


def write_source(name: str, mirror: Path) -> None:
    """Write the source files of dataset ``name`` into ``mirror`` (torchvision ones small)."""
    from data_scripts import rehearse

    rehearse.WRITERS[name](Path(mirror), **_SMALL.get(name, {}))


def fetched(root: Path, name: str) -> Path:
    """Fetch ``name`` into ``root`` through the real fetch code, from a fresh rehearsal copy of its source."""
    from data_scripts.fetch import fetch

    mirror = Path(tempfile.mkdtemp(prefix=f"mirror-{name}-"))
    try:
        write_source(name, mirror)
        return fetch(name, root, source=mirror)
    finally:
        shutil.rmtree(mirror, ignore_errors=True)
