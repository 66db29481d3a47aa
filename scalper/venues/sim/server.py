"""The simulated exchange served over loopback HTTP and WebSocket in Binance USD-M wire format.

Theory of operation
-------------------

:class:`SimExchangeApp` is a plain ASGI-3 application around one
:class:`~scalper.venues.sim.engine.SimEngine`; :func:`serve_sim_exchange` runs it with
hypercorn's trio worker on ``127.0.0.1`` (loopback only) next to a ticker task. A client
that speaks Binance USD-M (the project's own adapter, ccxt, python-binance) points its
base URL at it and trades against the deterministic engine, with the admin surface and the
engine's history telling tests what really happened (I4: the wire is evidence, the history
is truth).

**REST** (``/fapi/...``, ``reference/binance_usdm.md`` §2, §3, §7). Every request goes
through the same pipeline, in Binance's order:

1. route by method and path (unknown path 404, known path with another method 405);
2. parameters: query string and form body (a parameter in both: the query wins; the same
   parameter twice in one part: -1101);
3. IP weight against ``REQUEST_WEIGHT`` (429, -1003, ``Retry-After``), charged before
   authentication as Binance does;
4. security: ``X-MBX-APIKEY`` must be the configured key (-2014 missing, -2015 wrong);
   SIGNED endpoints need a ``signature`` (HMAC-SHA256 over query + body, verified with
   :func:`~scalper.venues.binance.signing.verify_signature`: -1022) and a ``timestamp``
   with ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``
   (-1021; ``recvWindow`` at most 60000: -1131);
5. the handler, which calls the engine. Engine refusals are :class:`SimRejection` with
   Binance's code and text and become ``{"code": ..., "msg": ...}`` with their HTTP status.

Every answer carries ``X-MBX-USED-WEIGHT-1M``; order placements also carry
``X-MBX-ORDER-COUNT-10S`` and ``-1M``. Responses are rendered by
:mod:`scalper.venues.sim.wire_format` (exact field names, string decimals).

**Time.** The server reads its clock in exactly one place, :class:`ServerClock`: the
injected clock (default ``trio.current_time``) measured from server start, plus any admin
jump. That is the engine's clock; Binance milliseconds are the engine's
``venue_time_ms``, whose epoch is ``epoch_at_start`` (the CLI passes the wall clock read
once at startup so that third-party clients can sign with their own clocks) or, by default,
the engine config's fixed epoch (deterministic under ``MockClock``). Every request first
advances the engine to now; a ticker advances it every ``tick_interval_s`` so that resting
orders fill, stops trigger and countdowns fire without requests.

**User-data stream** (§1, §5). One listenKey per account: ``POST /fapi/v1/listenKey``
returns the active key (extending it) or a new one; ``PUT`` extends it by
``listen_key_ttl_s`` (-1125 if there is none); ``DELETE`` closes it and its connections.
A key not kept alive expires on the server's clock: its connections get
``listenKeyExpired`` and then nothing more (the socket stays open, as on Binance).
Connections: ``/ws/<key>``, ``/private/ws/<key>``, ``/private/ws?listenKey=<key>``
(bare payloads) and ``/stream?streams=<key>``, ``/private/stream?listenKey=<key>``
(``{"stream": key, "data": ...}``); ``events=A/B`` filters event types. Engine events
(``ORDER_TRADE_UPDATE``, ``ACCOUNT_UPDATE``, ``ALGO_UPDATE``, ``ACCOUNT_CONFIG_UPDATE``)
are pushed after every request and every tick. A connection that cannot keep up (its
buffer of ``stream_buffer`` messages is full) is closed, as Binance drops slow consumers;
its client must reconcile over REST.

**Admin** (``/admin/...``, :mod:`scalper.venues.sim.admin`), authenticated with a bearer
token compared in constant time: ground-truth history, state, price moves, clock jumps and
fault schedules. It is outside ``/fapi`` so no Binance client can reach it by accident.

**Faults** (:mod:`scalper.venues.sim.faults`). The seeded injector, built from
``config.faults`` and replaceable through the admin surface, is asked about every REST
request after routing (before weight and authentication, like a failure in front of the
matching engine) and carried out as its :class:`~scalper.venues.sim.faults.RequestFault`
says: execute or not (FILL_AFTER_CANCEL first runs the market through the order), wait
``delay_s`` on trio's clock, then answer normally, with the fault's error (status, code,
message, ``Retry-After``) or not at all (TIMEOUT: the server keeps the connection open and
never answers, so the client times out having written its request). SNAPSHOT_LAG reads
answer from a :class:`~scalper.venues.sim.faults.LaggedView`. Each stream connection has
its own :class:`~scalper.venues.sim.faults.StreamFilter` (drop, duplicate, delay, reorder);
an outage (STREAM_DISCONNECT, MAINTENANCE) closes connections and refuses new ones (HTTP
503 at the handshake), and LISTEN_KEY_EXPIRY pushes ``listenKeyExpired``, closes the
connections and invalidates the key until it is re-created. Fault windows are on the
server clock (engine seconds); the admin surface accepts windows relative to now. A new
schedule governs what happens next, not what is in flight: each connection's filter hands
the events it holds over to a filter of the new injector, so they still arrive, once, at
the release instants the injection log gave them.

**Market data** is one endpoint, ``GET /fapi/v1/premiumIndex`` (public; weight 1 with a
symbol, 10 for the array of all symbols): the engine's price path is the mark, index and
settle price at once, and funding is not simulated (rate zero, next funding at the next
8-hour UTC boundary). An unknown symbol is -1121, as on Binance.

Not simulated: batch endpoints, order amendment, GTD, trailing stops (the engine's
-1020), IP bans (418) unless a fault injects them, the 24-hour connection limit, funding,
order books, trades and klines.
"""

import enum
import functools
import hmac
import json
import logging
import math
import random
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

import attrs
import trio

from scalper.asgi import bind_address, serve_asgi
from scalper.core.errors_base import CoreValueError
from scalper.core.model import OrderRequest, VenueOrderStatus, VenuePosition
from scalper.core.types import ZERO, OrderType, PositionMode, PositionSide, Side, TimeInForce
from scalper.venues.binance.signing import MAX_RECV_WINDOW_MS, decode_params, verify_signature
from scalper.venues.sim.admin import AdminApi, AdminRequest
from scalper.venues.sim.engine import OrderRoute, SimConfig, SimEngine, SymbolConfig
from scalper.venues.sim.errors import ErrorCode, SimRejection, reject
from scalper.venues.sim.faults import (
    Answer,
    FaultConfig,
    FaultError,
    FaultInjector,
    FaultKind,
    FaultSpec,
    InjectedFault,
    LaggedView,
    RequestFault,
    StreamFilter,
    fill_before_cancel,
    schedule_from_dicts,
    schedule_to_dicts,
)
from scalper.venues.sim.filters import SymbolFilters
from scalper.venues.sim.market import BookConfig, PricePathConfig, Quote
from scalper.venues.sim.ratelimit import RateKind
from scalper.venues.sim.records import AccountUpdate, SimBalance, SimEvent, SimOrder
from scalper.venues.sim.wire_format import (
    AlgoSettings,
    JsonObject,
    OrderShape,
    PositionView,
    WireFormat,
    error_body,
    listen_key_expired,
)

__all__ = [
    "DEMO_ADMIN_TOKEN",
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "FaultState",
    "HttpRequest",
    "HttpResponse",
    "ServerClock",
    "SimExchangeApp",
    "SimServerConfig",
    "SimServerHandle",
    "WireCode",
    "engine_config_for",
    "serve_sim_exchange",
]

_log = logging.getLogger(__name__)

# Demo credentials of a loopback-only simulator holding no money; printed by the CLI on
# purpose so any Binance client can be pointed at it.
DEMO_API_KEY: Final = "simDemoApiKey0000000000000000000000000000000000000000000000000000"
DEMO_API_SECRET: Final = "simDemoApiSecret00000000000000000000000000000000000000000000000"  # noqa: S105
DEMO_ADMIN_TOKEN: Final = "simDemoAdminToken"  # noqa: S105

_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_FUTURE_TOLERANCE_MS: Final = 1000
_DEFAULT_RECV_WINDOW_MS: Final = 5000
_LISTEN_KEY_CHARS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_LISTEN_KEY_LEN: Final = 64
# Matched with fullmatch: "$" would let a trailing newline through.
_ORDER_ID_RE = re.compile(r"[0-9]{1,20}")
_DECIMAL_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_INT_RE = re.compile(r"-?[0-9]{1,19}")
_LISTEN_KEY_RE = re.compile(r"[A-Za-z0-9]{1,128}")
_CANCEL_ALL_DONE: Final = "The operation of cancel all open order is done."
_WORKING_TYPES: Final = frozenset({"MARK_PRICE", "CONTRACT_PRICE"})

