"""Laboratory results: the usable values of each analyte, newest first, in one canonical unit (decision A2), read
only as far as the rules read them (LabPanel).

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
from typing import Any, Callable, Iterable, Iterator

from .codes import ReadCodes, read_codes
from .json_text import parse_json
from .fhir_values import code_in, codeable_concepts, finite_number, parse_datetime, resource_label
from .terminology import LabAnalyte, Terminology
from .validation import ValidateOnRead

USABLE_STATUSES = frozenset({"final", "amended", "corrected"})
UCUM = "http://unitsofmeasure.org"
# Comparators that bound a value (A19); "ad" ("sufficient to achieve") says nothing a limit can be compared with.
BOUNDING_COMPARATORS = frozenset({"<", "<=", ">", ">="})


# A lab result the request body's scan kept without parsing it (record/request_scan.py) is a stub: its type, id and
# subject (what gathering and the selection read of it), with its entry's JSON text under this key (no JSON object
# has a key that is not a string). The panel parses it when a rule first reaches it (LabPanel.whole).
UNPARSED = object()

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


# How an Observation is read as lab results: (analyte, LOINC code, the component or None) for each analyte it holds,
# its own code first and then its components (A19), each analyte once.
LabRead = tuple[str, str, dict | None]


def lab_reads(codes: ReadCodes, terms: Terminology) -> tuple[tuple[LabRead, ...], bool]:
    """(what the panel reads from an Observation with these read codes (codes.read_codes): the first of its own codes
    that names an analyte, then in each component the first code that names one not already read; whether any of
    its own codes is a coded observation the facts read, e.g. pregnancy status). A lab result is an Observation
    that holds an analyte and is no coded observation."""
    own, components = codes
    reads: list[LabRead] = []
    coded = False
    for code in own:
        if not reads and (analyte := terms.analyte_for_loinc(code)) is not None:
            reads.append((analyte, code, None))
        if not coded and terms.observation_for_loinc(code) is not None:
            coded = True
    for component, component_codes in components:
        for code in component_codes:
            if (analyte := terms.analyte_for_loinc(code)) is not None:
                if all(analyte != read[0] for read in reads):
                    reads.append((analyte, code, component))
                break
    return tuple(reads), coded


def _newest_first(candidate: tuple) -> datetime:
    return candidate[0]


@dataclass
class LabPanel:
    """The results of each analyte in its look-back window, newest first, read only as far as the rules read them;
    and the results that could not be used, with why.

    At build time a result is only a candidate: its date (parsed once, by the selection), its Observation, analyte,
    LOINC code and component. The dates decide the order; nothing else of it is read yet. A candidate is read
    (read_observation: status, value, unit, range, flags) when a reader (`newest`, `latest`, `in_window`) reaches
    it, newest first, and the reading is remembered for the call. One that cannot be used (status, no value, unit,
    comparator...) is reported in `unusable` (the response's unusedLabResults) as it is reached, and the reader goes
    on to the next older one; candidates older than the result a rule used are never read nor reported. Observations
    without a readable date are reported when the panel is built (they have no place in the order).

    Results are validated as FHIR R4 (the `validator`) the same way, only when a rule gets to them, newest first: a
    result that fails is skipped for good, reported in `invalid`, and the next one is used; a result no rule reads
    is never validated (R4B validation is the largest cost of a call, and a long record holds many results nobody
    reads)."""

    now: datetime
    terms: Terminology
    unusable: list[dict[str, str]] = field(default_factory=list)
    on_read: ValidateOnRead | None = field(default=None, repr=False)
    # analyte -> (effective, Observation, LOINC code, component or None) in its window, newest first
    _candidates: dict[str, list[tuple]] = field(default_factory=dict, init=False, repr=False, compare=False)
    # analyte -> the readings of its first candidates, in the same order (None: could not be used)
    _read: dict[str, list[LabResult | None]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _latest: dict[str, LabResult | None] = field(default_factory=dict, init=False, repr=False, compare=False)
    _window: dict[str, tuple[datetime, datetime]] | None = field(default=None, init=False, repr=False, compare=False)
    # id() of a stub (UNPARSED) -> its resource parsed, once a call: a result read for two analytes is one resource
    _whole: dict[int, dict] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def invalid(self) -> list[dict[str, str]]:
        """Results found not valid FHIR R4 when a rule read them."""
        return self.on_read.invalid if self.on_read is not None else []

    def _windows(self, analyte: str) -> tuple[datetime, datetime]:
        """(start, end) of the analyte's look-back window (lab_windows, worked out once per panel)."""
        if self._window is None:
            self._window = lab_windows(self.terms, self.now)
        return self._window[analyte]

    def whole(self, resource: dict) -> dict:
        """The resource itself: a stub the scan did not parse (UNPARSED) is parsed here, once."""
        text = resource.get(UNPARSED)
        if text is None:
            return resource
        parsed = self._whole.get(id(resource))
        if parsed is None:
            parsed = self._whole[id(resource)] = parse_json(memoryview(text))["resource"]
        return parsed

    def add(self, resource: dict, effective: datetime | None, reads: tuple[LabRead, ...]) -> None:
        """Make an Observation's results candidates (`effective`: observation_effective(resource); `reads`:
        lab_reads), each in its analyte's window; without a date, report each as unusable now."""
        if effective is None:
            resource = self.whole(resource)
            for analyte, loinc, component in reads:
                self._report(resource, analyte, loinc, component,
                             read_observation(resource, self.terms.labs[analyte], loinc, component)[1])
            return
        for analyte, loinc, component in reads:
            start, end = self._windows(analyte)
            if start <= effective <= end:
                candidates = self._candidates.get(analyte)
                if candidates is None:
                    candidates = self._candidates[analyte] = []
                candidates.append((effective, resource, loinc, component))

    def _report(self, resource: dict, analyte: str, loinc: str, component: dict | None, why: str | None) -> None:
        reference = resource_label(resource) if component is None else component_reference(resource, loinc)
        self.unusable.append({"resource": reference, "analyte": analyte, "issue": str(why)})

    def _results(self, analyte: str) -> Iterator[LabResult]:
        """The usable results of the analyte in its window, newest first, each candidate read when reached (once a
        call: several readers may walk the same analyte, even at the same time)."""
        candidates = self._candidates.get(analyte, ())
        read = self._read.get(analyte)
        if read is None:
            read = self._read[analyte] = []
        for index, (effective, resource, loinc, component) in enumerate(candidates):
            if index == len(read):
                resource = self.whole(resource)
                result, why = read_observation(resource, self.terms.labs[analyte], loinc, component, effective)
                if result is None:
                    self._report(resource, analyte, loinc, component, why)
                read.append(result)
            result = read[index]
            if result is not None:
                yield result

    def _valid(self, result: LabResult) -> bool:
        return self.on_read is None or result.resource is None or self.on_read(
            result.resource, result.observation or result.reference)

    def newest(self, analyte: str, where: Callable[[LabResult], bool] | None = None) -> Iterator[LabResult]:
        """The valid results of the analyte in its look-back window (and matching `where`), newest first, each read
        and validated only when the reader gets to it."""
        return (r for r in self._results(analyte) if (where is None or where(r)) and self._valid(r))

    def in_window(self, analyte: str, where: Callable[[LabResult], bool] | None = None) -> list[LabResult]:
        """The valid results of the analyte in its look-back window (and matching `where`), newest first: all of its
        candidates are read."""
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
    return effective_of(resource.get("effectiveDateTime"), resource.get("effectivePeriod"),
                        resource.get("effectiveInstant"), resource.get("issued"))


def effective_of(date_time: object, period: object, instant: object, issued: object) -> datetime | None:
    """observation_effective from the four members' values (the body's scan reads them without a resource dict)."""
    return (
        parse_datetime(date_time)
        or parse_datetime(period.get("start") if isinstance(period, dict) else None)
        or parse_datetime(instant)
        or parse_datetime(issued)
    )


# An Observation as the service reads it, worked out once a call where the record is first read (prefetch.gather) and
# reused by the selection and the panel: (the resource itself, its read codes, its date: observation_effective).
ObservationClass = tuple[dict, ReadCodes, datetime | None]


def classify_observation(resource: dict, among: frozenset[str]) -> ObservationClass | None:
    """The ObservationClass of an Observation, or None when it carries none of these LOINC codes (`among`: the read
    codes, terminology.read_loinc_codes), as its code or a component's (A19): no rule reads it."""
    codes = read_codes(resource, among)
    return None if codes is None else (resource, codes, observation_effective(resource))


def component_reference(resource: dict, loinc: str) -> str:
    """How a panel's result is named in evidence and reports: it has no id of its own."""
    return f"component {loinc} of {resource_label(resource)}"


def read_observation(
    resource: dict, analyte: LabAnalyte, loinc: str, component: dict | None = None,
    effective: datetime | None = None,
) -> tuple[LabResult | None, str | None]:
    """A LabResult, or why this Observation (or this `component` of it, A19) cannot be used. A component's value,
    range and flags are its own; its status and date are the Observation's (`effective`, when already read by
    observation_effective)."""
    holder = resource if component is None else component
    if not code_in(resource.get("status"), USABLE_STATUSES):
        return None, f"status {resource.get('status')!r} is not final, amended or corrected"
    if effective is None:
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


def build_panel(
    observations: list[dict], terms: Terminology, now: datetime, validator: Callable[[dict], str | None] | None = None,
    prepared: Iterable[tuple[dict, datetime | None, tuple[LabRead, ...]]] = (),
) -> LabPanel:
    """The panel of the given Observations; with a `validator`, each result is validated when first read (see
    LabPanel). `prepared`: Observations whose date and reads the selection has already worked out (resource,
    observation_effective, lab_reads), added after `observations`, which are read here."""
    panel = LabPanel(now=now, terms=terms, on_read=ValidateOnRead(validator) if validator else None)
    read = terms.read_loinc_codes
    for resource in observations:
        codes = read_codes(resource, read)
        if codes is not None and (reads := lab_reads(codes, terms)[0]):
            panel.add(resource, observation_effective(resource), reads)
    for resource, effective, reads in prepared:
        panel.add(resource, effective, reads)
    # Newest first; results of the same date keep the record's order (a stable sort), as before.
    for candidates in panel._candidates.values():
        candidates.sort(key=_newest_first, reverse=True)
    return panel
