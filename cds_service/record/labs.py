"""Laboratory results: every usable value per analyte, newest first, in one canonical unit (decision A2).

- only Observations with status final, amended or corrected count, inside the analyte's look-back window;
- a value is converted to the analyte's canonical unit with the factors of the terminology's lab table; a value whose
  unit is not UCUM or not known for that analyte is never used, and the report says why;
- the lab's own upper limit (referenceRange.high, converted likewise) and interpretation flags are kept with the
  value; what counts as high is a clinical definition (cards/definitions/labs.py);
- a result inside a panel's `component` counts like an Observation of its own, with the panel's status and date
  (decision A19); a value with a comparator ("<0.3", ">10") is kept with it, and the definitions judge whether it
  can be compared with their limit (A19, A13).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

from .codes import loinc_codes
from .fhir_values import code_in, codeable_concepts, finite_number, parse_datetime, resource_label
from .terminology import LabAnalyte, Terminology
from .validation import ValidateOnRead

USABLE_STATUSES = frozenset({"final", "amended", "corrected"})
UCUM = "http://unitsofmeasure.org"
# Comparators that bound a value (A19); "ad" ("sufficient to achieve") says nothing a limit can be compared with.
BOUNDING_COMPARATORS = frozenset({"<", "<=", ">", ">="})


# How far ahead of `now` a result still counts (clocks differ between systems: a result filed minutes "in the
# future" is current, one dated days ahead is not).
LAB_WINDOW_AHEAD = timedelta(hours=1)


def lab_windows(terms: Terminology, now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Each analyte's look-back window at `now`: its days back (Part A2), up to LAB_WINDOW_AHEAD ahead. The panel reads
    results in it, and the selection leaves out the results outside it (resources.select_and_validate)."""
    ahead = now + LAB_WINDOW_AHEAD
    return {name: (now - timedelta(days=analyte.window_days), ahead) for name, analyte in terms.labs.items()}


@dataclass(frozen=True, slots=True)
class LabResult:
    analyte: str
    value: float  # in the analyte's canonical unit
    unit: str  # the canonical unit
    reported_value: float
    reported_unit: str
    effective: datetime
    loinc: str
    reference: str  # "Observation/id", or "component <LOINC> of Observation/id" for a panel's result
    reference_high: float | None = None  # canonical unit
    interpretation: frozenset[str] = frozenset()
    # How a value computed here was computed, shown wherever it is: "calculated" (corrected calcium), "calculated
    # (CKD-EPI 2021)"; empty for a reported value.
    calculated: str = ""
    comparator: str = ""  # "<", "<=", ">" or ">=": the true value lies beyond `value` (A19)
    resource: dict | None = field(default=None, repr=False, compare=False, hash=False)  # validated on first use
    observation: str = ""  # the reference of the Observation that holds it (the panel's, for a component)

    def evidence(self) -> dict[str, Any]:
        out = {
            "analyte": self.analyte,
            "value": round(self.value, 3),
            "unit": self.unit,
            "effective": self.effective.isoformat(),
            "reference": self.reference,
        }
        if self.comparator:
            out["comparator"] = self.comparator
        if self.loinc:
            out["loinc"] = self.loinc
        if (self.reported_unit, self.reported_value) != (self.unit, self.value):
            out["reported"] = f"{self.comparator}{self.reported_value:g} {self.reported_unit}"
        if self.calculated:
            out["calculated"] = self.calculated
        return out


