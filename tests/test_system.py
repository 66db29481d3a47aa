"""The actor system end to end, on the in-process simulated exchange under simulated time.

Every test runs under trio's MockClock with autojump: waiting out a recvWindow, a posture
recovery window or a backoff costs no real time. The exchange's ground truth (the engine's
history) is read directly to check what really happened, which the system never sees.
"""

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import pytest
import trio
import trio.testing

from scalper.clock import simulated_clock
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import VenueOrder
from scalper.core.types import OrderType, Side
from scalper.crashpoints import CrashKind, CrashPoint, CrashPoints, ProcessCrash
from scalper.determinism import run_deterministic
from scalper.messages import decode_event
from scalper.state import AccountState
from scalper.store.store import Store
from scalper.system import System, SystemConfig, open_system
from scalper.venues.sim.faults import FaultInjector, FaultSpec
from scalper.venues.sim.inproc import InProcessVenue
from scalper.venues.sim.records import OrderAccepted
from tests.venues.sim.simkit import BTC, make_engine

D = Decimal
REF = D("60000")


def make_venue(*faults: FaultSpec, seed: int = 3) -> InProcessVenue:
    engine = make_engine(seed=seed)
    injector = FaultInjector(faults, random.Random(seed)) if faults else None
    return InProcessVenue(engine, injector, clock=trio.current_time)


@asynccontextmanager
async def running(
    venue: InProcessVenue,
    store: Store | None = None,
    *,
    crash_points: CrashPoints | None = None,
    seed: int = 1,
    restart_reason: str = "start",
) -> AsyncIterator[System]:
    store = store or Store.open(":memory:")
    config = SystemConfig(symbols=(BTC,), seed=seed)
    async with open_system(
        config,
        venue,
        store,
        clock=simulated_clock(),
        crash_points=crash_points,
        restart_reason=restart_reason,
    ) as system:
        yield system


async def until(predicate, *, limit_s: float = 600.0, step: float = 0.5) -> None:
    """Poll the system's state on virtual time (the state has no change notification)."""
    with trio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110 - polling virtual time is the point
            await trio.sleep(step)


async def ready_for_entries(system: System) -> None:
    """Posture boots ORANGE; clean reconciles earn entries back (virtual minutes)."""
    await until(lambda: system.knobs.allow_entries)


def entry(intent_id: str, qty: str = "0.002", side: Side = Side.BUY) -> Intent:
    return Intent(intent_id=intent_id, symbol=BTC, side=side, quantity=D(qty))


def exit_(intent_id: str, qty: str = "0.002", side: Side = Side.SELL) -> Intent:
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=side,
        quantity=D(qty),
        kind=IntentKind.EXIT,
        reduce_only=True,
    )


def accepted_for(venue: InProcessVenue, intent_coids: list[str]) -> list[OrderAccepted]:
    return [r for r in venue.engine.history.accepted() if r.client_order_id in intent_coids]


def journal_types(system: System) -> list[str]:
    return [e.type for e in system.journal.store.entries()]


def venue_position(venue: InProcessVenue) -> Decimal:
    return sum((p.quantity for p in venue.engine.positions() if p.symbol == BTC), D(0))


# ------------------------------------------------------------------------------ basics


async def test_entry_fill_and_exit_against_the_simulated_exchange(autojump_clock) -> None:
    venue = make_venue()
    async with running(venue) as system:
        assert not system.knobs.allow_entries  # boots ORANGE
        receipt = await system.submit(entry("e1"), reference_price=REF)
        assert not receipt.accepted
        assert receipt.reason == "posture_blocks_entries"
        await ready_for_entries(system)
        receipt = await system.submit(entry("e2"), reference_price=REF)
        assert receipt.accepted, receipt
        await until(lambda: system.journal.state.position(BTC) == D("0.002"))
        assert venue_position(venue) == D("0.002")
        # The exit takes its own lane: halt entries first, the exit still goes (I1).
        await system.halt("test halt")
        assert not (await system.submit(entry("e3"), reference_price=REF)).accepted
        receipt = await system.submit(exit_("x1"))
        assert receipt.accepted, receipt
        await until(lambda: system.journal.state.position(BTC) == 0)
        assert venue_position(venue) == 0
    types = journal_types(system)
    assert types[0] == "system_started"
    assert types[-1] == "system_stopped"
    for needed in ("intent_accepted", "order_sending", "order_acked", "fill_applied"):
        assert needed in types
    # Journal before send: every order_sending precedes its ack.
    assert types.index("order_sending") < types.index("order_acked")


