"""The System: builds and wires the actors. The one place that shows the data flow.

::

    strategy ──SubmitIntent──▶ Router ──(entries: halt, knobs, caps; exits: never gated)──▶
        Journal.append(OrderSending)  [durable first] ──▶ venue.create_order
    venue user stream + REST ──▶ EvidenceCollector ──FillApplied/OrderObserved──▶ Journal
                                        └──SnapshotReady──▶ Reconciler
    Reconciler ──ReconcileCompleted──▶ Journal;  repairs ──▶ Router / Collector / Journal
               ──BeliefState──▶ BeliefController ──GuardKnobs──▶ Router, strategies
    BeliefController ──PostureChanged / HaltChanged──▶ Journal
    Journal: single writer, group commit, hash chain; its AccountState is the ledger

Structure: the Journal runs in the outer nursery and outlives everyone (it is stopped last,
so every actor's final words are durable). The four actors run under one ONE_FOR_ONE
:class:`~scalper.actors.supervisor.Supervisor`; a crashed actor is restarted and rebuilds
from the journal (its run() starts from the journal's state; unresolved orders are
re-discovered, cursors re-read). Supervisor events are journaled. When restart intensity
is exceeded the system halts entries durably, journals why, and stops.

Embedding (notebooks, scripts, tests)::

    async with open_system(config, venue, store) as system:
        receipt = await system.submit(intent, reference_price=Decimal("60000"))
        print(system.status())

Under ``trio.testing.MockClock`` with an in-process venue and an in-memory store, a whole
run is deterministic (see :mod:`scalper.determinism`).

Operator commands (:meth:`System.halt`, :meth:`System.resume`, :meth:`System.unfreeze`,
:meth:`System.cancel`) act through the same actors as everything else. A halt that becomes
active (operator or kill switch) cancels resting *entry* orders through the Router when
``belief.cancel_entries_on_halt`` is set; stops and exits are never cancelled (I1). An
unfreeze is journaled only when the symbol is frozen and the last reconcile was clean (the
resume rule, :meth:`~scalper.actors.belief.BeliefController.reconcile_blocking`); if the
cause comes back, the Reconciler freezes the symbol again.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal

import attrs
import trio

import scalper
from scalper.actors.belief import BeliefConfig, BeliefController, ResumeResult
from scalper.actors.deadman import DeadmanConfig, DeadmanSwitch
from scalper.actors.evidence import CollectorConfig, EvidenceCollector, SnapshotReady
from scalper.actors.journal import Journal
from scalper.actors.protection import ProtectionManager, ProtectionManagerConfig
from scalper.actors.reconciler import BeliefState, ReconcilerActor
from scalper.actors.replace import ReplaceManager, ReplaceManagerConfig, ReplaceResult
from scalper.actors.router import IntentReceipt, Router, RouterConfig
from scalper.actors.supervisor import (
    ChildCrashed,
    ChildSpec,
    ChildStarted,
    Escalated,
    RestartIntensityExceeded,
    Supervisor,
    SupervisorConfig,
    SupervisorEvent,
)
from scalper.clock import Clock
from scalper.core.intents import Intent
from scalper.core.kill_switch import KillSwitch, KillSwitchConfig
from scalper.core.orphans import OrphansConfig
from scalper.core.posture import GuardKnobs, PostureConfig, PostureController
from scalper.core.reconcile import ReconcileConfig, Reconciler
from scalper.crashpoints import CrashPoints
from scalper.determinism import derive_rng
from scalper.messages import (
    ActorCrashed,
    ActorRestarted,
    CancelIntent,
    Halt,
    HaltChanged,
    Lane,
    PressureRaised,
    ReplaceOrder,
    Resume,
    StartupPhase,
    SubmitIntent,
    SupervisorEscalated,
    SymbolFrozen,
    SystemStarted,
    SystemStopped,
)
from scalper.state import IntentStatus, OrderRecord
from scalper.store.store import Store
from scalper.store.writer import Executor, inline_executor
from scalper.venues.base import Venue

__all__ = [
    "CancelResult",
    "System",
    "SystemConfig",
    "SystemStatus",
    "UnfreezeResult",
    "open_system",
]


@attrs.frozen
class SystemConfig:
    """Everything the actors need, as plain config classes (loaded from TOML later).

    Attributes:
        symbols: the symbols traded (snapshots, backfills).
        prefix: our client-order-id prefix.
        seed: seeds every actor's RNG (derived per actor, so adding one shifts no other).
        ledger_ttl_s: terminal intent-ledger rows are purged this long after their last
            update (the journal keeps everything).
        ledger_purge_interval_s: how often the purge runs.
    """

    symbols: tuple[str, ...] = ("BTCUSDT",)
    prefix: str = "sc"
    seed: int = 1
    ledger_ttl_s: float = 48 * 3600.0
    ledger_purge_interval_s: float = 3600.0
    router: RouterConfig = attrs.Factory(RouterConfig)
    collector: CollectorConfig = attrs.Factory(CollectorConfig)
    belief: BeliefConfig = attrs.Factory(BeliefConfig)
    # Binance's minimum notional on the majors is 100 USDT, so the core default (100 at
    # GREEN, less in YELLOW) would refuse every entry; 1000 USDT per entry at GREEN.
    posture: PostureConfig = attrs.Factory(lambda: PostureConfig(base_max_notional=Decimal(1000)))
    kill_switch: KillSwitchConfig = attrs.Factory(KillSwitchConfig)
    reconcile: ReconcileConfig = attrs.Factory(ReconcileConfig)
    orphans: OrphansConfig = attrs.Factory(OrphansConfig)
    supervisor: SupervisorConfig = attrs.Factory(SupervisorConfig)
    protection: ProtectionManagerConfig = attrs.Factory(ProtectionManagerConfig)
    deadman: DeadmanConfig = attrs.Factory(DeadmanConfig)
    replace: ReplaceManagerConfig = attrs.Factory(ReplaceManagerConfig)


@attrs.frozen
class SystemStatus:
    """A read-only picture for operators: posture, halts, positions, open and unknown work."""

    posture: str
    causes: tuple[str, ...]
    unlock: tuple[str, ...]
    halted: bool
    halts: dict[str, str]
    frozen_symbols: dict[str, str]
    positions: dict[str, str]
    open_orders: tuple[str, ...]
    unknown_orders: tuple[tuple[str, float], ...]
    open_intents: tuple[str, ...]
    last_reconcile: str | None
    restarts: dict[str, int]
    journal_entries: int
    incarnation: int


@attrs.frozen
class UnfreezeResult:
    """The answer to :meth:`System.unfreeze`.

    Attributes:
        done: the freeze was lifted (``symbol_frozen frozen=false`` is journaled).
        reason: ``unfrozen``, or why not: ``not_frozen``, ``reconcile_not_clean``.
    """

    done: bool
    reason: str


@attrs.frozen
class CancelResult:
    """What :meth:`System.cancel` found in the journal and asked the Router to do.

    The Router cancels in its own tasks; the outcome of each cancel follows in the journal
    (``cancel_resolved`` / ``cancel_failed``) and in the status's ``open_orders``.

    Attributes:
        intent_id: the intent.
        known: the journal knows the intent (the request is forwarded either way: an intent
            submitted just before may not be journaled yet).
        reason: ``unknown_intent``; ``cancel_requested`` (possibly-live orders are being
            cancelled); ``create_unresolved`` (only orders whose create is not settled yet:
            the Router cancels them once it settles while the intent is being placed);
            ``nothing_open`` (every order is closed: nothing to do).
        status: the intent's status (``open``, ``done``, ``rejected``; empty if unknown).
        cancel_requested: orders the Router was asked to cancel.
        create_unresolved: orders whose create is still SENDING or UNKNOWN.
        closed: orders already known to be closed (untouched).
    """

    intent_id: str
    known: bool
    reason: str
    status: str = ""
    cancel_requested: tuple[str, ...] = ()
    create_unresolved: tuple[str, ...] = ()
    closed: tuple[str, ...] = ()


def _is_entry_order(order: OrderRecord) -> bool:
    """Risk-increasing and neither reduce-only nor close-position: a halt may cancel it (I1)."""
    request = order.request
    return order.risk_increasing and not request.reduce_only and not request.close_position


class System:
    """The wired actor system over one venue and one store (see the module docstring)."""

    def __init__(
        self,
        config: SystemConfig,
        venue: Venue,
        store: Store,
        *,
        clock: Clock,
        executor: Executor = inline_executor,
        crash_points: CrashPoints | None = None,
        restart_reason: str = "start",
    ) -> None:
        venue_window = getattr(getattr(venue, "config", None), "recv_window_ms", None)
        if isinstance(venue_window, int) and venue_window > config.router.recv_window_ms:
            # The ABSENT rule waits out the Router's window; if the venue signs with a longer
            # one, "not found" could be declared while the exchange can still accept the
            # request, and the next generation would be a second order (I7).
            raise ValueError(
                f"router.recv_window_ms ({config.router.recv_window_ms}) must be at least the "
                f"venue's recvWindow ({venue_window})"
            )
        self.config = config
        self.venue = venue
        self.clock = clock
        self.crash_points = crash_points or CrashPoints()
        self.restart_reason = restart_reason
        self.journal = Journal(
            store,
            clock=clock,
            executor=executor,
            prefix=config.prefix,
            purge_interval_s=config.ledger_purge_interval_s,
            ledger_ttl_ms=int(config.ledger_ttl_s * 1000),
        )
        posture = PostureController(config.posture)
        snap_send, snap_receive = trio.open_memory_channel[SnapshotReady](8)
        belief_send, belief_receive = trio.open_memory_channel[BeliefState](8)
        self.router = Router(
            venue,
            self.journal,
            clock=clock,
            rng=derive_rng(config.seed, "router"),
            prefix=config.prefix,
            config=config.router,
            initial_knobs=posture.knobs,
            crash_points=self.crash_points,
        )
        self.collector = EvidenceCollector(
            venue,
            self.journal,
            clock=clock,
            snapshots=snap_send,
            symbols=config.symbols,
            config=config.collector,
            crash_points=self.crash_points,
        )
        self.protection = ProtectionManager(
            venue,
            self.journal,
            self.router,
            clock=clock,
            config=config.protection,
            queries=self.collector.queries,
            on_pressure=self._raise_pressure,
        )
        self.replacer = ReplaceManager(
            self.journal,
            self.router,
            clock=clock,
            config=config.replace,
            on_pressure=self._raise_pressure,
        )
        self.deadman = DeadmanSwitch(
            venue,
            self.journal,
            clock=clock,
            symbols=config.symbols,
            config=config.deadman,
            on_pressure=self._raise_pressure,
        )
        self.reconciler = ReconcilerActor(
            self.journal,
            clock=clock,
            reconciler=Reconciler(config.reconcile, config.orphans, config.prefix),
            snapshots=snap_receive,
            queries=self.collector.queries,
            router=self.router,
            beliefs=belief_send,
            protection=self.protection.repairs,
            crash_points=self.crash_points,
        )
        self.belief = BeliefController(
            self.journal,
            clock=clock,
            beliefs=belief_receive,
            knobs_out=[self.router.knobs_inbox],
            posture=posture,
            kill_switch=KillSwitch(config.kill_switch),
            config=config.belief,
            protection_gap=self.protection.max_gap_seconds,
            on_halt=self._cancel_resting_entries,
        )
        self.supervisor = Supervisor(
            "actors",
            [
                ChildSpec("router", self.router.run),
                ChildSpec("replace", self.replacer.run),
                ChildSpec("evidence", self.collector.run),
                ChildSpec("reconciler", self.reconciler.run),
                ChildSpec("belief", self.belief.run),
                ChildSpec("protection", self.protection.run),
                ChildSpec("deadman", self.deadman.run),
            ],
            config=config.supervisor,
            rng=derive_rng(config.seed, "supervisor"),
            clock=clock,
            on_event=self._on_supervisor_event,
        )
        self.stopped = trio.Event()
        self.stop_reason = ""
        self._cancel: trio.CancelScope | None = None

    # ----------------------------------------------------------------- running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`stop` or an escalation; journals how it ended."""
        clean = True
        try:
            async with trio.open_nursery() as outer:
                await outer.start(self.journal.run)
                await self.journal.append(
                    SystemStarted(
                        incarnation=self.journal.store.incarnation,
                        version=scalper.__version__,
                        venue=getattr(self.venue, "name", type(self.venue).__name__),
                        restart_reason=self.restart_reason,
                        seed=self.config.seed,
                    )
                )
                with trio.CancelScope() as scope:
                    self._cancel = scope
                    outer.start_soon(self._narrate_startup)
                    try:
                        await self.supervisor.run(task_status=task_status)
                    except RestartIntensityExceeded as exc:
                        clean = False
                        self.stop_reason = f"escalated: {exc}"
                        await self.journal.append(HaltChanged(True, str(exc), "supervisor"))
                if not self.stop_reason:
                    self.stop_reason = "stopped"
                with trio.CancelScope(shield=True):
                    await self.journal.append(SystemStopped(self.stop_reason, clean))
                outer.cancel_scope.cancel()
        finally:
            self.stopped.set()

    async def _narrate_startup(self) -> None:
        """Journal each step of the startup sequence as it completes (StartupPhase).

        The steps themselves are the actors' work (the Router's resolver settles SENDING
        and UNKNOWN orders, the collector backfills from the stored cursor, the reconciler
        classifies orphans, posture boots ORANGE); this makes their order and timing
        readable in the journal after a restart.
        """
        state = self.journal.state
        last = self.journal.store.last_entry()
        legs = sum(1 for leg in state.legs.values() if leg.quantity != 0)
        await self.journal.append(
            StartupPhase(
                "replay",
                f"{0 if last is None else last.seq} entries; "
                f"{len(state.unresolved_orders())} unresolved orders; {legs} open legs; "
                f"halts: {state.halt_reason or 'none'}",
            )
        )
        runs = state.count("reconcile_runs")
        steps: list[tuple[str, Callable[[], bool], Callable[[], str]]] = [
            (
                "resolve",
                lambda: not self.journal.state.unresolved_orders(),
                lambda: "every SENDING/UNKNOWN order resolved by evidence",
            ),
            (
                "reconcile",
                lambda: self.journal.state.count("reconcile_runs") > runs,
                lambda: getattr(self.journal.state.last_reconcile, "summary", ""),
            ),
            (
                "trading",
                lambda: self.router.knobs.allow_entries and not self.journal.state.halted,
                lambda: f"posture {self.router.knobs.mode}",
            ),
        ]
        for phase, done, detail in steps:
            while not done():  # noqa: ASYNC110 - the state has no change notification
                await trio.sleep(0.1)
            await self.journal.append(StartupPhase(phase, detail()))

    def stop(self, reason: str = "stopped") -> None:
        """Ask the system to stop cleanly (the journal records the first ``reason`` given)."""
        if not self.stop_reason:
            self.stop_reason = reason
        if self._cancel is not None:
            self._cancel.cancel()

    async def _on_supervisor_event(self, event: SupervisorEvent) -> None:
        if isinstance(event, ChildCrashed):
            await self.journal.append(
                ActorCrashed(event.child, event.error_type, event.error, event.restart_in_s or 0.0)
            )
        elif isinstance(event, ChildStarted) and event.restart_count > 0:
            await self.journal.append(ActorRestarted(event.child, event.restart_count))
        elif isinstance(event, Escalated):
            await self.journal.append(SupervisorEscalated(event.supervisor, event.reason))

    async def _raise_pressure(self, event: PressureRaised) -> None:
        await self.belief.raise_pressure(event)

    # ----------------------------------------------------------------- API

    async def submit(
        self,
        intent: Intent,
        *,
        confidence: float = 1.0,
        reference_price: Decimal | None = None,
        source: str = "strategy",
    ) -> IntentReceipt:
        """Submit an intent; returns once the Router accepted (work started) or refused it."""
        return await self.router.submit(SubmitIntent(intent, confidence, reference_price, source))

    async def cancel(self, intent_id: str, reason: str = "requested") -> CancelResult:
        """Cancel an intent's live orders (idempotent: closed orders are left alone).

        The request always goes to the Router (an intent submitted a moment ago may not be
        journaled yet); the result says what the journal showed when it was made.
        """
        result = self._cancel_plan(intent_id)
        await self.router.cancel(CancelIntent(intent_id, reason))
        return result

    def _cancel_plan(self, intent_id: str) -> CancelResult:
        state = self.journal.state
        record = state.intents.get(intent_id)
        if record is None:
            return CancelResult(intent_id, known=False, reason="unknown_intent")
        orders = state.orders_for_intent(intent_id)
        closed = tuple(o.client_order_id for o in orders if o.is_terminal)
        unresolved = tuple(
            o.client_order_id for o in orders if not o.is_terminal and o.is_unresolved
        )
        live = tuple(o.client_order_id for o in orders if not o.is_terminal and not o.is_unresolved)
        if live:
            reason = "cancel_requested"
        elif unresolved or (record.status is IntentStatus.OPEN and not orders):
            # Accepted, its first order not journaled yet, or its create not settled: the
            # Router cancels once the placement settles.
            reason = "create_unresolved"
        else:
            reason = "nothing_open"
        return CancelResult(
            intent_id,
            known=True,
            reason=reason,
            status=record.status.value,
            cancel_requested=live,
            create_unresolved=unresolved,
            closed=closed,
        )

    async def replace(self, command: ReplaceOrder) -> ReplaceResult:
        """Replace an intent's live order (I8: envelope, budgets, cancel-then-create)."""
        return await self.replacer.replace(command)

    async def halt(self, reason: str) -> None:
        """Operator halt: no new entries until resumed; exits continue. Durable."""
        await self.belief.halt(Halt(reason))

    async def resume(self, reason: str = "operator") -> ResumeResult:
        """Operator resume: refused unless the last reconcile was clean."""
        return await self.belief.resume(Resume(reason))

    async def unfreeze(self, symbol: str, reason: str) -> UnfreezeResult:
        """Operator: let entries on a frozen symbol again, if that is safe.

        Journals ``SymbolFrozen(symbol, False, reason)`` only when the symbol is frozen and
        the last reconcile was clean (the resume rule: a pass after the freeze saw no
        foreign order or unknown exposure anywhere). Entries are allowed again at once (the
        Router reads frozen symbols from the journal's state). If the cause comes back, the
        Reconciler freezes the symbol again on a later pass.

        Returns:
            ``UnfreezeResult(True, "unfrozen")``, or a refusal: ``not_frozen``,
            ``reconcile_not_clean``.
        """
        if symbol not in self.journal.state.frozen_symbols:
            return UnfreezeResult(False, "not_frozen")
        blocking = self.belief.reconcile_blocking()
        if blocking:
            return UnfreezeResult(False, blocking[0])
        # No await between the checks and the append: nothing can change the state between.
        await self.journal.append(SymbolFrozen(symbol, False, reason))
        return UnfreezeResult(True, "unfrozen")

    async def _cancel_resting_entries(self, source: str) -> None:
        """A halt became active: cancel resting entry orders, never stops or exits (I1).

        Runs after the ``halt_changed`` is applied to the journal's state, so the Router
        refuses every entry from here on and the set below cannot grow. Intents go through
        the Router's cancel command (``cancel_requested`` is journaled with the intent and
        correlation ids; an entry still being placed is cancelled once its create settles).
        An entry order no intent record owns (adopted) has no intent to cancel through: it
        is cancelled by client order id here, all such orders at once, in the caller's task
        (a failure then belongs to the supervised BeliefController, whose restart sweeps
        again); a slow venue holds the caller up to one bounded cancel
        (``router.cancel_max_attempts``). Adopted entries are rare (a lost journal tail).
        """
        state = self.journal.state
        reason = f"halt:{source}"
        intents: set[str] = set()
        loose: list[str] = []
        for order in state.live_orders():
            if not _is_entry_order(order) or order.is_unresolved:
                continue
            record = state.intents.get(order.intent_id)
            owned = record is not None and order.client_order_id in record.client_order_ids
            siblings = state.orders_for_intent(order.intent_id)
            if owned and all(_is_entry_order(o) for o in siblings if not o.is_terminal):
                intents.add(order.intent_id)
            else:
                # Cancelling the intent would cancel a non-entry sibling too: one by one.
                loose.append(order.client_order_id)
        for intent_id, record in state.intents.items():
            if record.status is not IntentStatus.OPEN or record.lane is not Lane.ENTRY:
                continue
            orders = state.orders_for_intent(intent_id)
            if not orders or any(o.is_unresolved for o in orders):
                # Still being placed (first order not journaled yet, or its create not
                # settled): the Router cancels it once the placement settles.
                intents.add(intent_id)
        for intent_id in sorted(intents):
            await self.router.cancel(CancelIntent(intent_id, reason))
        if loose:
            async with trio.open_nursery() as nursery:
                for coid in loose:
                    nursery.start_soon(self.router.cancel_order, coid, reason)

    def unprotected_seconds(self) -> dict[str, float]:
        """Per symbol, how long filled exposure has been short of stop protection (I9)."""
        return self.protection.unprotected_seconds()

    @property
    def knobs(self) -> GuardKnobs:
        """The entry limits the Router enforces right now (strategies read these)."""
        return self.router.knobs

    def status(self) -> SystemStatus:
        """The operator's picture of the system right now."""
        state = self.journal.state
        wall_ms = self.clock.wall_ms()
        decision = self.belief.last_decision
        last_entry = self.journal.store.last_entry()
        return SystemStatus(
            posture=self.belief.posture.mode.value,
            causes=() if decision is None else decision.explanation.cause_tags,
            unlock=()
            if decision is None
            else tuple(c.describe() for c in decision.explanation.unlock_conditions),
            halted=state.halted,
            halts=dict(state.halts),
            frozen_symbols=dict(state.frozen_symbols),
            positions={
                f"{s}:{ps}": str(leg.quantity)
                for (s, ps), leg in sorted(state.legs.items())
                if leg.quantity != 0
            },
            open_orders=tuple(o.client_order_id for o in state.live_orders()),
            unknown_orders=tuple(
                (o.client_order_id, max(0.0, (wall_ms - o.sent_wall_ms) / 1000.0))
                for o in state.unresolved_orders()
            ),
            open_intents=tuple(
                i for i, r in sorted(state.intents.items()) if r.status.value == "open"
            ),
            last_reconcile=None if state.last_reconcile is None else state.last_reconcile.summary,
            restarts=dict(self.supervisor.restart_counts),
            journal_entries=0 if last_entry is None else last_entry.seq,
            incarnation=self.journal.store.incarnation,
        )


@asynccontextmanager
async def open_system(
    config: SystemConfig,
    venue: Venue,
    store: Store,
    *,
    clock: Clock,
    executor: Executor = inline_executor,
    crash_points: CrashPoints | None = None,
    restart_reason: str = "start",
) -> AsyncIterator[System]:
    """Start a :class:`System` in a nursery; stop it cleanly when the block exits."""
    system = System(
        config,
        venue,
        store,
        clock=clock,
        executor=executor,
        crash_points=crash_points,
        restart_reason=restart_reason,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(system.run)
        try:
            yield system
        finally:
            system.stop("embedding_closed")
            with trio.CancelScope(shield=True):
                await system.stopped.wait()
