"""Protective-stop coverage of filled exposure: assess, refresh without churn, repair without gaps.

Theory of operation
-------------------

This module serves I9: *filled exposure never stays uncovered by a protective stop past its
TTL without the posture escalating*. It also respects I1 (everything it proposes is an exit:
reduce-only or close-position, never gated by posture) and I2 (every loop it drives is
bounded by a budget, a reject ladder or a TTL).

It answers four questions, each a pure function or a small per-symbol state machine:

1. **How well is this position covered?** :func:`assess_coverage` takes one position (a
   :class:`~scalper.core.model.VenuePosition`: signed quantity, position side) and the stops
   known live at the venue, and returns a :class:`Coverage`. The rules:

   * A stop *protects* a position when it is open, of a stop type (STOP, STOP_MARKET,
     TRAILING_STOP_MARKET; a take-profit does not limit a loss), on the same symbol and
     position side, on the *closing* side (SELL for a long, BUY for a short) and is an exit:
     reduce-only or close-position. In hedge mode every order on the closing side of a leg
     is an exit by construction (Binance rejects the ``reduceOnly`` flag there and reports it
     false), so the flag is not required.
   * A close-position stop on the closing side covers the whole position whatever its size.
   * Otherwise coverage is the **sum** of the remaining quantities of the protecting
     reduce-only stops (the seed took only the largest stop, so two half-size stops looked
     like 50% coverage and triggered needless replaces).
   * Exit stops on the *opening* side (a reduce-only BUY stop under a long) protect nothing;
     they are reported as ``wrong_side`` when nothing else covers the position.
   * A non-exit stop on the closing side is not protection either: it can flip the position
     when it triggers, so it is an entry for the orphan logic, not a stop for this one.

2. **Should the stop be resized now?** :class:`RefreshPolicy` is the anti-churn gate for
   dribble fills. It skips changes smaller than ``min_delta_ratio`` of the position, but a
   small mismatch is tolerated at most ``max_refresh_interval_seconds``; it spends at most
   ``max_refreshes_per_window`` refreshes per ``refresh_window_seconds`` per symbol. Three
   conditions *force* a refresh past both gates: severe under-coverage (ratio below
   ``force_coverage_ratio``, which includes "no stop at all"), a gap whose TTL is *due*
   (it has lasted ``gap_ttl_seconds - force_before_ttl_seconds``) and a breached gap TTL.
   The seed checked its throttle before it even looked at coverage, so an unprotected
   position could wait a full throttle period; here coverage is assessed first and the
   gates only ever delay *non-urgent* resizes, and never past the TTL: anti-churn exists to
   batch small deltas, so it may hold a gap back for most of its TTL (fills arriving in
   that time share one resize) but must not be the reason the gap outlives it (I9). The
   alternative, forcing whenever a fresh fill opens a gap, would defeat the budget exactly
   when it matters (a storm of 5-20% partial fills, one resize each); forcing on the gap's
   age lets a held gap's fills share one resize per ``gap_ttl_seconds -
   force_before_ttl_seconds`` however fast they come, and needs no notion of "fresh": the
   gap tracker already measures how long the exposure has been uncovered.

3. **How is the stop repaired?** :func:`plan_repair` returns an ordered list of actions in
   which every new stop is *placed before* any old stop is cancelled, so coverage never
   dips below what was there (the seed's refresh went through cancel-then-create and opened
   a naked window on every resize). The actor runs the actions in order, each one only after
   the previous one is confirmed; if one fails it drops the rest and asks for a new plan.
   While old and new stops overlap the position is briefly over-covered; that is harmless
   because both are exits: a reduce-only order that would reverse the position is expired
   by the venue, and in hedge mode a closing order cannot exceed its leg. If stops cannot be placed (``max_place_rejects`` consecutive rejects, or
   the venue says the stop would trigger at once) the plan falls back to a reduce-only
   market exit of the uncovered quantity: an unprotected position is closed, not left open.
   Between the first reject and the exit the plan climbs a ladder: after
   ``close_position_after_rejects`` rejects it asks for a close-position stop, which has no
   quantity to be wrong about (the seed's ``_A``/``_B`` legs).

4. **How long has the exposure been uncovered?** :class:`ProtectionGapTracker` (one per
   symbol) records when a gap starts and emits a :class:`GapEscalation` with cause
   ``protection_gap_ttl_breach`` once per gap when it outlives ``gap_ttl_seconds``. A
   *gap* is a shortfall of at least ``min_delta_ratio`` of the position (or no protection
   at all): the same tolerance the refresh policy uses, so a dribble fill that the policy
   deliberately leaves for later does not escalate the posture, and anything the policy
   would act on does.

:func:`protective_stop_price` is the fallback stop price when no ATR-based price is given:
a percentage offset from the entry on the losing side, on the tick grid, rounded toward the
entry so the loss is never wider than asked.

Why a 10 s gap TTL (the seed used 90 s): the seed's TTL was coupled to its 15 s reconcile
poll, so a naked position could live for a minute and a half before anyone noticed. Here the
gap starts at the fill event. A protective stop normally goes live within a second; 10 s
covers one placement whose ack timed out plus the status query that resolves it, with
margin for one retry with backoff. Breaching it says the repair path itself is in trouble,
which is exactly what the posture must hear. Escalation only clamps entries (I1), so a
false alarm costs little and a late alarm costs a lot.
"""

