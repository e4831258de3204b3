"""R10: long-term diltiazem (at least 5 years) has variable benefit.

Article: "The use of the calcium-channel blocker diltiazem over at least 5 years has variable benefits." [28, 29, 30].
Information only: no product or dose is proposed (the article gives none), and it is never framed as a short course.
Cardiac cautions (hypotension, bradycardia/AV block, CYP3A4 interactions) are flagged as outside the article.
"""

from cds_service.engine.authoring import Recommendation, rule

from ..wording import OPTION_NOT_STANDARD, OUTSIDE_ARTICLE


@rule(
    id="R10",
    title="Long-term diltiazem",
    article="The use of the calcium-channel blocker diltiazem over at least 5 years has variable benefits.",
    references=(28, 29, 30),
    evidence_level="Case reports and small series; variable benefit",
    evidence_grade="Case reports, small series",
    trigger="Calcinosis (any patient in scope); information only",
    priority=74,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def diltiazem(facts, ctx):
    evidence: list[dict] = [{"basis": "every patient with calcinosis cutis (information only)"}]
    brief = "Cardiac cautions " + OUTSIDE_ARTICLE + ": hypotension, AV block, CYP3A4."
    taking = facts.taking("med-diltiazem")
    if taking:
        evidence = [{"flag": "already taking diltiazem", **item} for item in taking.evidence]
        brief += " Already taking it."
    detail = ("The calcium-channel blocker diltiazem has variable benefit when taken for at least 5 years; any "
              "benefit was reported only after years of use. " + OPTION_NOT_STANDARD + " No product or dose is "
              "proposed: the article gives none.\n\n" + brief)
    return Recommendation(
        indicator="info",
        summary="Option: long-term diltiazem (≥5 years) has shown variable benefit in calcinosis cutis.",
        detail=detail,
        evidence=evidence,
        group="treatment-options",
        group_line="Diltiazem for at least 5 years",
        brief=brief,
    )
