"""The simulated exchange as a :class:`~scalper.venues.base.Venue`, in process, on trio time.

Theory of operation
-------------------

:class:`InProcessVenue` is what the chaos runner and the actor tests trade against: the
ground-truth :class:`~scalper.venues.sim.engine.SimEngine` behind the Venue protocol, with
the seeded :class:`~scalper.venues.sim.faults.FaultInjector` in between, and no sockets,
threads or wall clock. Every method is ``async`` and calls the engine synchronously; it
checkpoints (and sleeps, where a fault or a configured latency says so) on trio's clock, so
under ``trio.testing.MockClock(autojump_threshold=0)`` a whole run takes no real time and is
reproducible: same seed, same schedule, same calls, same history.

**Time.** Every call and every stream poll reads the injected ``clock`` and first moves the
engine to that instant (``engine.advance_to``), so prices walk, stops trigger and countdowns
fire between calls exactly as they would have. The engine's ``start_time`` should equal the
clock's reading when the venue starts (0.0 under MockClock and in the default config).

**A request** goes: advance the engine, ask the injector (:meth:`FaultInjector.before_request`),
charge the endpoint's request weight (Binance's weights; order placement is counted by the
engine as an order), execute on the engine if the fault (or its absence) says so, wait the
fault's delay, answer. Answers map to the protocol's one exception type:

* an engine rejection (:class:`SimRejection`) becomes ``VenueError`` via
  :func:`scalper.core.errors.classify_error` with the call's :class:`Operation` (create:
  CREATE, cancel: CANCEL, reads: QUERY, leverage and countdown: OTHER) and its
  ``Retry-After``: -4116 on create is IDEMPOTENT_SAFE, -2011 on cancel IDEMPOTENT_SAFE,
  -2013 on a query ``order_not_found``, filter failures FATAL;
* a fault's error answer (503 unknown, -1006, -1007, 429, 418, -1021, ...) is classified the
  same way, so a 503 "Unknown error" on a create is AMBIGUOUS exactly as it would be live;
* a fault's timeout (dropped request, lost response) becomes
  ``VenueError.transport(request_written=True, ...)``: AMBIGUOUS for mutations, RETRYABLE
  for reads. The client cannot tell a dropped request from a lost answer; only the engine
  history can, which is the point.

SNAPSHOT_LAG reads answer from a :class:`~scalper.venues.sim.faults.LaggedView` the venue
keeps up to date after every engine call and stream poll.

**The user stream** (:meth:`InProcessVenue.user_stream`) is an async context manager
yielding an async iterator of :data:`~scalper.venues.base.StreamEvent`. It plays the part
of the real adapter's WebSocket client: it creates the listen key (a ``listen_key``
request, faultable), connects, and polls the engine's events every ``poll_interval_s`` of
trio time through a per-connection :class:`~scalper.venues.sim.faults.StreamFilter`
(duplicates, delays, reorders, drops). Conversion: ``ORDER_TRADE_UPDATE`` becomes an
:class:`OrderUpdate` (with the :class:`Fill` on a TRADE, equal to the ``user_trades``
record), ``ALGO_UPDATE`` an :class:`OrderUpdate` with ``conditional=True``,
``ACCOUNT_UPDATE`` an :class:`AccountUpdate`, and ``ACCOUNT_CONFIG_UPDATE`` (which the
protocol does not model) an :class:`UnknownStreamEvent` carrying Binance's JSON.

The stream announces its health: :class:`StreamConnected` (``reconnect=False``) when the
first connection is up. When the stream goes down (STREAM_DISCONNECT, MAINTENANCE,
LISTEN_KEY_EXPIRY) it yields :class:`StreamDisconnected` at once, and every event until the
reconnect is lost, as on Binance; the iterator does *not* end: it retries every ``reconnect_delay_s`` (re-creating the listen key first),
and once connected again yields ``StreamConnected(reconnect=True)`` followed by a
:class:`StreamGap` whose ``[started_at, ended_at]`` covers every event that may have been
missed. That gap is the EvidenceCollector's cue to snapshot and backfill trades (I10).
Leaving the context manager ends the iterator.

Only this venue's clock and trio's scheduler are used: no wall clock, no global random.
"""

