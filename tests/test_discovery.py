"""GET /cds-services: CDS Hooks 2.0 discovery, and prefetch templates that ask only for what the rules need."""

import re

from cds_service.service.prefetch import render_template
from cards import terminology


def test_discovery_lists_services_with_required_fields(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    services = response.get_json()["services"]
    assert services, "the sandbox treats an empty list as a failure"
    ids = [s["id"] for s in services]
    assert len(ids) == len(set(ids)), "the sandbox overwrites services that share an id"
    for service in services:
        assert service["hook"] in ("patient-view", "order-select", "order-sign")
        assert service["title"] and service["description"]
        assert re.fullmatch(r"[a-z0-9-]+", service["id"])
        for key, value in service.items():
            assert value not in (None, "", [], {}), f"{service['id']}.{key} is empty"


def test_patient_view_service_is_offered(client):
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    assert services["calcinosis-cutis-patient-view"]["hook"] == "patient-view"


def test_prefetch_templates_are_filtered_and_use_only_allowed_tokens(client):
    allowed = {"context.patientId", "context.userId", "context.encounterId", "userPractitionerId",
               "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}
    for service in client.get("/cds-services").get_json()["services"]:
        for key, template in service["prefetch"].items():
            for token in re.findall(r"\{\{\s*([^}]+?)\s*\}\}", template):
                assert token in allowed, f"{service['id']}.{key} uses {token}"
            if template.startswith("Observation"):
                assert "code=" in template, "never an unfiltered Observation search"
                assert "_sort=-date" in template and "_count=" in template
            if "?" in template:
                assert "patient={{context.patientId}}" in template


def test_observation_template_asks_for_every_lab_the_rules_read(client):
    service = next(s for s in client.get("/cds-services").get_json()["services"] if s["hook"] == "patient-view")
    template = service["prefetch"]["observations"]
    for code in terminology().lab_loinc_codes():
        assert f"http://loinc.org|{code}" in template


def test_template_rendering_fills_tokens_and_skips_unresolved_ones():
    context = {"patientId": "p1", "userId": "Practitioner/dr1"}
    assert render_template("Patient/{{context.patientId}}", context) == "Patient/p1"
    assert render_template("Practitioner/{{userPractitionerId}}", context) == "Practitioner/dr1"
    assert render_template("Encounter/{{context.encounterId}}", context) is None
    assert render_template("Patient/{{userPatientId}}", context) is None
