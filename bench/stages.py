"""`python -m bench.stages`: where a call's CPU time goes, stage by stage, in-process (no server, no network).

On a shared machine the end-to-end latencies of `python -m bench` move with the other load; CPU time per stage
(time.process_time, the minimum of several repetitions) moves much less, so it is the figure to compare two versions
of the code by. Stages follow cds_service.app.read_json_body and cds_service.service_call.handle.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from collections import Counter
from datetime import datetime, timezone

from cds_service import resources as selection
from cds_service.engine import evaluate
from cds_service.facts import build_facts
from cds_service.prefetch import gather
from cds_service.protocol import parse_hook_request
from cds_service.rules import Context
from cds_service.services import services
from cds_service.settings import Settings
from cds_service.terminology import terminology

from .data import SERVICE_ID, SIZES, benchmark_patients


def cpu_ms(function, repeat: int) -> tuple[float, object]:
    function()
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        result = function()
        best = min(best, time.process_time() - start)
    return best * 1000, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--data", choices=("auto", "synthea", "generated"), default="auto")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = tuple(s for s in args.sizes.split(",") if s)
    patients = benchmark_patients(sizes, source=args.data)
    service, terms = services()[SERVICE_ID], terminology()
    settings = Settings(auth="off", log_level="WARNING")
    takes_now = "now" in inspect.signature(selection.select_and_validate).parameters
    print("| patient | validated | JSON parse | protocol + prefetch | select + validate | facts | "
          "rules + cards | total (no parse) |")
    print("|---|---|---|---|---|---|---|---|")
    for size in sizes:
        raw = json.dumps(patients[size].request(), separators=(",", ":")).encode()
        now = datetime.now(timezone.utc)
        t_json, body = cpu_ms(lambda: json.loads(raw), args.repeat)

        def protocol_and_prefetch():
            request = parse_hook_request(body, expected_hook=service.hook, allow_http_fhir_server=True)
            return request, gather(request, service.prefetch, set(service.required), None)

        t_gather, (request, record) = cpu_ms(protocol_and_prefetch, args.repeat)
        extra = {"now": now} if takes_now else {}
        t_select, selected = cpu_ms(
            lambda: selection.select_and_validate(record.resources, request.patient_id, terms, **extra), args.repeat)
        t_facts, facts = cpu_ms(lambda: build_facts(selected, patient_id=request.patient_id, now=now, terms=terms),
                                args.repeat)
        context = Context(hook=request.hook, settings=settings, context=request.context)
        t_rules, _ = cpu_ms(lambda: evaluate(facts, context, service_id=service.id), args.repeat)
        validated = Counter(t for t, items in selected.by_type.items() for _ in items)
        total = t_gather + t_select + t_facts + t_rules
        print(f"| {size} | {sum(validated.values())} | {t_json:.1f} | {t_gather:.1f} | "
              f"{t_select:.1f} | {t_facts:.1f} | {t_rules:.1f} | {total:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
