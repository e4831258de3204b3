"""Handing the R4B models their concepts and references already validated (cds_service/validated_elements.py) must
never change a verdict: every resource of every fixture and Synthea record, and mutations of them that break an
element, is judged the same as by the plain model validation, and a broken element is reported as before."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cds_service.record import validation as resources
from cds_service.record.fhir_values import resource_label
from cds_service.service.relative_dates import resolve
from cds_service.service.request_builder import resources_of_bundle
from cds_service.record.validated_elements import MEMO, ElementMemo, SHARED_TYPES, shared_fields
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.reference import Reference

from .conftest import NOW, SCENARIOS, SYNTHEA


def plain_verdict(resource: dict) -> str | None:
    """resources.validate as it was before the memo: the read part validated by its model, nothing handed over."""
    part = resources._read_part(resource)
    issue = resources._inspect(part)
    if issue is not None:
        return issue
    try:
        resources.model_class(part["resourceType"]).model_validate(part)
    except ValidationError as error:
        return resources._validation_issue(error)
    except (ValueError, TypeError, RecursionError) as error:
        return f"not valid FHIR R4: {type(error).__name__}"
    return None


def fixture_resources() -> list[dict]:
    found = []
    for path in sorted(SCENARIOS.glob("*.json")):
        scenario = resolve(json.loads(path.read_text()), NOW)
        for key in ("bundle", "draftOrders"):
            if isinstance(scenario.get(key), dict):
                found.extend(r for r in resources_of_bundle(scenario[key]) if isinstance(r, dict))
    return [r for r in found if r.get("resourceType") in resources.READ_ELEMENTS]


FIXTURE_RESOURCES = fixture_resources()


def test_the_shared_elements_of_the_types_the_rules_read_are_found():
    condition = shared_fields(Condition)
    assert condition["code"] == (CodeableConcept, False)
    assert condition["subject"] == (Reference, False)
    assert condition["bodySite"] == (CodeableConcept, True)
    observation = set(shared_fields(Observation))
    assert {"code", "subject", "interpretation", "category"} <= observation
    assert "valueQuantity" not in observation and "referenceRange" not in observation  # values are not remembered
    assert all(model in SHARED_TYPES for t in resources.READ_ELEMENTS
               for model, _ in shared_fields(resources.model_class(t)).values())


def test_every_fixture_resource_gets_the_plain_verdict():
    assert len(FIXTURE_RESOURCES) > 300
    invalid = 0
    for resource in FIXTURE_RESOURCES:
        expected = plain_verdict(resource)
        invalid += expected is not None
        assert resources.validate(resource) == expected, resource_label(resource)
        assert resources.validate(resource) == expected, "the second time, from the memo"
    assert invalid >= 3, "the fixtures include invalid resources"


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason="the Synthea records of ../shared/data/synthea are not present")
def test_every_synthea_resource_gets_the_plain_verdict():
    checked = 0
    for path in sorted(SYNTHEA.glob("*.json")):
        for resource in resources_of_bundle(json.loads(path.read_text())):
            if resource.get("resourceType") in resources.READ_ELEMENTS:
                assert resources.validate(resource) == plain_verdict(resource), resource_label(resource)
                checked += 1
    assert checked > 1000


def test_an_invalid_concept_is_reported_as_before_and_never_remembered_as_valid():
    memo_size = len(MEMO)
    condition = {
        "resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "L94.2", "version": 4}]},
    }
    issue = resources.validate(condition)
    assert issue is not None and issue == plain_verdict(condition)
    assert issue.startswith("not valid FHIR R4: code.coding.version")
    assert resources.validate(condition) == issue, "still invalid the second time"
    assert len(MEMO) <= memo_size + 1  # the valid subject may be remembered; the invalid code is not


def test_the_memo_is_bounded_and_validates_again_after_it_starts_afresh():
    memo = ElementMemo(size=3)
    for n in range(10):
        memo.instance(Reference, {"reference": f"Patient/p{n}"})
        assert len(memo) <= 3
    with pytest.raises(ValidationError):
        memo.instance(Reference, {"reference": 5})
    first = memo.instance(CodeableConcept, {"text": "a"})
    assert memo.instance(CodeableConcept, {"text": "a"}) is first


def test_equal_values_share_an_instance_and_different_ones_do_not():
    memo = ElementMemo()
    one = memo.instance(CodeableConcept, {"coding": [{"system": "s", "code": "1"}], "text": "x"})
    assert memo.instance(CodeableConcept, {"text": "x", "coding": [{"code": "1", "system": "s"}]}) is one
    assert memo.instance(CodeableConcept, {"coding": [{"system": "s", "code": "1"}], "text": "y"}) is not one


# Ways to break (or keep) an element the memo hands over: wrong types, nulls, unknown elements, empty values.
BREAKS = [None, "", 5, True, [], {}, [None], [{}], {"unknown": 1}, {"text": 5}, {"coding": {"code": "x"}},
          {"coding": [None]}, {"coding": [{"code": 5}]}, {"reference": ["x"]}, {"reference": "Patient/p1"},
          {"text": "ok"}, {"coding": [{"system": "http://loinc.org", "code": "2777-1"}]}, [{"text": "ok"}, None],
          [{"text": "ok"}, {"text": 1}], [{"reference": "Practitioner/1"}]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(min_value=0), element=st.sampled_from(
    ["code", "subject", "clinicalStatus", "verificationStatus", "bodySite", "category", "interpretation",
     "medicationCodeableConcept", "reasonCode", "reasonReference", "serviceType", "type", "severity"]),
    value=st.sampled_from(BREAKS))
def test_a_broken_or_changed_element_gets_the_plain_verdict(index, element, value):
    resource = copy.deepcopy(FIXTURE_RESOURCES[index % len(FIXTURE_RESOURCES)])
    resource[element] = copy.deepcopy(value)
    assert resources.validate(resource) == plain_verdict(resource)


@pytest.mark.parametrize("leaf", ["x", {}, [], None])
def test_a_resource_is_refused_one_level_past_the_depth_limit_whatever_sits_there(leaf):
    def nested(levels):
        value = leaf
        for n in range(levels):
            value = {"extension": value} if n % 2 else [value]
        return value

    limit = resources.MAX_RESOURCE_DEPTH
    # the resource is level 1, "deep" holds level 2: `levels` containers put the leaf at level levels + 2
    fits = {"resourceType": "Observation", "deep": nested(limit - 2)}
    too_deep = {"resourceType": "Observation", "deep": nested(limit - 1)}
    assert resources._inspect(fits) is None
    assert resources._inspect(too_deep) == f"nested deeper than {limit} levels"
    assert resources._inspect({"resourceType": "Observation", "modifierExtension": [{"url": "u"}],
                               "deep": nested(limit)}).startswith("it carries a modifierExtension")
