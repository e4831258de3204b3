"""R16: extracorporeal shock wave lithotripsy relieved pain (anecdotal) in DM, scleroderma, venous insufficiency.

Article: "Electric shock wave lithotripsy is anecdotally successful in treating calcinosis cutis associated with
dermatomyositis, as well as venous insufficiency and scleroderma. Although reduction in the size of the calcification
was minimal, the patient's associated pain was completely relieved." [38, 39]. Fires on (dermatomyositis, systemic
sclerosis or venous insufficiency) and pain (A8, or the calcinosis Condition says painful). Suggests a referral to the
local ESWL/ESWT service by text (no verified SNOMED CT code); never presented as curative.
"""

from cds_service.engine.authoring import Action, Recommendation, Suggestion, condition_references, referral_by_text, rule

from ..definitions import calcinosis_described_as
from ..wording import inline_list


ESWT_REFERRAL = "Referral to the local extracorporeal shock wave therapy (ESWL/ESWT) service for painful calcinosis cutis"


@rule(
    id="R16",
    title="Shock wave lithotripsy for painful calcinosis (DM, scleroderma, venous insufficiency)",
    article=("Electric shock wave lithotripsy is anecdotally successful in treating calcinosis cutis associated with "
             "dermatomyositis, as well as venous insufficiency and scleroderma. Although reduction in the size of the "
             "calcification was minimal, the patient's associated pain was completely relieved."),
    references=(38, 39),
    evidence_level="Anecdotal (case reports)",
    exclusions=("No pain", "No dermatomyositis, systemic sclerosis or venous insufficiency"),
    trigger=("Calcinosis with dermatomyositis, systemic sclerosis or venous insufficiency, and pain (R52, G89.x, "
             "M79.6x, or painful calcinosis)"),
    priority=45,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def shock_wave_lithotripsy(facts, ctx):
    context = [f for f in (facts.has_condition("dermatomyositis"), facts.has_condition("systemic-sclerosis"),
                           facts.has_condition("venous-insufficiency")) if f]
    if not context:
        return None
    pain = list(facts.has_condition("pain").evidence) + list(calcinosis_described_as(facts, "calcinosis-painful").evidence)
    if not pain:
        return None
    evidence = [item for f in context for item in f.evidence] + [{"indication": "pain", **item} for item in pain]
    brief = "Relieves pain; not curative."
    detail = ("Extracorporeal shock wave lithotripsy has anecdotally relieved the pain of calcinosis cutis in "
              "dermatomyositis, scleroderma and venous insufficiency; the deposits barely shrank, so it is not "
              "curative.\n\n**Found:** " + inline_list(evidence) + ".")
    resource = referral_by_text(facts.patient_id, ESWT_REFERRAL, condition_references(evidence),
                                note="Anecdotal benefit on pain only; size reduction is minimal. Not curative.")
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
        group_line="Shock wave lithotripsy for pain",
        brief=brief,
    )
