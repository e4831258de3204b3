"""Select the resources the rules read from a patient's record; validate those read whole (validation.py).

Incoming FHIR is messy. A resource that does not validate is skipped and reported (type, id and where it failed, never
its values); the rest of the request goes on. Only resources the rules can use are validated at all:

- an Observation whose LOINC codes no rule reads, as its code or a component's (a panel, A19), is dropped before
  validation;
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
from typing import Any

from .codes import component_loinc_codes, loinc_codes
from .fhir_values import resource_label
from .labs import lab_windows, observation_effective
from .medications import is_active
from .terminology import Terminology
from .validation import RELEVANT_TYPES, validate

# Types that carry the patient in `patient` rather than `subject`.
_PATIENT_FIELD = {"AllergyIntolerance": "patient"}


@dataclass
class SelectedResources:
    by_type: dict[str, list[dict]] = field(default_factory=dict)  # validated
    skipped: list[dict[str, str]] = field(default_factory=list)
    lab_observations: list[dict] = field(default_factory=list)  # validated on first use by labs.LabPanel
    condition_resources: list[dict] = field(default_factory=list)  # validated on first use by facts.PatientFacts
    medication_resources: list[dict] = field(default_factory=list)  # active ones; validated on first use likewise

    def of(self, resource_type: str) -> list[dict]:
        return self.by_type.get(resource_type, [])


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


def _lab_role(codes: list[str], component_codes: list[str], terms: Terminology) -> tuple[list[str], bool]:
    """(the analytes labs.build_panel reads from it: the first of its own codes that has one, and those of its
    components; whether any of its own codes is a coded observation the facts read, e.g. pregnancy status). A lab
    result is an Observation with an analyte and no coded observation: labs.LabPanel validates it when a rule reads
    it; the others are validated here."""
    analytes, coded = [], False
    for code in codes:
        if not analytes and (analyte := terms.analyte_for_loinc(code)) is not None:
            analytes.append(analyte)
        if not coded and terms.observation_for_loinc(code) is not None:
            coded = True
    analytes.extend(a for code in component_codes if (a := terms.analyte_for_loinc(code)) is not None)
    return analytes, coded


def _dated_outside(resource: dict, windows: list[tuple[datetime, datetime]]) -> bool:
    """True when a lab result is dated outside the look-back windows (from lab_windows) of every analyte it holds (a
    panel holds several), so that no rule can read it; one without a readable date is kept (the labs report it
    unusable)."""
    effective = observation_effective(resource)
    return effective is not None and not any(start <= effective <= end for start, end in windows)


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
            codes = loinc_codes(resource, read)
            # A panel (A19) holds the results the rules read in its components, under a code no rule reads.
            component_codes = component_loinc_codes(resource, read)
            if not codes and not component_codes:  # most Observations of a record: rejected here, cheaply
                continue
            analytes, coded = _lab_role(codes, component_codes, terms)
            lab = bool(analytes) and not coded
            if lab and windows is not None and _dated_outside(resource, [windows[a] for a in analytes]):
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


