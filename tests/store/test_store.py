"""The Store on real files: round trips, the chain, locking, incarnations, fills, purge."""

import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.store import (
    GENESIS_HASH,
    MEMORY,
    JournalRecord,
    LedgerLocked,
    LedgerState,
    OpenMode,
    SetCursor,
    Store,
    StoreError,
    StoreReadOnly,
    StoreWriteError,
    UpsertLedger,
    WriteItem,
    chain_hash,
)
from scalper.store.store import DEFAULT_TERMINAL_TTL_MS, StoreConfig
from tests.store.storekit import (
    BTC,
    T0,
    coid,
    entry_of,
    fill_item,
    record,
    row,
    sending_item,
)

HOUR_MS = 3600 * 1000


@pytest.fixture
def db(tmp_path):
    return tmp_path / "var" / "ledger.db"


@pytest.fixture
def store(db):
    with Store.open(db) as s:
        yield s


# --------------------------------------------------------------------------- round trips


def test_records_round_trip_with_contiguous_seqs_and_a_chain(store):
    recs = [record(i, kind="order_sending", intent_id=f"i-{i}") for i in range(5)]
    outcomes = store.write([WriteItem(r) for r in recs[:3]]) + store.write(
        [WriteItem(r) for r in recs[3:]]
    )
    entries = list(store.entries())
    assert [o.entry for o in outcomes] == entries
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert [e.record for e in entries] == recs
    prev = GENESIS_HASH
    for e in entries:
        assert e.prev_hash == prev
        assert e.hash == chain_hash(
            prev, e.seq, e.wall_ms, e.type, e.intent_id, e.correlation_id, e.payload
        )
        prev = e.hash
    assert store.last_entry() == entries[-1]
    assert list(store.entries(2, 3)) == entries[1:3]
    assert list(store.entries(4)) == entries[3:]
    assert list(store.entries(6)) == []
    assert list(store.entries(3, 2)) == []


def test_entries_survive_reopen_and_chunked_reads(db):
    with Store.open(db, config=StoreConfig(read_chunk=3)) as s:
        written = [entry_of(o) for o in s.write([WriteItem(record(i)) for i in range(10)])]
        assert list(s.entries()) == written  # 4 chunks of at most 3
        assert list(s.entries(2, 8)) == written[1:8]
    with Store.open(db, config=StoreConfig(read_chunk=3)) as s:
        assert list(s.entries()) == written
        more = entry_of(s.write([WriteItem(record(10))])[0])
        assert more is not None
        assert more.seq == 11
        assert more.prev_hash == written[-1].hash


def test_entries_validates_bounds_eagerly(store):
    with pytest.raises(CoreValueError) as info:
        store.entries(0)
    assert info.value.field == "from_seq"
    with pytest.raises(CoreValueError):
        store.entries(1, -1)


def test_ledger_rows_round_trip_and_follow_their_orders(store):
    sending = row("i-1")
    store.write([WriteItem(record(1, intent_id="i-1"), (UpsertLedger(sending),))])
    assert store.ledger_row(sending.client_order_id) == sending
    acked = attrs.evolve(
        sending,
        state=LedgerState.ACKED,
        updated_wall_ms=T0 + 40,
        sent_wall_ms=T0 + 1,
        venue_order_id="8389765",
        reason="ack",
    )
    store.write([WriteItem(record(2, intent_id="i-1"), (UpsertLedger(acked),))])
    assert store.ledger_row(sending.client_order_id) == acked
    assert store.ledger_for_intent("i-1") == [acked]
    assert store.open_ledger_rows() == [acked]
    filled = attrs.evolve(acked, state=LedgerState.FILLED, updated_wall_ms=T0 + 90)
    store.write([WriteItem(record(3, intent_id="i-1"), (UpsertLedger(filled),))])
    assert store.open_ledger_rows() == []
    assert store.ledger_row("sc-E-ffffffffffffffff-0") is None
    assert store.ledger_for_intent("i-unknown") == []


