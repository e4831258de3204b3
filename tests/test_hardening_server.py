"""Issue 16, findings 5 and 6 (its framing part), redone as found against the real server (`calcinosis-cds serve`,
gunicorn with the service's worker): clients that send their headers a byte every 2 s, a body that never ends,
malformed and oversized chunked bodies, and gunicorn's own limits on request lines and headers."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import urllib.request

import pytest

from ._processes import free_port, server_process
from .conftest import PATIENT_VIEW, minimal_request

pytestmark = pytest.mark.slow
SERVICE = f"/cds-services/{PATIENT_VIEW}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = dict(os.environ, CDS_AUTH="off", CDS_LOG_LEVEL="WARNING", CDS_REQUEST_HEAD_TIMEOUT_SECONDS="3",
               CDS_MAX_BODY_BYTES=str(1024 * 1024), CDS_DATA_DIR=str(tmp_path_factory.mktemp("data")))
    command = [sys.executable, "-m", "cds_service.service.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--threads", "4", "--timeout", "4"]
    with server_process(command, f"http://127.0.0.1:{port}/healthz", name="the server", env=env):
        yield port


def healthy_call(port: int, timeout: float = 10) -> tuple[int, float]:
    started = time.monotonic()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/cds-services")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, time.monotonic() - started


def raw_exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        answer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer and b"Content-Length" in answer:
                head, _, body = answer.partition(b"\r\n\r\n")
                length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
        return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


# --- finding 5 ------------------------------------------------------------------------------------------------------


def test_ten_clients_sending_headers_a_byte_every_two_seconds_stop_no_one(server):
    stop = threading.Event()
    closed_after = []

    def slow_client():
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server)) as conn:
            def watch_for_close():
                try:
                    conn.recv(1)  # returns (or is reset) when the server closes the connection
                except OSError:
                    pass
                closed_after.append(time.monotonic() - started)

            threading.Thread(target=watch_for_close, daemon=True).start()
            head = b"GET /cds-services HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
            try:
                for byte in head:
                    conn.sendall(bytes([byte]))
                    if stop.wait(2) or len(closed_after) == 10:
                        return
            except OSError:  # the server closed it
                pass

    clients = [threading.Thread(target=slow_client) for _ in range(10)]
    for client in clients:
        client.start()
    try:
        time.sleep(2.5)  # every slow client has sent a byte or two: each would hold a thread in plain gthread
        for _ in range(3):
            status, elapsed = healthy_call(server)
            assert status == 200 and elapsed < 2.0, elapsed
        for client in clients:
            client.join(timeout=15)
    finally:
        stop.set()
    assert len(closed_after) == 10, "every slow client is closed once its head is late"
    # at the head timeout (3 s) once the next byte comes, or sooner when a pause outlasts the keep-alive wait
    assert all(t < 3 + 2 + 1.5 for t in closed_after), closed_after


def test_a_body_that_never_ends_frees_its_thread_at_the_request_timeout(server):
    conns = []
    try:
        for _ in range(4):  # as many as the worker has threads
            conn = socket.create_connection(("127.0.0.1", server))
            conn.sendall(f"POST {SERVICE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Content-Length: 100000\r\n\r\n{\"hook\":".encode())
            conns.append(conn)
        started = time.monotonic()
        status, _ = healthy_call(server, timeout=15)
        assert status == 200 and time.monotonic() - started < 4 + 2.5
        for conn in conns:  # the server shut each of them down at the request timeout
            conn.settimeout(5)
            assert conn.recv(65536) in (b"",) or conn.recv(65536) == b""
    finally:
        for conn in conns:
            conn.close()


def test_gunicorn_limits_on_the_request_line_and_headers(server):
    long_line = raw_exchange(server, b"GET /cds-services?" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(long_line) in (400, 414)
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(60))
    assert status_of(raw_exchange(server, b"GET /cds-services HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")) in (400, 431)
    big = b"X-Big: " + b"a" * 20_000 + b"\r\n"
    assert status_of(raw_exchange(server, b"GET /cds-services HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")) in (400, 431)
    # a token of 16 KiB still fits (security.MAX_TOKEN_CHARS is what refuses a longer one, with a 401)
    token = b"Authorization: Bearer " + b"a" * 16_000 + b"\r\n"
    assert status_of(raw_exchange(server, b"GET /cds-services HTTP/1.1\r\nHost: x\r\n" + token + b"\r\n")) == 200


# --- finding 6: bodies, however framed ---------------------------------------------------------------------------


def chunked_post(body_chunks: bytes) -> bytes:
    return (f"POST {SERVICE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + body_chunks


def test_a_malformed_chunked_body_is_a_400(server):
    answer = raw_exchange(server, chunked_post(b"zz\r\n{}\r\n0\r\n\r\n"))
    assert status_of(answer) == 400, answer[:300]
    answer = raw_exchange(server, chunked_post(b"5\r\n{\"a\":1}\r\n0\r\n\r\n"))  # a chunk longer than its size
    assert status_of(answer) == 400, answer[:300]


def test_an_oversized_chunked_body_is_a_413_not_invalid_json(server):
    piece = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(2 * 1024 * 1024 // len(piece)))
    answer = raw_exchange(server, chunked_post(b"1\r\n[\r\n" + chunks + b"0\r\n\r\n"))
    assert status_of(answer) == 413, answer[:300]
    assert b"larger than" in answer


def test_a_body_of_exactly_the_limit_is_answered_and_one_byte_more_is_a_413(server):
    body = json.dumps(minimal_request()).encode()
    body += b" " * (1024 * 1024 - len(body))
    head = f"POST {SERVICE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    answer = raw_exchange(server, f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert status_of(answer) == 200, answer[:300]
    answer = raw_exchange(server, f"{head}Content-Length: {len(body) + 1}\r\n\r\n".encode() + body + b" ")
    assert status_of(answer) == 413, answer[:300]


def test_a_chunked_body_within_the_limit_is_read_whole(server):
    body = json.dumps(minimal_request()).encode()
    half = len(body) // 2
    chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
    answer = raw_exchange(server, chunked_post(chunks))
    assert status_of(answer) == 200, answer[:300]
