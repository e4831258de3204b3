"""Read a service call's JSON body without building the Observations no rule can read.

A record is mostly Observations the rules never read: vital signs, surveys, other labs, and years of the analytes
they do read, outside their look-back windows (a dialysis patient: thousands). Parsing them into Python objects only
to drop them in gathering was the largest part of a large call (docs/performance.md). Here msgspec reads, in C, the
request's members with each prefetch value as raw JSON text; then each prefetched search Bundle twice: once for the
few members of each resource that decide whether a rule can read it (its type, id, codes, components and dates),
once for each entry as raw text. An Observation is left out, never parsed, when

- it carries none of the LOINC codes the rules read, as its code or a component's (labs.classify_observation), or
- it is a lab result dated outside the window of every analyte it holds (selection.ObservationRoles.out_of_reach),

the very tests, on the very values, by which gathering and the selection leave it out of a body parsed whole (an
Observation's code is kept as its text, and each distinct text is parsed and read once a call: a record repeats a few
codes thousands of times); every other resource and member is parsed with json_text.parse_json, as the whole body
would be. The codes and date of each
Observation kept come with it (prefetch.PatientRecord.observation_codes) and are not worked out again.

A lab result left out for its date can still have its say in one thing: a resource in two prefetch keys counts once
(prefetch.gather keeps the first of each type and id). Where that can matter (another Observation of the record has
its id, or gathering may fetch more: a prefetch key absent, a Bundle with a next page), it stays in its place as a
stub, its type and id only, classified with its codes and date; the selection leaves it out at once, as it does the
same result parsed whole (selection.ObservationRoles.out_of_reach), before reading anything else of it.

A lab result in its window (with no component: nearly all) is not parsed either, yet: the rules read the newest
few of each analyte. It is kept as a stub of its type, id and subject, the fields gathering and the selection read,
holding its text (labs.UNPARSED); the lab panel parses it when a rule first reaches it (labs.LabPanel.whole), so a
dialysis patient's ~750 results of the last year cost a parse only for the ~65 the rules read.

Whatever the scan cannot read exactly so (JSON that msgspec refuses or orjson would, text that is not UTF-8, an entry
or resource that is not an object, `entry` not an array) is parsed whole instead, with the same errors and results.
Members that neither CDS Hooks defines for a request nor FHIR for a Bundle are not kept (the service reads none).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Collection

import msgspec

from .codes import read_codes as codes_of
from .json_text import parse_json
from .labs import UNPARSED, ObservationClass, classify_observation, effective_of
from .selection import ObservationRoles

_Raw = msgspec.Raw
_UNSET = msgspec.UNSET


class _Body(msgspec.Struct):
    """A CDS Hooks request's members (the specification's; the service reads no other); each prefetch value as text."""

    hook: Any = _UNSET
    hookInstance: Any = _UNSET
    fhirServer: Any = _UNSET
    fhirAuthorization: Any = _UNSET
    context: Any = _UNSET
    prefetch: dict[str, _Raw] | None | msgspec.UnsetType = _UNSET
    extension: Any = _UNSET


class _Head(msgspec.Struct):
    """The members of a resource that decide whether a rule can read it (labs.classify_observation reads these and
    no other), built as parse_json builds them; the rest of the resource is skipped. `code` stays text: a record
    repeats a few codes thousands of times, and each distinct text is read once (_scan_value)."""

    resourceType: Any = None
    id: Any = None
    subject: Any = None
    code: _Raw = None  # None: absent
    component: Any = None
    effectiveDateTime: Any = None
    effectivePeriod: Any = None
    effectiveInstant: Any = None
    issued: Any = None


class _HeadEntry(msgspec.Struct):
    resource: _Head | None = None


class _Bundle(msgspec.Struct):
    """A Bundle's members (FHIR R4's: a Bundle has no other), its entries' resources read as _Head."""

    resourceType: Any = _UNSET
    id: Any = _UNSET
    meta: Any = _UNSET
    implicitRules: Any = _UNSET
    language: Any = _UNSET
    identifier: Any = _UNSET
    type: Any = _UNSET
    timestamp: Any = _UNSET
    total: Any = _UNSET
    link: Any = _UNSET
    entry: list[_HeadEntry] | None | msgspec.UnsetType = _UNSET
    signature: Any = _UNSET


