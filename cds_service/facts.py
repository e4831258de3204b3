"""Patient facts: the small, typed picture of one patient that every rule reads the same way.

Built from validated resources (resources.py) and the hook's draft orders (orders.py). Shared clinical judgements
live here, once: is there an active calcinosis (gate G0), renal insufficiency (A4), pregnancy (A9), the patient's age.
A rule never reads raw FHIR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterable

from .fhir_values import as_list, codeable_concepts, concept_text, parse_date, parse_datetime, resource_label
from .labs import LabPanel, LabResult, assess_high, build_panel
from .medications import MedicationFact, read_medications
from .resources import SelectedResources
from .terminology import Match, Terminology

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})


def _status_code(concept: Any) -> str | None:
    for item in codeable_concepts(concept):
        for coding in codeable_concepts(item.get("coding")):
            if isinstance(coding.get("code"), str):
                return coding["code"]
    return None


@dataclass(frozen=True)
class ConditionFact:
    reference: str
    code: dict  # the CodeableConcept
    active: bool
    onset: datetime | None
    recorded: datetime | None
    severity: dict | None
    body_site: list[dict]
    resource: dict = field(repr=False, compare=False, hash=False)

    @property
    def text(self) -> str | None:
        return concept_text(self.code)

    @property
    def when(self) -> datetime | None:
        return self.onset or self.recorded


def read_condition(resource: dict, now: datetime) -> ConditionFact | None:
    """A ConditionFact, or None when the condition does not count at all (refuted, entered in error)."""
    verification = _status_code(resource.get("verificationStatus"))
    if verification in EXCLUDED_VERIFICATION:
        return None
    clinical = _status_code(resource.get("clinicalStatus"))
    abatement = parse_datetime(resource.get("abatementDateTime")) or parse_datetime(
        (resource.get("abatementPeriod") or {}).get("end") if isinstance(resource.get("abatementPeriod"), dict) else None
    )
    has_abatement = abatement is not None or any(
        resource.get(k) not in (None, False) for k in ("abatementAge", "abatementRange", "abatementString", "abatementBoolean")
    )
    if clinical is not None:
        active = clinical in ACTIVE_CLINICAL
    else:
        # No clinicalStatus: active unless it has abated in the past (A1).
        active = not has_abatement or (abatement is not None and abatement > now)
    onset = parse_datetime(resource.get("onsetDateTime")) or parse_datetime(
        (resource.get("onsetPeriod") or {}).get("start") if isinstance(resource.get("onsetPeriod"), dict) else None
    )
    return ConditionFact(
        reference=resource_label(resource),
        code=resource.get("code") if isinstance(resource.get("code"), dict) else {},
        active=active,
        onset=onset,
        recorded=parse_datetime(resource.get("recordedDate")),
        severity=resource.get("severity") if isinstance(resource.get("severity"), dict) else None,
        body_site=codeable_concepts(resource.get("bodySite")),
        resource=resource,
    )


@dataclass(frozen=True)
class Finding:
    """A fact with the data that supports it, for a card's evidence (A11)."""

    present: bool
    evidence: tuple[dict, ...] = ()

    def __bool__(self) -> bool:
        return self.present


