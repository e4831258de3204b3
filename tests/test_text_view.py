"""`calcinosis-cds evaluate --format text`: the cards for a person at a terminal; JSON stays the default."""

from __future__ import annotations

import io
import json
import re

import pytest

from cds_service.service.cli import main
from cds_service.service.text_view import print_cards

from .conftest import NOW, SCENARIOS

BOX = re.compile(r"[│╭╮╰╯─]")
SCENARIOS_SHOWN = ("foundation-calcinosis-ckd-hyperphosphatemia", "r05-order-sign-al-antacid-dialysis")


def _plain(text: str) -> str:
    """The words of the output in one line: panel borders gone, wrapped lines joined."""
    return re.sub(r"\s+", " ", BOX.sub(" ", text)).strip()


def _evaluate(capsys, name: str, *extra: str) -> str:
    assert main(["evaluate", str(SCENARIOS / f"{name}.json"), "--at", NOW.isoformat(), *extra]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", SCENARIOS_SHOWN)
def test_the_text_view_shows_every_card_for_a_reader(capsys, name):
    response = json.loads(_evaluate(capsys, name))  # the default: JSON, for scripts
    assert response["cards"]
    text = _evaluate(capsys, name, "--format", "text")
    plain = _plain(text)

    assert plain.startswith(f"{len(response['cards'])} card")
    for card in response["cards"]:
        assert card["summary"] in plain
        assert card["indicator"].upper() in plain
        for suggestion in card.get("suggestions", []):
            assert suggestion["label"] in plain
            for action in suggestion.get("actions", []):
                assert action["description"] in plain
    # The detail's Markdown is rendered, not shown as markup; nothing of the JSON is left.
    assert "**" not in text and "\n#" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert not re.search(r'^\s*[{}\[\]]', text, re.MULTILINE)
    assert '"summary"' not in text and '"uuid"' not in text and "resourceType" not in text
    assert "\x1b[" not in text  # no colour codes when the output is not a terminal


def test_a_critical_card_says_so():
    response = {"cards": [{"summary": "Mg/Al antacid with dialysis: high risk of toxicity.", "indicator": "critical",
                           "detail": "Antacid ordered:\n\n- aluminium hydroxide", "source": {"label": "Medscape"}}]}
    out = io.StringIO()
    print_cards(response, out, width=100)
    assert "CRITICAL" in out.getvalue() and "• aluminium hydroxide" in out.getvalue()


def test_links_recommended_suggestions_and_the_calls_report_are_shown():
    response = {
        "cards": [{
            "summary": "Warfarin in calciphylaxis: consider stopping.",
            "indicator": "warning",
            "detail": "Warfarin is a reported risk factor.",
            "source": {"label": "VisualDx: Calciphylaxis", "url": "https://www.visualdx.com/"},
            "suggestions": [{"label": "Remove the warfarin order", "isRecommended": True,
                             "actions": [{"type": "delete", "description": "Delete MedicationRequest/w1"}]}],
            "selectionBehavior": "any",
            "links": [{"label": "Rule R08c", "url": "http://127.0.0.1:8080/rules/R08c", "type": "absolute"}],
        }],
        "extension": {"calcinosis-cds": {"skippedResources": [{"reference": "Observation/x"}], "failedRules": ["R02"]}},
    }
    out = io.StringIO()
    print_cards(response, out, width=120)
    plain = _plain(out.getvalue())
    assert "WARNING" in plain
    assert "Remove the warfarin order (recommended)" in plain
    assert "delete: Delete MedicationRequest/w1" in plain
    assert "Suggestions (choose any):" in plain
    assert "Rule R08c: http://127.0.0.1:8080/rules/R08c" in plain
    assert "Source: VisualDx: Calciphylaxis (https://www.visualdx.com/)" in plain
    assert "Note: resources skipped: 1, rules failed: 1 (details in --format json)." in plain


def test_no_cards_is_said_in_words():
    out = io.StringIO()
    print_cards({"cards": []}, out)
    assert out.getvalue().strip() == "No cards: nothing to show for this patient."


def test_an_unknown_format_is_refused(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["evaluate", str(SCENARIOS / f"{SCENARIOS_SHOWN[0]}.json"), "--format", "yaml"])
    assert raised.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
