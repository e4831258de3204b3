"""Proposals withheld for a whole patient or an unconfirmed diagnosis (decisions A16, A18), applied to every rule.

A child (A16), or a diagnosis that is not confirmed (A18), gets no MedicationRequest or NutritionOrder from any card,
whichever rule would have proposed it; the knowledge's ProposalPolicy says which resource types those are, which
groups hold the medication and diet options, and the words each card says instead. Doing it here, after the rules
have run and before cards are assembled, means no rule module can forget it, and a new rule is covered without a
line of its own. Referrals, laboratory orders and deletions of a draft are untouched, and warnings still fire.

What changes on a limited recommendation:
- the create actions of a withheld resource type go; a suggestion left with no action goes too;
- an option of a medication or diet group, or any recommendation that lost a proposal, says the limit's note first
  (Recommendation.notes, which the card's detail shows before anything else);
- its evidence records the limit, why, and what was taken out ("proposalsWithheld"), for the extension.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

from cds_service.record.facts import PatientFacts

from .rules import CONFIRMED, ProposalLimit, ProposalPolicy, Recommendation, Rule, Scope, Suggestion


def limit_proposals(fired: Mapping[str, list[Recommendation]], rules: Mapping[str, Rule], scope: Scope,
                    facts: PatientFacts, policy: ProposalPolicy) -> None:
    """Apply the policy's limits to the recommendations that fired, in place."""
    patient = tuple(policy.patient_limits(facts))
    for rule_id, recommendations in fired.items():
        limits = patient if scope.confirmed_for(rules[rule_id]) else patient + (
            replace(policy.unconfirmed, evidence=policy.unconfirmed.evidence or _unconfirmed_evidence(scope)),)
        if not limits:
            continue
        for recommendation in recommendations:
            if not recommendation.withheld:
                _limit(recommendation, limits, policy)


def _unconfirmed_evidence(scope: Scope) -> tuple[dict, ...]:
    return tuple(item for item in scope.evidence if item.get("certainty") != CONFIRMED)


def _limit(recommendation: Recommendation, limits: tuple[ProposalLimit, ...], policy: ProposalPolicy) -> None:
    kept: list[Suggestion] = []
    removed: list[str] = []
    for suggestion in recommendation.suggestions:
        actions = tuple(a for a in suggestion.actions if not _withheld(a.type, a.resource, policy))
        if len(actions) == len(suggestion.actions):
            kept.append(suggestion)
            continue
        removed.append(suggestion.label)
        if actions:
            kept.append(replace(suggestion, actions=actions))
    if not removed and recommendation.group not in policy.option_groups:
        return
    recommendation.suggestions = kept
    for limit in limits:
        if limit.note not in recommendation.notes:
            recommendation.notes.append(limit.note)
        item: dict = {"proposalsWithheld": limit.reason, "note": limit.note}
        if removed:
            item["removed"] = removed
        if limit.evidence:
            item["because"] = list(limit.evidence)
        recommendation.evidence.append(item)


def _withheld(action_type: str, resource: dict | None, policy: ProposalPolicy) -> bool:
    return action_type == "create" and isinstance(resource, dict) and resource.get("resourceType") in policy.withheld_resources
