"""The Router: turns intents into exchange orders, at most one risk-increasing order each.

Theory of operation
-------------------

Two lanes, decided once by :attr:`scalper.core.intents.Intent.is_exit`:

* the **entry lane** checks, in order: the durable halt flag (operator or kill switch), the
  posture's :class:`~scalper.core.posture.GuardKnobs` (entries allowed, confidence, notional,
  cooldown, resting entries per symbol), frozen symbols, the last-hop caps of
  :class:`RouterConfig` (order rate, open orders per symbol, notional) and the posture's
  leverage (below). A refusal is journaled as :class:`~scalper.messages.IntentRejected`
  with a reason tag. A *replacement* (``SubmitIntent.source == "replace"``, sent by the
  ReplaceManager once the order it replaces is gone) skips only the entry cooldown: it
  adds no risk beyond the order it replaces (the ReplaceManager's envelope bounds that),
  and it does not restart the cooldown for the next entry; every other gate applies;
* the **exit lane** (reduce-only, close-position, protective stops) consults none of that
  (I1). It shares only the ledger discipline below, which can never block an exit: an exit
  that is refused for a duplicate intent id is already being worked.

Then for both lanes, per intent, in its own task:

1. **Ledger check (I7).** An intent id the journal already knows is refused
   (``duplicate_intent``), and a new generation is sent only when every earlier generation
   of the intent is proven ABSENT.
2. **Journal before send.** :class:`~scalper.messages.OrderSending` (the full request, the
   generation, the recvWindow and the wall time) is durable before the request leaves.
3. **Send, bounded.** Each request runs in a cancel scope (``request_timeout_s``). A
   RETRYABLE error (the venue says the request was not executed) is retried with the same
   client order id, with seeded backoff bounded by core's :class:`~scalper.core.retry.RetryConfig`
   and one :class:`~scalper.messages.RetryScheduled` per attempt (I2).
4. **Ambiguity is resolved by evidence, never by a resend.** A timeout, 5xx, -1006 or
   -1007 journals :class:`~scalper.messages.OrderOutcomeUnknown`; the Router then queries
   by client order id (and watches the journal for stream evidence). Found: PRESENT. Not
   found counts only after ``sent + recvWindow + absent_margin_ms`` has passed on the
   clock, and ``absent_confirmations`` such answers at least ``absent_query_gap_s`` apart
   prove ABSENT; only then may the next generation (a new client order id) be sent, and at
   most ``max_generations`` in all. -4116 on create proves the order exists.
5. **Cancel is idempotent with a status cross-check (I3).** One primitive
   (:meth:`Router.cancel_once`) sends a cancel and classifies the answer; a -2011,
   "unknown order" or ambiguous answer is followed by a query (:meth:`Router.check_cancel`):
   closed or gone is success, still open is a failure. :meth:`Router.cancel_order` repeats
   that at most ``cancel_max_attempts`` times, with one
   :class:`~scalper.messages.RetryScheduled` *between* attempts and none after the last.
   A cancel of an order whose create is still unresolved (SENDING, UNKNOWN) is never sent
   blind (it would answer -2011 and the order could land afterwards): it waits for the
   create to be resolved, starting the resolution itself if no task is working on it, and
   then cancels; after ``cancel_resolve_wait_s`` it gives up with
   :class:`~scalper.messages.CancelFailed` (``create_unresolved_timeout``). A cancel never
   sends a create. An intent whose cancel was asked while its create was in flight sends
   no further generation.

Leverage (the posture's ``max_leverage``) is checked on every entry against the account's
equity, which the Router is told by :meth:`Router.note_equity` (the Reconciler passes the
USDT margin balance of every balance snapshot it reconciles; balances are not journaled).
The projected gross position notional is summed over all legs; for each leg it is the worse
of its position plus every resting risk-increasing order on one side filling, valued at the
entry's reference price for the entry's own symbol and at the best price the journal has
(last fill, average entry, an order's limit or stop) for the others. Intents accepted but
not yet journaled as orders count too. Unknown or stale (``equity_max_age_s``) equity, or a
position the journal cannot value, refuses the entry: an unknown is not a zero. Exits are
never checked (I1).

:meth:`Router.lookup` answers with a :class:`Lookup`: ``FOUND``, ``NOT_FOUND`` (both the
plain and the conditional endpoint said "does not exist") or ``UNKNOWN`` (a query failed:
nothing about absence is known). A failed query is never reported as absence.

Unresolved orders left by a crash or a restart (SENDING or UNKNOWN in the journal) are
picked up by the Router's resolver loop when it starts and every ``resolve_interval_s``:
a restarted Router rebuilds its work from the journal; it does not remember.

An order *proven to exist* (acked, seen, -4116, a cancel answered "not open") can never be
proven ABSENT, yet the venue may forget it: Binance answers -2013 for a canceled or expired
order without fills about three days on. Such an order is resolved as **closed**
(:attr:`~scalper.messages.Resolution.CLOSED`, evidence ``vanished_after_existing``) only on
evidence that it is gone and took no fill the journal lacks: ``absent_confirmations``
"not found" answers, a snapshot that stopped listing it
(:class:`~scalper.messages.OrderMissing`), at least ``vanish_backfills`` trade backfills of
its symbol completed since then and since its last fill, and no executed quantity the venue
reported that the journal's trades do not explain. It ends CANCELED with the executed
quantity the journal holds; it never licenses another generation (I7).

A query answer that arrives after other evidence (the stream) settled the order is older
news than that evidence: it is journaled only if it reports a closed status (a fact), never
as a claim that the order is open.
"""

import contextlib
import enum
import random
from collections import deque
from decimal import Decimal

import attrs
import trio

from scalper.actors.journal import Journal
from scalper.actors.validators import count, positive
from scalper.clock import Clock
from scalper.core.errors import ErrorClass, Operation
from scalper.core.ids import ClientIdSequence, GenerationProof, ProofKind
from scalper.core.intents import Intent
from scalper.core.model import OrderRequest, VenueOrder
from scalper.core.orders import OrderState
from scalper.core.posture import GuardKnobs
from scalper.core.retry import RetryBudget, RetryConfig
from scalper.core.types import ZERO, PositionMode, PositionSide, Side
from scalper.crashpoints import CrashPoint, CrashPoints
from scalper.messages import (
    CancelFailed,
    CancelIntent,
    CancelRequested,
    CancelResolved,
    IntentAccepted,
    IntentRejected,
    Lane,
    OrderAcked,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderResolved,
    OrderSending,
    Resolution,
    RetryScheduled,
    SubmitIntent,
)
from scalper.state import IntentStatus, OrderRecord
from scalper.store.records import LedgerState
from scalper.venues.base import Venue, VenueError, call_within

