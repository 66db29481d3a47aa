"""Vocabulary shared by every core module: sides, order types, time in force, position sides.

These enums use Binance USD-M's own spellings as values, so the wire layer can map them
one-to-one, but nothing here depends on a venue: the simulated exchange, the real adapter
and the decision logic all speak this vocabulary.
"""

import enum
from decimal import Decimal

__all__ = [
    "ZERO",
    "OrderType",
    "PositionMode",
    "PositionSide",
    "Side",
    "TimeInForce",
    "signed_qty",
]

ZERO = Decimal(0)


class Side(enum.StrEnum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL: the sign a fill of this side adds to a net position."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> "Side":
        """The side that reduces a position opened by this side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.StrEnum):
    """Order types, with Binance's names."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP = "STOP"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"

    @property
    def is_conditional(self) -> bool:
        """True for orders that rest untriggered until a stop price is crossed.

        On Binance these live on the algo-order endpoints since 2025-12-09.
        """
        return self in _CONDITIONAL

    @property
    def needs_price(self) -> bool:
        """True if the type requires a limit price."""
        return self in (OrderType.LIMIT, OrderType.STOP, OrderType.TAKE_PROFIT)

    @property
    def needs_stop_price(self) -> bool:
        """True if the type requires a stop (trigger) price."""
        return self in (
            OrderType.STOP,
            OrderType.STOP_MARKET,
            OrderType.TAKE_PROFIT,
            OrderType.TAKE_PROFIT_MARKET,
        )


_CONDITIONAL = frozenset(
    {
        OrderType.STOP,
        OrderType.STOP_MARKET,
        OrderType.TAKE_PROFIT,
        OrderType.TAKE_PROFIT_MARKET,
        OrderType.TRAILING_STOP_MARKET,
    }
)


class TimeInForce(enum.StrEnum):
    """Time in force. GTX is Binance's post-only."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"
    GTD = "GTD"


class PositionSide(enum.StrEnum):
    """Binance ``positionSide``: BOTH in one-way mode, LONG or SHORT in hedge mode."""

    BOTH = "BOTH"
    LONG = "LONG"
    SHORT = "SHORT"


class PositionMode(enum.StrEnum):
    """Account position mode."""

    ONE_WAY = "ONE_WAY"
    HEDGE = "HEDGE"


def signed_qty(side: Side, qty: Decimal) -> Decimal:
    """Return ``qty`` with the sign a fill of ``side`` contributes to a net position."""
    return qty if side is Side.BUY else -qty
