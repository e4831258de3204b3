"""Decisions A20 (cards a clinician reads in seconds) and A21 (order rules on both order hooks, R06 on patient-view,
R08c on every hook), each positive and negative, through the HTTP API; and the request log's rule ids.

The wording every scenario produces is checked in test_scenarios.py (no ids, codes or braces; short details; a link to
each rule's page); here are the decisions one by one.
"""

from __future__ import annotations

import json
import logging

import pytest

from cds_service.service.cli import main

from .conftest import NOW, evaluate_scenario, load_scenario, make_app, scenario_request, stable_keys
from .test_order_hooks import (CALCINOSIS, CALCIPHYLAXIS, CKD3, CKD4, SELECT, SIGN, VIEW, WARFARIN_1MG, body_for,
                               cards_of, condition, deletes, evaluate, lab, one_card, patient, r4_draft, sandbox_draft)

ETIDRONATE = "etidronate disodium 400 MG Oral Tablet"


def active(rid: str, text: str) -> dict:
    return r4_draft(rid, text, status="active")


def condition_of(cid: str, icd: str, display: str) -> dict:
    return condition(cid, "http://hl7.org/fhir/sid/icd-10-cm", icd, display)


# ---------- A21: R06 on patient-view for an active bisphosphonate ----------


def test_r06_warns_on_patient_view_for_an_active_etidronate_with_a_high_phosphate():
    response = evaluate(VIEW, [patient(), CALCINOSIS, active("eti", ETIDRONATE), lab("p", "2777-1", 5.5, "mg/dL")])
    card = one_card(response, "R06")
    assert card["indicator"] == "warning"
    assert card["summary"] == ("Bisphosphonate with phosphate already high: it can paradoxically raise phosphate. "
                               "Review it; monitor serum P.")
    assert card["detail"].startswith(
        "**Active on the record:** etidronate disodium 400 MG Oral Tablet.\n\n**Phosphate is already high**, and a "
        "bisphosphonate can raise it further: phosphate 5.5 mg/dL (9 Mar 2026): adult limit 4.5 mg/dL exceeded.")
    assert deletes(card) == []  # nothing to delete on the record; a review
    assert [s["extension"]["calcinosis-cds"]["key"] for s in card["suggestions"]] == ["R06:lab:2777-1"]
    assert card["extension"]["calcinosis-cds"]["key"] == f"R06:active:{ETIDRONATE.lower()}"


def test_r06_is_info_on_patient_view_with_a_normal_phosphate_and_silent_without_a_bisphosphonate():
    normal = evaluate(VIEW, [patient(), CALCINOSIS, active("eti", ETIDRONATE), lab("p", "2777-1", 3.6, "mg/dL")])
    card = one_card(normal, "R06")
    assert card["indicator"] == "info"
    assert "Latest phosphate, not high: phosphate 3.6 mg/dL (9 Mar 2026)" in card["detail"]
    without = evaluate(VIEW, [patient(), CALCINOSIS, active("amox", "amoxicillin 500 MG Oral Capsule"),
                              lab("p", "2777-1", 5.5, "mg/dL")])
    assert cards_of(without, "R06") == []
    stopped = dict(active("eti", ETIDRONATE), status="stopped")
    assert cards_of(evaluate(VIEW, [patient(), CALCINOSIS, stopped, lab("p", "2777-1", 5.5, "mg/dL")]), "R06") == []


@pytest.mark.parametrize("hook", [SELECT, SIGN])
def test_r06_on_an_order_hook_judges_the_order_not_an_active_bisphosphonate_alone(hook):
    record = [patient(), CALCINOSIS, active("eti", ETIDRONATE), lab("p", "2777-1", 5.5, "mg/dL")]
    unrelated = r4_draft("amox", "amoxicillin 500 MG Oral Capsule")
    assert cards_of(evaluate(hook, record, [unrelated], selections=["MedicationRequest/amox"]), "R06") == []


# ---------- A21: every draft-order rule on both order hooks, order-select on the selected orders only ----------

DRAFT_RULE_CASES = [
    ("R05", [CKD3], r4_draft("d", "magnesium hydroxide 400 MG Chewable Tablet")),
    ("R06", [lab("p", "2777-1", 3.6, "mg/dL")], r4_draft("d", ETIDRONATE)),
    ("R08b", [], r4_draft("d", "warfarin sodium 1 MG Oral Tablet", dose_mg=1)),
    ("R08c", [CALCIPHYLAXIS], r4_draft("d", "warfarin sodium 5 MG Oral Tablet", dose_mg=5)),
    ("R22", [], r4_draft("d", "calcium gluconate 100 MG/ML Injectable Solution")),
]


