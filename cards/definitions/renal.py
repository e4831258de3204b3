"""Renal function (decisions A4, A13, A14): renal insufficiency, severe renal insufficiency, dialysis, the eGFR.

The newest renal result decides (A13). A serum or plasma creatinine newer than the latest reported eGFR (or with no
eGFR at all) gives a calculated eGFR: the race-free CKD-EPI 2021 equation from 18 years, the bedside Schwartz
equation under 18 with a height of the last 90 days. A child's creatinine without a height counts as renal
insufficiency only when the lab calls it high; otherwise the labs leave renal function unknown. No eGFR is calculated
for a patient on dialysis (it is meaningless there, and dialysis is severe renal insufficiency anyway).

Used by: R01, R03, R04, R05, R17, R18, R22.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cds_service.engine.authoring import Finding, LabResult, PatientFacts, condition_evidence, definition

from .labs import assess_high
from .patient import ADULT_AGE_YEARS, is_child

EGFR_RENAL_INSUFFICIENCY = 60.0  # mL/min/1.73 m2
EGFR_SEVERE = 30.0  # mL/min/1.73 m2
EGFR_UNIT = "mL/min/{1.73_m2}"
KNOWN_RENAL_FUNCTION_DAYS = 90  # A13: only a renal result this recent says renal function is known to be normal
DIALYSIS_PROCEDURE_DAYS = 90  # A14: a dialysis Procedure this recent (or in progress) means dialysis now
DIALYSIS_PROCEDURE_STATUSES = frozenset({"completed", "in-progress"})
DATED_AHEAD = timedelta(hours=1)  # clocks differ between systems: minutes "in the future" are now
CKD_EPI_2021 = "calculated (CKD-EPI 2021)"
BEDSIDE_SCHWARTZ = "calculated (bedside Schwartz)"
# The eGFR is a decreasing function of creatinine in both equations: a bound on one is the opposite bound on the other.
INVERTED_COMPARATOR = {"": "", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def ckd_epi_2021(creatinine_mg_dl: float, age_years: float, female: bool) -> float:
    """Race-free CKD-EPI 2021 creatinine equation (Inker et al., N Engl J Med 2021;385:1737-49), mL/min/1.73 m2."""
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine_mg_dl / kappa
    egfr = 142 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.200 * 0.9938 ** age_years
    return egfr * 1.012 if female else egfr


def bedside_schwartz(height_cm: float, creatinine_mg_dl: float) -> float:
    """Bedside Schwartz equation for children: 0.413 x height (cm) / creatinine (mg/dL), mL/min/1.73 m2."""
    return 0.413 * height_cm / creatinine_mg_dl


@dataclass(frozen=True, slots=True)
class RenalReading:
    """What the newest renal result says: the eGFR (reported or calculated) or, for a child without a height or a
    patient on dialysis, the creatinine itself; `insufficient` and `severe` are None when it cannot tell."""

    result: LabResult
    insufficient: bool | None
    severe: bool | None
    evidence: dict


def _placeable(egfr: LabResult) -> bool:
    """A13: an eGFR with a comparator tells renal function only as ">V"/">=V" with V >= 60 (not RI) or "<V"/"<=V"
    with V <= 60 (RI); any other (">45", "<90") is not used."""
    if not egfr.comparator:
        return True
    if egfr.comparator in (">", ">="):
        return egfr.value >= EGFR_RENAL_INSUFFICIENCY
    return egfr.value <= EGFR_RENAL_INSUFFICIENCY


def _below(egfr: LabResult, limit: float) -> bool:
    """An eGFR below `limit` (60 or 30); "<V" and "<=V" count when V <= limit (A13: "<=60" is RI, "<=30" severe)."""
    if not egfr.comparator:
        return egfr.value < limit
    return egfr.comparator in ("<", "<=") and egfr.value <= limit


def _egfr_reading(facts: PatientFacts, egfr: LabResult, note: str | None = None) -> RenalReading:
    insufficient, severe = _below(egfr, EGFR_RENAL_INSUFFICIENCY), _below(egfr, EGFR_SEVERE)
    limit = EGFR_SEVERE if severe else EGFR_RENAL_INSUFFICIENCY
    item = {**egfr.evidence(), "assessment": f"{'below' if insufficient else 'not below'} {limit:g} {EGFR_UNIT}"}
    if note:
        item["note"] = note
    return RenalReading(egfr, insufficient, severe, item)


def _calculated(creatinine: LabResult, value: float, label: str, reference: str,
                basis: str) -> tuple[LabResult, dict]:
    """The calculated eGFR (a bound when the creatinine is one), and what it was calculated from."""
    return LabResult(
        analyte="egfr", value=value, unit=EGFR_UNIT, reported_value=value, reported_unit=EGFR_UNIT,
        effective=creatinine.effective, loinc="", reference=reference, calculated=label,
        comparator=INVERTED_COMPARATOR[creatinine.comparator], observation=creatinine.observation,
    ), {"creatinine": f"{creatinine.comparator}{creatinine.value:.2f} mg/dL", "basis": basis}


def _from_creatinine(facts: PatientFacts, creatinine: LabResult) -> RenalReading | None:
    """What a creatinine newer than any reported eGFR says (A13), or None when it cannot be used (set aside)."""
    if creatinine.value <= 0:
        facts.labs.set_aside(creatinine, "not used: a creatinine must be above zero")
        return None
    if dialysis(facts):
        return RenalReading(creatinine, None, None, {**creatinine.evidence(),
                                                     "note": "on dialysis: no eGFR is calculated"})
    age = facts.age_on(creatinine.effective.date())
    if age is not None and age >= ADULT_AGE_YEARS:
        female = facts.gender != "male"  # unknown or other sex: the female equation, which gives the lower result
        value = ckd_epi_2021(creatinine.value, age, female)
        sex = facts.gender if facts.gender in ("female", "male") else f"sex {facts.gender or 'unknown'}: female equation"
        egfr, extra = _calculated(creatinine, value, CKD_EPI_2021, creatinine.reference, f"age {int(age)}, {sex}")
    else:
        height = facts.labs.latest("height") if age is not None else None
        if height is None or height.comparator or height.value <= 0:
            return _creatinine_alone(facts, creatinine, age)
        value = bedside_schwartz(height.value, creatinine.value)
        egfr, extra = _calculated(creatinine, value, BEDSIDE_SCHWARTZ, f"{creatinine.reference} + {height.reference}",
                                  f"height {height.value:g} cm")
    if not _placeable(egfr):
        facts.labs.set_aside(creatinine, f"not used: the eGFR it gives ({egfr.comparator}{egfr.value:.0f}) cannot be "
                                         f"placed against {EGFR_RENAL_INSUFFICIENCY:g} {EGFR_UNIT}")
        return None
    reading = _egfr_reading(facts, egfr)
    return RenalReading(reading.result, reading.insufficient, reading.severe, {**reading.evidence, **extra})


def _creatinine_alone(facts: PatientFacts, creatinine: LabResult, age: float | None) -> RenalReading | None:
    """A13, a child without a recent height (or a patient of unknown age): a creatinine the lab calls high (its own
    range, or flagged H/HH) is renal insufficiency; otherwise renal function is unknown. A bound that cannot be
    placed against the lab's range is not used (A19)."""
    why = "no height in the last 90 days for the bedside Schwartz equation" if age is not None else \
        "age unknown, so no eGFR equation applies"
    assessment = assess_high(creatinine, age)
    if assessment.unplaced:
        facts.labs.set_aside(creatinine, f"not used: {assessment.basis}")
        return None
    item = {**creatinine.evidence(), "assessment": assessment.basis, "note": why}
    return RenalReading(creatinine, True if assessment.high else None, None, item)


