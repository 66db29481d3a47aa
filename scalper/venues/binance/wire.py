"""The sans-I/O Binance USD-M wire layer: requests out, typed records and verdicts in.

Theory of operation
-------------------

This module is the whole protocol knowledge of the Binance adapter, with no I/O: it never
opens a socket, reads a clock or holds a key store. The httpx/WebSocket client and the
loopback simulator are thin shells around it. Three jobs:

1. **Build requests.** Each builder returns a :class:`WireRequest`: method, path, ordered
   string params, whether it is signed or needs the API-key header, its IP weight and
   order-count cost, and the :class:`~scalper.core.errors.Operation` it performs (so error
   classification knows whether an ambiguous failure could have created or cancelled
   something). :func:`encode` turns it into an :class:`EncodedRequest` (query, body,
   headers) given the credentials and a timestamp the caller read from its clock.
   GET and DELETE carry params in the query string, POST and PUT in a form body (what ccxt
   does and the loopback server expects); either way the bytes signed are the bytes sent.

2. **Parse responses and stream events** (re-exported from
   :mod:`~scalper.venues.binance.parse` and :mod:`~scalper.venues.binance.events`): every
   parser returns core records or raises :class:`MalformedMessage`, nothing else.

3. **Map errors.** :func:`map_error` reads an error response (status, body in any form,
   headers) and asks the core table (:func:`scalper.core.errors.classify_error`) what it
   means, returning a :class:`VenueErrorInfo`. It never raises on a body: an HTML 502 from a
   proxy is still a 502 to classify.

Order routing rules (:func:`new_order`), from the protocol digest:

* Conditional types (``OrderType.is_conditional``) go to ``POST /fapi/v1/algoOrder`` with
  ``algoType=CONDITIONAL``, ``triggerPrice`` and ``clientAlgoId``; plain ``/fapi/v1/order``
  rejects them with -4120 since 2025-12-09. Plain types go to ``POST /fapi/v1/order`` with
  ``newClientOrderId`` and ``newOrderRespType`` (RESULT by default, so a MARKET or IOC
  reply is already final).
* **One-way mode** sends no ``positionSide`` and sends ``reduceOnly=true`` for exits.
  **Hedge mode** requires ``positionSide`` LONG or SHORT and never sends ``reduceOnly``
  (-1106); a reduce-only request must then be the closing side of its leg.
* ``closePosition=true`` only for STOP_MARKET and TAKE_PROFIT_MARKET, without quantity or
  reduceOnly.
* Bad builder input raises :class:`WireRequestError` naming the field, before anything is
  sent; fields a type does not take are errors too (a LIMIT with a stop price is a bug,
  not something to drop silently), except a time in force on market types, which is
  ignored because it cannot change what a market order does.

Serves I7 (the client order id always travels with the create, so a lost ack is resolved
by querying it) and I4 (everything parsed is evidence, classified by the core table).
"""

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Final

import attrs

from scalper.core.errors import ErrorVerdict, Operation, classify_error
from scalper.core.errors_base import CoreValueError
from scalper.core.ids import BINANCE_CLIENT_ID_RE
from scalper.core.model import OrderRequest
from scalper.core.types import OrderType, PositionMode, PositionSide, Side, TimeInForce
from scalper.venues.binance.events import (
    EXPIRY_REASONS,
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    BalanceUpdate,
    ExecutionType,
    ListenKeyExpired,
    MarginCall,
    MarginCallPosition,
    OrderTradeUpdate,
    SpecialOrigin,
    TradeLite,
    UnknownEvent,
    UserEvent,
    parse_user_event,
    parse_user_message,
    special_origin,
)
from scalper.venues.binance.parse import (
    AccountInfo,
    AlgoCancelAck,
    AlgoOrder,
    AlgoStatus,
    Balance,
    CodeAck,
    CountdownAck,
    ExchangeInfo,
    JsonValue,
    LeverageChange,
    MalformedMessage,
    MarkPrice,
    RateLimit,
    SymbolRules,
    VenueErrorBody,
    excerpt,
    loads,
    parse_account,
    parse_algo_cancel,
    parse_algo_order,
    parse_algo_orders,
    parse_balances,
    parse_batch_orders,
    parse_code_ack,
    parse_countdown,
    parse_error_body,
    parse_exchange_info,
    parse_leverage,
    parse_listen_key,
    parse_mark_price,
    parse_mark_prices,
    parse_order,
    parse_orders,
    parse_position_mode,
    parse_positions,
    parse_server_time,
    parse_user_trades,
)
from scalper.venues.binance.signing import (
    MAX_RECV_WINDOW_MS,
    ApiCredentials,
    SigningError,
    decode_params,
    encode_params,
    hmac_signature,
    redact_query,
    sign,
    verify_signature,
)

