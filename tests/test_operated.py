"""The operated service through its HTTP API, on an SQLite file and on a real PostgreSQL server (tests/postgres.py):
cards recorded, feedback stored once, analytics equal to what was sent, dismissals remembered (A22) across restarts,
no repeat at order-sign of an order-select card (A21), per-site silent mode and rules switched off.

Time is an injected clock; nothing depends on today's date.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import select
from sqlalchemy.orm import Session

from cds_service import create_app
from cds_service.service.discovery import services
from cds_service.service.request_builder import request_from_resources, resources_of_bundle
from cds_service.service.settings import Settings
from cds_service.service.storage.schema import IssuedCard

from .conftest import NOW, TEST_DATA_DIR, load_scenario, scenario_request, service_for_hook
from .postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)

ADMIN = "an-admin-token-of-enough-length"
SECRET = "a patient-hash secret for these tests"
PATIENT_VIEW = "calcinosis-cutis-patient-view"
ORDER_SELECT, ORDER_SIGN = "calcinosis-cutis-order-select", "calcinosis-cutis-order-sign"
ANTACID = "r05-order-select-mg-antacid-ckd3-sandbox"  # calcinosis, eGFR 45, a magnesium antacid drafted


class Clock:
    def __init__(self, now=NOW):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cds.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def apps():
    """Makes apps; closes their databases afterwards (PostgreSQL drops the test database)."""
    made = []

    def make(db_url: str, clock: Clock, **changes):
        settings = Settings(**{"auth": "off", "fhir_allow_http": True, "log_level": "WARNING", "data_dir": TEST_DATA_DIR,
                               "database_url": db_url, "hash_secret": SECRET, "admin_token": ADMIN, **changes})
        app = create_app(settings, clock=clock)
        made.append(app)
        return app.test_client()

    yield make
    for app in made:
        app.extensions["calcinosis-cds"].operations.store.close()


def rules_of(card: dict) -> list[str]:
    return card["extension"]["calcinosis-cds"]["rules"]


def card_with(response: dict, rule: str) -> dict | None:
    return next((c for c in response["cards"] if rule in rules_of(c)), None)


def patient_view(patient_id: str = "p1", egfr: float = 45) -> dict:
    """Calcinosis with an eGFR: R01 (renal insufficiency), R17 (nephrology, ranked by eGFR), options, R20."""
    scenario = load_scenario(ANTACID)
    resources = resources_of_bundle(scenario["bundle"])
    for resource in resources:
        if resource["resourceType"] == "Observation":
            resource["valueQuantity"]["value"] = egfr
    body = request_from_resources(service_for_hook("patient-view"), _renamed(resources, patient_id))
    return body


def _renamed(resources: list[dict], patient_id: str) -> list[dict]:
    text = json.dumps(resources).replace('"p1"', json.dumps(patient_id)).replace("Patient/p1", f"Patient/{patient_id}")
    return json.loads(text)


def order(hook: str, egfr: float = 45) -> tuple[str, dict]:
    scenario = load_scenario(ANTACID)
    for entry in scenario["bundle"]["entry"]:
        if entry["resource"]["resourceType"] == "Observation":
            entry["resource"]["valueQuantity"]["value"] = egfr
    return scenario_request(scenario, hook)


def call(client, service_id: str, body: dict) -> dict:
    response = client.post(f"/cds-services/{service_id}", json={**body, "hookInstance": str(uuid.uuid4())})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def send_feedback(client, card: dict, outcome: str, at: str = "2026-03-14T15:10:00Z", reason: str | None = None,
                  service_id: str = PATIENT_VIEW, **headers):
    entry = {"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": at}
    if outcome == "accepted":
        entry["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
    if reason:
        entry["overrideReason"] = {"reason": {"system": "urn:calcinosis-cds:override-reason", "code": reason,
                                              "display": reason}}
    response = client.post(f"/cds-services/{service_id}/feedback", json={"feedback": [entry]}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)


def analytics(client, weeks: int = 12) -> dict:
    response = client.get(f"/analytics/rules?weeks={weeks}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return {r["rule"]: r for r in response.get_json()["rules"]} | {"_": response.get_json()}


def recorded(client) -> list[IssuedCard]:
    store = client.application.extensions["calcinosis-cds"].operations.store
    with Session(store.engine) as session:
        return list(session.scalars(select(IssuedCard).order_by(IssuedCard.issued_at)))


# --- recorded cards, feedback and analytics ----------------------------------------------------------------------


def test_cards_feedback_and_analytics_agree(db_url, apps):
    client = apps(db_url, Clock())
    first = call(client, PATIENT_VIEW, patient_view())
    second = call(client, PATIENT_VIEW, patient_view("p2"))
    assert {c["extension"]["calcinosis-cds"]["knowledgeVersion"] for c in first["cards"]} == {"2020-03-05.1"}
    r01, r17 = card_with(first, "R01"), card_with(first, "R17")
    send_feedback(client, r17, "accepted")
    send_feedback(client, r01, "overridden", reason="already-addressed")
    send_feedback(client, r01, "overridden", reason="already-addressed")  # a retry: stored once
    send_feedback(client, card_with(second, "R01"), "overridden")
    send_feedback(client, {"uuid": str(uuid.uuid4())}, "overridden")  # never issued

    rows = recorded(client)
    assert len(rows) == len(first["cards"]) + len(second["cards"])
    assert {r.uuid for r in rows} == {c["uuid"] for c in first["cards"] + second["cards"]}
    assert all(not r.silent and r.knowledge_version == "2020-03-05.1" and r.hook == "patient-view" for r in rows)
    stats = analytics(client)
    week = "2026-W11"
    [r01_week] = stats["R01"]["weeks"]
    assert (r01_week["week"], r01_week["issued"], r01_week["accepted"], r01_week["overridden"]) == (week, 2, 0, 2)
    assert r01_week["overrideReasons"] == {"": 1, "already-addressed": 1}
    assert r01_week["acceptanceRate"] == 0
    [r17_week] = stats["R17"]["weeks"]
    assert (r17_week["issued"], r17_week["accepted"], r17_week["overridden"], r17_week["acceptanceRate"]) == (2, 1, 0, 0.5)
    assert stats["_"]["unknownCardFeedback"] == {week: 1}
    assert stats["_"]["period"]["weeks"][-1] == week


def test_analytics_need_the_admin_token_and_are_off_without_one(db_url, apps):
    client = apps(db_url, Clock())
    for path in ("/analytics/rules", "/analytics"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong-token-of-enough-length"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Basic {ADMIN}"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    for weeks in ("0", "\u00b2", "1" * 5000, "-1"):  # "²" is a digit to str.isdigit, not to int
        assert client.get(f"/analytics/rules?weeks={weeks}",
                          headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 400, weeks
    off = apps(db_url, Clock(), admin_token=None)
    assert off.get("/analytics/rules", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 404
    assert off.get("/analytics").status_code == 404


def test_the_dashboard_page_is_self_contained(db_url, apps):
    client = apps(db_url, Clock())
    send_feedback(client, card_with(call(client, PATIENT_VIEW, patient_view()), "R01"), "overridden")
    response = client.get("/analytics?weeks=4", headers={"Authorization": f"Bearer {ADMIN}"})
    page = response.get_data(as_text=True)
    assert response.mimetype == "text/html" and "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert page.count("<svg") >= 2 and "<script" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "R01" in page and "2026-W11" in page


# --- A22: a dismissal is remembered ---------------------------------------------------------------------------------


def test_an_overridden_r17_stays_hidden_for_90_days_and_across_a_restart(db_url, apps):
    clock = Clock()
    client = apps(db_url, clock)
    r17 = card_with(call(client, PATIENT_VIEW, patient_view()), "R17")
    send_feedback(client, r17, "overridden", reason="already-addressed")

    clock.now = NOW + timedelta(days=1)
    later = call(client, PATIENT_VIEW, patient_view())
    assert card_with(later, "R17") is None and card_with(later, "R01") is not None
    held = [r for r in recorded(client) if r.held_back]
    assert [(r.held_back, r.silent, [f.rule_id for f in r.findings]) for r in held] == [("dismissed", True, ["R17"])]
    assert card_with(call(client, PATIENT_VIEW, patient_view("p2")), "R17") is not None  # another patient

    restarted = apps(db_url, clock)  # a new process on the same database
    clock.now = NOW + timedelta(days=89)
    assert card_with(call(restarted, PATIENT_VIEW, patient_view()), "R17") is None
    clock.now = NOW + timedelta(days=90)
    assert card_with(call(restarted, PATIENT_VIEW, patient_view()), "R17") is not None
    assert analytics(restarted, weeks=20)["R17"]["totals"]["suppressed"] == 2  # days 1 and 89


def test_a_worse_finding_shows_again(db_url, apps):
    clock = Clock()
    client = apps(db_url, clock)
    send_feedback(client, card_with(call(client, PATIENT_VIEW, patient_view(egfr=55)), "R17"), "overridden")
    assert card_with(call(client, PATIENT_VIEW, patient_view(egfr=50)), "R17") is None  # the same stage
    worse = card_with(call(client, PATIENT_VIEW, patient_view(egfr=25)), "R17")  # eGFR 55 dismissed, 25 returns
    assert worse is not None and "nephrology" in worse["summary"]


def test_r17_is_remembered_per_specialty(db_url, apps):
    client = apps(db_url, Clock())
    ssc = next(e["resource"] for e in load_scenario("r17-positive-ctd")["bundle"]["entry"]
               if e["resource"].get("id") == "ssc")

    def with_ssc(egfr):
        body = patient_view(egfr=egfr)
        body["prefetch"]["conditions"]["entry"].append({"resource": ssc})
        return body

    both = card_with(call(client, PATIENT_VIEW, with_ssc(45)), "R17")
    assert len(both["suggestions"]) == 2  # nephrology and rheumatology
    send_feedback(client, both, "overridden")
    assert card_with(call(client, PATIENT_VIEW, with_ssc(45)), "R17") is None
    worse = card_with(call(client, PATIENT_VIEW, with_ssc(25)), "R17")
    assert [s["label"] for s in worse["suggestions"]] == [both["suggestions"][0]["label"]]
    assert "nephrolog" in worse["suggestions"][0]["label"].lower()
    assert "Not suggested again" in worse["detail"] and both["suggestions"][1]["label"] in worse["detail"]


def test_r20_is_hidden_from_its_grouped_card_and_r01_on_its_own(db_url, apps):
    client = apps(db_url, Clock())
    first = call(client, PATIENT_VIEW, patient_view())
    send_feedback(client, card_with(first, "R20"), "overridden")
    send_feedback(client, card_with(first, "R01"), "overridden")
    again = call(client, PATIENT_VIEW, patient_view())
    assert card_with(again, "R20") is None and card_with(again, "R01") is None
    assert card_with(again, "R17") is not None


def test_warning_cards_are_never_hidden_by_a_dismissal(db_url, apps):
    client = apps(db_url, Clock())
    service_id, body = scenario_request(load_scenario("r05-patient-view-active-antacid-ckd4"))
    warning = card_with(call(client, service_id, body), "R05")
    assert warning["indicator"] in ("warning", "critical")
    send_feedback(client, warning, "overridden", reason="benefit-outweighs-risk")
    assert card_with(call(client, service_id, body), "R05") is not None


# --- A21: no double alert at order-sign -----------------------------------------------------------------------------


def test_an_order_select_card_is_not_repeated_at_order_sign_unless_escalated(db_url, apps):
    clock = Clock()
    client = apps(db_url, clock)
    assert card_with(call(client, ORDER_SELECT, order("order-select")[1]), "R05")["indicator"] == "warning"
    clock.now = NOW + timedelta(hours=1)
    assert card_with(call(client, ORDER_SIGN, order("order-sign")[1]), "R05") is None
    assert [r.held_back for r in recorded(client) if r.hook == "order-sign"] == ["repeat"]
    # Severe renal insufficiency makes it critical: an escalation shows again.
    assert card_with(call(client, ORDER_SIGN, order("order-sign", egfr=25)[1]), "R05")["indicator"] == "critical"
    # Another dose is another draft order.
    service_id, body = order("order-sign")
    drafts = copy.deepcopy(body["context"]["draftOrders"])
    drafts["entry"][0]["resource"]["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 3
    body["context"]["draftOrders"] = drafts
    assert card_with(call(client, service_id, body), "R05") is not None
    clock.now = NOW + timedelta(hours=25)  # the window is 24 hours
    assert card_with(call(client, ORDER_SIGN, order("order-sign")[1]), "R05") is not None


# --- per-site settings ---------------------------------------------------------------------------------------------

ISSUER_A, ISSUER_B = "https://ehr-a.example.org", "https://ehr-b.example.org"


@pytest.fixture(scope="module")
def signing_key():
    return ec.generate_private_key(ec.SECP384R1())


def token(key, issuer: str, service_id: str, path: str = "") -> dict:
    now = int(time.time())  # the service checks tokens against the wall clock
    claims = {"iss": issuer, "aud": f"http://localhost/cds-services/{service_id}{path}", "exp": now + 300, "iat": now,
              "jti": str(uuid.uuid4())}
    return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm="ES384", headers={"kid": "k1", "typ": "JWT"})}


def test_silent_mode_and_rules_switched_off_for_one_issuer_only(db_url, apps, tmp_path, signing_key):
    jwk = {**json.loads(ECAlgorithm.to_jwk(signing_key.public_key())), "kid": "k1"}
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({"issuers": {ISSUER_A: {"jwks": {"keys": [jwk]}}, ISSUER_B: {"jwks": {"keys": [jwk]}}}}))
    sites = tmp_path / "sites.json"
    sites.write_text(json.dumps({"sites": [{"issuer": ISSUER_A, "silent": True},
                                           {"issuer": ISSUER_B, "rules_off": ["R20", "R01"]}]}))
    client = apps(db_url, Clock(), auth="required", issuers_file=issuers, site_settings_file=sites)
    body = patient_view()

    def post(issuer):
        response = client.post(f"/cds-services/{PATIENT_VIEW}", json={**body, "hookInstance": str(uuid.uuid4())},
                               headers=token(signing_key, issuer, PATIENT_VIEW))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    assert post(ISSUER_A)["cards"] == []
    silent = recorded(client)
    assert silent and all(r.silent and r.held_back == "silent-mode" and r.issuer == ISSUER_A for r in silent)
    b_cards = post(ISSUER_B)["cards"]
    assert b_cards and card_with({"cards": b_cards}, "R20") is None and card_with({"cards": b_cards}, "R01") is None
    assert card_with({"cards": b_cards}, "R17") is not None
    stats = analytics(client)
    assert stats["R01"]["totals"]["silent"] == 1 and stats["R01"]["totals"]["issued"] == 0
    assert stats["R17"]["totals"]["silent"] == 1 and stats["R17"]["totals"]["issued"] == 1
    # Feedback from another issuer on B's card is kept, but as unknown: it does not silence B's rule.
    r17 = card_with({"cards": b_cards}, "R17")
    entry = {"feedback": [{"card": r17["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-03-14T15:10:00Z"}]}
    path = f"/cds-services/{PATIENT_VIEW}/feedback"
    assert client.post(path, json=entry, headers=token(signing_key, ISSUER_A, PATIENT_VIEW, "/feedback")).status_code == 200
    assert card_with({"cards": post(ISSUER_B)["cards"]}, "R17") is not None


def test_discovery_advertises_the_knowledge_version(db_url, apps):
    listed = apps(db_url, Clock()).get("/cds-services").get_json()["services"]
    assert [s["version"] for s in listed] == ["2020-03-05.1"] * len(services())