import json
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from typing import Final, TypeVar

import attrs
import trio

from scalper.core.errors import Operation, classify_error
from scalper.core.errors_base import CoreValueError
from scalper.core.model import (
    Balance,
    ExchangeInfo,
    Fill,
    OrderRequest,
    RateLimit,
    SymbolRules,
    VenueOrder,
    VenuePosition,
)
from scalper.core.types import OrderType, TimeInForce
from scalper.venues.base import (
    AccountUpdate,
    OrderUpdate,
    StreamConnected,
    StreamDisconnected,
    StreamEvent,
    StreamGap,
    UnknownStreamEvent,
    VenueError,
)
from scalper.venues.sim import records
from scalper.venues.sim.engine import SimEngine, SymbolConfig
from scalper.venues.sim.errors import SimRejection
from scalper.venues.sim.faults import (
    Answer,
    FaultError,
    FaultInjector,
    FaultKind,
    FillMode,
    LaggedView,
    StreamFilter,
    fill_before_cancel,
)
from scalper.venues.sim.ratelimit import RateKind, RateLimitConfig

__all__ = [
    "InProcessConfig",
    "InProcessVenue",
    "to_stream_event",
]

_T = TypeVar("_T")

#: The error table the simulated exchange answers with (it speaks Binance's codes).
_ERROR_TABLE: Final = "sim"

# Binance's endpoint weights (reference/binance_usdm.md §7). Order placement weighs 0 and
# counts as an order inside the engine instead.
_WEIGHTS: Final = {
    "create": 0,
    "cancel": 1,
    "query": 1,
    "open_orders": 1,
    "positions": 5,
    "balances": 5,
    "user_trades": 5,
    "exchange_info": 1,
    "time": 1,
    "mark_price": 1,
    "leverage": 1,
    "countdown": 10,
}
_OPEN_ORDERS_ALL_SYMBOLS_WEIGHT: Final = 40

_OPERATIONS: Final = {
    "create": Operation.CREATE,
    "cancel": Operation.CANCEL,
    "leverage": Operation.OTHER,
    "countdown": Operation.OTHER,
}


