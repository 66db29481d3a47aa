"""The Router's resolver against a scripted venue: orders that vanish, orders that never were.

The venue here is a small fake that does exactly what each test scripts (forget an order,
time out a create, answer -4116, answer a query late), so the evidence the resolver sees is
the evidence a test means. The rest of the evidence (snapshot misses, trade backfills, stream
updates) is journaled by the test the way the Reconciler and the EvidenceCollector journal
it. Everything runs on trio's MockClock with autojump: recvWindows and backoffs cost no time.
"""

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import TypeVar, cast

import attrs
import pytest
import trio

from scalper.actors.journal import Journal
from scalper.actors.router import Lookup, LookupOutcome, Router, RouterConfig
from scalper.clock import simulated_clock
from scalper.core.errors import Operation, classify_error
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import Fill, OrderRequest, VenueOrder, VenueOrderStatus
from scalper.core.orders import OrderState
from scalper.core.posture import GuardKnobs, PostureConfig, PostureMode, knobs_for
from scalper.core.types import OrderType, PositionSide, Side
from scalper.messages import (
    BackfillCompleted,
    CancelFailed,
    CancelIntent,
    CancelRequested,
    CancelResolved,
    FillApplied,
    IntentRejected,
    OrderMissing,
    OrderObserved,
    OrderResolved,
    PositionSynced,
    Resolution,
    RetryScheduled,
    SubmitIntent,
    decode_event,
)
from scalper.state import IntentStatus, OrderRecord
from scalper.store.records import LedgerState
from scalper.store.store import Store
from scalper.venues.base import Venue, VenueError

D = Decimal
BTC = "BTCUSDT"
GREEN = knobs_for(0.0, PostureMode.GREEN, PostureConfig())
NOW_MS = 1_767_225_600_000  # the simulated wall clock's origin (trio time 0 under MockClock)


def wall_ms() -> int:
    """The wall time the Router's clock reads now (what actors stamp their evidence with)."""
    return NOW_MS + round(trio.current_time() * 1000)


def not_found() -> VenueError:
    verdict = classify_error(400, -2013, "Order does not exist.", operation=Operation.QUERY)
    return VenueError(verdict, "Order does not exist.", Operation.QUERY)


def duplicate_id() -> VenueError:
    verdict = classify_error(400, -4116, "ClientOrderId is duplicated.", operation=Operation.CREATE)
    return VenueError(verdict, "ClientOrderId is duplicated.", Operation.CREATE)


def timed_out() -> VenueError:
    return VenueError.transport(request_written=True, operation=Operation.CREATE, detail="t/o")


def unavailable(operation: Operation = Operation.QUERY) -> VenueError:
    """A documented 100%-failure 503: the request was not executed, nothing is learnt."""
    verdict = classify_error(503, None, "Service Unavailable", operation=operation)
    return VenueError(verdict, "Service Unavailable", operation)


def rate_limited() -> VenueError:
    verdict = classify_error(429, -1003, "Too many requests.", operation=Operation.CANCEL)
    return VenueError(verdict, "Too many requests.", Operation.CANCEL)


def cancel_not_open() -> VenueError:
    verdict = classify_error(400, -2011, "Unknown order sent.", operation=Operation.CANCEL)
    return VenueError(verdict, "Unknown order sent.", Operation.CANCEL)


class ScriptedVenue:
    """Orders by client id; a test decides what a create answers and what the venue forgets.

    ``create_errors`` are raised by the next creates, in order (an entry of ``None`` lets the
    create through); ``lands`` says whether a failing create still reached the book.
    """

    def __init__(self) -> None:
        self.orders: dict[str, VenueOrder] = {}
        self.forgotten: set[str] = set()
        self.creates: list[str] = []
        self.queries: list[str] = []
        self.create_errors: list[tuple[VenueError, bool] | None] = []
        self.query_delay_s = 0.0
        #: While set, every query answers a 503: the venue tells nothing.
        self.queries_down = False
        #: Per endpoint (``conditional``), an error every query there answers with.
        self.endpoint_errors: dict[bool, VenueError] = {}
        #: Client ids on the conditional (algo) endpoints (besides conditional order types).
        self.algo: set[str] = set()
        self.cancels: list[str] = []
        #: Raised by the next cancels, in order; then ``cancel_always`` (if set) by every one.
        self.cancel_errors: list[VenueError] = []
        self.cancel_always: VenueError | None = None
        self._next_id = 100

    def _book(self, req: OrderRequest) -> VenueOrder:
        self._next_id += 1
        order = VenueOrder(
            symbol=req.symbol,
            order_id=str(self._next_id),
            client_order_id=req.client_order_id,
            side=req.side,
            order_type=req.order_type,
            status=VenueOrderStatus.NEW,
            quantity=req.quantity or D(0),
            price=req.price,
            stop_price=req.stop_price,
            time_in_force=req.time_in_force,
            close_position=req.close_position,
        )
        self.orders[req.client_order_id] = order
        return order

    async def create_order(self, req: OrderRequest) -> VenueOrder:
        await trio.lowlevel.checkpoint()
        self.creates.append(req.client_order_id)
        scripted = self.create_errors.pop(0) if self.create_errors else None
        if scripted is not None:
            error, lands = scripted
            if lands:
                self._book(req)
            raise error
        return self._book(req)

    async def query_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        conditional: bool = False,
    ) -> VenueOrder:
        assert client_order_id is not None
        self.queries.append(client_order_id)
        # The answer is read when the request is served; a slow response is delivered later.
        found = self.orders.get(client_order_id)
        on_algo = client_order_id in self.algo or (
            found is not None and found.order_type.is_conditional
        )
        # Each endpoint knows only its own orders (plain or conditional).
        gone = client_order_id in self.forgotten or conditional != on_algo
        await trio.sleep(self.query_delay_s)
        if self.queries_down:
            raise unavailable()
        if conditional in self.endpoint_errors:
            raise self.endpoint_errors[conditional]
        if found is None or gone:
            raise not_found()
        return found

    async def cancel_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        conditional: bool = False,
    ) -> VenueOrder:
        await trio.lowlevel.checkpoint()
        assert client_order_id is not None
        self.cancels.append(client_order_id)
        error = self.cancel_errors.pop(0) if self.cancel_errors else self.cancel_always
        if error is not None:
            raise error
        order = self.orders.get(client_order_id)
        if order is None or client_order_id in self.forgotten or not order.status.is_open:
            raise cancel_not_open()
        closed = attrs.evolve(order, status=VenueOrderStatus.CANCELED)
        self.orders[client_order_id] = closed
        return closed

    def is_open(self, coid: str) -> bool:
        """Ground truth: the order rests on the book."""
        order = self.orders.get(coid)
        return order is not None and order.status.is_open and coid not in self.forgotten

    def forget(self, coid: str) -> None:
        """The venue closes the order unfilled and, past its retention, stops knowing it."""
        self.forgotten.add(coid)