import collections
import enum
import math
from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TypeGuard

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.model import VenueOrder, VenuePosition
from scalper.core.types import ZERO, OrderType, PositionSide, Side

__all__ = [
    "GAP_TTL_BREACH_CAUSE",
    "PROTECTIVE_STOP_TYPES",
    "CancelStop",
    "Coverage",
    "CoverageStatus",
    "GapEscalation",
    "PlaceStop",
    "ProtectionConfig",
    "ProtectionGapTracker",
    "ReduceOnlyExit",
    "RefreshDecision",
    "RefreshPolicy",
    "RefreshReason",
    "RepairAction",
    "RepairActionKind",
    "RepairPlan",
    "assess_coverage",
    "plan_repair",
    "protective_stop_price",
]

#: Cause tag of the escalation the gap tracker emits when a gap outlives its TTL.
GAP_TTL_BREACH_CAUSE = "protection_gap_ttl_breach"

#: Order types that limit a loss when they trigger. Take-profits are deliberately absent.
PROTECTIVE_STOP_TYPES = frozenset(
    {OrderType.STOP, OrderType.STOP_MARKET, OrderType.TRAILING_STOP_MARKET}
)

_ONE = Decimal(1)


# --------------------------------------------------------------------------- validation


def _is_finite_decimal(value: object) -> TypeGuard[Decimal]:
    return isinstance(value, Decimal) and value.is_finite()


