"""R08c: warfarin is a reported risk factor for calciphylaxis (derived safety rule, from VisualDx, S6).

On every hook (decision A21): on the order hooks the warfarin draft orders (order-select: the selected ones;
order-sign: every one being signed), on patient-view warfarin active on the record. Calciphylaxis needs SNOMED CT
237900002 or the word "calciphylaxis" (A1); E83.59 alone is too broad. Warning, with a nephrology referral
(calciphylaxis mortality is high) unless one is already ordered or on record from the last 12 months, and, on an order
hook, an offer to remove the draft. It takes precedence over R08a (warfarin as a calcinosis option) and over R08b
(low-dose warfarin, whose draft this card already covers). Other calciphylaxis risk factors that S6 names and the
record shows (calcium-based binders, systemic corticosteroids) are listed in the card for context. Its cards name
their own source, VisualDx (A20).
"""

import re

from cds_service.engine.authoring import Recommendation, condition_references, delete_suggestion, drafts_in, rule

from ..findings import judged_orders
from ..definitions import calciphylaxis
from ..orders import active_of_same_kind, product_key, same_kind_evidence, same_kind_note
from ..referrals import referral_unless_recent
from ..sources import VISUALDX_CALCIPHYLAXIS
from ..wording import inline_list, medication_line, product_line


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
    evidence_grade="Risk-factor listing, not a treatment statement",
    exclusions=("Calciphylaxis coded only as E83.59 (too broad)", "On order-select, draft orders that are not selected"),
    trigger=(
        "Calciphylaxis (SNOMED CT 237900002 or the word; not E83.59 alone) and warfarin: a draft order (order-select: "
        "the selected one; order-sign: any) or an active medication (patient-view)"
    ),
    hooks=("order-select", "order-sign", "patient-view"),
    outside_article=(
        "Outside the article: this safety rule comes from VisualDx's calciphylaxis page (S6), which lists warfarin, "
        "calcium-based phosphate binders and systemic corticosteroids as risk factors; it takes precedence over the "
        "article's \"Warfarin has shown benefit in some\"."
    ),
    source=VISUALDX_CALCIPHYLAXIS,
    suppresses=("R08a", "R08b"),
    priority=5,
)
def warfarin_in_calciphylaxis(facts, ctx):
    in_calciphylaxis = calciphylaxis(facts)
    if not in_calciphylaxis:
        return None
    ordering = ctx.hook != "patient-view"
    if ordering:
        warfarin = drafts_in(facts, ctx, "med-warfarin")
    else:
        warfarin = facts.medications_in("med-warfarin", include_drafts=False)
    if not warfarin:
        return None
    products = [fact for fact, _ in warfarin]

    evidence = [fact.evidence(match) for fact, match in warfarin]
    evidence += [{"finding": "calciphylaxis", **item} for item in in_calciphylaxis.evidence]
    others = _other_risk_factors(facts)
    evidence += [{"finding": f"other risk factor: {label}", **fact.evidence(match)} for label, fact, match in others]

    suggestions = []
    if ordering:
        suggestions += [s for s in (delete_suggestion(f, "warfarin in calciphylaxis") for f in products) if s]
    referral, existing = referral_unless_recent(facts, "nephrology", condition_references(in_calciphylaxis.evidence), ctx=ctx)
    if referral:
        suggestions.append(referral)

    lines = [
        "VisualDx lists warfarin among the risk factors for calciphylaxis, whose mortality is high (60-87%). Review "
        "whether this patient needs warfarin, and discuss alternatives with nephrology.",
        ("**Ordered:** " if ordering else "**Active on the record:** ")
        + "; ".join(product_line(fact) for fact in products) + ".",
        "**Calciphylaxis:** " + inline_list(list(in_calciphylaxis.evidence)) + ".",
    ]
    if others:
        lines.append("**Other risk factors for calciphylaxis:** "
                     + "; ".join(f"{label}, {medication_line(fact)}" for label, fact, _ in others) + ".")
    same_kind = active_of_same_kind(facts, ("med-warfarin",), products) if ordering else []
    if note := same_kind_note(same_kind, "warfarin"):
        lines.append(note)
    if existing:
        lines.append("A nephrology referral already exists, so it is not suggested again.")
    lines.append("The article's \"warfarin has shown benefit in some\" does not apply to calciphylaxis.")
    return Recommendation(
        indicator="warning",
        summary="Warfarin is a reported risk factor for calciphylaxis; review need for warfarin in this patient.",
        detail="\n\n".join(lines),
        evidence=evidence + same_kind_evidence(same_kind),
        suggestions=suggestions,
        selection_behavior="any",
        override_reasons=OVERRIDE_REASONS,
        finding=("order:" if ordering else "active:") + product_key(products),
        orders=judged_orders(warfarin),
    )