EQUITY = D("100000")


async def feed_equity(router: Router, equity: Decimal, every_s: float = 5.0) -> None:
    """What the Reconciler does with every balance snapshot: tell the Router the equity."""
    while True:
        router.note_equity(equity)
        await trio.sleep(every_s)


@asynccontextmanager
async def router_on(
    venue: ScriptedVenue,
    config: RouterConfig | None = None,
    *,
    knobs: GuardKnobs = GREEN,
    equity: Decimal | None = EQUITY,
    store: Store | None = None,
) -> AsyncIterator[tuple[Router, Journal]]:
    clock = simulated_clock(NOW_MS)
    journal = Journal(store or Store.open(":memory:"), clock=clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        router = Router(
            cast(Venue, venue),
            journal,
            clock=clock,
            rng=random.Random(7),
            prefix="sc",
            config=config or RouterConfig(),
            initial_knobs=knobs,
        )
        if equity is not None:
            nursery.start_soon(feed_equity, router, equity)
        await nursery.start(router.run)
        yield router, journal
        nursery.cancel_scope.cancel()


async def until(predicate, *, limit_s: float = 600.0, step: float = 0.1) -> None:
    with trio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110 - polling virtual time is the point
            await trio.sleep(step)


def limit_entry(intent_id: str, qty: str = "0.002") -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=Side.BUY,
        quantity=D(qty),
        order_type=OrderType.LIMIT,
        price=D("50000"),
    )


def only_order(journal: Journal, intent_id: str) -> OrderRecord:
    (order,) = journal.state.orders_for_intent(intent_id)
    return order


def resolutions(journal: Journal) -> list[OrderResolved]:
    out = []
    for e in journal.store.entries():
        if e.type == "order_resolved":
            event = decode_event(e.type, e.payload)
            assert isinstance(event, OrderResolved)
            out.append(event)
    return out


async def snapshot_missed(journal: Journal, order: OrderRecord) -> None:
    """What the Reconciler journals when snapshots stop listing the order."""
    await journal.append(
        OrderMissing(order.intent_id, order.correlation_id, order.client_order_id, wall_ms())
    )


async def backfilled(journal: Journal, n: int = 1) -> None:
    """What the EvidenceCollector journals after a trade backfill that found nothing new."""
    for _ in range(n):
        await journal.append(BackfillCompleted(BTC, "7", 0, 0, "routine", cursor="7"))
        await trio.sleep(1.0)


def trade_of(order: OrderRecord, trade_id: str, qty: str) -> FillApplied:
    return FillApplied(
        order.intent_id,
        order.correlation_id,
        Fill(
            symbol=BTC,
            trade_id=trade_id,
            order_id=order.venue_order_id or "",
            client_order_id=order.client_order_id,
            side=Side.BUY,
            quantity=D(qty),
            price=D("50000"),
        ),
        "stream",
    )


async def acked_order(router: Router, journal: Journal, intent_id: str) -> OrderRecord:
    receipt = await router.submit(SubmitIntent(limit_entry(intent_id)))
    assert receipt.accepted, receipt
    await until(lambda: only_order(journal, intent_id).order_state is OrderState.LIVE)
    return only_order(journal, intent_id)


# ------------------------------------------------------------------ (a) an order that vanished


