"""Small FHIR R4 resources for tests, and PatientFacts built from them without HTTP (the selection and the facts the
service builds, at a fixed clock)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from cards import terminology
from cds_service.record.facts import PatientFacts, build_facts
from cds_service.record.selection import select_and_validate

from .conftest import NOW

PATIENT = "p1"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def born(years: float, now: datetime = NOW) -> str:
    """A birth date `years` before `now` (fractional years in days)."""
    return (now.date() - timedelta(days=round(years * 365.2425))).isoformat()


def birthday(years: int, days_after: int = 0, now: datetime = NOW) -> str:
    """The birth date of someone whose `years`th birthday was `days_after` days before `now` (0: today)."""
    day = now.date() - timedelta(days=days_after)
    try:
        return day.replace(year=day.year - years).isoformat()
    except ValueError:
        return date(day.year - years, 3, 1).isoformat()


def patient(birth_date: str | None = None, gender: str | None = None) -> dict:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": PATIENT}
    if birth_date:
        resource["birthDate"] = birth_date
    if gender:
        resource["gender"] = gender
    return resource


def when(days_ago: float, now: datetime = NOW) -> str:
    return (now - timedelta(days=days_ago)).isoformat()


def quantity(value: float, unit: str, comparator: str | None = None) -> dict:
    out: dict[str, Any] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    if comparator:
        out["comparator"] = comparator
    return out


def lab(rid: str, loinc: str, value: float, unit: str, days_ago: float = 1, *, comparator: str | None = None,
        high: float | None = None, flag: str | None = None, status: str = "final", now: datetime = NOW) -> dict:
    resource: dict[str, Any] = {
        "resourceType": "Observation", "id": rid, "status": status,
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "effectiveDateTime": when(days_ago, now),
        "valueQuantity": quantity(value, unit, comparator),
    }
    if high is not None:
        resource["referenceRange"] = [{"high": quantity(high, unit)}]
    if flag:
        resource["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": flag}]}]
    return resource


def panel(rid: str, components: list[tuple[str, float, str]], days_ago: float = 1, *, status: str = "final",
          code: str = "24323-8", now: datetime = NOW) -> dict:
    """A panel Observation (default: a comprehensive metabolic panel) whose results are its components."""
    return {
        "resourceType": "Observation", "id": rid, "status": status,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{PATIENT}"},
        "effectiveDateTime": when(days_ago, now),
        "component": [{"code": {"coding": [{"system": LOINC, "code": loinc}]}, "valueQuantity": quantity(value, unit)}
                      for loinc, value, unit in components],
    }


def condition(rid: str, code: str, system: str = ICD10CM, display: str | None = None, *, status: str = "active",
              **extra: Any) -> dict:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {
        "resourceType": "Condition", "id": rid,
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
        "code": {"coding": [coding]},
        "subject": {"reference": f"Patient/{PATIENT}"},
        **extra,
    }


def calcinosis_condition() -> dict:
    return condition("calcinosis", "L94.2", display="Calcinosis cutis")


def procedure(rid: str, status: str = "completed", code: str = "302497006", **performed: Any) -> dict:
    """A dialysis Procedure (haemodialysis by default), dated by performedDateTime or performedPeriod."""
    return {
        "resourceType": "Procedure", "id": rid, "status": status,
        "code": {"coding": [{"system": SNOMED, "code": code, "display": "Hemodialysis"}]},
        "subject": {"reference": f"Patient/{PATIENT}"},
        **performed,
    }


def medication_statement(rid: str, text: str, status: str = "active") -> dict:
    return {
        "resourceType": "MedicationStatement", "id": rid, "status": status,
        "medicationCodeableConcept": {"text": text},
        "subject": {"reference": f"Patient/{PATIENT}"},
    }


def facts_of(*resources: dict, birth_date: str | None = None, gender: str | None = None,
             now: datetime = NOW) -> PatientFacts:
    """The PatientFacts the service builds from these resources and a Patient, at `now`, without HTTP."""
    terms = terminology()
    record = [patient(birth_date, gender), *resources]
    selected = select_and_validate(record, PATIENT, terms, now=now)
    return build_facts(selected, patient_id=PATIENT, now=now, terms=terms)


def bundle(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
