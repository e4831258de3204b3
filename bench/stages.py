"""`python -m bench.stages`: where a call's CPU time goes, stage by stage, in-process (no server, no network).

On a shared machine the end-to-end latencies of `python -m bench` move with the other load; CPU time per stage
(time.process_time, the minimum over repetitions) moves much less, so it is the figure to compare two versions of the
code by. Each repetition runs a whole call as cds_service.service.service_call.handle does, from the body's bytes, so
that nothing validated or read lazily in one repetition is reused by the next: the lab results, Conditions and
medications the rules read are validated inside "facts + rules + cards". "read the body" is the scan of
record/request_scan.py: the Observations no rule can read (no read LOINC code, or dated outside every window of their
analytes) are never parsed, and the codes and date of each one kept are worked out there, once; "protocol + prefetch"
reads the other Observations of the record (none, from a prefetch) the same way. "orjson" is what parsing the whole
body costs (the service's parse before the scan), for comparison.
`--fetch`: the fetch path's HTTP exchanges instead, through the service's own FHIR client (FhirClient.fetch), against
the benchmark's FHIR server answering at once in a process of its own (as `python -m bench` runs it, without the
delay): the CPU time of this process (the client's threads included) for the call's keys fetched as the service
fetches them, all at once, and one after another, and for each key alone (medians over the repetitions).
"token check" is the production path's verification of the call's JWT (ES384 signature, claims, the replay cache
shared by gunicorn's workers), on a fresh token each time; the other columns do not include it.
The garbage collector runs with the service's thresholds (cds_service.service.warm_up, set at start-up), and start-up
objects are frozen out of its collections, as in a gunicorn worker; `--default-gc` measures with Python's defaults.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cds_service.record import selection
from cds_service.engine.evaluate import evaluate
from cds_service.record.facts import build_facts
from cds_service.record.json_text import parse_json
from cds_service.record.labs import lab_windows
from cds_service.record.request_scan import parse_call_body
from cds_service.service.fhir_client import FhirClient
from cds_service.service.prefetch import gather, render_template
from cds_service.service.protocol import parse_hook_request
from cds_service.engine.rules import Context
from cds_service.service.security import Authenticator, SharedReplayCache, load_issuers
from cds_service.service.discovery import services
from cds_service.service.settings import Settings
from cds_service.service.warm_up import warm_up
from cards import knowledge, terminology

from .data import SERVICE_ID, SIZES, Patient, benchmark_patients
from .fhir_server import FhirServer
from .tokens import Issuer

DEFAULT_GC = (700, 10, 10)  # Python's own thresholds
STAGES = ("read the body (scan)", "protocol + prefetch", "select (+ Patient)", "facts + rules + cards")
AUDIENCE = "https://cds.bench.invalid/cds-services/" + SERVICE_ID


def one_call(raw: bytes, service, terms, settings, now) -> tuple[list[float], object]:
    """CPU seconds of each stage of one call, and its evaluation."""
    clock = time.process_time
    marks = [clock()]
    roles = selection.ObservationRoles(terms, lab_windows(terms, now))
    body, classified = parse_call_body(raw, terms.read_loinc_codes, roles, keys=service.prefetch)
    marks.append(clock())
    request = parse_hook_request(body, expected_hook=service.hook, allow_http_fhir_server=True)
    record = gather(request, service.prefetch, set(service.required), None, observation_codes=terms.read_loinc_codes,
                    classified=classified)
    marks.append(clock())
    window = knowledge().procedure_window_days  # as cds_service.service.service_call.handle selects
    selected = selection.select_and_validate(record.resources, request.patient_id, terms, now=now,
                                             procedures_since=now - timedelta(days=window) if window else None,
                                             observation_codes=record.observation_codes)
    marks.append(clock())
    facts = build_facts(selected, patient_id=request.patient_id, now=now, terms=terms)
    evaluation = evaluate(facts, Context(hook=request.hook, hook_context=request.context), knowledge())
    marks.append(clock())
    return [later - earlier for earlier, later in zip(marks, marks[1:])], evaluation


def token_check(repeat: int) -> float:
    """The least CPU seconds of verifying a fresh token, as the service does it with CDS_AUTH=required."""
    issuer = Issuer()
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        authenticator = Authenticator("required", load_issuers(issuer.write_trust_file(Path(tmp) / "issuers.json")),
                                      replay=SharedReplayCache(directory=tmp))
        best = float("inf")
        for _ in range(max(2, repeat)):
            token = issuer.token(AUDIENCE)
            started = time.process_time()
            authenticator.verify(token, AUDIENCE)
            best = min(best, time.process_time() - started)
    return best


def _serve(resources: list[dict], address) -> None:
    """In a child process: the benchmark's FHIR server, answering at once, until the parent terminates it."""
    with FhirServer(resources, 0.0) as server:
        address.put(server.url)
        while True:
            time.sleep(3600)


