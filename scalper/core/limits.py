"""Venue limits versus configured caps: find the mismatches, compute the safe combination.

Theory of operation
-------------------

scalper's own caps (leverage, position notional, open orders per symbol, order and request
rates) are only meaningful if they sit *inside* what the venue will accept. A configured
leverage of 50x on a symbol the venue caps at 20x, or a notional cap the venue's leverage
brackets do not allow at that leverage, means the risk reasoning in the rest of the system
is about numbers the venue will never honour: orders get rejected at the worst moment
(-2027, -4028, -2025) or the IP gets banned for breaking a rate limit (429, then 418).

This module is pure comparison:

* :func:`compare_limits` reports every configured cap that exceeds (``ERROR``) or crowds
  (``WARNING``: above ``rate_headroom_ratio`` of the venue's rate limit, which other
  processes on the same IP or account share) the venue's limit, and what could not be
  checked because the venue did not say (``WARNING`` for a symbol, ``INFO`` for a rate
  window). Each :class:`LimitMismatch` carries a kind tag and a readable message for the
  journal and the operator (the seed's ``ALERT_BROKER_LIMIT_MISMATCH``).
* :func:`effective_caps` and :func:`effective_rate_caps` return the safe combination: the
  minimum of configured and venue limits, cap by cap, and say which caps the venue bound.
  The result never exceeds either side (I6: adding venue information only tightens).

Leverage brackets follow Binance's ``leverageBracket``: bracket *i* allows positions with
notional in ``[notional_floor, notional_cap]`` at up to ``max_leverage`` (``initialLeverage``).
The largest position at leverage ``L`` is therefore the highest ``notional_cap`` among the
brackets whose ``max_leverage >= L``; above the first bracket's leverage nothing is allowed.

Rate limits are compared per (kind, window) exactly as the venue states them (Binance:
REQUEST_WEIGHT 2400/min per IP, ORDERS 1200/min and 300/10 s per account). Where the venue's
limits come from (exchangeInfo, leverageBracket, ``/fapi/v1/rateLimit/order``) is the
adapter's business; this module only sees :class:`VenueLimits`.
"""

import enum
import math
from collections.abc import Iterable
from decimal import Decimal

import attrs

from scalper.core.errors_base import CoreValueError

__all__ = [
    "BINANCE_USDM_RATE_LIMITS",
    "EffectiveCaps",
    "LeverageBracket",
    "LimitMismatch",
    "LimitsConfig",
    "MismatchKind",
    "RateCaps",
    "RateLimit",
    "RateLimitKind",
    "Severity",
    "SymbolCaps",
    "SymbolLimits",
    "VenueLimits",
    "compare_limits",
    "effective_caps",
    "effective_rate_caps",
]


# --------------------------------------------------------------------------- validators


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _positive_int(_inst: object, attribute: "attrs.Attribute[int]", value: object) -> None:
    if not _is_positive_int(value):
        raise CoreValueError(attribute.name, f"must be an integer >= 1, got {value!r}")


def _optional_positive_int(
    _inst: object, attribute: "attrs.Attribute[int | None]", value: int | None
) -> None:
    if value is not None and not _is_positive_int(value):
        raise CoreValueError(attribute.name, f"must be None or an integer >= 1, got {value!r}")


def _to_decimal(value: object) -> Decimal:
    # Floats by their shortest repr, so 0.1 means Decimal("0.1"); anything odd is left for the
    # validator to reject with the field's name.
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return Decimal(value)
        except ArithmeticError:
            return Decimal("NaN")
    if isinstance(value, Decimal):
        return value
    return Decimal("NaN")


def _nonneg_decimal(_inst: object, attribute: "attrs.Attribute[Decimal]", value: Decimal) -> None:
    if not value.is_finite() or value < 0:
        raise CoreValueError(attribute.name, f"must be a finite number >= 0, got {value}")


def _positive_decimal(_inst: object, attribute: "attrs.Attribute[Decimal]", value: Decimal) -> None:
    if not value.is_finite() or value <= 0:
        raise CoreValueError(attribute.name, f"must be a finite number > 0, got {value}")


def _symbol(_inst: object, attribute: "attrs.Attribute[str]", value: object) -> None:
    if not isinstance(value, str) or not value or value != value.strip():
        raise CoreValueError(attribute.name, f"must be a non-empty symbol, got {value!r}")


