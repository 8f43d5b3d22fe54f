"""Student assignments and autograding, generated from the chapters' own sources.

A graded exercise is marked in a chapter's ``.py`` source (jupytext percent format) by cell tags:

``graded`` + ``exercise:NAME``
    A code cell holding the solution between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` lines.
    An optional ``# HINT: …`` line right after ``# BEGIN SOLUTION`` becomes the stub's message.
``tests`` + ``exercise:NAME`` (+ ``points:N``, default 1)
    A code cell of plain ``assert`` statements that grade the exercise. It is executed in the
    same kernel right after the graded cell, so it sees the student's definitions.

:func:`make_assignment` writes, for one chapter, a student notebook (solution regions replaced
by a stub that raises :class:`NotImplementedError` with the hint, test cells and ``{solution}``
blocks removed, no jupytext pairing metadata) and an autograder file (the test cells with their
exercise names and points). :func:`grade` executes a submission headless in the quick profile,
runs each exercise's tests after its graded cell, and returns a per-exercise score table. A
notebook that errors, or leaves a stub, scores 0 on the affected exercises; the others are still
graded.

Why not otter-grader or pytest: the tests need the student's live kernel state (functions and
variables defined in the notebook), which pytest cannot see without a plugin, and otter-grader
brings its own notebook format and a heavy dependency stack. Plain ``assert`` cells executed by
``nbclient`` keep the chapter source readable and the grader about 200 lines.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["make_assignment", "grade", "graded_exercises", "format_report", "SolutionMarkerError"]

_BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")
_HINT = re.compile(r"^\s*# HINT:\s*(.*)$")
_SOLUTION_BLOCK = re.compile(r"^:::+\{solution\}.*?^:::+\s*$", re.MULTILINE | re.DOTALL)
_RESULT_PREFIX = "FAIRLIB-GRADE "


class SolutionMarkerError(ValueError):
    """A graded cell's solution markers are missing, unbalanced or nested."""


@dataclass
class _Test:
    exercise: str
    points: float
    source: str


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _exercise(cell: Any) -> str | None:
    for tag in _tags(cell):
        if tag.startswith("exercise:"):
            return tag.split(":", 1)[1]
    return None


def _points(cell: Any) -> float:
    for tag in _tags(cell):
        if tag.startswith("points:"):
            return float(tag.split(":", 1)[1])
    return 1.0


def _read(path: Path) -> Any:
    import jupytext

    return jupytext.read(path)


def strip_solutions(source: str, exercise: str) -> str:
    """Replace every ``# BEGIN SOLUTION`` … ``# END SOLUTION`` region by a raising stub.

    The stub keeps the indentation of the ``BEGIN`` line, so a region inside a function body
    becomes that function's body.
    """
    out: list[str] = []
    lines = source.splitlines()
    i = 0
    found = False
    while i < len(lines):
        m = _BEGIN.match(lines[i])
        if _END.match(lines[i]):
            raise SolutionMarkerError(f"exercise {exercise}: '# END SOLUTION' without a matching BEGIN")
        if not m:
            out.append(lines[i])
            i += 1
            continue
        found = True
        indent = m.group(1)
        hint = "replace this line with your solution"
        j = i + 1
        if j < len(lines) and _HINT.match(lines[j]):
            hint = _HINT.match(lines[j]).group(1).strip()
        while j < len(lines) and not _END.match(lines[j]):
            if _BEGIN.match(lines[j]):
                raise SolutionMarkerError(f"exercise {exercise}: nested '# BEGIN SOLUTION'")
            j += 1
        if j == len(lines):
            raise SolutionMarkerError(f"exercise {exercise}: '# BEGIN SOLUTION' is never closed by '# END SOLUTION'")
        out.append(f"{indent}raise NotImplementedError({f'Exercise {exercise}: {hint}'!r})")
        i = j + 1
    if not found:
        raise SolutionMarkerError(f"exercise {exercise}: a cell tagged 'graded' has no '# BEGIN SOLUTION' region")
    return "\n".join(out)


