"""Validation of the resources the rules read with the fhir.resources R4B models.

A resource is validated on the elements the service reads (READ_ELEMENTS, with those its model requires): an error in
an element no rule reads does not cost the patient the resource, and validation (0.1-0.4 ms a resource, the largest
part of a call) does not pay for what nobody reads. One that carries a modifierExtension is refused, as FHIR requires
of a reader that does not understand it. Lab results, Conditions and medications are validated when a rule first
reads them (ValidateOnRead): only what the rules use is validated, and an invalid one is then reported.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, get_args

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from .validated_elements import MEMO, shared_fields

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


@lru_cache(maxsize=None)
def model_class(resource_type: str):
    return get_fhir_model_class(resource_type)


def _validation_issue(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        location = ".".join(str(p) for p in item.get("loc", ()) if not isinstance(p, int)) or "resource"
        parts.append(f"{location}: {item.get('msg', 'invalid')}")
    more = len(error.errors()) - 3
    return "not valid FHIR R4: " + "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


# FHIR resources nest a few levels (extensions in extensions a few more); the R4B models recurse per level and fail
# with RecursionError (not a validation error) some hundreds of levels down, so deeper resources are refused first.
MAX_RESOURCE_DEPTH = 64


# The elements of each type that the facts and rules read (kept honest by tests/test_read_elements.py, which records
# every element read while every fixture scenario is evaluated). A resource is validated on these, on the elements
# its R4B model requires (a resource without one is still refused) and on modifierExtension: what the service never
# reads (a Patient's names, addresses and extensions, an Encounter's participants, a Condition's category) is neither
# used nor validated, so an error there does not cost the patient a resource the rules need. It also keeps validation
# fast: a record's Patient is mostly names, addresses and extensions that no rule reads.
READ_ELEMENTS: dict[str, frozenset[str]] = {
    "Patient": frozenset({"birthDate", "gender"}),  # gender: the CKD-EPI 2021 equation (decision A13)
    "Condition": frozenset({
        "subject", "clinicalStatus", "verificationStatus", "code", "bodySite", "severity", "onsetDateTime",
        "onsetPeriod", "abatementDateTime", "abatementPeriod", "abatementAge", "abatementRange", "abatementString",
        "abatementBoolean", "recordedDate",
    }),
    "Observation": frozenset({
        "subject", "status", "code", "effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued",
        "valueQuantity", "valueCodeableConcept", "referenceRange", "interpretation", "component",
    }),
    # The dose reader takes dosageInstruction or dosage on either type (draft orders arrive in both shapes); the
    # element that does not belong to the type is then refused by the model, as before.
    "MedicationRequest": frozenset({
        "subject", "status", "doNotPerform", "medicationCodeableConcept", "medicationReference", "contained",
        "dosageInstruction", "dosage", "reasonCode", "reasonReference",
    }),
    "MedicationStatement": frozenset({
        "subject", "status", "medicationCodeableConcept", "medicationReference", "contained", "dosage",
        "dosageInstruction", "reasonCode", "reasonReference",
    }),
    "Medication": frozenset({"code", "ingredient"}),
    "Procedure": frozenset({"subject", "status", "code", "performedDateTime", "performedPeriod"}),
    "Encounter": frozenset({"subject", "status", "period", "serviceType", "type"}),
    "AllergyIntolerance": frozenset({"patient", "clinicalStatus", "verificationStatus", "code", "reaction"}),
    "ServiceRequest": frozenset({"subject", "status", "doNotPerform", "code", "authoredOn", "occurrenceDateTime"}),
}


@lru_cache(maxsize=None)
def validated_elements(resource_type: str) -> frozenset[str] | None:
    """The top-level elements a resource of this type is validated on (with their `_element` siblings, which carry a
    primitive's id and extensions), or None for the whole resource (a type the rules do not read)."""
    read = READ_ELEMENTS.get(resource_type)
    if read is None:
        return None
    required = set()
    for field_info in model_class(resource_type).model_fields.values():
        extra = field_info.json_schema_extra if isinstance(field_info.json_schema_extra, dict) else {}
        if field_info.is_required() or extra.get("element_required") or extra.get("one_of_many_required"):
            required.add(field_info.alias or "")
    names = set(read) | required | {"id", "modifierExtension"}
    names.discard("")
    return frozenset(names | {"_" + name for name in names} | {"resourceType"})


def _read_part(resource: dict) -> dict:
    elements = validated_elements(resource.get("resourceType"))
    if elements is None:
        return resource
    return {name: value for name, value in resource.items() if name in elements}


def _inspect(value: Any, limit: int = MAX_RESOURCE_DEPTH) -> str | None:
    """Why a resource (its part the service reads) cannot be used before its model sees it: nested deeper than
    `limit` levels (the resource itself is level 1), or carrying a modifier extension. A modifierExtension changes
    the meaning of the element that holds it (e.g. "this did not happen"); FHIR requires a system that does not
    understand one to refuse the data rather than read it as if it were absent."""
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if depth > limit:
            return f"nested deeper than {limit} levels"
        if isinstance(item, dict):
            if item.get("modifierExtension"):
                return "it carries a modifierExtension, which changes its meaning in a way the service does not read"
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        below = depth + 1
        for child in children:
            if isinstance(child, (dict, list)):
                push((child, below))
            elif below > limit:  # a plain value one level too deep is refused as a container would be
                return f"nested deeper than {limit} levels"
    return None


def validate(resource: dict) -> str | None:
    """None if the part of the resource the service reads is valid FHIR R4 (R4B models), else why not."""
    part = _read_part(resource)
    issue = _inspect(part)
    if issue is not None:
        return issue
    try:
        klass = model_class(part["resourceType"])
        # Concepts and references already validated elsewhere are handed over validated (validated_elements.py).
        # Called as klass(**part): the fhir.resources models have their own __init__, which model_validate calls
        # on a dict, running the model's after-validators a second time (the same checks, ~10% of the work).
        klass(**MEMO.with_validated_elements(klass, part))
        return None
    except (ValidationError, ValueError, TypeError, RecursionError):
        pass  # invalid somewhere: validated again the plain way below, whose errors name the element that failed
    try:
        model_class(part["resourceType"]).model_validate(part)
    except ValidationError as error:
        return _validation_issue(error)
    except (ValueError, TypeError, RecursionError) as error:  # a shape the library cannot build a model from
        return f"not valid FHIR R4: {type(error).__name__}"
    return None


class ValidateOnRead:
    """Validates a resource the first time a rule reads it (lab results, Conditions, medications), remembers the
    verdict for the rest of the call, and collects the invalid ones for the response's skippedResources."""

    def __init__(self, validator: Callable[[dict], str | None] = None):
        self._validator = validator or validate
        self._verdicts: dict[int, bool] = {}
        self.invalid: list[dict[str, str]] = []

    def __call__(self, resource: dict, reference: str) -> bool:
        key = id(resource)
        verdict = self._verdicts.get(key)
        if verdict is None:
            issue = self._validator(resource)
            verdict = self._verdicts[key] = issue is None
            if issue is not None:
                self.invalid.append({"resource": reference, "issue": issue})
        return verdict


def load_models() -> None:
    """Build at start-up what the first call would otherwise build on the clinician's time (about 0.3 s): the R4B
    model classes of every type the rules read and every element model they can hold."""
    seen: set[type] = set()
    for resource_type in RELEVANT_TYPES:
        _load_element_models(model_class(resource_type), seen)
        shared_fields(model_class(resource_type))


def _load_element_models(klass: type, seen: set[type]) -> None:
    """Import every element model a resource model can hold (fhir.resources imports them, and pydantic builds their
    schemas, on the first value that uses them: 0.1-0.3 s spread over a worker's first calls)."""
    if klass in seen:
        return
    seen.add(klass)
    for field_info in getattr(klass, "model_fields", {}).values():
        pending = [field_info.annotation]
        while pending:
            annotation = pending.pop()
            pending.extend(get_args(annotation))
            loader = getattr(annotation, "get_model_klass", None)
            if callable(loader):
                element = loader()
                if isinstance(element, type):
                    _load_element_models(element, seen)
