import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.core.evidence import (
    ContradictionBurn,
    EvidenceConfig,
    EvidenceHealth,
    SourceConfig,
    SourceHealth,
    SourceHealthSnapshot,
    SourceKind,
    assess_contradiction,
    combine_confidence,
)

REST = SourceConfig(expected_interval_s=15.0, warn_after_s=45.0, stale_after_s=120.0)
STREAM = SourceConfig(expected_interval_s=30.0, warn_after_s=60.0, stale_after_s=90.0)


def rest(started_at=0.0, **kw):
    return SourceHealth(SourceKind.REST, REST, window_s=300.0, started_at=started_at, **kw)


def poll(src, start, stop, step=15.0):
    t = start
    while t <= stop:
        src.observe(t)
        t += step


# -- one source ------------------------------------------------------------------------------


def test_healthy_rest_poller_is_fully_trusted():
    src = rest()
    poll(src, 0.0, 600.0)
    snap = src.snapshot(600.0)
    assert snap.confidence == 1.0
    assert snap.coverage == 1.0
    assert not snap.stale
    assert snap.reasons == ()
    assert snap.observations == 20  # one per slot in the 300 s window


def test_a_source_that_never_spoke_is_not_trusted():
    src = rest(started_at=100.0)
    snap = src.snapshot(100.0)
    assert snap.confidence == 0.0
    assert snap.stale
    assert "never_observed" in snap.reasons


def test_freshness_degrades_linearly_between_warn_and_stale():
    cfg = SourceConfig(expected_interval_s=15.0, warn_after_s=45.0, stale_after_s=120.0)
    # A one-slot window holds only the running slot, which counts once covered: coverage
    # stays 1 and freshness alone speaks.
    src = SourceHealth(SourceKind.REST, cfg, window_s=15.0, started_at=0.0)
    src.observe(0.0)
    assert src.snapshot(45.0).confidence == 1.0
    mid = src.snapshot(82.5)
    assert mid.freshness_s == 82.5
    assert mid.coverage == 1.0
    assert mid.confidence == pytest.approx(0.5)
    assert "freshness_degraded" in mid.reasons
    dead = src.snapshot(120.0)
    assert dead.stale
    assert dead.confidence == 0.0


def test_quiet_user_stream_answering_pings_is_fresh():
    # No trading for ten minutes: only the 30 s ping/pong keepalives arrive.
    src = SourceHealth(SourceKind.USER_STREAM, STREAM, window_s=300.0, started_at=0.0)
    poll(src, 0.0, 600.0, step=30.0)
    snap = src.snapshot(610.0)
    assert not snap.stale
    assert snap.confidence == 1.0


def test_a_burst_of_events_does_not_hide_a_silence():
    src = rest()
    for i in range(200):  # a fill storm at the start of the window
        src.observe(1.0 + i * 0.01)
    snap = src.snapshot(299.0)
    # One covered slot out of the 19 that had their chance.
    assert snap.coverage == pytest.approx(1 / 19)
    assert "coverage_low" in snap.reasons
    assert snap.stale


def test_listen_key_expiry_darkens_slots_even_though_keepalives_kept_arriving():
    src = SourceHealth(SourceKind.USER_STREAM, STREAM, window_s=300.0, started_at=0.0)
    poll(src, 0.0, 300.0, step=30.0)
    before = src.snapshot(300.0)
    # At 300 we learn the key expired at 210: the pongs since then carried no user data.
    src.record_gap(300.0, 90.0, "listen_key_expired")
    after = src.snapshot(300.0)
    assert after.coverage < before.coverage
    assert after.gap_count == 1
    assert after.confidence < before.confidence
    assert "gap:listen_key_expired" in after.reasons
    # Fresh data after the reconnect covers the new slots again.
    poll(src, 301.0, 600.0, step=30.0)
    later = src.snapshot(600.0)
    assert later.gap_count == 0  # slid out of the window
    assert later.confidence == 1.0


