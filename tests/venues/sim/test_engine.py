"""Example tests of the simulated exchange: each one a trading situation with a known answer.

Book arithmetic used below (default BookConfig, BTCUSDT tick 0.10): with the mid at 60000
and a 1 bps spread the bid is 59997.0 and the ask 60003.0; a taker sweeps levels 0.10
apart with 0.5 BTC each; resting orders get 0.2 BTC of maker liquidity per price step.
"""

import attrs
import pytest

from scalper.core.errors_base import CoreValueError
from scalper.core.model import OrderRequest, VenueOrderStatus
from scalper.core.slippage import SlippageConfig
from scalper.core.types import OrderType, PositionMode, PositionSide, Side, TimeInForce
from scalper.venues.sim.engine import OrderRoute, SimConfig, SimEngine
from scalper.venues.sim.errors import SimRejection
from scalper.venues.sim.filters import SymbolFilters
from scalper.venues.sim.market import BookConfig
from scalper.venues.sim.ratelimit import RateKind, RateLimitConfig
from scalper.venues.sim.records import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoStatus,
    AlgoUpdate,
    CloseReason,
    ExecutionType,
    ExpireReason,
    OrderTradeUpdate,
)
from tests.venues.sim.simkit import BTC, D, limit, make_engine, market, still_symbol, stop

BUY, SELL = Side.BUY, Side.SELL
LONG, SHORT = PositionSide.LONG, PositionSide.SHORT


def rejected(fn, *args, **kwargs) -> SimRejection:
    with pytest.raises(SimRejection) as info:
        fn(*args, **kwargs)
    return info.value


def order_events(engine: SimEngine, order_id: str) -> list[OrderTradeUpdate]:
    return [
        e
        for e in engine.events_since(0)
        if isinstance(e, OrderTradeUpdate) and e.order.order_id == order_id
    ]


# --------------------------------------------------------------------------- MARKET


def test_market_buy_sweeps_levels_in_several_trades_and_pays_taker_fees():
    engine = make_engine()
    order = engine.create_order(market(BUY, "1.2", "m1"), now=1.0)

    assert order.status is VenueOrderStatus.FILLED
    fills = engine.history.fills(BTC)
    assert [(f.quantity, f.price) for f in fills] == [
        (D("0.5"), D("60003.0")),
        (D("0.5"), D("60003.1")),
        (D("0.2"), D("60003.2")),
    ]
    assert [f.trade_id for f in fills] == ["1", "2", "3"]
    assert all(not f.maker for f in fills)
    assert [f.fee for f in fills] == [f.quantity * f.price * D(5) / D(10000) for f in fills]
    vwap = sum(f.quantity * f.price for f in fills) / D("1.2")
    assert order.avg_price == vwap
    (position,) = engine.positions()
    assert position.quantity == D("1.2")
    assert position.entry_price == vwap
    statuses = [e.order.status for e in order_events(engine, order.order_id)]
    assert statuses == [
        VenueOrderStatus.NEW,
        VenueOrderStatus.PARTIALLY_FILLED,
        VenueOrderStatus.PARTIALLY_FILLED,
        VenueOrderStatus.FILLED,
    ]


def test_market_remainder_beyond_book_depth_expires():
    engine = make_engine(symbol=still_symbol(book=BookConfig(levels=2)))
    order = engine.create_order(market(SELL, "1.5", "m1"), now=1.0)

    assert order.status is VenueOrderStatus.EXPIRED
    assert order.filled_qty == D("1.0")
    last = order_events(engine, order.order_id)[-1]
    assert last.execution_type is ExecutionType.EXPIRED
    assert last.expire_reason is ExpireReason.MARKET_REMAINDER
    (closed,) = engine.history.closures()
    assert closed.reason is CloseReason.MARKET_REMAINDER
    assert engine.position_qty(BTC) == D("-1.0")


def test_core_slippage_presets_move_taker_fills_by_symbol_and_session():
    # The engine's epoch starts at 2026-01-01 00:00 UTC: t=1 is Asia, t=8h is Europe.
    presets = SlippageConfig(
        default_bps=D(50), presets={BTC: {"asia": D(10), "eu": D(0), "us": D(0), "overnight": D(0)}}
    )
    engine = make_engine(symbol=still_symbol(step_seconds=3600.0), slippage=presets)
    engine.create_order(market(BUY, "0.1", "b"), now=1.0)
    engine.create_order(market(SELL, "0.1", "s"), now=2.0)
    engine.create_order(market(BUY, "0.1", "eu"), now=8 * 3600.0)
    buy, sell, eu_buy = engine.history.fills(BTC)
    # ask 60003.0 * 1.001 = 60063.003 -> 60063.1; bid 59997.0 * 0.999 = 59937.003 -> 59937.0
    assert buy.price == D("60063.1")
    assert sell.price == D("59937.0")
    assert eu_buy.price == D("60003.0")


def test_slippage_never_pushes_a_limit_order_past_its_price():
    presets = SlippageConfig(default_bps=D(10), presets={})
    engine = make_engine(slippage=presets)
    order = engine.create_order(limit(BUY, "0.1", "60003.0", "l"), now=1.0)
    assert order.status is VenueOrderStatus.FILLED
    assert engine.history.fills(BTC)[0].price == D("60003.0")


# --------------------------------------------------------------------------- LIMIT


