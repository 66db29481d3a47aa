"""The Binance adapter against the loopback simulated exchange, over real sockets.

Neither side is mocked: :class:`~scalper.venues.binance.client.BinanceVenue` signs and
sends with httpx over TCP and reads the user stream over a real WebSocket;
:func:`~scalper.venues.sim.server.serve_sim_exchange` verifies, executes and answers in
Binance's wire format. The engine's history is the ground truth the adapter's view is
checked against (I4: the wire is evidence, the history is truth).

Clocks: both sides run on trio's real clock. The client's wall clock is trio time plus a
fixed epoch offset read once from the server at start (so the two agree to the
millisecond without either reading ``time.time``); a skewed client adds a constant.

Book arithmetic (BTCUSDT, still price, no slippage): mid 60000, bid 59997, ask 60003.
"""

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import attrs
import httpx
import pytest
import trio

from scalper.core.errors import ErrorClass, Operation
from scalper.core.model import OrderRequest, VenueOrderStatus
from scalper.core.types import OrderType, Side, TimeInForce
from scalper.venues.base import (
    OrderUpdate,
    StreamConnected,
    StreamDisconnected,
    StreamEvent,
    StreamGap,
    Venue,
    VenueError,
)
from scalper.venues.binance.client import BinanceVenue
from scalper.venues.binance.config import BinanceConfig
from scalper.venues.binance.signing import ApiCredentials
from scalper.venues.sim.engine import SimConfig
from scalper.venues.sim.ratelimit import RateLimitConfig
from scalper.venues.sim.server import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    SimServerConfig,
    SimServerHandle,
    serve_sim_exchange,
)
from tests.venues.sim.simkit import still_symbol

D = Decimal
BTC = "BTCUSDT"
CREDS = ApiCredentials(DEMO_API_KEY, DEMO_API_SECRET.encode())
TEN_MINUTES_MS = 10 * 60 * 1000
FAST_STREAM: dict[str, Any] = {
    "reconnect_backoff_initial_s": 0.01,
    "reconnect_backoff_max_s": 0.05,
}


def server_config(**changes: Any) -> SimServerConfig:
    """One still BTCUSDT, no slippage, a fast ticker; ``changes`` override fields."""
    engine = SimConfig(symbols=(still_symbol(),), slippage=None)
    base = SimServerConfig(symbols=(BTC,), engine=engine, tick_interval_s=0.02)
    return attrs.evolve(base, **changes)


@attrs.define
class Rig:
    """A running loopback server and a way to build adapters pointed at it."""

    nursery: trio.Nursery
    handle: SimServerHandle
    epoch_offset_ms: int
    sent: list[str] = attrs.field(factory=list)

    def wall_clock_ms(self, skew_ms: int = 0) -> Callable[[], int]:
        """The client's wall clock: trio time on the server's epoch, plus ``skew_ms``."""
        return lambda: round(trio.current_time() * 1000) + self.epoch_offset_ms + skew_ms

    def venue(
        self,
        *,
        credentials: ApiCredentials = CREDS,
        skew_ms: int = 0,
        **overrides: Any,
    ) -> BinanceVenue:
        """An adapter on its own httpx client; every request it sends is logged in ``sent``."""

        async def log(request: httpx.Request) -> None:
            self.sent.append(f"{request.method} {request.url.path}")

        http = httpx.AsyncClient(timeout=5.0, event_hooks={"request": [log]})
        self.nursery.start_soon(_close_on_cancel, http)
        config = BinanceConfig.custom(
            self.handle.rest_url, self.handle.private_ws_url, **(FAST_STREAM | overrides)
        )
        return BinanceVenue(
            config, credentials, wall_clock_ms=self.wall_clock_ms(skew_ms), http=http
        )


async def _close_on_cancel(http: httpx.AsyncClient) -> None:
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await http.aclose()


async def start(nursery: trio.Nursery, config: SimServerConfig) -> Rig:
    handle: SimServerHandle = await nursery.start(serve_sim_exchange, config)
    offset = handle.app.venue_time_ms() - round(trio.current_time() * 1000)
    return Rig(nursery, handle, offset)


@pytest.fixture
async def rig(nursery: trio.Nursery) -> AsyncIterator[Rig]:
    r = await start(nursery, server_config())
    yield r
    r.handle.stop()


