"""The BeliefController: knobs on every change, API errors, the UTC day, stream gaps, freezes.

Most tests drive one controller over a real Journal (in-memory store) under a MockClock
that only moves when the test moves it, feeding it what the Reconciler and the Collector
would: reconcile results made by core's Reconciler, evidence health, balances, and the
journal events the Router and the Collector write. The last tests run the whole system on
the simulated exchange.
"""

import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import TypeVar

import attrs
import pytest
import trio
import trio.testing

from scalper.actors.belief import BeliefConfig, BeliefController, api_counts
from scalper.actors.journal import Journal
from scalper.actors.reconciler import BeliefState
from scalper.clock import Clock, simulated_clock
from scalper.core.errors import Operation, classify_error, classify_transport_failure
from scalper.core.evidence import EvidenceHealth, EvidenceSnapshot, SourceKind
from scalper.core.intents import Intent, IntentKind
from scalper.core.kill_switch import KillReason, KillSwitch, KillSwitchConfig, utc_day
from scalper.core.model import AccountSnapshot, Balance, OrderRequest, VenueOrder, VenueOrderStatus
from scalper.core.posture import GuardKnobs, PostureConfig, PostureController, PostureMode
from scalper.core.reconcile import LocalView, Reconciler, ReconcileResult, RepairKind
from scalper.core.types import OrderType, Side, TimeInForce
from scalper.messages import (
    BackfillCompleted,
    CancelFailed,
    CancelResolved,
    DayStartEquity,
    DeadmanChanged,
    DeadmanFailed,
    Event,
    FillApplied,
    HaltChanged,
    IntentRejected,
    OrderAcked,
    OrderObserved,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderResolved,
    OrderSending,
    PostureChanged,
    PressureRaised,
    ReconcileCompleted,
    Resolution,
    RetryScheduled,
    StreamDown,
    StreamGapObserved,
    SymbolFrozen,
    decode_event,
)
from scalper.store.store import Store
from scalper.system import System, SystemConfig, open_system
from scalper.venues.sim.faults import FaultInjector, FaultSpec
from scalper.venues.sim.inproc import InProcessVenue
from tests.venues.sim.simkit import BTC, limit, make_engine

D = Decimal
_E = TypeVar("_E")
ETH = "ETHUSDT"
REF = D("60000")
MIDNIGHT_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
GREEN = PostureConfig(base_max_notional=D(1000), boot_mode=PostureMode.GREEN)

# ------------------------------------------------------------------------------ the rig


def _order(coid: str = "sc-e1-0") -> VenueOrder:
    return VenueOrder(
        symbol=BTC,
        order_id="1",
        client_order_id=coid,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        status=VenueOrderStatus.NEW,
        quantity=D("0.002"),
        price=D("59000"),
    )


def _foreign(coid: str, order_id: str = "9001", symbol: str = BTC) -> VenueOrder:
    return attrs.evolve(
        _order(coid), symbol=symbol, order_id=order_id, side=Side.SELL, price=D("75000")
    )


def _healthy(now: float) -> EvidenceSnapshot:
    health = EvidenceHealth(started_at=now)
    for kind in (SourceKind.USER_STREAM, SourceKind.REST, SourceKind.FILLS):
        health.observe(kind, now)
    return health.snapshot(now)


def _usdt(equity: str) -> Balance:
    return Balance(
        asset="USDT",
        wallet_balance=D(equity),
        available_balance=D(equity),
        margin_balance=D(equity),
    )


@attrs.define
class Rig:
    journal: Journal
    controller: BeliefController
    clock: Clock
    mock: trio.testing.MockClock
    beliefs: trio.MemorySendChannel[BeliefState]
    knobs: trio.MemoryReceiveChannel[GuardKnobs]
    reconciler: Reconciler = attrs.Factory(Reconciler)

    async def settle(self) -> None:
        await trio.testing.wait_all_tasks_blocked()

    async def advance(self, seconds: float, step: float = 1.0) -> None:
        """Move time in ticks, letting the controller run after each."""
        moved = 0.0
        while moved < seconds:
            self.mock.jump(step)
            moved += step
            await self.settle()

    async def append(self, *events: Event) -> None:
        for event in events:
            await self.journal.append(event)
        await self.settle()

    async def reconcile(
        self,
        *open_orders: VenueOrder,
        equity: str | None = None,
        failed: bool = False,
        freeze: bool = True,
    ) -> ReconcileResult:
        """One reconcile pass as the ReconcilerActor makes it, handed to the controller."""
        now = self.clock.now()
        if failed:
            result = self.reconciler.reconcile(LocalView(), None, now, error="snapshot_timeout")
        else:
            snapshot = AccountSnapshot(taken_at=now, open_orders=open_orders)
            result = self.reconciler.reconcile(LocalView(), snapshot, now)
        await self.journal.append(
            ReconcileCompleted(
                summary=result.summary.line(),
                clean=result.clean,
                streak=result.streak,
                mismatches=tuple(
                    f"{m.kind}:{m.symbol}:{m.client_order_id or m.position_side}"
                    for m in result.mismatches
                ),
                repairs=(),
                skipped=(),
                correlation_id="reconcile:test",
            )
        )
        await self.settle()  # the controller has read the pass's outcome from the journal
        for action in result.repairs if freeze else ():
            frozen = self.journal.state.frozen_symbols
            if action.kind is RepairKind.FREEZE_SYMBOL and action.symbol not in frozen:
                reason = ",".join(action.reasons)
                await self.journal.append(SymbolFrozen(action.symbol, True, reason))
        balances = () if equity is None else (_usdt(equity),)
        await self.beliefs.send(BeliefState(result, _healthy(now), balances))
        await self.settle()
        return result

    def drain(self) -> list[GuardKnobs]:
        out = []
        while True:
            try:
                out.append(self.knobs.receive_nowait())
            except trio.WouldBlock:
                return out

    def events(self, cls: type[_E]) -> list[_E]:
        decoded = (decode_event(e.type, e.payload) for e in self.journal.store.entries())
        return [e for e in decoded if isinstance(e, cls)]


