"""Issue 16, findings 1, 2, 7 and 8, redone as found: FHIR servers on loopback that drip, send backslash and relative
`next` links, and capture any Authorization header they receive; a call's byte budget; which servers may be
fetched from, and 412s that say which key is missing without describing the network."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid

import pytest

import cds_service.service.fhir_client as fhir_client
from cds_service.service.fhir_client import FhirClient
from cds_service.service.protocol import parse_hook_request

from ._loopback import Answer, http_answer, loopback_server
from ._processes import free_port
from .conftest import PATIENT_VIEW, make_app, minimal_request

TOKEN = "tok-7d1e-must-stay-home"


def hook_request(base: str, *, listed: bool = True, prefetch: dict | None = None):
    body = {
        "hook": "patient-view", "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": "p1", "userId": "Practitioner/1"}, "fhirServer": base,
        "fhirAuthorization": {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "x",
                              "subject": "cds"},
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    request = parse_hook_request(body, expected_hook="patient-view", allow_http_fhir_server=True)
    return dataclasses.replace(request, fhir_server_listed=listed)


def searchset(ids, next_url: str | None = None) -> dict:
    bundle = {"resourceType": "Bundle", "type": "searchset",
              "entry": [{"resource": {"resourceType": "Condition", "id": i}} for i in ids]}
    if next_url is not None:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


# --- finding 1: the token leaves only for the fhirServer's origin ---------------------------------------------------


@pytest.fixture
def evil_and_ehr():
    """An 'evil' server and an EHR whose first Conditions page links to the evil one through a backslash: urlsplit
    reads the host after the @ (the EHR), urllib3 connects to the one before the backslash (evil)."""
    links = {}
    with loopback_server(lambda r: http_answer(200, searchset(["stolen"]))) as evil:
        def ehr_answer(request):
            if "page=2" in request.target:
                return http_answer(200, searchset(["c2"]))
            return http_answer(200, searchset(["c1"], links["next"]))

        with loopback_server(ehr_answer) as ehr:
            links["next"] = f"http://127.0.0.1:{evil.port}\\@127.0.0.1:{ehr.port}/fhir/Condition?page=2"
            yield evil, ehr, links


def test_a_backslash_next_link_from_the_server_never_takes_the_token_elsewhere(evil_and_ehr):
    evil, ehr, _ = evil_and_ehr
    result = FhirClient().fetch(hook_request(f"{ehr.base}/fhir"), {"conditions": "Condition?patient=p1"}, {})
    assert evil.requests == [], "nothing may be sent to the host before the backslash"
    assert [r["id"] for r in result["conditions"].resources] == ["c1"]
    assert "outside the fhirServer's origin" in result["conditions"].error
    assert ehr.authorizations() == [f"Bearer {TOKEN}"]


def test_a_backslash_next_link_of_a_prefetched_bundle_never_takes_the_token_elsewhere(evil_and_ehr):
    evil, ehr, links = evil_and_ehr
    result = FhirClient().fetch(hook_request(f"{ehr.base}/fhir"), {}, {"conditions": links["next"]})
    assert evil.requests == []
    assert "outside the fhirServer's origin" in result["conditions"].error


def test_the_same_through_the_service_gives_the_first_page_and_reports_the_refused_link(evil_and_ehr):
    evil, ehr, links = evil_and_ehr
    body = minimal_request(fhirServer=f"{ehr.base}/fhir", fhirAuthorization={
        "access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "x", "subject": "cds"})
    body["prefetch"]["conditions"] = searchset(["c0"], links["next"])
    response = make_app(fhir_servers=(f"{ehr.base}/fhir",)).test_client().post(f"/cds-services/{PATIENT_VIEW}", json=body)
    assert response.status_code == 200, response.get_json()
    assert evil.requests == []
    assert "outside the fhirServer's origin" in json.dumps(response.get_json()["extension"])


def test_a_relative_next_link_of_a_prefetched_bundle_is_followed_on_the_fhir_server():
    with loopback_server(lambda r: http_answer(200, searchset(["c2"]))) as ehr:
        result = FhirClient().fetch(hook_request(f"{ehr.base}/fhir"), {}, {"conditions": "Condition?page=2"})
        assert result["conditions"].error is None and [r["id"] for r in result["conditions"].resources] == ["c2"]
        assert [r.target for r in ehr.requests] == ["/fhir/Condition?page=2"]
        assert ehr.authorizations() == [f"Bearer {TOKEN}"]


def test_a_redirect_is_not_followed_and_the_token_stays_home():
    with loopback_server(lambda r: http_answer(200, {"resourceType": "Patient", "id": "p1"})) as other:
        with loopback_server(lambda r: http_answer(302, b"", {"Location": f"{other.base}/fhir/Patient/p1"})) as ehr:
            result = FhirClient().fetch(hook_request(f"{ehr.base}/fhir"), {"patient": "Patient/p1"}, {})
    assert other.requests == []
    assert "redirect (302)" in result["patient"].error


# --- finding 2: a dripping server stretches nothing and starves no one ------------------------------------------------


def dripping(body: dict) -> Answer:
    """The answer one byte every 0.25 s: never idle long enough for a read timeout."""
    return Answer(http_answer(200, body), drip_bytes=10_000, drip_interval=0.25)


KEYS = {f"k{i}": f"Condition?patient=p1&k={i}" for i in range(9)}


def test_a_dripping_server_holds_neither_the_call_nor_its_threads_past_the_deadline():
    with loopback_server(lambda r: dripping(searchset(["c1"]))) as slow:
        fetcher = FhirClient(deadline_seconds=1.0, read_timeout_seconds=1.0)
        started = time.monotonic()
        results = fetcher.fetch(hook_request(slow.base), KEYS, {})
        answered = time.monotonic() - started
        busy = sum(1 for t in threading.enumerate() if t.name.startswith("fhir-fetch") and _is_busy(t))
        closing = time.monotonic()
        fetcher.close(wait=True)  # returns at once when no fetch thread is still reading
        assert time.monotonic() - closing < 0.5, "a fetch thread was still reading after the call answered"
    assert answered < 1.0 + fhir_client.STOP_GRACE_SECONDS + 0.3
    assert all(r.error == "not obtained within the fetch deadline of 1 s" for r in results.values())
    assert busy == 0


def _is_busy(thread: threading.Thread) -> bool:
    import sys
    import traceback

    frame = sys._current_frames().get(thread.ident)
    return frame is not None and any("_get_json" in line for line in traceback.format_stack(frame))


def test_after_ten_dripping_calls_a_healthy_server_is_answered_at_once():
    with loopback_server(lambda r: dripping(searchset(["c1"]))) as slow, \
         loopback_server(lambda r: http_answer(200, searchset(["c1"]))) as healthy:
        fetcher = FhirClient(deadline_seconds=1.0)
        callers = [threading.Thread(target=fetcher.fetch, args=(hook_request(slow.base), KEYS, {})) for _ in range(10)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=10)
        try:
            for _ in range(3):
                started = time.monotonic()
                results = fetcher.fetch(hook_request(healthy.base), KEYS, {})
                assert [k for k, r in results.items() if r.error] == []
                assert time.monotonic() - started < 0.9
        finally:
            fetcher.close(wait=False)


# --- finding 7: one byte budget for the whole call; no parse after the answer -----------------------------------------


def test_one_byte_budget_covers_every_key_and_page_of_a_call(monkeypatch):
    condition = {"resourceType": "Condition", "id": "c", "note": [{"text": "x" * 1000}]}
    page = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": condition}] * 300,
            "link": [{"relation": "next", "url": "Condition?page=next"}]}
    raw = http_answer(200, page)  # ~300 KB a page, endless pages
    sent = []
    with loopback_server(lambda r: sent.append(len(raw)) or raw) as ehr:
        parses = []
        original = fhir_client.parse_json
        monkeypatch.setattr(fhir_client, "parse_json", lambda body: parses.append(len(body)) or original(body))
        fetcher = FhirClient(max_bytes=2_000_000, max_pages=50)
        results = fetcher.fetch(hook_request(ehr.base), KEYS, {})
        answered = len(parses)
        time.sleep(0.3)
        fetcher.close(wait=True)
    assert sum(parses) <= 2_000_000 + 9 * 64 * 1024, "what was parsed stayed within the call's budget"
    assert any("budget of 2000000 bytes" in (r.error or "") for r in results.values())
    assert len(parses) == answered, "nothing was parsed after the call answered"


# --- finding 8: which servers; 412s without network details ----------------------------------------------------------


def test_a_loopback_fhir_server_is_fetched_only_when_listed():
    with loopback_server(lambda r: http_answer(200, {"resourceType": "Patient", "id": "p1"})) as ehr:
        unlisted = FhirClient().fetch(hook_request(ehr.base, listed=False), {"patient": "Patient/p1"}, {})
        assert ehr.requests == [], "the request is refused right after connect, before anything is sent"
        assert "not listed" in unlisted["patient"].error
        listed = FhirClient().fetch(hook_request(ehr.base), {"patient": "Patient/p1"}, {})
        assert listed["patient"].error is None


@pytest.mark.parametrize("server", ["https://169.254.169.254/latest", "https://10.0.0.1/fhir", "https://127.0.0.1:22",
                                    "http://[::1]:8080/fhir", "https://ehr.example.org/fhir"])
def test_a_service_call_fetches_only_from_configured_servers(server):
    # Nothing is sent anywhere: the fhirServer is refused before any connection.
    body = minimal_request(fhirServer=server)
    del body["prefetch"]["conditions"]
    response = make_app(fhir_servers=("https://other-ehr.example.org/fhir",)).test_client().post(
        f"/cds-services/{PATIENT_VIEW}", json=body)
    assert response.status_code == 412
    outcome = response.get_json()
    assert outcome["missing"] == ["conditions"]
    assert "not one this service may fetch from" in json.dumps(outcome)


def test_the_412_says_which_key_is_missing_not_whether_the_port_was_closed_or_slow():
    closed = free_port()
    with loopback_server(lambda r: Answer(b"x", drip_bytes=1, drip_interval=10)) as silent:  # accepts, says nothing
        texts = []
        for base in (f"http://127.0.0.1:{closed}/fhir", f"{silent.base}/fhir"):
            body = minimal_request(fhirServer=base)
            del body["prefetch"]["conditions"]
            app = make_app(fhir_servers=(base,), fetch_deadline_seconds=1.0, fetch_read_timeout_seconds=0.3)
            response = app.test_client().post(f"/cds-services/{PATIENT_VIEW}", json=body)
            assert response.status_code == 412 and response.get_json()["missing"] == ["conditions"]
            texts.append([i["diagnostics"] for i in response.get_json()["issue"]])
    assert texts[0] == texts[1], "a closed port and a silent server read alike"
    assert not any(word in json.dumps(texts) for word in ("refused", "connect", "timed out", "127.0.0.1", str(closed)))