async def test_duplicate_intent_has_no_second_effect(autojump_clock) -> None:
    venue = make_venue()
    async with running(venue) as system:
        await ready_for_entries(system)
        first = await system.submit(entry("dup"), reference_price=REF)
        second = await system.submit(entry("dup"), reference_price=REF)
        assert first.accepted
        assert not second.accepted
        assert second.reason == "duplicate_intent"
        await until(lambda: system.journal.state.position(BTC) == D("0.002"))
        await trio.sleep(30)
    entries = [r for r in venue.engine.history.accepted() if r.client_order_id.startswith("sc-E-")]
    assert len(entries) == 1


# ------------------------------------------------------------------------------ ambiguity


async def test_503_unknown_on_create_is_resolved_by_query_with_no_second_order(
    autojump_clock,
) -> None:
    # The order is placed, the answer is 503 "Unknown error": the Router must find it by
    # query, never resend.
    fault = FaultSpec(
        start=0.0, end=100_000.0, kind="UNKNOWN_503_PLACED", operations=frozenset({"create"})
    )
    venue = make_venue(fault)
    async with running(venue) as system:
        await ready_for_entries(system)
        receipt = await system.submit(entry("amb"), reference_price=REF)
        assert receipt.accepted
        await until(lambda: not system.journal.state.unresolved_orders())
        await until(lambda: system.journal.state.position(BTC) == D("0.002"))
        types = journal_types(system)
        state = system.journal.state
        orders = state.orders_for_intent("amb")
    assert "order_outcome_unknown" in types
    assert "order_resolved" in types
    assert len(orders) == 1
    coids = [o.client_order_id for o in orders]
    assert len(accepted_for(venue, coids)) == 1
    assert venue_position(venue) == D("0.002")


async def test_503_unknown_not_placed_proves_absent_then_sends_next_generation(
    autojump_clock,
) -> None:
    fault = FaultSpec(
        start=0.0,
        end=100_000.0,
        kind="UNKNOWN_503_NOT_PLACED",
        probability=1.0,
        operations=frozenset({"create"}),
    )
    venue = make_venue(fault)
    async with running(venue) as system:
        await ready_for_entries(system)
        # Every create fails unknown-and-not-placed: each generation is proven ABSENT,
        # up to max_generations, and never more than one is ever live.
        receipt = await system.submit(entry("abs"), reference_price=REF)
        assert receipt.accepted
        await until(lambda: system.journal.state.intents["abs"].status.value != "open")
        state = system.journal.state
        orders = state.orders_for_intent("abs")
        rec = state.intents["abs"]
    assert [o.generation for o in orders] == [0, 1, 2]
    assert all(o.ledger_state.value == "ABSENT" for o in orders)
    assert rec.status.value == "rejected"
    assert rec.reason == "generations_exhausted"
    assert venue.engine.history.accepted() == ()


async def test_cancel_answered_2011_while_live_is_not_success(autojump_clock) -> None:
    fault = FaultSpec(
        start=0.0,
        end=100_000.0,
        kind="CANCEL_UNKNOWN_BUT_LIVE",
    )
    venue = make_venue(fault)
    async with running(venue) as system:
        await ready_for_entries(system)
        intent = Intent(
            intent_id="rest",
            symbol=BTC,
            side=Side.BUY,
            quantity=D("0.002"),
            order_type=OrderType.LIMIT,
            price=D("59000"),
        )
        assert (await system.submit(intent, reference_price=REF)).accepted
        await until(
            lambda: (
                system.journal.state.open_entry_orders(BTC) == 1
                and not system.journal.state.unresolved_orders()
            )
        )
        await system.cancel("rest")
        await until(lambda: "cancel_failed" in journal_types(system))
        order = system.journal.state.orders_for_intent("rest")[0]
        # The order is still live at the venue, and the state does not claim otherwise.
        assert not order.is_terminal
        live = [o for o in venue.engine.open_orders() if o.client_order_id == order.client_order_id]
        assert live
        failures = [
            decode_event(e.type, e.payload)
            for e in system.journal.store.entries()
            if e.type == "cancel_failed"
        ]
    assert any(getattr(f, "still_open", False) for f in failures)


# ------------------------------------------------------------------------------ evidence


