"""R20: a ketogenic diet may help some individuals (theoretical: ketoacids lower tissue pH).

Article (Diet): "A ketogenic diet that stresses the consumption of free fatty acids may be helpful in some
individuals. An accumulation of ketoacids ... may lower tissue pH and prevent crystallization." Low priority, in the
diet card; suggests only a dietitian referral, never a ketogenic NutritionOrder. Flags, outside the article:
pregnancy, SGLT2 inhibitor use (ketoacidosis), a child (specialist supervision), lipid disorders. Not shown when a
dietitian referral or dietetic encounter is on record in the last 12 months (clinical specification §3.15).
"""

from cds_service.engine.authoring import Recommendation, rule

from ..definitions import is_child, pregnant
from ..referrals import referral_unless_recent
from ..wording import OUTSIDE_ARTICLE


@rule(
    id="R20",
    title="Ketogenic diet (theoretical)",
    article=("A ketogenic diet that stresses the consumption of free fatty acids may be helpful in some individuals. An "
             "accumulation of ketoacids, the metabolic product of fatty acids, may lower tissue pH and prevent "
             "crystallization."),
    evidence_level="Theoretical (article: \"may be helpful in some individuals\")",
    evidence_grade="Theoretical",
    exclusions=("A dietitian referral or dietetic encounter in the last 12 months",),
    trigger=("Calcinosis (any patient in scope), unless a dietitian was referred or seen in the last 12 months. "
             "Flags pregnancy, SGLT2 inhibitors, children and lipid disorders"),
    priority=90,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def ketogenic_diet(facts, ctx):
    dietitian, existing = referral_unless_recent(facts, "dietitian")
    if existing:
        return None
    flags = []
    if (pregnancy := pregnant(facts)):
        flags.append(("pregnancy", "the patient is pregnant: a ketogenic diet is not advised without specialist advice", pregnancy.evidence))
    if (sglt2 := facts.taking("med-sglt2-inhibitor")):
        flags.append(("SGLT2 inhibitor", "an SGLT2 inhibitor is taken: risk of (euglycaemic) ketoacidosis", sglt2.evidence))
    if is_child(facts):
        flags.append(("child", "the patient is a child: only under specialist (paediatric dietetic) supervision",
                      ({"ageYears": round(facts.age_years, 1)},)))
    if (lipids := facts.has_condition("lipid-disorder")):
        flags.append(("lipid disorder", "a lipid disorder is recorded: a high-fat diet may worsen it", lipids.evidence))
    brief = "Only a dietitian should plan it; nothing is ordered."
    evidence: list[dict] = [{"basis": "every patient with calcinosis cutis (low priority)"}]
    if flags:
        brief += " **Cautions** " + OUTSIDE_ARTICLE + ": " + "; ".join(why for _, why, _ in flags) + "."
        evidence = [{"flag": name, **item} for name, _, items in flags for item in items]
    detail = ("A ketogenic diet, rich in free fatty acids, may help some patients: ketoacids may lower tissue pH "
              "(theoretical). " + brief)
    return Recommendation(
        indicator="info",
        summary="A ketogenic diet may help some patients with calcinosis cutis (theoretical: lowers tissue pH).",
        detail=detail,
        evidence=evidence,
        suggestions=[dietitian] if dietitian else [],
        selection_behavior="at-most-one",
        group="diet",
        group_line="Ketogenic diet",
        brief=brief,
    )
