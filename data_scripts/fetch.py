"""Download a real dataset into the layout ``fairlib.data.load_dataset`` reads.

Usage::

    python -m data_scripts.fetch NAME [NAME ...] --root DIR [--force]

NAME is one of fairface, utkface, celeba (Hugging Face parquet mirrors, see
``data_scripts.sources.HF_MIRRORS``) or cifar10, cifar100, fashionmnist (torchvision, which
verifies its own MD5 checksums).

Everything is written into ``<root>/.partial-NAME-<random>/`` and renamed to ``<root>/NAME``
only once complete, with a ``.complete`` manifest (sha256 of every downloaded file) written
last; a failed or interrupted run removes its partial directory (and the next run removes
any a killed run left behind), so a partial download can never load as a dataset.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import socket
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from data_scripts import convert
from data_scripts.sources import (
    HF_MIRRORS,
    NETWORK_TIMEOUT_S,
    FetchError,
    HFSource,
    Source,
    sha256_file,
)
from fairlib.data.paths import COMPLETE_MARKER, data_root

__all__ = ["FETCHERS", "fetch", "main", "torchvision_download"]

TORCHVISION = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "fashionmnist": "FashionMNIST"}
CONVERTERS = {
    "fairface": convert.convert_fairface,
    "celeba": convert.convert_celeba,
    "utkface": convert.convert_utkface,
}
FETCHERS = tuple(CONVERTERS) + tuple(TORCHVISION)


def torchvision_download(name: str, dest: Path) -> None:
    """Download ``name``'s train and test sets with torchvision into ``dest`` (MD5-checked)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION[name])
    for train in (True, False):
        cls(root=str(dest), train=train, download=True)
    for archive in list(dest.glob("*.tar.gz")):
        archive.unlink()  # extracted and verified; the archive only doubles the disk use


