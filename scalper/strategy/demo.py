"""The demo strategy: small entries on a price path, take-profits, the odd cancel and replace.

Theory of operation
-------------------

:class:`DemoStrategy` exists to exercise the execution layer the way a real strategy would
(``python -m scalper serve`` runs it against the simulated exchange or a testnet), not to
make money. Every ``interval_s`` it takes one step per symbol; a step reads the mark price
and the journal's account through its :class:`~scalper.strategy.StrategyHost` and does at
most a few things, each recorded as a :class:`DemoDecision` with a reason tag:

* **Enter** when the symbol is flat, no entry intent is open on it (ours or anyone's,
  including a replacement the host has not journaled yet) and the knobs allow entries: one
  LIMIT GTC entry ``entry_offset_ticks`` away from the mark on the passive side (BUY below,
  SELL above), side drawn from the injected RNG, sized so that its notional is just above
  the venue minimum (``min_notional * notional_buffer`` rounded *up* to the step: 0.002 BTC
  at 60000 is 120 USDT against a 100 USDT minimum). An entry whose notional would exceed
  ``knobs.max_notional`` is not proposed.
* **Age out resting entries.** Once one of our entries has rested ``reprice_after_s`` the
  RNG decides once, with probability ``p_replace``, to replace it by a new intent
  ``reprice_offset_ticks`` from the current mark (a :class:`~scalper.messages.ReplaceOrder`;
  the new intent has its own id and keeps the old correlation id). Otherwise, or if the
  replace did not happen, the entry is cancelled after ``cancel_after_s``. A partially
  filled entry is never replaced (the replacement would re-buy what already filled); it
  just ages out. Under :meth:`DemoStrategy.run` a replace runs in the background (the
  host answers only once the old order is proven terminal, which can take many seconds):
  the other symbols keep stepping, the symbol counts as having a resting entry, and the
  old entry is left to the replace.
* **Take profit.** With a position and no open take-profit intent on the symbol, a
  reduce-only TAKE_PROFIT_MARKET for the whole position on the closing side, its trigger
  ``take_profit_bps`` beyond the better of the entry price and the mark (so it can never
  trigger at once, which the venue would reject with -2021). One whose size or side no
  longer matches the position is cancelled and placed again on a later step.
* **Time out.** A position held ``max_hold_s`` (from the journal's leg-open time) is closed
  with a reduce-only MARKET exit; our resting entries on the symbol are cancelled first.
* **Clean up.** A take-profit of ours still open on a flat symbol is cancelled.

Protective stops are **not** placed here: the ProtectionManager covers every filled leg
automatically (I9). Exits and take-profits are reduce-only, so they take the Router's exit
lane and can never add exposure (I1).

Rules the strategy follows:

* Every action goes through the host; the Router's gates decide. A refused receipt is a
  normal answer: recorded, logged, never raised. A venue or validation error from the host
  (``VenueError``, ``ValueError``) is recorded and skips that action (no mark price: the
  symbol's whole step); the other symbols and the loop live on. Nothing else is caught: a
  bug or a cancellation propagates.
* Everything it believes about orders comes from the journal's ``AccountState``: ages from
  ``accepted_wall_ms`` and the leg's ``opened_wall_ms`` (through the clock's
  ``from_wall_ms``), so a restarted strategy picks up where the journal is, not where its
  memory was. The only memory it keeps is what the journal cannot know yet (replacements in
  flight, cancels already asked for, the once-per-entry replace draw).
* Our intents are recognised by their id prefix (``intent_prefix``); intents of other
  sources (the operator, the ProtectionManager) are never cancelled or replaced here.
* Intent ids are drawn from the injected RNG through core's
  :class:`~scalper.core.ids.IdFactory` and skip ids the journal already knows, so a restart
  with the same seed cannot collide with its own past (the Router would refuse a known id).
  Same seed, same host answers: the same intents, in the same order.

Only one-way position mode is supported (``PositionSide.BOTH``).
"""

import logging
import math
import random
from collections import deque
from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Final

import attrs
import trio

from scalper.clock import Clock
from scalper.core.errors_base import CoreValueError
from scalper.core.ids import IdFactory
from scalper.core.intents import Intent, IntentKind
from scalper.core.types import ZERO, OrderType, PositionSide, Side, TimeInForce
from scalper.messages import ReplaceOrder
from scalper.state import AccountState, IntentRecord, IntentStatus
from scalper.strategy import StrategyHost
from scalper.venues.base import VenueError

