"""The benchmark's patients: small, typical, large and dense, each with calcinosis cutis, made by the repository alone.

Every record is generated from a seeded random generator (bench/records.py), so a fresh clone on any machine measures
the same patients, of the shape docs/performance.md gives (resources by type, bytes). Real Synthea exports are never
read, even when a folder of them is at hand: which records a machine happened to hold used to decide what was measured
(a fresh clone measured other patients than the documented ones), and the project must stand alone.

- **small**: an outpatient with a short record (6 encounters, 45 Observations, 15 of them of analytes the rules read).
- **typical**: an outpatient followed for years (22 encounters, 19 Conditions, 7 MedicationRequests, 10 Procedures,
  290 Observations: vital signs, surveys, lipid and metabolic panels; 51 of them of analytes the rules read).
- **large**: the typical record with its Observations replicated (new ids, dates over the last five years) up to
  5,000: the same mix of codes the rules read and codes they do not.
- **dense**: a dialysis patient: 3,000 Observations, every one of an analyte the rules read (phosphate, calcium,
  ionized calcium, albumin, creatinine, eGFR; 500 draws over two years), end-stage CKD on haemodialysis three times
  a week (312 Procedures), calcinosis cutis, and the drugs such a patient takes.

small, typical and large also get monthly phosphate, calcium, albumin and eGFR results (LOINC 2777-1, 17861-6, 1751-7,
98979-8) dated relative to `now`, so that the results fall in the rules' look-back windows on any day. The requests
are built with the project's own cds_service.service.request_builder, as a client with full prefetch sends them: every
resource of a type in its key, the worst case of a client that ignores the templates' search parameters.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from cds_service.service.request_builder import request_from_resources
from cds_service.service.discovery import services

from . import records as r

ROOT = Path(__file__).resolve().parent.parent
SERVICE_ID = "calcinosis-cutis-patient-view"

SIZES = ("small", "typical", "large", "dense")
LARGE_OBSERVATIONS = 5000
DENSE_OBSERVATIONS = 3000

# (LOINC, display, UCUM unit, latest value, spread): a high phosphate, a normal calcium and albumin, and an eGFR of
# CKD stage 4, so that the cause, referral and diet rules fire.
LAB_SERIES = (
    ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", "mg/dL", 5.9, 0.6),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 9.6, 0.4),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.7, 0.3),
    ("98979-8", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by "
                "Creatinine-based formula (CKD-EPI 2021)", "mL/min/{1.73_m2}", 24.0, 4.0),
)


@dataclass(frozen=True)
class Outpatient:
    """How many of each part an outpatient record has (see the module's docstring for what they add up to)."""
    encounters: int
    vitals: int  # encounters with vital signs (6 values and a blood pressure panel)
    metabolic: int  # encounters with a metabolic panel (9 values, 3 of them read by the rules)
    lipid: int  # encounters with a lipid panel (4 values)
    smoking: int  # encounters with a smoking status survey
    conditions: int  # besides calcinosis cutis
    medications: int
    procedures: int
    immunizations: int
    lab_points: int  # monthly results of each LAB_SERIES analyte


OUTPATIENTS = {
    "small": Outpatient(encounters=6, vitals=3, metabolic=1, lipid=0, smoking=3, conditions=3, medications=1,
                        procedures=1, immunizations=4, lab_points=3),
    "typical": Outpatient(encounters=22, vitals=22, metabolic=9, lipid=4, smoking=15, conditions=18, medications=7,
                          procedures=10, immunizations=10, lab_points=6),
}
SEEDS = {"small": 1, "typical": 2, "large": 2, "dense": 4}  # large is the typical record, grown


@dataclass
class Patient:
    size: str
    resources: list[dict]

    @property
    def patient_id(self) -> str:
        return next(res["id"] for res in self.resources if res.get("resourceType") == "Patient")

    def count(self, resource_type: str | None = None) -> int:
        return sum(1 for res in self.resources if resource_type is None or res.get("resourceType") == resource_type)

    def request(self) -> dict[str, Any]:
        """A patient-view request with full prefetch, as an EHR that satisfies every template would send it."""
        return request_from_resources(services()[SERVICE_ID], self.resources,
                                      hook_instance=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                                   f"calcinosis-cds-bench/{self.size}")))

    def body(self) -> bytes:
        return orjson.dumps(self.request())

    def request_without_prefetch(self, fhir_server: str) -> dict[str, Any]:
        """The same call with no prefetch at all: the service has to fetch every key from `fhir_server`."""
        body = self.request()
        body.pop("prefetch")
        body["fhirServer"] = fhir_server
        return body

    def shape(self) -> dict[str, Any]:
        """What the docs promise of this patient: resources by type, those the request carries, its bytes, and how
        many Observations are of an analyte a rule reads."""
        from cards import terminology

        reads = terminology().read_loinc_codes.__contains__
        request = self.request()
        carried = sum(len(v.get("entry", [])) if v.get("resourceType") == "Bundle" else 1
                      for v in request["prefetch"].values() if isinstance(v, dict))
        read = sum(1 for res in self.resources if res.get("resourceType") == "Observation"
                   and any(c.get("system") == r.LOINC and reads(c.get("code", "")) for c in res["code"]["coding"]))
        return {"resources": self.count(), "by_type": dict(sorted(Counter(res["resourceType"]
                                                                           for res in self.resources).items())),
                "request_resources": carried, "request_bytes": len(orjson.dumps(request)),
                "observations_read": read}


