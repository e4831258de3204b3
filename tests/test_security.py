"""JWT authentication as CDS Hooks 2.0 §Security requires, with real keys (EC P-384 and RSA) generated per run.

Every failure the specification names gets its own test, each showing an empty 401 and a logged reason; the success
path uses a token shaped like the sandbox's (ES384, kid, typ JWT, allowlisted jku; iss, aud, exp = iat + 300, jti).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import threading
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cds_service import create_app
from cds_service.service.clock import fixed_clock
from cds_service.service.errors import Unauthorized
from cds_service.service.security import (
    MIN_REFETCH_SECONDS,
    Authenticator,
    RemoteKeySets,
    ReplayCache,
    SharedReplayCache,
    _Rejected,
    load_issuers,
)
from cds_service.service.settings import Settings, SettingsError, bundled_data_path

from .conftest import NOW, PATIENT_VIEW, isolated_state, minimal_request

EHR = "https://ehr.example.org"
TENANTED = "https://tenanted.example.org"
REMOTE = "https://remote.example.org"
REMOTE_JWKS = "https://remote.example.org/.well-known/jwks.json"
EHR_JKU = "https://ehr.example.org/.well-known/jwks.json"
BASE = "http://localhost"
DISCOVERY = f"{BASE}/cds-services"
SERVICE = f"{BASE}/cds-services/{PATIENT_VIEW}"
FEEDBACK = f"{SERVICE}/feedback"
FEEDBACK_BODY = {
    "feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-03-14T15:10:00Z"}]
}


# --- keys and tokens -----------------------------------------------------------------------------------------------


def public_jwk(private_key, kid: str, **extra) -> dict:
    algorithm = ECAlgorithm if isinstance(private_key, ec.EllipticCurvePrivateKey) else RSAAlgorithm
    return {**json.loads(algorithm.to_jwk(private_key.public_key())), "kid": kid, "use": "sig", **extra}


@pytest.fixture(scope="module")
def keys():
    return {
        "ec": ec.generate_private_key(ec.SECP384R1()),
        "ec256": ec.generate_private_key(ec.SECP256R1()),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "other": ec.generate_private_key(ec.SECP384R1()),  # trusted by nobody
    }


def write_issuers(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def issuers_file(tmp_path, keys) -> Path:
    return write_issuers(
        tmp_path / "issuers.json",
        {
            "issuers": {
                EHR: {
                    "jwks": {
                        "keys": [
                            public_jwk(keys["ec"], "ec-1", alg="ES384"),
                            public_jwk(keys["rsa"], "rsa-1"),
                            public_jwk(keys["ec256"], "ec256-1"),
                        ]
                    },
                    "allowed_jku": [EHR_JKU],
                },
                TENANTED: {"jwks": {"keys": [public_jwk(keys["ec"], "ec-1")]}, "tenants": ["hospital-a"]},
                REMOTE: {"jwks_uri": REMOTE_JWKS},
            }
        },
    )


def claims(aud: str = DISCOVERY, iss: str = EHR, **changes) -> dict:
    now = int(time.time())
    payload = {"iss": iss, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def mint(private_key, payload: dict, *, kid: str | None = "ec-1", alg: str = "ES384", **header) -> str:
    """A token signed like the sandbox's: alg, typ JWT, kid, optional jku (header values of None are left out)."""
    headers = {k: v for k, v in {"typ": "JWT", "kid": kid, **header}.items() if v is not None}
    if "typ" not in headers:
        headers["typ"] = None  # PyJWT writes typ JWT unless told not to, by None
    return jwt.encode(payload, private_key, algorithm=alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def redirect_log(stream: io.StringIO) -> io.StringIO:
    """Send the service's own log handler (created by create_app on sys.stdout) to stream: the real, formatted lines."""
    handlers = [h for h in logging.getLogger("cds_service").handlers if type(h) is logging.StreamHandler]
    assert len(handlers) == 1
    handlers[0].setStream(stream)
    return stream


def make(issuers_file: Path | None, log: io.StringIO | None = None, **changes):
    settings = Settings(
        **{"auth": "required", "issuers_file": issuers_file, "fhir_allow_http": True, "log_level": "INFO",
           **isolated_state(), **changes}
    )
    app = create_app(settings, clock=fixed_clock(NOW))
    if log is not None:
        redirect_log(log)
    return app


@pytest.fixture
def log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def client(issuers_file, log):
    return make(issuers_file, log).test_client()


def call_service(client, token: str | None, body: dict | None = None):
    headers = bearer(token) if token else {}
    return client.post(f"/cds-services/{PATIENT_VIEW}", json=body or minimal_request(), headers=headers)


def assert_rejected(response, log: io.StringIO | None = None, reason: str | None = None):
    assert response.status_code == 401
    assert response.get_data() == b"", "a 401 carries no details"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    if log is not None:
        out = log.getvalue()
        log.seek(0)
        log.truncate()
        assert "authentication rejected" in out
        if reason:
            assert reason in out, out


# --- the success path --------------------------------------------------------------------------------------------


def test_sandbox_shaped_token_is_accepted_on_every_endpoint(client, keys):
    sandbox_header = {"jku": EHR_JKU}  # the sandbox sends its jku; here it is allowlisted (and never needed)
    with responses.RequestsMock() as mock:  # nothing may be fetched: the key is in the static set
        r = client.get("/cds-services", headers=bearer(mint(keys["ec"], claims(DISCOVERY), **sandbox_header)))
        assert r.status_code == 200, r.data
        assert r.get_json()["services"]
        r = call_service(client, mint(keys["ec"], claims(SERVICE), **sandbox_header))
        assert r.status_code == 200, r.data
        assert "cards" in r.get_json()
        r = client.post(
            f"/cds-services/{PATIENT_VIEW}/feedback",
            json=FEEDBACK_BODY,
            headers=bearer(mint(keys["ec"], claims(FEEDBACK), **sandbox_header)),
        )
        assert r.status_code < 300, r.data
        assert len(mock.calls) == 0


def test_rs384_token_is_accepted(client, keys):
    r = client.get("/cds-services", headers=bearer(mint(keys["rsa"], claims(), kid="rsa-1", alg="RS384")))
    assert r.status_code == 200


def test_aud_may_be_an_array_that_contains_the_url(client, keys):
    r = client.get("/cds-services", headers=bearer(mint(keys["ec"], claims(aud=["https://other.example", DISCOVERY]))))
    assert r.status_code == 200


def test_query_string_is_not_part_of_aud(client, keys):
    r = client.get("/cds-services?x=1", headers=bearer(mint(keys["ec"], claims(DISCOVERY))))
    assert r.status_code == 200


def test_aud_is_computed_from_public_url_when_set(issuers_file, keys):
    client = make(issuers_file, public_url="https://cds.example.org/base").test_client()
    public = "https://cds.example.org/base/cds-services"
    assert client.get("/cds-services", headers=bearer(mint(keys["ec"], claims(public)))).status_code == 200
    # the URL the request itself names is not the public one, so a token for it is refused
    assert client.get("/cds-services", headers=bearer(mint(keys["ec"], claims(DISCOVERY)))).status_code == 401


def test_tenant_in_the_allowlist_is_accepted(client, keys):
    token = mint(keys["ec"], claims(iss=TENANTED, tenant="hospital-a"))
    assert client.get("/cds-services", headers=bearer(token)).status_code == 200


def test_a_tenant_claim_that_is_no_tenant_id_is_refused(client, keys, log):
    # Kept with the call's cards and feedback (200 characters there): a longer or empty one is refused, not cut.
    for tenant in ("t" * 201, "", 42):
        token = mint(keys["ec"], claims(tenant=tenant))
        assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "tenant is not a string")
    assert client.get("/cds-services", headers=bearer(mint(keys["ec"], claims(tenant="t" * 200)))).status_code == 200


