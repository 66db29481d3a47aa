"""The Binance wire layer against real protocol vectors (reference/binance_usdm.md)."""

import json
import urllib.parse
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.errors import ErrorClass, Operation
from scalper.core.model import Fill, OrderRequest, VenueOrder, VenueOrderStatus, VenuePosition
from scalper.core.types import OrderType, PositionMode, PositionSide, Side, TimeInForce
from scalper.venues.binance import wire
from tests.venues.binance import wire_fixtures as fx

D = Decimal
ONE_WAY = PositionMode.ONE_WAY
HEDGE = PositionMode.HEDGE
CREDS = wire.ApiCredentials(
    api_key="vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
    secret=fx.SIGN_SECRET,
)


def ccxt_params(name: str) -> dict[str, str]:
    _, output = fx.CCXT_REQUESTS[name]
    return {k: v for k, v in urllib.parse.parse_qsl(output) if k not in fx.CCXT_SKIP_KEYS}


def order(
    order_type: OrderType = OrderType.LIMIT,
    side: Side = Side.BUY,
    quantity: str | None = "0.1",
    price: str | None = "55",
    stop_price: str | None = None,
    **kw: Any,
) -> OrderRequest:
    return OrderRequest(
        symbol=kw.pop("symbol", "LTCUSDT"),
        side=side,
        order_type=order_type,
        client_order_id=kw.pop("client_order_id", "sc-E-0123456789abcdef-0"),
        quantity=None if quantity is None else D(quantity),
        price=None if price is None else D(price),
        stop_price=None if stop_price is None else D(stop_price),
        **kw,
    )


# --- signing ------------------------------------------------------------------------------


def test_sign_reproduces_binance_official_hmac_vector() -> None:
    signed = wire.sign(fx.SIGN_PARAMS, fx.SIGN_SECRET, fx.SIGN_TIMESTAMP, 5000)
    assert signed == f"{fx.SIGN_PAYLOAD}&signature={fx.SIGN_SIGNATURE}"


def test_mixed_query_and_body_signature_is_plain_concatenation() -> None:
    assert (
        wire.hmac_signature(fx.SIGN_MIXED_QUERY + fx.SIGN_MIXED_BODY, fx.SIGN_SECRET)
        == fx.SIGN_MIXED_SIGNATURE
    )
    body = f"{fx.SIGN_MIXED_BODY}&signature={fx.SIGN_MIXED_SIGNATURE}"
    assert wire.verify_signature(fx.SIGN_MIXED_QUERY, body, fx.SIGN_SECRET)
    # Upper-case hex is accepted (the docs say case-insensitive); one flipped byte is not.
    upper = f"{fx.SIGN_MIXED_BODY}&signature={fx.SIGN_MIXED_SIGNATURE.upper()}"
    assert wire.verify_signature(fx.SIGN_MIXED_QUERY, upper, fx.SIGN_SECRET)
    assert not wire.verify_signature(
        fx.SIGN_MIXED_QUERY.replace("BUY", "SELL"), body, fx.SIGN_SECRET
    )
    assert not wire.verify_signature(fx.SIGN_MIXED_QUERY, fx.SIGN_MIXED_BODY, fx.SIGN_SECRET)


def test_signed_post_goes_in_the_body_and_verifies_server_side() -> None:
    req = wire.new_order(order(), position_mode=ONE_WAY)
    enc = wire.encode(req, credentials=CREDS, timestamp_ms=1_700_000_000_123, recv_window_ms=5000)
    assert enc.method is wire.HttpMethod.POST
    assert enc.query == ""
    assert enc.body.endswith(enc.body.rpartition("&signature=")[2])
    assert "&recvWindow=5000&timestamp=1700000000123&signature=" in enc.body
    assert dict(enc.headers)["X-MBX-APIKEY"] == CREDS.api_key
    assert dict(enc.headers)["Content-Type"] == "application/x-www-form-urlencoded"
    assert wire.verify_signature(enc.query, enc.body, CREDS.secret)
    assert not wire.verify_signature(enc.query, enc.body, b"another-secret")


def test_signed_get_goes_in_the_query() -> None:
    enc = wire.encode(
        wire.query_order("BTCUSDT", client_order_id="sc-E-0123456789abcdef-0"),
        credentials=CREDS,
        timestamp_ms=1,
    )
    assert enc.body == ""
    assert enc.target.startswith(
        "/fapi/v1/order?symbol=BTCUSDT&origClientOrderId=sc-E-0123456789abcdef-0&recvWindow=5000&timestamp=1&signature="
    )
    assert enc.url("https://fapi.binance.com/") == "https://fapi.binance.com" + enc.target
    assert wire.verify_signature(enc.query, enc.body, CREDS.secret)


def test_public_and_user_stream_requests_are_not_signed() -> None:
    info = wire.encode(wire.exchange_info())
    assert (info.query, info.body, info.headers) == ("", "", ())
    lk = wire.encode(wire.keepalive_listen_key(), credentials=CREDS)
    assert lk.method is wire.HttpMethod.PUT
    assert "signature" not in lk.body + lk.query
    assert dict(lk.headers)["X-MBX-APIKEY"] == CREDS.api_key
    with pytest.raises(wire.WireRequestError, match="credentials"):
        wire.encode(wire.create_listen_key())
    with pytest.raises(wire.WireRequestError, match="timestamp_ms"):
        wire.encode(wire.balance(), credentials=CREDS)


@pytest.mark.parametrize(
    ("params", "ts", "window", "field"),
    [
        ([("timestamp", "1")], 1, 5000, "params"),
        ([("signature", "x")], 1, 5000, "params"),
        ([], 0, 5000, "timestamp_ms"),
        ([], 1, 0, "recv_window_ms"),
        ([], 1, 60_001, "recv_window_ms"),
        ([("", "x")], 1, 5000, "params[0]"),
    ],
)
def test_sign_rejects_bad_input_naming_the_field(params, ts, window, field) -> None:
    with pytest.raises(wire.SigningError) as exc:
        wire.sign(params, fx.SIGN_SECRET, ts, window)
    assert exc.value.field == field


