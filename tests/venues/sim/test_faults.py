"""The fault injector on its own: schedules as data, decisions, stream filtering, lag, races.

Each example mirrors something an exchange does to a trading client; the properties pin the
contract the chaos runner relies on: schedules survive a trip through JSON, a fault never
fires outside its window, and the same seed with the same calls gives the same faults.
"""

import json
import random
import re
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scalper.core.errors import ErrorClass, Operation, classify_error
from scalper.core.errors_base import CoreValueError
from scalper.core.model import VenueOrderStatus
from scalper.core.types import OrderType, Side
from scalper.venues.sim.engine import SimEngine
from scalper.venues.sim.errors import SimRejection
from scalper.venues.sim.faults import (
    OPERATIONS,
    Answer,
    FaultConfig,
    FaultError,
    FaultInjector,
    FaultKind,
    FaultSpec,
    FillMode,
    InjectedFault,
    LaggedView,
    event_symbols,
    fill_before_cancel,
    schedule_from_dicts,
    schedule_to_dicts,
)
from scalper.venues.sim.records import AccountConfigUpdate, OrderTradeUpdate, SimEvent
from tests.venues.sim.simkit import BTC, D, limit, make_engine, market, stop

K = FaultKind
ETH = "ETHUSDT"


def injector(*specs: FaultSpec, seed: int = 1, **config: object) -> FaultInjector:
    return FaultInjector(specs, random.Random(seed), FaultConfig(**config))  # type: ignore[arg-type]


def trading_events() -> tuple[SimEngine, tuple[SimEvent, ...]]:
    """A short session: a resting order, a fill, a leverage change (12 events or so)."""
    engine = make_engine()
    engine.create_order(limit(Side.BUY, "0.1", "59000", "rest1"), now=0.5)
    engine.create_order(market(Side.BUY, "0.2", "mkt1"), now=1.0)
    engine.set_leverage(BTC, 10, now=1.5)
    engine.create_order(limit(Side.SELL, "0.1", "61000", "rest2"), now=2.0)
    return engine, engine.events_since(0)


# ---------------------------------------------------------------------------- strategies

seconds = st.floats(min_value=0.01, max_value=30.0, allow_nan=False)
_PARAM_STRATEGIES: dict[FaultKind, dict[str, st.SearchStrategy[object]]] = {
    K.DROP_REQUEST: {"timeout_s": seconds},
    K.LOSE_RESPONSE: {"timeout_s": seconds},
    K.ERROR_1006: {"executed": st.booleans()},
    K.ERROR_1007: {"executed": st.booleans()},
    K.SERVICE_UNAVAILABLE_503: {
        "variant": st.sampled_from(["service_unavailable", "internal_error", "server_busy"])
    },
    K.RECV_WINDOW_LATENCY: {"latency_s": seconds},
    K.RATE_LIMIT_429: {"retry_after_s": seconds},
    K.IP_BAN_418: {"retry_after_s": seconds},
    K.FILL_AFTER_CANCEL: {"mode": st.sampled_from(["full", "partial"])},
    K.STREAM_DUPLICATE: {"copies": st.integers(min_value=1, max_value=3)},
    K.STREAM_REORDER: {"max_delay_s": seconds},
    K.STREAM_DELAY: {"delay_s": seconds},
    K.SNAPSHOT_LAG: {"lag_s": seconds},
}
_GLOBAL = {K.IP_BAN_418, K.MAINTENANCE, K.STREAM_DISCONNECT, K.LISTEN_KEY_EXPIRY, K.SNAPSHOT_LAG}


@st.composite
def fault_specs(draw, kinds=tuple(FaultKind), horizon: float = 30.0):
    kind = draw(st.sampled_from(kinds))
    start = draw(st.floats(min_value=0.0, max_value=horizon, allow_nan=False))
    length = draw(st.floats(min_value=0.05, max_value=horizon / 2, allow_nan=False))
    optional: dict[str, st.SearchStrategy[object]] = _PARAM_STRATEGIES.get(kind, {})
    params = draw(st.fixed_dictionaries({}, optional=optional))
    probability = draw(st.one_of(st.just(1.0), st.floats(min_value=0.0, max_value=1.0)))
    allowed = sorted(FaultSpec(0.0, 1.0, kind).default_operations)
    operations = (
        draw(st.one_of(st.none(), st.sets(st.sampled_from(allowed), min_size=1)))
        if allowed and kind not in (K.STREAM_DISCONNECT, K.LISTEN_KEY_EXPIRY)
        else None
    )
    symbols = (
        None
        if kind in _GLOBAL
        else draw(st.one_of(st.none(), st.sets(st.sampled_from([BTC, ETH]), min_size=1)))
    )
    return FaultSpec(
        start=start,
        end=start + length,
        kind=kind,
        params=params,
        probability=probability,
        operations=operations,
        symbols=symbols,
    )


