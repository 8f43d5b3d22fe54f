"""Where fetch gets its bytes from: the real sources, or a local copy of them in their published layout.

Every file the course downloads is named here, in one place, with the checksum its publisher (or
a public checksum list) gives for it; ``book/datasets.md`` ("Where the real data comes from") holds
the evidence for each entry, checked on 2026-11-30.

* :data:`HF_MIRRORS`: Hugging Face dataset repositories (FairFace, CelebA parquet shards; UTKFace's
  ``UTKFace.tar.gz``). The Hub publishes a sha256 (the Git LFS oid) for every large file.
* :data:`TORCHVISION_FILES`: the archives ``torchvision.datasets`` downloads for CIFAR-10, CIFAR-100
  and Fashion-MNIST, with the URLs and MD5 sums of torchvision's own source
  (``torchvision/datasets/cifar.py``, ``mnist.py``); a test checks them against the installed torchvision.
* :data:`COCO_FILES`: the three COCO 2017 zips on ``images.cocodataset.org``, with the sizes and sha256
  sums of TensorFlow Datasets' public checksum list (``tensorflow_datasets/url_checksums/coco.txt``).

Two sources serve them: :class:`NetworkSource` (the Hub through ``huggingface_hub``, every URL through
``urllib`` with timeouts) and :class:`LocalSource`, a directory that holds a copy of every source in its
exact published layout (what ``python -m data_scripts.rehearse`` writes)::

    <dir>/huggingface/<repo_id>/<path in the repository>     e.g. huggingface/py97/UTKFace-Cropped/UTKFace.tar.gz
    <dir>/torchvision/<file name torchvision downloads>      e.g. torchvision/cifar-10-python.tar.gz
    <dir>/cocodataset/<path of the URL>                      e.g. cocodataset/zips/val2017.zip

Only the bytes differ between the two: fetch converts and extracts them with the same code.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urlparse

from tqdm.auto import tqdm

__all__ = [
    "COCO_FILES",
    "FetchError",
    "HFMirror",
    "HF_MIRRORS",
    "HFSource",
    "LocalSource",
    "NETWORK_TIMEOUT_S",
    "NetworkSource",
    "RemoteFile",
    "Source",
    "TORCHVISION_FILES",
    "URLFile",
    "http_download",
    "md5_file",
    "sha256_file",
    "with_deadline",
]

#: Seconds before an unanswered network request is an error (the offline case must fail fast).
NETWORK_TIMEOUT_S = 10


class FetchError(RuntimeError):
    """A download or conversion failed; nothing was left that loads as a dataset."""


# --------------------------------------------------------------------------------------------
# what is downloaded


@dataclass(frozen=True)
class HFMirror:
    """A public Hugging Face dataset repository.

    Fetch downloads every file whose path starts with ``prefix`` and ends with ``suffix``;
    ``splits`` maps a substring of a file's name to the split written on disk.
    """

    repo_id: str
    prefix: str
    splits: dict[str, str]
    license: str
    revision: str = "main"
    suffix: str = ".parquet"
    note: str = ""


HF_MIRRORS: dict[str, HFMirror] = {
    "fairface": HFMirror(
        repo_id="HuggingFaceM4/FairFace",
        # faces cropped with 0.25 padding, FairFace's main release: 0.25/train-00000-of-00002-<hash>.parquet,
        # 0.25/train-00001-of-00002-<hash>.parquet, 0.25/validation-00000-of-00001-<hash>.parquet
        # (250 + 250 + 63 MB); 1.25/ holds the 1.25-padding crops and is not downloaded
        prefix="0.25/",
        splits={"train": "train", "validation": "val"},
        license="CC BY 4.0",
    ),
    "celeba": HFMirror(
        repo_id="flwrlabs/celeba",
        # img_align+identity+attr/ holds train-000NN-of-00019, valid-0000N-of-00003 and
        # test-0000N-of-00003 parquet shards (380-500 MB each, about 11 GB); there is no data/ folder
        prefix="img_align+identity+attr/",
        splits={"train": "train", "valid": "val", "test": "test"},
        license="CelebA Dataset Release Agreement (non-commercial research only)",
    ),
    "utkface": HFMirror(
        repo_id="py97/UTKFace-Cropped",
        # one archive, UTKFace.tar.gz (107 MB): UTKFace/[age]_[gender]_[race]_[date&time].jpg.chip.jpg
        prefix="UTKFace",
        suffix=".tar.gz",
        splits={"": "all"},
        license="UTKFace: non-commercial research only (the mirror's card says MIT; the original terms apply)",
        note="community mirror of the aligned & cropped release, whose original link is gone",
    ),
}


@dataclass(frozen=True)
class URLFile:
    """One file published at a fixed URL.

    Attributes
    ----------
    url
        Where the network source downloads it.
    mirror_path
        Where a :class:`LocalSource` keeps its copy, relative to the source's directory.
    size
        Published size in bytes (progress bar, documentation), ``None`` when unknown.
    md5, sha256
        Published checksums; fetch rejects a download from the network that matches neither.
    """

    url: str
    mirror_path: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None

    @property
    def name(self) -> str:
        return self.mirror_path.rsplit("/", 1)[-1]


_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

#: The archives torchvision downloads (URLs and MD5 sums from torchvision/datasets/cifar.py and mnist.py).
TORCHVISION_FILES: dict[str, tuple[URLFile, ...]] = {
    "cifar10": (URLFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                        "torchvision/cifar-10-python.tar.gz", 170_498_071,
                        md5="c58f30108f718f92721af3b95e74349a"),),
    "cifar100": (URLFile("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                         "torchvision/cifar-100-python.tar.gz", 169_001_437,
                         md5="eb9058c3a382ffc7106e4002c42a8d85"),),
    "fashionmnist": (
        URLFile(_FASHION + "train-images-idx3-ubyte.gz", "torchvision/train-images-idx3-ubyte.gz", 26_421_880,
                md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        URLFile(_FASHION + "train-labels-idx1-ubyte.gz", "torchvision/train-labels-idx1-ubyte.gz", 29_515,
                md5="25c81989df183df01b3e8a0aad5dffbe"),
        URLFile(_FASHION + "t10k-images-idx3-ubyte.gz", "torchvision/t10k-images-idx3-ubyte.gz", 4_422_102,
                md5="bef4ecab320f06d8554ea6380940ec79"),
        URLFile(_FASHION + "t10k-labels-idx1-ubyte.gz", "torchvision/t10k-labels-idx1-ubyte.gz", 5_148,
                md5="bb300cfdad3c16e7a12a480ee83cd310"),
    ),
}

#: torchvision's dataset class of each name (the manifest names it).
TORCHVISION_CLASSES = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "fashionmnist": "FashionMNIST"}

TORCHVISION_LICENSES = {
    "cifar10": "no explicit license (University of Toronto; research use)",
    "cifar100": "no explicit license (University of Toronto; research use)",
    "fashionmnist": "MIT (Zalando Research)",
}

#: COCO 2017: annotations first (small), then the images; sizes and sha256 from TensorFlow Datasets'
#: url_checksums/coco.txt. About 20.4 GB in all (train2017.zip alone 19.3 GB).
COCO_FILES: tuple[URLFile, ...] = (
    URLFile("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
            "cocodataset/annotations/annotations_trainval2017.zip", 252_907_541,
            sha256="113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268"),
    URLFile("http://images.cocodataset.org/zips/val2017.zip", "cocodataset/zips/val2017.zip", 815_585_330,
            sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05"),
    URLFile("http://images.cocodataset.org/zips/train2017.zip", "cocodataset/zips/train2017.zip", 19_336_861_798,
            sha256="69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929"),
)

COCO_LICENSE = ("annotations CC BY 4.0 (COCO Consortium); images under their Flickr licenses "
                "(Flickr Terms of Use)")


# --------------------------------------------------------------------------------------------
# helpers


@dataclass(frozen=True)
class RemoteFile:
    """A file of a Hugging Face repository listing."""

    path: str
    size: int | None = None
    sha256: str | None = None  # published by the source (Git LFS oid), when it has one


T = TypeVar("T")


def with_deadline(fn: Callable[[], T], seconds: float, what: str) -> T:
    """Run ``fn`` in a daemon thread and give up after ``seconds``.

    Some network stacks block far longer than their own timeouts (e.g. DNS); a thread with a
    deadline guarantees the offline error arrives in time.
    """
    box: dict[str, object] = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as err:  # re-raised in the caller's thread
            box["error"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise FetchError(f"{what}: no answer within {seconds:.0f} s; are you offline?")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _hash_file(path: Path, h, chunk: int = 1 << 20) -> str:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    return _hash_file(path, hashlib.sha256(), chunk)


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    """The MD5 hex digest of a file (the checksum torchvision's sources publish)."""
    return _hash_file(path, hashlib.md5(usedforsecurity=False), chunk)


def _check_host(url: str, timeout: float) -> None:
    """Fail within ``timeout`` seconds when the host of ``url`` cannot be reached."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)

    def connect():
        with socket.create_connection((host, port), timeout=timeout):
            pass

    try:
        with_deadline(connect, timeout, f"connecting to {host}")
    except OSError as err:
        raise ConnectionError(f"cannot connect to {host}:{port} ({err})") from err


#: Seconds before the first retry of a dropped download (doubled for each further one, at most 10 s).
RETRY_BACKOFF_S = 1.0

_RETRYABLE = (ConnectionError, TimeoutError, socket.timeout, http.client.IncompleteRead, urllib.error.URLError)


def http_download(url: str, dest: Path, *, timeout: float = NETWORK_TIMEOUT_S, size: int | None = None,
                  retries: int = 3, desc: str | None = None) -> None:
    """Stream ``url`` to ``dest`` with a progress bar, resuming a dropped connection.

    Parameters
    ----------
    url
        HTTP(S) URL.
    dest
        File to write (its folder is created).
    timeout
        Seconds for connecting and for each read.
    size
        Expected size in bytes, used when the server sends no ``Content-Length``.
    retries
        How many times a connection that drops after some bytes arrived is resumed (with an HTTP
        ``Range`` request; from the start when the server ignores it). A first connection that
        fails is not retried, so that being offline is an error within ``timeout`` seconds.

    Raises
    ------
    urllib.error.HTTPError
        The server answered with an error status (e.g. 404).
    ConnectionError, TimeoutError, urllib.error.URLError
        No connection, or the connection dropped more than ``retries`` times.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    written, failures = 0, 0
    with open(dest, "wb") as out, tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                                       desc=desc or dest.name, leave=False) as bar:
        while True:
            headers = {"User-Agent": "fairlib-data-scripts"}
            if written:
                headers["Range"] = f"bytes={written}-"
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
                    if written and resp.status != 206:  # the server ignored the range: start again
                        out.seek(0)
                        out.truncate()
                        bar.reset()
                        written = 0
                    length = resp.headers.get("Content-Length")
                    expected = written + int(length) if length and length.isdigit() else size
                    if bar.total is None and expected:
                        bar.total = expected
                    for block in iter(lambda: resp.read(1 << 20), b""):
                        out.write(block)
                        written += len(block)
                        bar.update(len(block))
                if expected is not None and written < expected:
                    raise ConnectionError(f"connection closed after {written} of {expected} bytes")
                return
            except urllib.error.HTTPError:
                raise
            except _RETRYABLE:
                failures += 1
                if written == 0 or failures > retries:
                    raise
                time.sleep(min(RETRY_BACKOFF_S * 2.0 ** (failures - 1), 10.0))


