"""The lab panel reads only what the rules reach (issue 19, the dense patient): each analyte's results are ordered by
their dates alone, newest first, and a result is read (status, value, unit, range, flags) and validated only when a
rule gets to it. What the response reports follows: unusedLabResults lists the results a rule reached and could not
use (and the Observations without a readable date); a result older than the one used is neither read nor reported."""

from __future__ import annotations

import copy
import random
from datetime import datetime, timezone

import pytest

from cards import terminology
from cds_service.record import labs, selection
from cds_service.record.codes import has_loinc_code, read_codes
from cds_service.record.labs import build_panel, lab_reads, observation_effective, read_observation
from cds_service.record.selection import select_and_validate
from cds_service.record.validation import validate
from cds_service.service.prefetch import gather
from cds_service.service.protocol import parse_hook_request

from ._records import PATIENT, facts_of, lab, panel, patient, quantity
from .conftest import NOW
from .test_renal_and_lab_decisions import report, respond
from .test_resources_window import random_observations

PHOSPHATE = "2777-1"


@pytest.fixture
def reads(monkeypatch):
    """The Observations the panel reads (read_observation), in the order it reads them."""
    seen: list[str] = []
    real = labs.read_observation

    def recording(resource, *args, **kwargs):
        seen.append(resource["id"])
        return real(resource, *args, **kwargs)

    monkeypatch.setattr(labs, "read_observation", recording)
    return seen


def test_the_newest_usable_result_is_used_past_a_newer_unusable_one_which_is_reported(reads):
    preliminary = lab("preliminary", PHOSPHATE, 7.0, "mg/dL", 1, status="preliminary")
    furlongs = lab("furlongs", PHOSPHATE, 7.0, "furlongs", 2)
    usable = lab("usable", PHOSPHATE, 5.0, "mg/dL", 3)
    older = lab("older", PHOSPHATE, 9.0, "mg/dL", 4)
    facts = facts_of(older, usable, furlongs, preliminary)
    assert reads == []  # building the facts reads no result
    assert facts.latest_lab("phosphate").reference == "Observation/usable"
    assert reads == ["preliminary", "furlongs", "usable"]
    assert [(u["resource"], u["issue"].split(" ")[0]) for u in facts.labs.unusable] == [
        ("Observation/preliminary", "status"), ("Observation/furlongs", "unit")]


def test_an_unusable_result_older_than_the_one_used_is_neither_read_nor_reported(reads):
    facts = facts_of(lab("newest", PHOSPHATE, 5.0, "mg/dL", 1),
                     lab("old-preliminary", PHOSPHATE, 7.0, "mg/dL", 30, status="preliminary"),
                     lab("old-furlongs", PHOSPHATE, 7.0, "furlongs", 40))
    assert facts.latest_lab("phosphate").reference == "Observation/newest"
    assert reads == ["newest"] and facts.labs.unusable == []
    # A reader that walks the whole window (a trend, a partner by date) reaches them, and they are reported then.
    assert [r.reference for r in facts.labs.in_window("phosphate")] == ["Observation/newest"]
    assert [u["resource"] for u in facts.labs.unusable] == ["Observation/old-preliminary", "Observation/old-furlongs"]
    assert reads == ["newest", "old-preliminary", "old-furlongs"]  # each read once a call


def test_through_the_service_only_the_results_passed_over_are_reported():
    newest_unusable = lab("newest-unusable", PHOSPHATE, 7.0, "furlongs", 1)
    used = lab("used", PHOSPHATE, 6.0, "mg/dL", 2)
    old_unusable = lab("old-unusable", PHOSPHATE, 7.0, "mg/dL", 20, status="preliminary")
    unused = report(respond(old_unusable, used, newest_unusable, birth_date="1970-01-01")).get("unusedLabResults", [])
    assert [u["resource"] for u in unused] == ["Observation/newest-unusable"]


