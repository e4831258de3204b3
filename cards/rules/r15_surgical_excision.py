"""R15: surgical removal for pain, recurrent infection, ulceration or functional impairment; test a site first.

Article: "Indications for surgical removal include pain, recurrent infection, ulceration, and functional impairment.
Because surgical trauma may stimulate calcification, initially treat a test site before pursuing a large excision.
Recurrence is common after excision." Indications (A8), from active Conditions: ulcer (L98.4x, L97.x, SNOMED
46742003, or the calcinosis Condition says ulcerated); recurrent skin infection (L03.x, L08.x: two or more episodes in
12 months, resolved ones included); pain (R52, G89.x, M79.6x, or the calcinosis Condition says painful); contracture or
joint stiffness (M24.5x, M25.6x). Suggests one surgical or dermatology referral; never a large primary excision.
"""

from cds_service.engine.authoring import Recommendation, condition_references, rule

from ..definitions import calcinosis_described_as, recurrent
from ..referrals import referral_unless_recent
from ..wording import inline_list


CAUTION = ("Surgical trauma may stimulate calcification: treat a test site before any large excision; recurrence is "
           "common.")
SURGEONS = ("plastic-surgery", "dermatology", "hand-surgery", "general-surgery")


def indications(facts) -> dict:
    ulcer = list(facts.has_condition("skin-ulcer").evidence) + list(calcinosis_described_as(facts, "calcinosis-ulcerated").evidence)
    pain = list(facts.has_condition("pain").evidence) + list(calcinosis_described_as(facts, "calcinosis-painful").evidence)
    found = {
        "pain": pain,
        "recurrent infection": list(recurrent(facts, "skin-infection").evidence),
        "ulceration": ulcer,
        "functional impairment": list(facts.has_condition("contracture").evidence),
    }
    return {name: items for name, items in found.items() if items}


@rule(
    id="R15",
    title="Surgical excision for pain, recurrent infection, ulceration or impaired function",
    article=("Indications for surgical removal include pain, recurrent infection, ulceration, and functional impairment. "
             "Because surgical trauma may stimulate calcification, initially treat a test site before pursuing a large "
             "excision. Recurrence is common after excision."),
    evidence_level="Expert recommendation of the article (no reference cited)",
    evidence_grade="Expert recommendation",
    exclusions=("A single skin infection in 12 months", "A surgical or dermatology referral in the last 12 months: "
                "listed, no referral proposed"),
    trigger=("Calcinosis and any of: a skin ulcer (or ulcerated calcinosis), two or more skin infections in 12 months, "
             "pain (or painful calcinosis), a joint contracture or stiffness"),
    priority=40,
    in_calciphylaxis_alone=False,  # A17: an option for dystrophic calcinosis, not calciphylaxis
)
def surgical_excision(facts, ctx):
    found = indications(facts)
    if not found:
        return None
    evidence = [{"indication": name, **item} for name, items in found.items() for item in items]
    detail = ("**" + CAUTION + "**\n\n" +
              "\n".join(f"- *{name.capitalize()}:* {inline_list(items)}" for name, items in found.items()))
    brief = CAUTION
    reasons = condition_references(evidence)
    suggestions, existing = [], []
    for specialty in SURGEONS:
        suggestion, recent = referral_unless_recent(facts, specialty, reasons, note=CAUTION)
        if recent:
            existing.append(recent)
        elif suggestion:
            suggestions.append(suggestion)
    if existing:
        suggestions = []
        detail += "\n\nA surgical or dermatology referral was made in the last 12 months."
        brief += " A surgical or dermatology referral was made in the last 12 months."
    summary = "Calcinosis with " + "/".join(found) + ": surgical excision may be indicated; test a small site first."
    if len(summary) >= 140:
        summary = "Calcinosis with pain/infection/ulceration/impairment: surgical excision may be indicated; test a small site first."
    return Recommendation(
        indicator="info",
        summary=summary,
        detail=detail,
        evidence=evidence,
        suggestions=suggestions,
        selection_behavior="at-most-one",
        group="procedures",
        group_line="Surgical excision for " + ", ".join(found),
        brief=brief,
    )
