"""The durable store: a hash-chained journal and the write-ahead intent ledger in SQLite.

Theory of operation
-------------------

One SQLite file holds everything that must survive a crash: the append-only **journal**
(every fact, in order, hash-chained; I5), the **intent ledger** (one row per client order
id, written before the order is sent; I7), the **fills** keyed by ``(symbol, trade_id)``
(each venue fill journaled exactly once; I10), named **cursors** (where to resume stream
backfill) and **purge counters**. :class:`Store` is synchronous and owns one connection;
:mod:`scalper.store.writer` puts it behind an async group-commit writer.

**Durability.** Files use WAL mode with ``synchronous=FULL``: every commit fsyncs the WAL
before :meth:`Store.write` returns. A record is durable when ``write()`` has returned (for
the async writer: when its waiter has been woken), and not before. :meth:`Store.write`
applies a whole batch in ONE transaction with ONE commit (group commit: one fsync makes
every item of the batch durable). Each item is all-or-nothing. On any SQLite or OS error
the transaction is rolled back and :class:`~scalper.store.errors.StoreWriteError` is raised;
from then on the store refuses every write. A failed commit is never retried: after a
failed fsync the kernel may have dropped the dirty pages, so a retry that "succeeds" can
lie. The process halts, and the next incarnation recovers from what is durable.

**Torn tails.** A crash or power cut in the middle of a commit can leave a partial last
transaction at the end of the ``-wal`` file. SQLite checksums every WAL frame (cumulatively,
salted per WAL generation) and only a valid *commit* frame makes a transaction visible, so
on the next open the torn tail is discarded as if that transaction had never started: the
store reopens at the last complete commit, the chain still verifies, and no error is
raised. Because a record is durable only once ``write()`` has returned, a torn tail can only
lose records nobody was told were durable: no caller acted on them (the Router never sent
an order whose SENDING row was in the torn batch).

**Opening for trading** (:attr:`OpenMode.TRADING`):

1. Take an exclusive, non-blocking ``fcntl.flock`` on ``<path>.lock`` and write our pid in
   it. A second process (or a second Store in this process) gets
   :class:`~scalper.store.errors.LedgerLocked`: two writers would each believe they own
   every intent. The lock file is never deleted (deleting lock files races); the lock dies
   with the process, so a crash never leaves it held. Keep the store on a local file
   system: ``flock`` is not reliable over NFS.
2. A new store is built under ``<path>.init`` and renamed into place, so ``<path>`` is
   either absent or a complete store. An existing file of 0 bytes, or a ``-wal`` file
   without its database, is therefore damage, not a fresh start, and is refused.
3. Run ``PRAGMA integrity_check`` and re-walk the whole hash chain (seq contiguous from 1,
   each ``prev_hash`` equal to the previous hash, each hash recomputed, the last entry equal
   to the head recorded in the same transactions). Any failure raises
   :class:`~scalper.store.errors.StoreCorrupt` naming the seq and the expected and found
   hashes, and releases the lock: we refuse to trade on a ledger we cannot trust.
4. Increment and persist the **incarnation** number (:attr:`Store.incarnation`), which
   fences this process's records from an earlier one's.

Opening cost grows with the file (both checks read everything); that is the price of never
trading on a damaged ledger.

**Read-only** (:attr:`OpenMode.READ_ONLY`) is for forensics and live inspection: no lock,
no incarnation bump, SQLite opened with ``mode=ro`` and ``query_only``. It opens a damaged
file as far as SQLite can read it; :meth:`Store.verify` then *reports* the problems instead
of raising. Writes raise :class:`~scalper.store.errors.StoreReadOnly`. (SQLite may create
the ``-wal``/``-shm`` side files; it never writes the database file.)

**In-memory** (``":memory:"``) is for simulated time: no files, no lock, no threads.

**What the store enforces in the ledger.** Beyond the row format, three rules make the
ledger trustworthy as a record: an order's identity (intent, generation, symbol, spec,
risk_increasing) never changes once written; a *new* live risk-increasing row is refused
while another live risk-increasing row of the same intent exists (I7: a new generation
needs the previous one proven absent or terminal first); and a fill key is stored once
(I10). A refused item is reported in its :class:`~scalper.store.records.WriteOutcome`
(``conflict`` or ``duplicate``) and skipped whole; the rest of the batch commits. The
order state machine itself (which state may follow which) belongs to the Router and
``scalper/core/orders.py``: the store records evidence, it does not second-guess it.

**Append-only.** Journal and fill rows are never updated or deleted: triggers refuse it
(an accident in a ``sqlite3`` shell fails loudly) and the hash chain detects what a
determined editor does anyway. Only terminal ledger rows are purged, after a TTL
(:meth:`Store.purge_terminal`).

**Threads.** Every public method takes an internal lock, so a read from the event loop
never sees the inside of a write running on the writer thread; :meth:`Store.entries` reads
in chunks and holds nothing between them.
"""

import contextlib
import enum
import fcntl
import functools
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import attrs

from scalper.core.errors_base import CoreValueError
from scalper.store.errors import (
    LedgerLocked,
    StoreCorrupt,
    StoreError,
    StoreReadOnly,
    StoreWriteError,
)
from scalper.store.records import (
    GENESIS_HASH,
    TERMINAL_STATES,
    InsertFill,
    JournalEntry,
    LedgerOp,
    LedgerRow,
    LedgerState,
    PurgeResult,
    SetCursor,
    UpsertLedger,
    VerifyReport,
    WriteItem,
    WriteOutcome,
    chain_hash,
)

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_TERMINAL_TTL_MS",
    "MEMORY",
    "SCHEMA_VERSION",
    "OpenMode",
    "Store",
    "StoreConfig",
]

