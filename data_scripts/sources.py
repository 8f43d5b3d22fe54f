"""Where fetch gets files from: Hugging Face dataset mirrors, or a local folder (tests).

Every mirror used by the course is named here, in one place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from tqdm.auto import tqdm

__all__ = [
    "FetchError",
    "HFMirror",
    "HF_MIRRORS",
    "RemoteFile",
    "Source",
    "HFSource",
    "LocalSource",
    "sha256_file",
    "with_deadline",
    "NETWORK_TIMEOUT_S",
]

#: Seconds before an unanswered network request is an error (the offline case must fail fast).
NETWORK_TIMEOUT_S = 10


class FetchError(RuntimeError):
    """A download or conversion failed; nothing was left that loads as a dataset."""


@dataclass(frozen=True)
class HFMirror:
    """A public Hugging Face dataset repository holding parquet shards.

    ``splits`` maps a substring of a shard's file name to the split written on disk.
    """

    repo_id: str
    prefix: str
    splits: dict[str, str]
    license: str
    revision: str = "main"
    note: str = ""


HF_MIRRORS: dict[str, HFMirror] = {
    "fairface": HFMirror(
        repo_id="HuggingFaceM4/FairFace",
        prefix="0.25/",  # faces cropped with 0.25 padding, as in FairFace's main release
        splits={"train": "train", "validation": "val"},
        license="CC BY 4.0",
    ),
    "celeba": HFMirror(
        repo_id="flwrlabs/celeba",
        # verified from the repository's file listing: img_align+identity+attr/ holds
        # train-000NN-of-00019, valid-0000N-of-00003 and test-0000N-of-00003 parquet shards
        # (about 500 / 390 MB each); there is no data/ folder
        prefix="img_align+identity+attr/",
        splits={"train": "train", "valid": "val", "test": "test"},
        license="CelebA Dataset Release Agreement (non-commercial research only)",
    ),
    "utkface": HFMirror(
        repo_id="py97/UTKFace-Cropped",
        prefix="",
        splits={"": "all"},
        license="UTKFace terms: non-commercial research only",
        note="community mirror; the converter accepts either original file names or "
             "age/gender/race columns",
    ),
}


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int | None = None
    sha256: str | None = None  # published by the source (Git LFS oid), when it has one


class Source(Protocol):
    """What fetch needs from a file source; tests pass a :class:`LocalSource`."""

    def list_files(self, repo_id: str, revision: str) -> list[RemoteFile]: ...

    def download(self, repo_id: str, path: str, revision: str, dest: Path) -> None: ...


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


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class HFSource:
    """Files of public Hugging Face dataset repositories, with short network timeouts."""

    def __init__(self, timeout: float = NETWORK_TIMEOUT_S):
        # huggingface_hub reads these when it is imported, so set them first
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(timeout)))
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(timeout)))
        self.timeout = timeout

    def check(self) -> None:
        """Fail fast when the Hub cannot be reached (the Hub client would otherwise retry
        with back-off for about half a minute)."""
        from urllib.parse import urlparse

        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        url = urlparse(endpoint)
        host, port = url.hostname or "huggingface.co", url.port or (
            443 if url.scheme == "https" else 80)

        def connect():
            with socket.create_connection((host, port), timeout=self.timeout):
                pass

        try:
            with_deadline(connect, self.timeout, f"connecting to {host}")
        except OSError as err:
            raise ConnectionError(f"cannot connect to {host}:{port} ({err})") from err

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
        from huggingface_hub import hf_hub_download

        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.parent / ".hf"
        import inspect

        extra = {}
        if "tqdm_class" in inspect.signature(hf_hub_download).parameters:
            extra["tqdm_class"] = tqdm  # older huggingface_hub versions draw their own bar
        got = hf_hub_download(repo_id, path, repo_type="dataset", revision=revision,
                              local_dir=staging, etag_timeout=self.timeout, **extra)
        os.replace(got, dest)


@dataclass
class LocalSource:
    """Files under ``directory/<repo_id>/``: a stand-in for the network in tests.

    ``fail_after`` makes the n-th download (1-based) raise ``ConnectionError`` after writing
    half of the file, to simulate a dropped connection.
    """

    directory: Path
    fail_after: int | None = None
    offline: bool = False
    calls: list[str] = field(default_factory=list)

    def _repo(self, repo_id: str) -> Path:
        return Path(self.directory) / repo_id

    def list_files(self, repo_id: str, revision: str) -> list[RemoteFile]:
        if self.offline:
            raise ConnectionError("simulated: network unreachable")
        base = self._repo(repo_id)
        if not base.is_dir():
            raise FileNotFoundError(f"no local mirror of {repo_id} in {base}")
        return [RemoteFile(p.relative_to(base).as_posix(), p.stat().st_size, None)
                for p in sorted(base.rglob("*")) if p.is_file()]

    def download(self, repo_id: str, path: str, revision: str, dest: Path) -> None:
        self.calls.append(path)
        src = self._repo(repo_id) / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = src.stat().st_size
        with open(src, "rb") as fin, open(dest, "wb") as fout, tqdm(
            total=size, unit="B", unit_scale=True, desc=Path(path).name, leave=False
        ) as bar:
            if self.fail_after is not None and len(self.calls) >= self.fail_after:
                fout.write(fin.read(size // 2))
                raise ConnectionError(f"simulated: connection dropped while reading {path}")
            shutil.copyfileobj(fin, fout)
            bar.update(size)
