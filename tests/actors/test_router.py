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
from typing import cast

import attrs
import trio

from scalper.actors.journal import Journal
from scalper.actors.router import Router, RouterConfig
from scalper.clock import simulated_clock
from scalper.core.errors import Operation, classify_error
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import Fill, OrderRequest, VenueOrder, VenueOrderStatus
from scalper.core.orders import OrderState
from scalper.core.posture import PostureConfig, PostureMode, knobs_for
from scalper.core.types import OrderType, Side
from scalper.messages import (
    BackfillCompleted,
    FillApplied,
    OrderMissing,
    OrderObserved,
    OrderResolved,
    Resolution,
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
        gone = client_order_id in self.forgotten
        await trio.sleep(self.query_delay_s)
        if found is None or gone:
            raise not_found()
        return found

    def forget(self, coid: str) -> None:
        """The venue closes the order unfilled and, past its retention, stops knowing it."""
        self.forgotten.add(coid)


@asynccontextmanager
async def router_on(
    venue: ScriptedVenue, config: RouterConfig | None = None
) -> AsyncIterator[tuple[Router, Journal]]:
    clock = simulated_clock(NOW_MS)
    journal = Journal(Store.open(":memory:"), clock=clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        router = Router(
            cast(Venue, venue),
            journal,
            clock=clock,
            rng=random.Random(7),
            prefix="sc",
            config=config or RouterConfig(),
            initial_knobs=GREEN,
        )
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
