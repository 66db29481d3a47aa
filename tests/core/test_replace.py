import itertools
import math
import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.core.model import VenueOrder, VenueOrderStatus
from scalper.core.replace import (
    DEGRADE_TAG,
    REPLACE_RACE_CAUSE,
    REPLACE_STORM_CAUSE,
    TERMINAL_STATES,
    TRANSITIONS,
    EnvelopeDecision,
    ReplaceAction,
    ReplaceBudget,
    ReplaceConfig,
    ReplaceEvent,
    ReplaceEventKind,
    ReplaceMachine,
    ReplaceState,
    ReplaceTransitionError,
    admit_replace,
    check_envelope,
    worst_case_position,
)
from scalper.core.types import OrderType, Side

D = Decimal
E = ReplaceEventKind
S = ReplaceState
A = ReplaceAction


def env(
    position: str = "0",
    old_side: Side = Side.BUY,
    old: str = "0",
    new_side: Side = Side.BUY,
    new: str = "0",
    price: str = "100",
    budget: str = "1000",
    position_bounds: tuple[Decimal, Decimal] | None = None,
) -> EnvelopeDecision:
    return check_envelope(
        position_qty=D(position),
        old_side=old_side,
        old_remaining_qty=D(old),
        new_side=new_side,
        new_qty=D(new),
        price=D(price),
        budget_notional=D(budget),
        position_bounds=position_bounds,
    )


# --------------------------------------------------------------------------- envelope


def test_reprice_of_an_entry_counts_old_and_new_both_filling():
    # Flat, a resting BUY 1 repriced to a BUY 1: worst case both fill, long 2 = 200 USDT.
    refused = env(old="1", new="1", budget="150")
    assert not refused.allowed
    assert refused.reason == DEGRADE_TAG == "degrade_cancel_reconcile_create"
    assert refused.worst_case_qty == 2
    assert refused.worst_case_notional == 200
    assert env(old="1", new="1", budget="200").allowed


def test_existing_position_adds_to_the_worst_case():
    d = env(position="3", old="1", new="1", budget="1000")
    assert d.worst_case_qty == 5
    assert d.allowed
    assert not env(position="3", old="1", new="1", budget="499").allowed


def test_replacing_an_exit_is_not_double_counted():
    # Long 1, a SELL 1 exit repriced: at worst one fills (flat) or both (short 1).
    d = env(position="1", old_side=Side.SELL, old="1", new_side=Side.SELL, new="1", budget="100")
    assert d.worst_case_qty == 1
    assert d.allowed


def test_position_uncertainty_is_judged_at_its_worst_end():
    point = env(position="0", old="1", new="1", budget="250")
    assert point.allowed
    wide = env(position="0", old="1", new="1", budget="250", position_bounds=(D("-1"), D("1")))
    assert wide.worst_case_qty == 3
    assert not wide.allowed


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"old": "-1"}, "old_remaining_qty"),
        ({"new": "-1"}, "new_qty"),
        ({"price": "0"}, "price"),
        ({"budget": "-5"}, "budget_notional"),
        ({"position_bounds": (D("1"), D("2"))}, "position_bounds"),
    ],
)
def test_envelope_rejects_bad_input(kwargs, field):
    with pytest.raises(CoreValueError) as e:
        env(**kwargs)
    assert e.value.field == field


qty = st.decimals(min_value=D("0"), max_value=D("50"), places=2)
pos_qty = st.decimals(min_value=D("-50"), max_value=D("50"), places=2)
sides = st.sampled_from(list(Side))


@given(
    pos_qty,
    sides,
    qty,
    sides,
    qty,
    qty,
    st.decimals(min_value=D("0"), max_value=D("10000"), places=1),
)
def test_envelope_is_monotone_in_new_quantity(p, os_, o, ns, n, extra, budget):
    small = env(str(p), os_, str(o), ns, str(n), budget=str(budget))
    large = env(str(p), os_, str(o), ns, str(n + extra), budget=str(budget))
    assert large.worst_case_notional >= small.worst_case_notional
    if not small.allowed:
        assert not large.allowed