def test_extra_algorithm_is_accepted_only_when_configured(issuers_file, keys, log):
    token = lambda: mint(keys["ec256"], claims(), kid="ec256-1", alg="ES256")  # noqa: E731
    assert_rejected(make(issuers_file, log).test_client().get("/cds-services", headers=bearer(token())), log, "alg not allowed")
    configured = make(issuers_file, extra_jwt_algorithms=("ES256",)).test_client()
    assert configured.get("/cds-services", headers=bearer(token())).status_code == 200


# --- each failure ------------------------------------------------------------------------------------------------


def test_missing_authorization_header(client, log):
    assert_rejected(client.get("/cds-services"), log, "no Authorization header")
    assert_rejected(call_service(client, None), log, "no Authorization header")


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer not.a.jwt", "Bearer abc", "Token x.y.z"])
def test_malformed_authorization_header(client, log, value):
    assert_rejected(client.get("/cds-services", headers={"Authorization": value}), log)


def test_alg_none(client, keys, log):
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": "ec-1", "typ": "JWT"})
    assert token.endswith(".")
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "alg not allowed")


def test_hs256_signed_with_the_public_key(client, keys, log):
    """The classic key-confusion attack: HMAC keyed with the issuer's public key, which anyone can read."""
    pem = keys["ec"].public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": "ec-1"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims()).encode())}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(signature)}"
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "alg not allowed")


