"""R06: etidronate and other bisphosphonates need prolonged treatment and may cause paradoxical hyperphosphatemia.

On the order hooks (decision A21: both, order-select judging only the selected orders) it judges the draft orders;
the trigger's "draft or active" is read as the status of the order in draftOrders: order-sign may carry revised
orders that are already active (order-sign 1.1.0), and both count. On patient-view (A21) it judges a bisphosphonate
active on the record. An active bisphosphonate that is not being ordered gives no card on an order hook: the card is
about the order at hand (the order card names it as a product of the same kind already active, A20).

Info, with a phosphate monitoring order (2777-1) at baseline and periodically; a warning when the latest phosphate
(90 days) is already high (age-adjusted: the lab's range, its flag, or the adult 4.5 mg/dL; never the adult limit for
a child), which on an order hook also offers to remove the draft.
"""

from cds_service.engine.authoring import Recommendation, delete_suggestion, drafts_in, lab_suggestion, rule

from ..findings import judged_orders
from ..definitions import lab_high
from ..orders import active_of_same_kind, product_key, same_kind_evidence, same_kind_note
from ..wording import OUTSIDE_ARTICLE, inline_list, product_line


PHOSPHATE_LAB = ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma")  # VERIFIED (S8, S9)
MONITORING_NOTE = (
    "Serum phosphate at baseline and periodically during bisphosphonate treatment (paradoxical hyperphosphatemia). "
    "Suggested interval every 3 months: a design choice, the article gives none."
)
ARTICLE = (
    "Sodium etidronate and diphosphonates may reduce bone turnover and inhibit the growth of ectopic hydroxyapatite "
    "crystals. However, prolonged treatment is necessary, and paradoxical hyperphosphatemia may result."
)


@rule(
    id="R06",
    title="Bisphosphonates: prolonged treatment and paradoxical hyperphosphatemia",
    article=ARTICLE,
    evidence_level="Statement of the article (no reference cited)",
    exclusions=("On an order hook, a bisphosphonate already active that is not being ordered (the order card names "
                "it); on order-select, draft orders that are not selected",),
    trigger=(
        "A bisphosphonate (etidronate, alendronate, pamidronate, risedronate, ibandronate, zoledronic acid...: ATC "
        "M05BA or the name) in a draft order (order-select: the selected one; order-sign: any) or, on patient-view, "
        "active on the record, in a patient with calcinosis. Warning when the latest phosphate (90 days) is high "
        "(age-adjusted)"
    ),
    hooks=("order-select", "order-sign", "patient-view"),
    priority=30,
)
def bisphosphonate_phosphate(facts, ctx):
    ordering = ctx.hook != "patient-view"
    if ordering:
        found = drafts_in(facts, ctx, "med-bisphosphonate")
    else:
        found = list(facts.medications_in("med-bisphosphonate", include_drafts=False))
    if not found:
        return None
    products = [fact for fact, _ in found]
    high = lab_high(facts, "phosphate")
    latest = facts.latest_lab("phosphate")
    warning = bool(high)

    evidence = [fact.evidence(match) for fact, match in found]
    # lab_high gives the latest result with its assessment, high or not.
    evidence += [{"finding": "baseline phosphate", **item} for item in high.evidence]

    suggestions = []
    if warning and ordering:
        suggestions += [s for s in (delete_suggestion(f, "bisphosphonate with high phosphate") for f in products) if s]
    lab, already = lab_suggestion(
        facts, ctx, PHOSPHATE_LAB[0], PHOSPHATE_LAB[1], "Order serum phosphate (baseline and periodic)", note=MONITORING_NOTE
    )
    if lab:
        suggestions.append(lab)

    lines = ["**" + ("Ordered" if ordering else "Active on the record") + ":** "
             + "; ".join(product_line(fact) for fact in products) + "."]
    if warning:
        lines.append("**Phosphate is already high**, and a bisphosphonate can raise it further: "
                     + inline_list(list(high.evidence)) + ".")
    elif latest is not None:
        lines.append("Latest phosphate, not high: " + inline_list(list(high.evidence) or [latest.evidence()]) + ".")
    else:
        lines.append("No usable phosphate result in the last 90 days: obtain a baseline"
                     + (" before starting." if ordering else "."))
    lines.append("Any effect on calcinosis needs prolonged treatment. Monitor serum phosphate at baseline and "
                 "periodically (every 3 months is a suggested interval; the article gives none).")
    same_kind = active_of_same_kind(facts, ("med-bisphosphonate",), products) if ordering else []
    if note := same_kind_note(same_kind, "a bisphosphonate"):
        lines.append(note)
    if already:
        lines.append("A phosphate test is already among the draft orders, so it is not suggested again.")
    lines.append("Renal cautions of bisphosphonate labelling are not assessed here " + OUTSIDE_ARTICLE + ".")
    if ordering and warning:
        summary = "Bisphosphonate ordered with phosphate already high: it can paradoxically raise phosphate. Reconsider; monitor serum P."
    elif ordering:
        summary = "Bisphosphonate for calcinosis: needs prolonged use; can paradoxically raise phosphate. Monitor serum P."
    elif warning:
        summary = "Bisphosphonate with phosphate already high: it can paradoxically raise phosphate. Review it; monitor serum P."
    else:
        summary = "Bisphosphonate on record: it can paradoxically raise phosphate in calcinosis. Monitor serum phosphate."
    return Recommendation(
        indicator="warning" if warning else "info",
        summary=summary,
        detail="\n\n".join(lines),
        evidence=evidence + same_kind_evidence(same_kind),
        suggestions=suggestions,
        selection_behavior="any",
        finding=("order:" if ordering else "active:") + product_key(products),
        orders=judged_orders(products),
    )
