"""Property tests of the simulated exchange: random trading sessions, invariants on the truth.

A session is a generated list of plain-data operations (orders of every type, cancels,
resends of open and of closed client ids, price jumps, time passing) played against a
fresh engine whose mid walks randomly, with a thin book so that partial fills, sweeps and
knock-outs happen often. The invariants are checked against ``engine.history``.
"""

import contextlib
import random
from collections import defaultdict
from decimal import Decimal

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalper.core.model import OrderRequest, VenueOrderStatus
from scalper.core.types import OrderType, PositionMode, PositionSide, Side, TimeInForce
from scalper.venues.sim.engine import SimConfig, SimEngine, SymbolConfig
from scalper.venues.sim.errors import SimRejection
from scalper.venues.sim.filters import SymbolFilters
from scalper.venues.sim.market import BookConfig, PricePathConfig
from scalper.venues.sim.records import OrderTradeUpdate

D = Decimal
BTC = "BTCUSDT"
STEP = D("0.001")
TICK = D("0.10")
INITIAL_BALANCE = D(10_000_000)

sides = st.sampled_from([Side.BUY, Side.SELL])
qty_steps = st.integers(min_value=1, max_value=120)
legs = st.booleans()  # hedge mode: True is LONG, False is SHORT

operations = st.one_of(
    st.tuples(st.just("advance"), st.floats(min_value=0.1, max_value=15.0)),
    st.tuples(
        st.just("limit"),
        sides,
        qty_steps,
        st.integers(min_value=-150, max_value=150),
        st.sampled_from([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTX]),
        st.booleans(),
        legs,
    ),
    st.tuples(st.just("market"), sides, qty_steps, st.booleans(), legs),
    st.tuples(
        st.just("stop"),
        st.sampled_from([OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET]),
        sides,
        st.integers(min_value=1, max_value=300),
        st.booleans(),
        st.booleans(),
        qty_steps,
        legs,
    ),
    st.tuples(
        st.just("exit"),
        st.sampled_from([OrderType.MARKET, OrderType.LIMIT]),
        qty_steps,
        st.integers(min_value=-20, max_value=20),
        legs,
    ),
    st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("dup"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("reuse"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("jump"), st.integers(min_value=-150, max_value=150)),
)
sessions = st.lists(operations, min_size=8, max_size=50)
modes = st.sampled_from([PositionMode.ONE_WAY, PositionMode.HEDGE])


def session_config(mode: PositionMode) -> SimConfig:
    symbol = SymbolConfig(
        symbol=BTC,
        filters=SymbolFilters(min_notional=D(0)),
        path=PricePathConfig(initial_price=D(60000), volatility_bps=4.0, jump_probability=0.05),
        book=BookConfig(level_qty=D("0.03"), levels=3, resting_fill_qty=D("0.02")),
    )
    return SimConfig(symbols=(symbol,), position_mode=mode, initial_balance=INITIAL_BALANCE)


@attrs.define
class Session:
    engine: SimEngine
    duplicate_codes: list[tuple[bool, int]] = attrs.field(factory=list)
    reuse_codes: list[int | None] = attrs.field(factory=list)


def position_side(mode: PositionMode, long_leg: bool) -> PositionSide:
    if mode is PositionMode.ONE_WAY:
        return PositionSide.BOTH
    return PositionSide.LONG if long_leg else PositionSide.SHORT


def play(ops, mode: PositionMode, seed: int) -> Session:
    engine = SimEngine(session_config(mode), random.Random(seed))
    session = Session(engine)
    now = 0.0
    requests: dict[str, OrderRequest] = {}
    for n, op in enumerate(ops):
        now += 0.01
        kind = op[0]
        mid = engine.mark_price(BTC)
        request: OrderRequest | None = None
        if kind == "advance":
            now += op[1]
            engine.advance_to(now)
        elif kind == "jump":
            engine.set_mark_price(BTC, mid * (1 + D(op[1]) / 10_000), now=now)
        elif kind == "limit":
            _, side, steps, offset, tif, reduce_only, leg = op
            request = OrderRequest(
                BTC,
                side,
                OrderType.LIMIT,
                f"L{n}",
                STEP * steps,
                price=mid + TICK * offset,
                time_in_force=tif,
                reduce_only=reduce_only,
                position_side=position_side(mode, leg),
            )
        elif kind == "market":
            _, side, steps, reduce_only, leg = op
            request = OrderRequest(
                BTC,
                side,
                OrderType.MARKET,
                f"M{n}",
                STEP * steps,
                reduce_only=reduce_only,
                position_side=position_side(mode, leg),
            )
        elif kind == "stop":
            _, otype, side, offset, close, reduce_only, steps, leg = op
            above = (otype is OrderType.STOP_MARKET) == (side is Side.BUY)
            request = OrderRequest(
                BTC,
                side,
                otype,
                f"S{n}",
                None if close else STEP * steps,
                stop_price=mid + TICK * (offset if above else -offset),
                reduce_only=reduce_only and not close,
                close_position=close,
                position_side=position_side(mode, leg),
            )
        elif kind == "exit":
            # An order that points against an open position: reduce-only in one-way mode
            # (often larger than the position), a closing order in hedge mode.
            _, otype, steps, offset, leg = op
            side_of_leg = position_side(mode, leg)
            held = engine.position_qty(BTC, side_of_leg)
            if held == 0:
                continue
            side = Side.SELL if held > 0 else Side.BUY
            hedge = mode is PositionMode.HEDGE
            qty = min(STEP * steps, abs(held)) if hedge else STEP * steps
            request = OrderRequest(
                BTC,
                side,
                otype,
                f"X{n}",
                qty,
                price=mid + TICK * offset if otype is OrderType.LIMIT else None,
                time_in_force=TimeInForce.GTC if otype is OrderType.LIMIT else None,
                reduce_only=not hedge,
                position_side=side_of_leg,
            )
        elif kind in ("cancel", "dup"):
            engine.advance_to(now)  # pick the target at the instant the request lands
            open_orders = engine.orders(BTC, open_only=True)
            if not open_orders:
                continue
            target = open_orders[op[1] % len(open_orders)]
            if kind == "cancel":
                engine.cancel_order(BTC, order_id=target.order_id, now=now)
                continue
            original = requests[target.client_order_id]
            try:
                engine.create_order(original, now)
            except SimRejection as rej:
                session.duplicate_codes.append((target.algo, rej.code))
            else:
                session.duplicate_codes.append((target.algo, 0))
            continue
        elif kind == "reuse":
            engine.advance_to(now)
            # Client ids whose every order is closed: Binance accepts them again.
            open_ids = {o.client_order_id for o in engine.orders(BTC, open_only=True) if not o.algo}
            closed = [
                o
                for o in engine.orders(BTC)
                if not o.algo and o.parent_algo_id is None and o.client_order_id not in open_ids
            ]
            if not closed:
                continue
            target = closed[op[1] % len(closed)]
            try:
                engine.create_order(requests[target.client_order_id], now)
            except SimRejection as rej:
                session.reuse_codes.append(rej.code)
            else:
                session.reuse_codes.append(None)
            continue
        if request is not None:
            requests[request.client_order_id] = request
            with contextlib.suppress(SimRejection):
                engine.create_order(request, now)
    return session


def is_exit(mode: PositionMode, request: OrderRequest) -> bool:
    if request.reduce_only or request.close_position:
        return True
    return mode is PositionMode.HEDGE and (
        (request.position_side is PositionSide.LONG and request.side is Side.SELL)
        or (request.position_side is PositionSide.SHORT and request.side is Side.BUY)
    )


def signed(side: Side, qty: Decimal) -> Decimal:
    return qty if side is Side.BUY else -qty


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(sessions, modes, st.integers(min_value=0, max_value=2**32))
def test_position_equals_the_sum_of_signed_fills(ops, mode, seed):
    engine = play(ops, mode, seed).engine
    totals: dict[PositionSide, Decimal] = defaultdict(Decimal)
    for fill in engine.history.fills(BTC):
        totals[fill.position_side] += signed(fill.side, fill.quantity)
    for position in engine.positions():
        assert position.quantity == totals[position.position_side]
    if mode is PositionMode.HEDGE:
        assert engine.position_qty(BTC, PositionSide.LONG) >= 0
        assert engine.position_qty(BTC, PositionSide.SHORT) <= 0


@SETTINGS
@given(sessions, modes, st.integers(min_value=0, max_value=2**32))
def test_exit_orders_never_increase_or_flip_a_position(ops, mode, seed):
    engine = play(ops, mode, seed).engine
    requests = {a.order_id: a.request for a in engine.history.accepted()}
    position: dict[PositionSide, Decimal] = defaultdict(Decimal)
    for fill in engine.history.fills(BTC):
        before = position[fill.position_side]
        after = before + signed(fill.side, fill.quantity)
        if is_exit(mode, requests[fill.order_id]):
            assert abs(after) < abs(before)
            assert after == 0 or (after > 0) == (before > 0)
        position[fill.position_side] = after


@SETTINGS
@given(sessions, modes, st.integers(min_value=0, max_value=2**32))
def test_open_client_ids_are_unique_and_reuse_needs_a_closed_order(ops, mode, seed):
    session = play(ops, mode, seed)
    for algo, code in session.duplicate_codes:
        assert code == (-20132 if algo else -4116)
    assert -4116 not in session.reuse_codes
    seen = set()
    for order in session.engine.orders(BTC, open_only=True):
        key = (order.client_order_id, order.algo)
        assert key not in seen
        seen.add(key)
    accepted_ids = [
        a.client_order_id for a in session.engine.history.accepted() if a.parent_algo_id is None
    ]
    reused = sum(1 for code in session.reuse_codes if code is None)
    assert len(accepted_ids) - len(set(accepted_ids)) == reused


@SETTINGS
@given(sessions, modes, st.integers(min_value=0, max_value=2**32))
def test_cumulative_filled_never_exceeds_quantity(ops, mode, seed):
    engine = play(ops, mode, seed).engine
    filled: dict[str, Decimal] = defaultdict(Decimal)
    for event in engine.events_since(0):
        if not isinstance(event, OrderTradeUpdate):
            continue
        order = event.order
        filled[order.order_id] += event.last_filled_qty
        assert order.filled_qty == filled[order.order_id]  # `z` matches the fills so far
        assert order.filled_qty <= order.quantity
        if order.status is VenueOrderStatus.FILLED:
            assert order.filled_qty == order.quantity
    for snapshot in engine.orders(BTC):
        if not snapshot.algo:
            assert snapshot.filled_qty == filled[snapshot.order_id]


@SETTINGS
@given(sessions, modes, st.integers(min_value=0, max_value=2**32))
def test_money_and_ids_add_up(ops, mode, seed):
    engine = play(ops, mode, seed).engine
    fills = engine.history.fills(BTC)
    assert [f.trade_id for f in fills] == [str(i) for i in range(1, len(fills) + 1)]
    (balance,) = engine.balances()
    realized = sum((f.realized_pnl for f in fills), start=D(0))
    fees = sum((f.fee for f in fills), start=D(0))
    assert balance.wallet_balance == INITIAL_BALANCE + realized - fees
    events = engine.events_since(0)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    records = engine.history.records
    assert [r.seq for r in records] == list(range(1, len(records) + 1))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions, modes, st.integers(min_value=0, max_value=2**32))
def test_same_seed_and_calls_give_identical_history(ops, mode, seed):
    first = play(ops, mode, seed).engine
    second = play(ops, mode, seed).engine
    assert first.history.records == second.history.records
    assert first.events_since(0) == second.events_since(0)
    assert first.positions() == second.positions()
    assert first.balances() == second.balances()