def _is_finite_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _ratio(*, include_one: bool) -> Any:
    """An attrs validator for a finite Decimal in (0, 1), or (0, 1] with ``include_one``."""

    def check(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
        if not _is_finite_decimal(value):
            raise CoreValueError(attribute.name, f"must be a finite Decimal, got {value!r}")
        if value <= 0 or value > _ONE or (value == _ONE and not include_one):
            bound = "1]" if include_one else "1)"
            raise CoreValueError(attribute.name, f"must be in (0, {bound}, got {value}")

    return check


def _positive_float(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CoreValueError(attribute.name, f"must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise CoreValueError(attribute.name, f"must be finite and positive, got {value!r}")


def _unit_float(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CoreValueError(attribute.name, f"must be a number, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise CoreValueError(attribute.name, f"must be in [0, 1], got {value!r}")


def _positive_int(_inst: object, attribute: "attrs.Attribute[Any]", value: object) -> None:
    if not _is_int(value) or value < 1:
        raise CoreValueError(attribute.name, f"must be an integer >= 1, got {value!r}")


def _check_now(now: float) -> None:
    if not _is_finite_number(now):
        raise CoreValueError("now", f"must be a finite number of seconds, got {now!r}")


@attrs.frozen
class ProtectionConfig:
    """Defaults for coverage, anti-churn refresh, repair and gap tracking.

    Attributes:
        min_delta_ratio: a size mismatch below this fraction of the position is "small": not
            worth a resize yet, and not a protection gap. Seed 0.10; 0.05 here, because the
            seed let a tenth of a position run unprotected for 45 s per dribble.
        max_refresh_interval_seconds: the longest a small mismatch is tolerated before the
            stop is resized anyway (seed 45 s).
        refresh_window_seconds: the sliding window of the refresh budget (seed 60 s).
        max_refreshes_per_window: refreshes allowed per window and symbol (seed 3). Forced
            refreshes bypass the limit but still count toward it.
        force_coverage_ratio: coverage below this ratio forces a refresh past every gate
            (seed 0.80).
        gap_ttl_seconds: how long a protection gap may last before the posture escalates
            (seed 90 s; see the module docstring for 10 s).
        gap_breach_severity: the severity in [0, 1] of the escalation a breach emits.
        force_before_ttl_seconds: a gap that has lasted ``gap_ttl_seconds`` minus this is
            refreshed past every budget (``force_ttl_due``), so the repair lands *before*
            the breach. Must be below ``gap_ttl_seconds``. 4 s: the caller re-assesses
            about once a second and a stop is normally live well within a second, so a
            refresh forced 6 s into a 10 s gap has three to four seconds to land.
        stop_offset_ratio: default stop distance from the entry price when no ATR-based
            price is supplied (seed ``GUARDIAN_STOP_FALLBACK_PCT`` 0.0035).
        close_position_after_rejects: consecutive placement rejects after which the repair
            asks for a close-position stop instead of a sized one.
        max_place_rejects: consecutive placement rejects after which the repair gives up on
            stops and exits the uncovered quantity with a reduce-only market order.
    """

    min_delta_ratio: Decimal = attrs.field(
        default=Decimal("0.05"), validator=_ratio(include_one=False)
    )
    max_refresh_interval_seconds: float = attrs.field(default=30.0, validator=_positive_float)
    refresh_window_seconds: float = attrs.field(default=60.0, validator=_positive_float)
    max_refreshes_per_window: int = attrs.field(default=3, validator=_positive_int)
    force_coverage_ratio: Decimal = attrs.field(
        default=Decimal("0.80"), validator=_ratio(include_one=True)
    )
    gap_ttl_seconds: float = attrs.field(default=10.0, validator=_positive_float)
    gap_breach_severity: float = attrs.field(default=0.9, validator=_unit_float)
    force_before_ttl_seconds: float = attrs.field(default=4.0, validator=_positive_float)
    stop_offset_ratio: Decimal = attrs.field(
        default=Decimal("0.0035"), validator=_ratio(include_one=False)
    )
    close_position_after_rejects: int = attrs.field(default=1, validator=_positive_int)
    max_place_rejects: int = attrs.field(default=3, validator=_positive_int)

    def __attrs_post_init__(self) -> None:
        if self.force_before_ttl_seconds >= self.gap_ttl_seconds:
            # At or past the TTL the forced refresh would only ever follow the breach.
            raise CoreValueError(
                "force_before_ttl_seconds",
                f"must be below gap_ttl_seconds ({self.gap_ttl_seconds}), "
                f"got {self.force_before_ttl_seconds}",
            )
        if self.close_position_after_rejects > self.max_place_rejects:
            raise CoreValueError(
                "close_position_after_rejects",
                f"must not exceed max_place_rejects ({self.max_place_rejects}), "
                f"got {self.close_position_after_rejects}",
            )


# --------------------------------------------------------------------------- coverage


class CoverageStatus(enum.StrEnum):
    """How a position's protection stands."""

    #: No exposure: nothing to protect.
    FLAT = "flat"
    #: Protected quantity equals the position (or a close-position stop is live).
    COVERED = "covered"
    #: Some, but not all, of the position is protected.
    UNDER_COVERED = "under_covered"
    #: Nothing protects the position and no stop is even on the wrong side.
    UNCOVERED = "uncovered"
    #: More reduce-only stop quantity than position (harmless, but stale).
    OVER_COVERED = "over_covered"
    #: Nothing protects the position, but exit stops sit on the opening side (stale stops).
    WRONG_SIDE = "wrong_side"


@attrs.frozen
class Coverage:
    """The protection of one position at one moment.

    Attributes:
        symbol: the position's symbol.
        position_side: BOTH (one-way) or the hedge-mode leg.
        position_qty: signed position quantity (negative is short).
        closing_side: the side that reduces the position; ``None`` when flat.
        covered_qty: protected quantity; the full position (or more) under a close-position
            stop.
        ratio: ``covered_qty / |position_qty|`` (1 when flat).
        uncovered_qty: ``max(|position_qty| - covered_qty, 0)``.
        covered_by: venue order ids of the protecting stops, sorted.
        wrong_side_ids: venue order ids of exit stops on the opening side, sorted.
        close_position_ids: the ids in ``covered_by`` that are close-position stops.
        status: the summary tag (see :class:`CoverageStatus`).
    """

    symbol: str
    position_side: PositionSide
    position_qty: Decimal
    closing_side: Side | None
    covered_qty: Decimal
    ratio: Decimal
    uncovered_qty: Decimal
    covered_by: tuple[str, ...]
    wrong_side_ids: tuple[str, ...]
    close_position_ids: tuple[str, ...]
    status: CoverageStatus

    @property
    def close_position(self) -> bool:
        """True if a close-position stop protects the whole position."""
        return bool(self.close_position_ids)

    @property
    def size(self) -> Decimal:
        """The absolute position quantity: what must be protected."""
        return abs(self.position_qty)

    @property
    def shortfall_ratio(self) -> Decimal:
        """``uncovered_qty / |position_qty|``: 0 when covered or flat, 1 when naked."""
        if self.position_qty == 0:
            return ZERO
        return self.uncovered_qty / self.size

    def is_gap(self, tolerance: Decimal) -> bool:
        """True if at least ``tolerance`` of the position (and more than nothing) is unprotected."""
        return self.uncovered_qty > 0 and self.shortfall_ratio >= tolerance


def _check_position(position: VenuePosition) -> None:
    qty = position.quantity
    if not _is_finite_decimal(qty):
        raise CoreValueError("position.quantity", f"must be a finite Decimal, got {qty!r}")
    # Binance reports hedge-mode SHORT legs with a negative positionAmt; a sign that
    # contradicts the leg means the caller mixed up legs, and a wrong closing side would
    # make every stop look wrong (or right).
    if position.position_side is PositionSide.LONG and qty < 0:
        raise CoreValueError("position.quantity", f"a LONG leg cannot be negative, got {qty}")
    if position.position_side is PositionSide.SHORT and qty > 0:
        raise CoreValueError("position.quantity", f"a SHORT leg cannot be positive, got {qty}")


def _is_exit_for(order: VenueOrder, position_side: PositionSide) -> bool:
    # Hedge mode: the leg says what is reduced, and Binance reports reduceOnly false there.
    return order.is_exit or position_side is not PositionSide.BOTH


def assess_coverage(position: VenuePosition, stops: Iterable[VenueOrder]) -> Coverage:
    """Measure how much of ``position`` the live protective stops cover.

    Orders of other symbols or position sides, closed orders, non-stop types and non-exit
    orders are ignored (see the module docstring for the exact rules).

    Args:
        position: the position to protect; ``quantity`` is signed.
        stops: orders known live at the venue (plain and conditional; any may be passed).

    Returns:
        The :class:`Coverage`, with ratio, uncovered quantity, the covering ids and a status.

    Raises:
        CoreValueError: if the position quantity contradicts its hedge-mode leg.
    """
    _check_position(position)
    qty = position.quantity
    size = abs(qty)
    closing = None if qty == 0 else (Side.SELL if qty > 0 else Side.BUY)
    covering: list[str] = []
    wrong: list[str] = []
    close_ids: list[str] = []
    reduce_sum = ZERO
    for order in stops:
        if (
            order.symbol != position.symbol
            or order.position_side is not position.position_side
            or not order.status.is_open
            or order.order_type not in PROTECTIVE_STOP_TYPES
        ):
            continue
        if closing is None:
            continue
        if order.side is closing:
            if order.close_position:
                close_ids.append(order.order_id)
                covering.append(order.order_id)
            elif _is_exit_for(order, position.position_side) and order.remaining_qty > 0:
                reduce_sum += order.remaining_qty
                covering.append(order.order_id)
        elif order.is_exit:
            wrong.append(order.order_id)
    if closing is None:
        return Coverage(
            symbol=position.symbol,
            position_side=position.position_side,
            position_qty=qty,
            closing_side=None,
            covered_qty=ZERO,
            ratio=_ONE,
            uncovered_qty=ZERO,
            covered_by=(),
            wrong_side_ids=(),
            close_position_ids=(),
            status=CoverageStatus.FLAT,
        )
    covered = max(size, reduce_sum) if close_ids else reduce_sum
    uncovered = max(size - covered, ZERO)
    if covered == 0:
        status = CoverageStatus.WRONG_SIDE if wrong else CoverageStatus.UNCOVERED
    elif covered < size:
        status = CoverageStatus.UNDER_COVERED
    elif covered > size:
        status = CoverageStatus.OVER_COVERED
    else:
        status = CoverageStatus.COVERED
    return Coverage(
        symbol=position.symbol,
        position_side=position.position_side,
        position_qty=qty,
        closing_side=closing,
        covered_qty=covered,
        ratio=covered / size,
        uncovered_qty=uncovered,
        covered_by=tuple(sorted(covering)),
        wrong_side_ids=tuple(sorted(wrong)),
        close_position_ids=tuple(sorted(close_ids)),
        status=status,
    )


# --------------------------------------------------------------------------- stop price


def protective_stop_price(
    entry_price: Decimal, position_qty: Decimal, offset_ratio: Decimal, tick_size: Decimal
) -> Decimal:
    """The stop price ``offset_ratio`` away from ``entry_price`` on the losing side, on the tick grid.

    A long's stop sits below the entry, a short's above. The raw price is rounded *toward
    the entry* so the realised loss is never wider than asked; but never onto the entry
    itself: a stop must be at least one tick away from it.

    Args:
        entry_price: the position's average entry price (positive).
        position_qty: signed position quantity; its sign picks the side. Must not be zero.
        offset_ratio: distance as a fraction of the entry price, in (0, 1).
        tick_size: the symbol's ``PRICE_FILTER.tickSize`` (positive).

    Returns:
        A positive multiple of ``tick_size``.

    Raises:
        CoreValueError: on a non-positive entry or tick, a zero position, an offset outside
            (0, 1), or a long whose stop would not be positive.
    """
    for name, value in (("entry_price", entry_price), ("tick_size", tick_size)):
        if not _is_finite_decimal(value) or value <= 0:
            raise CoreValueError(name, f"must be a positive finite Decimal, got {value!r}")
    if not _is_finite_decimal(offset_ratio):
        raise CoreValueError("offset_ratio", f"must be a finite Decimal, got {offset_ratio!r}")
    if not 0 < offset_ratio < 1:
        raise CoreValueError("offset_ratio", f"must be in (0, 1), got {offset_ratio}")
    if not _is_finite_decimal(position_qty) or position_qty == 0:
        raise CoreValueError("position_qty", f"must be a non-zero Decimal, got {position_qty!r}")
    ticks = entry_price / tick_size
    if position_qty > 0:
        raw = (entry_price * (_ONE - offset_ratio)) / tick_size
        n = raw.to_integral_value(rounding=ROUND_CEILING)
        # Rounding toward the entry may land on it (offset under a tick): step one tick away.
        limit = ticks.to_integral_value(rounding=ROUND_CEILING) - 1
        n = min(n, limit)
    else:
        raw = (entry_price * (_ONE + offset_ratio)) / tick_size
        n = raw.to_integral_value(rounding=ROUND_FLOOR)
        limit = ticks.to_integral_value(rounding=ROUND_FLOOR) + 1
        n = max(n, limit)
    price = n * tick_size
    if price <= 0:
        raise CoreValueError(
            "offset_ratio", f"puts a long's stop at {price}: no positive price on the grid"
        )
    return price


# --------------------------------------------------------------------------- refresh policy


class RefreshReason(enum.StrEnum):
    """Why a refresh decision came out the way it did."""

    REFRESH = "refresh"
    REFRESH_INTERVAL_ELAPSED = "refresh_interval_elapsed"
    SKIP_FLAT = "skip_flat"
    SKIP_COVERED = "skip_covered"
    SKIP_SMALL_DELTA = "skip_small_delta"
    SKIP_BUDGET = "skip_budget"
    FORCE_SEVERE_UNDER_COVERAGE = "force_severe_under_coverage"
    #: The gap has lasted ``gap_ttl_seconds - force_before_ttl_seconds``: refresh before it
    #: breaches, whatever the budget says.
    FORCE_TTL_DUE = "force_ttl_due"
    FORCE_TTL_BREACH = "force_ttl_breach"


@attrs.frozen
class RefreshDecision:
    """Whether to resize a symbol's protective stop now, and why.

    Attributes:
        refresh: True if the caller should run a repair plan now.
        reason: the tag to journal.
        forced: True if the refresh bypassed the delta and budget gates.
        target_qty: the quantity the stop should have (``|position|``).
        delta_ratio: ``|target - covered| / target`` (0 when flat).
        budget_used: refreshes in the window *before* this decision.
        budget_limit: the window's limit.
    """

    refresh: bool
    reason: RefreshReason
    forced: bool
    target_qty: Decimal
    delta_ratio: Decimal
    budget_used: int
    budget_limit: int


@attrs.define
class RefreshPolicy:
    """Anti-churn gate for resizing protective stops, with per-symbol budgets.

    :meth:`decide` is a commitment: a ``refresh`` decision is counted against the budget at
    once, so the caller must act on it. The caller keeps at most one repair in flight per
    symbol; the policy does not know about in-flight repairs. To keep gaps inside their TTL
    the caller passes the gap's age (:meth:`ProtectionGapTracker.gap_seconds`) and calls
    again at least every ``force_before_ttl_seconds`` (less the repair's latency) while a
    gap is open.
    """

    config: ProtectionConfig = attrs.field(factory=ProtectionConfig)
    _refreshes: dict[str, collections.deque[float]] = attrs.field(init=False, factory=dict)
    _small_since: dict[str, float] = attrs.field(init=False, factory=dict)
    _last_now: float | None = attrs.field(init=False, default=None)

    def refreshes_in_window(self, symbol: str, now: float) -> int:
        """How many refreshes of ``symbol`` fall in the window ending at ``now``."""
        events = self._refreshes.get(symbol)
        if events is None:
            return 0
        horizon = now - self.config.refresh_window_seconds
        while events and events[0] <= horizon:
            events.popleft()
        return len(events)

    def decide(
        self,
        coverage: Coverage,
        now: float,
        *,
        ttl_breached: bool = False,
        gap_seconds: float = 0.0,
    ) -> RefreshDecision:
        """Decide whether to resize the stop of ``coverage``'s symbol now.

        Args:
            coverage: the current assessment (from :func:`assess_coverage`).
            now: the injected clock; must not go backwards.
            ttl_breached: True if the symbol's gap tracker reports a breached TTL.
            gap_seconds: how long the current protection gap has lasted (the tracker's
                :meth:`~ProtectionGapTracker.gap_seconds`; 0 when there is none). Past
                ``gap_ttl_seconds - force_before_ttl_seconds`` an under-covered position is
                refreshed past every gate (``force_ttl_due``); past ``gap_ttl_seconds`` it
                counts as breached even if ``ttl_breached`` is not set.

        Raises:
            CoreValueError: if ``now`` is not finite or goes backwards, or ``gap_seconds`` is
                negative or not finite.
        """
        _check_now(now)
        if not _is_finite_number(gap_seconds) or gap_seconds < 0:
            raise CoreValueError(
                "gap_seconds", f"must be a finite number of seconds >= 0, got {gap_seconds!r}"
            )
        if self._last_now is not None and now < self._last_now:
            raise CoreValueError("now", f"went backwards: {now} < {self._last_now}")
        self._last_now = now
        cfg = self.config
        symbol = coverage.symbol
        used = self.refreshes_in_window(symbol, now)
        target = coverage.size

        def result(reason: RefreshReason, delta: Decimal) -> RefreshDecision:
            refresh = reason in _REFRESHING
            if refresh:
                self._refreshes.setdefault(symbol, collections.deque()).append(now)
                self._small_since.pop(symbol, None)
            return RefreshDecision(
                refresh=refresh,
                reason=reason,
                forced=reason in _FORCING,
                target_qty=target,
                delta_ratio=delta,
                budget_used=used,
                budget_limit=cfg.max_refreshes_per_window,
            )

        if coverage.status is CoverageStatus.FLAT:
            self._small_since.pop(symbol, None)
            return result(RefreshReason.SKIP_FLAT, ZERO)
        delta = abs(target - coverage.covered_qty) / target
        if coverage.status is CoverageStatus.COVERED:
            self._small_since.pop(symbol, None)
            return result(RefreshReason.SKIP_COVERED, delta)
        if coverage.uncovered_qty > 0 and coverage.ratio < cfg.force_coverage_ratio:
            return result(RefreshReason.FORCE_SEVERE_UNDER_COVERAGE, delta)
        if coverage.uncovered_qty > 0 and (ttl_breached or gap_seconds > cfg.gap_ttl_seconds):
            return result(RefreshReason.FORCE_TTL_BREACH, delta)
        if (
            coverage.uncovered_qty > 0
            and gap_seconds >= cfg.gap_ttl_seconds - cfg.force_before_ttl_seconds
        ):
            # The budget may batch a gap's resize, never let the gap outlive its TTL (I9).
            return result(RefreshReason.FORCE_TTL_DUE, delta)
        reason = RefreshReason.REFRESH
        if delta < cfg.min_delta_ratio:
            since = self._small_since.setdefault(symbol, now)
            if now - since < cfg.max_refresh_interval_seconds:
                return result(RefreshReason.SKIP_SMALL_DELTA, delta)
            reason = RefreshReason.REFRESH_INTERVAL_ELAPSED
        if used >= cfg.max_refreshes_per_window:
            return result(RefreshReason.SKIP_BUDGET, delta)
        return result(reason, delta)


_FORCING = frozenset(
    {
        RefreshReason.FORCE_SEVERE_UNDER_COVERAGE,
        RefreshReason.FORCE_TTL_DUE,
        RefreshReason.FORCE_TTL_BREACH,
    }
)
_REFRESHING = _FORCING | {RefreshReason.REFRESH, RefreshReason.REFRESH_INTERVAL_ELAPSED}


# --------------------------------------------------------------------------- repair plan


class RepairActionKind(enum.StrEnum):
    """What one step of a repair plan does."""

    PLACE_STOP = "PLACE_STOP"
    CANCEL_STOP = "CANCEL_STOP"
    REDUCE_ONLY_EXIT = "REDUCE_ONLY_EXIT"


@attrs.frozen
class PlaceStop:
    """Place one protective stop (an exit intent of kind PROTECT).

    ``quantity`` is ``None`` exactly when ``close_position`` is set. ``reduce_only`` is the
    order's meaning; the wire adapter drops the flag in hedge mode.
    """

    symbol: str
    side: Side
    position_side: PositionSide
    stop_price: Decimal
    quantity: Decimal | None
    close_position: bool = False
    order_type: OrderType = OrderType.STOP_MARKET

    @property
    def kind(self) -> RepairActionKind:
        """PLACE_STOP."""
        return RepairActionKind.PLACE_STOP

    @property
    def reduce_only(self) -> bool:
        """True for sized stops; close-position stops must not carry the flag (-4138/-1106)."""
        return not self.close_position


@attrs.frozen
class CancelStop:
    """Cancel one superseded stop by venue order id (only after its replacement is live)."""

    symbol: str
    order_id: str

    @property
    def kind(self) -> RepairActionKind:
        """CANCEL_STOP."""
        return RepairActionKind.CANCEL_STOP


@attrs.frozen
class ReduceOnlyExit:
    """Close ``quantity`` of the position with a reduce-only market order (the last resort)."""

    symbol: str
    side: Side
    position_side: PositionSide
    quantity: Decimal

    @property
    def kind(self) -> RepairActionKind:
        """REDUCE_ONLY_EXIT."""
        return RepairActionKind.REDUCE_ONLY_EXIT


RepairAction = PlaceStop | CancelStop | ReduceOnlyExit


@attrs.frozen
class RepairPlan:
    """Ordered actions that restore protection without ever lowering it, with a reason tag.

    Run the actions in order, each after the previous one is confirmed.
    """

    actions: tuple[RepairAction, ...]
    reason: str


def plan_repair(
    coverage: Coverage,
    *,
    stop_price: Decimal,
    place_rejects: int = 0,
    would_trigger: bool = False,
    config: ProtectionConfig | None = None,
) -> RepairPlan:
    """Plan the actions that make ``coverage`` exactly covered, placing before cancelling.

    Args:
        coverage: the current assessment of the position.
        stop_price: trigger price for a new stop (e.g. from :func:`protective_stop_price`
            or the superseded stop's price when only resizing).
        place_rejects: consecutive rejected placements of a stop for this position so far.
        would_trigger: the venue rejected the last placement because the stop would trigger
            at once (-2021/-4142): the price is already past it, so exit instead.
        config: thresholds for the reject ladder; defaults to :class:`ProtectionConfig`.

    Returns:
        A :class:`RepairPlan`. Reason tags: ``flat``, ``covered``, ``trim_over_coverage``
        (resize down, or drop sized extras under a close-position stop),
        ``over_covered_left``, ``resize_stop``, ``place_close_position_stop``,
        ``stop_would_trigger_exit``, ``stop_unplaceable_exit``.

    Raises:
        CoreValueError: on a non-positive stop price or a negative reject count.
    """
    cfg = config if config is not None else ProtectionConfig()
    if not _is_finite_decimal(stop_price) or stop_price <= 0:
        raise CoreValueError("stop_price", f"must be a positive finite Decimal, got {stop_price!r}")
    if not _is_int(place_rejects) or place_rejects < 0:
        raise CoreValueError("place_rejects", f"must be an integer >= 0, got {place_rejects!r}")
    status = coverage.status
    if status is CoverageStatus.FLAT:
        return RepairPlan((), "flat")
    if status is CoverageStatus.COVERED:
        return RepairPlan((), "covered")
    closing = coverage.closing_side
    assert closing is not None  # not flat
    symbol = coverage.symbol
    if status is CoverageStatus.OVER_COVERED:
        if coverage.close_position:
            # A close-position stop alone covers everything, so the sized extras can go
            # without a placement: protection never drops below the whole position.
            keep = set(coverage.close_position_ids)
            extras = tuple(
                CancelStop(symbol=symbol, order_id=oid)
                for oid in (*coverage.covered_by, *coverage.wrong_side_ids)
                if oid not in keep
            )
            return RepairPlan(extras, "trim_over_coverage")
        if would_trigger or place_rejects >= cfg.max_place_rejects:
            # Too much protection is not a hazard; do not fight the venue over it.
            return RepairPlan((), "over_covered_left")
    elif would_trigger or place_rejects >= cfg.max_place_rejects:
        exit_ = ReduceOnlyExit(
            symbol=symbol,
            side=closing,
            position_side=coverage.position_side,
            quantity=coverage.uncovered_qty,
        )
        reason = "stop_would_trigger_exit" if would_trigger else "stop_unplaceable_exit"
        return RepairPlan((exit_,), reason)
    use_close = place_rejects >= cfg.close_position_after_rejects
    place = PlaceStop(
        symbol=symbol,
        side=closing,
        position_side=coverage.position_side,
        stop_price=stop_price,
        quantity=None if use_close else coverage.size,
        close_position=use_close,
    )
    cancels = tuple(
        CancelStop(symbol=symbol, order_id=oid)
        for oid in (*coverage.covered_by, *coverage.wrong_side_ids)
    )
    if status is CoverageStatus.OVER_COVERED:
        reason = "trim_over_coverage"
    else:
        reason = "place_close_position_stop" if use_close else "resize_stop"
    return RepairPlan((place, *cancels), reason)


# --------------------------------------------------------------------------- gap tracking


@attrs.frozen
class GapEscalation:
    """A protection gap outlived its TTL: posture must tighten (cause ``protection_gap_ttl_breach``).

    Attributes:
        symbol: the unprotected symbol.
        cause: always :data:`GAP_TTL_BREACH_CAUSE`.
        severity: in [0, 1], from :attr:`ProtectionConfig.gap_breach_severity`.
        gap_started_at: when the gap began, on the injected clock.
        gap_seconds: how long it had lasted when the breach was noticed.
        ttl_seconds: the TTL it breached.
        uncovered_qty: the unprotected quantity at the last observation.
        at: when the breach was noticed.
    """

    symbol: str
    cause: str
    severity: float
    gap_started_at: float
    gap_seconds: float
    ttl_seconds: float
    uncovered_qty: Decimal
    at: float


@attrs.define
class ProtectionGapTracker:
    """Tracks, for one symbol, how long filled exposure has been without enough protection.

    Feed it every fresh :class:`Coverage` with :meth:`observe`, and call :meth:`check` on a
    timer between observations. It emits one :class:`GapEscalation` per gap (edge-triggered);
    :meth:`is_breached` is the level-triggered view for the refresh policy and posture.
    """

    symbol: str
    config: ProtectionConfig = attrs.field(factory=ProtectionConfig)
    gap_started_at: float | None = attrs.field(init=False, default=None)
    uncovered_qty: Decimal = attrs.field(init=False, default=ZERO)
    breach_count: int = attrs.field(init=False, default=0)
    _escalated: bool = attrs.field(init=False, default=False)
    _last_now: float | None = attrs.field(init=False, default=None)

    def _advance(self, now: float) -> None:
        _check_now(now)
        if self._last_now is not None and now < self._last_now:
            raise CoreValueError("now", f"went backwards: {now} < {self._last_now}")
        self._last_now = now

    def observe(self, coverage: Coverage, now: float) -> GapEscalation | None:
        """Record the coverage seen at ``now``; return an escalation if the TTL was just breached.

        Raises:
            CoreValueError: on another symbol's coverage or a clock going backwards.
        """
        if coverage.symbol != self.symbol:
            raise CoreValueError(
                "coverage", f"is for {coverage.symbol!r}, this tracker is {self.symbol!r}"
            )
        self._advance(now)
        if coverage.is_gap(self.config.min_delta_ratio):
            if self.gap_started_at is None:
                self.gap_started_at = now
            self.uncovered_qty = coverage.uncovered_qty
        else:
            self.gap_started_at = None
            self.uncovered_qty = ZERO
            self._escalated = False
        return self.check(now)

    def gap_seconds(self, now: float) -> float:
        """Seconds the current gap has lasted at ``now``; 0.0 when there is no gap."""
        self._advance(now)
        if self.gap_started_at is None:
            return 0.0
        return now - self.gap_started_at

    def is_breached(self, now: float) -> bool:
        """True while a gap has lasted longer than the TTL."""
        return self.gap_seconds(now) > self.config.gap_ttl_seconds

    def check(self, now: float) -> GapEscalation | None:
        """Return an escalation the first time the current gap is seen past its TTL."""
        gap = self.gap_seconds(now)
        if self.gap_started_at is None or self._escalated or gap <= self.config.gap_ttl_seconds:
            return None
        self._escalated = True
        self.breach_count += 1
        return GapEscalation(
            symbol=self.symbol,
            cause=GAP_TTL_BREACH_CAUSE,
            severity=self.config.gap_breach_severity,
            gap_started_at=self.gap_started_at,
            gap_seconds=gap,
            ttl_seconds=self.config.gap_ttl_seconds,
            uncovered_qty=self.uncovered_qty,
            at=now,
        )
