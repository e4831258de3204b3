"""G0, the scope gate (decision A1): every rule needs an active calcinosis cutis, calciphylaxis or tumoral calcinosis.

"Active": clinicalStatus active, recurrence or relapse, or no clinicalStatus and no abatement in the past; never a
refuted or entered-in-error Condition. Recognised by ICD-10-CM L94.2, SNOMED CT 6595006, 17141001, 237900002, or the
words "calcinosis", "calciphylaxis", "calcification of skin" (and "tumoral calcinosis"). E83.59 alone is too broad.
The words are read as a clinician reads them (A18, definitions/scope.py): negated mentions do not count, uncertain
ones and provisional or differential Conditions hold the gate provisionally; the answer says which kinds of
calcinosis hold it (A17: calciphylaxis alone) and whether each is confirmed.
"""

from cds_service.engine.authoring import PatientFacts, Scope, gate

from ..definitions import scope


@gate(
    id="G0",
    title="Scope: an active calcinosis cutis, calciphylaxis or tumoral calcinosis",
    trigger=(
        "An active Condition coded ICD-10-CM L94.2 or SNOMED CT 6595006, 17141001 or 237900002, or whose text says "
        "calcinosis, calciphylaxis or calcification of skin (whole words; in a coding's display only when its code is "
        "not another concept's). Not: a negated mention (\"without calcinosis\"), the word inside another disorder's "
        "name (CREST syndrome), refuted and entered-in-error Conditions. Provisional (no medication or diet proposed): "
        "an uncertain mention (\"r/o calciphylaxis\") or a provisional or differential Condition"
    ),
)
def scope_gate(facts: PatientFacts) -> Scope:
    return scope(facts)
