"""Hard-link installed distributions (and what they require) from this venv into another one.

Usage (what ``make rehearse`` runs with ``.venv``'s Python before it fills ``.venv-colab``)::

    python book/_scripts/share_packages.py DEST_SITE_PACKAGES torch torchvision

Why: torch and torchvision are preinstalled on Colab, so the rehearsal venv must have them, but
on these machines they are a CUDA build of about 6 GB. A second copy ran CI out of disk. Hard
links give the rehearsal venv the very same files at no extra space; pip then finds the
requirements satisfied and installs only the rest. Files outside site-packages (console
scripts, whose first line names this venv's Python) are not linked. An existing file in the
destination is left alone, so the command can be run again. Exits 1 with the fix if a named
distribution is not installed here.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from importlib import metadata
from pathlib import Path


def _name(requirement: str) -> str:
    """Project name of a requirement string, normalised (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group(0)).lower()


def closure(names: list[str]) -> list[metadata.Distribution]:
    """The named distributions and every installed distribution they require, transitively.

    Requirements with an environment marker that does not hold here (``extra == ...``,
    another platform) are skipped; ones that are not installed are left to pip.
    """
    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    todo = [_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in map(_name, names):
                raise
            continue
        seen[name] = dist
        for req in dist.requires or []:
            parsed = Requirement(req)
            if parsed.marker is None or parsed.marker.evaluate({"extra": ""}):
                todo.append(_name(parsed.name))
    return list(seen.values())


def link(dists: list[metadata.Distribution], dest: Path) -> int:
    """Hard-link every file of ``dists`` that lies under their site-packages into ``dest``.

    Returns the number of files linked. Directories are created as needed.
    """
    count = 0
    for dist in dists:
        site = Path(dist.locate_file("")).resolve()
        for rel in dist.files or []:
            source = Path(dist.locate_file(rel)).resolve()
            if site not in source.parents or not source.is_file():
                continue  # console scripts in bin/, or a RECORD line for a file that is gone
            target = dest / source.relative_to(site)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="site-packages directory of the other venv")
    parser.add_argument("names", nargs="+", help="distributions to share, with their requirements")
    args = parser.parse_args(argv)
    if not args.dest.is_dir():
        print(f"error: {args.dest} is not a directory; create the venv first "
              f"(python -m venv ...)", file=sys.stderr)
        return 1
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if args.dest.parent.name.startswith("python") and args.dest.parent.name != here:
        print(f"error: {args.dest} belongs to {args.dest.parent.name}, this venv to {here}; compiled "
              f"files cannot be shared: build both venvs with the same PYTHON", file=sys.stderr)
        return 1
    try:
        dists = closure(args.names)
    except metadata.PackageNotFoundError as err:
        print(f"error: {err} is not installed in {sys.prefix}; run `make venv` first", file=sys.stderr)
        return 1
    count = link(dists, args.dest)
    print(f"linked {count} files of {len(dists)} distributions into {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