async def test_acked_order_the_venue_forgets_is_closed_not_resent(autojump_clock) -> None:
    venue = ScriptedVenue()
    async with router_on(venue) as (router, journal):
        order = await acked_order(router, journal, "e1")
        coid = order.client_order_id
        # The order is cancelled at the venue unseen (stream down), and later forgotten.
        venue.forget(coid)
        await snapshot_missed(journal, order)
        assert only_order(journal, "e1").order_state is OrderState.STATUS_UNKNOWN
        # "Not found" answers alone, however many, do not close an order proven to exist:
        # the trades have not been backfilled since it went missing.
        await trio.sleep(150)
        assert len(venue.queries) >= 10
        assert [o.client_order_id for o in journal.state.unresolved_orders()] == [coid]
        await backfilled(journal, 1)
        await trio.sleep(30)
        assert journal.state.unresolved_orders() != []  # one backfill is not enough
        await backfilled(journal, 1)
        await until(lambda: not journal.state.unresolved_orders())
        closed = only_order(journal, "e1")
        (resolved,) = resolutions(journal)
        # Resubmitting the intent has no effect (I7): it is in the ledger.
        again = await router.submit(SubmitIntent(limit_entry("e1")))
        await trio.sleep(30)
    assert resolved.resolution is Resolution.CLOSED
    assert resolved.evidence == "vanished_after_existing"
    assert (resolved.intent_id, resolved.correlation_id) == ("e1", "e1")
    assert closed.ledger_state is LedgerState.CANCELED
    assert closed.filled_qty == 0
    assert journal.state.intents["e1"].status is IntentStatus.DONE
    assert venue.creates == [coid]  # never a second generation
    assert (again.accepted, again.reason) == (False, "duplicate_intent")
    assert journal.state.count("resolved_closed.vanished_after_existing") == 1
    assert journal.state.contradictions == []


async def test_vanished_order_keeps_its_fills_and_waits_for_backfills_after_the_last(
    autojump_clock,
) -> None:
    venue = ScriptedVenue()
    async with router_on(venue) as (router, journal):
        order = await acked_order(router, journal, "e2")
        await journal.append(trade_of(order, "t1", "0.001"))
        venue.forget(order.client_order_id)
        await snapshot_missed(journal, order)
        await backfilled(journal, 1)
        # A backfill finds one more of its trades: the backfills before it no longer count.
        await journal.append(trade_of(order, "t2", "0.0005"))
        await backfilled(journal, 1)
        await trio.sleep(60)
        still_open = journal.state.unresolved_orders()
        await backfilled(journal, 1)
        await until(lambda: not journal.state.unresolved_orders())
        closed = only_order(journal, "e2")
    assert [o.client_order_id for o in still_open] == [order.client_order_id]
    assert closed.ledger_state is LedgerState.CANCELED
    assert closed.filled_qty == D("0.0015")  # executed quantity kept, nothing invented
    assert journal.state.position(BTC) == D("0.0015")
    assert journal.state.count("fills") == 2
    assert venue.creates == [order.client_order_id]


async def test_vanished_order_with_fills_the_journal_lacks_is_never_closed(
    autojump_clock,
) -> None:
    venue = ScriptedVenue()
    async with router_on(venue) as (router, journal):
        order = await acked_order(router, journal, "e3")
        # A query said 0.001 executed, but no trade for it reached the journal.
        partial = attrs.evolve(
            venue.orders[order.client_order_id],
            status=VenueOrderStatus.PARTIALLY_FILLED,
            filled_qty=D("0.001"),
        )
        await journal.append(
            OrderObserved("e3", "e3", order.client_order_id, partial, "query", wall_ms())
        )
        venue.forget(order.client_order_id)
        await snapshot_missed(journal, order)
        await backfilled(journal, 3)
        await trio.sleep(200)
        current = only_order(journal, "e3")
    assert current.is_unresolved
    assert current.tracker is not None
    assert current.tracker.missing_fill_qty == D("0.001")
    assert resolutions(journal) == []


async def test_duplicate_client_id_then_forgotten_is_closed_never_absent(autojump_clock) -> None:
    # -4116 proves an order with our id exists although we never saw its venue id. After
    # the venue forgets it, "not found" must close it, never prove it ABSENT (which would
    # license generation 1: a second risk-increasing order for the intent, I7).
    venue = ScriptedVenue()
    venue.create_errors = [(duplicate_id(), False)]
    async with router_on(venue) as (router, journal):
        assert (await router.submit(SubmitIntent(limit_entry("e4")))).accepted
        await until(lambda: bool(journal.state.orders_for_intent("e4")))
        order = only_order(journal, "e4")
        await until(lambda: only_order(journal, "e4").order_state is OrderState.STATUS_UNKNOWN)
        assert order.venue_order_id is None
        assert order.existence_proven
        await trio.sleep(60)  # many "not found" answers: still unresolved, still one order
        assert only_order(journal, "e4").is_unresolved
        await snapshot_missed(journal, order)
        await backfilled(journal, 2)
        await until(lambda: not journal.state.unresolved_orders())
    assert [r.resolution for r in resolutions(journal)] == [
        Resolution.PRESENT,
        Resolution.CLOSED,
    ]
    assert only_order(journal, "e4").ledger_state is LedgerState.CANCELED
    assert venue.creates == [order.client_order_id]


