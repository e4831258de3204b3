"""Diet proposals the rules share (R18, R19, R20): a NutritionOrder without amounts, and a dietitian."""

from __future__ import annotations

from cds_service.engine.authoring import Action, PatientFacts, Suggestion, diet_order

from .referrals import referral_unless_recent


def diet_suggestions(facts: PatientFacts, *, diet: str, diet_code: tuple[str, str] | None,
                     nutrient: tuple[str, str] | None, key: str) -> tuple[list[Suggestion], str]:
    """A restricted-diet NutritionOrder proposal (no amount: the article gives none) and a dietitian referral unless
    a dietitian is already involved. Returns the suggestions and a sentence for the card ("" when nothing to add)."""
    resource = diet_order(
        facts.patient_id,
        diet_code=diet_code,
        diet_text=f"{diet.capitalize()} diet",
        nutrient=nutrient,
        note=f"{diet.split('-')[0].capitalize()} restriction; the amount is set by the dietitian (the article gives none).",
        datetime_ordered=facts.now.isoformat(),
    )
    suggestions = [Suggestion(f"Propose a {diet} diet", (Action("create", f"{diet.capitalize()} diet (proposal)", resource=resource),), key=key)]
    dietitian, _ = referral_unless_recent(facts, "dietitian")
    if dietitian:
        suggestions.append(dietitian)
        return suggestions, ""
    return suggestions, "A dietitian is already involved."
