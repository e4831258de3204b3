"""The order-select and order-sign hooks, and the medication rules R05, R06, R08b, R08c, R22.

Requests go through the HTTP API, with draftOrders in the exact shapes the CDS Hooks sandbox sends (a Bundle without
type, category and reasonCode as objects, no intent or medication before a drug is picked, DSTU2 MedicationOrder)
and as clean R4 Bundles.
"""

from __future__ import annotations

import copy
import uuid
from datetime import timedelta

import pytest
from fhir.resources.R4B import get_fhir_model_class

from cds_service.record.medications import daily_dose_mg, product_strength_mg
from cds_service.engine.drafts import orders_under_review
from cds_service.record.draft_orders import is_intravenous, read_draft_orders, read_draft_service_orders
from cds_service.service.request_builder import request_from_resources
from cds_service.engine.rules import Context
from cds_service.service.discovery import services
from cds_service.service.settings import Settings

from .conftest import NOW, make_app, uuids_of, without_uuids

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXN = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
SELECT, SIGN, VIEW = "order-select", "order-sign", "patient-view"
SERVICE_IDS = {VIEW: "calcinosis-cutis-patient-view", SELECT: "calcinosis-cutis-order-select",
               SIGN: "calcinosis-cutis-order-sign"}


# ---------- building records and requests ----------


def patient(years: int = 62) -> dict:
    return {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": f"{NOW.year - years}-01-15"}


def condition(cid: str, system: str, code: str, display: str) -> dict:
    return {
        "resourceType": "Condition", "id": cid,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": system, "code": code, "display": display}]},
        "subject": {"reference": "Patient/p1"},
    }


CALCINOSIS = condition("calcinosis", ICD, "L94.2", "Calcinosis cutis")
CALCIPHYLAXIS = condition("calciphylaxis", SCT, "237900002", "Calciphylaxis")
CKD3 = condition("ckd", ICD, "N18.31", "Chronic kidney disease, stage 3a")
CKD4 = condition("ckd", ICD, "N18.4", "Chronic kidney disease, stage 4 (severe)")
DIALYSIS = condition("dialysis", ICD, "Z99.2", "Dependence on renal dialysis")
AF = condition("af", ICD, "I48.91", "Unspecified atrial fibrillation")


def lab(oid: str, loinc: str, value: float, unit: str, days: int = 5, **extra) -> dict:
    effective = (NOW - timedelta(days=days)).isoformat()
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": loinc}]}, "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": effective, "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            **extra}


def egfr(value: float) -> dict:
    return lab("egfr", "98979-8", value, "mL/min/{1.73_m2}")


def sandbox_draft(name: str, code: str, *, rid: str = "request-123", pills: float = 1, freq: int = 1,
                  reason: dict | None = None) -> dict:
    """A MedicationRequest as the sandbox's Rx View sends it after a drug is picked (R4 server)."""
    draft = {
        "resourceType": "MedicationRequest", "id": rid, "status": "draft", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "authoredOn": NOW.date().isoformat(),
        "dosageInstruction": [{"timing": {"repeat": {"frequency": freq, "period": 1, "periodUnit": "d"}},
                               "doseAndRate": [{"doseQuantity": {"value": pills, "system": UCUM, "code": "{pill}"}}]}],
        "dispenseRequest": {"expectedSupplyDuration": {"value": 30, "unit": "days", "system": UCUM, "code": "d"}},
        "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "community"}]},
        "medicationCodeableConcept": {"text": name, "coding": [{"display": name, "system": RXN, "code": code}]},
    }
    if reason is not None:
        draft["reasonCode"] = reason["code"]  # one object: the sandbox copies the chosen Condition's code
    return draft