def test_resting_limit_fills_as_maker_in_partial_fills_when_price_crosses():
    engine = make_engine()
    order = engine.create_order(limit(BUY, "0.5", "59990.0", "l1"), now=1.0)
    assert order.status is VenueOrderStatus.NEW

    engine.advance_to(5.0)  # still market: nothing crosses
    assert engine.query_order(BTC, order_id=order.order_id).filled_qty == 0

    engine.set_mark_price(BTC, D("59985"), now=10.0)  # ask 59988.0 <= 59990.0
    assert engine.query_order(BTC, order_id=order.order_id).filled_qty == D("0.2")
    engine.advance_to(11.0)
    assert engine.query_order(BTC, order_id=order.order_id).filled_qty == D("0.4")
    engine.advance_to(12.0)
    done = engine.query_order(BTC, order_id=order.order_id)
    assert done.status is VenueOrderStatus.FILLED

    fills = engine.history.fills(BTC)
    assert [f.quantity for f in fills] == [D("0.2"), D("0.2"), D("0.1")]
    assert {f.price for f in fills} == {D("59990.0")}
    assert all(f.maker for f in fills)
    assert fills[0].fee == D("0.2") * D("59990.0") * D(2) / D(10000)
    cumulative = [e.order.filled_qty for e in order_events(engine, order.order_id)]
    assert cumulative == [0, D("0.2"), D("0.4"), D("0.5")]


def test_marketable_limit_takes_at_book_prices_and_rests_the_rest():
    engine = make_engine()
    order = engine.create_order(limit(BUY, "0.8", "60003.1", "l1"), now=1.0)

    fills = engine.history.fills(BTC)
    assert [(f.quantity, f.price) for f in fills] == [
        (D("0.5"), D("60003.0")),
        (D("0.3"), D("60003.1")),
    ]
    assert order.status is VenueOrderStatus.FILLED

    partial = engine.create_order(limit(BUY, "2", "60003.1", "l2"), now=2.0)
    assert partial.status is VenueOrderStatus.PARTIALLY_FILLED
    assert partial.filled_qty == D("1.0")  # two levels within the limit
    assert [o.order_id for o in engine.open_orders(BTC)] == [partial.order_id]


def test_ioc_remainder_expires():
    engine = make_engine()
    order = engine.create_order(limit(BUY, "0.8", "60003.0", "i1", tif=TimeInForce.IOC), now=1.0)
    assert order.status is VenueOrderStatus.EXPIRED
    assert order.filled_qty == D("0.5")
    assert order_events(engine, order.order_id)[-1].expire_reason is ExpireReason.IOC_REMAINDER


def test_fok_is_rejected_unless_it_can_fill_completely():
    engine = make_engine()
    err = rejected(
        engine.create_order, limit(BUY, "0.8", "60003.0", "f1", tif=TimeInForce.FOK), now=1.0
    )
    assert (err.code, err.message) == (
        -5021,
        "Due to the order could not be filled immediately, the FOK order has been rejected.",
    )
    assert engine.history.fills() == ()
    order = engine.create_order(limit(BUY, "0.8", "60003.1", "f2", tif=TimeInForce.FOK), now=2.0)
    assert order.status is VenueOrderStatus.FILLED


def test_post_only_that_would_take_is_rejected_and_one_that_would_not_rests():
    engine = make_engine()
    err = rejected(
        engine.create_order, limit(SELL, "0.1", "59997.0", "g1", tif=TimeInForce.GTX), now=1.0
    )
    assert err.code == -5022
    order = engine.create_order(limit(SELL, "0.1", "59997.1", "g2", tif=TimeInForce.GTX), now=1.0)
    assert order.status is VenueOrderStatus.NEW


# --------------------------------------------------------------------------- conditional


@pytest.mark.parametrize(
    ("order_type", "side", "stop_price", "near", "at"),
    [
        (OrderType.STOP_MARKET, BUY, "60100", "60099.9", "60100"),
        (OrderType.STOP_MARKET, SELL, "59900", "59900.1", "59900"),
        (OrderType.TAKE_PROFIT_MARKET, BUY, "59900", "59900.1", "59900"),
        (OrderType.TAKE_PROFIT_MARKET, SELL, "60100", "60099.9", "60100"),
    ],
)
def test_trigger_rules(order_type, side, stop_price, near, at):
    engine = make_engine()
    algo = engine.create_order(stop(order_type, side, stop_price, "t1", qty="0.01"), now=1.0)
    assert algo.status is VenueOrderStatus.NEW
    assert engine.history.accepted()[0].algo

    engine.set_mark_price(BTC, D(near), now=2.0)
    assert engine.history.triggers() == ()
    assert engine.position_qty(BTC) == 0

    engine.set_mark_price(BTC, D(at), now=3.0)
    (trigger,) = engine.history.triggers()
    assert trigger.outcome == "triggered"
    assert trigger.trigger_price == D(at)
    assert engine.position_qty(BTC) == (D("0.01") if side is BUY else D("-0.01"))
    detail = engine.order_detail(BTC, order_id=algo.order_id)
    assert detail.algo_status is AlgoStatus.FINISHED
    assert detail.status is VenueOrderStatus.FILLED
    child = engine.order_detail(BTC, order_id=detail.actual_order_id)
    assert child.client_order_id == "t1"
    assert child.parent_algo_id == algo.order_id
    statuses = [e.algo_status for e in engine.events_since(0) if isinstance(e, AlgoUpdate)]
    assert statuses == [
        AlgoStatus.NEW,
        AlgoStatus.TRIGGERING,
        AlgoStatus.TRIGGERED,
        AlgoStatus.FINISHED,
    ]


@pytest.mark.parametrize(
    ("order_type", "side", "stop_price"),
    [
        (OrderType.STOP_MARKET, BUY, "60000"),
        (OrderType.STOP_MARKET, BUY, "59000"),
        (OrderType.STOP_MARKET, SELL, "60000"),
        (OrderType.TAKE_PROFIT_MARKET, BUY, "60000"),
        (OrderType.TAKE_PROFIT_MARKET, SELL, "59000"),
    ],
)
def test_conditional_that_would_trigger_at_once_is_rejected(order_type, side, stop_price):
    engine = make_engine()
    err = rejected(engine.create_order, stop(order_type, side, stop_price, "t1", qty="0.01"), 1.0)
    assert (err.code, err.message) == (-2021, "Order would immediately trigger.")
    assert engine.history.accepted() == ()


