"""The scope gate G0 read precisely (decisions A1, A17, A18): which Conditions put a patient in scope, as which kind
of calcinosis, and whether that diagnosis is confirmed.

- A code of the gate's value sets counts (L94.2, SNOMED CT 6595006, 17141001, 237900002).
- The words count in `Condition.code.text`, and in a coding's display only when that coding's code is not a code of
  another concept of the value sets (an M34.1 "CREST syndrome (calcinosis, ...)" display is systemic sclerosis).
  Whole words only; not inside another disorder's name; not negated ("without calcinosis"). How the words are meant
  is read by the record layer's mention reader with this knowledge's cues (data/condition-text.json).
- The clinician's own words decide first: when `code.text` mentions a kind, the displays are not read for it (a
  display restates a code; "r/o calcinosis" typed over an L94.2 "Calcinosis cutis" is not confirmed).
- Provisional (the cards then propose no medication or diet; warnings and referrals stay): a `verificationStatus`
  unconfirmed, provisional or differential (the first is the parent of the other two in FHIR), an uncertain mention
  ("r/o calciphylaxis", "calcinosis?"), or a coded Condition whose own text negates it (the record contradicts
  itself: neither firm enough to propose a drug nor to drop the warnings).
- A17: a calcinosis cutis code whose text names calciphylaxis and not calcinosis counts as calciphylaxis (EHRs file
  calciphylaxis under L94.2); the patient is then in scope through calciphylaxis alone.

Used by: every rule through G0, and directly by R01, R02, R03, R04, R08a, R08b, R08c, R11, R12, R14, R17, R22.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cds_service.engine.authoring import (
    AFFIRMED,
    CONFIRMED,
    NEGATED,
    PROVISIONAL,
    UNCERTAIN,
    ConditionFact,
    Cue,
    Finding,
    Mention,
    MentionRules,
    PatientFacts,
    Scope,
    codeable_concepts,
    condition_evidence,
    definition,
    read_mentions,
    status_of,
)

# The value sets of the conditions that put a patient in scope (G0), in the order their evidence is listed.
GATE_VALUE_SETS = ("calcinosis-cutis", "calciphylaxis", "tumoral-calcinosis")
CALCIPHYLAXIS = "calciphylaxis"
PROVISIONAL_VERIFICATION = frozenset({"unconfirmed", "provisional", "differential"})
CONDITION_TEXT = Path(__file__).resolve().parent.parent / "data" / "condition-text.json"


@lru_cache(maxsize=1)
def mention_rules() -> MentionRules:
    """A18's cues, phrase ends and other disorders' names, from data/condition-text.json (read once)."""
    data = json.loads(CONDITION_TEXT.read_text(encoding="utf-8"))
    return MentionRules(
        negated=tuple(Cue(c["cue"], c["direction"]) for c in data["negated"]),
        uncertain=tuple(Cue(c["cue"], c["direction"]) for c in data["uncertain"]),
        pseudo=tuple(data["pseudo"]),
        window=int(data["window_words"]),
        phrase_ends=tuple(data["phrase_ends"]),
        abbreviations=tuple(data["abbreviations"]),
        other_names=tuple(entry["pattern"] for entry in data["other_disorder_names"]),
    )


@dataclass(frozen=True)
class GateCondition:
    """One Condition that holds the gate, and each kind of calcinosis it holds it as: (value set, certainty, evidence)."""

    condition: ConditionFact
    kinds: tuple[tuple[str, str, dict], ...]


def _words_read(facts: PatientFacts, condition: ConditionFact, kind: str, *,
                skip_displays_of: str | None = None) -> tuple[str | None, list[Mention], str | None]:
    """(status, mentions, where: "text" or "display") of a kind's words in a Condition: its text decides when it
    mentions them; else the displays of codings that are not another concept's (nor, with skip_displays_of, of
    that value set)."""
    terms, rules = facts.terms, mention_rules()
    words = terms.value_set(kind).words
    text = condition.code.get("text")
    mentions = list(read_mentions(text, words, rules)) if isinstance(text, str) else []
    if mentions:
        return status_of(mentions), mentions, "text"
    for coding in codeable_concepts(condition.code.get("coding")):
        concepts = terms.value_sets_of_coding(coding)
        if concepts - set(GATE_VALUE_SETS) or (skip_displays_of and skip_displays_of in concepts):
            continue
        mentions += read_mentions(coding.get("display"), words, rules)
    return (status_of(mentions), mentions, "display") if mentions else (None, [], None)


def _coded(facts: PatientFacts, condition: ConditionFact) -> dict:
    coded = {}
    for coding in codeable_concepts(condition.code.get("coding")):
        for kind in GATE_VALUE_SETS:
            if kind not in coded and (match := facts.terms.value_set(kind).match_coding(coding)) is not None:
                coded[kind] = match
    return coded


def read_gate_condition(facts: PatientFacts, condition: ConditionFact) -> GateCondition:
    coded = _coded(facts, condition)
    readings = {kind: _words_read(facts, condition, kind) for kind in GATE_VALUE_SETS}
    named = {kind for kind, (status, _, _) in readings.items() if status in (AFFIRMED, UNCERTAIN)}
    if "calcinosis-cutis" in coded and CALCIPHYLAXIS in named:
        # A17: does anything but the calcinosis code's own display say calcinosis? If not, the code files calciphylaxis.
        own, _, _ = _words_read(facts, condition, "calcinosis-cutis", skip_displays_of="calcinosis-cutis")
        if own not in (AFFIRMED, UNCERTAIN):
            del coded["calcinosis-cutis"]
            readings["calcinosis-cutis"] = (None, [], None)
    kinds = []
    for kind in GATE_VALUE_SETS:
        status, mentions, where = readings[kind]
        if kind in coded:
            certainty = CONFIRMED if status in (None, AFFIRMED) else PROVISIONAL
            evidence = condition_evidence(condition, coded[kind])
        elif status in (AFFIRMED, UNCERTAIN):
            certainty = CONFIRMED if status == AFFIRMED else PROVISIONAL
            chosen = next(m for m in mentions if m.status == status)
            evidence = {"reference": condition.reference, "valueSet": kind, "matchedBy": where, "matched": chosen.term}
            if condition.text:
                evidence["text"] = condition.text
        else:
            continue
        if status in (UNCERTAIN, NEGATED):
            cue = next(m.cue for m in mentions if m.status == status)
            evidence["mention"] = {"status": status, "cue": cue}
        if condition.verification in PROVISIONAL_VERIFICATION:
            certainty = PROVISIONAL
            evidence["verificationStatus"] = condition.verification
        kinds.append((kind, certainty, {**evidence, "certainty": certainty}))
    return GateCondition(condition, tuple(kinds))


@definition
def gate_readings(facts: PatientFacts) -> tuple[GateCondition, ...]:
    """Every active Condition that holds G0, each once. The candidates are those the value sets' plain matcher
    finds (a code, or a word anywhere): the precise reading only narrows them."""
    seen, out = set(), []
    for value_set in GATE_VALUE_SETS:
        for condition, _ in facts.conditions_in(value_set):
            if condition.reference in seen:
                continue
            seen.add(condition.reference)
            reading = read_gate_condition(facts, condition)
            if reading.kinds:
                out.append(reading)
    return tuple(out)


@definition
def scope(facts: PatientFacts) -> Scope:
    """G0's answer: calcinosis (cutis or tumoral) and calciphylaxis, each confirmed, provisional or absent."""
    best: dict[str, str] = {}
    for reading in gate_readings(facts):
        for kind, certainty, _ in reading.kinds:
            group = CALCIPHYLAXIS if kind == CALCIPHYLAXIS else "calcinosis"
            if best.get(group) != CONFIRMED:
                best[group] = certainty
    return Scope(best.get("calcinosis"), best.get(CALCIPHYLAXIS), _evidence(facts))


