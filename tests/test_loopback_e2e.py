"""End to end over real loopback sockets: protection repair, replace degrade, crash restart.

Theory of operation
-------------------

These are the in-process scenarios of ``tests/actors/test_protection.py``,
``tests/actors/test_replace.py`` and ``tests/test_system.py`` replayed with nothing
in-process between the actors and the exchange: the System speaks signed REST and a
WebSocket user stream through :class:`~scalper.venues.binance.client.BinanceVenue` to the
simulated exchange on ``127.0.0.1`` (``tests/loopback_kit.py``). Timing is real: the user
stream and REST answers race each other as they would against Binance, and a killed
process leaves its sockets, its journal and its orders as a real crash would.

What is checked is always the ground truth first (the engine's history: what the exchange
really accepted, cancelled and filled), then the journal's account of it:

1. **A vanished stop is repaired.** The exchange loses our protective stop behind the
   system's back (reported on the stream, or silently: the stream event is dropped and
   only REST snapshots can tell). A new stop must be accepted at the exchange within the
   protection gap TTL, and afterwards exactly one stop rests there, never two at once.
2. **A replace refused by the envelope degrades to cancel, reconcile, create.** The old
   order is closed at the exchange before the new one is accepted; the two are never open
   at once (I7, I8), including when the first cancel is answered -2011 while the order
   stays live.
3. **Kill and restart.** A process dies between a send and its journal record, with a
   position, its stop, a resting entry and a durable halt. While it is down its in-flight
   exit fills and other clients leave orders on the account. A new process on the same
   file journal and the same exchange must place no duplicate order, lose no fill,
   classify every orphan (ADOPT, CANCEL, FREEZE) and still be halted.

Each test stays under about fifteen seconds of wall time; every wait is bounded.
"""

from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import attrs
import pytest
import trio

from scalper.actors.protection import leg_coverage
from scalper.actors.replace import ReplaceOutcome
from scalper.actors.router import IntentReceipt
from scalper.core.errors import Operation
from scalper.core.ids import Role, client_order_id, intent_digest
from scalper.core.model import OrderRequest, VenueOrder, VenueOrderStatus
from scalper.core.protection import CoverageStatus
from scalper.core.types import OrderType, PositionSide, Side, TimeInForce
from scalper.crashpoints import CrashKind, CrashPoint, CrashPoints, ProcessCrash
from scalper.messages import (
    CancelFailed,
    CancelResolved,
    FillApplied,
    OrderAdopted,
    OrderObserved,
    OrderResolved,
    OrderSending,
    PressureRaised,
    ReconcileCompleted,
    ReplaceAdmitted,
    ReplaceFinished,
    ReplaceOrder,
    ReplaceStepped,
    Resolution,
    RetryScheduled,
    SymbolFrozen,
    decode_event,
)
from scalper.serve import restart_reason_for
from scalper.state import AccountState, OrderRecord
from scalper.store.records import LedgerState
from scalper.store.store import Store
from scalper.system import System
from scalper.venues.sim.faults import FaultKind, FaultSpec
from scalper.venues.sim.records import OrderAccepted, OrderClosed
from tests.loopback_kit import (
    BTC,
    REF,
    Exchange,
    accepted_coids,
    acked,
    between_reads,
    events_of,
    fast_config,
    limit_intent,
    loopback_exchange,
    market_entry,
    max_concurrently_open,
    only_coid,
    ready_for_entries,
    running_process,
    sequenced,
    until,
)

D = Decimal
_E = TypeVar("_E")
LEG = (BTC, PositionSide.BOTH)
#: Wall-time bound of one test; the scenarios take a few seconds each.
TEST_LIMIT_S = 25.0


def events_of_rows(rows: list[tuple[str, str, int]], kind: type[_E]) -> list[_E]:
    """Events of ``kind`` from journal rows read before the store was closed."""
    out: list[_E] = []
    for type_, payload, _ in rows:
        event = decode_event(type_, payload)
        if isinstance(event, kind):
            out.append(event)
    return out


def is_stop(coid: str) -> bool:
    """Our protective stops: role SL (``sc-S-``)."""
    return coid.startswith("sc-S-")


# ------------------------------------------------------------------------------ 1. protection


