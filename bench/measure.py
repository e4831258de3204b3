"""The measurements of `python -m bench`: for one patient, the service beside its floor under wrk (long runs, then
paired rounds at each concurrency); then the fetch path against a fake FHIR server.

Every call to the service carries a fresh token of its own (bench/tokens.py): the production path. The servers of one
patient run side by side: the baseline (the framework's floor, bench/baseline.py), the same floor parsing with orjson
(a reference), the service as the image runs it (CDS_AUTH=required), the same service with CDS_AUTH=off, whose
difference from the first is the token check's own share, and the floor with the service's token check
(baseline-token, a reference: what any service verifying the token as this one pays; in the paired rounds only). All
of them get the same requests, Authorization header included; only the service and baseline-token check it.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from . import report
from .data import SERVICE_ID, Patient
from .fhir_server import FhirServer, search
from .loadgen import LoadResult, run_wrk
from .servers import BASELINE_APP, BASELINE_ORJSON_APP, BASELINE_TOKEN_APP, SERVICE_APP, Server, start_all
from .tokens import Issuer, pool_size

SERVICE_PATH = f"/cds-services/{SERVICE_ID}"
AUTH, NOAUTH, BASELINE, ORJSON = "service", "service-noauth", "baseline", "baseline-orjson"
FLOOR_TOKEN = "baseline-token"
CHECKS_TOKENS = (AUTH, FLOOR_TOKEN)  # they verify each token and refuse replays: a fresh one for every request
REUSED_POOL = 64  # tokens per wrk thread for a server that does not check them (the same header, cycled)


def pace_key(key: str, server: str) -> str:
    """Under which key Bench.rates keeps a server's pace (the service's under the patient's or path's own key): each
    server that checks tokens sizes its pools from its own pace."""
    return key if server == AUTH else f"{key}/{server}"


def post(url: str, body: bytes, token: str | None = None, timeout: float = 60.0) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {}


@dataclass
class Bench:
    """What every measurement shares: the options, wrk, the issuer of the tokens and its trust file, the results
    folder, and the service's throughput seen so far (to size the next run's token pool)."""
    args: object
    wrk: str
    issuer: Issuer
    trust_file: Path
    out: Path
    cores: int
    rates: dict[tuple[str, int], float] = field(default_factory=dict)
    reruns: int = 0  # runs made again because their token pool ran out

    def servers(self, label: str, apps: tuple[str, ...], fhir_servers: tuple[str, ...] = ()) -> dict[str, Server]:
        # The image's environment for all (its gunicorn config reads the service's settings, which refuse
        # CDS_AUTH=required without a trust file, even in front of the baseline); only AUTH checks the tokens.
        trust_file = self.trust_file
        if fhir_servers:  # a trust file that also lets the issuer's calls fetch from these servers
            trust_file = self.issuer.write_trust_file(self.out / f"issuers-{label}.json", fhir_servers)
        trust = {"CDS_ISSUERS": str(trust_file)}
        made = {
            BASELINE: lambda: Server(BASELINE, BASELINE_APP, self.out / f"baseline-{label}.log", extra_env=trust),
            ORJSON: lambda: Server(ORJSON, BASELINE_ORJSON_APP, self.out / f"baseline-orjson-{label}.log",
                                   extra_env=trust),
            AUTH: lambda: Server(AUTH, SERVICE_APP, self.out / f"service-{label}.log", public_url=True,
                                 extra_env={**trust, "CDS_AUTH": "required"}),
            NOAUTH: lambda: Server(NOAUTH, SERVICE_APP, self.out / f"service-noauth-{label}.log",
                                   extra_env={**trust, "CDS_AUTH": "off"}),
            FLOOR_TOKEN: lambda: Server(FLOOR_TOKEN, BASELINE_TOKEN_APP, self.out / f"baseline-token-{label}.log",
                                        public_url=True, extra_env={**trust, "CDS_AUTH": "required"}),
        }
        return {name: made[name]() for name in apps}

    def call(self, server: Server, body: bytes, path: str = SERVICE_PATH) -> tuple[int, dict]:
        return post(server.url + path, body, self.issuer.token(server.url + path))

    def expected_rate(self, key: str, connections: int) -> float:
        """Requests a second the service may reach at this concurrency: the fastest seen at it, or at a lower one
        times the cores that more connections can keep busy."""
        seen = {c: rate for (k, c), rate in self.rates.items() if k == key}
        if connections in seen:
            return seen[connections]
        lower = [rate * min(self.cores, connections // c) for c, rate in seen.items() if c < connections]
        return max(lower or [max(seen.values(), default=50.0) * self.cores])

    def load(self, key: str, server: Server, body: bytes, connections: int, seconds: float,
             path: str = SERVICE_PATH) -> LoadResult:
        """One wrk run; a fresh token for every request to the service that checks them. A run whose pool ran out
        (the machine got quicker than any run before it) did not measure the production path, since the service
        refused the replays: it is run again with a pool sized from its own pace, at most twice."""
        audience = server.url + path
        checks = server.name in CHECKS_TOKENS
        key = pace_key(key, server.name)
        for attempt in range(3):
            count = pool_size(seconds, connections, self.expected_rate(key, connections)) if checks else None

            def tokens(threads: int, stem: Path) -> None:
                self.issuer.write_pools(audience, count or REUSED_POOL * threads, threads, stem)

            result = run_wrk(self.wrk, audience, body, connections=connections, seconds=seconds, tokens=tokens)
            if not checks:
                return result
            # The requests sent (refused replays included) bound the pace the next pool must keep up with.
            pace = result.throughput if not result.wrapped else result.sent / max(result.seconds, 1e-3)
            self.rates[(key, connections)] = max(self.rates.get((key, connections), 0.0), pace)
            if not result.wrapped:
                break
            self.reruns += 1
            print(f"  {key:8} {server.name:15} c={connections:<2} token pool of {count} ran out "
                  f"({result.wrapped} replays refused): run again with a larger one", flush=True)
        if result.wrapped:  # still out of tokens: the refused replays count as errors, and say why
            result.error_detail["token pool exhausted"] = result.wrapped
        return result


def run_entry(server: Server, connections: int, result: LoadResult) -> dict:
    return {"server": server.name, "connections": connections, **asdict(result), "throughput": result.throughput}


def measure_size(bench: Bench, patient: Patient) -> dict:
    args, size = bench.args, patient.size
    body = patient.body()
    entry = {"size": size, "shape": patient.shape(), "body_bytes": len(body), "runs": [], "rounds": {}}
    servers = bench.servers(size, (BASELINE, AUTH, NOAUTH, ORJSON, FLOOR_TOKEN))
    baseline, service, noauth, orjson_floor, floor_token = (servers[k] for k in (BASELINE, AUTH, NOAUTH, ORJSON,
                                                                                FLOOR_TOKEN))
    try:
        start_all(list(servers.values()))
        first = time.perf_counter()
        status, answer = bench.call(service, body)
        entry["first_call_ms"] = (time.perf_counter() - first) * 1000  # a fresh worker: what start-up left undone
        if status != 200:
            raise RuntimeError(f"the service answered {status} for the {size} patient: {str(answer)[:300]}")
        entry["cards"] = len(answer.get("cards", []))
        entry["rules"] = sorted({rule for card in answer.get("cards", [])
                                 for rule in card.get("extension", {}).get("calcinosis-cds", {}).get("rules", [])})
        # The production path is measured only if the service really checks the token. (A small body: the service
        # refuses before reading the body, and closes the connection under a client still sending megabytes.)
        for server in (service, floor_token):
            unsigned, _ = post(server.url + SERVICE_PATH, b'{"hook":"patient-view"}')
            if unsigned != 401:
                raise RuntimeError(f"{server.name} answered {unsigned} to a call without a token; expected 401")
        for server in (baseline, noauth, floor_token):
            status, answer = bench.call(server, body)
            if status != 200 or (server is not noauth and answer != {"cards": []}):
                raise RuntimeError(f"{server.name} answered {status}: {str(answer)[:300]}")
        warm = 2 if args.smoke else (5 if len(body) > 1_000_000 else 20)
        timings: dict[str, list[float]] = {AUTH: [], FLOOR_TOKEN: []}
        for server in (baseline, service, noauth, orjson_floor, floor_token):  # every worker warms its caches
            for _ in range(warm):
                started = time.perf_counter()
                bench.call(server, body)
                if server.name in timings:
                    timings[server.name].append(time.perf_counter() - started)
        for name, seconds in timings.items():
            bench.rates.setdefault((pace_key(size, name), 1), 1 / statistics.median(seconds))
        for connections in args.concurrency:
            # Interleaved, so that all see the same machine; the orjson floor (a reference) at c=1 only.
            for server in (baseline, service) + ((orjson_floor,) if connections == 1 and not args.smoke else ()):
                result = bench.load(size, server, body, connections, args.duration)
                entry["runs"].append(run_entry(server, connections, result))
                print(f"  {size:8} {server.name:15} c={connections:<2} p50={result.p50_ms:8.1f} ms  "
                      f"p99={result.p99_ms:8.1f} ms  {result.throughput:7.1f} req/s  errors={result.errors}",
                      flush=True)
        for connections in args.concurrency:
            if not args.rounds or (connections > 1 and size not in report.JUDGED_SIZES and not args.smoke):
                continue
            rivals = (baseline, service, noauth, floor_token) if connections == 1 else (baseline, service, floor_token)
            entry["rounds"][str(connections)] = paired_rounds(bench, size, rivals, body, connections)
        entry["peak_rss_mb"] = {name: server.peak_rss_mb() for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    return entry


def paired_rounds(bench: Bench, size: str, servers: tuple[Server, ...], body: bytes, connections: int) -> list[dict]:
    """Short runs of the servers back to back, each round in another order (each rotation of the servers, then of
    their reverse: AB, BA for two, every order for three; each server in each place equally often), at one
    concurrency: each round's p50s. On a shared machine whose speed drifts from one minute to the
    next, one long run of each (the table's) can land the baseline on a quick minute and the service on a slow one,
    or the reverse; the median of the rounds' ratios is what the targets judge (docs/performance.md)."""
    seconds, count = round_plan(bench.args, bench, size, connections)
    orders = [tuple(line[i:] + line[:i]) for line in (list(servers), list(servers)[::-1]) for i in range(len(servers))]
    rounds = []
    for number in range(count):
        outcome = {}
        for server in orders[number % len(orders)]:
            result = bench.load(size, server, body, connections, seconds)
            outcome[server.name] = {**asdict(result), "throughput": result.throughput}
        rounds.append(outcome)
    for numerator, denominator, what in ((AUTH, BASELINE, "service/baseline"),
                                         (AUTH, NOAUTH, "service/service-noauth (the token check)"),
                                         (FLOOR_TOKEN, BASELINE, "baseline-token/baseline (floor + token check)")):
        ratios = report.round_ratios(rounds, numerator, denominator)
        if ratios:
            print(f"  {size:8} rounds          c={connections:<2} p50 {what}: median {statistics.median(ratios):.2f} "
                  f"over {len(ratios)} rounds of {seconds:g} s ({min(ratios):.2f}-{max(ratios):.2f})", flush=True)
    return rounds


def round_plan(args, bench: Bench, size: str, connections: int) -> tuple[float, int]:
    """(seconds a round's run lasts, number of rounds). Short runs follow the machine's drift closely; each must
    still hold enough requests for a p50 (about 25 of the service's), so a slow patient gets longer runs and, to
    keep the benchmark's length, half as many rounds."""
    if args.round_seconds:
        return args.round_seconds, args.rounds
    rate = bench.rates.get((size, connections)) or bench.expected_rate(size, connections)
    seconds = max(1, math.ceil(25 / max(rate, 1e-3)))
    return seconds, args.rounds if seconds <= 2 else max(2, args.rounds // 2)


def observation_pages(patient: Patient, pages: int) -> int:
    """The page size at which the service's Observation search of this patient comes back in `pages` pages."""
    from cds_service.service.discovery import services

    query = services()[SERVICE_ID].prefetch["observations"]
    params = parse_qs(urlsplit(query).query)
    matching = search([res for res in patient.resources if res["resourceType"] == "Observation"], params)
    return max(1, math.ceil(len(matching) / pages))


def measure_fetch(bench: Bench, patient: Patient, pages: int) -> dict:
    """No prefetch: the service fetches every key from a fake FHIR server that answers each query after the delay.
    With pages > 1 the server caps an Observation page (as many servers cap pages) so that the Observations come in
    that many pages, which the service must read one after the other, each link coming in the page before it: the
    floor is then `pages` delays."""
    args = bench.args
    delay = args.fetch_delay_ms / 1000
    page_size = observation_pages(patient, pages) if pages > 1 else None
    label = "fetch" if pages == 1 else f"fetch-{pages}-pages"
    entry = {"size": patient.size, "label": label, "delay_ms": args.fetch_delay_ms, "pages": pages,
             "page_size": page_size, "floor_ms": args.fetch_delay_ms * pages, "measured": False}
    caps = {"Observation": page_size} if page_size else None
    with FhirServer(patient.resources, delay, page_caps=caps) as fhir:
        body = json.dumps(patient.request_without_prefetch(fhir.url), separators=(",", ":")).encode()
        [service] = bench.servers(label, (AUTH,), fhir_servers=(fhir.url,)).values()
        with service:
            status, answer = bench.call(service, body)
            if status != 200:
                entry["reason"] = (f"the service answered {status} without prefetch: "
                                   f"{answer.get('error') or str(answer)[:200]}")
                return entry
            before = fhir.requests
            bench.call(service, body)
            entry["fhir_requests_per_call"] = fhir.requests - before
            entry["cards"] = len(answer.get("cards", []))
            timings = []
            for _ in range(2 if args.smoke else 10):
                started = time.perf_counter()
                bench.call(service, body)
                timings.append(time.perf_counter() - started)
            bench.rates.setdefault((label, 1), 1 / statistics.median(timings))
            result = bench.load(label, service, body, 1, args.duration)
            entry.update(measured=True, **asdict(result), throughput=result.throughput)
            print(f"  {label:16} c=1  p50={result.p50_ms:8.1f} ms  p99={result.p99_ms:8.1f} ms  "
                  f"({entry['fhir_requests_per_call']} FHIR queries a call, {args.fetch_delay_ms:g} ms each; "
                  f"floor {entry['floor_ms']:g} ms)", flush=True)
    return entry
