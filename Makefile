# The two commands: `make test` (lint, then pytest) and `make book`. Both set up .venv on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Book builds run every chapter in the quick profile, offline, with quiet progress bars. No
# MPLBACKEND here: a kernel started with MPLBACKEND=Agg skips the inline backend and the book
# would lose every figure.
BOOK_ENV := FAIRLIB_PROFILE=quick FAIRLIB_BOOK=1 FAIRLIB_DEVICE=cpu PYDEVD_DISABLE_FILE_VALIDATION=1

.PHONY: test lint book sync clean bench venv rehearse

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed (found %s); set PYTHON=python3.X" % sys.version.split()[0])'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install -e ".[test,fetch,topomap,classroom,transfer]"
	touch $(STAMP)

# Linting first: a style or pyflakes error fails in seconds, before the test suite runs.
test: lint
	$(BIN)/python -m pytest --durations=10

# ruff's rules and per-file exceptions live in pyproject.toml; `ruff check --fix` repairs imports.
lint: $(STAMP)
	$(BIN)/ruff check .

book: $(STAMP)
	rm -rf _build/html _build/.doctrees _build/jupyter_execute
	$(BIN)/python book/_scripts/plan_table.py
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

# The real path, rehearsed: the full profile's code on miniature copies of every source (written by
# data_scripts.rehearse in each source's published format, fetched through the real fetch code's
# local-source path), with random weights, in a venv that holds only what Colab preinstalls plus
# what the chapters' setup cell installs (".[colab]"), so that a missing dependency fails here.
# nbclient/nbformat only drive the kernel. Never rendered into the book.
COLAB_VENV := .venv-colab
COLAB_STAMP := $(COLAB_VENV)/.installed
COLAB_PREINSTALLED := torch torchvision numpy scipy pandas scikit-learn matplotlib tqdm ipykernel
REHEARSAL := _build/rehearsal

# The preinstalled set (torch alone is a 6 GB CUDA build here) is hard-linked from .venv, not
# installed twice: a second copy ran CI out of disk. pip then finds those satisfied.
$(COLAB_STAMP): pyproject.toml $(STAMP)
	test -d $(COLAB_VENV) || $(PYTHON) -m venv $(COLAB_VENV)
	$(BIN)/python book/_scripts/share_packages.py \
	  "$$($(COLAB_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" $(COLAB_PREINSTALLED)
	$(COLAB_VENV)/bin/python -m pip install -q $(COLAB_PREINSTALLED) nbclient nbformat
	$(COLAB_VENV)/bin/python -m pip install -q ".[colab]"
	touch $(COLAB_STAMP)

rehearse: $(COLAB_STAMP)
	rm -rf $(REHEARSAL)
	$(COLAB_VENV)/bin/python -m data_scripts.rehearse --root $(REHEARSAL)/mirror
	$(COLAB_VENV)/bin/python -m data_scripts.fetch all --root $(REHEARSAL)/data --source $(REHEARSAL)/mirror
	$(COLAB_VENV)/bin/python book/_scripts/run_rehearsal.py --data $(REHEARSAL)/data --out $(REHEARSAL)/executed
