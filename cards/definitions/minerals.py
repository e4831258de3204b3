"""Calcium and phosphate (decisions A3 and A19, specification §3.8): which calcium counts, hypercalcemia,
hyperphosphatemia, and the calcium x phosphate product.

Used by: R01, R04, R17, R18, R19, R22, R23.
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.engine.authoring import Finding, LabResult, PatientFacts, condition_evidence, definition

from .labs import assess_high, exceeds, lab_high, latest_judged

CALCIUM_CORRECTION_ALBUMIN_G_DL = 4.0  # corrected Ca = Ca + 0.8 x (4.0 - albumin g/dL)
CALCIUM_CORRECTION_FACTOR = 0.8
CA_P_PARTNER_WINDOW = timedelta(days=1)  # a calcium drawn within a day of the phosphate pairs with it (R23)


def same_day_albumin(facts: PatientFacts, result: LabResult) -> LabResult | None:
    """The latest albumin drawn on the same (local) day as `result`, for a calculated corrected calcium; only a
    value without a comparator (a bound corrects nothing)."""
    same_day = facts.labs.newest(
        "albumin", where=lambda albumin: albumin.effective.date() == result.effective.date() and not albumin.comparator)
    return next(same_day, None)


@definition
def corrected_calcium(facts: PatientFacts) -> LabResult | None:
    """The latest total calcium corrected by a same-day albumin: Ca + 0.8 x (4.0 - albumin g/dL), "calculated"."""
    total = latest_judged(facts, "calcium")
    if total is None or total.comparator:
        return None
    albumin = same_day_albumin(facts, total)
    if albumin is None:
        return None
    value = total.value + CALCIUM_CORRECTION_FACTOR * (CALCIUM_CORRECTION_ALBUMIN_G_DL - albumin.value)
    return LabResult(
        analyte="calcium-corrected",
        value=value,
        unit="mg/dL",
        reported_value=value,
        reported_unit="mg/dL",
        effective=total.effective,
        loinc="",
        reference=f"{total.reference} + {albumin.reference}",
        reference_high=total.reference_high,  # the total calcium range applies to the corrected value
        calculated="calculated",
    )


def newest_draw(candidates: list[LabResult | None]) -> LabResult | None:
    """A19: the most recent draw decides; within one draw (the same day), the first of `candidates` in their order
    of preference. An 80-day-old ionized calcium must not hide yesterday's total calcium."""
    present = [c for c in candidates if c is not None]
    if not present:
        return None
    day = max(c.effective.date() for c in present)
    return next(c for c in present if c.effective.date() == day)


@definition
def calcium_measure(facts: PatientFacts) -> LabResult | None:
    """The calcium value to judge hypercalcemia by: the most recent draw, and within it ionized calcium first (most
    reliable), then a lab-reported corrected calcium, then total calcium corrected by a same-day albumin
    (calculated), then total calcium (A19, specification §3.8)."""
    return newest_draw([latest_judged(facts, "calcium-ionized"), latest_judged(facts, "calcium-corrected"),
                        corrected_calcium(facts), latest_judged(facts, "calcium")])


@definition
def calcium_high(facts: PatientFacts) -> Finding:
    result = calcium_measure(facts)
    if result is None:
        return Finding(False)
    assessment = assess_high(result, facts.age_years)
    return Finding(bool(assessment.high), ({**result.evidence(), "assessment": assessment.basis},))


@definition
def calcium_phosphate_product(facts: PatientFacts) -> tuple[float, LabResult, LabResult] | None:
    """Ca x P in mg2/dL2 (A3, R23): the latest phosphate in its window, times a total calcium (else a lab-reported
    corrected calcium) drawn within one day of it, both in mg/dL. None when the latest phosphate has no such
    partner: an older pair does not describe the patient now. A calculated corrected calcium is never used (R23:
    corrected calcium only with the reviewer's approval; A3 allows a lab-corrected one)."""
    phosphate = latest_judged(facts, "phosphate")
    if phosphate is None or phosphate.comparator:
        return None  # a bound is no value to multiply (A19: not used for the product)
    for analyte in ("calcium", "calcium-corrected"):
        partners = facts.labs.in_window(
            analyte, where=lambda c: abs(phosphate.effective - c.effective) <= CA_P_PARTNER_WINDOW and not c.comparator
        )
        if partners:
            calcium = min(partners, key=lambda c: abs(phosphate.effective - c.effective))
            return calcium.value * phosphate.value, calcium, phosphate
    return None


@definition
def hyperphosphatemia(facts: PatientFacts) -> Finding:
    """The latest phosphate (90 days) is high (A3); or a specific diagnosis of hyperphosphatemia (SNOMED 20165001 or
    the word; never E83.39 alone, which also covers other phosphorus disorders) that no recent phosphate
    contradicts."""
    high = lab_high(facts, "phosphate")
    if high:
        return high
    latest = latest_judged(facts, "phosphate")
    if latest is not None and assess_high(latest, facts.age_years).high is False:
        return Finding(False)
    icd10cm = facts.terms.system_url("icd10cm")
    specific = [
        condition_evidence(c, m)
        for c, m in facts.conditions_in("hyperphosphatemia")
        if not (m.by == "code" and m.system == icd10cm)
    ]
    if not specific:
        return Finding(False)
    if latest is None:
        specific.append({"note": "no phosphate result in the last 90 days to confirm it"})
    return Finding(True, tuple(specific))


@definition
def hypercalcemia(facts: PatientFacts) -> Finding:
    """The calcium measure (ionized > corrected > total) is high (A3); or a hypercalcemia diagnosis (E83.52, SNOMED
    66931009, the word) that no recent calcium contradicts."""
    high = calcium_high(facts)
    if high:
        return high
    measure = calcium_measure(facts)
    if measure is not None and assess_high(measure, facts.age_years).high is False:
        return Finding(False)
    found = facts.has_condition("hypercalcemia")
    if not found:
        return Finding(False)
    evidence = list(found.evidence)
    if measure is None:
        evidence.append({"note": "no calcium result in the last 90 days to confirm it"})
    return Finding(True, tuple(evidence))


@definition
def calcium_above(facts: PatientFacts, threshold_mg_dl: float) -> Finding:
    """Total calcium, corrected where possible (lab-reported, else calculated from a same-day albumin), above an
    absolute threshold in mg/dL, at any age (R19's critical value 12.0 mg/dL): the most recent draw (A19). Ionized
    calcium is not compared with a total-calcium threshold."""
    result = newest_draw([latest_judged(facts, "calcium-corrected"), corrected_calcium(facts),
                          latest_judged(facts, "calcium")])
    if result is None or not exceeds(result, threshold_mg_dl):
        return Finding(False)
    return Finding(True, ({**result.evidence(), "threshold": f"> {threshold_mg_dl:g} mg/dL"},))
