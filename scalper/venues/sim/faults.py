"""Seeded, scheduled fault injection around the simulated exchange.

Theory of operation
-------------------

The engine (:mod:`scalper.venues.sim.engine`) never lies: what it answers is what happened.
Real exchanges answer late, twice, wrongly or not at all, and scalper's guarantees (I3, I4,
I7, I10) are only worth something if they hold under exactly those answers. This module
decides *when* and *how* the simulated exchange misbehaves; the two front ends (the
in-process venue and the loopback server) carry the decisions out. Every decision is a pure
function of the schedule, the injected ``random.Random`` and the sequence of calls: same
seed, same schedule, same calls, same faults, byte for byte.

**A schedule is plain data**: a tuple of :class:`FaultSpec`, each a half-open window
``[start, end)`` on the injected clock, a :class:`FaultKind`, kind-specific ``params``, a
``probability`` and optional ``operations`` / ``symbols`` filters. :meth:`FaultSpec.to_dict`
and :meth:`FaultSpec.from_dict` round-trip through JSON so a chaos run can print the
schedule that broke it and a test can replay it. A spec never fires outside its window.

API summary (what a front end calls)
------------------------------------

``injector = FaultInjector(schedule, rng, config=FaultConfig(epoch_offset=engine_epoch))``

Requests. Before handing a request to the engine, call
``fault = injector.before_request(op, symbol, now)`` with ``op`` from :data:`OPERATIONS`
(``create``, ``cancel``, ``query``, ``open_orders``, ``positions``, ``balances``,
``user_trades``, ``exchange_info``, ``time``, ``mark_price``, ``leverage``, ``countdown``,
``listen_key`` for POST/DELETE ``listenKey``, ``keepalive`` for PUT ``listenKey``). ``None``: serve the
request normally. Otherwise a :class:`RequestFault` says, in this order:

1. ``fault.execute``: apply the request to the engine (or not). For FILL_AFTER_CANCEL,
   first call :func:`fill_before_cancel` with ``fault.prefill``, then the engine's cancel.
2. ``fault.delay_s``: wait this long (virtual time) before answering / timing out.
3. ``fault.answer``: :attr:`Answer.NORMAL` (send the engine's own answer, success or
   rejection), :attr:`Answer.ERROR` (send ``fault.error`` instead: HTTP status, Binance code
   or ``None`` for a body without one, exact message, ``Retry-After`` seconds), or
   :attr:`Answer.TIMEOUT` (send nothing: the client times out after writing the request).

Reads that may lag: ``lag = injector.rest_lag(op, now)``; if ``lag > 0`` answer from a
:class:`LaggedView` (``view.open_orders(engine, now - lag, symbol)`` and friends). The
front end owns the view and calls ``view.observe(engine, now)`` once at start, then after
every engine call and every stream poll (create it with ``LaggedView(injector.max_lag_s)``
when that is > 0).

Listen key. Call ``injector.renew_listen_key(now)`` whenever a ``listen_key`` POST is
executed. While a LISTEN_KEY_EXPIRY has fired and no renewal happened, ``keepalive``
requests get -1125 from :meth:`FaultInjector.before_request`.

User stream. Refuse or drop connections while ``injector.stream_outage(now)`` is not
``None``. Per connection: ``flt = injector.stream_filter(now)`` at connect, then on every
poll ``step = flt.poll(engine.events_since(cursor), now)`` (the events produced since the
previous poll, in order) and deliver ``step.events``. If ``step.disconnect`` is set, the
connection is over: send ``listenKeyExpired`` first if ``step.disconnect.kind`` is
LISTEN_KEY_EXPIRY, close the socket and stop polling this filter; events produced after
``step.disconnect.since`` may never have reached the client (it must reconnect and
backfill over REST). A new connection starts from the engine's newest event: Binance does
not replay. When the schedule is replaced under a live connection, continue it with
``flt = flt.hand_over(new_injector, now)``: events the old filter holds stay in flight
until their release instants (nothing is lost or sped up by a schedule change).

Journal. ``injector.injected`` lists every :class:`InjectedFault` (``at``, ``kind``, ``op``,
``symbol``, ``detail``, ``spec_index``) in the order they were injected.

Fault kinds and what they mean (codes and texts from ``reference/binance_usdm.md`` §6-7)
----------------------------------------------------------------------------------------

Request faults (``operations`` defaults to every operation, or to ``cancel`` for the two
cancel kinds; ``symbols`` restricts to requests that name one of them):

========================  ==================================================================
DROP_REQUEST              Lost before the engine: nothing executed; the client times out
                          after ``timeout_s`` having written the request (AMBIGUOUS).
LOSE_RESPONSE             Executed; the answer is lost; the client times out (AMBIGUOUS).
UNKNOWN_503_PLACED        Executed, then HTTP 503 -1000 "Unknown error, please check your
                          request or try again later." (the reference gives the text, not
                          the code; -1000 is Binance's UNKNOWN code).
UNKNOWN_503_NOT_PLACED    The same answer, nothing executed.
ERROR_1006                HTTP 503 -1006 "An unexpected response was received from the
                          message bus. Execution status unknown."; executed iff
                          ``executed`` (default False).
ERROR_1007                HTTP 408 -1007 "Timeout waiting for response from backend server.
                          Send status unknown; execution status unknown."; executed iff
                          ``executed`` (default False).
SERVICE_UNAVAILABLE_503   A documented 100%-failure 503, nothing executed. ``variant``:
                          ``service_unavailable`` ("Service Unavailable.", no code),
                          ``internal_error`` (-1001) or ``server_busy`` (-1008).
RECV_WINDOW_LATENCY       The request arrives ``latency_s`` late, beyond recvWindow: HTTP 400
                          -1021 after the delay, nothing executed.
RATE_LIMIT_429            HTTP 429 -1003 with ``Retry-After`` (``retry_after_s``, default
                          the time left in the window), nothing executed.
IP_BAN_418                A ban for the whole window (one draw): HTTP 418 -1003 "Way too many
                          requests; IP banned until <ms>...", ``Retry-After`` until the ban
                          lifts, nothing executed.
CANCEL_UNKNOWN_BUT_LIVE   A cancel answered 400 -2011 "Unknown order sent." while the order
                          stays live (nothing executed): the lie I3's status check exists for.
FILL_AFTER_CANCEL         The market spikes through the order right before the cancel is
                          processed (:func:`fill_before_cancel`), then the engine processes
                          the cancel and answers itself: ``mode=full`` fills the order, so
                          the cancel gets -2011 "Unknown order sent." (the order is FILLED);
                          ``mode=partial`` fills one maker step of it, so the cancel returns
                          CANCELED with ``executedQty > 0`` (an order smaller than one step
                          fills completely and gets -2011).
MAINTENANCE               For the whole window (one draw) every request gets HTTP 503 -1001
                          "Internal error; unable to process your request. Please try
                          again." (nothing executed) and the user stream is down.
========================  ==================================================================

Stream and read faults (``operations`` must be ``None`` except for SNAPSHOT_LAG;
``symbols`` restricts per-event faults to events that concern one of them):

========================  ==================================================================
STREAM_DROP               The event is never delivered (no gap is announced: only REST
                          reconciliation and the trade backfill can find it).
STREAM_DUPLICATE          The event is delivered ``1 + copies`` times in a row.
STREAM_DELAY              The event is held back ``delay_s`` seconds; later events overtake it.
STREAM_REORDER            The event is held back a random ``[0, max_delay_s)`` seconds, so
                          events arrive out of order.
STREAM_DISCONNECT         For the whole window (one draw) the stream is down: the connection
                          drops at its first poll in the window, every event (and every held
                          one) is lost, reconnects are refused until the window ends.
LISTEN_KEY_EXPIRY         Once, at the first look inside the window (one draw), the listen
                          key expires: ``listenKeyExpired`` is pushed, the stream closes and
                          stays down, and keepalives get 400 -1125 "This listenKey does not
                          exist.", until a ``listen_key`` POST renews the key (Binance's rule:
                          the key is dead until re-created, even after the window).
SNAPSHOT_LAG              For the whole window (one draw), reads (``open_orders``,
                          ``positions``, ``balances``, ``query``; or the chosen subset) answer
                          from the state ``lag_s`` seconds ago (:class:`LaggedView`).
========================  ==================================================================

Rules
-----

* **Windows are half-open** ``[start, end)`` and ``start < end``, both finite.
* **Draws.** Per-item kinds (every request kind except IP_BAN_418 and MAINTENANCE, and the
  per-event stream kinds) draw ``rng.random() < probability`` for each request or event the
  spec matches. Window kinds (IP_BAN_418, MAINTENANCE, STREAM_DISCONNECT, LISTEN_KEY_EXPIRY,
  SNAPSHOT_LAG) draw once, at the first call inside their window: the window happens or it
  does not. A probability of 1 (or 0) draws nothing, so adding a certain fault does not shift
  the random stream of the others.
* **Precedence.** The first request fault in schedule order that applies wins; only then is
  a keepalive refused for an expired key. Per-event stream faults combine: a dropped event
  is gone; otherwise the longest hold applies and duplicates add up.
* **The log is the truth about injections.** Every entry's ``at`` lies inside its spec's
  window, except keepalive refusals after a LISTEN_KEY_EXPIRY, which last until renewal.
* Stream faults judge events by the poll that sees them (the instant the exchange would
  push them), not by their engine timestamps.
* **Decided holds outlive their schedule.** Replacing the schedule under a live connection
  (:meth:`StreamFilter.hand_over`) keeps every held event in flight until its logged
  release instant: a schedule change governs what happens next, never rewrites what the
  log already says happened. Of the stream faults only STREAM_DROP and the outages lose
  events, and each loss is in the log.

Serves I3 (cancel answers that lie about liveness), I4 (acknowledgements that lie by
omission), I7 (unknown outcomes that tempt a resend) and I10 (fills the stream never
delivers), by making each of them happen on a schedule a test controls.
"""

