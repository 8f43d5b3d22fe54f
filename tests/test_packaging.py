"""Packaging: one version, a licence file that matches the metadata, test extras that cover the
tests' imports, and a workflow that grants Pages rights to the deploy job only."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

import fairlib

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_version_is_written_once():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "fairlib.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", fairlib.__version__)


def test_licence_file_matches_metadata():
    text = (ROOT / "LICENSE").read_text()
    assert PROJECT["license"] == {"text": "MIT"}
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def _closure(names: set[str]) -> set[str]:
    """The declared distributions and everything they require (markers ignored: a superset)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return seen


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_test_extra_installs_everything_the_tests_import():
    declared = {_name(r) for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]}
    installed = _closure(declared)
    local = {"fairlib", "data_scripts", "tests"} | {p.stem for p in (ROOT / "tests").glob("*.py")}
    providers = metadata.packages_distributions()
    missing = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        for module in _imported_modules(path) - local - set(sys.stdlib_module_names):
            dists = {_name(d) for d in providers.get(module, [])}
            if not dists & installed:
                missing[module] = path.name
    assert not missing, f"imported by the tests but not installed by pip install '.[test]': {missing}"


def test_workflow_grants_pages_rights_to_deploy_only():
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    assert flow["permissions"] == {"contents": "read"}
    assert "permissions" not in flow["jobs"]["build"]
    assert flow["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}


def test_readme_points_only_inside_the_repository():
    text = (ROOT / "README.md").read_text()
    assert "../" not in text, "the README must not point at files outside the repository"