schedules = st.lists(fault_specs(), max_size=6).map(tuple)


# ---------------------------------------------------------------------------- the schedule as data


@given(schedules)
def test_schedules_round_trip_through_plain_dicts_and_json(schedule):
    as_data = schedule_to_dicts(schedule)
    assert schedule_from_dicts(as_data) == schedule
    assert schedule_from_dicts(json.loads(json.dumps(as_data))) == schedule
    for spec in schedule:
        assert FaultSpec.from_dict(spec.to_dict()) == spec


def test_params_are_frozen_sorted_and_canonical():
    spec = FaultSpec(0, 5, K.DROP_REQUEST, params={"timeout_s": 3})
    assert spec.params == (("timeout_s", 3.0),)
    assert isinstance(spec.param("timeout_s"), float)
    assert spec.param("missing") is None
    assert hash(spec) == hash(FaultSpec(0.0, 5.0, "DROP_REQUEST", params=[("timeout_s", 3.0)]))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": 5.0, "end": 5.0, "kind": K.DROP_REQUEST}, "end"),
        ({"start": 0.0, "end": float("inf"), "kind": K.DROP_REQUEST}, "end"),
        ({"start": 0.0, "end": 1.0, "kind": K.DROP_REQUEST, "probability": 1.5}, "probability"),
        (
            {"start": 0.0, "end": 1.0, "kind": K.DROP_REQUEST, "params": {"timeout": 1}},
            "params.timeout",
        ),
        (
            {"start": 0.0, "end": 1.0, "kind": K.DROP_REQUEST, "params": {"timeout_s": -1}},
            "params.timeout_s",
        ),
        (
            {"start": 0.0, "end": 1.0, "kind": K.ERROR_1006, "params": {"executed": 1}},
            "params.executed",
        ),
        (
            {"start": 0.0, "end": 1.0, "kind": K.FILL_AFTER_CANCEL, "params": {"mode": "half"}},
            "params.mode",
        ),
        (
            {"start": 0.0, "end": 1.0, "kind": K.STREAM_DUPLICATE, "params": {"copies": 1.5}},
            "params.copies",
        ),
        ({"start": 0.0, "end": 1.0, "kind": K.STREAM_DROP, "operations": {"create"}}, "operations"),
        (
            {"start": 0.0, "end": 1.0, "kind": K.CANCEL_UNKNOWN_BUT_LIVE, "operations": {"create"}},
            "operations",
        ),
        (
            {"start": 0.0, "end": 1.0, "kind": K.SNAPSHOT_LAG, "operations": {"user_trades"}},
            "operations",
        ),
        (
            {"start": 0.0, "end": 1.0, "kind": K.DROP_REQUEST, "operations": {"teleport"}},
            "operations",
        ),
        ({"start": 0.0, "end": 1.0, "kind": K.DROP_REQUEST, "operations": set()}, "operations"),
        ({"start": 0.0, "end": 1.0, "kind": K.DROP_REQUEST, "operations": "create"}, "names"),
        ({"start": 0.0, "end": 1.0, "kind": K.MAINTENANCE, "symbols": {BTC}}, "symbols"),
    ],
)
def test_invalid_specs_are_rejected_naming_the_field(kwargs, field):
    with pytest.raises(CoreValueError) as info:
        FaultSpec(**kwargs)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"start": 0, "end": 1, "kind": "DROP_REQUEST", "severity": 3}, "fault"),
        ({"start": 0, "kind": "DROP_REQUEST"}, "fault"),
        ({"start": 0, "end": 1, "kind": "EARTHQUAKE"}, "kind"),
        ({"start": "0", "end": 1, "kind": "DROP_REQUEST"}, "start"),
        ({"start": 0, "end": 1, "kind": "DROP_REQUEST", "operations": "create"}, "operations"),
        (
            {"start": 0, "end": 1, "kind": "DROP_REQUEST", "params": {"timeout_s": [1]}},
            "params.timeout_s",
        ),
    ],
)
def test_from_dict_is_strict(data, field):
    with pytest.raises(CoreValueError) as info:
        FaultSpec.from_dict(data)
    assert info.value.field == field


def test_injector_rejects_unknown_operations_and_non_specs():
    with pytest.raises(CoreValueError) as info:
        injector().before_request("teleport", BTC, 1.0)
    assert info.value.field == "op"
    with pytest.raises(CoreValueError):
        FaultInjector([{"start": 0}], random.Random(1))  # type: ignore[list-item]


# ---------------------------------------------------------------------------- request faults

