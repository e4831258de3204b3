"""Part A of the clinical specification, decision by decision, through the HTTP API (and the terminology data for the code rules)."""

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cards
from cards import terminology

from ._knowledge import by_id, cards_of, comparable, medication_texts, variant, withheld
from .conftest import NOW, evaluate_scenario, fired_rules

UNVERIFIED = "UNVERIFIED"


# ---------- A2/A3 units ----------
def _phosphate_in(unit: str, value: float):
    def change(rs):
        phos = by_id(rs, "phos")
        phos["code"]["coding"] = [{"system": "http://loinc.org", "code": "14879-1" if unit == "mmol/L" else "2777-1"}]
        phos["valueQuantity"] = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    return change


@pytest.mark.parametrize("mg_dl", [3.9, 4.9, 5.9])
def test_phosphate_in_mmol_gives_the_same_cards_as_in_mg_dl(mg_dl):
    mmol = round(mg_dl / 3.097, 4)
    a = variant("r04-positive-hyperphosphatemia-normal-egfr", _phosphate_in("mg/dL", mg_dl))
    b = variant("r04-positive-hyperphosphatemia-normal-egfr", _phosphate_in("mmol/L", mmol))
    assert comparable(a) == comparable(b)
    assert ("R18" in fired_rules(a)) == (mg_dl > 4.5)


def test_lowercase_litre_is_the_same_ucum_unit():
    a = variant("r04-positive-hyperphosphatemia-normal-egfr", _phosphate_in("mg/dl", 5.6))
    assert "R18" in fired_rules(a)


def test_non_ucum_unit_is_skipped_and_reported():
    response = evaluate_scenario("r18-negative-non-ucum-unit")
    unused = response["extension"]["calcinosis-cds"]["unusedLabResults"]
    assert any(u["resource"] == "Observation/phos" and "not UCUM" in u["issue"] for u in unused)
    assert "R18" not in fired_rules(response)


def test_unknown_unit_is_skipped_and_reported():
    response = variant("r18-positive-mmol", lambda rs: by_id(rs, "phos")["valueQuantity"].update(unit="mEq/L", code="mEq/L"))
    assert any("not a known unit" in u["issue"] for u in response["extension"]["calcinosis-cds"]["unusedLabResults"])
    assert "R18" not in fired_rules(response)


def test_reference_range_wins_over_the_adult_default():
    # 4.8 mg/dL is above the adult default 4.5 but within this lab's range (upper limit 5.0): not high.
    def change(rs):
        _phosphate_in("mg/dL", 4.8)(rs)
        by_id(rs, "phos")["referenceRange"] = [{"high": {"value": 5.0, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}]
    assert "R18" not in fired_rules(variant("r04-positive-hyperphosphatemia-normal-egfr", change))


def test_interpretation_high_counts_without_a_range():
    def change(rs):
        _phosphate_in("mg/dL", 4.3)(rs)
        by_id(rs, "phos")["interpretation"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H"}]}]
    assert "R18" in fired_rules(variant("r04-positive-hyperphosphatemia-normal-egfr", change))


def test_calculated_corrected_calcium_needs_a_same_day_albumin():
    same_day = evaluate_scenario("r19-negative-corrected-normal")  # 10.6 + 0.8*(4-4.8) = 9.96: not high
    assert "R19" not in fired_rules(same_day)

    def albumin_other_day(rs):
        by_id(rs, "alb")["effectiveDateTime"] = (NOW - timedelta(days=30)).isoformat()
    assert "R19" in fired_rules(variant("r19-negative-corrected-normal", albumin_other_day))  # total 10.6 > 10.2


def test_ionized_calcium_is_preferred():
    def change(rs):
        rs.append({"resourceType": "Observation", "id": "ica", "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "1994-3"}]}, "subject": {"reference": "Patient/p1"},
                   "effectiveDateTime": (NOW - timedelta(days=2)).isoformat(),
                   "valueQuantity": {"value": 1.21, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}})
    assert "R19" not in fired_rules(variant("r19-positive-hypercalcemia", change))


# ---------- A2 windows and statuses ----------
def test_phosphate_outside_90_days_is_not_used():
    response = variant("r18-positive-mmol", lambda rs: by_id(rs, "phos").update(effectiveDateTime=(NOW - timedelta(days=91)).isoformat()))
    assert "R18" not in fired_rules(response)
    assert "R18" in fired_rules(variant("r18-positive-mmol", lambda rs: by_id(rs, "phos").update(effectiveDateTime=(NOW - timedelta(days=89)).isoformat())))


@pytest.mark.parametrize("status", ["preliminary", "entered-in-error", "registered", "cancelled"])
def test_only_final_amended_corrected_results_count(status):
    assert "R18" not in fired_rules(variant("r18-positive-mmol", lambda rs: by_id(rs, "phos").update(status=status)))


@pytest.mark.parametrize("status", ["amended", "corrected"])
def test_amended_and_corrected_results_count(status):
    assert "R18" in fired_rules(variant("r18-positive-mmol", lambda rs: by_id(rs, "phos").update(status=status)))


def test_egfr_outside_365_days_is_not_renal_insufficiency():
    response = variant("r04-negative-renal-insufficiency", lambda rs: by_id(rs, "egfr").update(effectiveDateTime=(NOW - timedelta(days=400)).isoformat()))
    assert "R04" in fired_rules(response)


@pytest.mark.parametrize("unit", ["mL/min/{1.73_m2}", "mL/min/1.73m2"])
def test_egfr_unit_spellings(unit):
    response = variant("r04-negative-renal-insufficiency", lambda rs: by_id(rs, "egfr")["valueQuantity"].update(unit=unit, code=unit))
    assert "R04" not in fired_rules(response) and "R04" in withheld(response)


# ---------- A1 conditions ----------
@pytest.mark.parametrize("change", [
    lambda c: c.update(verificationStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}),
    lambda c: c.update(verificationStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error"}]}),
    lambda c: c.update(clinicalStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "inactive"}]}),
    lambda c: (c.pop("clinicalStatus"), c.update(abatementDateTime=(NOW - timedelta(days=3)).isoformat())),
], ids=["refuted", "entered-in-error", "inactive", "abated"])
def test_inactive_or_wrong_conditions_never_count(change):
    response = variant("r04-negative-aki", lambda rs: change(by_id(rs, "aki")))
    assert "R04" in fired_rules(response)  # without the AKI there is no renal insufficiency


