"""What a recommendation found, for remembering a clinician's dismissal (decision A22) and for not repeating an
order card at signing (A21). The engine keys each card by these; the service remembers them.

- R01: one finding, ranked by how many drivers of calcification were found (a new driver is worse than the set the
  clinician dismissed; the missing work-up alone ranks 0).
- R17: one finding per specialty; nephrology ranked by renal severity (a referral dismissed at eGFR 55 returns at
  eGFR 25), and each tied to its own referral, so a dismissed specialty is not suggested again beside a new one.
- R20: the rule's single finding (the engine's default).
- The order rules (R05, R06, R08b, R08c, R22a): the draft orders they judge.
"""

from __future__ import annotations

from typing import Iterable

from cds_service.engine.authoring import FindingKey, MedicationFact, PatientFacts, Suggestion

from .definitions import dialysis, renal_insufficiency, severe_renal_insufficiency

REFERRAL_PREFIX = "referral-"


def renal_severity(facts: PatientFacts) -> int:
    """0 none, 1 renal insufficiency (eGFR < 60, CKD 3), 2 severe (eGFR < 30, CKD 4-5), 3 dialysis (decision A4)."""
    if dialysis(facts):
        return 3
    if severe_renal_insufficiency(facts):
        return 2
    return 1 if renal_insufficiency(facts) else 0


def cause_findings(drivers: Iterable[str]) -> tuple[FindingKey, ...]:
    return (FindingKey("underlying-cause", len(list(drivers))),)


def specialty_findings(facts: PatientFacts, suggestions: Iterable[Suggestion]) -> tuple[FindingKey, ...]:
    findings = []
    for suggestion in suggestions:
        specialty = (suggestion.key or "").removeprefix(REFERRAL_PREFIX)
        rank = renal_severity(facts) if specialty == "nephrology" else 0
        findings.append(FindingKey(specialty, rank, suggestion.key))
    return tuple(findings)


def judged_orders(items: Iterable) -> tuple[MedicationFact, ...]:
    """The draft orders among a rule's matches ((fact, match, ...) tuples from drafts_in, or facts)."""
    facts = (item[0] if isinstance(item, tuple) else item for item in items)
    return tuple(f for f in facts if f.draft)
