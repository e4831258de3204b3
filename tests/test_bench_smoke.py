"""The benchmark (`make bench`) must not rot: run it at a tiny size and check that it prints a table without errors.

It starts real gunicorn servers (service, baseline, and the service again against a fake FHIR server) on 127.0.0.1,
so it is marked slow; it needs wrk, and skips with the reason when wrk is missing. Tests never install anything:
CI installs wrk (.ci/install-system-packages), and `--no-install` keeps the benchmark itself from trying.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from tests.conftest import ROOT


def test_generated_patients_have_the_sizes_and_the_calcinosis_the_benchmark_promises():
    from bench.data import benchmark_patients

    now = datetime(2026, 3, 14, tzinfo=timezone.utc)
    patients = benchmark_patients(now=now, source="generated", large_observations=1200)
    assert 40 <= patients["small"].count() <= 80
    assert 350 <= patients["typical"].count() <= 650
    assert patients["large"].count("Observation") == 1200
    for patient in patients.values():
        codes = [c["code"] for r in patient.resources if r["resourceType"] == "Condition"
                 for c in r["code"]["coding"]]
        assert "L94.2" in codes
        body = patient.request()
        assert body["hook"] == "patient-view" and body["context"]["patientId"] == patient.patient_id


def test_the_service_gives_cards_for_every_benchmark_patient(client):
    from bench.data import SERVICE_ID, benchmark_patients

    from tests.conftest import NOW

    for patient in benchmark_patients(now=NOW, source="generated", large_observations=600).values():
        response = client.post(f"/cds-services/{SERVICE_ID}", json=patient.request())
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["cards"], patient.size


@pytest.mark.slow
def test_bench_smoke_run_prints_a_table_without_errors(tmp_path):
    from bench.loadgen import LoadGeneratorMissing, ensure_wrk

    try:
        ensure_wrk(install=False)
    except LoadGeneratorMissing as error:
        pytest.skip(f"the benchmark needs wrk: {error}")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--no-install", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| patient |" in result.stdout and "| small" in result.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    [small] = results["sizes"]
    assert {(r["server"], r["connections"]) for r in small["runs"]} == {
        ("service", 1), ("baseline", 1), ("baseline-orjson", 1), ("service", 2), ("baseline", 2)}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in small["runs"])
    assert small["cards"] > 0
    # The paired rounds (baseline and service back to back, alternating order) that the c=1 targets are judged on.
    assert len(small["paired_rounds"]) == 2
    assert all(pair["ratio"] > 0 and pair["service"]["errors"] == pair["baseline"]["errors"] == 0
               for pair in small["paired_rounds"])
    assert results["fetch"]["measured"], results["fetch"].get("reason")
    assert results["fetch"]["errors"] == 0
    assert (tmp_path / "report.md").read_text().count("|") > 20


def test_the_stage_profile_runs_and_counts_the_cards(capsys):
    from bench.stages import STAGES, main

    assert main(["--sizes", "small", "--data", "generated", "--repeat", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| patient | " + " | ".join(STAGES))
    row = table[2].split("|")
    assert row[1].strip() == "small" and int(row[-3]) >= 1, "the small patient gets cards"
    assert all(float(cell) >= 0 for cell in row[2:-3] + row[-2:-1])


def test_ensure_wrk_without_install_never_runs_apt_get(monkeypatch):
    from bench import loadgen

    def no_commands(*args, **kwargs):
        raise AssertionError(f"ensure_wrk(install=False) ran a command: {args}")

    monkeypatch.setattr(loadgen.shutil, "which", lambda name: None if name == "wrk" else f"/usr/bin/{name}")
    monkeypatch.setattr(loadgen.subprocess, "run", no_commands)
    with pytest.raises(loadgen.LoadGeneratorMissing, match="apt-get install wrk"):
        loadgen.ensure_wrk(install=False)
