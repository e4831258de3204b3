"""Medications, read leniently from MedicationRequest, MedicationStatement and DSTU2 MedicationOrder (Part A5).

The same reader serves the record's active medications and an order hook's draftOrders, whose resources the CDS Hooks
sandbox sends in invalid shapes (category and reasonCode as objects, no intent, no medication yet). A medication is
matched to an ingredient value set by its product or ingredient codes, the codes and ingredients of a referenced
Medication (contained, in the record, or fetched), and by name in its text or displays.

Decision A15: a product code of the value set decides; a Medication that names its ingredients is judged by those
ingredients alone (a "Gaviscon" listing sodium alginate and calcium carbonate holds no magnesium or aluminium); only
when no ingredient is named do the names apply, ingredient names first, then brand names (Match.by PRODUCT_NAME),
whose cards say to verify the ingredients.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from .fhir_values import (
    as_list, code_in, codeable_concepts, concept_text, finite_number, prohibits, reference_of, resource_label,
)
from .terminology import Match, ValueSet

ACTIVE_REQUEST_STATUSES = frozenset({"active", "on-hold"})
ACTIVE_STATEMENT_STATUSES = frozenset({"active", "intended"})
MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement", "MedicationOrder")



@dataclass(frozen=True, slots=True)
class MedicationFact:
    reference: str  # e.g. "MedicationRequest/123"
    resource_type: str
    status: str | None
    concepts: tuple[dict, ...]  # the medication concept and, if referenced, the Medication's code and ingredients
    draft: bool  # from context.draftOrders
    ingredients: tuple[dict, ...] = ()  # the referenced Medication's ingredients (also among concepts)
    reason_concepts: tuple[dict, ...] = ()
    reason_references: tuple[str, ...] = ()
    daily_dose_mg: float | None = None
    route_text: str | None = None
    resource: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def text(self) -> str | None:
        return concept_text(list(self.concepts))

    @property
    def has_medication(self) -> bool:
        return bool(self.concepts)

    def match(self, value_set: ValueSet) -> Match | None:
        """A15: a code first; then the named ingredients alone when there are any; else ingredient names, then
        product (brand) names, in any of the medication's texts."""
        for concept in self.concepts:
            if (found := value_set.match_codes(concept)) is not None:
                return found
        named = [c for c in self.ingredients if concept_text(c)]
        if named:
            return next((m for c in named if (m := value_set.match_words(c)) is not None), None)
        for step in (value_set.match_words, value_set.match_product_names):
            for concept in self.concepts:
                if (found := step(concept)) is not None:
                    return found
        return None

    def evidence(self, match: Match | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"reference": self.reference, "status": self.status or "unknown"}
        if self.draft:
            out["draftOrder"] = True
        if self.text:
            out["text"] = self.text
        if self.daily_dose_mg is not None:
            out["dailyDoseMg"] = round(self.daily_dose_mg, 3)
        if match is not None:
            out.update(match.as_evidence())
        return out


def _resolve_medication(reference: str, resource: dict, medications: dict[str, dict]) -> dict | None:
    if reference.startswith("#"):
        for contained in as_list(resource.get("contained")):
            if isinstance(contained, dict) and contained.get("id") == reference[1:]:
                return contained
        return None
    return medications.get(reference) or medications.get(reference.rsplit("/", 1)[-1] if "/" in reference else reference)


def _medication_concepts(medication: dict) -> tuple[list[dict], list[dict]]:
    """(the Medication's code, if any; its ingredients)."""
    concepts, ingredients = [], []
    if isinstance(medication.get("code"), dict):
        concepts.append(medication["code"])
    for ingredient in as_list(medication.get("ingredient")):
        if isinstance(ingredient, dict):
            item = ingredient.get("itemCodeableConcept")
            if isinstance(item, dict):
                ingredients.append(item)
            elif isinstance(ingredient.get("itemReference"), dict) and ingredient["itemReference"].get("display"):
                ingredients.append({"text": ingredient["itemReference"]["display"]})
    return concepts, ingredients


# ---------- daily dose ----------

_MG_PER_UNIT = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001}
# Dose units that count units of the product (the CDS Hooks sandbox orders in "{pill}").
_UNIT_OF_PRODUCT = frozenset({"{pill}", "pill", "{tbl}", "tbl", "tab", "tabs", "tablet", "tablets", "{tablet}",
                              "{capsule}", "capsule", "capsules", "cap", "{cap}", "1", "{unit}", ""})
_PER_DAY = {"d": 1.0, "h": 24.0, "wk": 1 / 7, "mo": 1 / 30, "min": 1440.0, "s": 86400.0, "a": 1 / 365}
# A single-ingredient solid product's strength in its name: "warfarin sodium 1 MG Oral Tablet". Names with "/" are
# combinations or concentrations (MG/ML), whose per-unit strength cannot be read this way.
_STRENGTH = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(mg|g|mcg|ug)\b(?!\s*/)", re.IGNORECASE)
_SOLID_FORM = re.compile(r"\b(tablet|capsule|tab|cap)s?\b", re.IGNORECASE)


def product_strength_mg(texts: Iterable[str | None]) -> float | None:
    """The strength per tablet or capsule, in mg, of a single-ingredient product named in one of `texts`."""
    for text in texts:
        if not isinstance(text, str) or "/" in text or not _SOLID_FORM.search(text):
            continue
        strengths = _STRENGTH.findall(text)
        if len(strengths) == 1:
            value, unit = strengths[0]
            return float(value) * _MG_PER_UNIT[unit.lower()]
    return None


