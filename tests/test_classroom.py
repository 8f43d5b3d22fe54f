"""Assignments and autograding: stubs, hidden solutions, and scores on real executions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest

from fairlib.classroom import SolutionMarkerError, format_report, grade, graded_exercises, make_assignment, strip_solutions

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


def _solution_lines(py: Path) -> list[str]:
    """Non-trivial lines inside solution regions and {solution} blocks of a chapter."""
    text = py.read_text()
    lines = []
    for block in re.findall(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", text, re.DOTALL):
        lines += [ln.strip() for ln in block.splitlines() if len(ln.strip()) > 12 and "HINT:" not in ln]
    for block in re.findall(r"^# :::\{solution\}.*?\n(.*?)^# :::\s*$", text, re.DOTALL | re.MULTILINE):
        lines += [ln.lstrip("# ").strip() for ln in block.splitlines()
                  if len(ln.lstrip("# ").strip()) > 12 and not ln.lstrip("# ").startswith(":class:")]
    return lines


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


# --------------------------------------------------------------------------- every chapter
# Every chapter is assignable: each one must carry graded exercises (issue 8).
@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_assignment_round_trip(py, tmp_path):
    if graded_exercises(py).empty:
        pytest.fail(f"{py.name} has no graded exercise")
    paths = make_assignment(py, tmp_path)
    student_text = paths["student"].read_text()
    leaked = [line for line in _solution_lines(py) if line in student_text]
    assert not leaked, f"solution text leaked into the student notebook: {leaked[:3]}"

    solution = grade(py.with_suffix(".ipynb"), paths["autograder"])
    assert solution.passed.all(), format_report(solution)
    assert solution.score.sum() == solution.points.sum()

    student = grade(paths["student"], paths["autograder"])
    assert student.score.sum() == 0, format_report(student)
