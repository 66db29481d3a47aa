"""Order lifecycle and position-belief state machines, written as transition tables.

Theory of operation
-------------------

An exchange order is never *known*; it is *believed*, from evidence that arrives late, twice,
out of order or not at all (I4). This module turns that evidence into one explicit state per
order and per position, and refuses evidence that makes no sense. Two rules, after h11:

* **Rule 1: everything that affects a transition lives in the tables below.**
  :data:`ORDER_TRANSITIONS` maps ``state -> event kind -> next state`` and
  :data:`POSITION_TRANSITIONS` does the same for a symbol's position belief. They are plain
  data: :func:`transitions_as_rows` and :func:`position_transitions_as_rows` export them for
  the docs' diagram generator, and the tests walk them. A (state, kind) pair that is not in a
  table is illegal and raises :class:`TransitionError`; the tracker's state is then unchanged.
* **Rule 2: the trackers add only quantity and time guards, never new edges.**
  :class:`OrderTracker` checks fill arithmetic and discards stale observations; every state it
  ever enters is the table's target for the (state, kind) it was given.

Order states
~~~~~~~~~~~~

``PENDING`` (durable intent, not sent) -> ``SENT`` (create in flight) -> ``LIVE`` (on the book,
no fill) / ``PARTIALLY_FILLED`` (on the book, some fill) -> ``CANCEL_PENDING`` (our cancel in
flight; the order can still fill) -> one of the terminal states ``FILLED``, ``CANCELED``,
``EXPIRED``, ``REJECTED``, ``ABSENT``. Two states carry explicit ignorance ("unknown is a state,
not an exception"):

* ``UNKNOWN``: a create had an ambiguous outcome (timeout, 5xx, -1006/-1007). The order may or
  may not exist. Only a query resolves it, never a resend (I7). A single "not found" (-2013) is
  not proof: the placement may still be in flight. ``PROVEN_ABSENT`` (the caller's proof, e.g.
  not found twice after ``recvWindow`` expired) ends it in ``ABSENT``.
* ``STATUS_UNKNOWN`` (the brief's ``CANCEL_UNKNOWN``, generalized): the order's *existence is
  proven* but whether it is still open is not. It is entered on an ambiguous cancel, on -2011
  ("not open now", which may mean filled), on -4116 (duplicate client id: an open order with our
  id exists), and when an order we believed open is missing from a snapshot or a query. It is a
  separate state from ``UNKNOWN`` because "not found" means something else here: it can never
  prove absence, so ``PROVEN_ABSENT`` is illegal and no new client-id generation can be unlocked
  for an order that existed (I7). Canceling from ``UNKNOWN`` is illegal for the mirror reason: a
  cancel that races an in-flight create answers -2011 and the order lands afterwards.
  What ends it when the venue has forgotten the order (Binance stops answering queries for a
  canceled or expired order without fills after about three days) is ``PROVEN_CLOSED``: the
  caller's proof that the order is closed and nothing more executed (not found by query, not
  on the book, its trades backfilled). It lands in ``CANCELED`` with the executed quantity the
  tracker already knows as the final count, so a trade found later beyond it is still a
  :class:`LateFillError`. It is legal only from ``STATUS_UNKNOWN``: from ``UNKNOWN`` the order
  was never shown to exist (that is ``PROVEN_ABSENT``'s case), and from an open state the last
  evidence says it is working.

``ABSENT`` is terminal and distinct from ``REJECTED``: the venue never said no, we *proved* the
order never reached the book (:class:`scalper.core.ids.ProofKind` ``ABSENT``). A fill for an
``ABSENT`` order is the most serious contradiction this module can report.

Terminal states and contradictions
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~

**Nothing leaves a terminal state**: every table row of a terminal state points back to that
state. Terminal rows exist only for evidence that is *consistent* with the verdict (a late REST
ack, a duplicate cancel ack, -2011 on a filled order, absence from a snapshot, a backfilled
trade, a proof that the order is closed). Venue evidence that *contradicts* a terminal verdict
(open in a snapshot taken after the order closed, a ``FILLED`` trade for a ``CANCELED``
order) raises :class:`ContradictionError`, and a fill that the terminal verdict does not
account for raises its subclass :class:`LateFillError`. The tracker never rewrites a verdict;
the reconciler handles the contradiction with fresh evidence. The fill itself is real: the
caller still journals it and applies it to the position (I10). Local actions on a terminal
order (send, cancel) raise a plain :class:`TransitionError`: they are bugs in the caller, not
news from the venue.

A late fill is normal on an exchange: Binance can answer a cancel before the stream delivers the
trades that happened just before the cancel. Those trades are *covered*: the cancel ack (and the
``CANCELED``/``EXPIRED`` report) carries the executed quantity at close, ``cum_qty``, and a
trade that keeps the journaled total within it is a backfill that the tracker absorbs without
leaving the terminal state. A trade beyond it is a :class:`LateFillError`. The count at close
is final: a later report of a higher count is a :class:`ContradictionError`. Adapters must pass
``executedQty`` on close reports; without it, every backfill after a cancel is (safely) reported
as a contradiction.

Fills (I10)
~~~~~~~~~~~

Fills are keyed by trade id: a repeated trade id with the same quantity is ignored (idempotent,
``duplicate_trade``); with a different quantity it raises :class:`FillError`. The journaled
total ``filled_qty`` never decreases and never exceeds ``quantity``. The venue's own count,
``reported_filled_qty`` (the maximum ``cum_qty`` seen), may run ahead of the journaled trades;
the difference is :attr:`OrderTracker.missing_fill_qty`, which the reconciler backfills. A
``FILL_PARTIAL`` that brings the known total to ``quantity`` is treated as ``FILL_FULL``
(``promoted_to_full``): unique trade ids make the arithmetic authoritative.

Stale observations
~~~~~~~~~~~~~~~~~~

Queries and snapshots describe the order at the moment they were taken (``observed_at``, e.g.
:attr:`scalper.core.model.AccountSnapshot.taken_at`), and snapshots lag the stream. Such an
*observation* that is older than the newest evidence the tracker already applied is ignored
(``stale_observation``). Terminal reports and fills are facts, never stale. An observation of an
order as ``NEW`` while fills are known is behind us and is ignored too (``behind_local_fills``).

Position belief
~~~~~~~~~~~~~~~

:class:`PositionBelief` tracks one symbol (and position side): ``FLAT``, ``OPEN_UNCONFIRMED``
(our fills say open, the venue has not confirmed), ``OPEN_CONFIRMED``, ``CLOSING`` (an exit is
working) and ``CLOSED_UNCONFIRMED`` (our fills say flat, the venue has not confirmed). Local
events are classified by the caller's position accounting; venue events are the reconciler's
verdicts and are authoritative (I4), with surprises tagged ``unexpected_position`` /
``unexpected_flat``. ``EXIT_SENT`` is legal in every state: belief tracking never stands in the
way of an exit (I1).

Rebuild (I5)
~~~~~~~~~~~~

Trackers always start in ``PENDING`` / ``FLAT``; a restarted actor rebuilds one by replaying
the journaled events with their journaled times, which reproduces the same state exactly.
"""

