"""Deterministic slippage presets per symbol and UTC session.

Theory of operation
-------------------

The simulated exchange fills market orders at the touch price moved *against* the taker by
a preset number of basis points; research code uses the same numbers to budget for costs.
Real slippage depends on the instrument (BTC is deep, a thin alt is not) and on the time of
day (liquidity follows the trading sessions), so presets are keyed by (symbol, session
bucket). Everything here is a pure function of its inputs: the same symbol, side, price and
timestamp always give the same fill price, so simulated runs replay exactly.

Session buckets, by UTC hour of the timestamp (half-open intervals, covering the day once):

=============  ===========  ================================================================
bucket         UTC hours    why
=============  ===========  ================================================================
``asia``       [0, 7)       Tokyo, Hong Kong and Singapore hours.
``eu``         [7, 13)      London/Frankfurt open until just before the US data releases.
``us``         [13, 21)     US macro releases (12:30/13:30 UTC) and the US equity session.
``overnight``  [21, 24)     After the US close, before Asia: the thinnest books of the day.
=============  ===========  ================================================================

The hour comes from epoch-seconds arithmetic (``utc_ts mod 86400``), never from a clock or
a timezone database; leap seconds do not exist in epoch time, so this is exact.

Rules:

* Slippage is always adverse: a BUY fills at ``price * (1 + bps/10_000)``, a SELL at
  ``price * (1 - bps/10_000)``. A preset of 0 bps gives the touch price, never a better one.
* A (symbol, bucket) without a preset falls back to the conservative ``default_bps`` and the
  estimate says so (``preset_found=False``, reason ``default_preset``): a missing preset is
  reported, never silently treated as zero (the seed's ``ALERT_SLIPPAGE_PRESET_MISSING``).
* Presets are bounded to ``[0, MAX_BPS]`` (10 %): beyond that the number is a typo or a broken
  market, not a slippage model, and a SELL must keep a positive price.
* Prices stay ``Decimal``; the adjusted price is not rounded to the tick (the venue layer
  applies its filters).
"""

import enum
import math
import types
from collections.abc import Mapping
from decimal import Decimal

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.types import Side

__all__ = [
    "MAX_BPS",
    "SESSION_HOURS_UTC",
    "SessionBucket",
    "SlippageConfig",
    "SlippageEstimate",
    "SlippageModel",
    "session_bucket",
]

MAX_BPS = Decimal(1000)
_BPS_PER_UNIT = Decimal(10_000)
_SECONDS_PER_DAY = 86_400.0


class SessionBucket(enum.StrEnum):
    """A UTC trading-session bucket (see the module docstring for the hours)."""

    ASIA = "asia"
    EU = "eu"
    US = "us"
    OVERNIGHT = "overnight"


#: Each bucket's UTC hours as a half-open interval ``[start, end)``.
SESSION_HOURS_UTC: Mapping[SessionBucket, tuple[int, int]] = types.MappingProxyType(
    {
        SessionBucket.ASIA: (0, 7),
        SessionBucket.EU: (7, 13),
        SessionBucket.US: (13, 21),
        SessionBucket.OVERNIGHT: (21, 24),
    }
)

_BUCKET_BY_HOUR: tuple[SessionBucket, ...] = tuple(
    next(b for b, (start, end) in SESSION_HOURS_UTC.items() if start <= hour < end)
    for hour in range(24)
)


