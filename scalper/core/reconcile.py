"""Reconcile: diff what we believe against what the venue says, and plan bounded repairs.

Theory of operation
-------------------

Acknowledgements and responses are evidence; reconciliation against a venue snapshot is the
authority (I4). The Reconciler actor builds a :class:`LocalView` (the orders we believe may be
live, the positions we believe we hold, what the ledger knows about intents) and hands it,
with the latest :class:`~scalper.core.model.AccountSnapshot`, to :meth:`Reconciler.reconcile`.
The answer is a :class:`ReconcileResult`: the mismatches found, a repair plan, what could not
be judged yet, the mismatch streak and a one-line summary for the journal.

Snapshots lag. ``taken_at`` is when the snapshot's requests started, so anything younger than
``lag_grace_sec`` relative to it may legitimately be missing, and a position or fill the
stream has just delivered may not show yet. Such items are *deferred* (counted as
``unknown``), never reported as mismatches and never repaired.

Our journal lags too. A venue ack or order report can tell the ledger that an order executed
before its trades are journaled (a market order acked FILLED while the user stream is down:
the trades come from the stream or from a REST backfill). :attr:`LocalView.fills_in_flight`
lists that executed-but-unjournaled quantity per order, with the time the ledger first
learned of it. A position difference that such *fills in flight* explain (the venue size
equals ours plus the oldest ones in flight, in the order they became known, within the drift
tolerance) is deferred as ``fill_in_flight`` while the oldest of them is younger than
``lag_grace_sec``; so is a ``partial_fill_caught`` the ledger's count already covers, and the
missing or undersized protection of such a leg (the ProtectionManager covers from journaled
fills). The fills are fetched meanwhile: one ``QUERY_ORDER`` per order in flight per
``QUERY_ORDER`` cooldown (reason ``fill_in_flight``, severity 0; journaling a fill is never
wrong, I10), so they are journaled within the grace even with the stream down. A fill in
flight past the grace explains nothing: the difference is the usual drift, orphan or phantom.
A difference no fill in flight explains is judged at once, as before.

Our orders leave the book the same way: one that fills (or is cancelled) after the stream's
last report and before the snapshot is read is missing from the book while its report is
still on its way. For ``lag_grace_sec`` from the first snapshot that misses one of our acked
orders (OPEN or CANCELING), its remaining quantity counts as a fill in flight: the order is
deferred as ``vanished_within_grace`` and fetched, and a position difference it explains
(and that leg's protection) is deferred as above. A difference it does not explain is
judged at once; an order still missing after the grace is ``stale_local_order``.

A leg we hold flat is judged, not dropped: a venue position on a leg whose last journaled
change (the exit fill) is younger than ``lag_grace_sec`` is the snapshot lagging that exit,
deferred as ``local_flat_within_grace`` (its protection too); past the grace it is an orphan
position as usual.

Mismatch kinds (``local_value`` / ``venue_value`` carry the quantities compared):

* ``stale_local_order``: we believe an order may be live; the venue does not list it, past
  the grace period (from its placement and, for an acked order, from its first miss). Repair ``QUERY_ORDER`` (its fills must be fetched and journaled, I10);
  ``MARK_ORDER_GONE`` once a cancel was already requested, or after
  ``stale_order_miss_count`` consecutive snapshots without it. MARK_ORDER_GONE updates
  belief only: it is *not* a :class:`~scalper.core.ids.GenerationProof` and never licenses
  a resend (I7).
* ``orphan_venue_order``: the venue lists an open order we do not know; the action comes
  from :mod:`scalper.core.orphans` (``ADOPT_ORDER`` / ``CANCEL_ORDER`` / ``FREEZE_SYMBOL``).
  Orders already recorded as frozen (``LocalView.frozen_venue_order_ids``) are not reported
  again, so one known foreign order does not keep the streak growing forever.
* ``orphan_venue_position``: the venue holds a position we do not; classified the same way
  (``SYNC_POSITION`` to adopt it, or ``FREEZE_SYMBOL``).
* ``position_drift``: both sides hold the leg but the sizes differ by more than
  ``max(drift_abs_tolerance, drift_rel_tolerance * larger size)``, or the signs differ, or
  the venue holds a position that can only be an unseen fill of one of our live entry
  orders. Repair ``SYNC_POSITION`` to the venue's size (plus ``QUERY_ORDER`` for the fills).
* ``phantom_position``: we hold a leg the venue says is flat, seen in at least
  ``phantom_miss_count`` consecutive fresh snapshots spanning at least ``phantom_grace_sec``.
  Repair ``SYNC_POSITION`` to zero. Until then the leg is deferred.
* ``partial_fill_caught``: the venue reports more filled on one of our orders than we have
  journaled. Repair ``QUERY_ORDER`` (fetch and journal the fills, I10).
* ``missing_protection`` / ``undersized_protection``: a venue position with no protective
  stop of ours, or with stops covering less than ``protection_min_coverage`` of it (a
  close-position stop always covers). Repair ``PLACE_PROTECTION`` / ``RESIZE_PROTECTION``
  (I9). Deferred while the position is younger than ``protection_grace_sec`` (for an
  undersized stop: while its last fill is), or our own stop for it was placed within the
  lag grace.
* ``snapshot_failed`` / ``snapshot_stale``: no snapshot, one older than
  ``max_snapshot_age_sec``, or one older than a snapshot already used. Nothing is judged or
  repaired, but the failure is a significant mismatch: failed evidence raises pressure, it
  never passes silently.

Every mismatch has a severity in [0, 1] (module constants below; larger means more
unaccounted exposure). The *streak* counts consecutive reconciles with at least one mismatch
of severity ``>= streak_min_severity``; it resets to zero only on a *clean* reconcile (a
usable snapshot and no mismatches at all), and stays put on one that has only minor ones.

Repairs are bounded: at most one :class:`RepairAction` per (kind, symbol) per cooldown window
(``repair_cooldown_sec``, per kind in ``repair_cooldown_by_kind``). An action lists every
target of its kind on the symbol, so the bound never starves a second order or leg. At most
``max_repairs_per_pass`` actions are issued per reconcile, most severe first. Everything held
back is reported in ``skipped`` so the journal shows it. Fetches for fills in flight are
bounded per order instead (each order at most once per ``QUERY_ORDER`` cooldown), so a second
entry's fill is not starved by the first one's fetch; they ride on the symbol's
``QUERY_ORDER`` action when one is issued, and never start or extend its cooldown.

:class:`Reconciler` carries the state between calls (miss counters, last repair times, the
streak). It is pure: time comes in as ``now``, iteration is in sorted order, so the same
inputs give the same results. Its state is soft: after a restart it starts empty, which only
makes it more cautious (phantoms need their misses again).
"""

import enum
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.ids import DEFAULT_PREFIX, Role, intent_digest, parse_client_order_id
from scalper.core.model import AccountSnapshot, VenueOrder, VenuePosition
from scalper.core.orphans import (
    Coverage,
    IntentStanding,
    OrphanAction,
    OrphanContext,
    OrphanReason,
    OrphansConfig,
    classify_orders,
    classify_position,
    is_position_reducing,
    stop_coverage,
)
from scalper.core.types import ZERO, PositionSide, Side

__all__ = [
    "ACCOUNT",
    "Deferred",
    "FillInFlight",
    "LocalOrder",
    "LocalOrderState",
    "LocalPosition",
    "LocalView",
    "Mismatch",
    "MismatchKind",
    "ReconcileConfig",
    "ReconcileResult",
    "ReconcileSummary",
    "Reconciler",
    "RepairAction",
    "RepairKind",
    "RepairTarget",
    "SkippedRepair",
]

_E = TypeVar("_E", bound=enum.Enum)

#: The symbol of account-wide mismatches (a failed or stale snapshot).
ACCOUNT = "*"


# --------------------------------------------------------------------------- vocabulary


class MismatchKind(enum.StrEnum):
    """What kind of disagreement between belief and venue a mismatch is."""

    SNAPSHOT_FAILED = "snapshot_failed"
    SNAPSHOT_STALE = "snapshot_stale"
    STALE_LOCAL_ORDER = "stale_local_order"
    ORPHAN_VENUE_ORDER = "orphan_venue_order"
    ORPHAN_VENUE_POSITION = "orphan_venue_position"
    POSITION_DRIFT = "position_drift"
    PHANTOM_POSITION = "phantom_position"
    PARTIAL_FILL_CAUGHT = "partial_fill_caught"
    MISSING_PROTECTION = "missing_protection"
    UNDERSIZED_PROTECTION = "undersized_protection"


