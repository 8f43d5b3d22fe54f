"""Assignments and autograding: stubs, hidden solutions, and scores on real executions."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import pytest

from fairlib.classroom import (
    SolutionMarkerError,
    check_assignment,
    format_report,
    grade,
    graded_dependencies,
    graded_exercises,
    make_assignment,
    solution_lines,
    strip_solutions,
)

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))

TINY = '''# %% [markdown]
# # Tiny chapter
#
# :::{exercise}
# :label: ex-double
# Double it.
# :::
#
# :::{solution} ex-double
# :class: dropdown
# SECRET-PROSE multiply by two
# :::

# %% tags=["graded", "exercise:ex-double", "hide-input"]
def double(x):
    # BEGIN SOLUTION
    # HINT: use the * operator
    return 2 * x  # SECRET-CODE
    # END SOLUTION

# %% tags=["tests", "exercise:ex-double", "points:2"]
assert double(3) == 6

# %%
raise RuntimeError("an unrelated cell that fails")

# %% tags=["graded", "exercise:ex-const"]
# BEGIN SOLUTION
ANSWER = 42
# END SOLUTION

# %% tags=["tests", "exercise:ex-const"]
assert ANSWER == 42
'''


def test_strip_solutions_keeps_indentation_and_hint():
    src = "def f(x):\n    # BEGIN SOLUTION\n    # HINT: add one\n    return x + 1\n    # END SOLUTION\n"
    assert strip_solutions(src, "ex1") == "def f(x):\n    raise NotImplementedError('Exercise ex1: add one')"


@pytest.mark.parametrize(
    "src, match",
    [
        ("x = 1\n", "has no '# BEGIN SOLUTION' region"),
        ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("# END SOLUTION\n", "without a matching BEGIN"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "nested"),
    ],
)
def test_bad_markers_are_named(src, match):
    with pytest.raises(SolutionMarkerError, match=match):
        strip_solutions(src, "ex1")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    py = root / "99_tiny.py"
    py.write_text(TINY)
    paths = make_assignment(py, root / "out")
    solution = root / "99_tiny_solution.ipynb"
    jupytext.write(jupytext.read(py), solution)
    return py, paths, solution


def test_student_notebook_has_stubs_and_no_solutions(tiny):
    _, paths, _ = tiny
    text = paths["student"].read_text()
    assert "SECRET-CODE" not in text and "SECRET-PROSE" not in text and "{solution}" not in text
    assert "assert double(3) == 6" not in text, "tests stay with the autograder"
    assert "NotImplementedError('Exercise ex-double: use the * operator')" in text
    nb = json.loads(text)
    assert "jupytext" not in nb["metadata"], "a released notebook must not re-pair with its source"
    spec = json.loads(paths["autograder"].read_text())
    assert [(t["exercise"], t["points"]) for t in spec["tests"]] == [("ex-double", 2.0), ("ex-const", 1.0)]
    assert not list(paths["student"].parent.glob("*.tmp")), "no half-written file left behind"


def test_grading_scores_solution_full_and_student_zero_despite_errors(tiny):
    _, paths, solution = tiny
    full = grade(solution, paths["autograder"], timeout=60)
    assert full.set_index("exercise").score.to_dict() == {"ex-double": 2.0, "ex-const": 1.0}
    zero = grade(paths["student"], paths["autograder"], timeout=60)
    assert zero.score.sum() == 0 and not zero.passed.any()
    feedback = zero.set_index("exercise").feedback
    assert "use the * operator" in feedback["ex-double"]
    assert "NotImplementedError" in feedback["ex-const"]
    report = format_report(zero)
    assert report.splitlines()[-1].split()[:2] == ["TOTAL", "0/3"]


def test_graded_exercises_lists_points(tiny):
    py, _, _ = tiny
    assert graded_exercises(py).to_dict("list") == {"exercise": ["ex-double", "ex-const"], "points": [2.0, 1.0]}


def test_exercises_mode_runs_only_setup_and_graded_cells(tiny):
    _, paths, solution = tiny
    # The unrelated failing cell is skipped, the graded cells and their tests still run.
    fast = grade(solution, paths["autograder"], timeout=60, cells="exercises")
    assert fast.set_index("exercise").score.to_dict() == {"ex-double": 2.0, "ex-const": 1.0}
    with pytest.raises(ValueError, match="cells: expected one of"):
        grade(solution, paths["autograder"], cells="some")


def test_grader_names_an_unreadable_file(tiny, tmp_path):
    _, paths, solution = tiny
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="submission: cannot read .*broken.ipynb"):
        grade(broken, paths["autograder"])
    with pytest.raises(ValueError, match="autograder: cannot read .*missing.json"):
        grade(solution, tmp_path / "missing.json")


# --------------------------------------------------------------------------- static checks
def test_solution_lines_are_code_and_solution_prose(tiny):
    py, _, _ = tiny
    lines = solution_lines(py)
    assert "return 2 * x  # SECRET-CODE" in lines and "SECRET-PROSE multiply by two" in lines
    assert not any("HINT" in line for line in lines), "hints are meant for the student"


def _plant(text: str, tmp_path: Path, name: str = "98_planted.py") -> Path:
    py = tmp_path / name
    py.write_text(text)
    return py


def test_planted_leak_is_caught(tmp_path):
    # A solution line repeated in ordinary prose survives stripping: the check must see it.
    py = _plant(TINY + "\n# %% [markdown]\n# As shown: return 2 * x  # SECRET-CODE\n", tmp_path)
    problems = check_assignment(py, make_assignment(py, tmp_path / "out")["student"])
    assert any("leaked" in p and "SECRET-CODE" in p for p in problems), problems


def test_planted_graded_dependency_is_caught(tmp_path):
    clean = _plant(TINY, tmp_path, "97_clean.py")
    assert check_assignment(clean, make_assignment(clean, tmp_path / "a")["student"]) == []
    py = _plant(TINY + "\n# %%\nprint(double(21), ANSWER)\n", tmp_path)
    problems = check_assignment(py, make_assignment(py, tmp_path / "b")["student"])
    assert len(problems) == 2 and "'ANSWER'" in problems[0] and "ex-const" in problems[0], problems
    assert "'double'" in problems[1] and "ex-double" in problems[1]


@pytest.mark.parametrize(
    "cells, expected",
    [
        # a name rebound by an ordinary cell after the graded one is no longer a dependency
        (["# %% tags=['graded', 'exercise:e']\nx = 1", "# %%\nx = 2", "# %%\nprint(x)"], 0),
        # a cell that binds the name itself does not depend on the graded cell
        (["# %% tags=['graded', 'exercise:e']\nx = 1", "# %%\nx = 3\nprint(x)"], 0),
        # reads inside a function body count: calling it later would fail
        (["# %% tags=['graded', 'exercise:e']\ndef f():\n    return 1", "# %%\ndef g():\n    return f()"], 1),
        # magics do not break the parser
        (["# %% tags=['graded', 'exercise:e']\ny = 1", "# %%\n%matplotlib inline\nprint(y)"], 1),
        # tests cells may read anything
        (["# %% tags=['graded', 'exercise:e']\ny = 1", "# %% tags=['tests', 'exercise:e']\nassert y"], 0),
    ],
)
def test_graded_dependencies_cases(cells, expected):
    nb = jupytext.reads("\n\n".join(cells), fmt="py:percent")
    assert len(graded_dependencies(nb)) == expected


def test_planted_dependency_in_a_real_chapter_is_caught(tmp_path):
    ch1 = ROOT / "notebooks" / "01_measuring_bias.py"
    py = _plant(ch1.read_text() + "\n# %%\nprint(biasamp_2x2([1, 0], [1, 1], groups=[0, 1]))\n", tmp_path)
    problems = check_assignment(py, make_assignment(py, tmp_path / "out")["student"])
    assert len(problems) == 1 and "biasamp_2x2" in problems[0], problems


# --------------------------------------------------------------------------- every chapter
# Every chapter is assignable (issue 8). That the solutions score full marks is checked by the
# book build, which executes every test cell with raise_on_error (tests/test_book.py checks that
# nothing skips them, and `make book` verifies it on the executed notebooks). Here: the student
# notebook is clean, and the grader scores it 0 without crashing, every test having run.
@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_student_notebook_is_clean_and_scores_zero(py, tmp_path):
    exercises = graded_exercises(py)
    if exercises.empty:
        pytest.fail(f"{py.name} has no graded exercise")
    paths = make_assignment(py, tmp_path)
    assert check_assignment(py, paths["student"]) == []

    student = grade(paths["student"], paths["autograder"], cells="exercises", timeout=300)
    assert list(student.exercise) == list(exercises.exercise)
    assert student.score.sum() == 0 and not student.passed.any(), format_report(student)
    assert not student.feedback.str.startswith("tests did not run").any(), format_report(student)


def test_command_line_user_errors_are_one_line(tmp_path, capsys):
    from fairlib.classroom import _main

    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    assert _main(["grade", str(broken), str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.json" in err and "Traceback" not in err
    assert _main(["check", str(tmp_path / "nope.py")]) == 2
    assert "sources: " in capsys.readouterr().err
