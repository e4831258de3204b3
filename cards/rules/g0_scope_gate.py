"""G0, the scope gate (decision A1): every rule needs an active calcinosis cutis, calciphylaxis or tumoral calcinosis.

"Active": clinicalStatus active, recurrence or relapse, or no clinicalStatus and no abatement in the past; never a
refuted or entered-in-error Condition. Recognised by ICD-10-CM L94.2, SNOMED CT 6595006, 17141001, 237900002, or the
words "calcinosis", "calciphylaxis", "calcification of skin" (and "tumoral calcinosis"). E83.59 alone is too broad.
"""

from cds_service.engine.authoring import Finding, PatientFacts, gate

from ..definitions import calcinosis


@gate(
    id="G0",
    title="Scope: an active calcinosis cutis, calciphylaxis or tumoral calcinosis",
    trigger=(
        "An active Condition coded ICD-10-CM L94.2 or SNOMED CT 6595006, 17141001 or 237900002, or whose text says "
        "calcinosis, calciphylaxis or calcification of skin; refuted and entered-in-error Conditions never count"
    ),
)
def scope_gate(facts: PatientFacts) -> Finding:
    return calcinosis(facts)
