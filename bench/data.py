"""Benchmark patients: small (~50 resources), typical (~500) and large (~5,000 Observations), each with calcinosis.

The records come from real Synthea exports when they are present (../shared/data/synthea beside the repository, or
BENCH_SYNTHEA_DIR), else from a generator below that writes records of the same shape (encounters with vital signs and
metabolic panels, claims, immunisations, conditions, medications). Either way each patient then gets:

- an active calcinosis cutis Condition (ICD-10-CM L94.2), so that gate G0 passes and the rules do real work;
- a series of phosphate, calcium, albumin and eGFR results (LOINC 2777-1, 17861-6, 1751-7, 98979-8, UCUM units)
  dated relative to the benchmark's `now`, so that the results fall inside the rules' look-back windows on any day.

The large patient's Observations are the record's own Observations replicated (new ids, dates shifted into the last
five years) until there are 5,000: the same realistic mix of codes the rules read (calcium, creatinine, eGFR,
phosphate...) and codes they do not (vital signs, lipids, questionnaires).

Nothing here is used by the service or the test suite's clinical tests; the requests are built with the project's own
cds_service.service.request_builder, exactly as a client with full prefetch would send them.
"""

from __future__ import annotations

import copy
import json
import os
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cds_service.service.request_builder import request_from_resources, resources_of_bundle
from cds_service.service.discovery import services

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SYNTHEA = ROOT.parent / "shared" / "data" / "synthea"
SERVICE_ID = "calcinosis-cutis-patient-view"

SIZES = ("small", "typical", "large")
TYPICAL_RESOURCES = 500
LARGE_OBSERVATIONS = 5000

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

# (LOINC, display, UCUM unit, latest value, spread) of the lab series every benchmark patient gets: a high phosphate,
# a normal calcium and albumin, and an eGFR of CKD stage 4, so that the cause, referral and diet rules all fire.
LAB_SERIES = (
    ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", "mg/dL", 5.9, 0.6),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 9.6, 0.4),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.7, 0.3),
    ("98979-8", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by "
                "Creatinine-based formula (CKD-EPI 2021)", "mL/min/{1.73_m2}", 24.0, 4.0),
)


@dataclass
class Patient:
    size: str
    source: str  # "synthea:<file>" or "generated"
    resources: list[dict]

    @property
    def patient_id(self) -> str:
        return next(r["id"] for r in self.resources if r.get("resourceType") == "Patient")

    def count(self, resource_type: str | None = None) -> int:
        return sum(1 for r in self.resources if resource_type is None or r.get("resourceType") == resource_type)

    def request(self) -> dict[str, Any]:
        """A patient-view request with full prefetch, as an EHR that satisfies every template would send it."""
        return request_from_resources(services()[SERVICE_ID], self.resources, hook_instance=str(uuid.uuid5(uuid.NAMESPACE_URL, f"calcinosis-cds-bench/{self.size}")))

    def request_without_prefetch(self, fhir_server: str) -> dict[str, Any]:
        """The same call with no prefetch at all: the service has to fetch every key from `fhir_server`."""
        body = self.request()
        body.pop("prefetch")
        body["fhirServer"] = fhir_server
        return body


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _patient_reference(resources: list[dict], patient_id: str) -> str:
    """The patient reference style of the record (Synthea uses urn:uuid:<id>)."""
    for resource in resources:
        subject = resource.get("subject")
        if isinstance(subject, dict) and isinstance(subject.get("reference"), str):
            return subject["reference"]
    return f"Patient/{patient_id}"


def calcinosis_condition(patient_ref: str, now: datetime, rid: str) -> dict:
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                           "code": "confirmed"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                  "code": "problem-list-item"}]}],
        "code": {"coding": [{"system": ICD10CM, "code": "L94.2", "display": "Calcinosis cutis"}],
                 "text": "Calcinosis cutis"},
        "subject": {"reference": patient_ref},
        "onsetDateTime": _iso(now - timedelta(days=400)),
        "recordedDate": _iso(now - timedelta(days=380)),
    }


def lab_observation(patient_ref: str, rid: str, loinc: str, display: str, unit: str, value: float,
                    when: datetime) -> dict:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": "laboratory", "display": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
        "subject": {"reference": patient_ref},
        "effectiveDateTime": _iso(when),
        "issued": _iso(when + timedelta(hours=3)),
        "valueQuantity": {"value": round(value, 2), "unit": unit, "system": UCUM, "code": unit},
    }


def add_calcinosis_and_labs(resources: list[dict], now: datetime, points: int, rng: random.Random) -> list[dict]:
    """The record plus an active calcinosis cutis and `points` results of each analyte of LAB_SERIES, one a month."""
    patient_id = next(r["id"] for r in resources if r.get("resourceType") == "Patient")
    ref = _patient_reference(resources, patient_id)
    added = [calcinosis_condition(ref, now, f"bench-calcinosis-{patient_id[:8]}")]
    for index in range(points):
        when = now - timedelta(days=7 + 30 * index, hours=rng.randint(0, 8))
        for loinc, display, unit, latest, spread in LAB_SERIES:
            value = latest if index == 0 else latest + rng.uniform(-spread, spread)
            added.append(lab_observation(ref, f"bench-{loinc}-{index}-{patient_id[:8]}", loinc, display, unit, value,
                                         when))
    return resources + added


