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

from cds_service.record.facts import PatientFacts
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
    # What the suggestion proposes, stable across calls ("referral-nephrology", "lab:2777-1"): one card never
    # offers the same key twice, and with the rule id it is the suggestion's stable key in the card's extension.
    key: str | None = None


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
    # Said first, wherever the recommendation is shown: why the engine withheld its proposals (A16, A18; limits.py).
    notes: list[str] = field(default_factory=list)
    # The one line this option adds to a grouped card, after its group_line: what matters for this patient, in a
    # sentence (decision A20: a card that gathers options gives one line per option). Also the note of a withheld
    # option. Without it, a grouped card shows the option's group_line alone.
    brief: str | None = None
    # What the rule found, in a few stable words ("nephrology", "critical-calcium", "order:magnesium oxide"): with
    # the rule id it makes the card's stable key (decision A20), the same for the same finding on every call.
    finding: str | None = None
    rule_id: str = ""  # filled in by the engine
    # A21/A22: what this recommendation found, as the service's memory tells findings apart and ranks them, and the
    # draft orders it judges (the engine keys them by product, dose and route, hashed). Not the same as `finding`:
    # that names the card's content for the EHR (it changes when R01 finds one more driver, and names the products
    # ordered); these name what a clinician dismisses, which stays the same while only its severity changes (R01:
    # ranked by the number of drivers; R17: one per specialty, each tied to its referral), and never name a product.
    # Without them the memory keys the rule's one finding (key "", rank 0; screening.findings_of).
    findings: tuple[FindingKey, ...] = ()
    orders: tuple[MedicationFact, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """The site's settings a rule may read (the service maps its own settings onto these)."""

    low_dose_warfarin_mg_per_day: float = 2.0


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule may know besides the patient: the hook, the hook's context, the site's rule settings, and where
    the service's rule pages are (every card links to its rule's page: {rule_page_base}/rules/{rule id})."""

    hook: str
    hook_context: Mapping[str, Any]
    settings: RuleSettings = RuleSettings()
    rule_page_base: str | None = None  # e.g. "https://cds.example.org"; None: cards carry no page link

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
    evidence_level: str  # the full evidence, for the rule's page and the catalogue
    trigger: str  # the trigger in words, for the catalogue and for clinical review
    hooks: tuple[str, ...]
    evaluate: Evaluate
    outside_article: str | None = None  # where a rule comes from outside the article's treatment text (A11)
    suppresses: tuple[str, ...] = ()  # precedence: when this rule fires, these do not (R08c > R08a, R05 > R04)
    priority: int = 50  # order among cards of the same indicator; lower first
    # A17: False for the options of dystrophic calcinosis, which the engine does not run when the patient is in scope
    # through calciphylaxis alone.
    in_calciphylaxis_alone: bool = True
    # The evidence level in a few words, as the card states it (A10, A20: "case reports"); evidence_level when None.
    evidence_grade: str | None = None
    exclusions: tuple[str, ...] = ()  # when the rule does not fire although its trigger holds, in words (rule page)
    source: Source | None = None  # where the rule comes from, when not the article (R08c: VisualDx; R23: the overview)

    @property
    def card_evidence(self) -> str:
        return self.evidence_grade or self.evidence_level


CONFIRMED, PROVISIONAL = "confirmed", "provisional"


@dataclass(frozen=True, slots=True)
class Scope:
    """What gate G0 found (decisions A1, A17, A18): in scope or not, through which kind of calcinosis, and whether
    that diagnosis is confirmed. Each kind is CONFIRMED, PROVISIONAL (a provisional or differential Condition, or an
    uncertain mention such as "r/o calciphylaxis") or None (absent)."""

    calcinosis: str | None = None  # calcinosis cutis or tumoral calcinosis
    calciphylaxis: str | None = None
    evidence: tuple[dict, ...] = ()

    def __post_init__(self) -> None:
        for kind in (self.calcinosis, self.calciphylaxis):
            if kind not in (None, CONFIRMED, PROVISIONAL):
                raise ValueError(f"a kind of calcinosis is {CONFIRMED!r}, {PROVISIONAL!r} or None, not {kind!r}")

    @property
    def present(self) -> bool:
        return self.calcinosis is not None or self.calciphylaxis is not None

    def __bool__(self) -> bool:
        return self.present

    @property
    def calciphylaxis_only(self) -> bool:
        """A17: in scope through calciphylaxis, with no calcinosis cutis or tumoral calcinosis at all."""
        return self.calcinosis is None and self.calciphylaxis is not None

    def confirmed_for(self, rule: "Rule") -> bool:
        """A18: whether the diagnosis a rule rests on is confirmed. The options of dystrophic calcinosis (not run in
        calciphylaxis alone) rest on the calcinosis; the others on either kind."""
        if self.calcinosis == CONFIRMED:
            return True
        return rule.in_calciphylaxis_alone and self.calciphylaxis == CONFIRMED


@dataclass(frozen=True)
class Gate:
    """Gate G0 (decision A1): no rule runs for a patient who does not pass it."""

    id: str
    title: str
    trigger: str
    evaluate: Callable[[PatientFacts], Scope]


@dataclass(frozen=True, slots=True)
class ProposalLimit:
    """Why no medication or diet is proposed to a patient (A16: a child; A18: a diagnosis not confirmed)."""

    reason: str  # a key for machines, in the card's extension ("child", "diagnosis-not-confirmed")
    note: str  # what the card says instead, e.g. "in children, a decision for the paediatric specialist"
    evidence: tuple[dict, ...] = ()


@dataclass(frozen=True)
class ProposalPolicy:
    """The proposals a card may not carry under a limit, and which options say so even with nothing to remove. The
    knowledge declares it (decisions A16, A18); the engine applies it to every rule, so that no rule module has to."""

    withheld_resources: frozenset[str]  # resource types never proposed under a limit (MedicationRequest...)
    option_groups: frozenset[str]  # groups whose recommendations are medication or diet options
    patient_limits: Callable[[PatientFacts], tuple[ProposalLimit, ...]]  # limits of the patient (A16)
    unconfirmed: ProposalLimit  # the limit of a rule whose diagnosis is not confirmed (A18)


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
    """A source a card cites: the article for its rules, a rule's own source for one from outside it (A20)."""

    label: str
    url: str
    citation: str  # the bibliographic citation, without reference numbers
    numbered_references: bool = True  # the article cites its evidence by number; a rule's own source does not

    def cite(self, references: tuple[int, ...]) -> str:
        refs = ", ".join(str(r) for r in references)
        if refs:
            return f"{self.citation}, refs [{refs}]"
        return f"{self.citation} (no reference cited for this statement)" if self.numbered_references else self.citation


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
    # How recent a Procedure must be (unless in progress) for any rule to read it (dialysis, A14); older ones are left
    # out before validation, which a dialysis patient's hundreds of sessions would otherwise cost.
    procedure_window_days: int | None = None
    proposal_policy: ProposalPolicy | None = None  # None: no proposal is ever withheld by the engine
    _by_hook: dict[str, tuple[Rule, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def rules_for_hook(self, hook: str) -> tuple[Rule, ...]:
        found = self._by_hook.get(hook)
        if found is None:
            found = self._by_hook[hook] = tuple(r for r in self.rules.values() if hook in r.hooks)
        return found

    def source_of(self, rule: Rule) -> Source:
        return rule.source or self.source

    def citation(self, rule: Rule) -> str:
        return self.source_of(rule).cite(rule.references)


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
    in_calciphylaxis_alone: bool = True,
    evidence_grade: str | None = None,
    exclusions: tuple[str, ...] = (),
    source: Source | None = None,
) -> Callable[[Evaluate], Rule]:
    """Declare a recommendation; the decorated function decides whether it fires for a patient."""
    if not _RULE_ID.match(id):
        raise ValueError(f"rule id {id!r} is not of the form R01 or R08a")
    unknown = set(hooks) - set(HOOKS)
    if unknown:
        raise ValueError(f"{id}: unknown hooks {sorted(unknown)}")

    def declare(evaluate: Evaluate) -> Rule:
        return Rule(id, title, article, tuple(references), evidence_level, trigger, tuple(hooks), evaluate,
                    outside_article, tuple(suppresses), priority, in_calciphylaxis_alone, evidence_grade,
                    tuple(exclusions), source)

    return declare


def gate(*, id: str, title: str, trigger: str) -> Callable[[Callable[[PatientFacts], Scope]], Gate]:
    """Declare the scope gate; the decorated function says whether a patient is in scope, how, and why."""

    def declare(evaluate: Callable[[PatientFacts], Scope]) -> Gate:
        return Gate(id, title, trigger, evaluate)

    return declare


def catalogue_order(rule_id: str) -> tuple[int, str]:
    return (int(rule_id[1:3]), rule_id[3:]) if rule_id.startswith("R") else (0, rule_id)
