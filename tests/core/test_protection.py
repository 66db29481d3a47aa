import itertools
from collections.abc import Iterator
from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.core.model import VenueOrder, VenueOrderStatus, VenuePosition
from scalper.core.protection import (
    GAP_TTL_BREACH_CAUSE,
    CancelStop,
    Coverage,
    CoverageStatus,
    PlaceStop,
    ProtectionConfig,
    ProtectionGapTracker,
    ReduceOnlyExit,
    RefreshPolicy,
    RefreshReason,
    RepairActionKind,
    RepairPlan,
    assess_coverage,
    plan_repair,
    protective_stop_price,
)
from scalper.core.types import OrderType, PositionSide, Side

D = Decimal
SYM = "BTCUSDT"


def pos(
    qty: str | Decimal,
    side: PositionSide = PositionSide.BOTH,
    symbol: str = SYM,
    entry: str = "60000",
) -> VenuePosition:
    return VenuePosition(symbol=symbol, quantity=D(qty), entry_price=D(entry), position_side=side)


_ids = iter(range(10**9))


def stop(
    side: Side,
    qty: str | Decimal = "0",
    *,
    reduce_only: bool = True,
    close_position: bool = False,
    order_type: OrderType = OrderType.STOP_MARKET,
    status: VenueOrderStatus = VenueOrderStatus.NEW,
    filled: str = "0",
    position_side: PositionSide = PositionSide.BOTH,
    symbol: str = SYM,
    order_id: str | None = None,
    stop_price: str = "59000",
) -> VenueOrder:
    oid = order_id if order_id is not None else f"s{next(_ids)}"
    return VenueOrder(
        symbol=symbol,
        order_id=oid,
        client_order_id=f"c-{oid}",
        side=side,
        order_type=order_type,
        status=status,
        quantity=D(qty),
        filled_qty=D(filled),
        stop_price=D(stop_price),
        reduce_only=reduce_only and not close_position,
        close_position=close_position,
        position_side=position_side,
    )


# --------------------------------------------------------------------------- coverage


def test_long_with_full_reduce_only_stop_is_covered():
    s = stop(Side.SELL, "0.010", order_id="a")
    c = assess_coverage(pos("0.010"), [s])
    assert c.status is CoverageStatus.COVERED
    assert c.ratio == 1
    assert c.uncovered_qty == 0
    assert c.covered_by == ("a",)
    assert c.closing_side is Side.SELL


def test_two_partial_stops_are_summed_not_maxed():
    # The seed took the largest stop only: two half stops looked like 50% coverage.
    c = assess_coverage(pos("1.0"), [stop(Side.SELL, "0.5"), stop(Side.SELL, "0.5")])
    assert c.status is CoverageStatus.COVERED
    assert c.covered_qty == D("1.0")
    assert len(c.covered_by) == 2


def test_short_partially_covered_reports_ratio_and_shortfall():
    c = assess_coverage(pos("-2"), [stop(Side.BUY, "0.5")])
    assert c.status is CoverageStatus.UNDER_COVERED
    assert c.ratio == D("0.25")
    assert c.uncovered_qty == D("1.5")
    assert c.shortfall_ratio == D("0.75")
    assert c.closing_side is Side.BUY


def test_close_position_stop_covers_whole_position():
    cp = stop(Side.SELL, close_position=True, order_id="cp")
    c = assess_coverage(pos("37.5"), [cp])
    assert c.status is CoverageStatus.COVERED
    assert c.close_position
    assert c.close_position_ids == ("cp",)
    assert c.uncovered_qty == 0


def test_close_position_stop_on_wrong_side_does_not_cover():
    # A BUY close-position stop is a short's stop; under a long it protects nothing.
    c = assess_coverage(pos("1"), [stop(Side.BUY, close_position=True, order_id="w")])
    assert c.status is CoverageStatus.WRONG_SIDE
    assert c.wrong_side_ids == ("w",)
    assert c.covered_qty == 0
    assert c.uncovered_qty == 1


def test_reduce_only_stop_left_from_a_previous_short_is_wrong_side():
    c = assess_coverage(pos("1"), [stop(Side.BUY, "1")])
    assert c.status is CoverageStatus.WRONG_SIDE


def test_naked_position_is_uncovered():
    c = assess_coverage(pos("0.3"), [])
    assert c.status is CoverageStatus.UNCOVERED
    assert c.ratio == 0
    assert c.uncovered_qty == D("0.3")


def test_things_that_are_not_protection_are_ignored():
    ignored = [
        stop(Side.SELL, "1", order_type=OrderType.TAKE_PROFIT_MARKET),  # caps profit, not loss
        stop(Side.SELL, "1", order_type=OrderType.LIMIT),
        stop(Side.SELL, "1", status=VenueOrderStatus.CANCELED),
        stop(Side.SELL, "1", status=VenueOrderStatus.FILLED, filled="1"),
        stop(Side.SELL, "1", reduce_only=False),  # could flip the position: an entry
        stop(Side.SELL, "1", symbol="ETHUSDT"),
    ]
    c = assess_coverage(pos("1"), ignored)
    assert c.status is CoverageStatus.UNCOVERED
    assert c.covered_by == ()


