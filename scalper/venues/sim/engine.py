"""The simulated exchange's ground truth: a deterministic Binance USD-M matching engine.

Theory of operation
-------------------

:class:`SimEngine` is the exchange the chaos runner, the in-process venue and the loopback
server all talk to. It is pure and deterministic: time is only what the caller passes in
(``now``, seconds on the injected clock), randomness only the ``random.Random`` handed to
the constructor. Same config, same seed, same call sequence: identical history, identical
events, byte for byte. The engine never fakes an *unknown* outcome; the fault injector wraps
it for that. What the engine says is what happened.

**Time.** :meth:`SimEngine.advance_to` walks every symbol's price path (see
:mod:`scalper.venues.sim.market`) step by step up to ``now``; at each step it first fires
due algo triggers, then fills crossed resting limit orders. Countdown (dead-man switch)
deadlines fire at their exact time. Every request method first advances to its ``now``; a
``now`` earlier than the engine's clock is treated as the engine's clock (time never runs
backwards). Binance timestamps are ``round((now + epoch_offset) * 1000)``.

**Orders** (rules from ``reference/binance_usdm.md`` §3-§6):

* LIMIT (GTC, IOC, FOK, GTX) and MARKET go to the matching engine; STOP, STOP_MARKET,
  TAKE_PROFIT and TAKE_PROFIT_MARKET are *algo* orders (Binance's Algo Service since
  2025-12-09): they get an algo id and ALGO_UPDATE events, and on trigger they place a
  plain MARKET (or LIMIT) order that reuses their client id. ``route`` lets the server
  reproduce the endpoint split (-4120 for a conditional type on the plain endpoint).
  TRAILING_STOP_MARKET and GTD are not simulated (-1020, -1102).
* Triggers use the mid (= last = mark): STOP/STOP_MARKET BUY fires when price >= stop,
  SELL when <=; TAKE_PROFIT/TAKE_PROFIT_MARKET BUY when <=, SELL when >=. A conditional
  order that would fire at once is rejected with -2021.
* Takers sweep the virtual book level by level, each level price moved against them by
  the core slippage preset of the symbol and UTC session (:mod:`scalper.core.slippage`;
  rounded against the taker to the tick, never past a LIMIT price). A MARKET remainder
  beyond the book's depth expires (``er`` 9), an IOC remainder expires (``er`` 2), a FOK
  that cannot fill completely is rejected (-5021), a GTX that would take is rejected
  (-5022). Resting orders fill at their own price, as makers, against a per-step
  liquidity budget, so large orders fill in several trades (partial fills).
* **Client order ids are unique among OPEN orders only** (per symbol, separately for plain
  and algo orders): a duplicate of an open id is -4116 (-20132 for algo orders), but once
  the first order is filled, canceled or expired the same id is accepted as a *new* order.
  That is exactly why a blind resend is dangerous. A query by client id returns the open
  order with that id if there is one, else the most recent one.
* **Reduce-only / close-position.** One-way mode: a reduce-only order must point against
  the current position (else -2022); it may be larger than the position and is trimmed at
  fill time; whenever a fill leaves it unable to reduce (position flat or flipped) it
  expires (``er`` 4). Hedge mode: ``reduceOnly`` must not be sent (-1106); SELL LONG and
  BUY SHORT are closing orders, rejected with -2022 if larger than the leg. A
  close-position stop closes whatever is open when it fires (nothing open: the algo order
  expires). Reduce-only and closing orders never increase |position| and are exempt from
  MIN_NOTIONAL and margin checks.
* Position side must match the mode (-4061). Filters: precision -1111, PRICE_FILTER
  -4013/-4002/-4014, LOT_SIZE -4004/-4005/-4023, PERCENT_PRICE -4016/-4024, MIN_NOTIONAL
  -4164. MAX_NUM_ORDERS counts plain plus algo orders per symbol (-2025 plain, -4045 algo);
  at most ``max_algo_orders`` algo orders account-wide (-4045).
* Margin: a risk-increasing order needs ``notional / leverage`` of available balance
  (wallet + unrealized PnL - position margin - open-order margin), else -2019; a position
  above the symbol's maximum notional is -2027. Conditional orders are checked on trigger
  (the algo order is then REJECTED). No liquidation is simulated.
* Fees are maker/taker basis points of the fill notional, in USDT; realized PnL comes from
  :mod:`scalper.venues.sim.positions`.
* ``countdown_cancel_all`` arms a per-symbol dead-man switch: at the deadline every open
  plain order of the symbol is canceled (algo orders too if ``countdown_cancels_algo``).
* Every order placement counts against the ORDERS rate limits (-1015, HTTP 429); request
  weight is charged by whoever fronts the engine through :meth:`SimEngine.check_rate`.
* Order of checks: rate limit, symbol and endpoint, parameters, client-id format, static
  filters (precision, PRICE_FILTER, LOT_SIZE), duplicate open client id, open-order
  limits, then the market-dependent checks (PERCENT_PRICE, MIN_NOTIONAL, immediate
  trigger, reduce-only, margin, GTX, FOK). A resend of an accepted request therefore meets
  -4116 whatever the market did in between.

**Invariants served.** The engine is the ground truth the chaos checker holds scalper to:
trade ids are unique and gap-free per symbol, so every fill can be journaled exactly once
(I10); -2011 on a cancel means "not open now", including "already filled" (I3); a filled
order's client id is reusable, which is what makes a blind resend a second order (I7);
and every effect is in the history whatever the stream or the REST answers said (I4).

**Outputs.** :attr:`SimEngine.history` is the authoritative record (every accepted order,
fill, trigger, cancel, expiry and rejection); :meth:`SimEngine.events_since` streams the
user-data events (see :mod:`scalper.venues.sim.records`). Ids are counters: order and algo
ids share one sequence; trade ids count per symbol.
"""

import enum
import math
import random
from collections.abc import Iterator
from decimal import Decimal

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.ids import BINANCE_CLIENT_ID_RE
from scalper.core.model import Fill, OrderRequest, VenueOrder, VenueOrderStatus, VenuePosition
from scalper.core.slippage import SlippageConfig, SlippageModel
from scalper.core.types import (
    ZERO,
    OrderType,
    PositionMode,
    PositionSide,
    Side,
    TimeInForce,
)
from scalper.venues.sim.errors import ErrorCode, SimRejection, reject
from scalper.venues.sim.filters import (
    SymbolFilters,
    check_min_notional,
    check_percent_price,
    check_price,
    check_quantity,
)
from scalper.venues.sim.market import (
    BookConfig,
    PricePath,
    PricePathConfig,
    Quote,
    make_quote,
    round_against,
    taker_levels,
)
from scalper.venues.sim.positions import PositionState, money
from scalper.venues.sim.ratelimit import RateKind, RateLimitConfig, RateLimiter, RateUsage
from scalper.venues.sim.records import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoStatus,
    AlgoTriggered,
    AlgoUpdate,
    BalanceUpdate,
    CloseReason,
    CountdownState,
    ExecutionType,
    ExpireReason,
    FillRecorded,
    LeverageChange,
    OrderAccepted,
    OrderClosed,
    OrderTradeUpdate,
    PositionUpdate,
    RequestRejected,
    SimBalance,
    SimEvent,
    SimHistory,
    SimOrder,
)

__all__ = [
    "ExchangeInfo",
    "OrderRoute",
    "SimConfig",
    "SimEngine",
    "SymbolConfig",
]

_BPS = Decimal(10_000)
_STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_MARKET})
_TP_TYPES = frozenset({OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_MARKET})
_MARKET_EXECUTING = frozenset(
    {OrderType.MARKET, OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET}
)
_CLOSE_POSITION_TYPES = frozenset({OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})


