"""The Binance client (REST + user stream) against an emulated Binance.

REST runs over ``httpx.MockTransport`` with a handler that checks what Binance checks
(API-key header, HMAC over the exact bytes sent) and answers with the documented shapes
from ``wire_fixtures``; REST tests run on trio's MockClock, so timeouts and backoffs are
virtual. The user stream is tested twice: against a real trio-websocket server on
127.0.0.1 (the reconnect path end to end) and against an in-memory WebSocket under the
MockClock (timing rules: gap boundaries, pings, keepalives, backoff).
"""

import json
import math
import os
import re
import string
import urllib.parse
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio_websocket import (
    CloseReason,
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from scalper.core.errors import ErrorClass, Operation
from scalper.core.model import OrderRequest, VenueOrderStatus
from scalper.core.types import OrderType, PositionMode, PositionSide, Side, TimeInForce
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
)
from scalper.venues.binance import wire
from scalper.venues.binance.client import BinanceVenue, clock_offset_ms
from scalper.venues.binance.config import BinanceConfig, BinanceConfigError
from scalper.venues.binance.credentials import (
    CredentialsError,
    InsecureSecretFileError,
    load_credentials,
)
from scalper.venues.binance.events import parse_user_message
from scalper.venues.binance.signing import ApiCredentials, verify_signature
from scalper.venues.binance.stream import (
    MALFORMED_EVENT_TYPE,
    reconnect_delay_s,
    stream_event_from,
)
from tests.venues.binance import wire_fixtures as fx

D = Decimal
BASE_MS = 1_700_000_000_000
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
CREDS = ApiCredentials(api_key=API_KEY, secret=fx.SIGN_SECRET)
LISTEN_KEY = json.loads(fx.DOC_LISTEN_KEY)["listenKey"]
SECOND_KEY = "Zr7x" * 16
CID = "sc-E-0123456789abcdef-0"
REST = "https://fapi.test.invalid"
WS = "wss://fstream.test.invalid/private/ws"


def wall_ms() -> int:
    return BASE_MS + int(trio.current_time() * 1000)


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    return httpx.Response(status, content=content, headers=headers or {})


def error(status: int, code: int, msg: str, **headers: str) -> httpx.Response:
    return reply(
        status, {"code": code, "msg": msg}, {k.replace("_", "-"): v for k, v in headers.items()}
    )


Reply = httpx.Response | BaseException | Callable[[httpx.Request], Awaitable[httpx.Response]]