def test_generations_are_listed_in_order_and_only_live_ones_are_open(store):
    store.write([sending_item(1, "i-1")])
    # Generation 0 is proven absent and generation 1 goes out, in one item.
    store.write(
        [
            WriteItem(
                record(2, intent_id="i-1"),
                (
                    UpsertLedger(row("i-1", 1)),
                    UpsertLedger(row("i-1", 0, LedgerState.ABSENT, reason="not_found_x2")),
                ),
            )
        ]
    )
    rows = store.ledger_for_intent("i-1")
    assert [(r.generation, r.state) for r in rows] == [
        (0, LedgerState.ABSENT),
        (1, LedgerState.SENDING),
    ]
    assert [r.client_order_id for r in store.open_ledger_rows()] == [coid("i-1", 1)]


def test_cursors_are_set_and_overwritten(store):
    assert store.cursor("user_trades_from_id:BTCUSDT") is None
    store.write([WriteItem(None, (SetCursor("user_trades_from_id:BTCUSDT", "1001"),))])
    store.write([WriteItem(None, (SetCursor("user_trades_from_id:BTCUSDT", "1042"),))])
    assert store.cursor("user_trades_from_id:BTCUSDT") == "1042"
    assert store.last_entry() is None  # cursor-only items journal nothing


# --------------------------------------------------------------------------- the ledger's rules


def test_second_live_risk_increasing_order_for_an_intent_is_refused(store):
    store.write([sending_item(1, "i-1")])
    before = list(store.entries())
    outcomes = store.write([sending_item(2, "i-1", generation=1), sending_item(3, "i-2")])
    assert outcomes[0].entry is None
    assert "I7" in outcomes[0].conflict
    assert coid("i-1", 0) in outcomes[0].conflict
    assert not outcomes[0].applied
    # The refused item left nothing behind; the rest of the batch committed.
    assert store.ledger_row(coid("i-1", 1)) is None
    assert outcomes[1].entry is not None
    assert entry_of(outcomes[1]).seq == before[-1].seq + 1
    assert store.verify().ok


def test_exits_may_have_several_live_orders_per_intent(store):
    stop = attrs.evolve(row("i-x", 0), risk_increasing=False)
    stop2 = attrs.evolve(row("i-x", 1), risk_increasing=False)
    outcomes = store.write(
        [WriteItem(record(1), (UpsertLedger(stop),)), WriteItem(record(2), (UpsertLedger(stop2),))]
    )
    assert all(o.applied for o in outcomes)
    assert len(store.open_ledger_rows()) == 2


def test_evidence_about_an_existing_order_is_never_refused_by_the_i7_rule(store):
    # Generation 0 was proven absent, generation 1 went out, then generation 0 turns out
    # to exist after all: recording that evidence must not be refused.
    store.write([sending_item(1, "i-1")])
    store.write([WriteItem(record(2), (UpsertLedger(row("i-1", 0, LedgerState.ABSENT)),))])
    store.write([sending_item(3, "i-1", generation=1)])
    late = row("i-1", 0, LedgerState.ACKED, venue_order_id="77", reason="found_late")
    outcome = store.write([WriteItem(record(4), (UpsertLedger(late),))])[0]
    assert outcome.applied
    assert {r.client_order_id for r in store.open_ledger_rows()} == {coid("i-1", 0), coid("i-1", 1)}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("intent_id", "i-other"),
        ("generation", 3),
        ("symbol", "ETHUSDT"),
        ("spec", '{"quantity":"0.020"}'),
        ("risk_increasing", False),
    ],
)
def test_an_orders_identity_cannot_be_rewritten(store, field, value):
    original = row("i-1")
    store.write([WriteItem(record(1), (UpsertLedger(original),))])
    changed = attrs.evolve(original, state=LedgerState.ACKED, **{field: value})
    outcome = store.write([WriteItem(record(2), (UpsertLedger(changed),))])[0]
    assert outcome.entry is None
    assert f"change {field}" in outcome.conflict
    assert store.ledger_row(original.client_order_id) == original
    assert store.last_entry().seq == 1


# --------------------------------------------------------------------------- fills, I10


def test_fill_dedupe_across_batches_and_within_one(store):
    first = store.write([fill_item(1, "t-1"), fill_item(2, "t-2"), fill_item(3, "t-1")])
    assert [o.duplicate for o in first] == [False, False, True]
    assert first[2].entry is None
    again = store.write([fill_item(4, "t-2"), fill_item(5, "t-3")])
    assert [o.duplicate for o in again] == [True, False]
    assert store.fill_count() == 3
    assert store.has_fill(BTC, "t-1")
    assert not store.has_fill("ETHUSDT", "t-1")
    assert [e.seq for e in store.entries()] == [1, 2, 3]


