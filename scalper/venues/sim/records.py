"""Records the simulated exchange produces: order snapshots, user-data events, history.

Theory of operation
-------------------

Three kinds of output, all immutable attrs records:

* :class:`SimOrder` is a full snapshot of one order (plain or algo) with every field the
  Binance wire format needs (``cumQuote``, ``time``, ``updateTime``, ``origType``, algo
  status, ...). :attr:`SimOrder.venue_order` reduces it to the core's
  :class:`~scalper.core.model.VenueOrder`, the evidence record the rest of scalper reads.
* **User-data events** (:data:`SimEvent`) mirror Binance's user stream:
  :class:`OrderTradeUpdate` (``ORDER_TRADE_UPDATE``), :class:`AccountUpdate`
  (``ACCOUNT_UPDATE``), :class:`AlgoUpdate` (``ALGO_UPDATE``) and
  :class:`AccountConfigUpdate` (``ACCOUNT_CONFIG_UPDATE``). Each carries a ``seq``, strictly
  increasing across all events of one engine, so a consumer can resume with a cursor and
  detect a gap.
* **History** (:data:`HistoryRecord`): the authoritative ground truth the chaos invariant
  checker reads. Every accepted order (with the full request), every fill, every algo
  trigger, every cancel or expiry, every rejection. History is what *happened*; events are
  what the exchange *said*, and a fault injector may drop or delay events but never history.

Ids are decimal strings (the engine counts integers); times are engine seconds (``ts``)
and Binance epoch milliseconds (``*_ms``).
"""

import enum
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

import attrs

from scalper.core.model import Fill, OrderRequest, VenueOrder, VenueOrderStatus
from scalper.core.types import ZERO, OrderType, PositionSide, Side, TimeInForce

__all__ = [
    "AccountConfigUpdate",
    "AccountUpdate",
    "AlgoStatus",
    "AlgoTriggered",
    "AlgoUpdate",
    "BalanceUpdate",
    "CloseReason",
    "CountdownState",
    "ExecutionType",
    "ExpireReason",
    "FillRecorded",
    "HistoryRecord",
    "LeverageChange",
    "OrderAccepted",
    "OrderClosed",
    "OrderTradeUpdate",
    "PositionUpdate",
    "RequestRejected",
    "SimBalance",
    "SimEvent",
    "SimHistory",
    "SimOrder",
]


class ExecutionType(enum.StrEnum):
    """Binance ``o.x``: what this ORDER_TRADE_UPDATE reports."""

    NEW = "NEW"
    TRADE = "TRADE"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


class AlgoStatus(enum.StrEnum):
    """Binance algo-order status (``ALGO_UPDATE.X`` and ``algoStatus``)."""

    NEW = "NEW"
    TRIGGERING = "TRIGGERING"
    TRIGGERED = "TRIGGERED"
    FINISHED = "FINISHED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"

    @property
    def is_open(self) -> bool:
        """True while the algo order waits for (or is in) its trigger."""
        return self in (AlgoStatus.NEW, AlgoStatus.TRIGGERING)


class ExpireReason(enum.StrEnum):
    """Binance ``o.er``: why an order expired. :attr:`code` is the wire value."""

    NONE = "NONE"
    IOC_REMAINDER = "IOC_REMAINDER"
    REDUCE_ONLY = "REDUCE_ONLY"
    MARKET_REMAINDER = "MARKET_REMAINDER"

    @property
    def code(self) -> int:
        """The numeric ``er`` value Binance sends."""
        return _EXPIRE_CODES[self]


_EXPIRE_CODES = {
    ExpireReason.NONE: 0,
    ExpireReason.IOC_REMAINDER: 2,
    ExpireReason.REDUCE_ONLY: 4,
    ExpireReason.MARKET_REMAINDER: 9,
}


class CloseReason(enum.StrEnum):
    """Why an order left the book without filling completely (history reason tags)."""

    USER_CANCEL = "user_cancel"
    CANCEL_ALL = "cancel_all"
    COUNTDOWN = "countdown"
    IOC_REMAINDER = "ioc_remainder"
    MARKET_REMAINDER = "market_remainder"
    REDUCE_ONLY = "reduce_only"
    NO_POSITION = "no_position"
    MARGIN_INSUFFICIENT = "margin_insufficient"


