"""Outbound HTTP that a slow or hostile server cannot stretch: one deadline for connect, headers and body, a byte
budget, and no connection to an address the caller may not reach.

requests and urllib3 bound each socket operation, not a request: a server that sends a byte every half second never
trips a read timeout, in the headers or the body. Here every request is sent within a Scope (one service call's FHIR
fetches, or one JWK Set fetch):

- the connections a scope uses are registered with it, and at its deadline a watchdog thread shuts their sockets
  down (shutdown(2) on a duplicate of the descriptor): a thread blocked in connect, the TLS handshake, the headers
  or the body wakes at once with an error, and nothing it was doing outlives the deadline by more than a moment;
- a scope carries a byte budget for all its answers together, taken as the body is read (Scope.take);
- a scope says whether private addresses may be reached: unless it allows them, a connection whose peer is a
  loopback, private, link-local or otherwise non-global address is refused right after connect (the address actually
  connected to, so a DNS answer that changes between a check and the connect changes nothing).

Through a proxy (HTTPS_PROXY) the peer is the proxy; the address rule is then the proxy's to enforce.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import logging
import re
import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

log = logging.getLogger("cds_service.outbound")


class Refused(Exception):
    """The scope refused the request: its deadline passed, its byte budget ran out, or the peer's address is not
    allowed. The message is safe to show a caller (no address, no URL)."""


class Scope:
    """What the requests of one deadline share. Thread-safe: a call's keys are fetched on several threads."""

    def __init__(self, seconds: float, *, max_bytes: int, allow_private: bool, name: str = "fetch"):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self.name = name
        self.bytes_read = 0
        self.aborted = False
        self._connections: set = set()
        self._lock = threading.Lock()
        _watchdog.watch(self)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self) -> None:
        if self.aborted or self.remaining() <= 0:
            raise Refused(f"not obtained within the {self.name} deadline of {self.seconds:g} s")

    def take(self, count: int) -> None:
        """Count `count` more bytes read; Refused past the budget (or the deadline)."""
        with self._lock:
            self.bytes_read += count
            over = self.bytes_read > self.max_bytes
        if over:
            raise Refused(f"the answers are larger than the {self.name} budget of {self.max_bytes} bytes")
        self.check()

    def abort(self) -> None:
        """End every request of the scope now: what is blocked on a socket wakes with an error."""
        with self._lock:
            self.aborted = True
            connections, self._connections = self._connections, set()
        for connection in connections:
            connection.cds_shutdown()

    def admit(self, connection: "_Guarded") -> None:
        """Register a connection this scope is about to use, after checking its peer's address."""
        if not self.allow_private and connection.cds_peer is not None and not _is_global(connection.cds_peer):
            raise Refused("the FHIR server's address is loopback, private or link-local, and the server is not listed")
        with self._lock:
            if self.aborted:
                raise Refused(f"not obtained within the {self.name} deadline of {self.seconds:g} s")
            self._connections.add(connection)
        _current.admitted.append(connection)

    def release(self, connection: "_Guarded") -> None:
        with self._lock:
            self._connections.discard(connection)


_current = threading.local()


@contextmanager
def within(scope: Scope) -> Iterator[Scope]:
    """The request this thread sends inside the block belongs to `scope`. Leave the block before the response is
    closed: its connection then leaves the scope before it goes back to the pool, where another call may take it
    (and this scope's deadline must not shut it down under that call)."""
    _current.scope, _current.admitted = scope, []
    try:
        yield scope
    finally:
        for connection in _current.admitted:
            scope.release(connection)
        _current.scope, _current.admitted = None, []


