"""The actor system over real sockets: Binance adapter against the loopback exchange server.

The same :class:`~scalper.system.System` as ``tests/test_system.py``, but nothing is
in-process between the actors and the matching engine: the Router and the Evidence
Collector talk to :class:`~scalper.venues.binance.client.BinanceVenue`, which signs REST
requests and sends them with httpx over TCP and reads the user stream over a real
WebSocket; :func:`~scalper.venues.sim.server.serve_sim_exchange` verifies, executes and
answers in Binance's wire format. Faults are scheduled through the server's admin surface
(over HTTP too). The engine's history is the ground truth the journal is checked against
(I4: the wire is evidence, the history is truth).

Time is trio's real clock: the intervals of every actor are shortened (snapshots every
0.2 s, posture ticks every 0.1 s, posture recovery in a fraction of a second) so that each
test takes a few seconds. Posture boots ORANGE as in production and has to earn entries
back through clean reconciles of real snapshots. The System's clock, the adapter's request
timestamps and the exchange all agree on one epoch: the system's :class:`~scalper.clock.Clock`
is built from the server's time, read once at start.

Book arithmetic (BTCUSDT, still price, no slippage): mid 60000, so a 0.002 BTC market
order is a 120 USDT entry, above Binance's 100 USDT minimum notional.
"""

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal

import attrs
import httpx
import trio

from scalper.actors.belief import BeliefConfig
from scalper.actors.evidence import CollectorConfig
from scalper.actors.router import RouterConfig
from scalper.clock import Clock
from scalper.core.intents import Intent, IntentKind
from scalper.core.posture import PostureConfig, PostureMode
from scalper.core.types import Side
from scalper.messages import BackfillCompleted, FillApplied, OrderResolved, Resolution, decode_event
from scalper.state import AccountState
from scalper.store.store import Store
from scalper.system import System, SystemConfig, open_system
from scalper.venues.binance.client import BinanceVenue
from scalper.venues.binance.config import BinanceConfig
from scalper.venues.binance.signing import ApiCredentials
from scalper.venues.sim.engine import SimConfig, SimEngine
from scalper.venues.sim.faults import FaultKind, FaultSpec
from scalper.venues.sim.server import (
    DEMO_ADMIN_TOKEN,
    DEMO_API_KEY,
    DEMO_API_SECRET,
    SimServerConfig,
    SimServerHandle,
    serve_sim_exchange,
)
from tests.venues.sim.simkit import still_symbol

D = Decimal
BTC = "BTCUSDT"
REF = D("60000")
CREDS = ApiCredentials(DEMO_API_KEY, DEMO_API_SECRET.encode())
ORDER_PATH = "/fapi/v1/order"

# Every wait in these tests is bounded; a test that needs longer than this has a bug.
TEST_LIMIT_S = 20.0


def system_config() -> SystemConfig:
    """Production wiring, production posture rules, intervals shrunk to real-time seconds."""
    return SystemConfig(
        symbols=(BTC,),
        posture=PostureConfig(
            base_max_notional=D(1000),
            boot_mode=PostureMode.ORANGE,  # as in production: entries are earned back
            recover_s=0.3,
            persist_s=0.3,
            post_red_warmup_s=0.5,
            unlock_contradiction_clear_s=0.5,
            base_entry_cooldown_s=0.1,
            cooldown_extra_s=0.2,
        ),
        collector=CollectorConfig(
            snapshot_interval_s=0.2,
            request_timeout_s=3.0,
            reconnect_delay_s=0.05,
            reconnect_max_s=0.5,
            # The FILLS source counts as fresh only after a backfill, and posture needs it
            # fresh to recover: the routine backfill paces the first entries.
            backfill_interval_s=0.5,
            stream_heartbeat_s=0.5,
        ),
        belief=BeliefConfig(tick_s=0.1),
        router=RouterConfig(
            request_timeout_s=3.0,
            recv_window_ms=5000,
            absent_query_gap_s=0.2,
            resolve_interval_s=0.5,
            resolve_max_s=5.0,
        ),
    )


def server_config(*faults: FaultSpec) -> SimServerConfig:
    """One still BTCUSDT, no slippage, a fast ticker, the demo account."""
    engine = SimConfig(symbols=(still_symbol(),), slippage=None)
    return SimServerConfig(symbols=(BTC,), engine=engine, tick_interval_s=0.02, faults=faults)


