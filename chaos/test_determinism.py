"""Same seed, same journal: the sha256 of a run's journal depends only on scenario and seed."""

from chaos.conftest import result_for
from scalper.chaos.runner import run_scenario
from scalper.chaos.scenarios import SCENARIOS


def test_same_seed_gives_the_same_journal_sha256() -> None:
    # One plain scenario and one with a process crash and restart: the restart path must
    # be as deterministic as the rest.
    for name in ("unknown-order", "restart-mid-entry"):
        first = result_for(name, 1)
        again = run_scenario(SCENARIOS[name], 1)
        assert again.fingerprint == first.fingerprint, name
        assert again.journal_rows == first.journal_rows


def test_a_different_seed_gives_a_different_run() -> None:
    assert result_for("unknown-order", 1).fingerprint != result_for("unknown-order", 2).fingerprint
