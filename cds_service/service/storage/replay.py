"""The JWT replay store in the database, shared by every process and replica (CDS Hooks §1.7: a jti is used once).

Atomic without trusting any one process: the primary key (issuer, jti hash) lets only one insert succeed, and
ON CONFLICT DO NOTHING turns the loser into a "replayed" rather than an error. The per-issuer bound (so that one
issuer, or a stolen key, cannot fill the table) needs the count and the insert to be one step: SQLite's BEGIN
IMMEDIATE makes the whole transaction single-writer; on PostgreSQL an advisory lock per issuer does the same for
that issuer's transactions only.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from .engine import insert_for
from .records import ReplayVerdict
from .schema import ReplayEntry

REPLAY_LOCK_CLASS = 0x43445301  # pg_advisory_xact_lock(class, key); migrate.py's lock has another class


def _issuer_lock_key(issuer: str) -> int:
    return int.from_bytes(hashlib.sha256(issuer.encode()).digest()[:4], "big", signed=True)


def remember(
    session: Session, issuer: str, jti_hash: str, expires_at: datetime, now: datetime, per_issuer_limit: int
) -> ReplayVerdict:
    if expires_at <= now:
        raise ValueError("a token that has already expired must be refused before its jti is remembered")
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:kind, :key)"),
            {"kind": REPLAY_LOCK_CLASS, "key": _issuer_lock_key(issuer)},
        )
    session.execute(delete(ReplayEntry).where(ReplayEntry.issuer == issuer, ReplayEntry.expires_at <= now))
    if session.get(ReplayEntry, (issuer, jti_hash)) is not None:
        return ReplayVerdict.REPLAYED
    held = session.scalar(select(func.count()).select_from(ReplayEntry).where(ReplayEntry.issuer == issuer))
    if held >= per_issuer_limit:
        return ReplayVerdict.FULL
    inserted = session.execute(
        insert_for(session, ReplayEntry)
        .values(issuer=issuer, jti_hash=jti_hash, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=["issuer", "jti_hash"])
        .returning(ReplayEntry.jti_hash)
    )
    return ReplayVerdict.ACCEPTED if inserted.first() is not None else ReplayVerdict.REPLAYED
