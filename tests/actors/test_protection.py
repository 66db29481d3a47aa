"""The ProtectionManager end to end: the whole system on the in-process exchange, MockClock.

The engine's history is the ground truth: what stops really rested, when, and in which
order they were placed and cancelled (the system never reads it).
"""

from decimal import Decimal

import trio

from scalper.actors.protection import leg_coverage
from scalper.core.errors import Operation, classify_error
from scalper.core.model import OrderRequest, VenueOrder
from scalper.core.posture import PostureMode
from scalper.core.protection import CoverageStatus
from scalper.core.types import OrderType, PositionSide, Side
from scalper.messages import PostureChanged, PressureRaised, ProtectionRepair, decode_event
from scalper.store.store import Store
from scalper.system import System
from scalper.venues.base import VenueError
from scalper.venues.sim.inproc import InProcessVenue
from scalper.venues.sim.market import BookConfig
from scalper.venues.sim.records import OrderAccepted, OrderClosed
from tests.test_system import (
    REF,
    entry,
    exit_,
    journal_types,
    make_venue,
    ready_for_entries,
    running,
    until,
    venue_position,
)
from tests.venues.sim.simkit import BTC, make_engine, still_symbol

D = Decimal
LEG = (BTC, PositionSide.BOTH)


def stops_at_venue(venue: InProcessVenue) -> list[VenueOrder]:
    """Open stop orders at the venue (ground truth)."""
    return [
        o
        for o in venue.engine.open_orders(BTC)
        if o.order_type in (OrderType.STOP_MARKET, OrderType.STOP)
    ]


def stop_accepts(venue: InProcessVenue) -> list[OrderAccepted]:
    return [r for r in venue.engine.history.accepted() if r.client_order_id.startswith("sc-S-")]


def repairs(system: System) -> list[ProtectionRepair]:
    out = []
    for e in system.journal.store.entries():
        if e.type == "protection_repair":
            event = decode_event(e.type, e.payload)
            assert isinstance(event, ProtectionRepair)
            out.append(event)
    return out


def covered(system: System) -> bool:
    coverage, _ = leg_coverage(system.journal.state, LEG)
    return coverage.status is CoverageStatus.COVERED


async def test_a_filled_entry_gets_a_reduce_only_stop_within_the_gap_ttl(autojump_clock) -> None:
    venue = make_venue()
    async with running(venue) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("e1"), reference_price=REF)).accepted
        await until(lambda: venue_position(venue) == D("0.002"), step=0.05)
        filled_at = trio.current_time()
        await until(lambda: len(stops_at_venue(venue)) == 1, step=0.05)
        placed_after = trio.current_time() - filled_at
        stop = stops_at_venue(venue)[0]
        await until(lambda: covered(system), step=0.05)
        gap_now = system.unprotected_seconds()
    assert placed_after < system.config.protection.protection.gap_ttl_seconds
    # A sell stop, below the entry, reduce-only, for exactly the filled size.
    assert stop.side is Side.SELL
    assert stop.reduce_only
    assert stop.quantity == D("0.002")
    assert stop.stop_price is not None
    assert stop.stop_price < REF
    assert gap_now == {}
    first = repairs(system)[0]
    assert first.status == "uncovered"
    assert first.correlation_id.startswith("protect:BTCUSDT")


async def test_a_partial_fill_is_protected_and_the_stop_grows_with_later_fills(
    autojump_clock,
) -> None:
    # A thin book: a 0.003 market buy takes 0.001 per level, one level only; the rest
    # expires. Then a second entry adds to the position: the stop must be resized, with
    # the new stop placed before the old one is cancelled (no naked window).
    symbol = still_symbol(book=BookConfig(level_qty=D("0.002"), levels=1))
    engine = make_engine(symbol=symbol, seed=3)
    venue = InProcessVenue(engine, None, clock=trio.current_time)
    async with running(venue) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("p1", "0.003"), reference_price=REF)).accepted
        await until(lambda: venue_position(venue) == D("0.002"), step=0.05)
        await until(lambda: covered(system), step=0.05)
        first_stop = stops_at_venue(venue)
        await trio.sleep(60)  # the posture's entry cooldown
        await ready_for_entries(system)
        receipt = await system.submit(entry("p2", "0.002"), reference_price=REF)
        assert receipt.accepted, receipt
        await until(lambda: venue_position(venue) == D("0.004"), step=0.05)
        await until(lambda: [s.quantity for s in stops_at_venue(venue)] == [D("0.004")], step=0.05)
        history = venue.engine.history
    assert [s.quantity for s in first_stop] == [D("0.002")]
    accepts = stop_accepts(venue)
    assert len(accepts) == 2
    old_id, new_id = accepts[0].order_id, accepts[1].order_id
    closed_old = [r for r in history.records if isinstance(r, OrderClosed) and r.order_id == old_id]
    assert len(closed_old) == 1
    # Place-new-then-cancel-old: the replacement was accepted before the old one closed.
    assert accepts[1].seq < closed_old[0].seq
    assert new_id != old_id


