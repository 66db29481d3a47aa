"""What the venue says: order, fill and position records as the core sees them.

These are *evidence*, not truth (I4): a record says what one source reported at one time.
Every adapter (the simulated exchange, the Binance wire parser) produces these records, so
reconciliation, belief and orphan logic never see a venue's raw format.

Quantities and prices are ``Decimal``; times are seconds as floats on the injected clock
(``ts``) or exchange milliseconds (``venue_time_ms``) where the venue stamped them.
"""

import enum
from decimal import Decimal
from typing import Final

import attrs

from scalper.core.types import ZERO, OrderType, PositionSide, Side, TimeInForce

__all__ = [
    "INTERVAL_SECONDS",
    "AccountSnapshot",
    "Balance",
    "ExchangeInfo",
    "Fill",
    "OrderRequest",
    "RateLimit",
    "SymbolRules",
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


@attrs.frozen
class Balance:
    """One asset's balance in the futures wallet."""

    asset: str
    wallet_balance: Decimal
    available_balance: Decimal
    cross_wallet_balance: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO
    margin_balance: Decimal | None = None
    max_withdraw_amount: Decimal | None = None
    venue_time_ms: int = 0


@attrs.frozen
class RateLimit:
    """One rate limiter from exchangeInfo (``REQUEST_WEIGHT`` or ``ORDERS``)."""

    rate_limit_type: str
    interval: str
    interval_num: int
    limit: int

    @property
    def window_s(self) -> int:
        """Length of the limiter's window in seconds."""
        return INTERVAL_SECONDS[self.interval] * self.interval_num


INTERVAL_SECONDS: Final = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}


@attrs.frozen
class SymbolRules:
    """Trading rules of one symbol from exchangeInfo filters.

    ``tick_size``/``step_size`` come from ``PRICE_FILTER``/``LOT_SIZE`` (never from the
    ``*Precision`` fields, which Binance says not to use). A zero bound disables that bound.
    ``max_num_algo_orders`` is ``None`` since Binance removed that filter (2025-12-29).
    """

    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    margin_asset: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step_size: Decimal | None = None
    market_min_qty: Decimal | None = None
    market_max_qty: Decimal | None = None
    min_notional: Decimal | None = None
    max_num_orders: int | None = None
    max_num_algo_orders: int | None = None
    percent_price_up: Decimal | None = None
    percent_price_down: Decimal | None = None
    contract_type: str | None = None
    order_types: tuple[str, ...] = ()
    time_in_force: tuple[str, ...] = ()

    @property
    def is_trading(self) -> bool:
        """True if the symbol accepts new orders."""
        return self.status == "TRADING"


@attrs.frozen
class ExchangeInfo:
    """``GET /fapi/v1/exchangeInfo``: rate limits and per-symbol rules."""

    rate_limits: tuple[RateLimit, ...]
    symbols: tuple[SymbolRules, ...]
    server_time_ms: int = 0

    def rules_for(self, symbol: str) -> SymbolRules | None:
        """The rules of ``symbol``, or ``None`` if the venue does not list it."""
        for rules in self.symbols:
            if rules.symbol == symbol:
                return rules
        return None