def _positive(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise CoreValueError(attribute.name, f"must be positive and finite, got {value!r}")


def _non_negative(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise CoreValueError(attribute.name, f"must be >= 0 and finite, got {value!r}")


@attrs.frozen
class InProcessConfig:
    """How the in-process venue behaves around the engine.

    Attributes:
        poll_interval_s: the user stream polls the engine this often (trio time).
        reconnect_delay_s: wait between stream (re)connection attempts.
        latency_s: extra delay before every answer (0: just a checkpoint).
        charge_request_weight: count Binance's endpoint weights against the engine's
            REQUEST_WEIGHT limiter (429 -1003 when the minute's budget is spent).
    """

    poll_interval_s: float = attrs.field(default=0.05, validator=_positive)
    reconnect_delay_s: float = attrs.field(default=1.0, validator=_positive)
    latency_s: float = attrs.field(default=0.0, validator=_non_negative)
    charge_request_weight: bool = True


class InProcessVenue:
    """The simulated exchange behind the Venue protocol (see the module docstring).

    Args:
        engine: the ground truth.
        injector: the fault schedule, or ``None`` for an honest exchange.
        clock: the injected clock (``trio.current_time`` under MockClock).
        name: the venue's name.
        config: polling, reconnect and latency settings.

    Raises:
        CoreValueError: if the injector quotes a different epoch than the engine.
    """

    def __init__(
        self,
        engine: SimEngine,
        injector: FaultInjector | None = None,
        *,
        clock: Callable[[], float],
        name: str = "sim",
        config: InProcessConfig | None = None,
    ) -> None:
        if injector is not None and injector.config.epoch_offset != engine.config.epoch_offset:
            raise CoreValueError(
                "injector", "FaultConfig.epoch_offset must equal the engine's epoch_offset"
            )
        self.name = name
        self._engine = engine
        self._injector = injector
        self._clock = clock
        self._config = config or InProcessConfig()
        lag = 0.0 if injector is None else injector.max_lag_s
        self._lag = LaggedView(lag) if lag > 0 else None
        if self._lag is not None:
            self._lag.observe(engine, engine.now)

    @property
    def engine(self) -> SimEngine:
        """The engine behind this venue (the ground truth tests check against)."""
        return self._engine

    @property
    def injector(self) -> FaultInjector | None:
        """The fault injector, if any."""
        return self._injector

    @property
    def config(self) -> InProcessConfig:
        """The venue's settings."""
        return self._config

    # ------------------------------------------------------------------ Venue protocol

    async def create_order(self, req: OrderRequest) -> VenueOrder:
        """Place an order under ``req.client_order_id`` (conditional types become algo orders)."""
        return await self._call(
            "create", req.symbol, lambda now: self._engine.create_order(req, now)
        )

    async def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        conditional: bool = False,
    ) -> VenueOrder:
        """Cancel one order; -2011 ("not open now") surfaces as IDEMPOTENT_SAFE."""

        def cancel(now: float) -> VenueOrder:
            return self._engine.cancel_order(
                symbol,
                order_id=order_id,
                client_order_id=client_order_id,
                now=now,
                algo=conditional,
            )

        def prefill(now: float, mode: FillMode) -> None:
            fill_before_cancel(
                self._engine,
                symbol,
                order_id=order_id,
                client_order_id=client_order_id,
                algo=conditional,
                now=now,
                mode=mode,
            )

        return await self._call("cancel", symbol, cancel, prefill=prefill)

    async def query_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        conditional: bool = False,
    ) -> VenueOrder:
        """Look one order up; not found is a VenueError with reason ``order_not_found``."""

        def query(now: float) -> VenueOrder:
            view, past = self._lagged("query", now)
            if view is not None:
                return view.order_detail(
                    self._engine,
                    past,
                    symbol,
                    order_id=order_id,
                    client_order_id=client_order_id,
                    algo=conditional,
                ).venue_order
            return self._engine.query_order(
                symbol, order_id=order_id, client_order_id=client_order_id, algo=conditional
            )

        return await self._call("query", symbol, query)

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """All open orders, plain and conditional, optionally of one symbol."""

        def read(now: float) -> list[VenueOrder]:
            view, past = self._lagged("open_orders", now)
            if view is not None:
                return [o.venue_order for o in view.open_orders(self._engine, past, symbol)]
            return list(self._engine.open_orders(symbol))

        weight = _WEIGHTS["open_orders"] if symbol else _OPEN_ORDERS_ALL_SYMBOLS_WEIGHT
        return await self._call("open_orders", symbol, read, weight=weight)

    async def positions(self) -> list[VenuePosition]:
        """Every position leg (flat legs included)."""

        def read(now: float) -> list[VenuePosition]:
            view, past = self._lagged("positions", now)
            if view is not None:
                return list(view.positions(self._engine, past))
            return list(self._engine.positions())

        return await self._call("positions", None, read)

    async def balances(self) -> list[Balance]:
        """The margin asset's balance."""

        def read(now: float) -> list[Balance]:
            view, past = self._lagged("balances", now)
            sim = self._engine.balances() if view is None else view.balances(self._engine, past)
            ms = self._engine.venue_time_ms()
            return [_balance(b, ms) for b in sim]

        return await self._call("balances", None, read)

    async def user_trades(
        self, symbol: str, *, from_trade_id: str | None = None, limit: int = 500
    ) -> list[Fill]:
        """Our executions on ``symbol`` with trade id >= ``from_trade_id``, oldest first."""
        return await self._call(
            "user_trades",
            symbol,
            lambda _now: list(
                self._engine.user_trades(symbol, from_trade_id=from_trade_id, limit=limit)
            ),
        )

    async def exchange_info(self) -> ExchangeInfo:
        """Symbol rules and rate limits, as ``GET /fapi/v1/exchangeInfo`` would give them."""

        def read(_now: float) -> ExchangeInfo:
            info = self._engine.exchange_info()
            asset = self._engine.config.asset
            return ExchangeInfo(
                rate_limits=_rate_limits(info.rate_limits),
                symbols=tuple(_symbol_rules(s, asset) for s in info.symbols),
                server_time_ms=info.server_time_ms,
            )

        return await self._call("exchange_info", None, read)

    async def server_time(self) -> int:
        """The exchange's clock in epoch milliseconds."""
        return await self._call("time", None, lambda now: self._engine.venue_time_ms(now))

    async def mark_price(self, symbol: str) -> Decimal:
        """``symbol``'s mark price now: the engine's price path (mid = last = mark).

        Raises:
            VenueError: -1121 (FATAL ``bad_symbol``) for a symbol the engine does not list.
        """
        return await self._call("mark_price", symbol, lambda _now: self._engine.mark_price(symbol))

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        """Set ``symbol``'s leverage; returns the leverage the engine applied."""
        return await self._call(
            "leverage",
            symbol,
            lambda now: self._engine.set_leverage(symbol, leverage, now).leverage,
        )

    async def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> None:
        """Arm (or with 0, disarm) the dead-man switch for ``symbol``."""

        def arm(now: float) -> None:
            self._engine.countdown_cancel_all(symbol, countdown_ms, now)

        await self._call("countdown", symbol, arm)

    def user_stream(self) -> AbstractAsyncContextManager[AsyncIterator[StreamEvent]]:
        """Open the user-data stream (see the module docstring for its behaviour)."""
        return self._open_stream()

    @asynccontextmanager
    async def _open_stream(self) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        stream = _UserStream(self)
        try:
            yield stream
        finally:
            stream.close()

    # ------------------------------------------------------------------ plumbing

    def _advance(self) -> float:
        """Read the clock, move the engine there, record the state for lagged reads."""
        now = self._clock()
        self._engine.advance_to(now)
        self._observe()
        return now

    def _observe(self) -> None:
        if self._lag is not None:
            self._lag.observe(self._engine, self._engine.now)

    def _lagged(self, op: str, now: float) -> tuple[LaggedView | None, float]:
        """The view and instant a read must answer from, or ``(None, now)`` for the truth."""
        if self._lag is None or self._injector is None:
            return None, now
        lag = self._injector.rest_lag(op, now)
        return (self._lag, now - lag) if lag > 0 else (None, now)

    async def _call(
        self,
        op: str,
        symbol: str | None,
        action: Callable[[float], _T],
        *,
        weight: int | None = None,
        prefill: Callable[[float, FillMode], None] | None = None,
    ) -> _T:
        """Run one request through the injector and the engine (see the module docstring)."""
        await trio.lowlevel.checkpoint()
        operation = _OPERATIONS.get(op, Operation.QUERY)
        cost = _WEIGHTS[op] if weight is None else weight
        now = self._advance()
        fault = None if self._injector is None else self._injector.before_request(op, symbol, now)
        if fault is None:
            result = self._execute(action, now, operation, cost)
            await self._sleep(0.0)
            return result
        results: list[_T] = []
        rejection: VenueError | None = None
        if fault.execute:
            if fault.prefill is not None and prefill is not None:
                prefill(now, fault.prefill)
            try:
                results.append(self._execute(action, now, operation, cost))
            except VenueError as err:
                rejection = err
        await self._sleep(fault.delay_s)
        if fault.answer is Answer.TIMEOUT:
            raise VenueError.transport(
                request_written=fault.request_written,
                operation=operation,
                detail=f"no answer within {fault.delay_s:g}s ({fault.kind.value})",
            )
        if fault.error is not None:
            raise _fault_error(fault.error, operation)
        if rejection is not None:
            raise rejection
        return results[0]

    def _execute(
        self, action: Callable[[float], _T], now: float, operation: Operation, cost: int
    ) -> _T:
        try:
            if self._config.charge_request_weight and cost > 0:
                self._engine.check_rate(RateKind.REQUEST_WEIGHT, now, cost)
            return action(now)
        except SimRejection as rej:
            raise _rejection_error(rej, operation) from None
        finally:
            self._observe()

    async def _sleep(self, fault_delay_s: float) -> None:
        delay = fault_delay_s + self._config.latency_s
        if delay > 0:
            await trio.sleep(delay)
        else:
            await trio.lowlevel.checkpoint()


