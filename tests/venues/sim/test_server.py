"""The simulated exchange over real loopback sockets, spoken to as a Binance client would.

Every request is built and signed by the project's sans-I/O wire module (or, for the
"foreign client" tests, by hand the way ccxt does it), sent with httpx over TCP, and every
answer is parsed by the project's parsers. The engine's history is the ground truth each
test checks the wire against.

Book arithmetic (still BTCUSDT, no slippage): mid 60000, bid 59997.0, ask 60003.0.
"""

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import attrs
import h11
import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from scalper.core.errors import Operation
from scalper.core.model import OrderRequest, VenueOrderStatus
from scalper.core.types import OrderType, PositionMode, Side, TimeInForce
from scalper.venues.binance import wire
from scalper.venues.sim.engine import SimConfig
from scalper.venues.sim.faults import FaultKind, FaultSpec
from scalper.venues.sim.ratelimit import RateLimitConfig
from scalper.venues.sim.records import FillRecorded, OrderAccepted, OrderClosed
from scalper.venues.sim.server import (
    DEMO_ADMIN_TOKEN,
    DEMO_API_KEY,
    DEMO_API_SECRET,
    SimServerConfig,
    SimServerHandle,
    serve_sim_exchange,
)
from tests.venues.binance import wire_fixtures as fx
from tests.venues.sim.simkit import still_symbol

D = Decimal
BTC = "BTCUSDT"
CREDS = wire.ApiCredentials(DEMO_API_KEY, DEMO_API_SECRET.encode())
ONE_WAY = PositionMode.ONE_WAY


def server_config(**changes: Any) -> SimServerConfig:
    engine = SimConfig(symbols=(still_symbol(),), slippage=None)
    base = SimServerConfig(symbols=(BTC,), engine=engine, tick_interval_s=0.02)
    return attrs.evolve(base, **changes)


