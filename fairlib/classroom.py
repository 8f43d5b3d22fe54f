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

:func:`check_assignment` is the fast static check of a generated student notebook: no solution
text leaked into it, and no ordinary cell reads a name that only a graded cell defines (in the
student's copy that cell is a stub, so such a cell would crash the student's notebook).
``grade(..., cells="exercises")`` executes only the setup, import and graded cells (plus the
tests), which checks in seconds that a student notebook is graded without crashing; whether the
solutions score full marks is checked by the book build, which executes every test cell.

Why not otter-grader or pytest: the tests need the student's live kernel state (functions and
variables defined in the notebook), which pytest cannot see without a plugin, and otter-grader
brings its own notebook format and a heavy dependency stack. Plain ``assert`` cells executed by
``nbclient`` keep the chapter source readable and the grader about 200 lines.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fairlib._validation import positive_int

__all__ = [
    "make_assignment",
    "grade",
    "graded_exercises",
    "format_report",
    "check_assignment",
    "solution_lines",
    "graded_dependencies",
    "SolutionMarkerError",
]

_BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")
_HINT = re.compile(r"^\s*# HINT:\s*(.*)$")
_SOLUTION_BLOCK = re.compile(r"^:::+\{solution\}.*?^:::+\s*$", re.MULTILINE | re.DOTALL)
_RESULT_PREFIX = "FAIRLIB-GRADE "
_SETUP_TAGS = ("colab-setup", "parameters")
_GRADE_CELLS = ("all", "exercises")


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


def _existing(path: Any, name: str, what: str) -> Path:
    """``path`` as a ``Path`` to an existing file, or an error naming the argument."""
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise TypeError(f"{name}: expected a path to {what}, got {path!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file {str(path)!r}; pass the path to {what}")
    return path


_CHAPTER = "a chapter's .py source (e.g. notebooks/02_bias_amplification.py)"


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
    nb = _read(_existing(source, "source", _CHAPTER))
    rows: dict[str, float] = {}
    for cell in nb.cells:
        name = _exercise(cell)
        if name and "tests" in _tags(cell):
            rows[name] = rows.get(name, 0.0) + _points(cell)
    return pd.DataFrame({"exercise": list(rows), "points": list(rows.values())})


# --------------------------------------------------------------------------- static checks
def _python(source: str) -> str:
    """A cell's source as plain Python: IPython magics and ``!shell`` lines become calls."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


_NEW_SCOPE = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp, ast.SetComp,
              ast.DictComp, ast.GeneratorExp)


def _module_scope(node: ast.AST):
    """The nodes of ``node`` that run in the notebook's global scope (not in nested scopes)."""
    for child in ast.iter_child_nodes(node):
        yield child
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # decorators and default values are evaluated in the enclosing scope
            for expr in [*child.decorator_list, *getattr(getattr(child, "args", None), "defaults", []),
                         *getattr(child, "bases", [])]:
                yield expr
                yield from _module_scope(expr)
        elif not isinstance(child, _NEW_SCOPE):
            yield from _module_scope(child)


