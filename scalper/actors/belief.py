"""The BeliefController: belief debt to posture to GuardKnobs, plus the kill switch.

Theory of operation
-------------------

The controller turns what the Reconciler found (:class:`~scalper.actors.reconciler.BeliefState`)
and what the journal's state says about unresolved orders into core's
:class:`~scalper.core.posture.BeliefDebt`, and feeds it to
:class:`~scalper.core.posture.PostureController` on every pass and on a steady tick (ages
grow while nothing happens). Every posture change is journaled
(:class:`~scalper.messages.PostureChanged`) with its cause tags and the unlock conditions
for the next step down, and the new :class:`~scalper.core.posture.GuardKnobs` are sent to
every subscriber (the Router, strategies). Knobs limit entries only; nothing here can
block an exit (I1). Posture boots ORANGE: after a restart the system earns its way back.

The kill switch (:class:`~scalper.core.kill_switch.KillSwitch`) is evaluated on each pass
with the mismatch streak, RED posture and equity. A trip, its expiry, an operator halt and
an operator resume are journaled as :class:`~scalper.messages.HaltChanged`; the journal's
halts are what the Router checks, so a halt survives a restart of any actor or of the
process. Resume needs a clean last reconcile and no active automatic trigger
(:meth:`BeliefController.reconcile_blocking` is that reconcile rule, shared with
``System.unfreeze``).

When an operator or kill-switch halt becomes active (and again when a restarted controller
finds one in the journal), the controller hands the halt's source to the ``on_halt`` hook
if ``cancel_entries_on_halt`` is set: the System cancels resting *entry* orders through the
Router's cancel path. A halt only stops new entries; without this, a resting limit entry
could still fill into a halted account. Protective stops and exits are never touched (I1):
which orders qualify is the hook's business, and it takes risk-increasing, non-reduce-only
orders only.

Debt inputs, and how they are measured:

* ``unknown_intents`` / ``oldest_unknown_intent_s``: orders in SENDING or UNKNOWN, aged
  from their send time;
* ``mismatch_streak`` and ``breadth``: the reconcile streak; mismatched symbols plus
  unknown orders;
* ``depth``: unknown orders' notional over ``reference_notional`` (a market order, whose
  price we do not hold, counts as one full reference entry), at least the worst mismatch
  severity;
* ``debt_age_s``: how long reconciles have been unclean, or the oldest unknown order;
* ``protection_gap_s``: how long a missing or undersized protection mismatch has
  persisted on any symbol (I9);
* ``source_confidence`` and ``contradiction_burn``: from the evidence health.
"""

import math
from collections.abc import Awaitable, Callable
from decimal import Decimal

import attrs
import trio

from scalper.actors.journal import Journal
from scalper.actors.reconciler import BeliefState
from scalper.clock import Clock
from scalper.core.kill_switch import KillReason, KillSwitch, KillSwitchInputs, KillSwitchState
from scalper.core.posture import (
    BeliefDebt,
    GuardKnobs,
    PostureController,
    PostureDecision,
    PostureMode,
)
from scalper.core.reconcile import ACCOUNT, MismatchKind
from scalper.core.types import ZERO
from scalper.messages import Halt, HaltChanged, PostureChanged, PressureRaised, Resume
from scalper.store.records import LedgerState

__all__ = ["BeliefConfig", "BeliefController", "HaltHook", "ResumeResult"]

#: Called with the halt's source (``operator``, ``kill_switch``) once it is journaled.
HaltHook = Callable[[str], Awaitable[None]]

#: Halt sources whose activation cancels resting entries (the supervisor's halt stops the
#: whole system; its resting orders are the dead-man switch's business).
_SWEPT_SOURCES = ("operator", "kill_switch")

_PROTECTION_KINDS = frozenset({MismatchKind.MISSING_PROTECTION, MismatchKind.UNDERSIZED_PROTECTION})


