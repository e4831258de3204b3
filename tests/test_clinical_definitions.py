"""Each clinical definition of cards/definitions/, on PatientFacts built from a few resources without HTTP (the
selection and facts the service builds, at the fixed clock NOW): positive, negative and the boundaries."""

from __future__ import annotations

import pytest

from cards.definitions import (
    BEDSIDE_SCHWARTZ,
    CKD_EPI_2021,
    age_under,
    assess_high,
    calciphylaxis,
    calcinosis,
    calcium_above,
    calcium_measure,
    calcium_phosphate_product,
    corrected_calcium,
    dialysis,
    dystrophic_context,
    egfr,
    egfr_below,
    hypercalcemia,
    hyperphosphatemia,
    is_child,
    lab_high,
    latest_judged,
    pregnant,
    recurrent,
    renal_function_known_normal,
    renal_insufficiency,
    severe_renal_insufficiency,
    tumoral_calcinosis,
)

from ._records import (
    SNOMED,
    birthday,
    born,
    calcinosis_condition,
    condition,
    facts_of,
    lab,
    panel,
    procedure,
    when,
)

ADULT = born(50)
EGFR, CREATININE, HEIGHT = "98979-8", "2160-0", "8302-2"
PHOSPHATE, CALCIUM, IONIZED, CORRECTED, ALBUMIN = "2777-1", "17861-6", "1994-3", "29265-6", "1751-7"
EGFR_UNIT = "mL/min/{1.73_m2}"


def egfr_lab(value, days_ago=5, comparator=None, rid="egfr"):
    return lab(rid, EGFR, value, EGFR_UNIT, days_ago, comparator=comparator)


def creatinine(value, days_ago=2, unit="mg/dL", rid="crea", **kw):
    return lab(rid, CREATININE, value, unit, days_ago, **kw)


# ---------- renal insufficiency (A4), eGFR reported (A2, A13) ----------
@pytest.mark.parametrize("value, ri, severe", [(60, False, False), (59.9, True, False), (30, True, False), (29.9, True, True)])
def test_reported_egfr_boundaries(value, ri, severe):
    facts = facts_of(egfr_lab(value), birth_date=ADULT)
    assert bool(renal_insufficiency(facts)) is ri
    assert bool(severe_renal_insufficiency(facts)) is severe
    assert egfr(facts).value == value and not egfr(facts).calculated


def test_egfr_outside_365_days_is_not_read():
    assert egfr(facts_of(egfr_lab(20, days_ago=366), birth_date=ADULT)) is None
    assert renal_insufficiency(facts_of(egfr_lab(20, days_ago=364), birth_date=ADULT))


@pytest.mark.parametrize("code, ri, severe", [
    ("N18.4", True, True), ("N18.30", True, False), ("N17.9", True, False), ("N18.2", False, False),
    ("N18.1", False, False), ("I12.9", True, False), ("N18.6", True, True),
])
def test_renal_conditions(code, ri, severe):
    facts = facts_of(condition("ckd", code), birth_date=ADULT)
    assert bool(renal_insufficiency(facts)) is ri
    assert bool(severe_renal_insufficiency(facts)) is severe


def test_an_inactive_renal_condition_does_not_count():
    assert not renal_insufficiency(facts_of(condition("aki", "N17.9", status="resolved"), birth_date=ADULT))


# ---------- eGFR with comparators (A13) ----------
@pytest.mark.parametrize("comparator, value, ri, severe", [
    (">", 60, False, False), (">=", 90, False, False), (">", 90, False, False),
    ("<", 15, True, True), ("<=", 30, True, True), ("<", 60, True, False), ("<=", 60, True, False),
])
def test_egfr_comparators(comparator, value, ri, severe):
    facts = facts_of(egfr_lab(value, comparator=comparator), birth_date=ADULT)
    assert bool(renal_insufficiency(facts)) is ri
    assert bool(severe_renal_insufficiency(facts)) is severe
    assert facts.labs.unusable == []


