"""Conditions as the rules read them: active or not (decision A1), when, and what they are coded as.

A refuted or entered-in-error Condition does not count at all. A Condition without a clinicalStatus is active unless
it has abated in the past.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .fhir_values import codeable_concepts, concept_text, parse_datetime, resource_label
from .terminology import Match

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})


def status_code(concept: Any) -> str | None:
    for item in codeable_concepts(concept):
        for coding in codeable_concepts(item.get("coding")):
            if isinstance(coding.get("code"), str):
                return coding["code"]
    return None


@dataclass(frozen=True, slots=True)
class ConditionFact:
    reference: str
    code: dict  # the CodeableConcept
    active: bool
    onset: datetime | None
    recorded: datetime | None
    severity: dict | None
    body_site: list[dict]
    resource: dict = field(repr=False, compare=False, hash=False)
    # verificationStatus code (unconfirmed, provisional, differential, confirmed...); refuted ones are never read.
    verification: str | None = None

    @property
    def text(self) -> str | None:
        return concept_text(self.code)

    @property
    def when(self) -> datetime | None:
        return self.onset or self.recorded


def read_condition(resource: dict, now: datetime) -> ConditionFact | None:
    """A ConditionFact, or None when the condition does not count at all (refuted, entered in error)."""
    verification = status_code(resource.get("verificationStatus"))
    if verification in EXCLUDED_VERIFICATION:
        return None
    clinical = status_code(resource.get("clinicalStatus"))
    abatement = parse_datetime(resource.get("abatementDateTime")) or parse_datetime(
        (resource.get("abatementPeriod") or {}).get("end") if isinstance(resource.get("abatementPeriod"), dict) else None
    )
    has_abatement = abatement is not None or any(
        resource.get(k) not in (None, False) for k in ("abatementAge", "abatementRange", "abatementString", "abatementBoolean")
    )
    if clinical is not None:
        active = clinical in ACTIVE_CLINICAL
    else:
        # No clinicalStatus: active unless it has abated in the past (A1).
        active = not has_abatement or (abatement is not None and abatement > now)
    onset = parse_datetime(resource.get("onsetDateTime")) or parse_datetime(
        (resource.get("onsetPeriod") or {}).get("start") if isinstance(resource.get("onsetPeriod"), dict) else None
    )
    return ConditionFact(
        reference=resource_label(resource),
        code=resource.get("code") if isinstance(resource.get("code"), dict) else {},
        active=active,
        onset=onset,
        recorded=parse_datetime(resource.get("recordedDate")),
        severity=resource.get("severity") if isinstance(resource.get("severity"), dict) else None,
        body_site=codeable_concepts(resource.get("bodySite")),
        resource=resource,
        verification=verification,
    )


def condition_evidence(condition: ConditionFact, match: Match) -> dict:
    out = {"reference": condition.reference, **match.as_evidence()}
    if condition.text:
        out["text"] = condition.text
    # A card names a condition with its date (decision A20): its onset, else when it was recorded.
    if condition.onset is not None:
        out["onset"] = condition.onset.isoformat()
    elif condition.recorded is not None:
        out["recorded"] = condition.recorded.isoformat()
    return out
