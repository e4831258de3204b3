"""The benchmark's fake FHIR server (bench/fhir_server.py) answers the service's queries as a FHIR server does: it
applies the search parameters the templates send, so the fetch path is measured on what a real server returns, and
the service concludes from its answers exactly what it concludes from a full prefetch."""

from __future__ import annotations

import json
from urllib.request import urlopen

from bench.fhir_server import FhirServer, search

from tests.conftest import NOW, fired_rules, isolated_state, make_app


def _observation(oid: str, system: str | None, code: str, when: str, status: str = "final") -> dict:
    coding = {"code": code} if system is None else {"system": system, "code": code}
    return {"resourceType": "Observation", "id": oid, "status": status, "code": {"coding": [coding]},
            "effectiveDateTime": when}


LOINC = "http://loinc.org"
RECORD = [
    _observation("calcium-old", LOINC, "17861-6", "2025-01-01"),
    _observation("calcium-new", LOINC, "17861-6", "2026-01-01"),
    _observation("heart-rate", LOINC, "8867-4", "2026-02-01"),
    _observation("no-system", None, "2777-1", "2025-06-01"),
    _observation("other-system", "http://example.org", "17861-6", "2025-07-01", status="cancelled"),
]


def _ids(resources: list[dict]) -> list[str]:
    return [r["id"] for r in resources]


def test_code_is_a_token_search_with_system_and_or_lists():
    assert _ids(search(RECORD, {"code": [f"{LOINC}|17861-6"]})) == ["calcium-old", "calcium-new"]
    assert _ids(search(RECORD, {"code": [f"{LOINC}|17861-6,{LOINC}|8867-4"]})) == [
        "calcium-old", "calcium-new", "heart-rate"]
    assert _ids(search(RECORD, {"code": ["17861-6"]})) == ["calcium-old", "calcium-new", "other-system"]
    assert _ids(search(RECORD, {"code": ["|2777-1"]})) == ["no-system"]
    assert _ids(search(RECORD, {"code": [f"{LOINC}|2777-1"]})) == []


def test_status_filters_and_sort_puts_the_newest_first():
    assert _ids(search(RECORD, {"status": ["final,amended"], "_sort": ["-date"]})) == [
        "heart-rate", "calcium-new", "no-system", "calcium-old"]


def test_count_pages_with_an_absolute_next_link_on_the_server():
    with FhirServer(RECORD, delay_seconds=0) as server:
        url = f"{server.url}/Observation?patient=p1&_sort=-date&_count=2"
        pages = []
        while url:
            with urlopen(url, timeout=5) as answer:
                bundle = json.load(answer)
            pages.append(_ids(e["resource"] for e in bundle["entry"]))
            assert bundle["total"] == len(RECORD)
            url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
            assert url is None or url.startswith(server.url + "/Observation?")
    assert pages == [["heart-rate", "calcium-new"], ["other-system", "no-system"], ["calcium-old"]]


def test_a_page_cap_splits_one_type_whatever_count_the_client_asks():
    with FhirServer(RECORD, delay_seconds=0, page_caps={"Observation": 2}) as server:
        url = f"{server.url}/Observation?patient=p1&_count=500"
        sizes = []
        while url:
            with urlopen(url, timeout=5) as answer:
                bundle = json.load(answer)
            sizes.append(len(bundle["entry"]))
            url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
    assert sizes == [2, 2, 1]


def test_the_service_concludes_the_same_from_the_fake_server_as_from_a_full_prefetch():
    from bench.data import SERVICE_ID, benchmark_patients
    from cds_service.service.fhir_client import FhirClient

    patient = benchmark_patients(("typical",), now=NOW)["typical"]
    prefetched = make_app(NOW).test_client().post(f"/cds-services/{SERVICE_ID}", json=patient.request())
    assert prefetched.status_code == 200
    with FhirServer(patient.resources, delay_seconds=0) as server:
        fetcher = FhirClient()
        try:
            from cds_service import create_app
            from cds_service.service.clock import fixed_clock
            from cds_service.service.settings import Settings

            app = create_app(Settings(auth="off", fhir_allow_http=True, log_level="WARNING",
                                      fhir_servers=(server.url,), **isolated_state()),
                             clock=fixed_clock(NOW), fetcher=fetcher)
            fetched = app.test_client().post(f"/cds-services/{SERVICE_ID}",
                                             json=patient.request_without_prefetch(server.url))
        finally:
            fetcher.close(wait=True)
    assert fetched.status_code == 200, fetched.get_json()
    assert fired_rules(fetched.get_json()) == fired_rules(prefetched.get_json()) != set()
    assert [c["summary"] for c in fetched.get_json()["cards"]] == [c["summary"] for c in prefetched.get_json()["cards"]]
    assert server.requests >= len(patient.request()["prefetch"])
