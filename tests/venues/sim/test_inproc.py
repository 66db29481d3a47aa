"""The in-process venue: the simulated exchange behind the Venue protocol, faults included.

Every test runs on trio's MockClock (autojump), so waiting out a 10 s timeout or a 2-minute
ban costs nothing. Book arithmetic (default BookConfig, BTCUSDT at 60000, 1 bps spread):
bid 59997.0, ask 60003.0; resting orders get 0.2 BTC of maker liquidity per price step.
"""

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalper.core.errors import ErrorClass
from scalper.core.model import VenueOrderStatus
from scalper.core.types import OrderType, Side
from scalper.venues.base import (
    AccountUpdate,
    OrderUpdate,
    StreamConnected,
    StreamDisconnected,
    StreamEvent,
    StreamGap,
    UnknownStreamEvent,
    Venue,
    VenueError,
    take_snapshot,
)
from scalper.venues.sim.engine import SimEngine
from scalper.venues.sim.faults import FaultConfig, FaultInjector, FaultKind, FaultSpec
from scalper.venues.sim.inproc import InProcessConfig, InProcessVenue
from scalper.venues.sim.ratelimit import RateLimitConfig
from scalper.venues.sim.records import OrderAccepted
from tests.venues.sim.simkit import BTC, D, limit, make_engine, market, still_symbol, stop
from tests.venues.sim.test_faults import expired, fault_specs

K = FaultKind
BUY, SELL = Side.BUY, Side.SELL


def make_venue(*specs: FaultSpec, engine: SimEngine | None = None, seed: int = 1) -> InProcessVenue:
    engine = engine or make_engine()
    injector = FaultInjector(specs, random.Random(seed)) if specs else None
    return InProcessVenue(engine, injector, clock=trio.current_time)


async def venue_error(coro) -> VenueError:
    with pytest.raises(VenueError) as info:
        await coro
    return info.value


def accepted(venue: InProcessVenue, client_order_id: str) -> list[OrderAccepted]:
    return [r for r in venue.engine.history.accepted() if r.client_order_id == client_order_id]


def engine_seconds(venue: InProcessVenue, venue_time_ms: int) -> float:
    return venue_time_ms / 1000 - venue.engine.config.epoch_offset


@asynccontextmanager
async def recording(venue: InProcessVenue) -> AsyncIterator[list[tuple[float, StreamEvent]]]:
    """Consume the user stream in the background, recording (arrival time, event)."""
    got: list[tuple[float, StreamEvent]] = []

    async def pump() -> None:
        async with venue.user_stream() as stream:
            async for event in stream:
                got.append((trio.current_time(), event))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        await trio.sleep(0.01)  # connected (the first poll happens at once)
        yield got
        await trio.sleep(0.2)  # let the last polls land
        nursery.cancel_scope.cancel()


def fills_of(got: list[tuple[float, StreamEvent]]) -> list[str]:
    return [e.fill.trade_id for _, e in got if isinstance(e, OrderUpdate) and e.fill is not None]


def gaps_of(got: list[tuple[float, StreamEvent]]) -> list[StreamGap]:
    return [e for _, e in got if isinstance(e, StreamGap)]


# ---------------------------------------------------------------------------- an honest exchange


async def test_the_venue_is_a_venue(autojump_clock):
    venue: Venue = make_venue()
    assert isinstance(venue, Venue)
    assert venue.name == "sim"


async def test_create_query_cancel_round_trip(autojump_clock):
    venue = make_venue()
    placed = await venue.create_order(limit(BUY, "0.1", "59000", "rt1"))
    assert placed.status is VenueOrderStatus.NEW
    assert await venue.query_order(BTC, client_order_id="rt1") == placed
    assert await venue.open_orders(BTC) == [placed]
    await trio.sleep(3)
    canceled = await venue.cancel_order(BTC, order_id=placed.order_id)
    assert canceled.status is VenueOrderStatus.CANCELED
    assert await venue.open_orders() == []
    assert venue.engine.history.closures()[0].ts == 3.0  # the engine ran on trio's clock


