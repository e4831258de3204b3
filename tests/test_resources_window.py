"""Lab Observations outside their look-back window are left out before validation (a performance measure): the rules
must see exactly the same lab results, and so give the same cards, as when every Observation is validated."""

from __future__ import annotations

import random
from datetime import timedelta

from cds_service.record.facts import build_facts
from cds_service.record.labs import build_panel
from cds_service.record.selection import observation_effective, select_and_validate
from cds_service.record.validation import validate
from cards import terminology

from tests.conftest import NOW

PATIENT = "p1"


def observation(rid: str, loinc: str, when, *, status="final", unit="mg/dL", date_field="effectiveDateTime",
                extra_codes=()) -> dict:
    resource = {
        "resourceType": "Observation", "id": rid, "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": c} for c in (*extra_codes, loinc)]},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "valueQuantity": {"value": 5.1, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }
    if when is not None:
        if date_field == "effectivePeriod":
            resource["effectivePeriod"] = {"start": when}
        else:
            resource[date_field] = when
    return resource


def random_observations(rng: random.Random, count: int) -> list[dict]:
    terms = terminology()
    codes = terms.lab_loinc_codes() + ["8302-2", "29463-7"]
    out = []
    for index in range(count):
        analyte_days = rng.choice([90, 365])
        offset = rng.choice([
            timedelta(days=analyte_days) - timedelta(seconds=1), timedelta(days=analyte_days),
            timedelta(days=analyte_days) + timedelta(seconds=1), timedelta(days=rng.randint(0, 800)),
            -timedelta(minutes=59), -timedelta(minutes=61), timedelta(0),
        ])
        when = NOW - offset
        text = rng.choice([when.isoformat(), when.isoformat().replace("+00:00", "Z"), when.date().isoformat(),
                           when.strftime("%Y-%m"), when.replace(tzinfo=None).isoformat(), "not a date", None])
        out.append(observation(
            f"o{index}", rng.choice(codes), text,
            status=rng.choice(["final", "final", "amended", "preliminary", "entered-in-error"]),
            unit=rng.choice(["mg/dL", "mmol/L", "g/dL", "mL/min/{1.73_m2}", "furlongs"]),
            date_field=rng.choice(["effectiveDateTime", "effectiveDateTime", "effectivePeriod", "effectiveInstant",
                                   "issued"]),
            extra_codes=rng.choice([(), ("8302-2",), (rng.choice(codes),)]),
        ))
        if rng.random() < 0.05:
            out[-1]["valueQuantity"] = {"value": "five"}  # invalid FHIR
    return out


def in_window_results(selected, terms):
    panel = build_panel(selected.of("Observation") + selected.lab_observations, terms, NOW, validator=validate)
    return {name: panel.in_window(name) for name in terms.labs}


def test_the_rules_see_the_same_lab_results_with_and_without_the_window_filter():
    terms = terminology()
    rng = random.Random(20260314)
    for _ in range(5):
        resources = [{"resourceType": "Patient", "id": PATIENT}] + random_observations(rng, 300)
        every = select_and_validate(resources, PATIENT, terms)
        windowed = select_and_validate(resources, PATIENT, terms, now=NOW)
        assert in_window_results(every, terms) == in_window_results(windowed, terms)
        assert len(windowed.lab_observations) < len(every.lab_observations)
        # what is still selected is still reported the same way
        kept = {o["id"] for o in windowed.lab_observations}
        assert all(item in every.skipped for item in windowed.skipped)
        assert kept <= {o["id"] for o in every.lab_observations}


def test_an_observation_without_a_readable_date_is_kept_and_reported_unusable():
    terms = terminology()
    resources = [observation("undated", "2777-1", None), observation("junk-date", "2777-1", "yesterday")]
    selected = select_and_validate(resources, PATIENT, terms, now=NOW)
    assert {o["id"] for o in selected.lab_observations} == {"undated", "junk-date"}
    facts = build_facts(selected, patient_id=PATIENT, now=NOW, terms=terms)
    assert {u["resource"] for u in facts.labs.unusable} == {"Observation/undated", "Observation/junk-date"}


def test_lab_results_are_validated_when_read_and_an_invalid_latest_one_is_skipped_and_reported():
    terms = terminology()
    newest = observation("newest-invalid", "2777-1", (NOW - timedelta(days=1)).isoformat())
    newest["valueQuantity"]["value"] = 6.0
    newest["status"] = "final"
    newest["referenceRange"] = [{"high": {"value": 4.5, "unit": "mg/dL"}, "foo": "not FHIR"}]  # invalid R4
    middle = observation("middle-valid", "2777-1", (NOW - timedelta(days=2)).isoformat())
    middle["status"] = "final"
    oldest = observation("oldest-invalid", "2777-1", (NOW - timedelta(days=3)).isoformat())
    oldest["status"] = "final"
    oldest["valueQuantity"]["foo"] = "not FHIR either"
    selected = select_and_validate([newest, middle, oldest], PATIENT, terms, now=NOW)
    facts = build_facts(selected, patient_id=PATIENT, now=NOW, terms=terms)
    latest = facts.latest_lab("phosphate")
    assert latest is not None and latest.reference == "Observation/middle-valid"
    assert [i["resource"] for i in facts.labs.invalid] == ["Observation/newest-invalid"]
    assert facts.labs.invalid[0]["issue"].startswith("not valid FHIR R4")
    # the oldest result is never read by a rule, so it is never validated (nor reported)
    assert all(i["resource"] != "Observation/oldest-invalid" for i in facts.labs.invalid)
    assert [r.reference for r in facts.labs.in_window("phosphate")] == ["Observation/middle-valid"]
    assert [i["resource"] for i in facts.labs.invalid] == ["Observation/newest-invalid", "Observation/oldest-invalid"]


