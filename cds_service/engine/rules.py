"""How a recommendation is written down: the Rule, what it returns when it fires, and the Knowledge they make up.

The clinical content itself lives in the top-level `cards` package (the knowledge layer): one module per
recommendation, each declaring its rule id, the article's statement, the trigger in words, the hooks, the references
and the evidence level next to the code that decides. This module is only the shape they share; `cards.knowledge()`
gathers the declared rules, the gate, the grouped cards' texts and the source into one Knowledge for the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from cds_service.record.facts import Finding, PatientFacts
from cds_service.record.medications import MedicationFact
from cds_service.record.terminology import Terminology

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


@dataclass(frozen=True, slots=True)
class FindingKey:
    """What a recommendation fired on, as remembered for a clinician's dismissal (decision A22) and for not repeating
    an order card (A21): a key telling findings of one rule apart (R17: the specialty) and a rank ordering them
    (higher is worse: a worse finding than the one dismissed shows again). `suggestion` names the suggestion (by its
    key) that acts on this finding alone, so that a card can keep its other findings when this one is dismissed."""

    key: str = ""
    rank: int = 0
    suggestion: str | None = None


@dataclass(slots=True)
class Recommendation:
    """What a rule says when it fires: one card's worth of content, before grouping (decision A12)."""

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
    # A21/A22: what this recommendation found (none: one finding of the rule, key "" and rank 0), and the draft
    # orders it judges (the engine keys them by product, dose and route).
    findings: tuple[FindingKey, ...] = ()
    orders: tuple[MedicationFact, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """The site's settings a rule may read (the service maps its own settings onto these)."""

    low_dose_warfarin_mg_per_day: float = 2.0


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule may know besides the patient: the hook, the hook's context, the site's rule settings."""

    hook: str
    hook_context: Mapping[str, Any]
    settings: RuleSettings = RuleSettings()

    @property
    def selections(self) -> list[str]:
        value = self.hook_context.get("selections")
        return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []

    @property
    def draft_orders(self) -> Any:
        return self.hook_context.get("draftOrders")


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
    suppresses: tuple[str, ...] = ()  # precedence: when this rule fires, these do not (R08c > R08a, R05 > R04)
    priority: int = 50  # order among cards of the same indicator; lower first


@dataclass(frozen=True)
class Gate:
    """Gate G0 (decision A1): no rule runs for a patient who does not pass it."""

    id: str
    title: str
    trigger: str
    evaluate: Callable[[PatientFacts], Finding]


@dataclass(frozen=True)
class Group:
    """Info recommendations of one kind gathered into one card (decision A12)."""

    topic: str
    title: str
    summary: str  # the card's summary; {n} is the number of options
    intro: str  # the first paragraph of the card's detail
    priority: int


@dataclass(frozen=True)
class Source:
    """The source every card cites."""

    label: str
    url: str
    citation: str  # the article's bibliographic citation, without reference numbers

    def cite(self, references: tuple[int, ...]) -> str:
        refs = ", ".join(str(r) for r in references)
        return f"{self.citation}, refs [{refs}]" if refs else f"{self.citation} (no reference cited for this statement)"


@dataclass(frozen=True)
class Knowledge:
    """Everything the engine evaluates, as the knowledge layer declares it; the service reaches the rules only
    through this."""

    version: str
    gate: Gate
    rules: Mapping[str, Rule]  # in catalogue order
    groups: Mapping[str, Group]
    source: Source
    terminology: Terminology
    referral_codes: tuple[str, ...]  # SNOMED CT codes of the referrals the rules propose (prefetched, never twice)
    _by_hook: dict[str, tuple[Rule, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def rules_for_hook(self, hook: str) -> tuple[Rule, ...]:
        found = self._by_hook.get(hook)
        if found is None:
            found = self._by_hook[hook] = tuple(r for r in self.rules.values() if hook in r.hooks)
        return found

    def citation(self, rule: Rule) -> str:
        return self.source.cite(rule.references)


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

    def declare(evaluate: Evaluate) -> Rule:
        return Rule(id, title, article, tuple(references), evidence_level, trigger, tuple(hooks), evaluate,
                    outside_article, tuple(suppresses), priority)

    return declare


def gate(*, id: str, title: str, trigger: str) -> Callable[[Callable[[PatientFacts], Finding]], Gate]:
    """Declare the scope gate; the decorated function says whether a patient is in scope, and why."""

    def declare(evaluate: Callable[[PatientFacts], Finding]) -> Gate:
        return Gate(id, title, trigger, evaluate)

    return declare


def catalogue_order(rule_id: str) -> tuple[int, str]:
    return (int(rule_id[1:3]), rule_id[3:]) if rule_id.startswith("R") else (0, rule_id)