@pytest.mark.parametrize("comparator, value", [(">", 45), ("<", 90), (">=", 59)])
def test_an_egfr_comparator_that_cannot_be_placed_is_not_used_and_reported(comparator, value):
    facts = facts_of(egfr_lab(value, comparator=comparator, days_ago=2), egfr_lab(40, days_ago=30, rid="older"),
                     birth_date=ADULT)
    assert egfr(facts).reference == "Observation/older"  # the next older result counts
    assert renal_insufficiency(facts)
    assert [u["resource"] for u in facts.labs.unusable] == ["Observation/egfr"]
    assert "not used" in facts.labs.unusable[0]["issue"]


# ---------- eGFR calculated from creatinine (A13) ----------
@pytest.mark.parametrize("gender, scr, years, expected", [
    ("male", 1.0, 50, 92),    # 142 x (1.0/0.9)^-1.200 x 0.9938^50
    ("female", 0.7, 50, 105),  # 142 x 1 x 0.9938^50 x 1.012
    ("female", 1.0, 60, 64),  # 142 x (1.0/0.7)^-1.200 x 0.9938^60 x 1.012
    ("male", 3.4, 60, 20),    # the patient: severe renal insufficiency
])
def test_ckd_epi_2021_for_adults(gender, scr, years, expected):
    facts = facts_of(creatinine(scr, days_ago=0), birth_date=birthday(years), gender=gender)
    result = egfr(facts)
    assert round(result.value) == expected
    assert result.calculated == CKD_EPI_2021
    assert bool(renal_insufficiency(facts)) is (expected < 60)
    if expected < 60:
        assert renal_insufficiency(facts).evidence[0]["calculated"] == CKD_EPI_2021


@pytest.mark.parametrize("gender", [None, "other", "unknown"])
def test_unknown_or_other_sex_uses_the_female_equation(gender):
    female = egfr(facts_of(creatinine(1.0), birth_date=ADULT, gender="female")).value
    male = egfr(facts_of(creatinine(1.0), birth_date=ADULT, gender="male")).value
    assert egfr(facts_of(creatinine(1.0), birth_date=ADULT, gender=gender)).value == female < male


def test_creatinine_in_umol_per_litre_is_converted():
    mg = egfr(facts_of(creatinine(1.5), birth_date=ADULT, gender="male")).value
    umol = egfr(facts_of(creatinine(132.6, unit="umol/L"), birth_date=ADULT, gender="male")).value
    assert umol == pytest.approx(mg, rel=1e-3)


def test_the_newest_renal_result_decides():
    normal_egfr_then_high_creatinine = facts_of(egfr_lab(80, days_ago=30), creatinine(3.4, days_ago=3),
                                                birth_date=ADULT, gender="male")
    assert egfr(normal_egfr_then_high_creatinine).calculated == CKD_EPI_2021
    assert severe_renal_insufficiency(normal_egfr_then_high_creatinine)
    # A creatinine older than the eGFR, or of the same draw, does not replace the lab's eGFR.
    for creatinine_days in (30, 3):
        facts = facts_of(egfr_lab(80, days_ago=3), creatinine(3.4, days_ago=creatinine_days), birth_date=ADULT)
        assert egfr(facts).value == 80 and not renal_insufficiency(facts)


def test_a_urine_creatinine_or_a_clearance_gives_no_egfr():
    urine = lab("u", "2161-8", 120, "mg/dL", 1)  # Creatinine [Mass/volume] in Urine
    clearance = lab("c", "2164-2", 40, "mL/min", 1)  # Creatinine renal clearance
    facts = facts_of(urine, clearance, birth_date=ADULT)
    assert egfr(facts) is None and not renal_insufficiency(facts)


def test_no_egfr_is_calculated_on_dialysis():
    facts = facts_of(creatinine(6.0), condition("dial", "Z99.2"), birth_date=ADULT)
    assert egfr(facts) is None
    assert renal_insufficiency(facts) and severe_renal_insufficiency(facts)
    assert not any(item.get("calculated") for item in renal_insufficiency(facts).evidence)


def test_a_creatinine_bound_gives_an_egfr_bound():
    low = facts_of(creatinine(0.3, comparator="<"), birth_date=ADULT, gender="male")
    assert egfr(low).comparator == ">" and not renal_insufficiency(low)
    high = facts_of(creatinine(10, comparator=">"), birth_date=ADULT, gender="male")
    assert egfr(high).comparator == "<" and severe_renal_insufficiency(high)


