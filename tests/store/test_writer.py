"""Group commit on trio: batching at one instant, durability before wake-up, failure halts."""

import hashlib
import sqlite3
import threading

import pytest
import trio
import trio.testing

from scalper.core.errors_base import CoreValueError
from scalper.determinism import run_deterministic
from scalper.store import (
    MEMORY,
    GroupCommitWriter,
    LedgerConflict,
    OpenMode,
    Store,
    StoreWriteError,
    ThreadExecutor,
    WriteItem,
    WriteOutcome,
    WriterClosed,
    inline_executor,
)
from tests.store.storekit import entry_of, fill_item, record, sending_item


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "ledger.db") as s:
        yield s


def _durable_seqs(path) -> list[int]:
    """What another connection sees: committed, on disk."""
    with Store.open(path, mode=OpenMode.READ_ONLY) as ro:
        return [e.seq for e in ro.entries()]


# --------------------------------------------------------------------------- batching


async def test_writers_at_the_same_instant_share_one_commit(store, autojump_clock):
    writer = GroupCommitWriter(store)
    outcomes = {}

    async def client(i):
        await trio.sleep(1.0)  # all eight wake at t=1.0
        outcomes[i] = await writer.write(WriteItem(record(i, intent_id=f"i-{i}")))

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for i in range(8):
            nursery.start_soon(client, i)
        await trio.sleep(5)
        nursery.cancel_scope.cancel()

    assert writer.stats.batches == 1
    assert writer.stats.max_batch_size == 8
    assert writer.stats.items == 8
    assert sorted(entry_of(o).seq for o in outcomes.values()) == list(range(1, 9))
    assert {entry_of(o).intent_id for o in outcomes.values()} == {f"i-{i}" for i in range(8)}


async def test_writers_at_different_instants_commit_separately_in_order(store, autojump_clock):
    writer = GroupCommitWriter(store)
    seqs = []

    async def client(i):
        await trio.sleep(i)
        outcome = await writer.write(WriteItem(record(i)))
        seqs.append((i, entry_of(outcome).seq))

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for i in range(1, 6):
            nursery.start_soon(client, i)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()

    assert writer.stats.batches == 5
    assert writer.stats.max_batch_size == 1
    assert seqs == [(i, i) for i in range(1, 6)]  # queue order is journal order


async def test_max_batch_splits_a_burst_without_reordering(store, autojump_clock):
    writer = GroupCommitWriter(store, max_batch=4)
    got = {}
    queued = []

    async def client(i):
        queued.append(i)  # write() queues before its first checkpoint: this is queue order
        got[i] = await writer.write(WriteItem(record(i)))

    async with trio.open_nursery() as nursery:
        # Queue all ten before the writer starts: one burst, taken four at a time.
        for i in range(10):
            nursery.start_soon(client, i)
        await trio.testing.wait_all_tasks_blocked()
        assert writer.pending == 10
        await nursery.start(writer.run)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()

    assert writer.stats.batches == 3
    assert writer.stats.max_batch_size == 4
    assert sorted(got, key=lambda i: entry_of(got[i]).seq) == queued
    assert [entry_of(got[i]).seq for i in queued] == list(range(1, 11))


async def test_a_slow_commit_lets_the_next_batch_grow(store, autojump_clock):
    # Each commit takes 50 ms of (virtual) fsync time; writers arrive every 10 ms.
    async def slow_fsync(fn):
        await trio.sleep(0.05)
        return fn()

    writer = GroupCommitWriter(store, executor=slow_fsync)
    order = []

    async def client(i):
        await trio.sleep(0.01 * i)
        outcome = await writer.write(WriteItem(record(i)))
        order.append(entry_of(outcome).seq)

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for i in range(20):
            nursery.start_soon(client, i)
        await trio.sleep(2)
        nursery.cancel_scope.cancel()

    assert writer.stats.items == 20
    assert writer.stats.batches <= 6  # about one commit per 50 ms, not one per writer
    assert writer.stats.max_batch_size >= 4
    assert sorted(order) == list(range(1, 21))


# --------------------------------------------------------------------------- durability


