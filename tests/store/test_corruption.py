"""Damage to the store file is detected on open, never traded on, and readable for forensics."""

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.store import (
    JournalEntry,
    OpenMode,
    Store,
    StoreCorrupt,
    StoreError,
    WriteItem,
    chain_hash,
)
from tests.store.storekit import (
    canonical,
    copy_store_files,
    entry_of,
    file_size,
    fill_item,
    flip_in_file,
    record,
    sending_item,
    wal_frames,
)


def _write_five(db: Path) -> list[JournalEntry]:
    """Five entries with recognisable payloads; closed, so the WAL is checkpointed."""
    with Store.open(db) as s:
        entries = [
            entry_of(o)
            for o in s.write([WriteItem(record(i, note=f"MARKER-{i:04d}")) for i in (1, 2)])
        ]
        entries += [
            entry_of(o)
            for o in s.write([WriteItem(record(i, note=f"MARKER-{i:04d}")) for i in (3, 4, 5)])
        ]
    assert file_size(Path(f"{db}-wal")) == 0, "close must checkpoint the WAL into the file"
    return entries


def _raw(db: Path, *statements: str) -> None:
    """Edit the file behind the store's back, as an operator in a sqlite3 shell could."""
    conn = sqlite3.connect(db)
    try:
        for sql in statements:
            conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


def _assert_lock_released(db: Path) -> None:
    # A refused open must not leave the ledger locked: the next attempt fails the same way.
    with pytest.raises(StoreCorrupt):
        Store.open(db)


# --------------------------------------------------------------------------- a flipped byte


def test_a_flipped_byte_in_a_payload_is_detected_and_named(tmp_path):
    db = tmp_path / "ledger.db"
    entries = _write_five(db)
    flip_in_file(db, b"MARKER-0003", b"NARKER-0003")

    with pytest.raises(StoreCorrupt) as info:
        Store.open(db)
    err = info.value
    assert err.seq == 3
    assert "seq 3" in str(err)
    stored = entries[2].hash
    damaged = canonical({"n": 3, "note": "NARKER-0003"})
    recomputed = chain_hash(entries[2].prev_hash, 3, entries[2].wall_ms, "note", "", "", damaged)
    assert stored in str(err)
    assert recomputed in str(err)
    assert "refusing to trade" in str(err)
    _assert_lock_released(db)

    # Forensics: read-only still reads every entry, and verify reports instead of raising.
    with Store.open(db, mode=OpenMode.READ_ONLY) as ro:
        got = list(ro.entries())
        assert [e.seq for e in got] == [1, 2, 3, 4, 5]
        assert got[2].payload == damaged
        assert got[:2] == entries[:2]
        assert got[3:] == entries[3:]
        report = ro.verify()
        assert not report.ok
        assert report.entries == 5
        assert len(report.problems) == 1
        assert report.problems[0].startswith("seq 3:")
        assert stored in report.problems[0]


def test_a_byte_flipped_into_invalid_utf8_is_still_readable_and_detected(tmp_path):
    db = tmp_path / "ledger.db"
    _write_five(db)
    flip_in_file(db, b"MARKER-0004", b"MARKER-\xff004")
    with pytest.raises(StoreCorrupt, match="seq 4"):
        Store.open(db)
    with Store.open(db, mode=OpenMode.READ_ONLY) as ro:
        payload = list(ro.entries())[3].payload
        assert payload.encode("utf-8", "surrogateescape").count(b"\xff") == 1
        assert not ro.verify().ok


# --------------------------------------------------------------------------- edits in SQL


