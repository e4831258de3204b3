"""Fetching what the prefetch lacks, against a mocked FHIR server (`responses`): every fault a real EHR can
produce becomes a short error for its key, a 412 for required keys, and a report for optional ones; never a 500 or a
hang, and never the access token in a log, a body or an error.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from cds_service import create_app
from cds_service.service.clock import fixed_clock
from cds_service.service.fhir_client import FhirClient
from cds_service.service.logging_setup import JsonFormatter, TextFormatter
from cds_service.service.prefetch import MEDICATION_KEY, gather
from cds_service.service.protocol import parse_hook_request
from cds_service.service.discovery import REQUIRED_KEYS, services
from cds_service.service.settings import Settings

from .conftest import NOW, PATIENT_VIEW, fired_rules, isolated_state, load_scenario, make_app, scenario_request

BASE = "https://ehr.example.org/fhir"
TOKEN = "tok-3f9a1c-never-log-me"
ANY_URL = re.compile(r"https://ehr\.example\.org/fhir/.*")


def hook_request(*, token: str | None = TOKEN, prefetch: dict | None = None, fhir_server: str = BASE):
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": "p1", "userId": "Practitioner/1"},
        "fhirServer": fhir_server,
    }
    if token is not None:
        body["fhirAuthorization"] = {
            "access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "cds",
        }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return parse_hook_request(body, expected_hook="patient-view", allow_http_fhir_server=True)


def client(**changes) -> FhirClient:
    options = dict(deadline_seconds=2.0, connect_timeout_seconds=0.5, read_timeout_seconds=1.0, max_pages=20,
                   max_resources=10_000)
    options.update(changes)
    return FhirClient(**options)


def bundle(resources, next_url: str | None = None, total: int | None = None) -> dict:
    value = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}
    if next_url:
        value["link"] = [{"relation": "self", "url": "x"}, {"relation": "next", "url": next_url}]
    if total is not None:
        value["total"] = total
    return value


def condition(cid: str) -> dict:
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p1"}}


PATIENT = {"resourceType": "Patient", "id": "p1"}


# ---------------------------------------------------------------------------------------------- success and headers


@responses.activate
def test_read_and_search_send_the_bearer_token_and_fhir_json_accept():
    responses.get(f"{BASE}/Patient/p1", json=PATIENT)
    responses.get(f"{BASE}/Condition", json=bundle([condition("c1"), condition("c2")]))
    results = client().fetch(hook_request(), {"patient": "Patient/p1", "conditions": "Condition?patient=p1"}, {})
    assert results["patient"].resources == [PATIENT] and results["patient"].error is None
    assert [r["id"] for r in results["conditions"].resources] == ["c1", "c2"]
    assert results["conditions"].source == "fetched"
    assert len(responses.calls) == 2
    for call in responses.calls:
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert call.request.headers["Accept"] == "application/fhir+json"
    search = next(c for c in responses.calls if "/Condition" in c.request.url)
    assert parse_qs(urlsplit(search.request.url).query) == {"patient": ["p1"]}


@responses.activate
def test_without_fhir_authorization_the_fetch_is_unauthenticated():
    responses.get(f"{BASE}/Patient/p1", json=PATIENT)
    results = client().fetch(hook_request(token=None), {"patient": "Patient/p1"}, {})
    assert results["patient"].error is None
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_token_filters_reach_the_server_intact():
    responses.get(f"{BASE}/Observation", json=bundle([]))
    query = "Observation?patient=p1&code=http://loinc.org|2777-1,http://loinc.org|17861-6&_sort=-date&_count=500"
    client().fetch(hook_request(), {"observations": query}, {})
    params = parse_qs(urlsplit(responses.calls[0].request.url).query)
    assert params["code"] == ["http://loinc.org|2777-1,http://loinc.org|17861-6"]
    assert params["_sort"] == ["-date"] and params["_count"] == ["500"]


@responses.activate
def test_search_outcome_entries_are_not_patient_data():
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "not-supported"}]}
    responses.get(f"{BASE}/Condition", json=bundle([condition("c1"), outcome]))
    result = client().fetch(hook_request(), {"conditions": "Condition?patient=p1"}, {})["conditions"]
    assert [r["resourceType"] for r in result.resources] == ["Condition"] and result.error is None


# ---------------------------------------------------------------------------------------------- faults, one by one


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        # Transport failures read alike: the caller must not map the network through us (issue 16, finding 8).
        (dict(body=requests.exceptions.ConnectTimeout()), "could not be reached"),
        (dict(body=requests.exceptions.ReadTimeout()), "did not answer in time"),
        (dict(body=requests.exceptions.ConnectionError()), "could not be reached"),
        (dict(body=requests.exceptions.SSLError()), "could not be reached"),
        (dict(body=requests.exceptions.ChunkedEncodingError()), "could not be reached"),
        (dict(status=401, json={"resourceType": "OperationOutcome"}), "refused the access token (401)"),
        (dict(status=403), "forbade access (403)"),
        (dict(status=404), "no such resource (404)"),
        (dict(status=500, body="<html>oops</html>"), "failed (500)"),
        (dict(status=503), "failed (503)"),
        (dict(status=429), "rate-limiting (429)"),
        (dict(status=302, headers={"Location": "https://elsewhere.example.com/Patient/p1"}), "redirect (302)"),
        (dict(body="<html>login</html>", content_type="text/html"), "not valid JSON"),
        (dict(body='{"resourceType": "Patient", "id": "p1", "name": [{"fam'), "not valid JSON"),
        (dict(body=""), "not valid JSON"),
        (dict(json=[1, 2]), "not a FHIR resource"),
        (dict(json={"resourceType": "OperationOutcome", "issue": []}), "OperationOutcome"),
        (dict(json=bundle([PATIENT])), "a Bundle where a Patient was expected"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
@responses.activate
def test_every_fault_of_a_read_is_a_short_error_for_its_key(answer, reason):
    responses.add(responses.GET, f"{BASE}/Patient/p1", **answer)
    result = client().fetch(hook_request(), {"patient": "Patient/p1"}, {})["patient"]
    assert result.resources == []
    assert reason in result.error
    assert TOKEN not in result.error and "p1" not in result.error and BASE not in result.error


@responses.activate
def test_401_without_a_token_says_authorization_was_missing():
    responses.get(f"{BASE}/Patient/p1", status=401)
    result = client().fetch(hook_request(token=None), {"patient": "Patient/p1"}, {})["patient"]
    assert "requires authorization (401)" in result.error


@responses.activate
def test_a_resource_where_a_searchset_is_expected_is_an_error():
    responses.get(f"{BASE}/Condition", json=condition("c1"))
    result = client().fetch(hook_request(), {"conditions": "Condition?patient=p1"}, {})["conditions"]
    assert "a Condition where a searchset Bundle was expected" in result.error


@responses.activate
def test_a_truncated_bundle_is_invalid_json():
    text = json.dumps(bundle([condition("c1"), condition("c2")]))
    responses.get(f"{BASE}/Condition", body=text[: len(text) // 2])
    result = client().fetch(hook_request(), {"conditions": "Condition?patient=p1"}, {})["conditions"]
    assert result.resources == [] and "not valid JSON" in result.error


@responses.activate
def test_one_failing_key_does_not_spoil_the_others():
    responses.get(f"{BASE}/Patient/p1", json=PATIENT)
    responses.get(f"{BASE}/MedicationRequest", status=500)
    results = client().fetch(
        hook_request(), {"patient": "Patient/p1", "medicationRequests": "MedicationRequest?patient=p1"}, {}
    )
    assert results["patient"].error is None and "failed (500)" in results["medicationRequests"].error


@responses.activate
def test_cookies_set_by_one_answer_are_never_sent_with_another_request():
    responses.get(f"{BASE}/Patient/p1", json=PATIENT, headers={"Set-Cookie": "SESSION=abc; Path=/"})
    fetcher = client()
    fetcher.fetch(hook_request(), {"patient": "Patient/p1"}, {})
    fetcher.fetch(hook_request(), {"patient": "Patient/p1"}, {})
    assert "Cookie" not in responses.calls[1].request.headers


# ---------------------------------------------------------------------------------------------- paging


def paged(pages: dict[str, dict]):
    """A callback serving the Bundle of each page, by its _page parameter (no parameter: page 1)."""

    def answer(request):
        page = parse_qs(urlsplit(request.url).query).get("_page", ["1"])[0]
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(pages[page])

    return answer


@responses.activate
def test_next_links_are_followed_to_the_last_page():
    pages = {
        "1": bundle([condition("c1")], next_url=f"{BASE}/Condition?patient=p1&_page=2", total=3),
        "2": bundle([condition("c2")], next_url="Condition?patient=p1&_page=3", total=3),  # relative: resolved on base
        "3": bundle([condition("c3")], total=3),
    }
    responses.add_callback(responses.GET, ANY_URL, callback=paged(pages))
    result = client().fetch(hook_request(), {"conditions": "Condition?patient=p1"}, {})["conditions"]
    assert [r["id"] for r in result.resources] == ["c1", "c2", "c3"] and result.error is None
    assert len(responses.calls) == 3
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in responses.calls)


@responses.activate
def test_a_next_link_loop_stops_and_is_reported():
    pages = {
        "1": bundle([condition("c1")], next_url=f"{BASE}/Condition?patient=p1&_page=2"),
        "2": bundle([condition("c2")], next_url=f"{BASE}/Condition?patient=p1&_page=1"),
    }
    responses.add_callback(responses.GET, ANY_URL, callback=paged(pages))
    result = client().fetch(hook_request(), {"conditions": "Condition?patient=p1&_page=1"}, {})["conditions"]
    assert [r["id"] for r in result.resources] == ["c1", "c2"]
    assert "loop" in result.error
    assert len(responses.calls) == 2


@responses.activate
def test_the_page_cap_stops_an_endless_search_and_counts_what_was_left():
    def endless(request):
        page = int(parse_qs(urlsplit(request.url).query).get("_page", ["1"])[0])
        value = bundle([condition(f"c{page}")], next_url=f"{BASE}/Condition?patient=p1&_page={page + 1}", total=1000)
        return 200, {}, json.dumps(value)

    responses.add_callback(responses.GET, ANY_URL, callback=endless)
    result = client(max_pages=3).fetch(hook_request(), {"conditions": "Condition?patient=p1"}, {})["conditions"]
    assert len(responses.calls) == 3 and len(result.resources) == 3
    assert "CDS_FETCH_MAX_PAGES=3" in result.error and "about 997 resources not read" in result.error


@responses.activate
def test_the_resource_cap_truncates_and_says_so():
    pages = {
        "1": bundle([condition("c1"), condition("c2")], next_url=f"{BASE}/Condition?patient=p1&_page=2"),
        "2": bundle([condition("c3"), condition("c4")], next_url=f"{BASE}/Condition?patient=p1&_page=3"),
    }
    responses.add_callback(responses.GET, ANY_URL, callback=paged(pages))
    result = client(max_resources=3).fetch(hook_request(), {"conditions": "Condition?patient=p1"}, {})["conditions"]
    assert [r["id"] for r in result.resources] == ["c1", "c2", "c3"]
    assert "CDS_FETCH_MAX_RESOURCES=3" in result.error and "1 more on the last page" in result.error
    assert len(responses.calls) == 2


@responses.activate
def test_a_next_link_to_another_host_is_never_followed():
    responses.get(
        f"{BASE}/Condition", json=bundle([condition("c1")], next_url="https://evil.example.com/fhir/Condition?page=2")
    )
    responses.get("https://evil.example.com/fhir/Condition", json=bundle([condition("c2")]))
    result = client().fetch(hook_request(), {"conditions": "Condition?patient=p1"}, {})["conditions"]
    assert [r["id"] for r in result.resources] == ["c1"]
    assert "outside the fhirServer's origin" in result.error
    assert [c.request.url.split("?")[0] for c in responses.calls] == [f"{BASE}/Condition"]


@responses.activate
def test_a_next_link_downgrading_to_http_is_another_origin():
    responses.get(f"{BASE}/Condition", json=bundle([condition("c1")], next_url="http://ehr.example.org/fhir/Condition?p=2"))
    result = client().fetch(hook_request(), {"conditions": "Condition?patient=p1"}, {})["conditions"]
    assert "outside the fhirServer's origin" in result.error and len(responses.calls) == 1


@responses.activate
def test_a_failed_later_page_keeps_the_earlier_pages_and_reports_the_gap():
    responses.get(f"{BASE}/Condition", json=bundle([condition("c1")], next_url=f"{BASE}/Condition/_page2"))
    responses.get(f"{BASE}/Condition/_page2", status=502)
    result = client().fetch(hook_request(), {"conditions": "Condition?patient=p1"}, {})["conditions"]
    assert [r["id"] for r in result.resources] == ["c1"]
    assert result.error == "page 2 could not be read: the FHIR server failed (502)"


@responses.activate
def test_a_prefetched_bundle_with_a_next_link_is_completed_from_the_server():
    first = bundle([condition("c1")], next_url=f"{BASE}/Condition?patient=p1&_page=2")
    responses.get(f"{BASE}/Condition", json=bundle([condition("c2")]))
    request = hook_request(prefetch={"patient": PATIENT, "conditions": first})
    record = gather(request, {"patient": "Patient/p1", "conditions": "Condition?patient=p1"}, set(REQUIRED_KEYS), client())
    assert sorted(r["id"] for r in record.resources) == ["c1", "c2", "p1"]
    assert record.problems() == [] and len(responses.calls) == 1


# ---------------------------------------------------------------------------------------------- deadline and parallelism


class SlowServer:
    """A callback that answers after `delay` seconds, or when released at the end of the test (never hangs)."""

    def __init__(self, delay: float, payload: dict):
        self.delay, self.payload, self.release = delay, payload, threading.Event()

    def __call__(self, request):
        self.release.wait(self.delay)
        return 200, {}, json.dumps(self.payload)


@responses.activate
def test_the_deadline_stops_waiting_and_names_the_late_key():
    slow = SlowServer(5.0, bundle([condition("c1")]))
    responses.get(f"{BASE}/Patient/p1", json=PATIENT)
    responses.add_callback(responses.GET, f"{BASE}/Condition", callback=slow)
    fetcher = client(deadline_seconds=0.2)
    started = time.monotonic()
    try:
        results = fetcher.fetch(hook_request(), {"patient": "Patient/p1", "conditions": "Condition?patient=p1"}, {})
    finally:
        slow.release.set()
        fetcher.close(wait=True)  # the late request ends inside this test, not in the next one
    assert time.monotonic() - started < 1.0
    assert results["patient"].error is None
    assert results["conditions"].error == "not obtained within the fetch deadline of 0.2 s"


@responses.activate
def test_keys_are_fetched_in_parallel():
    delay = 0.3
    queries = {f"k{i}": f"Condition?patient=p1&k={i}" for i in range(5)}
    responses.add_callback(responses.GET, f"{BASE}/Condition", callback=SlowServer(delay, bundle([])))
    started = time.monotonic()
    results = client().fetch(hook_request(), queries, {})
    elapsed = time.monotonic() - started
    assert all(r.error is None for r in results.values())
    assert elapsed < delay * len(queries) / 2, f"5 keys of {delay} s took {elapsed:.2f} s: not parallel"


def test_the_per_request_timeouts_never_exceed_what_is_left_of_the_deadline(monkeypatch):
    seen = []

    def fake_send(request, **kwargs):
        seen.append(kwargs["timeout"])
        raise requests.exceptions.ConnectTimeout()

    fetcher = client(deadline_seconds=0.3, connect_timeout_seconds=5.0, read_timeout_seconds=5.0)
    monkeypatch.setattr(fetcher._adapter, "send", fake_send)
    fetcher.fetch(hook_request(), {"patient": "Patient/p1"}, {})
    assert len(seen) == 1 and all(0 < t <= 0.3 for t in seen[0])


@responses.activate
def test_the_medication_batch_shares_the_call_deadline():
    slow = SlowServer(5.0, bundle([]))
    responses.add_callback(responses.GET, f"{BASE}/Condition", callback=slow)
    fetcher = client(deadline_seconds=0.3)
    request = hook_request()
    try:
        fetcher.fetch(request, {"conditions": "Condition?patient=p1"}, {})
        started = time.monotonic()
        result = fetcher.fetch_medications(request, ["Medication/m1"])
    finally:
        slow.release.set()
        fetcher.close(wait=True)
    assert time.monotonic() - started < 0.1
    assert "deadline" in result.error and "Medication/m1" in result.error
    assert not any("/Medication" in c.request.url for c in responses.calls)


# ---------------------------------------------------------------------------------------------- medicationReference


def medication_request(mid: str, reference: str, status: str = "active") -> dict:
    return {
        "resourceType": "MedicationRequest", "id": mid, "status": status, "intent": "order",
        "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": reference},
    }


def medication(mid: str) -> dict:
    return {"resourceType": "Medication", "id": mid, "code": {"text": f"drug {mid}"}}


@responses.activate
def test_missing_medications_are_fetched_in_one_batched_search_and_the_missing_one_is_named():
    responses.get(f"{BASE}/Medication", json=bundle([medication("m1"), medication("m3")]))
    result = client().fetch_medications(
        hook_request(), ["Medication/m1", f"{BASE}/Medication/m2", "Medication/m3"]
    )
    assert sorted(r["id"] for r in result.resources) == ["m1", "m3"]
    assert result.error == "not found on the FHIR server: Medication/m2"
    assert len(responses.calls) == 1
    params = parse_qs(urlsplit(responses.calls[0].request.url).query)
    assert params == {"_id": ["m1,m2,m3"], "_count": ["3"]}


@responses.activate
def test_medication_references_elsewhere_are_never_fetched():
    result = client().fetch_medications(
        hook_request(), ["https://other.example.com/fhir/Medication/m1", "urn:uuid:1234", "Medication/m1/_history/2"]
    )
    assert "cannot be fetched from the fhirServer" in result.error
    assert len(responses.calls) == 0


@responses.activate
def test_gather_resolves_only_what_active_medications_need():
    responses.get(f"{BASE}/Medication", json=bundle([medication("m-remote")]))
    contained = medication_request("mr-contained", "#med")
    contained["contained"] = [medication("med")]
    prefetch = {
        "patient": PATIENT,
        "conditions": bundle([]),
        "medicationRequests": bundle([
            contained,
            medication_request("mr-in-record", "Medication/m-local"),
            medication_request("mr-remote", "Medication/m-remote"),
            medication_request("mr-stopped", "Medication/m-stopped", status="stopped"),
            medication("m-local"),
        ]),
    }
    templates = {key: services()[PATIENT_VIEW].prefetch[key] for key in prefetch}
    record = gather(hook_request(prefetch=prefetch), templates, set(REQUIRED_KEYS), client())
    assert len(responses.calls) == 1
    assert parse_qs(urlsplit(responses.calls[0].request.url).query)["_id"] == ["m-remote"]
    assert any(r.get("id") == "m-remote" for r in record.resources)
    assert MEDICATION_KEY in record.keys and record.problems() == []


@responses.activate
def test_gather_fetches_the_medications_of_draft_orders_too():
    responses.get(f"{BASE}/Medication", json=bundle([medication("d-remote")]))
    in_bundle = medication_request("draft-2", "Medication/d-in-bundle", status="draft")
    body = {
        "hook": "order-sign", "hookInstance": str(uuid.uuid4()), "fhirServer": BASE,
        "context": {"patientId": "p1", "userId": "Practitioner/1", "draftOrders": {"resourceType": "Bundle", "entry": [
            {"resource": medication_request("draft-1", "Medication/d-remote", status="draft")},
            {"resource": in_bundle},
            {"resource": medication("d-in-bundle")},
        ]}},
        "prefetch": {"patient": PATIENT, "conditions": bundle([])},
    }
    request = parse_hook_request(body, expected_hook="order-sign", allow_http_fhir_server=False)
    record = gather(request, {"patient": "Patient/p1", "conditions": "Condition?patient=p1"}, set(REQUIRED_KEYS), client())
    assert len(responses.calls) == 1
    assert parse_qs(urlsplit(responses.calls[0].request.url).query)["_id"] == ["d-remote"]
    assert any(r.get("id") == "d-remote" for r in record.resources) and record.problems() == []


class IncludingEhr:
    """MedicationRequest searches answered as a server that honours `_include=MedicationRequest:medication` does
    (the Medications as search.mode=include entries), or rejects it with 400 (`reject_include`); Medication?_id=
    answered from `medications`."""

    def __init__(self, requests_: list[dict], medications: list[dict], *, reject_include: bool = False):
        self.requests, self.medications, self.reject_include = requests_, medications, reject_include

    def __call__(self, request):
        parts = urlsplit(request.url)
        params = parse_qs(parts.query)
        if parts.path.endswith("/Medication"):
            ids = params.get("_id", [""])[0].split(",")
            return 200, {}, json.dumps(bundle([m for m in self.medications if m["id"] in ids]))
        entries = [{"resource": r, "search": {"mode": "match"}} for r in self.requests]
        if "_include" in params:
            if self.reject_include:
                return 400, {}, json.dumps({"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "not-supported"}]})
            wanted = {r["medicationReference"]["reference"].split("/")[-1] for r in self.requests}
            entries += [{"resource": m, "search": {"mode": "include"}} for m in self.medications if m["id"] in wanted]
        return 200, {}, json.dumps({"resourceType": "Bundle", "type": "searchset", "total": len(self.requests),
                                    "entry": entries})


def gather_without_prefetch(fetcher: FhirClient):
    prefetch = {"patient": PATIENT, "conditions": bundle([])}
    templates = {key: services()[PATIENT_VIEW].prefetch[key] for key in ("patient", "conditions", "medicationRequests")}
    return gather(hook_request(prefetch=prefetch), templates, set(REQUIRED_KEYS), fetcher)


@responses.activate
def test_medication_searches_include_their_medications_and_need_no_second_round_trip():
    ehr = IncludingEhr([medication_request("mr1", "Medication/m1"), medication_request("mr2", "Medication/m2")],
                       [medication("m1"), medication("m2")])
    responses.add_callback(responses.GET, ANY_URL, callback=ehr)
    record = gather_without_prefetch(client())
    assert len(responses.calls) == 1  # the MedicationRequest search only: no Medication?_id= batch
    params = parse_qs(urlsplit(responses.calls[0].request.url).query)
    assert params["_include"] == ["MedicationRequest:medication"]
    assert params["status"] == ["active,on-hold"]  # the template's own parameters are kept
    assert {r["id"] for r in record.resources if r["resourceType"] == "Medication"} == {"m1", "m2"}
    assert MEDICATION_KEY not in record.keys and record.problems() == []


@responses.activate
def test_a_server_that_ignores_the_include_still_gets_the_medication_batch():
    responses.get(f"{BASE}/MedicationRequest", json=bundle([medication_request("mr1", "Medication/m1")]))
    responses.get(f"{BASE}/Medication", json=bundle([medication("m1")]))
    record = gather_without_prefetch(client())
    paths = [urlsplit(c.request.url).path for c in responses.calls]
    assert paths == ["/fhir/MedicationRequest", "/fhir/Medication"]
    assert any(r.get("id") == "m1" for r in record.resources) and record.problems() == []


@responses.activate
def test_a_server_that_rejects_the_include_gets_the_plain_search_then_the_batch():
    ehr = IncludingEhr([medication_request("mr1", "Medication/m1")], [medication("m1")], reject_include=True)
    responses.add_callback(responses.GET, ANY_URL, callback=ehr)
    record = gather_without_prefetch(client())
    queries = [parse_qs(urlsplit(c.request.url).query) for c in responses.calls]
    assert [q.get("_include") for q in queries] == [["MedicationRequest:medication"], None, None]
    assert "_id" in queries[2]
    assert any(r.get("id") == "m1" for r in record.resources) and record.problems() == []


def test_the_include_is_added_only_to_medication_searches_without_one():
    from cds_service.service.fhir_medications import with_medication_include

    assert with_medication_include("MedicationRequest?patient=p1") == (
        "MedicationRequest?patient=p1&_include=MedicationRequest:medication")
    assert with_medication_include("MedicationStatement?patient=p1&status=active") == (
        "MedicationStatement?patient=p1&status=active&_include=MedicationStatement:medication")
    for unchanged in ("MedicationRequest?patient=p1&_include=MedicationRequest:requester",
                      "MedicationRequest/mr1", "Condition?patient=p1", "Medication?_id=m1"):
        assert with_medication_include(unchanged) == unchanged


@responses.activate
def test_included_medications_do_not_count_as_search_results_not_read():
    page = {"resourceType": "Bundle", "type": "searchset", "total": 3, "entry": [
        {"resource": medication_request("mr1", "Medication/m1"), "search": {"mode": "match"}},
        {"resource": medication("m1"), "search": {"mode": "include"}},
    ], "link": [{"relation": "next", "url": f"{BASE}/MedicationRequest?page=2"}]}
    responses.get(f"{BASE}/MedicationRequest", json=page)
    result = client(max_pages=1).fetch(hook_request(), {"medicationRequests": "MedicationRequest?patient=p1"}, {})
    assert [r["id"] for r in result["medicationRequests"].resources] == ["mr1", "m1"]
    assert result["medicationRequests"].error == "only 1 page read (cap CDS_FETCH_MAX_PAGES=1); about 2 resources not read"


def test_proxies_and_ca_bundle_come_from_the_environment_and_netrc_never(monkeypatch, tmp_path):
    seen = []

    def fake_send(request, **kwargs):
        seen.append({**kwargs, "headers": dict(request.headers)})
        raise requests.exceptions.ConnectTimeout()

    (tmp_path / ".netrc").write_text("machine ehr.example.org login someone password secret\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    fetcher = client()
    monkeypatch.setattr(fetcher._adapter, "send", fake_send)
    fetcher.fetch(hook_request(), {"patient": "Patient/p1"}, {})
    assert seen[0]["proxies"].get("https") == "http://proxy.example:3128"
    assert seen[0]["verify"] == str(tmp_path / "ca.pem")
    assert fetcher.session.trust_env is False  # requests would otherwise add ~/.netrc's Basic auth over the token
    assert not seen[0]["headers"].get("Authorization", "").startswith("Basic"), "~/.netrc is never read"
    assert "gzip" in seen[0]["headers"]["Accept-Encoding"] and seen[0]["headers"]["User-Agent"]
    monkeypatch.setenv("NO_PROXY", "ehr.example.org")
    fetcher.fetch(hook_request(), {"patient": "Patient/p1"}, {})
    assert "https" not in seen[1]["proxies"]


def test_gather_reports_unresolvable_medications_without_a_fhir_server():
    body = {
        "hook": "patient-view", "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": "p1", "userId": "Practitioner/1"},
        "prefetch": {"patient": PATIENT, "conditions": bundle([]),
                     "medicationRequests": bundle([medication_request("mr", "Medication/m9")])},
    }
    request = parse_hook_request(body, expected_hook="patient-view", allow_http_fhir_server=True)
    templates = {key: services()[PATIENT_VIEW].prefetch[key] for key in body["prefetch"]}
    record = gather(request, templates, set(REQUIRED_KEYS), client())
    assert record.missing_optional == [MEDICATION_KEY]
    assert "no fhirServer" in record.keys[MEDICATION_KEY].error and "Medication/m9" in record.keys[MEDICATION_KEY].error


# ---------------------------------------------------------------------------------------------- through the service


class FakeEhr:
    """A mocked FHIR server holding one patient's resources: reads by id, searches by type (filters ignored, as
    request_builder does), and per-type failures."""

    def __init__(self, resources: list[dict], fail: dict[str, dict] | None = None):
        self.resources, self.fail = resources, fail or {}

    def __call__(self, request):
        path = urlsplit(request.url).path[len(urlsplit(BASE).path) + 1 :]
        resource_type, _, rid = path.partition("/")
        if resource_type in self.fail:
            answer = self.fail[resource_type]
            if "exception" in answer:
                raise answer["exception"]
            return answer.get("status", 200), {}, answer.get("body", "")
        matching = [r for r in self.resources if r["resourceType"] == resource_type]
        if rid:
            found = [r for r in matching if r.get("id") == rid]
            return (200, {}, json.dumps(found[0])) if found else (404, {}, "")
        if resource_type == "Medication":
            ids = parse_qs(urlsplit(request.url).query).get("_id", [""])[0].split(",")
            matching = [r for r in matching if r.get("id") in ids]
        return 200, {}, json.dumps(bundle(matching))


SCENARIO = "foundation-calcinosis-ckd-hyperphosphatemia"


def app_with(fetcher: FhirClient):
    """The app with this fetcher (make_app builds its own from the settings)."""
    settings = Settings(auth="off", fhir_allow_http=True, log_level="WARNING", fhir_servers=("*",), **isolated_state())
    return create_app(settings, clock=fixed_clock(NOW), fetcher=fetcher)


def scenario_call(*, fail: dict | None = None, token: str | None = TOKEN, extra: list[dict] | None = None):
    """(full-prefetch response, no-prefetch request body, fake EHR) for the fixture scenario."""
    service_id, body = scenario_request(load_scenario(SCENARIO))
    resources = [e["resource"] for e in load_scenario(SCENARIO)["bundle"]["entry"]] + (extra or [])
    without = copy.deepcopy(body)
    del without["prefetch"]
    without["fhirServer"] = BASE
    if token:
        without["fhirAuthorization"] = {
            "access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "cds",
        }
    return service_id, body, without, FakeEhr(resources, fail)


def card_view(response: dict) -> list[tuple]:
    return sorted(
        (c["summary"], c["indicator"], tuple(c["extension"]["calcinosis-cds"]["rules"])) for c in response["cards"]
    )


@responses.activate
def test_no_prefetch_gives_the_same_cards_as_full_prefetch():
    service_id, full, without, ehr = scenario_call()
    responses.add_callback(responses.GET, ANY_URL, callback=ehr)
    app = make_app().test_client()
    expected = app.post(f"/cds-services/{service_id}", json=full)
    assert len(responses.calls) == 0  # full prefetch: nothing fetched
    fetched = app.post(f"/cds-services/{service_id}", json=without)
    assert fetched.status_code == 200, fetched.get_data(as_text=True)
    assert card_view(fetched.get_json()) == card_view(expected.get_json())
    assert {"R01", "R17", "R18"} <= fired_rules(fetched.get_json())
    assert "extension" not in fetched.get_json()
    assert len(responses.calls) == len(services()[PATIENT_VIEW].prefetch)


@responses.activate
def test_null_keys_are_never_fetched():
    service_id, full, without, ehr = scenario_call()
    responses.add_callback(responses.GET, ANY_URL, callback=ehr)
    full["fhirServer"] = BASE
    full["prefetch"]["procedures"] = None
    del full["prefetch"]["serviceRequests"]
    response = make_app().test_client().post(f"/cds-services/{service_id}", json=full)
    assert response.status_code == 200
    assert [urlsplit(c.request.url).path for c in responses.calls] == ["/fhir/ServiceRequest"]


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 401},
        {"status": 403},
        {"body": "not json"},
        {"exception": requests.exceptions.ReadTimeout()},
        {"exception": requests.exceptions.ConnectionError()},
    ],
    ids=["500", "401", "403", "invalid-json", "timeout", "unreachable"],
)
@pytest.mark.parametrize("resource_type", ["Patient", "Condition"])
@responses.activate
def test_a_required_key_that_cannot_be_fetched_gives_412_with_an_operation_outcome(resource_type, fault):
    service_id, _, without, ehr = scenario_call(fail={resource_type: fault})
    responses.add_callback(responses.GET, ANY_URL, callback=ehr)
    response = make_app().test_client().post(f"/cds-services/{service_id}", json=without)
    assert response.status_code == 412
    body = response.get_json()
    key = "patient" if resource_type == "Patient" else "conditions"
    assert body["resourceType"] == "OperationOutcome" and body["missing"] == [key]
    assert body["issue"][0]["code"] == "incomplete"
    assert any(issue["diagnostics"].startswith(f"{key}: ") for issue in body["issue"])
    assert TOKEN not in response.get_data(as_text=True)


@responses.activate
def test_an_unreachable_server_gives_412_naming_both_required_keys():
    service_id, _, without, _ = scenario_call()
    responses.add(responses.GET, ANY_URL, body=requests.exceptions.ConnectionError())
    response = make_app().test_client().post(f"/cds-services/{service_id}", json=without)
    assert response.status_code == 412 and response.get_json()["missing"] == ["conditions", "patient"]


@responses.activate
def test_a_slow_server_gives_412_at_the_deadline_not_a_hang():
    service_id, _, without, _ = scenario_call()
    slow = SlowServer(5.0, PATIENT)
    responses.add_callback(responses.GET, ANY_URL, callback=slow)
    fetcher = client(deadline_seconds=0.2)
    started = time.monotonic()
    try:
        response = app_with(fetcher).test_client().post(f"/cds-services/{service_id}", json=without)
    finally:
        slow.release.set()
        fetcher.close(wait=True)
    assert time.monotonic() - started < 1.5
    assert response.status_code == 412
    assert "deadline of 0.2 s" in json.dumps(response.get_json())


@responses.activate
def test_missing_optional_data_still_gives_the_cards_it_can_and_reports_the_gap():
    service_id, _, without, ehr = scenario_call(fail={"MedicationRequest": {"status": 503}})
    responses.add_callback(responses.GET, ANY_URL, callback=ehr)
    response = make_app().test_client().post(f"/cds-services/{service_id}", json=without)
    assert response.status_code == 200
    body = response.get_json()
    assert {"R01", "R17", "R18"} <= fired_rules(body)
    assert body["extension"]["calcinosis-cds"]["missingData"] == [
        {"prefetchKey": "medicationRequests", "issue": "the FHIR server failed (503)"}
    ]


@responses.activate
def test_a_missing_medication_is_fetched_once_and_an_absent_one_reported():
    extra = [medication_request("mr1", "Medication/m1"), medication_request("mr2", "Medication/gone"), medication("m1")]
    service_id, _, without, ehr = scenario_call(extra=extra)
    responses.add_callback(responses.GET, ANY_URL, callback=ehr)
    response = make_app().test_client().post(f"/cds-services/{service_id}", json=without)
    assert response.status_code == 200
    medication_calls = [c for c in responses.calls if urlsplit(c.request.url).path == "/fhir/Medication"]
    assert len(medication_calls) == 1
    assert parse_qs(urlsplit(medication_calls[0].request.url).query)["_id"] == ["m1,gone"]
    assert response.get_json()["extension"]["calcinosis-cds"]["missingData"] == [
        {"prefetchKey": MEDICATION_KEY, "issue": "not found on the FHIR server: Medication/gone"}
    ]


@pytest.mark.parametrize(
    ("server", "allow_http", "status"),
    [
        ("http://ehr.example.org/fhir", False, 400),
        ("ftp://ehr.example.org/fhir", True, 400),
        ("file:///etc/passwd", True, 400),
    ],
)
def test_fhir_server_scheme_rules(server, allow_http, status):
    service_id, _, without, _ = scenario_call()
    without["fhirServer"] = server
    with responses.RequestsMock() as mocked:  # any request at all would fail the test
        response = make_app(fhir_allow_http=allow_http).test_client().post(f"/cds-services/{service_id}", json=without)
        assert len(mocked.calls) == 0
    assert response.status_code == status


@responses.activate
def test_plain_http_fhir_server_is_fetched_when_allowed():
    service_id, full, without, ehr = scenario_call(token=None)
    without["fhirServer"] = BASE.replace("https://", "http://")
    responses.add_callback(responses.GET, re.compile(r"http://ehr\.example\.org/fhir/.*"), callback=ehr)
    response = make_app(fhir_allow_http=True).test_client().post(f"/cds-services/{service_id}", json=without)
    assert response.status_code == 200 and response.get_json()["cards"]


# ---------------------------------------------------------------------------------------------- the token stays secret


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(JsonFormatter().format(record))
        self.lines.append(TextFormatter().format(record))


@responses.activate
def test_the_access_token_never_appears_in_logs():
    capture = Capture()
    loggers = [logging.getLogger(), logging.getLogger("cds_service"), logging.getLogger("urllib3")]
    levels = [logger.level for logger in loggers]
    app = make_app()
    for logger in loggers:
        logger.addHandler(capture)
        logger.setLevel(logging.DEBUG)
    try:
        for fault in ({"status": 401}, {"exception": requests.exceptions.ReadTimeout()}, {"exception": RuntimeError(TOKEN)}):
            service_id, _, without, ehr = scenario_call(fail={"Patient": fault, "MedicationRequest": fault})
            responses.add_callback(responses.GET, ANY_URL, callback=ehr)
            response = app.test_client().post(f"/cds-services/{service_id}", json=without)
            assert response.status_code == 412
            assert TOKEN not in response.get_data(as_text=True)
            responses.reset()
        service_id, _, without, ehr = scenario_call()
        responses.add_callback(responses.GET, ANY_URL, callback=ehr)
        assert app.test_client().post(f"/cds-services/{service_id}", json=without).status_code == 200
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(capture)
            logger.setLevel(level)
    assert any("fetched" in line for line in capture.lines), "the capture saw no fetch log at all"
    leaked = [line for line in capture.lines if TOKEN in line]
    assert leaked == []


def test_the_token_is_not_in_the_client_or_request_repr():
    request = hook_request()
    assert TOKEN not in repr(request) and TOKEN not in repr(client().__dict__)
