"""A deliberately broken build must fail the gate: each mutation is caught by a named check.

Each test breaks one safety mechanism of one running system (through
``RunOptions.before_start``, on that instance only: nothing global is patched), plays the
scenario that attacks it, and asserts that the checker reports the violation the mechanism
exists to prevent. If one of these tests fails, the gate has gone blind to that bug.
"""

from collections.abc import Callable
from typing import Any

import attrs

from scalper.chaos.runner import ChaosResult, RunOptions, run_scenario
from scalper.chaos.scenarios import SCENARIOS
from scalper.core.protection import Coverage, RefreshDecision, RefreshPolicy
from scalper.messages import SubmitIntent
from scalper.system import System


def _run_broken(name: str, mutate: Callable[[System], None], seed: int = 1) -> ChaosResult:
    return run_scenario(SCENARIOS[name], seed, RunOptions(before_start=mutate))


def _checks(result: ChaosResult) -> set[str]:
    return {v.check for v in result.violations}


def test_a_blind_resend_after_a_timeout_is_caught() -> None:
    # The Router treats an unknown create outcome as "not placed" and sends the next
    # generation at once, without the query that would have found the order.
    def mutate(system: System) -> None:
        router = system.router

        async def assume_absent(order: object) -> str:
            return "absent"

        router._resolve = assume_absent  # type: ignore[method-assign]
        router._may_send = lambda intent, generation: True  # type: ignore[method-assign]

    result = _run_broken("ack-timeout", mutate)
    assert "I7.one_order_per_intent" in _checks(result), result.violations
    assert "I7.resolve_before_resend" in _checks(result)


def test_a_stop_not_resized_after_a_further_fill_is_caught() -> None:
    # The ProtectionManager's resize policy never refreshes a stop once one exists: the
    # first fill is protected, every later fill of the leg is left uncovered at the venue.
    # (The gap tracker still sees the truth, so the posture escalates; that is the system's
    # own defence, and the gate must still name the broken promise: I9.)
    class FirstStopOnly:
        def __init__(self, policy: RefreshPolicy) -> None:
            self._policy = policy

        def decide(self, coverage: Coverage, now: float, **kw: Any) -> RefreshDecision:
            decision = self._policy.decide(coverage, now, **kw)
            if coverage.covered_qty > 0:
                return attrs.evolve(decision, refresh=False)
            return decision

        def __getattr__(self, name: str) -> Any:
            return getattr(self._policy, name)

    def mutate(system: System) -> None:
        protection = system.protection
        assess = protection._assess

        async def assess_with_broken_policy(leg: Any, trigger: str, nursery: Any) -> None:
            # run() builds a fresh policy at every (re)start: break the one in use.
            if not isinstance(protection._policy, FirstStopOnly):
                protection._policy = FirstStopOnly(protection._policy)  # type: ignore[assignment]
            await assess(leg, trigger, nursery)

        protection._assess = assess_with_broken_policy  # type: ignore[method-assign]

    result = _run_broken("dribble-fills", mutate)
    assert "I9.gap_within_ttl" in _checks(result), result.violations
    assert "I9.covered_at_quiescence" in _checks(result)


def test_an_exit_blocked_by_posture_is_caught() -> None:
    # The Router applies the entry gates (halt, posture) to exits too.
    def mutate(system: System) -> None:
        router = system.router
        original = router._accept

        async def gate_everything(cmd: SubmitIntent):
            if cmd.intent.is_exit and (
                router._journal.state.halted or not router.knobs.allow_entries
            ):
                from scalper.actors.router import IntentReceipt
                from scalper.messages import IntentRejected

                intent = cmd.intent
                await router._journal.append(
                    IntentRejected(intent.intent_id, intent.correlation_id, "halted", "mutation")
                )
                return IntentReceipt(intent.intent_id, False, "halted", "mutation")
            return await original(cmd)

        router._accept = gate_everything  # type: ignore[method-assign]

    result = _run_broken("mismatch-storm", mutate)
    assert "I1.exit_never_gated" in _checks(result), result.violations