@attrs.define
class Wire:
    """A running loopback exchange, an adapter pointed at it, and the shared clock."""

    handle: SimServerHandle
    venue: BinanceVenue
    clock: Clock
    admin_http: httpx.AsyncClient
    sent: list[str] = attrs.field(factory=list)

    @property
    def engine(self) -> SimEngine:
        """The ground-truth engine (what the system never sees)."""
        return self.handle.engine

    def venue_position(self) -> Decimal:
        return self.engine.position_qty(BTC)

    def creates_sent(self) -> int:
        """``POST /fapi/v1/order`` requests the adapter wrote to the socket."""
        return self.sent.count(f"POST {ORDER_PATH}")

    async def admin(self, method: str, path: str, body: object = None) -> httpx.Response:
        content = None if body is None else json.dumps(body)
        return await self.admin_http.request(
            method,
            f"{self.handle.admin_url}{path}",
            content=content,
            headers={"Authorization": f"Bearer {DEMO_ADMIN_TOKEN}"},
        )

    async def schedule_faults(self, *specs: FaultSpec) -> None:
        """Install ``specs`` over the admin API, their windows relative to the server's now."""
        schedule = [spec.to_dict() for spec in specs]
        answer = await self.admin("PUT", "/faults", {"schedule": schedule, "relative": True})
        assert answer.status_code == 200, answer.text


@asynccontextmanager
async def on_the_wire(*faults: FaultSpec) -> AsyncIterator[Wire]:
    """Start the server on a free loopback port and build the adapter; tear both down."""
    async with trio.open_nursery() as nursery:
        handle: SimServerHandle = await nursery.start(serve_sim_exchange, server_config(*faults))
        # One epoch for everyone: the system's wall clock is the server's, read once.
        clock = Clock(
            epoch_ms_at_start=handle.app.venue_time_ms(), trio_time_at_start=trio.current_time()
        )
        sent: list[str] = []

        async def log(request: httpx.Request) -> None:
            sent.append(f"{request.method} {request.url.path}")

        config = BinanceConfig.custom(
            handle.rest_url,
            handle.private_ws_url,
            reconnect_backoff_initial_s=0.01,
            reconnect_backoff_max_s=0.05,
            request_timeout_s=3.0,
            connect_timeout_s=1.0,
        )
        try:
            async with (
                httpx.AsyncClient(timeout=5.0, event_hooks={"request": [log]}) as http,
                httpx.AsyncClient(timeout=5.0) as admin_http,
            ):
                venue = BinanceVenue(
                    config, CREDS, wall_clock_ms=clock.wall_ms, clock=clock.now, http=http
                )
                yield Wire(handle, venue, clock, admin_http, sent)
        finally:
            handle.stop()
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def running(wire: Wire, store: Store | None = None) -> AsyncIterator[System]:
    store = store or Store.open(":memory:")
    async with open_system(system_config(), wire.venue, store, clock=wire.clock) as system:
        yield system


async def until(predicate: Callable[[], bool], *, limit_s: float = 8.0, step: float = 0.02) -> None:
    """Poll on real time (the state has no change notification); bounded."""
    with trio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110 - polling is the point
            await trio.sleep(step)


async def ready_for_entries(system: System) -> None:
    """Posture boots ORANGE; clean reconciles of real snapshots earn entries back."""
    await until(lambda: system.knobs.allow_entries)


def routine_backfills(system: System) -> int:
    """Routine trade backfills journaled so far."""
    count = 0
    for e in system.journal.store.entries():
        if e.type == "backfill_completed":
            event = decode_event(e.type, e.payload)
            assert isinstance(event, BackfillCompleted)
            count += event.correlation_id == "routine"
    return count


def reconcile_passes(system: System) -> int:
    """Reconcile passes journaled so far."""
    return journal_types(system).count("reconcile_completed")


async def between_reads(system: System) -> None:
    """Return right after a routine trade backfill and the reconcile pass that follows it.

    Orders in these tests are sent in the quiet that follows, for two reasons. A fill
    reaches the journal over the stream within milliseconds, while the next routine
    backfill is ``backfill_interval_s`` away: the stream is what reports it. And a REST
    snapshot that is in flight while an order executes shows the account before the fill,
    while the Reconciler compares it with the journal after the fill and takes the stale
    size for an orphan venue position: a race of its own, not what these tests are about.
    """
    backfills = routine_backfills(system)
    await until(lambda: routine_backfills(system) > backfills, step=0.005)
    reconciles = reconcile_passes(system)
    await until(lambda: reconcile_passes(system) > reconciles, step=0.005)


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


def journal_types(system: System) -> list[str]:
    return [e.type for e in system.journal.store.entries()]


def journaled_fills(system: System) -> list[FillApplied]:
    fills = []
    for e in system.journal.store.entries():
        if e.type == "fill_applied":
            event = decode_event(e.type, e.payload)
            assert isinstance(event, FillApplied)
            fills.append(event)
    return fills


def settled(system: System, intent_id: str) -> Callable[[], bool]:
    """A predicate: the intent is no longer open (done or rejected)."""
    return lambda: system.journal.state.intents[intent_id].status.value != "open"