@asynccontextmanager
async def rig(
    mock: trio.testing.MockClock,
    *,
    posture: PostureConfig = GREEN,
    kill_switch: KillSwitchConfig | None = None,
    config: BeliefConfig | None = None,
    store: Store | None = None,
    epoch_ms: int = MIDNIGHT_MS,
    knobs_capacity: int = 64,
) -> AsyncIterator[Rig]:
    clock = simulated_clock(epoch_ms)
    journal = Journal(store or Store.open(":memory:"), clock=clock)
    beliefs_send, beliefs_receive = trio.open_memory_channel[BeliefState](8)
    knobs_send, knobs_receive = trio.open_memory_channel[GuardKnobs](knobs_capacity)
    controller = BeliefController(
        journal,
        clock=clock,
        beliefs=beliefs_receive,
        knobs_out=[knobs_send],
        posture=PostureController(posture),
        kill_switch=KillSwitch(kill_switch or KillSwitchConfig()),
        config=config,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        await nursery.start(controller.run)
        yield Rig(journal, controller, clock, mock, beliefs_send, knobs_receive)
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------------------ 1. knobs


async def test_knobs_reach_the_router_when_the_score_moves_within_a_mode(mock_clock) -> None:
    # A replace storm raises pressure: the score rises, the mode stays GREEN, and the
    # tighter knobs must reach the Router now (they used to wait for a mode change).
    async with rig(mock_clock) as r:
        await r.reconcile()
        [boot] = r.drain()
        assert boot.mode is PostureMode.GREEN
        await r.controller.raise_pressure(
            PressureRaised("replace", BTC, "replace_storm", 0.4, "storm", hold_s=10.0)
        )
        await r.settle()
        [tight] = r.drain()
        assert r.controller.posture.mode is PostureMode.GREEN
        assert tight.mode is PostureMode.GREEN
        assert tight != boot
        assert tight.no_looser_than(boot)
        assert tight.max_notional < boot.max_notional
        assert tight == r.controller.knobs
        # Unchanged debt, many decisions: nothing is sent again (no flood).
        await r.advance(5.0)
        await r.reconcile()
        assert r.drain() == []
        # The pressure expires: the looser knobs are sent back, once.
        await r.advance(10.0)
        assert r.drain() == [boot]
        assert r.events(PostureChanged) == []  # no mode changed all along


async def test_a_subscriber_behind_gets_the_latest_knobs_not_a_stale_one(mock_clock) -> None:
    async with rig(mock_clock, knobs_capacity=1) as r:
        await r.reconcile()
        for severity in (0.2, 0.6):  # the buffer still holds the boot knobs: both blocked
            await r.controller.raise_pressure(
                PressureRaised("replace", BTC, f"storm_{int(severity * 10)}", severity, "x", 60.0)
            )
        latest = r.controller.knobs
        [boot] = r.drain()
        assert boot != latest
        await r.advance(1.0)  # the next decision retries with what is current then
        assert r.drain() == [latest]
        await r.advance(3.0)
        assert r.drain() == []


# ------------------------------------------------------------------------------ 2. API errors

_TIMEOUT = classify_transport_failure(request_written=True, operation=Operation.CREATE)
_503 = classify_error(503, -1000, "Unknown error", operation=Operation.CREATE)
_429 = classify_error(429, -1003, "Too many requests", operation=Operation.CREATE)
_1021 = classify_error(400, -1021, "outside of the recvWindow", operation=Operation.CREATE)
_MARGIN = classify_error(400, -2019, "Margin is insufficient.", operation=Operation.CREATE)
_REJECTED = classify_error(400, -2010, "Order would immediately match", operation=Operation.CREATE)
_NOTIONAL = classify_error(400, -4164, "notional too small", operation=Operation.CREATE)
_NOT_FOUND = classify_error(400, -2013, "Order does not exist.", operation=Operation.QUERY)


def _request() -> OrderRequest:
    return OrderRequest(
        symbol=BTC,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        client_order_id="sc-e1-0",
        quantity=D("0.002"),
        price=D("59000"),
        time_in_force=TimeInForce.GTC,
    )


@pytest.mark.parametrize(
    ("event", "counts"),
    [
        (OrderSending("e1", "c", "sc-e1-0", 0, _request(), True, 5000, 0), (0, 0)),
        (OrderAcked("e1", "c", "sc-e1-0", _order()), (1, 0)),
        (OrderOutcomeUnknown("e1", "c", "x", "AMBIGUOUS", None, _TIMEOUT.reason), (1, 1)),
        (OrderOutcomeUnknown("e1", "c", "x", "AMBIGUOUS", -1000, _503.reason), (1, 1)),
        (RetryScheduled("e1", "c", "x", "CREATE", 1, 0.5, "RETRYABLE", _429.reason), (1, 1)),
        (RetryScheduled("e1", "c", "x", "CREATE", 1, 0.5, "RETRYABLE", _1021.reason), (1, 1)),
        (RetryScheduled("e1", "c", "x", "QUERY", 2, 1.0, "AMBIGUOUS", _NOT_FOUND.reason), (1, 0)),
        (OrderRejected("e1", "c", "x", "FATAL", -2019, _MARGIN.reason), (1, 0)),
        (OrderRejected("e1", "c", "x", "FATAL", -2010, _REJECTED.reason), (1, 0)),
        (OrderRejected("e1", "c", "x", "FATAL", -4164, _NOTIONAL.reason), (1, 0)),
        (
            OrderRejected("e1", "c", "x", "RETRYABLE", -1003, "retries_exhausted:rate_limited"),
            (1, 1),
        ),
        (OrderResolved("e1", "c", "x", Resolution.PRESENT, "query", _order()), (1, 0)),
        (OrderResolved("e1", "c", "x", Resolution.PRESENT, "duplicate_client_id"), (1, 0)),
        (OrderResolved("e1", "c", "x", Resolution.PRESENT, "stream", _order()), (0, 0)),
        (OrderObserved("e1", "c", "x", _order(), "query", 0), (1, 0)),
        (OrderObserved("e1", "c", "x", _order(), "stream", 0), (0, 0)),
        (CancelResolved("e1", "c", "x", "cancel_ack", _order()), (1, 0)),
        (CancelResolved("e1", "c", "x", "transport_after_write+query", _order()), (2, 1)),
        (CancelResolved("e1", "c", "x", "cancel_not_open+not_found", None), (2, 0)),
        (CancelFailed("e1", "c", "x", "cancel_not_open+still_open", True), (1, 0)),
        (CancelFailed("e1", "c", "x", "cancel_not_open+server_busy", True), (1, 1)),
        (CancelFailed("e1", "c", "x", "retries_exhausted", True), (0, 0)),
        (CancelFailed("e1", "c", "x", "cancel_rejected", False), (1, 0)),
        (BackfillCompleted(BTC, None, 0, 0, "routine"), (1, 0)),
        (ReconcileCompleted("s", True, 0, (), (), (), "r"), (1, 0)),
        (ReconcileCompleted("s", False, 1, ("snapshot_failed:ACCOUNT:BOTH",), (), (), "r"), (1, 1)),
        (ReconcileCompleted("s", False, 1, ("snapshot_stale:ACCOUNT:BOTH",), (), (), "r"), (1, 0)),
        (DeadmanChanged(BTC, True, 60000, "resting"), (1, 0)),
        (DeadmanFailed(BTC, "transport_after_write", 1), (1, 1)),
        (IntentRejected("e1", "c", "posture_blocks_entries"), (0, 0)),
        (StreamGapObserved(1.0, 2.0, "disconnected"), (0, 0)),
    ],
)
def test_what_counts_as_a_request_and_as_an_api_error(event: Event, counts: tuple[int, int]):
    assert api_counts(event) == counts


def _transport_burst(n: int) -> Iterator[Event]:
    for i in range(n):
        if i % 2:
            yield OrderOutcomeUnknown(
                f"e{i}", "c", f"sc-e{i}-0", "AMBIGUOUS", None, _TIMEOUT.reason
            )
        else:
            yield RetryScheduled(
                f"e{i}", "c", f"sc-e{i}-0", "CREATE", 1, 0.5, "RETRYABLE", "rate_limited"
            )


async def test_a_burst_of_transport_errors_trips_api_error_burst(mock_clock) -> None:
    async with rig(mock_clock) as r:
        await r.reconcile()
        await r.append(*_transport_burst(12))
        assert r.controller.pending_api_errors == 12
        await r.reconcile()
        halts = r.events(HaltChanged)
        state = r.controller.kill_switch.state(r.clock.now())
    assert [(h.halted, h.source) for h in halts] == [(True, "kill_switch")]
    assert "api_error_burst" in halts[0].reason
    assert KillReason.API_ERROR_BURST in state.active
    assert state.entry_blocked
    assert state.exits_allowed  # a halt stops entries only (I1)


async def test_a_high_share_of_errored_requests_trips_api_error_rate(mock_clock) -> None:
    async with rig(mock_clock) as r:
        await r.reconcile()
        acks = [OrderAcked(f"a{i}", "c", f"sc-a{i}-0", _order()) for i in range(5)]
        await r.append(*acks, *_transport_burst(4))
        await r.reconcile()
        state = r.controller.kill_switch.state(r.clock.now())
    # 4 errors in 11 requests (5 acks, 4 failures, 2 snapshots): 0.36 >= 0.35.
    assert state.active == (KillReason.API_ERROR_RATE,)


async def test_business_rejects_are_requests_but_never_api_errors(mock_clock) -> None:
    rejects = [
        OrderRejected(f"e{i}", "c", f"sc-e{i}-0", "FATAL", verdict.code, verdict.reason)
        for i, verdict in enumerate([_MARGIN, _REJECTED, _NOTIONAL] * 10)
    ]
    async with rig(mock_clock) as r:
        await r.reconcile()
        await r.append(*rejects)
        assert (r.controller.pending_api_requests, r.controller.pending_api_errors) == (30, 0)
        await r.reconcile()
        state = r.controller.kill_switch.state(r.clock.now())
        halts = r.events(HaltChanged)
    assert halts == []
    assert not state.halted
    assert (r.controller.pending_api_requests, r.controller.pending_api_errors) == (0, 0)


# ------------------------------------------------------------------------------ 3. the UTC day


async def test_daily_loss_starts_from_the_first_equity_after_utc_midnight(mock_clock) -> None:
    # 23:58 10000, 23:59 9600 (-4%), 00:00:05 9600 is the new day's start, 00:10 9390.
    # From the first equity ever seen that is -6.1% (a false halt); from today's start -2.2%.
    async with rig(mock_clock, epoch_ms=MIDNIGHT_MS - 120_000) as r:
        await r.reconcile(equity="10000")
        await r.advance(60.0, step=5.0)
        await r.reconcile(equity="9600")
        await r.advance(65.0, step=5.0)
        assert r.clock.wall_ms() >= MIDNIGHT_MS
        await r.reconcile(equity="9600")
        await r.advance(600.0, step=5.0)
        await r.reconcile(equity="9390")
        state = r.controller.kill_switch.state(r.clock.now())
        days = r.events(DayStartEquity)
        await r.advance(60.0, step=5.0)
        await r.reconcile(equity="9110")  # -5.1% from today's start: this one is real
        tripped = r.controller.kill_switch.state(r.clock.now())
    today = utc_day(MIDNIGHT_MS / 1000)
    assert [(d.utc_day, d.date, d.equity) for d in days] == [
        (today - 1, "2025-12-31", D("10000")),
        (today, "2026-01-01", D("9600")),
    ]
    assert days[1].peak_equity == D("10000")
    assert not state.halted, state
    assert tripped.active == (KillReason.DAILY_LOSS,)


async def test_a_restart_keeps_the_days_start_from_the_journal(mock_clock) -> None:
    # 10000 at 01:00, the process restarts at 03:00 and sees 9400 first: -6% today. A
    # restarted controller that took 9400 as the day's start would see no loss at all.
    store = Store.open(":memory:")
    async with rig(mock_clock, store=store, epoch_ms=MIDNIGHT_MS + 3_600_000) as r:
        await r.reconcile(equity="10000")
        restart_at = r.clock.wall_ms() + 7_200_000
    mock_clock.jump(7200.0)
    async with rig(mock_clock, store=store.restarted_copy(), epoch_ms=restart_at) as r2:
        assert r2.controller.day_equity.day_start == D("10000")
        await r2.reconcile(equity="9400")
        state = r2.controller.kill_switch.state(r2.clock.now())
        days = r2.events(DayStartEquity)
    assert state.active == (KillReason.DAILY_LOSS,)
    assert len(days) == 1  # today's record was read back, not written again


async def test_todays_record_is_found_behind_a_long_journal(mock_clock) -> None:
    # The look-back reads the journal backwards in chunks: the record sits behind more than
    # one chunk of later entries (a busy morning), and is still found.
    store = Store.open(":memory:")
    async with rig(mock_clock, store=store, epoch_ms=MIDNIGHT_MS + 60_000) as r:
        await r.reconcile(equity="20000")
        await r.append(*(BackfillCompleted(BTC, None, 0, 0, f"routine-{i}") for i in range(1300)))
        wall = r.clock.wall_ms()
    async with rig(mock_clock, store=store.restarted_copy(), epoch_ms=wall + 1000) as r2:
        start = r2.controller.day_equity.day_start
        await r2.reconcile(equity="18900")
        state = r2.controller.kill_switch.state(r2.clock.now())
    assert start == D("20000")
    assert state.active == (KillReason.DAILY_LOSS,)


async def test_yesterdays_record_is_not_todays_start(mock_clock) -> None:
    store = Store.open(":memory:")
    async with rig(mock_clock, store=store, epoch_ms=MIDNIGHT_MS - 3_600_000) as r:
        await r.reconcile(equity="10000")  # 23:00 yesterday
    async with rig(mock_clock, store=store.restarted_copy(), epoch_ms=MIDNIGHT_MS + 600_000) as r2:
        assert r2.controller.day_equity.day is None
        await r2.reconcile(equity="9400")  # first reading today: today's start
        state = r2.controller.kill_switch.state(r2.clock.now())
        days = r2.events(DayStartEquity)
    assert not state.halted
    assert [d.equity for d in days] == [D("10000"), D("9400")]


# ------------------------------------------------------------------------------ 4. stream gaps


def _gap_open(r: Rig) -> bool:
    return r.controller.stream_gap_open


async def test_a_long_stream_gap_degrades_posture_until_its_backfill_completes(mock_clock):
    async with rig(mock_clock) as r:
        await r.append(
            BackfillCompleted(BTC, None, 0, 0, "startup"),
            BackfillCompleted(ETH, None, 0, 0, "startup"),
        )
        await r.reconcile()
        assert r.controller.last_debt.source_confidence == 1.0
        now = r.clock.now()
        # The collector journals the gap once the stream is back; its backfills failed.
        await r.append(StreamGapObserved(now - 60.0, now, "disconnected"))
        debt = r.controller.last_debt
        assert debt.source_confidence == 0.5
        assert "stream_gap_unbackfilled" in debt.extra_tags
        for _ in range(6):  # reconciles keep passing: the gap is what holds the posture
            await r.advance(5.0)
            await r.reconcile()
        assert r.controller.posture.mode is PostureMode.YELLOW
        decision = r.controller.last_decision
        assert decision is not None
        assert "stream_gap_unbackfilled" in decision.explanation.cause_tags
        await r.append(BackfillCompleted(BTC, None, 2, 1, f"gap:{now:.3f}"))
        assert _gap_open(r)  # ETH's trades are not read yet
        await r.append(BackfillCompleted(ETH, None, 0, 0, "routine"))
        assert not _gap_open(r)
        assert r.controller.last_debt.source_confidence == 1.0
        assert "stream_gap_unbackfilled" not in r.controller.last_debt.extra_tags
        for _ in range(24):
            await r.advance(5.0)
            await r.reconcile()
        modes = [(e.previous, e.mode) for e in r.events(PostureChanged)]
    assert modes == [("GREEN", "YELLOW"), ("YELLOW", "GREEN")]


async def test_a_short_reconnect_raises_nothing(mock_clock) -> None:
    async with rig(mock_clock) as r:
        await r.append(BackfillCompleted(BTC, None, 0, 0, "startup"))
        await r.reconcile()
        before = r.controller.knobs
        now = r.clock.now()
        await r.append(StreamGapObserved(now - 2.0, now, "disconnected"))
        assert not r.controller.stream_gap_open
        assert r.controller.last_debt.source_confidence == 1.0
        assert r.controller.knobs == before


GRACE = BeliefConfig().stream_gap_grace_s
CAP = BeliefConfig().stream_gap_confidence


async def test_a_stream_outage_tightens_once_it_outlasts_the_grace(mock_clock):
    async with rig(mock_clock) as r:
        await r.append(BackfillCompleted(BTC, None, 0, 0, "startup"))
        await r.reconcile()
        assert r.controller.last_debt.source_confidence == 1.0
        since = r.clock.now() - 1.0  # the last frame the stream had
        await r.append(StreamDown(since=since, detected_at=r.clock.now(), reason="ping_timeout"))
        # A blip inside the grace raises nothing, now or up to the grace's last instant.
        for at in (since, since + GRACE / 2, since + GRACE - 0.01):
            early = r.controller.debt(at)
            assert early.source_confidence == 1.0
            assert "stream_down" not in early.extra_tags
        knobs_before = r.controller.knobs
        assert "stream_down" not in r.controller.last_debt.extra_tags
        # Still down past the grace: the tick alone applies the cap, no reconcile needed.
        await r.advance(GRACE)
        debt = r.controller.last_debt
        assert debt.source_confidence <= CAP
        assert "stream_down" in debt.extra_tags
        assert "stream_gap_unbackfilled" not in debt.extra_tags
        assert r.controller.debt(since + GRACE).source_confidence <= CAP
        for _ in range(6):  # reconciles keep passing: the blind stream holds the posture
            await r.advance(5.0)
            await r.reconcile()
        assert r.controller.posture.mode is PostureMode.YELLOW
        assert r.controller.knobs.max_notional < knobs_before.max_notional
        decision = r.controller.last_decision
        assert decision is not None
        assert "stream_down" in decision.explanation.cause_tags
        # The reconnect's gap covers the whole outage; its backfill failed so far.
        now = r.clock.now()
        await r.append(StreamGapObserved(since, now, "ping_timeout"))
        debt = r.controller.last_debt
        assert "stream_down" not in debt.extra_tags
        assert "stream_gap_unbackfilled" in debt.extra_tags
        assert debt.source_confidence <= CAP
        assert _gap_open(r)
        await r.append(BackfillCompleted(BTC, None, 1, 1, f"gap:{now:.3f}"))
        assert not _gap_open(r)
        assert r.controller.last_debt.source_confidence == 1.0
        assert r.controller.last_debt.extra_tags == ()
        for _ in range(24):
            await r.advance(5.0)
            await r.reconcile()
        modes = [(e.previous, e.mode) for e in r.events(PostureChanged)]
        causes = r.events(PostureChanged)[0].causes
    assert modes == [("GREEN", "YELLOW"), ("YELLOW", "GREEN")]
    assert "stream_down" in causes


async def test_a_short_outage_raises_nothing_before_or_after_its_reconnect(mock_clock):
    async with rig(mock_clock) as r:
        await r.append(BackfillCompleted(BTC, None, 0, 0, "startup"))
        await r.reconcile()
        before = r.controller.knobs
        since = r.clock.now()
        await r.append(StreamDown(since=since, detected_at=since, reason="disconnected"))
        await r.advance(2.0)
        now = r.clock.now()
        await r.append(StreamGapObserved(since, now, "disconnected"))
        await r.advance(GRACE * 4)
        # Long after the outage began: the reconnect closed it, nothing is left to count.
        for at in (now, since + GRACE, since + GRACE * 10):
            debt = r.controller.debt(at)
            assert debt.source_confidence == 1.0
            assert debt.extra_tags == ()
        assert not _gap_open(r)
        assert r.controller.last_debt.source_confidence == 1.0
        assert r.controller.knobs == before
        assert r.events(PostureChanged) == []


async def test_an_outage_is_measured_from_its_first_report(mock_clock):
    # A second StreamDown for the same outage (a restarted collector reports it again) must
    # not restart the grace: the stream has been blind since the first one.
    async with rig(mock_clock) as r:
        await r.append(BackfillCompleted(BTC, None, 0, 0, "startup"))
        await r.reconcile()
        first = r.clock.now()
        await r.append(StreamDown(since=first, detected_at=first, reason="ping_timeout"))
        await r.advance(GRACE - 1.0)
        again = r.clock.now()
        await r.append(StreamDown(since=again, detected_at=again, reason="stream_ended"))
        await r.advance(1.0)
        debt = r.controller.debt(first + GRACE)
        assert debt.source_confidence <= CAP
        assert "stream_down" in debt.extra_tags
        assert "stream_down" in r.controller.last_debt.extra_tags


async def test_the_outage_cap_respects_its_configuration(mock_clock):
    config = BeliefConfig(stream_gap_grace_s=30.0, stream_gap_confidence=0.2)
    async with rig(mock_clock, config=config) as r:
        await r.append(BackfillCompleted(BTC, None, 0, 0, "startup"))
        await r.reconcile()
        since = r.clock.now()
        await r.append(StreamDown(since=since, detected_at=since, reason="maintenance"))
        assert r.controller.debt(since + 29.0).source_confidence == 1.0
        capped = r.controller.debt(since + 30.0)
        assert capped.source_confidence == pytest.approx(0.2)
        assert capped.extra_tags == ("stream_down",)
    disabled = BeliefConfig(stream_gap_confidence=1.0)
    async with rig(mock_clock, config=disabled) as r:
        await r.reconcile()
        since = r.clock.now()
        await r.append(StreamDown(since=since, detected_at=since, reason="maintenance"))
        # A cap of 1 caps nothing; the tag still says why the stream is not trusted.
        debt = r.controller.debt(since + 60.0)
        assert debt.source_confidence == 1.0
        assert "stream_down" in debt.extra_tags


# ------------------------------------------------------------------------------ 5. frozen orders


async def test_a_frozen_foreign_order_does_not_trip_the_global_kill_switch(mock_clock) -> None:
    # Someone places an order by hand: reconcile freezes BTC and reports the order on every
    # pass (its streak grows without end). It is the operator's to clear: entries on BTC are
    # refused by the freeze, but it must not halt every symbol nor push the posture past a
    # bounded step.
    async with rig(mock_clock) as r:
        await r.reconcile()
        results = []
        for _ in range(20):
            await r.advance(5.0)
            results.append(await r.reconcile(_foreign("manual-1")))
        halts = r.events(HaltChanged)
        changes = r.events(PostureChanged)
        decision = r.controller.last_decision
        debt = r.controller.last_debt
        frozen = dict(r.journal.state.frozen_symbols)
    assert results[-1].streak == 20  # what the kill switch used to be fed
    assert BTC in frozen
    assert halts == []
    assert r.controller.mismatch_streak == 0
    assert (debt.mismatch_streak, debt.breadth, debt.depth, debt.debt_age_s) == (0, 0, 0.0, 0.0)
    assert debt.extra_pressure == 0.6
    assert decision is not None
    # A bounded pressure: one step (YELLOW, entries still allowed), never more.
    assert decision.mode is PostureMode.YELLOW
    assert decision.knobs.allow_entries
    assert [(e.previous, e.mode) for e in changes] == [("GREEN", "YELLOW")]
    assert "frozen_foreign_order" in decision.explanation.cause_tags
    assert r.controller.frozen_order_symbols == (BTC,)


@pytest.mark.parametrize(
    ("order", "freeze"),
    [
        # The venue liquidating us is not an operator's foreign order: it counts in full.
        (_foreign("autoclose-123"), True),
        # A foreign order on a symbol the journal does not show frozen counts too.
        (_foreign("manual-1"), False),
    ],
)
async def test_other_unexplained_orphans_still_trip_the_kill_switch(
    mock_clock, order: VenueOrder, freeze: bool
) -> None:
    async with rig(mock_clock) as r:
        await r.reconcile()
        for _ in range(8):
            await r.advance(5.0)
            result = await r.reconcile(order, freeze=freeze)
        halts = r.events(HaltChanged)
        frozen = BTC in r.journal.state.frozen_symbols
    assert result.mismatches
    assert frozen is freeze
    assert r.controller.mismatch_streak == 8
    assert r.controller.frozen_order_symbols == ()
    assert [(h.halted, h.source) for h in halts] == [(True, "kill_switch")]


async def test_a_frozen_order_does_not_hide_a_real_mismatch_beside_it(mock_clock) -> None:
    async with rig(mock_clock) as r:
        await r.reconcile()
        for _ in range(3):
            await r.advance(5.0)
            await r.reconcile(_foreign("manual-1"))
        assert r.controller.mismatch_streak == 0
        for _ in range(6):  # now the snapshots fail as well
            await r.advance(5.0)
            await r.reconcile(failed=True)
        halts = r.events(HaltChanged)
    assert r.controller.mismatch_streak == 6
    assert [(h.halted, h.source) for h in halts] == [(True, "kill_switch")]


# ------------------------------------------------------------------------------ the whole system


def _venue(*faults: FaultSpec, seed: int = 3) -> InProcessVenue:
    engine = make_engine(seed=seed)
    injector = FaultInjector(faults, random.Random(seed)) if faults else None
    return InProcessVenue(engine, injector, clock=trio.current_time)


@asynccontextmanager
async def _system(venue: InProcessVenue, config: SystemConfig) -> AsyncIterator[System]:
    async with open_system(config, venue, Store.open(":memory:"), clock=simulated_clock()) as s:
        yield s


async def _until(predicate, *, limit_s: float = 900.0) -> None:
    with trio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110 - polling virtual time is the point
            await trio.sleep(0.5)


def _entry(intent_id: str, qty: str = "0.002") -> Intent:
    return Intent(intent_id=intent_id, symbol=BTC, side=Side.BUY, quantity=D(qty))


def _exit(intent_id: str) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=Side.SELL,
        quantity=D("0.002"),
        kind=IntentKind.EXIT,
        reduce_only=True,
    )


