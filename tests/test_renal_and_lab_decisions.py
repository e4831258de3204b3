"""Decisions A13 (renal function from creatinine, unknown renal function), A14 (current dialysis) and A19 (panels,
comparators, the newest calcium draw) through the HTTP API, each positive and negative."""

from __future__ import annotations

import json

import pytest

from cds_service.record.codes import has_loinc_code
from cds_service.service.prefetch import bundle_resources

from ._knowledge import cards_of, post_scenario, proposed, withheld
from ._records import (
    SNOMED,
    birthday,
    born,
    bundle,
    calcinosis_condition,
    condition,
    lab,
    medication_statement,
    panel,
    procedure,
    when,
)
from .conftest import fired_rules

EGFR_UNIT = "mL/min/{1.73_m2}"
MAGNESIUM_ANTACID = "Magnesium hydroxide 400 mg/5 mL oral suspension"


def respond(*resources, hook="patient-view", drafts=(), birth_date=None, gender=None) -> dict:
    patient = {"resourceType": "Patient", "id": "p1"}
    if birth_date:
        patient["birthDate"] = birth_date
    if gender:
        patient["gender"] = gender
    scenario = {"hook": hook, "bundle": bundle(patient, calcinosis_condition(), *resources)}
    if hook != "patient-view":
        scenario["draftOrders"] = bundle(*drafts)
    return post_scenario(scenario)


def report(response: dict) -> dict:
    return response.get("extension", {}).get("calcinosis-cds", {})


def evidence_of(card: dict) -> list[dict]:
    return card["extension"]["calcinosis-cds"]["evidence"]


def creatinine_proposals(response: dict) -> list[dict]:
    return [r for r in proposed(response) if r["resourceType"] == "ServiceRequest"
            and any(c.get("code") == "2160-0" for c in r["code"].get("coding", []))]


def draft_antacid() -> dict:
    return {"resourceType": "MedicationRequest", "id": "mom-1", "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "authoredOn": when(0),
            "medicationCodeableConcept": {"text": "magnesium hydroxide 400 MG/5ML Oral Suspension"}}


ADULT, MAN = born(60), "male"
HIGH_PHOSPHATE = lab("phos", "2777-1", 6.1, "mg/dL", 5)


# ---------- A13 ----------
def test_a13_creatinine_alone_gives_r05_and_no_mg_al_option():
    """The issue's patient: creatinine 3.4 mg/dL, no eGFR, a magnesium antacid."""
    response = respond(HIGH_PHOSPHATE, lab("crea", "2160-0", 3.4, "mg/dL", 3), medication_statement("mom", MAGNESIUM_ANTACID),
                       birth_date=ADULT, gender=MAN)
    (card,) = cards_of(response, "R05")
    assert card["indicator"] == "critical"  # eGFR about 20: severe renal insufficiency
    assert "calculated (CKD-EPI 2021)" in card["detail"]
    assert any(e.get("calculated") == "calculated (CKD-EPI 2021)" for e in evidence_of(card))
    assert no_mg_al_option(response)


def no_mg_al_option(response: dict) -> bool:
    """R04 neither offered nor listed (R05, which warns about the antacid, stands for it)."""
    return "R04" not in fired_rules(response) and "can bind phosphate" not in json.dumps(response["cards"])


def test_a13_on_the_order_hooks_too():
    for hook in ("order-select", "order-sign"):
        high = respond(lab("crea", "2160-0", 3.4, "mg/dL", 3), hook=hook, drafts=[draft_antacid()],
                       birth_date=ADULT, gender=MAN)
        assert "R05" in fired_rules(high), hook
        normal = respond(lab("crea", "2160-0", 0.9, "mg/dL", 3), hook=hook, drafts=[draft_antacid()],
                         birth_date=ADULT, gender=MAN)
        assert "R05" not in fired_rules(normal), hook


def test_a13_a_newer_creatinine_replaces_an_older_normal_egfr():
    older_egfr = lab("egfr", "98979-8", 85, EGFR_UNIT, 60)
    response = respond(HIGH_PHOSPHATE, older_egfr, lab("crea", "2160-0", 2.9, "mg/dL", 2),
                       medication_statement("mom", MAGNESIUM_ANTACID), birth_date=ADULT, gender="female")
    assert "R05" in fired_rules(response) and no_mg_al_option(response)
    without_antacid = respond(HIGH_PHOSPHATE, older_egfr, lab("crea", "2160-0", 2.9, "mg/dL", 2), birth_date=ADULT,
                              gender="female")
    assert "R04" in withheld(without_antacid) and "R17" in fired_rules(without_antacid)
    same_draw = respond(HIGH_PHOSPHATE, lab("egfr", "98979-8", 85, EGFR_UNIT, 2), lab("crea", "2160-0", 2.9, "mg/dL", 2),
                        medication_statement("mom", MAGNESIUM_ANTACID), birth_date=ADULT, gender="female")
    assert "R05" not in fired_rules(same_draw)  # the lab's own eGFR of the same draw stands


