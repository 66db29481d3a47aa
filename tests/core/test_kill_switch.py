"""Kill switch: triggers, escalation, expiry, operator control, fail-closed, exits never blocked."""

import copy
import itertools
import math
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.errors import (
    BINANCE_USDM_TABLE,
    ErrorClass,
    Operation,
    classify_error,
    classify_transport_failure,
)
from scalper.core.errors_base import CoreValueError
from scalper.core.kill_switch import (
    API_ERROR_REASONS,
    SECONDS_PER_DAY,
    DayEquity,
    KillReason,
    KillSwitch,
    KillSwitchConfig,
    KillSwitchEventKind,
    KillSwitchInputs,
    KillSwitchState,
    is_api_error,
    utc_day,
)

R = KillReason
D = Decimal


def calm(**changes: Any) -> KillSwitchInputs:
    base = KillSwitchInputs(
        equity=D("10000"),
        day_start_equity=D("10000"),
        peak_equity=D("10000"),
        reconcile_mismatch_streak=0,
        posture_red=False,
        api_errors=0,
        api_requests=0,
    )
    return attrs.evolve(base, **changes)


def ready(config: KillSwitchConfig | None = None, at: float = 0.0) -> KillSwitch:
    ks = KillSwitch(config or KillSwitchConfig())
    state = ks.evaluate(calm(), at)
    assert not state.halted
    return ks


# --------------------------------------------------------------------------------------------
# Triggers
# --------------------------------------------------------------------------------------------


def test_fresh_switch_blocks_entries_until_first_evaluation() -> None:
    ks = KillSwitch()
    assert ks.is_entry_blocked(0.0)
    assert ks.state(0.0).reasons == (R.NOT_EVALUATED,)
    state = ks.evaluate(calm(), 1.0)
    assert not state.halted
    assert not ks.is_entry_blocked(1.0)
    assert state.reasons == ()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"reconcile_mismatch_streak": 6}, R.RECONCILE_MISMATCH),
        ({"posture_red": True}, R.POSTURE_RED),
        ({"api_errors": 12, "api_requests": 1000}, R.API_ERROR_BURST),
        ({"api_errors": 5, "api_requests": 12}, R.API_ERROR_RATE),
        ({"equity": D("9500")}, R.DAILY_LOSS),  # exactly 5% of 10000
        ({"equity": D("8500"), "day_start_equity": D("8500")}, R.DRAWDOWN),  # 15% off peak
        ({"equity": D("NaN")}, R.INVALID_INPUTS),
    ],
)
def test_each_trigger_trips(changes: dict[str, Any], reason: KillReason) -> None:
    ks = ready()
    state = ks.evaluate(calm(**changes), 10.0)
    assert state.halted
    assert state.new_trip
    assert state.active == (reason,)
    assert reason in state.reasons
    assert state.until == 10.0 + 60.0
    assert state.trip_count == 1
    assert state.exits_allowed


@pytest.mark.parametrize(
    "changes",
    [
        {"reconcile_mismatch_streak": 5},
        {"api_errors": 11, "api_requests": 1000},
        {"api_errors": 5, "api_requests": 9},  # 55%, but of too few requests to judge a rate
        {"api_errors": 4, "api_requests": 12},  # 33% < 35%
        {"equity": D("9500.01")},
        {"equity": D("8500.01"), "day_start_equity": D("8500.01")},
    ],
)
def test_just_below_each_limit_does_not_trip(changes: dict[str, Any]) -> None:
    ks = ready()
    state = ks.evaluate(calm(**changes), 10.0)
    assert not state.halted
    assert state.active == ()


def test_min_equity_floor() -> None:
    ks = ready(KillSwitchConfig(min_equity=D("9900"), max_daily_loss_frac=D(0)))
    assert not ks.evaluate(calm(equity=D("9900")), 1.0).halted
    state = ks.evaluate(calm(equity=D("9899.99")), 2.0)
    assert state.active == (R.MIN_EQUITY,)
    assert "equity=9899.99" in state.details


