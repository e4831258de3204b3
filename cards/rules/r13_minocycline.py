"""R13: minocycline 50-100 mg/day in calcinosis with (limited) systemic sclerosis.

Article: "Minocycline may be another treatment option. Nine patients with cutaneous calcification associated with
limited systemic sclerosis were treated with 50-100 mg/day of minocycline. Improvement was noted within 1-7 months in
8 of the patients." [36] = Robertson LP et al., Ann Rheum Dis 2003;62:267-269 (S13, VERIFIED). Fires on systemic
sclerosis (M34.1 preferred; any M34.x; SNOMED 89155008; not morphea). The only rule with a dose: a MedicationRequest
proposal for minocycline 50 mg orally once daily (SCD 197985), which may be raised to 100 mg/day.

Withheld (no proposal, and the treatment-options card says why; class labelling, outside the article): pregnancy (A9),
age under 8 years or unknown age (tooth discoloration), an allergy or intolerance to a tetracycline, or an allergy
list that could not be obtained. Not proposed again when the patient already takes minocycline.
"""

from cds_service.engine.authoring import Action, Recommendation, Suggestion, condition_references, medication_proposal, rule

from ..definitions import age_under, pregnant
from ..wording import OPTION_NOT_STANDARD, OUTSIDE_ARTICLE, inline_list


MINOCYCLINE_50 = ("197985", "minocycline 50 MG Oral Capsule")  # RxNorm SCD, VERIFIED (S2)
DOSE_MG_PER_DAY = 50.0  # the lower end of the article's 50-100 mg/day
MINIMUM_AGE = 8.0


@rule(
    id="R13",
    title="Minocycline in calcinosis with systemic sclerosis",
    article=("Minocycline may be another treatment option. Nine patients with cutaneous calcification associated with "
             "limited systemic sclerosis were treated with 50-100 mg/day of minocycline. Improvement was noted within "
             "1-7 months in 8 of the patients."),
    references=(36,),
    evidence_level="Open-label case series (n=9), Robertson 2003 Ann Rheum Dis",
    evidence_grade="Series of 9",
    exclusions=("Pregnancy", "Age under 8 years, or unknown", "An allergy or intolerance to a tetracycline, or an "
                "allergy list that could not be obtained", "Localized scleroderma (morphea)",
                "Minocycline already taken (listed, not proposed again)"),
    trigger=("Calcinosis and systemic sclerosis (limited cutaneous M34.1 preferred; any M34.x; SNOMED 89155008). "
             "Withheld in pregnancy, under 8 years (or unknown age), with a tetracycline allergy or no allergy list"),
    priority=63,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def minocycline(facts, ctx):
    ssc = facts.has_condition("systemic-sclerosis")
    if not ssc:
        return None
    evidence = list(ssc.evidence)
    limited = facts.has_condition("limited-systemic-sclerosis")

    withheld = []
    if (pregnancy := pregnant(facts)):
        withheld.append(("pregnancy", "the patient is pregnant (tetracyclines are avoided in pregnancy)", pregnancy.evidence))
    under_8 = age_under(facts, MINIMUM_AGE)
    if under_8 is None:
        withheld.append(("age unknown", "the patient's age is unknown (tetracyclines are avoided under 8 years)", ()))
    elif under_8:
        withheld.append(("age under 8", "the patient is under 8 years old (tetracyclines discolour developing teeth)",
                         ({"ageYears": round(facts.age_years, 1)},)))
    if (allergy := facts.allergy_to("tetracycline-allergy")):
        withheld.append(("tetracycline allergy", "an allergy or intolerance to a tetracycline is recorded", allergy.evidence))
    elif facts.data_missing("allergies"):
        withheld.append(("allergy list unavailable", "the allergy list could not be obtained, so a tetracycline allergy cannot be excluded", ()))
    if withheld:
        return Recommendation(
            indicator="info",
            summary="Minocycline not suggested: " + ", ".join(short for short, _, _ in withheld) + ".",
            detail=("Minocycline (50-100 mg/day improved calcinosis in 8 of 9 patients with limited systemic sclerosis) "
                    "is not suggested because " + "; ".join(why for _, why, _ in withheld) + " " + OUTSIDE_ARTICLE + "."),
            brief="; ".join(why for _, why, _ in withheld) + " " + OUTSIDE_ARTICLE + ".",
            evidence=evidence + [{"withheldFor": short, **item} for short, _, items in withheld for item in items],
            group="treatment-options",
            group_line="Minocycline",
            withheld=True,
        )

    brief = "8 of 9 improved in limited SSc; may stain deposits blue-black."
    if not limited:
        brief += " SSc not coded as limited."
    detail = ("Minocycline 50-100 mg/day. " + OPTION_NOT_STANDARD + "\n\n**Systemic sclerosis:** " +
              inline_list(evidence) + ".\n\nIn an open-label series of 9 patients with limited systemic sclerosis, 8 "
              "improved within 1 to 7 months (ulceration and inflammation more than size). It can stain the deposits "
              "blue-black." + (" This patient's systemic sclerosis is not coded as limited." if not limited else "") +
              " Pregnancy, age under 8 and tetracycline allergy were checked " + OUTSIDE_ARTICLE + ".")
    taking = facts.taking("med-minocycline")
    suggestions = []
    if taking:
        evidence.extend({"flag": "already taking minocycline", **item} for item in taking.evidence)
        detail += "\n\nAlready taking minocycline: not proposed again."
        brief += " Already taking it."
    else:
        resource = medication_proposal(
            facts.patient_id,
            rxnorm=MINOCYCLINE_50,
            text="Minocycline 50 mg oral capsule",
            reason_references=condition_references(evidence),
            dose_mg_per_day=DOSE_MG_PER_DAY,
            note="Article/Robertson 2003: 50-100 mg/day; may be increased to 100 mg once daily. Off-label for calcinosis.",
        )
        suggestions.append(Suggestion("Propose minocycline 50 mg orally once daily",
                                      (Action("create", "Minocycline 50 mg once daily (proposal; 50-100 mg/day in the series)", resource=resource),),
                                      key="minocycline"))
    return Recommendation(
        indicator="info",
        summary=("Calcinosis with limited SSc: minocycline 50-100 mg/day reduced ulceration/inflammation in 8 of 9 patients."
                 if limited else
                 "Calcinosis with SSc: minocycline 50-100 mg/day helped 8 of 9 patients with limited SSc (series)."),
        detail=detail,
        evidence=evidence,
        suggestions=suggestions,
        selection_behavior="at-most-one",
        group="treatment-options",
        group_line="Minocycline 50-100 mg/day",
        brief=brief,
    )
