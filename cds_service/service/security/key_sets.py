"""Key sets fetched from an issuer's jwks_uri or an allowlisted jku: one deadline for the whole fetch, cached,
fetched again for an unknown kid at most every MIN_REFETCH_SECONDS per issuer, and never a lock that calls verified
by other keys wait on."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import requests

from .. import outbound

from .trust import FETCH_WAIT_GRACE_SECONDS, MAX_JWKS_BYTES, MIN_REFETCH_SECONDS, parse_jwk_set

log = logging.getLogger("cds_service.security")

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
