"""The rule engine: gate G0, every rule of the hook, precedence, then few cards a clinician can bear (decision A12).

- No active calcinosis (G0): no cards, on every hook (A1).
- A rule that fires may suppress another (R08c over R08a, R05 over R04).
- Warnings and critical cards stand alone and come first; options of one kind share one card (the knowledge's groups).
- An option a rule withholds for this patient (pregnancy, age, allergy, renal function) is not suggested: its group's
  card says what was not suggested and why, and the rule does not count as fired (extension "withheld").
- No suggestion twice: the same proposal (same resource type and code) offered by two cards stays only on the first
  card in display order (warnings first), and the later card says where it is. A card that exists only for its
  suggestions (R17's referrals) is dropped when all of them are already offered above.
- A rule that raises is reported in the response's extension and logged by id; the other cards still go out.
- A screen the caller passes (screening.py) may hold back what a clinician already saw or dismissed (A21, A22).

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


@dataclass
class _Draft:
    """A card being assembled: what it says, and its suggestions with their uuids (made once, from their place on
    the card before any is moved to another card, so that they do not change when one is)."""

    order: tuple
    recommendations: list[Recommendation]
    summary: str
    indicator: str
    detail: str
    topic: tuple[str, str]
    card_uuid: uuid.UUID
    suggestions: list[tuple[Suggestion, str]]
    needs_suggestions: bool = False
    withheld: list[dict] = field(default_factory=list)


def _as_list(result: Recommendation | Iterable[Recommendation] | None) -> list[Recommendation]:
    if result is None:
        return []
    if isinstance(result, Recommendation):
        return [result]
    return list(result)


def evaluate(facts: PatientFacts, ctx: Context, knowledge: Knowledge, *, service_id: str,
             screen: screening.Screen | None = None, switched_off: frozenset[str] = frozenset()) -> Evaluation:
    """`switched_off`: rules a site does not run (as if not declared). `screen`: what to hold back (A21, A22)."""
    passed = knowledge.gate.evaluate(facts)
    if not passed:
        return Evaluation(cards=[], fired=[], gate=False)

    rules = knowledge.rules_for_hook(ctx.hook)
    if switched_off:
        rules = tuple(r for r in rules if r.id not in switched_off)
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
    suppressed = {
        target
        for rule_id, recommendations in fired.items()
        if any(not r.withheld for r in recommendations)
        for target in by_id[rule_id].suppresses
    }
    for rule_id in suppressed:
        fired.pop(rule_id, None)

    fired, held, reasons = screening.screen_recommendations(fired, screen)
    gate_evidence = [{"rule": knowledge.gate.id, **item} for item in passed.evidence]
    drafts = _drafts(fired, by_id, knowledge, facts.patient_id, service_id)
    _without_repeated_suggestions(drafts)
    drafts = [d for d in drafts if not (d.needs_suggestions and not d.suggestions)]
    cards = [_card(d, knowledge, gate_evidence) for d in drafts]
    really_fired = [rule_id for rule_id, recs in fired.items() if any(not r.withheld for r in recs)]
    evaluation = Evaluation(cards=cards, fired=really_fired, gate=True, failed_rules=failed)
    evaluation.keys = {c.uuid: screening.card_keys(d.recommendations) for c, d in zip(cards, drafts)}
    for draft in _drafts(held, by_id, knowledge, facts.patient_id, service_id) if held else []:
        card = _card(draft, knowledge, gate_evidence)
        evaluation.held_back.append(card)
        reason = next(reasons[id(r)] for r in draft.recommendations if id(r) in reasons)
        evaluation.keys[card.uuid] = screening.card_keys(draft.recommendations, reason)
    return evaluation


def _identity(service_id: str, patient_id: str, key: str, recommendations: list[Recommendation]) -> uuid.UUID:
    # New in every response (decision A20): feedback names the card a clinician saw in one response, and each
    # response's cards are recorded apart; the suggestions' uuids derive from it, so they are new too.
    return uuid.uuid4()


def _detail(rule: Rule, recommendation: Recommendation, knowledge: Knowledge) -> str:
    lines = [recommendation.detail.strip()]
    lines.append(f"**Evidence:** {rule.evidence_level}.")
    lines.append(f"**Source:** {knowledge.citation(rule)}." + (f" {rule.outside_article}" if rule.outside_article else ""))
    lines.append(f"*Rule {rule.id}: {rule.title}.*")
    return "\n\n".join(lines)


def _suggestions(recommendations: list[Recommendation], card_uuid: uuid.UUID) -> list[tuple[Suggestion, str]]:
    """The card's suggestions, two options proposing the same thing (same key) making one, each with its uuid."""
    out: list[tuple[Suggestion, str]] = []
    seen: set[str] = set()
    for recommendation in recommendations:
        for suggestion in recommendation.suggestions:
            key = suggestion.key or suggestion.label
            if key not in seen:
                seen.add(key)
                index = len(out)
                out.append((suggestion, str(uuid.uuid5(card_uuid, suggestion.key or f"{index}:{suggestion.label}"))))
    return out