# kind, params -> (executed, answer, http, code, class of a CREATE as core classifies it)
_REQUEST_CASES = [
    (K.DROP_REQUEST, {}, False, Answer.TIMEOUT, None, None, None),
    (K.LOSE_RESPONSE, {}, True, Answer.TIMEOUT, None, None, None),
    (K.UNKNOWN_503_PLACED, {}, True, Answer.ERROR, 503, -1000, ErrorClass.AMBIGUOUS),
    (K.UNKNOWN_503_NOT_PLACED, {}, False, Answer.ERROR, 503, -1000, ErrorClass.AMBIGUOUS),
    (K.ERROR_1006, {}, False, Answer.ERROR, 503, -1006, ErrorClass.AMBIGUOUS),
    (K.ERROR_1006, {"executed": True}, True, Answer.ERROR, 503, -1006, ErrorClass.AMBIGUOUS),
    (K.ERROR_1007, {"executed": True}, True, Answer.ERROR, 408, -1007, ErrorClass.AMBIGUOUS),
    (K.SERVICE_UNAVAILABLE_503, {}, False, Answer.ERROR, 503, None, ErrorClass.RETRYABLE),
    (
        K.SERVICE_UNAVAILABLE_503,
        {"variant": "server_busy"},
        False,
        Answer.ERROR,
        503,
        -1008,
        ErrorClass.RETRYABLE,
    ),
    (K.RECV_WINDOW_LATENCY, {}, False, Answer.ERROR, 400, -1021, ErrorClass.RETRYABLE),
    (K.RATE_LIMIT_429, {}, False, Answer.ERROR, 429, -1003, ErrorClass.RETRYABLE),
    (K.IP_BAN_418, {}, False, Answer.ERROR, 418, -1003, ErrorClass.RETRYABLE),
    (K.MAINTENANCE, {}, False, Answer.ERROR, 503, -1001, ErrorClass.RETRYABLE),
]


@pytest.mark.parametrize(
    ("kind", "params", "executed", "answer", "http", "code", "create_class"), _REQUEST_CASES
)
def test_request_faults_answer_in_binance_terms(
    kind, params, executed, answer, http, code, create_class
):
    inj = injector(FaultSpec(10.0, 20.0, kind, params=params))
    assert inj.before_request("create", BTC, 9.99) is None
    fault = inj.before_request("create", BTC, 12.0)
    assert fault is not None
    assert (fault.kind, fault.execute, fault.answer) == (kind, executed, answer)
    if answer is Answer.ERROR:
        assert fault.error is not None
        assert (fault.error.http_status, fault.error.code) == (http, code)
        verdict = classify_error(
            fault.error.http_status,
            fault.error.code,
            fault.error.message,
            operation=Operation.CREATE,
            retry_after_s=fault.error.retry_after_s,
        )
        assert verdict.error_class is create_class
    assert inj.before_request("create", BTC, 20.0) is None
    per_request = [(e.kind, e.op, e.symbol, e.at) for e in inj.injected if e.op != "*"]
    assert per_request == [(kind, "create", BTC, 12.0)]


def test_timeouts_wait_the_configured_or_scheduled_time():
    inj = injector(
        FaultSpec(0, 10, K.DROP_REQUEST, operations={"create"}),
        FaultSpec(0, 10, K.LOSE_RESPONSE, params={"timeout_s": 3.5}, operations={"cancel"}),
        request_timeout_s=7.0,
    )
    dropped = inj.before_request("create", BTC, 1.0)
    lost = inj.before_request("cancel", BTC, 1.0)
    assert dropped is not None
    assert lost is not None
    assert (dropped.delay_s, dropped.execute, dropped.request_written) == (7.0, False, True)
    assert (lost.delay_s, lost.execute) == (3.5, True)
    assert inj.before_request("query", BTC, 1.0) is None


def test_the_503_unknown_error_is_the_documented_text():
    fault = injector(FaultSpec(0, 1, K.UNKNOWN_503_NOT_PLACED)).before_request("cancel", BTC, 0.5)
    assert fault is not None
    assert fault.error is not None
    assert fault.error.message == "Unknown error, please check your request or try again later."
    verdict = classify_error(503, fault.error.code, fault.error.message, operation=Operation.QUERY)
    assert verdict.error_class is ErrorClass.RETRYABLE  # a read has nothing to be ambiguous about


def test_service_unavailable_has_no_code_and_a_body_without_one():
    fault = injector(FaultSpec(0, 1, K.SERVICE_UNAVAILABLE_503)).before_request("create", BTC, 0.0)
    assert fault is not None
    assert fault.error == FaultError(503, None, "Service Unavailable.")
    assert fault.error.body() == {"msg": "Service Unavailable."}
    assert FaultError(400, -2011, "Unknown order sent.").body() == {
        "code": -2011,
        "msg": "Unknown order sent.",
    }