def limit_buy(coid: str, price: str = "59000", qty: str = "0.010") -> OrderRequest:
    return OrderRequest(
        symbol=BTC,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        client_order_id=coid,
        quantity=D(qty),
        price=D(price),
        time_in_force=TimeInForce.GTC,
    )


def market(side: Side, coid: str, qty: str = "0.010") -> OrderRequest:
    return OrderRequest(
        symbol=BTC,
        side=side,
        order_type=OrderType.MARKET,
        client_order_id=coid,
        quantity=D(qty),
    )


async def next_fill_update(
    events: AsyncIterator[StreamEvent], within_s: float = 3.0
) -> OrderUpdate:
    """The next OrderUpdate carrying a fill; fails on a gap (the stream must stay whole)."""
    with trio.fail_after(within_s):
        async for event in events:
            assert not isinstance(event, StreamGap | StreamConnected), event
            if isinstance(event, OrderUpdate) and event.fill is not None:
                return event
    raise AssertionError("stream ended")


def server_listen_key(rig: Rig) -> str | None:
    """The server's active listen key, read fresh (a property mypy would narrow)."""
    return rig.handle.app.listen_key


async def first_event(events: AsyncIterator[StreamEvent]) -> StreamEvent:
    with trio.fail_after(3):
        async for event in events:
            return event
    raise AssertionError("stream ended")


# --------------------------------------------------------------------------- orders


async def test_the_adapter_is_a_venue(rig: Rig) -> None:
    venue: Venue = rig.venue()
    assert venue.name == "binance_usdm"


async def test_limit_order_create_query_list_cancel_and_cancel_again(rig: Rig) -> None:
    venue = rig.venue()
    created = await venue.create_order(limit_buy("rt-limit-1"))
    assert created.status is VenueOrderStatus.NEW
    assert created.client_order_id == "rt-limit-1"
    assert (created.price, created.quantity, created.filled_qty) == (D("59000"), D("0.010"), D(0))

    by_coid = await venue.query_order(BTC, client_order_id="rt-limit-1")
    by_id = await venue.query_order(BTC, order_id=created.order_id)
    assert by_coid.order_id == by_id.order_id == created.order_id
    assert by_id.client_order_id == "rt-limit-1"
    assert by_coid.status is VenueOrderStatus.NEW

    listed = await venue.open_orders(BTC)
    assert [o.order_id for o in listed] == [created.order_id]
    assert await venue.open_orders() == listed  # all symbols

    cancelled = await venue.cancel_order(BTC, client_order_id="rt-limit-1")
    assert cancelled.order_id == created.order_id
    assert cancelled.status is VenueOrderStatus.CANCELED
    queried = await venue.query_order(BTC, order_id=created.order_id)
    assert queried.status is VenueOrderStatus.CANCELED
    assert await venue.open_orders(BTC) == []

    with pytest.raises(VenueError) as again:
        await venue.cancel_order(BTC, order_id=created.order_id)
    assert again.value.code == -2011
    assert again.value.error_class is ErrorClass.IDEMPOTENT_SAFE
    assert again.value.verdict.order_may_exist
    # The engine agrees: one order, accepted once, never filled.
    assert [a.request.client_order_id for a in rig.handle.engine.history.accepted()] == [
        "rt-limit-1"
    ]
    assert list(rig.handle.engine.history.fills(BTC)) == []


async def test_duplicate_client_order_id_on_an_open_order_proves_it_exists(rig: Rig) -> None:
    venue = rig.venue()
    first = await venue.create_order(limit_buy("rt-dup"))
    with pytest.raises(VenueError) as dup:
        await venue.create_order(limit_buy("rt-dup", price="58000"))
    assert dup.value.code == -4116
    assert dup.value.error_class is ErrorClass.IDEMPOTENT_SAFE
    assert dup.value.verdict.order_exists
    assert dup.value.operation is Operation.CREATE
    still = await venue.open_orders(BTC)
    assert [(o.order_id, o.price) for o in still] == [(first.order_id, D("59000"))]


