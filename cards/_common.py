"""Shared pieces of the rules: the referrals they suggest (each suggested once, not when recently made) and the
safety notes that several rules print the same way."""

from __future__ import annotations

from cds_service import proposals
from cds_service.rules import Action, Suggestion

# Referral procedures (SNOMED CT), all VERIFIED in RULES.md §1.5 (S2, S3). The key is shared by every rule that
# suggests the referral, so one card never offers it twice; the engine also removes repeats across cards.
REFERRALS = {
    "nephrology": ("306286007", "Referral to nephrologist", "encounter-nephrology"),
    "rheumatology": ("306290009", "Referral to rheumatologist", "encounter-rheumatology"),
    "hematology": ("183567007", "Referral to hematologist", "encounter-hematology"),
    "dietitian": ("103699006", "Referral to dietitian", "encounter-dietetics"),
    "dermatology": ("308472003", "Referral to dermatologist", None),
    "plastic-surgery": ("306315001", "Referral to plastic surgeon", None),
    "hand-surgery": ("306312003", "Referral to hand surgeon", None),
    "general-surgery": ("308478004", "Referral to general surgeon", None),
    "physiotherapy": ("308447003", "Referral to physiotherapist", None),
    "occupational-therapy": ("308453003", "Referral to occupational therapist", None),
}


def already_referred(facts, specialty: str) -> str | None:
    """A referral to this specialty in the last 12 months, or an encounter with it: the resource that shows it."""
    code, _, encounter_value_set = REFERRALS[specialty]
    found = facts.recent_referral(code)
    if found is None and encounter_value_set:
        found = facts.recent_encounter(encounter_value_set)
    return found


def referral(facts, specialty: str, reasons=(), note: str | None = None) -> Suggestion:
    code, display, _ = REFERRALS[specialty]
    resource = proposals.referral(facts.patient_id, code, display, reasons, note=note)
    return Suggestion(display, (Action("create", f"{display} (proposal, for the clinician to accept)", resource=resource),),
                      key=f"referral-{specialty}")


def referral_unless_recent(facts, specialty: str, reasons=(), note: str | None = None) -> tuple[Suggestion | None, str | None]:
    """(the referral suggestion, None), or (None, the recent referral or encounter that makes it unnecessary)."""
    existing = already_referred(facts, specialty)
    if existing:
        return None, existing
    return referral(facts, specialty, reasons, note), None


def diet_suggestions(facts, *, diet: str, diet_code: tuple[str, str] | None, nutrient: tuple[str, str] | None,
                     key: str) -> tuple[list[Suggestion], str]:
    """A restricted-diet NutritionOrder proposal (no amount: the article gives none) and a dietitian referral unless
    a dietitian is already involved. Returns the suggestions and a line for the detail ("" when nothing to add)."""
    resource = proposals.diet_order(
        facts.patient_id,
        diet_code=diet_code,
        diet_text=f"{diet.capitalize()} diet",
        nutrient=nutrient,
        note=f"{diet.split('-')[0].capitalize()} restriction; the amount is set by the dietitian (the article gives none).",
        datetime_ordered=facts.now.isoformat(),
    )
    suggestions = [Suggestion(f"Propose a {diet} diet", (Action("create", f"{diet.capitalize()} diet (proposal)", resource=resource),), key=key)]
    dietitian, existing = referral_unless_recent(facts, "dietitian")
    if dietitian:
        suggestions.append(dietitian)
        return suggestions, ""
    return suggestions, f"\n\nA dietitian is already involved ({existing})."


def condition_references(evidence) -> list[str]:
    return [e["reference"] for e in evidence if str(e.get("reference", "")).startswith("Condition/")]


OPTION_NOT_STANDARD = "This is an option, not a standard of care; its use for calcinosis is off-label."
OUTSIDE_ARTICLE = "(Outside the article: a safety note for the clinical reviewer to confirm.)"