class FakeBinance:
    """An emulated Binance USD-M REST endpoint: checks auth, answers documented shapes."""

    PUBLIC = frozenset({"/fapi/v1/time", "/fapi/v1/exchangeInfo", "/fapi/v1/premiumIndex"})
    KEY_ONLY = frozenset({"/fapi/v1/listenKey"})

    def __init__(
        self,
        *,
        skew_ms: int = 0,
        latency_s: float = 0.0,
        key: str = API_KEY,
        secret: bytes = fx.SIGN_SECRET,
    ) -> None:
        self.skew_ms = skew_ms
        self.latency_s = latency_s
        self.key = key
        self.secret = secret
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []
        self.scripted: dict[tuple[str, str], list[Reply]] = defaultdict(list)
        self.listen_keys = [LISTEN_KEY]
        self.weight = 0

    def script(self, method: str, path: str, *replies: Reply) -> None:
        self.scripted[(method, path)].extend(replies)

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.url.path == path)

    def last(self, method: str, path: str) -> httpx.Request:
        return [r for r in self.requests if r.method == method and r.url.path == path][-1]

    @staticmethod
    def params(request: httpx.Request) -> dict[str, str]:
        pairs = urllib.parse.parse_qsl(request.url.query.decode()) + urllib.parse.parse_qsl(
            request.content.decode()
        )
        return dict(pairs)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        self.times.append(trio.current_time())
        scripted = self.scripted.get((request.method, request.url.path))
        if scripted:
            item = scripted.pop(0)
            if isinstance(item, BaseException):
                raise item
            if callable(item):
                return await item(request)
            return item
        return await self.default(request)

    async def default(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path not in self.PUBLIC and request.headers.get("X-MBX-APIKEY") != self.key:
            return error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if path not in self.PUBLIC | self.KEY_ONLY and not verify_signature(
            request.url.query.decode(), request.content.decode(), self.secret
        ):
            return error(400, -1022, "Signature for this request is not valid.")
        self.weight += 1
        headers = {"X-MBX-USED-WEIGHT-1M": str(self.weight)}
        p = self.params(request)
        if path == "/fapi/v1/time":
            await trio.sleep(self.latency_s)
            stamp = wall_ms() + self.skew_ms
            await trio.sleep(self.latency_s)
            return reply(200, {"serverTime": stamp}, headers)
        if (method, path) == ("POST", "/fapi/v1/order"):
            order = json.loads(fx.DOC_QUERY_ORDER)
            order.update(
                clientOrderId=p["newClientOrderId"],
                symbol=p["symbol"],
                side=p["side"],
                type=p["type"],
                origQty=p["quantity"],
                price=p.get("price", "0"),
            )
            headers |= {"X-MBX-ORDER-COUNT-10S": "1", "X-MBX-ORDER-COUNT-1M": "7"}
            return reply(200, order, headers)
        if (method, path) == ("POST", "/fapi/v1/algoOrder"):
            algo = json.loads(fx.DOC_NEW_ALGO_ORDER)
            algo.update(
                clientAlgoId=p["clientAlgoId"],
                symbol=p["symbol"],
                side=p["side"],
                orderType=p["type"],
                quantity=p.get("quantity", ""),
                triggerPrice=p["triggerPrice"],
                price=p.get("price", "0"),
            )
            return reply(200, algo, headers)
        if path == "/fapi/v1/listenKey":
            if method == "POST":
                return reply(200, {"listenKey": self.listen_keys[0]}, headers)
            if method == "PUT":
                return reply(200, {"listenKey": self.listen_keys[0]}, headers)
            return reply(200, {}, headers)
        fixed = {
            ("DELETE", "/fapi/v1/order"): fx.DOC_CANCEL_ORDER,
            ("GET", "/fapi/v1/order"): fx.DOC_QUERY_ORDER,
            ("DELETE", "/fapi/v1/algoOrder"): fx.DOC_CANCEL_ALGO_ORDER,
            ("GET", "/fapi/v1/algoOrder"): fx.DOC_QUERY_ALGO_ORDER,
            ("GET", "/fapi/v1/openOrders"): fx.CCXT_CREATE_ORDERS_SWAP,
            ("GET", "/fapi/v1/openAlgoOrders"): fx.DOC_OPEN_ALGO_ORDERS,
            ("GET", "/fapi/v3/positionRisk"): fx.CCXT_POSITIONS_V3,
            ("GET", "/fapi/v3/balance"): fx.DOC_BALANCE_V3,
            ("GET", "/fapi/v1/exchangeInfo"): fx.DOC_EXCHANGE_INFO,
            ("GET", "/fapi/v1/premiumIndex"): fx.DOC_PREMIUM_INDEX,
            ("POST", "/fapi/v1/leverage"): fx.DOC_LEVERAGE,
            ("POST", "/fapi/v1/countdownCancelAll"): fx.DOC_COUNTDOWN,
            ("GET", "/fapi/v1/userTrades"): TWO_TRADES_NEWEST_FIRST,
        }
        body = fixed.get((method, path))
        if body is None:
            return error(404, -1099, "Not found")
        return reply(200, body, headers)


_trade = json.loads(fx.DOC_USER_TRADES)[0]
TWO_TRADES_NEWEST_FIRST = json.dumps([{**_trade, "id": 698761}, _trade])


def make_venue(
    fake: FakeBinance,
    *,
    credentials: ApiCredentials = CREDS,
    position_mode: PositionMode = PositionMode.ONE_WAY,
    **overrides: Any,
) -> BinanceVenue:
    config = BinanceConfig.custom(REST, WS, **overrides)
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    return BinanceVenue(
        config, credentials, wall_clock_ms=wall_ms, http=http, position_mode=position_mode
    )


def limit(**kw: Any) -> OrderRequest:
    return OrderRequest(
        symbol=kw.pop("symbol", "BTCUSDT"),
        side=kw.pop("side", Side.BUY),
        order_type=kw.pop("order_type", OrderType.LIMIT),
        client_order_id=kw.pop("cid", CID),
        quantity=kw.pop("quantity", D("0.010")),
        price=kw.pop("price", D("60000.5")),
        time_in_force=kw.pop("time_in_force", TimeInForce.GTC),
        **kw,
    )


def stop_market(**kw: Any) -> OrderRequest:
    return OrderRequest(
        symbol="BNBUSDT",
        side=Side.SELL,
        order_type=OrderType.STOP_MARKET,
        client_order_id=kw.pop("cid", "sc-S-0123456789abcdef-0"),
        quantity=D("0.01"),
        stop_price=D("590.5"),
        reduce_only=True,
        **kw,
    )


# --- requests and parsed results -----------------------------------------------------


def test_binance_venue_satisfies_the_venue_protocol() -> None:
    venue: Venue = make_venue(FakeBinance())  # mypy checks the signatures
    assert isinstance(venue, Venue)
    assert venue.name == "binance_usdm"


async def test_create_limit_order_sends_a_signed_form_and_parses_the_order(autojump_clock) -> None:
    fake = FakeBinance()
    venue = make_venue(fake)
    order = await venue.create_order(limit())
    req = fake.last("POST", "/fapi/v1/order")
    assert req.headers["X-MBX-APIKEY"] == API_KEY
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert req.url.query == b""  # POST params travel in the body, signed as sent
    assert verify_signature("", req.content.decode(), fx.SIGN_SECRET)
    p = FakeBinance.params(req)
    assert p["newClientOrderId"] == CID
    assert (p["symbol"], p["side"], p["type"], p["timeInForce"]) == (
        "BTCUSDT",
        "BUY",
        "LIMIT",
        "GTC",
    )
    assert (p["quantity"], p["price"], p["recvWindow"]) == ("0.01", "60000.5", "5000")
    assert "positionSide" not in p
    assert "reduceOnly" not in p
    assert order.client_order_id == CID
    assert order.status is VenueOrderStatus.NEW
    assert (order.quantity, order.price) == (D("0.01"), D("60000.5"))
    assert venue.rate_limits.order_count_1m == 7


async def test_hedge_mode_sends_position_side(autojump_clock) -> None:
    fake = FakeBinance()
    venue = make_venue(fake, position_mode=PositionMode.HEDGE)
    await venue.create_order(limit(position_side=PositionSide.LONG))
    assert FakeBinance.params(fake.last("POST", "/fapi/v1/order"))["positionSide"] == "LONG"


async def test_conditional_create_goes_to_the_algo_endpoint(autojump_clock) -> None:
    fake = FakeBinance()
    venue = make_venue(fake)
    order = await venue.create_order(stop_market())
    assert fake.count("POST", "/fapi/v1/order") == 0
    p = FakeBinance.params(fake.last("POST", "/fapi/v1/algoOrder"))
    assert (p["algoType"], p["type"], p["triggerPrice"]) == ("CONDITIONAL", "STOP_MARKET", "590.5")
    assert p["clientAlgoId"] == "sc-S-0123456789abcdef-0"
    assert p["reduceOnly"] == "true"
    assert order.order_type is OrderType.STOP_MARKET
    assert order.client_order_id == "sc-S-0123456789abcdef-0"
    assert order.stop_price == D("590.5")
    assert order.status is VenueOrderStatus.NEW


async def test_cancel_and_query_plain_orders_use_the_query_string(autojump_clock) -> None:
    fake = FakeBinance()
    venue = make_venue(fake)
    cancelled = await venue.cancel_order("BTCUSDT", client_order_id="myOrder1")
    req = fake.last("DELETE", "/fapi/v1/order")
    assert req.content == b""
    assert verify_signature(req.url.query.decode(), "", fx.SIGN_SECRET)
    assert FakeBinance.params(req)["origClientOrderId"] == "myOrder1"
    assert cancelled.status is VenueOrderStatus.CANCELED
    found = await venue.query_order("BTCUSDT", order_id="1917641")
    assert FakeBinance.params(fake.last("GET", "/fapi/v1/order"))["orderId"] == "1917641"
    assert found.order_id == "1917641"
    assert found.client_order_id == "abc"


async def test_conditional_cancel_reads_the_algo_order_back(autojump_clock) -> None:
    fake = FakeBinance()
    venue = make_venue(fake)
    order = await venue.cancel_order(
        "BNBUSDT", client_order_id="6B2I9XVcJpCjqPAJ4YoFX7", conditional=True
    )
    cancel = FakeBinance.params(fake.last("DELETE", "/fapi/v1/algoOrder"))
    assert cancel["clientAlgoId"] == "6B2I9XVcJpCjqPAJ4YoFX7"
    assert "symbol" not in cancel
    assert FakeBinance.params(fake.last("GET", "/fapi/v1/algoOrder"))["algoId"] == "2146760"
    assert order.order_id == "2146760"
    assert order.status is VenueOrderStatus.CANCELED


async def test_conditional_cancel_acked_but_unreadable_is_idempotent_safe(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script("GET", "/fapi/v1/algoOrder", httpx.ReadTimeout("slow"))
    venue = make_venue(fake)
    with pytest.raises(VenueError) as caught:
        await venue.cancel_order("BNBUSDT", order_id="2146760", conditional=True)
    assert caught.value.error_class is ErrorClass.IDEMPOTENT_SAFE
    assert caught.value.verdict.reason == "algo_cancel_acked"
    assert fake.count("DELETE", "/fapi/v1/algoOrder") == 1  # never resent


async def test_conditional_query(autojump_clock) -> None:
    fake = FakeBinance()
    order = await make_venue(fake).query_order("BNBUSDT", order_id="2146760", conditional=True)
    assert fake.count("GET", "/fapi/v1/order") == 0
    assert order.order_type is OrderType.TAKE_PROFIT
    assert order.order_id == "2146760"


async def test_open_orders_merges_plain_and_algo_orders(autojump_clock) -> None:
    fake = FakeBinance()
    orders = await make_venue(fake).open_orders()
    assert [o.order_id for o in orders] == ["4087922044", "2148627"]
    assert {o.order_type for o in orders} == {OrderType.LIMIT, OrderType.TAKE_PROFIT}
    assert "symbol" not in FakeBinance.params(fake.last("GET", "/fapi/v1/openOrders"))
    await make_venue(fake).open_orders("BTCUSDT")
    assert FakeBinance.params(fake.last("GET", "/fapi/v1/openAlgoOrders"))["symbol"] == "BTCUSDT"


async def test_account_reads_and_settings(autojump_clock) -> None:
    fake = FakeBinance()
    venue = make_venue(fake)
    [position] = await venue.positions()
    assert (position.symbol, position.quantity) == ("BTCUSDT", D("0.009"))
    [usdt] = await venue.balances()
    assert usdt.asset == "USDT"
    assert usdt.available_balance == D("23.72469206")
    trades = await venue.user_trades("BTCUSDT", from_trade_id="698759", limit=100)
    assert [t.trade_id for t in trades] == ["698759", "698761"]  # oldest first
    p = FakeBinance.params(fake.last("GET", "/fapi/v1/userTrades"))
    assert (p["fromId"], p["limit"]) == ("698759", "100")
    info = await venue.exchange_info()
    assert info.symbols[0].symbol == "BLZUSDT"
    assert "X-MBX-APIKEY" not in fake.last("GET", "/fapi/v1/exchangeInfo").headers
    assert await venue.set_leverage("BTCUSDT", 21) == 21
    await venue.countdown_cancel_all("BTCUSDT", 100000)
    assert (
        FakeBinance.params(fake.last("POST", "/fapi/v1/countdownCancelAll"))["countdownTime"]
        == "100000"
    )
    assert await venue.server_time() == wall_ms()
    assert venue.rate_limits.used_weight_1m == fake.weight


async def test_invalid_request_is_fatal_and_sends_nothing(autojump_clock) -> None:
    fake = FakeBinance()
    venue = make_venue(fake)
    with pytest.raises(VenueError) as caught:
        await venue.create_order(limit(cid="has spaces"))
    assert caught.value.error_class is ErrorClass.FATAL
    assert caught.value.verdict.reason == "invalid_request"
    assert not caught.value.verdict.order_may_exist
    assert fake.requests == []


# --- error mapping -------------------------------------------------------------------


async def test_503_unknown_on_create_is_ambiguous(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script(
        "POST",
        "/fapi/v1/order",
        error(503, -1000, "Unknown error, please check your request or try again later."),
    )
    with pytest.raises(VenueError) as caught:
        await make_venue(fake).create_order(limit())
    assert caught.value.is_ambiguous
    assert caught.value.verdict.order_may_exist
    assert caught.value.http_status == 503
    assert fake.count("POST", "/fapi/v1/order") == 1


async def test_duplicate_client_order_id_proves_the_order_exists(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script("POST", "/fapi/v1/order", error(400, -4116, "ClientOrderId is duplicated."))
    with pytest.raises(VenueError) as caught:
        await make_venue(fake).create_order(limit())
    assert caught.value.error_class is ErrorClass.IDEMPOTENT_SAFE
    assert caught.value.verdict.order_exists
    assert caught.value.code == -4116


async def test_cancel_not_open_is_idempotent_safe(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script("DELETE", "/fapi/v1/order", error(400, -2011, "Unknown order sent."))
    with pytest.raises(VenueError) as caught:
        await make_venue(fake).cancel_order("BTCUSDT", client_order_id=CID)
    assert caught.value.error_class is ErrorClass.IDEMPOTENT_SAFE
    assert caught.value.verdict.reason == "cancel_not_open"
    assert caught.value.verdict.order_may_exist  # it may have filled: query to know


async def test_query_not_found(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script("GET", "/fapi/v1/order", error(400, -2013, "Order does not exist."))
    with pytest.raises(VenueError) as caught:
        await make_venue(fake).query_order("BTCUSDT", client_order_id=CID)
    assert caught.value.verdict.reason == "order_not_found"


async def test_malformed_2xx_is_ambiguous_for_a_create_and_fatal_for_a_read(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script("POST", "/fapi/v1/order", reply(200, "<html>proxy</html>"))
    fake.script("GET", "/fapi/v3/positionRisk", reply(200, [{"symbol": "BTCUSDT"}]))
    venue = make_venue(fake)
    with pytest.raises(VenueError) as created:
        await venue.create_order(limit())
    assert created.value.is_ambiguous
    assert created.value.verdict.reason == "malformed_response"
    with pytest.raises(VenueError) as read:
        await venue.positions()
    assert read.value.error_class is ErrorClass.FATAL
    assert "positionAmt" in read.value.message


async def test_mark_price_is_an_unsigned_read_of_premium_index(autojump_clock) -> None:
    fake = FakeBinance()
    venue = make_venue(fake)
    assert await venue.mark_price("BTCUSDT") == D("11793.63104562")
    sent = fake.last("GET", "/fapi/v1/premiumIndex")
    assert FakeBinance.params(sent) == {"symbol": "BTCUSDT"}
    assert "X-MBX-APIKEY" not in sent.headers  # public: the key never leaves for market data
    record = await venue.premium_index("BTCUSDT")
    assert (record.index_price, record.last_funding_rate) == (D("11781.8049597"), D("0.00038246"))
    assert venue.rate_limits.used_weight_1m == fake.weight


async def test_mark_price_refuses_a_bad_answer_instead_of_trading_on_it(autojump_clock) -> None:
    fake = FakeBinance()
    doc = json.loads(fx.DOC_PREMIUM_INDEX)
    fake.script(
        "GET",
        "/fapi/v1/premiumIndex",
        reply(200, doc | {"symbol": "ETHUSDT"}),  # a price for another instrument
        reply(200, doc | {"markPrice": "0.00000000"}),
        reply(200, "<html>cached by a proxy</html>"),
        error(400, -1121, "Invalid symbol."),
    )
    venue = make_venue(fake)
    wrong = await _venue_error(venue.mark_price("BTCUSDT"))
    assert (wrong.error_class, wrong.verdict.reason) == (ErrorClass.FATAL, "malformed_response")
    assert "ETHUSDT" in wrong.message
    zero = await _venue_error(venue.mark_price("BTCUSDT"))
    assert (zero.error_class, zero.verdict.reason) == (ErrorClass.FATAL, "malformed_response")
    assert "markPrice" in zero.message
    html = await _venue_error(venue.mark_price("BTCUSDT"))
    assert (html.error_class, html.verdict.reason) == (ErrorClass.FATAL, "malformed_response")
    unknown = await _venue_error(venue.mark_price("BTCUSDT"))
    assert (unknown.code, unknown.error_class, unknown.operation) == (
        -1121,
        ErrorClass.FATAL,
        Operation.QUERY,
    )
    before = fake.count("GET", "/fapi/v1/premiumIndex")
    invalid = await _venue_error(venue.mark_price("BTC USDT"))
    assert invalid.verdict.reason == "invalid_request"
    assert fake.count("GET", "/fapi/v1/premiumIndex") == before  # refused before sending


async def _venue_error(call: Awaitable[Any]) -> VenueError:
    with pytest.raises(VenueError) as caught:
        await call
    return caught.value


# --- transport failures and timeouts --------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "written"),
    [
        (httpx.ReadTimeout("read timed out"), True),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), True),
        (httpx.ReadError("connection reset by peer"), True),
        (httpx.WriteError("broken pipe"), True),
        (httpx.ConnectError("connection refused"), False),
        (httpx.ConnectTimeout("connect timed out"), False),
        (httpx.PoolTimeout("no connection available"), False),
    ],
)
async def test_transport_failures_classified_by_whether_the_request_left(
    autojump_clock, failure: httpx.RequestError, written: bool
) -> None:
    fake = FakeBinance()
    fake.script("POST", "/fapi/v1/order", failure)
    fake.script("GET", "/fapi/v1/order", failure)
    venue = make_venue(fake)
    with pytest.raises(VenueError) as create:
        await venue.create_order(limit())
    expected = ErrorClass.AMBIGUOUS if written else ErrorClass.RETRYABLE
    assert create.value.error_class is expected
    assert create.value.verdict.reason == (
        "transport_after_write" if written else "transport_before_write"
    )
    assert create.value.operation is Operation.CREATE
    assert create.value.__cause__ is None
    assert create.value.__suppress_context__
    with pytest.raises(VenueError) as query:
        await venue.query_order("BTCUSDT", client_order_id=CID)
    assert query.value.error_class is ErrorClass.RETRYABLE  # a read has no effect to doubt
    assert fake.count("POST", "/fapi/v1/order") == 1  # no hidden resend


async def test_hard_cap_fires_as_ambiguous_when_the_venue_never_answers(autojump_clock) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    fake = FakeBinance()
    fake.script("POST", "/fapi/v1/order", hang)
    venue = make_venue(fake, request_timeout_s=3.0, connect_timeout_s=1.0)
    await venue.sync_time()
    start = trio.current_time()
    with pytest.raises(VenueError) as caught:
        await venue.create_order(limit())
    assert trio.current_time() - start == pytest.approx(3.0)
    assert caught.value.is_ambiguous
    assert caught.value.verdict.reason == "transport_after_write"


# --- rate limits -----------------------------------------------------------------------


async def test_429_arms_a_fail_fast_gate_until_retry_after(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script(
        "GET",
        "/fapi/v3/positionRisk",
        error(429, -1003, "Too many requests.", Retry_After="7", X_MBX_USED_WEIGHT_1M="2401"),
    )
    venue = make_venue(fake)
    with pytest.raises(VenueError) as limited:
        await venue.positions()
    assert limited.value.error_class is ErrorClass.RETRYABLE
    assert limited.value.verdict.backoff_hint_s == 7.0
    assert venue.rate_limits.backoff_until == pytest.approx(trio.current_time() + 7.0)
    assert venue.rate_limits.used_weight_1m == 2401
    calls = len(fake.requests)
    await trio.sleep(6.5)
    for call in (venue.positions(), venue.create_order(limit()), venue.server_time()):
        with pytest.raises(VenueError) as gated:
            await call
        assert gated.value.verdict.reason == "rate_limited_backoff"
        assert gated.value.verdict.backoff_hint_s == pytest.approx(0.5)
    assert len(fake.requests) == calls  # the network was not touched
    await trio.sleep(0.5)
    assert len(await venue.positions()) == 1
    assert venue.rate_limits.backoff_until is None


async def test_418_ban_without_retry_after_waits_the_minimum_ban(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script(
        "GET", "/fapi/v1/openOrders", error(418, -1003, "Way too many requests; IP banned.")
    )
    venue = make_venue(fake)
    with pytest.raises(VenueError) as banned:
        await venue.open_orders()
    assert banned.value.verdict.reason == "ip_banned"
    assert banned.value.verdict.backoff_hint_s == 120.0
    calls = len(fake.requests)
    await trio.sleep(119)
    with pytest.raises(VenueError):
        await venue.open_orders()
    assert len(fake.requests) == calls
    await trio.sleep(1)
    await venue.open_orders()
    assert len(fake.requests) == calls + 2


async def test_429_without_retry_after_doubles_per_consecutive_limit(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script("GET", "/fapi/v1/exchangeInfo", *[error(429, -1003, "Too many requests.")] * 3)
    venue = make_venue(fake, rate_limit_backoff_s=1.0, rate_limit_backoff_max_s=3.0)
    hints = []
    for _ in range(3):
        with pytest.raises(VenueError) as caught:
            await venue.exchange_info()
        hints.append(caught.value.verdict.backoff_hint_s)
        await trio.sleep(caught.value.verdict.backoff_hint_s or 0)
    assert hints == [1.0, 2.0, 3.0]
    await venue.exchange_info()
    assert venue.rate_limits.consecutive_limited == 0


async def test_read_retry_is_opt_in_and_never_for_mutations(autojump_clock) -> None:
    limited = error(429, -1003, "Too many requests.", Retry_After="2")
    fake = FakeBinance()
    fake.script("GET", "/fapi/v3/balance", limited)
    fake.script("POST", "/fapi/v1/order", limited)
    venue = make_venue(fake, read_retry_on_rate_limit=True, read_retry_max_wait_s=5.0)
    [usdt] = await venue.balances()
    assert usdt.asset == "USDT"
    assert fake.count("GET", "/fapi/v3/balance") == 2
    assert fake.times[-1] - fake.times[-2] == pytest.approx(2.0)
    with pytest.raises(VenueError):
        await venue.create_order(limit())
    assert fake.count("POST", "/fapi/v1/order") == 1
    default = make_venue(fake2 := FakeBinance())
    fake2.script("GET", "/fapi/v3/balance", limited)
    with pytest.raises(VenueError):
        await default.balances()
    assert fake2.count("GET", "/fapi/v3/balance") == 1


# --- clock --------------------------------------------------------------------------


async def test_offset_from_a_skewed_server_clock_is_applied_to_signed_requests(
    autojump_clock,
) -> None:
    fake = FakeBinance(skew_ms=2500, latency_s=0.05)
    venue = make_venue(fake)
    sync = await venue.sync_time()
    assert sync.offset_ms == 2500
    assert sync.round_trip_ms == 100
    assert venue.clock_offset_ms == 2500
    await venue.create_order(limit())
    sent = int(FakeBinance.params(fake.last("POST", "/fapi/v1/order"))["timestamp"])
    assert sent == wall_ms() + 2500
    assert fake.count("GET", "/fapi/v1/time") == 1  # fresh: no automatic re-sync


async def test_signed_requests_resync_when_the_offset_is_stale(autojump_clock) -> None:
    fake = FakeBinance(skew_ms=-800)
    venue = make_venue(fake, time_sync_interval_s=60.0)
    await venue.positions()
    assert fake.count("GET", "/fapi/v1/time") == 1
    assert venue.clock_offset_ms == -800
    await trio.sleep(30)
    await venue.positions()
    await venue.exchange_info()  # unsigned: never triggers a sync
    assert fake.count("GET", "/fapi/v1/time") == 1
    await trio.sleep(31)
    fake.skew_ms = 400
    await venue.positions()
    assert fake.count("GET", "/fapi/v1/time") == 2
    assert venue.clock_offset_ms == 400


async def test_failed_automatic_sync_does_not_block_the_request(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script("GET", "/fapi/v1/time", httpx.ConnectError("refused"))
    venue = make_venue(fake)
    assert len(await venue.positions()) == 1
    assert venue.time_sync_failures == 1
    assert venue.clock_sync is None


async def test_minus_1021_resyncs_once_and_surfaces_retryable(autojump_clock) -> None:
    fake = FakeBinance(skew_ms=0)
    venue = make_venue(fake, min_resync_interval_s=5.0)
    await venue.sync_time()
    fake.skew_ms = 3000
    outside = error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    fake.script("POST", "/fapi/v1/order", outside, outside)
    await trio.sleep(10)
    with pytest.raises(VenueError) as first:
        await venue.create_order(limit())
    assert first.value.error_class is ErrorClass.RETRYABLE
    assert first.value.code == -1021
    assert fake.count("GET", "/fapi/v1/time") == 2
    assert venue.clock_offset_ms == 3000
    with pytest.raises(VenueError):
        await venue.create_order(limit())  # a second -1021 inside the window: no new sync
    assert fake.count("GET", "/fapi/v1/time") == 2
    assert fake.count("POST", "/fapi/v1/order") == 2  # the client resent nothing itself
    await venue.create_order(limit())  # the Router's retry, with the corrected clock
    sent = int(FakeBinance.params(fake.last("POST", "/fapi/v1/order"))["timestamp"])
    assert sent == wall_ms() + 3000


@given(
    offset=st.integers(-3_600_000, 3_600_000),
    sent=st.integers(1_500_000_000_000, 2_000_000_000_000),
    one_way=st.integers(0, 5_000),
    back=st.integers(0, 5_000),
)
def test_offset_error_is_bounded_by_half_the_round_trip(offset, sent, one_way, back) -> None:
    server = sent + one_way + offset  # stamped when the request arrived
    received = sent + one_way + back
    estimate = clock_offset_ms(sent, server, received)
    assert abs(estimate - offset) <= (one_way + back) // 2 + 1
    if one_way == back:
        assert estimate == offset


# --- secrets --------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits


@settings(max_examples=40, deadline=None)
@given(
    key=st.text(_ALNUM, min_size=12, max_size=64),
    secret=st.text(_ALNUM, min_size=12, max_size=64),
    scenario=st.sampled_from(["connect", "timeout", "error_body", "malformed", "bad_key"]),
)
def test_no_exception_renders_the_key_secret_or_signature(key, secret, scenario) -> None:
    creds = ApiCredentials(api_key=key, secret=secret.encode())
    leak = f"key={key} secret={secret}"

    async def main() -> VenueError:
        fake = FakeBinance(key=key, secret=secret.encode())

        async def answer(request: httpx.Request) -> httpx.Response:
            url = str(request.url)
            if scenario == "connect":
                raise httpx.ConnectError(f"cannot reach {url} {leak}", request=request)
            if scenario == "timeout":
                raise httpx.ReadTimeout(f"{url} {request.headers} {leak}", request=request)
            if scenario == "error_body":
                return error(400, -1102, f"bad {url} {leak} X-MBX-APIKEY: {key}")
            if scenario == "malformed":
                return reply(200, f'{{"listenKey": "{leak}", "x": "{url}"')
            return error(401, -2015, f"Invalid API-key {key}")

        fake.script("GET", "/fapi/v1/openOrders", answer)
        venue = make_venue(fake, credentials=creds)
        await venue.sync_time()
        with pytest.raises(VenueError) as caught:
            await venue.open_orders("BTCUSDT")
        return caught.value

    exc = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    rendered = " ".join([str(exc), repr(exc), exc.message, *getattr(exc, "__notes__", [])])
    assert key not in rendered
    assert secret not in rendered
    assert not re.search(r"[0-9a-f]{64}", rendered)  # no HMAC signature either
    venue_repr = repr(make_venue(FakeBinance(), credentials=creds))
    assert key not in venue_repr
    assert secret not in venue_repr


# --- configuration ----------------------------------------------------------------------


def test_presets_point_at_the_documented_endpoints() -> None:
    live = BinanceConfig.live()
    assert (live.rest_url, live.ws_url) == (
        wire.PRODUCTION_REST_URL,
        wire.PRODUCTION_USER_STREAM_URL,
    )
    assert live.ws_url.endswith("/private/ws")
    test = BinanceConfig.testnet(recv_window_ms=3000)
    assert (test.rest_url, test.ws_url, test.recv_window_ms) == (
        wire.TESTNET_REST_URL,
        wire.TESTNET_USER_STREAM_URL,
        3000,
    )
    assert BinanceConfig() == BinanceConfig.testnet()  # a forgotten URL never trades live
    sim = BinanceConfig.custom("http://127.0.0.1:8080", "ws://localhost:8081/private/ws")
    assert sim.wire_config.recv_window_ms == 5000


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"rest_url": "http://fapi.binance.com"}, "rest_url"),
        ({"ws_url": "ws://fstream.binance.com/ws"}, "ws_url"),
        ({"rest_url": "ftp://127.0.0.1"}, "rest_url"),
        ({"rest_url": "https://x.invalid/?a=1"}, "rest_url"),
        ({"keepalive_interval_s": 3600.0}, "keepalive_interval_s"),
        ({"connect_timeout_s": 10.0}, "connect_timeout_s"),
        ({"request_timeout_s": math.nan}, "request_timeout_s"),
        ({"recv_window_ms": 60001}, "recv_window_ms"),
        ({"working_type": "LAST"}, "working_type"),
        ({"new_order_resp_type": "FULL"}, "new_order_resp_type"),
        ({"reconnect_max_attempts": 0}, "reconnect_max_attempts"),
        ({"ws_ping_timeout_s": 90.0}, "ws_ping_timeout_s"),
        ({"price_protect": 1}, "price_protect"),
    ],
)
def test_bad_settings_name_their_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(BinanceConfigError) as caught:
        BinanceConfig(**overrides)
    assert caught.value.field == field


# --- credentials ------------------------------------------------------------------------


def _secret_file(tmp_path: Path, name: str, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / name
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_credentials_from_the_environment() -> None:
    creds = load_credentials({"SCALPER_API_KEY": API_KEY, "SCALPER_API_SECRET": " s3cr3t\n"})
    assert creds.api_key == API_KEY
    assert creds.secret == b"s3cr3t"
    assert "s3cr3t" not in repr(creds)
    assert API_KEY not in repr(creds)


def test_credentials_from_private_files(tmp_path: Path) -> None:
    key = _secret_file(tmp_path, "key", API_KEY + "\n")
    secret = _secret_file(tmp_path, "secret", "f1le-secret\n")
    env = {"SCALPER_API_KEY_FILE": str(key), "SCALPER_API_SECRET_FILE": str(secret)}
    assert load_credentials(env).secret == b"f1le-secret"
    other = _secret_file(tmp_path, "other", "arg-secret")
    assert load_credentials(env, secret_file=other).secret == b"arg-secret"


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602])
def test_group_or_world_accessible_secret_file_is_refused(tmp_path: Path, mode: int) -> None:
    secret = _secret_file(tmp_path, "secret", "hunter2-secret", mode)
    with pytest.raises(InsecureSecretFileError) as caught:
        load_credentials({"SCALPER_API_KEY": API_KEY}, secret_file=secret)
    assert caught.value.mode == mode
    assert caught.value.path == secret
    assert "hunter2" not in str(caught.value)
    assert "chmod 600" in str(caught.value)


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"SCALPER_API_SECRET": "s"}, "SCALPER_API_KEY"),
        ({"SCALPER_API_KEY": "k"}, "SCALPER_API_SECRET"),
        ({"SCALPER_API_KEY": "k", "SCALPER_API_SECRET": "   "}, "SCALPER_API_SECRET"),
        ({"SCALPER_API_KEY": "k y", "SCALPER_API_SECRET": "topsecret"}, "SCALPER_API_KEY"),
        (
            {
                "SCALPER_API_KEY": "k",
                "SCALPER_API_SECRET": "topsecret",
                "SCALPER_API_SECRET_FILE": "/nonexistent",
            },
            "SCALPER_API_SECRET",
        ),
        (
            {"SCALPER_API_KEY": "k", "SCALPER_API_SECRET_FILE": "/nonexistent/topsecret-file"},
            "SCALPER_API_SECRET_FILE",
        ),
    ],
)
def test_credential_errors_name_the_variable_never_the_value(
    env: dict[str, str], field: str
) -> None:
    with pytest.raises(CredentialsError) as caught:
        load_credentials(env)
    assert caught.value.field == field
    rendered = str(caught.value) + repr(caught.value)
    assert "topsecret" not in rendered.replace("topsecret-file", "")
    assert "k y" not in rendered


