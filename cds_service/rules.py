"""How a recommendation is written down: the Rule, what it returns when it fires, and the registry.

The clinical knowledge itself lives in the top-level `cards` package, one module per recommendation, each declaring
its rule id, the article's statement, the trigger in words, the hooks, the citation and the evidence level next to the
code that decides. This module is only the shape they share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .facts import PatientFacts
from .settings import Settings

INDICATORS = ("critical", "warning", "info")
HOOKS = ("patient-view", "order-select", "order-sign")
_RULE_ID = re.compile(r"^(G0|R\d{2}[a-z]?)$")


@dataclass(frozen=True, slots=True)
class Action:
    """A CDS Hooks suggestion action. Deletes name the resource (resourceId); creates carry a FHIR resource."""

    type: str  # create | update | delete
    description: str
    resource: dict | None = None
    resource_id: str | None = None


@dataclass(frozen=True, slots=True)
class Suggestion:
    label: str
    actions: tuple[Action, ...] = ()
    is_recommended: bool | None = None
    key: str | None = None  # stable identity within the card, for a deterministic suggestion uuid


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str


@dataclass(slots=True)
class Recommendation:
    """What a rule says when it fires: one card's worth of content, before grouping (A12)."""

    indicator: str
    summary: str
    detail: str
    evidence: list[dict] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    selection_behavior: str = "at-most-one"
    links: list[Link] = field(default_factory=list)
    override_reasons: list[tuple[str, str]] | None = None  # (code, display); warnings/critical get defaults
    group: str | None = None  # recommendations of one group share a card (e.g. treatment options)
    group_line: str | None = None  # the one line this recommendation adds to a grouped card's summary list
    # An option this rule would list but does not suggest for this patient (e.g. minocycline in pregnancy): shown as
    # a "not suggested, and why" note on its group's card; the rule does not count as fired and suggests nothing.
    withheld: bool = False
    # A card that exists only for its suggestions (e.g. R17's referrals): dropped when every one of them is already
    # offered on an earlier card (A12: no two cards saying the same thing).
    needs_suggestions: bool = False
    rule_id: str = ""  # filled in by the engine


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule may know besides the patient: the hook and its context, settings."""

    hook: str
    settings: Settings
    context: dict[str, Any]

    @property
    def selections(self) -> list[str]:
        value = self.context.get("selections")
        return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []


Evaluate = Callable[[PatientFacts, Context], "Recommendation | Iterable[Recommendation] | None"]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    article: str  # the article's statement, quoted (or "derived safety rule: ..." for R08c, R23)
    references: tuple[int, ...]  # the article's reference numbers for the statement; () when none are cited
    evidence_level: str  # e.g. "Case reports", "Open-label series (n=9)", "Animal data only"
    trigger: str  # the trigger in words, for the catalogue and for clinical review
    hooks: tuple[str, ...]
    evaluate: Evaluate
    outside_article: str | None = None  # where a rule comes from outside the article's treatment text (A11)
    needs_gate: bool = True  # every rule needs G0 (A1)
    suppresses: tuple[str, ...] = ()  # precedence: when this rule fires, these do not (R08c > R08a, R05 > R04)
    priority: int = 50  # order among cards of the same indicator; lower first

    @property
    def citation(self) -> str:
        refs = ", ".join(str(r) for r in self.references)
        base = "Nunley JR. Calcinosis Cutis Treatment & Management. Medscape, updated 2020-03-05"
        return f"{base}, refs [{refs}]" if refs else f"{base} (no reference cited for this statement)"


@dataclass(frozen=True)
class Gate:
    """Gate G0 (A1): no rule runs for a patient who does not pass it."""

    id: str
    title: str
    trigger: str
    evaluate: Callable[[PatientFacts], Any]  # returns a facts.Finding


_REGISTRY: dict[str, Rule] = {}
_GATE: list[Gate] = []


def declare_gate(*, id: str, title: str, trigger: str, evaluate: Callable[[PatientFacts], Any]) -> Gate:
    if _GATE:
        raise ValueError("the gate is declared twice")
    _GATE.append(Gate(id, title, trigger, evaluate))
    return _GATE[0]


def gate() -> Gate:
    import cards  # noqa: F401

    return _GATE[0]


def rule(
    *,
    id: str,
    title: str,
    article: str,
    references: tuple[int, ...] = (),
    evidence_level: str,
    trigger: str,
    hooks: tuple[str, ...] = ("patient-view",),
    outside_article: str | None = None,
    suppresses: tuple[str, ...] = (),
    priority: int = 50,
) -> Callable[[Evaluate], Rule]:
    """Declare a recommendation; the decorated function decides whether it fires for a patient."""
    if not _RULE_ID.match(id):
        raise ValueError(f"rule id {id!r} is not of the form R01 or R08a")
    unknown = set(hooks) - set(HOOKS)
    if unknown:
        raise ValueError(f"{id}: unknown hooks {sorted(unknown)}")

    def register(evaluate: Evaluate) -> Rule:
        if id in _REGISTRY:
            raise ValueError(f"rule {id} is declared twice")
        declared = Rule(id, title, article, tuple(references), evidence_level, trigger, tuple(hooks), evaluate,
                        outside_article, True, tuple(suppresses), priority)
        _REGISTRY[id] = declared
        return declared

    return register


def registry() -> dict[str, Rule]:
    """All declared rules, by id, once the `cards` package is imported."""
    import cards  # noqa: F401  (importing the package declares its rules)

    return dict(sorted(_REGISTRY.items(), key=lambda item: _sort_key(item[0])))


def _sort_key(rule_id: str) -> tuple[int, str]:
    return (int(rule_id[1:3]), rule_id[3:]) if rule_id.startswith("R") else (0, rule_id)