def concept_texts(concepts: Iterable[dict]) -> list[str]:
    texts = []
    for concept in concepts:
        if isinstance(concept.get("text"), str):
            texts.append(concept["text"])
        texts.extend(c["display"] for c in codeable_concepts(concept.get("coding")) if isinstance(c.get("display"), str))
    return texts


def daily_dose_mg(resource: dict, strength_mg: float | None) -> float | None:
    """Daily dose in mg from the first dosage instruction with an explicit dose and timing (R4 doseAndRate, or the
    DSTU2/STU3 doseQuantity and periodUnits); a dose in tablets counts only when the product's strength is known."""
    for dosage in as_list(resource.get("dosageInstruction")) or as_list(resource.get("dosage")):
        if not isinstance(dosage, dict):
            continue
        quantity = None
        for dose_and_rate in as_list(dosage.get("doseAndRate")):
            if isinstance(dose_and_rate, dict) and isinstance(dose_and_rate.get("doseQuantity"), dict):
                quantity = dose_and_rate["doseQuantity"]
                break
        if quantity is None and isinstance(dosage.get("doseQuantity"), dict):
            quantity = dosage["doseQuantity"]
        if quantity is None:
            continue
        value = finite_number(quantity.get("value"))
        if value is None or value <= 0:
            continue
        unit = str(quantity.get("code") or quantity.get("unit") or "").strip()
        if unit.lower() in _MG_PER_UNIT:
            per_dose = float(value) * _MG_PER_UNIT[unit.lower()]
        elif unit.lower() in _UNIT_OF_PRODUCT and strength_mg is not None:
            per_dose = float(value) * strength_mg
        else:
            continue
        timing = dosage.get("timing")
        repeat = timing.get("repeat") if isinstance(timing, dict) else None
        if not isinstance(repeat, dict):
            continue
        frequency = finite_number(repeat.get("frequency", 1))
        period = finite_number(repeat.get("period", 1))
        per_day = _PER_DAY.get(str(repeat.get("periodUnit") or repeat.get("periodUnits")))
        if frequency is None or frequency <= 0 or period is None or period <= 0 or per_day is None:
            continue
        daily = per_dose * frequency / period * per_day
        return daily if finite_number(daily) is not None else None
    return None



def read_medication(resource: dict, medications: dict[str, dict], *, draft: bool) -> MedicationFact:
    concepts: list[dict] = []
    ingredients: list[dict] = []
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict) and (concept.get("coding") or concept.get("text")):
        concepts.append(concept)
    reference = reference_of(resource.get("medicationReference"))
    if reference:
        medication = _resolve_medication(reference, resource, medications)
        if medication is not None:
            code, ingredients = _medication_concepts(medication)
            concepts += code + ingredients
        display = resource["medicationReference"].get("display")
        if isinstance(display, str) and display.strip():
            concepts.append({"text": display})

    reason_refs = tuple(
        ref for ref in (reference_of(r) for r in as_list(resource.get("reasonReference"))) if ref
    )
    route = None
    for dosage in as_list(resource.get("dosageInstruction")) or as_list(resource.get("dosage")):
        if isinstance(dosage, dict) and (route := concept_text(dosage.get("route"))):
            break
    return MedicationFact(
        reference=resource_label(resource),
        resource_type=str(resource.get("resourceType")),
        status=resource.get("status") if isinstance(resource.get("status"), str) else None,
        concepts=tuple(concepts),
        draft=draft,
        ingredients=tuple(ingredients),
        reason_concepts=tuple(codeable_concepts(resource.get("reasonCode"))),
        reason_references=reason_refs,
        daily_dose_mg=daily_dose_mg(resource, product_strength_mg(concept_texts(concepts))),
        route_text=route,
        resource=resource,
    )


def is_active(resource: dict) -> bool:
    """Active on the record (A5); a MedicationRequest that forbids the drug (doNotPerform) is not."""
    status = resource.get("status")
    if resource.get("resourceType") == "MedicationStatement":
        return code_in(status, ACTIVE_STATEMENT_STATUSES)
    return code_in(status, ACTIVE_REQUEST_STATUSES) and not prohibits(resource)


def medication_index(medications: Iterable[dict]) -> dict[str, dict]:
    """Medication resources by 'Medication/id', by bare id and by fullUrl-style urn, for reference lookup."""
    index: dict[str, dict] = {}
    for medication in medications:
        mid = medication.get("id")
        if isinstance(mid, str):
            index[f"Medication/{mid}"] = medication
            index[mid] = medication
            index[f"urn:uuid:{mid}"] = medication
    return index


def read_medications(resources: Iterable[dict], *, medications: Iterable[dict], active_only: bool) -> list[MedicationFact]:
    index = medication_index(medications)
    return [
        read_medication(resource, index, draft=False)
        for resource in resources
        if resource.get("resourceType") in MEDICATION_TYPES and (not active_only or is_active(resource))
    ]


def unresolved_medication_references(resources: Iterable[dict], drafts: Iterable[dict] = ()) -> list[str]:
    """medicationReferences of the record's active medications and of an order hook's draft orders (what the rules
    read) that are neither contained nor among the Medication resources of the record or of draftOrders: what
    prefetch.gather asks the fetcher for."""
    resources, drafts = list(resources), list(drafts)
    index = medication_index(r for r in resources + drafts if r.get("resourceType") == "Medication")
    candidates = [r for r in resources if r.get("resourceType") in MEDICATION_TYPES and is_active(r)]
    candidates += [r for r in drafts if r.get("resourceType") in MEDICATION_TYPES]
    references: list[str] = []
    for resource in candidates:
        reference = reference_of(resource.get("medicationReference"))
        if reference and _resolve_medication(reference, resource, index) is None and not reference.startswith("#"):
            references.append(reference)
    return list(dict.fromkeys(references))
