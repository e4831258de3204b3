"""Authentication of CDS clients by the JWT every call carries (CDS Hooks 2.0 §Security; docs/security.md).

An EHR sends `Authorization: Bearer <JWT>` on discovery, service and feedback calls. The token is accepted only if
all of these hold, checked in this order (a failure is a 401 with an empty body; the reason goes to the log, never the
token):

1. the header: `alg` is one we trust (ES384, RS384, plus those of CDS_JWT_EXTRA_ALGORITHMS; never `none` or HMAC),
   `kid` is present, `typ` is JWT;
2. `iss` names an issuer of the trust file (CDS_ISSUERS), and a `jku`, if any, is on that issuer's allowlist (a jku
   off the list is never fetched);
3. the signature verifies with the issuer's key of that `kid`: from its static JWK Set, its `jwks_uri` or an
   allowlisted `jku` (fetched within one deadline for the whole fetch, cached, fetched again when a `kid` is unknown
   at most every MIN_REFETCH_SECONDS per issuer; one fetch per URL at a time, which others wait for only when they
   have no key at all, and never longer than that deadline);
4. `aud` is exactly the URL called (CDS_PUBLIC_URL + path, else the request's own URL), `exp`, `iat` and `jti` are
   present, `exp`/`iat`/`nbf` are valid with CDS_JWT_LEEWAY_SECONDS of leeway, and the token lives at most an hour;
5. `tenant` is allowed when the issuer lists tenants;
6. `jti` has not been seen from this issuer within the token's lifetime (replay store).

The key caches are shared by the threads of one process. The replay store (ReplayStore: remember(issuer, jti,
expires_at, now)) is shared by every thread and every worker process forked from the process that built the app
(gunicorn's preload_app), through a SQLite file in a private temporary directory; replicas on other hosts each have
their own. It is bounded per issuer, so one issuer's traffic can never refuse another's tokens.

Each trusted issuer also lists the FHIR servers its callers may have fetched from (`fhir_servers`, see
service_call.fetch_access).
"""

from __future__ import annotations

import atexit
import heapq
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import urlsplit

import jwt
import requests
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuedAtError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)

from . import outbound
from .errors import Unauthorized
from cds_service.record.fhir_values import finite_number
from .settings import Settings, SettingsError

log = logging.getLogger("cds_service.security")

DEFAULT_ALGORITHMS = ("ES384", "RS384")
OPTIONAL_ALGORITHMS = ("ES256", "RS256", "ES512", "PS384")
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}

MAX_TOKEN_CHARS = 16 * 1024
"""A longer Authorization value is refused before any parsing."""
MAX_TOKEN_LIFETIME_SECONDS = 3600
"""exp - iat may not exceed this (CDS Hooks best practice: a replay cache for the maximum token lifetime, ≤ 1 h)."""
MAX_JWKS_BYTES = 512 * 1024
REPLAY_ENTRIES_PER_ISSUER = 100_000
"""Live (iss, jti) pairs kept per issuer (CDS_REPLAY_MAX_PER_ISSUER): 333 calls/s for 5-minute tokens."""
FETCH_WAIT_GRACE_SECONDS = 0.5
"""How much longer than a key-set fetch's own deadline a thread waits for it (its sockets are shut at the deadline)."""
MIN_REFETCH_SECONDS = 10.0
"""An issuer's key sets are fetched again (stale, or an unknown kid) at most this often: random kids from any caller
must not become a fetch flood, nor keep threads waiting on one."""

_ISSUER_FIELDS = {"jwks", "jwks_uri", "allowed_jku", "tenants", "fhir_servers", "about"}
_FILE_FIELDS = {"issuers", "about"}


class _Rejected(Exception):
    """Why a token was refused: a fixed phrase, safe to log (never the token, never attacker text)."""

    def __init__(self, reason: str, **fields: Any):
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


