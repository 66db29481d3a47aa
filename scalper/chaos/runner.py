"""The chaos runner: the whole system, a simulated exchange, a scenario, a seed, a verdict.

Theory of operation
-------------------

:func:`run_scenario` builds the production :class:`~scalper.system.System` (every actor,
the real Router, Journal and supervisors) against the in-process simulated exchange
(:class:`~scalper.venues.sim.inproc.InProcessVenue`) with the scenario's fault schedule,
under ``trio.testing.MockClock`` with a seeded scheduler
(:func:`scalper.determinism.run_deterministic`). A fifteen-minute scenario takes well
under a second of real time and the same seed gives the same journal, byte for byte.

While the system runs, three things happen in simulated time:

* the **driver** plays the script: each :data:`~scalper.chaos.plan.Step` at its instant
  (strategy entries and exits through ``System.submit``, operator halts, market jumps,
  orders cancelled or planted behind the system's back, crash points armed, kills);
* the **checker** (:class:`~scalper.chaos.checks.InvariantChecker`) folds the committed
  journal and the engine's ground-truth history every ``check_interval_s`` and after every
  step, and pins each violation to the record that caused it;
* **process deaths**: an armed crash point of kind PROCESS (or a :class:`Kill` step) ends
  the incarnation. What the store had committed is all that survives
  (:meth:`Store.restarted_copy`); the driver's script position and the exchange survive
  (the world goes on); after ``restart_after_s`` a new System starts on the copy, with
  ``restart_reason="crash_recovery"``, against the same exchange, and must rebuild.

At the end of the script the run waits out the fault-free tail (``settle_s``), stops the
system cleanly and runs the quiescence checks and the posture expectations. The result
carries everything a person needs to understand a failure: the timeline, the journal, the
trades, the reconcile totals, the metrics and the reproduction command.
"""

import hashlib
import re
from collections import Counter
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal

import attrs
import trio

from scalper.chaos.checks import GATED_REASONS, CheckLimits, InvariantChecker, Violation
from scalper.chaos.plan import (
    ArmCrash,
    Cancel,
    Enter,
    Exit,
    Halt,
    Kill,
    MovePrice,
    PlantOrphan,
    Replace,
    Resume,
    Scenario,
    Step,
    Unfreeze,
    VenueCancel,
)
from scalper.chaos.sometimes import reached
from scalper.clock import Clock
from scalper.core.ids import client_order_id
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import OrderRequest
from scalper.core.posture import PostureMode
from scalper.core.types import OrderType, Side, TimeInForce
from scalper.crashpoints import CrashPoints, ProcessCrash
from scalper.determinism import derive_rng, run_deterministic
from scalper.messages import (
    ActorCrashed,
    ActorRestarted,
    Event,
    FillApplied,
    HaltChanged,
    PostureChanged,
    ReconcileCompleted,
    ReplaceOrder,
    StartupPhase,
    StreamDown,
    StreamGapObserved,
    SubmitIntent,
    SymbolFrozen,
    decode_event,
)
from scalper.operator.metrics import render_metrics
from scalper.state import AccountState
from scalper.store.store import Store
from scalper.system import System, SystemConfig
from scalper.venues.sim.engine import SimConfig, SimEngine, SymbolConfig
from scalper.venues.sim.errors import SimRejection
from scalper.venues.sim.faults import FaultConfig, FaultInjector, InjectedFault
from scalper.venues.sim.filters import SymbolFilters
from scalper.venues.sim.inproc import InProcessVenue
from scalper.venues.sim.market import BookConfig, PricePathConfig
from scalper.venues.sim.records import FillRecorded

__all__ = [
    "SYMBOL",
    "ChaosResult",
    "RunOptions",
    "TimelineEntry",
    "chaos_sim_config",
    "run_scenario",
]

