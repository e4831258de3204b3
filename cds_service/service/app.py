"""The Flask application factory: the CDS Hooks blueprint (hooks_api.py), health probes, JSON errors, one log line
per call.

GET  /healthz, /readyz                liveness, readiness (database, migrations, trust file)
GET  /metrics                         Prometheus metrics (metrics.py)
GET  /analytics, /analytics/rules     rule analytics for the admin token's holder (analytics.py)

Every error is JSON (an OperationOutcome-shaped body with a plain `error` message), never an HTML page or a stack
trace; 401 carries no details at all.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

import cards

from .clock import Clock, system_clock
from . import analytics, metrics
from .cors import install_cors
from .discovery import services
from .errors import PayloadTooLarge, PreconditionFailed, ServiceError, Unauthorized
from .fhir_client import FhirClient
from .hooks_api import EXTENSION, ServiceState, hooks, json_response
from .logging_setup import configure_logging
from .operations import Operations
from .prefetch import Fetcher
from .rule_pages import rule_pages
from .security import Authenticator
from .settings import Settings
from .warm_up import warm_up

log = logging.getLogger("cds_service.http")


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
    operations = Operations.start(settings, clock)  # the database, migrated; the per-site settings
    if authenticator is None:  # on PostgreSQL its replay store is the database every replica shares
        try:
            authenticator = Authenticator.from_settings(settings, operations.store)
        except BaseException:  # a bad trust file: the app is not made, so nothing else would close the database
            operations.store.close()
            raise
    if fetcher is None:  # absent prefetch keys are fetched from the request's fhirServer (docs/fetching.md)
        fetcher = FhirClient.from_settings(settings)
    app.extensions[EXTENSION] = ServiceState(settings, clock, metrics.MeteredFetcher(fetcher), authenticator, operations)
    install_cors(app, settings)
    app.register_blueprint(hooks)
    app.register_blueprint(metrics.blueprint)
    app.register_blueprint(analytics.blueprint)
    app.register_blueprint(rule_pages)  # GET /rules, /rules/{id}: HTML for people, no token

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        g.request_id = str(uuid.uuid4())

    @app.get("/healthz")
    def healthz():
        return json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz():
        trust = settings.issuers_file is None or bool(getattr(authenticator, "issuers", None))
        ready, checks = operations.readiness(trust_loaded=trust)
        body = {"status": "ready" if ready else "not ready", "rules": len(cards.knowledge().rules),
                "services": len(services()), **checks}
        return json_response(body, 200 if ready else 503)

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError):
        if isinstance(error, Unauthorized):
            return Response(status=401)  # no details: the reason is in the log only
        return json_response(operation_outcome(error), error.status)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if error.code == 413:
            return json_response(operation_outcome(PayloadTooLarge("the request body is too large")), 413)
        wrapped = ServiceError(error.description or error.name)
        wrapped.code = "not-found" if error.code == 404 else "invalid"
        return json_response(operation_outcome(wrapped), error.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unexpected error", extra={"requestId": g.get("request_id"), "path": request.path})
        return json_response(operation_outcome(ServiceError("internal error; see the service log")), 500)

    @app.after_request
    def _log(response: Response) -> Response:
        if request.path.startswith("/cds-services"):
            metrics.observe_request(request, response, time.perf_counter() - g.get("started", time.perf_counter()))
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
