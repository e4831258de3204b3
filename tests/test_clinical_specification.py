"""The clinical specification travels with the project: every reference resolves in docs/clinical-specification.md.

The code, cards, docs, fixtures and the generated catalogue cite sections ("§1.4", "Part 3 #13"), product decisions
("A13") and verification sources ("S6", "(S8, S10)", "VERIFIED (S1)"). Each must name a heading of the specification
(with its HTML anchor), and nothing may point at the shared working file the specification was first written in,
which is not part of the project.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cds_service.service.catalogue import catalogue_document, render_catalogue
from cards import knowledge

from .conftest import ROOT

SPEC = ROOT / "docs" / "clinical-specification.md"
SCANNED_DIRS = ("cds_service", "cards", "docs", "fixtures")
SCANNED_FILES = ("README.md",)
SCANNED_SUFFIXES = {".py", ".md", ".json", ".txt", ".toml", ".yml", ".yaml"}
SHARED_FILE = "RULES" + ".md"  # spelt in two parts so that this file does not trip its own check

# A key as a word of its own: "A13", "(S8, S10)", "S1-S15", "Part A2/A3"; not "HbA1c", "ES384", "Z3A", and not an
# ICD-10-CM code such as "A41.9" or "S72.001A" (a key is never followed by ".<digit>").
DECISION = re.compile(r"(?<![\w.])A(\d{1,2})(?![\w]|\.\d)")
SOURCE = re.compile(r"(?<![\w.])S(\d{1,2})(?![\w]|\.\d)")
SECTION = re.compile(r"§\s?(\d+(?:\.\d+)?)")
SAFETY_NOTE = re.compile(r"Part 3 #(\d+)")
# "§" also numbers the sections of other documents (the CDS Hooks notes, "CDS Hooks 2.0 §1.7"); a section number
# belongs to the document named nearest before it, and to the clinical specification when none is named.
OTHER_DOCUMENTS = re.compile(r"CDS[ -]Hooks|CDS-HOOKS\.md|sandbox notes", re.IGNORECASE)
CLINICAL_DOCUMENTS = re.compile(r"RULES\.md|clinical[ -]specification", re.IGNORECASE)
CONTEXT_CHARS = 80
# A FHIR resource inside a fixture is patient data, not prose: its codes ("A41", a Synthea id) are not citations.
FHIR_DATA_KEYS = {"resourceType"}


def _project_files() -> Iterator[Path]:
    for name in SCANNED_FILES:
        yield ROOT / name
    for directory in SCANNED_DIRS:
        for path in sorted((ROOT / directory).rglob("*")):
            if path.is_file() and path.suffix in SCANNED_SUFFIXES and "__pycache__" not in path.parts:
                yield path


def _json_prose(value) -> Iterator[str]:
    """The strings of a JSON document that people wrote, leaving out embedded FHIR resources."""
    if isinstance(value, dict):
        if FHIR_DATA_KEYS & value.keys():
            return
        for item in value.values():
            yield from _json_prose(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_prose(item)
    elif isinstance(value, str):
        yield value


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _texts() -> list[tuple[str, str]]:
    """(where, text) for every scanned file and for the catalogue's three renderings."""
    texts = [(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")) for path in _project_files()]
    texts += [(f"catalogue ({fmt})", render_catalogue(fmt)) for fmt in ("text", "json")]
    texts.append(("catalogue (docs/rules.md)", catalogue_document()))
    return texts


def _prose() -> Iterator[tuple[str, Callable[[int], str]]]:
    """The text to search for keys, each with a function that names the place of an offset in it."""
    for where, text in _texts():
        if where.endswith(".json"):
            for string in _json_prose(json.loads(text)):
                yield string, (lambda offset, where=where, s=string:
                                f'{where} "…{s[max(0, offset - 30):offset + 30]}…"')
        else:
            yield text, lambda offset, where=where, text=text: f"{where}:{_line(text, offset)}"


def _clinical_sections(prose: str) -> Iterator[tuple[int, str]]:
    for match in SECTION.finditer(prose):
        before = prose[max(0, match.start() - CONTEXT_CHARS):match.start()]
        other = [m.end() for m in OTHER_DOCUMENTS.finditer(before)]
        clinical = [m.end() for m in CLINICAL_DOCUMENTS.finditer(before)]
        if other and (not clinical or max(other) > max(clinical)):
            continue
        yield match.start(), match.group(1)
    for match in SAFETY_NOTE.finditer(prose):
        yield match.start(), f"3.{match.group(1)}"


def _anchor(key: str) -> str:
    return "sec-" + key[1:].replace(".", "-") if key.startswith("§") else key


def _spec() -> tuple[set[str], set[str]]:
    """The keys that begin the specification's headings ("A13", "§3.15", "S6", "R08c") and its HTML anchors."""
    text = SPEC.read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{2,4} (\S+) — ", text, re.MULTILINE))
    anchors = set(re.findall(r'<a id="([A-Za-z][\w-]*)"></a>', text))
    return headings, anchors


def _unresolved(references: dict[str, list[str]]) -> list[str]:
    headings, anchors = _spec()
    problems = []
    for key, places in sorted(references.items()):
        missing = []
        if key not in headings:
            missing.append("heading")
        if _anchor(key) not in anchors:
            missing.append(f'anchor "{_anchor(key)}"')
        if missing:
            cited = ", ".join(places[:5]) + (" …" if len(places) > 5 else "")
            problems.append(f"{key} (cited at {cited}): no {' and no '.join(missing)}")
    return problems


def _references(find: Callable[[str], Iterator[tuple[int, str]]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for prose, place in _prose():
        for offset, key in find(prose):
            found.setdefault(key, []).append(place(offset))
    return found


def test_the_specification_stands_alone():
    assert SPEC.is_file(), "docs/clinical-specification.md is missing"
    assert SHARED_FILE not in SPEC.read_text(encoding="utf-8")


def test_nothing_refers_to_the_shared_working_file():
    places = [f"{where}:{_line(text, m.start())}" for where, text in _texts()
              for m in re.finditer(re.escape(SHARED_FILE), text)]
    assert not places, (f"{len(places)} references to {SHARED_FILE}, which is not part of the project; cite "
                        f"docs/clinical-specification.md instead:\n" + "\n".join(places))


def test_every_cited_section_has_its_heading():
    references = _references(lambda prose: ((m, f"§{key}") for m, key in _clinical_sections(prose)))
    assert references, "the scan found no section reference at all: the pattern no longer matches the citations"
    problems = _unresolved(references)
    assert not problems, "section references without a heading:\n" + "\n".join(problems)


def test_every_cited_decision_has_its_heading():
    references = _references(lambda prose: ((m.start(), f"A{int(m.group(1))}") for m in DECISION.finditer(prose)))
    assert "A1" in references, "the scan found no decision key: the pattern no longer matches the citations"
    problems = _unresolved(references)
    assert not problems, "decision keys without a heading:\n" + "\n".join(problems)


def test_every_cited_source_has_its_heading():
    references = _references(lambda prose: ((m.start(), f"S{int(m.group(1))}") for m in SOURCE.finditer(prose)))
    assert "S1" in references, "the scan found no source key: the pattern no longer matches the citations"
    problems = _unresolved(references)
    assert not problems, "source keys without an entry:\n" + "\n".join(problems)


def test_every_rule_and_the_gate_have_their_heading():
    rules = {rule_id: ["cards/"] for rule_id in ("G0", *knowledge().rules)}
    problems = _unresolved(rules)
    assert not problems, "rules without a heading:\n" + "\n".join(problems)


def test_the_specification_lists_every_decision_and_numbers_its_sources_without_gaps():
    headings, _anchors = _spec()
    decisions = sorted(int(key[1:]) for key in headings if re.fullmatch(r"A\d+", key))
    sources = sorted(int(key[1:]) for key in headings if re.fullmatch(r"S\d+", key))
    assert decisions == list(range(1, 23)), f"product decisions A1-A22 expected, found {decisions}"
    assert sources and sources == list(range(1, len(sources) + 1)), f"sources S1…Sn expected, found {sources}"


@pytest.mark.parametrize(("text", "sections", "decisions", "sources"), [
    ("RULES.md §1.3 and Part 3 #13: critical >= 5 mg/dL", {"§1.3", "§3.13"}, set(), set()),
    ("(CDS Hooks 2.0 §Security; sandbox notes §3.5)", set(), set(), set()),
    ("# --- security (CDS Hooks 2.0 §1.7) ---", set(), set(), set()),
    ("transcribed from the clinical specification (RULES.md §0-§1)", {"§0", "§1"}, set(), set()),
    ("Part A2/A3 of RULES.md; VERIFIED (S8, S10); not seen in S1-S15", set(), {"A2", "A3"}, {"S1", "S8", "S10", "S15"}),
    ("HbA1c, ES384, Z3A, A41.9 sepsis, S72.001A, T80.818A/D/S, Al(OH)3", set(), set(), set()),
])
def test_reference_patterns_match_the_forms_in_use_and_nothing_else(text, sections, decisions, sources):
    assert {f"§{key}" for _offset, key in _clinical_sections(text)} == sections
    assert {f"A{int(m.group(1))}" for m in DECISION.finditer(text)} == decisions
    assert {f"S{int(m.group(1))}" for m in SOURCE.finditer(text)} == sources