def test_a_duplicate_fill_skips_its_whole_item(store):
    store.write([fill_item(1, "t-1")])
    item = WriteItem(
        record(2, intent_id="i-1"),
        (*fill_item(2, "t-1").ops, UpsertLedger(row("i-1")), SetCursor("from_id", "9")),
    )
    outcome = store.write([item])[0]
    assert outcome.duplicate
    assert store.ledger_row(coid("i-1")) is None
    assert store.cursor("from_id") is None
    assert store.last_entry().seq == 1


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.integers(0, 6)),
            min_size=1,
            max_size=6,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_every_fill_is_journaled_exactly_once(batches):
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "f.db") as s:
        seen: list[tuple[str, str]] = []
        expected_journal = []
        n = 0
        for batch in batches:
            items = []
            for symbol, tid in batch:
                n += 1
                items.append(fill_item(n, f"t-{tid}", symbol=symbol))
            outcomes = s.write(items)
            for item, outcome in zip(items, outcomes, strict=True):
                key = item.fill_keys[0]
                first_time = key not in seen
                assert outcome.duplicate is not first_time
                assert (outcome.entry is not None) is first_time
                if first_time:
                    seen.append(key)
                    expected_journal.append(item.record)
        assert s.fill_count() == len(seen)
        assert all(s.has_fill(*key) for key in seen)
        journal = list(s.entries())
        assert [e.record for e in journal] == expected_journal
        assert [e.seq for e in journal] == list(range(1, len(journal) + 1))
        assert s.verify().ok


# --------------------------------------------------------------------------- purge


def test_purge_removes_only_old_terminal_rows_and_counts_them(store):
    rows = [
        row("i-1", 0, LedgerState.FILLED, updated=0),
        row("i-2", 0, LedgerState.FILLED, updated=10 * HOUR_MS),
        row("i-3", 0, LedgerState.ABSENT, updated=1 * HOUR_MS),
        row("i-3", 1, LedgerState.CANCELED, updated=2 * HOUR_MS),
        row("i-4", 0, LedgerState.UNKNOWN, updated=0),  # live: never purged, however old
        row("i-5", 0, LedgerState.REJECTED, updated=60 * HOUR_MS),  # terminal but young
    ]
    store.write([WriteItem(record(i), (UpsertLedger(r),)) for i, r in enumerate(rows)])
    store.write([fill_item(10, "t-1")])
    journal_before = list(store.entries())

    now = T0 + 52 * HOUR_MS  # rows updated before T0 + 4h are past the 48h TTL
    result = store.purge_terminal(now)
    assert result.cutoff_wall_ms == now - DEFAULT_TERMINAL_TTL_MS
    assert result.as_dict() == {
        "ABSENT": 1,
        "REJECTED": 0,
        "FILLED": 1,
        "CANCELED": 1,
        "EXPIRED": 0,
    }
    left = {r.client_order_id for r in [*store.open_ledger_rows()]}
    assert left == {coid("i-4")}
    assert store.ledger_row(coid("i-2")) is not None
    assert store.ledger_row(coid("i-5")) is not None
    assert store.ledger_row(coid("i-1")) is None
    assert list(store.entries()) == journal_before  # the journal is append-only
    assert store.fill_count() == 1  # fills are never purged

    # Later purges add to persisted counters that survive a restart.
    later = store.purge_terminal(now + 100 * HOUR_MS, ttl_ms=0)
    assert later.as_dict()["FILLED"] == 1
    assert later.as_dict()["REJECTED"] == 1
    assert store.purge_counters()["FILLED"] == 2
    path = store.path
    store.close()
    with Store.open(path) as reopened:
        assert reopened.purge_counters() == {
            "ABSENT": 1,
            "REJECTED": 1,
            "FILLED": 2,
            "CANCELED": 1,
            "EXPIRED": 0,
        }
        assert reopened.purge_terminal(now + 200 * HOUR_MS).total == 0


def test_purge_validates_its_arguments(store):
    with pytest.raises(CoreValueError) as info:
        store.purge_terminal(T0, ttl_ms=-1)
    assert info.value.field == "ttl_ms"


# --------------------------------------------------------------------------- lock and incarnation


