"""The EvidenceCollector: the user stream, REST snapshots and trade backfill.

Theory of operation
-------------------

Everything scalper learns about the venue arrives here and nowhere else, and is journaled
before anyone acts on it:

* **The user stream.** Each execution becomes :class:`~scalper.messages.FillApplied`
  (journaled at most once per (symbol, trade id): the Journal refuses a repeat, I10); other
  order updates become :class:`~scalper.messages.OrderObserved`. Unknown event types are
  journaled as :class:`~scalper.messages.InvalidInput`, never a crash. When the stream
  reports :class:`~scalper.venues.base.StreamDisconnected` (or the adapter itself fails),
  the outage is journaled at once as :class:`~scalper.messages.StreamDown` and the stream
  stops counting as fresh (its heartbeat pauses), so the posture reacts while the stream is
  blind, not only after it is back. When the stream
  reports a :class:`~scalper.venues.base.StreamGap` (or dies and is reopened), the gap is
  journaled, the stream source's health records it, and every traded symbol is
  **backfilled** over REST from its stored cursor, so a fill that happened during the
  disconnect is journaled anyway. A REST trade carries no client order id, so it is
  attributed through the venue order id the journal holds; when an order of ours on the
  symbol has no venue id yet (its create outcome is unjournaled), the venue is asked whose
  order the trade is before it is journaled, and if it cannot say, the backfill stops before
  that trade and retries within ``backfill_retry_s`` (never journaling it as foreign).
* **Snapshots.** Every ``snapshot_interval_s`` (and right after a gap) open orders,
  positions and balances are read and handed to the Reconciler with the evidence health,
  as a :class:`SnapshotReady`. A failed read is handed over too: missing evidence is
  evidence of trouble, never silence.
* **Queries on request.** The Reconciler's ``QUERY_ORDER`` repairs arrive as
  :class:`QueryOrders`; each order's status is journaled and its symbol backfilled.

Source health (freshness, gaps, error rate) comes from core's
:class:`~scalper.core.evidence.EvidenceHealth`. Trade cursors are journaled with each
backfill (:class:`~scalper.messages.BackfillCompleted`), so a restarted collector resumes
where the journal says, and re-reading a trade twice is harmless (dedupe by trade id).
"""

import attrs
import trio

from scalper.actors.journal import Journal
from scalper.actors.validators import positive
from scalper.clock import Clock
from scalper.core.errors import Operation
from scalper.core.evidence import EvidenceHealth, EvidenceSnapshot, SourceKind
from scalper.core.model import AccountSnapshot, Balance, Fill
from scalper.crashpoints import CrashPoint, CrashPoints
from scalper.messages import (
    BackfillCompleted,
    FillApplied,
    InvalidInput,
    OrderObserved,
    StreamDown,
    StreamGapObserved,
)
from scalper.state import OrderRecord
from scalper.venues.base import (
    AccountUpdate,
    OrderUpdate,
    StreamConnected,
    StreamDisconnected,
    StreamEvent,
    StreamGap,
    UnknownStreamEvent,
    Venue,
    VenueError,
    call_within,
    take_snapshot,
)

__all__ = ["CollectorConfig", "EvidenceCollector", "QueryOrders", "SnapshotReady"]


@attrs.frozen
class CollectorConfig:
    """Collector settings.

    Attributes:
        snapshot_interval_s: seconds between REST snapshots.
        request_timeout_s: cancel scope around each REST read.
        reconnect_delay_s: first wait before reopening a dead stream (doubles, capped).
        reconnect_max_s: the cap.
        backfill_limit: trades per backfill request.
        backfill_interval_s: seconds between routine backfills of every symbol (a second
            line of defence for I10 besides the gap-triggered ones).
        stream_heartbeat_s: while the stream is open and quiet, the open connection counts
            as healthy evidence this often (the adapter ends or raises on a dead socket).
        backfill_retry_s: wait before backfilling again after a backfill stopped at a trade
            whose order could not be identified (the venue did not answer whose it is).
    """

    snapshot_interval_s: float = attrs.field(default=5.0, validator=positive)
    request_timeout_s: float = attrs.field(default=10.0, validator=positive)
    reconnect_delay_s: float = attrs.field(default=0.5, validator=positive)
    reconnect_max_s: float = attrs.field(default=30.0, validator=positive)
    backfill_limit: int = 500
    backfill_interval_s: float = attrs.field(default=30.0, validator=positive)
    stream_heartbeat_s: float = attrs.field(default=10.0, validator=positive)
    backfill_retry_s: float = attrs.field(default=1.0, validator=positive)


@attrs.frozen
class SnapshotReady:
    """Collector to Reconciler: a snapshot (or why there is none) and the evidence health."""

    snapshot: AccountSnapshot | None
    balances: tuple[Balance, ...]
    evidence: EvidenceSnapshot
    error: str | None = None