def test_secrets_never_appear_in_reprs_or_errors() -> None:
    secret_text = fx.SIGN_SECRET.decode()
    assert secret_text not in repr(CREDS)
    assert CREDS.api_key not in repr(CREDS)
    enc = wire.encode(wire.balance(), credentials=CREDS, timestamp_ms=1_700_000_000_000)
    signature = enc.query.rpartition("signature=")[2]
    assert len(signature) == 64
    for text in (repr(enc), str(enc)):
        assert signature not in text
        assert CREDS.api_key not in text
        assert secret_text not in text
        assert "signature=<redacted>" in text
    with pytest.raises(wire.SigningError) as exc:
        wire.ApiCredentials(api_key="k", secret=b"")
    assert "secret" in str(exc.value)
    # A listen key inside a malformed message is redacted from the error.
    key = "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"
    with pytest.raises(wire.MalformedMessage) as mexc:
        wire.parse_user_event({"e": "listenKeyExpired", "E": "soon", "listenKey": key})
    assert key not in str(mexc.value)
    assert "<redacted>" in str(mexc.value)
    assert key not in repr(wire.parse_user_message(fx.DOC_LISTEN_KEY_EXPIRED))
    # An error page that echoes a signed URL does not leak the signature into the verdict.
    info = wire.map_error(
        502,
        f"<html>upstream failed for /fapi/v1/order?{enc.query}</html>",
        operation=Operation.CREATE,
    )
    assert signature not in info.message


# --- request builders against ccxt's request fixtures (section 9) -------------------------


@pytest.mark.parametrize(
    ("name", "req"),
    [
        ("swap_market_buy", order(OrderType.MARKET, price=None)),
        ("swap_limit_buy", order()),
        ("swap_limit_sell", order(side=Side.SELL, quantity="0.2", price="100")),
        ("swap_limit_reduce_only", order(quantity="0.2", price="60", reduce_only=True)),
        ("swap_limit_post_only", order(quantity="0.2", price="50", time_in_force=TimeInForce.GTX)),
    ],
)
def test_plain_orders_match_ccxt_fixtures(name: str, req: OrderRequest) -> None:
    built = wire.new_order(req, position_mode=ONE_WAY)
    assert (built.method, built.path) == (wire.HttpMethod.POST, "/fapi/v1/order")
    params = dict(built.params)
    assert params.pop("newClientOrderId") == req.client_order_id
    assert params == ccxt_params(name)
    assert len(built.params) == len(params) + 1, "no duplicate keys"
    assert (built.weight, built.orders_10s, built.orders_1m) == (0, 1, 1)
    assert built.operation is Operation.CREATE


@pytest.mark.parametrize(
    ("name", "req", "extra"),
    [
        (
            "swap_stop_limit",
            order(OrderType.STOP, quantity="0.21", price="51", stop_price="101"),
            {},
        ),
        (
            "swap_take_profit_limit",
            order(
                OrderType.TAKE_PROFIT,
                side=Side.SELL,
                quantity="0.21",
                price="104",
                stop_price="108",
            ),
            {},
        ),
        (
            "swap_trailing",
            order(
                OrderType.TRAILING_STOP_MARKET,
                side=Side.SELL,
                quantity="0.11",
                price=None,
                symbol="BTCUSDT",
                reduce_only=True,
            ),
            {"callback_rate": D("5")},
        ),
    ],
)
def test_conditional_orders_go_to_algo_endpoint_like_ccxt(
    name: str, req: OrderRequest, extra: dict[str, Any]
) -> None:
    built = wire.new_order(req, position_mode=ONE_WAY, **extra)
    assert (built.method, built.path) == (wire.HttpMethod.POST, "/fapi/v1/algoOrder")
    params = dict(built.params)
    expected = ccxt_params(name)
    # ccxt also sends newOrderRespType; the algo docs name the id "clientAlgoId".
    expected.pop("newOrderRespType")
    assert params.pop("clientAlgoId") == req.client_order_id
    assert params.pop("workingType") == "MARK_PRICE"
    if req.order_type.needs_price:
        assert params.pop("timeInForce") == "GTC"
    assert params == expected
    assert "newClientOrderId" not in params
    assert "stopPrice" not in params


def test_hedge_mode_exit_sends_position_side_and_never_reduce_only() -> None:
    req = order(
        OrderType.MARKET,
        side=Side.SELL,
        price=None,
        reduce_only=True,
        position_side=PositionSide.LONG,
    )
    built = wire.new_order(req, position_mode=HEDGE)
    assert built.param("positionSide") == "LONG"
    assert built.param("reduceOnly") is None
    # One-way mode: the same exit carries reduceOnly and no positionSide.
    one_way = wire.new_order(
        order(OrderType.MARKET, side=Side.SELL, price=None, reduce_only=True), position_mode=ONE_WAY
    )
    assert one_way.param("reduceOnly") == "true"
    assert one_way.param("positionSide") is None


def test_close_position_stop_has_no_quantity_and_no_reduce_only() -> None:
    req = order(
        OrderType.STOP_MARKET,
        side=Side.SELL,
        quantity=None,
        price=None,
        stop_price="58000.5",
        close_position=True,
        position_side=PositionSide.LONG,
    )
    built = wire.new_order(req, position_mode=HEDGE)
    assert built.params == (
        ("algoType", "CONDITIONAL"),
        ("symbol", "LTCUSDT"),
        ("side", "SELL"),
        ("positionSide", "LONG"),
        ("type", "STOP_MARKET"),
        ("triggerPrice", "58000.5"),
        ("workingType", "MARK_PRICE"),
        ("closePosition", "true"),
        ("clientAlgoId", "sc-E-0123456789abcdef-0"),
    )


@pytest.mark.parametrize(
    ("req", "mode", "field"),
    [
        (order(position_side=PositionSide.LONG), ONE_WAY, "position_side"),
        (order(), HEDGE, "position_side"),
        (order(side=Side.BUY, reduce_only=True, position_side=PositionSide.LONG), HEDGE, "side"),
        (order(price=None), ONE_WAY, "price"),
        (order(OrderType.MARKET), ONE_WAY, "price"),
        (order(stop_price="50"), ONE_WAY, "stop_price"),
        (order(OrderType.STOP_MARKET, price=None), ONE_WAY, "stop_price"),
        (order(quantity=None), ONE_WAY, "quantity"),
        (order(quantity="0"), ONE_WAY, "quantity"),
        (order(quantity="-1"), ONE_WAY, "quantity"),
        (order(price="NaN"), ONE_WAY, "price"),
        (order(close_position=True, quantity=None), ONE_WAY, "close_position"),
        (
            order(OrderType.STOP_MARKET, price=None, stop_price="1", close_position=True),
            ONE_WAY,
            "quantity",
        ),
        (order(OrderType.TRAILING_STOP_MARKET, price=None), ONE_WAY, "callback_rate"),
        (order(client_order_id="has space"), ONE_WAY, "client_order_id"),
        (order(client_order_id="x" * 37), ONE_WAY, "client_order_id"),
        (order(symbol=""), ONE_WAY, "symbol"),
        (order(time_in_force=TimeInForce.GTD), ONE_WAY, "good_till_date_ms"),
    ],
)
def test_new_order_rejects_requests_that_do_not_fit(
    req: OrderRequest, mode: PositionMode, field: str
) -> None:
    with pytest.raises(wire.WireRequestError) as exc:
        wire.new_order(req, position_mode=mode)
    assert exc.value.field == field


