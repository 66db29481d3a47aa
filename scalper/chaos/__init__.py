"""The chaos gate: named fault scenarios, a deterministic runner, a ground-truth checker.

``python -m scalper chaos NAME --seed N`` runs one scenario; ``pytest chaos/`` runs them
all over several seeds plus generated fault schedules. See ``docs/chaos.md``.
"""

from scalper.chaos.checks import CheckLimits, InvariantChecker, Violation
from scalper.chaos.plan import Expectations, Scenario
from scalper.chaos.runner import ChaosResult, RunOptions, run_scenario

__all__ = [
    "ChaosResult",
    "CheckLimits",
    "Expectations",
    "InvariantChecker",
    "RunOptions",
    "Scenario",
    "Violation",
    "run_scenario",
]