def test_rate_limit_and_ban_say_when_to_come_back():
    inj = injector(
        FaultSpec(0, 30, K.RATE_LIMIT_429, operations={"create"}),
        FaultSpec(0, 30, K.RATE_LIMIT_429, params={"retry_after_s": 2}, operations={"query"}),
        FaultSpec(100, 220, K.IP_BAN_418),
        epoch_offset=1000.0,
    )
    storm = inj.before_request("create", BTC, 12.0)
    told = inj.before_request("query", BTC, 12.0)
    ban = inj.before_request("positions", None, 130.0)
    assert storm is not None
    assert storm.error is not None
    assert storm.error.retry_after_s == 18.0
    assert "2400 requests per minute" in storm.error.message
    assert told is not None
    assert told.error is not None
    assert told.error.retry_after_s == 2.0
    assert ban is not None
    assert ban.error is not None
    assert ban.error.retry_after_s == 90.0
    assert "IP banned until 1220000." in ban.error.message
    verdict = classify_error(418, -1003, ban.error.message, retry_after_s=ban.error.retry_after_s)
    assert (verdict.reason, verdict.backoff_hint_s) == ("ip_banned", 90.0)


def test_cancel_faults_only_touch_cancels():
    inj = injector(
        FaultSpec(0, 10, K.CANCEL_UNKNOWN_BUT_LIVE), FaultSpec(0, 10, K.FILL_AFTER_CANCEL)
    )
    for op in sorted(OPERATIONS - {"cancel"}):
        assert inj.before_request(op, BTC, 1.0) is None
    fault = inj.before_request("cancel", BTC, 1.0)
    assert fault is not None
    assert fault.kind is K.CANCEL_UNKNOWN_BUT_LIVE  # first in schedule order wins
    assert fault.error is not None
    assert (fault.error.code, fault.execute) == (-2011, False)
    verdict = classify_error(400, -2011, fault.error.message, operation=Operation.CANCEL)
    assert verdict.error_class is ErrorClass.IDEMPOTENT_SAFE
    race = injector(FaultSpec(0, 10, K.FILL_AFTER_CANCEL, params={"mode": "partial"}))
    fault = race.before_request("cancel", BTC, 1.0)
    assert fault is not None
    assert (fault.execute, fault.answer, fault.prefill) == (True, Answer.NORMAL, FillMode.PARTIAL)


def test_symbol_filters_spare_other_symbols_and_symbolless_requests():
    inj = injector(FaultSpec(0, 10, K.UNKNOWN_503_NOT_PLACED, symbols={ETH}))
    assert inj.before_request("create", BTC, 1.0) is None
    assert inj.before_request("positions", None, 1.0) is None
    assert inj.before_request("create", ETH, 1.0) is not None


def test_probability_draws_are_seeded_and_roughly_right():
    def count(seed: int) -> int:
        inj = injector(FaultSpec(0, 1000, K.DROP_REQUEST, probability=0.3), seed=seed)
        return sum(inj.before_request("query", BTC, float(t)) is not None for t in range(1000))

    assert count(5) == count(5)
    assert 200 < count(5) < 400
    never = injector(FaultSpec(0, 1000, K.DROP_REQUEST, probability=0.0))
    assert all(never.before_request("query", BTC, float(t)) is None for t in range(100))


def test_certain_faults_do_not_shift_the_random_stream_of_others():
    maybe = FaultSpec(0, 100, K.DROP_REQUEST, probability=0.5, operations={"query"})
    sure = FaultSpec(0, 100, K.LOSE_RESPONSE, operations={"create"})

    def query_outcomes(*specs: FaultSpec) -> list[bool]:
        inj = injector(*specs, seed=3)
        outcomes = []
        for t in range(50):
            inj.before_request("create", BTC, t + 0.1)
            outcomes.append(inj.before_request("query", BTC, t + 0.2) is None)
        return outcomes

    assert query_outcomes(maybe) == query_outcomes(maybe, sure)


def test_window_faults_are_drawn_once_per_window():
    outcomes = set()
    for seed in range(20):
        inj = injector(FaultSpec(10, 20, K.IP_BAN_418, probability=0.5), seed=seed)
        banned = {inj.before_request("query", BTC, 10 + t / 10) is not None for t in range(100)}
        assert len(banned) == 1  # the whole window is banned, or none of it
        outcomes |= banned
    assert outcomes == {True, False}


def test_maintenance_fails_everything_and_takes_the_stream_down():
    inj = injector(FaultSpec(50, 60, K.MAINTENANCE))
    assert inj.stream_outage(49.9) is None
    for op in sorted(OPERATIONS):
        fault = inj.before_request(op, None, 55.0)
        assert fault is not None
        assert fault.error is not None
        assert fault.error.code == -1001
    outage = inj.stream_outage(55.0)
    assert outage is not None
    assert (outage.kind, outage.reason, outage.until) == (K.MAINTENANCE, "maintenance", 60)
    assert inj.stream_outage(60.0) is None
    assert inj.injected[0].op == "*"


# ---------------------------------------------------------------------------- listen key


