"""How the cards say things (decision A20): the patient's data as a clinician writes them, each with its date.

"eGFR 22 mL/min/1.73 m² (3 Dec 2026)", "phosphate 1.9 mmol/L (5.88 mg/dL; 7 Mar 2026)", a condition by its name,
a product by its name: never a resource id, a code, a UCUM expression with braces or a value-set name. Those stay in
the card's extension, where the same evidence items are kept whole.
"""

from __future__ import annotations

import re
from datetime import datetime

from cds_service.engine.authoring import MedicationFact

OPTION_NOT_STANDARD = "An option, not a standard of care; off-label for calcinosis."
OUTSIDE_ARTICLE = "(outside the article)"

SUCRALFATE_NOTE = ("Sucralfate counts as aluminium-containing: an ulcer drug whose aluminium accumulates in renal "
                   "insufficiency (a label caution, outside the article).")


def verify_ingredients(text: str | None, brand: str) -> str:
    """A15: what a card says of a product it knows by a brand name alone (Maalox, Gaviscon...), naming the brand as
    it was typed in the order's text (which also holds the dose)."""
    start = (text or "").lower().find(brand)
    product = text[start:start + len(brand)] if text and start >= 0 else brand
    return (f"{product} may contain magnesium and/or aluminium; formulations differ by product and country (some "
            "contain neither): verify the ingredients.")


# The names clinicians write for the analytes of the lab table (cards/data/terminology.json).
LAB_NAMES = {
    "egfr": "eGFR",
    "phosphate": "phosphate",
    "calcium": "calcium",
    "calcium-ionized": "ionized calcium",
    "calcium-corrected": "corrected calcium",
    "magnesium": "magnesium",
    "albumin": "albumin",
    "creatinine": "creatinine",
    "pth": "PTH",
    "vitamin-d-25oh": "25-OH vitamin D",
    "aluminium": "aluminium",
    "height": "height",
}
# UCUM as a clinician reads it: annotations in braces are words (mL/min/{1.73_m2} is per 1.73 m²), "u" is micro.
_UCUM_WORDS = {"1.73_m2": "1.73 m²", "1.73m2": "1.73 m²"}
_BRACES = re.compile(r"\{([^{}]*)\}")
_MICRO = re.compile(r"(?<![A-Za-z])u(?=(g|mol|L|l|IU)\b)")


def clinical_unit(text: str) -> str:
    """A unit, or a text holding units, without UCUM braces: "mL/min/{1.73_m2}" -> "mL/min/1.73 m²"."""
    text = _BRACES.sub(lambda m: _UCUM_WORDS.get(m.group(1), m.group(1).replace("_", " ")), text)
    text = re.sub(r"/1\.73(?:_|\.)?m2\b", "/1.73 m²", text)
    text = re.sub(r"\bmeq\b", "mEq", text)
    return _MICRO.sub("µ", text)


def clinical_date(value: str | None) -> str | None:
    """"2026-12-03T08:00:00+00:00" -> "3 Dec 2026" (the date as the record gives it, in its own time zone)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        day = datetime.fromisoformat(value[:10])
    except ValueError:
        return None
    return f"{day.day} {day:%b %Y}"


def clinical_number(value: float) -> str:
    """A converted value, to the precision a lab reports: 5.884 -> "5.88", 22.04 -> "22", 0.5 -> "0.5"."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    text = f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return text.rstrip("0").rstrip(".")


def _lab(item: dict) -> str:
    name = LAB_NAMES.get(item["analyte"], item["analyte"].replace("-", " "))
    unit = clinical_unit(item["unit"])
    comparator = item.get("comparator") or ""
    if item.get("reported"):
        value, _, reported_unit = str(item["reported"]).partition(" ")
        shown = f"{comparator}{value} {clinical_unit(reported_unit)}".rstrip()
        converted = f"{clinical_number(item['value'])} {unit}"
    else:
        shown, converted = f"{comparator}{item['value']:g} {unit}", None
    calculated = item.get("calculated")
    if calculated:
        shown += f", {calculated}" if isinstance(calculated, str) else ", calculated"
    when = clinical_date(item.get("effective"))
    extra = "; ".join(x for x in (converted, when) if x)
    line = f"{name} {shown}" + (f" ({extra})" if extra else "")
    if item.get("assessment"):
        line += f": {clinical_unit(item['assessment'])}"
    return line


# SNOMED CT's semantic tags, which a display may carry ("Hemodialysis (procedure)"): a clinician never writes them.
_SEMANTIC_TAG = re.compile(r"\s*\((procedure|disorder|finding|situation|regime/therapy|observable entity)\)$")


def name_of(item: dict) -> str | None:
    """What a piece of evidence is called in words: its text, the code's display, or the words it matched by."""
    for key in ("text", "display"):
        if isinstance(item.get(key), str) and item[key].strip():
            return _SEMANTIC_TAG.sub("", item[key].strip())
    if item.get("matchedBy") == "text" and isinstance(item.get("matched"), str):
        return item["matched"]
    return None


def describe(item: dict) -> str:
    """One piece of evidence in clinical words ("" for evidence that is only for machines)."""
    if "analyte" in item and "value" in item:
        return _lab(item)
    label = name_of(item)
    if label is None:
        return ""
    if "draftOrder" in item or str(item.get("reference", "")).startswith(("Medication", "MedicationStatement")):
        return label + (" (draft order)" if item.get("draftOrder") else " (active on the record)")
    for key, word in (("onset", "since "), ("recorded", "recorded "), ("performed", ""), ("date", "")):
        if when := clinical_date(item.get(key)):
            return f"{label} ({word}{when})"
    return label


def bullet_list(items: list[dict]) -> str:
    """Each piece of evidence once, as Markdown bullets (a finding two definitions share is listed once)."""
    lines = [describe(item) for item in items]
    return "\n".join(f"- {line}" for line in dict.fromkeys(lines) if line)


def inline_list(items: list[dict]) -> str:
    """Each piece of evidence once, in one line: "CKD stage 4 (since 2 Jan 2025); eGFR 22 mL/min/1.73 m² (…)"."""
    return "; ".join(line for line in dict.fromkeys(describe(item) for item in items) if line)


def medication_name(fact: MedicationFact, name: str | None = None) -> str:
    return fact.text or name or "a medication"


def product_line(fact: MedicationFact, name: str | None = None) -> str:
    """A medication by its name (or `name` when it has only codes) and its daily dose when known."""
    dose = f", {fact.daily_dose_mg:g} mg/day" if fact.daily_dose_mg is not None else ""
    return medication_name(fact, name) + dose


def medication_line(fact: MedicationFact, name: str | None = None) -> str:
    """A medication by its name, where it is (a draft order or the record), and its daily dose when known."""
    where = "draft order" if fact.draft else "active on the record"
    dose = f", {fact.daily_dose_mg:g} mg/day" if fact.daily_dose_mg is not None else ""
    return f"{medication_name(fact, name)} ({where}{dose})"