@attrs.define
class Client:
    """A minimal Binance client: the project's wire module plus httpx, on the server's clock."""

    handle: SimServerHandle
    http: httpx.AsyncClient

    async def send(
        self,
        request: wire.WireRequest,
        *,
        credentials: wire.ApiCredentials = CREDS,
        skew_ms: int = 0,
        recv_window_ms: int = 5000,
    ) -> httpx.Response:
        encoded = wire.encode(
            request,
            credentials=credentials,
            timestamp_ms=self.handle.app.venue_time_ms() + skew_ms,
            recv_window_ms=recv_window_ms,
        )
        return await self.http.request(
            encoded.method.value,
            encoded.target,
            content=encoded.body or None,
            headers=dict(encoded.headers),
        )

    async def ok(self, request: wire.WireRequest) -> Any:
        response = await self.send(request)
        assert response.status_code == 200, response.text
        return wire.loads(response.content)

    async def admin(
        self, method: str, path: str, body: object = None, token: str = DEMO_ADMIN_TOKEN
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        content = None if body is None else json.dumps(body)
        return await self.http.request(method, f"/admin{path}", content=content, headers=headers)


def error_code(response: httpx.Response) -> int:
    body = wire.parse_error_body(wire.loads(response.content))
    assert body is not None, response.text
    return body.code


async def ws_handshake(client: Client, path: str) -> tuple[int, Any]:
    """Send a WebSocket opening handshake with h11 and return the refusal's status and JSON.

    (trio-websocket's client leaks its socket when a handshake is rejected, and httpx does
    not speak upgrades, so the handshake goes out by hand.)
    """
    conn = h11.Connection(h11.CLIENT)
    headers = [
        ("Host", "127.0.0.1"),
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    status, body = 0, b""
    async with await trio.open_tcp_stream("127.0.0.1", client.handle.port) as stream:
        await stream.send_all(conn.send(h11.Request(method="GET", target=path, headers=headers)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        with trio.fail_after(2):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some())
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
    return status, json.loads(body)


def limit_buy(coid: str, qty: str = "0.010", price: str = "59000") -> OrderRequest:
    return OrderRequest(
        symbol=BTC,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        client_order_id=coid,
        quantity=D(qty),
        price=D(price),
        time_in_force=TimeInForce.GTC,
    )


def market(side: Side, coid: str, qty: str = "0.010", **kw: Any) -> OrderRequest:
    return OrderRequest(
        symbol=BTC,
        side=side,
        order_type=OrderType.MARKET,
        client_order_id=coid,
        quantity=D(qty),
        **kw,
    )


async def start(nursery: trio.Nursery, config: SimServerConfig) -> Client:
    handle: SimServerHandle = await nursery.start(serve_sim_exchange, config)
    http = httpx.AsyncClient(base_url=handle.rest_url, timeout=5.0)
    nursery.start_soon(_close_on_cancel, http)
    return Client(handle, http)


async def _close_on_cancel(http: httpx.AsyncClient) -> None:
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await http.aclose()


@pytest.fixture
async def client(nursery: trio.Nursery) -> AsyncIterator[Client]:
    c = await start(nursery, server_config())
    yield c
    c.handle.stop()


# --------------------------------------------------------------------------- orders


async def test_create_query_list_and_cancel_an_order(client: Client):
    created = wire.parse_order(
        await client.ok(wire.new_order(limit_buy("rest-1"), position_mode=ONE_WAY))
    )
    assert created.status is VenueOrderStatus.NEW
    assert created.client_order_id == "rest-1"

    queried = wire.parse_order(await client.ok(wire.query_order(BTC, client_order_id="rest-1")))
    assert queried.order_id == created.order_id
    assert queried.price == D("59000")
    listed = wire.parse_orders(await client.ok(wire.open_orders(BTC)))
    assert [o.order_id for o in listed] == [created.order_id]
    assert wire.parse_orders(await client.ok(wire.open_orders())) == listed  # all symbols

    canceled = wire.parse_order(await client.ok(wire.cancel_order(BTC, order_id=created.order_id)))
    assert canceled.status is VenueOrderStatus.CANCELED
    assert wire.parse_orders(await client.ok(wire.open_orders(BTC))) == ()
    again = await client.send(wire.cancel_order(BTC, order_id=created.order_id))
    assert (again.status_code, error_code(again)) == (400, -2011)
    gone = await client.send(wire.query_order(BTC, client_order_id="never-sent"))
    assert error_code(gone) == -2013

    history = client.handle.engine.history
    accepted = [r for r in history.records if isinstance(r, OrderAccepted)]
    closed = [r for r in history.records if isinstance(r, OrderClosed)]
    assert [r.order_id for r in accepted] == [created.order_id]
    assert [(r.order_id, r.status) for r in closed] == [
        (created.order_id, VenueOrderStatus.CANCELED)
    ]


async def test_ack_response_reports_acceptance_result_reports_the_fill(client: Client):
    ack_request = wire.new_order(
        market(Side.BUY, "ack-1"),
        position_mode=ONE_WAY,
        config=wire.WireConfig(new_order_resp_type="ACK"),
    )
    ack = wire.parse_order(await client.ok(ack_request))
    result = wire.parse_order(
        await client.ok(wire.new_order(market(Side.BUY, "res-1"), position_mode=ONE_WAY))
    )

    assert (ack.status, ack.filled_qty) == (VenueOrderStatus.NEW, D(0))
    assert (result.status, result.filled_qty, result.avg_price) == (
        VenueOrderStatus.FILLED,
        D("0.010"),
        D("60003.0"),
    )
    # The ACK was only an acknowledgement: the engine filled that order too.
    final = wire.parse_order(await client.ok(wire.query_order(BTC, order_id=ack.order_id)))
    assert final.status is VenueOrderStatus.FILLED


async def test_market_fill_shows_in_positions_balances_account_and_user_trades(client: Client):
    await client.ok(wire.new_order(market(Side.BUY, "buy-1", "0.020"), position_mode=ONE_WAY))
    engine = client.handle.engine

    for version in (2, 3):
        positions = wire.parse_positions(await client.ok(wire.position_risk(version=version)))
        assert [(p.symbol, p.quantity) for p in positions] == [(BTC, D("0.020"))]
        assert positions[0].entry_price == D("60003.0")
    balances = wire.parse_balances(await client.ok(wire.balance()))
    truth = engine.balances()[0]
    assert balances[0].wallet_balance == truth.wallet_balance
    assert balances[0].available_balance == truth.available_balance
    account = wire.parse_account(await client.ok(wire.account()))
    assert account.total_wallet_balance == truth.wallet_balance
    assert [p.quantity for p in account.positions] == [D("0.020")]

    trades = wire.parse_user_trades(await client.ok(wire.user_trades(BTC, from_id=1)))
    assert [attrs.evolve(t, client_order_id="buy-1") for t in trades] == list(
        engine.history.fills(BTC)
    )


async def test_exchange_info_parses_with_the_project_parser(client: Client):
    response = await client.http.get("/fapi/v1/exchangeInfo")  # public: no key, no signature
    info = wire.parse_exchange_info(wire.loads(response.content))

    assert [s.symbol for s in info.symbols] == [BTC]
    rules = info.symbols[0]
    assert (rules.tick_size, rules.step_size, rules.min_notional) == (D("0.1"), D("0.001"), D(100))
    assert abs(info.server_time_ms - client.handle.app.venue_time_ms()) < 1000
    time_reply = await client.http.get("/fapi/v1/time")
    assert abs(wire.parse_server_time(time_reply.json()) - client.handle.app.venue_time_ms()) < 1000
    assert (await client.http.get("/fapi/v1/ping")).json() == {}


async def test_premium_index_is_binance_shaped_and_reads_the_price_path(client: Client):
    engine = client.handle.engine
    response = await client.http.get("/fapi/v1/premiumIndex", params={"symbol": BTC})  # public
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == [
        "symbol",
        "markPrice",
        "indexPrice",
        "estimatedSettlePrice",
        "lastFundingRate",
        "interestRate",
        "nextFundingTime",
        "time",
    ]
    # Binance's types: decimals are 8-place strings, times are integers.
    assert body["symbol"] == BTC
    assert (
        body["markPrice"] == body["indexPrice"] == body["estimatedSettlePrice"] == "60000.00000000"
    )
    assert (body["lastFundingRate"], body["interestRate"]) == ("0.00000000", "0.00010000")
    assert type(body["time"]) is int
    assert type(body["nextFundingTime"]) is int
    assert abs(body["time"] - client.handle.app.venue_time_ms()) < 1000
    eight_hours_ms = 8 * 3600 * 1000
    assert body["nextFundingTime"] % eight_hours_ms == 0
    assert 0 < body["nextFundingTime"] - body["time"] <= eight_hours_ms
    assert wire.parse_mark_price(wire.loads(response.content)).mark_price == engine.mark_price(BTC)

    # The mark is the engine's price path: move it and the endpoint follows.
    client.handle.app.set_mark_price(BTC, D("61234.5"))
    moved = wire.parse_mark_price(await client.ok(wire.mark_price(BTC)))
    assert moved.mark_price == engine.mark_price(BTC) == D("61234.5")
    every = wire.parse_mark_prices(await client.ok(wire.mark_price()))
    assert [(m.symbol, m.mark_price) for m in every] == [(BTC, D("61234.5"))]

    unknown = await client.http.get("/fapi/v1/premiumIndex", params={"symbol": "DOGEUSDT"})
    assert (unknown.status_code, unknown.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert (await client.http.post("/fapi/v1/premiumIndex")).status_code == 405


async def test_premium_index_weighs_one_per_symbol_and_ten_for_all(nursery: trio.Nursery):
    c = await start(nursery, SimServerConfig(symbols=("BTCUSDT", "ETHUSDT")))

    async def used_after(request: wire.WireRequest) -> tuple[int, Any]:
        response = await c.send(request)
        assert response.status_code == 200, response.text
        return int(response.headers["X-MBX-USED-WEIGHT-1M"]), wire.loads(response.content)

    start_weight, _ = await used_after(wire.server_time())
    first, _ = await used_after(wire.mark_price("ETHUSDT"))
    second, rows = await used_after(wire.mark_price())
    assert (first - start_weight, second - first) == (1, 10)
    marks = wire.parse_mark_prices(rows)
    assert [(m.symbol, m.mark_price) for m in marks] == [
        (s.symbol, c.handle.engine.mark_price(s.symbol)) for s in c.handle.engine.config.symbols
    ]
    assert [m.symbol for m in marks] == ["BTCUSDT", "ETHUSDT"]
    c.handle.stop()


async def test_conditional_orders_go_through_the_algo_endpoints(client: Client):
    await client.ok(wire.new_order(market(Side.BUY, "entry", "0.010"), position_mode=ONE_WAY))
    stop = OrderRequest(
        symbol=BTC,
        side=Side.SELL,
        order_type=OrderType.STOP_MARKET,
        client_order_id="stop-1",
        quantity=None,
        stop_price=D("58000"),
        close_position=True,
    )
    plain = wire.WireRequest(
        wire.HttpMethod.POST,
        "/fapi/v1/order",
        (
            ("symbol", BTC),
            ("side", "SELL"),
            ("type", "STOP_MARKET"),
            ("stopPrice", "58000"),
            ("closePosition", "true"),
        ),
    )
    refused = await client.send(plain)
    assert error_code(refused) == -4120  # since 2025-12-09: algo endpoints only

    placed = wire.parse_algo_order(await client.ok(wire.new_order(stop, position_mode=ONE_WAY)))
    assert placed.algo_status.value == "NEW"
    assert placed.working_type == "MARK_PRICE"  # echoed from the request
    listed = wire.parse_algo_orders(await client.ok(wire.open_algo_orders(BTC)))
    assert [a.order.order_id for a in listed] == [placed.order.order_id]
    queried = wire.parse_algo_order(await client.ok(wire.query_algo_order(client_algo_id="stop-1")))
    assert queried.order.order_id == placed.order.order_id

    # The market falls through the stop: the position is closed by the triggered order.
    moved = await client.admin("POST", "/price", {"symbol": BTC, "price": "57900"})
    assert moved.status_code == 200
    triggered = wire.parse_algo_order(
        await client.ok(wire.query_algo_order(algo_id=placed.order.order_id))
    )
    assert triggered.algo_status.value == "FINISHED"
    assert triggered.actual_order_id is not None
    assert client.handle.engine.position_qty(BTC) == 0
    positions = wire.parse_positions(await client.ok(wire.position_risk(version=2)))
    assert positions[0].quantity == 0


async def test_algo_cancel_and_cancel_all(client: Client):
    await client.ok(wire.new_order(market(Side.BUY, "entry", "0.010"), position_mode=ONE_WAY))
    for n, price in enumerate(("58000", "57000")):
        stop = OrderRequest(
            symbol=BTC,
            side=Side.SELL,
            order_type=OrderType.STOP_MARKET,
            client_order_id=f"stop-{n}",
            quantity=D("0.010"),
            stop_price=D(price),
            reduce_only=True,
        )
        await client.ok(wire.new_order(stop, position_mode=ONE_WAY))
    ack = wire.parse_algo_cancel(await client.ok(wire.cancel_algo_order(client_algo_id="stop-0")))
    assert ack.client_algo_id == "stop-0"
    assert len(wire.parse_algo_orders(await client.ok(wire.open_algo_orders()))) == 1
    done = wire.parse_code_ack(await client.ok(wire.cancel_all_algo_orders(BTC)))
    assert done.code == 200
    assert wire.parse_algo_orders(await client.ok(wire.open_algo_orders())) == ()
    missing = await client.send(wire.cancel_algo_order(algo_id=999))
    assert error_code(missing) == -2011


async def test_settings_leverage_countdown_and_position_mode(client: Client):
    change = wire.parse_leverage(await client.ok(wire.set_leverage(BTC, 10)))
    assert change.leverage == 10
    assert client.handle.engine.leverage(BTC) == 10
    bad = await client.send(_leverage(200))  # the wire module refuses to build this
    assert error_code(bad) == -4028

    await client.ok(wire.new_order(limit_buy("resting"), position_mode=ONE_WAY))
    armed = wire.parse_countdown(await client.ok(wire.countdown_cancel_all(BTC, 1000)))
    assert armed.countdown_ms == 1000
    # Nobody heartbeats: the dead-man switch fires on the server clock.
    client.handle.app.advance(1.5)
    assert wire.parse_orders(await client.ok(wire.open_orders(BTC))) == ()

    assert (
        wire.parse_position_mode(await client.ok(wire.get_position_mode())) is PositionMode.ONE_WAY
    )
    assert (
        wire.parse_code_ack(await client.ok(wire.set_position_mode(PositionMode.HEDGE))).code == 200
    )
    assert client.handle.engine.position_mode is PositionMode.HEDGE
    unchanged = await client.send(wire.set_position_mode(PositionMode.HEDGE))
    assert error_code(unchanged) == -4059


def _leverage(value: int) -> wire.WireRequest:
    return wire.WireRequest(
        wire.HttpMethod.POST, "/fapi/v1/leverage", (("symbol", BTC), ("leverage", str(value)))
    )


# --------------------------------------------------------------------------- authentication


async def test_bad_signature_is_1022_and_nothing_executes(client: Client):
    wrong = wire.ApiCredentials(DEMO_API_KEY, b"not-the-secret")
    response = await client.send(
        wire.new_order(market(Side.BUY, "forged"), position_mode=ONE_WAY), credentials=wrong
    )

    assert response.status_code == 400
    assert error_code(response) == -1022
    assert client.handle.engine.history.accepted() == ()
    assert "x-mbx-used-weight-1m" in response.headers  # weight is charged before auth


async def test_api_key_header_must_match(client: Client):
    other = wire.ApiCredentials("someone-else", DEMO_API_SECRET.encode())
    wrong_key = await client.send(wire.open_orders(BTC), credentials=other)
    assert (wrong_key.status_code, error_code(wrong_key)) == (401, -2015)
    no_key = await client.http.get("/fapi/v1/openOrders", params={"symbol": BTC})
    assert (no_key.status_code, error_code(no_key)) == (401, -2014)
    listen = await client.http.post("/fapi/v1/listenKey")
    assert error_code(listen) == -2014


async def test_clock_skew_is_1021_in_both_directions(client: Client):
    behind = await client.send(wire.open_orders(BTC), skew_ms=-6000, recv_window_ms=5000)
    ahead = await client.send(wire.open_orders(BTC), skew_ms=2000)
    inside = await client.send(wire.open_orders(BTC), skew_ms=-6000, recv_window_ms=10_000)
    huge_window = wire.WireRequest(wire.HttpMethod.GET, "/fapi/v1/openOrders", ())

    assert (behind.status_code, error_code(behind)) == (400, -1021)
    assert "outside of the recvWindow" in behind.json()["msg"]
    assert error_code(ahead) == -1021
    assert "ahead of the server's time" in ahead.json()["msg"]
    assert inside.status_code == 200
    # A recvWindow beyond 60000 cannot even be signed by our wire module; send it by hand.
    query = f"recvWindow=70000&timestamp={client.handle.app.venue_time_ms()}"
    signature = hmac.new(DEMO_API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    raw = await client.http.get(
        f"{huge_window.path}?{query}&signature={signature}", headers={"X-MBX-APIKEY": DEMO_API_KEY}
    )
    assert error_code(raw) == -1131


async def test_missing_and_malformed_parameters_get_binance_codes(client: Client):
    no_symbol = await client.send(
        wire.WireRequest(wire.HttpMethod.GET, "/fapi/v1/order", (("orderId", "1"),))
    )
    assert error_code(no_symbol) == -1102
    no_ids = await client.send(
        wire.WireRequest(wire.HttpMethod.GET, "/fapi/v1/order", (("symbol", BTC),))
    )
    assert error_code(no_ids) == -1102
    assert "'orderId' or 'origClientOrderId'" in no_ids.json()["msg"]
    bad_side = await client.send(
        wire.WireRequest(
            wire.HttpMethod.POST,
            "/fapi/v1/order",
            (("symbol", BTC), ("side", "HOLD"), ("type", "MARKET"), ("quantity", "0.01")),
        )
    )
    assert error_code(bad_side) == -1117
    bad_qty = await client.send(
        wire.WireRequest(
            wire.HttpMethod.POST,
            "/fapi/v1/order",
            (("symbol", BTC), ("side", "BUY"), ("type", "MARKET"), ("quantity", "1e3")),
        )
    )
    assert error_code(bad_qty) == -1102
    unknown_symbol = await client.send(wire.open_orders("DOGEUSDT"))
    assert error_code(unknown_symbol) == -1121


async def test_unknown_paths_are_404_and_wrong_methods_405(client: Client):
    assert (await client.http.get("/fapi/v1/nothingHere")).status_code == 404
    assert (await client.http.get("/elsewhere")).status_code == 404
    assert (await client.http.put("/fapi/v1/order")).status_code == 405


# --------------------------------------------------------------------------- rate limits


async def test_request_weight_limit_answers_429_with_headers(nursery: trio.Nursery):
    limits = RateLimitConfig(request_weight_per_minute=12)
    c = await start(
        nursery,
        server_config(
            engine=SimConfig(symbols=(still_symbol(),), slippage=None, rate_limits=limits)
        ),
    )
    first = await c.send(wire.open_orders(BTC))
    assert wire.parse_rate_limit_headers(first.headers).used_weight_1m == 1
    assert (await c.send(wire.open_orders())).status_code == 429  # 40 > 12: refused, not counted
    for _ in range(11):
        assert (await c.send(wire.open_orders(BTC))).status_code == 200
    refused = await c.send(wire.open_orders(BTC))

    assert refused.status_code == 429
    assert error_code(refused) == -1003
    usage = wire.parse_rate_limit_headers(refused.headers)
    assert usage.used_weight_1m == 12
    assert usage.retry_after_s is not None
    assert 1 <= usage.retry_after_s <= 60
    info = wire.map_error(
        refused.status_code, refused.content, operation=Operation.QUERY, headers=refused.headers
    )
    assert info.rate_limits.retry_after_s == usage.retry_after_s


async def test_order_count_headers_and_the_orders_limit(nursery: trio.Nursery):
    limits = RateLimitConfig(orders_per_10s=2)
    c = await start(
        nursery,
        server_config(
            engine=SimConfig(symbols=(still_symbol(),), slippage=None, rate_limits=limits)
        ),
    )
    for n in range(2):
        placed = await c.send(wire.new_order(limit_buy(f"o-{n}"), position_mode=ONE_WAY))
        assert placed.status_code == 200
        assert wire.parse_rate_limit_headers(placed.headers).order_count_10s == n + 1
    third = await c.send(wire.new_order(limit_buy("o-2"), position_mode=ONE_WAY))

    assert (third.status_code, error_code(third)) == (429, -1015)
    assert "retry-after" in third.headers
    assert len(c.handle.engine.history.accepted()) == 2


# --------------------------------------------------------------------------- user stream


async def test_listen_key_and_stream_deliver_the_fill(client: Client):
    key = wire.parse_listen_key(await client.ok(wire.create_listen_key()))
    async with open_websocket_url(wire.user_stream_url(client.handle.ws_url, key)) as ws:
        await client.ok(
            wire.new_order(market(Side.BUY, "streamed", "0.010"), position_mode=ONE_WAY)
        )
        events = [wire.parse_user_message(await ws.get_message()) for _ in range(3)]

    new, trade, account = events
    assert isinstance(new, wire.OrderTradeUpdate)
    assert new.execution_type is wire.ExecutionType.NEW
    assert isinstance(trade, wire.OrderTradeUpdate)
    assert trade.fill is not None
    assert [trade.fill] == list(client.handle.engine.history.fills(BTC))  # I10 on the wire
    assert isinstance(account, wire.AccountUpdate)
    assert account.positions[0].quantity == D("0.010")


async def test_private_stream_layout_wraps_events_and_filters_types(client: Client):
    key = wire.parse_listen_key(await client.ok(wire.create_listen_key()))
    url = f"{client.handle.rest_url.replace('http', 'ws')}/private/stream?listenKey={key}&events=ACCOUNT_UPDATE"
    async with open_websocket_url(url) as ws:
        await client.ok(wire.new_order(market(Side.BUY, "wrapped"), position_mode=ONE_WAY))
        raw = json.loads(await ws.get_message())

    assert raw["stream"] == key
    assert raw["data"]["e"] == "ACCOUNT_UPDATE"  # the ORDER_TRADE_UPDATEs were filtered out
    assert isinstance(wire.parse_user_event(raw), wire.AccountUpdate)


async def test_resting_order_fills_on_the_ticker_and_streams(client: Client):
    """No request after the price move: the ticker alone must fill and push."""
    key = wire.parse_listen_key(await client.ok(wire.create_listen_key()))
    await client.ok(wire.new_order(limit_buy("maker-1", "0.010", "59990"), position_mode=ONE_WAY))
    async with open_websocket_url(f"{client.handle.private_ws_url}/{key}") as ws:
        client.handle.engine.set_mark_price(BTC, D("59980"))  # behind the server's back
        with trio.fail_after(2):
            while True:
                event = wire.parse_user_message(await ws.get_message())
                if isinstance(event, wire.OrderTradeUpdate) and event.fill is not None:
                    break
    assert event.fill.maker is True
    assert event.fill.price == D("59990")


async def test_listen_key_lifecycle_expiry_keepalive_and_close(client: Client):
    key = wire.parse_listen_key(await client.ok(wire.create_listen_key()))
    assert (
        wire.parse_listen_key(await client.ok(wire.create_listen_key())) == key
    )  # one per account
    assert wire.parse_listen_key(await client.ok(wire.keepalive_listen_key())) == key

    async with open_websocket_url(wire.user_stream_url(client.handle.ws_url, key)) as ws:
        client.handle.app.advance(3599)
        assert wire.parse_listen_key(await client.ok(wire.keepalive_listen_key())) == key
        client.handle.app.advance(3600)  # 60 minutes without keepalive
        expired = wire.parse_user_message(await ws.get_message())
        assert isinstance(expired, wire.ListenKeyExpired)
        await client.ok(wire.new_order(market(Side.BUY, "after-expiry"), position_mode=ONE_WAY))
        with trio.move_on_after(0.2) as quiet:
            await ws.get_message()
        assert quiet.cancelled_caught  # the socket stays open, but nothing more arrives

    keepalive = await client.send(wire.keepalive_listen_key())
    assert (keepalive.status_code, error_code(keepalive)) == (400, -1125)
    assert await ws_handshake(client, f"/ws/{key}") == (
        400,
        {"code": -1125, "msg": "This listenKey does not exist."},
    )
    fresh = wire.parse_listen_key(await client.ok(wire.create_listen_key()))
    assert fresh != key

    async with open_websocket_url(wire.user_stream_url(client.handle.ws_url, fresh)) as ws:
        assert await client.ok(wire.close_listen_key()) == {}
        with trio.fail_after(2), pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
        # trio-websocket's client never closes its socket after a server-initiated close.
        await ws._stream.aclose()
    assert closed.value.reason is not None
    assert closed.value.reason.code == 1000
    assert client.handle.app.stream_count == 0
    assert error_code(await client.send(wire.keepalive_listen_key())) == -1125


# --------------------------------------------------------------------------- admin


async def test_admin_requires_the_bearer_token(client: Client):
    assert (await client.admin("GET", "/history", token="")).status_code == 401
    wrong = await client.admin("GET", "/history", token="guess")
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert (
        await client.admin("POST", "/price", {"symbol": BTC, "price": "1"}, token="guess")
    ).status_code == 401
    assert client.handle.engine.mark_price(BTC) == D(60000)  # the refused move did nothing


async def test_admin_history_is_the_ground_truth_and_resumable(client: Client):
    await client.ok(wire.new_order(market(Side.BUY, "h-1"), position_mode=ONE_WAY))
    first = (await client.admin("GET", "/history")).json()
    kinds = [r["record"] for r in first["records"]]
    assert kinds == ["OrderAccepted", "FillRecorded"]
    fill = first["records"][1]["fill"]
    assert (D(fill["quantity"]), D(fill["price"]), fill["client_order_id"]) == (
        D("0.01"),
        D(60003),
        "h-1",
    )

    await client.ok(wire.new_order(market(Side.SELL, "h-2"), position_mode=ONE_WAY))
    later = (await client.admin("GET", f"/history?after={first['last_seq']}")).json()
    assert [r["seq"] for r in later["records"]] == [3, 4]
    assert all(
        isinstance(r, FillRecorded | OrderAccepted) for r in client.handle.engine.history.records
    )

    state = (await client.admin("GET", "/state")).json()
    assert state["marks"] == {BTC: "60000"}
    advanced = (await client.admin("POST", "/advance", {"seconds": 2})).json()
    assert advanced["engine_time"] >= 2
    bad = await client.admin("POST", "/advance", {"seconds": -1})
    assert (bad.status_code, bad.json()["field"]) == (400, "seconds")
    assert (await client.admin("GET", "/nope")).status_code == 404


# --------------------------------------------------------------------------- faults


async def test_lost_response_fault_executes_and_never_answers(client: Client):
    schedule = [FaultSpec(0, 60, FaultKind.LOSE_RESPONSE, operations={"create"}).to_dict()]
    configured = await client.admin("PUT", "/faults", {"schedule": schedule, "relative": True})
    assert configured.status_code == 200

    client.http.timeout = httpx.Timeout(0.3)
    with pytest.raises(httpx.ReadTimeout):
        await client.send(wire.new_order(market(Side.BUY, "lost-ack"), position_mode=ONE_WAY))
    client.http.timeout = httpx.Timeout(5.0)

    # The client knows nothing; the exchange filled it. Querying the client id resolves it (I7).
    assert [r.client_order_id for r in client.handle.engine.history.accepted()] == ["lost-ack"]
    found = wire.parse_order(await client.ok(wire.query_order(BTC, client_order_id="lost-ack")))
    assert found.status is VenueOrderStatus.FILLED
    log = (await client.admin("GET", "/faults")).json()["injected"]
    assert [e["kind"] for e in log] == ["LOSE_RESPONSE"]


async def test_unknown_503_and_cancel_lie_faults(nursery: trio.Nursery):
    schedule = (
        FaultSpec(0, 1e9, FaultKind.UNKNOWN_503_PLACED, operations={"create"}, symbols={BTC}),
        FaultSpec(0, 1e9, FaultKind.CANCEL_UNKNOWN_BUT_LIVE),
    )
    c = await start(nursery, server_config(faults=schedule))
    placed = await c.send(wire.new_order(limit_buy("maybe"), position_mode=ONE_WAY))
    assert (placed.status_code, error_code(placed)) == (503, -1000)
    info = wire.map_error(placed.status_code, placed.content, operation=Operation.CREATE)
    assert info.verdict.error_class.value == "AMBIGUOUS"

    (order,) = c.handle.engine.orders(BTC, open_only=True)
    lie = await c.send(wire.cancel_order(BTC, order_id=order.order_id))
    assert error_code(lie) == -2011
    assert c.handle.engine.orders(BTC, open_only=True) == (order,)  # still live (I3)


async def test_stream_drop_fault_loses_the_event_but_not_the_fill(nursery: trio.Nursery):
    c = await start(nursery, server_config(faults=(FaultSpec(0, 1e9, FaultKind.STREAM_DROP),)))
    key = wire.parse_listen_key(await c.ok(wire.create_listen_key()))
    async with open_websocket_url(wire.user_stream_url(c.handle.ws_url, key)) as ws:
        await c.ok(wire.new_order(market(Side.BUY, "dropped"), position_mode=ONE_WAY))
        with trio.move_on_after(0.2) as quiet:
            await ws.get_message()
    assert quiet.cancelled_caught
    trades = wire.parse_user_trades(await c.ok(wire.user_trades(BTC)))
    assert [t.key for t in trades] == [f.key for f in c.handle.engine.history.fills(BTC)]
    assert len(trades) == 1


async def test_admin_faults_validate_and_clear(client: Client):
    bad = await client.admin("PUT", "/faults", [{"start": 0, "end": 1, "kind": "NOPE"}])
    assert (bad.status_code, bad.json()["field"]) == (400, "kind")
    await client.admin("PUT", "/faults", [FaultSpec(0, 1e9, FaultKind.MAINTENANCE).to_dict()])
    down = await client.send(wire.open_orders(BTC))
    assert (down.status_code, error_code(down)) == (503, -1001)
    status, _body = await ws_handshake(client, "/private/ws/" + "x" * 64)
    assert status == 503  # the stream is down for maintenance
    cleared = await client.admin("DELETE", "/faults")
    assert cleared.json()["schedule"] == []
    assert (await client.send(wire.open_orders(BTC))).status_code == 200


# --------------------------------------------------------------------------- foreign clients


def ccxt_style(method: str, path: str, params: dict[str, str], ts: int) -> tuple[str, str, str]:
    """Encode and sign the way ccxt's binanceusdm does: timestamp first, urlencode, hex."""
    pairs = {"timestamp": str(ts), **params, "recvWindow": "10000"}
    encoded = urllib.parse.urlencode(pairs)
    signature = (
        hmac.new(DEMO_API_SECRET.encode(), encoded.encode(), hashlib.sha256).hexdigest().upper()
    )
    signed = f"{encoded}&signature={signature}"
    if method in ("POST", "PUT"):
        return path, "", signed
    return path, signed, ""


async def test_a_foreign_client_can_trade_and_read_the_account(client: Client):
    async def call(method: str, path: str, **params: str) -> Any:
        target, query, body = ccxt_style(method, path, params, client.handle.app.venue_time_ms())
        response = await client.http.request(
            method,
            f"{target}?{query}" if query else target,
            content=body or None,
            headers={
                "X-MBX-APIKEY": DEMO_API_KEY,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert response.status_code == 200, response.text
        return response.json()

    created = await call(
        "POST",
        "/fapi/v1/order",
        symbol=BTC,
        side="BUY",
        newClientOrderId="x-xcKtGhcu04075babaeb34c55af79ba",
        newOrderRespType="RESULT",
        type="LIMIT",
        quantity="0.01",
        price="59000",
        timeInForce="GTC",
    )
    # What ccxt's parse_order reads, with Binance's types.
    assert isinstance(created["orderId"], int)
    assert created["status"] == "NEW"
    assert created["clientOrderId"] == "x-xcKtGhcu04075babaeb34c55af79ba"
    assert (created["price"], created["origQty"], created["executedQty"]) == (
        "59000.00",
        "0.010",
        "0.000",
    )
    fetched = await call(
        "GET", "/fapi/v1/order", symbol=BTC, origClientOrderId=created["clientOrderId"]
    )
    assert fetched["orderId"] == created["orderId"]
    assert isinstance(fetched["time"], int)
    opened = await call("GET", "/fapi/v1/openOrders", symbol=BTC)
    assert [o["orderId"] for o in opened] == [created["orderId"]]
    canceled = await call("DELETE", "/fapi/v1/order", symbol=BTC, orderId=str(created["orderId"]))
    assert canceled["status"] == "CANCELED"

    await call(
        "POST",
        "/fapi/v1/order",
        symbol=BTC,
        side="SELL",
        type="MARKET",
        quantity="0.005",
        newOrderRespType="RESULT",
    )
    positions = await call("GET", "/fapi/v3/positionRisk")
    assert [(p["symbol"], p["positionAmt"]) for p in positions] == [(BTC, "-0.005")]
    account = await call("GET", "/fapi/v3/account")
    usdt = next(a for a in account["assets"] if a["asset"] == "USDT")
    assert D(usdt["walletBalance"]) == client.handle.engine.balances()[0].wallet_balance
    assert not set(json.loads(fx.CCXT_POSITIONS_V3)[0]) - set(positions[0])


async def test_stop_shuts_the_server_down_gracefully():
    async with trio.open_nursery() as nursery:
        handle: SimServerHandle = await nursery.start(serve_sim_exchange, server_config())
        async with httpx.AsyncClient(base_url=handle.rest_url) as http:
            c = Client(handle, http)
            key = wire.parse_listen_key(await c.ok(wire.create_listen_key()))
            async with open_websocket_url(wire.user_stream_url(handle.ws_url, key)) as ws:
                handle.stop()
                with trio.fail_after(2), pytest.raises(ConnectionClosed):
                    await ws.get_message()
                await ws._stream.aclose()  # see test_listen_key_lifecycle...
        nursery.cancel_scope.deadline = trio.current_time() + 3
    # serve_sim_exchange returned by itself: the deadline did not have to cancel it.
    assert not nursery.cancel_scope.cancelled_caught
    with pytest.raises(OSError, match=r"(?i)connect"):  # nothing listens any more
        await trio.open_tcp_stream("127.0.0.1", handle.port)


# --------------------------------------------------------------------------- the CLI


def test_sim_exchange_command_serves_until_interrupted(tmp_path):
    launcher = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from scalper.cli import main; main()"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            launcher,
            "sim-exchange",
            "--port",
            "0",
            "--symbols",
            "BTCUSDT,SOLUSDT",
            "--seed",
            "3",
            "--admin-token",
            "operator-chosen-token",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        text = "".join(lines)
        rest_url = next(line.split()[-1] for line in lines if "REST base URL" in line)
        assert DEMO_API_KEY in text
        assert DEMO_API_SECRET in text
        assert "operator-chosen-token" not in text  # secrets given are never echoed
        assert "/ws/<listenKey>" in text
        info = wire.parse_exchange_info(httpx.get(f"{rest_url}/fapi/v1/exchangeInfo").json())
        assert [s.symbol for s in info.symbols] == ["BTCUSDT", "SOLUSDT"]
        # The standalone server's clock is the wall clock, so any client can sign with its own.
        server_ms = wire.parse_server_time(httpx.get(f"{rest_url}/fapi/v1/time").json())
        assert server_ms > 1_700_000_000_000
        admin = httpx.get(
            f"{rest_url}/admin/state", headers={"Authorization": "Bearer operator-chosen-token"}
        )
        assert admin.json()["marks"]["SOLUSDT"] == "100"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped" in out


def test_sim_exchange_command_rejects_unknown_symbols():
    from typer.testing import CliRunner

    from scalper.cli import app

    result = CliRunner().invoke(app, ["sim-exchange", "--symbols", "BTCUSDT,NOTAPAIR"])
    assert result.exit_code != 0
    assert "NOTAPAIR" in result.output