async def _open_protected_position(exchange: Exchange, system: System) -> str:
    """Fill a 0.002 BTC entry and wait until its stop rests at the exchange and is believed."""
    await ready_for_entries(system)
    await between_reads(system)
    receipt = await system.submit(market_entry("e1"), reference_price=REF)
    assert receipt.accepted, receipt
    state = system.journal.state
    await until(lambda: state.position(BTC) == D("0.002"))
    await until(lambda: len(exchange.open_stops()) == 1)
    await until(lambda: leg_coverage(state, LEG)[0].status is CoverageStatus.COVERED)
    (stop,) = exchange.open_stops()
    return stop.client_order_id


@pytest.mark.parametrize("silent", [False, True], ids=["stream_reports_it", "silent_vanish"])
async def test_a_stop_removed_behind_our_back_is_replaced_within_the_gap_ttl(
    silent: bool,
) -> None:
    config = fast_config()
    ttl = config.protection.protection.gap_ttl_seconds
    with trio.fail_after(TEST_LIMIT_S):
        async with loopback_exchange() as exchange:
            store = Store.open(":memory:")
            async with running_process(exchange, store, config=config) as system:
                old_stop = await _open_protected_position(exchange, system)
                state = system.journal.state
                if silent:
                    # Every stream event of the next second is lost without a gap notice:
                    # only REST (snapshots, queries) can reveal that the stop is gone.
                    await exchange.schedule_faults(FaultSpec(0.0, 1.0, FaultKind.STREAM_DROP))
                # The exchange loses the stop (an operator in the web UI, a venue-side
                # expiry): cancelled at the engine, not through any client of ours.
                app = exchange.handle.app
                exchange.engine.cancel_order(
                    BTC, client_order_id=old_stop, now=app.now(), algo=True
                )
                removed_at = exchange.engine.now
                app.tick()  # push the cancel's ALGO_UPDATE to the stream (or drop it)
                assert exchange.open_stops() == []

                await until(lambda: len(exchange.open_stops()) == 1, limit_s=ttl)
                (new_stop,) = exchange.open_stops()
                # The journal learned both facts: the old stop is gone, the new one covers.
                await until(lambda: state.orders[old_stop].is_terminal)
                await until(lambda: leg_coverage(state, LEG)[0].status is CoverageStatus.COVERED)
                # A repaired stop must not be followed by a second one (double-stopped).
                await trio.sleep(1.5)
                final_stops = exchange.open_stops()
                coverage, pending = leg_coverage(state, LEG)
                dropped = [f.kind for f in app.faults.injected]
                journal_position = state.position(BTC)
            pressures = events_of(store, PressureRaised)
            learned = [
                (o.source, o.order.status)
                for o in events_of(store, OrderObserved)
                if o.client_order_id == old_stop
            ]
            passes = events_of(store, ReconcileCompleted)
            mismatches = [m for r in passes for m in r.mismatches]
            deferred = [d for r in passes for d in r.deferred]

    assert new_stop.client_order_id != old_stop
    # How the journal learned the stop was gone: from the stream's ALGO_UPDATE, or, with
    # the stream silent, from a snapshot that no longer listed it and the query it caused.
    if silent:
        assert FaultKind.STREAM_DROP in dropped
        assert learned[-1] == ("query", VenueOrderStatus.CANCELED)
        # The first snapshot without it defers it as a fill or cancel whose report is on
        # the way, and fetches it at once; judged stale only if that fetch had not answered.
        assert f"vanished_within_grace:{BTC}:{old_stop}" in deferred
        assert f"stale_local_order:{BTC}:{old_stop}" in mismatches or not mismatches
    else:
        assert dropped == []
        assert learned[-1] == ("stream", VenueOrderStatus.CANCELED)
    assert [source for source, _ in learned].count("stream") == 1 + (not silent)
    # Ground truth: the new stop was accepted within the gap TTL of the removal ...
    (placed,) = [
        r
        for r in exchange.engine.history.accepted()
        if r.client_order_id == new_stop.client_order_id
    ]
    assert 0 < placed.ts - removed_at < ttl
    # ... is the only stop resting now, covers the whole position, and there was never a
    # moment with two of our stops live at the exchange.
    assert [s.client_order_id for s in final_stops] == [new_stop.client_order_id]
    assert new_stop.side is Side.SELL
    assert new_stop.close_position or new_stop.quantity == exchange.position() == D("0.002")
    assert max_concurrently_open(exchange.engine, is_stop) == 1
    assert accepted_coids(exchange.engine, [old_stop, new_stop.client_order_id]) == [
        old_stop,
        new_stop.client_order_id,
    ]
    # The journal agrees with the exchange.
    assert journal_position == D("0.002")
    assert coverage.status is CoverageStatus.COVERED
    assert coverage.covered_by == (new_stop.client_order_id,)
    assert pending == ()
    assert not [p for p in pressures if p.cause == "protection_gap_ttl_breach"]


