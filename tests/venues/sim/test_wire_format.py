"""Engine records rendered as Binance JSON: the project's parsers read back what was meant.

Each test renders what the simulated exchange knows and parses it with the real adapter's
sans-I/O parsers (:mod:`scalper.venues.binance.wire`), so a field the server gets wrong is a
fill or an order the live code path would misread.
"""

import json
import random
from decimal import Decimal
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.model import Fill, VenueOrderStatus, VenuePosition
from scalper.core.types import OrderType, PositionSide, Side, TimeInForce
from scalper.venues.binance import wire
from scalper.venues.sim.engine import SimConfig, SimEngine
from scalper.venues.sim.records import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoStatus,
    AlgoUpdate,
    BalanceUpdate,
    ExecutionType,
    ExpireReason,
    OrderTradeUpdate,
    PositionUpdate,
    SimBalance,
    SimOrder,
)
from scalper.venues.sim.wire_format import (
    AlgoSettings,
    OrderShape,
    PositionView,
    WireFormat,
    error_body,
    listen_key_expired,
    money,
)
from tests.venues.binance import wire_fixtures as fx

D = Decimal
FMT = WireFormat(SimConfig().symbols)  # BTCUSDT: price 2 dp, qty 3 dp; ETHUSDT alike
T0 = 1_767_225_600_000


def sim_order(**changes: Any) -> SimOrder:
    base = SimOrder(
        order_id="42",
        client_order_id="sc-E-0123456789abcdef-0",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        orig_type=OrderType.LIMIT,
        status=VenueOrderStatus.NEW,
        quantity=D("0.010"),
        filled_qty=D(0),
        cum_quote=D(0),
        price=D("59000.0"),
        stop_price=None,
        time_in_force=TimeInForce.GTC,
        reduce_only=False,
        close_position=False,
        position_side=PositionSide.BOTH,
        create_time_ms=T0,
        update_time_ms=T0 + 5,
    )
    return attrs.evolve(base, **changes)


def roundtrip(payload: object) -> object:
    """What a client receives: the JSON text, decoded with the project's strict loader."""
    return wire.loads(json.dumps(payload))


# --------------------------------------------------------------------------- orders


def test_order_shapes_differ_like_binance_endpoints():
    order = sim_order()
    new = FMT.order(order, OrderShape.NEW)
    query = FMT.order(order, OrderShape.QUERY)
    cancel = FMT.order(order, OrderShape.CANCEL)

    assert "cumQty" in new
    assert "time" not in new
    assert "time" in query
    assert "cumQty" not in query
    assert "cumQty" in cancel
    assert "time" not in cancel
    assert query["time"] == T0
    assert query["updateTime"] == T0 + 5


def test_order_renders_decimals_as_strings_at_symbol_precision():
    out = FMT.order(sim_order(), OrderShape.QUERY)

    assert out["orderId"] == 42  # a JSON integer, like Binance
    assert out["price"] == "59000.00"
    assert out["origQty"] == "0.010"
    assert out["executedQty"] == "0.000"
    assert out["avgPrice"] == "0.00000"
    assert out["stopPrice"] == "0.00"
    assert out["reduceOnly"] is False


def test_market_order_renders_zero_price_which_parses_as_unset():
    order = sim_order(
        order_type=OrderType.MARKET,
        orig_type=OrderType.MARKET,
        price=None,
        time_in_force=None,
        status=VenueOrderStatus.FILLED,
        filled_qty=D("0.010"),
        cum_quote=D("600.12100"),
    )
    parsed = wire.parse_order(roundtrip(FMT.order(order, OrderShape.NEW)))

    assert parsed.price is None
    assert parsed.avg_price == D("60012.10")
    assert parsed.status is VenueOrderStatus.FILLED
    assert parsed.filled_qty == D("0.010")


