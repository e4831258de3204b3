"""CDS Hooks 2.0 cards, always valid: required fields present, no null or empty values, summaries under 140
characters, selectionBehavior with suggestions, display on every override reason, deletes by resourceId.

Card and suggestion uuids are derived from the service, the patient and what the card says, so the same data gives
the same cards on every call (order-select fires on each keystroke) and feedback can be tied to a card and its rules.
"""

from __future__ import annotations

import uuid
from typing import Any

from .rules import Action, Link, Recommendation, Suggestion
from .terminology import terminology

SOURCE_LABEL = "Medscape: Calcinosis Cutis Treatment & Management (Nunley, 2020)"
SOURCE_URL = "https://emedicine.medscape.com/article/1103141-treatment"
TOPIC_SYSTEM = "urn:calcinosis-cds:topic"
OVERRIDE_SYSTEM = "urn:calcinosis-cds:override-reason"
EXTENSION_KEY = "calcinosis-cds"
MAX_SUMMARY = 139  # "<140 characters"
_NAMESPACE = uuid.UUID("5b0f3f44-5d0e-4c53-9a5c-4f1b3a7d2c11")

DEFAULT_OVERRIDE_REASONS: tuple[tuple[str, str], ...] = (
    ("benefit-outweighs-risk", "Benefit outweighs the risk for this patient"),
    ("already-addressed", "Already addressed or being monitored"),
    ("data-incorrect", "Patient data shown is incorrect or out of date"),
    ("specialist-directed", "Directed by the treating specialist"),
)


class CardError(ValueError):
    """A card the service built is not valid CDS Hooks; a bug, caught before it reaches a clinician."""


def _action(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"type": action.type, "description": action.description}
    if action.type == "delete":
        if not action.resource_id:
            raise CardError("a delete action needs resourceId")
        out["resourceId"] = action.resource_id
    else:
        if not action.resource:
            raise CardError(f"a {action.type} action needs a resource")
        out["resource"] = action.resource
    return out


def _suggestion(suggestion: Suggestion, card_uuid: uuid.UUID, index: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": suggestion.label,
        "uuid": str(uuid.uuid5(card_uuid, suggestion.key or f"{index}:{suggestion.label}")),
    }
    if suggestion.is_recommended is not None:
        out["isRecommended"] = suggestion.is_recommended
    if suggestion.actions:
        out["actions"] = [_action(a) for a in suggestion.actions]
    return out


def build_card(
    *,
    recommendations: list[Recommendation],
    summary: str,
    indicator: str,
    detail: str,
    topic: tuple[str, str],
    identity: str,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """One card from one recommendation, or from several of one group."""
    if len(summary) > MAX_SUMMARY:
        raise CardError(f"summary of {topic[0]} is {len(summary)} characters; CDS Hooks allows fewer than 140")
    card_uuid = uuid.uuid5(_NAMESPACE, identity)
    card: dict[str, Any] = {
        "uuid": str(card_uuid),
        "summary": summary,
        "indicator": indicator,
        "detail": detail,
        "source": {
            "label": SOURCE_LABEL,
            "url": SOURCE_URL,
            "topic": {"system": TOPIC_SYSTEM, "code": topic[0], "display": topic[1]},
        },
    }
    suggestions: list[Suggestion] = []
    seen: set[str] = set()
    for recommendation in recommendations:
        for suggestion in recommendation.suggestions:
            key = suggestion.key or suggestion.label
            if key not in seen:  # two options proposing the same referral make one suggestion
                seen.add(key)
                suggestions.append(suggestion)
    if suggestions:
        card["suggestions"] = [_suggestion(s, card_uuid, i) for i, s in enumerate(suggestions)]
        behaviors = {r.selection_behavior for r in recommendations if r.suggestions}
        card["selectionBehavior"] = "at-most-one" if behaviors == {"at-most-one"} else "any"
        if card["selectionBehavior"] == "at-most-one" and sum(1 for s in suggestions if s.is_recommended) > 1:
            raise CardError("at-most-one allows at most one recommended suggestion")
    if indicator in ("warning", "critical"):
        reasons: list[tuple[str, str]] = []
        for recommendation in recommendations:
            for reason in recommendation.override_reasons or DEFAULT_OVERRIDE_REASONS:
                if reason not in reasons:
                    reasons.append(reason)
        card["overrideReasons"] = [{"system": OVERRIDE_SYSTEM, "code": c, "display": d} for c, d in reasons]
    links: list[Link] = []
    for recommendation in recommendations:
        links.extend(link for link in recommendation.links if link not in links)
    if links:
        card["links"] = [{"label": link.label, "url": link.url, "type": "absolute"} for link in links]
    evidence = []
    for recommendation in recommendations:
        evidence.extend({"rule": recommendation.rule_id, **item} for item in recommendation.evidence)
    card["extension"] = {
        EXTENSION_KEY: {
            "rules": [r.rule_id for r in recommendations],
            "evidence": evidence,
            "provenance": provenance,
        }
    }
    assert_no_empty_values(card)
    return card


def provenance() -> dict[str, Any]:
    """The knowledge a card was made from (RULES.md §3.16): article version and code-system versions."""
    return dict(terminology().versions)


def assert_no_empty_values(value: Any, path: str = "card") -> None:
    """CDS Hooks: no element may be null or empty ("", [], {}); optional ones without a value are omitted."""
    # One pass without paths (every call checks every card); the path is worked out only to report a failure.
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            if not item:
                break
            stack.extend(item.values())
        elif kind is list:
            if not item:
                break
            stack.extend(item)
        elif item is None or item == "":
            break
    else:
        return
    _raise_at_empty_value(value, path)


def _raise_at_empty_value(value: Any, path: str) -> None:
    if value is None or value == "" or value == [] or value == {}:
        raise CardError(f"{path} is null or empty")
    if isinstance(value, dict):
        for key, item in value.items():
            _raise_at_empty_value(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _raise_at_empty_value(item, f"{path}[{i}]")
