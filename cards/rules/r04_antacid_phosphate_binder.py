"""R04: magnesium or aluminium antacids as phosphate binders in hyperphosphatemia, never with renal insufficiency.

Article: "Magnesium or aluminum antacids may be effective phosphate binders in patients with hyperphosphatemia.
However, the use of these agents in patients with renal insufficiency may result in magnesium or aluminum toxicity."
Fires on hyperphosphatemia (the latest phosphate is high by A3, or a specific diagnosis that no recent phosphate
contradicts; never E83.39 alone). With renal insufficiency (A4, A13) the option is withheld and the card says why (R05,
owned by the order rules, warns about such an order). The option is offered only when renal function is known to be
normal (A13: a renal result of the last 90 days that is not renal insufficiency); otherwise the card lists it with
"check renal function first" and proposes a creatinine test, unless R01's missing work-up already proposes one.
Information only: no medication is proposed (no dose in the article, ingredient codes UNVERIFIED). Aluminium: short
courses only (CMDT, outside the article).
"""

from cds_service.engine.authoring import Recommendation, condition_references, lab_suggestion, rule

from ..definitions import (
    gate_conditions,
    hyperphosphatemia,
    metabolic_workup_missing,
    renal_function_known_normal,
    renal_insufficiency,
)
from ..wording import OPTION_NOT_STANDARD, OUTSIDE_ARTICLE, describe, inline_list

CREATININE_LAB = ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma")  # VERIFIED (S2); A13 names this test


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
        "alone that no recent phosphate contradicts), and NO renal insufficiency (eGFR reported or calculated from a "
        "newer creatinine). With renal insufficiency the option is withheld and the card says why; unless renal "
        "function is known to be normal (a renal result of the last 90 days), the option is listed with \"check "
        "renal function first\" and a creatinine test"
    ),
    priority=66,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
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
    known = renal_function_known_normal(facts)
    if known:
        return Recommendation(
            indicator="info",
            summary="Hyperphosphatemia with calcinosis: Mg/Al antacids can bind phosphate; avoid if renal function is impaired.",
            detail=detail,
            evidence=evidence + [{"finding": "renal function normal", **item} for item in known.evidence],
            group="treatment-options",
            group_line="Mg/Al antacid as phosphate binder",
            brief=brief,
        )
    # A13: renal function unknown (no recent renal result, or a child's creatinine without a height): the option is
    # listed, but only after a renal function test.
    labs_unknown = bool(facts.data_missing("observations"))
    notes = ["the laboratory results could not be obtained"] if labs_unknown else []
    why = "; ".join(notes + [part for item in known.evidence
                             for part in (item.get("note"), describe(item) if "analyte" in item else None) if part])
    detail += (f"\n\n**Check renal function first:** not known to be normal ({why}). No magnesium or aluminium "
               "antacid before a creatinine shows no renal insufficiency.")
    brief += " Check renal function first: not known to be normal."
    evidence += [{"finding": "renal function unknown", **item} for item in known.evidence]
    suggestions = []
    # Not when R01 proposes the whole work-up (a creatinine included), nor when the results could not be obtained
    # (a test may well be on file: asking to check is enough).
    if not labs_unknown and not metabolic_workup_missing(facts):
        reasons = condition_references(evidence) or [c.reference for c in gate_conditions(facts)]
        suggestion, _ = lab_suggestion(facts, ctx, *CREATININE_LAB, "Check renal function first: creatinine", reasons)
        if suggestion is not None:
            suggestions.append(suggestion)
    return Recommendation(
        indicator="info",
        summary="Hyperphosphatemia with calcinosis: Mg/Al antacids can bind phosphate; check renal function first.",
        detail=detail,
        evidence=evidence,
        suggestions=suggestions,
        selection_behavior="any",
        group="treatment-options",
        group_line="Mg/Al antacid as phosphate binder",
        brief=brief,
    )
