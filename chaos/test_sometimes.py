"""The "sometimes" catalogue: the gate's runs must reach every dangerous path at least once.

Invariants that hold on runs that never met an unknown outcome, a fill after a cancel or a
crash between journal and send say nothing about those cases. This test fails the gate if
the campaign (every scenario over the gate's seeds) never reached one of them.
"""

from chaos.conftest import GATE_SEEDS, result_for
from scalper.chaos.scenarios import SCENARIOS
from scalper.chaos.sometimes import CATALOGUE, REQUIRED


def test_every_required_dangerous_path_was_reached() -> None:
    reached: dict[str, list[str]] = {}
    for name in SCENARIOS:
        for seed in GATE_SEEDS:
            for label in result_for(name, seed).reached:
                reached.setdefault(label, []).append(f"{name}#{seed}")
    missing = [label for label in REQUIRED if label not in reached]
    assert not missing, f"never reached: {missing}; reached: {sorted(reached)}"


def test_every_label_is_described() -> None:
    assert set(REQUIRED) <= set(CATALOGUE)
    for label, meaning in CATALOGUE.items():
        assert label.islower()
        assert " " not in label
        assert meaning
    for scenario in SCENARIOS.values():
        assert set(scenario.reaches) <= set(CATALOGUE), scenario.name
