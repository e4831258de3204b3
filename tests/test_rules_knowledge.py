"""The knowledge rules (R01-R04, R07, R08a, R09-R21, R23) through the HTTP API: what each card says and proposes.

The scenario test (test_scenarios.py) checks that each rule fires or stays silent; these tests check the content:
indicator, summary, the proposals (valid FHIR R4B, draft/proposal, a dose only for R13), and every "must NOT
suggest" of the clinical specification.
"""

import pytest

from ._knowledge import by_id, cards_of, medication_texts, proposed, validate_r4b, variant, withheld
from .conftest import evaluate_scenario, fired_rules, load_scenario, scenario_names

KNOWLEDGE_SCENARIOS = [n for n in scenario_names() if n.split("-")[0] in {
    "r01", "r02", "r03", "r04", "r07", "r08a", "r09", "r10", "r11", "r12", "r13", "r14", "r15", "r16", "r17", "r18",
    "r19", "r20", "r21", "r23"}]


@pytest.mark.parametrize("name", KNOWLEDGE_SCENARIOS)
def test_every_proposal_is_a_valid_r4b_draft_proposal_for_the_patient(name):
    response = evaluate_scenario(name)
    assert "skippedResources" not in response.get("extension", {}).get("calcinosis-cds", {}), name
    assert "failedRules" not in response.get("extension", {}).get("calcinosis-cds", {}), name
    for card in response["cards"]:
        assert len(card["summary"]) < 140
        if card.get("suggestions"):
            assert card["selectionBehavior"] in ("at-most-one", "any")
        if card["indicator"] in ("warning", "critical"):
            assert all(reason["display"] for reason in card["overrideReasons"])
        rules = card["extension"]["calcinosis-cds"]["rules"]
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                resource = action["resource"]
                validate_r4b(resource)
                assert resource["status"] == "draft" and resource["intent"] == "proposal"
                subject = resource.get("subject") or resource.get("patient")
                assert subject == {"reference": "Patient/p1"}
                if resource["resourceType"] == "MedicationRequest" and "dosageInstruction" in resource:
                    assert "minocycline" in resource["medicationCodeableConcept"]["text"].lower(), (name, rules)


def test_r01_missing_workup_proposes_the_labs_and_nothing_else():
    response = evaluate_scenario("r01-positive-missing-workup")
    (card,) = cards_of(response, "R01")
    assert card["indicator"] == "info"
    codes = {r["code"]["coding"][0]["code"] for s in card["suggestions"] for r in (a["resource"] for a in s["actions"])}
    assert {"17861-6", "2777-1", "1751-7", "2160-0", "2731-8"} <= codes
    assert "extrapolation" in card["detail"]


def test_r01_names_the_driver():
    (card,) = cards_of(evaluate_scenario("r01-positive-hyperparathyroidism"), "R01")
    assert "hyperparathyroidism" in card["summary"] and "high parathyroid hormone" in card["summary"]
    # A20: each driver as a clinician writes it, with its date; the article's references are on the rule page.
    assert ("- PTH 140 pg/mL (7 Mar 2026): above the lab's upper limit 65 pg/mL\n"
            "- Primary hyperparathyroidism (since 7 Feb 2025)") in card["detail"]
    assert "[23, 24]" not in card["detail"]
    assert card["links"] == [{"label": "Evidence and sources: Correct the underlying cause",
                              "url": "http://localhost/rules/R01", "type": "absolute"}]


def test_r02_proposes_triamcinolone_without_a_dose():
    response = evaluate_scenario("r02-positive-limited-ssc")
    (request,) = [r for r in proposed(response) if r["resourceType"] == "MedicationRequest"
                  and "triamcinolone" in r["medicationCodeableConcept"]["text"].lower()]
    assert "dosageInstruction" not in request
    assert request["medicationCodeableConcept"]["coding"][0]["code"] == "10759"


