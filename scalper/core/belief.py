"""The belief envelope: what the account could hold, given only what the evidence proves.

Theory of operation
-------------------

Local state is a *belief* with explicit uncertainty, and risk is decided against its worst
case (seed 000, "minimal implementable belief envelope"). :class:`BeliefBook` keeps, per
account:

* per position (symbol and position side): an interval ``[lo, hi]`` of the signed position
  and a point estimate inside it (:class:`SymbolBelief`);
* per order: the set of live states it could be in (:class:`LiveState`), an interval of its
  cumulative filled quantity and, derived from both, an interval of the quantity that could
  still fill (:class:`OrderBelief`).

What the envelope claims. It contains every venue state consistent with the evidence
received so far, on one assumption that is *not* the envelope's to check: the user stream
reports what happens to orders (fills, cancels). When that assumption breaks, the evidence
actor says so with :meth:`BeliefBook.on_stream_gap` (and :mod:`scalper.core.evidence` scores
the stream down); the gap widens every order that could have moved, at once.

Rules (I4, I6):

1. **Our own actions widen at once** (:attr:`EvidenceStrength.ACTION`). Sending an order
   makes every state possible (it may be rejected, rest, fill at once, or be expired by the
   venue), so the position interval widens by ``[0, q]`` in the order's direction. Sending a
   cancel adds ``CANCELED``. An ambiguous outcome (timeout, 5xx, -1006/-1007) re-applies the
   widening and flags the order ambiguous.
2. **Weak evidence never narrows** (:attr:`EvidenceStrength.WEAK`): an ack, a reject, a
   cancel response, or a stream order event without a trade. It moves the point estimate,
   records the order id, and may *add* possibilities (an unexpected status, a larger filled
   quantity), but it removes none. A response is a claim, not a fact (I4).
3. **Authoritative evidence narrows** (:attr:`EvidenceStrength.AUTHORITATIVE`):
   * a fill with a trade id: the order exists and filled at least that much (trade ids are
     exactly-once facts, I10);
   * a venue query result by client order id, reflecting some instant at or after
     ``queried_at``;
   * a REST :class:`~scalper.core.model.AccountSnapshot`, reflecting some instant at or
     after ``taken_at``; it must be a causal cut: open orders read before positions.

   An authoritative observation at time ``t`` replaces the live-state set by the observed
   state, advanced by the trades we hold, *plus* everything that may have happened after
   ``t``: a cancel sent less than the absence window before ``t`` may still land, a stream gap
   declared after ``t`` may have hidden fills, and weak reports received after ``t`` may
   describe a later state. Observations older than the latest authority only add lasting
   facts (existence, filled-at-least). Absence needs time: an order missing from a snapshot
   or a query proves nothing until ``recv_window_s + settle_margin_s`` after its last send
   (the gateway refuses a request older than its recvWindow; the margin covers the matching
   engine queue), and a query must say "not found" ``absent_confirmations`` times.
4. **Contradictions widen, never overwrite.** Authoritative evidence that is incompatible
   with the envelope (a terminal order with fewer fills than its trades, a closed order seen
   open) leaves the union of both and a ``contradictions`` tag for the actor to journal.

Positions. A snapshot *anchors* each position it covers: position ``S`` exact at its cut.
Each order then contributes the fills it made after the cut, as an unsigned interval. Orders
sent after the anchor contribute their whole fill interval; orders that existed before it
contribute ``[0, f_hi - y]``, where ``y`` is what surely was in the anchor (trades received
before ``taken_at``, or the filled quantity the snapshot itself listed), because a trade
received after ``taken_at`` may or may not be in the snapshot; orders proven closed before
the cut contribute nothing. The interval sums these, and reduce-only orders are capped: they
can only consume position of the opposite sign that exists or could be created. Hedge-mode
legs are clamped to their sign. :meth:`BeliefBook.widen` adds unexplained uncertainty
(foreign activity, a reconcile contradiction) until the next anchoring snapshot.

Worst case (I6, I8). :meth:`BeliefBook.worst_case_exposure` uses each order's *reach*, the
interval of fills it could still make eventually (up to its full size while it may be live),
so resting entries count in full and exits only where they could flip a position. It is never
below ``max |position|`` over the interval, hence never below ``|point| * price``.

Everything is deterministic; ``now`` must not run backwards.
"""

import enum
from collections.abc import Iterable, Mapping
from decimal import Decimal

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.model import AccountSnapshot, Fill, OrderRequest, VenueOrder, VenueOrderStatus
from scalper.core.types import ZERO, PositionSide, Side

__all__ = [
    "ALL_STATES",
    "NOT_OPEN_STATES",
    "OPEN_STATES",
    "AmbiguousAction",
    "AnchorMode",
    "BeliefBook",
    "BeliefConfig",
    "BeliefUpdate",
    "Effect",
    "EvidenceKind",
    "EvidenceStrength",
    "LiveState",
    "OrderBelief",
    "QtyInterval",
    "ReceivedFill",
    "SymbolBelief",
    "UncertainOrder",
    "WeakReport",
    "WorstCase",
]


class LiveState(enum.StrEnum):
    """What an order could be at the venue, collapsed to what matters for risk.

    Defined over :class:`~scalper.core.model.VenueOrderStatus` plus ``ABSENT``:
    ``REJECTED`` folds into ``ABSENT`` (never rested, never filled) and ``EXPIRED`` /
    ``EXPIRED_IN_MATCH`` fold into ``CANCELED`` (closed before a full fill).
    """

    ABSENT = "ABSENT"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"

    @classmethod
    def from_status(cls, status: VenueOrderStatus) -> "LiveState":
        """Map a venue status to its live state."""
        return _FROM_STATUS[status]

    @property
    def is_open(self) -> bool:
        """True for states in which the order can still fill."""
        return self in OPEN_STATES


_FROM_STATUS = {
    VenueOrderStatus.NEW: LiveState.OPEN,
    VenueOrderStatus.PARTIALLY_FILLED: LiveState.PARTIALLY_FILLED,
    VenueOrderStatus.FILLED: LiveState.FILLED,
    VenueOrderStatus.CANCELED: LiveState.CANCELED,
    VenueOrderStatus.REJECTED: LiveState.ABSENT,
    VenueOrderStatus.EXPIRED: LiveState.CANCELED,
    VenueOrderStatus.EXPIRED_IN_MATCH: LiveState.CANCELED,
}

#: Every state: what a just-sent or ambiguous order could be.
ALL_STATES = frozenset(LiveState)
#: States in which an order can still fill.
OPEN_STATES = frozenset({LiveState.OPEN, LiveState.PARTIALLY_FILLED})
#: What an order missing from a snapshot's open orders (after the absence window) can be.
NOT_OPEN_STATES = frozenset({LiveState.ABSENT, LiveState.FILLED, LiveState.CANCELED})

_FORWARD = {
    LiveState.ABSENT: frozenset({LiveState.ABSENT}),
    LiveState.OPEN: frozenset(
        {LiveState.OPEN, LiveState.PARTIALLY_FILLED, LiveState.FILLED, LiveState.CANCELED}
    ),
    LiveState.PARTIALLY_FILLED: frozenset(
        {LiveState.PARTIALLY_FILLED, LiveState.FILLED, LiveState.CANCELED}
    ),
    LiveState.FILLED: frozenset({LiveState.FILLED}),
    LiveState.CANCELED: frozenset({LiveState.CANCELED}),
}


