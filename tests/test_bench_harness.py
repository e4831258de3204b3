"""The benchmark's parts that need no load generator: the patients are of the shape docs/performance.md gives, the
dense one is a dialysis patient's record of analytes the rules read, the tokens pass the service's own check exactly
once, and the report judges the targets (and so `make bench`'s exit status) from the figures."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import NOW, OTHER_NOW, ROOT


def _docs_shapes() -> tuple[list[str], dict[str, dict]]:
    """The patients table of docs/performance.md: (its resource type columns, size -> {column: cell})."""
    lines = [ln.strip() for ln in (ROOT / "docs" / "performance.md").read_text().splitlines()
             if ln.strip().startswith("| ")]
    header = next(ln for ln in lines if ln.startswith("| patient | Claim |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {}
    for line in lines[lines.index(header) + 1:]:  # (the |---| line is not among them)
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(columns):
            break
        rows[cells[0]] = dict(zip(columns, cells))
    return columns[1:columns.index("record")], rows


def test_the_patients_are_of_the_shape_the_docs_give():
    from bench.data import SIZES, benchmark_patients

    types, documented = _docs_shapes()
    assert set(documented) == set(SIZES), "docs/performance.md gives the shape of every benchmark patient"
    for size, patient in benchmark_patients(now=NOW).items():
        shape, row = patient.shape(), documented[size]
        assert set(shape["by_type"]) <= set(types), size
        assert {t: int(row[t] or 0) for t in types} == {t: shape["by_type"].get(t, 0) for t in types}, size
        assert shape["resources"] == int(row["record"]), size
        assert shape["request_resources"] == int(row["request"]), size
        assert f"{shape['request_bytes']:,} B" == row["request body"], size
        assert shape["observations_read"] == int(row["Obs. the rules read"]), size


def test_the_patients_are_the_same_on_every_run_and_the_same_size_on_every_day():
    from bench.data import benchmark_patients

    first, again, later = (benchmark_patients(now=now, large_observations=600) for now in (NOW, NOW, OTHER_NOW))
    for size in first:
        assert first[size].body() == again[size].body(), size
        assert first[size].shape() == later[size].shape(), size


def test_the_dense_patient_is_a_dialysis_patient_with_years_of_the_analytes_the_rules_read():
    from bench.data import benchmark_patients
    from cards import terminology

    dense = benchmark_patients(("dense",), now=NOW)["dense"]
    observations = [r for r in dense.resources if r["resourceType"] == "Observation"]
    assert len(observations) >= 3000
    labs = terminology().labs
    analyte = {code: name for name, lab in labs.items() for code in lab.codes}
    read = [analyte.get(o["code"]["coding"][0]["code"]) for o in observations]
    assert set(read) == {"phosphate", "calcium", "calcium-ionized", "albumin", "creatinine", "egfr"}
    dates = sorted(datetime.fromisoformat(o["effectiveDateTime"]) for o in observations)
    assert NOW - timedelta(days=731) <= dates[0] and dates[-1] <= NOW
    assert dates[-1] - dates[0] > timedelta(days=700), "spread over two years"
    by_month = {(d.year, d.month) for d in dates}
    assert len(by_month) >= 24, "every month of the two years has results"
    codes = {c["code"] for r in dense.resources if r["resourceType"] == "Condition" for c in r["code"]["coding"]}
    assert {"L94.2", "46177005", "105502003"} <= codes, "calcinosis cutis, end-stage CKD, dialysis"
    dialysis = [r for r in dense.resources if r["resourceType"] == "Procedure"
                and r["code"]["coding"][0]["code"] == "302497006"]
    assert len(dialysis) == 312, "three sessions a week for two years"


def test_the_service_gives_cards_for_every_benchmark_patient(client):
    from bench.data import SERVICE_ID, benchmark_patients

    for patient in benchmark_patients(now=NOW, large_observations=600, dense_observations=600).values():
        response = client.post(f"/cds-services/{SERVICE_ID}", json=patient.request())
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["cards"], patient.size


def test_tokens_pass_the_service_check_once_each(tmp_path):
    from bench.tokens import Issuer, pool_size
    from cds_service.service.security import Authenticator, ReplayCache, _Rejected, load_issuers

    issuer = Issuer()
    authenticator = Authenticator("required", load_issuers(issuer.write_trust_file(tmp_path / "issuers.json")),
                                  replay=ReplayCache())
    audience = "http://127.0.0.1:8080/cds-services/x"
    paths = issuer.write_pools(audience, 7, 2, tmp_path / "tokens")
    pools = [p.read_text().split() for p in paths]
    assert [len(p) for p in pools] == [4, 4]
    tokens = pools[0] + pools[1]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        claims = authenticator.verify(token, audience)
        assert {"iss", "sub", "aud", "exp", "iat", "jti"} <= set(claims) and claims["aud"] == audience
    with pytest.raises(_Rejected, match="replayed"):
        authenticator.verify(tokens[0], audience)
    assert "d" not in json.loads((tmp_path / "issuers.json").read_text())["issuers"][issuer.iss]["jwks"]["keys"][0]
    assert pool_size(10, 1, 100) > 100 * 10


def _results(c1: float, c8: float, fetch_p50: float, errors: int = 0, smoke: bool = False) -> dict:
    def run(server, p50):
        return {"server": server, "connections": 0, "p50_ms": p50, "errors": errors if server == "service" else 0}

    rounds = {"1": [{"baseline": run("baseline", 10.0), "service": run("service", 10.0 * c1),
                     "service-noauth": run("service-noauth", 10.0 * c1 - 1)}],
              "8": [{"baseline": run("baseline", 40.0), "service": run("service", 40.0 * c8)}]}
    return {"smoke": smoke, "concurrency": [1, 8],
            "sizes": [{"size": "typical", "runs": [], "rounds": rounds}],
            "fetch": [{"size": "typical", "pages": 3, "delay_ms": 100.0, "floor_ms": 300.0, "measured": True,
                       "p50_ms": fetch_p50, "errors": 0}]}


def test_the_report_judges_each_target_and_a_miss_fails_the_run():
    from bench import report

    assert report.missed(_results(1.19, 1.29, 359.0)) == []
    missed = report.missed(_results(1.25, 1.29, 359.0))
    assert missed == ["p50 service/baseline <= 1.2 (typical, c=1)"]
    assert len(report.missed(_results(1.0, 1.31, 361.0))) == 2
    assert report.missed(_results(1.0, 1.0, 300.0, errors=3)) == ["zero errors at saturation (c=8, the service)"]
    assert report.errors(_results(1.0, 1.0, 300.0, errors=3)) == 6 and report.floor_errors(_results(1, 1, 300)) == 0
    assert report.missed(_results(3.0, 3.0, 900.0, smoke=True)) == [], "a smoke run shows the targets, not judges"
    assert report.token_check_ms(_results(1.5, 1.0, 300.0)["sizes"][0]) == pytest.approx(1.0)


def test_the_stage_profile_covers_the_dense_patient_and_the_token_check(capsys):
    from bench.stages import STAGES, main

    assert main(["--sizes", "dense", "--dense-observations", "120", "--repeat", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| patient | " + " | ".join(STAGES))
    row = [cell.strip() for cell in table[2].strip("|").split("|")]
    cards_at = len(STAGES) + 3  # after the stages, the total and the token check; then orjson and json.loads
    assert row[0] == "dense" and int(row[cards_at]) >= 1, "the dense patient gets cards"
    assert len(row) == cards_at + 3 and all(float(cell) >= 0 for cell in row[1:cards_at] + row[cards_at + 1:])
    assert re.fullmatch(r"\d+\.\d", row[len(STAGES) + 2]), "the token check's CPU time"


def test_the_fetch_exchanges_are_measured_through_the_services_own_client(capsys):
    """`python -m bench.stages --fetch`: the typical patient's keys fetched by FhirClient from the benchmark's FHIR
    server in a process of its own: all at once, one after another, and each key alone, every one answered."""
    from bench.stages import main
    from cds_service.service.discovery import services
    from bench.data import SERVICE_ID

    assert main(["--fetch", "--repeat", "1"]) == 0
    rows = [line.strip("|").split("|") for line in capsys.readouterr().out.splitlines()[2:]]
    names = [name.strip() for name, _ in rows]
    assert names == ["all at once", "one after another", *services()[SERVICE_ID].prefetch]
    assert all(float(ms) > 0 for _, ms in rows)


def test_each_server_takes_each_place_of_a_round_equally_often(monkeypatch):
    """The paired rounds rotate the servers and their reverse: no server is always first (a warm cache) or last."""
    from collections import Counter

    from bench import measure

    class _Result:
        def __init__(self):
            self.p50_ms, self.throughput = 1.0, 1.0

    order = []
    monkeypatch.setattr(measure, "asdict", lambda result: {"p50_ms": result.p50_ms})
    monkeypatch.setattr(measure, "round_plan", lambda args, bench, size, connections: (1.0, 8))

    class _Bench:
        args = None

        def load(self, size, server, body, connections, seconds):
            order.append(server)
            return _Result()

    servers = tuple(type("S", (), {"name": n})() for n in ("baseline", "service", "service-noauth", "baseline-token"))
    rounds = measure.paired_rounds(_Bench(), "typical", servers, b"{}", 1)
    assert len(rounds) == 8 and all(len(r) == 4 for r in rounds)
    places = Counter((i % 4, server.name) for i, server in enumerate(order))
    assert set(places.values()) == {2}, places  # 8 rounds: each of 4 servers twice in each of the 4 places


def test_the_floor_with_the_token_check_is_a_reference_beside_the_targets():
    from bench import report

    results = _results(1.5, 1.6, 330.0)
    for connections, p50 in (("1", 13.0), ("8", 52.0)):
        for outcome in results["sizes"][0]["rounds"][connections]:
            outcome["baseline-token"] = {"server": "baseline-token", "p50_ms": p50, "errors": 0}
    references = dict(report.references(results))
    assert references[next(k for k in references if k.startswith("p50 baseline-token/baseline (typical, c=1)"))] \
        .startswith("1.30")
    assert references[next(k for k in references if k.startswith("p50 baseline-token/baseline (typical, c=8)"))] \
        .startswith("1.30")
    assert len(report.missed(results)) == 2, "a reference is not judged: the targets still judge the service"
