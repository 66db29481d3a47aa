"""Exchange filters of one symbol, checked the way Binance USD-M checks them.

Theory of operation
-------------------

``exchangeInfo`` publishes per-symbol filters; an order that breaks one is rejected before
it reaches the book, with a specific code (``reference/binance_usdm.md`` §3, §6). This
module holds the filter values (:class:`SymbolFilters`, which is also what ``exchangeInfo``
serves) and one checking function per filter. Each raises :class:`SimRejection` with
Binance's code and text, so the engine decides nothing here: it only calls the checks in
Binance's order.

Rules:

* **Precision** (-1111): a price or quantity with more decimals than ``price_precision`` /
  ``quantity_precision`` is malformed before any filter looks at it.
* **PRICE_FILTER** (applies to ``price`` and ``stopPrice``): ``price >= minPrice`` (-4013),
  ``price <= maxPrice`` (-4002; -4007 for a stop price) and
  ``(price - minPrice) % tickSize == 0`` (-4014). A zero ``min_price``/``max_price``
  disables that bound, as on Binance.
* **LOT_SIZE** / **MARKET_LOT_SIZE** (the latter for MARKET-executing types):
  ``minQty`` (-4004), ``maxQty`` (-4005), ``(qty - minQty) % stepSize == 0`` (-4023).
* **PERCENT_PRICE**: a BUY limit price at most ``mark * multiplierUp`` (-4016), a SELL at
  least ``mark * multiplierDown`` (-4024).
* **MIN_NOTIONAL** (-4164): ``price * qty >= notional`` (mark price for MARKET); orders that
  can only reduce are exempt, as Binance's own message says.
* **MAX_NUM_ORDERS**: the count itself is the engine's business (it owns the open orders);
  the limit lives here because ``exchangeInfo`` publishes it.
"""

from decimal import Decimal

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.types import Side
from scalper.venues.sim.errors import ErrorCode, reject

__all__ = [
    "SymbolFilters",
    "check_min_notional",
    "check_percent_price",
    "check_precision",
    "check_price",
    "check_quantity",
    "decimals",
]


