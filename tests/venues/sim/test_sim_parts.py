"""Tests of the simulated exchange's parts: price path, book, filters, rate limits, positions."""

import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.core.types import PositionSide, Side
from scalper.venues.sim.engine import SimConfig, SymbolConfig
from scalper.venues.sim.errors import ErrorCode, SimRejection, reject
from scalper.venues.sim.filters import SymbolFilters, check_price, check_quantity, decimals
from scalper.venues.sim.market import (
    BookConfig,
    PricePath,
    PricePathConfig,
    make_quote,
    round_against,
    taker_levels,
)
from scalper.venues.sim.positions import PositionState
from scalper.venues.sim.ratelimit import RateKind, RateLimitConfig, RateLimiter

D = Decimal
TICK = D("0.10")

# --------------------------------------------------------------------------- market


def test_quote_is_on_the_tick_grid_outside_the_mid_and_at_least_a_tick_wide():
    assert make_quote(D(60000), D(1), TICK) == make_quote(D(60000), D(1), TICK)
    quote = make_quote(D(60000), D(1), TICK)
    assert (quote.bid, quote.ask) == (D("59997.0"), D("60003.0"))
    tight = make_quote(D(60000), D(0), TICK)
    assert tight.ask - tight.bid == TICK
    assert tight.crosses(Side.BUY, tight.ask)
    assert not tight.crosses(Side.BUY, tight.bid)
    assert tight.crosses(Side.SELL, tight.bid)
    assert not tight.crosses(Side.SELL, tight.ask)


@given(
    st.integers(min_value=1, max_value=10_000_000),
    st.decimals(min_value=0, max_value=500, places=2),
)
def test_quote_invariants(mid_ticks, spread_bps):
    mid = TICK * mid_ticks
    quote = make_quote(mid, spread_bps, TICK)
    assert quote.bid % TICK == 0
    assert quote.ask % TICK == 0
    assert quote.bid <= mid <= quote.ask or quote.bid == TICK
    assert quote.ask - quote.bid >= TICK
    assert quote.bid >= TICK


def test_slipped_prices_round_against_the_taker():
    assert round_against(D("100.05"), Side.BUY, TICK) == D("100.1")
    assert round_against(D("99.95"), Side.SELL, TICK) == D("99.9")
    assert round_against(D("100.0"), Side.BUY, TICK) == D("100.0")
    assert round_against(D("0.01"), Side.SELL, TICK) == TICK


def test_taker_levels_walk_away_from_the_touch():
    quote = make_quote(D(60000), D(1), TICK)
    book = BookConfig(level_qty=D("0.5"), levels=3, level_ticks=2)
    assert taker_levels(quote, Side.BUY, book, TICK) == [
        (D("60003.0"), D("0.5")),
        (D("60003.2"), D("0.5")),
        (D("60003.4"), D("0.5")),
    ]
    assert [p for p, _ in taker_levels(quote, Side.SELL, book, TICK)] == [
        D("59997.0"),
        D("59996.8"),
        D("59996.6"),
    ]


def test_series_path_jumps_at_its_times_and_then_stays():
    config = PricePathConfig(
        initial_price=D(100), series=((0.0, D("101.04")), (5.0, D(99)), (9.0, D(98)))
    )
    path = PricePath(config, TICK, start=0.0, rng=random.Random(1))
    assert path.mid == D("101.0")  # the point at the start applies, rounded to the tick
    assert path.next_time == 5.0
    assert path.step() == D(99)
    assert path.next_time == 9.0
    path.step()
    times_left = [path.next_time]
    assert times_left == [None]
    assert path.step() == D(98)


def test_random_walk_is_seeded_on_a_fixed_grid_and_stays_positive():
    config = PricePathConfig(initial_price=D(1), volatility_bps=5000.0, step_seconds=0.5)
    a = PricePath(config, TICK, start=10.0, rng=random.Random(3))
    b = PricePath(config, TICK, start=10.0, rng=random.Random(3))
    times, mids = [], []
    for _ in range(200):
        times.append(a.next_time)
        mids.append(a.step())
        assert b.step() == mids[-1]
    assert times[:3] == [10.5, 11.0, 11.5]
    assert min(mids) >= TICK
    assert all(m % TICK == 0 for m in mids)
    assert len(set(mids)) > 10


def test_set_mid_rounds_and_refuses_nonsense():
    path = PricePath(PricePathConfig(), TICK, start=0.0, rng=random.Random(1))
    assert path.set_mid(D("123.456")) == D("123.5")
    with pytest.raises(CoreValueError) as info:
        path.set_mid(D(-1))
    assert info.value.field == "price"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"initial_price": D(0)}, "initial_price"),
        ({"step_seconds": 0.0}, "step_seconds"),
        ({"volatility_bps": -1.0}, "volatility_bps"),
        ({"jump_probability": 1.5}, "jump_probability"),
        ({"series": ((2.0, D(1)), (1.0, D(1)))}, "series"),
        ({"series": ((1.0, D(0)),)}, "series"),
    ],
)
def test_price_path_config_validation(kwargs, field):
    with pytest.raises(CoreValueError) as info:
        PricePathConfig(**kwargs)
    assert info.value.field == field


# --------------------------------------------------------------------------- filters


def test_decimals_counts_significant_places():
    assert [decimals(D(x)) for x in ("1.50", "100", "1E+2", "0.001", "0.0010")] == [1, 0, 0, 3, 3]


