"""Random and malformed bodies and headers at every endpoint, in every CDS_AUTH mode: never a 5xx, never a stack trace.

Bounded for speed (about 200 examples in all, no deadline). Nothing leaves the process: absent prefetch keys go to a
fetcher that fetches nothing, and `responses` refuses any HTTP request that slips through.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from functools import lru_cache

import jwt
import responses
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings, strategies as st
from jwt.algorithms import ECAlgorithm

from cds_service import create_app
from cds_service.service.clock import fixed_clock
from cds_service.service.prefetch import KeyResult
from cds_service.service.discovery import services
from cds_service.service.settings import Settings

from .conftest import NOW, isolated_state, minimal_request

ISSUER = "https://ehr.example.org"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


class NoFetch:
    """A fetcher that never touches the network: every absent key is reported as not obtainable."""

    def fetch(self, request, queries, continuations):
        return {key: KeyResult(error="not fetched in tests") for key in {**queries, **continuations}}

    def fetch_medications(self, request, references):
        return KeyResult(error="not fetched in tests")


@lru_cache(maxsize=1)
def signing_key():
    return ec.generate_private_key(ec.SECP384R1())


@lru_cache(maxsize=None)
def app_for(mode: str):
    import tempfile

    issuers = None
    if mode != "off":
        jwk = {**json.loads(ECAlgorithm.to_jwk(signing_key().public_key())), "kid": "k1"}
        handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump({"issuers": {ISSUER: {"jwks": {"keys": [jwk]}, "tenants": ["t1"]}}}, handle)
        handle.close()
        issuers = handle.name
    settings_ = Settings(auth=mode, issuers_file=issuers, fhir_allow_http=True, log_level="CRITICAL", max_body_bytes=64 * 1024,
                         **isolated_state())
    app = create_app(settings_, clock=fixed_clock(NOW), fetcher=NoFetch())
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


SERVICE_IDS = list(services())
PATHS = (
    ["/cds-services"]
    + [f"/cds-services/{s}" for s in SERVICE_IDS]
    + [f"/cds-services/{s}/feedback" for s in SERVICE_IDS]
)

header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=120)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@st.composite
def authorizations(draw):
    kind = draw(st.sampled_from(["none", "text", "bearer-text", "segments", "json-segments", "signed"]))
    if kind == "none":
        return None
    if kind == "text":
        return draw(header_text)
    if kind == "bearer-text":
        return "Bearer " + draw(header_text)
    if kind == "segments":
        parts = draw(st.lists(st.binary(max_size=40), min_size=1, max_size=5))
        return "Bearer " + ".".join(b64(p) for p in parts)
    if kind == "json-segments":
        header, payload = draw(json_values), draw(json_values)
        return "Bearer " + ".".join(
            [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(draw(st.binary(max_size=96)))]
        )
    # signed by the trusted key: a sound header and claims, each value kept or replaced by random JSON of any type
    now = int(time.time())
    sound_claims = {
        "iss": ISSUER,
        "aud": draw(st.sampled_from(["http://localhost" + p for p in PATHS])),
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": str(uuid.uuid4()),
        "tenant": "t1",
    }
    sound_header = {"alg": "ES384", "typ": "JWT", "kid": "k1", "jku": "https://evil.example/jwks"}
    return "Bearer " + sign(draw(mutated(sound_header)), draw(mutated(sound_claims)))


@st.composite
def mutated(draw, sound: dict):
    """sound with each entry kept, dropped or replaced by random JSON (any type)."""
    result = {}
    for key, value in sound.items():
        choice = draw(st.sampled_from(["keep", "keep", "keep", "drop", "replace"]))
        if choice == "keep":
            result[key] = value
        elif choice == "replace":
            result[key] = draw(json_values)
    return result


def sign(header: dict, payload) -> str:
    """A JWS over any JSON (PyJWT's encoder refuses odd claim types, which is exactly what is wanted here)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    algorithm = jwt.algorithms.get_default_algorithms()["ES384"]
    return f"{signing_input}.{b64(algorithm.sign(signing_input.encode(), signing_key()))}"


@st.composite
def bodies(draw):
    kind = draw(st.sampled_from(["bytes", "json", "mutated-request", "deep", "feedback"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "deep":
        depth = draw(st.integers(min_value=50, max_value=5000))
        return (draw(st.sampled_from(["[", '{"a":'])) * depth).encode()
    if kind == "feedback":
        entry = draw(st.dictionaries(st.sampled_from(["card", "outcome", "outcomeTimestamp", "acceptedSuggestions", "overrideReason"]), json_values))
        return json.dumps({"feedback": draw(st.sampled_from([[entry], entry, None]))}).encode()
    body = minimal_request()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        target = draw(st.sampled_from(["top", "context", "prefetch"]))
        key = draw(st.sampled_from(["hook", "hookInstance", "context", "prefetch", "fhirServer", "fhirAuthorization",
                                    "patientId", "userId", "patient", "conditions", "observations", "draftOrders",
                                    "selections", "medicationRequests", "extension"]))
        value = draw(json_values)
        container = body if target == "top" else body.get(target)
        if isinstance(container, dict):
            if draw(st.booleans()):
                container[key] = value
            else:
                container.pop(key, None)
    return json.dumps(body).encode()


def assert_no_server_error(response):
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:500])
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text


@responses.activate
@FUZZ
@given(
    mode=st.sampled_from(["off", "optional", "required"]),
    method=st.sampled_from(["GET", "POST", "POST", "POST", "OPTIONS", "PUT", "HEAD"]),
    path=st.sampled_from(PATHS) | st.text(max_size=30).map(lambda s: "/cds-services/" + s.replace("?", "").replace("#", "")),
    authorization=authorizations(),
    content_type=st.sampled_from(["application/json", "application/fhir+json", "text/plain", "", "application/json; charset=latin-1"]) | header_text,
    body=bodies(),
    extra=st.dictionaries(st.sampled_from(["Origin", "Accept", "Content-Length", "Transfer-Encoding", "Host", "X-Forwarded-Host"]), header_text, max_size=2),
)
def test_random_requests_never_get_a_5xx(mode, method, path, authorization, content_type, body, extra):
    headers = dict(extra)
    if authorization is not None:
        headers["Authorization"] = authorization
    if content_type:
        headers["Content-Type"] = content_type
    headers.pop("Content-Length", None)  # the test client computes it; a lying one is a server's concern, not Flask's
    headers.pop("Transfer-Encoding", None)
    client = app_for(mode).test_client()
    try:
        response = client.open(path, method=method, data=body, headers=headers)
    except ValueError:  # werkzeug refuses to build some requests (e.g. a path it cannot encode); nothing reached us
        return
    assert_no_server_error(response)


@responses.activate
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(body=bodies(), service_id=st.sampled_from(SERVICE_IDS))
def test_random_service_and_feedback_bodies_with_auth_off(body, service_id):
    """Auth off lets every body reach the protocol checks and the rules: the deepest paths a body can take."""
    client = app_for("off").test_client()
    for path in (f"/cds-services/{service_id}", f"/cds-services/{service_id}/feedback"):
        assert_no_server_error(client.post(path, data=body, content_type="application/json"))


@responses.activate
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(authorization=authorizations(), path=st.sampled_from(PATHS))
def test_random_tokens_are_401_or_accepted_never_5xx(authorization, path):
    client = app_for("required").test_client()
    headers = {"Authorization": authorization} if authorization else {}
    if path == "/cds-services":
        response = client.get(path, headers=headers)
    else:
        response = client.post(path, json=minimal_request(), headers=headers)
    assert_no_server_error(response)
    if response.status_code == 401:
        assert response.get_data() == b""
        assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_a_deep_and_a_huge_body_are_4xx():
    client = app_for("off").test_client()
    service = f"/cds-services/{SERVICE_IDS[0]}"
    assert client.post(service, data="[" * 60_000, content_type="application/json").status_code == 400
    assert client.post(service, data=json.dumps({"a": "x" * 70_000}), content_type="application/json").status_code == 413
    assert client.post(service, data=b"{}", content_type="text/plain").status_code == 415
    assert client.post(service, data="9" * 5000, content_type="application/json").status_code == 400
    hook_instance = str(uuid.uuid4())
    assert client.post(service, json=minimal_request(hookInstance=hook_instance)).status_code == 200


def _resources_of(body: dict) -> list[dict]:
    """Every resource of a request's prefetch Bundles and draftOrders, to mutate in place."""
    found = []
    for value in list((body.get("prefetch") or {}).values()) + [body.get("context", {}).get("draftOrders")]:
        if isinstance(value, dict):
            entries = value.get("entry") if value.get("resourceType") == "Bundle" else [{"resource": value}]
            found += [e["resource"] for e in entries or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    return found


def _containers(value, path=()):
    """(path, dict or list) of every container inside a resource, the resource itself first."""
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(item, (dict, list)):
            yield from _containers(item, path + (key,))


FUZZED_SCENARIOS = ("foundation-calcinosis-ckd-hyperphosphatemia", "r05-order-sign-al-antacid-dialysis",
                    "r05-order-select-mg-antacid-ckd3-sandbox", "r13-positive-limited-ssc", "r08c-order-sign-warfarin-calciphylaxis",
                    "r22-order-select-iv-calcium-gluconate")
ELEMENT_NAMES = ["id", "resourceType", "subject", "patient", "code", "coding", "system", "display", "text", "status",
                 "clinicalStatus", "verificationStatus", "valueQuantity", "value", "unit", "effectiveDateTime",
                 "effectivePeriod", "issued", "referenceRange", "high", "interpretation", "onsetDateTime",
                 "abatementDateTime", "bodySite", "medicationCodeableConcept", "medicationReference", "contained",
                 "dosageInstruction", "doseAndRate", "doseQuantity", "timing", "route", "reasonReference", "reference",
                 "birthDate", "gender", "period", "start", "type", "serviceType", "authoredOn", "doNotPerform",
                 "reaction", "substance", "ingredient", "itemCodeableConcept", "modifierExtension", "extension"]


@st.composite
def mutated_scenario_requests(draw):
    """A fixture scenario's request (patient-view and order hooks) with elements inside its resources replaced by
    random JSON or removed, at any depth: what a careless or hostile EHR could send."""
    from .conftest import load_scenario, scenario_names, scenario_request

    names = [n for n in FUZZED_SCENARIOS if n in scenario_names()] or scenario_names()[:3]
    service_id, body = scenario_request(load_scenario(draw(st.sampled_from(names))))
    resources = _resources_of(body)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        if not resources:
            break
        resource = draw(st.sampled_from(resources))
        path, container = draw(st.sampled_from(list(_containers(resource))))
        if isinstance(container, list):
            if container:
                container[draw(st.integers(min_value=0, max_value=len(container) - 1))] = draw(json_values)
            continue
        key = draw(st.sampled_from(sorted(set(container) | set(ELEMENT_NAMES[:12])) if path else ELEMENT_NAMES))
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            container.pop(key, None)
        else:
            container[key] = draw(json_values)
    return service_id, body


@responses.activate
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(request=mutated_scenario_requests())
def test_random_elements_inside_resources_never_get_a_5xx(request):
    """Any element of any resource (ids, codes, dates, references, doses...) of any type: skipped and reported, or
    read leniently, never a 500."""
    service_id, body = request
    response = app_for("off").test_client().post(f"/cds-services/{service_id}", json=body)
    assert_no_server_error(response)
    assert response.status_code in (200, 400, 412), response.get_data(as_text=True)[:300]
