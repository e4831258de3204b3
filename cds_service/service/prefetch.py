"""Prefetch: fill templates, read what the client sent, and gather one patient's record from it.

What each prefetch value means (CDS Hooks 2.0 §Prefetch):
- key absent: the client did not satisfy it; fetch it from fhirServer (cds_service/fhir_client.py), else it is missing;
- null: there is no data; never fetched;
- an OperationOutcome: the client failed to get it; an error for that key;
- a resource, or a searchset Bundle (possibly with a `next` link to follow): the data.

Keys are required or optional (see services.py). A required key that cannot be obtained makes the request fail with
412; an optional one is reported in the response's extension and the cards that need it are not given.

Medications referenced by the record's active MedicationRequests/Statements (`medicationReference`) that are neither
contained nor in the record are fetched in one batch when the fetcher can (`fetch_medications`), within the same
deadline; what stays unresolved is reported under the pseudo-key MEDICATION_KEY (optional).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import BadRequest, PreconditionFailed
from cds_service.record.medications import MEDICATION_TYPES, unresolved_medication_references
from .protocol import HookRequest
from cds_service.record.labs import ObservationClass, classify_observation
from cds_service.record.draft_orders import draft_order_entries

_TOKEN = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


def render_template(template: str, context: dict[str, Any]) -> str | None:
    """Fill a prefetch template's tokens from the context; None when a token has no value (the key is skipped)."""
    user_type, _, user_id = str(context.get("userId", "")).partition("/")
    unresolved = False

    def replace(match: re.Match) -> str:
        nonlocal unresolved
        token = match.group(1)
        if token.startswith("context."):
            value = context.get(token[len("context."):])
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return str(value)
        elif token in _USER_TOKENS and _USER_TOKENS[token] == user_type and user_id:
            return user_id
        unresolved = True
        return ""

    rendered = _TOKEN.sub(replace, template)
    return None if unresolved else rendered


@dataclass
class KeyResult:
    """What one prefetch key yielded: resources, or an error saying why not."""

    resources: list[dict] = field(default_factory=list)
    error: str | None = None
    source: str = "prefetch"  # prefetch | fetched | null
    next_url: str | None = None  # a searchset page still to follow


class Fetcher(Protocol):
    """Gets from the EHR's FHIR server what the prefetch lacks (implemented in fhir_client.py)."""

    def fetch(self, request: HookRequest, queries: dict[str, str], continuations: dict[str, str]) -> dict[str, KeyResult]:
        """queries: key -> rendered query for absent keys; continuations: key -> `next` URL of a partial Bundle."""
        ...


# Not a prefetch key of any template: where unresolved medicationReferences are reported (always optional).
MEDICATION_KEY = "medicationReferences"


@dataclass
class PatientRecord:
    """The patient's resources as the client sent them (or we fetched them), before any FHIR validation."""

    resources: list[dict]
    keys: dict[str, KeyResult]
    missing_optional: list[str] = field(default_factory=list)
    # Each Observation of the record as the service reads it (labs.ObservationClass: its read codes and its date),
    # by id(): worked out once here, while the resource is read anyway, and reused by the selection and the lab
    # panel. The resources themselves are not touched: they are validated later as they were sent.
    observation_codes: dict[int, ObservationClass] = field(default_factory=dict)

    def problems(self) -> list[dict[str, str]]:
        return [{"prefetchKey": key, "issue": result.error} for key, result in self.keys.items() if result.error]


def bundle_resources(bundle: dict, observation_codes: frozenset[str] | None = None,
                     classified: dict[int, ObservationClass] | None = None) -> list[dict]:
    """The resources of a search Bundle's entries (prefetched or fetched), leniently read; with `observation_codes`,
    without the Observations that carry none of these LOINC codes (see gather), and the codes and dates of those
    kept put in `classified` (see PatientRecord.observation_codes)."""
    resources = []
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else []:  # protocol.py and fhir_client.py refuse other shapes
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            resource_type = resource.get("resourceType")
            # Search bundles may carry OperationOutcomes as warnings (search.mode=outcome): not patient data.
            if isinstance(resource_type, str) and resource_type != "OperationOutcome":
                if resource_type != "Observation" or _read_by_a_rule(resource, observation_codes, classified):
                    resources.append(resource)
    return resources


def _read_by_a_rule(observation: dict, observation_codes: frozenset[str] | None,
                    classified: dict[int, ObservationClass] | None) -> bool:
    """False for an Observation that carries none of `observation_codes` (no rule reads it); the codes and date of
    one kept are worked out once and put in `classified` (an Observation already there is not read again)."""
    if observation_codes is None:
        return True
    if classified is not None and id(observation) in classified:
        return True
    classification = classify_observation(observation, observation_codes)
    if classification is None:
        return False
    if classified is not None:
        classified[id(observation)] = classification
    return True


def read_prefetch_value(value: Any, observation_codes: frozenset[str] | None = None,
                        classified: dict[int, ObservationClass] | None = None) -> KeyResult:
    """Interpret one prefetch value that is present (None included)."""
    if value is None:
        return KeyResult(source="null")
    resource_type = value.get("resourceType")
    if resource_type == "OperationOutcome":
        return KeyResult(error="the client reported an error for this key (OperationOutcome)")
    if resource_type != "Bundle":
        return KeyResult(resources=[value])
    resources = bundle_resources(value, observation_codes, classified)
    next_url = None
    links = value.get("link")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            next_url = link["url"]
    return KeyResult(resources=resources, next_url=next_url)