__all__ = [
    "API_KEY_HEADER",
    "EXPIRY_REASONS",
    "MAX_RECV_WINDOW_MS",
    "PRODUCTION_REST_URL",
    "PRODUCTION_USER_STREAM_URL",
    "TESTNET_REST_URL",
    "TESTNET_USER_STREAM_URL",
    "AccountConfigUpdate",
    "AccountInfo",
    "AccountUpdate",
    "AlgoCancelAck",
    "AlgoOrder",
    "AlgoStatus",
    "AlgoUpdate",
    "ApiCredentials",
    "Balance",
    "BalanceUpdate",
    "CodeAck",
    "CountdownAck",
    "EncodedRequest",
    "ExchangeInfo",
    "ExecutionType",
    "HttpMethod",
    "JsonValue",
    "LeverageChange",
    "ListenKeyExpired",
    "MalformedMessage",
    "MarginCall",
    "MarginCallPosition",
    "MarkPrice",
    "OrderTradeUpdate",
    "RateLimit",
    "RateLimitUsage",
    "SigningError",
    "SpecialOrigin",
    "SymbolRules",
    "TradeLite",
    "UnknownEvent",
    "UserEvent",
    "VenueErrorBody",
    "VenueErrorInfo",
    "WireConfig",
    "WireRequest",
    "WireRequestError",
    "account",
    "all_orders",
    "balance",
    "cancel_algo_order",
    "cancel_all_algo_orders",
    "cancel_all_orders",
    "cancel_batch_orders",
    "cancel_order",
    "close_listen_key",
    "countdown_cancel_all",
    "create_listen_key",
    "decode_params",
    "encode",
    "encode_params",
    "excerpt",
    "exchange_info",
    "format_decimal",
    "get_position_mode",
    "hmac_signature",
    "is_error_response",
    "keepalive_listen_key",
    "loads",
    "map_error",
    "mark_price",
    "new_order",
    "open_algo_orders",
    "open_orders",
    "parse_account",
    "parse_algo_cancel",
    "parse_algo_order",
    "parse_algo_orders",
    "parse_balances",
    "parse_batch_orders",
    "parse_code_ack",
    "parse_countdown",
    "parse_error_body",
    "parse_exchange_info",
    "parse_leverage",
    "parse_listen_key",
    "parse_mark_price",
    "parse_mark_prices",
    "parse_order",
    "parse_orders",
    "parse_position_mode",
    "parse_positions",
    "parse_rate_limit_headers",
    "parse_server_time",
    "parse_user_event",
    "parse_user_message",
    "parse_user_trades",
    "ping",
    "position_risk",
    "query_algo_order",
    "query_order",
    "server_time",
    "set_leverage",
    "set_position_mode",
    "sign",
    "special_origin",
    "user_stream_url",
    "user_trades",
    "verify_signature",
]

PRODUCTION_REST_URL: Final = "https://fapi.binance.com"
TESTNET_REST_URL: Final = "https://demo-fapi.binance.com"
#: User data lives under ``/private`` since the 2026-03-05 split (legacy ``/ws`` retired).
PRODUCTION_USER_STREAM_URL: Final = "wss://fstream.binance.com/private/ws"
TESTNET_USER_STREAM_URL: Final = "wss://fstream.binancefuture.com/ws"
API_KEY_HEADER: Final = "X-MBX-APIKEY"

_FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
_SYMBOL_RE = re.compile(r"^[^\s\x00-\x1f]{1,40}$")
_DIGITS_RE = re.compile(r"^\d{1,19}$")
_ALGO_TIFS: Final = frozenset({TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTX})
_MAX_BATCH_CANCEL: Final = 10
_MAX_TRADE_WINDOW_MS: Final = 7 * 24 * 3600 * 1000
_MIN_CALLBACK_RATE: Final = Decimal("0.1")
_MAX_CALLBACK_RATE: Final = Decimal("10")
_WORKING_TYPES: Final = ("MARK_PRICE", "CONTRACT_PRICE")
_RESP_TYPES: Final = ("ACK", "RESULT")


class WireRequestError(CoreValueError):
    """A request that cannot be built as asked (names the field; sends nothing)."""