def test_trailing_stop_callback_rate_bounds_and_activation() -> None:
    req = order(OrderType.TRAILING_STOP_MARKET, side=Side.SELL, price=None, reduce_only=True)
    for bad in (D("0.09"), D("10.01")):
        with pytest.raises(wire.WireRequestError, match="callback_rate"):
            wire.new_order(req, position_mode=ONE_WAY, callback_rate=bad)
    built = wire.new_order(
        req, position_mode=ONE_WAY, callback_rate=D("0.5"), activate_price=D("70000.00")
    )
    assert built.param("activatePrice") == "70000"
    assert built.param("callbackRate") == "0.5"
    assert built.param("triggerPrice") is None
    with pytest.raises(wire.WireRequestError, match="callback_rate"):
        wire.new_order(order(), position_mode=ONE_WAY, callback_rate=D("1"))


def test_gtd_order_carries_good_till_date() -> None:
    built = wire.new_order(
        order(time_in_force=TimeInForce.GTD),
        position_mode=ONE_WAY,
        good_till_date_ms=1_900_000_000_000,
    )
    assert built.param("timeInForce") == "GTD"
    assert built.param("goodTillDate") == "1900000000000"


def test_config_changes_working_type_and_response_type() -> None:
    cfg = wire.WireConfig(
        working_type="CONTRACT_PRICE", new_order_resp_type="ACK", price_protect=True
    )
    stop = wire.new_order(
        order(OrderType.STOP_MARKET, side=Side.SELL, price=None, stop_price="50", reduce_only=True),
        position_mode=ONE_WAY,
        config=cfg,
    )
    assert stop.param("workingType") == "CONTRACT_PRICE"
    assert stop.param("priceProtect") == "true"
    assert (
        wire.new_order(order(), position_mode=ONE_WAY, config=cfg).param("newOrderRespType")
        == "ACK"
    )
    with pytest.raises(ValueError, match="recv_window_ms"):
        wire.WireConfig(recv_window_ms=60_001)
    with pytest.raises(ValueError, match="working_type"):
        wire.WireConfig(working_type="LAST_PRICE")


def test_cancel_and_query_builders_match_ccxt_fixtures() -> None:
    cancel = wire.cancel_order("LTCUSDT", client_order_id="myid123")
    assert (cancel.method, cancel.path, dict(cancel.params)) == (
        wire.HttpMethod.DELETE,
        "/fapi/v1/order",
        ccxt_params("cancel_by_client_id"),
    )
    assert cancel.operation is Operation.CANCEL
    query = wire.query_order("LTCUSDT", client_order_id="myid123")
    assert (query.method, dict(query.params)) == (
        wire.HttpMethod.GET,
        ccxt_params("fetch_by_client_id"),
    )
    assert query.operation is Operation.QUERY
    assert wire.cancel_order("BTCUSDT", order_id=283194212).params == (
        ("symbol", "BTCUSDT"),
        ("orderId", "283194212"),
    )
    assert wire.cancel_algo_order(algo_id="2146760").params == (("algoId", "2146760"),)
    assert wire.query_algo_order(client_algo_id="sc-S-0123456789abcdef-0").params == (
        ("clientAlgoId", "sc-S-0123456789abcdef-0"),
    )
    ambiguous: tuple[dict[str, Any], ...] = ({}, {"order_id": 1, "client_order_id": "a"})
    for bad in ambiguous:
        with pytest.raises(wire.WireRequestError):
            wire.cancel_order("BTCUSDT", **bad)
    with pytest.raises(wire.WireRequestError, match="order_id"):
        wire.query_order("BTCUSDT", order_id="12ab")


def test_batch_cancel_encodes_id_lists_like_ccxt() -> None:
    built = wire.cancel_batch_orders("ETHUSDT", client_order_ids=["id1", "id2"])
    encoded_value = wire.encode_params(built.params).split("origClientOrderIdList=")[1]
    ccxt_value = fx.CCXT_BATCH_CANCEL_URL.split("origclientorderidlist=")[1].split("&")[0]
    assert encoded_value == ccxt_value
    assert (
        wire.cancel_batch_orders("ETHUSDT", order_ids=[1234567, "2345678"]).param("orderIdList")
        == "[1234567,2345678]"
    )
    with pytest.raises(wire.WireRequestError, match="at most 10"):
        wire.cancel_batch_orders("ETHUSDT", order_ids=range(11))
    with pytest.raises(wire.WireRequestError):
        wire.cancel_batch_orders("ETHUSDT")


def test_read_endpoints_paths_and_weights() -> None:
    cases = {
        wire.open_orders(): ("/fapi/v1/openOrders", 40, ()),
        wire.open_orders("BTCUSDT"): ("/fapi/v1/openOrders", 1, (("symbol", "BTCUSDT"),)),
        wire.open_algo_orders(): ("/fapi/v1/openAlgoOrders", 40, ()),
        wire.position_risk(): ("/fapi/v3/positionRisk", 5, ()),
        wire.position_risk("BTCUSDT", version=2): (
            "/fapi/v2/positionRisk",
            5,
            (("symbol", "BTCUSDT"),),
        ),
        wire.balance(): ("/fapi/v3/balance", 5, ()),
        wire.account(): ("/fapi/v3/account", 5, ()),
        wire.server_time(): ("/fapi/v1/time", 1, ()),
        wire.get_position_mode(): ("/fapi/v1/positionSide/dual", 30, ()),
        wire.countdown_cancel_all("BTCUSDT", 120_000): (
            "/fapi/v1/countdownCancelAll",
            10,
            (("symbol", "BTCUSDT"), ("countdownTime", "120000")),
        ),
        wire.set_leverage("BTCUSDT", 20): (
            "/fapi/v1/leverage",
            1,
            (("symbol", "BTCUSDT"), ("leverage", "20")),
        ),
        wire.set_position_mode(HEDGE): (
            "/fapi/v1/positionSide/dual",
            1,
            (("dualSidePosition", "true"),),
        ),
        wire.cancel_all_algo_orders("BTCUSDT"): (
            "/fapi/v1/algoOpenOrders",
            1,
            (("symbol", "BTCUSDT"),),
        ),
    }
    for req, (path, weight, params) in cases.items():
        assert (req.path, req.weight, req.params) == (path, weight, params)
    assert not wire.server_time().signed
    assert not wire.create_listen_key().signed
    assert wire.create_listen_key().api_key_header


