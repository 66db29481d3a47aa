"""The EvidenceCollector's trade backfill: every trade journaled once, and attributed.

Binance's REST trade history carries the venue's order id but no client order id. These
tests drive the collector against a scripted venue that serves trades and order queries,
under trio's MockClock, and read the journal it wrote. The adversarial case is the one a
crash leaves behind: an order of ours whose create outcome was never journaled (SENDING),
so the journal does not know its venue id when its trade is read.
"""

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import cast

import pytest
import trio

from scalper.actors.evidence import CollectorConfig, EvidenceCollector, QueryOrders, SnapshotReady
from scalper.actors.journal import Journal
from scalper.clock import simulated_clock
from scalper.core.errors import ErrorClass, Operation, classify_error
from scalper.core.evidence import SourceHealthSnapshot, SourceKind
from scalper.core.ids import Role, client_order_id
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import Fill, VenueOrder, VenueOrderStatus
from scalper.core.types import ZERO, OrderType, Side
from scalper.messages import (
    BackfillCompleted,
    Event,
    FillApplied,
    OrderSending,
    StreamDown,
    StreamGapObserved,
    decode_event,
)
from scalper.store.store import Store
from scalper.venues.base import (
    StreamConnected,
    StreamDisconnected,
    StreamEvent,
    StreamGap,
    Venue,
    VenueError,
)
from scalper.venues.sim.faults import FaultInjector, FaultSpec
from scalper.venues.sim.inproc import InProcessVenue
from tests.venues.sim.simkit import make_engine

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
    venue: TradesVenue | InProcessVenue, *events: Event
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


# ---------------------------------------------------------------------------- stream outages


class _Feed:
    """The iterator a scripted stream hands out: what the test sends, raised if an error."""

    def __init__(self, receive: trio.MemoryReceiveChannel[StreamEvent | Exception]) -> None:
        self._receive = receive

    def __aiter__(self) -> "_Feed":
        return self

    async def __anext__(self) -> StreamEvent:
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        if isinstance(item, Exception):
            raise item
        return item


class StreamVenue(TradesVenue):
    """A TradesVenue with a user stream the test scripts.

    Each open first raises the next of ``open_failures`` (a refused listen key, a dead
    socket); once none is left it opens, and ``feed`` carries what the stream delivers.
    Closing ``feed`` ends the iterator; the context then exits raising ``exit_failure``
    if one is set (how the Binance adapter gives up after too many failed reconnects).
    """

    def __init__(self) -> None:
        super().__init__([], {})
        self.open_failures: list[Exception] = []
        self.exit_failure: Exception | None = None
        self.opens = 0
        self.feed: trio.MemorySendChannel[StreamEvent | Exception] | None = None

    @asynccontextmanager
    async def user_stream(self) -> AsyncIterator[_Feed]:
        self.opens += 1
        await trio.lowlevel.checkpoint()
        if self.open_failures:
            raise self.open_failures.pop(0)
        send, receive = trio.open_memory_channel[StreamEvent | Exception](16)
        self.feed = send
        with receive:
            yield _Feed(receive)
        if self.exit_failure is not None:
            failure, self.exit_failure = self.exit_failure, None
            raise failure

    async def send(self, *items: StreamEvent | Exception) -> None:
        assert self.feed is not None, "the stream is not open"
        for item in items:
            await self.feed.send(item)
        await trio.sleep(0.01)  # let the collector take them in


def stream_story(journal: Journal) -> list[StreamDown | StreamGapObserved]:
    return [e for e in events_in(journal) if isinstance(e, StreamDown | StreamGapObserved)]


def only_down(journal: Journal) -> StreamDown:
    """The one outage journaled so far, still open (no gap yet)."""
    (down,) = stream_story(journal)
    assert isinstance(down, StreamDown)
    return down


def one_outage(story: list[StreamDown | StreamGapObserved]) -> tuple[StreamDown, StreamGapObserved]:
    """The story of exactly one outage: its StreamDown, then its gap."""
    down, gap = story
    assert isinstance(down, StreamDown)
    assert isinstance(gap, StreamGapObserved)
    return down, gap