class RepairKind(enum.StrEnum):
    """What a repair asks the actor to do."""

    #: Query the order by client order id and journal its status and fills.
    QUERY_ORDER = "QUERY_ORDER"
    #: Mark the order gone in belief (not a generation proof: never a resend licence).
    MARK_ORDER_GONE = "MARK_ORDER_GONE"
    #: Take a venue order into the ledger.
    ADOPT_ORDER = "ADOPT_ORDER"
    #: Cancel the order at the venue.
    CANCEL_ORDER = "CANCEL_ORDER"
    #: Set the believed position of the leg to the venue's quantity.
    SYNC_POSITION = "SYNC_POSITION"
    #: Place a protective stop for the leg (an exit: never gated, I1).
    PLACE_PROTECTION = "PLACE_PROTECTION"
    #: Replace the leg's stop with one covering the whole position.
    RESIZE_PROTECTION = "RESIZE_PROTECTION"
    #: Stop new entries on the symbol until cleared.
    FREEZE_SYMBOL = "FREEZE_SYMBOL"


# Ties in severity are broken so protection and exposure-removing actions come first.
_REPAIR_PRIORITY = {
    RepairKind.PLACE_PROTECTION: 0,
    RepairKind.CANCEL_ORDER: 1,
    RepairKind.FREEZE_SYMBOL: 2,
    RepairKind.RESIZE_PROTECTION: 3,
    RepairKind.SYNC_POSITION: 4,
    RepairKind.QUERY_ORDER: 5,
    RepairKind.MARK_ORDER_GONE: 6,
    RepairKind.ADOPT_ORDER: 7,
}


class LocalOrderState(enum.StrEnum):
    """How far we believe a possibly-live order of ours has got."""

    #: Sent, no answer yet: it may or may not be on the book.
    SENDING = "SENDING"
    #: Acknowledged and believed live.
    OPEN = "OPEN"
    #: A cancel was sent and not yet confirmed.
    CANCELING = "CANCELING"
    #: An ambiguous outcome (timeout, 5xx) being resolved by query.
    UNKNOWN = "UNKNOWN"


# Severities. A failed reconcile input is serious but bounded; unknown exposure scores higher
# than wrong bookkeeping; a position with no stop at all is the worst thing we can see.
_SEV_SNAPSHOT_FAILED = 0.7
_SEV_SNAPSHOT_STALE = 0.5
_SEV_STALE = {
    LocalOrderState.CANCELING: 0.1,  # we asked for it to go; it went
    LocalOrderState.SENDING: 0.4,
    LocalOrderState.UNKNOWN: 0.4,
    LocalOrderState.OPEN: 0.5,  # raised or lowered below by whether it could add exposure
}
_SEV_STALE_EXIT_OPEN = 0.4
_SEV_STALE_PER_EXTRA_MISS = 0.1
_SEV_PARTIAL_FILL = 0.4
_SEV_PHANTOM = 0.6
_SEV_UNTRACKED_FILL = 0.6
_SEV_DRIFT_BASE = 0.5
_SEV_SIDE_FLIP = 1.0
_SEV_MISSING_PROTECTION = 0.9
_SEV_UNDERSIZED_BASE = 0.4
_SEV_ORPHAN_POSITION = {True: 0.5, False: 0.7}  # keyed by "protected"
_SEV_ORPHAN_ORDER = {
    OrphanReason.VENUE_LIQUIDATION_ORDER: 1.0,
    OrphanReason.VENUE_ADL_ORDER: 1.0,
    OrphanReason.VENUE_SETTLEMENT_ORDER: 0.8,
    OrphanReason.FOREIGN_EXIT_ORDER: 0.3,
    OrphanReason.FOREIGN_ORDER: 0.4,
    OrphanReason.PROTECTIVE_FOR_OPEN_POSITION: 0.3,
    OrphanReason.EXIT_ORDER_WRONG_SIDE: 0.3,
    OrphanReason.PROTECTIVE_WITHOUT_POSITION: 0.3,
    OrphanReason.OURS_UNKNOWN_INTENT_ENTRY: 0.8,
    OrphanReason.OURS_CLOSED_INTENT_ENTRY: 0.8,
    OrphanReason.DUPLICATE_ENTRY_FOR_INTENT: 0.9,
    OrphanReason.OURS_KNOWN_INTENT_ENTRY: 0.5,
}
_SEV_ORPHAN_ORDER_OTHER = 0.5


# --------------------------------------------------------------------------- validation helpers


