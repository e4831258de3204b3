"""What goes into the store and what comes out: plain frozen dataclasses, no database types.

They check what the database cannot: that times are aware, that an indicator is one CDS Hooks knows, and that a
"hash" really is one (a patient id passed by mistake where its hash belongs would otherwise be stored in clear).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from .schema import CARD_REF

INDICATOR_RANK = {"info": 0, "warning": 1, "critical": 2}
HELD_BACK = ("silent-mode", "dismissed", "repeat")
"""Why a card was recorded and not shown: the site's silent mode, a remembered dismissal (A22), a repeat (A21)."""
OUTCOMES = ("accepted", "overridden")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, not {value!r}")


def _hash(name: str, value: str) -> None:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ValueError(f"{name} must be a hex SHA-256 digest (PatientKey), never an identifier in clear")


def iso_week(moment: datetime) -> str:
    year, week, _ = moment.astimezone(timezone.utc).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class Finding:
    """One rule of a card and what it fired on. finding_key tells findings of one rule apart (R17: the specialty);
    severity_rank orders them (higher is worse), so that a worse finding than the one dismissed shows again."""

    rule_id: str
    finding_key: str = ""
    severity_rank: int = 0


@dataclass(frozen=True)
class CardRecord:
    uuid: str
    service_id: str
    hook: str
    stable_key: str
    indicator: str
    knowledge_version: str
    issued_at: datetime
    patient_hash: str
    fhir_server_hash: str
    findings: tuple[Finding, ...]
    issuer: str | None = None
    tenant: str | None = None
    silent: bool = False
    """Computed but not shown (held back by a dismissal or as a repeat): kept for the audit, not counted as shown."""
    draft_order_key: str | None = None
    suggestion_uuids: tuple[str, ...] = ()
    held_back: str | None = None
    """Why it was not shown (one of HELD_BACK); a silent card without one was held back by the site's silent mode."""

    def __post_init__(self) -> None:
        if self.held_back is not None and (self.held_back not in HELD_BACK or not self.silent):
            raise ValueError(f"held_back must be one of {', '.join(HELD_BACK)}, on a silent card")
        if self.indicator not in INDICATOR_RANK:
            raise ValueError(f"indicator must be one of {', '.join(INDICATOR_RANK)}, not {self.indicator!r}")
        if not self.findings:
            raise ValueError(f"card {self.uuid} names no rule")
        _aware("issued_at", self.issued_at)
        _hash("patient_hash", self.patient_hash)
        _hash("fhir_server_hash", self.fhir_server_hash)


@dataclass(frozen=True)
class FeedbackEntry:
    service_id: str
    card_uuid: str
    outcome: str
    outcome_at: datetime
    accepted_suggestions: tuple[str, ...] = ()
    override_code: str | None = None
    override_system: str | None = None
    override_display: str | None = None
    user_comment: str | None = None
    issuer: str | None = None
    tenant: str | None = None
    client_key: str | None = None
    """An idempotency key the client chose; without one, a retry is the same card, outcome and outcomeTimestamp."""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be accepted or overridden, not {self.outcome!r}")
        if not self.card_uuid or len(self.card_uuid) > CARD_REF:
            raise ValueError(f"the card reference must be 1 to {CARD_REF} characters")
        _aware("outcome_at", self.outcome_at)

    @classmethod
    def from_cds_hooks(
        cls,
        service_id: str,
        entry: dict[str, Any],
        *,
        issuer: str | None = None,
        tenant: str | None = None,
        client_key: str | None = None,
    ) -> "FeedbackEntry":
        """From one entry of a feedback request body that feedback.validate_feedback accepted."""
        reason = entry.get("overrideReason") or {}
        coding = reason.get("reason") or {}
        return cls(
            service_id=service_id,
            card_uuid=entry["card"],
            outcome=entry["outcome"],
            outcome_at=datetime.fromisoformat(entry["outcomeTimestamp"].replace("Z", "+00:00")),
            accepted_suggestions=tuple(s["id"] for s in entry.get("acceptedSuggestions") or ()),
            override_code=coding.get("code"),
            override_system=coding.get("system"),
            override_display=coding.get("display"),
            user_comment=reason.get("userComment"),
            issuer=issuer,
            tenant=tenant,
            client_key=client_key,
        )

    def idempotency_key(self) -> str:
        if self.client_key is not None:
            # Scoped to the caller: two EHRs may well both number their requests from 1.
            parts: list[Any] = ["client", self.issuer, self.tenant, self.client_key]
        else:
            # The same instant however it was written (Z or +00:00, another offset) is the same retry.
            parts = ["entry", self.card_uuid, self.outcome, self.outcome_at.astimezone(timezone.utc).isoformat()]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


class FeedbackResult(NamedTuple):
    stored: bool
    """False for a retry of feedback already stored."""
    known_card: bool
    """The card was issued by this service (any replica) to this issuer and tenant, and is not purged yet."""


@dataclass(frozen=True)
class ActiveDismissal:
    rule_id: str
    finding_key: str
    severity_rank: int
    expires_at: datetime

    def hides(self, finding: Finding) -> bool:
        """A22: the same rule and finding, no worse than when it was dismissed."""
        return (
            finding.rule_id == self.rule_id
            and finding.finding_key == self.finding_key
            and finding.severity_rank <= self.severity_rank
        )


class ShownKey(NamedTuple):
    """A21: what makes an order-sign card a repeat of an order-select one (the patient aside)."""

    draft_order_key: str
    rule_id: str
    finding_key: str


@dataclass(frozen=True)
class RuleWeek:
    rule_id: str
    week: str
    issued: int
    """Cards shown with this rule (silent ones are counted apart)."""
    silent: int
    """Cards computed under the site's silent mode (what the site would have been shown)."""
    accepted: int
    """Cards with at least one accepted feedback (a card accepted twice counts once)."""
    overridden: int
    override_reasons: dict[str, int] = field(default_factory=dict)
    """Override reason code -> cards; "" for an override without a reason."""
    suppressed: int = 0
    """Cards held back as a remembered dismissal (A22) or a repeat at order-sign (A21)."""

    @property
    def acceptance_rate(self) -> float | None:
        """Accepted over shown: EHRs send no feedback for a card that was ignored, so that is the honest base."""
        return self.accepted / self.issued if self.issued else None


@dataclass(frozen=True)
class WeeklyStats:
    rules: list[RuleWeek]
    """By ISO week of issue, then rule id."""
    unknown_card_feedback: dict[str, int]
    """ISO week of receipt -> feedback entries naming a card this service does not know."""


@dataclass(frozen=True)
class PurgeCounts:
    cards: int
    feedback: int
    dismissals: int
    replay_entries: int


class ReplayVerdict(str, enum.Enum):
    ACCEPTED = "accepted"
    REPLAYED = "replayed"
    FULL = "full"
    """The issuer has per_issuer_limit unexpired tokens on record: refuse (fail closed) rather than forget one."""