def test_zero_limits_disable_triggers() -> None:
    config = KillSwitchConfig(
        reconcile_mismatch_streak_max=0,
        trip_on_red_posture=False,
        api_error_burst_max=0,
        api_error_rate_max=0.0,
        max_daily_loss_frac=D(0),
        max_drawdown_frac=D(0),
    )
    ks = ready(config)
    worst = calm(
        equity=D("1"),
        reconcile_mismatch_streak=100,
        posture_red=True,
        api_errors=500,
        api_requests=500,
    )
    assert not ks.evaluate(worst, 1.0).halted
    # Fail-closed cannot be configured away.
    assert ks.evaluate(worst, 2.0).active == ()
    assert ks.evaluate(calm(equity=D("NaN")), 3.0).active == (R.INVALID_INPUTS,)


def test_drawdown_uses_current_equity_when_above_stale_peak() -> None:
    ks = ready()
    # The caller's peak lags: equity is at a new high, so drawdown is zero.
    state = ks.evaluate(calm(equity=D("12000"), peak_equity=D("10000")), 1.0)
    assert not state.halted


def test_error_burst_counts_a_sliding_window() -> None:
    ks = ready(at=0.0)
    assert not ks.evaluate(calm(api_errors=6, api_requests=1000), 1.0).halted
    state = ks.evaluate(calm(api_errors=6, api_requests=1000), 30.0)
    assert state.active == (R.API_ERROR_BURST,)
    assert "api_errors_in_window=12" in state.details

    ks = ready(at=0.0)
    ks.evaluate(calm(api_errors=6, api_requests=1000), 1.0)
    # 61 s later the first six have left the 60 s window.
    assert not ks.evaluate(calm(api_errors=6, api_requests=1000), 62.0).halted


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"equity": D("NaN")}, "equity"),
        ({"equity": D("Infinity")}, "equity"),
        ({"equity": 9000.0}, "equity"),  # a float is a type bug upstream: fail closed
        ({"day_start_equity": D(0)}, "day_start_equity"),
        ({"peak_equity": D("-1")}, "peak_equity"),
        ({"reconcile_mismatch_streak": -1}, "reconcile_mismatch_streak"),
        ({"api_errors": -3}, "api_errors"),
        ({"api_requests": True}, "api_requests"),
        ({"posture_red": "no"}, "posture_red"),
    ],
)
def test_invalid_inputs_fail_closed(changes: dict[str, Any], field: str) -> None:
    ks = ready()
    state = ks.evaluate(calm(**changes), 5.0)
    assert state.halted
    assert R.INVALID_INPUTS in state.active
    assert f"invalid:{field}" in state.details


def test_broken_clock_raises() -> None:
    ks = ready(at=10.0)
    with pytest.raises(CoreValueError) as info:
        ks.evaluate(calm(), 9.0)
    assert info.value.field == "now"
    with pytest.raises(CoreValueError):
        ks.evaluate(calm(), math.nan)
    with pytest.raises(CoreValueError):
        ks.is_entry_blocked(math.inf)


# --------------------------------------------------------------------------------------------
# Halts, escalation, de-escalation
# --------------------------------------------------------------------------------------------


def test_halt_expires_at_until() -> None:
    ks = ready()
    tripped = ks.evaluate(calm(reconcile_mismatch_streak=7), 100.0)
    assert tripped.until == 160.0
    # The mismatch clears at once, but the halt runs its course.
    state = ks.evaluate(calm(), 130.0)
    assert state.halted
    assert state.reasons == (R.RECONCILE_MISMATCH,)
    assert state.active == ()
    state = ks.evaluate(calm(), 159.9)
    assert state.halted
    assert ks.is_entry_blocked(159.99)
    state = ks.evaluate(calm(), 160.0)
    assert not state.halted
    assert state.until is None
    assert not ks.is_entry_blocked(160.0)