def test_the_effective_date_is_read_as_the_labs_read_it():
    assert observation_effective({"effectivePeriod": {"start": "2025-01-02"}, "issued": "2020-01-01"}).year == 2025
    assert observation_effective({"effectiveInstant": "2024-05-06T07:08:09Z"}).month == 5
    assert observation_effective({"issued": "2023-01-01T00:00:00+02:00"}).year == 2023
    assert observation_effective({"effectiveDateTime": "garbage"}) is None


def test_same_cards_for_every_scenario_with_the_filters(client):
    from cds_service.service import service_call
    from tests.conftest import load_scenario, scenario_names, scenario_request, without_uuids

    from cds_service.record.json_text import parse_json

    original, original_scan = service_call.select_and_validate, service_call.parse_call_body
    for name in scenario_names():
        service_id, body = scenario_request(load_scenario(name))
        filtered = client.post(f"/cds-services/{service_id}", json=body).get_json()
        # Neither the lab windows nor the Procedure window (both left-outs that no rule could read) applied: the body
        # parsed whole (the scan leaves out by the same windows: record/request_scan.py), the selection without them.
        service_call.select_and_validate = lambda resources, patient_id, terms, now=None, procedures_since=None, **_: (
            original(resources, patient_id, terms))
        service_call.parse_call_body = lambda raw, *args, **kwargs: (parse_json(raw), {})
        try:
            unfiltered = client.post(f"/cds-services/{service_id}", json=body).get_json()
        finally:
            service_call.select_and_validate, service_call.parse_call_body = original, original_scan
        assert without_uuids(filtered) == without_uuids(unfiltered), name


def test_the_record_holds_only_the_observations_whose_codes_a_rule_reads():
    # prefetch.gather leaves out, while it gathers the record, the Observations none of whose codings carries a code
    # the rules read (vital signs, surveys...): the selection would leave them out anyway. A code under LOINC's OID
    # (another name of LOINC's system) stays in the record, as it does in the selection.
    from cds_service.service.prefetch import gather
    from cds_service.service.protocol import parse_hook_request
    from cds_service.service.discovery import services

    service = services()["calcinosis-cutis-patient-view"]
    heart_rate = observation("hr", "8867-4", NOW.isoformat())
    phosphate = observation("p", "2777-1", NOW.isoformat())
    oid = observation("oid", "2777-1", NOW.isoformat())
    oid["code"]["coding"][0]["system"] = "urn:oid:2.16.840.1.113883.6.1"
    odd = [{"resourceType": "Observation", "id": f"odd{n}", "code": code}
           for n, code in enumerate(["2777-1", {"coding": "2777-1"}, {"coding": [None, {"code": ["2777-1"]}]}, None])]
    body = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/u", "patientId": PATIENT},
            "prefetch": {"patient": {"resourceType": "Patient", "id": PATIENT}, "conditions": None,
                         "observations": {"resourceType": "Bundle", "entry": [
                             {"resource": r} for r in (heart_rate, phosphate, oid, *odd)]}}}
    request = parse_hook_request(body, expected_hook="patient-view", allow_http_fhir_server=False)
    terms = terminology()
    everything = gather(request, service.prefetch, set(), None)
    record = gather(request, service.prefetch, set(), None, observation_codes=terms.read_loinc_codes)
    ids = [r.get("id") for r in record.resources if r["resourceType"] == "Observation"]
    assert ids == ["p", "oid"]
    assert [r["id"] for r in everything.resources if r["resourceType"] == "Observation"] == [
        "hr", "p", "oid", "odd0", "odd1", "odd2", "odd3"]
    # and the selection from either record is the same
    picked = lambda rec: [r["id"] for r in select_and_validate(rec.resources, PATIENT, terms, now=NOW).lab_observations]
    assert picked(record) == picked(everything) == ["p", "oid"]


def test_procedures_no_rule_could_count_are_left_out_before_validation():
    """A dialysis patient has hundreds of past sessions; only the recent ones (or one in progress) can count (A14)."""
    from datetime import timedelta

    from cards import terminology
    from cds_service.record.selection import select_and_validate

    def procedure(pid, status, **when):
        return {"resourceType": "Procedure", "id": pid, "status": status, "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "302497006"}]}, **when}

    since = NOW - timedelta(days=90)
    resources = [
        procedure("recent", "completed", performedDateTime=(NOW - timedelta(days=3)).isoformat()),
        procedure("old", "completed", performedDateTime=(NOW - timedelta(days=200)).isoformat()),
        procedure("old-period", "completed", performedPeriod={"start": (NOW - timedelta(days=120)).isoformat(),
                                                               "end": (NOW - timedelta(days=119)).isoformat()}),
        procedure("undated", "completed"),
        procedure("ongoing", "in-progress", performedPeriod={"start": (NOW - timedelta(days=400)).isoformat()}),
    ]
    selected = select_and_validate(resources, "p1", terminology(), now=NOW, procedures_since=since)
    # Kept for the facts, which validate a Procedure when a rule reads it (newest first, until one counts).
    assert [p["id"] for p in selected.procedure_resources] == ["recent", "ongoing"]
    everything = select_and_validate(resources, "p1", terminology(), now=NOW)
    assert len(everything.procedure_resources) == 5
