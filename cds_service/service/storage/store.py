"""The service's state: one Store per app, an engine from a URL, a session per operation.

Every method that depends on time takes `now` from the caller (the app's injectable clock); nothing here reads the
system clock, so dismissals, retention and token expiry are testable at any date.
"""

from __future__ import annotations

import logging
import os
import weakref
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from . import migrate, replay, stats
from .engine import READ_ONLY, insert_for, make_engine, sqlite_path
from .records import (
    INDICATOR_RANK,
    ActiveDismissal,
    CardRecord,
    FeedbackEntry,
    FeedbackResult,
    PurgeCounts,
    ReplayVerdict,
    ShownKey,
    WeeklyStats,
    iso_week,
)
from .schema import CardFinding, Dismissal, FeedbackRecord, IssuedCard, ReplayEntry

log = logging.getLogger("cds_service.storage")

DISMISSIBLE_RULES = frozenset({"R01", "R17", "R20"})
"""A22: the low-value repeats a clinician's override silences (clinical specification §3.15)."""
ORDER_SELECT = "order-select"

# The statement every patient-view call runs (A22), built once: building a select and its cache key on each call cost
# more than running it (about 0.3 ms of 0.5 on SQLite).
_ACTIVE_DISMISSALS = (
    select(Dismissal.rule_id, Dismissal.finding_key, Dismissal.severity_rank, Dismissal.expires_at)
    .where(Dismissal.patient_hash == bindparam("patient_hash"), Dismissal.expires_at > bindparam("now"))
    .order_by(Dismissal.rule_id, Dismissal.finding_key)
)