def test_incarnation_increments_across_opens_and_is_durable(db):
    seen = []
    for _ in range(3):
        with Store.open(db) as s:
            seen.append(s.incarnation)
    assert seen == [1, 2, 3]
    with Store.open(db, mode=OpenMode.READ_ONLY) as ro:
        assert ro.incarnation == 3  # read-only never bumps
    with Store.open(db) as s:
        assert s.incarnation == 4


def test_second_trading_open_in_this_process_is_locked_out(db):
    with Store.open(db):
        with pytest.raises(LedgerLocked) as info:
            Store.open(db)
        assert info.value.holder_pid == os.getpid()
        assert info.value.lock_path == f"{db}.lock"
        assert str(db) in str(info.value)
        # A reader is welcome while the writer runs.
        with Store.open(db, mode=OpenMode.READ_ONLY) as ro:
            assert ro.verify().ok
    with Store.open(db) as again:  # the lock died with the first store
        assert again.incarnation == 2


_CHILD = """
import json, sys
from scalper.store import Store, LedgerLocked
try:
    Store.open(sys.argv[1])
except LedgerLocked as exc:
    print(json.dumps({"locked": True, "holder": exc.holder_pid, "msg": str(exc)}))
else:
    print(json.dumps({"locked": False}))
"""


def test_second_trading_open_from_another_process_is_locked_out(db):
    import json

    cwd = Path(__file__).resolve().parents[2]
    with Store.open(db):
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(db)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=cwd,
            check=True,
        )
        answer = json.loads(done.stdout)
        assert answer["locked"] is True
        assert answer["holder"] == os.getpid()
        assert f"pid {os.getpid()}" in answer["msg"]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=True,
    )
    assert json.loads(done.stdout) == {"locked": False}


def test_close_is_idempotent_and_closed_store_refuses_use(db):
    s = Store.open(db)
    s.close()
    s.close()
    assert s.closed
    with pytest.raises(StoreError, match="closed"):
        s.last_entry()
    with pytest.raises(StoreError, match="closed"):
        s.write([WriteItem(record(1))])


# --------------------------------------------------------------------------- modes


def test_read_only_store_reads_but_refuses_writes(db):
    with Store.open(db) as s:
        s.write([sending_item(1, "i-1"), fill_item(2, "t-1")])
    size_before = db.stat().st_size
    with Store.open(db, mode=OpenMode.READ_ONLY) as ro:
        assert [e.seq for e in ro.entries()] == [1, 2]
        assert ro.ledger_row(coid("i-1")) is not None
        assert ro.has_fill(BTC, "t-1")
        with pytest.raises(StoreReadOnly):
            ro.write([WriteItem(record(3))])
        with pytest.raises(StoreReadOnly):
            ro.purge_terminal(T0)
    assert db.stat().st_size == size_before


def test_read_only_open_of_a_missing_store_says_so(tmp_path):
    with pytest.raises(StoreError, match="no store at"):
        Store.open(tmp_path / "nothing.db", mode=OpenMode.READ_ONLY)
    assert not (tmp_path / "nothing.db").exists()


def test_in_memory_store_needs_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Store.open(MEMORY) as s:
        assert s.incarnation == 1
        s.write([sending_item(1, "i-1"), fill_item(2, "t-1"), fill_item(3, "t-1")])
        assert [e.seq for e in s.entries()] == [1, 2]
        assert s.verify().ok
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StoreError, match="READ_ONLY"):
        Store.open(MEMORY, mode=OpenMode.READ_ONLY)


def test_file_store_uses_wal_and_full_sync(store, db):
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()
    conn = store._conn  # the setting is per connection: look at the store's own
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_a_foreign_sqlite_file_is_not_taken_over(tmp_path):
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE t (x)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="not a scalper store"):
        Store.open(path)
    with pytest.raises(StoreError, match="not a scalper store"):
        Store.open(path, mode=OpenMode.READ_ONLY)
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    raw.close()


def test_a_store_from_a_newer_release_is_refused(db):
    with Store.open(db):
        pass
    raw = sqlite3.connect(db)
    raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="schema version 2"):
        Store.open(db)


# --------------------------------------------------------------------------- write failures


