"""Decisions A16 (children), A17 (calciphylaxis alone) and A18 (a precise scope gate), through the HTTP API.

Each decision has positive and negative cases: the fixture scenarios child-*, scope-* and variants of them built
here, so that a patient nobody wrote a fixture for is covered by the rule, not by the fixture.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from ._knowledge import by_id, cards_of, proposed, variant, withheld
from .conftest import NOW, evaluate_scenario, fired_rules, scenario_names

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
TREATMENT_FOR_DYSTROPHIC_CALCINOSIS = {"R02", "R03", "R04", "R07", "R08a", "R09", "R10", "R12", "R13", "R14", "R15",
                                       "R16", "R20"}
CHILD_NOTE = "in children, a decision for the paediatric specialist"
UNCONFIRMED_NOTE = "diagnosis not confirmed: no medication or diet proposed"


def treatments(response: dict) -> list[dict]:
    """Every MedicationRequest or NutritionOrder proposed on any card."""
    return [r for r in proposed(response) if r["resourceType"] in ("MedicationRequest", "NutritionOrder")]


def referral_codes(response: dict) -> set[str]:
    return {r["code"]["coding"][0]["code"] for r in proposed(response)
            if r["resourceType"] == "ServiceRequest" and r.get("code", {}).get("coding")}


def details(response: dict) -> str:
    return "\n".join(c["detail"] for c in response["cards"])


def limits_recorded(response: dict) -> set[str]:
    return {item["proposalsWithheld"] for c in response["cards"] for item in c["extension"]["calcinosis-cds"]["evidence"]
            if "proposalsWithheld" in item}


def birth_date(years: float):
    def change(rs):
        by_id(rs, "p1")["birthDate"] = (NOW - timedelta(days=round(years * 365.2425))).date().isoformat()
    return change


def condition(cid: str, *, code: str | None = None, display: str | None = None, text: str | None = None,
              system: str = ICD, verification: str | None = None) -> dict:
    resource = {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p1"},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "code": {}}
    if code or display:
        resource["code"]["coding"] = [{k: v for k, v in (("system", system if code else None), ("code", code), ("display", display)) if v}]
    if text:
        resource["code"]["text"] = text
    if verification:
        resource["verificationStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]}
    return resource


def replace_condition(cid: str, new: dict):
    def change(rs):
        rs[rs.index(by_id(rs, cid))] = {**new, "id": cid}
    return change


# ---------- A16: children ----------
@pytest.mark.parametrize("name", ["child-5y-calcinosis-high-phosphate", "child-7y-juvenile-dermatomyositis-calcinosis"])
def test_a16_young_children_get_options_as_the_specialists_decision_and_no_drug_or_diet(name):
    response = evaluate_scenario(name)
    assert not treatments(response)  # no MedicationRequest and no NutritionOrder, on any card
    assert {"306286007", "103699006"} <= referral_codes(response)  # nephrology and dietitian stay
    assert CHILD_NOTE in details(response)
    assert "child" in limits_recorded(response)
    options = cards_of(response, "R03")[0]
    assert CHILD_NOTE in options["detail"] and not options.get("suggestions")


def test_a16_the_same_patient_as_an_adult_gets_the_proposals():
    response = variant("child-5y-calcinosis-high-phosphate", birth_date(35))
    kinds = {r["resourceType"] for r in treatments(response)}
    assert kinds == {"MedicationRequest", "NutritionOrder"}
    assert CHILD_NOTE not in details(response) and not limits_recorded(response)


def test_a16_juvenile_dermatomyositis_keeps_its_rheumatology_referral():
    response = evaluate_scenario("child-7y-juvenile-dermatomyositis-calcinosis")
    assert "306290009" in referral_codes(response)
    assert not any("triamcinolone" in str(r).lower() for r in proposed(response))


def test_a16_minocycline_from_8_to_17_is_the_specialists_decision():
    response = evaluate_scenario("child-12y-limited-ssc-no-minocycline-proposal")
    (card,) = cards_of(response, "R13")
    assert "R13" not in withheld(response)  # listed as an option, not withheld as under 8
    assert CHILD_NOTE in card["detail"]
    assert not treatments(response)
    adult = variant("child-12y-limited-ssc-no-minocycline-proposal", birth_date(40))
    assert any("minocycline" in r["medicationCodeableConcept"]["text"].lower() for r in treatments(adult))


@pytest.mark.parametrize("years, child", [(17.9, True), (18.1, False), (16, True), (30, False)])
def test_a16_applies_under_18(years, child):
    response = variant("child-no-birth-date-calcinosis", birth_date(years))
    assert bool(treatments(response)) is not child
    assert ("child" in limits_recorded(response)) is child


def test_a16_no_birth_date_counts_as_a_child():
    response = evaluate_scenario("child-no-birth-date-calcinosis")
    assert not treatments(response)
    assert "no birth date" in details(response) and CHILD_NOTE in details(response)


def test_a16_warnings_fire_for_children_as_for_adults():
    response = evaluate_scenario("child-10y-order-sign-antacid-ckd4")
    (card,) = cards_of(response, "R05")
    assert card["indicator"] == "critical"
    assert any(a["type"] == "delete" for s in card["suggestions"] for a in s["actions"])
    adult = variant("child-10y-order-sign-antacid-ckd4", birth_date(40))
    assert [(c["indicator"], c["summary"]) for c in adult["cards"]] == [(c["indicator"], c["summary"]) for c in response["cards"]]


# ---------- A17: calciphylaxis alone ----------
def test_a17_calciphylaxis_alone_shows_no_option_of_dystrophic_calcinosis():
    response = evaluate_scenario("scope-calciphylaxis-alone-esrd")
    assert not fired_rules(response) & TREATMENT_FOR_DYSTROPHIC_CALCINOSIS
    assert not withheld(response).keys() & TREATMENT_FOR_DYSTROPHIC_CALCINOSIS
    assert {"R01", "R11", "R17", "R18"} <= fired_rules(response)
    assert not any("triamcinolone" in str(r).lower() or "ketogenic" in str(r).lower() for r in proposed(response))
    assert "ketogenic" not in details(response).lower()


def test_a17_a_calcinosis_cutis_beside_the_calciphylaxis_brings_the_options_back():
    response = variant("scope-calciphylaxis-alone-esrd", lambda rs: rs.append(condition("cc", code="L94.2", display="Calcinosis cutis")))
    assert {"R02", "R03", "R15", "R20"} <= fired_rules(response) | set(withheld(response))


def test_a17_an_l94_2_condition_whose_text_says_calciphylaxis_is_calciphylaxis():
    response = evaluate_scenario("scope-l942-says-calciphylaxis")
    assert "R11" in fired_rules(response)
    assert not fired_rules(response) & TREATMENT_FOR_DYSTROPHIC_CALCINOSIS
    both = variant("scope-l942-says-calciphylaxis", replace_condition("calc", condition(
        "calc", code="L94.2", display="Calcinosis cutis", text="Calcinosis cutis with calciphylaxis")))
    assert {"R11", "R03"} <= fired_rules(both)


def test_a17_a_possible_calcinosis_beside_a_confirmed_calciphylaxis_gives_its_options_without_drugs():
    response = variant("scope-calciphylaxis-alone-esrd", lambda rs: rs.append(condition("cc", text="possible calcinosis cutis of the calf")))
    assert "R03" in fired_rules(response)
    assert not any(r["resourceType"] == "MedicationRequest" for r in proposed(response))
    assert UNCONFIRMED_NOTE in cards_of(response, "R03")[0]["detail"]
    # The phosphorus diet rests on the calciphylaxis too, which is confirmed: its NutritionOrder stays.
    assert any(r["resourceType"] == "NutritionOrder" for r in proposed(response))


# ---------- A18: a precise gate ----------
@pytest.mark.parametrize("name", ["scope-negative-without-calcinosis", "scope-negative-crest-m341",
                                  "scope-negative-calciphylaxis-ruled-out", "scope-negative-nephrocalcinosis"])
def test_a18_no_gate_on_a_negated_mention_another_disorders_name_or_part_of_a_word(name):
    assert evaluate_scenario(name)["cards"] == []


@pytest.mark.parametrize("text", [
    "no calcinosis", "No evidence of calcinosis cutis", "patient denies calcinosis", "negative for calciphylaxis",
    "calciphylaxis ruled out", "calcinosis excluded", "calcinosis cutis, resolved", "history of calcinosis",
    "h/o calciphylaxis", "s/p excision of calcinosis", "family history of calcinosis", "at risk for calciphylaxis",
    "at risk of calciphylaxis", "without calcinosis cutis", "not calciphylaxis",
])
def test_a18_negated_text_holds_no_gate(text):
    response = variant("scope-negative-without-calcinosis", replace_condition("nodules", condition("nodules", text=text)))
    assert response["cards"] == [], text


@pytest.mark.parametrize("text", [
    "r/o calciphylaxis", "rule out calcinosis", "possible calcinosis cutis", "probable calciphylaxis",
    "suspected calciphylaxis", "concern for calciphylaxis", "calcinosis?", "cannot exclude calciphylaxis",
    "calcinosis cutis vs gouty tophi",
])
def test_a18_uncertain_text_holds_the_gate_without_drug_or_diet(text):
    response = variant("scope-negative-without-calcinosis", replace_condition("nodules", condition("nodules", text=text)))
    assert response["cards"], text
    assert not treatments(response), text
    assert "diagnosis-not-confirmed" in limits_recorded(response), text


@pytest.mark.parametrize("text", [
    "Calcinosis cutis of the fingers, no infection", "no fever; calcinosis of the elbow", "Calciphylaxis",
    "CREST syndrome (calcinosis, Raynaud's); calcinosis cutis of fingers", "calcification of skin",
    "no change in calcinosis",
])
def test_a18_affirmed_text_holds_the_gate_confirmed(text):
    response = variant("scope-negative-without-calcinosis", replace_condition("nodules", condition("nodules", text=text)))
    assert response["cards"], text
    assert "diagnosis-not-confirmed" not in limits_recorded(response), text


def test_a18_uncertain_calciphylaxis_keeps_warnings_and_referrals():
    response = evaluate_scenario("scope-rule-out-calciphylaxis")
    indicators = {rule: cards_of(response, rule)[0]["indicator"] for rule in ("R08c", "R11")}
    assert indicators == {"R08c": "warning", "R11": "warning"}
    assert "306286007" in referral_codes(response) and "103699006" in referral_codes(response)
    assert not treatments(response)
    assert UNCONFIRMED_NOTE in cards_of(response, "R18")[0]["detail"]


@pytest.mark.parametrize("verification, confirmed", [("provisional", False), ("differential", False),
                                                     ("confirmed", True), (None, True)])
def test_a18_verification_status(verification, confirmed):
    response = variant("scope-provisional-calcinosis-limited-ssc", replace_condition("calcinosis", condition(
        "calcinosis", code="L94.2", display="Calcinosis cutis", verification=verification)))
    names = " ".join(r["medicationCodeableConcept"].get("text", "") for r in treatments(response)).lower()
    assert ("minocycline" in names) is confirmed and ("triamcinolone" in names) is confirmed
    assert (UNCONFIRMED_NOTE in details(response)) is not confirmed
    assert "306290009" in referral_codes(response)  # the rheumatology referral stays either way


def test_a18_a_display_counts_only_when_its_code_is_not_another_concepts():
    def coded(code, display, text=None, system=ICD):
        return variant("scope-negative-without-calcinosis", replace_condition("nodules", condition(
            "nodules", code=code, display=display, text=text, system=system)))
    assert coded("M34.1", "Systemic sclerosis with calcinosis")["cards"] == []  # M34.1 is systemic sclerosis
    assert coded("M34.1", "CR(E)ST syndrome", text="Calcinosis cutis of the fingers")["cards"]  # the text counts
    assert coded("E83.59", "Calciphylaxis")["cards"]  # E83.59 is no other concept of the value sets
    assert coded("X-123", "Calcinosis cutis", system="urn:local:problems")["cards"]  # a local code


# ---------- every fixture patient, as a child and with its diagnosis unconfirmed ----------
def _as_child(rs):
    for resource in rs:
        if resource.get("resourceType") == "Patient":
            resource["birthDate"] = (NOW - timedelta(days=6 * 365)).date().isoformat()


def _unconfirmed(rs):
    for resource in rs:
        if resource.get("resourceType") == "Condition" and not resource.get("verificationStatus"):
            resource["verificationStatus"] = {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "provisional"}]}


@pytest.mark.parametrize("name", scenario_names())
@pytest.mark.parametrize("change", [_as_child, _unconfirmed], ids=["child", "unconfirmed"])
def test_no_fixture_patient_gets_a_drug_or_diet_as_a_child_or_unconfirmed(name, change):
    response = variant(name, change)
    assert not treatments(response), name
    for card in response["cards"]:  # what is left is still offered with its actions
        assert all(s["actions"] for s in card.get("suggestions", [])), name
