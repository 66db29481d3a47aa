import datetime as dt
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.core.slippage import (
    MAX_BPS,
    SESSION_HOURS_UTC,
    SessionBucket,
    SlippageConfig,
    SlippageModel,
    session_bucket,
)
from scalper.core.types import Side

D = Decimal
# 2024-03-14 00:00:00 UTC
DAY = 1_710_374_400.0
HOUR = 3600.0


def at(hour: float) -> float:
    return DAY + hour * HOUR


# ---------------------------------------------------------------- buckets


@pytest.mark.parametrize(
    ("hour", "bucket"),
    [
        (0, SessionBucket.ASIA),
        (6.9999, SessionBucket.ASIA),
        (7, SessionBucket.EU),
        (12.9999, SessionBucket.EU),
        (13, SessionBucket.US),
        (20.9999, SessionBucket.US),
        (21, SessionBucket.OVERNIGHT),
        (23.9999, SessionBucket.OVERNIGHT),
        (24, SessionBucket.ASIA),  # next midnight
    ],
)
def test_bucket_boundaries(hour, bucket):
    assert session_bucket(at(hour)) is bucket


def test_buckets_partition_the_day():
    hours = sorted(h for start, end in SESSION_HOURS_UTC.values() for h in range(start, end))
    assert hours == list(range(24))
    assert set(SESSION_HOURS_UTC) == set(SessionBucket)


def test_pre_epoch_and_tiny_negative_timestamps():
    assert session_bucket(-1.0) is SessionBucket.OVERNIGHT  # 1969-12-31 23:59:59
    assert session_bucket(-1e-20) is SessionBucket.OVERNIGHT  # rounds to 86400.0 internally
    assert session_bucket(-86_400.0) is SessionBucket.ASIA


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_timestamps_are_rejected(bad):
    with pytest.raises(CoreValueError) as exc:
        session_bucket(bad)
    assert exc.value.field == "utc_ts"


# ---------------------------------------------------------------- estimates


def test_market_buy_on_btc_during_us_hours_fills_higher():
    est = SlippageModel().estimate("BTCUSDT", Side.BUY, D("60000"), at(14.5))
    assert est.bucket is SessionBucket.US
    assert est.bps == D("1.0")
    assert est.adjusted_price == D("60006")
    assert est.preset_found
    assert est.reason == "preset"


def test_market_sell_on_eth_overnight_fills_lower():
    est = SlippageModel().estimate("ETHUSDT", Side.SELL, D("3000"), at(22))
    assert est.bucket is SessionBucket.OVERNIGHT
    assert est.bps == D("3.0")
    assert est.adjusted_price == D("2999.1")


def test_missing_preset_uses_the_conservative_default_and_says_so():
    est = SlippageModel().estimate("PEPEUSDT", Side.BUY, D("0.00001"), at(3))
    assert not est.preset_found
    assert est.reason == "default_preset"
    assert est.bps == D(5)
    assert est.adjusted_price == D("0.000010005")


def test_symbol_with_a_partial_table_falls_back_per_session():
    cfg = SlippageConfig(presets={"SOLUSDT": {"us": 2.5}})
    model = SlippageModel(cfg)
    assert model.estimate("SOLUSDT", Side.SELL, D(100), at(15)).bps == D("2.5")
    fallback = model.estimate("SOLUSDT", Side.SELL, D(100), at(2))
    assert fallback.reason == "default_preset"
    assert fallback.bps == cfg.default_bps


def test_zero_bps_gives_the_touch_never_better():
    model = SlippageModel(SlippageConfig(default_bps=0, presets={}))
    for side in Side:
        assert model.estimate("X", side, D("123.45"), at(1)).adjusted_price == D("123.45")


