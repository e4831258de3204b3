"""R23: calcium-phosphate product above 70 mg²/dL²: high risk of metastatic calcification (overview-derived).

From the same monograph's overview, not its treatment section (S14): "ectopic calcification can occur ... when the
calcium-phosphate product exceeds 70 mg²/dL²". Ca × P = total calcium (else a lab-reported corrected calcium; never a
calculated one) × the latest phosphate, both converted to mg/dL, drawn within one day of each other (A3). Never
computed from unmatched dates or unknown units. In a child (whose normal phosphate is higher) the product counts only
when the laboratory itself flags the phosphate or calcium high. A warning, naming its own source (the overview, A20);
it points to what R01, R17 (nephrology) and R18 say.
"""

from cds_service.engine.authoring import Recommendation, rule

from ..definitions import assess_high, calcium_phosphate_product, is_child
from ..sources import MEDSCAPE_OVERVIEW
from ..wording import bullet_list


THRESHOLD = 70.0  # mg²/dL² (S14)
MMOL2_PER_MG2 = 0.0806  # clinical specification §1.3


@rule(
    id="R23",
    title="Calcium-phosphate product above 70 mg²/dL²",
    article=("Derived from the same monograph's overview (not its treatment text): ectopic calcification can occur when "
             "the calcium-phosphate product exceeds 70 mg²/dL²."),
    evidence_level="Pathophysiology statement of the monograph's overview (S14)",
    trigger=("Calcinosis and total (or lab-corrected) calcium × phosphate > 70 mg²/dL², both in mg/dL and drawn within "
             "one day of each other, from the latest phosphate (90 days); in children only when the lab flags one high"),
    evidence_grade="Pathophysiology statement of the monograph's overview",
    exclusions=("Calcium and phosphate drawn more than a day apart, a unit that cannot be converted, or a calculated "
                "corrected calcium", "A child, unless the laboratory flags the calcium or phosphate high"),
    outside_article="Outside the treatment section: derived from the monograph's overview (Pathophysiology), S14.",
    source=MEDSCAPE_OVERVIEW,
    priority=30,
)
def calcium_phosphate_product_above_70(facts, ctx):
    product = calcium_phosphate_product(facts)
    if product is None:
        return None
    value, calcium, phosphate = product
    if value <= THRESHOLD:
        return None
    if facts.age_years is None or is_child(facts):
        lab_flags = [r for r in (calcium, phosphate)
                     if (r.reference_high is not None or r.interpretation) and assess_high(r, facts.age_years).high]
        if not lab_flags:
            return None
    evidence = [
        {"caTimesP": round(value, 1), "unit": "mg2/dL2", "threshold": f"> {THRESHOLD:g} mg2/dL2"},
        calcium.evidence(),
        phosphate.evidence(),
    ]
    detail = (f"**Ca × P {value:.1f} mg²/dL²** ({value * MMOL2_PER_MG2:.2f} mmol²/L²), above 70: the monograph's "
              "overview says ectopic calcification can then occur without preceding tissue damage.\n\n"
              + bullet_list([calcium.evidence(), phosphate.evidence()]) +
              "\n\nReview phosphate and calcium control: treat the underlying cause, involve nephrology and restrict "
              "dietary phosphorus.")
    return Recommendation(
        indicator="warning",
        summary="Ca×P product >70 mg²/dL²: high risk of metastatic calcification. Review phosphate/calcium control.",
        detail=detail,
        evidence=evidence,
    )