def fetch_exchanges(patient: Patient, repeat: int) -> dict[str, float]:
    """Median CPU seconds of this process for the call's keys fetched by FhirClient.fetch: "all at once" (as the
    service does), "one after another", and each key alone."""
    spawn = multiprocessing.get_context("spawn")  # no thread of this process is copied into the server's
    address = spawn.Queue()
    server = spawn.Process(target=_serve, args=(patient.resources, address), daemon=True)
    server.start()
    client = FhirClient()
    try:
        url = address.get(timeout=60)
        service = services()[SERVICE_ID]
        request = parse_hook_request(patient.request_without_prefetch(url), expected_hook=service.hook,
                                     allow_http_fhir_server=True)
        request = replace(request, fhir_server_listed=True)  # on loopback: listed, as CDS_FHIR_SERVERS would list it
        queries = {key: render_template(template, request.context) for key, template in service.prefetch.items()}

        def cpu(fetch) -> float:
            started = time.process_time()
            results = fetch()
            spent = time.process_time() - started
            if failed := {key: r.error for key, r in results.items() if r.error}:
                raise RuntimeError(f"the benchmark's FHIR server did not answer every key: {failed}")
            return spent

        def one_after_another():
            results = {}
            for key, query in queries.items():
                results.update(client.fetch(request, {key: query}, {}))
            return results

        times: dict[str, list[float]] = {}
        for round_ in range(max(1, repeat) + 2):  # the first two open the connections and warm the caches
            spent = {"all at once": cpu(lambda: client.fetch(request, queries, {})),
                     "one after another": cpu(one_after_another)}
            spent.update({key: cpu(lambda q=query, k=key: client.fetch(request, {k: q}, {}))
                          for key, query in queries.items()})
            if round_ >= 2:
                for name, seconds in spent.items():
                    times.setdefault(name, []).append(seconds)
        return {name: statistics.median(values) for name, values in times.items()}
    finally:
        client.close()
        server.terminate()
        server.join(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--dense-observations", type=int, default=None)
    parser.add_argument("--default-gc", action="store_true", help="Python's collector thresholds, not the service's")
    parser.add_argument("--fetch", action="store_true",
                        help="the fetch path's HTTP exchanges (the typical patient's keys) instead of the stages")
    args = parser.parse_args(argv)
    if args.fetch:
        spent = fetch_exchanges(benchmark_patients(("typical",))["typical"], args.repeat)
        print("| keys fetched (typical) | CPU ms (median) |")
        print("|---|---|")
        for name, seconds in spent.items():
            print(f"| {name} | {seconds * 1000:.2f} |")
        return 0
    service_gc = DEFAULT_GC if args.default_gc else None
    warm_up()  # the service's collector thresholds, as create_app sets them
    if service_gc is not None:
        gc.set_threshold(*service_gc)
    service_gc = gc.get_threshold()
    gc.collect()
    gc.freeze()  # as gunicorn_hooks.pre_fork does before a worker starts
    sizes = tuple(s for s in args.sizes.split(",") if s)
    options = {} if args.dense_observations is None else {"dense_observations": args.dense_observations}
    patients = benchmark_patients(sizes, **options)
    service, terms = services()[SERVICE_ID], terminology()
    settings = Settings(auth="off", log_level="WARNING")
    check = token_check(args.repeat)
    print("| patient | " + " | ".join(STAGES) + " | service total | token check | cards | "
          "orjson (the whole body) | json.loads (the baseline's parse) |")
    print("|---|" + "---|" * (len(STAGES) + 5))
    for size in sizes:
        raw = patients[size].body()
        now = datetime.now(timezone.utc)
        one_call(raw, service, terms, settings, now)  # first call: imports and start-up caches
        best = [float("inf")] * len(STAGES)
        best_total = float("inf")
        for _ in range(max(1, args.repeat)):
            times, evaluation = one_call(raw, service, terms, settings, now)
            best = [min(b, t) for b, t in zip(best, times)]
            best_total = min(best_total, sum(times))
        whole_parse = float("inf")
        for _ in range(max(1, args.repeat)):
            started = time.process_time()
            parse_json(raw)
            whole_parse = min(whole_parse, time.process_time() - started)
        baseline_parse = float("inf")
        gc.set_threshold(*DEFAULT_GC)  # the floor is a plain Flask app: Python's default collector
        for _ in range(max(1, args.repeat)):
            started = time.process_time()
            json.loads(raw)
            baseline_parse = min(baseline_parse, time.process_time() - started)
        gc.set_threshold(*service_gc)
        cells = " | ".join(f"{t * 1000:.1f}" for t in best)
        print(f"| {size} | {cells} | {best_total * 1000:.1f} | {check * 1000:.1f} | {len(evaluation.cards)} | "
              f"{whole_parse * 1000:.1f} | {baseline_parse * 1000:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
