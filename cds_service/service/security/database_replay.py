"""The replay store of every replica: (iss, jti) pairs in the service's PostgreSQL database, so that a token
accepted by one replica is a replay to all the others (CDS Hooks §1.7: a jti is used once).

Only a SHA-256 of the jti is stored (a jti is a bearer token's identity, and the database is read by people who must
not be able to reuse it). The atomic step (first use, replay, or the issuer's bound reached) is the storage
package's remember_jti; what this adds is what the in-process stores do on top: the same refusal and rate-limited
warning when an issuer's share is full, and fail-closed when the database does not answer.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone

from sqlalchemy.exc import SQLAlchemyError

from ..storage import ReplayVerdict, Store
from .replay import _FullWarnings
from .trust import REPLAY_ENTRIES_PER_ISSUER, _Rejected

log = logging.getLogger("cds_service.security")


def jti_hash(jti: str) -> str:
    return hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()


class DatabaseReplayStore:
    """The ReplayStore in the Store's database, bounded per issuer (`max_per_issuer` live entries)."""

    def __init__(self, store: Store, max_per_issuer: int = REPLAY_ENTRIES_PER_ISSUER):
        self.store = store
        self.max_per_issuer = max_per_issuer
        self._full = _FullWarnings()

    def __repr__(self) -> str:
        return f"DatabaseReplayStore({self.store!r}, max_per_issuer={self.max_per_issuer})"

    def remember(self, issuer: str, jti: str, expires_at: float, now: float) -> bool:
        if expires_at <= now:
            return False  # the authenticator refuses expired tokens first; never remember what is already gone
        try:
            verdict = self.store.remember_jti(
                issuer, jti_hash(jti), _instant(expires_at), _instant(now), self.max_per_issuer
            )
        except SQLAlchemyError as error:
            log.error("replay store unavailable", extra={"error": type(error).__name__})
            raise _Rejected("replay store unavailable") from None
        if verdict is ReplayVerdict.FULL:
            self._full.refuse(issuer, self.max_per_issuer, now)
        return verdict is ReplayVerdict.ACCEPTED

    def first_use(self, key: tuple[str, str], expires_at: float, now: float) -> bool:
        return self.remember(key[0], key[1], expires_at, now)


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)
