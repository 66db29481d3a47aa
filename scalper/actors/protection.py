"""The ProtectionManager: filled exposure is covered by protective stops at the venue (I9).

Theory of operation
-------------------

The manager keeps, for every position leg the journal knows, a reduce-only or
close-position stop at the venue whose size matches the leg. It is a thin driver of
:mod:`scalper.core.protection`; every decision is core's:

* **Coverage** is assessed from the journal's state (:func:`leg_coverage`): the leg's
  quantity against our stop orders that are known live (acknowledged, not terminal). Stops
  whose placement is still unresolved (SENDING or UNKNOWN) are *pending*: they cover
  nothing yet, and while one exists no second stop is placed for the leg (a second stop
  racing an unknown first one is how a position ends up double-stopped, and how a fill
  storm ends up with ten stops).
* **When** to act is :class:`~scalper.core.protection.RefreshPolicy`'s call: a fill that
  leaves the stop badly undersized forces a repair at once (so the first partial fill of an
  entry gets a stop within one round trip); a dribble of small fills is batched (anti-churn);
  a gap that has lasted ``gap_ttl_seconds - force_before_ttl_seconds`` forces a repair past
  every budget, so the budget can delay a resize but never past the TTL (the tick re-assesses
  every leg often enough for that), and a breached TTL forces one too.
* **How** is :func:`~scalper.core.protection.plan_repair`: the new stop is placed and
  confirmed live *before* the superseded one is cancelled, so no unprotected window opens;
  after ``close_position_after_rejects`` rejects the plan asks for a close-position stop;
  after ``max_place_rejects`` rejects, or when the venue says the stop would trigger at once
  (-2021), it exits the uncovered quantity with a reduce-only market order instead.
* **How long** a leg has been uncovered is tracked by one
  :class:`~scalper.core.protection.ProtectionGapTracker` per leg. A breach of the gap TTL is
  journaled as :class:`~scalper.messages.PressureRaised` (cause
  ``protection_gap_ttl_breach``) and handed to the BeliefController, which tightens the
  posture; :meth:`ProtectionManager.unprotected_seconds` feeds the belief debt and metrics.

Everything the manager sends is an exit intent (kind PROTECT, or EXIT for the fallback)
submitted through the Router's exit lane, which consults neither the posture, the kill
switch nor a halt (I1): protection is never blocked. It journals why it acted
(:class:`~scalper.messages.ProtectionRepair` and
:class:`~scalper.messages.ProtectionRepairDone`, correlation id ``protect:<leg>:<n>``),
and every intent it submits carries that correlation id.

Triggers: every journal event that can change a leg or a stop (fills, syncs, order
observations, cancels, resolutions, adoptions) marks the leg dirty; a tick re-assesses every
leg (gap ages grow while nothing happens); the Reconciler's protection repairs (the venue
lacks a stop the journal believes in) make the manager ask the EvidenceCollector to query
the stops, so the journal learns the stop is gone and the next assessment repairs it.

One repair runs per leg at a time. A restarted manager rebuilds everything from the
journal: pending stops are resolved by the Router's resolver, not re-sent.
"""

from collections.abc import Awaitable, Callable
from decimal import Decimal

import attrs
import trio
import trio.lowlevel

from scalper.actors.evidence import QueryOrders
from scalper.actors.journal import Journal
from scalper.actors.router import Router
from scalper.actors.validators import positive
from scalper.clock import Clock
from scalper.core.errors import Operation
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import VenueOrder, VenueOrderStatus, VenuePosition
from scalper.core.orders import OrderState
from scalper.core.protection import (
    PROTECTIVE_STOP_TYPES,
    CancelStop,
    Coverage,
    CoverageStatus,
    PlaceStop,
    ProtectionConfig,
    ProtectionGapTracker,
    ReduceOnlyExit,
    RefreshPolicy,
    RepairPlan,
    assess_coverage,
    plan_repair,
    protective_stop_price,
)
from scalper.core.types import ZERO, OrderType, PositionSide
from scalper.messages import (
    CancelResolved,
    Event,
    FillApplied,
    OrderAcked,
    OrderAdopted,
    OrderMissing,
    OrderObserved,
    OrderRejected,
    OrderResolved,
    PositionSynced,
    PressureRaised,
    ProtectionRepair,
    ProtectionRepairDone,
    RepairRequest,
    SubmitIntent,
)
from scalper.state import AccountState, IntentFate, OrderRecord
from scalper.venues.base import Venue, VenueError, call_within

