"""Every fixture scenario, through the HTTP API, at two evaluation times: the rules it names fire, or stay silent;
and every card they produce is one a clinician reads in seconds (decision A20)."""

import re

import pytest

from cards import terminology

from .conftest import NOW, OTHER_NOW, evaluate_scenario, fired_rules, load_scenario, resource_types, scenario_names


@pytest.mark.parametrize("now", [NOW, OTHER_NOW], ids=["now", "other-now"])
@pytest.mark.parametrize("name", scenario_names())
def test_scenario(name, now):
    expect = load_scenario(name, now)["expect"]
    response = evaluate_scenario(name, now)
    fired = fired_rules(response)
    for rule_id in expect.get("fires", []):
        assert rule_id in fired, f"{name}: {rule_id} should fire; fired {sorted(fired)}"
    for rule_id in expect.get("silent", []):
        assert rule_id not in fired, f"{name}: {rule_id} must stay silent; fired {sorted(fired)}"
    if "cards" in expect:
        assert len(response["cards"]) == expect["cards"], [c["summary"] for c in response["cards"]]


# ---------- decision A20: every card every scenario produces, read as a clinician reads it ----------

MAX_DETAIL = 1000  # "under about 1,000 characters"
_RESOURCE_TYPES = sorted(resource_types() | {"MedicationOrder"}, key=len, reverse=True)  # DSTU2's order too
FORBIDDEN_IN_TEXT = {
    "a resource id": re.compile(r"\b(?:" + "|".join(_RESOURCE_TYPES) + r")/[A-Za-z0-9\-.]+|urn:uuid:"),
    "a LOINC code": re.compile(r"\b\d{3,6}-\d\b"),
    "a SNOMED CT code": re.compile(r"\b\d{6,18}\b"),
    "an ICD-10-CM code": re.compile(r"\b[A-Z]\d{2}(?:\.[0-9A-Z]{1,4})?\b"),
    "a UCUM expression with braces": re.compile(r"\{[^}]*\}"),
    "a source key": re.compile(r"\bS\d{1,2}\b"),
    "a section number": re.compile(r"§"),
    "a rule id": re.compile(r"\b(?:R\d{2}[a-z]?|G0)\b"),
    "a value-set name": re.compile(r"\b(?:" + "|".join(sorted(
        (name for name in terminology().value_sets if "-" in name), key=len, reverse=True)) + r")\b"),
}


def every_card():
    for name in scenario_names():
        for card in evaluate_scenario(name, NOW)["cards"]:
            yield pytest.param(card, id=f"{name}:{'+'.join(card['extension']['calcinosis-cds']['rules'])}")


@pytest.mark.parametrize("card", list(every_card()))
def test_every_card_reads_in_seconds(card):
    """A20: a short detail in clinical words, nothing for machines in the text, and a link to each rule's page."""
    assert len(card["detail"]) <= MAX_DETAIL, (len(card["detail"]), card["detail"])
    for field in ("summary", "detail"):
        for what, pattern in FORBIDDEN_IN_TEXT.items():
            found = pattern.search(card[field])
            assert found is None, f"{field} shows {what}: {found.group(0)!r} in {card[field]!r}"
    rules = card["extension"]["calcinosis-cds"]["rules"]
    links = {link["url"]: link for link in card["links"]}
    for rule_id in rules:
        link = links[f"http://localhost/rules/{rule_id}"]  # the test client's base URL
        assert link["type"] == "absolute" and link["label"]


def test_the_forbidden_patterns_catch_what_they_name():
    examples = {
        "a resource id": "eGFR 22 (Observation/egfr-1); MedicationRequest/request-123",
        "a LOINC code": "phosphate (2777-1)",
        "a SNOMED CT code": "Calciphylaxis 237900002",
        "an ICD-10-CM code": "CKD (N18.4)",
        "a UCUM expression with braces": "egfr 22 mL/min/{1.73_m2}",
        "a source key": "VisualDx, S6",
        "a section number": "specification §3.15",
        "a rule id": "Rule R05",
        "a value-set name": "matched med-magnesium-antacid",
    }
    for what, text in examples.items():
        assert FORBIDDEN_IN_TEXT[what].search(text), what
    clinical = ("Mg/Al antacid: eGFR 22 mL/min/1.73 m² (3 Dec 2026); phosphate 6.8 mg/dL (1 Dec 2026); 8 of 9 "
                "improved (1-7 months); mortality 60-87%; CYP3A4; 25-OH vitamin D; Ca × P 77 mg²/dL²")
    assert not [what for what, pattern in FORBIDDEN_IN_TEXT.items() if pattern.search(clinical)]