def r4_draft(rid: str, text: str, *, dose_mg: float | None = None, route: dict | None = None,
             reason_ref: str | None = None, reason_code: list | None = None, status: str = "draft") -> dict:
    draft = {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order",
             "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"text": text}}
    dosage: dict = {}
    if dose_mg is not None:
        dosage["timing"] = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
        dosage["doseAndRate"] = [{"doseQuantity": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}]
    if route is not None:
        dosage["route"] = route
    if dosage:
        draft["dosageInstruction"] = [dosage]
    if reason_ref:
        draft["reasonReference"] = [{"reference": reason_ref}]
    if reason_code:
        draft["reasonCode"] = reason_code
    return draft


def service_request(rid: str, system: str, code: str) -> dict:
    return {"resourceType": "ServiceRequest", "id": rid, "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "code": {"coding": [{"system": system, "code": code}]}}


IV_ROUTE = {"coding": [{"system": SCT, "code": "47625008", "display": "Intravenous route"}]}
ORAL_ROUTE = {"coding": [{"system": SCT, "code": "26643006", "display": "Oral route"}], "text": "oral"}
MG_HYDROXIDE = ("magnesium hydroxide 80 MG/ML Oral Suspension", "1311629")
AL_HYDROXIDE = ("aluminum hydroxide 320 MG/5ML Oral Suspension", "91088")
WARFARIN_1MG = ("warfarin sodium 1 MG Oral Tablet", "855288")


def body_for(hook: str, record: list[dict], drafts: list[dict] | None = None, *, sandbox: bool = False,
             selections: list[str] | None = None) -> dict:
    service = services()[SERVICE_IDS[hook]]
    body = request_from_resources(service, record, draft_orders=drafts or [], selections=selections)
    if hook != VIEW and sandbox:  # the sandbox's Bundle has no type
        body["context"]["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts or []]}
    return body


def call(hook: str, body: dict, **settings) -> dict:
    response = make_app(NOW, **settings).test_client().post(f"/cds-services/{SERVICE_IDS[hook]}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def evaluate(hook: str, record: list[dict], drafts: list[dict] | None = None, **kwargs) -> dict:
    settings = kwargs.pop("settings", {})
    return call(hook, body_for(hook, record, drafts, **kwargs), **settings)


def cards_of(response: dict, rule_id: str) -> list[dict]:
    return [c for c in response["cards"] if rule_id in c["extension"]["calcinosis-cds"]["rules"]]


def one_card(response: dict, rule_id: str) -> dict:
    found = cards_of(response, rule_id)
    assert len(found) == 1, [c["summary"] for c in response["cards"]]
    return found[0]


def actions(card: dict) -> list[dict]:
    return [a for s in card.get("suggestions", []) for a in s.get("actions", [])]


def deletes(card: dict) -> list[str]:
    return [a["resourceId"] for a in actions(card) if a["type"] == "delete"]


def created_codes(card: dict) -> set[str]:
    return {c["code"] for a in actions(card) if a["type"] == "create" for c in a["resource"]["code"]["coding"]}


# ---------- discovery ----------


def test_discovery_lists_three_services_with_unique_ids_and_their_hooks():
    response = make_app().test_client().get("/cds-services")
    listed = response.get_json()["services"]
    ids = [s["id"] for s in listed]
    assert len(ids) == len(set(ids)), "the sandbox overwrites services that share an id"
    by_id = {s["id"]: s for s in listed}
    for hook, service_id in SERVICE_IDS.items():
        assert by_id[service_id]["hook"] == hook


@pytest.mark.parametrize("hook", [SELECT, SIGN])
def test_order_services_prefetch_what_the_order_rules_need_filtered(hook):
    prefetch = services()[SERVICE_IDS[hook]].prefetch
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    assert prefetch["conditions"].startswith("Condition?patient={{context.patientId}}")
    observations = prefetch["observations"]
    assert observations.startswith("Observation?patient={{context.patientId}}&code=")
    for loinc in ("2777-1", "17861-6", "19123-9", "5574-9", "98979-8", "2160-0"):  # P, Ca, Mg, Al, eGFR, creatinine
        assert f"{LOINC}|{loinc}" in observations
    assert f"{LOINC}|2731-8" not in observations  # PTH: no order rule reads it
    assert "status=active" in prefetch["medicationRequests"]
    assert "Procedure?" in prefetch["procedures"]
    assert {"patient", "conditions"} <= set(services()[SERVICE_IDS[hook]].required)


# ---------- R05 ----------


@pytest.mark.parametrize("hook", [SELECT, SIGN])
@pytest.mark.parametrize("sandbox", [True, False], ids=["sandbox-shape", "clean-r4"])
def test_r05_warns_on_a_mg_antacid_draft_in_renal_insufficiency(hook, sandbox):
    response = evaluate(hook, [patient(), CALCINOSIS, egfr(45)],
                        [sandbox_draft(*MG_HYDROXIDE, reason=CALCINOSIS)], sandbox=sandbox)
    card = one_card(response, "R05")
    assert card["indicator"] == "warning"
    assert deletes(card) == ["MedicationRequest/request-123"]
    assert {"19123-9", "306286007"} <= created_codes(card)  # serum Mg, nephrology referral
    assert "5574-9" not in created_codes(card)  # no aluminium in a magnesium antacid
    assert card["overrideReasons"] and all(r["display"] for r in card["overrideReasons"])


@pytest.mark.parametrize("hook", [SELECT, SIGN])
def test_r05_is_silent_without_renal_insufficiency(hook):
    response = evaluate(hook, [patient(), CALCINOSIS, egfr(75)], [sandbox_draft(*MG_HYDROXIDE)], sandbox=True)
    assert response["cards"] == []


@pytest.mark.parametrize(
    "record, draft, why",
    [
        ([CKD4], MG_HYDROXIDE, "severe renal insufficiency"),
        ([DIALYSIS], AL_HYDROXIDE, "dialysis"),
        ([egfr(50), lab("mg", "19123-9", 5.1, "mg/dL")], MG_HYDROXIDE, "magnesium >= 5.0 mg/dL"),
        ([egfr(50), lab("mg", "19123-9", 3.0, "mg/dL")], MG_HYDROXIDE, "magnesium above the adult limit 2.6"),
        ([egfr(50), lab("al", "5574-9", 12, "ng/mL")], AL_HYDROXIDE, "aluminium above 7 ng/mL"),
        ([egfr(50), condition("hypermg", ICD, "E83.41", "Hypermagnesemia")], MG_HYDROXIDE, "E83.41"),
        ([egfr(50), condition("albone", ICD, "M83.4", "Aluminum bone disease")], AL_HYDROXIDE, "M83.4"),
        ([CKD3, condition("ae", ICD, "T47.1X5A", "Adverse effect of other antacids")], MG_HYDROXIDE, "T47.1X5"),
    ],
)
@pytest.mark.parametrize("hook", [SELECT, SIGN])
def test_r05_is_critical_where_the_table_says(hook, record, draft, why):
    response = evaluate(hook, [patient(), CALCINOSIS, *record], [sandbox_draft(*draft)], sandbox=True)
    assert one_card(response, "R05")["indicator"] == "critical", why


@pytest.mark.parametrize(
    "record, draft, why",
    [
        ([egfr(50), lab("mg", "19123-9", 2.2, "mg/dL")], MG_HYDROXIDE, "normal magnesium"),
        ([egfr(50), lab("mg", "19123-9", 5.4, "mg/dL")], AL_HYDROXIDE, "magnesium does not escalate an Al-only antacid"),
        ([egfr(50), lab("al", "5574-9", 8, "ng/mL", referenceRange=[{"high": {"value": 10, "unit": "ng/mL"}}])],
         AL_HYDROXIDE, "aluminium within the lab's own range"),
    ],
)
def test_r05_stays_a_warning_otherwise(record, draft, why):
    response = evaluate(SIGN, [patient(), CALCINOSIS, *record], [sandbox_draft(*draft)])
    assert one_card(response, "R05")["indicator"] == "warning", why


def test_r05_on_patient_view_reviews_an_active_antacid_without_a_delete():
    active = r4_draft("mg-active", "Magnesium oxide 400 mg tablet", status="active")
    response = evaluate(VIEW, [patient(), CALCINOSIS, CKD3, active])
    card = one_card(response, "R05")
    assert card["indicator"] == "warning"
    assert deletes(card) == []  # not a draft: nothing to delete
    assert "19123-9" in created_codes(card)
    assert "Review this medication" in card["summary"]


def test_r05_on_an_order_hook_judges_the_drafts_not_the_active_record():
    active = r4_draft("mg-active", "Magnesium oxide 400 mg tablet", status="active")
    unrelated = r4_draft("amox", "amoxicillin 500 MG Oral Capsule")
    response = evaluate(SIGN, [patient(), CALCINOSIS, CKD3, active], [unrelated])
    assert cards_of(response, "R05") == []


# ---------- R06 ----------


@pytest.mark.parametrize("hook", [SELECT, SIGN])
def test_r06_info_with_phosphate_monitoring(hook):
    response = evaluate(hook, [patient(), CALCINOSIS, lab("p", "2777-1", 3.9, "mg/dL")],
                        [sandbox_draft("etidronate disodium 400 MG Oral Tablet", "197648")], sandbox=True)
    card = one_card(response, "R06")
    assert card["indicator"] == "info"
    assert created_codes(card) == {"2777-1"}
    assert deletes(card) == []


@pytest.mark.parametrize("hook", [SELECT, SIGN])
def test_r06_warns_and_offers_removal_when_phosphate_is_already_high(hook):
    response = evaluate(hook, [patient(), CALCINOSIS, lab("p", "14879-1", 1.9, "mmol/L")],
                        [r4_draft("zol", "zoledronic acid 5 MG/100ML Injectable Solution")])
    card = one_card(response, "R06")
    assert card["indicator"] == "warning"
    assert deletes(card) == ["MedicationRequest/zol"]


def test_r06_does_not_apply_the_adult_phosphate_limit_to_a_child():
    response = evaluate(SIGN, [patient(9), CALCINOSIS, lab("p", "2777-1", 5.3, "mg/dL")],
                        [r4_draft("eti", "etidronate disodium 200 MG Oral Tablet")])
    assert one_card(response, "R06")["indicator"] == "info"


def test_r06_does_not_propose_a_phosphate_test_the_draft_orders_already_hold():
    drafts = [sandbox_draft("etidronate disodium 400 MG Oral Tablet", "197648"),
              service_request("phos-lab", LOINC, "2777-1")]
    response = evaluate(SIGN, [patient(), CALCINOSIS], drafts, sandbox=True)
    card = one_card(response, "R06")
    assert "2777-1" not in created_codes(card)
    assert "A phosphate test is already among the draft orders" in card["detail"]
    assert "ServiceRequest/phos-lab" not in card["detail"]  # A20: named in words, never by its resource id


# ---------- R08b ----------


@pytest.mark.parametrize("hook", [SELECT, SIGN])
def test_r08b_warns_on_low_dose_warfarin_for_calcinosis_sandbox_shape(hook):
    response = evaluate(hook, [patient(), CALCINOSIS], [sandbox_draft(*WARFARIN_1MG, reason=CALCINOSIS)], sandbox=True)
    card = one_card(response, "R08b")
    assert card["indicator"] == "warning"
    assert deletes(card) == ["MedicationRequest/request-123"]
    med = next(e for e in card["extension"]["calcinosis-cds"]["evidence"] if e.get("reference") == "MedicationRequest/request-123")
    assert med["dailyDoseMg"] == 1.0 and med["lowDoseThresholdMg"] == 2.0


@pytest.mark.parametrize("hook", [SELECT, SIGN])
def test_r08b_reason_by_reference_to_the_calcinosis_condition(hook):
    response = evaluate(hook, [patient(), CALCINOSIS],
                        [r4_draft("w", "warfarin sodium 2 MG Oral Tablet", dose_mg=2, reason_ref="Condition/calcinosis")])
    assert one_card(response, "R08b")["indicator"] == "warning"


@pytest.mark.parametrize("hook", [SELECT, SIGN])
def test_r08b_is_info_without_a_reason(hook):
    response = evaluate(hook, [patient(), CALCINOSIS], [sandbox_draft(*WARFARIN_1MG, pills=2)], sandbox=True)
    card = one_card(response, "R08b")
    assert card["indicator"] == "info"
    assert "suggestions" not in card


@pytest.mark.parametrize(
    "draft, why",
    [
        (r4_draft("w", "warfarin sodium 1 MG Oral Tablet", dose_mg=1, reason_ref="Condition/af"), "another reason"),
        (r4_draft("w", "warfarin sodium 1 MG Oral Tablet", dose_mg=1,
                  reason_code=[{"coding": [{"system": ICD, "code": "I48.91"}], "text": "Atrial fibrillation"}]), "reasonCode AF"),
        (r4_draft("w", "warfarin sodium 5 MG Oral Tablet", dose_mg=5, reason_ref="Condition/calcinosis"), "not low dose"),
        (r4_draft("w", "warfarin sodium 1 MG Oral Tablet", reason_ref="Condition/calcinosis"), "dose unknown"),
    ],
)
@pytest.mark.parametrize("hook", [SELECT, SIGN])
def test_r08b_is_silent(hook, draft, why):
    response = evaluate(hook, [patient(), CALCINOSIS, AF], [draft])
    assert cards_of(response, "R08b") == [], why


def test_r08b_threshold_is_the_setting():
    draft = r4_draft("w", "warfarin sodium 3 MG Oral Tablet", dose_mg=3, reason_ref="Condition/calcinosis")
    assert cards_of(evaluate(SIGN, [patient(), CALCINOSIS], [draft]), "R08b") == []
    response = evaluate(SIGN, [patient(), CALCINOSIS], [draft], settings={"low_dose_warfarin_mg_per_day": 3.0})
    assert one_card(response, "R08b")["indicator"] == "warning"


# ---------- R08c ----------


def test_r08c_warns_on_order_sign_and_takes_precedence_over_r08b():
    draft = r4_draft("w", "warfarin sodium 1 MG Oral Tablet", dose_mg=1, reason_ref="Condition/calciphylaxis")
    response = evaluate(SIGN, [patient(), CALCIPHYLAXIS], [draft])
    card = one_card(response, "R08c")
    assert card["indicator"] == "warning"
    assert deletes(card) == ["MedicationRequest/w"]
    assert "306286007" in created_codes(card)
    assert "VisualDx lists warfarin among the risk factors" in card["detail"]
    assert "outside the article (VisualDx: Calciphylaxis)" in card["detail"]
    assert card["source"]["label"] == "VisualDx: Calciphylaxis"  # A20: the real source, not the article
    assert card["source"]["url"] == "https://visualdx.com/view/diagnosis/calciphylaxis"
    assert cards_of(response, "R08b") == []


def test_r08c_on_order_select_judges_the_selected_warfarin_only():
    """A21: R08c fires on order-select too, on the selected draft orders only."""
    warfarin = r4_draft("w", "warfarin sodium 5 MG Oral Tablet", dose_mg=5)
    other = r4_draft("amox", "amoxicillin 500 MG Oral Capsule")
    record = [patient(), CALCIPHYLAXIS]
    card = one_card(evaluate(SELECT, record, [warfarin, other], selections=["MedicationRequest/w"]), "R08c")
    assert card["indicator"] == "warning" and deletes(card) == ["MedicationRequest/w"]
    assert "**Ordered:** warfarin sodium 5 MG Oral Tablet, 5 mg/day." in card["detail"]
    assert cards_of(evaluate(SELECT, record, [warfarin, other], selections=["MedicationRequest/amox"]), "R08c") == []


def test_r08c_on_patient_view_for_active_warfarin():
    active = r4_draft("w", "warfarin sodium 5 MG Oral Tablet", status="active")
    card = one_card(evaluate(VIEW, [patient(), CALCIPHYLAXIS, active]), "R08c")
    assert card["indicator"] == "warning" and deletes(card) == []


def test_r08c_needs_calciphylaxis_not_only_calcinosis():
    draft = r4_draft("w", "warfarin sodium 5 MG Oral Tablet", dose_mg=5)
    assert cards_of(evaluate(SIGN, [patient(), CALCINOSIS], [draft]), "R08c") == []


def test_r08c_does_not_propose_a_nephrology_referral_already_in_the_draft_orders():
    drafts = [r4_draft("w", "warfarin sodium 5 MG Oral Tablet", dose_mg=5), service_request("neph", SCT, "306286007")]
    card = one_card(evaluate(SIGN, [patient(), CALCIPHYLAXIS], drafts), "R08c")
    assert "306286007" not in created_codes(card)


# ---------- R22 ----------


@pytest.mark.parametrize(
    "draft",
    [
        r4_draft("ca", "calcium gluconate 100 MG/ML Injectable Solution", route=IV_ROUTE),
        r4_draft("ca", "Calcium chloride 10%", route={"text": "IV push"}),
        r4_draft("ca", "sodium phosphate 3 MMOL/ML Injectable Solution"),
    ],
    ids=["gluconate-iv-route", "chloride-iv-text", "phosphate-injectable-form"],
)
def test_r22a_info_on_order_select_for_iv_calcium_or_phosphate(draft):
    card = one_card(evaluate(SELECT, [patient(), CALCINOSIS], [draft]), "R22")
    assert card["indicator"] == "info"
    assert deletes(card) == []  # never block clinically required IV calcium
    # The protocol is institution-specific: no link is invented for it; the only link is the rule's own page.
    assert "institution's extravasation protocol" in card["detail"]
    assert [link["url"] for link in card["links"]] == ["http://localhost/rules/R22"]


@pytest.mark.parametrize(
    "draft",
    [
        r4_draft("ca", "calcium gluconate 500 MG Oral Tablet", route=ORAL_ROUTE),
        r4_draft("ca", "calcium carbonate 1250 MG Oral Tablet"),
        r4_draft("ca", "sodium phosphate, dibasic 7 GM / sodium phosphate, monobasic 19 GM Enema"),
        r4_draft("ca", "calcium chloride 0.2 MG/ML / potassium chloride 0.3 MG/ML / sodium chloride 6 MG/ML / "
                       "sodium lactate 3.1 MG/ML Injectable Solution", route=IV_ROUTE),
        r4_draft("ca", "calcium gluconate"),
    ],
    ids=["oral-gluconate", "calcium-carbonate", "phosphate-enema", "ringers-lactate", "no-route-no-form"],
)
def test_r22a_silent_for_non_iv_calcium_or_phosphate(draft):
    assert cards_of(evaluate(SELECT, [patient(), CALCINOSIS], [draft]), "R22") == []


def test_r22a_fires_on_order_sign_as_well_and_on_order_select_only_for_the_selected_order():
    """A21: every draft-order rule on both order hooks, order-select judging the selected orders only."""
    draft = r4_draft("ca", "calcium gluconate 100 MG/ML Injectable Solution", route=IV_ROUTE)
    other = r4_draft("amox", "amoxicillin 500 MG Oral Capsule")
    card = one_card(evaluate(SIGN, [patient(), CALCINOSIS], [draft, other]), "R22")
    assert card["indicator"] == "info" and deletes(card) == []
    selected_other = evaluate(SELECT, [patient(), CALCINOSIS], [draft, other], selections=["MedicationRequest/amox"])
    assert cards_of(selected_other, "R22") == []


def test_r22a_names_renal_insufficiency_and_a_high_calcium_phosphate_product():
    record = [patient(), CALCINOSIS, CKD3, lab("p", "2777-1", 7.0, "mg/dL"), lab("ca", "17861-6", 11.0, "mg/dL")]
    card = one_card(evaluate(SELECT, record, [r4_draft("ca", "calcium gluconate 100 MG/ML Injectable Solution")]), "R22")
    assert "renal insufficiency: Chronic kidney disease, stage 3a" in card["detail"]
    assert "Ca × P 77 mg²/dL², above 70: calcium 11 mg/dL (9 Mar 2026); phosphate 7 mg/dL (9 Mar 2026)" in card["detail"]


def test_r22b_warns_on_patient_view_for_a_recorded_extravasation():
    extravasation = condition("ex", ICD, "T80.818A", "Extravasation of other vesicant agent, initial encounter")
    card = one_card(evaluate(VIEW, [patient(), CALCINOSIS, extravasation]), "R22")
    assert card["indicator"] == "warning" and card["overrideReasons"]


def test_r22b_not_for_chemotherapy_extravasation():
    chemo = condition("ex", ICD, "T80.810A", "Extravasation of vesicant antineoplastic chemotherapy, initial encounter")
    assert cards_of(evaluate(VIEW, [patient(), CALCINOSIS, chemo]), "R22") == []


# ---------- scope, leniency, validity, determinism ----------

POSITIVE_ORDER_CASES = [
    (SELECT, [CKD4], [sandbox_draft(*MG_HYDROXIDE)]),
    (SIGN, [DIALYSIS], [sandbox_draft(*AL_HYDROXIDE)]),
    (SELECT, [lab("p", "2777-1", 6.0, "mg/dL")], [sandbox_draft("alendronate sodium 70 MG Oral Tablet", "904419")]),
    (SIGN, [], [sandbox_draft(*WARFARIN_1MG)]),
    (SELECT, [CKD3], [r4_draft("request-123", "calcium gluconate 100 MG/ML Injectable Solution", route=IV_ROUTE)]),
]


@pytest.mark.parametrize("hook, record, drafts", POSITIVE_ORDER_CASES)
def test_a_patient_without_calcinosis_gets_no_card(hook, record, drafts):
    assert evaluate(hook, [patient(), CALCINOSIS, *record], drafts, sandbox=True)["cards"], "with calcinosis: a card"
    assert evaluate(hook, [patient(), *record], drafts, sandbox=True) == {"cards": []}


@pytest.mark.parametrize("hook", [SELECT, SIGN])
@pytest.mark.parametrize(
    "draft_orders",
    [
        {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MedicationRequest", "id": "request-123",
                                                           "status": "draft", "subject": {"reference": "Patient/p1"},
                                                           "authoredOn": "2026-03-14"}}]},
        {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MedicationOrder", "id": "request-123",
                                                           "status": "draft", "patient": {"reference": "Patient/p1"},
                                                           "dateWritten": "2026-03-14"}}]},
        {"resourceType": "Bundle", "entry": [{"fullUrl": "urn:uuid:x"}, {"resource": "junk"}, "junk",
                                             {"resource": {"resourceType": "MedicationRequest", "id": "request-123",
                                                           "medicationCodeableConcept": {}}}]},
        {"resourceType": "Bundle"},
    ],
    ids=["r4-before-drug-picked", "dstu2-before-drug-picked", "junk-entries", "no-entries"],
)
def test_a_draft_without_medication_gives_no_card_and_no_error(hook, draft_orders):
    body = body_for(hook, [patient(), CALCINOSIS, CKD4, lab("p", "2777-1", 6.0, "mg/dL")])
    body["context"]["draftOrders"] = draft_orders
    if hook == SELECT:
        body["context"]["selections"] = ["MedicationRequest/request-123"]
    assert call(hook, body)["cards"] == []


