"""Errors of the durable store, written for the operator who has to act on them.

Theory of operation
-------------------

Every failure of the store is a :class:`StoreError`; no raw ``sqlite3`` or ``OSError``
escapes the package. The subclasses say what the process must do next:

* :class:`StoreCorrupt`: the file failed SQLite's integrity check or the journal's hash
  chain is broken. **Do not trade**: the durable record of what was sent cannot be trusted.
  The message names the file and the first problem (seq, stored vs recomputed hash);
  ``problems`` lists them all. Open the file ``READ_ONLY`` to inspect it.
* :class:`LedgerLocked`: another process (or another store in this process) holds the
  ledger. Two writers would each believe they own every intent: refuse to start.
* :class:`StoreWriteError`: a commit failed (disk full, I/O error, failed fsync). The batch
  is atomically all-or-nothing, but *which* is only known after a restart; the store refuses
  every later write, and the process must halt and recover from what is durable. A failed
  fsync is never retried (the fsyncgate lesson: the page cache may already have dropped the
  dirty pages, so a "successful" retry can lie).
* :class:`StoreReadOnly`: a write on a store opened ``READ_ONLY`` (a programming error).
* :class:`LedgerConflict`: one item's ledger upsert contradicts the stored ledger (it would
  rewrite an order's identity, or record a second live risk-increasing order for an intent,
  I7). Only that item is refused; the rest of its batch commits.
* :class:`WriterClosed`: the group-commit writer stopped before the item was written.
"""

import os

__all__ = [
    "LedgerConflict",
    "LedgerLocked",
    "StoreCorrupt",
    "StoreError",
    "StoreReadOnly",
    "StoreWriteError",
    "WriterClosed",
]


class StoreError(Exception):
    """Base class of every error the store raises."""


class StoreCorrupt(StoreError):  # noqa: N818 - the interface's name; reads as a condition
    """The store failed its integrity check or its hash chain: refuse to trade.

    Attributes:
        path: the database file.
        problems: every problem found, one line each.
        seq: the first journal seq named by a problem, if any.
    """

    def __init__(
        self,
        path: str,
        problems: tuple[str, ...],
        *,
        seq: int | None = None,
        action: str = "refusing to trade",
    ) -> None:
        shown = "; ".join(problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(
            f"store {path} is corrupt, {action}: {shown}{more}. Inspect it read-only "
            f"(Store.open(path, mode=OpenMode.READ_ONLY).verify()); see docs/store.md"
        )
        self.path = path
        self.problems = problems
        self.seq = seq


class LedgerLocked(StoreError):  # noqa: N818 - the interface's name; reads as a condition
    """Another process (or another Store in this one) holds the ledger.

    Attributes:
        lock_path: the lock file.
        holder_pid: the pid written in the lock file by the holder, if readable.
    """

    def __init__(self, lock_path: str, holder_pid: int | None) -> None:
        if holder_pid is None:
            who = "another process (holder pid not readable)"
        elif holder_pid == os.getpid():
            who = f"this process (pid {holder_pid}; another Store is already open)"
        else:
            who = f"pid {holder_pid}"
        super().__init__(
            f"ledger is locked by {who}: lock file {lock_path}. Refusing to open a second "
            f"trading store on the same ledger; stop the other instance first"
        )
        self.lock_path = lock_path
        self.holder_pid = holder_pid


class StoreWriteError(StoreError):
    """A write failed; the process must halt and recover from what is durable."""


class StoreReadOnly(StoreError):  # noqa: N818 - the interface's name; reads as a condition
    """A write was attempted on a store opened READ_ONLY."""


class LedgerConflict(StoreError):  # noqa: N818 - the interface's name; reads as a condition
    """One item's ledger upsert contradicts the stored ledger; that item was not written."""


class WriterClosed(StoreError):  # noqa: N818 - the interface's name; reads as a condition
    """The group-commit writer stopped before this item was written."""
