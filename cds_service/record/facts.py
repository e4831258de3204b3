"""Patient facts: the typed picture of one patient's record that every rule reads the same way.

What the record says, read leniently and once: the patient's age, Conditions matched to value sets, lab results in
canonical units, active medications and the hook's draft orders, allergies, referrals, encounters, procedures, coded
observations. What the record *means* clinically (renal insufficiency, hyperphosphatemia, pregnancy...) is defined
once in the knowledge layer (cards/definitions/), on top of these facts; a rule never reads raw FHIR itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import wraps
from typing import Any, Callable, Iterable, TypeVar

from .codes import loinc_codes, system_key
from .conditions import EXCLUDED_VERIFICATION, ConditionFact, condition_evidence, read_condition, status_code
from .fhir_values import code_in, codeable_concepts, concept_text, parse_date, parse_datetime, prohibits, resource_label
from .labs import LabPanel, LabResult, build_panel, observation_effective
from .medications import MedicationFact, read_medications
from .procedures import ProcedureFact, procedure_performed
from .selection import SelectedResources
from .terminology import Match, Terminology
from .validation import ValidateOnRead, validate

USABLE_OBSERVATION_STATUSES = frozenset({"final", "amended", "corrected"})
INACTIVE_ALLERGY = frozenset({"inactive", "resolved"})
EXCLUDED_ENCOUNTER = frozenset({"cancelled", "entered-in-error"})
EXCLUDED_REFERRAL = frozenset({"entered-in-error", "revoked"})

_UNKNOWN = object()
Result = TypeVar("Result")


def age_in_years(birth: date, on: date) -> float:
    """Completed years plus the part of the current year of age: exactly 18.0 on the 18th birthday (a count of days
    divided by an average year's length puts some birthdays a day early or late, and the age limits are birthdays)."""
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    last, following = _birthday(birth, birth.year + years), _birthday(birth, birth.year + years + 1)
    return years + (on - last).days / (following - last).days


def _birthday(birth: date, year: int) -> date:
    try:
        return birth.replace(year=year)
    except ValueError:  # born on 29 February: in a common year the birthday is taken to be 1 March
        return date(year, 3, 1)


def once_per_call(function: Callable[..., Result]) -> Callable[..., Result]:
    """A fact, or a clinical definition, worked out once per call: the facts describe one call's data, which do not
    change within it, and the rules ask for the same ones many times (renal insufficiency is read by six rules). The
    first argument is the PatientFacts; what it returns is shared by every rule that asks, so it is immutable: a
    Finding, a LabResult, a tuple, a string or None."""

    @wraps(function)
    def remembering(facts: "PatientFacts", *args: Any, **kwargs: Any) -> Result:
        key = (function, args, tuple(kwargs.items())) if kwargs else (function, args)
        value = facts._remembered.get(key, _UNKNOWN)
        if value is _UNKNOWN:
            value = facts._remembered[key] = function(facts, *args, **kwargs)
        return value

    return remembering


@dataclass(frozen=True, slots=True)
class Finding:
    """A fact with the data that supports it, for a card's evidence (decision A11)."""

    present: bool
    evidence: tuple[dict, ...] = ()

    def __bool__(self) -> bool:
        return self.present


@dataclass(frozen=True, slots=True)
class CodedAnswer:
    """The latest usable answer of a coded Observation (e.g. pregnancy status): positive, negative, or its text."""

    answer: str  # "positive", "negative" or "text"
    text: str | None
    evidence: dict


@dataclass
class PatientFacts:
    now: datetime
    terms: Terminology
    patient_id: str
    birth_date: date | None
    condition_resources: list[dict]  # read into ConditionFacts only when a value set a rule asks about could match
    labs: LabPanel
    medications: list[MedicationFact]  # active medications of the record
    draft_orders: list[MedicationFact]  # draftOrders of an order hook (empty on patient-view)
    procedures: list[dict]  # validated when a rule reads them, like Conditions
    allergies: list[dict]
    service_requests: list[dict]
    encounters: list[dict]
    skipped: list[dict[str, str]]
    coded_observations: list[dict] = field(default_factory=list)  # e.g. pregnancy status (not numeric labs)
    missing_keys: frozenset[str] = frozenset()  # prefetch keys that could not be obtained (e.g. "allergies")
    gender: str | None = None  # Patient.gender as sent (male, female, other, unknown), for the eGFR equation (A13)
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
        self._on_read = ValidateOnRead(self.validator) if self.validator else None

    def _valid_resource(self, resource: dict, reference: str) -> bool:
        """Validate a record resource the first time a rule reads it; an invalid one is reported and not used."""
        return self._on_read is None or self._on_read(resource, reference)

    def invalid_resources(self) -> list[dict[str, str]]:
        """Resources found not valid FHIR R4 when the rules read them (reported in skippedResources)."""
        return (self._on_read.invalid if self._on_read is not None else []) + self.labs.invalid

    def _condition_fact(self, resource: dict) -> ConditionFact | None:
        """The Condition read (once a call; keyed by identity, as the resources do not change within it), or None
        when it does not count (refuted, entered in error)."""
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
            if self._valid_resource(condition.resource, condition.reference):
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

    # ---------- demographics ----------
    @property
    def age_years(self) -> float | None:
        return self.age_on(self.now.date())

    def age_on(self, day: date) -> float | None:
        """Age in years on a day (an eGFR equation takes the age at the blood draw), None without a birth date."""
        return None if self.birth_date is None else age_in_years(self.birth_date, day)

    def data_missing(self, *keys: str) -> list[str]:
        """Which of these prefetch keys could not be obtained for this call."""
        return [key for key in keys if key in self.missing_keys]

    # ---------- conditions ----------
    @once_per_call
    def conditions_in(self, value_set: str, *, active_only: bool = True) -> tuple[tuple[ConditionFact, Match], ...]:
        self.terms.value_set(value_set)  # an unknown name is an error, even when no Condition could match it
        return tuple((c, m) for c, m in self._matches_of_all_conditions().get(value_set, ())
                     if self._valid_resource(c.resource, c.reference) and (c.active or not active_only))

    @once_per_call
    def has_condition(self, value_set: str) -> Finding:
        found = self.conditions_in(value_set)
        return Finding(bool(found), tuple(condition_evidence(c, m) for c, m in found))

    # ---------- labs ----------
    def latest_lab(self, analyte: str) -> LabResult | None:
        return self.labs.latest(analyte)

    # ---------- medications ----------
    @once_per_call
    def medications_in(self, value_set: str, *, include_drafts: bool = True) -> tuple[tuple[MedicationFact, Match], ...]:
        vs = self.terms.value_set(value_set)
        pool = self.medications + (self.draft_orders if include_drafts else [])
        found = []
        for medication in pool:
            if value_set not in self._medication_candidates(medication):
                continue  # none of its concepts could match the value set (terminology's candidate index)
            match = medication.match(vs)
            # Record medications are validated as FHIR R4 when a rule first reads them (draft orders, from the hook's
            # context, are read leniently on purpose: see draft_orders.py).
            if match is not None and (medication.draft or self._valid_resource(medication.resource, medication.reference)):
                found.append((medication, match))
        return tuple(found)

    def has_value_set(self, name: str) -> bool:
        return name in self.terms.value_sets

    @once_per_call
    def taking(self, value_set: str) -> Finding:
        """An active medication of the record (not a draft order) in the value set."""
        found = self.medications_in(value_set, include_drafts=False)
        return Finding(bool(found), tuple(m.evidence(match) for m, match in found))

    # ---------- allergies, referrals, encounters, procedures ----------
    @once_per_call
    def allergy_to(self, value_set: str) -> Finding:
        """An AllergyIntolerance (allergy or intolerance) to a substance of the value set; inactive, resolved,
        refuted and entered-in-error records do not count. Unconfirmed ones do (a safety exclusion)."""
        vs = self.terms.value_set(value_set)
        evidence = []
        for allergy in self.allergies:
            clinical = status_code(allergy.get("clinicalStatus"))
            verification = status_code(allergy.get("verificationStatus"))
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

    @once_per_call
    def recent_referral(self, snomed_code: str, *, days: int) -> str | None:
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

    @once_per_call
    def recent_encounter(self, value_set: str, *, days: int) -> str | None:
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

    @once_per_call
    def _procedures_coded(self, value_set: str) -> tuple[ProcedureFact, ...]:
        """Each Procedure coded in the value set, not entered in error and not "not-done", newest first (undated
        last), not yet validated."""
        vs = self.terms.value_set(value_set)
        found = []
        for procedure in self.procedures:
            status = procedure.get("status")
            if code_in(status, ("entered-in-error", "not-done")):
                continue
            match = vs.match_concept(procedure.get("code"))
            if match is not None:
                found.append(ProcedureFact(
                    resource_label(procedure), concept_text(procedure.get("code")),
                    status if isinstance(status, str) else None, procedure_performed(procedure), match, procedure))
        found.sort(key=lambda p: (p.performed is not None, p.performed or self.now), reverse=True)
        return tuple(found)

    def _valid_procedure(self, procedure: ProcedureFact) -> bool:
        return procedure.resource is None or self._valid_resource(procedure.resource, procedure.reference)

    @once_per_call
    def procedures_in(self, value_set: str) -> tuple[ProcedureFact, ...]:
        """Each valid Procedure coded in the value set, not entered in error and not "not-done", newest first;
        whether one is recent enough is the reader's clinical decision (dialysis: A14)."""
        return tuple(p for p in self._procedures_coded(value_set) if self._valid_procedure(p))

    def newest_procedure(self, value_set: str, where: Callable[[ProcedureFact], bool]) -> ProcedureFact | None:
        """The newest valid Procedure coded in the value set (as procedures_in) for which `where` holds. Only the
        Procedures that `where` accepts are validated, newest first, up to the first valid one: a dialysis patient
        has three sessions a week, and the rules need to know of one (A14)."""
        for procedure in self._procedures_coded(value_set):
            if where(procedure) and self._valid_procedure(procedure):
                return procedure
        return None

    # ---------- coded observations ----------
    @once_per_call
    def coded_answer(self, name: str) -> CodedAnswer | None:
        """The latest usable answer of a coded observation of the terminology (e.g. "pregnancy-status"): final,
        amended or corrected, dated inside its window (up to an hour ahead), answered by a code the table calls
        positive or negative, or else by its text."""
        definition = self.terms.observations.get(name)
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
            if not set(loinc_codes(observation)) & codes:
                continue
            # Dated as every Observation is read (dateTime, period start, instant, else issued): a "pregnant" answer
            # recorded with an effectivePeriod must not be missed.
            when = observation_effective(observation)
            if when is None or not (since <= when <= self.now + timedelta(hours=1)):
                continue
            if latest is None or when > latest[0]:
                latest = (when, observation)
        if latest is None:
            return None
        when, observation = latest
        answer = observation.get("valueCodeableConcept") if isinstance(observation.get("valueCodeableConcept"), dict) else {}
        answers = {(system_key(c.get("system")), c.get("code")) for c in codeable_concepts(answer.get("coding"))}
        evidence = {"reference": resource_label(observation), "effective": when.isoformat(),
                    "loinc": definition["codes"][0]["code"]}
        if answers & positive:
            return CodedAnswer("positive", None, evidence)
        if answers & negative:
            return CodedAnswer("negative", None, evidence)
        return CodedAnswer("text", concept_text(answer), evidence)


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
    # The lab Observations come with their dates and reads as the selection worked them out (read once a call).
    labs = build_panel(selected.of("Observation"), terms, now, validator=validate, prepared=[
        (resource, effective, reads) for resource, (effective, reads) in zip(selected.lab_observations, selected.lab_reads)])
    coded_observations = [
        o for o in selected.of("Observation")
        if any(terms.observation_for_loinc(code) for code in loinc_codes(o))
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
        condition_resources=selected.condition_resources,
        labs=labs,
        medications=medications,
        draft_orders=list(draft_orders),
        procedures=list(selected.procedure_resources),
        allergies=list(selected.of("AllergyIntolerance")),
        service_requests=list(selected.of("ServiceRequest")),
        encounters=list(selected.of("Encounter")),
        skipped=list(selected.skipped),
        coded_observations=coded_observations,
        missing_keys=frozenset(missing_keys),
        gender=patient.get("gender") if isinstance(patient.get("gender"), str) else None,
        validator=validate,
    )