class HttpMethod(enum.StrEnum):
    """HTTP methods Binance's REST API uses."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    DELETE = "DELETE"


@attrs.frozen
class WireConfig:
    """Defaults of the wire layer; all plain types so cattrs can load them from TOML.

    Attributes:
        recv_window_ms: ``recvWindow`` for signed requests. Binance recommends at most 5000;
            the hard maximum is 60000. A short window bounds how long a delayed request
            can still execute, which is what makes "not found after recvWindow" evidence
            of absence.
        new_order_resp_type: ``RESULT`` makes MARKET and IOC/FOK replies final, so the
            ack already says whether the order filled.
        working_type: price that triggers conditional orders. ``MARK_PRICE`` (what
            liquidation uses) is steadier than the last trade, so a single-print wick does
            not fire a protective stop.
        price_protect: Binance's trigger protection. Off by default: with it on, a stop may
            refuse to trigger while mark and last prices diverge, i.e. exactly when the
            position most needs its stop.
    """

    recv_window_ms: int = attrs.field(
        default=5000,
        validator=[
            attrs.validators.instance_of(int),
            attrs.validators.ge(1),
            attrs.validators.le(MAX_RECV_WINDOW_MS),
        ],
    )
    new_order_resp_type: str = attrs.field(
        default="RESULT", validator=attrs.validators.in_(_RESP_TYPES)
    )
    working_type: str = attrs.field(
        default="MARK_PRICE", validator=attrs.validators.in_(_WORKING_TYPES)
    )
    price_protect: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


DEFAULT_CONFIG: Final = WireConfig()


@attrs.frozen
class WireRequest:
    """One REST request as data: what to send, how to authenticate it, what it costs.

    Attributes:
        method, path: the endpoint.
        params: ordered ``(key, value)`` strings, *without* ``timestamp``, ``recvWindow``
            and ``signature`` (:func:`encode` adds those for signed requests).
        signed: needs ``timestamp``/``recvWindow``/``signature`` (TRADE, USER_DATA).
        api_key_header: needs the ``X-MBX-APIKEY`` header (signed and USER_STREAM).
        weight: IP request weight (against ``X-MBX-USED-WEIGHT-1M``).
        orders_10s, orders_1m: cost against the account's ORDERS limiters.
        operation: what the request does, for :func:`map_error`.
    """

    method: HttpMethod
    path: str
    params: tuple[tuple[str, str], ...] = ()
    signed: bool = True
    api_key_header: bool = True
    weight: int = 1
    orders_10s: int = 0
    orders_1m: int = 0
    operation: Operation = Operation.QUERY

    def param(self, key: str) -> str | None:
        """The value of parameter ``key``, or ``None`` if absent."""
        for k, v in self.params:
            if k == key:
                return v
        return None


@attrs.frozen(repr=False)
class EncodedRequest:
    """A request ready for the transport. Its ``repr`` hides the signature and API key."""

    method: HttpMethod
    path: str
    query: str
    body: str
    headers: tuple[tuple[str, str], ...]

    @property
    def target(self) -> str:
        """Path plus query string, as it goes on the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def url(self, base_url: str) -> str:
        """The absolute URL under ``base_url`` (e.g. :data:`PRODUCTION_REST_URL`)."""
        return base_url.rstrip("/") + self.target

    def __repr__(self) -> str:
        headers = tuple(
            (k, "<redacted>" if k.lower() == API_KEY_HEADER.lower() else v) for k, v in self.headers
        )
        return (
            f"EncodedRequest(method={self.method.value!r}, path={self.path!r}, "
            f"query={redact_query(self.query)!r}, body={redact_query(self.body)!r}, "
            f"headers={headers!r})"
        )


def encode(
    request: WireRequest,
    *,
    credentials: ApiCredentials | None = None,
    timestamp_ms: int | None = None,
    recv_window_ms: int = DEFAULT_CONFIG.recv_window_ms,
) -> EncodedRequest:
    """Encode (and sign, if the request is signed) ``request`` for sending.

    Args:
        request: what to send.
        credentials: required for signed requests and those needing the API-key header.
        timestamp_ms: the caller's clock (corrected by the measured server offset) in epoch
            milliseconds; required for signed requests.
        recv_window_ms: ``recvWindow`` for signed requests.

    Raises:
        WireRequestError: if credentials or the timestamp are missing where needed.
        SigningError: on a bad timestamp or recvWindow.
    """
    if (request.signed or request.api_key_header) and credentials is None:
        raise WireRequestError("credentials", f"{request.path} needs an API key")
    if request.signed:
        if timestamp_ms is None:
            raise WireRequestError("timestamp_ms", f"{request.path} is signed")
        assert credentials is not None
        payload = sign(request.params, credentials.secret, timestamp_ms, recv_window_ms)
    else:
        payload = encode_params(request.params)
    headers: list[tuple[str, str]] = []
    if credentials is not None and (request.signed or request.api_key_header):
        headers.append((API_KEY_HEADER, credentials.api_key))
    if request.method in (HttpMethod.POST, HttpMethod.PUT):
        headers.append(("Content-Type", _FORM_CONTENT_TYPE))
        query, body = "", payload
    else:
        query, body = payload, ""
    return EncodedRequest(request.method, request.path, query, body, tuple(headers))


def user_stream_url(base_url: str, listen_key: str) -> str:
    """The user-data WebSocket URL for ``listen_key`` under ``base_url``."""
    if not listen_key or not re.fullmatch(r"[A-Za-z0-9]{1,128}", listen_key):
        raise WireRequestError("listen_key", "must be 1-128 alphanumeric characters")
    return f"{base_url.rstrip('/')}/{listen_key}"


# ---------------------------------------------------------------------------------------
# Value formatting and validation.


def format_decimal(value: Decimal, field: str = "value") -> str:
    """Render a positive decimal as Binance wants it: plain notation, no trailing zeros.

    Raises:
        WireRequestError: if ``value`` is not a finite positive ``Decimal``.
    """
    if type(value) is not Decimal or not value.is_finite() or value <= 0:
        raise WireRequestError(field, f"must be a finite positive Decimal, got {value!r}")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _symbol(symbol: str) -> str:
    if type(symbol) is not str or not _SYMBOL_RE.match(symbol):
        raise WireRequestError("symbol", f"must be a venue symbol, got {excerpt(repr(symbol), 40)}")
    return symbol


