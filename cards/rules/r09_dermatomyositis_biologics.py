"""R09: rituximab or a TNF inhibitor may be alternatives in dermatomyositis.

Article: "Rituximab and tumor necrosis factor inhibitors may be beneficial alternatives in patients with
dermatomyositis." [27]. Only for dermatomyositis (M33.0x/M33.1x/M33.9x/M36.0, SNOMED 396230008; polymyositis,
scleroderma and lupus are not enough). Suggests a rheumatology referral, no drug proposal. Biologic screening (TB,
HBV, active infection) is flagged as outside the article; juvenile dermatomyositis and children: specialist only.
"""

from cds_service.engine.authoring import Recommendation, condition_references, rule

from ..definitions import is_child
from ..referrals import referral_unless_recent
from ..wording import OPTION_NOT_STANDARD, OUTSIDE_ARTICLE, inline_list, name_of


@rule(
    id="R09",
    title="Rituximab or a TNF inhibitor in dermatomyositis",
    article="Rituximab and tumor necrosis factor inhibitors may be beneficial alternatives in patients with dermatomyositis.",
    references=(27,),
    evidence_level="Case series (\"may be beneficial alternatives\")",
    evidence_grade="Case series",
    exclusions=("Polymyositis or another connective-tissue disease without dermatomyositis",),
    trigger="Calcinosis and dermatomyositis (adult or juvenile; not polymyositis or other connective-tissue disease)",
    priority=64,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def dermatomyositis_biologics(facts, ctx):
    dm = facts.has_condition("dermatomyositis")
    if not dm:
        return None
    evidence = list(dm.evidence)
    notes = ["With rheumatology; screen for TB and hepatitis B first " + OUTSIDE_ARTICLE + "."]
    juvenile = facts.has_condition("juvenile-dermatomyositis")
    if juvenile or is_child(facts):
        notes.append("In a child: a paediatric rheumatologist's decision.")
    taking = facts.taking("med-rituximab-or-tnf-inhibitor")
    if taking:
        evidence.extend({"flag": "already taking", **item} for item in taking.evidence)
        notes.append("Already taking " + "; ".join(name_of(i) or "a biologic" for i in taking.evidence) + ".")
    suggestion, existing = referral_unless_recent(facts, "rheumatology", condition_references(evidence))
    if existing:
        notes.append("Rheumatology already involved in the last 12 months: discuss there.")
    detail = ("Rituximab or a TNF inhibitor may be beneficial alternatives in dermatomyositis. " + OPTION_NOT_STANDARD +
              " No drug is proposed.\n\n**Dermatomyositis:** " + inline_list(list(dm.evidence)) + ".\n\n" + " ".join(notes))
    return Recommendation(
        indicator="info",
        summary="Calcinosis with dermatomyositis: rituximab or a TNF inhibitor may be an alternative; discuss with rheumatology.",
        detail=detail,
        evidence=evidence,
        suggestions=[suggestion] if suggestion else [],
        selection_behavior="at-most-one",
        group="treatment-options",
        group_line="Rituximab or a TNF inhibitor",
        brief=" ".join(notes),
    )