def test_failed_write_rolls_back_raises_and_poisons_the_store(store, monkeypatch):
    store.write([WriteItem(record(1))])
    conn = store._conn

    class _FailingCommit:
        def __init__(self, real):
            self._real = real

        def execute(self, sql, *args):
            if sql == "COMMIT":
                raise sqlite3.OperationalError("disk I/O error")
            return self._real.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._real, name)

    monkeypatch.setattr(store, "_conn", _FailingCommit(conn))
    with pytest.raises(StoreWriteError, match="disk I/O error") as info:
        store.write([WriteItem(record(2)), fill_item(3, "t-1")])
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert store.failed is not None
    assert not conn.in_transaction
    # Never retried, never continued: every later write is refused, even if the disk is back.
    monkeypatch.setattr(store, "_conn", conn)
    with pytest.raises(StoreWriteError, match="refuses writes after an earlier failed write"):
        store.write([WriteItem(record(4))])
    # Nothing of the failed batch was applied.
    assert [e.seq for e in store.entries()] == [1]
    assert not store.has_fill(BTC, "t-1")


def test_failed_write_of_an_item_in_the_middle_applies_nothing(store, monkeypatch):
    # A SQLite error half-way through the batch (disk full on the third insert).
    conn = store._conn
    calls = {"n": 0}

    class _DiskFull:
        def execute(self, sql, *args):
            if sql.startswith("INSERT INTO journal"):
                calls["n"] += 1
                if calls["n"] == 3:
                    raise sqlite3.OperationalError("database or disk is full")
            return conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(conn, name)

    monkeypatch.setattr(store, "_conn", _DiskFull())
    with pytest.raises(StoreWriteError, match="disk is full"):
        store.write([WriteItem(record(i)) for i in range(5)])
    monkeypatch.setattr(store, "_conn", conn)
    assert store.last_entry() is None


def test_write_rejects_non_items(store):
    with pytest.raises(CoreValueError) as info:
        store.write([WriteItem(record(1)), JournalRecord("note", T0, "{}")])
    assert info.value.field == "items[1]"
    assert store.write([]) == []


def test_restarted_copy_holds_only_what_was_committed_under_the_next_incarnation(
    store, db, monkeypatch
):
    # The chaos runner's kill -9: what the store committed survives, the write in flight
    # when the process died does not, and the restarted process is the next incarnation.
    store.write([sending_item(1, "i-1"), fill_item(2, "t-1")])
    store.write([WriteItem(None, (SetCursor("user_trades_from_id:BTCUSDT", "1001"),))])
    committed = list(store.entries())
    conn = store._conn

    class _DiesAtCommit:
        def execute(self, sql, *args):
            if sql == "COMMIT":
                raise sqlite3.OperationalError("killed")
            return conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(conn, name)

    monkeypatch.setattr(store, "_conn", _DiesAtCommit())
    with pytest.raises(StoreWriteError):
        store.write([sending_item(3, "i-2"), fill_item(4, "t-2")])
    monkeypatch.setattr(store, "_conn", conn)

    copy = store.restarted_copy()
    try:
        assert (copy.path, copy.mode, copy.failed) == (MEMORY, OpenMode.TRADING, None)
        assert copy.incarnation == store.incarnation + 1
        assert list(copy.entries()) == committed
        assert copy.ledger_row(coid("i-1")) == store.ledger_row(coid("i-1"))
        assert copy.ledger_row(coid("i-2")) is None
        assert copy.has_fill(BTC, "t-1")
        assert not copy.has_fill(BTC, "t-2")
        assert copy.cursor("user_trades_from_id:BTCUSDT") == "1001"
        assert copy.verify().ok
        # The restarted process writes on, continuing the chain; the dead one is untouched.
        (outcome,) = copy.write([sending_item(5, "i-3")])
        written = entry_of(outcome)
        assert (written.seq, written.prev_hash) == (3, committed[-1].hash)
        assert [e.seq for e in store.entries()] == [1, 2]
        # A second death and restart: the incarnation counts on from the copy.
        again = copy.restarted_copy()
        assert again.incarnation == store.incarnation + 2
        assert [e.seq for e in again.entries()] == [1, 2, 3]
        again.close()
    finally:
        copy.close()

    with Store.open(MEMORY) as fresh:
        fresh.close()
        with pytest.raises(StoreError, match="closed"):
            fresh.restarted_copy()
    store.close()
    with (
        Store.open(db, mode=OpenMode.READ_ONLY) as ro,
        pytest.raises(StoreError, match="not opened for trading"),
    ):
        ro.restarted_copy()
