"""The mention reader (cds_service/record/mentions.py) with the knowledge's cues (decision A18), word by word.

The scope gate's behaviour through the HTTP API is in test_scope_decisions.py; here, how one text is read.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cards.definitions.scope import mention_rules
from cds_service.record.mentions import AFFIRMED, NEGATED, UNCERTAIN, Cue, MentionRules, read_mentions, status_of

GATE_WORDS = ("calcinosis", "calcification of skin", "calciphylaxis", "tumoral calcinosis")


def read(text: str, words=GATE_WORDS) -> dict[str, str]:
    return {m.term: m.status for m in read_mentions(text, words, mention_rules())}


@pytest.mark.parametrize("text, word", [
    ("No calcinosis", "calcinosis"),
    ("without calcinosis", "calcinosis"),
    ("w/o calcinosis cutis", "calcinosis"),
    ("not calciphylaxis", "calciphylaxis"),
    ("Patient denies calcinosis", "calcinosis"),
    ("biopsy negative for calciphylaxis", "calciphylaxis"),
    ("calciphylaxis ruled out", "calciphylaxis"),
    ("ruled out calciphylaxis", "calciphylaxis"),
    ("Calciphylaxis, ruled out", "calciphylaxis"),  # a comma does not end the phrase
    ("calcinosis excluded", "calcinosis"),
    ("calcinosis cutis - resolved", "calcinosis"),
    ("history of calcinosis cutis", "calcinosis"),
    ("H/O calciphylaxis", "calciphylaxis"),
    ("s/p excision of calcinosis", "calcinosis"),
    ("family history of calcinosis", "calcinosis"),
    ("at risk of calciphylaxis", "calciphylaxis"),
    ("at risk for calciphylaxis", "calciphylaxis"),
])
def test_negated_mentions(text, word):
    assert read(text)[word] == NEGATED


@pytest.mark.parametrize("text, word", [
    ("r/o calciphylaxis", "calciphylaxis"),
    ("R/O Calciphylaxis", "calciphylaxis"),
    ("rule out calciphylaxis", "calciphylaxis"),
    ("rule-out calcinosis", "calcinosis"),
    ("possible calcinosis cutis", "calcinosis"),
    ("probable calciphylaxis", "calciphylaxis"),
    ("suspected calciphylaxis", "calciphylaxis"),
    ("calciphylaxis suspected", "calciphylaxis"),
    ("concern for calciphylaxis", "calciphylaxis"),
    ("calcinosis?", "calcinosis"),
    ("? calciphylaxis", "calciphylaxis"),
    ("cannot exclude calciphylaxis", "calciphylaxis"),
    ("calciphylaxis vs warfarin necrosis", "calciphylaxis"),
    ("vasculitis vs. calciphylaxis", "calciphylaxis"),  # "vs." ends no phrase
    ("calciphylaxis not ruled out", "calciphylaxis"),  # longest cue: not "not" (negated)
    ("calciphylaxis cannot be excluded", "calciphylaxis"),
])
def test_uncertain_mentions(text, word):
    assert read(text)[word] == UNCERTAIN


@pytest.mark.parametrize("text", [
    "Calcinosis cutis",
    "Calcinosis cutis of fingers, no infection",  # "no" reaches forward only
    "Dystrophic calcinosis cutis secondary to dermatomyositis",
    "no fever. calcinosis cutis",
    "no fever; calcinosis",
    "no fever: calcinosis",
    "no fever but calcinosis of the elbow",
    "no change in calcinosis",  # a pseudo-cue
    "no a b c d e f calcinosis",  # seven words on: out of reach
    "Mg 2.5. calcinosis",
])
def test_affirmed_mentions(text):
    assert read(text)["calcinosis"] == AFFIRMED


def test_the_window_is_six_words():
    assert read("no a b c d e calcinosis")["calcinosis"] == NEGATED  # the sixth word after the cue
    assert read("no a b c d e f calcinosis")["calcinosis"] == AFFIRMED
    assert read("calciphylaxis a b c d e ruled out")["calciphylaxis"] == NEGATED
    assert read("calciphylaxis a b c d e f ruled out")["calciphylaxis"] == AFFIRMED


@pytest.mark.parametrize("text", [
    "CREST syndrome (calcinosis, Raynaud's phenomenon, esophageal dysmotility, sclerodactyly, telangiectasia)",
    "CR(E)ST syndrome (calcinosis, Raynaud)",
    "Calcinosis, Raynaud's phenomenon, oesophageal dysfunction, sclerodactyly and telangiectasia",
    "nephrocalcinosis",
    "Nephrocalcinosis; medullary sponge kidney",
    "calcinosis2",
    "Bilateral striopallidodentate calcinosis",
    "calcinosis of intervertebral disc",
])
def test_no_mention_inside_words_or_another_disorders_name(text):
    assert "calcinosis" not in read(text)


def test_a_mention_beside_another_disorders_name_still_counts():
    assert read("CREST syndrome (calcinosis, Raynaud's); calcinosis cutis of fingers")["calcinosis"] == AFFIRMED


def test_each_word_is_read_on_its_own():
    assert read("possible calcinosis, no calciphylaxis") == {"calcinosis": UNCERTAIN, "calciphylaxis": NEGATED}
    assert read("Calcinosis cutis (not calciphylaxis)") == {"calcinosis": AFFIRMED, "calciphylaxis": NEGATED}
    assert read("calcification of skin") == {"calcification of skin": AFFIRMED}


def test_the_nearest_cue_wins_and_uncertainty_wins_a_tie():
    assert read("no suspected calciphylaxis")["calciphylaxis"] == UNCERTAIN  # "suspected" is nearer
    rules = MentionRules(negated=(Cue("no", "before"),), uncertain=(Cue("maybe", "after"),))
    assert read_mentions("no calcinosis maybe", ["calcinosis"], rules)[0].status == UNCERTAIN


def test_status_of_several_mentions():
    assert status_of([]) is None
    mentions = read_mentions("no calcinosis; calcinosis?; calcinosis", ["calcinosis"], mention_rules())
    assert [m.status for m in mentions] == [NEGATED, UNCERTAIN, AFFIRMED]
    assert status_of(mentions) == AFFIRMED
    assert status_of(mentions[:2]) == UNCERTAIN and status_of(mentions[:1]) == NEGATED


def test_rules_are_checked():
    with pytest.raises(ValueError):
        MentionRules(negated=(Cue("no", "forwards"),), uncertain=())
    with pytest.raises(ValueError):
        MentionRules(negated=(), uncertain=(), window=0)


# Words that are no cue, no phrase end and no gate word: filler a person might type around the word.
FILLER = st.sampled_from(["left", "elbow", "skin", "lesion", "of", "the", "fingers", "chronic", "with", "pain", "and",
                          "severe", "stage", "4", "ckd", "dermatomyositis", "in", "on", "hand"])
CASES = st.sampled_from(["calcinosis", "Calcinosis", "CALCINOSIS", "cAlCiNoSiS"])


@settings(max_examples=200, deadline=None)
@given(before=st.lists(FILLER, max_size=8), after=st.lists(FILLER, max_size=8), word=CASES,
       separator=st.sampled_from([" ", ", ", " (", " - "]))
def test_without_a_cue_a_mention_is_affirmed_in_any_case(before, after, word, separator):
    text = " ".join(before) + separator + word + separator + " ".join(after)
    assert read(text)["calcinosis"] == AFFIRMED


@settings(max_examples=200, deadline=None)
@given(gap=st.lists(FILLER, max_size=10), cue=st.sampled_from(["no", "without", "denies", "negative for", "h/o"]))
def test_a_negation_reaches_the_next_six_words_only(gap, cue):
    status = read(f"{cue} {' '.join(gap)} calcinosis")["calcinosis"]
    assert status == (NEGATED if len(gap) <= 5 else AFFIRMED)


@settings(max_examples=200, deadline=None)
@given(gap=st.lists(FILLER, max_size=3), end=st.sampled_from([".", ";", ":", " but"]))
def test_a_phrase_end_stops_a_cue_and_a_comma_does_not(gap, end):
    words = " ".join(gap)
    assert read(f"no {words}{end} calcinosis")["calcinosis"] == AFFIRMED
    assert read(f"no {words}, calcinosis")["calcinosis"] == NEGATED


@settings(max_examples=200, deadline=None)
@given(prefix=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=4),
       suffix=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", max_size=4), cue=st.sampled_from(["", "no "]))
def test_only_whole_words_are_mentions(prefix, suffix, cue):
    assert "calcinosis" not in read(f"{cue}{prefix}calcinosis{suffix}")