def expired(inj: FaultInjector) -> bool:
    return inj.listen_key_expired


def test_listen_key_expiry_lasts_until_the_key_is_recreated():
    inj = injector(FaultSpec(10, 11, K.LISTEN_KEY_EXPIRY))
    assert inj.before_request("keepalive", None, 9.0) is None
    assert inj.stream_outage(10.5) is not None  # expires at the first look inside the window
    assert expired(inj) is True
    for t in (10.6, 30.0, 500.0):  # Binance's rule: dead until re-created, window or not
        fault = inj.before_request("keepalive", None, t)
        assert fault is not None
        assert fault.error is not None
        assert (fault.error.code, fault.error.message) == (-1125, "This listenKey does not exist.")
        outage = inj.stream_outage(t)
        assert outage is not None
        assert (outage.reason, outage.since, outage.until) == ("listen_key_expired", 10.5, None)
    assert inj.before_request("listen_key", None, 501.0) is None
    inj.renew_listen_key(501.0)
    assert expired(inj) is False
    assert inj.before_request("keepalive", None, 502.0) is None
    assert inj.stream_outage(502.0) is None
    expiries = [e for e in inj.injected if e.op == "stream"]
    assert len(expiries) == 1


def test_a_renewal_inside_the_window_does_not_expire_the_key_again():
    inj = injector(FaultSpec(10, 20, K.LISTEN_KEY_EXPIRY))
    assert inj.stream_outage(10.0) is not None
    inj.renew_listen_key(11.0)
    assert inj.stream_outage(12.0) is None
    assert inj.before_request("keepalive", None, 13.0) is None


# ---------------------------------------------------------------------------- stream filter


def test_event_symbols_name_what_each_event_concerns():
    _, events = trading_events()
    assert all(event_symbols(e) == {BTC} for e in events)
    config = next(e for e in events if isinstance(e, AccountConfigUpdate))
    assert event_symbols(config) == {BTC}


def test_stream_drop_loses_events_silently_and_only_for_its_symbols():
    _, events = trading_events()
    keep_btc = injector(FaultSpec(0, 10, K.STREAM_DROP, symbols={ETH}))
    assert keep_btc.stream_filter(0.0).poll(events, 1.0).events == events
    drop_all = injector(FaultSpec(0, 10, K.STREAM_DROP))
    step = drop_all.stream_filter(0.0).poll(events, 1.0)
    assert step.events == ()
    assert step.disconnect is None
    assert len(drop_all.injected) == len(events)


def test_stream_duplicate_repeats_events_in_place():
    _, events = trading_events()
    inj = injector(FaultSpec(0, 10, K.STREAM_DUPLICATE, params={"copies": 2}))
    out = inj.stream_filter(0.0).poll(events[:3], 1.0).events
    assert out == tuple(e for e in events[:3] for _ in range(3))


def test_stream_delay_holds_events_back_and_lets_later_ones_overtake():
    _, events = trading_events()
    first, later = events[:2], events[2:]
    inj = injector(FaultSpec(0, 1.0, K.STREAM_DELAY, params={"delay_s": 2.0}))
    flt = inj.stream_filter(0.0)
    assert flt.poll(first, 0.5).events == ()
    assert flt.undelivered_since == 0.0
    assert flt.poll(later, 1.0).events == later  # the window is over: not held
    assert flt.poll((), 2.4).events == ()
    assert flt.poll((), 2.5).events == first
    assert flt.undelivered_since == 2.5


def test_stream_reorder_delivers_every_event_once_but_out_of_order():
    _, events = trading_events()
    inj = injector(FaultSpec(0, 100, K.STREAM_REORDER, params={"max_delay_s": 1.0}), seed=4)
    flt = inj.stream_filter(0.0)
    delivered = list(flt.poll(events, 0.05).events)
    t = 0.05
    while len(delivered) < len(events) and t < 5.0:
        t += 0.05
        delivered.extend(flt.poll((), t).events)
    assert sorted(delivered, key=lambda e: e.seq) == list(events)
    assert delivered != list(events)
    assert t < 1.2


def test_stream_disconnect_loses_held_and_new_events_and_says_since_when():
    _, events = trading_events()
    inj = injector(
        FaultSpec(0, 100, K.STREAM_DELAY, params={"delay_s": 5.0}, symbols={BTC}, probability=1.0),
        FaultSpec(3.0, 6.0, K.STREAM_DISCONNECT),
    )
    flt = inj.stream_filter(0.0)
    assert flt.poll(events[:1], 1.0).events == ()  # held until 6.0
    assert flt.poll((), 2.0).events == ()
    step = flt.poll(events[1:], 3.0)
    assert step.events == ()
    assert step.disconnect is not None
    # The held event arrived after the poll at 0.0: anything since then may be lost.
    assert (step.disconnect.since, step.disconnect.reason) == (0.0, "stream_disconnect")
    assert flt.closed
    with pytest.raises(CoreValueError):
        flt.poll((), 3.5)
    assert inj.stream_outage(5.9) is not None
    assert inj.stream_outage(6.0) is None
    fresh = inj.stream_filter(6.0)
    assert fresh.poll((), 6.1).disconnect is None


