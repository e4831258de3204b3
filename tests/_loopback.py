"""Hostile and faulty HTTP servers for tests, on 127.0.0.1, in threads of the test process, stopped by the test.

Each server answers every request with what `answer(request)` returns: bytes sent at once, or an Answer that drips
its bytes, waits, or redirects. Every request is recorded with its headers, so a test can see whether an
Authorization header reached a server it must never reach.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]


@dataclass
class Answer:
    raw: bytes
    drip_bytes: int = 0  # send the first `drip_bytes` bytes one at a time...
    drip_interval: float = 0.0  # ...this far apart, then the rest at once


def http_answer(status: int = 200, body: bytes | dict | list = b"", headers: dict[str, str] | None = None) -> bytes:
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Content-Type: application/fhir+json",
             "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoopbackServer:
    answer: Callable[[Request], bytes | Answer]
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def authorizations(self) -> list[str]:
        return [r.headers["authorization"] for r in self.requests if "authorization" in r.headers]

    def _serve(self, listener: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
            except OSError:
                return
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, _ = (head[0].split(" ") + ["", ""])[:3]
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            request = Request(method, target, headers)
            self.requests.append(request)
            answer = self.answer(request)
            if isinstance(answer, bytes):
                answer = Answer(answer)
            try:
                for i in range(min(answer.drip_bytes, len(answer.raw))):
                    if self.stopping.wait(answer.drip_interval):
                        return
                    conn.sendall(answer.raw[i : i + 1])
                conn.sendall(answer.raw[answer.drip_bytes :])
            except OSError:
                return


@contextlib.contextmanager
def loopback_server(answer: Callable[[Request], bytes | Answer]) -> Iterator[LoopbackServer]:
    server = LoopbackServer(answer)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    server.port = listener.getsockname()[1]
    thread = threading.Thread(target=server._serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        thread.join(timeout=5)


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
