"""Laboratory results: the latest usable value per analyte, in one canonical unit, and whether it is high.

Part A2/A3 of RULES.md, in code:
- only Observations with status final, amended or corrected count; the latest inside the analyte's look-back window;
- a value is converted to the analyte's canonical unit with the factors of terminology.json; a value whose unit is
  not UCUM or not known for that analyte is never used, and the evidence says why;
- "high" is the Observation's own referenceRange.high (converted likewise), else its interpretation, else the adult
  default, which for phosphate and calcium does not apply under 18 (children's normal phosphate is higher).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .fhir_values import code_in, codeable_concepts, finite_number, parse_datetime, resource_label
from .terminology import LabAnalyte, Terminology

if TYPE_CHECKING:
    from .resources import ValidateOnRead

USABLE_STATUSES = frozenset({"final", "amended", "corrected"})
UCUM = "http://unitsofmeasure.org"
HIGH_INTERPRETATIONS = frozenset({"H", "HH", "HU"})
NOT_HIGH_INTERPRETATIONS = frozenset({"N", "L", "LL", "LU"})

# Adult upper limits where the lab gives none (RULES.md A3; PTH from §1.3, the wider ARUP interval).
ADULT_DEFAULT_HIGH = {
    "phosphate": 4.5,  # mg/dL
    "calcium": 10.2,  # mg/dL
    "calcium-corrected": 10.2,  # mg/dL
    "calcium-ionized": 1.32,  # mmol/L
    "magnesium": 2.6,  # mg/dL
    "pth": 65.0,  # pg/mL
}
# Analytes whose adult default must not be applied to a child (A3).
ADULT_ONLY_DEFAULTS = frozenset({"phosphate", "calcium", "calcium-corrected", "calcium-ionized"})


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
    reference: str  # "Observation/id"
    reference_high: float | None = None  # canonical unit
    interpretation: frozenset[str] = frozenset()
    calculated: bool = False  # e.g. corrected calcium computed here from a same-day albumin
    resource: dict | None = field(default=None, repr=False, compare=False, hash=False)  # validated on first use

    def evidence(self) -> dict[str, Any]:
        out = {
            "analyte": self.analyte,
            "value": round(self.value, 3),
            "unit": self.unit,
            "effective": self.effective.isoformat(),
            "reference": self.reference,
        }
        if self.loinc:
            out["loinc"] = self.loinc
        if (self.reported_unit, self.reported_value) != (self.unit, self.value):
            out["reported"] = f"{self.reported_value:g} {self.reported_unit}"
        if self.calculated:
            out["calculated"] = True
        return out


@dataclass(frozen=True, slots=True)
class HighAssessment:
    high: bool | None  # None: cannot be concluded (e.g. a child without a lab range)
    basis: str  # "reference range", "interpretation", "adult default > X unit", or why not concluded


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
    on_read: "ValidateOnRead | None" = field(default=None, repr=False)  # resources.ValidateOnRead
    _latest: dict[str, LabResult | None] = field(default_factory=dict, init=False, repr=False, compare=False)
    _window: dict[str, tuple[datetime, datetime]] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def invalid(self) -> list[dict[str, str]]:
        """Results found not valid FHIR R4 when a rule read them."""
        return self.on_read.invalid if self.on_read is not None else []

    def window_start(self, analyte: str) -> datetime:
        return self._windows(analyte)[0]

    def _windows(self, analyte: str) -> tuple[datetime, datetime]:
        """(start, end) of the analyte's look-back window (lab_windows, worked out once per panel)."""
        if self._window is None:
            self._window = lab_windows(self.terms, self.now)
        return self._window[analyte]

    def _valid(self, result: LabResult) -> bool:
        return self.on_read is None or result.resource is None or self.on_read(result.resource, result.reference)

    def _candidates(self, analyte: str, where: Callable[[LabResult], bool] | None) -> Iterator[LabResult]:
        start, end = self._windows(analyte)
        for result in self.results.get(analyte, ()):
            if start <= result.effective <= end and (where is None or where(result)):
                yield result

    def in_window(self, analyte: str, where: Callable[[LabResult], bool] | None = None) -> list[LabResult]:
        """The valid results of the analyte in its look-back window (and matching `where`), newest first."""
        return [r for r in self._candidates(analyte, where) if self._valid(r)]

    def latest(self, analyte: str) -> LabResult | None:
        # The rules ask for the same analytes many times a call; results and verdicts do not change within it.
        if analyte not in self._latest:
            self._latest[analyte] = next((r for r in self._candidates(analyte, None) if self._valid(r)), None)
        return self._latest[analyte]


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


