"""Procedures as the rules read them: what they are coded as, their status, and when they were done.

Whether one is recent enough to count is a clinical decision of the reader (dialysis: decision A14, in
cards/definitions/renal.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .fhir_values import parse_datetime
from .terminology import Match


@dataclass(frozen=True, slots=True)
class ProcedureFact:
    """A Procedure coded in a value set, with what tells whether it is current (decision A14 reads it)."""

    reference: str
    text: str | None
    status: str | None
    performed: datetime | None  # performedDateTime, else the end of performedPeriod, else its start
    match: Match
    resource: dict | None = field(default=None, repr=False, compare=False, hash=False)  # validated when read

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reference": self.reference, **self.match.as_evidence()}
        if self.text:
            out["text"] = self.text
        if self.status:
            out["status"] = self.status
        if self.performed is not None:
            out["performed"] = self.performed.isoformat()
        return out


def procedure_performed(procedure: dict) -> datetime | None:
    """When a Procedure was done: performedDateTime, else the end of performedPeriod (a session's end), else its
    start (an ongoing course)."""
    period = procedure.get("performedPeriod")
    period = period if isinstance(period, dict) else {}
    return (parse_datetime(procedure.get("performedDateTime")) or parse_datetime(period.get("end"))
            or parse_datetime(period.get("start")))
