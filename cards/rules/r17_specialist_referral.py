"""R17: consult nephrology, rheumatology or hematology, as the underlying disease indicates.

Article: "A nephrologist, a rheumatologist, and/or a hematologist should be consulted, as indicated by the underlying
disease." Nephrology: renal insufficiency (A4), hyperphosphatemia, secondary/tertiary hyperparathyroidism,
calciphylaxis or dialysis. Rheumatology: a connective-tissue disease (M33, M34, M32, L93.2, M35.1). Hematology: only
the HSCT consideration, which R14 suggests itself (a haematological malignancy is clinician-defined and not coded
here). A specialty is not suggested when a referral to it (ServiceRequest) or an Encounter with it is on record in the
last 12 months. One referral per indicated specialty, any of them (decision A20; the stable key of each is the rule
and the specialty). The card exists for its referrals: when another card already offers them (e.g. R11's nephrology
referral in calciphylaxis) it is not shown.
"""

from cds_service.engine.authoring import Recommendation, condition_references, rule

from ..definitions import calciphylaxis, dialysis, hyperphosphatemia, renal_insufficiency
from ..findings import specialty_findings
from ..referrals import REFERRALS, already_referred, referral
from ..wording import inline_list


def indications(facts):
    nephrology = {
        "renal insufficiency": renal_insufficiency(facts),
        "hyperphosphatemia": hyperphosphatemia(facts),
        "secondary or tertiary hyperparathyroidism": facts.has_condition("hyperparathyroidism-renal-or-secondary"),
        "calciphylaxis": calciphylaxis(facts),
        "dialysis": dialysis(facts),
    }
    rheumatology = {"connective-tissue disease": facts.has_condition("connective-tissue-disease")}
    return {
        "nephrology": {k: v for k, v in nephrology.items() if v},
        "rheumatology": {k: v for k, v in rheumatology.items() if v},
    }


@rule(
    id="R17",
    title="Specialist consultation for the underlying disease",
    article="A nephrologist, a rheumatologist, and/or a hematologist should be consulted, as indicated by the underlying disease.",
    evidence_level="Expert recommendation of the article",
    exclusions=("A referral to, or an encounter with, that specialty in the last 12 months",
                "CKD stages 1-2 alone (not renal insufficiency)"),
    trigger=(
        "Calcinosis and, for nephrology: renal insufficiency, high phosphate, secondary/tertiary hyperparathyroidism, "
        "calciphylaxis or dialysis; for rheumatology: a connective-tissue disease. Not when a referral to, or an "
        "encounter with, that specialty is on record in the last 12 months"
    ),
    priority=20,
)
def specialist_referral(facts, ctx):
    suggestions, evidence, reasons_text, already, specialties = [], [], [], [], []
    for specialty, found in indications(facts).items():
        if not found:
            continue
        if already_referred(facts, specialty):
            already.append(specialty)
            continue
        items = [item for finding in found.values() for item in finding.evidence]
        evidence.extend({"specialty": specialty, **item} for item in items)
        reasons_text.append(f"- **{specialty.capitalize()}** for {', '.join(found)}: {inline_list(items)}.")
        suggestions.append(referral(facts, specialty, condition_references(items)))
        specialties.append(specialty)
    if not suggestions:
        return None
    names = " and ".join(specialties)
    drivers = "renal/metabolic disease" if specialties[0] == "nephrology" else "connective-tissue disease"
    if len(suggestions) > 1:
        drivers = "renal and connective-tissue disease"
    detail = "Consult the specialist the underlying disease indicates:\n\n" + "\n".join(reasons_text)
    if already:
        detail += "\n\nAlready referred or seen in the last 12 months, so not suggested again: " + ", ".join(already) + "."
    assert all(specialty in REFERRALS for specialty in specialties)
    return Recommendation(
        indicator="info",
        summary=f"Calcinosis cutis with {drivers}: consider referral to {names}.",
        detail=detail,
        evidence=evidence,
        suggestions=suggestions,
        selection_behavior="any",  # decision A20: one referral per indicated specialty, any of them
        needs_suggestions=True,
        finding="+".join(specialties),
        findings=specialty_findings(facts, suggestions),
    )