async def test_engine_rejections_are_classified_like_binance_answers(autojump_clock):
    venue = make_venue()
    await venue.create_order(limit(BUY, "0.1", "59000", "dup1"))
    dup = await venue_error(venue.create_order(limit(BUY, "0.1", "59000", "dup1")))
    assert (dup.error_class, dup.code, dup.verdict.order_exists) == (
        ErrorClass.IDEMPOTENT_SAFE,
        -4116,
        True,
    )
    gone = await venue_error(venue.cancel_order(BTC, client_order_id="nope"))
    assert (gone.error_class, gone.code) == (ErrorClass.IDEMPOTENT_SAFE, -2011)
    missing = await venue_error(venue.query_order(BTC, client_order_id="nope"))
    assert (missing.verdict.reason, missing.code) == ("order_not_found", -2013)
    too_big = await venue_error(venue.create_order(limit(BUY, "900", "59000", "big1")))
    assert (too_big.error_class, too_big.code) == (ErrorClass.FATAL, -2027)
    unknown = await venue_error(venue.open_orders("NOPEUSDT"))
    assert (unknown.error_class, unknown.code) == (ErrorClass.FATAL, -1121)


async def test_reads_report_the_account(autojump_clock):
    venue = make_venue()
    await venue.create_order(market(BUY, "0.3", "buy1"))
    (position,) = await venue.positions()
    assert (position.symbol, position.quantity, position.leverage) == (BTC, D("0.3"), 20)
    (balance,) = await venue.balances()
    assert balance.asset == "USDT"
    assert balance.wallet_balance < D(1_000_000)  # fees were paid
    trades = await venue.user_trades(BTC)
    assert trades == list(venue.engine.history.fills(BTC))
    assert await venue.user_trades(BTC, from_trade_id="2") == []
    info = await venue.exchange_info()
    rules = info.rules_for(BTC)
    assert rules is not None
    assert (rules.tick_size, rules.step_size, rules.min_notional) == (
        D("0.10"),
        D("0.001"),
        D(100),
    )
    assert {r.rate_limit_type for r in info.rate_limits} == {"REQUEST_WEIGHT", "ORDERS"}
    await trio.sleep(2.5)
    assert await venue.server_time() == venue.engine.venue_time_ms(2.5)
    assert await venue.set_leverage(BTC, 7) == 7
    assert venue.engine.leverage(BTC) == 7


async def test_mark_price_follows_the_price_path_on_trio_time(autojump_clock):
    series = ((5.0, D(58000)), (10.0, D("61000.5")))
    venue = make_venue(engine=make_engine(symbol=still_symbol(series=series)))
    assert await venue.mark_price(BTC) == D(60000)
    await trio.sleep(5)
    # Nobody touched the engine while the price moved; the read brings it up to date.
    assert await venue.mark_price(BTC) == D(58000) == venue.engine.mark_price(BTC)
    await trio.sleep(5)
    assert await venue.mark_price(BTC) == D("61000.5")
    unknown = await venue_error(venue.mark_price("DOGEUSDT"))
    assert (unknown.code, unknown.error_class, unknown.verdict.reason) == (
        -1121,
        ErrorClass.FATAL,
        "bad_symbol",
    )


async def test_mark_price_is_faultable_and_charged_like_binance(autojump_clock):
    lost = make_venue(FaultSpec(0, 5, K.LOSE_RESPONSE, operations={"mark_price"}))
    err = await venue_error(lost.mark_price(BTC))
    assert err.error_class is ErrorClass.RETRYABLE  # a lost read is merely retryable
    assert len(await lost.open_orders()) == 0  # the fault targets mark_price reads only
    await trio.sleep(5)
    assert await lost.mark_price(BTC) == D(60000)  # outside the window: answered

    limited = make_venue(
        engine=make_engine(rate_limits=RateLimitConfig(request_weight_per_minute=3))
    )
    for _ in range(3):  # weight 1 each
        await limited.mark_price(BTC)
    too_many = await venue_error(limited.mark_price(BTC))
    assert (too_many.http_status, too_many.code) == (429, -1003)


async def test_the_engine_follows_the_clock_between_calls(autojump_clock):
    series = ((5.0, D(58000)),)
    venue = make_venue(engine=make_engine(symbol=still_symbol(series=series)))
    await venue.create_order(market(BUY, "0.1", "long1"))
    stop_order = await venue.create_order(
        stop(OrderType.STOP_MARKET, SELL, "59000", "sl1", qty="0.1", reduce_only=True)
    )
    await trio.sleep(6)
    # Nobody touched the engine while the price fell; the next call brings it up to date.
    after = await venue.query_order(BTC, order_id=stop_order.order_id, conditional=True)
    assert after.status is VenueOrderStatus.FILLED
    assert (await venue.positions())[0].quantity == 0