class Store:
    def __init__(
        self,
        url: str,
        *,
        dismissal_period: timedelta = timedelta(days=90),
        keep_user_comments: bool = False,
        dismissible_rules: Iterable[str] = DISMISSIBLE_RULES,
        **engine_options,
    ):
        if sqlite_path(url) is None and url.startswith("sqlite"):
            # Each connection would get a database of its own: dismissals and replays would be forgotten at random.
            raise ValueError("an in-memory SQLite database cannot hold shared state: give the store a file")
        self.engine = make_engine(url, **engine_options)
        self.dismissal_period = dismissal_period
        self.keep_user_comments = keep_user_comments
        self.dismissible_rules = frozenset(dismissible_rules)
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read_only = self.engine.execution_options(**{READ_ONLY: True})
        self._read = sessionmaker(self._read_only, expire_on_commit=False)
        # gunicorn loads the app (and opens the database) before forking its workers: a pooled connection must never
        # be used by two processes, so a child starts with an empty pool and leaves the parent's connections alone.
        engine = weakref.ref(self.engine)
        os.register_at_fork(after_in_child=lambda: (e := engine()) is not None and e.dispose(close=False))

    def __repr__(self) -> str:  # the URL may carry a password
        return f"Store({self.engine.url!r})"

    def close(self) -> None:
        self.engine.dispose()

    # --- schema and readiness -------------------------------------------------------------------------------

    def upgrade(self) -> str:
        return migrate.upgrade(self.engine)

    def migration_status(self) -> migrate.MigrationStatus:
        return migrate.status(self.engine)

    def ping(self) -> bool:
        """The database answers (a readiness probe: False, never an exception)."""
        try:
            with self._read() as session:
                session.execute(select(1)).scalar_one()
            return True
        except SQLAlchemyError as error:
            log.warning("database unavailable", extra={"error": type(error).__name__})
            return False

    # --- cards ----------------------------------------------------------------------------------------------

    def record_cards(self, cards: Sequence[CardRecord]) -> None:
        """The cards of one response, in one transaction: all of them or none."""
        if not cards:
            return
        # Core, not the ORM's bulk insert: this runs on every call, and the ORM path costs about twice as much.
        with self.engine.begin() as connection:
            connection.execute(
                insert_for(connection, IssuedCard.__table__),
                [
                    dict(
                        uuid=c.uuid,
                        service_id=c.service_id,
                        hook=c.hook,
                        stable_key=c.stable_key,
                        indicator=c.indicator,
                        knowledge_version=c.knowledge_version,
                        issuer=c.issuer,
                        tenant=c.tenant,
                        issued_at=c.issued_at,
                        iso_week=iso_week(c.issued_at),
                        patient_hash=c.patient_hash,
                        fhir_server_hash=c.fhir_server_hash,
                        silent=c.silent,
                        held_back=c.held_back or ("silent-mode" if c.silent else None),
                        draft_order_key=c.draft_order_key,
                        suggestion_uuids=list(c.suggestion_uuids),
                    )
                    for c in cards
                ],
            )
            connection.execute(
                insert_for(connection, CardFinding.__table__),
                [
                    dict(card_uuid=c.uuid, rule_id=f.rule_id, finding_key=f.finding_key, severity_rank=f.severity_rank)
                    for c in cards
                    for f in dict.fromkeys(c.findings)
                ],
            )

    def shown_at_order_select(
        self, patient_hash: str, keys: Iterable[ShownKey], since: datetime
    ) -> dict[ShownKey, str]:
        """A21: of `keys`, those shown to this patient at order-select since `since`, each with the highest
        indicator it was shown with. An order-sign card whose key is here is a repeat unless its indicator ranks
        higher (escalated)."""
        wanted = set(keys)
        if not wanted:
            return {}
        query = (
            select(IssuedCard.draft_order_key, CardFinding.rule_id, CardFinding.finding_key, IssuedCard.indicator)
            .join(CardFinding, CardFinding.card_uuid == IssuedCard.uuid)
            .where(
                IssuedCard.patient_hash == patient_hash,
                IssuedCard.hook == ORDER_SELECT,
                IssuedCard.issued_at >= since,
                IssuedCard.silent.is_(False),
                IssuedCard.draft_order_key.in_(sorted({k.draft_order_key for k in wanted})),
                CardFinding.rule_id.in_(sorted({k.rule_id for k in wanted})),
            )
        )
        shown: dict[ShownKey, str] = {}
        with self._read() as session:
            for order, rule_id, finding_key, indicator in session.execute(query):
                key = ShownKey(order, rule_id, finding_key)
                if key in wanted and INDICATOR_RANK[indicator] >= INDICATOR_RANK.get(shown.get(key, ""), -1):
                    shown[key] = indicator
        return shown

    # --- feedback and dismissals ----------------------------------------------------------------------------

    def record_feedback(self, entry: FeedbackEntry, now: datetime) -> FeedbackResult:
        """Keep one feedback entry, once; an override of an info card of a dismissible rule starts a dismissal."""
        with self._write.begin() as session:
            card = session.get(IssuedCard, entry.card_uuid)
            # Another tenant's card is not this caller's to judge (nor to silence): kept, but as unknown.
            known = card is not None and (card.issuer, card.tenant) == (entry.issuer, entry.tenant)
            inserted = session.execute(
                insert_for(session, FeedbackRecord)
                .values(
                    idempotency_key=entry.idempotency_key(),
                    card_uuid=entry.card_uuid,
                    service_id=entry.service_id,
                    known_card=known,
                    outcome=entry.outcome,
                    outcome_at=entry.outcome_at,
                    accepted_suggestions=list(entry.accepted_suggestions),
                    override_code=entry.override_code,
                    override_system=entry.override_system,
                    override_display=entry.override_display,
                    user_comment=entry.user_comment if self.keep_user_comments else None,
                    issuer=entry.issuer,
                    tenant=entry.tenant,
                    received_at=now,
                    iso_week=iso_week(now),
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(FeedbackRecord.id)
            )
            stored = inserted.first() is not None
            if stored and known and entry.outcome == "overridden":
                self._dismiss(session, card, now)
        return FeedbackResult(stored=stored, known_card=known)

    def _dismiss(self, session: Session, card: IssuedCard, now: datetime) -> None:
        # Warnings and critical cards are never silenced (A22); a silent card was never seen to be overridden.
        if card.indicator != "info" or card.silent:
            return
        for finding in card.findings:
            if finding.rule_id not in self.dismissible_rules:
                continue
            values = dict(
                severity_rank=finding.severity_rank,
                card_uuid=card.uuid,
                created_at=now,
                expires_at=now + self.dismissal_period,
            )
            statement = insert_for(session, Dismissal).values(
                patient_hash=card.patient_hash, rule_id=finding.rule_id, finding_key=finding.finding_key, **values
            )
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["patient_hash", "rule_id", "finding_key"],
                    set_={name: statement.excluded[name] for name in values},
                )
            )

    def active_dismissals(self, patient_hash: str, now: datetime) -> list[ActiveDismissal]:
        with self._read_only.connect() as connection:  # every patient-view call with an info card reads this
            rows = connection.execute(_ACTIVE_DISMISSALS, {"patient_hash": patient_hash, "now": now})
            return [ActiveDismissal(*row) for row in rows]

    # --- analytics and retention ----------------------------------------------------------------------------

    def rule_weekly_stats(self, since: datetime, until: datetime) -> WeeklyStats:
        """Cards issued in [since, until), per rule and ISO week, with their feedback."""
        with self._read() as session:
            return stats.weekly_stats(session, since, until)

    def purge(self, older_than: datetime, now: datetime) -> PurgeCounts:
        """Retention: cards issued and feedback received before `older_than` go; dismissals and replay entries go
        when they expire (a dismissal lasts its own period, whatever the retention)."""
        with self._write.begin() as session:
            old_cards = select(IssuedCard.uuid).where(IssuedCard.issued_at < older_than)
            # Not left to ON DELETE CASCADE alone: a database restored without foreign keys would keep orphans.
            session.execute(delete(CardFinding).where(CardFinding.card_uuid.in_(old_cards)))
            cards = session.execute(delete(IssuedCard).where(IssuedCard.issued_at < older_than)).rowcount
            feedback = session.execute(delete(FeedbackRecord).where(FeedbackRecord.received_at < older_than)).rowcount
            dismissals = session.execute(delete(Dismissal).where(Dismissal.expires_at <= now)).rowcount
            entries = session.execute(delete(ReplayEntry).where(ReplayEntry.expires_at <= now)).rowcount
        counts = PurgeCounts(cards=cards, feedback=feedback, dismissals=dismissals, replay_entries=entries)
        log.info("retention purge", extra=counts.__dict__)
        return counts

    # --- JWT replay -----------------------------------------------------------------------------------------

    def remember_jti(
        self, issuer: str, jti_hash: str, expires_at: datetime, now: datetime, per_issuer_limit: int
    ) -> ReplayVerdict:
        """First use of a token id (accepted), a replay (replayed), or the issuer's bound reached (full)."""
        with self._write.begin() as session:
            return replay.remember(session, issuer, jti_hash, expires_at, now, per_issuer_limit)
