from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalper.core.ids import Role
from scalper.core.intents import Intent, IntentError, IntentKind, to_decimal
from scalper.core.types import OrderType, PositionMode, PositionSide, Side, TimeInForce


def entry(**kw: Any) -> Intent:
    base: dict[str, Any] = {
        "intent_id": "i-1",
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "quantity": Decimal("0.01"),
    }
    base.update(kw)
    return Intent(**base)


def test_market_entry_defaults():
    it = entry()
    assert it.kind is IntentKind.ENTRY
    assert it.order_type is OrderType.MARKET
    assert it.is_risk_increasing
    assert not it.is_exit
    assert it.correlation_id == "i-1"
    assert it.time_in_force is None
    assert it.role is Role.ENTRY


def test_limit_gets_gtc_by_default():
    it = entry(order_type=OrderType.LIMIT, price="65000.5")
    assert it.time_in_force is TimeInForce.GTC
    assert it.price == Decimal("65000.5")


def test_float_quantity_is_taken_by_repr_not_binary_expansion():
    assert entry(quantity=0.1).quantity == Decimal("0.1")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": -1}, "quantity"),
        ({"quantity": "NaN"}, "quantity"),
        ({"quantity": float("nan")}, "quantity"),
        ({"quantity": float("inf")}, "quantity"),
        ({"quantity": "Infinity"}, "quantity"),
        ({"quantity": "abc"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": None}, "quantity"),
        ({"quantity": [1]}, "quantity"),
        ({"order_type": OrderType.LIMIT}, "price"),
        ({"order_type": OrderType.LIMIT, "price": 0}, "price"),
        ({"price": 100}, "price"),
        ({"order_type": OrderType.STOP_MARKET}, "stop_price"),
        ({"order_type": OrderType.STOP, "price": 10}, "stop_price"),
        ({"stop_price": 100}, "stop_price"),
        ({"order_type": OrderType.STOP_MARKET, "stop_price": -5}, "stop_price"),
        ({"symbol": "btcusdt"}, "symbol"),
        ({"symbol": ""}, "symbol"),
        ({"intent_id": ""}, "intent_id"),
        ({"reduce_only": True}, "kind"),
        ({"kind": IntentKind.EXIT}, "kind"),
        ({"kind": IntentKind.PROTECT, "reduce_only": True}, "order_type"),
        ({"time_in_force": TimeInForce.GTC}, "time_in_force"),
        ({"order_type": OrderType.TRAILING_STOP_MARKET}, "order_type"),
    ],
)
def test_bad_intents_name_the_field(kwargs, field):
    with pytest.raises(IntentError) as exc:
        entry(**kwargs)
    assert exc.value.field == field
    assert field in str(exc.value)


def test_invalid_enum_values_are_rejected():
    with pytest.raises(ValueError, match="HOLD"):
        entry(side="HOLD")


def test_close_position_rules():
    stop = Intent(
        intent_id="i-2",
        symbol="BTCUSDT",
        side=Side.SELL,
        quantity=None,
        kind=IntentKind.PROTECT,
        order_type=OrderType.STOP_MARKET,
        stop_price=Decimal("60000"),
        close_position=True,
    )
    assert stop.is_exit
    assert stop.notional(Decimal(60000)) == 0
    with pytest.raises(IntentError) as exc:
        Intent("i-3", "BTCUSDT", Side.SELL, Decimal(1), kind=IntentKind.EXIT, close_position=True)
    assert exc.value.field == "close_position"
    with pytest.raises(IntentError) as exc:
        Intent(
            "i-3",
            "BTCUSDT",
            Side.SELL,
            Decimal(1),
            kind=IntentKind.PROTECT,
            order_type=OrderType.STOP_MARKET,
            stop_price=Decimal(1),
            close_position=True,
        )
    assert exc.value.field == "quantity"


def test_exit_is_decided_by_reduce_only_not_type():
    # A stop-market that is not reduce-only can open a position when it triggers: an entry.
    naked_stop = entry(order_type=OrderType.STOP_MARKET, stop_price=Decimal(70000))
    assert naked_stop.is_risk_increasing
    # A reduce-only limit is an exit, even though LIMIT is usually an entry type.
    tp_limit = entry(
        kind=IntentKind.EXIT,
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        price=70000,
        reduce_only=True,
    )
    assert tp_limit.is_exit
    assert not tp_limit.is_risk_increasing