async def test_a_stop_that_vanishes_at_the_venue_is_replaced(autojump_clock) -> None:
    venue = make_venue()
    async with running(venue) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("v1"), reference_price=REF)).accepted
        await until(lambda: len(stops_at_venue(venue)) == 1, step=0.05)
        gone = stops_at_venue(venue)[0]
        # Someone (a UI click, an exchange-side expiry) removes our stop behind our back.
        venue.engine.cancel_order(BTC, order_id=gone.order_id, now=trio.current_time())
        await until(
            lambda: [s.order_id for s in stops_at_venue(venue)] not in ([], [gone.order_id]),
            step=0.05,
        )
        replacement = stops_at_venue(venue)
    assert len(replacement) == 1
    assert replacement[0].quantity == D("0.002")
    assert replacement[0].reduce_only
    assert any(r.status == "uncovered" for r in repairs(system)[1:])


async def test_stops_are_placed_and_repaired_while_halted(autojump_clock) -> None:
    # Protection is an exit: a halt may not block it (I1, I9); the halt also blocks entries.
    venue = make_venue()
    async with running(venue) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("h1"), reference_price=REF)).accepted
        await until(lambda: venue_position(venue) == D("0.002"), step=0.05)
        await system.halt("incident drill")
        # Take the stop away while halted: it must come back anyway.
        await until(lambda: len(stops_at_venue(venue)) == 1, step=0.05)
        venue.engine.cancel_order(
            BTC, order_id=stops_at_venue(venue)[0].order_id, now=trio.current_time()
        )
        await until(lambda: len(stops_at_venue(venue)) == 1, limit_s=60, step=0.05)
        assert system.journal.state.halted
        refused = await system.submit(entry("h2"), reference_price=REF)
    assert not refused.accepted
    assert refused.reason == "halted"
    assert len(stop_accepts(venue)) == 2


class _StopsRejected(InProcessVenue):
    """The venue refuses every stop (-4045: reach max stop order limit), definitively."""

    async def create_order(self, req: OrderRequest) -> VenueOrder:
        if req.order_type.is_conditional:
            verdict = classify_error(
                400, -4045, "Reach max stop order limit.", operation=Operation.CREATE
            )
            raise VenueError(verdict, "Reach max stop order limit.", Operation.CREATE)
        return await super().create_order(req)


class _StopsLost(InProcessVenue):
    """Every stop create times out after being written, and never reaches the book."""

    async def create_order(self, req: OrderRequest) -> VenueOrder:
        if req.order_type.is_conditional:
            await trio.sleep(1.0)
            raise VenueError.transport(
                request_written=True, operation=Operation.CREATE, detail="read timeout"
            )
        return await super().create_order(req)


async def test_an_unplaceable_stop_falls_back_to_a_reduce_only_exit(autojump_clock) -> None:
    # Every stop is refused: the ladder climbs to a close-position stop, then gives up on
    # stops and exits the uncovered position with a reduce-only market order.
    venue = _StopsRejected(make_engine(seed=3), None, clock=trio.current_time)
    async with running(venue) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("u1"), reference_price=REF)).accepted
        await until(lambda: venue_position(venue) == D("0.002"), step=0.05)
        await until(lambda: venue_position(venue) == 0, limit_s=300, step=0.5)
        reasons = [r.reason for r in repairs(system)]
        exits = [
            r for r in venue.engine.history.accepted() if r.client_order_id.startswith("sc-X-")
        ]
        await until(lambda: system.journal.state.position(BTC) == 0, step=0.05)
    assert reasons[:2] == ["resize_stop", "place_close_position_stop"]
    assert "stop_unplaceable_exit" in reasons
    assert len(exits) == 1
    assert exits[0].request.reduce_only
    assert exits[0].request.quantity == D("0.002")


async def test_a_gap_past_its_ttl_raises_posture_pressure(autojump_clock) -> None:
    # Stop creates time out and never land: the stop's fate stays unknown while the Router
    # proves it absent, the leg is uncovered, and after the TTL the posture must hear it.
    venue = _StopsLost(make_engine(seed=3), None, clock=trio.current_time)
    async with running(venue) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("g1"), reference_price=REF)).accepted
        await until(lambda: "pressure_raised" in journal_types(system), limit_s=120, step=0.5)
        pressures = system.belief.active_pressures()
        await trio.sleep(system.config.belief.tick_s * 2)
        entries_allowed = system.knobs.allow_entries
        gap = system.unprotected_seconds()
    events = [
        decode_event(e.type, e.payload)
        for e in system.journal.store.entries()
        if e.type == "pressure_raised"
    ]
    assert isinstance(events[0], PressureRaised)
    assert events[0].cause == "protection_gap_ttl_breach"
    assert events[0].symbol == BTC
    assert any(k.endswith("protection_gap_ttl_breach") for k in pressures)
    assert gap[BTC] > system.config.protection.protection.gap_ttl_seconds
    assert not entries_allowed