# ------------------------------------------------------------------------------ 2. replace


#: The replace envelope: 250 USDT. Replacing a resting 0.002 buy by a 0.003 buy from flat
#: has a worst case of 0.005 BTC * 59100 = 295.5 USDT: refused, so the replace degrades.
ENVELOPE = D(250)


def max_live_in_journal(store: Store, prefix: str, intent_ids: set[str]) -> int:
    """Replay the journal; the most orders of ``intent_ids`` possibly live after any event."""
    state = AccountState(prefix=prefix)
    worst = 0
    for entry in store.entries():
        state.apply(decode_event(entry.type, entry.payload), entry.wall_ms)
        live = sum(1 for i in intent_ids for o in state.orders_for_intent(i) if not o.is_terminal)
        worst = max(worst, live)
    return worst


@pytest.mark.parametrize("first_cancel_lies", [False, True], ids=["honest", "first_cancel_lies"])
async def test_replace_refused_by_the_envelope_degrades_to_cancel_then_create(
    first_cancel_lies: bool,
) -> None:
    config = fast_config(
        replace=attrs.evolve(fast_config().replace, max_exposure_notional=ENVELOPE)
    )
    with trio.fail_after(TEST_LIMIT_S):
        async with loopback_exchange() as exchange:
            store = Store.open(":memory:")
            async with running_process(exchange, store, config=config) as system:
                await ready_for_entries(system)
                await between_reads(system)
                receipt = await system.submit(limit_intent("r1", "59000"), reference_price=REF)
                assert receipt.accepted, receipt
                await until(acked(system, "r1"))
                old = only_coid(system, "r1")
                await between_reads(system)  # the entry cooldown passes
                if first_cancel_lies:
                    # The first cancel is answered -2011 "Unknown order sent." while the
                    # order stays live: only the status check can tell (I3). The window
                    # closes before the Router's first retry (at least 0.1875 s: 0.25 s
                    # backoff, 25% jitter), so exactly one answer lies.
                    await exchange.schedule_faults(
                        FaultSpec(0.0, 0.15, FaultKind.CANCEL_UNKNOWN_BUT_LIVE)
                    )
                result = await system.replace(
                    ReplaceOrder("r1", limit_intent("r1b", "59100", qty="0.003"), reason="chase")
                )
                await until(acked(system, "r1b"))
                new = only_coid(system, "r1b")
                injected = [(f.kind, f.op) for f in exchange.handle.app.faults.injected]
                resting = {o.client_order_id for o in exchange.engine.open_orders(BTC)}
    history = exchange.engine.history.records

    assert result.outcome is ReplaceOutcome.DEGRADED, result
    assert result.new_intent_id == "r1b"
    (admitted,) = events_of(store, ReplaceAdmitted)
    assert admitted.decision == "degrade_cancel_reconcile_create"
    assert admitted.worst_case_notional == D("0.005") * D("59100")
    steps = [s.state for s in events_of(store, ReplaceStepped) if s.replace_id == result.replace_id]
    assert steps == ["DEGRADE_CANCEL", "DEGRADE_RECONCILE", "DEGRADE_CREATE"]
    (done,) = events_of(store, ReplaceFinished)
    assert (done.outcome, done.new_intent_id) == ("degraded", "r1b")
    if first_cancel_lies:
        # The lie was told once, recognised by the status check, and the cancel retried.
        assert injected == [(FaultKind.CANCEL_UNKNOWN_BUT_LIVE, "cancel")]
        retries = [r for r in events_of(store, RetryScheduled) if r.client_order_id == old]
        assert [(r.operation, r.attempt) for r in retries] == [(Operation.CANCEL.value, 1)]
    else:
        assert injected == []

    # Ground truth: the old order was cancelled at the exchange before the new one was
    # accepted, and the two were never open at the same time.
    closed = [r for r in history if isinstance(r, OrderClosed) and r.client_order_id == old]
    accepted = [r for r in history if isinstance(r, OrderAccepted) and r.client_order_id == new]
    assert [c.status for c in closed] == [VenueOrderStatus.CANCELED]
    assert len(accepted) == 1
    assert closed[0].seq < accepted[0].seq
    assert max_concurrently_open(exchange.engine, lambda c: c in (old, new)) == 1
    assert resting == {new}
    assert exchange.engine.order_detail(BTC, client_order_id=new).price == D("59100")

    # The journal: the cancel proven, then two reconcile passes (the last clean), then the
    # new order written ahead; never both possibly live in the ledger either.
    cancel_seq = sending_seq = 0
    passes: list[bool] = []
    for seq, event in sequenced(store):
        if isinstance(event, CancelResolved) and event.client_order_id == old:
            cancel_seq = seq
        elif isinstance(event, ReconcileCompleted) and cancel_seq and not sending_seq:
            passes.append(event.clean)
        elif isinstance(event, OrderSending) and event.client_order_id == new:
            sending_seq = seq
    assert 0 < cancel_seq < sending_seq
    assert len(passes) >= 2
    assert passes[-1] is True
    assert max_live_in_journal(store, config.prefix, {"r1", "r1b"}) == 1


