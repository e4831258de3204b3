"""R16: extracorporeal shock wave lithotripsy relieved pain (anecdotal) in DM, scleroderma, venous insufficiency.

Article: "Electric shock wave lithotripsy is anecdotally successful in treating calcinosis cutis associated with
dermatomyositis, as well as venous insufficiency and scleroderma. Although reduction in the size of the calcification
was minimal, the patient's associated pain was completely relieved." [38, 39]. Fires on (dermatomyositis, systemic
sclerosis or venous insufficiency) and pain (A8, or the calcinosis Condition says painful). Suggests a referral to the
local ESWL/ESWT service by text (no verified SNOMED CT code); never presented as curative.
"""

import json

from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service import proposals
from cds_service.rules import Action, Recommendation, Suggestion, rule

from ._common import condition_references
from ._text import bullet_list

ESWT_REFERRAL = "Referral to the local extracorporeal shock wave therapy (ESWL/ESWT) service for painful calcinosis cutis"


@rule(
    id="R16",
    title="Shock wave lithotripsy for painful calcinosis (DM, scleroderma, venous insufficiency)",
    article=("Electric shock wave lithotripsy is anecdotally successful in treating calcinosis cutis associated with "
             "dermatomyositis, as well as venous insufficiency and scleroderma. Although reduction in the size of the "
             "calcification was minimal, the patient's associated pain was completely relieved."),
    references=(38, 39),
    evidence_level="Anecdotal (case reports)",
    trigger=("Calcinosis with dermatomyositis, systemic sclerosis or venous insufficiency, and pain (R52, G89.x, "
             "M79.6x, or painful calcinosis)"),
    priority=45,
)
def shock_wave_lithotripsy(facts, ctx):
    context = [f for f in (facts.has_condition("dermatomyositis"), facts.has_condition("systemic-sclerosis"),
                           facts.has_condition("venous-insufficiency")) if f]
    if not context:
        return None
    pain = list(facts.has_condition("pain").evidence) + list(facts.calcinosis_described_as("calcinosis-painful").evidence)
    if not pain:
        return None
    evidence = [item for f in context for item in f.evidence] + [{"indication": "pain", **item} for item in pain]
    detail = ("The article: *\"Electric shock wave lithotripsy is anecdotally successful in treating calcinosis cutis "
              "associated with dermatomyositis, as well as venous insufficiency and scleroderma. Although reduction in "
              "the size of the calcification was minimal, the patient's associated pain was completely relieved.\"* "
              "Anecdotal evidence; it relieves pain and is not curative.\n\n" + bullet_list(evidence))
    resource = _eswt_referral(facts, condition_references(evidence))
    return Recommendation(
        indicator="info",
        summary="Anecdotal: shock wave lithotripsy relieved calcinosis pain in DM, scleroderma, venous insufficiency.",
        detail=detail,
        evidence=evidence,
        suggestions=[Suggestion("Refer to the local shock wave therapy service",
                                (Action("create", "Referral for shock wave therapy of painful calcinosis (proposal)", resource=resource),),
                                key="referral-eswt")],
        selection_behavior="at-most-one",
        group="procedures",
        group_line="Shock wave lithotripsy for pain (anecdotal)",
    )


def _eswt_referral(facts, reasons):
    """A referral ServiceRequest named by text: no SNOMED CT concept for soft-tissue ESWT was verified (§1.5)."""
    data = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "category": [{"coding": [{"system": proposals.SNOMED, "code": "3457005", "display": "Patient referral"}]}],
        "code": {"text": ESWT_REFERRAL},
        "subject": {"reference": f"Patient/{facts.patient_id}"},
        "note": [{"text": "Anecdotal benefit on pain only; size reduction is minimal. Not curative."}],
    }
    if reasons:
        data["reasonReference"] = [{"reference": r} for r in dict.fromkeys(reasons)]
    return json.loads(ServiceRequest.model_validate(data).model_dump_json())