#: The one symbol chaos scenarios trade.
SYMBOL = "BTCUSDT"
_TICK = Decimal("0.1")
#: How long after a restart a protection gap is still the crash's doing (startup's replay,
#: resolution and first reconcile come before the ProtectionManager can act).
_RESTART_SETTLE_S = 60.0
#: Entry refusals a scripted strategy waits out (they pass) instead of dropping the entry.
_PASSING_REFUSALS = frozenset({"halted", "posture_blocks_entries", "entry_cooldown"})
_SUMMARY_KEYS = ("stale", "orphan", "drift", "unknown")


@attrs.frozen
class TimelineEntry:
    """One line of a run's story: when (run seconds), what kind, what happened."""

    at: float
    kind: str
    text: str

    def render(self) -> str:
        """The line as printed: ``  123.4s  fault     LOSE_RESPONSE on create``."""
        return f"{self.at:8.1f}s  {self.kind:<9} {self.text}"


@attrs.frozen
class RunOptions:
    """How a run is built, beyond the scenario and the seed.

    Attributes:
        config: the system's config (the seed and symbols are set by the runner).
        check_interval_s: how often, in simulated seconds, the checker folds and judges.
        volatility_bps: the simulated market's random-walk step (per second).
        before_start: called with each new System before it starts (tests use it to
            break things on purpose: the mutations that prove the gate can fail).
    """

    config: SystemConfig = attrs.Factory(SystemConfig)
    check_interval_s: float = 0.25
    volatility_bps: float = 2.0
    before_start: Callable[[System], None] | None = None


@attrs.define
class ChaosResult:
    """Everything one run produced (see :mod:`scalper.chaos.artifacts` for the files)."""

    scenario: Scenario
    seed: int
    violations: list[Violation]
    timeline: list[TimelineEntry]
    reached: set[str]
    journal_rows: list[tuple[int, int, str, str, str]]
    fingerprint: str
    trades: list[tuple[str, ...]]
    reconcile: dict[str, object]
    metrics_text: str
    incarnations: int
    final_posture: str

    @property
    def ok(self) -> bool:
        """True when every invariant held and every posture expectation was met."""
        return not self.violations

    @property
    def reproduce(self) -> str:
        """The command that replays this run exactly."""
        return f"python -m scalper chaos {self.scenario.name} --seed {self.seed}"

    def summary_line(self) -> str:
        """``reconcile_summary stale=… orphan=… drift=… unknown=… violations=…``."""
        totals = self.reconcile["totals"]
        assert isinstance(totals, dict)
        parts = " ".join(f"{k}={totals.get(k, 0)}" for k in _SUMMARY_KEYS)
        return f"reconcile_summary {parts} violations={len(self.violations)}"


def chaos_sim_config(volatility_bps: float = 2.0) -> SimConfig:
    """The simulated exchange of every chaos run: BTCUSDT at 60000, a funded account."""
    symbol = SymbolConfig(
        symbol=SYMBOL,
        filters=SymbolFilters(),
        path=PricePathConfig(
            initial_price=Decimal(60000), volatility_bps=volatility_bps, step_seconds=1.0
        ),
        book=BookConfig(),
    )
    return SimConfig(symbols=(symbol,), initial_balance=Decimal(1_000_000))


def run_scenario(scenario: Scenario, seed: int, options: RunOptions | None = None) -> ChaosResult:
    """Play ``scenario`` with ``seed`` and return the verdict (deterministic: same in, same out).

    Raises:
        CoreValueError: if ``seed`` is not an integer.
        DeterminismUnavailable: if trio's scheduler cannot be seeded.
    """
    run = _Run(scenario, seed, options or RunOptions())
    return run_deterministic(run.main, seed=seed)