def test_a_new_schedule_keeps_held_events_in_flight_until_their_release():
    _, events = trading_events()
    old = injector(
        FaultSpec(0, 10, K.STREAM_DELAY, params={"delay_s": 2.0}),
        FaultSpec(0, 10, K.STREAM_DUPLICATE, params={"copies": 1}),
    )
    flt = old.stream_filter(0.0)
    assert flt.poll(events[:2], 0.5).events == ()  # held until 2.5, one extra copy each
    cleared = injector()  # the schedule is cleared at 1.0

    successor = flt.hand_over(cleared, 1.0)

    assert flt.closed
    with pytest.raises(CoreValueError):
        flt.poll((), 1.1)  # the old filter cannot deliver them a second time
    assert successor.undelivered_since == 0.0  # still owed since the poll before the hold
    assert successor.poll(events[2:4], 1.5).events == events[2:4]  # new ones overtake
    assert successor.poll((), 2.4).events == ()  # the decided hold stands
    assert successor.poll((), 2.5).events == (events[0], events[0], events[1], events[1])
    assert successor.undelivered_since == 2.5
    assert len(old.injected) == 4  # two holds, two duplicates: what the log promised
    assert cleared.injected == ()


def test_an_outage_in_the_new_schedule_loses_handed_over_events_and_says_so():
    _, events = trading_events()
    old = injector(FaultSpec(0, 10, K.STREAM_DELAY, params={"delay_s": 5.0}))
    flt = old.stream_filter(0.0)
    assert flt.poll(events[:1], 1.0).events == ()
    down = injector(FaultSpec(2.0, 4.0, K.STREAM_DISCONNECT))

    step = flt.hand_over(down, 1.5).poll((), 2.0)

    assert step.events == ()
    assert step.disconnect is not None
    assert step.disconnect.since == 0.0  # the gap covers the held event
    assert [e.kind for e in down.injected] == [K.STREAM_DISCONNECT]  # the loss is logged


def test_a_dropped_connection_has_nothing_to_hand_over():
    flt = injector(FaultSpec(0, 10, K.STREAM_DISCONNECT)).stream_filter(0.0)
    assert flt.poll((), 1.0).disconnect is not None
    with pytest.raises(CoreValueError):
        flt.hand_over(injector(), 1.0)


_HELD_DETAIL = re.compile(r"^held event (\d+) .* for ([\d.]+)s$")
hold_specs = st.builds(
    lambda kind, start, length, delay, p: FaultSpec(
        start,
        start + length,
        kind,
        params={"delay_s" if kind is K.STREAM_DELAY else "max_delay_s": delay},
        probability=p,
    ),
    st.sampled_from([K.STREAM_DELAY, K.STREAM_REORDER]),
    st.floats(min_value=0.0, max_value=5.0),
    st.floats(min_value=0.1, max_value=5.0),
    st.floats(min_value=0.05, max_value=3.0),
    st.sampled_from([0.5, 1.0]),
)


@settings(max_examples=60)
@given(
    st.lists(hold_specs, max_size=3),
    st.lists(hold_specs, max_size=3),
    st.lists(st.floats(min_value=0.01, max_value=0.5), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=0, max_value=2**32),
)
def test_rescheduling_delivers_every_held_event_once_and_never_early(
    before, after, gaps, switch_at, seed
):
    _, events = trading_events()
    first = FaultInjector(before, random.Random(seed))
    second = FaultInjector(after, random.Random(seed + 1))
    flt = first.stream_filter(0.0)
    delivered: list[tuple[float, SimEvent]] = []
    now = 0.0
    for i, gap in enumerate(gaps):
        now += gap
        if i == switch_at:
            flt = flt.hand_over(second, now)
        batch = events[i : i + 1] if i < len(gaps) - 1 else events[i:]
        delivered.extend((now, e) for e in flt.poll(batch, now).events)
    if switch_at >= len(gaps):
        flt = flt.hand_over(second, now)
    while flt.undelivered_since < now:  # drain what is still in flight
        now += 0.5
        delivered.extend((now, e) for e in flt.poll((), now).events)

    assert sorted(e.seq for _, e in delivered) == [e.seq for e in events]  # exactly once
    release: dict[int, float] = {}
    for entry in (*first.injected, *second.injected):
        match = _HELD_DETAIL.match(entry.detail)
        assert match is not None, entry.detail
        seq = int(match.group(1))
        release[seq] = max(release.get(seq, 0.0), entry.at + float(match.group(2)))
    for at, event in delivered:
        assert at >= release.get(event.seq, 0.0) - 1e-3  # the log rounds to milliseconds


