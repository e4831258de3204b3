"""Issue 16, findings 6 (in-process part), 9 and 10, redone as found: inputs that gave a 500, log lines a caller could
forge or blow up, and the command line's tracebacks and exit codes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid

import pytest

from cds_service.service.cli import main
from cds_service.service.logging_setup import MAX_FIELD_CHARS, JsonFormatter, TextFormatter

from .conftest import PATIENT_VIEW, load_scenario, make_app, minimal_request, scenario_request

ORDER_SIGN = "calcinosis-cutis-order-sign"


@pytest.fixture(scope="module")
def client():
    return make_app().test_client()


# --- finding 6 ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("member, value", [("entry", {"resource": {}}), ("entry", 7), ("entry", "x"),
                                           ("link", {"relation": "next"}), ("link", 3)])
def test_a_prefetch_bundle_whose_entry_or_link_is_not_an_array_is_a_400(client, member, value):
    body = minimal_request()
    body["prefetch"]["conditions"][member] = value
    response = client.post(f"/cds-services/{PATIENT_VIEW}", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"] == f"prefetch.conditions.{member} must be an array"


@pytest.mark.parametrize("value", [{"resource": {}}, 5, "entries"])
def test_a_draft_orders_entry_that_is_not_an_array_is_a_400(client, value):
    service_id, body = scenario_request(load_scenario("r05-order-sign-al-antacid-dialysis"))
    body["context"]["draftOrders"]["entry"] = value
    response = client.post(f"/cds-services/{service_id}", json=body)
    assert response.status_code == 400 and "draftOrders.entry must be an array" in response.get_json()["error"]


def test_a_patient_view_context_with_an_odd_draft_orders_is_not_a_500(client):
    body = minimal_request()
    body["context"]["draftOrders"] = {"resourceType": "Bundle", "entry": 5}
    assert client.post(f"/cds-services/{PATIENT_VIEW}", json=body).status_code == 200


@pytest.mark.parametrize("number", ["9" * 400, "-" + "9" * 400, "1e400", "1" + "0" * 30])
def test_a_lab_value_no_float_can_hold_is_skipped_and_reported_not_a_500(client, number):
    service_id, body = scenario_request(load_scenario("foundation-calcinosis-ckd-hyperphosphatemia"))
    for entry in body["prefetch"]["observations"]["entry"]:
        entry["resource"]["valueQuantity"]["value"] = "__N__"
        if isinstance(entry["resource"].get("referenceRange"), list):
            for reference_range in entry["resource"]["referenceRange"]:
                if isinstance(reference_range.get("high"), dict):
                    reference_range["high"]["value"] = "__N__"
    raw = json.dumps(body).replace('"__N__"', number)
    response = client.post(f"/cds-services/{service_id}", data=raw, content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]


def test_a_dose_no_float_can_hold_is_not_a_500(client):
    service_id, body = scenario_request(load_scenario("r05-order-sign-al-antacid-dialysis"))
    raw = json.dumps(body)
    for key in ('"frequency": 1', '"period": 1', '"value": 1'):
        raw = raw.replace(key, key.split(":")[0] + ": " + "9" * 400)
    response = client.post(f"/cds-services/{service_id}", data=raw, content_type="application/json")
    assert response.status_code < 500, response.get_data(as_text=True)[:300]


def test_a_token_whose_exp_no_float_can_hold_is_a_401_not_a_500():
    from cds_service.service.security import Authenticator, Issuer, _Rejected
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    key = ec.generate_private_key(ec.SECP384R1())
    jwk = {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": "k"}
    authenticator = Authenticator("required", {"i": Issuer("i", {"k": jwk}, None, frozenset(), None)})
    huge = 10**400
    token = jwt.encode({"iss": "i", "aud": "a", "exp": huge, "iat": huge - 10, "jti": "j"}, key, algorithm="ES384",
                       headers={"kid": "k", "typ": "JWT"})
    with pytest.raises(_Rejected):
        authenticator.verify(token, "a")


# --- finding 9 ------------------------------------------------------------------------------------------------------


def record(**fields) -> logging.LogRecord:
    entry = logging.LogRecord("cds_service.http", logging.INFO, "", 0, "request", (), None)
    entry.__dict__.update(fields)
    return entry


def test_a_newline_in_a_field_cannot_forge_a_text_log_line():
    line = TextFormatter().format(record(path="/cds-services/x\n12:00:00 WARNING cds_service.service.security: forged",
                                         card="a\r\nb\x1b[31m\u2028c"))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert "\\x0a12:00:00 WARNING" in line


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_field_lengths_are_bounded_and_lone_surrogates_are_safe(formatter):
    line = formatter.format(record(card="c" * 1_000_000, ids=["s" * 1000] * 10_000, lone="\udc80\ud800x",
                                   nested={"k" * 500: ["v" * 500]}, big=10**400))
    assert len(line) < 20_000
    line.encode("utf-8")  # writable: no lone surrogate reaches the stream
    if isinstance(formatter, JsonFormatter):
        event = json.loads(line)
        assert len(event["card"]) < MAX_FIELD_CHARS + 40 and event["lone"].startswith("\\udc80")


def test_a_lone_surrogate_in_feedback_logs_no_traceback(capsys):
    app = make_app(log_level="INFO", log_format="text")
    body = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z",
                          "overrideReason": {"reason": {"code": "x\udc80", "system": "urn:x"}}}]}
    raw = json.dumps(body)  # ensure_ascii writes the lone surrogate as \udc80, which JSON allows
    response = app.test_client().post(f"/cds-services/{PATIENT_VIEW}/feedback", data=raw, content_type="application/json")
    assert response.status_code in (200, 400)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Logging error" not in captured.err


@pytest.mark.parametrize("change, where", [
    (lambda e: e.update(card="c" * 65), "card"),
    (lambda e: e.update(card="has space"), "card"),
    (lambda e: e.update(card="x\ny"), "card"),
    (lambda e: e.update(outcome="accepted", acceptedSuggestions=[{"id": "s" * 100}]), "acceptedSuggestions"),
    (lambda e: e.update(outcome="accepted", acceptedSuggestions=[{"id": str(uuid.uuid4())}] * 51), "acceptedSuggestions"),
    (lambda e: e.update(overrideReason={"reason": {"code": "c" * 65, "system": "urn:x"}}), "reason.code"),
    (lambda e: e.update(overrideReason={"reason": {"code": "a\nb", "system": "urn:x"}}), "reason.code"),
    (lambda e: e.update(overrideReason={"reason": {"code": "c", "system": "urn:" + "x" * 300}}), "reason.system"),
    (lambda e: e.update(overrideReason={"userComment": "x" * 5000}), "userComment"),
    (lambda e: e.update(overrideReason={"reason": {"code": "c", "system": "urn:x", "display": "d" * 501}}), "display"),
    (lambda e: e.update(overrideReason={"reason": {"code": "c", "system": "urn:x", "display": 7}}), "display"),
    (lambda e: e.update(overrideReason={"reason": {"code": "c", "system": "urn:x", "display": "a\udc80"}}), "display"),
])
def test_feedback_codes_and_ids_past_their_limits_are_a_400(client, change, where):
    entry = {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z"}
    change(entry)
    response = client.post(f"/cds-services/{PATIENT_VIEW}/feedback", json={"feedback": [entry]})
    assert response.status_code == 400 and where in response.get_json()["error"]


def test_more_than_a_hundred_feedback_entries_is_a_400(client):
    entry = {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z"}
    response = client.post(f"/cds-services/{PATIENT_VIEW}/feedback", json={"feedback": [entry] * 101})
    assert response.status_code == 400


def test_a_megabyte_of_feedback_fields_never_reaches_the_log(capsys):
    app = make_app(log_level="INFO")
    entry = {"card": "c" * 1_000_000, "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z"}
    app.test_client().post(f"/cds-services/{PATIENT_VIEW}/feedback", json={"feedback": [entry]})
    assert max(len(line) for line in capsys.readouterr().out.splitlines() or [""]) < 4096


# --- finding 10 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, content", [
    (["evaluate", "FILE"], "[1, 2]"),
    (["request", "FILE"], "[1, 2]"),
    (["evaluate", "FILE"], '"a string"'),
    (["evaluate", "FILE"], "{"),
    (["evaluate", "FILE"], b"\xff\xfe"),
    (["evaluate", "FILE"], '{"something": "else"}'),
    (["evaluate", "FILE", "--at", "not-a-date"], "{}"),
    (["request", "FILE", "--at", "2026-13-45"], "{}"),
    (["evaluate", "MISSING"], None),
    (["evaluate", "FILE"], '{"hook": 5, "hookInstance": "x"}'),
])
def test_every_kind_of_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, content):
    path = tmp_path / "input.json"
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    argv = [str(path) if a == "FILE" else str(tmp_path / "missing.json") if a == "MISSING" else a for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("calcinosis-cds: error: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv", [["evaluate"], ["rules", "--format", "yaml"], ["serve", "--port", "99999"],
                                  ["serve", "--workers", "0"], ["nope"], ["serve", "--threads", "x"]])
def test_bad_options_are_exit_code_2(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_version_and_help_for_every_option(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("calcinosis-cds ")
    from cds_service.service.cli import parser

    top = parser()
    commands = next(a for a in top._actions if a.dest == "command").choices
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_a_closed_pipe_ends_quietly():
    # The reader is gone before the command writes: the write fails with EPIPE.
    process = subprocess.Popen([sys.executable, "-m", "cds_service.service.cli", "rules", "--format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert process.returncode == 141


def test_a_lone_surrogate_in_a_resource_id_is_reported_not_a_500(client):
    # Found by `make fuzz`: the report quotes the id, and the answer could not be written as UTF-8.
    body = minimal_request()
    body["prefetch"]["patient"] = {"resourceType": "Medication", "id": "\udc80", "subject": {"reference": "Patient/p1"}}
    response = client.post(f"/cds-services/{PATIENT_VIEW}", data=json.dumps(body), content_type="application/json")
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