async def test_a_waiter_wakes_only_after_its_record_is_durable(store, autojump_clock):
    commits_done = []

    async def observed(fn):
        await trio.sleep(0.02)  # the fsync takes time; nobody may wake before it ends
        result = fn()
        commits_done.append((trio.current_time(), [entry_of(o).seq for o in result]))
        return result

    writer = GroupCommitWriter(store, executor=observed)
    checks = []

    async def client(i):
        await trio.sleep(0.005 * i)
        outcome = await writer.write(WriteItem(record(i)))
        woke = trio.current_time()
        committed_at = next(t for t, seqs in commits_done if entry_of(outcome).seq in seqs)
        checks.append((woke >= committed_at, entry_of(outcome).seq in _durable_seqs(store.path)))

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for i in range(12):
            nursery.start_soon(client, i)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()

    assert len(checks) == 12
    assert all(after and durable for after, durable in checks)


async def test_a_duplicate_fill_is_an_outcome_not_an_error(store, autojump_clock):
    writer = GroupCommitWriter(store)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        first = await writer.write(fill_item(1, "t-1"))
        again = await writer.write(fill_item(2, "t-1"))
        nursery.cancel_scope.cancel()
    assert first.entry is not None
    assert again.duplicate
    assert again.entry is None
    assert writer.stats.duplicates == 1
    assert store.fill_count() == 1


async def test_a_ledger_conflict_fails_only_its_own_writer(store, autojump_clock):
    store.write([sending_item(1, "i-1")])
    writer = GroupCommitWriter(store)
    results: dict[str, object] = {}

    async def client(name, item):
        await trio.sleep(1)
        try:
            results[name] = await writer.write(item)
        except LedgerConflict as exc:
            results[name] = exc

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        nursery.start_soon(client, "second_generation_too_early", sending_item(2, "i-1", 1))
        nursery.start_soon(client, "other_intent", sending_item(3, "i-2"))
        await trio.sleep(2)
        nursery.cancel_scope.cancel()

    assert writer.stats.batches == 1
    assert writer.stats.conflicts == 1
    assert isinstance(results["second_generation_too_early"], LedgerConflict)
    assert "I7" in str(results["second_generation_too_early"])
    other = results["other_intent"]
    assert isinstance(other, WriteOutcome)
    assert entry_of(other).seq == 2
    assert writer.halted is None


# --------------------------------------------------------------------------- failures


class _FailingCommit:
    """A connection whose COMMIT fails, as a failed fsync makes it fail."""

    def __init__(self, real):
        self._real = real

    def execute(self, sql, *args):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return self._real.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._real, name)


async def test_a_failed_commit_fails_every_waiter_and_halts(store, autojump_clock, monkeypatch):
    store.write([WriteItem(record(0))])
    monkeypatch.setattr(store, "_conn", _FailingCommit(store._conn))
    writer = GroupCommitWriter(store, max_batch=3)
    errors = {}

    async def client(i):
        try:
            await writer.write(WriteItem(record(i)))
        except StoreWriteError as exc:
            errors[i] = exc

    with pytest.RaisesGroup(pytest.RaisesExc(StoreWriteError, match="disk I/O error")):
        async with trio.open_nursery() as nursery:
            for i in range(1, 6):
                nursery.start_soon(client, i)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(writer.run)  # takes 3, fails, fails the 2 still queued

    assert sorted(errors) == [1, 2, 3, 4, 5]
    in_batch = [e for e in errors.values() if "batch of 3 item(s) failed" in str(e)]
    not_tried = [e for e in errors.values() if "not written" in str(e)]
    assert len(in_batch) == 3
    assert len(not_tried) == 2
    assert all(isinstance(e.__cause__, StoreWriteError) for e in errors.values())
    assert len({id(e) for e in errors.values()}) == 5  # one exception object per waiter
    assert writer.halted is not None
    # The process must halt: nothing more is accepted, and run() refuses to restart.
    with pytest.raises(StoreWriteError, match="halted"):
        await writer.write(WriteItem(record(9)))
    with pytest.raises(StoreWriteError, match="halted"):
        await writer.run()
    monkeypatch.undo()
    assert [e.seq for e in store.entries()] == [1]


