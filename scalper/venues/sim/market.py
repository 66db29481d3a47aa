"""The market the simulated exchange trades against: a mid-price path and a virtual book.

Theory of operation
-------------------

The simulator has no other traders. Each symbol has a *mid-price path* and a *virtual book*
derived from it; the engine matches our orders against that book and nothing else.

Price path (:class:`PricePath`), one per symbol:

* **Random walk** (default): on a fixed grid ``start + k * step_seconds`` the mid moves by
  ``N(0, volatility_bps)`` basis points, plus, with ``jump_probability``, a jump of
  ``jump_bps`` in a random direction (gaps are what make stops slip). Moves are rounded to
  whole ticks, so every mid is on the tick grid and the arithmetic stays exact ``Decimal``.
  Randomness comes only from the ``random.Random`` handed in; the grid is absolute, so how
  the caller chunks time (``advance_to(5); advance_to(10)`` versus ``advance_to(10)``) does
  not change the path.
* **Supplied series**: ``(time, price)`` points; the mid jumps to ``price`` at ``time``
  (rounded to the tick grid). After the last point the mid stays put. Tests use this to put
  the price exactly where a trigger rule must fire.

Virtual book (:func:`make_quote`, :func:`taker_levels`): bid and ask sit ``spread_bps / 2``
either side of the mid, rounded outwards to the tick grid, at least one tick apart. A taker
sweeps ``levels`` price levels of ``level_qty`` each, ``level_ticks`` apart, starting at the
touch; whatever is left after the last level does not fill (Binance expires a MARKET
remainder). The book is memoryless: it does not deplete between requests. On top of the
level price the engine applies the core's slippage presets (:mod:`scalper.core.slippage`);
:func:`round_against` puts the slipped price back on the tick grid, against the taker.
Resting (maker) orders fill at their own price when the touch crosses them, up to
``resting_fill_qty`` per side per price step, so a large resting order fills in several
trades over several steps.

The mid is also the mark price and the last price: triggers, PERCENT_PRICE and unrealized
PnL all read it.
"""

import math
import random
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.types import Side

__all__ = [
    "BookConfig",
    "PricePath",
    "PricePathConfig",
    "Quote",
    "make_quote",
    "round_against",
    "round_to_tick",
    "taker_levels",
]

_BPS = Decimal(10_000)