def test_sql_edits_are_refused_by_the_append_only_guard(tmp_path):
    db = tmp_path / "ledger.db"
    _write_five(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        _raw(db, "UPDATE journal SET payload = '{}' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        _raw(db, "DELETE FROM journal WHERE seq = 2")
    with Store.open(db) as s:
        assert s.verify().ok


def test_an_edited_payload_breaks_the_chain_at_its_seq(tmp_path):
    db = tmp_path / "ledger.db"
    entries = _write_five(db)
    _raw(
        db,
        "DROP TRIGGER journal_append_only_update",
        """UPDATE journal SET payload = '{"n":2,"note":"edited"}' WHERE seq = 2""",
    )
    with pytest.raises(StoreCorrupt) as info:
        Store.open(db)
    assert info.value.seq == 2
    assert "seq 2: stored hash is " + entries[1].hash in str(info.value)
    _assert_lock_released(db)


def test_an_edit_that_fixes_its_own_hash_breaks_the_next_link(tmp_path):
    db = tmp_path / "ledger.db"
    entries = _write_five(db)
    e2 = entries[1]
    forged_payload = canonical({"n": 2, "note": "forged"})
    forged = chain_hash(e2.prev_hash, 2, e2.wall_ms, e2.type, "", "", forged_payload)
    _raw(
        db,
        "DROP TRIGGER journal_append_only_update",
        f"UPDATE journal SET payload = '{forged_payload}', hash = '{forged}' WHERE seq = 2",
    )
    with pytest.raises(StoreCorrupt) as info:
        Store.open(db)
    assert info.value.seq == 3
    assert f"seq 3: prev_hash is {e2.hash} but the entry before it hashes to {forged}" in str(
        info.value
    )


def test_a_deleted_middle_entry_is_named(tmp_path):
    db = tmp_path / "ledger.db"
    _write_five(db)
    _raw(db, "DROP TRIGGER journal_append_only_delete", "DELETE FROM journal WHERE seq = 3")
    with pytest.raises(StoreCorrupt) as info:
        Store.open(db)
    assert info.value.seq == 3
    assert "seq 3 missing" in str(info.value)
    with Store.open(db, mode=OpenMode.READ_ONLY) as ro:
        assert [e.seq for e in ro.entries()] == [1, 2, 4, 5]
        assert any("seq 3 missing" in p for p in ro.verify().problems)


def test_deleted_entries_at_the_end_are_caught_by_the_head(tmp_path):
    # The chain alone cannot see a shortened tail; the head written with every commit can.
    db = tmp_path / "ledger.db"
    entries = _write_five(db)
    _raw(db, "DROP TRIGGER journal_append_only_delete", "DELETE FROM journal WHERE seq >= 4")
    with pytest.raises(StoreCorrupt) as info:
        Store.open(db)
    assert "journal ends at seq 3" in str(info.value)
    assert "head says seq 5" in str(info.value)
    assert entries[4].hash in str(info.value)


def test_a_restored_guard_after_a_clean_check(tmp_path):
    # Dropping a trigger without touching data is not corruption; trading restores it.
    db = tmp_path / "ledger.db"
    _write_five(db)
    _raw(db, "DROP TRIGGER journal_append_only_update")
    with Store.open(db):
        pass
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        _raw(db, "UPDATE journal SET payload = '{}' WHERE seq = 1")


# --------------------------------------------------------------------------- a truncated file


def _bigger_store(db: Path) -> None:
    with Store.open(db) as s:
        for b in range(20):
            s.write(
                [WriteItem(record(n, note="x" * 400)) for n in range(b * 10, b * 10 + 10)]
                + [fill_item(10_000 + b, f"t-{b}")]
            )


def test_a_truncated_database_file_is_corrupt_not_a_crash(tmp_path):
    db = tmp_path / "ledger.db"
    _bigger_store(db)
    size = db.stat().st_size
    assert size > 20 * 4096
    os.truncate(db, size // 2)
    with pytest.raises(StoreCorrupt) as info:
        Store.open(db)
    assert str(db) in str(info.value)
    _assert_lock_released(db)
    # Read-only gets as far as SQLite can; damage surfaces as StoreCorrupt or in verify().
    try:
        with Store.open(db, mode=OpenMode.READ_ONLY) as ro:
            assert not ro.verify().ok
            with contextlib.suppress(StoreCorrupt):
                list(ro.entries())
    except StoreCorrupt:
        pass


class _Snapshot:
    """File contents captured once per module (a short repr keeps hypothesis reports small)."""

    def __init__(self, **parts):
        self.__dict__.update(parts)

    def __repr__(self):
        return "<snapshot>"


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    db = tmp_path_factory.mktemp("big") / "ledger.db"
    _bigger_store(db)
    return _Snapshot(data=db.read_bytes())


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_truncation_of_the_database_file_is_refused(big_store, data):
    cut = data.draw(
        st.integers(0, 200) | st.integers(0, len(big_store.data) - 1), label="truncate to"
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.db"
        db.write_bytes(big_store.data[:cut])
        with pytest.raises(StoreCorrupt):
            Store.open(db)
        assert db.read_bytes() == big_store.data[:cut], "a refused open leaves the file as found"


def test_an_empty_database_file_is_damage_not_a_fresh_start(tmp_path):
    db = tmp_path / "ledger.db"
    _write_five(db)
    os.truncate(db, 0)
    with pytest.raises(StoreCorrupt, match="empty"):
        Store.open(db)
    assert db.stat().st_size == 0  # left as found, for the operator


def test_a_wal_without_its_database_is_damage(tmp_path):
    db = tmp_path / "ledger.db"
    s = Store.open(db)
    s.write([WriteItem(record(1))])
    copy = copy_store_files(db, tmp_path / "copy")
    s.close()
    copy.unlink()
    with pytest.raises(StoreCorrupt, match="WAL"):
        Store.open(copy)
    assert not copy.exists()


def test_garbage_is_not_a_database(tmp_path):
    db = tmp_path / "ledger.db"
    db.write_bytes(b"this is not sqlite " * 300)
    with pytest.raises(StoreCorrupt):
        Store.open(db)
    with pytest.raises(StoreCorrupt):
        Store.open(db, mode=OpenMode.READ_ONLY)


# --------------------------------------------------------------------------- torn WAL tails


def _crash_snapshot(db: Path, dst: Path, batches: int) -> tuple[Path, list[list[JournalEntry]]]:
    """Commit ``batches`` batches, then copy db + WAL while the store is still open."""
    s = Store.open(db)
    committed: list[list[JournalEntry]] = []
    for b in range(batches):
        items = [sending_item(b * 10 + k, f"i-{b}-{k}") for k in range(3)] + [
            fill_item(b * 10 + 5, f"t-{b}")
        ]
        committed.append([entry_of(o) for o in s.write(items)])
    copy = copy_store_files(db, dst)
    s.close()
    return copy, committed


def test_a_torn_last_transaction_is_discarded_silently(tmp_path):
    copy, committed = _crash_snapshot(tmp_path / "live" / "ledger.db", tmp_path / "crash", 6)
    wal = Path(f"{copy}-wal")
    page_size, frames = wal_frames(wal)
    assert frames > 6
    # Cut inside the last frame: the last batch's commit frame is torn.
    os.truncate(wal, 32 + (frames - 1) * (24 + page_size) + 100)
    with Store.open(copy) as s:
        got = list(s.entries())
        assert got == [e for batch in committed[:-1] for e in batch]
        assert s.verify().ok
        # The store carries on from the last durable entry with an unbroken chain.
        nxt = entry_of(s.write([WriteItem(record(99))])[0])
        assert nxt.seq == got[-1].seq + 1
        assert nxt.prev_hash == got[-1].hash


@pytest.fixture(scope="module")
def crash_snapshot(tmp_path_factory):
    base = tmp_path_factory.mktemp("torn")
    copy, committed = _crash_snapshot(base / "live" / "ledger.db", base / "crash", 5)
    return _Snapshot(
        db=copy.read_bytes(), wal=Path(f"{copy}-wal").read_bytes(), committed=committed
    )


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_torn_wal_tail_leaves_a_prefix_of_whole_batches(crash_snapshot, data):
    db_bytes, wal_bytes, committed = crash_snapshot.db, crash_snapshot.wal, crash_snapshot.committed
    cut = data.draw(st.integers(0, len(wal_bytes)), label="cut")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.db"
        db.write_bytes(db_bytes)
        Path(f"{db}-wal").write_bytes(wal_bytes[:cut])
        with Store.open(db) as s:
            got = list(s.entries())
            assert s.verify().ok
    prefixes = [[e for batch in committed[:k] for e in batch] for k in range(len(committed) + 1)]
    assert got in prefixes, "a torn tail may only lose whole batches, newest first"
    if cut == len(wal_bytes):
        assert got == prefixes[-1]


def test_read_only_on_a_store_with_a_wal_sees_committed_entries(tmp_path):
    db = tmp_path / "ledger.db"
    with Store.open(db) as s:
        written = [entry_of(o) for o in s.write([WriteItem(record(i)) for i in range(3)])]
        with Store.open(db, mode=OpenMode.READ_ONLY) as ro:
            assert list(ro.entries()) == written
            more = entry_of(s.write([WriteItem(record(3))])[0])
            assert ro.last_entry() == more  # a live reader follows the writer
            assert ro.verify().ok


def test_read_errors_are_store_errors_not_sqlite_errors(tmp_path):
    db = tmp_path / "ledger.db"
    _bigger_store(db)
    with Store.open(db, mode=OpenMode.READ_ONLY) as ro:
        os.truncate(db, 8192)
        with pytest.raises(StoreError):
            list(ro.entries())
