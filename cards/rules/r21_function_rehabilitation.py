"""R21: calcinosis restricting joint motion or causing ulceration/ischemia: assess function, physio/occupational therapy.

Article (Activity): "Activity is affected only if the calcified plaques and/or nodules are large enough to restrict
joint mobility or cause ischemia and/or ulceration." Fires on a joint contracture or stiffness (M24.5x, M25.6x), a skin
ulcer (L98.4x, L97.x, SNOMED 46742003, or ulcerated calcinosis), or ischemia of the skin or an extremity (words only,
no verified code). Suggests a physiotherapist or occupational therapist referral. No activity restriction otherwise.
"""

from cds_service.engine.authoring import Recommendation, condition_references, rule

from ..definitions import calcinosis_described_as
from ..referrals import referral_unless_recent
from ..wording import inline_list


@rule(
    id="R21",
    title="Function: physiotherapy or occupational therapy when calcinosis restricts joints or causes ulcer/ischemia",
    article=("Activity is affected only if the calcified plaques and/or nodules are large enough to restrict joint "
             "mobility or cause ischemia and/or ulceration."),
    evidence_level="Expert recommendation of the article (no reference cited)",
    evidence_grade="Expert recommendation",
    trigger=("Calcinosis and a joint contracture or stiffness (M24.5x, M25.6x), a skin ulcer (or ulcerated calcinosis), "
             "or ischemia of skin or an extremity"),
    priority=50,
)
def function_rehabilitation(facts, ctx):
    found = {
        "restricted joint mobility": list(facts.has_condition("contracture").evidence),
        "ulceration": list(facts.has_condition("skin-ulcer").evidence) + list(calcinosis_described_as(facts, "calcinosis-ulcerated").evidence),
        "ischemia": list(facts.has_condition("ischemia-of-extremity").evidence),
    }
    found = {k: v for k, v in found.items() if v}
    if not found:
        return None
    evidence = [{"indication": name, **item} for name, items in found.items() for item in items]
    suggestions, existing = [], []
    for specialty in ("physiotherapy", "occupational-therapy"):
        suggestion, recent = referral_unless_recent(facts, specialty, condition_references(evidence))
        if suggestion:
            suggestions.append(suggestion)
        else:
            existing.append(specialty.replace("-", " "))
    already = f" Already referred in the last 12 months: {', '.join(existing)}." if existing else ""
    brief = "Assess function; no other activity restriction is needed." + already
    detail = ("Calcified plaques or nodules affect activity when they restrict joint mobility or cause ischemia or "
              "ulceration.\n\n" + "\n".join(f"- *{name.capitalize()}:* {inline_list(items)}" for name, items in found.items())
              + "\n\nAssess function; physiotherapy or occupational therapy may help. No other activity restriction is "
              "needed." + already)
    return Recommendation(
        indicator="info",
        summary="Calcinosis restricting joint motion or causing ulceration/ischemia: assess function; consider PT/OT.",
        detail=detail,
        evidence=evidence,
        suggestions=suggestions,
        selection_behavior="any",
        group="procedures",
        group_line="Physiotherapy or occupational therapy (" + ", ".join(found) + ")",
        brief=brief,
    )