@attrs.define(eq=False)
class QueryOrders:
    """Reconciler to Collector: query these orders and backfill their symbol.

    ``done`` is set once the backfill finished (successfully or not), so a caller can wait
    for the evidence before acting on a position difference; ``backfilled`` then says
    whether the backfill read every trade (False if the read failed or stopped early at a
    trade it could not attribute). It is the reply slot, written only by the Collector.
    """

    symbol: str
    client_order_ids: tuple[str, ...]
    correlation_id: str
    done: trio.Event | None = None
    backfilled: bool = False


class EvidenceCollector:
    """Stream, snapshots, backfill (see the module docstring).

    Args:
        venue: the exchange.
        journal: the single writer.
        clock: the injected clock.
        snapshots: where :class:`SnapshotReady` goes (the Reconciler).
        config: intervals and timeouts.
        symbols: the symbols scalper trades (backfilled after a gap).
    """

    def __init__(
        self,
        venue: Venue,
        journal: Journal,
        *,
        clock: Clock,
        snapshots: trio.MemorySendChannel[SnapshotReady],
        symbols: tuple[str, ...],
        config: CollectorConfig | None = None,
        health: EvidenceHealth | None = None,
        crash_points: CrashPoints | None = None,
    ) -> None:
        self._venue = venue
        self._journal = journal
        self._clock = clock
        self._snapshots = snapshots
        self._symbols = symbols
        self._config = config or CollectorConfig()
        self._crash = crash_points or CrashPoints()
        self.health = health or EvidenceHealth(started_at=clock.now())
        send, receive = trio.open_memory_channel[QueryOrders](64)
        self.queries = send
        self._queries = receive
        self._snapshot_now = trio.Event()
        self.backfills = 0
        #: (symbol, venue order id) -> client order id, as the venue answered (foreign ones
        #: too), so a foreign trade costs one query, not one per backfill.
        self._venue_owners: dict[tuple[str, str], str] = {}
        #: Symbols whose last backfill stopped at a trade it could not attribute.
        self._retry_backfill: set[str] = set()
        #: Since when the stream is known to be down (journaled), or None while it is up.
        self._down_since: float | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Collect until cancelled. A restart resumes from the journal's cursors."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._stream_loop)
            nursery.start_soon(self._snapshot_loop)
            nursery.start_soon(self._query_loop)
            nursery.start_soon(self._backfill_loop)
            task_status.started()

    # ----------------------------------------------------------------- stream

    async def _stream_loop(self) -> None:
        delay = self._config.reconnect_delay_s
        down_since: float | None = None
        down_ms = self._journal.state.stream_down_since_ms
        if down_ms is not None:
            # The journal shows an outage no gap closed (this collector, or the process,
            # died during it): the first connection closes it with a gap from its start.
            self._down_since = self._clock.from_wall_ms(down_ms)
        while True:
            try:
                async with self._venue.user_stream() as events:
                    if down_since is not None:
                        # Our own reconnect: everything since the drop may be missing.
                        await self._on_gap(StreamGap(down_since, self._clock.now(), "reopened"))
                        down_since = None
                    delay = self._config.reconnect_delay_s
                    failure: BaseException | None = None
                    async with trio.open_nursery() as beat:
                        beat.start_soon(self._heartbeat)
                        try:
                            async for event in events:
                                await self._on_event(event)
                        except (VenueError, trio.BrokenResourceError, OSError) as exc:
                            # Raised out of the nursery it would arrive wrapped in an
                            # ExceptionGroup, which the handlers below do not catch.
                            failure = exc
                        beat.cancel_scope.cancel()
                    if failure is not None:
                        raise failure
            except VenueError as exc:
                reason = exc.verdict.reason
            except (trio.BrokenResourceError, OSError) as exc:
                reason = type(exc).__name__
            else:
                reason = "stream_ended"
            if down_since is None:
                # From when the adapter said the stream went down, if it said so first.
                down_since = self._down_since if self._down_since is not None else self._clock.now()
            await self._stream_down(down_since, reason)
            await trio.sleep(delay)
            delay = min(delay * 2, self._config.reconnect_max_s)

    async def _heartbeat(self) -> None:
        while True:
            if self._down_since is None:
                # An open, quiet stream is fresh; a reconnecting one is not.
                self.health.observe(SourceKind.USER_STREAM, self._clock.now())
            await trio.sleep(self._config.stream_heartbeat_s)

    async def _stream_down(self, since: float, reason: str) -> None:
        """Journal an outage once, as soon as it is known (not only at the reconnect)."""
        now = self._clock.now()
        self.health.record_error(SourceKind.USER_STREAM, now, reason)
        if self._down_since is not None:
            return
        self._down_since = since
        await self._journal.append(StreamDown(since=since, detected_at=now, reason=reason))

    async def _backfill_loop(self) -> None:
        # First pass at once: fills made while the process was down are fetched before
        # anything else is decided, not one interval later.
        correlation_id = "startup"
        while True:
            for symbol in self._symbols:
                await self.backfill(symbol, correlation_id=correlation_id)
            correlation_id = "routine"
            if self._retry_backfill:
                # A trade could not be attributed: try again soon rather than one interval
                # later, so its fill is not missing from the journal for long.
                await trio.sleep(self._config.backfill_retry_s)
                correlation_id = "retry"
            else:
                await trio.sleep(self._config.backfill_interval_s)

    async def _on_event(self, event: StreamEvent) -> None:
        now = self._clock.now()
        match event:
            case OrderUpdate():
                self.health.observe(SourceKind.USER_STREAM, now)
                await self._on_order_update(event)
            case AccountUpdate():
                self.health.observe(SourceKind.USER_STREAM, now)
            case StreamConnected():
                if self._down_since is not None and not event.reconnect:
                    # A first connection after an outage this stream never saw (one taken
                    # over from the journal): no adapter gap will follow, so say it here.
                    await self._on_gap(StreamGap(self._down_since, event.at, "reconnected"))
                self._down_since = None
                self.health.observe(SourceKind.USER_STREAM, now)
            case StreamDisconnected():
                await self._stream_down(event.since, event.reason)
            case StreamGap():
                await self._on_gap(event)
            case UnknownStreamEvent():
                await self._journal.append(
                    InvalidInput(
                        source="stream",
                        error=f"unknown event type {event.event_type!r}",
                        raw=event.raw[:2000],
                    )
                )

    async def _on_order_update(self, update: OrderUpdate) -> None:
        order = update.order
        state = self._journal.state
        known = state.orders.get(order.client_order_id)
        intent_id = known.intent_id if known else ""
        correlation_id = known.correlation_id if known else ""
        if update.fill is not None:
            await self._apply_fill(update.fill, "stream")
            return
        await self._journal.append(
            OrderObserved(
                intent_id=intent_id,
                correlation_id=correlation_id,
                client_order_id=order.client_order_id,
                order=order,
                source="stream",
                observed_wall_ms=self._clock.wall_ms(),
            )
        )

    async def _apply_fill(self, fill: Fill, source: str) -> bool:
        """Journal a fill once, attributed to its order when it is ours; True if it was new."""
        known = self._journal.state.orders.get(fill.client_order_id)
        if known is not None or not fill.order_id:
            return await self._journal_fill(fill, known, source)
        # Binance's trade history carries no client order id: find the order by its venue id.
        linked = self._journal.state.order_by_venue_id(fill.symbol, fill.order_id)
        if linked is not None:
            fill = attrs.evolve(fill, client_order_id=linked.client_order_id)
        return await self._journal_fill(fill, linked, source)

    async def _journal_fill(self, fill: Fill, known: OrderRecord | None, source: str) -> bool:
        entry = await self._journal.append(
            FillApplied(
                intent_id=known.intent_id if known else "",
                correlation_id=known.correlation_id if known else "",
                fill=fill,
                source=source,
            )
        )
        return entry is not None

    async def _link_trade(self, fill: Fill) -> Fill | None:
        """Give a REST trade its client order id; ``None`` if that cannot be learnt now.

        A trade whose venue order id the journal does not know may belong to one of our
        orders whose create outcome was never journaled (a crash after the send, a lost
        ack): that order has no venue id on record yet. Journaling such a trade as foreign
        would lose its attribution for good (the intent's story, the order's filled
        quantity), so while such orders exist on the symbol the venue is asked whose order
        it is. A foreign answer is remembered; an error defers the trade to a later backfill.
        """
        state = self._journal.state
        if fill.client_order_id or not fill.order_id:
            return fill
        if state.order_by_venue_id(fill.symbol, fill.order_id) is not None:
            return fill  # _apply_fill links it from the journal's index
        key = (fill.symbol, fill.order_id)
        owner = self._venue_owners.get(key)
        if owner is None:
            if not state.unnumbered_orders(fill.symbol):
                return fill  # every order of ours has its venue id: this trade is not ours
            try:
                venue_order = await call_within(
                    self._config.request_timeout_s,
                    Operation.QUERY,
                    self._venue.query_order,
                    fill.symbol,
                    order_id=fill.order_id,
                )
            except VenueError as exc:
                self.health.record_error(SourceKind.REST, self._clock.now(), exc.verdict.reason)
                return None
            owner = venue_order.client_order_id
            self._venue_owners[key] = owner
        return attrs.evolve(fill, client_order_id=owner) if owner in state.orders else fill

    async def _on_gap(self, gap: StreamGap) -> None:
        self._down_since = None
        self.health.record_gap(
            SourceKind.USER_STREAM,
            self._clock.now(),
            max(0.0, gap.ended_at - gap.started_at),
            gap.reason,
        )
        await self._journal.append(StreamGapObserved(gap.started_at, gap.ended_at, gap.reason))
        for symbol in self._symbols:
            await self.backfill(symbol, correlation_id=f"gap:{gap.ended_at:.3f}")
        self._snapshot_now.set()

    # ----------------------------------------------------------------- backfill

    async def backfill(self, symbol: str, *, correlation_id: str) -> int | None:
        """Fetch our trades on ``symbol`` from the journal's cursor; journal the new ones.

        Returns the number of new fills, or ``None`` if the backfill did not read every
        trade: the read failed (recorded in the REST source's health; the next gap, query
        or routine pass tries again) or it stopped at a trade it could not attribute.
        Only a complete backfill journals :class:`~scalper.messages.BackfillCompleted`.
        """
        cursor = self._journal.state.cursors.get(f"trades:{symbol}")
        try:
            fills = await call_within(
                self._config.request_timeout_s,
                Operation.QUERY,
                self._venue.user_trades,
                symbol,
                from_trade_id=cursor,
                limit=self._config.backfill_limit,
            )
        except VenueError as exc:
            self.health.record_error(SourceKind.REST, self._clock.now(), exc.verdict.reason)
            return None
        self.health.observe(SourceKind.REST, self._clock.now())
        self.health.observe(SourceKind.FILLS, self._clock.now())
        new = 0
        for fill in fills:
            linked = await self._link_trade(fill)
            if linked is None:
                # Whose trade this is could not be learnt: stop before it. The fills before
                # it are journaled (re-reading them is harmless), the cursor stays where it
                # was and no BackfillCompleted is journaled, because a backfill that skipped
                # a trade proves nothing about missing fills. The next pass retries soon.
                self._retry_backfill.add(symbol)
                return None
            if await self._apply_fill(linked, "backfill"):
                new += 1
                self._crash.check(CrashPoint.MID_FILL)
        self._retry_backfill.discard(symbol)
        last = fills[-1].trade_id if fills else cursor
        self.backfills += 1
        await self._journal.append(
            BackfillCompleted(
                symbol=symbol,
                from_trade_id=cursor,
                fetched=len(fills),
                new_fills=new,
                correlation_id=correlation_id,
                cursor=last,
            )
        )
        return new

    # ----------------------------------------------------------------- snapshots

    async def _snapshot_loop(self) -> None:
        while True:
            await self.snapshot_once()
            with trio.move_on_after(self._config.snapshot_interval_s):
                await self._snapshot_now.wait()
            self._snapshot_now = trio.Event()

    async def snapshot_once(self) -> SnapshotReady:
        """Read open orders, positions and balances and hand them to the Reconciler."""
        taken_at = self._clock.now()
        snapshot: AccountSnapshot | None = None
        balances: tuple[Balance, ...] = ()
        error: str | None = None
        try:
            with trio.fail_after(self._config.request_timeout_s):
                snapshot = await take_snapshot(self._venue, taken_at)
                balances = tuple(await self._venue.balances())
        except VenueError as exc:
            error = exc.verdict.reason
        except trio.TooSlowError:
            error = "snapshot_timeout"
        now = self._clock.now()
        if error is None:
            self.health.observe(SourceKind.REST, now)
        else:
            self.health.record_error(SourceKind.REST, now, error)
        ready = SnapshotReady(
            snapshot=snapshot if error is None else None,
            balances=balances,
            evidence=self.health.snapshot(now),
            error=error,
        )
        await self._snapshots.send(ready)
        return ready

    # ----------------------------------------------------------------- queries

    async def _query_loop(self) -> None:
        async for request in self._queries:
            for coid in request.client_order_ids:
                known = self._journal.state.orders.get(coid)
                if known is None:
                    continue
                try:
                    order = await call_within(
                        self._config.request_timeout_s,
                        Operation.QUERY,
                        self._venue.query_order,
                        request.symbol,
                        client_order_id=coid,
                        conditional=known.conditional,
                    )
                except VenueError as exc:
                    self.health.record_error(SourceKind.REST, self._clock.now(), exc.verdict.reason)
                    continue
                await self._journal.append(
                    OrderObserved(
                        intent_id=known.intent_id,
                        correlation_id=known.correlation_id,
                        client_order_id=coid,
                        order=order,
                        source="query",
                        observed_wall_ms=self._clock.wall_ms(),
                    )
                )
            try:
                new = await self.backfill(request.symbol, correlation_id=request.correlation_id)
                request.backfilled = new is not None
            finally:
                if request.done is not None:
                    request.done.set()