@given(pos_qty, sides, qty, sides, qty)
def test_worst_case_is_between_position_and_plain_sum(p, os_, o, ns, n):
    w = worst_case_position(p, os_, o, ns, n)
    assert abs(p) <= w <= abs(p) + o + n
    if (p >= 0 and os_ is Side.BUY and ns is Side.BUY) or (
        p <= 0 and os_ is Side.SELL and ns is Side.SELL
    ):
        assert w == abs(p) + o + n


def _apply(position: Decimal, side: Side, amount: Decimal, reduce_only: bool) -> Decimal:
    delta = amount if side is Side.BUY else -amount
    if not reduce_only:
        return position + delta
    if position == 0 or (position > 0) == (delta > 0):
        return position  # a reduce-only order cannot increase or open
    return position + delta if abs(delta) <= abs(position) else D(0)


@settings(max_examples=200)
@given(
    pos_qty,
    sides,
    qty,
    st.booleans(),
    sides,
    qty,
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_worst_case_bounds_every_partial_fill_interleaving(p, os_, o, o_ro, ns, n, n_ro, rnd):
    # Brute force: random partial fills of both orders in random interleavings, with
    # reduce-only clamping, never reach a larger |position| than the envelope's corners.
    bound = worst_case_position(p, os_, o, ns, n)
    for _ in range(20):
        legs = {"old": [os_, o, o_ro], "new": [ns, n, n_ro]}
        position = p
        for _step in range(4):
            name = rnd.choice(["old", "new"])
            side, left, ro = legs[name]
            amount = (left * D(rnd.randint(0, 100)) / 100).quantize(D("0.0001"))
            position = _apply(position, side, amount, ro)
            legs[name][1] = left - amount
            assert abs(position) <= bound


# --------------------------------------------------------------------------- budgets


def test_per_symbol_budget_refuses_the_seventh_replace_with_storm_pressure():
    budget = ReplaceBudget()
    for t in range(6):
        assert budget.try_acquire("BTCUSDT", float(t)).allowed
    refused = budget.try_acquire("BTCUSDT", 6.0)
    assert not refused.allowed
    assert refused.reason == "replace_budget_symbol_exhausted"
    assert refused.symbol_used == 6
    assert refused.pressure is not None
    assert refused.pressure.cause == REPLACE_STORM_CAUSE == "replace_storm"
    assert 0 <= refused.pressure.severity <= 1
    assert budget.try_acquire("ETHUSDT", 6.0).allowed  # other symbols are unaffected
    assert budget.try_acquire("BTCUSDT", 300.5).allowed  # t=0 slid out of the 300 s window


def test_global_budget_spans_symbols():
    budget = ReplaceBudget(ReplaceConfig(max_global=4, max_per_symbol=2))
    for i, sym in enumerate(["A", "A", "B", "B"]):
        assert budget.try_acquire(sym, float(i)).allowed
    d = budget.try_acquire("C", 5.0)
    assert not d.allowed
    assert d.reason == "replace_budget_global_exhausted"


def test_ambiguity_budget_blocks_a_symbol_with_repeated_unknowns():
    budget = ReplaceBudget()
    for t in (1.0, 2.0, 3.0):
        budget.record_ambiguity("BTCUSDT", t)
    d = budget.try_acquire("BTCUSDT", 4.0)
    assert d.reason == "replace_budget_ambiguity_exhausted"
    assert d.ambiguity_used == 3
    assert budget.try_acquire("BTCUSDT", 301.5).allowed


def test_refused_replace_does_not_consume_budget():
    budget = ReplaceBudget(ReplaceConfig(max_global=2, max_per_symbol=1))
    assert budget.try_acquire("A", 0.0).allowed
    assert not budget.try_acquire("A", 1.0).allowed
    assert budget.usage("A", 1.0) == (1, 1, 0)


def test_restored_spending_counts_against_the_windows_of_a_new_budget():
    # A process that crashed mid-storm: 5 replaces and 2 unknowns on BTC in the last 300 s,
    # one replace on ETH, and an old one long out of the window.
    spent = [
        (-400.0, "BTCUSDT", False),  # older than the window: dropped
        (50.0, "BTCUSDT", False),
        (60.0, "ETHUSDT", False),
        (70.0, "BTCUSDT", True),
        *((float(t), "BTCUSDT", False) for t in range(80, 84)),
        (90.0, "BTCUSDT", True),
    ]
    budget = ReplaceBudget()
    budget.restore(spent, now=100.0)
    assert budget.usage("BTCUSDT", 100.0) == (6, 5, 2)
    assert budget.try_acquire("BTCUSDT", 100.0).allowed  # the 6th on the symbol
    refused = budget.try_acquire("BTCUSDT", 101.0)
    assert refused.reason == "replace_budget_symbol_exhausted"
    budget.record_ambiguity("ETHUSDT", 102.0)
    # The restored times slide out of the window like live ones.
    assert budget.usage("BTCUSDT", 370.5) == (5, 5, 1)  # t=50, 60 and 70 slid out


def test_restore_clamps_entries_stamped_after_now_and_checks_times():
    budget = ReplaceBudget()
    budget.restore([(120.0, "A", False), (110.0, "A", True)], now=100.0)  # wall-clock skew
    assert budget.usage("A", 100.0) == (1, 1, 1)
    assert budget.usage("A", 400.5) == (0, 0, 0)  # counted as t=100, gone after 400
    with pytest.raises(CoreValueError) as e:
        ReplaceBudget().restore([(math.nan, "A", False)], now=100.0)
    assert e.value.field == "now"
    with pytest.raises(CoreValueError):
        budget.restore([], now=50.0)  # before what this budget has seen


def test_budget_rejects_a_clock_going_backwards():
    budget = ReplaceBudget()
    budget.try_acquire("A", 10.0)
    with pytest.raises(CoreValueError) as e:
        budget.try_acquire("A", 9.0)
    assert e.value.field == "now"


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=40), st.sampled_from(["A", "B", "C"]), st.booleans()
        ),
        max_size=120,
    )
)
def test_budget_windows_are_respected(events):
    cfg = ReplaceConfig(
        window_seconds=100.0, max_global=8, max_per_symbol=4, max_ambiguity_per_symbol=2
    )
    budget = ReplaceBudget(cfg)
    now = 0.0
    admitted: list[tuple[float, str]] = []
    for dt, sym, ambiguous in events:
        now += dt
        if ambiguous:
            budget.record_ambiguity(sym, now)
        elif budget.try_acquire(sym, now).allowed:
            admitted.append((now, sym))
    for t, _ in admitted:
        window = [(u, s) for u, s in admitted if t - cfg.window_seconds < u <= t]
        assert len(window) <= cfg.max_global
        for sym in "ABC":
            assert sum(1 for _, s in window if s == sym) <= cfg.max_per_symbol