def test_r03_renal_caution_and_no_proposal_in_severe_renal_insufficiency():
    response = variant("r03-positive-plain-calcinosis", lambda rs: rs.append({
        "resourceType": "Condition", "id": "esrd", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "N18.6", "display": "End stage renal disease"}]},
        "subject": {"reference": "Patient/p1"}}))
    (card,) = cards_of(response, "R03")
    assert "Renal caution" in card["detail"] and "outside the article" in card["detail"].lower()
    assert not any(t.startswith(("probenecid", "colchicine")) for t in medication_texts(response))
    plain = evaluate_scenario("r03-positive-plain-calcinosis")
    assert {"probenecid (dose to be set by the clinician)", "colchicine (dose to be set by the clinician)"} <= set(medication_texts(plain))


def test_r04_withheld_in_renal_insufficiency_and_the_card_says_why():
    response = evaluate_scenario("r04-negative-renal-insufficiency")
    assert "R04" in withheld(response) and "renal insufficiency" in withheld(response)["R04"]
    assert not any("antacid" in t for t in medication_texts(response))
    (card,) = [c for c in response["cards"] if "withheld" in c["extension"]["calcinosis-cds"]]
    assert ("**Not suggested for this patient:**\n\n- **Mg/Al antacid as phosphate binder:** renal insufficiency is "
            "recorded (risk of magnesium or aluminium toxicity).") in card["detail"]
    positive = evaluate_scenario("r04-positive-hyperphosphatemia-normal-egfr")
    # A20: the mandatory caveat stays on the grouped card's line for the option
    assert ("- **Mg/Al antacid as phosphate binder.** Avoid in renal insufficiency; aluminium only in short courses "
            "(outside the article). *Not graded.*") in cards_of(positive, "R04")[0]["detail"]


def test_r04_unknown_renal_function_proposes_a_renal_test_first():
    response = variant("r04-positive-hyperphosphatemia-normal-egfr", lambda rs: rs.remove(by_id(rs, "egfr")))
    (card,) = cards_of(response, "R04")
    loincs = {r["code"]["coding"][0]["code"] for r in proposed(response) if r["resourceType"] == "ServiceRequest"
              and r["code"].get("coding", [{}])[0].get("system") == "http://loinc.org"}
    assert loincs == {"2160-0"}  # A13: a creatinine test (the eGFR is calculated from it)
    assert "check renal function first" in card["detail"].lower()


def test_r07_animal_data_only_is_on_no_card_but_in_the_catalogue():
    """A20: R07 is not shown on cards; it stays in the catalogue (and on its rule page)."""
    from cards import knowledge

    response = evaluate_scenario("r07-negative-animal-data-only")
    assert response["cards"] and not cards_of(response, "R07")
    assert not any("hexaphosph" in str(card).lower() or "phytate" in str(card).lower() for card in response["cards"])
    rule = knowledge().rules["R07"]
    assert rule.hooks == () and rule.evidence_level == "Animal studies only; no human data"


def test_r08a_option_is_information_only_and_says_low_dose_is_not_recommended():
    (card,) = cards_of(evaluate_scenario("r08a-positive-ctd"), "R08a")
    assert "- **Warfarin (not low dose).** Not proposed: weigh the bleeding risk. *Case series and reports.*" in card["detail"]
    assert "[27]" not in card["detail"]  # the article's references are on the rule page
    assert {"label": "Evidence: Warfarin as an option (never low dose)", "url": "http://localhost/rules/R08a",
            "type": "absolute"} in card["links"]
    assert not any("warfarin" in t for t in medication_texts(evaluate_scenario("r08a-positive-ctd")))


@pytest.mark.parametrize("name, reason", [
    ("r08a-negative-pregnant", "pregnancy"),
    ("r08a-negative-anticoagulated", "bleeding risk"),
])
def test_r08a_withheld_says_why(name, reason):
    response = evaluate_scenario(name)
    assert reason in withheld(response)["R08a"]
    assert not any("warfarin" in t for t in medication_texts(response))