#: The path that opens an in-memory store.
MEMORY: Final = ":memory:"
#: Written into the SQLite header (``PRAGMA application_id``): "SCLP".
APPLICATION_ID: Final = 0x53434C50
#: The layout this code reads and writes.
SCHEMA_VERSION: Final = 1
#: How long a terminal ledger row is kept after its last update: 48 hours.
DEFAULT_TERMINAL_TTL_MS: Final = 48 * 3600 * 1000

# STRICT tables (column types enforced by SQLite itself) arrived in 3.37.
_MIN_SQLITE: Final = (3, 37, 0)
_INT64_MAX: Final = 2**63 - 1
# SQLite primary result codes that mean "the file is damaged", not "the operation failed".
_SQLITE_CORRUPT: Final = 11
_SQLITE_NOTADB: Final = 26

_LIVE: Final = tuple(s.value for s in LedgerState if not s.is_terminal)
_TERMINAL: Final = tuple(s.value for s in LedgerState if s.is_terminal)
_ALL_STATES_SQL: Final = ", ".join(f"'{s.value}'" for s in LedgerState)

_TABLES: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT",
    """CREATE TABLE journal (
        seq INTEGER PRIMARY KEY CHECK (seq >= 1),
        wall_ms INTEGER NOT NULL,
        type TEXT NOT NULL,
        intent_id TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    ) STRICT""",
    f"""CREATE TABLE ledger (
        client_order_id TEXT PRIMARY KEY,
        intent_id TEXT NOT NULL,
        generation INTEGER NOT NULL,
        symbol TEXT NOT NULL,
        spec TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ({_ALL_STATES_SQL})),
        risk_increasing INTEGER NOT NULL CHECK (risk_increasing IN (0, 1)),
        created_wall_ms INTEGER NOT NULL,
        updated_wall_ms INTEGER NOT NULL,
        recv_window_ms INTEGER NOT NULL,
        sent_wall_ms INTEGER,
        venue_order_id TEXT,
        incarnation INTEGER NOT NULL,
        reason TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX ledger_by_intent ON ledger (intent_id, generation)",
    "CREATE INDEX ledger_by_state ON ledger (state, updated_wall_ms)",
    """CREATE TABLE fills (
        symbol TEXT NOT NULL,
        trade_id TEXT NOT NULL,
        client_order_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        journal_seq INTEGER,
        PRIMARY KEY (symbol, trade_id)
    ) STRICT, WITHOUT ROWID""",
    "CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT",
    "CREATE TABLE purge_counters (state TEXT PRIMARY KEY, purged INTEGER NOT NULL) STRICT",
)

# Guard rails against accidents; the hash chain is what detects deliberate edits.
_TRIGGERS: Final = tuple(
    f"""CREATE TRIGGER IF NOT EXISTS {table}_append_only_{verb.lower()}
        BEFORE {verb} ON {table}
        BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows cannot be {done}'); END"""
    for table in ("journal", "fills")
    for verb, done in (("UPDATE", "changed"), ("DELETE", "deleted"))
)

# Every statement is a literal: values are always bound, and state lists are bound as JSON
# arrays (json_each), so no SQL text is ever assembled at run time.
_SQL_INSERT_ENTRY: Final = (
    "INSERT INTO journal (seq, wall_ms, type, intent_id, correlation_id, payload, prev_hash, "
    "hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_WALK: Final = (
    "SELECT seq, wall_ms, type, intent_id, correlation_id, payload, prev_hash, hash "
    "FROM journal ORDER BY seq"
)
_SQL_ENTRIES: Final = (
    "SELECT seq, wall_ms, type, intent_id, correlation_id, payload, prev_hash, hash "
    "FROM journal WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?"
)
_SQL_LAST_ENTRY: Final = (
    "SELECT seq, wall_ms, type, intent_id, correlation_id, payload, prev_hash, hash "
    "FROM journal ORDER BY seq DESC LIMIT 1"
)
_SQL_LEDGER_IDENTITY: Final = (
    "SELECT intent_id, generation, symbol, spec, risk_increasing FROM ledger "
    "WHERE client_order_id = ?"
)
_SQL_LEDGER_INSERT: Final = (
    "INSERT INTO ledger (client_order_id, intent_id, generation, symbol, spec, state, "
    "risk_increasing, created_wall_ms, updated_wall_ms, recv_window_ms, sent_wall_ms, "
    "venue_order_id, incarnation, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_LEDGER_UPDATE: Final = (
    "UPDATE ledger SET state = ?, created_wall_ms = ?, "
    "updated_wall_ms = ?, recv_window_ms = ?, sent_wall_ms = ?, venue_order_id = ?, "
    "incarnation = ?, reason = ? WHERE client_order_id = ?"
)
_SQL_LEDGER_STATE: Final = "SELECT state, risk_increasing FROM ledger WHERE client_order_id = ?"
_SQL_OTHER_LIVE_RISK: Final = (
    "SELECT client_order_id, state FROM ledger WHERE intent_id = ? AND risk_increasing = 1 "
    "AND state IN (SELECT value FROM json_each(?)) AND client_order_id <> ? "
    "ORDER BY generation, client_order_id LIMIT 1"
)
_SQL_LEDGER_ROW: Final = (
    "SELECT client_order_id, intent_id, generation, symbol, spec, state, risk_increasing, "
    "created_wall_ms, updated_wall_ms, recv_window_ms, sent_wall_ms, venue_order_id, "
    "incarnation, reason FROM ledger "
    "WHERE client_order_id = ?"
)
_SQL_LEDGER_FOR_INTENT: Final = (
    "SELECT client_order_id, intent_id, generation, symbol, spec, state, risk_increasing, "
    "created_wall_ms, updated_wall_ms, recv_window_ms, sent_wall_ms, venue_order_id, "
    "incarnation, reason FROM ledger "
    "WHERE intent_id = ? ORDER BY generation, client_order_id"
)
_SQL_LEDGER_IN_STATES: Final = (
    "SELECT client_order_id, intent_id, generation, symbol, spec, state, risk_increasing, "
    "created_wall_ms, updated_wall_ms, recv_window_ms, sent_wall_ms, venue_order_id, "
    "incarnation, reason FROM ledger "
    "WHERE state IN (SELECT value FROM json_each(?)) ORDER BY created_wall_ms, client_order_id"
)
_SQL_PURGE_COUNT: Final = (
    "SELECT state, COUNT(*) FROM ledger WHERE state IN (SELECT value FROM json_each(?)) "
    "AND updated_wall_ms < ? GROUP BY state"
)
_SQL_PURGE_DELETE: Final = (
    "DELETE FROM ledger WHERE state IN (SELECT value FROM json_each(?)) AND updated_wall_ms < ?"
)
_LIVE_JSON: Final = json.dumps(list(_LIVE))
_TERMINAL_JSON: Final = json.dumps(list(_TERMINAL))
_LEDGER_IDENTITY: Final = ("intent_id", "generation", "symbol", "spec", "risk_increasing")

