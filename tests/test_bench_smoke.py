"""The benchmark (`make bench`) must not rot: run it at a tiny size and check that it prints a table without errors.

It starts real gunicorn servers (service, baseline, and the service again against a fake FHIR server) on 127.0.0.1,
so it is marked slow; it needs wrk, and skips with the reason when wrk is missing. Neither the tests nor the
benchmark install anything: CI installs wrk (.ci/install-system-packages).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_bench_smoke_run_measures_every_part_without_errors(tmp_path):
    from bench.loadgen import LoadGeneratorMissing, find_wrk

    try:
        find_wrk()
    except LoadGeneratorMissing as error:
        pytest.skip(f"the benchmark needs wrk: {error}")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert time.monotonic() - started < 90, "the smoke run stays short"
    assert "Machine: " in result.stdout and "commit " in result.stdout
    assert "| target | measured | met |" in result.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    [dense] = results["sizes"]
    assert dense["size"] == "dense" and dense["shape"]["observations_read"] == dense["shape"]["by_type"]["Observation"]
    assert {(r["server"], r["connections"]) for r in dense["runs"]} == {
        ("service", 1), ("baseline", 1), ("service", 2), ("baseline", 2)}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in dense["runs"])
    assert dense["cards"] > 0
    # The production path: the service answered every call, each with a token of its own (none sent twice).
    assert all(r["wrapped"] == 0 for r in dense["runs"] if r["server"] == "service")
    # The paired rounds the targets are judged on: baseline and service, with service without the token check (c=1)
    # and the floor with the service's token check beside them.
    assert [sorted(r) for r in dense["rounds"]["1"]] == [["baseline", "baseline-token", "service", "service-noauth"]] * 2
    assert [sorted(r) for r in dense["rounds"]["2"]] == [["baseline", "baseline-token", "service"]] * 2
    # baseline-token checked every token as the service does: none was sent twice (a replay would be refused).
    assert all(r["baseline-token"]["wrapped"] == 0 for c in dense["rounds"].values() for r in c)
    assert all(run["errors"] == 0 and run["p50_ms"] > 0 for c in dense["rounds"].values() for r in c
               for run in r.values())
    one_page, three_pages = results["fetch"]
    assert one_page["measured"] and three_pages["measured"], (one_page.get("reason"), three_pages.get("reason"))
    assert three_pages["fhir_requests_per_call"] == one_page["fhir_requests_per_call"] + 2, "two more pages"
    assert one_page["errors"] == three_pages["errors"] == 0
    assert (tmp_path / "report.md").read_text().count("|") > 20
    assert "p50 baseline-token/baseline (dense, c=1)" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_a_token_pool_that_runs_out_shows_as_errors_and_the_benchmark_runs_again(tmp_path):
    """The service refuses a replayed token: a pool sized too small cannot pass unnoticed."""
    from bench.data import benchmark_patients
    from bench.loadgen import LoadGeneratorMissing, find_wrk, run_wrk
    from bench.measure import AUTH, SERVICE_PATH, Bench

    try:
        wrk = find_wrk()
    except LoadGeneratorMissing as error:
        pytest.skip(f"the benchmark needs wrk: {error}")
    from bench.tokens import Issuer

    issuer = Issuer()
    bench = Bench(args=None, wrk=wrk, issuer=issuer, trust_file=issuer.write_trust_file(tmp_path / "issuers.json"),
                  out=tmp_path, cores=2)
    body = benchmark_patients(("small",))["small"].body()
    [service] = bench.servers("pool", (AUTH,)).values()
    with service:
        url = service.url + SERVICE_PATH
        result = run_wrk(wrk, url, body, connections=1, seconds=1,
                         tokens=lambda threads, stem: issuer.write_pools(url, 3, threads, stem))
        # The benchmark's own runs: a pool sized for a pace far below the real one runs out, and the run is made
        # again with a pool sized from the pace it saw.
        bench.rates[("small", 1)] = 0.001
        # Four seconds: the smallest pool (51 tokens) must run out even on a busy machine (13 calls a second).
        again = bench.load("small", service, body, connections=1, seconds=4)
    assert result.requests > 3 and result.wrapped == result.sent - 3
    # The three tokens passed; every call that completed after them carried a replayed token and was refused.
    assert result.errors == result.error_detail["status"] == result.requests - 3
    assert bench.reruns == 1 and again.wrapped == 0 and again.errors == 0 and again.requests > 51
