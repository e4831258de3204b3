"""Renal function (decision A4): renal insufficiency, severe renal insufficiency, dialysis.

Used by: R01, R03, R04, R05, R17, R18, R22.
"""

from __future__ import annotations

from cds_service.engine.authoring import Finding, PatientFacts, condition_evidence, definition

from .labs import lab_below
from .patient import is_child

EGFR_RENAL_INSUFFICIENCY = 60.0  # mL/min/1.73 m2
EGFR_SEVERE = 30.0  # mL/min/1.73 m2


@definition
def egfr_below(facts: PatientFacts, threshold: float) -> Finding:
    """The latest eGFR (365 days) is below `threshold`. In a child a low value still counts, with a note: the adult
    equations are not validated under 18, and for drug safety a low value is not ignored (a normal one never rules
    renal insufficiency out anyway)."""
    found = lab_below(facts, "egfr", threshold)
    if found and is_child(facts):
        item = {**found.evidence[0], "note": "adult eGFR equations are not validated under 18 years; counted for safety"}
        return Finding(True, (item,))
    return found


@definition
def dialysis(facts: PatientFacts) -> Finding:
    """A dialysis Condition (Z99.2, end-stage renal disease on dialysis...) or a dialysis Procedure."""
    evidence = [condition_evidence(c, m) for c, m in facts.conditions_in("dialysis")]
    evidence.extend(facts.procedures_in("dialysis"))
    return Finding(bool(evidence), tuple(evidence))


@definition
def renal_insufficiency(facts: PatientFacts) -> Finding:
    """A4: latest eGFR < 60 (365 days), a renal-insufficiency Condition (including acute kidney injury, which counts
    for drug safety, specification §3.9), or dialysis. CKD stages 1-2 alone are not renal insufficiency."""
    evidence = list(egfr_below(facts, EGFR_RENAL_INSUFFICIENCY).evidence)
    evidence.extend(condition_evidence(c, m) for c, m in facts.conditions_in("renal-insufficiency"))
    evidence.extend(dialysis(facts).evidence)
    return Finding(bool(evidence), tuple(evidence))


@definition
def severe_renal_insufficiency(facts: PatientFacts) -> Finding:
    """A4: eGFR < 30, CKD stage 4-5 or end-stage renal disease, or dialysis."""
    evidence = list(egfr_below(facts, EGFR_SEVERE).evidence)
    evidence.extend(condition_evidence(c, m) for c, m in facts.conditions_in("severe-renal-insufficiency"))
    evidence.extend(dialysis(facts).evidence)
    return Finding(bool(evidence), tuple(evidence))
