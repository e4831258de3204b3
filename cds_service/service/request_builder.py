"""Build a CDS Hooks request from one patient's FHIR data: for `calcinosis-cds evaluate`, fixtures and benchmarks.

Each prefetch key of the service gets the resources of its template's type, as a searchset Bundle (the Patient key
gets the Patient itself). The service applies its own filters, so putting every resource of a type in its key gives
the same cards as a FHIR server that filtered them. The Medications that a key's MedicationRequests or
MedicationStatements reference go into that key's Bundle as included entries (search.mode "include"), as a FHIR
server answering with `_include=MedicationRequest:medication` sends them.
"""

from __future__ import annotations

import uuid
from typing import Any, Iterable

from .discovery import Service


def template_type(template: str) -> str:
    return template.split("?", 1)[0].split("/", 1)[0]


def patient_of(resources: Iterable[dict]) -> dict:
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    if len(patients) != 1:
        raise ValueError(f"expected the record of one patient, found {len(patients)} Patient resources")
    return patients[0]


def resources_of_bundle(bundle: dict) -> list[dict]:
    return [
        entry["resource"]
        for entry in bundle.get("entry") or []
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
    ]


def prefetch_for(service: Service, resources: list[dict]) -> dict[str, Any]:
    prefetch: dict[str, Any] = {}
    for key, template in service.prefetch.items():
        wanted = template_type(template)
        matching = [r for r in resources if r.get("resourceType") == wanted]
        if "?" not in template:  # a read: the resource itself, or null when there is none
            prefetch[key] = matching[0] if matching else None
        else:
            prefetch[key] = {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(matching),
                "entry": [{"resource": r, "search": {"mode": "match"}} for r in matching]
                + [{"resource": m, "search": {"mode": "include"}} for m in _referenced_medications(matching, resources)],
            }
    return prefetch


def _referenced_medications(matching: list[dict], resources: list[dict]) -> list[dict]:
    references = {
        r["medicationReference"].get("reference")
        for r in matching
        if r.get("resourceType") in ("MedicationRequest", "MedicationStatement")
        and isinstance(r.get("medicationReference"), dict)
    }
    return [r for r in resources if r.get("resourceType") == "Medication" and f"Medication/{r.get('id')}" in references]


def request_from_resources(
    service: Service,
    resources: list[dict],
    *,
    user_id: str = "Practitioner/example",
    draft_orders: list[dict] | None = None,
    selections: list[str] | None = None,
    hook_instance: str | None = None,
) -> dict[str, Any]:
    patient = patient_of(resources)
    context: dict[str, Any] = {"userId": user_id, "patientId": patient["id"]}
    if service.hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": r} for r in draft_orders or []]}
        if service.hook == "order-select":
            context["selections"] = selections or [
                f"{r['resourceType']}/{r['id']}" for r in draft_orders or [] if r.get("id")
            ]
    return {
        "hookInstance": hook_instance or str(uuid.uuid4()),
        "hook": service.hook,
        "context": context,
        "prefetch": prefetch_for(service, resources),
    }