def test_price_filter_rules_use_min_price_as_the_tick_origin():
    filters = SymbolFilters(tick_size=D("0.5"), min_price=D("0.25"), price_precision=2)
    check_price(filters, D("10.25"))
    with pytest.raises(SimRejection) as info:
        check_price(filters, D("10.5"))
    assert info.value.code == -4014
    with pytest.raises(SimRejection) as info:
        check_price(filters, D("-1"), is_stop=True)
    assert info.value.code == -4006


def test_market_lot_size_applies_to_market_orders_only():
    filters = SymbolFilters(market_max_qty=D(2))
    check_quantity(filters, D(3), market=False)
    with pytest.raises(SimRejection) as info:
        check_quantity(filters, D(3), market=True)
    assert info.value.code == -4005


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tick_size": D(0)}, "tick_size"),
        ({"min_qty": D(5), "max_qty": D(1)}, "max_qty"),
        ({"multiplier_up": D("0.9")}, "multiplier_down"),
        ({"tick_size": D("0.001")}, "price_precision"),
        ({"max_num_orders": 0}, "max_num_orders"),
    ],
)
def test_filter_config_validation(kwargs, field):
    with pytest.raises(CoreValueError) as info:
        SymbolFilters(**kwargs)
    assert info.value.field == field


def test_engine_config_validation():
    with pytest.raises(CoreValueError) as info:
        SimConfig(symbols=(SymbolConfig(), SymbolConfig()))
    assert info.value.field == "symbols"
    with pytest.raises(CoreValueError) as info:
        SymbolConfig(book=BookConfig(level_qty=D("0.0005")))
    assert info.value.field == "book.level_qty"
    with pytest.raises(CoreValueError) as info:
        SimConfig(default_leverage=200)
    assert info.value.field == "default_leverage"


def test_rejection_carries_code_text_status_and_name():
    rej = reject(ErrorCode.MIN_NOTIONAL, "5")
    assert (rej.code, rej.http_status, rej.name) == (-4164, 400, "MIN_NOTIONAL")
    assert (
        rej.message == "Order's notional must be no smaller than 5 (unless you choose reduce only)"
    )
    assert reject(ErrorCode.TOO_MANY_ORDERS, 1, "x").http_status == 429
    assert SimRejection(-9999, "odd").name == "CODE_9999"


# --------------------------------------------------------------------------- rate limits


def test_order_windows_align_to_the_clock_and_roll():
    limiter = RateLimiter(RateLimitConfig(orders_per_10s=2, orders_per_minute=3))
    limiter.check(RateKind.ORDERS, 58.0)
    limiter.check(RateKind.ORDERS, 59.0)
    with pytest.raises(SimRejection) as info:
        limiter.check(RateKind.ORDERS, 59.5)
    assert info.value.retry_after == pytest.approx(0.5)
    usage = limiter.check(RateKind.ORDERS, 60.0)  # both windows rolled at the minute
    assert (usage.order_count_10s, usage.order_count_1m) == (1, 1)
    limiter.check(RateKind.ORDERS, 70.0)
    limiter.check(RateKind.ORDERS, 80.0)
    with pytest.raises(SimRejection) as info:
        limiter.check(RateKind.ORDERS, 90.0)
    assert info.value.message == "Too many new orders; current limit is 3 orders per 1 MINUTE."


def test_disabled_limiter_counts_but_never_refuses():
    limiter = RateLimiter(RateLimitConfig(enabled=False, request_weight_per_minute=1))
    for _ in range(5):
        usage = limiter.check(RateKind.REQUEST_WEIGHT, 1.0, weight=10)
    assert usage.used_weight_1m == 50
    with pytest.raises(CoreValueError):
        limiter.check(RateKind.REQUEST_WEIGHT, 1.0, weight=-1)


# --------------------------------------------------------------------------- positions


def test_entry_price_averages_up_and_realizes_on_reduce():
    position = PositionState("BTCUSDT", PositionSide.BOTH)
    position.apply_fill(Side.BUY, D(1), D(100))
    position.apply_fill(Side.BUY, D(3), D(200))
    assert position.entry_price == D(175)
    effect = position.apply_fill(Side.SELL, D(2), D(150))
    assert (effect.realized_pnl, effect.closed_qty, effect.opened_qty) == (D(-50), D(2), D(0))
    assert position.entry_price == D(175)
    effect = position.apply_fill(Side.SELL, D(3), D(100))  # close 2, open 1 short at 100
    assert effect.realized_pnl == D(-150)
    assert (position.quantity, position.entry_price) == (D(-1), D(100))
    assert position.unrealized_pnl(D(90)) == D(10)
    assert position.accumulated_realized == D(-200)


fills = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(min_value=1, max_value=1000),
        st.integers(min_value=1, max_value=100_000),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200)
@given(fills, st.integers(min_value=1, max_value=100_000))
def test_position_accounting_conserves_money(trades, mark_ticks):
    """Realized + unrealized PnL equals the trades' cash flow marked to market."""
    position = PositionState("BTCUSDT", PositionSide.BOTH)
    realized = D(0)
    cash = D(0)
    for side, qty_steps, price_ticks in trades:
        qty, price = D("0.001") * qty_steps, TICK * price_ticks
        realized += position.apply_fill(side, qty, price).realized_pnl
        cash -= (qty if side is Side.BUY else -qty) * price
    mark = TICK * mark_ticks
    expected_quantity = sum(
        (D("0.001") * q if s is Side.BUY else -D("0.001") * q for s, q, _ in trades), start=D(0)
    )
    assert position.quantity == expected_quantity
    total = realized + position.unrealized_pnl(mark)
    assert abs(total - (cash + position.quantity * mark)) <= D("1E-6") * len(trades)
    if position.quantity == 0:
        assert position.entry_price == 0
