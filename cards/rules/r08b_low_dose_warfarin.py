"""R08b: low-dose warfarin should not be used for calcinosis, as no benefit has been established.

Part A6: "low dose" is a daily dose at or below the setting CDS_LOW_DOSE_WARFARIN_MG (2 mg by default; the article
does not define it, and the clinical reviewer sets it). For a draft warfarin order (order-select: the selected one;
order-sign: any) with a low daily dose:
- its reason is calcinosis (reasonCode in the calcinosis, calciphylaxis or tumoral calcinosis value sets, or a
  reasonReference to such an active Condition): warning, offering to remove the draft;
- it has no reason at all (or only a reasonReference this service cannot read): info;
- it has another reason (atrial fibrillation, VTE...): nothing; INR-targeted anticoagulation is a different use.

Design decision: when the daily dose cannot be established (no dose yet, a unit that is neither mass nor tablets of a
product whose strength is known), R08b says nothing. On order-select the card appears as soon as the dose is entered.
The daily dose is the first dosage instruction's dose x frequency / period; tablets count by the product's strength
(from its name, or from the verified warfarin SCD codes of clinical specification §1.4).
"""

from cds_service.engine.authoring import Recommendation, daily_dose_mg, delete_suggestion, drafts_in, product_strength_mg, rule

from ..findings import judged_orders
from ..definitions import GATE_VALUE_SETS
from ..orders import active_of_same_kind, product_key, same_kind_evidence, same_kind_note
from ..wording import medication_name


OVERRIDE_REASONS = [
    ("not-for-calcinosis", "Warfarin is for another indication (e.g. anticoagulation)"),
    ("dose-will-be-titrated", "Starting dose; will be titrated above the low-dose range"),
    ("specialist-directed", "Directed by the treating specialist"),
]


def _code_display(match, terms) -> str | None:
    """The value set's (verified) display of the code a product matched by, e.g. "warfarin sodium 2 MG Oral Tablet"."""
    if match.by != "code":
        return None
    return next((e.get("display") for e in terms.value_set("med-warfarin").codes if e["code"] == match.code), None)


def _daily_dose(fact, match, terms) -> float | None:
    if fact.daily_dose_mg is not None:
        return fact.daily_dose_mg
    display = _code_display(match, terms)  # a code-only product: its strength is in the verified display
    return daily_dose_mg(fact.resource, product_strength_mg([display])) if display else None


def _reason(fact, facts) -> tuple[str, list[dict]]:
    """'calcinosis', 'none', 'unknown' (a reference we cannot read) or 'other', with the evidence."""
    evidence = []
    for concept in fact.reason_concepts:
        for name in GATE_VALUE_SETS:
            if (match := facts.terms.value_set(name).match_concept(concept)) is not None:
                evidence.append({"finding": "order reason", **match.as_evidence()})
                break
    unread = False
    for reference in fact.reason_references:
        condition = facts.condition(reference)
        if condition is None:
            unread = True
            continue
        if condition.active:
            for name in GATE_VALUE_SETS:
                if (match := facts.terms.value_set(name).match_concept(condition.code)) is not None:
                    evidence.append({"finding": "order reason", "reference": reference, **match.as_evidence()})
                    break
    if evidence:
        return "calcinosis", evidence
    known_other = bool(fact.reason_concepts) or any(facts.condition(r) for r in fact.reason_references)
    if known_other:
        return "other", []
    return ("unknown" if unread else "none"), []


@rule(
    id="R08b",
    title="Low-dose warfarin has no established benefit",
    article="Low-dose warfarin should not be used, as no benefit has been established.",
    references=(27,),
    evidence_level="Statement of the article, ref [27]; 'low dose' is not defined there (threshold set by the clinical reviewer)",
    evidence_grade="Statement of the article; \"low dose\" is a site setting",
    exclusions=("A daily dose above the low-dose setting, or a dose that cannot be established",
                "An order whose reason is something other than calcinosis (atrial fibrillation, venous thromboembolism...)",
                "Calciphylaxis: the warfarin order is R08c's"),
    trigger=(
        "A draft warfarin order (RxNorm 11289/114194 or the verified SCDs, ATC B01AA03, or the name) with a daily "
        "dose at or below the low-dose setting (2 mg/day by default). Warning when its reason is calcinosis; info "
        "when it has no reason; nothing when it has another reason or the dose is unknown"
    ),
    hooks=("order-select", "order-sign"),
    priority=20,
)
def low_dose_warfarin(facts, ctx):
    threshold = ctx.settings.low_dose_warfarin_mg_per_day
    recommendations = []
    for fact, match in drafts_in(facts, ctx, "med-warfarin"):
        dose = _daily_dose(fact, match, facts.terms)
        if dose is None or dose <= 0 or dose > threshold:
            continue
        reason, reason_evidence = _reason(fact, facts)
        if reason == "other":
            continue
        evidence = [
            {**fact.evidence(match), "dailyDoseMg": round(dose, 3), "lowDoseThresholdMg": threshold},
            *reason_evidence,
        ]
        name = _code_display(match, facts.terms)
        dose_line = (
            f"**Ordered:** {medication_name(fact, name)}: **{dose:g} mg/day**, at or below the low-dose threshold of "
            f"{threshold:g} mg/day (a site setting: the article does not define \"low dose\")."
        )
        same_kind = active_of_same_kind(facts, ("med-warfarin",), [fact])
        extra = [note] if (note := same_kind_note(same_kind, "warfarin")) else []
        evidence += same_kind_evidence(same_kind)
        finding = f"order:{product_key([fact])}:{reason}"
        if reason == "calcinosis":
            removal = delete_suggestion(fact, "low-dose warfarin for calcinosis")
            recommendations.append(
                Recommendation(
                    indicator="warning",
                    summary="Low-dose warfarin has no established benefit in calcinosis cutis; reconsider dose or therapy.",
                    detail="\n\n".join([
                        dose_line,
                        "The order's reason is calcinosis, for which low-dose warfarin has no established benefit. "
                        "Reconsider the dose or the therapy; warfarin for calcinosis is off-label, and its bleeding "
                        "risk needs your assessment.",
                        *extra,
                    ]),
                    evidence=evidence,
                    suggestions=[removal] if removal else [],
                    override_reasons=OVERRIDE_REASONS,
                    finding=finding,
                    orders=judged_orders([fact]),
                )
            )
        else:
            why = (
                "The order gives no reason." if reason == "none"
                else "The order's reason refers to a record this service could not read."
            )
            recommendations.append(
                Recommendation(
                    indicator="info",
                    summary="Low-dose warfarin ordered without a stated reason: if it is for calcinosis, no benefit has been established.",
                    detail="\n\n".join([
                        dose_line,
                        why + " If this warfarin is meant for calcinosis, low doses have no established benefit. If it "
                        "is for anticoagulation (atrial fibrillation, venous thromboembolism), this note does not "
                        "apply; adding the reason to the order avoids it.",
                        *extra,
                    ]),
                    evidence=evidence,
                    finding=finding,
                    orders=judged_orders([fact]),
                )
            )
    return recommendations