def _positive(_inst: object, attribute: "attrs.Attribute[Decimal]", value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise CoreValueError(attribute.name, f"must be a positive finite Decimal, got {value!r}")


def _non_negative(_inst: object, attribute: "attrs.Attribute[Decimal]", value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise CoreValueError(attribute.name, f"must be a finite Decimal >= 0, got {value!r}")


def _count(_inst: object, attribute: "attrs.Attribute[int]", value: int) -> None:
    if value < 1:
        raise CoreValueError(attribute.name, f"must be >= 1, got {value}")


def _precision(_inst: object, attribute: "attrs.Attribute[int]", value: int) -> None:
    if not 0 <= value <= 18:
        raise CoreValueError(attribute.name, f"must be in 0..18, got {value}")


def decimals(value: Decimal) -> int:
    """Number of significant decimal places of ``value`` (``Decimal('1.50')`` has 1)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int), "finite decimals only"
    return max(0, -exponent)


@attrs.frozen
class SymbolFilters:
    """One symbol's exchange filters (defaults: BTCUSDT-like values from live exchangeInfo)."""

    tick_size: Decimal = attrs.field(default=Decimal("0.10"), validator=_positive)
    min_price: Decimal = attrs.field(default=Decimal("0.10"), validator=_non_negative)
    max_price: Decimal = attrs.field(default=Decimal(4529764), validator=_non_negative)
    step_size: Decimal = attrs.field(default=Decimal("0.001"), validator=_positive)
    min_qty: Decimal = attrs.field(default=Decimal("0.001"), validator=_positive)
    max_qty: Decimal = attrs.field(default=Decimal(1000), validator=_positive)
    market_step_size: Decimal = attrs.field(default=Decimal("0.001"), validator=_positive)
    market_min_qty: Decimal = attrs.field(default=Decimal("0.001"), validator=_positive)
    market_max_qty: Decimal = attrs.field(default=Decimal(120), validator=_positive)
    min_notional: Decimal = attrs.field(default=Decimal(100), validator=_non_negative)
    max_num_orders: int = attrs.field(default=200, validator=_count)
    multiplier_up: Decimal = attrs.field(default=Decimal("1.05"), validator=_positive)
    multiplier_down: Decimal = attrs.field(default=Decimal("0.95"), validator=_positive)
    price_precision: int = attrs.field(default=2, validator=_precision)
    quantity_precision: int = attrs.field(default=3, validator=_precision)

    def __attrs_post_init__(self) -> None:
        if self.max_price and self.max_price < self.min_price:
            raise CoreValueError("max_price", "must be >= min_price (or 0 to disable)")
        if self.max_qty < self.min_qty:
            raise CoreValueError("max_qty", "must be >= min_qty")
        if self.market_max_qty < self.market_min_qty:
            raise CoreValueError("market_max_qty", "must be >= market_min_qty")
        if self.multiplier_down >= self.multiplier_up:
            raise CoreValueError("multiplier_down", "must be < multiplier_up")
        if decimals(self.tick_size) > self.price_precision:
            raise CoreValueError("price_precision", "must allow the tick size's decimals")
        if max(decimals(self.step_size), decimals(self.market_step_size)) > self.quantity_precision:
            raise CoreValueError("quantity_precision", "must allow the step sizes' decimals")


def check_precision(value: Decimal, precision: int) -> None:
    """Raise -1111 if ``value`` has more decimals than ``precision``."""
    if decimals(value) > precision:
        raise reject(ErrorCode.BAD_PRECISION)


def check_price(filters: SymbolFilters, price: Decimal, *, is_stop: bool = False) -> None:
    """PRICE_FILTER on a limit price (or, with ``is_stop``, a stop/trigger price)."""
    if price <= 0:
        raise reject(
            ErrorCode.STOP_PRICE_LESS_THAN_ZERO if is_stop else ErrorCode.PRICE_LESS_THAN_ZERO
        )
    check_precision(price, filters.price_precision)
    if filters.min_price and price < filters.min_price:
        raise reject(ErrorCode.PRICE_LESS_THAN_MIN_PRICE)
    if filters.max_price and price > filters.max_price:
        raise reject(
            ErrorCode.STOP_PRICE_GREATER_THAN_MAX_PRICE
            if is_stop
            else ErrorCode.PRICE_GREATER_THAN_MAX_PRICE
        )
    if (price - filters.min_price) % filters.tick_size != 0:
        raise reject(ErrorCode.PRICE_NOT_INCREASED_BY_TICK_SIZE)


def check_quantity(filters: SymbolFilters, qty: Decimal, *, market: bool) -> None:
    """LOT_SIZE (or MARKET_LOT_SIZE when ``market``) on an order quantity."""
    if qty <= 0:
        raise reject(ErrorCode.QTY_LESS_THAN_ZERO)
    check_precision(qty, filters.quantity_precision)
    if market:
        lo, hi, step = filters.market_min_qty, filters.market_max_qty, filters.market_step_size
    else:
        lo, hi, step = filters.min_qty, filters.max_qty, filters.step_size
    if qty < lo:
        raise reject(ErrorCode.QTY_LESS_THAN_MIN_QTY)
    if qty > hi:
        raise reject(ErrorCode.QTY_GREATER_THAN_MAX_QTY)
    if (qty - lo) % step != 0:
        raise reject(ErrorCode.QTY_NOT_INCREASED_BY_STEP_SIZE)


def check_percent_price(filters: SymbolFilters, side: Side, price: Decimal, mark: Decimal) -> None:
    """PERCENT_PRICE: a limit price must stay within the multipliers around the mark."""
    if side is Side.BUY and price > mark * filters.multiplier_up:
        raise reject(ErrorCode.PRICE_HIGHER_THAN_MULTIPLIER_UP)
    if side is Side.SELL and price < mark * filters.multiplier_down:
        raise reject(ErrorCode.PRICE_LOWER_THAN_MULTIPLIER_DOWN)


def check_min_notional(filters: SymbolFilters, notional: Decimal, *, exempt: bool) -> None:
    """MIN_NOTIONAL, unless the order can only reduce (``exempt``)."""
    if not exempt and notional < filters.min_notional:
        raise reject(ErrorCode.MIN_NOTIONAL, _plain(filters.min_notional))


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")
