"""Every card that any fixture scenario produces, checked against every card rule of CDS Hooks 2.0 (§Card) and the
project's own (A10, A11): the rules are read from the spec's card section, one assertion per requirement."""

import re
import uuid

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import given, settings
from hypothesis import strategies as st

from cards import knowledge

from .conftest import NOW, evaluate_scenario, load_scenario, scenario_names

CARD_FIELDS = {"uuid", "summary", "detail", "indicator", "source", "suggestions", "selectionBehavior",
               "overrideReasons", "links", "extension"}
ARTICLE = "Medscape: Calcinosis Cutis Treatment & Management (Nunley, 2020)"
# A20: the source label names the real source: the article for its rules, VisualDx for R08c, the overview for R23.
OWN_SOURCES = {"R08c": "VisualDx: Calciphylaxis", "R23": "Medscape: Calcinosis Cutis (Overview)"}


def all_cards():
    cards = []
    for name in scenario_names():
        hook = load_scenario(name).get("hook", "patient-view")
        for card in evaluate_scenario(name, NOW, hook)["cards"]:
            cards.append(pytest.param(card, id=f"{name}:{card['extension']['calcinosis-cds']['rules'][0]}"))
    return cards


def assert_not_empty(value, path):
    assert value not in (None, "", [], {}), f"{path} is null or empty (CDS Hooks: omit it instead)"
    if isinstance(value, dict):
        for key, item in value.items():
            assert_not_empty(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_not_empty(item, f"{path}[{i}]")


def check_coding(coding, path, display_required):
    assert isinstance(coding.get("code"), str) and coding["code"], f"{path}.code is required"
    assert isinstance(coding.get("system"), str) and coding["system"], f"{path}.system is required"
    if display_required:
        assert isinstance(coding.get("display"), str) and coding["display"], f"{path}.display is required"


CARDS = all_cards()


def test_the_fixtures_produce_cards_to_check():
    assert len(CARDS) >= 3


@pytest.mark.parametrize("card", CARDS)
def test_card_conforms(card):
    assert set(card) <= CARD_FIELDS, f"unknown card fields {set(card) - CARD_FIELDS}"
    assert_not_empty(card, "card")
    # uuid: needed for feedback and for the sandbox's Dismiss button
    uuid.UUID(card["uuid"])
    # summary: required, fewer than 140 characters
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140
    # indicator: required, one of three
    assert card["indicator"] in ("info", "warning", "critical")
    # detail: optional GitHub-flavored markdown string
    assert isinstance(card.get("detail", ""), str)
    # source: label required; url absolute; topic a Coding
    source = card["source"]
    rules = card["extension"]["calcinosis-cds"]["rules"]
    assert source["label"] == (OWN_SOURCES[rules[0]] if set(rules) <= set(OWN_SOURCES) else ARTICLE)
    assert re.match(r"^https?://", source["url"])
    check_coding(source["topic"], "source.topic", display_required=False)
    # suggestions: label required, uuid, actions with type and description; selectionBehavior required with them
    suggestions = card.get("suggestions", [])
    if suggestions:
        assert card["selectionBehavior"] in ("at-most-one", "any"), "selectionBehavior MUST be present with suggestions"
        if card["selectionBehavior"] == "at-most-one":
            assert sum(1 for s in suggestions if s.get("isRecommended")) <= 1  # cds-resp-1
    else:
        assert "selectionBehavior" not in card
    suggestion_uuids = [s["uuid"] for s in suggestions]
    assert len(suggestion_uuids) == len(set(suggestion_uuids))
    for s in suggestions:
        assert isinstance(s["label"], str) and s["label"]
        uuid.UUID(s["uuid"])
        assert isinstance(s.get("isRecommended", False), bool)
        for action in s.get("actions", []):
            assert action["type"] in ("create", "update", "delete")
            assert isinstance(action["description"], str) and action["description"]  # cds-resp-5
            if action["type"] == "delete":
                assert re.fullmatch(r"[A-Za-z]+/[A-Za-z0-9\-.]+", action["resourceId"])  # cds-resp-2
                assert "resource" not in action
            else:
                resource = action["resource"]
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)  # valid FHIR R4 (R4B models)
                assert resource.get("status") == "draft"
                assert resource.get("intent") == "proposal", "A10: suggestions are proposals"
    # overrideReasons: Codings, each with display (cds-resp-4); on warnings and critical cards
    if card["indicator"] in ("warning", "critical"):
        assert card.get("overrideReasons")
    for i, reason in enumerate(card.get("overrideReasons", [])):
        check_coding(reason, f"overrideReasons[{i}]", display_required=True)
    # links: label, url, type absolute|smart; appContext only on smart links (cds-resp-3)
    for link in card.get("links", []):
        assert link["label"] and link["url"] and link["type"] in ("absolute", "smart")
        if link["type"] == "absolute":
            assert re.match(r"^https?://", link["url"]) and "appContext" not in link
    # A11: the card names its rules and the data that made them fire (in the extension), and states its evidence
    # level; A20: the citation and the codes are on the rule's page, which the card links to.
    extension = card["extension"]["calcinosis-cds"]
    assert extension["rules"] and all(re.fullmatch(r"R\d{2}[a-z]?", r) for r in extension["rules"])
    assert any(item["rule"] == "G0" for item in extension["evidence"])
    assert set(extension["rules"]) <= {item["rule"] for item in extension["evidence"]}, "every rule shows its data"
    for rule_id in extension["rules"]:  # A10: each option states its evidence level
        assert knowledge().rules[rule_id].card_evidence in card["detail"], rule_id
    assert isinstance(extension["key"], str) and len(extension["keys"]) == len(extension["rules"])
    for s in suggestions:
        assert s["extension"]["calcinosis-cds"]["key"].startswith(tuple(extension["rules"]))


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from(["", "x", 0.0]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from("abc"), children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_an_empty_value_anywhere_in_a_card_is_refused_with_its_path(value):
    from cds_service.engine.card_model import CardError, _raise_at_empty_value, assert_no_empty_values

    def outcome(check):
        try:
            check(value, "card")
        except CardError as error:
            return str(error)
        return None

    # The one-pass check refuses exactly what the path-reporting walk refuses, and names the same first path.
    assert outcome(assert_no_empty_values) == outcome(_raise_at_empty_value)
    if value is None or value == "" or value == [] or value == {}:
        assert outcome(assert_no_empty_values) == "card is null or empty"


def test_an_empty_value_is_reported_where_it_is():
    from cds_service.engine.card_model import CardError, assert_no_empty_values

    assert_no_empty_values({"a": [0, False, {"b": "x"}]})
    with pytest.raises(CardError, match=r"^card\.a\[1\]\.b is null or empty$"):
        assert_no_empty_values({"a": [1, {"b": ""}]})