def test_a_dstu2_medication_order_is_judged_and_deleted_by_its_selection_reference():
    order = sandbox_draft(*MG_HYDROXIDE)
    order.update(resourceType="MedicationOrder", id="order-123")
    order["patient"] = order.pop("subject")
    order["dateWritten"] = order.pop("authoredOn")
    order["reasonCodeableConcept"] = CALCINOSIS["code"]
    dosage = order["dosageInstruction"][0]
    dosage["doseQuantity"] = dosage.pop("doseAndRate")[0]["doseQuantity"]
    dosage["timing"]["repeat"]["periodUnits"] = dosage["timing"]["repeat"].pop("periodUnit")
    for key in ("intent", "category", "dispenseRequest"):
        order.pop(key)
    response = evaluate(SELECT, [patient(), CALCINOSIS, CKD3], [order], sandbox=True,
                        selections=["MedicationOrder/order-123"])
    assert deletes(one_card(response, "R05")) == ["MedicationOrder/order-123"]


def test_order_select_judges_the_selected_drafts_and_order_sign_all_of_them():
    antacid = r4_draft("mg", "magnesium hydroxide 400 MG Chewable Tablet")
    other = r4_draft("amox", "amoxicillin 500 MG Oral Capsule")
    record = [patient(), CALCINOSIS, CKD3]
    assert cards_of(evaluate(SELECT, record, [antacid, other], selections=["MedicationRequest/amox"]), "R05") == []
    assert cards_of(evaluate(SELECT, record, [antacid, other], selections=["MedicationRequest/mg"]), "R05")
    assert cards_of(evaluate(SIGN, record, [antacid, other]), "R05")