@attrs.frozen
class SimOrder:
    """Everything the exchange knows about one order at one instant.

    For an algo (conditional) order, ``order_id`` is the algo id, ``status`` mirrors the
    triggered order once there is one (``NEW`` before), and ``actual_order_id`` names the
    triggered order. A triggered order carries ``parent_algo_id`` and reuses the algo
    order's client id.
    """

    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    orig_type: OrderType
    status: VenueOrderStatus
    quantity: Decimal
    filled_qty: Decimal
    cum_quote: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce | None
    reduce_only: bool
    close_position: bool
    position_side: PositionSide
    create_time_ms: int
    update_time_ms: int
    algo: bool = False
    algo_status: AlgoStatus | None = None
    actual_order_id: str | None = None
    parent_algo_id: str | None = None
    trigger_time_ms: int | None = None
    expire_reason: ExpireReason = ExpireReason.NONE
    reject_message: str = ""

    @property
    def avg_price(self) -> Decimal | None:
        """Volume-weighted average fill price, ``None`` before the first fill."""
        if self.filled_qty == 0:
            return None
        return self.cum_quote / self.filled_qty

    @property
    def is_open(self) -> bool:
        """True while the order can still fill (or, for an algo order, still trigger)."""
        if self.algo_status is not None:
            return self.algo_status.is_open
        return self.status.is_open

    @property
    def venue_order(self) -> VenueOrder:
        """The core's evidence record for this order."""
        return VenueOrder(
            symbol=self.symbol,
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            side=self.side,
            order_type=self.order_type,
            status=self.status,
            quantity=self.quantity,
            filled_qty=self.filled_qty,
            price=self.price,
            stop_price=self.stop_price,
            avg_price=self.avg_price,
            time_in_force=self.time_in_force,
            reduce_only=self.reduce_only,
            close_position=self.close_position,
            position_side=self.position_side,
            venue_time_ms=self.update_time_ms,
        )


@attrs.frozen
class SimBalance:
    """The USDT wallet as ``/fapi/v3/balance`` and ``/fapi/v3/account`` report it."""

    asset: str
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    initial_margin: Decimal
    available_balance: Decimal


@attrs.frozen
class LeverageChange:
    """Answer to a leverage change (``POST /fapi/v1/leverage``)."""

    symbol: str
    leverage: int
    max_notional_value: Decimal


@attrs.frozen
class CountdownState:
    """Answer to ``countdownCancelAll``: the armed countdown (0 = disarmed)."""

    symbol: str
    countdown_ms: int
    deadline: float | None


# ---------------------------------------------------------------------------- events


@attrs.frozen
class OrderTradeUpdate:
    """``ORDER_TRADE_UPDATE``: one execution report; ``order`` is the state after it."""

    seq: int
    event_time_ms: int
    transaction_time_ms: int
    execution_type: ExecutionType
    order: SimOrder
    last_filled_qty: Decimal = ZERO
    last_filled_price: Decimal = ZERO
    trade_id: str | None = None
    commission: Decimal = ZERO
    commission_asset: str = "USDT"
    realized_pnl: Decimal = ZERO
    maker: bool = False
    expire_reason: ExpireReason = ExpireReason.NONE


@attrs.frozen
class BalanceUpdate:
    """One ``ACCOUNT_UPDATE.a.B`` entry."""

    asset: str
    wallet_balance: Decimal
    cross_wallet_balance: Decimal
    balance_change: Decimal


@attrs.frozen
class PositionUpdate:
    """One ``ACCOUNT_UPDATE.a.P`` entry (only changed positions are sent)."""

    symbol: str
    position_side: PositionSide
    quantity: Decimal
    entry_price: Decimal
    accumulated_realized: Decimal
    unrealized_pnl: Decimal


@attrs.frozen
class AccountUpdate:
    """``ACCOUNT_UPDATE``: balances and changed positions after a fill (reason ``ORDER``)."""

    seq: int
    event_time_ms: int
    transaction_time_ms: int
    reason: str
    balances: tuple[BalanceUpdate, ...]
    positions: tuple[PositionUpdate, ...]