def test_r08a_withheld_in_calciphylaxis_with_calcinosis_cutis_and_absent_in_calciphylaxis_alone():
    alone = evaluate_scenario("r08a-negative-calciphylaxis")
    assert "R08a" not in withheld(alone) and "R11" in fired_rules(alone)  # A17: not an option there at all

    def add_calcinosis_cutis(rs):
        rs.append({"resourceType": "Condition", "id": "cc", "subject": {"reference": "Patient/p1"},
                   "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                   "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L94.2", "display": "Calcinosis cutis"}]}})
    both = variant("r08a-negative-calciphylaxis", add_calcinosis_cutis)
    assert "calciphylaxis" in withheld(both)["R08a"]
    assert not any("warfarin" in t for t in medication_texts(both))


def test_r09_refers_to_rheumatology_once_and_flags_biologic_screening():
    response = evaluate_scenario("r09-positive-dermatomyositis")
    (card,) = cards_of(response, "R09")
    assert ("- **Rituximab or a TNF inhibitor.** With rheumatology; screen for TB and hepatitis B first (outside the "
            "article). *Case series.*") in card["detail"]
    rheumatology = [r for r in proposed(response) if r["resourceType"] == "ServiceRequest" and
                    r["code"]["coding"][0]["code"] == "306290009"]
    assert len(rheumatology) == 1  # offered by R17 and R09: once (A12)
    assert not any(t for t in medication_texts(response) if "rituximab" in t or "mab" in t)


def test_r10_information_only():
    response = evaluate_scenario("r10-positive-plain-calcinosis")
    (card,) = cards_of(response, "R10")
    assert ("- **Diltiazem for at least 5 years.** Cardiac cautions (outside the article): hypotension, AV block, "
            "CYP3A4. *Case reports, small series.*") in card["detail"]
    assert not any("diltiazem" in t for t in medication_texts(response))


def test_r11_is_a_warning_with_a_nephrology_referral_and_no_thiosulfate_order():
    response = evaluate_scenario("r11-positive-calciphylaxis")
    (card,) = cards_of(response, "R11")
    assert card["indicator"] == "warning" and card is response["cards"][0]
    assert card["summary"] == "Calciphylaxis: consider IV sodium thiosulfate (off-label/experimental) with nephrology."
    assert [s["actions"][0]["resource"]["code"]["coding"][0]["code"] for s in card["suggestions"]] == ["306286007"]
    assert card["detail"].startswith("Consider intravenous sodium thiosulfate, off-label and experimental, decided with "
                                     "nephrology")
    assert card["detail"].endswith("*Evidence: Case series and reports; off-label and experimental (article).*")
    assert not any("thiosulfate" in t for t in medication_texts(response))
    nephrology = [r for r in proposed(response) if r["resourceType"] == "ServiceRequest" and r["code"]["coding"][0]["code"] == "306286007"]
    assert len(nephrology) == 1  # R17 would say the same: its card is not shown (A12)


def test_r12_information_only_with_the_concentration():
    (card,) = cards_of(evaluate_scenario("r12-positive-tumoral"), "R12")
    assert "- **Sodium thiosulfate 25%, topical or intralesional.** For tumoral calcinosis. *Case reports.*" in card["detail"]


def test_r13_minocycline_proposal_is_the_only_dose():
    response = evaluate_scenario("r13-positive-limited-ssc")
    (request,) = [r for r in proposed(response) if r["resourceType"] == "MedicationRequest" and "dosageInstruction" in r]
    assert request["medicationCodeableConcept"]["coding"][0]["code"] == "197985"
    dose = request["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert (dose["value"], dose["code"]) == (50.0, "mg")
    assert "blue-black" in cards_of(response, "R13")[0]["detail"]


@pytest.mark.parametrize("name, reason", [
    ("r13-negative-pregnant", "pregnancy"),
    ("r13-negative-pregnancy-observation", "pregnancy"),
    ("r13-negative-child-under-8", "age under 8"),
    ("r13-negative-tetracycline-allergy", "tetracycline allergy"),
])
def test_r13_must_not_suggest_minocycline_and_says_why(name, reason):
    response = evaluate_scenario(name)
    assert not any("minocycline" in t for t in medication_texts(response))
    assert reason in withheld(response)["R13"]


def test_r13_withheld_when_age_unknown_or_allergy_list_unavailable():
    response = variant("r13-positive-limited-ssc", lambda rs: by_id(rs, "p1").pop("birthDate"))
    assert "age unknown" in withheld(response)["R13"]
    scenario = load_scenario("r13-positive-limited-ssc")
    from .conftest import make_app, scenario_request
    service_id, body = scenario_request(scenario)
    del body["prefetch"]["allergies"]  # absent key and no fhirServer: the allergy list cannot be obtained
    result = make_app().test_client().post(f"/cds-services/{service_id}", json=body).get_json()
    assert "allergy list unavailable" in withheld(result)["R13"]


def test_r13_inactive_allergy_does_not_withhold():
    response = variant("r13-negative-tetracycline-allergy", lambda rs: by_id(rs, "doxy").update(
        verificationStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "refuted"}]}))
    assert any("minocycline" in t for t in medication_texts(response))