def test_persistent_trigger_escalates_to_the_cap() -> None:
    ks = ready()
    trips: list[KillSwitchState] = []
    t = 0.0
    while t <= 12_000.0:
        t += 10.0
        state = ks.evaluate(calm(posture_red=True), t)
        assert state.halted
        if state.new_trip:
            trips.append(state)
    assert [s.halt_sec for s in trips[:6]] == [60.0, 300.0, 900.0, 3600.0, 3600.0, 3600.0]
    # Each re-trip happens at the first evaluation after the previous halt ended.
    for prev, nxt in itertools.pairwise(trips):
        assert prev.until is not None
        assert prev.until <= nxt.at < prev.until + 10.0
    assert trips[-1].level == KillSwitchConfig().top_level
    assert trips[-1].trip_count == len(trips)
    assert [e.kind for e in ks.history] == [KillSwitchEventKind.TRIP] * len(trips)


def test_repeated_trips_within_calm_period_escalate() -> None:
    ks = ready()
    first = ks.evaluate(calm(posture_red=True), 0.0)
    ks.evaluate(calm(), 10.0)
    assert ks.evaluate(calm(), 60.0).halted is False
    second = ks.evaluate(calm(posture_red=True), 600.0)  # within calm_sec of the first halt
    assert (first.halt_sec, second.halt_sec) == (60.0, 300.0)
    assert second.level == 2


def test_calm_period_de_escalates() -> None:
    config = KillSwitchConfig()
    ks = ready(config)
    ks.evaluate(calm(posture_red=True), 0.0)  # 60 s, until 60
    ks.evaluate(calm(posture_red=True), 60.0)  # 300 s, until 360
    ks.evaluate(calm(posture_red=True), 360.0)  # 900 s, until 1260
    assert ks.evaluate(calm(), 1260.0).level == 3
    # One calm period after the halt ended: one rung down.
    assert ks.evaluate(calm(), 1260.0 + config.calm_sec).level == 2
    # Two more: back to the bottom, and a new trip halts for the first rung again.
    assert ks.evaluate(calm(), 1260.0 + 3 * config.calm_sec).level == 0
    state = ks.evaluate(calm(posture_red=True), 1260.0 + 3 * config.calm_sec + 1.0)
    assert state.halt_sec == 60.0


def test_no_de_escalation_while_trouble_persists() -> None:
    config = KillSwitchConfig(calm_sec=100.0)
    ks = ready(config)
    for t in range(0, 2000, 10):
        state = ks.evaluate(calm(reconcile_mismatch_streak=9), float(t))
    assert state.level == config.top_level


def test_stale_evaluation_blocks_entries() -> None:
    ks = ready(at=0.0)
    assert not ks.is_entry_blocked(30.0)
    assert ks.is_entry_blocked(30.1)
    assert ks.state(30.1).reasons == (R.EVALUATION_STALE,)
    relaxed = ready(KillSwitchConfig(max_evaluation_age_sec=0.0), at=0.0)
    assert not relaxed.is_entry_blocked(1e6)


def test_history_is_bounded() -> None:
    ks = ready(KillSwitchConfig(history_max=3))
    for i in range(10):
        ks.operator_halt(float(i), f"drill {i}")
    assert len(ks.history) == 3
    assert ks.history[-1].reasons == ("drill 9",)


# --------------------------------------------------------------------------------------------
# Operator
# --------------------------------------------------------------------------------------------


def test_operator_halt_holds_until_resume() -> None:
    ks = ready()
    state = ks.operator_halt(5.0, "exchange maintenance announced")
    assert state.halted
    assert state.operator_halted
    assert state.reasons == (R.OPERATOR,)
    # Clean evaluations do not lift an operator halt.
    assert ks.evaluate(calm(), 20.0).halted
    decision = ks.operator_resume(21.0)
    assert decision.resumed
    assert not decision.state.halted
    assert [e.kind for e in ks.history] == [
        KillSwitchEventKind.OPERATOR_HALT,
        KillSwitchEventKind.OPERATOR_RESUME,
    ]


