"""Holding back what a clinician has already seen or dismissed (decisions A21 and A22), without the engine knowing
where that memory is kept.

After the rules ran, every recommendation is reduced to candidates: (rule, finding, indicator, draft-order key), one
per finding. A screen — a function the service passes in, which asks its store — answers which candidates to hold
back and why. A recommendation whose findings are all held back is not shown; one with only some held back loses
the suggestions tied to those findings (R17: that specialty's referral) and says so. What is held back is still
made into cards, returned apart, so that the service records them as suppressed rather than forget them.

The draft-order key is the judged orders' product, dose and route (A21: "the same product, dose and route"),
hashed: it names no patient, and it stays short whatever the product's name.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from cds_service.record.fhir_values import as_list, codeable_concepts
from cds_service.record.json_text import canonical_json
from cds_service.record.medications import MedicationFact

from .rules import FindingKey, Recommendation

DEFAULT_FINDING = FindingKey()


@dataclass(frozen=True)
class Candidate:
    """One finding of one recommendation, as the screen judges it."""

    rule_id: str
    finding: FindingKey
    indicator: str
    draft_key: str | None


Screen = Callable[[Sequence[Candidate]], Mapping[Candidate, str]]
"""Candidates -> the reason each one held back is held back ("dismissed", "repeat"); absent ones are shown."""


@dataclass(frozen=True)
class CardKeys:
    """What the service records of a card besides its JSON: each rule with its finding, the draft-order key (order
    hooks), and why it was held back (None: shown)."""

    findings: tuple[tuple[str, FindingKey], ...]
    draft_key: str | None
    held_back: str | None = None


def findings_of(recommendation: Recommendation) -> tuple[FindingKey, ...]:
    """The findings the memory keys a recommendation by: those it declares, else the rule's one finding. Not its
    `finding` (the card's stable key, A20): that may name a product ordered, which is stored nowhere in clear; the
    draft orders are keyed apart, hashed (draft_key)."""
    return recommendation.findings or (DEFAULT_FINDING,)


def _order_identity(order: MedicationFact) -> list:
    """Product (codes, else the name), dose and route of one draft order."""
    products = sorted(
        f"{coding.get('system')}|{coding.get('code')}"
        for concept in order.concepts[:1]
        for coding in codeable_concepts(concept.get("coding"))
        if coding.get("code")
    )
    product = products or [(order.text or "").strip().lower()]
    dose: object = round(order.daily_dose_mg, 3) if order.daily_dose_mg is not None else [
        {k: d.get(k) for k in ("doseAndRate", "doseQuantity", "timing")}
        for d in as_list(order.resource.get("dosageInstruction")) + as_list(order.resource.get("dosage"))
        if isinstance(d, dict)
    ]
    return [product, dose, (order.route_text or "").strip().lower()]


def draft_key(orders: Iterable[MedicationFact]) -> str | None:
    """The key of the draft orders a recommendation judges; None when it judges none (patient-view, or a rule that
    reads only the record)."""
    identities = sorted(canonical_json(_order_identity(o)).decode() for o in orders if o.draft)
    if not identities:
        return None
    return hashlib.sha256(canonical_json(identities)).hexdigest()


def candidates(recommendation: Recommendation) -> list[Candidate]:
    key = draft_key(recommendation.orders)
    return [Candidate(recommendation.rule_id, f, recommendation.indicator, key) for f in findings_of(recommendation)]


def screen_recommendations(
    fired: dict[str, list[Recommendation]], screen: Screen | None
) -> tuple[dict[str, list[Recommendation]], dict[str, list[Recommendation]], dict[int, str]]:
    """(shown, held back, reason by id() of each held-back recommendation)."""
    if screen is None:
        return fired, {}, {}
    judged = [c for recs in fired.values() for r in recs if not r.withheld for c in candidates(r)]
    verdicts = screen(judged) if judged else {}
    if not verdicts:
        return fired, {}, {}
    shown: dict[str, list[Recommendation]] = {}
    held: dict[str, list[Recommendation]] = {}
    reasons: dict[int, str] = {}
    for rule_id, recommendations in fired.items():
        for recommendation in recommendations:
            mine = [] if recommendation.withheld else candidates(recommendation)
            hidden = [c for c in mine if c in verdicts]
            if hidden and len(hidden) < len(mine):
                recommendation = _without(recommendation, [c.finding for c in hidden])
                hidden = hidden if recommendation.needs_suggestions and not recommendation.suggestions else []
            if hidden:
                held.setdefault(rule_id, []).append(recommendation)
                reasons[id(recommendation)] = verdicts[hidden[0]]
            else:
                shown.setdefault(rule_id, []).append(recommendation)
    return shown, held, reasons


def _without(recommendation: Recommendation, hidden: list[FindingKey]) -> Recommendation:
    """The recommendation without the suggestions of its held-back findings, saying which were left out."""
    dropped = {f.suggestion for f in hidden if f.suggestion}
    kept = [s for s in recommendation.suggestions if s.key not in dropped]
    labels = [s.label for s in recommendation.suggestions if s.key in dropped]
    detail = recommendation.detail
    if labels:
        detail += ("\n\nNot suggested again, as a clinician dismissed it for this patient recently: "
                   + "; ".join(labels) + ".")
    return dataclasses.replace(
        recommendation,
        suggestions=kept,
        detail=detail,
        findings=tuple(f for f in findings_of(recommendation) if f not in hidden),
    )


def card_keys(recommendations: Sequence[Recommendation], held_back: str | None = None) -> CardKeys:
    findings = tuple(dict.fromkeys((r.rule_id, f) for r in recommendations for f in findings_of(r)))
    keys = sorted({k for k in (draft_key(r.orders) for r in recommendations) if k})
    combined = keys[0] if len(keys) == 1 else hashlib.sha256(canonical_json(keys)).hexdigest() if keys else None
    return CardKeys(findings, combined, held_back)