def test_user_trades_cursor_and_window_rules() -> None:
    cursor = wire.user_trades("BTCUSDT", from_id=698759)
    assert cursor.params == (("symbol", "BTCUSDT"), ("fromId", "698759"), ("limit", "1000"))
    with pytest.raises(wire.WireRequestError, match="from_id"):
        wire.user_trades("BTCUSDT", from_id=1, start_time_ms=1)
    with pytest.raises(wire.WireRequestError, match="7 days"):
        wire.user_trades("BTCUSDT", start_time_ms=0, end_time_ms=7 * 86_400_000 + 1)
    with pytest.raises(wire.WireRequestError, match="limit"):
        wire.user_trades("BTCUSDT", limit=1001)
    assert wire.all_orders("BTCUSDT", order_id=5, limit=10).params == (
        ("symbol", "BTCUSDT"),
        ("orderId", "5"),
        ("limit", "10"),
    )


def test_format_decimal_plain_notation() -> None:
    assert wire.format_decimal(D("1E+2")) == "100"
    assert wire.format_decimal(D("0.00010")) == "0.0001"
    assert wire.format_decimal(D("1E-8")) == "0.00000001"
    assert wire.format_decimal(D("110001.00")) == "110001"
    for bad in (D("0"), D("-1"), D("NaN"), D("Infinity")):
        with pytest.raises(wire.WireRequestError):
            wire.format_decimal(bad)


def test_user_stream_url() -> None:
    assert (
        wire.user_stream_url(wire.PRODUCTION_USER_STREAM_URL, "abc123")
        == "wss://fstream.binance.com/private/ws/abc123"
    )
    with pytest.raises(wire.WireRequestError):
        wire.user_stream_url(wire.PRODUCTION_USER_STREAM_URL, "../x")


# --- REST responses -----------------------------------------------------------------------


def test_query_order_doc_example() -> None:
    assert wire.parse_order(json.loads(fx.DOC_QUERY_ORDER)) == VenueOrder(
        symbol="BTCUSDT",
        order_id="1917641",
        client_order_id="abc",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        status=VenueOrderStatus.NEW,
        quantity=D("0.40"),
        filled_qty=D("0"),
        price=D("9000"),
        stop_price=None,
        avg_price=None,
        time_in_force=TimeInForce.GTC,
        reduce_only=False,
        close_position=False,
        position_side=PositionSide.BOTH,
        venue_time_ms=1579276756075,
    )


def test_cancel_and_modify_doc_examples() -> None:
    cancelled = wire.parse_order(json.loads(fx.DOC_CANCEL_ORDER))
    assert (cancelled.status, cancelled.order_id, cancelled.quantity, cancelled.venue_time_ms) == (
        VenueOrderStatus.CANCELED,
        "283194212",
        D("11"),
        1571110484038,
    )
    assert cancelled.remaining_qty == 0
    modified = wire.parse_order(json.loads(fx.DOC_MODIFY_ORDER))
    assert (modified.position_side, modified.price, modified.avg_price) == (
        PositionSide.LONG,
        D("30005"),
        None,
    )


def test_ccxt_swap_fixtures_parse_with_string_or_integer_ids() -> None:
    (created,) = wire.parse_orders(json.loads(fx.CCXT_CREATE_ORDERS_SWAP))
    assert (
        created.order_id,
        created.client_order_id,
        created.side,
        created.price,
        created.quantity,
    ) == ("4087922044", "x-xcKtGhcu04075babaeb34c55af79ba", Side.SELL, D("110001.00"), D("0.200"))
    assert created.stop_price is None
    assert created.remaining_qty == D("0.2")
    raw = json.loads(fx.CCXT_FETCH_OPEN_ORDER_SWAP)
    as_strings = wire.parse_order(raw)
    as_ints = wire.parse_order(
        {
            **raw,
            "orderId": 664082074,
            "time": 1707907323983,
            "updateTime": 1707907323991,
            "goodTillDate": 0,
        }
    )
    assert as_strings == as_ints
    assert (as_strings.time_in_force, as_strings.venue_time_ms) == (TimeInForce.GTX, 1707907323991)


def test_batch_reply_mixes_orders_and_per_item_errors() -> None:
    ok, err = wire.parse_batch_orders(json.loads(fx.DOC_BATCH_MIXED))
    assert isinstance(ok, VenueOrder)
    assert ok.order_id == "4087922044"
    assert err == wire.VenueErrorBody(code=-2022, msg="ReduceOnly Order is rejected.")
    info = wire.map_error(200, err, operation=Operation.CREATE)
    assert (info.code, info.verdict.error_class, info.verdict.reason) == (
        -2022,
        ErrorClass.FATAL,
        "reduce_only_rejected",
    )


def test_positions_v2_v3_and_ccxt_fixture() -> None:
    (v2,) = wire.parse_positions(json.loads(fx.DOC_POSITION_V2))
    assert v2 == VenuePosition(
        symbol="BTCUSDT",
        quantity=D("0.001"),
        entry_price=D("22185.2"),
        position_side=PositionSide.BOTH,
        unrealized_pnl=D("-1.06214947"),
        leverage=4,
        venue_time_ms=1655217461579,
    )
    (v3,) = wire.parse_positions(json.loads(fx.DOC_POSITION_V3))
    assert (v3.symbol, v3.quantity, v3.entry_price, v3.leverage) == (
        "ADAUSDT",
        D("30"),
        D("0.385"),
        1,
    )
    (ccxt,) = wire.parse_positions(json.loads(fx.CCXT_POSITIONS_V3))
    assert (ccxt.quantity, ccxt.unrealized_pnl, ccxt.venue_time_ms) == (
        D("0.009"),
        D("0.51106678"),
        1722161166529,
    )
    short = wire.parse_positions(
        [
            {
                "symbol": "ETHUSDT",
                "positionSide": "SHORT",
                "positionAmt": "-1.5",
                "entryPrice": "2500",
                "unRealizedProfit": "-3",
                "updateTime": 1,
            }
        ]
    )
    assert short[0].quantity == D("-1.5")
    assert short[0].position_side is PositionSide.SHORT


def test_account_v3_ccxt_fixture() -> None:
    acct = wire.parse_account(json.loads(fx.CCXT_ACCOUNT_V3))
    assert (acct.total_wallet_balance, acct.available_balance) == (
        D("25.72610060"),
        D("18.65949928"),
    )
    assert [b.asset for b in acct.balances] == ["FDUSD", "BTC", "BNB", "ETH", "USDT", "USDC"]
    usdt = acct.balances[4]
    assert (usdt.wallet_balance, usdt.unrealized_pnl, usdt.margin_balance, usdt.venue_time_ms) == (
        D("3.72964781"),
        D("0.54238506"),
        D("4.27203287"),
        1722161166529,
    )
    assert acct.positions == (
        VenuePosition(
            symbol="BTCUSDT",
            quantity=D("0.009"),
            unrealized_pnl=D("0.54238506"),
            venue_time_ms=1722161166529,
        ),
    )


