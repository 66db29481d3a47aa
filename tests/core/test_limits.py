from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.core.limits import (
    BINANCE_USDM_RATE_LIMITS,
    LeverageBracket,
    LimitMismatch,
    LimitsConfig,
    MismatchKind,
    RateCaps,
    RateLimit,
    RateLimitKind,
    Severity,
    SymbolCaps,
    SymbolLimits,
    VenueLimits,
    compare_limits,
    effective_caps,
    effective_rate_caps,
)

D = Decimal

# Shaped like Binance's leverageBracket answers: a major and a thin alt.
BTC = SymbolLimits(
    "BTCUSDT",
    (
        LeverageBracket(0, 50_000, 125),
        LeverageBracket(50_000, 250_000, 100),
        LeverageBracket(250_000, 3_000_000, 50),
        LeverageBracket(3_000_000, 20_000_000, 20),
        LeverageBracket(20_000_000, 50_000_000, 10),
    ),
    max_open_orders=200,
)
ALT = SymbolLimits(
    "DOGEUSDT",
    (
        LeverageBracket(0, 5_000, 20),
        LeverageBracket(5_000, 25_000, 15),
        LeverageBracket(25_000, 100_000, 10),
        LeverageBracket(100_000, 250_000, 5),
        LeverageBracket(250_000, 1_000_000, 2),
    ),
    max_open_orders=10,
)
VENUE = VenueLimits((BTC, ALT), BINANCE_USDM_RATE_LIMITS)


def kinds(mismatches: list[LimitMismatch]) -> list[tuple[str | None, MismatchKind, Severity]]:
    return [(m.symbol, m.kind, m.severity) for m in mismatches]


# ---------------------------------------------------------------- venue records


def test_max_notional_follows_the_brackets():
    assert BTC.max_leverage == 125
    assert BTC.max_notional_at(125) == D(50_000)
    assert BTC.max_notional_at(101) == D(50_000)
    assert BTC.max_notional_at(100) == D(250_000)
    assert BTC.max_notional_at(20) == D(20_000_000)
    assert BTC.max_notional_at(1) == D(50_000_000)
    assert BTC.max_notional_at(126) is None


def test_binance_rate_limits_are_the_published_ones():
    v = VenueLimits(rate_limits=BINANCE_USDM_RATE_LIMITS)
    assert v.rate_limit(RateLimitKind.REQUEST_WEIGHT, 60) == 2400
    assert v.rate_limit(RateLimitKind.ORDERS, 60) == 1200
    assert v.rate_limit(RateLimitKind.ORDERS, 10) == 300
    assert v.rate_limit(RateLimitKind.REQUEST_WEIGHT, 10) is None


def test_duplicate_rate_windows_use_the_strictest():
    v = VenueLimits(rate_limits=(RateLimit("ORDERS", 10, 300), RateLimit("ORDERS", 10, 50)))
    assert v.rate_limit(RateLimitKind.ORDERS, 10) == 50


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: LeverageBracket(100, 50, 10), "notional_cap"),
        (lambda: LeverageBracket(-1, 50, 10), "notional_floor"),
        (lambda: LeverageBracket(0, "nan", 10), "notional_cap"),
        (lambda: LeverageBracket(0, 50, 0), "max_leverage"),
        (lambda: SymbolLimits("X", ()), "brackets"),
        (
            lambda: SymbolLimits("X", (LeverageBracket(0, 10, 5), LeverageBracket(10, 20, 10))),
            "brackets",
        ),
        (
            lambda: SymbolLimits("X", (LeverageBracket(10, 20, 5), LeverageBracket(0, 10, 5))),
            "brackets",
        ),
        (lambda: SymbolLimits("", (LeverageBracket(0, 10, 5),)), "symbol"),
        (
            lambda: SymbolLimits("X", (LeverageBracket(0, 10, 5),), max_open_orders=0),
            "max_open_orders",
        ),
        (lambda: VenueLimits((BTC, BTC)), "symbols"),
        (lambda: RateLimit("ORDERS", 0, 10), "interval_s"),
        (lambda: SymbolCaps(leverage=0), "leverage"),
        (lambda: SymbolCaps(max_notional=D(-5)), "max_notional"),
        (lambda: SymbolCaps(max_notional=float("inf")), "max_notional"),
        (lambda: SymbolCaps(max_open_orders=True), "max_open_orders"),
        (lambda: RateCaps(orders_per_10s=0), "orders_per_10s"),
        (lambda: LimitsConfig(rate_headroom_ratio=0.0), "rate_headroom_ratio"),
        (lambda: LimitsConfig(symbol_caps={"": SymbolCaps()}), "symbol_caps"),
    ],
)
def test_bad_input_names_the_field(make, field):
    with pytest.raises(CoreValueError) as exc:
        make()
    assert exc.value.field == field