__all__ = [
    "SOURCE",
    "DemoConfig",
    "DemoDecision",
    "DemoStrategy",
    "SymbolSpec",
    "entry_price",
    "entry_quantity",
]

#: The ``source`` every submission of this strategy carries (journaled with the intent).
SOURCE: Final = "demo"

_log = logging.getLogger(__name__)

_BPS: Final = Decimal(10_000)
#: Replace outcomes after which no new intent will appear in the journal.
_NO_NEW_INTENT: Final = frozenset({"refused", "gave_up", "filled_after_cancel"})
_ERROR_CHARS: Final = 200
_PREFIX_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


# ---------------------------------------------------------------------------------------
# Configuration.


def _positive_decimal(_inst: object, attribute: "attrs.Attribute[Decimal]", value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise CoreValueError(attribute.name, f"must be a positive finite Decimal, got {value!r}")


def _non_negative_decimal(
    _inst: object, attribute: "attrs.Attribute[Decimal]", value: object
) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise CoreValueError(attribute.name, f"must be a finite Decimal >= 0, got {value!r}")


def _positive_seconds(_inst: object, attribute: "attrs.Attribute[float]", value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CoreValueError(attribute.name, f"must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise CoreValueError(attribute.name, f"must be positive and finite, got {value!r}")


def _probability(_inst: object, attribute: "attrs.Attribute[float]", value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise CoreValueError(attribute.name, f"must be in [0, 1], got {value!r}")


def _ticks(_inst: object, attribute: "attrs.Attribute[int]", value: object) -> None:
    if type(value) is not int or value < 0:
        raise CoreValueError(attribute.name, f"must be an integer >= 0, got {value!r}")


@attrs.frozen
class SymbolSpec:
    """The venue filters the strategy rounds to (Binance's PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL).

    Attributes:
        tick_size: prices are multiples of it.
        step_size: quantities are multiples of it.
        min_notional: the smallest entry notional the venue accepts (quote currency).
    """

    tick_size: Decimal = attrs.field(default=Decimal("0.1"), validator=_positive_decimal)
    step_size: Decimal = attrs.field(default=Decimal("0.001"), validator=_positive_decimal)
    min_notional: Decimal = attrs.field(default=Decimal(100), validator=_non_negative_decimal)


@attrs.frozen
class DemoConfig:
    """How the demo strategy trades; every field defaulted and validated.

    Attributes:
        interval_s: time between two steps (each step visits every symbol once).
        entry_offset_ticks: how far from the mark a new entry rests (passive side).
        reprice_offset_ticks: how far from the mark a replacement rests; must be nearer
            than ``entry_offset_ticks``.
        reprice_after_s: an entry resting this long is considered for a replace.
        cancel_after_s: an entry resting this long is cancelled.
        p_replace: probability that a stale entry is replaced rather than left to age out.
        take_profit_bps: take-profit trigger distance beyond the entry (or the mark, if
            that is further), in basis points.
        max_hold_s: a position held this long is closed with a market exit.
        notional_buffer: entries are sized to ``min_notional * notional_buffer`` (>= 1),
            so rounding and a moving price cannot push them under the venue minimum.
        confidence: the confidence every entry is submitted with.
        intent_prefix: our intent ids start with ``<intent_prefix>-``.
        cancel_retry_s: a cancel we asked for is asked again if the intent is still open
            after this long.
        replace_grace_s: how long after the host answered a replace its new intent counts
            as an open entry while the journal does not know it (so no second entry is
            placed in the meantime).
        decision_log: how many recent decisions :attr:`DemoStrategy.decisions` keeps.
        default_spec: venue filters for symbols not in ``specs`` (Binance's BTCUSDT ones,
            which are also valid, if coarse, for ETHUSDT).
        specs: venue filters per symbol.
    """

    interval_s: float = attrs.field(default=2.0, validator=_positive_seconds)
    entry_offset_ticks: int = attrs.field(default=5, validator=_ticks)
    reprice_offset_ticks: int = attrs.field(default=2, validator=_ticks)
    reprice_after_s: float = attrs.field(default=10.0, validator=_positive_seconds)
    cancel_after_s: float = attrs.field(default=30.0, validator=_positive_seconds)
    p_replace: float = attrs.field(default=0.5, validator=_probability)
    take_profit_bps: Decimal = attrs.field(default=Decimal(8), validator=_positive_decimal)
    max_hold_s: float = attrs.field(default=90.0, validator=_positive_seconds)
    notional_buffer: Decimal = attrs.field(default=Decimal("1.05"), validator=_positive_decimal)
    confidence: float = attrs.field(default=0.9, validator=_probability)
    intent_prefix: str = "demo"
    cancel_retry_s: float = attrs.field(default=10.0, validator=_positive_seconds)
    replace_grace_s: float = attrs.field(default=10.0, validator=_positive_seconds)
    decision_log: int = attrs.field(default=1000, validator=_ticks)
    default_spec: SymbolSpec = attrs.field(factory=SymbolSpec)
    specs: dict[str, SymbolSpec] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.reprice_offset_ticks >= self.entry_offset_ticks:
            raise CoreValueError(
                "reprice_offset_ticks",
                f"must be below entry_offset_ticks ({self.entry_offset_ticks}) so a "
                f"replacement rests nearer the mark, got {self.reprice_offset_ticks}",
            )
        if self.cancel_after_s <= self.reprice_after_s:
            raise CoreValueError(
                "cancel_after_s",
                f"must exceed reprice_after_s ({self.reprice_after_s}), got {self.cancel_after_s}",
            )
        if self.notional_buffer < 1:
            raise CoreValueError(
                "notional_buffer",
                f"must be >= 1 (sizes stay above the minimum), got {self.notional_buffer}",
            )
        if not self.intent_prefix or not set(self.intent_prefix) <= _PREFIX_CHARS:
            raise CoreValueError(
                "intent_prefix", f"must be non-empty letters and digits, got {self.intent_prefix!r}"
            )
        for symbol, spec in self.specs.items():
            if not isinstance(spec, SymbolSpec):
                raise CoreValueError(f"specs.{symbol}", f"must be a SymbolSpec, got {spec!r}")

    def spec(self, symbol: str) -> SymbolSpec:
        """The venue filters for ``symbol``."""
        return self.specs.get(symbol, self.default_spec)


# ---------------------------------------------------------------------------------------
# Decisions.


@attrs.frozen
class DemoDecision:
    """One thing the strategy did or declined to do, and why.

    Attributes:
        at: when, on the injected clock.
        symbol: the symbol stepped.
        action: ``enter``, ``replace``, ``cancel``, ``take_profit``, ``exit`` or ``skip``.
        reason: a reason tag (``flat``, ``stale_entry``, ``max_hold``, ``venue_error``...).
        intent_id: the intent concerned, if any.
        outcome: ``accepted``, ``rejected:<reason>``, ``sent``, a replace outcome, or
            ``error:<type>`` when the host raised.
    """

    at: float
    symbol: str
    action: str
    reason: str
    intent_id: str = ""
    outcome: str = ""


@attrs.define
class _Pending:
    """A replacement intent the journal does not know yet.

    ``done`` turns True when the host answered the replace; only then does the grace
    period (from ``since``) start, because a replace may take a while.
    """

    symbol: str
    old_intent_id: str
    since: float
    done: bool = False


# ---------------------------------------------------------------------------------------
# Arithmetic.


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _ceil_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def entry_price(mark: Decimal, side: Side, offset_ticks: int, tick: Decimal) -> Decimal:
    """A passive limit price ``offset_ticks`` from ``mark``, rounded away from it to the tick."""
    if side is Side.BUY:
        return _floor_to(mark - offset_ticks * tick, tick)
    return _ceil_to(mark + offset_ticks * tick, tick)


def entry_quantity(price: Decimal, spec: SymbolSpec, buffer: Decimal) -> Decimal:
    """The smallest step multiple whose notional at ``price`` is at least the buffered minimum."""
    return max(_ceil_to(spec.min_notional * buffer / price, spec.step_size), spec.step_size)


# ---------------------------------------------------------------------------------------
# The strategy.


class DemoStrategy:
    """The demo strategy (see the module docstring for what it does and why).

    Args:
        host: what the strategy trades through.
        symbols: the symbols to trade (one-way mode).
        rng: the only randomness (sides, replace draws, intent ids).
        clock: the injected clock (ages, the leg-open time of the journal).
        config: timings, sizes and venue filters.

    Raises:
        CoreValueError: for no symbols, a duplicate or a malformed symbol.
    """

    def __init__(
        self,
        host: StrategyHost,
        *,
        symbols: Sequence[str],
        rng: random.Random,
        clock: Clock,
        config: DemoConfig | None = None,
    ) -> None:
        names = tuple(symbols)
        if not names:
            raise CoreValueError("symbols", "must list at least one symbol")
        if len(set(names)) != len(names):
            raise CoreValueError("symbols", f"must be unique, got {list(names)}")
        for name in names:
            if not name or not name.isalnum() or not name.isupper():
                raise CoreValueError("symbols", f"must be upper-case alphanumeric, got {name!r}")
        self._host = host
        self._symbols = names
        self._rng = rng
        self._clock = clock
        self._config = config or DemoConfig()
        self._ids = IdFactory(rng=rng)
        self._prefix = f"{self._config.intent_prefix}-"
        self._decisions: deque[DemoDecision] = deque(maxlen=self._config.decision_log)
        self._counts: dict[str, int] = {}
        # What the journal cannot know yet (see the module docstring).
        self._pending: dict[str, _Pending] = {}
        self._cancel_asked: dict[str, float] = {}
        self._replace_draw: dict[str, bool] = {}
        self._held_since: dict[str, float] = {}
        self._last_entry_at: dict[str, float] = {}
        self._nursery: trio.Nursery | None = None

    # ----------------------------------------------------------------- reads

    @property
    def config(self) -> DemoConfig:
        """The configuration."""
        return self._config

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols traded."""
        return self._symbols

    @property
    def decisions(self) -> tuple[DemoDecision, ...]:
        """The most recent decisions, oldest first (at most ``config.decision_log``)."""
        return tuple(self._decisions)

    @property
    def counters(self) -> dict[str, int]:
        """How often each ``action.outcome`` happened (``enter.accepted``, ``skip.<reason>``)."""
        return dict(self._counts)

    def owns(self, intent_id: str) -> bool:
        """True if ``intent_id`` is one of this strategy's intents (by prefix)."""
        return intent_id.startswith(self._prefix)

    # ----------------------------------------------------------------- the loop

    async def run(self) -> None:
        """Step every ``interval_s`` until cancelled.

        Replaces run in the background here (a replace waits for the old order to be
        proven terminal, which can take many seconds); outside :meth:`run`, :meth:`tick`
        awaits them in line.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                while True:
                    await self.tick()
                    await trio.sleep(self._config.interval_s)
            finally:
                self._nursery = None

    async def tick(self) -> None:
        """One step for every symbol, in order."""
        for symbol in self._symbols:
            await self._step(symbol)

    async def _step(self, symbol: str) -> None:
        try:
            mark = await self._host.mark_price(symbol)
        except VenueError as exc:
            # No price, no decision: a stale price is how a passive order becomes a taker.
            self._record(symbol, "skip", "no_mark_price", outcome=f"error:{exc.verdict.reason}")
            return
        if not mark.is_finite() or mark <= 0:
            self._record(symbol, "skip", "bad_mark_price", outcome=str(mark))
            return
        now = self._clock.now()
        self._forget_settled(self._host.state, now)
        for rec in self._open(symbol, IntentKind.ENTRY, ours=True):
            await self._age_entry(symbol, rec, mark, now)

        state = self._host.state
        position = state.position(symbol)
        if position == ZERO:
            self._held_since.pop(symbol, None)
            for rec in self._open(symbol, IntentKind.TAKE_PROFIT, ours=True):
                await self._cancel(symbol, rec.intent_id, "flat", now)
            await self._maybe_enter(symbol, mark, now)
            return
        held = now - self._held_since_for(state, symbol, now)
        if held >= self._config.max_hold_s:
            await self._time_out(symbol, position, mark, now)
            return
        await self._take_profit(symbol, position, mark, now)

    # ----------------------------------------------------------------- entries

    async def _maybe_enter(self, symbol: str, mark: Decimal, now: float) -> None:
        state = self._host.state
        knobs = self._host.knobs
        if self._open(symbol, IntentKind.ENTRY, ours=False) or self._pending_for(symbol):
            return  # one entry at a time per symbol (ours or anyone's)
        if self._open(symbol, IntentKind.EXIT, ours=True):
            return  # our exit is still working: the flat reading may be stale
        # Pre-checks mirroring the Router's gates: they keep the journal free of refusals
        # the strategy could have foreseen. The Router still decides.
        if not knobs.allow_entries:
            self._record(symbol, "skip", "entries_not_allowed", outcome=str(knobs.mode))
            return
        if state.halted:
            self._record(symbol, "skip", "halted")
            return
        if symbol in state.frozen_symbols:
            self._record(symbol, "skip", "symbol_frozen")
            return
        if self._config.confidence < knobs.min_entry_conf:
            self._record(symbol, "skip", "confidence_below_posture")
            return
        last = self._last_entry_at.get(symbol)
        if last is not None and now - last < knobs.entry_cooldown_s:
            self._record(symbol, "skip", "entry_cooldown")
            return
        side = Side.BUY if self._rng.random() < 0.5 else Side.SELL
        spec = self._config.spec(symbol)
        price = entry_price(mark, side, self._config.entry_offset_ticks, spec.tick_size)
        if price <= 0:
            self._record(symbol, "skip", "price_not_positive", outcome=str(price))
            return
        quantity = entry_quantity(price, spec, self._config.notional_buffer)
        if quantity * price > knobs.max_notional:
            self._record(
                symbol,
                "skip",
                "notional_above_knobs",
                outcome=f"{quantity * price}>{knobs.max_notional}",
            )
            return
        intent_id = self._new_intent_id(state, "e", symbol)
        try:
            intent = Intent(
                intent_id=intent_id,
                symbol=symbol,
                side=side,
                quantity=quantity,
                kind=IntentKind.ENTRY,
                order_type=OrderType.LIMIT,
                price=price,
                time_in_force=TimeInForce.GTC,
            )
        except ValueError as exc:
            self._record(symbol, "skip", "invalid_entry", intent_id, f"error:{exc}")
            return
        if await self._submit(symbol, "enter", "flat", intent, mark, now):
            self._last_entry_at[symbol] = now

    async def _age_entry(self, symbol: str, rec: IntentRecord, mark: Decimal, now: float) -> None:
        if self._cancel_pending(rec.intent_id, now) or self._replacing(rec.intent_id):
            return  # someone is already taking it down
        age = now - self._clock.from_wall_ms(rec.accepted_wall_ms)
        if age >= self._config.cancel_after_s:
            await self._cancel(symbol, rec.intent_id, "stale_entry", now)
            return
        if age < self._config.reprice_after_s or rec.intent_id in self._replace_draw:
            return
        # One draw per entry, the first time it is stale: replace now, or let it age out.
        replace = self._rng.random() < self._config.p_replace
        self._replace_draw[rec.intent_id] = replace
        if replace:
            await self._replace(symbol, rec, mark, now)

    async def _replace(self, symbol: str, rec: IntentRecord, mark: Decimal, now: float) -> None:
        old = rec.intent
        assert old is not None  # _open only returns intents the journal holds
        state = self._host.state
        knobs = self._host.knobs
        filled = sum((o.filled_qty for o in state.orders_for_intent(rec.intent_id)), ZERO)
        if filled > 0:
            self._record(symbol, "skip", "partially_filled_entry", rec.intent_id)
            return
        if not knobs.allow_entries:
            # A replacement is a new entry: the gates would refuse it. Let the old one age out.
            self._record(symbol, "skip", "entries_not_allowed", rec.intent_id, str(knobs.mode))
            return
        spec = self._config.spec(symbol)
        price = entry_price(mark, old.side, self._config.reprice_offset_ticks, spec.tick_size)
        if price <= 0 or price == old.price:
            self._record(symbol, "skip", "no_better_price", rec.intent_id, str(price))
            return
        quantity = entry_quantity(price, spec, self._config.notional_buffer)
        if quantity * price > knobs.max_notional:
            self._record(symbol, "skip", "notional_above_knobs", rec.intent_id)
            return
        new_id = self._new_intent_id(state, "e", symbol)
        try:
            new_intent = Intent(
                intent_id=new_id,
                symbol=symbol,
                side=old.side,
                quantity=quantity,
                kind=IntentKind.ENTRY,
                order_type=OrderType.LIMIT,
                price=price,
                time_in_force=TimeInForce.GTC,
                position_side=old.position_side,
                correlation_id=old.correlation_id,
            )
        except ValueError as exc:
            self._record(symbol, "skip", "invalid_entry", new_id, f"error:{exc}")
            return
        command = ReplaceOrder(
            intent_id=rec.intent_id, new_intent=new_intent, reason="reprice", reference_price=mark
        )
        # The replacement counts as an open entry from now on, until the journal has it.
        self._pending[new_id] = _Pending(symbol, rec.intent_id, now)
        if self._nursery is not None:
            self._nursery.start_soon(self._await_replace, symbol, command)
        else:
            await self._await_replace(symbol, command)

    async def _await_replace(self, symbol: str, command: ReplaceOrder) -> None:
        new_id = command.new_intent.intent_id
        try:
            result = await self._host.replace(command)
        except (VenueError, ValueError) as exc:
            self._pending.pop(new_id, None)
            self._record(symbol, "replace", "reprice", command.intent_id, _error(exc))
            return
        pending = self._pending.get(new_id)
        if result.outcome in _NO_NEW_INTENT:
            self._pending.pop(new_id, None)
        elif pending is not None:
            pending.done = True
            pending.since = self._clock.now()
        self._record(
            symbol,
            "replace",
            "reprice",
            command.intent_id,
            f"{result.outcome}:{new_id}:{result.reason}",
        )

    # ----------------------------------------------------------------- positions

    async def _take_profit(self, symbol: str, position: Decimal, mark: Decimal, now: float) -> None:
        spec = self._config.spec(symbol)
        closing = Side.SELL if position > 0 else Side.BUY
        target = _floor_to(abs(position), spec.step_size)
        live = self._open(symbol, IntentKind.TAKE_PROFIT, ours=False)
        for rec in live:
            intent = rec.intent
            assert intent is not None
            mismatch = intent.side is not closing or intent.quantity != target
            # Sized for another position (a later fill, a partial exit): take it down; a
            # later step places one that matches. Other sources' take-profits are theirs.
            if (
                mismatch
                and self.owns(rec.intent_id)
                and not self._cancel_pending(rec.intent_id, now)
            ):
                await self._cancel(symbol, rec.intent_id, "take_profit_mismatch", now)
        if live:
            return
        if target == ZERO:
            self._record(symbol, "skip", "position_below_step", outcome=str(position))
            return
        leg = self._host.state.legs.get((symbol, PositionSide.BOTH))
        entry = leg.entry_price if leg is not None and leg.entry_price is not None else mark
        distance = self._config.take_profit_bps / _BPS
        if closing is Side.SELL:
            trigger = _ceil_to(max(entry, mark) * (1 + distance), spec.tick_size)
        else:
            trigger = _floor_to(min(entry, mark) * (1 - distance), spec.tick_size)
        if trigger <= 0:
            self._record(symbol, "skip", "trigger_not_positive", outcome=str(trigger))
            return
        intent_id = self._new_intent_id(self._host.state, "t", symbol)
        try:
            intent = Intent(
                intent_id=intent_id,
                symbol=symbol,
                side=closing,
                quantity=target,
                kind=IntentKind.TAKE_PROFIT,
                order_type=OrderType.TAKE_PROFIT_MARKET,
                stop_price=trigger,
                reduce_only=True,
            )
        except ValueError as exc:
            self._record(symbol, "skip", "invalid_take_profit", intent_id, f"error:{exc}")
            return
        await self._submit(symbol, "take_profit", "position_unprotected_upside", intent, mark, now)

    async def _time_out(self, symbol: str, position: Decimal, mark: Decimal, now: float) -> None:
        if self._open(symbol, IntentKind.EXIT, ours=True):
            return  # our exit is working
        for rec in self._open(symbol, IntentKind.ENTRY, ours=True):
            if not self._cancel_pending(rec.intent_id, now):
                await self._cancel(symbol, rec.intent_id, "max_hold", now)
        spec = self._config.spec(symbol)
        quantity = _floor_to(abs(position), spec.step_size)
        if quantity == ZERO:
            self._record(symbol, "skip", "position_below_step", outcome=str(position))
            return
        intent_id = self._new_intent_id(self._host.state, "x", symbol)
        try:
            intent = Intent(
                intent_id=intent_id,
                symbol=symbol,
                side=Side.SELL if position > 0 else Side.BUY,
                quantity=quantity,
                kind=IntentKind.EXIT,
                order_type=OrderType.MARKET,
                reduce_only=True,
            )
        except ValueError as exc:
            self._record(symbol, "skip", "invalid_exit", intent_id, f"error:{exc}")
            return
        await self._submit(symbol, "exit", "max_hold", intent, mark, now)

    def _held_since_for(self, state: AccountState, symbol: str, now: float) -> float:
        """When the leg opened: the journal's stamp if it has one, else when first seen."""
        leg = state.legs.get((symbol, PositionSide.BOTH))
        if leg is not None and leg.opened_wall_ms is not None:
            return self._clock.from_wall_ms(leg.opened_wall_ms)
        return self._held_since.setdefault(symbol, now)

    # ----------------------------------------------------------------- host calls

    async def _submit(
        self, symbol: str, action: str, reason: str, intent: Intent, mark: Decimal, now: float
    ) -> bool:
        """Submit through the host; True if accepted. Refusals and host errors are recorded."""
        try:
            receipt = await self._host.submit(
                intent,
                confidence=self._config.confidence,
                reference_price=mark,
                source=SOURCE,
            )
        except (VenueError, ValueError) as exc:
            self._record(symbol, action, reason, intent.intent_id, _error(exc))
            return False
        outcome = "accepted" if receipt.accepted else f"rejected:{receipt.reason}"
        self._record(symbol, action, reason, intent.intent_id, outcome)
        return receipt.accepted

    async def _cancel(self, symbol: str, intent_id: str, reason: str, now: float) -> None:
        self._cancel_asked[intent_id] = now
        try:
            await self._host.cancel(intent_id, reason)
        except (VenueError, ValueError) as exc:
            self._record(symbol, "cancel", reason, intent_id, _error(exc))
            return
        self._record(symbol, "cancel", reason, intent_id, "sent")

    def _cancel_pending(self, intent_id: str, now: float) -> bool:
        asked = self._cancel_asked.get(intent_id)
        return asked is not None and now - asked < self._config.cancel_retry_s

    # ----------------------------------------------------------------- bookkeeping

    def _open(self, symbol: str, kind: IntentKind, *, ours: bool) -> list[IntentRecord]:
        """Open intents of ``kind`` on ``symbol`` in journal order (only ours if ``ours``)."""
        return [
            rec
            for rec in self._host.state.intents.values()
            if rec.status is IntentStatus.OPEN
            and rec.intent is not None
            and rec.intent.symbol == symbol
            and rec.intent.kind is kind
            and (not ours or self.owns(rec.intent_id))
        ]

    def _pending_for(self, symbol: str) -> bool:
        return any(p.symbol == symbol for p in self._pending.values())

    def _replacing(self, intent_id: str) -> bool:
        return any(not p.done and p.old_intent_id == intent_id for p in self._pending.values())

    def _forget_settled(self, state: AccountState, now: float) -> None:
        """Drop memory the journal has caught up with (or that has outlived its use)."""
        grace = self._config.replace_grace_s
        for intent_id, pending in list(self._pending.items()):
            if intent_id in state.intents or (pending.done and now - pending.since >= grace):
                del self._pending[intent_id]
        for memo in (self._cancel_asked, self._replace_draw):
            for intent_id in list(memo):
                rec = state.intents.get(intent_id)
                if rec is None or rec.status is not IntentStatus.OPEN:
                    del memo[intent_id]

    def _new_intent_id(self, state: AccountState, role: str, symbol: str) -> str:
        """A fresh id from the RNG that neither the journal nor our memory holds."""
        while True:
            candidate = f"{self._prefix}{role}-{symbol.lower()}-{self._ids.new_intent_id()}"
            if candidate not in state.intents and candidate not in self._pending:
                return candidate

    def _record(
        self, symbol: str, action: str, reason: str, intent_id: str = "", outcome: str = ""
    ) -> None:
        decision = DemoDecision(
            at=self._clock.now(),
            symbol=symbol,
            action=action,
            reason=reason,
            intent_id=intent_id,
            outcome=outcome,
        )
        self._decisions.append(decision)
        key = f"{action}.{reason if action == 'skip' else outcome.split(':', 1)[0]}"
        self._counts[key] = self._counts.get(key, 0) + 1
        if outcome.startswith("error:"):
            level = logging.WARNING
        elif action == "skip":
            level = logging.DEBUG
        else:
            level = logging.INFO
        _log.log(level, "demo %s %s %s %s %s", symbol, action, reason, intent_id, outcome)


def _error(exc: Exception) -> str:
    """An outcome tag for a host error: the venue's reason, or the error type and its text."""
    if isinstance(exc, VenueError):
        return f"error:{exc.verdict.reason}"
    return f"error:{type(exc).__name__}:{str(exc)[:_ERROR_CHARS]}"