@definition
def renal_reading(facts: PatientFacts) -> RenalReading | None:
    """The newest renal result (A13): a creatinine newer than the latest reported eGFR, else that eGFR; reported
    eGFRs with a comparator that cannot be placed are set aside (unusedLabResults)."""
    reported = None
    for egfr in facts.labs.newest("egfr"):
        if _placeable(egfr):
            reported = egfr
            break
        facts.labs.set_aside(egfr, f"not used: {egfr.comparator}{egfr.value:g} {EGFR_UNIT} cannot be placed against "
                                   f"{EGFR_RENAL_INSUFFICIENCY:g} {EGFR_UNIT}")
    for creatinine in facts.labs.newest("creatinine"):
        if reported is not None and creatinine.effective <= reported.effective:
            break
        if (reading := _from_creatinine(facts, creatinine)) is not None:
            return reading
    if reported is None:
        return None
    note = ("adult eGFR equations are not validated under 18 years; counted for safety"
            if is_child(facts) and _below(reported, EGFR_RENAL_INSUFFICIENCY) else None)
    return _egfr_reading(facts, reported, note)


@definition
def egfr(facts: PatientFacts) -> LabResult | None:
    """The eGFR that describes renal function now: reported, or calculated from a newer creatinine (A13)."""
    reading = renal_reading(facts)
    return reading.result if reading is not None and reading.result.analyte == "egfr" else None