import enum
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Final

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.model import VenuePosition
from scalper.core.types import OrderType, Side
from scalper.venues.sim.engine import SimConfig, SimEngine
from scalper.venues.sim.errors import ErrorCode, SimRejection, reject
from scalper.venues.sim.market import make_quote
from scalper.venues.sim.records import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    OrderTradeUpdate,
    SimBalance,
    SimEvent,
    SimOrder,
)

__all__ = [
    "CANCEL_OPERATIONS",
    "OPERATIONS",
    "READ_OPERATIONS",
    "Answer",
    "FaultConfig",
    "FaultError",
    "FaultInjector",
    "FaultKind",
    "FaultSpec",
    "FillMode",
    "InjectedFault",
    "LaggedView",
    "ParamValue",
    "RequestFault",
    "StateSnapshot",
    "StreamFilter",
    "StreamOutage",
    "StreamStep",
    "event_symbols",
    "fill_before_cancel",
    "schedule_from_dicts",
    "schedule_to_dicts",
]

#: Request operations a fault can target (``listen_key``: POST/DELETE; ``keepalive``: PUT).
OPERATIONS: Final = frozenset(
    {
        "create",
        "cancel",
        "query",
        "open_orders",
        "positions",
        "balances",
        "user_trades",
        "exchange_info",
        "time",
        "mark_price",
        "leverage",
        "countdown",
        "listen_key",
        "keepalive",
    }
)
#: Reads SNAPSHOT_LAG can serve from the past (the ones :class:`LaggedView` answers).
READ_OPERATIONS: Final = frozenset({"open_orders", "positions", "balances", "query"})
#: The only operation the cancel faults apply to.
CANCEL_OPERATIONS: Final = frozenset({"cancel"})

#: A parameter value: JSON scalars only, so a schedule prints and reloads unchanged.
ParamValue = bool | int | float | str


class FaultKind(enum.StrEnum):
    """What goes wrong (see the module docstring for each kind's exact behaviour)."""

    DROP_REQUEST = "DROP_REQUEST"
    LOSE_RESPONSE = "LOSE_RESPONSE"
    UNKNOWN_503_PLACED = "UNKNOWN_503_PLACED"
    UNKNOWN_503_NOT_PLACED = "UNKNOWN_503_NOT_PLACED"
    ERROR_1006 = "ERROR_1006"
    ERROR_1007 = "ERROR_1007"
    SERVICE_UNAVAILABLE_503 = "SERVICE_UNAVAILABLE_503"
    RECV_WINDOW_LATENCY = "RECV_WINDOW_LATENCY"
    RATE_LIMIT_429 = "RATE_LIMIT_429"
    IP_BAN_418 = "IP_BAN_418"
    CANCEL_UNKNOWN_BUT_LIVE = "CANCEL_UNKNOWN_BUT_LIVE"
    FILL_AFTER_CANCEL = "FILL_AFTER_CANCEL"
    STREAM_DUPLICATE = "STREAM_DUPLICATE"
    STREAM_REORDER = "STREAM_REORDER"
    STREAM_DELAY = "STREAM_DELAY"
    STREAM_DROP = "STREAM_DROP"
    STREAM_DISCONNECT = "STREAM_DISCONNECT"
    SNAPSHOT_LAG = "SNAPSHOT_LAG"
    LISTEN_KEY_EXPIRY = "LISTEN_KEY_EXPIRY"
    MAINTENANCE = "MAINTENANCE"

    @property
    def is_request_fault(self) -> bool:
        """True for kinds :meth:`FaultInjector.before_request` can return."""
        return self in _REQUEST_KINDS

    @property
    def is_event_fault(self) -> bool:
        """True for kinds applied to individual stream events."""
        return self in _EVENT_KINDS

    @property
    def is_window_fault(self) -> bool:
        """True for kinds drawn once per window (the window happens or it does not)."""
        return self in _WINDOW_KINDS