# ---------- children (A13): bedside Schwartz with a recent height ----------
def test_bedside_schwartz_with_a_height_of_the_last_90_days():
    facts = facts_of(creatinine(0.5), lab("h", HEIGHT, 140, "cm", 60), birth_date=born(10))
    result = egfr(facts)
    assert result.value == pytest.approx(0.413 * 140 / 0.5) and result.calculated == BEDSIDE_SCHWARTZ
    assert renal_function_known_normal(facts)
    low = facts_of(creatinine(2.0), lab("h", HEIGHT, 1.40, "m", 60), birth_date=born(10))
    assert egfr(low).value == pytest.approx(0.413 * 140 / 2.0) and renal_insufficiency(low)


def test_a_child_without_a_recent_height():
    old_height = lab("h", HEIGHT, 140, "cm", 91)
    in_range = facts_of(creatinine(0.5, high=0.7), old_height, birth_date=born(10))
    assert egfr(in_range) is None and not renal_insufficiency(in_range)
    assert not renal_function_known_normal(in_range)  # renal function unknown
    for flagged in (creatinine(0.9, high=0.7), creatinine(0.9, flag="H"), creatinine(0.9, flag="HH")):
        facts = facts_of(flagged, birth_date=born(10))
        assert renal_insufficiency(facts) and not severe_renal_insufficiency(facts) and egfr(facts) is None


def test_17_year_old_gets_the_child_equation_and_18_year_old_ckd_epi():
    height = lab("h", HEIGHT, 170, "cm", 10)
    seventeen = facts_of(creatinine(1.0), height, birth_date=birthday(18, days_after=-10), gender="male")
    eighteen = facts_of(creatinine(1.0), height, birth_date=birthday(18, days_after=10), gender="male")
    assert is_child(seventeen) and not is_child(eighteen)
    assert egfr(seventeen).calculated == BEDSIDE_SCHWARTZ and egfr(eighteen).calculated == CKD_EPI_2021
    # An 18th birthday today is 18 (a birthday, not a day count).
    assert not is_child(facts_of(birth_date=birthday(18)))


def test_a_childs_low_reported_egfr_counts_with_a_note():
    facts = facts_of(egfr_lab(40), birth_date=born(12))
    (item,) = renal_insufficiency(facts).evidence
    assert "not validated under 18" in item["note"]


# ---------- renal function known to be normal (A13, R04) ----------
def test_renal_function_known_normal_needs_a_result_of_the_last_90_days():
    assert renal_function_known_normal(facts_of(egfr_lab(75, days_ago=90), birth_date=ADULT))
    stale = renal_function_known_normal(facts_of(egfr_lab(75, days_ago=91), birth_date=ADULT))
    assert not stale and "older than 90 days" in stale.evidence[0]["note"]
    assert not renal_function_known_normal(facts_of(birth_date=ADULT))
    assert not renal_function_known_normal(facts_of(egfr_lab(75), condition("aki", "N17.9"), birth_date=ADULT))
    assert not renal_function_known_normal(facts_of(egfr_lab(59), birth_date=ADULT))
    assert renal_function_known_normal(facts_of(egfr_lab(90, comparator=">"), birth_date=ADULT))


# ---------- dialysis (A4, A14) ----------
@pytest.mark.parametrize("status, performed, counts", [
    ("completed", {"performedDateTime": when(89)}, True),
    ("completed", {"performedDateTime": when(91)}, False),
    ("completed", {"performedPeriod": {"start": when(120), "end": when(80)}}, True),
    ("completed", {"performedPeriod": {"start": when(120), "end": when(100)}}, False),
    ("in-progress", {"performedPeriod": {"start": when(700)}}, True),
    ("in-progress", {}, False),
    ("completed", {}, False),
    ("not-done", {"performedDateTime": when(3)}, False),
    ("stopped", {"performedDateTime": when(3)}, False),
    ("completed", {"performedDateTime": when(-10)}, False),  # dated in the future
])
def test_dialysis_procedure_counts_only_when_recent_or_ongoing(status, performed, counts):
    facts = facts_of(procedure("hd", status, **performed), birth_date=ADULT)
    found = dialysis(facts)
    assert bool(found) is counts
    assert bool(severe_renal_insufficiency(facts)) is counts
    if counts:
        assert found.evidence[0]["text"] == "Hemodialysis" and found.evidence[0]["performed"]


