"""The analytics dashboard as its reader sees it: a real `calcinosis-cds serve` process on loopback (gunicorn, metrics
in multiprocess mode), cards and feedback sent over HTTP, the page loaded in headless Chromium with the admin token.

Earlier weeks are written into the database before the server starts (the server's clock is the system's), so the
charts have a history to draw; the current week comes from real calls.

UPDATE_DOCS_SCREENSHOTS=1 also writes the screenshot to docs/analytics.png.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cds_service.service.storage import CardRecord, FeedbackEntry, Finding, PatientKey, Store, sqlite_url

from ._processes import free_port, server_process
from .browser import png_size, screenshot, viewport_size
from .test_operated import PATIENT_VIEW, patient_view

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "a-dashboard-admin-token-for-the-test"
# (rule, indicator, cards a week, accepted, overridden with these reasons)
HISTORY = [("R01", "info", 9, 3, ["already-addressed", "already-addressed", "data-incorrect"]),
           ("R17", "info", 6, 4, ["already-addressed"]),
           ("R05", "warning", 3, 2, ["benefit-outweighs-risk"]),
           ("R20", "info", 7, 0, ["already-addressed"] * 4)]


def seed_history(data_dir: Path, now: datetime, weeks: int = 7) -> None:
    store = Store(sqlite_url(data_dir))
    store.upgrade()
    keys = PatientKey("seed secret, not the server's one")
    try:
        for week in range(weeks, 0, -1):
            at = now - timedelta(weeks=week)
            for rule, indicator, count, accepted, overridden in HISTORY:
                count = max(1, count + (week % 3) - 1)
                records = [CardRecord(
                    uuid=str(uuid.uuid4()), service_id=PATIENT_VIEW, hook="patient-view", stable_key=rule,
                    indicator=indicator, knowledge_version="2020-03-05.1", issued_at=at,
                    patient_hash=keys.patient("https://ehr.example.org/fhir", f"seed-{week}-{i}"),
                    fhir_server_hash=keys.server("https://ehr.example.org/fhir"), findings=(Finding(rule),),
                    suggestion_uuids=(str(uuid.uuid4()),),
                ) for i in range(count)]
                store.record_cards(records)
                for record, outcome in zip(records, ["accepted"] * accepted + overridden):
                    reason = None if outcome == "accepted" else outcome
                    store.record_feedback(FeedbackEntry(
                        service_id=PATIENT_VIEW, card_uuid=record.uuid,
                        outcome="accepted" if outcome == "accepted" else "overridden", outcome_at=at,
                        accepted_suggestions=record.suggestion_uuids if outcome == "accepted" else (),
                        override_code=reason), at)
    finally:
        store.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    seed_history(data_dir, datetime.now(timezone.utc))
    installed = Path(sys.executable).with_name("calcinosis-cds")
    command = [str(installed)] if installed.exists() else [sys.executable, "-m", "cds_service.service.cli"]
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("CDS_", "PROMETHEUS_"))}
    env.update(CDS_DATA_DIR=str(data_dir), CDS_ADMIN_TOKEN=ADMIN)
    base = f"http://127.0.0.1:{port}"
    with server_process([*command, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                        f"{base}/healthz", name="calcinosis-cds serve", env=env):
        yield base


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_the_dashboard_in_a_real_browser(browser, served, tmp_path):
    from selenium.webdriver.common.by import By

    cards = post(f"{served}/cds-services/{PATIENT_VIEW}", {**patient_view(), "hookInstance": str(uuid.uuid4())})["cards"]
    r01 = next(c for c in cards if "R01" in c["extension"]["calcinosis-cds"]["rules"])
    stamp = datetime.now(timezone.utc).isoformat()
    post(f"{served}/cds-services/{PATIENT_VIEW}/feedback",
         {"feedback": [{"card": r01["uuid"], "outcome": "overridden", "outcomeTimestamp": stamp}]})

    # A browser sends no Authorization header by itself: the DevTools protocol adds it to every request.
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {ADMIN}"}})
    browser.get(f"{served}/analytics?weeks=8")
    assert browser.title == "calcinosis-cds: rule analytics"
    charts = browser.find_elements(By.CSS_SELECTOR, "figure svg")
    assert len(charts) >= 1 + len(HISTORY)
    for chart in charts:  # laid out and drawn, not just present in the source
        assert chart.size["width"] > 100 and chart.size["height"] > 50
    bars = browser.find_elements(By.CSS_SELECTOR, "svg rect.bar")
    assert len(bars) > 20 and any(bar.size["height"] > 10 for bar in bars)
    table = browser.find_element(By.ID, "table").text
    assert "R01" in table and "already-addressed" in table
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []  # nothing failed to load (the page loads nothing)

    png = screenshot(browser, tmp_path / "analytics.png")
    assert png_size(png) == viewport_size(browser)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        (ROOT / "docs" / "analytics.png").write_bytes(png)


@pytest.mark.slow
def test_metrics_of_all_workers_add_up(served):
    for _ in range(4):
        post(f"{served}/cds-services/{PATIENT_VIEW}", {**patient_view(), "hookInstance": str(uuid.uuid4())})
    with urllib.request.urlopen(f"{served}/metrics", timeout=10) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    calls = sum(s.value for s in families["cds_calls"].samples
                if s.name == "cds_calls_total" and s.labels["service"] == PATIENT_VIEW)
    assert calls >= 4  # whichever worker answered each
    assert any(s.labels.get("pid") is None for s in families["cds_calls"].samples)  # aggregated, not per process
