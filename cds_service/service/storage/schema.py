"""The tables of the service's state: issued cards, feedback, remembered dismissals (A22) and the JWT replay store.

No column holds a patient identifier, a FHIR server URL or a token: patients and servers appear only as keyed hashes
(PatientKey), token ids only as the caller's hash of them. Every time is a UTC instant (UTCDateTime). A change here
needs a new Alembic revision in migrations/versions; tests/test_storage.py checks that the two agree.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

HASH = 64  # hex SHA-256
UUID = 36
CARD_REF = 128  # feedback may name any card, ours or not; longer references are refused by the store


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime on every backend: timestamptz on PostgreSQL; on SQLite, which has no time zones, the
    UTC wall time in SQLAlchemy's fixed-width text form, so that comparisons and ORDER BY stay correct. Naive
    datetimes are refused: a local time taken for UTC would shift dismissals and retention by hours."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store takes timezone-aware UTC times only")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# Explicit constraint names: Alembic can then alter them on SQLite (batch mode) and they read the same everywhere.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class IssuedCard(Base):
    """One card of one CDS Hooks response, shown or silent (computed, then held back by A21 or A22)."""

    __tablename__ = "issued_cards"

    uuid: Mapped[str] = mapped_column(String(UUID), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(200))
    hook: Mapped[str] = mapped_column(String(64))
    stable_key: Mapped[str] = mapped_column(String(200))
    """The keyed hash of the card's stable key (its extension's `key`, A20): the same on every response for the same
    finding (deduplication); the key itself may name the product ordered."""
    indicator: Mapped[str] = mapped_column(String(16))
    knowledge_version: Mapped[str] = mapped_column(String(100))
    issuer: Mapped[str | None] = mapped_column(String(500))
    tenant: Mapped[str | None] = mapped_column(String(200))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    iso_week: Mapped[str] = mapped_column(String(8))
    """ISO 8601 week of issued_at, e.g. 2026-W11: the analytics group by it the same way on every backend."""
    patient_hash: Mapped[str] = mapped_column(String(HASH))
    fhir_server_hash: Mapped[str] = mapped_column(String(HASH))
    silent: Mapped[bool] = mapped_column(Boolean)
    held_back: Mapped[str | None] = mapped_column(String(16))
    """Why a silent card was not shown: silent-mode (the site's), dismissed (A22) or repeat (A21); None: shown."""
    draft_order_key: Mapped[str | None] = mapped_column(String(200))
    """Order hooks: the draft order's product, dose and route as one key (A21); None on patient-view."""
    suggestion_uuids: Mapped[list[str]] = mapped_column(JSON)

    findings: Mapped[list[CardFinding]] = relationship(
        back_populates="card", cascade="all, delete-orphan", passive_deletes=True, lazy="selectin"
    )

    __table_args__ = (
        # A21: the order-select cards of one patient in the last 24 hours.
        Index("ix_issued_cards_patient_hook_time", "patient_hash", "hook", "issued_at"),
        Index("ix_issued_cards_issued_at", "issued_at"),
    )


class CardFinding(Base):
    """A rule of a card and the finding it fired on (R17: one row per specialty), with the finding's severity rank,
    so that a dismissal (A22) and a no-double-alert (A21) name exactly what was shown."""

    __tablename__ = "card_findings"

    card_uuid: Mapped[str] = mapped_column(
        String(UUID), ForeignKey("issued_cards.uuid", ondelete="CASCADE"), primary_key=True
    )
    rule_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    finding_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    severity_rank: Mapped[int] = mapped_column(SmallInteger)

    card: Mapped[IssuedCard] = relationship(back_populates="findings")

    __table_args__ = (Index("ix_card_findings_rule_finding", "rule_id", "finding_key"),)


class FeedbackRecord(Base):
    """One CDS Hooks feedback entry. Kept also when the card is unknown (issued elsewhere, purged, or another
    tenant's), flagged so. The free-text userComment only when the operator allows it."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(HASH), unique=True)
    card_uuid: Mapped[str] = mapped_column(String(CARD_REF), index=True)
    service_id: Mapped[str] = mapped_column(String(200))
    known_card: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str] = mapped_column(String(16))
    outcome_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_suggestions: Mapped[list[str]] = mapped_column(JSON)
    override_code: Mapped[str | None] = mapped_column(String(200))
    override_system: Mapped[str | None] = mapped_column(String(500))
    override_display: Mapped[str | None] = mapped_column(String(500))
    user_comment: Mapped[str | None] = mapped_column(Text)
    issuer: Mapped[str | None] = mapped_column(String(500))
    tenant: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    iso_week: Mapped[str] = mapped_column(String(8))
    """ISO week of received_at (unknown cards have no issue week to count under)."""


class Dismissal(Base):
    """A22: a rule and finding a clinician overrode for a patient, hidden until expires_at unless it gets worse."""

    __tablename__ = "dismissals"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    patient_hash: Mapped[str] = mapped_column(String(HASH))
    rule_id: Mapped[str] = mapped_column(String(16))
    finding_key: Mapped[str] = mapped_column(String(200))
    severity_rank: Mapped[int] = mapped_column(SmallInteger)
    card_uuid: Mapped[str] = mapped_column(String(UUID))
    """The overridden card, for the audit trail (not a foreign key: the card may be purged first)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    __table_args__ = (
        UniqueConstraint("patient_hash", "rule_id", "finding_key", name="uq_dismissals_patient_rule_finding"),
    )


class ReplayEntry(Base):
    """A JWT seen from an issuer (CDS Hooks §1.7: jti not reused), kept until the token expires. The primary key is
    what makes a replay across processes and replicas impossible: only one insert of (issuer, jti) can succeed."""

    __tablename__ = "replay_entries"

    issuer: Mapped[str] = mapped_column(String(500), primary_key=True)
    jti_hash: Mapped[str] = mapped_column(String(HASH), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_replay_entries_issuer_expires", "issuer", "expires_at"),)