async def test_stream_gap_is_backfilled_with_no_lost_fill(autojump_clock) -> None:
    # A resting buy fills while the stream is down: the fill arrives by REST backfill after
    # the reconnect reports the gap, exactly once, and the position is never double counted.
    outage = FaultSpec(start=200.0, end=230.0, kind="STREAM_DISCONNECT")
    venue = make_venue(outage)
    intent = Intent(
        intent_id="gap",
        symbol=BTC,
        side=Side.BUY,
        quantity=D("0.002"),
        order_type=OrderType.LIMIT,
        price=D("59990"),
    )
    async with running(venue) as system:
        await ready_for_entries(system)
        assert trio.current_time() < 200.0
        assert (await system.submit(intent, reference_price=REF)).accepted
        state = system.journal.state
        await until(lambda: state.open_entry_orders(BTC) == 1 and not state.unresolved_orders())
        await trio.sleep_until(205.0)
        venue.engine.set_mark_price(BTC, D("59900"), now=trio.current_time())
        positions = []
        for _ in range(240):
            await trio.sleep(0.5)
            positions.append(state.position(BTC))
        fills = [
            decode_event(e.type, e.payload)
            for e in system.journal.store.entries()
            if e.type == "fill_applied"
        ]
        types = journal_types(system)
    truth = venue.engine.history.fills(BTC)
    assert len(truth) >= 1
    assert len(fills) == len(truth)
    assert {f.fill.trade_id for f in fills} == {f.trade_id for f in truth}  # type: ignore[union-attr]
    assert all(f.source == "backfill" for f in fills)  # type: ignore[union-attr]
    assert "stream_gap_observed" in types
    assert positions[-1] == D("0.002")
    assert max(positions) == D("0.002")  # never double counted


# ------------------------------------------------------------------------------ crashes


async def test_actor_crash_is_restarted_and_rebuilds_from_the_journal(autojump_clock) -> None:
    crash = CrashPoints()
    crash.arm(CrashPoint.AFTER_INTENT_DURABLE, CrashKind.ACTOR)
    venue = make_venue()
    async with running(venue, crash_points=crash) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("crash"), reference_price=REF)).accepted
        # The Router died between journal and send; restarted, it finds the SENDING order
        # in the journal, proves it ABSENT by query and ends the intent: no blind resend.
        await until(lambda: system.journal.state.intents["crash"].status.value != "open")
        types = journal_types(system)
        restarts = system.status().restarts
        order = system.journal.state.orders_for_intent("crash")[0]
    assert crash.fired == [CrashPoint.AFTER_INTENT_DURABLE.value]
    assert "actor_crashed" in types
    assert "actor_restarted" in types
    assert restarts["router"] == 1
    assert order.ledger_state.value == "ABSENT"
    assert venue.engine.history.accepted() == ()


async def test_process_restart_resolves_the_in_flight_order_and_keeps_the_halt(
    autojump_clock, tmp_path
) -> None:
    path = tmp_path / "journal.db"
    crash = CrashPoints()
    crash.arm(CrashPoint.AFTER_SEND_BEFORE_OUTCOME, CrashKind.PROCESS)
    venue = make_venue()
    store = Store.open(path)
    try:
        with pytest.raises(BaseExceptionGroup) as killed:  # noqa: PT012 - the run is the statement
            async with running(venue, store, crash_points=crash) as system:
                await ready_for_entries(system)
                assert (await system.submit(entry("inflight"), reference_price=REF)).accepted
                await trio.sleep(60)
    finally:
        store.close()
    assert killed.group_contains(ProcessCrash, depth=None)
    assert crash.fired == [CrashPoint.AFTER_SEND_BEFORE_OUTCOME.value]
    # The order was placed at the venue; the journal only knows it was being sent.
    assert len(venue.engine.history.accepted()) == 1
    store = Store.open(path)
    try:
        async with running(venue, store, restart_reason="crash") as system:
            state = system.journal.state
            await until(lambda: not state.unresolved_orders())
            await until(lambda: state.position(BTC) == D("0.002"))
            await system.halt("operator says stop")
    finally:
        store.close()
    assert len(venue.engine.history.accepted()) == 1  # resolved as present, never resent
    store = Store.open(path)
    try:
        async with running(venue, store, restart_reason="restart") as system:
            assert system.journal.state.halted  # the halt is durable
            await ready_for_entries(system)
            receipt = await system.submit(entry("after"), reference_price=REF)
            assert not receipt.accepted
            assert receipt.reason == "halted"
            # Exits are never blocked by a halt (I1).
            assert (await system.submit(exit_("flatten"))).accepted
            await until(lambda: system.journal.state.position(BTC) == 0)
    finally:
        store.close()


class _BrokenSnapshots(InProcessVenue):
    """A venue whose open-orders read fails with a bug (not a VenueError): the collector crashes."""

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        raise RuntimeError("adapter bug: cannot parse open orders")


