"""Tolerant readers for FHIR values: dates, references, and fields that real clients send in the wrong shape."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timezone
from typing import Any, Collection

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")
_fromisoformat = datetime.fromisoformat


def parse_datetime(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware datetime (UTC if no zone); partial dates become their first day."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) > 10:  # longer than any partial date: a dateTime or an instant, the common case
        if value[10] == "T":
            # The full dateTime ("2024-05-01T10:00:00+02:00", "...Z"): read as it is. With a "T" after the date,
            # a "Z" can only be the zone, which Python 3.11 reads as _parse_iso's "+00:00" does; anything this
            # refuses is read the tolerant way below, so no value reads otherwise than before.
            try:
                parsed = _fromisoformat(value)
            except ValueError:
                return _parse_iso(value)
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
        return _parse_iso(value)
    match = _PARTIAL_DATE.match(value)
    if match:
        year, month, day = match.groups()
        try:
            return datetime(int(year), int(month or 1), int(day or 1), tzinfo=timezone.utc)
        except ValueError:
            return None
    return _parse_iso(value)


def _parse_iso(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def finite_number(value: Any) -> float | None:
    """A JSON number as a float, or None for anything else: booleans, and numbers no float holds (a 400-digit
    integer would raise OverflowError; 1e400 reads as infinity, NaN is no number at all)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def code_in(value: Any, codes: Collection[str]) -> bool:
    """`value in codes` for a value read from raw JSON: a code is a string, and anything else is in no set of codes
    (an object or an array could not even be looked up in a set, and would fail the call)."""
    return isinstance(value, str) and value in codes


def parse_date(value: Any) -> date | None:
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


def as_list(value: Any) -> list:
    """A FHIR array that a sloppy client may have sent as a single object."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def codeable_concepts(value: Any) -> list[dict]:
    return [c for c in as_list(value) if isinstance(c, dict)]


def concept_text(concept: Any) -> str | None:
    for item in codeable_concepts(concept):
        if isinstance(item.get("text"), str) and item["text"].strip():
            return item["text"]
        for coding in codeable_concepts(item.get("coding")):
            if isinstance(coding.get("display"), str) and coding["display"].strip():
                return coding["display"]
    return None


def reference_of(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        return value["reference"]
    return None


def prohibits(resource: dict) -> bool:
    """`doNotPerform: true` (MedicationRequest, ServiceRequest): the resource forbids the act. It is a modifier
    element: such a request neither orders nor records a medication or a referral, and must never be read as one."""
    return resource.get("doNotPerform") is True


def resource_label(resource: dict) -> str:
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid}" if isinstance(rid, str) else str(resource.get("resourceType"))

