"""R18: restrict dietary phosphorus when hyperphosphatemia is present.

Article (Diet): "Restrict dietary phosphorous when hyperphosphatemia is present." Dietary alteration is of minor benefit
in most cases. Hyperphosphatemia = the latest phosphate (90 days) is high by A3 (lab range, else flag, else > 4.5 mg/dL
in adults only; mmol/L converted), or a specific diagnosis that no recent phosphate contradicts (never E83.39 alone).
Proposes a NutritionOrder with a phosphorus nutrient modifier (renal disease diet 33489005 when renal insufficiency is
present; no numeric limit, which the article does not give) and a dietitian referral.
"""

from cds_service.engine.authoring import Recommendation, rule

from ..definitions import hyperphosphatemia, renal_insufficiency
from ..diet import diet_suggestions
from ..wording import inline_list


RENAL_DIET = ("33489005", "Renal disease diet")  # VERIFIED display (S7)
PHOSPHORUS = ("30820000", "Phosphorus")  # nutrient modifier, VERIFIED display (S7)


@rule(
    id="R18",
    title="Phosphorus-restricted diet in hyperphosphatemia",
    article="Restrict dietary phosphorous when hyperphosphatemia is present.",
    evidence_level="Expert recommendation of the article; dietary alteration is of minor benefit in most cases",
    evidence_grade="Expert recommendation; minor benefit",
    exclusions=("Hyperphosphatemia coded E83.39 alone, or a diagnosis a recent normal phosphate contradicts",),
    trigger=(
        "Calcinosis and hyperphosphatemia: the latest phosphate (90 days) is above the lab's range, flagged high, or "
        "above 4.5 mg/dL (1.45 mmol/L) in an adult; or a hyperphosphatemia diagnosis (not E83.39 alone) that no "
        "recent phosphate contradicts"
    ),
    priority=30,
)
def phosphorus_diet(facts, ctx):
    high = hyperphosphatemia(facts)
    if not high:
        return None
    ckd = renal_insufficiency(facts)
    brief = f"For {inline_list(list(high.evidence))}. No numeric limit is given."
    if ckd:
        brief += " Renal insufficiency: coordinate with nephrology."
    suggestions, dietitian_note = diet_suggestions(
        facts, diet="phosphorus-restricted", diet_code=RENAL_DIET if ckd else None, nutrient=PHOSPHORUS, key="diet-phosphorus"
    )
    if dietitian_note:
        brief += " " + dietitian_note
    detail = "Restrict dietary phosphorus while hyperphosphatemia is present (minor benefit in most cases). " + brief
    return Recommendation(
        indicator="info",
        summary="Hyperphosphatemia: consider a phosphorus-restricted diet (minor benefit in most cases).",
        detail=detail,
        evidence=list(high.evidence),
        suggestions=suggestions,
        selection_behavior="any",
        group="diet",
        group_line="Phosphorus-restricted diet for hyperphosphatemia",
        brief=brief,
    )