def _bound_and_read(source: str) -> tuple[set[str], set[str], bool]:
    """Global names a cell binds, names it reads (anywhere, also inside its functions), and
    whether it has a module-level import statement."""
    tree = ast.parse(_python(source))
    bound: set[str] = set()
    has_import = False
    for node in _module_scope(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            has_import = True
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return bound, read, has_import


def graded_dependencies(notebook: Any) -> list[str]:
    """Ordinary code cells that read a name whose latest definition is in a graded cell.

    In a student's copy every graded cell is a stub, so such a cell fails (``NameError`` or the
    stub's ``NotImplementedError``) and breaks the notebook for the student. A name that the
    reading cell binds itself is not counted.

    Parameters
    ----------
    notebook
        A notebook (nbformat node) or a path readable by jupytext.

    Returns
    -------
    list of str
        One message per dependency, naming the cell, the name and the exercise; empty when none.
    """
    if isinstance(notebook, (str, os.PathLike)):
        nb = _read(_existing(notebook, "notebook", "a notebook (.py or .ipynb)"))
    elif hasattr(notebook, "cells"):
        nb = notebook
    else:
        raise TypeError(f"notebook: expected an nbformat notebook or a path, got {type(notebook).__name__}")
    last_binder: dict[str, str | None] = {}  # name -> exercise of the graded cell that bound it last
    problems = []
    for index, cell in enumerate(nb.cells):
        tags = _tags(cell)
        if cell.cell_type != "code" or "tests" in tags:
            continue
        try:
            bound, read, _ = _bound_and_read(cell.source)
        except SyntaxError as exc:
            raise SolutionMarkerError(f"cell {index}: cannot be parsed ({exc.msg}, line {exc.lineno})") from exc
        if "graded" not in tags:
            for name in sorted(read - bound):
                if last_binder.get(name):
                    problems.append(
                        f"cell {index} reads {name!r}, which only the graded cell of exercise "
                        f"{last_binder[name]} defines: in the student notebook that cell is a stub, so "
                        f"this cell would fail; define {name!r} in an ordinary cell or move this code "
                        "into the tests"
                    )
        exercise = _exercise(cell) if "graded" in tags else None
        for name in bound:
            last_binder[name] = exercise
    return problems


def solution_lines(source: str | os.PathLike) -> list[str]:
    """The non-trivial lines of a chapter's solutions: code between the solution markers and the
    text of ``{solution}`` blocks (lines of more than 12 characters, hints excluded)."""
    nb = _read(_existing(source, "source", _CHAPTER))
    lines: list[str] = []
    for cell in nb.cells:
        if "graded" in _tags(cell):
            inside = False
            for line in cell.source.splitlines():
                if _BEGIN.match(line):
                    inside = True
                elif _END.match(line):
                    inside = False
                elif inside and not _HINT.match(line) and len(line.strip()) > 12:
                    lines.append(line.strip())
        elif cell.cell_type == "markdown":
            for block in _SOLUTION_BLOCK.findall(cell.source):
                for line in block.splitlines()[1:-1]:
                    line = line.strip()
                    if len(line) > 12 and not line.startswith(":"):
                        lines.append(line)
    return lines


def check_assignment(source: str | os.PathLike, student: str | os.PathLike) -> list[str]:
    """Static checks of a generated student notebook against its chapter source.

    Returns one message per problem (empty when the notebook is fit to hand out): each solution
    line of ``source`` found in ``student`` (a leak), and each ordinary cell that depends on a
    graded cell (see :func:`graded_dependencies`). Dependencies are read from the source, where
    the graded cells still hold their solutions: a stub binds fewer names than the solution it
    replaces, so only the source shows every name an ordinary cell takes from a graded one.
    """
    _existing(source, "source", _CHAPTER)
    text = _existing(student, "student", "the generated student notebook (.ipynb)").read_text()
    problems = [f"solution text leaked into {Path(student).name}: {line!r}"
                for line in dict.fromkeys(solution_lines(source)) if line in text]
    problems += graded_dependencies(source)
    return problems


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

    source = _existing(source, "source", _CHAPTER)
    if not isinstance(out_dir, (str, os.PathLike)) or str(out_dir) == "":
        raise TypeError(f"out_dir: expected a directory path, got {out_dir!r}")
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


def _is_exercise_or_setup(cell: Any) -> bool:
    tags = _tags(cell)
    if cell.cell_type != "code":
        return False
    if "graded" in tags or any(t in tags for t in _SETUP_TAGS):
        return True
    try:
        return _bound_and_read(cell.source)[2]
    except SyntaxError:
        return False


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{what}: cannot read {path} ({exc})") from exc


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
    cells: str = "all",
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
    cells
        ``"all"`` (default) executes the whole notebook, as a student runs it. ``"exercises"``
        executes only the setup cells (tagged ``colab-setup`` or ``parameters``), cells with a
        module-level import, and the graded cells, each followed by its tests: a check in
        seconds that a notebook is graded without crashing (exercises that need the chapter's
        results then score 0).

    Returns
    -------
    pandas.DataFrame
        One row per exercise: ``exercise``, ``points``, ``score``, ``passed``, ``feedback``.
        Never raises because the notebook errors: such exercises score 0.
    """
    import nbformat
    from nbclient import NotebookClient

    if cells not in _GRADE_CELLS:
        raise ValueError(f"cells: expected one of {list(_GRADE_CELLS)}, got {cells!r}")
    timeout = positive_int(timeout, "timeout", meaning="(seconds per cell)")
    if env is not None and not (isinstance(env, Mapping)
                                and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise TypeError(f"env: expected a dict of environment variables {{'NAME': 'value'}} (strings), got {env!r}")
    spec = _read_json(Path(autograder), "autograder")
    tests = [_Test(**t) for t in spec["tests"]]
    try:
        nb = nbformat.read(str(submission), as_version=4)
    except Exception as exc:  # not JSON, not a notebook, unreadable
        raise ValueError(f"submission: cannot read {submission} as a notebook ({exc})") from exc
    if cells == "exercises":
        nb.cells = [c for c in nb.cells if _is_exercise_or_setup(c)]

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
    need = ["exercise", "points", "score", "feedback"]
    if not isinstance(table, pd.DataFrame) or not set(need) <= set(table.columns):
        got = list(table.columns) if isinstance(table, pd.DataFrame) else type(table).__name__
        raise ValueError(f"table: expected the DataFrame returned by grade (columns {need}), got {got}")
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
    c = sub.add_parser("check", help="write each chapter's assignment to a temporary folder and check it "
                                     "statically (no leaked solution, no cell that needs a graded cell)")
    c.add_argument("sources", nargs="+", help="chapter .py sources")
    args = parser.parse_args(argv)
    try:
        return _run_command(args)
    except (ValueError, OSError) as err:  # user errors (a missing or unreadable file, bad markers): one line
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run_command(args: Any) -> int:
    for src in getattr(args, "sources", []):
        if not Path(src).is_file():
            raise FileNotFoundError(f"sources: {src} is not a file; pass chapter sources such as notebooks/01_*.py")
    if args.command == "check":
        failed = 0
        for src in args.sources:
            with tempfile.TemporaryDirectory() as tmp:
                problems = check_assignment(src, make_assignment(src, tmp)["student"])
            for problem in problems:
                print(f"{src}: {problem}")
            failed += bool(problems)
            print(f"{src}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if failed else 0
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