async def test_countdown_cancels_at_its_deadline(autojump_clock):
    venue = make_venue()
    await venue.create_order(limit(BUY, "0.1", "59000", "cd1"))
    await venue.countdown_cancel_all(BTC, 2000)
    await trio.sleep(1.9)
    assert len(await venue.open_orders(BTC)) == 1
    await trio.sleep(0.2)
    assert await venue.open_orders(BTC) == []


async def test_request_weight_is_charged(autojump_clock):
    venue = make_venue(
        engine=make_engine(rate_limits=RateLimitConfig(request_weight_per_minute=10))
    )
    await venue.positions()
    await venue.positions()
    limited = await venue_error(venue.positions())
    assert (limited.error_class, limited.http_status, limited.code) == (
        ErrorClass.RETRYABLE,
        429,
        -1003,
    )
    assert limited.verdict.backoff_hint_s == pytest.approx(60.0)


async def test_stream_converts_engine_events(autojump_clock):
    venue = make_venue()
    async with recording(venue) as got:
        await venue.create_order(market(BUY, "0.1", "s1"))
        await venue.create_order(stop(OrderType.STOP_MARKET, SELL, "59000", "s2", qty="0.1"))
        await venue.set_leverage(BTC, 9)
        await trio.sleep(0.5)
    events = [e for _, e in got]
    assert events[0] == StreamConnected(at=0.0, reconnect=False)
    fills = [e.fill for e in events if isinstance(e, OrderUpdate) and e.fill is not None]
    assert fills == list(venue.engine.history.fills(BTC))
    account = next(e for e in events if isinstance(e, AccountUpdate))
    assert account.positions[0].quantity == D("0.1")
    conditional = [e for e in events if isinstance(e, OrderUpdate) and e.conditional]
    assert [e.order.client_order_id for e in conditional] == ["s2"]
    (config,) = [e for e in events if isinstance(e, UnknownStreamEvent)]
    assert json.loads(config.raw)["ac"] == {"s": BTC, "l": 9}


async def test_a_new_stream_starts_from_now_like_binance(autojump_clock):
    venue = make_venue()
    await venue.create_order(market(BUY, "0.1", "old1"))
    await trio.sleep(1)
    async with recording(venue) as got:
        await venue.create_order(market(BUY, "0.1", "new1"))
    orders = [e.order.client_order_id for _, e in got if isinstance(e, OrderUpdate)]
    assert set(orders) == {"new1"}
    assert fills_of(got) == ["2"]


async def test_leaving_the_stream_ends_the_iterator(autojump_clock):
    venue = make_venue()
    async with venue.user_stream() as stream:
        first = await stream.__anext__()
        assert isinstance(first, StreamConnected)
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


# ---------------------------------------------------------------------------- request faults


async def test_dropped_request_times_out_ambiguously_and_nothing_happened(autojump_clock):
    venue = make_venue(FaultSpec(0, 5, K.DROP_REQUEST, operations={"create"}))
    err = await venue_error(venue.create_order(limit(BUY, "0.1", "59000", "drop1")))
    assert (err.error_class, err.verdict.reason) == (ErrorClass.AMBIGUOUS, "transport_after_write")
    assert trio.current_time() == pytest.approx(10.0)  # the client's timeout
    assert accepted(venue, "drop1") == []
    missing = await venue_error(venue.query_order(BTC, client_order_id="drop1"))
    assert missing.verdict.reason == "order_not_found"


async def test_lost_response_times_out_ambiguously_but_the_order_exists(autojump_clock):
    venue = make_venue(FaultSpec(0, 5, K.LOSE_RESPONSE, operations={"create"}))
    err = await venue_error(venue.create_order(limit(BUY, "0.1", "59000", "lost1")))
    assert err.error_class is ErrorClass.AMBIGUOUS
    assert len(accepted(venue, "lost1")) == 1
    found = await venue.query_order(BTC, client_order_id="lost1")
    assert found.status is VenueOrderStatus.NEW
    # Resending instead of querying meets the open order: -4116 proves it exists.
    resend = await venue_error(venue.create_order(limit(BUY, "0.1", "59000", "lost1")))
    assert (resend.code, resend.verdict.order_exists) == (-4116, True)


async def test_a_lost_read_is_merely_retryable(autojump_clock):
    venue = make_venue(FaultSpec(0, 5, K.LOSE_RESPONSE, operations={"positions"}))
    err = await venue_error(venue.positions())
    assert err.error_class is ErrorClass.RETRYABLE