_REQUEST_KINDS: Final = frozenset(
    {
        FaultKind.DROP_REQUEST,
        FaultKind.LOSE_RESPONSE,
        FaultKind.UNKNOWN_503_PLACED,
        FaultKind.UNKNOWN_503_NOT_PLACED,
        FaultKind.ERROR_1006,
        FaultKind.ERROR_1007,
        FaultKind.SERVICE_UNAVAILABLE_503,
        FaultKind.RECV_WINDOW_LATENCY,
        FaultKind.RATE_LIMIT_429,
        FaultKind.IP_BAN_418,
        FaultKind.CANCEL_UNKNOWN_BUT_LIVE,
        FaultKind.FILL_AFTER_CANCEL,
        FaultKind.MAINTENANCE,
    }
)
_EVENT_KINDS: Final = frozenset(
    {
        FaultKind.STREAM_DUPLICATE,
        FaultKind.STREAM_REORDER,
        FaultKind.STREAM_DELAY,
        FaultKind.STREAM_DROP,
    }
)
_WINDOW_KINDS: Final = frozenset(
    {
        FaultKind.IP_BAN_418,
        FaultKind.MAINTENANCE,
        FaultKind.STREAM_DISCONNECT,
        FaultKind.LISTEN_KEY_EXPIRY,
        FaultKind.SNAPSHOT_LAG,
    }
)
_CANCEL_KINDS: Final = frozenset({FaultKind.CANCEL_UNKNOWN_BUT_LIVE, FaultKind.FILL_AFTER_CANCEL})
# Kinds that concern the whole account or connection: a symbol filter would be meaningless.
_GLOBAL_KINDS: Final = frozenset(
    {
        FaultKind.IP_BAN_418,
        FaultKind.MAINTENANCE,
        FaultKind.STREAM_DISCONNECT,
        FaultKind.LISTEN_KEY_EXPIRY,
        FaultKind.SNAPSHOT_LAG,
    }
)
# Kinds whose ``operations`` must stay None: they do not act on requests.
_NO_OPERATION_KINDS: Final = _EVENT_KINDS | {
    FaultKind.STREAM_DISCONNECT,
    FaultKind.LISTEN_KEY_EXPIRY,
}
_STREAM_OP: Final = "stream"


class FillMode(enum.StrEnum):
    """How much of the order FILL_AFTER_CANCEL fills before the cancel is processed."""

    FULL = "full"
    PARTIAL = "partial"


class Answer(enum.StrEnum):
    """What the client receives for a faulted request."""

    NORMAL = "NORMAL"
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"


_SERVICE_VARIANTS: Final = ("service_unavailable", "internal_error", "server_busy")


# ---------------------------------------------------------------------------- validation