def _events(system: System, cls: type[_E]) -> list[_E]:
    decoded = (decode_event(e.type, e.payload) for e in system.journal.store.entries())
    return [e for e in decoded if isinstance(e, cls)]


async def test_system_503s_on_order_placement_halt_entries_and_exits_still_go(
    autojump_clock,
) -> None:
    # The venue sheds every order for 50 s (503 server busy: retryable, nothing executed).
    # Two entries retry into it: their failed attempts trip the API-error triggers, entries
    # halt, and the exit placed after the shedding goes out and fills anyway (I1).
    shed = FaultSpec(
        start=150.0,
        end=200.0,
        kind="SERVICE_UNAVAILABLE_503",
        params={"variant": "server_busy"},
        operations={"create"},
    )
    venue = _venue(shed)
    async with _system(venue, SystemConfig(symbols=(BTC,))) as system:
        state = system.journal.state
        await _until(lambda: system.knobs.allow_entries)
        assert (await system.submit(_entry("e1"), reference_price=REF)).accepted
        await _until(lambda: state.position(BTC) == D("0.002"))
        assert trio.current_time() < 150.0
        await trio.sleep_until(150.0)
        for name in ("shed-1", "shed-2"):
            await _until(lambda: system.knobs.allow_entries and not state.halted)
            receipt = await system.submit(_entry(name), reference_price=REF)
            assert receipt.accepted, receipt
            await trio.sleep(17.0)  # past the posture's entry cooldown
        await _until(lambda: "kill_switch" in state.halts)
        halted_at = trio.current_time()
        refused = await system.submit(_entry("late"), reference_price=REF)
        await trio.sleep_until(max(200.0, trio.current_time()))
        assert "kill_switch" in state.halts
        receipt = await system.submit(_exit("x1"))
        await _until(lambda: state.position(BTC) == 0)
        halts = _events(system, HaltChanged)
        retries = _events(system, RetryScheduled)
    assert halted_at < 200.0
    # The share of failed requests crosses 35% before the count reaches 12: either trips.
    assert set(halts[0].reason.split(",")) & {"api_error_burst", "api_error_rate"}
    assert "reconcile_mismatch_streak" not in halts[0].reason
    assert retries
    assert all(r.reason == "server_busy" for r in retries)
    assert not refused.accepted
    assert receipt.accepted, receipt
    assert sum(p.quantity for p in venue.engine.positions() if p.symbol == BTC) == 0


