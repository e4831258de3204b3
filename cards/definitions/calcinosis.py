"""The calcinosis itself: the scope gate G0 (decision A1), its kinds, and words describing it.

Used by: every rule through G0, and directly by R01, R02, R03, R04, R08a, R08b, R08c, R11, R12, R14, R15, R16, R17, R21, R22.
"""

from __future__ import annotations

from cds_service.engine.authoring import ConditionFact, Finding, PatientFacts, codeable_concepts, condition_evidence, definition

from .minerals import calcium_measure
from .labs import assess_high

# The value sets of the conditions that put a patient in scope (G0), in the order their evidence is listed.
GATE_VALUE_SETS = ("calcinosis-cutis", "calciphylaxis", "tumoral-calcinosis")


@definition
def calcinosis(facts: PatientFacts) -> Finding:
    """G0 (A1): an active calcinosis cutis, calciphylaxis or tumoral calcinosis Condition."""
    evidence = []
    for value_set in GATE_VALUE_SETS:
        evidence.extend(condition_evidence(c, m) for c, m in facts.conditions_in(value_set))
    return Finding(bool(evidence), tuple(evidence))


@definition
def gate_conditions(facts: PatientFacts) -> tuple[ConditionFact, ...]:
    """The active Conditions that pass G0, each once."""
    seen, out = set(), []
    for value_set in GATE_VALUE_SETS:
        for condition, _ in facts.conditions_in(value_set):
            if condition.reference not in seen:
                seen.add(condition.reference)
                out.append(condition)
    return tuple(out)


@definition
def calciphylaxis(facts: PatientFacts) -> Finding:
    return facts.has_condition("calciphylaxis")


@definition
def tumoral_calcinosis(facts: PatientFacts) -> Finding:
    return facts.has_condition("tumoral-calcinosis")


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