class EvidenceStrength(enum.StrEnum):
    """How much an update may change the envelope."""

    #: Our own action (send, cancel): widens.
    ACTION = "ACTION"
    #: A claim (ack, response, stream order event): widens or moves the point only.
    WEAK = "WEAK"
    #: A fact (trade, query result, snapshot): may narrow.
    AUTHORITATIVE = "AUTHORITATIVE"


class EvidenceKind(enum.StrEnum):
    """Which book method produced an update."""

    SEND = "SEND"
    CANCEL_SEND = "CANCEL_SEND"
    AMBIGUOUS = "AMBIGUOUS"
    ACK = "ACK"
    STREAM_ORDER = "STREAM_ORDER"
    STREAM_GAP = "STREAM_GAP"
    FILL = "FILL"
    QUERY = "QUERY"
    SNAPSHOT = "SNAPSHOT"
    WIDEN = "WIDEN"

    @property
    def strength(self) -> EvidenceStrength:
        """The strength of this kind of evidence."""
        return _STRENGTH[self]


_STRENGTH = {
    EvidenceKind.SEND: EvidenceStrength.ACTION,
    EvidenceKind.CANCEL_SEND: EvidenceStrength.ACTION,
    EvidenceKind.AMBIGUOUS: EvidenceStrength.ACTION,
    EvidenceKind.ACK: EvidenceStrength.WEAK,
    EvidenceKind.STREAM_ORDER: EvidenceStrength.WEAK,
    EvidenceKind.STREAM_GAP: EvidenceStrength.WEAK,
    EvidenceKind.WIDEN: EvidenceStrength.WEAK,
    EvidenceKind.FILL: EvidenceStrength.AUTHORITATIVE,
    EvidenceKind.QUERY: EvidenceStrength.AUTHORITATIVE,
    EvidenceKind.SNAPSHOT: EvidenceStrength.AUTHORITATIVE,
}


class AmbiguousAction(enum.StrEnum):
    """Which request had an unknown outcome."""

    CREATE = "CREATE"
    CANCEL = "CANCEL"


class Effect(enum.StrEnum):
    """What an update did to the envelope of its subject (order sets, intervals, position)."""

    UNCHANGED = "UNCHANGED"
    WIDENED = "WIDENED"
    NARROWED = "NARROWED"
    #: Neither a superset nor a subset (authoritative news moved it).
    MOVED = "MOVED"


class AnchorMode(enum.StrEnum):
    """How an order's fills relate to its position's anchor snapshot."""

    #: Sent after the anchor (or no anchor yet): all its fills are on top of it.
    POST = "POST"
    #: Existed at the anchor: fills beyond ``anchor_fill`` may or may not be in it.
    PRE = "PRE"
    #: Proven closed before the anchor's cut: all its fills are in it.
    SETTLED = "SETTLED"