def test_operator_resume_refused_while_a_trigger_is_active() -> None:
    ks = ready()
    ks.operator_halt(1.0, "investigating")
    ks.evaluate(calm(reconcile_mismatch_streak=8), 2.0)
    decision = ks.operator_resume(3.0)
    assert not decision.resumed
    assert decision.blocking == (R.RECONCILE_MISMATCH,)
    assert decision.state.halted
    assert ks.operator_halted
    assert ks.history[-1].kind is KillSwitchEventKind.RESUME_REFUSED
    # Once reconciliation is clean, the operator can resume, which also ends the timed halt.
    ks.evaluate(calm(), 10.0)
    assert ks.state(10.0).until == 62.0
    decision = ks.operator_resume(11.0)
    assert decision.resumed
    assert not ks.is_entry_blocked(11.0)
    assert ks.level == 1  # escalation memory survives the resume


def test_operator_resume_needs_a_fresh_evaluation() -> None:
    fresh = KillSwitch()
    assert fresh.operator_resume(0.0).blocking == (R.NOT_EVALUATED,)
    ks = ready(at=0.0)
    ks.operator_halt(1.0, "drill")
    assert ks.operator_resume(100.0).blocking == (R.EVALUATION_STALE,)
    ks.evaluate(calm(), 101.0)
    assert ks.operator_resume(101.5).resumed


def test_operator_halt_needs_a_reason() -> None:
    with pytest.raises(CoreValueError) as info:
        ready().operator_halt(1.0, "  ")
    assert info.value.field == "reason"


# --------------------------------------------------------------------------------------------
# Exits are never blocked (I1)
# --------------------------------------------------------------------------------------------


def test_no_method_blocks_exits() -> None:
    exit_api = sorted(name for name in dir(KillSwitch) if "exit" in name.lower())
    assert exit_api == ["allows_exit"]
    ks = KillSwitch()
    assert ks.allows_exit()
    ks.operator_halt(0.0, "panic")
    ks.evaluate(calm(equity=D("NaN"), posture_red=True), 1.0)
    assert ks.is_entry_blocked(1.0)
    assert ks.allows_exit()
    assert ks.state(1.0).exits_allowed


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reconcile_mismatch_streak_max": -1}, "reconcile_mismatch_streak_max"),
        ({"trip_on_red_posture": 1}, "trip_on_red_posture"),
        ({"error_window_sec": 0.0}, "error_window_sec"),
        ({"api_error_rate_max": 1.5}, "api_error_rate_max"),
        ({"api_error_rate_min_requests": 0}, "api_error_rate_min_requests"),
        ({"max_daily_loss_frac": 0.05}, "max_daily_loss_frac"),  # must be Decimal
        ({"max_drawdown_frac": D("1.2")}, "max_drawdown_frac"),
        ({"min_equity": D("-1")}, "min_equity"),
        ({"halt_ladder_sec": ()}, "halt_ladder_sec"),
        ({"halt_ladder_sec": (300.0, 60.0)}, "halt_ladder_sec"),
        ({"halt_ladder_sec": (60.0, math.inf)}, "halt_ladder_sec"),
        ({"calm_sec": -5.0}, "calm_sec"),
        ({"max_evaluation_age_sec": math.nan}, "max_evaluation_age_sec"),
        ({"history_max": 0}, "history_max"),
    ],
)
def test_config_validation_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(CoreValueError) as info:
        KillSwitchConfig(**changes)
    assert info.value.field == field


def test_config_defaults() -> None:
    config = KillSwitchConfig()
    assert config.halt_ladder_sec == (60.0, 300.0, 900.0, 3600.0)
    assert config.top_level == 3


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

