"""Select the resources the rules read, and validate each with the fhir.resources R4B models.

Incoming FHIR is messy. A resource that does not validate is skipped and reported (type, id and where it failed, never
its values); the rest of the request goes on. Only resources the rules can use are validated at all: an Observation
whose LOINC code no rule reads is dropped before validation, which is what keeps a 5,000-Observation record fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from .terminology import Terminology, system_key

# The resource types the facts are built from; anything else in a prefetch Bundle is ignored.
RELEVANT_TYPES = frozenset(
    {
        "Patient",
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationStatement",
        "Medication",
        "Procedure",
        "AllergyIntolerance",
        "ServiceRequest",
        "Encounter",
    }
)

# Types that carry the patient in `patient` rather than `subject`.
_PATIENT_FIELD = {"AllergyIntolerance": "patient"}


@lru_cache(maxsize=None)
def model_class(resource_type: str):
    return get_fhir_model_class(resource_type)


@dataclass
class SelectedResources:
    by_type: dict[str, list[dict]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def of(self, resource_type: str) -> list[dict]:
        return self.by_type.get(resource_type, [])


def _label(resource: dict) -> str:
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid}" if isinstance(rid, str) else str(resource.get("resourceType"))


def _validation_issue(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        location = ".".join(str(p) for p in item.get("loc", ()) if not isinstance(p, int)) or "resource"
        parts.append(f"{location}: {item.get('msg', 'invalid')}")
    more = len(error.errors()) - 3
    return "not valid FHIR R4: " + "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def observation_loinc_codes(resource: dict) -> list[str]:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    if not isinstance(codings, list):
        return []
    return [
        c["code"]
        for c in codings
        if isinstance(c, dict) and system_key(c.get("system")) == "loinc" and isinstance(c.get("code"), str)
    ]


def is_about_patient(resource: dict, patient_id: str) -> bool:
    """False only when the resource names another patient; urn:uuid and contained references are accepted."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id") in (None, patient_id)
    if resource.get("resourceType") == "Medication":
        return True
    holder = resource.get(_PATIENT_FIELD.get(resource.get("resourceType"), "subject"))
    reference = holder.get("reference") if isinstance(holder, dict) else None
    if not isinstance(reference, str) or not reference.startswith(("Patient/", "http")):
        return True
    tail = reference.rstrip("/").split("/")
    return len(tail) >= 2 and tail[-2] == "Patient" and tail[-1] == patient_id


def validate(resource: dict) -> str | None:
    """None if the resource is valid FHIR R4 (R4B models), else why not."""
    try:
        model_class(resource["resourceType"]).model_validate(resource)
    except ValidationError as error:
        return _validation_issue(error)
    except (ValueError, TypeError) as error:  # a model the library cannot build from this shape
        return f"not valid FHIR R4: {type(error).__name__}"
    return None


def select_and_validate(resources: list[dict[str, Any]], patient_id: str, terms: Terminology) -> SelectedResources:
    selected = SelectedResources()
    for resource in resources:
        resource_type = resource.get("resourceType")
        if resource_type not in RELEVANT_TYPES:
            continue
        if resource_type == "Observation" and not any(
            terms.reads_loinc(code) for code in observation_loinc_codes(resource)
        ):
            continue
        if not is_about_patient(resource, patient_id):
            selected.skipped.append({"resource": _label(resource), "issue": "it is about another patient"})
            continue
        issue = validate(resource)
        if issue:
            selected.skipped.append({"resource": _label(resource), "issue": issue})
            continue
        selected.by_type.setdefault(resource_type, []).append(resource)
    return selected
