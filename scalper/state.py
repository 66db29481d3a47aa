"""The account as the journal tells it: a pure fold over journaled events (I5).

Theory of operation
-------------------

:class:`AccountState` is what scalper *believes* about its intents, orders, position legs
and halt flag, derived from nothing but the journal. :meth:`AccountState.apply` takes one
event and updates the state; replaying a journal from the first record with
:meth:`AccountState.replay` therefore reproduces the live state exactly, which is invariant
I5 and what every restarted actor relies on. :meth:`AccountState.fingerprint` hashes the
state canonically so a test (and the chaos gate) can compare a live state with a replayed
one byte for byte.

The Journal actor is the only writer: it applies each event *as it appends it*, in append
order, which is the journal's sequence order, and derives from the same call the ledger
rows the store writes in the same transaction (:class:`~scalper.store.records.LedgerRow`,
fills keyed by trade id). Other actors read the state between their awaits; trio runs one
task at a time, so a read never sees half an update. A failed durable write stops the
process (the store never retries a failed fsync), so a state that ran ahead of the disk
never trades on.

Orders are driven through core's :class:`~scalper.core.orders.OrderTracker`, so the
journal's evidence obeys the same transition table the core tests prove. Evidence the
tracker refuses (a contradiction, a late fill) is recorded in ``contradictions`` and never
stops the fold: the fill is real, it still moves the position (I10), and the Reconciler
handles the disagreement with fresh evidence. Close-position stops have no quantity, so
they follow the venue's reported status instead of the fill arithmetic.

Old news is not a contradiction. The user stream and the REST answers race: a market order's
ack often says FILLED before the stream's ``NEW`` update for it arrives. A pushed update (the
stream, or a create ack) that reports an *earlier lifecycle step* of an order already closed
(status NEW, or PARTIALLY_FILLED with no more executed than the close accounts for) is ignored
and counted as ``stale_observations``, as are the observations the tracker itself discards as
stale. A stream ``NEW`` for an open order is the tracker's ``ACK`` (the create happened), not
a claim that the order is open now. What still counts as a contradiction: a different
terminal status, more executed than the close reported, an open status in a query answer
taken after the close, and any report about an order proven ABSENT.

An order proven to exist that the venue later forgets (Binance stops answering queries for
a canceled or expired order without fills after about three days) would stay UNKNOWN
forever. The fold keeps the evidence the Router needs to end it: when a snapshot first
stopped listing the order since the venue last showed it open (``OrderMissing``), and how many
trade backfills of its symbol completed since then with no new fill for it. On that evidence
and its own "not found" answers the Router journals ``OrderResolved(CLOSED,
"vanished_after_existing")``, which core's tracker turns into CANCELED with the executed
quantity it already knows: terminal, never ABSENT, so it never licenses another client-id
generation (I7).

Time inside the fold is the journal's wall-clock stamp, made non-decreasing (a wall clock
may step back across a restart; the fold must not).
"""

import collections
import enum
import hashlib
from collections.abc import Callable, Iterable
from decimal import Decimal

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.core.ids import Role, parse_client_order_id
from scalper.core.intents import Intent
from scalper.core.model import Fill, OrderRequest, VenueOrder, VenueOrderStatus
from scalper.core.orders import (
    OrderEvent,
    OrderEventKind,
    OrderState,
    OrderTracker,
    TransitionError,
    event_from_venue_order,
)
from scalper.core.orphans import IntentStanding
from scalper.core.reconcile import (
    FillInFlight,
    LocalOrder,
    LocalOrderState,
    LocalPosition,
    LocalView,
)
from scalper.core.types import ZERO, PositionSide, Side
from scalper.messages import (
    ActorCrashed,
    BackfillCompleted,
    CancelFailed,
    CancelRequested,
    CancelResolved,
    DayStartEquity,
    Event,
    FillApplied,
    HaltChanged,
    IntentAccepted,
    IntentRejected,
    Lane,
    OrderAcked,
    OrderAdopted,
    OrderMissing,
    OrderObserved,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderResolved,
    OrderSending,
    PositionSynced,
    PostureChanged,
    ReconcileCompleted,
    ReplaceAdmitted,
    ReplaceStepped,
    Resolution,
    RetryScheduled,
    StreamDown,
    StreamGapObserved,
    SymbolFrozen,
    SystemStarted,
    canonical_json,
    converter,
    decode_event,
)
from scalper.store.records import (
    InsertFill,
    LedgerOp,
    LedgerRow,
    LedgerState,
    SetCursor,
    UpsertLedger,
)

__all__ = [
    "AccountState",
    "DuplicateFill",
    "IntentFate",
    "IntentRecord",
    "IntentStatus",
    "LegRecord",
    "OrderRecord",
]

_LEDGER_OF: dict[OrderState, LedgerState] = {
    OrderState.PENDING: LedgerState.SENDING,
    OrderState.SENT: LedgerState.SENDING,
    OrderState.UNKNOWN: LedgerState.UNKNOWN,
    OrderState.LIVE: LedgerState.ACKED,
    OrderState.PARTIALLY_FILLED: LedgerState.PARTIALLY_FILLED,
    OrderState.CANCEL_PENDING: LedgerState.ACKED,
    OrderState.STATUS_UNKNOWN: LedgerState.UNKNOWN,
    OrderState.FILLED: LedgerState.FILLED,
    OrderState.CANCELED: LedgerState.CANCELED,
    OrderState.REJECTED: LedgerState.REJECTED,
    OrderState.EXPIRED: LedgerState.EXPIRED,
    OrderState.ABSENT: LedgerState.ABSENT,
}

_LEDGER_OF_STATUS: dict[VenueOrderStatus, LedgerState] = {
    VenueOrderStatus.NEW: LedgerState.ACKED,
    VenueOrderStatus.PARTIALLY_FILLED: LedgerState.PARTIALLY_FILLED,
    VenueOrderStatus.FILLED: LedgerState.FILLED,
    VenueOrderStatus.CANCELED: LedgerState.CANCELED,
    VenueOrderStatus.REJECTED: LedgerState.REJECTED,
    VenueOrderStatus.EXPIRED: LedgerState.EXPIRED,
    VenueOrderStatus.EXPIRED_IN_MATCH: LedgerState.EXPIRED,
}