def _finite_float(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CoreValueError(field, f"must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise CoreValueError(field, f"must be finite, got {value!r}")
    return out


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise CoreValueError(field, f"must be a decimal number, got {value!r}")
    try:
        out = Decimal(value)
    except InvalidOperation:
        raise CoreValueError(field, f"must be a decimal number, got {value!r}") from None
    if not out.is_finite():
        raise CoreValueError(field, f"must be finite, got {value!r}")
    return out


def _nonempty(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise CoreValueError(field, f"must be a non-empty string, got {value!r}")
    return value


def _positive_float(_inst: Any, attribute: "attrs.Attribute[float]", value: Any) -> None:
    if _finite_float(value, attribute.name) <= 0:
        raise CoreValueError(attribute.name, f"must be positive, got {value!r}")


def _non_negative_float(_inst: Any, attribute: "attrs.Attribute[float]", value: Any) -> None:
    if _finite_float(value, attribute.name) < 0:
        raise CoreValueError(attribute.name, f"must not be negative, got {value!r}")


def _positive_int(_inst: Any, attribute: "attrs.Attribute[int]", value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CoreValueError(attribute.name, f"must be an integer >= 1, got {value!r}")


def _bool(_inst: Any, attribute: "attrs.Attribute[bool]", value: Any) -> None:
    if not isinstance(value, bool):
        raise CoreValueError(attribute.name, f"must be a bool, got {value!r}")


def _unit_float(_inst: Any, attribute: "attrs.Attribute[float]", value: Any) -> None:
    if not 0.0 <= _finite_float(value, attribute.name) <= 1.0:
        raise CoreValueError(attribute.name, f"must be in [0, 1], got {value!r}")


def _drift_abs(value: Any) -> Decimal:
    out = _decimal(value, "drift_abs_tolerance")
    if out < ZERO:
        raise CoreValueError("drift_abs_tolerance", f"must not be negative, got {value!r}")
    return out


def _drift_rel(value: Any) -> Decimal:
    out = _decimal(value, "drift_rel_tolerance")
    if not ZERO <= out < 1:
        raise CoreValueError("drift_rel_tolerance", f"must be in [0, 1), got {value!r}")
    return out


def _min_coverage(value: Any) -> Decimal:
    out = _decimal(value, "protection_min_coverage")
    if not ZERO < out <= 1:
        raise CoreValueError("protection_min_coverage", f"must be in (0, 1], got {value!r}")
    return out


def _cooldowns(value: Any) -> dict[RepairKind, float]:
    if not isinstance(value, Mapping):
        raise CoreValueError("repair_cooldown_by_kind", "must be a mapping")
    out: dict[RepairKind, float] = {}
    for kind, seconds in value.items():
        try:
            key = RepairKind(kind)
        except ValueError:
            raise CoreValueError(
                "repair_cooldown_by_kind", f"unknown repair kind {kind!r}"
            ) from None
        sec = _finite_float(seconds, "repair_cooldown_by_kind")
        if sec <= 0:
            raise CoreValueError(
                "repair_cooldown_by_kind", f"{key} must be positive, got {seconds!r}"
            )
        out[key] = sec
    return out


# --------------------------------------------------------------------------- config


@attrs.frozen
class ReconcileConfig:
    """Reconciliation thresholds, grace periods and repair bounds.

    Attributes:
        max_snapshot_age_sec: a snapshot taken longer ago than this is stale evidence.
        lag_grace_sec: how far a snapshot may lag: younger orders and position changes are
            not judged against it.
        stale_order_miss_count: consecutive snapshots without one of our believed-live
            orders before it is marked gone (until then it is queried).
        phantom_miss_count: consecutive fresh snapshots showing a believed leg flat before
            it is declared a phantom.
        phantom_grace_sec: and the time those misses must span (seed default 45 s).
        drift_abs_tolerance: size difference tolerated whatever the size.
        drift_rel_tolerance: size difference tolerated as a fraction of the larger size.
        protection_min_coverage: stops must cover at least this fraction of a position.
        protection_grace_sec: a position younger than this is not yet flagged unprotected
            (the protection manager's own TTL applies first).
        count_foreign_stops: count stops with foreign ids as protection (off: their owner
            can cancel them at any time).
        repair_cooldown_sec: at most one repair per (kind, symbol) within this window.
        repair_cooldown_by_kind: per-kind overrides of the cooldown.
        max_repairs_per_pass: at most this many repair actions per reconcile.
        streak_min_severity: mismatches at or above this severity count toward the streak.
    """

    max_snapshot_age_sec: float = attrs.field(default=30.0, validator=_positive_float)
    lag_grace_sec: float = attrs.field(default=8.0, validator=_non_negative_float)
    stale_order_miss_count: int = attrs.field(default=3, validator=_positive_int)
    phantom_miss_count: int = attrs.field(default=3, validator=_positive_int)
    phantom_grace_sec: float = attrs.field(default=45.0, validator=_non_negative_float)
    drift_abs_tolerance: Decimal = attrs.field(default=ZERO, converter=_drift_abs)
    drift_rel_tolerance: Decimal = attrs.field(default=Decimal("0.05"), converter=_drift_rel)
    protection_min_coverage: Decimal = attrs.field(default=Decimal("0.98"), converter=_min_coverage)
    protection_grace_sec: float = attrs.field(default=10.0, validator=_non_negative_float)
    count_foreign_stops: bool = attrs.field(default=False, validator=_bool)
    repair_cooldown_sec: float = attrs.field(default=20.0, validator=_positive_float)
    repair_cooldown_by_kind: dict[RepairKind, float] = attrs.field(
        factory=dict, converter=_cooldowns
    )
    max_repairs_per_pass: int = attrs.field(default=16, validator=_positive_int)
    streak_min_severity: float = attrs.field(default=0.25, validator=_unit_float)

    def cooldown(self, kind: RepairKind) -> float:
        """The cooldown window of one repair kind."""
        return self.repair_cooldown_by_kind.get(kind, self.repair_cooldown_sec)


# --------------------------------------------------------------------------- local view


def _enum(cls: type[_E], value: Any, field: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in cls)
        raise CoreValueError(field, f"must be one of {allowed}, got {value!r}") from None


def _conv_side(value: Any) -> Side:
    return _enum(Side, value, "side")


def _conv_role(value: Any) -> Role:
    return _enum(Role, value, "role")


def _conv_state(value: Any) -> LocalOrderState:
    return _enum(LocalOrderState, value, "state")


def _conv_position_side(value: Any) -> PositionSide:
    return _enum(PositionSide, value, "position_side")


def _conv_signed_quantity(value: Any) -> Decimal:
    return _decimal(value, "quantity")


def _conv_client_order_id(value: Any) -> str:
    return _nonempty(value, "client_order_id")


def _conv_filled_qty(value: Any) -> Decimal:
    return _decimal(value, "filled_qty")


def _conv_intent_id(value: Any) -> str:
    return _nonempty(value, "intent_id")


def _conv_opened_at(value: Any) -> float | None:
    return None if value is None else _finite_float(value, "opened_at")


def _conv_placed_at(value: Any) -> float:
    return _finite_float(value, "placed_at")


def _conv_quantity(value: Any) -> Decimal | None:
    return None if value is None else _decimal(value, "quantity")


def _conv_stop_price(value: Any) -> Decimal | None:
    return None if value is None else _decimal(value, "stop_price")


def _conv_symbol(value: Any) -> str:
    return _nonempty(value, "symbol")


def _conv_updated_at(value: Any) -> float | None:
    return None if value is None else _finite_float(value, "updated_at")


@attrs.frozen
class LocalOrder:
    """One order of ours that we believe may be live, as the actor's state has it.

    Attributes:
        intent_id: the intent the order serves.
        client_order_id: its deterministic client order id.
        symbol: venue symbol.
        side: BUY or SELL.
        role: ENTRY, EXIT, TP or SL.
        quantity: ordered quantity; ``None`` only for close-position stops.
        filled_qty: quantity we have journaled as filled.
        placed_at: when it was sent, on the injected clock.
        state: how far we believe it has got.
        reduce_only: the order is reduce-only.
        close_position: a close-position stop.
        stop_price: trigger price of a conditional order.
        position_side: BOTH in one-way mode, LONG or SHORT in hedge mode.
    """

    intent_id: str = attrs.field(converter=_conv_intent_id)
    client_order_id: str = attrs.field(converter=_conv_client_order_id)
    symbol: str = attrs.field(converter=_conv_symbol)
    side: Side = attrs.field(converter=_conv_side)
    role: Role = attrs.field(converter=_conv_role)
    quantity: Decimal | None = attrs.field(converter=_conv_quantity)
    placed_at: float = attrs.field(converter=_conv_placed_at)
    filled_qty: Decimal = attrs.field(default=ZERO, converter=_conv_filled_qty)
    state: LocalOrderState = attrs.field(default=LocalOrderState.OPEN, converter=_conv_state)
    reduce_only: bool = attrs.field(default=False, validator=_bool)
    close_position: bool = attrs.field(default=False, validator=_bool)
    stop_price: Decimal | None = attrs.field(default=None, converter=_conv_stop_price)
    position_side: PositionSide = attrs.field(
        default=PositionSide.BOTH, converter=_conv_position_side
    )

    def __attrs_post_init__(self) -> None:
        if self.quantity is None:
            if not self.close_position:
                raise CoreValueError("quantity", "is required unless close_position is set")
        elif self.quantity <= ZERO:
            raise CoreValueError("quantity", f"must be positive, got {self.quantity}")
        if self.filled_qty < ZERO:
            raise CoreValueError("filled_qty", f"must not be negative, got {self.filled_qty}")
        if self.quantity is not None and self.filled_qty > self.quantity:
            raise CoreValueError(
                "filled_qty", f"{self.filled_qty} exceeds quantity {self.quantity}"
            )
        if self.stop_price is not None and self.stop_price <= ZERO:
            raise CoreValueError("stop_price", f"must be positive, got {self.stop_price}")

    @property
    def is_exit(self) -> bool:
        """True if the order can only reduce a position (flags, or the hedge-mode leg)."""
        return is_position_reducing(self)

    @property
    def is_protective_stop(self) -> bool:
        """True for a position-reducing stop (role SL or a trigger price)."""
        return self.is_exit and (self.role is Role.SL or self.stop_price is not None)

    @property
    def leg(self) -> tuple[str, PositionSide]:
        """(symbol, position side)."""
        return (self.symbol, self.position_side)


@attrs.frozen
class LocalPosition:
    """One position leg as we believe it.

    Attributes:
        symbol: venue symbol.
        quantity: signed size (negative is short); zero means flat.
        position_side: BOTH in one-way mode, LONG or SHORT in hedge mode.
        opened_at: when the leg opened, if known (grace for phantom and protection checks).
        updated_at: when a fill last changed it, if known (grace for drift checks).
    """

    symbol: str = attrs.field(converter=_conv_symbol)
    quantity: Decimal = attrs.field(converter=_conv_signed_quantity)
    position_side: PositionSide = attrs.field(
        default=PositionSide.BOTH, converter=_conv_position_side
    )
    opened_at: float | None = attrs.field(default=None, converter=_conv_opened_at)
    updated_at: float | None = attrs.field(default=None, converter=_conv_updated_at)

    @property
    def leg(self) -> tuple[str, PositionSide]:
        """(symbol, position side)."""
        return (self.symbol, self.position_side)

    @property
    def last_change(self) -> float | None:
        """The latest known change time (open or fill)."""
        times = [t for t in (self.opened_at, self.updated_at) if t is not None]
        return max(times) if times else None


def _conv_in_flight_quantity(value: Any) -> Decimal:
    out = _decimal(value, "quantity")
    if out <= ZERO:
        raise CoreValueError("quantity", f"must be positive, got {value!r}")
    return out


def _conv_since(value: Any) -> float:
    return _finite_float(value, "since")


@attrs.frozen
class FillInFlight:
    """Executed quantity of one of our orders that the ledger knows of but has not journaled.

    An ack or an order report said the order executed more than its journaled trades add up
    to; the trades follow from the user stream or a REST backfill. Until then the venue's
    position is ahead of ours by this much, which is lag, not drift (module docstring).

    Attributes:
        client_order_id: the order.
        symbol: venue symbol.
        side: the order's side (BUY adds to the leg, SELL takes from it).
        quantity: executed but not journaled; positive.
        since: when the ledger first learned of it, on the clock of the snapshot's
            ``taken_at`` (the grace runs from here).
        position_side: BOTH in one-way mode, LONG or SHORT in hedge mode.
    """

    client_order_id: str = attrs.field(converter=_conv_client_order_id)
    symbol: str = attrs.field(converter=_conv_symbol)
    side: Side = attrs.field(converter=_conv_side)
    quantity: Decimal = attrs.field(converter=_conv_in_flight_quantity)
    since: float = attrs.field(converter=_conv_since)
    position_side: PositionSide = attrs.field(
        default=PositionSide.BOTH, converter=_conv_position_side
    )

    @property
    def signed_quantity(self) -> Decimal:
        """What the fills will add to the leg's signed size once journaled."""
        return self.quantity if self.side is Side.BUY else -self.quantity

    @property
    def leg(self) -> tuple[str, PositionSide]:
        """(symbol, position side)."""
        return (self.symbol, self.position_side)


def _orders(value: Iterable[LocalOrder]) -> tuple[LocalOrder, ...]:
    out = tuple(value)
    seen: set[str] = set()
    for o in out:
        if not isinstance(o, LocalOrder):
            raise CoreValueError("orders", f"must hold LocalOrder records, got {type(o).__name__}")
        if o.client_order_id in seen:
            raise CoreValueError("orders", f"duplicate client order id {o.client_order_id!r}")
        seen.add(o.client_order_id)
    return out


def _positions(value: Iterable[LocalPosition]) -> tuple[LocalPosition, ...]:
    out = tuple(value)
    seen: set[tuple[str, PositionSide]] = set()
    for p in out:
        if not isinstance(p, LocalPosition):
            raise CoreValueError(
                "positions", f"must hold LocalPosition records, got {type(p).__name__}"
            )
        if p.leg in seen:
            raise CoreValueError("positions", f"duplicate position leg {p.leg!r}")
        seen.add(p.leg)
    return out


def _fills_in_flight(value: Iterable[FillInFlight]) -> tuple[FillInFlight, ...]:
    out = tuple(value)
    seen: set[str] = set()
    for f in out:
        if not isinstance(f, FillInFlight):
            raise CoreValueError(
                "fills_in_flight", f"must hold FillInFlight records, got {type(f).__name__}"
            )
        if f.client_order_id in seen:
            raise CoreValueError(
                "fills_in_flight", f"duplicate client order id {f.client_order_id!r}"
            )
        seen.add(f.client_order_id)
    return out


def _known_intents(value: Any) -> dict[str, IntentStanding]:
    if not isinstance(value, Mapping):
        raise CoreValueError("known_intents", "must be a mapping of intent id to standing")
    try:
        return {_nonempty(k, "known_intents"): IntentStanding(v) for k, v in value.items()}
    except ValueError as exc:
        if isinstance(exc, CoreValueError):
            raise
        raise CoreValueError("known_intents", "values must be IntentStanding") from None


def _frozen_ids(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen
class LocalView:
    """Our belief, as the Reconciler actor assembles it from its state.

    Attributes:
        orders: our orders believed possibly live (terminal ones are left out).
        positions: our position legs, flat ones included (a leg that just went flat is
            judged against a snapshot that may lag its exit).
        known_intents: what the ledger knows about intents (by intent id) beyond
            ``orders``: closed intents, open intents whose order is not live. An intent with
            a live risk-increasing order in ``orders`` is ``HAS_LIVE_ORDER`` whatever this says.
        frozen_venue_order_ids: venue order ids already recorded as frozen orphans.
        fills_in_flight: executed quantity the ledger knows of (acks, order reports) whose
            trades are not journaled yet, one record per order (live or terminal).
    """

    orders: tuple[LocalOrder, ...] = attrs.field(default=(), converter=_orders)
    positions: tuple[LocalPosition, ...] = attrs.field(default=(), converter=_positions)
    known_intents: dict[str, IntentStanding] = attrs.field(factory=dict, converter=_known_intents)
    frozen_venue_order_ids: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen_ids)
    fills_in_flight: tuple[FillInFlight, ...] = attrs.field(default=(), converter=_fills_in_flight)

    @property
    def protective_orders(self) -> tuple[LocalOrder, ...]:
        """Our believed-live protective stops."""
        return tuple(o for o in self.orders if o.is_protective_stop)

    @property
    def symbols(self) -> frozenset[str]:
        """Every symbol the view mentions."""
        return frozenset(o.symbol for o in self.orders) | frozenset(
            p.symbol for p in self.positions if p.quantity != ZERO
        )

    def in_flight_by_leg(self) -> dict[tuple[str, PositionSide], list[FillInFlight]]:
        """Fills in flight per leg, oldest first (then by client order id)."""
        out: dict[tuple[str, PositionSide], list[FillInFlight]] = {}
        for f in sorted(self.fills_in_flight, key=lambda f: (f.since, f.client_order_id)):
            out.setdefault(f.leg, []).append(f)
        return out

    def intent_standings(self) -> dict[str, IntentStanding]:
        """What the ledger knows per intent, keyed by intent digest (for orphan decisions)."""
        out = {intent_digest(i): s for i, s in self.known_intents.items()}
        for o in self.orders:
            if not o.is_exit:
                out[intent_digest(o.intent_id)] = IntentStanding.HAS_LIVE_ORDER
        return out


# --------------------------------------------------------------------------- results


def _severity(_inst: Any, attribute: "attrs.Attribute[float]", value: Any) -> None:
    if not 0.0 <= _finite_float(value, attribute.name) <= 1.0:
        raise CoreValueError(attribute.name, f"must be in [0, 1], got {value!r}")


@attrs.frozen
class Mismatch:
    """One disagreement between belief and venue.

    Attributes:
        kind: what disagrees.
        symbol: the symbol, or :data:`ACCOUNT` for account-wide problems.
        severity: in [0, 1]; larger means more unaccounted exposure.
        position_side: the leg, for position and protection kinds.
        client_order_id: the order's client order id, for order kinds.
        intent_id: the intent, when the order is one of ours in the view.
        local_value: our quantity (order remaining, filled, position, or size to protect).
        venue_value: the venue's (``None`` where it has nothing; covered size for
            protection kinds).
        reasons: short tags explaining the finding.
        significant: the reconcile counted it toward its streak (severity at or above
            ``streak_min_severity``); set on the mismatches of a :class:`ReconcileResult`.
    """

    kind: MismatchKind
    symbol: str
    severity: float = attrs.field(validator=_severity)
    position_side: PositionSide = PositionSide.BOTH
    client_order_id: str | None = None
    intent_id: str | None = None
    local_value: Decimal | None = None
    venue_value: Decimal | None = None
    reasons: tuple[str, ...] = ()
    significant: bool = False


@attrs.frozen
class RepairTarget:
    """One thing a repair acts on: an order, a position leg, or both.

    Attributes:
        position_side: the leg.
        client_order_id: the order's client order id, if the target is an order.
        order_id: the venue's order id, where known (needed to cancel foreign orders).
        quantity: SYNC_POSITION: the venue's signed quantity to adopt; PLACE/RESIZE
            protection: the size to cover.
    """

    position_side: PositionSide = PositionSide.BOTH
    client_order_id: str | None = None
    order_id: str | None = None
    quantity: Decimal | None = None


@attrs.frozen
class RepairAction:
    """One bounded repair: a kind, a symbol, and every target of that kind on the symbol.

    Attributes:
        kind: what to do.
        symbol: where.
        targets: the orders or legs, in a fixed order.
        reasons: sorted tags (mismatch kinds and finer reasons) that caused it.
        severity: the largest severity among its causes.
    """

    kind: RepairKind
    symbol: str
    targets: tuple[RepairTarget, ...]
    reasons: tuple[str, ...]
    severity: float = attrs.field(validator=_severity)

    @property
    def key(self) -> tuple[RepairKind, str]:
        """The cooldown key: (kind, symbol)."""
        return (self.kind, self.symbol)


@attrs.frozen
class SkippedRepair:
    """A repair that was planned but held back.

    Attributes:
        action: the repair.
        cause: ``cooldown`` or ``repair_budget``.
        retry_at: when the cooldown allows it again (``None`` for the budget).
    """

    action: RepairAction
    cause: str
    retry_at: float | None = None


@attrs.frozen
class Deferred:
    """Something that could not be judged against this snapshot (counted as ``unknown``).

    Attributes:
        symbol: the symbol.
        reason: why it was deferred (``absent_within_grace``, ``vanished_within_grace``,
            ``phantom_pending``, ``fill_in_flight``, ``local_flat_within_grace``,
            ``protection_fill_in_flight``, ...).
        client_order_id: the order, if it is about one.
        position_side: the leg, if it is about a position.
    """

    symbol: str
    reason: str
    client_order_id: str | None = None
    position_side: PositionSide = PositionSide.BOTH


@attrs.frozen
class ReconcileSummary:
    """Counts for the journal line ``reconcile_summary stale=... orphan=... drift=...``.

    ``unknown`` counts deferred items; ``violations`` counts significant mismatches (those
    that move the streak); ``unprotected`` counts missing plus undersized protection.
    """

    stale: int = 0
    orphan: int = 0
    drift: int = 0
    unknown: int = 0
    violations: int = 0
    phantom: int = 0
    partial: int = 0
    unprotected: int = 0
    repairs: int = 0
    skipped: int = 0
    streak: int = 0
    snapshot_ok: bool = True

    def line(self) -> str:
        """The one-line summary, in a fixed field order."""
        return (
            f"reconcile_summary stale={self.stale} orphan={self.orphan} drift={self.drift} "
            f"unknown={self.unknown} violations={self.violations} phantom={self.phantom} "
            f"partial={self.partial} unprotected={self.unprotected} repairs={self.repairs} "
            f"skipped={self.skipped} streak={self.streak} "
            f"snapshot_ok={'true' if self.snapshot_ok else 'false'}"
        )


@attrs.frozen
class ReconcileResult:
    """What one reconcile found and what it asks the actor to do.

    Attributes:
        now: when it ran.
        taken_at: the snapshot's time (``None`` if there was no snapshot).
        snapshot_ok: the snapshot was usable; if not, nothing else was judged.
        mismatches: sorted by (symbol, kind, client order id, leg).
        repairs: the repairs to perform now, most severe first.
        skipped: repairs held back by cooldown or budget.
        deferred: what could not be judged yet.
        streak: consecutive reconciles with a significant mismatch, this one included.
        clean: usable snapshot and no mismatch at all.
        summary: the counts.
    """

    now: float
    taken_at: float | None
    snapshot_ok: bool
    mismatches: tuple[Mismatch, ...]
    repairs: tuple[RepairAction, ...]
    skipped: tuple[SkippedRepair, ...]
    deferred: tuple[Deferred, ...]
    streak: int
    clean: bool
    summary: ReconcileSummary

    @property
    def mismatched_symbols(self) -> frozenset[str]:
        """Symbols with at least one mismatch (``ACCOUNT`` for account-wide ones)."""
        return frozenset(m.symbol for m in self.mismatches)

    @property
    def max_severity(self) -> float:
        """The largest mismatch severity (0 if clean)."""
        return max((m.severity for m in self.mismatches), default=0.0)


# --------------------------------------------------------------------------- the pass


@attrs.define
class _Plan:
    """Mismatches, deferrals and proposed repairs of one reconcile, before bounding."""

    mismatches: list[Mismatch] = attrs.Factory(list)
    deferred: list[Deferred] = attrs.Factory(list)
    targets: dict[tuple[RepairKind, str], list[RepairTarget]] = attrs.Factory(dict)
    reasons: dict[tuple[RepairKind, str], set[str]] = attrs.Factory(dict)
    severity: dict[tuple[RepairKind, str], float] = attrs.Factory(dict)
    frozen_legs: set[tuple[str, PositionSide]] = attrs.Factory(set)
    #: Legs whose position difference was deferred as our own journal's lag, with the
    #: reason; their protection waits for the same evidence.
    pending_legs: dict[tuple[str, PositionSide], str] = attrs.Factory(dict)
    #: Fetches of fills in flight, per symbol (bounded per order in ``_finish``).
    fetches: dict[str, list[RepairTarget]] = attrs.Factory(dict)

    def add(self, mismatch: Mismatch) -> None:
        self.mismatches.append(mismatch)

    def defer(self, item: Deferred) -> None:
        self.deferred.append(item)

    def repair(self, kind: RepairKind, symbol: str, target: RepairTarget, cause: Mismatch) -> None:
        key = (kind, symbol)
        targets = self.targets.setdefault(key, [])
        if target not in targets:
            targets.append(target)
        self.reasons.setdefault(key, set()).update((str(cause.kind), *cause.reasons))
        self.severity[key] = max(self.severity.get(key, 0.0), cause.severity)

    def fetch(self, symbol: str, target: RepairTarget) -> None:
        targets = self.fetches.setdefault(symbol, [])
        if all(t.client_order_id != target.client_order_id for t in targets):
            targets.append(target)

    def actions(self) -> list[RepairAction]:
        out = [
            RepairAction(
                kind=kind,
                symbol=symbol,
                targets=tuple(sorted(targets, key=_target_key)),
                reasons=tuple(sorted(self.reasons[(kind, symbol)])),
                severity=self.severity[(kind, symbol)],
            )
            for (kind, symbol), targets in self.targets.items()
        ]
        out.sort(key=lambda a: (-a.severity, _REPAIR_PRIORITY[a.kind], a.symbol))
        return out


def _target_key(t: RepairTarget) -> tuple[str, str, str]:
    return (str(t.position_side), t.client_order_id or "", t.order_id or "")


def _mismatch_key(m: Mismatch) -> tuple[str, str, str, str]:
    return (m.symbol, str(m.kind), m.client_order_id or "", str(m.position_side))


# --------------------------------------------------------------------------- the reconciler


@attrs.define
class Reconciler:
    """Reconciles local belief against venue snapshots, remembering what spans calls.

    Args:
        config: thresholds and bounds.
        orphans: the orphan policy used for unknown venue orders and positions.
        prefix: our client-order-id prefix.
    """

    config: ReconcileConfig = attrs.field(factory=ReconcileConfig)
    orphans: OrphansConfig = attrs.field(factory=OrphansConfig)
    prefix: str = attrs.field(default=DEFAULT_PREFIX)
    streak: int = attrs.field(default=0, init=False)
    _order_misses: dict[str, int] = attrs.field(factory=dict, init=False)
    _phantom: dict[tuple[str, PositionSide], tuple[int, float]] = attrs.field(
        factory=dict, init=False
    )
    _last_repair: dict[tuple[RepairKind, str], float] = attrs.field(factory=dict, init=False)
    #: When the fills of an order in flight were last fetched, by client order id.
    _fetched: dict[str, float] = attrs.field(factory=dict, init=False)
    #: When each of our acked orders was first missing from the venue's book (taken_at).
    _vanished_since: dict[str, float] = attrs.field(factory=dict, init=False)
    _last_taken_at: float | None = attrs.field(default=None, init=False)
    _last_now: float | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        parse_client_order_id("", self.prefix)  # validates the prefix, naming the field

    def reconcile(
        self,
        view: LocalView,
        snapshot: AccountSnapshot | None,
        now: float,
        *,
        error: str | None = None,
    ) -> ReconcileResult:
        """Diff ``view`` against ``snapshot`` and plan bounded repairs.

        Args:
            view: our belief.
            snapshot: the venue's account snapshot, or ``None`` if fetching it failed.
            now: the current time on the injected clock (never decreasing between calls).
            error: a short tag for why the snapshot is missing (only with ``snapshot=None``).

        Returns:
            The result; with an unusable snapshot, ``snapshot_ok`` is False and the only
            mismatch is ``snapshot_failed`` or ``snapshot_stale``.

        Raises:
            CoreValueError: if ``now`` goes backwards, the snapshot claims to be from the
                future, or ``error`` is given with a snapshot.
        """
        now = _finite_float(now, "now")
        if self._last_now is not None and now < self._last_now:
            raise CoreValueError("now", f"went backwards: {now} < {self._last_now}")
        if snapshot is not None and error is not None:
            raise CoreValueError("error", "only describes a missing snapshot")
        self._last_now = now
        if snapshot is None:
            return self._unusable(
                view, now, None, MismatchKind.SNAPSHOT_FAILED, error or "snapshot_unavailable"
            )
        taken_at = _finite_float(snapshot.taken_at, "snapshot.taken_at")
        if taken_at > now:
            raise CoreValueError("snapshot.taken_at", f"{taken_at} is after now={now}")
        if self._last_taken_at is not None and taken_at < self._last_taken_at:
            return self._unusable(
                view, now, taken_at, MismatchKind.SNAPSHOT_STALE, "snapshot_out_of_order"
            )
        if now - taken_at > self.config.max_snapshot_age_sec:
            return self._unusable(
                view, now, taken_at, MismatchKind.SNAPSHOT_STALE, "snapshot_too_old"
            )
        fresh = self._last_taken_at is None or taken_at > self._last_taken_at
        self._last_taken_at = taken_at
        plan = _Plan()
        venue_by_coid = _venue_orders_by_coid(snapshot)
        view, vanished = self._with_vanished(view, snapshot, venue_by_coid, taken_at)
        self._check_orders(view, snapshot, venue_by_coid, taken_at, fresh, plan, vanished)
        self._check_orphan_orders(view, snapshot, plan)
        self._check_positions(view, snapshot, taken_at, fresh, plan)
        self._check_protection(view, snapshot, taken_at, plan)
        return self._finish(now, taken_at, plan)

    # ----------------------------------------------------------------- unusable evidence

    def _unusable(
        self,
        view: LocalView,
        now: float,
        taken_at: float | None,
        kind: MismatchKind,
        reason: str,
    ) -> ReconcileResult:
        if kind is MismatchKind.SNAPSHOT_FAILED:
            severity = _SEV_SNAPSHOT_FAILED
        else:
            # Older evidence is worse evidence, up to twice the allowed age.
            age = 0.0 if taken_at is None else now - taken_at
            limit = self.config.max_snapshot_age_sec
            excess = min(1.0, max(0.0, (age - limit) / limit))
            severity = min(1.0, _SEV_SNAPSHOT_STALE + 0.5 * excess)
        significant = severity >= self.config.streak_min_severity
        mismatch = Mismatch(
            kind=kind,
            symbol=ACCOUNT,
            severity=severity,
            reasons=(reason,),
            significant=significant,
        )
        deferred = tuple(Deferred(symbol=s, reason="no_evidence") for s in sorted(view.symbols))
        self.streak += 1
        summary = ReconcileSummary(
            unknown=len(deferred),
            violations=1 if significant else 0,
            streak=self.streak,
            snapshot_ok=False,
        )
        return ReconcileResult(
            now=now,
            taken_at=taken_at,
            snapshot_ok=False,
            mismatches=(mismatch,),
            repairs=(),
            skipped=(),
            deferred=deferred,
            streak=self.streak,
            clean=False,
            summary=summary,
        )

    # ----------------------------------------------------------------- our orders

    def _with_vanished(
        self,
        view: LocalView,
        snapshot: AccountSnapshot,
        venue_by_coid: Mapping[str, VenueOrder],
        taken_at: float,
    ) -> tuple[LocalView, frozenset[str]]:
        """Add the remaining quantity of orders that just left the book as fills in flight.

        An acked order missing from the venue's book most often filled (or was cancelled)
        between the user stream's last report and this snapshot's read, and the report is
        on its way. For ``lag_grace_sec`` from the first snapshot that missed it, its
        remaining quantity counts as a fill in flight (module docstring): a position
        difference it explains is deferred, and the order is fetched rather than judged.
        A difference it does not explain is judged at once; past the grace, the order is
        stale as usual.
        """
        grace = self.config.lag_grace_sec
        reported = {f.client_order_id for f in view.fills_in_flight}
        since: dict[str, float] = {}
        flights: list[FillInFlight] = []
        for lo in view.orders:
            coid = lo.client_order_id
            if not _covers(snapshot, lo.symbol):
                if coid in self._vanished_since:
                    since[coid] = self._vanished_since[coid]
                continue
            if (
                coid in venue_by_coid
                or lo.state not in _ACKED_STATES
                or taken_at - lo.placed_at < grace
            ):
                continue
            first = self._vanished_since.get(coid, taken_at)
            since[coid] = first
            remaining = None if lo.quantity is None else lo.quantity - lo.filled_qty
            if (
                taken_at - first < grace
                and remaining is not None
                and remaining > ZERO
                and coid not in reported
            ):
                flights.append(
                    FillInFlight(
                        client_order_id=coid,
                        symbol=lo.symbol,
                        side=lo.side,
                        quantity=remaining,
                        since=first,
                        position_side=lo.position_side,
                    )
                )
        self._vanished_since = since
        if not flights:
            return view, frozenset()
        widened = attrs.evolve(view, fills_in_flight=(*view.fills_in_flight, *flights))
        return widened, frozenset(f.client_order_id for f in flights)

    def _check_orders(
        self,
        view: LocalView,
        snapshot: AccountSnapshot,
        venue_by_coid: Mapping[str, VenueOrder],
        taken_at: float,
        fresh: bool,
        plan: _Plan,
        vanished: frozenset[str],
    ) -> None:
        cfg = self.config
        in_flight = {f.client_order_id: f for f in view.fills_in_flight}
        missing: set[str] = set()
        for lo in sorted(view.orders, key=lambda o: o.client_order_id):
            if not _covers(snapshot, lo.symbol):
                continue
            vo = venue_by_coid.get(lo.client_order_id)
            if vo is not None:
                # Local ahead of the venue is normal stream-before-REST lag; venue ahead
                # means fills we have not journaled (I10), unless the ledger already knows of
                # them from a report and their trades are still on their way.
                flight = in_flight.get(lo.client_order_id)
                if (
                    vo.filled_qty > lo.filled_qty
                    and flight is not None
                    and vo.filled_qty <= lo.filled_qty + flight.quantity
                    and _within(flight.since, taken_at, cfg.lag_grace_sec)
                ):
                    plan.defer(
                        Deferred(
                            symbol=lo.symbol,
                            reason="fill_in_flight",
                            client_order_id=lo.client_order_id,
                            position_side=lo.position_side,
                        )
                    )
                    plan.fetch(lo.symbol, _order_target(lo, vo))
                elif vo.filled_qty > lo.filled_qty:
                    m = Mismatch(
                        kind=MismatchKind.PARTIAL_FILL_CAUGHT,
                        symbol=lo.symbol,
                        severity=_SEV_PARTIAL_FILL,
                        position_side=lo.position_side,
                        client_order_id=lo.client_order_id,
                        intent_id=lo.intent_id,
                        local_value=lo.filled_qty,
                        venue_value=vo.filled_qty,
                        reasons=("venue_filled_more",),
                    )
                    plan.add(m)
                    plan.repair(RepairKind.QUERY_ORDER, lo.symbol, _order_target(lo, vo), m)
                continue
            if taken_at - lo.placed_at < cfg.lag_grace_sec:
                plan.defer(
                    Deferred(
                        symbol=lo.symbol,
                        reason="absent_within_grace",
                        client_order_id=lo.client_order_id,
                        position_side=lo.position_side,
                    )
                )
                continue
            if lo.client_order_id in vanished:
                # It just left the book: its report (fill or cancel) is likely on the way.
                # Fetch it now; judge it only if it is still unexplained after the grace.
                plan.defer(
                    Deferred(
                        symbol=lo.symbol,
                        reason="vanished_within_grace",
                        client_order_id=lo.client_order_id,
                        position_side=lo.position_side,
                    )
                )
                plan.fetch(lo.symbol, _order_target(lo, None))
                continue
            missing.add(lo.client_order_id)
            if fresh or lo.client_order_id not in self._order_misses:
                self._order_misses[lo.client_order_id] = (
                    self._order_misses.get(lo.client_order_id, 0) + 1
                )
            misses = self._order_misses[lo.client_order_id]
            base = _SEV_STALE[lo.state]
            if lo.state is LocalOrderState.OPEN and lo.is_exit:
                base = _SEV_STALE_EXIT_OPEN
            severity = min(1.0, base + _SEV_STALE_PER_EXTRA_MISS * (misses - 1))
            gone = lo.state is LocalOrderState.CANCELING or misses >= cfg.stale_order_miss_count
            remaining = None if lo.quantity is None else lo.quantity - lo.filled_qty
            m = Mismatch(
                kind=MismatchKind.STALE_LOCAL_ORDER,
                symbol=lo.symbol,
                severity=severity,
                position_side=lo.position_side,
                client_order_id=lo.client_order_id,
                intent_id=lo.intent_id,
                local_value=remaining,
                venue_value=None,
                reasons=("absent_from_venue", f"state_{lo.state.lower()}", f"misses_{misses}"),
            )
            plan.add(m)
            kind = RepairKind.MARK_ORDER_GONE if gone else RepairKind.QUERY_ORDER
            plan.repair(kind, lo.symbol, _order_target(lo, None), m)
        view_orders = {o.client_order_id: o for o in view.orders}
        # Keep counters only for orders still missing, or not covered by this snapshot.
        self._order_misses = {
            coid: n
            for coid, n in self._order_misses.items()
            if coid in missing
            or (coid in view_orders and not _covers(snapshot, view_orders[coid].symbol))
        }

    # ----------------------------------------------------------------- orders we do not know

    def _check_orphan_orders(self, view: LocalView, snapshot: AccountSnapshot, plan: _Plan) -> None:
        known = {o.client_order_id for o in view.orders}
        orphans = [
            o
            for o in snapshot.open_orders
            if o.status.is_open
            and o.client_order_id not in known
            and o.order_id not in view.frozen_venue_order_ids
        ]
        if not orphans:
            return
        ctx = OrphanContext(
            prefix=self.prefix, intents=view.intent_standings(), positions=snapshot.positions
        )
        for d in classify_orders(orphans, ctx, self.orphans):
            assert isinstance(d.subject, VenueOrder)
            vo = d.subject
            m = Mismatch(
                kind=MismatchKind.ORPHAN_VENUE_ORDER,
                symbol=vo.symbol,
                severity=_SEV_ORPHAN_ORDER.get(d.reason, _SEV_ORPHAN_ORDER_OTHER),
                position_side=vo.position_side,
                client_order_id=vo.client_order_id,
                local_value=None,
                venue_value=vo.remaining_qty,
                reasons=(str(d.reason), f"action_{d.action.lower()}", d.policy_source),
            )
            plan.add(m)
            target = RepairTarget(
                position_side=vo.position_side,
                client_order_id=vo.client_order_id,
                order_id=vo.order_id,
            )
            plan.repair(_ORPHAN_REPAIR[d.action], vo.symbol, target, m)

    # ----------------------------------------------------------------- positions

    def _check_positions(
        self,
        view: LocalView,
        snapshot: AccountSnapshot,
        taken_at: float,
        fresh: bool,
        plan: _Plan,
    ) -> None:
        cfg = self.config
        # Flat legs stay in: "flat here, open there" right after an exit is lag to judge.
        local = {p.leg: p for p in view.positions}
        held = {leg for leg, p in local.items() if p.quantity != ZERO}
        venue = _venue_legs(snapshot)
        flights = view.in_flight_by_leg()
        entries: dict[tuple[str, PositionSide], list[LocalOrder]] = {}
        for o in view.orders:
            if not o.is_exit:
                entries.setdefault(o.leg, []).append(o)
        legs = sorted({leg for leg in held if _covers(snapshot, leg[0])} | set(venue))
        missing: set[tuple[str, PositionSide]] = set()
        for leg in legs:
            symbol, side = leg
            lp = local.get(leg)
            lq = lp.quantity if lp is not None else ZERO
            vq = venue.get(leg, ZERO)
            if lq == vq or (lq != ZERO and vq != ZERO and self._tolerated(lq, vq)):
                continue
            young = [
                f for f in flights.get(leg, ()) if _within(f.since, taken_at, cfg.lag_grace_sec)
            ]
            if self._explained_by(lq, vq, young):
                # Our journal is behind an execution it already knows of: lag, not drift.
                plan.defer(Deferred(symbol, "fill_in_flight", position_side=side))
                plan.pending_legs[leg] = "fill_in_flight"
                for f in young:
                    target = RepairTarget(position_side=side, client_order_id=f.client_order_id)
                    plan.fetch(symbol, target)
                continue
            recent = lp is not None and _within(lp.last_change, taken_at, cfg.lag_grace_sec)
            if lq != ZERO and vq == ZERO:
                if recent:
                    plan.defer(Deferred(symbol, "position_absent_within_grace", position_side=side))
                    continue
                missing.add(leg)
                self._phantom_miss(leg, taken_at, fresh, plan, lq)
            elif lq == ZERO:
                if recent:
                    # We went flat (an exit fill) after or just before the snapshot was taken.
                    plan.defer(Deferred(symbol, "local_flat_within_grace", position_side=side))
                    plan.pending_legs[leg] = "local_flat_within_grace"
                    continue
                self._unknown_position(leg, vq, entries.get(leg, []), snapshot, plan)
            else:
                flip = (lq > ZERO) != (vq > ZERO)
                diff = abs(vq - lq)
                larger = max(abs(lq), abs(vq))
                if recent:
                    plan.defer(Deferred(symbol, "drift_within_grace", position_side=side))
                    continue
                ratio = float(diff / larger)
                severity = _SEV_SIDE_FLIP if flip else min(1.0, _SEV_DRIFT_BASE + 0.5 * ratio)
                m = Mismatch(
                    kind=MismatchKind.POSITION_DRIFT,
                    symbol=symbol,
                    severity=severity,
                    position_side=side,
                    local_value=lq,
                    venue_value=vq,
                    reasons=("side_flip",) if flip else ("size_diff",),
                )
                plan.add(m)
                plan.repair(
                    RepairKind.SYNC_POSITION,
                    symbol,
                    RepairTarget(position_side=side, quantity=vq),
                    m,
                )
        # A leg the venue shows again, or that we no longer hold, starts its count afresh.
        self._phantom = {
            leg: state
            for leg, state in self._phantom.items()
            if leg in missing or (leg in held and not _covers(snapshot, leg[0]))
        }

    def _tolerated(self, a: Decimal, b: Decimal) -> bool:
        """Two non-zero sizes of the same sign within the drift tolerance of each other."""
        cfg = self.config
        if (a > ZERO) != (b > ZERO):
            return False
        larger = max(abs(a), abs(b))
        return abs(a - b) <= max(cfg.drift_abs_tolerance, cfg.drift_rel_tolerance * larger)

    def _explained_by(self, local: Decimal, venue: Decimal, young: list[FillInFlight]) -> bool:
        """True if the venue's size is ours plus the first k fills in flight, for some k >= 1.

        Fills in flight are in the order the ledger learned of them, which is the order they
        executed in; a snapshot reflects the executions up to when it was read, so it shows
        a prefix of them (all, or the older ones if it was read before the newest).
        """
        expected = local
        for f in young:
            expected += f.signed_quantity
            if expected == venue or (
                expected != ZERO and venue != ZERO and self._tolerated(expected, venue)
            ):
                return True
        return False

    def _phantom_miss(
        self,
        leg: tuple[str, PositionSide],
        taken_at: float,
        fresh: bool,
        plan: _Plan,
        local_qty: Decimal,
    ) -> None:
        cfg = self.config
        symbol, side = leg
        misses, first = self._phantom.get(leg, (0, taken_at))
        if fresh or leg not in self._phantom:
            misses += 1
        self._phantom[leg] = (misses, first)
        if misses < cfg.phantom_miss_count or taken_at - first < cfg.phantom_grace_sec:
            plan.defer(Deferred(symbol, "phantom_pending", position_side=side))
            return
        m = Mismatch(
            kind=MismatchKind.PHANTOM_POSITION,
            symbol=symbol,
            severity=_SEV_PHANTOM,
            position_side=side,
            local_value=local_qty,
            venue_value=ZERO,
            reasons=("venue_flat", f"misses_{misses}"),
        )
        plan.add(m)
        plan.repair(
            RepairKind.SYNC_POSITION, symbol, RepairTarget(position_side=side, quantity=ZERO), m
        )

    def _unknown_position(
        self,
        leg: tuple[str, PositionSide],
        venue_qty: Decimal,
        entries: list[LocalOrder],
        snapshot: AccountSnapshot,
        plan: _Plan,
    ) -> None:
        symbol, side = leg
        if entries:
            # We have live entry orders on this leg: the position is almost surely their fill,
            # and the fill events are what is missing. Sync, and fetch the fills (I10).
            m = Mismatch(
                kind=MismatchKind.POSITION_DRIFT,
                symbol=symbol,
                severity=_SEV_UNTRACKED_FILL,
                position_side=side,
                local_value=ZERO,
                venue_value=venue_qty,
                reasons=("untracked_fill_of_local_order",),
            )
            plan.add(m)
            plan.repair(
                RepairKind.SYNC_POSITION,
                symbol,
                RepairTarget(position_side=side, quantity=venue_qty),
                m,
            )
            for o in sorted(entries, key=lambda o: o.client_order_id):
                plan.repair(RepairKind.QUERY_ORDER, symbol, _order_target(o, None), m)
            return
        coverage = self._coverage(symbol, side, venue_qty, snapshot)
        protected = coverage.close_position or coverage.ratio >= self.config.protection_min_coverage
        position = VenuePosition(symbol=symbol, quantity=venue_qty, position_side=side)
        d = classify_position(position, protected=protected, config=self.orphans)
        m = Mismatch(
            kind=MismatchKind.ORPHAN_VENUE_POSITION,
            symbol=symbol,
            severity=_SEV_ORPHAN_POSITION[protected],
            position_side=side,
            local_value=ZERO,
            venue_value=venue_qty,
            reasons=(str(d.reason), f"action_{d.action.lower()}", d.policy_source),
        )
        plan.add(m)
        if d.action is OrphanAction.ADOPT:
            target = RepairTarget(position_side=side, quantity=venue_qty)
            plan.repair(RepairKind.SYNC_POSITION, symbol, target, m)
        else:
            plan.frozen_legs.add(leg)
            plan.repair(RepairKind.FREEZE_SYMBOL, symbol, RepairTarget(position_side=side), m)

    # ----------------------------------------------------------------- protection

    def _coverage(
        self, symbol: str, side: PositionSide, qty: Decimal, snapshot: AccountSnapshot
    ) -> Coverage:
        prefix = None if self.config.count_foreign_stops else self.prefix
        return stop_coverage(symbol, side, qty, snapshot.open_orders, prefix=prefix)

    def _check_protection(
        self, view: LocalView, snapshot: AccountSnapshot, taken_at: float, plan: _Plan
    ) -> None:
        cfg = self.config
        local = {p.leg: p for p in view.positions}
        flights = view.in_flight_by_leg()
        for leg, vq in sorted(_venue_legs(snapshot).items()):
            symbol, side = leg
            coverage = self._coverage(symbol, side, vq, snapshot)
            if coverage.close_position or coverage.ratio >= cfg.protection_min_coverage:
                continue
            pending = plan.pending_legs.get(leg)
            lp = local.get(leg)
            lq = lp.quantity if lp is not None else ZERO
            young = [
                f for f in flights.get(leg, ()) if _within(f.since, taken_at, cfg.lag_grace_sec)
            ]
            if pending is None and young and self._explained_by(lq, vq, young):
                # Fills we know of but have not journaled grew the position (within the drift
                # tolerance, so the position check let it pass), or turned it over (our stop
                # and a resting entry both filled: the size is unchanged, the stop gone): the
                # stop is sized from journaled fills and follows them once they are journaled.
                pending = "fill_in_flight"
            if pending is not None:
                # The position itself waits for our journal (fills in flight, or an exit just
                # journaled): the protection manager covers from journaled fills, so its
                # stop for this size cannot exist yet, or is rightly gone.
                plan.defer(Deferred(symbol, f"protection_{pending}", position_side=side))
                continue
            # A new position may have no stop yet, and one that just grew may still have the
            # old stop size: the protection manager gets its grace before we call it a gap.
            changed = (
                None
                if lp is None
                else (lp.opened_at if coverage.covered == ZERO else lp.last_change)
            )
            if _within(changed, taken_at, cfg.protection_grace_sec):
                plan.defer(Deferred(symbol, "protection_within_grace", position_side=side))
                continue
            if any(
                o.leg == leg and _within(o.placed_at, taken_at, cfg.lag_grace_sec)
                for o in view.protective_orders
            ):
                plan.defer(Deferred(symbol, "protection_pending", position_side=side))
                continue
            required = abs(vq)
            # An orphan position frozen by policy is reported, but left for the operator.
            frozen = ("frozen_by_orphan_policy",) if leg in plan.frozen_legs else ()
            if coverage.covered == ZERO:
                m = Mismatch(
                    kind=MismatchKind.MISSING_PROTECTION,
                    symbol=symbol,
                    severity=_SEV_MISSING_PROTECTION,
                    position_side=side,
                    local_value=required,
                    venue_value=ZERO,
                    reasons=("no_protective_stop", *frozen),
                )
                plan.add(m)
                if not frozen:
                    target = RepairTarget(position_side=side, quantity=required)
                    plan.repair(RepairKind.PLACE_PROTECTION, symbol, target, m)
                continue
            shortfall = float(1 - coverage.ratio)
            m = Mismatch(
                kind=MismatchKind.UNDERSIZED_PROTECTION,
                symbol=symbol,
                severity=min(1.0, _SEV_UNDERSIZED_BASE + 0.5 * shortfall),
                position_side=side,
                local_value=required,
                venue_value=coverage.covered,
                reasons=("stop_qty_below_position", *frozen),
            )
            plan.add(m)
            if frozen:
                continue
            # Resize the largest stop; smaller ones stay (reduce-only, so harmless).
            largest = max(coverage.stops, key=lambda o: (o.remaining_qty, o.client_order_id))
            target = RepairTarget(
                position_side=side,
                client_order_id=largest.client_order_id,
                order_id=largest.order_id,
                quantity=required,
            )
            plan.repair(RepairKind.RESIZE_PROTECTION, symbol, target, m)

    # ----------------------------------------------------------------- bounding, streak

    def _finish(self, now: float, taken_at: float, plan: _Plan) -> ReconcileResult:
        cfg = self.config
        issued: list[RepairAction] = []
        skipped: list[SkippedRepair] = []
        for action in plan.actions():
            last = self._last_repair.get(action.key)
            if last is not None and now - last < cfg.cooldown(action.kind):
                skipped.append(SkippedRepair(action, "cooldown", last + cfg.cooldown(action.kind)))
            elif len(issued) >= cfg.max_repairs_per_pass:
                skipped.append(SkippedRepair(action, "repair_budget"))
            else:
                issued.append(action)
                self._last_repair[action.key] = now
        # Forget repair times whose cooldown has passed: they no longer constrain anything.
        self._last_repair = {
            key: t for key, t in self._last_repair.items() if now - t < cfg.cooldown(key[0])
        }
        self._fetch_in_flight(now, plan, issued, skipped)
        mismatches = tuple(
            attrs.evolve(m, significant=m.severity >= cfg.streak_min_severity)
            for m in sorted(plan.mismatches, key=_mismatch_key)
        )
        deferred = tuple(
            sorted(
                plan.deferred,
                key=lambda d: (d.symbol, d.reason, d.client_order_id or "", str(d.position_side)),
            )
        )
        significant = sum(1 for m in mismatches if m.significant)
        clean = not mismatches
        if clean:
            self.streak = 0
        elif significant:
            self.streak += 1
        kinds = [m.kind for m in mismatches]
        summary = ReconcileSummary(
            stale=kinds.count(MismatchKind.STALE_LOCAL_ORDER),
            orphan=kinds.count(MismatchKind.ORPHAN_VENUE_ORDER)
            + kinds.count(MismatchKind.ORPHAN_VENUE_POSITION),
            drift=kinds.count(MismatchKind.POSITION_DRIFT),
            unknown=len(deferred),
            violations=significant,
            phantom=kinds.count(MismatchKind.PHANTOM_POSITION),
            partial=kinds.count(MismatchKind.PARTIAL_FILL_CAUGHT),
            unprotected=kinds.count(MismatchKind.MISSING_PROTECTION)
            + kinds.count(MismatchKind.UNDERSIZED_PROTECTION),
            repairs=len(issued),
            skipped=len(skipped),
            streak=self.streak,
            snapshot_ok=True,
        )
        return ReconcileResult(
            now=now,
            taken_at=taken_at,
            snapshot_ok=True,
            mismatches=mismatches,
            repairs=tuple(issued),
            skipped=tuple(skipped),
            deferred=deferred,
            streak=self.streak,
            clean=clean,
            summary=summary,
        )

    def _fetch_in_flight(
        self,
        now: float,
        plan: _Plan,
        issued: list[RepairAction],
        skipped: list[SkippedRepair],
    ) -> None:
        """Fetch the fills in flight: each order at most once per ``QUERY_ORDER`` cooldown.

        The targets join the symbol's issued ``QUERY_ORDER`` action if there is one (one
        query and backfill serve both); otherwise they form their own action, which neither
        starts nor extends the (kind, symbol) cooldown: the bound is per order, so a second
        entry's fill is never starved by the first one's fetch.
        """
        window = self.config.cooldown(RepairKind.QUERY_ORDER)
        self._fetched = {c: t for c, t in self._fetched.items() if now - t < window}
        for symbol in sorted(plan.fetches):
            targets = [
                t for t in plan.fetches[symbol] if (t.client_order_id or "") not in self._fetched
            ]
            if not targets:
                continue
            index = next(
                (
                    i
                    for i, a in enumerate(issued)
                    if a.kind is RepairKind.QUERY_ORDER and a.symbol == symbol
                ),
                None,
            )
            if index is not None:
                action = issued[index]
                known = {t.client_order_id for t in action.targets}
                merged = [*action.targets, *(t for t in targets if t.client_order_id not in known)]
                issued[index] = attrs.evolve(
                    action,
                    targets=tuple(sorted(merged, key=_target_key)),
                    reasons=tuple(sorted({*action.reasons, "fill_in_flight"})),
                )
            else:
                action = RepairAction(
                    kind=RepairKind.QUERY_ORDER,
                    symbol=symbol,
                    targets=tuple(sorted(targets, key=_target_key)),
                    reasons=("fill_in_flight",),
                    severity=0.0,
                )
                if len(issued) >= self.config.max_repairs_per_pass:
                    skipped.append(SkippedRepair(action, "repair_budget"))
                    continue
                issued.append(action)
            for t in targets:
                self._fetched[t.client_order_id or ""] = now


#: States in which the venue acknowledged the order onto its book.
_ACKED_STATES = frozenset({LocalOrderState.OPEN, LocalOrderState.CANCELING})

_ORPHAN_REPAIR = {
    OrphanAction.ADOPT: RepairKind.ADOPT_ORDER,
    OrphanAction.CANCEL: RepairKind.CANCEL_ORDER,
    OrphanAction.FREEZE: RepairKind.FREEZE_SYMBOL,
}


def _covers(snapshot: AccountSnapshot, symbol: str) -> bool:
    """An empty ``symbols`` set means the snapshot covers the whole account."""
    return not snapshot.symbols or symbol in snapshot.symbols


def _within(t: float | None, taken_at: float, grace: float) -> bool:
    return t is not None and taken_at - t < grace


def _venue_orders_by_coid(snapshot: AccountSnapshot) -> dict[str, VenueOrder]:
    out: dict[str, VenueOrder] = {}
    for o in sorted(snapshot.open_orders, key=lambda o: (o.client_order_id, o.order_id)):
        if o.status.is_open:
            out.setdefault(o.client_order_id, o)
    return out


def _venue_legs(snapshot: AccountSnapshot) -> dict[tuple[str, PositionSide], Decimal]:
    legs: dict[tuple[str, PositionSide], Decimal] = {}
    for p in snapshot.positions:
        key = (p.symbol, p.position_side)
        legs[key] = legs.get(key, ZERO) + p.quantity
    return {leg: q for leg, q in legs.items() if q != ZERO}


def _order_target(lo: LocalOrder, vo: VenueOrder | None) -> RepairTarget:
    return RepairTarget(
        position_side=lo.position_side,
        client_order_id=lo.client_order_id,
        order_id=None if vo is None else vo.order_id,
    )