@pytest.mark.parametrize(
    ("kind", "placed"), [(K.UNKNOWN_503_PLACED, True), (K.UNKNOWN_503_NOT_PLACED, False)]
)
async def test_unknown_503_is_ambiguous_whether_or_not_it_was_placed(autojump_clock, kind, placed):
    venue = make_venue(FaultSpec(0, 5, kind))
    err = await venue_error(venue.create_order(market(BUY, "0.1", "u1")))
    assert (err.error_class, err.http_status, err.code, err.verdict.reason) == (
        ErrorClass.AMBIGUOUS,
        503,
        -1000,
        "unknown_error_503",
    )
    assert len(accepted(venue, "u1")) == int(placed)
    assert len(venue.engine.history.fills(BTC)) == (1 if placed else 0)


@pytest.mark.parametrize("executed", [True, False])
@pytest.mark.parametrize(
    ("kind", "http", "code", "reason"),
    [
        (K.ERROR_1006, 503, -1006, "unexpected_response"),
        (K.ERROR_1007, 408, -1007, "backend_timeout"),
    ],
)
async def test_1006_and_1007_leave_the_outcome_unknown(
    autojump_clock, kind, http, code, reason, executed
):
    venue = make_venue(FaultSpec(0, 5, kind, params={"executed": executed}))
    err = await venue_error(venue.create_order(limit(BUY, "0.1", "59000", "x1")))
    assert (err.error_class, err.http_status, err.code, err.verdict.reason) == (
        ErrorClass.AMBIGUOUS,
        http,
        code,
        reason,
    )
    assert len(accepted(venue, "x1")) == int(executed)


@pytest.mark.parametrize(
    ("variant", "code", "reason"),
    [
        ("service_unavailable", None, "service_unavailable_503"),
        ("internal_error", -1001, "internal_error"),
        ("server_busy", -1008, "server_busy"),
    ],
)
async def test_documented_503_failures_are_retryable_and_not_executed(
    autojump_clock, variant, code, reason
):
    venue = make_venue(FaultSpec(0, 5, K.SERVICE_UNAVAILABLE_503, params={"variant": variant}))
    err = await venue_error(venue.create_order(market(BUY, "0.1", "su1")))
    assert (err.error_class, err.http_status, err.code, err.verdict.reason) == (
        ErrorClass.RETRYABLE,
        503,
        code,
        reason,
    )
    assert accepted(venue, "su1") == []
    await trio.sleep(5)
    assert (await venue.create_order(market(BUY, "0.1", "su1"))).status is VenueOrderStatus.FILLED


async def test_recv_window_latency_is_slow_then_retryable(autojump_clock):
    venue = make_venue(FaultSpec(0, 5, K.RECV_WINDOW_LATENCY, params={"latency_s": 7.0}))
    err = await venue_error(venue.create_order(market(BUY, "0.1", "rw1")))
    assert trio.current_time() == pytest.approx(7.0)
    assert (err.error_class, err.code) == (ErrorClass.RETRYABLE, -1021)
    assert accepted(venue, "rw1") == []


async def test_rate_limit_storm_asks_to_come_back_when_it_ends(autojump_clock):
    venue = make_venue(FaultSpec(0, 30, K.RATE_LIMIT_429))
    await trio.sleep(12)
    err = await venue_error(venue.create_order(market(BUY, "0.1", "rl1")))
    assert (err.error_class, err.http_status, err.code) == (ErrorClass.RETRYABLE, 429, -1003)
    assert err.verdict.backoff_hint_s == pytest.approx(18.0)
    read = await venue_error(venue.open_orders())
    assert read.http_status == 429
    await trio.sleep(err.verdict.backoff_hint_s or 0)
    assert (await venue.create_order(market(BUY, "0.1", "rl1"))).filled_qty == D("0.1")


async def test_ip_ban_blocks_every_call_until_it_lifts(autojump_clock):
    venue = make_venue(FaultSpec(0, 120, K.IP_BAN_418))
    errors = [
        await venue_error(venue.create_order(market(BUY, "0.1", "ban1"))),
        await venue_error(venue.query_order(BTC, client_order_id="ban1")),
        await venue_error(venue.positions()),
        await venue_error(venue.server_time()),
    ]
    assert {(e.http_status, e.verdict.reason) for e in errors} == {(418, "ip_banned")}
    assert errors[0].verdict.backoff_hint_s == pytest.approx(120.0)
    assert f"banned until {venue.engine.venue_time_ms(120.0)}" in errors[0].message
    await trio.sleep(120)
    assert await venue.positions()


