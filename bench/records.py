"""FHIR R4 resources as an EHR export writes them (Synthea's style: urn:uuid references, US Core profiles, encounters
with their vital signs and panels, claims), built from a seeded random generator so that every run and every machine
gets the same records. bench/data.py composes them into the benchmark's patients.

Every date is relative to the benchmark's `now` (so that results fall inside the rules' look-back windows on any
day) and written with a fixed width, so a record's size in bytes does not depend on the day either.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"

# (LOINC, display, UCUM unit, mean, spread)
VITALS = (
    ("8302-2", "Body Height", "cm", 170.0, 10.0),
    ("29463-7", "Body Weight", "kg", 78.0, 12.0),
    ("39156-5", "Body Mass Index", "kg/m2", 27.0, 3.0),
    ("8867-4", "Heart rate", "/min", 74.0, 10.0),
    ("9279-1", "Respiratory rate", "/min", 15.0, 2.0),
    ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}", 2.0, 2.0),
)
# Three of these (creatinine 38483-4, calcium 49765-1, eGFR 33914-3) are analytes the rules read; the rest are not.
METABOLIC_PANEL = (
    ("2339-0", "Glucose", "mg/dL", 95.0, 15.0),
    ("6299-2", "Urea Nitrogen", "mg/dL", 18.0, 5.0),
    ("38483-4", "Creatinine", "mg/dL", 1.9, 0.4),
    ("49765-1", "Calcium", "mg/dL", 9.4, 0.5),
    ("2947-0", "Sodium", "mmol/L", 140.0, 3.0),
    ("6298-4", "Potassium", "mmol/L", 4.4, 0.5),
    ("2069-3", "Chloride", "mmol/L", 103.0, 3.0),
    ("20565-8", "Carbon Dioxide", "mmol/L", 25.0, 3.0),
    ("33914-3", "Glomerular filtration rate/1.73 sq M.predicted", "mL/min/{1.73_m2}", 38.0, 8.0),
)
LIPID_PANEL = (
    ("2093-3", "Total Cholesterol", "mg/dL", 190.0, 25.0),
    ("2571-8", "Triglycerides", "mg/dL", 140.0, 30.0),
    ("18262-6", "Low Density Lipoprotein Cholesterol", "mg/dL", 110.0, 20.0),
    ("2085-9", "High Density Lipoprotein Cholesterol", "mg/dL", 50.0, 8.0),
)
# A long-standing outpatient's problem list, as Synthea writes it (SNOMED CT disorders, findings and situations).
CONDITIONS = (
    ("59621000", "Essential hypertension (disorder)"),
    ("44054006", "Diabetes mellitus type 2 (disorder)"),
    ("15777000", "Prediabetes"),
    ("162864005", "Body mass index 30+ - obesity (finding)"),
    ("40055000", "Chronic sinusitis (disorder)"),
    ("55822004", "Hyperlipidemia (disorder)"),
    ("431855005", "Chronic kidney disease stage 1 (disorder)"),
    ("73595000", "Stress (finding)"),
    ("160903007", "Full-time employment (finding)"),
    ("314529007", "Medication review due (situation)"),
    ("66383009", "Gingivitis (disorder)"),
    ("444814009", "Viral sinusitis (disorder)"),
    ("195662009", "Acute viral pharyngitis (disorder)"),
    ("10509002", "Acute bronchitis (disorder)"),
    ("424393004", "Reports of violence in the environment (finding)"),
    ("423315002", "Limited social contact (finding)"),
    ("741062008", "Not in labor force (finding)"),
    ("706893006", "Victim of intimate partner abuse (finding)"),
)
MEDICATIONS = (
    ("314076", "lisinopril 10 MG Oral Tablet", "active"),
    ("316049", "Hydrochlorothiazide 25 MG", "active"),
    ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", "active"),
    ("197361", "Amlodipine 5 MG Oral Tablet", "active"),
    ("312961", "Simvastatin 20 MG Oral Tablet", "stopped"),
    ("313782", "Acetaminophen 325 MG Oral Tablet", "stopped"),
    ("849574", "Naproxen sodium 220 MG Oral Tablet", "stopped"),
)
PROCEDURES = (
    ("430193006", "Medication reconciliation (procedure)"),
    ("171207006", "Depression screening (procedure)"),
    ("710824005", "Assessment of health and social care needs (procedure)"),
    ("428211000124100", "Assessment of substance use (procedure)"),
    ("454711000124102", "Depression screening using Patient Health Questionnaire Two-Item score (procedure)"),
)


def uuid_from(rng: random.Random) -> str:
    return "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                          0x8000 | rng.getrandbits(14), rng.getrandbits(48))


def iso(when: datetime) -> str:
    """A fixed-width instant: the same number of bytes whatever `now` is."""
    return when.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def concept(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def patient(rng: random.Random, now: datetime, label: str) -> dict:
    pid = uuid_from(rng)
    return {
        "resourceType": "Patient", "id": pid,
        "meta": {"profile": [US_CORE + "us-core-patient"]},
        "identifier": [{"system": "https://github.com/synthetichealth/synthea", "value": pid},
                       {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR",
                                             "display": "Medical Record Number"}], "text": "Medical Record Number"},
                        "system": "http://hospital.smarthealthit.org", "value": pid}],
        "name": [{"use": "official", "family": "Bench", "given": [label], "prefix": ["Mx."]}],
        "telecom": [{"system": "phone", "value": "555-%03d-%04d" % (rng.randint(100, 999), rng.randint(0, 9999)),
                     "use": "home"}],
        "gender": rng.choice(["female", "male"]),
        "birthDate": (now - timedelta(days=365 * rng.randint(52, 70) + rng.randint(0, 364))).strftime("%Y-%m-%d"),
        "address": [{"line": ["%d Bench Street" % rng.randint(1, 999)], "city": "Boston", "state": "MA",
                     "postalCode": "02118", "country": "US"}],
        "communication": [{"language": concept("urn:ietf:bcp:47", "en-US", "English (United States)")}],
    }


def condition(rng: random.Random, ref: str, system: str, code: str, display: str, onset: datetime,
              active: bool = True, category: str = "encounter-diagnosis") -> dict:
    return {
        "resourceType": "Condition", "id": uuid_from(rng),
        "meta": {"profile": [US_CORE + "us-core-condition-encounter-diagnosis"]},
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active" if active else "resolved"}]},
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
        "category": [{"coding": [{"system": CONDITION_CATEGORY, "code": category}]}],
        "code": concept(system, code, display),
        "subject": {"reference": ref},
        "onsetDateTime": iso(onset),
        "recordedDate": iso(onset),
        **({} if active else {"abatementDateTime": iso(onset + timedelta(days=rng.randint(7, 30)))}),
    }


def calcinosis(rng: random.Random, ref: str, now: datetime) -> dict:
    """Calcinosis cutis (ICD-10-CM L94.2) on the problem list: gate G0 passes, so the rules do their real work."""
    return condition(rng, ref, ICD10CM, "L94.2", "Calcinosis cutis", now - timedelta(days=400),
                     category="problem-list-item")


def encounter(rng: random.Random, ref: str, when: datetime, code: str = "185349003",
              display: str = "Encounter for check up (procedure)") -> dict:
    return {
        "resourceType": "Encounter", "id": uuid_from(rng),
        "meta": {"profile": [US_CORE + "us-core-encounter"]},
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [concept(SNOMED, code, display)],
        "subject": {"reference": ref},
        "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                "code": "PPRF", "display": "primary performer"}],
                                   "text": "primary performer"}],
                         "individual": {"display": "Dr. Bench Clinician"}}],
        "period": {"start": iso(when), "end": iso(when + timedelta(minutes=30))},
        "serviceProvider": {"display": "Bench Clinic"},
    }


def observation(rng: random.Random, ref: str, encounter_id: str | None, category: str, loinc: str, display: str,
                when: datetime, value: dict, *, reference_range: tuple[float, float, str] | None = None) -> dict:
    resource = {
        "resourceType": "Observation", "id": uuid_from(rng),
        "meta": {"profile": [US_CORE + ("us-core-observation-lab" if category == "laboratory"
                                        else "us-core-vital-signs")]},
        "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": category, "display": category.title()}]}],
        "code": concept(LOINC, loinc, display),
        "subject": {"reference": ref},
        **({"encounter": {"reference": f"urn:uuid:{encounter_id}"}} if encounter_id else {}),
        "effectiveDateTime": iso(when),
        "issued": iso(when + timedelta(hours=2)),
        **value,
    }
    if reference_range is not None:
        low, high, unit = reference_range
        resource["referenceRange"] = [{"low": {"value": low, "unit": unit, "system": UCUM, "code": unit},
                                       "high": {"value": high, "unit": unit, "system": UCUM, "code": unit}}]
    return resource


def quantity(value: float, unit: str) -> dict:
    return {"valueQuantity": {"value": round(value, 2), "unit": unit, "system": UCUM, "code": unit}}


def blood_pressure(rng: random.Random, ref: str, encounter_id: str, when: datetime) -> dict:
    resource = observation(rng, ref, encounter_id, "vital-signs", "85354-9", "Blood pressure panel with all children "
                           "optional", when, {})
    resource["component"] = [
        {"code": concept(LOINC, "8462-4", "Diastolic Blood Pressure"), **quantity(rng.uniform(70, 90), "mm[Hg]")},
        {"code": concept(LOINC, "8480-6", "Systolic Blood Pressure"), **quantity(rng.uniform(110, 145), "mm[Hg]")},
    ]
    return resource


def smoking_status(rng: random.Random, ref: str, encounter_id: str, when: datetime) -> dict:
    return observation(rng, ref, encounter_id, "survey", "72166-2", "Tobacco smoking status", when,
                       {"valueCodeableConcept": concept(SNOMED, "266919005", "Never smoked tobacco (finding)")})


def medication_request(rng: random.Random, ref: str, code: str | None, display: str, status: str,
                       authored: datetime) -> dict:
    medication = concept(RXNORM, code, display) if code else {"text": display}
    return {
        "resourceType": "MedicationRequest", "id": uuid_from(rng),
        "meta": {"profile": [US_CORE + "us-core-medicationrequest"]},
        "status": status, "intent": "order",
        "medicationCodeableConcept": medication,
        "subject": {"reference": ref},
        "authoredOn": iso(authored),
        "requester": {"display": "Dr. Bench Clinician"},
        "dosageInstruction": [{"sequence": 1, "text": "Take as directed", "asNeededBoolean": False,
                               "timing": {"repeat": {"frequency": 1, "period": 1.0, "periodUnit": "d"}}}],
    }


def procedure(rng: random.Random, ref: str, code: str, display: str, when: datetime, minutes: int = 15,
              encounter_id: str | None = None) -> dict:
    return {
        "resourceType": "Procedure", "id": uuid_from(rng),
        "meta": {"profile": [US_CORE + "us-core-procedure"]},
        "status": "completed",
        "code": concept(SNOMED, code, display),
        "subject": {"reference": ref},
        **({"encounter": {"reference": f"urn:uuid:{encounter_id}"}} if encounter_id else {}),
        "performedPeriod": {"start": iso(when), "end": iso(when + timedelta(minutes=minutes))},
        "location": {"display": "Bench Clinic"},
    }


def claim(rng: random.Random, ref: str, when: datetime, items: list[dict]) -> dict:
    return {
        "resourceType": "Claim", "id": uuid_from(rng), "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "claim", "patient": {"reference": ref},
        "billablePeriod": {"start": iso(when), "end": iso(when + timedelta(minutes=30))},
        "created": iso(when), "provider": {"display": "Bench Clinic"},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority",
                                 "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Medicare"}}],
        "item": [{"sequence": n + 1, "productOrService": item} for n, item in enumerate(items)],
        "total": {"value": round(rng.uniform(80, 400), 2), "currency": "USD"},
    }


def explanation_of_benefit(rng: random.Random, ref: str, claim_id: str, when: datetime) -> dict:
    return {
        "resourceType": "ExplanationOfBenefit", "id": uuid_from(rng), "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "claim", "patient": {"reference": ref},
        "billablePeriod": {"start": iso(when), "end": iso(when + timedelta(minutes=30))},
        "created": iso(when), "insurer": {"display": "Medicare"}, "provider": {"display": "Bench Clinic"},
        "claim": {"reference": f"urn:uuid:{claim_id}"}, "outcome": "complete",
        "insurance": [{"focal": True, "coverage": {"display": "Medicare"}}],
        "payment": {"amount": {"value": round(rng.uniform(50, 300), 2), "currency": "USD"}},
    }


def diagnostic_report(rng: random.Random, ref: str, encounter_id: str, when: datetime, code: str, display: str,
                      results: list[str]) -> dict:
    return {
        "resourceType": "DiagnosticReport", "id": uuid_from(rng), "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}],
        "code": concept(LOINC, code, display),
        "subject": {"reference": ref}, "encounter": {"reference": f"urn:uuid:{encounter_id}"},
        "effectiveDateTime": iso(when), "issued": iso(when),
        "result": [{"reference": f"urn:uuid:{oid}"} for oid in results],
    }


def immunization(rng: random.Random, ref: str, when: datetime) -> dict:
    return {
        "resourceType": "Immunization", "id": uuid_from(rng), "status": "completed",
        "vaccineCode": concept(CVX, "140", "Influenza, seasonal, injectable, preservative free"),
        "patient": {"reference": ref}, "occurrenceDateTime": iso(when), "primarySource": True,
    }
