"""Code tables as data (the knowledge layer's cards/data/terminology*.json), loaded once and matched quickly.

A concept (a FHIR CodeableConcept as a dict) matches a value set by a coding (ICD-10-CM by prefix on the code with
dots removed, SNOMED CT / RxNorm / LOINC exactly) or, where no coding matches, by one of the value set's words in the
concept's text or a coding's display, or last by one of its product names (brand names whose ingredients vary, A15).
Words match whole and case-insensitively, bounded by characters that are neither letters nor digits (A15: so that
"Mg(OH)2" and "Phillips'" match and "magnesia" does not match inside a longer word). Every match says how it was
made and how well that code was verified, so that a card's evidence can show it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import orjson

from .codes import normalise_code, system_key

_LETTERS = re.compile(r"[a-z]+")  # runs of letters: how the candidate index finds where a word could start
PRODUCT_NAME = "product-name"  # Match.by of a product (brand) name: its ingredients are not known for sure (A15)


def _whole_words(words: list[str]) -> re.Pattern | None:
    """One pattern for all `words`, each matched whole: not preceded or followed by a letter or a digit."""
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(r"(?<![a-z0-9])(" + alternatives + r")(?![a-z0-9])")

# A text's word matches depend on the text alone, and the texts of a population's records are few (a code's display
# is the same for every patient), so they are remembered, up to this many per table; past it the memo starts afresh.
# (Codes are looked up in dicts and need no memo.)
TEXT_MEMO_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Match:
    """How a concept matched a value set: by a code (with its verification status) or by words."""

    value_set: str
    by: str  # "code", "text", or PRODUCT_NAME (a brand name whose ingredients vary)
    system: str | None
    code: str | None
    status: str  # verification status of the code, or "TEXT"
    matched: str  # the code or the words that matched
    display: str | None = None  # the value set's display of a matched code: how a card names a concept without text

    def as_evidence(self) -> dict[str, Any]:
        out = {"valueSet": self.value_set, "matchedBy": self.by, "matched": self.matched}
        if self.system:
            out["system"] = self.system
        if self.by == "code":
            out["verification"] = self.status
        if self.display:
            out["display"] = self.display
        return out


class ValueSet:
    def __init__(self, name: str, definition: dict, systems: dict[str, str]):
        self.name = name
        self.title: str = definition.get("title", name)
        self.codes: list[dict] = definition.get("codes", [])
        self.words: list[str] = [w.lower() for w in definition.get("text", [])]
        # Phrases that stop a text match: "not pregnant" is not pregnancy, "localized scleroderma" is not SSc.
        self.exclude_words: list[str] = [w.lower() for w in definition.get("exclude_text", [])]
        # Brand names of products that may hold the ingredients (A15): matched only when nothing else matches.
        self.product_names: list[str] = [w.lower() for w in definition.get("product_names", [])]
        self._exact: dict[tuple[str, str], dict] = {}
        self._prefixes: dict[str, list[tuple[str, dict]]] = {}
        for entry in self.codes:
            key = entry["system"]
            code = normalise_code(key, entry["code"])
            if entry.get("match") == "prefix":
                self._prefixes.setdefault(key, []).append((code, entry))
            else:
                self._exact[(key, code)] = entry
        # Word-boundary patterns, so that "pregnant" does not match "nonpregnant" and "O" is never a word.
        self._word_pattern = _whole_words(self.words)
        self._exclude_pattern = _whole_words(self.exclude_words)
        self._product_pattern = _whole_words(self.product_names)
        self._systems = systems
        self._text_memo: dict[str, str | None] = {}

    def code_entries(self, system: str) -> list[dict]:
        return [entry for entry in self.codes if entry["system"] == system]

    def match_coding(self, coding: dict) -> Match | None:
        if not isinstance(coding, dict):
            return None
        key = system_key(coding.get("system"))
        code = coding.get("code")
        if key is None or not isinstance(code, str) or not code.strip():
            return None
        norm = normalise_code(key, code)
        entry = self._exact.get((key, norm))
        if entry is None:
            for prefix, candidate in self._prefixes.get(key, ()):
                if norm.startswith(prefix):
                    entry = candidate
                    break
        if entry is None:
            return None
        return Match(self.name, "code", self._systems.get(key, key), code, entry.get("status", "UNVERIFIED"), code,
                     entry.get("display"))

    def match_text(self, text: str | None) -> str | None:
        if not text or self._word_pattern is None or not isinstance(text, str):
            return None
        try:
            return self._text_memo[text]
        except KeyError:
            pass
        lowered = text.lower()
        if self._exclude_pattern is not None and self._exclude_pattern.search(lowered):
            word = None
        else:
            found = self._word_pattern.search(lowered)
            word = found.group(1) if found else None
        if len(self._text_memo) >= TEXT_MEMO_SIZE:
            self._text_memo.clear()
        self._text_memo[text] = word
        return word

    def match_product_name(self, text: str | None) -> str | None:
        if not isinstance(text, str) or self._product_pattern is None:
            return None
        found = self._product_pattern.search(text.lower())
        return found.group(1) if found else None

    def match_concept(self, concept: Any) -> Match | None:
        """Match a CodeableConcept (dict); tolerate a list of them, a bare string or junk: by a code, else a word,
        else a product name."""
        concepts = concept if isinstance(concept, list) else [concept]
        for step in (self.match_codes, self.match_words, self.match_product_names):
            for item in concepts:
                if (found := step(item)) is not None:
                    return found
        return None

    def match_codes(self, concept: Any) -> Match | None:
        for coding in _codings(concept):
            if (found := self.match_coding(coding)) is not None:
                return found
        return None

    def match_words(self, concept: Any) -> Match | None:
        for text in _texts(concept):
            if word := self.match_text(text):
                return Match(self.name, "text", None, None, "TEXT", word)
        return None

    def match_product_names(self, concept: Any) -> Match | None:
        for text in _texts(concept):
            if name := self.match_product_name(text):
                return Match(self.name, PRODUCT_NAME, None, None, "TEXT", name)
        return None


def _codings(concept: Any) -> list:
    if not isinstance(concept, dict):
        return []
    codings = concept.get("coding")
    return codings if isinstance(codings, list) else [codings] if isinstance(codings, dict) else []


def _texts(concept: Any) -> list:
    """A concept's text, then its codings' displays (a bare string is its own text)."""
    if isinstance(concept, str):
        return [concept]
    if not isinstance(concept, dict):
        return []
    return [concept.get("text")] + [c.get("display") for c in _codings(concept) if isinstance(c, dict)]


@dataclass(frozen=True)
class LabAnalyte:
    name: str
    title: str
    window_days: int
    unit: str  # canonical UCUM unit all values are converted to
    codes: dict[str, dict]  # LOINC code -> entry
    factors: dict[str, float]  # UCUM unit -> factor to the canonical unit


class Terminology:
    def __init__(self, data: dict):
        self.versions: dict[str, str] = data.get("versions", {})
        self.systems: dict[str, str] = data["systems"]
        self.value_sets: dict[str, ValueSet] = {
            name: ValueSet(name, definition, self.systems) for name, definition in data["valueSets"].items()
        }
        self._read_loinc: frozenset[str] | None = None
        self._build_candidate_index()
        self.labs: dict[str, LabAnalyte] = {}
        self._lab_by_loinc: dict[str, str] = {}
        for name, definition in data["labs"].items():
            codes = {entry["code"]: entry for entry in definition["codes"]}
            self.labs[name] = LabAnalyte(
                name, definition["title"], int(definition["window_days"]), definition["unit"], codes,
                {unit: float(f) for unit, f in definition["factors"].items()},
            )
            for code in codes:
                self._lab_by_loinc[code] = name
        # Coded (non-numeric) observations the facts read, e.g. pregnancy status: LOINC code -> name.
        self.observations: dict[str, dict] = data.get("observations", {})
        self._observation_by_loinc: dict[str, str] = {
            entry["code"]: name for name, definition in self.observations.items() for entry in definition["codes"]
        }
        self.extra: dict[str, Any] = {
            k: v for k, v in data.items() if k not in ("valueSets", "labs", "systems", "observations")
        }

    def _build_candidate_index(self) -> None:
        """Which value sets could match a code or a word, so that a concept is matched only against those."""
        self._exact_index: dict[tuple[str, str], set[str]] = {}
        self._prefix_index: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (system, first char) -> (prefix, vs)
        # A word (or product name) matches only where no letter or digit precedes it, so where it matches, the run of
        # letters that starts there in the text is the word's own first run of letters: index words by that run, and a text
        # is looked up by its runs of letters (a few set lookups, not a substring search per word).
        self._word_index: dict[str, list[tuple[str, set[str]]]] = {}
        self._text_candidates: dict[str, frozenset[str]] = {}
        self._concept_candidates: dict[bytes, frozenset[str]] = {}
        for name, vs in self.value_sets.items():
            for entry in vs.codes:
                system, code = entry["system"], normalise_code(entry["system"], entry["code"])
                if entry.get("match") == "prefix":
                    self._prefix_index.setdefault((system, code[:1]), []).append((code, name))
                else:
                    self._exact_index.setdefault((system, code), set()).add(name)
            for word in vs.words + vs.product_names:
                first_run = _LETTERS.match(word)
                words = self._word_index.setdefault(first_run.group() if first_run else "", [])
                for known, names in words:
                    if known == word:
                        names.add(name)
                        break
                else:
                    words.append((word, {name}))

    def candidate_value_sets(self, concept: Any) -> frozenset[str]:
        """The value sets a CodeableConcept (or a list of them) could match: a superset, never narrower than
        ValueSet.match_concept (a word counts when it starts at a run of letters of the text and is found there;
        word-boundary matching only narrows that). Matching a concept against these alone gives the same matches as
        trying every value set. Remembered per concept (its exact JSON): concepts are terminology, and the same ones
        recur within a record (an encounter type) and across records."""
        try:
            key = orjson.dumps(concept)
        except (orjson.JSONEncodeError, TypeError):  # not JSON orjson writes (an integer beyond 64 bits): no memo
            return self._candidate_value_sets(concept)
        try:
            return self._concept_candidates[key]
        except KeyError:
            pass
        found = self._candidate_value_sets(concept)
        if len(self._concept_candidates) >= TEXT_MEMO_SIZE:
            self._concept_candidates.clear()
        self._concept_candidates[key] = found
        return found

    def _candidate_value_sets(self, concept: Any) -> frozenset[str]:
        found: set[str] = set()
        concepts = concept if isinstance(concept, list) else [concept]
        texts: list[str] = []
        for item in concepts:
            if isinstance(item, str):
                texts.append(item)
                continue
            if not isinstance(item, dict):
                continue
            codings = item.get("coding")
            codings = codings if isinstance(codings, list) else [codings] if isinstance(codings, dict) else []
            if isinstance(item.get("text"), str):
                texts.append(item["text"])
            for coding in codings:
                if not isinstance(coding, dict):
                    continue
                if isinstance(coding.get("display"), str):
                    texts.append(coding["display"])
                key, code = system_key(coding.get("system")), coding.get("code")
                if key is None or not isinstance(code, str) or not code.strip():
                    continue
                norm = normalise_code(key, code)
                found |= self._exact_index.get((key, norm), set())
                for prefix, name in self._prefix_index.get((key, norm[:1]), ()):
                    if norm.startswith(prefix):
                        found.add(name)
        if texts:
            found |= self._candidates_for_text(" ".join(texts))
        return frozenset(found)

    def _candidates_for_text(self, text: str) -> frozenset[str]:
        """The value sets one of whose words a text could hold (see candidate_value_sets), remembered per text."""
        try:
            return self._text_candidates[text]
        except KeyError:
            pass
        lowered = text.lower()
        found: set[str] = set()
        runs = {match.group() for match in _LETTERS.finditer(lowered)}
        runs.add("")  # words that do not start with a letter (none today) are looked for anywhere
        for run in runs:
            for word, names in self._word_index.get(run, ()):
                if word in lowered:
                    found |= names
        if len(self._text_candidates) >= TEXT_MEMO_SIZE:
            self._text_candidates.clear()
        result = self._text_candidates[text] = frozenset(found)
        return result

    def value_sets_of_coding(self, coding: Any) -> frozenset[str]:
        """The value sets whose codes include this coding's code (by exact code or prefix), whatever its display
        says: what concept the code itself stands for (decision A18 reads a display only when its code is not
        another concept's)."""
        if not isinstance(coding, dict):
            return frozenset()
        key, code = system_key(coding.get("system")), coding.get("code")
        if key is None or not isinstance(code, str) or not code.strip():
            return frozenset()
        norm = normalise_code(key, code)
        found = set(self._exact_index.get((key, norm), ()))
        found.update(name for prefix, name in self._prefix_index.get((key, norm[:1]), ()) if norm.startswith(prefix))
        return frozenset(found)

    def value_set(self, name: str) -> ValueSet:
        try:
            return self.value_sets[name]
        except KeyError:
            raise KeyError(f"no value set {name!r} in terminology.json") from None

    def analyte_for_loinc(self, code: str) -> str | None:
        return self._lab_by_loinc.get(code)

    def observation_for_loinc(self, code: str) -> str | None:
        """The coded observation (e.g. "pregnancy-status") a LOINC code stands for, if the facts read it."""
        return self._observation_by_loinc.get(code)

    @property
    def read_loinc_codes(self) -> frozenset[str]:
        """Every LOINC code a rule reads (lab analytes and coded observations), for a set lookup."""
        if self._read_loinc is None:
            self._read_loinc = frozenset(self._lab_by_loinc) | frozenset(self._observation_by_loinc)
        return self._read_loinc

    def observation_loinc_codes(self, names: Iterable[str] | None = None) -> list[str]:
        wanted = list(names) if names is not None else list(self.observations)
        return [entry["code"] for name in wanted for entry in self.observations[name]["codes"]]

    def lab_loinc_codes(self, analytes: Iterable[str] | None = None) -> list[str]:
        names = list(analytes) if analytes is not None else list(self.labs)
        return [code for name in names for code in self.labs[name].codes]

    def system_url(self, key: str) -> str:
        return self.systems[key]


def load_terminology(paths: Iterable[Path]) -> Terminology:
    """Code tables from JSON files (the knowledge layer names them): the first holds the systems, labs and coded
    observations; the others add value sets and labs, and a name defined twice is an error."""
    merged: dict = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not merged:
            merged = data
            continue
        for section in ("valueSets", "labs"):
            for key, value in data.get(section, {}).items():
                if key in merged.setdefault(section, {}):
                    raise ValueError(f"{section} {key!r} is defined in more than one terminology file")
                merged[section][key] = value
    return Terminology(merged)