class _UserStream:
    """One user-data stream: connection state, cursor, pending events (module docstring)."""

    def __init__(self, venue: InProcessVenue) -> None:
        self._venue = venue
        self._engine = venue.engine
        self._injector = venue.injector
        self._cursor = self._engine.last_event_seq
        self._pending: deque[StreamEvent] = deque()
        self._filter: StreamFilter | None = None
        self._connected = False
        self._ever_connected = False
        self._gap_from = 0.0
        self._gap_reason = ""
        self._next_attempt = -math.inf
        self._polled = False
        self._closed = False

    def close(self) -> None:
        """The context manager exited: the iterator ends."""
        self._closed = True

    def __aiter__(self) -> "_UserStream":
        return self

    async def __anext__(self) -> StreamEvent:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            if self._polled:
                await trio.sleep(self._venue.config.poll_interval_s)
            else:
                await trio.lowlevel.checkpoint()
            self._polled = True
            if not self._closed:
                self._poll()
        return self._pending.popleft()

    def _poll(self) -> None:
        now = self._venue._advance()
        events = self._engine.events_since(self._cursor)
        self._cursor = self._engine.last_event_seq
        if self._connected:
            if self._filter is None:
                self._deliver(events)
                return
            step = self._filter.poll(events, now)
            if step.disconnect is None:
                self._deliver(step.events)
                return
            # Everything produced since step.disconnect.since is lost with the connection.
            self._connected = False
            self._filter = None
            self._gap_from = step.disconnect.since
            self._gap_reason = step.disconnect.reason
            self._next_attempt = now + self._venue.config.reconnect_delay_s
            self._pending.append(
                StreamDisconnected(at=now, since=self._gap_from, reason=self._gap_reason)
            )
            return
        if now >= self._next_attempt:
            self._try_connect(now)

    def _deliver(self, events: tuple[records.SimEvent, ...]) -> None:
        leverage = self._engine.leverage
        self._pending.extend(to_stream_event(e, leverage=leverage) for e in events)

    def _try_connect(self, now: float) -> None:
        retry = self._venue.config.reconnect_delay_s
        injector = self._injector
        if injector is not None:
            outage = injector.stream_outage(now)
            if outage is not None and outage.kind is not FaultKind.LISTEN_KEY_EXPIRY:
                self._next_attempt = now + retry
                return
            # Like the real client: (re-)create the listen key, then connect with it.
            fault = injector.before_request("listen_key", None, now)
            if fault is None or fault.execute:
                injector.renew_listen_key(now)
            if fault is not None and fault.answer is not Answer.NORMAL:
                self._next_attempt = now + fault.delay_s + retry
                return
            if injector.stream_outage(now) is not None:
                self._next_attempt = now + retry
                return
            self._filter = injector.stream_filter(now)
        self._connected = True
        self._pending.append(StreamConnected(at=now, reconnect=self._ever_connected))
        if self._ever_connected:
            self._pending.append(
                StreamGap(started_at=self._gap_from, ended_at=now, reason=self._gap_reason)
            )
        self._ever_connected = True