async def test_system_business_rejects_never_trip_the_api_error_triggers(autojump_clock) -> None:
    # Entries below the venue's minimum notional are rejected (-4164) one after another.
    # With the burst limit at 2 any of them counted as an API error would halt entries.
    config = SystemConfig(symbols=(BTC,), kill_switch=KillSwitchConfig(api_error_burst_max=2))
    venue = _venue()
    async with _system(venue, config) as system:
        state = system.journal.state
        await _until(lambda: system.knobs.allow_entries)
        for i in range(4):
            await _until(lambda: system.knobs.allow_entries)
            assert (await system.submit(_entry(f"tiny-{i}", "0.001"), reference_price=REF)).accepted
            await trio.sleep(20.0)
        rejects = _events(system, OrderRejected)
        halts = _events(system, HaltChanged)
        still_open = system.knobs.allow_entries and not state.halted
    assert [r.reason for r in rejects] == ["min_notional"] * 4
    assert halts == []
    assert still_open


async def test_system_a_manual_order_freezes_its_symbol_and_halts_nothing(autojump_clock) -> None:
    venue = _venue()
    async with _system(venue, SystemConfig(symbols=(BTC,))) as system:
        state = system.journal.state
        await _until(lambda: system.knobs.allow_entries)
        assert (await system.submit(_entry("e1"), reference_price=REF)).accepted
        await _until(lambda: state.position(BTC) == D("0.002"))
        venue.engine.create_order(
            limit(Side.SELL, "0.002", "75000", "manual-1"), trio.current_time()
        )
        await _until(lambda: BTC in state.frozen_symbols)
        before = len(_events(system, PostureChanged))
        await trio.sleep(300.0)  # the old streak trip came after 6 passes (30 s)
        modes = {e.mode for e in _events(system, PostureChanged)[before:]}
        halts = _events(system, HaltChanged)
        status = system.status()
        refused = await system.submit(_entry("e2"), reference_price=REF)
        receipt = await system.submit(_exit("x1"))
        await _until(lambda: state.position(BTC) == 0)
        reconcile = state.last_reconcile
    assert halts == []
    assert not modes & {"ORANGE", "RED"}
    assert status.frozen_symbols.get(BTC)
    assert "frozen_foreign_order" in status.causes
    assert status.posture in ("GREEN", "YELLOW")
    assert reconcile is not None
    assert not reconcile.clean  # the order is still reported
    assert (refused.accepted, refused.reason) == (False, "symbol_frozen")
    assert receipt.accepted, receipt


