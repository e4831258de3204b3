"""The rule authoring API: everything a module of the knowledge layer (cards/) may use, and nothing else.

A rule module imports from here alone (and from other modules of cards/); an import-linter contract keeps it so.
A rule is a function `(facts: PatientFacts, ctx: Context) -> Recommendation | list[Recommendation] | None`
declared with @rule; a clinical definition is a function of the facts declared with @definition (worked out once
per call, whichever rules ask).
"""

from cds_service.record.conditions import ConditionFact, condition_evidence
from cds_service.record.draft_orders import is_intravenous
from cds_service.record.facts import CodedAnswer, Finding, PatientFacts
from cds_service.record.facts import once_per_call as definition
from cds_service.record.fhir_values import codeable_concepts, concept_text
from cds_service.record.labs import LabResult
from cds_service.record.medications import MedicationFact, daily_dose_mg, product_strength_mg
from cds_service.record.mentions import AFFIRMED, NEGATED, UNCERTAIN, Cue, Mention, MentionRules, read_mentions, status_of
from cds_service.record.terminology import PRODUCT_NAME, Match, Terminology, load_terminology

from .drafts import condition_references, delete_suggestion, draft_has_service, drafts_in, lab_suggestion, orders_under_review
from .proposals import diet_order, lab_order, medication_proposal, referral, referral_by_text
from .rules import (
    CONFIRMED,
    PROVISIONAL,
    Action,
    Context,
    FindingKey,
    Gate,
    Group,
    Knowledge,
    Link,
    ProposalLimit,
    ProposalPolicy,
    Recommendation,
    Rule,
    RuleSettings,
    Scope,
    Source,
    Suggestion,
    catalogue_order,
    gate,
    rule,
)

__all__ = [
    # declaring rules and what they return
    "rule", "gate", "definition", "Rule", "Gate", "Recommendation", "Suggestion", "Action", "Link", "Context",
    "RuleSettings", "FindingKey",
    # the scope gate's answer (A1, A17, A18)
    "Scope", "CONFIRMED", "PROVISIONAL",
    # assembling the knowledge
    "Knowledge", "Group", "Source", "Terminology", "load_terminology", "catalogue_order",
    "ProposalLimit", "ProposalPolicy",
    # how a word is meant in a Condition's text (A18)
    "MentionRules", "Cue", "Mention", "read_mentions", "status_of", "AFFIRMED", "NEGATED", "UNCERTAIN",
    # the patient's facts
    "PatientFacts", "Finding", "CodedAnswer", "ConditionFact", "LabResult", "MedicationFact", "Match", "PRODUCT_NAME",
    "condition_evidence", "codeable_concepts", "concept_text", "daily_dose_mg", "product_strength_mg",
    "is_intravenous",
    # draft orders and suggestions
    "orders_under_review", "drafts_in", "draft_has_service", "delete_suggestion", "lab_suggestion",
    "condition_references",
    # FHIR proposals
    "referral", "referral_by_text", "lab_order", "diet_order", "medication_proposal",
]