# --- stream: event conversion ------------------------------------------------------------


def test_stream_event_conversion() -> None:
    raw = json.dumps(fx.order_trade_fill())
    update = stream_event_from(parse_user_message(raw), raw)
    assert isinstance(update, OrderUpdate)
    assert not update.conditional
    assert update.fill is not None
    assert update.fill.trade_id == "1122334455"
    assert update.order.status is VenueOrderStatus.PARTIALLY_FILLED
    algo = stream_event_from(parse_user_message(fx.DOC_ALGO_UPDATE), fx.DOC_ALGO_UPDATE)
    assert isinstance(algo, OrderUpdate)
    assert algo.conditional
    assert algo.fill is None
    assert algo.order.order_id == "2148719"
    account = stream_event_from(parse_user_message(fx.DOC_ACCOUNT_UPDATE), fx.DOC_ACCOUNT_UPDATE)
    assert isinstance(account, AccountUpdate)
    assert account.reason == "ORDER"
    assert account.positions[0].quantity == D("20")
    assert account.balances[0].wallet_balance == D("122624.12345678")
    for raw_other, kind in [
        (fx.DOC_TRADE_LITE, "TRADE_LITE"),
        (fx.DOC_GRID_UPDATE, "GRID_UPDATE"),
        (fx.DOC_MARGIN_CALL, "MARGIN_CALL"),
        (fx.DOC_LISTEN_KEY_EXPIRED, "listenKeyExpired"),
    ]:
        other = stream_event_from(parse_user_message(raw_other), raw_other)
        assert isinstance(other, UnknownStreamEvent)
        assert other.event_type == kind
    expired = stream_event_from(
        parse_user_message(fx.DOC_LISTEN_KEY_EXPIRED), fx.DOC_LISTEN_KEY_EXPIRED
    )
    assert isinstance(expired, UnknownStreamEvent)
    assert "WsCMN0a4" not in expired.raw