__all__ = [
    "REPLACE_SOURCE",
    "CancelAttempt",
    "CancelOutcome",
    "IntentReceipt",
    "Lookup",
    "LookupOutcome",
    "Router",
    "RouterConfig",
]

#: ``SubmitIntent.source`` of a replacement order (the ReplaceManager's ``SOURCE``): exempt
#: from the entry cooldown, and from nothing else.
REPLACE_SOURCE = "replace"

#: How often a cancel waiting for an unresolved create looks at the journal again.
_CREATE_POLL_S = 0.25

#: Tracker states in which it is unknown whether the create reached the book.
_CREATE_UNSETTLED = frozenset({OrderState.PENDING, OrderState.SENT, OrderState.UNKNOWN})


def _settled(order: OrderRecord) -> str:
    """The resolution outcome of an order that evidence has already settled."""
    return "absent" if order.ledger_state is LedgerState.ABSENT else "placed"


def _create_unresolved(order: OrderRecord) -> bool:
    """True while it is unknown whether the order's create reached the book.

    A cancel sent now proves nothing (-2011 / not found) and the create may land after it.
    An order proven to exist whose openness is unknown (STATUS_UNKNOWN) can be cancelled.
    """
    if order.tracker is not None:
        return order.tracker.state in _CREATE_UNSETTLED
    return order.is_unresolved and not order.existence_proven


@attrs.frozen
class RouterConfig:
    """Router settings: timeouts, the ABSENT rule and the last-hop caps (entries only).

    Attributes:
        recv_window_ms: recvWindow sent with orders; the ABSENT rule waits it out.
        request_timeout_s: cancel scope around every venue request.
        absent_margin_ms: extra wait after ``sent + recv_window`` before "not found" counts.
        absent_confirmations: "not found" answers needed to prove ABSENT.
        absent_query_gap_s: minimum spacing of those answers.
        resolve_max_s: how long one resolution task keeps querying before it leaves the
            order UNKNOWN for the next resolver pass (I2).
        resolve_interval_s: how often the resolver looks for unresolved orders.
        max_generations: client-id generations per intent (the first included).
        vanish_backfills: trade backfills of the symbol that must complete after a snapshot
            stopped listing an order proven to exist (and after its last fill) before "not
            found" closes it (``vanished_after_existing``).
        cancel_max_attempts: cancel attempts per cancel request.
        cancel_resolve_wait_s: how long a cancel of an order whose create is unresolved waits
            for the create to be resolved before it gives up (``create_unresolved_timeout``).
        equity_max_age_s: the newest equity (:meth:`Router.note_equity`) older than this is
            unknown for the leverage check: entries are refused until a fresh one arrives.
        max_orders_per_window: last-hop cap on entry orders sent per ``rate_window_s``.
        rate_window_s: the rate cap's window.
        max_open_orders_per_symbol: last-hop cap on possibly-live entry orders per symbol.
        max_notional: last-hop cap on one entry's notional (quote currency).
        position_mode: the account's position mode; intents are checked against it.
    """

    recv_window_ms: int = attrs.field(default=5000, validator=count)
    request_timeout_s: float = attrs.field(default=10.0, validator=positive)
    absent_margin_ms: int = attrs.field(default=1000, validator=count)
    absent_confirmations: int = attrs.field(default=2, validator=count)
    absent_query_gap_s: float = attrs.field(default=1.0, validator=positive)
    resolve_max_s: float = attrs.field(default=60.0, validator=positive)
    resolve_interval_s: float = attrs.field(default=5.0, validator=positive)
    max_generations: int = attrs.field(default=3, validator=count)
    vanish_backfills: int = attrs.field(default=2, validator=count)
    cancel_max_attempts: int = attrs.field(default=5, validator=count)
    cancel_resolve_wait_s: float = attrs.field(default=120.0, validator=positive)
    equity_max_age_s: float = attrs.field(default=60.0, validator=positive)
    max_orders_per_window: int = attrs.field(default=20, validator=count)
    rate_window_s: float = attrs.field(default=10.0, validator=positive)
    max_open_orders_per_symbol: int = attrs.field(default=10, validator=count)
    max_notional: Decimal = attrs.field(default=Decimal("100000"), converter=Decimal)
    position_mode: PositionMode = attrs.field(default=PositionMode.ONE_WAY, converter=PositionMode)
    retry: RetryConfig = attrs.field(factory=RetryConfig)


@attrs.frozen
class IntentReceipt:
    """The Router's answer to a submission: accepted (work started) or rejected, and why."""

    intent_id: str
    accepted: bool
    reason: str = ""
    detail: str = ""


class CancelOutcome(enum.StrEnum):
    """What one cancel request, or one status check after it, established (I3)."""

    #: Not sent: the order is not in the ledger, already terminal there, or its create is
    #: still unresolved (a cancel racing an unresolved create proves nothing).
    NOT_SENT = "not_sent"
    #: The venue confirmed the cancel; ``order`` carries the executed quantity at close.
    CANCELED = "canceled"
    #: -2011 / "unknown order", a timeout, a 5xx: open, closed or filled is unknown.
    UNCLEAR = "unclear"
    #: The venue definitely did not execute the cancel (429, a 100%-failure 503...).
    NOT_DONE = "not_done"
    #: The venue refused the request for good (retrying it cannot help).
    FATAL = "fatal"
    #: Status check: the order is still open (``order`` has its executed quantity).
    OPEN = "open"
    #: Status check: the order is closed (filled, canceled, expired); ``order`` says how.
    CLOSED = "closed"
    #: Status check: the venue does not know the order (-2013).
    NOT_FOUND = "not_found"
    #: Status check: the query itself failed.
    QUERY_FAILED = "query_failed"


@attrs.frozen
class CancelAttempt:
    """The answer of :meth:`Router.cancel_once` or :meth:`Router.check_cancel`.

    Attributes:
        outcome: what the request established.
        reason: the venue's reason tag (or why nothing was sent).
        order: the venue's view of the order, when the answer carried one.
        retry_after_s: the wait the venue asked for before another attempt, if any.
        error_class: the venue error's class (``ErrorClass`` value) when the answer was one.
    """

    outcome: CancelOutcome
    reason: str = ""
    order: VenueOrder | None = None
    retry_after_s: float | None = None
    error_class: str = ""


