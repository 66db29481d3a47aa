"""The Journal actor: the single writer of the journal and the ledger, and its fan-out.

Theory of operation
-------------------

Every fact in scalper goes through :meth:`Journal.append`. In one step, with no await in
between, the Journal

1. encodes the event canonically (:func:`scalper.messages.encode_event`),
2. applies it to the :class:`~scalper.state.AccountState` fold, which yields the ledger
   rows and the fill key to write with it (a fill whose trade id was journaled before is
   refused here: :class:`~scalper.state.DuplicateFill`, I10), and
3. queues the row for the group-commit writer.

``append`` returns only when the row is durable (WAL, ``synchronous=FULL``): that is what
"journal before send" means for the Router (I7). Queue order is journal order, so the state
fold sees events in exactly the order a replay will (I5).

Subscribers (the Reconciler, status views, tests) receive ``(entry, event)`` pairs in
sequence order once durable, on unbounded memory channels: a slow reader must never stall
the writer, which would stall exits. The lag of each subscriber is visible in
:meth:`Journal.subscriber_lag` for the metrics.

A journal write that fails raises out of the writer and takes the system down: after a
failed fsync nothing is known about the disk, and the only safe continuation is a restart
that rebuilds from what is durable.
"""

import functools
import math

import attrs
import trio

from scalper.clock import Clock
from scalper.messages import Event, encode_event, event_type, intent_of
from scalper.state import AccountState, DuplicateFill
from scalper.store.errors import LedgerConflict
from scalper.store.records import JournalEntry, JournalRecord, WriteItem
from scalper.store.store import Store
from scalper.store.writer import Executor, GroupCommitWriter, inline_executor

__all__ = ["Journal", "JournalSubscription"]


@attrs.frozen
class JournalSubscription:
    """One subscriber's end: ``(entry, event)`` pairs in sequence order."""

    name: str
    receive: trio.MemoryReceiveChannel[tuple[JournalEntry, Event]]


class Journal:
    """Durable, ordered, hash-chained journal with the account state it implies.

    Args:
        store: the open store (TRADING mode).
        clock: the system clock (journal rows carry its wall time).
        executor: :data:`inline_executor` under simulated time, a thread executor in
            production.
        prefix: our client-order-id prefix (for the state's view of foreign orders).
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        executor: Executor = inline_executor,
        prefix: str = "sc",
        purge_interval_s: float = 3600.0,
        ledger_ttl_ms: int = 48 * 3600 * 1000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._executor = executor
        self._purge_interval_s = purge_interval_s
        self._ledger_ttl_ms = ledger_ttl_ms
        self.purged: dict[str, int] = {}
        self._writer = GroupCommitWriter(store, executor=executor)
        self.state = self._rebuild(store, prefix)
        self._subscribers: list[tuple[str, trio.MemorySendChannel[tuple[JournalEntry, Event]]]] = []
        self._ready: dict[int, tuple[JournalEntry, Event]] = {}
        last = store.last_entry()
        self._next_fanout = 1 if last is None else last.seq + 1
        self.appended = 0
        self.duplicate_fills = 0
        self.conflicts = 0

    @staticmethod
    def _rebuild(store: Store, prefix: str) -> AccountState:
        return AccountState.replay(
            ((e.type, e.payload, e.wall_ms) for e in store.entries()), prefix=prefix
        )

    @property
    def store(self) -> Store:
        """The underlying store (reads only; the writer owns all writes)."""
        return self._store

    @property
    def writer(self) -> GroupCommitWriter:
        """The group-commit writer (for its statistics)."""
        return self._writer

    def subscribe(self, name: str) -> JournalSubscription:
        """A new subscription receiving every entry made durable from now on."""
        send, receive = trio.open_memory_channel[tuple[JournalEntry, Event]](math.inf)
        self._subscribers.append((name, send))
        return JournalSubscription(name, receive)

    def subscriber_lag(self) -> dict[str, int]:
        """Entries waiting in each subscriber's channel (journal lag, for the metrics)."""
        return {name: send.statistics().current_buffer_used for name, send in self._subscribers}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the group-commit writer until cancelled (or until a write fails)."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._purge_loop)
                await self._writer.run(task_status=task_status)
                nursery.cancel_scope.cancel()
        finally:
            for _, send in self._subscribers:
                send.close()

    async def _purge_loop(self) -> None:
        """Drop terminal ledger rows past their TTL; the journal itself is never purged.

        The ledger is the cross-process idempotency index; the journal, which the state is
        rebuilt from, keeps every record. Counts are persisted by the store.
        """
        while True:
            await trio.sleep(self._purge_interval_s)
            result = await self._executor(
                functools.partial(
                    self._store.purge_terminal, self._clock.wall_ms(), self._ledger_ttl_ms
                )
            )
            for state, count in result.as_dict().items():
                self.purged[state] = self.purged.get(state, 0) + count

    async def append(self, event: Event) -> JournalEntry | None:
        """Journal ``event``; return its durable entry, or ``None`` for a duplicate fill.

        Raises:
            StoreWriteError: the write failed; the caller must not act on the event.
        """
        payload = encode_event(event)
        wall_ms = self._clock.wall_ms()
        try:
            ops = self.state.apply(event, wall_ms)
        except DuplicateFill:
            self.duplicate_fills += 1
            return None
        intent_id, correlation_id = intent_of(event)
        record = JournalRecord(
            type=event_type(event),
            wall_ms=wall_ms,
            payload=payload,
            intent_id=intent_id,
            correlation_id=correlation_id,
        )
        try:
            outcome = await self._writer.write(WriteItem(record, ops))
        except LedgerConflict:
            # The store refused the item (e.g. a second live risk-increasing order for one
            # intent, I7) after the state had applied it: put the state back to what is
            # durable, then let the caller fail.
            self.state = self._rebuild(self._store, self.state.prefix)
            self.conflicts += 1
            raise
        if outcome.duplicate or outcome.entry is None:
            # The store's fill table disagrees with the state's: the state was rebuilt from
            # the same journal, so this means a bug; refuse loudly rather than diverge.
            raise RuntimeError(f"store refused {record.type} as a duplicate the state did not know")
        self.appended += 1
        self._fan_out(outcome.entry, event)
        return outcome.entry

    def _fan_out(self, entry: JournalEntry, event: Event) -> None:
        # Waiters of one batch wake in scheduler order, not sequence order: hold entries
        # until every earlier one has been handed out.
        self._ready[entry.seq] = (entry, event)
        while self._next_fanout in self._ready:
            item = self._ready.pop(self._next_fanout)
            self._next_fanout += 1
            gone = []
            for i, (_, send) in enumerate(self._subscribers):
                try:
                    send.send_nowait(item)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    gone.append(i)  # a stopped subscriber does not stop the journal
            for i in reversed(gone):
                del self._subscribers[i]