VALIDITY_CASES = POSITIVE_ORDER_CASES + [
    (SIGN, [CALCIPHYLAXIS], [r4_draft("request-123", "warfarin sodium 5 MG Oral Tablet", dose_mg=5)]),
    (SELECT, [lab("p", "2777-1", 3.0, "mg/dL")], [sandbox_draft("etidronate disodium 400 MG Oral Tablet", "197648")]),
]


@pytest.mark.parametrize("hook, record, drafts", VALIDITY_CASES)
def test_every_suggested_action_is_valid_cds_hooks(hook, record, drafts):
    body = body_for(hook, [patient(), CALCINOSIS, *record], drafts, sandbox=True)
    response = call(hook, body)
    assert response["cards"]
    draft_references = {f"{d['resourceType']}/{d['id']}" for d in drafts}
    selections = set(body["context"].get("selections", draft_references))
    for card in response["cards"]:
        if card["indicator"] in ("warning", "critical"):
            assert card["overrideReasons"] and all(r["code"] and r["system"] and r["display"] for r in card["overrideReasons"])
        if "suggestions" in card:
            assert card["selectionBehavior"] in ("at-most-one", "any")
        for suggestion in card.get("suggestions", []):
            uuid.UUID(suggestion["uuid"])
            assert suggestion["label"]
            for action in suggestion["actions"]:
                assert action["description"]
                if action["type"] == "delete":
                    assert "resource" not in action
                    assert action["resourceId"] in selections & draft_references
                else:
                    assert action["type"] == "create"
                    resource = action["resource"]
                    get_fhir_model_class(resource["resourceType"]).model_validate(resource)  # R4B-valid
                    assert resource["status"] == "draft" and resource["intent"] == "proposal"
                    assert resource["subject"] == {"reference": "Patient/p1"}