class _Run:
    """One run's world (exchange, store lineage, checker) across process incarnations."""

    def __init__(self, scenario: Scenario, seed: int, options: RunOptions) -> None:
        self.scenario = scenario
        self.seed = seed
        self.options = options
        self.config = attrs.evolve(options.config, symbols=(SYMBOL,), seed=seed)
        router, protection = self.config.router, self.config.protection
        self.limits = CheckLimits(
            prefix=self.config.prefix,
            max_generations=router.max_generations,
            max_orders_per_window=router.max_orders_per_window,
            rate_window_s=router.rate_window_s,
            max_open_orders_per_symbol=router.max_open_orders_per_symbol,
            gap_ttl_s=protection.protection.gap_ttl_seconds,
        )
        self.timeline: list[TimelineEntry] = []
        self.events: list[Event] = []
        self.fired: list[str] = []
        self.steps = scenario.ordered_steps()
        self.next_step = 0
        self.incarnations = 0

    # ----------------------------------------------------------------- the run

    async def main(self) -> ChaosResult:
        scenario = self.scenario
        self.t0 = trio.current_time()
        sim = chaos_sim_config(self.options.volatility_bps)
        self.engine = SimEngine(
            attrs.evolve(sim, start_time=self.t0), derive_rng(self.seed, "engine")
        )
        epoch_ms = round(sim.epoch_offset * 1000)
        self.clock = Clock(epoch_ms_at_start=epoch_ms, trio_time_at_start=self.t0)
        injector = None
        if scenario.faults:
            injector = FaultInjector(
                scenario.faults,
                derive_rng(self.seed, "faults"),
                config=FaultConfig(epoch_offset=sim.epoch_offset),
            )
        self.injector = injector
        self.venue = InProcessVenue(self.engine, injector, clock=trio.current_time)
        self.checker = InvariantChecker(self.limits, epoch_ms=epoch_ms)
        for fault in scenario.faults:
            self.checker.disturbed(self.t0 + fault.start, self.t0 + fault.end)
        store = Store.open(":memory:")
        reason = "start"
        while True:
            self.incarnations += 1
            crash_points = CrashPoints()
            system = System(
                self.config,
                self.venue,
                store,
                clock=self.clock,
                crash_points=crash_points,
                restart_reason=reason,
            )
            if self.options.before_start is not None:
                self.options.before_start(system)
            outcome, survivor = await self._incarnation(system, store)
            self.fired.extend(crash_points.fired)
            if survivor is None:
                break
            self._note("restart", f"process died ({outcome}); restarting on the committed journal")
            store = survivor
            died = trio.current_time()
            await trio.sleep(scenario.restart_after_s)
            # The gap rules for a dead process are escalation and the restart's repair; a
            # restart also needs its replay, resolution and first reconcile before trading.
            self.checker.disturbed(died, trio.current_time() + _RESTART_SETTLE_S)
            reason = "crash_recovery"
        return self._finish(system, store)

    async def _incarnation(self, system: System, store: Store) -> tuple[str, Store | None]:
        """Run one incarnation; returns how it ended and the store a restart would open."""
        survivor: Store | None = None
        outcome = "done"
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(system.run)
                nursery.start_soon(self._check_loop, system)
                outcome = await self._drive(system)
                if outcome == "killed":
                    # Only what is committed survives a kill -9: copy before anything unwinds.
                    survivor = store.restarted_copy()
                    self._note("crash", "process killed")
                elif outcome == "done":
                    self._check(system)
                    system.stop("chaos_finished")
                    await system.stopped.wait()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            matched, rest = group.split(ProcessCrash)
            if matched is None or rest is not None:
                raise
            point = str(_first_leaf(matched))
            self._note("crash", f"process crash at {point}")
            self._check(system)
            return f"crash at {point}", store.restarted_copy()
        return outcome, survivor

    async def _check_loop(self, system: System) -> None:
        while True:
            await trio.sleep(self.options.check_interval_s)
            self._check(system)

    def _now(self) -> float:
        return trio.current_time() - self.t0

    def _note(self, kind: str, text: str, at: float | None = None) -> None:
        self.timeline.append(TimelineEntry(self._now() if at is None else at, kind, text))

    # ----------------------------------------------------------------- checking

    def _check(self, system: System) -> None:
        checker = self.checker
        rows = []
        for entry in system.journal.store.entries(from_seq=checker.journal_seq + 1):
            event = decode_event(entry.type, entry.payload)
            rows.append((entry.seq, entry.wall_ms, event))
            self.events.append(event)
            self._narrate(event, (entry.wall_ms - self.clock.epoch_ms_at_start) / 1000.0)
        records = self.engine.history.records[checker.venue_seq :]
        for violation in checker.step(rows, records, self._now()):
            self._note("VIOLATION", violation.describe(), violation.at)

    def _narrate(self, event: Event, t: float) -> None:
        match event:
            case PostureChanged():
                causes = ", ".join(event.causes) or "none"
                self._note("posture", f"{event.previous} -> {event.mode} ({causes})", t)
            case HaltChanged():
                verb = "halt" if event.halted else "halt lifted"
                self._note("halt", f"{verb} by {event.source}: {event.reason}", t)
            case StartupPhase():
                self._note("startup", f"{event.phase}: {event.detail}", t)
            case ActorCrashed():
                self._note("actor", f"{event.actor} crashed: {event.error_type}", t)
            case ActorRestarted():
                self._note("actor", f"{event.actor} restarted (#{event.restart_count})", t)
            case SymbolFrozen():
                self._note("freeze", f"{event.symbol} frozen={event.frozen}: {event.reason}", t)
            case StreamDown():
                since = event.since - self.t0
                self._note("stream", f"down since {since:.1f}s: {event.reason}", t)
            case StreamGapObserved():
                start, end = event.started_at - self.t0, event.ended_at - self.t0
                self._note("stream", f"gap {start:.1f}s-{end:.1f}s ({event.reason}): backfill", t)
            case _:
                pass

    # ----------------------------------------------------------------- the script

    async def _drive(self, system: System) -> str:
        while self.next_step < len(self.steps):
            step = self.steps[self.next_step]
            await trio.sleep_until(self.t0 + step.at)
            # Advance first: a step that kills the process is not replayed after restart
            # (the world does not repeat itself), and neither is one a crash interrupted.
            self.next_step += 1
            if isinstance(step, Kill):
                return "killed"
            await self._perform(system, step)
            self._check(system)
            if system.stopped.is_set():
                return self._stopped_early(system)
        await trio.sleep_until(self.t0 + self.scenario.duration_s)
        if system.stopped.is_set():
            return self._stopped_early(system)
        return "done"

    def _stopped_early(self, system: System) -> str:
        self.checker.violations.append(
            Violation("liveness.system_stopped", self._now(), f"stopped: {system.stop_reason}")
        )
        return "stopped"

    async def _perform(self, system: System, step: Step) -> None:
        match step:
            case Enter():
                ready = await self._entries_allowed(
                    system,
                    step.patience_s,
                    lambda: self._entry_intent(
                        step.intent_id, step.side, step.quantity, step.offset_bps
                    ),
                )
                if not ready:
                    self._note("action", f"enter {step.intent_id}: gave up, entries blocked")
                    return
                intent, mid = self._entry_intent(
                    step.intent_id, step.side, step.quantity, step.offset_bps
                )
                receipt = await system.submit(intent, reference_price=mid)
                self._receipt(f"enter {step.intent_id} {intent.order_type.value}", receipt)
            case Exit():
                position = system.journal.state.position(SYMBOL)
                if position == 0:
                    self._note("action", f"exit {step.intent_id}: nothing to exit (flat)")
                    return
                self.checker.exits.add(step.intent_id)
                intent = Intent(
                    intent_id=step.intent_id,
                    symbol=SYMBOL,
                    side=Side.SELL if position > 0 else Side.BUY,
                    quantity=abs(position),
                    kind=IntentKind.EXIT,
                    reduce_only=True,
                )
                receipt = await system.submit(intent)
                self._receipt(f"exit {step.intent_id} {abs(position)}", receipt)
                if not receipt.accepted and receipt.reason in GATED_REASONS:
                    self.checker.violations.append(
                        Violation(
                            "I1.exit_never_gated",
                            self._now(),
                            f"exit refused: {receipt.reason}",
                            step.intent_id,
                        )
                    )
            case Cancel():
                await system.cancel(step.intent_id, "chaos script")
                self._note("action", f"cancel {step.intent_id}")
            case Replace():
                await self._replace(system, step)
            case Halt():
                await system.halt(step.reason)
                self._note("action", f"operator halt: {step.reason}")
            case Resume():
                result = await system.resume("chaos script")
                self._note("action", f"operator resume: {result}")
            case Unfreeze():
                await self._unfreeze(system, step)
            case MovePrice():
                self.engine.set_mark_price(SYMBOL, step.price, trio.current_time())
                self._note("market", f"price jumps to {step.price}")
            case ArmCrash():
                system.crash_points.arm(step.point, step.kind, skip=step.skip)
                self._note("action", f"armed {step.kind.value} crash at {step.point.value}")
            case VenueCancel():
                self._venue_cancel(step.which)
            case PlantOrphan():
                self._plant(step)
            case Kill():
                raise AssertionError("Kill is handled by the driver")

    async def _unfreeze(self, system: System, step: Unfreeze) -> None:
        """The operator lifts the freeze, retrying while a reconcile is not clean yet."""
        end = self.t0 + self.scenario.duration_s
        reason = "no_attempt"
        with trio.move_on_at(min(trio.current_time() + step.patience_s, end)):
            while True:
                result = await system.unfreeze(SYMBOL, "chaos operator: foreign order removed")
                reason = result.reason
                if result.done or reason == "not_frozen":
                    self._note("action", f"operator unfreeze {SYMBOL}: {reason}")
                    return
                await trio.sleep(step.retry_s)
        self._note("action", f"operator unfreeze {SYMBOL}: gave up ({reason})")

    async def _entries_allowed(
        self,
        system: System,
        patience_s: float,
        build: Callable[[], tuple[Intent, Decimal]] | None = None,
    ) -> bool:
        """Wait (within patience) until the entry gates would not refuse for a passing reason.

        A strategy that meets a halt, a closed posture or (for a new entry built by
        ``build``) the posture's entry cooldown waits and tries again rather than dropping
        its entry; any other refusal (caps, notional, leverage) is left for the submit to
        meet and journal. Without ``build`` only the halt and the posture are waited out
        (a replacement is exempt from the cooldown, and its old order is still counted).
        """
        # Never wait into the settle tail: the script must be over when quiescence starts.
        quiet_from = self.t0 + self.scenario.duration_s - self.scenario.settle_s
        with trio.move_on_at(min(trio.current_time() + patience_s, quiet_from)):
            while True:
                if build is None:
                    open_ = system.knobs.allow_entries and not system.journal.state.halted
                    refusal = None if open_ else ("posture_blocks_entries", "")
                else:
                    intent, mid = build()
                    cmd = SubmitIntent(intent, reference_price=mid)
                    refusal = system.router.entry_refusal(cmd)
                if refusal is None or refusal[0] not in _PASSING_REFUSALS:
                    return True
                await trio.sleep(0.5)
        return False

    def _entry_intent(
        self, intent_id: str, side: Side, quantity: Decimal, offset_bps: float | None
    ) -> tuple[Intent, Decimal]:
        mid = self.engine.quote(SYMBOL).mid
        if offset_bps is None:
            return Intent(intent_id=intent_id, symbol=SYMBOL, side=side, quantity=quantity), mid
        price = _away_from(mid, side, offset_bps)
        intent = Intent(
            intent_id=intent_id,
            symbol=SYMBOL,
            side=side,
            quantity=quantity,
            order_type=OrderType.LIMIT,
            price=price,
            time_in_force=TimeInForce.GTC,
        )
        return intent, mid

    def _receipt(self, what: str, receipt: object) -> None:
        accepted = getattr(receipt, "accepted", False)
        reason = getattr(receipt, "reason", "")
        self._note("action", f"{what}: {'accepted' if accepted else f'refused ({reason})'}")

    async def _replace(self, system: System, step: Replace) -> None:
        old = system.journal.state.intents.get(step.intent_id)
        if old is None or old.intent is None:
            self._note("action", f"replace {step.intent_id}: no such intent")
            return
        if not await self._entries_allowed(system, step.patience_s):
            self._note("action", f"replace {step.intent_id}: gave up, entries blocked")
            return
        quantity = step.quantity or old.intent.quantity or Decimal("0.002")
        new, mid = self._entry_intent(
            step.new_intent_id, old.intent.side, quantity, step.offset_bps
        )
        result = await system.replace(ReplaceOrder(step.intent_id, new, "chaos script", mid))
        self._note("action", f"replace {step.intent_id} -> {step.new_intent_id}: {result}")

    def _venue_cancel(self, which: str) -> None:
        now = trio.current_time()
        # List the book as of now: an order listed as of the engine's last step may have
        # filled or triggered since (seed 40 of mismatch-storm), and cancelling it would be
        # refused -2011.
        self.engine.advance_to(now)
        prefix = f"{self.config.prefix}-"
        cancelled = []
        for order in self.engine.open_orders(SYMBOL):
            ours = order.client_order_id.startswith(prefix)
            is_stop = order.order_type in (OrderType.STOP_MARKET, OrderType.STOP)
            if which == "foreign":
                if ours:
                    continue
            elif (
                not ours
                or (which == "stops") != is_stop
                or (which == "entries" and order.reduce_only)
            ):
                continue
            self.engine.cancel_order(
                SYMBOL, order_id=order.order_id, now=now, algo=True if is_stop else None
            )
            cancelled.append(order.client_order_id)
        self._note("world", f"cancelled behind our back ({which}): {cancelled or 'nothing'}")

    def _plant(self, step: PlantOrphan) -> None:
        price = _away_from(self.engine.quote(SYMBOL).mid, step.side, step.offset_bps)
        coid = step.client_order_id or client_order_id(
            self.config.prefix, step.for_intent, step.role
        )
        request = OrderRequest(
            symbol=SYMBOL,
            side=step.side,
            order_type=OrderType.LIMIT,
            client_order_id=coid,
            quantity=step.quantity,
            price=price,
            time_in_force=TimeInForce.GTC,
            reduce_only=step.reduce_only,
        )
        self.checker.planted.add(coid)
        try:
            self.engine.create_order(request, trio.current_time())
        except SimRejection as exc:
            self._note("world", f"orphan {coid} refused by the exchange: {exc}")
            return
        self._note("world", f"orphan {coid} rests at {price}")

    # ----------------------------------------------------------------- the verdict

    def _finish(self, system: System, store: Store) -> ChaosResult:
        now = self._now()
        self._check(system)
        rows = [(e.type, e.payload, e.wall_ms) for e in store.entries()]
        replayed = AccountState.replay(rows, prefix=self.config.prefix)
        self.checker.final(
            system.journal.state, replayed.fingerprint(), self.engine, (SYMBOL,), now
        )
        self._expectations(system, now)
        for violation in self.checker.violations:
            if violation.check.startswith(
                (
                    "I4.",
                    "I5.rep",
                    "I7.all",
                    "I9.cov",
                    "I10.every",
                    "E.no_ph",
                    "E.no_or",
                    "posture.",
                    "liveness.",
                )
            ):
                self._note("VIOLATION", violation.describe(), violation.at)
        self._faults_to_timeline()
        self.timeline.sort(key=lambda e: e.at)
        full = [(e.seq, e.wall_ms, e.type, e.payload, e.hash) for e in store.entries()]
        digest = hashlib.sha256()
        for seq, wall_ms, type_, payload, hash_ in full:
            digest.update(f"{seq}|{wall_ms}|{type_}|{payload}|{hash_}\n".encode())
        return ChaosResult(
            scenario=self.scenario,
            seed=self.seed,
            violations=list(self.checker.violations),
            timeline=self.timeline,
            reached=reached(
                self.events,
                self.fired,
                () if self.injector is None else self.injector.injected,
                self.engine.history.records,
            ),
            journal_rows=full,
            fingerprint=digest.hexdigest(),
            trades=self._trades(),
            reconcile=self._reconcile_report(),
            metrics_text=render_metrics(system).decode(),
            incarnations=self.incarnations,
            final_posture=system.belief.posture.mode.value,
        )

    def _expectations(self, system: System, now: float) -> None:
        expect = self.scenario.expect
        start = self.scenario.trouble_starts
        trace = self.checker.posture_trace
        if expect.degrade:
            degraded = any(
                t >= start and mode != PostureMode.GREEN.value for t, mode, _ in trace
            ) or any(t >= start and halted for t, halted, _, _ in self.checker.halt_trace)
            if not degraded:
                self.checker.violations.append(
                    Violation(
                        "posture.degrades", now, f"the posture never left GREEN after t={start}"
                    )
                )
        state = system.journal.state
        if expect.recover and not (
            system.knobs.allow_entries and not state.halted and not state.frozen_symbols
        ):
            self.checker.violations.append(
                Violation(
                    "posture.recovers",
                    now,
                    f"entries still blocked at the end (posture {system.knobs.mode}, halts "
                    f"{dict(state.halts)}, frozen symbols {dict(state.frozen_symbols)})",
                )
            )
        if expect.kill_switch and not any(
            halted and source == "kill_switch" for _, halted, source, _ in self.checker.halt_trace
        ):
            self.checker.violations.append(
                Violation("posture.kill_switch_trips", now, "the kill switch never tripped")
            )

    def _faults_to_timeline(self) -> None:
        if self.injector is None:
            return
        run: list[InjectedFault] = []

        def flush() -> None:
            if not run:
                return
            first, n = run[0], len(run)
            what = f"{first.kind.value} on {first.op or 'stream'}"
            more = f" (x{n} until {run[-1].at - self.t0:.1f}s)" if n > 1 else ""
            self._note("fault", f"{what}{more}", first.at - self.t0)
            run.clear()

        for fault in self.injector.injected:
            if run and (fault.kind, fault.op) != (run[0].kind, run[0].op):
                flush()
            run.append(fault)
        flush()

    def _trades(self) -> list[tuple[str, ...]]:
        journaled = Counter(e.fill.key for e in self.events if isinstance(e, FillApplied))
        rows: list[tuple[str, ...]] = []
        for record in self.engine.history.records:
            if not isinstance(record, FillRecorded):
                continue
            fill = record.fill
            rows.append(
                (
                    f"{record.ts - self.t0:.3f}",
                    fill.symbol,
                    fill.trade_id,
                    fill.order_id,
                    fill.client_order_id,
                    fill.side.value,
                    str(fill.quantity),
                    str(fill.price),
                    str(fill.realized_pnl),
                    str(journaled.get(fill.key, 0)),
                )
            )
        return rows

    def _reconcile_report(self) -> dict[str, object]:
        passes = [e for e in self.events if isinstance(e, ReconcileCompleted)]
        totals: Counter[str] = Counter()
        for done in passes:
            for key, value in re.findall(r"(\w+)=(\d+)", done.summary):
                if key in _SUMMARY_KEYS or key in ("violations", "phantom", "unprotected"):
                    totals[key] += int(value)
        unclean = [e for e in passes if not e.clean]
        return {
            "passes": len(passes),
            "clean_passes": len(passes) - len(unclean),
            "totals": dict(sorted(totals.items())),
            "last": None if not passes else passes[-1].summary,
            "mismatches": [
                {"summary": e.summary, "mismatches": list(e.mismatches), "repairs": list(e.repairs)}
                for e in unclean[-20:]
            ],
        }


def _away_from(mid: Decimal, side: Side, offset_bps: float) -> Decimal:
    """A price ``offset_bps`` on the passive side of ``mid`` (below for a buy), on the tick."""
    away = Decimal(str(offset_bps)) / Decimal(10_000)
    raw = mid * (1 - away) if side is Side.BUY else mid * (1 + away)
    return (raw / _TICK).quantize(Decimal(1), rounding=ROUND_DOWN) * _TICK


def _first_leaf(group: BaseExceptionGroup[ProcessCrash]) -> BaseException:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf
