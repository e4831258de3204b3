"""Property-based fuzzing of what a hostile or careless caller controls (issue 16): bodies, headers, and everything
inside prefetch Bundles (their entries, links and resources), draftOrders and numbers of any size. The property: no
response is a 5xx, and none carries a stack trace.

`make test` runs 40 examples a test, derandomized; `make fuzz` sets CDS_FUZZ_EXAMPLES (100,000 in all, shared by the
tests by how fast their examples run) and lets hypothesis pick at random. Nothing leaves the process: the FHIR client's transport
is `responses`, answering any URL with a small Bundle, so next links and fhirServers are followed through the real
URL checks without a network.
"""

from __future__ import annotations

import json
import os
import re
import uuid

import pytest
import responses
from hypothesis import HealthCheck, given, settings, strategies as st

from cds_service import create_app
from cds_service.service.clock import fixed_clock
from cds_service.service.fhir_client import FhirClient
from cds_service.service.discovery import services
from cds_service.service.settings import Settings

from .conftest import NOW, isolated_state, load_scenario, minimal_request, scenario_names, scenario_request

LONG = int(os.environ.get("CDS_FUZZ_EXAMPLES", "0"))
"""The long run's examples in all, shared by the tests in proportion to how fast each example runs."""


def fuzz(share: float):
    return settings(
        max_examples=max(1, int(LONG * share)) if LONG else 40,
        deadline=None,
        derandomize=not LONG,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


SERVICE_IDS = list(services())
PATIENT_VIEW = "calcinosis-cutis-patient-view"
BASE = "https://ehr.example.org/fhir"


@pytest.fixture(scope="module")
def fhir():
    """Any URL answers a one-Condition searchset with a next link of its own (until the page cap)."""
    page = {"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": {"resourceType": "Condition", "id": "f1", "subject": {"reference": "Patient/p1"}}}],
            "link": [{"relation": "next", "url": "Condition?page=2"}]}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(r".*"), callback=lambda r: (200, {}, json.dumps(page)))
        yield mock


@pytest.fixture(scope="module")
def client(fhir):
    fetcher = FhirClient(deadline_seconds=2.0, max_pages=3)
    settings_ = Settings(auth="off", fhir_allow_http=True, log_level="CRITICAL", max_body_bytes=256 * 1024,
                         fhir_servers=("*", "http://127.0.0.1:9/fhir"), **isolated_state())
    app = create_app(settings_, clock=fixed_clock(NOW), fetcher=fetcher)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    yield app.test_client()
    fetcher.close()


def assert_no_server_error(response):
    text = response.get_data(as_text=True)
    assert response.status_code < 500, (response.status_code, text[:500])
    assert "Traceback" not in text and 'File "' not in text


# --- values -----------------------------------------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 1e308, 1e-320, 2**63, -(2**63) - 1, 2**64, 10**30, 10**400, -(10**400), 10**4000]),
)
text = st.text(max_size=40) | st.sampled_from(["", " ", "\n", "\udc80", "a\x00b", "Patient/p1", "urn:uuid:x"])
scalars = st.none() | st.booleans() | numbers | text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                           max_leaves=6)

link_urls = st.one_of(
    text,
    st.sampled_from([
        "Condition?page=2", "/fhir/Condition?page=2", "//evil.example/x", "https://evil.example\\@ehr.example.org/fhir/x",
        f"{BASE}/Condition?page=3", "http://127.0.0.1:9/fhir/x", "https://169.254.169.254/latest", "javascript:x",
        f"{BASE}/Condition?page=2#frag", " https://ehr.example.org/fhir/x", "https://ehr.example.org:99999/x",
        "https://[::1/x", "https://ehr.example.org/fhir/\u2028x",
    ]),
)
links = st.lists(
    st.one_of(
        st.fixed_dictionaries({"relation": st.sampled_from(["next", "self", "previous"]) | json_values,
                               "url": link_urls | json_values}),
        json_values,
    ),
    max_size=3,
)


@st.composite
def resources(draw):
    resource_type = draw(st.sampled_from(["Condition", "Observation", "MedicationRequest", "MedicationStatement",
                                          "Patient", "Procedure", "Medication", "ServiceRequest", "OperationOutcome"]))
    resource = {"resourceType": resource_type, "id": draw(st.sampled_from(["x1", "p1", "m1"]) | json_values),
                "subject": {"reference": "Patient/p1"}}
    for name in draw(st.lists(st.sampled_from(
            ["code", "status", "clinicalStatus", "valueQuantity", "effectiveDateTime", "medicationReference",
             "medicationCodeableConcept", "dosageInstruction", "birthDate", "referenceRange", "contained",
             "onsetDateTime", "category", "intent", "subject"]), max_size=5)):
        resource[name] = draw(json_values)
    if resource_type == "Observation" and draw(st.booleans()):
        resource["code"] = {"coding": [{"system": "http://loinc.org", "code": draw(st.sampled_from(["2777-1", "17861-6"]))}]}
        resource["valueQuantity"] = {"value": draw(numbers), "unit": draw(st.sampled_from(["mg/dL", "mmol/L", "x"]))}
        resource["effectiveDateTime"] = "2026-03-01"
        resource["status"] = "final"
    return resource


