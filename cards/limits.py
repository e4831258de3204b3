"""Who gets no medication or diet proposal, and what the cards say instead (decisions A16, A18).

- A16, children (under 18, or no birth date): the article's treatment evidence is from adults. The options stay on
  the cards, each marked as the paediatric specialist's decision; referrals (a dietitian's included) are still
  proposed, and the warnings fire as for adults. Minocycline from 8 to 17 years is included.
- A18, a diagnosis not confirmed (a provisional or differential Condition, or "r/o calciphylaxis"): the cards of the
  rules resting on it propose no medication or diet; warnings and referrals stay.

The engine applies this policy to every rule's recommendations (cds_service/engine/limits.py), so that no rule
module has to repeat it.
"""

from __future__ import annotations

from cds_service.engine.authoring import PatientFacts, ProposalLimit, ProposalPolicy

from .definitions import paediatric

CHILD_NOTE = "in children, a decision for the paediatric specialist: no medication or diet proposed"
UNKNOWN_AGE_NOTE = f"no birth date on record, so read as a child; {CHILD_NOTE}"
UNCONFIRMED_NOTE = "diagnosis not confirmed: no medication or diet proposed"

# What a card may not propose under a limit: medications and diets (A16, A18). Referrals, laboratory orders and
# the deletion of a draft order are not proposals of treatment and stay.
WITHHELD_RESOURCES = frozenset({"MedicationRequest", "NutritionOrder"})
# The groups whose recommendations are medication or diet options (groups.py): they carry the note even when they
# propose nothing (R04, R08a: information only), since the option itself is the specialist's decision.
OPTION_GROUPS = frozenset({"treatment-options", "diet"})


def patient_limits(facts: PatientFacts) -> tuple[ProposalLimit, ...]:
    child = paediatric(facts)
    if not child:
        return ()
    unknown_age = facts.age_years is None
    return (ProposalLimit("child", UNKNOWN_AGE_NOTE if unknown_age else CHILD_NOTE, child.evidence),)


POLICY = ProposalPolicy(
    withheld_resources=WITHHELD_RESOURCES,
    option_groups=OPTION_GROUPS,
    patient_limits=patient_limits,
    unconfirmed=ProposalLimit("diagnosis-not-confirmed", UNCONFIRMED_NOTE),
)