def test_config_accepts_strings_and_floats_as_plain_toml_values():
    cfg = SlippageConfig(default_bps="7.5", presets={"BTCUSDT": {"asia": 0.1, "eu": "1"}})
    assert cfg.default_bps == D("7.5")
    assert cfg.presets["BTCUSDT"] == {SessionBucket.ASIA: D("0.1"), SessionBucket.EU: D(1)}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"default_bps": -1}, "default_bps"),
        ({"default_bps": math.nan}, "default_bps"),
        ({"default_bps": "abc"}, "default_bps"),
        ({"default_bps": MAX_BPS + 1}, "default_bps"),
        ({"default_bps": True}, "default_bps"),
        ({"presets": {"BTCUSDT": {"lunch": 1}}}, "presets"),
        ({"presets": {"": {"asia": 1}}}, "presets"),
        ({"presets": {"BTCUSDT": 1}}, "presets"),
        ({"presets": {"BTCUSDT": {"asia": -0.5}}}, "presets.BTCUSDT.asia"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(CoreValueError) as exc:
        SlippageConfig(**kwargs)
    assert exc.value.field == field


@pytest.mark.parametrize(
    ("symbol", "side", "price", "field"),
    [
        ("", Side.BUY, D(1), "symbol"),
        ("BTCUSDT", "HOLD", D(1), "side"),
        ("BTCUSDT", Side.BUY, D(0), "price"),
        ("BTCUSDT", Side.BUY, D(-5), "price"),
        ("BTCUSDT", Side.BUY, D("NaN"), "price"),
        ("BTCUSDT", Side.BUY, 100.0, "price"),
    ],
)
def test_bad_estimate_input_names_the_field(symbol, side, price, field):
    with pytest.raises(CoreValueError) as exc:
        SlippageModel().estimate(symbol, side, price, at(1))
    assert exc.value.field == field


# ---------------------------------------------------------------- properties

prices = st.decimals(
    min_value=D("0.00000001"),
    max_value=D("10000000"),
    allow_nan=False,
    allow_infinity=False,
    places=8,
).filter(lambda p: p > 0)
bps_values = st.decimals(min_value=D("0.01"), max_value=MAX_BPS, places=2)
timestamps = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
symbols = st.sampled_from(["BTCUSDT", "ETHUSDT", "DOGEUSDT", "X"])
configs = st.builds(
    SlippageConfig,
    default_bps=bps_values,
    presets=st.dictionaries(
        symbols,
        st.dictionaries(st.sampled_from(list(SessionBucket)), bps_values, max_size=4),
        max_size=3,
    ),
)


@given(configs, symbols, st.sampled_from(list(Side)), prices, timestamps)
def test_slippage_is_always_strictly_adverse_and_bounded(cfg, symbol, side, price, ts):
    est = SlippageModel(cfg).estimate(symbol, side, price, ts)
    assert est.bps > 0
    if side is Side.BUY:
        assert est.adjusted_price > price
    else:
        assert D(0) < est.adjusted_price < price
    # The move is exactly the preset, no more.
    assert abs(est.adjusted_price - price) == price * est.bps / D(10_000)


@given(configs, symbols, st.sampled_from(list(Side)), prices, timestamps)
def test_estimates_are_deterministic_and_report_their_source(cfg, symbol, side, price, ts):
    model = SlippageModel(cfg)
    est = model.estimate(symbol, side, price, ts)
    assert est == SlippageModel(cfg).estimate(symbol, side, price, ts)
    has_preset = est.bucket in cfg.presets.get(symbol, {})
    assert est.preset_found is has_preset
    assert est.reason == ("preset" if has_preset else "default_preset")
    if not has_preset:
        assert est.bps == cfg.default_bps


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_bucket_is_total_over_finite_timestamps(ts):
    assert session_bucket(ts) in SessionBucket


@given(st.floats(min_value=-62_135_596_800, max_value=253_402_300_799, allow_nan=False))
def test_bucket_agrees_with_the_calendar(ts):
    # Years 1..9999: the range datetime can check against.
    hour = dt.datetime.fromtimestamp(ts, tz=dt.UTC).hour
    start, end = SESSION_HOURS_UTC[session_bucket(ts)]
    # fromtimestamp rounds to microseconds; skip the instants that round across an hour.
    seconds_into_hour = ts % 3600.0
    if 1e-3 < seconds_into_hour < 3600.0 - 1e-3:
        assert start <= hour < end


@given(timestamps, st.integers(min_value=-1000, max_value=1000))
def test_bucket_repeats_daily(ts, days):
    shifted = ts + days * 86_400.0
    # Only where the float addition is exact enough to stay within the same hour.
    if abs((shifted - days * 86_400.0) - ts) < 1e-6 and 1e-3 < ts % 3600.0 < 3600.0 - 1e-3:
        assert session_bucket(shifted) is session_bucket(ts)