def replicate_observations(resources: list[dict], target: int, now: datetime, rng: random.Random) -> list[dict]:
    """The record with its Observations replicated (new ids, dates within the last five years) up to `target`."""
    observations = [r for r in resources if r.get("resourceType") == "Observation"]
    extra = target - len(observations)
    if extra <= 0 or not observations:
        return resources
    out = list(resources)
    span = int(timedelta(days=5 * 365).total_seconds())
    for index in range(extra):
        original = observations[index % len(observations)]
        copy_ = copy.deepcopy(original)
        copy_["id"] = f"{original.get('id', 'obs')}-r{index // len(observations) + 1}"
        when = now - timedelta(seconds=rng.randint(3600, span))
        for key in ("effectiveDateTime", "issued"):
            if key in copy_:
                copy_[key] = _iso(when)
        if isinstance(copy_.get("effectivePeriod"), dict):
            copy_["effectivePeriod"] = {"start": _iso(when), "end": _iso(when)}
        out.append(copy_)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Synthea records


def synthea_dir() -> Path | None:
    path = Path(os.environ.get("BENCH_SYNTHEA_DIR") or DEFAULT_SYNTHEA)
    return path if path.is_dir() and any(path.glob("*.json")) else None


def _living(resources: list[dict]) -> bool:
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), {})
    return not patient.get("deceasedDateTime") and patient.get("deceasedBoolean") is not True


def synthea_records(directory: Path) -> dict[str, tuple[str, list[dict]]]:
    """size -> (file name, resources): the smallest living record, the one closest to 500 resources, and the one with
    the most Observations (to be replicated); a record is used once when there are enough of them."""
    records = []
    for path in sorted(directory.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        resources = resources_of_bundle(bundle)
        if sum(1 for r in resources if r.get("resourceType") == "Patient") == 1 and _living(resources):
            records.append((path.name, resources))
    if not records:
        raise ValueError(f"no usable Synthea record in {directory}")
    small = min(records, key=lambda rec: len(rec[1]))
    rest = [rec for rec in records if rec is not small] or records
    typical = min(rest, key=lambda rec: abs(len(rec[1]) - TYPICAL_RESOURCES))
    rest = [rec for rec in rest if rec is not typical] or rest
    large = max(rest, key=lambda rec: sum(1 for r in rec[1] if r.get("resourceType") == "Observation"))
    return {"small": small, "typical": typical, "large": large}


# ---------------------------------------------------------------------------------------------------------------------
# Generated records (when no Synthea data is at hand): the same shape, from a seeded generator.

VITALS = (
    ("8302-2", "Body Height", "cm", 170.0, 10.0),
    ("29463-7", "Body Weight", "kg", 78.0, 12.0),
    ("39156-5", "Body Mass Index", "kg/m2", 27.0, 3.0),
    ("8867-4", "Heart rate", "/min", 74.0, 10.0),
    ("9279-1", "Respiratory rate", "/min", 15.0, 2.0),
    ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}", 2.0, 2.0),
)
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
CONDITIONS = (
    ("431855005", "Chronic kidney disease stage 1 (disorder)"),
    ("59621000", "Essential hypertension (disorder)"),
    ("44054006", "Diabetes mellitus type 2 (disorder)"),
    ("15777000", "Prediabetes"),
    ("162864005", "Body mass index 30+ - obesity (finding)"),
    ("40055000", "Chronic sinusitis (disorder)"),
)
MEDICATIONS = (
    ("316049", "Hydrochlorothiazide 25 MG"),
    ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    ("314076", "lisinopril 10 MG Oral Tablet"),
)


def _uuid(rng: random.Random) -> str:
    return "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                          0x8000 | rng.getrandbits(14), rng.getrandbits(48))