async def test_a_degrade_whose_cancel_never_takes_sends_no_new_order() -> None:
    # Every cancel is answered -2011 while the order stays live: the cancel can never be
    # proven, so the degrade must give up with the old order still working and the new
    # one never sent (I7: no new order while the old may be live). Three cancel attempts
    # instead of five keep the backoff short.
    base = fast_config()
    config = fast_config(
        replace=attrs.evolve(base.replace, max_exposure_notional=ENVELOPE),
        router=attrs.evolve(base.router, cancel_max_attempts=3),
    )
    with trio.fail_after(TEST_LIMIT_S):
        async with loopback_exchange() as exchange:
            store = Store.open(":memory:")
            async with running_process(exchange, store, config=config) as system:
                await ready_for_entries(system)
                await between_reads(system)
                assert (
                    await system.submit(limit_intent("r2", "59000"), reference_price=REF)
                ).accepted
                await until(acked(system, "r2"))
                old = only_coid(system, "r2")
                await between_reads(system)
                await exchange.schedule_faults(
                    FaultSpec(0.0, 600.0, FaultKind.CANCEL_UNKNOWN_BUT_LIVE)
                )
                result = await system.replace(
                    ReplaceOrder("r2", limit_intent("r2b", "59100", qty="0.003"))
                )
                old_in_journal = system.journal.state.orders[old]
                resting = {o.client_order_id for o in exchange.engine.open_orders(BTC)}
                lies = [f for f in exchange.handle.app.faults.injected if f.op == "cancel"]

    assert result.outcome is ReplaceOutcome.GAVE_UP, result
    assert result.reason == "cancel_unproven"
    assert result.new_intent_id == ""
    steps = [s.state for s in events_of(store, ReplaceStepped) if s.replace_id == result.replace_id]
    assert steps == ["DEGRADE_CANCEL", "GAVE_UP"]
    # The old order still works, the journal knows it is live, the new one never existed.
    assert resting == {old}
    assert not old_in_journal.is_terminal
    new_coids = {client_order_id("sc", "r2b", Role.ENTRY, g) for g in range(3)}
    assert accepted_coids(exchange.engine, new_coids) == []
    assert not [e for e in events_of(store, OrderSending) if e.intent_id == "r2b"]
    # Every attempt the Router may make was made, lied to, and cross-checked.
    assert len(lies) == config.router.cancel_max_attempts
    assert all(f.kind is FaultKind.CANCEL_UNKNOWN_BUT_LIVE for f in lies)
    failures = [f for f in events_of(store, CancelFailed) if f.client_order_id == old]
    assert all(f.still_open for f in failures)  # each lie was caught by the status check
    assert [f.reason for f in failures].count("retries_exhausted") == 1
    assert failures[-1].reason == "retries_exhausted"
    assert len(failures) == config.router.cancel_max_attempts + 1
    assert any(p.cause == "replace_race" for p in events_of(store, PressureRaised))