def test_balances_and_user_trades() -> None:
    (bal,) = wire.parse_balances(json.loads(fx.DOC_BALANCE_V3))
    assert (bal.asset, bal.wallet_balance, bal.available_balance, bal.cross_wallet_balance) == (
        "USDT",
        D("122607.35137903"),
        D("23.72469206"),
        D("23.72469206"),
    )
    (fill,) = wire.parse_user_trades(json.loads(fx.DOC_USER_TRADES))
    assert fill == Fill(
        symbol="BTCUSDT",
        trade_id="698759",
        order_id="25851813",
        client_order_id="",
        side=Side.SELL,
        quantity=D("0.002"),
        price=D("7819.01"),
        fee=D("0.07819010"),
        fee_asset="USDT",
        realized_pnl=D("-0.91539999"),
        position_side=PositionSide.SHORT,
        maker=False,
        venue_time_ms=1569514978020,
    )
    assert fill.key == ("BTCUSDT", "698759")


def test_exchange_info_filters_and_limits() -> None:
    info = wire.parse_exchange_info(json.loads(fx.DOC_EXCHANGE_INFO))
    assert [(r.rate_limit_type, r.window_s, r.limit) for r in info.rate_limits] == [
        ("REQUEST_WEIGHT", 60, 2400),
        ("ORDERS", 60, 1200),
        ("ORDERS", 10, 300),
    ]
    rules = info.rules_for("BLZUSDT")
    assert rules is not None
    assert rules.is_trading
    assert (
        rules.tick_size,
        rules.step_size,
        rules.min_qty,
        rules.min_notional,
        rules.max_num_orders,
    ) == (D("0.0001"), D("1"), D("1"), D("5.0"), 200)
    assert (rules.market_max_qty, rules.percent_price_up, rules.max_num_algo_orders) == (
        D("590119"),
        D("1.1500"),
        None,
    )
    assert "TRAILING_STOP_MARKET" in rules.order_types
    assert info.rules_for("BTCUSDT") is None
    broken = json.loads(fx.DOC_EXCHANGE_INFO)
    broken["symbols"][0]["filters"] = broken["symbols"][0]["filters"][1:]
    with pytest.raises(wire.MalformedMessage, match=r"symbols\[0\]\.filters: PRICE_FILTER missing"):
        wire.parse_exchange_info(broken)


def test_algo_order_replies() -> None:
    new = wire.parse_algo_order(json.loads(fx.DOC_NEW_ALGO_ORDER))
    assert (new.algo_status, new.order.status, new.order.order_id, new.order.client_order_id) == (
        wire.AlgoStatus.NEW,
        VenueOrderStatus.NEW,
        "2146760",
        "6B2I9XVcJpCjqPAJ4YoFX7",
    )
    assert (new.order.stop_price, new.order.price, new.activate_price, new.callback_rate) == (
        D("750.000"),
        D("750.000"),
        None,
        None,
    )
    queried = wire.parse_algo_order(json.loads(fx.DOC_QUERY_ALGO_ORDER))
    assert (queried.algo_status, queried.order.status, queried.actual_order_id) == (
        wire.AlgoStatus.CANCELED,
        VenueOrderStatus.CANCELED,
        None,
    )
    (open_algo,) = wire.parse_algo_orders(json.loads(fx.DOC_OPEN_ALGO_ORDERS))
    assert open_algo.order.status.is_open
    assert open_algo.algo_status.is_open
    assert wire.parse_algo_cancel(json.loads(fx.DOC_CANCEL_ALGO_ORDER)) == wire.AlgoCancelAck(
        algo_id="2146760", client_algo_id="6B2I9XVcJpCjqPAJ4YoFX7"
    )


@pytest.mark.parametrize(
    ("status", "executed", "close", "expected"),
    [
        ("TRIGGERED", "0", False, VenueOrderStatus.NEW),
        ("TRIGGERED", "0.005", False, VenueOrderStatus.PARTIALLY_FILLED),
        ("FINISHED", "0.01", False, VenueOrderStatus.FILLED),
        ("FINISHED", "0.004", False, VenueOrderStatus.CANCELED),
        ("FINISHED", "0.7", True, VenueOrderStatus.FILLED),
        ("EXPIRED", "0", False, VenueOrderStatus.EXPIRED),
        ("REJECTED", "0", False, VenueOrderStatus.REJECTED),
    ],
)
def test_algo_status_maps_to_whether_the_stop_can_still_act(
    status: str, executed: str, close: bool, expected: VenueOrderStatus
) -> None:
    raw = {
        **json.loads(fx.DOC_NEW_ALGO_ORDER),
        "algoStatus": status,
        "executedQty": executed,
        "actualOrderId": "8886774",
        "closePosition": close,
    }
    if close:
        raw["quantity"] = "0"
    algo = wire.parse_algo_order(raw)
    assert algo.order.status is expected
    assert algo.actual_order_id == "8886774"
    assert algo.execution_known
    # Without an executed quantity a FINISHED algo order is CANCELED by convention, and says so.
    del raw["executedQty"]
    unknown = wire.parse_algo_order({**raw, "algoStatus": "FINISHED"})
    assert unknown.order.status is VenueOrderStatus.CANCELED
    assert not unknown.execution_known


def test_small_replies() -> None:
    assert wire.parse_server_time(json.loads(fx.DOC_SERVER_TIME)) == 1499827319559
    assert wire.parse_listen_key(json.loads(fx.DOC_LISTEN_KEY)).startswith("pqia91ma19a5s61c")
    assert wire.parse_leverage(json.loads(fx.DOC_LEVERAGE)) == wire.LeverageChange(
        "BTCUSDT", 21, D("1000000")
    )
    assert wire.parse_countdown(json.loads(fx.DOC_COUNTDOWN)) == wire.CountdownAck(
        "BTCUSDT", 100000
    )
    assert wire.parse_code_ack(json.loads(fx.DOC_CANCEL_ALL)).code == 200
    assert wire.parse_position_mode({"dualSidePosition": False}) is PositionMode.ONE_WAY
    with pytest.raises(wire.MalformedMessage, match="code"):
        wire.parse_code_ack({"code": -2011, "msg": "Unknown order sent."})


# --- mark price ---------------------------------------------------------------------------