@given(failures=st.integers(0, 100), initial=st.floats(0.01, 5), cap=st.floats(5, 120))
def test_reconnect_backoff_is_monotone_and_bounded(failures, initial, cap) -> None:
    delay = reconnect_delay_s(failures, initial, cap)
    assert 0 <= delay <= cap
    assert (delay == 0) == (failures == 0)
    assert reconnect_delay_s(failures + 1, initial, cap) >= delay


# --- stream: real loopback WebSocket -------------------------------------------------------


Session = Callable[[WebSocketConnection], Awaitable[None]]


class WsServer:
    """A trio-websocket server playing one scripted behaviour per accepted connection."""

    def __init__(self, *sessions: Session) -> None:
        self.sessions = sessions
        self.paths: list[str] = []

    async def handler(self, request: WebSocketRequest) -> None:
        index = len(self.paths)
        self.paths.append(request.path)
        ws = await request.accept()
        await self.sessions[min(index, len(self.sessions) - 1)](ws)


def send_then_close(*messages: str) -> Session:
    async def run(ws: WebSocketConnection) -> None:
        for message in messages:
            await ws.send_message(message)
        await ws.aclose()

    return run


def send_then_hold(*messages: str) -> Session:
    async def run(ws: WebSocketConnection) -> None:
        for message in messages:
            await ws.send_message(message)
        await trio.sleep_forever()

    return run