class _BundleEntries(msgspec.Struct):
    """A Bundle's entries, each as text."""

    entry: list[_Raw] = []


_body = msgspec.json.Decoder(_Body)
_bundle = msgspec.json.Decoder(_Bundle)
_bundle_entries = msgspec.json.Decoder(_BundleEntries)


def _present(struct: msgspec.Struct, skip: str = "") -> dict[str, Any]:
    """The members a struct read, in its fields' order, as a dict (UNSET: absent from the text)."""
    return {name: value for name in struct.__struct_fields__
            if name != skip and (value := getattr(struct, name)) is not _UNSET}


def parse_call_body(raw: bytes, read_codes: frozenset[str], roles: ObservationRoles,
                    keys: Collection[str] | None = None) -> tuple[Any, dict[int, ObservationClass]]:
    """(the body as parse_json reads it, less the prefetched Observations no rule can read; the ObservationClass of
    each prefetched Observation kept, by id() of its dict). Raises what parse_json raises for a body that is not
    JSON. `read_codes`: terminology.read_loinc_codes; `roles`: the selection's, at the call's `now`; `keys`: the
    service's prefetch keys (None: as if some were absent, so that every stub is kept)."""
    classified: dict[int, ObservationClass] = {}
    code_texts: dict[bytes, Any] = {}  # the read codes of each distinct code text of the call's Observations
    try:
        if not raw.isascii():
            raw.decode("utf-8")  # the scan skips text without reading it: refuse what a whole parse would refuse
        scanned = _body.decode(raw)
        body = _present(scanned)
        if isinstance(scanned.prefetch, dict):
            scans = {key: _scan_value(value, read_codes, roles, code_texts) for key, value in scanned.prefetch.items()}
            ids: Counter = Counter()
            may_fetch = keys is None or any(key not in scans for key in keys)
            for result in scans.values():
                if isinstance(result, _Scan):
                    ids.update(result.observation_ids)
                    may_fetch = may_fetch or result.has_next
            body["prefetch"] = {key: result.bundle(classified, read_codes, ids, may_fetch)
                                if isinstance(result, _Scan) else result for key, result in scans.items()}
    except (msgspec.MsgspecError, UnicodeDecodeError, ValueError, RecursionError):
        return parse_json(raw), {}  # what the scan cannot read exactly as a whole parse does (the module's docstring)
    return body, classified


def _parse(raw: _Raw) -> Any:
    return parse_json(memoryview(raw))


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class _Scan:
    """A search Bundle scanned: for each entry, what to do with it; the ids of its Observations a rule may read."""

    def __init__(self, bundle: _Bundle, entries: list[_Raw]):
        self.members = bundle
        self.has_next = _has_next(bundle.link)
        # (the entry's text, (_, codes, date) as the scan found them, or None) for an entry to parse; (the entry's
        # text, (its _Head, codes, date)) for a lab result to parse when read; (None, (id, codes, date)) for a stub
        # of a result out of every window.
        self.decisions: list[tuple[_Raw | None, Any]] = []
        self.observation_ids: list[Any] = []
        self.entries = entries

    def bundle(self, classified: dict[int, ObservationClass], read_codes: frozenset[str], ids: Counter,
               may_fetch: bool) -> dict[str, Any]:
        kept = []
        for raw_entry, found in self.decisions:
            if raw_entry is None:
                stub_id, codes, effective = found
                if may_fetch or ids[stub_id] > 1:  # a stub only where it can matter (the module's docstring)
                    stub = {"resourceType": "Observation", "id": stub_id}
                    classified[id(stub)] = (stub, codes, effective)
                    kept.append({"resource": stub})
                continue
            if found is not None and type(found[0]) is _Head:
                head, codes, effective = found
                stub = {"resourceType": "Observation", UNPARSED: raw_entry}
                if head.id is not None:
                    stub["id"] = head.id
                if head.subject is not None:
                    stub["subject"] = head.subject
                classified[id(stub)] = (stub, codes, effective)
                kept.append({"resource": stub})
                continue
            entry = _parse(raw_entry)  # the entry whole (fullUrl, search...), as a whole parse reads it
            if found is not None:
                resource = entry["resource"]
                # A panel's codes name its component dicts (A19): the resource's own, not those of the scan's copy.
                classified[id(resource)] = (classify_observation(resource, read_codes) if found[1][1]
                                            else (resource, found[1], found[2]))
            kept.append(entry)
        scanned = _present(self.members, skip="entry")
        scanned["entry"] = kept
        return scanned


