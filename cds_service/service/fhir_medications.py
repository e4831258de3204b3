"""The Medications a record names by reference: asked for with their searches (`_include`), or fetched afterwards in
a few batched searches, within the call's deadline; only from the fhirServer's own origin (never the token elsewhere).
"""

from __future__ import annotations

import re
from typing import Any

from . import outbound
from .fhir_answers import QueryRejected
from .prefetch import KeyResult
from .protocol import HookRequest

MEDICATION_IDS_PER_SEARCH = 50  # keeps `Medication?_id=...` well under common URL length limits
MEDICATION_BATCHES = 4  # at most 200 Medications a call: a call's tasks stay few, so calls cannot starve each other
# The searches whose resources name their drug by reference, and the _include that brings the Medications along.
MEDICATION_INCLUDES = {
    "MedicationRequest": "MedicationRequest:medication",
    "MedicationStatement": "MedicationStatement:medication",
}
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
NOT_HTTP = "fhirServer is not an http(s) URL; nothing was fetched"


def with_medication_include(query: str) -> str:
    """The query with `_include=<Type>:medication` added when it is a MedicationRequest/MedicationStatement search that
    does not already ask for an _include; any other query unchanged."""
    path, sep, params = query.partition("?")
    include = MEDICATION_INCLUDES.get(path.strip("/"))
    if include is None or not sep:
        return query
    if any(p.split("=", 1)[0].startswith("_include") for p in params.split("&")):
        return query
    return f"{query}{'&' if params else ''}_include={include}"



class MedicationFetching:
    """FhirClient's part that reads Medications (a mixin: it uses the client's _call, _run and _read_query; `call` is
    the client's per-call state, fhir_client._Call)."""

    def fetch_medications(self, request: HookRequest, references: list[str]) -> KeyResult:
        """Medications the record references but does not hold, in one batched search, within the same deadline."""
        call = self._call(request)
        if call is None:
            return KeyResult(error=NOT_HTTP, source="fetched")
        ids: list[str] = []
        refused: list[str] = []
        for reference in references:
            mid = self._medication_id(call, reference)
            if mid is None:
                refused.append(reference)
            elif mid not in ids:
                ids.append(mid)
        chunks = [ids[i : i + MEDICATION_IDS_PER_SEARCH] for i in range(0, len(ids), MEDICATION_IDS_PER_SEARCH)]
        if len(chunks) > MEDICATION_BATCHES:
            refused += [f"Medication/{mid}" for chunk in chunks[MEDICATION_BATCHES:] for mid in chunk]
            ids = [mid for chunk in chunks[:MEDICATION_BATCHES] for mid in chunk]
            chunks = chunks[:MEDICATION_BATCHES]
        tasks = {
            f"batch-{n}": (lambda c=chunk: self._read_query(call, f"Medication?_id={','.join(c)}&_count={len(c)}"))
            for n, chunk in enumerate(chunks)
        }
        results = self._run(call, tasks) if tasks else {}
        found: dict[str, dict] = {}
        errors: list[str] = []
        for result in results.values():
            for resource in result.resources:
                if resource.get("resourceType") == "Medication" and resource.get("id") in ids:
                    found[resource["id"]] = resource
            if result.error:
                errors.append(result.error)
        not_found = [f"Medication/{mid}" for mid in ids if mid not in found]
        problems = []
        if refused:
            problems.append("cannot be fetched from the fhirServer: " + ", ".join(refused))
        if errors:
            problems.append("; ".join(dict.fromkeys(errors)) + ": " + ", ".join(not_found))
        elif not_found:
            problems.append("not found on the FHIR server: " + ", ".join(not_found))
        return KeyResult(resources=list(found.values()), error="; ".join(problems) or None, source="fetched")

    def _read_query_including_medications(self, call: Any, query: str) -> KeyResult:
        """A MedicationRequest/MedicationStatement search asks for its Medications too (`_include`), in the same round
        trip; a server that rejects the parameter gets the query as the template wrote it."""
        included = with_medication_include(query)
        if included == query:
            return self._read_query(call, query)
        try:
            return self._read_query(call, included)
        except QueryRejected:
            return self._read_query(call, query)

    def _medication_id(self, call: Any, reference: str) -> str | None:
        """The id of a Medication reference we may fetch from the fhirServer, or None."""
        if reference.startswith(("http://", "https://")):
            if not reference.startswith(call.base + "/") or outbound.origin_of(reference) != call.origin:
                return None  # another server: we never send the token elsewhere
            reference = reference[len(call.base) + 1 :]
        kind, _, mid = reference.partition("/")
        if kind != "Medication" or "/" in mid or not _FHIR_ID.match(mid):
            return None  # urn:uuid (a Bundle-local id), versioned or malformed references
        return mid
