"""Download real datasets into the layout ``fairlib.data.load_dataset`` reads.

Usage::

    python -m data_scripts.fetch NAME [NAME ...] --root DIR [--force] [--source MIRROR_DIR]
    python -m data_scripts.fetch all --root DIR

NAME is one of fairface, utkface, celeba, cifar10, cifar100, fashionmnist, coco, or ``all``.
Download sizes: fairface 563 MB, utkface 107 MB, celeba about 11 GB, cifar10 170 MB,
cifar100 169 MB, fashionmnist 31 MB, coco about 20.4 GB (annotations 253 MB, val2017 816 MB,
train2017 19.3 GB; about 40 GB of free disk while train2017 is extracted).

Every file comes from the source named in ``data_scripts.sources`` (Hugging Face mirrors, the
URLs torchvision downloads from, images.cocodataset.org) and is checked against the checksum
its publisher gives: the Hub's sha256 of every file, torchvision's MD5 sums, and the sha256 sums
of TensorFlow Datasets' public checksum list for COCO.

``--source MIRROR_DIR`` reads the same files from a local copy in their published layout
(``python -m data_scripts.rehearse --root MIRROR_DIR`` writes a miniature one): the same
conversion and extraction code runs; only the bytes come from disk, and as they are not the
published bytes their checksums are recorded but not compared (``"verified": false``).

Everything is written into ``<root>/.partial-NAME-<random>/`` and renamed to ``<root>/NAME``
only once complete, with a ``.complete`` manifest (source, license, sha256 of every downloaded
and every written file) written last; a failed or interrupted run removes its partial directory
(and the next run removes any a killed run left behind), so a partial download can never load as
a dataset.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import json
import os
import shutil
import socket
import sys
import tarfile
import uuid
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from data_scripts import convert
from data_scripts.sources import (
    COCO_FILES,
    COCO_LICENSE,
    HF_MIRRORS,
    NETWORK_TIMEOUT_S,
    TORCHVISION_CLASSES,
    TORCHVISION_FILES,
    TORCHVISION_LICENSES,
    FetchError,
    LocalSource,
    NetworkSource,
    Source,
    URLFile,
    md5_file,
    sha256_file,
)
from fairlib.data.paths import COMPLETE_MARKER, data_root
from fairlib.data.registry import FETCHABLE

__all__ = ["ensure", "DOWNLOAD_GB", "FETCHERS", "fetch", "fetch_all", "main"]

#: The datasets this script fetches: ``fairlib.data.FETCHABLE``, the one list of them.
FETCHERS: tuple[str, ...] = FETCHABLE

#: Converters of the Hugging Face downloads, by dataset.
CONVERTERS = {
    "fairface": convert.convert_fairface,
    "celeba": convert.convert_celeba,
    "utkface": convert.convert_utkface,
}

#: Errors of data that cannot be read (truncated or corrupt archives, wrong schema); other OSErrors
#: (disk full, permissions) pass through and are reported as such.
_BAD_DATA = (ValueError, KeyError, EOFError, tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile)

#: The old name of the network source, kept so that a test can replace it (``fetch.HFSource``).
HFSource = NetworkSource


def _manifest(directory: Path, extra: dict) -> dict:
    files = {}
    for p in sorted(directory.rglob("*")):
        if p.is_file() and p.name != COMPLETE_MARKER:
            files[p.relative_to(directory).as_posix()] = {"sha256": sha256_file(p),
                                                          "size": p.stat().st_size}
    return {**extra, "files": files,
            "fetched_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _unreachable(name: str, what: str, err: Exception) -> FetchError:
    return FetchError(f"{name}: cannot reach {what} ({type(err).__name__}: {err}); "
                      "check your network connection and try again")


def _verify(name: str, label: str, dest: Path, source: Source, *, sha256: str | None = None,
            md5: str | None = None) -> dict:
    """The manifest entry of one download; raises FetchError on a published checksum that does not match."""
    digest = sha256_file(dest)
    entry: dict = {"sha256": digest, "size": dest.stat().st_size}
    checked = False
    if source.verifies_checksums:
        if sha256:
            if digest != sha256:
                raise FetchError(f"{name}: checksum mismatch for {label}: expected sha256 {sha256}, got {digest}; "
                                 "the download is corrupt or the source changed: run the command again, and "
                                 "if it fails twice report it")
            checked = True
        if md5:
            got = md5_file(dest)
            if got != md5:
                raise FetchError(f"{name}: checksum mismatch for {label}: expected MD5 {md5}, got {got}; "
                                 "the download is corrupt or the source changed: run the command again, and "
                                 "if it fails twice report it")
            checked = True
    entry["verified"] = checked
    return entry


def _download_url(name: str, file: URLFile, work: Path, source: Source) -> tuple[Path, dict]:
    dest = work / "download" / file.name
    try:
        source.download_url(file, dest)
    except FetchError:
        raise
    except FileNotFoundError as err:
        raise FetchError(f"{name}: {err}") from err
    except Exception as err:  # urllib/socket errors
        if not dest.exists() or dest.stat().st_size == 0:
            raise _unreachable(name, file.url, err) from err
        raise FetchError(f"{name}: download of {file.url} failed ({type(err).__name__}: {err}); "
                         "run the same command again") from err
    return dest, _verify(name, file.url, dest, source, sha256=file.sha256, md5=file.md5)


def _fetch_hf(name: str, work: Path, out: Path, source: Source) -> dict:
    mirror = HF_MIRRORS[name]
    try:
        if hasattr(source, "check"):
            source.check()
        listing = source.list_files(mirror.repo_id, mirror.revision)
    except FetchError:
        raise
    except FileNotFoundError as err:
        raise FetchError(f"{name}: {err}") from err
    except Exception as err:  # the Hub client raises its own (httpx) error types
        raise FetchError(
            f"{name}: cannot reach the mirror {mirror.repo_id} ({type(err).__name__}: {err}); "
            "check your network connection and try again"
        ) from err
    wanted = [f for f in listing if f.path.startswith(mirror.prefix) and f.path.endswith(mirror.suffix)]
    if not wanted:
        raise FetchError(f"{name}: no {mirror.suffix} files under {mirror.prefix!r} in {mirror.repo_id}; "
                         "the mirror changed: update HF_MIRRORS in data_scripts/sources.py")
    downloaded: dict[str, dict] = {}
    local = []
    for f in wanted:
        dest = work / "download" / f.path
        try:
            source.download(mirror.repo_id, f.path, mirror.revision, dest)
        except Exception as err:
            raise FetchError(f"{name}: download of {f.path} failed ({type(err).__name__}: {err}); "
                             "run the same command again") from err
        downloaded[f.path] = _verify(name, f.path, dest, source, sha256=f.sha256)
        local.append(dest)
    try:
        CONVERTERS[name](local, out, mirror.splits)
    except _BAD_DATA as err:
        raise FetchError(f"{name}: could not convert the files from {mirror.repo_id}: {err}") from err
    finally:
        shutil.rmtree(work / "download", ignore_errors=True)  # converted; keep the peak disk use low
    return {"source": source.describe(f"huggingface:{mirror.repo_id}@{mirror.revision}"),
            "license": mirror.license, "downloads": downloaded}


def _fetch_torchvision(name: str, work: Path, out: Path, source: Source) -> dict:
    local, downloaded = [], {}
    for file in TORCHVISION_FILES[name]:
        dest, entry = _download_url(name, file, work, source)
        downloaded[file.url] = {**entry, "md5": file.md5}
        local.append(dest)
    try:
        convert.extract_torchvision(name, local, out)
    except _BAD_DATA as err:
        raise FetchError(f"{name}: could not extract {', '.join(p.name for p in local)}: {err}") from err
    finally:
        shutil.rmtree(work / "download", ignore_errors=True)
    urls = ", ".join(f.url for f in TORCHVISION_FILES[name])
    what = f"torchvision.datasets.{TORCHVISION_CLASSES[name]} files ({urls})"
    return {"source": source.describe(what), "license": TORCHVISION_LICENSES[name], "downloads": downloaded}


def _fetch_coco(name: str, work: Path, out: Path, source: Source) -> dict:
    downloaded = {}
    for file in COCO_FILES:  # one zip at a time: download, check, extract, delete
        dest, entry = _download_url(name, file, work, source)
        try:
            entry["extracted"] = convert.extract_coco(dest, out)
        except _BAD_DATA as err:
            raise FetchError(f"{name}: could not extract {file.name}: {err}") from err
        finally:
            dest.unlink(missing_ok=True)
        downloaded[file.url] = entry
    needed = [f"annotations/{k}_{s}.json" for s in ("val2017", "train2017") for k in ("instances", "captions")]
    missing = [f for f in needed if not (out / f).is_file()]
    if missing:
        raise FetchError(f"{name}: annotations_trainval2017.zip held no {', '.join(missing)}")
    for split in ("val2017", "train2017"):
        (out / split).mkdir(exist_ok=True)
    return {"source": source.describe("images.cocodataset.org (COCO 2017)"), "license": COCO_LICENSE,
            "downloads": downloaded}


_FETCH: dict[str, Callable[[str, Path, Path, Source], dict]] = {
    "fairface": _fetch_hf,
    "utkface": _fetch_hf,
    "celeba": _fetch_hf,
    "cifar10": _fetch_torchvision,
    "cifar100": _fetch_torchvision,
    "fashionmnist": _fetch_torchvision,
    "coco": _fetch_coco,
}
assert set(_FETCH) == set(FETCHERS), "every name of fairlib.data.FETCHABLE needs a fetcher here"


def _as_source(source: Source | str | os.PathLike | None) -> Source:
    if source is None:
        return HFSource()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_dir():
            raise FetchError(f"--source: {path} is not a directory; pass the folder that "
                             "python -m data_scripts.rehearse --root wrote (or leave --source out to download)")
        return LocalSource(path)
    return source


def fetch(name: str, root: str | os.PathLike | None = None, *,
          source: Source | str | os.PathLike | None = None, force: bool = False) -> Path:
    """Download dataset ``name`` into ``<root>/<name>`` atomically.

    Parameters
    ----------
    name
        One of :data:`FETCHERS`.
    root
        Data root; ``None`` uses :func:`fairlib.data.data_root`.
    source
        Where the bytes come from: ``None`` for the real sources (:class:`~data_scripts.sources.NetworkSource`),
        a directory holding a copy of them in their published layout (what
        ``python -m data_scripts.rehearse`` writes), or any :class:`~data_scripts.sources.Source`.
    force
        Replace an existing copy.

    Returns
    -------
    pathlib.Path
        The completed dataset directory.

    Raises
    ------
    FetchError
        Unreachable source, failed download, checksum mismatch, unsafe archive or unconvertible
        data. The partial directory is removed first.
    """
    if name not in FETCHERS:
        raise ValueError(f"name: cannot fetch {name!r}; choose from {', '.join(FETCHERS)}")
    base = data_root(root)
    if base.exists() and not base.is_dir():
        raise FetchError(f"--root: {base} is a file; pass a directory (it will hold one folder per dataset)")
    src = _as_source(source)
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
    socket.setdefaulttimeout(NETWORK_TIMEOUT_S)  # no network call may hang
    try:
        info = _FETCH[name](name, work, out, src)
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
        if created_base and base.exists() and not any(base.iterdir()):
            base.rmdir()  # a failed first fetch leaves no empty data root behind
    print(f"{name}: complete in {final}")
    return final


#: Download size of each dataset in GB, from the sizes its source publishes (the Datasets page's table).
DOWNLOAD_GB: dict[str, float] = {
    "fairface": 0.56,  # 0.25/: two train shards of 250 MB and a 63 MB validation shard
    "celeba": 11.0,  # img_align+identity+attr/: 25 shards of 380-503 MB
    "utkface": 0.107,  # one UTKFace.tar.gz
    "cifar10": 0.170, "cifar100": 0.169, "fashionmnist": 0.031,
    "coco": 20.4,  # annotations 0.25 GB, val2017 0.82 GB, train2017 19.3 GB
}


def ensure(names: Sequence[str], root: str | os.PathLike | None = None, *,
           source: Source | str | os.PathLike | None = None) -> list[Path]:
    """Fetch each dataset of ``names`` that is not complete under ``root`` yet; say what it costs.

    A chapter's data cell calls this: a complete copy (a ``.complete`` manifest, e.g. on Google
    Drive from an earlier session) is used as it is; a missing one is downloaded, with its size
    printed first. ``source`` defaults to ``$FAIRLIB_FETCH_SOURCE`` (a local mirror, as in a
    rehearsal), else the real sources.
    """
    if isinstance(names, str):
        raise ValueError(f"names: expected a list of dataset names, got one string; write [{names!r}]")
    unknown = [n for n in names if n not in FETCHERS]
    if unknown:
        raise ValueError(f"names: cannot fetch {unknown}; choose from {', '.join(FETCHERS)}")
    source = source if source is not None else os.environ.get("FAIRLIB_FETCH_SOURCE") or None
    done = []
    for name in names:
        final = data_root(root) / name
        if (final / COMPLETE_MARKER).exists():
            print(f"{name}: complete in {final}")
            done.append(final)
            continue
        print(f"{name}: not in {data_root(root)}; downloading about {DOWNLOAD_GB[name]:g} GB")
        done.append(fetch(name, root, source=source))
    return done


def fetch_all(root: str | os.PathLike | None = None, *, source: Source | str | os.PathLike | None = None,
              force: bool = False, names: Sequence[str] = FETCHERS) -> list[Path]:
    """:func:`fetch` every dataset of ``names`` (default: all of :data:`FETCHERS`), in order."""
    return [fetch(n, root, source=source, force=force) for n in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_scripts.fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", metavar="NAME", choices=(*FETCHERS, "all"),
                        help=f"one or more of: {', '.join(FETCHERS)}; or all")
    parser.add_argument("--root", default=None,
                        help="data root (default: $FAIRLIB_DATA, else data/ beside the repo)")
    parser.add_argument("--force", action="store_true", help="replace an existing copy")
    parser.add_argument("--source", default=None, metavar="MIRROR_DIR",
                        help="read the files from a local copy of the sources in their published layout "
                             "(python -m data_scripts.rehearse writes one) instead of downloading them")
    args = parser.parse_args(argv)
    try:
        root = data_root(args.root)
    except (TypeError, ValueError) as err:  # e.g. an empty --root
        print(f"error: --{err}", file=sys.stderr)
        return 2
    names = list(dict.fromkeys(n for a in args.names for n in (FETCHERS if a == "all" else (a,))))
    for name in names:
        try:
            fetch(name, args.root, source=args.source, force=args.force)
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
