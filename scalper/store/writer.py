"""Group commit on trio: many writers, one transaction, one fsync, every waiter woken.

Theory of operation
-------------------

An fsync costs from tens of microseconds to milliseconds; paying it once per record would
cap the system at a few hundred records a second and put one fsync on every order's path
several times over. :class:`GroupCommitWriter` pays it once per *batch*:

* :meth:`GroupCommitWriter.write` queues one :class:`~scalper.store.records.WriteItem` and
  waits. It returns only when the batch holding the item has committed (WAL fsynced,
  ``synchronous=FULL``): **a record is durable exactly when its waiter wakes**, and that is
  the point after which the Router may send the order it describes (I7).
* :meth:`GroupCommitWriter.run` is the single writer loop: wait for at least one pending
  item, yield once so that every task woken at the same instant queues its item too, take
  everything pending (up to ``max_batch``) in queue order, make one
  :meth:`~scalper.store.store.Store.write` call through the executor, and wake each waiter
  with its own outcome. Queue order is journal order. While one batch commits, the next
  accumulates, so under load batches grow by themselves.

**Failure.** If a batch fails (:class:`~scalper.store.errors.StoreWriteError`), every
waiter of that batch gets the error raised, every item still queued is failed without
being attempted, later calls to ``write`` fail at once, and ``run`` re-raises: the process
must halt. A failed commit is never retried (after a failed fsync the disk's state is
unknowable from inside the process; only a restart that reopens the store knows). An item
refused by the ledger (:class:`~scalper.store.errors.LedgerConflict`) fails only its own
waiter. Cancelling a ``write`` call does not withdraw its item: once queued, it is written
(or failed with the batch) whether or not anyone still waits for it; recovery treats a
durable SENDING row nobody acted on like any other unresolved order. If ``run`` is
cancelled (shutdown), items still queued are failed with
:class:`~scalper.store.errors.WriterClosed`; a batch already in the executor always
completes first.

**Executors.** Store calls block. :data:`inline_executor` runs them directly on the event
loop: no threads, so under ``trio.testing.MockClock`` with a seeded scheduler the whole
writer is deterministic (it reads no clock and draws no randomness). :class:`ThreadExecutor`
runs them on a worker thread through ``trio.to_thread.run_sync`` with a
``CapacityLimiter(1)``, so one call at a time touches the connection (open the store with
``check_same_thread=False``), and never abandons a call on cancellation: a commit in flight
is always seen through.
"""

import collections
import functools
from collections.abc import Callable
from typing import Protocol, TypeVar

import attrs
import trio

from scalper.core.errors_base import CoreValueError
from scalper.store.errors import LedgerConflict, StoreWriteError, WriterClosed
from scalper.store.records import WriteItem, WriteOutcome
from scalper.store.store import Store

__all__ = [
    "DEFAULT_MAX_BATCH",
    "Executor",
    "GroupCommitWriter",
    "ThreadExecutor",
    "WriterStats",
    "inline_executor",
]

T = TypeVar("T")

#: Items per commit at most (an fsync covers them all; a cap bounds one commit's latency).
DEFAULT_MAX_BATCH = 1024


class Executor(Protocol):
    """Runs a blocking store call and returns its result."""

    async def __call__(self, fn: Callable[[], T], /) -> T:
        """Run ``fn`` and return what it returns (or raise what it raises)."""
        ...


async def inline_executor(fn: Callable[[], T], /) -> T:
    """Run ``fn`` directly on the event loop (simulated time: no threads, deterministic)."""
    return fn()


class ThreadExecutor:
    """Run each call on a worker thread, one at a time (production).

    The calls are never abandoned on cancellation: a commit that has started is waited for,
    so its outcome is always known.
    """

    def __init__(self) -> None:
        self._limiter = trio.CapacityLimiter(1)

    async def __call__(self, fn: Callable[[], T], /) -> T:
        """Run ``fn`` on a worker thread and return its result."""
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)


@attrs.frozen
class WriterStats:
    """Counters of a :class:`GroupCommitWriter` (for metrics and tests).

    Attributes:
        batches: commits made.
        items: items committed (including duplicates and conflicts, which cost no fsync).
        max_batch_size: the largest batch so far.
        duplicates: items skipped as already-stored fills.
        conflicts: items refused by the ledger.
    """

    batches: int = 0
    items: int = 0
    max_batch_size: int = 0
    duplicates: int = 0
    conflicts: int = 0


@attrs.define
class _Waiter:
    item: WriteItem
    done: trio.Event = attrs.Factory(trio.Event)
    outcome: WriteOutcome | None = None
    error: BaseException | None = None