async def test_close_position_stop_answered_4116_is_never_proven_absent(autojump_clock) -> None:
    # A close-position stop has no tracker, so its existence proof is the -4116 itself (no
    # venue id, no tracker state): not found afterwards must not unlock generation 1.
    venue = ScriptedVenue()
    venue.create_errors = [(duplicate_id(), False)]
    stop = Intent(
        intent_id="s1",
        symbol=BTC,
        side=Side.SELL,
        quantity=None,
        kind=IntentKind.PROTECT,
        order_type=OrderType.STOP_MARKET,
        stop_price=D("45000"),
        close_position=True,
    )
    async with router_on(venue) as (router, journal):
        assert (await router.submit(SubmitIntent(stop))).accepted
        await until(lambda: bool(journal.state.orders_for_intent("s1")))
        order = only_order(journal, "s1")
        await trio.sleep(120)
        assert only_order(journal, "s1").ledger_state is LedgerState.UNKNOWN
        await snapshot_missed(journal, order)
        await backfilled(journal, 2)
        await until(lambda: not journal.state.unresolved_orders())
    assert order.tracker is None
    assert [r.resolution for r in resolutions(journal)] == [
        Resolution.PRESENT,
        Resolution.CLOSED,
    ]
    assert only_order(journal, "s1").ledger_state is LedgerState.CANCELED
    assert venue.creates == [order.client_order_id]
    assert journal.state.contradictions == []


# ------------------------------------------------------------------ (b) never shown to exist


async def test_order_never_shown_to_exist_still_follows_the_absent_rule(autojump_clock) -> None:
    venue = ScriptedVenue()
    venue.create_errors = [(timed_out(), False)]  # the create never reached the book
    async with router_on(venue) as (router, journal):
        assert (await router.submit(SubmitIntent(limit_entry("e5")))).accepted
        await until(lambda: bool(journal.state.orders_for_intent("e5")))
        first = journal.state.orders_for_intent("e5")[0]
        await until(lambda: journal.state.orders[first.client_order_id].is_unresolved)
        # Even with the vanish evidence in the journal, an order never shown to exist is
        # not "closed": it is proven ABSENT by the recvWindow rule, and generation 1 goes.
        await snapshot_missed(journal, first)
        await backfilled(journal, 2)
        await until(lambda: len(journal.state.orders_for_intent("e5")) == 2)
        await until(lambda: journal.state.orders_for_intent("e5")[1].order_state is OrderState.LIVE)
        orders = journal.state.orders_for_intent("e5")
    assert [r.resolution for r in resolutions(journal)] == [Resolution.ABSENT]
    assert resolutions(journal)[0].evidence == "not_found_after_recv_window"
    assert orders[0].ledger_state is LedgerState.ABSENT
    assert [o.generation for o in orders] == [0, 1]
    assert venue.creates == [o.client_order_id for o in orders]


# ------------------------------------------------------------------ (c) found live again


async def test_order_found_live_on_a_later_query_stays_live(autojump_clock) -> None:
    venue = ScriptedVenue()
    async with router_on(venue) as (router, journal):
        order = await acked_order(router, journal, "e6")
        coid = order.client_order_id
        # A lagging snapshot missed it, and backfills ran: but the venue still has it.
        await snapshot_missed(journal, order)
        await backfilled(journal, 2)
        await until(lambda: only_order(journal, "e6").order_state is OrderState.LIVE)
        assert journal.state.backfills_since_missing(only_order(journal, "e6")) is None
        # It then really goes. The old miss and the old backfills prove nothing now: only
        # backfills after the new miss count.
        venue.forget(coid)
        await snapshot_missed(journal, order)
        await trio.sleep(90)
        assert only_order(journal, "e6").is_unresolved
        await backfilled(journal, 2)
        await until(lambda: not journal.state.unresolved_orders())
    assert [r.resolution for r in resolutions(journal)] == [
        Resolution.PRESENT,
        Resolution.CLOSED,
    ]
    present = resolutions(journal)[0]
    assert present.order is not None
    assert present.order.status is VenueOrderStatus.NEW
    assert only_order(journal, "e6").ledger_state is LedgerState.CANCELED
    assert venue.creates == [coid]


# ------------------------------------------------------------------ a late query answer


async def test_a_query_answer_older_than_the_stream_is_not_journaled(autojump_clock) -> None:
    # The create times out but lands; the resolver's query is served while the order rests,
    # and its answer ("NEW") arrives after the stream reported the fill. Journaling it would
    # claim an open order after FILLED: old news, not a contradiction.
    venue = ScriptedVenue()
    venue.create_errors = [(timed_out(), True)]
    venue.query_delay_s = 3.0
    async with router_on(venue) as (router, journal):
        assert (await router.submit(SubmitIntent(limit_entry("e7")))).accepted
        await until(lambda: bool(venue.queries))
        order = only_order(journal, "e7")
        assert order.order_state is OrderState.UNKNOWN
        await journal.append(trade_of(order, "t9", "0.002"))
        assert only_order(journal, "e7").order_state is OrderState.FILLED
        await trio.sleep(10)
    assert resolutions(journal) == []
    assert journal.state.contradictions == []
    assert journal.state.count("fills") == 1
    assert only_order(journal, "e7").ledger_state is LedgerState.FILLED
    assert venue.creates == [order.client_order_id]


# ------------------------------------------------------------------ helpers for what follows

_T = TypeVar("_T")


def events_of(journal: Journal, cls: type[_T]) -> list[_T]:
    decoded = (decode_event(e.type, e.payload) for e in journal.store.entries())
    return [e for e in decoded if isinstance(e, cls)]


def cancel_retries(journal: Journal, coid: str) -> list[RetryScheduled]:
    return [
        r
        for r in events_of(journal, RetryScheduled)
        if r.client_order_id == coid and r.operation == Operation.CANCEL.value
    ]


