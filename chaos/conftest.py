"""The chaos gate's shared fixtures: one run per (scenario, seed), shared by every test.

The scenario tests, the "sometimes" catalogue and the determinism test look at the same
runs, so each (scenario, seed) is played once per pytest session.
"""

import functools

from scalper.chaos.runner import ChaosResult, run_scenario
from scalper.chaos.scenarios import SCENARIOS

#: Seeds every named scenario runs with in the gate (the CLI's --all --seeds N goes wider).
GATE_SEEDS = (1, 2, 3)


@functools.cache
def result_for(name: str, seed: int) -> ChaosResult:
    """The (cached) run of scenario ``name`` with ``seed``."""
    return run_scenario(SCENARIOS[name], seed)
