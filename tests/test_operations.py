"""Operating the service: metrics, readiness, the patient-hash secret, the per-site settings file, the report and
db commands, and no patient identifier anywhere in the database file."""

from __future__ import annotations

import json
import stat
import uuid
from argparse import Namespace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from cds_service import create_app
from cds_service.service import report
from cds_service.service.settings import Settings, SettingsError, bundled_data_path

from .conftest import NOW, TEST_DATA_DIR, isolated_state, load_scenario, make_app, scenario_request
from .test_operated import ADMIN, PATIENT_VIEW, Clock, call, card_with, patient_view, send_feedback


def samples(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def test_metrics_count_calls_cards_feedback_and_authentication_failures():
    app = make_app()
    client = app.test_client()
    before = samples(client)
    response = call(client, PATIENT_VIEW, patient_view("metrics-patient"))
    send_feedback(client, card_with(response, "R01"), "overridden")
    assert client.get("/analytics", headers={"Authorization": "Bearer nope"}).status_code in (401, 404)
    after = samples(client)

    def delta(name: str, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("cds_calls_total", service=PATIENT_VIEW, status="200") == 1
    assert delta("cds_calls_total", service=f"{PATIENT_VIEW}/feedback", status="200") == 1
    assert delta("cds_call_duration_seconds_count", service=PATIENT_VIEW) == 1
    assert delta("cds_cards_total", rule="R01", indicator="info", delivery="shown") == 1
    assert delta("cds_cards_total", rule="R17", indicator="info", delivery="shown") == 1
    assert delta("cds_feedback_total", outcome="overridden", card="known") == 1
    # No admin token configured here: analytics are off (404), and that is no authentication failure.
    assert delta("cds_auth_failures_total", reason="admin token missing or wrong") == 0


def test_authentication_failures_are_counted_by_reason():
    app = create_app(Settings(auth="required", issuers_file=bundled_data_path("sandbox-issuers.json"),
                              log_level="CRITICAL", **isolated_state()))
    client = app.test_client()
    before = samples(client)
    assert client.get("/cds-services").status_code == 401
    assert client.get("/cds-services", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
    after = samples(client)
    for reason in ("no Authorization header", "token is not a well-formed JWT"):
        key = ("cds_auth_failures_total", (("reason", reason),))
        assert after[key] - before.get(key, 0) == 1


def test_readiness_checks_the_database_migrations_and_trust(tmp_path):
    client = make_app(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}").test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["status"] == "ready" and body["database"] is True and body["trust"] is True
    assert body["migrations"]["atHead"] is True and body["migrations"]["current"] == body["migrations"]["head"]
    store = client.application.extensions["calcinosis-cds"].operations.store
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    behind = client.get("/readyz")
    assert behind.status_code == 503 and behind.get_json()["migrations"]["atHead"] is False
    store.engine.dispose()
    (tmp_path / "db.sqlite3").unlink()
    (tmp_path / "db.sqlite3").mkdir()  # the file is gone and cannot be made again: the database does not answer
    gone = client.get("/readyz")
    assert gone.status_code == 503 and gone.get_json()["database"] is False


def test_the_hash_secret_is_required_in_production_and_generated_in_development(tmp_path):
    production = Settings(auth="required", issuers_file=bundled_data_path("sandbox-issuers.json"),
                          data_dir=tmp_path, log_level="CRITICAL")
    with pytest.raises(SettingsError, match="CDS_HASH_SECRET is required"):
        create_app(production)
    with pytest.raises(SettingsError, match="at least 16 bytes"):
        create_app(Settings(auth="off", data_dir=tmp_path, hash_secret="short", log_level="CRITICAL"))
    create_app(Settings(auth="off", data_dir=tmp_path, log_level="CRITICAL"))
    secret = tmp_path / "patient-hash-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_text()) == 64
    kept = secret.read_text()
    create_app(Settings(auth="off", data_dir=tmp_path, log_level="CRITICAL"))
    assert secret.read_text() == kept  # a restart keeps the dismissals' keys


@pytest.mark.parametrize("document, message", [
    ("{not json", "not readable JSON"),
    ({"sites": [{"silent": True}]}, "sites.0.issuer: Field required"),
    ({"sites": [{"issuer": "https://a", "silently": True}]}, "sites.0.silently: Extra inputs are not permitted"),
    ({"sites": [{"issuer": "https://a", "rules_off": ["R99"]}]}, "sites.0.rules_off: unknown rule ids R99"),
    ({"sites": [{"issuer": "https://a"}, {"issuer": "https://a"}]}, "sites.1: a second entry"),
    ({"default": {"silent": "sometimes"}}, "default.silent"),
])
def test_a_bad_site_settings_file_stops_the_start_with_the_place_of_the_error(tmp_path, document, message):
    path = tmp_path / "sites.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(SettingsError, match=message.replace(".", r"\.")):
        make_app(site_settings_file=path)


def test_the_default_site_settings_apply_to_callers_without_an_issuer(tmp_path):
    path = tmp_path / "sites.json"
    path.write_text(json.dumps({"default": {"rules_off": ["R01"]}, "sites": [{"issuer": "https://a", "silent": True}]}))
    response = call(make_app(site_settings_file=path).test_client(), PATIENT_VIEW, patient_view())
    assert response["cards"] and card_with(response, "R01") is None


def test_report_and_db_commands_print_what_the_analytics_count(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    client = create_app(Settings(auth="off", log_level="CRITICAL", data_dir=TEST_DATA_DIR, database_url=url,
                                 hash_secret="a patient-hash secret for these tests", admin_token=ADMIN),
                        clock=Clock()).test_client()
    send_feedback(client, card_with(call(client, PATIENT_VIEW, patient_view()), "R01"), "overridden", reason="x")
    # The commands read the system clock: the report covers the weeks up to today, so compare with the same weeks.
    monkeypatch.setattr(report, "system_clock", Clock(NOW))
    monkeypatch.setenv("CDS_DATABASE_URL", url)
    assert report.report_command(Namespace(format="json", weeks=None)) == 0
    document = json.loads(capsys.readouterr().out)
    r01 = next(r for r in document["rules"] if r["rule"] == "R01")
    assert r01["totals"]["overridden"] == 1 and r01["totals"]["overrideReasons"] == {"x": 1}
    assert report.report_command(Namespace(format="csv", weeks=4)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",") == list(report.COLUMNS) and "R01,2026-W11,1,0,1,0.0000,0,0,x=1" in lines
    assert report.report_command(Namespace(format="table", weeks=4)) == 0
    assert "R01" in capsys.readouterr().out
    assert report.db_command(Namespace(action="current")) == 0
    assert capsys.readouterr().out.split()[0] == "0002"
    monkeypatch.setattr(report, "system_clock", Clock(NOW.replace(year=2028)))
    assert report.db_command(Namespace(action="purge")) == 0
    assert capsys.readouterr().out.startswith("purged 4 cards, 1 feedback")


def test_no_patient_identifier_anywhere_in_the_database_file(tmp_path):
    patient_id = f"patient-{uuid.uuid4().hex}"
    server = "https://fhir.secret-hospital.example.org/r4"
    app = make_app(data_dir=tmp_path)  # the default database: an SQLite file in the data directory
    client = app.test_client()
    body = patient_view(patient_id)
    body["fhirServer"] = server
    response = call(client, PATIENT_VIEW, body)
    send_feedback(client, card_with(response, "R01"), "overridden")
    service_id, order_body = scenario_request(load_scenario("r05-order-select-mg-antacid-ckd3-sandbox"))
    call(client, service_id, order_body)
    app.extensions["calcinosis-cds"].operations.store.close()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("calcinosis-cds.sqlite3")]
    data = b"".join(p.read_bytes() for p in files)
    assert any(p.name == "calcinosis-cds.sqlite3" for p in files) and b"issued_cards" in data
    for clear in (patient_id, server, "secret-hospital", "magnesium hydroxide", "Patient/p1"):
        for encoded in (clear.encode(), clear.encode("utf-16-le")):
            assert encoded not in data, clear