def cancel_failures(journal: Journal, coid: str) -> list[str]:
    return [f.reason for f in events_of(journal, CancelFailed) if f.client_order_id == coid]


def knobs(**changes: object) -> GuardKnobs:
    """Loose GREEN knobs; a test tightens the one it is about."""
    base = GuardKnobs(
        allow_entries=True,
        max_notional=D("1000000"),
        max_leverage=5,
        min_entry_conf=0.0,
        entry_cooldown_s=0.0,
        max_open_orders_per_symbol=10,
        mode=PostureMode.GREEN,
        kill_switch_trip=False,
    )
    return attrs.evolve(base, **changes)  # type: ignore[arg-type]


def limit_at(intent_id: str, qty: str, price: str = "50000", side: Side = Side.BUY) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=side,
        quantity=D(qty),
        order_type=OrderType.LIMIT,
        price=D(price),
    )


def reduce_only_exit(intent_id: str, qty: str) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=Side.SELL,
        quantity=D(qty),
        kind=IntentKind.EXIT,
        reduce_only=True,
    )


# ------------------------------------------------------------------ (1, 2) one cancel path


async def test_a_cancel_the_venue_keeps_refusing_schedules_no_retry_after_its_last_attempt(
    autojump_clock,
) -> None:
    # Every cancel is answered 429 (not executed). Three attempts means two retries, and
    # the give-up comes right after the third answer, not a backoff later.
    venue = ScriptedVenue()
    async with router_on(venue, RouterConfig(cancel_max_attempts=3)) as (router, journal):
        order = await acked_order(router, journal, "c1")
        coid = order.client_order_id
        venue.cancel_always = rate_limited()
        started = trio.current_time()
        done = await router.cancel_order(coid, "strategy")
        elapsed = trio.current_time() - started
        retries = cancel_retries(journal, coid)
        failures = cancel_failures(journal, coid)
    assert done is False
    assert venue.cancels == [coid] * 3
    assert [r.attempt for r in retries] == [1, 2]
    assert {r.error_class for r in retries} == {"RETRYABLE"}
    # One CancelFailed per refused attempt (as cancel_once journals it), then the give-up.
    assert failures == ["rate_limited"] * 3 + ["retries_exhausted"]
    assert elapsed == sum(r.delay_s for r in retries)
    assert venue.is_open(coid)
    assert journal.state.count("retries.CANCEL") == 2


async def test_a_2011_on_a_live_order_is_cross_checked_on_every_attempt(autojump_clock) -> None:
    # -2011 while the order rests (the seed's bug, I3): each answer is checked by a query,
    # found open, and is a failure; never success.
    venue = ScriptedVenue()
    async with router_on(venue, RouterConfig(cancel_max_attempts=2)) as (router, journal):
        order = await acked_order(router, journal, "c2")
        coid = order.client_order_id
        venue.cancel_always = cancel_not_open()
        queries_before = len(venue.queries)
        done = await router.cancel_order(coid, "strategy")
        queries = len(venue.queries) - queries_before
        failures = cancel_failures(journal, coid)
        retries = cancel_retries(journal, coid)
        current = only_order(journal, "c2")
    assert done is False
    assert queries == 2
    assert failures == ["cancel_not_open+still_open"] * 2 + ["retries_exhausted"]
    assert [r.attempt for r in retries] == [1]
    assert retries[0].error_class == "IDEMPOTENT_SAFE"
    assert not current.is_terminal
    assert venue.is_open(coid)


async def test_a_2011_on_an_order_that_already_expired_is_success_by_query(autojump_clock) -> None:
    venue = ScriptedVenue()
    async with router_on(venue) as (router, journal):
        order = await acked_order(router, journal, "c3")
        coid = order.client_order_id
        venue.orders[coid] = attrs.evolve(venue.orders[coid], status=VenueOrderStatus.EXPIRED)
        done = await router.cancel_order(coid, "strategy")
        resolved = [e for e in events_of(journal, CancelResolved) if e.client_order_id == coid]
        requested = [e for e in events_of(journal, CancelRequested) if e.client_order_id == coid]
        current = only_order(journal, "c3")
    assert done is True
    assert venue.cancels == [coid]
    assert [r.evidence for r in resolved] == ["cancel_not_open+query"]
    assert [r.reason for r in requested] == ["strategy"]
    assert cancel_retries(journal, coid) == []
    assert current.ledger_state is LedgerState.EXPIRED


# ------------------------------------------------------------------ (3) lookup says what it knows


async def test_lookup_never_turns_a_failed_query_into_absent(autojump_clock) -> None:
    venue = ScriptedVenue()
    async with router_on(venue) as (router, journal):
        order = await acked_order(router, journal, "l1")
        coid = order.client_order_id
        found = await router.lookup(BTC, coid)
        missing = await router.lookup(BTC, "sc-unknown-id")
        # The plain endpoint answers 503: the order may well exist there.
        venue.endpoint_errors[False] = unavailable()
        unknown = await router.lookup(BTC, coid)
        unknown_missing = await router.lookup(BTC, "sc-unknown-id")
        # An algo order found on the conditional endpoint is an answer, whatever the other said.
        venue.algo.add(coid)
        algo = await router.lookup(BTC, coid)
        venue.endpoint_errors.clear()
        venue.queries_down = True
        down = await router.lookup(BTC, coid)
    assert found.outcome is LookupOutcome.FOUND
    assert found.order is not None
    assert found.order.client_order_id == coid
    assert (missing.outcome, missing.order) == (LookupOutcome.NOT_FOUND, None)
    assert (unknown.outcome, unknown.order) == (LookupOutcome.UNKNOWN, None)
    assert unknown.reason == "plain:service_unavailable_503"
    assert unknown_missing.outcome is LookupOutcome.UNKNOWN
    assert algo.outcome is LookupOutcome.FOUND
    assert down.outcome is LookupOutcome.UNKNOWN
    assert down.reason == "plain:service_unavailable_503,conditional:service_unavailable_503"