def test_mark_price_request_is_public_and_weighs_one_per_symbol() -> None:
    req = wire.mark_price("BTCUSDT")
    assert (req.method, req.path, req.params, req.weight, req.operation) == (
        wire.HttpMethod.GET,
        "/fapi/v1/premiumIndex",
        (("symbol", "BTCUSDT"),),
        1,
        Operation.QUERY,
    )
    assert not req.signed
    assert not req.api_key_header
    encoded = wire.encode(req)  # no credentials needed: nothing is signed or keyed
    assert encoded.target == "/fapi/v1/premiumIndex?symbol=BTCUSDT"
    assert encoded.headers == ()
    every = wire.mark_price()
    assert (every.params, every.weight) == ((), 10)
    for bad in ("BTC USDT", "", "X" * 41):
        with pytest.raises(wire.WireRequestError) as exc:
            wire.mark_price(bad)
        assert exc.value.field == "symbol"


def test_mark_price_doc_example_parses_exactly() -> None:
    assert wire.parse_mark_price(wire.loads(fx.DOC_PREMIUM_INDEX)) == wire.MarkPrice(
        symbol="BTCUSDT",
        mark_price=D("11793.63104562"),
        index_price=D("11781.80495970"),
        estimated_settle_price=D("11781.16138815"),
        last_funding_rate=D("0.00038246"),
        interest_rate=D("0.00010000"),
        next_funding_time_ms=1597392000000,
        time_ms=1597370495002,
    )
    # Shorts pay longs: a negative funding rate is a value, not corruption.
    negative = json.loads(fx.DOC_PREMIUM_INDEX) | {"lastFundingRate": "-0.00012500"}
    assert wire.parse_mark_price(negative).last_funding_rate == D("-0.000125")
    perpetual, delivery = wire.parse_mark_prices(wire.loads(fx.DOC_PREMIUM_INDEX_ALL))
    assert (perpetual.symbol, delivery.symbol) == ("BTCUSDT", "BTCUSDT_260327")
    assert (delivery.mark_price, delivery.last_funding_rate, delivery.interest_rate) == (
        D("61234.1"),
        None,
        None,
    )
    assert delivery.next_funding_time_ms == 0
    # Only the symbol and the mark are relied on; the rest may be absent.
    minimal = wire.parse_mark_price({"symbol": "ETHUSDT", "markPrice": "3000.5"})
    assert (minimal.mark_price, minimal.index_price, minimal.time_ms) == (D("3000.5"), None, None)


_DOC_MARK = json.loads(fx.DOC_PREMIUM_INDEX)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in _DOC_MARK.items() if k != "markPrice"}, "markPrice"),
        (_DOC_MARK | {"markPrice": "0.00000000"}, "markPrice"),
        (_DOC_MARK | {"markPrice": "-11793.6"}, "markPrice"),
        (_DOC_MARK | {"markPrice": "NaN"}, "markPrice"),
        (_DOC_MARK | {"markPrice": ""}, "markPrice"),
        (_DOC_MARK | {"markPrice": True}, "markPrice"),
        (_DOC_MARK | {"markPrice": "1e400"}, "markPrice"),
        ({k: v for k, v in _DOC_MARK.items() if k != "symbol"}, "symbol"),
        (_DOC_MARK | {"symbol": 5}, "symbol"),
        (_DOC_MARK | {"indexPrice": "11781.8O"}, "indexPrice"),
        (_DOC_MARK | {"nextFundingTime": "soon"}, "nextFundingTime"),
        (_DOC_MARK | {"time": -1}, "time"),
        ([_DOC_MARK], "<message>"),  # the all-symbols array where one object was asked for
        ("<html>502 Bad Gateway</html>", "<message>"),
        (None, "<message>"),
    ],
)
def test_malformed_mark_price_names_the_field(body: Any, field: str) -> None:
    with pytest.raises(wire.MalformedMessage) as exc:
        wire.parse_mark_price(body)
    assert exc.value.field == field


def test_malformed_mark_prices_name_the_element() -> None:
    rows = json.loads(fx.DOC_PREMIUM_INDEX_ALL)
    rows[1]["markPrice"] = "abc"
    with pytest.raises(wire.MalformedMessage) as exc:
        wire.parse_mark_prices(rows)
    assert exc.value.field == "[1].markPrice"
    with pytest.raises(wire.MalformedMessage):
        wire.parse_mark_prices(_DOC_MARK)  # one object where the array was asked for


# --- stream events (section 5) ------------------------------------------------------------


def test_order_trade_update_doc_example() -> None:
    ev = wire.parse_user_message(fx.DOC_ORDER_TRADE_UPDATE)
    assert isinstance(ev, wire.OrderTradeUpdate)
    assert (ev.event_time_ms, ev.transaction_time_ms, ev.execution_type, ev.fill) == (
        1568879465651,
        1568879465650,
        wire.ExecutionType.NEW,
        None,
    )
    o = ev.order
    assert (o.order_id, o.client_order_id, o.order_type, o.position_side, o.quantity) == (
        "8886774",
        "TEST",
        OrderType.TRAILING_STOP_MARKET,
        PositionSide.LONG,
        D("0.001"),
    )
    # Binance: ignore sp for trailing stops; "0" prices mean unset.
    assert (o.stop_price, o.price, o.avg_price, ev.expiry_reason, ev.special_origin) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_order_trade_update_trade_carries_a_keyed_fill() -> None:
    ev = wire.parse_user_event(fx.order_trade_fill())
    assert isinstance(ev, wire.OrderTradeUpdate)
    assert ev.order.status is VenueOrderStatus.PARTIALLY_FILLED
    assert ev.fill == Fill(
        symbol="BTCUSDT",
        trade_id="1122334455",
        order_id="8886774",
        client_order_id="sc-E-0123456789abcdef-0",
        side=Side.BUY,
        quantity=D("0.004"),
        price=D("59999.9"),
        fee=D("0.09599984"),
        fee_asset="USDT",
        realized_pnl=D("0"),
        position_side=PositionSide.BOTH,
        maker=True,
        venue_time_ms=1568879465650,
    )
    assert ev.order.remaining_qty == D("0.006")
    wrapped = wire.parse_user_event({"stream": "somekey", "data": fx.order_trade_fill()})
    assert wrapped == ev


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"t": 0}, "o.t"),
        ({"l": "0"}, "o.l"),
        ({"l": "0.005"}, "o.l"),
        ({"L": "0"}, "o.L"),
        ({"z": "0.011"}, "o.z"),
        ({"q": "NaN"}, "o.q"),
        ({"q": "Infinity"}, "o.q"),
        ({"q": "-0.01"}, "o.q"),
        ({"q": ""}, "o.q"),
        ({"q": "1_000"}, "o.q"),
        ({"q": " 1"}, "o.q"),
        ({"q": "1e999"}, "o.q"),
        ({"q": True}, "o.q"),
        ({"X": "SOMETHING"}, "o.X"),
        ({"S": "buy"}, "o.S"),
        ({"i": -5}, "o.i"),
        ({"i": 2**64}, "o.i"),
        ({"er": "x"}, "o.er"),
    ],
)
def test_corrupt_trade_events_name_the_bad_field(patch: dict[str, Any], path: str) -> None:
    msg = fx.order_trade_fill()
    msg["o"].update(patch)
    with pytest.raises(wire.MalformedMessage) as exc:
        wire.parse_user_event(msg)
    assert exc.value.field == path


