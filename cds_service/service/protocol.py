"""The CDS Hooks 2.0 request: validated into a HookRequest, or refused with a 400 that says what is wrong.

Strict where the specification is (required fields, their types, fhirServer/fhirAuthorization consistency);
lenient where real clients are sloppy (unknown fields and extensions are ignored, the resources inside draftOrders
are not validated here at all: see cds_service/orders.py).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import BadRequest
from .outbound import parse_http_url

# Hook context definitions (HL7 CDS Hooks Library STU1): required and optional fields, and who may be the user.
HOOK_CONTEXTS: dict[str, dict[str, Any]] = {
    "patient-view": {
        "required": ("userId", "patientId"),
        "user_types": ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson"),
    },
    "order-select": {
        "required": ("userId", "patientId", "selections", "draftOrders"),
        "user_types": ("Practitioner", "PractitionerRole"),
    },
    "order-sign": {
        "required": ("userId", "patientId", "draftOrders"),
        "user_types": ("Practitioner", "PractitionerRole"),
    },
}

_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_REFERENCE = re.compile(r"^([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


@dataclass(frozen=True)
class FhirAuthorization:
    access_token: str = field(repr=False)  # never printed, never logged
    token_type: str
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None


@dataclass(frozen=True)
class HookRequest:
    hook: str
    hook_instance: str
    context: dict[str, Any]
    prefetch: dict[str, Any]
    """Only the keys the client sent; a key present with value None means 'no data' and is never fetched."""
    fhir_server: str | None = None
    fhir_authorization: FhirAuthorization | None = field(default=None, repr=False)
    fhir_server_listed: bool = False
    """Set by the service from its configuration, never from the body: fhirServer is listed by URL for this caller,
    so it may be at a loopback or private address (service_call.py, outbound.AllowedServers)."""

    @property
    def patient_id(self) -> str:
        return self.context["patientId"]

    @property
    def user_id(self) -> str:
        return self.context["userId"]


def _require_object(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be a JSON object")
    return value


def _require_string(obj: dict, key: str, name: str | None = None) -> str:
    name = name or key
    value = obj.get(key)
    if value is None:
        raise BadRequest(f"{name} is required")
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} must be a non-empty string")
    return value


def parse_hook_request(body: Any, *, expected_hook: str, allow_http_fhir_server: bool) -> HookRequest:
    """Validate a service call's body for the service's hook; raise BadRequest with a precise message."""
    body = _require_object(body, "the request body")
    hook = _require_string(body, "hook")
    if hook not in HOOK_CONTEXTS:
        raise BadRequest(f"hook {hook!r} is not supported by this service (it expects {expected_hook!r})")
    if hook != expected_hook:
        raise BadRequest(f"hook {hook!r} does not match this service, which answers {expected_hook!r}")

    hook_instance = _require_string(body, "hookInstance")
    try:
        uuid.UUID(hook_instance)
    except ValueError:
        raise BadRequest("hookInstance must be a UUID") from None

    context = _require_object(body.get("context"), "context") if "context" in body else None
    if context is None:
        raise BadRequest("context is required")
    _validate_context(hook, context)

    fhir_server = body.get("fhirServer")
    if fhir_server is not None:
        fhir_server = _validate_fhir_server(fhir_server, allow_http_fhir_server)
    fhir_authorization = None
    if body.get("fhirAuthorization") is not None:
        if fhir_server is None:
            raise BadRequest("fhirServer is required when fhirAuthorization is present")
        fhir_authorization = _parse_fhir_authorization(body["fhirAuthorization"])

    prefetch_raw = body.get("prefetch")
    prefetch: dict[str, Any] = {}
    if prefetch_raw is not None:
        prefetch_raw = _require_object(prefetch_raw, "prefetch")
        for key, value in prefetch_raw.items():
            if value is not None and not (isinstance(value, dict) and isinstance(value.get("resourceType"), str)):
                raise BadRequest(f"prefetch.{key} must be a FHIR resource or null")
            if value is not None and value["resourceType"] == "Bundle":
                for member in ("entry", "link"):
                    if not isinstance(value.get(member, []), (list, type(None))):
                        raise BadRequest(f"prefetch.{key}.{member} must be an array")
            prefetch[key] = value

    return HookRequest(
        hook=hook,
        hook_instance=hook_instance,
        context=context,
        prefetch=prefetch,
        fhir_server=fhir_server,
        fhir_authorization=fhir_authorization,
    )


def _validate_context(hook: str, context: dict) -> None:
    definition = HOOK_CONTEXTS[hook]
    for key in definition["required"]:
        if key not in context or context[key] is None:
            raise BadRequest(f"context.{key} is required for {hook}")

    patient_id = _require_string(context, "patientId", "context.patientId")
    if not _FHIR_ID.match(patient_id):
        raise BadRequest("context.patientId must be a FHIR id (letters, digits, '-' and '.', at most 64)")

    user_id = _require_string(context, "userId", "context.userId")
    match = _REFERENCE.match(user_id)
    if not match or match.group(1) not in definition["user_types"]:
        allowed = ", ".join(definition["user_types"])
        raise BadRequest(f"context.userId must be a reference like Practitioner/123 to one of: {allowed}")

    if context.get("encounterId") is not None:
        encounter_id = _require_string(context, "encounterId", "context.encounterId")
        if not _FHIR_ID.match(encounter_id):
            raise BadRequest("context.encounterId must be a FHIR id")

    if "draftOrders" in definition["required"]:
        draft = context["draftOrders"]
        if not isinstance(draft, dict) or draft.get("resourceType") != "Bundle":
            raise BadRequest("context.draftOrders must be a FHIR Bundle")
        if not isinstance(draft.get("entry", []), (list, type(None))):
            raise BadRequest("context.draftOrders.entry must be an array")
    if "selections" in definition["required"]:
        selections = context["selections"]
        if not isinstance(selections, list) or not selections or not all(
            isinstance(s, str) and _REFERENCE.match(s) for s in selections
        ):
            raise BadRequest("context.selections must be a non-empty array of references like MedicationRequest/123")


def _validate_fhir_server(value: Any, allow_http: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("fhirServer must be a non-empty URL")
    if len(value) > 2048:
        raise BadRequest("fhirServer must be a URL of at most 2048 characters")
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise BadRequest("fhirServer must be an absolute http(s) URL") from None
    # urllib3's reading too (it decides where requests connects): both must see an http(s) URL with a host, and
    # no backslash, space or control character, on which parsers disagree.
    if parts.scheme not in ("http", "https") or not parts.netloc or parse_http_url(value) is None:
        raise BadRequest("fhirServer must be an absolute http(s) URL")
    if parts.scheme == "http" and not allow_http:
        raise BadRequest("fhirServer must use https (plain http is refused: CDS_FHIR_ALLOW_HTTP is false)")
    if parts.username or parts.password:
        raise BadRequest("fhirServer must not carry credentials in the URL")
    return value.rstrip("/")


def _parse_fhir_authorization(value: Any) -> FhirAuthorization:
    value = _require_object(value, "fhirAuthorization")
    token = _require_string(value, "access_token", "fhirAuthorization.access_token")
    token_type = _require_string(value, "token_type", "fhirAuthorization.token_type")
    if token_type.lower() != "bearer":
        raise BadRequest("fhirAuthorization.token_type must be Bearer")
    expires_in = value.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise BadRequest("fhirAuthorization.expires_in must be an integer")
    scope = _require_string(value, "scope", "fhirAuthorization.scope")
    subject = _require_string(value, "subject", "fhirAuthorization.subject")
    patient = value.get("patient")
    if patient is not None and not isinstance(patient, str):
        raise BadRequest("fhirAuthorization.patient must be a string")
    return FhirAuthorization(token, token_type, expires_in, scope, subject, patient)