def _evidence(facts: PatientFacts, only: str | None = None) -> tuple[dict, ...]:
    """The readings' evidence, by value set (the gate's order), then by Condition."""
    return tuple(
        evidence
        for value_set in GATE_VALUE_SETS if only in (None, value_set)
        for reading in gate_readings(facts)
        for kind, _, evidence in reading.kinds if kind == value_set
    )


@definition
def calcinosis(facts: PatientFacts) -> Finding:
    """G0 (A1) as a Finding: in scope, with the Conditions that hold it."""
    found = scope(facts)
    return Finding(bool(found), found.evidence)


@definition
def gate_conditions(facts: PatientFacts) -> tuple[ConditionFact, ...]:
    """The active Conditions that pass G0, each once."""
    return tuple(reading.condition for reading in gate_readings(facts))


@definition
def calciphylaxis(facts: PatientFacts) -> Finding:
    """Calciphylaxis (A1: SNOMED CT 237900002 or the word, never E83.59 alone), confirmed or provisional: a possible
    calciphylaxis still gets its warnings and its nephrology referral (A18)."""
    evidence = _evidence(facts, CALCIPHYLAXIS)
    return Finding(bool(evidence), evidence)


@definition
def tumoral_calcinosis(facts: PatientFacts) -> Finding:
    evidence = _evidence(facts, "tumoral-calcinosis")
    return Finding(bool(evidence), evidence)