@attrs.frozen
class BeliefConfig:
    """Controller settings.

    Attributes:
        tick_s: how often posture is re-evaluated without new evidence.
        reference_notional: the notional of one standard entry (depth's unit), quote asset.
        cancel_entries_on_halt: when an operator or kill-switch halt becomes active, cancel
            resting entry (risk-increasing, non-reduce-only) orders; stops and exits are
            never cancelled (I1).
        in_flight_grace_s: an order still SENDING (journaled, no answer yet) counts as an
            unknown intent only once it is this old. A normal send takes milliseconds; a
            belief pass that happens to land inside one must not read it as uncertainty
            (the chaos gate found every exit taken in RED that way). The Router's request
            timeout turns a send that hangs longer into an explicit UNKNOWN, which counts
            at once.
    """

    tick_s: float = 1.0
    reference_notional: Decimal = Decimal("1000")
    cancel_entries_on_halt: bool = True
    in_flight_grace_s: float = 10.0

    def __attrs_post_init__(self) -> None:
        if not (math.isfinite(self.tick_s) and self.tick_s > 0):
            raise ValueError(f"tick_s must be a positive number, got {self.tick_s!r}")
        if not (math.isfinite(self.in_flight_grace_s) and self.in_flight_grace_s >= 0):
            raise ValueError(
                f"in_flight_grace_s must be a number >= 0, got {self.in_flight_grace_s!r}"
            )
        if not self.reference_notional > 0:
            raise ValueError(f"reference_notional must be positive, got {self.reference_notional}")
        if not isinstance(self.cancel_entries_on_halt, bool):
            raise ValueError(
                f"cancel_entries_on_halt must be true or false, got {self.cancel_entries_on_halt!r}"
            )


@attrs.frozen
class ResumeResult:
    """The answer to an operator resume: resumed, or what blocks it."""

    resumed: bool
    blocking: tuple[str, ...]


