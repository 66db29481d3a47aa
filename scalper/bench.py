"""``python -m scalper bench``: measured performance of scalper's hot paths.

Performance is measured here, never asserted in timed unit tests. Each benchmark builds its
workload once, then times batches of calls with ``time.perf_counter`` (a measurement, not an
input to any decision, so it sits outside the injected-clock rule) and reports the median of
several repeats, which is robust to a noisy neighbour on a small machine.
"""

import random
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from scalper.core.errors import Operation, classify_error
from scalper.core.ids import IdFactory, Role, client_order_id, parse_client_order_id
from scalper.core.intents import Intent
from scalper.core.model import AccountSnapshot, VenueOrder, VenueOrderStatus, VenuePosition
from scalper.core.orders import OrderEvent, OrderEventKind, OrderTracker
from scalper.core.posture import BeliefDebt, PostureController
from scalper.core.reconcile import LocalOrder, LocalPosition, LocalView, Reconciler
from scalper.core.types import OrderType, PositionSide, Side

if TYPE_CHECKING:
    from scalper.messages import OrderSending

__all__ = ["BenchResult", "run_benchmarks"]


@attrs.frozen
class BenchResult:
    """One benchmark's figures: per-call latency and throughput (median of repeats)."""

    name: str
    calls: int
    median_us: float
    best_us: float

    @property
    def per_second(self) -> float:
        """Calls per second at the median latency."""
        return 1e6 / self.median_us if self.median_us > 0 else float("inf")


def _time(fn: Callable[[], object], calls: int, repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples), min(samples)


def _bench_ids() -> Callable[[], object]:
    ids = IdFactory(random.Random(1))
    intent_ids = [ids.new_intent_id() for _ in range(1000)]
    state = {"i": 0}

    def run() -> object:
        state["i"] = (state["i"] + 1) % len(intent_ids)
        coid = client_order_id("sc", intent_ids[state["i"]], Role.ENTRY, 0)
        return parse_client_order_id(coid, "sc")

    return run


def _bench_intent() -> Callable[[], object]:
    def run() -> object:
        return Intent(
            "i-1",
            "BTCUSDT",
            Side.BUY,
            Decimal("0.010"),
            order_type=OrderType.LIMIT,
            price=Decimal("65000.1"),
        ).to_order_request("sc-E-0123456789abcdef-0")

    return run


def _bench_classify() -> Callable[[], object]:
    def run() -> object:
        return classify_error(
            503,
            -1000,
            "Unknown error, please check your request or try again later.",
            operation=Operation.CREATE,
        )

    return run


def _bench_order_tracker() -> Callable[[], object]:
    def run() -> object:
        t = OrderTracker(quantity=Decimal(4), client_order_id="sc-E-0123456789abcdef-0")
        t.apply(OrderEvent(OrderEventKind.SEND), 0.0)
        t.apply(OrderEvent(OrderEventKind.ACK), 0.1)
        for i in range(4):
            kind = OrderEventKind.FILL_FULL if i == 3 else OrderEventKind.FILL_PARTIAL
            t.apply(
                OrderEvent(kind, trade_id=str(i), qty=Decimal(1), cum_qty=Decimal(i + 1)), 0.2 + i
            )
        return t

    return run


def _bench_posture() -> Callable[[], object]:
    ctl = PostureController()
    rng = random.Random(7)
    state = {"now": 0.0}

    def run() -> object:
        state["now"] += 1.0
        debt = BeliefDebt(
            mismatch_streak=rng.randint(0, 3), source_confidence=rng.uniform(0.6, 1.0)
        )
        return ctl.update(debt, state["now"])

    return run


def _reconcile_workload(n_orders: int) -> Callable[[], object]:
    symbols = [f"SYM{i}USDT" for i in range(10)]
    local = []
    venue = []
    for i in range(n_orders):
        sym = symbols[i % len(symbols)]
        coid = client_order_id("sc", f"i-{i}", Role.ENTRY, 0)
        local.append(
            LocalOrder(f"i-{i}", coid, sym, Side.BUY, Role.ENTRY, Decimal(1), placed_at=0.0)
        )
        venue.append(
            VenueOrder(
                sym,
                str(i),
                coid,
                Side.BUY,
                OrderType.LIMIT,
                VenueOrderStatus.NEW,
                Decimal(1),
                price=Decimal(100),
            )
        )
    view = LocalView(
        orders=tuple(local), positions=tuple(LocalPosition(s, Decimal(0)) for s in symbols)
    )
    rec = Reconciler()
    state = {"now": 100.0}

    def run() -> object:
        state["now"] += 30.0
        snap = AccountSnapshot(
            taken_at=state["now"],
            open_orders=tuple(venue),
            positions=tuple(VenuePosition(s, Decimal(0)) for s in symbols),
        )
        return rec.reconcile(view, snap, state["now"])

    return run


