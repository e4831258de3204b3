"""parse_datetime reads a full dateTime at once (datetime.fromisoformat, which reads "Z" since Python 3.11) and keeps
its tolerant reading for everything else: every value reads exactly as the tolerant reader alone reads it."""

from __future__ import annotations

import random
import re
from datetime import datetime, timezone

import pytest

from cds_service.record.fhir_values import parse_datetime
from cds_service.record.labs import observation_effective

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


def tolerant(value):
    """parse_datetime as it was before the fast path (the reference)."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) <= 10 and (match := _PARTIAL_DATE.match(value)):
        year, month, day = match.groups()
        try:
            return datetime(int(year), int(month or 1), int(day or 1), tzinfo=timezone.utc)
        except ValueError:
            return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a == b and a.isoformat() == b.isoformat())


EXAMPLES = [
    "2024-05-01T10:00:00+02:00", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.123Z", "2024-05-01T10:00:00.123456+00:00",
    "2024-05-01T10Z", "2024-05-01T10:00", "2024-05-01T10:00:00", "2024-05-01T24:00:00Z", "2024-05-01T10:00:00-00:00",
    "2024-05-01T10:00:00+0200", "2024-05-01T10:00:00z", "2024-05-01Z10:00:00", "2024-05-01Z", "2024-05-01 10:00:00Z",
    "2024-W18-3T10:00:00Z", "20240501T100000Z", "2024-05-01T10:00:00ZZ", "2024-05-01T10:00:00+02:00Z", "2024-02-30T10:00Z",
    "2024-05", "2024", "2024-05-01", "2024-13", "24-05-01", "yesterday", "", None, 20240501, ["2024"],
]


@pytest.mark.parametrize("value", EXAMPLES)
def test_each_example_reads_as_the_tolerant_reader_reads_it(value):
    assert same(parse_datetime(value), tolerant(value))
    assert same(observation_effective({"effectiveDateTime": value}), tolerant(value))


def test_mutated_datetimes_read_as_the_tolerant_reader_reads_them():
    rng = random.Random(311)
    alphabet = "0123456789-:T Z+.,zW"
    for _ in range(20000):
        text = list(rng.choice(EXAMPLES[:16]))
        for _ in range(rng.randint(0, 3)):
            position = rng.randrange(len(text))
            operation = rng.random()
            if operation < 0.4:
                text[position] = rng.choice(alphabet)
            elif operation < 0.7:
                text.insert(position, rng.choice(alphabet))
            else:
                del text[position]
        value = "".join(text)
        assert same(parse_datetime(value), tolerant(value)), value


def test_an_unreadable_effective_datetime_falls_back_to_the_next_date_as_before():
    resource = {"effectiveDateTime": "2024-05-01T99:00:00Z", "effectivePeriod": {"start": "2024-04"},
                "issued": "2024-06-01T00:00:00Z"}
    assert observation_effective(resource) == datetime(2024, 4, 1, tzinfo=timezone.utc)
