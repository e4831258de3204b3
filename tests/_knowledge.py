"""Helpers for the knowledge-rule tests: post a (modified) scenario through the HTTP API and read its cards."""

from __future__ import annotations

import copy
from typing import Any, Callable

from fhir.resources.R4B import get_fhir_model_class

from .conftest import NOW, load_scenario, make_app, scenario_request


def post_scenario(scenario: dict[str, Any], now=NOW) -> dict[str, Any]:
    service_id, body = scenario_request(scenario)
    response = make_app(now).test_client().post(f"/cds-services/{service_id}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def variant(name: str, change: Callable[[list[dict]], None], now=NOW) -> dict[str, Any]:
    """The response for scenario `name` after `change` edits its list of resources in place."""
    scenario = copy.deepcopy(load_scenario(name, now))
    resources = [entry["resource"] for entry in scenario["bundle"]["entry"]]
    change(resources)
    scenario["bundle"]["entry"] = [{"resource": r} for r in resources]
    return post_scenario(scenario, now)


def by_id(resources: list[dict], resource_id: str) -> dict:
    return next(r for r in resources if r.get("id") == resource_id)


def cards_of(response: dict, rule_id: str) -> list[dict]:
    return [c for c in response["cards"] if rule_id in c["extension"]["calcinosis-cds"]["rules"]]


def withheld(response: dict) -> dict[str, str]:
    return {w["rule"]: w["reason"] for c in response["cards"] for w in c["extension"]["calcinosis-cds"].get("withheld", [])}


def proposed(response: dict) -> list[dict]:
    return [a["resource"] for c in response["cards"] for s in c.get("suggestions", []) for a in s.get("actions", [])
            if a.get("resource")]


def medication_texts(response: dict) -> list[str]:
    return [r["medicationCodeableConcept"].get("text", "").lower() for r in proposed(response)
            if r["resourceType"] == "MedicationRequest"]


def validate_r4b(resource: dict) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def comparable(response: dict) -> list[tuple]:
    """What a clinician sees, without the evidence (which rightly names the reported unit)."""
    return [(c["indicator"], c["summary"], tuple(c["extension"]["calcinosis-cds"]["rules"]),
             tuple(s["label"] for s in c.get("suggestions", []))) for c in response["cards"]]