# --------------------------------------------------------------------------- venue side


class RateLimitKind(enum.StrEnum):
    """What a rate limit counts (Binance ``rateLimitType``)."""

    REQUEST_WEIGHT = "REQUEST_WEIGHT"
    ORDERS = "ORDERS"


@attrs.frozen
class RateLimit:
    """``limit`` units of ``kind`` per ``interval_s`` seconds."""

    kind: RateLimitKind = attrs.field(converter=RateLimitKind)
    interval_s: int = attrs.field(validator=_positive_int)
    limit: int = attrs.field(validator=_positive_int)


#: Binance USD-M's published limits (the 10 s ORDERS window is from live exchangeInfo).
BINANCE_USDM_RATE_LIMITS = (
    RateLimit(RateLimitKind.REQUEST_WEIGHT, 60, 2400),
    RateLimit(RateLimitKind.ORDERS, 60, 1200),
    RateLimit(RateLimitKind.ORDERS, 10, 300),
)


@attrs.frozen
class LeverageBracket:
    """One leverage bracket: positions of notional up to ``notional_cap`` at <= ``max_leverage``."""

    notional_floor: Decimal = attrs.field(converter=_to_decimal, validator=_nonneg_decimal)
    notional_cap: Decimal = attrs.field(converter=_to_decimal, validator=_positive_decimal)
    max_leverage: int = attrs.field(validator=_positive_int)

    def __attrs_post_init__(self) -> None:
        if self.notional_cap <= self.notional_floor:
            raise CoreValueError(
                "notional_cap",
                f"must exceed notional_floor {self.notional_floor}, got {self.notional_cap}",
            )


def _bracket_tuple(value: Iterable[LeverageBracket]) -> tuple[LeverageBracket, ...]:
    return tuple(value)


@attrs.frozen
class SymbolLimits:
    """What the venue allows for one symbol.

    Attributes:
        symbol: venue symbol.
        brackets: leverage brackets in ascending notional order, leverage non-increasing.
        max_open_orders: the ``MAX_NUM_ORDERS`` filter (open orders, algo included), if known.
    """

    symbol: str = attrs.field(validator=_symbol)
    brackets: tuple[LeverageBracket, ...] = attrs.field(converter=_bracket_tuple)
    max_open_orders: int | None = attrs.field(default=None, validator=_optional_positive_int)

    def __attrs_post_init__(self) -> None:
        if not self.brackets:
            raise CoreValueError("brackets", "must not be empty")
        for lower, upper in zip(self.brackets, self.brackets[1:], strict=False):
            if upper.notional_floor < lower.notional_floor:
                raise CoreValueError("brackets", "must be in ascending notional order")
            if upper.max_leverage > lower.max_leverage:
                raise CoreValueError("brackets", "leverage must not increase with notional")

    @property
    def max_leverage(self) -> int:
        """The highest leverage the venue allows at any size (the first bracket's)."""
        return self.brackets[0].max_leverage

    def max_notional_at(self, leverage: int) -> Decimal | None:
        """The largest position notional allowed at ``leverage``; ``None`` if none is.

        Raises:
            CoreValueError: if ``leverage`` is not a positive integer.
        """
        if not _is_positive_int(leverage):
            raise CoreValueError("leverage", f"must be an integer >= 1, got {leverage!r}")
        caps = [b.notional_cap for b in self.brackets if b.max_leverage >= leverage]
        return max(caps) if caps else None


def _symbol_limits_tuple(value: Iterable[SymbolLimits]) -> tuple[SymbolLimits, ...]:
    return tuple(value)


def _rate_tuple(value: Iterable[RateLimit]) -> tuple[RateLimit, ...]:
    return tuple(value)


