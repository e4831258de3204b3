"""R04: magnesium or aluminium antacids as phosphate binders in hyperphosphatemia, never with renal insufficiency.

Article: "Magnesium or aluminum antacids may be effective phosphate binders in patients with hyperphosphatemia.
However, the use of these agents in patients with renal insufficiency may result in magnesium or aluminum toxicity."
Fires on hyperphosphatemia (the latest phosphate is high by A3, or a specific diagnosis that no recent phosphate
contradicts; never E83.39 alone) when there is NO renal insufficiency (A4). With renal insufficiency the option is
withheld and the card says why (R05, owned by the order rules, warns about such an order). Information only: no
medication is proposed (no dose in the article, ingredient codes UNVERIFIED); when no eGFR is on file, a renal
function test is proposed first. Aluminium: short courses only (CMDT, outside the article).
"""

from cds_service.engine.authoring import Action, Recommendation, Suggestion, condition_references, lab_order, rule

from ..definitions import gate_conditions, hyperphosphatemia, renal_insufficiency
from ..wording import OPTION_NOT_STANDARD, OUTSIDE_ARTICLE, inline_list


ARTICLE = ("Magnesium or aluminum antacids may be effective phosphate binders in patients with hyperphosphatemia. "
           "However, the use of these agents in patients with renal insufficiency may result in magnesium or "
           "aluminum toxicity.")


@rule(
    id="R04",
    title="Magnesium or aluminium antacids as phosphate binders (not in renal insufficiency)",
    article=ARTICLE,
    evidence_level="Not graded in the article (\"may be effective\"; no reference cited)",
    evidence_grade="Not graded",
    exclusions=("Renal insufficiency: listed as not suggested, with why (the order rule R05 warns about such an order)",
                "Hyperphosphatemia coded E83.39 alone, or a diagnosis a recent normal phosphate contradicts"),
    trigger=(
        "Calcinosis and hyperphosphatemia (latest phosphate high, or a hyperphosphatemia diagnosis other than E83.39 "
        "alone that no recent phosphate contradicts), and NO renal insufficiency. With renal insufficiency the option "
        "is withheld and the card says why"
    ),
    priority=66,
)
def antacid_phosphate_binder(facts, ctx):
    high_p = hyperphosphatemia(facts)
    if not high_p:
        return None
    evidence = list(high_p.evidence)
    ri = renal_insufficiency(facts)
    if ri:
        return Recommendation(
            indicator="info",
            summary="Mg/Al antacids as phosphate binders: not suggested, renal insufficiency (risk of Mg/Al toxicity).",
            detail=("Magnesium or aluminium antacids are not suggested as phosphate binders because renal insufficiency "
                    "is recorded: they may cause magnesium or aluminium toxicity."),
            brief="renal insufficiency is recorded (risk of magnesium or aluminium toxicity).",
            evidence=evidence + [{"flag": "renal insufficiency", **item} for item in ri.evidence],
            group="treatment-options",
            group_line="Mg/Al antacid as phosphate binder",
            withheld=True,
        )
    caveat = ("**Avoid in renal insufficiency** (magnesium or aluminium toxicity). Aluminium binders accumulate even "
              "with mildly reduced renal function: short courses only, a few days " + OUTSIDE_ARTICLE + ".")
    detail = ("Magnesium or aluminium antacids may be effective phosphate binders in hyperphosphatemia. " + OPTION_NOT_STANDARD +
              "\n\n**Hyperphosphatemia:** " + inline_list(evidence) + ".\n\n" + caveat +
              " Combine with a phosphorus-restricted diet. No product or dose is proposed: the article gives none.")
    brief = "Avoid in renal insufficiency; aluminium only in short courses " + OUTSIDE_ARTICLE + "."
    suggestions = []
    if facts.latest_lab("egfr") is None and facts.latest_lab("creatinine") is None:
        no_renal = ("**No eGFR or creatinine in the last 12 months:** check renal function before any magnesium or "
                    "aluminium antacid.")
        detail += "\n\n" + no_renal
        brief += " No renal function on file: check it first."
        evidence.append({"note": "no eGFR or creatinine result in the look-back window"})
        reasons = condition_references(evidence) or [c.reference for c in gate_conditions(facts)]
        suggestions.append(Suggestion(
            "Check renal function first (creatinine and eGFR)",
            (Action("create", "Creatinine (2160-0) (proposal)", resource=lab_order(
                facts.patient_id, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", reasons)),
             Action("create", "eGFR, CKD-EPI 2021 (98979-8) (proposal)", resource=lab_order(
                 facts.patient_id, "98979-8", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by Creatinine-based formula (CKD-EPI 2021)", reasons))),
            key="renal-function",
        ))
    return Recommendation(
        indicator="info",
        summary="Hyperphosphatemia with calcinosis: Mg/Al antacids can bind phosphate; avoid if renal function is impaired.",
        detail=detail,
        evidence=evidence,
        suggestions=suggestions,
        selection_behavior="any",
        group="treatment-options",
        group_line="Mg/Al antacid as phosphate binder",
        brief=brief,
    )
