"""How the cards say things: evidence as Markdown lines, medications by name, and the notes several rules print."""

from __future__ import annotations

from cds_service.engine.authoring import MedicationFact

OPTION_NOT_STANDARD = "This is an option, not a standard of care; its use for calcinosis is off-label."
OUTSIDE_ARTICLE = "(Outside the article: a safety note for the clinical reviewer to confirm.)"
SUCRALFATE_NOTE = ("Sucralfate counts as aluminium-containing: an ulcer drug whose aluminium accumulates in renal "
                   "insufficiency (a label caution, outside the article).")


def verify_ingredients(text: str | None, brand: str) -> str:
    """A15: what a card says of a product it knows by a brand name alone (Maalox, Gaviscon...), naming the brand as
    it was typed in the order's text (which also holds the dose)."""
    start = (text or "").lower().find(brand)
    product = text[start:start + len(brand)] if text and start >= 0 else brand
    return (f"{product} may contain magnesium and/or aluminium; formulations differ by product and country (some "
            "contain neither): verify the ingredients.")


def describe(item: dict) -> str:
    """One line of Markdown for one piece of evidence (a lab value, a condition, a medication)."""
    if "analyte" in item:
        # A comparator is part of the value (">10"), and a calculated value says how (A13: "calculated (CKD-EPI 2021)").
        line = f"{item['analyte']} {item.get('comparator', '')}{item['value']:g} {item['unit']} on {item['effective'][:10]}"
        if item.get("reported"):
            line += f" (reported as {item['reported']})"
        if item.get("calculated"):
            line += f" ({item['calculated']})" if isinstance(item["calculated"], str) else " (calculated)"
        if item.get("assessment"):
            line += f": {item['assessment']}"
        return line
    label = item.get("text") or item.get("matched") or item.get("reference", "")
    return f"{label} ({item['reference']})" if item.get("reference") and label != item.get("reference") else str(label)


def bullet_list(items: list[dict]) -> str:
    return "\n".join(f"- {describe(item)}" for item in items)


def medication_line(fact: MedicationFact, name: str | None = None) -> str:
    """One Markdown line naming a medication (draft or record): its name (or `name` when it has only codes), where it
    is, and its daily dose when known."""
    name = fact.text or name or "medication"
    where = "draft order" if fact.draft else f"on record, status {fact.status or 'unknown'}"
    dose = f", {fact.daily_dose_mg:g} mg/day" if fact.daily_dose_mg is not None else ""
    return f"{name} ({where} {fact.reference}{dose})"
