"""R05: magnesium or aluminium antacids in renal insufficiency may cause magnesium or aluminium toxicity.

On the order hooks it judges the draft orders (on order-select the selected ones); on patient-view an antacid that is
already active on the record (then there is no draft to remove: the card asks for a review, labs and nephrology).
Warning; critical (clinical specification R05) when renal insufficiency is severe or on dialysis, when a magnesium-containing
antacid meets a high magnesium (>= 5.0 mg/dL or above the upper limit) or documented hypermagnesemia (E83.41), when
an aluminium-containing one meets a high serum aluminium (> 60 ng/mL on dialysis, else above the lab's upper limit or
7 ng/mL) or aluminium bone disease (M83.4), or when an adverse effect of antacids (T47.1X5) is documented. Matching
each marker to the metal the antacid contains is a narrowing of the table's "any of", so that a magnesium value does
not make an aluminium-only antacid critical. R05 takes precedence over R04 (which never suggests an antacid in RI).
"""

from cds_service.engine.authoring import PRODUCT_NAME, Recommendation, condition_references, delete_suggestion, drafts_in, lab_suggestion, rule

from ..findings import judged_orders
from ..definitions import dialysis, lab_high, renal_insufficiency, severe_renal_insufficiency
from ..orders import active_of_same_kind, product_key, same_kind_evidence, same_kind_note
from ..referrals import referral_unless_recent
from ..wording import OUTSIDE_ARTICLE, SUCRALFATE_NOTE, describe, inline_list, product_line, verify_ingredients


MAGNESIUM_CRITICAL_MG_DL = 5.0  # clinical specification §1.3 and §3.13: critical >= 5 mg/dL
ALUMINIUM_DIALYSIS_NG_ML = 60.0  # serum Al reference in dialysis patients (S10)
ALUMINIUM_DEFAULT_ULN_NG_ML = 7.0  # serum Al reference otherwise (S10)
MAGNESIUM_LAB = ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma")  # VERIFIED (S8, S10)
ALUMINIUM_LAB = ("5574-9", "Aluminum [Mass/volume] in Serum or Plasma")  # ID-VERIFIED (S10)
OVERRIDE_REASONS = [
    ("nephrology-directed", "Directed by nephrology, with magnesium/aluminium monitoring"),
    ("short-course-monitored", "Short course with serum levels monitored"),
    ("renal-data-incorrect", "Renal function data shown is incorrect or out of date"),
    ("benefit-outweighs-risk", "Benefit outweighs the risk for this patient"),
]


def _escalation(facts, magnesium: bool, aluminium: bool) -> list[tuple[str, list[dict]]]:
    """Why the card is critical: (reason, evidence) pairs; empty for a warning."""
    reasons: list[tuple[str, list[dict]]] = []
    severe = severe_renal_insufficiency(facts)
    if severe:
        reasons.append(("severe renal insufficiency or dialysis", list(severe.evidence)))
    if magnesium:
        result = facts.latest_lab("magnesium")
        high = lab_high(facts, "magnesium")
        if result is not None and (result.value >= MAGNESIUM_CRITICAL_MG_DL or high):
            basis = (f"at or above {MAGNESIUM_CRITICAL_MG_DL:g} mg/dL" if result.value >= MAGNESIUM_CRITICAL_MG_DL
                     else "above the upper limit")
            reasons.append((f"serum magnesium {basis}", [{**result.evidence(), "assessment": basis}]))
        if marker := facts.has_condition("mg-toxicity-markers"):
            reasons.append(("hypermagnesemia documented", list(marker.evidence)))
    if aluminium:
        result = facts.latest_lab("aluminium")
        if result is not None:
            on_dialysis = bool(dialysis(facts))
            limit = ALUMINIUM_DIALYSIS_NG_ML if on_dialysis else (result.reference_high or ALUMINIUM_DEFAULT_ULN_NG_ML)
            if result.value > limit:
                basis = f"above {limit:g} ng/mL" + (" (dialysis reference)" if on_dialysis else "")
                reasons.append((f"serum aluminium {basis}", [{**result.evidence(), "assessment": basis}]))
        if marker := facts.has_condition("al-toxicity-markers"):
            reasons.append(("aluminium bone disease or toxicity documented", list(marker.evidence)))
    if marker := facts.has_condition("antacid-adverse-effect"):
        reasons.append(("an adverse effect of antacids documented", list(marker.evidence)))
    return reasons