def test_error_rate_counts_failures_against_successes_with_reason_tags():
    src = rest()
    for i in range(20):
        t = i * 15.0
        if i % 5 == 4:
            src.record_error(t, "timeout")
        else:
            src.observe(t)
    snap = src.snapshot(299.0)
    assert snap.error_count == 4
    assert snap.error_rate == pytest.approx(4 / (4 + snap.observations))
    assert "errors" in snap.reasons
    assert "error:timeout" in snap.reasons
    assert snap.confidence < snap.coverage


def test_errors_leave_the_window_and_confidence_recovers():
    src = rest()
    src.observe(0.0)
    for t in (5.0, 6.0, 7.0):
        src.record_error(t, "http_503")
    poll(src, 15.0, 700.0)
    assert src.snapshot(700.0).error_count == 0
    assert src.snapshot(700.0).confidence == 1.0


def test_time_must_not_run_backwards():
    src = rest()
    src.observe(10.0)
    with pytest.raises(CoreValueError) as e:
        src.observe(9.0)
    assert e.value.field == "now"
    with pytest.raises(CoreValueError):
        src.snapshot(5.0)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.record_error(1.0, ""), "reason"),
        (lambda s: s.record_gap(1.0, -1.0, "x"), "duration_s"),
        (lambda s: s.record_gap(1.0, math.nan, "x"), "duration_s"),
        (lambda s: s.observe(math.inf), "now"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(CoreValueError) as e:
        call(rest())
    assert e.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (
            {"expected_interval_s": 0.0, "warn_after_s": 1.0, "stale_after_s": 2.0},
            "expected_interval_s",
        ),
        ({"expected_interval_s": 1.0, "warn_after_s": 5.0, "stale_after_s": 5.0}, "stale_after_s"),
        ({"expected_interval_s": 1.0, "warn_after_s": -1.0, "stale_after_s": 5.0}, "warn_after_s"),
        (
            {"expected_interval_s": 1.0, "warn_after_s": 1.0, "stale_after_s": 5.0, "weight": 1.5},
            "weight",
        ),
    ],
)
def test_source_config_validation(kwargs, field):
    with pytest.raises(CoreValueError) as e:
        SourceConfig(**kwargs)
    assert e.value.field == field


def test_evidence_config_validation():
    with pytest.raises(CoreValueError) as e:
        EvidenceConfig(window_s=10.0)  # shorter than the 15 s REST interval
    assert e.value.field == "window_s"
    with pytest.raises(CoreValueError) as e:
        EvidenceConfig(gap_decay=2.0)
    assert e.value.field == "gap_decay"
    cfg = EvidenceConfig()
    assert cfg.source(SourceKind.REST) is cfg.rest
    assert cfg.market_data.weight == 0.0


# -- all sources -----------------------------------------------------------------------------


def healthy(until=300.0):
    h = EvidenceHealth(started_at=0.0)
    t = 0.0
    while t <= until:
        for kind in SourceKind:
            h.observe(kind, t)
        t += 1.0
    return h


def test_all_sources_healthy_gives_full_confidence():
    snap = healthy().snapshot(300.0)
    assert snap.confidence == 1.0
    assert snap.reasons == ()
    assert snap.weakest is None


def test_dead_market_data_does_not_dent_account_confidence():
    h = healthy(100.0)
    for t in range(101, 301):
        for kind in (SourceKind.USER_STREAM, SourceKind.REST, SourceKind.FILLS):
            h.observe(kind, float(t))
    snap = h.snapshot(300.0)
    assert snap.source(SourceKind.MARKET_DATA).stale
    assert snap.confidence == 1.0


def test_dead_rest_collapses_confidence_and_is_named_weakest():
    h = healthy(100.0)
    for t in range(101, 301):
        for kind in (SourceKind.USER_STREAM, SourceKind.FILLS, SourceKind.MARKET_DATA):
            h.observe(kind, float(t))
    snap = h.snapshot(300.0)
    assert snap.confidence == 0.0
    assert snap.weakest is SourceKind.REST
    assert "source_degraded:REST" in snap.reasons