def _is_global(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _Guarded:
    """Mixed into urllib3's connections: each new socket is checked and duplicated (the duplicate is what the
    watchdog shuts down, whatever TLS has wrapped around the original), and every request joins the thread's scope."""

    cds_peer: str | None = None
    cds_handle: socket.socket | None = None

    def _new_conn(self):  # noqa: D401 - urllib3 API
        sock = super()._new_conn()
        proxied = bool(getattr(self, "proxy", None))
        try:
            self.cds_peer = None if proxied else sock.getpeername()[0]
            self.cds_handle = sock.dup()
        except OSError:
            sock.close()
            raise
        scope = getattr(_current, "scope", None)
        if scope is not None:
            try:
                scope.admit(self)
            except Refused:
                self.cds_close_handle()
                sock.close()
                raise
        return sock

    def request(self, *args, **kwargs):
        scope = getattr(_current, "scope", None)
        if scope is not None and self.sock is not None:  # a kept-alive connection, reused by this scope
            scope.admit(self)
        return super().request(*args, **kwargs)

    def cds_shutdown(self) -> None:
        handle = self.cds_handle
        if handle is not None:
            try:
                handle.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cds_close_handle(self) -> None:
        handle, self.cds_handle = self.cds_handle, None
        if handle is not None:
            handle.close()

    def close(self):
        try:
            super().close()
        finally:
            self.cds_close_handle()


class GuardedHTTPConnection(_Guarded, HTTPConnection):
    pass


class GuardedHTTPSConnection(_Guarded, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """requests' adapter with guarded connections, direct or through a proxy."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager


class _Watchdog:
    """One thread per process that aborts each scope (anything with `at`, a time.monotonic() deadline, and
    `abort()`) at its deadline. Started on first use, and again in a process forked after it started (threads do not
    survive a fork)."""

    def __init__(self):
        self._heap: list[tuple[float, int, object]] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def watch(self, scope) -> None:
        import os

        with self._condition:
            heapq.heappush(self._heap, (scope.at, next(self._counter), scope))
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="outbound-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is scope:
                self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._condition.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                _, _, scope = heapq.heappop(self._heap)
            try:
                scope.abort()
            except Exception:  # the watchdog must outlive any one scope
                log.exception("aborting an outbound scope failed")


_watchdog = _Watchdog()


def at_deadline(item) -> None:
    """Call item.abort() at item.at (time.monotonic()), on the watchdog thread."""
    _watchdog.watch(item)


# --- which servers may be reached ---------------------------------------------------------------------------------

# A backslash, a space, a control character or DEL (one regex search: the character-by-character test it replaces
# cost ~0.1 ms a URL, twice for each of a call's nine fetches, under the GIL).
_UNSAFE_URL_CHAR = re.compile(r"[\x00-\x20\x7f\\]")


def _plain(url: object) -> bool:
    """A non-empty string with no backslash, space, control character or DEL anywhere (parsers disagree on those, and
    no FHIR server needs them)."""
    return isinstance(url, str) and bool(url) and not _UNSAFE_URL_CHAR.search(url)


def _read_http_url(url: str):
    """urllib3's reading of a plain URL if it is http(s) with a host, else None."""
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        parts = parse_url(url)
    except (LocationParseError, ValueError):
        return None
    if parts.scheme not in ("http", "https") or not parts.host:
        return None
    return parts


def parse_http_url(url: object):
    """urllib3's reading of an http(s) URL (the one that decides where requests connects), or None for anything
    else: not a string, another scheme, no host, or a backslash, space or control character anywhere (parsers
    disagree on those, and no FHIR server needs them)."""
    return _read_http_url(url) if _plain(url) else None


def origin_of(url: object) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL as urllib3 reads it, or None (see parse_http_url)."""
    if not _plain(url):
        return None
    # Read without the query and fragment: in urllib3's grammar the authority is `[^\\/?#]*`, so what precedes the
    # first "?" or "#" holds the whole scheme and authority, and only the authority can make parse_url fail. The
    # query is what costs: parse_url re-encodes it byte by byte (~0.2 ms for the 1.2 KB Observation search, checked
    # twice for each request a call sends).
    parts = _read_http_url(url.partition("?")[0].partition("#")[0])
    if parts is None:
        return None
    return parts.scheme, parts.host.lower(), parts.port or (443 if parts.scheme == "https" else 80)


class AllowedServers:
    """The servers a call may fetch from: base URLs (a server whose URL is at or below one, at any address), and
    `*` for any server at global addresses only (never loopback, private or link-local)."""

    LISTED = "listed"
    PUBLIC = "public"

    def __init__(self, entries: tuple[str, ...] | list[str], *, where: str):
        self.entries = tuple(entries)
        self.any_public = False
        self._bases: list[tuple[tuple[str, str, int], str]] = []
        for entry in self.entries:
            if entry == "*":
                self.any_public = True
                continue
            parts = parse_http_url(entry)
            if parts is None or parts.auth or parts.query or parts.fragment:
                raise ValueError(f"{where}: {entry!r} is not an http(s) base URL (no credentials, query or fragment)")
            self._bases.append((origin_of(entry), (parts.path or "").rstrip("/")))

    def decide(self, url: str) -> str | None:
        """LISTED when a base URL covers `url`, PUBLIC when only `*` does, None when the call may not fetch from it."""
        origin, parts = origin_of(url), parse_http_url(url)
        if origin is None:
            return None
        path = (parts.path or "").rstrip("/")
        for base_origin, base_path in self._bases:
            if origin == base_origin and (path == base_path or path.startswith(base_path + "/")):
                return self.LISTED
        return self.PUBLIC if self.any_public else None