def read_observation(resource: dict, analyte: LabAnalyte, loinc: str) -> tuple[LabResult | None, str | None]:
    """A LabResult, or why this Observation cannot be used."""
    if not code_in(resource.get("status"), USABLE_STATUSES):
        return None, f"status {resource.get('status')!r} is not final, amended or corrected"
    effective = parse_datetime(resource.get("effectiveDateTime")) or parse_datetime(
        (resource.get("effectivePeriod") or {}).get("start") if isinstance(resource.get("effectivePeriod"), dict) else None
    ) or parse_datetime(resource.get("effectiveInstant")) or parse_datetime(resource.get("issued"))
    if effective is None:
        return None, "no effective date"
    quantity = resource.get("valueQuantity")
    if not isinstance(quantity, dict) or finite_number(quantity.get("value")) is None:
        return None, "no numeric valueQuantity"
    if quantity.get("comparator") not in (None, ""):
        return None, f"value has comparator {quantity.get('comparator')!r}"
    unit, why = _unit_of(quantity)
    if unit is None:
        return None, why
    factor = unit_factor(analyte, unit)
    if factor is None:
        return None, f"unit {unit!r} is not a known unit for {analyte.title}"
    reported = finite_number(quantity["value"])

    reference_high = None
    for reference_range in codeable_concepts(resource.get("referenceRange")):
        high = reference_range.get("high")
        if isinstance(high, dict) and finite_number(high.get("value")) is not None:
            # A range limit without a unit is in the value's unit; one in another unit is converted like the value.
            high_unit = unit if high.get("code") is None and high.get("unit") is None else _unit_of(high)[0]
            high_factor = unit_factor(analyte, high_unit) if high_unit else None
            if high_factor is not None:
                reference_high = finite_number(high["value"]) * high_factor
                break

    interpretation = set()
    for concept in codeable_concepts(resource.get("interpretation")):
        for coding in codeable_concepts(concept.get("coding")):
            if isinstance(coding.get("code"), str):
                interpretation.add(coding["code"].upper())

    return (
        LabResult(
            analyte=analyte.name,
            value=reported * factor,
            unit=analyte.unit,
            reported_value=reported,
            reported_unit=unit,
            effective=effective,
            loinc=loinc,
            reference=resource_label(resource),
            reference_high=reference_high,
            interpretation=frozenset(interpretation),
            resource=resource,
        ),
        None,
    )


def build_panel(
    observations: list[dict], terms: Terminology, now: datetime, validator: Callable[[dict], str | None] | None = None
) -> LabPanel:
    """The panel of the given Observations; with a `validator`, each is validated when first read (see LabPanel)."""
    from .resources import ValidateOnRead, observation_loinc_codes

    panel = LabPanel(now=now, terms=terms, on_read=ValidateOnRead(validator) if validator else None)
    for resource in observations:
        for loinc in observation_loinc_codes(resource):
            name = terms.analyte_for_loinc(loinc)
            if name is None:
                continue
            result, why = read_observation(resource, terms.labs[name], loinc)
            if result is not None:
                panel.results.setdefault(name, []).append(result)
            else:
                panel.unusable.append({"resource": resource_label(resource), "analyte": name, "issue": why})
            break
    for results in panel.results.values():
        results.sort(key=lambda r: r.effective, reverse=True)
    return panel


def assess_high(result: LabResult, age_years: float | None) -> HighAssessment:
    if result.reference_high is not None:
        return HighAssessment(result.value > result.reference_high, f"above the lab's upper limit {result.reference_high:g} {result.unit}"
                              if result.value > result.reference_high else "within the lab's reference range")
    if result.interpretation & HIGH_INTERPRETATIONS:
        return HighAssessment(True, "flagged high by the lab")
    if result.interpretation & NOT_HIGH_INTERPRETATIONS:
        return HighAssessment(False, "not flagged high by the lab")
    default = ADULT_DEFAULT_HIGH.get(result.analyte)
    if default is None:
        return HighAssessment(None, "no reference range, interpretation or default limit")
    if result.analyte in ADULT_ONLY_DEFAULTS:
        if age_years is None:
            return HighAssessment(None, "age unknown, so the adult limit cannot be applied")
        if age_years < 18:
            return HighAssessment(None, "patient under 18: adult limits do not apply and the lab gave no range")
    high = result.value > default
    return HighAssessment(high, f"adult limit {default:g} {result.unit}" + (" exceeded" if high else " not exceeded"))