# ---------------------------------------------------------------------------- snapshot lag


def test_rest_lag_applies_to_reads_in_the_window_and_is_logged():
    inj = injector(
        FaultSpec(10, 20, K.SNAPSHOT_LAG, params={"lag_s": 3.0}),
        FaultSpec(10, 20, K.SNAPSHOT_LAG, params={"lag_s": 5.0}, operations={"positions"}),
    )
    assert inj.max_lag_s == 5.0
    assert inj.rest_lag("open_orders", 9.0) == 0.0
    assert inj.rest_lag("open_orders", 11.0) == 3.0
    assert inj.rest_lag("positions", 11.0) == 5.0
    assert inj.rest_lag("user_trades", 11.0) == 0.0
    assert inj.rest_lag("open_orders", 20.0) == 0.0
    assert [(e.op, e.at) for e in inj.injected] == [("open_orders", 11.0), ("positions", 11.0)]


def test_lagged_view_answers_from_the_past():
    engine = make_engine()
    view = LaggedView(horizon_s=5.0)
    view.observe(engine, 0.0)
    engine.create_order(limit(Side.BUY, "0.1", "59000", "lag1"), now=1.0)
    view.observe(engine, 1.0)
    engine.create_order(market(Side.BUY, "0.1", "lag2"), now=2.0)
    view.observe(engine, 2.0)
    assert view.open_orders(engine, 0.5) == ()
    assert [o.client_order_id for o in view.open_orders(engine, 1.5)] == ["lag1"]
    assert view.positions(engine, 1.5)[0].quantity == 0
    assert view.positions(engine, 2.0)[0].quantity == D("0.1")
    with pytest.raises(SimRejection) as info:
        view.order_detail(engine, 0.5, BTC, client_order_id="lag1")
    assert info.value.code == -2013  # placed after the lagged instant: "does not exist"
    assert (
        view.order_detail(engine, 1.5, BTC, client_order_id="lag1").status is VenueOrderStatus.NEW
    )
    engine.cancel_order(BTC, client_order_id="lag1", now=3.0)
    view.observe(engine, 3.0)
    assert (
        view.order_detail(engine, 2.5, BTC, client_order_id="lag1").status is VenueOrderStatus.NEW
    )
    assert (
        view.order_detail(engine, 3.0, BTC, client_order_id="lag1").status
        is VenueOrderStatus.CANCELED
    )
    with pytest.raises(SimRejection):
        view.open_orders(engine, 2.0, "NOPEUSDT")


def test_lagged_view_prunes_beyond_its_horizon():
    engine = make_engine()
    view = LaggedView(horizon_s=2.0)
    for i in range(50):
        engine.create_order(limit(Side.BUY, "0.01", "59000", f"p{i}"), now=float(i))
        view.observe(engine, float(i))
    assert len(view) <= 4
    assert len(view.open_orders(engine, 47.0)) == 48  # still answerable within the horizon


# ---------------------------------------------------------------------------- fill before cancel


@pytest.mark.parametrize(
    ("side", "price"), [(Side.BUY, "59000"), (Side.SELL, "61000")], ids=["bid", "ask"]
)
def test_fill_before_cancel_full_fills_a_resting_order_so_the_cancel_finds_nothing(side, price):
    engine = make_engine()
    order = engine.create_order(limit(side, "0.5", price, "race1"), now=1.0)
    detail = fill_before_cancel(
        engine,
        BTC,
        order_id=order.order_id,
        client_order_id=None,
        algo=False,
        now=2.0,
        mode=FillMode.FULL,
    )
    assert "FILLED" in detail
    assert engine.query_order(BTC, order_id=order.order_id).status is VenueOrderStatus.FILLED
    assert sum(f.quantity for f in engine.history.fills(BTC)) == D("0.5")
    assert all(f.price == D(price) and f.maker for f in engine.history.fills(BTC))
    with pytest.raises(SimRejection) as info:
        engine.cancel_order(BTC, order_id=order.order_id, now=2.0)
    assert info.value.code == -2011


def test_fill_before_cancel_partial_leaves_a_cancelable_remainder():
    engine = make_engine()
    order = engine.create_order(limit(Side.BUY, "0.5", "59000", "race2"), now=1.0)
    fill_before_cancel(
        engine,
        BTC,
        order_id=None,
        client_order_id="race2",
        algo=None,
        now=2.0,
        mode=FillMode.PARTIAL,
    )
    canceled = engine.cancel_order(BTC, order_id=order.order_id, now=2.0)
    assert canceled.status is VenueOrderStatus.CANCELED
    assert canceled.filled_qty == D("0.2")  # one maker step of the default book