def test_r14_refers_to_hematology_never_proposes_hsct():
    response = evaluate_scenario("r14-positive-severe-ssc")
    (card,) = cards_of(response, "R14")
    assert "- **Autologous stem cell transplant.** Specialist evaluation only. *Theoretical.*" in card["detail"]
    codes = {r["code"]["coding"][0]["code"] for r in proposed(response) if r["resourceType"] == "ServiceRequest" and r["code"].get("coding")}
    assert "183567007" in codes and "234336002" not in codes


def test_r14_severity_by_text_fallback():
    response = variant("r14-negative-moderate", lambda rs: by_id(rs, "calcinosis").update(severity={"text": "Severe"}))
    assert cards_of(response, "R14")


def test_r15_card_carries_the_test_site_caution_and_no_excision_order():
    response = evaluate_scenario("r15-positive-recurrent-infection")
    (card,) = cards_of(response, "R15")
    assert "surgical trauma may stimulate calcification" in card["detail"].lower()
    assert "recurrence is common" in card["detail"].lower()
    assert all(r["resourceType"] == "ServiceRequest" and "Referral" in r["code"]["text"]
               for s in card["suggestions"] for r in (a["resource"] for a in s["actions"]))


def test_r15_infection_entered_in_error_does_not_count():
    def change(rs):
        by_id(rs, "cell1")["verificationStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error"}]}
    assert not cards_of(variant("r15-positive-recurrent-infection", change), "R15")


def test_r16_referral_by_text_and_not_curative():
    response = evaluate_scenario("r16-positive-dm-pain")
    (card,) = cards_of(response, "R16")
    assert "- **Shock wave lithotripsy for pain.** Relieves pain; not curative. *Anecdotal (case reports).*" in card["detail"]
    assert any("shock wave" in r["code"].get("text", "") for r in proposed(response) if r["resourceType"] == "ServiceRequest")


def test_r17_one_referral_per_indicated_specialty_any_of_them():
    (card,) = cards_of(evaluate_scenario("r17-positive-ctd"), "R17")
    assert [s["actions"][0]["resource"]["code"]["coding"][0]["code"] for s in card["suggestions"]] == ["306290009"]
    assert card["extension"]["calcinosis-cds"]["key"] == "R17:rheumatology"
    ckd4 = {"resourceType": "Condition", "id": "ckd", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "N18.4",
                                 "display": "Chronic kidney disease, stage 4 (severe)"}]}}
    (card,) = cards_of(variant("r17-positive-ctd", lambda rs: rs.append(ckd4)), "R17")
    assert card["selectionBehavior"] == "any"  # A20: both referrals may be accepted
    assert [s["actions"][0]["resource"]["code"]["coding"][0]["code"] for s in card["suggestions"]] == ["306286007", "306290009"]
    assert card["extension"]["calcinosis-cds"]["key"] == "R17:nephrology+rheumatology"
    assert [s["extension"]["calcinosis-cds"]["key"] for s in card["suggestions"]] == [
        "R17:referral-nephrology", "R17:referral-rheumatology"]
    assert card["summary"] == ("Calcinosis cutis with renal and connective-tissue disease: consider referral to "
                               "nephrology and rheumatology.")


def test_r18_renal_diet_only_with_renal_insufficiency_and_no_numeric_limit():
    response = evaluate_scenario("r18-positive-mmol")
    (diet,) = [r for r in proposed(response) if r["resourceType"] == "NutritionOrder" and "Phosphorus" in r["oralDiet"]["type"][0]["text"]]
    assert "coding" not in diet["oralDiet"]["type"][0]  # no renal insufficiency: not a renal disease diet
    assert diet["oralDiet"]["nutrient"][0]["modifier"]["coding"][0]["code"] == "30820000"
    assert "amount" not in diet["oralDiet"]["nutrient"][0]
    ckd = evaluate_scenario("r04-negative-renal-insufficiency")
    (renal,) = [r for r in proposed(ckd) if r["resourceType"] == "NutritionOrder"]
    assert renal["oralDiet"]["type"][0]["coding"][0]["code"] == "33489005"


