"""Fuzzing the wire layer: malformed input raises MalformedMessage and nothing else.

Two sources of hostile input: random JSON values (with keys drawn from Binance's own field
names so the parsers get past the first lookup), and real messages (wire_fixtures) mutated
the ways corruption and protocol drift actually look: keys dropped, types changed, "NaN"
and "Infinity" strings, huge numbers, empty strings, nesting changed.
"""

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalper.core.errors import ErrorVerdict, Operation
from scalper.core.model import OrderRequest
from scalper.core.types import OrderType, PositionMode, PositionSide, Side, TimeInForce
from scalper.venues.binance import wire
from tests.venues.binance import wire_fixtures as fx

CORPUS = fx.corpus()
PARSERS: dict[str, Callable[[Any], Any]] = {name: getattr(wire, name) for name in CORPUS}


def _collect_keys(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(k)
            _collect_keys(v, out)
    elif isinstance(value, list):
        for v in value:
            _collect_keys(v, out)


_all_keys: set[str] = set()
for _messages in CORPUS.values():
    for _m in _messages:
        _collect_keys(_m, _all_keys)
KEYS = sorted(_all_keys)

POISON: list[Any] = [
    "NaN",
    "nan",
    "-NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "1e99999",
    "-1e-99999",
    "1" * 80,
    "",
    " ",
    "0x10",
    "1_000",
    "١٢٣",  # Arabic-Indic digits: int() would accept them, Binance never sends them
    "true",
    "-1",
    "0",
    10**40,
    -(10**40),
    2**63,
    -1,
    0,
    1.5,
    float("nan"),
    float("inf"),
    Decimal("NaN"),
    Decimal("1E+400"),
    True,
    None,
    [],
    {},
    [None],
    {"e": "ORDER_TRADE_UPDATE"},
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(POISON[:20]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=6
        ),
    ),
    max_leaves=25,
)


def _finite_decimals(value: Any) -> None:
    if isinstance(value, Decimal):
        assert value.is_finite(), value
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            _finite_decimals(getattr(value, field.name))
    elif isinstance(value, tuple):
        for item in value:
            _finite_decimals(item)


def _check_result(name: str, result: Any) -> None:
    """A parser that returns must return a well-formed record, never a raw value."""
    _finite_decimals(result)
    if name == "parse_server_time":
        assert isinstance(result, int)
        assert result > 0
    elif name == "parse_listen_key":
        assert isinstance(result, str)
        assert result
    elif name == "parse_position_mode":
        assert isinstance(result, PositionMode)
    elif isinstance(result, tuple):
        for item in result:
            assert attrs.has(type(item))
    else:
        assert attrs.has(type(result))


def _call(name: str, value: Any) -> None:
    try:
        result = PARSERS[name](value)
    except wire.MalformedMessage as exc:
        error = exc
    else:
        _check_result(name, result)
        return
    assert error.field  # always names where it went wrong
    assert len(error.excerpt) <= 240


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(PARSERS)), value=json_values)
def test_random_json_into_every_parser(name: str, value: Any) -> None:
    _call(name, value)


# --- mutations of real messages ------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append((*prefix, i))
            out.extend(_paths(v, (*prefix, i)))
    return out


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for step in path[:-1]:
        node = node[step]
    return node


@st.composite
def mutated_messages(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(CORPUS)))
    message = copy.deepcopy(draw(st.sampled_from(CORPUS[name])))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(message)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(message, path)
        action = draw(st.sampled_from(["drop", "poison", "random", "stringify", "wrap"]))
        key = path[-1]
        if action == "drop":
            del parent[key]
        elif action == "poison":
            parent[key] = copy.deepcopy(draw(st.sampled_from(POISON)))
        elif action == "random":
            parent[key] = draw(json_values)
        elif action == "stringify":
            parent[key] = json.dumps(parent[key], default=str)
        else:
            parent[key] = [parent[key]]
    return name, message


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated_messages())
def test_mutated_real_messages_only_raise_malformed(case: tuple[str, Any]) -> None:
    name, message = case
    _call(name, message)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_is_valid_before_mutation(name: str) -> None:
    # The mutation fuzzer starts from valid messages; if these broke, it would prove nothing.
    for message in CORPUS[name]:
        _check_result(name, PARSERS[name](message))