@definition
def egfr_below(facts: PatientFacts, threshold: float) -> Finding:
    """The eGFR that describes renal function now (reported, or calculated from a newer creatinine) is below
    `threshold` (60 or 30, with A13's comparators). In a child a low reported value still counts, with a note: the
    adult equations are not validated under 18, and for drug safety a low value is not ignored."""
    reading = renal_reading(facts)
    if reading is None or reading.result.analyte != "egfr" or not _below(reading.result, threshold):
        return Finding(False)
    return Finding(True, ({**reading.evidence, "threshold": f"< {threshold:g} {EGFR_UNIT}"},))


@definition
def renal_lab_insufficiency(facts: PatientFacts) -> Finding:
    """The newest renal result shows renal insufficiency: an eGFR below 60, or a child's creatinine above the lab's
    range without a height to calculate an eGFR (A13)."""
    reading = renal_reading(facts)
    if reading is None or not reading.insufficient:
        return Finding(False)
    return Finding(True, (reading.evidence,))


@definition
def dialysis(facts: PatientFacts) -> Finding:
    """A14: an active dialysis Condition (Z99.2, SNOMED 105502003...), or a dialysis Procedure completed or in
    progress with a date (performed, else the end or start of its period) in the last 90 days, or in progress. A
    Procedure without a date, or dated in the future, does not count. The evidence names the newest session that
    counts: a patient on haemodialysis has three a week, and a card listing forty of them is not read."""
    evidence = [condition_evidence(c, m) for c, m in facts.conditions_in("dialysis")]
    since, until = facts.now - timedelta(days=DIALYSIS_PROCEDURE_DAYS), facts.now + DATED_AHEAD

    def counts(procedure) -> bool:
        if procedure.status not in DIALYSIS_PROCEDURE_STATUSES or procedure.performed is None:
            return False
        return procedure.performed <= until and (procedure.status == "in-progress" or procedure.performed >= since)

    session = facts.newest_procedure("dialysis", counts)
    if session is not None:
        evidence.append(session.evidence())
    return Finding(bool(evidence), tuple(evidence))


@definition
def renal_insufficiency(facts: PatientFacts) -> Finding:
    """A4 with A13: the newest renal result shows it (eGFR < 60, reported or calculated, within 365 days), a
    renal-insufficiency Condition (including acute kidney injury, which counts for drug safety, specification §3.9),
    or dialysis. CKD stages 1-2 alone are not renal insufficiency."""
    evidence = list(renal_lab_insufficiency(facts).evidence)
    evidence.extend(condition_evidence(c, m) for c, m in facts.conditions_in("renal-insufficiency"))
    evidence.extend(dialysis(facts).evidence)
    return Finding(bool(evidence), tuple(evidence))


@definition
def severe_renal_insufficiency(facts: PatientFacts) -> Finding:
    """A4: eGFR < 30 (reported or calculated), CKD stage 4-5 or end-stage renal disease, or dialysis."""
    evidence = list(egfr_below(facts, EGFR_SEVERE).evidence)
    evidence.extend(condition_evidence(c, m) for c, m in facts.conditions_in("severe-renal-insufficiency"))
    evidence.extend(dialysis(facts).evidence)
    return Finding(bool(evidence), tuple(evidence))


@definition
def renal_function_known_normal(facts: PatientFacts) -> Finding:
    """A13: renal function is known to be normal: no renal insufficiency (A4), and the newest renal result is 90
    days old or newer and not renal insufficiency. When it is not, the evidence says why (R04 then asks for a renal
    function test before any magnesium or aluminium product)."""
    if renal_insufficiency(facts):
        return Finding(False, ({"note": "renal insufficiency"},))
    reading = renal_reading(facts)
    if reading is None:
        return Finding(False, ({"note": "no eGFR or creatinine result in the last 12 months"},))
    if reading.insufficient is None:
        return Finding(False, ({**reading.evidence, "note": reading.evidence.get("note", "renal function unknown")},))
    if reading.result.effective < facts.now - timedelta(days=KNOWN_RENAL_FUNCTION_DAYS):
        return Finding(False, ({**reading.evidence, "note": "the latest renal result is older than 90 days"},))
    return Finding(True, (reading.evidence,))
