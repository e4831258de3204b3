"""Dates relative to an evaluation time, so that fixtures and example records never go stale.

In any string of a fixture, `${now}` is the evaluation time and `${now-90d}` / `${now+2h}` / `${now-40y}` are offsets
(units: m minutes, h hours, d days, w weeks, y years of 365.25 days). `${date:now-40y}` gives a FHIR date
(YYYY-MM-DD) instead of a dateTime. Anything else is left as it is.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

_TOKEN = re.compile(r"\$\{(date:)?now((?:[+-]\d+[mhdwy])*)\}")
_OFFSET = re.compile(r"([+-])(\d+)([mhdwy])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1),
          "y": timedelta(days=365.25)}


def _replace(match: re.Match, now: datetime) -> str:
    when = now
    for sign, amount, unit in _OFFSET.findall(match.group(2)):
        delta = _UNITS[unit] * int(amount)
        when = when + delta if sign == "+" else when - delta
    return when.date().isoformat() if match.group(1) else when.isoformat(timespec="seconds")


def resolve(value: Any, now: datetime) -> Any:
    """A copy of `value` with every relative-date token replaced."""
    if isinstance(value, str):
        return _TOKEN.sub(lambda m: _replace(m, now), value) if "${" in value else value
    if isinstance(value, list):
        return [resolve(item, now) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, now) for key, item in value.items()}
    return value


def has_tokens(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_TOKEN.search(value))
    if isinstance(value, list):
        return any(has_tokens(item) for item in value)
    if isinstance(value, dict):
        return any(has_tokens(item) for item in value.values())
    return False