def test_stop_limit_triggers_into_a_limit_order_that_rests_or_takes():
    engine = make_engine()
    engine.create_order(
        stop(OrderType.STOP, SELL, "59900", "rest", qty="0.1", price="59950.0"), now=1.0
    )
    engine.create_order(
        stop(OrderType.STOP, SELL, "59900", "take", qty="0.1", price="59800.0"), now=1.0
    )
    engine.set_mark_price(BTC, D("59900"), now=2.0)  # bid 59897.0

    (resting,) = engine.orders(BTC, open_only=True)
    assert (resting.order_type, resting.orig_type) == (OrderType.LIMIT, OrderType.STOP)
    assert (resting.client_order_id, resting.price) == ("rest", D("59950.0"))
    assert resting.time_in_force is TimeInForce.GTC
    (taken,) = engine.history.fills(BTC)
    assert (taken.client_order_id, taken.price, taken.maker) == ("take", D("59897.0"), False)

    engine.set_mark_price(BTC, D("59960"), now=3.0)  # bid 59957.0 >= 59950.0
    assert engine.position_qty(BTC) == D("-0.2")
    assert engine.history.fills(BTC)[-1].maker


def test_algo_orders_live_on_their_own_endpoint():
    engine = make_engine()
    err = rejected(
        engine.create_order,
        stop(OrderType.STOP_MARKET, SELL, "59000", "x", qty="0.01"),
        1.0,
        route=OrderRoute.ORDER,
    )
    assert err.code == -4120
    err = rejected(
        engine.create_order, limit(BUY, "0.01", "59000.0", "y"), 1.0, route=OrderRoute.ALGO
    )
    assert err.code == -1116
    engine.create_order(
        stop(OrderType.STOP_MARKET, SELL, "59000", "z", qty="0.01"), 1.0, route=OrderRoute.ALGO
    )
    assert engine.open_orders(BTC, algo=False) == ()
    assert len(engine.open_orders(BTC, algo=True)) == 1


# --------------------------------------------------------------------------- close-position, reduce-only


def test_close_position_stop_closes_whatever_is_open_when_it_fires():
    engine = make_engine()
    engine.create_order(market(BUY, "0.1", "e1"), now=1.0)
    algo = engine.create_order(
        stop(OrderType.STOP_MARKET, SELL, "59000", "sl", close_position=True), now=2.0
    )
    assert algo.quantity == 0
    engine.create_order(market(BUY, "0.2", "e2"), now=3.0)  # the position grew after placement

    engine.set_mark_price(BTC, D("58990"), now=4.0)
    assert engine.position_qty(BTC) == 0
    exit_fill = engine.history.fills(BTC)[-1]
    assert (exit_fill.side, exit_fill.quantity, exit_fill.price) == (SELL, D("0.3"), D("58987.0"))
    assert exit_fill.client_order_id == "sl"
    assert exit_fill.realized_pnl < 0
    assert engine.query_order(BTC, order_id=algo.order_id).filled_qty == D("0.3")


def test_close_position_with_nothing_open_expires_without_trading():
    engine = make_engine()
    algo = engine.create_order(
        stop(OrderType.STOP_MARKET, SELL, "59000", "sl", close_position=True), now=1.0
    )
    engine.set_mark_price(BTC, D("58990"), now=2.0)
    detail = engine.order_detail(BTC, order_id=algo.order_id)
    assert detail.algo_status is AlgoStatus.EXPIRED
    assert engine.history.fills() == ()
    (trigger,) = engine.history.triggers()
    assert trigger.outcome == "no_position"
    assert engine.history.closures()[0].reason is CloseReason.NO_POSITION


def test_close_position_parameter_rules():
    engine = make_engine()
    err = rejected(
        engine.create_order,
        stop(OrderType.STOP_MARKET, SELL, "59000", "a", qty="0.1", close_position=True),
        1.0,
    )
    assert (err.code, err.message) == (
        -4137,
        "Quantity must be zero with closePosition equals true",
    )
    err = rejected(
        engine.create_order,
        stop(OrderType.STOP_MARKET, SELL, "59000", "b", close_position=True, reduce_only=True),
        1.0,
    )
    assert (err.code, err.message) == (-1106, "Parameter 'reduceOnly' sent when not required.")
    err = rejected(
        engine.create_order,
        stop(OrderType.STOP, SELL, "59000", "c", price="58900.0", close_position=True),
        1.0,
    )
    assert err.code == -1106


def test_reduce_only_that_would_open_or_grow_is_rejected():
    engine = make_engine()
    err = rejected(engine.create_order, market(SELL, "0.1", "r1", reduce_only=True), 1.0)
    assert (err.code, err.message) == (-2022, "ReduceOnly Order is rejected.")
    engine.create_order(market(BUY, "0.1", "e1"), now=2.0)
    err = rejected(engine.create_order, market(BUY, "0.1", "r2", reduce_only=True), 3.0)
    assert err.code == -2022
    assert engine.position_qty(BTC) == D("0.1")
    assert [r.code for r in engine.history.rejections()] == [-2022, -2022]


def test_reduce_only_larger_than_position_is_trimmed_and_the_rest_expires():
    engine = make_engine()
    engine.create_order(market(BUY, "0.3", "e1"), now=1.0)
    order = engine.create_order(market(SELL, "0.5", "x1", reduce_only=True), now=2.0)
    assert order.status is VenueOrderStatus.EXPIRED
    assert order.filled_qty == D("0.3")
    assert engine.position_qty(BTC) == 0
    assert order_events(engine, order.order_id)[-1].expire_reason is ExpireReason.REDUCE_ONLY