def test_r19_critical_calcium_is_a_warning_without_a_diet():
    response = evaluate_scenario("r19-positive-critical")
    (card,) = cards_of(response, "R19")
    assert card["indicator"] == "warning" and "critical" in card["summary"].lower()
    assert "Critical value" in card["detail"]
    assert not any(r["resourceType"] == "NutritionOrder" for r in proposed(response))
    info = evaluate_scenario("r19-positive-hypercalcemia")
    (card,) = cards_of(info, "R19")
    assert card["indicator"] == "info"
    assert any(r["resourceType"] == "NutritionOrder" and "Calcium" in r["oralDiet"]["type"][0]["text"] for r in proposed(info))


def test_r19_critical_in_a_child_too():
    response = variant("r19-positive-critical", lambda rs: by_id(rs, "p1").update(birthDate="2020-01-01"))  # 6 at NOW
    assert cards_of(response, "R19")[0]["indicator"] == "warning"


def test_r20_never_orders_a_ketogenic_diet_and_flags_sglt2():
    response = evaluate_scenario("r20-positive-sglt2")
    (card,) = cards_of(response, "R20")
    assert "SGLT2" in card["detail"] and "outside the article" in card["detail"].lower()
    assert not any(r["resourceType"] == "NutritionOrder" for r in proposed(response))


def test_r20_flags_children_and_pregnancy():
    child = variant("r03-positive-plain-calcinosis", lambda rs: by_id(rs, "p1").update(birthDate="2019-05-01"))
    assert "child" in cards_of(child, "R20")[0]["detail"]
    pregnant = evaluate_scenario("r13-negative-pregnant")
    assert "pregnant" in cards_of(pregnant, "R20")[0]["detail"]


def test_r21_refers_to_physiotherapy_or_occupational_therapy():
    response = evaluate_scenario("r21-positive-contracture")
    codes = {r["code"]["coding"][0]["code"] for r in proposed(response) if r["resourceType"] == "ServiceRequest" and r["code"].get("coding")}
    assert {"308447003", "308453003"} <= codes


def test_r23_warning_labelled_as_overview_derived():
    response = evaluate_scenario("r23-positive-same-day")
    (card,) = cards_of(response, "R23")
    assert card["indicator"] == "warning"
    assert "overview" in card["detail"] and "76.0 mg²/dL²" in card["detail"]
    product = card["extension"]["calcinosis-cds"]["evidence"]
    assert any(item.get("caTimesP") == 76.0 for item in product)


def test_r23_uses_the_latest_phosphate_only():
    def change(rs):  # a newer, unpaired normal phosphate: the old pair no longer describes the patient
        newer = dict(by_id(rs, "phos"), id="phos-new", effectiveDateTime=by_id(rs, "phos")["effectiveDateTime"])
        newer["valueQuantity"] = dict(newer["valueQuantity"], value=3.5)
        from .conftest import NOW
        from datetime import timedelta
        newer["effectiveDateTime"] = (NOW - timedelta(days=1)).isoformat()
        rs.append(newer)
    assert not cards_of(variant("r23-positive-same-day", change), "R23")


def test_a12_few_cards_and_no_repeated_proposal():
    for name in KNOWLEDGE_SCENARIOS:
        response = evaluate_scenario(name)
        assert len(response["cards"]) <= 5, (name, [c["summary"] for c in response["cards"]])
        identities = []
        for resource in proposed(response):
            concept = resource.get("code") or resource.get("medicationCodeableConcept") or {"text": str(resource.get("oralDiet"))}
            identities.append((resource["resourceType"], str(concept.get("coding") or concept.get("text"))))
        assert len(identities) == len(set(identities)), name
        indicators = [c["indicator"] for c in response["cards"]]
        assert indicators == sorted(indicators, key=["critical", "warning", "info"].index), name
