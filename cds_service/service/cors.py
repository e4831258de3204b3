"""CORS for browser-based CDS clients such as the CDS Hooks sandbox (CDS Hooks 2.0 §Security).

Every route and every status code carries the headers; preflight OPTIONS requests are answered by flask-cors before
any authentication (they carry no Authorization header). Credentials are never allowed, so `*` is safe.

flask-cors sends Allow-Methods and Allow-Headers on preflights only (and echoes just the requested headers); the
sandbox notes ask for `GET, POST, OPTIONS` and `Authorization, Content-Type` on preflights and on real responses
(including 4xx and 5xx), so an after-request hook sets them wherever flask-cors allowed the origin.
"""

from __future__ import annotations

from flask import Flask, Response
from flask_cors import CORS

from .settings import Settings

ALLOWED_HEADERS = ["Authorization", "Content-Type"]
ALLOWED_METHODS = ["GET", "POST", "OPTIONS"]


def install_cors(app: Flask, settings: Settings) -> None:
    origins = "*" if "*" in settings.cors_origins else list(settings.cors_origins)

    @app.after_request
    def _cors_on_every_response(response: Response) -> Response:
        # Registered before flask-cors, so it runs after it (Flask runs after-request hooks in reverse order): where
        # flask-cors allowed the origin, the same full lists go on preflights and real responses alike.
        if response.headers.get("Access-Control-Allow-Origin") is not None:
            response.headers["Access-Control-Allow-Methods"] = ", ".join(ALLOWED_METHODS)
            response.headers["Access-Control-Allow-Headers"] = ", ".join(ALLOWED_HEADERS)
        return response

    CORS(
        app,
        origins=origins,
        methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        supports_credentials=False,
        max_age=600,
        always_send=True,
        send_wildcard=origins == "*",
    )