def test_resting_reduce_only_fills_only_what_the_position_holds():
    engine = make_engine()
    engine.create_order(market(BUY, "0.01", "e1"), now=1.0)
    exit_order = engine.create_order(
        limit(SELL, "0.05", "60010.0", "tp", reduce_only=True), now=2.0
    )
    engine.set_mark_price(BTC, D("60020"), now=3.0)  # bid 60016.9 crosses 60010.0

    (exit_fill,) = [f for f in engine.history.fills(BTC) if f.order_id == exit_order.order_id]
    assert (exit_fill.quantity, exit_fill.price, exit_fill.maker) == (
        D("0.01"),
        D("60010.0"),
        True,
    )
    assert engine.position_qty(BTC) == 0
    done = engine.query_order(BTC, order_id=exit_order.order_id)
    assert (done.status, done.filled_qty) == (VenueOrderStatus.EXPIRED, D("0.01"))


def test_resting_reduce_only_is_knocked_out_when_the_position_is_gone():
    engine = make_engine()
    engine.create_order(market(BUY, "0.3", "e1"), now=1.0)
    take_profit = engine.create_order(
        limit(SELL, "0.3", "61000.0", "tp", reduce_only=True), now=2.0
    )
    engine.create_order(market(SELL, "0.5", "flip"), now=3.0)  # long 0.3 -> short 0.2

    assert engine.position_qty(BTC) == D("-0.2")
    closed = engine.query_order(BTC, order_id=take_profit.order_id)
    assert closed.status is VenueOrderStatus.EXPIRED
    assert engine.open_orders(BTC) == ()


def test_reduce_only_is_exempt_from_min_notional():
    engine = make_engine()
    engine.create_order(market(BUY, "0.01", "e1"), now=1.0)
    err = rejected(engine.create_order, limit(SELL, "0.001", "61000.0", "small"), 2.0)
    assert err.code == -4164
    order = engine.create_order(limit(SELL, "0.001", "61000.0", "small", reduce_only=True), now=2.0)
    assert order.status is VenueOrderStatus.NEW


# --------------------------------------------------------------------------- position modes


def test_position_side_must_match_the_mode():
    one_way = make_engine()
    err = rejected(one_way.create_order, market(BUY, "0.1", "a", position_side=LONG), 1.0)
    assert (err.code, err.message) == (
        -4061,
        "Order's position side does not match user's setting.",
    )
    hedge = make_engine(mode=PositionMode.HEDGE)
    err = rejected(hedge.create_order, market(BUY, "0.1", "b"), 1.0)
    assert err.code == -4061
    err = rejected(
        hedge.create_order, market(SELL, "0.1", "c", reduce_only=True, position_side=LONG), 1.0
    )
    assert (err.code, err.message) == (-1106, "Parameter 'reduceOnly' sent when not required.")


def test_hedge_mode_keeps_long_and_short_legs_apart():
    engine = make_engine(mode=PositionMode.HEDGE)
    engine.create_order(market(BUY, "0.2", "l", position_side=LONG), now=1.0)
    engine.create_order(market(SELL, "0.1", "s", position_side=SHORT), now=2.0)
    assert engine.position_qty(BTC, LONG) == D("0.2")
    assert engine.position_qty(BTC, SHORT) == D("-0.1")
    assert engine.position_qty(BTC, PositionSide.BOTH) == 0
    assert {p.position_side for p in engine.positions()} == {LONG, SHORT}

    err = rejected(engine.create_order, market(SELL, "0.3", "x", position_side=LONG), 3.0)
    assert err.code == -2022  # closing more than the long leg holds

    engine.set_mark_price(BTC, D("61000"), now=4.0)
    engine.create_order(market(SELL, "0.2", "close", position_side=LONG), now=5.0)
    assert engine.position_qty(BTC, LONG) == 0
    assert engine.position_qty(BTC, SHORT) == D("-0.1")
    close_fill = engine.history.fills(BTC)[-1]
    # bought at 60003.0, sold at the bid of a 61000 mid: 60996.9
    assert close_fill.realized_pnl == (D("60996.9") - D("60003.0")) * D("0.2")


def test_hedge_close_position_must_close_a_leg():
    engine = make_engine(mode=PositionMode.HEDGE)
    err = rejected(
        engine.create_order,
        stop(OrderType.STOP_MARKET, BUY, "61000", "a", close_position=True, position_side=LONG),
        1.0,
    )
    assert err.code == -2022
    engine.create_order(market(BUY, "0.2", "l", position_side=LONG), now=2.0)
    engine.create_order(
        stop(OrderType.STOP_MARKET, SELL, "59000", "b", close_position=True, position_side=LONG),
        now=3.0,
    )
    engine.set_mark_price(BTC, D("58000"), now=4.0)
    assert engine.position_qty(BTC, LONG) == 0


def test_position_mode_change_rules():
    engine = make_engine()
    assert rejected(engine.set_position_mode, PositionMode.ONE_WAY).code == -4059
    resting = engine.create_order(limit(BUY, "0.01", "59000.0", "r"), now=1.0)
    assert rejected(engine.set_position_mode, PositionMode.HEDGE).code == -4067
    engine.cancel_order(BTC, order_id=resting.order_id, now=2.0)
    engine.create_order(market(BUY, "0.01", "m"), now=3.0)
    assert rejected(engine.set_position_mode, PositionMode.HEDGE).code == -4068
    engine.create_order(market(SELL, "0.01", "c", reduce_only=True), now=4.0)
    engine.set_position_mode(PositionMode.HEDGE)
    assert engine.position_mode is PositionMode.HEDGE
    assert {p.position_side for p in engine.positions()} == {LONG, SHORT}


def test_one_way_fill_through_zero_flips_the_position_at_the_fill_price():
    engine = make_engine()
    engine.create_order(market(BUY, "0.2", "b"), now=1.0)
    engine.create_order(market(SELL, "0.5", "s"), now=2.0)
    (position,) = engine.positions()
    assert position.quantity == D("-0.3")
    assert position.entry_price == D("59997.0")  # all 0.5 sold at the bid level
    realized = engine.history.fills(BTC)[-1].realized_pnl
    assert realized == (D("59997.0") - D("60003.0")) * D("0.2")