async def test_system_exits_go_while_an_unbackfilled_gap_holds_the_posture(autojump_clock):
    # The stream is down 200-260 s and the trade history answers 503 until 330 s, so the
    # gap's backfills fail: the posture tightens while the gap's fills are unaccounted for,
    # an exit still goes, and once a backfill completes the gap no longer holds anything.
    venue = _venue(
        FaultSpec(start=200.0, end=260.0, kind="STREAM_DISCONNECT"),
        FaultSpec(
            start=255.0, end=330.0, kind="SERVICE_UNAVAILABLE_503", operations={"user_trades"}
        ),
    )
    async with _system(venue, SystemConfig(symbols=(BTC,))) as system:
        state = system.journal.state
        await _until(lambda: system.knobs.allow_entries)
        assert (await system.submit(_entry("e1"), reference_price=REF)).accepted
        await _until(lambda: state.position(BTC) == D("0.002"))
        await _until(lambda: system.belief.stream_gap_open, limit_s=300.0)
        opened = trio.current_time()
        knobs_open = system.knobs
        receipt = await system.submit(_exit("x1"))
        await _until(lambda: state.position(BTC) == 0)
        await _until(lambda: not system.belief.stream_gap_open)
        closed = trio.current_time()
        knobs_closed = system.knobs
        debt = system.belief.last_debt
    assert 260.0 <= opened < 262.0
    assert 330.0 <= closed < 370.0
    assert receipt.accepted, receipt
    assert not knobs_open.allow_entries or knobs_open.max_notional < knobs_closed.max_notional
    assert "stream_gap_unbackfilled" not in debt.extra_tags
    assert [type(e).__name__ for e in _events(system, FillApplied)]


