"""What an order card says about the record (decision A20): a product of the same kind already active.

A draft of an antacid, a bisphosphonate, warfarin or intravenous calcium is judged with what the patient already
takes: a second magnesium antacid, or warfarin started twice, is what the prescriber most needs to see.
"""

from __future__ import annotations

from cds_service.engine.authoring import MedicationFact, PatientFacts

from .wording import medication_name


def active_of_same_kind(facts: PatientFacts, value_sets: tuple[str, ...], drafts: list[MedicationFact]) -> list[MedicationFact]:
    """Active medications of the record in any of the value sets, other than the drafts themselves (order-sign may
    carry a revised order that is already on the record)."""
    drafts_refs = {draft.reference for draft in drafts}
    found: dict[str, MedicationFact] = {}
    for value_set in value_sets:
        if not facts.has_value_set(value_set):
            continue
        for fact, _ in facts.medications_in(value_set, include_drafts=False):
            if fact.reference not in drafts_refs:
                found.setdefault(fact.reference, fact)
    return list(found.values())


def same_kind_note(active: list[MedicationFact], kind: str) -> str | None:
    """"Already active on the record (a magnesium or aluminium antacid): Maalox." or None."""
    if not active:
        return None
    names = "; ".join(dict.fromkeys(medication_name(fact) for fact in active))
    return f"**Already active on the record** ({kind}): {names}."


def same_kind_evidence(active: list[MedicationFact]) -> list[dict]:
    return [{"finding": "same kind already active", **fact.evidence()} for fact in active]


def product_key(facts: list[MedicationFact]) -> str:
    """The products of a finding, for its stable key: their names in lower case, sorted (a draft has no stable id
    between order-select and order-sign; its product does)."""
    return "+".join(sorted({(fact.text or fact.reference).strip().lower() for fact in facts}))