def _client_id(value: str, field: str) -> str:
    if type(value) is not str or not BINANCE_CLIENT_ID_RE.match(value):
        raise WireRequestError(
            field, f"must match {BINANCE_CLIENT_ID_RE.pattern}, got {excerpt(repr(value), 48)}"
        )
    return value


def _venue_id(value: str | int, field: str) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _DIGITS_RE.match(text):
        raise WireRequestError(field, f"must be a numeric venue id, got {excerpt(repr(value), 32)}")
    return text


def _ms(value: int, field: str) -> str:
    if type(value) is not int or value < 0:
        raise WireRequestError(field, f"must be non-negative epoch milliseconds, got {value!r}")
    return str(value)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _one_id(
    order_id: str | int | None, client_id: str | None, id_field: str, client_field: str
) -> tuple[str, str]:
    if (order_id is None) == (client_id is None):
        raise WireRequestError(id_field, f"give exactly one of {id_field} and {client_field}")
    if order_id is not None:
        return (_WIRE_NAMES[id_field], _venue_id(order_id, id_field))
    assert client_id is not None
    return (_WIRE_NAMES[client_field], _client_id(client_id, client_field))


_WIRE_NAMES: Final = {
    "order_id": "orderId",
    "client_order_id": "origClientOrderId",
    "algo_id": "algoId",
    "client_algo_id": "clientAlgoId",
}


# ---------------------------------------------------------------------------------------
# Order placement.


def _check_position(req: OrderRequest, mode: PositionMode) -> list[tuple[str, str]]:
    """Position-side params for the mode, after checking the request fits it."""
    if mode is PositionMode.ONE_WAY:
        if req.position_side is not PositionSide.BOTH:
            raise WireRequestError(
                "position_side", f"one-way mode takes BOTH, got {req.position_side}"
            )
        return []
    if req.position_side is PositionSide.BOTH:
        raise WireRequestError("position_side", "hedge mode needs LONG or SHORT")
    # In hedge mode the closing side of a leg is what makes an order an exit.
    closing = Side.SELL if req.position_side is PositionSide.LONG else Side.BUY
    if req.is_exit and req.side is not closing:
        raise WireRequestError(
            "side",
            f"an exit of the {req.position_side} leg must be {closing}, got {req.side}",
        )
    return [("positionSide", req.position_side.value)]


def _check_prices(req: OrderRequest) -> None:
    t = req.order_type
    if t.needs_price and req.price is None:
        raise WireRequestError("price", f"{t} needs a price")
    if not t.needs_price and req.price is not None:
        raise WireRequestError("price", f"{t} takes no price")
    if t.needs_stop_price and req.stop_price is None:
        raise WireRequestError("stop_price", f"{t} needs a stop price")
    if not t.needs_stop_price and req.stop_price is not None:
        raise WireRequestError("stop_price", f"{t} takes no stop price")


def _check_quantity(req: OrderRequest) -> list[tuple[str, str]]:
    if req.close_position:
        if req.order_type not in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET):
            raise WireRequestError(
                "close_position", f"only STOP_MARKET and TAKE_PROFIT_MARKET, not {req.order_type}"
            )
        if req.quantity is not None:
            raise WireRequestError("quantity", "a closePosition order takes no quantity")
        return []
    if req.quantity is None:
        raise WireRequestError("quantity", "required unless close_position")
    return [("quantity", format_decimal(req.quantity, "quantity"))]


def _time_in_force(
    req: OrderRequest, good_till_date_ms: int | None, allowed: frozenset[TimeInForce] | None
) -> list[tuple[str, str]]:
    tif = req.time_in_force or TimeInForce.GTC
    if allowed is not None and tif not in allowed:
        raise WireRequestError("time_in_force", f"{tif} is not accepted for {req.order_type}")
    params = [("timeInForce", tif.value)]
    if tif is TimeInForce.GTD:
        if good_till_date_ms is None:
            raise WireRequestError("good_till_date_ms", "GTD needs a good-till date")
        params.append(("goodTillDate", _ms(good_till_date_ms, "good_till_date_ms")))
    elif good_till_date_ms is not None:
        raise WireRequestError("good_till_date_ms", f"only with GTD, not {tif}")
    return params


