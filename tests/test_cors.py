"""CORS as the CDS Hooks sandbox needs it (a page on another origin): preflights answered without authentication, and the
headers on every route and every status code, including 401, 404, 405, 413, 415 and 500."""

from __future__ import annotations

import json

import pytest

from cds_service import create_app
from cds_service.service.clock import fixed_clock
from cds_service.service.discovery import services
from cds_service.service.settings import Settings, bundled_data_path

from .conftest import NOW, PATIENT_VIEW, isolated_state, minimal_request

SANDBOX = "https://sandbox.cds-hooks.org"


def required_app(**changes):
    """Authentication required (the sandbox trust file), as strict as production."""
    settings = Settings(
        auth="required", issuers_file=bundled_data_path("sandbox-issuers.json"), log_level="WARNING",
        **isolated_state(), **changes
    )
    return create_app(settings, clock=fixed_clock(NOW))


def open_app(**changes):
    return create_app(Settings(auth="off", fhir_allow_http=True, log_level="WARNING", **isolated_state(), **changes),
                      clock=fixed_clock(NOW))


def preflight_routes():
    """(path, method, requested headers) exactly as the sandbox's browser sends them."""
    routes = [("/cds-services", "GET", "authorization")]
    for service_id in services():
        routes.append((f"/cds-services/{service_id}", "POST", "authorization,content-type"))
        routes.append((f"/cds-services/{service_id}/feedback", "POST", "authorization,content-type"))
    return routes


def assert_cors(response, origin: str = "*"):
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == origin
    methods = {m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "OPTIONS"} <= methods
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "Access-Control-Allow-Credentials" not in headers  # never with credentials (and so * is safe)


@pytest.mark.parametrize("path, method, requested", preflight_routes())
def test_preflight_is_answered_without_authentication(path, method, requested):
    response = required_app().test_client().options(
        path,
        headers={"Origin": SANDBOX, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": requested},
    )
    assert response.status_code in (200, 204)
    assert_cors(response)
    assert int(response.headers["Access-Control-Max-Age"]) > 0


def test_real_responses_of_every_status_carry_the_headers():
    client = required_app().test_client()
    origin = {"Origin": SANDBOX}
    assert_cors(client.get("/cds-services", headers=origin))  # 401: no token
    assert client.get("/cds-services", headers=origin).status_code == 401
    cases = [
        (open_app().test_client().get("/cds-services", headers=origin), 200),
        (open_app().test_client().post(f"/cds-services/{PATIENT_VIEW}", json=minimal_request(), headers=origin), 200),
        (client.post(f"/cds-services/{PATIENT_VIEW}", json=minimal_request(), headers=origin), 401),
        (client.get("/healthz", headers=origin), 200),
        (open_app().test_client().post("/cds-services/nope", json={}, headers=origin), 404),
        (open_app().test_client().get("/no-such-route", headers=origin), 404),
        (open_app().test_client().put("/cds-services", headers=origin), 405),
        (open_app().test_client().post(f"/cds-services/{PATIENT_VIEW}", data="x", content_type="text/plain", headers=origin), 415),
        (open_app().test_client().post(f"/cds-services/{PATIENT_VIEW}", data="{", content_type="application/json", headers=origin), 400),
        (
            open_app(max_body_bytes=2048).test_client().post(
                f"/cds-services/{PATIENT_VIEW}", data=json.dumps({"x": "a" * 4096}), content_type="application/json", headers=origin
            ),
            413,
        ),
    ]
    for response, status in cases:
        assert response.status_code == status, (status, response.data)
        assert_cors(response)


class Boom:
    """An authenticator that fails unexpectedly, to reach the 500 handler."""

    def authenticate(self, request, settings):
        raise RuntimeError("secret internal detail")


def test_500_carries_the_headers_and_no_stack_trace():
    app = create_app(Settings(auth="off", log_level="CRITICAL", **isolated_state()), clock=fixed_clock(NOW),
                     authenticator=Boom())
    response = app.test_client().get("/cds-services", headers={"Origin": SANDBOX})
    assert response.status_code == 500
    assert_cors(response)
    text = response.get_data(as_text=True)
    assert "secret internal detail" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_configured_origins_echo_an_allowed_origin_and_ignore_others():
    client = open_app(cors_origins=("https://ehr.example.org", SANDBOX)).test_client()
    allowed = client.get("/cds-services", headers={"Origin": SANDBOX})
    assert_cors(allowed, origin=SANDBOX)
    assert "Origin" in allowed.headers.get("Vary", "")
    other = client.get("/cds-services", headers={"Origin": "https://evil.example.org"})
    assert other.status_code == 200
    assert not any(name.startswith("Access-Control-") for name in other.headers.keys())
    preflight = client.options(
        "/cds-services", headers={"Origin": "https://evil.example.org", "Access-Control-Request-Method": "GET"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_wildcard_is_the_default():
    assert Settings.__dataclass_fields__["cors_origins"].default == ("*",)
    assert Settings.from_env({"CDS_AUTH": "off"}).cors_origins == ("*",)
