"""What counts as a high or low laboratory value (decision A3).

"High" is the result's own upper limit (referenceRange.high, converted to the canonical unit), else the lab's
interpretation flag, else an adult default limit; the defaults for phosphate and calcium never apply under 18
(children's normal phosphate is higher), nor when the age is unknown.

Used by: R01, R05, R06, R23, and by the other definitions.
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


@dataclass(frozen=True, slots=True)
class HighAssessment:
    high: bool | None  # None: cannot be concluded (e.g. a child without a lab range)
    basis: str  # "reference range", "interpretation", "adult default > X unit", or why not concluded


def assess_high(result: LabResult, age_years: float | None) -> HighAssessment:
    """Whether one result is high (A3), and on what basis."""
    if result.reference_high is not None:
        high = result.value > result.reference_high
        return HighAssessment(high, f"above the lab's upper limit {result.reference_high:g} {result.unit}"
                              if high else "within the lab's reference range")
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
    high = result.value > default
    return HighAssessment(high, f"adult limit {default:g} {result.unit}" + (" exceeded" if high else " not exceeded"))


@definition
def lab_high(facts: PatientFacts, analyte: str) -> Finding:
    """The latest result of the analyte in its window is high (A3). Used by R01 (PTH), R05 (magnesium), R18/R04
    through hyperphosphatemia."""
    result = facts.latest_lab(analyte)
    if result is None:
        return Finding(False)
    assessment = assess_high(result, facts.age_years)
    return Finding(bool(assessment.high), ({**result.evidence(), "assessment": assessment.basis},))


@definition
def lab_below(facts: PatientFacts, analyte: str, threshold: float) -> Finding:
    """The latest result of the analyte in its window is below a fixed threshold in its canonical unit."""
    result = facts.latest_lab(analyte)
    if result is None or result.value >= threshold:
        return Finding(False)
    return Finding(True, ({**result.evidence(), "threshold": f"< {threshold:g} {result.unit}"},))