@pytest.mark.parametrize("hook, record, drafts", VALIDITY_CASES)
def test_the_same_data_gives_the_same_cards_with_new_uuids_whatever_the_hook_instance(hook, record, drafts):
    body = body_for(hook, [patient(), CALCINOSIS, *record], drafts, sandbox=True)
    first = call(hook, body)
    again = copy.deepcopy(body)
    again["hookInstance"] = str(uuid.uuid4())
    assert again["hookInstance"] != body["hookInstance"]
    second = call(hook, again)
    assert without_uuids(second) == without_uuids(first)  # the same cards, stable keys included
    assert not set(uuids_of(first)) & set(uuids_of(second))  # A20: every card and suggestion uuid is new


# ---------- orders.py units ----------


def test_read_draft_orders_is_lenient():
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {"fullUrl": "urn:uuid:no-resource"},
            {"resource": {"resourceType": "MedicationRequest", "id": "a", "status": "draft",
                          "medicationReference": {"reference": "#med"},
                          "contained": [{"resourceType": "Medication", "id": "med",
                                         "code": {"text": "Aluminium hydroxide 500 mg tablet"}}],
                          "reasonCode": {"coding": [{"system": ICD, "code": "L94.2"}]}}},
            {"fullUrl": "http://ehr/fhir/MedicationRequest/b",
             "resource": {"resourceType": "MedicationRequest", "status": "draft", "medicationCodeableConcept": {"text": "x"}}},
            {"resource": {"resourceType": "MedicationRequest", "id": "c", "status": "entered-in-error",
                          "medicationCodeableConcept": {"text": "warfarin"}}},
            {"resource": {"resourceType": "MedicationRequest", "id": "d", "medicationReference": {"reference": "Medication/m1"}}},
            {"resource": {"resourceType": "ServiceRequest", "id": "s", "status": "draft",
                          "code": {"coding": [{"system": LOINC, "code": "2777-1"}]}}},
        ],
    }
    record_medications = [{"resourceType": "Medication", "id": "m1", "code": {"text": "Etidronate disodium 200 mg tablet"}}]
    facts = {f.reference: f for f in read_draft_orders(bundle, record_medications)}
    assert set(facts) == {"MedicationRequest/a", "MedicationRequest/b", "MedicationRequest/d"}
    assert all(f.draft for f in facts.values())
    assert facts["MedicationRequest/a"].text == "Aluminium hydroxide 500 mg tablet"
    assert facts["MedicationRequest/a"].reason_concepts[0]["coding"][0]["code"] == "L94.2"
    assert facts["MedicationRequest/d"].text == "Etidronate disodium 200 mg tablet"
    services_ = read_draft_service_orders(bundle)
    assert [(s.reference, set(s.codes)) for s in services_] == [("ServiceRequest/s", {("loinc", "2777-1")})]