def new_order(
    req: OrderRequest,
    *,
    position_mode: PositionMode,
    config: WireConfig = DEFAULT_CONFIG,
    callback_rate: Decimal | None = None,
    activate_price: Decimal | None = None,
    good_till_date_ms: int | None = None,
) -> WireRequest:
    """Build the create request for ``req``, routed by its type (see module rules).

    Args:
        req: the order, with its client order id (derived from the intent, never random).
        position_mode: the account's mode (decides positionSide and reduceOnly).
        config: wire defaults (working type, response type).
        callback_rate: TRAILING_STOP_MARKET callback in percent (0.1-10).
        activate_price: TRAILING_STOP_MARKET activation price (optional).
        good_till_date_ms: expiry for GTD orders.

    Raises:
        WireRequestError: if the request does not fit its type or the position mode.
    """
    symbol = _symbol(req.symbol)
    t = req.order_type
    _check_prices(req)
    position = _check_position(req, position_mode)
    quantity = _check_quantity(req)
    trailing = t is OrderType.TRAILING_STOP_MARKET
    if not trailing and (callback_rate is not None or activate_price is not None):
        raise WireRequestError("callback_rate", f"{t} takes no trailing parameters")
    reduce_only = (
        [("reduceOnly", "true")]
        if req.reduce_only and not req.close_position and position_mode is PositionMode.ONE_WAY
        else []
    )
    if not t.is_conditional:
        tif = _time_in_force(req, good_till_date_ms, None) if t is OrderType.LIMIT else []
        if t is not OrderType.LIMIT and good_till_date_ms is not None:
            raise WireRequestError("good_till_date_ms", f"{t} takes no good-till date")
        params = [
            ("symbol", symbol),
            ("side", req.side.value),
            *position,
            ("type", t.value),
            *tif,
            *quantity,
            *([("price", format_decimal(req.price, "price"))] if req.price is not None else []),
            *reduce_only,
            ("newClientOrderId", _client_id(req.client_order_id, "client_order_id")),
            ("newOrderRespType", config.new_order_resp_type),
        ]
        return WireRequest(
            HttpMethod.POST,
            "/fapi/v1/order",
            tuple(params),
            weight=0,
            orders_10s=1,
            orders_1m=1,
            operation=Operation.CREATE,
        )
    tif = _time_in_force(req, good_till_date_ms, _ALGO_TIFS) if t.needs_price else []
    if not t.needs_price and good_till_date_ms is not None:
        raise WireRequestError("good_till_date_ms", f"{t} takes no good-till date")
    trailing_params: list[tuple[str, str]] = []
    if trailing:
        if callback_rate is None:
            raise WireRequestError("callback_rate", "TRAILING_STOP_MARKET needs a callback rate")
        if not (
            type(callback_rate) is Decimal
            and _MIN_CALLBACK_RATE <= callback_rate <= _MAX_CALLBACK_RATE
        ):
            raise WireRequestError(
                "callback_rate", f"must be within 0.1..10, got {callback_rate!r}"
            )
        if activate_price is not None:
            trailing_params.append(
                ("activatePrice", format_decimal(activate_price, "activate_price"))
            )
        trailing_params.append(("callbackRate", format_decimal(callback_rate, "callback_rate")))
    params = [
        ("algoType", "CONDITIONAL"),
        ("symbol", symbol),
        ("side", req.side.value),
        *position,
        ("type", t.value),
        *tif,
        *quantity,
        *([("price", format_decimal(req.price, "price"))] if req.price is not None else []),
        *(
            [("triggerPrice", format_decimal(req.stop_price, "stop_price"))]
            if req.stop_price is not None
            else []
        ),
        ("workingType", config.working_type),
        *([("priceProtect", "true")] if config.price_protect else []),
        *reduce_only,
        *([("closePosition", "true")] if req.close_position else []),
        *trailing_params,
        ("clientAlgoId", _client_id(req.client_order_id, "client_order_id")),
    ]
    return WireRequest(
        HttpMethod.POST,
        "/fapi/v1/algoOrder",
        tuple(params),
        weight=0,
        orders_10s=1,
        orders_1m=1,
        operation=Operation.CREATE,
    )


# ---------------------------------------------------------------------------------------
# Cancels and queries.


def cancel_order(
    symbol: str, *, order_id: str | int | None = None, client_order_id: str | None = None
) -> WireRequest:
    """``DELETE /fapi/v1/order`` by exactly one of venue id or client order id."""
    key = _one_id(order_id, client_order_id, "order_id", "client_order_id")
    return WireRequest(
        HttpMethod.DELETE,
        "/fapi/v1/order",
        (("symbol", _symbol(symbol)), key),
        operation=Operation.CANCEL,
    )


def cancel_algo_order(
    *, algo_id: str | int | None = None, client_algo_id: str | None = None
) -> WireRequest:
    """``DELETE /fapi/v1/algoOrder`` by exactly one of algo id or client algo id."""
    key = _one_id(algo_id, client_algo_id, "algo_id", "client_algo_id")
    return WireRequest(HttpMethod.DELETE, "/fapi/v1/algoOrder", (key,), operation=Operation.CANCEL)


def cancel_all_orders(symbol: str) -> WireRequest:
    """``DELETE /fapi/v1/allOpenOrders`` for one symbol (plain orders only)."""
    return WireRequest(
        HttpMethod.DELETE,
        "/fapi/v1/allOpenOrders",
        (("symbol", _symbol(symbol)),),
        operation=Operation.CANCEL,
    )


def cancel_all_algo_orders(symbol: str) -> WireRequest:
    """``DELETE /fapi/v1/algoOpenOrders`` for one symbol (conditional orders)."""
    return WireRequest(
        HttpMethod.DELETE,
        "/fapi/v1/algoOpenOrders",
        (("symbol", _symbol(symbol)),),
        operation=Operation.CANCEL,
    )