def gather(
    request: HookRequest,
    templates: dict[str, str],
    required: set[str],
    fetcher: Fetcher | None,
    observation_codes: frozenset[str] | None = None,
    classified: dict[int, ObservationClass] | None = None,
) -> PatientRecord:
    """Collect the patient's record for a service call; raise PreconditionFailed when required data is missing.

    `observation_codes` (the LOINC codes the rules read): an Observation with none of them, as its code or a panel
    component's, is left out of the record (most of a record: vital signs, surveys, other labs), by the selection's
    own test (labs.classify_observation: record.codes.read_codes, has_loinc_code in its fast form). The codes and the
    date of each Observation kept are worked out once, here, and carried in PatientRecord.observation_codes.
    `classified`: those the request body's scan already worked out (record.request_scan), not worked out again; the
    ones worked out here are added to it."""
    keys: dict[str, KeyResult] = {}
    if classified is None:
        classified = {}
    queries: dict[str, str] = {}
    continuations: dict[str, str] = {}
    for key, template in templates.items():
        if key in request.prefetch:
            # Read once, walked once: an Observation no rule reads is left out as its entry is read.
            result = read_prefetch_value(request.prefetch[key], observation_codes, classified)
            keys[key] = result
            if result.next_url:
                continuations[key] = result.next_url
            continue
        query = render_template(template, request.context)
        if query is None:
            keys[key] = KeyResult(error="the template's tokens have no value in this context")
        else:
            queries[key] = query

    if (queries or continuations) and fetcher is not None and request.fhir_server:
        fetched = fetcher.fetch(request, queries, continuations)
        for key, result in fetched.items():
            if key in continuations and key in keys and not result.error:
                keys[key].resources.extend(result.resources)
                keys[key].next_url = None
            elif key in continuations and key in keys:
                keys[key].error = f"the rest of the search could not be read: {result.error}"
            else:
                keys[key] = result
    for key in queries:
        keys.setdefault(key, KeyResult(error="not in the prefetch, and no fhirServer to fetch it from"))
    for key in continuations:
        if keys[key].next_url and not keys[key].error:
            keys[key].error = "the search has more pages that could not be followed"

    missing_required = sorted(key for key in required if key in keys and keys[key].error and not keys[key].resources)
    if missing_required:
        raise PreconditionFailed(
            "Required data could not be obtained: " + ", ".join(missing_required),
            missing=missing_required,
            details=[f"{key}: {keys[key].error}" for key in missing_required],
        )
    resources: list[dict] = []
    by_type: dict[str, list[dict]] = {}  # the Patients and the medication data only (_BY_TYPE)
    seen: dict[str, set] = {}  # the ids already in the record, by type
    for result in keys.values():  # prefetched Observations were classified as read; fetched pages are here
        _add_unique(result.resources, resources, by_type, seen, observation_codes, classified)
    _check_patient(request, by_type.get("Patient", []))
    medication_data = [r for t in ("Medication", *MEDICATION_TYPES) for r in by_type.get(t, [])]
    if _resolve_medications(request, keys, fetcher, medication_data):
        _add_unique(keys[MEDICATION_KEY].resources, resources, by_type, seen, observation_codes, classified)
    missing_optional = sorted(key for key, result in keys.items() if result.error and key not in required)
    return PatientRecord(resources=resources, keys=keys, missing_optional=missing_optional,
                         observation_codes=classified)


# The types gather itself reads (the Patient, and the medication data for medicationReferences).
_BY_TYPE = frozenset({"Patient", "Medication", *MEDICATION_TYPES})


def _add_unique(found: list[dict], resources: list[dict], by_type: dict[str, list[dict]],
                seen: dict[str, set], observation_codes: frozenset[str] | None = None,
                classified: dict[int, ObservationClass] | None = None) -> None:
    """Add to the record the resources not already in it (a resource in two keys counts once: same type and id).
    With `observation_codes`, the Observations are read with them as bundle_resources reads them (fetched pages
    are read by the FHIR client, without the codes)."""
    for resource in found:
        resource_type = resource.get("resourceType")
        if resource_type == "Observation" and not (
            (classified is not None and id(resource) in classified)  # a prefetched one, classified as it was read
            or _read_by_a_rule(resource, observation_codes, classified)
        ):
            continue
        resource_id = resource.get("id")
        # An id that is an object or an array (not valid FHIR: validation reports it) cannot say what is a duplicate.
        if resource_id is not None and (type(resource_id) is str or not isinstance(resource_id, (dict, list))):
            ids = seen.get(resource_type)
            if ids is None:
                ids = seen[resource_type] = set()
            if resource_id in ids:  # already in the record
                continue
            ids.add(resource_id)
        resources.append(resource)
        if resource_type in _BY_TYPE:
            by_type.setdefault(resource_type, []).append(resource)


def _resolve_medications(request: HookRequest, keys: dict[str, KeyResult], fetcher: Fetcher | None,
                         medication_data: list[dict]) -> bool:
    """Look for the Medications that medicationReferences name and the record lacks (`medication_data`: its
    Medications, MedicationRequests and MedicationStatements); True when some were looked for (MEDICATION_KEY)."""
    references = unresolved_medication_references(medication_data, drafts=[r for _, r in draft_order_entries(request.context.get("draftOrders"))])
    if not references:
        return False
    fetch_medications = getattr(fetcher, "fetch_medications", None)
    if fetch_medications is None or not request.fhir_server:
        why = "no fhirServer to fetch them from" if not request.fhir_server else "this service does not fetch them"
        keys[MEDICATION_KEY] = KeyResult(error=f"referenced but not in the prefetch, and {why}: " + ", ".join(references))
        return True
    keys[MEDICATION_KEY] = fetch_medications(request, references)
    return True


def _check_patient(request: HookRequest, patients: list[dict]) -> None:
    """A Patient resource for another patient than context.patientId means the request is inconsistent."""
    for resource in patients:
        if resource.get("id") not in (None, request.patient_id):
            raise BadRequest("the prefetched Patient is not context.patientId")