import enum
import math
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.model import Fill, VenueOrder, VenueOrderStatus
from scalper.core.types import ZERO, PositionSide

__all__ = [
    "ORDER_TRANSITIONS",
    "POSITION_SURPRISES",
    "POSITION_TRANSITIONS",
    "TERMINAL_STATES",
    "ContradictionError",
    "FillError",
    "LateFillError",
    "OrderEvent",
    "OrderEventKind",
    "OrderState",
    "OrderTracker",
    "PositionBelief",
    "PositionEvent",
    "PositionEventKind",
    "PositionState",
    "PositionTransition",
    "Transition",
    "TransitionError",
    "event_from_venue_order",
    "event_kind_for_status",
    "position_transitions_as_rows",
    "transitions_as_rows",
]


# --------------------------------------------------------------------------------------------
# Order states, events and the table
# --------------------------------------------------------------------------------------------


class OrderState(enum.StrEnum):
    """Where one exchange order stands, as far as the evidence shows."""

    PENDING = "PENDING"
    SENT = "SENT"
    UNKNOWN = "UNKNOWN"
    LIVE = "LIVE"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    CANCEL_PENDING = "CANCEL_PENDING"
    STATUS_UNKNOWN = "STATUS_UNKNOWN"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    ABSENT = "ABSENT"

    @property
    def is_terminal(self) -> bool:
        """True for states no event can leave."""
        return self in TERMINAL_STATES


#: States that no event leaves.
TERMINAL_STATES: frozenset[OrderState] = frozenset(
    {
        OrderState.FILLED,
        OrderState.CANCELED,
        OrderState.REJECTED,
        OrderState.EXPIRED,
        OrderState.ABSENT,
    }
)


class OrderEventKind(enum.StrEnum):
    """What happened to an order: a local action, a venue answer, a stream update, a snapshot."""

    #: Local: the create request is about to go out.
    SEND = "SEND"
    #: The venue accepted the order (REST ack or stream ``x=NEW``); status NEW.
    ACK = "ACK"
    #: A definitive create rejection (a business error such as -2019, or status REJECTED).
    REJECT = "REJECT"
    #: -4116 on create: an open order with our client id exists.
    DUPLICATE_ID = "DUPLICATE_ID"
    #: A request about this order has an unknown outcome (timeout, 5xx, -1006, -1007).
    AMBIGUOUS_ERROR = "AMBIGUOUS_ERROR"
    #: A query by client id found the order open with status NEW.
    QUERY_FOUND_OPEN = "QUERY_FOUND_OPEN"
    #: A query by client id found the order open with status PARTIALLY_FILLED.
    QUERY_FOUND_PARTIAL = "QUERY_FOUND_PARTIAL"
    #: A query by client id found nothing (-2013). Not proof of absence.
    QUERY_NOT_FOUND = "QUERY_NOT_FOUND"
    #: The caller proved the order never reached the book (e.g. not found twice, recvWindow over).
    PROVEN_ABSENT = "PROVEN_ABSENT"
    #: The caller proved an order that existed is closed with nothing more executed: the venue
    #: no longer knows it (query -2013), no snapshot lists it, and a trade backfill after it
    #: vanished found no unexplained fill (Binance forgets unfilled canceled/expired orders).
    PROVEN_CLOSED = "PROVEN_CLOSED"
    #: A trade that leaves the order open (stream ``x=TRADE X=PARTIALLY_FILLED``, or backfill).
    FILL_PARTIAL = "FILL_PARTIAL"
    #: A trade that completes the order (stream ``x=TRADE X=FILLED``).
    FILL_FULL = "FILL_FULL"
    #: The venue reports status FILLED without a trade (query, RESULT ack).
    VENUE_FILLED = "VENUE_FILLED"
    #: Local: a cancel request is about to go out.
    CANCEL_REQUEST = "CANCEL_REQUEST"
    #: The answer to our cancel: status CANCELED.
    CANCEL_ACK = "CANCEL_ACK"
    #: -2011 on cancel: the order is not open now (filled, canceled or expired: query to learn).
    CANCEL_NOT_OPEN = "CANCEL_NOT_OPEN"
    #: The venue reports CANCELED on its own account (stream, query): countdownCancelAll, STP...
    VENUE_CANCELED = "VENUE_CANCELED"
    #: The venue reports EXPIRED or EXPIRED_IN_MATCH (IOC/FOK leftovers, GTX, GTD, STP).
    EXPIRE = "EXPIRE"
    #: An open-orders snapshot lists the order with status NEW.
    SNAPSHOT_OPEN = "SNAPSHOT_OPEN"
    #: An open-orders snapshot lists the order with status PARTIALLY_FILLED.
    SNAPSHOT_PARTIAL = "SNAPSHOT_PARTIAL"
    #: An open-orders snapshot covering the symbol does not list the order.
    SNAPSHOT_MISSING = "SNAPSHOT_MISSING"


_K = OrderEventKind
_S = OrderState