def test_absent_clinical_status_without_abatement_is_active():
    response = variant("r04-negative-aki", lambda rs: by_id(rs, "aki").pop("clinicalStatus"))
    assert "R04" not in fired_rules(response)


def test_calcinosis_by_word_only():
    def change(rs):
        by_id(rs, "calcinosis")["code"] = {"text": "Calcinosis cutis of the fingertips"}
    assert fired_rules(variant("r03-positive-plain-calcinosis", change))


def test_ckd_stage_1_2_alone_is_not_renal_insufficiency():
    assert "R17" not in fired_rules(evaluate_scenario("r17-negative-ckd-stage-2"))


# ---------- A4 paediatric eGFR ----------
def test_child_low_egfr_counts_for_safety_with_a_note():
    def change(rs):
        by_id(rs, "p1")["birthDate"] = "2016-01-01"
        by_id(rs, "phos")["referenceRange"] = [{"high": {"value": 5.8, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}]
        by_id(rs, "phos")["valueQuantity"]["value"] = 6.4
    response = variant("r04-negative-renal-insufficiency", change)
    assert "R04" in withheld(response)
    evidence = [e for c in response["cards"] for e in c["extension"]["calcinosis-cds"].get("withheld", [{}])[0].get("evidence", [])]
    assert any("not validated under 18" in e.get("note", "") for e in evidence)


# ---------- A9 pregnancy and age ----------
def test_not_pregnant_text_is_not_pregnancy():
    def change(rs):
        by_id(rs, "pregnancy")["code"] = {"text": "Not pregnant"}
    response = variant("r13-negative-pregnant", change)
    assert "R13" in fired_rules(response) and any("minocycline" in t for t in medication_texts(response))


def test_pregnancy_observation_not_pregnant_or_stale_does_not_count():
    def negative(rs):
        by_id(rs, "preg-status")["valueCodeableConcept"] = {"coding": [{"system": "http://snomed.info/sct", "code": "60001007", "display": "Not pregnant"}]}
    assert "R13" in fired_rules(variant("r13-negative-pregnancy-observation", negative))

    def stale(rs):
        by_id(rs, "preg-status")["effectiveDateTime"] = (NOW - timedelta(days=400)).isoformat()
    assert "R13" in fired_rules(variant("r13-negative-pregnancy-observation", stale))

    def preliminary(rs):
        by_id(rs, "preg-status")["status"] = "preliminary"
    assert "R13" in fired_rules(variant("r13-negative-pregnancy-observation", preliminary))


def test_o_chapter_codes_mean_pregnancy():
    def change(rs):
        by_id(rs, "pregnancy")["code"] = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "O09.892", "display": "Supervision of other high risk pregnancies, second trimester"}]}
    response = variant("r13-negative-pregnant", change)
    assert "R13" in withheld(response) and "R08a" not in fired_rules(response)


