"""The calcinosis-cds command: evaluate a record without an EHR, and the rule catalogue."""

import json
import subprocess
import sys

import pytest

from cds_service.service.cli import main

from .conftest import SCENARIOS, SYNTHEA, NOW


def run_cli(*args, capsys):
    code = main(list(args))
    out = capsys.readouterr().out
    return code, out


def test_evaluate_a_fixture_scenario_at_a_given_time(capsys):
    code, out = run_cli("evaluate", str(SCENARIOS / "foundation-calcinosis-ckd-hyperphosphatemia.json"),
                        "--at", NOW.isoformat(), capsys=capsys)
    assert code == 0
    rules = {r for card in json.loads(out)["cards"] for r in card["extension"]["calcinosis-cds"]["rules"]}
    assert {"R01", "R17", "R18"} <= rules


def test_evaluate_a_cds_hooks_request(tmp_path, capsys):
    from .conftest import minimal_request

    path = tmp_path / "request.json"
    path.write_text(json.dumps(minimal_request()))
    code, out = run_cli("evaluate", str(path), capsys=capsys)
    assert code == 0 and json.loads(out) == {"cards": []}


def test_evaluate_reports_an_invalid_request_without_a_traceback(tmp_path, capsys):
    from .conftest import minimal_request

    body = minimal_request()
    del body["prefetch"]["conditions"]
    path = tmp_path / "request.json"
    path.write_text(json.dumps(body))
    code, out = run_cli("evaluate", str(path), capsys=capsys)
    assert code == 1 and json.loads(out)["status"] == 412


def test_evaluate_refuses_unreadable_input(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text("{")
    assert main(["evaluate", str(path)]) == 2


def test_rules_catalogue_lists_every_declared_rule(capsys):
    from cards import knowledge as _knowledge

    registry = lambda: _knowledge().rules  # noqa: E731

    code, out = run_cli("rules", capsys=capsys)
    assert code == 0
    assert out.startswith("G0")
    for rule_id, rule in registry().items():
        assert f"{rule_id}  {rule.title}" in out
    code, out = run_cli("rules", "--format", "json", capsys=capsys)
    assert {e["id"] for e in json.loads(out)} == {"G0", *registry()}


SYNTHEA_RECORDS = sorted(SYNTHEA.glob("*.json")) if SYNTHEA.is_dir() else []


@pytest.mark.skipif(not SYNTHEA_RECORDS, reason="the Synthea records of ../shared/data/synthea are not present")
@pytest.mark.parametrize("record", SYNTHEA_RECORDS, ids=lambda p: p.name.split("_")[0])
def test_synthea_records_evaluate_without_error_and_without_cards(record):
    # A real subprocess: the installed command, as a tester would run it. No calcinosis in these records.
    result = subprocess.run(
        [sys.executable, "-m", "cds_service.service.cli", "evaluate", str(record), "--at", "2021-06-01"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["cards"] == []
    assert "Traceback" not in result.stderr


def test_request_prints_a_cds_hooks_request_with_resolved_dates(capsys):
    code, out = run_cli("request", str(SCENARIOS / "foundation-calcinosis-ckd-hyperphosphatemia.json"),
                        "--at", NOW.isoformat(), capsys=capsys)
    assert code == 0
    body = json.loads(out)
    assert body["hook"] == "patient-view" and body["context"]["patientId"] == "p1"
    assert "${" not in out, "relative dates are resolved"


def test_docs_rules_md_is_the_current_catalogue():
    from cds_service.service.catalogue import catalogue_document

    from .conftest import ROOT

    assert (ROOT / "docs" / "rules.md").read_text() == catalogue_document(), (
        "docs/rules.md is out of date: run .venv/bin/calcinosis-cds rules --output docs/rules.md"
    )