def test_dialysis_names_the_newest_session_that_counts_and_validates_no_more():
    """Three sessions a week for months: the evidence names the newest that counts, not forty of them. An invalid
    newest session is skipped and reported, the next one named; older sessions are not read at all, so an invalid
    one among them is neither validated nor reported."""
    sessions = [procedure(f"hd-{days}", performedDateTime=when(days)) for days in range(2, 80, 2)]
    broken_newest = procedure("hd-broken", performedDateTime=when(1), status="completed")
    broken_newest["code"]["coding"].append({"system": SNOMED, "code": 42})  # a code must be a string
    broken_old = procedure("hd-old-broken", performedDateTime=when(85))
    broken_old["subject"] = {"reference": 7}
    facts = facts_of(*sessions, broken_newest, broken_old, birth_date=ADULT)
    found = dialysis(facts)
    assert found and len(found.evidence) == 1 and found.evidence[0]["reference"] == "Procedure/hd-2"
    assert [i["resource"] for i in facts.invalid_resources()] == ["Procedure/hd-broken"]
    # procedures_in still reads them all (each validated): the old broken one is then reported too
    assert len(facts.procedures_in("dialysis")) == len(sessions)
    assert {i["resource"] for i in facts.invalid_resources()} == {"Procedure/hd-broken", "Procedure/hd-old-broken"}


def test_dialysis_ongoing_course_counts_behind_no_recent_session():
    old = procedure("hd-old", performedDateTime=when(200))
    course = procedure("course", "in-progress", performedPeriod={"start": when(700)})
    found = dialysis(facts_of(old, course, birth_date=ADULT))
    assert found and [e["reference"] for e in found.evidence] == ["Procedure/course"]


def test_dialysis_condition_counts_when_active():
    assert dialysis(facts_of(condition("dial", "Z99.2"), birth_date=ADULT))
    assert dialysis(facts_of(condition("dial", "105502003", SNOMED), birth_date=ADULT))
    assert not dialysis(facts_of(condition("dial", "Z99.2", status="inactive"), birth_date=ADULT))


# ---------- high values (A3) and comparators (A19) ----------
@pytest.mark.parametrize("value, high", [(4.5, False), (4.51, True)])
def test_phosphate_adult_default(value, high):
    facts = facts_of(lab("p", PHOSPHATE, value, "mg/dL"), birth_date=ADULT)
    assert bool(hyperphosphatemia(facts)) is high and bool(lab_high(facts, "phosphate")) is high


def test_phosphate_in_mmol_and_the_labs_own_range_and_flags():
    assert hyperphosphatemia(facts_of(lab("p", "14879-1", 1.6, "mmol/L"), birth_date=ADULT))  # 4.96 mg/dL
    assert not hyperphosphatemia(facts_of(lab("p", PHOSPHATE, 4.8, "mg/dL", high=5.0), birth_date=ADULT))
    assert hyperphosphatemia(facts_of(lab("p", PHOSPHATE, 4.3, "mg/dL", flag="H"), birth_date=ADULT))
    assert not hyperphosphatemia(facts_of(lab("p", PHOSPHATE, 4.8, "mg/dL", flag="N"), birth_date=ADULT))


def test_adult_defaults_do_not_apply_to_children_or_an_unknown_age():
    for birth_date in (born(17.5), None):
        facts = facts_of(lab("p", PHOSPHATE, 6.5, "mg/dL"), lab("ca", CALCIUM, 11.5, "mg/dL"), birth_date=birth_date)
        assert not hyperphosphatemia(facts) and not hypercalcemia(facts)
        assert assess_high(facts.latest_lab("phosphate"), facts.age_years).high is None
    child = facts_of(lab("p", PHOSPHATE, 6.5, "mg/dL", high=5.8), birth_date=born(17.5))
    assert hyperphosphatemia(child)
    assert hyperphosphatemia(facts_of(lab("p", PHOSPHATE, 6.5, "mg/dL"), birth_date=birthday(18, days_after=1)))