def _has_next(links: Any) -> bool:
    return isinstance(links, list) and any(isinstance(link, dict) and link.get("relation") == "next" for link in links)


_UNREAD = object()


def _code_value(raw: _Raw | None) -> Any:
    """An Observation's code as parse_json builds it from the body (None when absent)."""
    return None if raw is None else parse_json(memoryview(raw))


def _scan_value(raw: _Raw, read_codes: frozenset[str], roles: ObservationRoles, code_texts: dict[bytes, Any]) -> Any:
    """One prefetch value: a search Bundle scanned (_Scan), anything else parsed whole."""
    text = memoryview(raw)
    if text[:1] != b"{":
        return parse_json(text)  # null, or something the protocol refuses
    try:
        bundle = _bundle.decode(raw)
    except msgspec.ValidationError:
        return parse_json(text)  # an entry or resource that is not an object, `entry` not an array: the old way
    if bundle.resourceType != "Bundle" or not bundle.entry:
        return parse_json(text)  # a resource (the Patient), or a Bundle with no entry
    scan = _Scan(bundle, _bundle_entries.decode(raw).entry)
    decisions, ids = scan.decisions, scan.observation_ids
    for head_entry, raw_entry in zip(bundle.entry, scan.entries):
        head = head_entry.resource
        found = None
        if head is not None and head.resourceType == "Observation":
            if head.component is None:
                # Nearly every Observation: with no component its read codes are those of its code alone (as
                # labs.classify_observation reads them), the same for every copy of one code's text.
                text = b"" if head.code is None else bytes(head.code)
                codes = code_texts.get(text, _UNREAD)
                if codes is _UNREAD:
                    codes = code_texts[text] = codes_of({"code": _code_value(head.code)}, read_codes)
                if codes is None:
                    continue  # as gathering leaves it out, before anything else
                found = (None, codes, effective_of(head.effectiveDateTime, head.effectivePeriod, head.effectiveInstant,
                                                   head.issued))
            else:
                skeleton = {"code": _code_value(head.code), "component": head.component,
                            "effectiveDateTime": head.effectiveDateTime, "effectivePeriod": head.effectivePeriod,
                            "effectiveInstant": head.effectiveInstant, "issued": head.issued}
                found = classify_observation(skeleton, read_codes)
                if found is None:
                    continue  # as gathering leaves it out, before anything else
            # An id that cannot be hashed (an object: not valid FHIR) makes no duplicate (prefetch._add_unique).
            counted = head.id is not None and _hashable(head.id)
            if counted:
                ids.append(head.id)
            if roles.out_of_reach(found[1], found[2]):
                if counted:
                    decisions.append((None, (head.id, found[1], found[2])))
                continue
            if not found[1][1] and roles.of(found[1])[1]:  # a lab result with no component: parsed when read
                decisions.append((raw_entry, (head, found[1], found[2])))
                continue
        decisions.append((raw_entry, found))
    bundle.entry = None  # the heads are done with
    return scan