def test_partially_filled_stop_limit_covers_only_its_remainder():
    s = stop(
        Side.SELL,
        "1",
        order_type=OrderType.STOP,
        status=VenueOrderStatus.PARTIALLY_FILLED,
        filled="0.4",
    )
    c = assess_coverage(pos("1"), [s])
    assert c.covered_qty == D("0.6")
    assert c.status is CoverageStatus.UNDER_COVERED


def test_hedge_mode_closing_order_counts_without_reduce_only_flag():
    # Binance rejects reduceOnly in hedge mode and reports it false; the leg says it all.
    long_stop = stop(Side.SELL, "2", reduce_only=False, position_side=PositionSide.LONG)
    short_leg_stop = stop(Side.BUY, "5", reduce_only=False, position_side=PositionSide.SHORT)
    c = assess_coverage(pos("2", PositionSide.LONG), [long_stop, short_leg_stop])
    assert c.status is CoverageStatus.COVERED
    assert c.covered_by == (long_stop.order_id,)
    short = assess_coverage(pos("-5", PositionSide.SHORT), [long_stop, short_leg_stop])
    assert short.status is CoverageStatus.COVERED
    assert short.covered_by == (short_leg_stop.order_id,)


def test_hedge_mode_opening_stop_is_an_entry_not_wrong_side_protection():
    entry_stop = stop(Side.BUY, "1", reduce_only=False, position_side=PositionSide.LONG)
    c = assess_coverage(pos("1", PositionSide.LONG), [entry_stop])
    assert c.status is CoverageStatus.UNCOVERED
    assert c.wrong_side_ids == ()


def test_over_covered_after_a_partial_exit():
    c = assess_coverage(pos("0.6"), [stop(Side.SELL, "1")])
    assert c.status is CoverageStatus.OVER_COVERED
    assert c.uncovered_qty == 0
    assert c.ratio > 1


def test_flat_position_has_nothing_to_cover():
    c = assess_coverage(pos("0"), [stop(Side.SELL, "1")])
    assert c.status is CoverageStatus.FLAT
    assert c.covered_by == ()
    assert c.shortfall_ratio == 0


@pytest.mark.parametrize(("qty", "leg"), [("-1", PositionSide.LONG), ("1", PositionSide.SHORT)])
def test_position_sign_contradicting_its_leg_is_rejected(qty, leg):
    with pytest.raises(CoreValueError) as e:
        assess_coverage(pos(qty, leg), [])
    assert e.value.field == "position.quantity"


qtys = st.decimals(min_value=D("0.001"), max_value=D("1000"), places=3)
sides = st.sampled_from(list(Side))


@st.composite
def stop_lists(draw):
    n = draw(st.integers(0, 5))
    out = []
    for _ in range(n):
        out.append(
            stop(
                draw(sides),
                str(draw(qtys)),
                reduce_only=draw(st.booleans()),
                close_position=draw(st.booleans()) and draw(st.booleans()),
                order_type=draw(
                    st.sampled_from(
                        [OrderType.STOP_MARKET, OrderType.STOP, OrderType.TAKE_PROFIT_MARKET]
                    )
                ),
            )
        )
    return out


signed_qtys = st.decimals(min_value=D("-1000"), max_value=D("1000"), places=3).filter(
    lambda q: q != 0
)


@given(signed_qtys, stop_lists())
def test_close_position_stop_on_closing_side_covers_any_size(qty, others):
    closing = Side.SELL if qty > 0 else Side.BUY
    c = assess_coverage(pos(qty), [*others, stop(closing, close_position=True)])
    assert c.uncovered_qty == 0
    assert c.status in (CoverageStatus.COVERED, CoverageStatus.OVER_COVERED)


@given(signed_qtys, stop_lists(), st.integers(0, 4), qtys)
def test_coverage_ratio_is_monotone_in_stop_quantity(qty, stops, index, extra):
    before = assess_coverage(pos(qty), stops)
    if stops:
        i = index % len(stops)
        stops = [
            *stops[:i],
            attrs.evolve(stops[i], quantity=stops[i].quantity + extra),
            *stops[i + 1 :],
        ]
    else:
        stops = [stop(Side.SELL, str(extra))]
    after = assess_coverage(pos(qty), stops)
    assert after.ratio >= before.ratio
    assert after.uncovered_qty <= before.uncovered_qty


