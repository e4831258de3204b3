"""The framework floor: the same Flask application shape under the same gunicorn settings, doing only what any JSON
endpoint must do: read the body, parse it with the standard library, answer {"cards": []}.

Run by the benchmark as `gunicorn --config <the image's gunicorn.conf.py> 'bench.baseline:create_app()'`. Its ratio to
the real service is what the service's own work costs on top of the framework. The framework's floor parses with the
standard library (as Flask's request.get_json does); the service reads the body with msgspec and orjson
(cds_service/record/request_scan.py), so the benchmark also runs `create_app('orjson')` at c=1: the ratio to that one
is the service's work above the fastest parse of the whole body.

`create_app(check_token=True)` is the floor plus the service's own token check, exactly as the production path makes
it (cds_service.service.security: the trust file of CDS_ISSUERS, aud = CDS_PUBLIC_URL + path, ES384 signature,
claims, the host-wide replay store): what any service that verifies the token as this one must pays before it reads
a record. Its ratio to the floor bounds from below what the service's ratio can be (docs/performance.md).
"""

from __future__ import annotations

import json

import orjson
from flask import Flask, Response, request

EMPTY = json.dumps({"cards": []}, separators=(",", ":"))


def create_app(parser: str = "json", check_token: bool = False) -> Flask:
    parse = {"json": json.loads, "orjson": orjson.loads}[parser]
    app = Flask(__name__)
    verify = _token_check() if check_token else None

    @app.get("/healthz")
    def healthz():
        return Response('{"status":"ok"}', mimetype="application/json")

    @app.post("/cds-services/<service_id>")
    def service_call(service_id: str):
        if verify is not None and not verify():
            return Response("{}", status=401, mimetype="application/json")
        body = parse(request.get_data())
        if not isinstance(body, dict):
            return Response('{"error":"not a JSON object"}', status=400, mimetype="application/json")
        return Response(EMPTY, mimetype="application/json")

    return app


def _token_check():
    """The service's authenticator, from the service's settings (CDS_AUTH, CDS_ISSUERS, CDS_PUBLIC_URL...): True when
    the request's token is verified, False when the service would answer 401."""
    from cds_service.service.errors import Unauthorized
    from cds_service.service.security.authenticator import Authenticator
    from cds_service.service.settings import Settings

    settings = Settings.from_env()
    authenticator = Authenticator.from_settings(settings)

    def verify() -> bool:
        try:
            return bool(authenticator.authenticate(request, settings))
        except Unauthorized:
            return False

    return verify
