"""The draft orders of the order hooks (order-select, order-sign), read leniently, and what the medication rules share.

`context.draftOrders` is a Bundle of unsigned orders. Real clients send it in shapes FHIR validation would refuse
(the CDS Hooks sandbox among them): a Bundle without `type`, entries without a resource, a draft without `intent` or medication yet,
`category` and `reasonCode` as one object instead of an array, DSTU2 `MedicationOrder` (with `patient`, `dateWritten`,
`reasonCodeableConcept`, `dosageInstruction[].doseQuantity` and `timing.repeat.periodUnits`). None of that is an
error here. A draft with no medication yet becomes a MedicationFact with `has_medication` False, which no rule fires on.

Each draft's `reference` is the relative reference that `context.selections` uses ("MedicationRequest/request-123"),
so a card can offer to remove it with a `delete` action whose `resourceId` is that reference.

Also here: whether a draft is given intravenously (R22a: oral calcium is not IV calcium). Which drafts a rule judges,
and the suggestions that act on them, are the engine's (cds_service/engine/drafts.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterable

from .codes import system_key
from .fhir_values import as_list, code_in, codeable_concepts, prohibits
from .medications import MedicationFact, concept_texts, medication_index, read_medication

MEDICATION_ORDER_TYPES = ("MedicationRequest", "MedicationOrder")  # MedicationOrder: DSTU2
SERVICE_ORDER_TYPES = ("ServiceRequest", "NutritionOrder", "ProcedureRequest")  # ProcedureRequest: STU3
# Orders in draftOrders that no longer stand (withdrawn in the ordering session) are not judged.
WITHDRAWN_STATUSES = frozenset({"entered-in-error", "cancelled", "revoked", "stopped"})
_RELATIVE_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
_FULL_URL_REFERENCE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")

# ---------- reading draftOrders ----------


def _reference(entry: dict, resource: dict) -> str:
    """The relative reference of a draft ("MedicationRequest/123"); from fullUrl when the resource has no id."""
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if isinstance(rid, str) and rid.strip():
        return f"{rtype}/{rid}"
    full_url = entry.get("fullUrl")
    if isinstance(full_url, str):
        found = _FULL_URL_REFERENCE.search(full_url)
        if found and found.group(1) == rtype:
            return f"{found.group(1)}/{found.group(2)}"
    return str(rtype)


def is_relative_reference(reference: str) -> bool:
    return bool(_RELATIVE_REFERENCE.match(reference))


def draft_order_entries(draft_orders: Any) -> list[tuple[dict, dict]]:
    """(entry, resource) of each entry that has a resource with a resourceType; anything else is skipped."""
    if not isinstance(draft_orders, dict):
        return []
    out = []
    for entry in as_list(draft_orders.get("entry")):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            out.append((entry, resource))
    return out


def read_draft_orders(draft_orders: Any, medications: Iterable[dict]) -> list[MedicationFact]:
    """The medication orders of `context.draftOrders` as MedicationFacts with draft=True, leniently read.

    `medications` are the record's Medication resources; Medications inside draftOrders and contained ones resolve
    too. Withdrawn orders (cancelled, entered in error) are left out; a draft without medication is kept.
    """
    entries = draft_order_entries(draft_orders)
    index = medication_index(list(medications) + [r for _, r in entries if r.get("resourceType") == "Medication"])
    facts: list[MedicationFact] = []
    seen: set[str] = set()
    for entry, resource in entries:
        if resource.get("resourceType") not in MEDICATION_ORDER_TYPES:
            continue
        if code_in(resource.get("status"), WITHDRAWN_STATUSES) or prohibits(resource):
            continue  # a withdrawn order, or one that forbids the drug, is not an order to judge
        fact = read_medication(resource, index, draft=True)
        reference = _reference(entry, resource)
        if reference in seen and is_relative_reference(reference):
            continue
        seen.add(reference)
        # DSTU2 MedicationOrder names its reason reasonCodeableConcept; either may be one object or an array.
        reasons = codeable_concepts(resource.get("reasonCode")) + codeable_concepts(resource.get("reasonCodeableConcept"))
        facts.append(replace(fact, reference=reference, reason_concepts=tuple(reasons)))
    return facts


@dataclass(frozen=True)
class DraftServiceOrder:
    """A ServiceRequest or NutritionOrder in draftOrders: what a rule must not propose a second time."""

    reference: str
    codes: frozenset[tuple[str, str]]  # (system key or url, code)


def read_draft_service_orders(draft_orders: Any) -> list[DraftServiceOrder]:
    out = []
    for entry, resource in draft_order_entries(draft_orders):
        if (resource.get("resourceType") not in SERVICE_ORDER_TYPES or code_in(resource.get("status"), WITHDRAWN_STATUSES)
                or prohibits(resource)):
            continue  # "do not refer" does not stand for the referral a rule would propose
        concepts = codeable_concepts(resource.get("code"))
        oral = resource.get("oralDiet")
        if isinstance(oral, dict):
            concepts += codeable_concepts(oral.get("type"))
        codes = set()
        for concept in concepts:
            for coding in codeable_concepts(concept.get("coding")):
                if isinstance(coding.get("code"), str):
                    codes.add((system_key(coding.get("system")) or str(coding.get("system")), coding["code"].strip()))
        out.append(DraftServiceOrder(_reference(entry, resource), frozenset(codes)))
    return out


# ---------- route ----------

INTRAVENOUS_ROUTE_CODES = frozenset({"47625008"})  # SNOMED CT Intravenous route (the FHIR route-codes example set)
_IV_WORDS = re.compile(r"(?<![a-z])(intravenous|intravenously|iv|i\.v|injection|injectable|infusion|ivpb)(?![a-z])", re.IGNORECASE)
_NOT_IV_ROUTE = re.compile(
    r"(?<![a-z])(oral|orally|by mouth|po|rectal|enema|topical|enteral|sublingual|intraperitoneal|intramuscular)(?![a-z])",
    re.IGNORECASE,
)
# Balanced electrolyte and dialysis solutions contain a little calcium chloride; they are not "IV calcium".
_BALANCED_SOLUTION = re.compile(r"\b(ringer|ringer's|lactate|hartmann|dialysis|dianeal)\b", re.IGNORECASE)


def _route_concepts(resource: dict) -> list[dict]:
    concepts = []
    for dosage in as_list(resource.get("dosageInstruction")) + as_list(resource.get("dosage")):
        if isinstance(dosage, dict):
            concepts.extend(codeable_concepts(dosage.get("route")))
    return concepts


def is_intravenous(draft: MedicationFact) -> bool:
    """Given intravenously: an intravenous route (SNOMED 47625008 or words), else an injectable product name with
    no other route given. Oral, rectal or enteral routes and balanced electrolyte solutions never count."""
    texts = concept_texts(draft.concepts)
    if any(_BALANCED_SOLUTION.search(t) for t in texts):
        return False
    routes = _route_concepts(draft.resource)
    for route in routes:
        for coding in codeable_concepts(route.get("coding")):
            if system_key(coding.get("system")) == "snomed" and code_in(coding.get("code"), INTRAVENOUS_ROUTE_CODES):
                return True
    route_texts = concept_texts(routes)
    if any(_IV_WORDS.search(t) for t in route_texts):
        return True
    if any(_NOT_IV_ROUTE.search(t) for t in route_texts):
        return False
    return any(_IV_WORDS.search(t) for t in texts) and not any(_NOT_IV_ROUTE.search(t) for t in texts)