@attrs.frozen
class AlgoUpdate:
    """``ALGO_UPDATE``: a conditional order changed status; ``order`` is the algo order."""

    seq: int
    event_time_ms: int
    transaction_time_ms: int
    algo_status: AlgoStatus
    order: SimOrder
    reject_message: str = ""


@attrs.frozen
class AccountConfigUpdate:
    """``ACCOUNT_CONFIG_UPDATE``: a symbol's leverage changed."""

    seq: int
    event_time_ms: int
    transaction_time_ms: int
    symbol: str
    leverage: int


SimEvent = OrderTradeUpdate | AccountUpdate | AlgoUpdate | AccountConfigUpdate

# ---------------------------------------------------------------------------- history


@attrs.frozen
class OrderAccepted:
    """An order entered the exchange. ``request`` is the full request as received.

    For an order created by an algo trigger, ``request`` is the synthesized plain order
    (MARKET or LIMIT) and ``parent_algo_id`` names the algo order.
    """

    seq: int
    ts: float
    time_ms: int
    order_id: str
    client_order_id: str
    request: OrderRequest
    algo: bool
    parent_algo_id: str | None = None


@attrs.frozen
class FillRecorded:
    """One trade of one of our orders (the exactly-once key is ``fill.key``)."""

    seq: int
    ts: float
    fill: Fill


@attrs.frozen
class AlgoTriggered:
    """An algo order's trigger condition was met at ``trigger_price``.

    ``outcome`` is ``triggered`` (``child_order_id`` names the placed order),
    ``no_position`` (close-position with nothing to close) or ``margin_insufficient``.
    """

    seq: int
    ts: float
    time_ms: int
    algo_id: str
    symbol: str
    trigger_price: Decimal
    outcome: str
    child_order_id: str | None = None


@attrs.frozen
class OrderClosed:
    """An order left the book unfilled or partly filled: canceled, expired or rejected."""

    seq: int
    ts: float
    time_ms: int
    order_id: str
    client_order_id: str
    symbol: str
    status: VenueOrderStatus
    reason: CloseReason
    filled_qty: Decimal
    algo: bool = False


@attrs.frozen
class RequestRejected:
    """A request the exchange refused; nothing else changed because of it."""

    seq: int
    ts: float
    time_ms: int
    action: str
    code: int
    message: str
    symbol: str
    request: OrderRequest | None = None
    order_id: str | None = None
    client_order_id: str | None = None


HistoryRecord = OrderAccepted | FillRecorded | AlgoTriggered | OrderClosed | RequestRejected


_R = TypeVar("_R", bound=HistoryRecord)


class SimHistory:
    """The authoritative, append-only record of what happened at the exchange.

    Records are numbered by ``seq`` (1, 2, ...) in the order they happened. Only the engine
    appends; readers get tuples, so a test cannot edit the truth it checks against.
    """

    def __init__(self) -> None:
        self._records: list[HistoryRecord] = []

    def __len__(self) -> int:
        return len(self._records)

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next record will get."""
        return len(self._records) + 1

    def append(self, make: Callable[[int], _R]) -> _R:
        """Append the record ``make(seq)`` builds and return it (engine use only)."""
        record = make(self.next_seq)
        self._records.append(record)
        return record

    @property
    def records(self) -> tuple[HistoryRecord, ...]:
        """Every record, in order."""
        return tuple(self._records)

    def accepted(self) -> tuple[OrderAccepted, ...]:
        """Every accepted order (including orders placed by algo triggers)."""
        return tuple(r for r in self._records if isinstance(r, OrderAccepted))

    def fills(self, symbol: str | None = None) -> tuple[Fill, ...]:
        """Every fill, in execution order, optionally of one symbol."""
        return tuple(
            r.fill
            for r in self._records
            if isinstance(r, FillRecorded) and (symbol is None or r.fill.symbol == symbol)
        )

    def triggers(self) -> tuple[AlgoTriggered, ...]:
        """Every algo trigger."""
        return tuple(r for r in self._records if isinstance(r, AlgoTriggered))

    def closures(self) -> tuple[OrderClosed, ...]:
        """Every cancel and expiry."""
        return tuple(r for r in self._records if isinstance(r, OrderClosed))

    def rejections(self) -> tuple[RequestRejected, ...]:
        """Every refused request."""
        return tuple(r for r in self._records if isinstance(r, RequestRejected))
