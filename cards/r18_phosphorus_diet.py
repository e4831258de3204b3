"""R18: restrict dietary phosphorus when hyperphosphatemia is present."""

from cds_service import proposals
from cds_service.rules import Action, Recommendation, Suggestion, rule

from ._text import bullet_list

RENAL_DIET = ("33489005", "Renal disease diet")  # VERIFIED display (S7)
PHOSPHORUS = ("30820000", "Phosphorus")  # nutrient modifier, VERIFIED display (S7)
DIETITIAN = ("103699006", "Referral to dietitian")  # VERIFIED (S2, S3)


@rule(
    id="R18",
    title="Phosphorus-restricted diet in hyperphosphatemia",
    article="Restrict dietary phosphorous when hyperphosphatemia is present.",
    evidence_level="Expert recommendation of the article; dietary alteration is of minor benefit in most cases",
    trigger=(
        "Calcinosis and the latest phosphate (90 days) is high: above the lab's range, flagged high, or above "
        "4.5 mg/dL (1.45 mmol/L) in an adult. A diagnosis of hyperphosphatemia alone is not enough"
    ),
    priority=30,
)
def phosphorus_diet(facts, ctx):
    high = facts.lab_high("phosphate")
    if not high:
        return None
    note = "Phosphorus restriction; the amount is set by the dietitian (the article gives none)."
    ckd = facts.renal_insufficiency()
    detail = (
        "The article: *\"Restrict dietary phosphorous when hyperphosphatemia is present.\"* It calls the benefit of "
        "dietary change minor in most cases, and gives no numeric limit.\n\n" + bullet_list(list(high.evidence))
    )
    if ckd:
        detail += "\n\nRenal insufficiency is present: coordinate the diet with nephrology."
    diet = proposals.diet_order(
        facts.patient_id,
        diet_code=RENAL_DIET,
        diet_text="Phosphorus-restricted diet",
        nutrient=PHOSPHORUS,
        note=note,
        datetime_ordered=facts.now.isoformat(),
    )
    referral = proposals.referral(facts.patient_id, DIETITIAN[0], DIETITIAN[1])
    return Recommendation(
        indicator="info",
        summary="Hyperphosphatemia: consider a phosphorus-restricted diet (minor benefit in most cases).",
        detail=detail,
        evidence=list(high.evidence),
        suggestions=[
            Suggestion("Propose a phosphorus-restricted diet", (Action("create", "Phosphorus-restricted diet (proposal)", resource=diet),), key="diet-phosphorus"),
            Suggestion("Refer to a dietitian", (Action("create", "Referral to dietitian (proposal)", resource=referral),), key="dietitian"),
        ],
        selection_behavior="any",
        group="diet",
        group_line="Phosphorus-restricted diet for hyperphosphatemia",
    )
