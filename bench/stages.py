"""`python -m bench.stages`: where a call's CPU time goes, stage by stage, in-process (no server, no network).

On a shared machine the end-to-end latencies of `python -m bench` move with the other load; CPU time per stage
(time.process_time, the minimum over repetitions) moves much less, so it is the figure to compare two versions of the
code by. Each repetition runs a whole call as cds_service.service.app.read_json_body and cds_service.service.service_call.handle do,
on a freshly parsed body, so that nothing validated or read lazily in one repetition is reused by the next:
the lab results, Conditions and medications the rules read are validated inside "facts + rules + cards".
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone

from cds_service.record import selection
from cds_service.engine.evaluate import evaluate
from cds_service.record.facts import build_facts
from cds_service.record.json_text import parse_json
from cds_service.service.prefetch import gather
from cds_service.service.protocol import parse_hook_request
from cds_service.engine.rules import Context
from cds_service.service.discovery import services
from cds_service.service.settings import Settings
from cards import knowledge, terminology

from .data import SERVICE_ID, SIZES, benchmark_patients

STAGES = ("JSON parse (orjson)", "protocol + prefetch", "select (+ Patient)", "facts + rules + cards")


def one_call(raw: bytes, service, terms, settings, now) -> tuple[list[float], object]:
    """CPU seconds of each stage of one call, and its evaluation."""
    clock = time.process_time
    marks = [clock()]
    body = parse_json(raw)
    marks.append(clock())
    request = parse_hook_request(body, expected_hook=service.hook, allow_http_fhir_server=True)
    record = gather(request, service.prefetch, set(service.required), None, observation_codes=terms.read_loinc_codes)
    marks.append(clock())
    selected = selection.select_and_validate(record.resources, request.patient_id, terms, now=now)
    marks.append(clock())
    facts = build_facts(selected, patient_id=request.patient_id, now=now, terms=terms)
    evaluation = evaluate(facts, Context(hook=request.hook, hook_context=request.context), knowledge())
    marks.append(clock())
    return [later - earlier for earlier, later in zip(marks, marks[1:])], evaluation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--data", choices=("auto", "synthea", "generated"), default="auto")
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args(argv)
    sizes = tuple(s for s in args.sizes.split(",") if s)
    patients = benchmark_patients(sizes, source=args.data)
    service, terms = services()[SERVICE_ID], terminology()
    settings = Settings(auth="off", log_level="WARNING")
    print("| patient | " + " | ".join(STAGES) + " | service total (no parse) | cards | json.loads (the baseline's parse) |")
    print("|---|" + "---|" * (len(STAGES) + 3))
    for size in sizes:
        raw = json.dumps(patients[size].request(), separators=(",", ":")).encode()
        now = datetime.now(timezone.utc)
        one_call(raw, service, terms, settings, now)  # first call: imports and start-up caches
        best = [float("inf")] * len(STAGES)
        best_total = float("inf")
        for _ in range(max(1, args.repeat)):
            times, evaluation = one_call(raw, service, terms, settings, now)
            best = [min(b, t) for b, t in zip(best, times)]
            best_total = min(best_total, sum(times[1:]))
        baseline_parse = float("inf")
        for _ in range(max(1, args.repeat)):
            started = time.process_time()
            json.loads(raw)
            baseline_parse = min(baseline_parse, time.process_time() - started)
        cells = " | ".join(f"{t * 1000:.1f}" for t in best)
        print(f"| {size} | {cells} | {best_total * 1000:.1f} | {len(evaluation.cards)} | {baseline_parse * 1000:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