def cancel_batch_orders(
    symbol: str,
    *,
    order_ids: Iterable[str | int] = (),
    client_order_ids: Iterable[str] = (),
) -> WireRequest:
    """``DELETE /fapi/v1/batchOrders`` for up to 10 orders of one symbol.

    The reply is per item (:func:`parse_batch_orders`); an item error such as -2011 is
    that order's answer, not the batch's.
    """
    ids = [_venue_id(i, "order_ids") for i in order_ids]
    cids = [_client_id(c, "client_order_ids") for c in client_order_ids]
    if bool(ids) == bool(cids):
        raise WireRequestError("order_ids", "give exactly one of order_ids and client_order_ids")
    if len(ids) + len(cids) > _MAX_BATCH_CANCEL:
        raise WireRequestError("order_ids", f"at most {_MAX_BATCH_CANCEL} per batch")
    if ids:
        key = ("orderIdList", "[" + ",".join(ids) + "]")
    else:
        key = ("origClientOrderIdList", json.dumps(cids, separators=(",", ":")))
    return WireRequest(
        HttpMethod.DELETE,
        "/fapi/v1/batchOrders",
        (("symbol", _symbol(symbol)), key),
        operation=Operation.CANCEL,
    )


def query_order(
    symbol: str, *, order_id: str | int | None = None, client_order_id: str | None = None
) -> WireRequest:
    """``GET /fapi/v1/order``: the question to ask after any ambiguous create (I7)."""
    key = _one_id(order_id, client_order_id, "order_id", "client_order_id")
    return WireRequest(HttpMethod.GET, "/fapi/v1/order", (("symbol", _symbol(symbol)), key))


def query_algo_order(
    *, algo_id: str | int | None = None, client_algo_id: str | None = None
) -> WireRequest:
    """``GET /fapi/v1/algoOrder`` by exactly one of algo id or client algo id."""
    key = _one_id(algo_id, client_algo_id, "algo_id", "client_algo_id")
    return WireRequest(HttpMethod.GET, "/fapi/v1/algoOrder", (key,))


def open_orders(symbol: str | None = None) -> WireRequest:
    """``GET /fapi/v1/openOrders``; weight 1 with a symbol, 40 without."""
    if symbol is None:
        return WireRequest(HttpMethod.GET, "/fapi/v1/openOrders", (), weight=40)
    return WireRequest(HttpMethod.GET, "/fapi/v1/openOrders", (("symbol", _symbol(symbol)),))


def open_algo_orders(symbol: str | None = None) -> WireRequest:
    """``GET /fapi/v1/openAlgoOrders``; weight 1 with a symbol, 40 without."""
    if symbol is None:
        return WireRequest(HttpMethod.GET, "/fapi/v1/openAlgoOrders", (), weight=40)
    return WireRequest(HttpMethod.GET, "/fapi/v1/openAlgoOrders", (("symbol", _symbol(symbol)),))


def _time_range(start_time_ms: int | None, end_time_ms: int | None) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    if start_time_ms is not None:
        params.append(("startTime", _ms(start_time_ms, "start_time_ms")))
    if end_time_ms is not None:
        params.append(("endTime", _ms(end_time_ms, "end_time_ms")))
    if start_time_ms is not None and end_time_ms is not None:
        if end_time_ms < start_time_ms:
            raise WireRequestError("end_time_ms", "must not be before start_time_ms")
        if end_time_ms - start_time_ms > _MAX_TRADE_WINDOW_MS:
            raise WireRequestError("end_time_ms", "the window must not exceed 7 days")
    return params


def _limit(limit: int | None) -> list[tuple[str, str]]:
    if limit is None:
        return []
    if type(limit) is not int or not 1 <= limit <= 1000:
        raise WireRequestError("limit", f"must be in 1..1000, got {limit!r}")
    return [("limit", str(limit))]


def all_orders(
    symbol: str,
    *,
    order_id: str | int | None = None,
    start_time_ms: int | None = None,
    end_time_ms: int | None = None,
    limit: int | None = None,
) -> WireRequest:
    """``GET /fapi/v1/allOrders`` (orders with id ≥ ``order_id``; window < 7 days)."""
    params = [("symbol", _symbol(symbol))]
    if order_id is not None:
        params.append(("orderId", _venue_id(order_id, "order_id")))
    params += _time_range(start_time_ms, end_time_ms) + _limit(limit)
    return WireRequest(HttpMethod.GET, "/fapi/v1/allOrders", tuple(params), weight=5)


def user_trades(
    symbol: str,
    *,
    from_id: str | int | None = None,
    order_id: str | int | None = None,
    start_time_ms: int | None = None,
    end_time_ms: int | None = None,
    limit: int | None = 1000,
) -> WireRequest:
    """``GET /fapi/v1/userTrades``; ``from_id`` is the gap-free cursor for fill backfill.

    Raises:
        WireRequestError: if ``from_id`` is combined with a time range (Binance forbids it).
    """
    params = [("symbol", _symbol(symbol))]
    if order_id is not None:
        params.append(("orderId", _venue_id(order_id, "order_id")))
    if from_id is not None:
        if start_time_ms is not None or end_time_ms is not None:
            raise WireRequestError("from_id", "cannot be combined with start/end times")
        params.append(("fromId", _venue_id(from_id, "from_id")))
    params += _time_range(start_time_ms, end_time_ms) + _limit(limit)
    return WireRequest(HttpMethod.GET, "/fapi/v1/userTrades", tuple(params), weight=5)


