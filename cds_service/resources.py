"""Select the resources the rules read, and validate each with the fhir.resources R4B models.

Incoming FHIR is messy. A resource that does not validate is skipped and reported (type, id and where it failed, never
its values); the rest of the request goes on. A resource is validated on the elements the service reads
(READ_ELEMENTS, with those its model requires): an error in an element no rule reads does not cost the patient the
resource. One that carries a modifierExtension is refused, as FHIR requires of a reader that does not understand it.
Only resources the rules can use are validated at all (validation with the R4B models costs 0.1-0.4 ms a resource,
the largest part of a call):

- an Observation whose LOINC code no rule reads is dropped before validation;
- an Encounter or Procedure that matches no code or word of any value set (the rules read them only through value
  sets: specialty encounters, dialysis), and a MedicationRequest or MedicationStatement that is not active (A5), are
  dropped before validation;
- a lab Observation inside its window, a Condition and an active medication are not validated here at all:
  labs.LabPanel and facts.PatientFacts validate each when a rule first reads it (a Condition or medication that
  matches a value set a rule asks about, a lab result newest first), so only what the rules use is validated, and an
  invalid one is then reported;
- a lab Observation dated outside its analyte's look-back window (labs.LabPanel.in_window: 90 or 365 days, up to one
  hour ahead) is dropped before validation too, since no rule can read it. Its date is read from the raw resource
  exactly as labs.read_observation reads it; an Observation without a readable date is kept (and reported unusable
  by the labs, as before). Such old results are therefore neither validated nor reported in skippedResources or
  unusedLabResults: the report covers the data the rules could have used.

This is what keeps a 5,000-Observation record (years of labs) fast: the rules read the last 90 days to a year.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, get_args

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from .fhir_values import parse_datetime, resource_label
from .labs import lab_windows
from .medications import is_active
from .terminology import Terminology, system_key
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

# Types that carry the patient in `patient` rather than `subject`.
_PATIENT_FIELD = {"AllergyIntolerance": "patient"}


@lru_cache(maxsize=None)
def model_class(resource_type: str):
    return get_fhir_model_class(resource_type)


@dataclass
class SelectedResources:
    by_type: dict[str, list[dict]] = field(default_factory=dict)  # validated
    skipped: list[dict[str, str]] = field(default_factory=list)
    lab_observations: list[dict] = field(default_factory=list)  # validated on first use by labs.LabPanel
    condition_resources: list[dict] = field(default_factory=list)  # validated on first use by facts.PatientFacts
    medication_resources: list[dict] = field(default_factory=list)  # active ones; validated on first use likewise

    def of(self, resource_type: str) -> list[dict]:
        return self.by_type.get(resource_type, [])


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
    resource_type = resource.get("resourceType")
    if resource_type == "Patient":
        return resource.get("id") in (None, patient_id)
    if resource_type == "Medication":
        return True
    holder = resource.get(_PATIENT_FIELD.get(resource_type, "subject"))
    reference = holder.get("reference") if isinstance(holder, dict) else None
    if not isinstance(reference, str) or not reference.startswith(("Patient/", "http")):
        return True
    tail = reference.rstrip("/").split("/")
    return len(tail) >= 2 and tail[-2] == "Patient" and tail[-1] == patient_id


# FHIR resources nest a few levels (extensions in extensions a few more); the R4B models recurse per level and fail
# with RecursionError (not a validation error) some hundreds of levels down, so deeper resources are refused first.
MAX_RESOURCE_DEPTH = 64


# The elements of each type that the facts and rules read (kept honest by tests/test_read_elements.py, which records
# every element read while every fixture scenario is evaluated). A resource is validated on these, on the elements
# its R4B model requires (a resource without one is still refused) and on modifierExtension: what the service never
# reads (a Patient's names, addresses and extensions, an Encounter's participants, a Condition's category) is neither
# used nor validated, so an error there does not cost the patient a resource the rules need. It also keeps validation
# fast: a Synthea Patient took 1.5 ms whole and takes 0.04 ms on what is read (docs/performance.md).
READ_ELEMENTS: dict[str, frozenset[str]] = {
    "Patient": frozenset({"birthDate", "gender"}),
    "Condition": frozenset({
        "subject", "clinicalStatus", "verificationStatus", "code", "bodySite", "severity", "onsetDateTime",
        "onsetPeriod", "abatementDateTime", "abatementPeriod", "abatementAge", "abatementRange", "abatementString",
        "abatementBoolean", "recordedDate",
    }),
    "Observation": frozenset({
        "subject", "status", "code", "effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued",
        "valueQuantity", "valueCodeableConcept", "referenceRange", "interpretation",
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
    "Procedure": frozenset({"subject", "status", "code"}),
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
        pass  # invalid somewhere: validated again the plain way below, so that the report reads as it always has
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


def observation_effective(resource: dict) -> datetime | None:
    """When an Observation was taken, read as labs.read_observation reads it (dateTime, period start, instant, issued)."""
    period = resource.get("effectivePeriod")
    return (
        parse_datetime(resource.get("effectiveDateTime"))
        or parse_datetime(period.get("start") if isinstance(period, dict) else None)
        or parse_datetime(resource.get("effectiveInstant"))
        or parse_datetime(resource.get("issued"))
    )


def loinc_codes_read(resource: dict, read: frozenset[str]) -> list[str]:
    """The LOINC codes of an Observation that a rule reads, in order: observation_loinc_codes() narrowed to `read`,
    with the set lookup first (the hot path of a record with thousands of Observations)."""
    code = resource.get("code")
    codings = code.get("coding") if type(code) is dict else None
    if type(codings) is not list:
        return []
    found = []
    for coding in codings:
        if type(coding) is dict:
            value = coding.get("code")
            if type(value) is str and value in read and system_key(coding.get("system")) == "loinc":
                found.append(value)
    return found


def _lab_role(codes: list[str], terms: Terminology) -> tuple[str | None, bool]:
    """(the analyte of the first code that has one, as labs.build_panel takes it; whether any code is a coded
    observation the facts read, e.g. pregnancy status). A lab result is an Observation with an analyte and no coded
    observation: labs.LabPanel validates it when a rule reads it; the others are validated here."""
    analyte, coded = None, False
    for code in codes:
        if analyte is None:
            analyte = terms.analyte_for_loinc(code)
        if not coded and terms.observation_for_loinc(code) is not None:
            coded = True
    return analyte, coded


def _dated_outside(resource: dict, window: tuple[datetime, datetime]) -> bool:
    """True when a lab result is dated outside its analyte's look-back window (from lab_windows), so that no rule can
    read it; one without a readable date is kept (the labs report it unusable)."""
    effective = observation_effective(resource)
    return effective is not None and not (window[0] <= effective <= window[1])


# Types whose resources the rules read only through a value set, with the fields they match on: one matching nothing
# in any value set is left out before validation (Encounters by specialty, Procedures for dialysis).
_READ_BY_VALUE_SET = {
    "Encounter": ("serviceType", "type"),
    "Procedure": ("code",),
}


def _value_set_concepts(resource: dict) -> list:
    return [resource.get(name) for name in _READ_BY_VALUE_SET[resource["resourceType"]] if resource.get(name)]


def select_and_validate(
    resources: list[dict[str, Any]], patient_id: str, terms: Terminology, now: datetime | None = None
) -> SelectedResources:
    """The resources the rules read, validated. With `now` (the evaluation time), lab Observations outside their
    look-back window are left out before validation (see the module's docstring)."""
    selected = SelectedResources()
    windows = lab_windows(terms, now) if now is not None else None
    read = terms.read_loinc_codes
    for resource in resources:
        resource_type = resource.get("resourceType")
        if resource_type not in RELEVANT_TYPES:
            continue
        lab = False
        if resource_type == "Observation":
            codes = loinc_codes_read(resource, read)
            if not codes:  # most Observations of a record (vital signs, other labs): rejected here, cheaply
                continue
            analyte, coded = _lab_role(codes, terms)
            lab = analyte is not None and not coded
            if lab and windows is not None and _dated_outside(resource, windows[analyte]):
                continue
        elif resource_type in _READ_BY_VALUE_SET and not any(
            terms.candidate_value_sets(concept) for concept in _value_set_concepts(resource)
        ):
            continue
        elif resource_type in ("MedicationRequest", "MedicationStatement") and not is_active(resource):
            continue  # the facts read active medications only (A5); drafts come from draftOrders, not from here
        if not is_about_patient(resource, patient_id):
            selected.skipped.append({"resource": resource_label(resource), "issue": "it is about another patient"})
            continue
        if lab:
            selected.lab_observations.append(resource)
            continue
        if resource_type == "Condition":
            selected.condition_resources.append(resource)
            continue
        if resource_type in ("MedicationRequest", "MedicationStatement"):
            selected.medication_resources.append(resource)
            continue
        issue = validate(resource)
        if issue:
            selected.skipped.append({"resource": resource_label(resource), "issue": issue})
            continue
        selected.by_type.setdefault(resource_type, []).append(resource)
    return selected


@lru_cache(maxsize=1)
def warm_up() -> None:
    """Load at start-up what the first call would otherwise load on the clinician's time (about 0.3 s): the R4B model
    classes of every type the rules read, the code tables, the services and the rules (which import the proposal
    models), and every element model they can hold. Under gunicorn's preload_app this runs once in the master, and
    every worker starts warm; once per process in any case."""
    from .rules import registry
    from .services import services
    from .terminology import terminology

    terminology()
    services()
    registry()
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