def test_field_sets_cover_binance_example_responses():
    order = sim_order()
    cases = [
        (FMT.order(order, OrderShape.QUERY), fx.DOC_QUERY_ORDER),
        (FMT.order(order, OrderShape.CANCEL), fx.DOC_CANCEL_ORDER),
        (FMT.order(order, OrderShape.NEW), fx.CCXT_CREATE_ORDERS_SWAP.strip()[1:-1]),
    ]
    for ours, doc_text in cases:
        doc = json.loads(doc_text)
        missing = set(doc) - set(ours)
        assert not missing, missing
        for key, value in doc.items():
            if isinstance(value, bool | int):
                assert type(ours[key]) is type(value), key


def test_algo_order_matches_the_algo_service_shape_and_parses():
    algo = sim_order(
        order_id="7",
        order_type=OrderType.STOP_MARKET,
        orig_type=OrderType.STOP_MARKET,
        price=None,
        stop_price=D("58000.0"),
        time_in_force=None,
        side=Side.SELL,
        algo=True,
        algo_status=AlgoStatus.NEW,
        close_position=True,
        quantity=D(0),
    )
    out = FMT.algo_order(algo, AlgoSettings(working_type="MARK_PRICE", price_protect=True))
    doc = json.loads(fx.DOC_QUERY_ALGO_ORDER)

    assert not set(doc) - set(out)
    assert out["workingType"] == "MARK_PRICE"
    assert out["priceProtect"] is True
    parsed = wire.parse_algo_order(roundtrip(out))
    assert parsed.order.order_id == "7"
    assert parsed.order.stop_price == D("58000")
    assert parsed.order.close_position is True
    assert parsed.algo_status.value == "NEW"
    assert parsed.actual_order_id is None


def test_triggered_algo_order_names_its_engine_order():
    algo = sim_order(
        order_type=OrderType.STOP_MARKET,
        orig_type=OrderType.STOP_MARKET,
        price=None,
        stop_price=D("58000.0"),
        algo=True,
        algo_status=AlgoStatus.FINISHED,
        actual_order_id="43",
        status=VenueOrderStatus.FILLED,
        filled_qty=D("0.010"),
        cum_quote=D("579.99000"),
        trigger_time_ms=T0 + 100,
    )
    parsed = wire.parse_algo_order(roundtrip(FMT.algo_order(algo)))

    assert parsed.actual_order_id == "43"
    assert parsed.trigger_time_ms == T0 + 100
    assert parsed.order.avg_price == D("57999.00")


def test_algo_cancel_reply_parses():
    ack = wire.parse_algo_cancel(roundtrip(FMT.algo_cancel(sim_order(order_id="9", algo=True))))
    assert ack.algo_id == "9"


# --------------------------------------------------------------------------- events


def test_order_trade_update_field_set_matches_the_documented_event():
    event = OrderTradeUpdate(
        seq=1,
        event_time_ms=T0,
        transaction_time_ms=T0,
        execution_type=ExecutionType.NEW,
        order=sim_order(),
    )
    out = FMT.event(event)
    doc = json.loads(fx.DOC_ORDER_TRADE_UPDATE)

    # AP and cr exist for trailing stops only, which the simulator does not offer.
    assert not (set(doc["o"]) - {"AP", "cr"}) - set(out["o"])
    assert set(doc) <= set(out)
    for key, value in doc["o"].items():
        if key in out["o"]:
            assert type(out["o"][key]) is type(value), key


def test_expired_order_event_carries_the_expiry_reason_code():
    event = OrderTradeUpdate(
        seq=3,
        event_time_ms=T0,
        transaction_time_ms=T0,
        execution_type=ExecutionType.EXPIRED,
        order=sim_order(status=VenueOrderStatus.EXPIRED, time_in_force=TimeInForce.IOC),
        expire_reason=ExpireReason.IOC_REMAINDER,
    )
    parsed = wire.parse_user_event(roundtrip(FMT.event(event)))

    assert isinstance(parsed, wire.OrderTradeUpdate)
    assert parsed.expiry_reason == "ioc_remainder"
    assert parsed.fill is None