def test_liquidation_and_expiry_are_tagged() -> None:
    msg = fx.order_trade_fill()
    msg["o"].update(
        {
            "c": "autoclose-1750515742297",
            "o": "LIQUIDATION",
            "x": "EXPIRED",
            "X": "EXPIRED",
            "er": "5",
            "f": "RPI",
        }
    )
    ev = wire.parse_user_event(msg)
    assert isinstance(ev, wire.OrderTradeUpdate)
    assert (
        ev.order.order_type,
        ev.wire_order_type,
        ev.special_origin,
        ev.expiry_reason,
        ev.fill,
    ) == (OrderType.LIMIT, "LIQUIDATION", wire.SpecialOrigin.LIQUIDATION, "liquidation", None)
    assert ev.order.time_in_force is None
    msg["o"].update({"c": "adl_autoclose", "er": "42"})
    adl = wire.parse_user_event(msg)
    assert isinstance(adl, wire.OrderTradeUpdate)
    assert (adl.special_origin, adl.expiry_reason) == (
        wire.SpecialOrigin.ADL,
        "code_42",
    )
    assert wire.special_origin("settlement_autoclose-ETHUSDT") is wire.SpecialOrigin.SETTLEMENT
    assert wire.special_origin("sc-E-0123456789abcdef-0") is None


def test_account_update_doc_example() -> None:
    ev = wire.parse_user_message(fx.DOC_ACCOUNT_UPDATE)
    assert ev == wire.AccountUpdate(
        event_time_ms=1564745798939,
        transaction_time_ms=1564745798938,
        reason="ORDER",
        balances=(
            wire.BalanceUpdate("USDT", D("122624.12345678"), D("100.12345678"), D("50.12345678")),
        ),
        positions=(
            VenuePosition(
                symbol="BTCUSDT",
                quantity=D("20"),
                entry_price=D("6563.66500"),
                position_side=PositionSide.LONG,
                unrealized_pnl=D("2850.21200"),
                venue_time_ms=1564745798938,
            ),
        ),
    )
    funding = wire.parse_user_event(
        {
            "e": "ACCOUNT_UPDATE",
            "E": 2,
            "T": 1,
            "a": {
                "m": "FUNDING_FEE",
                "B": [{"a": "USDT", "wb": "-1.5", "cw": "-1.5", "bc": "-0.01"}],
            },
        }
    )
    assert isinstance(funding, wire.AccountUpdate)
    assert funding.positions == ()
    assert funding.balances[0].balance_change == D("-0.01")


def test_algo_update_doc_example() -> None:
    ev = wire.parse_user_message(fx.DOC_ALGO_UPDATE)
    assert isinstance(ev, wire.AlgoUpdate)
    assert (ev.event_time_ms, ev.transaction_time_ms) == (1750515742303, 1750515742297)
    a = ev.algo
    assert (
        a.algo_status,
        a.order.status,
        a.order.order_id,
        a.order.client_order_id,
        a.actual_order_id,
    ) == (
        wire.AlgoStatus.CANCELED,
        VenueOrderStatus.CANCELED,
        "2148719",
        "Q5xaq5EGKgXXa0fD7fs0Ip",
        None,
    )
    assert (a.order.stop_price, a.order.price, a.reject_reason, a.working_type) == (
        D("750"),
        D("750"),
        "Reduce Only reject",
        "CONTRACT_PRICE",
    )


def test_other_doc_events() -> None:
    mc = wire.parse_user_message(fx.DOC_MARGIN_CALL)
    assert isinstance(mc, wire.MarginCall)
    assert mc.cross_wallet_balance == D("3.16812045")
    assert mc.positions == (
        wire.MarginCallPosition(
            "ETHUSDT",
            PositionSide.LONG,
            D("1.327"),
            "CROSSED",
            D("187.17127"),
            D("-1.166074"),
            D("1.614445"),
            D("0"),
        ),
    )
    expired = wire.parse_user_message(fx.DOC_LISTEN_KEY_EXPIRED)
    assert isinstance(expired, wire.ListenKeyExpired)
    assert expired.event_time_ms == 1736996475556
    assert expired.listen_key.startswith("WsCMN0a4")
    lev = wire.parse_user_message(fx.DOC_CONFIG_LEVERAGE)
    assert lev == wire.AccountConfigUpdate(
        1611646737479, 1611646737476, symbol="BTCUSDT", leverage=25
    )
    assert wire.parse_user_message(fx.DOC_CONFIG_MULTI_ASSETS) == wire.AccountConfigUpdate(
        1611646737479, 1611646737476, multi_assets=True
    )
    lite = wire.parse_user_message(fx.DOC_TRADE_LITE)
    assert isinstance(lite, wire.TradeLite)
    assert (lite.trade_id, lite.order_id, lite.last_qty, lite.last_price, lite.orig_price) == (
        "109100866",
        "8886774",
        D("0.040"),
        D("64089.20"),
        None,
    )


def test_unknown_events_are_surfaced_not_raised() -> None:
    grid = wire.parse_user_message(fx.DOC_GRID_UPDATE)
    assert isinstance(grid, wire.UnknownEvent)
    assert (grid.event_type, grid.event_time_ms, grid.raw["gu"]["si"]) == (
        "GRID_UPDATE",
        1669262908218,
        176057039,
    )
    weird = wire.parse_user_event({"e": "FUTURE_THING", "E": "not-a-time", "x": [1, {"y": None}]})
    assert isinstance(weird, wire.UnknownEvent)
    assert weird.event_time_ms is None
    bad_event: Any
    for bad_event in ({"E": 1}, {"e": 5}, {"e": ""}, [], "ORDER_TRADE_UPDATE", None):
        with pytest.raises(wire.MalformedMessage):
            wire.parse_user_event(bad_event)


@pytest.mark.parametrize(
    "text",
    [
        '{"serverTime": NaN}',
        '{"serverTime": Infinity}',
        '{"serverTime": -Infinity}',
        "{'serverTime': 1}",
        '{"serverTime": 1',
        "",
        b"\xff\xfe{",
        "[" * 100_000,
        '{"serverTime": 1' + "0" * 5000 + "}",
    ],
)
def test_loads_rejects_non_strict_json(text: str | bytes) -> None:
    with pytest.raises(wire.MalformedMessage):
        wire.parse_server_time(wire.loads(text))


