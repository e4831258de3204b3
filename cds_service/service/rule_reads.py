"""What a rule reads, found in its code: the value sets, laboratory analytes, coded observations and referrals it asks
the patient's facts for, and the numeric thresholds it compares them with. The rule pages show these.

Nothing is declared twice, so nothing can drift: the rule's function is parsed (ast) together with every function of
the knowledge layer (cards/) it names, transitively (its definitions, its module's helpers, referrals.py...).
- A string in that code that names a value set, an analyte or a coded observation of the terminology is read by the
  rule. The decorator's arguments (title, trigger...) are not code and are not scanned.
- A module-level constant that code names counts as its value: a string, tuple or list is read whole
  (GATE_VALUE_SETS); a dict, set or frozenset is a lookup table, of which only the entries whose key the rule names
  count (ADULT_DEFAULT_HIGH["magnesium"] for a rule that reads magnesium, REFERRALS["nephrology"]), so that a table
  shared by many rules does not lend all its names to each of them.
- A number among those constants (or table entries) is a threshold; the comment by its declaration says what it is.
Functions of the machinery (cds_service) are not followed: they read only what the rule passes them.
"""

from __future__ import annotations

import ast
import inspect
import io
import sys
import textwrap
import tokenize
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from typing import Any, Callable

import cards
from cards.referrals import REFERRALS

KNOWLEDGE_PACKAGE = "cards"
_TABLES = (dict, set, frozenset)
_SEQUENCES = (tuple, list)


@dataclass(frozen=True)
class Threshold:
    name: str  # EGFR_RENAL_INSUFFICIENCY, or ADULT_DEFAULT_HIGH["magnesium"] for a table's entry
    value: float
    note: str  # the comment by its declaration ("" when there is none)
    module: str  # the module that declares it, e.g. cards.definitions.renal


@dataclass(frozen=True)
class Reads:
    value_sets: tuple[str, ...]
    labs: tuple[str, ...]
    observations: tuple[str, ...]
    referrals: tuple[str, ...]  # keys of cards.referrals.REFERRALS
    thresholds: tuple[Threshold, ...]


def _in_knowledge(module_name: str | None) -> bool:
    return bool(module_name) and (module_name == KNOWLEDGE_PACKAGE or module_name.startswith(KNOWLEDGE_PACKAGE + "."))


@lru_cache(maxsize=None)
def _module_source(module_name: str) -> tuple[ast.Module, dict[int, str], frozenset[int]]:
    """A module's syntax tree, its comments by line, and the lines that hold a comment alone."""
    source = inspect.getsource(import_module(module_name))
    comments, own_line = {}, set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
            if not token.line[: token.start[1]].strip():
                own_line.add(token.start[0])
    return ast.parse(source), comments, frozenset(own_line)


def _absolute(module_name: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    module = sys.modules[module_name]
    package = module_name if hasattr(module, "__path__") else module_name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _declaration(module_name: str, name: str, depth: int = 0) -> tuple[str, ast.stmt] | None:
    """Where a module-level name of the knowledge layer is assigned, following `from ... import` chains."""
    if depth > 10 or not _in_knowledge(module_name):
        return None
    tree = _module_source(module_name)[0]
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in statement.targets):
            return module_name, statement
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.target.id == name:
            return module_name, statement
        if isinstance(statement, ast.ImportFrom):
            for alias in statement.names:
                if (alias.asname or alias.name) == name:
                    return _declaration(_absolute(module_name, statement), alias.name, depth + 1)
    return None


def _note(module_name: str, statement: ast.stmt) -> str:
    """The comment on a declaration's line (or its last line), else the comment lines right above it."""
    _, comments, own_line = _module_source(module_name)
    for candidate in (statement.lineno, statement.end_lineno):
        if candidate in comments and candidate not in own_line:
            return comments[candidate]
    above, number = [], statement.lineno - 1
    while number in own_line:
        above.insert(0, comments[number])
        number -= 1
    return " ".join(above)