# ASGI callables, typed loosely: messages are plain dicts.
_Scope = dict[str, Any]
_Receive = Callable[[], Awaitable[dict[str, Any]]]
_Send = Callable[[dict[str, Any]], Awaitable[None]]
_E = TypeVar("_E", bound=enum.Enum)


class WireCode(enum.IntEnum):
    """Binance codes the server itself emits (request-level; the engine owns the rest)."""

    INVALID_TIMESTAMP = -1021
    INVALID_SIGNATURE = -1022
    ILLEGAL_CHARS = -1100
    TOO_MANY_PARAMETERS = -1101
    INVALID_TIF = -1115
    INVALID_SIDE = -1117
    EMPTY_NEW_CL_ORD_ID = -1118
    INVALID_LISTEN_KEY = -1125
    OPTIONAL_PARAMS_BAD_COMBO = -1128
    BAD_RECV_WINDOW = -1131
    INVALID_NEW_ORDER_RESP_TYPE = -1136
    BAD_API_KEY_FMT = -2014
    REJECTED_MBX_KEY = -2015
    INVALID_WORKING_TYPE = -4031
    INVALID_POSITION_SIDE = -4060


_WIRE_MESSAGES: Final[Mapping[WireCode, str]] = {
    WireCode.INVALID_TIMESTAMP: "Timestamp for this request is outside of the recvWindow.",
    WireCode.INVALID_SIGNATURE: "Signature for this request is not valid.",
    WireCode.ILLEGAL_CHARS: "Illegal characters found in a parameter.",
    WireCode.TOO_MANY_PARAMETERS: "Duplicate values for a parameter detected.",
    WireCode.INVALID_TIF: "Invalid timeInForce.",
    WireCode.INVALID_SIDE: "Invalid side.",
    WireCode.EMPTY_NEW_CL_ORD_ID: "New client order ID was empty.",
    WireCode.INVALID_LISTEN_KEY: "This listenKey does not exist.",
    WireCode.OPTIONAL_PARAMS_BAD_COMBO: "Combination of optional parameters invalid.",
    WireCode.BAD_RECV_WINDOW: "recvWindow must be less than 60000",
    WireCode.INVALID_NEW_ORDER_RESP_TYPE: "Invalid newOrderRespType.",
    WireCode.BAD_API_KEY_FMT: "API-key format invalid.",
    WireCode.REJECTED_MBX_KEY: "Invalid API-key, IP, or permissions for action.",
    WireCode.INVALID_WORKING_TYPE: "Invalid parameter working type",
    WireCode.INVALID_POSITION_SIDE: "Invalid position side.",
}
_AHEAD_MESSAGE: Final = "Timestamp for this request was 1000ms ahead of the server's time."


def _wire_error(code: WireCode, message: str | None = None, *, status: int = 400) -> SimRejection:
    return SimRejection(int(code), message or _WIRE_MESSAGES[code], http_status=status)


def _mandatory(name: str) -> SimRejection:
    return reject(ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED, name)


# ---------------------------------------------------------------------------------------
# Configuration.


def _validate_host(_inst: object, attribute: "attrs.Attribute[str]", value: str) -> None:
    if value not in _LOOPBACK_HOSTS:
        raise CoreValueError(
            attribute.name, f"must be a loopback address {sorted(_LOOPBACK_HOSTS)}, got {value!r}"
        )


def _validate_port(_inst: object, attribute: "attrs.Attribute[int]", value: int) -> None:
    if not 0 <= value <= 65535:
        raise CoreValueError(attribute.name, f"must be in 0..65535, got {value}")


