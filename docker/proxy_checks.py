"""Checks of the Compose stack's reverse proxy that need raw sockets and timing (docker/test-stack.sh).

Runs on the host with Python's standard library only; the signed tokens come ready-made from
`e2e_client.py plan` (the host needs no PyJWT). Every loop is bounded in time and every connection goes to
127.0.0.1, to ports the test published.

    python3 proxy_checks.py --proxy URL --plan PLAN.json --max-body N [--client-timeout S]
                            [--direct URL --replica-threads T] [--tls URL --tls-ca CERT]

1. direct (--direct: one replica's own port, no proxy): slow clients, one byte at a time, do not stall the replica
   either (its worker gathers request heads without a thread), while they are still connected;
2. the same slow clients, more of them than all replicas have threads, through the proxy: other callers' signed
   discovery and patient-view calls still answer, fast, and the proxy cuts every slow client off within its
   header timeout (client_header_timeout, --client-timeout);
3. a body over CDS_MAX_BODY_BYTES gets 413 (JSON) from the proxy as soon as the header says its length, before any
   of it is sent; a body of exactly the limit reaches the service and is answered (the proxy refuses no more than
   the service would);
4. (--tls) HTTPS through the proxy with the test's certificate: readiness and a signed discovery call.

One line per check; exit 0 only when all passed.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

FAILURES: list[str] = []


def expect(name: str, ok: bool, detail: str = "") -> bool:
    print(f"  {'ok  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail and not ok else ''}", flush=True)
    if not ok:
        FAILURES.append(name)
    return ok


def call(method: str, url: str, body: bytes | None = None, bearer: str | None = None, timeout: float = 5.0,
         context: ssl.SSLContext | None = None) -> tuple[int, bytes, float]:
    """(status, body, seconds); status 0 when no answer came in time."""
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Accept", "application/json")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read(), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, error.read(), time.monotonic() - started
    except (OSError, TimeoutError) as error:
        return 0, str(error).encode(), time.monotonic() - started


# --- slow clients -----------------------------------------------------------------------------------------------------

# A request whose header never ends: one byte at a time, it outlasts any bounded run.
SLOW_HEADER = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 100_000


@dataclass
class SlowClient:
    sock: socket.socket
    opened: float
    sent: int = 0
    closed_after: float | None = None  # seconds from opening until the server closed the connection


@dataclass
class SlowClients:
    """N connections, each sending SLOW_HEADER one byte every `interval` seconds, from one thread, for at most
    `duration` seconds; notes when the server closes each one."""

    url: str
    count: int
    interval: float
    duration: float
    clients: list[SlowClient] = field(default_factory=list)
    refused: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        parts = urlsplit(self.url)
        for _ in range(self.count):
            try:
                sock = socket.create_connection((parts.hostname, parts.port), timeout=3)
            except OSError:
                self.refused += 1
                continue
            sock.setblocking(False)
            self.clients.append(SlowClient(sock, time.monotonic()))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _closed(self, client: SlowClient) -> None:
        client.closed_after = time.monotonic() - client.opened
        client.sock.close()

    def _run(self) -> None:
        deadline = time.monotonic() + self.duration
        while not self._stop.is_set() and time.monotonic() < deadline:
            open_clients = [c for c in self.clients if c.closed_after is None]
            if not open_clients:
                return
            # A connection the server closed (or answered: 408, 400) is readable.
            readable, _, _ = select.select([c.sock for c in open_clients], [], [], 0)
            for client in open_clients:
                if client.sock in readable:
                    try:
                        client.sock.recv(65536)
                    except OSError:
                        pass
                    self._closed(client)
                    continue
                try:
                    client.sock.send(SLOW_HEADER[client.sent:client.sent + 1])
                    client.sent += 1
                except BlockingIOError:
                    pass
                except OSError:
                    self._closed(client)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for client in self.clients:
            if client.closed_after is None:
                client.sock.close()

    def still_open(self) -> int:
        return sum(1 for c in self.clients if c.closed_after is None)

    def slowest_close(self) -> float:
        return max((c.closed_after for c in self.clients if c.closed_after is not None), default=0.0)


def control_without_proxy(direct: str, threads: int, interval: float) -> None:
    """Enough slow clients to hold every thread of a replica's workers, were a request's head read on a thread, sent
    to the replica itself: its worker gathers heads without a thread (cds_service/gunicorn_hooks.py), so it keeps
    answering. The proxy is the second line: check 2 shows it cuts such clients off at its own header timeout."""
    count = threads * 4
    slow = SlowClients(direct, count, interval, duration=8.0)
    slow.start()
    try:
        time.sleep(2.0)
        status, body, seconds = call("GET", f"{direct}/healthz", timeout=3.0)
        expect(
            f"direct: {count} slow clients do not stall a replica reached without the proxy (GET /healthz in 3 s)",
            status == 200 and slow.still_open() > 0,
            f"status {status} after {seconds:.2f} s, {slow.still_open()} slow clients still connected",
        )
    finally:
        slow.stop()


def slow_clients_through_proxy(proxy: str, plan: dict, count: int, interval: float, client_timeout: float) -> None:
    slow = SlowClients(proxy, count, interval, duration=client_timeout + 8.0)
    slow.start()
    expect(f"{count} slow clients connected to the proxy", slow.refused == 0, f"{slow.refused} refused")
    calls: list[tuple[str, int, float]] = []
    try:
        time.sleep(1.0)
        # Other callers, while the slow clients hold their connections: for most of the header timeout.
        discovery, patient_view = plan["discovery"], plan["patientView"]
        request = json.dumps(patient_view["request"]).encode()
        window_end = time.monotonic() + max(2.0, client_timeout - 3.0)
        i = 0
        spare = 3  # the last tokens are for the body-limit and HTTPS checks
        while time.monotonic() < window_end and i < len(discovery["tokens"]) - spare:
            status, body, seconds = call("POST", patient_view["url"], request, patient_view["tokens"][i], timeout=5.0)
            rules = []
            if status == 200:
                rules = [r for card in json.loads(body).get("cards", [])
                         for r in ((card.get("extension") or {}).get("calcinosis-cds") or {}).get("rules", [])]
            calls.append(("patient-view", status if patient_view["expectedRule"] in rules else -status, seconds))
            status, _, seconds = call("GET", discovery["url"], bearer=discovery["tokens"][i], timeout=5.0)
            calls.append(("discovery", status, seconds))
            i += 1
            time.sleep(0.2)
        open_during = slow.still_open()
        # Then wait for the proxy to cut the slow clients off.
        deadline = time.monotonic() + client_timeout + 6.0
        while slow.still_open() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        slow.stop()
    good = [c for c in calls if c[1] == 200]
    slowest = max((c[2] for c in calls), default=0.0)
    expect(
        f"while {count} slow clients held connections, other callers got answers "
        f"({len(good)}/{len(calls)} signed calls 200, patient-view cards with the expected rule; slowest "
        f"{slowest * 1000:.0f} ms)",
        len(calls) >= 10 and len(good) == len(calls) and slowest < 2.0,
        f"calls: {[(n, s, round(t, 2)) for n, s, t in calls if s != 200 or t >= 2.0][:10]}",
    )
    expect(
        f"the slow clients were still connected while those calls ran ({open_during}/{count} open)",
        open_during >= count * 0.9,
        "the proxy or the network dropped them early: the calls above did not run under the attack",
    )
    expect(
        f"the proxy cut every slow client off within its header timeout ({client_timeout:.0f} s; slowest "
        f"{slow.slowest_close():.1f} s)",
        slow.still_open() == 0 and slow.slowest_close() <= client_timeout + 3.0,
        f"{slow.still_open()} still open after {client_timeout + 6.0:.0f} s",
    )


def body_limit(proxy: str, plan: dict, max_body: int) -> None:
    patient_view = plan["patientView"]
    parts = urlsplit(patient_view["url"])
    # The header alone, announcing one byte too many: the proxy answers without waiting for the body.
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {patient_view['tokens'][-1]}\r\nContent-Length: {max_body + 1}\r\n\r\n".encode()
        )
        started = time.monotonic()
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or len(answer) < answer.find(b"\r\n\r\n") + 60:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            pass
        seconds = time.monotonic() - started
    head, _, rest = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    try:
        error = json.loads(rest[: rest.rfind(b"}") + 1]).get("error", "")
    except ValueError:
        error = ""
    expect(
        f"a body of {max_body + 1} bytes (CDS_MAX_BODY_BYTES + 1) gets 413 from the proxy before it is sent",
        status_line.startswith("HTTP/1.1 413") and "too large" in error and seconds < 3.0,
        f"{status_line!r} after {seconds:.1f} s, body {rest[:200]!r}",
    )
    # Exactly the limit: JSON padded with spaces to max_body bytes, which the service parses as it is.
    body = json.dumps(patient_view["request"]).encode()
    body += b" " * (max_body - len(body))
    status, answer_body, seconds = call("POST", patient_view["url"], body, patient_view["tokens"][-2], timeout=20.0)
    expect(
        f"a body of exactly {max_body} bytes passes the proxy and the service answers it",
        status == 200 and b'"cards"' in answer_body,
        f"{status} after {seconds:.1f} s: {answer_body[:200]!r}",
    )


def https(tls: str, ca: str, plan: dict) -> None:
    context = ssl.create_default_context(cafile=ca)
    status, body, _ = call("GET", f"{tls}/readyz", context=context)
    expect("HTTPS through the proxy: /readyz is 200", status == 200, f"{status} {body[:200]!r}")
    discovery = plan["discovery"]
    status, body, _ = call("GET", f"{tls}/cds-services", bearer=discovery["tokens"][-1], context=context)
    expect("HTTPS through the proxy: signed discovery is 200", status == 200, f"{status} {body[:200]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxy", required=True, help="the proxy's HTTP URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--plan", required=True, help="plan.json from e2e_client.py plan")
    parser.add_argument("--max-body", type=int, required=True, help="CDS_MAX_BODY_BYTES of the stack")
    parser.add_argument("--client-timeout", type=float, default=10.0, help="the proxy's client_header_timeout")
    parser.add_argument("--slow-clients", type=int, default=48, help="slow clients sent through the proxy")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between two bytes of a slow client")
    parser.add_argument("--direct", help="one replica's own URL, for the check without the proxy")
    parser.add_argument("--replica-threads", type=int, default=8, help="GUNICORN_WORKERS x GUNICORN_THREADS")
    parser.add_argument("--tls", help="the proxy's HTTPS URL")
    parser.add_argument("--tls-ca", help="the certificate to trust for --tls")
    args = parser.parse_args()
    plan = json.loads(open(args.plan, encoding="utf-8").read())

    if args.direct:
        control_without_proxy(args.direct.rstrip("/"), args.replica_threads, args.interval)
    slow_clients_through_proxy(args.proxy.rstrip("/"), plan, args.slow_clients, args.interval, args.client_timeout)
    body_limit(args.proxy.rstrip("/"), plan, args.max_body)
    if args.tls:
        https(args.tls.rstrip("/"), args.tls_ca, plan)

    if FAILURES:
        print(f"proxy checks: {len(FAILURES)} failed: {'; '.join(FAILURES)}")
        return 1
    print("proxy checks: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
