"""The Venue protocol: the one interface every actor uses to talk to an exchange.

Theory of operation
-------------------

Three implementations are interchangeable behind :class:`Venue`: the real Binance USD-M
adapter (``scalper.venues.binance``), the in-process simulated exchange (for runs under
simulated time, no sockets, no threads) and the same simulator over loopback HTTP and
WebSocket in Binance's wire format. Everything they return is a core record from
:mod:`scalper.core.model`: evidence, never truth (I4).

Every failure is one exception type, :class:`VenueError`, carrying core's
:class:`~scalper.core.errors.ErrorVerdict`: the error class, HTTP status, venue code and
message. The most important class is AMBIGUOUS: the request may have taken effect. A
transport failure *after* the request was written (a timeout waiting for the answer, a
reset) is AMBIGUOUS for every mutating call; the caller resolves it by querying the client
order id, never by resending.

The user-data stream is an async iterator of :data:`StreamEvent` inside an async context
manager. Besides order and account updates it reports its own health: a
:class:`StreamDisconnected` as soon as the connection is lost (the adapter keeps
reconnecting on its own; the iterator does not end), and a :class:`StreamGap` after the
reconnect, which tells the EvidenceCollector that events may have been missed between two
instants, so trades must be backfilled over REST.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import ParamSpec, Protocol, TypeVar, runtime_checkable

import attrs
import trio

from scalper.core.errors import ErrorClass, ErrorVerdict, Operation, classify_transport_failure
from scalper.core.model import (
    AccountSnapshot,
    Balance,
    ExchangeInfo,
    Fill,
    OrderRequest,
    VenueOrder,
    VenuePosition,
)

__all__ = [
    "AccountUpdate",
    "OrderUpdate",
    "StreamConnected",
    "StreamDisconnected",
    "StreamEvent",
    "StreamGap",
    "UnknownStreamEvent",
    "Venue",
    "VenueError",
    "call_within",
    "take_snapshot",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class VenueError(Exception):
    """A venue call failed. ``verdict`` says what that means for the order (see core.errors).

    The message never contains secrets: adapters build it from the venue's code and text.
    """

    def __init__(self, verdict: ErrorVerdict, message: str, operation: Operation) -> None:
        super().__init__(
            f"{operation.value.lower()} failed: {verdict.error_class.value} "
            f"({verdict.reason}; http={verdict.http_status} code={verdict.code}): {message}"
        )
        self.verdict = verdict
        self.message = message
        self.operation = operation

    @property
    def error_class(self) -> ErrorClass:
        """The error class that drives retry and resolution decisions."""
        return self.verdict.error_class

    @property
    def http_status(self) -> int | None:
        """HTTP status, if the venue answered at all."""
        return self.verdict.http_status

    @property
    def code(self) -> int | None:
        """The venue's error code (Binance's negative codes), if any."""
        return self.verdict.code

    @property
    def is_ambiguous(self) -> bool:
        """True if the request may have taken effect: resolve by query, never by resend."""
        return self.verdict.error_class is ErrorClass.AMBIGUOUS

    @classmethod
    def transport(cls, *, request_written: bool, operation: Operation, detail: str) -> "VenueError":
        """A transport failure; AMBIGUOUS for mutations if the request was written."""
        verdict = classify_transport_failure(request_written=request_written, operation=operation)
        return cls(verdict, detail, operation)


@attrs.frozen
class OrderUpdate:
    """An order changed at the venue; ``fill`` is set when the change was an execution."""

    order: VenueOrder
    fill: Fill | None = None
    event_time_ms: int = 0
    conditional: bool = False


@attrs.frozen
class AccountUpdate:
    """Positions and balances changed at the venue."""

    positions: tuple[VenuePosition, ...] = ()
    balances: tuple[Balance, ...] = ()
    reason: str = ""
    event_time_ms: int = 0


@attrs.frozen
class StreamConnected:
    """The stream is (re)connected; ``at`` on the injected clock."""

    at: float
    reconnect: bool = False


@attrs.frozen
class StreamDisconnected:
    """The stream lost its connection at ``at``; events from ``since`` on may be missing.

    The adapter is reconnecting; until its :class:`StreamGap` arrives the user stream is
    blind, and a fill can only be learned over REST.
    """

    at: float
    since: float
    reason: str


@attrs.frozen
class StreamGap:
    """Events between ``started_at`` and ``ended_at`` may have been missed.

    Emitted after a disconnect, a listenKey expiry or a detected sequence hole. The
    EvidenceCollector answers it with a REST snapshot and a trade backfill (I10).
    """

    started_at: float
    ended_at: float
    reason: str


@attrs.frozen
class UnknownStreamEvent:
    """An event type the adapter does not know: surfaced, never a crash."""

    event_type: str
    raw: str


StreamEvent = (
    OrderUpdate
    | AccountUpdate
    | StreamConnected
    | StreamDisconnected
    | StreamGap
    | UnknownStreamEvent
)


@runtime_checkable
class Venue(Protocol):
    """What scalper needs from an exchange. All calls raise :class:`VenueError` on failure.

    ``conditional`` selects the conditional-order (algo) namespace where a venue keeps one
    (Binance since 2025-12-09); the simulated exchange mirrors that split.
    """

    name: str

    async def create_order(self, req: OrderRequest) -> VenueOrder:
        """Place an order under ``req.client_order_id``."""
        ...

    async def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        conditional: bool = False,
    ) -> VenueOrder:
        """Cancel one order. -2011 ("not open now") surfaces as IDEMPOTENT_SAFE."""
        ...

    async def query_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        conditional: bool = False,
    ) -> VenueOrder:
        """Look one order up; not found surfaces as a VenueError with reason order_not_found."""
        ...

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """All open orders, plain and conditional."""
        ...

    async def positions(self) -> list[VenuePosition]:
        """Current positions (non-zero ones at least)."""
        ...

    async def balances(self) -> list[Balance]:
        """Wallet balances per asset."""
        ...

    async def user_trades(
        self, symbol: str, *, from_trade_id: str | None = None, limit: int = 500
    ) -> list[Fill]:
        """Our executions on ``symbol`` with trade id >= ``from_trade_id``, oldest first."""
        ...

    async def exchange_info(self) -> ExchangeInfo:
        """Symbol filters and rate limits."""
        ...

    async def server_time(self) -> int:
        """The venue's clock, in epoch milliseconds."""
        ...

    async def mark_price(self, symbol: str) -> Decimal:
        """``symbol``'s current mark price (what liquidation and mark-price triggers use)."""
        ...

    async def set_leverage(self, symbol: str, leverage: int) -> int:
        """Set the symbol's leverage; returns the leverage the venue applied."""
        ...

    async def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> None:
        """Arm (or with 0, disarm) the venue's dead-man switch for ``symbol``."""
        ...

    def user_stream(self) -> AbstractAsyncContextManager[AsyncIterator[StreamEvent]]:
        """Open the private user-data stream."""
        ...


