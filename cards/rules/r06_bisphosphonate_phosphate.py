"""R06: etidronate and other bisphosphonates need prolonged treatment and may cause paradoxical hyperphosphatemia.

Order hooks only (clinical specification R06). The trigger's "draft or active" is read as the status of the order in draftOrders:
order-sign may carry revised orders that are already active (order-sign 1.1.0), and both count. An active
bisphosphonate on the record that is not being ordered gives no card on an order hook: the card is about the order
at hand, and the table gives R06 no patient-view.

Info, with a phosphate monitoring order (2777-1) at baseline and periodically; a warning, which also offers to remove
the draft, when the latest phosphate (90 days) is already high (age-adjusted: the lab's range, its flag, or the adult
4.5 mg/dL; never the adult limit for a child).
"""

from cds_service.engine.authoring import Recommendation, delete_suggestion, drafts_in, lab_suggestion, rule

from ..findings import judged_orders
from ..definitions import lab_high
from ..wording import bullet_list, medication_line


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
    trigger=(
        "A bisphosphonate (etidronate, alendronate, pamidronate, risedronate, ibandronate, zoledronic acid...: ATC "
        "M05BA or the name) in a draft order (order-select: the selected one; order-sign: any) of a patient with "
        "calcinosis. Warning when the latest phosphate (90 days) is high (age-adjusted)"
    ),
    hooks=("order-select", "order-sign"),
    priority=30,
)
def bisphosphonate_phosphate(facts, ctx):
    drafts = drafts_in(facts, ctx, "med-bisphosphonate")
    if not drafts:
        return None
    high = lab_high(facts, "phosphate")
    latest = facts.latest_lab("phosphate")
    warning = bool(high)

    evidence = [fact.evidence(match) for fact, match in drafts]
    # lab_high gives the latest result with its assessment, high or not.
    evidence += [{"finding": "baseline phosphate", **item} for item in high.evidence]

    suggestions, already = [], None
    if warning:
        suggestions += [s for s in (delete_suggestion(f, "bisphosphonate with high phosphate") for f, _ in drafts) if s]
    lab, already = lab_suggestion(
        facts, ctx, PHOSPHATE_LAB[0], PHOSPHATE_LAB[1], "Order serum phosphate (baseline and periodic)", note=MONITORING_NOTE
    )
    if lab:
        suggestions.append(lab)

    lines = [
        f"The article: *\"{ARTICLE}\"*",
        "**Ordered:**\n\n" + "\n".join(f"- {medication_line(fact)}" for fact, _ in drafts),
        "This is not a rapid-acting treatment: any effect on calcinosis needs prolonged use. Monitor serum phosphate "
        "at baseline and periodically (every 3 months is a suggested interval; the article gives none).",
    ]
    if warning:
        lines.append("**Phosphate is already high**, and a bisphosphonate can raise it further:\n\n" + bullet_list(list(high.evidence)))
    elif latest is not None:
        lines.append("Latest phosphate (not high):\n\n" + bullet_list(list(high.evidence) or [latest.evidence()]))
    else:
        lines.append("No usable phosphate result in the last 90 days: obtain a baseline before starting.")
    if already:
        lines.append(f"A phosphate test is already among the draft orders ({already}), so it is not suggested again.")
    lines.append(
        "Renal-function cautions of bisphosphonate labelling are outside the article and are not assessed here "
        "(for clinical review)."
    )
    if warning:
        summary = "Bisphosphonate ordered with phosphate already high: it can paradoxically raise phosphate. Reconsider; monitor serum P."
    else:
        summary = "Bisphosphonate for calcinosis: needs prolonged use; can paradoxically raise phosphate. Monitor serum P."
    return Recommendation(
        indicator="warning" if warning else "info",
        summary=summary,
        detail="\n\n".join(lines),
        evidence=evidence,
        suggestions=suggestions,
        selection_behavior="any",
        orders=judged_orders(drafts),
    )
