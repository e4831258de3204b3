"""POST /cds-services/{id}: every status code, and the prefetch shapes a client may send."""

import copy
import uuid
from datetime import datetime, timedelta

import pytest

from .conftest import (PATIENT_VIEW, fired_rules, load_scenario, make_app, minimal_request, scenario_request,
                       stable_keys, uuids_of, without_uuids)

URL = f"/cds-services/{PATIENT_VIEW}"


def calcinosis_request():
    _, body = scenario_request(load_scenario("foundation-calcinosis-ckd-hyperphosphatemia"))
    return body


def newer_than(observation):
    """A date one day after the Observation's: lab results are validated when the rules read them, newest first."""
    return (datetime.fromisoformat(observation["effectiveDateTime"]) + timedelta(days=1)).isoformat()


def post(client, body, **kwargs):
    return client.post(URL, json=body, **kwargs)


def test_valid_request_without_data_answers_empty_cards(client):
    response = post(client, minimal_request())
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_calcinosis_patient_gets_cards(client):
    response = post(client, calcinosis_request())
    assert response.status_code == 200
    assert {"R01", "R17", "R18"} <= fired_rules(response.get_json())


def test_unknown_service_is_404_json(client):
    response = client.post("/cds-services/no-such-service", json=minimal_request())
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_unknown_route_is_404_json(client):
    response = client.get("/nothing-here")
    assert response.status_code == 404 and response.is_json


def test_wrong_method_is_405_json(client):
    response = client.get(URL)
    assert response.status_code == 405 and response.is_json


