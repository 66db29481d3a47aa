"""The EvidenceCollector's trade backfill: every trade journaled once, and attributed.

Binance's REST trade history carries the venue's order id but no client order id. These
tests drive the collector against a scripted venue that serves trades and order queries,
under trio's MockClock, and read the journal it wrote. The adversarial case is the one a
crash leaves behind: an order of ours whose create outcome was never journaled (SENDING),
so the journal does not know its venue id when its trade is read.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import cast

import trio

from scalper.actors.evidence import CollectorConfig, EvidenceCollector, QueryOrders, SnapshotReady
from scalper.actors.journal import Journal
from scalper.clock import simulated_clock
from scalper.core.errors import ErrorClass, Operation, classify_error
from scalper.core.ids import Role, client_order_id
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import Fill, VenueOrder, VenueOrderStatus
from scalper.core.types import ZERO, OrderType, Side
from scalper.messages import BackfillCompleted, Event, FillApplied, OrderSending, decode_event
from scalper.store.store import Store
from scalper.venues.base import Venue, VenueError

BTC = "BTCUSDT"
D = Decimal
NOW_MS = 1_767_225_600_000


def exit_intent(intent_id: str) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=Side.SELL,
        quantity=D("0.001"),
        order_type=OrderType.LIMIT,
        price=D("60100"),
        kind=IntentKind.EXIT,
        reduce_only=True,
    )


def coid_of(intent: Intent) -> str:
    return client_order_id("sc", intent.intent_id, Role.EXIT, 0)


def sending(intent: Intent) -> OrderSending:
    coid = coid_of(intent)
    return OrderSending(
        intent_id=intent.intent_id,
        correlation_id=intent.correlation_id,
        client_order_id=coid,
        generation=0,
        request=intent.to_order_request(coid),
        risk_increasing=False,
        recv_window_ms=5000,
        sent_wall_ms=NOW_MS,
    )


def rest_trade(trade_id: str, order_id: str) -> Fill:
    """A trade as Binance's ``GET /fapi/v1/userTrades`` gives it: no client order id."""
    return Fill(
        symbol=BTC,
        trade_id=trade_id,
        order_id=order_id,
        client_order_id="",
        side=Side.SELL,
        quantity=D("0.001"),
        price=D("60100"),
        fee=D("0.012"),
    )


def busy() -> VenueError:
    """What a venue under load answers a query with: 503, nothing known."""
    return VenueError(
        classify_error(503, None, "busy", operation=Operation.QUERY), "busy", Operation.QUERY
    )


class TradesVenue:
    """Serves trades and order queries by venue order id; queries can be made to fail."""

    def __init__(self, trades: list[Fill], owners: dict[str, str]) -> None:
        self.trades = trades
        self.owners = owners  # venue order id -> client order id
        self.failing_queries = 0
        self.queries: list[str] = []

    async def user_trades(
        self, symbol: str, *, from_trade_id: str | None = None, limit: int = 500
    ) -> list[Fill]:
        first = int(from_trade_id) if from_trade_id is not None else 0
        return [t for t in self.trades if t.symbol == symbol and int(t.trade_id) >= first][:limit]

    async def query_order(
        self,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        conditional: bool = False,
    ) -> VenueOrder:
        assert order_id is not None
        self.queries.append(order_id)
        if self.failing_queries:
            self.failing_queries -= 1
            raise busy()
        return VenueOrder(
            symbol=symbol,
            order_id=order_id,
            client_order_id=self.owners[order_id],
            side=Side.SELL,
            order_type=OrderType.LIMIT,
            status=VenueOrderStatus.FILLED,
            quantity=D("0.001"),
            filled_qty=D("0.001"),
            price=D("60100"),
        )