def test_a_lookup_record_cannot_claim_found_without_the_order() -> None:
    with pytest.raises(ValueError, match="order"):
        Lookup(LookupOutcome.FOUND)
    with pytest.raises(ValueError, match="order"):
        Lookup(LookupOutcome.UNKNOWN, order=attrs.evolve(_venue_order(), client_order_id="x"))


def _venue_order() -> VenueOrder:
    return VenueOrder(
        symbol=BTC,
        order_id="1",
        client_order_id="sc-x",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        status=VenueOrderStatus.NEW,
        quantity=D("0.002"),
        price=D("50000"),
    )


# ------------------------------------------------------------------ (4) cancel an unresolved create


async def test_a_cancel_after_a_restart_waits_for_the_lost_create_and_then_cancels(
    autojump_clock,
) -> None:
    # Process 1: the create is answered "timed out" but lands, and the venue answers no query:
    # the order is UNKNOWN when the process goes. Process 2 is asked to cancel the intent (a
    # halt sweep) while the venue still answers nothing. The cancel must neither be sent
    # blind (-2011 proves nothing while the create may land) nor be dropped: it waits for
    # the resolution, then cancels the order the venue really has.
    venue = ScriptedVenue()
    venue.create_errors = [(timed_out(), True)]
    venue.queries_down = True
    store = Store.open(":memory:")
    async with router_on(venue, store=store) as (router, journal):
        assert (await router.submit(SubmitIntent(limit_entry("h1")))).accepted
        await until(lambda: bool(venue.queries))
        coid = only_order(journal, "h1").client_order_id
        assert only_order(journal, "h1").order_state is OrderState.UNKNOWN
    assert venue.is_open(coid)
    async with router_on(venue, store=store) as (router, journal):
        await router.cancel(CancelIntent("h1", "halt:operator"))
        await trio.sleep(20)
        sent_while_unknown = list(venue.cancels)
        still_unresolved = only_order(journal, "h1").is_unresolved
        venue.queries_down = False
        await until(lambda: only_order(journal, "h1").is_terminal)
        requested = events_of(journal, CancelRequested)
        final = only_order(journal, "h1")
    assert still_unresolved
    assert sent_while_unknown == []
    assert venue.cancels == [coid]
    assert not venue.is_open(coid)
    assert venue.orders[coid].status is VenueOrderStatus.CANCELED
    assert [(c.intent_id, c.client_order_id, c.reason) for c in requested] == [
        ("h1", coid, "halt:operator")
    ]
    assert final.ledger_state is LedgerState.CANCELED
    assert venue.creates == [coid]  # the cancel never sent a create


async def test_a_cancel_asked_while_the_create_is_being_resolved_is_not_lost(
    autojump_clock,
) -> None:
    # Same process: the cancel arrives while the Router's own task is still resolving the
    # ambiguous create. Once the create resolves, the cancel goes, with the asked reason.
    venue = ScriptedVenue()
    venue.create_errors = [(timed_out(), True)]
    venue.queries_down = True
    async with router_on(venue) as (router, journal):
        assert (await router.submit(SubmitIntent(limit_entry("h2")))).accepted
        await until(lambda: bool(venue.queries))
        coid = only_order(journal, "h2").client_order_id
        await router.cancel(CancelIntent("h2", "operator"))
        await trio.sleep(5)
        venue.queries_down = False
        await until(lambda: only_order(journal, "h2").is_terminal)
        requested = events_of(journal, CancelRequested)
    assert venue.orders[coid].status is VenueOrderStatus.CANCELED
    assert [c.reason for c in requested] == ["operator"]
    assert venue.creates == [coid]


async def test_a_cancel_whose_create_never_resolves_gives_up_with_a_journaled_reason(
    autojump_clock,
) -> None:
    venue = ScriptedVenue()
    venue.create_errors = [(timed_out(), True)]
    venue.queries_down = True
    config = RouterConfig(cancel_resolve_wait_s=30.0)
    async with router_on(venue, config) as (router, journal):
        assert (await router.submit(SubmitIntent(limit_entry("h3")))).accepted
        await until(lambda: bool(venue.queries))
        coid = only_order(journal, "h3").client_order_id
        started = trio.current_time()
        done = await router.cancel_order(coid, "operator")
        waited = trio.current_time() - started
        current = only_order(journal, "h3")
        failures = events_of(journal, CancelFailed)
    assert done is False
    assert 30.0 <= waited < 31.0
    assert [(f.client_order_id, f.reason, f.still_open) for f in failures] == [
        (coid, "create_unresolved_timeout", True)
    ]
    assert venue.cancels == []  # never sent blind
    assert current.is_unresolved
    assert venue.creates == [coid]
    assert events_of(journal, CancelRequested) == []