def test_account_update_and_config_update_parse():
    account = AccountUpdate(
        seq=2,
        event_time_ms=T0,
        transaction_time_ms=T0,
        reason="ORDER",
        balances=(BalanceUpdate("USDT", D("9999.7"), D("9999.7"), D(0)),),
        positions=(
            PositionUpdate(
                symbol="BTCUSDT",
                position_side=PositionSide.BOTH,
                quantity=D("-0.010"),
                entry_price=D("60012.1"),
                accumulated_realized=D("-1.5"),
                unrealized_pnl=D("0.12"),
            ),
        ),
    )
    parsed = wire.parse_user_event(roundtrip(FMT.event(account)))
    assert isinstance(parsed, wire.AccountUpdate)
    assert parsed.positions[0].quantity == D("-0.010")
    assert parsed.balances[0].wallet_balance == D("9999.7")
    doc = json.loads(fx.DOC_ACCOUNT_UPDATE)
    assert set(doc["a"]["P"][0]) <= set(FMT.event(account)["a"]["P"][0])

    config = AccountConfigUpdate(
        seq=3, event_time_ms=T0, transaction_time_ms=T0, symbol="BTCUSDT", leverage=25
    )
    parsed_config = wire.parse_user_event(roundtrip(FMT.event(config)))
    assert isinstance(parsed_config, wire.AccountConfigUpdate)
    assert (parsed_config.symbol, parsed_config.leverage) == ("BTCUSDT", 25)


def test_algo_update_echoes_settings_and_matches_the_documented_fields():
    algo = sim_order(
        order_id="7",
        order_type=OrderType.STOP_MARKET,
        orig_type=OrderType.STOP_MARKET,
        price=None,
        stop_price=D("58000.0"),
        algo=True,
        algo_status=AlgoStatus.CANCELED,
        status=VenueOrderStatus.CANCELED,
    )
    event = AlgoUpdate(
        seq=4,
        event_time_ms=T0,
        transaction_time_ms=T0,
        algo_status=AlgoStatus.CANCELED,
        order=algo,
    )
    out = FMT.event(event, {"7": AlgoSettings(working_type="MARK_PRICE")})
    doc = json.loads(fx.DOC_ALGO_UPDATE)

    assert not set(doc["o"]) - set(out["o"])
    assert out["o"]["wt"] == "MARK_PRICE"
    parsed = wire.parse_user_event(roundtrip(out))
    assert isinstance(parsed, wire.AlgoUpdate)
    assert parsed.algo.algo_status.value == "CANCELED"
    assert parsed.algo.execution_known is True


def test_listen_key_expired_and_error_bodies_parse():
    expired = wire.parse_user_event(roundtrip(listen_key_expired("abc123", T0)))
    assert isinstance(expired, wire.ListenKeyExpired)
    assert expired.event_time_ms == T0
    body = wire.parse_error_body(
        roundtrip(error_body(-1022, "Signature for this request is not valid."))
    )
    assert body is not None
    assert body.code == -1022


# --------------------------------------------------------------------------- account


def test_positions_balances_and_account_parse_back():
    pos = VenuePosition(
        symbol="BTCUSDT",
        quantity=D("-0.250"),
        entry_price=D("60000.5"),
        unrealized_pnl=D("-12.5"),
        leverage=20,
    )
    view = PositionView(pos, mark_price=D("60050.5"), max_notional=D(10_000_000), update_time_ms=T0)
    v2 = wire.parse_positions(roundtrip([FMT.position_v2(view)]))[0]
    v3 = wire.parse_positions(roundtrip([FMT.position_v3(view)]))[0]
    assert (v2.quantity, v2.entry_price, v2.leverage) == (D("-0.25"), D("60000.5"), 20)
    assert (v3.quantity, v3.unrealized_pnl) == (D("-0.25"), D("-12.5"))
    assert not set(json.loads(fx.DOC_POSITION_V2)[0]) - set(FMT.position_v2(view))
    assert not set(json.loads(fx.DOC_POSITION_V3)[0]) - set(FMT.position_v3(view))
    assert FMT.position_v3(view)["notional"] == "-15012.62500000"

    balance = SimBalance("USDT", D(10_000), D("-12.5"), D("9987.5"), D("750.0"), D("9237.5"))
    parsed_balance = wire.parse_balances(roundtrip([FMT.balance(balance, T0)]))[0]
    assert parsed_balance.wallet_balance == D(10_000)
    assert parsed_balance.available_balance == D("9237.5")
    assert not set(json.loads(fx.DOC_BALANCE_V3)[0]) - set(FMT.balance(balance, T0))

    for version in (2, 3):
        account = FMT.account(balance, [view], T0, version=version)
        info = wire.parse_account(roundtrip(account))
        assert info.total_wallet_balance == D(10_000)
        assert info.positions[0].quantity == D("-0.25")
        doc = json.loads(fx.CCXT_ACCOUNT_V3)
        assert not set(doc) - set(account) - {"assets", "positions"}
        assert not set(doc["assets"][0]) - set(account["assets"][0])
        assert not set(doc["positions"][0]) - set(account["positions"][0])
    # Position margin 15012.625/20 = 750.63125 of the 750 initial margin: no order margin.
    assert FMT.account(balance, [view], T0)["totalOpenOrderInitialMargin"] == "0.00000000"


