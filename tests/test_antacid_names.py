"""Decision A15: magnesium and aluminium products by brand name and abbreviation, through the HTTP API (R05), and
the whole-word matcher they rely on.
"""

from __future__ import annotations

import copy

import pytest

from cards import terminology

from ._knowledge import cards_of, post_scenario, proposed
from .conftest import evaluate_scenario, fired_rules, load_scenario

VERIFY = "may contain magnesium and/or aluminium; formulations differ by product and country (some contain neither): verify the ingredients."


def order(text: str | None = None, *, name: str = "r05-order-sign-maalox-brand-ckd4", medication: dict | None = None) -> dict:
    """The response when the scenario's draft order is for `text` (or for a contained Medication)."""
    scenario = copy.deepcopy(load_scenario(name))
    draft = scenario["draftOrders"]["entry"][0]["resource"]
    draft.pop("medicationCodeableConcept", None)
    if medication is not None:
        draft["contained"] = [{**medication, "resourceType": "Medication", "id": "med"}]
        draft["medicationReference"] = {"reference": "#med"}
    else:
        draft["medicationCodeableConcept"] = {"text": text}
    return post_scenario(scenario)


def test_a15_maalox_in_ckd_4_is_critical_and_says_to_verify_the_ingredients():
    response = evaluate_scenario("r05-order-sign-maalox-brand-ckd4")
    (card,) = cards_of(response, "R05")
    assert card["indicator"] == "critical"  # severe renal insufficiency: the rule's own indicator is kept
    assert f"Maalox {VERIFY}" in card["detail"]
    assert any(a["type"] == "delete" for s in card["suggestions"] for a in s["actions"])


def test_a15_a_brand_keeps_the_warning_indicator_in_moderate_renal_insufficiency():
    (card,) = cards_of(order("Mylanta 10 mL", name="r05-order-sign-sucralfate-ckd3"), "R05")
    assert card["indicator"] == "warning" and VERIFY in card["detail"]


@pytest.mark.parametrize("text", [
    "Maalox", "MYLANTA liquid", "Gaviscon tablets", "Milk of Magnesia 30 mL", "MOM 30 mL at bedtime",
    "Phillips' Milk of Magnesia", "Phillips’ magnesia tablets", "Mag-Ox 400", "Rolaids chewable", "Riopan",
    "Gelusil", "Amphojel", "AlternaGEL 5 mL",
])
def test_a15_brand_names_fire_r05_and_say_to_verify(text):
    response = order(text)
    assert "R05" in fired_rules(response), text
    assert VERIFY in cards_of(response, "R05")[0]["detail"], text


@pytest.mark.parametrize("text", [
    "MgO 400 mg", "Mg(OH)2 400 mg/5 mL", "Al(OH)3 320 mg", "magaldrate 800 mg", "hydrotalcite 500 mg",
    "aluminium phosphate gel", "aluminum hydroxide 600 mg", "magnesium oxide 400 mg",
])
def test_a15_ingredients_and_their_formulae_fire_r05_without_the_caveat(text):
    response = order(text)
    assert "R05" in fired_rules(response), text
    assert VERIFY not in cards_of(response, "R05")[0]["detail"], text


@pytest.mark.parametrize("text", [
    "Phillips' Stool Softener (docusate)", "Maaloxan", "magnesian", "MOMETASONE cream", "calcium carbonate 500 mg",
    "Gavisconx", "omeprazole 20 mg",
])
def test_a15_other_products_and_parts_of_words_do_not_fire(text):
    assert "R05" not in fired_rules(order(text)), text


def test_a15_named_ingredients_decide_over_the_brand():
    assert "R05" not in fired_rules(evaluate_scenario("r05-order-select-gaviscon-without-mg-al"))
    with_aluminium = order(medication={
        "code": {"text": "Gaviscon"},
        "ingredient": [{"itemCodeableConcept": {"text": "aluminium hydroxide"}},
                       {"itemCodeableConcept": {"text": "magnesium carbonate"}}]})
    (card,) = cards_of(with_aluminium, "R05")
    assert VERIFY not in card["detail"]  # the ingredients are known: nothing to verify
    unnamed = order(medication={"code": {"text": "Gaviscon"},
                                "ingredient": [{"itemCodeableConcept": {"coding": [{"system": "urn:local", "code": "42"}]}}]})
    assert VERIFY in cards_of(unnamed, "R05")[0]["detail"]  # no ingredient resolves: the name applies


def test_a15_sucralfate_counts_as_aluminium_and_the_card_says_why():
    response = evaluate_scenario("r05-order-sign-sucralfate-ckd3")
    (card,) = cards_of(response, "R05")
    assert card["indicator"] == "warning"
    assert "Sucralfate" in card["detail"] and "label caution, outside the article" in card["detail"]
    assert VERIFY not in card["detail"]
    assert "aluminium" in card["summary"].lower() or "aluminum" in card["summary"].lower()


def test_a15_r04_never_proposes_sucralfate():
    response = evaluate_scenario("r04-positive-hyperphosphatemia-normal-egfr")
    assert "R04" in fired_rules(response)
    assert not any("sucralfate" in str(r).lower() or "carafate" in str(r).lower() for r in proposed(response))


def test_a15_an_active_brand_on_patient_view_is_reviewed_with_the_caveat():
    scenario = copy.deepcopy(load_scenario("r05-patient-view-active-antacid-ckd4"))
    for entry in scenario["bundle"]["entry"]:
        if entry["resource"].get("id") == "mgox":
            entry["resource"]["medicationCodeableConcept"] = {"text": "Gaviscon Extra Strength"}
    (card,) = cards_of(post_scenario(scenario), "R05")
    assert f"Gaviscon {VERIFY}" in card["detail"]


@pytest.mark.parametrize("value_set, text, matched", [
    ("med-magnesium-antacid", "Mg(OH)2 400mg", "mg(oh)2"),
    ("med-aluminium-antacid", "take Al(OH)3, 2 tabs", "al(oh)3"),
    ("med-magnesium-antacid", "Phillips' magnesia", "magnesia"),
    ("med-magnesium-antacid", "2Mg(OH)2", None),  # a digit before: not a whole word
    ("med-magnesium-antacid", "Mg(OH)23", None),  # a digit after
    ("med-magnesium-antacid", "magnesian limestone", None),
    ("med-aluminium-antacid", "Sucralfate 1 g", "sucralfate"),
])
def test_names_match_whole_bounded_by_characters_that_are_neither_letters_nor_digits(value_set, text, matched):
    vs = terminology().value_set(value_set)
    found = vs.match_concept({"text": text})
    assert (found.matched if found else None) == matched
