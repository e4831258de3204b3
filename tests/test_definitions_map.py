"""Where a clinical definition lives and which rules use it can be read from one file: each module of
cards/definitions/ says "Used by: ..." in its docstring, and this test keeps that line true (a rule module that
imports one of the module's definitions uses it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import cards.definitions

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "cards" / "definitions"
RULES = ROOT / "cards" / "rules"


def _defining_module(name: str) -> str:
    """The module of cards/definitions/ that defines `name` (a function, or a constant assigned at top level)."""
    for path in DEFINITIONS.glob("*.py"):
        if path.stem == "__init__":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                return path.stem
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    return path.stem
    raise AssertionError(f"{name} is exported by cards.definitions but defined in none of its modules")


def rules_using(module: str) -> set[str]:
    users = set()
    for path in RULES.glob("r*.py"):
        rule_id = path.stem.split("_")[0]
        rule_id = "R" + rule_id[1:]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module == "definitions":
                if any(_defining_module(alias.name) == module for alias in node.names):
                    users.add(rule_id)
    return users


def declared_users(module: str) -> set[str]:
    doc = ast.get_docstring(ast.parse((DEFINITIONS / f"{module}.py").read_text())) or ""
    found = re.search(r"Used by:([^.]*)\.", doc, re.S)
    assert found, f"cards/definitions/{module}.py does not say which rules use it (a 'Used by: ...' sentence)"
    return set(re.findall(r"\bR\d{2}[a-z]?\b", found.group(1)))


MODULES = sorted(p.stem for p in DEFINITIONS.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", MODULES)
def test_each_definition_module_names_the_rules_that_use_it(module):
    assert declared_users(module) == rules_using(module), (
        f"cards/definitions/{module}.py: 'Used by' says {sorted(declared_users(module))}, "
        f"the rules importing it are {sorted(rules_using(module))}"
    )


def test_every_exported_definition_has_one_home():
    for name in cards.definitions.__all__:
        assert _defining_module(name) in MODULES