@rule(
    id="R05",
    title="Magnesium or aluminium antacid in renal insufficiency",
    article="...the use of these agents [magnesium or aluminum antacids] in patients with renal insufficiency may result in magnesium or aluminum toxicity.",
    evidence_level="Statement of the article (no reference cited)",
    exclusions=("No renal insufficiency (renal function normal or unknown)",
                "A draft order marked doNotPerform; on order-select, draft orders that are not selected"),
    trigger=(
        "A draft order (order-select: the selected one; order-sign: any) or, on patient-view, an active medication "
        "containing magnesium hydroxide/carbonate/oxide/trisilicate or aluminium hydroxide/carbonate, sucralfate "
        "included (matched by name: RxCUIs UNVERIFIED; brand names such as Maalox only when no ingredient is named, "
        "with 'verify the ingredients'), and renal insufficiency (eGFR < 60, a CKD 3-5/renal failure condition, AKI, or "
        "dialysis). Critical when RI is severe or on dialysis, Mg >= 5.0 mg/dL or above the upper limit, serum Al "
        "above 60 ng/mL on dialysis or the upper limit (7 ng/mL) otherwise, or E83.41 / M83.4 / T47.1X5 is documented"
    ),
    hooks=("order-select", "order-sign", "patient-view"),
    suppresses=("R04",),
    priority=10,
)
def antacid_in_renal_insufficiency(facts, ctx):
    if ctx.hook == "patient-view":
        mg_meds = facts.medications_in("med-magnesium-antacid", include_drafts=False)
        al_meds = facts.medications_in("med-aluminium-antacid", include_drafts=False)
    else:
        mg_meds = drafts_in(facts, ctx, "med-magnesium-antacid")
        al_meds = drafts_in(facts, ctx, "med-aluminium-antacid")
    if not mg_meds and not al_meds:
        return None
    ri = renal_insufficiency(facts)
    if not ri:
        return None

    meds = {}
    for fact, match in mg_meds + al_meds:
        meds.setdefault(fact.reference, (fact, match))
    magnesium, aluminium = bool(mg_meds), bool(al_meds)
    escalation = _escalation(facts, magnesium, aluminium)
    critical = bool(escalation)

    evidence = [fact.evidence(match) for fact, match in meds.values()]
    evidence += [{"finding": "renal insufficiency", **item} for item in ri.evidence]
    for reason, items in escalation:
        evidence += [{"finding": reason, **item} for item in items]
    reasons = condition_references(ri.evidence)

    suggestions, already = [], []
    if ctx.hook != "patient-view":
        for fact, _ in meds.values():
            if (removal := delete_suggestion(fact, "Mg/Al antacid in renal insufficiency")) is not None:
                suggestions.append(removal)
    monitoring = []
    if magnesium:
        monitoring.append(MAGNESIUM_LAB + ("Order serum magnesium", "serum magnesium"))
    if aluminium:
        monitoring.append(ALUMINIUM_LAB + ("Order serum aluminium", "serum aluminium"))
    for loinc, display, label, name in monitoring:
        suggestion, existing = lab_suggestion(facts, ctx, loinc, display, label, reasons)
        if suggestion:
            suggestions.append(suggestion)
        else:
            already.append(f"{name} test")
    referral, existing = referral_unless_recent(facts, "nephrology", reasons, ctx=ctx)
    if referral:
        suggestions.append(referral)
    else:
        already.append("nephrology referral")

    metal = "magnesium/aluminum" if magnesium and aluminium else "magnesium" if magnesium else "aluminum"
    verb = "Review this medication." if ctx.hook == "patient-view" else "Reconsider this order."
    if critical:
        why = "severe renal insufficiency" if escalation[0][0].startswith("severe") else "signs of toxicity"
        summary = f"Mg/Al antacid with {why}: high risk of {metal} toxicity. {verb}"
    else:
        summary = f"Mg/Al antacid with renal insufficiency: risk of {metal} toxicity. {verb}"

    what = "Ordered" if ctx.hook != "patient-view" else "Active on the record"
    shown = [describe(item) for item in ri.evidence]
    lines = [
        f"**{what}:** " + "; ".join(product_line(fact) for fact, _ in meds.values()) + ".",
        "**Renal insufficiency:** " + inline_list(list(ri.evidence)) + ".",
    ]
    # A15: a product known by its brand name alone may hold either metal, or neither.
    matches = mg_meds + al_meds
    lines += [verify_ingredients(fact.text, match.matched) for fact, match in meds.values()
              if all(m.by == PRODUCT_NAME for other, m in matches if other is fact)]
    if critical:
        # Each finding once (A20): a reason whose data the renal line already shows is named, not listed again.
        reasons_text = []
        for reason, items in escalation:
            new = [line for line in dict.fromkeys(describe(item) for item in items) if line and line not in shown]
            reasons_text.append("; ".join(new) if new else reason)
        lines.append("**Critical:** " + "; ".join(reasons_text) + ".")
    lines.append(
        "Magnesium and aluminium accumulate in renal insufficiency. Consider, with nephrology, a phosphate binder "
        "without magnesium or aluminium; if this one is continued, monitor serum magnesium and aluminium."
    )
    if aluminium:
        lines.append(
            "Aluminium binders accumulate even when renal function is only mildly reduced and are usually limited to a "
            "few days; aluminium bone disease and encephalopathy are the severe outcomes " + OUTSIDE_ARTICLE + "."
        )
    if {fact.reference for fact, _ in facts.medications_in("med-sucralfate")} & meds.keys():
        lines.append(SUCRALFATE_NOTE)
    same_kind = []
    if ctx.hook != "patient-view":
        same_kind = active_of_same_kind(facts, ("med-magnesium-antacid", "med-aluminium-antacid"),
                                        [fact for fact, _ in meds.values()])
        if note := same_kind_note(same_kind, "a magnesium or aluminium antacid"):
            lines.append(note)
    if already:
        lines.append("Already ordered or referred, so not suggested again: " + ", ".join(already) + ".")
    where = "order" if ctx.hook != "patient-view" else "active"
    return Recommendation(
        indicator="critical" if critical else "warning",
        summary=summary,
        detail="\n\n".join(lines),
        evidence=evidence + same_kind_evidence(same_kind),
        suggestions=suggestions,
        selection_behavior="any",
        override_reasons=OVERRIDE_REASONS,
        finding=f"{where}:{product_key([fact for fact, _ in meds.values()])}",
        orders=judged_orders(meds.values()),
    )