def test_admission_degrades_without_spending_budget_when_envelope_refuses():
    budget = ReplaceBudget(ReplaceConfig(max_global=1, max_per_symbol=1))
    adm = admit_replace(budget, symbol="A", now=0.0, envelope=env(old="1", new="1", budget="10"))
    assert adm.decision == DEGRADE_TAG
    assert adm.budget is None
    assert adm.pressure is not None
    assert adm.pressure.cause == "replace_envelope_block"
    ok = admit_replace(budget, symbol="A", now=1.0, envelope=env(old="1", new="1"))
    assert ok.decision == "replace"
    assert ok.pressure is None
    storm = admit_replace(budget, symbol="A", now=2.0, envelope=env(old="1", new="1"))
    assert storm.decision == "give_up"
    assert storm.pressure is not None
    assert storm.pressure.cause == "replace_storm"


# --------------------------------------------------------------------------- state machine


def ev(kind: ReplaceEventKind, filled: str | None = None) -> ReplaceEvent:
    return ReplaceEvent(kind, None if filled is None else D(filled))


def test_clean_replace_cancels_then_creates():
    m = ReplaceMachine("BTCUSDT", "111")
    s1 = m.apply(E.START, 0.0)
    assert (s1.state, s1.actions) == (S.CANCEL_SENT, (A.SEND_CANCEL,))
    s2 = m.apply(ev(E.CANCEL_ACK, "0"), 0.1)
    assert (s2.state, s2.actions) == (S.NEW_SENT, (A.SEND_NEW,))
    s3 = m.apply(E.NEW_ACKED, 0.2)
    assert s3.state is S.DONE
    assert s3.reason == "replaced"
    assert m.is_terminal


