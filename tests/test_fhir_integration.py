"""Fetching against a real FHIR server: sekmet-fhir (pinned in pyproject's test extra) started on loopback.

A patient with calcinosis cutis is loaded into it; the service is then called with no prefetch and `fhirServer`
pointing at it, and must give the same cards as with the full prefetch built from the same resources. Sekmet pages
its searches (20 a page by default), so the Conditions come over more than one page through its real `next` links,
and it requires a Bearer token, so the token is checked end to end.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import time
import uuid
from datetime import timedelta

import pytest
import requests

from cds_service import create_app
from cds_service.service.clock import fixed_clock
from cds_service.service.request_builder import request_from_resources
from cds_service.service.discovery import services
from cds_service.service.settings import Settings

from ._processes import free_port, server_process
from .conftest import NOW, PATIENT_VIEW, fired_rules, isolated_state, make_app

pytest.importorskip("sekmet", reason="sekmet-fhir (the FHIR server of the integration test) is not installed")

pytestmark = pytest.mark.slow

TOKEN = "integration-token-5c1e"
PATIENT_ID = "calc-1"


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory):
    """A sekmet FHIR server on 127.0.0.1, with its own data directory, stopped at the end of the module."""
    root = tmp_path_factory.mktemp("sekmet")
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    config = root / "settings.yaml"
    # base_url matters: sekmet writes its next links from it, and the service follows only same-origin links.
    config.write_text(
        "\n".join(
            [
                f"base_url: {base}",
                "host: 127.0.0.1",
                f"port: {port}",
                f"data_dir: {root / 'data'}",
                "simulator: {enabled: false}",  # it would otherwise act on MedicationRequests written to it
                "log_inbound: false",
                f"server_auth: {{types: [bearer], tokens: [{TOKEN}]}}",
            ]
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKMET_")}
    command = [sys.executable, "-c", "from sekmet.cli import app; app()", "serve", "--config", str(config)]
    with server_process(command, f"{base}/metadata", name="sekmet", timeout=20, cwd=root, env=env):
        yield base


def at(delta: timedelta) -> str:
    return (NOW - delta).isoformat(timespec="seconds")


def patient_resources() -> list[dict]:
    subject = {"reference": f"Patient/{PATIENT_ID}"}
    active = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}
    icd10 = "http://hl7.org/fhir/sid/icd-10-cm"
    resources: list[dict] = [
        {"resourceType": "Patient", "id": PATIENT_ID, "gender": "female",
         "birthDate": (NOW - timedelta(days=365.25 * 58)).date().isoformat()},
        {"resourceType": "Condition", "id": "calc-cutis", "subject": subject, "clinicalStatus": active,
         "code": {"coding": [{"system": icd10, "code": "L94.2", "display": "Calcinosis cutis"}]},
         "onsetDateTime": at(timedelta(days=300))},
        {"resourceType": "Condition", "id": "calc-ckd4", "subject": subject, "clinicalStatus": active,
         "code": {"coding": [{"system": icd10, "code": "N18.4", "display": "Chronic kidney disease, stage 4 (severe)"}]},
         "onsetDateTime": at(timedelta(days=700))},
        {"resourceType": "Observation", "id": "calc-phos", "status": "final", "subject": subject,
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code": "laboratory"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "2777-1",
                              "display": "Phosphate [Mass/volume] in Serum or Plasma"}]},
         "effectiveDateTime": at(timedelta(days=5)),
         "valueQuantity": {"value": 5.8, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}},
        {"resourceType": "Medication", "id": "calc-sevelamer",
         "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1001173"}],
                  "text": "sevelamer carbonate 800 MG Oral Tablet"}},
        {"resourceType": "MedicationRequest", "id": "calc-mr1", "status": "active", "intent": "order",
         "subject": subject, "medicationReference": {"reference": "Medication/calc-sevelamer"},
         "authoredOn": at(timedelta(days=30))},
    ]
    # Enough resolved Conditions that sekmet's default page of 20 makes the Conditions search two pages long.
    for n in range(24):
        resources.append(
            {"resourceType": "Condition", "id": f"calc-old-{n}", "subject": subject,
             "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                            "code": "resolved"}]},
             "code": {"text": f"Old problem {n}"}, "onsetDateTime": at(timedelta(days=2000 + n))}
        )
    return resources


@pytest.fixture(scope="module")
def loaded(sekmet):
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in patient_resources()
        ],
    }
    response = requests.post(
        sekmet, json=transaction, timeout=15,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 200, response.text[:2000]
    statuses = [entry["response"]["status"] for entry in response.json()["entry"]]
    assert all(status.startswith(("200", "201")) for status in statuses), statuses
    return sekmet


def authorization(token: str = TOKEN) -> dict:
    return {"access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read",
            "subject": "calcinosis-cds", "patient": PATIENT_ID}


def card_view(response: dict) -> list[tuple]:
    return sorted(
        (card["summary"], card["indicator"], tuple(card["extension"]["calcinosis-cds"]["rules"]))
        for card in response["cards"]
    )


def call(body: dict, **settings):
    # The server is on loopback: it must be listed by URL (CDS_FHIR_SERVERS) to be fetched from at all.
    listed = {"fhir_servers": (body["fhirServer"],)} if body.get("fhirServer") else {}
    response = make_app(**{**listed, **settings}).test_client().post(f"/cds-services/{PATIENT_VIEW}", json=body)
    return response.status_code, response.get_json()


def test_no_prefetch_gives_the_same_cards_as_full_prefetch(loaded):
    full = request_from_resources(services()[PATIENT_VIEW], patient_resources())
    # The Medication is in no prefetch key (no template asks for it): both calls resolve it from the server (the
    # full prefetch with the Medication?_id= batch, the fetch through the MedicationRequest search's _include).
    full.update(fhirServer=loaded, fhirAuthorization=authorization())
    without = copy.deepcopy(full)
    del without["prefetch"]
    without["hookInstance"] = str(uuid.uuid4())

    status_full, expected = call(full)
    started = time.perf_counter()
    status, fetched = call(without)
    elapsed = time.perf_counter() - started

    assert status_full == 200 and status == 200, fetched
    assert card_view(fetched) == card_view(expected)
    assert {"R01", "R17", "R18"} <= fired_rules(fetched)
    # Nothing missing: every key, both Conditions pages and the referenced Medication were obtained.
    assert "missingData" not in fetched.get("extension", {}).get("calcinosis-cds", {}), fetched["extension"]
    assert "missingData" not in expected.get("extension", {}).get("calcinosis-cds", {}), expected["extension"]
    assert elapsed < 4.0


def test_sekmet_pages_the_conditions_and_a_page_cap_of_one_is_reported(loaded):
    body = request_from_resources(services()[PATIENT_VIEW], patient_resources())
    del body["prefetch"]
    body.update(fhirServer=loaded, fhirAuthorization=authorization())
    status, response = call(body, fetch_max_pages=1)
    assert status == 200  # the first page holds the calcinosis: partial Conditions, reported
    assert {"prefetchKey": "conditions", "issue": "only 1 page read (cap CDS_FETCH_MAX_PAGES=1); about 6 resources not read"} in (
        response["extension"]["calcinosis-cds"]["missingData"]
    )


class NewConnections(logging.Handler):
    """Counts connections urllib3 opens, and the requests it sends."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.count = self.requests = 0

    def emit(self, record):
        message = record.getMessage()
        self.count += message.startswith("Starting new HTTP connection")
        self.requests += '"GET ' in message