def coids_of(system: System, intent_id: str) -> set[str]:
    return {o.client_order_id for o in system.journal.state.orders_for_intent(intent_id)}


# ------------------------------------------------------------------------------ entry, exit


async def test_entry_fills_over_the_stream_and_a_reduce_only_exit_flattens() -> None:
    with trio.fail_after(TEST_LIMIT_S):
        async with on_the_wire() as wire, running(wire) as system:
            assert not system.knobs.allow_entries  # boots ORANGE
            refused = await system.submit(entry("early"), reference_price=REF)
            assert (refused.accepted, refused.reason) == (False, "posture_blocks_entries")
            await ready_for_entries(system)

            await between_reads(system)
            receipt = await system.submit(entry("e1"), reference_price=REF)
            assert receipt.accepted, receipt
            state = system.journal.state
            await until(lambda: state.position(BTC) == D("0.002"))
            assert wire.venue_position() == D("0.002")
            assert state.intents["e1"].status.value == "done"

            await between_reads(system)
            receipt = await system.submit(exit_("x1"))
            assert receipt.accepted, receipt
            await until(lambda: state.position(BTC) == 0)
            assert wire.venue_position() == 0
            await until(lambda: not state.live_orders())

            truth = wire.engine.history.fills(BTC)
            fills = journaled_fills(system)
            entry_coids, exit_coids = coids_of(system, "e1"), coids_of(system, "x1")
            accepted = [r.client_order_id for r in wire.engine.history.accepted()]
        types = journal_types(system)

    assert types[0] == "system_started"
    assert types[-1] == "system_stopped"
    for needed in ("intent_accepted", "order_sending", "order_acked", "fill_applied"):
        assert needed in types
    assert types.index("order_sending") < types.index("order_acked")  # journal before send
    # The happy path over the wire needs no repair and trips nothing.
    assert "position_synced" not in types
    assert "halt_changed" not in types
    # Exactly the two orders we meant, once each, at the venue (I7), plus the one
    # protective stop the ProtectionManager placed for the filled entry (I9), which it
    # cancelled again once the exit left the leg flat.
    stops = [c for c in accepted if c.startswith("sc-S-")]
    assert sorted(c for c in accepted if c not in stops) == sorted(entry_coids | exit_coids)
    assert len(entry_coids) == len(exit_coids) == 1
    assert len(stops) == 1
    assert "protection_repair" in types
    # Every fill the venue executed is journaled exactly once, and these came over the
    # WebSocket user stream, not by REST backfill (I10).
    assert len(truth) >= 2
    assert sorted((f.fill.trade_id for f in fills), key=int) == sorted(
        (f.trade_id for f in truth), key=int
    )
    assert {f.fill.client_order_id for f in fills} == entry_coids | exit_coids
    assert all(f.source == "stream" for f in fills), [f.source for f in fills]
    exit_fills = [f for f in fills if f.fill.client_order_id in exit_coids]
    assert sum(f.fill.quantity for f in exit_fills) == D("0.002")
    assert all(f.fill.side is Side.SELL for f in exit_fills)


# ------------------------------------------------------------------------------ ambiguity


async def test_503_unknown_on_create_is_resolved_by_query_with_no_second_order() -> None:
    # The order is placed, the answer is HTTP 503 -1000 "Unknown error": the Router must
    # journal the ambiguity, find the order by query, and never send it again (I7). The
    # user stream lags (its events are held 1.5 s) so the query, not the stream, is what
    # resolves the order.
    with trio.fail_after(TEST_LIMIT_S):
        async with on_the_wire() as wire, running(wire) as system:
            await ready_for_entries(system)
            await wire.schedule_faults(
                FaultSpec(0.0, 60.0, FaultKind.UNKNOWN_503_PLACED, operations={"create"}),
                FaultSpec(0.0, 60.0, FaultKind.STREAM_DELAY, params={"delay_s": 1.5}),
            )
            await between_reads(system)
            receipt = await system.submit(entry("amb"), reference_price=REF)
            assert receipt.accepted, receipt
            state = system.journal.state
            await until(lambda: "order_resolved" in journal_types(system))
            await until(lambda: not state.unresolved_orders())
            await until(lambda: state.position(BTC) == D("0.002"))
            # Let the held stream events arrive, and a resend, were there one, land.
            await trio.sleep(2.0)
            orders = state.orders_for_intent("amb")
            coids = {o.client_order_id for o in orders}
            types = journal_types(system)
            # The ProtectionManager's stop meets the same 503 (its resolution is its own);
            # this test follows the entry.
            resolutions = [
                decode_event(e.type, e.payload)
                for e in system.journal.store.entries()
                if e.type == "order_resolved" and e.intent_id == "amb"
            ]
            fills = journaled_fills(system)
            accepted = [r for r in wire.engine.history.accepted() if r.client_order_id in coids]
            truth = wire.engine.history.fills(BTC)
            injected = {f.kind for f in wire.handle.app.faults.injected}
            creates = wire.creates_sent()
            queries = wire.sent.count(f"GET {ORDER_PATH}")
            position = (wire.venue_position(), state.position(BTC))

    assert FaultKind.UNKNOWN_503_PLACED in injected
    assert creates == 1  # the ambiguity was resolved by query, never by a resend
    assert queries >= 1
    assert len(orders) == 1
    assert orders[0].generation == 0
    assert orders[0].is_terminal
    assert len(accepted) == 1
    assert position == (D("0.002"), D("0.002"))
    assert types.index("order_sending") < types.index("order_outcome_unknown")
    assert types.index("order_outcome_unknown") < types.index("order_resolved")
    assert len(resolutions) == 1
    resolved = resolutions[0]
    assert isinstance(resolved, OrderResolved)
    assert resolved.resolution is Resolution.PRESENT
    assert resolved.evidence == "query"
    assert resolved.client_order_id in coids
    # The fill is journaled once, whichever copy came first (the REST backfill or the
    # held stream event): the late one is not applied a second time (I10).
    assert [f.fill.trade_id for f in fills] == [f.trade_id for f in truth]