async def test_restart_intensity_escalates_halts_and_stops_cleanly(autojump_clock) -> None:
    venue = _BrokenSnapshots(make_engine(seed=3), None, clock=trio.current_time)
    store = Store.open(":memory:")
    system = System(SystemConfig(symbols=(BTC,)), venue, store, clock=simulated_clock())
    with trio.fail_after(600):
        await system.run()  # returns on its own: the supervisor gave up
    events = [decode_event(e.type, e.payload) for e in store.entries()]
    types = [e.type for e in store.entries()]
    crashes = types.count("actor_crashed")
    assert crashes == system.config.supervisor.max_restarts + 1
    assert "supervisor_escalated" in types
    halts = [e for e in events if type(e).__name__ == "HaltChanged"]
    assert halts
    assert halts[-1].source == "supervisor"  # type: ignore[union-attr]
    assert halts[-1].halted  # type: ignore[union-attr]
    stopped = events[-1]
    assert type(stopped).__name__ == "SystemStopped"
    assert not stopped.clean  # type: ignore[union-attr]
    assert "escalated" in stopped.reason  # type: ignore[union-attr]
    # The halt is durable: a new system on the same journal starts halted.
    assert AccountState.replay((e.type, e.payload, e.wall_ms) for e in store.entries()).halted


async def test_terminal_ledger_rows_are_purged_after_their_ttl(autojump_clock) -> None:
    venue = make_venue()
    store = Store.open(":memory:")
    config = SystemConfig(symbols=(BTC,), ledger_ttl_s=600.0, ledger_purge_interval_s=60.0)
    system = System(config, venue, store, clock=simulated_clock())
    async with trio.open_nursery() as nursery:
        await nursery.start(system.run)
        await ready_for_entries(system)
        assert (await system.submit(entry("old"), reference_price=REF)).accepted
        await until(lambda: system.journal.state.position(BTC) == D("0.002"))
        coid = system.journal.state.orders_for_intent("old")[0].client_order_id
        assert store.ledger_row(coid) is not None
        await trio.sleep(300)
        assert store.ledger_row(coid) is not None  # younger than its TTL
        await trio.sleep(400)
        assert store.ledger_row(coid) is None
        assert system.journal.purged.get("FILLED") == 1
        # The journal keeps everything: the state still knows the order.
        assert coid in system.journal.state.orders
        system.stop()


# ------------------------------------------------------------------------------ I5 + determinism


async def test_replaying_the_journal_rebuilds_the_live_state(autojump_clock) -> None:
    venue = make_venue()
    async with running(venue) as system:
        for i in range(3):
            # Each fill leaves the leg briefly under-covered until the ProtectionManager
            # resizes its stop; posture waits for that, so wait for entries each time.
            await ready_for_entries(system)
            receipt = await system.submit(entry(f"r{i}"), reference_price=REF)
            assert receipt.accepted, receipt
            await trio.sleep(30)
        await until(lambda: system.journal.state.position(BTC) == D("0.006"))
        live = system.journal.state.fingerprint()
        rows = [(e.type, e.payload, e.wall_ms) for e in system.journal.store.entries()]
    assert "protection_repair" in {t for t, _, _ in rows}
    replayed = AccountState.replay(rows, prefix="sc")
    assert replayed.fingerprint() == live


def _one_run(seed: int) -> str:
    async def main() -> str:
        venue = make_venue(seed=seed)
        store = Store.open(":memory:")
        async with running(venue, store, seed=seed) as system:
            await ready_for_entries(system)
            await system.submit(entry("d1"), reference_price=REF)
            await trio.sleep(20)
            await system.submit(exit_("d2"))
            await trio.sleep(20)
        return "\n".join(
            f"{e.seq}|{e.wall_ms}|{e.type}|{e.payload}|{e.hash}" for e in store.entries()
        )

    return run_deterministic(main, seed=seed)


def test_same_seed_gives_byte_identical_journals() -> None:
    first = _one_run(11)
    second = _one_run(11)
    assert first == second
    assert "fill_applied" in first


def test_a_venue_signing_with_a_longer_recv_window_is_refused() -> None:
    # The ABSENT rule must wait out the window the venue actually signs with (I7).
    class _Config:
        recv_window_ms = 10_000

    class _Venue:
        name = "stub"
        config = _Config()

    async def main() -> None:
        with pytest.raises(ValueError, match=r"router.recv_window_ms \(5000\)"):
            System(SystemConfig(), _Venue(), Store.open(":memory:"), clock=simulated_clock())  # type: ignore[arg-type]

    trio.run(main)