def test_hook_not_matching_the_service_is_400(client):
    body = minimal_request(hook="order-sign")
    response = post(client, body)
    assert response.status_code == 400
    assert "does not match" in response.get_json()["error"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.pop("hook"), "hook is required"),
        (lambda b: b.update(hook=""), "hook must be a non-empty string"),
        (lambda b: b.update(hook="encounter-start"), "not supported"),
        (lambda b: b.pop("hookInstance"), "hookInstance is required"),
        (lambda b: b.update(hookInstance="not-a-uuid"), "hookInstance must be a UUID"),
        (lambda b: b.update(hookInstance=12), "hookInstance must be a non-empty string"),
        (lambda b: b.pop("context"), "context is required"),
        (lambda b: b.update(context=[]), "context must be a JSON object"),
        (lambda b: b["context"].pop("patientId"), "context.patientId is required"),
        (lambda b: b["context"].update(patientId="a b"), "context.patientId must be a FHIR id"),
        (lambda b: b["context"].pop("userId"), "context.userId is required"),
        (lambda b: b["context"].update(userId="nobody"), "context.userId must be a reference"),
        (lambda b: b["context"].update(userId="Device/1"), "context.userId must be a reference"),
        (lambda b: b["context"].update(encounterId=""), "context.encounterId must be a non-empty string"),
        (lambda b: b.update(fhirServer="ftp://ehr.example.org/fhir"), "absolute http(s) URL"),
        (lambda b: b.update(fhirServer="https://user:pw@ehr.example.org/fhir"), "credentials"),
        (lambda b: b.update(fhirAuthorization={"access_token": "t", "token_type": "Bearer", "expires_in": 300,
                                               "scope": "patient/*.read", "subject": "cds"}),
         "fhirServer is required when fhirAuthorization is present"),
        (lambda b: b.update(fhirServer="https://ehr.example.org/fhir", fhirAuthorization={"token_type": "Bearer"}),
         "fhirAuthorization.access_token is required"),
        (lambda b: b.update(fhirServer="https://ehr.example.org/fhir",
                            fhirAuthorization={"access_token": "t", "token_type": "MAC", "expires_in": 300,
                                               "scope": "s", "subject": "c"}), "token_type must be Bearer"),
        (lambda b: b.update(fhirServer="https://ehr.example.org/fhir",
                            fhirAuthorization={"access_token": "t", "token_type": "Bearer", "expires_in": "300",
                                               "scope": "s", "subject": "c"}), "expires_in must be an integer"),
        (lambda b: b.update(prefetch=[]), "prefetch must be a JSON object"),
        (lambda b: b["prefetch"].update(patient="Patient/p1"), "prefetch.patient must be a FHIR resource or null"),
        (lambda b: b["prefetch"].update(patient={"resourceType": "Patient", "id": "someone-else"}),
         "not context.patientId"),
    ],
)
def test_invalid_requests_get_a_clear_400(client, mutate, message):
    body = minimal_request()
    mutate(body)
    response = post(client, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    payload = response.get_json()
    assert payload["resourceType"] == "OperationOutcome"
    assert message in payload["error"]


def test_plain_http_fhir_server_is_refused_unless_allowed():
    body = minimal_request(fhirServer="http://ehr.example.org/fhir")
    refused = make_app(fhir_allow_http=False).test_client().post(URL, json=body)
    assert refused.status_code == 400 and "https" in refused.get_json()["error"]
    allowed = make_app(fhir_allow_http=True).test_client().post(URL, json=body)
    assert allowed.status_code == 200


def test_body_that_is_not_json_is_400(client):
    response = client.post(URL, data="{not json", content_type="application/json")
    assert response.status_code == 400 and response.is_json


def test_body_of_another_content_type_is_415(client):
    response = client.post(URL, data="hook=patient-view", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and response.is_json


def test_body_too_large_is_413():
    client = make_app(max_body_bytes=2048).test_client()
    body = minimal_request()
    body["padding"] = "x" * 4096
    response = client.post(URL, json=body)
    assert response.status_code == 413 and response.is_json


def test_deeply_nested_body_is_400_not_a_crash(client):
    nested = "[" * 5000 + "]" * 5000
    response = client.post(URL, data=nested, content_type="application/json")
    assert response.status_code == 400


# ---------------- prefetch values ----------------

def test_required_key_absent_without_fhir_server_is_412_naming_it(client):
    body = calcinosis_request()
    del body["prefetch"]["conditions"]
    response = post(client, body)
    assert response.status_code == 412
    payload = response.get_json()
    assert payload["resourceType"] == "OperationOutcome"
    assert payload["missing"] == ["conditions"]


def test_required_key_as_operation_outcome_is_412(client):
    body = calcinosis_request()
    body["prefetch"]["patient"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    response = post(client, body)
    assert response.status_code == 412
    assert response.get_json()["missing"] == ["patient"]


def test_null_required_key_means_no_data_not_an_error(client):
    body = calcinosis_request()
    body["prefetch"]["patient"] = None
    response = post(client, body)
    assert response.status_code == 200


def test_optional_key_absent_gives_the_cards_possible_and_says_what_is_missing(client):
    body = calcinosis_request()
    del body["prefetch"]["observations"]
    response = post(client, body)
    assert response.status_code == 200
    payload = response.get_json()
    assert "R18" not in fired_rules(payload), "no phosphate data, no diet card"
    assert "R17" in fired_rules(payload), "CKD alone still indicates nephrology"
    missing = payload["extension"]["calcinosis-cds"]["missingData"]
    assert [m["prefetchKey"] for m in missing] == ["observations"]


def test_optional_key_as_operation_outcome_is_reported(client):
    body = calcinosis_request()
    body["prefetch"]["medicationRequests"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}
    response = post(client, body)
    assert response.status_code == 200
    missing = response.get_json()["extension"]["calcinosis-cds"]["missingData"]
    assert [m["prefetchKey"] for m in missing] == ["medicationRequests"]


def test_absent_prefetch_object_without_fhir_server_is_412(client):
    body = calcinosis_request()
    del body["prefetch"]
    response = post(client, body)
    assert response.status_code == 412
    assert sorted(response.get_json()["missing"]) == ["conditions", "patient"]


def test_a_bad_resource_among_good_ones_is_skipped_and_reported(client):
    body = calcinosis_request()
    observations = body["prefetch"]["observations"]["entry"]
    broken = copy.deepcopy(observations[0]["resource"])
    broken["id"] = "broken"
    broken["code"]["coding"][0]["userSelected"] = "yes, five"  # must be a boolean: readable, but not valid FHIR
    broken["effectiveDateTime"] = newer_than(observations[0]["resource"])  # the newest: the rules read it first
    observations.append({"resource": broken})
    conditions = body["prefetch"]["conditions"]["entry"]
    conditions.append({"resource": {"resourceType": "Condition", "id": "bad-cond", "subject": {"reference": "Patient/p1"},
                                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L94.2"}]},
                                    "onsetDateTime": "yesterday"}})  # the gate reads it: not valid FHIR, so skipped
    response = post(client, body)
    assert response.status_code == 200
    payload = response.get_json()
    assert {"R01", "R17", "R18"} <= fired_rules(payload), "the good resources still count"
    skipped = {s["resource"]: s["issue"] for s in payload["extension"]["calcinosis-cds"]["skippedResources"]}
    assert set(skipped) == {"Observation/broken", "Condition/bad-cond"}
    assert all(issue.startswith("not valid FHIR R4") for issue in skipped.values())
    assert "five" not in str(skipped), "the report names where, not the values"


def test_a_resource_whose_id_is_not_a_string_is_reported_not_a_crash(client):
    body = calcinosis_request()
    conditions = body["prefetch"]["conditions"]["entry"]
    for bad_id in (["c"], {"value": "c"}, 7):  # an array or an object as id once gave a 500 (unhashable dedupe key)
        conditions.append({"resource": {"resourceType": "Condition", "id": bad_id, "subject": {"reference": "Patient/p1"},
                                        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L94.2"}]}}})
    response = post(client, body)
    assert response.status_code == 200
    payload = response.get_json()
    assert {"R01", "R17", "R18"} <= fired_rules(payload)
    issues = [s for s in payload["extension"]["calcinosis-cds"]["skippedResources"] if s["resource"] == "Condition"]
    assert len(issues) == 3 and all(s["issue"].startswith("not valid FHIR R4: id") for s in issues)


def test_resources_about_another_patient_are_ignored(client):
    body = calcinosis_request()
    for entry in body["prefetch"]["observations"]["entry"]:
        entry["resource"]["subject"] = {"reference": "Patient/someone-else"}
    payload = post(client, body).get_json()
    assert "R18" not in fired_rules(payload)
    assert any(s["issue"] == "it is about another patient" for s in payload["extension"]["calcinosis-cds"]["skippedResources"])


def test_searchset_with_a_next_link_and_no_fhir_server_is_reported_incomplete(client):
    body = calcinosis_request()
    body["prefetch"]["observations"]["link"] = [{"relation": "next", "url": "https://ehr.example.org/fhir/Observation?page=2"}]
    payload = post(client, body).get_json()
    assert "R18" in fired_rules(payload), "the first page is used"
    missing = payload["extension"]["calcinosis-cds"]["missingData"]
    assert missing[0]["prefetchKey"] == "observations"


def test_unknown_fields_and_extensions_are_ignored(client):
    body = calcinosis_request()
    body["extension"] = {"org.example.trace": {"id": "x"}}
    body["context"]["somethingNew"] = True
    assert post(client, body).status_code == 200


def test_same_data_gives_the_same_cards_and_keys_with_new_uuids(client):
    """A20: CDS Hooks makes the uuid one issued card's identity, so every response has new card and suggestion
    uuids; what identifies the finding from call to call is the stable key in the extension."""
    first = post(client, calcinosis_request()).get_json()
    second = post(client, dict(calcinosis_request(), hookInstance=str(uuid.uuid4()))).get_json()
    assert without_uuids(first) == without_uuids(second)
    assert len(set(uuids_of(first)) | set(uuids_of(second))) == 2 * len(uuids_of(first)) > 2
    assert stable_keys(first) == stable_keys(second) == [
        ("R01:high-phosphate+renal-insufficiency", []),
        ("R17:nephrology", ["R17:referral-nephrology"]),
        ("treatment-options:R03+R10", []),
        ("diet:R18+R20", ["R18:diet-phosphorus", "R18:referral-dietitian"]),
    ]


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["rules"] >= 3


def test_labs_that_could_not_be_obtained_are_not_read_as_no_workup(client):
    # A calcinosis patient whose Observations failed: R01 must not propose a work-up "because none is on file".
    body = minimal_request()
    body["prefetch"]["conditions"]["entry"] = [{"resource": {
        "resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L94.2"}]}}}]
    answered = post(client, body).get_json()
    workup = [c for c in answered["cards"] if "R01" in c["extension"]["calcinosis-cds"]["rules"]]
    assert workup and "work-up" in workup[0]["summary"], "with every lab key answered empty, the work-up is missing"
    body["prefetch"]["observations"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    failed = post(client, body).get_json()
    assert "R01" not in fired_rules(failed)
    assert [m["prefetchKey"] for m in failed["extension"]["calcinosis-cds"]["missingData"]] == ["observations"]


def test_a_resource_nested_too_deeply_is_skipped_and_the_rest_used(client):
    body = calcinosis_request()
    extension = {"url": "http://example.org/x", "valueString": "leaf"}
    for _ in range(300):  # parseable JSON, but deeper than any real resource
        extension = {"url": "http://example.org/x", "extension": [extension]}
    deep = copy.deepcopy(body["prefetch"]["observations"]["entry"][0]["resource"])
    deep["id"] = "deep"
    deep["valueQuantity"]["extension"] = [extension]  # in an element the rules read (and so validate)
    deep["effectiveDateTime"] = newer_than(deep)
    body["prefetch"]["observations"]["entry"].append({"resource": deep})
    response = post(client, body)
    assert response.status_code == 200
    payload = response.get_json()
    assert "R18" in fired_rules(payload)
    skipped = {s["resource"]: s["issue"] for s in payload["extension"]["calcinosis-cds"]["skippedResources"]}
    assert skipped == {"Observation/deep": "nested deeper than 64 levels"}


def test_an_error_in_an_element_no_rule_reads_costs_nothing(client):
    # A Patient whose name is not valid FHIR still gives its birth date (the child rules need the age), and a lab
    # result with a broken category is still the latest phosphate: resources are validated on what the rules read.
    body = calcinosis_request()
    patient = body["prefetch"]["patient"]
    patient["name"] = "Ann Example"  # must be a list of HumanName
    patient["birthDate"] = "2019-01-01"
    observations = body["prefetch"]["observations"]["entry"]
    odd = copy.deepcopy(observations[0]["resource"])
    odd["id"] = "odd-category"
    odd["category"] = "laboratory"  # must be a list of CodeableConcept
    odd["effectiveDateTime"] = newer_than(observations[0]["resource"])
    observations.append({"resource": odd})
    payload = post(client, body).get_json()
    report = payload.get("extension", {}).get("calcinosis-cds", {})
    assert not report.get("skippedResources"), report
    child = [c for c in payload["cards"] if "child" in (c["summary"] + c.get("detail", "")).lower()]
    assert child, "the patient's age was read from the Patient despite its invalid name"


def test_a_resource_with_a_modifier_extension_is_refused_and_reported(client):
    # A modifierExtension changes what the element means ("not done", "refuted"...): FHIR requires a system that does
    # not understand it to refuse the data, not read it as if the extension were absent.
    body = calcinosis_request()
    conditions = body["prefetch"]["conditions"]["entry"]
    for entry in conditions:
        entry["resource"]["modifierExtension"] = [{"url": "http://example.org/fhir/negated", "valueBoolean": True}]
    payload = post(client, body).get_json()
    assert payload["cards"] == [], "without a usable calcinosis Condition, gate G0 stays closed"
    skipped = payload["extension"]["calcinosis-cds"]["skippedResources"]
    # The gate read the calcinosis Condition and refused it; with the gate closed nothing else was read.
    assert [s["resource"] for s in skipped] == ["Condition/calcinosis"]
    assert "modifierExtension" in skipped[0]["issue"]
    # Nested in an element the rules read, it counts the same.
    body = calcinosis_request()
    observations = body["prefetch"]["observations"]["entry"]
    nested = copy.deepcopy(observations[0]["resource"])
    nested["id"] = "modified-value"
    nested["effectiveDateTime"] = newer_than(observations[0]["resource"])
    nested["referenceRange"] = [{"modifierExtension": [{"url": "http://example.org/x", "valueBoolean": True}],
                                 "text": "odd"}]
    observations.append({"resource": nested})
    skipped = post(client, body).get_json()["extension"]["calcinosis-cds"]["skippedResources"]
    assert [s["resource"] for s in skipped] == ["Observation/modified-value"]


def test_a_record_medication_is_validated_when_a_rule_reads_it(client):
    # CKD stage 4 and an active magnesium antacid: R05 warns on patient-view; the same statement, not valid FHIR,
    # is skipped and reported instead of being used.
    def with_antacid(**extra):
        body = calcinosis_request()
        statement = {"resourceType": "MedicationStatement", "id": "antacid", "status": "active",
                     "subject": {"reference": "Patient/p1"},
                     "medicationCodeableConcept": {"text": "Magnesium hydroxide 400 MG/5ML Oral Suspension"}, **extra}
        body["prefetch"]["medicationStatements"] = {"resourceType": "Bundle", "type": "searchset",
                                                    "entry": [{"resource": statement}]}
        return post(client, body).get_json()

    assert "R05" in fired_rules(with_antacid())
    invalid = with_antacid(dosage="twice daily")  # must be a list of Dosage; the dose reader reads it
    assert "R05" not in fired_rules(invalid)
    skipped = invalid["extension"]["calcinosis-cds"]["skippedResources"]
    assert [s["resource"] for s in skipped] == ["MedicationStatement/antacid"]