def test_unknown_cancel_that_was_a_fill_never_creates_the_new_order():
    # Cancel answered -2011 ("not open now"): the order had filled. The status tells us so.
    m = ReplaceMachine("BTCUSDT", "111")
    m.apply(E.START, 0.0)
    s = m.apply(E.CANCEL_UNKNOWN, 0.5)
    assert (s.state, s.actions, s.ambiguous) == (S.CANCEL_SENT_UNKNOWN, (A.QUERY_STATUS,), True)
    s = m.apply(ev(E.STATUS_FILLED, "1"), 0.7)
    assert s.state is S.FILLED_AFTER_CANCEL
    assert s.actions == (A.ACCOUNT_FILL,)
    assert s.fill_qty == 1
    s = m.apply(E.FILL_ACCOUNTED, 0.8)
    assert s.state is S.DONE
    assert s.reason == "filled_after_cancel_no_new_order"
    assert not m.new_sent


def test_partial_fill_racing_the_cancel_hands_the_fill_back():
    m = ReplaceMachine("BTCUSDT", "111", known_filled_qty=D("0.2"))
    m.apply(E.START, 0.0)
    s = m.apply(ev(E.CANCEL_ACK, "0.5"), 0.1)
    assert s.state is S.FILLED_AFTER_CANCEL
    assert s.fill_qty == D("0.3")
    assert A.SEND_NEW not in s.actions


def test_already_known_fill_does_not_block_the_new_order():
    m = ReplaceMachine("BTCUSDT", "111", known_filled_qty=D("0.2"))
    m.apply(E.START, 0.0)
    assert m.apply(ev(E.CANCEL_ACK, "0.2"), 0.1).actions == (A.SEND_NEW,)


def test_stale_lower_fill_report_does_not_hide_a_seen_fill():
    m = ReplaceMachine("BTCUSDT", "111")
    m.apply(E.START, 0.0)
    m.apply(E.CANCEL_UNKNOWN, 0.1)
    s = m.apply(ev(E.STATUS_OPEN, "0.4"), 0.2)  # still live, partly filled: cancel again
    assert (s.state, s.actions) == (S.REPLACE_RACE, (A.SEND_CANCEL,))
    s = m.apply(ev(E.CANCEL_ACK, "0"), 0.3)  # a stale zero must not erase the 0.4
    assert s.state is S.FILLED_AFTER_CANCEL
    assert s.fill_qty == D("0.4")


def test_old_order_that_stays_open_exhausts_cancel_attempts():
    m = ReplaceMachine("BTCUSDT", "111", config=ReplaceConfig(max_cancel_attempts=2))
    m.apply(E.START, 0.0)
    assert m.apply(E.CANCEL_FAILED, 0.1).state is S.REPLACE_RACE
    s = m.apply(E.CANCEL_FAILED, 0.2)
    assert s.state is S.GAVE_UP
    assert s.reason == "cancel_attempts_exhausted"
    assert s.actions == (A.RECONCILE,)
    assert s.pressure is not None
    assert s.pressure.cause == REPLACE_RACE_CAUSE
    assert s.pressure.severity == pytest.approx(0.90 + 0.02 * 2)
    assert m.cancel_attempts == 2