__all__ = [
    "ProtectionManager",
    "ProtectionManagerConfig",
    "leg_coverage",
]

#: Venue codes meaning "the stop would trigger immediately": exit instead of re-placing.
_WOULD_TRIGGER_CODES = frozenset({-2021, -4142})

Leg = tuple[str, PositionSide]


@attrs.frozen
class ProtectionManagerConfig:
    """Timing of the ProtectionManager; the protection rules themselves are core's.

    Attributes:
        protection: core's coverage, anti-churn, repair-ladder and gap-TTL settings.
        tick_s: how often every leg is re-assessed (gap ages, missed triggers). Must be
            below ``protection.force_before_ttl_seconds``: a gap whose TTL falls due is
            only refreshed when a tick (or an event) re-assesses its leg.
        confirm_timeout_s: how long one placement may take to be confirmed live (acked)
            before the repair stops waiting; the stop stays *pending* until the Router
            resolves it, and no second stop is placed meanwhile.
        pressure_hold_s: how long a gap-TTL breach keeps pressing the posture.
        retry_backoff_s: pause before re-planning a leg after a failed repair, doubled per
            consecutive failure (a venue that refuses everything must not be hammered, I2).
        retry_backoff_max_s: the cap of that pause.
        default_tick_size: price grid used when the venue's rules cannot be read.
    """

    protection: ProtectionConfig = attrs.Factory(ProtectionConfig)
    tick_s: float = attrs.field(default=1.0, validator=positive)
    confirm_timeout_s: float = attrs.field(default=8.0, validator=positive)
    pressure_hold_s: float = attrs.field(default=60.0, validator=positive)
    default_tick_size: Decimal = attrs.field(default=Decimal("0.01"), converter=Decimal)
    retry_backoff_s: float = attrs.field(default=1.0, validator=positive)
    retry_backoff_max_s: float = attrs.field(default=30.0, validator=positive)

    def __attrs_post_init__(self) -> None:
        if self.tick_s >= self.protection.force_before_ttl_seconds:
            raise ValueError(
                f"tick_s ({self.tick_s}) must be below protection.force_before_ttl_seconds "
                f"({self.protection.force_before_ttl_seconds}): a gap's forced refresh "
                "would land after its TTL"
            )


def _as_venue_order(order: OrderRecord) -> VenueOrder:
    """Our journaled stop as core's VenueOrder; ``order_id`` is the client id (ours to cancel)."""
    req = order.request
    state = order.order_state
    partial = state is OrderState.PARTIALLY_FILLED or order.filled_qty > ZERO
    return VenueOrder(
        symbol=req.symbol,
        order_id=order.client_order_id,
        client_order_id=order.client_order_id,
        side=req.side,
        order_type=req.order_type,
        status=VenueOrderStatus.PARTIALLY_FILLED if partial else VenueOrderStatus.NEW,
        quantity=req.quantity if req.quantity is not None else ZERO,
        filled_qty=order.filled_qty,
        stop_price=req.stop_price,
        reduce_only=req.reduce_only,
        close_position=req.close_position,
        position_side=req.position_side,
    )


def _is_stop(order: OrderRecord, leg: Leg) -> bool:
    req = order.request
    return (
        req.symbol == leg[0]
        and req.position_side is leg[1]
        and req.order_type in PROTECTIVE_STOP_TYPES
        and not order.is_terminal
    )


def leg_coverage(state: AccountState, leg: Leg) -> tuple[Coverage, tuple[str, ...]]:
    """The journal's view of a leg's protection: coverage by live stops, and pending stops.

    Returns:
        The :class:`~scalper.core.protection.Coverage` from our acknowledged live stops, and
        the client order ids of stops whose placement is unresolved (they cover nothing
        yet, and block a second placement).
    """
    live: list[VenueOrder] = []
    pending: list[str] = []
    for order in state.live_orders():
        if not _is_stop(order, leg):
            continue
        if order.is_unresolved:
            pending.append(order.client_order_id)
        else:
            live.append(_as_venue_order(order))
    position = VenuePosition(symbol=leg[0], quantity=state.position(*leg), position_side=leg[1])
    return assess_coverage(position, live), tuple(pending)


