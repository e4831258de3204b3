"""What a rule reads, found in its code (cds_service/service/rule_reads.py), against what it asks the facts for.

The rule pages list the codes a rule reads; they must list every one it does read, and none it does not. Every rule
is run alone, on fresh facts, over every fixture scenario on its hook and on patient-view, recording each value set, analyte, coded
observation and referral it asks the facts for (nested reads of the record layer itself are not the rule's): all
of them must be among those found in its code. Known cases check that nothing is lent by a shared table.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict
from functools import wraps

import pytest

import cards
from cards.referrals import REFERRALS
from cds_service.record.facts import PatientFacts
from cds_service.record.labs import LabPanel
from cds_service.record.terminology import Terminology
from cds_service.service import service_call
from cds_service.service.rule_reads import Threshold, rule_reads
from cds_service.service.service_call import handle
from cds_service.service.settings import Settings
from cds_service.service.clock import fixed_clock

from .conftest import NOW, load_scenario, scenario_names, scenario_request

# The facts' reading methods a rule calls with a name (its first argument after self).
READERS = {
    PatientFacts: ("conditions_in", "has_condition", "medications_in", "taking", "allergy_to", "recent_encounter",
                   "procedures_in", "newest_procedure", "coded_answer", "latest_lab", "has_value_set", "recent_referral"),
    LabPanel: ("latest", "in_window"),
    Terminology: ("value_set",),
}
_SNOMED_TO_REFERRAL = {referral.snomed: key for key, referral in REFERRALS.items()}


class _Recorder:
    def __init__(self) -> None:
        self.rule: str | None = None
        self.seen: dict[str, set[str]] = defaultdict(set)
        self._depth = threading.local()

    def wrap(self, method):
        recorder = self

        @wraps(method)
        def reading(this, name, *args, **kwargs):
            depth = getattr(recorder._depth, "value", 0)
            # Only the outermost read is the rule's: the record layer's own reads (has_condition -> conditions_in ->
            # value_set, an eGFR worked out from a creatinine) are not what the rule asked for.
            if depth == 0 and recorder.rule is not None and isinstance(name, str):
                recorder.seen[recorder.rule].add(_SNOMED_TO_REFERRAL.get(name, name))
            recorder._depth.value = depth + 1
            try:
                return method(this, name, *args, **kwargs)
            finally:
                recorder._depth.value = depth

        return reading


@pytest.fixture(scope="module")
def observed():
    """rule id -> the names it asked the facts for, over every scenario and hook."""
    recorder = _Recorder()
    knowledge = cards.knowledge()
    real_evaluate = service_call.evaluate

    def each_rule_alone(facts, ctx, knowledge_, **options):
        for rule_id, function in [(knowledge.gate.id, lambda f, c: knowledge.gate.evaluate(f))] + [
                (r.id, r.evaluate) for r in knowledge.rules_for_hook(ctx.hook)]:
            recorder.rule = rule_id
            try:
                function(dataclasses.replace(facts), ctx)  # fresh facts: nothing remembered from another rule
            finally:
                recorder.rule = None
        return real_evaluate(facts, ctx, knowledge_, **options)

    with pytest.MonkeyPatch.context() as patch:
        for owner, names in READERS.items():
            for name in names:
                patch.setattr(owner, name, recorder.wrap(getattr(owner, name)))
        patch.setattr(service_call, "evaluate", each_rule_alone)
        settings = Settings(auth="off", fhir_allow_http=True, log_level="WARNING")
        for name in scenario_names():
            scenario = load_scenario(name)
            for hook in {scenario.get("hook", "patient-view"), "patient-view"}:  # order hooks need its drafts
                service_id, body = scenario_request(scenario, hook)
                service = service_call.services()[service_id]
                handle(service, body, settings=settings, clock=fixed_clock(NOW))
    return recorder.seen


def _claimed(rule_id: str) -> set[str]:
    reads = rule_reads(rule_id)
    return {*reads.value_sets, *reads.labs, *reads.observations, *reads.referrals}


def test_every_name_a_rule_asks_for_is_on_its_page(observed):
    knowledge = cards.knowledge()
    assert len(observed) >= len(knowledge.rules) - 2, "the scenarios should exercise nearly every rule"
    for rule_id, names in observed.items():
        missing = names - _claimed(rule_id)
        assert not missing, f"{rule_id} reads {sorted(missing)}, which its page would not list"


def test_a_shared_table_lends_a_rule_only_its_own_entries():
    # lab_high(facts, "magnesium") passes through assess_high, whose tables name phosphate and calcium too.
    r05 = rule_reads("R05")
    assert "magnesium" in r05.labs and "aluminium" in r05.labs
    assert not {"phosphate", "calcium", "pth"} & set(r05.labs)
    assert {t.name for t in r05.thresholds} >= {"MAGNESIUM_CRITICAL_MG_DL", 'ADULT_DEFAULT_HIGH["magnesium"]',
                                                  "EGFR_RENAL_INSUFFICIENCY", "EGFR_SEVERE"}
    assert not any("phosphate" in t.name or "pth" in t.name for t in r05.thresholds)
    # REFERRALS names every specialty; R05 refers to nephrology only, and reads its encounters only.
    assert r05.referrals == ("nephrology",)
    assert "encounter-nephrology" in r05.value_sets
    assert not {"encounter-rheumatology", "encounter-dietetics"} & set(r05.value_sets)


def test_the_gate_and_a_rule_that_reads_nothing():
    assert set(rule_reads("G0").value_sets) == {"calcinosis-cutis", "calciphylaxis", "tumoral-calcinosis"}
    r07 = rule_reads("R07")  # information for every patient in scope: it reads nothing of the patient itself
    assert (r07.value_sets, r07.labs, r07.observations, r07.referrals) == ((), (), (), ())


def test_thresholds_carry_their_declaration_and_comment():
    by_name = {t.name: t for t in rule_reads("R04").thresholds}
    assert by_name["EGFR_RENAL_INSUFFICIENCY"] == Threshold(
        "EGFR_RENAL_INSUFFICIENCY", 60.0, "mL/min/1.73 m2", "cards.definitions.renal")
    assert by_name['ADULT_DEFAULT_HIGH["phosphate"]'].value == 4.5
    assert by_name['ADULT_DEFAULT_HIGH["phosphate"]'].note.startswith("mg/dL; Adult upper limits")


def test_every_name_claimed_exists_in_the_terminology():
    terms = cards.terminology()
    for rule_id in [cards.knowledge().gate.id, *cards.knowledge().rules]:
        reads = rule_reads(rule_id)
        assert set(reads.value_sets) <= set(terms.value_sets)
        assert set(reads.labs) <= set(terms.labs)
        assert set(reads.observations) <= set(terms.observations)
        assert set(reads.referrals) <= set(REFERRALS)


def test_an_unknown_rule_id_is_a_key_error():
    with pytest.raises(KeyError):
        rule_reads("R99")