async def test_a_restarted_controller_keeps_capping_an_outage_journaled_before_it(
    mock_clock,
) -> None:
    # The controller is restarted (an actor restart) while the stream is down: the StreamDown
    # is in the journal, not in its subscription. The journal's state carries the outage.
    async with rig(mock_clock) as r:
        await r.append(BackfillCompleted(BTC, None, 0, 0, "startup"))
        await r.reconcile()
        since = r.clock.now() - 1.0
        await r.append(StreamDown(since=since, detected_at=r.clock.now(), reason="ping_timeout"))
        _beliefs_send, beliefs = trio.open_memory_channel[BeliefState](8)
        restarted = BeliefController(
            r.journal,
            clock=r.clock,
            beliefs=beliefs,
            knobs_out=[],
            posture=PostureController(GREEN),
            kill_switch=KillSwitch(KillSwitchConfig()),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(restarted.run)
            # Wall-ms rounding aside, the grace runs from the outage's own start.
            assert "stream_down" not in restarted.debt(since + GRACE - 0.01).extra_tags
            capped = restarted.debt(since + GRACE + 0.01)
            assert capped.source_confidence <= CAP
            assert "stream_down" in capped.extra_tags
            await r.append(StreamGapObserved(since, r.clock.now() + GRACE, "ping_timeout"))
            after = restarted.debt(r.clock.now())
            assert "stream_down" not in after.extra_tags
            assert "stream_gap_unbackfilled" in after.extra_tags
            nursery.cancel_scope.cancel()