#: Kinds the caller performs; on a terminal order they are bugs, not contradictions.
_LOCAL_KINDS = frozenset({_K.SEND, _K.CANCEL_REQUEST})
_FILL_KINDS = frozenset({_K.FILL_PARTIAL, _K.FILL_FULL})
#: Point-in-time observations: describe the order when taken, so they can be stale.
_OBSERVATION_KINDS = frozenset(
    {
        _K.QUERY_FOUND_OPEN,
        _K.QUERY_FOUND_PARTIAL,
        _K.QUERY_NOT_FOUND,
        _K.SNAPSHOT_OPEN,
        _K.SNAPSHOT_PARTIAL,
        _K.SNAPSHOT_MISSING,
    }
)
#: Status NEW: by definition nothing has executed.
_NEW_STATUS_KINDS = frozenset({_K.ACK, _K.QUERY_FOUND_OPEN, _K.SNAPSHOT_OPEN})
#: Status PARTIALLY_FILLED: something has executed, so the venue's count is required.
_PARTIAL_STATUS_KINDS = frozenset({_K.QUERY_FOUND_PARTIAL, _K.SNAPSHOT_PARTIAL})
#: Reports that close the order with a final executed quantity.
_CLOSE_REPORT_KINDS = frozenset({_K.CANCEL_ACK, _K.VENUE_CANCELED, _K.EXPIRE})
#: Kinds that may carry the venue's cumulative executed quantity.
_CUM_KINDS = (
    _FILL_KINDS
    | _NEW_STATUS_KINDS
    | _PARTIAL_STATUS_KINDS
    | _CLOSE_REPORT_KINDS
    | {_K.VENUE_FILLED}
)

# The rows shared by every state in which the venue may hold the order open. Each state's row
# below overrides what differs; the overrides are the interesting part.
_OPEN_EVIDENCE: dict[OrderEventKind, OrderState] = {
    _K.FILL_PARTIAL: _S.PARTIALLY_FILLED,
    _K.FILL_FULL: _S.FILLED,
    _K.VENUE_FILLED: _S.FILLED,
    _K.VENUE_CANCELED: _S.CANCELED,
    _K.EXPIRE: _S.EXPIRED,
    _K.QUERY_FOUND_OPEN: _S.LIVE,
    _K.QUERY_FOUND_PARTIAL: _S.PARTIALLY_FILLED,
    _K.SNAPSHOT_OPEN: _S.LIVE,
    _K.SNAPSHOT_PARTIAL: _S.PARTIALLY_FILLED,
}


def _terminal_row(state: OrderState, *kinds: OrderEventKind) -> dict[OrderEventKind, OrderState]:
    # Every terminal row is a self-loop: consistent evidence is absorbed, nothing leaves.
    return dict.fromkeys(kinds, state)


