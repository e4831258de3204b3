"""The referrals the rules suggest: one table, and one way to suggest a referral (never twice).

A referral is not suggested when draftOrders already hold it, when the record has one from the last 12 months, or
when the patient was seen by that specialty in that time (an Encounter of its value set). The key is shared by every
rule that suggests the referral, so one card never offers it twice; the engine also removes repeats across cards.
"""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.engine.authoring import Action, Context, PatientFacts, Suggestion, draft_has_service, referral as referral_proposal

from .definitions import RECENT_CARE_DAYS


@dataclass(frozen=True)
class Referral:
    snomed: str  # the "Referral to ..." procedure, VERIFIED in specification §1.5 (S2, S3)
    display: str
    encounter_value_set: str | None  # encounters that show the patient is already seen by this specialty


REFERRALS: dict[str, Referral] = {
    "nephrology": Referral("306286007", "Referral to nephrologist", "encounter-nephrology"),
    "rheumatology": Referral("306290009", "Referral to rheumatologist", "encounter-rheumatology"),
    "hematology": Referral("183567007", "Referral to hematologist", "encounter-hematology"),
    "dietitian": Referral("103699006", "Referral to dietitian", "encounter-dietetics"),
    "dermatology": Referral("308472003", "Referral to dermatologist", None),
    "plastic-surgery": Referral("306315001", "Referral to plastic surgeon", None),
    "hand-surgery": Referral("306312003", "Referral to hand surgeon", None),
    "general-surgery": Referral("308478004", "Referral to general surgeon", None),
    "physiotherapy": Referral("308447003", "Referral to physiotherapist", None),
    "occupational-therapy": Referral("308453003", "Referral to occupational therapist", None),
}

REFERRAL_CODES = tuple(referral.snomed for referral in REFERRALS.values())


def already_referred(facts: PatientFacts, specialty: str, ctx: Context | None = None) -> str | None:
    """What shows the patient is already referred to (or seen by) this specialty: a referral in draftOrders, a
    referral in the last 12 months, or an encounter with the specialty in that time; None when nothing does."""
    referral = REFERRALS[specialty]
    found = draft_has_service(ctx, "snomed", referral.snomed) if ctx is not None else None
    found = found or facts.recent_referral(referral.snomed, days=RECENT_CARE_DAYS)
    if found is None and referral.encounter_value_set:
        found = facts.recent_encounter(referral.encounter_value_set, days=RECENT_CARE_DAYS)
    return found


def referral(facts: PatientFacts, specialty: str, reasons=(), note: str | None = None) -> Suggestion:
    """The referral as a ServiceRequest proposal, for the clinician to accept."""
    entry = REFERRALS[specialty]
    resource = referral_proposal(facts.patient_id, entry.snomed, entry.display, reasons, note=note)
    action = Action("create", f"{entry.display} (proposal, for the clinician to accept)", resource=resource)
    return Suggestion(entry.display, (action,), key=f"referral-{specialty}")


def referral_unless_recent(facts: PatientFacts, specialty: str, reasons=(), note: str | None = None,
                           ctx: Context | None = None) -> tuple[Suggestion | None, str | None]:
    """(the referral suggestion, None), or (None, what shows the patient is already referred or seen)."""
    existing = already_referred(facts, specialty, ctx)
    if existing:
        return None, existing
    return referral(facts, specialty, reasons, note), None