async def test_cancel_answered_unknown_while_the_order_stays_live(autojump_clock):
    venue = make_venue(FaultSpec(1, 2, K.CANCEL_UNKNOWN_BUT_LIVE))
    placed = await venue.create_order(limit(BUY, "0.1", "59000", "live1"))
    await trio.sleep(1)
    err = await venue_error(venue.cancel_order(BTC, order_id=placed.order_id))
    assert (err.error_class, err.code, err.verdict.reason) == (
        ErrorClass.IDEMPOTENT_SAFE,
        -2011,
        "cancel_not_open",
    )
    # I3: the cancel "succeeded" by the table, but the status check says it is still open.
    assert [o.order_id for o in await venue.open_orders(BTC)] == [placed.order_id]
    assert (await venue.query_order(BTC, order_id=placed.order_id)).status is VenueOrderStatus.NEW
    assert venue.engine.history.closures() == ()
    await trio.sleep(1)
    assert (await venue.cancel_order(BTC, order_id=placed.order_id)).status is (
        VenueOrderStatus.CANCELED
    )


async def test_fill_after_cancel_full_the_cancel_finds_a_filled_order(autojump_clock):
    venue = make_venue(FaultSpec(1, 2, K.FILL_AFTER_CANCEL))
    placed = await venue.create_order(limit(BUY, "0.5", "59000", "fac1"))
    await trio.sleep(1)
    err = await venue_error(venue.cancel_order(BTC, order_id=placed.order_id))
    assert (err.error_class, err.code) == (ErrorClass.IDEMPOTENT_SAFE, -2011)
    assert err.verdict.order_may_exist
    final = await venue.query_order(BTC, order_id=placed.order_id)
    assert (final.status, final.filled_qty) == (VenueOrderStatus.FILLED, D("0.5"))
    assert sum(f.quantity for f in await venue.user_trades(BTC)) == D("0.5")
    assert (await venue.positions())[0].quantity == D("0.5")


async def test_fill_after_cancel_partial_cancels_with_an_executed_quantity(autojump_clock):
    venue = make_venue(FaultSpec(1, 2, K.FILL_AFTER_CANCEL, params={"mode": "partial"}))
    placed = await venue.create_order(limit(SELL, "0.5", "61000", "fac2"))
    await trio.sleep(1)
    canceled = await venue.cancel_order(BTC, client_order_id="fac2")
    assert (canceled.order_id, canceled.status, canceled.filled_qty) == (
        placed.order_id,
        VenueOrderStatus.CANCELED,
        D("0.2"),
    )
    assert (await venue.positions())[0].quantity == D("-0.2")


async def test_fill_after_cancel_on_a_stop_finds_it_triggered(autojump_clock):
    venue = make_venue(FaultSpec(1, 2, K.FILL_AFTER_CANCEL))
    algo = await venue.create_order(stop(OrderType.STOP_MARKET, SELL, "59000", "fac3", qty="0.1"))
    await trio.sleep(1)
    err = await venue_error(venue.cancel_order(BTC, order_id=algo.order_id, conditional=True))
    assert err.code == -2011
    after = await venue.query_order(BTC, order_id=algo.order_id, conditional=True)
    assert after.status is VenueOrderStatus.FILLED


async def test_maintenance_fails_requests_and_cuts_the_stream(autojump_clock):
    venue = make_venue(FaultSpec(5, 10, K.MAINTENANCE))
    async with recording(venue) as got:
        await trio.sleep(6)
        err = await venue_error(venue.create_order(market(BUY, "0.1", "mt1")))
        assert (err.error_class, err.http_status, err.code) == (ErrorClass.RETRYABLE, 503, -1001)
        assert (await venue_error(venue.positions())).code == -1001
        await trio.sleep(5)
        assert (await venue.create_order(market(BUY, "0.1", "mt1"))).status is (
            VenueOrderStatus.FILLED
        )
    (gap,) = gaps_of(got)
    assert gap.reason == "maintenance"
    assert gap.started_at <= 5.0
    assert gap.ended_at >= 10.0
    assert fills_of(got) == ["1"]  # the fill after the window arrives normally


async def test_faults_outside_their_window_do_not_fire(autojump_clock):
    venue = make_venue(FaultSpec(5, 6, K.DROP_REQUEST), FaultSpec(5, 6, K.STREAM_DROP))
    async with recording(venue) as got:
        await trio.sleep(1)
        await venue.create_order(market(BUY, "0.1", "w1"))
        await trio.sleep(6)
        await venue.create_order(market(BUY, "0.1", "w2"))
    assert fills_of(got) == ["1", "2"]
    assert venue.injector is not None
    assert venue.injector.injected == ()