# --------------------------------------------------------------------------- filters and parameters


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (limit(BUY, "0.01", "59000.05", "p"), -4014),
        (limit(BUY, "0.01", "59000.123", "p"), -1111),
        (limit(BUY, "0.0015", "59000.0", "p"), -1111),
        (limit(BUY, "0", "59000.0", "p"), -4003),
        (limit(BUY, "0.01", "-1", "p"), -4001),
        (limit(BUY, "1001", "59000.0", "p"), -4005),
        (market(BUY, "121", "p"), -4005),
        (limit(BUY, "0.01", "0.05", "p"), -4013),
        (limit(BUY, "0.01", "5000000.0", "p"), -4002),
        (limit(BUY, "0.01", "63000.1", "p"), -4016),
        (limit(SELL, "0.01", "56999.9", "p"), -4024),
        (limit(BUY, "0.001", "59000.0", "p"), -4164),
        (limit(BUY, "0.01", "59000.0", "bad id with spaces"), -4015),
        (limit(BUY, "0.01", "59000.0", "x" * 37), -4015),
        (limit(BUY, "0.01", "59000.0", "p", symbol="DOGEUSDT"), -1121),
    ],
)
def test_filters_and_parameters_reject_with_binance_codes(request_, code):
    engine = make_engine()
    err = rejected(engine.create_order, request_, 1.0)
    assert err.code == code
    (record,) = engine.history.rejections()
    assert (record.code, record.request) == (code, request_)
    assert engine.history.accepted() == ()


def test_filter_messages_are_binance_texts():
    engine = make_engine()
    assert rejected(engine.create_order, limit(BUY, "0.001", "59000.0", "p"), 1.0).message == (
        "Order's notional must be no smaller than 100 (unless you choose reduce only)"
    )
    assert rejected(engine.create_order, limit(BUY, "0.01", "59000.05", "p"), 1.0).message == (
        "Price not increased by tick size."
    )


def test_lot_size_step_and_minimum():
    filters = SymbolFilters(step_size=D("0.01"), min_qty=D("0.01"), min_notional=D(0))
    engine = make_engine(symbol=still_symbol(book=BookConfig(level_qty=D("0.5")), filters=filters))
    assert rejected(engine.create_order, limit(BUY, "0.015", "59000.0", "a"), 1.0).code == -4023
    assert rejected(engine.create_order, limit(BUY, "0.005", "59000.0", "b"), 1.0).code == -4004
    assert engine.create_order(limit(BUY, "0.02", "59000.0", "c"), 1.0).status is (
        VenueOrderStatus.NEW
    )


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (
            OrderRequest(BTC, BUY, OrderType.LIMIT, "a", D("0.01"), time_in_force=TimeInForce.GTC),
            -1102,
            "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
        ),
        (
            OrderRequest(BTC, BUY, OrderType.LIMIT, "a", D("0.01"), price=D("59000")),
            -1102,
            "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.",
        ),
        (
            OrderRequest(BTC, BUY, OrderType.MARKET, "a", D("0.01"), price=D("59000")),
            -1106,
            "Parameter 'price' sent when not required.",
        ),
        (
            OrderRequest(BTC, BUY, OrderType.MARKET, "a", None),
            -1102,
            "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
        ),
        (
            OrderRequest(BTC, BUY, OrderType.STOP_MARKET, "a", D("0.01")),
            -1102,
            "Mandatory parameter 'triggerPrice' was not sent, was empty/null, or malformed.",
        ),
        (
            OrderRequest(BTC, BUY, OrderType.MARKET, "a", D("0.01"), stop_price=D("61000")),
            -1106,
            "Parameter 'stopPrice' sent when not required.",
        ),
        (
            OrderRequest(BTC, BUY, OrderType.MARKET, "a", D("0.01"), time_in_force=TimeInForce.GTC),
            -1106,
            "Parameter 'timeInForce' sent when not required.",
        ),
        (
            OrderRequest(
                BTC, BUY, OrderType.TRAILING_STOP_MARKET, "a", D("0.01"), stop_price=D("61000")
            ),
            -1020,
            "This operation is not supported.",
        ),
    ],
)
def test_parameter_errors(request_, code, message):
    engine = make_engine()
    err = rejected(engine.create_order, request_, 1.0)
    assert (err.code, err.message, err.http_status) == (code, message, 400)


def test_empty_client_order_id_gets_a_generated_one():
    engine = make_engine()
    order = engine.create_order(limit(BUY, "0.01", "59000.0", ""), now=1.0)
    assert order.client_order_id.startswith("sim")
    assert len(order.client_order_id) == 22
    assert engine.query_order(BTC, client_order_id=order.client_order_id) == order


# --------------------------------------------------------------------------- client order ids


def test_duplicate_client_order_id_of_an_open_order_is_rejected():
    engine = make_engine()
    first = engine.create_order(limit(BUY, "0.01", "59000.0", "dup"), now=1.0)
    err = rejected(engine.create_order, limit(BUY, "0.01", "58000.0", "dup"), 2.0)
    assert (err.code, err.message) == (-4116, "ClientOrderId is duplicated.")
    assert len(engine.history.accepted()) == 1
    assert [o.order_id for o in engine.open_orders(BTC)] == [first.order_id]

    engine.cancel_order(BTC, client_order_id="dup", now=3.0)
    again = engine.create_order(limit(BUY, "0.01", "58000.0", "dup"), now=4.0)
    assert again.order_id != first.order_id


def test_partially_filled_order_still_blocks_its_client_order_id():
    engine = make_engine()
    order = engine.create_order(limit(BUY, "2", "60003.1", "pf"), now=1.0)
    assert order.status is VenueOrderStatus.PARTIALLY_FILLED
    assert rejected(engine.create_order, limit(BUY, "0.01", "59000.0", "pf"), 2.0).code == -4116