def test_exchange_info_parses_into_the_engine_filters():
    engine = SimEngine(SimConfig(), random.Random(1))
    info = wire.parse_exchange_info(roundtrip(FMT.exchange_info(engine.exchange_info())))

    by_symbol = {s.symbol: s for s in info.symbols}
    for spec in SimConfig().symbols:
        rules = by_symbol[spec.symbol]
        f = spec.filters
        assert (rules.tick_size, rules.step_size, rules.min_qty) == (
            f.tick_size,
            f.step_size,
            f.min_qty,
        )
        assert (rules.min_notional, rules.max_num_orders) == (f.min_notional, f.max_num_orders)
        assert (rules.percent_price_up, rules.market_max_qty) == (f.multiplier_up, f.market_max_qty)
        assert rules.is_trading
    limits = {(r.rate_limit_type, r.interval, r.interval_num): r.limit for r in info.rate_limits}
    assert limits == {
        ("REQUEST_WEIGHT", "MINUTE", 1): 2400,
        ("ORDERS", "MINUTE", 1): 1200,
        ("ORDERS", "SECOND", 10): 300,
    }
    doc_symbol = json.loads(fx.DOC_EXCHANGE_INFO)["symbols"][0]
    ours = FMT.exchange_info(engine.exchange_info())["symbols"][0]
    assert not set(doc_symbol) - set(ours)


def test_premium_index_parses_back_and_funds_on_the_next_8h_boundary():
    eight_hours = 8 * 3600 * 1000
    assert T0 % eight_hours == 0  # 2026-01-01T00:00Z is a funding instant
    for now_ms, expected in (
        (T0, T0 + eight_hours),  # exactly at a funding instant: the next one
        (T0 + 1, T0 + eight_hours),
        (T0 - 1, T0),
        (T0 + eight_hours + 123, T0 + 2 * eight_hours),
    ):
        body = FMT.premium_index("BTCUSDT", D("60000.1"), now_ms)
        assert body["nextFundingTime"] == expected
        assert body["markPrice"] == "60000.10000000"
        parsed = wire.parse_mark_price(json.loads(json.dumps(body)))
        assert parsed == wire.MarkPrice(
            symbol="BTCUSDT",
            mark_price=D("60000.1"),
            index_price=D("60000.1"),
            estimated_settle_price=D("60000.1"),
            last_funding_rate=D(0),
            interest_rate=D("0.0001"),
            next_funding_time_ms=expected,
            time_ms=now_ms,
        )


def test_money_has_eight_places_and_no_negative_zero():
    assert money(D("1.5")) == "1.50000000"
    assert money(D("-0.000000001")) == "0.00000000"
    assert money(D("-2")) == "-2.00000000"


# --------------------------------------------------------------------------- properties

quantities = st.integers(min_value=1, max_value=100_000).map(lambda n: D(n) / 1000)  # 0.001 steps
prices = st.integers(min_value=1, max_value=5_000_000).map(lambda n: D(n) / 10)  # 0.1 ticks


