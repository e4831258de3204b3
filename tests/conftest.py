"""Shared test harness: a fixed evaluation clock, the app, and fixture scenarios resolved against that clock.

Nothing here depends on today's date: every fixture date is relative to NOW (or to OTHER_NOW, a second evaluation
time used to show that a scenario gives the same answer whenever it is evaluated).
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from cds_service import create_app
from cds_service.service.clock import fixed_clock
from cds_service.service.relative_dates import resolve
from cds_service.service.request_builder import request_from_resources, resources_of_bundle
from cds_service.service.discovery import services
from cds_service.service.settings import Settings

from .browser import browser  # noqa: F401  (the real-browser fixture, offered to every test)

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "fixtures" / "scenarios"
SYNTHEA = ROOT.parent / "shared" / "data" / "synthea"

NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=timezone.utc)
OTHER_NOW = datetime(2031, 8, 2, 6, 30, 0, tzinfo=timezone.utc)

PATIENT_VIEW = "calcinosis-cutis-patient-view"


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.json"))


def load_scenario(name: str, now: datetime = NOW) -> dict[str, Any]:
    return resolve(json.loads((SCENARIOS / f"{name}.json").read_text()), now)


def service_for_hook(hook: str):
    return next(s for s in services().values() if s.hook == hook)


def scenario_request(scenario: dict[str, Any], hook: str | None = None) -> tuple[str, dict[str, Any]]:
    """(service id, CDS Hooks request body) for a resolved scenario."""
    service = service_for_hook(hook or scenario.get("hook", "patient-view"))
    drafts = resources_of_bundle(scenario["draftOrders"]) if isinstance(scenario.get("draftOrders"), dict) else None
    body = request_from_resources(
        service, resources_of_bundle(scenario["bundle"]), draft_orders=drafts, selections=scenario.get("selections")
    )
    if isinstance(scenario.get("draftOrders"), dict):  # keep the scenario's own draftOrders shape (sandbox quirks)
        body["context"]["draftOrders"] = scenario["draftOrders"]
    return service.id, body


def resource_types() -> set[str]:
    """The names of every FHIR R4B resource type (a card's text must never show "Type/id")."""
    import importlib
    import pkgutil

    import fhir.resources.R4B as r4b
    from fhir.resources.R4B.resource import Resource

    names = set()
    for module_info in pkgutil.iter_modules(r4b.__path__):
        if module_info.name.startswith("fhirtypes") or module_info.name == "tests":
            continue
        module = importlib.import_module(f"fhir.resources.R4B.{module_info.name}")
        names |= {name for name, value in vars(module).items()
                  if isinstance(value, type) and issubclass(value, Resource) and name.lower() == module_info.name}
    return names


def uuids_of(response: dict[str, Any]) -> list[str]:
    """Every card and suggestion uuid of a response."""
    return [uid for card in response["cards"]
            for uid in [card["uuid"], *(s["uuid"] for s in card.get("suggestions", []))]]


def without_uuids(response: dict[str, Any]) -> dict[str, Any]:
    """The response with its card and suggestion uuids left out (they are new in every response, decision A20)."""
    cards = []
    for card in response["cards"]:
        card = {k: v for k, v in card.items() if k != "uuid"}
        if "suggestions" in card:
            card["suggestions"] = [{k: v for k, v in s.items() if k != "uuid"} for s in card["suggestions"]]
        cards.append(card)
    return {**response, "cards": cards}


def stable_keys(response: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Each card's stable key with its suggestions' stable keys, in card order."""
    return [(card["extension"]["calcinosis-cds"]["key"],
             [s["extension"]["calcinosis-cds"]["key"] for s in card.get("suggestions", [])])
            for card in response["cards"]]


def fired_rules(response: dict[str, Any]) -> set[str]:
    return {rule for card in response["cards"] for rule in card["extension"]["calcinosis-cds"]["rules"]}


# One database for the apps of the whole session, migrated once (each app would otherwise migrate a new file).
TEST_DATA_DIR = Path(tempfile.mkdtemp(prefix="cds-tests-data-"))


@pytest.fixture(scope="session", autouse=True)
def _remove_test_data_dir():
    yield
    shutil.rmtree(TEST_DATA_DIR, ignore_errors=True)


def isolated_state() -> dict:
    """Settings that give an app the session's database and a patient-hash secret of its own: no other app can see
    its patients' dismissals or earlier cards (A21, A22), so tests cannot hold back each other's cards."""
    return {"data_dir": TEST_DATA_DIR, "hash_secret": secrets.token_hex(16)}


def make_app(now: datetime = NOW, **settings_changes):
    # Any FHIR server at a global address (tests mock them with `responses`: nothing connects); a loopback server
    # must be listed by the test that starts it.
    settings = Settings(**{"auth": "off", "fhir_allow_http": True, "log_level": "WARNING", "fhir_servers": ("*",),
                           **isolated_state(),
                           **settings_changes})
    return create_app(settings, clock=fixed_clock(now))


@pytest.fixture
def app():
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def minimal_request(patient_id: str = "p1", **overrides) -> dict[str, Any]:
    """A valid patient-view request for a patient with nothing on record (every optional key null)."""
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": patient_id, "userId": "Practitioner/1"},
        "prefetch": {key: None for key in services()[PATIENT_VIEW].prefetch},
    }
    body["prefetch"]["patient"] = {"resourceType": "Patient", "id": patient_id}
    body["prefetch"]["conditions"] = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    body.update(overrides)
    return body


def evaluate_scenario(name: str, now: datetime = NOW, hook: str | None = None) -> dict[str, Any]:
    """The service's response to a scenario, through the HTTP API (in-process client)."""
    service_id, body = scenario_request(load_scenario(name, now), hook)
    response = make_app(now).test_client().post(f"/cds-services/{service_id}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()