inputs_st = st.builds(
    KillSwitchInputs,
    equity=st.integers(5_000, 12_000).map(D),
    day_start_equity=st.just(D(10_000)),
    peak_equity=st.integers(10_000, 12_000).map(D),
    reconcile_mismatch_streak=st.integers(0, 8),
    posture_red=st.booleans(),
    api_errors=st.integers(0, 8),
    api_requests=st.integers(0, 30),
)
history_st = st.lists(
    st.tuples(st.sampled_from([0.0, 1.0, 30.0, 200.0, 2000.0]), inputs_st, st.booleans()),
    max_size=15,
)


def build(history: list[tuple[float, KillSwitchInputs, bool]]) -> tuple[KillSwitch, float]:
    ks = KillSwitch()
    now = 0.0
    for dt, inputs, operator in history:
        now += dt
        ks.evaluate(inputs, now)
        if operator:
            if ks.operator_halted:
                ks.operator_resume(now)
            else:
                ks.operator_halt(now, "test")
    return ks, now


def severity(state: KillSwitchState) -> tuple[bool, float, int, int]:
    return (
        state.halted,
        -math.inf if state.until is None else state.until,
        state.level,
        state.trip_count,
    )


def at_least_as_severe(worse: KillSwitchState, better: KillSwitchState) -> bool:
    return all(w >= b for w, b in zip(severity(worse), severity(better), strict=True))


@settings(max_examples=200)
@given(
    history=history_st,
    dt=st.sampled_from([0.0, 5.0, 60.0, 5000.0]),
    base=inputs_st,
    equity_drop=st.integers(0, 3000),
    more_mismatches=st.integers(0, 8),
    turn_red=st.booleans(),
    more_errors=st.integers(0, 20),
)
def test_more_adverse_inputs_are_never_less_severe(
    history: list[tuple[float, KillSwitchInputs, bool]],
    dt: float,
    base: KillSwitchInputs,
    equity_drop: int,
    more_mismatches: int,
    turn_red: bool,
    more_errors: int,
) -> None:
    ks, now = build(history)
    now += dt
    worse = attrs.evolve(
        base,
        equity=base.equity - equity_drop,
        reconcile_mismatch_streak=base.reconcile_mismatch_streak + more_mismatches,
        posture_red=base.posture_red or turn_red,
        api_errors=base.api_errors + more_errors,
    )
    mild = copy.deepcopy(ks).evaluate(base, now)
    harsh = copy.deepcopy(ks).evaluate(worse, now)
    assert at_least_as_severe(harsh, mild), (harsh, mild)
    assert set(harsh.reasons) >= set(mild.reasons)
    assert set(harsh.active) >= set(mild.active)
    # Unknown inputs are the most adverse of all.
    broken = copy.deepcopy(ks).evaluate(attrs.evolve(worse, equity=D("NaN")), now)
    assert broken.halted
    assert at_least_as_severe(broken, mild)


@settings(max_examples=150)
@given(history=history_st, probe=st.sampled_from([0.0, 10.0, 59.0, 61.0, 4000.0]))
def test_exits_always_allowed_and_verdicts_consistent(
    history: list[tuple[float, KillSwitchInputs, bool]], probe: float
) -> None:
    ks = KillSwitch()
    config = ks.config
    now = 0.0
    for dt, inputs, operator in history:
        now += dt
        state = ks.evaluate(inputs, now)
        assert ks.allows_exit()
        assert state.exits_allowed
        assert state.halted == bool(state.reasons)
        assert set(state.active) <= set(state.reasons)
        assert 0 <= state.level <= config.top_level
        if state.new_trip:
            assert state.halt_sec in config.halt_ladder_sec
            assert state.until == now + state.halt_sec
        if state.until is not None:
            assert state.halted
            assert state.until > now
        if operator and not ks.operator_halted:
            ks.operator_halt(now, "test")
            assert ks.is_entry_blocked(now)
    later = ks.state(now + probe)
    assert later.exits_allowed
    assert later.halted == bool(later.reasons)
    if ks.operator_halted:
        assert later.halted