@asynccontextmanager
async def collector_on(
    venue: TradesVenue, *events: OrderSending
) -> AsyncIterator[tuple[EvidenceCollector, Journal]]:
    """A journal holding ``events`` and a collector on it (not running: tests drive it)."""
    clock = simulated_clock(NOW_MS)
    journal = Journal(Store.open(":memory:"), clock=clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        for event in events:
            await journal.append(event)
        send, _receive = trio.open_memory_channel[SnapshotReady](8)
        collector = EvidenceCollector(
            cast(Venue, venue),
            journal,
            clock=clock,
            snapshots=send,
            symbols=(BTC,),
            config=CollectorConfig(backfill_retry_s=1.0),
        )
        yield collector, journal
        nursery.cancel_scope.cancel()


def events_in(journal: Journal) -> list[Event]:
    return [decode_event(e.type, e.payload) for e in journal.store.entries()]


def fills_in(journal: Journal) -> list[FillApplied]:
    return [e for e in events_in(journal) if isinstance(e, FillApplied)]


def backfills_in(journal: Journal) -> list[BackfillCompleted]:
    return [e for e in events_in(journal) if isinstance(e, BackfillCompleted)]


async def test_a_trade_of_an_order_whose_create_is_unresolved_is_attributed_by_query(
    autojump_clock,
) -> None:
    x1 = exit_intent("x1")
    venue = TradesVenue([rest_trade("7", "4")], {"4": coid_of(x1)})
    async with collector_on(venue, sending(x1)) as (collector, journal):
        assert await collector.backfill(BTC, correlation_id="startup") == 1
        (fill,) = fills_in(journal)
        assert (fill.intent_id, fill.correlation_id) == ("x1", "x1")
        assert fill.fill.client_order_id == coid_of(x1)
        order = journal.state.orders[coid_of(x1)]
        assert order.filled_qty == D("0.001")
        # The trade taught the journal the order's venue id: the next trade needs no query.
        assert order.venue_order_id == "4"
        assert journal.state.order_by_venue_id(BTC, "4") is order
        assert journal.state.foreign_fills == 0
        assert venue.queries == ["4"]


async def test_an_unanswered_query_defers_the_trade_and_never_journals_it_as_foreign(
    autojump_clock,
) -> None:
    x1 = exit_intent("x1")
    venue = TradesVenue([rest_trade("7", "4")], {"4": coid_of(x1)})
    venue.failing_queries = 2  # this backfill's query, then the loop's first pass's
    async with collector_on(venue, sending(x1)) as (collector, journal):
        assert await collector.backfill(BTC, correlation_id="startup") is None
        # Nothing journaled: not the fill, and no BackfillCompleted that would claim every
        # trade was read (the Router's vanish proof and the position sync rely on that).
        assert fills_in(journal) == []
        assert backfills_in(journal) == []
        assert journal.state.cursors.get(f"trades:{BTC}") is None
        # The loop's first pass is refused too; it retries within backfill_retry_s (1 s),
        # not a whole backfill_interval_s (30 s) later.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collector._backfill_loop)
            await trio.sleep(1.5)
            nursery.cancel_scope.cancel()
        (fill,) = fills_in(journal)
        assert fill.intent_id == "x1"
        assert journal.state.foreign_fills == 0
        assert [b.correlation_id for b in backfills_in(journal)] == ["retry"]


async def test_a_deferred_trade_stops_the_backfill_before_it_and_keeps_earlier_ones(
    autojump_clock,
) -> None:
    x1, x2 = exit_intent("x1"), exit_intent("x2")
    venue = TradesVenue(
        [rest_trade("7", "4"), rest_trade("8", "5")], {"4": coid_of(x1), "5": coid_of(x2)}
    )
    async with collector_on(venue, sending(x1), sending(x2)) as (collector, journal):
        venue.failing_queries = 0
        original = venue.query_order

        async def fail_second(symbol: str, **kw: object) -> VenueOrder:
            if kw.get("order_id") == "5":
                raise busy()
            return await original(symbol, **kw)  # type: ignore[arg-type]

        venue.query_order = fail_second  # type: ignore[method-assign]
        assert await collector.backfill(BTC, correlation_id="startup") is None
        assert [f.fill.trade_id for f in fills_in(journal)] == ["7"]
        venue.query_order = original  # type: ignore[method-assign]
        assert await collector.backfill(BTC, correlation_id="retry") == 1
        # Trade 7 was read again and refused as a duplicate: each trade is journaled once.
        assert [(f.fill.trade_id, f.intent_id) for f in fills_in(journal)] == [
            ("7", "x1"),
            ("8", "x2"),
        ]


async def test_a_foreign_trade_is_journaled_unattributed_after_one_query(autojump_clock) -> None:
    x1 = exit_intent("x1")
    venue = TradesVenue([rest_trade("7", "99"), rest_trade("8", "99")], {"99": "web_manual_order"})
    async with collector_on(venue, sending(x1)) as (collector, journal):
        assert await collector.backfill(BTC, correlation_id="startup") == 2
        assert [(f.intent_id, f.fill.client_order_id) for f in fills_in(journal)] == [
            ("", ""),
            ("", ""),
        ]
        assert journal.state.foreign_fills == 2
        assert journal.state.orders[coid_of(x1)].filled_qty == ZERO
        assert venue.queries == ["99"]  # the answer is remembered


async def test_no_query_when_every_order_of_ours_has_its_venue_id(autojump_clock) -> None:
    venue = TradesVenue([rest_trade("7", "99")], {"99": "web_manual_order"})
    async with collector_on(venue) as (collector, journal):
        assert await collector.backfill(BTC, correlation_id="startup") == 1
        assert journal.state.foreign_fills == 1
        assert venue.queries == []


async def test_a_query_request_reports_whether_its_backfill_read_every_trade(
    autojump_clock,
) -> None:
    x1 = exit_intent("x1")
    venue = TradesVenue([rest_trade("7", "4")], {"4": coid_of(x1)})
    venue.failing_queries = 1
    async with (
        collector_on(venue, sending(x1)) as (collector, _journal),
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(collector._query_loop)
        first = QueryOrders(BTC, (), "reconcile:1", trio.Event())
        await collector.queries.send(first)
        assert first.done is not None
        await first.done.wait()
        assert not first.backfilled
        second = QueryOrders(BTC, (), "reconcile:2", trio.Event())
        await collector.queries.send(second)
        assert second.done is not None
        await second.done.wait()
        assert second.backfilled
        nursery.cancel_scope.cancel()


def test_the_scripted_failure_is_a_retryable_read() -> None:
    # The scripted 503 must be what a real venue's busy answer classifies as, or the tests
    # above would prove nothing about production errors.
    assert busy().verdict.error_class is ErrorClass.RETRYABLE