def _loggable(value: Any, limit: int = 200) -> str | None:
    """A claim or header value as it may appear in a log line: a printable string, cut short."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return text + ("..." if len(value if isinstance(value, str) else text) > limit else "")


# --- keys --------------------------------------------------------------------------------------------------------


def _key_problem(jwk: Any) -> str | None:
    """Why a JWK cannot verify CDS Hooks tokens, or None when it can."""
    if not isinstance(jwk, dict):
        return "a key is not a JSON object"
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        return "a key has no kid"
    if jwk.get("kty") not in ("EC", "RSA"):
        return f"key {kid!r} has kty {jwk.get('kty')!r}; only EC and RSA public keys are trusted (never oct/HMAC)"
    if any(member in jwk for member in ("d", "p", "q", "dp", "dq", "qi", "k")):
        return f"key {kid!r} contains private key material; a trust file holds public keys only"
    if jwk.get("use", "sig") != "sig":
        return f"key {kid!r} has use {jwk.get('use')!r}, not sig"
    alg = jwk.get("alg")
    if alg is not None and alg not in DEFAULT_ALGORITHMS + OPTIONAL_ALGORITHMS:
        return f"key {kid!r} has alg {alg!r}, which CDS Hooks tokens never use"
    if jwk["kty"] == "EC" and jwk.get("crv") not in _EC_CURVES.values():
        return f"key {kid!r} has curve {jwk.get('crv')!r}; only P-256, P-384 and P-521 are used"
    try:
        jwt.PyJWK(jwk, algorithm=alg)
    except (PyJWTError, ValueError, TypeError, KeyError) as error:
        return f"key {kid!r} is not a valid JWK ({type(error).__name__})"
    return None


def parse_jwk_set(document: Any, *, where: str, strict: bool) -> dict[str, dict]:
    """kid -> JWK of a JWK Set. strict (a trust file): any unusable key is an error; else unusable keys are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError(f"{where}: a JWK Set is an object with a list of keys")
    keys: dict[str, dict] = {}
    for jwk in document["keys"]:
        problem = _key_problem(jwk)
        if problem is None and jwk["kid"] in keys:
            problem = f"kid {jwk['kid']!r} appears twice"
        if problem is not None:
            if strict:
                raise ValueError(f"{where}: {problem}")
            log.warning("JWK skipped", extra={"source": where, "problem": problem})
            continue
        keys[jwk["kid"]] = jwk
    if strict and not keys:
        raise ValueError(f"{where}: the JWK Set has no keys")
    return keys


def verification_key(jwk: dict, alg: str) -> jwt.PyJWK:
    """The JWK bound to the token's algorithm, if the key may be used with it (kty, curve and the key's own alg)."""
    if jwk.get("alg") not in (None, alg):
        raise _Rejected("key algorithm does not match the token's alg")
    if alg.startswith("ES"):
        if jwk.get("kty") != "EC" or jwk.get("crv") != _EC_CURVES[alg]:
            raise _Rejected("key type or curve does not match the token's alg")
    elif jwk.get("kty") != "RSA":
        raise _Rejected("key type does not match the token's alg")
    try:
        return jwt.PyJWK(jwk, algorithm=alg)
    except (PyJWTError, ValueError, TypeError, KeyError):
        raise _Rejected("key unusable") from None


# --- the trust file ----------------------------------------------------------------------------------------------