@settings(max_examples=150)
@given(
    qty=quantities,
    price=prices,
    filled_fraction=st.integers(min_value=0, max_value=1000),
    side=st.sampled_from(Side),
    tif=st.sampled_from([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTX]),
    reduce_only=st.booleans(),
    shape=st.sampled_from(OrderShape),
)
def test_rendered_orders_parse_back_to_the_engine_record(
    qty, price, filled_fraction, side, tif, reduce_only, shape
):
    filled = (qty * filled_fraction / 1000).quantize(D("0.001"), rounding="ROUND_DOWN")
    status = (
        VenueOrderStatus.NEW
        if filled == 0
        else VenueOrderStatus.FILLED
        if filled == qty
        else VenueOrderStatus.PARTIALLY_FILLED
    )
    order = sim_order(
        quantity=qty,
        filled_qty=filled,
        cum_quote=filled * price,
        price=price,
        side=side,
        time_in_force=tif,
        reduce_only=reduce_only,
        status=status,
    )
    parsed = wire.parse_order(roundtrip(FMT.order(order, shape)))
    expected = order.venue_order

    assert attrs.evolve(parsed, avg_price=None) == attrs.evolve(expected, avg_price=None)
    if filled:
        assert parsed.avg_price == price  # one price, so the average is exact
    else:
        assert parsed.avg_price is None


@settings(max_examples=150)
@given(
    qty=quantities,
    price=prices,
    trade_id=st.integers(min_value=1, max_value=2**40),
    fee=st.integers(min_value=-(10**9), max_value=10**9).map(lambda n: D(n) / 10**8),
    pnl=st.integers(min_value=-(10**12), max_value=10**12).map(lambda n: D(n) / 10**8),
    maker=st.booleans(),
    side=st.sampled_from(Side),
)
def test_every_fill_survives_the_stream_and_the_rest_backfill(
    qty, price, trade_id, fee, pnl, maker, side
):
    """I10 through the wire: the stream's fill and userTrades' fill are the engine's fill."""
    order = sim_order(
        quantity=qty,
        filled_qty=qty,
        cum_quote=qty * price,
        price=price,
        side=side,
        status=VenueOrderStatus.FILLED,
    )
    event = OrderTradeUpdate(
        seq=5,
        event_time_ms=T0 + 1,
        transaction_time_ms=T0 + 1,
        execution_type=ExecutionType.TRADE,
        order=order,
        last_filled_qty=qty,
        last_filled_price=price,
        trade_id=str(trade_id),
        commission=fee,
        realized_pnl=pnl,
        maker=maker,
    )
    truth = Fill(
        symbol="BTCUSDT",
        trade_id=str(trade_id),
        order_id="42",
        client_order_id=order.client_order_id,
        side=side,
        quantity=qty,
        price=price,
        fee=fee,
        realized_pnl=pnl,
        maker=maker,
        venue_time_ms=T0 + 1,
    )
    streamed = wire.parse_user_event(roundtrip(FMT.event(event)))
    assert isinstance(streamed, wire.OrderTradeUpdate)
    assert streamed.fill == truth

    backfilled = wire.parse_user_trades(roundtrip([FMT.user_trade(truth)]))[0]
    assert backfilled == attrs.evolve(truth, client_order_id="")
    assert backfilled.key == streamed.fill.key


@settings(max_examples=100)
@given(
    qty=st.integers(min_value=-(10**6), max_value=10**6).map(lambda n: D(n) / 1000),
    entry=prices,
    mark=prices,
    leverage=st.integers(min_value=1, max_value=125),
    side=st.sampled_from(PositionSide),
)
def test_positions_parse_back_with_sign_and_leverage(qty, entry, mark, leverage, side):
    pnl = ((mark - entry) * qty).quantize(D("0.00000001"))
    pos = VenuePosition(
        symbol="BTCUSDT",
        quantity=qty,
        entry_price=entry if qty else D(0),
        position_side=side,
        unrealized_pnl=pnl,
        leverage=leverage,
    )
    view = PositionView(pos, mark_price=mark, max_notional=D(10**7), update_time_ms=T0)
    parsed = wire.parse_positions(roundtrip([FMT.position_v2(view)]))[0]

    assert parsed.quantity == qty
    assert parsed.entry_price == pos.entry_price
    assert parsed.unrealized_pnl == pnl
    assert parsed.leverage == leverage
    assert parsed.position_side is side
