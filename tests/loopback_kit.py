"""Fixtures for end-to-end tests over real loopback sockets (``tests/test_loopback_e2e.py``).

Theory of operation
-------------------

Nothing in-process sits between the actors and the matching engine: the
:class:`~scalper.system.System` talks to :class:`~scalper.venues.binance.client.BinanceVenue`
(signed REST over httpx, the user stream over a real WebSocket), which talks to
:func:`~scalper.venues.sim.server.serve_sim_exchange` on ``127.0.0.1``. The engine behind
the server is the ground truth (I4: the wire is evidence, the history is truth); tests read
it directly and never hand it to the system.

Pieces:

* :func:`loopback_exchange` starts the seeded server (one still BTCUSDT at 60000, no
  slippage, a fast ticker) and yields an :class:`Exchange`: the engine, the admin surface
  over HTTP (fault schedules, price moves) and a factory of fresh adapters.
* :func:`running_process` is one *process*: a fresh clock read from the server, a fresh
  adapter with its own HTTP connections, and a System on the given store. A second
  process on the same store and the same exchange is a restart.
* :func:`fast_config` is production wiring with every interval shrunk to real-time
  fractions of a second (the same idea as ``scalper.serve.demo_pace``, only shorter), so
  that posture earns entries back within a couple of seconds and each test stays within
  about fifteen seconds of wall time. :func:`server_config` scales the exchange's request
  weight budget by the same factor (:data:`SCALED_WEIGHT_PER_MINUTE`).
* Ground-truth readers: :func:`max_concurrently_open` walks the engine history and counts
  how many of a set of orders were open at once; :func:`accepted_coids` lists what the
  exchange accepted.

Every wait is bounded (:func:`until`); a test that needs longer has a bug.
"""

import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, TypeVar

import attrs
import httpx
import trio

from scalper.actors.belief import BeliefConfig
from scalper.actors.evidence import CollectorConfig
from scalper.actors.replace import ReplaceManagerConfig
from scalper.actors.router import RouterConfig
from scalper.clock import Clock
from scalper.core.intents import Intent, IntentKind
from scalper.core.model import OrderRequest, VenueOrder
from scalper.core.posture import PostureConfig, PostureMode
from scalper.core.reconcile import ReconcileConfig
from scalper.core.types import OrderType, Side
from scalper.crashpoints import CrashPoints
from scalper.messages import BackfillCompleted, Event, decode_event
from scalper.store.store import Store
from scalper.system import System, SystemConfig, open_system
from scalper.venues.binance.client import BinanceVenue
from scalper.venues.binance.config import BinanceConfig
from scalper.venues.binance.signing import ApiCredentials
from scalper.venues.sim.engine import SimConfig, SimEngine
from scalper.venues.sim.faults import FaultSpec
from scalper.venues.sim.ratelimit import RateLimitConfig
from scalper.venues.sim.records import AlgoTriggered, FillRecorded, OrderAccepted, OrderClosed
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
#: The exchange's seed: same seed, same exchange (the market is still; ids are sequential).
SERVER_SEED = 11

_E = TypeVar("_E")