@dataclass
class LabPanel:
    """All readable results per analyte (newest first), and the results that could not be used, with why.

    Results are validated as FHIR R4 (the `validator`) only when a rule reads them, newest first: the latest result
    of an analyte, or the few that a fact pairs by date. A result that fails is skipped for good, reported in
    `invalid`, and the next one is used; a result no rule reads is never validated (R4B validation is the largest
    cost of a call, and a long record holds many results nobody reads)."""

    now: datetime
    terms: Terminology
    results: dict[str, list[LabResult]] = field(default_factory=dict)
    unusable: list[dict[str, str]] = field(default_factory=list)
    on_read: ValidateOnRead | None = field(default=None, repr=False)
    _latest: dict[str, LabResult | None] = field(default_factory=dict, init=False, repr=False, compare=False)
    _window: dict[str, tuple[datetime, datetime]] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def invalid(self) -> list[dict[str, str]]:
        """Results found not valid FHIR R4 when a rule read them."""
        return self.on_read.invalid if self.on_read is not None else []

    def _windows(self, analyte: str) -> tuple[datetime, datetime]:
        """(start, end) of the analyte's look-back window (lab_windows, worked out once per panel)."""
        if self._window is None:
            self._window = lab_windows(self.terms, self.now)
        return self._window[analyte]

    def _valid(self, result: LabResult) -> bool:
        return self.on_read is None or result.resource is None or self.on_read(
            result.resource, result.observation or result.reference)

    def _candidates(self, analyte: str, where: Callable[[LabResult], bool] | None) -> Iterator[LabResult]:
        start, end = self._windows(analyte)
        for result in self.results.get(analyte, ()):
            if start <= result.effective <= end and (where is None or where(result)):
                yield result

    def newest(self, analyte: str, where: Callable[[LabResult], bool] | None = None) -> Iterator[LabResult]:
        """The valid results of the analyte in its look-back window (and matching `where`), newest first, each
        validated only when the reader gets to it."""
        return (r for r in self._candidates(analyte, where) if self._valid(r))

    def in_window(self, analyte: str, where: Callable[[LabResult], bool] | None = None) -> list[LabResult]:
        """The valid results of the analyte in its look-back window (and matching `where`), newest first."""
        return list(self.newest(analyte, where))

    def latest(self, analyte: str) -> LabResult | None:
        # The rules ask for the same analytes many times a call; results and verdicts do not change within it.
        if analyte not in self._latest:
            self._latest[analyte] = next(self.newest(analyte), None)
        return self._latest[analyte]

    def set_aside(self, result: LabResult, issue: str) -> None:
        """Report a result a definition could not use (a comparator that cannot be placed against its limit, A19)
        in the response's unusedLabResults, once."""
        entry = {"resource": result.reference, "analyte": result.analyte, "issue": issue}
        if entry not in self.unusable:
            self.unusable.append(entry)


def _unit_of(quantity: dict) -> tuple[str | None, str | None]:
    """(UCUM unit code, why not) of a valueQuantity."""
    system, code, unit = quantity.get("system"), quantity.get("code"), quantity.get("unit")
    if isinstance(code, str) and code:
        if system in (None, UCUM):
            return code, None
        return None, f"unit {code!r} is not UCUM (system {system})"
    if isinstance(unit, str) and unit and system in (None, UCUM):
        return unit, None  # human-readable unit only; accepted only if it is one of the analyte's UCUM codes
    return None, "no unit"


def unit_factor(analyte: LabAnalyte, unit: str) -> float | None:
    """The factor from `unit` to the analyte's canonical unit, or None if the unit is not one we know for it.

    UCUM codes are case-sensitive, except that "l" and "L" are both the litre: mg/dl is mg/dL. Nothing else is
    guessed (a unit we do not know is never converted)."""
    factor = analyte.factors.get(unit)
    if factor is not None:
        return factor
    litre = unit.replace("L", "l")
    for known, value in analyte.factors.items():
        if known.replace("L", "l") == litre:
            return value
    return None


def observation_effective(resource: dict) -> datetime | None:
    """When an Observation was taken: effectiveDateTime, else the start of effectivePeriod, else effectiveInstant,
    else when it was issued. The selection reads dates the same way (selection.select_and_validate)."""
    period = resource.get("effectivePeriod")
    return (
        parse_datetime(resource.get("effectiveDateTime"))
        or parse_datetime(period.get("start") if isinstance(period, dict) else None)
        or parse_datetime(resource.get("effectiveInstant"))
        or parse_datetime(resource.get("issued"))
    )


def component_reference(resource: dict, loinc: str) -> str:
    """How a panel's result is named in evidence and reports: it has no id of its own."""
    return f"component {loinc} of {resource_label(resource)}"


