"""Replacing an order safely: the exposure envelope, replace budgets and the cancel-then-create machine.

Theory of operation
-------------------

A replace (change the price or size of a live order) is two venue actions, a cancel and a
create, and the venue can answer either late, wrongly or not at all. This module serves I8
(*a replace happens only when worst-case old+new live exposure stays within budget;
otherwise it degrades to cancel, reconcile, create*), I2 (bounded attempts and time) and I7
(no second risk-increasing effect: the new order never races a still-live old one).

A replace is admitted in two steps, then driven by a state machine:

1. **Envelope** (:func:`check_envelope`). Assume the worst: the old order stays live and
   fills completely while the new one goes live and fills completely. With the position
   ``p``, the old order's remaining quantity ``o`` and the new quantity ``n`` (both signed by
   side), the reachable positions are the corners ``p``, ``p+o``, ``p+n``, ``p+o+n``; the
   worst-case exposure is the largest ``|.|`` of them, times the price. When the legs point the
   same way as the position this is ``|p| + o + n``, the plain sum; when a leg reduces the
   position the corners credit it correctly instead of double-counting. Partial fills and
   reduce-only clamping only reach points inside that box, and ``|.|`` is convex, so the
   corners bound them too. If the position itself is uncertain, its belief interval's ends
   are both tried. Over budget, the decision is ``degrade_cancel_reconcile_create``: cancel,
   let reconciliation settle the position, and create against the settled picture. The
   budget is a required argument (the seed defaulted it to 0, which meant "disabled").
   Larger ``n`` never lowers the worst case, so a bigger replace can never pass where a
   smaller one failed.

2. **Budgets** (:class:`ReplaceBudget`). Sliding windows per symbol and globally (seed
   defaults: 300 s window, 20 global, 6 per symbol) plus an ambiguity budget per symbol (3
   unknown cancel outcomes per window). A replace over budget is refused with a reason and a
   :class:`ReplacePressure` with cause ``replace_storm``: a storm of replaces means the
   strategy and the book disagree, and posture must hear it.

3. **Lifecycle** (:class:`ReplaceMachine`). The rule: *the new order is sent only after the
   old one is proven terminal with no fill we did not already know about.* Proof is a cancel
   ack or a status query saying canceled/expired. An unknown cancel outcome (timeout, 5xx,
   -2011, which means "not open now", possibly because it filled) is resolved by querying
   the status, never by assuming. If the old order filled (fully or partly) while we were
   cancelling, the machine goes to ``FILLED_AFTER_CANCEL`` and hands the fill to the caller
   instead of placing the new order: the position changed, so the old plan is void and the
   caller must decide again. Cancels, status queries and elapsed time are bounded; running
   out of any of them ends in ``GAVE_UP`` with a reason and a ``RECONCILE`` action (a
   give-up never sends the new order, so it can only leave *less* exposure than planned).

The state table (:data:`TRANSITIONS`) lists every legal (state, event) pair and the states
it may lead to; anything else raises :class:`ReplaceTransitionError`. States:

* ``INTENT_CREATED``: admitted, nothing sent.
* ``CANCEL_SENT``: a cancel of the old order is in flight.
* ``CANCEL_SENT_UNKNOWN``: the cancel's outcome is unknown; a status query is in flight.
* ``REPLACE_RACE``: the old order was still live after a cancel attempt (the cancel failed
  definitively or the status said open); a new cancel is in flight. Same exits as
  ``CANCEL_SENT``; a separate state so the journal shows the race.
* ``NEW_SENT``: the old order is proven terminal and unfilled beyond what we knew; the
  new order is in flight. (Added to the seed's states: the seed created inline.)
* ``FILLED_AFTER_CANCEL``: the old order filled while being cancelled; waiting for the
  caller to account the fill.
* ``DONE`` and ``GAVE_UP``: terminal.

The machine does not resolve an unknown *create*: that belongs to the create path (query by
client order id, I7). ``NEW_UNKNOWN`` therefore ends in ``GAVE_UP`` with ``RECONCILE``.
Events are responses to the machine's own actions, fed one per action; stream evidence that
arrives meanwhile answers the next status query.
"""

import collections
import enum
import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, TypeGuard

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.model import VenueOrder, VenueOrderStatus
from scalper.core.types import ZERO, Side, signed_qty