@given(signed_qtys, stop_lists())
def test_coverage_accounting_is_consistent(qty, stops):
    c = assess_coverage(pos(qty), stops)
    assert c.uncovered_qty == max(c.size - c.covered_qty, 0)
    assert c.ratio == c.covered_qty / c.size
    assert (c.status is CoverageStatus.COVERED) == (c.covered_qty == c.size)
    assert (c.uncovered_qty == 0) == (
        c.status in (CoverageStatus.COVERED, CoverageStatus.OVER_COVERED)
    )
    assert set(c.covered_by).isdisjoint(c.wrong_side_ids)


# --------------------------------------------------------------------------- stop price


def test_stop_price_is_below_a_long_and_above_a_short():
    assert protective_stop_price(D("100"), D("1"), D("0.01"), D("0.1")) == D("99.0")
    assert protective_stop_price(D("100"), D("-1"), D("0.01"), D("0.1")) == D("101.0")


def test_stop_price_rounds_toward_entry_so_loss_is_never_wider():
    # 100 * (1 - 0.0035) = 99.65: a long rounds up to 99.7, a short's 100.35 down to 100.3.
    assert protective_stop_price(D("100"), D("2"), D("0.0035"), D("0.1")) == D("99.7")
    assert protective_stop_price(D("100"), D("-2"), D("0.0035"), D("0.1")) == D("100.3")


def test_sub_tick_offset_still_puts_the_stop_off_the_entry():
    assert protective_stop_price(D("100"), D("1"), D("0.0001"), D("0.1")) == D("99.9")
    assert protective_stop_price(D("100"), D("-1"), D("0.0001"), D("0.1")) == D("100.1")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"entry_price": D("0")}, "entry_price"),
        ({"tick_size": D("-0.1")}, "tick_size"),
        ({"offset_ratio": D("1")}, "offset_ratio"),
        ({"offset_ratio": D("0")}, "offset_ratio"),
        ({"position_qty": D("0")}, "position_qty"),
        ({"entry_price": D("0.1"), "offset_ratio": D("0.5")}, "offset_ratio"),  # no grid point > 0
    ],
)
def test_stop_price_rejects_bad_input(kwargs, field):
    args = {
        "entry_price": D("100"),
        "position_qty": D("1"),
        "offset_ratio": D("0.01"),
        "tick_size": D("0.1"),
    }
    args.update(kwargs)
    with pytest.raises(CoreValueError) as e:
        protective_stop_price(**args)
    assert e.value.field == field


@given(
    st.decimals(min_value=D("0.01"), max_value=D("100000"), places=4),
    st.sampled_from([D("1"), D("-1")]),
    st.decimals(min_value=D("0.0001"), max_value=D("0.2"), places=4),
    st.sampled_from([D("0.01"), D("0.1"), D("0.5"), D("1")]),
)
def test_stop_price_is_on_grid_on_losing_side_and_not_wider_than_asked(entry, sign, offset, tick):
    # Only a long whose whole grid below the entry is gone may be refused.
    if sign > 0 and entry <= tick and entry * (1 - offset) < tick:
        with pytest.raises(CoreValueError):
            protective_stop_price(entry, sign, offset, tick)
        return
    price = protective_stop_price(entry, sign, offset, tick)
    assert price > 0
    assert price % tick == 0
    distance = entry - price if sign > 0 else price - entry
    assert distance > 0
    # Never wider than asked, unless the asked offset is under a tick (then: one grid step).
    assert distance <= max(entry * offset, tick)
    assert distance > entry * offset - tick


# --------------------------------------------------------------------------- refresh policy


def cov(qty: str, stop_qty: str) -> Coverage:
    stops = [stop(Side.SELL if D(qty) > 0 else Side.BUY, stop_qty)] if D(stop_qty) > 0 else []
    return assess_coverage(pos(qty), stops)


def test_dribble_fills_do_not_resize_until_the_interval_elapses():
    policy = RefreshPolicy(ProtectionConfig(max_refresh_interval_seconds=30.0))
    # Entry fills dribble in: 1.00 covered, then 1.01, 1.02, 1.03 with the stop at 1.00.
    reasons = [
        policy.decide(cov(q, "1.00"), t).reason for t, q in [(0, "1.01"), (5, "1.02"), (10, "1.03")]
    ]
    assert reasons == [RefreshReason.SKIP_SMALL_DELTA] * 3
    late = policy.decide(cov("1.03", "1.00"), 30.0)
    assert late.refresh
    assert late.reason is RefreshReason.REFRESH_INTERVAL_ELAPSED
    assert not late.forced
    assert late.target_qty == D("1.03")


def test_large_delta_refreshes_at_once():
    policy = RefreshPolicy()
    d = policy.decide(cov("1.0", "0.9"), 0.0)
    assert d.refresh
    assert d.reason is RefreshReason.REFRESH
    assert d.delta_ratio == D("0.1")