async def test_the_stop_is_cancelled_once_the_position_is_closed(autojump_clock) -> None:
    venue = make_venue()
    async with running(venue) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("c1"), reference_price=REF)).accepted
        await until(lambda: len(stops_at_venue(venue)) == 1, step=0.05)
        assert (await system.submit(exit_("c1x"))).accepted
        await until(lambda: venue_position(venue) == 0, step=0.05)
        await until(lambda: stops_at_venue(venue) == [], step=0.05)
        await until(lambda: not system.journal.state.live_orders(), step=0.05)
    assert [r.reason for r in repairs(system)][-1] == "flat_stale_stops"


async def test_a_restarted_process_protects_a_position_it_finds_naked(autojump_clock) -> None:
    # The process died after the fill, before any stop: the next one must cover the leg
    # from the journal alone (and not place a second stop if one is already there).
    venue = make_venue()
    store = Store.open(":memory:")
    async with running(venue, store) as system:
        await ready_for_entries(system)
        assert (await system.submit(entry("r1"), reference_price=REF)).accepted
        await until(lambda: len(stops_at_venue(venue)) == 1, step=0.05)
        # The stop disappears while no process runs.
    venue.engine.cancel_order(
        BTC, order_id=stops_at_venue(venue)[0].order_id, now=trio.current_time()
    )
    async with running(venue, store, restart_reason="restart") as system:
        await until(lambda: len(stops_at_venue(venue)) == 1, limit_s=120, step=0.1)
        await trio.sleep(30)
        live_stops = stops_at_venue(venue)
    assert len(live_stops) == 1
    assert len(stop_accepts(venue)) == 2


def _journaled(system: System, type_: str) -> list[object]:
    return [
        decode_event(e.type, e.payload) for e in system.journal.store.entries() if e.type == type_
    ]


async def test_a_run_of_entries_is_covered_before_the_ttl_despite_the_refresh_budget(
    autojump_clock,
) -> None:
    # The chaos gate's dribble-fills run, no faults: five 0.002 market entries 12 s apart.
    # The first four fills force resizes (coverage below 0.8); the fifth leaves the stop at
    # 0.008/0.010 = 0.8, not severe, while four resizes already sit in the 60 s budget of
    # three. The budget may delay that resize, but never past the gap TTL: no breach, no
    # gap pressure on the posture.
    venue = make_venue()
    gaps: list[float] = []

    async def sample_gaps(system: System) -> None:
        while True:
            gaps.append(system.unprotected_seconds().get(BTC, 0.0))
            await trio.sleep(0.25)

    async with running(venue) as system, trio.open_nursery() as nursery:
        await ready_for_entries(system)
        # GREEN's entry cooldown (8 s) admits entries 12 s apart, as the chaos run sends them.
        await until(lambda: system.knobs.mode is PostureMode.GREEN)
        nursery.start_soon(sample_gaps, system)
        for i in range(5):
            receipt = await system.submit(entry(f"run{i}"), reference_price=REF)
            assert receipt.accepted, receipt
            await until(lambda n=i: venue_position(venue) == D("0.002") * (n + 1), step=0.05)
            if i < 4:
                await trio.sleep(12)
        await until(lambda: covered(system), limit_s=60, step=0.05)
        await trio.sleep(60)  # long past any TTL: a late breach would be journaled by now
        final = stops_at_venue(venue)
        halted = system.journal.state.halted
        nursery.cancel_scope.cancel()
    ttl = system.config.protection.protection.gap_ttl_seconds
    lead = system.config.protection.protection.force_before_ttl_seconds
    pressures = [p for p in _journaled(system, "pressure_raised") if isinstance(p, PressureRaised)]
    assert [p.cause for p in pressures] == []
    # The budget did hold the fifth resize back (the gap grew to its due time), and the
    # TTL-due force closed it before the TTL, not after it.
    assert ttl - lead <= max(gaps) < ttl
    reasons = [r.trigger.rsplit(":", 1)[-1] for r in repairs(system)]
    assert reasons.count("force_ttl_due") == 1
    assert "force_ttl_breach" not in reasons
    assert [s.quantity for s in final] == [D("0.010")]
    # No posture change was driven by the gap (a breach shows up as its cause tag and as
    # extra pressure), and the posture never reached RED: the kill switch never halted.
    postures = [p for p in _journaled(system, "posture_changed") if isinstance(p, PostureChanged)]
    for p in postures:
        assert "extra_pressure" not in p.causes, p
        assert "protection_gap_ttl_breach" not in p.causes, p
    assert all(p.mode != PostureMode.RED for p in postures), postures
    assert not halted
