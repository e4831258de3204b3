"""What the patient's history shows: recurrent infections (decision A8) and recent specialist care.

Used by: R15 (recurrent infection), and by every referral through cards/referrals.py (recent specialist care).
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.engine.authoring import Finding, PatientFacts, condition_evidence, definition

RECENT_CARE_DAYS = 365  # a referral or specialist encounter this recent means "already referred" (R17, §3.15)
RECURRENT_INFECTION_DAYS = 365  # A8: two or more skin infections in the past 12 months = recurrent


@definition
def recurrent(facts: PatientFacts, value_set: str, *, episodes: int = 2, days: int = RECURRENT_INFECTION_DAYS) -> Finding:
    """A8: `episodes` or more Conditions of `value_set` (active or resolved, never refuted or entered in error)
    with onset (else recorded date) in the past `days`. Conditions on the same day count as one episode; an active
    one without any date is a current episode."""
    since = facts.now - timedelta(days=days)
    days_seen: set = set()
    evidence = []
    for condition, match in facts.conditions_in(value_set, active_only=False):
        when = condition.when
        if when is None:
            if not condition.active:
                continue
            key = ("undated", condition.reference)
        elif since <= when <= facts.now:
            key = when.date()
        else:
            continue
        if key in days_seen:
            continue
        days_seen.add(key)
        item = condition_evidence(condition, match)
        if when is not None:
            item["onset"] = when.date().isoformat()
        evidence.append(item)
    return Finding(len(days_seen) >= episodes, tuple(evidence) if len(days_seen) >= episodes else ())
