"""Keyed hashes that stand for a patient and a FHIR server in the database (A22: no patient identifier in clear).

A plain hash of a patient id would not do: ids are short and guessable, so anyone with the database could hash
candidates and compare. HMAC-SHA256 with a secret that lives outside the database cannot be reversed that way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlsplit, urlunsplit

MIN_SECRET_BYTES = 16


def normalise_server(fhir_server: str) -> str:
    """The same server however the EHR spells its base URL: scheme and host are case-insensitive, a trailing slash
    means nothing. The path keeps its case (FHIR servers may tell tenants apart by it)."""
    parts = urlsplit(fhir_server.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, ""))


class PatientKey:
    """HMAC-SHA256 hex digests of (FHIR server, patient id) and of a FHIR server, under one secret."""

    def __init__(self, secret: str | bytes):
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < MIN_SECRET_BYTES:
            raise ValueError(f"the patient-hash secret must be at least {MIN_SECRET_BYTES} bytes long")
        self._key = key

    def __repr__(self) -> str:  # never the secret, in a log or a traceback
        return "PatientKey(<secret>)"

    def _digest(self, *parts: str) -> str:
        # A JSON array keeps the fields apart: ("a/b", "c") and ("a", "b/c") cannot hash alike.
        message = json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def patient(self, fhir_server: str, patient_id: str) -> str:
        """The patient, on that server: the same id on two servers is two people."""
        if not patient_id:
            raise ValueError("an empty patient id names no patient")
        return self._digest("patient", normalise_server(fhir_server), patient_id)

    def server(self, fhir_server: str) -> str:
        return self._digest("server", normalise_server(fhir_server))

    def card(self, stable_key: str) -> str:
        """A card's stable key (decision A20), which may name what was ordered ("R05:order:magnesium hydroxide"):
        the same for the same finding on every call, so still good for deduplication, and nothing read from it."""
        return self._digest("card", stable_key)
