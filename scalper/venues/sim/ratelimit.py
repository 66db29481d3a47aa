"""Binance USD-M rate limits: request weight per IP, order count per account.

Theory of operation
-------------------

Binance counts in fixed windows aligned to the clock (``X-MBX-USED-WEIGHT-1M`` resets at the
top of each minute) and answers 429 once a window is full (``reference/binance_usdm.md``
§7). The limiters are:

* ``REQUEST_WEIGHT``: 2400 weight per minute (per IP): every endpoint costs its weight;
  order placement costs 0 weight but counts as an order.
* ``ORDERS``: 1200 per minute and 300 per 10 seconds (per account): every placement attempt.

:meth:`RateLimiter.check` is check-and-count: it raises :class:`SimRejection` (-1003 for
weight, -1015 for orders, HTTP 429, with ``retry_after`` = seconds to the window's end)
*without* counting the refused request, or counts it and returns the usage the response
headers report. The engine counts order placements itself; whoever fronts the engine (the
loopback server, the in-process venue) charges endpoint weights through
``SimEngine.check_rate``. Bans (HTTP 418 after repeated 429s) are not modelled.

Time is the ``epoch`` seconds the engine passes in, so windows align to wall-clock minutes
the way Binance's do.
"""

import enum
import math

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.venues.sim.errors import ErrorCode, reject

__all__ = [
    "RateKind",
    "RateLimitConfig",
    "RateLimiter",
    "RateUsage",
]


class RateKind(enum.StrEnum):
    """Which limiter a request counts against (Binance ``rateLimitType``)."""

    REQUEST_WEIGHT = "REQUEST_WEIGHT"
    ORDERS = "ORDERS"


def _positive_int(_inst: object, attribute: "attrs.Attribute[int]", value: int) -> None:
    if value < 1:
        raise CoreValueError(attribute.name, f"must be >= 1, got {value}")


@attrs.frozen
class RateLimitConfig:
    """Limits as published in ``exchangeInfo.rateLimits``; ``enabled=False`` turns them off."""

    enabled: bool = True
    request_weight_per_minute: int = attrs.field(default=2400, validator=_positive_int)
    orders_per_minute: int = attrs.field(default=1200, validator=_positive_int)
    orders_per_10s: int = attrs.field(default=300, validator=_positive_int)


@attrs.frozen
class RateUsage:
    """What the response headers report after a request (``X-MBX-*``)."""

    used_weight_1m: int
    order_count_10s: int
    order_count_1m: int


@attrs.define
class _Window:
    seconds: int
    index: int = -1
    count: int = 0

    def current(self, epoch: float) -> int:
        index = math.floor(epoch / self.seconds)
        return self.count if index == self.index else 0

    def add(self, epoch: float, amount: int) -> None:
        index = math.floor(epoch / self.seconds)
        if index != self.index:
            self.index, self.count = index, 0
        self.count += amount

    def remaining_seconds(self, epoch: float) -> float:
        return (math.floor(epoch / self.seconds) + 1) * self.seconds - epoch


@attrs.define
class RateLimiter:
    """Fixed-window counters for request weight and order count."""

    config: RateLimitConfig = attrs.field(factory=RateLimitConfig)
    _weight_1m: _Window = attrs.field(factory=lambda: _Window(60))
    _orders_10s: _Window = attrs.field(factory=lambda: _Window(10))
    _orders_1m: _Window = attrs.field(factory=lambda: _Window(60))

    def usage(self, epoch: float) -> RateUsage:
        """Current counts, without counting anything."""
        return RateUsage(
            used_weight_1m=self._weight_1m.current(epoch),
            order_count_10s=self._orders_10s.current(epoch),
            order_count_1m=self._orders_1m.current(epoch),
        )

    def check(self, kind: RateKind, epoch: float, weight: int = 1) -> RateUsage:
        """Count ``weight`` against ``kind``'s limits, or raise if a window is full.

        Raises:
            SimRejection: -1003 (weight) or -1015 (orders), HTTP 429; nothing is counted.
            CoreValueError: if ``weight`` is negative.
        """
        if weight < 0:
            raise CoreValueError("weight", f"must be >= 0, got {weight}")
        cfg = self.config
        if kind is RateKind.REQUEST_WEIGHT:
            window = self._weight_1m
            if cfg.enabled and window.current(epoch) + weight > cfg.request_weight_per_minute:
                raise reject(
                    ErrorCode.TOO_MANY_REQUESTS,
                    cfg.request_weight_per_minute,
                    retry_after=window.remaining_seconds(epoch),
                )
            window.add(epoch, weight)
            return self.usage(epoch)
        checks = (
            (self._orders_10s, cfg.orders_per_10s, "10 SECOND"),
            (self._orders_1m, cfg.orders_per_minute, "1 MINUTE"),
        )
        if cfg.enabled:
            for window, limit, label in checks:
                if window.current(epoch) + weight > limit:
                    raise reject(
                        ErrorCode.TOO_MANY_ORDERS,
                        limit,
                        label,
                        retry_after=window.remaining_seconds(epoch),
                    )
        for window, _limit, _label in checks:
            window.add(epoch, weight)
        return self.usage(epoch)
