"""What the venue says: order, fill and position records as the core sees them.

These are *evidence*, not truth (I4): a record says what one source reported at one time.
Every adapter (the simulated exchange, the Binance wire parser) produces these records, so
reconciliation, belief and orphan logic never see a venue's raw format.

Quantities and prices are ``Decimal``; times are seconds as floats on the injected clock
(``ts``) or exchange milliseconds (``venue_time_ms``) where the venue stamped them.
"""

import enum
from decimal import Decimal

import attrs

from scalper.core.types import ZERO, OrderType, PositionSide, Side, TimeInForce

__all__ = [
    "AccountSnapshot",
    "Fill",
    "OrderRequest",
    "VenueOrder",
    "VenueOrderStatus",
    "VenuePosition",
]


class VenueOrderStatus(enum.StrEnum):
    """Order status as the venue reports it (Binance ``X``)."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"

    @property
    def is_open(self) -> bool:
        """True while the order can still fill."""
        return self in (VenueOrderStatus.NEW, VenueOrderStatus.PARTIALLY_FILLED)


@attrs.frozen
class OrderRequest:
    """One order as sent to a venue: an intent's order spec plus its client order id.

    This is what the intent ledger stores before the send (the full order spec) and what
    every ``Venue.create_order`` takes. Conditional types (``OrderType.is_conditional``) go
    to Binance's algo-order endpoints; the adapter decides, not the caller.
    ``quantity`` is ``None`` only for ``close_position`` stops, which close whatever is open.
    """

    symbol: str
    side: Side
    order_type: OrderType
    client_order_id: str
    quantity: Decimal | None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    close_position: bool = False
    position_side: PositionSide = PositionSide.BOTH

    @property
    def is_exit(self) -> bool:
        """True for orders that can only reduce a position (reduce-only or close-position)."""
        return self.reduce_only or self.close_position


@attrs.frozen
class VenueOrder:
    """One order as the venue reported it.

    ``order_id`` is the venue's id (an algo id for conditional orders); ``client_order_id``
    is ours if we placed it (see :mod:`scalper.core.ids`), or anything else for foreign orders.
    """

    symbol: str
    order_id: str
    client_order_id: str
    side: Side
    order_type: OrderType
    status: VenueOrderStatus
    quantity: Decimal
    filled_qty: Decimal = ZERO
    price: Decimal | None = None
    stop_price: Decimal | None = None
    avg_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False
    close_position: bool = False
    position_side: PositionSide = PositionSide.BOTH
    venue_time_ms: int = 0

    @property
    def remaining_qty(self) -> Decimal:
        """Quantity that can still fill (zero once the order is closed)."""
        if not self.status.is_open:
            return ZERO
        return max(self.quantity - self.filled_qty, ZERO)

    @property
    def is_exit(self) -> bool:
        """True for orders that can only reduce a position."""
        return self.reduce_only or self.close_position


@attrs.frozen
class Fill:
    """One execution (trade) of one order. ``trade_id`` is unique per symbol at the venue (I10)."""

    symbol: str
    trade_id: str
    order_id: str
    client_order_id: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal = ZERO
    fee_asset: str = "USDT"
    realized_pnl: Decimal = ZERO
    position_side: PositionSide = PositionSide.BOTH
    maker: bool = False
    venue_time_ms: int = 0

    @property
    def key(self) -> tuple[str, str]:
        """The exactly-once key of this fill: (symbol, trade id)."""
        return (self.symbol, self.trade_id)


@attrs.frozen
class VenuePosition:
    """One position as the venue reported it. ``quantity`` is signed (negative is short)."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal = ZERO
    position_side: PositionSide = PositionSide.BOTH
    unrealized_pnl: Decimal = ZERO
    leverage: int = 1
    venue_time_ms: int = 0


@attrs.frozen
class AccountSnapshot:
    """A REST snapshot of the account: open orders (plain and conditional) and positions.

    ``taken_at`` is when the snapshot's requests *started* on the injected clock: anything
    that happened after that instant may be missing from it (snapshots lag the stream).
    """

    taken_at: float
    open_orders: tuple[VenueOrder, ...] = ()
    positions: tuple[VenuePosition, ...] = ()
    symbols: frozenset[str] = frozenset()

    def orders_for(self, symbol: str) -> tuple[VenueOrder, ...]:
        """Open orders of one symbol."""
        return tuple(o for o in self.open_orders if o.symbol == symbol)

    def position_qty(self, symbol: str, position_side: PositionSide = PositionSide.BOTH) -> Decimal:
        """Signed position quantity for one symbol and position side (zero if absent)."""
        for p in self.positions:
            if p.symbol == symbol and p.position_side is position_side:
                return p.quantity
        return ZERO