async def test_an_intent_cancelled_while_its_order_is_proven_absent_sends_no_next_generation(
    autojump_clock,
) -> None:
    # The create timed out without landing; the cancel arrives while the Router proves it
    # ABSENT. Generation 1 would be an order nobody wants any more: the intent ends instead.
    venue = ScriptedVenue()
    venue.create_errors = [(timed_out(), False)]
    async with router_on(venue) as (router, journal):
        assert (await router.submit(SubmitIntent(limit_entry("h4")))).accepted
        await until(lambda: bool(venue.queries))
        await router.cancel(CancelIntent("h4", "strategy_changed_its_mind"))
        await until(lambda: journal.state.intents["h4"].status is not IntentStatus.OPEN)
        await trio.sleep(30)
        rejected = events_of(journal, IntentRejected)
        orders = journal.state.orders_for_intent("h4")
    assert [(r.reason, r.detail) for r in rejected] == [
        ("cancel_requested", "strategy_changed_its_mind")
    ]
    assert [o.ledger_state for o in orders] == [LedgerState.ABSENT]
    assert len(venue.creates) == 1
    assert venue.cancels == []


# ------------------------------------------------------------------ (5) cooldown and replacements


async def test_a_replacement_within_the_entry_cooldown_is_not_refused_for_it(
    autojump_clock,
) -> None:
    venue = ScriptedVenue()
    async with router_on(venue, knobs=knobs(entry_cooldown_s=16.0)) as (router, journal):
        first = await router.submit(SubmitIntent(limit_at("e1", "0.002")))
        t0 = trio.current_time()
        await trio.sleep(2)
        fresh = await router.submit(SubmitIntent(limit_at("e2", "0.002")))
        replacement = SubmitIntent(limit_at("r1", "0.002", "50100"), source="replace")
        precheck = router.entry_refusal(replacement, freed_orders=1)
        reprice = await router.submit(replacement)
        # Past the first entry's cooldown, though only 15 s after the reprice: a
        # replacement is not an entry and does not restart the cooldown.
        await trio.sleep_until(t0 + 17)
        later = await router.submit(SubmitIntent(limit_at("e3", "0.002")))
        rejected = [(r.intent_id, r.reason) for r in events_of(journal, IntentRejected)]
    assert first.accepted
    assert (fresh.accepted, fresh.reason) == (False, "entry_cooldown")
    assert precheck is None
    assert reprice.accepted, reprice
    assert later.accepted, later
    assert rejected == [("e2", "entry_cooldown")]


async def test_a_replacement_still_meets_every_other_entry_gate(autojump_clock) -> None:
    venue = ScriptedVenue()
    tight = knobs(entry_cooldown_s=16.0, max_open_orders_per_symbol=1)
    async with router_on(venue, knobs=tight) as (router, journal):
        assert (await router.submit(SubmitIntent(limit_at("e1", "0.002")))).accepted
        await until(lambda: only_order(journal, "e1").order_state is OrderState.LIVE)

        def replacement(intent_id: str, qty: str = "0.002") -> SubmitIntent:
            return SubmitIntent(limit_at(intent_id, qty, "50100"), source="replace")

        # The old order still rests: the open-order cap counts it (the ReplaceManager only
        # submits once it is gone, and pre-checks with freed_orders=1).
        resting = await router.submit(replacement("r1"))
        router.set_knobs(attrs.evolve(tight, max_open_orders_per_symbol=5, max_notional=D(50)))
        too_big = await router.submit(replacement("r2"))
        router.set_knobs(attrs.evolve(tight, max_open_orders_per_symbol=5, allow_entries=False))
        blocked = await router.submit(replacement("r3"))
        router.set_knobs(attrs.evolve(tight, max_open_orders_per_symbol=5, min_entry_conf=0.9))
        unsure = await router.submit(
            SubmitIntent(limit_at("r4", "0.002"), confidence=0.5, source="replace")
        )
    assert (resting.accepted, resting.reason) == (False, "open_orders_posture")
    assert (too_big.accepted, too_big.reason) == (False, "notional_above_posture")
    assert (blocked.accepted, blocked.reason) == (False, "posture_blocks_entries")
    assert (unsure.accepted, unsure.reason) == (False, "confidence_below_posture")


# ------------------------------------------------------------------ (6) leverage


async def long_position(router: Router, journal: Journal, qty: str) -> None:
    """An entry of ours fills completely: the journal holds a long of ``qty`` at 50000."""
    order = await acked_order_of(router, journal, limit_at("pos", qty))
    await journal.append(trade_of(order, "t-pos", qty))
    assert journal.state.position(BTC) == D(qty)


async def acked_order_of(router: Router, journal: Journal, intent: Intent) -> OrderRecord:
    receipt = await router.submit(SubmitIntent(intent))
    assert receipt.accepted, receipt
    await until(lambda: only_order(journal, intent.intent_id).order_state is OrderState.LIVE)
    return only_order(journal, intent.intent_id)