def read_observation(
    resource: dict, analyte: LabAnalyte, loinc: str, component: dict | None = None
) -> tuple[LabResult | None, str | None]:
    """A LabResult, or why this Observation (or this `component` of it, A19) cannot be used. A component's value,
    range and flags are its own; its status and date are the Observation's."""
    holder = resource if component is None else component
    if not code_in(resource.get("status"), USABLE_STATUSES):
        return None, f"status {resource.get('status')!r} is not final, amended or corrected"
    effective = observation_effective(resource)
    if effective is None:
        return None, "no effective date"
    quantity = holder.get("valueQuantity")
    if not isinstance(quantity, dict) or finite_number(quantity.get("value")) is None:
        return None, "no numeric valueQuantity"
    comparator = quantity.get("comparator") or ""
    if comparator and not code_in(comparator, BOUNDING_COMPARATORS):
        return None, f"value has comparator {comparator!r}"
    unit, why = _unit_of(quantity)
    if unit is None:
        return None, why
    factor = unit_factor(analyte, unit)
    if factor is None:
        return None, f"unit {unit!r} is not a known unit for {analyte.title}"
    reported = finite_number(quantity["value"])

    reference_high = None
    for reference_range in codeable_concepts(holder.get("referenceRange")):
        high = reference_range.get("high")
        if isinstance(high, dict) and finite_number(high.get("value")) is not None:
            # A range limit without a unit is in the value's unit; one in another unit is converted like the value.
            high_unit = unit if high.get("code") is None and high.get("unit") is None else _unit_of(high)[0]
            high_factor = unit_factor(analyte, high_unit) if high_unit else None
            if high_factor is not None:
                reference_high = finite_number(high["value"]) * high_factor
                break

    interpretation = set()
    for concept in codeable_concepts(holder.get("interpretation")):
        for coding in codeable_concepts(concept.get("coding")):
            if isinstance(coding.get("code"), str):
                interpretation.add(coding["code"].upper())

    label = resource_label(resource)
    return (
        LabResult(
            analyte=analyte.name,
            value=reported * factor,
            unit=analyte.unit,
            reported_value=reported,
            reported_unit=unit,
            effective=effective,
            loinc=loinc,
            reference=label if component is None else component_reference(resource, loinc),
            reference_high=reference_high,
            interpretation=frozenset(interpretation),
            comparator=comparator,
            resource=resource,
            observation=label,
        ),
        None,
    )


def _analyte_of(concept_holder: dict, terms: Terminology) -> tuple[str, str] | None:
    """(analyte, LOINC code) of the first of an Observation's (or a component's) codes that names an analyte."""
    for loinc in loinc_codes(concept_holder):
        name = terms.analyte_for_loinc(loinc)
        if name is not None:
            return name, loinc
    return None


def build_panel(
    observations: list[dict], terms: Terminology, now: datetime, validator: Callable[[dict], str | None] | None = None
) -> LabPanel:
    """The panel of the given Observations; with a `validator`, each is validated when first read (see LabPanel)."""
    panel = LabPanel(now=now, terms=terms, on_read=ValidateOnRead(validator) if validator else None)
    for resource in observations:
        read: set[str] = set()  # an analyte is read once per Observation: its own code first, then its components
        found = _analyte_of(resource, terms)
        if found is not None:
            read.add(found[0])
            _add(panel, resource, terms.labs[found[0]], found[1], None)
        components = resource.get("component")
        for component in components if isinstance(components, list) else ():
            if isinstance(component, dict) and (found := _analyte_of(component, terms)) and found[0] not in read:
                read.add(found[0])
                _add(panel, resource, terms.labs[found[0]], found[1], component)
    for results in panel.results.values():
        results.sort(key=lambda r: r.effective, reverse=True)
    return panel


def _add(panel: LabPanel, resource: dict, analyte: LabAnalyte, loinc: str, component: dict | None) -> None:
    result, why = read_observation(resource, analyte, loinc, component)
    if result is not None:
        panel.results.setdefault(analyte.name, []).append(result)
    else:
        reference = resource_label(resource) if component is None else component_reference(resource, loinc)
        panel.unusable.append({"resource": reference, "analyte": analyte.name, "issue": why})