async def test_stopping_the_writer_fails_what_is_still_queued(store, autojump_clock):
    writer = GroupCommitWriter(store)
    errors = []

    async def client(i):
        try:
            await writer.write(WriteItem(record(i)))
        except WriterClosed as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(client, i)
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as scope:
            scope.cancel()
            await writer.run()  # cancelled at its first checkpoint, before any commit
    assert len(errors) == 3
    assert writer.pending == 0
    assert store.last_entry() is None
    # A clean stop is not a halt: the writer can run again.
    assert writer.halted is None
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        outcome = await writer.write(WriteItem(record(7)))
        nursery.cancel_scope.cancel()
    assert entry_of(outcome).seq == 1


async def test_run_twice_at_once_is_refused(store, autojump_clock):
    writer = GroupCommitWriter(store)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        with pytest.raises(RuntimeError, match="already running"):
            await writer.run()
        nursery.cancel_scope.cancel()


def test_writer_arguments_are_validated(tmp_path):
    with Store.open(MEMORY) as s:
        with pytest.raises(CoreValueError) as info:
            GroupCommitWriter(s, max_batch=0)
        assert info.value.field == "max_batch"
        writer = GroupCommitWriter(s)
        with pytest.raises(CoreValueError):
            trio.run(writer.write, "not an item")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- executors


def _scenario_digest(seed: int) -> str:
    """A busy simulated run on an in-memory store; the digest of the journal it leaves."""

    async def main():
        with Store.open(MEMORY) as store:
            writer = GroupCommitWriter(store, executor=inline_executor, max_batch=5)

            async def client(i):
                await trio.sleep((i % 4) * 0.25)  # several writers per instant
                await writer.write(WriteItem(record(i, intent_id=f"i-{i}")))

            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                for i in range(24):
                    nursery.start_soon(client, i)
                await trio.sleep(5)
                nursery.cancel_scope.cancel()
            h = hashlib.sha256()
            for e in store.entries():
                h.update(e.hash.encode())
            return h.hexdigest(), writer.stats

    digest, stats = run_deterministic(main, seed=seed)
    assert stats.items == 24
    assert stats.batches == 8  # four instants, six writers each, at most five per batch
    return digest


def test_inline_writer_is_deterministic_under_mock_clock():
    assert _scenario_digest(7) == _scenario_digest(7)
    assert _scenario_digest(11) == _scenario_digest(11)


async def test_thread_executor_commits_on_a_worker_thread(tmp_path):
    with Store.open(tmp_path / "ledger.db", check_same_thread=False) as store:
        threads = set()
        real_write = store.write

        def spy(items):
            threads.add(threading.current_thread().name)
            return real_write(items)

        store.write = spy  # type: ignore[method-assign]
        writer = GroupCommitWriter(store, executor=ThreadExecutor())
        outcomes = []

        async def client(i):
            outcomes.append(await writer.write(WriteItem(record(i))))

        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            async with trio.open_nursery() as clients:
                for i in range(40):
                    clients.start_soon(client, i)
            nursery.cancel_scope.cancel()

        assert threading.current_thread().name not in threads
        assert sorted(entry_of(o).seq for o in outcomes) == list(range(1, 41))
        assert writer.stats.batches < 40
        del store.write
        assert store.verify().ok


async def test_thread_executor_never_abandons_a_commit_in_flight(tmp_path):
    with Store.open(tmp_path / "ledger.db", check_same_thread=False) as store:
        entered, gate = threading.Event(), threading.Event()
        real_write = store.write

        def slow_fsync(items):
            entered.set()
            gate.wait(10)
            return real_write(items)

        store.write = slow_fsync  # type: ignore[method-assign]
        writer = GroupCommitWriter(store, executor=ThreadExecutor())
        got = []
        run_scope = trio.CancelScope()

        async def run_writer():
            with run_scope:
                await writer.run()

        async def client():
            got.append(await writer.write(WriteItem(record(1))))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_writer)
            nursery.start_soon(client)
            await trio.to_thread.run_sync(entered.wait, 10)
            run_scope.cancel()  # shutdown arrives while the commit is on the worker thread
            await trio.sleep(0.05)
            assert got == []  # still waiting: the commit is not abandoned...
            gate.set()
        # ...and when it finishes, its waiter learns the outcome instead of an error.
        assert entry_of(got[0]).seq == 1
        del store.write
        assert [e.seq for e in store.entries()] == [1]