def test_refresh_budget_is_per_symbol_and_slides():
    policy = RefreshPolicy(
        ProtectionConfig(max_refreshes_per_window=3, refresh_window_seconds=60.0)
    )
    got = [policy.decide(cov("1.0", "0.9"), float(t)).reason for t in (0, 1, 2, 3)]
    assert got == [RefreshReason.REFRESH] * 3 + [RefreshReason.SKIP_BUDGET]
    other = assess_coverage(
        pos("1.0", symbol="ETHUSDT"), [stop(Side.SELL, "0.9", symbol="ETHUSDT")]
    )
    assert policy.decide(other, 3.0).refresh  # another symbol has its own budget
    assert policy.decide(cov("1.0", "0.9"), 60.5).refresh  # the t=0 refresh left the window


def test_severe_under_coverage_forces_past_the_budget():
    policy = RefreshPolicy(ProtectionConfig(max_refreshes_per_window=1))
    assert policy.decide(cov("1.0", "0.9"), 0.0).refresh
    assert policy.decide(cov("1.0", "0.9"), 1.0).reason is RefreshReason.SKIP_BUDGET
    d = policy.decide(cov("1.0", "0"), 2.0)  # the stop vanished: naked position
    assert d.refresh
    assert d.forced
    assert d.reason is RefreshReason.FORCE_SEVERE_UNDER_COVERAGE


def test_ttl_breach_forces_a_small_under_coverage():
    policy = RefreshPolicy()
    assert policy.decide(cov("1.00", "0.98"), 0.0).reason is RefreshReason.SKIP_SMALL_DELTA
    d = policy.decide(cov("1.00", "0.98"), 1.0, ttl_breached=True)
    assert d.reason is RefreshReason.FORCE_TTL_BREACH
    assert d.forced


def test_ttl_breach_does_not_force_when_nothing_is_uncovered():
    policy = RefreshPolicy()
    assert policy.decide(cov("1", "1"), 0.0, ttl_breached=True).reason is RefreshReason.SKIP_COVERED
    assert not policy.decide(cov("1", "1.02"), 0.0, ttl_breached=True).forced


def test_flat_needs_no_refresh():
    d = RefreshPolicy().decide(assess_coverage(pos("0"), []), 0.0)
    assert not d.refresh
    assert d.reason is RefreshReason.SKIP_FLAT


def test_policy_rejects_a_clock_going_backwards():
    policy = RefreshPolicy()
    policy.decide(cov("1", "1"), 10.0)
    with pytest.raises(CoreValueError) as e:
        policy.decide(cov("1", "1"), 9.0)
    assert e.value.field == "now"


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=20),  # seconds since the previous decision
            st.sampled_from(["1.00", "0.99", "0.90", "0.85", "0.70", "0", "1.20"]),  # stop qty
            st.booleans(),  # ttl breached
        ),
        max_size=60,
    )
)
def test_non_forced_refreshes_never_exceed_the_budget_in_any_window(steps):
    cfg = ProtectionConfig(max_refreshes_per_window=3, refresh_window_seconds=60.0)
    policy = RefreshPolicy(cfg)
    now = 0.0
    granted = []
    for dt, stop_qty, breached in steps:
        now += dt
        d = policy.decide(cov("1.00", stop_qty), now, ttl_breached=breached)
        assert d.refresh == (d.reason.value.startswith(("refresh", "force")))
        if d.refresh and not d.forced:
            granted.append(now)
        if d.forced:
            assert D(stop_qty) < 1
    for t in granted:
        in_window = [g for g in granted if t - cfg.refresh_window_seconds < g <= t]
        assert len(in_window) <= cfg.max_refreshes_per_window


def test_ttl_due_forces_a_gap_the_budget_would_hold_past_its_ttl():
    # The chaos gate's dribble-fills run, no faults: 0.002 market entries 12 s apart on
    # the default config. Every fill until the fifth leaves coverage below 0.8 and forces a
    # resize at once; four resizes are then in the 60 s budget of 3. The fifth fill leaves
    # 0.008 of 0.010 covered: ratio 0.8 is not severe, so the budget holds the resize. It may
    # hold it for a while, never until the gap breaches its TTL.
    cfg = ProtectionConfig()
    policy = RefreshPolicy(cfg)
    tracker = ProtectionGapTracker(SYM, cfg)
    covered = D("0")
    for i, t in enumerate((260.0, 272.0, 284.0, 296.0)):
        c = cov(str(D("0.002") * (i + 1)), str(covered))
        assert tracker.observe(c, t) is None
        d = policy.decide(c, t, gap_seconds=tracker.gap_seconds(t))
        assert d.reason is RefreshReason.FORCE_SEVERE_UNDER_COVERAGE
        covered = d.target_qty  # the new stop is placed and confirmed
        assert tracker.observe(cov(str(d.target_qty), str(covered)), t) is None
    fill = cov("0.010", "0.008")
    assert fill.ratio == cfg.force_coverage_ratio
    assert tracker.observe(fill, 308.0) is None
    first = policy.decide(fill, 308.0, gap_seconds=tracker.gap_seconds(308.0))
    assert first.reason is RefreshReason.SKIP_BUDGET
    assert first.budget_used == 4
    held, forced = [], None
    for t in range(309, 320):  # the ProtectionManager's 1 s tick
        assert tracker.check(float(t)) is None, f"breached at {t}"
        d = policy.decide(
            fill,
            float(t),
            ttl_breached=tracker.is_breached(float(t)),
            gap_seconds=tracker.gap_seconds(float(t)),
        )
        if d.refresh:
            forced = (t, d)
            break
        held.append(d.reason)
    assert forced is not None
    t_forced, decision = forced
    assert decision.reason is RefreshReason.FORCE_TTL_DUE
    assert decision.forced
    assert decision.target_qty == D("0.010")
    # Due at gap_ttl - force_before_ttl = 6 s: the budget batched the first six seconds.
    assert t_forced - 308 == cfg.gap_ttl_seconds - cfg.force_before_ttl_seconds
    assert held == [RefreshReason.SKIP_BUDGET] * 5
    assert tracker.observe(cov("0.010", "0.010"), float(t_forced)) is None
    assert tracker.breach_count == 0