async def test_503_unknown_racing_the_stream_still_places_exactly_one_order() -> None:
    # Over real sockets the server pushes ORDER_TRADE_UPDATE before it answers 503, so the
    # stream's NEW and TRADE can reach the journal before (or after) the Router learns the
    # create was ambiguous. Whichever evidence wins, the outcome is the same: one order,
    # the right position, nothing left unresolved, no contradiction in the ledger.
    with trio.fail_after(TEST_LIMIT_S):
        async with on_the_wire() as wire, running(wire) as system:
            await ready_for_entries(system)
            await wire.schedule_faults(
                FaultSpec(0.0, 60.0, FaultKind.UNKNOWN_503_PLACED, operations={"create"})
            )
            await between_reads(system)
            receipt = await system.submit(entry("race"), reference_price=REF)
            assert receipt.accepted, receipt
            state = system.journal.state
            await until(lambda: "order_outcome_unknown" in journal_types(system))
            await until(lambda: not state.unresolved_orders())
            await until(lambda: state.position(BTC) == D("0.002"))
            await trio.sleep(1.0)  # a resend, were there one, would land by now
            orders = state.orders_for_intent("race")
            coids = {o.client_order_id for o in orders}
            accepted = [r for r in wire.engine.history.accepted() if r.client_order_id in coids]
            injected = [f.kind for f in wire.handle.app.faults.injected]
            creates = wire.creates_sent()
            position = (wire.venue_position(), state.position(BTC))
            intent_status = state.intents["race"].status.value
            contradictions = list(state.contradictions)

    # The entry and the ProtectionManager's stop both meet the fault.
    assert set(injected) == {FaultKind.UNKNOWN_503_PLACED}
    assert creates == 1  # plain-order creates: the entry, once (the stop is an algo order)
    assert len(orders) == 1
    assert orders[0].is_terminal
    assert len(accepted) == 1
    assert position == (D("0.002"), D("0.002"))
    assert intent_status == "done"
    assert contradictions == []


# ------------------------------------------------------------------------------ I5


async def test_replaying_the_journal_rebuilds_the_live_state() -> None:
    with trio.fail_after(TEST_LIMIT_S):
        async with on_the_wire() as wire, running(wire) as system:
            await ready_for_entries(system)
            state = system.journal.state
            for intent_id, qty in (("r0", "0.002"), ("r1", "0.003")):
                await between_reads(system)  # also waits out the entry cooldown
                assert (await system.submit(entry(intent_id, qty), reference_price=REF)).accepted
                await until(settled(system, intent_id))
            await until(lambda: state.position(BTC) == D("0.005"))
            await between_reads(system)
            assert (await system.submit(exit_("rx", "0.005"))).accepted
            await until(lambda: state.position(BTC) == 0)
            live = state.fingerprint()
            rows = [(e.type, e.payload, e.wall_ms) for e in system.journal.store.entries()]
        after_stop = [(e.type, e.payload, e.wall_ms) for e in system.journal.store.entries()]
        final = system.journal.state.fingerprint()

    assert wire.venue_position() == 0
    assert {"fill_applied", "reconcile_completed"} <= {t for t, _, _ in rows}
    assert AccountState.replay(rows).fingerprint() == live
    # And after the stop (the system's last words included) the same holds.
    assert AccountState.replay(after_stop).fingerprint() == final