@pytest.mark.parametrize("rule_id, record, draft", DRAFT_RULE_CASES, ids=[c[0] for c in DRAFT_RULE_CASES])
def test_every_draft_order_rule_fires_on_both_order_hooks_for_the_orders_it_judges(rule_id, record, draft):
    other = r4_draft("other", "amoxicillin 500 MG Oral Capsule")
    chart = [patient(), CALCINOSIS, *record]
    on_sign = evaluate(SIGN, chart, [draft, other])
    on_select = evaluate(SELECT, chart, [draft, other], selections=["MedicationRequest/d"])
    assert cards_of(on_sign, rule_id) and cards_of(on_select, rule_id)
    # the same finding has the same stable key on both hooks: the order-sign card can be recognised later (A21)
    assert cards_of(on_sign, rule_id)[0]["extension"]["calcinosis-cds"]["key"] == \
        cards_of(on_select, rule_id)[0]["extension"]["calcinosis-cds"]["key"]
    not_selected = evaluate(SELECT, chart, [draft, other], selections=["MedicationRequest/other"])
    assert cards_of(not_selected, rule_id) == []


def test_r08c_fires_on_all_three_hooks():
    warfarin = r4_draft("w", "warfarin sodium 5 MG Oral Tablet", dose_mg=5)
    for hook in (SELECT, SIGN):
        assert one_card(evaluate(hook, [patient(), CALCIPHYLAXIS], [warfarin], selections=["MedicationRequest/w"]),
                        "R08c")["indicator"] == "warning"
    assert one_card(evaluate(VIEW, [patient(), CALCIPHYLAXIS, active("w", "warfarin sodium 5 MG Oral Tablet")]),
                    "R08c")["indicator"] == "warning"


# ---------- A20: an order card names a product of the same kind already active ----------


@pytest.mark.parametrize("hook", [SELECT, SIGN])
def test_an_order_card_names_a_product_of_the_same_kind_already_active(hook):
    record = [patient(), CALCINOSIS, CKD3, active("maalox", "Maalox aluminium hydroxide 200 mg suspension")]
    card = one_card(evaluate(hook, record, [r4_draft("d", "magnesium hydroxide 400 MG Chewable Tablet")],
                             selections=["MedicationRequest/d"]), "R05")
    assert ("**Already active on the record** (a magnesium or aluminium antacid): Maalox aluminium hydroxide 200 mg "
            "suspension.") in card["detail"]
    assert any(e.get("finding") == "same kind already active" and e["reference"] == "MedicationRequest/maalox"
               for e in card["extension"]["calcinosis-cds"]["evidence"])
    warfarin = one_card(evaluate(hook, [patient(), CALCINOSIS, active("w5", "warfarin sodium 5 MG Oral Tablet")],
                                 [sandbox_draft(*WARFARIN_1MG)], sandbox=True,
                                 selections=["MedicationRequest/request-123"]), "R08b")
    assert "**Already active on the record** (warfarin): warfarin sodium 5 MG Oral Tablet." in warfarin["detail"]


def test_an_order_card_without_such_a_product_says_nothing_of_it():
    card = one_card(evaluate(SIGN, [patient(), CALCINOSIS, CKD3, active("amox", "amoxicillin 500 MG Oral Capsule")],
                             [r4_draft("d", "magnesium hydroxide 400 MG Chewable Tablet")]), "R05")
    assert "Already active on the record" not in card["detail"]


def test_a_revised_order_already_on_the_record_is_not_its_own_same_kind_product():
    # order-sign may carry a revised order that is already active: it is the order, not a second antacid
    revised = r4_draft("mg", "magnesium hydroxide 400 MG Chewable Tablet", status="active")
    card = one_card(evaluate(SIGN, [patient(), CALCINOSIS, CKD3, revised], [revised]), "R05")
    assert "Already active on the record" not in card["detail"]


# ---------- A20: one card, each finding once; the caveats that stay ----------


def test_r05_names_each_finding_once():
    card = one_card(evaluate(SIGN, [patient(), CALCINOSIS, CKD4], [r4_draft("d", "magnesium oxide 400 MG Oral Tablet")]),
                    "R05")
    assert card["indicator"] == "critical"
    assert card["detail"].count("Chronic kidney disease, stage 4") == 1
    assert "**Critical:** severe renal insufficiency or dialysis." in card["detail"]
    high_mg = one_card(evaluate(SIGN, [patient(), CALCINOSIS, CKD3, lab("mg", "19123-9", 5.4, "mg/dL")],
                                [r4_draft("d", "magnesium oxide 400 MG Oral Tablet")]), "R05")
    assert "**Critical:** magnesium 5.4 mg/dL (9 Mar 2026): at or above 5 mg/dL." in high_mg["detail"]