# ---------------------------------------------------------------------------- stream faults


async def test_stream_duplicate_delivers_a_fill_twice(autojump_clock):
    venue = make_venue(FaultSpec(0, 5, K.STREAM_DUPLICATE))
    async with recording(venue) as got:
        await venue.create_order(market(BUY, "0.1", "dup1"))
    assert fills_of(got) == ["1", "1"]
    assert len(venue.engine.history.fills()) == 1


async def test_stream_reorder_delivers_events_out_of_order(autojump_clock):
    venue = make_venue(FaultSpec(0, 5, K.STREAM_REORDER, params={"max_delay_s": 1.0}), seed=3)
    async with recording(venue) as got:
        for i in range(8):
            await venue.create_order(limit(BUY, "0.01", str(59000 - i), f"ro{i}"))
        await trio.sleep(1.5)
    delivered = [e.order.client_order_id for _, e in got if isinstance(e, OrderUpdate)]
    assert sorted(delivered) == [f"ro{i}" for i in range(8)]
    assert delivered != sorted(delivered)


async def test_stream_delay_holds_an_event_back(autojump_clock):
    venue = make_venue(FaultSpec(0, 5, K.STREAM_DELAY, params={"delay_s": 2.0}))
    async with recording(venue) as got:
        await trio.sleep(1.013)
        placed = await venue.create_order(market(BUY, "0.1", "dl1"))
        await trio.sleep(3)
    created = engine_seconds(venue, placed.venue_time_ms)
    (arrived,) = [t for t, e in got if isinstance(e, OrderUpdate) and e.fill is not None]
    assert created + 2.0 <= arrived < created + 2.0 + 0.1


async def test_stream_drop_loses_a_fill_silently(autojump_clock):
    venue = make_venue(FaultSpec(0, 5, K.STREAM_DROP))
    async with recording(venue) as got:
        await venue.create_order(market(BUY, "0.1", "sd1"))
    assert fills_of(got) == []
    assert gaps_of(got) == []  # nothing announces the loss: only a backfill finds it
    assert [f.trade_id for f in await venue.user_trades(BTC)] == ["1"]


async def test_stream_disconnect_loses_a_fill_and_reports_a_gap_covering_it(autojump_clock):
    venue = make_venue(FaultSpec(5, 8, K.STREAM_DISCONNECT))
    async with recording(venue) as got:
        await trio.sleep(1.013)
        await venue.create_order(market(BUY, "0.1", "before"))
        await trio.sleep(5)
        during = await venue.create_order(market(BUY, "0.1", "during"))
        await trio.sleep(4)
        await venue.create_order(market(BUY, "0.1", "after"))
    assert fills_of(got) == ["1", "3"]
    events = [e for _, e in got]
    (gap,) = gaps_of(got)
    reconnect = events.index(StreamConnected(at=gap.ended_at, reconnect=True))
    assert events[reconnect + 1] == gap
    fill_time = engine_seconds(venue, during.venue_time_ms)
    assert gap.started_at <= fill_time <= gap.ended_at
    assert (gap.reason, gap.ended_at >= 8.0) == ("stream_disconnect", True)
    backfill = await venue.user_trades(BTC, from_trade_id="2")
    assert [(f.trade_id, f.client_order_id) for f in backfill] == [("2", "during"), ("3", "after")]


async def test_listen_key_expiry_closes_the_stream_until_the_key_is_recreated(autojump_clock):
    venue = make_venue(FaultSpec(5, 5.5, K.LISTEN_KEY_EXPIRY))
    injector = venue.injector
    assert injector is not None
    async with recording(venue) as got:
        await trio.sleep(5.213)
        lost = await venue.create_order(market(BUY, "0.1", "lk1"))
        assert expired(injector) is True
        keepalive = injector.before_request("keepalive", None, trio.current_time())
        assert keepalive is not None
        assert keepalive.error is not None
        assert keepalive.error.code == -1125
        await trio.sleep(3)
        await venue.create_order(market(BUY, "0.1", "lk2"))
    assert expired(injector) is False  # the stream re-created it to reconnect
    (gap,) = gaps_of(got)
    assert gap.reason == "listen_key_expired"
    assert gap.started_at <= engine_seconds(venue, lost.venue_time_ms) <= gap.ended_at
    assert fills_of(got) == ["2"]


