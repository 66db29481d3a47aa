"""Binance USD-M REST responses into core records, with one error type for bad input.

Theory of operation
-------------------

Everything Binance sends is *evidence* (I4): it is parsed into the venue-neutral records
of :mod:`scalper.core.model` (``VenueOrder``, ``Fill``, ``VenuePosition``) plus a few
records defined here for what the core has no word for (algo orders, balances, symbol
rules, rate limits). Reconciliation, belief and orphan logic never see raw JSON.

Parsing is strict about what the layer *depends on* and lenient about what it ignores:

* **One error type.** Any malformed input (wrong type, missing key, unparseable number,
  non-JSON bytes, absurd magnitude) raises :class:`MalformedMessage` and nothing else; every
  public parser is wrapped so that a stray ``KeyError``/``TypeError``/``InvalidOperation``
  cannot escape. The error names the *path* of the bad field (``positions[3].positionAmt``)
  and carries a short, redacted excerpt of the message, so the journal says what was wrong
  without ever storing a listen key or signature.
* **Decimal, never float.** Prices and quantities become ``Decimal``. ``NaN``, ``Infinity``,
  empty strings, ``"1_000"``-style Python-isms, whitespace and magnitudes beyond
  ``1e±30`` are rejected: Binance never sends them, so seeing one means corruption.
  JSON numbers are accepted too (via their shortest text form) because some fields are
  numbers on the wire (``adl``, ``leverage`` in one response, ``notional`` filters).
* **Ids and times** are integers on the live wire and digit strings in some captured
  fixtures; both are accepted, bounded to 63 bits. Ids become ``str`` in records.
* **Zero means unset** for ``price``, ``stopPrice`` and ``avgPrice`` (Binance writes ``"0"``
  for a market order's price): such fields become ``None``.
* **Unknown extra keys are ignored**; Binance adds fields without notice. Unknown *values*
  of enums the layer reasons about (side, status, position side, order type) are
  malformed, except the documented extras mapped below.

Documented extras and their mapping:

* order type ``LIQUIDATION`` maps to ``OrderType.LIMIT`` (liquidation orders are IOC limit
  orders at the bankruptcy price); the stream record flags the order's origin separately.
* time in force ``RPI`` and ``GTE_GTC`` have no core equivalent and map to ``None``.
* legacy statuses ``NEW_INSURANCE`` and ``NEW_ADL`` map to ``NEW``.
* algo statuses map to order statuses by whether the conditional order can still act:
  ``NEW``/``TRIGGERING``/``TRIGGERED`` are open, ``FINISHED`` is ``FILLED`` when the
  matching-engine quantity is fully executed and ``CANCELED`` otherwise; the raw algo status
  is kept on :class:`AlgoOrder`.

Parsers take an already decoded JSON value (:func:`loads` decodes bytes with the same
guarantees: ``NaN``/``Infinity`` literals rejected, floats decoded as ``Decimal``).
"""

import enum
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, Final, ParamSpec, TypeVar

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.model import (
    INTERVAL_SECONDS,
    Balance,
    ExchangeInfo,
    Fill,
    RateLimit,
    SymbolRules,
    VenueOrder,
    VenueOrderStatus,
    VenuePosition,
)
from scalper.core.types import ZERO, OrderType, PositionMode, PositionSide, Side, TimeInForce

__all__ = [
    "MAX_DECIMAL_CHARS",
    "MAX_DECIMAL_EXPONENT",
    "MAX_EXCERPT_CHARS",
    "ORDER_TYPE_ALIASES",
    "STATUS_ALIASES",
    "TIF_ALIASES",
    "AccountInfo",
    "AlgoCancelAck",
    "AlgoOrder",
    "AlgoStatus",
    "Balance",
    "CodeAck",
    "CountdownAck",
    "ExchangeInfo",
    "JsonValue",
    "LeverageChange",
    "MalformedMessage",
    "MarkPrice",
    "RateLimit",
    "Reader",
    "SymbolRules",
    "VenueErrorBody",
    "algo_order_from",
    "algo_to_order_status",
    "check_fill_bounds",
    "excerpt",
    "iter_objects",
    "loads",
    "order_from",
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
    "parse_server_time",
    "parse_user_trades",
    "position_from",
    "wrap_malformed",
]

#: A decoded JSON value (what :func:`loads` returns and every parser accepts).
JsonValue = Any

#: Longest numeric string accepted; Binance's longest are ~20 characters.
MAX_DECIMAL_CHARS: Final = 64
#: Largest accepted |adjusted exponent| of a decimal (1e30 USDT is not a price).
MAX_DECIMAL_EXPONENT: Final = 30
#: Longest excerpt of a bad message kept in a MalformedMessage.
MAX_EXCERPT_CHARS: Final = 240

