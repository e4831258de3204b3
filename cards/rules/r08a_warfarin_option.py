"""R08a: warfarin has shown benefit in some (dystrophic/CTD context); low-dose warfarin is not recommended.

Article: "Warfarin has shown benefit in some. Low-dose warfarin should not be used, as no benefit has been
established." [27]. Information only, no proposal (off-label, bleeding risk needs a clinician's assessment). Fires
in a dystrophic or connective-tissue-disease context, and never: in calciphylaxis (warfarin is a reported risk factor,
S6; R08c takes precedence), in pregnancy (teratogenic), with a bleeding contraindication or long-term anticoagulation,
or when the patient already takes warfarin (the order rules R08b/R08c speak then). When withheld for calciphylaxis,
pregnancy or bleeding risk, the treatment-options card says why.
"""

from cds_service.engine.authoring import Recommendation, rule

from ..definitions import calciphylaxis, dystrophic_context, pregnant
from ..wording import OPTION_NOT_STANDARD, inline_list


WARFARIN_VALUE_SET = "med-warfarin"  # defined by the order rules (terminology-medications.json)


@rule(
    id="R08a",
    title="Warfarin as an option (never low dose)",
    article="Warfarin has shown benefit in some. Low-dose warfarin should not be used, as no benefit has been established.",
    references=(27,),
    evidence_level="Case series and reports (\"benefit in some\")",
    evidence_grade="Case series and reports",
    exclusions=("Calciphylaxis: warfarin is a reported risk factor (R08c takes precedence)", "Pregnancy",
                "A bleeding disorder or current anticoagulation", "Warfarin already taken"),
    trigger=(
        "Calcinosis in a dystrophic or connective-tissue-disease context; never with calciphylaxis, pregnancy, a "
        "bleeding contraindication or current anticoagulation, or when warfarin is already taken"
    ),
    priority=72,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def warfarin_option(facts, ctx):
    context = dystrophic_context(facts)
    if not context:
        return None
    if facts.has_value_set(WARFARIN_VALUE_SET) and facts.taking(WARFARIN_VALUE_SET):
        return None
    reasons = []
    in_calciphylaxis = calciphylaxis(facts)
    if in_calciphylaxis:
        reasons.append(("calciphylaxis", "calciphylaxis, for which warfarin is a reported risk factor (VisualDx, outside the article)", in_calciphylaxis))
    pregnancy = pregnant(facts)
    if pregnancy:
        reasons.append(("pregnancy", "pregnancy (warfarin is teratogenic; outside the article)", pregnancy))
    bleeding = facts.has_condition("bleeding-risk")
    if bleeding:
        reasons.append(("bleeding risk", "a recorded bleeding disorder or current anticoagulation", bleeding))
    if reasons:
        return Recommendation(
            indicator="info",
            summary="Warfarin not suggested: " + ", ".join(short for short, _, _ in reasons) + ".",
            detail="Warfarin (reported to benefit some patients with calcinosis cutis) is not suggested because of " +
                   "; ".join(long for _, long, _ in reasons) + ".",
            brief="; ".join(long for _, long, _ in reasons) + ".",
            evidence=[{"withheldFor": short, **item} for short, _, f in reasons for item in f.evidence],
            group="treatment-options",
            group_line="Warfarin",
            withheld=True,
        )
    evidence = list(context.evidence)
    return Recommendation(
        indicator="info",
        summary="Option: warfarin has benefited some patients with calcinosis cutis; low-dose warfarin is not recommended.",
        detail=("Warfarin has benefited some patients with calcinosis cutis; low doses have no established benefit. " +
                OPTION_NOT_STANDARD + " Nothing is proposed: the bleeding risk needs your assessment, and the article "
                "gives no dose.\n\n**Context:** " + inline_list(evidence) + "."),
        evidence=evidence,
        group="treatment-options",
        group_line="Warfarin (not low dose)",
        brief="Not proposed: weigh the bleeding risk.",
    )