def test_max_notional_at_rejects_bad_leverage():
    with pytest.raises(CoreValueError) as exc:
        BTC.max_notional_at(0)
    assert exc.value.field == "leverage"


def test_float_notional_means_its_decimal_repr():
    assert SymbolCaps(max_notional=0.1).max_notional == D("0.1")


# ---------------------------------------------------------------- comparison


def test_defaults_fit_binance():
    assert compare_limits(LimitsConfig(), VENUE, ["BTCUSDT", "DOGEUSDT"]) == []


def test_leverage_above_venue_max_is_an_error():
    cfg = LimitsConfig(symbol_caps={"DOGEUSDT": SymbolCaps(leverage=50, max_notional=D(1000))})
    out = compare_limits(cfg, VENUE, ["DOGEUSDT"])
    assert kinds(out) == [("DOGEUSDT", MismatchKind.LEVERAGE_ABOVE_VENUE_MAX, Severity.ERROR)]
    (m,) = out
    assert (m.configured, m.venue) == (D(50), D(20))
    assert "50x" in m.message
    assert "20x" in m.message


def test_notional_above_what_the_brackets_allow_at_that_leverage():
    # 100x on BTC allows at most 250k; a 1M cap at 100x is a lie.
    cfg = LimitsConfig(default_caps=SymbolCaps(leverage=100, max_notional=D(1_000_000)))
    out = compare_limits(cfg, VENUE, ["BTCUSDT"])
    assert kinds(out) == [("BTCUSDT", MismatchKind.NOTIONAL_ABOVE_VENUE_MAX, Severity.ERROR)]
    assert (out[0].configured, out[0].venue) == (D(1_000_000), D(250_000))
    # The same cap at 20x is fine.
    ok = LimitsConfig(default_caps=SymbolCaps(leverage=20, max_notional=D(1_000_000)))
    assert compare_limits(ok, VENUE, ["BTCUSDT"]) == []


def test_notional_is_judged_at_the_leverage_that_will_be_used():
    # 50x on DOGE (max 20x) will run at 20x, where 5k is the ceiling.
    cfg = LimitsConfig(default_caps=SymbolCaps(leverage=50, max_notional=D(10_000)))
    out = compare_limits(cfg, VENUE, ["DOGEUSDT"])
    assert [m.kind for m in out] == [
        MismatchKind.LEVERAGE_ABOVE_VENUE_MAX,
        MismatchKind.NOTIONAL_ABOVE_VENUE_MAX,
    ]
    assert out[1].venue == D(5_000)


def test_open_orders_above_venue():
    cfg = LimitsConfig(default_caps=SymbolCaps(max_open_orders=12))
    out = compare_limits(cfg, VENUE, ["BTCUSDT", "DOGEUSDT"])
    assert kinds(out) == [("DOGEUSDT", MismatchKind.OPEN_ORDERS_ABOVE_VENUE_MAX, Severity.ERROR)]


def test_rates_above_and_near_the_venue():
    cfg = LimitsConfig(
        rates=RateCaps(orders_per_10s=400, orders_per_minute=1000, request_weight_per_minute=100)
    )
    out = compare_limits(cfg, VENUE, [])
    assert kinds(out) == [
        (None, MismatchKind.RATE_ABOVE_VENUE_LIMIT, Severity.ERROR),  # 400 > 300 per 10 s
        (None, MismatchKind.RATE_NEAR_VENUE_LIMIT, Severity.WARNING),  # 1000 > 80% of 1200
    ]
    assert (out[0].configured, out[0].venue) == (D(400), D(300))


