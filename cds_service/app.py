"""The Flask application: routes, JSON errors, and the order in which every call is checked.

GET  /cds-services                    discovery
POST /cds-services/<id>               a service call
POST /cds-services/<id>/feedback      feedback on cards
GET  /healthz, /readyz                liveness, readiness

Every error is JSON (an OperationOutcome-shaped body with a plain `error` message), never an HTML page or a stack
trace; 401 carries no details at all.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .clock import Clock, system_clock
from .errors import BadRequest, PayloadTooLarge, PreconditionFailed, ServiceError, Unauthorized, UnsupportedMediaType
from .feedback import IssuedCards, record_feedback, validate_feedback
from .json_text import dump_json, parse_json
from .logging_setup import configure_logging
from .prefetch import Fetcher
from .resources import warm_up
from .service_call import find_service, handle
from .services import services
from .settings import Settings

log = logging.getLogger("cds_service.http")


def _json_response(payload: Any, status: int = 200) -> Response:
    return Response(dump_json(payload), status=status, mimetype="application/json")


def operation_outcome(error: ServiceError) -> dict[str, Any]:
    issues = [{"severity": "error", "code": error.code, "diagnostics": error.message}]
    issues += [{"severity": "error", "code": error.code, "diagnostics": d} for d in error.details]
    body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": issues, "error": error.message}
    if isinstance(error, PreconditionFailed) and error.missing:
        body["missing"] = error.missing
    return body


def _known_service(service_id: Any) -> str | None:
    """A service id fit for the log: one of ours (a path segment of any other request is caller text)."""
    return service_id if isinstance(service_id, str) and service_id in services() else None


def read_json_body() -> Any:
    """The request's JSON body, or a 4xx: 415 for another content type, 413 when too large, 400 when malformed."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    limit = g.settings.max_body_bytes
    too_large = PayloadTooLarge(f"the request body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = request.stream.read(limit + 1)
        # A chunked body has no length: werkzeug's stream ends at MAX_CONTENT_LENGTH, and only a further read says
        # whether the client sent more (413, however the body is framed).
        if len(raw) > limit or (len(raw) == limit and request.stream.read(1)):
            raise too_large
    except RequestEntityTooLarge:
        raise too_large from None
    except (ServiceError, HTTPException):
        raise
    except Exception:  # noqa: BLE001 - gunicorn's framing errors (bad chunk sizes...) and broken connections
        raise BadRequest("the request body could not be read: malformed chunked framing, or the connection broke") from None
    try:
        # The parser bounds nesting itself (RecursionError). Deeper checks are made where recursion happens: on each
        # resource before it is validated (resources.py), not on the whole body, which costs as much as parsing it.
        return parse_json(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the request body is not valid JSON, or is nested too deeply to read") from None


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = system_clock,
    fetcher: Fetcher | None = None,
    authenticator=None,
) -> Flask:
    """The application, for gunicorn (`cds_service:create_app()`) and for tests (explicit settings and clock)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    warm_up()  # model classes, code tables and rules now, not on the first clinician's call
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    issued = IssuedCards()

    if authenticator is None:
        from .security import Authenticator

        authenticator = Authenticator.from_settings(settings)
    if fetcher is None:  # absent prefetch keys are fetched from the request's fhirServer (docs/fetching.md)
        from .fhir_client import FhirClient

        fetcher = FhirClient.from_settings(settings)

    from .cors import install_cors

    install_cors(app, settings)

    @app.before_request
    def _start() -> None:
        g.settings = settings
        g.started = time.perf_counter()
        g.request_id = str(uuid.uuid4())

    def _authenticate() -> dict | None:
        try:
            claims = authenticator.authenticate(request, settings)
        except Unauthorized:
            g.auth = "rejected"
            raise
        g.auth = "verified" if claims else ("off" if settings.auth == "off" else "anonymous")
        g.issuer = (claims or {}).get("iss")
        return claims

    def _fhir_servers(claims: dict | None) -> tuple[str, ...] | None:
        """What a verified caller may fetch from: its issuer's fhir_servers; None (CDS_FHIR_SERVERS) without a token."""
        if not claims:
            return None
        issuer = getattr(authenticator, "issuers", {}).get(claims.get("iss"))
        return tuple(getattr(issuer, "fhir_servers", ()))

    @app.get("/healthz")
    def healthz():
        return _json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz():
        from .rules import registry

        rules = registry()
        return _json_response({"status": "ready", "rules": len(rules), "services": len(services())})

    @app.get("/cds-services")
    def discovery():
        _authenticate()
        return _json_response({"services": [service.discovery() for service in services().values()]})

    @app.post("/cds-services/<service_id>")
    def service_call(service_id: str):
        claims = _authenticate()  # before anything: an unauthenticated caller learns nothing, not even which ids exist
        service = find_service(service_id)
        body = read_json_body()
        result = handle(service, body, settings=settings, clock=clock, fetcher=fetcher,
                        fhir_servers=_fhir_servers(claims))
        issued.remember(result.response["cards"])
        g.hook_instance = result.request.hook_instance
        g.call_summary = result.summary
        return _json_response(result.response)

    @app.post("/cds-services/<service_id>/feedback")
    def feedback(service_id: str):
        _authenticate()
        find_service(service_id)
        entries = validate_feedback(read_json_body())
        record_feedback(service_id, entries, issued)
        return _json_response({})

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError):
        if isinstance(error, Unauthorized):
            return Response(status=401)  # no details: the reason is in the log only
        return _json_response(operation_outcome(error), error.status)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if error.code == 413:
            return _json_response(operation_outcome(PayloadTooLarge("the request body is too large")), 413)
        wrapped = ServiceError(error.description or error.name)
        wrapped.code = "not-found" if error.code == 404 else "invalid"
        return _json_response(operation_outcome(wrapped), error.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unexpected error", extra={"requestId": g.get("request_id"), "path": request.path})
        return _json_response(operation_outcome(ServiceError("internal error; see the service log")), 500)

    @app.after_request
    def _log(response: Response) -> Response:
        if request.path.startswith("/cds-services"):
            log.info(
                "request",
                extra={
                    "requestId": g.get("request_id"),
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "service": _known_service((request.view_args or {}).get("service_id")),
                    "hookInstance": g.get("hook_instance"),
                    "issuer": g.get("issuer"),
                    "auth": g.get("auth"),
                    "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 1),
                    **g.get("call_summary", {}),
                },
            )
        return response

    return app