def _draft(order: tuple, recommendations: list[Recommendation], summary: str, indicator: str, detail: str,
           topic: tuple[str, str], card_uuid: uuid.UUID, needs_suggestions: bool = False) -> _Draft:
    return _Draft(order, recommendations, summary, indicator, detail, topic, card_uuid,
                  _suggestions(recommendations, card_uuid), needs_suggestions)


def _drafts(fired: dict[str, list[Recommendation]], rules: dict[str, Rule], knowledge: Knowledge,
            patient_id: str, service_id: str) -> list[_Draft]:
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
                (rule.id, rule.title), _identity(service_id, patient_id, rule.id, [recommendation]),
                recommendation.needs_suggestions,
            ))

    for name, recommendations in grouped.items():
        group = knowledge.groups[name]
        recommendations.sort(key=lambda r: (rules[r.rule_id].priority, r.rule_id))
        if len(recommendations) == 1:
            only = recommendations[0]
            summary, detail = only.summary, _detail(rules[only.rule_id], only, knowledge)
            topic = (only.rule_id, rules[only.rule_id].title)
        else:
            summary = group.summary.format(n=len(recommendations))
            sections = [group.intro]
            for recommendation in recommendations:
                heading = recommendation.group_line or recommendation.summary
                sections.append(f"### {heading}\n\n{_detail(rules[recommendation.rule_id], recommendation, knowledge)}")
            detail = "\n\n".join(sections)
            topic = (group.topic, group.title)
        draft = _draft((2, group.priority, name), recommendations, summary, "info", detail, topic,
                       _identity(service_id, patient_id, name, recommendations))
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
    lines = [f"- **{r.group_line or r.summary}** {r.detail.strip()} *(Rule {r.rule_id}.)*" for r in notes]
    draft.detail += "\n\n### Not suggested for this patient\n\n" + "\n".join(lines)
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
    offered: dict[tuple, str] = {}
    for draft in drafts:
        kept, moved = [], []
        for suggestion, suggestion_uuid in draft.suggestions:
            identity = _suggestion_identity(suggestion)
            if identity in offered:
                moved.append(f"{suggestion.label} (offered on the card \"{offered[identity]}\")")
            else:
                offered[identity] = draft.summary
                kept.append((suggestion, suggestion_uuid))
        draft.suggestions = kept
        if moved and not (draft.needs_suggestions and not kept):
            draft.detail += "\n\nAlready suggested above, so not repeated here: " + "; ".join(moved) + "."


def _card(draft: _Draft, knowledge: Knowledge, gate_evidence: list[dict]) -> Card:
    recommendations = draft.recommendations
    suggestions = tuple(
        CardSuggestion(
            s.label, suggestion_uuid,
            tuple(CardAction(a.type, a.description, a.resource, a.resource_id) for a in s.actions),
            s.is_recommended,
        )
        for s, suggestion_uuid in draft.suggestions
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
    links: list[CardLink] = []
    for recommendation in recommendations:
        for link in recommendation.links:
            card_link = CardLink(link.label, link.url)
            if card_link not in links:
                links.append(card_link)
    evidence = [{"rule": r.rule_id, **item} for r in recommendations for item in r.evidence]
    extension: dict[str, Any] = {
        "rules": [r.rule_id for r in recommendations],
        "evidence": gate_evidence + evidence,
        "provenance": dict(knowledge.terminology.versions),
        "knowledgeVersion": knowledge.version,
    }
    if draft.withheld:
        extension["withheld"] = draft.withheld
    return Card(
        uuid=str(draft.card_uuid),
        summary=draft.summary,
        indicator=draft.indicator,
        detail=draft.detail,
        source=CardSource(knowledge.source.label, knowledge.source.url,
                          Coding(TOPIC_SYSTEM, draft.topic[0], draft.topic[1])),
        suggestions=suggestions,
        selection_behavior=behavior,
        override_reasons=tuple(Coding(OVERRIDE_SYSTEM, code, display) for code, display in reasons),
        links=tuple(links),
        extension={EXTENSION_KEY: extension},
    )