def test_an_invalid_result_is_skipped_and_reported_and_the_next_one_used(reads):
    invalid = lab("invalid", PHOSPHATE, 7.0, "mg/dL", 1)
    invalid["valueQuantity"]["value"] = "seven"  # not valid FHIR; read_observation finds no number either
    invalid_range = lab("invalid-range", PHOSPHATE, 7.0, "mg/dL", 2, high=4.5)
    invalid_range["referenceRange"][0]["foo"] = "not FHIR"  # readable, but not valid R4
    used = lab("used", PHOSPHATE, 5.0, "mg/dL", 3)
    old_invalid = lab("old-invalid", PHOSPHATE, 5.0, "mg/dL", 4)
    old_invalid["valueQuantity"]["foo"] = "not FHIR"
    facts = facts_of(old_invalid, used, invalid_range, invalid)
    assert facts.latest_lab("phosphate").reference == "Observation/used"
    assert [u["resource"] for u in facts.labs.unusable] == ["Observation/invalid"]
    assert [i["resource"] for i in facts.invalid_resources()] == ["Observation/invalid-range"]
    assert facts.invalid_resources()[0]["issue"].startswith("not valid FHIR R4")
    assert "old-invalid" not in reads


AT = datetime(2024, 5, 10, tzinfo=timezone.utc)


def dated(rid: str, text: str, value: float = 5.0) -> dict:
    resource = lab(rid, PHOSPHATE, value, "mg/dL")
    resource["effectiveDateTime"] = text
    return resource


def test_results_are_ordered_by_their_instant_across_time_zones_and_partial_dates():
    record = [dated("month", "2024-05"),  # 2024-05-01T00:00Z
              dated("berlin", "2024-05-01T10:00:00+02:00"),  # 08:00Z
              dated("utc", "2024-05-01T07:00:00Z"),
              dated("london", "2024-05-01T09:30:00+01:00"),  # 08:30Z
              dated("day", "2024-05-01"),  # 00:00Z, as the month: a tie
              dated("new-york", "2024-04-30T23:00:00-04:00")]  # 2024-05-01T03:00Z
    facts = facts_of(*record, now=AT)
    assert [r.reference.split("/")[1] for r in facts.labs.in_window("phosphate")] == [
        "london", "berlin", "utc", "new-york", "month", "day"]
    assert facts.latest_lab("phosphate").reference == "Observation/london"


def test_results_of_the_same_instant_keep_the_records_order():
    one, other = dated("one", "2024-05-01T10:00:00+02:00", 4.0), dated("other", "2024-05-01T08:00:00Z", 6.0)
    for first, second in ((one, other), (other, one)):
        for _ in range(3):  # the same answer every time
            facts = facts_of(first, second, now=AT)
            assert [r.reference for r in facts.labs.in_window("phosphate")] == [
                f"Observation/{first['id']}", f"Observation/{second['id']}"]
            assert facts.latest_lab("phosphate").reference == f"Observation/{first['id']}"
    # A panel's component and an Observation of its own, drawn at the same time: the record's order too.
    cmp = panel("cmp", [(PHOSPHATE, 6.0, "mg/dL")])
    single = lab("single", PHOSPHATE, 5.0, "mg/dL")
    single["effectiveDateTime"] = cmp["effectiveDateTime"]
    assert [r.reference for r in facts_of(cmp, single).labs.in_window("phosphate")] == [
        f"component {PHOSPHATE} of Observation/cmp", "Observation/single"]


def eager_results(observations: list[dict], terms, now) -> dict[str, list]:
    """Every usable result of each analyte in its window, newest first, read all at once (the panel before issue 19
    read them this way): what a lazy reader that walks a whole window must see."""
    windows = labs.lab_windows(terms, now)
    found: dict[str, list] = {}
    for resource in observations:
        codes = read_codes(resource, terms.read_loinc_codes)
        for analyte, loinc, component in lab_reads(codes, terms)[0] if codes else ():
            result, _ = read_observation(resource, terms.labs[analyte], loinc, component)
            if result is not None and windows[analyte][0] <= result.effective <= windows[analyte][1]:
                found.setdefault(analyte, []).append(result)
    for results in found.values():
        results.sort(key=lambda r: r.effective, reverse=True)
    return found