class LookupOutcome(enum.StrEnum):
    """What a query by client order id established (:meth:`Router.lookup`)."""

    #: The venue returned the order.
    FOUND = "found"
    #: Every endpoint asked answered "does not exist" (-2013): the venue does not know it.
    NOT_FOUND = "not_found"
    #: A query failed (timeout, 5xx, 429, ...) and no endpoint found it: nothing is known,
    #: in particular not that the order is absent.
    UNKNOWN = "unknown"


@attrs.frozen
class Lookup:
    """The answer of :meth:`Router.lookup`.

    Attributes:
        outcome: found, not found, or unknown.
        order: the venue's record of the order (exactly when ``FOUND``).
        reason: why the outcome is what it is (the failed queries' reasons for ``UNKNOWN``).

    Raises:
        ValueError: ``order`` is missing for ``FOUND`` or present otherwise.
    """

    outcome: LookupOutcome = attrs.field(converter=LookupOutcome)
    order: VenueOrder | None = None
    reason: str = ""

    def __attrs_post_init__(self) -> None:
        if (self.outcome is LookupOutcome.FOUND) != (self.order is not None):
            raise ValueError(f"order: must be given exactly when outcome is found ({self.outcome})")


_Command = SubmitIntent | CancelIntent


class Router:
    """The actor between intents and the venue (see the module docstring).

    Args:
        venue: the exchange.
        journal: the single writer; its state is the ledger the Router checks.
        clock: the injected clock.
        rng: seeded randomness for backoff jitter.
        prefix: our client-order-id prefix.
        config: timeouts, ABSENT rule, caps.
        initial_knobs: entry limits until the BeliefController speaks (boot posture).
        crash_points: named crash points (tests and chaos scenarios arm them).
    """

    def __init__(
        self,
        venue: Venue,
        journal: Journal,
        *,
        clock: Clock,
        rng: random.Random,
        prefix: str,
        config: RouterConfig,
        initial_knobs: GuardKnobs,
        crash_points: CrashPoints | None = None,
    ) -> None:
        self._venue = venue
        self._journal = journal
        self._clock = clock
        self._rng = rng
        self._prefix = prefix
        self._config = config
        self._crash = crash_points or CrashPoints()
        self.knobs = initial_knobs
        self._sent_times: deque[float] = deque()
        self._last_entry_at: dict[str, float] = {}
        self._active: set[str] = set()  # client order ids with a task working on them
        self._in_flight: set[str] = set()  # intent ids being placed
        # Intent id -> cancel reason, for intents whose cancel waits for their placement.
        self._cancel_wanted: dict[str, str] = {}
        self._cancelling: set[str] = set()  # client order ids an intent cancel is working on
        self._equity: tuple[Decimal, float] | None = None  # (equity, clock time it was read)
        self._nursery: trio.Nursery | None = None
        send, receive = trio.open_memory_channel[
            tuple[_Command, trio.MemorySendChannel[IntentReceipt] | None]
        ](256)
        self._commands_send = send
        self._commands = receive
        knobs_send, knobs_receive = trio.open_memory_channel[GuardKnobs](16)
        #: The BeliefController sends new knobs here.
        self.knobs_inbox = knobs_send
        self._knobs_in = knobs_receive

    # ----------------------------------------------------------------- public

    async def submit(self, command: SubmitIntent) -> IntentReceipt:
        """Submit an intent and wait for the Router's accept/reject decision."""
        send, receive = trio.open_memory_channel[IntentReceipt](1)
        await self._commands_send.send((command, send))
        async with receive:
            return await receive.receive()

    async def cancel(self, command: CancelIntent) -> None:
        """Ask the Router to cancel an intent's live orders (fire and forget)."""
        await self._commands_send.send((command, None))

    def set_knobs(self, knobs: GuardKnobs) -> None:
        """New entry limits from the BeliefController (applied to the next decision)."""
        self.knobs = knobs

    def note_equity(self, equity: Decimal) -> None:
        """The account's equity (USDT margin balance) from the freshest balance snapshot.

        The leverage check divides by it; it counts as unknown ``equity_max_age_s`` after
        the last call.

        Raises:
            ValueError: ``equity`` is not a finite Decimal.
        """
        if not equity.is_finite():
            raise ValueError(f"equity must be a finite Decimal, got {equity!r}")
        self._equity = (equity, self._clock.now())

    @property
    def equity(self) -> Decimal | None:
        """The last equity noted, however old (``None`` before the first)."""
        return None if self._equity is None else self._equity[0]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve commands and resolve unresolved orders until cancelled."""
        self._active.clear()
        self._in_flight.clear()
        self._cancelling.clear()
        # Cancels that waited for a placement whose task died with the previous run: the
        # placement is now the resolver's, and the cancel waits for it as for any order.
        wanted = sorted(self._cancel_wanted.items())
        self._cancel_wanted.clear()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._resolver_loop)
                nursery.start_soon(self._knobs_loop)
                for intent_id, reason in wanted:
                    await self._cancel_intent(CancelIntent(intent_id, reason))
                task_status.started()
                async for command, reply in self._commands:
                    if isinstance(command, SubmitIntent):
                        receipt = await self._accept(command)
                        if reply is not None:
                            # A submitter cancelled meanwhile has left: the decision is
                            # journaled either way, and a missing listener must not crash
                            # the Router.
                            with contextlib.suppress(trio.BrokenResourceError, trio.WouldBlock):
                                reply.send_nowait(receipt)
                            reply.close()
                    else:
                        await self._cancel_intent(command)
        finally:
            self._nursery = None

    async def _knobs_loop(self) -> None:
        async for knobs in self._knobs_in:
            self.knobs = knobs

    # ----------------------------------------------------------------- gates

    async def _accept(self, cmd: SubmitIntent) -> IntentReceipt:
        intent = cmd.intent
        reject = self._ledger_gate(intent)
        lane = Lane.EXIT if intent.is_exit else Lane.ENTRY
        if reject is None and lane is Lane.ENTRY:
            reject = self._entry_gate(cmd)
        if reject is not None:
            reason, detail = reject
            if reason != "duplicate_intent":
                await self._journal.append(
                    IntentRejected(intent.intent_id, intent.correlation_id, reason, detail)
                )
            return IntentReceipt(intent.intent_id, False, reason, detail)
        await self._journal.append(
            IntentAccepted(
                intent=intent,
                lane=lane,
                source=cmd.source,
                intent_id=intent.intent_id,
                correlation_id=intent.correlation_id,
                reference_price=cmd.reference_price,
            )
        )
        if lane is Lane.ENTRY:
            now = self._clock.now()
            self._sent_times.append(now)
            if cmd.source != REPLACE_SOURCE:
                # A replacement is not a new entry: the next entry's cooldown still runs
                # from the entry before it.
                self._last_entry_at[intent.symbol] = now
        self._in_flight.add(intent.intent_id)
        assert self._nursery is not None
        self._nursery.start_soon(self._work_intent, intent)
        return IntentReceipt(intent.intent_id, True)

    def _ledger_gate(self, intent: Intent) -> tuple[str, str] | None:
        state = self._journal.state
        if intent.intent_id in state.intents or intent.intent_id in self._in_flight:
            # I7: the ledger already has this intent; a resubmission has no second effect.
            return ("duplicate_intent", "intent id already in the ledger")
        try:
            intent.check_position_mode(self._config.position_mode)
        except ValueError as exc:
            return ("invalid_intent", str(exc))
        return None

    def entry_refusal(self, cmd: SubmitIntent, *, freed_orders: int = 0) -> tuple[str, str] | None:
        """The entry gates' verdict on ``cmd`` right now, without submitting it.

        For callers that must not take a step that only makes sense if the entry would pass
        (the ReplaceManager cancels an entry's order only if its replacement would be let
        through). ``freed_orders`` resting entry orders of the symbol are about to go (the
        order being replaced): they are not counted against the open-order caps, and the
        leverage projection leaves out that many of the smallest same-side entries of the
        leg (never too low a projection). The gates may still refuse later: the posture can
        tighten in between.

        Returns:
            ``(reason, detail)`` of the first gate that refuses, or ``None``.
        """
        return self._entry_gate(cmd, freed_orders=freed_orders)

    def _entry_gate(self, cmd: SubmitIntent, *, freed_orders: int = 0) -> tuple[str, str] | None:
        intent = cmd.intent
        state = self._journal.state
        knobs = self.knobs
        now = self._clock.now()
        cfg = self._config
        if state.halted:
            return ("halted", state.halt_reason)
        if not knobs.allow_entries:
            return ("posture_blocks_entries", f"posture {knobs.mode}")
        if intent.symbol in self._journal.state.frozen_symbols:
            return ("symbol_frozen", intent.symbol)
        if cmd.confidence < knobs.min_entry_conf:
            return ("confidence_below_posture", f"{cmd.confidence} < {knobs.min_entry_conf}")
        reference = intent.price if intent.price is not None else cmd.reference_price
        if reference is None:
            return ("no_reference_price", "a market entry needs reference_price for its caps")
        notional = intent.notional(reference)
        if notional > knobs.max_notional:
            return ("notional_above_posture", f"{notional} > {knobs.max_notional}")
        if notional > cfg.max_notional:
            return ("notional_cap", f"{notional} > {cfg.max_notional}")
        last = self._last_entry_at.get(intent.symbol)
        if (
            cmd.source != REPLACE_SOURCE
            and last is not None
            and now - last < knobs.entry_cooldown_s
        ):
            return ("entry_cooldown", f"{now - last:.3f}s < {knobs.entry_cooldown_s}s")
        resting = state.open_entry_orders(intent.symbol) - freed_orders
        if resting >= knobs.max_open_orders_per_symbol:
            return ("open_orders_posture", f"{resting} >= {knobs.max_open_orders_per_symbol}")
        if resting >= cfg.max_open_orders_per_symbol:
            return ("open_orders_cap", f"{resting} >= {cfg.max_open_orders_per_symbol}")
        while self._sent_times and now - self._sent_times[0] >= cfg.rate_window_s:
            self._sent_times.popleft()
        if len(self._sent_times) >= cfg.max_orders_per_window:
            return ("order_rate_cap", f"{len(self._sent_times)} in {cfg.rate_window_s}s")
        return self._leverage_refusal(intent, reference, freed_orders=freed_orders)

    def _leverage_refusal(
        self, intent: Intent, reference: Decimal, *, freed_orders: int
    ) -> tuple[str, str] | None:
        """The posture's ``max_leverage`` against projected gross notional over equity."""
        if self._equity is None:
            return ("equity_unknown", "no balance snapshot has given the equity yet")
        equity, read_at = self._equity
        age = self._clock.now() - read_at
        if age > self._config.equity_max_age_s:
            return (
                "equity_unknown",
                f"last equity is {age:.1f}s old > {self._config.equity_max_age_s}s",
            )
        if equity <= ZERO:
            return ("equity_not_positive", f"equity {equity}")
        gross, unvalued = self._projected_gross(intent, reference, freed_orders=freed_orders)
        if unvalued:
            return ("leverage_unvalued", f"no price to value {unvalued}")
        cap = equity * self.knobs.max_leverage
        if gross > cap:
            return (
                "leverage_above_posture",
                f"{gross} / {equity} = {gross / equity:.2f}x > {self.knobs.max_leverage}x",
            )
        return None

    def _projected_gross(
        self, intent: Intent, reference: Decimal, *, freed_orders: int
    ) -> tuple[Decimal, str]:
        """Gross notional if the entry and every possibly-live entry on one side fill.

        Per leg (symbol, position side): the position plus all buys, or the position minus
        all sells, whichever is larger in size, in quote currency. The entry is one more
        buy or sell on its own leg, valued with everything on its symbol at ``reference``
        (its price or the caller's reference). ``freed_orders`` same-side entries of the
        entry's leg are about to be cancelled (a replacement's pre-check): the smallest that
        many are left out, so the projection can only be too high, never too low.

        Returns:
            ``(gross, unvalued)``: ``unvalued`` names a symbol with exposure the journal
            has no price for (``""`` if every leg could be valued).
        """
        state = self._journal.state
        own = (intent.symbol, intent.position_side)
        qty = intent.quantity if intent.quantity is not None else ZERO
        # Per leg: signed position notional, buy notional, sell notional.
        legs: dict[tuple[str, PositionSide], list[Decimal]] = {}

        def leg(key: tuple[str, PositionSide]) -> list[Decimal]:
            return legs.setdefault(key, [ZERO, ZERO, ZERO])

        def price_of(symbol: str, hint: Decimal | None) -> Decimal | None:
            if symbol == intent.symbol:
                return reference
            if hint is not None:
                return hint
            return self._price_for(symbol)

        unvalued = ""
        for key, position in state.legs.items():
            if position.quantity == ZERO:
                continue
            price = price_of(key[0], None)
            if price is None:
                unvalued = unvalued or key[0]
                continue
            leg(key)[0] += position.quantity * price
        same_side: list[Decimal] = []
        for order in state.live_orders():
            if not order.risk_increasing or order.request.is_exit:
                continue
            request = order.request
            key = (request.symbol, request.position_side)
            price = price_of(request.symbol, state.price_hint(order))
            if price is None:
                unvalued = unvalued or request.symbol
                continue
            amount = order.remaining_qty * price
            if key == own and request.side is intent.side:
                same_side.append(amount)
                continue
            leg(key)[1 if request.side is Side.BUY else 2] += amount
        # Accepted intents whose first order is not journaled yet (their task is starting).
        for intent_id in sorted(self._in_flight):  # sorted: the detail names one symbol
            record = state.intents.get(intent_id)
            pending = record.intent if record is not None else None
            if (
                pending is None
                or not pending.is_risk_increasing
                or pending.quantity is None
                or state.orders_for_intent(intent_id)
            ):
                continue
            assert record is not None
            hint = pending.price if pending.price is not None else record.reference_price
            price = price_of(pending.symbol, hint)
            if price is None:
                unvalued = unvalued or pending.symbol
                continue
            amount = pending.quantity * price
            key = (pending.symbol, pending.position_side)
            if key == own and pending.side is intent.side:
                same_side.append(amount)
                continue
            leg(key)[1 if pending.side is Side.BUY else 2] += amount
        same_side.sort()
        kept = same_side[max(freed_orders, 0) :]
        own_leg = leg(own)
        own_leg[1 if intent.side is Side.BUY else 2] += sum(kept, ZERO) + qty * reference
        gross = sum(
            (max(abs(pos + buys), abs(pos - sells)) for pos, buys, sells in legs.values()), ZERO
        )
        return gross, unvalued

    def _price_for(self, symbol: str) -> Decimal | None:
        """The best price the journal has for ``symbol``: last fill, entry, an order's price."""
        state = self._journal.state
        price = state.last_price.get(symbol)
        if price is not None:
            return price
        for (leg_symbol, _), record in sorted(state.legs.items()):
            if leg_symbol == symbol and record.entry_price is not None:
                return record.entry_price
        for order in state.live_orders():
            if order.request.symbol == symbol:
                hint = state.price_hint(order)
                if hint is not None:
                    return hint
        return None

    def _entry_still_allowed(self, intent: Intent) -> tuple[str, str] | None:
        # Before a new generation: the world may have changed while we resolved.
        state = self._journal.state
        if state.halted:
            return ("halted", state.halt_reason)
        if not self.knobs.allow_entries:
            return ("posture_blocks_entries", f"posture {self.knobs.mode}")
        if intent.symbol in self._journal.state.frozen_symbols:
            return ("symbol_frozen", intent.symbol)
        return None

    # ----------------------------------------------------------------- one intent

    async def _work_intent(self, intent: Intent) -> None:
        try:
            await self._place_generations(intent)
        finally:
            self._in_flight.discard(intent.intent_id)
        # Out of flight first: a cancel asked meanwhile now goes to the orders (waiting for
        # an unresolved create if this task left one), instead of waiting for us again.
        reason = self._cancel_wanted.pop(intent.intent_id, None)
        if reason is not None:
            await self._cancel_intent(CancelIntent(intent.intent_id, reason))

    async def _place_generations(self, intent: Intent) -> None:
        ids = ClientIdSequence(self._prefix, intent.intent_id, intent.role)
        while True:
            outcome = await self._place(intent, ids.current, ids.generation)
            if outcome != "absent":
                return
            # The journal's OrderResolved(ABSENT) is the durable proof; core refuses to
            # advance on a proof about any other id.
            ids = ids.advance(
                GenerationProof(ids.current, ProofKind.ABSENT, "not_found_after_recv_window")
            )
            stop: tuple[str, str] | None = None
            wanted = self._cancel_wanted.get(intent.intent_id)
            if ids.generation >= self._config.max_generations:
                stop = ("generations_exhausted", f"{ids.generation} generations absent")
            elif wanted is not None:
                # Cancelled while its order was being placed, and that order never was:
                # nothing is left to cancel, and nothing more may be sent.
                stop = ("cancel_requested", wanted)
            elif intent.is_risk_increasing:
                stop = self._entry_still_allowed(intent)
            if stop is not None:
                await self._journal.append(
                    IntentRejected(intent.intent_id, intent.correlation_id, *stop)
                )
                return

    def _may_send(self, intent: Intent, generation: int) -> bool:
        """I7 at the last moment: every earlier generation of the intent is proven ABSENT."""
        for order in self._journal.state.orders_for_intent(intent.intent_id):
            if order.generation >= generation:
                return False
            if order.ledger_state is not LedgerState.ABSENT:
                return False
        return True

    async def _place(self, intent: Intent, coid: str, generation: int) -> str:
        """Send one generation; return ``placed``, ``rejected``, ``absent``, ``closed`` or ``unknown``."""
        if not self._may_send(intent, generation):
            await self._journal.append(
                IntentRejected(
                    intent.intent_id,
                    intent.correlation_id,
                    "ledger_conflict",
                    f"generation {generation} would be a second live order",
                )
            )
            return "rejected"
        request = intent.to_order_request(coid)
        await self._journal.append(
            OrderSending(
                intent_id=intent.intent_id,
                correlation_id=intent.correlation_id,
                client_order_id=coid,
                generation=generation,
                request=request,
                risk_increasing=intent.is_risk_increasing,
                recv_window_ms=self._config.recv_window_ms,
                sent_wall_ms=self._clock.wall_ms(),
            )
        )
        self._active.add(coid)
        try:
            self._crash.check(CrashPoint.AFTER_INTENT_DURABLE)
            return await self._send_create(intent, request)
        finally:
            self._active.discard(coid)

    async def _send_create(self, intent: Intent, request: OrderRequest) -> str:
        coid = request.client_order_id
        budget: RetryBudget | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                order = await call_within(
                    self._config.request_timeout_s,
                    Operation.CREATE,
                    self._venue.create_order,
                    request,
                )
            except VenueError as exc:
                error = exc
            else:
                self._crash.check(CrashPoint.AFTER_SEND_BEFORE_OUTCOME)
                await self._journal.append(
                    OrderAcked(intent.intent_id, intent.correlation_id, coid, order)
                )
                return "placed"
            verdict = error.verdict
            if verdict.order_exists:
                await self._journal.append(
                    OrderResolved(
                        intent.intent_id,
                        intent.correlation_id,
                        coid,
                        Resolution.PRESENT,
                        "duplicate_client_id",
                    )
                )
                return await self._resolve(self._order(coid))
            if error.is_ambiguous:
                await self._journal.append(
                    OrderOutcomeUnknown(
                        intent.intent_id,
                        intent.correlation_id,
                        coid,
                        verdict.error_class.value,
                        verdict.code,
                        verdict.reason,
                    )
                )
                return await self._resolve(self._order(coid))
            if verdict.error_class is ErrorClass.RETRYABLE:
                if budget is None:
                    policy = self._config.retry.policy_for(verdict.error_class, verdict.reason)
                    assert policy is not None
                    budget = RetryBudget(policy, started_at=self._clock.now())
                budget.attempts = attempt
                decision = budget.next(
                    self._clock.now(), self._rng, backoff_hint_s=verdict.backoff_hint_s
                )
                if decision.retry and decision.delay_s is not None:
                    await self._journal.append(
                        RetryScheduled(
                            intent.intent_id,
                            intent.correlation_id,
                            coid,
                            Operation.CREATE.value,
                            attempt,
                            decision.delay_s,
                            verdict.error_class.value,
                            verdict.reason,
                        )
                    )
                    await trio.sleep(decision.delay_s)
                    continue
                reason = f"retries_exhausted:{verdict.reason}"
            else:
                reason = verdict.reason
            await self._journal.append(
                OrderRejected(
                    intent.intent_id,
                    intent.correlation_id,
                    coid,
                    verdict.error_class.value,
                    verdict.code,
                    reason,
                )
            )
            return "rejected"

    def _order(self, coid: str) -> OrderRecord:
        return self._journal.state.orders[coid]

    # ----------------------------------------------------------------- resolution

    async def _resolve(self, order: OrderRecord) -> str:
        """Resolve an order whose existence or openness is unknown, by query and evidence.

        Returns ``placed`` (present, or settled by other evidence), ``absent`` (proven never
        placed), ``closed`` (existed, vanished with nothing more executed) or ``unknown``.
        """
        cfg = self._config
        coid = order.client_order_id
        started = self._clock.now()
        not_found: list[float] = []
        attempt = 0
        policy = cfg.retry.resolve
        while True:
            current = self._journal.state.orders.get(coid)
            if current is None:
                return "unknown"
            if not current.is_unresolved:
                # Stream evidence (or another task) settled it while we waited.
                return _settled(current)
            attempt += 1
            found: VenueOrder | None = None
            failure = ""
            try:
                found = await call_within(
                    cfg.request_timeout_s,
                    Operation.QUERY,
                    self._venue.query_order,
                    current.request.symbol,
                    client_order_id=coid,
                    conditional=current.conditional,
                )
            except VenueError as exc:
                failure = exc.verdict.reason
            current = self._journal.state.orders.get(coid)
            if current is None:
                return "unknown"
            if not current.is_unresolved:
                # Settled while the query was out: its answer is older than that evidence.
                # A closed status for an order still believed open is a fact worth keeping;
                # "open" or "not found" is not.
                if found is not None and not found.status.is_open and not current.is_terminal:
                    await self._journal.append(
                        OrderResolved(
                            current.intent_id,
                            current.correlation_id,
                            coid,
                            Resolution.PRESENT,
                            "query",
                            found,
                        )
                    )
                return _settled(self._journal.state.orders[coid])
            if failure == "order_not_found" and self._past_recv_window(current):
                now = self._clock.now()
                if not not_found or now - not_found[-1] >= cfg.absent_query_gap_s:
                    not_found.append(now)
                if len(not_found) >= cfg.absent_confirmations:
                    settled = await self._settle_not_found(current)
                    if settled is not None:
                        return settled
            if found is not None:
                await self._journal.append(
                    OrderResolved(
                        current.intent_id,
                        current.correlation_id,
                        coid,
                        Resolution.PRESENT,
                        "query",
                        found,
                    )
                )
                return "placed"
            elapsed = self._clock.now() - started
            if elapsed >= cfg.resolve_max_s:
                return "unknown"  # left UNKNOWN: the resolver loop tries again later (I2)
            delay = min(policy.backoff(min(attempt, 30), self._rng), cfg.absent_query_gap_s * 2)
            if not self._past_recv_window(current):
                # Not found means nothing before the window closes: wait it out.
                remaining = (self._window_end_ms(current) - self._clock.wall_ms()) / 1000.0
                delay = max(delay, min(remaining, cfg.absent_query_gap_s * 2))
            await self._journal.append(
                RetryScheduled(
                    current.intent_id,
                    current.correlation_id,
                    coid,
                    Operation.QUERY.value,
                    attempt,
                    delay,
                    ErrorClass.AMBIGUOUS.value,
                    failure or "resolve",
                )
            )
            await trio.sleep(delay)

    async def _settle_not_found(self, order: OrderRecord) -> str | None:
        """Enough "not found" answers: decide ABSENT, CLOSED, or not yet (``None``).

        ABSENT only for an order never shown to exist (I7); an order proven to exist is
        closed only once :meth:`_vanished` holds, and otherwise stays unresolved.
        """
        if not order.existence_proven:
            await self._journal.append(
                OrderResolved(
                    order.intent_id,
                    order.correlation_id,
                    order.client_order_id,
                    Resolution.ABSENT,
                    "not_found_after_recv_window",
                )
            )
            return "absent"
        if not self._vanished(order):
            return None
        await self._journal.append(
            OrderResolved(
                order.intent_id,
                order.correlation_id,
                order.client_order_id,
                Resolution.CLOSED,
                "vanished_after_existing",
            )
        )
        return "closed"

    def _vanished(self, order: OrderRecord) -> bool:
        """True if the journal shows the order gone with no fill it lacks (see module doc).

        The caller has its "not found" answers; this adds what only the journal knows: a
        snapshot stopped listing the order, ``vanish_backfills`` backfills of its symbol read
        the trades since then (and since its last fill), and the venue never reported more
        executed than the journal's trades explain.
        """
        backfills = self._journal.state.backfills_since_missing(order)
        if backfills is None or backfills < self._config.vanish_backfills:
            return False
        return order.tracker is None or order.tracker.missing_fill_qty == 0

    def _window_end_ms(self, order: OrderRecord) -> int:
        return order.sent_wall_ms + order.recv_window_ms + self._config.absent_margin_ms

    def _past_recv_window(self, order: OrderRecord) -> bool:
        return self._clock.wall_ms() >= self._window_end_ms(order)

    async def _resolver_loop(self) -> None:
        """Pick up unresolved orders (after a crash, a restart, or a timed-out resolution)."""
        while True:
            for order in self._journal.state.unresolved_orders():
                if order.client_order_id in self._active:
                    continue
                self._active.add(order.client_order_id)
                assert self._nursery is not None
                self._nursery.start_soon(self._resolve_orphaned, order)
            await trio.sleep(self._config.resolve_interval_s)

    async def _resolve_orphaned(self, order: OrderRecord) -> None:
        try:
            outcome = await self._resolve(order)
            rec = self._journal.state.intents.get(order.intent_id)
            if outcome == "absent" and rec is not None and rec.status is IntentStatus.OPEN:
                # The task that sent it is gone (restart): do not resend on its behalf. The
                # intent ends here; a strategy that still wants it submits a new intent.
                await self._journal.append(
                    IntentRejected(
                        order.intent_id,
                        order.correlation_id,
                        "absent_after_restart",
                        f"{order.client_order_id} proven absent",
                    )
                )
        finally:
            self._active.discard(order.client_order_id)

    # ----------------------------------------------------------------- cancel

    async def _cancel_intent(self, cmd: CancelIntent) -> None:
        """Cancel an intent's possibly-live orders, each in its own task (never blocks)."""
        if cmd.intent_id in self._in_flight:
            # The create is still being placed or resolved by its task: cancel once it
            # settles (the task calls back), never race it, and send no next generation.
            self._cancel_wanted[cmd.intent_id] = cmd.reason
            return
        self._cancel_wanted.pop(cmd.intent_id, None)
        for order in self._journal.state.orders_for_intent(cmd.intent_id):
            coid = order.client_order_id
            if order.is_terminal or coid in self._cancelling:
                continue
            # Unresolved creates included (after a restart no task is placing them):
            # cancel_order waits for, or starts, their resolution before it sends.
            self._cancelling.add(coid)
            assert self._nursery is not None
            self._nursery.start_soon(self._cancel_for_intent, coid, cmd.reason)

    async def _cancel_for_intent(self, coid: str, reason: str) -> None:
        try:
            await self.cancel_order(coid, reason)
        finally:
            self._cancelling.discard(coid)

    async def cancel_order(self, coid: str, reason: str) -> bool:
        """Cancel one of our orders, idempotently, with a status cross-check (I3).

        Built on :meth:`cancel_once` and :meth:`check_cancel` (so journaled like them: one
        ``CancelRequested``, then per attempt ``CancelResolved`` or ``CancelFailed``), at most
        ``cancel_max_attempts`` attempts with a ``RetryScheduled`` between two attempts and
        none after the last, then ``CancelFailed(retries_exhausted)``. An order whose create
        is unresolved is first resolved (:meth:`_await_create`, bounded by
        ``cancel_resolve_wait_s``); a cancel never sends a create.

        Returns:
            True when the order is known not to be open any more.
        """
        order = self._journal.state.orders.get(coid)
        if order is None:
            return False
        if order.is_terminal:
            return True
        if _create_unresolved(order):
            settled = await self._await_create(order)
            if settled is None:
                return False
            if settled.is_terminal:
                return True  # never placed (ABSENT), or already closed: nothing to cancel
        cfg = self._config
        announced = False
        for attempt in range(1, cfg.cancel_max_attempts + 1):
            sent = await self.cancel_once(coid, reason, announce=not announced)
            if sent.outcome is CancelOutcome.NOT_SENT:
                if sent.reason == "already_terminal":
                    return True  # the stream closed it between two attempts
                if announced:
                    await self._journal_cancel_failed(coid, f"not_sent:{sent.reason}")
                return False
            announced = True
            if sent.outcome is CancelOutcome.CANCELED:
                return True
            if sent.outcome is CancelOutcome.FATAL:
                return False
            if sent.outcome is CancelOutcome.UNCLEAR:
                check = await self.check_cancel(coid, sent.reason)
                if check.outcome in (CancelOutcome.CLOSED, CancelOutcome.NOT_FOUND):
                    return True
            if attempt == cfg.cancel_max_attempts:
                break  # the last attempt: no retry to announce, no backoff to wait (I2)
            delay = cfg.retry.retryable.backoff(attempt, self._rng)
            if sent.retry_after_s is not None:
                delay = max(delay, sent.retry_after_s)
            current = self._journal.state.orders[coid]
            await self._journal.append(
                RetryScheduled(
                    current.intent_id,
                    current.correlation_id,
                    coid,
                    Operation.CANCEL.value,
                    attempt,
                    delay,
                    sent.error_class,
                    sent.reason,
                )
            )
            await trio.sleep(delay)
        await self._journal_cancel_failed(coid, "retries_exhausted")
        return False

    async def _journal_cancel_failed(self, coid: str, reason: str) -> None:
        order = self._journal.state.orders[coid]
        await self._journal.append(
            CancelFailed(order.intent_id, order.correlation_id, coid, reason, True)
        )

    async def _await_create(self, order: OrderRecord) -> OrderRecord | None:
        """Wait until the create of ``order`` is resolved; start its resolution if idle.

        Returns the settled record, or ``None`` after journaling
        ``CancelFailed(create_unresolved_timeout)`` when ``cancel_resolve_wait_s`` ran out
        (the order may be live: the resolver keeps working on it, the cancel does not).
        """
        coid = order.client_order_id
        deadline = self._clock.now() + self._config.cancel_resolve_wait_s
        while True:
            current = self._journal.state.orders.get(coid)
            if current is None:
                return None
            if not _create_unresolved(current):
                return current
            now = self._clock.now()
            if now >= deadline:
                await self._journal_cancel_failed(coid, "create_unresolved_timeout")
                return None
            if (
                coid not in self._active
                and current.intent_id not in self._in_flight
                and self._nursery is not None
            ):
                # Nobody is resolving it (a restart, or its task gave up at resolve_max_s):
                # resolve it now rather than at the resolver loop's next pass. An intent in
                # flight is its own task's to resolve.
                self._active.add(coid)
                self._nursery.start_soon(self._resolve_orphaned, current)
            await trio.sleep(min(_CREATE_POLL_S, deadline - now))

    async def cancel_once(self, coid: str, reason: str, *, announce: bool) -> CancelAttempt:
        """Send exactly one cancel of one of our orders and report what it established.

        The one place a cancel of our order is sent and the answer classified. The
        single-attempt primitive for callers that run their own bounded lifecycle (the
        ReplaceManager's cancel-then-create machine decides whether to query or retry), and
        the step :meth:`cancel_order` repeats. Journaled: ``CancelRequested`` when
        ``announce`` (once per cancel, before the first request leaves), ``CancelResolved``
        on an ack, ``CancelFailed`` on a definite refusal (still open) or a fatal one. An
        unclear answer (-2011, unknown order, timeout, 5xx) is journaled by the status check
        that must follow it (:meth:`check_cancel`), never taken as success here (I3).

        Returns:
            A :class:`CancelAttempt`; ``NOT_SENT`` if the ledger does not hold the order, holds
            it as terminal, or its create is still unresolved.
        """
        order = self._journal.state.orders.get(coid)
        if order is None:
            return CancelAttempt(CancelOutcome.NOT_SENT, "not_in_ledger")
        if order.is_terminal:
            return CancelAttempt(CancelOutcome.NOT_SENT, "already_terminal")
        if _create_unresolved(order):
            # Whether the create landed is unknown: a cancel now answers -2011 and the
            # order may land afterwards; the resolver settles the create first.
            return CancelAttempt(CancelOutcome.NOT_SENT, "create_unresolved")
        if announce:
            await self._journal.append(
                CancelRequested(order.intent_id, order.correlation_id, coid, reason)
            )
        try:
            result = await call_within(
                self._config.request_timeout_s,
                Operation.CANCEL,
                self._venue.cancel_order,
                order.request.symbol,
                client_order_id=coid,
                conditional=order.conditional,
            )
        except VenueError as exc:
            verdict = exc.verdict
        else:
            await self._journal.append(
                CancelResolved(order.intent_id, order.correlation_id, coid, "cancel_ack", result)
            )
            return CancelAttempt(CancelOutcome.CANCELED, "cancel_ack", result)
        error_class = verdict.error_class.value
        if verdict.error_class is ErrorClass.FATAL:
            await self._journal.append(
                CancelFailed(order.intent_id, order.correlation_id, coid, verdict.reason, False)
            )
            return CancelAttempt(CancelOutcome.FATAL, verdict.reason, error_class=error_class)
        if verdict.error_class in (ErrorClass.IDEMPOTENT_SAFE, ErrorClass.AMBIGUOUS):
            return CancelAttempt(
                CancelOutcome.UNCLEAR,
                verdict.reason,
                retry_after_s=verdict.backoff_hint_s,
                error_class=error_class,
            )
        await self._journal.append(
            CancelFailed(order.intent_id, order.correlation_id, coid, verdict.reason, True)
        )
        return CancelAttempt(
            CancelOutcome.NOT_DONE,
            verdict.reason,
            retry_after_s=verdict.backoff_hint_s,
            error_class=error_class,
        )

    async def check_cancel(self, coid: str, why: str) -> CancelAttempt:
        """Query one of our orders once after an unclear cancel answer; the status decides (I3).

        Journaled as the cancel's outcome: closed is ``CancelResolved`` (with the fetched
        order), not found is ``CancelResolved`` without one (the order is not open; how it
        closed is unknown), still open or a failed query is ``CancelFailed`` with
        ``still_open=True``. ``why`` (the unclear answer's reason) prefixes the evidence.

        Returns:
            A :class:`CancelAttempt` with ``OPEN``, ``CLOSED``, ``NOT_FOUND`` or
            ``QUERY_FAILED`` (``NOT_SENT`` if the ledger does not hold the order).
        """
        order = self._journal.state.orders.get(coid)
        if order is None:
            return CancelAttempt(CancelOutcome.NOT_SENT, "not_in_ledger")
        try:
            found: VenueOrder | None = await call_within(
                self._config.request_timeout_s,
                Operation.QUERY,
                self._venue.query_order,
                order.request.symbol,
                client_order_id=coid,
                conditional=order.conditional,
            )
        except VenueError as exc:
            found, failure = None, exc.verdict.reason
            if failure == "order_not_found":
                await self._journal.append(
                    CancelResolved(
                        order.intent_id, order.correlation_id, coid, f"{why}+not_found", None
                    )
                )
                return CancelAttempt(CancelOutcome.NOT_FOUND, failure)
        if found is None:
            await self._journal.append(
                CancelFailed(order.intent_id, order.correlation_id, coid, f"{why}+{failure}", True)
            )
            return CancelAttempt(CancelOutcome.QUERY_FAILED, failure)
        if found.status.is_open:
            # -2011 while the order is live: NOT a success (the seed's bug, I3).
            await self._journal.append(
                CancelFailed(order.intent_id, order.correlation_id, coid, f"{why}+still_open", True)
            )
            return CancelAttempt(CancelOutcome.OPEN, "still_open", found)
        await self._journal.append(
            CancelResolved(order.intent_id, order.correlation_id, coid, f"{why}+query", found)
        )
        return CancelAttempt(CancelOutcome.CLOSED, found.status.value, found)

    async def lookup(self, symbol: str, coid: str) -> Lookup:
        """Query one order by client order id, plain then conditional (adoption's look-up).

        A failed query (timeout, 5xx, 429, ...) is never read as "not found": the answer is
        ``UNKNOWN`` unless the other endpoint found the order.

        Returns:
            ``FOUND`` with the venue's order, ``NOT_FOUND`` when both endpoints answered
            "does not exist", ``UNKNOWN`` (with the failures as ``reason``) otherwise.
        """
        failures: list[str] = []
        for conditional in (False, True):
            try:
                order = await call_within(
                    self._config.request_timeout_s,
                    Operation.QUERY,
                    self._venue.query_order,
                    symbol,
                    client_order_id=coid,
                    conditional=conditional,
                )
            except VenueError as exc:
                if exc.verdict.reason != "order_not_found":
                    endpoint = "conditional" if conditional else "plain"
                    failures.append(f"{endpoint}:{exc.verdict.reason}")
                continue
            return Lookup(LookupOutcome.FOUND, order)
        if failures:
            return Lookup(LookupOutcome.UNKNOWN, reason=",".join(failures))
        return Lookup(LookupOutcome.NOT_FOUND, reason="order_not_found")

    async def cancel_foreign(self, symbol: str, order_id: str, reason: str) -> bool:
        """Cancel a venue order that is not in our ledger (an orphan), by venue order id.

        Idempotent like :meth:`cancel_order`: "not open" is success. Journaled as a cancel
        of the orphan's client-order-less id so the journal shows what was done and why.
        """
        for conditional in (False, True):
            try:
                await call_within(
                    self._config.request_timeout_s,
                    Operation.CANCEL,
                    self._venue.cancel_order,
                    symbol,
                    order_id=order_id,
                    conditional=conditional,
                )
            except VenueError as exc:
                if exc.verdict.error_class is ErrorClass.IDEMPOTENT_SAFE and not conditional:
                    continue  # maybe it lives on the conditional endpoints
                if exc.verdict.error_class is ErrorClass.IDEMPOTENT_SAFE:
                    break
                continue
            await self._journal.append(
                CancelResolved("", f"orphan:{order_id}", f"venue:{order_id}", reason, None)
            )
            return True
        return False
