"""Every rule id of the clinical specification has an implementation, a positive and a negative fixture, and a catalogue entry.

The rule ids of docs/clinical-specification.md are listed here. They are
the stable public identifiers of clinical specification §2.2 ("R01 … R23, R08a/b/c"): R08 is split into R08a/b/c and has no plain
R08 entry.
"""

import json

from cds_service.service.catalogue import catalogue, render_catalogue
from cds_service.service.cli import main
from cards import knowledge


def registry():
    return knowledge().rules


from .conftest import scenario_names

RULES_MD_IDS = (
    "R01", "R02", "R03", "R04", "R05", "R06", "R07", "R08a", "R08b", "R08c", "R09", "R10", "R11", "R12", "R13",
    "R14", "R15", "R16", "R17", "R18", "R19", "R20", "R21", "R22", "R23",
)


def _fixture_rule(name: str) -> str | None:
    prefix = name.split("-")[0]
    return prefix[0].upper() + prefix[1:] if prefix.startswith("r") and prefix[1:3].isdigit() else None


def test_every_rule_id_of_rules_md_is_implemented():
    missing = [rule_id for rule_id in RULES_MD_IDS if rule_id not in registry()]
    assert not missing, f"rules of the clinical specification with no implementation in cards/: {missing}"
    unknown = [rule_id for rule_id in registry() if rule_id not in RULES_MD_IDS]
    assert not unknown, f"rules in cards/ that the clinical specification does not define: {unknown}"


# Rules that run on no hook: R07 (animal data only) is not shown on cards (decision A20).
NOT_ON_CARDS = ("R07",)


def test_every_rule_has_a_positive_and_a_negative_fixture():
    """A positive fixture of rule X (fixtures/scenarios/x-*.json) expects X to fire; a negative one expects X silent.
    A rule not shown on cards has negative fixtures only."""
    from .conftest import load_scenario

    problems = []
    expects = {name: load_scenario(name)["expect"] for name in scenario_names()}
    for rule_id in RULES_MD_IDS:
        mine = [n for n in expects if _fixture_rule(n) == rule_id]
        if rule_id not in NOT_ON_CARDS and not any(rule_id in expects[n].get("fires", []) for n in mine):
            problems.append(f"{rule_id}: no positive fixture (one whose expect.fires names it)")
        if not any(rule_id in expects[n].get("silent", []) for n in mine):
            problems.append(f"{rule_id}: no negative fixture (one whose expect.silent names it)")
    assert not problems, "missing fixtures:\n" + "\n".join(problems)


def test_positive_fixtures_expect_their_rule_and_negative_ones_its_silence():
    from .conftest import load_scenario

    for name in scenario_names():
        rule_id = _fixture_rule(name)
        if rule_id is None:
            continue
        expect = load_scenario(name)["expect"]
        if "-positive-" in name:
            assert rule_id in expect.get("fires", []), name
        if "-negative-" in name:
            assert rule_id in expect.get("silent", []), name


def test_every_rule_declares_what_the_catalogue_needs():
    for rule in registry().values():
        assert rule.title and rule.article and rule.trigger and rule.evidence_level, rule.id
        assert bool(rule.hooks) != (rule.id in NOT_ON_CARDS), rule.id
        if rule.id != "R08c":
            assert knowledge().citation(rule).startswith("Nunley JR."), rule.id
    assert registry()["R23"].outside_article and "overview" in registry()["R23"].outside_article.lower()
    # A20: the rules from outside the article name their real sources; every other rule cites the article.
    assert knowledge().source_of(registry()["R08c"]).label == "VisualDx: Calciphylaxis"
    assert knowledge().citation(registry()["R08c"]) == "VisualDx. Calciphylaxis (diagnosis page; risk factors)"
    assert knowledge().source_of(registry()["R23"]).label == "Medscape: Calcinosis Cutis (Overview)"
    others = {knowledge().source_of(rule).label for rule in registry().values() if rule.id not in ("R08c", "R23")}
    assert others == {"Medscape: Calcinosis Cutis Treatment & Management (Nunley, 2020)"}


def test_rules_command_prints_every_rule_with_trigger_hooks_and_citation(capsys):
    assert main(["rules"]) == 0
    text = capsys.readouterr().out
    for rule in registry().values():
        assert f"{rule.id}  {rule.title}" in text
        assert rule.trigger in text
        assert knowledge().citation(rule) in text
    assert "refs [36]" in text and "G0" in text


def test_rules_command_json_and_markdown_cover_every_rule(capsys):
    assert main(["rules", "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in entries[1:]] == list(registry())
    assert all(e["hooks"] and e["citation"] and e["trigger"] for e in entries)
    by_id = {e["id"]: e for e in entries}
    assert by_id["R07"]["hooks"] == ["none (not shown on cards)"]
    assert "Pregnancy" in by_id["R13"]["exclusions"]  # exclusions in words, for the rule pages and the catalogue
    markdown = render_catalogue("markdown")
    assert all(f"### {e['id']}:" in markdown for e in catalogue())