def test_unknown_kid(client, keys, log):
    assert_rejected(client.get("/cds-services", headers=bearer(mint(keys["ec"], claims(), kid="nope"))), log, "kid unknown")


def test_missing_kid(client, keys, log):
    assert_rejected(client.get("/cds-services", headers=bearer(mint(keys["ec"], claims(), kid=None))), log, "kid missing")


def test_missing_typ(client, keys, log):
    token = mint(keys["ec"], claims(), typ=None)
    assert "typ" not in jwt.get_unverified_header(token)
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "typ is not JWT")


@pytest.mark.parametrize("typ", ["JOSE", "at+jwt", 1])
def test_wrong_typ(client, keys, log, typ):
    token = mint(keys["ec"], claims(), typ=typ)
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "typ is not JWT")


def test_unknown_iss(client, keys, log):
    token = mint(keys["ec"], claims(iss="https://evil.example.org"))
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "iss not trusted")


def test_signature_by_an_untrusted_key_with_a_trusted_kid(client, keys, log):
    token = mint(keys["other"], claims())
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "signature invalid")


def test_tampered_payload(client, keys, log):
    header, _, signature = mint(keys["ec"], claims()).split(".")
    forged = f"{header}.{_b64(json.dumps(claims(iss=EHR, extra='x')).encode())}.{signature}"
    assert_rejected(client.get("/cds-services", headers=bearer(forged)), log, "signature invalid")


def test_alg_that_does_not_match_the_key(client, keys, log):
    token = mint(keys["rsa"], claims(), kid="ec-1", alg="RS384")  # RS384 naming the EC key
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "does not match")


@pytest.mark.parametrize(
    "path, aud",
    [
        ("/cds-services", SERVICE),  # a service's token replayed at discovery
        (f"/cds-services/{PATIENT_VIEW}", DISCOVERY),
        (f"/cds-services/{PATIENT_VIEW}", FEEDBACK),
        (f"/cds-services/{PATIENT_VIEW}/feedback", SERVICE),  # the feedback URL is its own aud
        ("/cds-services", DISCOVERY + "/"),
        ("/cds-services", "https://localhost/cds-services"),
        ("/cds-services", "http://localhost:8080/cds-services"),
    ],
)
def test_wrong_aud(client, keys, log, path, aud):
    headers = bearer(mint(keys["ec"], claims(aud)))
    if path == "/cds-services":
        response = client.get(path, headers=headers)
    else:
        response = client.post(path, json=FEEDBACK_BODY if path.endswith("feedback") else minimal_request(), headers=headers)
    assert_rejected(response, log, "aud is not the URL called")


def test_expired(client, keys, log):
    now = int(time.time())
    token = mint(keys["ec"], claims(iat=now - 400, exp=now - 100))  # past the 30 s leeway
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "token expired")


def test_expired_within_the_leeway_is_accepted(client, keys):
    now = int(time.time())
    token = mint(keys["ec"], claims(iat=now - 300, exp=now - 5))
    assert client.get("/cds-services", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("field", ["iat", "nbf"])
def test_not_yet_valid(client, keys, log, field):
    now = int(time.time())
    token = mint(keys["ec"], claims(**{field: now + 600, "exp": now + 900}))
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "not yet valid")


@pytest.mark.parametrize("missing", ["exp", "iat", "jti", "aud"])
def test_required_claim_missing(client, keys, log, missing):
    token = mint(keys["ec"], claims(**{missing: None}))
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log)


