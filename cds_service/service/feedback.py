"""The feedback endpoint (CDS Hooks 2.0 §Feedback): validate, then store (records.py) and log each entry.

Feedback carries no patient data, and none is logged: the card's uuid, the outcome, whether the card is known and the
entry new, and the override reason's code. The rules a card carried are in the database, with the card.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from .errors import BadRequest

log = logging.getLogger("cds_service.feedback")
OUTCOMES = ("accepted", "overridden")
# What is logged is bounded and has a shape (issue 16): ids shaped like the uuids this service issues for cards and
# suggestions, a FHIR code and a URI for the override reason, and a bounded count of each.
MAX_ENTRIES = 100
MAX_SUGGESTIONS = 50
MAX_CODE_CHARS = 64
MAX_SYSTEM_CHARS = 256
MAX_COMMENT_CHARS = 4000
MAX_DISPLAY_CHARS = 500  # an override reason's display (stored for the analytics)
_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_CODE = re.compile(r"^[^\s]+( [^\s]+)*$")  # FHIR's code type
_URI = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


def _timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _text(value: str) -> bool:
    """Writable as UTF-8: JSON lets a string carry a lone surrogate (\\udc80), which no database column can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _uuid(value: Any) -> bool:
    """An id shaped like the uuids this service issues, leniently: letters, digits, '.', '_', ':' and '-', 1-64."""
    return isinstance(value, str) and _ID.match(value) is not None


def validate_feedback(body: Any) -> list[dict]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    entries = body.get("feedback")
    if not isinstance(entries, list) or not entries:
        raise BadRequest("feedback must be a non-empty array")
    if len(entries) > MAX_ENTRIES:
        raise BadRequest(f"feedback may have at most {MAX_ENTRIES} entries")
    for i, entry in enumerate(entries):
        where = f"feedback[{i}]"
        if not isinstance(entry, dict):
            raise BadRequest(f"{where} must be an object")
        if not _uuid(entry.get("card")):
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
            if not isinstance(accepted, list) or not all(isinstance(s, dict) and _uuid(s.get("id")) for s in accepted):
                raise BadRequest(f"{where}.acceptedSuggestions must be an array of {{\"id\": suggestion uuid}}")
            if len(accepted) > MAX_SUGGESTIONS:
                raise BadRequest(f"{where}.acceptedSuggestions may have at most {MAX_SUGGESTIONS} entries")
        reason = entry.get("overrideReason")
        if reason is not None:
            if not isinstance(reason, dict):
                raise BadRequest(f"{where}.overrideReason must be an object")
            coding = reason.get("reason")
            if coding is not None and not (
                isinstance(coding, dict) and isinstance(coding.get("code"), str) and isinstance(coding.get("system"), str)
            ):
                raise BadRequest(f"{where}.overrideReason.reason must be a Coding with system and code")
            if coding is not None and not (len(coding["code"]) <= MAX_CODE_CHARS and _CODE.match(coding["code"])
                                           and _text(coding["code"])):
                raise BadRequest(f"{where}.overrideReason.reason.code must be a code of at most {MAX_CODE_CHARS} "
                                 "characters, without leading, trailing or repeated whitespace, nor lone surrogates")
            if coding is not None and not (len(coding["system"]) <= MAX_SYSTEM_CHARS and _URI.match(coding["system"])):
                raise BadRequest(f"{where}.overrideReason.reason.system must be a URI of at most {MAX_SYSTEM_CHARS} "
                                 "characters")
            display = coding.get("display") if coding is not None else None
            if display is not None and not (isinstance(display, str) and len(display) <= MAX_DISPLAY_CHARS
                                            and _text(display)):
                raise BadRequest(f"{where}.overrideReason.reason.display must be a string of at most "
                                 f"{MAX_DISPLAY_CHARS} characters, without lone surrogates")
            comment = reason.get("userComment")
            if comment is not None and not (isinstance(comment, str) and len(comment) <= MAX_COMMENT_CHARS
                                            and _text(comment)):
                raise BadRequest(f"{where}.overrideReason.userComment must be a string of at most "
                                 f"{MAX_COMMENT_CHARS} characters, without lone surrogates")
    return entries


def log_feedback(service_id: str, stored: list[dict]) -> None:
    """One line per entry: card uuid, outcome, whether the card is known and the entry new, the reason's code only
    (a free-text userComment may name the patient, so it is never logged)."""
    for entry in stored:
        log.info("feedback", extra={"service": service_id, **entry})
