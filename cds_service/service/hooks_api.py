"""The CDS Hooks endpoints, as a Flask blueprint:

GET  /cds-services                    discovery
POST /cds-services/<id>               a service call
POST /cds-services/<id>/feedback      feedback on cards

Each checks the caller first (an unauthenticated caller learns nothing, not even which ids exist), then reads the body.
What they share (settings, clock, fetcher, authenticator, the operated state) is the app's ServiceState.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from cds_service.record.json_text import dump_json, parse_json

from .clock import Clock
from .discovery import services
from . import metrics
from .errors import BadRequest, PayloadTooLarge, ServiceError, Unauthorized, UnsupportedMediaType
from .feedback import log_feedback, validate_feedback
from .operations import Operations
from .prefetch import Fetcher
from .security import Authenticator
from .service_call import INVALID_JSON, find_service
from .settings import Settings

EXTENSION = "calcinosis-cds"
hooks = Blueprint("cds_hooks", __name__)


@dataclass
class ServiceState:
    """What the endpoints share for the app's lifetime (in app.extensions)."""

    settings: Settings
    clock: Clock
    fetcher: Fetcher
    authenticator: Authenticator
    operations: Operations


def state() -> ServiceState:
    return current_app.extensions[EXTENSION]


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(dump_json(payload), status=status, mimetype="application/json")


def read_json_body() -> Any:
    """The request's JSON body, or a 4xx: 415 for another content type, 413 when too large, 400 when malformed."""
    raw = read_body_bytes()
    try:
        # The parser bounds nesting itself (RecursionError). Deeper checks are made where recursion happens: on each
        # resource before it is validated (record/validation.py), not on the whole body, which costs as much as
        # parsing it.
        return parse_json(raw)
    except (ValueError, RecursionError):
        raise BadRequest(INVALID_JSON) from None


def read_body_bytes() -> bytes:
    """The request's body as sent, or a 4xx: 415 for another content type than JSON, 413 when too large."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    limit = state().settings.max_body_bytes
    too_large = PayloadTooLarge(f"the request body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = request.stream.read(limit + 1)
        # A chunked body has no length: werkzeug's stream ends at MAX_CONTENT_LENGTH, and only a further read says
        # whether the client sent more (413, however the body is framed).
        # With a Content-Length (at most the limit, checked above) the server ends the body there; reading on would
        # only hit werkzeug's MAX_CONTENT_LENGTH guard under gunicorn (wsgi.input_terminated) and refuse a body of
        # exactly the limit.
        if len(raw) > limit or (len(raw) == limit and request.content_length is None and request.stream.read(1)):
            raise too_large
    except RequestEntityTooLarge:
        raise too_large from None
    except (ServiceError, HTTPException):
        raise
    except Exception:  # noqa: BLE001 - gunicorn's framing errors (bad chunk sizes...) and broken connections
        raise BadRequest("the request body could not be read: malformed chunked framing, or the connection broke") from None
    return raw


def authenticate() -> dict | None:
    current = state()
    try:
        claims = current.authenticator.authenticate(request, current.settings)
    except Unauthorized as error:
        g.auth = "rejected"
        metrics.count_auth_failure(error.reason)
        raise
    g.auth = "verified" if claims else ("off" if current.settings.auth == "off" else "anonymous")
    g.issuer = (claims or {}).get("iss")
    g.tenant = (claims or {}).get("tenant") if isinstance((claims or {}).get("tenant"), str) else None
    return claims


def fhir_servers(claims: dict | None) -> tuple[str, ...] | None:
    """What a verified caller may fetch from: its issuer's fhir_servers; None (CDS_FHIR_SERVERS) without a token."""
    if not claims:
        return None
    issuer = getattr(state().authenticator, "issuers", {}).get(claims.get("iss"))
    return tuple(getattr(issuer, "fhir_servers", ()))


def rule_page_base(settings: Settings) -> str:
    """Where the rule pages the cards link to are: CDS_PUBLIC_URL behind a proxy, else this request's base URL."""
    return (settings.public_url or request.url_root).rstrip("/")


@hooks.get("/cds-services")
def discovery():
    authenticate()
    return json_response({"services": [service.discovery() for service in services().values()]})


@hooks.post("/cds-services/<service_id>")
def service_call(service_id: str):
    claims = authenticate()  # before anything: an unauthenticated caller learns nothing, not even which ids exist
    service = find_service(service_id)
    body = read_body_bytes()  # parsed by the call (service_call.handle), which leaves out what no rule can read
    current = state()
    result = current.operations.call(service, body, fetcher=current.fetcher, issuer=g.issuer, tenant=g.tenant,
                                     fhir_servers=fhir_servers(claims), rule_page_base=rule_page_base(current.settings))
    g.hook_instance = result.request.hook_instance
    g.call_summary = result.summary
    return json_response(result.response)


@hooks.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str):
    authenticate()
    find_service(service_id)
    entries = validate_feedback(read_json_body())
    stored = state().operations.feedback(service_id, entries, issuer=g.issuer, tenant=g.tenant,
                                         client_key=request.headers.get("Idempotency-Key"))
    log_feedback(service_id, stored)
    return json_response({})
