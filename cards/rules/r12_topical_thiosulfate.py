"""R12: ulcerative or tumoral calcinosis may respond to topical or intralesional sodium thiosulfate 25%.

Article: "Reports suggest that ulcerative calcinosis cutis and tumoral calcinosis may respond to topical or
intralesional sodium thiosulfate 25%." [32, 33, 34, 35]. Fires on tumoral calcinosis (the words, A1) or an ulcerated
calcinosis: the calcinosis Condition says so, or an active skin ulcer (L98.4x, L97.x, SNOMED 46742003) at a calcinosis
site. An ulcer is taken to be at a calcinosis site unless both Conditions give body sites and none is shared.
Information only: off-label, compounding needed, and 25% is the only parameter given.
"""

from cds_service.engine.authoring import Recommendation, codeable_concepts, condition_evidence, rule

from ..definitions import calcinosis_described_as, gate_conditions, tumoral_calcinosis
from ..wording import OPTION_NOT_STANDARD, inline_list


def _sites(condition) -> set[str]:
    return {
        f"{c.get('system')}|{c.get('code')}"
        for site in condition.body_site
        for c in codeable_concepts(site.get("coding"))
        if c.get("code")
    } | {site["text"].strip().lower() for site in condition.body_site if isinstance(site.get("text"), str)}


def ulcer_at_calcinosis_site(facts):
    """(evidence, note) of skin ulcers that may be at a calcinosis site."""
    calcinosis_sites = set().union(*(_sites(c) for c in gate_conditions(facts))) if gate_conditions(facts) else set()
    evidence = list(calcinosis_described_as(facts, "calcinosis-ulcerated").evidence)
    for condition, match in facts.conditions_in("skin-ulcer"):
        sites = _sites(condition)
        if sites and calcinosis_sites and not sites & calcinosis_sites:
            continue  # both sides name body sites and none is shared: not at a calcinosis site
        evidence.append(condition_evidence(condition, match))
    return evidence


@rule(
    id="R12",
    title="Topical or intralesional sodium thiosulfate 25% (ulcerative or tumoral calcinosis)",
    article=("Reports suggest that ulcerative calcinosis cutis and tumoral calcinosis may respond to topical or "
             "intralesional sodium thiosulfate 25%."),
    references=(32, 33, 34, 35),
    evidence_level="Case reports only",
    evidence_grade="Case reports",
    exclusions=("An ulcer at a body site that no calcinosis Condition shares",),
    trigger=("Tumoral calcinosis (the words), or ulcerated calcinosis: the calcinosis condition says ulcerated, or an "
             "active skin ulcer (L98.4x, L97.x, SNOMED 46742003) at a calcinosis site"),
    priority=68,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def topical_thiosulfate(facts, ctx):
    tumoral = tumoral_calcinosis(facts)
    ulcer = ulcer_at_calcinosis_site(facts)
    if not tumoral and not ulcer:
        return None
    evidence = list(tumoral.evidence) + ulcer
    kinds = " and ".join(k for k, present in (("tumoral calcinosis", tumoral), ("ulceration", ulcer)) if present)
    brief = f"For {kinds}."
    if ulcer and not tumoral:
        brief += " Confirm the ulcer is at a calcinosis site."
    detail = ("Ulcerative calcinosis cutis and tumoral calcinosis may respond to topical or intralesional sodium "
              "thiosulfate 25%. " + OPTION_NOT_STANDARD + " A topical preparation must be compounded; 25% is the "
              "only parameter given.\n\n**Found:** " + inline_list(evidence) + "." +
              ("\n\nConfirm that the ulcer is at a calcinosis site." if ulcer and not tumoral else ""))
    return Recommendation(
        indicator="info",
        summary="Ulcerative or tumoral calcinosis: topical/intralesional sodium thiosulfate 25% may help (case reports).",
        detail=detail,
        evidence=evidence,
        group="treatment-options",
        group_line="Sodium thiosulfate 25%, topical or intralesional",
        brief=brief,
    )
