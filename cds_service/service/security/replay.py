"""The replay store: each (iss, jti) remembered until its token expires, bounded per issuer so that one issuer's
traffic can never refuse another's tokens."""

from __future__ import annotations

import atexit
import heapq
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from contextlib import closing
from typing import Protocol



from .trust import REPLAY_ENTRIES_PER_ISSUER, _loggable, _Rejected

log = logging.getLogger("cds_service.security")

# --- replay ------------------------------------------------------------------------------------------------------


class ReplayStore(Protocol):
    """Where (iss, jti) pairs are remembered until their token expires; a database can back it (one store for every
    replica). Bounded per issuer: at the bound, that issuer's new tokens are refused (fail closed, _Rejected
    "replay store full for this issuer", and a warning at most once a minute per issuer) until its entries expire;
    other issuers are never affected. Nothing is forgotten early."""

    def remember(self, issuer: str, jti: str, expires_at: float, now: float) -> bool:
        """True (and remembered) the first time (issuer, jti) is seen while unexpired; False for a replay."""
        ...


class _FullWarnings:
    """A warning when an issuer's share of the store is full, at most once a minute per issuer."""

    def __init__(self):
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def refuse(self, issuer: str, bound: int, now: float) -> None:
        with self._lock:
            warn = now - self._last.get(issuer, float("-inf")) >= 60
            if warn:
                self._last[issuer] = now
        if warn:
            log.warning("replay store full for an issuer: its new tokens are refused until its entries expire",
                        extra={"issuer": _loggable(issuer), "bound": bound})
        raise _Rejected("replay store full for this issuer", issuer=issuer)


class ReplayCache:
    """The in-process ReplayStore: each (iss, jti) kept until its token expires, at most `max_per_issuer` live
    entries per issuer. Thread-safe."""

    def __init__(self, max_per_issuer: int = REPLAY_ENTRIES_PER_ISSUER):
        self.max_per_issuer = max_per_issuer
        self._expiry: dict[tuple[str, str], float] = {}
        self._per_issuer: dict[str, int] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()
        self._full = _FullWarnings()

    def __len__(self) -> int:
        return len(self._expiry)

    def remember(self, issuer: str, jti: str, expires_at: float, now: float) -> bool:
        key = (issuer, jti)
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                expiry, old = heapq.heappop(self._heap)
                if self._expiry.get(old) == expiry:
                    del self._expiry[old]
                    self._per_issuer[old[0]] -= 1
            if key in self._expiry:
                return False
            full = self._per_issuer.get(issuer, 0) >= self.max_per_issuer
            if not full:
                self._expiry[key] = expires_at
                self._per_issuer[issuer] = self._per_issuer.get(issuer, 0) + 1
                heapq.heappush(self._heap, (expires_at, key))
                return True
        self._full.refuse(issuer, self.max_per_issuer, now)
        return False

    def first_use(self, key: tuple[str, str], expires_at: float, now: float) -> bool:
        return self.remember(key[0], key[1], expires_at, now)


class SharedReplayCache:
    """The ReplayStore of all the processes of one host: gunicorn's workers are forked from one master, which
    creates this store (preload_app), so a token replayed to another worker is still a replay. (iss, jti) pairs live
    in a SQLite file in a private temporary directory; each thread of each process has its own connection. Bounded
    per issuer like ReplayCache, and fail-closed: if the file cannot be used, tokens are refused."""

    def __init__(self, max_per_issuer: int = REPLAY_ENTRIES_PER_ISSUER, directory: str | None = None):
        self.max_per_issuer = max_per_issuer
        self._dir = tempfile.mkdtemp(prefix="cds-replay-", dir=directory)
        self.path = os.path.join(self._dir, "jti.sqlite")
        self._local = threading.local()
        self._full = _FullWarnings()
        creator = os.getpid()
        with closing(self._connect()) as conn:
            conn.executescript(
                "CREATE TABLE seen (iss TEXT NOT NULL, jti TEXT NOT NULL, exp REAL NOT NULL, PRIMARY KEY (iss, jti));"
                "CREATE INDEX seen_exp ON seen (exp);"
                "CREATE TABLE size (iss TEXT PRIMARY KEY, n INTEGER NOT NULL);"
            )
        atexit.register(lambda: os.getpid() == creator and shutil.rmtree(self._dir, ignore_errors=True))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # a crash loses the store and the tokens it guards expire within the hour
        return conn

    def _conn(self) -> sqlite3.Connection:
        pid, conn = getattr(self._local, "pid", None), getattr(self._local, "conn", None)
        if conn is None or pid != os.getpid():  # a forked worker opens its own connection
            self._local.pid, self._local.conn = os.getpid(), self._connect()
        return self._local.conn

    def __len__(self) -> int:
        return self._conn().execute("SELECT coalesce(sum(n), 0) FROM size").fetchone()[0]

    def remember(self, issuer: str, jti: str, expires_at: float, now: float) -> bool:
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")  # one writer at a time across threads and processes
            try:
                outcome = self._record(conn, issuer, jti, expires_at, now)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            self._local.conn = None  # a fresh connection next time
            log.error("replay store unavailable", extra={"error": type(error).__name__})
            raise _Rejected("replay store unavailable") from None
        if outcome is None:
            self._full.refuse(issuer, self.max_per_issuer, now)
        return bool(outcome)

    def first_use(self, key: tuple[str, str], expires_at: float, now: float) -> bool:
        return self.remember(key[0], key[1], expires_at, now)

    def _record(self, conn: sqlite3.Connection, issuer: str, jti: str, expires_at: float, now: float) -> bool | None:
        """True: remembered; False: a replay; None: the issuer's share is full."""
        purged: dict[str, int] = {}
        for (iss,) in conn.execute("DELETE FROM seen WHERE exp <= ? RETURNING iss", (now,)).fetchall():
            purged[iss] = purged.get(iss, 0) + 1
        conn.executemany("UPDATE size SET n = n - ? WHERE iss = ?", [(n, iss) for iss, n in purged.items()])
        if conn.execute("SELECT 1 FROM seen WHERE iss = ? AND jti = ?", (issuer, jti)).fetchone():
            return False
        row = conn.execute("SELECT n FROM size WHERE iss = ?", (issuer,)).fetchone()
        if row is not None and row[0] >= self.max_per_issuer:
            return None
        conn.execute("INSERT INTO seen VALUES (?, ?, ?)", (issuer, jti, expires_at))
        conn.execute("INSERT INTO size VALUES (?, 1) ON CONFLICT (iss) DO UPDATE SET n = n + 1", (issuer,))
        return True


def default_replay_cache(max_per_issuer: int = REPLAY_ENTRIES_PER_ISSUER) -> ReplayCache | SharedReplayCache:
    """The host-wide store; the in-process one (with a warning) where no temporary directory can be written."""
    try:
        return SharedReplayCache(max_per_issuer)
    except (OSError, sqlite3.Error) as error:
        log.warning(
            "replay store is per process: no temporary directory for the shared one; run one worker process",
            extra={"error": type(error).__name__},
        )
        return ReplayCache(max_per_issuer)
