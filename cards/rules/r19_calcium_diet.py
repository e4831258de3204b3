"""R19: restrict dietary calcium when hypercalcemia is present; a critical calcium is a warning, not a diet.

Article (Diet): "Restrict dietary calcium intake when hypercalcemia is present." Hypercalcemia = the calcium measure
(ionized > lab-corrected > corrected from a same-day albumin, "calculated" > total; A3) is high, or a hypercalcemia
diagnosis (E83.52, SNOMED 66931009) that no recent calcium contradicts. Info in the diet card: evaluate the cause, a
calcium-restricted diet (text; no verified diet or nutrient code) and a dietitian referral. When total calcium
(corrected where possible) exceeds 12.0 mg/dL, at any age: a warning card of its own with a critical-value pointer,
urgent clinician review, and no diet proposal (a severe hypercalcemia must not rely on diet).
"""

from cds_service.engine.authoring import Recommendation, rule

from ..definitions import calcium_above, hypercalcemia
from ..diet import diet_suggestions
from ..wording import inline_list


CRITICAL_MG_DL = 12.0


@rule(
    id="R19",
    title="Calcium-restricted diet in hypercalcemia (critical calcium: urgent review)",
    article="Restrict dietary calcium intake when hypercalcemia is present.",
    evidence_level="Expert recommendation of the article; dietary alteration is of minor benefit in most cases",
    evidence_grade="Expert recommendation; minor benefit",
    exclusions=("A hypercalcemia diagnosis that a recent normal calcium contradicts",
                "Calcium above 12 mg/dL: no diet; a warning for urgent review instead"),
    trigger=(
        "Calcinosis and hypercalcemia: ionized, corrected or total calcium (90 days) above the lab's range, flagged "
        "high, or above the adult default; or a hypercalcemia diagnosis no recent calcium contradicts. Warning when "
        "total or corrected calcium exceeds 12.0 mg/dL"
    ),
    priority=25,
)
def calcium_diet(facts, ctx):
    critical = calcium_above(facts, CRITICAL_MG_DL)
    if critical:
        value = critical.evidence[0]
        return Recommendation(
            indicator="warning",
            summary=f"Calcium {value['value']:g} mg/dL (critical, >12.0) with calcinosis: urgent clinician review; diet is not the treatment.",
            detail=("**Critical value:** " + inline_list(list(critical.evidence)) + ". Calcium above 12 mg/dL needs "
                    "urgent review of its cause and treatment, following the local critical-results protocol. "
                    "Restricting dietary calcium is no treatment for severe hypercalcemia, so no diet is proposed."),
            evidence=list(critical.evidence),
            finding="critical-calcium",
        )
    high = hypercalcemia(facts)
    if not high:
        return None
    brief = (f"For {inline_list(list(high.evidence))}. Evaluate the cause first: not every cause benefits from "
             "calcium restriction.")
    # No low-calcium diet code or calcium nutrient code was verified (clinical specification §1.5): the proposal is text-only.
    suggestions, dietitian_note = diet_suggestions(facts, diet="calcium-restricted", diet_code=None, nutrient=None, key="diet-calcium")
    if dietitian_note:
        brief += " " + dietitian_note
    detail = "Restrict dietary calcium while hypercalcemia is present (minor benefit in most cases). " + brief
    return Recommendation(
        indicator="info",
        summary="Hypercalcemia: consider dietary calcium restriction; evaluate the cause (minor benefit for calcinosis).",
        detail=detail,
        evidence=list(high.evidence),
        suggestions=suggestions,
        selection_behavior="any",
        group="diet",
        group_line="Calcium-restricted diet for hypercalcemia",
        brief=brief,
        finding="hypercalcemia",
    )