def _function_tree(function: Callable) -> ast.AST | None:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return None
    definition = tree.body[0] if tree.body else None
    if isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef)):
        # Its arguments (with their defaults) and body; the decorator's arguments are declarations, not code.
        return ast.Module(body=[*definition.body], type_ignores=[]), definition.args
    return None


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, _SEQUENCES):
        return set().union(*(_strings(item) for item in value)) if value else set()
    if hasattr(value, "__dataclass_fields__"):
        return set().union(*(_strings(getattr(value, f)) for f in value.__dataclass_fields__))
    return set()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Scan:
    def __init__(self) -> None:
        self.strings: set[str] = set()
        self.constants: dict[tuple[str, str], ast.stmt] = {}  # (module, name) -> its declaration
        self.seen: set[Callable] = set()

    def function(self, function: Callable) -> None:
        function = inspect.unwrap(function)
        if function in self.seen or not inspect.isfunction(function) or not _in_knowledge(function.__module__):
            return
        self.seen.add(function)
        parsed = _function_tree(function)
        if parsed is None:
            return
        for root in parsed:
            for node in ast.walk(root):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    self.strings.add(node.value)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    self.name(function, node.id)

    def name(self, function: Callable, name: str) -> None:
        value = function.__globals__.get(name)
        if value is None:
            return
        if callable(value) and inspect.isfunction(inspect.unwrap(value)):
            self.function(value)
            return
        declared = _declaration(function.__module__, name)
        if declared is not None and (_number(value) or isinstance(value, (str, *_SEQUENCES, *_TABLES))):
            self.constants[(declared[0], name)] = declared[1]


def _table_entries(statement: ast.stmt) -> dict[Any, int]:
    """The line of each literal key of a dict or set display, for the comment by an entry."""
    value = statement.value
    if isinstance(value, ast.Dict):
        return {k.value: k.lineno for k in value.keys if isinstance(k, ast.Constant)}
    return {}


def reads_of(evaluate: Callable) -> Reads:
    """What the function of a rule (or of the gate) reads; see the module's docstring for how it is found."""
    scan = _Scan()
    scan.function(evaluate)
    terms = cards.terminology()
    strings = set(scan.strings)
    thresholds: dict[str, Threshold] = {}
    referrals: set[str] = set()
    changed = True
    while changed:  # a table's entry may name what unlocks another table's entry (a referral's encounter value set)
        changed = False
        for (module, name), statement in scan.constants.items():
            value = getattr(import_module(module), name)
            if _number(value):
                thresholds.setdefault(name, Threshold(name, value, _note(module, statement), module))
            elif isinstance(value, (str, *_SEQUENCES)):
                changed |= not _strings(value) <= strings
                strings |= _strings(value)
            elif isinstance(value, dict):
                lines = _table_entries(statement)
                for key, entry in value.items():
                    if key not in strings:
                        continue
                    if _number(entry):
                        label = f'{name}["{key}"]'
                        own = _module_source(module)[1].get(lines.get(key, -1), "")
                        note = "; ".join(n for n in (own, _note(module, statement)) if n)
                        thresholds.setdefault(label, Threshold(label, entry, note, module))
                    else:
                        changed |= not _strings(entry) <= strings
                        strings |= _strings(entry)
                    if value is REFERRALS:
                        referrals.add(key)
    return Reads(
        value_sets=tuple(n for n in terms.value_sets if n in strings),
        labs=tuple(n for n in terms.labs if n in strings),
        observations=tuple(n for n in terms.observations if n in strings),
        referrals=tuple(k for k in REFERRALS if k in referrals),
        thresholds=tuple(thresholds.values()),
    )


@lru_cache(maxsize=None)
def rule_reads(rule_id: str) -> Reads:
    """What the rule (or the gate, "G0") of this id reads; KeyError for an unknown id."""
    knowledge = cards.knowledge()
    if rule_id == knowledge.gate.id:
        return reads_of(knowledge.gate.evaluate)
    return reads_of(knowledge.rules[rule_id].evaluate)
