"""The patient: age limits (decisions A3, A16 and the children's exclusions) and pregnancy (decision A9).

Used by: R01, R08a, R09, R13, R20, R23.
"""

from __future__ import annotations

from cds_service.engine.authoring import Finding, PatientFacts, condition_evidence, definition

ADULT_AGE_YEARS = 18  # adult limits and adult dosing apply from this age


def is_child(facts: PatientFacts) -> bool:
    """Under 18 by a known birth date (unknown age: not known to be a child; see age_under for safety checks)."""
    age = facts.age_years
    return age is not None and age < ADULT_AGE_YEARS


@definition
def paediatric(facts: PatientFacts) -> Finding:
    """A16: under 18, or no birth date (the age cannot be shown to be adult). The article's treatment evidence is
    from adults, so no card proposes a medication or a diet for these patients (cards/limits.py)."""
    age = facts.age_years
    if age is None:
        return Finding(True, ({"birthDate": "unknown"},))
    if age < ADULT_AGE_YEARS:
        return Finding(True, ({"ageYears": round(age, 1)},))
    return Finding(False)


def age_under(facts: PatientFacts, years: float) -> bool | None:
    """True/False, or None when the birth date is unknown (a safety exclusion must then assume the worst)."""
    age = facts.age_years
    return None if age is None else age < years


@definition
def pregnant(facts: PatientFacts) -> Finding:
    """A9: an active pregnancy Condition (Z33.1, O00-O9A, Z3A, SNOMED 77386006, or the words), or a latest
    pregnancy-status Observation (LOINC 82810-3, final/amended/corrected, within its window) answered "pregnant".
    A "not pregnant" observation never cancels an active pregnancy Condition: for safety, any positive source
    counts. Used by R03, R13 and the other options withheld in pregnancy."""
    evidence = [condition_evidence(c, m) for c, m in facts.conditions_in("pregnancy")]
    status = pregnancy_status(facts)
    if status is not None and status[0]:
        evidence.append(status[1])
    return Finding(bool(evidence), tuple(evidence))


@definition
def pregnancy_status(facts: PatientFacts) -> tuple[bool, dict] | None:
    """(pregnant?, evidence) from the latest usable pregnancy-status Observation in its window, or None when there
    is none or its answer says neither (a text answer counts when it names pregnancy)."""
    answer = facts.coded_answer("pregnancy-status")
    if answer is None:
        return None
    if answer.answer == "positive":
        return True, {**answer.evidence, "value": "pregnant", "matchedBy": "code"}
    if answer.answer == "negative":
        return False, {**answer.evidence, "value": "not pregnant", "matchedBy": "code"}
    text = answer.text or ""
    if facts.terms.value_set("pregnancy").match_text(text):
        return True, {**answer.evidence, "value": text, "matchedBy": "text"}
    return None