def test_unknown_symbol_and_unreported_rate_windows_are_reported_not_hidden():
    venue = VenueLimits((BTC,), (RateLimit("REQUEST_WEIGHT", 60, 2400),))
    out = compare_limits(LimitsConfig(), venue, ["ETHUSDT", "BTCUSDT"])
    assert kinds(out) == [
        ("ETHUSDT", MismatchKind.VENUE_SYMBOL_LIMITS_UNKNOWN, Severity.WARNING),
        (None, MismatchKind.VENUE_RATE_LIMIT_UNKNOWN, Severity.INFO),
        (None, MismatchKind.VENUE_RATE_LIMIT_UNKNOWN, Severity.INFO),
    ]


def test_per_symbol_override_is_used():
    cfg = LimitsConfig(
        default_caps=SymbolCaps(leverage=3),
        symbol_caps={"BTCUSDT": SymbolCaps(leverage=200)},
    )
    assert cfg.caps_for("DOGEUSDT").leverage == 3
    out = compare_limits(cfg, VENUE, ["BTCUSDT", "DOGEUSDT"])
    assert kinds(out) == [("BTCUSDT", MismatchKind.LEVERAGE_ABOVE_VENUE_MAX, Severity.ERROR)]


# ---------------------------------------------------------------- effective caps


def test_effective_caps_take_the_tighter_side_and_say_which():
    cfg = LimitsConfig(
        default_caps=SymbolCaps(leverage=50, max_notional=D(10_000), max_open_orders=12)
    )
    eff = effective_caps(cfg, VENUE, "DOGEUSDT")
    assert (eff.leverage, eff.max_notional, eff.max_open_orders) == (20, D(5_000), 10)
    assert eff.limited_by_venue == ("leverage", "max_notional", "max_open_orders")
    assert eff.venue_known
    loose = effective_caps(LimitsConfig(), VENUE, "BTCUSDT")
    assert (loose.leverage, loose.max_notional, loose.max_open_orders) == (5, D(1000), 4)
    assert loose.limited_by_venue == ()


def test_effective_caps_without_venue_data_keep_the_configured_caps():
    eff = effective_caps(LimitsConfig(), VenueLimits(), "ETHUSDT")
    assert not eff.venue_known
    assert (eff.leverage, eff.max_notional, eff.max_open_orders) == (5, D(1000), 4)


def test_effective_rate_caps():
    cfg = LimitsConfig(
        rates=RateCaps(orders_per_10s=400, orders_per_minute=100, request_weight_per_minute=5000)
    )
    eff = effective_rate_caps(cfg, VENUE)
    assert (eff.orders_per_10s, eff.orders_per_minute, eff.request_weight_per_minute) == (
        300,
        100,
        2400,
    )
    assert effective_rate_caps(cfg, VenueLimits()) == cfg.rates


# ---------------------------------------------------------------- properties


@st.composite
def symbol_limits(draw, symbol="SYMUSDT"):
    n = draw(st.integers(min_value=1, max_value=6))
    floors = sorted(
        draw(
            st.lists(
                st.integers(min_value=1, max_value=10**8),
                min_size=n - 1,
                max_size=n - 1,
                unique=True,
            )
        )
    )
    edges = [0, *floors]
    caps = [*floors, edges[-1] + draw(st.integers(min_value=1, max_value=10**8))]
    leverages = sorted(
        draw(st.lists(st.integers(min_value=1, max_value=125), min_size=n, max_size=n)),
        reverse=True,
    )
    brackets = tuple(
        LeverageBracket(f, c, lev) for f, c, lev in zip(edges, caps, leverages, strict=True)
    )
    open_orders = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=300)))
    return SymbolLimits(symbol, brackets, max_open_orders=open_orders)