def _finite(_inst: object, attribute: "attrs.Attribute[float]", value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CoreValueError(attribute.name, f"must be a finite number, got {value!r}")


def _positive(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise CoreValueError(attribute.name, f"must be positive and finite, got {value!r}")


def _non_negative(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise CoreValueError(attribute.name, f"must be >= 0 and finite, got {value!r}")


def _positive_int(_inst: object, attribute: "attrs.Attribute[int]", value: int) -> None:
    if isinstance(value, bool) or value < 1:
        raise CoreValueError(attribute.name, f"must be an int >= 1, got {value!r}")


def _choice(*choices: str) -> Callable[[object, "attrs.Attribute[str]", str], None]:
    def check(_inst: object, attribute: "attrs.Attribute[str]", value: str) -> None:
        if value not in choices:
            raise CoreValueError(attribute.name, f"must be one of {choices}, got {value!r}")

    return check


@attrs.frozen
class _ParamRule:
    """The type and range of one kind-specific parameter."""

    kind: str  # "bool", "int", "float" or "str"
    minimum: float | None = None  # numbers: value must be > minimum
    choices: tuple[str, ...] = ()

    def check(self, field: str, value: object) -> ParamValue:
        """Return ``value`` in its canonical type, or raise naming ``field``."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise CoreValueError(field, f"must be a bool, got {value!r}")
            return value
        if self.kind == "str":
            if not isinstance(value, str) or value not in self.choices:
                raise CoreValueError(field, f"must be one of {self.choices}, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CoreValueError(field, f"must be a number, got {value!r}")
        if self.kind == "int" and not isinstance(value, int):
            raise CoreValueError(field, f"must be an int, got {value!r}")
        number: int | float = value if self.kind == "int" else float(value)
        if not math.isfinite(number):
            raise CoreValueError(field, f"must be finite, got {value!r}")
        if self.minimum is not None and number <= self.minimum:
            raise CoreValueError(field, f"must be > {self.minimum}, got {value!r}")
        return number


_SECONDS = _ParamRule("float", minimum=0.0)
_PARAMS: Final[Mapping[FaultKind, Mapping[str, _ParamRule]]] = {
    FaultKind.DROP_REQUEST: {"timeout_s": _SECONDS},
    FaultKind.LOSE_RESPONSE: {"timeout_s": _SECONDS},
    FaultKind.UNKNOWN_503_PLACED: {},
    FaultKind.UNKNOWN_503_NOT_PLACED: {},
    FaultKind.ERROR_1006: {"executed": _ParamRule("bool")},
    FaultKind.ERROR_1007: {"executed": _ParamRule("bool")},
    FaultKind.SERVICE_UNAVAILABLE_503: {"variant": _ParamRule("str", choices=_SERVICE_VARIANTS)},
    FaultKind.RECV_WINDOW_LATENCY: {"latency_s": _SECONDS},
    FaultKind.RATE_LIMIT_429: {"retry_after_s": _SECONDS},
    FaultKind.IP_BAN_418: {"retry_after_s": _SECONDS},
    FaultKind.CANCEL_UNKNOWN_BUT_LIVE: {},
    FaultKind.FILL_AFTER_CANCEL: {
        "mode": _ParamRule("str", choices=tuple(m.value for m in FillMode))
    },
    FaultKind.STREAM_DUPLICATE: {"copies": _ParamRule("int", minimum=0)},
    FaultKind.STREAM_REORDER: {"max_delay_s": _SECONDS},
    FaultKind.STREAM_DELAY: {"delay_s": _SECONDS},
    FaultKind.STREAM_DROP: {},
    FaultKind.STREAM_DISCONNECT: {},
    FaultKind.SNAPSHOT_LAG: {"lag_s": _SECONDS},
    FaultKind.LISTEN_KEY_EXPIRY: {},
    FaultKind.MAINTENANCE: {},
}


def _freeze_params(
    value: Mapping[str, ParamValue] | Iterable[tuple[str, ParamValue]],
) -> tuple[tuple[str, ParamValue], ...]:
    items = list(value.items()) if isinstance(value, Mapping) else list(value)
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise CoreValueError("params", f"names must be unique, got {names}")
    return tuple(sorted(items))


def _freeze_names(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        # A bare string would silently become a set of one-letter names.
        raise CoreValueError("names", f"must be a collection of names, not the string {value!r}")
    return frozenset(value)


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _probability(_inst: object, attribute: "attrs.Attribute[float]", value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise CoreValueError(attribute.name, f"must be a number in [0, 1], got {value!r}")


# ---------------------------------------------------------------------------- the schedule


@attrs.frozen
class FaultSpec:
    """One scheduled fault: a kind, a half-open window ``[start, end)`` and its filters.

    Attributes:
        start: first instant (injected clock seconds) the fault can fire.
        end: first instant it can no longer fire; ``start < end``.
        kind: what goes wrong.
        params: kind-specific parameters (see the module docstring), as sorted
            ``(name, value)`` pairs; a mapping is accepted and frozen. Unknown names and
            wrong types are rejected, absent ones take :class:`FaultConfig` defaults.
        probability: chance per request/event (or per window for window kinds).
        operations: request operations the fault targets (``None``: the kind's default).
        symbols: symbols the fault targets (``None``: all, including symbol-less requests).

    Raises:
        CoreValueError: naming the offending field.
    """

    start: float = attrs.field(validator=_finite)
    end: float = attrs.field(validator=_finite)
    kind: FaultKind = attrs.field(converter=FaultKind)
    params: tuple[tuple[str, ParamValue], ...] = attrs.field(default=(), converter=_freeze_params)
    probability: float = attrs.field(default=1.0, validator=_probability)
    operations: frozenset[str] | None = attrs.field(default=None, converter=_freeze_names)
    symbols: frozenset[str] | None = attrs.field(default=None, converter=_freeze_names)

    def __attrs_post_init__(self) -> None:
        if self.end <= self.start:
            raise CoreValueError("end", f"must be after start {self.start}, got {self.end}")
        rules = _PARAMS[self.kind]
        canonical = []
        for name, value in self.params:
            rule = rules.get(name)
            if rule is None:
                raise CoreValueError(
                    f"params.{name}",
                    f"unknown for {self.kind.value}; known: {sorted(rules)}",
                )
            canonical.append((name, rule.check(f"params.{name}", value)))
        object.__setattr__(self, "params", tuple(canonical))
        self._check_operations()
        if self.symbols is not None:
            if self.kind in _GLOBAL_KINDS:
                raise CoreValueError("symbols", f"must be None for {self.kind.value}")
            if not self.symbols or not all(_is_name(s) for s in self.symbols):
                raise CoreValueError("symbols", "must be a non-empty set of symbol names")

    def _check_operations(self) -> None:
        ops = self.operations
        if ops is None:
            return
        if self.kind in _NO_OPERATION_KINDS:
            raise CoreValueError("operations", f"must be None for {self.kind.value}")
        if not ops:
            raise CoreValueError("operations", "must be None (all) or a non-empty set")
        allowed = self.default_operations
        unknown = sorted(op for op in ops if op not in allowed)
        if unknown:
            raise CoreValueError(
                "operations", f"{unknown} not allowed for {self.kind.value}; use {sorted(allowed)}"
            )

    @property
    def default_operations(self) -> frozenset[str]:
        """The operations the kind targets when ``operations`` is ``None``."""
        if self.kind in _CANCEL_KINDS:
            return CANCEL_OPERATIONS
        if self.kind is FaultKind.SNAPSHOT_LAG:
            return READ_OPERATIONS
        if self.kind in _NO_OPERATION_KINDS:
            return frozenset()
        return OPERATIONS

    @property
    def targets(self) -> frozenset[str]:
        """The operations this spec applies to."""
        return self.default_operations if self.operations is None else self.operations

    def param(self, name: str) -> ParamValue | None:
        """The value of parameter ``name``, or ``None`` if the schedule left it to defaults."""
        for key, value in self.params:
            if key == name:
                return value
        return None

    def active(self, now: float) -> bool:
        """True if ``now`` lies in the window ``[start, end)``."""
        return self.start <= now < self.end

    def applies(self, op: str, symbol: str | None) -> bool:
        """True if a request ``op`` on ``symbol`` is within this spec's filters."""
        if op not in self.targets:
            return False
        return self.symbols is None or (symbol is not None and symbol in self.symbols)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready data; :meth:`from_dict` rebuilds an equal spec."""
        return {
            "start": self.start,
            "end": self.end,
            "kind": self.kind.value,
            "params": dict(self.params),
            "probability": self.probability,
            "operations": None if self.operations is None else sorted(self.operations),
            "symbols": None if self.symbols is None else sorted(self.symbols),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> "FaultSpec":
        """Rebuild a spec from :meth:`to_dict` output (or hand-written JSON).

        Raises:
            CoreValueError: for unknown or missing keys and for any invalid field.
        """
        unknown = sorted(set(data) - _SPEC_KEYS)
        if unknown:
            raise CoreValueError("fault", f"unknown keys {unknown}")
        missing = sorted(k for k in ("start", "end", "kind") if k not in data)
        if missing:
            raise CoreValueError("fault", f"missing keys {missing}")
        kind = data["kind"]
        if not isinstance(kind, str) or kind not in FaultKind.__members__:
            raise CoreValueError("kind", f"unknown fault kind {kind!r}")
        params = data.get("params") or {}
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise CoreValueError("params", f"must be a mapping of names, got {params!r}")
        return cls(
            start=_number("start", data["start"]),
            end=_number("end", data["end"]),
            kind=FaultKind(kind),
            params={k: _param_value(f"params.{k}", v) for k, v in params.items()},
            probability=_number("probability", data.get("probability", 1.0)),
            operations=_names("operations", data.get("operations")),
            symbols=_names("symbols", data.get("symbols")),
        )


_SPEC_KEYS: Final = frozenset(
    {"start", "end", "kind", "params", "probability", "operations", "symbols"}
)


def _number(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CoreValueError(field, f"must be a number, got {value!r}")
    return float(value)


def _param_value(field: str, value: object) -> ParamValue:
    if not isinstance(value, bool | int | float | str):
        raise CoreValueError(field, f"must be a JSON scalar, got {value!r}")
    return value


def _names(field: str, value: object) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise CoreValueError(field, f"must be a list of names or null, got {value!r}")
    if not all(isinstance(v, str) for v in value):
        raise CoreValueError(field, f"must contain strings only, got {value!r}")
    return frozenset(value)


def schedule_to_dicts(schedule: Iterable[FaultSpec]) -> list[dict[str, object]]:
    """A schedule as plain JSON-ready data (for printing a chaos run's faults)."""
    return [spec.to_dict() for spec in schedule]


def schedule_from_dicts(items: Iterable[Mapping[str, object]]) -> tuple[FaultSpec, ...]:
    """Rebuild a schedule from :func:`schedule_to_dicts` output.

    Raises:
        CoreValueError: for any invalid entry.
    """
    return tuple(FaultSpec.from_dict(item) for item in items)


# ---------------------------------------------------------------------------- config


# One source of truth for the epoch: the engine's own default.
_DEFAULT_EPOCH_OFFSET: Final = SimConfig().epoch_offset


@attrs.frozen
class FaultConfig:
    """Defaults for parameters a schedule leaves out, and the facts faults must quote.

    Attributes:
        epoch_offset: engine seconds + this = Binance epoch seconds; must equal the
            engine's ``SimConfig.epoch_offset`` (quoted in the IP-ban message).
        request_timeout_s: how long a client waits before a dropped request or a lost
            response times out (DROP_REQUEST, LOSE_RESPONSE ``timeout_s``).
        recv_window_latency_s: RECV_WINDOW_LATENCY ``latency_s`` (beyond the 5 s default
            recvWindow).
        request_weight_limit: the per-minute weight quoted in the 429 message.
        stream_delay_s: STREAM_DELAY ``delay_s``.
        reorder_max_delay_s: STREAM_REORDER ``max_delay_s`` (several 50 ms polls, so events
            really overtake each other).
        duplicate_copies: STREAM_DUPLICATE ``copies``.
        snapshot_lag_s: SNAPSHOT_LAG ``lag_s``.
        fill_mode: FILL_AFTER_CANCEL ``mode``.
        service_variant: SERVICE_UNAVAILABLE_503 ``variant``.
    """

    epoch_offset: float = attrs.field(default=_DEFAULT_EPOCH_OFFSET, validator=_finite)
    request_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    recv_window_latency_s: float = attrs.field(default=6.0, validator=_positive)
    request_weight_limit: int = attrs.field(default=2400, validator=_positive_int)
    stream_delay_s: float = attrs.field(default=2.0, validator=_positive)
    reorder_max_delay_s: float = attrs.field(default=0.5, validator=_positive)
    duplicate_copies: int = attrs.field(default=1, validator=_positive_int)
    snapshot_lag_s: float = attrs.field(default=2.0, validator=_positive)
    fill_mode: str = attrs.field(
        default=FillMode.FULL.value, validator=_choice(*(m.value for m in FillMode))
    )
    service_variant: str = attrs.field(
        default="service_unavailable", validator=_choice(*_SERVICE_VARIANTS)
    )


# ---------------------------------------------------------------------------- decisions


@attrs.frozen
class FaultError:
    """An error answer in Binance's terms.

    ``code`` is ``None`` when Binance's documented answer has no code (503 "Service
    Unavailable."): the server then sends the message without a code. ``retry_after_s`` is
    the ``Retry-After`` header in seconds (the server rounds it up to whole seconds).
    """

    http_status: int
    code: int | None
    message: str
    retry_after_s: float | None = None

    def body(self) -> dict[str, object]:
        """The JSON error body (``{"code": ..., "msg": ...}``; no ``code`` when absent)."""
        if self.code is None:
            return {"msg": self.message}
        return {"code": self.code, "msg": self.message}


UNKNOWN_ERROR_TEXT: Final = "Unknown error, please check your request or try again later."
_UNKNOWN_503 = FaultError(503, -1000, UNKNOWN_ERROR_TEXT)
_UNEXPECTED_1006 = FaultError(
    503,
    -1006,
    "An unexpected response was received from the message bus. Execution status unknown.",
)
_TIMEOUT_1007 = FaultError(
    408,
    -1007,
    "Timeout waiting for response from backend server. "
    "Send status unknown; execution status unknown.",
)
_INTERNAL_1001 = FaultError(
    503, -1001, "Internal error; unable to process your request. Please try again."
)
_SERVICE_ERRORS: Final[Mapping[str, FaultError]] = {
    "service_unavailable": FaultError(503, None, "Service Unavailable."),
    "internal_error": _INTERNAL_1001,
    "server_busy": FaultError(
        503,
        -1008,
        "Server is currently overloaded with other requests. Please try again in a few minutes.",
    ),
}
_RECV_WINDOW_1021 = FaultError(
    400, -1021, "Timestamp for this request is outside of the recvWindow."
)
_CANCEL_REJECTED_2011 = FaultError(400, -2011, "Unknown order sent.")
_INVALID_LISTEN_KEY_1125 = FaultError(400, -1125, "This listenKey does not exist.")


@attrs.frozen
class RequestFault:
    """What to do instead of (or around) serving one request normally.

    Attributes:
        kind: the fault that fired.
        spec_index: its position in the schedule.
        execute: apply the request to the engine.
        answer: what the client receives (see :class:`Answer`).
        error: the error answer when ``answer`` is ERROR.
        delay_s: virtual seconds before the answer arrives or the client times out.
        prefill: FILL_AFTER_CANCEL only: fill the order this much before the cancel.
    """

    kind: FaultKind
    spec_index: int
    execute: bool
    answer: Answer
    error: FaultError | None = None
    delay_s: float = 0.0
    prefill: FillMode | None = None

    def __attrs_post_init__(self) -> None:
        if (self.answer is Answer.ERROR) != (self.error is not None):
            raise CoreValueError("error", "must be set exactly when answer is ERROR")
        if self.prefill is not None and not self.execute:
            raise CoreValueError("prefill", "needs execute=True")

    @property
    def request_written(self) -> bool:
        """Whether the client had written the request when it failed (always, here).

        A dropped request and a lost response look the same from the client: the bytes
        left, nothing came back. That is exactly why both are AMBIGUOUS for mutations.
        """
        return True

    @property
    def summary(self) -> str:
        """A short human-readable account of the decision (for logs and the timeline)."""
        done = "executed" if self.execute else "not executed"
        if self.answer is Answer.TIMEOUT:
            told = f"timeout after {self.delay_s:g}s"
        elif self.error is not None:
            told = f"answered {self.error.http_status} {self.error.code}: {self.error.message}"
        else:
            told = "normal answer"
        prefill = f"; filled {self.prefill.value} first" if self.prefill else ""
        return f"{done}{prefill}; {told}"


@attrs.frozen
class InjectedFault:
    """One entry of the injection log: a fault that actually fired.

    ``op`` is the request operation, ``stream`` for stream faults and ``*`` for a window
    that opened (maintenance); ``symbol`` is the request's or event's symbol, if any.
    """

    at: float
    kind: FaultKind
    op: str
    detail: str
    spec_index: int
    symbol: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready data for the chaos timeline."""
        return {
            "at": self.at,
            "kind": self.kind.value,
            "op": self.op,
            "symbol": self.symbol,
            "detail": self.detail,
            "spec_index": self.spec_index,
        }


@attrs.frozen
class StreamOutage:
    """The user stream is unavailable.

    Attributes:
        kind: STREAM_DISCONNECT, MAINTENANCE or LISTEN_KEY_EXPIRY.
        reason: a snake_case tag for the StreamGap (``stream_disconnect``, ``maintenance``,
            ``listen_key_expired``).
        since: for a dropped connection (in :class:`StreamStep`), the instant after which
            events may not have been delivered; for :meth:`FaultInjector.stream_outage`,
            the instant the outage began.
        until: when the window ends (``None`` for an expired key: until renewal).
    """

    kind: FaultKind
    reason: str
    since: float
    until: float | None


@attrs.frozen
class StreamStep:
    """The result of one poll of a :class:`StreamFilter`.

    ``events`` are to be delivered now, in order. ``disconnect`` is set once, when the
    connection drops: nothing is delivered with it and the filter is closed.
    """

    events: tuple[SimEvent, ...] = ()
    disconnect: StreamOutage | None = None


def event_symbols(event: SimEvent) -> frozenset[str]:
    """The symbols a user-data event concerns (empty for a balance-only account update)."""
    if isinstance(event, OrderTradeUpdate | AlgoUpdate):
        return frozenset({event.order.symbol})
    if isinstance(event, AccountUpdate):
        return frozenset(p.symbol for p in event.positions)
    return frozenset({event.symbol})


def _event_label(event: SimEvent) -> str:
    if isinstance(event, OrderTradeUpdate):
        trade = f" trade {event.trade_id}" if event.trade_id else ""
        return (
            f"event {event.seq} ORDER_TRADE_UPDATE {event.execution_type.value} "
            f"order {event.order.order_id}{trade}"
        )
    if isinstance(event, AlgoUpdate):
        return (
            f"event {event.seq} ALGO_UPDATE {event.algo_status.value} algo {event.order.order_id}"
        )
    if isinstance(event, AccountUpdate):
        return f"event {event.seq} ACCOUNT_UPDATE"
    assert isinstance(event, AccountConfigUpdate)
    return f"event {event.seq} ACCOUNT_CONFIG_UPDATE"


class FaultInjector:
    """Decides, deterministically, which scheduled faults fire (see the module docstring).

    Args:
        schedule: the fault specs, in precedence order.
        rng: the only source of randomness (probability draws, reorder jitter).
        config: defaults for parameters the schedule leaves out.
    """

    def __init__(
        self,
        schedule: Iterable[FaultSpec],
        rng: random.Random,
        config: FaultConfig | None = None,
    ) -> None:
        self._schedule = tuple(schedule)
        for index, spec in enumerate(self._schedule):
            if not isinstance(spec, FaultSpec):
                raise CoreValueError(f"schedule[{index}]", f"must be a FaultSpec, got {spec!r}")
        self._rng = rng
        self._config = config or FaultConfig()
        self._window_on: dict[int, bool] = {}
        self._window_opened_at: dict[int, float] = {}
        self._key_expired_at: float | None = None
        self._key_expiry_index: int | None = None
        self._injected: list[InjectedFault] = []

    @property
    def schedule(self) -> tuple[FaultSpec, ...]:
        """The schedule, as given."""
        return self._schedule

    @property
    def config(self) -> FaultConfig:
        """The defaults in force."""
        return self._config

    @property
    def injected(self) -> tuple[InjectedFault, ...]:
        """Every fault that fired, in order."""
        return tuple(self._injected)

    @property
    def max_lag_s(self) -> float:
        """The longest SNAPSHOT_LAG in the schedule (0: no lagged reads; no view needed)."""
        lags = [
            self._lag_of(spec) for spec in self._schedule if spec.kind is FaultKind.SNAPSHOT_LAG
        ]
        return max(lags, default=0.0)

    @property
    def listen_key_expired(self) -> bool:
        """True while an expired listen key has not been renewed."""
        return self._key_expired_at is not None

    # ------------------------------------------------------------------ requests

    def before_request(self, op: str, symbol: str | None, now: float) -> RequestFault | None:
        """Decide what happens to one request arriving at ``now`` (``None``: serve it).

        Raises:
            CoreValueError: for an operation outside :data:`OPERATIONS` or a bad ``now``.
        """
        if op not in OPERATIONS:
            raise CoreValueError("op", f"unknown operation {op!r}; known: {sorted(OPERATIONS)}")
        self._open_windows(now)
        for index, spec in enumerate(self._schedule):
            if not spec.kind.is_request_fault or not spec.active(now):
                continue
            if not spec.applies(op, symbol):
                continue
            fires = self._window_on.get(index, False) if spec.kind.is_window_fault else None
            if fires is None:
                fires = self._draw(spec)
            if not fires:
                continue
            fault = self._request_fault(index, spec, now)
            self._log(now, spec.kind, op, fault.summary, index, symbol)
            return fault
        if op == "keepalive" and self._key_expired_at is not None:
            assert self._key_expiry_index is not None
            fault = RequestFault(
                kind=FaultKind.LISTEN_KEY_EXPIRY,
                spec_index=self._key_expiry_index,
                execute=False,
                answer=Answer.ERROR,
                error=_INVALID_LISTEN_KEY_1125,
            )
            self._log(now, fault.kind, op, fault.summary, fault.spec_index, None)
            return fault
        return None

    def _request_fault(self, index: int, spec: FaultSpec, now: float) -> RequestFault:
        cfg = self._config
        kind = spec.kind

        def error(err: FaultError, *, execute: bool = False, delay_s: float = 0.0) -> RequestFault:
            return RequestFault(kind, index, execute, Answer.ERROR, error=err, delay_s=delay_s)

        if kind in (FaultKind.DROP_REQUEST, FaultKind.LOSE_RESPONSE):
            timeout = _float(spec.param("timeout_s"), cfg.request_timeout_s)
            return RequestFault(
                kind, index, kind is FaultKind.LOSE_RESPONSE, Answer.TIMEOUT, delay_s=timeout
            )
        if kind in (FaultKind.UNKNOWN_503_PLACED, FaultKind.UNKNOWN_503_NOT_PLACED):
            return error(_UNKNOWN_503, execute=kind is FaultKind.UNKNOWN_503_PLACED)
        if kind is FaultKind.ERROR_1006:
            return error(_UNEXPECTED_1006, execute=spec.param("executed") is True)
        if kind is FaultKind.ERROR_1007:
            return error(_TIMEOUT_1007, execute=spec.param("executed") is True)
        if kind is FaultKind.SERVICE_UNAVAILABLE_503:
            return error(_SERVICE_ERRORS[str(spec.param("variant") or cfg.service_variant)])
        if kind is FaultKind.RECV_WINDOW_LATENCY:
            latency = _float(spec.param("latency_s"), cfg.recv_window_latency_s)
            return error(_RECV_WINDOW_1021, delay_s=latency)
        if kind is FaultKind.RATE_LIMIT_429:
            retry = _float(spec.param("retry_after_s"), spec.end - now)
            message = reject(ErrorCode.TOO_MANY_REQUESTS, cfg.request_weight_limit).message
            return error(FaultError(429, int(ErrorCode.TOO_MANY_REQUESTS), message, retry))
        if kind is FaultKind.IP_BAN_418:
            retry = _float(spec.param("retry_after_s"), spec.end - now)
            until_ms = round((now + retry + cfg.epoch_offset) * 1000)
            message = (
                f"Way too many requests; IP banned until {until_ms}. "
                "Please use the websocket for live updates to avoid bans."
            )
            return error(FaultError(418, int(ErrorCode.TOO_MANY_REQUESTS), message, retry))
        if kind is FaultKind.CANCEL_UNKNOWN_BUT_LIVE:
            return error(_CANCEL_REJECTED_2011)
        if kind is FaultKind.FILL_AFTER_CANCEL:
            mode = FillMode(str(spec.param("mode") or cfg.fill_mode))
            return RequestFault(kind, index, True, Answer.NORMAL, prefill=mode)
        assert kind is FaultKind.MAINTENANCE
        return error(_INTERNAL_1001)

    # ------------------------------------------------------------------ reads

    def rest_lag(self, op: str, now: float) -> float:
        """How many seconds behind the truth a read ``op`` at ``now`` answers (0: current).

        Raises:
            CoreValueError: for an operation outside :data:`OPERATIONS`.
        """
        if op not in OPERATIONS:
            raise CoreValueError("op", f"unknown operation {op!r}; known: {sorted(OPERATIONS)}")
        self._open_windows(now)
        lag, source = 0.0, -1
        for index, spec in enumerate(self._schedule):
            if spec.kind is not FaultKind.SNAPSHOT_LAG or not spec.active(now):
                continue
            if op in spec.targets and self._window_on.get(index, False):
                spec_lag = self._lag_of(spec)
                if spec_lag > lag:
                    lag, source = spec_lag, index
        if source >= 0:
            self._log(now, FaultKind.SNAPSHOT_LAG, op, f"answered from {lag:g}s ago", source, None)
        return lag

    def _lag_of(self, spec: FaultSpec) -> float:
        return _float(spec.param("lag_s"), self._config.snapshot_lag_s)

    # ------------------------------------------------------------------ stream

    def stream_outage(self, now: float) -> StreamOutage | None:
        """Why the user stream cannot be used at ``now``, or ``None`` if it can.

        An expired listen key wins (it lasts until renewal); then the first open
        STREAM_DISCONNECT or MAINTENANCE window in schedule order.
        """
        self._open_windows(now)
        if self._key_expired_at is not None:
            return StreamOutage(
                FaultKind.LISTEN_KEY_EXPIRY, "listen_key_expired", self._key_expired_at, None
            )
        for index, spec in enumerate(self._schedule):
            if spec.kind not in (FaultKind.STREAM_DISCONNECT, FaultKind.MAINTENANCE):
                continue
            if spec.active(now) and self._window_on.get(index, False):
                reason = (
                    "stream_disconnect"
                    if spec.kind is FaultKind.STREAM_DISCONNECT
                    else "maintenance"
                )
                return StreamOutage(spec.kind, reason, self._window_opened_at[index], spec.end)
        return None

    def stream_filter(self, now: float) -> "StreamFilter":
        """A per-connection event filter for a stream connected at ``now``."""
        return StreamFilter(self, now)

    def renew_listen_key(self, now: float) -> None:
        """A ``listen_key`` POST was executed at ``now``: the key is valid again."""
        self._open_windows(now)
        self._key_expired_at = None
        self._key_expiry_index = None

    def _event_decision(
        self, event: SimEvent, now: float
    ) -> tuple[bool, float | None, int, list[InjectedFault]]:
        """(drop, hold_until, extra copies, log entries) for one event seen at ``now``."""
        symbols = event_symbols(event)
        drop, hold, copies = False, None, 0
        entries: list[InjectedFault] = []
        label = _event_label(event)
        symbol = min(symbols) if symbols else None
        for index, spec in enumerate(self._schedule):
            if not spec.kind.is_event_fault or not spec.active(now):
                continue
            if spec.symbols is not None and not (spec.symbols & symbols):
                continue
            if not self._draw(spec):
                continue
            cfg = self._config
            if spec.kind is FaultKind.STREAM_DROP:
                drop = True
                detail = f"dropped {label}"
            elif spec.kind is FaultKind.STREAM_DUPLICATE:
                extra = _int(spec.param("copies"), cfg.duplicate_copies)
                copies += extra
                detail = f"duplicated {label} x{extra}"
            else:
                if spec.kind is FaultKind.STREAM_DELAY:
                    delay = _float(spec.param("delay_s"), cfg.stream_delay_s)
                else:
                    jitter = _float(spec.param("max_delay_s"), cfg.reorder_max_delay_s)
                    delay = self._rng.uniform(0.0, jitter)
                hold = max(hold or now, now + delay)
                detail = f"held {label} for {delay:.3f}s"
            entries.append(InjectedFault(now, spec.kind, _STREAM_OP, detail, index, symbol))
            if drop:
                break
        return drop, hold, copies, entries

    # ------------------------------------------------------------------ internals

    def _draw(self, spec: FaultSpec) -> bool:
        if spec.probability >= 1.0:
            return True
        if spec.probability <= 0.0:
            return False
        return self._rng.random() < spec.probability

    def _open_windows(self, now: float) -> None:
        """Draw every window kind whose window contains ``now`` and is not drawn yet."""
        if not math.isfinite(now):
            raise CoreValueError("now", f"must be finite, got {now!r}")
        for index, spec in enumerate(self._schedule):
            if not spec.kind.is_window_fault or index in self._window_on:
                continue
            if not spec.active(now):
                continue
            on = self._draw(spec)
            self._window_on[index] = on
            if not on:
                continue
            self._window_opened_at[index] = now
            if spec.kind is FaultKind.LISTEN_KEY_EXPIRY:
                if self._key_expired_at is None:
                    self._key_expired_at, self._key_expiry_index = now, index
                self._log(now, spec.kind, _STREAM_OP, "listen key expired", index, None)
            elif spec.kind is FaultKind.STREAM_DISCONNECT:
                self._log(
                    now, spec.kind, _STREAM_OP, f"stream down until {spec.end:g}", index, None
                )
            elif spec.kind is FaultKind.MAINTENANCE:
                self._log(now, spec.kind, "*", f"maintenance until {spec.end:g}", index, None)

    def _log(
        self,
        at: float,
        kind: FaultKind,
        op: str,
        detail: str,
        spec_index: int,
        symbol: str | None,
    ) -> None:
        self._injected.append(InjectedFault(at, kind, op, detail, spec_index, symbol))

    def _append(self, entries: Iterable[InjectedFault]) -> None:
        self._injected.extend(entries)


def _float(value: ParamValue | None, default: float) -> float:
    if value is None:
        return max(default, 0.0)
    assert isinstance(value, int | float), "validated by FaultSpec"
    return float(value)


def _int(value: ParamValue | None, default: int) -> int:
    if value is None:
        return default
    assert isinstance(value, int), "validated by FaultSpec"
    return value


@attrs.define
class _Held:
    release_at: float
    order: int
    event: SimEvent
    copies: int
    undelivered_since: float


class StreamFilter:
    """Applies stream faults to one connection's events (create via ``stream_filter``).

    Each :meth:`poll` takes the engine events produced since the previous poll and returns
    what to deliver now. Held events (delay, reorder) come out at the first poll at or after
    their release time, before that poll's new events. When the stream goes down the
    connection is over: held and new events are lost, :attr:`StreamStep.disconnect` says
    since when, and the filter refuses further polls. When the schedule is replaced while
    the connection lives, :meth:`hand_over` moves the held events to a filter of the new
    injector: a hold already decided (and logged) stands, as a message already delayed in
    an exchange's pipeline still arrives when it arrives.
    """

    def __init__(self, injector: FaultInjector, connected_at: float) -> None:
        self._injector = injector
        self._last_poll = connected_at
        self._held: list[_Held] = []
        self._counter = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the connection has dropped."""
        return self._closed

    @property
    def undelivered_since(self) -> float:
        """Every event produced at or before this instant has been delivered or dropped."""
        return min((h.undelivered_since for h in self._held), default=self._last_poll)

    def hand_over(self, injector: FaultInjector, now: float) -> "StreamFilter":
        """The same connection under ``injector``'s schedule, keeping what is in flight.

        The new filter (of ``injector``, created at ``now``) takes over this one's held
        events unchanged: release instants, duplicate copies, their tie order, and the
        instant since which they are undelivered. Events polled from then on face the new
        schedule only. This filter is closed (a second poll would deliver them twice).

        Raises:
            CoreValueError: if this filter is closed (its connection dropped).
        """
        if self._closed:
            raise CoreValueError("filter", "the connection dropped; nothing to hand over")
        successor = injector.stream_filter(now)
        # Release order ties break on arrival order: keep it by renumbering in order.
        for held in sorted(self._held, key=lambda h: h.order):
            successor._counter += 1
            successor._held.append(attrs.evolve(held, order=successor._counter))
        successor._last_poll = min(self._last_poll, now)
        self._held = []
        self._closed = True
        return successor

    def poll(self, events: Sequence[SimEvent], now: float) -> StreamStep:
        """Filter the events produced since the previous poll; see the class docstring.

        Raises:
            CoreValueError: if the filter is closed (open a new connection and filter).
        """
        if self._closed:
            raise CoreValueError("filter", "the connection dropped; open a new stream_filter")
        outage = self._injector.stream_outage(now)
        if outage is not None:
            lost_since = self.undelivered_since
            self._held.clear()
            self._closed = True
            return StreamStep(disconnect=attrs.evolve(outage, since=lost_since))
        out: list[SimEvent] = []
        due = sorted(
            (h for h in self._held if h.release_at <= now), key=lambda h: (h.release_at, h.order)
        )
        self._held = [h for h in self._held if h.release_at > now]
        for held in due:
            out.extend([held.event] * (1 + held.copies))
        for event in events:
            drop, hold, copies, entries = self._injector._event_decision(event, now)
            self._injector._append(entries)
            if drop:
                continue
            if hold is not None and hold > now:
                self._counter += 1
                self._held.append(_Held(hold, self._counter, event, copies, self._last_poll))
            else:
                out.extend([event] * (1 + copies))
        self._last_poll = now
        return StreamStep(events=tuple(out))


# ---------------------------------------------------------------------------- lagged reads


@attrs.frozen
class StateSnapshot:
    """The account as the engine held it at ``taken_at`` (after event ``event_seq``)."""

    taken_at: float
    time_ms: int
    event_seq: int
    open_orders: tuple[SimOrder, ...]
    positions: tuple[VenuePosition, ...]
    balances: tuple[SimBalance, ...]


class LaggedView:
    """Recent account snapshots, so SNAPSHOT_LAG reads can answer from the past.

    The front end calls :meth:`observe` once when it starts and then after every engine
    call and every stream poll; a snapshot is stored whenever the engine produced new events
    since the last one. A read at instant ``t`` answers from the newest snapshot taken at or
    before ``t`` (see :meth:`at`; the current state only if nothing was observed yet).
    Snapshots older than ``horizon_s`` are pruned, keeping the newest of them so every ``t``
    within the horizon has an answer.

    Args:
        horizon_s: the longest lag that will be asked for (``FaultInjector.max_lag_s``).
    """

    def __init__(self, horizon_s: float) -> None:
        if not math.isfinite(horizon_s) or horizon_s < 0:
            raise CoreValueError("horizon_s", f"must be >= 0 and finite, got {horizon_s!r}")
        self._horizon = horizon_s
        self._snapshots: list[StateSnapshot] = []

    def __len__(self) -> int:
        return len(self._snapshots)

    def observe(self, engine: SimEngine, now: float) -> None:
        """Record the engine's state at ``now`` if it changed since the last snapshot."""
        seq = engine.last_event_seq
        if not self._snapshots or self._snapshots[-1].event_seq != seq:
            self._snapshots.append(
                StateSnapshot(
                    taken_at=now,
                    time_ms=engine.venue_time_ms(),
                    event_seq=seq,
                    open_orders=engine.orders(open_only=True),
                    positions=engine.positions(),
                    balances=engine.balances(),
                )
            )
        cutoff = now - self._horizon
        keep_from = 0
        for index, snap in enumerate(self._snapshots):
            if snap.taken_at <= cutoff:
                keep_from = index
        if keep_from:
            del self._snapshots[:keep_from]

    def at(self, t: float) -> StateSnapshot | None:
        """The newest snapshot taken at or before ``t``.

        If every snapshot is newer than ``t`` (a lag reaching back before the first
        observation), the oldest one: as far back as the view can see. ``None`` only before
        the first observation.
        """
        found = self._snapshots[0] if self._snapshots else None
        for snap in self._snapshots:
            if snap.taken_at > t:
                break
            found = snap
        return found

    def open_orders(
        self, engine: SimEngine, t: float, symbol: str | None = None
    ) -> tuple[SimOrder, ...]:
        """Open orders (plain and algo) as of ``t``.

        Raises:
            SimRejection: -1121 for an unknown symbol.
        """
        current = engine.orders(symbol, open_only=True)  # validates the symbol
        snap = self.at(t)
        if snap is None:
            return current
        return tuple(o for o in snap.open_orders if symbol in (None, o.symbol))

    def positions(self, engine: SimEngine, t: float) -> tuple[VenuePosition, ...]:
        """Position legs as of ``t``."""
        snap = self.at(t)
        return engine.positions() if snap is None else snap.positions

    def balances(self, engine: SimEngine, t: float) -> tuple[SimBalance, ...]:
        """Balances as of ``t``."""
        snap = self.at(t)
        return engine.balances() if snap is None else snap.balances

    def order_detail(
        self,
        engine: SimEngine,
        t: float,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        algo: bool | None = None,
    ) -> SimOrder:
        """One order as of ``t``: its open state then, or -2013 if it did not exist yet.

        An order that was open at ``t`` answers with its state then; one created after
        ``t`` is unknown (the classic symptom of a lagging read: "the order I just placed
        does not exist"); one already closed at ``t`` answers with its (final) state.

        Raises:
            SimRejection: -2013 as above or for an unknown order, -1102 without an id,
                -1121 for an unknown symbol.
        """
        current = engine.order_detail(
            symbol, order_id=order_id, client_order_id=client_order_id, algo=algo
        )
        snap = self.at(t)
        if snap is None:
            return current
        for order in snap.open_orders:
            if order.symbol != symbol or (algo is not None and order.algo is not algo):
                continue
            if order_id is not None:
                if order.order_id == order_id:
                    return order
            elif order.client_order_id == client_order_id:
                return order
        if current.create_time_ms > snap.time_ms:
            raise reject(ErrorCode.NO_SUCH_ORDER)
        return current


# ---------------------------------------------------------------------------- fill before cancel


_MAX_STEPS: Final = 10_000


def fill_before_cancel(
    engine: SimEngine,
    symbol: str,
    *,
    order_id: str | None,
    client_order_id: str | None,
    algo: bool | None,
    now: float,
    mode: FillMode,
) -> str:
    """FILL_AFTER_CANCEL's race: the market runs through the order just before the cancel.

    Moves ``symbol``'s mark so that the order executes: a resting LIMIT order is crossed
    (it fills as a maker against the per-step liquidity budget), a conditional order's stop
    price is touched (it triggers; a LIMIT child is then crossed as well). ``FULL`` repeats
    price steps until the order is no longer open; ``PARTIAL`` takes a single step. The mark
    stays where the spike left it, with the side effects a real spike has on other orders
    of the symbol. An order that is not open (or unknown) is left alone: the cancel that
    follows answers for itself.

    Returns:
        A short description of what happened, for logs.
    """
    engine.advance_to(now)
    try:
        order = engine.order_detail(
            symbol, order_id=order_id, client_order_id=client_order_id, algo=algo
        )
    except SimRejection:
        return "order unknown; nothing to fill"
    if not order.is_open:
        return "order not open; nothing to fill"
    before = order.filled_qty
    if order.algo:
        assert order.stop_price is not None
        engine.set_mark_price(symbol, order.stop_price)
        order = engine.order_detail(symbol, order_id=order.order_id)
        if order.actual_order_id is None:
            return "stop touched; trigger refused"
        order = engine.order_detail(symbol, order_id=order.actual_order_id)
    if order.is_open and order.order_type is OrderType.LIMIT and order.price is not None:
        mid = _crossing_mid(engine, symbol, order.side, order.price)
        if mid is None:
            return "order price cannot be crossed"
        steps = 1 if mode is FillMode.PARTIAL else _MAX_STEPS
        for _ in range(steps):
            filled = order.filled_qty
            engine.set_mark_price(symbol, mid)
            order = engine.order_detail(symbol, order_id=order.order_id)
            if not order.is_open or order.filled_qty == filled:
                break
    return f"filled {order.filled_qty - before} before the cancel; order {order.status.value}"


def _crossing_mid(engine: SimEngine, symbol: str, side: Side, price: Decimal) -> Decimal | None:
    """A mid at which a resting ``side`` limit at ``price`` is crossed (or ``None``)."""
    spec = next(s for s in engine.config.symbols if s.symbol == symbol)
    tick, spread = spec.filters.tick_size, spec.book.spread_bps
    half = price * spread / Decimal(20_000)
    direction = -1 if side is Side.BUY else 1
    mid = (price + direction * half) // tick * tick
    for _ in range(_MAX_STEPS):
        if mid <= 0:
            return None
        if make_quote(mid, spread, tick).crosses(side, price):
            return mid
        mid += direction * tick
    return None
