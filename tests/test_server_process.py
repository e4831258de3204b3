"""The service as a real HTTP server process (gunicorn, via `calcinosis-cds serve`) on loopback."""

import json
import os
import sys
import urllib.request
from datetime import datetime, timezone

import pytest

from ._processes import free_port, server_process
from .conftest import fired_rules, load_scenario, scenario_request


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = dict(os.environ, CDS_AUTH="off", CDS_LOG_FORMAT="json", CDS_DATA_DIR=str(tmp_path_factory.mktemp("data")))
    command = [sys.executable, "-m", "cds_service.service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with server_process(command, f"{base}/healthz", name="the server", env=env):
        yield base


def request(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), dict(error.headers)


def test_discovery_over_http(server):
    status, body, headers = request("GET", f"{server}/cds-services")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert any(s["id"] == "calcinosis-cutis-patient-view" for s in body["services"])


def test_patient_view_over_http_with_the_real_clock(server):
    # The server runs on the real clock, so the scenario is resolved against now.
    service_id, body = scenario_request(load_scenario("foundation-calcinosis-ckd-hyperphosphatemia", datetime.now(timezone.utc)))
    status, payload, _ = request("POST", f"{server}/cds-services/{service_id}", body)
    assert status == 200
    assert {"R01", "R17", "R18"} <= fired_rules(payload)


def test_errors_over_http_are_json(server):
    status, payload, _ = request("POST", f"{server}/cds-services/nope", {"hook": "patient-view"})
    assert status == 404 and payload["resourceType"] == "OperationOutcome"
    status, payload, _ = request("POST", f"{server}/cds-services/calcinosis-cutis-patient-view", {"hook": "patient-view"})
    assert status == 400 and "hookInstance" in payload["error"]