class GroupCommitWriter:
    """Batches concurrent writes into single commits on one :class:`Store`.

    Args:
        store: the open store (TRADING mode); the writer becomes its only writer.
        executor: where blocking store calls run (:data:`inline_executor` or a
            :class:`ThreadExecutor`).
        max_batch: items per commit at most.

    Raises:
        CoreValueError: if ``max_batch`` is not a positive integer.
    """

    def __init__(
        self,
        store: Store,
        *,
        executor: Executor = inline_executor,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if type(max_batch) is not int or max_batch < 1:
            raise CoreValueError("max_batch", f"must be an integer >= 1, got {max_batch!r}")
        self._store = store
        self._executor = executor
        self._max_batch = max_batch
        self._pending: collections.deque[_Waiter] = collections.deque()
        self._wakeup: trio.Event | None = None
        self._running = False
        self._halted: BaseException | None = None
        self._stats = WriterStats()

    @property
    def stats(self) -> WriterStats:
        """Batches, items and the largest batch so far."""
        return self._stats

    @property
    def pending(self) -> int:
        """Items queued and not yet taken into a batch."""
        return len(self._pending)

    @property
    def halted(self) -> BaseException | None:
        """The failure that stopped the writer for good, if any."""
        return self._halted

    async def write(self, item: WriteItem) -> WriteOutcome:
        """Queue ``item`` and return its outcome once its batch is durable.

        Returns:
            The item's outcome: its journal entry, or ``duplicate=True`` for an
            already-stored fill (nothing was written for it).

        Raises:
            StoreWriteError: the batch failed, or the writer halted earlier; the process
                must halt.
            LedgerConflict: the store refused this item's ledger upsert; nothing of the
                item was written.
            WriterClosed: the writer stopped before the item was written.
            CoreValueError: ``item`` is not a WriteItem.
        """
        if not isinstance(item, WriteItem):
            raise CoreValueError("item", f"must be a WriteItem, got {item!r}")
        if self._halted is not None:
            raise StoreWriteError(
                f"the journal writer halted after a failed write ({self._halted}); "
                f"nothing more can be written by this process"
            ) from self._halted
        waiter = _Waiter(item)
        self._pending.append(waiter)
        if self._wakeup is not None:
            self._wakeup.set()
        await waiter.done.wait()
        if waiter.error is not None:
            raise _fresh(waiter.error)
        assert waiter.outcome is not None
        if waiter.outcome.conflict:
            raise LedgerConflict(waiter.outcome.conflict)
        return waiter.outcome

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches until cancelled; re-raise the first failed write.

        Raises:
            StoreWriteError: a batch failed (the process must halt).
            RuntimeError: ``run`` is already running.
        """
        if self._running:
            raise RuntimeError("GroupCommitWriter.run is already running")
        if self._halted is not None:
            raise StoreWriteError(f"the journal writer halted earlier: {self._halted}")
        self._running = True
        task_status.started()
        try:
            while True:
                if not self._pending:
                    self._wakeup = trio.Event()
                    await self._wakeup.wait()
                    self._wakeup = None
                # Every task woken at this instant runs before we do: one batch for all.
                await trio.lowlevel.checkpoint()
                await self._commit_one_batch()
        finally:
            self._running = False
            self._wakeup = None
            if self._halted is None:
                self._fail_pending(WriterClosed("the journal writer stopped; not written"))

    async def _commit_one_batch(self) -> None:
        batch = [self._pending.popleft() for _ in range(min(self._max_batch, len(self._pending)))]
        items = [w.item for w in batch]
        try:
            outcomes = await self._executor(functools.partial(self._store.write, items))
        except trio.Cancelled:
            # Only possible before the call started (executors never abandon a call that
            # runs): nothing was written. Requeue in order; run()'s exit fails them.
            self._pending.extendleft(reversed(batch))
            raise
        except BaseException as exc:
            self._halted = exc
            fate = (
                "whether it reached the disk is known only after a restart"
                if isinstance(exc, StoreWriteError)
                else "it was not written"
            )
            error = StoreWriteError(f"journal batch of {len(batch)} item(s) failed ({exc}); {fate}")
            error.__cause__ = exc
            for waiter in batch:
                waiter.error = error
                waiter.done.set()
            self._fail_pending(
                StoreWriteError(f"not written: the journal writer halted ({exc})"), cause=exc
            )
            raise
        assert len(outcomes) == len(batch), "one outcome per item"
        for waiter, outcome in zip(batch, outcomes, strict=True):
            waiter.outcome = outcome
            waiter.done.set()
        s = self._stats
        self._stats = WriterStats(
            batches=s.batches + 1,
            items=s.items + len(batch),
            max_batch_size=max(s.max_batch_size, len(batch)),
            duplicates=s.duplicates + sum(o.duplicate for o in outcomes),
            conflicts=s.conflicts + sum(bool(o.conflict) for o in outcomes),
        )

    def _fail_pending(self, error: BaseException, cause: BaseException | None = None) -> None:
        if cause is not None:
            error.__cause__ = cause
        while self._pending:
            waiter = self._pending.popleft()
            waiter.error = error
            waiter.done.set()


def _fresh(error: BaseException) -> BaseException:
    # Several tasks may be failed by one batch: give each its own exception object (raising
    # one object in many tasks tangles their tracebacks), chained to the same cause.
    clone = type(error)(*error.args)
    clone.__cause__ = error.__cause__
    return clone