def test_r19_critical_calcium_keeps_its_urgent_review_on_the_card():
    (card,) = [c for c in evaluate_scenario("r19-positive-critical")["cards"] if c["indicator"] == "warning"]
    assert card["detail"].startswith("**Critical value:** calcium 12.8 mg/dL (7 Mar 2026). Calcium above 12 mg/dL "
                                     "needs urgent review")


def test_r15_keeps_the_test_site_and_recurrence_caveat_alone_and_grouped():
    alone = evaluate_scenario("r15-positive-pain")
    assert ("**Surgical trauma may stimulate calcification: treat a test site before any large excision; recurrence "
            "is common.**") in cards_of(alone, "R15")[0]["detail"]
    grouped = evaluate_scenario("r16-positive-dm-pain")
    (card,) = cards_of(grouped, "R15")
    assert card["extension"]["calcinosis-cds"]["rules"] == ["R15", "R16"]
    assert ("- **Surgical excision for pain.** Surgical trauma may stimulate calcification: treat a test site before "
            "any large excision; recurrence is common. *Expert recommendation.*") in card["detail"]


def test_r23_names_the_overview_as_its_source():
    (card,) = cards_of(evaluate_scenario("r23-positive-same-day"), "R23")
    assert card["source"] == {"label": "Medscape: Calcinosis Cutis (Overview)",
                              "url": "https://emedicine.medscape.com/article/1103141-overview",
                              "topic": card["source"]["topic"]}
    assert card["detail"].endswith("*Evidence: Pathophysiology statement of the monograph's overview; outside the "
                                   "article (Medscape: Calcinosis Cutis (Overview)).*")
    (other,) = cards_of(evaluate_scenario("r23-positive-same-day"), "R01")
    assert other["source"]["label"] == "Medscape: Calcinosis Cutis Treatment & Management (Nunley, 2020)"


# ---------- A20: links to the rule pages ----------


def test_cards_link_to_the_rule_pages_under_cds_public_url():
    scenario_app = make_app(NOW, public_url="https://cds.example.org/calcinosis")
    body = body_for(SIGN, [patient(), CALCINOSIS, CKD3], [r4_draft("d", "magnesium hydroxide 400 MG Chewable Tablet")])
    response = scenario_app.test_client().post("/cds-services/calcinosis-cutis-order-sign", json=body).get_json()
    assert one_card(response, "R05")["links"] == [{
        "label": "Evidence and sources: Magnesium or aluminium antacid in renal insufficiency",
        "url": "https://cds.example.org/calcinosis/rules/R05", "type": "absolute"}]


def test_without_cds_public_url_the_links_use_the_request_base_url():
    body = body_for(SIGN, [patient(), CALCINOSIS, CKD3], [r4_draft("d", "magnesium hydroxide 400 MG Chewable Tablet")])
    response = make_app(NOW).test_client().post("/cds-services/calcinosis-cutis-order-sign", json=body,
                                                base_url="https://ehr-proxy.example.net:8443/").get_json()
    assert [link["url"] for link in one_card(response, "R05")["links"]] == [
        "https://ehr-proxy.example.net:8443/rules/R05"]


def test_a_grouped_card_links_to_each_of_its_rules():
    (card,) = cards_of(evaluate_scenario("r16-positive-dm-pain"), "R16")
    assert [(link["label"], link["url"]) for link in card["links"]] == [
        ("Evidence: Surgical excision for pain, recurrent infection, ulceration or impaired function",
         "http://localhost/rules/R15"),
        ("Evidence: Shock wave lithotripsy for painful calcinosis (DM, scleroderma, venous insufficiency)",
         "http://localhost/rules/R16"),
    ]


@pytest.mark.parametrize("public_url, expected", [(None, "http://127.0.0.1:8080/rules/R05"),
                                                  ("https://cds.example.org/", "https://cds.example.org/rules/R05")])
def test_the_cli_links_to_cds_public_url_or_the_local_server(public_url, expected, capsys, monkeypatch):
    if public_url:
        monkeypatch.setenv("CDS_PUBLIC_URL", public_url)
    else:
        monkeypatch.delenv("CDS_PUBLIC_URL", raising=False)
    assert main(["evaluate", "fixtures/scenarios/r05-patient-view-active-antacid-ckd4.json",
                 "--at", NOW.isoformat()]) == 0
    cards = json.loads(capsys.readouterr().out)["cards"]
    (card,) = [c for c in cards if c["extension"]["calcinosis-cds"]["rules"] == ["R05"]]
    assert [link["url"] for link in card["links"]] == [expected]


# ---------- A20: stable keys ----------


