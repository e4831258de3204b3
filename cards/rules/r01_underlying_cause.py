"""R01: correct the underlying problem; if the metabolic work-up is missing, propose it.

Article: "When identified, the underlying problem should be corrected." [23, 24]. Drivers: high calcium (ionized >
corrected > total, A3), high phosphate, high PTH, renal insufficiency (A4), a connective-tissue disease,
hyperparathyroidism, hypervitaminosis D. With none of Ca, P, albumin, creatinine/eGFR, PTH or 25-OH vitamin D in
their look-back windows (A2), the "missing work-up" variant proposes those tests (an extrapolation: the article
names none). Nothing is ordered unless the clinician accepts it.
"""

from cds_service.engine.authoring import Action, Recommendation, Suggestion, condition_references, lab_order, rule

from ..definitions import (
    WORKUP_ANALYTES,
    gate_conditions,
    hypercalcemia,
    hyperphosphatemia,
    is_child,
    lab_high,
    metabolic_workup_missing,
    renal_insufficiency,
)
from ..findings import cause_findings
from ..wording import bullet_list

WORKUP_TESTS = (
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma"),
    ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma"),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma"),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
    ("98979-8", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by Creatinine-based formula (CKD-EPI 2021)"),
    ("2731-8", "Parathyrin.intact [Mass/volume] in Serum or Plasma"),
    ("62292-8", "25-hydroxyvitamin D2+D3 [Mass/volume] in Serum or Plasma"),
)


@rule(
    id="R01",
    title="Correct the underlying cause",
    article="When identified, the underlying problem should be corrected.",
    references=(23, 24),
    evidence_level="Expert recommendation of the article",
    exclusions=("Laboratory results that could not be obtained are unknown, not absent: no work-up is proposed then",),
    trigger=(
        "Calcinosis and any of: high calcium, high phosphate, high PTH, renal insufficiency, a connective-tissue "
        "disease, hyperparathyroidism, hypervitaminosis D. With no calcium, phosphate, albumin, creatinine/eGFR, PTH "
        "or 25-OH vitamin D in their look-back windows: propose that work-up"
    ),
    priority=10,
)
def underlying_cause(facts, ctx):
    drivers = {
        "high calcium": hypercalcemia(facts),
        "high phosphate": hyperphosphatemia(facts),
        "high parathyroid hormone": lab_high(facts, "pth"),
        "renal insufficiency": renal_insufficiency(facts),
        "connective-tissue disease": facts.has_condition("connective-tissue-disease"),
        "hyperparathyroidism": facts.has_condition("hyperparathyroidism"),
        "hypervitaminosis D": facts.has_condition("hypervitaminosis-d"),
    }
    found = {name: finding for name, finding in drivers.items() if finding}
    # "No work-up on file" only when the laboratory results were obtained: results that could not be fetched are
    # unknown, not absent, and proposing a work-up that was done would mislead.
    labs_unknown = bool(facts.data_missing("observations"))
    workup_missing = metabolic_workup_missing(facts)  # R04 reads it too, not to propose a creatinine twice (A13)
    if not found and not workup_missing:
        return None

    evidence = [item for finding in found.values() for item in finding.evidence]
    reasons = condition_references(evidence) or [c.reference for c in gate_conditions(facts)]
    suggestions = []
    if workup_missing:
        actions = tuple(
            Action("create", f"Order {display.split(' [')[0].split('/')[0]} (proposal)",
                   resource=lab_order(facts.patient_id, code, display, reasons))
            for code, display in WORKUP_TESTS
        )
        suggestions.append(Suggestion("Order the calcinosis work-up (Ca, P, albumin, creatinine, eGFR, PTH, 25-OH D)", actions, key="workup"))

    if found:
        names = ", ".join(found)
        summary = f"Calcinosis cutis: treat the underlying cause ({names} detected)."
        if len(summary) > 139:
            summary = "Calcinosis cutis: treat the underlying cause (abnormal labs, renal or connective-tissue disease detected)."
        detail = ("Possible drivers of the calcification, to correct where they can be corrected:\n\n"
                  + bullet_list(evidence))
        if workup_missing:
            detail += "\n\nNo calcium, phosphate, albumin, renal function, PTH or vitamin D result is on file in the look-back window."
        elif labs_unknown:
            detail += "\n\nThe laboratory results could not be obtained, so laboratory causes were not assessed."
    else:
        summary = "Calcinosis cutis without a recent metabolic work-up: check Ca, P, albumin, renal function, PTH, vitamin D."
        detail = ("No calcium, phosphate or albumin result in the last 90 days, and no creatinine, eGFR, PTH or 25-OH "
                  "vitamin D in the last year, so a metabolic cause cannot be excluded.")
    if is_child(facts):
        detail += ("\n\nUnder 18: children's phosphate and calcium ranges are higher than adults', so only the "
                   "laboratory's own range or flag is used to call a value high.")
    if workup_missing:
        detail += "\n\nThe list of tests is an extrapolation (the article names none); nothing is ordered unless you accept it."
    finding = "+".join(name.replace(" ", "-") for name in found) if found else ""
    if workup_missing:
        finding = "+".join(x for x in (finding, "missing-workup") if x)
    return Recommendation(
        indicator="info",
        summary=summary,
        detail=detail,
        evidence=evidence or [{"missingWorkup": ", ".join(WORKUP_ANALYTES)}],
        suggestions=suggestions,
        selection_behavior="any",
        findings=cause_findings(found),
        finding=finding,
    )