_ORDER_TABLE: dict[OrderState, dict[OrderEventKind, OrderState]] = {
    _S.PENDING: {
        _K.SEND: _S.SENT,
        # Not sent yet, so not on the book: absence is expected.
        _K.SNAPSHOT_MISSING: _S.PENDING,
    },
    _S.SENT: {
        **_OPEN_EVIDENCE,
        _K.ACK: _S.LIVE,
        _K.REJECT: _S.REJECTED,
        _K.DUPLICATE_ID: _S.STATUS_UNKNOWN,
        _K.AMBIGUOUS_ERROR: _S.UNKNOWN,
        # E.g. the connection was refused: the request provably never left.
        _K.PROVEN_ABSENT: _S.ABSENT,
        # In flight: absence proves nothing yet.
        _K.QUERY_NOT_FOUND: _S.SENT,
        _K.SNAPSHOT_MISSING: _S.SENT,
    },
    _S.UNKNOWN: {
        **_OPEN_EVIDENCE,
        _K.ACK: _S.LIVE,
        _K.REJECT: _S.REJECTED,
        _K.DUPLICATE_ID: _S.STATUS_UNKNOWN,
        _K.AMBIGUOUS_ERROR: _S.UNKNOWN,
        _K.QUERY_NOT_FOUND: _S.UNKNOWN,
        _K.SNAPSHOT_MISSING: _S.UNKNOWN,
        _K.PROVEN_ABSENT: _S.ABSENT,
    },
    _S.LIVE: {
        **_OPEN_EVIDENCE,
        _K.ACK: _S.LIVE,
        _K.AMBIGUOUS_ERROR: _S.LIVE,
        _K.CANCEL_REQUEST: _S.CANCEL_PENDING,
        # Believed open, venue no longer shows it: closed somehow, query to learn how.
        _K.QUERY_NOT_FOUND: _S.STATUS_UNKNOWN,
        _K.SNAPSHOT_MISSING: _S.STATUS_UNKNOWN,
    },
    _S.PARTIALLY_FILLED: {
        **_OPEN_EVIDENCE,
        _K.ACK: _S.PARTIALLY_FILLED,
        _K.AMBIGUOUS_ERROR: _S.PARTIALLY_FILLED,
        _K.CANCEL_REQUEST: _S.CANCEL_PENDING,
        # The venue's view is behind our fills, but it agrees the order is open.
        _K.QUERY_FOUND_OPEN: _S.PARTIALLY_FILLED,
        _K.SNAPSHOT_OPEN: _S.PARTIALLY_FILLED,
        _K.QUERY_NOT_FOUND: _S.STATUS_UNKNOWN,
        _K.SNAPSHOT_MISSING: _S.STATUS_UNKNOWN,
    },
    _S.CANCEL_PENDING: {
        **_OPEN_EVIDENCE,
        # Fills race the cancel: normal, the order stays cancel-pending until the venue answers.
        _K.FILL_PARTIAL: _S.CANCEL_PENDING,
        _K.QUERY_FOUND_OPEN: _S.CANCEL_PENDING,
        _K.QUERY_FOUND_PARTIAL: _S.CANCEL_PENDING,
        _K.SNAPSHOT_OPEN: _S.CANCEL_PENDING,
        _K.SNAPSHOT_PARTIAL: _S.CANCEL_PENDING,
        _K.ACK: _S.CANCEL_PENDING,
        _K.CANCEL_REQUEST: _S.CANCEL_PENDING,
        _K.CANCEL_ACK: _S.CANCELED,
        # The cancel's outcome is unknown, or the venue says "not open now": query.
        _K.AMBIGUOUS_ERROR: _S.STATUS_UNKNOWN,
        _K.CANCEL_NOT_OPEN: _S.STATUS_UNKNOWN,
        _K.QUERY_NOT_FOUND: _S.STATUS_UNKNOWN,
        _K.SNAPSHOT_MISSING: _S.STATUS_UNKNOWN,
    },
    _S.STATUS_UNKNOWN: {
        **_OPEN_EVIDENCE,
        # A trade says what the status *was*, not what it is: account for it, stay unknown.
        _K.FILL_PARTIAL: _S.STATUS_UNKNOWN,
        _K.ACK: _S.STATUS_UNKNOWN,
        _K.DUPLICATE_ID: _S.STATUS_UNKNOWN,
        _K.AMBIGUOUS_ERROR: _S.STATUS_UNKNOWN,
        _K.QUERY_NOT_FOUND: _S.STATUS_UNKNOWN,
        _K.SNAPSHOT_MISSING: _S.STATUS_UNKNOWN,
        _K.CANCEL_NOT_OPEN: _S.STATUS_UNKNOWN,
        _K.CANCEL_REQUEST: _S.CANCEL_PENDING,
        _K.CANCEL_ACK: _S.CANCELED,
        # Existed, and now proven closed with no further fill (canceled or expired: the venue
        # no longer says which). The executed quantity known now is final.
        _K.PROVEN_CLOSED: _S.CANCELED,
    },
    _S.FILLED: _terminal_row(
        _S.FILLED,
        _K.ACK,
        _K.AMBIGUOUS_ERROR,
        _K.QUERY_NOT_FOUND,
        _K.SNAPSHOT_MISSING,
        _K.CANCEL_NOT_OPEN,
        _K.PROVEN_CLOSED,
        _K.VENUE_FILLED,
        # Backfilled trades of a filled order (bounded by quantity).
        _K.FILL_PARTIAL,
        _K.FILL_FULL,
    ),
    _S.CANCELED: _terminal_row(
        _S.CANCELED,
        _K.ACK,
        _K.AMBIGUOUS_ERROR,
        _K.QUERY_NOT_FOUND,
        _K.SNAPSHOT_MISSING,
        _K.CANCEL_NOT_OPEN,
        _K.PROVEN_CLOSED,
        _K.CANCEL_ACK,
        _K.VENUE_CANCELED,
        # Only trades covered by the executed quantity at cancel; see LateFillError.
        _K.FILL_PARTIAL,
    ),
    _S.EXPIRED: _terminal_row(
        _S.EXPIRED,
        _K.ACK,
        _K.AMBIGUOUS_ERROR,
        _K.QUERY_NOT_FOUND,
        _K.SNAPSHOT_MISSING,
        _K.CANCEL_NOT_OPEN,
        _K.PROVEN_CLOSED,
        _K.EXPIRE,
        _K.FILL_PARTIAL,
    ),
    _S.REJECTED: _terminal_row(
        _S.REJECTED,
        _K.REJECT,
        _K.AMBIGUOUS_ERROR,
        _K.QUERY_NOT_FOUND,
        _K.SNAPSHOT_MISSING,
        _K.PROVEN_ABSENT,
    ),
    _S.ABSENT: _terminal_row(
        _S.ABSENT,
        _K.PROVEN_ABSENT,
        _K.AMBIGUOUS_ERROR,
        _K.QUERY_NOT_FOUND,
        _K.SNAPSHOT_MISSING,
    ),
}

#: The order lifecycle: ``ORDER_TRANSITIONS[state][event_kind] -> next state`` (read-only).
ORDER_TRANSITIONS: Mapping[OrderState, Mapping[OrderEventKind, OrderState]] = MappingProxyType(
    {state: MappingProxyType(row) for state, row in _ORDER_TABLE.items()}
)


def transitions_as_rows() -> tuple[tuple[str, str, str], ...]:
    """Export the order table as ``(state, event_kind, next_state)`` rows, in enum order.

    This is what a docs generator renders; it is derived from :data:`ORDER_TRANSITIONS` and
    nothing else.
    """
    return tuple(
        (str(state), str(kind), str(ORDER_TRANSITIONS[state][kind]))
        for state in OrderState
        for kind in OrderEventKind
        if kind in ORDER_TRANSITIONS[state]
    )


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class TransitionError(CoreValueError):
    """An event that is illegal in the current state. The tracker is left unchanged.

    Attributes:
        state: the state the event was applied to.
        event: the rejected event.
        message: why it was rejected.
    """

    def __init__(
        self,
        state: "OrderState | PositionState",
        event: "OrderEvent | PositionEvent",
        message: str,
    ) -> None:
        super().__init__("event", f"{event.kind} in {state}: {message}")
        self.state = state
        self.event = event
        self.message = message


class ContradictionError(TransitionError):
    """Venue evidence contradicts a terminal verdict. The reconciler must resolve it."""


class LateFillError(ContradictionError):
    """A trade for a terminal order that its closing report does not account for.

    The trade is real: journal it and apply it to the position (I10); then reconcile.
    """


class FillError(TransitionError):
    """Fill arithmetic that cannot be true: an overfill, or a trade id reused with another qty."""


# --------------------------------------------------------------------------------------------
# Events and transitions
# --------------------------------------------------------------------------------------------


def _check_qty(field: str, value: Decimal | None, *, positive: bool) -> None:
    if value is None:
        return
    if not value.is_finite():
        raise CoreValueError(field, f"must be finite, got {value}")
    if positive and value <= ZERO:
        raise CoreValueError(field, f"must be positive, got {value}")
    if value < ZERO:
        raise CoreValueError(field, f"must not be negative, got {value}")


