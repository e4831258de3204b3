"""gunicorn server hooks and the worker class shared by the image's config (docker/gunicorn.conf.py) and
`calcinosis-cds serve`."""

from __future__ import annotations

import gc
import os
import select
import socket
import threading
import time

from gunicorn import util
from gunicorn.workers import gthread

from . import outbound


def pre_fork(server, worker) -> None:
    """Freeze what start-up built (the R4B model classes, code tables, rules: ~90,000 objects) before a worker is
    forked, so that the worker's garbage collector never walks it again. Without this, a full collection every ten
    calls or so walked all of it and paused that call for 20-40 ms (docs/performance.md); the pages stay shared
    between workers, too, since collections no longer write to them."""
    gc.collect()
    gc.freeze()


def child_exit(server, worker) -> None:
    """A worker is gone (exited, killed, recycled): its live metrics files are dropped, its counters kept
    (prometheus-client's multiprocess mode; metrics.py)."""
    from .metrics import mark_process_dead

    mark_process_dead(worker.pid)
HEAD_TIMEOUT_SECONDS = 10.0
"""How long a client may take to send a request's line and headers (CDS_REQUEST_HEAD_TIMEOUT_SECONDS)."""
HEAD_BUFFER_BYTES = 64 * 1024
"""A head not complete within this many bytes goes to a thread as it is (gunicorn's limits then apply)."""
_END_OF_HEAD = b"\r\n\r\n"


class _RequestBound:
    """The watchdog's handle on one request a thread is serving: at `at`, its socket is shut down."""

    __slots__ = ("at", "sock", "done", "lock")

    def __init__(self, sock: socket.socket, seconds: float):
        self.at = time.monotonic() + seconds
        self.sock = sock
        self.done = False
        self.lock = threading.Lock()

    def abort(self) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # the thread's blocked read or write fails at once
        except OSError:
            pass

    def finish(self) -> None:
        with self.lock:
            self.done = True


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker, made safe against slow clients.

    gthread gives a connection a thread as soon as its first byte arrives, and the thread then reads the headers
    with no time limit: ten clients sending a header byte every 2 s held every thread, and the service answered no
    one. Here:

    - a request's line and headers are gathered without a thread: each time the socket is readable a thread reads
      what is there without blocking and, while the head is not complete, hands the connection back to the poller
      (the connection waits like a kept-alive one); a head not complete within CDS_REQUEST_HEAD_TIMEOUT_SECONDS of
      its first byte closes the connection;
    - once a thread serves a request, the request has `timeout` (GUNICORN_TIMEOUT) seconds in all: then its socket
      is shut down, so a client that sends its body or reads the answer slowly frees the thread then, at the latest
      (gunicorn's own `timeout` restarts only a worker whose main loop stops, never one request of a gthread worker).

    TLS and HTTP/2 connections are served by gthread as they are (the image terminates TLS in front of it)."""

    def init_process(self):
        from .settings import request_head_timeout

        raw = os.environ.get("CDS_REQUEST_HEAD_TIMEOUT_SECONDS", "").strip()
        # Checked when the app was built (settings.py): a bad value never gets this far.
        self.head_timeout = request_head_timeout(raw) if raw else HEAD_TIMEOUT_SECONDS
        super().init_process()

    def handle(self, conn):
        if not (self.cfg.is_ssl or conn.is_http2 or getattr(self.cfg, "http2_cleartext", "off") != "off"):
            ready = self._gather_head(conn)
            if ready is False:
                # Closed here, at once: gthread would close it on its main loop "gracefully", reading what the
                # client still sends for up to 2 s, and a slow client is exactly one that still sends.
                try:
                    conn.sock.close()
                except OSError:
                    pass
            if ready is not True:
                return ready
        bound = _RequestBound(conn.sock, self.cfg.timeout or 30)
        outbound.at_deadline(bound)
        try:
            keep = super().handle(conn)
        finally:
            bound.finish()
        if keep is False:
            # gthread lingers on a closing connection (reading for up to 2 s, so that an unread request does not
            # turn the last answer into a reset) on its main loop, where it stalls every other connection: linger
            # here instead, briefly, on this thread.
            util.close_graceful(conn.sock, timeout=0.5)
        return keep

    def _gather_head(self, conn):
        """True when the head is complete (it is then in the parser's buffer), gthread's deferral while it is not,
        False to close the connection."""
        head = conn.__dict__.setdefault("cds_head", bytearray())
        if conn.parser is not None:  # a kept-alive connection: what the last request read ahead comes first
            head[:0] = conn.parser.unreader.take_buffered()
        if not head and not _readable(conn.sock, 0.05):
            started = conn.__dict__.setdefault("cds_head_started", time.monotonic())
            return gthread._DEFER if time.monotonic() - started < self.head_timeout else False
        conn.__dict__.setdefault("cds_head_started", time.monotonic())
        conn.sock.setblocking(False)
        try:
            while _END_OF_HEAD not in head and len(head) < HEAD_BUFFER_BYTES:
                data = conn.sock.recv(HEAD_BUFFER_BYTES)
                if not data:
                    return False  # the client closed the connection
                head += data
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return False
        finally:
            conn.sock.setblocking(True)
        if _END_OF_HEAD in head or len(head) >= HEAD_BUFFER_BYTES:
            conn.init()
            conn.parser.unreader.unread(bytes(head))
            del conn.cds_head, conn.cds_head_started
            return True
        if time.monotonic() - conn.cds_head_started >= self.head_timeout:
            self.log.debug("Closing a connection whose request head did not arrive in time")
            return False
        conn.data_ready = False
        return gthread._DEFER


def _readable(sock: socket.socket, timeout: float) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout * 1000))