#: Evidence that an open order is no longer on the book (how it closed is not known yet).
_GONE_KINDS = frozenset(
    {
        OrderEventKind.CANCEL_NOT_OPEN,
        OrderEventKind.SNAPSHOT_MISSING,
        OrderEventKind.QUERY_NOT_FOUND,
    }
)

#: States in which the order's existence or openness is not settled: the Router resolves them.
UNRESOLVED_STATES = frozenset({LedgerState.SENDING, LedgerState.UNKNOWN})

#: Tracker states that only an order which reached the venue can be in.
_EXISTED_STATES = frozenset(
    {
        OrderState.LIVE,
        OrderState.PARTIALLY_FILLED,
        OrderState.CANCEL_PENDING,
        OrderState.STATUS_UNKNOWN,
        OrderState.FILLED,
        OrderState.CANCELED,
        OrderState.EXPIRED,
    }
)
#: The same for orders without a tracker (close-position stops).
_EXISTED_LEDGER = frozenset(
    {
        LedgerState.ACKED,
        LedgerState.PARTIALLY_FILLED,
        LedgerState.FILLED,
        LedgerState.CANCELED,
        LedgerState.EXPIRED,
    }
)
#: Evidence that the order is open *now* (a current observation, or -4116): a snapshot that
#: missed it earlier no longer counts towards "it vanished".
_OPEN_NOW_KINDS = frozenset(
    {
        OrderEventKind.QUERY_FOUND_OPEN,
        OrderEventKind.QUERY_FOUND_PARTIAL,
        OrderEventKind.SNAPSHOT_OPEN,
        OrderEventKind.SNAPSHOT_PARTIAL,
        OrderEventKind.DUPLICATE_ID,
    }
)
#: Tracker states that mean "on the book".
_OPEN_STATES = frozenset({OrderState.LIVE, OrderState.PARTIALLY_FILLED})
#: Reasons the tracker gives for discarding old evidence.
#: How many replace-budget spendings the state keeps (the seed budget admits 20 per 300 s).
_REPLACE_SPENT_KEPT = 256
_STALE_REASONS = frozenset({"stale_observation", "behind_local_fills"})
#: Closed statuses an order can really end in (not ABSENT or REJECTED, which never rested).
_CLOSED_AFTER_EXISTING = frozenset({LedgerState.FILLED, LedgerState.CANCELED, LedgerState.EXPIRED})


class DuplicateFill(Exception):  # noqa: N818 - it is an outcome, not a failure
    """The fill's (symbol, trade id) was journaled before: it must not be applied again."""


class IntentStatus(enum.StrEnum):
    """Where an intent stands."""

    OPEN = "open"
    DONE = "done"
    REJECTED = "rejected"


class IntentFate(enum.StrEnum):
    """What the journal says became of an intent's newest order (:meth:`AccountState.intent_fate`).

    ``PENDING``: nothing settled yet (not sent, being resolved, or the next generation is
    coming). ``REJECTED``: refused by the venue, or every generation proven never placed.
    ``PROVEN``: the order exists (a -4116 duplicate-id answer) but its status is unknown.
    ``LIVE``: acknowledged and working. ``FILLED``: fully filled. ``CLOSED``: it existed
    and was closed by the venue (cancelled, expired, vanished after existing).
    """

    PENDING = "pending"
    REJECTED = "rejected"
    PROVEN = "proven"
    LIVE = "live"
    FILLED = "filled"
    CLOSED = "closed"


@attrs.define
class OrderRecord:
    """One of our exchange orders (one generation of one intent), as the journal has it."""

    intent_id: str
    correlation_id: str
    client_order_id: str
    generation: int
    request: OrderRequest
    risk_increasing: bool
    recv_window_ms: int
    sent_wall_ms: int
    updated_wall_ms: int
    tracker: OrderTracker | None
    status: LedgerState = LedgerState.SENDING
    venue_order_id: str | None = None
    filled_qty: Decimal = ZERO
    cancel_requested: bool = False
    cancel_failures: int = 0
    #: -4116 was answered for this id: an order with it exists (a proof without a venue id).
    duplicate_id_seen: bool = False
    #: The symbol's backfill count (``AccountState.backfills``) when a snapshot first stopped
    #: listing the order since the venue last showed it open, moved on by each later fill of
    #: it; ``None`` while no snapshot has missed it.
    missing_backfill_mark: int | None = None

    @property
    def remaining_qty(self) -> Decimal:
        """Quantity that may still execute (0 for a close-position order, which has none)."""
        quantity = self.request.quantity
        return ZERO if quantity is None else max(quantity - self.filled_qty, ZERO)

    @property
    def conditional(self) -> bool:
        """True if the order lives on the venue's conditional (algo) endpoints."""
        return self.request.order_type.is_conditional

    @property
    def ledger_state(self) -> LedgerState:
        """The ledger's state for this order."""
        if self.tracker is None:
            return self.status
        return _LEDGER_OF[self.tracker.state]

    @property
    def order_state(self) -> OrderState | None:
        """Core's finer order state, if tracked (close-position stops are not)."""
        return None if self.tracker is None else self.tracker.state

    @property
    def is_terminal(self) -> bool:
        """True once the order can no longer change."""
        return self.ledger_state.is_terminal

    @property
    def is_unresolved(self) -> bool:
        """True while its existence or openness is unknown (SENDING, UNKNOWN)."""
        return self.ledger_state in UNRESOLVED_STATES

    @property
    def existence_proven(self) -> bool:
        """True once evidence shows the order reached the venue.

        An ack, a venue report with its id, a fill, -4116, or a state only such evidence
        leads to. "Not found" can then never mean "never placed": the order can be closed
        (``vanished_after_existing``) but never proven ABSENT (I7).
        """
        if self.venue_order_id is not None or self.filled_qty > ZERO or self.duplicate_id_seen:
            return True
        if self.tracker is not None:
            return self.tracker.state in _EXISTED_STATES
        return self.status in _EXISTED_LEDGER

    def ledger_row(self, incarnation: int, created_wall_ms: int) -> LedgerRow:
        """The ledger row the store persists for this order."""
        return LedgerRow(
            client_order_id=self.client_order_id,
            intent_id=self.intent_id,
            generation=self.generation,
            symbol=self.request.symbol,
            spec=canonical_json(converter.unstructure(self.request)),
            state=self.ledger_state,
            risk_increasing=self.risk_increasing,
            created_wall_ms=created_wall_ms,
            updated_wall_ms=self.updated_wall_ms,
            recv_window_ms=self.recv_window_ms,
            sent_wall_ms=self.sent_wall_ms,
            venue_order_id=self.venue_order_id,
            incarnation=incarnation,
        )