def position_risk(symbol: str | None = None, *, version: int = 3) -> WireRequest:
    """``GET /fapi/v3/positionRisk`` (or v2, which also lists flat symbols)."""
    if version not in (2, 3):
        raise WireRequestError("version", f"must be 2 or 3, got {version!r}")
    params = () if symbol is None else (("symbol", _symbol(symbol)),)
    return WireRequest(HttpMethod.GET, f"/fapi/v{version}/positionRisk", params, weight=5)


def balance() -> WireRequest:
    """``GET /fapi/v3/balance``."""
    return WireRequest(HttpMethod.GET, "/fapi/v3/balance", (), weight=5)


def account() -> WireRequest:
    """``GET /fapi/v3/account`` (totals, assets, positions)."""
    return WireRequest(HttpMethod.GET, "/fapi/v3/account", (), weight=5)


def exchange_info() -> WireRequest:
    """``GET /fapi/v1/exchangeInfo`` (public)."""
    return WireRequest(
        HttpMethod.GET, "/fapi/v1/exchangeInfo", (), signed=False, api_key_header=False
    )


def server_time() -> WireRequest:
    """``GET /fapi/v1/time`` (public), for measuring clock offset before signing."""
    return WireRequest(HttpMethod.GET, "/fapi/v1/time", (), signed=False, api_key_header=False)


def mark_price(symbol: str | None = None) -> WireRequest:
    """``GET /fapi/v1/premiumIndex`` (public): mark price and funding, weight 1 per symbol.

    Without ``symbol`` Binance answers an array covering every symbol (weight 10).
    """
    if symbol is None:
        return WireRequest(
            HttpMethod.GET,
            "/fapi/v1/premiumIndex",
            (),
            signed=False,
            api_key_header=False,
            weight=10,
        )
    return WireRequest(
        HttpMethod.GET,
        "/fapi/v1/premiumIndex",
        (("symbol", _symbol(symbol)),),
        signed=False,
        api_key_header=False,
    )


def ping() -> WireRequest:
    """``GET /fapi/v1/ping`` (public connectivity check)."""
    return WireRequest(HttpMethod.GET, "/fapi/v1/ping", (), signed=False, api_key_header=False)


# ---------------------------------------------------------------------------------------
# Account settings and the dead-man switch.


def set_leverage(symbol: str, leverage: int) -> WireRequest:
    """``POST /fapi/v1/leverage`` (1-125)."""
    if type(leverage) is not int or not 1 <= leverage <= 125:
        raise WireRequestError("leverage", f"must be an integer in 1..125, got {leverage!r}")
    return WireRequest(
        HttpMethod.POST,
        "/fapi/v1/leverage",
        (("symbol", _symbol(symbol)), ("leverage", str(leverage))),
        operation=Operation.OTHER,
    )


def countdown_cancel_all(symbol: str, countdown_ms: int) -> WireRequest:
    """``POST /fapi/v1/countdownCancelAll``: arm (or with 0, disarm) the dead-man switch.

    If no heartbeat arrives within ``countdown_ms``, Binance cancels every open order of
    the symbol. Weight 10.
    """
    return WireRequest(
        HttpMethod.POST,
        "/fapi/v1/countdownCancelAll",
        (("symbol", _symbol(symbol)), ("countdownTime", _ms(countdown_ms, "countdown_ms"))),
        weight=10,
        operation=Operation.OTHER,
    )


def get_position_mode() -> WireRequest:
    """``GET /fapi/v1/positionSide/dual`` (weight 30)."""
    return WireRequest(HttpMethod.GET, "/fapi/v1/positionSide/dual", (), weight=30)


def set_position_mode(mode: PositionMode) -> WireRequest:
    """``POST /fapi/v1/positionSide/dual``; -4059 means it already was ``mode``."""
    return WireRequest(
        HttpMethod.POST,
        "/fapi/v1/positionSide/dual",
        (("dualSidePosition", _bool(mode is PositionMode.HEDGE)),),
        operation=Operation.OTHER,
    )


def create_listen_key() -> WireRequest:
    """``POST /fapi/v1/listenKey`` (API key, unsigned; returns the active key if any)."""
    return WireRequest(
        HttpMethod.POST, "/fapi/v1/listenKey", (), signed=False, operation=Operation.OTHER
    )


def keepalive_listen_key() -> WireRequest:
    """``PUT /fapi/v1/listenKey``: extend the key by 60 minutes (-1125: re-create it)."""
    return WireRequest(
        HttpMethod.PUT, "/fapi/v1/listenKey", (), signed=False, operation=Operation.OTHER
    )


def close_listen_key() -> WireRequest:
    """``DELETE /fapi/v1/listenKey``: close the user stream."""
    return WireRequest(
        HttpMethod.DELETE, "/fapi/v1/listenKey", (), signed=False, operation=Operation.OTHER
    )


# ---------------------------------------------------------------------------------------
# Rate-limit headers.