def _stale_stops(state: AccountState, leg: Leg) -> tuple[str, ...]:
    """Our acknowledged live stops on ``leg`` (called when the leg is flat)."""
    return tuple(
        o.client_order_id
        for o in state.live_orders()
        if _is_stop(o, leg) and not o.is_unresolved and not o.cancel_requested
    )


@attrs.define
class _LegState:
    tracker: ProtectionGapTracker
    place_rejects: int = 0
    would_trigger: bool = False
    repairing: bool = False
    repairs: int = 0
    failures: int = 0
    next_attempt_at: float = 0.0


class ProtectionManager:
    """Keeps every filled leg covered by protective stops (see the module docstring).

    Args:
        venue: for the symbols' price grid (``exchange_info``), read once at start.
        journal: the single writer; its state is what coverage is assessed from.
        router: the exit lane every stop and fallback exit goes through.
        clock: the injected clock.
        config: timing and core's protection rules.
        queries: the EvidenceCollector's query channel (to learn a vanished stop is gone).
        on_pressure: where gap-TTL breaches go (the BeliefController).
    """

    def __init__(
        self,
        venue: Venue,
        journal: Journal,
        router: Router,
        *,
        clock: Clock,
        config: ProtectionManagerConfig | None = None,
        queries: trio.MemorySendChannel[QueryOrders] | None = None,
        on_pressure: Callable[[PressureRaised], Awaitable[None]] | None = None,
    ) -> None:
        self._venue = venue
        self._journal = journal
        self._router = router
        self._clock = clock
        self.config = config or ProtectionManagerConfig()
        self._queries = queries
        self._on_pressure = on_pressure
        self._policy = RefreshPolicy(self.config.protection)
        self._legs: dict[Leg, _LegState] = {}
        self._ticks: dict[str, Decimal] = {}
        self._dirty: dict[Leg, str] = {}
        self._wake = trio.Event()
        self._changed = trio.Event()
        self._rejections: dict[str, OrderRejected] = {}
        repair_send, repair_receive = trio.open_memory_channel[RepairRequest](64)
        #: The Reconciler sends protection repairs here.
        self.repairs = repair_send
        self._repairs_in = repair_receive
        self._seq = 0

    # ----------------------------------------------------------------- reads

    def unprotected_seconds(self) -> dict[str, float]:
        """Per symbol, how long its exposure has been short of protection (0 legs omitted)."""
        now = self._clock.now()
        out: dict[str, float] = {}
        for (symbol, _), leg in sorted(self._legs.items()):
            gap = leg.tracker.gap_seconds(now)
            if gap > 0:
                out[symbol] = max(out.get(symbol, 0.0), gap)
        return out

    def max_gap_seconds(self) -> float:
        """The longest current protection gap over all legs (0 when all are covered)."""
        return max(self.unprotected_seconds().values(), default=0.0)

    # ----------------------------------------------------------------- running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Assess and repair until cancelled; a restart rebuilds from the journal."""
        self._legs.clear()
        self._dirty.clear()
        self._policy = RefreshPolicy(self.config.protection)
        self._seq = sum(1 for i in self._journal.state.intents if i.startswith("pm-"))
        subscription = self._journal.subscribe("protection")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._load_rules)
                nursery.start_soon(self._follow_journal, subscription.receive)
                nursery.start_soon(self._follow_repairs)
                nursery.start_soon(self._tick_loop)
                for leg in self._journal.state.legs:
                    self._mark(leg, "startup")
                task_status.started()
                await self._assess_loop(nursery)
        finally:
            subscription.receive.close()

    async def _load_rules(self) -> None:
        try:
            info = await call_within(10.0, Operation.QUERY, self._venue.exchange_info)
        except VenueError:
            return  # the default grid is used; a rejected price climbs the repair ladder
        for rules in info.symbols:
            self._ticks[rules.symbol] = rules.tick_size

    async def _follow_journal(
        self, receive: trio.MemoryReceiveChannel[tuple[object, Event]]
    ) -> None:
        async for _entry, event in receive:
            leg = self._leg_of(event)
            if isinstance(event, OrderRejected):
                self._rejections[event.intent_id] = event
            if leg is not None:
                self._mark(leg, type(event).__name__)
            self._changed.set()
            self._changed = trio.Event()

    async def _follow_repairs(self) -> None:
        async for request in self._repairs_in:
            action = request.action
            state = self._journal.state
            for target in action.targets:
                leg = (action.symbol, target.position_side)
                coverage, _ = leg_coverage(state, leg)
                if coverage.status is CoverageStatus.COVERED and self._queries is not None:
                    # The venue lacks protection the journal believes in: ask for evidence;
                    # the journaled answer marks the leg dirty and the repair follows.
                    await self._queries.send(
                        QueryOrders(action.symbol, coverage.covered_by, request.correlation_id)
                    )
                self._mark(leg, "reconcile")

    async def _tick_loop(self) -> None:
        while True:
            await trio.sleep(self.config.tick_s)
            for leg in list(self._journal.state.legs):
                self._mark(leg, "tick")
            for leg in list(self._legs):
                self._mark(leg, "tick")

    def _mark(self, leg: Leg, trigger: str) -> None:
        self._dirty.setdefault(leg, trigger)
        self._wake.set()

    def _leg_of(self, event: Event) -> Leg | None:
        state = self._journal.state
        if isinstance(event, FillApplied):
            return (event.fill.symbol, event.fill.position_side)
        if isinstance(event, PositionSynced):
            return (event.symbol, event.position_side)
        coid = getattr(event, "client_order_id", None)
        if isinstance(
            event,
            OrderObserved
            | OrderAcked
            | OrderRejected
            | OrderResolved
            | CancelResolved
            | OrderMissing
            | OrderAdopted,
        ) and isinstance(coid, str):
            order = state.orders.get(coid)
            if order is not None:
                return (order.request.symbol, order.request.position_side)
        return None

    # ----------------------------------------------------------------- assessing

    async def _assess_loop(self, nursery: trio.Nursery) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            dirty, self._dirty = self._dirty, {}
            for leg, trigger in sorted(dirty.items()):
                await self._assess(leg, trigger, nursery)

    async def _assess(self, leg: Leg, trigger: str, nursery: trio.Nursery) -> None:
        now = self._clock.now()
        state = self._journal.state
        coverage, pending = leg_coverage(state, leg)
        ls = self._legs.get(leg)
        if ls is None:
            if coverage.status is CoverageStatus.FLAT and not _stale_stops(state, leg):
                return
            tracker = ProtectionGapTracker(leg[0], self.config.protection)
            ls = self._legs[leg] = _LegState(tracker)
        escalation = ls.tracker.observe(coverage, now)
        if escalation is not None:
            event = PressureRaised(
                source="protection",
                symbol=leg[0],
                cause=escalation.cause,
                severity=escalation.severity,
                reason=(
                    f"{leg[0]}:{leg[1]} uncovered {escalation.uncovered_qty} for "
                    f"{escalation.gap_seconds:.1f}s > {escalation.ttl_seconds:.0f}s"
                ),
                hold_s=self.config.pressure_hold_s,
                correlation_id=f"protect:{leg[0]}:{leg[1]}",
            )
            await self._journal.append(event)
            if self._on_pressure is not None:
                await self._on_pressure(event)
        if coverage.status is CoverageStatus.FLAT:
            ls.failures = 0
            stale = _stale_stops(state, leg)
            if stale and not ls.repairing and not pending:
                # A stop left under a flat leg would "cover" the next position at a price
                # chosen for the last one (or sit on its opening side): cancel it.
                plan = RepairPlan(
                    tuple(CancelStop(symbol=leg[0], order_id=c) for c in stale), "flat_stale_stops"
                )
                ls.repairing = True
                ls.repairs += 1
                nursery.start_soon(self._repair, leg, ls, coverage, plan, trigger)
            elif not stale and not pending and not ls.repairing:
                del self._legs[leg]
            return
        if coverage.status is CoverageStatus.COVERED:
            ls.place_rejects = 0
            ls.would_trigger = False
            ls.failures = 0
        if ls.repairing or pending:
            return  # one repair per leg; a pending stop is never raced by a second one
        if now < ls.next_attempt_at:
            return  # backing off after a failed repair; the tick comes back
        decision = self._policy.decide(
            coverage,
            now,
            ttl_breached=ls.tracker.is_breached(now),
            gap_seconds=ls.tracker.gap_seconds(now),
        )
        if not decision.refresh:
            return
        stop_price = self._stop_price(state, leg, coverage)
        if stop_price is None:
            return
        plan = plan_repair(
            coverage,
            stop_price=stop_price,
            place_rejects=ls.place_rejects,
            would_trigger=ls.would_trigger,
            config=self.config.protection,
        )
        if not plan.actions:
            return
        ls.repairing = True
        ls.repairs += 1
        nursery.start_soon(self._repair, leg, ls, coverage, plan, f"{trigger}:{decision.reason}")

    def _stop_price(self, state: AccountState, leg: Leg, coverage: Coverage) -> Decimal | None:
        # A resize keeps the price the strategy (or an earlier repair) chose.
        for coid in coverage.covered_by:
            order = state.orders.get(coid)
            if order is not None and order.request.stop_price is not None:
                return order.request.stop_price
        record = state.legs.get(leg)
        entry = None if record is None else record.entry_price
        if entry is None:
            entry = state.last_price.get(leg[0])
        if entry is None or coverage.position_qty == 0:
            return None
        tick = self._ticks.get(leg[0], self.config.default_tick_size)
        return protective_stop_price(
            entry, coverage.position_qty, self.config.protection.stop_offset_ratio, tick
        )

    # ----------------------------------------------------------------- repairing

    async def _repair(
        self, leg: Leg, ls: _LegState, coverage: Coverage, plan: RepairPlan, trigger: str
    ) -> None:
        correlation_id = f"protect:{leg[0]}:{leg[1]}:{ls.repairs}"
        outcome, detail = "failed", "no_action"
        try:
            await self._journal.append(
                ProtectionRepair(
                    symbol=leg[0],
                    position_side=leg[1],
                    reason=plan.reason,
                    trigger=trigger,
                    status=coverage.status.value,
                    position_qty=coverage.position_qty,
                    covered_qty=coverage.covered_qty,
                    actions=tuple(_describe(a) for a in plan.actions),
                    correlation_id=correlation_id,
                )
            )
            outcome, detail = "covered", plan.reason
            for action in plan.actions:
                if isinstance(action, PlaceStop):
                    ok, detail = await self._place_stop(action, ls, correlation_id)
                elif isinstance(action, CancelStop):
                    ok = await self._router.cancel_order(action.order_id, "protection_superseded")
                    detail = "cancelled" if ok else "cancel_unconfirmed"
                else:
                    ok, detail = await self._exit(action, correlation_id)
                if not ok:
                    # Drop the rest of the plan (never cancel an old stop after a failed
                    # placement); the next assessment plans again from the new facts.
                    outcome = "failed"
                    break
        finally:
            ls.repairing = False
            if outcome == "failed":
                ls.failures += 1
                backoff = self.config.retry_backoff_s * 2 ** min(ls.failures - 1, 16)
                ls.next_attempt_at = self._clock.now() + min(
                    backoff, self.config.retry_backoff_max_s
                )
            with trio.CancelScope(shield=True):
                await self._journal.append(
                    ProtectionRepairDone(leg[0], leg[1], outcome, detail, correlation_id)
                )
            self._mark(leg, "repair_done")

    def _next_intent_id(self, leg: Leg) -> str:
        self._seq += 1
        return f"pm-{leg[0]}-{leg[1].value}-{self._journal.store.incarnation}-{self._seq}"

    async def _place_stop(
        self, action: PlaceStop, ls: _LegState, correlation_id: str
    ) -> tuple[bool, str]:
        intent = Intent(
            intent_id=self._next_intent_id((action.symbol, action.position_side)),
            symbol=action.symbol,
            side=action.side,
            quantity=action.quantity,
            kind=IntentKind.PROTECT,
            order_type=OrderType.STOP_MARKET,
            stop_price=action.stop_price,
            reduce_only=action.reduce_only,
            close_position=action.close_position,
            position_side=action.position_side,
            correlation_id=correlation_id,
        )
        outcome = await self._submit_and_wait(intent, want_live=True)
        if outcome == "live":
            return True, "stop_live"
        if outcome == "rejected":
            ls.place_rejects += 1
            for _ in range(8):
                # The rejection is fanned out with its journal entry; let the follower
                # task take it from the channel (a few scheduler rounds at most).
                if intent.intent_id in self._rejections:
                    break
                await trio.lowlevel.checkpoint()
            rejection = self._rejections.pop(intent.intent_id, None)
            if rejection is not None and rejection.code in _WOULD_TRIGGER_CODES:
                ls.would_trigger = True
            return False, f"stop_rejected:{'' if rejection is None else rejection.reason}"
        return False, f"stop_{outcome}"

    async def _exit(self, action: ReduceOnlyExit, correlation_id: str) -> tuple[bool, str]:
        intent = Intent(
            intent_id=self._next_intent_id((action.symbol, action.position_side)),
            symbol=action.symbol,
            side=action.side,
            quantity=action.quantity,
            kind=IntentKind.EXIT,
            order_type=OrderType.MARKET,
            reduce_only=True,
            position_side=action.position_side,
            correlation_id=correlation_id,
        )
        outcome = await self._submit_and_wait(intent, want_live=False)
        if outcome == "filled":
            # The venue says it filled; until the fills are journaled the leg still looks
            # open, and a second exit would be refused (-2022) or worse. Wait for them.
            if not await self._fills_journaled(intent.intent_id):
                await self._ask_evidence(action.symbol, correlation_id)
                return False, "exit_filled_fills_pending"
            return True, "exit_filled"
        if outcome == "rejected":
            # -2022 and friends: the venue thinks there is nothing to reduce. Our picture of
            # the leg is probably behind; fetch the evidence before anything else.
            await self._ask_evidence(action.symbol, correlation_id)
        return outcome == "live", f"exit_{outcome}"

    async def _fills_journaled(self, intent_id: str) -> bool:
        with trio.move_on_after(self.config.confirm_timeout_s):
            while True:
                orders = self._journal.state.orders_for_intent(intent_id)
                if orders and all(
                    o.request.quantity is None
                    or o.filled_qty >= o.request.quantity
                    or (o.tracker is not None and o.filled_qty >= o.tracker.filled_qty > ZERO)
                    for o in orders[-1:]
                ):
                    return True
                await self._changed.wait()
        return False

    async def _ask_evidence(self, symbol: str, correlation_id: str) -> None:
        if self._queries is not None:
            await self._queries.send(QueryOrders(symbol, (), correlation_id))

    async def _submit_and_wait(self, intent: Intent, *, want_live: bool) -> str:
        """Submit through the exit lane; wait (bounded) for the order's fate.

        Returns ``live`` (acknowledged and open), ``filled``, ``rejected``, ``closed``
        (canceled/expired), ``refused`` (the Router did not accept it) or ``pending``.
        """
        receipt = await self._router.submit(SubmitIntent(intent, source="protection"))
        if not receipt.accepted:
            return "refused"
        with trio.move_on_after(self.config.confirm_timeout_s):
            while True:
                fate = self._fate(intent.intent_id, want_live=want_live)
                if fate is not None:
                    return fate
                await self._changed.wait()
        return "pending"

    def _fate(self, intent_id: str, *, want_live: bool) -> str | None:
        fate = self._journal.state.intent_fate(intent_id)
        if fate is IntentFate.LIVE:
            return "live" if want_live else None
        if fate in (IntentFate.PENDING, IntentFate.PROVEN):
            return None  # PROVEN (-4116): the Router's query settles it; wait for that
        return fate.value


def _describe(action: PlaceStop | CancelStop | ReduceOnlyExit) -> str:
    if isinstance(action, PlaceStop):
        size = "close_position" if action.close_position else str(action.quantity)
        return f"PLACE_STOP:{action.side}:{size}@{action.stop_price}"
    if isinstance(action, CancelStop):
        return f"CANCEL_STOP:{action.order_id}"
    return f"REDUCE_ONLY_EXIT:{action.side}:{action.quantity}"