def _validate_secret_text(_inst: object, attribute: "attrs.Attribute[str]", value: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise CoreValueError(attribute.name, "must be non-empty and contain no whitespace")


def _validate_symbols(
    _inst: object, attribute: "attrs.Attribute[tuple[str, ...]]", value: tuple[str, ...]
) -> None:
    for name in value:
        if not name or not name.isalnum() or not name.isupper():
            raise CoreValueError(
                attribute.name, f"symbols must be upper-case alphanumeric: {name!r}"
            )
    if len(set(value)) != len(value):
        raise CoreValueError(attribute.name, f"symbols must be unique, got {list(value)}")


def _positive_float(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise CoreValueError(attribute.name, f"must be a positive number, got {value!r}")


def _optional_epoch(
    _inst: object, attribute: "attrs.Attribute[float | None]", value: float | None
) -> None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise CoreValueError(attribute.name, f"must be positive epoch seconds, got {value!r}")


def _positive_int(_inst: object, attribute: "attrs.Attribute[int]", value: int) -> None:
    if value < 1:
        raise CoreValueError(attribute.name, f"must be >= 1, got {value}")


@attrs.frozen
class SimServerConfig:
    """Everything the loopback server is configured with (defaults: a demo account).

    Attributes:
        host: a loopback address (the server never listens elsewhere).
        port: TCP port; 0 picks a free one (reported by :func:`serve_sim_exchange`).
        api_key, api_secret: the one account's credentials (demo values by default).
        admin_token: bearer token of the ``/admin`` surface.
        symbols: symbols to list. Known ones (the engine config's, BTCUSDT and ETHUSDT by
            default) keep their configuration; any other ``<BASE>USDT`` gets a generic
            one priced at 100. Empty: the engine config's symbols.
        seed: seeds the engine, listen keys and faults (same seed, same exchange).
        engine: the matching engine's configuration (fees, balance, limits, ...).
        epoch_at_start: Binance epoch seconds at server start; ``None`` keeps the engine
            config's fixed epoch (deterministic). The CLI passes the wall clock.
        tick_interval_s: how often the ticker advances the engine and pushes events.
        listen_key_ttl_s: listenKey validity after creation or keepalive (Binance: 60 min).
        stream_buffer: messages buffered per stream connection before it is dropped.
        max_body_bytes: largest accepted request body (413 beyond).
        graceful_timeout_s: how long shutdown waits for open connections.
        faults: the initial fault schedule (windows in engine seconds).
        fault_defaults: defaults for fault parameters the schedule leaves out (its
            ``epoch_offset`` is replaced by the engine's).
    """

    host: str = attrs.field(default="127.0.0.1", validator=_validate_host)
    port: int = attrs.field(default=0, validator=_validate_port)
    api_key: str = attrs.field(default=DEMO_API_KEY, validator=_validate_secret_text)
    api_secret: str = attrs.field(
        default=DEMO_API_SECRET, validator=_validate_secret_text, repr=False
    )
    admin_token: str = attrs.field(
        default=DEMO_ADMIN_TOKEN, validator=_validate_secret_text, repr=False
    )
    symbols: tuple[str, ...] = attrs.field(
        default=("BTCUSDT", "ETHUSDT"), validator=_validate_symbols
    )
    seed: int = 1
    engine: SimConfig = attrs.field(factory=SimConfig)
    epoch_at_start: float | None = attrs.field(default=None, validator=_optional_epoch)
    tick_interval_s: float = attrs.field(default=0.1, validator=_positive_float)
    listen_key_ttl_s: float = attrs.field(default=3600.0, validator=_positive_float)
    stream_buffer: int = attrs.field(default=1000, validator=_positive_int)
    max_body_bytes: int = attrs.field(default=65536, validator=_positive_int)
    graceful_timeout_s: float = attrs.field(default=1.0, validator=_positive_float)
    faults: tuple[FaultSpec, ...] = ()
    fault_defaults: FaultConfig = attrs.field(factory=FaultConfig)


def _generic_symbol(name: str) -> SymbolConfig:
    """A plain USDT perpetual priced around 100 (for symbols the engine config lacks)."""
    if not name.endswith("USDT") or len(name) <= 4:
        raise CoreValueError("symbols", f"unknown symbol {name!r} (only <BASE>USDT can be added)")
    return SymbolConfig(
        symbol=name,
        base_asset=name[:-4],
        filters=SymbolFilters(
            tick_size=Decimal("0.01"),
            min_price=Decimal("0.01"),
            max_price=Decimal(1_000_000),
            step_size=Decimal("0.01"),
            min_qty=Decimal("0.01"),
            max_qty=Decimal(1_000_000),
            market_step_size=Decimal("0.01"),
            market_min_qty=Decimal("0.01"),
            market_max_qty=Decimal(100_000),
            min_notional=Decimal(5),
            price_precision=2,
            quantity_precision=2,
        ),
        path=PricePathConfig(initial_price=Decimal(100)),
        book=BookConfig(level_qty=Decimal(50), resting_fill_qty=Decimal(20)),
    )


def engine_config_for(config: SimServerConfig) -> SimConfig:
    """The engine configuration the server runs (symbols selected, epoch applied).

    Raises:
        CoreValueError: for a symbol that is neither configured nor ``<BASE>USDT``.
    """
    base = config.engine
    known = {s.symbol: s for s in base.symbols}
    symbols = (
        tuple(known.get(n) or _generic_symbol(n) for n in config.symbols)
        if config.symbols
        else base.symbols
    )
    epoch_offset = (
        base.epoch_offset
        if config.epoch_at_start is None
        else config.epoch_at_start - base.start_time
    )
    return attrs.evolve(base, symbols=symbols, epoch_offset=epoch_offset)


# ---------------------------------------------------------------------------------------
# Time.


class ServerClock:
    """The one place the server reads time: engine seconds since its configured start.

    ``now() = start + (source() - source_at_construction) + jumped``. The source is the
    injected clock (``trio.current_time`` by default, so ``MockClock`` drives the server);
    :meth:`jump` moves time forward for tests and the admin surface.
    """

    def __init__(self, source: Callable[[], float], start: float) -> None:
        self._source = source
        self._origin = source()
        self._start = start
        self._jumped = 0.0

    def now(self) -> float:
        """The engine's idea of now."""
        return self._start + (self._source() - self._origin) + self._jumped

    def jump(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backward).

        Raises:
            CoreValueError: for a negative or non-finite amount.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise CoreValueError("seconds", f"must be a finite number >= 0, got {seconds!r}")
        self._jumped += seconds


# ---------------------------------------------------------------------------------------
# Faults.


class FaultState:
    """The server's fault injector and what it needs around it (the admin's FaultControl).

    Owns the current :class:`~scalper.venues.sim.faults.FaultInjector`, the lagged view
    SNAPSHOT_LAG reads need, and the log of injectors replaced through the admin surface
    (so the injection log survives a schedule change). The injector's random generator is
    created once from the seed and kept across schedule changes: same seed, same calls,
    same faults.

    Args:
        schedule: the initial schedule (windows in engine seconds).
        rng: the injector's random source.
        config: defaults for parameters a schedule leaves out (its epoch must be the
            engine's).
        now: the server clock, for windows given relative to now.
    """

    def __init__(
        self,
        schedule: tuple[FaultSpec, ...],
        rng: random.Random,
        config: FaultConfig,
        now: Callable[[], float],
    ) -> None:
        self._rng = rng
        self._config = config
        self._now = now
        self._past: list[InjectedFault] = []
        self.generation = 0
        self.injector = FaultInjector(schedule, rng, config)
        self.view = self._make_view()

    def _make_view(self) -> LaggedView | None:
        lag = self.injector.max_lag_s
        return LaggedView(lag) if lag > 0 else None

    @property
    def injected(self) -> tuple[InjectedFault, ...]:
        """Every fault that fired since the server started, in order."""
        return (*self._past, *self.injector.injected)

    def replace(self, schedule: tuple[FaultSpec, ...]) -> None:
        """Install a new schedule (stream filters hand over to it: ``generation``)."""
        self._past.extend(self.injector.injected)
        self.injector = FaultInjector(schedule, self._rng, self._config)
        self.view = self._make_view()
        self.generation += 1

    def describe(self) -> dict[str, Any]:
        """The schedule, the injection log and the server clock, as JSON."""
        return {
            "now": self._now(),
            "schedule": schedule_to_dicts(self.injector.schedule),
            "injected": [entry.to_dict() for entry in self.injected],
            "listen_key_expired": self.injector.listen_key_expired,
        }

    def configure(self, payload: object) -> dict[str, Any]:
        """Replace the schedule from JSON.

        Accepts a list of :meth:`FaultSpec.to_dict` objects, or
        ``{"schedule": [...], "relative": true}`` where relative windows are seconds from
        now.

        Raises:
            CoreValueError: naming the offending field.
        """
        relative = False
        items: object = payload
        if isinstance(payload, dict):
            unknown = sorted(set(payload) - {"schedule", "relative"})
            if unknown:
                raise CoreValueError("faults", f"unknown keys {unknown}")
            items = payload.get("schedule", [])
            relative = payload.get("relative", False) is True
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise CoreValueError("schedule", "must be a list of fault objects")
        schedule = schedule_from_dicts(items)
        if relative:
            now = self._now()
            schedule = tuple(
                attrs.evolve(spec, start=spec.start + now, end=spec.end + now) for spec in schedule
            )
        self.replace(schedule)
        return self.describe()

    def clear(self) -> None:
        """Drop every scheduled fault (the log is kept)."""
        self.replace(())


# ---------------------------------------------------------------------------------------
# HTTP plumbing.


@attrs.frozen
class HttpRequest:
    """One HTTP request as the server handles it (raw query and body: they are signed)."""

    method: str
    path: str
    query: str
    body: str
    headers: Mapping[str, str] = attrs.field(factory=dict)

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower())


@attrs.frozen
class HttpResponse:
    """One HTTP response: status, JSON-encoded body, extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"

    @classmethod
    def json(
        cls, status: int, payload: object, headers: tuple[tuple[str, str], ...] = ()
    ) -> "HttpResponse":
        """A JSON response (compact, as Binance sends it)."""
        return cls(status, json.dumps(payload, separators=(",", ":")).encode(), headers)

    def decoded(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name (``None`` if absent)."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


class _Security(enum.Enum):
    NONE = "NONE"
    USER_STREAM = "USER_STREAM"
    SIGNED = "SIGNED"


_Handler = Callable[["_Params", "_Ctx"], object]
#: Operations SNAPSHOT_LAG may answer from the past.
_LAGGABLE: Final = frozenset({"open_orders", "positions", "balances", "query"})


@attrs.frozen
class _Route:
    """One endpoint: security type, IP weight, fault operation, handler."""

    security: _Security
    weight: int
    operation: str
    handler: _Handler
    weight_without_symbol: int | None = None
    order_count: bool = False

    def cost(self, params: "_Params") -> int:
        if self.weight_without_symbol is not None and params.text("symbol") is None:
            return self.weight_without_symbol
        return self.weight


class _Params:
    """Request parameters with Binance's validation errors."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def text(self, name: str) -> str | None:
        """A parameter's value; absent and empty are both ``None`` (Binance: "empty/null")."""
        value = self._values.get(name)
        return value if value else None

    def present(self, name: str) -> bool:
        return name in self._values

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise _mandatory(name)
        return value

    def decimal(self, name: str) -> Decimal | None:
        value = self.text(name)
        if value is None:
            return None
        if len(value) > 40 or not _DECIMAL_RE.fullmatch(value):
            raise _mandatory(name)
        try:
            return Decimal(value)
        except InvalidOperation:
            raise _mandatory(name) from None

    def integer(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not _INT_RE.fullmatch(value):
            raise _mandatory(name)
        return int(value)

    def required_integer(self, name: str) -> int:
        value = self.integer(name)
        if value is None:
            raise _mandatory(name)
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise reject(ErrorCode.INVALID_PARAMETER, name)
        return lowered == "true"

    def member(self, name: str, cls: type[_E], error: SimRejection) -> _E | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return cls(value)
        except ValueError:
            raise error from None

    def order_id(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        if not _ORDER_ID_RE.fullmatch(value):
            raise _wire_error(
                WireCode.ILLEGAL_CHARS,
                f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
            )
        return str(int(value))


def _split_params(encoded: str) -> dict[str, str]:
    pairs = decode_params(encoded)
    seen: dict[str, str] = {}
    for key, value in pairs:
        if key in seen:
            raise _wire_error(WireCode.TOO_MANY_PARAMETERS)
        seen[key] = value
    return seen


# ---------------------------------------------------------------------------------------
# The user-data stream.


@attrs.define
class _ListenKey:
    key: str
    expires_at: float


@attrs.define(eq=False)
class _Stream:
    """One WebSocket connection of the user-data stream."""

    key: str
    events: frozenset[str] | None
    combined: bool
    channel: trio.MemorySendChannel[str]
    filter: StreamFilter | None = None
    generation: int = 0

    def accepts(self, event_type: str) -> bool:
        return self.events is None or event_type == "listenKeyExpired" or event_type in self.events

    def frame(self, payload: JsonObject) -> str:
        body = {"stream": self.key, "data": payload} if self.combined else payload
        return json.dumps(body, separators=(",", ":"))


@attrs.frozen
class _StreamTarget:
    key: str
    events: frozenset[str] | None
    combined: bool


def _stream_target(path: str, query: str) -> _StreamTarget | None:
    """Which listen key (and event filter) a WebSocket path asks for, if any."""
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    events_text = params.get("events")
    events = frozenset(e for e in events_text.split("/") if e) if events_text else None
    key: str | None = None
    combined = False
    for prefix in ("/ws/", "/private/ws/"):
        if path.startswith(prefix) and "/" not in path[len(prefix) :]:
            key = path[len(prefix) :]
    if path in ("/private/ws", "/ws"):
        key = params.get("listenKey")
    elif path == "/stream":
        key, combined = params.get("streams"), True
    elif path == "/private/stream":
        key, combined = params.get("listenKey"), True
    if key is None or not _LISTEN_KEY_RE.fullmatch(key):
        return None
    return _StreamTarget(key=key, events=events, combined=combined)


# ---------------------------------------------------------------------------------------
# Reads (current, or lagged by SNAPSHOT_LAG).


@attrs.frozen
class _Reads:
    """Where reads answer from: the engine now, or a lagged view at ``at``."""

    engine: SimEngine
    view: LaggedView | None = None
    at: float = 0.0

    def open_orders(self, symbol: str | None, *, algo: bool) -> tuple[SimOrder, ...]:
        if self.view is None:
            return self.engine.orders(symbol, open_only=True, algo=algo)
        orders = self.view.open_orders(self.engine, self.at, symbol)
        return tuple(o for o in orders if o.algo is algo)

    def positions(self) -> tuple[VenuePosition, ...]:
        if self.view is None:
            return self.engine.positions()
        return self.view.positions(self.engine, self.at)

    def balances(self) -> tuple[SimBalance, ...]:
        if self.view is None:
            return self.engine.balances()
        return self.view.balances(self.engine, self.at)

    def order_detail(
        self,
        symbol: str,
        *,
        order_id: str | None,
        client_order_id: str | None,
        algo: bool,
    ) -> SimOrder:
        if self.view is None:
            return self.engine.order_detail(
                symbol, order_id=order_id, client_order_id=client_order_id, algo=algo
            )
        return self.view.order_detail(
            self.engine,
            self.at,
            symbol,
            order_id=order_id,
            client_order_id=client_order_id,
            algo=algo,
        )


@attrs.frozen
class _Ctx:
    """What a handler gets besides its parameters."""

    now: float
    reads: _Reads


# ---------------------------------------------------------------------------------------
# The application.


class SimExchangeApp:
    """The simulated Binance USD-M exchange as an ASGI-3 application.

    Args:
        config: server configuration (credentials, symbols, seed, engine config, faults).
        clock: the injected clock (seconds); default ``trio.current_time`` (then the app
            must be built inside ``trio.run``). Read only through :class:`ServerClock`.
    """

    def __init__(
        self, config: SimServerConfig, *, clock: Callable[[], float] | None = None
    ) -> None:
        self._config = config
        engine_config = engine_config_for(config)
        self._clock = ServerClock(clock or trio.current_time, engine_config.start_time)
        self._engine = SimEngine(engine_config, random.Random(config.seed))
        self._key_rng = random.Random(f"listen-key:{config.seed}")
        self._faults = FaultState(
            config.faults,
            random.Random(f"faults:{config.seed}"),
            attrs.evolve(config.fault_defaults, epoch_offset=engine_config.epoch_offset),
            self._clock.now,
        )
        self._secret = config.api_secret.encode()
        self._format = WireFormat(engine_config.symbols, engine_config.asset)
        self._listen_key: _ListenKey | None = None
        self._streams: set[_Stream] = set()
        self._cursor = self._engine.last_event_seq
        self._algo_settings: dict[str, AlgoSettings] = {}
        self._leg_times: dict[tuple[str, PositionSide], int] = {}
        self._account_time_ms = 0
        self._admin = AdminApi(self, config.admin_token)
        self._routes = self._build_routes()
        self._observe(self._clock.now())

    # ------------------------------------------------------------------ public surface

    @property
    def config(self) -> SimServerConfig:
        """The server configuration."""
        return self._config

    @property
    def engine(self) -> SimEngine:
        """The ground-truth engine (tests read its history; do not call it concurrently)."""
        return self._engine

    @property
    def faults(self) -> FaultState:
        """The fault injector and its log."""
        return self._faults

    @property
    def wire_format(self) -> WireFormat:
        """The renderer of this exchange's records."""
        return self._format

    @property
    def listen_key(self) -> str | None:
        """The active listenKey, if any (admin and tests)."""
        return None if self._listen_key is None else self._listen_key.key

    @property
    def stream_count(self) -> int:
        """Open user-data stream connections."""
        return len(self._streams)

    def now(self) -> float:
        """The server's clock (engine seconds)."""
        return self._clock.now()

    def venue_time_ms(self) -> int:
        """Binance epoch milliseconds now (what ``/fapi/v1/time`` answers)."""
        return self._engine.venue_time_ms(self._clock.now())

    def tick(self) -> None:
        """Advance the engine to now, expire listen keys and push pending events."""
        self._sync()

    def advance(self, seconds: float) -> float:
        """Jump the clock forward by ``seconds`` and process everything due (admin, tests).

        Returns:
            The engine's clock afterwards.
        """
        self._clock.jump(seconds)
        self._sync()
        return self._engine.now

    def set_mark_price(self, symbol: str, price: Decimal) -> Quote:
        """Move ``symbol``'s mark (= mid) price now and push the resulting events.

        Raises:
            SimRejection: -1121 for an unknown symbol.
            CoreValueError: for a non-positive price.
        """
        now = self._sync()
        quote = self._engine.set_mark_price(symbol, price, now)
        self._pump(now)
        return quote

    def close_streams(self) -> None:
        """Close every user-data connection (shutdown)."""
        for stream in list(self._streams):
            self._drop(stream)

    async def run_ticker(self) -> None:
        """Tick every ``tick_interval_s`` until cancelled."""
        while True:
            await trio.sleep(self._config.tick_interval_s)
            self.tick()

    async def handle(self, request: HttpRequest) -> HttpResponse | None:
        """Answer one HTTP request; ``None`` means "never answer" (a timeout fault)."""
        if request.path == "/admin" or request.path.startswith("/admin/"):
            admin = self._admin.handle(
                AdminRequest(
                    method=request.method,
                    path=request.path,
                    query=request.query,
                    body=request.body,
                    authorization=request.header("authorization"),
                )
            )
            return HttpResponse.json(admin.status, admin.payload, admin.headers)
        if request.path.startswith("/fapi/"):
            return await self._handle_fapi(request)
        return HttpResponse(404, b"Not Found", content_type="text/plain")

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        """ASGI-3 entry point: ``lifespan``, ``http`` and ``websocket`` scopes."""
        kind = scope["type"]
        if kind == "http":
            await self._asgi_http(scope, receive, send)
        elif kind == "websocket":
            await self._asgi_websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._asgi_lifespan(receive, send)

    async def _asgi_lifespan(self, receive: _Receive, send: _Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close_streams()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _asgi_http(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        response = await self._read_and_handle(scope, receive)
        if response is None:
            # A timeout fault: the request was written, no answer ever comes. Hold the
            # connection until the client gives up.
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        headers = [
            (b"content-type", response.content_type.encode()),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers),
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _read_and_handle(self, scope: _Scope, receive: _Receive) -> HttpResponse | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return HttpResponse(400, b"", content_type="text/plain")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._config.max_body_bytes:
                return HttpResponse(413, b"Payload Too Large", content_type="text/plain")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        try:
            query = bytes(scope.get("query_string", b"")).decode("utf-8")
            body = b"".join(chunks).decode("utf-8")
        except UnicodeDecodeError:
            rej = _wire_error(WireCode.ILLEGAL_CHARS)
            return HttpResponse.json(400, error_body(rej.code, rej.message))
        request = HttpRequest(
            method=scope["method"], path=scope["path"], query=query, body=body, headers=headers
        )
        return await self.handle(request)

    async def _asgi_websocket(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        target = _stream_target(scope["path"], query)
        now = self._sync()
        refusal = self._refusal(target, now)
        if refusal is not None:
            await self._deny(scope, send, *refusal)
            return
        assert target is not None
        await send({"type": "websocket.accept"})
        send_channel, receive_channel = trio.open_memory_channel[str](self._config.stream_buffer)
        stream = _Stream(
            key=target.key,
            events=target.events,
            combined=target.combined,
            channel=send_channel,
        )
        self._attach_filter(stream, now)
        self._streams.add(stream)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ws_reader, receive, stream, nursery.cancel_scope)
                async with receive_channel:
                    async for text in receive_channel:
                        await send({"type": "websocket.send", "text": text})
                # The server closed this stream (key closed or expired, outage, overflow,
                # shutdown): say so with a close frame.
                await send({"type": "websocket.close", "code": 1000})
                nursery.cancel_scope.cancel()
        finally:
            self._streams.discard(stream)
            send_channel.close()

    def _refusal(self, target: _StreamTarget | None, now: float) -> tuple[int, JsonObject] | None:
        outage = self._faults.injector.stream_outage(now)
        if outage is not None and outage.kind is not FaultKind.LISTEN_KEY_EXPIRY:
            return 503, {"msg": "Service Unavailable."}
        if target is None or target.key != self.listen_key:
            return 400, error_body(
                int(WireCode.INVALID_LISTEN_KEY), _WIRE_MESSAGES[WireCode.INVALID_LISTEN_KEY]
            )
        return None

    @staticmethod
    async def _deny(scope: _Scope, send: _Send, status: int, payload: JsonObject) -> None:
        """Refuse a handshake with an HTTP answer (ASGI denial response if offered)."""
        if "websocket.http.response" in scope.get("extensions", {}):
            body = json.dumps(payload, separators=(",", ":")).encode()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            # Closing before accepting answers the handshake with HTTP 403.
            await send({"type": "websocket.close", "code": 1008})

    async def _ws_reader(self, receive: _Receive, stream: _Stream, scope: trio.CancelScope) -> None:
        """Read client frames until it disconnects; answer Binance's JSON requests."""
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                scope.cancel()
                return
            text = message.get("text")
            if not isinstance(text, str):
                continue
            reply = _ws_request_reply(text, stream)
            if reply is not None:
                self._offer(stream, reply)

    # ------------------------------------------------------------------ the engine clock

    def _sync(self) -> float:
        now = self._clock.now()
        self._engine.advance_to(now)
        self._check_fault_expiry(now)
        self._expire_listen_key(now)
        self._pump(now)
        return now

    def _observe(self, now: float) -> None:
        view = self._faults.view
        if view is not None:
            view.observe(self._engine, now)

    def _pump(self, now: float) -> None:
        """Deliver new engine events to every connection (through its fault filter)."""
        events = self._engine.events_since(self._cursor)
        if events:
            self._cursor = events[-1].seq
            for ev in events:
                self._book_keep(ev)
        self._observe(now)
        rendered: dict[int, JsonObject] = {}
        for stream in list(self._streams):
            if self._listen_key is None or stream.key != self._listen_key.key:
                continue
            self._attach_filter(stream, now)
            delivered: tuple[SimEvent, ...] = events
            if stream.filter is not None:
                step = stream.filter.poll(events, now)
                if step.disconnect is not None:
                    if step.disconnect.kind is FaultKind.LISTEN_KEY_EXPIRY:
                        self._offer(stream, stream.frame(self._expired_payload(stream.key, now)))
                    self._drop(stream)
                    continue
                delivered = step.events
            for ev in delivered:
                payload = rendered.get(ev.seq)
                if payload is None:
                    payload = self._format.event(ev, self._algo_settings_for)
                    rendered[ev.seq] = payload
                if stream.accepts(str(payload["e"])):
                    self._offer(stream, stream.frame(payload))

    def _attach_filter(self, stream: _Stream, now: float) -> None:
        """Give a connection a filter of the current injector.

        After a reschedule the old filter hands its held events over (a hold already
        decided and logged stands: they arrive at their release instants, not never).
        """
        if stream.filter is None:
            stream.filter = self._faults.injector.stream_filter(now)
        elif stream.generation != self._faults.generation:
            stream.filter = stream.filter.hand_over(self._faults.injector, now)
        stream.generation = self._faults.generation

    def _book_keep(self, ev: SimEvent) -> None:
        if isinstance(ev, AccountUpdate):
            self._account_time_ms = ev.transaction_time_ms
            for p in ev.positions:
                self._leg_times[(p.symbol, p.position_side)] = ev.transaction_time_ms

    def _algo_settings_for(self, algo_id: str) -> AlgoSettings:
        return self._algo_settings.get(algo_id, AlgoSettings())

    def _offer(self, stream: _Stream, text: str) -> None:
        try:
            stream.channel.send_nowait(text)
        except trio.WouldBlock:
            _log.warning("user stream connection too slow; closing it")
            self._drop(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._streams.discard(stream)

    def _drop(self, stream: _Stream) -> None:
        stream.channel.close()
        self._streams.discard(stream)

    # ------------------------------------------------------------------ listen keys

    def _expired_payload(self, key: str, at: float) -> JsonObject:
        return listen_key_expired(key, self._engine.venue_time_ms(at))

    def _check_fault_expiry(self, now: float) -> None:
        """LISTEN_KEY_EXPIRY: the injector killed the key; tell its connections and close them.

        The key stays dead (keepalive -1125) until a POST re-creates it.
        """
        self._faults.injector.stream_outage(now)  # opens the fault windows due at now
        lk = self._listen_key
        if lk is None or not self._faults.injector.listen_key_expired:
            return
        payload = self._expired_payload(lk.key, now)
        for stream in list(self._streams):
            if stream.key == lk.key:
                self._offer(stream, stream.frame(payload))
                self._drop(stream)
        self._listen_key = None

    def _expire_listen_key(self, now: float) -> None:
        lk = self._listen_key
        if lk is None or now < lk.expires_at:
            return
        # Binance: the socket may stay open, but no more user events arrive on it.
        payload = self._expired_payload(lk.key, lk.expires_at)
        for stream in list(self._streams):
            if stream.key == lk.key:
                self._offer(stream, stream.frame(payload))
        self._listen_key = None

    def _new_listen_key(self) -> str:
        return "".join(self._key_rng.choice(_LISTEN_KEY_CHARS) for _ in range(_LISTEN_KEY_LEN))

    def _check_listen_key_param(self, p: "_Params") -> _ListenKey:
        lk = self._listen_key
        sent = p.text("listenKey")
        if lk is None or (sent is not None and not hmac.compare_digest(sent, lk.key)):
            raise _wire_error(WireCode.INVALID_LISTEN_KEY)
        return lk

    def _listen_key_create(self, p: "_Params", ctx: _Ctx) -> object:
        now = ctx.now
        if self._faults.injector.listen_key_expired:
            # The fault killed the key: a POST re-creates it (a new key, as on Binance).
            self._faults.injector.renew_listen_key(now)
            if self._listen_key is not None:
                for stream in list(self._streams):
                    if stream.key == self._listen_key.key:
                        self._drop(stream)
                self._listen_key = None
        if self._listen_key is None:
            self._listen_key = _ListenKey(self._new_listen_key(), now)
        self._listen_key.expires_at = now + self._config.listen_key_ttl_s
        return {"listenKey": self._listen_key.key}

    def _listen_key_keepalive(self, p: "_Params", ctx: _Ctx) -> object:
        lk = self._check_listen_key_param(p)
        lk.expires_at = ctx.now + self._config.listen_key_ttl_s
        return {"listenKey": lk.key}

    def _listen_key_close(self, p: "_Params", ctx: _Ctx) -> object:
        lk = self._check_listen_key_param(p)
        for stream in list(self._streams):
            if stream.key == lk.key:
                self._drop(stream)
        self._listen_key = None
        return {}

    # ------------------------------------------------------------------ the /fapi pipeline

    def _build_routes(self) -> dict[tuple[str, str], "_Route"]:
        signed, user_stream, public = _Security.SIGNED, _Security.USER_STREAM, _Security.NONE
        r = _Route
        return {
            ("GET", "/fapi/v1/ping"): r(public, 1, "time", lambda p, ctx: {}),
            ("GET", "/fapi/v1/time"): r(public, 1, "time", self._time),
            ("GET", "/fapi/v1/exchangeInfo"): r(public, 1, "exchange_info", self._exchange_info),
            ("GET", "/fapi/v1/premiumIndex"): r(public, 1, "mark_price", self._premium_index, 10),
            ("POST", "/fapi/v1/order"): r(signed, 0, "create", self._new_order, order_count=True),
            ("GET", "/fapi/v1/order"): r(signed, 1, "query", self._query_order),
            ("DELETE", "/fapi/v1/order"): r(signed, 1, "cancel", self._cancel_order),
            ("GET", "/fapi/v1/openOrder"): r(signed, 1, "query", self._query_open_order),
            ("GET", "/fapi/v1/openOrders"): r(signed, 1, "open_orders", self._open_orders, 40),
            ("GET", "/fapi/v1/allOrders"): r(signed, 5, "query", self._all_orders),
            ("DELETE", "/fapi/v1/allOpenOrders"): r(signed, 1, "cancel", self._cancel_all),
            ("POST", "/fapi/v1/algoOrder"): r(
                signed, 0, "create", self._new_algo_order, order_count=True
            ),
            ("GET", "/fapi/v1/algoOrder"): r(signed, 1, "query", self._query_algo_order),
            ("DELETE", "/fapi/v1/algoOrder"): r(signed, 1, "cancel", self._cancel_algo_order),
            ("GET", "/fapi/v1/openAlgoOrders"): r(
                signed, 1, "open_orders", self._open_algo_orders, 40
            ),
            ("GET", "/fapi/v1/allAlgoOrders"): r(signed, 5, "query", self._all_algo_orders),
            ("DELETE", "/fapi/v1/algoOpenOrders"): r(signed, 1, "cancel", self._cancel_all_algo),
            ("GET", "/fapi/v1/userTrades"): r(signed, 5, "user_trades", self._user_trades),
            ("GET", "/fapi/v2/positionRisk"): r(signed, 5, "positions", self._position_risk_v2),
            ("GET", "/fapi/v3/positionRisk"): r(signed, 5, "positions", self._position_risk_v3),
            ("GET", "/fapi/v2/balance"): r(signed, 5, "balances", self._balance),
            ("GET", "/fapi/v3/balance"): r(signed, 5, "balances", self._balance),
            ("GET", "/fapi/v2/account"): r(signed, 5, "balances", self._account_v2),
            ("GET", "/fapi/v3/account"): r(signed, 5, "balances", self._account_v3),
            ("POST", "/fapi/v1/leverage"): r(signed, 1, "leverage", self._leverage),
            ("POST", "/fapi/v1/countdownCancelAll"): r(signed, 10, "countdown", self._countdown),
            ("GET", "/fapi/v1/positionSide/dual"): r(
                signed, 30, "leverage", self._get_position_mode
            ),
            ("POST", "/fapi/v1/positionSide/dual"): r(
                signed, 1, "leverage", self._set_position_mode
            ),
            ("POST", "/fapi/v1/listenKey"): r(
                user_stream, 1, "listen_key", self._listen_key_create
            ),
            ("PUT", "/fapi/v1/listenKey"): r(
                user_stream, 1, "keepalive", self._listen_key_keepalive
            ),
            ("DELETE", "/fapi/v1/listenKey"): r(
                user_stream, 1, "listen_key", self._listen_key_close
            ),
        }

    async def _handle_fapi(self, request: HttpRequest) -> HttpResponse | None:
        now = self._sync()
        route = self._routes.get((request.method, request.path))
        if route is None:
            if any(path == request.path for _method, path in self._routes):
                return HttpResponse(405, b"Method Not Allowed", content_type="text/plain")
            return HttpResponse(404, b"Not Found", content_type="text/plain")
        try:
            params = self._params(request)
        except SimRejection as rej:
            return self._answer(now, route, error_body(rej.code, rej.message), rej.http_status)
        fault = self._faults.injector.before_request(route.operation, params.text("symbol"), now)
        if fault is None:
            return self._execute(route, request, params, now)
        response: HttpResponse | None = None
        if fault.execute:
            if fault.prefill is not None:
                self._prefill(request, params, fault, now)
            response = self._execute(route, request, params, now)
        if fault.answer is Answer.TIMEOUT:
            return None  # the client's own timeout decides when it gives up
        if fault.delay_s > 0:
            await trio.sleep(fault.delay_s)
            self._sync()
        if fault.answer is Answer.ERROR:
            assert fault.error is not None
            return self._fault_answer(now, route, fault.error)
        assert response is not None  # NORMAL answers come with execute=True
        return response

    def _prefill(
        self, request: HttpRequest, params: "_Params", fault: RequestFault, now: float
    ) -> None:
        """FILL_AFTER_CANCEL: run the market through the order the cancel names."""
        assert fault.prefill is not None
        order_id: str | None
        client_order_id: str | None
        try:
            if request.path == "/fapi/v1/algoOrder":
                algo_id, client_id = self._ids(params, "algoId", "clientAlgoId")
                found = self._find_algo(algo_id, client_id)
                if found is None:
                    return
                symbol, order_id, client_order_id, algo = found.symbol, found.order_id, None, True
            elif request.path == "/fapi/v1/order":
                symbol = params.required("symbol")
                order_id, client_order_id = self._ids(params, "orderId", "origClientOrderId")
                algo = False
            else:
                return  # cancel-all names no single order to race
        except SimRejection:
            return  # the cancel itself will answer the malformed request
        fill_before_cancel(
            self._engine,
            symbol,
            order_id=order_id,
            client_order_id=client_order_id,
            algo=algo,
            now=now,
            mode=fault.prefill,
        )

    def _fault_answer(self, now: float, route: "_Route", error: FaultError) -> HttpResponse:
        extra: tuple[tuple[str, str], ...] = ()
        if error.retry_after_s is not None:
            extra = (("Retry-After", str(max(1, math.ceil(error.retry_after_s)))),)
        return self._answer(now, route, error.body(), error.http_status, extra)

    def _execute(
        self, route: "_Route", request: HttpRequest, params: "_Params", now: float
    ) -> HttpResponse:
        """Weight, authentication, handler: the fault-free pipeline."""
        extra: tuple[tuple[str, str], ...] = ()
        try:
            self._engine.check_rate(RateKind.REQUEST_WEIGHT, now, route.cost(params))
            self._authenticate(route.security, request, params)
            payload = route.handler(params, _Ctx(now=now, reads=self._reads(route, now)))
            status = 200
        except SimRejection as rej:
            payload, status = error_body(rej.code, rej.message), rej.http_status
            extra = _retry_after(rej)
        except CoreValueError as exc:
            invalid = reject(ErrorCode.INVALID_PARAMETER, exc.field)
            payload, status = error_body(invalid.code, invalid.message), 400
        self._pump(now)
        return self._answer(now, route, payload, status, extra)

    def _reads(self, route: "_Route", now: float) -> _Reads:
        view = self._faults.view
        if view is None or route.operation not in _LAGGABLE:
            return _Reads(self._engine)
        lag = self._faults.injector.rest_lag(route.operation, now)
        return _Reads(self._engine, view, now - lag) if lag > 0 else _Reads(self._engine)

    def _answer(
        self,
        now: float,
        route: "_Route",
        payload: object,
        status: int,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> HttpResponse:
        usage = self._engine.rate_usage(now)
        headers = [("X-MBX-USED-WEIGHT-1M", str(usage.used_weight_1m))]
        if route.order_count:
            headers.append(("X-MBX-ORDER-COUNT-10S", str(usage.order_count_10s)))
            headers.append(("X-MBX-ORDER-COUNT-1M", str(usage.order_count_1m)))
        return HttpResponse.json(status, payload, (*headers, *extra))

    @staticmethod
    def _params(request: HttpRequest) -> "_Params":
        merged = _split_params(request.body)
        merged.update(_split_params(request.query))  # the query string wins (Binance's rule)
        return _Params(merged)

    def _authenticate(self, security: "_Security", request: HttpRequest, params: "_Params") -> None:
        if security is _Security.NONE:
            return
        key = request.header("x-mbx-apikey")
        if not key:
            raise _wire_error(WireCode.BAD_API_KEY_FMT, status=401)
        if not hmac.compare_digest(key.encode(), self._config.api_key.encode()):
            raise _wire_error(WireCode.REJECTED_MBX_KEY, status=401)
        if security is _Security.USER_STREAM:
            return
        if not params.present("signature"):
            raise _mandatory("signature")
        if not verify_signature(request.query, request.body, self._secret):
            raise _wire_error(WireCode.INVALID_SIGNATURE)
        timestamp = params.integer("timestamp")
        if timestamp is None:
            raise _mandatory("timestamp")
        recv_window = params.integer("recvWindow")
        if recv_window is None:
            recv_window = _DEFAULT_RECV_WINDOW_MS
        if recv_window > MAX_RECV_WINDOW_MS:
            raise _wire_error(WireCode.BAD_RECV_WINDOW)
        if recv_window <= 0:
            raise reject(ErrorCode.INVALID_PARAMETER, "recvWindow")
        server_ms = self._engine.venue_time_ms()
        if timestamp >= server_ms + _FUTURE_TOLERANCE_MS:
            raise _wire_error(WireCode.INVALID_TIMESTAMP, _AHEAD_MESSAGE)
        if server_ms - timestamp > recv_window:
            raise _wire_error(WireCode.INVALID_TIMESTAMP)

    # ------------------------------------------------------------------ public endpoints

    def _time(self, p: "_Params", ctx: _Ctx) -> object:
        return {"serverTime": self._engine.venue_time_ms()}

    def _exchange_info(self, p: "_Params", ctx: _Ctx) -> object:
        return self._format.exchange_info(self._engine.exchange_info())

    def _premium_index(self, p: "_Params", ctx: _Ctx) -> object:
        time_ms = self._engine.venue_time_ms()
        symbol = p.text("symbol")
        if symbol is not None:
            # engine.mark_price is -1121 "Invalid symbol." for a symbol it does not list.
            return self._format.premium_index(symbol, self._engine.mark_price(symbol), time_ms)
        return [
            self._format.premium_index(s.symbol, self._engine.mark_price(s.symbol), time_ms)
            for s in self._engine.config.symbols
        ]

    # ------------------------------------------------------------------ orders

    @staticmethod
    def _order_request(p: "_Params", *, algo: bool) -> OrderRequest:
        symbol = p.required("symbol")
        side = p.member("side", Side, _wire_error(WireCode.INVALID_SIDE))
        if side is None:
            raise _mandatory("side")
        order_type = p.member("type", OrderType, reject(ErrorCode.INVALID_ORDER_TYPE))
        if order_type is None:
            raise _mandatory("type")
        position_side = p.member(
            "positionSide", PositionSide, _wire_error(WireCode.INVALID_POSITION_SIDE)
        )
        tif = p.member("timeInForce", TimeInForce, _wire_error(WireCode.INVALID_TIF))
        id_key = "clientAlgoId" if algo else "newClientOrderId"
        if p.present(id_key) and p.text(id_key) is None:
            raise _wire_error(WireCode.EMPTY_NEW_CL_ORD_ID)
        price_match = p.text("priceMatch")
        if price_match not in (None, "NONE"):
            raise reject(ErrorCode.UNSUPPORTED_OPERATION)
        return OrderRequest(
            symbol=symbol,
            side=side,
            order_type=order_type,
            client_order_id=p.text(id_key) or "",
            quantity=p.decimal("quantity"),
            price=p.decimal("price"),
            stop_price=p.decimal("triggerPrice" if algo else "stopPrice"),
            time_in_force=tif,
            reduce_only=bool(p.boolean("reduceOnly")),
            close_position=bool(p.boolean("closePosition")),
            position_side=position_side or PositionSide.BOTH,
        )

    def _new_order(self, p: "_Params", ctx: _Ctx) -> object:
        req = self._order_request(p, algo=False)
        resp_type = p.text("newOrderRespType") or "ACK"
        if resp_type not in ("ACK", "RESULT"):
            raise _wire_error(WireCode.INVALID_NEW_ORDER_RESP_TYPE)
        placed = self._engine.create_order(req, ctx.now, route=OrderRoute.ORDER)
        order = self._engine.order_detail(req.symbol, order_id=placed.order_id, algo=False)
        if resp_type == "ACK":
            # ACK answers at acceptance: status NEW, nothing executed yet (reference §3).
            order = attrs.evolve(
                order,
                status=VenueOrderStatus.NEW,
                filled_qty=ZERO,
                cum_quote=ZERO,
                update_time_ms=order.create_time_ms,
            )
        return self._format.order(order, OrderShape.NEW)

    @staticmethod
    def _ids(p: "_Params", id_key: str, client_key: str) -> tuple[str | None, str | None]:
        order_id = p.order_id(id_key)
        client_id = p.text(client_key)
        if order_id is None and client_id is None:
            raise SimRejection(
                int(ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
                f"Param '{id_key}' or '{client_key}' must be sent, but both were empty/null!",
            )
        return order_id, client_id

    def _lookup(self, p: "_Params", ctx: _Ctx) -> SimOrder:
        symbol = p.required("symbol")
        order_id, client_id = self._ids(p, "orderId", "origClientOrderId")
        return ctx.reads.order_detail(
            symbol, order_id=order_id, client_order_id=client_id, algo=False
        )

    def _query_order(self, p: "_Params", ctx: _Ctx) -> object:
        order = self._lookup(p, ctx)
        if not self._retained(order):
            raise reject(ErrorCode.NO_SUCH_ORDER)
        return self._format.order(order, OrderShape.QUERY)

    def _query_open_order(self, p: "_Params", ctx: _Ctx) -> object:
        order = self._lookup(p, ctx)
        if not order.is_open:
            raise reject(ErrorCode.NO_SUCH_ORDER)
        return self._format.order(order, OrderShape.QUERY)

    def _cancel_order(self, p: "_Params", ctx: _Ctx) -> object:
        symbol = p.required("symbol")
        order_id, client_id = self._ids(p, "orderId", "origClientOrderId")
        canceled = self._engine.cancel_order(
            symbol, order_id=order_id, client_order_id=client_id, now=ctx.now, algo=False
        )
        order = self._engine.order_detail(symbol, order_id=canceled.order_id, algo=False)
        return self._format.order(order, OrderShape.CANCEL)

    def _open_orders(self, p: "_Params", ctx: _Ctx) -> object:
        orders = ctx.reads.open_orders(p.text("symbol"), algo=False)
        return [self._format.order(o, OrderShape.QUERY) for o in orders]

    def _all_orders(self, p: "_Params", ctx: _Ctx) -> object:
        selected = self._history_window(
            self._engine.orders(p.required("symbol"), algo=False), p, id_key="orderId"
        )
        return [self._format.order(o, OrderShape.QUERY) for o in selected]

    def _history_window(
        self, orders: tuple[SimOrder, ...], p: "_Params", *, id_key: str
    ) -> list[SimOrder]:
        """``allOrders`` semantics: retention, then id/time filters, then the limit."""
        limit = _limit(p, 500)
        from_id = p.order_id(id_key)
        start, end = p.integer("startTime"), p.integer("endTime")
        selected = [
            o
            for o in orders
            if self._retained(o)
            and (from_id is None or int(o.order_id) >= int(from_id))
            and (start is None or o.create_time_ms >= start)
            and (end is None or o.create_time_ms <= end)
        ]
        return selected[:limit] if from_id is not None or start is not None else selected[-limit:]

    def _retained(self, order: SimOrder) -> bool:
        """Binance's query retention (reference §4), as the engine applies it."""
        if order.is_open:
            return True
        cfg = self._engine.config
        age_s = (self._engine.venue_time_ms() - order.create_time_ms) / 1000
        if age_s > cfg.retention_all_s:
            return False
        unfilled = order.filled_qty == 0 and order.status in (
            VenueOrderStatus.CANCELED,
            VenueOrderStatus.EXPIRED,
        )
        return not (unfilled and age_s > cfg.retention_closed_unfilled_s)

    def _cancel_all(self, p: "_Params", ctx: _Ctx) -> object:
        self._engine.cancel_all_orders(p.required("symbol"), ctx.now)
        return {"code": 200, "msg": _CANCEL_ALL_DONE}

    # ------------------------------------------------------------------ algo orders

    def _new_algo_order(self, p: "_Params", ctx: _Ctx) -> object:
        algo_type = p.text("algoType")
        if algo_type is None:
            raise _mandatory("algoType")
        if algo_type != "CONDITIONAL":
            raise reject(ErrorCode.INVALID_PARAMETER, "algoType")
        working_type = p.text("workingType") or "CONTRACT_PRICE"
        if working_type not in _WORKING_TYPES:
            raise _wire_error(WireCode.INVALID_WORKING_TYPE)
        settings = AlgoSettings(
            working_type=working_type, price_protect=bool(p.boolean("priceProtect"))
        )
        req = self._order_request(p, algo=True)
        placed = self._engine.create_order(req, ctx.now, route=OrderRoute.ALGO)
        self._algo_settings[placed.order_id] = settings
        order = self._engine.order_detail(req.symbol, order_id=placed.order_id, algo=True)
        return self._format.algo_order(order, settings)

    def _find_algo(self, algo_id: str | None, client_algo_id: str | None) -> SimOrder | None:
        """Algo endpoints take no symbol: search every symbol (open first, then newest)."""
        candidates = [
            o
            for o in self._engine.orders(algo=True)
            if (algo_id is not None and o.order_id == algo_id)
            or (algo_id is None and o.client_order_id == client_algo_id)
        ]
        if not candidates:
            return None
        open_ones = [o for o in candidates if o.is_open]
        return max(open_ones or candidates, key=lambda o: int(o.order_id))

    def _query_algo_order(self, p: "_Params", ctx: _Ctx) -> object:
        algo_id, client_id = self._ids(p, "algoId", "clientAlgoId")
        found = self._find_algo(algo_id, client_id)
        if found is None or not self._retained(found):
            raise reject(ErrorCode.NO_SUCH_ORDER)
        order = ctx.reads.order_detail(
            found.symbol, order_id=found.order_id, client_order_id=None, algo=True
        )
        return self._format.algo_order(order, self._algo_settings_for(order.order_id))

    def _cancel_algo_order(self, p: "_Params", ctx: _Ctx) -> object:
        algo_id, client_id = self._ids(p, "algoId", "clientAlgoId")
        found = self._find_algo(algo_id, client_id)
        if found is None:
            raise reject(ErrorCode.CANCEL_REJECTED)
        self._engine.cancel_order(found.symbol, order_id=found.order_id, now=ctx.now, algo=True)
        return self._format.algo_cancel(found)

    def _open_algo_orders(self, p: "_Params", ctx: _Ctx) -> object:
        orders = ctx.reads.open_orders(p.text("symbol"), algo=True)
        return [self._format.algo_order(o, self._algo_settings_for(o.order_id)) for o in orders]

    def _all_algo_orders(self, p: "_Params", ctx: _Ctx) -> object:
        selected = self._history_window(
            self._engine.orders(p.required("symbol"), algo=True), p, id_key="algoId"
        )
        return [self._format.algo_order(o, self._algo_settings_for(o.order_id)) for o in selected]

    def _cancel_all_algo(self, p: "_Params", ctx: _Ctx) -> object:
        self._engine.cancel_all_orders(p.required("symbol"), ctx.now, algo=True)
        return {"code": 200, "msg": _CANCEL_ALL_DONE}

    # ------------------------------------------------------------------ trades and account

    def _user_trades(self, p: "_Params", ctx: _Ctx) -> object:
        symbol = p.required("symbol")
        limit = _limit(p, 500)
        from_id = p.order_id("fromId")
        order_id = p.order_id("orderId")
        start, end = p.integer("startTime"), p.integer("endTime")
        if from_id is not None and (start is not None or end is not None):
            raise _wire_error(WireCode.OPTIONAL_PARAMS_BAD_COMBO)
        if start is None and end is None:
            fills = self._engine.user_trades(
                symbol, from_trade_id=from_id, limit=limit, order_id=order_id
            )
        else:
            self._engine.mark_price(symbol)  # -1121 for an unknown symbol
            window = [
                f
                for f in self._engine.history.fills(symbol)
                if (order_id is None or f.order_id == order_id)
                and (start is None or f.venue_time_ms >= start)
                and (end is None or f.venue_time_ms <= end)
            ]
            fills = tuple(window[:limit] if start is not None else window[-limit:])
        return [self._format.user_trade(f) for f in fills]

    def _position_views(
        self, ctx: _Ctx, symbol: str | None, *, active_only: bool
    ) -> list[PositionView]:
        if symbol is not None:
            self._engine.mark_price(symbol)  # -1121 for an unknown symbol
        specs = {s.symbol: s for s in self._engine.config.symbols}
        open_symbols = {o.symbol for o in self._engine.orders(open_only=True)}
        views = []
        for pos in ctx.reads.positions():
            if symbol is not None and pos.symbol != symbol:
                continue
            if active_only and pos.quantity == 0 and pos.symbol not in open_symbols:
                continue
            views.append(
                PositionView(
                    position=pos,
                    mark_price=self._engine.mark_price(pos.symbol),
                    max_notional=specs[pos.symbol].max_position_notional,
                    update_time_ms=self._leg_times.get((pos.symbol, pos.position_side), 0),
                )
            )
        return views

    def _position_risk_v2(self, p: "_Params", ctx: _Ctx) -> object:
        views = self._position_views(ctx, p.text("symbol"), active_only=False)
        return [self._format.position_v2(v) for v in views]

    def _position_risk_v3(self, p: "_Params", ctx: _Ctx) -> object:
        views = self._position_views(ctx, p.text("symbol"), active_only=True)
        return [self._format.position_v3(v) for v in views]

    def _balance(self, p: "_Params", ctx: _Ctx) -> object:
        return [self._format.balance(b, self._account_time_ms) for b in ctx.reads.balances()]

    def _account(self, ctx: _Ctx, version: int) -> object:
        balance = ctx.reads.balances()[0]
        views = self._position_views(ctx, None, active_only=version == 3)
        return self._format.account(balance, views, self._account_time_ms, version=version)

    def _account_v2(self, p: "_Params", ctx: _Ctx) -> object:
        return self._account(ctx, 2)

    def _account_v3(self, p: "_Params", ctx: _Ctx) -> object:
        return self._account(ctx, 3)

    # ------------------------------------------------------------------ settings

    def _leverage(self, p: "_Params", ctx: _Ctx) -> object:
        symbol = p.required("symbol")
        change = self._engine.set_leverage(symbol, p.required_integer("leverage"), ctx.now)
        return {
            "leverage": change.leverage,
            "maxNotionalValue": format(change.max_notional_value.normalize(), "f"),
            "symbol": change.symbol,
        }

    def _countdown(self, p: "_Params", ctx: _Ctx) -> object:
        symbol = p.required("symbol")
        state = self._engine.countdown_cancel_all(
            symbol, p.required_integer("countdownTime"), ctx.now
        )
        return {"symbol": state.symbol, "countdownTime": str(state.countdown_ms)}

    def _get_position_mode(self, p: "_Params", ctx: _Ctx) -> object:
        return {"dualSidePosition": self._engine.position_mode is PositionMode.HEDGE}

    def _set_position_mode(self, p: "_Params", ctx: _Ctx) -> object:
        hedge = p.boolean("dualSidePosition")
        if hedge is None:
            raise _mandatory("dualSidePosition")
        mode = PositionMode.HEDGE if hedge else PositionMode.ONE_WAY
        self._engine.set_position_mode(mode, ctx.now)
        return {"code": 200, "msg": "success"}


def _limit(p: _Params, default: int) -> int:
    limit = p.integer("limit")
    if limit is None:
        return default
    if not 1 <= limit <= 1000:
        raise reject(ErrorCode.INVALID_PARAMETER, "limit")
    return limit


def _retry_after(rej: SimRejection) -> tuple[tuple[str, str], ...]:
    if rej.retry_after is None:
        return ()
    return (("Retry-After", str(max(1, math.ceil(rej.retry_after)))),)


def _ws_request_reply(text: str, stream: _Stream) -> str | None:
    """Answer a client's JSON request on the stream (``{"method": ..., "id": ...}``)."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or "id" not in message:
        return None
    result: object = [stream.key] if message.get("method") == "LIST_SUBSCRIPTIONS" else None
    return json.dumps({"result": result, "id": message["id"]}, separators=(",", ":"))


# ---------------------------------------------------------------------------------------
# Serving.


@attrs.frozen(eq=False)
class SimServerHandle:
    """What :func:`serve_sim_exchange` reports once it listens.

    Attributes:
        host, port: where it listens (the real port when the config asked for 0).
        rest_url: base URL for REST clients (``http://127.0.0.1:<port>``).
        ws_url: user-stream base; append ``/<listenKey>`` (ccxt's testnet layout).
        private_ws_url: the ``/private/ws`` base of the post-2026-03 layout.
        admin_url: base of the admin surface (bearer token).
        app: the application, for in-process access to the engine (tests).
    """

    host: str
    port: int
    rest_url: str
    ws_url: str
    private_ws_url: str
    admin_url: str
    app: SimExchangeApp = attrs.field(repr=False)
    _stop_event: trio.Event = attrs.field(repr=False, alias="stop_event")

    @property
    def engine(self) -> SimEngine:
        """The ground-truth engine."""
        return self.app.engine

    def stop(self) -> None:
        """Close every stream and shut the server down gracefully."""
        self.app.close_streams()
        self._stop_event.set()


async def serve_sim_exchange(
    config: SimServerConfig,
    *,
    clock: Callable[[], float] | None = None,
    task_status: trio.TaskStatus[SimServerHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the simulated exchange until cancelled or :meth:`SimServerHandle.stop`.

    Use with ``handle = await nursery.start(serve_sim_exchange, config)``; the handle
    carries the bound port and the base URLs.

    Args:
        config: the server configuration.
        clock: the injected clock (default ``trio.current_time``).
        task_status: reports the :class:`SimServerHandle` once the socket listens.
    """
    app = SimExchangeApp(config, clock=clock)
    host = bind_address(config.host)
    stop_event = trio.Event()

    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(
            functools.partial(
                serve_asgi,
                app,
                host=config.host,
                port=config.port,
                graceful_timeout_s=config.graceful_timeout_s,
                errorlog=_log,
                shutdown_trigger=stop_event.wait,
                then_cancel=nursery.cancel_scope,
            )
        )
        nursery.start_soon(app.run_ticker)
        base = f"{host}:{port}"
        task_status.started(
            SimServerHandle(
                host=config.host,
                port=port,
                rest_url=f"http://{base}",
                ws_url=f"ws://{base}/ws",
                private_ws_url=f"ws://{base}/private/ws",
                admin_url=f"http://{base}/admin",
                app=app,
                stop_event=stop_event,
            )
        )