def test_minocycline_at_exactly_8_years_is_allowed_and_under_8_is_not():
    older = variant("r13-negative-child-under-8", lambda rs: by_id(rs, "p1").update(birthDate=(NOW - timedelta(days=int(8.1 * 365.25))).date().isoformat()))
    assert "R13" in fired_rules(older)
    younger = variant("r13-negative-child-under-8", lambda rs: by_id(rs, "p1").update(birthDate=(NOW - timedelta(days=int(7.9 * 365.25))).date().isoformat()))
    assert "R13" not in fired_rules(younger)


def test_children_get_no_hyperphosphatemia_or_hypercalcemia_from_adult_defaults():
    response = evaluate_scenario("r04-negative-child-no-range")
    assert not {"R04", "R18", "R19", "R23"} & fired_rules(response)


# ---------- A5 medications ----------
def test_medication_reference_to_a_contained_medication_is_read():
    def change(rs):
        statement = by_id(rs, "empa")
        statement.pop("medicationCodeableConcept")
        statement["contained"] = [{"resourceType": "Medication", "id": "m1", "code": {"text": "Jardiance 10 mg tablet"}}]
        statement["medicationReference"] = {"reference": "#m1"}
    card = cards_of(variant("r20-positive-sglt2", change), "R20")[0]
    assert "SGLT2" in card["detail"]


def test_medication_reference_to_a_medication_in_the_prefetch_is_read():
    """A Medication the client sent in a prefetch Bundle (e.g. a search with _include) resolves the reference."""
    from .conftest import load_scenario, make_app, scenario_request

    scenario = load_scenario("r20-positive-sglt2")
    service_id, body = scenario_request(scenario)
    bundle = body["prefetch"]["medicationStatements"]
    statement = bundle["entry"][0]["resource"]
    statement.pop("medicationCodeableConcept")
    statement["medicationReference"] = {"reference": "Medication/med-empa"}
    bundle["entry"].append({"resource": {"resourceType": "Medication", "id": "med-empa",
                                         "code": {"text": "Dapagliflozin 10 MG Oral Tablet"}}, "search": {"mode": "include"}})
    response = make_app().test_client().post(f"/cds-services/{service_id}", json=body).get_json()
    assert "SGLT2" in cards_of(response, "R20")[0]["detail"]


def test_stopped_medication_does_not_count():
    card = cards_of(variant("r20-positive-sglt2", lambda rs: by_id(rs, "empa").update(status="stopped")), "R20")[0]
    assert "SGLT2" not in card["detail"]


# ---------- terminology: UNVERIFIED codes are never the only way ----------
def _value_sets():
    data = json.loads((cards.DATA / "terminology.json").read_text())
    return data["valueSets"]


def test_every_code_has_source_and_verification_status():
    for name, definition in _value_sets().items():
        for entry in definition["codes"]:
            assert entry.get("status") in ("VERIFIED", "ID-VERIFIED", "SECONDARY", UNVERIFIED), (name, entry)
            assert entry.get("source"), (name, entry)


def test_a_value_set_with_unverified_codes_also_matches_by_text_or_verified_codes():
    for name, definition in _value_sets().items():
        if any(e["status"] == UNVERIFIED for e in definition["codes"]):
            verified = [e for e in definition["codes"] if e["status"] != UNVERIFIED]
            assert definition.get("text") or verified, name
            assert definition.get("text"), f"{name}: UNVERIFIED codes need a text fallback"


@pytest.mark.parametrize("value_set, text", [
    ("tetracycline-allergy", "Minocycline"),
    ("med-sglt2-inhibitor", "empagliflozin 25 MG Oral Tablet"),
    ("severity-severe", "Severe"),
    ("bleeding-risk", "Haemophilia A"),
    ("lipid-disorder", "Familial hypercholesterolemia"),
    ("encounter-nephrology", "Nephrology outpatient clinic"),
])
def test_unverified_code_sets_fire_by_text_without_any_code(value_set, text):
    assert terminology().value_set(value_set).match_concept({"text": text}) is not None


@pytest.mark.parametrize("value_set, text", [
    ("pregnancy", "Not pregnant"),
    ("systemic-sclerosis", "Localized scleroderma (morphea)"),
    ("severity-severe", "Moderate to severe"),
    ("calcinosis-painful", "Painless calcinosis"),
])
def test_exclusion_phrases_stop_a_text_match(value_set, text):
    assert terminology().value_set(value_set).match_concept({"text": text}) is None


def test_calciphylaxis_never_by_e8359_alone():
    vs = terminology().value_set("calciphylaxis")
    assert vs.match_concept({"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E83.59", "display": "Other disorders of calcium metabolism"}]}) is None
    assert terminology().value_set("tumoral-calcinosis").match_concept({"text": "Tumoral calcinosis"}) is not None