@attrs.frozen
class VenueLimits:
    """Everything the venue told us about its limits."""

    symbols: tuple[SymbolLimits, ...] = attrs.field(default=(), converter=_symbol_limits_tuple)
    rate_limits: tuple[RateLimit, ...] = attrs.field(default=(), converter=_rate_tuple)

    def __attrs_post_init__(self) -> None:
        names = [s.symbol for s in self.symbols]
        if len(set(names)) != len(names):
            raise CoreValueError("symbols", "each symbol may appear once")

    def for_symbol(self, symbol: str) -> SymbolLimits | None:
        """The venue's limits for ``symbol``, if it reported any."""
        for s in self.symbols:
            if s.symbol == symbol:
                return s
        return None

    def rate_limit(self, kind: RateLimitKind, interval_s: int) -> int | None:
        """The venue's limit for one (kind, window); the strictest if listed twice."""
        limits = [
            r.limit for r in self.rate_limits if r.kind is kind and r.interval_s == interval_s
        ]
        return min(limits) if limits else None


# --------------------------------------------------------------------------- configured side


@attrs.frozen
class SymbolCaps:
    """scalper's own caps for one symbol.

    Attributes:
        leverage: the leverage scalper sets and sizes with.
        max_notional: the largest position notional (quote asset, e.g. USDT).
        max_open_orders: open orders per symbol: entry, its stop, its take-profit and one
            replace in flight.
    """

    leverage: int = attrs.field(default=5, validator=_positive_int)
    max_notional: Decimal = attrs.field(
        default=Decimal(1000), converter=_to_decimal, validator=_positive_decimal
    )
    max_open_orders: int = attrs.field(default=4, validator=_positive_int)


@attrs.frozen
class RateCaps:
    """scalper's own request budgets (defaults: well inside Binance's 300/10 s, 1200/min, 2400/min)."""

    orders_per_10s: int = attrs.field(default=100, validator=_positive_int)
    orders_per_minute: int = attrs.field(default=600, validator=_positive_int)
    request_weight_per_minute: int = attrs.field(default=1200, validator=_positive_int)

    def as_rate_limits(self) -> tuple[RateLimit, ...]:
        """These caps in the venue's (kind, window, limit) terms."""
        return (
            RateLimit(RateLimitKind.ORDERS, 10, self.orders_per_10s),
            RateLimit(RateLimitKind.ORDERS, 60, self.orders_per_minute),
            RateLimit(RateLimitKind.REQUEST_WEIGHT, 60, self.request_weight_per_minute),
        )


def _check_symbol_caps(
    _inst: object, attribute: "attrs.Attribute[dict[str, SymbolCaps]]", value: dict[str, SymbolCaps]
) -> None:
    entries: list[tuple[object, object]] = list(value.items())
    for symbol, caps in entries:
        if not isinstance(symbol, str) or not symbol or symbol != symbol.strip():
            raise CoreValueError(attribute.name, f"keys must be non-empty symbols, got {symbol!r}")
        if not isinstance(caps, SymbolCaps):
            raise CoreValueError(attribute.name, f"{symbol}: must be SymbolCaps, got {caps!r}")


