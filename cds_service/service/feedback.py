"""The feedback endpoint (CDS Hooks 2.0 §Feedback): validate, then store (records.py) and log each entry.

Feedback carries no patient data, and none is logged: the card's uuid, the outcome, whether the card is known and the
entry new, and the override reason's code. The rules a card carried are in the database, with the card.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from .errors import BadRequest

log = logging.getLogger("cds_service.feedback")
OUTCOMES = ("accepted", "overridden")


def _timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def validate_feedback(body: Any) -> list[dict]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    entries = body.get("feedback")
    if not isinstance(entries, list) or not entries:
        raise BadRequest("feedback must be a non-empty array")
    for i, entry in enumerate(entries):
        where = f"feedback[{i}]"
        if not isinstance(entry, dict):
            raise BadRequest(f"{where} must be an object")
        if not isinstance(entry.get("card"), str) or not entry["card"]:
            raise BadRequest(f"{where}.card must be the card's uuid")
        if entry.get("outcome") not in OUTCOMES:
            raise BadRequest(f"{where}.outcome must be accepted or overridden")
        if not _timestamp(entry.get("outcomeTimestamp")):
            raise BadRequest(f"{where}.outcomeTimestamp must be an RFC 3339 date-time")
        accepted = entry.get("acceptedSuggestions")
        if entry["outcome"] == "accepted":
            if not isinstance(accepted, list) or not accepted:
                raise BadRequest(f"{where}.acceptedSuggestions is required when the outcome is accepted")
        if accepted is not None:
            if not isinstance(accepted, list) or not all(isinstance(s, dict) and isinstance(s.get("id"), str) for s in accepted):
                raise BadRequest(f"{where}.acceptedSuggestions must be an array of {{\"id\": suggestion uuid}}")
        reason = entry.get("overrideReason")
        if reason is not None:
            if not isinstance(reason, dict):
                raise BadRequest(f"{where}.overrideReason must be an object")
            coding = reason.get("reason")
            if coding is not None and not (
                isinstance(coding, dict) and isinstance(coding.get("code"), str) and isinstance(coding.get("system"), str)
            ):
                raise BadRequest(f"{where}.overrideReason.reason must be a Coding with system and code")
            if reason.get("userComment") is not None and not isinstance(reason["userComment"], str):
                raise BadRequest(f"{where}.overrideReason.userComment must be a string")
    return entries


def log_feedback(service_id: str, stored: list[dict]) -> None:
    """One line per entry: card uuid, outcome, whether the card is known and the entry new, the reason's code only
    (a free-text userComment may name the patient, so it is never logged)."""
    for entry in stored:
        log.info("feedback", extra={"service": service_id, **entry})
