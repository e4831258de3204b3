"""The request-body depth check on the text gives the same answer as walking the parsed body."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from cds_service.json_depth import depth_ok, text_depth_ok, walk_depth_ok

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(
    alphabet=st.sampled_from('ab[]{}"\\:, \n\u00e9\U0001f600'), max_size=8)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(alphabet=st.sampled_from('k[]{}"\\'), max_size=4), inner, max_size=3), max_leaves=30)


def nested(depth: int, leaf) -> object:
    value = leaf
    for level in range(depth - 1):
        value = [value] if level % 2 else {"a[": value}
    return value


@settings(max_examples=400, deadline=None)
@given(values, st.integers(min_value=1, max_value=8), st.booleans(), st.booleans())
def test_text_and_walk_agree(value, limit, indent, ascii_only):
    raw = json.dumps(value, indent=2 if indent else None, ensure_ascii=ascii_only).encode()
    assert text_depth_ok(raw, limit) in (walk_depth_ok(json.loads(raw), limit), None)
    assert depth_ok(raw, json.loads(raw), limit) == walk_depth_ok(json.loads(raw), limit)


def test_text_and_walk_agree_around_the_limit():
    for depth in range(1, 70):
        for leaf in (1, "x]]", [], {}, [1], {"x": None}, "\\\"[", ""):
            raw = json.dumps(nested(depth, leaf)).encode()
            for limit in (1, 2, 63, 64, 65):
                assert depth_ok(raw, json.loads(raw), limit) == walk_depth_ok(json.loads(raw), limit), (depth, leaf)


def test_other_encodings_fall_back_to_the_walk():
    value = nested(70, 1)
    raw = json.dumps(value).encode("utf-16")
    assert depth_ok(raw, value, 64) is False
    assert depth_ok(json.dumps({"a": [1]}).encode("utf-16"), {"a": [1]}, 64) is True


def test_the_service_rejects_a_body_one_level_too_deep_and_accepts_the_limit(client):
    url = "/cds-services/calcinosis-cutis-patient-view"
    too_deep = client.post(url, data=json.dumps(nested(65, 1)), content_type="application/json")
    assert too_deep.status_code == 400 and "nested deeper" in too_deep.get_json()["error"]
    at_limit = client.post(url, data=json.dumps(nested(63, 1)), content_type="application/json")
    assert "nested deeper" not in (at_limit.get_json() or {}).get("error", "")