async def test_a_cancel_that_never_takes_schedules_no_retry_after_its_last_attempt() -> None:
    base = fast_config()
    config = fast_config(router=attrs.evolve(base.router, cancel_max_attempts=2))
    attempts = config.router.cancel_max_attempts
    with trio.fail_after(TEST_LIMIT_S):
        async with loopback_exchange() as exchange:
            store = Store.open(":memory:")
            async with running_process(exchange, store, config=config) as system:
                await ready_for_entries(system)
                await between_reads(system)
                assert (
                    await system.submit(limit_intent("r3", "59000"), reference_price=REF)
                ).accepted
                await until(acked(system, "r3"))
                coid = only_coid(system, "r3")
                await exchange.schedule_faults(
                    FaultSpec(0.0, 600.0, FaultKind.CANCEL_UNKNOWN_BUT_LIVE)
                )
                await system.cancel("r3", reason="strategy")

                def exhausted() -> bool:
                    return any(
                        f.client_order_id == coid and f.reason == "retries_exhausted"
                        for f in events_of(store, CancelFailed)
                    )

                await until(exhausted)
                lies = [f for f in exchange.handle.app.faults.injected if f.op == "cancel"]
            retries = [
                r
                for r in events_of(store, RetryScheduled)
                if r.client_order_id == coid and r.operation == Operation.CANCEL.value
            ]

    assert len(lies) == attempts  # the venue saw every attempt
    # A retry is scheduled between attempts, not after the last one.
    assert [r.attempt for r in retries] == list(range(1, attempts))


# ------------------------------------------------------------------------------ 3. restart


def _ghost_orders() -> dict[str, OrderRequest]:
    """Orders other clients leave on the account while scalper is down.

    * ``ghost_entry``: our prefix and format, an intent the journal never saw, buying: what
      a lost acknowledgement from an older install leaves behind. CANCEL
      (``ours_unknown_intent_entry``): adopting it would create exposure nobody decided.
    * ``ghost_exit``: our prefix, reduce-only, while a position is open. ADOPT
      (``protective_for_open_position``).
    * ``foreign``: someone else's id (a person in the web UI). FREEZE (``foreign_order``):
      not ours to touch; entries on the symbol stop until an operator looks.
    """
    ghost_entry = client_order_id("sc", "ghost-entry", Role.ENTRY, 0)
    ghost_exit = client_order_id("sc", "ghost-exit", Role.EXIT, 0)
    return {
        "ghost_entry": OrderRequest(
            BTC,
            Side.BUY,
            OrderType.LIMIT,
            ghost_entry,
            D("0.002"),
            D("58000"),
            time_in_force=TimeInForce.GTC,
        ),
        "ghost_exit": OrderRequest(
            BTC,
            Side.SELL,
            OrderType.LIMIT,
            ghost_exit,
            D("0.001"),
            D("62000"),
            time_in_force=TimeInForce.GTC,
            reduce_only=True,
        ),
        "foreign": OrderRequest(
            BTC,
            Side.BUY,
            OrderType.LIMIT,
            "web_manual_7",
            D("0.002"),
            D("58000"),
            time_in_force=TimeInForce.GTC,
        ),
    }


@attrs.frozen
class Restarted:
    """What the kill-and-restart scenario leaves for the assertions."""

    exchange: Exchange
    rows: list[tuple[str, str, int]]
    x1_before: OrderRecord
    x1_after: OrderRecord
    x1_coids: set[str]
    ghosts: dict[str, VenueOrder]
    halts_at_start: dict[str, str]
    halts_now: dict[str, str]
    refused: IntentReceipt
    intents: dict[str, set[str]]
    journal_position: Decimal
    stops: list[VenueOrder]