async def test_listen_key_creation_faults_delay_the_reconnect(autojump_clock):
    venue = make_venue(
        FaultSpec(2, 3, K.STREAM_DISCONNECT),
        FaultSpec(0.5, 6, K.UNKNOWN_503_NOT_PLACED, operations={"listen_key"}),
    )
    async with recording(venue) as got:
        await trio.sleep(8)
    (gap,) = gaps_of(got)
    assert gap.ended_at >= 6.0  # no key could be created before the 503s stopped
    assert venue.injector is not None
    assert any(e.op == "listen_key" for e in venue.injector.injected)


def downs_of(got: list[tuple[float, StreamEvent]]) -> list[tuple[float, StreamDisconnected]]:
    return [(t, e) for t, e in got if isinstance(e, StreamDisconnected)]


async def test_a_disconnect_is_reported_at_once_and_its_gap_follows_the_reconnect(
    autojump_clock,
):
    venue = make_venue(FaultSpec(5, 8, K.STREAM_DISCONNECT))
    async with recording(venue) as got:
        await trio.sleep(1.013)
        await venue.create_order(market(BUY, "0.1", "before"))
        await trio.sleep(4.5)
        # Between the disconnect and the reconnect: the consumer already knows it is blind.
        ((arrived, down),) = downs_of(got)
        during = await venue.create_order(market(BUY, "0.1", "during"))
        await trio.sleep(4)
        await venue.create_order(market(BUY, "0.1", "after"))
    # Reported at the first poll inside the window, and delivered the instant it was made.
    assert 5.0 <= down.at < 5.0 + venue.config.poll_interval_s + 1e-9
    assert arrived == down.at
    (gap,) = gaps_of(got)
    # One outage, one story: the same lost-since instant, the same reason, both ends.
    assert (down.since, down.reason) == (gap.started_at, gap.reason)
    assert down.reason == "stream_disconnect"
    assert down.since <= down.at < 8.0 <= gap.ended_at
    events = [e for _, e in got]
    at_down = events.index(down)
    reconnect = events.index(StreamConnected(at=gap.ended_at, reconnect=True))
    # Nothing arrives over a dead connection: the reconnect and its gap come next, in order.
    assert events[at_down + 1 : at_down + 3] == [events[reconnect], gap]
    assert fills_of(got) == ["1", "3"]  # "during" is lost with the connection
    assert down.at <= engine_seconds(venue, during.venue_time_ms) <= gap.ended_at


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (K.STREAM_DISCONNECT, "stream_disconnect"),
        (K.MAINTENANCE, "maintenance"),
        (K.LISTEN_KEY_EXPIRY, "listen_key_expired"),
    ],
)
async def test_every_outage_is_reported_once_before_its_reconnect(autojump_clock, kind, reason):
    # Two outages of the same kind. A disconnect or maintenance window 12-30 s outlasts
    # many reconnect attempts (one a second): each failed attempt is not a new outage.
    venue = make_venue(FaultSpec(3, 4, kind), FaultSpec(12, 30, kind))
    async with recording(venue) as got:
        await trio.sleep(40)
    downs = [e for _, e in downs_of(got)]
    gaps = gaps_of(got)
    assert [d.reason for d in downs] == [reason, reason]
    assert [g.reason for g in gaps] == [reason, reason]
    assert [d.since for d in downs] == [g.started_at for g in gaps]
    assert downs[0].at < gaps[0].ended_at < downs[1].at < gaps[1].ended_at
    # Health events only: connected, then (down, reconnected, gap) per outage, in that order.
    health = [
        type(e).__name__
        for _, e in got
        if isinstance(e, StreamConnected | StreamDisconnected | StreamGap)
    ]
    outage = ["StreamDisconnected", "StreamConnected", "StreamGap"]
    assert health == ["StreamConnected", *outage, *outage]


async def test_a_slow_reconnect_reports_one_disconnect_however_many_attempts_fail(
    autojump_clock,
):
    # No listen key can be created until 6 s: every attempt in between fails.
    venue = make_venue(
        FaultSpec(2, 3, K.STREAM_DISCONNECT),
        FaultSpec(0.5, 6, K.UNKNOWN_503_NOT_PLACED, operations={"listen_key"}),
    )
    async with recording(venue) as got:
        await trio.sleep(8)
    ((_, down),) = downs_of(got)
    (gap,) = gaps_of(got)
    assert venue.injector is not None
    attempts = [e for e in venue.injector.injected if e.op == "listen_key"]
    assert len(attempts) >= 2  # the reconnect really did fail more than once
    assert down.since == gap.started_at
    assert down.at < 3.0
    assert gap.ended_at >= 6.0