_MAX_INT: Final = 2**63 - 1
_DECIMAL_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_INT_RE = re.compile(r"^-?\d{1,19}$")
_SECRET_KEYS = frozenset({"listenkey", "signature", "apikey", "secret", "secretkey"})
_SECRET_TEXT_RE = re.compile(
    r"""(?P<k>["']?(?:listenKey|signature|apiKey|secret|secretKey)["']?\s*[:=]\s*["']?)"""
    r"""[^"'&\s,}]+""",
    re.IGNORECASE,
)
_SUCCESS_CODES = frozenset({0, 200})


class MalformedMessage(CoreValueError):  # noqa: N818 - the name the issue and callers use
    """A venue message that does not have the shape or values the protocol promises.

    The only exception any parser in this package raises.

    Attributes:
        field: dotted path of the offending field (``o.q``, ``[2].positionAmt``), or
            ``<message>`` when the whole value is wrong.
        reason: what was wrong, without the path.
        excerpt: a truncated, redacted rendering of the message (no listen keys,
            signatures or API keys).
    """

    def __init__(self, path: str, reason: str, excerpt: str = "") -> None:
        super().__init__(path or "<message>", reason)
        self.excerpt = excerpt

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} [in {self.excerpt}]" if self.excerpt else base


def _redact(value: JsonValue, depth: int = 0) -> JsonValue:
    if depth > 8:
        return "…"
    if isinstance(value, Mapping):
        return {
            str(k): "<redacted>" if str(k).lower() in _SECRET_KEYS else _redact(v, depth + 1)
            for k, v in list(value.items())[:32]
        }
    if isinstance(value, list | tuple):
        return [_redact(v, depth + 1) for v in list(value)[:16]]
    return value