class OrderRoute(enum.StrEnum):
    """Which Binance endpoint a placement came through.

    ``AUTO`` routes by type (the in-process venue); ``ORDER`` is ``/fapi/v1/order``
    (conditional types get -4120); ``ALGO`` is ``/fapi/v1/algoOrder`` (plain types get -1116).
    """

    AUTO = "AUTO"
    ORDER = "ORDER"
    ALGO = "ALGO"


def _multiple_of(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


@attrs.frozen
class SymbolConfig:
    """One tradable symbol: its filters, its price path and its virtual book."""

    symbol: str = "BTCUSDT"
    base_asset: str = "BTC"
    quote_asset: str = "USDT"
    filters: SymbolFilters = attrs.field(factory=SymbolFilters)
    path: PricePathConfig = attrs.field(factory=PricePathConfig)
    book: BookConfig = attrs.field(factory=BookConfig)
    max_position_notional: Decimal = Decimal(10_000_000)

    def __attrs_post_init__(self) -> None:
        if not self.symbol or not self.symbol.isalnum() or not self.symbol.isupper():
            raise CoreValueError("symbol", f"must be upper-case alphanumeric, got {self.symbol!r}")
        step = self.filters.step_size
        if not _multiple_of(self.book.level_qty, step):
            raise CoreValueError("book.level_qty", f"must be a multiple of step size {step}")
        if not _multiple_of(self.book.resting_fill_qty, step):
            raise CoreValueError("book.resting_fill_qty", f"must be a multiple of step size {step}")
        if self.max_position_notional <= 0:
            raise CoreValueError("max_position_notional", "must be positive")


def _default_symbols() -> tuple[SymbolConfig, ...]:
    return (
        SymbolConfig(),
        SymbolConfig(
            symbol="ETHUSDT",
            base_asset="ETH",
            filters=SymbolFilters(
                tick_size=Decimal("0.01"),
                min_price=Decimal("0.01"),
                max_price=Decimal(306177),
                max_qty=Decimal(10000),
                market_max_qty=Decimal(2000),
                min_notional=Decimal(20),
            ),
            path=PricePathConfig(initial_price=Decimal(3000)),
            book=BookConfig(level_qty=Decimal(5), resting_fill_qty=Decimal(2)),
        ),
    )


def _check_symbols(
    _inst: object,
    attribute: "attrs.Attribute[tuple[SymbolConfig, ...]]",
    value: tuple[SymbolConfig, ...],
) -> None:
    names = [s.symbol for s in value]
    if not names:
        raise CoreValueError(attribute.name, "must list at least one symbol")
    if len(set(names)) != len(names):
        raise CoreValueError(attribute.name, f"symbols must be unique, got {names}")


def _non_negative_decimal(
    _inst: object, attribute: "attrs.Attribute[Decimal]", value: object
) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise CoreValueError(attribute.name, f"must be a finite Decimal >= 0, got {value!r}")


def _finite(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if not math.isfinite(value):
        raise CoreValueError(attribute.name, f"must be finite, got {value!r}")


def _positive_float(_inst: object, attribute: "attrs.Attribute[float]", value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise CoreValueError(attribute.name, f"must be positive, got {value!r}")


def _positive_int(_inst: object, attribute: "attrs.Attribute[int]", value: int) -> None:
    if value < 1:
        raise CoreValueError(attribute.name, f"must be >= 1, got {value}")


@attrs.frozen
class SimConfig:
    """Everything the simulated exchange is configured with (defaults: a VIP0 account).

    Attributes:
        symbols: tradable symbols (default BTCUSDT and ETHUSDT).
        start_time: the engine's clock at construction (seconds, injected clock).
        epoch_offset: added to engine seconds to make Binance epoch timestamps.
        asset: the margin asset.
        initial_balance: starting wallet balance.
        maker_fee_bps, taker_fee_bps: commission in basis points of notional.
        default_leverage, max_leverage: per-symbol leverage at start and its upper bound.
        position_mode: ONE_WAY or HEDGE at start.
        max_algo_orders: open conditional orders allowed across all symbols.
        countdown_cancels_algo: whether the dead-man switch also cancels algo orders.
        retention_closed_unfilled_s: canceled/expired orders without fills are queryable
            this long after creation (Binance: 3 days).
        retention_all_s: any order is queryable this long after creation (90 days).
        first_order_id: the first order/algo id handed out.
        rate_limits: REQUEST_WEIGHT and ORDERS limits.
        slippage: the core's per-symbol, per-session presets applied to every taker fill
            (``None``: takers fill at the book's level prices).
    """

    symbols: tuple[SymbolConfig, ...] = attrs.field(
        factory=_default_symbols, validator=_check_symbols
    )
    start_time: float = attrs.field(default=0.0, validator=_finite)
    epoch_offset: float = attrs.field(default=1_767_225_600.0, validator=_finite)
    asset: str = "USDT"
    initial_balance: Decimal = attrs.field(default=Decimal(10_000), validator=_non_negative_decimal)
    maker_fee_bps: Decimal = attrs.field(default=Decimal(2), validator=_non_negative_decimal)
    taker_fee_bps: Decimal = attrs.field(default=Decimal(5), validator=_non_negative_decimal)
    default_leverage: int = attrs.field(default=20, validator=_positive_int)
    max_leverage: int = attrs.field(default=125, validator=_positive_int)
    position_mode: PositionMode = PositionMode.ONE_WAY
    max_algo_orders: int = attrs.field(default=200, validator=_positive_int)
    countdown_cancels_algo: bool = False
    retention_closed_unfilled_s: float = attrs.field(
        default=3 * 86_400.0, validator=_positive_float
    )
    retention_all_s: float = attrs.field(default=90 * 86_400.0, validator=_positive_float)
    first_order_id: int = attrs.field(default=1, validator=_positive_int)
    rate_limits: RateLimitConfig = attrs.field(factory=RateLimitConfig)
    slippage: SlippageConfig | None = attrs.field(factory=SlippageConfig)

    def __attrs_post_init__(self) -> None:
        if self.default_leverage > self.max_leverage:
            raise CoreValueError("default_leverage", "must be <= max_leverage")


@attrs.frozen
class ExchangeInfo:
    """What ``GET /fapi/v1/exchangeInfo`` serves."""

    server_time_ms: int
    symbols: tuple[SymbolConfig, ...]
    rate_limits: RateLimitConfig
    max_algo_orders: int


@attrs.define
class _Order:
    """The engine's mutable view of one order (plain or algo)."""

    order_id: int
    symbol: str
    client_order_id: str
    side: Side
    order_type: OrderType
    orig_type: OrderType
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce | None
    reduce_only: bool
    close_position: bool
    position_side: PositionSide
    algo: bool
    create_ts: float
    create_ms: int
    update_ms: int
    status: VenueOrderStatus = VenueOrderStatus.NEW
    algo_status: AlgoStatus | None = None
    filled: Decimal = ZERO
    cum_quote: Decimal = ZERO
    actual_order_id: int | None = None
    parent_algo_id: int | None = None
    trigger_ms: int | None = None
    expire_reason: ExpireReason = ExpireReason.NONE
    reject_message: str = ""

    @property
    def is_open(self) -> bool:
        if self.algo_status is not None:
            return self.algo_status.is_open
        return self.status.is_open

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled if self.is_open else ZERO


class SimEngine:
    """The deterministic Binance USD-M exchange (see the module docstring for the rules).

    Args:
        config: symbols, fees, limits, start time.
        rng: the only source of randomness (each symbol's price path gets its own
            generator seeded from it, in symbol order).
    """

    def __init__(self, config: SimConfig, rng: random.Random) -> None:
        self._config = config
        self._now = config.start_time
        self._specs: dict[str, SymbolConfig] = {s.symbol: s for s in config.symbols}
        self._paths: dict[str, PricePath] = {
            s.symbol: PricePath(
                s.path, s.filters.tick_size, config.start_time, random.Random(rng.getrandbits(64))
            )
            for s in config.symbols
        }
        self._mode = config.position_mode
        self._leverage: dict[str, int] = dict.fromkeys(self._specs, config.default_leverage)
        self._positions: dict[tuple[str, PositionSide], PositionState] = {}
        self._reset_positions()
        self._wallet = config.initial_balance
        self._orders: dict[int, _Order] = {}
        self._open: dict[str, dict[int, _Order]] = {s: {} for s in self._specs}
        self._by_client: dict[tuple[str, str], list[int]] = {}
        self._next_id = config.first_order_id
        self._next_trade_id: dict[str, int] = dict.fromkeys(self._specs, 1)
        self._trades: dict[str, list[Fill]] = {s: [] for s in self._specs}
        self._countdowns: dict[str, float] = {}
        self._events: list[SimEvent] = []
        self._rate = RateLimiter(config.rate_limits)
        self._slippage = None if config.slippage is None else SlippageModel(config.slippage)
        self._history = SimHistory()

    # ------------------------------------------------------------------ clock and market

    @property
    def config(self) -> SimConfig:
        """The configuration this engine was built with."""
        return self._config

    @property
    def now(self) -> float:
        """The engine's clock (seconds on the injected clock)."""
        return self._now

    @property
    def history(self) -> SimHistory:
        """The authoritative record of everything that happened."""
        return self._history

    @property
    def position_mode(self) -> PositionMode:
        """The account's current position mode."""
        return self._mode

    def venue_time_ms(self, now: float | None = None) -> int:
        """Binance epoch milliseconds for ``now`` (default: the engine's clock)."""
        t = self._now if now is None else now
        return round((t + self._config.epoch_offset) * 1000)

    def advance_to(self, now: float) -> None:
        """Move every price path to ``now``, firing triggers, fills and countdowns on the way.

        Raises:
            CoreValueError: if ``now`` is not finite.
        """
        target = self._clock(now)
        symbols = list(self._specs)
        while True:
            due: tuple[float, int, int] | None = None
            for index, symbol in enumerate(symbols):
                deadline = self._countdowns.get(symbol)
                if deadline is not None and deadline <= target:
                    candidate = (deadline, 0, index)
                    due = candidate if due is None or candidate < due else due
                next_time = self._paths[symbol].next_time
                if next_time is not None and next_time <= target:
                    candidate = (next_time, 1, index)
                    due = candidate if due is None or candidate < due else due
            if due is None:
                break
            when, kind, index = due
            self._now = max(self._now, when)
            symbol = symbols[index]
            if kind == 0:
                self._fire_countdown(symbol)
            else:
                self._paths[symbol].step()
                self._process_symbol(symbol)
        self._now = target

    def set_mark_price(self, symbol: str, price: Decimal, now: float | None = None) -> Quote:
        """Move ``symbol``'s mid (= mark = last) to ``price`` now and let the book react.

        Triggers and crossed resting orders are processed at once. A supplied series
        resumes at its next point; a random walk continues from the new mid.

        Raises:
            SimRejection: -1121 for an unknown symbol.
            CoreValueError: for a non-positive price.
        """
        if now is not None:
            self.advance_to(now)
        self._spec(symbol)
        self._paths[symbol].set_mid(price)
        self._process_symbol(symbol)
        return self.quote(symbol)

    def quote(self, symbol: str) -> Quote:
        """The current top of ``symbol``'s virtual book.

        Raises:
            SimRejection: -1121 for an unknown symbol.
        """
        spec = self._spec(symbol)
        return make_quote(self._paths[symbol].mid, spec.book.spread_bps, spec.filters.tick_size)

    def mark_price(self, symbol: str) -> Decimal:
        """The current mark (= mid = last) price of ``symbol``."""
        self._spec(symbol)
        return self._paths[symbol].mid

    # ------------------------------------------------------------------ requests

    def create_order(
        self, req: OrderRequest, now: float, *, route: OrderRoute = OrderRoute.AUTO
    ) -> VenueOrder:
        """Place an order and return its state after immediate execution (RESULT semantics).

        Conditional types become algo orders (``order_id`` is the algo id). An empty
        ``client_order_id`` means "not sent": the engine generates one.

        Raises:
            SimRejection: with Binance's code; the rejection is also recorded in history.
        """
        self.advance_to(now)
        try:
            self._rate.check(RateKind.ORDERS, self._epoch())
            order = self._admit(req, route)
        except SimRejection as rej:
            self._record_rejection("create_order", rej, req.symbol, request=req)
            raise
        self._register(order, req)
        if not order.algo:
            self._execute_new(order)
        return self._snapshot(order).venue_order

    def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        now: float,
        algo: bool | None = None,
    ) -> VenueOrder:
        """Cancel one open order (or algo order) by id or client id; ``order_id`` wins.

        ``algo`` restricts the lookup to plain (False) or algo (True) orders, as the two
        Binance endpoints do; ``None`` searches both.

        Raises:
            SimRejection: -2011 if no such order is open (it may have filled: query it),
                -1102 if neither id is given, -1121 for an unknown symbol.
        """
        self.advance_to(now)
        try:
            self._spec(symbol)
            self._require_some_id(order_id, client_order_id)
            order = self._find(symbol, order_id, client_order_id, algo)
            if order is None or not order.is_open:
                raise reject(ErrorCode.CANCEL_REJECTED)
        except SimRejection as rej:
            self._record_rejection(
                "cancel_order", rej, symbol, order_id=order_id, client_order_id=client_order_id
            )
            raise
        self._cancel(order, CloseReason.USER_CANCEL)
        return self._snapshot(order).venue_order

    def cancel_all_orders(
        self, symbol: str, now: float, *, algo: bool = False
    ) -> tuple[VenueOrder, ...]:
        """Cancel every open plain order (or, with ``algo``, every algo order) of ``symbol``.

        Raises:
            SimRejection: -1121 for an unknown symbol.
        """
        self.advance_to(now)
        try:
            self._spec(symbol)
        except SimRejection as rej:
            self._record_rejection("cancel_all_orders", rej, symbol)
            raise
        canceled = []
        for order in list(self._open[symbol].values()):
            if order.algo is algo:
                self._cancel(order, CloseReason.CANCEL_ALL)
                canceled.append(self._snapshot(order).venue_order)
        return tuple(canceled)

    def countdown_cancel_all(self, symbol: str, countdown_ms: int, now: float) -> CountdownState:
        """Arm (or, with 0, disarm) the dead-man switch of ``symbol``.

        If no new call arrives within ``countdown_ms``, every open order of the symbol is
        canceled at the deadline. Each call restarts the countdown.

        Raises:
            SimRejection: -1121 for an unknown symbol, -1130 for a negative countdown.
        """
        self.advance_to(now)
        try:
            self._spec(symbol)
            if countdown_ms < 0:
                raise reject(ErrorCode.INVALID_PARAMETER, "countdownTime")
        except SimRejection as rej:
            self._record_rejection("countdown_cancel_all", rej, symbol)
            raise
        if countdown_ms == 0:
            self._countdowns.pop(symbol, None)
            return CountdownState(symbol=symbol, countdown_ms=0, deadline=None)
        deadline = self._now + countdown_ms / 1000
        self._countdowns[symbol] = deadline
        return CountdownState(symbol=symbol, countdown_ms=countdown_ms, deadline=deadline)

    def set_leverage(self, symbol: str, leverage: int, now: float | None = None) -> LeverageChange:
        """Change ``symbol``'s leverage (1..``max_leverage``).

        Raises:
            SimRejection: -4028 for an invalid leverage, -1121 for an unknown symbol.
        """
        if now is not None:
            self.advance_to(now)
        try:
            spec = self._spec(symbol)
            if not 1 <= leverage <= self._config.max_leverage:
                raise reject(ErrorCode.INVALID_LEVERAGE, leverage)
        except SimRejection as rej:
            self._record_rejection("set_leverage", rej, symbol)
            raise
        self._leverage[symbol] = leverage
        self._emit_config(symbol, leverage)
        return LeverageChange(
            symbol=symbol, leverage=leverage, max_notional_value=spec.max_position_notional
        )

    def leverage(self, symbol: str) -> int:
        """The current leverage of ``symbol``."""
        self._spec(symbol)
        return self._leverage[symbol]

    def set_position_mode(self, mode: PositionMode, now: float | None = None) -> None:
        """Switch between one-way and hedge mode (only when flat with no open orders).

        Raises:
            SimRejection: -4059 if unchanged, -4067 with open orders, -4068 with a position.
        """
        if now is not None:
            self.advance_to(now)
        try:
            if mode is self._mode:
                raise reject(ErrorCode.NO_NEED_TO_CHANGE_POSITION_SIDE)
            if any(self._open[s] for s in self._open):
                raise reject(ErrorCode.POSITION_SIDE_CHANGE_EXISTS_OPEN_ORDERS)
            if any(p.quantity != 0 for p in self._positions.values()):
                raise reject(ErrorCode.POSITION_SIDE_CHANGE_EXISTS_QUANTITY)
        except SimRejection as rej:
            self._record_rejection("set_position_mode", rej, "")
            raise
        self._mode = mode
        self._reset_positions()

    def check_rate(self, kind: RateKind, now: float, weight: int = 1) -> RateUsage:
        """Count a request against the rate limits (for the server's endpoint weights).

        Raises:
            SimRejection: -1003 / -1015 with HTTP 429 and ``retry_after`` when a window is
                full; the refused request is not counted.
        """
        return self._rate.check(kind, self._clock(now) + self._config.epoch_offset, weight)

    def rate_usage(self, now: float) -> RateUsage:
        """Current rate-limit usage (for ``X-MBX-USED-WEIGHT-1M`` and friends)."""
        return self._rate.usage(self._clock(now) + self._config.epoch_offset)

    # ------------------------------------------------------------------ queries

    def query_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        algo: bool | None = None,
    ) -> VenueOrder:
        """Look up one order, open or closed, as ``GET /fapi/v1/order`` does.

        Raises:
            SimRejection: -2013 if unknown or past retention, -1102 without an id.
        """
        return self.order_detail(
            symbol, order_id=order_id, client_order_id=client_order_id, algo=algo
        ).venue_order

    def order_detail(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        algo: bool | None = None,
    ) -> SimOrder:
        """Like :meth:`query_order`, with every wire field (for the loopback server)."""
        self._spec(symbol)
        self._require_some_id(order_id, client_order_id)
        order = self._find(symbol, order_id, client_order_id, algo)
        if order is None or not self._retained(order):
            raise reject(ErrorCode.NO_SUCH_ORDER)
        return self._snapshot(order)

    def open_orders(
        self, symbol: str | None = None, *, algo: bool | None = None
    ) -> tuple[VenueOrder, ...]:
        """Open orders (untriggered algo orders included unless ``algo=False``), by id."""
        return tuple(o.venue_order for o in self.orders(symbol, open_only=True, algo=algo))

    def orders(
        self, symbol: str | None = None, *, open_only: bool = False, algo: bool | None = None
    ) -> tuple[SimOrder, ...]:
        """Snapshots of orders (all, or only open ones), optionally filtered, by id."""
        if symbol is not None:
            self._spec(symbol)
        if open_only:
            pool: Iterator[_Order] = (
                o for s in self._specs if symbol in (None, s) for o in self._open[s].values()
            )
            selected = sorted(pool, key=lambda o: o.order_id)
        else:
            selected = [o for o in self._orders.values() if symbol in (None, o.symbol)]
        return tuple(self._snapshot(o) for o in selected if algo is None or o.algo is algo)

    def positions(self) -> tuple[VenuePosition, ...]:
        """Every position leg (flat ones included), in symbol order."""
        ms = self.venue_time_ms()
        return tuple(
            VenuePosition(
                symbol=p.symbol,
                quantity=p.quantity,
                entry_price=p.entry_price,
                position_side=p.position_side,
                unrealized_pnl=p.unrealized_pnl(self._paths[p.symbol].mid),
                leverage=self._leverage[p.symbol],
                venue_time_ms=ms,
            )
            for p in self._positions.values()
        )

    def position_qty(self, symbol: str, position_side: PositionSide = PositionSide.BOTH) -> Decimal:
        """Signed quantity of one position leg (zero if the leg does not exist in this mode)."""
        state = self._positions.get((symbol, position_side))
        return ZERO if state is None else state.quantity

    def balances(self) -> tuple[SimBalance, ...]:
        """The margin-asset balance (one entry)."""
        unrealized = self._unrealized_total()
        initial_margin = self._position_margin() + self._open_order_margin()
        margin_balance = self._wallet + unrealized
        return (
            SimBalance(
                asset=self._config.asset,
                wallet_balance=self._wallet,
                unrealized_pnl=unrealized,
                margin_balance=margin_balance,
                initial_margin=money(initial_margin),
                available_balance=money(margin_balance - initial_margin),
            ),
        )

    def user_trades(
        self,
        symbol: str,
        *,
        from_trade_id: str | None = None,
        limit: int = 500,
        order_id: str | None = None,
    ) -> tuple[Fill, ...]:
        """Our trades of ``symbol`` in id order, as ``GET /fapi/v1/userTrades`` returns them.

        With ``from_trade_id``, the first ``limit`` trades with id >= it; without, the most
        recent ``limit``.

        Raises:
            SimRejection: -1121 unknown symbol, -1130 for a limit outside 1..1000 or a
                malformed trade id.
        """
        self._spec(symbol)
        if not 1 <= limit <= 1000:
            raise reject(ErrorCode.INVALID_PARAMETER, "limit")
        trades = self._trades[symbol]
        if order_id is not None:
            trades = [t for t in trades if t.order_id == order_id]
        if from_trade_id is None:
            return tuple(trades[-limit:])
        try:
            first = int(from_trade_id)
        except ValueError:
            raise reject(ErrorCode.INVALID_PARAMETER, "fromId") from None
        return tuple([t for t in trades if int(t.trade_id) >= first][:limit])

    def exchange_info(self) -> ExchangeInfo:
        """Symbols with their filters, and the rate limits."""
        return ExchangeInfo(
            server_time_ms=self.venue_time_ms(),
            symbols=tuple(self._specs.values()),
            rate_limits=self._config.rate_limits,
            max_algo_orders=self._config.max_algo_orders,
        )

    def events_since(self, after_seq: int = 0) -> tuple[SimEvent, ...]:
        """User-data events with ``seq > after_seq``, in order (a resumable cursor)."""
        return tuple(self._events[max(after_seq, 0) :])

    @property
    def last_event_seq(self) -> int:
        """The ``seq`` of the newest event (0 before the first)."""
        return len(self._events)

    # ------------------------------------------------------------------ admission

    def _admit(self, req: OrderRequest, route: OrderRoute) -> _Order:
        """Validate a placement in Binance's order of checks and build the order."""
        spec = self._spec(req.symbol)
        filters = spec.filters
        otype = req.order_type
        algo = otype.is_conditional
        if route is OrderRoute.ORDER and algo:
            raise reject(ErrorCode.STOP_ORDER_SWITCH_ALGO)
        if route is OrderRoute.ALGO and not algo:
            raise reject(ErrorCode.INVALID_ORDER_TYPE)
        if otype is OrderType.TRAILING_STOP_MARKET:
            raise reject(ErrorCode.UNSUPPORTED_OPERATION)
        self._check_position_side(req)
        quantity = self._check_shape(req)
        time_in_force = self._check_time_in_force(req)
        if req.client_order_id and not BINANCE_CLIENT_ID_RE.match(req.client_order_id):
            raise reject(ErrorCode.INVALID_CL_ORD_ID_LEN)

        if req.price is not None:
            check_price(filters, req.price)
        if req.stop_price is not None:
            check_price(filters, req.stop_price, is_stop=True)
        if quantity is not None:
            check_quantity(filters, quantity, market=otype in _MARKET_EXECUTING)
        # Book-level checks come before the market-dependent ones, so a resend of an
        # accepted request meets -4116 whatever the market did since.
        if req.client_order_id and self._open_with_client(req.symbol, req.client_order_id, algo):
            raise reject(
                ErrorCode.DUPLICATED_CLIENT_ALGO_ID
                if algo
                else ErrorCode.DUPLICATED_CLIENT_ORDER_ID
            )
        if len(self._open[req.symbol]) >= filters.max_num_orders:
            raise reject(
                ErrorCode.MAX_STOP_ORDER_EXCEEDED if algo else ErrorCode.MAX_OPEN_ORDER_EXCEEDED
            )
        if algo and self._open_algo_count() >= self._config.max_algo_orders:
            raise reject(ErrorCode.MAX_STOP_ORDER_EXCEEDED)
        mid = self._paths[req.symbol].mid
        if otype is OrderType.LIMIT and req.price is not None:
            check_percent_price(filters, req.side, req.price, mid)
        exit_only = self._is_exit(req.side, req.position_side, req.reduce_only, req.close_position)
        ref_price = req.price if req.price is not None else (req.stop_price or mid)
        if quantity is not None:
            check_min_notional(filters, quantity * ref_price, exempt=exit_only)

        if algo:
            assert req.stop_price is not None
            if _triggers(req.side, otype, req.stop_price, mid):
                raise reject(ErrorCode.ORDER_WOULD_IMMEDIATELY_TRIGGER)
        else:
            assert quantity is not None
            self._check_plain_execution(req, quantity, time_in_force, exit_only)

        ms = self.venue_time_ms()
        return _Order(
            order_id=0,
            symbol=req.symbol,
            client_order_id=req.client_order_id,
            side=req.side,
            order_type=otype,
            orig_type=otype,
            quantity=quantity if quantity is not None else ZERO,
            price=req.price,
            stop_price=req.stop_price,
            time_in_force=time_in_force,
            reduce_only=req.reduce_only,
            close_position=req.close_position,
            position_side=req.position_side,
            algo=algo,
            create_ts=self._now,
            create_ms=ms,
            update_ms=ms,
            algo_status=AlgoStatus.NEW if algo else None,
        )

    def _check_position_side(self, req: OrderRequest) -> None:
        hedge = self._mode is PositionMode.HEDGE
        if hedge == (req.position_side is PositionSide.BOTH):
            raise reject(ErrorCode.POSITION_SIDE_NOT_MATCH)
        if hedge and req.reduce_only:
            raise reject(ErrorCode.PARAM_NOT_REQUIRED, "reduceOnly")

    def _check_shape(self, req: OrderRequest) -> Decimal | None:
        """Mandatory and forbidden parameters per type; returns the quantity (None: close)."""
        otype = req.order_type
        if req.close_position:
            if otype not in _CLOSE_POSITION_TYPES:
                raise reject(ErrorCode.PARAM_NOT_REQUIRED, "closePosition")
            if req.reduce_only:
                raise reject(ErrorCode.PARAM_NOT_REQUIRED, "reduceOnly")
            if req.quantity is not None:
                raise reject(ErrorCode.QUANTITY_EXISTS_WITH_CLOSE_POSITION)
            if self._mode is PositionMode.HEDGE and not _closes_leg(req.side, req.position_side):
                raise reject(ErrorCode.REDUCE_ONLY_REJECT)
        elif req.quantity is None:
            raise reject(ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED, "quantity")
        if otype.needs_price:
            if req.price is None:
                raise reject(ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED, "price")
        elif req.price is not None:
            raise reject(ErrorCode.PARAM_NOT_REQUIRED, "price")
        if otype.needs_stop_price:
            if req.stop_price is None:
                raise reject(ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED, "triggerPrice")
        elif req.stop_price is not None:
            raise reject(ErrorCode.PARAM_NOT_REQUIRED, "stopPrice")
        return req.quantity

    def _check_time_in_force(self, req: OrderRequest) -> TimeInForce | None:
        otype, tif = req.order_type, req.time_in_force
        if tif is TimeInForce.GTD:
            # GTD needs goodTillDate, which OrderRequest cannot carry.
            raise reject(ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED, "goodTillDate")
        if otype is OrderType.LIMIT:
            if tif is None:
                raise reject(ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED, "timeInForce")
            return tif
        if otype is OrderType.MARKET:
            if tif is not None:
                raise reject(ErrorCode.PARAM_NOT_REQUIRED, "timeInForce")
            return None
        if otype in _CLOSE_POSITION_TYPES:
            if tif not in (None, TimeInForce.GTC):
                raise reject(ErrorCode.PARAM_NOT_REQUIRED, "timeInForce")
            return None
        return tif or TimeInForce.GTC

    def _check_plain_execution(
        self, req: OrderRequest, quantity: Decimal, tif: TimeInForce | None, exit_only: bool
    ) -> None:
        """Checks that need the book and the account: reduce-only, margin, GTX, FOK."""
        quote = self.quote(req.symbol)
        if exit_only:
            reducible = self._reducible(req.symbol, req.side, req.position_side)
            if reducible == 0:
                raise reject(ErrorCode.REDUCE_ONLY_REJECT)
            if self._mode is PositionMode.HEDGE and quantity > reducible:
                raise reject(ErrorCode.REDUCE_ONLY_REJECT)
        else:
            price = req.price if req.price is not None else quote.touch(req.side)
            self._check_margin(req.symbol, req.side, req.position_side, quantity, price)
        if req.order_type is OrderType.LIMIT:
            assert req.price is not None
            crosses = quote.crosses(req.side, req.price)
            if tif is TimeInForce.GTX and crosses:
                raise reject(ErrorCode.GTX_ORDER_REJECT)
            if tif is TimeInForce.FOK:
                fillable = self._fillable(req.symbol, req.side, req.price) if crosses else ZERO
                if exit_only:
                    fillable = min(
                        fillable, self._reducible(req.symbol, req.side, req.position_side)
                    )
                if fillable < quantity:
                    raise reject(ErrorCode.FOK_ORDER_REJECT)

    def _check_margin(
        self,
        symbol: str,
        side: Side,
        position_side: PositionSide,
        quantity: Decimal,
        price: Decimal,
    ) -> None:
        """-2027 / -2019 for the risk-increasing part of an order."""
        if self._mode is PositionMode.HEDGE:
            opening = quantity
            new_abs = abs(self.position_qty(symbol, position_side)) + quantity
        else:
            current = self.position_qty(symbol)
            opening = quantity - min(quantity, self._reducible(symbol, side, position_side))
            new_abs = abs(current + (quantity if side is Side.BUY else -quantity))
        if opening == 0:
            return
        if new_abs * price > self._specs[symbol].max_position_notional:
            raise reject(ErrorCode.MAX_LEVERAGE_RATIO)
        required = opening * price / self._leverage[symbol]
        available = (
            self._wallet
            + self._unrealized_total()
            - self._position_margin()
            - self._open_order_margin()
        )
        if required > available:
            raise reject(ErrorCode.MARGIN_NOT_SUFFICIENT)

    def _fillable(self, symbol: str, side: Side, limit: Decimal) -> Decimal:
        spec = self._specs[symbol]
        levels = taker_levels(self.quote(symbol), side, spec.book, spec.filters.tick_size)
        return sum((qty for price, qty in levels if not _worse(side, price, limit)), start=ZERO)

    # ------------------------------------------------------------------ order lifecycle

    def _register(self, order: _Order, req: OrderRequest, *, announce: bool = True) -> None:
        """Give an admitted order its id, book it, record it and announce it."""
        order.order_id = self._new_id()
        if not order.client_order_id:
            order.client_order_id = f"sim{order.order_id:019d}"
        self._orders[order.order_id] = order
        self._open[order.symbol][order.order_id] = order
        self._by_client.setdefault((order.symbol, order.client_order_id), []).append(order.order_id)
        self._history.append(
            lambda seq: OrderAccepted(
                seq=seq,
                ts=self._now,
                time_ms=order.create_ms,
                order_id=str(order.order_id),
                client_order_id=order.client_order_id,
                request=req,
                algo=order.algo,
                parent_algo_id=None if order.parent_algo_id is None else str(order.parent_algo_id),
            )
        )
        if not announce:
            return
        if order.algo:
            self._emit_algo(order)
        else:
            self._emit_order(order, ExecutionType.NEW)

    def _execute_new(self, order: _Order) -> None:
        """Immediate execution of a freshly accepted plain order."""
        if self._is_exit_order(order) and self._reducible_for(order) == 0:
            # Only triggered orders get here: placements were refused with -2022.
            self._expire(order, ExpireReason.REDUCE_ONLY, CloseReason.REDUCE_ONLY)
            return
        if order.order_type is OrderType.MARKET:
            self._sweep(order, limit=None)
            if order.is_open:
                self._expire(order, ExpireReason.MARKET_REMAINDER, CloseReason.MARKET_REMAINDER)
            return
        assert order.price is not None
        if self.quote(order.symbol).crosses(order.side, order.price):
            self._sweep(order, limit=order.price)
        if order.is_open and order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            self._expire(order, ExpireReason.IOC_REMAINDER, CloseReason.IOC_REMAINDER)

    def _sweep(self, order: _Order, limit: Decimal | None) -> None:
        """Take liquidity level by level (taker fills with the slippage preset)."""
        spec = self._specs[order.symbol]
        tick = spec.filters.tick_size
        exit_only = self._is_exit_order(order)
        for level_price, level_qty in taker_levels(
            self.quote(order.symbol), order.side, spec.book, tick
        ):
            if limit is not None and _worse(order.side, level_price, limit):
                break
            price = self._slipped(order.symbol, order.side, level_price)
            if limit is not None and _worse(order.side, price, limit):
                price = limit
            qty = min(order.remaining, level_qty)
            if exit_only:
                qty = min(qty, self._reducible_for(order))
            if qty <= 0:
                break
            self._fill(order, qty, price, maker=False)
            if not order.is_open:
                return
        if order.is_open and exit_only and self._reducible_for(order) == 0:
            self._expire(order, ExpireReason.REDUCE_ONLY, CloseReason.REDUCE_ONLY)

    def _slipped(self, symbol: str, side: Side, price: Decimal) -> Decimal:
        """A taker's level price moved by the core slippage preset, back on the tick grid."""
        if self._slippage is None:
            return price
        estimate = self._slippage.estimate(symbol, side, price, self._epoch())
        return round_against(estimate.adjusted_price, side, self._specs[symbol].filters.tick_size)

    def _fill(self, order: _Order, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        """Execute one trade of ``order``: position, wallet, history, events, knock-outs."""
        symbol = order.symbol
        trade_id = self._next_trade_id[symbol]
        self._next_trade_id[symbol] = trade_id + 1
        fee_bps = self._config.maker_fee_bps if maker else self._config.taker_fee_bps
        fee = money(qty * price * fee_bps / _BPS)
        position = self._positions[(symbol, order.position_side)]
        effect = position.apply_fill(order.side, qty, price)
        self._wallet += effect.realized_pnl - fee
        ms = self.venue_time_ms()
        order.filled += qty
        order.cum_quote += qty * price
        order.status = (
            VenueOrderStatus.FILLED
            if order.filled == order.quantity
            else VenueOrderStatus.PARTIALLY_FILLED
        )
        order.update_ms = ms
        fill = Fill(
            symbol=symbol,
            trade_id=str(trade_id),
            order_id=str(order.order_id),
            client_order_id=order.client_order_id,
            side=order.side,
            quantity=qty,
            price=price,
            fee=fee,
            fee_asset=self._config.asset,
            realized_pnl=effect.realized_pnl,
            position_side=order.position_side,
            maker=maker,
            venue_time_ms=ms,
        )
        self._trades[symbol].append(fill)
        self._history.append(lambda seq: FillRecorded(seq=seq, ts=self._now, fill=fill))
        self._emit_order(
            order,
            ExecutionType.TRADE,
            last_filled_qty=qty,
            last_filled_price=price,
            trade_id=fill.trade_id,
            commission=fee,
            realized_pnl=effect.realized_pnl,
            maker=maker,
        )
        self._emit_account(position)
        if not order.is_open:
            self._on_closed(order)
        self._knock_out_exits(symbol)

    def _expire(self, order: _Order, reason: ExpireReason, close_reason: CloseReason) -> None:
        order.status = VenueOrderStatus.EXPIRED
        order.expire_reason = reason
        order.update_ms = self.venue_time_ms()
        self._record_closed(order, close_reason)
        self._emit_order(order, ExecutionType.EXPIRED, expire_reason=reason)
        self._on_closed(order)

    def _cancel(self, order: _Order, reason: CloseReason) -> None:
        order.status = VenueOrderStatus.CANCELED
        order.update_ms = self.venue_time_ms()
        if order.algo:
            order.algo_status = AlgoStatus.CANCELED
            self._record_closed(order, reason)
            self._emit_algo(order)
            del self._open[order.symbol][order.order_id]
            return
        self._record_closed(order, reason)
        self._emit_order(order, ExecutionType.CANCELED)
        self._on_closed(order)

    def _on_closed(self, order: _Order) -> None:
        """A plain order reached a terminal state: unbook it, finish its algo parent."""
        self._open[order.symbol].pop(order.order_id, None)
        if order.parent_algo_id is not None:
            parent = self._orders[order.parent_algo_id]
            parent.algo_status = AlgoStatus.FINISHED
            parent.update_ms = order.update_ms
            self._emit_algo(parent)

    def _knock_out_exits(self, symbol: str) -> None:
        """Expire resting exit orders that can no longer reduce anything (``er`` 4)."""
        for order in list(self._open[symbol].values()):
            if order.algo or not order.is_open or not self._is_exit_order(order):
                continue
            if self._reducible_for(order) == 0:
                self._expire(order, ExpireReason.REDUCE_ONLY, CloseReason.REDUCE_ONLY)

    def _process_symbol(self, symbol: str) -> None:
        """One price step: fire due triggers, then fill crossed resting orders."""
        if not self._open[symbol]:
            return
        mid = self._paths[symbol].mid
        for order in [o for o in self._open[symbol].values() if o.algo]:
            if order.algo_status is AlgoStatus.NEW:
                assert order.stop_price is not None
                if _triggers(order.side, order.orig_type, order.stop_price, mid):
                    self._trigger(order, mid)
        self._match_resting(symbol)

    def _match_resting(self, symbol: str) -> None:
        """Crossed resting limits fill at their price against the per-step maker budget."""
        quote = self.quote(symbol)
        budget_per_side = self._specs[symbol].book.resting_fill_qty
        for side in (Side.BUY, Side.SELL):
            crossed = [
                o
                for o in self._open[symbol].values()
                if not o.algo
                and o.order_type is OrderType.LIMIT
                and o.side is side
                and o.price is not None
                and quote.crosses(side, o.price)
            ]
            crossed.sort(key=_priority)
            budget = budget_per_side
            for order in crossed:
                if budget <= 0:
                    break
                if not order.is_open:
                    continue
                assert order.price is not None
                qty = min(order.remaining, budget)
                if self._is_exit_order(order):
                    qty = min(qty, self._reducible_for(order))
                if qty <= 0:
                    continue
                self._fill(order, qty, order.price, maker=True)
                budget -= qty

    def _trigger(self, algo: _Order, price: Decimal) -> None:
        """An algo order's condition is met: place its plain order (or give up, recorded)."""
        ms = self.venue_time_ms()
        algo.algo_status = AlgoStatus.TRIGGERING
        algo.trigger_ms = ms
        algo.update_ms = ms
        self._emit_algo(algo)
        del self._open[algo.symbol][algo.order_id]
        if algo.close_position:
            quantity = self._reducible_for(algo)
            if quantity == 0:
                self._finish_algo_untriggered(
                    algo, price, AlgoStatus.EXPIRED, CloseReason.NO_POSITION, ""
                )
                return
            algo.quantity = quantity
        child_type = (
            OrderType.MARKET if algo.orig_type in _CLOSE_POSITION_TYPES else OrderType.LIMIT
        )
        if not self._is_exit_order(algo):
            ref = algo.price if algo.price is not None else self.quote(algo.symbol).touch(algo.side)
            try:
                self._check_margin(algo.symbol, algo.side, algo.position_side, algo.quantity, ref)
            except SimRejection as rej:
                self._finish_algo_untriggered(
                    algo, price, AlgoStatus.REJECTED, CloseReason.MARGIN_INSUFFICIENT, rej.message
                )
                return
        child = _Order(
            order_id=0,
            symbol=algo.symbol,
            client_order_id=algo.client_order_id,
            side=algo.side,
            order_type=child_type,
            orig_type=algo.orig_type,
            quantity=algo.quantity,
            price=algo.price if child_type is OrderType.LIMIT else None,
            stop_price=algo.stop_price,
            time_in_force=algo.time_in_force if child_type is OrderType.LIMIT else None,
            reduce_only=algo.reduce_only,
            close_position=algo.close_position,
            position_side=algo.position_side,
            algo=False,
            create_ts=self._now,
            create_ms=ms,
            update_ms=ms,
            parent_algo_id=algo.order_id,
        )
        child_request = OrderRequest(
            symbol=child.symbol,
            side=child.side,
            order_type=child_type,
            client_order_id=child.client_order_id,
            quantity=child.quantity,
            price=child.price,
            time_in_force=child.time_in_force,
            reduce_only=child.reduce_only,
            close_position=child.close_position,
            position_side=child.position_side,
        )
        child_id = self._peek_id()
        self._history.append(
            lambda seq: AlgoTriggered(
                seq=seq,
                ts=self._now,
                time_ms=ms,
                algo_id=str(algo.order_id),
                symbol=algo.symbol,
                trigger_price=price,
                outcome="triggered",
                child_order_id=str(child_id),
            )
        )
        self._register(child, child_request, announce=False)
        assert child.order_id == child_id
        algo.algo_status = AlgoStatus.TRIGGERED
        algo.actual_order_id = child_id
        self._emit_algo(algo)
        self._emit_order(child, ExecutionType.NEW)
        self._execute_new(child)

    def _finish_algo_untriggered(
        self,
        algo: _Order,
        price: Decimal,
        status: AlgoStatus,
        reason: CloseReason,
        message: str,
    ) -> None:
        algo.algo_status = status
        algo.status = (
            VenueOrderStatus.EXPIRED if status is AlgoStatus.EXPIRED else VenueOrderStatus.REJECTED
        )
        algo.reject_message = message
        self._history.append(
            lambda seq: AlgoTriggered(
                seq=seq,
                ts=self._now,
                time_ms=algo.update_ms,
                algo_id=str(algo.order_id),
                symbol=algo.symbol,
                trigger_price=price,
                outcome=reason.value,
            )
        )
        self._record_closed(algo, reason)
        self._emit_algo(algo)

    def _fire_countdown(self, symbol: str) -> None:
        del self._countdowns[symbol]
        for order in list(self._open[symbol].values()):
            if order.algo and not self._config.countdown_cancels_algo:
                continue
            if order.is_open:
                self._cancel(order, CloseReason.COUNTDOWN)

    # ------------------------------------------------------------------ positions and margin

    def _reset_positions(self) -> None:
        sides = (
            (PositionSide.LONG, PositionSide.SHORT)
            if self._mode is PositionMode.HEDGE
            else (PositionSide.BOTH,)
        )
        self._positions = {
            (symbol, side): PositionState(symbol=symbol, position_side=side)
            for symbol in self._specs
            for side in sides
        }

    def _is_exit(
        self, side: Side, position_side: PositionSide, reduce_only: bool, close_position: bool
    ) -> bool:
        if reduce_only or close_position:
            return True
        return self._mode is PositionMode.HEDGE and _closes_leg(side, position_side)

    def _is_exit_order(self, order: _Order) -> bool:
        return self._is_exit(
            order.side, order.position_side, order.reduce_only, order.close_position
        )

    def _reducible(self, symbol: str, side: Side, position_side: PositionSide) -> Decimal:
        """How much an exit order of ``side`` can reduce right now (never negative)."""
        if self._mode is PositionMode.HEDGE:
            if not _closes_leg(side, position_side):
                return ZERO
            return abs(self.position_qty(symbol, position_side))
        current = self.position_qty(symbol)
        if side is Side.BUY:
            return -current if current < 0 else ZERO
        return current if current > 0 else ZERO

    def _reducible_for(self, order: _Order) -> Decimal:
        return self._reducible(order.symbol, order.side, order.position_side)

    def _unrealized_total(self) -> Decimal:
        return sum(
            (p.unrealized_pnl(self._paths[p.symbol].mid) for p in self._positions.values()),
            start=ZERO,
        )

    def _position_margin(self) -> Decimal:
        return sum(
            (
                abs(p.quantity) * self._paths[p.symbol].mid / self._leverage[p.symbol]
                for p in self._positions.values()
            ),
            start=ZERO,
        )

    def _open_order_margin(self) -> Decimal:
        total = ZERO
        for symbol, book in self._open.items():
            for order in book.values():
                if order.algo or order.price is None or self._is_exit_order(order):
                    continue
                total += order.remaining * order.price / self._leverage[symbol]
        return total

    # ------------------------------------------------------------------ lookup helpers

    def _spec(self, symbol: str) -> SymbolConfig:
        spec = self._specs.get(symbol)
        if spec is None:
            raise reject(ErrorCode.BAD_SYMBOL)
        return spec

    def _clock(self, now: float) -> float:
        if not math.isfinite(now):
            raise CoreValueError("now", f"must be finite, got {now!r}")
        return max(now, self._now)

    def _epoch(self) -> float:
        return self._now + self._config.epoch_offset

    def _new_id(self) -> int:
        order_id = self._next_id
        self._next_id += 1
        return order_id

    def _peek_id(self) -> int:
        return self._next_id

    def _open_algo_count(self) -> int:
        return sum(1 for book in self._open.values() for o in book.values() if o.algo)

    def _open_with_client(self, symbol: str, client_order_id: str, algo: bool) -> bool:
        return any(
            self._orders[i].is_open and self._orders[i].algo is algo
            for i in self._by_client.get((symbol, client_order_id), ())
        )

    @staticmethod
    def _require_some_id(order_id: str | None, client_order_id: str | None) -> None:
        if order_id is None and not client_order_id:
            raise SimRejection(
                int(ErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
                "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!",
            )

    def _find(
        self,
        symbol: str,
        order_id: str | None,
        client_order_id: str | None,
        algo: bool | None,
    ) -> _Order | None:
        """By id if given; else by client id: the open order, else the newest one."""
        if order_id is not None:
            try:
                found = self._orders.get(int(order_id))
            except ValueError:
                return None
            if (
                found is None
                or found.symbol != symbol
                or (algo is not None and found.algo is not algo)
            ):
                return None
            return found
        candidates = [
            self._orders[i]
            for i in self._by_client.get((symbol, client_order_id or ""), ())
            if algo is None or self._orders[i].algo is algo
        ]
        if not candidates:
            return None
        open_ones = [o for o in candidates if o.is_open]
        return max(open_ones or candidates, key=lambda o: o.order_id)

    def _retained(self, order: _Order) -> bool:
        """Binance forgets old orders: unfilled closed ones after 3 days, all after 90."""
        if order.is_open:
            return True
        age = self._now - order.create_ts
        if age > self._config.retention_all_s:
            return False
        unfilled_closed = (
            order.status
            in (
                VenueOrderStatus.CANCELED,
                VenueOrderStatus.EXPIRED,
            )
            and self._snapshot(order).filled_qty == 0
        )
        return not (unfilled_closed and age > self._config.retention_closed_unfilled_s)

    def _snapshot(self, order: _Order) -> SimOrder:
        status, filled, cum_quote = order.status, order.filled, order.cum_quote
        if order.algo and order.actual_order_id is not None:
            child = self._orders[order.actual_order_id]
            status, filled, cum_quote = child.status, child.filled, child.cum_quote
        return SimOrder(
            order_id=str(order.order_id),
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            order_type=order.order_type,
            orig_type=order.orig_type,
            status=status,
            quantity=order.quantity,
            filled_qty=filled,
            cum_quote=cum_quote,
            price=order.price,
            stop_price=order.stop_price,
            time_in_force=order.time_in_force,
            reduce_only=order.reduce_only,
            close_position=order.close_position,
            position_side=order.position_side,
            create_time_ms=order.create_ms,
            update_time_ms=order.update_ms,
            algo=order.algo,
            algo_status=order.algo_status,
            actual_order_id=None if order.actual_order_id is None else str(order.actual_order_id),
            parent_algo_id=None if order.parent_algo_id is None else str(order.parent_algo_id),
            trigger_time_ms=order.trigger_ms,
            expire_reason=order.expire_reason,
            reject_message=order.reject_message,
        )

    # ------------------------------------------------------------------ recording

    def _record_rejection(
        self,
        action: str,
        rej: SimRejection,
        symbol: str,
        *,
        request: OrderRequest | None = None,
        order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> None:
        ms = self.venue_time_ms()
        self._history.append(
            lambda seq: RequestRejected(
                seq=seq,
                ts=self._now,
                time_ms=ms,
                action=action,
                code=rej.code,
                message=rej.message,
                symbol=symbol,
                request=request,
                order_id=order_id,
                client_order_id=client_order_id,
            )
        )

    def _record_closed(self, order: _Order, reason: CloseReason) -> None:
        filled = self._snapshot(order).filled_qty
        self._history.append(
            lambda seq: OrderClosed(
                seq=seq,
                ts=self._now,
                time_ms=order.update_ms,
                order_id=str(order.order_id),
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                status=order.status,
                reason=reason,
                filled_qty=filled,
                algo=order.algo,
            )
        )

    def _emit_order(
        self,
        order: _Order,
        execution_type: ExecutionType,
        *,
        last_filled_qty: Decimal = ZERO,
        last_filled_price: Decimal = ZERO,
        trade_id: str | None = None,
        commission: Decimal = ZERO,
        realized_pnl: Decimal = ZERO,
        maker: bool = False,
        expire_reason: ExpireReason = ExpireReason.NONE,
    ) -> None:
        ms = self.venue_time_ms()
        self._events.append(
            OrderTradeUpdate(
                seq=len(self._events) + 1,
                event_time_ms=ms,
                transaction_time_ms=ms,
                execution_type=execution_type,
                order=self._snapshot(order),
                last_filled_qty=last_filled_qty,
                last_filled_price=last_filled_price,
                trade_id=trade_id,
                commission=commission,
                commission_asset=self._config.asset,
                realized_pnl=realized_pnl,
                maker=maker,
                expire_reason=expire_reason,
            )
        )

    def _emit_account(self, position: PositionState) -> None:
        ms = self.venue_time_ms()
        self._events.append(
            AccountUpdate(
                seq=len(self._events) + 1,
                event_time_ms=ms,
                transaction_time_ms=ms,
                reason="ORDER",
                balances=(
                    BalanceUpdate(
                        asset=self._config.asset,
                        wallet_balance=self._wallet,
                        cross_wallet_balance=self._wallet,
                        balance_change=ZERO,
                    ),
                ),
                positions=(
                    PositionUpdate(
                        symbol=position.symbol,
                        position_side=position.position_side,
                        quantity=position.quantity,
                        entry_price=position.entry_price,
                        accumulated_realized=position.accumulated_realized,
                        unrealized_pnl=position.unrealized_pnl(self._paths[position.symbol].mid),
                    ),
                ),
            )
        )

    def _emit_algo(self, order: _Order) -> None:
        assert order.algo_status is not None
        ms = self.venue_time_ms()
        self._events.append(
            AlgoUpdate(
                seq=len(self._events) + 1,
                event_time_ms=ms,
                transaction_time_ms=ms,
                algo_status=order.algo_status,
                order=self._snapshot(order),
                reject_message=order.reject_message,
            )
        )

    def _emit_config(self, symbol: str, leverage: int) -> None:
        ms = self.venue_time_ms()
        self._events.append(
            AccountConfigUpdate(
                seq=len(self._events) + 1,
                event_time_ms=ms,
                transaction_time_ms=ms,
                symbol=symbol,
                leverage=leverage,
            )
        )


def _closes_leg(side: Side, position_side: PositionSide) -> bool:
    """Hedge mode: SELL LONG and BUY SHORT close a leg."""
    return (position_side is PositionSide.LONG and side is Side.SELL) or (
        position_side is PositionSide.SHORT and side is Side.BUY
    )


def _triggers(side: Side, order_type: OrderType, stop_price: Decimal, price: Decimal) -> bool:
    """Binance's trigger rule for a conditional order at reference ``price``."""
    if order_type in _STOP_TYPES:
        return price >= stop_price if side is Side.BUY else price <= stop_price
    if order_type in _TP_TYPES:
        return price <= stop_price if side is Side.BUY else price >= stop_price
    return False


def _worse(side: Side, price: Decimal, limit: Decimal) -> bool:
    """True if ``price`` is worse than ``limit`` for a taker of ``side``."""
    return price > limit if side is Side.BUY else price < limit


def _priority(order: _Order) -> tuple[Decimal, int]:
    """Price priority (best first for the order's side), then time (ids grow with time)."""
    price = order.price if order.price is not None else ZERO
    return (-price if order.side is Side.BUY else price, order.order_id)
