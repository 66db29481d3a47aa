"""The dead-man switch against the in-process exchange, under MockClock."""

from decimal import Decimal

import pytest
import trio

from scalper.actors.deadman import DeadmanConfig
from scalper.core.errors import Operation
from scalper.core.intents import Intent
from scalper.core.model import VenueOrder
from scalper.core.types import OrderType, Side, TimeInForce
from scalper.messages import DeadmanChanged, DeadmanFailed, decode_event
from scalper.store.store import Store
from scalper.system import System
from scalper.venues.base import VenueError
from scalper.venues.sim.inproc import InProcessVenue
from scalper.venues.sim.records import CloseReason, OrderClosed
from tests.test_system import REF, make_venue, ready_for_entries, running, until
from tests.venues.sim.simkit import BTC, make_engine

D = Decimal


def resting_bid(intent_id: str) -> Intent:
    # Far below the mid: it rests and never fills.
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=Side.BUY,
        quantity=D("0.002"),
        order_type=OrderType.LIMIT,
        price=D("55000"),
        time_in_force=TimeInForce.GTC,
    )


def deadman_events(system: System) -> list[DeadmanChanged | DeadmanFailed]:
    out: list[DeadmanChanged | DeadmanFailed] = []
    for e in system.journal.store.entries():
        if e.type in ("deadman_changed", "deadman_failed"):
            event = decode_event(e.type, e.payload)
            assert isinstance(event, DeadmanChanged | DeadmanFailed)
            out.append(event)
    return out


async def test_armed_while_orders_rest_and_disarmed_after(autojump_clock) -> None:
    venue = make_venue()
    async with running(venue) as system:
        await ready_for_entries(system)
        assert (await system.submit(resting_bid("b1"), reference_price=REF)).accepted
        await until(lambda: BTC in system.deadman.armed, step=0.1)
        armed_deadline = venue.engine._countdowns.get(BTC)
        await system.cancel("b1")
        await until(lambda: BTC not in system.deadman.armed, step=0.1)
        disarmed = venue.engine._countdowns.get(BTC)
        events = deadman_events(system)
    assert armed_deadline is not None
    assert disarmed is None
    changes = [e for e in events if isinstance(e, DeadmanChanged)]
    assert [c.armed for c in changes][-2:] == [True, False]
    assert changes[-2].countdown_ms == 60_000


async def test_a_silent_process_has_its_resting_orders_cancelled_by_the_exchange(
    autojump_clock,
) -> None:
    venue = make_venue()
    store = Store.open(":memory:")
    async with running(venue, store) as system:
        await ready_for_entries(system)
        assert (await system.submit(resting_bid("b2"), reference_price=REF)).accepted
        await until(lambda: BTC in system.deadman.armed, step=0.1)
        # Keep it alive past several countdowns: the heartbeat holds the order in the book.
        await trio.sleep(200)
        assert [o.client_order_id for o in venue.engine.open_orders(BTC)]
    # The process is gone (no disarm on the way out: a crash does not say goodbye).
    await trio.sleep(61)
    venue.engine.advance_to(trio.current_time())
    closed = [
        r
        for r in venue.engine.history.records
        if isinstance(r, OrderClosed) and r.reason is CloseReason.COUNTDOWN
    ]
    assert venue.engine.open_orders(BTC) == ()
    assert len(closed) == 1


class _NoCountdown(InProcessVenue):
    async def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> None:
        raise VenueError.transport(
            request_written=False, operation=Operation.OTHER, detail="connect timeout"
        )


async def test_a_starving_switch_is_journaled_and_presses_the_posture(autojump_clock) -> None:
    venue = _NoCountdown(make_engine(seed=3), None, clock=trio.current_time)
    async with running(venue) as system:
        await ready_for_entries(system)
        assert (await system.submit(resting_bid("b3"), reference_price=REF)).accepted
        await until(lambda: "pressure_raised" in [e.type for e in system.journal.store.entries()])
        pressures = system.belief.active_pressures()
        resting: list[VenueOrder] = list(venue.engine.open_orders(BTC))
    failed = [e for e in deadman_events(system) if isinstance(e, DeadmanFailed)]
    assert [f.consecutive for f in failed][:2] == [1, 2]
    assert "deadman:BTCUSDT:deadman_starving" in pressures
    assert len(resting) == 1  # nothing was cancelled on our side: it is a warning


def test_a_heartbeat_that_does_not_fit_the_countdown_is_refused() -> None:
    with pytest.raises(ValueError, match="third of countdown_ms"):
        DeadmanConfig(countdown_ms=30_000, heartbeat_s=15.0)
    with pytest.raises(ValueError, match="countdown_ms"):
        DeadmanConfig(countdown_ms=10)