def test_blind_resend_of_a_filled_order_is_accepted_as_a_new_order():
    """The danger scalper exists to avoid: the first order filled, its ack was lost, and a
    resend with the same client order id is *not* a -4116: it opens a second position."""
    engine = make_engine()
    request = market(BUY, "0.1", "sc-E-0123456789abcdef-0")
    first = engine.create_order(request, now=1.0)
    assert first.status is VenueOrderStatus.FILLED

    second = engine.create_order(request, now=2.0)  # no -4116: the first is not open

    assert second.status is VenueOrderStatus.FILLED
    assert second.order_id != first.order_id
    assert engine.position_qty(BTC) == D("0.2")  # doubled exposure
    assert [a.order_id for a in engine.history.accepted()] == [first.order_id, second.order_id]
    assert engine.history.rejections() == ()
    # A query by client id now answers with the newer order.
    assert engine.query_order(BTC, client_order_id=request.client_order_id).order_id == (
        second.order_id
    )


def test_duplicate_client_algo_id_of_an_open_algo_order_is_rejected():
    engine = make_engine()
    engine.create_order(stop(OrderType.STOP_MARKET, SELL, "59000", "sl", qty="0.01"), now=1.0)
    err = rejected(
        engine.create_order, stop(OrderType.STOP_MARKET, SELL, "58000", "sl", qty="0.01"), 2.0
    )
    assert err.code == -20132


# --------------------------------------------------------------------------- cancel and query


def test_cancel_and_query_semantics():
    engine = make_engine()
    resting = engine.create_order(limit(BUY, "0.01", "59000.0", "c1"), now=1.0)
    canceled = engine.cancel_order(BTC, order_id=resting.order_id, now=2.0)
    assert canceled.status is VenueOrderStatus.CANCELED
    assert order_events(engine, resting.order_id)[-1].execution_type is ExecutionType.CANCELED
    (closed,) = engine.history.closures()
    assert (closed.order_id, closed.reason) == (resting.order_id, CloseReason.USER_CANCEL)

    again = rejected(engine.cancel_order, BTC, order_id=resting.order_id, now=3.0)
    assert (again.code, again.message) == (-2011, "Unknown order sent.")
    filled = engine.create_order(market(BUY, "0.01", "c2"), now=4.0)
    assert rejected(engine.cancel_order, BTC, client_order_id="c2", now=5.0).code == -2011
    assert rejected(engine.cancel_order, BTC, order_id="999", now=5.0).code == -2011
    assert rejected(engine.cancel_order, BTC, now=5.0).code == -1102
    assert [r.action for r in engine.history.rejections()] == ["cancel_order"] * 4

    assert engine.query_order(BTC, client_order_id="c2") == filled
    unknown = rejected(engine.query_order, BTC, client_order_id="never")
    assert (unknown.code, unknown.message) == (-2013, "Order does not exist.")
    assert rejected(engine.query_order, BTC, order_id=resting.order_id, algo=True).code == -2013


def test_cancel_algo_order_and_cancel_all():
    engine = make_engine()
    algo = engine.create_order(stop(OrderType.STOP_MARKET, SELL, "59000", "s", qty="0.01"), 1.0)
    canceled = engine.cancel_order(BTC, client_order_id="s", now=2.0, algo=True)
    assert canceled.status is VenueOrderStatus.CANCELED
    assert engine.order_detail(BTC, order_id=algo.order_id).algo_status is AlgoStatus.CANCELED
    engine.set_mark_price(BTC, D("58000"), now=3.0)
    assert engine.history.triggers() == ()

    for i in range(3):
        engine.create_order(limit(BUY, "0.01", "57000.0", f"r{i}"), now=4.0)
    engine.create_order(stop(OrderType.STOP_MARKET, SELL, "56000", "s2", qty="0.01"), 4.0)
    gone = engine.cancel_all_orders(BTC, now=5.0)
    assert len(gone) == 3
    assert [o.order_type for o in engine.open_orders(BTC)] == [OrderType.STOP_MARKET]


def test_closed_unfilled_orders_are_forgotten_after_three_days():
    engine = make_engine(symbol=still_symbol(step_seconds=3600.0))
    resting = engine.create_order(limit(BUY, "0.01", "59000.0", "old"), now=1.0)
    filled = engine.create_order(market(BUY, "0.01", "kept"), now=1.0)
    engine.cancel_order(BTC, order_id=resting.order_id, now=2.0)

    engine.advance_to(2 * 86_400.0)
    assert engine.query_order(BTC, order_id=resting.order_id).status is VenueOrderStatus.CANCELED
    engine.advance_to(3 * 86_400.0 + 2.0)
    assert rejected(engine.query_order, BTC, order_id=resting.order_id).code == -2013
    assert engine.query_order(BTC, order_id=filled.order_id) == filled


# --------------------------------------------------------------------------- limits


def test_max_open_orders_per_symbol_counts_plain_and_algo_orders():
    engine = make_engine(symbol=still_symbol(filters=SymbolFilters(max_num_orders=3)))
    engine.create_order(limit(BUY, "0.01", "59000.0", "a"), now=1.0)
    engine.create_order(stop(OrderType.STOP_MARKET, SELL, "59000", "b", qty="0.01"), 1.0)
    engine.create_order(limit(BUY, "0.01", "58000.0", "c"), now=1.0)
    err = rejected(engine.create_order, limit(BUY, "0.01", "57000.0", "d"), 1.0)
    assert (err.code, err.message) == (-2025, "Reach max open order limit.")
    err = rejected(
        engine.create_order, stop(OrderType.STOP_MARKET, SELL, "58000", "e", qty="0.01"), 1.0
    )
    assert (err.code, err.message) == (-4045, "Reach max stop order limit.")
    engine.cancel_order(BTC, client_order_id="a", now=2.0)
    engine.create_order(limit(BUY, "0.01", "57000.0", "d"), now=3.0)