symbol_caps = st.builds(
    SymbolCaps,
    leverage=st.integers(min_value=1, max_value=200),
    max_notional=st.decimals(min_value=D("0.01"), max_value=D(10**9), places=2),
    max_open_orders=st.integers(min_value=1, max_value=300),
)
rate_caps = st.builds(
    RateCaps,
    orders_per_10s=st.integers(min_value=1, max_value=1000),
    orders_per_minute=st.integers(min_value=1, max_value=5000),
    request_weight_per_minute=st.integers(min_value=1, max_value=10_000),
)
rate_limit_sets = st.lists(
    st.builds(
        RateLimit,
        kind=st.sampled_from(list(RateLimitKind)),
        interval_s=st.sampled_from([10, 60]),
        limit=st.integers(min_value=1, max_value=5000),
    ),
    max_size=4,
)


@given(symbol_limits(), symbol_caps)
def test_effective_caps_never_exceed_either_side(limits, caps):
    cfg = LimitsConfig(default_caps=caps)
    eff = effective_caps(cfg, VenueLimits((limits,)), limits.symbol)
    assert eff.leverage <= caps.leverage
    assert eff.leverage <= limits.max_leverage
    venue_notional = limits.max_notional_at(eff.leverage)
    assert venue_notional is not None
    assert eff.max_notional <= caps.max_notional
    assert eff.max_notional <= venue_notional
    assert eff.max_open_orders <= caps.max_open_orders
    if limits.max_open_orders is not None:
        assert eff.max_open_orders <= limits.max_open_orders


@given(symbol_limits(), symbol_caps)
def test_effective_caps_are_a_fixed_point_with_no_errors(limits, caps):
    # Configuring exactly the effective caps leaves nothing the venue would refuse.
    venue = VenueLimits((limits,))
    eff = effective_caps(LimitsConfig(default_caps=caps), venue, limits.symbol)
    fixed = SymbolCaps(
        leverage=eff.leverage, max_notional=eff.max_notional, max_open_orders=eff.max_open_orders
    )
    out = compare_limits(LimitsConfig(default_caps=fixed), venue, [limits.symbol])
    assert [m for m in out if m.severity is Severity.ERROR] == []
    assert (
        effective_caps(LimitsConfig(default_caps=fixed), venue, limits.symbol).limited_by_venue
        == ()
    )


@given(symbol_limits(), symbol_caps)
def test_an_error_is_reported_exactly_when_a_cap_exceeds_the_venue(limits, caps):
    venue = VenueLimits((limits,))
    out = compare_limits(LimitsConfig(default_caps=caps), venue, [limits.symbol])
    reported = {m.kind for m in out if m.severity is Severity.ERROR}
    eff = effective_caps(LimitsConfig(default_caps=caps), venue, limits.symbol)
    assert (MismatchKind.LEVERAGE_ABOVE_VENUE_MAX in reported) == (
        caps.leverage > limits.max_leverage
    )
    assert (MismatchKind.NOTIONAL_ABOVE_VENUE_MAX in reported) == (
        "max_notional" in eff.limited_by_venue
    )
    assert (MismatchKind.OPEN_ORDERS_ABOVE_VENUE_MAX in reported) == (
        "max_open_orders" in eff.limited_by_venue
    )


@given(
    symbol_limits(),
    st.integers(min_value=1, max_value=130),
    st.integers(min_value=0, max_value=130),
)
def test_more_leverage_never_allows_more_notional(limits, lev, more):
    low = limits.max_notional_at(lev)
    high = limits.max_notional_at(lev + more)
    if low is None:
        assert high is None
    elif high is not None:
        assert high <= low


@given(rate_caps, rate_limit_sets)
def test_effective_rates_never_exceed_either_side(rates, venue_rates):
    venue = VenueLimits(rate_limits=venue_rates)
    eff = effective_rate_caps(LimitsConfig(rates=rates), venue)
    for mine, safe in zip(rates.as_rate_limits(), eff.as_rate_limits(), strict=True):
        assert safe.limit <= mine.limit
        theirs = venue.rate_limit(mine.kind, mine.interval_s)
        if theirs is not None:
            assert safe.limit <= theirs
    # And they raise no rate errors when configured.
    out = compare_limits(LimitsConfig(rates=eff), venue, [])
    assert all(m.kind is not MismatchKind.RATE_ABOVE_VENUE_LIMIT for m in out)