async def test_market_fill_shows_in_positions_trades_and_balances(rig: Rig) -> None:
    venue = rig.venue()
    before = {b.asset: b for b in await venue.balances()}
    order = await venue.create_order(market(Side.BUY, "rt-mkt-1"))
    assert order.client_order_id == "rt-mkt-1"

    positions = {p.symbol: p for p in await venue.positions()}
    assert positions[BTC].quantity == D("0.010")
    assert positions[BTC].entry_price == D("60003")  # bought at the ask

    truth = list(rig.handle.engine.history.fills(BTC))
    trades = await venue.user_trades(BTC)
    assert len(trades) == len(truth) == 1
    fill = trades[0]
    assert fill.trade_id == truth[0].trade_id
    assert fill.client_order_id == ""  # userTrades carries none: join on order_id
    assert fill.order_id == order.order_id
    assert (fill.side, fill.quantity, fill.price) == (Side.BUY, D("0.010"), D("60003"))
    assert fill.fee == truth[0].fee > 0
    assert await venue.user_trades(BTC, from_trade_id=str(int(fill.trade_id) + 1)) == []

    after = {b.asset: b for b in await venue.balances()}
    engine_usdt = {b.asset: b for b in rig.handle.engine.balances()}["USDT"]
    assert after["USDT"].wallet_balance == engine_usdt.wallet_balance
    assert after["USDT"].wallet_balance == before["USDT"].wallet_balance - fill.fee


async def test_conditional_orders_round_trip_through_the_algo_endpoints(rig: Rig) -> None:
    venue = rig.venue()
    await venue.create_order(market(Side.BUY, "rt-entry"))
    close_stop = OrderRequest(
        symbol=BTC,
        side=Side.SELL,
        order_type=OrderType.STOP_MARKET,
        client_order_id="rt-stop-close",
        quantity=None,
        stop_price=D("58000"),
        close_position=True,
    )
    reduce_stop = OrderRequest(
        symbol=BTC,
        side=Side.SELL,
        order_type=OrderType.STOP_MARKET,
        client_order_id="rt-stop-reduce",
        quantity=D("0.010"),
        stop_price=D("57000"),
        reduce_only=True,
    )
    placed_close = await venue.create_order(close_stop)
    placed_reduce = await venue.create_order(reduce_stop)
    assert placed_close.order_type is OrderType.STOP_MARKET
    assert placed_close.close_position
    assert placed_reduce.reduce_only
    assert rig.sent.count("POST /fapi/v1/algoOrder") == 2
    assert rig.sent.count("POST /fapi/v1/order") == 1  # only the entry

    listed = {o.client_order_id: o for o in await venue.open_orders(BTC)}
    assert set(listed) == {"rt-stop-close", "rt-stop-reduce"}
    assert listed["rt-stop-close"].stop_price == D("58000")
    queried = await venue.query_order(BTC, client_order_id="rt-stop-reduce", conditional=True)
    assert queried.order_id == placed_reduce.order_id

    cancelled = await venue.cancel_order(BTC, order_id=placed_close.order_id, conditional=True)
    assert cancelled.order_id == placed_close.order_id
    assert cancelled.status is VenueOrderStatus.CANCELED
    assert [o.client_order_id for o in await venue.open_orders(BTC)] == ["rt-stop-reduce"]
    with pytest.raises(VenueError) as again:
        await venue.cancel_order(BTC, order_id=placed_close.order_id, conditional=True)
    assert again.value.code == -2011
    assert again.value.error_class is ErrorClass.IDEMPOTENT_SAFE


# --------------------------------------------------------------------------- user stream


async def test_stream_connects_first_then_delivers_the_fill_user_trades_report(rig: Rig) -> None:
    venue = rig.venue()
    async with venue.user_stream() as events:
        first = await first_event(events)
        assert isinstance(first, StreamConnected)
        assert not first.reconnect
        order = await venue.create_order(market(Side.BUY, "rt-streamed"))
        update = await next_fill_update(events)
    assert update.fill is not None
    assert update.order.client_order_id == "rt-streamed"
    assert update.order.order_id == order.order_id
    assert not update.conditional
    trades = await venue.user_trades(BTC)
    assert [t.trade_id for t in trades] == [update.fill.trade_id]
    # The stream and REST tell the same execution (userTrades has no client order id).
    assert trades[0] == attrs.evolve(update.fill, client_order_id="")


