"""CDS Hooks 2.0 cards as typed values, checked when they are made and written to JSON once, at the edge.

A card is always valid: required fields present, no null or empty values, a summary under 140 characters,
selectionBehavior with suggestions (at most one recommended under at-most-one), a display on every override reason,
deletes by resourceId and creates with a resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

INDICATORS = ("critical", "warning", "info")
SELECTION_BEHAVIORS = ("at-most-one", "any")
MAX_SUMMARY = 139  # "<140 characters"


class CardError(ValueError):
    """A card the service built is not valid CDS Hooks; a bug, caught before it reaches a clinician."""


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str

    def to_json(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True, slots=True)
class CardSource:
    label: str
    url: str
    topic: Coding | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "url": self.url}
        if self.topic is not None:
            out["topic"] = self.topic.to_json()
        return out


@dataclass(frozen=True, slots=True)
class CardAction:
    type: str  # create | update | delete
    description: str
    resource: Mapping[str, Any] | None = None
    resource_id: str | None = None

    def __post_init__(self) -> None:
        if self.type == "delete" and not self.resource_id:
            raise CardError("a delete action needs resourceId")
        if self.type != "delete" and not self.resource:
            raise CardError(f"a {self.type} action needs a resource")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.type == "delete":
            out["resourceId"] = self.resource_id
        else:
            out["resource"] = self.resource
        return out


@dataclass(frozen=True, slots=True)
class CardSuggestion:
    label: str
    uuid: str
    actions: tuple[CardAction, ...] = ()
    is_recommended: bool | None = None
    extension: Mapping[str, Any] | None = None  # CDS Hooks reserves `extension` on every object

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "uuid": self.uuid}
        if self.is_recommended is not None:
            out["isRecommended"] = self.is_recommended
        if self.actions:
            out["actions"] = [action.to_json() for action in self.actions]
        if self.extension:
            out["extension"] = dict(self.extension)
        return out


@dataclass(frozen=True, slots=True)
class CardLink:
    label: str
    url: str
    type: str = "absolute"

    def to_json(self) -> dict[str, str]:
        return {"label": self.label, "url": self.url, "type": self.type}


@dataclass(frozen=True)
class Card:
    uuid: str
    summary: str
    indicator: str
    detail: str
    source: CardSource
    suggestions: tuple[CardSuggestion, ...] = ()
    selection_behavior: str | None = None
    override_reasons: tuple[Coding, ...] = ()
    links: tuple[CardLink, ...] = ()
    extension: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        topic = self.source.topic.code if self.source.topic else self.summary[:40]
        if len(self.summary) > MAX_SUMMARY:
            raise CardError(f"summary of {topic} is {len(self.summary)} characters; CDS Hooks allows fewer than 140")
        if self.indicator not in INDICATORS:
            raise CardError(f"indicator {self.indicator!r} of {topic} is not one of {INDICATORS}")
        if self.suggestions:
            if self.selection_behavior not in SELECTION_BEHAVIORS:
                raise CardError(f"{topic} has suggestions and no valid selectionBehavior")
            if self.selection_behavior == "at-most-one" and sum(1 for s in self.suggestions if s.is_recommended) > 1:
                raise CardError("at-most-one allows at most one recommended suggestion")
        elif self.selection_behavior is not None:
            raise CardError(f"{topic} has a selectionBehavior but no suggestions")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "uuid": self.uuid,
            "summary": self.summary,
            "indicator": self.indicator,
            "detail": self.detail,
            "source": self.source.to_json(),
        }
        if self.suggestions:
            out["suggestions"] = [s.to_json() for s in self.suggestions]
            out["selectionBehavior"] = self.selection_behavior
        if self.override_reasons:
            out["overrideReasons"] = [reason.to_json() for reason in self.override_reasons]
        if self.links:
            out["links"] = [link.to_json() for link in self.links]
        if self.extension:
            out["extension"] = dict(self.extension)
        assert_no_empty_values(out)
        return out

    @property
    def rules(self) -> list[str]:
        """The rule ids on this card (from its extension), for logs and records."""
        return list(next(iter(self.extension.values()), {}).get("rules", [])) if self.extension else []


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