def _check_time(field: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise CoreValueError(field, f"must be finite, got {value}")


@attrs.frozen
class OrderEvent:
    """One piece of evidence (or one local action) about one order.

    Payload rules, checked at construction (:class:`CoreValueError` names the field):

    * fills (``FILL_PARTIAL``, ``FILL_FULL``) need ``trade_id`` and a positive ``qty``; no
      other kind may carry them;
    * observations (queries and snapshots) need ``observed_at``, when they were taken; no
      other kind may carry it, because only observations can be stale;
    * ``cum_qty``, the venue's cumulative executed quantity, is required and positive for
      PARTIALLY_FILLED observations, zero if given for status-NEW kinds, and allowed only on
      kinds that report a status.

    Attributes:
        kind: what happened.
        trade_id: the venue's trade id (fills).
        qty: the trade's quantity (fills).
        cum_qty: the venue's executed quantity for the whole order, if reported.
        observed_at: when a query or snapshot was taken, on the injected clock.
        detail: a short tag for the journal (an error code, a source), free text.
    """

    kind: OrderEventKind
    trade_id: str | None = None
    qty: Decimal | None = None
    cum_qty: Decimal | None = None
    observed_at: float | None = None
    detail: str = ""

    def __attrs_post_init__(self) -> None:
        is_fill = self.kind in _FILL_KINDS
        if is_fill:
            if not self.trade_id:
                raise CoreValueError("trade_id", f"is required for {self.kind}")
            if self.qty is None:
                raise CoreValueError("qty", f"is required for {self.kind}")
        elif self.trade_id is not None or self.qty is not None:
            raise CoreValueError("trade_id", f"only fills carry a trade, not {self.kind}")
        _check_qty("qty", self.qty, positive=True)
        _check_qty("cum_qty", self.cum_qty, positive=False)
        if self.cum_qty is not None and self.kind not in _CUM_KINDS:
            raise CoreValueError("cum_qty", f"{self.kind} does not report an executed quantity")
        if self.kind in _NEW_STATUS_KINDS and self.cum_qty is not None and self.cum_qty != ZERO:
            raise CoreValueError("cum_qty", f"{self.kind} is status NEW, got {self.cum_qty}")
        if self.kind in _PARTIAL_STATUS_KINDS and (self.cum_qty is None or self.cum_qty <= ZERO):
            raise CoreValueError("cum_qty", f"{self.kind} needs the positive executed quantity")
        if self.kind in _OBSERVATION_KINDS:
            if self.observed_at is None:
                raise CoreValueError("observed_at", f"is required for {self.kind}")
            _check_time("observed_at", self.observed_at)
        elif self.observed_at is not None:
            raise CoreValueError("observed_at", f"only observations carry it, not {self.kind}")

    @classmethod
    def from_fill(cls, fill: Fill, *, full: bool, cum_qty: Decimal | None = None) -> "OrderEvent":
        """The fill event for one venue trade.

        Args:
            fill: the trade.
            full: True if the venue marked the order FILLED with this trade.
            cum_qty: the order's executed quantity after the trade (stream ``z``), if known.
        """
        return cls(
            kind=OrderEventKind.FILL_FULL if full else OrderEventKind.FILL_PARTIAL,
            trade_id=fill.trade_id,
            qty=fill.quantity,
            cum_qty=cum_qty,
        )


@attrs.frozen
class Transition:
    """What one event did to one order tracker: the record an actor journals.

    Attributes:
        event: the event as given.
        from_state: the state before.
        to_state: the state after (equal to ``from_state`` for self-loops and ignored events).
        at: the injected-clock time it was applied.
        applied: False if the event was ignored (duplicate trade, stale observation).
        reason: why: ``applied``, ``promoted_to_full``, ``backfill``, ``duplicate_trade``,
            ``stale_observation`` or ``behind_local_fills``.
        effective_kind: the kind the table was consulted with (a partial fill completing the
            order is looked up as ``FILL_FULL``).
    """

    event: OrderEvent
    from_state: OrderState
    to_state: OrderState
    at: float
    applied: bool
    reason: str
    effective_kind: OrderEventKind

    @property
    def changed(self) -> bool:
        """True if the state changed."""
        return self.from_state is not self.to_state


# --------------------------------------------------------------------------------------------
# Order tracker
# --------------------------------------------------------------------------------------------


def _positive_finite(_inst: object, attribute: "attrs.Attribute[Decimal]", value: object) -> None:
    # ``value`` is typed loosely on purpose: a float quantity must fail here, not later.
    if not isinstance(value, Decimal) or not value.is_finite() or value <= ZERO:
        raise CoreValueError(attribute.name, f"must be a positive finite Decimal, got {value!r}")


@attrs.define
class OrderTracker:
    """The belief about one exchange order, driven through :data:`ORDER_TRANSITIONS`.

    Mutable but only through :meth:`apply`, which either applies an event completely or raises
    and leaves every field unchanged.

    Attributes:
        quantity: the order quantity.
        client_order_id: the order's client id, for error messages and journaling.
        state: the current state (starts at ``PENDING``).
        filled_qty: the sum of the distinct trades applied (never decreases).
        reported_filled_qty: the highest executed quantity the venue has reported.
        evidence_at: the time of the newest evidence applied (observations older are stale).
        history: the applied transitions, oldest first.
    """

    quantity: Decimal = attrs.field(validator=_positive_finite)
    client_order_id: str = ""
    state: OrderState = attrs.field(default=OrderState.PENDING, init=False)
    filled_qty: Decimal = attrs.field(default=ZERO, init=False)
    reported_filled_qty: Decimal = attrs.field(default=ZERO, init=False)
    evidence_at: float = attrs.field(default=-math.inf, init=False)
    history: list[Transition] = attrs.field(factory=list, init=False)
    _trades: dict[str, Decimal] = attrs.field(factory=dict, init=False)
    _last_now: float = attrs.field(default=-math.inf, init=False)

    @property
    def is_terminal(self) -> bool:
        """True once the order can no longer change state."""
        return self.state.is_terminal

    @property
    def known_filled_qty(self) -> Decimal:
        """The most the order is known to have executed: journaled trades or the venue's count."""
        return max(self.filled_qty, self.reported_filled_qty)

    @property
    def missing_fill_qty(self) -> Decimal:
        """Executed quantity the venue reported but no journaled trade explains yet (backfill)."""
        return max(self.reported_filled_qty - self.filled_qty, ZERO)

    @property
    def open_qty_worst_case(self) -> Decimal:
        """Quantity that may still execute: zero if unsent or terminal, else what is left."""
        if self.state is OrderState.PENDING or self.is_terminal:
            return ZERO
        return self.quantity - self.known_filled_qty

    @property
    def trade_ids(self) -> frozenset[str]:
        """The trade ids applied so far."""
        return frozenset(self._trades)

    def apply(self, event: OrderEvent, now: float) -> Transition:
        """Apply one event at time ``now`` and return what it did.

        Args:
            event: the evidence or local action.
            now: the injected-clock time; finite and never earlier than the previous call's.

        Returns:
            The transition record (also appended to :attr:`history` if applied).

        Raises:
            CoreValueError: ``now`` is not finite or goes backwards, or an observation claims
                to be from the future.
            TransitionError: the event is illegal in the current state.
            ContradictionError: venue evidence contradicts the terminal state.
            LateFillError: a fill the terminal verdict does not account for.
            FillError: an overfill or a trade id reused with a different quantity.
        """
        if not math.isfinite(now):
            raise CoreValueError("now", f"must be finite, got {now}")
        if now < self._last_now:
            raise CoreValueError("now", f"went backwards: {now} < {self._last_now}")
        if event.observed_at is not None and event.observed_at > now:
            raise CoreValueError("observed_at", f"{event.observed_at} is after now={now}")
        kind = event.kind

        def ignore(reason: str) -> Transition:
            self._last_now = now
            return Transition(event, self.state, self.state, now, False, reason, kind)

        if kind in _FILL_KINDS:
            # OrderEvent guarantees both for fills.
            assert event.trade_id is not None
            assert event.qty is not None
            seen = self._trades.get(event.trade_id)
            if seen is not None:
                if seen != event.qty:
                    raise FillError(
                        self.state,
                        event,
                        f"trade {event.trade_id} already applied with qty {seen}",
                    )
                return ignore("duplicate_trade")
        if (
            kind in _OBSERVATION_KINDS
            and event.observed_at is not None
            and event.observed_at < self.evidence_at
        ):
            return ignore("stale_observation")

        new_filled = self.filled_qty + (event.qty or ZERO)
        if new_filled > self.quantity:
            raise FillError(
                self.state, event, f"fills would total {new_filled} > quantity {self.quantity}"
            )
        cum = event.cum_qty
        if cum is not None and cum > self.quantity:
            raise FillError(self.state, event, f"cum_qty {cum} > quantity {self.quantity}")
        if kind is OrderEventKind.VENUE_FILLED and cum is not None and cum != self.quantity:
            raise FillError(self.state, event, f"FILLED with cum_qty {cum} != {self.quantity}")
        if kind in _PARTIAL_STATUS_KINDS and cum is not None and cum >= self.quantity:
            raise FillError(self.state, event, f"PARTIALLY_FILLED with cum_qty {cum}")
        if kind in _CLOSE_REPORT_KINDS and cum is not None and cum < self.filled_qty:
            raise FillError(
                self.state,
                event,
                f"closed with cum_qty {cum} but {self.filled_qty} is journaled",
            )

        reported = self.reported_filled_qty if cum is None else max(self.reported_filled_qty, cum)
        effective = kind
        reason = "applied"
        if kind is OrderEventKind.FILL_PARTIAL and max(new_filled, reported) == self.quantity:
            effective = OrderEventKind.FILL_FULL
            reason = "promoted_to_full"
        if effective in (OrderEventKind.FILL_FULL, OrderEventKind.VENUE_FILLED):
            # FILLED means everything executed, whether or not we hold every trade yet.
            reported = self.quantity

        target = ORDER_TRANSITIONS[self.state].get(effective)
        if self.is_terminal and kind in _FILL_KINDS:
            # Covered: the count the venue reported when it closed the order (before this
            # event) already includes the trade. A FILLED order's count is its quantity.
            closed_count = self.reported_filled_qty
            if (
                target is None
                or new_filled > closed_count
                or (cum is not None and cum > closed_count)
            ):
                raise LateFillError(
                    self.state,
                    event,
                    f"trade {event.trade_id} brings fills to {new_filled} (venue count "
                    f"{cum}), beyond the {closed_count} the venue reported at close",
                )
            reason = "backfill"
        if target is None:
            if self.is_terminal and kind not in _LOCAL_KINDS:
                raise ContradictionError(self.state, event, "venue evidence contradicts verdict")
            raise TransitionError(self.state, event, "no such transition")
        if self.is_terminal and cum is not None and cum > self.reported_filled_qty:
            # A closed order's executed quantity is final; a higher count later is news the
            # verdict cannot absorb (and would silently widen what counts as a backfill).
            raise ContradictionError(
                self.state,
                event,
                f"venue count {cum} exceeds the {self.reported_filled_qty} reported at close",
            )
        if target is OrderState.LIVE and max(self.filled_qty, reported) > ZERO:
            # The venue shows status NEW, yet executions are known: its view is behind ours.
            return ignore("behind_local_fills")

        transition = Transition(event, self.state, target, now, True, reason, effective)
        self.state = target
        self.filled_qty = new_filled
        self.reported_filled_qty = reported
        if kind in _FILL_KINDS:
            assert event.trade_id is not None
            assert event.qty is not None
            self._trades[event.trade_id] = event.qty
        # An observation describes the venue when it was taken; anything else is news as of
        # now (a push may describe the venue just before now, so now is the safe side).
        seen_at = event.observed_at if event.observed_at is not None else now
        self.evidence_at = max(self.evidence_at, seen_at)
        self._last_now = now
        self.history.append(transition)
        return transition


# --------------------------------------------------------------------------------------------
# Venue status mapping
# --------------------------------------------------------------------------------------------

_QUERY_KIND_BY_STATUS = {
    VenueOrderStatus.NEW: OrderEventKind.QUERY_FOUND_OPEN,
    VenueOrderStatus.PARTIALLY_FILLED: OrderEventKind.QUERY_FOUND_PARTIAL,
    VenueOrderStatus.FILLED: OrderEventKind.VENUE_FILLED,
    VenueOrderStatus.CANCELED: OrderEventKind.VENUE_CANCELED,
    VenueOrderStatus.REJECTED: OrderEventKind.REJECT,
    VenueOrderStatus.EXPIRED: OrderEventKind.EXPIRE,
    VenueOrderStatus.EXPIRED_IN_MATCH: OrderEventKind.EXPIRE,
}
_SNAPSHOT_KIND_BY_STATUS = {
    **_QUERY_KIND_BY_STATUS,
    VenueOrderStatus.NEW: OrderEventKind.SNAPSHOT_OPEN,
    VenueOrderStatus.PARTIALLY_FILLED: OrderEventKind.SNAPSHOT_PARTIAL,
}


def event_kind_for_status(
    status: VenueOrderStatus, *, from_snapshot: bool = False
) -> OrderEventKind:
    """Map a venue order status to the event kind it is evidence of.

    Open statuses become observations (``QUERY_FOUND_*`` or, from a snapshot,
    ``SNAPSHOT_*``); closed statuses become terminal reports, which are never stale.
    """
    table = _SNAPSHOT_KIND_BY_STATUS if from_snapshot else _QUERY_KIND_BY_STATUS
    return table[status]


def event_from_venue_order(
    order: VenueOrder, *, observed_at: float, from_snapshot: bool = False
) -> OrderEvent:
    """Build the event a venue order record (query result or snapshot row) is evidence of.

    Args:
        order: the record.
        observed_at: when the query or snapshot was taken (used only for open statuses).
        from_snapshot: True for rows of an open-orders snapshot.

    Raises:
        CoreValueError: if the record is inconsistent (status NEW with an executed quantity).
    """
    kind = event_kind_for_status(order.status, from_snapshot=from_snapshot)
    return OrderEvent(
        kind=kind,
        cum_qty=order.filled_qty if kind in _CUM_KINDS else None,
        observed_at=observed_at if kind in _OBSERVATION_KINDS else None,
        detail=f"status_{order.status.lower()}",
    )


# --------------------------------------------------------------------------------------------
# Position belief
# --------------------------------------------------------------------------------------------


class PositionState(enum.StrEnum):
    """What we believe about one symbol's position, and whether the venue agrees."""

    FLAT = "FLAT"
    OPEN_UNCONFIRMED = "OPEN_UNCONFIRMED"
    OPEN_CONFIRMED = "OPEN_CONFIRMED"
    CLOSING = "CLOSING"
    CLOSED_UNCONFIRMED = "CLOSED_UNCONFIRMED"


class PositionEventKind(enum.StrEnum):
    """Local position events (classified by the caller's accounting) and venue verdicts."""

    #: A fill that increased the absolute local position.
    ENTRY_FILL = "ENTRY_FILL"
    #: An exit (reduce-only / close-position) order was sent.
    EXIT_SENT = "EXIT_SENT"
    #: A fill that reduced the local position but left it open.
    EXIT_FILL = "EXIT_FILL"
    #: A fill that brought the local position to zero.
    EXIT_FILL_FLAT = "EXIT_FILL_FLAT"
    #: An exit order ended (canceled, expired, rejected) without flattening.
    EXIT_ENDED = "EXIT_ENDED"
    #: Reconciliation: the venue shows a position.
    VENUE_SHOWS_POSITION = "VENUE_SHOWS_POSITION"
    #: Reconciliation: the venue shows no position.
    VENUE_SHOWS_FLAT = "VENUE_SHOWS_FLAT"


_P = PositionState
_PK = PositionEventKind
_VENUE_POSITION_KINDS = frozenset({_PK.VENUE_SHOWS_POSITION, _PK.VENUE_SHOWS_FLAT})

_POSITION_TABLE: dict[PositionState, dict[PositionEventKind, PositionState]] = {
    _P.FLAT: {
        _PK.ENTRY_FILL: _P.OPEN_UNCONFIRMED,
        # A precautionary exit on a believed-flat position: allowed (I1), changes nothing.
        _PK.EXIT_SENT: _P.FLAT,
        _PK.EXIT_ENDED: _P.FLAT,
        _PK.VENUE_SHOWS_POSITION: _P.OPEN_CONFIRMED,
        _PK.VENUE_SHOWS_FLAT: _P.FLAT,
    },
    _P.OPEN_UNCONFIRMED: {
        _PK.ENTRY_FILL: _P.OPEN_UNCONFIRMED,
        _PK.EXIT_SENT: _P.CLOSING,
        # A stop or take-profit filling without our exit: the position is being closed.
        _PK.EXIT_FILL: _P.CLOSING,
        _PK.EXIT_FILL_FLAT: _P.CLOSED_UNCONFIRMED,
        _PK.EXIT_ENDED: _P.OPEN_UNCONFIRMED,
        _PK.VENUE_SHOWS_POSITION: _P.OPEN_CONFIRMED,
        _PK.VENUE_SHOWS_FLAT: _P.FLAT,
    },
    _P.OPEN_CONFIRMED: {
        # The size changed: the venue has to confirm the new one.
        _PK.ENTRY_FILL: _P.OPEN_UNCONFIRMED,
        _PK.EXIT_SENT: _P.CLOSING,
        _PK.EXIT_FILL: _P.CLOSING,
        _PK.EXIT_FILL_FLAT: _P.CLOSED_UNCONFIRMED,
        _PK.EXIT_ENDED: _P.OPEN_CONFIRMED,
        _PK.VENUE_SHOWS_POSITION: _P.OPEN_CONFIRMED,
        _PK.VENUE_SHOWS_FLAT: _P.FLAT,
    },
    _P.CLOSING: {
        # The position grew under a working exit: the exit may be too small; re-plan.
        _PK.ENTRY_FILL: _P.OPEN_UNCONFIRMED,
        _PK.EXIT_SENT: _P.CLOSING,
        _PK.EXIT_FILL: _P.CLOSING,
        _PK.EXIT_FILL_FLAT: _P.CLOSED_UNCONFIRMED,
        # The exit is over and something is left, of a size the venue has to confirm.
        _PK.EXIT_ENDED: _P.OPEN_UNCONFIRMED,
        _PK.VENUE_SHOWS_POSITION: _P.CLOSING,
        _PK.VENUE_SHOWS_FLAT: _P.FLAT,
    },
    _P.CLOSED_UNCONFIRMED: {
        _PK.ENTRY_FILL: _P.OPEN_UNCONFIRMED,
        _PK.EXIT_SENT: _P.CLOSED_UNCONFIRMED,
        # Leftover exits and stops being cleaned up after the close.
        _PK.EXIT_ENDED: _P.CLOSED_UNCONFIRMED,
        _PK.VENUE_SHOWS_POSITION: _P.OPEN_CONFIRMED,
        _PK.VENUE_SHOWS_FLAT: _P.FLAT,
    },
}

#: The position belief: ``POSITION_TRANSITIONS[state][event_kind] -> next state`` (read-only).
POSITION_TRANSITIONS: Mapping[PositionState, Mapping[PositionEventKind, PositionState]] = (
    MappingProxyType({state: MappingProxyType(row) for state, row in _POSITION_TABLE.items()})
)

#: Venue verdicts that disagree with the local belief, with the tag the reconciler acts on
#: (``unexpected_position``: adopt and protect it; ``unexpected_flat``: backfill the fills).
POSITION_SURPRISES: Mapping[tuple[PositionState, PositionEventKind], str] = MappingProxyType(
    {
        (_P.FLAT, _PK.VENUE_SHOWS_POSITION): "unexpected_position",
        (_P.CLOSED_UNCONFIRMED, _PK.VENUE_SHOWS_POSITION): "unexpected_position",
        (_P.OPEN_UNCONFIRMED, _PK.VENUE_SHOWS_FLAT): "unexpected_flat",
        (_P.OPEN_CONFIRMED, _PK.VENUE_SHOWS_FLAT): "unexpected_flat",
        (_P.CLOSING, _PK.VENUE_SHOWS_FLAT): "unexpected_flat",
    }
)


def position_transitions_as_rows() -> tuple[tuple[str, str, str], ...]:
    """Export the position table as ``(state, event_kind, next_state)`` rows, in enum order."""
    return tuple(
        (str(state), str(kind), str(POSITION_TRANSITIONS[state][kind]))
        for state in PositionState
        for kind in PositionEventKind
        if kind in POSITION_TRANSITIONS[state]
    )


@attrs.frozen
class PositionEvent:
    """One event about one symbol's position.

    Attributes:
        kind: what happened.
        observed_at: when the venue observation behind a ``VENUE_*`` verdict was taken
            (required for those, forbidden for local events).
        detail: a short free-text tag for the journal.
    """

    kind: PositionEventKind
    observed_at: float | None = None
    detail: str = ""

    def __attrs_post_init__(self) -> None:
        if self.kind in _VENUE_POSITION_KINDS:
            if self.observed_at is None:
                raise CoreValueError("observed_at", f"is required for {self.kind}")
            _check_time("observed_at", self.observed_at)
        elif self.observed_at is not None:
            raise CoreValueError("observed_at", f"only venue verdicts carry it, not {self.kind}")


@attrs.frozen
class PositionTransition:
    """What one event did to a position belief.

    Attributes:
        event: the event as given.
        from_state: the state before.
        to_state: the state after.
        at: the injected-clock time it was applied.
        applied: False if the event was ignored as stale.
        reason: ``applied``, ``confirmed`` (venue agrees), ``unexpected_position``,
            ``unexpected_flat`` or ``stale_observation``.
    """

    event: PositionEvent
    from_state: PositionState
    to_state: PositionState
    at: float
    applied: bool
    reason: str

    @property
    def changed(self) -> bool:
        """True if the state changed."""
        return self.from_state is not self.to_state


@attrs.define
class PositionBelief:
    """The belief about one symbol's position, driven through :data:`POSITION_TRANSITIONS`.

    Attributes:
        symbol: the symbol.
        position_side: BOTH in one-way mode, LONG or SHORT in hedge mode.
        state: the current state (starts ``FLAT``).
        evidence_at: the time of the newest evidence applied.
        history: the applied transitions, oldest first.
    """

    symbol: str
    position_side: PositionSide = PositionSide.BOTH
    state: PositionState = attrs.field(default=PositionState.FLAT, init=False)
    evidence_at: float = attrs.field(default=-math.inf, init=False)
    history: list[PositionTransition] = attrs.field(factory=list, init=False)
    _last_now: float = attrs.field(default=-math.inf, init=False)

    def apply(self, event: PositionEvent, now: float) -> PositionTransition:
        """Apply one event at time ``now`` and return what it did.

        A venue verdict whose observation is older than the newest applied evidence is ignored
        (``stale_observation``): a snapshot taken before our entry fill cannot say "flat".

        Raises:
            CoreValueError: ``now`` is not finite or goes backwards, or an observation claims
                to be from the future.
            TransitionError: the event is illegal in the current state (the tracker is left
                unchanged).
        """
        if not math.isfinite(now):
            raise CoreValueError("now", f"must be finite, got {now}")
        if now < self._last_now:
            raise CoreValueError("now", f"went backwards: {now} < {self._last_now}")
        observed = event.observed_at
        if observed is not None and observed > now:
            raise CoreValueError("observed_at", f"{observed} is after now={now}")
        if observed is not None and observed < self.evidence_at:
            self._last_now = now
            return PositionTransition(
                event, self.state, self.state, now, False, "stale_observation"
            )
        target = POSITION_TRANSITIONS[self.state].get(event.kind)
        if target is None:
            raise TransitionError(self.state, event, "no such transition")
        reason = POSITION_SURPRISES.get((self.state, event.kind))
        if reason is None:
            reason = "confirmed" if event.kind in _VENUE_POSITION_KINDS else "applied"
        transition = PositionTransition(event, self.state, target, now, True, reason)
        self.state = target
        self.evidence_at = max(self.evidence_at, observed if observed is not None else now)
        self._last_now = now
        self.history.append(transition)
        return transition