@pytest.mark.parametrize("comparator, value, high", [
    (">", 4.5, True), (">", 10, True), (">=", 4.6, True), ("<", 4.5, False), ("<=", 1.0, False),
])
def test_comparators_against_the_upper_limit(comparator, value, high):
    facts = facts_of(lab("p", PHOSPHATE, value, "mg/dL", comparator=comparator), birth_date=ADULT)
    assert bool(hyperphosphatemia(facts)) is high
    assert facts.labs.unusable == []


@pytest.mark.parametrize("comparator, value", [(">", 2.0), (">=", 4.5), ("<", 6.0)])
def test_a_comparator_that_cannot_be_placed_is_not_used_and_reported(comparator, value):
    facts = facts_of(lab("p", PHOSPHATE, value, "mg/dL", 1, comparator=comparator),
                     lab("old", PHOSPHATE, 5.5, "mg/dL", 20), birth_date=ADULT)
    assert latest_judged(facts, "phosphate").reference == "Observation/old"
    assert hyperphosphatemia(facts)
    assert facts.labs.unusable == [{"resource": "Observation/p", "analyte": "phosphate",
                                    "issue": facts.labs.unusable[0]["issue"]}]


def test_a_non_bounding_comparator_is_never_read():
    facts = facts_of(lab("p", PHOSPHATE, 6, "mg/dL", comparator="ad"), birth_date=ADULT)
    assert facts.latest_lab("phosphate") is None and "comparator" in facts.labs.unusable[0]["issue"]


def test_hyperphosphatemia_diagnosis():
    assert not hyperphosphatemia(facts_of(condition("e", "E83.39"), birth_date=ADULT))  # too broad alone
    assert hyperphosphatemia(facts_of(condition("e", "20165001", SNOMED), birth_date=ADULT))
    contradicted = facts_of(condition("e", "20165001", SNOMED), lab("p", PHOSPHATE, 3.9, "mg/dL"), birth_date=ADULT)
    assert not hyperphosphatemia(contradicted)


def test_magnesium_and_pth_defaults():
    assert lab_high(facts_of(lab("mg", "19123-9", 2.7, "mg/dL"), birth_date=ADULT), "magnesium")
    assert not lab_high(facts_of(lab("mg", "19123-9", 2.6, "mg/dL"), birth_date=ADULT), "magnesium")
    assert lab_high(facts_of(lab("pth", "2731-8", 66, "pg/mL"), birth_date=ADULT), "pth")
    assert not lab_high(facts_of(lab("pth", "2731-8", 65, "pg/mL"), birth_date=ADULT), "pth")


# ---------- calcium (A3, A19) ----------
@pytest.mark.parametrize("value, high", [(10.2, False), (10.3, True)])
def test_total_calcium_adult_default(value, high):
    assert bool(hypercalcemia(facts_of(lab("ca", CALCIUM, value, "mg/dL"), birth_date=ADULT))) is high


def test_corrected_calcium_needs_a_same_day_albumin():
    same_day = facts_of(lab("ca", CALCIUM, 10.6, "mg/dL", 2), lab("alb", ALBUMIN, 4.8, "g/dL", 2), birth_date=ADULT)
    corrected = corrected_calcium(same_day)
    assert corrected.value == pytest.approx(10.6 + 0.8 * (4.0 - 4.8)) and corrected.calculated == "calculated"
    assert not hypercalcemia(same_day)
    other_day = facts_of(lab("ca", CALCIUM, 10.6, "mg/dL", 2), lab("alb", ALBUMIN, 4.8, "g/dL", 5), birth_date=ADULT)
    assert corrected_calcium(other_day) is None and hypercalcemia(other_day)


def test_within_one_draw_ionized_then_corrected_then_total():
    facts = facts_of(lab("ica", IONIZED, 1.20, "mmol/L", 2), lab("cc", CORRECTED, 2.8, "mmol/L", 2),
                     lab("ca", CALCIUM, 11.0, "mg/dL", 2), birth_date=ADULT)
    assert calcium_measure(facts).analyte == "calcium-ionized" and not hypercalcemia(facts)
    without_ionized = facts_of(lab("cc", CORRECTED, 2.8, "mmol/L", 2), lab("ca", CALCIUM, 9.0, "mg/dL", 2),
                               birth_date=ADULT)
    assert calcium_measure(without_ionized).analyte == "calcium-corrected" and hypercalcemia(without_ionized)


