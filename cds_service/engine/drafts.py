"""The draft orders a rule judges, and suggestions that act on them without repeating what is already ordered.

- which drafts a rule judges: on order-select the selected orders (the others were judged when they were selected),
  on order-sign every draft being signed, none on patient-view;
- removing a draft (a delete action naming it by its relative reference);
- proposing a lab test or a service, unless draftOrders already hold a ServiceRequest for it.
"""

from __future__ import annotations

from typing import Iterable

from cds_service.record.draft_orders import is_relative_reference, read_draft_service_orders
from cds_service.record.facts import PatientFacts
from cds_service.record.medications import MedicationFact
from cds_service.record.terminology import Match

from . import proposals
from .rules import Action, Context, Suggestion


def orders_under_review(facts: PatientFacts, ctx: Context) -> list[MedicationFact]:
    """The draft medication orders a rule judges on this hook; drafts without a medication are never judged."""
    if ctx.hook == "order-select":
        selected = set(ctx.selections)
        drafts = [d for d in facts.draft_orders if d.reference in selected]
    elif ctx.hook == "order-sign":
        drafts = list(facts.draft_orders)
    else:
        drafts = []
    return [d for d in drafts if d.has_medication]


def drafts_in(facts: PatientFacts, ctx: Context, value_set: str) -> list[tuple[MedicationFact, Match]]:
    """Drafts under review that match a medication value set, with the match, in draftOrders order."""
    vs = facts.terms.value_set(value_set)
    out = []
    for draft in orders_under_review(facts, ctx):
        match = draft.match(vs)
        if match is not None:
            out.append((draft, match))
    return out


def draft_has_service(ctx: Context, system: str, code: str) -> str | None:
    """The reference of a ServiceRequest or NutritionOrder in draftOrders with this code (system key), if any."""
    for order in read_draft_service_orders(ctx.draft_orders):
        if (system, code) in order.codes:
            return order.reference
    return None


def delete_suggestion(draft: MedicationFact, what: str) -> Suggestion | None:
    """Remove a draft order (delete by resourceId); None when the draft has no id to name it by."""
    if not draft.draft or not is_relative_reference(draft.reference):
        return None
    name = draft.text or "this medication"
    return Suggestion(
        f"Remove the draft order for {name}"[:120],
        (Action("delete", f"Remove the draft order for {name} ({what})", resource_id=draft.reference),),
        key=f"delete:{draft.reference}",
    )


def lab_suggestion(facts: PatientFacts, ctx: Context, loinc: str, display: str, label: str,
                   reasons: Iterable[str] = (), note: str | None = None) -> tuple[Suggestion | None, str | None]:
    """Propose a lab test, unless draftOrders already hold a ServiceRequest for it: (suggestion, None) or
    (None, the draft that already orders it)."""
    already = draft_has_service(ctx, "loinc", loinc)
    if already:
        return None, already
    resource = proposals.lab_order(facts.patient_id, loinc, display, reasons, note)
    action = Action("create", f"{label} (proposal)", resource=resource)
    return Suggestion(label, (action,), key=f"lab:{loinc}"), None


def condition_references(evidence: Iterable[dict]) -> list[str]:
    """The Condition references in a finding's evidence, once each, in order: a proposal's reasonReference."""
    return list(dict.fromkeys(e["reference"] for e in evidence if str(e.get("reference", "")).startswith("Condition/")))