@attrs.frozen
class RateLimitUsage:
    """What a response's rate-limit headers said.

    Attributes:
        used_weight_1m: ``X-MBX-USED-WEIGHT-1M`` (IP weight used this minute).
        order_count_10s, order_count_1m: ``X-MBX-ORDER-COUNT-*`` (account orders).
        retry_after_s: ``Retry-After`` in seconds (with 418/429).
        used_weight, order_count: every interval seen, e.g. ``(("1M", 37),)``.
        ignored: names of rate-limit headers whose values were unparseable. Headers are
            advisory, so a bad one is reported here rather than failing the response.
    """

    used_weight_1m: int | None = None
    order_count_10s: int | None = None
    order_count_1m: int | None = None
    retry_after_s: float | None = None
    used_weight: tuple[tuple[str, int], ...] = ()
    order_count: tuple[tuple[str, int], ...] = ()
    ignored: tuple[str, ...] = ()


_WEIGHT_PREFIX: Final = "x-mbx-used-weight-"
_ORDER_PREFIX: Final = "x-mbx-order-count-"
_INTERVAL_RE = re.compile(r"^\d{1,4}[smhd]$")


def _header_items(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> Iterable[tuple[object, object]]:
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def parse_rate_limit_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> RateLimitUsage:
    """Read the rate-limit headers of one response (names are case-insensitive).

    Never raises on header values: unparseable ones are listed in ``ignored``.
    """
    weights: dict[str, int] = {}
    orders: dict[str, int] = {}
    retry_after: float | None = None
    ignored: list[str] = []
    for raw_name, raw_value in _header_items(headers):
        if not isinstance(raw_name, str):
            continue
        name = raw_name.lower()
        value = raw_value.strip() if isinstance(raw_value, str) else ""
        if name == "retry-after":
            retry_after = _retry_after(value)
            if retry_after is None:
                ignored.append(raw_name)
            continue
        for prefix, target in ((_WEIGHT_PREFIX, weights), (_ORDER_PREFIX, orders)):
            if not name.startswith(prefix):
                continue
            interval = name[len(prefix) :]
            if _INTERVAL_RE.match(interval) and _DIGITS_RE.match(value):
                target[interval.upper()] = int(value)
            else:
                ignored.append(raw_name)
    return RateLimitUsage(
        used_weight_1m=weights.get("1M"),
        order_count_10s=orders.get("10S"),
        order_count_1m=orders.get("1M"),
        retry_after_s=retry_after,
        used_weight=tuple(sorted(weights.items())),
        order_count=tuple(sorted(orders.items())),
        ignored=tuple(ignored),
    )


def _retry_after(value: str) -> float | None:
    # Seconds only: an HTTP-date would need a clock to interpret, and Binance sends seconds.
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0 or seconds > 3 * 24 * 3600:
        return None
    return seconds


# ---------------------------------------------------------------------------------------
# Errors.


@attrs.frozen
class VenueErrorInfo:
    """An error response, read and classified.

    Attributes:
        http_status: the response status (200 for an error inside a batch reply).
        code: Binance's error code, or ``None`` if the body had none (proxy pages, WAF).
        message: Binance's message, or a short redacted excerpt of a non-JSON body.
        verdict: the core's classification (what the caller may do next, and why).
        rate_limits: the response's rate-limit headers.
    """

    http_status: int
    code: int | None
    message: str
    verdict: ErrorVerdict
    rate_limits: RateLimitUsage = RateLimitUsage()


def is_error_response(http_status: int, body: JsonValue) -> bool:
    """True if the response is an error: a non-2xx status, or an error body on a 2xx."""
    return not 200 <= http_status < 300 or parse_error_body(body) is not None


def map_error(
    http_status: int,
    body: JsonValue | str | bytes | VenueErrorBody | None,
    *,
    operation: Operation,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    venue: str = "binance_usdm",
) -> VenueErrorInfo:
    """Classify an error response through the core error table.

    ``body`` may be the raw bytes or text, the decoded JSON, or an already parsed
    :class:`VenueErrorBody` (a batch item). A body that is not a Binance error object
    (an HTML page from a proxy, an empty body) is classified on the status alone.

    Raises:
        WireRequestError: if ``http_status`` is not an HTTP status code (a caller bug).
    """
    if type(http_status) is not int or not 100 <= http_status <= 599:
        raise WireRequestError("http_status", f"must be an HTTP status, got {http_status!r}")
    usage = parse_rate_limit_headers(headers)
    error_body: VenueErrorBody | None
    text = ""
    if isinstance(body, VenueErrorBody):
        error_body = body
    else:
        decoded: JsonValue = body
        if isinstance(body, str | bytes | bytearray):
            try:
                decoded = loads(body)
            except MalformedMessage:
                decoded = None
                text = excerpt(body, 200)
        error_body = parse_error_body(decoded)
    code = error_body.code if error_body is not None else None
    message = error_body.msg if error_body is not None else text
    verdict = classify_error(
        http_status,
        code,
        message,
        operation=operation,
        venue=venue,
        retry_after_s=usage.retry_after_s,
    )
    return VenueErrorInfo(
        http_status=http_status, code=code, message=message, verdict=verdict, rate_limits=usage
    )