def test_the_most_recent_calcium_draw_decides():
    # An 80-day-old normal ionized calcium must not hide yesterday's total calcium of 11.9 mg/dL.
    facts = facts_of(lab("ica", IONIZED, 1.20, "mmol/L", 80), lab("ca", CALCIUM, 11.9, "mg/dL", 1), birth_date=ADULT)
    assert calcium_measure(facts).reference == "Observation/ca" and hypercalcemia(facts)
    newer_ionized = facts_of(lab("ica", IONIZED, 1.20, "mmol/L", 1), lab("ca", CALCIUM, 11.9, "mg/dL", 80),
                             birth_date=ADULT)
    assert not hypercalcemia(newer_ionized)


def test_critical_calcium_reads_the_newest_draw():
    assert calcium_above(facts_of(lab("cc", CORRECTED, 2.6, "mmol/L", 80), lab("ca", CALCIUM, 12.4, "mg/dL", 1),
                                  birth_date=ADULT), 12.0)
    assert not calcium_above(facts_of(lab("ca", CALCIUM, 12.0, "mg/dL", 1), birth_date=ADULT), 12.0)
    assert calcium_above(facts_of(lab("ca", CALCIUM, 14, "mg/dL", 1, comparator=">"), birth_date=ADULT), 12.0)


def test_hypercalcemia_diagnosis_unless_contradicted():
    assert hypercalcemia(facts_of(condition("h", "E83.52"), birth_date=ADULT))
    assert not hypercalcemia(facts_of(condition("h", "E83.52"), lab("ca", CALCIUM, 9.4, "mg/dL"), birth_date=ADULT))


# ---------- panels (A19) ----------
def test_panel_components_count_as_results_with_the_panels_status_and_date():
    facts = facts_of(panel("cmp", [("2951-2", 139, "mmol/L"), (CALCIUM, 11.9, "mg/dL"), (PHOSPHATE, 5.2, "mg/dL"),
                                   (CREATININE, 3.4, "mg/dL")], days_ago=2), birth_date=ADULT, gender="male")
    calcium = calcium_measure(facts)
    assert calcium.value == 11.9 and calcium.reference == "component 17861-6 of Observation/cmp"
    assert hyperphosphatemia(facts) and hypercalcemia(facts) and severe_renal_insufficiency(facts)
    assert calcium.effective.isoformat() == when(2)
    preliminary = facts_of(panel("cmp", [(CALCIUM, 11.9, "mg/dL")], status="preliminary"), birth_date=ADULT)
    assert not hypercalcemia(preliminary) and "status" in preliminary.labs.unusable[0]["issue"]
    stale = facts_of(panel("cmp", [(CALCIUM, 11.9, "mg/dL")], days_ago=91), birth_date=ADULT)
    assert not hypercalcemia(stale)


# ---------- Ca x P (A3, R23) ----------
def test_calcium_phosphate_product():
    product = calcium_phosphate_product(facts_of(lab("p", PHOSPHATE, 7.5, "mg/dL", 1), lab("ca", CALCIUM, 10.0, "mg/dL", 1.5),
                                                 birth_date=ADULT))
    assert product[0] == pytest.approx(75.0)
    assert calcium_phosphate_product(facts_of(lab("p", PHOSPHATE, 7.5, "mg/dL", 1), lab("ca", CALCIUM, 10.0, "mg/dL", 3),
                                              birth_date=ADULT)) is None
    assert calcium_phosphate_product(facts_of(lab("p", PHOSPHATE, 10, "mg/dL", 1, comparator=">"),
                                              lab("ca", CALCIUM, 10.0, "mg/dL", 1), birth_date=ADULT)) is None


# ---------- patient (A9, A3) ----------
def test_age_limits():
    assert is_child(facts_of(birth_date=born(17.9))) and not is_child(facts_of(birth_date=born(18.1)))
    assert not is_child(facts_of())  # unknown age: not known to be a child
    assert age_under(facts_of(), 8) is None
    assert age_under(facts_of(birth_date=birthday(8, days_after=-1)), 8) is True
    assert age_under(facts_of(birth_date=birthday(8)), 8) is False


