"""The layering of DESIGN.md, checked on the imports themselves: style_engine <- tasks <- flows
<- atelier (CLI, web); db, storage, redaction and worker_settings are leaves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
# package -> our packages it must never import (at any depth: inside functions too)
FORBIDDEN = {
    "tasks": {"atelier", "flows"},
    "flows": {"atelier"},
    "db": {"atelier", "tasks", "flows", "style_engine", "storage"},
    "storage": {"atelier", "tasks", "flows", "style_engine", "db"},
    "redaction": {"atelier", "tasks", "flows", "style_engine", "db", "storage", "worker_settings"},
    "worker_settings": {"atelier", "tasks", "flows", "style_engine", "db", "storage", "redaction"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_a_layer_above_it(package):
    wrong = {f"{path.relative_to(ROOT)} imports {name}"
             for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts
             for name in imported_packages(path) & FORBIDDEN[package]}
    assert not wrong, sorted(wrong)