def test_a_reader_walking_the_window_sees_what_an_eager_reading_saw():
    terms = terminology()
    rng = random.Random(19)
    for _ in range(5):
        observations = random_observations(rng, 300)
        for resource in observations:  # no invalid FHIR here: the comparison is of what is read, not validated
            if resource["valueQuantity"].get("value") == "five":
                resource["valueQuantity"]["value"] = 5
        panel_ = build_panel(observations, terms, NOW)
        eager = eager_results(observations, terms, NOW)
        for analyte in terms.labs:
            assert panel_.in_window(analyte) == eager.get(analyte, []), analyte
            assert panel_.latest(analyte) == (eager.get(analyte) or [None])[0]


def test_the_selection_hands_the_panel_each_date_and_role_read_once(monkeypatch):
    terms = terminology()
    observations = random_observations(random.Random(7), 200)
    selected = select_and_validate([patient(), *observations], PATIENT, terms, now=NOW)
    assert len(selected.lab_reads) == len(selected.lab_observations)
    for resource, (effective, lab_roles) in zip(selected.lab_observations, selected.lab_reads):
        assert effective == observation_effective(resource)
        assert lab_roles == lab_reads(read_codes(resource, terms.read_loinc_codes), terms)[0]
    dates, codes = [], []
    monkeypatch.setattr(labs, "observation_effective", lambda r: dates.append(r) or observation_effective(r))
    monkeypatch.setattr(labs, "read_codes", lambda *a: codes.append(a) or read_codes(*a))
    build_panel([], terms, NOW, validator=validate, prepared=[
        (r, e, roles) for r, (e, roles) in zip(selected.lab_observations, selected.lab_reads)])
    assert codes == []
    # Only an Observation without a readable date is read at once (it is reported unusable, with why).
    undated = [r for r, (effective, _) in zip(selected.lab_observations, selected.lab_reads) if effective is None]
    assert undated and dates and {id(r) for r in dates} <= {id(r) for r in undated}


def test_gathering_works_out_each_observations_codes_and_date_once_and_leaves_the_resources_as_sent(monkeypatch):
    terms = terminology()
    observations = random_observations(random.Random(3), 100) + [
        panel("cmp", [("2951-2", 139, "mmol/L"), ("17861-6", 9.5, "mg/dL")]),
        panel("sodium", [("2951-2", 139, "mmol/L")]),
        {"resourceType": "Observation", "id": "bp", "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}, "valueQuantity": quantity(1, "m")},
    ]
    body = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/1", "patientId": PATIENT},
            "prefetch": {"patient": patient(), "observations": {
                "resourceType": "Bundle", "type": "searchset", "entry": [{"resource": o} for o in observations]}}}
    sent = copy.deepcopy(body)
    request = parse_hook_request(body, expected_hook="patient-view", allow_http_fhir_server=False)
    record = gather(request, {"patient": "Patient/{{context.patientId}}", "observations": "Observation?patient=x"},
                    {"patient"}, None, observation_codes=terms.read_loinc_codes)
    kept = [r for r in record.resources if r["resourceType"] == "Observation"]
    assert [o["id"] for o in kept] == [o["id"] for o in observations if has_loinc_code(o, terms.read_loinc_codes)]
    assert "sodium" not in {o["id"] for o in kept} and "cmp" in {o["id"] for o in kept}
    assert {id(o) for o in kept} == set(record.observation_codes)
    for resource in kept:
        assert record.observation_codes[id(resource)] == (
            resource, read_codes(resource, terms.read_loinc_codes), observation_effective(resource))
    without = select_and_validate(record.resources, PATIENT, terms, now=NOW)
    calls = []
    monkeypatch.setattr(selection, "read_codes", lambda *a: calls.append(a) or read_codes(*a))
    monkeypatch.setattr(selection, "observation_effective", lambda r: calls.append(r) or observation_effective(r))
    with_codes = select_and_validate(record.resources, PATIENT, terms, now=NOW,
                                     observation_codes=record.observation_codes)
    assert with_codes == without and calls == []  # read once, in gathering
    assert body == sent  # nothing was written into the request
