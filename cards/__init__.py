"""The clinical knowledge of calcinosis-cds: what a clinician reviews and signs off.

- definitions/   the clinical definitions every rule shares, each once (renal insufficiency, hyperphosphatemia...)
- rules/         one module per recommendation of the article (and the scope gate G0): the article's statement,
                 the trigger in words, the evidence, and the function that decides
- referrals.py, diet.py, wording.py   what several rules suggest or say the same way
- groups.py, sources.py               the grouped cards' texts, the source every card cites
- limits.py                           who gets no medication or diet proposal, and what the cards say (A16, A18)
- data/          the value sets, lab analytes and units (each code with its source and verification status)

The machinery (cds_service) reaches all of it through `knowledge()`; modules here import only the rule authoring
API (cds_service.engine.authoring), as an import-linter contract checks.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import import_module
from pathlib import Path

from cds_service.engine.authoring import Gate, Knowledge, Rule, Terminology, catalogue_order, load_terminology

from .groups import GROUPS
from .limits import POLICY
from .referrals import REFERRAL_CODES
from .sources import ARTICLE

KNOWLEDGE_VERSION = "2020-03-05.1"  # the article's version, and this project's revision of its rules
DATA = Path(__file__).resolve().parent / "data"
# Conditions, labs and coded observations first; then the medication value sets.
TERMINOLOGY_FILES = ("terminology.json", "terminology-medications.json")
# (data/condition-text.json, the cues of A18, is read by definitions/scope.py.)
RULES = Path(__file__).resolve().parent / "rules"


def terminology_files() -> list[Path]:
    return [DATA / name for name in TERMINOLOGY_FILES]


@lru_cache(maxsize=1)
def terminology() -> Terminology:
    """The code tables, parsed once per process (they are read-only)."""
    return load_terminology(terminology_files())


def _declarations() -> tuple[list[Gate], list[Rule]]:
    """Every module of rules/ in name order; what each declares with @gate or @rule."""
    gates, rules = [], []
    for name in sorted(p.stem for p in RULES.glob("*.py") if not p.stem.startswith("_")):
        module = import_module(f"{__name__}.rules.{name}")
        for value in vars(module).values():
            if isinstance(value, Gate):
                gates.append(value)
            elif isinstance(value, Rule):
                rules.append(value)
    return gates, rules


@lru_cache(maxsize=1)
def knowledge() -> Knowledge:
    """The rules, the gate, the grouped cards' texts, the source and the code tables, as the engine takes them."""
    gates, rules = _declarations()
    if len(gates) != 1:
        raise ValueError(f"exactly one scope gate must be declared, found {len(gates)}")
    by_id: dict[str, Rule] = {}
    for declared in rules:
        if declared.id in by_id and by_id[declared.id] is not declared:
            raise ValueError(f"rule {declared.id} is declared twice")
        by_id[declared.id] = declared
    ordered = dict(sorted(by_id.items(), key=lambda item: catalogue_order(item[0])))
    return Knowledge(
        version=KNOWLEDGE_VERSION,
        gate=gates[0],
        rules=ordered,
        groups=GROUPS,
        source=ARTICLE,
        terminology=terminology(),
        referral_codes=REFERRAL_CODES,
        proposal_policy=POLICY,
    )