def _check_time(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CoreValueError(field, f"must be a number, got {value!r}")
    if value != value or value in (float("inf"), float("-inf")):
        raise CoreValueError(field, f"must be finite, got {value!r}")
    return float(value)


def _check_qty(field: str, value: object, *, positive: bool = False) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise CoreValueError(field, f"must be a finite Decimal, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise CoreValueError(field, f"must be {'positive' if positive else '>= 0'}, got {value}")
    return value


def _check_tag(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise CoreValueError(field, f"must be a non-empty string, got {value!r}")
    return value


@attrs.frozen
class QtyInterval:
    """A closed interval of quantities (signed for positions, non-negative for orders)."""

    lo: Decimal
    hi: Decimal

    def __attrs_post_init__(self) -> None:
        for name in ("lo", "hi"):
            v = getattr(self, name)
            if not isinstance(v, Decimal) or not v.is_finite():
                raise CoreValueError(name, f"must be a finite Decimal, got {v!r}")
        if self.lo > self.hi:
            raise CoreValueError("lo", f"must not exceed hi ({self.hi}), got {self.lo}")

    @property
    def width(self) -> Decimal:
        """``hi - lo``."""
        return self.hi - self.lo

    @property
    def max_abs(self) -> Decimal:
        """The largest absolute value in the interval."""
        return max(abs(self.lo), abs(self.hi))

    def contains(self, value: Decimal) -> bool:
        """True if ``lo <= value <= hi``."""
        return self.lo <= value <= self.hi

    def encloses(self, other: "QtyInterval") -> bool:
        """True if ``other`` lies inside this interval."""
        return self.lo <= other.lo and other.hi <= self.hi


@attrs.frozen
class ReceivedFill:
    """A trade applied to an order, and when we received it (on the injected clock)."""

    trade_id: str
    quantity: Decimal
    received_at: float


@attrs.frozen
class WeakReport:
    """The latest weak claim of one state for an order, kept until authority supersedes it."""

    state: LiveState
    at: float
    filled_qty: Decimal = ZERO


@attrs.frozen
class BeliefConfig:
    """Timing and retention rules of the belief book.

    Attributes:
        recv_window_s: the ``recvWindow`` our signed requests carry (Binance default 5 s).
        settle_margin_s: extra time for a request already inside the matching engine queue.
        absent_confirmations: "not found" query answers after the absence window needed to
            prove an order absent (reliability notes: two, some time apart).
        retain_settled_s: how long settled, closed orders are kept before :meth:`prune`.
    """

    recv_window_s: float = attrs.field(default=5.0)
    settle_margin_s: float = attrs.field(default=5.0)
    absent_confirmations: int = attrs.field(default=2)
    retain_settled_s: float = attrs.field(default=600.0)

    def __attrs_post_init__(self) -> None:
        for name in ("recv_window_s", "settle_margin_s", "retain_settled_s"):
            if _check_time(name, getattr(self, name)) < 0:
                raise CoreValueError(name, f"must be >= 0, got {getattr(self, name)}")
        n: object = self.absent_confirmations
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise CoreValueError("absent_confirmations", f"must be an int >= 1, got {n!r}")

    @property
    def absence_window_s(self) -> float:
        """After ``last send + this``, absence at the venue is evidence of absence."""
        return self.recv_window_s + self.settle_margin_s


@attrs.frozen
class OrderBelief:
    """The envelope of one order: possible live states and filled-quantity bounds.

    Built and replaced by :class:`BeliefBook`; read-only for everyone else. ``quantity`` is
    the order size (for a foreign order known only from its trades, the quantity traded so
    far); ``copies`` counts sends of this client id that could each have created an order.
    """

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    first_seen_at: float
    updated_at: float
    position_side: PositionSide = PositionSide.BOTH
    reduce_only: bool = False
    foreign: bool = False
    states: frozenset[LiveState] = ALL_STATES
    fill_lo: Decimal = ZERO
    fill_hi: Decimal = ZERO
    point_state: LiveState = LiveState.ABSENT
    point_fill: Decimal = ZERO
    order_id: str | None = None
    copies: int = 1
    sent_at: float | None = None
    cancel_sent_at: float | None = None
    gap_at: float | None = None
    auth_at: float | None = None
    exists: bool = False
    final_fill: bool = False
    closed_at: float | None = None
    uncertain_since: float | None = None
    cause: str = ""
    ambiguous: bool = False
    anchor_mode: AnchorMode = AnchorMode.POST
    anchor_fill: Decimal = ZERO
    fills: tuple[ReceivedFill, ...] = ()
    weak: tuple[WeakReport, ...] = ()
    not_found_count: int = 0

    @property
    def key(self) -> tuple[str, PositionSide]:
        """The position this order trades."""
        return (self.symbol, self.position_side)

    @property
    def filled(self) -> QtyInterval:
        """Bounds on the cumulative filled quantity."""
        return QtyInterval(self.fill_lo, self.fill_hi)

    @property
    def max_fill(self) -> Decimal:
        """The most this client id could ever fill (all copies, or more if trades say so)."""
        return max(self.quantity * self.copies, self.fill_hi)

    @property
    def possibly_open(self) -> bool:
        """True if the order may still be able to fill."""
        return bool(self.states & OPEN_STATES)

    @property
    def live(self) -> QtyInterval:
        """Bounds on the quantity that could still fill."""
        if not self.possibly_open:
            return QtyInterval(ZERO, ZERO)
        hi = max(self.max_fill - self.fill_lo, ZERO)
        lo = max(self.quantity - self.fill_hi, ZERO) if self.states <= OPEN_STATES else ZERO
        return QtyInterval(min(lo, hi), hi)

    @property
    def received_qty(self) -> Decimal:
        """Sum of the trades applied to this order."""
        return sum((f.quantity for f in self.fills), ZERO)

    @property
    def contribution(self) -> QtyInterval:
        """Unsigned fills made after the position's anchor (see the module docstring)."""
        if self.anchor_mode is AnchorMode.SETTLED:
            return QtyInterval(ZERO, ZERO)
        if self.anchor_mode is AnchorMode.POST:
            return self.filled
        return QtyInterval(ZERO, max(self.fill_hi - self.anchor_fill, ZERO))

    @property
    def reach(self) -> QtyInterval:
        """Unsigned fills after the anchor this order could eventually have made."""
        now = self.contribution
        if not self.possibly_open:
            return now
        base = ZERO if self.anchor_mode is AnchorMode.POST else self.anchor_fill
        return QtyInterval(now.lo, max(now.hi, self.max_fill - base))

    @property
    def point_contribution(self) -> Decimal:
        """Best estimate of the unsigned fills after the anchor."""
        c = self.contribution
        f = min(max(self.point_fill, self.fill_lo), self.fill_hi)
        if self.anchor_mode is AnchorMode.PRE:
            f -= self.anchor_fill
        return min(max(f, c.lo), c.hi)

    @property
    def is_uncertain(self) -> bool:
        """True if the envelope has more than one member in a way that matters for risk."""
        if self.anchor_mode is AnchorMode.SETTLED and not self.possibly_open:
            return False
        return len(self.states) > 1 or self.fill_lo != self.fill_hi

    def is_create_pending(self, at: float, window_s: float) -> bool:
        """True if the order may still reach the book after time ``at``."""
        return (
            not self.exists
            and LiveState.ABSENT in self.states
            and self.sent_at is not None
            and at < self.sent_at + window_s
        )


@attrs.frozen
class SymbolBelief:
    """The position envelope of one symbol and position side."""

    symbol: str
    position_side: PositionSide
    lo: Decimal
    hi: Decimal
    point: Decimal
    anchored: bool
    anchor_at: float | None
    anchor_qty: Decimal
    widen_reasons: tuple[str, ...] = ()

    @property
    def interval(self) -> QtyInterval:
        """``[lo, hi]``."""
        return QtyInterval(self.lo, self.hi)

    @property
    def width(self) -> Decimal:
        """``hi - lo``: the depth of the envelope."""
        return self.hi - self.lo


@attrs.frozen
class WorstCase:
    """Worst-case exposure of one symbol at one mark price.

    ``long_qty`` / ``short_qty`` are the largest long and short positions the envelope allows
    once every possibly-live order has done its worst; ``worst_qty`` is the larger of the two
    (summed over hedge legs); ``notional = worst_qty * mark_price``.
    """

    symbol: str
    mark_price: Decimal
    long_qty: Decimal
    short_qty: Decimal
    worst_qty: Decimal
    notional: Decimal
    reasons: tuple[str, ...] = ()


@attrs.frozen
class UncertainOrder:
    """One order whose envelope is not a single point, and for how long."""

    client_order_id: str
    symbol: str
    position_side: PositionSide
    states: tuple[LiveState, ...]
    filled: QtyInterval
    live: QtyInterval
    since: float
    age_s: float
    cause: str
    ambiguous: bool


@attrs.frozen
class BeliefUpdate:
    """What one piece of evidence did, for the journal."""

    subject: str
    symbol: str
    evidence: EvidenceKind
    effect: Effect
    reasons: tuple[str, ...] = ()
    contradictions: tuple[str, ...] = ()

    @property
    def strength(self) -> EvidenceStrength:
        """The strength of the evidence."""
        return self.evidence.strength


@attrs.define
class _Position:
    anchor_qty: Decimal = ZERO
    anchor_at: float | None = None
    down: Decimal = ZERO
    up: Decimal = ZERO
    reasons: tuple[str, ...] = ()


def _closure(states: Iterable[LiveState], create_pending: bool) -> frozenset[LiveState]:
    """Everything the states could become without further news, and a pending create."""
    out: set[LiveState] = set()
    for s in states:
        out |= _FORWARD[s]
    if create_pending and LiveState.ABSENT in out:
        out |= ALL_STATES
    return frozenset(out)


def _advance(s: LiveState, fill_lo: Decimal, quantity: Decimal) -> LiveState:
    """Where state ``s`` must be once at least ``fill_lo`` has traded.

    An order believed possibly ``ABSENT`` that turns out to have traded existed after all; if
    its other candidates allow it to be open they supply the open successor, so ``ABSENT``
    itself advances to the closed one (``CANCELED`` after a partial fill).
    """
    if fill_lo >= quantity:
        return LiveState.FILLED
    if fill_lo > 0 and s is LiveState.OPEN:
        return LiveState.PARTIALLY_FILLED
    if fill_lo > 0 and s is LiveState.ABSENT:
        return LiveState.CANCELED
    return s


def _consistent(s: LiveState, lo: Decimal, hi: Decimal, quantity: Decimal) -> bool:
    """Whether state ``s`` is possible with a cumulative fill in ``[lo, hi]``."""
    if s in (LiveState.ABSENT, LiveState.OPEN):
        return lo == 0
    if s is LiveState.PARTIALLY_FILLED:
        return hi > 0 and lo < quantity
    if s is LiveState.FILLED:
        return hi >= quantity
    return lo < quantity


def _filter(
    states: Iterable[LiveState], lo: Decimal, hi: Decimal, quantity: Decimal
) -> frozenset[LiveState]:
    return frozenset(s for s in states if _consistent(s, lo, hi, quantity))


@attrs.frozen
class _View:
    states: frozenset[LiveState]
    intervals: tuple[QtyInterval, ...]


def _effect(before: _View, after: _View) -> Effect:
    wider = before.states <= after.states and all(
        a.encloses(b) for a, b in zip(after.intervals, before.intervals, strict=True)
    )
    narrower = after.states <= before.states and all(
        b.encloses(a) for a, b in zip(after.intervals, before.intervals, strict=True)
    )
    if wider and narrower:
        return Effect.UNCHANGED
    if wider:
        return Effect.WIDENED
    if narrower:
        return Effect.NARROWED
    return Effect.MOVED


def _ordered(states: Iterable[LiveState]) -> tuple[LiveState, ...]:
    order = list(LiveState)
    return tuple(sorted(states, key=order.index))


def _bounds(
    base: QtyInterval, legs: Iterable[tuple[Side, bool, QtyInterval]]
) -> tuple[Decimal, Decimal]:
    """Sum signed leg intervals onto ``base``; reduce-only legs cannot flip the sign.

    Let ``q`` be the final position with the reduce-only sells left out and ``E`` what those
    sells took. Two facts bound the final ``q - E`` from below:

    * ``E`` only consumes long position, which comes from ``base`` or non-reduce-only buys,
      so ``q - E >= low(q) - min(sells_ro, long_mass)``;
    * after the last instant the position was ``>= 0`` no reduce-only sell can fill, so the
      final is ``>= -sells_non_ro``; if it never was, ``E = 0`` and the final is ``>= low(q)``.

    The upper bound mirrors this with reduce-only buys. If contradictory inputs ever cross
    the two bounds, the first (always ordered) pair is used.
    """
    nb_hi = nb_lo = rb_hi = rb_lo = ns_hi = ns_lo = rs_hi = rs_lo = ZERO
    for side, reduce_only, iv in legs:
        if side is Side.BUY and reduce_only:
            rb_lo, rb_hi = rb_lo + iv.lo, rb_hi + iv.hi
        elif side is Side.BUY:
            nb_lo, nb_hi = nb_lo + iv.lo, nb_hi + iv.hi
        elif reduce_only:
            rs_lo, rs_hi = rs_lo + iv.lo, rs_hi + iv.hi
        else:
            ns_lo, ns_hi = ns_lo + iv.lo, ns_hi + iv.hi
    long_mass = max(base.hi, ZERO) + nb_hi
    short_mass = max(-base.lo, ZERO) + ns_hi
    low_q = base.lo - ns_hi + nb_lo + rb_lo
    high_q = base.hi + nb_hi - ns_lo - rs_lo
    loose_lo = low_q - min(rs_hi, max(long_mass, rs_lo))
    loose_hi = high_q + min(rb_hi, max(short_mass, rb_lo))
    lo = max(loose_lo, min(-ns_hi, low_q))
    hi = min(loose_hi, max(nb_hi, high_q))
    if lo > hi:
        return loose_lo, loose_hi
    return lo, hi


def _clamp_leg(ps: PositionSide, lo: Decimal, hi: Decimal) -> tuple[Decimal, Decimal]:
    """Hedge legs keep their sign: LONG never below zero, SHORT never above."""
    if ps is PositionSide.LONG:
        return max(lo, ZERO), max(hi, ZERO)
    if ps is PositionSide.SHORT:
        return min(lo, ZERO), min(hi, ZERO)
    return lo, hi


@attrs.define
class BeliefBook:
    """Per-account belief envelopes: positions by (symbol, position side), orders by client id.

    Every ``on_*`` method applies one piece of evidence and returns what it did as
    :class:`BeliefUpdate` records. ``now`` (seconds on the injected clock) must never
    decrease across calls.
    """

    config: BeliefConfig = attrs.field(factory=BeliefConfig)
    _orders: dict[str, OrderBelief] = attrs.field(init=False, factory=dict)
    _positions: dict[tuple[str, PositionSide], _Position] = attrs.field(init=False, factory=dict)
    _now: float | None = attrs.field(init=False, default=None)

    # -- reading ---------------------------------------------------------------------------

    @property
    def orders(self) -> Mapping[str, OrderBelief]:
        """All tracked orders by client order id (a read-only view)."""
        return dict(self._orders)

    def order(self, client_order_id: str) -> OrderBelief | None:
        """One order's envelope, or None if unknown."""
        return self._orders.get(client_order_id)

    def position_keys(self) -> tuple[tuple[str, PositionSide], ...]:
        """Every (symbol, position side) with a position record, sorted."""
        return tuple(sorted(self._positions))

    def _orders_of(self, key: tuple[str, PositionSide]) -> list[OrderBelief]:
        return [self._orders[c] for c in sorted(self._orders) if self._orders[c].key == key]

    def symbol(self, symbol: str, position_side: PositionSide = PositionSide.BOTH) -> SymbolBelief:
        """The position envelope of one symbol and position side."""
        key = (symbol, position_side)
        pos = self._positions.get(key, _Position())
        orders = self._orders_of(key)
        base = QtyInterval(pos.anchor_qty - pos.down, pos.anchor_qty + pos.up)
        lo, hi = _bounds(base, ((o.side, o.reduce_only, o.contribution) for o in orders))
        lo, hi = _clamp_leg(position_side, lo, hi)
        point = pos.anchor_qty + sum((o.point_contribution * o.side.sign for o in orders), ZERO)
        point = min(max(point, lo), hi)
        return SymbolBelief(
            symbol=symbol,
            position_side=position_side,
            lo=lo,
            hi=hi,
            point=point,
            anchored=pos.anchor_at is not None,
            anchor_at=pos.anchor_at,
            anchor_qty=pos.anchor_qty,
            widen_reasons=pos.reasons,
        )

    def symbols(self) -> tuple[SymbolBelief, ...]:
        """Envelopes of every tracked position, sorted by symbol and side."""
        return tuple(self.symbol(s, ps) for s, ps in self.position_keys())

    def _legs(self, symbol: str) -> list[tuple[str, PositionSide]]:
        return [k for k in self.position_keys() if k[0] == symbol]

    def width(self, symbol: str) -> Decimal:
        """Total width of the symbol's position intervals (all legs): the envelope depth."""
        return sum((self.symbol(*k).width for k in self._legs(symbol)), ZERO)

    def worst_case_exposure(self, symbol: str, mark_price: Decimal) -> WorstCase:
        """The largest absolute position the envelope allows, now or once live orders fill.

        Raises:
            CoreValueError: if ``mark_price`` is not a positive finite Decimal.
        """
        mark_price = _check_qty("mark_price", mark_price, positive=True)
        long_qty = short_qty = worst = ZERO
        reasons: list[str] = []
        for key in self._legs(symbol):
            pos = self._positions[key]
            orders = self._orders_of(key)
            now_env = self.symbol(*key)
            base = QtyInterval(pos.anchor_qty - pos.down, pos.anchor_qty + pos.up)
            lo, hi = _bounds(base, ((o.side, o.reduce_only, o.reach) for o in orders))
            lo, hi = _clamp_leg(key[1], lo, hi)
            lo, hi = min(lo, now_env.lo), max(hi, now_env.hi)
            long_qty += max(hi, ZERO)
            short_qty += max(-lo, ZERO)
            worst += max(abs(lo), abs(hi))
            if pos.anchor_at is None:
                reasons.append(f"unanchored:{key[1]}")
            if pos.reasons:
                reasons.append(f"widened:{key[1]}")
            if any(o.is_uncertain for o in orders):
                reasons.append(f"uncertain_orders:{key[1]}")
            if any(o.possibly_open for o in orders):
                reasons.append(f"live_orders:{key[1]}")
        return WorstCase(
            symbol=symbol,
            mark_price=mark_price,
            long_qty=long_qty,
            short_qty=short_qty,
            worst_qty=worst,
            notional=worst * mark_price,
            reasons=tuple(reasons),
        )

    def uncertain_orders(self, now: float) -> tuple[UncertainOrder, ...]:
        """Orders whose envelope is not a point, oldest uncertainty first."""
        now = _check_time("now", now)
        out = []
        for o in self._orders.values():
            if not o.is_uncertain:
                continue
            since = o.uncertain_since if o.uncertain_since is not None else o.updated_at
            out.append(
                UncertainOrder(
                    client_order_id=o.client_order_id,
                    symbol=o.symbol,
                    position_side=o.position_side,
                    states=_ordered(o.states),
                    filled=o.filled,
                    live=o.live,
                    since=since,
                    age_s=max(now - since, 0.0),
                    cause=o.cause,
                    ambiguous=o.ambiguous,
                )
            )
        out.sort(key=lambda u: (u.since, u.client_order_id))
        return tuple(out)

    # -- bookkeeping -------------------------------------------------------------------------

    def _tick(self, now: float) -> float:
        now = _check_time("now", now)
        if self._now is not None and now < self._now:
            raise CoreValueError("now", f"went backwards: {now} < {self._now}")
        self._now = now
        return now

    def _known(self, client_order_id: str) -> OrderBelief:
        o = self._orders.get(client_order_id)
        if o is None:
            raise CoreValueError("client_order_id", f"unknown order {client_order_id!r}")
        return o

    def _view(self, o: OrderBelief | None, key: tuple[str, PositionSide]) -> _View:
        env = self.symbol(*key).interval
        if o is None:
            return _View(frozenset(), (env,))
        return _View(o.states, (o.filled, o.live, env))

    def _store(self, o: OrderBelief, now: float, cause: str | None) -> OrderBelief:
        """Normalise, track uncertainty, and save an order."""
        if o.fill_hi < o.fill_lo:
            o = attrs.evolve(o, fill_hi=o.fill_lo)
        if o.anchor_mode is AnchorMode.SETTLED and o.possibly_open:
            # Evidence says it may trade again: its future fills are no longer in the anchor.
            o = attrs.evolve(o, anchor_mode=AnchorMode.PRE)
        o = attrs.evolve(o, updated_at=now)
        if o.is_uncertain:
            since = o.uncertain_since if o.uncertain_since is not None else now
            o = attrs.evolve(o, uncertain_since=since, cause=cause or o.cause or "unconfirmed")
        else:
            o = attrs.evolve(o, uncertain_since=None, cause="", ambiguous=False)
        self._orders[o.client_order_id] = o
        self._positions.setdefault(o.key, _Position())
        return o

    def _apply(
        self,
        before: OrderBelief | None,
        after: OrderBelief,
        now: float,
        evidence: EvidenceKind,
        reasons: list[str],
        contradictions: list[str],
        cause: str | None = None,
    ) -> BeliefUpdate:
        view_before = self._view(before, after.key)
        stored = self._store(after, now, cause)
        return BeliefUpdate(
            subject=stored.client_order_id,
            symbol=stored.symbol,
            evidence=evidence,
            # A new order has no "before": judge it by what it did to its position.
            effect=_effect(view_before, self._view(stored if before else None, stored.key)),
            reasons=tuple(reasons),
            contradictions=tuple(contradictions),
        )

    def _new_mode(self, key: tuple[str, PositionSide]) -> AnchorMode:
        """Mode of an order first heard of now that may predate the position's anchor."""
        pos = self._positions.get(key)
        return AnchorMode.PRE if pos is not None and pos.anchor_at is not None else AnchorMode.POST

    # -- actions -----------------------------------------------------------------------------

    def on_order_sent(
        self, request: OrderRequest, now: float, *, quantity: Decimal | None = None
    ) -> BeliefUpdate:
        """We sent (or re-sent) ``request``: every outcome becomes possible at once.

        Args:
            request: the order as sent.
            now: when it was sent.
            quantity: the size bound for a ``close_position`` order (which carries none).

        Raises:
            CoreValueError: without a positive quantity, or if the client id was already used
                for a different order.
        """
        now = self._tick(now)
        qty = _check_qty(
            "quantity", quantity if quantity is not None else request.quantity, positive=True
        )
        _check_tag("client_order_id", request.client_order_id)
        existing = self._orders.get(request.client_order_id)
        reasons = ["sent"]
        if existing is None:
            o = OrderBelief(
                client_order_id=request.client_order_id,
                symbol=request.symbol,
                side=request.side,
                quantity=qty,
                first_seen_at=now,
                updated_at=now,
                position_side=request.position_side,
                reduce_only=request.is_exit,
                states=ALL_STATES,
                fill_hi=qty,
                sent_at=now,
            )
            return self._apply(None, o, now, EvidenceKind.SEND, reasons, [], "in_flight")
        same = (existing.symbol, existing.side, existing.position_side, existing.quantity) == (
            request.symbol,
            request.side,
            request.position_side,
            qty,
        )
        if not same or existing.foreign:
            raise CoreValueError(
                "client_order_id",
                f"{request.client_order_id!r} is already used by a different order",
            )
        copies = existing.copies
        if existing.states & {LiveState.FILLED, LiveState.CANCELED}:
            # The venue accepts a client id again once its order closed: a second order.
            copies += 1
            reasons.append("resend_may_duplicate")
        else:
            reasons.append("resend")
        o = attrs.evolve(existing, copies=copies, sent_at=now, states=ALL_STATES)
        o = attrs.evolve(o, fill_hi=max(o.fill_hi, o.max_fill))
        return self._apply(existing, o, now, EvidenceKind.SEND, reasons, [], "in_flight")

    def on_cancel_sent(self, client_order_id: str, now: float) -> BeliefUpdate:
        """We sent a cancel: ``CANCELED`` becomes possible at once."""
        now = self._tick(now)
        o = self._known(client_order_id)
        new = attrs.evolve(o, cancel_sent_at=now)
        if o.possibly_open or o.is_create_pending(now, self.config.absence_window_s):
            new = attrs.evolve(new, states=o.states | {LiveState.CANCELED})
        return self._apply(
            o, new, now, EvidenceKind.CANCEL_SEND, ["cancel_sent"], [], "cancel_pending"
        )

    def on_ambiguous(
        self, client_order_id: str, now: float, *, action: AmbiguousAction, reason: str
    ) -> BeliefUpdate:
        """A create or cancel had an unknown outcome (timeout, 5xx, -1006/-1007).

        The order is flagged ambiguous until authoritative evidence makes it certain.
        """
        now = self._tick(now)
        _check_tag("reason", reason)
        o = self._known(client_order_id)
        if action is AmbiguousAction.CREATE:
            new = attrs.evolve(o, states=o.states | ALL_STATES, ambiguous=True)
            new = attrs.evolve(new, fill_hi=max(new.fill_hi, new.max_fill))
        else:
            new = attrs.evolve(o, ambiguous=True, cancel_sent_at=o.cancel_sent_at or now)
            if o.possibly_open or o.is_create_pending(now, self.config.absence_window_s):
                new = attrs.evolve(new, states=o.states | {LiveState.CANCELED})
        cause = f"ambiguous_{action.lower()}"
        return self._apply(o, new, now, EvidenceKind.AMBIGUOUS, [cause, reason], [], cause)

    # -- weak evidence -----------------------------------------------------------------------

    def _weak(
        self,
        o: OrderBelief,
        claimed: frozenset[LiveState],
        point: LiveState,
        filled_qty: Decimal,
        now: float,
        order_id: str | None,
    ) -> OrderBelief:
        reports = {r.state: r for r in o.weak}
        for s in claimed:
            prev = reports.get(s)
            z = filled_qty if prev is None else max(prev.filled_qty, filled_qty)
            reports[s] = WeakReport(state=s, at=now, filled_qty=z)
        return attrs.evolve(
            o,
            states=o.states | claimed,
            fill_hi=max(o.fill_hi, filled_qty),
            point_state=point,
            point_fill=max(o.point_fill, filled_qty),
            order_id=order_id or o.order_id,
            weak=tuple(reports[s] for s in _ordered(reports)),
        )

    def on_ack(
        self,
        client_order_id: str,
        now: float,
        *,
        status: VenueOrderStatus | None,
        order_id: str | None = None,
        filled_qty: Decimal | None = None,
    ) -> BeliefUpdate:
        """A definite response to a create or cancel: weak evidence, never narrows (I4).

        Args:
            client_order_id: the order the response is about.
            now: when the response arrived.
            status: the status the response claims; None for "not open" answers such as
                -2011 on cancel (unknown order, which may mean filled).
            order_id: the venue order id, if the response carried one.
            filled_qty: the executed quantity the response claims, if any.
        """
        now = self._tick(now)
        o = self._known(client_order_id)
        z = _check_qty("filled_qty", filled_qty if filled_qty is not None else ZERO)
        if status is None:
            claimed = NOT_OPEN_STATES
            point = (
                LiveState.FILLED
                if o.fill_lo >= o.quantity
                else (LiveState.ABSENT if o.point_state is LiveState.ABSENT else LiveState.CANCELED)
            )
            reasons = ["ack_not_open"]
        else:
            point = LiveState.from_status(status)
            claimed = frozenset({point})
            reasons = [f"ack_{status.lower()}"]
        new = self._weak(o, claimed, point, z, now, order_id)
        return self._apply(o, new, now, EvidenceKind.ACK, reasons, [], "weak_evidence")

    def on_stream_order(self, order: VenueOrder, now: float) -> BeliefUpdate:
        """An order update from the user stream without a trade: weak evidence.

        An update about an order the book does not know registers it as *foreign*: its fills
        may predate the anchor, so it widens the position by up to its filled quantity.
        """
        now = self._tick(now)
        state = LiveState.from_status(order.status)
        z = _check_qty("filled_qty", order.filled_qty)
        o = self._orders.get(order.client_order_id)
        if o is None:
            qty = _check_qty("quantity", max(order.quantity, z), positive=True)
            new = OrderBelief(
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=qty,
                first_seen_at=now,
                updated_at=now,
                position_side=order.position_side,
                reduce_only=order.is_exit,
                foreign=True,
                states=frozenset({state}),
                fill_lo=ZERO,
                fill_hi=z,
                point_state=state,
                point_fill=z,
                order_id=order.order_id,
                anchor_mode=self._new_mode((order.symbol, order.position_side)),
                weak=(WeakReport(state=state, at=now, filled_qty=z),),
            )
            return self._apply(
                None, new, now, EvidenceKind.STREAM_ORDER, ["foreign_order"], [], "foreign"
            )
        new = self._weak(o, frozenset({state}), state, z, now, order.order_id)
        return self._apply(
            o,
            new,
            now,
            EvidenceKind.STREAM_ORDER,
            [f"stream_{order.status.lower()}"],
            [],
            "weak_evidence",
        )

    def on_stream_gap(
        self, now: float, *, reason: str, symbols: Iterable[str] | None = None
    ) -> tuple[BeliefUpdate, ...]:
        """The user stream may have lost events (disconnect, ``listenKeyExpired``).

        Every order that could have traded since its last authoritative observation may now
        be in any state it could have reached, with fills up to its full size.
        """
        now = self._tick(now)
        _check_tag("reason", reason)
        wanted = None if symbols is None else frozenset(symbols)
        window = self.config.absence_window_s
        updates = []
        for cid in sorted(self._orders):
            o = self._orders[cid]
            if wanted is not None and o.symbol not in wanted:
                continue
            pending = o.is_create_pending(now, window)
            if not (o.possibly_open or pending):
                continue
            states = _closure(o.states, pending)
            new = attrs.evolve(o, states=states, gap_at=now)
            if new.possibly_open:
                new = attrs.evolve(new, fill_hi=max(new.fill_hi, new.max_fill))
            updates.append(
                self._apply(
                    o, new, now, EvidenceKind.STREAM_GAP, ["stream_gap", reason], [], "stream_gap"
                )
            )
        return tuple(updates)

    def widen(
        self,
        symbol: str,
        *,
        down: Decimal,
        up: Decimal,
        reason: str,
        now: float,
        position_side: PositionSide = PositionSide.BOTH,
    ) -> BeliefUpdate:
        """Widen a position interval by ``down`` below and ``up`` above until the next anchor.

        For uncertainty the order envelopes cannot express: suspected foreign activity, a
        reconcile contradiction, an operator's caution.
        """
        now = self._tick(now)
        _check_tag("symbol", symbol)
        _check_tag("reason", reason)
        down = _check_qty("down", down)
        up = _check_qty("up", up)
        key = (symbol, position_side)
        before = self._view(None, key)
        pos = self._positions.setdefault(key, _Position())
        pos.down += down
        pos.up += up
        pos.reasons = (*pos.reasons, reason) if reason not in pos.reasons else pos.reasons
        return BeliefUpdate(
            subject=f"{symbol}/{position_side}",
            symbol=symbol,
            evidence=EvidenceKind.WIDEN,
            effect=_effect(before, self._view(None, key)),
            reasons=(reason,),
        )

    # -- authoritative evidence ----------------------------------------------------------------

    def _authoritative(
        self,
        o: OrderBelief,
        observed: frozenset[LiveState],
        at: float,
        filled: Decimal | None,
        exact: bool,
        reasons: list[str],
        contradictions: list[str],
    ) -> OrderBelief:
        """Narrow ``o`` by an observation of its state at (or after) ``at``.

        ``filled`` is the cumulative fill the observation showed (None if unknown); ``exact``
        means the observed state is closed, so that fill is final.
        """
        window = self.config.absence_window_s
        received = o.received_qty
        exists = o.exists or LiveState.ABSENT not in observed
        fill_lo = max(o.fill_lo, received, filled or ZERO)
        if o.auth_at is not None and at < o.auth_at:
            # Older than the authority we hold: keep only facts time cannot undo.
            reasons.append("older_than_authority")
            states = o.states
            if exists and len(states - {LiveState.ABSENT}) > 0:
                states = states - {LiveState.ABSENT}
            return attrs.evolve(
                o, states=states, exists=exists, fill_lo=fill_lo, fill_hi=max(o.fill_hi, fill_lo)
            )
        if exact and filled is not None:
            fill_hi = filled
            if fill_lo > filled:
                contradictions.append("authority_below_trades")
                fill_hi = fill_lo
        elif filled is not None:
            # Open at `at` with `filled` traded: later trades reach us as trade events.
            later = sum((f.quantity for f in o.fills if f.received_at >= at), ZERO)
            fill_hi = min(filled + later, o.max_fill)
        else:
            fill_hi = o.fill_hi
        fill_hi = max(fill_hi, fill_lo)
        cand = set(observed)
        if exists:
            cand.discard(LiveState.ABSENT)
        if o.cancel_sent_at is not None and at < o.cancel_sent_at + window and cand & OPEN_STATES:
            cand.add(LiveState.CANCELED)
            reasons.append("cancel_may_still_land")
        if o.gap_at is not None and at < o.gap_at:
            cand = set(_closure(cand, False))
            reasons.append("gap_after_observation")
            if cand & OPEN_STATES:
                fill_hi = max(fill_hi, o.max_fill)
        for r in o.weak:
            if r.at >= at:
                cand.add(r.state)
                fill_hi = max(fill_hi, r.filled_qty)
        if exists:
            cand.discard(LiveState.ABSENT)
        advanced = {_advance(s, fill_lo, o.quantity) for s in cand}
        new_states = _filter(advanced, fill_lo, fill_hi, o.quantity)
        if not new_states:
            contradictions.append("observation_inconsistent_with_trades")
            new_states = frozenset(advanced) | o.states
        prior = _closure(o.states, o.is_create_pending(at, window))
        if not new_states & prior:
            # The authority describes a state our envelope ruled out: keep both (never a
            # silent overwrite) and widen the fills to cover either story.
            contradictions.append("authority_contradicts_belief")
            new_states = new_states | o.states
            fill_hi = max(fill_hi, o.fill_hi)
            if new_states & OPEN_STATES:
                fill_hi = max(fill_hi, o.max_fill)
        newer = [r for r in o.weak if r.at >= at]
        preferred = [_advance(s, fill_lo, o.quantity) for s in _ordered(observed)]
        if len(observed) > 1:
            preferred.insert(0, _advance(o.point_state, fill_lo, o.quantity))
        if newer:
            preferred.insert(0, max(newer, key=lambda r: r.at).state)
        point = next((s for s in preferred if s in new_states), _ordered(new_states)[0])
        final = exact and filled is not None and new_states <= NOT_OPEN_STATES
        return attrs.evolve(
            o,
            states=new_states,
            exists=exists,
            final_fill=final and fill_hi == fill_lo,
            fill_lo=fill_lo,
            fill_hi=fill_hi,
            point_state=point,
            point_fill=max(fill_lo, filled or ZERO, *(r.filled_qty for r in newer)),
            auth_at=at,
            weak=tuple(newer),
        )

    def on_fill(self, fill: Fill, now: float) -> BeliefUpdate:
        """A trade with a trade id: authoritative, applied exactly once per trade id (I10).

        A trade of an unknown client id registers a foreign order (quantity: what traded so
        far); its fills may predate the anchor, so it widens the position by up to that much.
        """
        now = self._tick(now)
        qty = _check_qty("quantity", fill.quantity, positive=True)
        _check_tag("trade_id", fill.trade_id)
        got = ReceivedFill(trade_id=fill.trade_id, quantity=qty, received_at=now)
        o = self._orders.get(fill.client_order_id)
        if o is None:
            new = OrderBelief(
                client_order_id=fill.client_order_id,
                symbol=fill.symbol,
                side=fill.side,
                quantity=qty,
                first_seen_at=now,
                updated_at=now,
                position_side=fill.position_side,
                foreign=True,
                states=frozenset({LiveState.FILLED}),
                fill_lo=qty,
                fill_hi=qty,
                point_state=LiveState.FILLED,
                point_fill=qty,
                order_id=fill.order_id,
                exists=True,
                anchor_mode=self._new_mode((fill.symbol, fill.position_side)),
                fills=(got,),
            )
            return self._apply(None, new, now, EvidenceKind.FILL, ["foreign_fill"], [], "foreign")
        if any(f.trade_id == fill.trade_id for f in o.fills):
            return BeliefUpdate(
                subject=o.client_order_id,
                symbol=o.symbol,
                evidence=EvidenceKind.FILL,
                effect=Effect.UNCHANGED,
                reasons=("duplicate_trade",),
            )
        if (fill.symbol, fill.side, fill.position_side) != (o.symbol, o.side, o.position_side):
            # The trade cannot be this order's: believe the trade happened, somewhere.
            widened = self.widen(
                fill.symbol,
                down=qty,
                up=qty,
                reason="misattributed_trade",
                now=now,
                position_side=fill.position_side,
            )
            return attrs.evolve(
                widened,
                evidence=EvidenceKind.FILL,
                contradictions=("trade_does_not_match_order",),
            )
        contradictions: list[str] = []
        fills = (*o.fills, got)
        received = o.received_qty + qty
        fill_lo = max(o.fill_lo, received)
        if o.foreign and fill_lo > o.quantity:
            o = attrs.evolve(o, quantity=fill_lo)
        if o.final_fill and not o.possibly_open:
            # A closed order's final fill came from the venue: a trade beyond it is news
            # that the authority did not know.
            if fill_lo > o.fill_hi:
                contradictions.append("trade_beyond_final_fill")
            fill_hi = max(o.fill_hi, fill_lo)
        else:
            # The ceiling counted trades up to its observation; this one may be beyond it.
            fill_hi = max(fill_lo, min(o.fill_hi + qty, o.max_fill))
        if fill_lo > o.quantity * o.copies:
            contradictions.append("overfill")
        advanced = {_advance(s, fill_lo, o.quantity) for s in o.states}
        if o.possibly_open and fill_hi >= o.quantity:
            # The trade may have been the last one.
            advanced.add(LiveState.FILLED)
        states = _filter(advanced, fill_lo, fill_hi, o.quantity) or frozenset(advanced)
        closed_at = o.closed_at
        if not o.foreign and fill_lo >= o.quantity and closed_at is None:
            closed_at = now
        new = attrs.evolve(
            o,
            states=states,
            exists=True,
            fill_lo=fill_lo,
            fill_hi=fill_hi,
            fills=fills,
            point_fill=max(o.point_fill, fill_lo),
            point_state=_advance(o.point_state, fill_lo, o.quantity),
            closed_at=closed_at,
            order_id=o.order_id or fill.order_id,
        )
        return self._apply(o, new, now, EvidenceKind.FILL, ["trade"], contradictions)

    def on_query_result(
        self,
        client_order_id: str,
        order: VenueOrder | None,
        *,
        queried_at: float,
        now: float,
    ) -> BeliefUpdate:
        """The venue's answer to a query by client order id: authoritative.

        Args:
            client_order_id: the order queried.
            order: the venue's record, or None for "order does not exist".
            queried_at: when the query was sent; the answer reflects some later instant.
            now: when the answer arrived.

        A "not found" narrows only once ``absent_confirmations`` answers to queries sent after
        the absence window have said so.
        """
        now = self._tick(now)
        queried_at = _check_time("queried_at", queried_at)
        if queried_at > now:
            raise CoreValueError("queried_at", f"is after now ({now}): {queried_at}")
        o = self._known(client_order_id)
        reasons: list[str] = []
        contradictions: list[str] = []
        if order is None:
            window_end = (o.sent_at or float("-inf")) + self.config.absence_window_s
            if queried_at < window_end:
                reasons.append("not_found_within_window")
                return self._apply(o, o, now, EvidenceKind.QUERY, reasons, contradictions)
            count = o.not_found_count + 1
            new = attrs.evolve(o, not_found_count=count)
            reasons.append(f"not_found:{count}")
            if count < self.config.absent_confirmations:
                return self._apply(o, new, now, EvidenceKind.QUERY, reasons, contradictions)
            if o.exists:
                contradictions.append("existing_order_not_found")
                return self._apply(o, new, now, EvidenceKind.QUERY, reasons, contradictions)
            new = self._authoritative(
                new, frozenset({LiveState.ABSENT}), queried_at, ZERO, True, reasons, contradictions
            )
            if not new.possibly_open:
                new = attrs.evolve(new, closed_at=o.closed_at or now)
            return self._apply(o, new, now, EvidenceKind.QUERY, reasons, contradictions)
        if order.client_order_id != client_order_id:
            raise CoreValueError(
                "order", f"is about {order.client_order_id!r}, not {client_order_id!r}"
            )
        if order.symbol != o.symbol:
            raise CoreValueError("order", f"symbol {order.symbol!r} differs from {o.symbol!r}")
        new = self._observe_listed(o, order, queried_at, reasons, contradictions)
        if not new.possibly_open and not order.status.is_open:
            new = attrs.evolve(new, closed_at=o.closed_at or now)
        return self._apply(
            o,
            new,
            now,
            EvidenceKind.QUERY,
            [f"query_{order.status.lower()}", *reasons],
            contradictions,
        )

    def _observe_listed(
        self,
        o: OrderBelief,
        v: VenueOrder,
        at: float,
        reasons: list[str],
        contradictions: list[str],
    ) -> OrderBelief:
        z = _check_qty("filled_qty", v.filled_qty)
        if v.quantity != o.quantity:
            if o.foreign:
                o = attrs.evolve(o, quantity=max(v.quantity, o.quantity))
            else:
                contradictions.append("quantity_differs")
                o = attrs.evolve(o, quantity=max(v.quantity, o.quantity))
        new = self._authoritative(
            o,
            frozenset({LiveState.from_status(v.status)}),
            at,
            z,
            not v.status.is_open,
            reasons,
            contradictions,
        )
        return attrs.evolve(new, order_id=new.order_id or v.order_id)

    def on_snapshot(self, snapshot: AccountSnapshot, now: float) -> tuple[BeliefUpdate, ...]:
        """Reconcile against a REST snapshot: observe its orders, then anchor its positions.

        The snapshot covers ``snapshot.symbols`` (or, if empty, the symbols it mentions):
        for those, a missing open order is evidence it is not open (once past the absence
        window) and a missing position is zero. A snapshot older than a position's current
        anchor does not re-anchor it.
        """
        now = self._tick(now)
        taken_at = _check_time("taken_at", snapshot.taken_at)
        if taken_at > now:
            raise CoreValueError("taken_at", f"is after now ({now}): {taken_at}")
        covered = set(snapshot.symbols) or (
            {p.symbol for p in snapshot.positions} | {v.symbol for v in snapshot.open_orders}
        )
        listed = {v.client_order_id: v for v in snapshot.open_orders}
        window = self.config.absence_window_s
        updates: list[BeliefUpdate] = []
        for cid in sorted(self._orders):
            o = self._orders[cid]
            if o.symbol not in covered:
                continue
            reasons: list[str] = []
            contradictions: list[str] = []
            v = listed.get(cid)
            if v is not None:
                new = self._observe_listed(o, v, taken_at, reasons, contradictions)
                reasons.insert(0, "listed")
            elif o.sent_at is None or taken_at >= o.sent_at + window:
                new = self._authoritative(
                    o, NOT_OPEN_STATES, taken_at, None, False, reasons, contradictions
                )
                reasons.insert(0, "not_listed")
                if not new.possibly_open and new.closed_at is None:
                    new = attrs.evolve(new, closed_at=taken_at)
            else:
                reasons.append("too_recent_for_absence")
                new = o
            updates.append(self._apply(o, new, now, EvidenceKind.SNAPSHOT, reasons, contradictions))
        for cid in sorted(listed):
            v = listed[cid]
            if cid in self._orders or v.symbol not in covered:
                continue
            z = _check_qty("filled_qty", v.filled_qty)
            state = _advance(LiveState.from_status(v.status), z, v.quantity)
            new = OrderBelief(
                client_order_id=cid,
                symbol=v.symbol,
                side=v.side,
                quantity=_check_qty("quantity", max(v.quantity, z), positive=True),
                first_seen_at=now,
                updated_at=now,
                position_side=v.position_side,
                reduce_only=v.is_exit,
                foreign=True,
                states=frozenset({state}),
                fill_lo=z,
                fill_hi=z,
                point_state=state,
                point_fill=z,
                order_id=v.order_id,
                exists=True,
                auth_at=taken_at,
                anchor_mode=AnchorMode.PRE,
                anchor_fill=z,
            )
            updates.append(
                self._apply(None, new, now, EvidenceKind.SNAPSHOT, ["foreign_order"], [])
            )
        keys = {(p.symbol, p.position_side) for p in snapshot.positions if p.symbol in covered}
        keys |= {k for k in self._positions if k[0] in covered}
        # A covered symbol with nothing listed and nothing tracked is flat: say so.
        keys |= {(s, PositionSide.BOTH) for s in covered if not any(k[0] == s for k in keys)}
        for key in sorted(keys):
            updates.append(self._anchor(key, snapshot, listed, taken_at, now))
        return tuple(updates)

    def _anchor(
        self,
        key: tuple[str, PositionSide],
        snapshot: AccountSnapshot,
        listed: Mapping[str, VenueOrder],
        taken_at: float,
        now: float,
    ) -> BeliefUpdate:
        symbol, ps = key
        subject = f"{symbol}/{ps}"
        before = self._view(None, key)
        pos = self._positions.setdefault(key, _Position())
        if pos.anchor_at is not None and taken_at < pos.anchor_at:
            return BeliefUpdate(
                subject=subject,
                symbol=symbol,
                evidence=EvidenceKind.SNAPSHOT,
                effect=Effect.UNCHANGED,
                reasons=("stale_snapshot",),
            )
        pos.anchor_qty = snapshot.position_qty(symbol, ps)
        pos.anchor_at = taken_at
        pos.down = pos.up = ZERO
        pos.reasons = ()
        for o in self._orders_of(key):
            v = listed.get(o.client_order_id)
            before_anchor = sum((f.quantity for f in o.fills if f.received_at <= taken_at), ZERO)
            if (
                v is None
                and not o.possibly_open
                and o.closed_at is not None
                and o.closed_at <= taken_at
            ):
                new = attrs.evolve(o, anchor_mode=AnchorMode.SETTLED, anchor_fill=o.fill_lo)
            elif v is not None:
                y = min(max(before_anchor, v.filled_qty), o.fill_lo)
                new = attrs.evolve(o, anchor_mode=AnchorMode.PRE, anchor_fill=y)
            else:
                new = attrs.evolve(
                    o, anchor_mode=AnchorMode.PRE, anchor_fill=min(before_anchor, o.fill_lo)
                )
            self._orders[o.client_order_id] = new
        return BeliefUpdate(
            subject=subject,
            symbol=symbol,
            evidence=EvidenceKind.SNAPSHOT,
            effect=_effect(before, self._view(None, key)),
            reasons=("anchored",),
        )

    def prune(self, now: float) -> tuple[str, ...]:
        """Forget settled, closed orders idle for ``retain_settled_s``; return their ids.

        They contribute nothing to any position (their fills are in the anchor), so dropping
        them cannot change an envelope.
        """
        now = self._tick(now)
        gone = sorted(
            cid
            for cid, o in self._orders.items()
            if o.anchor_mode is AnchorMode.SETTLED
            and not o.possibly_open
            and now - o.updated_at >= self.config.retain_settled_s
        )
        for cid in gone:
            del self._orders[cid]
        return tuple(gone)