def test_status_that_never_resolves_gives_up_without_creating():
    m = ReplaceMachine("BTCUSDT", "111", config=ReplaceConfig(max_status_queries=2))
    m.apply(E.START, 0.0)
    m.apply(E.CANCEL_UNKNOWN, 0.1)
    m.apply(E.STATUS_UNKNOWN, 0.2)
    s = m.apply(E.STATUS_UNKNOWN, 0.3)
    assert s.state is S.GAVE_UP
    assert s.reason == "status_unresolved"
    assert m.ambiguity_count == 3
    assert s.pressure is not None
    assert s.pressure.severity == pytest.approx(min(1.0, 0.90 + 0.05 * 3 + 0.02 * 1))
    assert not m.new_sent


def test_deadline_stops_new_requests_but_not_fill_reports():
    cfg = ReplaceConfig(max_elapsed_seconds=5.0)
    m = ReplaceMachine("BTCUSDT", "111", config=cfg)
    m.apply(E.START, 0.0)
    m.apply(E.CANCEL_UNKNOWN, 1.0)
    late = m.apply(ev(E.STATUS_CANCELED, "0"), 6.0)  # proven canceled, but too late to create
    assert late.state is S.GAVE_UP
    assert late.reason == "deadline_exceeded"
    m2 = ReplaceMachine("BTCUSDT", "222", config=cfg)
    m2.apply(E.START, 0.0)
    m2.apply(E.CANCEL_UNKNOWN, 1.0)
    fill = m2.apply(ev(E.STATUS_CANCELED, "0.5"), 6.0)
    assert fill.state is S.FILLED_AFTER_CANCEL  # the fill is still handed over
    assert fill.fill_qty == D("0.5")


def test_new_order_reject_ends_settled_and_unknown_ends_in_reconcile():
    m = ReplaceMachine("BTCUSDT", "111")
    m.apply(E.START, 0.0)
    m.apply(ev(E.CANCEL_ACK, "0"), 0.1)
    s = m.apply(E.NEW_REJECTED, 0.2)
    assert (s.state, s.actions, s.pressure) == (S.GAVE_UP, (), None)
    m2 = ReplaceMachine("BTCUSDT", "222")
    m2.apply(E.START, 0.0)
    m2.apply(ev(E.CANCEL_ACK, "0"), 0.1)
    s2 = m2.apply(E.NEW_UNKNOWN, 0.2)
    assert s2.state is S.GAVE_UP
    assert s2.actions == (A.RECONCILE,)
    assert s2.reason == "new_order_outcome_unknown"


def test_illegal_event_raises_and_leaves_the_machine_unchanged():
    m = ReplaceMachine("BTCUSDT", "111")
    m.apply(E.START, 0.0)
    with pytest.raises(ReplaceTransitionError) as e:
        m.apply(E.NEW_ACKED, 0.1)  # a new order acked while the old one is being cancelled?
    assert e.value.state is S.CANCEL_SENT
    assert e.value.event is E.NEW_ACKED
    assert m.state is S.CANCEL_SENT
    assert m.apply(ev(E.CANCEL_ACK, "0"), 0.2).state is S.NEW_SENT


def test_terminal_states_accept_no_event():
    m = ReplaceMachine("BTCUSDT", "111")
    m.apply(E.GIVE_UP, 0.0)
    for kind in E:
        with pytest.raises(ReplaceTransitionError):
            m.apply(ReplaceEvent(kind, D(0) if kind in _FILL_EVENTS else None), 1.0)


_FILL_EVENTS = {E.CANCEL_ACK, E.STATUS_OPEN, E.STATUS_CANCELED, E.STATUS_FILLED}