def _manifest(directory: Path, extra: dict) -> dict:
    files = {}
    for p in sorted(directory.rglob("*")):
        if p.is_file() and p.name != COMPLETE_MARKER:
            files[p.relative_to(directory).as_posix()] = {"sha256": sha256_file(p),
                                                          "size": p.stat().st_size}
    return {**extra, "files": files,
            "fetched_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _fetch_hf(name: str, work: Path, out: Path, source: Source) -> dict:
    mirror = HF_MIRRORS[name]
    try:
        if hasattr(source, "check"):
            source.check()
        listing = source.list_files(mirror.repo_id, mirror.revision)
    except FetchError:
        raise
    except Exception as err:  # the Hub client raises its own (httpx) error types
        raise FetchError(
            f"{name}: cannot reach the mirror {mirror.repo_id} ({type(err).__name__}: {err}); "
            "check your network connection and try again"
        ) from err
    shards = [f for f in listing if f.path.startswith(mirror.prefix) and f.path.endswith(".parquet")]
    if not shards:
        raise FetchError(f"{name}: no parquet shards under {mirror.prefix!r} in {mirror.repo_id}")
    downloaded: dict[str, dict] = {}
    local = []
    for f in shards:
        dest = work / "download" / f.path
        try:
            source.download(mirror.repo_id, f.path, mirror.revision, dest)
        except Exception as err:
            raise FetchError(f"{name}: download of {f.path} failed ({type(err).__name__}: {err})"
                             ) from err
        digest = sha256_file(dest)
        if f.sha256 and digest != f.sha256:
            raise FetchError(f"{name}: checksum mismatch for {f.path}: expected {f.sha256}, "
                             f"got {digest}")
        downloaded[f.path] = {"sha256": digest, "size": dest.stat().st_size,
                              "verified": bool(f.sha256)}
        local.append(dest)
    try:
        CONVERTERS[name](local, out, mirror.splits)
    except (ValueError, KeyError) as err:
        raise FetchError(f"{name}: could not convert the shards from {mirror.repo_id}: {err}"
                         ) from err
    return {"source": f"huggingface:{mirror.repo_id}@{mirror.revision}", "license": mirror.license,
            "downloads": downloaded}


def fetch(name: str, root: str | os.PathLike | None = None, *, source: Source | None = None,
          tv_download: Callable[[str, Path], None] | None = None, force: bool = False) -> Path:
    """Download dataset ``name`` into ``<root>/<name>`` atomically.

    Parameters
    ----------
    name
        One of :data:`FETCHERS`.
    root
        Data root; ``None`` uses :func:`fairlib.data.data_root`.
    source
        File source for the Hugging Face mirrors (default :class:`HFSource`); tests pass a
        :class:`~data_scripts.sources.LocalSource`.
    tv_download
        ``tv_download(name, dest)`` for the torchvision datasets (default
        :func:`torchvision_download`).
    force
        Replace an existing copy.

    Returns
    -------
    pathlib.Path
        The completed dataset directory.

    Raises
    ------
    FetchError
        Unreachable source, failed download, checksum mismatch or unconvertible data. The
        partial directory is removed first.
    """
    if name not in FETCHERS:
        raise ValueError(f"name: cannot fetch {name!r}; choose from {', '.join(FETCHERS)}")
    base = data_root(root)
    if base.exists() and not base.is_dir():
        raise FetchError(f"--root: {base} is a file; pass a directory (it will hold one folder per dataset)")
    final = base / name
    if final.exists() and not force:
        if (final / COMPLETE_MARKER).exists():
            print(f"{name}: already complete in {final} (pass --force to download again)")
            return final
        raise FetchError(f"{name}: {final} exists but was not written by fetch; move it away "
                         "or pass --force to replace it")
    created_base = not base.exists()
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FetchError(f"--root: cannot create {base} ({err.strerror or err}); pass a directory you can "
                         "write to") from err
    for stale in base.glob(f".partial-{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a run that was killed
    work = base / f".partial-{name}-{uuid.uuid4().hex[:8]}"
    out = work / "dataset"
    out.mkdir(parents=True)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NETWORK_TIMEOUT_S)  # torchvision's urllib calls have none
    try:
        if name in TORCHVISION:
            try:
                (tv_download or torchvision_download)(name, out)
            except Exception as err:  # urllib errors, or torchvision's failed MD5 check
                raise FetchError(f"{name}: torchvision download failed ({type(err).__name__}: "
                                 f"{err}); check your network connection and try again") from err
            info = {"source": f"torchvision.datasets.{TORCHVISION[name]} (MD5-verified)"}
        else:
            info = _fetch_hf(name, work, out, source or HFSource())
        manifest = _manifest(out, {"name": name, **info})
        # the marker is written last, inside the not-yet-visible directory
        (out / COMPLETE_MARKER).write_text(json.dumps(manifest, indent=1))
        if final.exists():
            trash = base / f".partial-{name}-old-{uuid.uuid4().hex[:8]}"
            os.replace(final, trash)
            os.replace(out, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(out, final)
    finally:
        socket.setdefaulttimeout(old_timeout)
        shutil.rmtree(work, ignore_errors=True)
        if created_base and not any(base.iterdir()):
            base.rmdir()  # a failed first fetch leaves no empty data root behind
    print(f"{name}: complete in {final}")
    return final


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_scripts.fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", metavar="NAME", choices=FETCHERS,
                        help=f"one or more of: {', '.join(FETCHERS)}")
    parser.add_argument("--root", default=None,
                        help="data root (default: $FAIRLIB_DATA, else data/ beside the repo)")
    parser.add_argument("--force", action="store_true", help="replace an existing copy")
    args = parser.parse_args(argv)
    try:
        root = data_root(args.root)
    except (TypeError, ValueError) as err:  # e.g. an empty --root
        print(f"error: --{err}", file=sys.stderr)
        return 2
    for name in args.names:
        try:
            fetch(name, args.root, force=args.force)
        except (FetchError, OSError, KeyboardInterrupt) as err:
            if isinstance(err, KeyboardInterrupt):
                msg = "interrupted"
            elif isinstance(err, FetchError):
                msg = str(err)
            else:  # disk full, permissions: the system's own words, without a traceback
                msg = f"{name}: {err.strerror or err}" + (f": {err.filename}" if err.filename else "")
            print(f"error: {msg}\nNothing was left in {root} that looks "
                  "complete; run the same command again to restart.", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