@dataclass
class PatientFacts:
    now: datetime
    terms: Terminology
    patient_id: str
    birth_date: date | None
    sex: str | None
    conditions: list[ConditionFact]
    labs: LabPanel
    medications: list[MedicationFact]  # active medications of the record
    draft_orders: list[MedicationFact]  # draftOrders of an order hook (empty on patient-view)
    procedures: list[dict]
    allergies: list[dict]
    service_requests: list[dict]
    encounters: list[dict]
    skipped: list[dict[str, str]]

    # ---------- demographics ----------
    @property
    def age_years(self) -> float | None:
        if self.birth_date is None:
            return None
        return (self.now.date() - self.birth_date).days / 365.2425

    @property
    def is_child(self) -> bool:
        age = self.age_years
        return age is not None and age < 18

    # ---------- conditions ----------
    def conditions_in(self, value_set: str, *, active_only: bool = True) -> list[tuple[ConditionFact, Match]]:
        vs = self.terms.value_set(value_set)
        found = []
        for condition in self.conditions:
            if active_only and not condition.active:
                continue
            match = vs.match_concept(condition.code)
            if match is not None:
                found.append((condition, match))
        return found

    def has_condition(self, value_set: str) -> Finding:
        found = self.conditions_in(value_set)
        return Finding(bool(found), tuple(condition_evidence(c, m) for c, m in found))

    # ---------- labs ----------
    def latest_lab(self, analyte: str) -> LabResult | None:
        return self.labs.latest(analyte)

    def lab_high(self, analyte: str) -> Finding:
        """Latest result in its window is high (A3)."""
        result = self.labs.latest(analyte)
        if result is None:
            return Finding(False)
        assessment = assess_high(result, self.age_years)
        return Finding(bool(assessment.high), ({**result.evidence(), "assessment": assessment.basis},))

    def lab_above(self, analyte: str, threshold: float) -> Finding:
        """Latest result in its window exceeds a fixed threshold in the analyte's canonical unit."""
        result = self.labs.latest(analyte)
        if result is None or result.value <= threshold:
            return Finding(False)
        return Finding(True, ({**result.evidence(), "threshold": f"> {threshold:g} {result.unit}"},))

    # ---------- calcium (A3, RULES.md §3.8) ----------
    def same_day_albumin(self, result: LabResult) -> LabResult | None:
        """The latest albumin drawn on the same (local) day as `result`, for a calculated corrected calcium."""
        for albumin in self.labs.in_window("albumin"):
            if albumin.effective.date() == result.effective.date():
                return albumin
        return None

    def corrected_calcium(self) -> LabResult | None:
        """The latest total calcium corrected by a same-day albumin: Ca + 0.8 x (4.0 - albumin g/dL), "calculated"."""
        total = self.labs.latest("calcium")
        if total is None:
            return None
        albumin = self.same_day_albumin(total)
        if albumin is None:
            return None
        return LabResult(
            analyte="calcium-corrected",
            value=total.value + 0.8 * (4.0 - albumin.value),
            unit="mg/dL",
            reported_value=total.value + 0.8 * (4.0 - albumin.value),
            reported_unit="mg/dL",
            effective=total.effective,
            loinc="",
            reference=f"{total.reference} + {albumin.reference}",
            reference_high=total.reference_high,  # the total calcium range applies to the corrected value
            calculated=True,
        )

    def calcium_measure(self) -> LabResult | None:
        """The calcium value to judge hypercalcemia by: ionized first (most reliable), then a lab-reported corrected
        calcium, then total calcium corrected by a same-day albumin (calculated), then total calcium."""
        for analyte in ("calcium-ionized", "calcium-corrected"):
            if (result := self.labs.latest(analyte)) is not None:
                return result
        return self.corrected_calcium() or self.labs.latest("calcium")

    def calcium_high(self) -> Finding:
        result = self.calcium_measure()
        if result is None:
            return Finding(False)
        assessment = assess_high(result, self.age_years)
        return Finding(bool(assessment.high), ({**result.evidence(), "assessment": assessment.basis},))

    def calcium_phosphate_product(self) -> tuple[float, LabResult, LabResult] | None:
        """Ca x P in mg2/dL2 from the latest pair of a total (or lab-corrected) calcium and a phosphate drawn within
        one day of each other, both in their look-back windows (A3, R23). None when no such pair exists."""
        phosphates = self.labs.in_window("phosphate")
        calciums = self.labs.in_window("calcium") or self.labs.in_window("calcium-corrected")
        best = None
        for phosphate in phosphates:
            for calcium in calciums:
                if abs(phosphate.effective - calcium.effective) <= timedelta(days=1):
                    latest = max(phosphate.effective, calcium.effective)
                    if best is None or latest > best[0]:
                        best = (latest, calcium, phosphate)
        if best is None:
            return None
        _, calcium, phosphate = best
        return calcium.value * phosphate.value, calcium, phosphate

    # ---------- medications ----------
    def medications_in(self, value_set: str, *, include_drafts: bool = True) -> list[tuple[MedicationFact, Match]]:
        vs = self.terms.value_set(value_set)
        pool = self.medications + (self.draft_orders if include_drafts else [])
        found = []
        for medication in pool:
            match = medication.match(vs)
            if match is not None:
                found.append((medication, match))
        return found

    # ---------- shared clinical judgements ----------
    def calcinosis(self) -> Finding:
        """Gate G0 (A1): an active calcinosis cutis, calciphylaxis or tumoral calcinosis Condition."""
        evidence = []
        for value_set in ("calcinosis-cutis", "calciphylaxis", "tumoral-calcinosis"):
            evidence.extend(condition_evidence(c, m) for c, m in self.conditions_in(value_set))
        return Finding(bool(evidence), tuple(evidence))

    def calciphylaxis(self) -> Finding:
        return self.has_condition("calciphylaxis")

    def tumoral_calcinosis(self) -> Finding:
        return self.has_condition("tumoral-calcinosis")

    def dialysis(self) -> Finding:
        evidence = [condition_evidence(c, m) for c, m in self.conditions_in("dialysis")]
        vs = self.terms.value_set("dialysis")
        for procedure in self.procedures:
            if procedure.get("status") in ("entered-in-error", "not-done"):
                continue
            match = vs.match_concept(procedure.get("code"))
            if match is not None:
                evidence.append({"reference": resource_label(procedure), **match.as_evidence()})
        return Finding(bool(evidence), tuple(evidence))

    def renal_insufficiency(self) -> Finding:
        """A4: latest eGFR < 60, an RI condition, or dialysis. CKD stages 1-2 alone are not RI."""
        evidence = list(self.lab_below("egfr", 60.0).evidence)
        evidence.extend(condition_evidence(c, m) for c, m in self.conditions_in("renal-insufficiency"))
        evidence.extend(self.dialysis().evidence)
        return Finding(bool(evidence), tuple(evidence))

    def severe_renal_insufficiency(self) -> Finding:
        """A4: eGFR < 30, CKD 4-5 / ESRD, or dialysis."""
        evidence = list(self.lab_below("egfr", 30.0).evidence)
        evidence.extend(condition_evidence(c, m) for c, m in self.conditions_in("severe-renal-insufficiency"))
        evidence.extend(self.dialysis().evidence)
        return Finding(bool(evidence), tuple(evidence))

    def lab_below(self, analyte: str, threshold: float) -> Finding:
        result = self.labs.latest(analyte)
        if result is None or result.value >= threshold:
            return Finding(False)
        return Finding(True, ({**result.evidence(), "threshold": f"< {threshold:g} {result.unit}"},))

    def pregnant(self) -> Finding:
        """A9: an active pregnancy condition (Z33.1, O00-O9A, Z3A, SNOMED 77386006)."""
        return self.has_condition("pregnancy")