def test_reasons_accumulate_during_a_halt() -> None:
    ks = ready()
    ks.evaluate(calm(reconcile_mismatch_streak=6), 10.0)  # trips until 70
    state = ks.evaluate(calm(posture_red=True), 20.0)  # a second cause appears mid-halt
    assert not state.new_trip
    assert state.reasons == (R.POSTURE_RED, R.RECONCILE_MISMATCH)
    state = ks.evaluate(calm(), 30.0)
    assert state.active == ()
    assert state.reasons == (R.POSTURE_RED, R.RECONCILE_MISMATCH)
    assert state.until == 70.0


# --------------------------------------------------------------------------------------------
# API errors: venue and transport health, never business answers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "message", "operation"),
    [
        (503, -1000, "Unknown error, please check your request or try again later.", "CREATE"),
        (500, None, "", "CREATE"),
        (502, None, "Bad Gateway", "QUERY"),
        (503, -1001, "Internal error; unable to process your request.", "CANCEL"),
        (503, -1008, "Server is currently overloaded", "CREATE"),
        (503, None, "Service Unavailable.", "QUERY"),
        (429, -1003, "Too many requests", "CREATE"),
        (418, -1003, "Way too many requests; IP banned until 1767225600000.", "QUERY"),
        (400, -1003, "Too much request weight used", "QUERY"),
        (400, -1021, "Timestamp for this request is outside of the recvWindow.", "CREATE"),
        (408, -1007, "Timeout waiting for response from backend server.", "CREATE"),
        (503, -1006, "An unexpected response was received from the message bus.", "CANCEL"),
        (403, None, "", "QUERY"),
        (400, -1015, "Too many new orders", "CREATE"),
    ],
)
def test_transport_5xx_and_rate_limit_answers_are_api_errors(
    status: int, code: int | None, message: str, operation: str
) -> None:
    verdict = classify_error(status, code, message, operation=Operation(operation))
    assert is_api_error(verdict.reason), verdict
    # The Router's final reject after its retries carries the last attempt's reason.
    assert is_api_error(f"retries_exhausted:{verdict.reason}")


@pytest.mark.parametrize("written", [True, False])
@pytest.mark.parametrize("operation", list(Operation))
def test_timeouts_and_resets_are_api_errors(written: bool, operation: Operation) -> None:
    verdict = classify_transport_failure(request_written=written, operation=operation)
    assert is_api_error(verdict.reason)


@pytest.mark.parametrize(
    ("status", "code", "message", "operation"),
    [
        (400, -2010, "Order would immediately match and take.", "CREATE"),  # business reject
        (400, -2019, "Margin is insufficient.", "CREATE"),
        (400, -2018, "Balance is insufficient.", "CREATE"),
        (400, -4164, "Order's notional must be no smaller than 100", "CREATE"),
        (400, -1111, "Precision is over the maximum defined for this asset.", "CREATE"),
        (400, -2021, "Order would immediately trigger.", "CREATE"),
        (400, -5022, "Post Only order will be rejected.", "CREATE"),
        (400, -4116, "ClientOrderId is duplicated.", "CREATE"),
        (400, -2011, "Unknown order sent.", "CANCEL"),
        (400, -2013, "Order does not exist.", "QUERY"),
        (400, -2022, "ReduceOnly Order is rejected.", "CREATE"),
        (400, -4117, "stop order is triggering", "CANCEL"),
        (400, -5043, "A modification is pending", "CREATE"),
        (401, -2015, "Invalid API-key, IP, or permissions for action.", "QUERY"),
        (400, -99999, "something new", "CREATE"),
    ],
)
def test_business_answers_are_not_api_errors(
    status: int, code: int | None, message: str, operation: str
) -> None:
    verdict = classify_error(status, code, message, operation=Operation(operation))
    assert not is_api_error(verdict.reason), verdict
    assert not is_api_error(f"retries_exhausted:{verdict.reason}")