# Text is decoded leniently so a damaged file can still be read: the undecodable bytes
# survive as surrogate escapes, and the chain hash is recomputed over exactly those bytes.
_decode_text = functools.partial(str, encoding="utf-8", errors="surrogateescape")


class OpenMode(enum.StrEnum):
    """How a store is opened."""

    #: The one writer: lock, full verification, incarnation bump.
    TRADING = "trading"
    #: Forensics and inspection: no lock, no writes, damage reported instead of raised.
    READ_ONLY = "read_only"


def _v_min(minimum: int) -> Callable[[object, "attrs.Attribute[int]", Any], None]:
    def check(_inst: object, attribute: "attrs.Attribute[int]", value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise CoreValueError(attribute.name, f"must be an integer >= {minimum}, got {value!r}")

    return check


@attrs.frozen
class StoreConfig:
    """Store settings.

    Attributes:
        busy_timeout_ms: how long SQLite waits on a lock held by a reader's checkpoint.
        read_chunk: journal rows fetched per lock hold by :meth:`Store.entries`.
        max_problems: problems listed by :meth:`Store.verify` before it stops listing.
    """

    busy_timeout_ms: int = attrs.field(default=5000, validator=_v_min(0))
    read_chunk: int = attrs.field(default=512, validator=_v_min(1))
    max_problems: int = attrs.field(default=50, validator=_v_min(1))


# --------------------------------------------------------------------------- helpers


def _require_int(field: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CoreValueError(field, f"must be an integer >= {minimum}, got {value!r}")
    return value


def _is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _uri(path: str, mode: str) -> str:
    return f"{Path(path).as_uri()}?mode={mode}"


def _connect(target: str, *, uri: bool, check_same_thread: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        target, uri=uri, isolation_level=None, check_same_thread=check_same_thread
    )
    conn.text_factory = _decode_text
    return conn


def _configure(conn: sqlite3.Connection, config: StoreConfig, *, mode: OpenMode, wal: bool) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout_ms)}")
    conn.execute("PRAGMA cell_size_check = ON")
    if mode is OpenMode.READ_ONLY:
        conn.execute("PRAGMA query_only = ON")
        return
    if wal:
        journal_mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(journal_mode).lower() != "wal":
            raise StoreError(f"SQLite refused WAL mode (journal_mode is {journal_mode!r})")
    conn.execute("PRAGMA synchronous = FULL")
    if conn.execute("PRAGMA synchronous").fetchone()[0] != 2:
        raise StoreError("SQLite refused synchronous=FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for ddl in (*_TABLES, *_TRIGGERS):
            conn.execute(ddl)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("schema_version", str(SCHEMA_VERSION)),
                ("incarnation", "0"),
                ("head_seq", "0"),
                ("head_hash", GENESIS_HASH),
            ],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _fsync_path(path: str, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_if_exists(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _create_file(path: str, config: StoreConfig) -> None:
    """Build a new store at ``path`` atomically: initialise ``<path>.init``, then rename."""
    tmp = path + ".init"
    # We hold the lock, so a leftover .init is a crashed initialisation of ours.
    for suffix in ("", "-wal", "-shm", "-journal"):
        _remove_if_exists(tmp + suffix)
    conn = _connect(_uri(tmp, "rwc"), uri=True, check_same_thread=True)
    try:
        _configure(conn, config, mode=OpenMode.TRADING, wal=True)
        _create_schema(conn)
    finally:
        conn.close()  # checkpoints the WAL into the file and removes it
    wal = tmp + "-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        raise StoreError(f"initialising {tmp}: its WAL was not checkpointed on close")
    _remove_if_exists(wal)
    _remove_if_exists(tmp + "-shm")
    _fsync_path(tmp)
    os.replace(tmp, path)
    _fsync_path(os.path.dirname(path), directory=True)


_SQLITE_HEADER_BYTES = 100


def _check_identity(conn: sqlite3.Connection, path: str) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id == 0 and conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0:
        # SQLite reads a file shorter than its header as an empty database. A store is
        # never created in place, so an empty database at our path is a damaged store.
        raise StoreCorrupt(
            path,
            (
                f"the file ({os.path.getsize(path)} bytes) holds no database at all: "
                f"truncated? Move it away to start fresh",
            ),
        )
    size = os.path.getsize(path)
    if app_id != APPLICATION_ID and size < _SQLITE_HEADER_BYTES:
        # A cut inside the 100-byte header leaves a partial application id: that is a
        # damaged store, not somebody else's database.
        raise StoreCorrupt(
            path, (f"the file ({size} bytes) is shorter than a database header: truncated?",)
        )
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"{path} is not a scalper store (application_id {app_id:#x}, expected "
            f"{APPLICATION_ID:#x}); refusing to use a foreign database"
        )
    version = _meta(conn, "schema_version")
    if version is None:
        raise StoreCorrupt(path, ("the meta table has no schema_version",))
    if version != str(SCHEMA_VERSION):
        raise StoreError(
            f"{path} has schema version {version}; this scalper reads version "
            f"{SCHEMA_VERSION} only (was it written by a newer release?)"
        )


def _read_int_meta(conn: sqlite3.Connection, path: str, key: str) -> int:
    raw = _meta(conn, key)
    try:
        return int(raw or "")  # None and "" both fail below
    except ValueError:
        raise StoreCorrupt(path, (f"meta {key} is {raw!r}, not an integer",)) from None


_EXPECTED_TYPES: Final = (
    ("seq", int),
    ("wall_ms", int),
    ("type", str),
    ("intent_id", str),
    ("correlation_id", str),
    ("payload", str),
    ("prev_hash", str),
    ("hash", str),
)


def _column_problem(row: Sequence[object]) -> str:
    for (name, kind), value in zip(_EXPECTED_TYPES, row, strict=True):
        if type(value) is not kind:
            return (
                f"seq {row[0]}: column {name} holds {type(value).__name__}, "
                f"expected {kind.__name__}"
            )
    return ""


def _entry_from_row(row: Any, path: str) -> JournalEntry:
    problem = _column_problem(row)
    if problem:
        raise StoreCorrupt(path, (problem,), seq=row[0] if isinstance(row[0], int) else None)
    seq, wall_ms, rtype, intent_id, correlation_id, payload, prev_hash, hash_ = row
    return JournalEntry(
        seq=seq,
        wall_ms=wall_ms,
        type=rtype,
        intent_id=intent_id,
        correlation_id=correlation_id,
        payload=payload,
        prev_hash=prev_hash,
        hash=hash_,
    )


def _ledger_from_row(row: Any, path: str) -> LedgerRow:
    risk = row[6]
    try:
        if type(risk) is not int or risk not in (0, 1):
            raise CoreValueError("risk_increasing", f"stored as {risk!r}, not 0 or 1")
        return LedgerRow(
            client_order_id=row[0],
            intent_id=row[1],
            generation=row[2],
            symbol=row[3],
            spec=row[4],
            state=row[5],
            risk_increasing=bool(risk),
            created_wall_ms=row[7],
            updated_wall_ms=row[8],
            recv_window_ms=row[9],
            sent_wall_ms=row[10],
            venue_order_id=row[11],
            incarnation=row[12],
            reason=row[13],
        )
    except CoreValueError as exc:
        raise StoreCorrupt(
            path, (f"ledger row {row[0]!r}: {exc}",), action="cannot read it"
        ) from None


@attrs.frozen
class _CheckResult:
    entries: int
    problems: tuple[str, ...]
    first_seq: int | None
    head: tuple[int, str]


class _Problems:
    """Collects problems up to a limit; remembers the first seq named."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines: list[str] = []
        self.dropped = 0
        self.first_seq: int | None = None

    def add(self, line: str, seq: int | None = None) -> None:
        if self.first_seq is None and seq is not None:
            self.first_seq = seq
        if len(self.lines) < self.limit:
            self.lines.append(line)
        else:
            self.dropped += 1

    def result(self) -> tuple[str, ...]:
        if self.dropped:
            return (*self.lines, f"... and {self.dropped} more problem(s) not listed")
        return tuple(self.lines)


def _check(conn: sqlite3.Connection, limit: int) -> _CheckResult:
    """Run integrity_check and walk the chain in one read transaction.

    Damage is reported as problems; other SQLite errors (I/O, busy) propagate.
    """
    found = _Problems(limit)
    count = 0
    prev = GENESIS_HASH
    last_seq = 0
    conn.execute("BEGIN")
    try:
        try:
            for (line,) in conn.execute(f"PRAGMA integrity_check({limit})"):
                if line != "ok":
                    found.add(f"sqlite integrity_check: {line}")
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            found.add(f"sqlite could not run integrity_check: {exc}")
        try:
            for row in conn.execute(_SQL_WALK):
                seq = row[0]
                expected = last_seq + 1
                if seq > expected:
                    gap = f"seq {expected}" if seq == expected + 1 else f"seq {expected}..{seq - 1}"
                    found.add(
                        f"{gap} missing: the journal jumps from seq {last_seq} to seq {seq} "
                        f"(entries were deleted)",
                        expected,
                    )
                elif seq < expected:
                    found.add(f"seq {seq}: out of order after seq {last_seq}", seq)
                last_seq = seq
                count += 1
                problem = _column_problem(row)
                if problem:
                    found.add(problem, seq)
                    prev = row[7] if isinstance(row[7], str) else prev
                    continue
                entry = _entry_from_row(row, "")
                if entry.prev_hash != prev:
                    found.add(
                        f"seq {seq}: prev_hash is {entry.prev_hash} but the entry before it "
                        f"hashes to {prev}",
                        seq,
                    )
                computed = entry.computed_hash()
                if computed != entry.hash:
                    found.add(
                        f"seq {seq}: stored hash is {entry.hash} but the entry's contents hash "
                        f"to {computed} (the entry was altered after it was written)",
                        seq,
                    )
                prev = entry.hash
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            found.add(f"journal unreadable after seq {last_seq}: {exc}", last_seq + 1)
        try:
            head_seq, head_hash = _meta(conn, "head_seq"), _meta(conn, "head_hash")
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise
            found.add(f"the meta table is unreadable: {exc}")
        else:
            if head_seq != str(last_seq) or head_hash != prev:
                found.add(
                    f"journal ends at seq {last_seq} (hash {prev}) but the store's head says "
                    f"seq {head_seq} (hash {head_hash}): entries at the end were deleted, or "
                    f"the head was altered",
                    last_seq + 1,
                )
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")
    return _CheckResult(count, found.result(), found.first_seq, (last_seq, prev))


# --------------------------------------------------------------------------- the lock


def _read_holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        return int(text) if text else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _acquire_lock(lock_path: str) -> int:
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open the ledger lock file {lock_path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise LedgerLocked(lock_path, holder) from None
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"cannot lock {lock_path}: {exc}") from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError:
        pass  # the pid is a courtesy for the operator; the flock is what excludes
    return fd


def _release_lock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the store


class Store:
    """The journal, intent ledger, fills and cursors in one SQLite database.

    Synchronous, one connection, one writer. Build it with :meth:`Store.open`; close it with
    :meth:`close` or use it as a context manager.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        path: str,
        mode: OpenMode,
        lock_fd: int | None,
        config: StoreConfig,
        incarnation: int,
        head: tuple[int, str],
    ) -> None:
        self._conn = conn
        self._path = path
        self._mode = mode
        self._lock_fd = lock_fd
        self._config = config
        self._incarnation = incarnation
        self._head = head
        self._mutex = threading.Lock()
        self._closed = False
        self._failed: StoreWriteError | None = None

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        mode: OpenMode = OpenMode.TRADING,
        check_same_thread: bool = True,
        config: StoreConfig | None = None,
    ) -> "Store":
        """Open (or, for TRADING, create) the store at ``path``; ``":memory:"`` for in-memory.

        Args:
            path: the database file; its parent directory is created if missing.
            mode: TRADING (lock, verify, bump incarnation) or READ_ONLY (inspect).
            check_same_thread: pass False when a worker thread will make the calls
                (:class:`~scalper.store.writer.ThreadExecutor`); the store's own lock
                serializes them.
            config: settings; defaults if omitted.

        Raises:
            LedgerLocked: TRADING, and another holder has the lock.
            StoreCorrupt: integrity check or hash chain failed (TRADING), or the file is
                too damaged to read at all (READ_ONLY).
            StoreError: anything else that prevents opening (not a scalper store, newer
                schema, no such file for READ_ONLY, permissions, ...).
        """
        mode = OpenMode(mode)
        config = StoreConfig() if config is None else config
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old; the store needs "
                f"{'.'.join(map(str, _MIN_SQLITE))} or newer (STRICT tables)"
            )
        name = os.fspath(path)
        if name == MEMORY:
            return cls._open_memory(mode, check_same_thread, config)
        full = os.path.abspath(name)
        if mode is OpenMode.READ_ONLY:
            return cls._open_read_only(full, check_same_thread, config)
        return cls._open_trading(full, check_same_thread, config)

    @classmethod
    def _open_memory(cls, mode: OpenMode, check_same_thread: bool, config: StoreConfig) -> "Store":
        if mode is OpenMode.READ_ONLY:
            raise StoreError(
                "':memory:' cannot be opened READ_ONLY: an in-memory store starts empty, "
                "there is nothing to inspect"
            )
        conn = _connect(MEMORY, uri=False, check_same_thread=check_same_thread)
        try:
            _configure(conn, config, mode=mode, wal=False)
            _create_schema(conn)
            incarnation = cls._bump_incarnation(conn, MEMORY)
        except BaseException:
            conn.close()
            raise
        return cls(
            conn,
            path=MEMORY,
            mode=mode,
            lock_fd=None,
            config=config,
            incarnation=incarnation,
            head=(0, GENESIS_HASH),
        )

    def restarted_copy(self) -> "Store":
        """What a restarted process would open after this one was killed: a new store.

        The copy holds exactly what this store *committed* (a write in flight when the
        process died is not there), goes through the same integrity and hash-chain check
        as a file opened for trading, and gets the next incarnation. It is always
        in-memory: the chaos runner kills and restarts systems many times per second of
        real time, and a file store would add fsyncs without testing anything a
        file-backed crash test (``tests/test_system.py``) does not already test.

        Raises:
            StoreError: this store is closed or was opened READ_ONLY.
            StoreCorrupt: the committed contents fail the integrity or chain check.
        """
        if self._closed:
            raise StoreError(f"cannot copy store {self._path}: it is closed")
        if self._mode is not OpenMode.TRADING:
            raise StoreError(f"cannot copy store {self._path}: it was not opened for trading")
        if self._conn.in_transaction:
            # SQLite's backup would wait for the transaction forever.
            raise StoreError(f"cannot copy store {self._path}: a write is in progress")
        conn = _connect(MEMORY, uri=False, check_same_thread=True)
        try:
            with self._mutex:
                self._conn.backup(conn)
            _configure(conn, self._config, mode=OpenMode.TRADING, wal=False)
            checked = _check(conn, self._config.max_problems)
            if checked.problems:
                raise StoreCorrupt(MEMORY, checked.problems, seq=checked.first_seq)
            incarnation = self._bump_incarnation(conn, MEMORY)
        except BaseException:
            conn.close()
            raise
        return type(self)(
            conn,
            path=MEMORY,
            mode=OpenMode.TRADING,
            lock_fd=None,
            config=self._config,
            incarnation=incarnation,
            head=checked.head,
        )

    @classmethod
    def _open_trading(cls, path: str, check_same_thread: bool, config: StoreConfig) -> "Store":
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory of store {path}: {exc}") from exc
        lock_fd = _acquire_lock(path + ".lock")
        conn: sqlite3.Connection | None = None
        try:
            try:
                if not os.path.exists(path):
                    wal = path + "-wal"
                    if os.path.exists(wal) and os.path.getsize(wal) > 0:
                        raise StoreCorrupt(
                            path,
                            (f"the database file is missing but its WAL {wal} exists",),
                        )
                    _create_file(path, config)
                elif os.path.getsize(path) == 0:
                    raise StoreCorrupt(
                        path,
                        (
                            "the database file is empty (0 bytes); a new store is never "
                            "created in place, so this is damage. Move it away to start fresh",
                        ),
                    )
                conn = _connect(_uri(path, "rw"), uri=True, check_same_thread=check_same_thread)
                # Identify the file before any pragma that could write to it.
                _check_identity(conn, path)
                _configure(conn, config, mode=OpenMode.TRADING, wal=True)
                checked = _check(conn, config.max_problems)
                if checked.problems:
                    raise StoreCorrupt(path, checked.problems, seq=checked.first_seq)
                incarnation = cls._bump_incarnation(conn, path)
            except sqlite3.Error as exc:
                raise _open_error(path, exc) from exc
            except OSError as exc:
                raise StoreError(f"cannot open store {path}: {exc}") from exc
        except BaseException:
            try:
                if conn is not None:
                    conn.close()
            finally:
                _release_lock(lock_fd)
            raise
        return cls(
            conn,
            path=path,
            mode=OpenMode.TRADING,
            lock_fd=lock_fd,
            config=config,
            incarnation=incarnation,
            head=checked.head,
        )

    @classmethod
    def _open_read_only(cls, path: str, check_same_thread: bool, config: StoreConfig) -> "Store":
        if not os.path.exists(path):
            raise StoreError(f"no store at {path}")
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(_uri(path, "ro"), uri=True, check_same_thread=check_same_thread)
            _configure(conn, config, mode=OpenMode.READ_ONLY, wal=False)
            _check_identity(conn, path)
            incarnation = _read_int_meta(conn, path, "incarnation")
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise _open_error(path, exc, action="cannot read it") from exc
            raise
        return cls(
            conn,
            path=path,
            mode=OpenMode.READ_ONLY,
            lock_fd=None,
            config=config,
            incarnation=incarnation,
            head=(0, GENESIS_HASH),
        )

    @staticmethod
    def _bump_incarnation(conn: sqlite3.Connection, path: str) -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for ddl in _TRIGGERS:  # restore a guard someone dropped (the chain passed)
                conn.execute(ddl)
            incarnation = _read_int_meta(conn, path, "incarnation") + 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'incarnation'", (str(incarnation),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return incarnation

    # ----------------------------------------------------------------- properties

    @property
    def path(self) -> str:
        """The absolute database path, or ``":memory:"``."""
        return self._path

    @property
    def mode(self) -> OpenMode:
        """How the store was opened."""
        return self._mode

    @property
    def incarnation(self) -> int:
        """This process's incarnation (TRADING), or the last one recorded (READ_ONLY)."""
        return self._incarnation

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def failed(self) -> StoreWriteError | None:
        """The write error that stopped this store from writing, if any."""
        return self._failed

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("failed" if self._failed else "open")
        return f"<Store {self._path} {self._mode} incarnation={self._incarnation} {state}>"

    # ----------------------------------------------------------------- guards

    def _require_open(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"store {self._path} is closed")
        return self._conn

    def _require_writable(self) -> sqlite3.Connection:
        conn = self._require_open()
        if self._mode is OpenMode.READ_ONLY:
            raise StoreReadOnly(f"store {self._path} was opened READ_ONLY; it cannot be written")
        if self._failed is not None:
            raise StoreWriteError(
                f"store {self._path} refuses writes after an earlier failed write "
                f"({self._failed}); restart the process to recover from what is durable"
            ) from self._failed
        return conn

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            conn = self._require_open()
            try:
                yield conn
            except sqlite3.Error as exc:
                if _is_corruption(exc):
                    raise StoreCorrupt(
                        self._path, (f"{what}: {exc}",), action="cannot read it"
                    ) from exc
                raise StoreError(f"store {self._path}: {what} failed: {exc}") from exc

    # ----------------------------------------------------------------- writing

    def write(self, items: Sequence[WriteItem]) -> list[WriteOutcome]:
        """Apply a batch in one transaction with one commit; return one outcome per item.

        Each item is all-or-nothing. An item with an already-stored fill (from an earlier
        batch or an earlier item of this one) is skipped whole, ``duplicate=True``. An item
        whose ledger upsert contradicts the ledger is skipped whole with ``conflict`` set.
        Everything else is journaled in order with contiguous seqs.

        Raises:
            StoreWriteError: SQLite or the OS failed; nothing of the batch is applied
                (atomically; whether the commit reached the disk is known only after a
                restart) and the store refuses every later write.
            StoreReadOnly: the store was opened READ_ONLY.
            StoreError: the store is closed.
            CoreValueError: an element of ``items`` is not a WriteItem.
        """
        batch = list(items)
        for i, item in enumerate(batch):
            if not isinstance(item, WriteItem):
                raise CoreValueError(f"items[{i}]", f"must be a WriteItem, got {item!r}")
        with self._mutex:
            conn = self._require_writable()
            if not batch:
                return []
            try:
                outcomes, head = self._apply(conn, batch)
            except (sqlite3.Error, OSError) as exc:
                raise self._fail(conn, f"write of {len(batch)} item(s)", exc) from exc
            except BaseException:
                self._rollback_or_fail(conn)
                raise
            self._head = head
            return outcomes

    def _fail(self, conn: sqlite3.Connection, what: str, exc: BaseException) -> StoreWriteError:
        self._rollback_or_fail(conn)
        error = StoreWriteError(
            f"store {self._path}: {what} failed ({exc}); the transaction was rolled back and "
            f"this store accepts no more writes: halt and restart to recover from what is "
            f"durable"
        )
        if self._failed is None:
            self._failed = error
        return error

    def _rollback_or_fail(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            if self._failed is None:
                self._failed = StoreWriteError(
                    f"store {self._path}: rollback failed ({exc}); the connection is unusable"
                )

    def _apply(
        self, conn: sqlite3.Connection, batch: list[WriteItem]
    ) -> tuple[list[WriteOutcome], tuple[int, str]]:
        conn.execute("BEGIN IMMEDIATE")
        seq, head = self._head
        outcomes: list[WriteOutcome] = []
        for item in batch:
            if any(self._fill_stored(conn, key) for key in item.fill_keys):
                outcomes.append(WriteOutcome(None, duplicate=True))
                continue
            guarded = any(isinstance(op, UpsertLedger) for op in item.ops)
            if guarded:
                conn.execute("SAVEPOINT item")
            entry = None
            if item.record is not None:
                rec = item.record
                entry = JournalEntry(
                    seq=seq + 1,
                    wall_ms=rec.wall_ms,
                    type=rec.type,
                    intent_id=rec.intent_id,
                    correlation_id=rec.correlation_id,
                    payload=rec.payload,
                    prev_hash=head,
                    hash=chain_hash(
                        head,
                        seq + 1,
                        rec.wall_ms,
                        rec.type,
                        rec.intent_id,
                        rec.correlation_id,
                        rec.payload,
                    ),
                )
                conn.execute(
                    _SQL_INSERT_ENTRY,
                    attrs.astuple(entry),
                )
            conflict = self._apply_ops(conn, item.ops, None if entry is None else entry.seq)
            if conflict:
                assert guarded, "only ledger upserts can conflict"
                conn.execute("ROLLBACK TO item")
                conn.execute("RELEASE item")
                outcomes.append(WriteOutcome(None, conflict=conflict))
                continue
            if guarded:
                conn.execute("RELEASE item")
            if entry is not None:
                seq, head = entry.seq, entry.hash
            outcomes.append(WriteOutcome(entry))
        if seq != self._head[0]:
            conn.executemany(
                "UPDATE meta SET value = ? WHERE key = ?",
                [(str(seq), "head_seq"), (head, "head_hash")],
            )
        conn.execute("COMMIT")
        return outcomes, (seq, head)

    @staticmethod
    def _fill_stored(conn: sqlite3.Connection, key: tuple[str, str]) -> bool:
        row = conn.execute("SELECT 1 FROM fills WHERE symbol = ? AND trade_id = ?", key).fetchone()
        return row is not None

    def _apply_ops(
        self, conn: sqlite3.Connection, ops: tuple[LedgerOp, ...], journal_seq: int | None
    ) -> str:
        """Apply one item's ops; return a conflict description (the caller rolls back)."""
        new_live: list[LedgerRow] = []
        for op in ops:
            if isinstance(op, UpsertLedger):
                conflict = self._upsert(conn, op.row)
                if conflict is None:
                    new_live.append(op.row)
                elif conflict:
                    return conflict
            elif isinstance(op, InsertFill):
                conn.execute(
                    "INSERT INTO fills (symbol, trade_id, client_order_id, payload, journal_seq) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (op.symbol, op.trade_id, op.client_order_id, op.payload, journal_seq),
                )
            elif isinstance(op, SetCursor):
                conn.execute(
                    "INSERT INTO cursors (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (op.name, op.value),
                )
        return self._second_live_order(conn, new_live)

    @staticmethod
    def _upsert(conn: sqlite3.Connection, row: LedgerRow) -> str | None:
        """Insert or update ``row``.

        Returns None for a new live risk-increasing row (the caller checks it against I7
        once the whole item is applied), "" for any other accepted upsert, or a conflict.
        """
        old = conn.execute(_SQL_LEDGER_IDENTITY, (row.client_order_id,)).fetchone()
        values = (
            row.client_order_id,
            row.intent_id,
            row.generation,
            row.symbol,
            row.spec,
            row.state.value,
            int(row.risk_increasing),
            row.created_wall_ms,
            row.updated_wall_ms,
            row.recv_window_ms,
            row.sent_wall_ms,
            row.venue_order_id,
            row.incarnation,
            row.reason,
        )
        if old is None:
            conn.execute(_SQL_LEDGER_INSERT, values)
            return None if row.risk_increasing and not row.state.is_terminal else ""
        new = (row.intent_id, row.generation, row.symbol, row.spec, int(row.risk_increasing))
        for name, before, after in zip(_LEDGER_IDENTITY, old, new, strict=True):
            if before != after:
                return (
                    f"ledger upsert for {row.client_order_id} would change {name} from "
                    f"{before!r} to {after!r}; an order's identity is fixed once written "
                    f"(the venue may hold what was written first under this id)"
                )
        conn.execute(_SQL_LEDGER_UPDATE, (*values[5:6], *values[7:], row.client_order_id))
        return ""

    @staticmethod
    def _second_live_order(conn: sqlite3.Connection, new_live: list[LedgerRow]) -> str:
        # Checked after all of the item's ops, so "generation 0 ABSENT, generation 1
        # SENDING" in one item is accepted in either op order.
        for row in new_live:
            current = conn.execute(_SQL_LEDGER_STATE, (row.client_order_id,)).fetchone()
            if current is None or current[0] not in _LIVE or current[1] != 1:
                continue
            other = conn.execute(
                _SQL_OTHER_LIVE_RISK, (row.intent_id, _LIVE_JSON, row.client_order_id)
            ).fetchone()
            if other is not None:
                return (
                    f"intent {row.intent_id}: refusing to record new risk-increasing order "
                    f"{row.client_order_id} ({current[0]}) while {other[0]} ({other[1]}) of "
                    f"the same intent is still live; a new generation needs the previous "
                    f"one proven absent or terminal first (I7)"
                )
        return ""

    def purge_terminal(
        self, now_wall_ms: int, ttl_ms: int = DEFAULT_TERMINAL_TTL_MS
    ) -> PurgeResult:
        """Remove terminal ledger rows last updated more than ``ttl_ms`` before ``now_wall_ms``.

        Live rows, fills and the journal are never purged. The counts are added to the
        persisted counters (:meth:`purge_counters`) in the same transaction. Journal the
        result (:meth:`PurgeResult.as_dict`) if replay must see it.

        Raises:
            CoreValueError: on a negative time or TTL.
            StoreWriteError: SQLite or the OS failed (as for :meth:`write`).
            StoreReadOnly: the store was opened READ_ONLY.
        """
        _require_int("now_wall_ms", now_wall_ms, 0)
        _require_int("ttl_ms", ttl_ms, 0)
        cutoff = now_wall_ms - ttl_ms
        with self._mutex:
            conn = self._require_writable()
            try:
                conn.execute("BEGIN IMMEDIATE")
                found = dict(conn.execute(_SQL_PURGE_COUNT, (_TERMINAL_JSON, cutoff)).fetchall())
                conn.execute(_SQL_PURGE_DELETE, (_TERMINAL_JSON, cutoff))
                conn.executemany(
                    "INSERT INTO purge_counters (state, purged) VALUES (?, ?) "
                    "ON CONFLICT (state) DO UPDATE SET purged = purged + excluded.purged",
                    sorted(found.items()),
                )
                conn.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                raise self._fail(conn, "purge of terminal ledger rows", exc) from exc
            except BaseException:
                self._rollback_or_fail(conn)
                raise
        counts = tuple((s, int(found.get(s.value, 0))) for s in LedgerState if s in TERMINAL_STATES)
        return PurgeResult(cutoff_wall_ms=cutoff, counts=counts)

    # ----------------------------------------------------------------- reading

    def entries(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[JournalEntry]:
        """Journal entries with ``from_seq <= seq <= to_seq`` (to the end if None), in order.

        Rows are fetched in chunks; nothing is held between chunks, so writing while
        iterating is safe (the iterator also yields entries appended meanwhile).

        Raises:
            CoreValueError: on a bad bound (raised immediately, not at the first ``next``).
            StoreCorrupt: a row is unreadable or has the wrong column types.
        """
        _require_int("from_seq", from_seq, 1)
        if to_seq is not None:
            _require_int("to_seq", to_seq, 0)
        return self._iter_entries(from_seq, _INT64_MAX if to_seq is None else to_seq)

    def _iter_entries(self, from_seq: int, to_seq: int) -> Iterator[JournalEntry]:
        chunk = self._config.read_chunk
        next_seq = from_seq
        while next_seq <= to_seq:
            with self._reading("reading the journal") as conn:
                rows = conn.execute(_SQL_ENTRIES, (next_seq, to_seq, chunk)).fetchall()
            entries = [_entry_from_row(row, self._path) for row in rows]
            yield from entries
            if len(rows) < chunk:
                return
            next_seq = entries[-1].seq + 1

    def last_entry(self) -> JournalEntry | None:
        """The newest journal entry, or None if the journal is empty."""
        with self._reading("reading the last journal entry") as conn:
            row = conn.execute(_SQL_LAST_ENTRY).fetchone()
        return None if row is None else _entry_from_row(row, self._path)

    def ledger_row(self, client_order_id: str) -> LedgerRow | None:
        """The ledger row of ``client_order_id``, or None (never written, or purged)."""
        with self._reading("reading the ledger") as conn:
            row = conn.execute(_SQL_LEDGER_ROW, (client_order_id,)).fetchone()
        return None if row is None else _ledger_from_row(row, self._path)

    def ledger_for_intent(self, intent_id: str) -> list[LedgerRow]:
        """Every ledger row of ``intent_id``, by generation."""
        with self._reading("reading the ledger") as conn:
            rows = conn.execute(_SQL_LEDGER_FOR_INTENT, (intent_id,)).fetchall()
        return [_ledger_from_row(row, self._path) for row in rows]

    def open_ledger_rows(self) -> list[LedgerRow]:
        """Every non-terminal ledger row, oldest first: what recovery must resolve."""
        with self._reading("reading the ledger") as conn:
            rows = conn.execute(_SQL_LEDGER_IN_STATES, (_LIVE_JSON,)).fetchall()
        return [_ledger_from_row(row, self._path) for row in rows]

    def has_fill(self, symbol: str, trade_id: str) -> bool:
        """True if the fill ``(symbol, trade_id)`` is stored."""
        with self._reading("reading fills") as conn:
            return self._fill_stored(conn, (symbol, trade_id))

    def fill_count(self) -> int:
        """How many fills are stored."""
        with self._reading("counting fills") as conn:
            return int(conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0])

    def cursor(self, name: str) -> str | None:
        """The value of cursor ``name``, or None if never set."""
        with self._reading("reading cursors") as conn:
            row = conn.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def purge_counters(self) -> dict[str, int]:
        """Terminal rows purged since the store was created, per terminal state."""
        with self._reading("reading purge counters") as conn:
            stored = dict(conn.execute("SELECT state, purged FROM purge_counters").fetchall())
        return {s.value: int(stored.get(s.value, 0)) for s in LedgerState if s in TERMINAL_STATES}

    def verify(self) -> VerifyReport:
        """Re-run ``integrity_check`` and re-walk the hash chain; report, never raise on damage.

        Raises:
            StoreError: the check itself could not run (I/O error, closed store).
        """
        with self._reading("verifying") as conn:
            checked = _check(conn, self._config.max_problems)
        return VerifyReport.from_problems(checked.entries, checked.problems)

    # ----------------------------------------------------------------- closing

    def close(self) -> None:
        """Close the connection and release the ledger lock. Idempotent."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            lock_fd, self._lock_fd = self._lock_fd, None
            try:
                self._conn.close()
            except sqlite3.Error as exc:
                raise StoreError(f"store {self._path}: close failed: {exc}") from exc
            finally:
                if lock_fd is not None:
                    _release_lock(lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _open_error(path: str, exc: sqlite3.Error, *, action: str = "refusing to trade") -> StoreError:
    if _is_corruption(exc):
        return StoreCorrupt(path, (f"sqlite: {exc}",), action=action)
    return StoreError(f"cannot open store {path}: {exc}")
