"""parse_json (orjson, for speed) accepts, refuses and returns exactly what json.loads does."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.record.json_text import canonical_json, parse_json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def outcome(parse, raw):
    try:
        return "ok", parse(raw)
    except (ValueError, RecursionError) as error:
        return "error", type(error).__name__ if isinstance(error, RecursionError) else "ValueError"


def beyond_64_bits_as_float(value):
    """What json.loads gives, with integers beyond 64 bits as floats: the one documented difference."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return float(value)
    if isinstance(value, list):
        return [beyond_64_bits_as_float(v) for v in value]
    if isinstance(value, dict):
        return {k: beyond_64_bits_as_float(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(beyond_64_bits_as_float(v) for v in value)
    return value


def same(ours, standard):
    # NaN != NaN: compare through repr, which also tells 1 from 1.0 and -0.0 from 0.0.
    # (Where orjson refuses the text, e.g. for a NaN elsewhere in it, json.loads parses it all: exact integers.)
    return repr(ours) in (repr(standard), repr(beyond_64_bits_as_float(standard)))


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_any_json_value_parses_to_the_same_python_value(value):
    for raw in (json.dumps(value), json.dumps(value, ensure_ascii=False), json.dumps(value, indent=1)):
        assert same(outcome(parse_json, raw.encode()), outcome(json.loads, raw.encode()))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40) | st.text(alphabet='{}[]",:0123456789.eE+-tfnrulNaIy \\u', max_size=40).map(str.encode))
def test_any_bytes_are_accepted_or_refused_alike(raw):
    assert same(outcome(parse_json, raw), outcome(json.loads, raw))


@pytest.mark.parametrize("raw", [
    b'{"value": NaN}', b'{"value": -Infinity}',        # not JSON, but json.loads takes them: so do we
    b'{"big": 123456789012345678901234567890}',        # beyond 64 bits
    b'{"tiny": 1e400}',                                 # float overflow -> inf
    '{"text": "caf\u00e9"}'.encode("utf-16"),            # another encoding json.loads detects
    b'"\\ud800"',                                        # a lone surrogate
    b'{"a": 1, "a": 2}',                                 # duplicate keys: the last wins
    b"[" * 2000 + b"]" * 2000,                           # deeper than orjson's limit, within json's
    b"[" * 200000 + b"]" * 200000,                       # deeper than json's: RecursionError
    b"", b"{", b'{"a": 1} x', b"\xff\xfe\x00",
])
def test_edge_cases_match_the_standard_library(raw):
    assert same(outcome(parse_json, raw), outcome(json.loads, raw))
    if raw.startswith(b'{"value": NaN'):
        assert math.isnan(parse_json(raw)["value"])
    if raw.startswith(b'{"big"'):
        assert parse_json(raw) == {"big": 1.2345678901234568e29}, "the documented difference"


FINITE_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(FINITE_JSON_VALUES)
def test_responses_are_written_as_json_that_reads_back_the_same(value):
    from cds_service.record.json_text import dump_json

    written = dump_json(value)
    assert isinstance(written, bytes)
    assert same(json.loads(written.decode("utf-8")), value)


def test_what_orjson_cannot_write_is_written_by_the_standard_library():
    from cds_service.record.json_text import dump_json

    assert json.loads(dump_json({"big": 2**70, 1: "a"})) == {"big": 2**70, "1": "a"}
    assert dump_json({"x": float("inf")}) == b'{"x":null}', "valid JSON, where json.dumps wrote Infinity"
    assert dump_json({"text": "caf\u00e9 \u2265 2"}) == '{"text":"caf\u00e9 \u2265 2"}'.encode("utf-8")


@given(st.dictionaries(st.text(max_size=8), FINITE_JSON_VALUES, max_size=6))
def test_canonical_json_is_the_same_whatever_the_key_order_and_reads_back(value):
    reordered = dict(reversed(list(value.items())))
    assert canonical_json(value) == canonical_json(reordered)
    assert json.loads(canonical_json(value)) == value


def test_canonical_json_writes_what_json_cannot_as_its_str():
    from datetime import datetime, timezone
    from decimal import Decimal

    when = datetime(2026, 3, 14, 15, 9, tzinfo=timezone.utc)
    assert json.loads(canonical_json({"b": Decimal("1.50"), "a": when})) == {"a": when.isoformat(), "b": "1.50"}
    assert canonical_json({"n": 2**70}) == b'{"n":1180591620717411303424}'
    assert canonical_json({1: "x"}) != canonical_json({2: "x"})
