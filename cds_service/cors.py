"""CORS for browser-based CDS clients such as the CDS Hooks sandbox (CDS Hooks 2.0 §Security; sandbox notes §3.5).

Every route and every status code carries the headers; preflight OPTIONS requests are answered by flask-cors before
any authentication (they carry no Authorization header). Credentials are never allowed, so `*` is safe.
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

from .settings import Settings

ALLOWED_HEADERS = ["Authorization", "Content-Type"]
ALLOWED_METHODS = ["GET", "POST", "OPTIONS"]


def install_cors(app: Flask, settings: Settings) -> None:
    origins = "*" if "*" in settings.cors_origins else list(settings.cors_origins)
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