def _url_ok(url: Any) -> bool:
    """An https URL, or http to this machine only (local development)."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.netloc:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1"))


@dataclass(frozen=True)
class Issuer:
    iss: str
    keys: Mapping[str, dict] | None  # a static JWK Set (kid -> JWK), or None when jwks_uri is used
    jwks_uri: str | None
    allowed_jku: frozenset[str]
    tenants: frozenset[str] | None  # None: any tenant (or none)
    fhir_servers: tuple[str, ...] = ()  # base URLs its calls may fetch from (outbound.AllowedServers); none: nothing


def load_issuers(path: Path | str) -> dict[str, Issuer]:
    """The trusted issuers of a CDS_ISSUERS file; SettingsError with a clear message for anything wrong in it."""
    where = f"CDS_ISSUERS file {path}"
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"{where} cannot be read: {error.strerror or error}") from None
    except ValueError as error:
        raise SettingsError(f"{where} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("issuers"), dict):
        raise SettingsError(f'{where} must be an object {{"issuers": {{"<iss>": {{...}}}}}}')
    if unknown := set(document) - _FILE_FIELDS:
        raise SettingsError(f"{where} has unknown fields {sorted(unknown)}; allowed: {sorted(_FILE_FIELDS)}")
    if not document["issuers"]:
        raise SettingsError(f"{where} trusts no issuer")
    issuers: dict[str, Issuer] = {}
    for iss, config in document["issuers"].items():
        at = f"{where}, issuer {iss!r}"
        if not iss.strip():
            raise SettingsError(f"{where}: an issuer's iss is empty")
        if not isinstance(config, dict):
            raise SettingsError(f"{at}: must be an object")
        if unknown := set(config) - _ISSUER_FIELDS:
            raise SettingsError(f"{at}: unknown fields {sorted(unknown)}; allowed: {sorted(_ISSUER_FIELDS)}")
        if ("jwks" in config) == ("jwks_uri" in config):
            raise SettingsError(f"{at}: give exactly one of jwks (a static JWK Set) or jwks_uri")
        keys = None
        if "jwks" in config:
            try:
                keys = parse_jwk_set(config["jwks"], where=at, strict=True)
            except ValueError as error:
                raise SettingsError(str(error)) from None
        elif not _url_ok(config["jwks_uri"]):
            raise SettingsError(f"{at}: jwks_uri must be an https URL (http only to localhost)")
        allowed_jku = config.get("allowed_jku", [])
        if not isinstance(allowed_jku, list) or not all(_url_ok(u) for u in allowed_jku):
            raise SettingsError(f"{at}: allowed_jku must be a list of https URLs (http only to localhost)")
        tenants = config.get("tenants")
        if tenants is not None and (
            not isinstance(tenants, list) or not tenants or not all(isinstance(t, str) and t for t in tenants)
        ):
            raise SettingsError(f"{at}: tenants must be a non-empty list of strings (omit it to allow any tenant)")
        fhir_servers = config.get("fhir_servers", [])
        if not isinstance(fhir_servers, list) or not all(isinstance(u, str) for u in fhir_servers):
            raise SettingsError(f"{at}: fhir_servers must be a list of FHIR server base URLs (or \"*\")")
        try:
            outbound.AllowedServers(fhir_servers, where=f"{at}: fhir_servers")
        except ValueError as error:
            raise SettingsError(str(error)) from None
        if not fhir_servers:
            log.warning("issuer lists no fhir_servers: its calls fetch nothing from a FHIR server",
                        extra={"issuer": _loggable(iss)})
        issuers[iss] = Issuer(
            iss=iss,
            keys=keys,
            jwks_uri=config.get("jwks_uri"),
            allowed_jku=frozenset(allowed_jku),
            tenants=frozenset(tenants) if tenants is not None else None,
            fhir_servers=tuple(u.rstrip("/") if u != "*" else u for u in fhir_servers),
        )
    return issuers


# --- fetched key sets --------------------------------------------------------------------------------------------


@dataclass
class _Fetched:
    keys: dict[str, dict]
    fetched_at: float | None  # when the keys were last fetched successfully (None: never)
    attempted_at: float  # when a fetch was last tried


class RemoteKeySets:
    """JWK Sets fetched from allowlisted URLs (jwks_uri, jku): cached, fetched again when stale or when a kid is
    unknown, the stale set kept when a fetch fails. Thread-safe, and no thread waits long:

    - a fetch is bounded as a whole (connect, headers and body within `timeout`: outbound.Scope), so a server that
      drips its answer cannot hold it;
    - one fetch per URL at a time, made by the thread that needs it; a thread that needs the same URL waits for it
      only if it has no key of its kid at all (a stale key is used meanwhile), and at most `timeout` more; the lock
      that guards the cache is never held during a fetch, so verifications with other keys never wait;
    - an issuer's sets are fetched again at most every `min_refetch_seconds` (counted from the end of its last
      fetch), whatever kids its tokens name: a flood of random kids costs one fetch per period."""

    def __init__(
        self,
        *,
        timeout: float,
        cache_seconds: float,
        min_refetch_seconds: float = MIN_REFETCH_SECONDS,
        session: requests.Session | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.min_refetch_seconds = min_refetch_seconds
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no ~/.netrc credentials on a key-set request
            adapter = outbound.GuardedAdapter(max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        self.monotonic = monotonic
        self._entries: dict[str, _Fetched] = {}
        self._flights: dict[str, threading.Event] = {}  # URL -> set when its fetch in progress ends
        self._last_fetch: dict[str, float] = {}  # issuer (or URL) -> when its last fetch ended
        self._guard = threading.Lock()

    def key(self, url: str, kid: str, issuer: str | None = None) -> dict | None:
        with self._guard:
            now = self.monotonic()
            entry = self._entries.get(url)
            known = entry is not None and kid in entry.keys
            fresh = entry is not None and entry.fetched_at is not None and now - entry.fetched_at < self.cache_seconds
            flight = self._flights.get(url)
            fetch_here = False
            if not (known and fresh) and flight is None and self._may_fetch(url, issuer or url, now):
                flight = self._flights[url] = threading.Event()
                fetch_here = True
        if fetch_here:
            try:
                self._refresh(url, entry, issuer or url)
            finally:
                with self._guard:
                    del self._flights[url]
                flight.set()
        elif flight is not None and not known:
            flight.wait(self.timeout + FETCH_WAIT_GRACE_SECONDS)
        with self._guard:
            entry = self._entries.get(url)
            return entry.keys.get(kid) if entry is not None else None

    def _may_fetch(self, url: str, issuer: str, now: float) -> bool:
        if url not in self._entries:
            return True  # each URL once, however recently its issuer's other sets were fetched
        last = self._last_fetch.get(issuer)
        return last is None or now - last >= self.min_refetch_seconds

    def _refresh(self, url: str, entry: _Fetched | None, issuer: str) -> None:
        started = time.monotonic()
        keys: dict[str, dict] | None = None
        try:
            keys = parse_jwk_set(self._get(url), where=url, strict=False)
        except (requests.RequestException, outbound.Refused, ValueError) as error:
            log.warning(
                "JWK Set fetch failed",
                extra={"url": url, "error": type(error).__name__, "keptStaleKeys": bool(entry and entry.keys)},
            )
        else:
            log.info("JWK Set fetched", extra={"url": url, "keys": len(keys), "ms": round((time.monotonic() - started) * 1000, 1)})
        with self._guard:
            ended = self.monotonic()  # the next fetch is counted from the end of this one, however long it took
            if keys is not None:
                self._entries[url] = _Fetched(keys=keys, fetched_at=ended, attempted_at=ended)
            else:  # the last good set is kept
                self._entries[url] = _Fetched(keys=entry.keys if entry else {},
                                              fetched_at=entry.fetched_at if entry else None, attempted_at=ended)
            self._last_fetch[issuer] = ended

    def _get(self, url: str) -> Any:
        # The trust file names these URLs, so they may be at private addresses (an EHR's own network).
        scope = outbound.Scope(self.timeout, max_bytes=MAX_JWKS_BYTES, allow_private=True, name="JWK Set fetch")
        response = None
        try:
            with outbound.within(scope):
                response = self.session.get(url, timeout=self.timeout, allow_redirects=False, stream=True,
                                            headers={"Accept": "application/json"})
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    scope.take(len(chunk))
        finally:
            if response is not None:
                response.close()
        return json.loads(bytes(body))


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


# --- the authenticator -------------------------------------------------------------------------------------------


def audience_for(request, settings: Settings) -> str:
    """The exact URL the client called, which must be the token's aud: CDS_PUBLIC_URL + path, else the request's URL
    (scheme://host + path, without the query string)."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + request.path
    return request.base_url


_CLAIM_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (ExpiredSignatureError, "token expired"),
    (ImmatureSignatureError, "token not yet valid (iat or nbf in the future)"),
    (InvalidAudienceError, "aud is not the URL called"),
    (InvalidIssuerError, "iss mismatch"),
    (InvalidIssuedAtError, "iat is not a number"),
    (MissingRequiredClaimError, "required claim missing"),
    (InvalidSignatureError, "signature invalid"),
)