def test_event_payload_is_validated():
    with pytest.raises(CoreValueError) as e:
        ReplaceEvent(E.CANCEL_ACK)
    assert e.value.field == "filled_qty"
    with pytest.raises(CoreValueError):
        ReplaceEvent(E.START, D(1))
    with pytest.raises(CoreValueError):
        ReplaceEvent(E.STATUS_FILLED, D(-1))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (VenueOrderStatus.NEW, E.STATUS_OPEN),
        (VenueOrderStatus.PARTIALLY_FILLED, E.STATUS_OPEN),
        (VenueOrderStatus.FILLED, E.STATUS_FILLED),
        (VenueOrderStatus.CANCELED, E.STATUS_CANCELED),
        (VenueOrderStatus.EXPIRED, E.STATUS_CANCELED),
        (VenueOrderStatus.EXPIRED_IN_MATCH, E.STATUS_CANCELED),
        (VenueOrderStatus.REJECTED, E.STATUS_CANCELED),
    ],
)
def test_status_event_from_a_queried_order(status, kind):
    order = VenueOrder(
        symbol="BTCUSDT",
        order_id="1",
        client_order_id="sc-E-0123456789abcdef-0",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        status=status,
        quantity=D("1"),
        filled_qty=D("0.25"),
        price=D("100"),
    )
    event = ReplaceEvent.from_status(order)
    assert event.kind is kind
    assert event.filled_qty == D("0.25")


def test_machine_rejects_a_clock_going_backwards():
    m = ReplaceMachine("BTCUSDT", "111")
    m.apply(E.START, 5.0)
    with pytest.raises(CoreValueError) as e:
        m.apply(E.CANCEL_UNKNOWN, 4.0)
    assert e.value.field == "now"
    assert m.state is S.CANCEL_SENT


def test_table_is_exactly_what_apply_accepts():
    # Every (state, event) pair: legal ones per the table step into an allowed state;
    # every other pair raises. Machines are driven to each state by a known path.
    paths = {
        S.INTENT_CREATED: [],
        S.CANCEL_SENT: [ev(E.START)],
        S.CANCEL_SENT_UNKNOWN: [ev(E.START), ev(E.CANCEL_UNKNOWN)],
        S.REPLACE_RACE: [ev(E.START), ev(E.CANCEL_FAILED)],
        S.NEW_SENT: [ev(E.START), ev(E.CANCEL_ACK, "0")],
        S.FILLED_AFTER_CANCEL: [ev(E.START), ev(E.CANCEL_ACK, "1")],
        S.DONE: [ev(E.START), ev(E.CANCEL_ACK, "0"), ev(E.NEW_ACKED)],
        S.GAVE_UP: [ev(E.GIVE_UP)],
    }
    assert set(paths) == set(S)
    for state, kind in itertools.product(S, E):
        m = ReplaceMachine("BTCUSDT", "1")
        for i, e in enumerate(paths[state]):
            m.apply(e, float(i))
        assert m.state is state
        event = ReplaceEvent(kind, D(0) if kind in _FILL_EVENTS else None)
        if (state, kind) in TRANSITIONS:
            assert m.apply(event, 10.0).state in TRANSITIONS[(state, kind)]
        else:
            with pytest.raises(ReplaceTransitionError):
                m.apply(event, 10.0)
    assert not any(s in TERMINAL_STATES for s, _ in TRANSITIONS)


def _random_event(rnd: random.Random, state: ReplaceState, known: Decimal) -> ReplaceEvent:
    legal = [k for (s, k) in TRANSITIONS if s is state]
    kind = rnd.choice(legal)
    if kind in _FILL_EVENTS:
        filled = known + D(rnd.choice([0, 0, 0, 1, 2])) / 10
        return ReplaceEvent(kind, filled)
    return ReplaceEvent(kind)


