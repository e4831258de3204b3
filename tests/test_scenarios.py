"""Every fixture scenario, through the HTTP API, at two evaluation times: the rules it names fire, or stay silent."""

import pytest

from .conftest import NOW, OTHER_NOW, evaluate_scenario, fired_rules, load_scenario, scenario_names


@pytest.mark.parametrize("now", [NOW, OTHER_NOW], ids=["now", "other-now"])
@pytest.mark.parametrize("name", scenario_names())
def test_scenario(name, now):
    expect = load_scenario(name, now)["expect"]
    response = evaluate_scenario(name, now)
    fired = fired_rules(response)
    for rule_id in expect.get("fires", []):
        assert rule_id in fired, f"{name}: {rule_id} should fire; fired {sorted(fired)}"
    for rule_id in expect.get("silent", []):
        assert rule_id not in fired, f"{name}: {rule_id} must stay silent; fired {sorted(fired)}"
    if "cards" in expect:
        assert len(response["cards"]) == expect["cards"], [c["summary"] for c in response["cards"]]
