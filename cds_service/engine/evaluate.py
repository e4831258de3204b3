"""The rule engine: gate G0, every rule of the hook, precedence, then few cards a clinician can bear (decision A12).

- No active calcinosis (G0): no cards, on every hook (A1). In scope through calciphylaxis alone, the rules declared
  `in_calciphylaxis_alone=False` do not run (A17). A child, or a diagnosis not confirmed, gets no medication or diet
  proposal from any card (A16, A18: limits.py, with the knowledge's ProposalPolicy).
- A rule that fires may suppress another (R08c over R08a, R05 over R04).
- Warnings and critical cards stand alone and come first; options of one kind share one card (the knowledge's groups).
- An option a rule withholds for this patient (pregnancy, age, allergy, renal function) is not suggested: its group's
  card says what was not suggested and why, and the rule does not count as fired (extension "withheld").
- No suggestion twice: the same proposal (same resource type and code) offered by two cards stays only on the first
  card in display order (warnings first), and the later card says where it is. A card that exists only for its
  suggestions (R17's referrals) is dropped when all of them are already offered above.
- A rule that raises is reported in the response's extension and logged by id; the other cards still go out.
- A screen the caller passes (screening.py) may hold back what a clinician already saw or dismissed (A21, A22).
- Cards a clinician reads in seconds (A20): a card's detail is the rule's own text and its evidence level; a grouped
  card gives one line per option. The article's quotation, the references and the codes are on the rule's page,
  which every card links to, and the data stay in the extension.
- Card and suggestion uuids are new in every response (CDS Hooks: the uuid identifies one card as issued, and
  feedback names it); what stays the same from call to call is the stable key in the extension: the rule and what
  it found (for a suggestion, the rule and what it proposes), for deduplication and dismissal.

Cards are assembled as drafts, then made into typed Cards (card_model.py) once everything about them is known.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

from cds_service.record.facts import PatientFacts
from cds_service.record.json_text import canonical_json

from . import screening
from .card_model import Card, CardAction, CardLink, CardSource, CardSuggestion, Coding
from .limits import limit_proposals
from .rules import Context, Knowledge, Recommendation, Rule, Suggestion

log = logging.getLogger("cds_service.engine")

TOPIC_SYSTEM = "urn:calcinosis-cds:topic"
OVERRIDE_SYSTEM = "urn:calcinosis-cds:override-reason"
EXTENSION_KEY = "calcinosis-cds"
_INDICATOR_ORDER = {"critical": 0, "warning": 1, "info": 2}

DEFAULT_OVERRIDE_REASONS: tuple[tuple[str, str], ...] = (
    ("benefit-outweighs-risk", "Benefit outweighs the risk for this patient"),
    ("already-addressed", "Already addressed or being monitored"),
    ("data-incorrect", "Patient data shown is incorrect or out of date"),
    ("specialist-directed", "Directed by the treating specialist"),
)


@dataclass
class Evaluation:
    cards: list[Card]
    fired: list[str]
    gate: bool
    failed_rules: list[str] = field(default_factory=list)
    # A21/A22: cards held back by the screen (not for the EHR), and what to record of every card, by card uuid.
    held_back: list[Card] = field(default_factory=list)
    keys: dict[str, screening.CardKeys] = field(default_factory=dict)
    # Rules that fired (or withheld an option) but have no card of their own: a withheld option noted on another
    # card, a card dropped because another card already offers its suggestions, a rule another one took precedence
    # over (R08c's card covers the warfarin order R08b would judge).
    folded: list[str] = field(default_factory=list)

    @property
    def on_cards(self) -> list[str]:
        """The rules on the cards, once each, in card order."""
        return list(dict.fromkeys(rule_id for card in self.cards for rule_id in card.rules))


@dataclass
class _Draft:
    """A card being assembled: what it says, its stable key, and its suggestions with their stable keys."""

    order: tuple
    recommendations: list[Recommendation]
    summary: str
    indicator: str
    detail: str
    topic: tuple[str, str]
    key: str
    suggestions: list[tuple[Suggestion, str]]  # (suggestion, its stable key)
    needs_suggestions: bool = False
    withheld: list[dict] = field(default_factory=list)


def _as_list(result: Recommendation | Iterable[Recommendation] | None) -> list[Recommendation]:
    if result is None:
        return []
    if isinstance(result, Recommendation):
        return [result]
    return list(result)


def evaluate(facts: PatientFacts, ctx: Context, knowledge: Knowledge, *,
             screen: screening.Screen | None = None, switched_off: frozenset[str] = frozenset()) -> Evaluation:
    """`switched_off`: rules a site does not run (as if not declared). `screen`: what to hold back (A21, A22)."""
    scope = knowledge.gate.evaluate(facts)
    if not scope:
        return Evaluation(cards=[], fired=[], gate=False)

    # A17: in scope through calciphylaxis alone, the options of dystrophic calcinosis do not apply and do not run.
    rules = [r for r in knowledge.rules_for_hook(ctx.hook) if r.in_calciphylaxis_alone or not scope.calciphylaxis_only]
    if switched_off:
        rules = [r for r in rules if r.id not in switched_off]
    fired: dict[str, list[Recommendation]] = {}
    failed: list[str] = []
    for rule in rules:
        try:
            recommendations = _as_list(rule.evaluate(facts, ctx))
        except Exception:  # one broken rule must not silence the others; it is logged and reported
            log.exception("rule failed", extra={"rule": rule.id})
            failed.append(rule.id)
            continue
        for recommendation in recommendations:
            recommendation.rule_id = rule.id
        if recommendations:
            fired[rule.id] = recommendations

    by_id = {rule.id: rule for rule in rules}
    produced = list(fired)
    suppressed = {
        target
        for rule_id, recommendations in fired.items()
        if any(not r.withheld for r in recommendations)
        for target in by_id[rule_id].suppresses
    }
    for rule_id in suppressed:
        fired.pop(rule_id, None)
    if knowledge.proposal_policy is not None:  # A16, A18: no medication or diet proposed to some patients
        limit_proposals(fired, by_id, scope, facts, knowledge.proposal_policy)

    fired, held, reasons = screening.screen_recommendations(fired, screen)
    gate_evidence = [{"rule": knowledge.gate.id, **item} for item in scope.evidence]
    drafts = _drafts(fired, by_id, knowledge)
    _without_repeated_suggestions(drafts)
    drafts = [d for d in drafts if not (d.needs_suggestions and not d.suggestions)]
    cards = [_card(d, by_id, knowledge, ctx, gate_evidence) for d in drafts]
    really_fired = [rule_id for rule_id, recs in fired.items() if any(not r.withheld for r in recs)]
    evaluation = Evaluation(cards=cards, fired=really_fired, gate=True, failed_rules=failed)
    shown = set(evaluation.on_cards)
    # A rule held back by the screen has a card, recorded apart: it is not folded into another one.
    evaluation.folded = [rule_id for rule_id in produced if rule_id not in shown and rule_id not in held]
    evaluation.keys = {c.uuid: screening.card_keys(d.recommendations) for c, d in zip(cards, drafts)}
    for draft in _drafts(held, by_id, knowledge) if held else []:
        card = _card(draft, by_id, knowledge, ctx, gate_evidence)
        evaluation.held_back.append(card)
        reason = next(reasons[id(r)] for r in draft.recommendations if id(r) in reasons)
        evaluation.keys[card.uuid] = screening.card_keys(draft.recommendations, reason)
    return evaluation


def stable_key(recommendation: Recommendation) -> str:
    """The rule and what it found: the same for the same finding in every response (A20)."""
    return recommendation.rule_id + (f":{recommendation.finding}" if recommendation.finding else "")


def _evidence_line(rule: Rule, knowledge: Knowledge) -> str:
    """What must stay on the card of the evidence (A20): its level, and where a rule comes from outside the article."""
    outside = f"; outside the article ({knowledge.source_of(rule).label})" if rule.outside_article else ""
    return f"*Evidence: {rule.card_evidence}{outside}.*"


def _detail(rule: Rule, recommendation: Recommendation, knowledge: Knowledge) -> str:
    notes = "".join(f"**Note:** {note}.\n\n" for note in recommendation.notes)
    return notes + recommendation.detail.strip() + "\n\n" + _evidence_line(rule, knowledge)


def _option_line(rule: Rule, recommendation: Recommendation, knowledge: Knowledge, said: frozenset[str] = frozenset()) -> str:
    """A grouped card's one line for one option: what it is, what matters for this patient, its evidence level in
    italics (the group's intro says so). Notes in `said` are on the card once already."""
    heading = recommendation.group_line or rule.title
    brief = "".join(f" {note}." for note in recommendation.notes if note not in said)
    brief += f" {recommendation.brief.strip()}" if recommendation.brief else ""
    outside = "; outside the article" if rule.outside_article else ""
    return f"- **{heading}.**{brief} *{rule.card_evidence}{outside}.*"


def _suggestions(recommendations: list[Recommendation]) -> list[tuple[Suggestion, str]]:
    """The card's suggestions, two options proposing the same thing (same key) making one, each with its stable key."""
    out: list[tuple[Suggestion, str]] = []
    seen: set[str] = set()
    for recommendation in recommendations:
        for suggestion in recommendation.suggestions:
            key = suggestion.key or suggestion.label
            if key not in seen:
                seen.add(key)
                out.append((suggestion, f"{recommendation.rule_id}:{key}"))
    return out


def _draft(order: tuple, recommendations: list[Recommendation], summary: str, indicator: str, detail: str,
           topic: tuple[str, str], key: str, needs_suggestions: bool = False) -> _Draft:
    return _Draft(order, recommendations, summary, indicator, detail, topic, key,
                  _suggestions(recommendations), needs_suggestions)


def _drafts(fired: dict[str, list[Recommendation]], rules: dict[str, Rule], knowledge: Knowledge) -> list[_Draft]:
    drafts: list[_Draft] = []
    grouped: dict[str, list[Recommendation]] = {}
    withheld: dict[str, list[Recommendation]] = {}
    for rule_id, recommendations in fired.items():
        rule = rules[rule_id]
        for recommendation in recommendations:
            if recommendation.withheld:
                withheld.setdefault(recommendation.group or "treatment-options", []).append(recommendation)
                continue
            if recommendation.group in knowledge.groups and recommendation.indicator == "info":
                grouped.setdefault(recommendation.group, []).append(recommendation)
                continue
            drafts.append(_draft(
                (_INDICATOR_ORDER[recommendation.indicator], rule.priority, rule.id), [recommendation],
                recommendation.summary, recommendation.indicator, _detail(rule, recommendation, knowledge),
                (rule.id, rule.title), stable_key(recommendation), recommendation.needs_suggestions,
            ))

    for name, recommendations in grouped.items():
        group = knowledge.groups[name]
        recommendations.sort(key=lambda r: (rules[r.rule_id].priority, r.rule_id))
        if len(recommendations) == 1:
            only = recommendations[0]
            summary, detail = only.summary, _detail(rules[only.rule_id], only, knowledge)
            topic = (only.rule_id, rules[only.rule_id].title)
            key = stable_key(only)
        else:
            summary = group.summary.format(n=len(recommendations))
            # A note every option carries (A16: "in children, a decision for the paediatric specialist") is said once.
            common = frozenset.intersection(*(frozenset(r.notes) for r in recommendations))
            said = "".join(f"**Note:** {note}.\n\n" for note in sorted(common))
            lines = "\n".join(_option_line(rules[r.rule_id], r, knowledge, common) for r in recommendations)
            detail = f"{said}{group.intro}\n\n{lines}"
            topic = (group.topic, group.title)
            key = f"{name}:" + "+".join(stable_key(r) for r in recommendations)
        draft = _draft((2, group.priority, name), recommendations, summary, "info", detail, topic, key)
        _add_withheld(draft, withheld.pop(name, []), rules)
        drafts.append(draft)

    drafts.sort(key=lambda d: d.order)
    if withheld:  # a withheld option whose group has no card: its note goes on the first info card, if any
        info = [d for d in drafts if d.indicator == "info"]
        if info:
            _add_withheld(info[0], [r for notes in withheld.values() for r in notes], rules)
    return drafts


def _add_withheld(draft: _Draft, notes: list[Recommendation], rules: dict[str, Rule]) -> None:
    """Say on the card which options were not suggested for this patient, and why (A9, A11)."""
    if not notes:
        return
    notes.sort(key=lambda r: (rules[r.rule_id].priority, r.rule_id))
    lines = [f"- **{r.group_line or rules[r.rule_id].title}:** {(r.brief or r.detail).strip()}" for r in notes]
    draft.detail += "\n\n**Not suggested for this patient:**\n\n" + "\n".join(lines)
    draft.withheld.extend(
        {"rule": r.rule_id, "reason": r.summary, **({"evidence": r.evidence} if r.evidence else {})} for r in notes
    )


def _suggestion_identity(suggestion: Suggestion) -> tuple:
    """What a suggestion proposes: each action's type, resource type and code (or text), not its wording."""
    identity = []
    for action in suggestion.actions:
        resource = action.resource or {}
        concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
        if resource.get("resourceType") == "NutritionOrder":
            concept = {"text": canonical_json(resource.get("oralDiet", {})).decode()}
        codes = tuple(sorted(f"{c.get('system')}|{c.get('code')}" for c in concept.get("coding", [])))
        identity.append((action.type, resource.get("resourceType"), action.resource_id, codes or concept.get("text")))
    return tuple(identity) or (suggestion.label,)


def _without_repeated_suggestions(drafts: list[_Draft]) -> None:
    """A12: a proposal appears once, on the first card that offers it; later cards say where it is."""
    offered: set[tuple] = set()
    for draft in drafts:  # in display order: the first card to offer a proposal keeps it
        kept, moved = [], []
        for suggestion, key in draft.suggestions:
            identity = _suggestion_identity(suggestion)
            if identity in offered:
                moved.append(suggestion.label)
            else:
                offered.add(identity)
                kept.append((suggestion, key))
        draft.suggestions = kept
        if moved and not (draft.needs_suggestions and not kept):
            draft.detail += "\n\nOn a card above, so not repeated here: " + "; ".join(moved) + "."


def _rule_links(draft: _Draft, rules: dict[str, Rule], ctx: Context) -> list[CardLink]:
    """A link to the page of each rule on the card (A20): the quotation, the evidence and the codes are there."""
    if not ctx.rule_page_base:
        return []
    rule_ids = list(dict.fromkeys(r.rule_id for r in draft.recommendations))
    base = ctx.rule_page_base.rstrip("/")
    if len(rule_ids) == 1:
        return [CardLink(f"Evidence and sources: {rules[rule_ids[0]].title}", f"{base}/rules/{rule_ids[0]}")]
    return [CardLink(f"Evidence: {rules[rule_id].title}", f"{base}/rules/{rule_id}") for rule_id in rule_ids]


def _card(draft: _Draft, rules: dict[str, Rule], knowledge: Knowledge, ctx: Context, gate_evidence: list[dict]) -> Card:
    recommendations = draft.recommendations
    suggestions = tuple(
        CardSuggestion(
            s.label, str(uuid.uuid4()),
            tuple(CardAction(a.type, a.description, a.resource, a.resource_id) for a in s.actions),
            s.is_recommended,
            extension={EXTENSION_KEY: {"key": key}},
        )
        for s, key in draft.suggestions
    )
    behavior = None
    if suggestions:
        behaviors = {r.selection_behavior for r in recommendations if r.suggestions}
        behavior = "at-most-one" if behaviors == {"at-most-one"} else "any"
    reasons: list[tuple[str, str]] = []
    if draft.indicator in ("warning", "critical"):
        for recommendation in recommendations:
            for reason in recommendation.override_reasons or DEFAULT_OVERRIDE_REASONS:
                if reason not in reasons:
                    reasons.append(reason)
    links = _rule_links(draft, rules, ctx)
    for recommendation in recommendations:
        for link in recommendation.links:
            card_link = CardLink(link.label, link.url)
            if card_link not in links:
                links.append(card_link)
    evidence = [{"rule": r.rule_id, **item} for r in recommendations for item in r.evidence]
    extension: dict[str, Any] = {
        "rules": [r.rule_id for r in recommendations],
        "key": draft.key,
        "keys": [stable_key(r) for r in recommendations],
        "evidence": gate_evidence + evidence,
        "provenance": dict(knowledge.terminology.versions),
        "knowledgeVersion": knowledge.version,
    }
    if draft.withheld:
        extension["withheld"] = draft.withheld
    # A card of one rule from outside the article names that rule's own source (A20); a grouped card, the article.
    sources = {knowledge.source_of(rules[r.rule_id]) for r in recommendations}
    source = sources.pop() if len(sources) == 1 else knowledge.source
    return Card(
        uuid=str(uuid.uuid4()),
        summary=draft.summary,
        indicator=draft.indicator,
        detail=draft.detail,
        source=CardSource(source.label, source.url, Coding(TOPIC_SYSTEM, draft.topic[0], draft.topic[1])),
        suggestions=suggestions,
        selection_behavior=behavior,
        override_reasons=tuple(Coding(OVERRIDE_SYSTEM, code, display) for code, display in reasons),
        links=tuple(links),
        extension={EXTENSION_KEY: extension},
    )