def test_max_algo_orders_is_account_wide():
    engine = make_engine(max_algo_orders=2)
    engine.create_order(stop(OrderType.STOP_MARKET, SELL, "59000", "a", qty="0.01"), 1.0)
    engine.create_order(stop(OrderType.STOP_MARKET, SELL, "58000", "b", qty="0.01"), 1.0)
    err = rejected(
        engine.create_order, stop(OrderType.STOP_MARKET, SELL, "57000", "c", qty="0.01"), 1.0
    )
    assert err.code == -4045


def test_order_rate_limit_answers_429_until_the_window_rolls():
    engine = make_engine(rate_limits=RateLimitConfig(orders_per_10s=3))
    for i in range(3):
        engine.create_order(limit(BUY, "0.01", "59000.0", f"o{i}"), now=1.0 + i)
    err = rejected(engine.create_order, limit(BUY, "0.01", "59000.0", "o3"), 4.0)
    assert (err.code, err.http_status) == (-1015, 429)
    assert err.message == "Too many new orders; current limit is 3 orders per 10 SECOND."
    assert err.retry_after == pytest.approx(6.0)
    assert engine.rate_usage(4.0).order_count_10s == 3
    engine.create_order(limit(BUY, "0.01", "59000.0", "o3"), now=10.0)
    assert engine.rate_usage(10.0).order_count_10s == 1
    assert engine.rate_usage(10.0).order_count_1m == 4


def test_request_weight_limit():
    engine = make_engine(rate_limits=RateLimitConfig(request_weight_per_minute=50))
    assert engine.check_rate(RateKind.REQUEST_WEIGHT, 1.0, weight=40).used_weight_1m == 40
    err = rejected(engine.check_rate, RateKind.REQUEST_WEIGHT, 2.0, weight=20)
    assert (err.code, err.http_status) == (-1003, 429)
    assert engine.rate_usage(2.0).used_weight_1m == 40  # the refused request is not counted
    assert engine.check_rate(RateKind.REQUEST_WEIGHT, 60.0, weight=20).used_weight_1m == 20


def test_margin_is_checked_for_risk_increasing_orders_only():
    engine = make_engine(balance="1000")  # 20x: about 0.33 BTC of buying power
    err = rejected(engine.create_order, market(BUY, "0.4", "big"), 1.0)
    assert (err.code, err.message) == (-2019, "Margin is insufficient.")
    engine.create_order(market(BUY, "0.3", "ok"), now=2.0)
    assert rejected(engine.create_order, limit(BUY, "0.05", "59000.0", "more"), 3.0).code == -2019
    engine.create_order(market(SELL, "0.3", "exit", reduce_only=True), now=4.0)
    assert engine.position_qty(BTC) == 0


def test_untriggerable_margin_at_trigger_rejects_the_algo_order():
    engine = make_engine(balance="1000")
    algo = engine.create_order(stop(OrderType.STOP_MARKET, BUY, "60100", "s", qty="0.5"), 1.0)
    engine.set_mark_price(BTC, D("60100"), now=2.0)
    detail = engine.order_detail(BTC, order_id=algo.order_id)
    assert detail.algo_status is AlgoStatus.REJECTED
    assert detail.reject_message == "Margin is insufficient."
    assert engine.history.triggers()[0].outcome == "margin_insufficient"
    assert engine.position_qty(BTC) == 0


def test_leverage_changes_are_validated_and_announced():
    engine = make_engine()
    change = engine.set_leverage(BTC, 5, now=1.0)
    assert (change.leverage, engine.leverage(BTC)) == (5, 5)
    assert isinstance(engine.events_since(0)[-1], AccountConfigUpdate)
    err = rejected(engine.set_leverage, BTC, 126)
    assert (err.code, err.message) == (-4028, "Leverage 126 is not valid")
    assert engine.positions()[0].leverage == 5


# --------------------------------------------------------------------------- countdown


def test_countdown_cancels_open_orders_of_the_symbol_at_the_deadline():
    engine = make_engine()
    resting = engine.create_order(limit(BUY, "0.01", "59000.0", "r"), now=1.0)
    algo = engine.create_order(stop(OrderType.STOP_MARKET, SELL, "58000", "s", qty="0.01"), 1.0)
    state = engine.countdown_cancel_all(BTC, 5000, now=10.0)
    assert state.deadline == pytest.approx(15.0)

    engine.countdown_cancel_all(BTC, 5000, now=14.0)  # heartbeat: deadline 19
    engine.advance_to(18.9)
    assert engine.query_order(BTC, order_id=resting.order_id).status is VenueOrderStatus.NEW

    engine.advance_to(25.0)
    gone = engine.query_order(BTC, order_id=resting.order_id)
    assert gone.status is VenueOrderStatus.CANCELED
    assert gone.venue_time_ms == engine.venue_time_ms(19.0)
    assert engine.history.closures()[0].reason is CloseReason.COUNTDOWN
    # Algo orders live in the Algo Service and survive by default.
    assert engine.order_detail(BTC, order_id=algo.order_id).algo_status is AlgoStatus.NEW


def test_countdown_zero_disarms_and_algo_cancel_is_configurable():
    engine = make_engine(countdown_cancels_algo=True)
    resting = engine.create_order(limit(BUY, "0.01", "59000.0", "r"), now=1.0)
    engine.countdown_cancel_all(BTC, 1000, now=2.0)
    engine.countdown_cancel_all(BTC, 0, now=2.5)
    engine.advance_to(10.0)
    assert engine.query_order(BTC, order_id=resting.order_id).status is VenueOrderStatus.NEW

    algo = engine.create_order(stop(OrderType.STOP_MARKET, SELL, "58000", "s", qty="0.01"), 11.0)
    engine.countdown_cancel_all(BTC, 1000, now=11.0)
    engine.advance_to(13.0)
    assert engine.order_detail(BTC, order_id=algo.order_id).algo_status is AlgoStatus.CANCELED
    assert engine.open_orders() == ()


# --------------------------------------------------------------------------- accounting, events


