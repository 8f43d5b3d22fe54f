"""Execute every chapter on the rehearsal data: the full profile's code, miniature sizes, random weights.

Usage (what ``make rehearse`` runs, inside the Colab-like virtual environment)::

    python book/_scripts/run_rehearsal.py --data DIR --out DIR [CHAPTER ...]

Each chapter's paired ``.ipynb`` (committed without outputs) is executed by nbclient in a fresh
kernel with ``FAIRLIB_PROFILE=full FAIRLIB_SCALE=rehearsal FAIRLIB_WEIGHTS=random``, the data root
``--data`` (filled beforehand by ``python -m data_scripts.fetch ... --source MIRROR``) and a
results store of its own, on the CPU. The repository root is put on ``PYTHONPATH``, as the
chapters' Colab setup cell puts the clone on ``sys.path``. A cell that raises fails the run; the
executed notebooks are written to ``--out`` for inspection and never rendered into the book.
Prints a table of chapter times and exits 1 if any chapter failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: What a rehearsal sets; nothing else differs from a full run.
REHEARSAL_ENV = {"FAIRLIB_PROFILE": "full", "FAIRLIB_SCALE": "rehearsal", "FAIRLIB_WEIGHTS": "random",
                 "FAIRLIB_DEVICE": "cpu", "FAIRLIB_BOOK": "1", "MPLBACKEND": "Agg",
                 "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def run_chapter(notebook: Path, out: Path, timeout: int) -> tuple[float, str | None]:
    """Execute one notebook; return (seconds, error or None). The executed copy goes to ``out``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        error = f"{err.ename}: {err.evalue}"
        for cell in nb.cells:  # the failing cell's first lines, to find it in the chapter
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                error = "\n".join(["in the cell:", *("    " + line for line in cell.source.splitlines()[:8]), error])
    except Exception as err:  # a dead kernel or a timeout: the chapter failed, say how
        error = f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - start
    nbformat.write(nb, out / notebook.name)
    return seconds, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter stems (default: every notebooks/NN_*.ipynb)")
    parser.add_argument("--data", required=True, help="data root holding the fetched rehearsal datasets")
    parser.add_argument("--out", required=True, help="folder for the executed notebooks and the results stores")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    books = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.chapters:
        known = {b.stem: b for b in books}
        unknown = [c for c in args.chapters if c not in known]
        if unknown:
            parser.error(f"unknown chapter(s) {unknown}; available: {', '.join(known)}")
        books = [known[c] for c in args.chapters]
    os.environ.update(REHEARSAL_ENV)
    os.environ["FAIRLIB_DATA"] = str(Path(args.data).resolve())
    os.environ["FAIRLIB_CACHE"] = str(out / "cache")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    rows, failed = [], []
    for book in books:
        os.environ["FAIRLIB_RESULTS"] = str(out / "results" / book.stem)
        print(f"== {book.stem}", flush=True)
        seconds, error = run_chapter(book, out, args.timeout)
        rows.append((book.stem, seconds, "ok" if error is None else "FAILED"))
        if error is not None:
            failed.append(book.stem)
            print(error, file=sys.stderr, flush=True)
    print("\nRehearsal (full profile, miniature data, random weights):")
    print(f"| {'chapter':<28} | {'seconds':>7} | status |\n|{'-' * 30}|{'-' * 9}|--------|")
    for stem, seconds, status in rows:
        print(f"| {stem:<28} | {seconds:7.1f} | {status:<6} |")
    print(f"| {'total':<28} | {sum(r[1] for r in rows):7.1f} |        |")
    if failed:
        print(f"FAILED: {', '.join(failed)} (executed copies in {out})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