# --------------------------------------------------------------------------------------------
# sources


class Source(Protocol):
    """What fetch needs from a source of bytes."""

    #: True when the bytes are the published ones, so that published checksums must match.
    verifies_checksums: bool

    def describe(self, what: str) -> str: ...

    def list_files(self, repo_id: str, revision: str) -> list[RemoteFile]: ...

    def download(self, repo_id: str, path: str, revision: str, dest: Path) -> None: ...

    def download_url(self, file: URLFile, dest: Path) -> None: ...


class NetworkSource:
    """The real sources: Hugging Face repositories and plain HTTP(S) URLs, with short timeouts."""

    verifies_checksums = True

    def __init__(self, timeout: float = NETWORK_TIMEOUT_S):
        # huggingface_hub reads these when it is imported, so set them first
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(timeout)))
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(timeout)))
        self.timeout = timeout

    def describe(self, what: str) -> str:
        return what

    def check(self) -> None:
        """Fail fast when the Hub cannot be reached (the Hub client would otherwise retry
        with back-off for about half a minute)."""
        _check_host(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), self.timeout)

    def list_files(self, repo_id: str, revision: str) -> list[RemoteFile]:
        from huggingface_hub import HfApi

        def listing():
            out = []
            for entry in HfApi().list_repo_tree(repo_id, repo_type="dataset",
                                                revision=revision, recursive=True):
                if not hasattr(entry, "size"):  # folders have no size
                    continue
                lfs = getattr(entry, "lfs", None)
                sha = getattr(lfs, "sha256", None) if lfs is not None else None
                if sha is None and isinstance(lfs, dict):
                    sha = lfs.get("sha256")
                out.append(RemoteFile(entry.path, getattr(entry, "size", None), sha))
            return out

        return with_deadline(listing, 2 * self.timeout, f"listing {repo_id} on huggingface.co")

    def download(self, repo_id: str, path: str, revision: str, dest: Path) -> None:
        import inspect

        from huggingface_hub import hf_hub_download

        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.parent / ".hf"
        extra = {}
        if "tqdm_class" in inspect.signature(hf_hub_download).parameters:
            extra["tqdm_class"] = tqdm  # older huggingface_hub versions draw their own bar
        got = hf_hub_download(repo_id, path, repo_type="dataset", revision=revision,
                              local_dir=staging, etag_timeout=self.timeout, **extra)
        os.replace(got, dest)

    def download_url(self, file: URLFile, dest: Path) -> None:
        _check_host(file.url, self.timeout)
        http_download(file.url, dest, timeout=self.timeout, size=file.size, desc=file.name)