def test_a_draft_that_forbids_the_act_is_no_order():
    # doNotPerform is a modifier: "do not give aluminium hydroxide" and "do not measure phosphate" order nothing, so
    # they are neither judged as medication orders nor taken as the draft a rule's proposal would repeat.
    bundle = {"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "MedicationRequest", "id": "no-al", "status": "draft", "doNotPerform": True,
                      "medicationCodeableConcept": {"text": "Aluminium hydroxide 500 mg tablet"}}},
        {"resource": {"resourceType": "MedicationRequest", "id": "al", "status": "draft", "doNotPerform": False,
                      "medicationCodeableConcept": {"text": "Aluminium hydroxide 500 mg tablet"}}},
        {"resource": {"resourceType": "ServiceRequest", "id": "no-p", "status": "draft", "doNotPerform": True,
                      "code": {"coding": [{"system": LOINC, "code": "2777-1"}]}}},
    ]}
    assert [f.reference for f in read_draft_orders(bundle, [])] == ["MedicationRequest/al"]
    assert read_draft_service_orders(bundle) == []


def test_read_draft_orders_tolerates_a_non_bundle():
    assert read_draft_orders(None, []) == []
    assert read_draft_orders({"resourceType": "Bundle", "entry": {"resource": {"resourceType": "MedicationRequest", "id": "x"}}}, [])[0].has_medication is False


