"""The service as a real HTTP server process (gunicorn, via `calcinosis-cds serve`) on loopback."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone

import pytest

from .conftest import fired_rules, load_scenario, scenario_request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = dict(os.environ, CDS_AUTH="off", CDS_LOG_FORMAT="json")
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start: " + (process.stdout.read() if process.poll() is not None else ""))
                time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
