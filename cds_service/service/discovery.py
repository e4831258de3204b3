"""The CDS services this server offers (discovery), each with the prefetch templates its rules need.

Templates ask only for what the rules read: the Patient, the patient's Conditions, Observations filtered to the LOINC
codes of terminology.json (newest first), medications, and the Procedures that show dialysis. Never an unfiltered
Observation search. Keys marked required make the call fail with 412 when they cannot be obtained: without the
Patient (age, pregnancy safety) and the Conditions (gate G0, renal insufficiency, contraindications) no card can be
given safely. Missing optional keys are reported in the response, and the cards that need them are not given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cards
from cds_service.record.terminology import Terminology

PATIENT = "{{context.patientId}}"


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str]
    required: frozenset[str] = field(default_factory=frozenset)
    usage_requirements: str | None = None

    def discovery(self) -> dict:
        entry = {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": dict(self.prefetch),
        }
        if self.usage_requirements:
            entry["usageRequirements"] = self.usage_requirements
        # The knowledge's version (CDS Hooks 3.0 proposes `version` on a service): which rules answered.
        entry["version"] = cards.knowledge().version
        return entry


def observation_query(terms: Terminology) -> str:
    loinc = terms.system_url("loinc")
    codes = ",".join(f"{loinc}|{code}" for code in terms.lab_loinc_codes() + terms.observation_loinc_codes())
    # 500 newest results cover the longest look-back (365 days) for a patient with daily labs on a few analytes;
    # a client that pages gives a next link, which the service follows within its page cap.
    return f"Observation?patient={PATIENT}&code={codes}&_sort=-date&_count=500"


def procedure_query(terms: Terminology) -> str:
    snomed = terms.system_url("snomed")
    codes = ",".join(f"{snomed}|{e['code']}" for e in terms.value_set("dialysis").code_entries("snomed"))
    return f"Procedure?patient={PATIENT}&code={codes}"


def referral_query(terms: Terminology, referral_codes: tuple[str, ...]) -> str:
    """The referrals the rules propose, so that none is proposed again (R17 and the other referrals)."""
    snomed = terms.system_url("snomed")
    codes = ",".join(f"{snomed}|{code}" for code in referral_codes)
    return f"ServiceRequest?patient={PATIENT}&code={codes}"


def record_prefetch() -> dict[str, str]:
    """What every hook needs of the patient's record."""
    knowledge = cards.knowledge()
    terms = knowledge.terminology
    return {
        "patient": f"Patient/{PATIENT}",
        "conditions": f"Condition?patient={PATIENT}",
        "observations": observation_query(terms),
        "medicationRequests": f"MedicationRequest?patient={PATIENT}&status=active,on-hold",
        "medicationStatements": f"MedicationStatement?patient={PATIENT}&status=active,intended",
        "procedures": procedure_query(terms),
        "serviceRequests": referral_query(terms, knowledge.referral_codes),
        # R13: a tetracycline allergy withholds the minocycline proposal; R17: a specialist seen in the last year.
        "allergies": f"AllergyIntolerance?patient={PATIENT}",
        "encounters": f"Encounter?patient={PATIENT}&_sort=-date&_count=100",
    }


REQUIRED_KEYS = frozenset({"patient", "conditions"})
USAGE = (
    "Send the prefetch, or a fhirServer the service may read with the given fhirAuthorization (or, in development, "
    "without one). Authenticate with a CDS Hooks JWT signed by a trusted issuer."
)


@lru_cache(maxsize=1)
def services() -> dict[str, Service]:
    patient_view = Service(
        id="calcinosis-cutis-patient-view",
        hook="patient-view",
        title="Calcinosis cutis: treatment and management",
        description=(
            "For patients with calcinosis cutis, calciphylaxis or tumoral calcinosis: the recommendations of "
            "Nunley, Calcinosis Cutis Treatment & Management (Medscape, 2020) that apply to this patient, with their "
            "evidence: the underlying cause, referrals, diet, treatment options, and safety warnings on the record "
            "(magnesium or aluminium antacids in renal insufficiency, bisphosphonates and phosphate, warfarin in "
            "calciphylaxis, extravasation)."
        ),
        prefetch=record_prefetch(),
        required=REQUIRED_KEYS,
        usage_requirements=USAGE,
    )
    order_prefetch = order_hook_prefetch()
    order_select = Service(
        id="calcinosis-cutis-order-select",
        hook="order-select",
        title="Calcinosis cutis: medication safety while ordering",
        description=(
            "For patients with calcinosis cutis, calciphylaxis or tumoral calcinosis, on the selected draft orders: "
            "magnesium or aluminium antacids in renal insufficiency, bisphosphonates (phosphate monitoring), "
            "low-dose warfarin for calcinosis, warfarin in calciphylaxis, and intravenous calcium or phosphate "
            "(extravasation risk)."
        ),
        prefetch=order_prefetch,
        required=REQUIRED_KEYS,
        usage_requirements=USAGE,
    )
    order_sign = Service(
        id="calcinosis-cutis-order-sign",
        hook="order-sign",
        title="Calcinosis cutis: medication safety at signing",
        description=(
            "For patients with calcinosis cutis, calciphylaxis or tumoral calcinosis, on the orders being signed: "
            "magnesium or aluminium antacids in renal insufficiency, bisphosphonates (phosphate monitoring), "
            "low-dose warfarin for calcinosis, warfarin in calciphylaxis, and intravenous calcium or phosphate "
            "(extravasation risk)."
        ),
        prefetch=order_prefetch,
        required=REQUIRED_KEYS,
        usage_requirements=USAGE,
    )
    return {service.id: service for service in (patient_view, order_select, order_sign)}


# Labs the order rules read: phosphate (R06, Ca x P), calcium (Ca x P), magnesium and aluminium (R05), renal function
# (a child's eGFR is calculated from creatinine and a recent height, decision A13).
ORDER_LAB_ANALYTES = ("phosphate", "calcium", "calcium-corrected", "magnesium", "aluminium", "egfr", "creatinine",
                      "height")
# Record keys the order rules read besides the labs: gate G0 and RI (conditions), dialysis (procedures), active
# medications (R08c context, calciphylaxis risk factors), referrals not to suggest twice (serviceRequests).
ORDER_RECORD_KEYS = ("patient", "conditions", "medicationRequests", "medicationStatements", "procedures", "serviceRequests")


def order_hook_prefetch() -> dict[str, str]:
    """The order hooks' prefetch: the record keys they read, with the Observation search narrowed to their labs."""
    record = record_prefetch()
    prefetch = {key: record[key] for key in ORDER_RECORD_KEYS if key in record}
    terms = cards.knowledge().terminology
    loinc = terms.system_url("loinc")
    codes = ",".join(f"{loinc}|{code}" for code in terms.lab_loinc_codes(ORDER_LAB_ANALYTES))
    prefetch["observations"] = f"Observation?patient={PATIENT}&code={codes}&_sort=-date&_count=500"
    return prefetch