@settings(max_examples=300)
@given(
    st.randoms(use_true_random=False),
    st.integers(1, 5),
    st.integers(1, 5),
    st.sampled_from(["0", "0.3"]),
)
def test_any_legal_run_terminates_within_bound_and_never_races_the_old_order(
    rnd, cancels, queries, known
):
    cfg = ReplaceConfig(
        max_cancel_attempts=cancels, max_status_queries=queries, max_elapsed_seconds=1e9
    )
    m = ReplaceMachine("BTCUSDT", "111", known_filled_qty=D(known), config=cfg)
    bound = cancels + queries + 3
    now = 0.0
    new_sends = 0
    for _ in range(bound):
        event = _random_event(rnd, m.state, D(known))
        before = m.state
        step = m.apply(event, now)
        now += 0.1
        assert step.state in TRANSITIONS[(before, event.kind)]
        if A.SEND_NEW in step.actions:
            new_sends += 1
            # Only on proof that the old order is terminal, and with no unaccounted fill.
            assert event.kind in (E.CANCEL_ACK, E.STATUS_CANCELED)
            assert m.unaccounted_fill_qty == 0
        if A.ACCOUNT_FILL in step.actions:
            assert step.state is S.FILLED_AFTER_CANCEL
        assert m.cancel_attempts <= cancels
        assert m.status_queries <= queries
        if m.is_terminal:
            break
    assert m.is_terminal, f"not terminal after {bound} steps: {m.state}"
    assert new_sends <= 1
    if m.unaccounted_fill_qty > 0:
        assert new_sends == 0


@settings(max_examples=200)
@given(st.lists(st.sampled_from(list(E)), max_size=15), st.randoms(use_true_random=False))
def test_arbitrary_event_sequences_either_step_legally_or_raise(kinds, rnd):
    m = ReplaceMachine("BTCUSDT", "111")
    for i, kind in enumerate(kinds):
        event = ReplaceEvent(kind, D(rnd.choice([0, 1])) if kind in _FILL_EVENTS else None)
        before = m.state
        try:
            step = m.apply(event, float(i))
        except ReplaceTransitionError:
            assert (before, kind) not in TRANSITIONS
            assert m.state is before
            continue
        assert step.state in TRANSITIONS[(before, kind)]
        assert step.state is m.state


def test_replace_storm_end_to_end_escalates_and_bounds_attempts():
    # A strategy reprices BTCUSDT every second; the venue keeps answering cancels with
    # timeouts. The ambiguity budget and the per-symbol budget stop the storm.
    budget = ReplaceBudget()
    rng = random.Random(7)
    pressures = []
    sent_new = 0
    for t in range(20):
        now = float(t)
        adm = admit_replace(budget, symbol="BTCUSDT", now=now, envelope=env(old="1", new="1"))
        if adm.decision != "replace":
            pressures.append(adm.pressure)
            continue
        m = ReplaceMachine("BTCUSDT", f"o{t}")
        m.apply(E.START, now)
        step = m.apply(E.CANCEL_UNKNOWN, now + 0.1)
        while not m.is_terminal:
            if step.ambiguous:
                budget.record_ambiguity("BTCUSDT", now + 0.2)
            kind = E.STATUS_UNKNOWN if rng.random() < 0.9 else E.GIVE_UP
            step = m.apply(kind, now + 0.3)
        sent_new += m.new_sent
    assert sent_new == 0
    assert pressures
    assert all(p is not None and p.cause == "replace_storm" for p in pressures)
    assert {p.reason for p in pressures if p is not None} == {"replace_budget_ambiguity_exhausted"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window_seconds": 0.0}, "window_seconds"),
        ({"max_global": 0}, "max_global"),
        ({"max_per_symbol": 30}, "max_per_symbol"),
        ({"max_cancel_attempts": 1.5}, "max_cancel_attempts"),
        ({"budget_severity": 1.2}, "budget_severity"),
        ({"max_elapsed_seconds": float("inf")}, "max_elapsed_seconds"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(CoreValueError) as e:
        ReplaceConfig(**kwargs)
    assert e.value.field == field


def test_seed_budget_defaults():
    cfg = ReplaceConfig()
    assert (
        cfg.window_seconds,
        cfg.max_global,
        cfg.max_per_symbol,
        cfg.max_ambiguity_per_symbol,
    ) == (300.0, 20, 6, 3)