def _sending_event(i: int) -> "OrderSending":
    from scalper.messages import OrderSending

    intent_id = f"bench-{i}"
    coid = client_order_id("sc", intent_id, Role.ENTRY)
    intent = Intent(intent_id=intent_id, symbol="BTCUSDT", side=Side.BUY, quantity=Decimal("0.01"))
    return OrderSending(
        intent_id=intent_id,
        correlation_id=intent_id,
        client_order_id=coid,
        generation=0,
        request=intent.to_order_request(coid),
        risk_increasing=True,
        recv_window_ms=5000,
        sent_wall_ms=1_767_225_600_000 + i,
    )


def _bench_codec() -> Callable[[], object]:
    from scalper.messages import decode_event, encode_event, event_type

    event = _sending_event(1)
    kind = event_type(event)

    def run() -> object:
        return decode_event(kind, encode_event(event))

    return run


def _bench_state_apply() -> Callable[[], object]:
    from scalper.state import AccountState

    state = AccountState()
    events = [_sending_event(i) for i in range(100_000)]
    counter = {"i": 0}

    def run() -> object:
        i = counter["i"]
        counter["i"] = i + 1
        return state.apply(events[i], 1_767_225_600_000 + i)

    return run


def _bench_store_write(batch: int) -> Callable[[], object]:
    import atexit
    import shutil
    import tempfile

    from scalper.messages import encode_event
    from scalper.store.records import JournalRecord, WriteItem
    from scalper.store.store import Store

    folder = tempfile.mkdtemp(prefix="scalper-bench-")
    store = Store.open(f"{folder}/bench.db")
    atexit.register(shutil.rmtree, folder, True)
    atexit.register(store.close)
    payload = encode_event(_sending_event(1))
    items = [
        WriteItem(JournalRecord(type="order_sending", wall_ms=i, payload=payload, intent_id="b"))
        for i in range(batch)
    ]

    def run() -> object:
        return store.write(items)

    return run


def _bench_leg_coverage(live_orders: int) -> Callable[[], object]:
    """The ProtectionManager's assessment of one leg with ``live_orders`` orders in the ledger."""
    from scalper.actors.protection import leg_coverage
    from scalper.state import AccountState

    state = AccountState()
    for i in range(live_orders):
        state.apply(_sending_event(i), 1_767_225_600_000 + i)
    leg = ("BTCUSDT", PositionSide.BOTH)

    def run() -> object:
        return leg_coverage(state, leg)

    return run


BENCHMARKS: dict[str, tuple[Callable[[], Callable[[], object]], int]] = {
    "ids.derive+parse": (_bench_ids, 5000),
    "intents.validate+request": (_bench_intent, 5000),
    "errors.classify(503 create)": (_bench_classify, 5000),
    "orders.tracker(send,ack,4 fills)": (_bench_order_tracker, 1000),
    "posture.update": (_bench_posture, 2000),
    "reconcile(100 orders)": (lambda: _reconcile_workload(100), 50),
    "reconcile(1000 orders)": (lambda: _reconcile_workload(1000), 5),
    "messages.encode+decode(order_sending)": (_bench_codec, 2000),
    "state.apply(order_sending)": (_bench_state_apply, 2000),
    "store.write(1 record, fsync)": (lambda: _bench_store_write(1), 200),
    "store.write(32 records, 1 fsync)": (lambda: _bench_store_write(32), 50),
    "protection.leg_coverage(10 live orders)": (lambda: _bench_leg_coverage(10), 1000),
    "protection.leg_coverage(1000 live orders)": (lambda: _bench_leg_coverage(1000), 50),
}


def run_benchmarks(
    only: str | None = None, repeats: int = 5, scale: float = 1.0
) -> list[BenchResult]:
    """Run the benchmarks whose name contains ``only`` (all if ``None``)."""
    results = []
    for name, (factory, calls) in BENCHMARKS.items():
        if only and only not in name:
            continue
        n = max(1, int(calls * scale))
        median_us, best_us = _time(factory(), n, repeats)
        results.append(BenchResult(name, n, median_us, best_us))
    return results