async def test_a_healthy_stream_reports_no_disconnect(autojump_clock):
    # Lossy but connected: drops and delays are not outages (only a backfill finds a drop).
    venue = make_venue(FaultSpec(0, 5, K.STREAM_DROP), FaultSpec(5, 10, K.STREAM_DELAY))
    async with recording(venue) as got:
        await venue.create_order(market(BUY, "0.1", "hs1"))
        await trio.sleep(6)
        await venue.create_order(market(BUY, "0.1", "hs2"))
        await trio.sleep(6)
    assert downs_of(got) == []
    assert gaps_of(got) == []
    assert fills_of(got) == ["2"]


async def test_snapshot_lag_rest_reads_trail_the_stream(autojump_clock):
    venue = make_venue(FaultSpec(0, 60, K.SNAPSHOT_LAG, params={"lag_s": 2.0}))
    async with recording(venue) as got:
        await trio.sleep(1.013)
        placed = await venue.create_order(limit(BUY, "0.1", "59000", "lag1"))
        await trio.sleep(0.5)
        streamed = [e for _, e in got if isinstance(e, OrderUpdate)]
        assert [e.order.order_id for e in streamed] == [placed.order_id]  # the stream knows
        assert await venue.open_orders(BTC) == []  # REST does not yet
        missing = await venue_error(venue.query_order(BTC, order_id=placed.order_id))
        assert missing.verdict.reason == "order_not_found"
        snapshot = await take_snapshot(venue, trio.current_time())
        assert snapshot.open_orders == ()
        await trio.sleep(2)
        assert [o.order_id for o in await venue.open_orders(BTC)] == [placed.order_id]
        await venue.create_order(market(BUY, "0.2", "lag2"))
        assert (await venue.positions())[0].quantity == 0
        await trio.sleep(2.1)
        assert (await venue.positions())[0].quantity == D("0.2")
    assert venue.engine.open_orders(BTC)[0].order_id == placed.order_id


# ---------------------------------------------------------------------------- determinism


async def scripted_session(venue: InProcessVenue) -> list[str]:
    """A fixed trading script; returns what each call answered (or how it failed)."""
    answers: list[str] = []

    async def attempt(label: str, coro) -> None:
        try:
            answers.append(f"{label}: {await coro!r}")
        except VenueError as err:
            answers.append(f"{label}: {err.error_class} {err.verdict.reason} {err.code}")

    async with recording(venue) as got:
        for i in range(6):
            await trio.sleep(1.013)
            await attempt("limit", venue.create_order(limit(BUY, "0.5", "59500", f"l{i}")))
            await attempt("market", venue.create_order(market(BUY, "0.1", f"m{i}")))
            await attempt("query", venue.query_order(BTC, client_order_id=f"l{i}"))
            await trio.sleep(2.017)
            await attempt("cancel", venue.cancel_order(BTC, client_order_id=f"l{i}"))
            await attempt("open", venue.open_orders())
            await attempt("positions", venue.positions())
    answers.extend(f"{t:.3f} {e!r}" for t, e in got)
    return answers


def run_session(schedule: tuple[FaultSpec, ...], seed: int):
    engine = make_engine(symbol=still_symbol(volatility_bps=3.0))
    injector = FaultInjector(schedule, random.Random(seed), FaultConfig(request_timeout_s=1.5))
    venue = InProcessVenue(
        engine, injector, clock=trio.current_time, config=InProcessConfig(reconnect_delay_s=0.5)
    )
    answers = trio.run(scripted_session, venue, clock=trio.testing.MockClock(autojump_threshold=0))
    return answers, injector.injected, engine.history.records


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fault_specs(horizon=20.0), max_size=4).map(tuple), st.integers(0, 2**32))
def test_same_seed_and_schedule_reproduce_the_session_and_faults_stay_in_their_windows(
    schedule, seed
):
    answers, injected, history = run_session(schedule, seed)
    again = run_session(schedule, seed)
    assert again == (answers, injected, history)
    for entry in injected:
        spec = schedule[entry.spec_index]
        if entry.kind is K.LISTEN_KEY_EXPIRY and entry.op == "keepalive":
            continue
        assert spec.start <= entry.at < spec.end


def test_the_session_is_sensitive_to_its_schedule():
    # Guards the determinism property above against a script no fault can touch.
    clean = run_session((), 1)
    faulty = run_session((FaultSpec(0, 20, K.LOSE_RESPONSE, operations={"create"}),), 1)
    assert clean[0] != faulty[0]
    assert {e.kind for e in faulty[1]} == {K.LOSE_RESPONSE}