def test_ttl_due_leaves_small_dribbles_to_anti_churn():
    # A dribble inside the tolerance is not a gap: its gap age stays 0 and nothing forces it;
    # only the small-delta interval resizes it.
    cfg = ProtectionConfig(max_refresh_interval_seconds=30.0)
    policy = RefreshPolicy(cfg)
    tracker = ProtectionGapTracker(SYM, cfg)
    reasons = []
    for t, qty in [(0.0, "1.01"), (5.0, "1.02"), (9.0, "1.03"), (15.0, "1.04"), (29.0, "1.04")]:
        c = cov(qty, "1.00")
        tracker.observe(c, t)
        reasons.append(policy.decide(c, t, gap_seconds=tracker.gap_seconds(t)).reason)
    assert reasons == [RefreshReason.SKIP_SMALL_DELTA] * 5
    assert policy.decide(cov("1.04", "1.00"), 30.0).reason is RefreshReason.REFRESH_INTERVAL_ELAPSED


def test_the_budget_still_batches_a_young_gap():
    # Budget spent; a fill above the tolerance but not severe waits while the gap is young.
    cfg = ProtectionConfig(max_refreshes_per_window=1)
    policy = RefreshPolicy(cfg)
    assert policy.decide(cov("1.0", "0.9"), 0.0).refresh
    young = cfg.gap_ttl_seconds - cfg.force_before_ttl_seconds - 0.5
    d = policy.decide(cov("1.1", "1.0"), 1.0, gap_seconds=young)
    assert d.reason is RefreshReason.SKIP_BUDGET
    assert not d.refresh


def test_a_gap_past_its_ttl_counts_as_breached_without_the_flag():
    policy = RefreshPolicy()
    d = policy.decide(cov("1.0", "0.9"), 0.0, gap_seconds=10.5)
    assert d.reason is RefreshReason.FORCE_TTL_BREACH
    exact = RefreshPolicy().decide(cov("1.0", "0.9"), 0.0, gap_seconds=10.0)
    assert exact.reason is RefreshReason.FORCE_TTL_DUE  # the TTL itself is not a breach


def test_ttl_due_does_not_force_when_nothing_is_uncovered():
    policy = RefreshPolicy()
    assert policy.decide(cov("1", "1"), 0.0, gap_seconds=9.0).reason is RefreshReason.SKIP_COVERED
    assert not policy.decide(cov("1", "1.2"), 1.0, gap_seconds=9.0).forced


@pytest.mark.parametrize("gap", [-0.1, float("nan"), float("inf"), True, "5"])
def test_policy_rejects_a_bad_gap_age(gap):
    with pytest.raises(CoreValueError) as e:
        RefreshPolicy().decide(cov("1.0", "0.9"), 0.0, gap_seconds=gap)
    assert e.value.field == "gap_seconds"