def test_dead_stream_with_fresh_rest_is_degraded_not_dead():
    h = healthy(100.0)
    for t in range(101, 301):
        for kind in (SourceKind.REST, SourceKind.FILLS, SourceKind.MARKET_DATA):
            h.observe(kind, float(t))
    snap = h.snapshot(300.0)
    # REST backs the stream up with a lag: weight 0.8 leaves 0.2.
    assert snap.confidence == pytest.approx(0.2)
    assert snap.weakest is SourceKind.USER_STREAM


def test_weighted_min_is_not_a_mean_and_not_a_product():
    def snap(kind, c):
        return SourceHealthSnapshot(kind, 0.0, 0.0, 1.0, 0.0, 0, 0, 1, c, False, ())

    weights = {SourceKind.REST: 1.0, SourceKind.USER_STREAM: 1.0, SourceKind.FILLS: 1.0}
    three_fine = [snap(k, 0.9) for k in weights]
    assert combine_confidence(three_fine, weights)[0] == pytest.approx(0.9)  # product: 0.73
    one_dead = [
        snap(SourceKind.REST, 0.0),
        snap(SourceKind.USER_STREAM, 1.0),
        snap(SourceKind.FILLS, 1.0),
    ]
    assert combine_confidence(one_dead, weights) == (0.0, SourceKind.REST)  # mean: 0.67


# -- contradictions --------------------------------------------------------------------------


def test_contradiction_between_fresh_sources_is_most_severe():
    h = healthy()
    fresh = h.record_contradiction(
        "BTCUSDT", "position_mismatch", SourceKind.USER_STREAM, SourceKind.REST, 300.0
    )
    assert fresh.severity == 1.0
    assert fresh.reasons == ("both_fresh",)


def test_contradiction_against_a_stale_source_weighs_only_the_floor():
    h = healthy(100.0)
    for t in range(101, 301):
        for kind in (SourceKind.USER_STREAM, SourceKind.FILLS, SourceKind.MARKET_DATA):
            h.observe(kind, float(t))
    stale = h.record_contradiction(
        "BTCUSDT", "order_status", SourceKind.USER_STREAM, SourceKind.REST, 300.0
    )
    assert stale.severity == pytest.approx(h.config.contradiction_floor)
    assert stale.reasons == ("stale:REST",)


def test_contradictions_burn_faster_than_staleness_alone():
    # Seed PR-1: contradictory evidence must clamp faster than stale-only evidence.
    h = healthy()
    stale_only = EvidenceHealth(started_at=0.0)
    for t in (300.0, 301.0, 302.0):
        h.record_contradiction(
            "ETHUSDT", "fill_vs_rest", SourceKind.USER_STREAM, SourceKind.REST, t
        )
    assert h.snapshot(302.0).contradiction_burn > 2.5
    assert "contradiction_burn" in h.snapshot(302.0).reasons
    assert stale_only.snapshot(302.0).contradiction_burn == 0.0


def test_assess_contradiction_validates():
    s = SourceHealthSnapshot(SourceKind.REST, 0.0, 0.0, 1.0, 0.0, 0, 0, 1, 1.0, False, ())
    with pytest.raises(CoreValueError) as e:
        assess_contradiction("", "k", s, s)
    assert e.value.field == "symbol"
    with pytest.raises(CoreValueError) as e:
        assess_contradiction("BTCUSDT", "k", s, s, magnitude=1.5)
    assert e.value.field == "magnitude"


def test_burn_halves_every_half_life():
    burn = ContradictionBurn(half_life_s=120.0)
    assert burn.value(0.0) == 0.0
    burn.add(1.0, 10.0)
    assert burn.value(130.0) == pytest.approx(0.5)
    assert burn.value(250.0) == pytest.approx(0.25)
    assert burn.add(1.0, 130.0) == pytest.approx(1.5)
    assert burn.count == 2
    assert burn.last_added_at == 130.0
    with pytest.raises(CoreValueError) as e:
        burn.value(100.0)
    assert e.value.field == "now"
    with pytest.raises(CoreValueError) as e:
        burn.add(-0.1, 200.0)
    assert e.value.field == "severity"
    with pytest.raises(CoreValueError):
        ContradictionBurn(half_life_s=0.0)


# -- properties ------------------------------------------------------------------------------