def session_bucket(utc_ts: float) -> SessionBucket:
    """The session bucket of a wall-clock timestamp (epoch seconds, UTC).

    Raises:
        CoreValueError: if ``utc_ts`` is NaN or infinite.
    """
    if isinstance(utc_ts, bool) or not isinstance(utc_ts, (int, float)):
        raise CoreValueError("utc_ts", f"must be epoch seconds, got {utc_ts!r}")
    if not math.isfinite(utc_ts):
        raise CoreValueError("utc_ts", f"must be finite, got {utc_ts!r}")
    seconds_of_day = float(utc_ts) % _SECONDS_PER_DAY
    # A tiny negative timestamp rounds to exactly 86400.0 (the last instant of the previous
    # day); clamping keeps it in hour 23, where it belongs.
    hour = min(int(seconds_of_day // 3600), 23)
    return _BUCKET_BY_HOUR[hour]


def _to_bps(value: object, field: str) -> Decimal:
    if isinstance(value, bool):
        raise CoreValueError(field, f"must be a number of basis points, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CoreValueError(field, f"must be finite, got {value!r}")
        bps = Decimal(repr(value))
    elif isinstance(value, (int, str, Decimal)):
        try:
            bps = Decimal(value)
        except ArithmeticError:
            raise CoreValueError(field, f"must be a decimal number, got {value!r}") from None
    else:
        raise CoreValueError(field, f"must be a number of basis points, got {value!r}")
    if not bps.is_finite() or not 0 <= bps <= MAX_BPS:
        raise CoreValueError(field, f"must be in [0, {MAX_BPS}] bps, got {value!r}")
    return bps


def _default_bps(value: object) -> Decimal:
    return _to_bps(value, "default_bps")


def _presets(value: object) -> dict[str, dict[SessionBucket, Decimal]]:
    if not isinstance(value, Mapping):
        raise CoreValueError("presets", f"must map symbol -> session -> bps, got {value!r}")
    out: dict[str, dict[SessionBucket, Decimal]] = {}
    for symbol, per_session in value.items():
        if not isinstance(symbol, str) or not symbol or symbol != symbol.strip():
            raise CoreValueError("presets", f"keys must be non-empty symbols, got {symbol!r}")
        if not isinstance(per_session, Mapping):
            raise CoreValueError("presets", f"{symbol}: must map session -> bps")
        table: dict[SessionBucket, Decimal] = {}
        for session, bps in per_session.items():
            try:
                bucket = SessionBucket(session)
            except ValueError:
                raise CoreValueError(
                    "presets", f"{symbol}: unknown session {session!r}; use {list(SessionBucket)}"
                ) from None
            table[bucket] = _to_bps(bps, f"presets.{symbol}.{bucket.value}")
        out[symbol] = table
    return out


def _default_presets() -> dict[str, dict[SessionBucket, Decimal]]:
    # Deep majors: about a tick or two of a liquid book; thinner in Asia and overnight.
    return {
        "BTCUSDT": {
            SessionBucket.ASIA: Decimal("1.5"),
            SessionBucket.EU: Decimal("1.0"),
            SessionBucket.US: Decimal("1.0"),
            SessionBucket.OVERNIGHT: Decimal("2.0"),
        },
        "ETHUSDT": {
            SessionBucket.ASIA: Decimal("2.0"),
            SessionBucket.EU: Decimal("1.5"),
            SessionBucket.US: Decimal("1.5"),
            SessionBucket.OVERNIGHT: Decimal("3.0"),
        },
    }


@attrs.frozen
class SlippageConfig:
    """Slippage presets in basis points.

    Attributes:
        default_bps: the conservative fallback for any (symbol, session) without a preset.
        presets: ``symbol -> session -> bps``; session keys may be given as strings.
    """

    default_bps: Decimal = attrs.field(default=Decimal(5), converter=_default_bps)
    presets: dict[str, dict[SessionBucket, Decimal]] = attrs.field(
        factory=_default_presets, converter=_presets
    )


@attrs.frozen
class SlippageEstimate:
    """The slippage applied to one fill, and where the number came from.

    Attributes:
        symbol: the symbol.
        side: the taker's side.
        reference_price: the price before slippage (e.g. the touch).
        bps: basis points applied, always >= 0.
        adjusted_price: the fill price, moved against the taker.
        bucket: the UTC session of the timestamp.
        preset_found: False if the conservative default was used.
        reason: ``preset`` or ``default_preset``.
    """

    symbol: str
    side: Side
    reference_price: Decimal
    bps: Decimal
    adjusted_price: Decimal
    bucket: SessionBucket
    preset_found: bool
    reason: str


def _check_symbol(symbol: object) -> None:
    if not isinstance(symbol, str) or not symbol:
        raise CoreValueError("symbol", f"must be a non-empty symbol, got {symbol!r}")


def _check_price(price: object) -> None:
    if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
        raise CoreValueError("price", f"must be a positive finite Decimal, got {price!r}")


@attrs.frozen
class SlippageModel:
    """Applies a :class:`SlippageConfig` to prices."""

    config: SlippageConfig = attrs.field(
        factory=SlippageConfig, validator=attrs.validators.instance_of(SlippageConfig)
    )

    def bps_for(self, symbol: str, bucket: SessionBucket) -> tuple[Decimal, bool]:
        """The bps for (symbol, bucket) and whether a preset (not the default) supplied it."""
        preset = self.config.presets.get(symbol, {}).get(bucket)
        if preset is None:
            return self.config.default_bps, False
        return preset, True

    def estimate(self, symbol: str, side: Side, price: Decimal, utc_ts: float) -> SlippageEstimate:
        """Move ``price`` against a taker of ``side`` by the preset for the symbol and session.

        Args:
            symbol: the venue symbol.
            side: BUY fills higher, SELL fills lower.
            price: the reference price, a positive finite Decimal.
            utc_ts: wall-clock epoch seconds of the fill (selects the session).

        Raises:
            CoreValueError: on an empty symbol, an unknown side, a non-positive or
                non-finite price, or a non-finite timestamp.
        """
        _check_symbol(symbol)
        _check_price(price)
        try:
            side = Side(side)
        except ValueError:
            raise CoreValueError("side", f"must be BUY or SELL, got {side!r}") from None
        bucket = session_bucket(utc_ts)
        bps, found = self.bps_for(symbol, bucket)
        move = price * bps / _BPS_PER_UNIT
        adjusted = price + move if side is Side.BUY else price - move
        return SlippageEstimate(
            symbol=symbol,
            side=side,
            reference_price=price,
            bps=bps,
            adjusted_price=adjusted,
            bucket=bucket,
            preset_found=found,
            reason="preset" if found else "default_preset",
        )