def test_stable_keys_name_the_rule_and_its_finding_and_change_with_the_finding():
    moderate = evaluate(SIGN, [patient(), CALCINOSIS, CKD3], [r4_draft("d", "magnesium oxide 400 MG Oral Tablet")])
    severe = evaluate(SIGN, [patient(), CALCINOSIS, CKD4], [r4_draft("d", "magnesium oxide 400 MG Oral Tablet")])
    # The same product: the same finding, whatever its severity (an escalation shows in the indicator)
    assert stable_keys(moderate) == stable_keys(severe) == [
        ("R05:order:magnesium oxide 400 mg oral tablet",
         ["R05:delete:MedicationRequest/d", "R05:lab:19123-9", "R05:referral-nephrology"])]
    other = evaluate(SIGN, [patient(), CALCINOSIS, CKD3], [r4_draft("d", "aluminium hydroxide 600 MG Oral Tablet")])
    assert stable_keys(other)[0][0] == "R05:order:aluminium hydroxide 600 mg oral tablet"


# ---------- the request log: rules on the cards, and rules folded into another card ----------


def logged_call(name: str) -> dict:
    """A scenario's response from an app that logs its requests (INFO)."""
    service_id, body = scenario_request(load_scenario(name))
    response = make_app(NOW, log_level="INFO").test_client().post(f"/cds-services/{service_id}", json=body)
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture
def request_log():
    records: list[logging.LogRecord] = []
    keeper = logging.Handler()
    keeper.emit = records.append
    logger = logging.getLogger("cds_service.http")
    logger.addHandler(keeper)
    yield lambda: [r for r in records if r.getMessage() == "request"]
    logger.removeHandler(keeper)


def test_the_request_log_names_the_rules_on_the_cards_and_those_folded_into_another(request_log):
    response = logged_call("r11-positive-calciphylaxis")
    (line,) = request_log()
    on_cards = list(dict.fromkeys(r for c in response["cards"] for r in c["extension"]["calcinosis-cds"]["rules"]))
    assert line.rules == on_cards and "R11" in on_cards
    # R17's nephrology referral is offered on R11's card, so R17 has no card (R04, an option for dystrophic
    # calcinosis, does not run in calciphylaxis alone: decision A17)
    assert sorted(line.folded) == ["R17"]
    assert "R17" not in on_cards


def test_a_rule_another_takes_precedence_over_is_folded_into_its_card(request_log):
    body = body_for(SIGN, [patient(), CALCIPHYLAXIS],
                    [r4_draft("w", "warfarin sodium 1 MG Oral Tablet", dose_mg=1, reason_ref="Condition/calciphylaxis")])
    response = make_app(NOW, log_level="INFO").test_client().post("/cds-services/calcinosis-cutis-order-sign", json=body)
    assert [c["extension"]["calcinosis-cds"]["rules"] for c in response.get_json()["cards"]] == [["R08c"]]
    (line,) = request_log()
    assert line.rules == ["R08c"] and line.folded == ["R08b"]


def test_the_request_log_has_nothing_folded_when_every_rule_has_its_card(request_log):
    response = logged_call("r03-positive-plain-calcinosis")
    (line,) = request_log()
    assert line.rules == ["R01", "R03", "R10", "R20"] == [r for c in response["cards"]
                                                          for r in c["extension"]["calcinosis-cds"]["rules"]]
    assert line.folded == []


def test_the_fullest_treatment_card_gives_one_short_line_per_option():
    """Nine options, the most the treatment card gathers (R07 is never shown): one line each with its evidence
    level, and the whole detail still about 1,000 characters."""
    severe = {"coding": [{"system": "http://snomed.info/sct", "code": "24484000", "display": "Severe"}]}
    record = [
        patient(), dict(CALCINOSIS, severity=severe),
        dict(CALCINOSIS, id="tumoral", code={"text": "Tumoral calcinosis of the hip"}),
        condition_of("dm", "M33.10", "Other dermatomyositis, organ involvement unspecified"),
        condition_of("ssc", "M34.1", "CR(E)ST syndrome"),
        condition_of("ulcer", "L98.499", "Non-pressure chronic ulcer of skin of other sites"),
        lab("p", "2777-1", 6.1, "mg/dL"), lab("ca", "17861-6", 9.6, "mg/dL"), lab("egfr", "98979-8", 75, "mL/min/{1.73_m2}"),
    ]
    (card,) = [c for c in evaluate(VIEW, record)["cards"] if c["source"]["topic"]["code"] == "treatment-options"]
    rules = card["extension"]["calcinosis-cds"]["rules"]
    assert sorted(rules) == ["R02", "R03", "R04", "R08a", "R09", "R10", "R12", "R13", "R14"]
    options = [line for line in card["detail"].splitlines() if line.startswith("- **")]
    assert len(options) == 9 and all(len(line) <= 160 for line in options)
    assert all(line.endswith(".*") for line in options)  # each ends with its evidence level, in italics
    assert len(card["detail"]) <= 1200