def generated_record(encounters: int, now: datetime, seed: int) -> list[dict]:
    """A Synthea-shaped record with `encounters` visits over the last years (about 24 resources a visit)."""
    rng = random.Random(seed)
    pid = _uuid(rng)
    ref = f"urn:uuid:{pid}"
    out: list[dict] = [{
        "resourceType": "Patient", "id": pid, "gender": rng.choice(["female", "male"]),
        "birthDate": (now - timedelta(days=365 * rng.randint(45, 75))).date().isoformat(),
        "name": [{"use": "official", "family": "Bench", "given": [f"Patient{seed}"]}],
        "address": [{"city": "Boston", "state": "MA", "country": "US"}],
    }]
    for code, display in CONDITIONS[: max(1, min(len(CONDITIONS), encounters // 3))]:
        out.append({
            "resourceType": "Condition", "id": _uuid(rng),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                               "code": "confirmed"}]},
            "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display},
            "subject": {"reference": ref},
            "onsetDateTime": _iso(now - timedelta(days=rng.randint(400, 3000))),
        })
    for code, display in MEDICATIONS[: max(1, min(len(MEDICATIONS), encounters // 4))]:
        out.append({
            "resourceType": "MedicationRequest", "id": _uuid(rng), "status": "active", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                      "code": code, "display": display}], "text": display},
            "subject": {"reference": ref}, "authoredOn": _iso(now - timedelta(days=rng.randint(30, 900))),
            "dosageInstruction": [{"sequence": 1, "text": "Take as directed", "asNeededBoolean": False}],
        })
    for visit in range(encounters):
        when = now - timedelta(days=14 + visit * 90 + rng.randint(0, 20), hours=rng.randint(0, 10))
        eid = _uuid(rng)
        out.append({
            "resourceType": "Encounter", "id": eid, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [{"coding": [{"system": SNOMED, "code": "185349003",
                                  "display": "Encounter for check up (procedure)"}]}],
            "subject": {"reference": ref}, "period": {"start": _iso(when), "end": _iso(when + timedelta(minutes=15))},
        })
        panels = [("vital-signs", VITALS), ("laboratory", METABOLIC_PANEL)]
        if visit % 3 == 0:
            panels.append(("laboratory", LIPID_PANEL))
        obs_ids = []
        for category, panel in panels:
            for loinc, display, unit, mean, spread in panel:
                oid = _uuid(rng)
                obs_ids.append(oid)
                out.append({
                    "resourceType": "Observation", "id": oid, "status": "final",
                    "category": [{"coding": [{"system": OBS_CATEGORY, "code": category, "display": category}]}],
                    "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
                    "subject": {"reference": ref}, "encounter": {"reference": f"urn:uuid:{eid}"},
                    "effectiveDateTime": _iso(when), "issued": _iso(when + timedelta(hours=2)),
                    "valueQuantity": {"value": round(mean + rng.uniform(-spread, spread), 2), "unit": unit,
                                      "system": UCUM, "code": unit},
                })
        out.append({
            "resourceType": "DiagnosticReport", "id": _uuid(rng), "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "51990-0", "display": "Basic Metabolic Panel"}]},
            "subject": {"reference": ref}, "encounter": {"reference": f"urn:uuid:{eid}"},
            "effectiveDateTime": _iso(when), "issued": _iso(when),
            "result": [{"reference": f"urn:uuid:{oid}"} for oid in obs_ids],
        })
        out.append({
            "resourceType": "Claim", "id": _uuid(rng), "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
            "use": "claim", "patient": {"reference": ref}, "created": _iso(when),
            "billablePeriod": {"start": _iso(when), "end": _iso(when + timedelta(minutes=15))},
            "provider": {"display": "Bench Clinic"}, "priority": {"coding": [{"code": "normal"}]},
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Medicare"}}],
            "total": {"value": 129.16, "currency": "USD"},
        })
        if visit % 4 == 0:
            out.append({
                "resourceType": "Immunization", "id": _uuid(rng), "status": "completed",
                "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140",
                                            "display": "Influenza, seasonal, injectable, preservative free"}]},
                "patient": {"reference": ref}, "occurrenceDateTime": _iso(when), "primarySource": True,
            })
    return out


GENERATED_ENCOUNTERS = {"small": 2, "typical": 20, "large": 20}


# ---------------------------------------------------------------------------------------------------------------------


def benchmark_patients(
    sizes: tuple[str, ...] = SIZES,
    *,
    now: datetime | None = None,
    source: str = "auto",
    large_observations: int = LARGE_OBSERVATIONS,
) -> dict[str, Patient]:
    """The benchmark's patients by size. source: auto (Synthea when present, else generated), synthea, generated."""
    now = now or datetime.now(timezone.utc)
    rng = random.Random(7)
    directory = synthea_dir() if source in ("auto", "synthea") else None
    if source == "synthea" and directory is None:
        raise SystemExit("no Synthea records found (set BENCH_SYNTHEA_DIR, or use --data generated)")
    records: dict[str, tuple[str, list[dict]]] = {}
    if directory is not None:
        records = {size: (f"synthea:{name}", res) for size, (name, res) in synthea_records(directory).items()}
    else:
        records = {size: ("generated", generated_record(GENERATED_ENCOUNTERS[size], now, seed=index + 1))
                   for index, size in enumerate(SIZES)}
    patients = {}
    for size in sizes:
        label, resources = records[size]
        resources = add_calcinosis_and_labs(copy.deepcopy(resources), now, points=3 if size == "small" else 6,
                                            rng=rng)
        if size == "large":
            resources = replicate_observations(resources, large_observations, now, rng)
        patients[size] = Patient(size=size, source=label, resources=resources)
    return patients
