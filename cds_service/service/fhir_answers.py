"""How a FHIR server's answer is judged: its status, a transport failure, and what a search Bundle holds.

Every reason is a short phrase safe to show the caller and to log: never the URL, the token or the server's body.
"""

from __future__ import annotations

import logging

import requests

log = logging.getLogger("cds_service.fhir_client")

UNREACHABLE = "the FHIR server could not be reached, or did not answer in time"




class FetchError(Exception):
    """Why one key could not be (fully) read; the message is safe to show the caller and to log."""


class QueryRejected(FetchError):
    """The server refused the query itself (a 4xx other than 401/403/404/410/429): e.g. a parameter it does not know."""


def included_count(bundle: dict) -> int:
    """Entries a server added with _include (search.mode "include"): not counted by the Bundle's `total`."""
    count = 0
    for entry in bundle.get("entry") or []:
        search = entry.get("search") if isinstance(entry, dict) else None
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if (isinstance(search, dict) and search.get("mode") == "include" and isinstance(resource, dict)
                and isinstance(resource.get("resourceType"), str) and resource["resourceType"] != "OperationOutcome"):
            count += 1
    return count


def resource_kind(resource: dict) -> str:
    return str(resource.get("resourceType"))[:64]


def check_status(status: int, *, authenticated: bool, what: str) -> None:
    if 200 <= status < 300:
        return
    if status == 401:
        raise FetchError(
            "the FHIR server refused the access token (401)" if authenticated
            else "the FHIR server requires authorization (401) and the request carried no fhirAuthorization"
        )
    if status == 403:
        raise FetchError("the FHIR server forbade access (403)")
    if status in (404, 410):
        raise FetchError(f"the FHIR server has no such {'resource' if what == 'resource' else 'search'} ({status})")
    if status == 429:
        raise FetchError("the FHIR server is rate-limiting (429)")
    if 300 <= status < 400:
        raise FetchError(f"the FHIR server answered with a redirect ({status}), which is not followed")
    if status >= 500:
        raise FetchError(f"the FHIR server failed ({status})")
    raise QueryRejected(f"the FHIR server rejected the query ({status})")


def transport_reason(error: requests.RequestException) -> str:
    """One reason for every transport failure: refused, timed out, TLS or broken connections must read alike to the
    caller (they would map the network behind us); the kind goes to the log, without the URL."""
    if isinstance(error, requests.exceptions.SSLError):
        kind = "tls"
    elif isinstance(error, requests.exceptions.Timeout):
        kind = "timeout"
    elif isinstance(error, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        kind = "broken"
    elif isinstance(error, requests.exceptions.ConnectionError):
        kind = "connection"
    else:
        kind = "other"
    log.info("FHIR request failed", extra={"kind": kind, "error": type(error).__name__})
    return UNREACHABLE
