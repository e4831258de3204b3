"""`make bench` / `python -m bench`: latency and throughput of the service, on its production path, against the
framework's floor.

For four generated patients (small, typical, large, dense: bench/data.py), each with calcinosis cutis, it starts the
service exactly as the production image does (gunicorn, the image's config and environment, CDS_AUTH=required with a
trust file for a key generated here; every call carries a fresh ES384 token) and, beside it, a baseline (same gunicorn
settings, a Flask endpoint that only parses the JSON body and answers {"cards": []}) and the service with CDS_AUTH=off;
drives them with wrk at concurrency 1 and at a concurrency that saturates the workers, in long runs and in paired
rounds, and reports p50/p95/p99 latency, throughput, errors, peak memory per worker and the ratios. Then the fetch
path: no prefetch, a FHIR server on loopback answering every query after an injected delay, the Observations in one
page and in three. It prints the machine, the table and the targets, and exits 1 when a target is missed or any
request failed (2 when it cannot run at all).

    python -m bench                 # the full run (about 12 minutes on 2 cores)
    python -m bench --smoke         # a tiny run of every part, to show the benchmark still works (under a minute)

Results: the table on stdout, and bench/results/<timestamp>/{results.json,report.md,issuers.json,*.log}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from . import report
from .data import DENSE_OBSERVATIONS, LARGE_OBSERVATIONS, ROOT, SIZES, benchmark_patients
from .loadgen import LoadGeneratorMissing, find_wrk, wrk_version
from .measure import Bench, measure_fetch, measure_size
from .servers import SERVICE_APP, gunicorn_command, image_environment
from .tokens import Issuer


def commit() -> str:
    """The commit measured, marked -dirty when the work tree differs from it (bench/results is ignored by git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + ("-dirty" if dirty else "")


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        **{name: version(dist) for name, dist in (("gunicorn", "gunicorn"), ("flask", "flask"),
                                                  ("fhir.resources", "fhir.resources"), ("pyjwt", "PyJWT"),
                                                  ("cryptography", "cryptography"))},
        "commit": commit(),
        "loadavg_start": os.getloadavg()[0],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run of every part: a dense patient of 300 Observations, 1 s per load, 2 rounds, "
                             "c=1 and 2, fetch delay 20 ms; targets shown, not judged")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: " + ",".join(SIZES))
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per long run (default 10)")
    parser.add_argument("--concurrency", default=None,
                        help="comma-separated connection counts (default: 1 and workers x threads)")
    parser.add_argument("--rounds", type=int, default=16,
                        help="paired rounds at each concurrency (default 16, half for a patient whose runs last "
                             "longer than 2 s; 0: none; the saturated rounds only for typical, large and dense)")
    parser.add_argument("--round-seconds", type=float, default=None,
                        help="seconds of load per run of a round (default: 1, or enough for ~25 service calls)")
    parser.add_argument("--large-observations", type=int, default=LARGE_OBSERVATIONS)
    parser.add_argument("--dense-observations", type=int, default=DENSE_OBSERVATIONS)
    parser.add_argument("--fetch-delay-ms", type=float, default=100.0)
    parser.add_argument("--fetch-pages", default="1,3",
                        help="comma-separated: the fetch path with the Observations in this many pages (default 1,3)")
    parser.add_argument("--no-fetch", action="store_true", help="skip the fetch path")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results/<time>)")
    args = parser.parse_args(argv)
    env = image_environment()
    saturating = int(env.get("GUNICORN_WORKERS", 2)) * int(env.get("GUNICORN_THREADS", 4))
    if args.smoke:
        args.sizes, args.duration, args.dense_observations = "dense", 1.0, min(args.dense_observations, 300)
        args.rounds, args.round_seconds, args.fetch_delay_ms = 2, 1.0, 20.0
        args.concurrency = args.concurrency or "1,2"
    args.concurrency = [int(c) for c in (args.concurrency or f"1,{saturating}").split(",")]
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    args.fetch_pages = [int(p) for p in args.fetch_pages.split(",") if p.strip()]
    if unknown := [s for s in args.sizes if s not in SIZES]:
        parser.error(f"unknown sizes: {unknown}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Stopped from outside (SIGTERM, or SIGINT where a shell ignored it): unwind, so that every server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out = args.out or ROOT / "bench" / "results" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    try:
        wrk = find_wrk()
    except LoadGeneratorMissing as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2

    info = machine()
    info["wrk"] = wrk_version(wrk)
    info["server_command"] = " ".join(gunicorn_command(SERVICE_APP, 0)[1:]).replace(str(ROOT) + "/", "").replace(
        "127.0.0.1:0", "127.0.0.1:PORT")
    info["server_env"] = {**{k: v for k, v in image_environment().items() if k.startswith(("GUNICORN_", "CDS_"))},
                          "CDS_AUTH": "required", "CDS_ISSUERS": "issuers.json",
                          "CDS_PUBLIC_URL": "http://127.0.0.1:PORT", "CDS_FHIR_ALLOW_HTTP": "true"}
    info["command"] = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"bench: {report.machine_line(info)}; load average {info['loadavg_start']:.2f}", flush=True)

    issuer = Issuer()
    bench = Bench(args=args, wrk=wrk, issuer=issuer, trust_file=issuer.write_trust_file(out / "issuers.json"),
                  out=out, cores=os.cpu_count() or 1)
    fetching = not args.no_fetch and args.fetch_pages
    wanted = tuple(dict.fromkeys(args.sizes + (["typical"] if fetching else [])))
    patients = benchmark_patients(wanted, large_observations=args.large_observations,
                                  dense_observations=args.dense_observations)
    results = {"machine": info, "smoke": args.smoke, "duration_s": args.duration, "concurrency": args.concurrency,
               "sizes": [], "fetch": [], "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    started = time.monotonic()
    for size in args.sizes:
        shape = patients[size].shape()
        print(f"bench: {size}: {shape['resources']} resources ({shape['by_type'].get('Observation', 0)} Observations, "
              f"{shape['observations_read']} of analytes the rules read); request {shape['request_resources']} "
              f"resources, {shape['request_bytes']:,} bytes", flush=True)
        results["sizes"].append(measure_size(bench, patients[size]))
    if fetching:
        for pages in args.fetch_pages:
            results["fetch"].append(measure_fetch(bench, patients["typical"], pages))
    results["machine"]["loadavg_end"] = os.getloadavg()[0]
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["tokens_minted"], results["token_reruns"] = issuer.minted, bench.reruns

    (out / "results.json").write_text(json.dumps(results, indent=2))
    text = report.markdown(results)
    (out / "report.md").write_text(text)
    print()
    print(text)
    print(f"bench: results in {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    failed = report.errors(results)
    missed = report.missed(results)
    if failed:
        print(f"bench: {failed} requests to the service failed", file=sys.stderr)
    if floor_failed := report.floor_errors(results):
        print(f"bench: warning: {floor_failed} requests to the floor or service-noauth failed: the machine was "
              "overloaded, and the figures are suspect", file=sys.stderr)
    if missed:
        print("bench: targets missed: " + "; ".join(missed), file=sys.stderr)
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
