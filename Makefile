# The two commands: `make test` (lint, then pytest) and `make book`. Both set up .venv on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Book builds run every chapter in the quick profile, offline, with quiet progress bars. No
# MPLBACKEND here: a kernel started with MPLBACKEND=Agg skips the inline backend and the book
# would lose every figure.
BOOK_ENV := FAIRLIB_PROFILE=quick FAIRLIB_BOOK=1 FAIRLIB_DEVICE=cpu PYDEVD_DISABLE_FILE_VALIDATION=1

.PHONY: test lint book sync clean bench venv

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed (found %s); set PYTHON=python3.X" % sys.version.split()[0])'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install -e ".[test,fetch,topomap,classroom]"
	touch $(STAMP)

# Linting first: a style or pyflakes error fails in seconds, before the test suite runs.
test: lint
	$(BIN)/python -m pytest --durations=10

# ruff's rules and per-file exceptions live in pyproject.toml; `ruff check --fix` repairs imports.
lint: $(STAMP)
	$(BIN)/ruff check .

book: $(STAMP)
	rm -rf _build/html _build/.doctrees _build/jupyter_execute
	$(BOOK_ENV) $(BIN)/jupyter-book build . --all -W --keep-going
	@test -f _build/html/index.html && echo "Book built: _build/html/index.html"
	$(BIN)/python book/_scripts/check_executed.py _build

sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/*.py

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf _build .pytest_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

.PHONY: assignments
assignments: $(STAMP)
	$(BIN)/python -m fairlib.classroom assign notebooks/[0-9][0-9]_*.py --out _build/assignments
