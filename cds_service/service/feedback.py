"""The feedback endpoint (CDS Hooks 2.0 §Feedback): validate, then log outcomes by card uuid and rule id.

Feedback carries no patient data, and none is logged: the card's uuid, the outcome, the accepted suggestion uuids and
the override reason's code. The rule ids come from the card uuids this process has issued recently, when it still
knows them (a bounded memory: feedback for older cards is logged by uuid only).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any, Iterable

from cds_service.engine.card_model import Card

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
_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_CODE = re.compile(r"^[^\s]+( [^\s]+)*$")  # FHIR's code type
_URI = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


class IssuedCards:
    """card uuid -> rule ids, for the most recent cards issued by this process."""

    def __init__(self, capacity: int = 50_000):
        self._capacity = capacity
        self._cards: OrderedDict[str, list[str]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, cards: Iterable[Card]) -> None:
        with self._lock:
            for card in cards:
                self._cards[card.uuid] = card.rules
                self._cards.move_to_end(card.uuid)
            while len(self._cards) > self._capacity:
                self._cards.popitem(last=False)

    def rules_of(self, card_uuid: str) -> list[str] | None:
        with self._lock:
            return self._cards.get(card_uuid)


def _timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
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
            if coding is not None and not (len(coding["code"]) <= MAX_CODE_CHARS and _CODE.match(coding["code"])):
                raise BadRequest(f"{where}.overrideReason.reason.code must be a code of at most {MAX_CODE_CHARS} "
                                 "characters, without leading, trailing or repeated whitespace")
            if coding is not None and not (len(coding["system"]) <= MAX_SYSTEM_CHARS and _URI.match(coding["system"])):
                raise BadRequest(f"{where}.overrideReason.reason.system must be a URI of at most {MAX_SYSTEM_CHARS} "
                                 "characters")
            comment = reason.get("userComment")
            if comment is not None and not (isinstance(comment, str) and len(comment) <= MAX_COMMENT_CHARS):
                raise BadRequest(f"{where}.overrideReason.userComment must be a string of at most "
                                 f"{MAX_COMMENT_CHARS} characters")
    return entries


def record_feedback(service_id: str, entries: list[dict], issued: IssuedCards) -> None:
    for entry in entries:
        reason = (entry.get("overrideReason") or {}).get("reason") or {}
        log.info(
            "feedback",
            extra={
                "service": service_id,
                "card": entry["card"],
                "rules": issued.rules_of(entry["card"]) or "unknown (card not issued by this process recently)",
                "outcome": entry["outcome"],
                "acceptedSuggestions": [s["id"] for s in entry.get("acceptedSuggestions") or []],
                # The reason's code only: a free-text userComment may name the patient, so it is never logged.
                "overrideReason": reason.get("code"),
            },
        )