def test_connections_are_reused_between_calls(loaded):
    from cds_service.service.fhir_client import FhirClient

    body = request_from_resources(services()[PATIENT_VIEW], patient_resources())
    del body["prefetch"]
    body.update(fhirServer=loaded, fhirAuthorization=authorization())
    fetcher = FhirClient()
    settings = Settings(auth="off", fhir_allow_http=True, log_level="WARNING", fhir_servers=(loaded,),
                        **isolated_state())
    app = create_app(settings, clock=fixed_clock(NOW), fetcher=fetcher)
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    counter, level = NewConnections(), urllib3_log.level
    urllib3_log.addHandler(counter)
    urllib3_log.setLevel(logging.DEBUG)
    try:
        first = app.test_client().post(f"/cds-services/{PATIENT_VIEW}", json=body)
        opened = counter.count
        body["hookInstance"] = str(uuid.uuid4())
        second = app.test_client().post(f"/cds-services/{PATIENT_VIEW}", json=body)
    finally:
        urllib3_log.removeHandler(counter)
        urllib3_log.setLevel(level)
        fetcher.close(wait=True)
    assert first.status_code == 200 and second.status_code == 200
    keys = len(services()[PATIENT_VIEW].prefetch)
    # Every key and a second Conditions page, twice (the Medication comes with the MedicationRequests through
    # _include: no Medication?_id= batch); over at most one connection per parallel key, shared by both calls
    # (without reuse there would be one connection a request).
    assert counter.requests == 2 * (keys + 1)
    assert 1 <= opened <= counter.count <= keys, f"{counter.count} connections for {counter.requests} requests"


def test_every_prefetch_template_is_a_search_sekmet_fully_supports(loaded):
    """Sekmet reports a search parameter it ignores as an OperationOutcome entry (search.mode=outcome). The queries
    are checked as the client sends them, with the Medication _include of the medication searches."""
    from cds_service.service.fhir_medications import with_medication_include

    with requests.Session() as session:
        session.headers.update({"Authorization": f"Bearer {TOKEN}", "Accept": "application/fhir+json"})
        for key, template in services()[PATIENT_VIEW].prefetch.items():
            query = with_medication_include(template.replace("{{context.patientId}}", PATIENT_ID))
            answer = session.get(f"{loaded}/{query}", timeout=5).json()
            outcomes = [e for e in answer.get("entry", []) if e["resource"]["resourceType"] == "OperationOutcome"]
            assert answer["resourceType"] in ("Patient", "Bundle") and outcomes == [], (key, outcomes)


def test_a_wrong_token_gives_412_naming_the_required_keys(loaded):
    body = request_from_resources(services()[PATIENT_VIEW], patient_resources())
    del body["prefetch"]
    body.update(fhirServer=loaded, fhirAuthorization=authorization("not-the-token"))
    status, outcome = call(body)
    assert status == 412
    assert outcome["resourceType"] == "OperationOutcome" and outcome["missing"] == ["conditions", "patient"]
    assert "refused the access token (401)" in str(outcome["issue"])
    assert "not-the-token" not in str(outcome)


def test_an_unreachable_fhir_server_gives_412_at_once():
    body = request_from_resources(services()[PATIENT_VIEW], patient_resources())
    del body["prefetch"]
    body["fhirServer"] = f"http://127.0.0.1:{free_port()}/fhir"  # nothing listens there
    started = time.perf_counter()
    status, outcome = call(body)
    assert status == 412 and outcome["missing"] == ["conditions", "patient"]
    # No network detail: refused, timed out and unreachable read alike (issue 16, finding 8).
    assert "could not be reached" in str(outcome["issue"])
    assert time.perf_counter() - started < 2.0