def test_a_storm_of_fills_is_not_resized_per_fill_once_the_budget_is_spent():
    # 10% partial fills every second for a minute (each one a gap): past the budget, a
    # resize comes only when the accumulated shortfall turns severe or the gap falls due,
    # never per fill.
    cfg = ProtectionConfig()
    policy = RefreshPolicy(cfg)
    tracker = ProtectionGapTracker(SYM, cfg)
    position, covered = D("1.0"), D("1.0")
    refreshes: list[tuple[int, RefreshReason]] = []
    for t in range(60):
        position += D("0.1")
        c = cov(str(position), str(covered))
        assert tracker.observe(c, float(t)) is None
        d = policy.decide(c, float(t), gap_seconds=tracker.gap_seconds(float(t)))
        if d.refresh:
            refreshes.append((t, d.reason))
            covered = d.target_qty
            tracker.observe(cov(str(position), str(covered)), float(t))
    due = cfg.gap_ttl_seconds - cfg.force_before_ttl_seconds
    budget = cfg.max_refreshes_per_window
    assert [r for _, r in refreshes[:budget]] == [RefreshReason.REFRESH] * budget
    later = refreshes[budget:]
    assert all(
        r in {RefreshReason.FORCE_SEVERE_UNDER_COVERAGE, RefreshReason.FORCE_TTL_DUE}
        for _, r in later
    )
    assert RefreshReason.FORCE_TTL_DUE in {r for _, r in later}
    for (before, _), (t, reason) in itertools.pairwise(refreshes):
        if reason is RefreshReason.FORCE_TTL_DUE:
            # The gap it closes opened with the first fill after the previous resize.
            assert t - (before + 1) >= due
    assert len(refreshes) <= budget + 60 / due
    assert tracker.breach_count == 0


_FILL_QTYS = ["0.0001", "0.0005", "0.001", "0.002", "0.005", "0.02"]


@settings(max_examples=60, deadline=None)
@given(
    fills=st.lists(
        st.tuples(
            st.integers(min_value=4, max_value=80),  # quarter-seconds since the last fill (>= 1 s)
            st.sampled_from(_FILL_QTYS),
        ),
        min_size=1,
        max_size=40,
    ),
    latency=st.integers(min_value=0, max_value=2),  # quarter-seconds for a stop to go live
    budget=st.integers(min_value=1, max_value=4),
)
def test_no_gap_outlives_its_ttl_under_the_policy(fills, latency, budget):
    # A simple model of the ProtectionManager: decisions at every fill, every 1 s tick and
    # right after a repair lands; one repair at a time; every refresh succeeds, covering the
    # size decided, ``latency`` later. Time runs in quarter seconds, so it is exact.
    cfg = ProtectionConfig(max_refreshes_per_window=budget)
    policy = RefreshPolicy(cfg)
    tracker = ProtectionGapTracker(SYM, cfg)
    fill_at: dict[int, Decimal] = {}
    step = 0
    for gap, qty in fills:
        step += gap
        fill_at[step] = D(qty)
    position, covered = D("0"), D("0")
    landing: tuple[int, Decimal] | None = None
    for step in range(max(fill_at) + 4 * 60):
        now = step / 4
        due = step % 4 == 0  # the tick
        if landing is not None and landing[0] == step:
            covered, landing = landing[1], None
            due = True  # repair done: the leg is re-assessed at once
        if step in fill_at:
            position += fill_at[step]
            due = True
        c = cov(str(position), str(covered))
        assert tracker.observe(c, now) is None, f"gap breached its TTL at {now}s"
        assert tracker.gap_seconds(now) <= cfg.gap_ttl_seconds
        if not due or landing is not None:
            continue
        d = policy.decide(
            c, now, ttl_breached=tracker.is_breached(now), gap_seconds=tracker.gap_seconds(now)
        )
        if d.refresh:
            if latency == 0:
                covered = d.target_qty
                tracker.observe(cov(str(position), str(covered)), now)
            else:
                landing = (step + latency, d.target_qty)
    assert tracker.breach_count == 0


# --------------------------------------------------------------------------- repair plans


def apply_plan(
    position: VenuePosition, stops: list[VenueOrder], plan: RepairPlan
) -> Iterator[Coverage]:
    """Execute a plan step by step; yield the coverage after each step."""
    stops = list(stops)
    qty = position.quantity
    for i, action in enumerate(plan.actions):
        if isinstance(action, PlaceStop):
            stops.append(
                stop(
                    action.side,
                    "0" if action.quantity is None else str(action.quantity),
                    close_position=action.close_position,
                    position_side=action.position_side,
                    order_id=f"new{i}",
                )
            )
        elif isinstance(action, CancelStop):
            stops = [s for s in stops if s.order_id != action.order_id]
        else:
            assert isinstance(action, ReduceOnlyExit)
            qty = qty - action.quantity if qty > 0 else qty + action.quantity
        yield assess_coverage(attrs.evolve(position, quantity=qty), stops)


def test_resize_places_new_stop_before_cancelling_old():
    old = stop(Side.SELL, "0.5", order_id="old")
    c = assess_coverage(pos("1.0"), [old])
    plan = plan_repair(c, stop_price=D("59000"))
    assert [a.kind for a in plan.actions] == [
        RepairActionKind.PLACE_STOP,
        RepairActionKind.CANCEL_STOP,
    ]
    place, cancel = plan.actions
    assert isinstance(place, PlaceStop)
    assert place.quantity == D("1.0")
    assert place.side is Side.SELL
    assert place.reduce_only
    assert cancel == CancelStop(symbol=SYM, order_id="old")
    assert plan.reason == "resize_stop"