def fast_config(**overrides: Any) -> SystemConfig:
    """Production wiring and rules, every interval shrunk to fractions of a real second.

    Posture boots ORANGE as in production and earns entries back through clean reconciles
    of real snapshots (0.3 s of recovery instead of minutes). Reconcile's lag grace and
    repair cooldown shrink with the snapshot interval (0.2 s): over loopback a round trip
    takes milliseconds, not seconds.
    """
    config = SystemConfig(
        symbols=(BTC,),
        seed=1,
        posture=PostureConfig(
            base_max_notional=D(1000),
            boot_mode=PostureMode.ORANGE,
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
        # Scaled like the snapshot interval: reconcile does not judge orders younger than
        # the lag grace, and retries a repair kind per symbol once per cooldown (20 s in
        # production, about 50 snapshots; here 5).
        reconcile=ReconcileConfig(lag_grace_sec=1.0, repair_cooldown_sec=1.0),
        replace=ReplaceManagerConfig(reconcile_wait_s=8.0, new_order_wait_s=8.0, fill_wait_s=8.0),
    )
    # Overrides are whole sub-configs (``router=...``), validated by SystemConfig itself.
    return attrs.evolve(config, **overrides)


#: Binance's 2400 request weight per minute, scaled like every interval of :func:`fast_config`.
#: A snapshot costs about 90 weight; production takes one every 5 s, these tests every 0.2 s
#: (25 times as often), so the budget is 25 times Binance's. With the unscaled budget the
#: weight runs out about five seconds into a run, every read is answered 429 until the
#: minute turns, and posture goes RED: a rate-limit scenario, not the one under test.
SCALED_WEIGHT_PER_MINUTE = 2400 * 25


def server_config(*faults: FaultSpec) -> SimServerConfig:
    """One still BTCUSDT at 60000, no slippage, a 20 ms ticker, the demo account."""
    engine = SimConfig(
        symbols=(still_symbol(),),
        slippage=None,
        rate_limits=RateLimitConfig(request_weight_per_minute=SCALED_WEIGHT_PER_MINUTE),
    )
    return SimServerConfig(
        symbols=(BTC,), engine=engine, tick_interval_s=0.02, faults=faults, seed=SERVER_SEED
    )


@attrs.define
class Exchange:
    """A running loopback exchange: ground truth, admin levers and adapter factory."""

    handle: SimServerHandle
    admin_http: httpx.AsyncClient

    @property
    def engine(self) -> SimEngine:
        """The ground-truth engine (what the system never sees)."""
        return self.handle.engine

    def position(self) -> Decimal:
        """The venue's BTCUSDT position (one-way mode)."""
        return self.engine.position_qty(BTC)

    def open_stops(self) -> list[VenueOrder]:
        """Our protective stops resting at the venue right now (algo orders, ``sc-S-`` ids)."""
        return [
            o
            for o in self.engine.open_orders(BTC, algo=True)
            if o.client_order_id.startswith("sc-S-")
        ]

    def new_clock(self) -> Clock:
        """One epoch for a process and the exchange: the server's time, read once."""
        return Clock(
            epoch_ms_at_start=self.handle.app.venue_time_ms(),
            trio_time_at_start=trio.current_time(),
        )

    def binance_config(self) -> BinanceConfig:
        """The adapter's configuration pointed at this server, with quick reconnects."""
        return BinanceConfig.custom(
            self.handle.rest_url,
            self.handle.private_ws_url,
            reconnect_backoff_initial_s=0.01,
            reconnect_backoff_max_s=0.05,
            request_timeout_s=3.0,
            connect_timeout_s=1.0,
        )

    @asynccontextmanager
    async def adapter(self, clock: Clock) -> AsyncIterator[BinanceVenue]:
        """A fresh Binance adapter with its own HTTP connection pool (closed on exit)."""
        async with BinanceVenue(
            self.binance_config(), CREDS, wall_clock_ms=clock.wall_ms, clock=clock.now
        ) as venue:
            yield venue

    async def admin(self, method: str, path: str, body: object = None) -> httpx.Response:
        """One authenticated request to the server's admin surface."""
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

    async def set_price(self, price: str) -> None:
        """Move BTCUSDT's mark (= mid) over the admin API; crossed orders fill at once."""
        answer = await self.admin("POST", "/price", {"symbol": BTC, "price": price})
        assert answer.status_code == 200, answer.text

    async def place_as_another_client(self, request: OrderRequest) -> VenueOrder:
        """Place an order over the wire with the same account's keys, outside scalper.

        What a second program, a person in the web UI, or a lost acknowledgement leaves
        behind: an order at the venue that our journal never saw.
        """
        async with self.adapter(self.new_clock()) as other:
            return await other.create_order(request)


@asynccontextmanager
async def loopback_exchange(*faults: FaultSpec) -> AsyncIterator[Exchange]:
    """Start the server on a free loopback port; stop it on exit."""
    async with trio.open_nursery() as nursery:
        handle: SimServerHandle = await nursery.start(serve_sim_exchange, server_config(*faults))
        try:
            async with httpx.AsyncClient(timeout=5.0) as admin_http:
                yield Exchange(handle, admin_http)
        finally:
            handle.stop()
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_process(
    exchange: Exchange,
    store: Store,
    *,
    config: SystemConfig | None = None,
    crash_points: CrashPoints | None = None,
    restart_reason: str = "start",
) -> AsyncIterator[System]:
    """One process: its own clock, its own adapter, a System on ``store``."""
    clock = exchange.new_clock()
    async with (
        exchange.adapter(clock) as venue,
        open_system(
            config or fast_config(),
            venue,
            store,
            clock=clock,
            crash_points=crash_points,
            restart_reason=restart_reason,
        ) as system,
    ):
        yield system


# ------------------------------------------------------------------------------ waiting


async def until(predicate: Callable[[], bool], *, limit_s: float = 8.0, step: float = 0.02) -> None:
    """Poll on real time (the state has no change notification); bounded by ``limit_s``."""
    with trio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110 - polling is the point
            await trio.sleep(step)


async def ready_for_entries(system: System) -> None:
    """Posture boots ORANGE; clean reconciles of real snapshots earn entries back."""
    await until(lambda: system.knobs.allow_entries)


def _routine_backfills(system: System) -> int:
    return sum(
        1
        for e in events_of(system.journal.store, BackfillCompleted)
        if e.correlation_id == "routine"
    )


async def between_reads(system: System) -> None:
    """Return right after a routine trade backfill and the reconcile pass that follows it.

    Orders sent in this quiet are reported by the stream, not by a backfill, and no REST
    snapshot taken before the order executes is compared with the journal after it (that
    race makes the Reconciler see an orphan position; it is not what these tests are about).
    """
    state = system.journal.state
    backfills = _routine_backfills(system)
    await until(lambda: _routine_backfills(system) > backfills, step=0.005)
    passes = state.count("reconcile_runs")
    await until(lambda: state.count("reconcile_runs") > passes, step=0.005)


# ------------------------------------------------------------------------------ intents


def market_entry(intent_id: str, qty: str = "0.002", side: Side = Side.BUY) -> Intent:
    """A market entry on BTCUSDT."""
    return Intent(intent_id=intent_id, symbol=BTC, side=side, quantity=D(qty))


def limit_intent(
    intent_id: str, price: str, qty: str = "0.002", side: Side = Side.BUY, *, exit_: bool = False
) -> Intent:
    """A resting GTC limit on BTCUSDT: an entry, or (``exit_``) a reduce-only exit."""
    return Intent(
        intent_id=intent_id,
        symbol=BTC,
        side=side,
        quantity=D(qty),
        order_type=OrderType.LIMIT,
        price=D(price),
        kind=IntentKind.EXIT if exit_ else IntentKind.ENTRY,
        reduce_only=exit_,
    )


def acked(system: System, intent_id: str) -> Callable[[], bool]:
    """A predicate: the intent has an order the venue acknowledged (resting or filled)."""
    state = system.journal.state
    return lambda: any(
        o.ledger_state.value in ("ACKED", "FILLED") for o in state.orders_for_intent(intent_id)
    )


def only_coid(system: System, intent_id: str) -> str:
    """The client order id of the intent's one order (fails if there are more)."""
    (order,) = system.journal.state.orders_for_intent(intent_id)
    return order.client_order_id


# ------------------------------------------------------------------------------ the journal


def events_of(store: Store, kind: type[_E]) -> list[_E]:
    """Every journaled event of ``kind``, in journal order."""
    out: list[_E] = []
    for entry in store.entries():
        event = decode_event(entry.type, entry.payload)
        if isinstance(event, kind):
            out.append(event)
    return out


def sequenced(store: Store) -> list[tuple[int, Event]]:
    """Every journaled event with its sequence number."""
    return [(e.seq, decode_event(e.type, e.payload)) for e in store.entries()]


# ------------------------------------------------------------------------------ ground truth


def accepted_coids(engine: SimEngine, coids: Iterable[str]) -> list[str]:
    """The client order ids among ``coids`` the exchange accepted, once per acceptance."""
    wanted = set(coids)
    return [r.client_order_id for r in engine.history.accepted() if r.client_order_id in wanted]


def max_concurrently_open(engine: SimEngine, wanted: Callable[[str], bool]) -> int:
    """Walk the exchange's history; the most orders whose client id is ``wanted`` open at once.

    An order opens when accepted and closes when canceled or expired, fully filled, or (an
    algo order) triggered. This is the ground truth of "never two live at once".
    """
    remaining: dict[str, Decimal | None] = {}
    by_order_id: dict[str, str] = {}
    worst = 0
    for record in engine.history.records:
        if isinstance(record, OrderAccepted):
            if wanted(record.client_order_id) and record.parent_algo_id is None:
                remaining[record.client_order_id] = record.request.quantity
                by_order_id[record.order_id] = record.client_order_id
        elif isinstance(record, OrderClosed):
            remaining.pop(record.client_order_id, None)
        elif isinstance(record, AlgoTriggered):
            coid = by_order_id.get(record.algo_id)
            if coid is not None:
                remaining.pop(coid, None)
        elif isinstance(record, FillRecorded):
            coid = record.fill.client_order_id
            left = remaining.get(coid)
            if left is not None:
                left -= record.fill.quantity
                if left <= 0:
                    del remaining[coid]
                else:
                    remaining[coid] = left
        worst = max(worst, len(remaining))
    return worst