def test_the_candidate_index_never_misses_a_match():
    # conditions_in() matches a Condition only against terminology.candidate_value_sets(); that must be a superset
    # of the value sets that really match, for every code and word of every value set.
    from cards import terminology

    terms = terminology()
    concepts = []
    for vs in terms.value_sets.values():
        for entry in vs.codes:
            system = terms.systems.get(entry["system"], entry["system"])
            concepts.append({"coding": [{"system": system, "code": entry["code"]}]})
            concepts.append({"coding": [{"system": system, "code": entry["code"] + "9", "display": "x"}]})
        for word in vs.words:
            concepts.append({"text": f"History of {word.upper()} (confirmed)"})
            concepts.append({"coding": [{"display": f"{word}, unspecified"}]})
    assert len(concepts) > 200
    for concept in concepts:
        really = {name for name, vs in terms.value_sets.items() if vs.match_concept(concept) is not None}
        assert really <= terms.candidate_value_sets(concept), concept


_ALL_WORDS = sorted({w for vs in terminology().value_sets.values() for w in vs.words + vs.exclude_words})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_ALL_WORDS), st.text(alphabet="abcdeiloprstuy -,(/)0123456789\u00e9", max_size=12)),
                min_size=1, max_size=6))
def test_the_candidate_index_never_misses_a_word_in_any_text(parts):
    # Words glued to letters, punctuation, digits and accented letters around them: wherever a value set's
    # word-boundary pattern finds a word, the candidate index must offer that value set.
    from cards import terminology

    terms = terminology()
    for concept in ({"text": "".join(parts)}, {"text": " ".join(parts)}, {"coding": [{"display": "".join(parts)}]}):
        really = {name for name, vs in terms.value_sets.items() if vs.match_concept(concept) is not None}
        assert really <= terms.candidate_value_sets(concept), concept


def _fresh_terminology():
    """A Terminology built anew from the bundled tables: nothing remembered yet."""
    from cds_service.record.terminology import load_terminology

    return load_terminology(cards.terminology_files())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_ALL_WORDS), st.text(alphabet="abcdeiloprstuy -,(/)0123456789\u00e9", max_size=12)),
                min_size=1, max_size=6))
def test_remembered_text_matches_are_the_matches_a_fresh_table_finds(parts):
    # The text memos (terminology.TEXT_MEMO_SIZE) must never change an answer: the shared tables, asked before about
    # many texts, answer as tables that have seen none, for candidates and for every value set's word match.
    from cards import terminology

    warm, fresh = terminology(), _fresh_terminology()
    for text in ("".join(parts), " ".join(parts), " ".join(parts).upper()):
        concept = {"text": text, "coding": [{"display": text[::-1]}]}
        assert warm.candidate_value_sets(concept) == fresh.candidate_value_sets(concept)
        for name, vs in warm.value_sets.items():
            assert vs.match_text(text) == fresh.value_sets[name].match_text(text), (name, text)
            assert vs.match_text(text) == vs.match_text(text)


def test_the_text_memos_stay_bounded():
    from cds_service.record.terminology import TEXT_MEMO_SIZE

    terms = _fresh_terminology()
    vs = terms.value_set("calcinosis-cutis")
    for n in range(TEXT_MEMO_SIZE + 10):
        terms.candidate_value_sets({"text": f"calcinosis note {n}"})
        vs.match_text(f"calcinosis note {n}")
    assert 0 < len(terms._text_candidates) <= TEXT_MEMO_SIZE and 0 < len(vs._text_memo) <= TEXT_MEMO_SIZE
    assert 0 < len(terms._concept_candidates) <= TEXT_MEMO_SIZE
    assert vs.match_text("calcinosis note 3") == "calcinosis"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({}, optional={
    "system": st.sampled_from(["http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm", "http://loinc.org", "x"]),
    "code": st.sampled_from(["L94.2", "6595006", "N18.4", "E83.52", "2777-1", "L94", ""]) | st.text(max_size=5),
    "display": st.sampled_from(_ALL_WORDS) | st.text(max_size=12)}), max_size=3), st.booleans())
def test_remembered_concept_candidates_are_those_a_fresh_table_finds(codings, as_list):
    # Candidates are remembered per concept (its exact JSON): asked again, the shared table answers as a new one.
    from cards import terminology

    warm, fresh = terminology(), _fresh_terminology()
    concept = [{"coding": codings}] if as_list else {"coding": codings, "text": "note"}
    assert warm.candidate_value_sets(concept) == fresh.candidate_value_sets(concept)
    assert warm.candidate_value_sets(concept) == fresh._candidate_value_sets(concept)
    assert warm.candidate_value_sets({"coding": [{"code": 2 ** 70}]}) == frozenset()  # not memoised, still answered
