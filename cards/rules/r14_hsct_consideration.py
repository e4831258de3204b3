"""R14: autologous HSCT may be considered, theoretically, in extraordinarily severe CTD-associated calcinosis.

Article: "Theoretically, in extraordinarily severe cases of calcinosis cutis, associated with one of several
connective-tissues diseases, autologous hematopoietic stem cell transplantation (HSCT) may be considered. Risks and
benefits must be thoroughly investigated..." [37]. "Extraordinarily severe" = the calcinosis Condition's severity is
SNOMED CT 24484000 Severe (A7; the word "severe" in the severity's text as the fallback, because the code is
UNVERIFIED). The connective-tissue disease is systemic: M33, M34, M32, M35.1 (and their SNOMED codes). Low priority;
suggests a hematology referral for specialist evaluation, never an HSCT procedure.
"""

from cds_service.engine.authoring import Recommendation, condition_references, rule

from ..definitions import gate_conditions
from ..referrals import referral_unless_recent
from ..wording import inline_list


def severe_calcinosis(facts):
    vs = facts.terms.value_set("severity-severe")
    evidence = []
    for condition in gate_conditions(facts):
        if condition.severity and (match := vs.match_concept(condition.severity)) is not None:
            evidence.append({"reference": condition.reference, "severity": match.matched, **match.as_evidence(),
                             "text": f"{condition.text or 'calcinosis'}, recorded as severe"})
    return evidence


@rule(
    id="R14",
    title="Autologous HSCT (theoretical) for extraordinarily severe CTD-associated calcinosis",
    article=("Theoretically, in extraordinarily severe cases of calcinosis cutis, associated with one of several "
             "connective-tissues diseases, autologous hematopoietic stem cell transplantation (HSCT) may be "
             "considered. Risks and benefits must be thoroughly investigated."),
    references=(37,),
    evidence_level="Theoretical (article); indirect evidence from HSCT in connective-tissue disease",
    evidence_grade="Theoretical",
    exclusions=("Calcinosis not recorded as Severe", "No systemic connective-tissue disease"),
    trigger=("Calcinosis whose Condition.severity is Severe (SNOMED CT 24484000) and a systemic connective-tissue "
             "disease (M33, M34, M32, M35.1)"),
    priority=95,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def hsct_consideration(facts, ctx):
    severe = severe_calcinosis(facts)
    if not severe:
        return None
    ctd = facts.has_condition("systemic-connective-tissue-disease")
    if not ctd:
        return None
    evidence = severe + list(ctd.evidence)
    suggestion, existing = referral_unless_recent(facts, "hematology", condition_references(evidence),
                                                  note="Evaluation only: HSCT is a theoretical option for severe CTD-associated calcinosis.")
    brief = "Specialist evaluation only."
    detail = ("Theoretically, autologous hematopoietic stem cell transplantation may be considered in extraordinarily "
              "severe calcinosis with a connective-tissue disease, after a thorough review of risks and benefits.\n\n"
              "**Found:** " + inline_list(evidence) + ".\n\nSpecialist evaluation only; no transplant is proposed.")
    if existing:
        brief += " Hematology already involved."
        detail += " Hematology already involved in the last 12 months."
    return Recommendation(
        indicator="info",
        summary="Theoretical option: autologous HSCT for extraordinarily severe CTD-associated calcinosis; specialist evaluation.",
        detail=detail,
        evidence=evidence,
        suggestions=[suggestion] if suggestion else [],
        selection_behavior="at-most-one",
        group="treatment-options",
        group_line="Autologous stem cell transplant",
        brief=brief,
    )