# ---------------------------------------------------------------------------- conversions


def to_stream_event(
    event: records.SimEvent, *, leverage: Callable[[str], int] | None = None
) -> StreamEvent:
    """Convert one engine event into the protocol's stream event.

    ``leverage`` (symbol -> leverage) fills :attr:`VenuePosition.leverage`, which
    ``ACCOUNT_UPDATE`` does not carry; without it the record's default stays. The event
    carries no available balance either: it is reported as the wallet balance (read
    ``balances()`` for the real figure).
    """
    if isinstance(event, records.OrderTradeUpdate):
        return OrderUpdate(
            order=event.order.venue_order,
            fill=_fill(event),
            event_time_ms=event.event_time_ms,
        )
    if isinstance(event, records.AlgoUpdate):
        return OrderUpdate(
            order=event.order.venue_order, event_time_ms=event.event_time_ms, conditional=True
        )
    if isinstance(event, records.AccountUpdate):
        positions = tuple(
            _position(p, event.transaction_time_ms, leverage) for p in event.positions
        )
        balances = tuple(
            Balance(
                asset=b.asset,
                wallet_balance=b.wallet_balance,
                available_balance=b.wallet_balance,
                cross_wallet_balance=b.cross_wallet_balance,
                venue_time_ms=event.transaction_time_ms,
            )
            for b in event.balances
        )
        return AccountUpdate(
            positions=positions,
            balances=balances,
            reason=event.reason,
            event_time_ms=event.event_time_ms,
        )
    raw = {
        "e": "ACCOUNT_CONFIG_UPDATE",
        "E": event.event_time_ms,
        "T": event.transaction_time_ms,
        "ac": {"s": event.symbol, "l": event.leverage},
    }
    return UnknownStreamEvent(
        event_type="ACCOUNT_CONFIG_UPDATE", raw=json.dumps(raw, separators=(",", ":"))
    )