def outpatient(spec: Outpatient, now: datetime, seed: int, label: str) -> list[dict]:
    rng = random.Random(seed)
    person = r.patient(rng, now, label)
    ref = f"urn:uuid:{person['id']}"
    out: list[dict] = [person, r.calcinosis(rng, ref, now)]
    for index, (code, display) in enumerate(r.CONDITIONS[:spec.conditions]):
        acute = "Acute" in display or "Viral" in display
        out.append(r.condition(rng, ref, r.SNOMED, code, display, now - timedelta(days=rng.randint(200, 3000)),
                               active=not acute))
    for code, display, status in r.MEDICATIONS[:spec.medications]:
        out.append(r.medication_request(rng, ref, code, display, status, now - timedelta(days=rng.randint(30, 900))))
    for visit in range(spec.encounters):
        when = now - timedelta(days=14 + visit * 90 + rng.randint(0, 20), hours=rng.randint(0, 10))
        visit_encounter = r.encounter(rng, ref, when)
        eid = visit_encounter["id"]
        out.append(visit_encounter)
        if visit < spec.vitals:
            out.extend(r.observation(rng, ref, eid, "vital-signs", loinc, display, when,
                                     r.quantity(mean + rng.uniform(-spread, spread), unit))
                       for loinc, display, unit, mean, spread in r.VITALS)
            out.append(r.blood_pressure(rng, ref, eid, when))
        for wanted, panel, code, display in ((spec.metabolic, r.METABOLIC_PANEL, "51990-0", "Basic Metabolic Panel"),
                                             (spec.lipid, r.LIPID_PANEL, "57698-3", "Lipid Panel")):
            if visit < wanted:
                results = [r.observation(rng, ref, eid, "laboratory", loinc, display_, when,
                                         r.quantity(mean + rng.uniform(-spread, spread), unit))
                           for loinc, display_, unit, mean, spread in panel]
                out.extend(results)
                out.append(r.diagnostic_report(rng, ref, eid, when, code, display, [o["id"] for o in results]))
        if visit < spec.smoking:
            out.append(r.smoking_status(rng, ref, eid, when))
        if visit < spec.procedures:
            code, display = r.PROCEDURES[visit % len(r.PROCEDURES)]
            out.append(r.procedure(rng, ref, code, display, when, encounter_id=eid))
        if visit < spec.immunizations:
            out.append(r.immunization(rng, ref, when))
        bill = r.claim(rng, ref, when, [visit_encounter["type"][0]])
        out += [bill, r.explanation_of_benefit(rng, ref, bill["id"], when)]
    for point in range(spec.lab_points):
        when = now - timedelta(days=7 + 30 * point, hours=rng.randint(0, 8))
        for loinc, display, unit, latest, spread in LAB_SERIES:
            value = latest if point == 0 else latest + rng.uniform(-spread, spread)
            out.append(r.observation(rng, ref, None, "laboratory", loinc, display, when, r.quantity(value, unit)))
    return out


def grown(resources: list[dict], observations: int, now: datetime, seed: int) -> list[dict]:
    """The record with its Observations replicated (new ids, dates within the last five years) up to `observations`."""
    rng = random.Random(seed)
    originals = [res for res in resources if res.get("resourceType") == "Observation"]
    out = list(resources)
    span = int(timedelta(days=5 * 365).total_seconds())
    for index in range(max(0, observations - len(originals))):
        twin = copy.deepcopy(originals[index % len(originals)])
        twin["id"] = r.uuid_from(rng)
        when = now - timedelta(seconds=rng.randint(3600, span))
        twin["effectiveDateTime"], twin["issued"] = r.iso(when), r.iso(when + timedelta(hours=2))
        out.append(twin)
    return out