def test_round_trip_pnl_and_fees_reach_the_wallet():
    engine = make_engine(balance="100000")
    engine.create_order(market(BUY, "0.2", "in"), now=1.0)
    engine.set_mark_price(BTC, D("61000"), now=2.0)
    (position,) = engine.positions()
    assert position.unrealized_pnl == (D("61000") - D("60003.0")) * D("0.2")
    engine.create_order(market(SELL, "0.2", "out", reduce_only=True), now=3.0)

    buy, sell = engine.history.fills(BTC)
    assert sell.realized_pnl == (D("60996.9") - D("60003.0")) * D("0.2")
    (balance,) = engine.balances()
    assert balance.wallet_balance == D("100000") + sell.realized_pnl - buy.fee - sell.fee
    assert balance.unrealized_pnl == 0
    account = [e for e in engine.events_since(0) if isinstance(e, AccountUpdate)]
    assert account[-1].balances[0].wallet_balance == balance.wallet_balance
    assert account[-1].positions[0].quantity == 0


def test_event_log_is_sequenced_and_resumable():
    engine = make_engine()
    engine.create_order(limit(BUY, "0.01", "59000.0", "a"), now=1.0)
    cursor = engine.last_event_seq
    engine.create_order(market(BUY, "0.01", "b"), now=2.0)
    events = engine.events_since(0)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    later = engine.events_since(cursor)
    assert later == events[cursor:]
    assert all(e.order.client_order_id == "b" for e in later if isinstance(e, OrderTradeUpdate))
    assert engine.events_since(engine.last_event_seq) == ()


def test_user_trades_paging():
    engine = make_engine()
    engine.create_order(market(BUY, "1.2", "a"), now=1.0)  # trades 1, 2, 3
    engine.create_order(market(SELL, "0.1", "b"), now=2.0)  # trade 4
    assert [t.trade_id for t in engine.user_trades(BTC, limit=2)] == ["3", "4"]
    assert [t.trade_id for t in engine.user_trades(BTC, from_trade_id="2", limit=2)] == ["2", "3"]
    b_id = engine.query_order(BTC, client_order_id="b").order_id
    assert [t.trade_id for t in engine.user_trades(BTC, order_id=b_id)] == ["4"]
    assert rejected(engine.user_trades, BTC, limit=1001).code == -1130


# --------------------------------------------------------------------------- time and determinism


def test_supplied_series_drives_triggers_at_its_times():
    series = ((10.0, D("60000")), (20.0, D("59500")), (30.0, D("58900")))
    engine = make_engine(symbol=still_symbol(series=series))
    engine.create_order(market(BUY, "0.1", "in"), now=1.0)
    engine.create_order(stop(OrderType.STOP_MARKET, SELL, "59000", "sl", close_position=True), 2.0)
    engine.advance_to(29.9)
    assert engine.mark_price(BTC) == D("59500")
    assert engine.position_qty(BTC) == D("0.1")
    engine.advance_to(40.0)
    assert engine.history.triggers()[0].time_ms == engine.venue_time_ms(30.0)
    assert engine.position_qty(BTC) == 0


def test_random_walk_depends_on_seed_only_not_on_how_time_is_chunked():
    config = SimConfig()
    one = SimEngine(config, __import__("random").Random(42))
    two = SimEngine(config, __import__("random").Random(42))
    other = SimEngine(config, __import__("random").Random(43))
    one.advance_to(500.0)
    for t in range(1, 501, 7):
        two.advance_to(float(t))
    two.advance_to(500.0)
    other.advance_to(500.0)
    assert one.quote(BTC) == two.quote(BTC)
    assert one.mark_price("ETHUSDT") == two.mark_price("ETHUSDT")
    assert one.mark_price(BTC) != other.mark_price(BTC)


def test_time_never_runs_backwards_and_must_be_finite():
    engine = make_engine()
    engine.advance_to(10.0)
    order = engine.create_order(limit(BUY, "0.01", "59000.0", "late"), now=5.0)
    assert order.venue_time_ms == engine.venue_time_ms(10.0)
    with pytest.raises(CoreValueError) as info:
        engine.advance_to(float("nan"))
    assert info.value.field == "now"


def test_exchange_info_publishes_filters_and_limits():
    engine = make_engine(max_algo_orders=7)
    info = engine.exchange_info()
    (symbol,) = info.symbols
    assert (symbol.symbol, symbol.filters.tick_size, symbol.filters.min_notional) == (
        BTC,
        D("0.10"),
        D(100),
    )
    assert info.rate_limits.request_weight_per_minute == 2400
    assert info.max_algo_orders == 7
    assert info.server_time_ms == engine.venue_time_ms()


def test_cancel_all_algo_orders_leaves_plain_orders():
    engine = make_engine()
    plain = engine.create_order(limit(BUY, "0.01", "59000.0", "p"), now=1.0)
    engine.create_order(stop(OrderType.STOP_MARKET, SELL, "58000", "s1", qty="0.01"), 1.0)
    engine.create_order(stop(OrderType.TAKE_PROFIT_MARKET, SELL, "62000", "s2", qty="0.01"), 1.0)
    gone = engine.cancel_all_orders(BTC, now=2.0, algo=True)
    assert [o.client_order_id for o in gone] == ["s1", "s2"]
    assert [o.order_id for o in engine.open_orders()] == [plain.order_id]
    assert all(c.algo for c in engine.history.closures())


def test_position_above_the_symbol_maximum_notional_is_refused():
    symbol = attrs.evolve(still_symbol(), max_position_notional=D(10_000))
    engine = make_engine(symbol=symbol)
    engine.create_order(market(BUY, "0.15", "a"), now=1.0)  # about 9000 notional
    err = rejected(engine.create_order, market(BUY, "0.05", "b"), 2.0)
    assert (err.code, err.message) == (
        -2027,
        "Exceeded the maximum allowable position at current leverage.",
    )
    engine.create_order(market(SELL, "0.3", "flip"), now=3.0)  # ends short 0.15: allowed
    assert engine.position_qty(BTC) == D("-0.15")