def test_a13_known_normal_renal_function_offers_the_option_without_a_test():
    response = respond(HIGH_PHOSPHATE, lab("crea", "2160-0", 0.9, "mg/dL", 3), birth_date=ADULT, gender=MAN)
    (card,) = cards_of(response, "R04")
    assert "check renal function first" not in card["detail"].lower()
    assert creatinine_proposals(response) == []


@pytest.mark.parametrize("renal", [
    [],  # no renal result at all
    [lab("egfr", "98979-8", 85, EGFR_UNIT, 120)],  # no renal insufficiency, but older than 90 days
])
def test_a13_unknown_renal_function_lists_the_option_after_a_creatinine_test(renal):
    response = respond(HIGH_PHOSPHATE, *renal, birth_date=ADULT, gender=MAN)
    (card,) = cards_of(response, "R04")
    assert "check renal function first" in card["detail"].lower()
    (test,) = creatinine_proposals(response)
    assert test["status"] == "draft" and test["intent"] == "proposal"
    assert not any(r["resourceType"] == "MedicationRequest" and "magnesium" in json.dumps(r).lower()
                   for r in proposed(response))


def test_a13_no_second_creatinine_when_r01_proposes_the_work_up():
    diagnosis_only = condition("hp", "20165001", SNOMED, "Hyperphosphatemia")  # no laboratory result at all
    response = respond(diagnosis_only, birth_date=ADULT, gender=MAN)
    assert "R04" in fired_rules(response) and "R01" in fired_rules(response)
    assert len(creatinine_proposals(response)) == 1  # R01's work-up; R04 only says to check first
    assert "check renal function first" in cards_of(response, "R04")[0]["detail"].lower()


def test_a13_child_with_a_recent_height_gets_a_bedside_schwartz_egfr():
    child = born(9)
    phosphate = lab("phos", "2777-1", 7.0, "mg/dL", 3, high=5.8)
    height = lab("height", "8302-2", 132, "cm", 20)
    low = respond(phosphate, height, lab("crea", "2160-0", 1.8, "mg/dL", 3), medication_statement("mom", MAGNESIUM_ANTACID),
                  birth_date=child)
    (card,) = cards_of(low, "R05")  # 0.413 x 132 / 1.8 = 30.3: renal insufficiency
    assert "calculated (bedside Schwartz)" in card["detail"]
    normal = respond(phosphate, height, lab("crea", "2160-0", 0.4, "mg/dL", 3), medication_statement("mom", MAGNESIUM_ANTACID),
                     birth_date=child)
    assert "R05" not in fired_rules(normal) and "R04" in fired_rules(normal)


def test_a13_child_without_a_height_relies_on_the_labs_range():
    child, antacid = born(9), medication_statement("mom", MAGNESIUM_ANTACID)
    above = respond(lab("crea", "2160-0", 1.1, "mg/dL", 3, high=0.7), antacid, birth_date=child)
    assert "R05" in fired_rules(above)
    flagged = respond(lab("crea", "2160-0", 1.1, "mg/dL", 3, flag="H"), antacid, birth_date=child)
    assert "R05" in fired_rules(flagged)
    in_range = respond(lab("phos", "2777-1", 7.0, "mg/dL", 3, high=5.8), lab("crea", "2160-0", 0.5, "mg/dL", 3, high=0.7),
                       antacid, birth_date=child)
    assert "R05" not in fired_rules(in_range)
    assert "check renal function first" in cards_of(in_range, "R04")[0]["detail"].lower()  # unknown, not normal


@pytest.mark.parametrize("comparator, value, fires, critical", [
    (">", 60, False, False), (">=", 90, False, False), ("<", 15, True, True), ("<", 60, True, False),
])
def test_a13_reported_egfr_with_a_comparator(comparator, value, fires, critical):
    egfr = lab("egfr", "98979-8", value, EGFR_UNIT, 5, comparator=comparator)
    response = respond(egfr, medication_statement("mom", MAGNESIUM_ANTACID), birth_date=ADULT)
    assert ("R05" in fired_rules(response)) is fires
    if fires:
        assert (cards_of(response, "R05")[0]["indicator"] == "critical") is critical


def test_a13_no_calculated_egfr_on_dialysis():
    response = respond(lab("crea", "2160-0", 7.2, "mg/dL", 2), condition("dial", "Z99.2", display="Dependence on renal dialysis"),
                       medication_statement("mom", MAGNESIUM_ANTACID), birth_date=ADULT, gender=MAN)
    assert "R05" in fired_rules(response)
    assert "calculated (" not in json.dumps(response)


