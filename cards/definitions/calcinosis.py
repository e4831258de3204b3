"""The calcinosis itself: the scope gate G0 (decisions A1, A17, A18; read in scope.py), its kinds, and words
describing it.

Used by: R02, R08a, R12, R15, R16, R21.
"""

from __future__ import annotations

from cds_service.engine.authoring import Finding, PatientFacts, codeable_concepts, definition

from .labs import assess_high
from .minerals import calcium_measure
from .scope import GATE_VALUE_SETS, calciphylaxis, calcinosis, gate_conditions, scope, tumoral_calcinosis

__all__ = ["GATE_VALUE_SETS", "calcinosis", "calciphylaxis", "tumoral_calcinosis", "gate_conditions", "scope",
           "calcinosis_described_as", "dystrophic_context"]


@definition
def calcinosis_described_as(facts: PatientFacts, value_set: str) -> Finding:
    """A word of `value_set` (e.g. "ulcerated", "painful") in the text of the calcinosis Condition itself."""
    vs = facts.terms.value_set(value_set)
    evidence = []
    for condition in gate_conditions(facts):
        texts = [condition.code.get("text")] + [c.get("display") for c in codeable_concepts(condition.code.get("coding"))]
        for text in texts:
            if isinstance(text, str) and (word := vs.match_text(text)):
                evidence.append({"reference": condition.reference, "text": text, "valueSet": value_set,
                                 "matchedBy": "text", "matched": word})
                break
    return Finding(bool(evidence), tuple(evidence))


@definition
def dystrophic_context(facts: PatientFacts) -> Finding:
    """Dystrophic calcinosis is likely (R02, R08a): the Condition says dystrophic, or a connective-tissue disease is
    present, or the latest calcium and phosphate were both measured and not high (A3)."""
    named = calcinosis_described_as(facts, "dystrophic-calcinosis")
    if named:
        return named
    ctd = facts.has_condition("connective-tissue-disease")
    if ctd:
        return ctd
    calcium, phosphate = calcium_measure(facts), facts.latest_lab("phosphate")
    if calcium is None or phosphate is None:
        return Finding(False)
    ca, p = assess_high(calcium, facts.age_years), assess_high(phosphate, facts.age_years)
    if ca.high is False and p.high is False:
        return Finding(True, (
            {**calcium.evidence(), "assessment": ca.basis},
            {**phosphate.evidence(), "assessment": p.basis},
        ))
    return Finding(False)
