"""Patient facts: the small, typed picture of one patient that every rule reads the same way.

Built from validated resources (resources.py) and the hook's draft orders (orders.py). Shared clinical judgements
live here, once: is there an active calcinosis (gate G0), renal insufficiency (A4), pregnancy (A9), the patient's age.
A rule never reads raw FHIR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import wraps
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterable

from .fhir_values import codeable_concepts, concept_text, parse_date, parse_datetime, prohibits, resource_label
from .labs import LabPanel, LabResult, assess_high, build_panel
from .medications import MedicationFact, read_medications
from .resources import SelectedResources
from .terminology import Match, Terminology, system_key

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
USABLE_OBSERVATION_STATUSES = frozenset({"final", "amended", "corrected"})
INACTIVE_ALLERGY = frozenset({"inactive", "resolved"})
EXCLUDED_ENCOUNTER = frozenset({"cancelled", "entered-in-error"})
EXCLUDED_REFERRAL = frozenset({"entered-in-error", "revoked"})
RECENT_CARE_DAYS = 365  # a referral or specialist encounter this recent means "already referred" (RULES.md R17, §3.15)
RECURRENT_INFECTION_DAYS = 365  # A8: two or more skin infections in the past 12 months = recurrent


_UNKNOWN = object()


def remembered(method: Callable) -> Callable:
    """A fact worked out once per call: PatientFacts describes one call's data, which do not change within it, and the
    rules ask for the same facts many times (renal insufficiency, the calcium measure...). What it returns is shared
    by every rule that asks, so it is immutable: a Finding, a LabResult, a tuple, a string or None."""
    name = method.__name__

    @wraps(method)
    def remembering(self, *args, **kwargs):
        key = (name, args, tuple(kwargs.items())) if kwargs else (name, args)
        value = self._remembered.get(key, _UNKNOWN)
        if value is _UNKNOWN:
            value = self._remembered[key] = method(self, *args, **kwargs)
        return value

    return remembering


def _status_code(concept: Any) -> str | None:
    for item in codeable_concepts(concept):
        for coding in codeable_concepts(item.get("coding")):
            if isinstance(coding.get("code"), str):
                return coding["code"]
    return None


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
    condition_resources: list[dict]  # read into ConditionFacts only when a value set a rule asks about could match
    labs: LabPanel
    medications: list[MedicationFact]  # active medications of the record
    draft_orders: list[MedicationFact]  # draftOrders of an order hook (empty on patient-view)
    procedures: list[dict]
    allergies: list[dict]
    service_requests: list[dict]
    encounters: list[dict]
    skipped: list[dict[str, str]]
    coded_observations: list[dict] = field(default_factory=list)  # e.g. pregnancy status (not numeric labs)
    missing_keys: frozenset[str] = frozenset()  # prefetch keys that could not be obtained (e.g. "allergies")
    # Conditions and medications are read leniently and validated as FHIR R4 only when a rule reads them (as lab
    # results are): an invalid one is then dropped and reported in invalid_on_read.
    validator: Callable[[dict], str | None] | None = field(default=None, repr=False, compare=False)
    _all_condition_matches: dict[str, list[tuple[ConditionFact, Match]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _remembered: dict[tuple, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _condition_facts: dict[int, ConditionFact | None] = field(default_factory=dict, init=False, repr=False, compare=False)
    _medication_value_sets: dict[int, frozenset[str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from .resources import ValidateOnRead

        self._on_read = ValidateOnRead(self.validator) if self.validator else None

    def _valid_resource(self, resource: dict, reference: str) -> bool:
        """Validate a record resource the first time a rule reads it; an invalid one is reported and not used."""
        return self._on_read is None or self._on_read(resource, reference)

    @property
    def invalid_on_read(self) -> list[dict[str, str]]:
        return self._on_read.invalid if self._on_read is not None else []

    def _valid_condition(self, condition: ConditionFact) -> bool:
        return self._valid_resource(condition.resource, condition.reference)

    def _condition_fact(self, resource: dict) -> ConditionFact | None:
        """The Condition read (once a call), or None when it does not count (refuted, entered in error)."""
        key = id(resource)
        try:
            return self._condition_facts[key]
        except KeyError:
            fact = self._condition_facts[key] = read_condition(resource, self.now)
            return fact

    def _matches_of_all_conditions(self) -> dict[str, list[tuple[ConditionFact, Match]]]:
        """Every Condition matched, once, against the value sets it could match (terminology's candidate index); a
        Condition whose code could match none is never read further."""
        if self._all_condition_matches is None:
            by_value_set: dict[str, list[tuple[ConditionFact, Match]]] = {}
            for resource in self.condition_resources:
                code = resource.get("code")
                names = self.terms.candidate_value_sets(code if isinstance(code, dict) else {})
                if not names or (condition := self._condition_fact(resource)) is None:
                    continue
                for name in sorted(names):
                    match = self.terms.value_sets[name].match_concept(condition.code)
                    if match is not None:
                        by_value_set.setdefault(name, []).append((condition, match))
            self._all_condition_matches = by_value_set
        return self._all_condition_matches

    def condition(self, reference: str) -> ConditionFact | None:
        """The (valid) Condition with this reference, e.g. an order's reasonReference."""
        for resource in self.condition_resources:
            if resource_label(resource) != reference or (condition := self._condition_fact(resource)) is None:
                continue
            if self._valid_condition(condition):
                return condition
        return None

    def _medication_candidates(self, medication: MedicationFact) -> frozenset[str]:
        """The value sets a medication's concepts could match, once a call (a superset of those they do match)."""
        key = id(medication)
        found = self._medication_value_sets.get(key)
        if found is None:
            found = self._medication_value_sets[key] = frozenset().union(
                *(self.terms.candidate_value_sets(concept) for concept in medication.concepts))
        return found

    def invalid_resources(self) -> list[dict[str, str]]:
        """Resources found not valid FHIR R4 when the rules read them (reported in skippedResources)."""
        return self.invalid_on_read + self.labs.invalid

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

    def age_under(self, years: float) -> bool | None:
        """True/False, or None when the birth date is unknown (a safety exclusion must then assume the worst)."""
        age = self.age_years
        return None if age is None else age < years

    def data_missing(self, *keys: str) -> list[str]:
        """Which of these prefetch keys could not be obtained for this call."""
        return [key for key in keys if key in self.missing_keys]

    # ---------- conditions ----------
    @remembered
    def conditions_in(self, value_set: str, *, active_only: bool = True) -> tuple[tuple[ConditionFact, Match], ...]:
        self.terms.value_set(value_set)  # an unknown name is an error, even when no Condition could match it
        return tuple((c, m) for c, m in self._matches_of_all_conditions().get(value_set, ())
                     if self._valid_condition(c) and (c.active or not active_only))

    @remembered
    def has_condition(self, value_set: str) -> Finding:
        found = self.conditions_in(value_set)
        return Finding(bool(found), tuple(condition_evidence(c, m) for c, m in found))

    @remembered
    def gate_conditions(self) -> tuple[ConditionFact, ...]:
        """The active calcinosis, calciphylaxis and tumoral calcinosis Conditions that pass gate G0."""
        seen, out = set(), []
        for value_set in ("calcinosis-cutis", "calciphylaxis", "tumoral-calcinosis"):
            for condition, _ in self.conditions_in(value_set):
                if condition.reference not in seen:
                    seen.add(condition.reference)
                    out.append(condition)
        return tuple(out)

    @remembered
    def calcinosis_described_as(self, value_set: str) -> Finding:
        """A word of `value_set` (e.g. "ulcerated", "painful") in the text of the calcinosis Condition itself."""
        vs = self.terms.value_set(value_set)
        evidence = []
        for condition in self.gate_conditions():
            texts = [condition.code.get("text")] + [
                c.get("display") for c in codeable_concepts(condition.code.get("coding"))
            ]
            for text in texts:
                if isinstance(text, str) and (word := vs.match_text(text)):
                    evidence.append({"reference": condition.reference, "text": text, "valueSet": value_set,
                                     "matchedBy": "text", "matched": word})
                    break
        return Finding(bool(evidence), tuple(evidence))

    @remembered
    def recurrent(self, value_set: str, *, episodes: int = 2, days: int = RECURRENT_INFECTION_DAYS) -> Finding:
        """A8: `episodes` or more Conditions of `value_set` (active or resolved, never refuted or entered in error)
        with onset (else recorded date) in the past `days`. Conditions on the same day count as one episode; an
        active one without any date is a current episode."""
        since = self.now - timedelta(days=days)
        days_seen: set = set()
        evidence = []
        for condition, match in self.conditions_in(value_set, active_only=False):
            when = condition.when
            if when is None:
                if not condition.active:
                    continue
                key = ("undated", condition.reference)
            elif since <= when <= self.now:
                key = when.date()
            else:
                continue
            if key in days_seen:
                continue
            days_seen.add(key)
            item = condition_evidence(condition, match)
            if when is not None:
                item["onset"] = when.date().isoformat()
            evidence.append(item)
        return Finding(len(days_seen) >= episodes, tuple(evidence) if len(days_seen) >= episodes else ())

    # ---------- labs ----------
    def latest_lab(self, analyte: str) -> LabResult | None:
        return self.labs.latest(analyte)

    @remembered
    def lab_high(self, analyte: str) -> Finding:
        """Latest result in its window is high (A3)."""
        result = self.labs.latest(analyte)
        if result is None:
            return Finding(False)
        assessment = assess_high(result, self.age_years)
        return Finding(bool(assessment.high), ({**result.evidence(), "assessment": assessment.basis},))

    @remembered
    def lab_above(self, analyte: str, threshold: float) -> Finding:
        """Latest result in its window exceeds a fixed threshold in the analyte's canonical unit."""
        result = self.labs.latest(analyte)
        if result is None or result.value <= threshold:
            return Finding(False)
        return Finding(True, ({**result.evidence(), "threshold": f"> {threshold:g} {result.unit}"},))

    # ---------- calcium (A3, RULES.md §3.8) ----------
    def same_day_albumin(self, result: LabResult) -> LabResult | None:
        """The latest albumin drawn on the same (local) day as `result`, for a calculated corrected calcium."""
        same_day = self.labs.in_window("albumin", where=lambda albumin: albumin.effective.date() == result.effective.date())
        return same_day[0] if same_day else None

    @remembered
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

    @remembered
    def calcium_measure(self) -> LabResult | None:
        """The calcium value to judge hypercalcemia by: ionized first (most reliable), then a lab-reported corrected
        calcium, then total calcium corrected by a same-day albumin (calculated), then total calcium."""
        for analyte in ("calcium-ionized", "calcium-corrected"):
            if (result := self.labs.latest(analyte)) is not None:
                return result
        return self.corrected_calcium() or self.labs.latest("calcium")

    @remembered
    def calcium_high(self) -> Finding:
        result = self.calcium_measure()
        if result is None:
            return Finding(False)
        assessment = assess_high(result, self.age_years)
        return Finding(bool(assessment.high), ({**result.evidence(), "assessment": assessment.basis},))

    @remembered
    def calcium_phosphate_product(self) -> tuple[float, LabResult, LabResult] | None:
        """Ca x P in mg2/dL2 (A3, R23): the latest phosphate in its window, times a total calcium (else a
        lab-reported corrected calcium) drawn within one day of it, both converted to mg/dL. None when the latest
        phosphate has no such partner: an older pair does not describe the patient now. A calculated corrected
        calcium is never used (RULES.md R23: corrected calcium only with the reviewer's approval; A3 allows a
        lab-corrected one)."""
        phosphate = self.labs.latest("phosphate")
        if phosphate is None:
            return None
        for analyte in ("calcium", "calcium-corrected"):
            partners = self.labs.in_window(
                analyte, where=lambda c: abs(phosphate.effective - c.effective) <= timedelta(days=1)
            )
            if partners:
                calcium = min(partners, key=lambda c: abs(phosphate.effective - c.effective))
                return calcium.value * phosphate.value, calcium, phosphate
        return None

    @remembered
    def hyperphosphatemia(self) -> Finding:
        """R04, R18: the latest phosphate (90 days) is high (A3); or a specific diagnosis of hyperphosphatemia
        (SNOMED 20165001 or the word; never E83.39 alone, which also covers other phosphorus disorders) that no
        recent phosphate contradicts."""
        high = self.lab_high("phosphate")
        if high:
            return high
        latest = self.labs.latest("phosphate")
        if latest is not None and assess_high(latest, self.age_years).high is False:
            return Finding(False)
        specific = [
            condition_evidence(c, m)
            for c, m in self.conditions_in("hyperphosphatemia")
            if not (m.by == "code" and m.system == self.terms.system_url("icd10cm"))
        ]
        if not specific:
            return Finding(False)
        if latest is None:
            specific.append({"note": "no phosphate result in the last 90 days to confirm it"})
        return Finding(True, tuple(specific))

    @remembered
    def hypercalcemia(self) -> Finding:
        """R01, R19: the calcium measure (ionized > corrected > total) is high (A3); or a hypercalcemia diagnosis
        (E83.52, SNOMED 66931009, the word) that no recent calcium contradicts."""
        high = self.calcium_high()
        if high:
            return high
        measure = self.calcium_measure()
        if measure is not None and assess_high(measure, self.age_years).high is False:
            return Finding(False)
        found = self.has_condition("hypercalcemia")
        if not found:
            return Finding(False)
        evidence = list(found.evidence)
        if measure is None:
            evidence.append({"note": "no calcium result in the last 90 days to confirm it"})
        return Finding(True, tuple(evidence))

    @remembered
    def calcium_above(self, threshold_mg_dl: float) -> Finding:
        """Total calcium, corrected where possible (lab-reported, else calculated from a same-day albumin), above an
        absolute threshold in mg/dL, at any age (R19's critical value 12.0 mg/dL). Ionized calcium is not compared
        with a total-calcium threshold."""
        result = self.labs.latest("calcium-corrected") or self.corrected_calcium() or self.labs.latest("calcium")
        if result is None or result.value <= threshold_mg_dl:
            return Finding(False)
        return Finding(True, ({**result.evidence(), "threshold": f"> {threshold_mg_dl:g} mg/dL"},))

    @remembered
    def dystrophic_context(self) -> Finding:
        """R02, R08a: dystrophic calcinosis is likely: the Condition says dystrophic, or a connective-tissue disease
        is present, or the latest calcium and phosphate were both measured and not high (A3)."""
        named = self.calcinosis_described_as("dystrophic-calcinosis")
        if named:
            return named
        ctd = self.has_condition("connective-tissue-disease")
        if ctd:
            return ctd
        calcium, phosphate = self.calcium_measure(), self.labs.latest("phosphate")
        if calcium is None or phosphate is None:
            return Finding(False)
        ca, p = assess_high(calcium, self.age_years), assess_high(phosphate, self.age_years)
        if ca.high is False and p.high is False:
            return Finding(True, (
                {**calcium.evidence(), "assessment": ca.basis},
                {**phosphate.evidence(), "assessment": p.basis},
            ))
        return Finding(False)

    # ---------- medications ----------
    @remembered
    def medications_in(self, value_set: str, *, include_drafts: bool = True) -> tuple[tuple[MedicationFact, Match], ...]:
        vs = self.terms.value_set(value_set)
        pool = self.medications + (self.draft_orders if include_drafts else [])
        found = []
        for medication in pool:
            if value_set not in self._medication_candidates(medication):
                continue  # none of its concepts could match the value set (terminology's candidate index)
            match = medication.match(vs)
            # Record medications are validated as FHIR R4 when a rule first reads them (draft orders, from the hook's
            # context, are read leniently on purpose: see orders.py).
            if match is not None and (medication.draft or self._valid_resource(medication.resource, medication.reference)):
                found.append((medication, match))
        return tuple(found)

    def has_value_set(self, name: str) -> bool:
        return name in self.terms.value_sets

    @remembered
    def taking(self, value_set: str) -> Finding:
        """An active medication of the record (not a draft order) in the value set."""
        found = self.medications_in(value_set, include_drafts=False)
        return Finding(bool(found), tuple(m.evidence(match) for m, match in found))

    # ---------- allergies, referrals, encounters ----------
    @remembered
    def allergy_to(self, value_set: str) -> Finding:
        """An AllergyIntolerance (allergy or intolerance) to a substance of the value set; inactive, resolved,
        refuted and entered-in-error records do not count. Unconfirmed ones do (a safety exclusion)."""
        vs = self.terms.value_set(value_set)
        evidence = []
        for allergy in self.allergies:
            clinical = _status_code(allergy.get("clinicalStatus"))
            verification = _status_code(allergy.get("verificationStatus"))
            if clinical in INACTIVE_ALLERGY or verification in EXCLUDED_VERIFICATION:
                continue
            concepts = [allergy.get("code")] + [
                substance
                for reaction in codeable_concepts(allergy.get("reaction"))
                for substance in [reaction.get("substance")]
                if isinstance(substance, dict)
            ]
            for concept in concepts:
                match = vs.match_concept(concept)
                if match is not None:
                    evidence.append({"reference": resource_label(allergy), **match.as_evidence()})
                    break
        return Finding(bool(evidence), tuple(evidence))

    @remembered
    def recent_referral(self, snomed_code: str, *, days: int = RECENT_CARE_DAYS) -> str | None:
        """A ServiceRequest with this SNOMED CT code authored in the last `days` (not entered in error or revoked)."""
        since = self.now - timedelta(days=days)
        snomed = self.terms.system_url("snomed")
        for request in self.service_requests:
            if request.get("status") in EXCLUDED_REFERRAL or prohibits(request):
                continue  # a "do not refer" request is no referral
            codes = {
                c.get("code")
                for c in codeable_concepts((request.get("code") or {}).get("coding"))
                if c.get("system") == snomed
            }
            when = parse_datetime(request.get("authoredOn")) or parse_datetime(request.get("occurrenceDateTime"))
            if snomed_code in codes and when is not None and when >= since:
                return resource_label(request)
        return None

    @remembered
    def recent_encounter(self, value_set: str, *, days: int = RECENT_CARE_DAYS) -> str | None:
        """An Encounter whose serviceType or type is in the value set, started in the last `days` or planned."""
        vs = self.terms.value_set(value_set)
        since = self.now - timedelta(days=days)
        for encounter in self.encounters:
            if encounter.get("status") in EXCLUDED_ENCOUNTER:
                continue
            period = encounter.get("period") if isinstance(encounter.get("period"), dict) else {}
            when = parse_datetime(period.get("start")) or parse_datetime(period.get("end"))
            if when is None or when < since:
                continue
            concepts = [encounter.get("serviceType")] + codeable_concepts(encounter.get("type"))
            if any(vs.match_concept(concept) is not None for concept in concepts if concept):
                return resource_label(encounter)
        return None

    # ---------- shared clinical judgements ----------
    @remembered
    def calcinosis(self) -> Finding:
        """Gate G0 (A1): an active calcinosis cutis, calciphylaxis or tumoral calcinosis Condition."""
        evidence = []
        for value_set in ("calcinosis-cutis", "calciphylaxis", "tumoral-calcinosis"):
            evidence.extend(condition_evidence(c, m) for c, m in self.conditions_in(value_set))
        return Finding(bool(evidence), tuple(evidence))

    @remembered
    def calciphylaxis(self) -> Finding:
        return self.has_condition("calciphylaxis")

    @remembered
    def tumoral_calcinosis(self) -> Finding:
        return self.has_condition("tumoral-calcinosis")

    @remembered
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

    @remembered
    def renal_insufficiency(self) -> Finding:
        """A4: latest eGFR < 60 (365 days), an RI condition (including acute kidney injury, which counts for drug
        safety, RULES.md §3.9), or dialysis. CKD stages 1-2 alone are not RI. In a child an eGFR below 60 still
        counts, with a note: the adult equations are not validated under 18, and for drug safety a low value is
        not ignored (a normal one never rules RI out anyway)."""
        evidence = list(self.egfr_below(60.0).evidence)
        evidence.extend(condition_evidence(c, m) for c, m in self.conditions_in("renal-insufficiency"))
        evidence.extend(self.dialysis().evidence)
        return Finding(bool(evidence), tuple(evidence))

    @remembered
    def severe_renal_insufficiency(self) -> Finding:
        """A4: eGFR < 30, CKD 4-5 / ESRD, or dialysis."""
        evidence = list(self.egfr_below(30.0).evidence)
        evidence.extend(condition_evidence(c, m) for c, m in self.conditions_in("severe-renal-insufficiency"))
        evidence.extend(self.dialysis().evidence)
        return Finding(bool(evidence), tuple(evidence))

    @remembered
    def lab_below(self, analyte: str, threshold: float) -> Finding:
        result = self.labs.latest(analyte)
        if result is None or result.value >= threshold:
            return Finding(False)
        return Finding(True, ({**result.evidence(), "threshold": f"< {threshold:g} {result.unit}"},))

    @remembered
    def egfr_below(self, threshold: float) -> Finding:
        found = self.lab_below("egfr", threshold)
        if found and self.is_child:
            item = {**found.evidence[0], "note": "adult eGFR equations are not validated under 18 years; counted for safety"}
            return Finding(True, (item,))
        return found

    @remembered
    def pregnant(self) -> Finding:
        """A9: an active pregnancy Condition (Z33.1, O00-O9A, Z3A, SNOMED 77386006, or the words), or a latest
        pregnancy-status Observation (LOINC 82810-3, final/amended/corrected, within its window) answered
        "pregnant". A "not pregnant" observation never cancels an active pregnancy Condition: for safety, any
        positive source counts."""
        evidence = [condition_evidence(c, m) for c, m in self.conditions_in("pregnancy")]
        status = self.pregnancy_status()
        if status is not None and status[0]:
            evidence.append(status[1])
        return Finding(bool(evidence), tuple(evidence))

    @remembered
    def pregnancy_status(self) -> tuple[bool, dict] | None:
        """(pregnant?, evidence) from the latest usable pregnancy-status Observation in its window, or None."""
        definition = self.terms.observations.get("pregnancy-status")
        if not definition:
            return None
        codes = {entry["code"] for entry in definition["codes"]}
        since = self.now - timedelta(days=int(definition["window_days"]))
        positive = {(e["system"], e["code"]) for e in definition["positive"]}
        negative = {(e["system"], e["code"]) for e in definition["negative"]}
        latest = None
        for observation in self.coded_observations:
            if observation.get("status") not in USABLE_OBSERVATION_STATUSES:
                continue
            loincs = {
                c.get("code") for c in codeable_concepts((observation.get("code") or {}).get("coding"))
                if system_key(c.get("system")) == "loinc"
            }
            if not loincs & codes:
                continue
            when = parse_datetime(observation.get("effectiveDateTime")) or parse_datetime(observation.get("issued"))
            if when is None or not (since <= when <= self.now + timedelta(hours=1)):
                continue
            if latest is None or when > latest[0]:
                latest = (when, observation)
        if latest is None:
            return None
        when, observation = latest
        answer = observation.get("valueCodeableConcept") if isinstance(observation.get("valueCodeableConcept"), dict) else {}
        answers = {
            (system_key(c.get("system")), c.get("code")) for c in codeable_concepts(answer.get("coding"))
        }
        evidence = {"reference": resource_label(observation), "effective": when.isoformat(), "loinc": "82810-3"}
        if answers & positive:
            return True, {**evidence, "value": "pregnant", "matchedBy": "code"}
        if answers & negative:
            return False, {**evidence, "value": "not pregnant", "matchedBy": "code"}
        text = concept_text(answer) or ""
        if self.terms.value_set("pregnancy").match_text(text):
            return True, {**evidence, "value": text, "matchedBy": "text"}
        return None


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
    missing_keys: Iterable[str] = (),
) -> PatientFacts:
    patients = selected.of("Patient")
    patient = patients[0] if patients else {}
    from .resources import validate

    labs = build_panel(selected.of("Observation") + selected.lab_observations, terms, now, validator=validate)
    coded_observations = [
        o for o in selected.of("Observation")
        if any(terms.observation_for_loinc(code) for code in _loinc_codes(o))
    ]
    medications = read_medications(
        selected.medication_resources,
        medications=selected.of("Medication"),
        active_only=True,
    )
    return PatientFacts(
        now=now,
        terms=terms,
        patient_id=patient_id,
        birth_date=parse_date(patient.get("birthDate")),
        sex=patient.get("gender") if isinstance(patient.get("gender"), str) else None,
        condition_resources=selected.condition_resources,
        labs=labs,
        medications=medications,
        draft_orders=list(draft_orders),
        procedures=[p for p in selected.of("Procedure")],
        allergies=[a for a in selected.of("AllergyIntolerance")],
        service_requests=[s for s in selected.of("ServiceRequest")],
        encounters=[e for e in selected.of("Encounter")],
        skipped=list(selected.skipped),
        coded_observations=coded_observations,
        missing_keys=frozenset(missing_keys),
        validator=validate,
    )


def _loinc_codes(resource: dict) -> list[str]:
    from .resources import observation_loinc_codes

    return observation_loinc_codes(resource)
