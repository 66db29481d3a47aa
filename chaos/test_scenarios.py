"""Every named scenario, over several seeds: every invariant holds, the posture behaves.

A failure prints the verdict (first violation, reproduction command) and the timeline's
tail, which is usually enough to see what went wrong without re-running.
"""

import pytest

from chaos.conftest import GATE_SEEDS, result_for
from scalper.chaos.artifacts import render_verdict
from scalper.chaos.scenarios import SCENARIOS


@pytest.mark.parametrize("seed", GATE_SEEDS)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_holds_every_invariant(name: str, seed: int) -> None:
    result = result_for(name, seed)
    tail = "\n".join(e.render() for e in result.timeline[-25:])
    assert result.ok, f"{render_verdict(result)}\n--- timeline (tail) ---\n{tail}"
    # Quiescence means more than "no violation was seen": the checker judged real work.
    assert result.journal_rows[0][2] == "system_started"
    assert result.journal_rows[-1][2] == "system_stopped"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_reaches_what_it_exists_for(name: str) -> None:
    # A scenario that never reaches its dangerous path proves nothing about it: over the
    # gate's seeds, each label the scenario names must be reached at least once.
    scenario = SCENARIOS[name]
    reached = set().union(*(result_for(name, seed).reached for seed in GATE_SEEDS))
    missing = [label for label in scenario.reaches if label not in reached]
    assert not missing, f"{name} never reached {missing} over seeds {GATE_SEEDS}"


def test_the_catalogue_has_every_scenario_the_gate_requires() -> None:
    required = {
        "unknown-order", "replace-race", "contradiction-burst", "protection-gap",
        "ack-timeout", "unknown-503-present", "unknown-503-absent", "fill-after-cancel",
        "cancel-unknown-but-live", "stream-gap", "stale-snapshot", "rate-limit-storm",
        "clock-skew", "dribble-fills", "duplicate-client-id", "restart-mid-entry",
        "restart-mid-replace", "restart-mid-partial-fill", "orphans", "mismatch-storm",
        "actor-crash",
    }  # fmt: skip
    assert required <= set(SCENARIOS)
    for scenario in SCENARIOS.values():
        assert scenario.description
        assert "\n" not in scenario.description
        assert scenario.proves