def test_api_error_reasons_follow_the_error_table() -> None:
    # Every reason the table may call RETRYABLE or AMBIGUOUS counts, except the two
    # retryable codes that are the venue answering about our order.
    table = {r.reason for r in BINANCE_USDM_TABLE.rules if r.error_class is ErrorClass.RETRYABLE}
    table |= {r.reason for r in BINANCE_USDM_TABLE.rules if r.error_class is ErrorClass.AMBIGUOUS}
    assert table - {"stop_order_triggering", "modification_pending"} <= API_ERROR_REASONS
    assert not {"stop_order_triggering", "modification_pending"} & API_ERROR_REASONS
    fatal = {r.reason for r in BINANCE_USDM_TABLE.rules if r.error_class is ErrorClass.FATAL}
    assert not (fatal - table) & API_ERROR_REASONS
    for tag in ("", "resolve", "order_not_found", "still_open", "retries_exhausted"):
        assert not is_api_error(tag)


def test_a_burst_of_transport_errors_trips_and_business_rejects_do_not() -> None:
    transport = classify_transport_failure(request_written=True, operation=Operation.CREATE)
    margin = classify_error(400, -2019, "Margin is insufficient.", operation=Operation.CREATE)

    def run(reason: str) -> KillSwitchState:
        ks = ready()
        state = ks.state(0.0)
        for i in range(12):  # one request, one outcome, every 2 s
            errors = 1 if is_api_error(reason) else 0
            state = ks.evaluate(calm(api_errors=errors, api_requests=1), 1.0 + 2 * i)
        return state

    tripped = run(transport.reason)
    assert tripped.halted
    assert KillReason.API_ERROR_BURST in tripped.active
    assert tripped.exits_allowed
    calm_state = run(margin.reason)
    assert not calm_state.halted
    assert calm_state.active == ()


# --------------------------------------------------------------------------------------------
# The trading day: start-of-UTC-day equity
# --------------------------------------------------------------------------------------------

MIDNIGHT = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_utc_day_turns_at_midnight() -> None:
    assert utc_day(MIDNIGHT) == utc_day(MIDNIGHT - 0.001) + 1
    assert utc_day(MIDNIGHT + SECONDS_PER_DAY - 0.001) == utc_day(MIDNIGHT)
    assert utc_day(0) == 0
    assert utc_day(-1.0) == -1
    for bad in (math.nan, math.inf, "1", True):
        with pytest.raises(CoreValueError) as err:
            utc_day(bad)  # type: ignore[arg-type]
        assert err.value.field == "utc_ts"


def test_day_start_is_the_first_equity_at_or_after_each_midnight() -> None:
    book = DayEquity()
    assert book.observe(D("10000"), MIDNIGHT - 3600)  # the first reading starts a day
    assert not book.observe(D("9600"), MIDNIGHT - 10)
    assert book.day_start == D("10000")
    assert book.observe(D("9610"), MIDNIGHT)  # exactly midnight belongs to the new day
    assert not book.observe(D("9400"), MIDNIGHT + 60)
    assert book.day == utc_day(MIDNIGHT)
    assert book.day_start == D("9610")
    assert book.peak == D("10000")
    assert book.equity == D("9400")


def test_yesterdays_loss_does_not_count_against_today() -> None:
    # -4% yesterday, -2.2% today: measured from the first equity ever seen that is -6% and
    # a false daily-loss halt; from today's start it is well inside the 5% limit.
    book = DayEquity()
    ks = ready(at=0.0)
    book.observe(D("10000"), MIDNIGHT - 7200)
    book.observe(D("9600"), MIDNIGHT - 60)
    book.observe(D("9600"), MIDNIGHT + 5)
    book.observe(D("9390"), MIDNIGHT + 600)
    assert book.day_start is not None
    assert book.peak is not None
    assert book.equity is not None
    state = ks.evaluate(
        calm(equity=book.equity, day_start_equity=book.day_start, peak_equity=book.peak), 10.0
    )
    assert not state.halted, state
    # The same readings with the first equity as the "day" start trip.
    state = ks.evaluate(
        calm(equity=book.equity, day_start_equity=D("10000"), peak_equity=book.peak), 20.0
    )
    assert KillReason.DAILY_LOSS in state.active