async def _kill_and_restart(tmp_path: Path) -> Restarted:
    """Run process 1 until it is killed mid-send, change the account, run process 2.

    Process 1 opens a protected 0.002 BTC long, rests a take-profit exit, is halted by the
    operator, and dies (CrashPoint AFTER_SEND_BEFORE_OUTCOME, kind PROCESS) right after the
    exchange accepted a reduce-only exit ``x1``, whose stream events are held back: the
    journal knows only that x1 was being sent. While no process runs, x1 fills and other
    clients leave three orders on the account (:func:`_ghost_orders`). Process 2 starts on
    the same file journal and the same exchange; the exchange answers its first status
    queries with 503 (nothing executed) for half a second, so the startup trade backfill
    reads x1's fill before the Router's resolver learns x1's venue order id.
    """
    path = tmp_path / "journal.db"
    crash = CrashPoints()
    async with loopback_exchange() as exchange:
        # ---- process 1: a protected position, a resting exit, a halt, then death
        store = Store.open(path)
        try:
            with pytest.raises(BaseExceptionGroup) as killed:  # noqa: PT012 - the run is the statement
                async with running_process(exchange, store, crash_points=crash) as system:
                    state = system.journal.state
                    await _open_protected_position(exchange, system)
                    await between_reads(system)
                    # A take-profit resting above the market (an exit: a halt keeps it).
                    take_profit = limit_intent("tp1", "61000", "0.001", Side.SELL, exit_=True)
                    assert (await system.submit(take_profit)).accepted
                    await until(acked(system, "tp1"))
                    await system.halt("hands off")
                    await until(lambda: state.halted)
                    # Exits are never halted (I1). This one reaches the exchange and the
                    # process dies before it can journal the answer; its stream events are
                    # held back, so nothing else tells this process either.
                    await exchange.schedule_faults(
                        FaultSpec(0.0, 1.0, FaultKind.STREAM_DELAY, params={"delay_s": 5.0})
                    )
                    crash.arm(CrashPoint.AFTER_SEND_BEFORE_OUTCOME, CrashKind.PROCESS)
                    exit_x1 = limit_intent("x1", "60100", "0.001", Side.SELL, exit_=True)
                    assert (await system.submit(exit_x1)).accepted
                    await trio.sleep(TEST_LIMIT_S)  # until killed
            rows = [(e.type, e.payload, e.wall_ms) for e in store.entries()]
        finally:
            store.close()
        assert killed.group_contains(ProcessCrash, depth=None)
        assert crash.fired == [CrashPoint.AFTER_SEND_BEFORE_OUTCOME.value]
        # What the dead process left: x1 written ahead and sent, its outcome unknown, and
        # no clean stop journaled.
        (x1_before,) = AccountState.replay(rows).orders_for_intent("x1")
        assert x1_before.is_unresolved
        assert rows[-1][0] != "system_stopped"

        # ---- while nobody runs: the in-flight exit fills, other clients leave orders
        x1_coids = {client_order_id("sc", "x1", Role.EXIT, g) for g in range(3)}
        assert accepted_coids(exchange.engine, x1_coids) == [x1_before.client_order_id]
        await exchange.set_price("60200")  # the resting exit at 60100 fills
        assert exchange.position() == D("0.001")
        ghosts = {
            name: await exchange.place_as_another_client(request)
            for name, request in _ghost_orders().items()
        }
        ghost_entry_id = ghosts["ghost_entry"].order_id
        await exchange.schedule_faults(
            FaultSpec(0.0, 0.5, FaultKind.SERVICE_UNAVAILABLE_503, operations={"query"})
        )

        # ---- process 2: same file journal, same exchange
        store = Store.open(path)
        try:
            # The last process did not journal its stop: this is crash recovery.
            assert restart_reason_for(store) == "crash_recovery"
            async with running_process(exchange, store, restart_reason="crash_recovery") as system:
                state = system.journal.state
                halts_at_start = dict(state.halts)
                await until(lambda: not state.unresolved_orders())
                await until(lambda: state.position(BTC) == D("0.001"))
                await until(lambda: BTC in state.frozen_symbols)
                await until(lambda: ghosts["ghost_exit"].client_order_id in state.orders)

                def ghost_entry_cancelled() -> bool:
                    return any(
                        c.correlation_id == f"orphan:{ghost_entry_id}"
                        for c in events_of(store, CancelResolved)
                    )

                await until(ghost_entry_cancelled)
                refused = await system.submit(market_entry("after"), reference_price=REF)
                await trio.sleep(1.0)  # a late duplicate or a double-counted fill lands
                (x1_after,) = state.orders_for_intent("x1")
                result = Restarted(
                    exchange=exchange,
                    rows=[],
                    x1_before=x1_before,
                    x1_after=x1_after,
                    x1_coids=x1_coids,
                    ghosts=ghosts,
                    halts_at_start=halts_at_start,
                    halts_now=dict(state.halts),
                    refused=refused,
                    intents={
                        i: {o.client_order_id for o in state.orders_for_intent(i)}
                        for i in state.intents
                    },
                    journal_position=state.position(BTC),
                    stops=exchange.open_stops(),
                )
            rows = [(e.type, e.payload, e.wall_ms) for e in store.entries()]
        finally:
            store.close()
    return attrs.evolve(result, rows=rows)


