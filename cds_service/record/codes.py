"""Code systems as the record names them, and the LOINC codes of an Observation.

Clients name one code system by several URIs (ICD-10-CM arrives under the WHO ICD-10 URI too; OIDs for all of them);
every reader of the record compares systems by the short key these give.
"""

from __future__ import annotations

from typing import Any

SYSTEM_ALIASES = {
    "http://hl7.org/fhir/sid/icd-10": "icd10cm",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10cm",
    "urn:oid:2.16.840.1.113883.6.90": "icd10cm",
    "http://snomed.info/sct": "snomed",
    "urn:oid:2.16.840.1.113883.6.96": "snomed",
    "http://loinc.org": "loinc",
    "urn:oid:2.16.840.1.113883.6.1": "loinc",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "urn:oid:2.16.840.1.113883.6.88": "rxnorm",
    "http://www.whocc.no/atc": "atc",
}
_LOINC_SYSTEMS = frozenset(uri for uri, key in SYSTEM_ALIASES.items() if key == "loinc")


def system_key(system: Any) -> str | None:
    """The short key of a code system URI; a system of another JSON type is none."""
    return SYSTEM_ALIASES.get(system) if isinstance(system, str) else None


def normalise_code(system: str, code: str) -> str:
    code = code.strip().upper()
    return code.replace(".", "") if system == "icd10cm" else code


def loinc_codes(resource: dict, among: frozenset[str] | None = None) -> list[str]:
    """The LOINC codes of an Observation, in order; with `among`, only those in it. Written with exact type checks
    and the set lookup first because it runs on every Observation of a record (thousands in a long one)."""
    code = resource.get("code")
    codings = code.get("coding") if type(code) is dict else None
    if type(codings) is not list:
        return []
    found = []
    for coding in codings:
        if type(coding) is dict:
            value = coding.get("code")
            if type(value) is str and (among is None or value in among):
                system = coding.get("system")
                if isinstance(system, str) and system in _LOINC_SYSTEMS:
                    found.append(value)
    return found


def component_loinc_codes(resource: dict, among: frozenset[str] | None = None) -> list[str]:
    """The LOINC codes of an Observation's components, in order (decision A19: a panel such as a basic metabolic
    panel carries its results there, under a panel code no rule reads)."""
    components = resource.get("component")
    if type(components) is not list:
        return []
    found = []
    for component in components:
        if type(component) is dict:
            found.extend(loinc_codes(component, among))
    return found


def has_loinc_code(resource: dict, among: frozenset[str]) -> bool:
    """Whether an Observation carries one of these LOINC codes, as its code or a component's: the test that keeps an
    Observation a rule may read (prefetch and selection), panels included."""
    return bool(loinc_codes(resource, among)) or bool(component_loinc_codes(resource, among))


# What of an Observation a rule may read, worked out once per Observation (prefetch.gather, where the Observations no
# rule reads are left out: labs.classify_observation) and reused by the selection and the lab panel: its own LOINC
# codes among the read ones, in order, and each component (a panel's result, A19) that has some, with them, in order.
ReadCodes = tuple[tuple[str, ...], tuple[tuple[dict, tuple[str, ...]], ...]]

# The ReadCodes of an Observation with one read code of its own and no component (nearly every lab result), one
# object per code: bounded by the read codes, which a client cannot add to.
_ONE_CODE: dict[str, ReadCodes] = {}


def _codes_among(holder: dict, among: frozenset[str]) -> tuple[str, ...]:
    """loinc_codes(holder, among) as a tuple (the same tests, inlined: it runs on every Observation of a record)."""
    code = holder.get("code")
    codings = code.get("coding") if type(code) is dict else None
    if type(codings) is not list:
        return ()
    found: tuple[str, ...] = ()
    for coding in codings:
        if type(coding) is dict:
            value = coding.get("code")
            if type(value) is str and value in among:
                system = coding.get("system")
                if isinstance(system, str) and system in _LOINC_SYSTEMS:
                    found += (value,)
    return found


def read_codes(resource: dict, among: frozenset[str]) -> ReadCodes | None:
    """The ReadCodes of an Observation, or None when it carries none of these codes (has_loinc_code is false)."""
    components = resource.get("component")
    if components is None:
        code = resource.get("code")
        codings = code.get("coding") if type(code) is dict else None
        if type(codings) is list and len(codings) == 1:
            # One coding and no component: nearly every Observation of a record, read here without the general
            # path's calls and tuples (the same tests as _codes_among).
            coding = codings[0]
            if type(coding) is dict:
                value = coding.get("code")
                if type(value) is str and value in among:
                    system = coding.get("system")
                    if isinstance(system, str) and system in _LOINC_SYSTEMS:
                        found = _ONE_CODE.get(value)
                        if found is None:
                            found = _ONE_CODE[value] = ((value,), ())
                        return found
            return None
    own = _codes_among(resource, among)
    parts: tuple[tuple[dict, tuple[str, ...]], ...] = ()
    if type(components) is list:
        parts = tuple((component, codes) for component in components
                      if type(component) is dict and (codes := _codes_among(component, among)))
    if own or parts:
        return (own, parts) if parts or len(own) != 1 else _ONE_CODE.setdefault(own[0], (own, ()))
    return None