def graded_exercises(source: str | os.PathLike) -> pd.DataFrame:
    """The graded exercises of a chapter: one row per exercise with its points."""
    nb = _read(Path(source))
    rows: dict[str, float] = {}
    for cell in nb.cells:
        name = _exercise(cell)
        if name and "tests" in _tags(cell):
            rows[name] = rows.get(name, 0.0) + _points(cell)
    return pd.DataFrame({"exercise": list(rows), "points": list(rows.values())})


def make_assignment(source: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the student notebook and the autograder file of one chapter.

    Parameters
    ----------
    source
        The chapter's ``.py`` (or ``.ipynb``) source.
    out_dir
        Directory that receives ``<stem>.ipynb`` (student) and ``<stem>.autograder.json``.
        Files are written to temporary names and renamed, so no half-written file is left.

    Returns
    -------
    dict
        ``{"student": path, "autograder": path}``.
    """
    import nbformat

    source = Path(source)
    nb = _read(source)
    tests: list[_Test] = []
    cells = []
    graded_names = set()
    for cell in nb.cells:
        tags = _tags(cell)
        name = _exercise(cell)
        if "tests" in tags:
            if not name:
                raise SolutionMarkerError(f"{source.name}: a 'tests' cell has no 'exercise:NAME' tag")
            tests.append(_Test(name, _points(cell), cell.source))
            continue
        cell = copy.deepcopy(cell)
        if "graded" in tags:
            if not name:
                raise SolutionMarkerError(f"{source.name}: a 'graded' cell has no 'exercise:NAME' tag")
            graded_names.add(name)
            cell.source = strip_solutions(cell.source, name)
            cell.metadata["tags"] = [t for t in tags if t not in ("hide-input", "hide-cell")]
        elif cell.cell_type == "markdown":
            cell.source = _SOLUTION_BLOCK.sub("", cell.source).strip()
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    missing = {t.exercise for t in tests} - graded_names
    if missing:
        raise SolutionMarkerError(f"{source.name}: tests for {sorted(missing)} have no cell tagged 'graded'")
    nb.cells = cells
    # A released notebook must never re-pair with its source: a sync would pull solutions back.
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    student = out / f"{source.stem}.ipynb"
    autograder = out / f"{source.stem}.autograder.json"
    payload = {"chapter": source.stem, "tests": [t.__dict__ for t in tests]}
    _atomic_write(student, nbformat.writes(nbformat.from_dict(nb), version=4))
    _atomic_write(autograder, json.dumps(payload, indent=1))
    return {"student": student, "autograder": autograder}


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _test_cell(test: _Test, index: int) -> Any:
    import nbformat

    # The test body runs inside exec() so that any failure, including a NameError left by a
    # stub, is caught and reported as this exercise's result instead of stopping the grader.
    code = (
        "import json as _json, traceback as _tb\n"
        f"_src = {test.source!r}\n"
        "try:\n"
        "    exec(compile(_src, '<tests>', 'exec'), globals())\n"
        "    _res = {'passed': True, 'message': ''}\n"
        "except BaseException as _e:\n"
        "    _res = {'passed': False, 'message': (type(_e).__name__ + ': ' + str(_e))[:500]}\n"
        f"_res.update(exercise={test.exercise!r}, index={index})\n"
        f"print({_RESULT_PREFIX!r} + _json.dumps(_res))\n"
    )
    return nbformat.v4.new_code_cell(code, metadata={"tags": ["autograder"]})


def grade(
    submission: str | os.PathLike,
    autograder: str | os.PathLike,
    *,
    timeout: int = 900,
    env: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Execute a submission headless and grade it.

    Parameters
    ----------
    submission
        The student's ``.ipynb``.
    autograder
        The ``.autograder.json`` written by :func:`make_assignment`.
    timeout
        Per-cell time limit in seconds.
    env
        Extra environment variables for the kernel; the quick profile and a static (book-like)
        run are always set.

    Returns
    -------
    pandas.DataFrame
        One row per exercise: ``exercise``, ``points``, ``score``, ``passed``, ``feedback``.
        Never raises because the notebook errors: such exercises score 0.
    """
    import nbformat
    from nbclient import NotebookClient

    spec = json.loads(Path(autograder).read_text())
    tests = [_Test(**t) for t in spec["tests"]]
    nb = nbformat.read(str(submission), as_version=4)

    # Insert each exercise's tests after the last cell of that exercise; tests whose exercise
    # cell the student deleted go to the end and fail with a NameError or similar.
    last_cell = {}
    for i, cell in enumerate(nb.cells):
        name = _exercise(cell)
        if name:
            last_cell[name] = i
    inserts: dict[int, list[Any]] = {}
    for index, test in enumerate(tests):
        inserts.setdefault(last_cell.get(test.exercise, len(nb.cells) - 1), []).append(_test_cell(test, index))
    cells = []
    for i, cell in enumerate(nb.cells):
        cells.append(cell)
        cells.extend(inserts.get(i, []))
    if not nb.cells:
        cells.extend(inserts.get(-1, []))
    nb.cells = cells

    run_env = {"FAIRLIB_PROFILE": "quick", "FAIRLIB_BOOK": "1", "MPLBACKEND": "Agg"}
    run_env.update(env or {})
    saved = {k: os.environ.get(k) for k in run_env}
    os.environ.update(run_env)
    error = ""
    try:
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                resources={"metadata": {"path": str(Path(submission).resolve().parent)}})
        client.execute()
    except Exception as exc:  # a dead kernel or a timeout: grade what ran
        error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    results: dict[int, dict] = {}
    cell_errors: dict[str, str] = {}  # the first error raised by an exercise's own cells
    for cell in nb.cells:
        name = _exercise(cell)
        if name and "autograder" not in _tags(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and name not in cell_errors:
                    cell_errors[name] = f"{output.get('ename')}: {output.get('evalue')}"[:500]
        if "autograder" not in _tags(cell):
            continue
        for output in cell.get("outputs", []):
            for line in str(output.get("text", "")).splitlines():
                if line.startswith(_RESULT_PREFIX):
                    res = json.loads(line[len(_RESULT_PREFIX):])
                    results[res["index"]] = res
    rows = []
    for name in dict.fromkeys(t.exercise for t in tests):
        mine = [(i, t) for i, t in enumerate(tests) if t.exercise == name]
        got = [results.get(i) for i, _ in mine]
        score = sum(t.points for (i, t), r in zip(mine, got) if r and r["passed"])
        passed = all(r and r["passed"] for r in got)
        failures = [r["message"] for r in got if r and not r["passed"]]
        if passed:
            feedback = "all tests passed"
        elif name in cell_errors:
            feedback = f"your exercise cell raised {cell_errors[name]}"
        elif failures:
            feedback = failures[0]
        else:
            feedback = f"tests did not run ({error or 'the notebook stopped before this exercise'})"
        rows.append({"exercise": name, "points": sum(t.points for _, t in mine), "score": float(score),
                     "passed": passed, "feedback": feedback})
    return pd.DataFrame(rows, columns=["exercise", "points", "score", "passed", "feedback"])


def format_report(table: pd.DataFrame) -> str:
    """A printable per-exercise score table with the total."""
    lines = [f"{'exercise':<28} {'score':>9}  feedback"]
    for row in table.itertuples():
        lines.append(f"{row.exercise:<28} {row.score:>4g}/{row.points:<4g}  {row.feedback}")
    lines.append(f"{'TOTAL':<28} {table.score.sum():>4g}/{table.points.sum():<4g}")
    return "\n".join(lines)


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fairlib.classroom", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assign", help="write student notebooks and autograders")
    a.add_argument("sources", nargs="+", help="chapter .py sources")
    a.add_argument("--out", default="_build/assignments", help="output directory")
    g = sub.add_parser("grade", help="grade a submission")
    g.add_argument("submission")
    g.add_argument("autograder")
    g.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args(argv)
    if args.command == "assign":
        for src in args.sources:
            if graded_exercises(src).empty:
                print(f"{src}: no graded exercises, skipped")
                continue
            paths = make_assignment(src, Path(args.out) / Path(src).stem)
            print(f"{src} -> {paths['student']} + {paths['autograder']}")
        return 0
    table = grade(args.submission, args.autograder, timeout=args.timeout)
    print(format_report(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