class BeliefController:
    """Posture and kill switch (see the module docstring).

    Args:
        journal: the single writer (halts and posture changes are journaled).
        clock: the injected clock.
        beliefs: :class:`BeliefState` from the Reconciler.
        knobs_out: where new knobs go (the Router's knobs inbox, strategies).
        posture: core's posture controller (boots in its configured boot mode).
        kill_switch: core's kill switch.
        config: tick, depth unit, and whether a halt cancels resting entries.
        protection_gap: the ProtectionManager's current gap (seconds), if one runs.
        on_halt: called with the source when an operator or kill-switch halt becomes active
            (and on start while one holds), if ``config.cancel_entries_on_halt``.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        clock: Clock,
        beliefs: trio.MemoryReceiveChannel[BeliefState],
        knobs_out: list[trio.MemorySendChannel[GuardKnobs]],
        posture: PostureController,
        kill_switch: KillSwitch,
        config: BeliefConfig | None = None,
        protection_gap: Callable[[], float] | None = None,
        on_halt: HaltHook | None = None,
    ) -> None:
        self._journal = journal
        self._on_halt = on_halt
        self._protection_gap = protection_gap
        self._pressures: dict[tuple[str, str, str], tuple[float, float, str]] = {}
        self._clock = clock
        self._beliefs = beliefs
        self._knobs_out = knobs_out
        self.posture = posture
        self.kill_switch = kill_switch
        self._config = config or BeliefConfig()
        self.last_belief: BeliefState | None = None
        self.last_decision: PostureDecision | None = None
        self.last_debt = BeliefDebt()
        self._unclean_since: float | None = None
        self._gap_since: dict[str, float] = {}
        self._day_start_equity: Decimal | None = None
        self._peak_equity: Decimal | None = None
        self._equity: Decimal | None = None

    @property
    def knobs(self) -> GuardKnobs:
        """The current entry limits."""
        return self.posture.knobs

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume beliefs and tick until cancelled."""
        now = self._clock.now()
        operator = self._journal.state.halts.get("operator")
        if operator is not None:
            # The halt is durable: a restarted controller re-arms it from the journal.
            self.kill_switch.operator_halt(now, operator)
        for source in _SWEPT_SOURCES:
            if source in self._journal.state.halts:
                # The process (or this actor) may have died between journaling the halt and
                # cancelling the resting entries: sweep again (cancels are idempotent).
                await self._halt_activated(source)
        await self._publish(self.posture.knobs)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._tick_loop)
            task_status.started()
            async for belief in self._beliefs:
                self.last_belief = belief
                await self._update(belief)

    async def _tick_loop(self) -> None:
        while True:
            await trio.sleep(self._config.tick_s)
            await self._update(None)

    async def _publish(self, knobs: GuardKnobs) -> None:
        for send in self._knobs_out:
            try:
                send.send_nowait(knobs)
            except trio.WouldBlock:
                # A subscriber behind on knobs gets the next ones; the Router reads the
                # latest anyway, and posture changes are journaled.
                pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    # ----------------------------------------------------------------- debt

    def debt(self, now: float) -> BeliefDebt:
        """The belief debt at ``now`` from the last reconcile and the journal's state."""
        state = self._journal.state
        wall_ms = self._clock.wall_ms()
        grace_ms = self._config.in_flight_grace_s * 1000.0
        unknown = [
            o
            for o in state.unresolved_orders()
            if o.ledger_state is not LedgerState.SENDING or wall_ms - o.sent_wall_ms >= grace_ms
        ]
        oldest = max((max(0.0, (wall_ms - o.sent_wall_ms) / 1000.0) for o in unknown), default=0.0)
        depth_unknown = Decimal(0)
        for o in unknown:
            price = state.price_hint(o)
            qty = o.request.quantity
            if price is None or qty is None:
                depth_unknown += self._config.reference_notional
            else:
                depth_unknown += price * qty
        belief = self.last_belief
        streak = 0
        mismatched: set[str] = set()
        severity = 0.0
        burn = 0.0
        confidence = 1.0
        if belief is not None:
            result = belief.result
            streak = result.streak
            severity = result.max_severity
            mismatched = {m.symbol for m in result.mismatches if m.symbol != ACCOUNT}
            burn = belief.evidence.contradiction_burn
            confidence = belief.evidence.confidence
            if result.clean:
                self._unclean_since = None
            elif self._unclean_since is None:
                self._unclean_since = result.now
            gap_symbols = {m.symbol for m in result.mismatches if m.kind in _PROTECTION_KINDS}
            for symbol in list(self._gap_since):
                if symbol not in gap_symbols and result.snapshot_ok:
                    del self._gap_since[symbol]
            for symbol in gap_symbols:
                self._gap_since.setdefault(symbol, result.now)
        age = 0.0 if self._unclean_since is None else max(0.0, now - self._unclean_since)
        gap = max((now - t for t in self._gap_since.values()), default=0.0)
        if self._protection_gap is not None:
            # The ProtectionManager sees a gap from the fill on, before any reconcile does.
            gap = max(gap, self._protection_gap())
        for key, (_, until, _) in list(self._pressures.items()):
            if until <= now:
                del self._pressures[key]
        extra = max((sev for sev, _, _ in self._pressures.values()), default=0.0)
        extra_tags = tuple(sorted({cause for _, _, cause in self._pressures.values()}))
        return BeliefDebt(
            debt_age_s=max(age, oldest),
            breadth=len(mismatched) + len(unknown),
            depth=max(float(depth_unknown / self._config.reference_notional), severity),
            contradiction_burn=burn,
            protection_gap_s=max(0.0, gap),
            mismatch_streak=streak,
            source_confidence=min(1.0, max(0.0, confidence)),
            unknown_intents=len(unknown),
            oldest_unknown_intent_s=oldest if unknown else 0.0,
            extra_pressure=min(1.0, max(0.0, extra)),
            extra_tags=extra_tags,
        )

    async def _update(self, belief: BeliefState | None) -> None:
        now = self._clock.now()
        debt = self.debt(now)
        self.last_debt = debt
        decision = self.posture.update(debt, now)
        self.last_decision = decision
        if decision.changed:
            await self._journal.append(
                PostureChanged(
                    mode=decision.mode.value,
                    previous=decision.previous_mode.value,
                    score=round(decision.score, 6),
                    causes=decision.explanation.cause_tags,
                    unlock=tuple(c.describe() for c in decision.explanation.unlock_conditions),
                    knobs=decision.knobs,
                )
            )
            await self._publish(decision.knobs)
        if belief is not None:
            await self._evaluate_kill_switch(belief, decision, now)

    # ----------------------------------------------------------------- kill switch

    async def _evaluate_kill_switch(
        self, belief: BeliefState, decision: PostureDecision, now: float
    ) -> None:
        equity = belief.equity
        if equity is not None:
            self._equity = equity
            if self._day_start_equity is None:
                self._day_start_equity = equity
            self._peak_equity = max(self._peak_equity or equity, equity)
        if self._equity is None or self._day_start_equity is None or self._peak_equity is None:
            # Without equity the loss triggers cannot be judged; the streak still can.
            equity_in = day_in = peak_in = Decimal(1)
        else:
            equity_in, day_in, peak_in = self._equity, self._day_start_equity, self._peak_equity
        verdict = self.kill_switch.evaluate(
            KillSwitchInputs(
                equity=equity_in if equity_in > ZERO else Decimal(1),
                day_start_equity=day_in if day_in > ZERO else Decimal(1),
                peak_equity=peak_in if peak_in > ZERO else Decimal(1),
                reconcile_mismatch_streak=belief.result.streak,
                posture_red=decision.mode is PostureMode.RED,
            ),
            now,
        )
        await self._sync_halt(verdict)

    async def _sync_halt(self, verdict: KillSwitchState) -> None:
        automatic = verdict.halted and tuple(
            r for r in verdict.reasons if r is not KillReason.OPERATOR
        )
        journaled = "kill_switch" in self._journal.state.halts
        if automatic and not journaled:
            reasons = ",".join(r.value for r in verdict.reasons)
            await self._journal.append(HaltChanged(True, reasons, "kill_switch"))
            await self._halt_activated("kill_switch")
        elif not automatic and journaled:
            await self._journal.append(HaltChanged(False, "kill_switch_cleared", "kill_switch"))

    # ----------------------------------------------------------------- pressure

    async def raise_pressure(self, event: PressureRaised) -> None:
        """Hold an actor's pressure (already journaled by it) for ``hold_s`` and re-decide now."""
        now = self._clock.now()
        key = (event.source, event.symbol, event.cause)
        previous = self._pressures.get(key)
        severity = event.severity if previous is None else max(previous[0], event.severity)
        self._pressures[key] = (severity, now + event.hold_s, event.cause)
        await self._update(None)

    def active_pressures(self) -> dict[str, float]:
        """The pressures currently held, ``source:symbol:cause`` to severity."""
        now = self._clock.now()
        return {
            ":".join(key): sev
            for key, (sev, until, _) in sorted(self._pressures.items())
            if until > now
        }

    # ----------------------------------------------------------------- operator

    async def halt(self, command: Halt) -> None:
        """Operator halt: entries stop now (resting entries are cancelled); durable."""
        self.kill_switch.operator_halt(self._clock.now(), command.reason)
        await self._journal.append(HaltChanged(True, command.reason, "operator"))
        # Halting again re-sweeps: an entry placed before the first halt whose create was
        # still unresolved then may be cancellable now.
        await self._halt_activated("operator")

    async def _halt_activated(self, source: str) -> None:
        # After the HaltChanged is applied to the journal's state, so the Router refuses
        # every new entry before the sweep reads which entries rest.
        if self._config.cancel_entries_on_halt and self._on_halt is not None:
            await self._on_halt(source)

    def reconcile_blocking(self) -> tuple[str, ...]:
        """``("reconcile_not_clean",)`` unless the last reconcile pass was clean, else ``()``.

        The rule an operator command that lifts a restriction must meet (resume, unfreeze):
        the journal's last pass found no mismatch at all. None having run counts as unclean.
        """
        last = self._journal.state.last_reconcile
        if last is None or not last.clean:
            return ("reconcile_not_clean",)
        return ()

    async def resume(self, command: Resume) -> ResumeResult:
        """Operator resume: only after a clean reconcile and with no automatic trigger."""
        state = self._journal.state
        blocking = self.reconcile_blocking()
        if blocking:
            return ResumeResult(False, blocking)
        decision = self.kill_switch.operator_resume(self._clock.now())
        if not decision.resumed:
            return ResumeResult(False, tuple(r.value for r in decision.blocking))
        for source in ("operator", "kill_switch", "supervisor"):
            if source in state.halts:
                await self._journal.append(HaltChanged(False, command.reason, source))
        return ResumeResult(True, ())
