"""The durable store: hash-chained journal and write-ahead intent ledger on SQLite.

* :mod:`~scalper.store.records`: what is stored (entries, ledger rows, write items).
* :mod:`~scalper.store.store`: :class:`Store`, synchronous, one connection, one writer.
* :mod:`~scalper.store.writer`: :class:`GroupCommitWriter`, async group commit on trio.
* :mod:`~scalper.store.errors`: what can go wrong, worded for the operator.

See ``docs/store.md`` for the journal format, what is checked on open, and how to inspect a
journal read-only.
"""

from scalper.store.errors import (
    LedgerConflict,
    LedgerLocked,
    StoreCorrupt,
    StoreError,
    StoreReadOnly,
    StoreWriteError,
    WriterClosed,
)
from scalper.store.records import (
    GENESIS_HASH,
    InsertFill,
    JournalEntry,
    JournalRecord,
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
from scalper.store.store import MEMORY, OpenMode, Store, StoreConfig
from scalper.store.writer import (
    Executor,
    GroupCommitWriter,
    ThreadExecutor,
    WriterStats,
    inline_executor,
)

__all__ = [
    "GENESIS_HASH",
    "MEMORY",
    "Executor",
    "GroupCommitWriter",
    "InsertFill",
    "JournalEntry",
    "JournalRecord",
    "LedgerConflict",
    "LedgerLocked",
    "LedgerOp",
    "LedgerRow",
    "LedgerState",
    "OpenMode",
    "PurgeResult",
    "SetCursor",
    "Store",
    "StoreConfig",
    "StoreCorrupt",
    "StoreError",
    "StoreReadOnly",
    "StoreWriteError",
    "ThreadExecutor",
    "UpsertLedger",
    "VerifyReport",
    "WriteItem",
    "WriteOutcome",
    "WriterClosed",
    "WriterStats",
    "chain_hash",
    "inline_executor",
]