def test_hedge_mode_checks():
    long_entry = entry(position_side=PositionSide.LONG)
    long_entry.check_position_mode(PositionMode.HEDGE)
    with pytest.raises(IntentError) as exc:
        long_entry.check_position_mode(PositionMode.ONE_WAY)
    assert exc.value.field == "position_side"
    with pytest.raises(IntentError) as exc:
        entry().check_position_mode(PositionMode.HEDGE)
    assert exc.value.field == "position_side"
    wrong = entry(position_side=PositionSide.SHORT)  # BUY opening a SHORT leg
    with pytest.raises(IntentError) as exc:
        wrong.check_position_mode(PositionMode.HEDGE)
    assert exc.value.field == "side"
    exit_long = entry(
        kind=IntentKind.EXIT, side=Side.SELL, reduce_only=True, position_side=PositionSide.LONG
    )
    exit_long.check_position_mode(PositionMode.HEDGE)
    bad_exit = entry(
        kind=IntentKind.EXIT, side=Side.BUY, reduce_only=True, position_side=PositionSide.LONG
    )
    with pytest.raises(IntentError):
        bad_exit.check_position_mode(PositionMode.HEDGE)


def test_to_order_request_carries_the_full_spec():
    it = entry(order_type=OrderType.LIMIT, price=Decimal(100), time_in_force=TimeInForce.GTX)
    req = it.to_order_request("sc-E-0123456789abcdef-0")
    assert req.client_order_id == "sc-E-0123456789abcdef-0"
    assert (req.symbol, req.side, req.order_type, req.quantity, req.price) == (
        "BTCUSDT",
        Side.BUY,
        OrderType.LIMIT,
        Decimal("0.01"),
        Decimal(100),
    )
    assert req.time_in_force is TimeInForce.GTX
    assert not req.is_exit


decimals = st.decimals(allow_nan=True, allow_infinity=True)


@given(decimals)
def test_quantity_validation_is_exact(q):
    if q.is_finite() and q > 0:
        assert entry(quantity=q).quantity == q
    else:
        with pytest.raises(IntentError) as exc:
            entry(quantity=q)
        assert exc.value.field == "quantity"


@given(
    st.sampled_from(list(OrderType)),
    st.booleans(),
    st.booleans(),
    st.sampled_from(list(IntentKind)),
    st.one_of(st.none(), st.decimals(min_value=1, max_value=10**6, places=2)),
    st.one_of(st.none(), st.decimals(min_value=1, max_value=10**6, places=2)),
)
def test_every_valid_intent_is_consistently_classified(
    otype, reduce_only, close_position, kind, price, stop
):
    try:
        it = Intent(
            "i-9",
            "ETHUSDT",
            Side.SELL,
            None if close_position else Decimal(1),
            kind=kind,
            order_type=otype,
            price=price,
            stop_price=stop,
            reduce_only=reduce_only,
            close_position=close_position,
        )
    except IntentError as e:
        field = e.field
        assert field, "a rejection must name the field"
        return
    # The kind a strategy chose always agrees with the one classification that gates it.
    assert it.is_exit == (kind is not IntentKind.ENTRY)
    assert it.is_exit == (reduce_only or close_position)
    assert it.is_risk_increasing != it.is_exit


def test_to_decimal_names_field():
    with pytest.raises(IntentError, match=r"^px:"):
        to_decimal("1e", "px")
    assert to_decimal(3, "px") == Decimal(3)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("intent_id", "a\x00b", "control character U+0000 at 1"),
        ("intent_id", "line\nbreak", "control character U+000A at 4"),
        ("intent_id", "del\x7f", "control character U+007F at 3"),
        ("intent_id", "x" * 129, "at most 128 characters, got 129"),
        ("intent_id", "bad\ud800", "lone surrogate"),
        ("correlation_id", "c\x1b[31m", "control character U+001B at 1"),
        ("correlation_id", "y" * 200, "at most 128 characters"),
    ],
)
def test_ids_the_journal_cannot_store_are_refused_naming_the_field(
    field: str, value: str, words: str
) -> None:
    # A NUL in an id once reached the Router and hung it; the intent itself must refuse it.
    kwargs: dict[str, Any] = {"intent_id": "ok", "symbol": "BTCUSDT", "side": Side.BUY}
    kwargs["quantity"] = Decimal("0.002")
    kwargs[field] = value
    with pytest.raises(IntentError) as info:
        Intent(**kwargs)
    assert info.value.field == field
    assert words in info.value.reason


def test_printable_unicode_ids_of_the_maximum_length_are_accepted() -> None:
    intent = Intent(intent_id="é" * 128, symbol="BTCUSDT", side=Side.BUY, quantity=Decimal("0.002"))
    assert intent.correlation_id == intent.intent_id
    named = Intent(
        intent_id="ok",
        correlation_id="策略-1",
        symbol="BTCUSDT",
        side=Side.BUY,
        quantity=Decimal("1"),
    )
    assert named.correlation_id == "策略-1"
