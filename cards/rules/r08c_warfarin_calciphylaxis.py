"""R08c: warfarin is a reported risk factor for calciphylaxis (derived safety rule, from VisualDx, S6).

Hooks as in the clinical specification: order-sign (the warfarin orders being signed) and patient-view (warfarin active on the record).
Calciphylaxis needs SNOMED CT 237900002 or the word "calciphylaxis" (A1); E83.59 alone is too broad. Warning, with a
nephrology referral (calciphylaxis mortality is high) unless one is already ordered or on record from the last 12
months, and, on order-sign, an offer to remove the draft. It takes precedence over R08a (warfarin as a calcinosis
option, patient-view) and over R08b (low-dose warfarin, whose draft this card already covers on order-sign).
Other calciphylaxis risk factors that S6 names and the record shows (calcium-based binders, systemic corticosteroids)
are listed in the card for context.
"""

import re

from cds_service.engine.authoring import Recommendation, condition_references, delete_suggestion, drafts_in, rule

from ..findings import judged_orders
from ..definitions import calciphylaxis
from ..referrals import referral_unless_recent
from ..wording import bullet_list, medication_line


# Corticosteroid products that are not systemic (the names are shared with creams, inhalers, drops...).
_LOCAL_FORM = re.compile(
    r"\b(topical|cream|ointment|lotion|gel|foam|shampoo|ophthalmic|otic|eye|ear|nasal|inhal\w*|enema|rectal|"
    r"intralesional|intra-articular|dental|paste)\b",
    re.IGNORECASE,
)
OVERRIDE_REASONS = [
    ("no-alternative-anticoagulant", "No suitable alternative anticoagulant for this patient"),
    ("nephrology-aware", "Discussed with nephrology; warfarin continued"),
    ("calciphylaxis-not-active", "Calciphylaxis diagnosis is not current"),
    ("benefit-outweighs-risk", "Benefit outweighs the risk for this patient"),
]


def _other_risk_factors(facts) -> list:
    found = []
    for value_set, label in (("med-calcium-based-binder", "calcium-based phosphate binder"),
                             ("med-systemic-corticosteroid", "systemic corticosteroid")):
        for fact, match in facts.medications_in(value_set):
            if value_set == "med-systemic-corticosteroid" and (
                _LOCAL_FORM.search(fact.text or "") or _LOCAL_FORM.search(fact.route_text or "")
            ):
                continue
            found.append((label, fact, match))
    return found


@rule(
    id="R08c",
    title="Warfarin in calciphylaxis",
    article="Derived safety rule: warfarin is a reported risk factor for calciphylaxis (VisualDx, S6).",
    evidence_level="Risk-factor listing of a clinical reference (VisualDx); not a treatment statement of the article",
    trigger=(
        "Calciphylaxis (SNOMED CT 237900002 or the word; not E83.59 alone) and warfarin: a draft order being signed "
        "(order-sign) or an active medication (patient-view)"
    ),
    hooks=("order-sign", "patient-view"),
    outside_article=(
        "Outside the article: this safety rule comes from VisualDx's calciphylaxis page (S6), which lists warfarin, "
        "calcium-based phosphate binders and systemic corticosteroids as risk factors; it takes precedence over the "
        "article's \"Warfarin has shown benefit in some\"."
    ),
    suppresses=("R08a", "R08b"),
    priority=5,
)
def warfarin_in_calciphylaxis(facts, ctx):
    in_calciphylaxis = calciphylaxis(facts)
    if not in_calciphylaxis:
        return None
    if ctx.hook == "patient-view":
        warfarin = facts.medications_in("med-warfarin", include_drafts=False)
    else:
        warfarin = drafts_in(facts, ctx, "med-warfarin")
    if not warfarin:
        return None

    evidence = [fact.evidence(match) for fact, match in warfarin]
    evidence += [{"finding": "calciphylaxis", **item} for item in in_calciphylaxis.evidence]
    others = _other_risk_factors(facts)
    evidence += [{"finding": f"other risk factor: {label}", **fact.evidence(match)} for label, fact, match in others]

    suggestions = []
    if ctx.hook != "patient-view":
        suggestions += [s for s in (delete_suggestion(f, "warfarin in calciphylaxis") for f, _ in warfarin) if s]
    referral, existing = referral_unless_recent(facts, "nephrology", condition_references(in_calciphylaxis.evidence), ctx=ctx)
    if referral:
        suggestions.append(referral)

    where = "Being ordered" if ctx.hook != "patient-view" else "Active on the record"
    lines = [
        "VisualDx (S6) lists warfarin among the risk factors for calciphylaxis. Review whether this patient needs "
        "warfarin, and discuss alternatives with nephrology; calciphylaxis mortality is high (60-87% per S6).",
        f"**{where}:**\n\n" + "\n".join(f"- {medication_line(fact)}" for fact, _ in warfarin),
        "**Calciphylaxis:**\n\n" + bullet_list(list(in_calciphylaxis.evidence)),
    ]
    if others:
        lines.append(
            "**Other calciphylaxis risk factors named by S6 on record or ordered:**\n\n"
            + "\n".join(f"- {label}: {medication_line(fact)}" for label, fact, _ in others)
        )
    if existing:
        lines.append(f"A nephrology referral already exists ({existing}), so it is not suggested again.")
    lines.append(
        "The article's statement that warfarin has benefited some patients with calcinosis cutis does not apply "
        "to calciphylaxis."
    )
    return Recommendation(
        indicator="warning",
        summary="Warfarin is a reported risk factor for calciphylaxis; review need for warfarin in this patient.",
        detail="\n\n".join(lines),
        evidence=evidence,
        suggestions=suggestions,
        selection_behavior="any",
        override_reasons=OVERRIDE_REASONS,
        orders=judged_orders(warfarin),
    )