@attrs.define
class IntentRecord:
    """One accepted or rejected intent and its orders (generations in order)."""

    intent_id: str
    correlation_id: str
    intent: Intent | None
    lane: Lane | None
    status: IntentStatus
    accepted_wall_ms: int
    client_order_ids: list[str] = attrs.Factory(list)
    reason: str = ""
    reference_price: Decimal | None = None


@attrs.define
class LegRecord:
    """One position leg, from journaled fills (and reconcile syncs)."""

    symbol: str
    position_side: PositionSide
    quantity: Decimal = ZERO
    opened_wall_ms: int | None = None
    updated_wall_ms: int | None = None
    #: Average entry price from journaled fills (None when flat or after a sync that the
    #: fills cannot explain); the ProtectionManager's stop is priced from it.
    entry_price: Decimal | None = None


def _signed(side: Side, qty: Decimal) -> Decimal:
    return qty if side is Side.BUY else -qty


@attrs.define
class AccountState:
    """The journal's account: intents, orders, legs, halt flag; a pure fold (I5).

    Args:
        prefix: our client-order-id prefix (orders with other prefixes are foreign).
    """

    prefix: str = "sc"
    intents: dict[str, IntentRecord] = attrs.Factory(dict)
    orders: dict[str, OrderRecord] = attrs.Factory(dict)
    legs: dict[tuple[str, PositionSide], LegRecord] = attrs.Factory(dict)
    fill_keys: set[tuple[str, str]] = attrs.Factory(set)
    halts: dict[str, str] = attrs.Factory(dict)
    frozen_symbols: dict[str, str] = attrs.Factory(dict)
    cursors: dict[str, str] = attrs.Factory(dict)
    posture: PostureChanged | None = None
    incarnation: int = 0
    last_reconcile: ReconcileCompleted | None = None
    contradictions: list[str] = attrs.Factory(list)
    counters: dict[str, int] = attrs.Factory(dict)
    foreign_fills: int = 0
    events_applied: int = 0
    #: Trade backfills completed per symbol (``BackfillCompleted``), a monotone count.
    backfills: dict[str, int] = attrs.Factory(dict)
    #: Last fill price per symbol (a price hint when a leg's entry is unknown).
    last_price: dict[str, Decimal] = attrs.Factory(dict)
    #: The latest journaled start-of-UTC-day equity (the kill switch's daily-loss base; a
    #: restarted BeliefController takes it if it is today's).
    day_start: DayStartEquity | None = None
    #: When the user-stream outage still open began, in epoch ms (a ``StreamDown`` no
    #: ``StreamGapObserved`` has closed yet; its own times are on the monotonic clock of
    #: the process that journaled it). A restarted collector reopens it with a gap, a
    #: restarted BeliefController keeps capping confidence for it.
    stream_down_since_ms: int | None = None
    #: The latest replace-budget spending, ``(wall_ms, symbol, ambiguous)`` oldest first: an
    #: admitted replace, or an unknown outcome one met. A restarted ReplaceManager seeds
    #: its sliding windows from it (bounded: far more than any window admits).
    replace_spent: collections.deque[tuple[int, str, bool]] = attrs.Factory(
        lambda: collections.deque(maxlen=_REPLACE_SPENT_KEPT)
    )
    _now_ms: int = 0
    _created_ms: dict[str, int] = attrs.Factory(dict)
    #: (symbol, venue order id) -> our client order id, for trades that carry no client id.
    _by_venue_id: dict[tuple[str, str], str] = attrs.Factory(dict)
    #: Client order ids of the orders not known to be terminal. Kept up to date for every
    #: order an event touches, so reading the live orders costs the live ones, not every
    #: order the journal ever held (a day of scalping is thousands).
    _live: set[str] = attrs.Factory(set)

    # ----------------------------------------------------------------- reads

    @property
    def halted(self) -> bool:
        """True while any halt holds (operator, kill switch, escalation): entries blocked."""
        return bool(self.halts)

    @property
    def halt_reason(self) -> str:
        """Every holding halt as ``source: reason``, sorted."""
        return "; ".join(f"{k}: {v}" for k, v in sorted(self.halts.items()))

    def is_duplicate_fill(self, fill: Fill) -> bool:
        """True if this fill's trade was journaled before."""
        return fill.key in self.fill_keys

    def price_hint(self, order: OrderRecord) -> Decimal | None:
        """A price to value an order at: its limit or stop, else its intent's reference."""
        req = order.request
        if req.price is not None:
            return req.price
        if req.stop_price is not None:
            return req.stop_price
        rec = self.intents.get(order.intent_id)
        return None if rec is None else rec.reference_price

    def order_by_venue_id(self, symbol: str, venue_order_id: str) -> OrderRecord | None:
        """Our order that the venue numbers ``venue_order_id`` on ``symbol``, if known.

        Binance's REST trade history carries the venue's order id but no client order id;
        this is how a backfilled trade finds its order without scanning every order.
        """
        coid = self._by_venue_id.get((symbol, venue_order_id))
        return None if coid is None else self.orders.get(coid)

    def unnumbered_orders(self, symbol: str) -> list[OrderRecord]:
        """Possibly-live orders on ``symbol`` whose venue order id the journal lacks.

        These are the orders a trade without a client order id could belong to (a create
        whose outcome was never journaled: SENDING or UNKNOWN after a crash or a timeout).
        """
        return [
            o for o in self.live_orders() if o.venue_order_id is None and o.request.symbol == symbol
        ]

    def intent_fate(self, intent_id: str) -> IntentFate:
        """What became of the intent's newest order, as the journal shows it.

        One reading for every actor that waits on an order it had the Router send (the
        ProtectionManager's stops, the ReplaceManager's new order), so they cannot disagree
        about when an order counts as placed, refused or gone.
        """
        rec = self.intents.get(intent_id)
        orders = self.orders_for_intent(intent_id)
        if not orders:
            rejected = rec is not None and rec.status is IntentStatus.REJECTED
            return IntentFate.REJECTED if rejected else IntentFate.PENDING
        newest = orders[-1]
        order_state = newest.order_state
        qty = newest.request.quantity
        if order_state is OrderState.FILLED or (qty is not None and newest.filled_qty >= qty):
            return IntentFate.FILLED
        if newest.ledger_state is LedgerState.ABSENT:
            # Proven never placed: the Router sends the next generation or rejects the
            # intent; until it says which, nothing is settled.
            rejected = rec is not None and rec.status is IntentStatus.REJECTED
            return IntentFate.REJECTED if rejected else IntentFate.PENDING
        if newest.ledger_state is LedgerState.REJECTED:
            return IntentFate.REJECTED
        if newest.is_terminal:
            return IntentFate.CLOSED
        if order_state is OrderState.STATUS_UNKNOWN:
            return IntentFate.PROVEN
        if newest.is_unresolved or order_state is OrderState.PENDING:
            return IntentFate.PENDING
        return IntentFate.LIVE

    def orders_for_intent(self, intent_id: str) -> list[OrderRecord]:
        """The intent's orders, oldest generation first."""
        rec = self.intents.get(intent_id)
        if rec is None:
            return []
        return [self.orders[c] for c in rec.client_order_ids if c in self.orders]

    def live_orders(self) -> list[OrderRecord]:
        """Orders not known to be terminal (possibly live), in client-order-id order."""
        return [self.orders[c] for c in sorted(self._live)]

    def unresolved_orders(self) -> list[OrderRecord]:
        """Orders in SENDING or UNKNOWN: the Router must resolve them by evidence."""
        return [o for o in self.live_orders() if o.is_unresolved]

    def open_entry_orders(self, symbol: str) -> int:
        """Possibly-live risk-increasing orders on ``symbol``."""
        return sum(
            1 for o in self.live_orders() if o.risk_increasing and o.request.symbol == symbol
        )

    def position(self, symbol: str, position_side: PositionSide = PositionSide.BOTH) -> Decimal:
        """The journal's signed position for a leg."""
        leg = self.legs.get((symbol, position_side))
        return ZERO if leg is None else leg.quantity

    def count(self, name: str) -> int:
        """A named counter (``fills``, ``retries.RETRYABLE``, ``crashes``, ...)."""
        return self.counters.get(name, 0)

    def backfills_since_missing(self, order: OrderRecord) -> int | None:
        """Backfills of the order's symbol since a snapshot missed it and its last fill.

        ``None`` while no snapshot has missed the order since the venue last showed it open.
        A backfill that completes after that moment has read every trade of the order up to
        when it started; the Router asks for more than one before it believes an order
        that vanished had no fill the journal lacks.
        """
        if order.missing_backfill_mark is None:
            return None
        return self.backfills.get(order.request.symbol, 0) - order.missing_backfill_mark

    def local_view(self, to_clock: Callable[[int], float] | None = None) -> LocalView:
        """The Reconciler's input: possibly-live orders, legs, fills in flight, intent standings.

        Flat legs are included (the Reconciler judges "flat here, open there" right after an
        exit against the snapshot's lag, instead of calling the position an orphan). Fills
        in flight are the executed quantity of any order, live or closed, that a venue
        report told the ledger of but whose trades are not journaled yet (I4: the ack is
        evidence; the Reconciler defers the difference it explains for its lag grace).

        Args:
            to_clock: converts the journal's epoch-ms stamps to the clock the snapshot's
                ``taken_at`` is on (``Clock.from_wall_ms``); defaults to epoch seconds.
        """
        conv = to_clock or (lambda ms: ms / 1000.0)
        in_flight = [
            FillInFlight(
                client_order_id=o.client_order_id,
                symbol=o.request.symbol,
                side=o.request.side,
                quantity=o.tracker.missing_fill_qty,
                since=conv(_in_flight_since_ms(o, o.tracker)),
                position_side=o.request.position_side,
            )
            for _, o in sorted(self.orders.items())
            if o.tracker is not None and o.tracker.missing_fill_qty > ZERO
        ]
        orders = []
        for o in self.live_orders():
            if o.tracker is not None and o.tracker.state is OrderState.PENDING:
                continue
            orders.append(
                LocalOrder(
                    intent_id=o.intent_id,
                    client_order_id=o.client_order_id,
                    symbol=o.request.symbol,
                    side=o.request.side,
                    role=_role_of(o.client_order_id, self.prefix),
                    quantity=o.request.quantity,
                    placed_at=conv(o.sent_wall_ms),
                    filled_qty=min(o.filled_qty, o.request.quantity or o.filled_qty),
                    state=_local_state(o),
                    reduce_only=o.request.reduce_only,
                    close_position=o.request.close_position,
                    stop_price=o.request.stop_price,
                    position_side=o.request.position_side,
                )
            )
        positions = [
            LocalPosition(
                symbol=leg.symbol,
                quantity=leg.quantity,
                position_side=leg.position_side,
                opened_at=None if leg.opened_wall_ms is None else conv(leg.opened_wall_ms),
                updated_at=None if leg.updated_wall_ms is None else conv(leg.updated_wall_ms),
            )
            for _, leg in sorted(self.legs.items())
        ]
        known: dict[str, IntentStanding] = {}
        for intent_id, rec in sorted(self.intents.items()):
            known[intent_id] = (
                IntentStanding.OPEN if rec.status is IntentStatus.OPEN else IntentStanding.CLOSED
            )
        return LocalView(
            orders=tuple(orders),
            positions=tuple(positions),
            known_intents=known,
            fills_in_flight=tuple(in_flight),
        )

    def fingerprint(self) -> str:
        """sha256 of the canonical state: equal for a live state and its replay (I5)."""
        doc = {
            "intents": {
                k: [r.status.value, r.lane.value if r.lane else None, r.client_order_ids, r.reason]
                for k, r in sorted(self.intents.items())
            },
            "orders": {
                k: [
                    o.ledger_state.value,
                    None if o.order_state is None else o.order_state.value,
                    str(o.filled_qty),
                    o.venue_order_id,
                    o.cancel_requested,
                    o.existence_proven,
                    o.missing_backfill_mark,
                ]
                for k, o in sorted(self.orders.items())
            },
            "legs": {f"{s}|{ps}": str(leg.quantity) for (s, ps), leg in sorted(self.legs.items())},
            "fills": sorted(f"{s}|{t}" for s, t in self.fill_keys),
            "halts": dict(sorted(self.halts.items())),
            "frozen": dict(sorted(self.frozen_symbols.items())),
            "cursors": dict(sorted(self.cursors.items())),
            "backfills": dict(sorted(self.backfills.items())),
            "posture": None if self.posture is None else self.posture.mode,
            "contradictions": self.contradictions,
            "counters": dict(sorted(self.counters.items())),
        }
        return hashlib.sha256(canonical_json(doc).encode()).hexdigest()

    # ----------------------------------------------------------------- the fold

    @classmethod
    def replay(
        cls, entries: Iterable[tuple[str, str, int]], *, prefix: str = "sc"
    ) -> "AccountState":
        """Rebuild the state from journal rows ``(type, payload, wall_ms)`` in sequence order.

        Raises:
            MessageError: if a payload does not decode (a corrupt journal must not be
                half-applied silently).
        """
        state = cls(prefix=prefix)
        for type_, payload, wall_ms in entries:
            event = decode_event(type_, payload)
            try:
                state.apply(event, wall_ms)
            except DuplicateFill:
                # The store refuses duplicate fills, so a journal never holds one; count it
                # if a hand-made journal does, and go on.
                state._bump("replay.duplicate_fill")
        return state

    def apply(self, event: Event, wall_ms: int) -> tuple[LedgerOp, ...]:
        """Apply one event; return the ledger ops the store writes with its journal row.

        Raises:
            DuplicateFill: a :class:`FillApplied` whose trade was applied before (the
                caller does not journal it; nothing changed).
        """
        if isinstance(event, FillApplied) and self.is_duplicate_fill(event.fill):
            raise DuplicateFill(f"{event.fill.symbol} trade {event.fill.trade_id}")
        self._now_ms = max(self._now_ms, wall_ms)
        self.events_applied += 1
        touched: list[str] = []
        extra: list[LedgerOp] = []
        match event:
            case SystemStarted():
                self.incarnation = event.incarnation
            case IntentAccepted():
                self.intents[event.intent_id] = IntentRecord(
                    intent_id=event.intent_id,
                    correlation_id=event.correlation_id,
                    intent=event.intent,
                    lane=event.lane,
                    status=IntentStatus.OPEN,
                    accepted_wall_ms=self._now_ms,
                    reference_price=event.reference_price,
                )
            case IntentRejected():
                rec = self.intents.get(event.intent_id)
                if rec is None:
                    self.intents[event.intent_id] = IntentRecord(
                        intent_id=event.intent_id,
                        correlation_id=event.correlation_id,
                        intent=None,
                        lane=None,
                        status=IntentStatus.REJECTED,
                        accepted_wall_ms=self._now_ms,
                        reason=event.reason,
                    )
                else:
                    rec.status = IntentStatus.REJECTED
                    rec.reason = event.reason
                self._bump(f"intent_rejected.{event.reason}")
            case OrderSending():
                self._on_sending(event)
                touched.append(event.client_order_id)
            case OrderAcked():
                self._observe(event.client_order_id, event.order, kind=OrderEventKind.ACK)
                touched.append(event.client_order_id)
            case OrderRejected():
                self._order_event(
                    event.client_order_id, OrderEvent(OrderEventKind.REJECT, detail=event.reason)
                )
                touched.append(event.client_order_id)
            case OrderOutcomeUnknown():
                self._order_event(
                    event.client_order_id,
                    OrderEvent(OrderEventKind.AMBIGUOUS_ERROR, detail=event.reason),
                    status=LedgerState.UNKNOWN,
                )
                touched.append(event.client_order_id)
            case RetryScheduled():
                self._bump(f"retries.{event.error_class}")
                self._bump(f"retries.{event.operation}")
            case OrderResolved():
                self._on_resolved(event)
                touched.append(event.client_order_id)
            case CancelRequested():
                order = self.orders.get(event.client_order_id)
                if order is not None:
                    order.cancel_requested = True
                    self._order_event(
                        event.client_order_id, OrderEvent(OrderEventKind.CANCEL_REQUEST)
                    )
                    touched.append(event.client_order_id)
            case CancelResolved():
                if event.order is not None:
                    self._observe(event.client_order_id, event.order, kind=None)
                else:
                    self._order_event(
                        event.client_order_id,
                        OrderEvent(OrderEventKind.CANCEL_NOT_OPEN, detail=event.evidence),
                    )
                touched.append(event.client_order_id)
            case CancelFailed():
                order = self.orders.get(event.client_order_id)
                if order is not None:
                    order.cancel_failures += 1
                self._bump("cancel_failed")
            case OrderObserved():
                self._observe(
                    event.client_order_id,
                    event.order,
                    kind=None,
                    observed_at=event.observed_wall_ms / 1000.0,
                    from_snapshot=event.source == "snapshot",
                    pushed=event.source == "stream",
                )
                touched.append(event.client_order_id)
            case FillApplied():
                extra.append(self._on_fill(event))
                if event.fill.client_order_id in self.orders:
                    touched.append(event.fill.client_order_id)
            case PositionSynced():
                leg = self._leg(event.symbol, event.position_side)
                if event.quantity == ZERO or (event.quantity > ZERO) != (leg.quantity > ZERO):
                    # The fills no longer explain the leg: its entry is unknown (the
                    # ProtectionManager then prices the stop from the last trade).
                    leg.entry_price = None
                leg.quantity = event.quantity
                leg.updated_wall_ms = self._now_ms
                if event.quantity == ZERO:
                    leg.opened_wall_ms = None
                self._bump("position_synced")
            case ReconcileCompleted():
                self.last_reconcile = event
                self._bump("reconcile_runs")
                if not event.clean:
                    self._bump("reconcile_mismatch_runs")
            case PostureChanged():
                self.posture = event
            case HaltChanged():
                if event.halted:
                    self.halts[event.source] = event.reason
                else:
                    self.halts.pop(event.source, None)
            case SymbolFrozen():
                if event.frozen:
                    self.frozen_symbols[event.symbol] = event.reason
                else:
                    self.frozen_symbols.pop(event.symbol, None)
            case OrderMissing():
                missing = self.orders.get(event.client_order_id)
                if missing is not None and missing.missing_backfill_mark is None:
                    missing.missing_backfill_mark = self.backfills.get(missing.request.symbol, 0)
                self._order_event(
                    event.client_order_id,
                    OrderEvent(
                        OrderEventKind.SNAPSHOT_MISSING,
                        observed_at=min(event.observed_wall_ms, self._now_ms) / 1000.0,
                    ),
                )
                touched.append(event.client_order_id)
            case OrderAdopted():
                self._on_adopted(event)
                touched.append(event.client_order_id)
            case BackfillCompleted():
                self.backfills[event.symbol] = self.backfills.get(event.symbol, 0) + 1
                if event.cursor is not None:
                    self.cursors[f"trades:{event.symbol}"] = event.cursor
                    extra.append(SetCursor(f"trades:{event.symbol}", event.cursor))
            case ActorCrashed():
                self._bump("actor_crashes")
            case DayStartEquity():
                self.day_start = event
            case StreamDown():
                if self.stream_down_since_ms is None:
                    lag_ms = round(max(0.0, event.detected_at - event.since) * 1000)
                    self.stream_down_since_ms = self._now_ms - lag_ms
            case StreamGapObserved():
                self.stream_down_since_ms = None
            case ReplaceAdmitted():
                if event.decision == "replace":
                    self.replace_spent.append((self._now_ms, event.symbol, False))
            case ReplaceStepped():
                rec = self.intents.get(event.intent_id)  # the replaced (old) intent
                if event.ambiguous and rec is not None and rec.intent is not None:
                    self.replace_spent.append((self._now_ms, rec.intent.symbol, True))
            case _:
                pass  # events with no bearing on the account (gaps, backfill summaries, ...)
        self._settle_intents(touched)
        for coid in touched:
            order = self.orders.get(coid)
            if order is None or order.is_terminal:
                self._live.discard(coid)
            else:
                self._live.add(coid)
        ops: list[LedgerOp] = [
            UpsertLedger(self.orders[c].ledger_row(self.incarnation, self._created_ms[c]))
            for c in dict.fromkeys(touched)
            if c in self.orders
        ]
        return (*ops, *extra)

    # ----------------------------------------------------------------- helpers

    def _number(self, order: OrderRecord, venue_order_id: str | None) -> None:
        """Record the venue's order id for ``order`` (the first one reported sticks)."""
        if not venue_order_id or order.venue_order_id is not None:
            return
        order.venue_order_id = venue_order_id
        key = (order.request.symbol, venue_order_id)
        holder = self._by_venue_id.setdefault(key, order.client_order_id)
        if holder != order.client_order_id:
            # The venue numbers orders uniquely per symbol; two of ours under one number is
            # evidence that cannot both be true. Trades keep linking to the first holder.
            self._contradiction(
                order.client_order_id, f"venue order id {venue_order_id} already held by {holder}"
            )

    def _bump(self, name: str, by: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + by

    def _leg(self, symbol: str, position_side: PositionSide) -> LegRecord:
        key = (symbol, position_side)
        leg = self.legs.get(key)
        if leg is None:
            leg = self.legs[key] = LegRecord(symbol=symbol, position_side=position_side)
        return leg

    def _on_sending(self, event: OrderSending) -> None:
        if event.client_order_id in self.orders:
            # One client order id is one order: a second record would lose the first one's
            # tracker and fills. The Router never does this; a hand-made journal might.
            self.contradictions.append(f"{event.client_order_id}: journaled as sent twice")
            self._bump("contradictions")
            return
        req = event.request
        tracker = (
            None if req.quantity is None else OrderTracker(req.quantity, event.client_order_id)
        )
        order = OrderRecord(
            intent_id=event.intent_id,
            correlation_id=event.correlation_id,
            client_order_id=event.client_order_id,
            generation=event.generation,
            request=req,
            risk_increasing=event.risk_increasing,
            recv_window_ms=event.recv_window_ms,
            sent_wall_ms=event.sent_wall_ms,
            updated_wall_ms=self._now_ms,
            tracker=tracker,
        )
        self.orders[event.client_order_id] = order
        self._created_ms[event.client_order_id] = self._now_ms
        rec = self.intents.get(event.intent_id)
        if rec is not None and event.client_order_id not in rec.client_order_ids:
            rec.client_order_ids.append(event.client_order_id)
        self._order_event(event.client_order_id, OrderEvent(OrderEventKind.SEND))

    def _order_event(self, coid: str, ev: OrderEvent, *, status: LedgerState | None = None) -> None:
        order = self.orders.get(coid)
        if order is None:
            self._bump("events_for_unknown_orders")
            return
        order.updated_wall_ms = self._now_ms
        if order.tracker is None:
            self._untracked_event(order, ev, status)
            return
        try:
            transition = order.tracker.apply(ev, self._now_ms / 1000.0)
        except TransitionError as exc:
            self._contradiction(coid, exc)
            return
        if not transition.applied:
            if transition.reason in _STALE_REASONS:
                self._bump("stale_observations")
        elif ev.kind in _OPEN_NOW_KINDS or transition.to_state in _OPEN_STATES:
            # The venue shows it open (again): an earlier snapshot miss is no longer evidence
            # that it vanished.
            order.missing_backfill_mark = None

    def _contradiction(self, coid: str, what: Exception | str) -> None:
        self.contradictions.append(f"{coid}: {what}")
        self._bump("contradictions")

    def _untracked_event(
        self, order: OrderRecord, ev: OrderEvent, status: LedgerState | None
    ) -> None:
        # Close-position stops have no tracker, but the tracker's rules that need no quantity
        # still hold: a terminal status absorbs later create-side news, an order the venue
        # acknowledged is never "proven absent" (I7), and an open order the venue no longer
        # shows has an unknown status that the Router resolves by query (not "live forever").
        if order.status.is_terminal:
            return
        if ev.kind is OrderEventKind.PROVEN_ABSENT and order.existence_proven:
            self._contradiction(
                order.client_order_id, f"{ev.kind} for an order the venue acknowledged"
            )
            return
        if ev.kind is OrderEventKind.PROVEN_CLOSED and order.status is not LedgerState.UNKNOWN:
            # The tracker's rule: only an order whose openness is unknown can be proven closed.
            self._contradiction(order.client_order_id, f"{ev.kind} in {order.status}")
            return
        if ev.kind in _OPEN_NOW_KINDS:
            order.missing_backfill_mark = None
        if status is not None:
            order.status = status
        elif ev.kind is OrderEventKind.REJECT:
            order.status = LedgerState.REJECTED
        elif ev.kind is OrderEventKind.PROVEN_ABSENT:
            order.status = LedgerState.ABSENT
        elif ev.kind in _GONE_KINDS and order.status is not LedgerState.SENDING:
            order.status = LedgerState.UNKNOWN

    def _observe(
        self,
        coid: str,
        venue: VenueOrder,
        *,
        kind: OrderEventKind | None,
        observed_at: float | None = None,
        from_snapshot: bool = False,
        pushed: bool = False,
    ) -> None:
        """Apply a venue report about one of our orders.

        ``pushed`` marks a report of one step of the order's life as it happened (a stream
        update; a create ack is one too), as opposed to a query or snapshot describing the
        order when it was taken. A pushed step older than the close on record is old news.
        """
        order = self.orders.get(coid)
        if order is None:
            self._bump("observed_foreign_orders")
            return
        self._number(order, venue.order_id)
        pushed = pushed or kind is OrderEventKind.ACK
        if order.tracker is None:
            self._observe_untracked(order, venue, pushed=pushed)
            return
        if (
            pushed
            and order.ledger_state in _CLOSED_AFTER_EXISTING
            and _earlier_step(venue, order.tracker.known_filled_qty)
        ):
            # E.g. the stream's NEW for a market order whose ack already said FILLED: the
            # step happened before the close we hold, so it says nothing new (not a
            # contradiction, and not a reason to touch the tracker).
            self._bump("stale_observations")
            return
        when = min(
            observed_at if observed_at is not None else self._now_ms / 1000.0, self._now_ms / 1000.0
        )
        if venue.status is VenueOrderStatus.NEW and (
            kind is OrderEventKind.ACK or (pushed and venue.filled_qty == ZERO)
        ):
            # The create step (REST ack, stream x=NEW): proof the order landed, not a claim
            # that it is open now, so it cannot reopen an order whose status is unknown.
            ev = OrderEvent(OrderEventKind.ACK)
        else:
            try:
                ev = event_from_venue_order(venue, observed_at=when, from_snapshot=from_snapshot)
            except CoreValueError as exc:
                # A report that cannot be true (status NEW with an executed quantity, ...) is
                # recorded like any refused evidence; it must never stop the fold.
                self._contradiction(coid, exc)
                return
        self._order_event(coid, ev)

    def _observe_untracked(self, order: OrderRecord, venue: VenueOrder, *, pushed: bool) -> None:
        # Close-position stops follow the venue's status, under the tracker's rules that need
        # no quantity: a closed status is final, and an earlier step pushed late is old news.
        reported = _LEDGER_OF_STATUS[venue.status]
        order.updated_wall_ms = self._now_ms
        if order.status.is_terminal:
            if reported is order.status:
                return
            if pushed and order.status in _CLOSED_AFTER_EXISTING and venue.status.is_open:
                self._bump("stale_observations")
                return
            self._contradiction(
                order.client_order_id, f"venue reports {venue.status} for a {order.status} order"
            )
            return
        order.status = reported
        if venue.status.is_open:
            order.missing_backfill_mark = None

    def _on_adopted(self, event: OrderAdopted) -> None:
        venue = event.order
        request = OrderRequest(
            symbol=venue.symbol,
            side=venue.side,
            order_type=venue.order_type,
            client_order_id=venue.client_order_id,
            quantity=None if venue.close_position else venue.quantity,
            price=venue.price,
            stop_price=venue.stop_price,
            time_in_force=venue.time_in_force,
            reduce_only=venue.reduce_only,
            close_position=venue.close_position,
            position_side=venue.position_side,
        )
        self._on_sending(
            OrderSending(
                intent_id=event.intent_id,
                correlation_id=event.correlation_id,
                client_order_id=event.client_order_id,
                generation=0,
                request=request,
                risk_increasing=not venue.is_exit,
                recv_window_ms=0,
                sent_wall_ms=self._now_ms,
            )
        )
        self._observe(event.client_order_id, venue, kind=OrderEventKind.ACK)

    def _on_resolved(self, event: OrderResolved) -> None:
        order = self.orders.get(event.client_order_id)
        if event.resolution is Resolution.ABSENT:
            self._order_event(
                event.client_order_id,
                OrderEvent(OrderEventKind.PROVEN_ABSENT, detail=event.evidence),
                status=LedgerState.ABSENT,
            )
            return
        if event.resolution is Resolution.CLOSED:
            if order is not None and not order.existence_proven:
                # Closing is for orders known to have existed; one never shown to exist is
                # the ABSENT rule's case, and must not be closed around it.
                self._contradiction(
                    event.client_order_id, f"{event.evidence} for an order never shown to exist"
                )
                return
            self._order_event(
                event.client_order_id,
                OrderEvent(OrderEventKind.PROVEN_CLOSED, detail=event.evidence),
                status=LedgerState.CANCELED,
            )
            if order is not None and order.ledger_state is LedgerState.CANCELED:
                self._bump(f"resolved_closed.{event.evidence}")
            return
        if event.order is not None:
            self._observe(event.client_order_id, event.order, kind=None)
        else:
            # -4116: an open order with our id exists; its status is not known yet.
            if order is not None:
                order.duplicate_id_seen = True
            self._order_event(
                event.client_order_id,
                OrderEvent(OrderEventKind.DUPLICATE_ID, detail=event.evidence),
                status=LedgerState.UNKNOWN,
            )

    def _on_fill(self, event: FillApplied) -> LedgerOp:
        fill = event.fill
        self.fill_keys.add(fill.key)
        self._bump("fills")
        leg = self._leg(fill.symbol, fill.position_side)
        before = leg.quantity
        leg.quantity = before + _signed(fill.side, fill.quantity)
        leg.updated_wall_ms = self._now_ms
        self.last_price[fill.symbol] = fill.price
        leg.entry_price = _entry_after(leg.entry_price, before, leg.quantity, fill.price)
        if before == ZERO or (before > ZERO) != (leg.quantity > ZERO):
            leg.opened_wall_ms = self._now_ms if leg.quantity != ZERO else None
        order = self.orders.get(fill.client_order_id)
        if order is None:
            self.foreign_fills += 1
        else:
            # A trade of the order is evidence of its venue id too (the create's outcome may
            # still be unjournaled when a backfill links the trade to it).
            self._number(order, fill.order_id)
            order.filled_qty += fill.quantity
            if order.missing_backfill_mark is not None:
                # Only backfills after its last fill show that no further fill is missing.
                order.missing_backfill_mark = self.backfills.get(fill.symbol, 0)
            if order.tracker is not None:
                full = order.tracker.filled_qty + fill.quantity >= order.tracker.quantity
                try:
                    ev = OrderEvent.from_fill(fill, full=full)
                except CoreValueError as exc:  # a zero-quantity trade: counted, not fatal
                    self._contradiction(fill.client_order_id, exc)
                else:
                    self._order_event(fill.client_order_id, ev)
        return InsertFill(
            symbol=fill.symbol,
            trade_id=fill.trade_id,
            client_order_id=fill.client_order_id,
            payload=canonical_json(converter.unstructure(fill)),
        )

    def _settle_intents(self, coids: list[str]) -> None:
        for coid in coids:
            order = self.orders.get(coid)
            if order is None:
                continue
            rec = self.intents.get(order.intent_id)
            if rec is None or rec.status is not IntentStatus.OPEN:
                continue
            # An intent is done when its newest generation is terminal and not ABSENT (an
            # absent generation may still be followed by the next one).
            newest = self.orders.get(rec.client_order_ids[-1]) if rec.client_order_ids else None
            if newest is not None and newest.is_terminal:
                if newest.ledger_state is LedgerState.ABSENT:
                    continue
                rec.status = IntentStatus.DONE
                if newest.ledger_state is LedgerState.REJECTED:
                    rec.reason = "order_rejected"


def _entry_after(
    entry: Decimal | None, before: Decimal, after: Decimal, price: Decimal
) -> Decimal | None:
    """The average entry price of a leg after a fill moved it from ``before`` to ``after``."""
    if after == ZERO:
        return None
    if before == ZERO or (before > ZERO) != (after > ZERO):
        return price  # opened, or flipped through zero: the remainder was bought at ``price``
    if abs(after) < abs(before):
        return entry  # reducing does not change what the rest cost
    if entry is None:
        return price
    return (abs(before) * entry + (abs(after) - abs(before)) * price) / abs(after)


def _earlier_step(venue: VenueOrder, closed_count: Decimal) -> bool:
    """True if an open-status report describes a step before a close that counted ``closed_count``."""
    if venue.status is VenueOrderStatus.NEW:
        return venue.filled_qty == ZERO
    if venue.status is VenueOrderStatus.PARTIALLY_FILLED:
        return ZERO < venue.filled_qty <= closed_count
    return False


def _role_of(coid: str, prefix: str) -> Role:
    try:
        role = parse_client_order_id(coid, prefix).role
    except ValueError:
        return Role.ENTRY
    return role or Role.ENTRY


def _local_state(order: OrderRecord) -> LocalOrderState:
    state = order.ledger_state
    if state is LedgerState.SENDING:
        return LocalOrderState.SENDING
    if state is LedgerState.UNKNOWN:
        return LocalOrderState.UNKNOWN
    if order.cancel_requested:
        return LocalOrderState.CANCELING
    return LocalOrderState.OPEN


#: Reports that mean the whole order executed (FILLED), whatever quantity they carry.
_REPORTS_FULL = frozenset({OrderEventKind.FILL_FULL, OrderEventKind.VENUE_FILLED})


def _in_flight_since_ms(order: OrderRecord, tracker: OrderTracker) -> int:
    """When the ledger first learned of executed quantity its journaled trades lack (epoch ms).

    The first applied report whose executed count exceeds today's journaled trades (the
    venue's count only grows). The earliest such moment, not the latest: a repeated report
    must not restart the Reconciler's grace. Without one (not expected while the tracker
    reports missing fills) the send time, the earliest stamp and so the cautious one.
    """
    journaled = tracker.filled_qty
    for step in tracker.history:
        cum = step.event.cum_qty
        if step.effective_kind in _REPORTS_FULL or (cum is not None and cum > journaled):
            return round(step.at * 1000)
    return order.sent_wall_ms