def _sign_any(header: dict, payload: dict, private_key) -> str:
    """A JWS over any JSON, for claim and header types PyJWT's encoder would refuse to write."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    algorithm = jwt.algorithms.get_default_algorithms()["ES384"]
    return f"{signing_input}.{_b64(algorithm.sign(signing_input.encode(), private_key))}"


@pytest.mark.parametrize(
    "header_changes, claim_changes",
    [
        ({}, {"jti": 123}),
        ({}, {"jti": ["a"]}),
        ({}, {"jti": ""}),
        ({}, {"exp": str(int(time.time()) + 300)}),
        ({}, {"iat": True}),
        ({}, {"iss": [EHR]}),
        ({}, {"aud": 123}),
        ({}, {"tenant": ["hospital-a"]}),
        ({"kid": 123}, {}),
        ({"kid": ""}, {}),
        ({"jku": [EHR_JKU]}, {}),
        ({"alg": ["ES384"]}, {}),
    ],
)
def test_claims_and_header_values_of_the_wrong_type(client, keys, log, header_changes, claim_changes):
    header = {"alg": "ES384", "typ": "JWT", "kid": "ec-1", **header_changes}
    payload = {**claims(), **claim_changes}
    if "tenant" in claim_changes:
        payload["iss"] = TENANTED
    token = _sign_any(header, payload, keys["ec"])
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log)
    sound = _sign_any({"alg": "ES384", "typ": "JWT", "kid": "ec-1"}, claims(), keys["ec"])
    assert client.get("/cds-services", headers=bearer(sound)).status_code == 200  # the signer itself is sound


def test_lifetime_longer_than_an_hour(client, keys, log):
    now = int(time.time())
    token = mint(keys["ec"], claims(iat=now, exp=now + 7200))
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "lifetime")


def test_replayed_jti(client, keys, log):
    token = mint(keys["ec"], claims(SERVICE))
    assert call_service(client, token).status_code == 200
    assert_rejected(call_service(client, token), log, "jti replayed")
    # the same jti in a freshly signed token is a replay too
    again = mint(keys["ec"], claims(SERVICE, jti=jwt.decode(token, options={"verify_signature": False})["jti"]))
    assert_rejected(call_service(client, again), log, "jti replayed")


def test_a_rejected_token_does_not_burn_its_jti(client, keys):
    jti = str(uuid.uuid4())
    assert client.get("/cds-services", headers=bearer(mint(keys["ec"], claims(SERVICE, jti=jti)))).status_code == 401
    assert client.get("/cds-services", headers=bearer(mint(keys["ec"], claims(DISCOVERY, jti=jti)))).status_code == 200


def test_jku_not_allowlisted_is_never_fetched(client, keys, log):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get("https://evil.example.org/jwks.json", json={"keys": [public_jwk(keys["other"], "ec-1")]})
        token = mint(keys["other"], claims(), jku="https://evil.example.org/jwks.json")
        assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "jku not allowlisted")
        assert len(mock.calls) == 0


@pytest.mark.parametrize("tenant", ["hospital-b", None])
def test_tenant_not_allowed(client, keys, log, tenant):
    token = mint(keys["ec"], claims(iss=TENANTED, tenant=tenant))
    assert_rejected(client.get("/cds-services", headers=bearer(token)), log, "tenant not allowed")


def test_oversized_token(client, log):
    assert_rejected(client.get("/cds-services", headers=bearer("a" * 20_000)), log, "token too long")


def test_unauthenticated_caller_cannot_probe_service_ids(client):
    assert client.post("/cds-services/no-such-service", json={}).status_code == 401
    assert client.post("/cds-services/no-such-service/feedback", json={}).status_code == 401


# --- modes -------------------------------------------------------------------------------------------------------


def test_optional_mode_accepts_no_token_but_verifies_one_that_is_sent(issuers_file, keys):
    client = make(issuers_file, auth="optional").test_client()
    assert client.get("/cds-services").status_code == 200
    assert call_service(client, None).status_code == 200
    assert client.get("/cds-services", headers=bearer(mint(keys["ec"], claims()))).status_code == 200
    assert client.get("/cds-services", headers=bearer(mint(keys["other"], claims()))).status_code == 401
    assert client.get("/cds-services", headers={"Authorization": "Bearer junk"}).status_code == 401


def test_off_mode_ignores_tokens(issuers_file):
    client = make(None, auth="off").test_client()
    assert client.get("/cds-services", headers={"Authorization": "Bearer junk"}).status_code == 200


def test_required_is_the_default_and_needs_issuers():
    assert Settings.__dataclass_fields__["auth"].default == "required"
    with pytest.raises(SettingsError, match="CDS_ISSUERS"):
        Settings(auth="required")


# --- the bundled sandbox trust file ------------------------------------------------------------------------------


def test_bundled_sandbox_trust_file_loads_and_trusts_only_the_sandbox():
    issuers = load_issuers(bundled_data_path("sandbox-issuers.json"))
    assert set(issuers) == {"https://sandbox.cds-hooks.org"}
    sandbox = issuers["https://sandbox.cds-hooks.org"]
    assert set(sandbox.keys) == {"44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"}
    assert sandbox.keys["44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"]["crv"] == "P-384"
    assert sandbox.allowed_jku == {"https://sandbox.cds-hooks.org/.well-known/jwks.json"}


def test_development_settings_start_and_refuse_a_forged_sandbox_token(keys):
    client = create_app(Settings.development(log_level="WARNING", **isolated_state())).test_client()
    assert client.get("/cds-services").status_code == 200  # optional: the sandbox may also run without tokens
    forged = mint(
        keys["other"],
        claims(iss="https://sandbox.cds-hooks.org"),
        kid="44823f3d-0b01-4a6c-a80e-b9d3e8a7226f",
        jku="https://sandbox.cds-hooks.org/.well-known/jwks.json",
    )
    with responses.RequestsMock() as mock:  # offline: the static key decides, the jku is not fetched
        assert client.get("/cds-services", headers=bearer(forged)).status_code == 401
        assert len(mock.calls) == 0


# --- a bad trust file stops the service at start-up --------------------------------------------------------------


@pytest.mark.parametrize(
    "document, message",
    [
        ("not json", "not valid JSON"),
        ([], "must be an object"),
        ({"issuers": {}}, "trusts no issuer"),
        ({"issuers": {EHR: {}}}, "exactly one of jwks"),
        ({"issuers": {EHR: {"jwks": {"keys": []}, "jwks_uri": REMOTE_JWKS}}}, "exactly one of jwks"),
        ({"issuers": {EHR: {"jwks": {"keys": []}}}}, "no keys"),
        ({"issuers": {EHR: {"jwks": {"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}}}}, "oct"),
        ({"issuers": {EHR: {"jwks_uri": "http://ehr.example.org/jwks"}}}, "https"),
        ({"issuers": {EHR: {"jwks_uri": REMOTE_JWKS, "allowed_jku": "https://x"}}}, "allowed_jku"),
        ({"issuers": {EHR: {"jwks_uri": REMOTE_JWKS, "tenants": []}}}, "tenants"),
        ({"issuers": {EHR: {"jwks_url": REMOTE_JWKS}}}, "unknown fields"),
        ({"issuer": {}}, "must be an object"),
    ],
)
def test_bad_trust_file_refuses_to_start(tmp_path, document, message):
    path = tmp_path / "issuers.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(SettingsError, match=message):
        make(path)


def test_trust_file_with_a_private_key_refuses_to_start(tmp_path, keys):
    private = json.loads(ECAlgorithm.to_jwk(keys["ec"])) | {"kid": "k"}
    path = write_issuers(tmp_path / "issuers.json", {"issuers": {EHR: {"jwks": {"keys": [private]}}}})
    with pytest.raises(SettingsError, match="private key"):
        make(path)


def test_trust_file_key_without_kid_refuses_to_start(tmp_path, keys):
    jwk = public_jwk(keys["ec"], "k")
    del jwk["kid"]
    path = write_issuers(tmp_path / "issuers.json", {"issuers": {EHR: {"jwks": {"keys": [jwk]}}}})
    with pytest.raises(SettingsError, match="no kid"):
        make(path)


def test_hmac_extra_algorithm_refuses_to_start(issuers_file):
    with pytest.raises(SettingsError, match="CDS_JWT_EXTRA_ALGORITHMS"):
        make(issuers_file, extra_jwt_algorithms=("HS256",))


# --- keys fetched from jwks_uri and allowlisted jku --------------------------------------------------------------


class FakeMonotonic:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def remote_client(issuers_file, monotonic, *, cache_seconds=3600, timeout=2.5, log=None):
    settings = Settings(auth="required", issuers_file=issuers_file, log_level="INFO", jwks_fetch_timeout_seconds=timeout,
                        **isolated_state())
    authenticator = Authenticator.from_settings(settings)
    authenticator.remote = RemoteKeySets(timeout=timeout, cache_seconds=cache_seconds, monotonic=monotonic)
    app = create_app(settings, clock=fixed_clock(NOW), authenticator=authenticator)
    if log is not None:
        redirect_log(log)
    return app.test_client()


def test_jwks_uri_is_fetched_once_and_cached(issuers_file, keys):
    client = remote_client(issuers_file, FakeMonotonic())
    with responses.RequestsMock() as mock:
        mock.get(REMOTE_JWKS, json={"keys": [public_jwk(keys["ec"], "r-1")]})
        for _ in range(3):
            token = mint(keys["ec"], claims(iss=REMOTE), kid="r-1")
            assert client.get("/cds-services", headers=bearer(token)).status_code == 200
        assert len(mock.calls) == 1
        assert mock.calls[0].request.req_kwargs["timeout"] == 2.5


def test_jwks_uri_is_fetched_again_for_an_unknown_kid(issuers_file, keys):
    clock = FakeMonotonic()
    client = remote_client(issuers_file, clock)
    with responses.RequestsMock() as mock:
        mock.get(REMOTE_JWKS, json={"keys": [public_jwk(keys["ec"], "r-1")]})
        mock.get(REMOTE_JWKS, json={"keys": [public_jwk(keys["ec"], "r-1"), public_jwk(keys["rsa"], "r-2")]})
        assert client.get("/cds-services", headers=bearer(mint(keys["ec"], claims(iss=REMOTE), kid="r-1"))).status_code == 200
        rotated = lambda: bearer(mint(keys["rsa"], claims(iss=REMOTE), kid="r-2", alg="RS384"))  # noqa: E731
        # right after a fetch an unknown kid does not trigger another one (random kids must not flood the EHR)
        clock.now += 1
        assert client.get("/cds-services", headers=rotated()).status_code == 401
        assert len(mock.calls) == 1
        clock.now += MIN_REFETCH_SECONDS
        assert client.get("/cds-services", headers=rotated()).status_code == 200
        assert len(mock.calls) == 2


def test_jwks_uri_cache_expires_and_stale_keys_survive_a_failed_fetch(issuers_file, keys):
    clock = FakeMonotonic()
    client = remote_client(issuers_file, clock, cache_seconds=60)
    with responses.RequestsMock() as mock:
        mock.get(REMOTE_JWKS, json={"keys": [public_jwk(keys["ec"], "r-1")]})
        mock.get(REMOTE_JWKS, body=requests.ConnectionError("down"))
        token = lambda: bearer(mint(keys["ec"], claims(iss=REMOTE), kid="r-1"))  # noqa: E731
        assert client.get("/cds-services", headers=token()).status_code == 200
        clock.now += 61
        assert client.get("/cds-services", headers=token()).status_code == 200  # fetch failed, stale keys kept
        assert len(mock.calls) == 2


def test_jwks_uri_timeout_is_a_401_not_a_hang(issuers_file, keys, log):
    client = remote_client(issuers_file, FakeMonotonic(), log=log)
    with responses.RequestsMock() as mock:
        mock.get(REMOTE_JWKS, body=requests.ReadTimeout("slow"))
        started = time.monotonic()
        token = mint(keys["ec"], claims(iss=REMOTE), kid="r-1")
        response = client.get("/cds-services", headers=bearer(token))
        assert time.monotonic() - started < 2
    out = log.getvalue()
    assert "JWK Set fetch failed" in out and "ReadTimeout" in out
    assert token not in out
    assert_rejected(response, log, "kid unknown")


@pytest.mark.parametrize(
    "reply",
    [
        {"status": 500, "json": {}},
        {"status": 302, "headers": {"Location": "https://evil.example.org/jwks"}},
        {"status": 200, "body": "not json"},
        {"status": 200, "json": {"keys": "x"}},
        {"status": 200, "body": b"{" + b" " * (600 * 1024) + b"}"},
    ],
)
def test_bad_jwks_uri_replies_are_401(issuers_file, keys, reply):
    client = remote_client(issuers_file, FakeMonotonic())
    with responses.RequestsMock() as mock:
        mock.get(REMOTE_JWKS, **reply)
        token = mint(keys["ec"], claims(iss=REMOTE), kid="r-1")
        assert client.get("/cds-services", headers=bearer(token)).status_code == 401
        assert [c.request.url for c in mock.calls] == [REMOTE_JWKS]


def test_fetched_set_skips_unusable_keys(issuers_file, keys):
    client = remote_client(issuers_file, FakeMonotonic())
    with responses.RequestsMock() as mock:
        mock.get(REMOTE_JWKS, json={"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}, public_jwk(keys["ec"], "r-1")]})
        assert client.get("/cds-services", headers=bearer(mint(keys["ec"], claims(iss=REMOTE), kid="r-1"))).status_code == 200


def test_allowlisted_jku_supplies_a_key_the_static_set_lacks(issuers_file, keys):
    client = remote_client(issuers_file, FakeMonotonic())
    with responses.RequestsMock() as mock:
        mock.get(EHR_JKU, json={"keys": [public_jwk(keys["other"], "rotated")]})
        token = mint(keys["other"], claims(), kid="rotated", jku=EHR_JKU)
        assert client.get("/cds-services", headers=bearer(token)).status_code == 200
        assert len(mock.calls) == 1
        # without the jku header the key is not known
        assert client.get("/cds-services", headers=bearer(mint(keys["other"], claims(), kid="rotated"))).status_code == 401


# --- the replay cache --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, threads, jtis", [("memory", 8, 200), ("shared", 4, 50)])
def test_both_replay_caches_are_thread_safe(kind, threads, jtis, tmp_path):
    cache = ReplayCache() if kind == "memory" else SharedReplayCache(directory=str(tmp_path))
    wins = []
    barrier = threading.Barrier(threads)

    def race():
        barrier.wait()
        for n in range(jtis):
            if cache.first_use(("i", str(n)), expires_at=1e12, now=0):
                wins.append(n)

    racers = [threading.Thread(target=race) for _ in range(threads)]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    assert sorted(wins) == list(range(jtis))  # each jti accepted exactly once


@pytest.mark.parametrize("kind", ["memory", "shared"])
def test_both_replay_caches_forget_expired_entries_and_are_bounded(kind, tmp_path):
    # Bounded per issuer (issue 16): one issuer at its bound refuses its own new tokens, never another's.
    cache = ReplayCache(max_per_issuer=2) if kind == "memory" else SharedReplayCache(max_per_issuer=2, directory=str(tmp_path))
    assert cache.first_use(("i", "a"), expires_at=100, now=0)
    assert not cache.first_use(("i", "a"), expires_at=100, now=50)
    assert cache.first_use(("i", "b"), expires_at=100, now=50)
    with pytest.raises(_Rejected, match="full"):
        cache.first_use(("i", "c"), expires_at=100, now=60)
    assert cache.first_use(("j", "a"), expires_at=100, now=60)
    assert cache.first_use(("i", "c"), expires_at=300, now=100)
    assert len(cache) == 1
    assert cache.first_use(("i", "a"), expires_at=300, now=100)


def _replay_in_child(cache, queue):
    queue.put([cache.first_use(("i", "seen-by-parent"), 1e12, 0), cache.first_use(("i", "child"), 1e12, 0)])


def test_shared_replay_cache_catches_a_replay_sent_to_another_worker_process(tmp_path):
    """gunicorn forks its workers from the master that built the app: a jti used in one is a replay in another."""
    import multiprocessing

    cache = SharedReplayCache(directory=str(tmp_path))
    assert cache.first_use(("i", "seen-by-parent"), 1e12, 0)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_replay_in_child, args=(cache, queue))
    child.start()
    result = queue.get(timeout=20)
    child.join(timeout=20)
    assert result == [False, True]
    assert not cache.first_use(("i", "child"), 1e12, 0)  # and what the child saw is a replay here




def test_the_app_uses_the_shared_replay_cache(issuers_file):
    authenticator = Authenticator.from_settings(Settings(auth="required", issuers_file=issuers_file))
    assert isinstance(authenticator.replay, SharedReplayCache)


def test_concurrent_replays_through_the_app_accept_one(client, keys):
    token = mint(keys["ec"], claims())
    statuses = []
    barrier = threading.Barrier(6)

    def go():
        local = client.application.test_client()
        barrier.wait()
        statuses.append(local.get("/cds-services", headers=bearer(token)).status_code)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [401] * 5


# --- logs ----------------------------------------------------------------------------------------------------


def test_log_of_a_full_run_has_neither_token_nor_patient_data(issuers_file, keys, log):
    client = make(issuers_file, log, log_format="json").test_client()
    records: list[logging.LogRecord] = []
    keeper = logging.Handler()
    keeper.emit = records.append
    logging.getLogger("cds_service").addHandler(keeper)
    patient_id = "pat-7f3c91d2e5"
    family, given = "Quackenbush", "Philomena"
    body = minimal_request(patient_id)
    body["prefetch"]["patient"] = {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [{"family": family, "given": [given]}],
        "birthDate": "1961-04-02",
    }
    body["prefetch"]["conditions"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "cond-1",
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "clinicalStatus": {
                        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
                    },
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L94.2"}]},
                }
            }
        ],
    }
    tokens = [mint(keys["ec"], claims(SERVICE)) for _ in range(2)]
    response = call_service(client, tokens[0], body)
    assert response.status_code == 200, response.data
    cards = response.get_json()["cards"]
    assert cards, "the rules must actually run on this record"
    assert call_service(client, tokens[0], body).status_code == 401  # a replay: the rejection is logged too
    assert call_service(client, tokens[1][:-4] + "AAAA", body).status_code == 401  # a bad signature
    feedback = {"feedback": [{"card": cards[0]["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-03-14T15:10:00Z"}]}
    assert client.post(f"/cds-services/{PATIENT_VIEW}/feedback", json=feedback, headers=bearer(mint(keys["ec"], claims(FEEDBACK)))).status_code < 300

    out = log.getvalue()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert lines, "the run must have logged something"
    for secret in [*tokens, tokens[1].split(".")[2], tokens[0].split(".")[1], patient_id, family, given, "1961-04-02"]:
        assert secret not in out
    # every attribute of every record, whatever a formatter would make of it
    logging.getLogger("cds_service").removeHandler(keeper)
    assert len(records) == len(lines)
    everything = " ".join(repr(vars(record)) for record in records)
    for secret in [*tokens, patient_id, family, given]:
        assert secret not in everything
    requests_logged = [line for line in lines if line.get("event") == "request"]
    first = requests_logged[0]
    assert first["status"] == 200 and first["service"] == PATIENT_VIEW and first["issuer"] == EHR
    assert first["auth"] == "verified" and first["hookInstance"] == body["hookInstance"] and "ms" in first
    # The call's one line also says what it concluded, by rule id and count only.
    assert first["cards"] == len(cards)
    assert first["rules"] == list(dict.fromkeys(r for c in cards for r in c["extension"]["calcinosis-cds"]["rules"]))
    assert isinstance(first["folded"], list) and all(r.startswith("R") for r in first["rules"] + first["folded"])
    assert first["skipped"] == 0 and first["missing"] == []
    rejected = [line for line in lines if line.get("event") == "authentication rejected"]
    assert {line["reason"] for line in rejected} == {"jti replayed", "signature invalid"}


def test_authenticator_raises_unauthorized_with_no_details(issuers_file, keys):
    authenticator = Authenticator.from_settings(Settings(auth="required", issuers_file=issuers_file))
    settings = Settings(auth="required", issuers_file=issuers_file)
    app = make(issuers_file)
    with app.test_request_context("/cds-services", headers={"Authorization": "Bearer x.y.z"}):
        from flask import request

        with pytest.raises(Unauthorized) as raised:
            authenticator.authenticate(request, settings)
        assert raised.value.details == []
        assert "x.y.z" not in str(raised.value)