@asynccontextmanager
async def streaming(
    venue: TradesVenue | InProcessVenue, *journaled: Event, connected: bool = True
) -> AsyncIterator[tuple[EvidenceCollector, Journal]]:
    """The collector's stream loop running on ``venue`` (connected: the stream said it is up)."""
    async with (
        collector_on(venue, *journaled) as (collector, journal),
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(collector._stream_loop)
        await trio.sleep(0.01)
        if connected:
            assert isinstance(venue, StreamVenue)
            await venue.send(StreamConnected(at=trio.current_time()))
        yield collector, journal
        nursery.cancel_scope.cancel()


def user_stream_health(collector: EvidenceCollector) -> SourceHealthSnapshot:
    return collector.health.snapshot(trio.current_time()).source(SourceKind.USER_STREAM)


async def test_an_outage_is_journaled_once_at_once_and_its_gap_follows_the_reconnect(
    autojump_clock,
) -> None:
    venue = StreamVenue()
    async with streaming(venue) as (collector, journal):
        await trio.sleep(60)
        quiet = user_stream_health(collector)
        # The socket dies at 60 s; the last frame it had was at 58 s.
        down_at = trio.current_time()
        await venue.send(StreamDisconnected(at=down_at, since=58.0, reason="ping_timeout"))
        down = only_down(journal)
        await trio.sleep(20)
        # The adapter says it again (an implementation that repeats itself, or a second
        # failed attempt): the outage is the same one, journaled once.
        await venue.send(StreamDisconnected(at=trio.current_time(), since=79.0, reason="dns"))
        await trio.sleep(80)
        blind = user_stream_health(collector)
        assert stream_story(journal) == [down]
        back_at = trio.current_time()
        await venue.send(
            StreamConnected(at=back_at, reconnect=True),
            StreamGap(started_at=58.0, ended_at=back_at, reason="ping_timeout"),
        )
        await trio.sleep(20)
        recovered = user_stream_health(collector)
        story = stream_story(journal)
        backfills = backfills_in(journal)
    assert down == StreamDown(since=58.0, detected_at=down_at, reason="ping_timeout")
    assert story == [down, StreamGapObserved(58.0, back_at, "ping_timeout")]
    assert [b.correlation_id for b in backfills] == [f"gap:{back_at:.3f}"]
    # An open, quiet stream stays fresh on the heartbeat alone (10 s) ...
    assert quiet.freshness_s <= 10.0
    assert not quiet.stale
    # ... a reconnecting one does not: 100 s without a word is stale (90 s by default),
    # and both reports count as errors against the source.
    assert blind.freshness_s >= 100.0
    assert blind.stale
    assert "error:ping_timeout" in blind.reasons
    assert "error:dns" in blind.reasons
    assert blind.error_count == 2
    assert blind.confidence == 0.0
    # Back and quiet again: the heartbeat counts it fresh once more.
    assert recovered.freshness_s <= 10.0
    assert not recovered.stale
    assert recovered.confidence > blind.confidence


async def test_each_outage_is_journaled_once_and_closed_by_its_own_gap(autojump_clock) -> None:
    venue = StreamVenue()
    async with streaming(venue) as (_collector, journal):
        for since, reason in ((10.0, "ping_timeout"), (40.0, "listen_key_expired")):
            await trio.sleep_until(since + 1.0)
            await venue.send(StreamDisconnected(trio.current_time(), since, reason))
            await trio.sleep(5)
            # Binance's order: the gap, then the reconnect.
            now = trio.current_time()
            await venue.send(StreamGap(since, now, reason), StreamConnected(now, reconnect=True))
        story = stream_story(journal)
    assert [type(e).__name__ for e in story] == [
        "StreamDown",
        "StreamGapObserved",
        "StreamDown",
        "StreamGapObserved",
    ]
    downs = [e for e in story if isinstance(e, StreamDown)]
    gaps = [e for e in story if isinstance(e, StreamGapObserved)]
    assert [(d.since, d.reason) for d in downs] == [
        (10.0, "ping_timeout"),
        (40.0, "listen_key_expired"),
    ]
    assert [d.since for d in downs] == [g.started_at for g in gaps]
    assert all(d.since < d.detected_at < g.ended_at for d, g in zip(downs, gaps, strict=True))


async def test_a_stream_that_cannot_be_opened_is_journaled_down_and_reopened_with_a_gap(
    autojump_clock,
) -> None:
    # The listen key is refused (503), then the socket fails twice: three failed opens are
    # one outage, from the first failure until the stream is open again.
    venue = StreamVenue()
    refused = busy()
    venue.open_failures = [refused, OSError("connection refused"), trio.BrokenResourceError()]
    async with streaming(venue, connected=False) as (collector, journal):
        down = only_down(journal)
        await trio.sleep(10)
        assert venue.opens == 4  # retried with backoff (0.5, 1, 2 s) until it opened
        health = user_stream_health(collector)
        story = stream_story(journal)
    assert down == StreamDown(since=0.0, detected_at=0.0, reason=refused.verdict.reason)
    _, gap = one_outage(story)
    assert gap == StreamGapObserved(0.0, gap.ended_at, "reopened")
    assert gap.ended_at == 3.5
    assert health.error_count == 3
    assert {"error:OSError", "error:BrokenResourceError"} <= set(health.reasons)


async def test_an_adapter_that_gives_up_is_journaled_down_and_reopened_with_a_gap(
    autojump_clock,
) -> None:
    # The Binance adapter's way of failing: its iterator stops and its context exits with
    # a RETRYABLE VenueError once reconnecting has failed too often.
    venue = StreamVenue()
    gave_up = VenueError.transport(
        request_written=False, operation=Operation.QUERY, detail="user stream gave up"
    )
    async with streaming(venue) as (_collector, journal):
        await trio.sleep(30)
        venue.exit_failure = gave_up
        assert venue.feed is not None
        died_at = trio.current_time()
        await venue.feed.aclose()
        await trio.sleep(0.1)
        down = only_down(journal)
        await trio.sleep(5)
        story = stream_story(journal)
    assert down == StreamDown(since=died_at, detected_at=died_at, reason=gave_up.verdict.reason)
    _, gap = one_outage(story)
    assert gap == StreamGapObserved(died_at, gap.ended_at, "reopened")
    assert venue.opens == 2


@pytest.mark.parametrize(
    "failure",
    [OSError("connection reset"), trio.BrokenResourceError()],
    ids=["OSError", "BrokenResourceError"],
)
async def test_a_stream_that_dies_mid_read_is_journaled_down_and_reopened_with_a_gap(
    autojump_clock, failure: Exception
) -> None:
    venue = StreamVenue()
    async with streaming(venue) as (_collector, journal):
        await trio.sleep(30)
        died_at = trio.current_time()
        await venue.send(failure)
        await trio.sleep(5)
        story = stream_story(journal)
    down, gap = one_outage(story)
    assert down == StreamDown(since=died_at, detected_at=died_at, reason=type(failure).__name__)
    assert gap == StreamGapObserved(died_at, gap.ended_at, "reopened")
    assert venue.opens == 2


async def test_an_outage_reported_by_the_adapter_is_not_journaled_again_when_it_dies(
    autojump_clock,
) -> None:
    # The adapter reports the outage, then gives up and ends the iterator: still one outage,
    # dated from what the adapter said, closed by the collector's own reopen.
    venue = StreamVenue()
    async with streaming(venue) as (_collector, journal):
        await trio.sleep(20)
        await venue.send(StreamDisconnected(trio.current_time(), 19.0, "ping_timeout"))
        assert venue.feed is not None
        await venue.feed.aclose()
        await trio.sleep(5)
        story = stream_story(journal)
    down, gap = one_outage(story)
    assert (down.since, down.reason) == (19.0, "ping_timeout")
    assert (gap.started_at, gap.reason) == (19.0, "reopened")
    assert venue.opens == 2


async def test_the_sim_outage_is_journaled_while_it_lasts_and_health_decays_meanwhile(
    autojump_clock,
) -> None:
    engine = make_engine()
    injector = FaultInjector((FaultSpec(20.0, 120.0, "STREAM_DISCONNECT"),), random.Random(1))
    venue = InProcessVenue(engine, injector, clock=trio.current_time)
    async with (
        collector_on(venue) as (collector, journal),
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(collector._stream_loop)
        await trio.sleep(19)
        before = user_stream_health(collector)
        await trio.sleep(2)
        down = only_down(journal)  # the venue is still down: no gap yet
        await trio.sleep_until(115)
        during = user_stream_health(collector)
        assert stream_story(journal) == [down]
        await trio.sleep_until(130)
        after = user_stream_health(collector)
        story = stream_story(journal)
        nursery.cancel_scope.cancel()
    assert 20.0 <= down.detected_at < 20.1
    assert down.since <= down.detected_at
    assert down.reason == "stream_disconnect"
    _, gap = one_outage(story)
    assert (gap.started_at, gap.reason) == (down.since, down.reason)
    assert gap.ended_at >= 120.0
    assert not before.stale
    assert during.stale
    assert during.freshness_s >= 115.0 - 20.1
    assert not after.stale
    assert after.freshness_s <= 10.0


async def test_an_outage_left_open_in_the_journal_is_closed_at_the_first_connection(
    autojump_clock,
) -> None:
    # The process (or the collector) died while the stream was down: the journal holds a
    # StreamDown and no gap. The new stream's first connection is not a reconnect, so no
    # adapter gap will come; the collector must journal one from the outage's start.
    venue = StreamVenue()
    left_open = StreamDown(since=-3.0, detected_at=0.0, reason="ping_timeout")
    async with streaming(venue, left_open, connected=False) as (collector, journal):
        await trio.sleep(40)
        blind = user_stream_health(collector)  # heartbeat paused: no connection yet
        connected_at = trio.current_time()
        await venue.send(StreamConnected(at=connected_at))
        await trio.sleep(1)
        story = stream_story(journal)
        fresh = user_stream_health(collector)
    assert blind.stale
    down, gap = one_outage(story)
    assert down == left_open
    assert gap.reason == "reconnected"
    assert gap.ended_at == connected_at
    # The start, carried in wall time through the journal, maps back to 3 s before the row.
    assert gap.started_at == pytest.approx(connected_at - 40.01 - 3.0, abs=0.002)
    assert not fresh.stale
    assert [type(e) for e in events_in(journal)].count(BackfillCompleted) >= 1


async def test_a_reconnect_the_adapter_reports_is_not_given_a_second_gap(autojump_clock) -> None:
    venue = StreamVenue()
    left_open = StreamDown(since=-3.0, detected_at=0.0, reason="ping_timeout")
    async with streaming(venue, left_open, connected=False) as (_collector, journal):
        await trio.sleep(5)
        now = trio.current_time()
        await venue.send(StreamGap(now - 8.0, now, "disconnected"))
        await venue.send(StreamConnected(at=now, reconnect=True))
        await trio.sleep(1)
        story = stream_story(journal)
    _, gap = one_outage(story)
    assert gap.reason == "disconnected"
