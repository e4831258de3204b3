"""R17: consult nephrology, rheumatology or hematology, as the underlying disease indicates."""

from datetime import timedelta

from cds_service import proposals
from cds_service.fhir_values import as_list, parse_datetime
from cds_service.rules import Action, Recommendation, Suggestion, rule

from ._text import bullet_list

SPECIALTIES = {
    # specialty: (SNOMED CT referral procedure, display) — VERIFIED (S2)
    "nephrology": ("306286007", "Referral to nephrologist"),
    "rheumatology": ("306290009", "Referral to rheumatologist"),
    "hematology": ("183567007", "Referral to hematologist"),
}
RECENT_DAYS = 365  # an existing referral this recent suppresses a new suggestion (design choice of RULES.md R17)


def recent_referral(facts, snomed_code: str) -> str | None:
    """A ServiceRequest for this referral in the last 12 months (not entered in error or revoked)."""
    since = facts.now - timedelta(days=RECENT_DAYS)
    for request in facts.service_requests:
        if request.get("status") in ("entered-in-error", "revoked"):
            continue
        codes = {
            c.get("code")
            for c in as_list((request.get("code") or {}).get("coding"))
            if isinstance(c, dict) and c.get("system") == proposals.SNOMED
        }
        when = parse_datetime(request.get("authoredOn")) or parse_datetime(request.get("occurrenceDateTime"))
        if snomed_code in codes and when is not None and when >= since:
            return f"ServiceRequest/{request.get('id')}"
    return None


def indications(facts):
    nephrology = {
        "renal insufficiency": facts.renal_insufficiency(),
        "hyperphosphatemia": facts.lab_high("phosphate"),
        "secondary or tertiary hyperparathyroidism": facts.has_condition("hyperparathyroidism-renal-or-secondary"),
        "calciphylaxis": facts.calciphylaxis(),
        "dialysis": facts.dialysis(),
    }
    rheumatology = {"connective-tissue disease": facts.has_condition("connective-tissue-disease")}
    return {
        "nephrology": {k: v for k, v in nephrology.items() if v},
        "rheumatology": {k: v for k, v in rheumatology.items() if v},
        # Hematology: only the HSCT consideration of R14 is codable; R14 itself suggests that referral.
        "hematology": {},
    }


@rule(
    id="R17",
    title="Specialist consultation for the underlying disease",
    article="A nephrologist, a rheumatologist, and/or a hematologist should be consulted, as indicated by the underlying disease.",
    evidence_level="Expert recommendation of the article",
    trigger=(
        "Calcinosis and, for nephrology: renal insufficiency, high phosphate, secondary/tertiary hyperparathyroidism, "
        "calciphylaxis or dialysis; for rheumatology: a connective-tissue disease. Not when a referral to that "
        "specialty was made in the last 12 months"
    ),
    priority=20,
)
def specialist_referral(facts, ctx):
    suggestions, evidence, reasons_text, already = [], [], [], []
    for specialty, found in indications(facts).items():
        if not found:
            continue
        code, display = SPECIALTIES[specialty]
        existing = recent_referral(facts, code)
        if existing:
            already.append(f"{specialty} ({existing})")
            continue
        items = [item for finding in found.values() for item in finding.evidence]
        evidence.extend({"specialty": specialty, **item} for item in items)
        reasons = [i["reference"] for i in items if i.get("reference", "").startswith("Condition/")]
        reasons_text.append(f"**{specialty.capitalize()}** for {', '.join(found)}:\n\n{bullet_list(items)}")
        suggestions.append(
            Suggestion(
                display,
                (Action("create", f"{display} (proposal)", resource=proposals.referral(facts.patient_id, code, display, reasons)),),
                key=specialty,
            )
        )
    if not suggestions:
        return None
    names = " or ".join(s.key for s in suggestions)
    drivers = "renal/metabolic disease" if suggestions[0].key == "nephrology" else "connective-tissue disease"
    if len(suggestions) > 1:
        drivers = "renal and connective-tissue disease"
    detail = (
        "The article: *\"A nephrologist, a rheumatologist, and/or a hematologist should be consulted, as indicated "
        "by the underlying disease.\"*\n\n" + "\n\n".join(reasons_text)
    )
    if already:
        detail += "\n\nAlready referred in the last 12 months, so not suggested again: " + ", ".join(already) + "."
    return Recommendation(
        indicator="info",
        summary=f"Calcinosis cutis with {drivers}: consider referral to {names}.",
        detail=detail,
        evidence=evidence,
        suggestions=suggestions,
        selection_behavior="at-most-one",  # RULES.md §3.15: one specialty at a time
    )