async def test_keepalive_keeps_a_short_lived_listen_key_alive(nursery: trio.Nursery) -> None:
    rig = await start(nursery, server_config(listen_key_ttl_s=0.4))
    venue = rig.venue(keepalive_interval_s=0.1)
    async with venue.user_stream() as events:
        assert isinstance(await first_event(events), StreamConnected)
        key = rig.handle.app.listen_key
        assert key is not None
        await trio.sleep(1.2)  # three TTLs: only the keepalives keep the key alive
        assert rig.sent.count("PUT /fapi/v1/listenKey") >= 5
        assert rig.handle.app.listen_key == key
        await venue.create_order(market(Side.BUY, "rt-kept"))
        update = await next_fill_update(events)  # same connection, no gap in between
    assert update.order.client_order_id == "rt-kept"


async def test_listen_key_keepalive_and_close_over_rest(rig: Rig) -> None:
    venue = rig.venue()
    key = await venue.create_listen_key()
    assert key == rig.handle.app.listen_key
    assert await venue.create_listen_key() == key  # one per account, extended
    await venue.keepalive_listen_key()
    await venue.close_listen_key()
    assert server_listen_key(rig) is None
    with pytest.raises(VenueError) as gone:
        await venue.keepalive_listen_key()
    assert gone.value.code == -1125
    assert key not in str(gone.value)
    assert await venue.create_listen_key() != key


async def test_expired_listen_key_is_a_gap_then_a_reconnect_on_a_new_key(
    nursery: trio.Nursery,
) -> None:
    rig = await start(nursery, server_config(listen_key_ttl_s=0.3))
    venue = rig.venue()  # keepalive every 30 min: far too late for a 0.3 s key
    async with venue.user_stream() as events:
        first = await first_event(events)
        old_key = rig.handle.app.listen_key
        down = await first_event(events)
        gap = await first_event(events)
        again = await first_event(events)
        new_key = rig.handle.app.listen_key
    assert isinstance(first, StreamConnected)
    assert isinstance(down, StreamDisconnected)
    assert down.reason == "listen_key_expired"
    assert isinstance(gap, StreamGap)
    assert gap.reason == "listen_key_expired"
    assert first.at <= gap.started_at <= gap.ended_at
    assert isinstance(again, StreamConnected)
    assert again.reconnect
    assert again.at == gap.ended_at
    assert old_key is not None
    assert new_key is not None
    assert new_key != old_key
    assert rig.sent.count("POST /fapi/v1/listenKey") == 2


# --------------------------------------------------------------------------- security and time


async def test_wrong_secret_is_fatal_minus_1022_and_nothing_executes(rig: Rig) -> None:
    venue = rig.venue(credentials=ApiCredentials(DEMO_API_KEY, b"not-the-secret"))
    with pytest.raises(VenueError) as read:
        await venue.positions()
    assert (read.value.code, read.value.error_class) == (-1022, ErrorClass.FATAL)
    with pytest.raises(VenueError) as create:
        await venue.create_order(limit_buy("rt-badsig"))
    assert (create.value.code, create.value.error_class) == (-1022, ErrorClass.FATAL)
    assert not create.value.verdict.order_may_exist
    assert "not-the-secret" not in str(create.value)
    assert list(rig.handle.engine.history.accepted()) == []


async def test_skewed_clock_is_synced_before_the_first_signed_request(rig: Rig) -> None:
    venue = rig.venue(skew_ms=TEN_MINUTES_MS)
    order = await venue.create_order(limit_buy("rt-skew-auto"))
    assert order.status is VenueOrderStatus.NEW
    assert rig.sent[0] == "GET /fapi/v1/time"  # measured before signing
    sync = venue.clock_sync
    assert sync is not None
    assert abs(sync.offset_ms + TEN_MINUTES_MS) <= max(50, sync.round_trip_ms)
    assert abs(venue.venue_time_ms() - rig.handle.app.venue_time_ms()) <= 50


