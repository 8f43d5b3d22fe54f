"""Book checks: every chapter is a synced pair, listed in the TOC, with the Colab and parameters cells."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())


def _toc_files(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root") and isinstance(value, str):
                found.append(value)
            else:
                found += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += _toc_files(item)
    return found


TOC_FILES = _toc_files(TOC)


def _source(cell) -> str:
    src = cell["source"]
    return ("".join(src) if isinstance(src, list) else src).strip()


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def test_there_are_chapters():
    assert CHAPTERS, "no chapter notebooks found in notebooks/"


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_pair_holds_the_same_cells(py: Path):
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing: run `make sync`"
    from_py = jupytext.read(py)
    from_nb = jupytext.read(ipynb)
    a = [(c["cell_type"], _source(c), _tags(c)) for c in from_py["cells"]]
    b = [(c["cell_type"], _source(c), _tags(c)) for c in from_nb["cells"]]
    assert a == b, f"{py.name} and {ipynb.name} differ: run `make sync`"


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(py: Path):
    nb = json.loads(py.with_suffix(".ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, (
                f"{py.with_suffix('.ipynb').name} holds outputs: clear them before committing"
            )


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_in_toc(py: Path):
    assert f"notebooks/{py.stem}" in TOC_FILES, f"add `- file: notebooks/{py.stem}` to _toc.yml"


def test_toc_entries_exist():
    for entry in TOC_FILES:
        matches = [p for p in ROOT.glob(entry + ".*") if p.suffix in (".md", ".ipynb")]
        assert matches, f"_toc.yml lists {entry}, but no {entry}.md or {entry}.ipynb exists"


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_colab_setup_cell_installs_from_this_repository(py: Path):
    cells = jupytext.read(py)["cells"]
    setup = [c for c in cells if "colab-setup" in _tags(c)]
    assert len(setup) == 1, "each chapter has exactly one code cell tagged `colab-setup`"
    src = _source(setup[0])
    url = CONFIG["repository"]["url"]
    assert f'REPO = "{url}"' in src, f"the Colab cell must install from _config.yml's repository url {url}"
    assert '"google.colab" in sys.modules' in src, "the Colab cell must be a no-op outside Colab"
    code = "\n".join(line.split("#", 1)[0] for line in src.splitlines())
    assert not re.search(r"pip install\s+(-\S+\s+)*fairlib\b", code), (
        "never `pip install fairlib` (PyPI's is unrelated)")
    assert '"fairlib"' not in code, "install from the repository, never the PyPI name `fairlib`"
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert first_code is setup[0], "the Colab setup cell must be the first code cell"
    assert '"/content/course[colab]"' in code, (
        "install the [colab] extra: the fetchers' and Chapter 4's dependencies are not all preinstalled on Colab")


#: The real datasets each chapter's full profile reads (Chapter 1 constructs its data).
REAL_DATA = {"02_bias_amplification": ["fashionmnist", "cifar10", "cifar100"], "03_linear_probes": ["fairface"],
             "04_activation_profiles": ["fairface"], "05_pruning_bias": ["celeba"],
             "06_adversarial_invariance": ["utkface"], "07_bias_transfer": ["coco"]}


@pytest.mark.parametrize("stem", sorted(REAL_DATA))
def test_full_chapter_has_a_data_cell_that_fetches_what_it_reads(stem):
    cells = jupytext.read(ROOT / "notebooks" / f"{stem}.py")["cells"]
    data = [_source(c) for c in cells if c["cell_type"] == "code" and "ensure(" in _source(c)]
    assert len(data) == 1, "one data cell"
    assert 'if PROFILE != "quick":' in data[0], "the data cell does nothing in the quick profile"
    assert f"ensure({REAL_DATA[stem]!r})".replace("'", '"') in data[0]
    assert "use_drive()" in data[0], "on Colab the data and finished runs live on Drive"


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_parameters_cell_selects_the_profile(py: Path):
    cells = jupytext.read(py)["cells"]
    params = [c for c in cells if "parameters" in _tags(c)]
    assert len(params) == 1, "each chapter has exactly one cell tagged `parameters`"
    assert 'PROFILE = os.environ.get("FAIRLIB_PROFILE", "quick")' in _source(params[0])


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_lesson_order(py: Path):
    text = "\n".join(_source(c) for c in jupytext.read(py)["cells"] if c["cell_type"] == "markdown")
    headings = ["Learning objectives", "## The idea", "## Compare with the paper", "## Exercises", "## Summary"]
    positions = [text.find(h) for h in headings]
    assert all(p >= 0 for p in positions), f"missing sections: {[h for h, p in zip(headings, positions) if p < 0]}"
    assert positions == sorted(positions), "sections out of order"
    assert text.count("{exercise}") >= 3, "at least three exercises"


def test_book_config_fails_on_errors():
    execute = CONFIG["execute"]
    assert execute["execute_notebooks"] == "force"
    assert execute["raise_on_error"] is True and execute["allow_errors"] is False
    assert execute["timeout"] > 30
    assert "*.py" in execute.get("exclude_patterns", []), ".py sources must not be executed or built"


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_exercise_solutions_are_collapsed(py: Path):
    text = "\n".join(_source(c) for c in jupytext.read(py)["cells"] if c["cell_type"] == "markdown")
    blocks = re.findall(r"^:::+\{solution\}[^\n]*\n((?::[^\n]*\n)*)", text, re.MULTILINE)
    assert blocks, "each chapter's exercises have {solution} blocks"
    open_blocks = [i for i, opts in enumerate(blocks) if ":class: dropdown" not in opts]
    assert not open_blocks, f"solution blocks {open_blocks} are not folded: add `:class: dropdown`"


# The book build is what proves that every solution scores full marks: it executes each test cell
# with raise_on_error. These checks keep that true: no chapter is excluded from execution, and no
# test cell is skipped, turned into text or allowed to fail. `make book` then checks the executed
# notebooks themselves (book/_scripts/check_executed.py).
_ALLOWED_TEST_TAGS = {"tests", "remove-cell", "remove-input", "remove-output", "hide-cell", "hide-input",
                      "hide-output"}


def test_book_executes_every_chapter():
    from fnmatch import fnmatch

    patterns = CONFIG["execute"].get("exclude_patterns", [])
    for py in CHAPTERS:
        rel = f"notebooks/{py.stem}.ipynb"
        hit = [p for p in patterns if fnmatch(rel, p) or fnmatch(py.stem + ".ipynb", p)]
        assert not hit, f"{rel} is excluded from execution by {hit}"
    assert not CONFIG["execute"].get("execution_excludepatterns"), "no chapter may be excluded from execution"


@pytest.mark.parametrize("py", CHAPTERS, ids=lambda p: p.stem)
def test_test_cells_are_executed_by_the_book(py: Path):
    cells = jupytext.read(py.with_suffix(".ipynb"))["cells"]
    tests = [c for c in cells if "tests" in _tags(c)]
    assert tests, f"{py.name} has no cell tagged `tests`"
    for cell in tests:
        extra = {t for t in _tags(cell) if not t.startswith(("exercise:", "points:"))} - _ALLOWED_TEST_TAGS
        assert cell["cell_type"] == "code", "a tests cell must be a code cell (a raw or markdown cell never runs)"
        assert not extra, f"tests cell tagged {sorted(extra)}: it would be skipped or allowed to fail"
        assert "assert" in _source(cell), "a tests cell must assert something"


def test_book_excludes_every_virtual_environment_the_makefile_creates():
    # `make rehearse` creates a second venv in the repository root; jupyter-book would otherwise
    # read the markdown files its packages ship and fail the next `make book`
    makefile = (ROOT / "Makefile").read_text()
    venvs = re.findall(r"^(?:VENV|COLAB_VENV)\s*:=\s*(\S+)", makefile, flags=re.M)
    assert sorted(venvs) == [".venv", ".venv-colab"]
    for venv in venvs:
        assert f"{venv}/*" in CONFIG["exclude_patterns"], f"_config.yml must exclude {venv}/*"


def _share_packages():
    import importlib.util

    spec = importlib.util.spec_from_file_location("share_packages", ROOT / "book/_scripts/share_packages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_share_packages_links_a_distribution_and_its_requirements(tmp_path: Path):
    # `make rehearse` gives .venv-colab the preinstalled set as hard links to .venv's files
    share = _share_packages()
    names = {d.metadata["Name"].lower() for d in share.closure(["matplotlib"])}
    assert {"matplotlib", "numpy", "pyparsing"} <= names  # requirements, transitively
    assert "pytest" not in names
    dest = tmp_path / "site-packages"
    dest.mkdir()
    assert share.main([str(dest), "tqdm"]) == 0
    import tqdm

    source = Path(tqdm.__file__)
    target = dest / "tqdm" / "__init__.py"
    assert target.stat().st_ino == source.stat().st_ino  # the same file, no second copy
    assert list(dest.glob("tqdm-*.dist-info/METADATA")), "pip must see it installed"
    assert share.main([str(dest), "tqdm"]) == 0  # again: existing files are left alone


def test_share_packages_names_the_fix(tmp_path: Path, capsys):
    share = _share_packages()
    assert share.main([str(tmp_path), "no-such-distribution-xyz"]) == 1
    assert "make venv" in capsys.readouterr().err
    assert share.main([str(tmp_path / "missing"), "tqdm"]) == 1
    assert "python -m venv" in capsys.readouterr().err
    other = tmp_path / "lib" / "python2.7" / "site-packages"
    other.mkdir(parents=True)
    assert share.main([str(other), "tqdm"]) == 1
    assert "same PYTHON" in capsys.readouterr().err