class Authenticator:
    def __init__(
        self,
        mode: str,
        issuers: Mapping[str, Issuer],
        *,
        algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
        leeway: float = 30,
        remote: RemoteKeySets | None = None,
        replay: ReplayStore | None = None,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.mode = mode
        self.issuers = dict(issuers)
        self.algorithms = algorithms
        self.leeway = leeway
        self.remote = remote if remote is not None else RemoteKeySets(timeout=3.0, cache_seconds=3600)
        self.replay = replay if replay is not None else ReplayCache()
        self.wall_clock = wall_clock

    @classmethod
    def from_settings(cls, settings: Settings) -> "Authenticator":
        """The authenticator for these settings; SettingsError (the app refuses to start) for a bad trust file or an
        algorithm that is not allowed."""
        unknown = [a for a in settings.extra_jwt_algorithms if a not in OPTIONAL_ALGORITHMS]
        if unknown:
            raise SettingsError(
                f"CDS_JWT_EXTRA_ALGORITHMS may name only {', '.join(OPTIONAL_ALGORITHMS)}, not {', '.join(unknown)}"
            )
        issuers = load_issuers(settings.issuers_file) if settings.issuers_file is not None else {}
        if settings.auth == "required" and settings.public_url is None:
            log.warning(
                "CDS_PUBLIC_URL is not set: the JWT aud is checked against the Host the request names; "
                "set CDS_PUBLIC_URL in production"
            )
        algorithms = DEFAULT_ALGORITHMS + tuple(a for a in OPTIONAL_ALGORITHMS if a in settings.extra_jwt_algorithms)
        return cls(
            settings.auth,
            issuers,
            algorithms=algorithms,
            leeway=settings.jwt_leeway_seconds,
            remote=RemoteKeySets(
                timeout=settings.jwks_fetch_timeout_seconds, cache_seconds=settings.jwks_cache_seconds
            ),
            replay=(default_replay_cache(settings.replay_max_per_issuer) if settings.auth != "off"
                    else ReplayCache(settings.replay_max_per_issuer)),
        )

    def authenticate(self, request, settings: Settings) -> dict | None:
        """The verified claims of the request's token; None when auth is off, or optional and no token was sent.
        Raises errors.Unauthorized (an empty 401) for anything else; the reason is logged, the token never."""
        if self.mode == "off":
            return None
        header = request.headers.get("Authorization")
        if header is None:
            if self.mode == "optional":
                return None
            return self._reject(request, _Rejected("no Authorization header"))
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self._reject(request, _Rejected("Authorization is not a Bearer token"))
        try:
            return self.verify(token, audience_for(request, settings))
        except _Rejected as rejected:
            return self._reject(request, rejected)

    def _reject(self, request, rejected: _Rejected):
        log.warning(
            "authentication rejected",
            extra={"reason": rejected.reason, "path": request.path, **{k: _loggable(v) for k, v in rejected.fields.items()}},
        )
        error = Unauthorized("authentication failed")
        error.reason = rejected.reason
        raise error

    def verify(self, token: str, audience: str) -> dict:
        """The claims of a token that passes every check; _Rejected with the reason otherwise."""
        if len(token) > MAX_TOKEN_CHARS:
            raise _Rejected("token too long")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (PyJWTError, ValueError, TypeError):
            raise _Rejected("token is not a well-formed JWT") from None
        alg, kid, typ, jku = header.get("alg"), header.get("kid"), header.get("typ"), header.get("jku")
        iss = unverified.get("iss")
        if alg not in self.algorithms:
            raise _Rejected("alg not allowed", alg=alg, issuer=iss)
        if not isinstance(kid, str) or not kid:
            raise _Rejected("kid missing", issuer=iss)
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise _Rejected("typ is not JWT", issuer=iss)
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _Rejected("iss not trusted", issuer=iss)
        if jku is not None and (not isinstance(jku, str) or jku not in issuer.allowed_jku):
            raise _Rejected("jku not allowlisted", issuer=iss, jku=jku)

        jwk = self._find_key(issuer, kid, jku)
        if jwk is None:
            raise _Rejected("kid unknown", issuer=iss, kid=kid)
        key = verification_key(jwk, alg)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=audience,
                issuer=iss,
                leeway=self.leeway,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except PyJWTError as error:
            reason = next((r for kind, r in _CLAIM_ERRORS if isinstance(error, kind)), "token invalid")
            raise _Rejected(reason, issuer=iss, kid=kid) from None

        now = self.wall_clock()
        exp, iat, jti = claims["exp"], claims["iat"], claims["jti"]
        if any(finite_number(v) is None for v in (exp, iat)):
            raise _Rejected("exp or iat is not a number", issuer=iss)
        if exp - iat > MAX_TOKEN_LIFETIME_SECONDS + self.leeway:
            raise _Rejected("token lifetime longer than an hour", issuer=iss)
        if not isinstance(jti, str) or not jti:
            raise _Rejected("jti is not a non-empty string", issuer=iss)
        tenant = claims.get("tenant")
        if issuer.tenants is not None and (not isinstance(tenant, str) or tenant not in issuer.tenants):
            raise _Rejected("tenant not allowed", issuer=iss, tenant=tenant)
        if not self.replay.remember(iss, jti, float(exp) + self.leeway, now):
            raise _Rejected("jti replayed", issuer=iss, jti=jti)
        return claims

    def _find_key(self, issuer: Issuer, kid: str, jku: str | None) -> dict | None:
        """The issuer's key of this kid: static set or jwks_uri first, then the token's (allowlisted) jku."""
        if issuer.keys is not None:
            jwk = issuer.keys.get(kid)
        else:
            jwk = self.remote.key(issuer.jwks_uri, kid, issuer.iss)
        if jwk is None and jku is not None:
            jwk = self.remote.key(jku, kid, issuer.iss)
        return jwk