entries = st.lists(
    st.one_of(st.fixed_dictionaries({"resource": resources()}), st.fixed_dictionaries({"resource": json_values}),
              json_values, st.fixed_dictionaries({"resource": resources(), "search": json_values,
                                                  "fullUrl": text})),
    max_size=5,
)


@st.composite
def bundles(draw):
    bundle = {"resourceType": "Bundle", "type": draw(st.sampled_from(["searchset", "collection"]) | json_values)}
    bundle["entry"] = draw(entries | json_values)  # an array, or anything else in its place
    if draw(st.booleans()):
        bundle["link"] = draw(links | json_values)
    if draw(st.booleans()):
        bundle["total"] = draw(numbers)
    return bundle


# --- the tests --------------------------------------------------------------------------------------------------------


@fuzz(0.25)
@given(data=st.data())
def test_random_prefetch_bundles_entries_and_links_never_get_a_5xx(client, data):
    body = minimal_request()
    for key in data.draw(st.lists(st.sampled_from(list(body["prefetch"])), min_size=1, max_size=4, unique=True)):
        body["prefetch"][key] = data.draw(bundles() | resources() | st.none())
    if data.draw(st.booleans()):
        body["fhirServer"] = data.draw(st.sampled_from([BASE, "http://127.0.0.1:9/fhir", "https://10.0.0.1/fhir"])
                                       | link_urls)
        for key in data.draw(st.lists(st.sampled_from(list(body["prefetch"])), max_size=3, unique=True)):
            body["prefetch"].pop(key, None)  # absent: fetched
    response = client.post(f"/cds-services/{PATIENT_VIEW}", data=json.dumps(body), content_type="application/json")
    assert_no_server_error(response)


@fuzz(0.07)
@given(data=st.data())
def test_random_draft_orders_and_numbers_in_scenarios_never_get_a_5xx(client, data):
    names = [n for n in scenario_names() if "order" in n][:8] + ["foundation-calcinosis-ckd-hyperphosphatemia"]
    service_id, body = scenario_request(load_scenario(data.draw(st.sampled_from(names))))
    raw = json.dumps(body)
    # every number in the request may become any number, of any size
    spots = [m.span() for m in re.finditer(r'(?<=": )-?\d+(\.\d+)?(?=[,}\]])', raw)]
    for start, end in sorted(data.draw(st.lists(st.sampled_from(spots), max_size=4, unique=True)) if spots else [],
                             reverse=True):
        raw = raw[:start] + json.dumps(data.draw(numbers)) + raw[end:]
    body = json.loads(raw)
    draft = body["context"].get("draftOrders")
    if isinstance(draft, dict) and data.draw(st.booleans()):
        draft["entry"] = data.draw(entries | json_values)
    if isinstance(draft, dict) and data.draw(st.booleans()):
        entry_list = draft.get("entry")
        if isinstance(entry_list, list) and entry_list and isinstance(entry_list[0], dict):
            entry_list[0]["resource"] = data.draw(resources() | json_values)
    response = client.post(f"/cds-services/{service_id}", data=json.dumps(body), content_type="application/json")
    assert_no_server_error(response)


header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"),
                      max_size=80)


@fuzz(0.33)
@given(
    path=st.sampled_from([f"/cds-services/{s}" for s in SERVICE_IDS] + [f"/cds-services/{s}/feedback" for s in SERVICE_IDS]
                         + ["/cds-services"]),
    method=st.sampled_from(["POST", "POST", "GET", "PUT", "OPTIONS"]),
    headers=st.dictionaries(st.sampled_from(["Content-Type", "Authorization", "Origin", "Accept", "Content-Encoding",
                                             "X-Forwarded-Proto", "X-Forwarded-Host", "Expect", "Host"]),
                            header_text | st.sampled_from(["application/json", "application/fhir+json; charset=utf-8",
                                                           "gzip", "chunked", "100-continue"]), max_size=4),
    body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
)
def test_random_bodies_and_headers_never_get_a_5xx(client, path, method, headers, body):
    try:
        response = client.open(path, method=method, data=body, headers=headers)
    except ValueError:  # werkzeug refuses to build the request: nothing reached the service
        return
    assert_no_server_error(response)


@fuzz(0.35)
@given(entries_=st.lists(st.dictionaries(
    st.sampled_from(["card", "outcome", "outcomeTimestamp", "acceptedSuggestions", "overrideReason"]),
    json_values | st.sampled_from([str(uuid.uuid4()), "accepted", "overridden", "2026-01-01T00:00:00Z"])
    | st.fixed_dictionaries({"reason": st.fixed_dictionaries({"code": text, "system": text})}),
), max_size=3) | json_values)
def test_random_feedback_never_gets_a_5xx(client, entries_):
    response = client.post(f"/cds-services/{PATIENT_VIEW}/feedback", data=json.dumps({"feedback": entries_}),
                           content_type="application/json")
    assert_no_server_error(response)