async def test_skew_without_auto_sync_is_minus_1021_then_resynced(rig: Rig) -> None:
    venue = rig.venue(skew_ms=TEN_MINUTES_MS, time_sync_interval_s=0.0)
    with pytest.raises(VenueError) as skewed:
        await venue.open_orders(BTC)
    assert skewed.value.code == -1021
    assert skewed.value.error_class is ErrorClass.RETRYABLE
    # The rejection triggered one bounded re-sync; the next call goes through.
    sync = venue.clock_sync
    assert sync is not None
    assert abs(sync.offset_ms + TEN_MINUTES_MS) <= max(50, sync.round_trip_ms)
    assert await venue.open_orders(BTC) == []
    explicit = await venue.sync_time()
    assert abs(explicit.offset_ms + TEN_MINUTES_MS) <= max(50, explicit.round_trip_ms)


async def test_exchange_info_and_server_time(nursery: trio.Nursery) -> None:
    rig = await start(nursery, SimServerConfig(symbols=("BTCUSDT", "ETHUSDT")))
    venue = rig.venue()
    info = await venue.exchange_info()
    assert {s.symbol for s in info.symbols} == {"BTCUSDT", "ETHUSDT"}
    for name, engine_symbol in ((s.symbol, s) for s in rig.handle.engine.config.symbols):
        rules = info.rules_for(name)
        assert rules is not None
        assert rules.is_trading
        assert rules.tick_size == engine_symbol.filters.tick_size > 0
        assert rules.step_size == engine_symbol.filters.step_size > 0
    kinds = {r.rate_limit_type for r in info.rate_limits}
    assert {"REQUEST_WEIGHT", "ORDERS"} <= kinds
    server_ms = await venue.server_time()
    assert abs(server_ms - rig.handle.app.venue_time_ms()) <= 1000


async def test_mark_price_is_the_engines_price_path(rig: Rig) -> None:
    venue = rig.venue()
    assert await venue.mark_price(BTC) == rig.handle.engine.mark_price(BTC) == D("60000")
    rig.handle.app.set_mark_price(BTC, D("58765.4"))
    assert await venue.mark_price(BTC) == D("58765.4")
    record = await venue.premium_index(BTC)
    assert (record.symbol, record.index_price, record.last_funding_rate) == (
        BTC,
        D("58765.4"),
        D(0),
    )
    assert record.time_ms is not None
    assert abs(record.time_ms - rig.handle.app.venue_time_ms()) <= 1000
    with pytest.raises(VenueError) as unknown:
        await venue.mark_price("DOGEUSDT")
    assert (unknown.value.code, unknown.value.error_class) == (-1121, ErrorClass.FATAL)
    assert rig.sent.count("GET /fapi/v1/premiumIndex") == 4
    assert rig.handle.engine.history.accepted() == ()  # a read: nothing traded


# --------------------------------------------------------------------------- rate limit


async def test_weight_limit_is_retryable_with_a_hint_then_fails_fast(
    nursery: trio.Nursery,
) -> None:
    limits = RateLimitConfig(request_weight_per_minute=5)
    engine = SimConfig(symbols=(still_symbol(),), slippage=None, rate_limits=limits)
    rig = await start(nursery, server_config(engine=engine))
    venue = rig.venue()
    for _ in range(5):  # exactly the window's weight goes through
        assert abs(await venue.server_time() - rig.handle.app.venue_time_ms()) <= 1000
    assert venue.rate_limits.used_weight_1m == 5
    with pytest.raises(VenueError) as limited:
        await venue.server_time()
    err = limited.value
    assert (err.http_status, err.code) == (429, -1003)
    assert err.error_class is ErrorClass.RETRYABLE
    hint = err.verdict.backoff_hint_s
    assert hint is not None
    assert 0 < hint <= 60
    assert venue.rate_limits.backoff_until is not None
    assert venue.rate_limits.used_weight_1m == 5

    sent_before = len(rig.sent)
    with pytest.raises(VenueError) as fast:
        await venue.create_order(limit_buy("rt-after-429"))
    assert fast.value.verdict.reason == "rate_limited_backoff"
    assert fast.value.error_class is ErrorClass.RETRYABLE
    remaining = fast.value.verdict.backoff_hint_s
    assert remaining is not None
    assert 0 < remaining <= hint
    assert len(rig.sent) == sent_before  # refused without touching the network
    assert list(rig.handle.engine.history.accepted()) == []
