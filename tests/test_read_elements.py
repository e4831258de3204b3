"""resources.READ_ELEMENTS says which elements of each type the service reads; resources are validated on those only.
These tests record every top-level element read from the record's resources while every fixture scenario is
evaluated on its hook, so that a reader that starts reading a new element (unvalidated) fails here until the table
says so."""

from __future__ import annotations

import pytest

from cds_service.record import validation as resources
from cds_service.record.fhir_values import resource_label
from cds_service.record.json_text import parse_json
from cds_service.record.labs import UNPARSED
from cds_service.service import service_call

from .conftest import load_scenario, make_app, scenario_names, scenario_request

ALWAYS = {"resourceType", "id"}


class RecordingResource(dict):
    """A resource that notes which of its top-level elements are read."""

    reads: set[tuple[str, str]] = set()

    def _note(self, name):
        if isinstance(name, str):
            RecordingResource.reads.add((dict.get(self, "resourceType"), name))

    def get(self, name, default=None):
        self._note(name)
        return dict.get(self, name, default)

    def __getitem__(self, name):
        self._note(name)
        return dict.__getitem__(self, name)

    def __contains__(self, name):
        self._note(name)
        return dict.__contains__(self, name)


def whole(resource: dict) -> dict:
    """A lab result the body's scan kept unparsed (labs.UNPARSED), parsed: the recording reads what it holds."""
    text = resource.get(UNPARSED)
    return resource if text is None else parse_json(memoryview(text))["resource"]


@pytest.fixture
def recorded(monkeypatch):
    real = service_call.select_and_validate

    def recording(record_resources, *args, **kwargs):
        wrapped = [RecordingResource(whole(r)) if isinstance(r, dict) else r for r in record_resources]
        return real(wrapped, *args, **kwargs)

    RecordingResource.reads = set()
    monkeypatch.setattr(service_call, "select_and_validate", recording)
    return RecordingResource.reads


def test_every_element_the_rules_read_is_validated(recorded):
    calls = 0
    for name in scenario_names():  # each on its own hook: patient-view, order-select or order-sign
        service_id, body = scenario_request(load_scenario(name))
        response = make_app().test_client().post(f"/cds-services/{service_id}", json=body)
        assert response.status_code == 200, name
        calls += 1
    assert calls > 90
    unvalidated = sorted(
        (resource_type, element)
        for resource_type, element in recorded
        if element not in ALWAYS and element not in resources.READ_ELEMENTS.get(resource_type, ())
    )
    assert unvalidated == [], f"read but not in resources.READ_ELEMENTS (so never validated): {unvalidated}"
    # The recording itself works: the gate reads every Condition's code, the labs every result's value.
    assert ("Condition", "code") in recorded and ("Observation", "valueQuantity") in recorded
    # Nothing in the table is dead weight: every element listed was read by some scenario.
    listed = {(t, e) for t, elements in resources.READ_ELEMENTS.items() for e in elements}
    never_read = sorted(listed - recorded)
    assert never_read == [], f"listed in READ_ELEMENTS but read by no scenario (remove, or add a scenario): {never_read}"


def test_a_type_is_validated_on_what_it_reads_and_what_its_model_requires():
    elements = resources.validated_elements("MedicationRequest")
    assert {"status", "intent", "subject", "medicationCodeableConcept", "medicationReference"} <= elements
    assert {"_status", "modifierExtension", "resourceType", "id"} <= elements
    assert "note" not in elements and "requester" not in elements
    assert "class" in resources.validated_elements("Encounter"), "required by the R4 Encounter, though never read"
    # Missing a required element is still refused.
    assert resources.validate({"resourceType": "Observation", "id": "x", "code": {"text": "phosphate"}}) is not None
    assert resources.validate({"resourceType": "Observation", "id": "x", "status": "final",
                               "code": {"text": "phosphate"}, "note": "not a list"}) is None