def test_fill_before_cancel_triggers_a_stop():
    engine = make_engine()
    algo = engine.create_order(
        stop(OrderType.STOP_MARKET, Side.SELL, "59000", "stop1", qty="0.1"), now=1.0
    )
    fill_before_cancel(
        engine,
        BTC,
        order_id=algo.order_id,
        client_order_id=None,
        algo=True,
        now=2.0,
        mode=FillMode.FULL,
    )
    assert engine.mark_price(BTC) == Decimal(59000)
    assert engine.position_qty(BTC) == D("-0.1")
    assert (
        engine.query_order(BTC, order_id=algo.order_id, algo=True).status is VenueOrderStatus.FILLED
    )


def test_fill_before_cancel_leaves_closed_or_unknown_orders_alone():
    engine = make_engine()
    engine.create_order(market(Side.BUY, "0.1", "done1"), now=1.0)
    before = engine.history.records
    for coid in ("done1", "never"):
        detail = fill_before_cancel(
            engine,
            BTC,
            order_id=None,
            client_order_id=coid,
            algo=False,
            now=2.0,
            mode=FillMode.FULL,
        )
        assert "nothing to fill" in detail
    assert engine.history.records == before


# ---------------------------------------------------------------------------- properties

request_ops = st.sampled_from(sorted(OPERATIONS))
calls = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=50.0, allow_nan=False),
        st.sampled_from(["request", "lag", "outage", "renew", "poll"]),
        request_ops,
        st.sampled_from([BTC, ETH, None]),
    ),
    max_size=40,
).map(lambda cs: sorted(cs, key=lambda c: c[0]))


def drive(schedule, seed, script, events):
    """Play a call script against a fresh injector; return what it answered."""
    inj = FaultInjector(schedule, random.Random(seed))
    answers: list[object] = []
    flt = inj.stream_filter(0.0)
    for i, (now, what, op, symbol) in enumerate(script):
        if what == "request":
            answers.append(inj.before_request(op, symbol, now))
        elif what == "lag":
            answers.append(inj.rest_lag(op, now))
        elif what == "outage":
            answers.append(inj.stream_outage(now))
        elif what == "renew":
            inj.renew_listen_key(now)
        else:
            if flt.closed:
                flt = inj.stream_filter(now)
            answers.append(flt.poll(events[i % len(events) :][:2], now))
    return inj, answers


@settings(max_examples=60)
@given(schedules, calls, st.integers(min_value=0, max_value=2**32))
def test_faults_never_fire_outside_their_window(schedule, script, seed):
    _, events = trading_events()
    inj, answers = drive(schedule, seed, script, events)
    for entry in inj.injected:
        spec = schedule[entry.spec_index]
        assert spec.kind is entry.kind
        if entry.kind is K.LISTEN_KEY_EXPIRY and entry.op == "keepalive":
            continue  # the one documented consequence that outlives its window
        assert spec.start <= entry.at < spec.end
    for (now, what, op, symbol), answer in zip(
        [c for c in script if c[1] != "renew"], answers, strict=True
    ):
        if what == "request" and answer is not None:
            spec = schedule[answer.spec_index]
            assert spec.active(now) or answer.kind is K.LISTEN_KEY_EXPIRY
            assert spec.kind is K.LISTEN_KEY_EXPIRY or spec.applies(op, symbol)


@settings(max_examples=60)
@given(schedules, calls, st.integers(min_value=0, max_value=2**32))
def test_same_seed_same_schedule_same_calls_same_faults(schedule, script, seed):
    _, events = trading_events()
    first, answers_a = drive(schedule, seed, script, events)
    second, answers_b = drive(schedule, seed, script, events)
    assert first.injected == second.injected
    assert answers_a == answers_b


@given(schedules)
def test_nothing_fires_before_the_first_window(schedule):
    start = min((s.start for s in schedule), default=1.0)
    assume(start > 0.0)
    inj = FaultInjector(schedule, random.Random(0))
    early = start / 2
    _, events = trading_events()
    for op in sorted(OPERATIONS):
        assert inj.before_request(op, BTC, early) is None
        assert inj.rest_lag(op, early) == 0.0
    assert inj.stream_outage(early) is None
    assert inj.stream_filter(0.0).poll(events, early).events == events
    assert inj.injected == ()


def test_injected_entries_are_json_ready():
    inj = injector(FaultSpec(0, 1, K.DROP_REQUEST))
    inj.before_request("create", BTC, 0.5)
    (entry,) = inj.injected
    assert isinstance(entry, InjectedFault)
    assert json.loads(json.dumps(entry.to_dict()))["kind"] == "DROP_REQUEST"
    assert "timeout after 10s" in entry.detail


def test_events_are_order_trade_updates_in_the_fixture():
    # Guards the fixture the stream tests rely on: it must contain a fill.
    _, events = trading_events()
    assert any(isinstance(e, OrderTradeUpdate) and e.trade_id for e in events)