# The dialysis patient's analytes: (LOINC, display, UCUM unit, mean, spread, latest, reference range low-high).
DENSE_ANALYTES = (
    ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", "mg/dL", 6.2, 1.2, 6.8, (2.5, 4.5)),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 9.0, 0.5, 9.3, (8.6, 10.3)),
    ("1994-3", "Calcium.ionized [Moles/volume] in Blood", "mmol/L", 1.15, 0.08, 1.18, (1.12, 1.32)),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.6, 0.3, 3.5, (3.5, 5.2)),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 7.5, 1.5, 8.1, (0.6, 1.2)),
    ("98979-8", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by "
                "Creatinine-based formula (CKD-EPI 2021)", "mL/min/{1.73_m2}", 7.0, 2.0, 6.0, (60.0, 120.0)),
)
DENSE_CONDITIONS = (
    (r.SNOMED, "46177005", "End-stage renal disease (disorder)"),
    (r.SNOMED, "433146000", "Chronic kidney disease stage 5 (disorder)"),
    (r.SNOMED, "105502003", "Dependence on renal dialysis (finding)"),
    (r.SNOMED, "91478007", "Secondary hyperparathyroidism (disorder)"),
    (r.SNOMED, "20165001", "Hyperphosphatemia"),
    (r.SNOMED, "707323002", "Anemia in chronic kidney disease (disorder)"),
    (r.SNOMED, "59621000", "Essential hypertension (disorder)"),
    (r.SNOMED, "44054006", "Diabetes mellitus type 2 (disorder)"),
    (r.SNOMED, "55822004", "Hyperlipidemia (disorder)"),
)
# Drugs without an RxNorm code where none is at hand to vouch for: an EHR's free-text entries look like these.
DENSE_MEDICATIONS = (
    (None, "sevelamer carbonate 800 MG Oral Tablet"),
    (None, "calcitriol 0.25 MCG Oral Capsule"),
    (None, "cinacalcet 30 MG Oral Tablet"),
    (None, "epoetin alfa 4000 UNT/ML Injectable Solution"),
    ("197361", "Amlodipine 5 MG Oral Tablet"),
    ("314076", "lisinopril 10 MG Oral Tablet"),
)


def dialysis_patient(observations: int, now: datetime, seed: int) -> list[dict]:
    rng = random.Random(seed)
    person = r.patient(rng, now, "Dense")
    ref = f"urn:uuid:{person['id']}"
    out: list[dict] = [person, r.calcinosis(rng, ref, now)]
    out += [r.condition(rng, ref, system, code, display, now - timedelta(days=rng.randint(800, 3000)),
                        category="problem-list-item") for system, code, display in DENSE_CONDITIONS]
    out += [r.medication_request(rng, ref, code, display, "active", now - timedelta(days=rng.randint(30, 700)))
            for code, display in DENSE_MEDICATIONS]
    for week in range(104):  # haemodialysis three times a week (two days apart, then three) for two years
        for days_back in (1, 3, 5):
            when = now - timedelta(days=7 * week + days_back, hours=rng.randint(0, 3))
            out.append(r.procedure(rng, ref, "302497006", "Hemodialysis (procedure)", when, minutes=240))
    for month in range(24):
        out.append(r.encounter(rng, ref, now - timedelta(days=10 + 30 * month, hours=rng.randint(0, 8)),
                               "185347001", "Encounter for problem (procedure)"))
    draws = -(-observations // len(DENSE_ANALYTES))
    step = timedelta(days=725) / max(1, draws)
    made = 0
    for draw in range(draws):  # newest first; the newest draw sets each analyte's latest value
        when = now - timedelta(days=2) - step * draw - timedelta(minutes=rng.randint(0, 600))
        for loinc, display, unit, mean, spread, latest, (low, high) in DENSE_ANALYTES:
            if made == observations:
                break
            value = latest if draw == 0 else mean + rng.uniform(-spread, spread)
            out.append(r.observation(rng, ref, None, "laboratory", loinc, display, when, r.quantity(value, unit),
                                     reference_range=(low, high, unit)))
            made += 1
    return out


def benchmark_patients(
    sizes: tuple[str, ...] = SIZES,
    *,
    now: datetime | None = None,
    large_observations: int = LARGE_OBSERVATIONS,
    dense_observations: int = DENSE_OBSERVATIONS,
) -> dict[str, Patient]:
    """The benchmark's patients by size; the same records on every machine for a given `now` (and the same shape,
    bytes included, whatever `now` is)."""
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    patients = {}
    for size in sizes:
        if size in OUTPATIENTS:
            resources = outpatient(OUTPATIENTS[size], now, SEEDS[size], size.title())
        elif size == "large":
            resources = grown(outpatient(OUTPATIENTS["typical"], now, SEEDS[size], "Large"), large_observations,
                              now, seed=3)
        elif size == "dense":
            resources = dialysis_patient(dense_observations, now, SEEDS[size])
        else:
            raise ValueError(f"unknown patient size {size!r}; known: {', '.join(SIZES)}")
        patients[size] = Patient(size=size, resources=resources)
    return patients