@pytest.mark.parametrize(
    "texts, strength",
    [
        (["warfarin sodium 1 MG Oral Tablet"], 1.0),
        (["Warfarin Sodium 2.5 MG Oral Tablet [Jantoven]"], 2.5),
        (["magnesium hydroxide 80 MG/ML Oral Suspension"], None),
        (["aluminum hydroxide 200 MG / magnesium hydroxide 200 MG Chewable Tablet"], None),
        (["warfarin"], None),
        ([None, "calcium carbonate 1.25 G Oral Tablet"], 1250.0),
    ],
)
def test_product_strength(texts, strength):
    assert product_strength_mg(texts) == strength


def test_daily_dose_in_tablets_mass_and_dstu2_shapes():
    r4 = {"dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                 "doseAndRate": [{"doseQuantity": {"value": 1.5, "code": "{pill}"}}]}]}
    assert daily_dose_mg(r4, 1.0) == 3.0
    assert daily_dose_mg(r4, None) is None  # tablets of an unknown strength
    dstu2 = {"dosageInstruction": {"doseQuantity": {"value": 500, "code": "ug"},
                                   "timing": {"repeat": {"frequency": 1, "period": 2, "periodUnits": "d"}}}}
    assert daily_dose_mg(dstu2, None) == 0.25
    assert daily_dose_mg({"dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 1, "code": "mg"}}]}]}, None) is None


def test_orders_under_review_follow_the_hook():
    drafts = read_draft_orders({"resourceType": "Bundle", "entry": [
        {"resource": r4_draft("a", "warfarin sodium 1 MG Oral Tablet")},
        {"resource": r4_draft("b", "etidronate disodium 200 MG Oral Tablet")},
        {"resource": {"resourceType": "MedicationRequest", "id": "c", "status": "draft"}},
    ]}, [])

    class Facts:
        draft_orders = drafts

    def refs(hook, selections=None):
        ctx = Context(hook=hook, hook_context={"selections": selections} if selections else {})
        return [d.reference for d in orders_under_review(Facts, ctx)]

    assert refs(SELECT, ["MedicationRequest/b", "MedicationRequest/c"]) == ["MedicationRequest/b"]
    assert refs(SIGN) == ["MedicationRequest/a", "MedicationRequest/b"]
    assert refs(VIEW) == []


def test_is_intravenous_is_careful_with_oral_calcium():
    def draft(text, route=None):
        return read_draft_orders({"resourceType": "Bundle", "entry": [{"resource": r4_draft("x", text, route=route)}]}, [])[0]

    assert is_intravenous(draft("calcium gluconate", IV_ROUTE))
    assert is_intravenous(draft("calcium gluconate 10% injection"))
    assert not is_intravenous(draft("calcium gluconate 10% injection", ORAL_ROUTE))
    assert not is_intravenous(draft("calcium gluconate 650 MG Oral Tablet"))
    assert not is_intravenous(draft("Lactated Ringer's Injection", IV_ROUTE))


def test_r05_does_not_propose_what_is_already_ordered_or_referred():
    referral = {**service_request("neph-old", SCT, "306286007"), "status": "active",
                "authoredOn": (NOW - timedelta(days=30)).isoformat()}
    drafts = [sandbox_draft(*MG_HYDROXIDE), {**service_request("mg-lab", LOINC, "19123-9"), "category": {"text": "lab"}}]
    card = one_card(evaluate(SIGN, [patient(), CALCINOSIS, CKD3, referral], drafts, sandbox=True), "R05")
    assert created_codes(card) == set()
    assert deletes(card) == ["MedicationRequest/request-123"]
    assert "Already ordered or referred, so not suggested again: serum magnesium test, nephrology referral." in card["detail"]
    assert "ServiceRequest/" not in card["detail"]
