"""What counts as a high or low laboratory value (decisions A3 and A19).

"High" is the result's own upper limit (referenceRange.high, converted to the canonical unit), else the lab's
interpretation flag, else an adult default limit; the defaults for phosphate and calcium never apply under 18
(children's normal phosphate is higher), nor when the age is unknown.

A value reported with a comparator (">10 mg/dL", "<0.5") is compared as A19 says: ">V" is above a limit T when
V >= T, ">=V" when V > T; "<V" and "<=V" are not above T when V <= T. Any other such value cannot be placed against
the limit: it is not used, the response says so (unusedLabResults), and the next older result counts.

Used by: R01, R04, R05, R06, R23, and by the other definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.engine.authoring import Finding, LabResult, PatientFacts, definition

from .patient import ADULT_AGE_YEARS

# Adult upper limits where the lab gives none (decision A3; PTH from specification §1.3, the wider ARUP interval).
ADULT_DEFAULT_HIGH = {
    "phosphate": 4.5,  # mg/dL
    "calcium": 10.2,  # mg/dL
    "calcium-corrected": 10.2,  # mg/dL
    "calcium-ionized": 1.32,  # mmol/L
    "magnesium": 2.6,  # mg/dL
    "pth": 65.0,  # pg/mL
}
# Analytes whose adult default must not be applied to a child (A3).
ADULT_ONLY_DEFAULTS = frozenset({"phosphate", "calcium", "calcium-corrected", "calcium-ionized"})
HIGH_INTERPRETATIONS = frozenset({"H", "HH", "HU"})
NOT_HIGH_INTERPRETATIONS = frozenset({"N", "L", "LL", "LU"})
# The analytes and the few results a metabolic work-up (R01) looks for; with none of them on file, R01 proposes the
# work-up, which includes a creatinine (so R04 need not propose one as well, A13).
WORKUP_ANALYTES = ("calcium", "calcium-ionized", "calcium-corrected", "phosphate", "albumin", "creatinine", "egfr",
                   "pth", "vitamin-d-25oh")


@dataclass(frozen=True, slots=True)
class HighAssessment:
    high: bool | None  # None: cannot be concluded (e.g. a child without a lab range)
    basis: str  # "reference range", "interpretation", "adult default > X unit", or why not concluded
    unplaced: bool = False  # a comparator value that cannot be placed against the limit: not used (A19)


def shown(result: LabResult) -> str:
    """The value as reported, with its comparator: ">10 mg/dL"."""
    return f"{result.comparator}{result.value:g} {result.unit}"


def exceeds(result: LabResult, limit: float) -> bool | None:
    """Whether the result is above `limit` (in its canonical unit), by A19 for a value with a comparator; None when
    the comparator leaves it open (">2" against 4.5)."""
    value, comparator = result.value, result.comparator
    if not comparator:
        return value > limit
    if comparator == ">":
        return True if value >= limit else None
    if comparator == ">=":
        return True if value > limit else None
    return False if value <= limit else None  # "<" or "<="


def falls_below(result: LabResult, limit: float) -> bool | None:
    """Whether the result is below `limit`, the mirror of `exceeds`: "<V" is below when V <= limit, "<=V" when
    V < limit; ">V" and ">=V" are not below when V >= limit; None when the comparator leaves it open."""
    value, comparator = result.value, result.comparator
    if not comparator:
        return value < limit
    if comparator == "<":
        return True if value <= limit else None
    if comparator == "<=":
        return True if value < limit else None
    return False if value >= limit else None  # ">" or ">="


def _against(result: LabResult, limit: float, within: str, above: str, unplaced: str) -> HighAssessment:
    high = exceeds(result, limit)
    if high is None:
        return HighAssessment(None, f"reported as {shown(result)}, which cannot be placed against {unplaced} "
                                    f"{limit:g} {result.unit}", unplaced=True)
    return HighAssessment(high, above if high else within)


def assess_high(result: LabResult, age_years: float | None) -> HighAssessment:
    """Whether one result is high (A3, with A19's comparators), and on what basis."""
    if result.reference_high is not None:
        limit = result.reference_high
        return _against(result, limit, "within the lab's reference range",
                        f"above the lab's upper limit {limit:g} {result.unit}", "the lab's upper limit")
    if result.interpretation & HIGH_INTERPRETATIONS:
        return HighAssessment(True, "flagged high by the lab")
    if result.interpretation & NOT_HIGH_INTERPRETATIONS:
        return HighAssessment(False, "not flagged high by the lab")
    default = ADULT_DEFAULT_HIGH.get(result.analyte)
    if default is None:
        return HighAssessment(None, "no reference range, interpretation or default limit")
    if result.analyte in ADULT_ONLY_DEFAULTS:
        if age_years is None:
            return HighAssessment(None, "age unknown, so the adult limit cannot be applied")
        if age_years < ADULT_AGE_YEARS:
            return HighAssessment(None, "patient under 18: adult limits do not apply and the lab gave no range")
    return _against(result, default, f"adult limit {default:g} {result.unit} not exceeded",
                    f"adult limit {default:g} {result.unit} exceeded", "the adult limit")


@definition
def latest_judged(facts: PatientFacts, analyte: str) -> LabResult | None:
    """The newest result of the analyte in its window that can be judged against its upper limit (A3, A19): one
    whose comparator cannot be placed against the limit is set aside (reported in unusedLabResults) and the next
    older one counts."""
    for result in facts.labs.newest(analyte):
        assessment = assess_high(result, facts.age_years)
        if assessment.unplaced:
            facts.labs.set_aside(result, f"not used: {assessment.basis}")
            continue
        return result
    return None


@definition
def lab_high(facts: PatientFacts, analyte: str) -> Finding:
    """The latest result of the analyte in its window is high (A3). Used by R01 (PTH), R05 (magnesium), R18/R04
    through hyperphosphatemia."""
    result = latest_judged(facts, analyte)
    if result is None:
        return Finding(False)
    assessment = assess_high(result, facts.age_years)
    return Finding(bool(assessment.high), ({**result.evidence(), "assessment": assessment.basis},))


@definition
def lab_below(facts: PatientFacts, analyte: str, threshold: float) -> Finding:
    """The latest result of the analyte in its window is below a fixed threshold in its canonical unit (a value
    with a comparator only when its bound says so)."""
    result = facts.latest_lab(analyte)
    if result is None or not falls_below(result, threshold):
        return Finding(False)
    return Finding(True, ({**result.evidence(), "threshold": f"< {threshold:g} {result.unit}"},))


@definition
def metabolic_workup_missing(facts: PatientFacts) -> bool:
    """No calcium, phosphate, albumin, renal function, PTH or 25-OH vitamin D result in its window (R01 proposes the
    work-up); never when the laboratory results could not be obtained: unknown is not absent."""
    if facts.data_missing("observations"):
        return False
    return not any(facts.latest_lab(analyte) for analyte in WORKUP_ANALYTES)