# ---------- A14 ----------
def test_a14_an_ongoing_or_recent_dialysis_procedure_counts_and_is_named_with_its_date():
    antacid, egfr = medication_statement("mom", MAGNESIUM_ANTACID), lab("egfr", "98979-8", 75, EGFR_UNIT, 10)
    ongoing = respond(egfr, antacid, procedure("hd", "in-progress", performedPeriod={"start": when(700)}), birth_date=ADULT)
    (card,) = cards_of(ongoing, "R05")
    assert card["indicator"] == "critical"
    (item,) = [e for e in evidence_of(card) if e.get("reference") == "Procedure/hd" and e.get("finding") == "renal insufficiency"]
    assert item["text"] == "Hemodialysis" and item["performed"].startswith(when(700)[:10])
    recent = respond(egfr, antacid, procedure("hd", "completed", performedDateTime=when(20)), birth_date=ADULT)
    assert "R05" in fired_rules(recent)


@pytest.mark.parametrize("performed", [
    {"performedDateTime": when(200)},
    {"performedPeriod": {"start": when(230), "end": when(200)}},
    {},  # no date
])
def test_a14_an_old_or_undated_dialysis_procedure_does_not_count(performed):
    response = respond(lab("egfr", "98979-8", 75, EGFR_UNIT, 10), medication_statement("mom", MAGNESIUM_ANTACID),
                       procedure("hd", "completed", **performed), birth_date=ADULT)
    assert "R05" not in fired_rules(response) and "R17" not in fired_rules(response)


# ---------- A19 ----------
def test_a19_panel_components_and_the_newest_calcium_draw():
    cmp = panel("cmp", [("2951-2", 139, "mmol/L"), ("17861-6", 11.9, "mg/dL"), ("1751-7", 4.0, "g/dL")], days_ago=1)
    old_ionized = lab("ica", "1994-3", 1.20, "mmol/L", 80)
    response = respond(cmp, old_ionized, birth_date=born(52))
    (card,) = cards_of(response, "R19")
    references = {e.get("reference") for e in evidence_of(card)}
    assert any("component 17861-6 of Observation/cmp" in str(r) for r in references)
    newer_ionized = respond(panel("cmp", [("17861-6", 11.9, "mg/dL")], days_ago=80), lab("ica", "1994-3", 1.20, "mmol/L", 1),
                            birth_date=born(52))
    assert "R19" not in fired_rules(newer_ionized)


def test_a19_a_panel_that_is_not_final_is_not_read():
    response = respond(panel("cmp", [("17861-6", 11.9, "mg/dL")], days_ago=1, status="preliminary"), birth_date=born(52))
    assert "R19" not in fired_rules(response)
    assert any("component 17861-6 of Observation/cmp" == u["resource"] for u in report(response)["unusedLabResults"])


def test_a19_panels_pass_the_prefetch_filter():
    codes = frozenset({"17861-6", "2160-0"})
    cmp = panel("cmp", [("2951-2", 139, "mmol/L"), ("2160-0", 0.8, "mg/dL")])
    sodium_only = panel("na", [("2951-2", 139, "mmol/L")])
    assert has_loinc_code(cmp, codes) and not has_loinc_code(sodium_only, codes)
    assert [r["id"] for r in bundle_resources(bundle(cmp, sodium_only), codes)] == ["cmp"]


@pytest.mark.parametrize("comparator, value, fires", [(">", 10.0, True), (">=", 4.6, True), ("<", 1.0, False), ("<=", 4.5, False)])
def test_a19_comparators(comparator, value, fires):
    response = respond(lab("phos", "2777-1", value, "mg/dL", 2, comparator=comparator),
                       lab("egfr", "98979-8", 90, EGFR_UNIT, 2), birth_date=born(45))
    assert ("R18" in fired_rules(response)) is fires
    assert "unusedLabResults" not in report(response)


def test_a19_a_comparator_that_cannot_be_placed_is_not_used_and_the_response_says_so():
    response = respond(lab("phos", "2777-1", 2.0, "mg/dL", 2, comparator=">"), lab("egfr", "98979-8", 90, EGFR_UNIT, 2),
                       birth_date=born(45))
    assert "R18" not in fired_rules(response)
    (unused,) = report(response)["unusedLabResults"]
    assert unused["resource"] == "Observation/phos" and "not used" in unused["issue"]
    with_older = respond(lab("phos", "2777-1", 2.0, "mg/dL", 2, comparator=">"), lab("old", "2777-1", 6.0, "mg/dL", 30),
                         lab("egfr", "98979-8", 90, EGFR_UNIT, 2), birth_date=born(45))
    assert "R18" in fired_rules(with_older)  # the next older result counts


def test_a19_adults_and_children_share_the_comparator_rule_with_the_labs_range():
    child = birthday(12)
    response = respond(lab("phos", "2777-1", 8.0, "mg/dL", 2, comparator=">", high=5.8), birth_date=child)
    assert "R18" in fired_rules(response)