def _check_ratio(_inst: object, attribute: "attrs.Attribute[float]", value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise CoreValueError(attribute.name, f"must be in (0, 1], got {value!r}")


@attrs.frozen
class LimitsConfig:
    """Configured caps: a default per symbol, per-symbol overrides, and rate budgets.

    Attributes:
        default_caps: caps for any symbol without an override.
        symbol_caps: per-symbol overrides.
        rates: order and request-weight budgets.
        rate_headroom_ratio: a configured rate above this share of the venue's limit is
            reported as crowding it (other processes share the IP and account limits).
    """

    default_caps: SymbolCaps = attrs.field(
        factory=SymbolCaps, validator=attrs.validators.instance_of(SymbolCaps)
    )
    symbol_caps: dict[str, SymbolCaps] = attrs.field(factory=dict, validator=_check_symbol_caps)
    rates: RateCaps = attrs.field(
        factory=RateCaps, validator=attrs.validators.instance_of(RateCaps)
    )
    rate_headroom_ratio: float = attrs.field(default=0.8, validator=_check_ratio)

    def caps_for(self, symbol: str) -> SymbolCaps:
        """The configured caps for ``symbol``."""
        return self.symbol_caps.get(symbol, self.default_caps)


# --------------------------------------------------------------------------- comparison


class Severity(enum.StrEnum):
    """How much a mismatch matters."""

    #: Could not be checked; nothing known to be wrong.
    INFO = "INFO"
    #: Inside the venue's limit but too close, or unverifiable for a traded symbol.
    WARNING = "WARNING"
    #: The configured cap exceeds the venue's: the venue will reject or ban before it binds.
    ERROR = "ERROR"


class MismatchKind(enum.StrEnum):
    """What disagrees. Values are the journal's reason tags."""

    LEVERAGE_ABOVE_VENUE_MAX = "leverage_above_venue_max"
    NOTIONAL_ABOVE_VENUE_MAX = "notional_above_venue_max"
    OPEN_ORDERS_ABOVE_VENUE_MAX = "open_orders_above_venue_max"
    RATE_ABOVE_VENUE_LIMIT = "rate_above_venue_limit"
    RATE_NEAR_VENUE_LIMIT = "rate_near_venue_limit"
    VENUE_SYMBOL_LIMITS_UNKNOWN = "venue_symbol_limits_unknown"
    VENUE_RATE_LIMIT_UNKNOWN = "venue_rate_limit_unknown"


@attrs.frozen
class LimitMismatch:
    """One configured cap that disagrees with (or could not be checked against) the venue.

    Attributes:
        kind: what disagrees (the reason tag).
        symbol: the symbol, or ``None`` for account/IP-wide rate limits.
        configured: the configured value.
        venue: the venue's value, or ``None`` if the venue did not say.
        severity: INFO, WARNING or ERROR.
        message: one readable line for operators.
    """

    kind: MismatchKind
    symbol: str | None
    configured: Decimal
    venue: Decimal | None
    severity: Severity
    message: str


def _rate_label(limit: RateLimit) -> str:
    return f"{limit.kind.value} per {limit.interval_s}s"


def _symbol_mismatches(
    symbol: str, caps: SymbolCaps, venue: SymbolLimits | None
) -> list[LimitMismatch]:
    if venue is None:
        return [
            LimitMismatch(
                MismatchKind.VENUE_SYMBOL_LIMITS_UNKNOWN,
                symbol,
                Decimal(caps.leverage),
                None,
                Severity.WARNING,
                f"{symbol}: the venue reported no limits; configured caps cannot be verified",
            )
        ]
    out: list[LimitMismatch] = []
    if caps.leverage > venue.max_leverage:
        out.append(
            LimitMismatch(
                MismatchKind.LEVERAGE_ABOVE_VENUE_MAX,
                symbol,
                Decimal(caps.leverage),
                Decimal(venue.max_leverage),
                Severity.ERROR,
                f"{symbol}: configured leverage {caps.leverage}x exceeds the venue's "
                f"maximum {venue.max_leverage}x",
            )
        )
    # Judge the notional at the leverage that will actually be used.
    leverage = min(caps.leverage, venue.max_leverage)
    venue_notional = venue.max_notional_at(leverage)
    if venue_notional is not None and caps.max_notional > venue_notional:
        out.append(
            LimitMismatch(
                MismatchKind.NOTIONAL_ABOVE_VENUE_MAX,
                symbol,
                caps.max_notional,
                venue_notional,
                Severity.ERROR,
                f"{symbol}: configured max notional {caps.max_notional} exceeds the venue's "
                f"{venue_notional} at {leverage}x",
            )
        )
    if venue.max_open_orders is not None and caps.max_open_orders > venue.max_open_orders:
        out.append(
            LimitMismatch(
                MismatchKind.OPEN_ORDERS_ABOVE_VENUE_MAX,
                symbol,
                Decimal(caps.max_open_orders),
                Decimal(venue.max_open_orders),
                Severity.ERROR,
                f"{symbol}: configured {caps.max_open_orders} open orders exceeds the venue's "
                f"{venue.max_open_orders}",
            )
        )
    return out


def _rate_mismatches(config: LimitsConfig, venue: VenueLimits) -> list[LimitMismatch]:
    out: list[LimitMismatch] = []
    for mine in config.rates.as_rate_limits():
        label = _rate_label(mine)
        theirs = venue.rate_limit(mine.kind, mine.interval_s)
        if theirs is None:
            out.append(
                LimitMismatch(
                    MismatchKind.VENUE_RATE_LIMIT_UNKNOWN,
                    None,
                    Decimal(mine.limit),
                    None,
                    Severity.INFO,
                    f"{label}: the venue reported no limit; configured {mine.limit} unverified",
                )
            )
        elif mine.limit > theirs:
            out.append(
                LimitMismatch(
                    MismatchKind.RATE_ABOVE_VENUE_LIMIT,
                    None,
                    Decimal(mine.limit),
                    Decimal(theirs),
                    Severity.ERROR,
                    f"{label}: configured {mine.limit} exceeds the venue's limit {theirs}",
                )
            )
        elif mine.limit > theirs * config.rate_headroom_ratio:
            out.append(
                LimitMismatch(
                    MismatchKind.RATE_NEAR_VENUE_LIMIT,
                    None,
                    Decimal(mine.limit),
                    Decimal(theirs),
                    Severity.WARNING,
                    f"{label}: configured {mine.limit} is above "
                    f"{config.rate_headroom_ratio:.0%} of the venue's limit {theirs}",
                )
            )
    return out


def compare_limits(
    config: LimitsConfig, venue: VenueLimits, symbols: Iterable[str]
) -> list[LimitMismatch]:
    """Report every configured cap that exceeds, crowds or cannot be checked against the venue.

    Args:
        config: the configured caps.
        venue: what the venue reported.
        symbols: the symbols scalper trades (each is checked with its effective config caps).

    Returns:
        Mismatches, per symbol in sorted order, then the rate windows. Empty when all is well.
    """
    out: list[LimitMismatch] = []
    for symbol in sorted(set(symbols)):
        out.extend(_symbol_mismatches(symbol, config.caps_for(symbol), venue.for_symbol(symbol)))
    out.extend(_rate_mismatches(config, venue))
    return out


@attrs.frozen
class EffectiveCaps:
    """The safe caps for one symbol: configured caps tightened by the venue's limits.

    Attributes:
        symbol: the symbol.
        leverage: ``min(configured, venue max)``.
        max_notional: ``min(configured, venue max notional at the effective leverage)``.
        max_open_orders: ``min(configured, venue MAX_NUM_ORDERS)``.
        venue_known: False if the venue reported nothing for the symbol (configured caps only).
        limited_by_venue: the cap names the venue tightened, for the journal.
    """

    symbol: str
    leverage: int
    max_notional: Decimal
    max_open_orders: int
    venue_known: bool
    limited_by_venue: tuple[str, ...]


def effective_caps(config: LimitsConfig, venue: VenueLimits, symbol: str) -> EffectiveCaps:
    """The safe combination of configured and venue caps for ``symbol``.

    Never exceeds either side. With no venue data for the symbol the configured caps stand
    (and :func:`compare_limits` reports the gap).
    """
    caps = config.caps_for(symbol)
    limits = venue.for_symbol(symbol)
    if limits is None:
        return EffectiveCaps(
            symbol, caps.leverage, caps.max_notional, caps.max_open_orders, False, ()
        )
    bound: list[str] = []
    leverage = caps.leverage
    if limits.max_leverage < leverage:
        leverage = limits.max_leverage
        bound.append("leverage")
    notional = caps.max_notional
    venue_notional = limits.max_notional_at(leverage)
    # The first bracket always admits its own leverage, so this is never None here.
    assert venue_notional is not None
    if venue_notional < notional:
        notional = venue_notional
        bound.append("max_notional")
    open_orders = caps.max_open_orders
    if limits.max_open_orders is not None and limits.max_open_orders < open_orders:
        open_orders = limits.max_open_orders
        bound.append("max_open_orders")
    return EffectiveCaps(symbol, leverage, notional, open_orders, True, tuple(bound))


def effective_rate_caps(config: LimitsConfig, venue: VenueLimits) -> RateCaps:
    """The configured rate budgets tightened by the venue's limits, window by window."""

    def tightened(kind: RateLimitKind, interval_s: int, mine: int) -> int:
        theirs = venue.rate_limit(kind, interval_s)
        return mine if theirs is None else min(mine, theirs)

    r = config.rates
    return RateCaps(
        orders_per_10s=tightened(RateLimitKind.ORDERS, 10, r.orders_per_10s),
        orders_per_minute=tightened(RateLimitKind.ORDERS, 60, r.orders_per_minute),
        request_weight_per_minute=tightened(
            RateLimitKind.REQUEST_WEIGHT, 60, r.request_weight_per_minute
        ),
    )
