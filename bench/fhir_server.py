"""A tiny FHIR server on loopback for the fetch path: every request is answered after an injected delay.

It serves one patient's resources: `Patient/<id>` reads, and `<Type>?patient=...` searches as searchset Bundles, with
the search parameters the service's templates use applied as a FHIR server applies them (the service sends no query
that asks for everything: its templates name the LOINC codes, dialysis and referral codes, and statuses it reads):
`code` and `status` as token searches (a comma is OR; `system|code`, `code` or `|code`), `_sort=-date` (newest first)
and `_count` (a page, with a `next` link to the rest; capped per resource type by `page_caps` when given, as many
servers cap a page whatever the client asks). Other parameters are ignored. `Medication?_id=`
searches return the Medications asked for; `_include=MedicationRequest:medication` (and MedicationStatement) adds the
Medications the matches reference, as search.mode "include" entries. A threaded HTTP/1.1 server with keep-alive, so
that the service's parallel fetches are answered in parallel, like a real FHIR server; each answer leaves in one
write with TCP_NODELAY, as production HTTP servers send it (headers and body in two writes under Nagle's algorithm
would wait ~40 ms for the client's delayed ACK whenever a connection is reused at once: a next page, a second round).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit


def _token_matches(concept, tokens: list[str]) -> bool:
    """A FHIR token search on a CodeableConcept: any coding matches any of the tokens (`system|code`, `|code` for a
    coding without a system, or `code` in any system)."""
    codings = concept.get("coding", []) if isinstance(concept, dict) else []
    for token in tokens:
        system, bar, code = token.rpartition("|")
        for coding in codings:
            if coding.get("code") == code and (not bar or coding.get("system", "") == system):
                return True
    return False


def _date(resource: dict) -> str:
    """What `_sort=date` sorts on: an Observation's effective time, an Encounter's or Procedure's period start."""
    for value in (resource.get("effectiveDateTime"), (resource.get("effectivePeriod") or {}).get("start"),
                  resource.get("issued"), (resource.get("period") or {}).get("start"), resource.get("authoredOn"),
                  resource.get("performedDateTime"), (resource.get("performedPeriod") or {}).get("start")):
        if isinstance(value, str):
            return value
    return ""


def search(resources: list[dict], params: dict[str, list[str]]) -> list[dict]:
    """The resources that match the search parameters the service's templates use (see the module's docstring)."""
    found = resources
    ids = params.get("_id")
    if ids:
        wanted = set(",".join(ids).split(","))
        found = [r for r in found if r.get("id") in wanted]
    for value in params.get("code", []):
        tokens = value.split(",")
        found = [r for r in found if _token_matches(r.get("code"), tokens)]
    for value in params.get("status", []):
        statuses = set(value.split(","))
        found = [r for r in found if r.get("status") in statuses]
    if params.get("_sort") == ["-date"]:
        found = sorted(found, key=_date, reverse=True)
    return found


class FhirServer:
    def __init__(self, resources: list[dict], delay_seconds: float, host: str = "127.0.0.1", port: int = 0,
                 page_caps: dict[str, int] | None = None):
        self.delay = delay_seconds
        self.page_caps = dict(page_caps or {})
        self.by_type: dict[str, list[dict]] = {}
        for resource in resources:
            self.by_type.setdefault(resource["resourceType"], []).append(resource)
        self.requests = 0
        self._lock = threading.Lock()
        self._cache: dict[str, bytes] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                with server._lock:
                    server.requests += 1
                time.sleep(server.delay)
                status, body = server.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self._headers_buffer.append(b"\r\n")  # end_headers() without its flush: one write below
                self._headers_buffer.append(body)
                self.wfile.write(b"".join(self._headers_buffer))
                self._headers_buffer = []

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="bench-fhir", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/fhir"

    def answer(self, path: str) -> tuple[int, bytes]:
        cached = self._cache.get(path)
        if cached is not None:
            return 200, cached
        parts = urlsplit(path)
        segments = [s for s in parts.path.split("/") if s]
        if segments and segments[0] == "fhir":
            segments = segments[1:]
        if len(segments) == 2:  # a read
            match = [r for r in self.by_type.get(segments[0], []) if r.get("id") == segments[1]]
            if not match:
                return 404, json.dumps({"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "not-found"}]}).encode()
            body = json.dumps(match[0]).encode()
        elif len(segments) == 1:  # a search
            params = parse_qs(parts.query)
            found = search(self.by_type.get(segments[0], []), params)
            offset = int(params.get("_offset", ["0"])[0])
            count = int(params["_count"][0]) if "_count" in params else len(found)
            count = min(count, self.page_caps.get(segments[0], count))
            page = found[offset:offset + count]
            entries = [{"resource": r, "search": {"mode": "match"}} for r in page]
            if f"{segments[0]}:medication" in params.get("_include", []):
                referenced = {r.get("medicationReference", {}).get("reference", "").rpartition("/")[2] for r in page}
                entries += [{"resource": m, "search": {"mode": "include"}}
                            for m in self.by_type.get("Medication", []) if m.get("id") in referenced - {""}]
            bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(found), "entry": entries}
            if offset + count < len(found):
                rest = {**params, "_offset": [str(offset + count)]}
                bundle["link"] = [{"relation": "next", "url": f"{self.url}/{segments[0]}?{urlencode(rest, doseq=True)}"}]
            body = json.dumps(bundle).encode()
        else:
            return 400, b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid"}]}'
        self._cache[path] = body
        return 200, body

    def __enter__(self) -> "FhirServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