def test_repeated_rejects_climb_to_close_position_then_exit():
    c = assess_coverage(pos("-2"), [stop(Side.BUY, "0.5")])
    cfg = ProtectionConfig(close_position_after_rejects=1, max_place_rejects=3)
    first = plan_repair(c, stop_price=D("61000"), place_rejects=0, config=cfg)
    assert isinstance(first.actions[0], PlaceStop)
    assert first.actions[0].quantity == D("2")
    second = plan_repair(c, stop_price=D("61000"), place_rejects=1, config=cfg)
    assert isinstance(second.actions[0], PlaceStop)
    assert second.actions[0].close_position
    assert second.actions[0].quantity is None
    assert not second.actions[0].reduce_only
    assert second.reason == "place_close_position_stop"
    last = plan_repair(c, stop_price=D("61000"), place_rejects=3, config=cfg)
    assert last.actions == (
        ReduceOnlyExit(
            symbol=SYM, side=Side.BUY, position_side=PositionSide.BOTH, quantity=D("1.5")
        ),
    )
    assert last.reason == "stop_unplaceable_exit"


def test_stop_that_would_trigger_at_once_exits_instead():
    c = assess_coverage(pos("1"), [])
    plan = plan_repair(c, stop_price=D("59000"), would_trigger=True)
    assert plan.reason == "stop_would_trigger_exit"
    assert [a.kind for a in plan.actions] == [RepairActionKind.REDUCE_ONLY_EXIT]
    assert isinstance(plan.actions[0], ReduceOnlyExit)
    assert plan.actions[0].quantity == 1


def test_covered_and_flat_need_no_plan():
    assert plan_repair(cov("1", "1"), stop_price=D("1")).actions == ()
    assert plan_repair(assess_coverage(pos("0"), []), stop_price=D("1")).reason == "flat"


def test_over_coverage_under_close_position_is_trimmed_without_placing():
    cp = stop(Side.SELL, close_position=True, order_id="cp")
    extra = stop(Side.SELL, "3", order_id="x")
    plan = plan_repair(assess_coverage(pos("1"), [cp, extra]), stop_price=D("59000"))
    assert plan.actions == (CancelStop(symbol=SYM, order_id="x"),)


def test_over_coverage_is_left_alone_when_placement_keeps_failing():
    plan = plan_repair(cov("1", "2"), stop_price=D("59000"), place_rejects=5)
    assert plan.actions == ()
    assert plan.reason == "over_covered_left"


def test_wrong_side_stop_is_cancelled_only_after_the_right_one_is_placed():
    w = stop(Side.BUY, "1", order_id="w")
    plan = plan_repair(assess_coverage(pos("1"), [w]), stop_price=D("59000"))
    assert [a.kind for a in plan.actions] == [
        RepairActionKind.PLACE_STOP,
        RepairActionKind.CANCEL_STOP,
    ]
    assert plan.actions[1] == CancelStop(symbol=SYM, order_id="w")


def test_plan_repair_rejects_bad_input():
    with pytest.raises(CoreValueError) as e:
        plan_repair(cov("1", "0"), stop_price=D("0"))
    assert e.value.field == "stop_price"
    with pytest.raises(CoreValueError) as e:
        plan_repair(cov("1", "0"), stop_price=D("1"), place_rejects=-1)
    assert e.value.field == "place_rejects"


@settings(max_examples=150)
@given(signed_qtys, stop_lists(), st.integers(0, 5), st.booleans())
def test_a_plan_never_lowers_protection_on_the_way(qty, stops, rejects, would_trigger):
    position = pos(qty)
    start = assess_coverage(position, stops)
    plan = plan_repair(start, stop_price=D("1"), place_rejects=rejects, would_trigger=would_trigger)
    kinds = [a.kind for a in plan.actions]
    if RepairActionKind.CANCEL_STOP in kinds and RepairActionKind.PLACE_STOP in kinds:
        assert kinds.index(RepairActionKind.PLACE_STOP) < kinds.index(RepairActionKind.CANCEL_STOP)
    floor = min(start.covered_qty, start.size)
    last = start
    for c in apply_plan(position, stops, plan):
        if RepairActionKind.REDUCE_ONLY_EXIT not in kinds:
            assert min(c.covered_qty, c.size) >= floor
        last = c
    if start.status is not CoverageStatus.FLAT and plan.actions:
        # Whatever the path, the end state is protected (or closed).
        assert last.uncovered_qty == 0
        assert last.status in (CoverageStatus.COVERED, CoverageStatus.FLAT) or (
            last.status is CoverageStatus.OVER_COVERED
            and RepairActionKind.REDUCE_ONLY_EXIT in kinds
        )


# --------------------------------------------------------------------------- gap tracking