def test_pregnancy():
    assert pregnant(facts_of(condition("preg", "Z33.1"), birth_date=born(30)))
    assert pregnant(facts_of(condition("preg", "O09.892"), birth_date=born(30)))
    assert pregnant(facts_of(condition("preg", "77386006", SNOMED), birth_date=born(30)))
    assert not pregnant(facts_of(condition("preg", "Z33.1", status="resolved"), birth_date=born(30)))
    status = {"resourceType": "Observation", "id": "ps", "status": "final",
              "code": {"coding": [{"system": "http://loinc.org", "code": "82810-3"}]},
              "subject": {"reference": "Patient/p1"}, "effectiveDateTime": when(10),
              "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "77386006"}]}}
    assert pregnant(facts_of(status, birth_date=born(30)))
    negative = {**status, "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "60001007"}]}}
    assert not pregnant(facts_of(negative, birth_date=born(30)))
    assert pregnant(facts_of(negative, condition("preg", "Z33.1"), birth_date=born(30)))  # never cancels a Condition
    # Dated as every Observation is: an answer recorded with an effectivePeriod (and no issued) still counts.
    by_period = {key: value for key, value in status.items() if key != "effectiveDateTime"}
    by_period["effectivePeriod"] = {"start": when(5)}
    assert pregnant(facts_of(by_period, birth_date=born(30)))


# ---------- history (A8) ----------
def test_recurrent_infections():
    def infection(rid, days_ago):
        return condition(rid, "L03.113", status="resolved", onsetDateTime=when(days_ago))
    assert recurrent(facts_of(infection("a", 30), infection("b", 200), birth_date=ADULT), "skin-infection")
    assert not recurrent(facts_of(infection("a", 30), birth_date=ADULT), "skin-infection")
    assert not recurrent(facts_of(infection("a", 30), infection("b", 400), birth_date=ADULT), "skin-infection")
    same_day = facts_of(infection("a", 30), condition("b", "L08.9", status="resolved", onsetDateTime=when(30)),
                        birth_date=ADULT)
    assert not recurrent(same_day, "skin-infection")


# ---------- gate G0 (A1) and the dystrophic context ----------
def test_gate_g0():
    assert calcinosis(facts_of(calcinosis_condition(), birth_date=ADULT))
    assert not calcinosis(facts_of(condition("c", "L94.2", status="inactive"), birth_date=ADULT))
    refuted = {**calcinosis_condition(), "verificationStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}}
    assert not calcinosis(facts_of(refuted, birth_date=ADULT))
    assert not calcinosis(facts_of(condition("ckd", "N18.4"), birth_date=ADULT))
    calci = facts_of(condition("cp", "237900002", SNOMED), birth_date=ADULT)
    assert calcinosis(calci) and calciphylaxis(calci) and not tumoral_calcinosis(calci)
    assert not calciphylaxis(facts_of(condition("e", "E83.59"), birth_date=ADULT))


def test_dystrophic_context():
    ctd = facts_of(calcinosis_condition(), condition("ssc", "M34.1"), birth_date=ADULT)
    assert dystrophic_context(ctd)
    normal = facts_of(calcinosis_condition(), lab("p", PHOSPHATE, 3.8, "mg/dL"), lab("ca", CALCIUM, 9.4, "mg/dL"),
                      birth_date=ADULT)
    assert dystrophic_context(normal)
    high_p = facts_of(calcinosis_condition(), lab("p", PHOSPHATE, 6.0, "mg/dL"), lab("ca", CALCIUM, 9.4, "mg/dL"),
                      birth_date=ADULT)
    assert not dystrophic_context(high_p)
    assert not dystrophic_context(facts_of(calcinosis_condition(), lab("p", PHOSPHATE, 3.8, "mg/dL"), birth_date=ADULT))


def test_egfr_below_takes_any_threshold():
    facts = facts_of(egfr_lab(44), birth_date=ADULT)
    assert egfr_below(facts, 45) and not egfr_below(facts, 44)


def test_a_childs_creatinine_bound_against_the_labs_range():
    above = facts_of(creatinine(1.0, comparator=">", high=0.7), birth_date=born(10))
    assert renal_insufficiency(above)
    unplaced = facts_of(creatinine(0.5, comparator=">", high=0.7), birth_date=born(10))
    assert not renal_insufficiency(unplaced) and "not used" in unplaced.labs.unusable[0]["issue"]
