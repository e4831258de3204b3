"""R11: calciphylaxis: consider IV sodium thiosulfate (off-label, experimental) with nephrology.

Article: "Use of intravenous sodium thiosulfate should be considered as it has been shown to be effective in many
cases of calciphylaxis. It would be considered off-label and experimental therapy." [31]. A warning. Calciphylaxis
needs SNOMED CT 237900002 or the word "calciphylaxis" (A1); E83.59 alone never fires it. Suggests a nephrology
referral (unless one was made, or nephrology was seen, in the last 12 months); never a sodium thiosulfate order (no
dose in the article). Flags the calciphylaxis risk factors of VisualDx (S6): calcium-based phosphate binders, warfarin
and systemic corticosteroids, naming any the patient takes.
"""

from cds_service.engine.authoring import Recommendation, condition_references, rule

from ..definitions import calciphylaxis
from ..referrals import referral_unless_recent
from ..wording import inline_list, name_of


# Risk factors of calciphylaxis (S6); their medication value sets are the order rules' (terminology-medications.json).
RISK_FACTOR_VALUE_SETS = (
    ("warfarin", "med-warfarin"),
    ("a calcium-based phosphate binder", "med-calcium-based-binder"),
    ("a systemic corticosteroid", "med-systemic-corticosteroid"),
)


@rule(
    id="R11",
    title="Calciphylaxis: intravenous sodium thiosulfate with nephrology",
    article=("Use of intravenous sodium thiosulfate should be considered as it has been shown to be effective in many "
             "cases of calciphylaxis. It would be considered off-label and experimental therapy."),
    references=(31,),
    evidence_level="Case series and reports; off-label and experimental (article)",
    exclusions=("Calciphylaxis coded only as E83.59 (too broad)",),
    trigger=("An active calciphylaxis Condition: SNOMED CT 237900002 or the word calciphylaxis (never ICD-10-CM "
             "E83.59 alone)"),
    priority=15,
)
def calciphylaxis_thiosulfate(facts, ctx):
    found = calciphylaxis(facts)
    if not found:
        return None
    evidence = list(found.evidence)
    detail = ("Consider intravenous sodium thiosulfate, off-label and experimental, decided with nephrology under the "
              "institution's protocol; no order is proposed (the article gives no dose). Calciphylaxis mortality is "
              "high.\n\n**Calciphylaxis:** " + inline_list(evidence) + ".")
    taking = []
    for label, value_set in RISK_FACTOR_VALUE_SETS:
        if facts.has_value_set(value_set):
            for item in facts.taking(value_set).evidence:
                taking.append(f"{label} ({name_of(item) or 'on record'})")
                evidence.append({"flag": f"calciphylaxis risk factor: {label}", **item})
    if taking:
        detail += ("\n\n**Takes a reported risk factor for calciphylaxis** (VisualDx, outside the article): "
                   + "; ".join(dict.fromkeys(taking)) + ". Review whether it is needed.")
    else:
        detail += ("\n\nReported risk factors (VisualDx, outside the article): calcium-based phosphate binders, "
                   "warfarin, systemic corticosteroids.")
    suggestion, existing = referral_unless_recent(facts, "nephrology", condition_references(evidence))
    if existing:
        detail += "\n\nNephrology already involved in the last 12 months."
    return Recommendation(
        indicator="warning",
        summary="Calciphylaxis: consider IV sodium thiosulfate (off-label/experimental) with nephrology.",
        detail=detail,
        evidence=evidence,
        suggestions=[suggestion] if suggestion else [],
        selection_behavior="at-most-one",
    )
