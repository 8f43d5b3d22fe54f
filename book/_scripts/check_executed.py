"""After `make book`: every graded test cell of every chapter really ran, and passed.

The book build executes each chapter with ``raise_on_error``, so a failing test cell fails the
build; that guarantee (the solutions score full marks) is only worth something if the test cells
are executed at all. This script reads the executed notebooks that myst-nb leaves in
``_build/jupyter_execute`` and fails if any cell tagged ``tests`` is missing, was not executed,
or holds an error output.

Usage: ``python book/_scripts/check_executed.py [BUILD_DIR]`` (default ``_build``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]


def check(build: Path) -> list[str]:
    problems = []
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        executed = build / "jupyter_execute" / "notebooks" / source.name
        if not executed.exists():
            problems.append(f"{source.name}: no executed copy at {executed} (was the chapter built?)")
            continue
        want = [c for c in nbformat.read(source, as_version=4).cells if "tests" in c.metadata.get("tags", [])]
        got = {c.source: c for c in nbformat.read(executed, as_version=4).cells
               if "tests" in c.metadata.get("tags", [])}
        before = len(problems)
        for cell in want:
            ran = got.get(cell.source)
            label = f"{source.name}: tests cell of {cell.metadata['tags']}"
            if ran is None:
                problems.append(f"{label} is missing from the executed notebook")
            elif ran.get("execution_count") is None:
                problems.append(f"{label} was not executed")
            elif any(o.get("output_type") == "error" for o in ran.get("outputs", [])):
                problems.append(f"{label} raised an error")
        if len(problems) == before:
            print(f"{source.name}: all {len(want)} test cells executed without error")
    return problems


if __name__ == "__main__":
    problems = check(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "_build")
    for p in problems:
        print(p, file=sys.stderr)
    sys.exit(1 if problems else 0)
