"""The rule engine: gate G0, every rule of the hook, precedence, then few cards a clinician can bear (A12).

- No active calcinosis (G0): no cards, on every hook (A1).
- A rule that fires may suppress another (R08c over R08a, R05 over R04).
- Warnings and critical cards stand alone and come first; options of one kind share one card (groups below).
- An option a rule withholds for this patient (pregnancy, age, allergy, renal function) is not suggested: its group's
  card says what was not suggested and why, and the rule does not count as fired (extension "withheld").
- No suggestion twice: the same proposal (same resource type and code) offered by two cards stays only on the first
  card in display order (warnings first), and the later card says where it is. A card that exists only for its
  suggestions (R17's referrals) is dropped when all of them are already offered above.
- A rule that raises is reported in the response's extension and logged by id; the other cards still go out.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Any, Iterable

from .facts import PatientFacts
from .json_text import canonical_json
from .response import build_card, provenance
from .rules import Context, Recommendation, Rule, gate, registry

log = logging.getLogger("cds_service.engine")

_INDICATOR_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Group:
    """Info recommendations of one kind gathered into one card."""

    topic: str
    title: str
    summary: str  # the card's summary; {n} is the number of options
    intro: str  # the first paragraph of the card's detail
    priority: int


GROUPS: dict[str, Group] = {
    "treatment-options": Group(
        "treatment-options",
        "Medical treatment options",
        "Calcinosis cutis: {n} medical treatment options with low-level evidence to consider",
        "Medical therapy of calcinosis cutis is limited and of variable benefit. None of these options is a standard "
        "of care; each is off-label for calcinosis, and the evidence behind each is given with it.",
        60,
    ),
    "procedures": Group(
        "procedures",
        "Surgical, procedural and rehabilitation options",
        "Calcinosis cutis: {n} surgical, procedural or rehabilitation options to consider",
        "The article's indications for surgical removal are pain, recurrent infection, ulceration and functional "
        "impairment. Because surgical trauma may stimulate calcification, a test site is treated before any large "
        "excision, and recurrence is common after excision.",
        65,
    ),
    "diet": Group(
        "diet",
        "Dietary measures",
        "Calcinosis cutis: {n} dietary measures to consider (minor benefit in most cases)",
        "Dietary alteration is of minor benefit in most cases (article, Diet section). A dietitian sets any amount.",
        70,
    ),
}


@dataclass
class Evaluation:
    cards: list[dict[str, Any]]
    fired: list[str]
    gate: bool
    failed_rules: list[str] = field(default_factory=list)


@lru_cache(maxsize=None)
def rules_for_hook(hook: str) -> tuple[Rule, ...]:
    """The rules of a hook, in catalogue order; the registry is fixed once `cards` is imported."""
    return tuple(rule for rule in registry().values() if hook in rule.hooks)


def _as_list(result: Recommendation | Iterable[Recommendation] | None) -> list[Recommendation]:
    if result is None:
        return []
    if isinstance(result, Recommendation):
        return [result]
    return list(result)


def evaluate(facts: PatientFacts, ctx: Context, *, service_id: str) -> Evaluation:
    scope = gate()
    passed = scope.evaluate(facts)
    if not passed:
        return Evaluation(cards=[], fired=[], gate=False)

    rules = rules_for_hook(ctx.hook)
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

    gate_evidence = [{"rule": scope.id, **item} for item in passed.evidence]
    cards = _cards(fired, by_id, facts, service_id, gate_evidence)
    really_fired = [rule_id for rule_id, recs in fired.items() if any(not r.withheld for r in recs)]
    return Evaluation(cards=cards, fired=really_fired, gate=True, failed_rules=failed)


def _identity(service_id: str, patient_id: str, key: str, recommendations: list[Recommendation]) -> str:
    # Same data -> same uuid; different evidence (a new lab value) -> a new card uuid.
    digest = hashlib.sha256(
        canonical_json([(r.rule_id, r.summary, r.evidence) for r in recommendations])
    ).hexdigest()[:16]
    return f"{service_id}|{patient_id}|{key}|{digest}"


def _detail(rule: Rule, recommendation: Recommendation) -> str:
    lines = [recommendation.detail.strip()]
    lines.append(f"**Evidence:** {rule.evidence_level}.")
    lines.append(f"**Source:** {rule.citation}." + (f" {rule.outside_article}" if rule.outside_article else ""))
    lines.append(f"*Rule {rule.id}: {rule.title}.*")
    return "\n\n".join(lines)


def _cards(
    fired: dict[str, list[Recommendation]],
    rules: dict[str, Rule],
    facts: PatientFacts,
    service_id: str,
    gate_evidence: list[dict],
) -> list[dict[str, Any]]:
    singles: list[tuple[tuple, dict, bool]] = []
    grouped: dict[str, list[Recommendation]] = {}
    withheld: dict[str, list[Recommendation]] = {}
    knowledge = provenance()
    for rule_id, recommendations in fired.items():
        rule = rules[rule_id]
        for recommendation in recommendations:
            if recommendation.withheld:
                withheld.setdefault(recommendation.group or "treatment-options", []).append(recommendation)
                continue
            if recommendation.group in GROUPS and recommendation.indicator == "info":
                grouped.setdefault(recommendation.group, []).append(recommendation)
                continue
            card = build_card(
                recommendations=[recommendation],
                summary=recommendation.summary,
                indicator=recommendation.indicator,
                detail=_detail(rule, recommendation),
                topic=(rule.id, rule.title),
                identity=_identity(service_id, facts.patient_id, rule.id, [recommendation]),
                provenance=knowledge,
            )
            _add_gate_evidence(card, gate_evidence)
            singles.append(((_INDICATOR_ORDER[recommendation.indicator], rule.priority, rule.id), card,
                            recommendation.needs_suggestions))

    for name, recommendations in grouped.items():
        group = GROUPS[name]
        recommendations.sort(key=lambda r: (rules[r.rule_id].priority, r.rule_id))
        if len(recommendations) == 1:
            only = recommendations[0]
            summary, detail = only.summary, _detail(rules[only.rule_id], only)
        else:
            summary = group.summary.format(n=len(recommendations))
            sections = [group.intro]
            for recommendation in recommendations:
                rule = rules[recommendation.rule_id]
                heading = recommendation.group_line or recommendation.summary
                sections.append(f"### {heading}\n\n{_detail(rule, recommendation)}")
            detail = "\n\n".join(sections)
        card = build_card(
            recommendations=recommendations,
            summary=summary,
            indicator="info",
            detail=detail,
            topic=(group.topic, group.title) if len(recommendations) > 1 else (recommendations[0].rule_id, rules[recommendations[0].rule_id].title),
            identity=_identity(service_id, facts.patient_id, name, recommendations),
            provenance=knowledge,
        )
        _add_gate_evidence(card, gate_evidence)
        _add_withheld(card, withheld.pop(name, []), rules)
        singles.append(((2, group.priority, name), card, False))

    singles.sort(key=lambda item: item[0])
    if withheld:  # a withheld option whose group has no card: its note goes on the first info card, if any
        info = [card for _, card, _ in singles if card["indicator"] == "info"]
        if info:
            _add_withheld(info[0], [r for notes in withheld.values() for r in notes], rules)
    return _without_repeated_suggestions(singles)


def _add_withheld(card: dict, notes: list[Recommendation], rules: dict[str, Rule]) -> None:
    """Say on the card which options were not suggested for this patient, and why (A9, A11)."""
    if not notes:
        return
    notes.sort(key=lambda r: (rules[r.rule_id].priority, r.rule_id))
    lines = [f"- **{r.group_line or r.summary}** {r.detail.strip()} *(Rule {r.rule_id}.)*" for r in notes]
    card["detail"] += "\n\n### Not suggested for this patient\n\n" + "\n".join(lines)
    card["extension"]["calcinosis-cds"]["withheld"] = [
        {"rule": r.rule_id, "reason": r.summary, **({"evidence": r.evidence} if r.evidence else {})} for r in notes
    ]


def _suggestion_identity(suggestion: dict) -> tuple:
    """What a suggestion proposes: each action's type, resource type and code (or text), not its wording."""
    identity = []
    for action in suggestion.get("actions", []):
        resource = action.get("resource") or {}
        concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
        if resource.get("resourceType") == "NutritionOrder":
            concept = {"text": canonical_json(resource.get("oralDiet", {})).decode()}
        codes = tuple(sorted(f"{c.get('system')}|{c.get('code')}" for c in concept.get("coding", [])))
        identity.append((action.get("type"), resource.get("resourceType"), action.get("resourceId"),
                         codes or concept.get("text")))
    return tuple(identity) or (suggestion.get("label"),)


def _without_repeated_suggestions(ordered: list[tuple[tuple, dict, bool]]) -> list[dict[str, Any]]:
    """A12: a proposal appears once, on the first card that offers it; later cards point to it."""
    offered: dict[tuple, str] = {}
    cards = []
    for _, card, needs_suggestions in ordered:
        kept, moved = [], []
        for suggestion in card.get("suggestions", []):
            identity = _suggestion_identity(suggestion)
            if identity in offered:
                moved.append(f"{suggestion['label']} (offered on the card \"{offered[identity]}\")")
            else:
                offered[identity] = card["summary"]
                kept.append(suggestion)
        if moved:
            if not kept and needs_suggestions:
                continue
            card["detail"] += "\n\nAlready suggested above, so not repeated here: " + "; ".join(moved) + "."
            if kept:
                card["suggestions"] = kept
            else:
                card.pop("suggestions", None)
                card.pop("selectionBehavior", None)
        cards.append(card)
    return cards


def _add_gate_evidence(card: dict, gate_evidence: list[dict]) -> None:
    card["extension"]["calcinosis-cds"]["evidence"] = gate_evidence + card["extension"]["calcinosis-cds"]["evidence"]