async def test_an_entry_past_the_posture_leverage_is_refused_and_one_at_it_accepted(
    autojump_clock,
) -> None:
    # Equity 1000 at 2x: 2000 USDT of gross notional. A long of 0.02 (1000) and a resting
    # buy of 0.004 (200) leave 800 for the next entry, counted with both.
    venue = ScriptedVenue()
    async with router_on(venue, knobs=knobs(max_leverage=2), equity=D(1000)) as (router, journal):
        await long_position(router, journal, "0.02")
        await acked_order_of(router, journal, limit_at("rest", "0.004"))
        over = await router.submit(SubmitIntent(limit_at("over", "0.0161")))
        at_cap = await router.submit(SubmitIntent(limit_at("at-cap", "0.016")))
        # At the cap now: one more satoshi of entry is refused, and an exit is not.
        more = await router.submit(SubmitIntent(limit_at("more", "0.001")))
        exit_all = await router.submit(SubmitIntent(reduce_only_exit("x1", "0.02")))
        rejected = {r.intent_id: r for r in events_of(journal, IntentRejected)}
    assert (over.accepted, over.reason) == (False, "leverage_above_posture")
    assert "2005" in over.detail
    assert "> 2x" in over.detail
    assert at_cap.accepted, at_cap
    assert (more.accepted, more.reason) == (False, "leverage_above_posture")
    assert exit_all.accepted, exit_all
    assert set(rejected) == {"over", "more"}


async def test_leverage_counts_every_symbol_and_refuses_what_it_cannot_value(
    autojump_clock,
) -> None:
    venue = ScriptedVenue()
    async with router_on(venue, knobs=knobs(max_leverage=2), equity=D(1000)) as (router, journal):
        # A short ETH position, filled at 2500 (a fill the journal knows the price of).
        eth_fill = Fill(
            symbol="ETHUSDT",
            trade_id="eth-1",
            order_id="9",
            client_order_id="manual-eth",
            side=Side.SELL,
            quantity=D("0.4"),
            price=D("2500"),
        )
        await journal.append(FillApplied("", "eth", eth_fill, "backfill"))
        over = await router.submit(SubmitIntent(limit_at("over", "0.0201")))
        fits = await router.submit(SubmitIntent(limit_at("fits", "0.02")))
        # A position the journal has no price for (synced, no fill): unknown, not zero.
        await journal.append(
            PositionSynced("SOLUSDT", PositionSide.BOTH, D("3"), D(0), "test", "sync-1")
        )
        unvalued = await router.submit(SubmitIntent(limit_at("tiny", "0.0001")))
        exit_ = await router.submit(SubmitIntent(reduce_only_exit("x1", "0.01")))
    assert (over.accepted, over.reason) == (False, "leverage_above_posture")
    assert fits.accepted, fits
    assert (unvalued.accepted, unvalued.reason) == (False, "leverage_unvalued")
    assert "SOLUSDT" in unvalued.detail
    assert exit_.accepted


async def test_unknown_stale_or_negative_equity_refuses_entries_never_exits(
    autojump_clock,
) -> None:
    venue = ScriptedVenue()
    async with router_on(venue, equity=None) as (router, journal):
        unknown = await router.submit(SubmitIntent(limit_at("e1", "0.002")))
        exit_unknown = await router.submit(SubmitIntent(reduce_only_exit("x1", "0.002")))
        router.note_equity(D(1000))
        fresh = await router.submit(SubmitIntent(limit_at("e2", "0.002")))
        await trio.sleep(RouterConfig().equity_max_age_s + 1)
        stale = await router.submit(SubmitIntent(limit_at("e3", "0.002")))
        router.note_equity(D(-5))
        broke = await router.submit(SubmitIntent(limit_at("e4", "0.002")))
        exit_broke = await router.submit(SubmitIntent(reduce_only_exit("x2", "0.002")))
        with pytest.raises(ValueError, match="equity"):
            router.note_equity(D("NaN"))
        rejected = [(r.intent_id, r.reason) for r in events_of(journal, IntentRejected)]
    assert (unknown.accepted, unknown.reason) == (False, "equity_unknown")
    assert fresh.accepted, fresh
    assert (stale.accepted, stale.reason) == (False, "equity_unknown")
    assert "old" in stale.detail
    assert (broke.accepted, broke.reason) == (False, "equity_not_positive")
    assert exit_unknown.accepted
    assert exit_broke.accepted
    assert rejected == [
        ("e1", "equity_unknown"),
        ("e3", "equity_unknown"),
        ("e4", "equity_not_positive"),
    ]


async def test_a_replacement_precheck_does_not_count_the_order_it_replaces(
    autojump_clock,
) -> None:
    # Long 0.02 (1000) and a resting buy of 0.01 (500), equity 1000 at 2x. Replacing the
    # resting buy by one of 0.018 (900) ends at 1900: fine. Counted twice (old + new) it
    # would be 2400, and the working order would be cancelled for a refusal.
    venue = ScriptedVenue()
    async with router_on(venue, knobs=knobs(max_leverage=2), equity=D(1000)) as (router, journal):
        await long_position(router, journal, "0.02")
        await acked_order_of(router, journal, limit_at("rest", "0.01"))
        replacement = SubmitIntent(limit_at("r1", "0.018", "50100"), source="replace")
        freed = router.entry_refusal(replacement, freed_orders=1)
        counted = router.entry_refusal(replacement)
        bigger = router.entry_refusal(
            SubmitIntent(limit_at("r2", "0.0201"), source="replace"), freed_orders=1
        )
    assert freed is None
    assert counted is not None
    assert counted[0] == "leverage_above_posture"
    assert bigger is not None
    assert bigger[0] == "leverage_above_posture"