async def call_within(
    timeout_s: float,
    operation: Operation,
    call: Callable[_P, Awaitable[_T]],
    /,
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _T:
    """Run one venue call in a cancel scope; no answer in time is a transport failure.

    The request may have been written when the deadline hit, so a timeout becomes
    :meth:`VenueError.transport` with ``request_written=True``: AMBIGUOUS for mutations
    (resolve by query), RETRYABLE for reads. Callers then handle one exception type.
    """
    try:
        with trio.fail_after(timeout_s):
            return await call(*args, **kwargs)
    except trio.TooSlowError:
        raise VenueError.transport(
            request_written=True,
            operation=operation,
            detail=f"no answer within {timeout_s:g}s",
        ) from None


async def take_snapshot(
    venue: Venue, taken_at: float, symbols: frozenset[str] = frozenset()
) -> AccountSnapshot:
    """Read open orders and positions into one :class:`AccountSnapshot`.

    ``taken_at`` is the instant *before* the first request: anything after it may be missing.
    """
    orders = await venue.open_orders()
    positions = await venue.positions()
    if symbols:
        orders = [o for o in orders if o.symbol in symbols]
        positions = [p for p in positions if p.symbol in symbols]
    return AccountSnapshot(
        taken_at=taken_at,
        open_orders=tuple(orders),
        positions=tuple(p for p in positions if p.quantity != Decimal(0)),
        symbols=symbols,
    )
