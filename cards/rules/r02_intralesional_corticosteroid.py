"""R02: intralesional corticosteroids may be beneficial (dystrophic calcinosis).

Article: "Intralesional corticosteroids may be beneficial because of their anti-inflammatory and inhibitory effects on
fibroblast activity." (no reference cited). Fires in a dystrophic context: the Condition says dystrophic, a
connective-tissue disease is present, or the latest calcium and phosphate are both measured and not high. The
proposal (triamcinolone acetonide, intralesional; the drug is an assumption of clinical specification §3.3) has no dose: the article
gives none. A recorded skin infection or ulcer is flagged (clinical judgement, outside the article).
"""

from cds_service.engine.authoring import Action, Recommendation, Suggestion, condition_references, medication_proposal, rule

from ..definitions import calcinosis_described_as, dystrophic_context, gate_conditions
from ..wording import OPTION_NOT_STANDARD, OUTSIDE_ARTICLE, inline_list


TRIAMCINOLONE = ("10759", "triamcinolone")  # RxNorm ingredient, VERIFIED (S11)


@rule(
    id="R02",
    title="Intralesional corticosteroid",
    article="Intralesional corticosteroids may be beneficial because of their anti-inflammatory and inhibitory effects on fibroblast activity.",
    evidence_level="Not graded in the article (\"may be beneficial\"; no reference cited); variable benefit",
    evidence_grade="Not graded",
    trigger=(
        "Calcinosis in a dystrophic context: the condition is called dystrophic, a connective-tissue disease is "
        "present, or the latest calcium and phosphate were measured and are not high"
    ),
    priority=62,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def intralesional_corticosteroid(facts, ctx):
    context = dystrophic_context(facts)
    if not context:
        return None
    evidence = list(context.evidence)
    detail = ("An intralesional corticosteroid may help (anti-inflammatory; inhibits fibroblast activity). "
              "Triamcinolone acetonide is the usual choice; the article gives no drug, dose or concentration. " +
              OPTION_NOT_STANDARD + "\n\n**Dystrophic context:** " + inline_list(evidence) + ".")
    brief = "Triamcinolone is usual; no dose is given."
    local = list(facts.has_condition("skin-infection").evidence) + list(facts.has_condition("skin-ulcer").evidence)
    local += list(calcinosis_described_as(facts, "calcinosis-ulcerated").evidence)
    if local:
        detail += (f"\n\n**Check the injection site:** {inline_list(local)} recorded; an injection is local trauma "
                   f"{OUTSIDE_ARTICLE}.")
        brief += f" Ulcer or infection recorded: check the site {OUTSIDE_ARTICLE}."
    proposal = medication_proposal(
        facts.patient_id,
        rxnorm=TRIAMCINOLONE,
        text="Triamcinolone acetonide, intralesional injection into calcinosis (dose and concentration to be set by the clinician)",
        reason_references=condition_references(evidence) or [c.reference for c in gate_conditions(facts)],
        note="No dose: the article gives none. Off-label for calcinosis cutis.",
    )
    return Recommendation(
        indicator="info",
        summary="Option: intralesional corticosteroid for calcinosis cutis (anti-inflammatory; variable benefit).",
        detail=detail,
        evidence=evidence + [{"flag": "local infection or ulceration", **item} for item in local],
        suggestions=[Suggestion("Propose intralesional triamcinolone acetonide (no dose)",
                                (Action("create", "Intralesional triamcinolone acetonide, dose left to the clinician (proposal)", resource=proposal),),
                                key="intralesional-triamcinolone")],
        selection_behavior="at-most-one",
        group="treatment-options",
        group_line="Intralesional corticosteroid",
        brief=brief,
    )