@settings(max_examples=200)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        json_values.map(lambda v: json.dumps(v, default=str)),
    )
)
def test_raw_frames_decode_or_raise_malformed(data: bytes | str) -> None:
    try:
        event = wire.parse_user_message(data)
    except wire.MalformedMessage:
        return
    assert attrs.has(type(event))


@settings(max_examples=200)
@given(
    status=st.integers(100, 599),
    body=st.one_of(json_values, st.binary(max_size=100), st.text(max_size=100)),
    operation=st.sampled_from(list(Operation)),
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "Retry-After",
                    "X-MBX-USED-WEIGHT-1M",
                    "x-mbx-order-count-10s",
                    "X-MBX-USED-WEIGHT-",
                    "Other",
                ]
            ),
            st.text(max_size=10),
        ),
        max_size=4,
    ),
)
def test_map_error_classifies_any_body(status, body, operation, headers) -> None:
    info = wire.map_error(status, body, operation=operation, headers=headers)
    assert isinstance(info.verdict, ErrorVerdict)
    assert info.http_status == status
    assert info.verdict.http_status == status
    assert len(info.message) <= 300


# --- builders: every accepted request is routed and shaped by the rules --------------------

_prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("100000"), places=4)


@st.composite
def order_requests(draw: st.DrawFn) -> tuple[OrderRequest, PositionMode]:
    mode = draw(st.sampled_from(list(PositionMode)))
    order_type = draw(st.sampled_from(list(OrderType)))
    close = draw(st.booleans()) and order_type in (
        OrderType.STOP_MARKET,
        OrderType.TAKE_PROFIT_MARKET,
    )
    side = draw(st.sampled_from(list(Side)))
    if mode is PositionMode.HEDGE:
        position_side = draw(st.sampled_from([PositionSide.LONG, PositionSide.SHORT]))
    else:
        position_side = PositionSide.BOTH
    exit_ = close or draw(st.booleans())
    if mode is PositionMode.HEDGE and exit_:
        side = Side.SELL if position_side is PositionSide.LONG else Side.BUY
    req = OrderRequest(
        symbol=draw(st.sampled_from(["BTCUSDT", "ETHUSDT", "1000PEPEUSDT"])),
        side=side,
        order_type=order_type,
        client_order_id=draw(st.from_regex(r"[\.A-Z\:/a-z0-9_-]{1,36}", fullmatch=True)),
        quantity=None if close else draw(_prices),
        price=draw(_prices) if order_type.needs_price else None,
        stop_price=draw(_prices) if order_type.needs_stop_price else None,
        time_in_force=draw(
            st.sampled_from(
                [None, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTX]
            )
        ),
        reduce_only=exit_ and not close,
        close_position=close,
        position_side=position_side,
    )
    return req, mode


@settings(max_examples=200)
@given(case=order_requests(), ts=st.integers(1, 2**45))
def test_valid_requests_build_route_and_sign(
    case: tuple[OrderRequest, PositionMode], ts: int
) -> None:
    req, mode = case
    trailing = req.order_type is OrderType.TRAILING_STOP_MARKET
    callback = Decimal("1.5") if trailing else None
    built = wire.new_order(req, position_mode=mode, callback_rate=callback)
    params = dict(built.params)
    assert len(params) == len(built.params), "no duplicate parameters"
    if req.order_type.is_conditional:
        assert built.path == "/fapi/v1/algoOrder"
        assert params["algoType"] == "CONDITIONAL"
        assert params["clientAlgoId"] == req.client_order_id
        assert "newClientOrderId" not in params
        assert "stopPrice" not in params
        if req.stop_price is not None:
            assert Decimal(params["triggerPrice"]) == req.stop_price
    else:
        assert built.path == "/fapi/v1/order"
        assert params["newClientOrderId"] == req.client_order_id
        assert "triggerPrice" not in params
    if mode is PositionMode.HEDGE:
        assert "reduceOnly" not in params
        assert params["positionSide"] == req.position_side.value
    else:
        assert "positionSide" not in params
        assert ("reduceOnly" in params) == (req.reduce_only and not req.close_position)
    if req.close_position:
        assert params["closePosition"] == "true"
        assert "quantity" not in params
    else:
        assert req.quantity is not None
        assert Decimal(params["quantity"]) == req.quantity
    assert "e" not in params.get("quantity", "").lower(), "plain notation only"
    enc = wire.encode(built, credentials=wire.ApiCredentials("key", b"secret"), timestamp_ms=ts)
    assert wire.verify_signature(enc.query, enc.body, b"secret")
