"""FHIR R4 proposals that suggestions carry (Part A10), built and validated with the fhir.resources R4B models.

Every proposal is for the clinician to accept or not: status draft, intent proposal, the patient as subject, a reason
pointing at the Condition that made the rule fire, and a dose only where the article gives one (R13, minocycline).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable

from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.nutritionorder import NutritionOrder
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.record.json_text import canonical_json, parse_json

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


_MODELS = {"ServiceRequest": ServiceRequest, "NutritionOrder": NutritionOrder, "MedicationRequest": MedicationRequest}
# What varies between patients is filled in after validation: the patient's reference, the reasons and the time.
# Placeholders of the same FHIR types stand in for them while the shape is validated, so the filled-in proposal is
# as valid as the validated one: the patient id is a FHIR id (protocol.py checks it), a reason is the reference of a
# Condition validated as FHIR R4, and the time is an ISO 8601 instant.
_PATIENT_PLACEHOLDER = {"reference": "Patient/placeholder"}
_REASON_PLACEHOLDER = [{"reference": "Condition/placeholder"}]
_TIME_PLACEHOLDER = "2000-01-01T00:00:00+00:00"


@lru_cache(maxsize=2048)
def _validated_shape(resource_type: str, shape_json: bytes) -> str:
    """The proposal's shape validated with the R4B models, once per shape; as JSON without unset fields (no nulls
    or empty values, per the CDS Hooks JSON rules)."""
    return _MODELS[resource_type].model_validate(parse_json(shape_json)).model_dump_json()


def _build(data: dict[str, Any], *, patient_field: str, patient_id: str, reasons: list[dict[str, str]],
           time_field: str | None = None, time: str | None = None) -> dict[str, Any]:
    """Validate the proposal's shape (cached), then fill in the patient, the reasons and the time."""
    data[patient_field] = _PATIENT_PLACEHOLDER
    if reasons:
        data["reasonReference"] = _REASON_PLACEHOLDER
    if time_field:
        data[time_field] = _TIME_PLACEHOLDER
    proposal = parse_json(_validated_shape(data["resourceType"], canonical_json(data)))
    proposal[patient_field] = {"reference": f"Patient/{patient_id}"}
    if reasons:
        proposal["reasonReference"] = reasons
    if time_field:
        proposal[time_field] = time
    return proposal


def _reasons(reason_references: Iterable[str]) -> list[dict[str, str]]:
    return [{"reference": ref} for ref in dict.fromkeys(reason_references) if ref.startswith("Condition/")]


def _service_request(patient_id: str, category: tuple[str, str], code: dict, reason_references: Iterable[str],
                     note: str | None) -> dict:
    data: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "category": [{"coding": [{"system": SNOMED, "code": category[0], "display": category[1]}]}],
        "code": code,
    }
    if note:
        data["note"] = [{"text": note}]
    return _build(data, patient_field="subject", patient_id=patient_id, reasons=_reasons(reason_references))


def referral(patient_id: str, snomed_code: str, display: str, reason_references: Iterable[str] = (), note: str | None = None) -> dict:
    """A referral to a specialty, as a ServiceRequest proposal (SNOMED CT 'Referral to ...' procedure)."""
    code = {"coding": [{"system": SNOMED, "code": snomed_code, "display": display}], "text": display}
    return _service_request(patient_id, ("3457005", "Patient referral"), code, reason_references, note)


def referral_by_text(patient_id: str, text: str, reason_references: Iterable[str] = (), note: str | None = None) -> dict:
    """A referral named by text only, where no code for the service was verified, as a ServiceRequest proposal."""
    return _service_request(patient_id, ("3457005", "Patient referral"), {"text": text}, reason_references, note)


def lab_order(patient_id: str, loinc_code: str, display: str, reason_references: Iterable[str] = (), note: str | None = None) -> dict:
    """A laboratory test, as a ServiceRequest proposal coded in LOINC."""
    code = {"coding": [{"system": LOINC, "code": loinc_code, "display": display}], "text": display}
    return _service_request(patient_id, ("108252007", "Laboratory procedure"), code, reason_references, note)


def diet_order(
    patient_id: str,
    *,
    diet_code: tuple[str, str] | None,
    diet_text: str,
    nutrient: tuple[str, str] | None = None,
    note: str | None = None,
    datetime_ordered: str,
) -> dict:
    """A NutritionOrder proposal with an oral diet; the amount of any restriction is left to the dietitian."""
    oral_diet: dict[str, Any] = {"type": [{"text": diet_text}]}
    if diet_code:
        oral_diet["type"][0]["coding"] = [{"system": SNOMED, "code": diet_code[0], "display": diet_code[1]}]
    if nutrient:
        oral_diet["nutrient"] = [{"modifier": {"coding": [{"system": SNOMED, "code": nutrient[0], "display": nutrient[1]}]}}]
    data: dict[str, Any] = {
        "resourceType": "NutritionOrder",
        "status": "draft",
        "intent": "proposal",
        "oralDiet": oral_diet,
    }
    if note:
        data["note"] = [{"text": note}]
    return _build(data, patient_field="patient", patient_id=patient_id, reasons=[], time_field="dateTime",
                  time=datetime_ordered)


def medication_proposal(
    patient_id: str,
    *,
    rxnorm: tuple[str, str] | None,
    text: str,
    reason_references: Iterable[str] = (),
    dose_mg_per_day: float | None = None,
    route: tuple[str, str] | None = None,
    note: str | None = None,
) -> dict:
    """A MedicationRequest proposal; a dose only when the caller has one from the article."""
    concept: dict[str, Any] = {"text": text}
    if rxnorm:
        concept["coding"] = [{"system": RXNORM, "code": rxnorm[0], "display": rxnorm[1]}]
    data: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": concept,
    }
    if dose_mg_per_day is not None:
        dosage: dict[str, Any] = {
            "text": f"{dose_mg_per_day:g} mg once daily",
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [
                {"doseQuantity": {"value": dose_mg_per_day, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}
            ],
        }
        if route:
            dosage["route"] = {"coding": [{"system": SNOMED, "code": route[0], "display": route[1]}]}
        data["dosageInstruction"] = [dosage]
    if note:
        data["note"] = [{"text": note}]
    return _build(data, patient_field="subject", patient_id=patient_id, reasons=_reasons(reason_references))