def test_gap_past_ttl_escalates_once_then_resets_when_covered():
    tracker = ProtectionGapTracker(SYM, ProtectionConfig(gap_ttl_seconds=10.0))
    assert tracker.observe(cov("1", "0"), 100.0) is None  # the fill: naked from here
    assert tracker.check(105.0) is None
    assert tracker.gap_seconds(105.0) == 5.0
    assert not tracker.is_breached(110.0)
    esc = tracker.check(110.5)
    assert esc is not None
    assert esc.cause == GAP_TTL_BREACH_CAUSE == "protection_gap_ttl_breach"
    assert esc.symbol == SYM
    assert esc.gap_started_at == 100.0
    assert esc.gap_seconds == 10.5
    assert esc.uncovered_qty == 1
    assert 0 <= esc.severity <= 1
    assert tracker.check(111.0) is None  # edge-triggered
    assert tracker.is_breached(111.0)
    assert tracker.observe(cov("1", "1"), 112.0) is None
    assert tracker.gap_seconds(112.0) == 0.0
    assert not tracker.is_breached(112.0)
    tracker.observe(cov("1", "0.5"), 120.0)  # a new gap gets its own escalation
    assert tracker.observe(cov("1", "0.5"), 131.0) is not None
    assert tracker.breach_count == 2


def test_dribble_within_tolerance_is_not_a_gap():
    tracker = ProtectionGapTracker(SYM, ProtectionConfig(min_delta_ratio=D("0.05")))
    tracker.observe(cov("1.03", "1.00"), 0.0)
    assert tracker.gap_seconds(100.0) == 0.0
    assert tracker.check(100.0) is None


def test_tracker_refuses_another_symbols_coverage_and_backwards_clock():
    tracker = ProtectionGapTracker("ETHUSDT")
    with pytest.raises(CoreValueError) as e:
        tracker.observe(cov("1", "0"), 0.0)
    assert e.value.field == "coverage"
    tracker.check(5.0)
    with pytest.raises(CoreValueError) as e:
        tracker.check(4.0)
    assert e.value.field == "now"


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=8), st.sampled_from(["0", "0.5", "0.99", "1", "1.5"])
        ),
        max_size=40,
    )
)
def test_gap_seconds_grow_while_uncovered_and_reset_when_covered(steps):
    cfg = ProtectionConfig(gap_ttl_seconds=10.0, min_delta_ratio=D("0.05"))
    tracker = ProtectionGapTracker(SYM, cfg)
    now = 0.0
    previous_gap = 0.0
    escalations_this_gap = 0
    for dt, stop_qty in steps:
        now += dt
        c = cov("1", stop_qty)
        esc = tracker.observe(c, now)
        gap = tracker.gap_seconds(now)
        if c.is_gap(cfg.min_delta_ratio):
            assert gap >= previous_gap  # monotone while uncovered
            escalations_this_gap += esc is not None
            assert escalations_this_gap <= 1
            if esc is not None:
                assert gap > cfg.gap_ttl_seconds
            assert tracker.is_breached(now) == (gap > cfg.gap_ttl_seconds)
            if gap > cfg.gap_ttl_seconds:
                assert escalations_this_gap == 1  # a breach never goes unreported
        else:
            assert gap == 0.0
            assert esc is None
            escalations_this_gap = 0
        previous_gap = gap


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_delta_ratio": D("0")}, "min_delta_ratio"),
        ({"min_delta_ratio": D("1")}, "min_delta_ratio"),
        ({"min_delta_ratio": 0.05}, "min_delta_ratio"),  # floats are not quantities
        ({"force_coverage_ratio": D("1.5")}, "force_coverage_ratio"),
        ({"gap_ttl_seconds": 0.0}, "gap_ttl_seconds"),
        ({"gap_ttl_seconds": float("nan")}, "gap_ttl_seconds"),
        ({"max_refreshes_per_window": 0}, "max_refreshes_per_window"),
        ({"max_refreshes_per_window": True}, "max_refreshes_per_window"),
        ({"gap_breach_severity": 1.5}, "gap_breach_severity"),
        ({"force_before_ttl_seconds": 0.0}, "force_before_ttl_seconds"),
        ({"force_before_ttl_seconds": 10.0}, "force_before_ttl_seconds"),  # = the TTL
        ({"gap_ttl_seconds": 3.0}, "force_before_ttl_seconds"),  # TTL below the default lead
        (
            {"close_position_after_rejects": 4, "max_place_rejects": 3},
            "close_position_after_rejects",
        ),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(CoreValueError) as e:
        ProtectionConfig(**kwargs)
    assert e.value.field == field


def test_default_config_matches_documented_choices():
    cfg = ProtectionConfig()
    assert cfg.gap_ttl_seconds == 10.0
    assert cfg.min_delta_ratio == D("0.05")
    assert cfg.force_coverage_ratio == D("0.80")
    assert (cfg.refresh_window_seconds, cfg.max_refreshes_per_window) == (60.0, 3)
    assert cfg.force_before_ttl_seconds == 4.0