def _positive_decimal(_inst: object, attribute: "attrs.Attribute[Decimal]", value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise CoreValueError(attribute.name, f"must be a positive finite Decimal, got {value!r}")


def _non_negative_decimal(
    _inst: object, attribute: "attrs.Attribute[Decimal]", value: object
) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise CoreValueError(attribute.name, f"must be a finite Decimal >= 0, got {value!r}")


def _finite_non_negative_float(
    _inst: object, attribute: "attrs.Attribute[float]", value: float
) -> None:
    if not math.isfinite(value) or value < 0:
        raise CoreValueError(attribute.name, f"must be a finite number >= 0, got {value!r}")


def _check_series(
    _inst: object,
    attribute: "attrs.Attribute[tuple[tuple[float, Decimal], ...]]",
    value: tuple[tuple[float, Decimal], ...],
) -> None:
    last: float | None = None
    for t, price in value:
        if not math.isfinite(t):
            raise CoreValueError(attribute.name, f"times must be finite, got {t!r}")
        if last is not None and t <= last:
            raise CoreValueError(
                attribute.name, f"times must increase strictly, got {t} after {last}"
            )
        price_value: object = price  # cattrs may hand over anything; check at run time
        if not isinstance(price_value, Decimal) or not price_value.is_finite() or price_value <= 0:
            raise CoreValueError(attribute.name, f"prices must be positive Decimals, got {price!r}")
        last = t


@attrs.frozen
class PricePathConfig:
    """How one symbol's mid price moves.

    Attributes:
        initial_price: the mid at the engine's start time.
        step_seconds: random-walk grid spacing (also the cadence of resting fills).
        volatility_bps: standard deviation of one step's move, in basis points.
        jump_probability: chance per step of an extra jump (0 disables jumps).
        jump_bps: size of a jump, in basis points.
        series: if non-empty, ``(time, price)`` points replayed instead of the random walk.
    """

    initial_price: Decimal = attrs.field(default=Decimal(60000), validator=_positive_decimal)
    step_seconds: float = attrs.field(default=1.0)
    volatility_bps: float = attrs.field(default=1.0, validator=_finite_non_negative_float)
    jump_probability: float = attrs.field(default=0.0)
    jump_bps: float = attrs.field(default=50.0, validator=_finite_non_negative_float)
    series: tuple[tuple[float, Decimal], ...] = attrs.field(default=(), validator=_check_series)

    @step_seconds.validator
    def _check_step(self, attribute: "attrs.Attribute[float]", value: float) -> None:
        if not math.isfinite(value) or value <= 0:
            raise CoreValueError(attribute.name, f"must be a positive number, got {value!r}")

    @jump_probability.validator
    def _check_jump(self, attribute: "attrs.Attribute[float]", value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise CoreValueError(attribute.name, f"must be in [0, 1], got {value!r}")


@attrs.frozen
class BookConfig:
    """The virtual book around the mid.

    Attributes:
        spread_bps: full bid-ask spread in basis points of the mid (at least one tick).
        level_qty: quantity available to a taker at each price level.
        levels: number of levels a taker can sweep; the rest of a MARKET order expires.
        level_ticks: ticks between consecutive levels.
        resting_fill_qty: maker liquidity per side per price step for crossed resting orders.
    """

    spread_bps: Decimal = attrs.field(default=Decimal(1), validator=_non_negative_decimal)
    level_qty: Decimal = attrs.field(default=Decimal("0.5"), validator=_positive_decimal)
    levels: int = attrs.field(default=10)
    level_ticks: int = attrs.field(default=1)
    resting_fill_qty: Decimal = attrs.field(default=Decimal("0.2"), validator=_positive_decimal)

    @levels.validator
    def _check_levels(self, attribute: "attrs.Attribute[int]", value: int) -> None:
        if value < 1:
            raise CoreValueError(attribute.name, f"must be >= 1, got {value}")

    @level_ticks.validator
    def _check_level_ticks(self, attribute: "attrs.Attribute[int]", value: int) -> None:
        if value < 1:
            raise CoreValueError(attribute.name, f"must be >= 1, got {value}")


@attrs.frozen
class Quote:
    """Top of the virtual book. ``mid`` is also the mark and the last price."""

    bid: Decimal
    ask: Decimal
    mid: Decimal

    def touch(self, side: Side) -> Decimal:
        """The price a taker of ``side`` meets first (ask for a buy, bid for a sell)."""
        return self.ask if side is Side.BUY else self.bid

    def crosses(self, side: Side, price: Decimal) -> bool:
        """True if a limit order of ``side`` at ``price`` is marketable against this quote."""
        return price >= self.ask if side is Side.BUY else price <= self.bid


def round_to_tick(price: Decimal, tick: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round ``price`` to a multiple of ``tick`` (half-even unless told otherwise)."""
    return (price / tick).to_integral_value(rounding=rounding) * tick


def make_quote(mid: Decimal, spread_bps: Decimal, tick: Decimal) -> Quote:
    """Bid and ask around ``mid``: rounded outwards to ticks, positive, at least a tick apart."""
    half = mid * spread_bps / _BPS / 2
    bid = max(round_to_tick(mid - half, tick, ROUND_FLOOR), tick)
    ask = round_to_tick(mid + half, tick, ROUND_CEILING)
    if ask <= bid:
        ask = bid + tick
    return Quote(bid=bid, ask=ask, mid=mid)


def round_against(price: Decimal, side: Side, tick: Decimal) -> Decimal:
    """Put a (slipped) taker price on the tick grid, rounding against a taker of ``side``."""
    if side is Side.BUY:
        return round_to_tick(price, tick, ROUND_CEILING)
    return max(round_to_tick(price, tick, ROUND_FLOOR), tick)


def taker_levels(
    quote: Quote, side: Side, book: BookConfig, tick: Decimal
) -> list[tuple[Decimal, Decimal]]:
    """The ``(price, qty)`` levels a taker of ``side`` can sweep, best first."""
    step = tick * book.level_ticks
    levels: list[tuple[Decimal, Decimal]] = []
    for i in range(book.levels):
        if side is Side.BUY:
            price = quote.ask + step * i
        else:
            price = quote.bid - step * i
            if price < tick:
                break
        levels.append((price, book.level_qty))
    return levels


class PricePath:
    """One symbol's mid price over time (see the module docstring for the two modes).

    The engine asks :attr:`next_time` for the next instant the mid changes and calls
    :meth:`step` once that instant is due; :meth:`set_mid` is the admin override.
    """

    def __init__(
        self, config: PricePathConfig, tick: Decimal, start: float, rng: random.Random
    ) -> None:
        self._config = config
        self._tick = tick
        self._start = start
        self._rng = rng
        self._k = 0
        self._series_index = 0
        self._mid = round_to_tick(config.initial_price, tick)
        if self._mid <= 0:
            raise CoreValueError("initial_price", f"rounds to zero at tick {tick}")
        if config.series:
            # Points at or before the start apply immediately; the last of them wins.
            while (
                self._series_index < len(config.series)
                and config.series[self._series_index][0] <= start
            ):
                self._mid = self._series_price(self._series_index)
                self._series_index += 1

    @property
    def mid(self) -> Decimal:
        """The current mid price (on the tick grid)."""
        return self._mid

    @property
    def next_time(self) -> float | None:
        """When the mid next changes, or ``None`` if a supplied series is exhausted."""
        if self._config.series:
            if self._series_index >= len(self._config.series):
                return None
            return self._config.series[self._series_index][0]
        return self._start + (self._k + 1) * self._config.step_seconds

    def step(self) -> Decimal:
        """Apply the change due at :attr:`next_time` and return the new mid."""
        if self._config.series:
            if self._series_index < len(self._config.series):
                self._mid = self._series_price(self._series_index)
                self._series_index += 1
            return self._mid
        self._k += 1
        cfg = self._config
        move_bps = self._rng.gauss(0.0, 1.0) * cfg.volatility_bps
        if cfg.jump_probability > 0 and self._rng.random() < cfg.jump_probability:
            move_bps += cfg.jump_bps if self._rng.random() < 0.5 else -cfg.jump_bps
        ticks = round(float(self._mid) * move_bps / 10_000 / float(self._tick))
        self._mid = max(self._mid + self._tick * ticks, self._tick)
        return self._mid

    def set_mid(self, price: Decimal) -> Decimal:
        """Override the mid (admin/tests). The walk continues from here; a series resumes."""
        if not price.is_finite() or price <= 0:
            raise CoreValueError("price", f"must be a positive finite Decimal, got {price!r}")
        self._mid = max(round_to_tick(price, self._tick), self._tick)
        return self._mid

    def _series_price(self, index: int) -> Decimal:
        return max(round_to_tick(self._config.series[index][1], self._tick), self._tick)
