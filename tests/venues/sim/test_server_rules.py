"""The loopback server's request rules, driven in process on a controlled clock.

No sockets here: requests go straight to :meth:`SimExchangeApp.handle` (from a sync test
through ``trio.run``, since hypothesis cannot drive trio directly), so properties can run
hundreds of signed requests against exact clock values: signature, timestamp window,
rate limits, listen-key expiry, parameter parsing and the fault injector's request faults.
"""

import hashlib
import hmac
import json
import string
from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.core.model import OrderRequest, VenueOrderStatus
from scalper.core.types import OrderType, PositionMode, Side, TimeInForce
from scalper.venues.binance import wire
from scalper.venues.sim.engine import SimConfig
from scalper.venues.sim.faults import FaultKind, FaultSpec
from scalper.venues.sim.ratelimit import RateLimitConfig
from scalper.venues.sim.server import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    HttpRequest,
    HttpResponse,
    ServerClock,
    SimExchangeApp,
    SimServerConfig,
    engine_config_for,
)
from tests.venues.sim.simkit import still_symbol

D = Decimal
BTC = "BTCUSDT"
CREDS = wire.ApiCredentials(DEMO_API_KEY, DEMO_API_SECRET.encode())
ONE_WAY = PositionMode.ONE_WAY


class FakeClock:
    """The injected clock, moved by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make_app(**changes: Any) -> tuple[SimExchangeApp, FakeClock]:
    clock = FakeClock()
    engine = changes.pop("engine", SimConfig(symbols=(still_symbol(),), slippage=None))
    config = attrs.evolve(SimServerConfig(symbols=(BTC,), engine=engine), **changes)
    return SimExchangeApp(config, clock=clock), clock


def handle(app: SimExchangeApp, request: HttpRequest) -> HttpResponse | None:
    return trio.run(app.handle, request)


def to_http(encoded: wire.EncodedRequest) -> HttpRequest:
    return HttpRequest(
        method=encoded.method.value,
        path=encoded.path,
        query=encoded.query,
        body=encoded.body,
        headers={k.lower(): v for k, v in encoded.headers},
    )


def call(
    app: SimExchangeApp,
    request: wire.WireRequest,
    *,
    skew_ms: int = 0,
    recv_window_ms: int = 5000,
    credentials: wire.ApiCredentials = CREDS,
) -> tuple[int, Any]:
    encoded = wire.encode(
        request,
        credentials=credentials,
        timestamp_ms=app.venue_time_ms() + skew_ms,
        recv_window_ms=recv_window_ms,
    )
    response = handle(app, to_http(encoded))
    assert response is not None
    return response.status, response.decoded()


def code(body: Any) -> int | None:
    error = wire.parse_error_body(body)
    return None if error is None else error.code


def limit_buy(coid: str, price: str = "59000") -> OrderRequest:
    return OrderRequest(
        symbol=BTC,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        client_order_id=coid,
        quantity=D("0.010"),
        price=D(price),
        time_in_force=TimeInForce.GTC,
    )


# --------------------------------------------------------------------------- signing

param_keys = st.text(string.ascii_letters, min_size=1, max_size=8).filter(
    lambda k: k.lower() not in {"timestamp", "recvwindow", "signature", "symbol", "leverage"}
)
param_values = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
)
extra_params = st.dictionaries(param_keys, param_values, max_size=5)


@settings(max_examples=60, deadline=None)
@given(extra=extra_params, post=st.booleans())
def test_any_correctly_signed_request_is_authenticated_and_any_forgery_is_1022(extra, post):
    app, _clock = make_app()
    if post:
        params = (("symbol", BTC), ("leverage", "7"), *extra.items())
        request = wire.WireRequest(wire.HttpMethod.POST, "/fapi/v1/leverage", params)
    else:
        params = (("symbol", BTC), *extra.items())
        request = wire.WireRequest(wire.HttpMethod.GET, "/fapi/v1/openOrders", params)

    status, body = call(app, request)
    assert status == 200, body  # unknown parameters are ignored, as Binance does

    forger = wire.ApiCredentials(DEMO_API_KEY, b"guessed-secret")
    status, body = call(app, request, credentials=forger)
    assert (status, code(body)) == (400, -1022)

    # Tampering with any signed byte (here: the timestamp) breaks the signature too.
    encoded = wire.encode(request, credentials=CREDS, timestamp_ms=app.venue_time_ms())
    part = encoded.body if post else encoded.query
    head, _, signature = part.rpartition("&signature=")
    digits = head.rsplit("timestamp=", 1)
    tampered_ts = str(int(digits[1]) - 1)
    forged = f"{digits[0]}timestamp={tampered_ts}&signature={signature}"
    original = to_http(encoded)
    forged_request = (
        attrs.evolve(original, body=forged) if post else attrs.evolve(original, query=forged)
    )
    response = handle(app, forged_request)
    assert response is not None
    assert (response.status, code(response.decoded())) == (400, -1022)


@settings(max_examples=150, deadline=None)
@given(
    skew_ms=st.integers(min_value=-70_000, max_value=70_000),
    recv_window_ms=st.integers(min_value=1, max_value=60_000),
)
@example(skew_ms=999, recv_window_ms=5000)  # the edges of both rules
@example(skew_ms=1000, recv_window_ms=5000)
@example(skew_ms=-5000, recv_window_ms=5000)
@example(skew_ms=-5001, recv_window_ms=5000)
def test_timestamp_window_is_binances_rule(skew_ms, recv_window_ms):
    """Accepted iff ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``."""
    app, clock = make_app()
    clock.t = 12.345
    status, body = call(app, wire.open_orders(BTC), skew_ms=skew_ms, recv_window_ms=recv_window_ms)

    accepted = skew_ms < 1000 and -skew_ms <= recv_window_ms
    if accepted:
        assert status == 200, body
    else:
        assert (status, code(body)) == (400, -1021)


def test_hex_case_and_mixed_query_body_signatures_are_accepted():
    app, _clock = make_app()
    ts = app.venue_time_ms()
    query = "symbol=BTCUSDT&leverage=9"
    body = f"recvWindow=5000&timestamp={ts}"
    signature = hmac.new(DEMO_API_SECRET.encode(), (query + body).encode(), hashlib.sha256)
    request = HttpRequest(
        "POST",
        "/fapi/v1/leverage",
        query,
        f"{body}&signature={signature.hexdigest().upper()}",
        {"x-mbx-apikey": DEMO_API_KEY},
    )
    response = handle(app, request)

    assert response is not None
    assert response.status == 200
    assert app.engine.leverage(BTC) == 9


def test_query_string_wins_over_the_body_and_duplicates_are_1101():
    app, _clock = make_app()
    ts = app.venue_time_ms()
    query = "leverage=11"
    body = f"symbol=BTCUSDT&leverage=3&timestamp={ts}"
    signature = hmac.new(DEMO_API_SECRET.encode(), (query + body).encode(), hashlib.sha256)
    request = HttpRequest(
        "POST",
        "/fapi/v1/leverage",
        query,
        f"{body}&signature={signature.hexdigest()}",
        {"x-mbx-apikey": DEMO_API_KEY},
    )
    response = handle(app, request)
    assert response is not None
    assert response.status == 200
    assert app.engine.leverage(BTC) == 11

    duplicated = attrs.evolve(request, query="leverage=11&leverage=12")
    response = handle(app, duplicated)
    assert response is not None
    assert (response.status, code(response.decoded())) == (400, -1101)


# --------------------------------------------------------------------------- rate limits


@settings(max_examples=40, deadline=None)
@given(
    calls=st.lists(st.sampled_from(["symbol", "all", "info"]), min_size=1, max_size=30),
    limit=st.integers(min_value=1, max_value=120),
)
def test_weight_is_refused_exactly_when_the_minute_budget_would_overflow(calls, limit):
    engine = SimConfig(
        symbols=(still_symbol(),),
        slippage=None,
        rate_limits=RateLimitConfig(request_weight_per_minute=limit),
    )
    app, _clock = make_app(engine=engine)
    requests = {
        "symbol": (wire.open_orders(BTC), 1),
        "all": (wire.open_orders(), 40),
        "info": (wire.exchange_info(), 1),
    }
    used = 0
    for name in calls:
        request, weight = requests[name]
        encoded = wire.encode(request, credentials=CREDS, timestamp_ms=app.venue_time_ms())
        response = handle(app, to_http(encoded))
        assert response is not None
        headers = wire.parse_rate_limit_headers(response.headers)
        if used + weight > limit:
            assert (response.status, code(response.decoded())) == (429, -1003)
            assert headers.retry_after_s is not None
        else:
            used += weight
            assert response.status == 200
        assert headers.used_weight_1m == used


# --------------------------------------------------------------------------- listen keys


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.floats(min_value=0, max_value=7200), min_size=1, max_size=8))
@example(gaps=[3599.5, 3599.5])  # kept alive just in time, twice
@example(gaps=[3600.0])  # exactly 60 minutes: expired
def test_listen_key_lives_exactly_while_kept_alive_within_the_ttl(gaps):
    # A coarse price grid: hours of clock pass in few engine steps.
    app, clock = make_app(
        engine=SimConfig(symbols=(still_symbol(step_seconds=600.0),), slippage=None)
    )
    status, body = call(app, wire.create_listen_key())
    assert status == 200
    key = body["listenKey"]
    alive = True
    for gap in gaps:
        clock.t += gap
        alive = alive and gap < 3600
        status, body = call(app, wire.keepalive_listen_key())
        if alive:
            assert (status, body) == (200, {"listenKey": key})
        else:
            assert (status, code(body)) == (400, -1125)
    assert (app.listen_key == key) is alive


def test_listen_keys_are_seeded_and_recreated_after_close():
    first, _ = make_app(seed=5)
    same, _ = make_app(seed=5)
    other, _ = make_app(seed=6)
    keys = [call(app, wire.create_listen_key())[1]["listenKey"] for app in (first, same, other)]

    assert keys[0] == keys[1]
    assert keys[0] != keys[2]
    assert len(keys[0]) == 64
    assert keys[0].isalnum()
    assert call(first, wire.close_listen_key()) == (200, {})
    assert call(first, wire.create_listen_key())[1]["listenKey"] != keys[0]


# --------------------------------------------------------------------------- robustness

junk = st.text(st.characters(blacklist_categories=["Cs"]), max_size=10)


@settings(max_examples=120, deadline=None)
@given(
    side=st.one_of(st.sampled_from(["BUY", "SELL"]), junk),
    order_type=st.one_of(st.sampled_from(["LIMIT", "MARKET", "STOP_MARKET"]), junk),
    quantity=st.one_of(st.sampled_from(["0.010", "0.001", "-1", "0"]), junk),
    price=st.one_of(st.none(), st.sampled_from(["59000", "0.05", "1e5"]), junk),
    tif=st.one_of(st.none(), st.sampled_from(["GTC", "IOC", "GTD"]), junk),
    flags=st.dictionaries(
        st.sampled_from(["reduceOnly", "closePosition", "positionSide", "newClientOrderId"]),
        junk,
        max_size=3,
    ),
)
def test_malformed_orders_get_a_binance_error_never_a_crash(
    side, order_type, quantity, price, tif, flags
):
    app, _clock = make_app()
    params = [("symbol", BTC), ("side", side), ("type", order_type), ("quantity", quantity)]
    if price is not None:
        params.append(("price", price))
    if tif is not None:
        params.append(("timeInForce", tif))
    params.extend(flags.items())
    request = wire.WireRequest(wire.HttpMethod.POST, "/fapi/v1/order", tuple(params))

    status, body = call(app, request)

    if status == 200:
        order = wire.parse_order(body)  # a success is a well-formed order...
        assert order.order_id in {o.order_id for o in app.engine.orders()}
    else:
        assert status == 400  # ...and a failure a Binance error body
        assert code(body) is not None
        assert app.engine.history.accepted() == ()


# --------------------------------------------------------------------------- faults


def test_drop_request_fault_never_answers_and_executes_nothing():
    app, _clock = make_app(
        faults=(FaultSpec(0, 100, FaultKind.DROP_REQUEST, operations={"create"}),)
    )
    encoded = wire.encode(
        wire.new_order(limit_buy("dropped"), position_mode=ONE_WAY),
        credentials=CREDS,
        timestamp_ms=app.venue_time_ms(),
    )
    assert handle(app, to_http(encoded)) is None
    assert app.engine.history.accepted() == ()
    assert [e.kind for e in app.faults.injected] == [FaultKind.DROP_REQUEST]


def test_fault_windows_are_on_the_server_clock():
    app, clock = make_app(
        faults=(FaultSpec(10, 20, FaultKind.SERVICE_UNAVAILABLE_503, operations={"open_orders"}),)
    )
    assert call(app, wire.open_orders(BTC))[0] == 200
    clock.t = 10.0
    status, body = call(app, wire.open_orders(BTC))
    assert (status, body) == (503, {"msg": "Service Unavailable."})
    clock.t = 20.0
    assert call(app, wire.open_orders(BTC))[0] == 200


def test_ip_ban_answers_418_with_retry_after():
    app, _clock = make_app(faults=(FaultSpec(0, 30, FaultKind.IP_BAN_418),))
    encoded = wire.encode(
        wire.open_orders(BTC), credentials=CREDS, timestamp_ms=app.venue_time_ms()
    )
    response = handle(app, to_http(encoded))

    assert response is not None
    assert response.status == 418
    assert wire.parse_rate_limit_headers(response.headers).retry_after_s == 30


def test_fill_after_cancel_fills_the_order_and_the_cancel_says_unknown():
    app, _clock = make_app(faults=(FaultSpec(0, 100, FaultKind.FILL_AFTER_CANCEL),))
    status, body = call(app, wire.new_order(limit_buy("raced"), position_mode=ONE_WAY))
    assert status == 200
    status, body = call(app, wire.cancel_order(BTC, client_order_id="raced"))

    assert (status, code(body)) == (400, -2011)
    (order,) = app.engine.orders(BTC)
    assert order.status is VenueOrderStatus.FILLED  # -2011 meant "already filled" (I3)


def test_snapshot_lag_hides_a_new_order_from_reads_for_the_lag():
    app, clock = make_app(
        faults=(FaultSpec(0, 100, FaultKind.SNAPSHOT_LAG, params={"lag_s": 2.0}),)
    )
    clock.t = 10.0
    call(app, wire.open_orders(BTC))  # the lag window opens; the view has a snapshot
    clock.t = 11.0
    assert call(app, wire.new_order(limit_buy("fresh"), position_mode=ONE_WAY))[0] == 200
    clock.t = 11.5
    status, body = call(app, wire.query_order(BTC, client_order_id="fresh"))
    assert (status, code(body)) == (400, -2013)  # "the order I just placed does not exist"
    assert call(app, wire.open_orders(BTC))[1] == []
    clock.t = 13.5
    listed = wire.parse_orders(call(app, wire.open_orders(BTC))[1])
    assert [o.client_order_id for o in listed] == ["fresh"]


def test_recv_window_latency_answers_1021_after_the_delay():
    spec = FaultSpec(0, 100, FaultKind.RECV_WINDOW_LATENCY, params={"latency_s": 0.01})
    app, _clock = make_app(faults=(spec,))
    status, body = call(app, wire.new_order(limit_buy("late"), position_mode=ONE_WAY))

    assert (status, code(body)) == (400, -1021)
    assert app.engine.history.accepted() == ()


def test_listen_key_expiry_fault_kills_the_key_until_recreated():
    app, clock = make_app(faults=(FaultSpec(5, 6, FaultKind.LISTEN_KEY_EXPIRY),))
    key = call(app, wire.create_listen_key())[1]["listenKey"]
    clock.t = 5.5
    app.tick()

    assert app.listen_key is None
    status, body = call(app, wire.keepalive_listen_key())
    assert (status, code(body)) == (400, -1125)
    clock.t = 50.0  # long after the window: the key stays dead until re-created
    assert code(call(app, wire.keepalive_listen_key())[1]) == -1125
    fresh = call(app, wire.create_listen_key())[1]["listenKey"]
    assert fresh != key
    assert call(app, wire.keepalive_listen_key()) == (200, {"listenKey": fresh})


def test_admin_fault_schedule_relative_to_now_round_trips():
    app, clock = make_app()
    clock.t = 100.0
    spec = FaultSpec(0, 5, FaultKind.RATE_LIMIT_429, params={"retry_after_s": 3.0})
    described = app.faults.configure({"schedule": [spec.to_dict()], "relative": True})

    assert described["schedule"][0]["start"] == 100.0
    assert described["schedule"][0]["end"] == 105.0
    encoded = wire.encode(
        wire.open_orders(BTC), credentials=CREDS, timestamp_ms=app.venue_time_ms()
    )
    response = handle(app, to_http(encoded))
    assert response is not None
    assert response.status == 429
    assert response.header("retry-after") == "3"


# --------------------------------------------------------------------------- config


def test_config_refuses_non_loopback_hosts_and_unknown_symbols():
    with pytest.raises(CoreValueError) as host:
        SimServerConfig(host="0.0.0.0")
    assert host.value.field == "host"
    with pytest.raises(CoreValueError) as symbol:
        engine_config_for(SimServerConfig(symbols=("BTCUSDT", "FOOBAR")))
    assert symbol.value.field == "symbols"
    generic = engine_config_for(SimServerConfig(symbols=("SOLUSDT",)))
    assert [s.symbol for s in generic.symbols] == ["SOLUSDT"]
    assert generic.symbols[0].base_asset == "SOL"


def test_epoch_at_start_sets_the_venue_clock():
    app, clock = make_app(epoch_at_start=1_800_000_000.0)
    assert app.venue_time_ms() == 1_800_000_000_000
    clock.t = 1.5
    assert app.venue_time_ms() == 1_800_000_001_500
    assert json.loads(json.dumps(call(app, wire.server_time())[1])) == {
        "serverTime": 1_800_000_001_500
    }


def test_server_clock_jumps_forward_only():
    clock = FakeClock()
    server_clock = ServerClock(clock, start=0.0)
    clock.t = 2.0
    server_clock.jump(3.0)
    assert server_clock.now() == 5.0
    with pytest.raises(CoreValueError):
        server_clock.jump(-1.0)


# --------------------------------------------------------------------------- admin


def admin(
    app: SimExchangeApp, method: str, path: str, body: object = None, token: str | None = None
) -> tuple[int, Any]:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    request = HttpRequest(method, path, "", "" if body is None else json.dumps(body), headers)
    response = handle(app, request)
    assert response is not None
    return response.status, response.decoded()


@settings(max_examples=80, deadline=None)
@given(token=st.text(max_size=40))
def test_only_the_exact_admin_token_opens_the_admin_surface(token):
    app, _clock = make_app(admin_token="the-admin-token")
    status, body = admin(app, "POST", "/admin/price", {"symbol": BTC, "price": "1"}, token)

    if token.strip() == "the-admin-token":
        assert status == 200
    else:
        assert (status, body) == (401, {"error": "unauthorized"})
        assert app.engine.mark_price(BTC) == D(60000)


def test_admin_rejects_bad_input_naming_the_field():
    app, _clock = make_app(admin_token="tok")
    assert admin(app, "POST", "/admin/price", {"symbol": BTC, "price": "-5"}, "tok") == (
        400,
        {"error": "bad_request", "field": "price", "reason": "must be positive and finite"},
    )
    status, body = admin(app, "POST", "/admin/price", {"symbol": "XYZUSDT", "price": "5"}, "tok")
    assert (status, body["code"]) == (400, -1121)
    assert admin(app, "POST", "/admin/price", "not an object", "tok")[1]["field"] == "body"
    assert admin(app, "GET", "/admin/price", None, "tok")[0] == 405
    assert admin(app, "PUT", "/admin/faults", {"schedule": "x"}, "tok")[1]["field"] == "schedule"
    assert admin(app, "PUT", "/admin/faults", {"oops": []}, "tok")[1]["field"] == "faults"


def test_admin_price_move_fills_a_resting_order_and_history_shows_it():
    app, _clock = make_app(admin_token="tok")
    assert call(app, wire.new_order(limit_buy("maker", "59990"), position_mode=ONE_WAY))[0] == 200
    status, quote = admin(app, "POST", "/admin/price", {"symbol": BTC, "price": "59980"}, "tok")

    assert status == 200
    assert D(quote["ask"]) <= D("59990")
    _, history = admin(app, "GET", "/admin/history", None, "tok")
    fills = [r["fill"] for r in history["records"] if r["record"] == "FillRecorded"]
    assert [(f["client_order_id"], D(f["price"]), f["maker"]) for f in fills] == [
        ("maker", D("59990"), True)
    ]
