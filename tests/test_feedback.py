"""POST /cds-services/{id}/feedback: validated per CDS Hooks 2.0, answered 200, logged by card and outcome only
(stored and counted: tests/test_operated.py)."""

import json

import pytest

from .conftest import PATIENT_VIEW, load_scenario, make_app, scenario_request

URL = f"/cds-services/{PATIENT_VIEW}/feedback"


def test_accepted_and_overridden_feedback_as_the_sandbox_sends_it(client):
    body = {"feedback": [
        {"card": "0b0c1d2e-0000-4000-8000-000000000001", "outcome": "accepted",
         "acceptedSuggestions": [{"id": "0b0c1d2e-0000-4000-8000-000000000002"}], "outcomeTimestamp": "2026-11-25T09:06:20.463Z"},
        {"card": "0b0c1d2e-0000-4000-8000-000000000001", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T09:07:00Z",
         "overrideReason": {"reason": {"code": "r1", "system": "http://example.org/or"}}},
        {"card": "0b0c1d2e-0000-4000-8000-000000000003", "outcome": "overridden", "outcomeTimestamp": "2026-11-25T09:07:00Z"},
    ]}
    response = client.post(URL, json=body)
    assert response.status_code == 200
    assert response.get_json() == {}


@pytest.mark.parametrize("body, message", [
    ({}, "feedback must be a non-empty array"),
    ({"feedback": []}, "feedback must be a non-empty array"),
    ({"feedback": ["x"]}, "feedback[0] must be an object"),
    ({"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}, "card"),
    ({"feedback": [{"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}, "outcome"),
    ({"feedback": [{"card": "c", "outcome": "overridden"}]}, "outcomeTimestamp"),
    ({"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}]}, "outcomeTimestamp"),
    ({"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}, "acceptedSuggestions"),
    ({"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z",
                    "acceptedSuggestions": ["s1"]}]}, "acceptedSuggestions"),
    ({"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z",
                    "overrideReason": {"reason": {"code": "x"}}}]}, "overrideReason.reason"),
])
def test_invalid_feedback_is_400(client, body, message):
    response = client.post(URL, json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_feedback_for_an_unknown_service_is_404(client):
    body = {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z"}]}
    assert client.post("/cds-services/unknown/feedback", json=body).status_code == 404


def test_feedback_is_logged_by_card_and_outcome_without_comments(capsys):
    app = make_app(log_level="INFO")
    client = app.test_client()
    service_id, request = scenario_request(load_scenario("foundation-calcinosis-ckd-hyperphosphatemia"))
    card = client.post(f"/cds-services/{service_id}", json=request).get_json()["cards"][0]
    capsys.readouterr()
    body = {"feedback": [{"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z",
                          "overrideReason": {"reason": {"code": "already-addressed", "system": "urn:x"},
                                             "userComment": "Mrs Example said no"}}]}
    assert client.post(URL, json=body).status_code == 200
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    feedback = next(e for e in events if e["event"] == "feedback")
    assert feedback["card"] == card["uuid"]
    assert (feedback["cardKnown"], feedback["stored"], feedback["outcome"]) == (True, True, "overridden")
    assert feedback["overrideReason"] == "already-addressed"
    assert "Mrs Example" not in json.dumps(events)