# An event: (dt, kind, payload) with kind in obs / err / gap.
events = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=40.0, allow_nan=False),
        st.sampled_from(["obs", "obs", "obs", "err", "gap"]),
        st.floats(min_value=0.0, max_value=200.0, allow_nan=False),
    ),
    max_size=60,
)


def replay(history, *, drop=frozenset(), extra_err=frozenset(), extra_gap=frozenset()):
    src = rest()
    t = 0.0
    for i, (dt, kind, dur) in enumerate(history):
        t += dt
        if i in extra_err:
            src.record_error(t, "injected")
        if i in extra_gap:
            src.record_gap(t, dur, "injected")
        if kind == "obs" and i not in drop:
            src.observe(t)
        elif kind == "err":
            src.record_error(t, "timeout")
        elif kind == "gap":
            src.record_gap(t, dur, "disconnect")
    return src, t


@given(events, st.floats(min_value=0.0, max_value=400.0))
def test_confidence_and_coverage_stay_in_unit_interval(history, tail):
    src, t = replay(history)
    snap = src.snapshot(t + tail)
    assert 0.0 <= snap.confidence <= 1.0
    assert 0.0 <= snap.coverage <= 1.0
    assert 0.0 <= snap.error_rate <= 1.0
    assert snap.freshness_s >= 0.0


@settings(max_examples=200)
@given(events, st.data(), st.floats(min_value=0.0, max_value=200.0))
def test_more_errors_gaps_or_silence_never_raise_confidence(history, data, tail):
    n = len(history)
    idx = (
        st.sets(st.integers(min_value=0, max_value=max(n - 1, 0)), max_size=5)
        if n
        else st.just(set())
    )
    drop = frozenset(data.draw(idx))
    extra_err = frozenset(data.draw(idx))
    extra_gap = frozenset(data.draw(idx))
    base, t = replay(history)
    worse, _ = replay(history, drop=drop, extra_err=extra_err, extra_gap=extra_gap)
    b, w = base.snapshot(t + tail), worse.snapshot(t + tail)
    assert w.confidence <= b.confidence + 1e-12
    assert w.coverage <= b.coverage + 1e-12
    assert w.error_rate >= b.error_rate - 1e-12
    assert w.freshness_s >= b.freshness_s
    assert w.gap_count >= b.gap_count
    assert w.stale or not b.stale


@given(events, st.floats(min_value=0.0, max_value=400.0))
def test_scoring_is_deterministic(history, tail):
    a, t = replay(history)
    b, _ = replay(history)
    assert a.snapshot(t + tail) == b.snapshot(t + tail)


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=100.0), st.floats(min_value=0.0, max_value=1.0)
        ),
        max_size=20,
    ),
    st.lists(st.floats(min_value=0.0, max_value=500.0), min_size=1, max_size=20),
)
def test_burn_is_never_negative_and_only_decays_without_adds(adds, probes):
    burn = ContradictionBurn(half_life_s=120.0)
    t = 0.0
    for dt, sev in adds:
        t += dt
        before = burn.value(t)
        assert burn.add(sev, t) >= before
    values = [burn.value(t + p) for p in sorted(probes)]
    assert all(v >= 0.0 for v in values)
    assert all(later <= earlier for earlier, later in itertools.pairwise(values))


confidence = st.floats(min_value=0.0, max_value=1.0)


@given(confidence, confidence, confidence, st.floats(min_value=0.0, max_value=1.0))
def test_contradiction_severity_is_monotone_in_trust(ca, cb, lower, magnitude):
    def snap(c):
        return SourceHealthSnapshot(SourceKind.REST, 0.0, 0.0, 1.0, 0.0, 0, 0, 1, c, False, ())

    full = assess_contradiction("BTCUSDT", "k", snap(ca), snap(cb), magnitude=magnitude)
    less = assess_contradiction("BTCUSDT", "k", snap(min(ca, lower)), snap(cb), magnitude=magnitude)
    assert 0.0 <= less.severity <= full.severity <= 1.0
    fresh = assess_contradiction("BTCUSDT", "k", snap(1.0), snap(1.0), magnitude=magnitude)
    assert full.severity <= fresh.severity