def excerpt(value: object, limit: int = MAX_EXCERPT_CHARS) -> str:
    """Render ``value`` (JSON or raw text) short and secret-free, for error messages."""
    try:
        if isinstance(value, bytes | bytearray):
            text = bytes(value[: limit * 4]).decode("utf-8", errors="replace")
        elif isinstance(value, str):
            text = value[: limit * 4]
        else:
            text = json.dumps(_redact(value), default=str, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = f"<unrenderable {type(value).__name__}>"
    text = _SECRET_TEXT_RE.sub(lambda m: f"{m.group('k')}<redacted>", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_P = ParamSpec("_P")
_R = TypeVar("_R")
_E = TypeVar("_E", bound=enum.Enum)

# What a parser bug or hostile input can raise from inside the standard library; each
# becomes a MalformedMessage at the public boundary.
_WRAPPED = (
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
    ArithmeticError,
    RecursionError,
    UnicodeError,
)


def wrap_malformed(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a parser so that only :class:`MalformedMessage` can escape it."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except MalformedMessage:
            raise
        except _WRAPPED as exc:
            raw = args[0] if args else None
            raise MalformedMessage(
                "<message>", f"unparseable ({type(exc).__name__})", excerpt(raw)
            ) from exc

    return wrapper


def _reject_constant(name: str) -> Any:
    raise MalformedMessage("<message>", f"JSON constant {name} is not allowed")


@wrap_malformed
def loads(data: str | bytes | bytearray) -> JsonValue:
    """Decode JSON text or bytes; floats become ``Decimal``, ``NaN``/``Infinity`` rejected.

    Raises:
        MalformedMessage: on anything that is not strict JSON.
    """
    if not isinstance(data, str | bytes | bytearray):
        raise MalformedMessage("<message>", f"expected JSON text, got {type(data).__name__}")
    try:
        return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
    except MalformedMessage as exc:
        raise MalformedMessage(exc.field, exc.reason, excerpt(data)) from None
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(
            "<message>", f"not JSON ({type(exc).__name__})", excerpt(data)
        ) from None


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Reader:
    """A JSON object under parse, which knows its path and its root for error messages.

    Each accessor either returns a well-typed value or raises :class:`MalformedMessage`
    naming ``path.key``. Optional accessors treat an absent key, ``null`` and ``""`` as
    absent (Binance writes ``""`` for unset algo fields).
    """

    __slots__ = ("_obj", "_path", "_root")

    def __init__(self, value: JsonValue, path: str = "", root: JsonValue = None) -> None:
        self._root = value if root is None else root
        self._path = path
        if not isinstance(value, Mapping):
            raise self.error("", f"expected an object, got {_type_name(value)}")
        self._obj: Mapping[str, JsonValue] = value

    @property
    def path(self) -> str:
        """Where this object sits in the message."""
        return self._path

    @property
    def mapping(self) -> Mapping[str, JsonValue]:
        """The underlying JSON object (for keys this reader has no accessor for)."""
        return self._obj

    def error(self, key: str | int, reason: str) -> MalformedMessage:
        """A MalformedMessage for ``key`` under this object."""
        path = _join(self._path, key) if key != "" else self._path
        return MalformedMessage(path, reason, excerpt(self._root))

    def has(self, key: str) -> bool:
        """True if ``key`` is present and not null or empty."""
        return self._obj.get(key) not in (None, "")

    def raw(self, key: str) -> JsonValue:
        """The raw value of a required key."""
        if key not in self._obj:
            raise self.error(key, "missing")
        return self._obj[key]

    def sub(self, key: str) -> "Reader":
        """The nested object under ``key``."""
        return Reader(self.raw(key), _join(self._path, key), self._root)

    def items(self, key: str, *, optional: bool = False) -> Iterator["Reader"]:
        """Readers for each object in the array under ``key``."""
        if optional and self._obj.get(key) is None:
            return iter(())
        return iter_objects(self.raw(key), _join(self._path, key), self._root)

    def string(self, key: str) -> str:
        """A required non-empty string."""
        value = self.raw(key)
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {_type_name(value)}")
        return value

    def opt_string(self, key: str) -> str | None:
        """An optional string (absent, null or empty give ``None``)."""
        value = self._obj.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_type_name(value)}")
        return value

    def dec(self, key: str, *, signed: bool = False) -> Decimal:
        """A required finite decimal; non-negative unless ``signed``."""
        return _to_decimal(self.raw(key), signed=signed, err=lambda r: self.error(key, r))

    def opt_dec(self, key: str, *, signed: bool = False) -> Decimal | None:
        """An optional decimal (absent, null or empty give ``None``)."""
        value = self._obj.get(key)
        if value is None or value == "":
            return None
        return _to_decimal(value, signed=signed, err=lambda r: self.error(key, r))

    def nonzero_dec(self, key: str) -> Decimal | None:
        """An optional non-negative decimal where zero means unset (prices, stop prices)."""
        value = self.opt_dec(key)
        return None if value is None or value == ZERO else value

    def integer(self, key: str, *, minimum: int = 0) -> int:
        """A required integer (JSON number or digit string) in ``minimum..2**63-1``."""
        return _to_int(self.raw(key), minimum=minimum, err=lambda r: self.error(key, r))

    def opt_integer(self, key: str, *, minimum: int = 0) -> int | None:
        """An optional integer (absent, null or empty give ``None``)."""
        value = self._obj.get(key)
        if value is None or value == "":
            return None
        return _to_int(value, minimum=minimum, err=lambda r: self.error(key, r))

    def ident(self, key: str) -> str:
        """A required non-negative integer id, as a string."""
        return str(self.integer(key))

    def boolean(self, key: str, default: bool | None = None) -> bool:
        """A boolean (JSON bool or ``"true"``/``"false"``); ``default`` if absent."""
        value = self._obj.get(key)
        if value is None and default is not None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if value is None:
            raise self.error(key, "missing")
        raise self.error(key, f"expected a boolean, got {_type_name(value)}")

    def enum(self, key: str, cls: type[_E], aliases: Mapping[str, _E] | None = None) -> _E:
        """A required enum member by its wire value (plus documented ``aliases``)."""
        value = self.raw(key)
        return _to_enum(value, cls, aliases, err=lambda r: self.error(key, r))

    def opt_enum(
        self, key: str, cls: type[_E], aliases: Mapping[str, _E | None] | None = None
    ) -> _E | None:
        """An optional enum member; ``aliases`` may map a documented value to ``None``."""
        value = self._obj.get(key)
        if value is None or value == "":
            return None
        if aliases is not None and isinstance(value, str) and value in aliases:
            return aliases[value]
        return _to_enum(value, cls, None, err=lambda r: self.error(key, r))


def iter_objects(value: JsonValue, path: str, root: JsonValue = None) -> Iterator[Reader]:
    """Readers over a JSON array of objects, each with its indexed path."""
    root = value if root is None else root
    if not isinstance(value, list):
        raise MalformedMessage(path, f"expected an array, got {_type_name(value)}", excerpt(root))
    return (Reader(item, _join(path, i), root) for i, item in enumerate(value))


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "empty string" if not value else f"string {excerpt(value, 24)!r}"
    if isinstance(value, int | float | Decimal):
        return f"number {excerpt(str(value), 24)}"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _to_decimal(
    value: JsonValue, *, signed: bool, err: Callable[[str], MalformedMessage]
) -> Decimal:
    if isinstance(value, bool):
        raise err("expected a decimal, got boolean")
    if isinstance(value, str):
        if len(value) > MAX_DECIMAL_CHARS or not _DECIMAL_RE.match(value):
            raise err(f"expected a decimal string, got {_type_name(value)}")
        result = Decimal(value)
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        if abs(value) > 10**MAX_DECIMAL_EXPONENT:
            raise err("number out of range")
        result = Decimal(value)
    elif isinstance(value, float):
        # repr() is the shortest text that round-trips, which is what the sender wrote.
        text = repr(value)
        if not _DECIMAL_RE.match(text):
            raise err(f"expected a finite number, got {text}")
        result = Decimal(text)
    else:
        raise err(f"expected a decimal, got {_type_name(value)}")
    if not result.is_finite():
        raise err("decimal must be finite")
    if result.is_zero():
        return abs(result)
    if abs(result.adjusted()) > MAX_DECIMAL_EXPONENT:
        raise err("decimal magnitude out of range")
    if not signed and result < 0:
        raise err(f"must not be negative, got {result}")
    return result


def _to_int(value: JsonValue, *, minimum: int, err: Callable[[str], MalformedMessage]) -> int:
    if isinstance(value, bool):
        raise err("expected an integer, got boolean")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str) and _INT_RE.match(value):
        result = int(value)
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        if abs(value.adjusted()) > 19:
            raise err("integer out of range")
        result = int(value)
    else:
        raise err(f"expected an integer, got {_type_name(value)}")
    if not minimum <= result <= _MAX_INT:
        raise err(f"integer out of range {minimum}..2**63-1, got {excerpt(str(result), 24)}")
    return result


def _to_enum(
    value: JsonValue,
    cls: type[_E],
    aliases: Mapping[str, _E] | None,
    *,
    err: Callable[[str], MalformedMessage],
) -> _E:
    if not isinstance(value, str):
        raise err(f"expected a {cls.__name__} string, got {_type_name(value)}")
    if aliases is not None and value in aliases:
        return aliases[value]
    try:
        return cls(value)
    except ValueError:
        raise err(f"unknown {cls.__name__} {excerpt(value, 32)!r}") from None


# ---------------------------------------------------------------------------------------
# Enum mappings shared with the stream parser.

ORDER_TYPE_ALIASES: Final[Mapping[str, OrderType]] = {"LIQUIDATION": OrderType.LIMIT}
TIF_ALIASES: Final[Mapping[str, TimeInForce | None]] = {"RPI": None, "GTE_GTC": None}
STATUS_ALIASES: Final[Mapping[str, VenueOrderStatus]] = {
    "NEW_INSURANCE": VenueOrderStatus.NEW,
    "NEW_ADL": VenueOrderStatus.NEW,
}


class AlgoStatus(enum.StrEnum):
    """Status of a conditional order in Binance's algo service."""

    NEW = "NEW"
    TRIGGERING = "TRIGGERING"
    TRIGGERED = "TRIGGERED"
    FINISHED = "FINISHED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        """True while the conditional order can still cause an execution."""
        return self in (AlgoStatus.NEW, AlgoStatus.TRIGGERING, AlgoStatus.TRIGGERED)


def algo_to_order_status(
    status: AlgoStatus, quantity: Decimal, executed: Decimal, close_position: bool
) -> VenueOrderStatus:
    """Map an algo status onto the order status the core reasons with (see module doc)."""
    if status.is_open:
        return VenueOrderStatus.PARTIALLY_FILLED if executed > 0 else VenueOrderStatus.NEW
    if status is AlgoStatus.FINISHED:
        fully = executed > 0 if close_position or quantity == 0 else executed >= quantity
        return VenueOrderStatus.FILLED if fully else VenueOrderStatus.CANCELED
    return {
        AlgoStatus.CANCELED: VenueOrderStatus.CANCELED,
        AlgoStatus.REJECTED: VenueOrderStatus.REJECTED,
        AlgoStatus.EXPIRED: VenueOrderStatus.EXPIRED,
    }[status]


def check_fill_bounds(
    r: Reader, qty_key: str, filled_key: str, qty: Decimal, filled: Decimal, close_position: bool
) -> None:
    """Reject a report whose cumulative fill exceeds its quantity (corrupt arithmetic)."""
    if not close_position and qty > 0 and filled > qty:
        raise r.error(filled_key, f"filled {filled} exceeds {qty_key} {qty}")


# ---------------------------------------------------------------------------------------
# Records defined here (the core has no word for them).


@attrs.frozen
class AlgoOrder:
    """A conditional order in Binance's algo service, as the core sees it.

    ``order`` uses the algo id as ``order_id`` and the client algo id as
    ``client_order_id``; ``actual_order_id`` is the matching-engine order created when it
    triggered (``None`` before).

    ``execution_known`` says whether the venue reported the matching-engine executed
    quantity (``aq`` / ``executedQty``). When it did not, a ``FINISHED`` algo order maps to
    ``CANCELED`` with zero fill *by convention*, which must not be read as "did not
    execute": the outcome lives on ``actual_order_id`` (query it; its fills are keyed there).
    ``CANCELED`` is the conservative reading for protection logic: it leads to re-checking
    the position and re-protecting it, never to assuming it was closed.
    """

    order: VenueOrder
    algo_status: AlgoStatus
    execution_known: bool = False
    actual_order_id: str | None = None
    trigger_time_ms: int = 0
    reject_reason: str | None = None
    working_type: str | None = None
    activate_price: Decimal | None = None
    callback_rate: Decimal | None = None


@attrs.frozen
class AlgoCancelAck:
    """Binance's reply to a successful algo-order cancel."""

    algo_id: str
    client_algo_id: str


@attrs.frozen
class AccountInfo:
    """``GET /fapi/v3/account``: totals, per-asset balances and open positions.

    v3 positions carry no entry price or leverage; those fields keep the record defaults.
    """

    total_wallet_balance: Decimal
    total_unrealized_pnl: Decimal
    total_margin_balance: Decimal
    available_balance: Decimal
    max_withdraw_amount: Decimal
    balances: tuple[Balance, ...] = ()
    positions: tuple[VenuePosition, ...] = ()


@attrs.frozen
class LeverageChange:
    """Reply to ``POST /fapi/v1/leverage``."""

    symbol: str
    leverage: int
    max_notional: Decimal | None = None


@attrs.frozen
class CountdownAck:
    """Reply to ``POST /fapi/v1/countdownCancelAll`` (the dead-man switch)."""

    symbol: str
    countdown_ms: int


@attrs.frozen
class CodeAck:
    """A ``{"code": 200, "msg": ...}`` success reply (cancel-all, position mode, ...)."""

    code: int
    msg: str


@attrs.frozen
class MarkPrice:
    """``GET /fapi/v1/premiumIndex``: one symbol's mark price and funding state.

    Only ``symbol`` and ``mark_price`` are relied on (strategies price entries from the
    mark, which is also what liquidation and ``workingType=MARK_PRICE`` triggers use); the
    other fields are informational and ``None`` when Binance leaves them out.

    Attributes:
        symbol: the venue symbol.
        mark_price: the mark price, always positive.
        index_price: the spot index the mark is anchored to.
        estimated_settle_price: only meaningful in the last hour before a settlement.
        last_funding_rate: the latest funding rate (signed; a fraction, not percent).
        interest_rate: the interest component of funding (signed fraction).
        next_funding_time_ms: the next funding instant, epoch ms (0 for delivery contracts).
        time_ms: when the venue computed these values, epoch ms.
    """

    symbol: str
    mark_price: Decimal
    index_price: Decimal | None = None
    estimated_settle_price: Decimal | None = None
    last_funding_rate: Decimal | None = None
    interest_rate: Decimal | None = None
    next_funding_time_ms: int | None = None
    time_ms: int | None = None


@attrs.frozen
class VenueErrorBody:
    """A ``{"code": <negative>, "msg": ...}`` error body, top-level or inside a batch."""

    code: int
    msg: str


# ---------------------------------------------------------------------------------------
# Orders.


def order_from(r: Reader) -> VenueOrder:
    """Build a VenueOrder from one REST order object (new, query, cancel, open orders)."""
    close_position = r.boolean("closePosition", default=False)
    qty = r.dec("origQty")
    filled = r.dec("executedQty")
    check_fill_bounds(r, "origQty", "executedQty", qty, filled, close_position)
    order_type = r.enum("type", OrderType, ORDER_TYPE_ALIASES)
    stop_price = (
        None if order_type is OrderType.TRAILING_STOP_MARKET else r.nonzero_dec("stopPrice")
    )
    time_ms = r.opt_integer("updateTime")
    if time_ms is None:
        time_ms = r.opt_integer("time") or 0
    return VenueOrder(
        symbol=r.string("symbol"),
        order_id=r.ident("orderId"),
        client_order_id=r.string("clientOrderId"),
        side=r.enum("side", Side),
        order_type=order_type,
        status=r.enum("status", VenueOrderStatus, STATUS_ALIASES),
        quantity=qty,
        filled_qty=filled,
        price=r.nonzero_dec("price"),
        stop_price=stop_price,
        avg_price=r.nonzero_dec("avgPrice"),
        time_in_force=r.opt_enum("timeInForce", TimeInForce, TIF_ALIASES),
        reduce_only=r.boolean("reduceOnly", default=False),
        close_position=close_position,
        position_side=r.opt_enum("positionSide", PositionSide) or PositionSide.BOTH,
        venue_time_ms=time_ms,
    )


@wrap_malformed
def parse_order(raw: JsonValue) -> VenueOrder:
    """Parse one order object (``POST/GET/DELETE /fapi/v1/order``, ``openOrder``)."""
    return order_from(Reader(raw))


@wrap_malformed
def parse_orders(raw: JsonValue) -> tuple[VenueOrder, ...]:
    """Parse an array of orders (``GET /fapi/v1/openOrders``, ``allOrders``)."""
    return tuple(order_from(r) for r in iter_objects(raw, ""))


def algo_order_from(r: Reader) -> AlgoOrder:
    """Build an AlgoOrder from one REST algo-order object."""
    status = r.enum("algoStatus", AlgoStatus)
    close_position = r.boolean("closePosition", default=False)
    qty = r.opt_dec("quantity") or ZERO
    reported = r.opt_dec("executedQty")
    executed = reported or ZERO
    check_fill_bounds(r, "quantity", "executedQty", qty, executed, close_position)
    order_type = r.enum("orderType", OrderType)
    if not order_type.is_conditional:
        raise r.error("orderType", f"{order_type} is not a conditional type")
    order = VenueOrder(
        symbol=r.string("symbol"),
        order_id=r.ident("algoId"),
        client_order_id=r.string("clientAlgoId"),
        side=r.enum("side", Side),
        order_type=order_type,
        status=algo_to_order_status(status, qty, executed, close_position),
        quantity=qty,
        filled_qty=executed,
        price=r.nonzero_dec("price"),
        stop_price=r.nonzero_dec("triggerPrice"),
        avg_price=r.nonzero_dec("avgPrice") or r.nonzero_dec("actualPrice"),
        time_in_force=r.opt_enum("timeInForce", TimeInForce, TIF_ALIASES),
        reduce_only=r.boolean("reduceOnly", default=False),
        close_position=close_position,
        position_side=r.opt_enum("positionSide", PositionSide) or PositionSide.BOTH,
        venue_time_ms=r.opt_integer("updateTime") or r.opt_integer("createTime") or 0,
    )
    return AlgoOrder(
        order=order,
        algo_status=status,
        execution_known=reported is not None,
        actual_order_id=_opt_id(r.opt_integer("actualOrderId")),
        trigger_time_ms=r.opt_integer("triggerTime") or 0,
        reject_reason=None,
        working_type=r.opt_string("workingType"),
        activate_price=r.nonzero_dec("activatePrice"),
        callback_rate=r.nonzero_dec("callbackRate"),
    )


def _opt_id(value: int | None) -> str | None:
    return None if value is None else str(value)


@wrap_malformed
def parse_algo_order(raw: JsonValue) -> AlgoOrder:
    """Parse one algo order (``POST/GET /fapi/v1/algoOrder``)."""
    return algo_order_from(Reader(raw))


@wrap_malformed
def parse_algo_orders(raw: JsonValue) -> tuple[AlgoOrder, ...]:
    """Parse an array of algo orders (``GET /fapi/v1/openAlgoOrders``, ``allAlgoOrders``)."""
    return tuple(algo_order_from(r) for r in iter_objects(raw, ""))


@wrap_malformed
def parse_algo_cancel(raw: JsonValue) -> AlgoCancelAck:
    """Parse the reply to ``DELETE /fapi/v1/algoOrder``."""
    r = Reader(raw)
    if "code" in r.mapping:
        _success_code(r)
    return AlgoCancelAck(algo_id=r.ident("algoId"), client_algo_id=r.string("clientAlgoId"))


@wrap_malformed
def parse_batch_orders(raw: JsonValue) -> tuple[VenueOrder | VenueErrorBody, ...]:
    """Parse a batch reply: per item, in input order, an order or an error body.

    HTTP 200 does not mean every item succeeded; callers must look at each item.
    """
    out: list[VenueOrder | VenueErrorBody] = []
    for r in iter_objects(raw, ""):
        body = parse_error_body(r.mapping)
        out.append(body if body is not None else order_from(r))
    return tuple(out)


# ---------------------------------------------------------------------------------------
# Positions, balances, account.


def position_from(r: Reader, *, amount_key: str = "positionAmt") -> VenuePosition:
    """Build a VenuePosition from a positionRisk (v2/v3) or account-v3 position object."""
    leverage = r.opt_integer("leverage", minimum=1)
    return VenuePosition(
        symbol=r.string("symbol"),
        quantity=r.dec(amount_key, signed=True),
        entry_price=r.opt_dec("entryPrice") or ZERO,
        position_side=r.opt_enum("positionSide", PositionSide) or PositionSide.BOTH,
        unrealized_pnl=_first_signed(r, "unRealizedProfit", "unrealizedProfit"),
        leverage=leverage if leverage is not None else 1,
        venue_time_ms=r.opt_integer("updateTime") or 0,
    )


def _first_signed(r: Reader, *keys: str) -> Decimal:
    for key in keys:
        value = r.opt_dec(key, signed=True)
        if value is not None:
            return value
    return ZERO


@wrap_malformed
def parse_positions(raw: JsonValue) -> tuple[VenuePosition, ...]:
    """Parse ``GET /fapi/v2/positionRisk`` or ``/fapi/v3/positionRisk``.

    v2 lists every symbol, zero positions included; v3 only symbols with a position or open
    orders. Hedge mode gives one entry per LONG and SHORT leg (a short leg is negative).
    """
    return tuple(position_from(r) for r in iter_objects(raw, ""))


def _balance_from(r: Reader) -> Balance:
    wallet = r.opt_dec("walletBalance", signed=True)
    if wallet is None:
        wallet = r.dec("balance", signed=True)
    return Balance(
        asset=r.string("asset"),
        wallet_balance=wallet,
        available_balance=r.dec("availableBalance", signed=True),
        cross_wallet_balance=r.opt_dec("crossWalletBalance", signed=True) or ZERO,
        unrealized_pnl=_first_signed(r, "unrealizedProfit", "crossUnPnl"),
        margin_balance=r.opt_dec("marginBalance", signed=True),
        max_withdraw_amount=r.opt_dec("maxWithdrawAmount", signed=True),
        venue_time_ms=r.opt_integer("updateTime") or 0,
    )


@wrap_malformed
def parse_balances(raw: JsonValue) -> tuple[Balance, ...]:
    """Parse ``GET /fapi/v2/balance`` or ``/fapi/v3/balance``."""
    return tuple(_balance_from(r) for r in iter_objects(raw, ""))


@wrap_malformed
def parse_account(raw: JsonValue) -> AccountInfo:
    """Parse ``GET /fapi/v3/account`` (or v2, whose extra fields are ignored)."""
    r = Reader(raw)
    return AccountInfo(
        total_wallet_balance=r.dec("totalWalletBalance", signed=True),
        total_unrealized_pnl=r.dec("totalUnrealizedProfit", signed=True),
        total_margin_balance=r.dec("totalMarginBalance", signed=True),
        available_balance=r.dec("availableBalance", signed=True),
        max_withdraw_amount=r.dec("maxWithdrawAmount", signed=True),
        balances=tuple(_balance_from(a) for a in r.items("assets", optional=True)),
        positions=tuple(position_from(p) for p in r.items("positions", optional=True)),
    )


# ---------------------------------------------------------------------------------------
# Trades.


def _trade_from(r: Reader) -> Fill:
    return Fill(
        symbol=r.string("symbol"),
        trade_id=r.ident("id"),
        order_id=r.ident("orderId"),
        # userTrades carries no client order id: consumers join on order_id.
        client_order_id="",
        side=r.enum("side", Side),
        quantity=_positive(r, "qty"),
        price=_positive(r, "price"),
        fee=r.opt_dec("commission", signed=True) or ZERO,
        fee_asset=r.opt_string("commissionAsset") or "USDT",
        realized_pnl=r.opt_dec("realizedPnl", signed=True) or ZERO,
        position_side=r.opt_enum("positionSide", PositionSide) or PositionSide.BOTH,
        maker=r.boolean("maker", default=False),
        venue_time_ms=r.integer("time"),
    )


def _positive(r: Reader, key: str) -> Decimal:
    value = r.dec(key)
    if value == ZERO:
        raise r.error(key, "must be positive for an execution")
    return value


@wrap_malformed
def parse_user_trades(raw: JsonValue) -> tuple[Fill, ...]:
    """Parse ``GET /fapi/v1/userTrades`` into fills (``client_order_id`` is ``""``)."""
    return tuple(_trade_from(r) for r in iter_objects(raw, ""))


# ---------------------------------------------------------------------------------------
# Exchange info.


def _filters(r: Reader) -> dict[str, Reader]:
    out: dict[str, Reader] = {}
    for f in r.items("filters"):
        out[f.string("filterType")] = f
    return out


def _symbol_rules(r: Reader) -> SymbolRules:
    filters = _filters(r)
    price = filters.get("PRICE_FILTER")
    lot = filters.get("LOT_SIZE")
    if price is None:
        raise r.error("filters", "PRICE_FILTER missing")
    if lot is None:
        raise r.error("filters", "LOT_SIZE missing")
    market = filters.get("MARKET_LOT_SIZE")
    notional = filters.get("MIN_NOTIONAL")
    max_orders = filters.get("MAX_NUM_ORDERS")
    max_algo = filters.get("MAX_NUM_ALGO_ORDERS")
    percent = filters.get("PERCENT_PRICE")
    return SymbolRules(
        symbol=r.string("symbol"),
        status=r.string("status"),
        base_asset=r.string("baseAsset"),
        quote_asset=r.string("quoteAsset"),
        margin_asset=r.opt_string("marginAsset") or r.string("quoteAsset"),
        tick_size=price.dec("tickSize"),
        min_price=price.dec("minPrice"),
        max_price=price.dec("maxPrice"),
        step_size=lot.dec("stepSize"),
        min_qty=lot.dec("minQty"),
        max_qty=lot.dec("maxQty"),
        market_step_size=market.dec("stepSize") if market else None,
        market_min_qty=market.dec("minQty") if market else None,
        market_max_qty=market.dec("maxQty") if market else None,
        min_notional=notional.dec("notional") if notional else None,
        max_num_orders=max_orders.integer("limit") if max_orders else None,
        max_num_algo_orders=max_algo.integer("limit") if max_algo else None,
        percent_price_up=percent.dec("multiplierUp") if percent else None,
        percent_price_down=percent.dec("multiplierDown") if percent else None,
        contract_type=r.opt_string("contractType"),
        order_types=_str_list(r, "orderTypes"),
        time_in_force=_str_list(r, "timeInForce"),
    )


def _str_list(r: Reader, key: str) -> tuple[str, ...]:
    value = r.mapping.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise r.error(key, "expected an array of strings")
    return tuple(value)


def _rate_limit(r: Reader) -> RateLimit:
    interval = r.string("interval")
    if interval not in INTERVAL_SECONDS:
        raise r.error("interval", f"unknown interval {excerpt(interval, 16)!r}")
    return RateLimit(
        rate_limit_type=r.string("rateLimitType"),
        interval=interval,
        interval_num=r.integer("intervalNum", minimum=1),
        limit=r.integer("limit", minimum=1),
    )


@wrap_malformed
def parse_exchange_info(raw: JsonValue) -> ExchangeInfo:
    """Parse ``GET /fapi/v1/exchangeInfo`` into rate limits and symbol rules."""
    r = Reader(raw)
    return ExchangeInfo(
        rate_limits=tuple(_rate_limit(x) for x in r.items("rateLimits")),
        symbols=tuple(_symbol_rules(s) for s in r.items("symbols")),
        server_time_ms=r.opt_integer("serverTime") or 0,
    )


# ---------------------------------------------------------------------------------------
# Market data.


def _mark_price_from(r: Reader) -> MarkPrice:
    mark = r.dec("markPrice")
    if mark == ZERO:
        # A zero mark would price every entry at nothing and every stop at the floor.
        raise r.error("markPrice", "must be positive")
    return MarkPrice(
        symbol=r.string("symbol"),
        mark_price=mark,
        index_price=r.opt_dec("indexPrice"),
        estimated_settle_price=r.opt_dec("estimatedSettlePrice"),
        last_funding_rate=r.opt_dec("lastFundingRate", signed=True),
        interest_rate=r.opt_dec("interestRate", signed=True),
        next_funding_time_ms=r.opt_integer("nextFundingTime"),
        time_ms=r.opt_integer("time"),
    )


@wrap_malformed
def parse_mark_price(raw: JsonValue) -> MarkPrice:
    """Parse ``GET /fapi/v1/premiumIndex?symbol=...`` (one object) into a :class:`MarkPrice`."""
    return _mark_price_from(Reader(raw))


@wrap_malformed
def parse_mark_prices(raw: JsonValue) -> tuple[MarkPrice, ...]:
    """Parse ``GET /fapi/v1/premiumIndex`` without a symbol (an array, one per symbol)."""
    return tuple(_mark_price_from(r) for r in iter_objects(raw, ""))


# ---------------------------------------------------------------------------------------
# Small replies.


@wrap_malformed
def parse_server_time(raw: JsonValue) -> int:
    """Parse ``GET /fapi/v1/time`` into the server's epoch milliseconds."""
    return Reader(raw).integer("serverTime", minimum=1)


@wrap_malformed
def parse_listen_key(raw: JsonValue) -> str:
    """Parse the reply to ``POST``/``PUT /fapi/v1/listenKey`` into the key."""
    return Reader(raw).string("listenKey")


@wrap_malformed
def parse_leverage(raw: JsonValue) -> LeverageChange:
    """Parse the reply to ``POST /fapi/v1/leverage``."""
    r = Reader(raw)
    return LeverageChange(
        symbol=r.string("symbol"),
        leverage=r.integer("leverage", minimum=1),
        max_notional=r.opt_dec("maxNotionalValue"),
    )


@wrap_malformed
def parse_countdown(raw: JsonValue) -> CountdownAck:
    """Parse the reply to ``POST /fapi/v1/countdownCancelAll``."""
    r = Reader(raw)
    return CountdownAck(symbol=r.string("symbol"), countdown_ms=r.integer("countdownTime"))


def _success_code(r: Reader) -> int:
    code = r.integer("code", minimum=-(2**31))
    if code not in _SUCCESS_CODES:
        raise r.error("code", f"{code} is not a success code (check parse_error_body first)")
    return code


@wrap_malformed
def parse_code_ack(raw: JsonValue) -> CodeAck:
    """Parse a ``{"code": 200, "msg": ...}`` success reply."""
    r = Reader(raw)
    return CodeAck(code=_success_code(r), msg=r.opt_string("msg") or "")


@wrap_malformed
def parse_position_mode(raw: JsonValue) -> PositionMode:
    """Parse ``GET /fapi/v1/positionSide/dual`` (``dualSidePosition``) into a mode."""
    hedge = Reader(raw).boolean("dualSidePosition")
    return PositionMode.HEDGE if hedge else PositionMode.ONE_WAY


def parse_error_body(raw: JsonValue) -> VenueErrorBody | None:
    """Return the error body in ``raw``, or ``None`` if ``raw`` is not an error body.

    An error body is an object with an integer (or digit-string) ``code`` other than the
    success codes 0 and 200. Never raises: this is a classifier, not a validator.
    """
    if not isinstance(raw, Mapping) or "code" not in raw:
        return None
    code = raw.get("code")
    if isinstance(code, bool):
        return None
    if isinstance(code, str) and _INT_RE.match(code):
        code = int(code)
    if not isinstance(code, int) or code in _SUCCESS_CODES or abs(code) > 2**31:
        return None
    msg = raw.get("msg")
    return VenueErrorBody(code=code, msg=excerpt(msg, 300) if isinstance(msg, str) else "")