def test_todays_gain_is_the_base_for_todays_loss() -> None:
    # +10% yesterday, then -5.5% from today's start: a real daily loss, which the first
    # equity ever seen (below today's start) would hide.
    book = DayEquity()
    ks = ready(at=0.0)
    book.observe(D("10000"), MIDNIGHT - 7200)
    book.observe(D("11000"), MIDNIGHT + 1)
    book.observe(D("10395"), MIDNIGHT + 900)
    assert (book.day_start, book.peak) == (D("11000"), D("11000"))
    assert book.equity is not None
    state = ks.evaluate(
        calm(equity=book.equity, day_start_equity=book.day_start, peak_equity=book.peak), 10.0
    )
    assert state.active == (KillReason.DAILY_LOSS,)


def test_a_wall_clock_stepping_back_across_midnight_keeps_the_day() -> None:
    book = DayEquity()
    book.observe(D("100"), MIDNIGHT + 1)
    assert not book.observe(D("90"), MIDNIGHT - 1)  # NTP step back: still today
    assert (book.day, book.day_start, book.equity) == (utc_day(MIDNIGHT), D("100"), D("90"))


def test_restore_takes_the_journaled_day_and_keeps_a_higher_peak() -> None:
    book = DayEquity()
    book.restore(utc_day(MIDNIGHT), D("10000"), D("12000"))
    assert not book.observe(D("9000"), MIDNIGHT + 3600)  # same day: the start stands
    assert (book.day_start, book.peak, book.equity) == (D("10000"), D("12000"), D("9000"))
    assert book.observe(D("9100"), MIDNIGHT + SECONDS_PER_DAY)
    assert (book.day_start, book.peak) == (D("9100"), D("12000"))


@pytest.mark.parametrize(
    ("day", "start", "peak", "field"),
    [
        (1.5, D("1"), D("1"), "day"),
        (True, D("1"), D("1"), "day"),
        (1, D("0"), D("1"), "day_start"),
        (1, D("NaN"), D("1"), "day_start"),
        (1, 100, D("1"), "day_start"),
        (1, D("1"), D("-1"), "peak"),
    ],
)
def test_restore_rejects_bad_records_naming_the_field(
    day: Any, start: Any, peak: Any, field: str
) -> None:
    with pytest.raises(CoreValueError) as err:
        DayEquity().restore(day, start, peak)
    assert err.value.field == field


@pytest.mark.parametrize("equity", [D("NaN"), D("Infinity"), 100.0, "100"])
def test_observe_rejects_a_non_decimal_equity(equity: Any) -> None:
    book = DayEquity()
    with pytest.raises(CoreValueError) as err:
        book.observe(equity, MIDNIGHT)
    assert err.value.field == "equity"
    assert book.day is None  # nothing was taken


@settings(max_examples=150)
@given(
    readings=st.lists(
        st.tuples(
            st.integers(1, 10**7).map(lambda c: D(c) / 100),
            st.floats(0.0, 3 * SECONDS_PER_DAY, allow_nan=False),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_day_start_is_the_first_reading_of_the_latest_day(
    readings: list[tuple[Decimal, float]],
) -> None:
    readings = sorted(readings, key=lambda r: r[1])
    book = DayEquity()
    new_days = [book.observe(eq, MIDNIGHT + ts) for eq, ts in readings]
    last_day = utc_day(MIDNIGHT + readings[-1][1])
    todays = [eq for eq, ts in readings if utc_day(MIDNIGHT + ts) == last_day]
    assert book.day == last_day
    assert book.day_start == todays[0]
    assert book.peak == max(eq for eq, _ in readings)
    assert book.equity == readings[-1][0]
    assert sum(new_days) == len({utc_day(MIDNIGHT + ts) for _, ts in readings})
