"""The framework floor: the same Flask application shape under the same gunicorn settings, doing only what any JSON
endpoint must do: read the body, parse it with the standard library, answer {"cards": []}.

Run by the benchmark as `gunicorn --config <the image's gunicorn.conf.py> 'bench.baseline:create_app()'`. Its ratio to
the real service is what the service's own work costs on top of the framework. The framework's floor parses with the
standard library (as Flask's request.get_json does); the service parses with orjson (cds_service/json_text.py), so the
benchmark also runs `create_app('orjson')` at c=1: the ratio to that one is the service's work above its own parse.
"""

from __future__ import annotations

import json

import orjson
from flask import Flask, Response, request

EMPTY = json.dumps({"cards": []}, separators=(",", ":"))


def create_app(parser: str = "json") -> Flask:
    parse = {"json": json.loads, "orjson": orjson.loads}[parser]
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz():
        return Response('{"status":"ok"}', mimetype="application/json")

    @app.post("/cds-services/<service_id>")
    def service_call(service_id: str):
        body = parse(request.get_data())
        if not isinstance(body, dict):
            return Response('{"error":"not a JSON object"}', status=400, mimetype="application/json")
        return Response(EMPTY, mimetype="application/json")

    return app
