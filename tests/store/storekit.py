"""Builders shared by the store tests: realistic journal records, ledger rows and fills."""

import json
import os
import shutil
from pathlib import Path
from typing import Any

from scalper.core.ids import Role, client_order_id
from scalper.store import (
    InsertFill,
    JournalEntry,
    JournalRecord,
    LedgerRow,
    LedgerState,
    UpsertLedger,
    WriteItem,
    WriteOutcome,
)

#: 2026-01-01T00:00:00Z, the simulated epoch.
T0 = 1_767_225_600_000
BTC = "BTCUSDT"


def canonical(value: Any) -> str:
    """The canonical JSON the callers produce (sorted keys, no whitespace)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def coid(intent_id: str, generation: int = 0, role: Role = Role.ENTRY) -> str:
    """Our real client-order-id derivation."""
    return client_order_id("sc", intent_id, role, generation)


def spec(intent_id: str, generation: int = 0, qty: str = "0.010") -> str:
    """The order request as the Router would store it."""
    return canonical(
        {
            "client_order_id": coid(intent_id, generation),
            "order_type": "MARKET",
            "quantity": qty,
            "side": "BUY",
            "symbol": BTC,
        }
    )


def record(n: int, *, kind: str = "note", intent_id: str = "", note: str = "") -> JournalRecord:
    """The n-th record of a scenario (its wall time is T0 + n ms)."""
    return JournalRecord(
        type=kind,
        wall_ms=T0 + n,
        payload=canonical({"n": n, "note": note or f"event-{n:04d}"}),
        intent_id=intent_id,
        correlation_id=f"c-{intent_id}" if intent_id else "",
    )


def row(
    intent_id: str,
    generation: int = 0,
    state: LedgerState = LedgerState.SENDING,
    *,
    risk_increasing: bool = True,
    updated: int = 0,
    venue_order_id: str | None = None,
    reason: str = "",
    incarnation: int = 1,
) -> LedgerRow:
    """The ledger row of one generation of an entry intent."""
    return LedgerRow(
        client_order_id=coid(intent_id, generation),
        intent_id=intent_id,
        generation=generation,
        symbol=BTC,
        spec=spec(intent_id, generation),
        state=state,
        risk_increasing=risk_increasing,
        created_wall_ms=T0,
        updated_wall_ms=T0 + updated,
        recv_window_ms=5000,
        sent_wall_ms=T0 if state is not LedgerState.SENDING else None,
        venue_order_id=venue_order_id,
        incarnation=incarnation,
        reason=reason,
    )


def fill_op(
    trade_id: str, *, symbol: str = BTC, order: str = "sc-E-0000000000000000-0"
) -> InsertFill:
    """A venue fill of 0.004 BTC."""
    return InsertFill(
        symbol=symbol,
        trade_id=trade_id,
        client_order_id=order,
        payload=canonical(
            {"price": "60000.1", "quantity": "0.004", "symbol": symbol, "trade_id": trade_id}
        ),
    )


def fill_item(n: int, trade_id: str, *, symbol: str = BTC) -> WriteItem:
    """A fill journaled with its fill row, as the Journal actor writes it."""
    op = fill_op(trade_id, symbol=symbol)
    return WriteItem(
        JournalRecord(type="fill_applied", wall_ms=T0 + n, payload=op.payload),
        (op,),
    )


def sending_item(n: int, intent_id: str, generation: int = 0) -> WriteItem:
    """The write-ahead SENDING row and its journal record."""
    r = row(intent_id, generation)
    return WriteItem(
        JournalRecord(
            type="order_sending",
            wall_ms=T0 + n,
            payload=r.spec,
            intent_id=intent_id,
            correlation_id=f"c-{intent_id}",
        ),
        (UpsertLedger(r),),
    )


def copy_store_files(src: Path, dst_dir: Path, *, with_wal: bool = True) -> Path:
    """Copy a (possibly open) store's database and WAL, as a crash would leave them."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    shutil.copyfile(src, dst)
    wal = Path(f"{src}-wal")
    if with_wal and wal.exists():
        shutil.copyfile(wal, Path(f"{dst}-wal"))
    return dst


def wal_frames(wal: Path) -> tuple[int, int]:
    """(page size, complete frames) of a WAL file (header 32 bytes, frame header 24)."""
    data = wal.read_bytes()
    page_size = int.from_bytes(data[8:12], "big")
    return page_size, (len(data) - 32) // (24 + page_size)


def flip_in_file(path: Path, needle: bytes, replacement: bytes) -> None:
    """Replace the one occurrence of ``needle`` in a file, byte for byte in place."""
    data = path.read_bytes()
    assert data.count(needle) == 1, f"{needle!r} occurs {data.count(needle)} times in {path}"
    assert len(needle) == len(replacement)
    path.write_bytes(data.replace(needle, replacement))


def file_size(path: Path) -> int:
    """Size in bytes, 0 if missing."""
    return os.path.getsize(path) if path.exists() else 0


def entry_of(outcome: WriteOutcome) -> JournalEntry:
    """The journal entry of an outcome that must have written one."""
    assert outcome.entry is not None, f"no entry written: {outcome}"
    return outcome.entry
