"""A service call's body scanned (record/request_scan.py): the Observations no rule can read are never built, and the
call answers exactly as it did from the body parsed whole."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

import cards
from cds_service.record.json_text import parse_json
from cds_service.record.labs import UNPARSED, lab_windows
from cds_service.record.request_scan import parse_call_body
from cds_service.record.selection import ObservationRoles
from cds_service.service import service_call
from cds_service.service.service_call import handle
from cds_service.service.settings import Settings

from .conftest import NOW, PATIENT_VIEW, fixed_clock, load_scenario, minimal_request, scenario_names, scenario_request

TERMS = cards.knowledge().terminology
READ = TERMS.read_loinc_codes
LOINC = "http://loinc.org"
SETTINGS = Settings(auth="off", fhir_allow_http=True, log_level="WARNING")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def scan(body: bytes | dict, now=NOW, keys=None):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_call_body(raw, READ, ObservationRoles(TERMS, lab_windows(TERMS, now)), keys=keys)


def answer(service_id: str, body, now=NOW) -> str:
    """The response as JSON text, its random uuids (A20) made one."""
    service = service_call.services()[service_id]
    result = handle(service, body, settings=SETTINGS, clock=fixed_clock(now))
    return _UUID.sub("uuid", json.dumps(result.response, sort_keys=True))


def observation(oid: str, code: str | None, date: str | None = None, **more) -> dict:
    resource = {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p1"}}
    if code is not None:
        resource["code"] = {"coding": [{"system": LOINC, "code": code}]}
    if date is not None:
        resource["effectiveDateTime"] = date
    resource.update(more)
    return resource


def request_with_labs(*resources: dict) -> dict:
    body = minimal_request()
    body["prefetch"]["observations"] = {"resourceType": "Bundle", "type": "searchset",
                                "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(resources)]}
    return body


def materialized(body: dict) -> dict:
    """The body with each lab result the scan kept unparsed (a stub holding its entry's text) parsed, as the lab
    panel parses it when a rule reaches it."""
    for value in body.get("prefetch", {}).values():
        if isinstance(value, dict) and isinstance(value.get("entry"), list):
            value["entry"] = [parse_json(memoryview(entry["resource"][UNPARSED]))
                              if isinstance(entry.get("resource"), dict) and UNPARSED in entry["resource"] else entry
                              for entry in value["entry"]]
    return body


def kept_ids(body: dict) -> list:
    return [entry["resource"].get("id") for entry in body["prefetch"]["observations"]["entry"]
            if isinstance(entry.get("resource"), dict)]


CALCINOSIS = {
    "resourceType": "Condition", "id": "calcinosis", "subject": {"reference": "Patient/p1"},
    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                   "code": "active"}]},
    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L94.2"}]}}
RECENT = (NOW - timedelta(days=10)).isoformat()
OLD = (NOW - timedelta(days=3 * 365)).isoformat()


# --- what is left out, and what is not -----------------------------------------------------------------------------

def test_an_observation_no_rule_reads_is_left_out_and_a_read_one_kept_with_its_codes_and_date():
    heart_rate = observation("hr", "8867-4", RECENT, valueQuantity={"value": 70, "unit": "/min"})
    phosphate = observation("po4", "2777-1", RECENT, valueQuantity={"value": 5.1, "unit": "mg/dL"})
    body, classified = scan(request_with_labs(heart_rate, phosphate))
    assert kept_ids(body) == ["po4"]
    stub = body["prefetch"]["observations"]["entry"][0]["resource"]
    # A lab result is kept unparsed: what gathering and the selection read of it, and its text for the panel.
    assert stub.keys() == {"resourceType", "id", "subject", UNPARSED}
    assert stub["subject"] == phosphate["subject"]
    assert parse_json(memoryview(stub[UNPARSED]))["resource"] == phosphate  # every member, when parsed
    assert classified[id(stub)] == (stub, (("2777-1",), ()), NOW - timedelta(days=10))


def stubs(body: dict) -> list:
    return [entry["resource"]["id"] for entry in body["prefetch"]["observations"]["entry"]
            if entry["resource"].keys() == {"resourceType", "id"}]


def test_a_lab_result_outside_every_window_is_a_stub_and_one_without_a_readable_date_kept():
    old = observation("old", "2777-1", OLD)
    old_without_id = observation(None, "2777-1", OLD)
    undated = observation("undated", "2777-1")
    unreadable = observation("bad-date", "2777-1", "last spring")
    body, classified = scan(request_with_labs(old, old_without_id, undated, unreadable))
    assert kept_ids(body) == ["old", "undated", "bad-date"] and stubs(body) == ["old"]
    stub = body["prefetch"]["observations"]["entry"][0]["resource"]
    assert stub == {"resourceType": "Observation", "id": "old"}
    assert classified[id(stub)] == (stub, (("2777-1",), ()), NOW - timedelta(days=3 * 365))


def test_a_stub_only_where_it_can_matter():
    keys = service_call.services()[PATIENT_VIEW].prefetch
    old, recent = observation("old", "2777-1", OLD), observation("recent", "2777-1", RECENT)
    body = request_with_labs(old, recent)
    assert stubs(scan(body, keys=keys)[0]) == [], "every key sent, no next page, no other copy: no stub"
    assert stubs(scan(request_with_labs(old, recent, observation("old", "2777-1", RECENT)), keys=keys)[0]) == ["old"]
    assert stubs(scan(body, keys=[*keys, "more"])[0]) == ["old"], "a key to fetch"
    body["prefetch"]["observations"]["link"] = [{"relation": "next", "url": "https://ehr.example/Observation?page=2"}]
    assert stubs(scan(body, keys=keys)[0]) == ["old"], "a next page to fetch"
    unhashable = observation({"not": "an id"}, "2777-1", OLD)
    assert kept_ids(scan(request_with_labs(unhashable, recent))[0]) == ["recent"], "an id that makes no duplicate"


def test_a_stub_keeps_its_place_among_copies_of_one_observation():
    """Two copies of one result (same id), the first dated out of the window: as from the body parsed whole, the
    first is the record's (and no rule reads it), not the second."""
    first = observation("dup", "2777-1", OLD, valueQuantity={"value": 9.0, "unit": "mg/dL"})
    second = observation("dup", "2777-1", RECENT, valueQuantity={"value": 9.0, "unit": "mg/dL"})
    body = request_with_labs(first, second)
    body["prefetch"]["conditions"]["entry"] = [{"resource": CALCINOSIS}]
    text = orjson.dumps(body)
    assert answer(PATIENT_VIEW, text) == answer(PATIENT_VIEW, parse_json(text))
    assert "Observation/dup" not in answer(PATIENT_VIEW, text)


def test_the_date_is_read_as_the_selection_reads_it_period_instant_issued():
    by_period = observation("period", "2777-1", effectivePeriod={"start": RECENT})
    by_issued = observation("issued", "2777-1", issued=RECENT)
    old_by_period = observation("old-period", "2777-1", effectivePeriod={"start": OLD})
    body, _ = scan(request_with_labs(by_period, by_issued, old_by_period))
    assert stubs(body) == ["old-period"]


def test_a_panel_is_kept_by_its_components_and_its_codes_name_the_components_of_the_parsed_resource():
    panel = observation("panel", "24323-8", RECENT, component=[
        {"code": {"coding": [{"system": LOINC, "code": "2777-1"}]}, "valueQuantity": {"value": 4.0, "unit": "mg/dL"}},
        {"code": {"coding": [{"system": LOINC, "code": "8867-4"}]}, "valueQuantity": {"value": 60, "unit": "/min"}},
    ])
    body, classified = scan(request_with_labs(panel))
    resource = body["prefetch"]["observations"]["entry"][0]["resource"]
    own, parts = classified[id(resource)][1]
    assert own == () and len(parts) == 1
    assert parts[0][0] is resource["component"][0] and parts[0][1] == ("2777-1",)


def test_a_code_written_with_escapes_is_read_as_the_code_it_is():
    text = orjson.dumps(request_with_labs(observation("po4", "CODE", RECENT))).replace(b'"CODE"', b'"\\u0032777-1"')
    body, _ = scan(text)
    assert kept_ids(body) == ["po4"]


def test_each_code_text_is_read_once_a_call_and_its_copies_classified_alike(monkeypatch):
    """A record repeats a few codes thousands of times: the scan reads each distinct code text once (a copy with
    components is read with them), and leaves out what has no readable code, whatever its shape."""
    from cds_service.record import request_scan

    reads = []
    real = request_scan.codes_of
    monkeypatch.setattr(request_scan, "codes_of",
                        lambda resource, among: reads.append(resource) or real(resource, among))
    results = [observation(f"po4-{i}", "2777-1", RECENT, valueQuantity={"value": 4.0 + i, "unit": "mg/dL"})
               for i in range(5)]
    odd = [observation("none", None, RECENT)] + [{**observation(oid, None, RECENT), "code": code} for oid, code in
                                                 (("null", None), ("text", "2777-1"), ("list", [{"code": "2777-1"}]))]
    panel = observation("panel", "2777-1", RECENT, component=[
        {"code": {"coding": [{"system": LOINC, "code": "17861-6"}]}, "valueQuantity": {"value": 9.0, "unit": "mg/dL"}}])
    body, classified = scan(request_with_labs(*results, *odd, panel))
    assert kept_ids(body) == [f"po4-{i}" for i in range(5)] + ["panel"]
    codes = [classified[id(entry["resource"])][1] for entry in body["prefetch"]["observations"]["entry"]]
    assert codes[:5] == [(("2777-1",), ())] * 5
    assert codes[5][0] == ("2777-1",) and [c for _, c in codes[5][1]] == [("17861-6",)]
    # One read for the five copies, one for each other code text (absent, null, a string, a list: none readable);
    # the panel is read with its components (labs.classify_observation), not from its code's text alone.
    assert [r["code"] for r in reads] == [
        {"coding": [{"system": LOINC, "code": "2777-1"}]}, None, None, "2777-1", [{"code": "2777-1"}]]


def test_other_resources_and_members_are_parsed_whole():
    body = request_with_labs(observation("po4", "2777-1", RECENT))
    body["prefetch"]["observations"]["link"] = [{"relation": "self", "url": "https://ehr.example/Observation?code=x"}]
    body["prefetch"]["observations"]["total"] = 1
    body["prefetch"]["conditions"]["entry"] = [{"resource": {"resourceType": "Condition", "id": "c1",
                                                             "code": {"text": "calcinosis"}}}]
    body["extension"] = {"anything": [1, 2.5, None, True, "é"]}
    scanned, _ = scan(body)
    assert materialized(scanned) == parse_json(orjson.dumps(body))


@pytest.mark.parametrize("text", [
    b'{"hook": "patient-view", "prefetch": {"observations": {"resourceType": "Bundle", "entry": {"resource": {}}}}}',
    b'{"hook": "patient-view", "prefetch": {"observations": {"resourceType": "Bundle", "entry": [1, "x", null]}}}',
    b'{"hook": "patient-view", "prefetch": {"observations": {"resourceType": "Bundle", "entry": [{"resource": 5}]}}}',
    b'{"hook": "patient-view", "prefetch": {"observations": {"resourceType": "Bundle", "entry": null}}}',
    b'{"hook": "patient-view", "prefetch": {"observations": [1, 2]}}',
    b'{"hook": "patient-view", "prefetch": ["labs"]}',
    b'{"hook": "patient-view", "prefetch": null}',
    b'["hook"]',
    b'{"context": 123456789012345678901234567890, "extension": 1e400, "hook": NaN}',
    b'{"context": "\\ud800"}',
    b'{"hook": 1, "hook": 2}',
])
def test_what_the_scan_cannot_read_exactly_is_parsed_whole(text):
    body, classified = scan(text)
    expected = parse_json(text)
    assert json.dumps(body, sort_keys=True) == json.dumps(expected, sort_keys=True) and classified == {}


def test_members_the_specifications_do_not_define_are_not_kept():
    body = request_with_labs(observation("po4", "2777-1", RECENT))
    body["somethingElse"] = {"big": list(range(100))}
    body["prefetch"]["observations"]["notABundleMember"] = 1
    scanned, _ = scan(body)
    assert "somethingElse" not in scanned and "notABundleMember" not in scanned["prefetch"]["observations"]
    del body["somethingElse"], body["prefetch"]["observations"]["notABundleMember"]
    assert materialized(scanned) == body


@pytest.mark.parametrize("text", [
    b'{"hook": "patient-view", "prefetch": {"observations": {"resourceType": "Bundle", "entry": [{"resource": '
    b'{"resourceType": "Observation", "code": {"text": "\xff"}}}]}}}',  # not UTF-8, in an Observation left out
    b'{"hook": "patient-view", "prefetch": {"observations": {"resourceType": "Bundle", "entry": [}}}',
    b'{"hook": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b"",
])
def test_a_body_a_whole_parse_refuses_is_refused(text):
    def outcome(read):
        try:
            return "read", read()
        except (ValueError, RecursionError) as error:  # how deep a whole parse reads depends on the recursion limit
            return "refused", type(error)

    assert outcome(lambda: scan(text)[0]) == outcome(lambda: parse_json(text))
    assert text == b'{"hook": ' + b"[" * 5000 + b"]" * 5000 + b"}" or outcome(lambda: parse_json(text))[0] == "refused"


def test_over_http_a_body_that_is_not_json_still_gets_400(client):
    for text in (b"{", b'{"hook": "patient-view", "prefetch": {"x": {"resourceType": "Bundle", "entry": [{"resource":'
                       b' {"resourceType": "Observation", "note": "\xff\xfe"}}]}}}'):
        response = client.post(f"/cds-services/{PATIENT_VIEW}", data=text, content_type="application/json")
        assert response.status_code == 400
        assert "not valid JSON" in response.get_data(as_text=True)


# --- the answer is the same ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", scenario_names())
def test_every_scenario_gets_the_same_answer_as_from_the_body_parsed_whole(name):
    scenario = load_scenario(name)
    for hook in {scenario.get("hook", "patient-view"), "patient-view"}:
        service_id, body = scenario_request(scenario, hook)
        text = orjson.dumps(body)
        for now in (NOW, NOW + timedelta(days=200)):  # later: results leave their windows
            assert answer(service_id, text, now) == answer(service_id, parse_json(text), now), (hook, now)


_codes = st.sampled_from(["2777-1", "17861-6", "1751-7", "2160-0", "98979-8", "8302-2", "8867-4", "24323-8", "x"])
_dates = st.one_of(
    st.none(), st.integers(0, 800).map(lambda days: (NOW - timedelta(days=days)).isoformat()),
    st.integers(0, 800).map(lambda days: (NOW - timedelta(days=days)).date().isoformat()[:7]),
    st.sampled_from(["", "2025", "not a date", "2026-02-30", "2026-03-14T15:00:00"]), st.integers(), st.just({"x": 1}),
)
_values = st.one_of(st.floats(0.1, 20, allow_nan=False).map(lambda v: {"value": round(v, 2), "unit": "mg/dL",
                                                                        "system": "http://unitsofmeasure.org",
                                                                        "code": "mg/dL"}),
                    st.just({"value": "high"}), st.none())


@st.composite
def _observation(draw, index):
    resource = {"resourceType": draw(st.sampled_from(["Observation", "Observation", "Condition", "Procedure"])),
                "id": draw(st.sampled_from([f"o{index}", "dup", None])),
                "status": draw(st.sampled_from(["final", "amended", "entered-in-error", "preliminary", 7])),
                "subject": {"reference": draw(st.sampled_from(["Patient/p1", "Patient/p2"]))}}
    if draw(st.booleans()):
        resource["code"] = {"coding": [{"system": draw(st.sampled_from([LOINC, "http://snomed.info/sct", None])),
                                        "code": draw(_codes)}]}
    elif draw(st.booleans()):
        resource["code"] = draw(st.sampled_from(["2777-1", None, [1], {"coding": "2777-1"}]))
    if draw(st.booleans()):
        resource["component"] = [{"code": {"coding": [{"system": LOINC, "code": draw(_codes)}]},
                                  "valueQuantity": draw(_values)} for _ in range(draw(st.integers(0, 2)))]
    for member in draw(st.lists(st.sampled_from(["effectiveDateTime", "issued", "effectiveInstant"]), max_size=2)):
        resource[member] = draw(_dates)
    if draw(st.booleans()):
        resource["effectivePeriod"] = {"start": draw(_dates)}
    if draw(st.booleans()):
        resource["valueQuantity"] = draw(_values)
    return resource


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_record_gets_the_same_answer_as_from_the_body_parsed_whole(data):
    resources = [data.draw(_observation(i)) for i in range(data.draw(st.integers(0, 12)))]
    body = request_with_labs(*resources)
    body["prefetch"]["conditions"]["entry"] = [{"resource": CALCINOSIS}]
    text = json.dumps(body).encode()  # json: integers beyond 64 bits too
    assert answer(PATIENT_VIEW, text) == answer(PATIENT_VIEW, parse_json(text))


def test_the_panel_parses_a_result_only_when_a_rule_reaches_it(monkeypatch):
    from cds_service.record import labs

    parsed = []
    real = labs.parse_json
    monkeypatch.setattr(labs, "parse_json", lambda text: parsed.append(real(text)["resource"]["id"]) or real(text))
    results = [observation(f"po4-{days}", "2777-1", (NOW - timedelta(days=days)).isoformat(),
                           valueQuantity={"value": 5.5, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
                                          "code": "mg/dL"})
               for days in (40, 5, 20, 60, 10)]
    body = request_with_labs(*results)
    body["prefetch"]["conditions"]["entry"] = [{"resource": CALCINOSIS}]
    text = orjson.dumps(body)
    assert answer(PATIENT_VIEW, text) == answer(PATIENT_VIEW, parse_json(text))
    assert parsed and parsed[0] == "po4-5", "the newest first"
    assert len(parsed) < len(results) and "po4-60" not in parsed, "an older result no rule reaches is never parsed"


def test_a_stub_is_parsed_once_a_call():
    from cds_service.record.labs import LabPanel

    body, _ = scan(request_with_labs(observation("po4", "2777-1", RECENT)))
    stub = body["prefetch"]["observations"]["entry"][0]["resource"]
    panel = LabPanel(now=NOW, terms=TERMS)
    assert panel.whole(stub) is panel.whole(stub) and panel.whole(stub)["id"] == "po4"
    plain = {"resourceType": "Observation", "id": "x"}
    assert panel.whole(plain) is plain