def condition_evidence(condition: ConditionFact, match: Match) -> dict:
    out = {"reference": condition.reference, **match.as_evidence()}
    if condition.text:
        out["text"] = condition.text
    return out


def build_facts(
    selected: SelectedResources,
    *,
    patient_id: str,
    now: datetime,
    terms: Terminology,
    draft_orders: Iterable[MedicationFact] = (),
) -> PatientFacts:
    patients = selected.of("Patient")
    patient = patients[0] if patients else {}
    conditions = [c for c in (read_condition(r, now) for r in selected.of("Condition")) if c is not None]
    labs = build_panel(selected.of("Observation"), terms, now)
    medications = read_medications(
        selected.of("MedicationRequest") + selected.of("MedicationStatement"),
        medications=selected.of("Medication"),
        active_only=True,
    )
    return PatientFacts(
        now=now,
        terms=terms,
        patient_id=patient_id,
        birth_date=parse_date(patient.get("birthDate")),
        sex=patient.get("gender") if isinstance(patient.get("gender"), str) else None,
        conditions=conditions,
        labs=labs,
        medications=medications,
        draft_orders=list(draft_orders),
        procedures=[p for p in selected.of("Procedure")],
        allergies=[a for a in selected.of("AllergyIntolerance")],
        service_requests=[s for s in selected.of("ServiceRequest")],
        encounters=[e for e in selected.of("Encounter")],
        skipped=list(selected.skipped),
    )