def _position(
    p: records.PositionUpdate, venue_time_ms: int, leverage: Callable[[str], int] | None
) -> VenuePosition:
    position = VenuePosition(
        symbol=p.symbol,
        quantity=p.quantity,
        entry_price=p.entry_price,
        position_side=p.position_side,
        unrealized_pnl=p.unrealized_pnl,
        venue_time_ms=venue_time_ms,
    )
    return position if leverage is None else attrs.evolve(position, leverage=leverage(p.symbol))


def _fill(event: records.OrderTradeUpdate) -> Fill | None:
    if event.execution_type is not records.ExecutionType.TRADE or event.trade_id is None:
        return None
    order = event.order
    return Fill(
        symbol=order.symbol,
        trade_id=event.trade_id,
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        side=order.side,
        quantity=event.last_filled_qty,
        price=event.last_filled_price,
        fee=event.commission,
        fee_asset=event.commission_asset,
        realized_pnl=event.realized_pnl,
        position_side=order.position_side,
        maker=event.maker,
        venue_time_ms=event.transaction_time_ms,
    )


def _rejection_error(rej: SimRejection, operation: Operation) -> VenueError:
    verdict = classify_error(
        rej.http_status,
        rej.code,
        rej.message,
        operation=operation,
        venue=_ERROR_TABLE,
        retry_after_s=rej.retry_after,
    )
    return VenueError(verdict, rej.message, operation)


def _fault_error(error: FaultError, operation: Operation) -> VenueError:
    verdict = classify_error(
        error.http_status,
        error.code,
        error.message,
        operation=operation,
        venue=_ERROR_TABLE,
        retry_after_s=error.retry_after_s,
    )
    return VenueError(verdict, error.message, operation)


def _balance(b: records.SimBalance, venue_time_ms: int) -> Balance:
    return Balance(
        asset=b.asset,
        wallet_balance=b.wallet_balance,
        available_balance=b.available_balance,
        cross_wallet_balance=b.wallet_balance,
        unrealized_pnl=b.unrealized_pnl,
        margin_balance=b.margin_balance,
        max_withdraw_amount=b.available_balance,
        venue_time_ms=venue_time_ms,
    )


def _rate_limits(cfg: RateLimitConfig) -> tuple[RateLimit, ...]:
    return (
        RateLimit("REQUEST_WEIGHT", "MINUTE", 1, cfg.request_weight_per_minute),
        RateLimit("ORDERS", "MINUTE", 1, cfg.orders_per_minute),
        RateLimit("ORDERS", "SECOND", 10, cfg.orders_per_10s),
    )


_ORDER_TYPES: Final = tuple(t.value for t in OrderType if t is not OrderType.TRAILING_STOP_MARKET)
_TIME_IN_FORCE: Final = tuple(
    t.value for t in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTX)
)


def _symbol_rules(spec: SymbolConfig, margin_asset: str) -> SymbolRules:
    f = spec.filters
    return SymbolRules(
        symbol=spec.symbol,
        status="TRADING",
        base_asset=spec.base_asset,
        quote_asset=spec.quote_asset,
        margin_asset=margin_asset,
        tick_size=f.tick_size,
        min_price=f.min_price,
        max_price=f.max_price,
        step_size=f.step_size,
        min_qty=f.min_qty,
        max_qty=f.max_qty,
        market_step_size=f.market_step_size,
        market_min_qty=f.market_min_qty,
        market_max_qty=f.market_max_qty,
        min_notional=f.min_notional,
        max_num_orders=f.max_num_orders,
        percent_price_up=f.multiplier_up,
        percent_price_down=f.multiplier_down,
        contract_type="PERPETUAL",
        order_types=_ORDER_TYPES,
        time_in_force=_TIME_IN_FORCE,
    )