#: The former name of :class:`NetworkSource`.
HFSource = NetworkSource


@dataclass
class LocalSource:
    """A local copy of every source in its published layout (see the module docstring).

    Used by the rehearsal (``python -m data_scripts.fetch NAME --root DIR --source MIRROR_DIR``) and
    the tests. Its files are miniature stand-ins, so published checksums are not compared
    (``verifies_checksums=False``, recorded as ``"verified": false`` in the manifest) unless
    ``verify=True`` (tests of the mismatch path).

    ``fail_after`` makes the n-th download (1-based) raise ``ConnectionError`` after writing half of
    the file, to simulate a dropped connection; ``offline`` makes every request fail.
    """

    directory: Path
    fail_after: int | None = None
    offline: bool = False
    verify: bool = False
    calls: list[str] = field(default_factory=list)

    @property
    def verifies_checksums(self) -> bool:
        return self.verify

    def describe(self, what: str) -> str:
        return f"local copy in {Path(self.directory)} of {what}"

    def _repo(self, repo_id: str) -> Path:
        return Path(self.directory) / "huggingface" / repo_id

    def list_files(self, repo_id: str, revision: str) -> list[RemoteFile]:
        if self.offline:
            raise ConnectionError("simulated: network unreachable")
        base = self._repo(repo_id)
        if not base.is_dir():
            raise FileNotFoundError(f"no copy of {repo_id} in {base}; write one with "
                                    f"python -m data_scripts.rehearse --root {self.directory}")
        return [RemoteFile(p.relative_to(base).as_posix(), p.stat().st_size, None)
                for p in sorted(base.rglob("*")) if p.is_file()]

    def download(self, repo_id: str, path: str, revision: str, dest: Path) -> None:
        self._copy(self._repo(repo_id) / path, dest, path)

    def download_url(self, file: URLFile, dest: Path) -> None:
        if self.offline:
            raise ConnectionError("simulated: network unreachable")
        src = Path(self.directory) / file.mirror_path
        if not src.is_file():
            raise FileNotFoundError(f"no copy of {file.url} at {src}; write one with "
                                    f"python -m data_scripts.rehearse --root {self.directory}")
        self._copy(src, dest, file.mirror_path)

    def _copy(self, src: Path, dest: Path, label: str) -> None:
        self.calls.append(label)
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = src.stat().st_size
        with open(src, "rb") as fin, open(dest, "wb") as fout, tqdm(
            total=size, unit="B", unit_scale=True, desc=Path(label).name, leave=False
        ) as bar:
            if self.fail_after is not None and len(self.calls) >= self.fail_after:
                fout.write(fin.read(size // 2))
                raise ConnectionError(f"simulated: connection dropped while reading {label}")
            shutil.copyfileobj(fin, fout)
            bar.update(size)