def test_loads_keeps_decimal_precision() -> None:
    assert wire.loads('{"p": 0.1}') == {"p": D("0.1")}
    # A JSON number in a decimal field parses exactly, not via binary floating point.
    assert wire.parse_leverage(
        wire.loads('{"leverage": 5, "maxNotionalValue": 1000000.10, "symbol": "X"}')
    ).max_notional == D("1000000.10")


def test_malformed_message_names_the_path_into_arrays() -> None:
    raw = json.loads(fx.DOC_POSITION_V2) * 2
    raw[1] = {**raw[1], "positionAmt": "12abc"}
    with pytest.raises(wire.MalformedMessage) as exc:
        wire.parse_positions(raw)
    assert exc.value.field == "[1].positionAmt"
    assert "BTCUSDT" in exc.value.excerpt
    assert len(exc.value.excerpt) <= 240


# --- errors and headers -------------------------------------------------------------------


def test_error_mapping_through_core_table() -> None:
    dup = wire.map_error(
        400, b'{"code":-4116,"msg":"ClientOrderId is duplicated."}', operation=Operation.CREATE
    )
    assert (dup.code, dup.verdict.error_class, dup.verdict.order_exists) == (
        -4116,
        ErrorClass.IDEMPOTENT_SAFE,
        True,
    )
    unknown = wire.map_error(
        503,
        '{"code":-1000,"msg":"Unknown error, please check your request or try again later."}',
        operation=Operation.CREATE,
    )
    assert unknown.verdict.error_class is ErrorClass.AMBIGUOUS
    assert unknown.verdict.order_may_exist
    gone = wire.map_error(
        400, {"code": -2011, "msg": "Unknown order sent."}, operation=Operation.CANCEL
    )
    assert gone.verdict.reason == "cancel_not_open"
    limited = wire.map_error(
        429,
        '{"code":-1003,"msg":"Too many requests"}',
        operation=Operation.CREATE,
        headers={"Retry-After": "7", "X-MBX-USED-WEIGHT-1M": "2401"},
    )
    assert (
        limited.verdict.error_class,
        limited.verdict.backoff_hint_s,
        limited.rate_limits.used_weight_1m,
    ) == (ErrorClass.RETRYABLE, 7.0, 2401)
    proxy = wire.map_error(
        502, b"<html><body>502 Bad Gateway</body></html>", operation=Operation.CREATE
    )
    assert (proxy.code, proxy.verdict.error_class) == (None, ErrorClass.AMBIGUOUS)
    assert "502 Bad Gateway" in proxy.message
    assert (
        wire.map_error(502, None, operation=Operation.QUERY).verdict.error_class
        is ErrorClass.RETRYABLE
    )
    with pytest.raises(wire.WireRequestError):
        wire.map_error(42, None, operation=Operation.QUERY)


def test_error_body_detection() -> None:
    assert wire.parse_error_body(
        {"code": -2013, "msg": "Order does not exist."}
    ) == wire.VenueErrorBody(-2013, "Order does not exist.")
    assert wire.parse_error_body({"code": "-1021", "msg": "x"}) == wire.VenueErrorBody(-1021, "x")
    not_error: Any
    for not_error in (
        {"code": 200, "msg": "ok"},
        {"code": "200"},
        {"code": 0},
        {"orderId": 1},
        [],
        None,
        {"code": True},
    ):
        assert wire.parse_error_body(not_error) is None
    assert wire.is_error_response(200, {"code": -1, "msg": "x"})
    assert wire.is_error_response(404, None)
    assert not wire.is_error_response(200, {"code": 200, "msg": "success"})


def test_rate_limit_headers() -> None:
    usage = wire.parse_rate_limit_headers(
        [
            ("x-mbx-used-weight-1m", "37"),
            ("X-MBX-ORDER-COUNT-10S", "3"),
            ("X-MBX-ORDER-COUNT-1M", "12"),
            ("X-MBX-USED-WEIGHT-1H", "900"),
            ("Retry-After", "oops"),
            ("x-mbx-order-count-1d", "-4"),
            ("Content-Type", "application/json"),
        ]
    )
    assert (
        usage.used_weight_1m,
        usage.order_count_10s,
        usage.order_count_1m,
        usage.retry_after_s,
    ) == (37, 3, 12, None)
    assert usage.used_weight == (("1H", 900), ("1M", 37))
    assert usage.ignored == ("Retry-After", "x-mbx-order-count-1d")
    assert wire.parse_rate_limit_headers({"retry-after": "120"}).retry_after_s == 120.0
    assert wire.parse_rate_limit_headers({"Retry-After": "nan"}).retry_after_s is None


# --- properties ---------------------------------------------------------------------------

_params = st.lists(
    st.tuples(st.text(min_size=1, max_size=12), st.text(max_size=24)).filter(
        lambda kv: kv[0].lower() not in ("timestamp", "recvwindow", "signature")
    ),
    max_size=6,
)


@settings(max_examples=100)
@given(
    params=_params,
    ts=st.integers(1, 2**45),
    window=st.integers(1, 60_000),
    secret=st.binary(min_size=1, max_size=64),
)
def test_any_signed_params_verify_and_round_trip(params, ts, window, secret) -> None:
    signed = wire.sign(params, secret, ts, window)
    assert wire.verify_signature(signed, "", secret)
    assert wire.verify_signature("", signed, secret)
    decoded = wire.decode_params(signed)
    assert decoded[: len(params)] == params
    assert decoded[len(params) :][:2] == [("recvWindow", str(window)), ("timestamp", str(ts))]


_decimals = st.decimals(
    min_value=D("0.00000001"),
    max_value=D("1000000"),
    places=8,
    allow_nan=False,
    allow_infinity=False,
)


@settings(max_examples=100)
@given(
    qty=_decimals,
    filled_frac=st.fractions(0, 1),
    price=_decimals,
    status=st.sampled_from(list(VenueOrderStatus)),
    order_id=st.integers(0, 2**63 - 1),
    as_text=st.booleans(),
)
def test_generated_order_objects_parse_to_their_values(
    qty, filled_frac, price, status, order_id, as_text
) -> None:
    filled = (qty * D(filled_frac.numerator) / D(filled_frac.denominator)).quantize(
        D("0.00000001"), rounding="ROUND_DOWN"
    )
    raw = {
        **json.loads(fx.DOC_QUERY_ORDER),
        "origQty": str(qty),
        "executedQty": str(filled),
        "price": str(price),
        "status": status.value,
        "orderId": str(order_id) if as_text else order_id,
    }
    parsed = wire.parse_order(raw)
    assert (parsed.quantity, parsed.filled_qty, parsed.price, parsed.status, parsed.order_id) == (
        qty,
        filled,
        price,
        status,
        str(order_id),
    )
    assert parsed.remaining_qty == (qty - filled if status.is_open else 0)
