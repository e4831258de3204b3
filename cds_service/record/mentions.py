"""How a word is meant in a short clinical text: affirmed, negated or uncertain (decision A18).

A Condition's name is often typed by a person: "r/o calciphylaxis", "without calcinosis", "calcinosis?" or
"CREST syndrome (calcinosis, Raynaud's...)". Finding the word is not enough; what surrounds it says whether the
record asserts it. This module is the matcher. What counts as a cue (the lists of negation and uncertainty cues, the
phrase ends, the names of other disorders that contain a word) is clinical content: the knowledge layer hands it in
as MentionRules.

The reading, NegEx-like (Chapman et al. 2001) but with the specification's own limits:
- the text is lower-cased; the names of other disorders (e.g. "CREST syndrome (calcinosis, ...)") are blanked out
  first, so the word inside them is no mention at all;
- a term matches whole words only ("nephrocalcinosis" is not "calcinosis"), bounded by characters that are neither
  letters nor digits;
- a cue applies in its direction: before the word ("no calcinosis"), after it ("calciphylaxis ruled out"), or both,
  when the word is among the `window` words next to the cue, in the same phrase (a phrase ends at the rules'
  punctuation or words, e.g. ". ; :" and "but", never at a comma);
- cues are matched longest first, so "not ruled out" (uncertain) is not read as "not" (negated); pseudo-cues ("no
  change") consume their words and mean nothing;
- when cues of both kinds apply, the nearest wins; at equal distance, uncertain wins (it still holds the gate, with
  no medication or diet proposed, which is the safer reading of a contradiction).

Why not a library: negspacy and medspaCy's ConText do this on a spaCy pipeline. Neither reads windows in words with
phrase ends at ";" and ":" but not at commas, as A18 asks (spaCy counts punctuation as tokens and scopes by sentence),
so their rules would need rewriting anyway; and spaCy with its dependencies is large and slow to import for reading
Condition names of a few words. The cue lists they ship are not the specification's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

AFFIRMED, NEGATED, UNCERTAIN = "affirmed", "negated", "uncertain"
BEFORE, AFTER, BOTH = "before", "after", "both"

# A word: letters and digits, joined by "/" (r/o, h/o, s/p, w/o) or an apostrophe (can't). Punctuation that may end a
# phrase, and "?" (itself a cue), are tokens of their own; every other character only separates words.
_TOKEN = re.compile(r"[a-z0-9]+(?:['’/][a-z0-9]+)*|[?.;:!]")
_PUNCTUATION = frozenset("?.;:!")


@dataclass(frozen=True, slots=True)
class Cue:
    phrase: str  # lower-case, e.g. "negative for", "r/o", "?"
    direction: str  # BEFORE: the cue precedes the word; AFTER: it follows it; BOTH


@dataclass(frozen=True)
class MentionRules:
    negated: tuple[Cue, ...]
    uncertain: tuple[Cue, ...]
    pseudo: tuple[str, ...] = ()  # phrases that look like cues but are not ("no change")
    window: int = 6  # a cue reaches the word when it is among the `window` words next to it
    phrase_ends: tuple[str, ...] = (".", ";", ":", "but")  # punctuation or words
    abbreviations: tuple[str, ...] = ()  # words whose trailing "." does not end the phrase ("vs.")
    other_names: tuple[str, ...] = ()  # regular expressions: names of other disorders that contain a term

    def __post_init__(self) -> None:
        for cue in self.negated + self.uncertain:
            if cue.direction not in (BEFORE, AFTER, BOTH):
                raise ValueError(f"cue {cue.phrase!r}: direction must be before, after or both")
        if self.window < 1:
            raise ValueError("the window is at least one word")


@dataclass(frozen=True, slots=True)
class Mention:
    term: str  # the term as listed
    status: str  # AFFIRMED, NEGATED or UNCERTAIN
    cue: str | None = None  # the cue that decided it


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    word: bool  # a word (counts for the window); else punctuation or "?"
    words_before: int  # how many words precede it in the text
    phrase: int  # which phrase it is in


@dataclass(frozen=True, slots=True)
class _Found:
    kind: str  # NEGATED, UNCERTAIN, or "" for a pseudo-cue
    cue: Cue | None
    start: int
    end: int  # token indices, end exclusive


def _words(phrase: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(phrase.lower()))


class _Compiled:
    """MentionRules prepared once: cue phrases as token tuples, longest first; the other names as one pattern."""

    def __init__(self, rules: MentionRules):
        self.rules = rules
        cues: list[tuple[tuple[str, ...], str, Cue | None]] = []
        for kind, listed in ((NEGATED, rules.negated), (UNCERTAIN, rules.uncertain)):
            cues += [(_words(cue.phrase), kind, cue) for cue in listed]
        cues += [(_words(phrase), "", None) for phrase in rules.pseudo]
        cues = [c for c in cues if c[0]]
        cues.sort(key=lambda c: -len(c[0]))
        self.cues_by_first: dict[str, list[tuple[tuple[str, ...], str, Cue | None]]] = {}
        for cue in cues:
            self.cues_by_first.setdefault(cue[0][0], []).append(cue)
        self.ends = frozenset(e.lower() for e in rules.phrase_ends)
        self.abbreviations = frozenset(a.lower() for a in rules.abbreviations)
        self.other_names = re.compile("|".join(f"(?:{p})" for p in rules.other_names)) if rules.other_names else None

    def tokens(self, text: str) -> list[_Token]:
        lowered = text.lower()
        if self.other_names is not None:  # the other disorder's name is blanked, keeping what is around it
            lowered = self.other_names.sub(lambda m: " " * len(m.group()), lowered)
        out: list[_Token] = []
        words = phrase = 0
        for match in _TOKEN.finditer(lowered):
            token = match.group()
            if token == "." and _inside_number(lowered, match.start()):
                continue
            if token == "." and out and out[-1].word and out[-1].text in self.abbreviations:
                continue
            if token in self.ends:
                phrase += 1
                continue
            is_word = token not in _PUNCTUATION
            out.append(_Token(token, is_word, words, phrase))
            words += is_word
        return out

    def cues(self, tokens: list[_Token]) -> list[_Found]:
        found: list[_Found] = []
        i = 0
        while i < len(tokens):
            for phrase, kind, cue in self.cues_by_first.get(tokens[i].text, ()):
                end = i + len(phrase)
                if end <= len(tokens) and all(tokens[i + k].text == phrase[k] for k in range(len(phrase))) \
                        and tokens[i].phrase == tokens[end - 1].phrase:
                    found.append(_Found(kind, cue, i, end))
                    i = end
                    break
            else:
                i += 1
        return found


def _inside_number(text: str, index: int) -> bool:
    """A decimal point ("2.5") is no phrase end."""
    return 0 < index < len(text) - 1 and text[index - 1].isdigit() and text[index + 1].isdigit()


@lru_cache(maxsize=16)
def _compiled(rules: MentionRules) -> _Compiled:
    return _Compiled(rules)


def _distance(tokens: list[_Token], cue: _Found, start: int, end: int) -> int | None:
    """Words between a cue and a term (start..end token indices) when the cue reaches it, else None."""
    if tokens[cue.start].phrase != tokens[start].phrase:
        return None
    direction = cue.cue.direction if cue.cue else BOTH
    if cue.end <= start and direction in (BEFORE, BOTH):
        last = tokens[cue.end - 1]
        between = tokens[start].words_before - (last.words_before + last.word)
    elif cue.start >= end and direction in (AFTER, BOTH):
        last = tokens[end - 1]
        between = tokens[cue.start].words_before - (last.words_before + 1)
    else:
        return None
    return between


def read_mentions(text: str | None, terms: Iterable[str], rules: MentionRules) -> tuple[Mention, ...]:
    """Each whole-word occurrence of a term in `text`, outside other disorders' names, with how it is meant."""
    if not isinstance(text, str) or not text.strip():
        return ()
    compiled = _compiled(rules)
    tokens = compiled.tokens(text)
    if not tokens:
        return ()
    cues = compiled.cues(tokens)
    cue_tokens = {i for c in cues for i in range(c.start, c.end)}
    mentions: list[Mention] = []
    for term in terms:
        phrase = _words(term)
        if not phrase:
            continue
        for start in range(len(tokens) - len(phrase) + 1):
            end = start + len(phrase)
            if any(tokens[start + k].text != phrase[k] for k in range(len(phrase))):
                continue
            if tokens[start].phrase != tokens[end - 1].phrase or cue_tokens.intersection(range(start, end)):
                continue
            mentions.append(_mention(term, tokens, cues, start, end, rules.window))
    return tuple(mentions)


def _mention(term: str, tokens: list[_Token], cues: list[_Found], start: int, end: int, window: int) -> Mention:
    nearest: tuple[int, int, _Found] | None = None  # (distance, 0 for uncertain / 1 for negated, cue)
    for cue in cues:
        if not cue.kind:
            continue
        between = _distance(tokens, cue, start, end)
        if between is None or between >= window:
            continue
        rank = (between, 0 if cue.kind == UNCERTAIN else 1)
        if nearest is None or rank < nearest[:2]:
            nearest = (*rank, cue)
    if nearest is None:
        return Mention(term, AFFIRMED)
    found = nearest[2]
    return Mention(term, found.kind, found.cue.phrase if found.cue else None)


def status_of(mentions: Iterable[Mention]) -> str | None:
    """What several mentions of one thing amount to: affirmed if any is, else uncertain if any is, else negated;
    None when there is no mention."""
    statuses = {m.status for m in mentions}
    for status in (AFFIRMED, UNCERTAIN, NEGATED):
        if status in statuses:
            return status
    return None
