"""Parse the JSON of request bodies and FHIR server answers with orjson, as the standard library would.

Parsing is the largest single cost of a call (a typical patient's 284 KiB prefetch: ~2 ms with `json`, ~1 ms with
orjson; docs/performance.md). orjson accepts strict RFC 8259 UTF-8 JSON only; whatever it refuses (NaN, other
encodings, lone surrogates, nesting beyond 1,024 levels, or text that is not JSON at all) is handed to the standard
library, so the service accepts and refuses exactly what it did with `json.loads`, with the same errors (ValueError,
RecursionError) and the same values, with one difference: an integer beyond 64 bits becomes a float (17 significant
digits), as a FHIR decimal already does. No FHIR integer type goes beyond 32 bits (tests/test_json_text.py).
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def parse_json(raw: bytes | bytearray | memoryview | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(bytes(raw) if isinstance(raw, (bytearray, memoryview)) else raw)


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON for responses (orjson: ~10x faster than json.dumps for a card response). What orjson cannot
    write (an integer beyond 64 bits, a key that is not a string) is written by the standard library instead. A
    non-finite float is written as null (valid JSON; json.dumps wrote Infinity, which is not); the service's cards
    carry none."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate a caller sent (e.g. in an id a report quotes): escaped, as JSON allows
        return json.dumps(value, separators=(",", ":")).encode("utf-8")


def canonical_json(value: Any) -> bytes:
    """The same bytes for equal values whatever the order of their keys (sorted), for hashing and cache keys;
    anything orjson cannot write natively (a Decimal, an integer beyond 64 bits) is written as its str()."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"), ensure_ascii=False).encode()