__all__ = [
    "DEGRADE_TAG",
    "REPLACE_ENVELOPE_CAUSE",
    "REPLACE_RACE_CAUSE",
    "REPLACE_STORM_CAUSE",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Admission",
    "BudgetDecision",
    "EnvelopeDecision",
    "ReplaceAction",
    "ReplaceBudget",
    "ReplaceConfig",
    "ReplaceEvent",
    "ReplaceEventKind",
    "ReplaceMachine",
    "ReplacePressure",
    "ReplaceState",
    "ReplaceStep",
    "ReplaceTransitionError",
    "admit_replace",
    "check_envelope",
    "worst_case_position",
]

#: Decision tag when the envelope refuses a replace.
DEGRADE_TAG = "degrade_cancel_reconcile_create"
#: Cause tag of the pressure a refused (over-budget) replace raises.
REPLACE_STORM_CAUSE = "replace_storm"
#: Cause tag of the pressure a replace that gave up raises.
REPLACE_RACE_CAUSE = "replace_race"
#: Cause tag of the pressure an envelope refusal raises.
REPLACE_ENVELOPE_CAUSE = "replace_envelope_block"


# --------------------------------------------------------------------------- validation


def _is_finite_decimal(value: object) -> TypeGuard[Decimal]:
    return isinstance(value, Decimal) and value.is_finite()


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _positive_float(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
    if not _is_number(value) or value <= 0:
        raise CoreValueError(attribute.name, f"must be finite and positive, got {value!r}")


def _unit_float(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise CoreValueError(attribute.name, f"must be in [0, 1], got {value!r}")


def _positive_int(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
    if not _is_int(value) or value < 1:
        raise CoreValueError(attribute.name, f"must be an integer >= 1, got {value!r}")


def _non_negative_qty(name: str, value: object) -> Decimal:
    if not _is_finite_decimal(value) or value < 0:
        raise CoreValueError(name, f"must be a finite Decimal >= 0, got {value!r}")
    return value


def _check_now(now: float) -> None:
    if not _is_number(now):
        raise CoreValueError("now", f"must be a finite number of seconds, got {now!r}")


@attrs.frozen
class ReplaceConfig:
    """Defaults for replace budgets, attempt bounds and posture pressure.

    Attributes:
        window_seconds: sliding window of the replace budgets (seed 300 s).
        max_global: replaces per window across all symbols (seed 20).
        max_per_symbol: replaces per window per symbol (seed 6).
        max_ambiguity_per_symbol: unknown cancel outcomes per window per symbol before
            replaces of that symbol are refused (seed 3; the seed shipped it disabled).
        max_cancel_attempts: cancels one replace may send (seed ``retries=3``).
        max_status_queries: status queries one replace may send to resolve unknown cancels.
        max_elapsed_seconds: after this long no further request is sent; the replace gives
            up (fills already reported are still handed over).
        budget_severity: pressure severity of a budget refusal (seed 0.95).
        envelope_severity: pressure severity of an envelope refusal (seed 0.88).
        race_severity: base pressure severity of a give-up (seed 0.90), raised by
            ``race_severity_per_ambiguity`` per unknown outcome and
            ``race_severity_per_attempt`` per cancel sent (seed 0.05 and 0.02), capped at 1.
    """

    window_seconds: float = attrs.field(default=300.0, validator=_positive_float)
    max_global: int = attrs.field(default=20, validator=_positive_int)
    max_per_symbol: int = attrs.field(default=6, validator=_positive_int)
    max_ambiguity_per_symbol: int = attrs.field(default=3, validator=_positive_int)
    max_cancel_attempts: int = attrs.field(default=3, validator=_positive_int)
    max_status_queries: int = attrs.field(default=3, validator=_positive_int)
    max_elapsed_seconds: float = attrs.field(default=30.0, validator=_positive_float)
    budget_severity: float = attrs.field(default=0.95, validator=_unit_float)
    envelope_severity: float = attrs.field(default=0.88, validator=_unit_float)
    race_severity: float = attrs.field(default=0.90, validator=_unit_float)
    race_severity_per_ambiguity: float = attrs.field(default=0.05, validator=_unit_float)
    race_severity_per_attempt: float = attrs.field(default=0.02, validator=_unit_float)

    def __attrs_post_init__(self) -> None:
        if self.max_per_symbol > self.max_global:
            raise CoreValueError(
                "max_per_symbol",
                f"must not exceed max_global ({self.max_global}), got {self.max_per_symbol}",
            )


@attrs.frozen
class ReplacePressure:
    """Posture pressure raised by the replace path, for the belief controller to weigh.

    Attributes:
        symbol: the symbol concerned.
        cause: ``replace_storm``, ``replace_envelope_block`` or ``replace_race``.
        severity: in [0, 1].
        reason: the specific reason tag.
        at: when, on the injected clock.
    """

    symbol: str
    cause: str
    severity: float
    reason: str
    at: float


# --------------------------------------------------------------------------- envelope


def worst_case_position(
    position_qty: Decimal,
    old_side: Side,
    old_remaining_qty: Decimal,
    new_side: Side,
    new_qty: Decimal,
) -> Decimal:
    """The largest ``|position|`` reachable if the old and the new order both may fill.

    See the module docstring: the maximum over the corners ``p``, ``p+o``, ``p+n``, ``p+o+n``.

    Raises:
        CoreValueError: on a non-finite position or a negative order quantity.
    """
    if not _is_finite_decimal(position_qty):
        raise CoreValueError("position_qty", f"must be a finite Decimal, got {position_qty!r}")
    _non_negative_qty("old_remaining_qty", old_remaining_qty)
    _non_negative_qty("new_qty", new_qty)
    o = signed_qty(old_side, old_remaining_qty)
    n = signed_qty(new_side, new_qty)
    p = position_qty
    return max(abs(p), abs(p + o), abs(p + n), abs(p + o + n))


@attrs.frozen
class EnvelopeDecision:
    """Whether a replace fits the exposure budget.

    Attributes:
        allowed: True if the replace may proceed.
        reason: ``replace_within_envelope`` or ``degrade_cancel_reconcile_create``.
        worst_case_qty: the worst-case absolute position.
        worst_case_notional: ``worst_case_qty * price``.
        budget_notional: the budget it was checked against.
    """

    allowed: bool
    reason: str
    worst_case_qty: Decimal
    worst_case_notional: Decimal
    budget_notional: Decimal


def check_envelope(
    *,
    position_qty: Decimal,
    old_side: Side,
    old_remaining_qty: Decimal,
    new_side: Side,
    new_qty: Decimal,
    price: Decimal,
    budget_notional: Decimal,
    position_bounds: tuple[Decimal, Decimal] | None = None,
) -> EnvelopeDecision:
    """Check that the worst case of a replace stays within ``budget_notional`` (I8).

    Args:
        position_qty: signed current position (the belief's point estimate).
        old_side: side of the order being replaced.
        old_remaining_qty: what the old order can still fill (its remaining quantity).
        new_side: side of the replacement.
        new_qty: quantity of the replacement.
        price: price at which to value the exposure (the worse of the two limit prices, or
            the mark price).
        budget_notional: the largest acceptable worst-case notional (e.g. the posture's
            ``max_notional_usdt``).
        position_bounds: the belief's position interval ``(low, high)``; both ends are
            tried. Must contain ``position_qty``.

    Returns:
        An :class:`EnvelopeDecision`; ``reason`` is ``degrade_cancel_reconcile_create`` when
        refused.

    Raises:
        CoreValueError: on negative quantities, a non-positive price, a negative budget, or
            bounds that do not contain the position.
    """
    if not _is_finite_decimal(position_qty):
        raise CoreValueError("position_qty", f"must be a finite Decimal, got {position_qty!r}")
    _non_negative_qty("old_remaining_qty", old_remaining_qty)
    _non_negative_qty("new_qty", new_qty)
    _non_negative_qty("budget_notional", budget_notional)
    if not _is_finite_decimal(price) or price <= 0:
        raise CoreValueError("price", f"must be a positive finite Decimal, got {price!r}")
    candidates = [position_qty]
    if position_bounds is not None:
        low, high = position_bounds
        if not (
            _is_finite_decimal(low) and _is_finite_decimal(high) and low <= position_qty <= high
        ):
            raise CoreValueError(
                "position_bounds",
                f"must be finite and contain {position_qty}, got {position_bounds!r}",
            )
        candidates += [low, high]
    worst = max(
        worst_case_position(p, old_side, old_remaining_qty, new_side, new_qty) for p in candidates
    )
    notional = worst * price
    allowed = notional <= budget_notional
    return EnvelopeDecision(
        allowed=allowed,
        reason="replace_within_envelope" if allowed else DEGRADE_TAG,
        worst_case_qty=worst,
        worst_case_notional=notional,
        budget_notional=budget_notional,
    )


# --------------------------------------------------------------------------- budgets


@attrs.frozen
class BudgetDecision:
    """Whether the replace budgets allow one more replace of a symbol.

    Attributes:
        allowed: True if the replace was admitted (and counted).
        reason: ``replace_budget_ok``, ``replace_budget_global_exhausted``,
            ``replace_budget_symbol_exhausted`` or ``replace_budget_ambiguity_exhausted``.
        global_used: replaces in the global window before this decision.
        symbol_used: replaces of the symbol in the window before this decision.
        ambiguity_used: unknown outcomes of the symbol in the window.
        pressure: a ``replace_storm`` pressure when refused, else ``None``.
    """

    allowed: bool
    reason: str
    global_used: int
    symbol_used: int
    ambiguity_used: int
    pressure: ReplacePressure | None = None


def _prune(events: collections.deque[float], horizon: float) -> int:
    while events and events[0] <= horizon:
        events.popleft()
    return len(events)


@attrs.define
class ReplaceBudget:
    """Sliding-window replace budgets: global, per symbol, and per-symbol ambiguity.

    A window holds the events with ``ts > now - window_seconds``.
    """

    config: ReplaceConfig = attrs.field(factory=ReplaceConfig)
    _global: collections.deque[float] = attrs.field(init=False, factory=collections.deque)
    _by_symbol: dict[str, collections.deque[float]] = attrs.field(init=False, factory=dict)
    _ambiguity: dict[str, collections.deque[float]] = attrs.field(init=False, factory=dict)
    _last_now: float | None = attrs.field(init=False, default=None)

    def _advance(self, now: float) -> float:
        _check_now(now)
        if self._last_now is not None and now < self._last_now:
            raise CoreValueError("now", f"went backwards: {now} < {self._last_now}")
        self._last_now = now
        return now - self.config.window_seconds

    def usage(self, symbol: str, now: float) -> tuple[int, int, int]:
        """(global, symbol, ambiguity) counts in the window ending at ``now``."""
        horizon = self._advance(now)
        return (
            _prune(self._global, horizon),
            _prune(self._by_symbol.setdefault(symbol, collections.deque()), horizon),
            _prune(self._ambiguity.setdefault(symbol, collections.deque()), horizon),
        )

    def try_acquire(self, symbol: str, now: float) -> BudgetDecision:
        """Admit and count one replace of ``symbol`` at ``now``, or refuse with pressure."""
        g, s, a = self.usage(symbol, now)
        cfg = self.config
        if a >= cfg.max_ambiguity_per_symbol:
            reason = "replace_budget_ambiguity_exhausted"
        elif s >= cfg.max_per_symbol:
            reason = "replace_budget_symbol_exhausted"
        elif g >= cfg.max_global:
            reason = "replace_budget_global_exhausted"
        else:
            self._global.append(now)
            self._by_symbol[symbol].append(now)
            return BudgetDecision(True, "replace_budget_ok", g, s, a)
        pressure = ReplacePressure(
            symbol=symbol,
            cause=REPLACE_STORM_CAUSE,
            severity=cfg.budget_severity,
            reason=reason,
            at=now,
        )
        return BudgetDecision(False, reason, g, s, a, pressure)

    def restore(self, spent: Iterable[tuple[float, str, bool]], now: float) -> None:
        """Seed the windows with what an earlier life of the process spent.

        ``spent`` holds ``(at, symbol, ambiguous)`` in time order, as the journal recorded
        them: an admitted replace (``ambiguous=False``) or an unknown outcome met by one
        (``True``). Without this a crash in the middle of a replace storm would hand the
        restarted process a fresh budget, and the storm would go on. Entries older than the
        window are dropped; an entry stamped after ``now`` (wall-clock skew between the two
        lives) counts as ``now``.

        Raises:
            CoreValueError: if ``now`` is not a finite number, or is before a time already
                seen by this budget.
        """
        self._advance(now)
        horizon = now - self.config.window_seconds
        for at, symbol, ambiguous in spent:
            _check_now(at)
            at = min(at, now)
            if at <= horizon:
                continue
            if ambiguous:
                self._ambiguity.setdefault(symbol, collections.deque()).append(at)
            else:
                self._global.append(at)
                self._by_symbol.setdefault(symbol, collections.deque()).append(at)
        for events in (self._global, *self._by_symbol.values(), *self._ambiguity.values()):
            ordered = sorted(events)
            events.clear()
            events.extend(ordered)

    def record_ambiguity(self, symbol: str, now: float) -> int:
        """Count one unknown outcome of ``symbol`` at ``now``; return the window's count."""
        self.usage(symbol, now)
        events = self._ambiguity[symbol]
        events.append(now)
        return len(events)


@attrs.frozen
class Admission:
    """The combined admission of a replace: ``replace``, ``degrade_cancel_reconcile_create`` or ``give_up``.

    Attributes:
        decision: what the caller does next.
        reason: the specific reason tag (from the envelope or the budget).
        envelope: the envelope check.
        budget: the budget decision (``None`` when the envelope already refused).
        pressure: posture pressure to report, if any.
    """

    decision: str
    reason: str
    envelope: EnvelopeDecision
    budget: BudgetDecision | None
    pressure: ReplacePressure | None


def admit_replace(
    budget: ReplaceBudget, *, symbol: str, now: float, envelope: EnvelopeDecision
) -> Admission:
    """Admit a replace: envelope first (a refusal degrades, costing no budget), then budgets.

    Returns:
        ``decision`` is ``replace`` (budget spent), ``degrade_cancel_reconcile_create`` (the
        envelope refused; envelope pressure) or ``give_up`` (over budget; ``replace_storm``).
    """
    if not envelope.allowed:
        pressure = ReplacePressure(
            symbol=symbol,
            cause=REPLACE_ENVELOPE_CAUSE,
            severity=budget.config.envelope_severity,
            reason=envelope.reason,
            at=now,
        )
        return Admission(DEGRADE_TAG, envelope.reason, envelope, None, pressure)
    decision = budget.try_acquire(symbol, now)
    if not decision.allowed:
        return Admission("give_up", decision.reason, envelope, decision, decision.pressure)
    return Admission("replace", decision.reason, envelope, decision, None)


# --------------------------------------------------------------------------- state machine


class ReplaceState(enum.StrEnum):
    """Where one replace stands (see the module docstring)."""

    INTENT_CREATED = "INTENT_CREATED"
    CANCEL_SENT = "CANCEL_SENT"
    CANCEL_SENT_UNKNOWN = "CANCEL_SENT_UNKNOWN"
    REPLACE_RACE = "REPLACE_RACE"
    NEW_SENT = "NEW_SENT"
    FILLED_AFTER_CANCEL = "FILLED_AFTER_CANCEL"
    DONE = "DONE"
    GAVE_UP = "GAVE_UP"


class ReplaceEventKind(enum.StrEnum):
    """What happened: the response to the machine's last action, or the caller's word."""

    #: Begin: send the first cancel.
    START = "START"
    #: The venue confirmed the cancel (order CANCELED); carries its executed quantity.
    CANCEL_ACK = "CANCEL_ACK"
    #: The cancel's outcome is unknown: timeout, 5xx, -1006/-1007, or -2011 (not open now).
    CANCEL_UNKNOWN = "CANCEL_UNKNOWN"
    #: The cancel definitely did not happen (e.g. 503 "100% failure", -1003): still live.
    CANCEL_FAILED = "CANCEL_FAILED"
    #: Status query: the old order is open (NEW / PARTIALLY_FILLED); carries executed qty.
    STATUS_OPEN = "STATUS_OPEN"
    #: Status query: canceled / expired / rejected; carries executed qty.
    STATUS_CANCELED = "STATUS_CANCELED"
    #: Status query: filled; carries executed qty.
    STATUS_FILLED = "STATUS_FILLED"
    #: Status query failed or the order was not found: still unknown.
    STATUS_UNKNOWN = "STATUS_UNKNOWN"
    #: The new order was acknowledged by the venue.
    NEW_ACKED = "NEW_ACKED"
    #: The new order was definitely rejected (nothing live).
    NEW_REJECTED = "NEW_REJECTED"
    #: The new order's outcome is unknown (the create path could not resolve it).
    NEW_UNKNOWN = "NEW_UNKNOWN"
    #: The caller accounted the fill reported in FILLED_AFTER_CANCEL.
    FILL_ACCOUNTED = "FILL_ACCOUNTED"
    #: The caller abandons the replace (deadline, shutdown, kill switch...).
    GIVE_UP = "GIVE_UP"


_NEEDS_FILLED_QTY = frozenset(
    {
        ReplaceEventKind.CANCEL_ACK,
        ReplaceEventKind.STATUS_OPEN,
        ReplaceEventKind.STATUS_CANCELED,
        ReplaceEventKind.STATUS_FILLED,
    }
)


@attrs.frozen
class ReplaceEvent:
    """One event for :meth:`ReplaceMachine.apply`.

    ``filled_qty`` is the old order's *cumulative* executed quantity as the venue reported it;
    required for CANCEL_ACK and the STATUS_OPEN/CANCELED/FILLED events, absent otherwise.
    """

    kind: ReplaceEventKind
    filled_qty: Decimal | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind in _NEEDS_FILLED_QTY:
            if self.filled_qty is None:
                raise CoreValueError("filled_qty", f"is required for {self.kind}")
            _non_negative_qty("filled_qty", self.filled_qty)
        elif self.filled_qty is not None:
            raise CoreValueError("filled_qty", f"must be omitted for {self.kind}")

    @classmethod
    def from_status(cls, order: VenueOrder) -> "ReplaceEvent":
        """The status event for a queried old order: open, filled, or otherwise terminal."""
        if order.status.is_open:
            kind = ReplaceEventKind.STATUS_OPEN
        elif order.status is VenueOrderStatus.FILLED:
            kind = ReplaceEventKind.STATUS_FILLED
        else:
            kind = ReplaceEventKind.STATUS_CANCELED
        return cls(kind, order.filled_qty)


class ReplaceAction(enum.StrEnum):
    """What the caller must do next."""

    #: Cancel the old order.
    SEND_CANCEL = "SEND_CANCEL"
    #: Query the old order's status (by client order id).
    QUERY_STATUS = "QUERY_STATUS"
    #: Create the new order. Emitted at most once per replace.
    SEND_NEW = "SEND_NEW"
    #: Account the old order's unaccounted fill (:attr:`ReplaceStep.fill_qty`).
    ACCOUNT_FILL = "ACCOUNT_FILL"
    #: Ask reconciliation to settle this symbol: the replace ended unresolved.
    RECONCILE = "RECONCILE"


@attrs.frozen
class ReplaceStep:
    """The outcome of one event: the new state, the actions to run, and why.

    Attributes:
        state: the state after the event.
        actions: what the caller does now, in order.
        reason: a snake_case tag for the journal.
        fill_qty: the old order's fill beyond what was known at the start (with ACCOUNT_FILL).
        ambiguous: True if this step met an unknown outcome (feed
            :meth:`ReplaceBudget.record_ambiguity`).
        pressure: posture pressure when the replace gave up.
    """

    state: ReplaceState
    actions: tuple[ReplaceAction, ...]
    reason: str
    fill_qty: Decimal = ZERO
    ambiguous: bool = False
    pressure: ReplacePressure | None = None


class ReplaceTransitionError(Exception):
    """An event that is not legal in the machine's current state (a protocol bug).

    Attributes:
        state: the state the machine was in (it is left unchanged).
        event: the offending event kind.
    """

    def __init__(self, state: ReplaceState, event: ReplaceEventKind) -> None:
        super().__init__(f"event {event} is not legal in state {state}")
        self.state = state
        self.event = event


_S = ReplaceState
_E = ReplaceEventKind
_AWAITING_CANCEL = {
    _E.CANCEL_ACK: frozenset({_S.NEW_SENT, _S.FILLED_AFTER_CANCEL, _S.GAVE_UP}),
    _E.CANCEL_UNKNOWN: frozenset({_S.CANCEL_SENT_UNKNOWN, _S.GAVE_UP}),
    _E.CANCEL_FAILED: frozenset({_S.REPLACE_RACE, _S.GAVE_UP}),
    _E.GIVE_UP: frozenset({_S.GAVE_UP}),
}

#: Every legal (state, event) and the states it may lead to. Guards (attempts left, the
#: deadline, whether the old order filled) pick one; anything absent is a transition error.
TRANSITIONS: dict[tuple[ReplaceState, ReplaceEventKind], frozenset[ReplaceState]] = {
    (_S.INTENT_CREATED, _E.START): frozenset({_S.CANCEL_SENT, _S.GAVE_UP}),
    (_S.INTENT_CREATED, _E.GIVE_UP): frozenset({_S.GAVE_UP}),
    **{(_S.CANCEL_SENT, e): targets for e, targets in _AWAITING_CANCEL.items()},
    **{(_S.REPLACE_RACE, e): targets for e, targets in _AWAITING_CANCEL.items()},
    (_S.CANCEL_SENT_UNKNOWN, _E.STATUS_OPEN): frozenset({_S.REPLACE_RACE, _S.GAVE_UP}),
    (_S.CANCEL_SENT_UNKNOWN, _E.STATUS_CANCELED): frozenset(
        {_S.NEW_SENT, _S.FILLED_AFTER_CANCEL, _S.GAVE_UP}
    ),
    (_S.CANCEL_SENT_UNKNOWN, _E.STATUS_FILLED): frozenset({_S.FILLED_AFTER_CANCEL}),
    (_S.CANCEL_SENT_UNKNOWN, _E.STATUS_UNKNOWN): frozenset({_S.CANCEL_SENT_UNKNOWN, _S.GAVE_UP}),
    (_S.CANCEL_SENT_UNKNOWN, _E.GIVE_UP): frozenset({_S.GAVE_UP}),
    (_S.NEW_SENT, _E.NEW_ACKED): frozenset({_S.DONE}),
    (_S.NEW_SENT, _E.NEW_REJECTED): frozenset({_S.GAVE_UP}),
    (_S.NEW_SENT, _E.NEW_UNKNOWN): frozenset({_S.GAVE_UP}),
    (_S.NEW_SENT, _E.GIVE_UP): frozenset({_S.GAVE_UP}),
    (_S.FILLED_AFTER_CANCEL, _E.FILL_ACCOUNTED): frozenset({_S.DONE}),
    (_S.FILLED_AFTER_CANCEL, _E.GIVE_UP): frozenset({_S.GAVE_UP}),
}

#: States no event leaves.
TERMINAL_STATES = frozenset({ReplaceState.DONE, ReplaceState.GAVE_UP})


@attrs.define
class ReplaceMachine:
    """The lifecycle of one replace: cancel the old order, prove it terminal, then create.

    Args:
        symbol: the order's symbol.
        old_order_id: the venue id (or client id) of the order being replaced; for the journal.
        known_filled_qty: the old order's executed quantity already accounted for when the
            replace began. Any fill beyond it reported later is a fill race.
        config: attempt bounds and pressure severities.

    Drive it with :meth:`apply`; it returns a :class:`ReplaceStep` per event.
    """

    symbol: str
    old_order_id: str
    known_filled_qty: Decimal = attrs.field(default=ZERO)
    config: ReplaceConfig = attrs.field(factory=ReplaceConfig)
    state: ReplaceState = attrs.field(init=False, default=ReplaceState.INTENT_CREATED)
    cancel_attempts: int = attrs.field(init=False, default=0)
    status_queries: int = attrs.field(init=False, default=0)
    ambiguity_count: int = attrs.field(init=False, default=0)
    observed_filled_qty: Decimal = attrs.field(init=False, default=ZERO)
    started_at: float | None = attrs.field(init=False, default=None)
    new_sent: bool = attrs.field(init=False, default=False)
    reason: str = attrs.field(init=False, default="created")
    _last_now: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if not self.symbol:
            raise CoreValueError("symbol", "must not be empty")
        _non_negative_qty("known_filled_qty", self.known_filled_qty)
        self.observed_filled_qty = self.known_filled_qty

    @property
    def is_terminal(self) -> bool:
        """True once the machine is DONE or GAVE_UP."""
        return self.state in TERMINAL_STATES

    @property
    def unaccounted_fill_qty(self) -> Decimal:
        """The old order's fill beyond ``known_filled_qty`` seen so far."""
        return self.observed_filled_qty - self.known_filled_qty

    def apply(self, event: ReplaceEvent | ReplaceEventKind, now: float) -> ReplaceStep:
        """Apply one event at ``now`` and return the resulting step.

        Raises:
            ReplaceTransitionError: if the event is not legal in the current state (the
                machine is left unchanged).
            CoreValueError: if ``now`` is not finite or goes backwards.
        """
        if isinstance(event, ReplaceEventKind):
            event = ReplaceEvent(event)
        _check_now(now)
        if self._last_now is not None and now < self._last_now:
            raise CoreValueError("now", f"went backwards: {now} < {self._last_now}")
        allowed = TRANSITIONS.get((self.state, event.kind))
        if allowed is None:
            raise ReplaceTransitionError(self.state, event.kind)
        self._last_now = now
        if self.started_at is None:
            self.started_at = now
        if event.filled_qty is not None:
            # Cumulative fills never shrink; a lower report is stale, keep the larger.
            self.observed_filled_qty = max(self.observed_filled_qty, event.filled_qty)
        step = self._dispatch(event.kind, now)
        assert step.state in allowed, (self.state, event.kind, step.state)
        self.state = step.state
        self.reason = step.reason
        if ReplaceAction.SEND_NEW in step.actions:
            self.new_sent = True
        return step

    # -- helpers -----------------------------------------------------------------------

    def _expired(self, now: float) -> bool:
        assert self.started_at is not None
        return now - self.started_at > self.config.max_elapsed_seconds

    def _give_up(
        self, reason: str, now: float, *, ambiguous: bool = False, settled: bool = False
    ) -> ReplaceStep:
        """End in GAVE_UP. ``settled``: nothing is in doubt, so no reconcile and no pressure."""
        if settled:
            return ReplaceStep(ReplaceState.GAVE_UP, (), reason)
        cfg = self.config
        severity = min(
            1.0,
            cfg.race_severity
            + cfg.race_severity_per_ambiguity * self.ambiguity_count
            + cfg.race_severity_per_attempt * self.cancel_attempts,
        )
        pressure = ReplacePressure(
            symbol=self.symbol, cause=REPLACE_RACE_CAUSE, severity=severity, reason=reason, at=now
        )
        return ReplaceStep(
            ReplaceState.GAVE_UP,
            (ReplaceAction.RECONCILE,),
            reason,
            # Informational: a fill seen on a still-live (or unknown) old order.
            fill_qty=self.unaccounted_fill_qty,
            ambiguous=ambiguous,
            pressure=pressure,
        )

    def _send_cancel(self, state: ReplaceState, reason: str, now: float) -> ReplaceStep:
        if self._expired(now):
            return self._give_up("deadline_exceeded", now)
        if self.cancel_attempts >= self.config.max_cancel_attempts:
            return self._give_up("cancel_attempts_exhausted", now)
        self.cancel_attempts += 1
        return ReplaceStep(state, (ReplaceAction.SEND_CANCEL,), reason)

    def _query_status(self, reason: str, now: float) -> ReplaceStep:
        self.ambiguity_count += 1
        if self._expired(now):
            return self._give_up("deadline_exceeded", now, ambiguous=True)
        if self.status_queries >= self.config.max_status_queries:
            return self._give_up("status_unresolved", now, ambiguous=True)
        self.status_queries += 1
        return ReplaceStep(
            ReplaceState.CANCEL_SENT_UNKNOWN, (ReplaceAction.QUERY_STATUS,), reason, ambiguous=True
        )

    def _old_terminal(self, reason: str, now: float) -> ReplaceStep:
        """The old order is proven terminal: hand over a fill race, or send the new order."""
        fill = self.unaccounted_fill_qty
        if fill > 0:
            return ReplaceStep(
                ReplaceState.FILLED_AFTER_CANCEL,
                (ReplaceAction.ACCOUNT_FILL,),
                "filled_after_cancel",
                fill_qty=fill,
            )
        if self._expired(now):
            return self._give_up("deadline_exceeded", now)
        return ReplaceStep(ReplaceState.NEW_SENT, (ReplaceAction.SEND_NEW,), reason)

    def _dispatch(self, kind: ReplaceEventKind, now: float) -> ReplaceStep:
        if kind is _E.GIVE_UP:
            return self._give_up("abandoned", now)
        if kind is _E.START:
            return self._send_cancel(_S.CANCEL_SENT, "cancel_sent", now)
        if kind is _E.CANCEL_ACK:
            return self._old_terminal("cancel_confirmed", now)
        if kind is _E.CANCEL_UNKNOWN:
            return self._query_status("cancel_outcome_unknown", now)
        if kind is _E.CANCEL_FAILED:
            return self._send_cancel(_S.REPLACE_RACE, "cancel_failed_retry", now)
        if kind is _E.STATUS_OPEN:
            return self._send_cancel(_S.REPLACE_RACE, "old_still_open_retry", now)
        if kind is _E.STATUS_CANCELED:
            return self._old_terminal("status_canceled", now)
        if kind is _E.STATUS_FILLED:
            return ReplaceStep(
                _S.FILLED_AFTER_CANCEL,
                (ReplaceAction.ACCOUNT_FILL,),
                "filled_after_cancel",
                fill_qty=self.unaccounted_fill_qty,
            )
        if kind is _E.STATUS_UNKNOWN:
            return self._query_status("status_still_unknown", now)
        if kind is _E.NEW_ACKED:
            return ReplaceStep(_S.DONE, (), "replaced")
        if kind is _E.NEW_REJECTED:
            # Old proven terminal, new definitely rejected: nothing live, nothing in doubt.
            return self._give_up("new_order_rejected", now, settled=True)
        if kind is _E.NEW_UNKNOWN:
            return self._give_up("new_order_outcome_unknown", now, ambiguous=True)
        assert kind is _E.FILL_ACCOUNTED, (self.state, kind)
        return ReplaceStep(_S.DONE, (), "filled_after_cancel_no_new_order")