async def test_kill_and_restart_on_the_same_journal_and_exchange(tmp_path: Path) -> None:
    with trio.fail_after(TEST_LIMIT_S):
        r = await _kill_and_restart(tmp_path)
    engine = r.exchange.engine

    # The durable halt survived the kill; new entries are still refused.
    assert r.halts_at_start == {"operator": "hands off"}
    assert r.halts_now.get("operator") == "hands off"
    assert (r.refused.accepted, r.refused.reason) == (False, "halted")

    # No duplicate order: every intent has at most one order accepted by the exchange, in
    # both lives of the system; the crashed exit exactly one, found by query, not resent.
    for intent_id, coids in r.intents.items():
        assert len(accepted_coids(engine, coids)) <= 1, intent_id
    assert accepted_coids(engine, r.x1_coids) == [r.x1_before.client_order_id]
    assert r.x1_after.client_order_id == r.x1_before.client_order_id
    assert r.x1_after.ledger_state is LedgerState.FILLED
    resolved = [e for e in events_of_rows(r.rows, OrderResolved) if e.intent_id == "x1"]
    assert [(e.resolution, e.evidence) for e in resolved] == [(Resolution.PRESENT, "query")]
    # The take-profit rested through the kill and the restart.
    tp1 = client_order_id("sc", "tp1", Role.EXIT, 0)
    assert engine.order_detail(BTC, client_order_id=tp1).status is VenueOrderStatus.NEW

    # No lost fill: every trade of the account is journaled exactly once, including the
    # one executed while no process was running (found by the restart's backfill).
    truth = sorted((f.trade_id for f in engine.history.fills(BTC)), key=int)
    fills = events_of_rows(r.rows, FillApplied)
    assert sorted((f.fill.trade_id for f in fills), key=int) == truth
    assert len(truth) == 2  # the entry's and the exit's
    assert r.journal_position == r.exchange.position() == D("0.001")
    assert "position_synced" not in [t for t, _, _ in r.rows]  # fills explained it all
    # The position is still protected at the exchange (the stop was resized to it).
    assert sum((s.quantity or D(0) for s in r.stops), D(0)) == D("0.001")

    # Every orphan got exactly one decision, journaled, and the exchange shows it.
    ghost_entry_id = r.ghosts["ghost_entry"].order_id
    adopted = events_of_rows(r.rows, OrderAdopted)
    assert [a.client_order_id for a in adopted] == [r.ghosts["ghost_exit"].client_order_id]
    orphan_cancels = [
        c for c in events_of_rows(r.rows, CancelResolved) if c.correlation_id.startswith("orphan:")
    ]
    assert [c.correlation_id for c in orphan_cancels] == [f"orphan:{ghost_entry_id}"]
    frozen = events_of_rows(r.rows, SymbolFrozen)
    assert [(f.symbol, f.frozen) for f in frozen] == [(BTC, True)]
    assert "foreign_order" in frozen[0].reason
    status = {
        name: engine.order_detail(BTC, order_id=order.order_id).status
        for name, order in r.ghosts.items()
    }
    assert status == {
        "ghost_entry": VenueOrderStatus.CANCELED,
        "ghost_exit": VenueOrderStatus.NEW,  # adopted: ours to manage, left working
        "foreign": VenueOrderStatus.NEW,  # frozen: never touched
    }
    # The CANCELed ghost never became an intent of ours.
    assert not any(intent_digest("ghost-entry") in i for i in r.intents)


async def test_a_fill_found_before_its_order_is_resolved_is_attributed_to_its_intent(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TEST_LIMIT_S):
        r = await _kill_and_restart(tmp_path)
    (truth,) = [
        f for f in r.exchange.engine.history.fills(BTC) if f.order_id == r.x1_after.venue_order_id
    ]
    (fill,) = [f for f in events_of_rows(r.rows, FillApplied) if f.fill.trade_id == truth.trade_id]
    assert fill.source == "backfill"  # read while x1's outcome was still unknown
    assert (fill.intent_id, fill.correlation_id) == ("x1", "x1")
    assert fill.fill.client_order_id == r.x1_after.client_order_id
    assert r.x1_after.filled_qty == D("0.001")
