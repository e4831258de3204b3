"""Select the resources the rules read from a patient's record; validate those read whole (validation.py).

Incoming FHIR is messy. A resource that does not validate is skipped and reported (type, id and where it failed, never
its values); the rest of the request goes on. Only resources the rules can use are validated at all:

- an Observation whose LOINC codes no rule reads, as its code or a component's (a panel, A19), is dropped before
  validation (the record's gathering, prefetch.gather, has already dropped them and worked out each kept one's codes
  and date once: labs.classify_observation; they are reused here and by the lab panel, never worked out again);
- an Encounter or Procedure that matches no code or word of any value set (the rules read them only through value
  sets: specialty encounters, dialysis), and a MedicationRequest or MedicationStatement that is not active (A5), are
  dropped before validation;
- a lab Observation inside its window, a Condition, an active medication and a Procedure are not validated here at
  all: labs.LabPanel and facts.PatientFacts validate each when a rule first reads it (a Condition or medication that
  matches a value set a rule asks about, a lab result newest first, a dialysis session newest first until one
  counts), so only what the rules use is validated, and an invalid one is then reported;
- a lab Observation dated outside its analyte's look-back window (labs.LabPanel.in_window: 90 or 365 days, up to one
  hour ahead) is dropped before validation too, since no rule can read it. Its date is read from the raw resource
  exactly as labs.read_observation reads it, once (in gathering): the panel orders the results by it too. An
  Observation without a readable date is kept (and reported unusable by the labs, as before). Such old results are
  therefore neither read, validated nor reported in skippedResources or unusedLabResults; nor are the results in the
  window that no rule reaches (labs.LabPanel): the report covers the results the rules read and could not use.

This is what keeps a 5,000-Observation record (years of labs) fast: the rules read the last 90 days to a year.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from .codes import ReadCodes, read_codes
from .fhir_values import resource_label
from .labs import LabRead, ObservationClass, lab_reads, lab_windows, observation_effective
from .medications import is_active
from .procedures import procedure_performed
from .terminology import Terminology
from .validation import RELEVANT_TYPES, validate

# Types that carry the patient in `patient` rather than `subject`.
_PATIENT_FIELD = {"AllergyIntolerance": "patient"}


@dataclass
class SelectedResources:
    by_type: dict[str, list[dict]] = field(default_factory=dict)  # validated
    skipped: list[dict[str, str]] = field(default_factory=list)
    lab_observations: list[dict] = field(default_factory=list)  # validated on first use by labs.LabPanel
    # For each of lab_observations, in the same order: its date (observation_effective, read once: in gathering, else
    # here) and what the panel reads from it (labs.lab_reads), so that labs.build_panel reads neither again.
    lab_reads: list[tuple[datetime | None, tuple[LabRead, ...]]] = field(default_factory=list)
    condition_resources: list[dict] = field(default_factory=list)  # validated on first use by facts.PatientFacts
    medication_resources: list[dict] = field(default_factory=list)  # active ones; validated on first use likewise
    procedure_resources: list[dict] = field(default_factory=list)  # validated on first use likewise

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


# Types whose resources the rules read only through a value set, with the fields they match on: one matching nothing
# in any value set is left out before validation (Encounters by specialty, Procedures for dialysis).
_READ_BY_VALUE_SET = {
    "Encounter": ("serviceType", "type"),
    "Procedure": ("code",),
}


def _value_set_concepts(resource: dict) -> list:
    return [resource.get(name) for name in _READ_BY_VALUE_SET[resource["resourceType"]] if resource.get(name)]


def _role(codes: ReadCodes, terms: Terminology, windows: dict[str, tuple[datetime, datetime]] | None
          ) -> tuple[tuple[LabRead, ...], bool, tuple[datetime, datetime] | None]:
    """(what the panel reads from an Observation with these codes (labs.lab_reads); whether it is a lab result: it
    holds an analyte and is no coded observation; the span of its analytes' windows, or None without windows). Every
    window holds `now` (labs.lab_windows), so the union of several is the one span from the earliest start to the
    latest end: dated outside it, the Observation is outside the window of every analyte it holds."""
    reads, coded = lab_reads(codes, terms)
    span = None
    if windows is not None and reads:
        spans = [windows[analyte] for analyte, _, _ in reads]
        span = (min(start for start, _ in spans), max(end for _, end in spans))
    return reads, bool(reads) and not coded, span


class ObservationRoles:
    """The roles (_role) of Observations by their read codes, at one `now`: worked out once for all the Observations
    with the same codes of their own and no component (nearly every lab result). Shared by the selection and the scan
    of a request body (request_scan), which leave out the same Observations."""

    def __init__(self, terms: Terminology, windows: dict[str, tuple[datetime, datetime]] | None):
        self._terms = terms
        self._windows = windows
        self._roles: dict[tuple[str, ...], tuple[tuple[LabRead, ...], bool, tuple[datetime, datetime] | None]] = {}

    def of(self, codes: ReadCodes) -> tuple[tuple[LabRead, ...], bool, tuple[datetime, datetime] | None]:
        role = None if codes[1] else self._roles.get(codes[0])
        if role is None:
            role = _role(codes, self._terms, self._windows)
            if not codes[1]:
                self._roles[codes[0]] = role
        return role

    def out_of_reach(self, codes: ReadCodes, effective: datetime | None) -> bool:
        """A lab result dated outside the window of every analyte it holds: no rule can read it. One without a
        readable date is kept (the panel reports it unusable)."""
        _, lab, span = self.of(codes)
        return lab and span is not None and effective is not None and not span[0] <= effective <= span[1]


def _done_before(procedure: dict, since: datetime) -> bool:
    """A Procedure no rule can count: not in progress, and done before `since` or at no known time."""
    if procedure.get("status") == "in-progress":
        return False
    performed = procedure_performed(procedure)
    return performed is None or performed < since


def select_and_validate(
    resources: list[dict[str, Any]], patient_id: str, terms: Terminology, now: datetime | None = None,
    procedures_since: datetime | None = None, observation_codes: Mapping[int, ObservationClass] | None = None,
    roles: ObservationRoles | None = None,
) -> SelectedResources:
    """The resources the rules read, validated. With `now` (the evaluation time), lab Observations outside their
    look-back window are left out before validation (see the module's docstring); with `procedures_since`, so are
    Procedures that are not in progress and were done before it, or carry no date (no rule could count them).
    `observation_codes`: the Observations' read codes and dates as the record's gathering worked them out
    (prefetch.PatientRecord.observation_codes): such an Observation is not looked at again here; one not in it is.
    `roles`: the ObservationRoles at `now` that the call's body scan already used (request_scan), built here if None."""
    selected = SelectedResources()
    read = terms.read_loinc_codes
    if roles is None:
        roles = ObservationRoles(terms, lab_windows(terms, now) if now is not None else None)
    for resource in resources:
        # An Observation as gathering read it: its codes and date, without reading the resource again (thousands a
        # record); the very same dict only.
        known = observation_codes.get(id(resource)) if observation_codes is not None else None
        if known is not None and known[0] is resource:
            resource_type, codes, effective = "Observation", known[1], known[2]
        else:
            resource_type = resource.get("resourceType")
            if resource_type not in RELEVANT_TYPES:
                continue
            if resource_type == "Observation":
                # A panel (A19) holds the results the rules read in its components, under a code no rule reads.
                codes = read_codes(resource, read)
                if codes is None:  # most Observations of a record: rejected here, cheaply
                    continue
                effective = observation_effective(resource)
        lab = False
        if resource_type == "Observation":
            reads, lab, _ = roles.of(codes)
            if lab and roles.out_of_reach(codes, effective):
                continue
        elif resource_type == "Procedure" and procedures_since is not None and _done_before(resource, procedures_since):
            continue  # tested before the value sets below: the cheaper of two tests that both leave it out
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
            selected.lab_reads.append((effective, reads))
            continue
        if resource_type == "Condition":
            selected.condition_resources.append(resource)
            continue
        if resource_type in ("MedicationRequest", "MedicationStatement"):
            selected.medication_resources.append(resource)
            continue
        if resource_type == "Procedure":
            selected.procedure_resources.append(resource)
            continue
        issue = validate(resource)
        if issue:
            selected.skipped.append({"resource": resource_label(resource), "issue": issue})
            continue
        selected.by_type.setdefault(resource_type, []).append(resource)
    return selected