async def take(
    events: AsyncIterator[StreamEvent], n: int, within_s: float = 5.0
) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    with trio.fail_after(within_s):
        async for event in events:
            out.append(event)
            if len(out) == n:
                break
    return out


def connected(event: StreamEvent) -> StreamConnected:
    assert isinstance(event, StreamConnected)
    return event


async def consume(venue: BinanceVenue, seen: list[StreamEvent] | None = None) -> None:
    async with venue.user_stream() as events:
        async for event in events:
            if seen is not None:
                seen.append(event)


async def consume_one_then_fail(venue: BinanceVenue) -> None:
    async with venue.user_stream() as events:
        await take(events, 1)
        raise KeyError("consumer bug")


FAST_STREAM = {"reconnect_backoff_initial_s": 0.01, "reconnect_backoff_max_s": 0.05}


async def loopback_venue(
    nursery: trio.Nursery, server: WsServer, fake: FakeBinance, **overrides: Any
) -> BinanceVenue:
    listener = await nursery.start(serve_websocket, server.handler, "127.0.0.1", 0, None)
    config = BinanceConfig.custom(
        "http://127.0.0.1:9",
        f"ws://127.0.0.1:{listener.port}/private/ws",
        **(FAST_STREAM | overrides),
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    return BinanceVenue(config, CREDS, wall_clock_ms=lambda: BASE_MS, http=http)


async def test_loopback_stream_reconnects_and_reports_the_gap(nursery: trio.Nursery) -> None:
    fill = json.dumps(fx.order_trade_fill())
    server = WsServer(send_then_close(fill), send_then_hold(fx.DOC_ALGO_UPDATE))
    fake = FakeBinance()
    venue = await loopback_venue(nursery, server, fake)
    async with venue.user_stream() as events:
        first_event, update, down, gap, again, algo = await take(events, 6)
    first = connected(first_event)
    assert first == StreamConnected(at=first.at, reconnect=False)
    assert isinstance(update, OrderUpdate)
    assert update.fill is not None
    assert update.fill.quantity == D("0.004")
    assert update.order.client_order_id == CID
    # The loss is reported when it happens, before the reconnect is even attempted.
    assert isinstance(down, StreamDisconnected)
    assert down.reason == "disconnected"
    assert isinstance(gap, StreamGap)
    assert gap.reason == "disconnected"
    assert down.since == gap.started_at
    assert gap.started_at <= down.at <= gap.ended_at
    assert isinstance(again, StreamConnected)
    assert again.reconnect
    assert first.at <= gap.started_at <= gap.ended_at == again.at
    assert isinstance(algo, OrderUpdate)
    assert algo.conditional
    assert server.paths == [f"/private/ws/{LISTEN_KEY}"] * 2
    assert fake.count("POST", "/fapi/v1/listenKey") == 2
    assert all(r.headers["X-MBX-APIKEY"] == API_KEY for r in fake.requests)


async def test_loopback_listen_key_expired_creates_a_new_key(nursery: trio.Nursery) -> None:
    server = WsServer(send_then_hold(fx.DOC_LISTEN_KEY_EXPIRED), send_then_hold())
    fake = FakeBinance()
    fake.script(
        "POST",
        "/fapi/v1/listenKey",
        reply(200, {"listenKey": LISTEN_KEY}),
        reply(200, {"listenKey": SECOND_KEY}),
    )
    venue = await loopback_venue(nursery, server, fake)
    async with venue.user_stream() as events:
        _, down, gap, again = await take(events, 4)
    assert isinstance(down, StreamDisconnected)
    assert down.reason == "listen_key_expired"
    assert isinstance(gap, StreamGap)
    assert gap.reason == "listen_key_expired"
    assert isinstance(again, StreamConnected)
    assert again.reconnect
    assert server.paths == [f"/private/ws/{LISTEN_KEY}", f"/private/ws/{SECOND_KEY}"]


async def test_loopback_rejected_handshake_is_retried_then_one_venue_error(
    nursery: trio.Nursery,
) -> None:
    paths: list[str] = []

    async def reject(request: WebSocketRequest) -> None:
        paths.append(request.path)
        await request.reject(403, body=b"forbidden")

    listener = await nursery.start(serve_websocket, reject, "127.0.0.1", 0, None)
    config = BinanceConfig.custom(
        "http://127.0.0.1:9",
        f"ws://127.0.0.1:{listener.port}/private/ws",
        **(FAST_STREAM | {"reconnect_max_attempts": 2}),
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(FakeBinance().handle))
    venue = BinanceVenue(config, CREDS, wall_clock_ms=lambda: BASE_MS, http=http)
    with trio.fail_after(5), pytest.raises(VenueError) as caught:
        await consume(venue)
    assert "ConnectionRejected" in caught.value.message
    assert LISTEN_KEY not in str(caught.value)
    assert len(paths) == 3


# --- stream: in-memory WebSocket on the MockClock ---------------------------------------------


@attrs.define
class FakeWs:
    """Frames after delays, then close or hold; pongs or not."""

    script: list[tuple[float, str]]
    close_after: bool = False
    pong: bool = True
    pings: int = 0

    async def get_message(self) -> str | bytes:
        while self.script:
            delay, message = self.script.pop(0)
            await trio.sleep(delay)
            return message
        if self.close_after:
            raise ConnectionClosed(CloseReason(1000, None))
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def ping(self, payload: bytes | None = None) -> None:
        self.pings += 1
        if not self.pong:
            await trio.sleep_forever()


class FakeConnector:
    def __init__(self, *connections: FakeWs | BaseException) -> None:
        self.connections = list(connections)
        self.urls: list[str] = []
        self.times: list[float] = []

    @asynccontextmanager
    async def __call__(self, url: str) -> AsyncIterator[FakeWs]:
        self.urls.append(url)
        self.times.append(trio.current_time())
        item = self.connections.pop(0) if len(self.connections) > 1 else self.connections[0]
        if isinstance(item, BaseException):
            raise item
        yield item


def fake_stream_venue(
    fake: FakeBinance, connector: FakeConnector, **overrides: Any
) -> BinanceVenue:
    config = BinanceConfig.custom(REST, WS, **overrides)
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    return BinanceVenue(config, CREDS, wall_clock_ms=wall_ms, http=http, ws_connect=connector)


async def test_ping_timeout_gap_starts_at_the_last_frame(autojump_clock) -> None:
    account = fx.DOC_ACCOUNT_UPDATE
    connector = FakeConnector(FakeWs([(3.0, account)], pong=False), FakeWs([]))
    venue = fake_stream_venue(
        FakeBinance(),
        connector,
        ws_ping_interval_s=10.0,
        ws_ping_timeout_s=5.0,
        stable_connection_s=0.0,
    )
    async with venue.user_stream() as events:
        first_event, update, down, gap, again = await take(events, 5, within_s=100)
    first, again = connected(first_event), connected(again)
    assert isinstance(update, AccountUpdate)
    # Reported when the pong is overdue, naming the last frame as the start of the hole.
    assert down == StreamDisconnected(
        at=first.at + 15.0, since=first.at + 3.0, reason="ping_timeout"
    )
    assert isinstance(gap, StreamGap)
    assert gap.reason == "ping_timeout"
    assert gap.started_at == first.at + 3.0  # the last frame, not the connect
    assert gap.ended_at == again.at == first.at + 15.0  # stable connection: no backoff
    assert connector.urls == [f"{WS}/{LISTEN_KEY}"] * 2


async def test_keepalive_runs_on_schedule_and_minus_1125_recreates_the_key(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script(
        "PUT",
        "/fapi/v1/listenKey",
        reply(200, {"listenKey": LISTEN_KEY}),
        error(400, -1125, "This listenKey does not exist."),
    )
    connector = FakeConnector(FakeWs([]))
    venue = fake_stream_venue(
        fake,
        connector,
        keepalive_interval_s=1800.0,
        ws_ping_interval_s=600.0,
        ws_ping_timeout_s=10.0,
    )
    async with venue.user_stream() as events:
        first_event, down, gap, again = await take(events, 4, within_s=10_000)
    first = connected(first_event)
    puts = [t for r, t in zip(fake.requests, fake.times, strict=True) if r.method == "PUT"]
    assert puts == [first.at + 1800.0, first.at + 3600.0]
    assert isinstance(down, StreamDisconnected)
    assert down.reason == "listen_key_invalid"
    assert isinstance(gap, StreamGap)
    assert gap.reason == "listen_key_invalid"
    assert gap.started_at == first.at + 1800.0  # the last keepalive that proved the key
    assert isinstance(again, StreamConnected)
    assert again.reconnect
    assert fake.count("POST", "/fapi/v1/listenKey") == 2


async def test_failed_keepalive_is_retried_sooner(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script("PUT", "/fapi/v1/listenKey", httpx.ConnectError("refused"))
    connector = FakeConnector(FakeWs([]))
    venue = fake_stream_venue(fake, connector, keepalive_interval_s=1800.0, keepalive_retry_s=60.0)
    async with venue.user_stream() as events:
        [first_event] = await take(events, 1)
        first = connected(first_event)
        await trio.sleep(1900)
    puts = [
        t - first.at for r, t in zip(fake.requests, fake.times, strict=True) if r.method == "PUT"
    ]
    assert puts == [1800.0, 1860.0]


async def test_malformed_frame_is_surfaced_with_a_gap(autojump_clock) -> None:
    bad = json.dumps({"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 1, "o": {"s": "BTCUSDT"}})
    connector = FakeConnector(FakeWs([(1.0, bad), (1.0, fx.DOC_ALGO_UPDATE)]))
    venue = fake_stream_venue(FakeBinance(), connector)
    async with venue.user_stream() as events:
        _, unknown, gap, algo = await take(events, 4, within_s=100)
    assert isinstance(unknown, UnknownStreamEvent)
    assert unknown.event_type == MALFORMED_EVENT_TYPE
    assert isinstance(gap, StreamGap)
    assert gap.reason == "malformed_event"
    assert gap.started_at == gap.ended_at
    assert isinstance(algo, OrderUpdate)  # the stream carried on


async def test_reconnect_backs_off_and_gives_up_with_one_venue_error(autojump_clock) -> None:
    connector = FakeConnector(
        FakeWs([(1.0, fx.DOC_ALGO_UPDATE)], close_after=True), OSError("refused")
    )
    venue = fake_stream_venue(
        FakeBinance(),
        connector,
        reconnect_max_attempts=3,
        reconnect_backoff_initial_s=1.0,
        reconnect_backoff_max_s=4.0,
    )
    seen: list[StreamEvent] = []
    with pytest.raises(VenueError) as caught:
        await consume(venue, seen)
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert caught.value.error_class is ErrorClass.RETRYABLE
    assert "gave up after 3" in caught.value.message
    assert "OSError" in caught.value.message
    gaps = [t - connector.times[0] for t in connector.times]
    assert gaps == [0.0, 2.0, 4.0, 8.0]  # short-lived session counts: 1, then 2, 4
    # One StreamDisconnected for the outage, not one per failed reconnect attempt.
    assert [type(e) for e in seen] == [StreamConnected, OrderUpdate, StreamDisconnected]


async def test_fatal_listen_key_error_raises_on_entry(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script(
        "POST", "/fapi/v1/listenKey", error(401, -2015, "Invalid API-key, IP, or permissions.")
    )
    venue = fake_stream_venue(fake, FakeConnector(FakeWs([])))
    with pytest.raises(VenueError) as caught:
        await consume(venue)
    assert caught.value.error_class is ErrorClass.FATAL
    assert caught.value.code == -2015


async def test_rate_limited_listen_key_waits_for_retry_after(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script(
        "POST", "/fapi/v1/listenKey", error(429, -1003, "Too many requests.", Retry_After="7")
    )
    venue = fake_stream_venue(fake, FakeConnector(FakeWs([])))
    async with venue.user_stream() as events:
        [only] = await take(events, 1, within_s=100)
    assert connected(only).at == pytest.approx(7.0, abs=0.01)
    assert fake.count("POST", "/fapi/v1/listenKey") == 2


async def test_fatal_keepalive_fails_the_stream_without_a_group(autojump_clock) -> None:
    fake = FakeBinance()
    fake.script(
        "PUT", "/fapi/v1/listenKey", error(401, -2015, "Invalid API-key, IP, or permissions.")
    )
    venue = fake_stream_venue(fake, FakeConnector(FakeWs([])), keepalive_interval_s=60.0)
    with pytest.raises(VenueError) as caught:
        await consume(venue)
    assert caught.value.code == -2015


async def test_consumer_exception_propagates_unwrapped(autojump_clock) -> None:
    venue = fake_stream_venue(FakeBinance(), FakeConnector(FakeWs([])))
    with pytest.raises(KeyError, match="consumer bug"):
        await consume_one_then_fail(venue)


async def test_close_listen_key_on_exit_is_opt_in(autojump_clock) -> None:
    fake = FakeBinance()
    for close in (False, True):
        venue = fake_stream_venue(fake, FakeConnector(FakeWs([])), close_listen_key_on_exit=close)
        async with venue.user_stream() as events:
            await take(events, 1)
    assert fake.count("DELETE", "/fapi/v1/listenKey") == 1
