"""Order lifecycle and position-belief state machines: examples from the exchange, then properties."""

import contextlib
import random
from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.errors_base import CoreValueError
from scalper.core.model import Fill, VenueOrder, VenueOrderStatus
from scalper.core.orders import (
    ORDER_TRANSITIONS,
    POSITION_SURPRISES,
    POSITION_TRANSITIONS,
    TERMINAL_STATES,
    ContradictionError,
    FillError,
    LateFillError,
    OrderEvent,
    OrderEventKind,
    OrderState,
    OrderTracker,
    PositionBelief,
    PositionEvent,
    PositionEventKind,
    PositionState,
    TransitionError,
    event_from_venue_order,
    event_kind_for_status,
    position_transitions_as_rows,
    transitions_as_rows,
)
from scalper.core.types import OrderType, Side

K = OrderEventKind
S = OrderState
PK = PositionEventKind
PS = PositionState

QTY = Decimal("0.010")
LOT = Decimal("0.001")


def lots(n: int) -> Decimal:
    return LOT * n


def fill(trade_id: str, n: int, *, full: bool = False, cum: int | None = None) -> OrderEvent:
    return OrderEvent(
        K.FILL_FULL if full else K.FILL_PARTIAL,
        trade_id=trade_id,
        qty=lots(n),
        cum_qty=None if cum is None else lots(cum),
    )


def obs(kind: OrderEventKind, at: float, cum: int | None = None) -> OrderEvent:
    return OrderEvent(kind, observed_at=at, cum_qty=None if cum is None else lots(cum))


def ev(kind: OrderEventKind, cum: int | None = None) -> OrderEvent:
    return OrderEvent(kind, cum_qty=None if cum is None else lots(cum))


def live_tracker(t: float = 1.0) -> OrderTracker:
    tr = OrderTracker(quantity=QTY, client_order_id="sc-E-0123456789abcdef-0")
    tr.apply(ev(K.SEND), t)
    tr.apply(ev(K.ACK), t + 0.1)
    return tr


def fingerprint(tr: OrderTracker) -> tuple[object, ...]:
    return (
        tr.state,
        tr.filled_qty,
        tr.reported_filled_qty,
        tr.evidence_at,
        tuple(tr.history),
        tr.trade_ids,
    )


# --------------------------------------------------------------------------------------------
# Examples: what actually happens on Binance
# --------------------------------------------------------------------------------------------


def test_limit_order_fills_in_two_trades() -> None:
    tr = live_tracker()
    assert tr.state is S.LIVE
    t = tr.apply(fill("101", 4, cum=4), 2.0)
    assert (t.from_state, t.to_state, t.reason) == (S.LIVE, S.PARTIALLY_FILLED, "applied")
    t = tr.apply(fill("102", 6, full=True, cum=10), 3.0)
    assert t.to_state is S.FILLED
    assert tr.filled_qty == QTY
    assert tr.missing_fill_qty == 0
    assert tr.open_qty_worst_case == 0
    assert [h.to_state for h in tr.history] == [S.SENT, S.LIVE, S.PARTIALLY_FILLED, S.FILLED]


def test_market_order_fill_arrives_on_stream_before_rest_ack() -> None:
    tr = OrderTracker(quantity=QTY)
    tr.apply(ev(K.SEND), 1.0)
    tr.apply(fill("7", 3), 1.01)
    assert tr.state is S.PARTIALLY_FILLED
    late_ack = tr.apply(ev(K.ACK), 1.02)
    assert late_ack.to_state is S.PARTIALLY_FILLED
    tr.apply(fill("8", 7, full=True), 1.03)
    late_ack_again = tr.apply(ev(K.ACK), 1.04)
    assert late_ack_again.to_state is S.FILLED


def test_timeout_on_create_is_resolved_by_query_not_resend() -> None:
    tr = OrderTracker(quantity=QTY)
    tr.apply(ev(K.SEND), 1.0)
    assert tr.apply(ev(K.AMBIGUOUS_ERROR), 11.0).to_state is S.UNKNOWN
    # -2013 right after a timeout: the placement may still be in flight.
    assert tr.apply(obs(K.QUERY_NOT_FOUND, 11.5), 12.0).to_state is S.UNKNOWN
    assert tr.open_qty_worst_case == QTY
    # Retrying the create is never the way out.
    with pytest.raises(TransitionError):
        tr.apply(ev(K.SEND), 12.5)
    # The next query finds it, already partly filled; the trades are not journaled yet.
    t = tr.apply(obs(K.QUERY_FOUND_PARTIAL, 13.0, cum=4), 13.2)
    assert t.to_state is S.PARTIALLY_FILLED
    assert tr.filled_qty == 0
    assert tr.missing_fill_qty == lots(4)
    assert tr.open_qty_worst_case == lots(6)
    tr.apply(fill("55", 4), 13.3)  # REST backfill of the trade
    assert tr.missing_fill_qty == 0
    assert tr.state is S.PARTIALLY_FILLED


def test_proven_absent_ends_an_unknown_create_and_a_later_fill_is_a_contradiction() -> None:
    tr = OrderTracker(quantity=QTY)
    tr.apply(ev(K.SEND), 1.0)
    tr.apply(ev(K.AMBIGUOUS_ERROR), 11.0)
    assert tr.apply(ev(K.PROVEN_ABSENT), 80.0).to_state is S.ABSENT
    before = fingerprint(tr)
    with pytest.raises(LateFillError) as info:
        tr.apply(fill("999", 2), 81.0)
    assert info.value.state is S.ABSENT
    assert info.value.event == fill("999", 2)
    assert fingerprint(tr) == before


def test_cancel_ack_races_a_trade_that_it_already_counts() -> None:
    tr = live_tracker()
    tr.apply(ev(K.CANCEL_REQUEST), 5.0)
    assert tr.state is S.CANCEL_PENDING
    # REST answers first: canceled, with 3 lots executed before the cancel.
    assert tr.apply(ev(K.CANCEL_ACK, cum=3), 5.1).to_state is S.CANCELED
    assert tr.missing_fill_qty == lots(3)
    # The stream delivers that trade afterwards: a backfill, the verdict stands.
    t = tr.apply(fill("301", 3, cum=3), 5.2)
    assert (t.to_state, t.reason, t.applied) == (S.CANCELED, "backfill", True)
    assert tr.filled_qty == lots(3)
    assert tr.missing_fill_qty == 0
    # A trade beyond what the venue counted at cancel cannot be absorbed silently.
    before = fingerprint(tr)
    with pytest.raises(LateFillError):
        tr.apply(fill("302", 1), 5.3)
    assert fingerprint(tr) == before
    # The stream's own CANCELED report is consistent with the verdict.
    assert tr.apply(ev(K.VENUE_CANCELED, cum=3), 5.4).to_state is S.CANCELED


def test_trade_marked_filled_for_a_canceled_order_is_a_late_fill() -> None:
    tr = live_tracker()
    tr.apply(ev(K.CANCEL_REQUEST), 5.0)
    tr.apply(ev(K.CANCEL_ACK, cum=0), 5.1)
    with pytest.raises(LateFillError):
        tr.apply(fill("1", 10, full=True), 5.2)
    assert tr.state is S.CANCELED
    assert tr.filled_qty == 0


def test_cancel_not_open_means_query_and_never_proves_absence() -> None:
    tr = live_tracker()
    tr.apply(fill("1", 2), 2.0)
    tr.apply(ev(K.CANCEL_REQUEST), 3.0)
    assert tr.apply(ev(K.CANCEL_NOT_OPEN), 3.1).to_state is S.STATUS_UNKNOWN
    # The order existed: no absence proof may unlock a second generation (I7).
    with pytest.raises(TransitionError):
        tr.apply(ev(K.PROVEN_ABSENT), 3.2)
    assert tr.state is S.STATUS_UNKNOWN
    # It had filled: the query says FILLED; the trades we missed are now owed.
    assert tr.apply(ev(K.VENUE_FILLED, cum=10), 3.3).to_state is S.FILLED
    assert tr.filled_qty == lots(2)
    assert tr.missing_fill_qty == lots(8)
    assert tr.apply(fill("2", 8, full=True), 3.4).reason == "backfill"
    assert tr.missing_fill_qty == 0


def test_cancel_timeout_then_query_shows_open_returns_to_live_for_a_new_cancel() -> None:
    tr = live_tracker()
    tr.apply(ev(K.CANCEL_REQUEST), 3.0)
    assert tr.apply(ev(K.AMBIGUOUS_ERROR), 13.0).to_state is S.STATUS_UNKNOWN
    assert tr.apply(obs(K.QUERY_FOUND_OPEN, 13.5, cum=0), 14.0).to_state is S.LIVE
    assert tr.apply(ev(K.CANCEL_REQUEST), 14.1).to_state is S.CANCEL_PENDING


def test_status_unknown_with_known_fills_ignores_a_status_new_view() -> None:
    tr = live_tracker()
    tr.apply(fill("1", 2), 2.0)
    tr.apply(obs(K.SNAPSHOT_MISSING, 2.5), 3.0)
    assert tr.state is S.STATUS_UNKNOWN
    t = tr.apply(obs(K.SNAPSHOT_OPEN, 3.5), 4.0)
    assert (t.applied, t.reason, tr.state) == (False, "behind_local_fills", S.STATUS_UNKNOWN)
    t = tr.apply(obs(K.SNAPSHOT_PARTIAL, 4.5, cum=2), 5.0)
    assert t.to_state is S.PARTIALLY_FILLED


def test_duplicate_id_on_create_proves_existence() -> None:
    tr = OrderTracker(quantity=QTY)
    tr.apply(ev(K.SEND), 1.0)
    tr.apply(ev(K.AMBIGUOUS_ERROR), 2.0)
    assert tr.apply(ev(K.DUPLICATE_ID), 3.0).to_state is S.STATUS_UNKNOWN
    with pytest.raises(TransitionError):
        tr.apply(ev(K.PROVEN_ABSENT), 4.0)


def test_cancel_is_illegal_while_existence_is_unknown() -> None:
    tr = OrderTracker(quantity=QTY)
    tr.apply(ev(K.SEND), 1.0)
    tr.apply(ev(K.AMBIGUOUS_ERROR), 2.0)
    with pytest.raises(TransitionError) as info:
        tr.apply(ev(K.CANCEL_REQUEST), 3.0)
    assert not isinstance(info.value, ContradictionError)
    assert info.value.state is S.UNKNOWN


def test_stale_snapshot_cannot_undo_an_ack() -> None:
    tr = OrderTracker(quantity=QTY)
    tr.apply(ev(K.SEND), 9.0)
    tr.apply(ev(K.ACK), 10.0)
    t = tr.apply(obs(K.SNAPSHOT_MISSING, 9.5), 10.5)
    assert (t.applied, t.reason, tr.state) == (False, "stale_observation", S.LIVE)
    assert tr.apply(obs(K.SNAPSHOT_MISSING, 10.2), 11.0).to_state is S.STATUS_UNKNOWN


def test_newer_observation_is_not_stale_relative_to_an_older_one_applied_later() -> None:
    tr = live_tracker(1.0)
    tr.apply(obs(K.SNAPSHOT_OPEN, 4.0), 6.0)  # snapshot taken at 4, processed at 6
    t = tr.apply(obs(K.SNAPSHOT_MISSING, 5.0), 7.0)  # taken at 5: newer than what we know
    assert t.applied
    assert tr.state is S.STATUS_UNKNOWN


def test_terminal_contradiction_is_reported_unless_the_observation_is_stale() -> None:
    tr = live_tracker()
    tr.apply(ev(K.CANCEL_REQUEST), 5.0)
    tr.apply(ev(K.CANCEL_ACK, cum=0), 6.0)
    assert tr.apply(obs(K.SNAPSHOT_OPEN, 4.0), 7.0).reason == "stale_observation"
    before = fingerprint(tr)
    with pytest.raises(ContradictionError) as info:
        tr.apply(obs(K.SNAPSHOT_OPEN, 6.5), 7.0)
    assert not isinstance(info.value, LateFillError)
    assert fingerprint(tr) == before


def test_local_action_on_terminal_order_is_a_plain_transition_error() -> None:
    tr = live_tracker()
    tr.apply(fill("1", 10, full=True), 2.0)
    with pytest.raises(TransitionError) as info:
        tr.apply(ev(K.CANCEL_REQUEST), 3.0)
    assert not isinstance(info.value, ContradictionError)
    assert info.value.field == "event"
    assert "CANCEL_REQUEST" in str(info.value)
    assert info.value.state is S.FILLED


def test_duplicate_trade_is_ignored_and_conflicting_duplicate_is_refused() -> None:
    tr = live_tracker()
    tr.apply(fill("42", 3), 2.0)
    again = tr.apply(fill("42", 3), 2.1)
    assert (again.applied, again.reason) == (False, "duplicate_trade")
    assert tr.filled_qty == lots(3)
    with pytest.raises(FillError):
        tr.apply(fill("42", 4), 2.2)
    assert tr.filled_qty == lots(3)


def test_overfill_is_refused_and_leaves_the_tracker_unchanged() -> None:
    tr = live_tracker()
    tr.apply(fill("1", 7), 2.0)
    before = fingerprint(tr)
    with pytest.raises(FillError):
        tr.apply(fill("2", 4), 2.1)
    assert fingerprint(tr) == before


def test_partial_fills_summing_to_quantity_complete_the_order() -> None:
    tr = live_tracker()
    tr.apply(fill("1", 5), 2.0)
    t = tr.apply(fill("2", 5), 2.1)
    assert (t.to_state, t.reason, t.effective_kind) == (S.FILLED, "promoted_to_full", K.FILL_FULL)


def test_close_report_counting_fewer_than_journaled_trades_is_refused() -> None:
    tr = live_tracker()
    tr.apply(fill("1", 4), 2.0)
    tr.apply(ev(K.CANCEL_REQUEST), 3.0)
    with pytest.raises(FillError):
        tr.apply(ev(K.CANCEL_ACK, cum=3), 3.1)
    assert tr.state is S.CANCEL_PENDING


def test_fill_racing_a_cancel_keeps_the_order_cancel_pending() -> None:
    tr = live_tracker()
    tr.apply(ev(K.CANCEL_REQUEST), 3.0)
    assert tr.apply(fill("1", 4), 3.05).to_state is S.CANCEL_PENDING
    assert tr.apply(fill("2", 6, full=True), 3.06).to_state is S.FILLED
    assert tr.apply(ev(K.CANCEL_NOT_OPEN), 3.1).to_state is S.FILLED


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": K.FILL_PARTIAL, "qty": LOT}, "trade_id"),
        ({"kind": K.FILL_PARTIAL, "trade_id": "1"}, "qty"),
        ({"kind": K.FILL_FULL, "trade_id": "1", "qty": Decimal(0)}, "qty"),
        ({"kind": K.FILL_FULL, "trade_id": "1", "qty": Decimal("NaN")}, "qty"),
        ({"kind": K.ACK, "trade_id": "1"}, "trade_id"),
        ({"kind": K.SNAPSHOT_MISSING}, "observed_at"),
        ({"kind": K.SNAPSHOT_MISSING, "observed_at": float("nan")}, "observed_at"),
        ({"kind": K.ACK, "observed_at": 1.0}, "observed_at"),
        ({"kind": K.QUERY_FOUND_OPEN, "observed_at": 1.0, "cum_qty": LOT}, "cum_qty"),
        ({"kind": K.SNAPSHOT_PARTIAL, "observed_at": 1.0}, "cum_qty"),
        ({"kind": K.SNAPSHOT_PARTIAL, "observed_at": 1.0, "cum_qty": Decimal(0)}, "cum_qty"),
        ({"kind": K.AMBIGUOUS_ERROR, "cum_qty": LOT}, "cum_qty"),
        ({"kind": K.CANCEL_ACK, "cum_qty": Decimal(-1)}, "cum_qty"),
    ],
)
def test_malformed_events_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(CoreValueError) as info:
        OrderEvent(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize("quantity", [Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity")])
def test_tracker_rejects_bad_quantity(quantity: Decimal) -> None:
    with pytest.raises(CoreValueError) as info:
        OrderTracker(quantity=quantity)
    assert info.value.field == "quantity"


def test_tracker_rejects_bad_time() -> None:
    tr = live_tracker(5.0)
    with pytest.raises(CoreValueError) as info:
        tr.apply(ev(K.AMBIGUOUS_ERROR), 4.0)
    assert info.value.field == "now"
    with pytest.raises(CoreValueError):
        tr.apply(ev(K.AMBIGUOUS_ERROR), float("nan"))
    with pytest.raises(CoreValueError) as info:
        tr.apply(obs(K.SNAPSHOT_OPEN, 100.0), 6.0)
    assert info.value.field == "observed_at"
    assert tr.state is S.LIVE


@pytest.mark.parametrize(
    ("status", "query_kind", "snapshot_kind"),
    [
        (VenueOrderStatus.NEW, K.QUERY_FOUND_OPEN, K.SNAPSHOT_OPEN),
        (VenueOrderStatus.PARTIALLY_FILLED, K.QUERY_FOUND_PARTIAL, K.SNAPSHOT_PARTIAL),
        (VenueOrderStatus.FILLED, K.VENUE_FILLED, K.VENUE_FILLED),
        (VenueOrderStatus.CANCELED, K.VENUE_CANCELED, K.VENUE_CANCELED),
        (VenueOrderStatus.REJECTED, K.REJECT, K.REJECT),
        (VenueOrderStatus.EXPIRED, K.EXPIRE, K.EXPIRE),
        (VenueOrderStatus.EXPIRED_IN_MATCH, K.EXPIRE, K.EXPIRE),
    ],
)
def test_venue_status_maps_to_event_kind(
    status: VenueOrderStatus, query_kind: OrderEventKind, snapshot_kind: OrderEventKind
) -> None:
    assert event_kind_for_status(status) is query_kind
    assert event_kind_for_status(status, from_snapshot=True) is snapshot_kind


def test_every_venue_status_is_mapped() -> None:
    for status in VenueOrderStatus:
        for from_snapshot in (False, True):
            kind = event_kind_for_status(status, from_snapshot=from_snapshot)
            # Open statuses are observations in a state where the order is open.
            assert (kind in ORDER_TRANSITIONS[S.LIVE]) or (kind is K.REJECT)


def _venue_order(status: VenueOrderStatus, filled: Decimal) -> VenueOrder:
    return VenueOrder(
        symbol="BTCUSDT",
        order_id="8886774",
        client_order_id="sc-E-0123456789abcdef-0",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        status=status,
        quantity=QTY,
        filled_qty=filled,
        price=Decimal("60000"),
    )


def test_snapshot_row_drives_the_tracker() -> None:
    tr = OrderTracker(quantity=QTY)
    tr.apply(ev(K.SEND), 1.0)
    tr.apply(ev(K.AMBIGUOUS_ERROR), 2.0)
    row = _venue_order(VenueOrderStatus.PARTIALLY_FILLED, lots(3))
    event = event_from_venue_order(row, observed_at=2.5, from_snapshot=True)
    assert (event.kind, event.cum_qty, event.observed_at) == (K.SNAPSHOT_PARTIAL, lots(3), 2.5)
    tr.apply(event, 3.0)
    assert tr.state is S.PARTIALLY_FILLED
    assert tr.missing_fill_qty == lots(3)
    closed = event_from_venue_order(_venue_order(VenueOrderStatus.CANCELED, lots(3)), observed_at=4)
    assert closed.observed_at is None  # terminal reports are never stale
    tr.apply(ev(K.CANCEL_REQUEST), 3.5)
    assert tr.apply(closed, 4.0).to_state is S.CANCELED


def test_inconsistent_venue_record_is_rejected() -> None:
    with pytest.raises(CoreValueError) as info:
        event_from_venue_order(_venue_order(VenueOrderStatus.NEW, lots(1)), observed_at=1.0)
    assert info.value.field == "cum_qty"


def test_event_from_fill_record() -> None:
    f = Fill(
        symbol="BTCUSDT",
        trade_id="5",
        order_id="1",
        client_order_id="x",
        side=Side.SELL,
        quantity=lots(2),
        price=Decimal("60000"),
    )
    e = OrderEvent.from_fill(f, full=False, cum_qty=lots(2))
    assert (e.kind, e.trade_id, e.qty, e.cum_qty) == (K.FILL_PARTIAL, "5", lots(2), lots(2))
    assert OrderEvent.from_fill(f, full=True).kind is K.FILL_FULL


def test_rows_export_is_the_table() -> None:
    rows = transitions_as_rows()
    assert len(rows) == sum(len(r) for r in ORDER_TRANSITIONS.values())
    assert len(set(rows)) == len(rows)
    for state, kind, target in rows:
        assert ORDER_TRANSITIONS[S(state)][K(kind)] is S(target)
    assert ("PENDING", "SEND", "SENT") in rows
    prows = position_transitions_as_rows()
    assert len(prows) == sum(len(r) for r in POSITION_TRANSITIONS.values())
    for state, pkind, target in prows:
        assert POSITION_TRANSITIONS[PS(state)][PK(pkind)] is PS(target)


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        ORDER_TRANSITIONS[S.LIVE][K.SEND] = S.SENT  # type: ignore[index]
    with pytest.raises(TypeError):
        POSITION_TRANSITIONS[PS.FLAT][PK.EXIT_FILL] = PS.FLAT  # type: ignore[index]


# --------------------------------------------------------------------------------------------
# Table properties (exhaustive: the tables are small)
# --------------------------------------------------------------------------------------------


T = TypeVar("T")


def _bfs(table: Mapping[T, Mapping[Any, T]], start: T) -> set[T]:
    seen = {start}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        for target in table[state].values():
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def test_every_state_has_a_row() -> None:
    assert set(ORDER_TRANSITIONS) == set(OrderState)
    assert set(POSITION_TRANSITIONS) == set(PositionState)


def test_nothing_leaves_a_terminal_state_in_the_table() -> None:
    # For every terminal state t and every event kind k: either there is no row (apply raises
    # a TransitionError subclass) or the row is a self-loop t -> t.
    for t in TERMINAL_STATES:
        for k in OrderEventKind:
            assert ORDER_TRANSITIONS[t].get(k, t) is t, (t, k)
    assert {s for s in OrderState if s.is_terminal} == TERMINAL_STATES


def test_every_state_is_reachable_from_pending() -> None:
    assert _bfs(ORDER_TRANSITIONS, S.PENDING) == set(OrderState)


def test_every_open_state_can_still_end() -> None:
    for s in OrderState:
        assert _bfs(ORDER_TRANSITIONS, s) & TERMINAL_STATES, s


def test_absence_is_unreachable_once_existence_is_proven() -> None:
    # I7: an order that provably existed never yields an absence proof (a new generation).
    for s in (S.LIVE, S.PARTIALLY_FILLED, S.CANCEL_PENDING, S.STATUS_UNKNOWN):
        assert S.ABSENT not in _bfs(ORDER_TRANSITIONS, s), s


def test_a_forgotten_order_is_proven_closed_with_the_count_it_had() -> None:
    # Resting, partly filled, then gone from the book; the venue has since forgotten it.
    tr = live_tracker()
    tr.apply(fill("201", 3), 2.0)
    tr.apply(obs(K.QUERY_FOUND_PARTIAL, 2.5, cum=4), 3.0)  # one trade not journaled yet
    assert tr.apply(obs(K.SNAPSHOT_MISSING, 3.5), 4.0).to_state is S.STATUS_UNKNOWN
    t = tr.apply(ev(K.PROVEN_CLOSED), 5.0)
    assert (t.from_state, t.to_state, t.reason) == (S.STATUS_UNKNOWN, S.CANCELED, "applied")
    assert (tr.filled_qty, tr.reported_filled_qty) == (lots(3), lots(4))
    assert tr.open_qty_worst_case == 0
    # The trade the venue had counted arrives: covered by the count, not a contradiction.
    assert tr.apply(fill("202", 1), 6.0).reason == "backfill"
    # One beyond it is a late fill: the closing proof was wrong, and that must show.
    with pytest.raises(LateFillError):
        tr.apply(fill("203", 1), 7.0)
    assert tr.state is S.CANCELED
    # A repeated proof is consistent with the verdict.
    assert tr.apply(ev(K.PROVEN_CLOSED), 8.0).to_state is S.CANCELED


def test_proven_closed_needs_proven_existence_and_unknown_openness() -> None:
    allowed = {S.STATUS_UNKNOWN, S.FILLED, S.CANCELED, S.EXPIRED}
    assert {s for s in OrderState if K.PROVEN_CLOSED in ORDER_TRANSITIONS[s]} == allowed
    for state in OrderState:
        tr = OrderTracker(quantity=QTY)
        now = 0.0
        for kind in _shortest_path(S.PENDING, state):
            now += 1.0
            tr.apply(fill("p", 10, full=True) if kind is K.FILL_FULL else ev_for(kind, now), now)
        assert tr.state is state
        before = fingerprint(tr)
        if state in allowed:
            target = S.CANCELED if state is S.STATUS_UNKNOWN else state
            assert tr.apply(ev(K.PROVEN_CLOSED), 100.0).to_state is target
            continue
        # Never shown to exist (PENDING, SENT, UNKNOWN: that is PROVEN_ABSENT's case) or
        # last seen working: refused. On ABSENT and REJECTED it contradicts the verdict.
        expected = ContradictionError if state.is_terminal else TransitionError
        with pytest.raises(expected) as info:
            tr.apply(ev(K.PROVEN_CLOSED), 100.0)
        assert type(info.value) is expected
        assert fingerprint(tr) == before


def ev_for(kind: OrderEventKind, now: float) -> OrderEvent:
    """A payload-free event of ``kind`` (observations taken at ``now``)."""
    observed = now if kind.name.startswith(("QUERY", "SNAP")) else None
    cum = lots(3) if kind in (K.QUERY_FOUND_PARTIAL, K.SNAPSHOT_PARTIAL) else None
    return OrderEvent(kind, cum_qty=cum, observed_at=observed)


def test_position_states_reachable_and_flat_always_reachable() -> None:
    assert _bfs(POSITION_TRANSITIONS, PS.FLAT) == set(PositionState)
    for s in PositionState:
        assert PS.FLAT in _bfs(POSITION_TRANSITIONS, s)


def test_exit_sent_is_legal_in_every_position_state() -> None:
    # I1: tracking belief never stands in the way of an exit.
    for s in PositionState:
        assert PK.EXIT_SENT in POSITION_TRANSITIONS[s]


def test_surprises_are_table_edges() -> None:
    for (s, k), tag in POSITION_SURPRISES.items():
        assert k in POSITION_TRANSITIONS[s]
        assert tag in {"unexpected_position", "unexpected_flat"}


# --------------------------------------------------------------------------------------------
# Random walks and random event sequences
# --------------------------------------------------------------------------------------------


def make_event(kind: OrderEventKind, rng: random.Random, now: float) -> OrderEvent:
    """A well-formed event of ``kind`` with a random (sometimes implausible) payload."""
    if kind in (K.FILL_PARTIAL, K.FILL_FULL):
        return OrderEvent(
            kind,
            trade_id=f"t{rng.randrange(8)}",
            qty=lots(rng.randint(1, 5)),
            cum_qty=rng.choice([None, lots(rng.randint(0, 10))]),
        )
    observed = (
        now - rng.choice([0.0, 0.5, 3.0]) if kind.name.startswith(("QUERY", "SNAP")) else None
    )
    cum: Decimal | None = None
    if kind in (K.QUERY_FOUND_PARTIAL, K.SNAPSHOT_PARTIAL):
        cum = lots(rng.randint(1, 9))
    elif kind in (K.ACK, K.QUERY_FOUND_OPEN, K.SNAPSHOT_OPEN):
        cum = rng.choice([None, Decimal(0)])
    elif kind in (K.CANCEL_ACK, K.VENUE_CANCELED, K.EXPIRE):
        cum = rng.choice([None, lots(rng.randint(0, 9))])
    elif kind is K.VENUE_FILLED:
        cum = rng.choice([None, QTY])
    return OrderEvent(kind, cum_qty=cum, observed_at=observed)


GUARD_ERRORS = (FillError, ContradictionError)


def check_invariants(tr: OrderTracker) -> None:
    assert 0 <= tr.filled_qty <= tr.quantity
    assert 0 <= tr.reported_filled_qty <= tr.quantity
    if tr.state is S.LIVE:
        assert tr.known_filled_qty == 0
    if tr.state is S.PARTIALLY_FILLED:
        assert 0 < tr.known_filled_qty < tr.quantity
    if tr.state is S.FILLED:
        assert tr.reported_filled_qty == tr.quantity
    if tr.state is S.PENDING:
        assert all(h.to_state is S.PENDING for h in tr.history)
        assert tr.filled_qty == 0
    for prev, nxt in zip(tr.history, tr.history[1:], strict=False):
        assert prev.to_state is nxt.from_state
    for h in tr.history:
        assert ORDER_TRANSITIONS[h.from_state][h.effective_kind] is h.to_state


def legal_walk(rng: random.Random, steps: int) -> tuple[OrderTracker, set[OrderState]]:
    """Walk from PENDING choosing only kinds the table allows in the current state."""
    tr = OrderTracker(quantity=QTY)
    visited = {tr.state}
    now = 0.0
    for _ in range(steps):
        now += rng.choice([0.1, 1.0, 5.0])
        kinds = sorted(ORDER_TRANSITIONS[tr.state])
        kind = rng.choice(kinds)
        event = make_event(kind, rng, now)
        before = fingerprint(tr)
        refused: TransitionError | None = None
        try:
            t = tr.apply(event, now)
        except GUARD_ERRORS as exc:
            refused = exc
        if refused is not None:
            # Only the quantity guards can refuse a kind the table allows: fill arithmetic,
            # fills beyond a closed order's count, and a closed order's count growing.
            if type(refused) is ContradictionError:
                assert "reported at close" in refused.message
            assert fingerprint(tr) == before
            continue
        if t.applied:
            assert t.to_state is ORDER_TRANSITIONS[t.from_state][t.effective_kind]
        else:
            assert fingerprint(tr) == before
        visited.add(tr.state)
        check_invariants(tr)
    return tr, visited


@settings(max_examples=150)
@given(rng=st.randoms(use_true_random=False), steps=st.integers(1, 25))
def test_random_legal_walk_follows_the_table(rng: random.Random, steps: int) -> None:
    legal_walk(rng, steps)


def test_seeded_legal_walks_visit_every_state() -> None:
    visited: set[OrderState] = set()
    for seed in range(300):
        visited |= legal_walk(random.Random(seed), 12)[1]
    assert visited == set(OrderState)


@settings(max_examples=200)
@given(
    rng=st.randoms(use_true_random=False),
    kinds=st.lists(st.sampled_from(list(OrderEventKind)), min_size=1, max_size=30),
)
def test_random_event_sequences_never_corrupt_the_tracker(
    rng: random.Random, kinds: list[OrderEventKind]
) -> None:
    tr = OrderTracker(quantity=QTY)
    now = 0.0
    for kind in kinds:
        now += rng.choice([0.0, 0.2, 2.0])
        event = make_event(kind, rng, now)
        before = fingerprint(tr)
        filled_before = tr.filled_qty
        try:
            t = tr.apply(event, now)
        except TransitionError:
            assert fingerprint(tr) == before
            continue
        assert tr.filled_qty >= filled_before
        if t.applied:
            assert t.to_state is ORDER_TRANSITIONS[t.from_state][t.effective_kind]
            assert tr.history[-1] is t
        else:
            assert fingerprint(tr) == before
        if t.from_state.is_terminal:
            assert tr.state is t.from_state
        check_invariants(tr)


@settings(max_examples=100)
@given(
    rng=st.randoms(use_true_random=False),
    terminal=st.sampled_from(sorted(TERMINAL_STATES)),
    kinds=st.lists(st.sampled_from(list(OrderEventKind)), min_size=1, max_size=20),
)
def test_nothing_leaves_a_terminal_state_in_the_tracker(
    rng: random.Random, terminal: OrderState, kinds: list[OrderEventKind]
) -> None:
    # Drive a tracker into ``terminal`` along a shortest path, then throw anything at it.
    path = _shortest_path(S.PENDING, terminal)
    tr = OrderTracker(quantity=QTY)
    now = 0.0
    for kind in path:
        now += 1.0
        payload = fill("path", 10, full=True) if kind is K.FILL_FULL else make_event(kind, rng, now)
        tr.apply(payload, now)
    assert tr.state is terminal
    for kind in kinds:
        now += rng.choice([0.0, 1.0])
        before = fingerprint(tr)
        try:
            tr.apply(make_event(kind, rng, now), now)
        except TransitionError:
            assert fingerprint(tr) == before
        assert tr.state is terminal


def _shortest_path(start: OrderState, goal: OrderState) -> list[OrderEventKind]:
    parents: dict[OrderState, tuple[OrderState, OrderEventKind] | None] = {start: None}
    queue = deque([start])
    while queue:
        s = queue.popleft()
        # Prefer kinds without payload subtleties, so the path applies deterministically.
        for k in sorted(ORDER_TRANSITIONS[s], key=lambda k: k in (K.FILL_PARTIAL,)):
            nxt = ORDER_TRANSITIONS[s][k]
            if nxt not in parents:
                parents[nxt] = (s, k)
                queue.append(nxt)
    path: list[OrderEventKind] = []
    node = goal
    while (link := parents[node]) is not None:
        node, kind = link
        path.append(kind)
    return path[::-1]


@settings(max_examples=100)
@given(
    rng=st.randoms(use_true_random=False),
    kinds=st.lists(st.sampled_from(list(OrderEventKind)), min_size=1, max_size=25),
)
def test_redelivered_fills_change_nothing(rng: random.Random, kinds: list[OrderEventKind]) -> None:
    # The stream and REST backfill deliver the same trade twice: exactly-once (I10).
    once = OrderTracker(quantity=QTY)
    twice = OrderTracker(quantity=QTY)
    now = 0.0
    for kind in kinds:
        now += 1.0
        event = make_event(kind, rng, now)
        deliveries = 2 if kind in (K.FILL_PARTIAL, K.FILL_FULL) else 1
        for tracker, n in ((once, 1), (twice, deliveries)):
            for _ in range(n):
                with contextlib.suppress(TransitionError):
                    tracker.apply(event, now)
    assert (once.state, once.filled_qty, once.trade_ids) == (
        twice.state,
        twice.filled_qty,
        twice.trade_ids,
    )
    assert once.history == twice.history


# --------------------------------------------------------------------------------------------
# Position belief
# --------------------------------------------------------------------------------------------


def venue(kind: PositionEventKind, at: float) -> PositionEvent:
    return PositionEvent(kind, observed_at=at)


def test_position_round_trip() -> None:
    pb = PositionBelief(symbol="BTCUSDT")
    assert pb.apply(PositionEvent(PK.ENTRY_FILL), 1.0).to_state is PS.OPEN_UNCONFIRMED
    t = pb.apply(venue(PK.VENUE_SHOWS_POSITION, 1.5), 2.0)
    assert (t.to_state, t.reason) == (PS.OPEN_CONFIRMED, "confirmed")
    assert pb.apply(PositionEvent(PK.EXIT_SENT), 3.0).to_state is PS.CLOSING
    assert pb.apply(PositionEvent(PK.EXIT_FILL), 3.1).to_state is PS.CLOSING
    assert pb.apply(PositionEvent(PK.EXIT_FILL_FLAT), 3.2).to_state is PS.CLOSED_UNCONFIRMED
    assert pb.apply(PositionEvent(PK.EXIT_ENDED), 3.3).to_state is PS.CLOSED_UNCONFIRMED
    t = pb.apply(venue(PK.VENUE_SHOWS_FLAT, 3.5), 4.0)
    assert (t.to_state, t.reason) == (PS.FLAT, "confirmed")
    assert len(pb.history) == 7


def test_snapshot_taken_before_the_entry_fill_cannot_say_flat() -> None:
    pb = PositionBelief(symbol="ETHUSDT")
    pb.apply(PositionEvent(PK.ENTRY_FILL), 10.0)
    t = pb.apply(venue(PK.VENUE_SHOWS_FLAT, 9.8), 10.5)
    assert (t.applied, t.reason, pb.state) == (False, "stale_observation", PS.OPEN_UNCONFIRMED)
    t = pb.apply(venue(PK.VENUE_SHOWS_FLAT, 10.2), 11.0)
    assert (t.to_state, t.reason) == (PS.FLAT, "unexpected_flat")


def test_position_appearing_while_flat_is_flagged_for_adoption() -> None:
    pb = PositionBelief(symbol="BTCUSDT")
    t = pb.apply(venue(PK.VENUE_SHOWS_POSITION, 1.0), 1.0)
    assert (t.to_state, t.reason) == (PS.OPEN_CONFIRMED, "unexpected_position")


def test_exit_fill_while_flat_is_illegal_and_changes_nothing() -> None:
    pb = PositionBelief(symbol="BTCUSDT")
    with pytest.raises(TransitionError) as info:
        pb.apply(PositionEvent(PK.EXIT_FILL), 1.0)
    assert info.value.state is PS.FLAT
    assert pb.state is PS.FLAT
    assert pb.history == []


def test_position_event_validation() -> None:
    with pytest.raises(CoreValueError) as info:
        PositionEvent(PK.VENUE_SHOWS_FLAT)
    assert info.value.field == "observed_at"
    with pytest.raises(CoreValueError):
        PositionEvent(PK.ENTRY_FILL, observed_at=1.0)
    pb = PositionBelief(symbol="BTCUSDT")
    with pytest.raises(CoreValueError):
        pb.apply(venue(PK.VENUE_SHOWS_FLAT, 5.0), 4.0)


def make_position_event(kind: PositionEventKind, rng: random.Random, now: float) -> PositionEvent:
    if kind in (PK.VENUE_SHOWS_FLAT, PK.VENUE_SHOWS_POSITION):
        return PositionEvent(kind, observed_at=now - rng.choice([0.0, 0.5, 3.0]))
    return PositionEvent(kind)


@settings(max_examples=150)
@given(
    rng=st.randoms(use_true_random=False),
    kinds=st.lists(st.sampled_from(list(PositionEventKind)), min_size=1, max_size=30),
)
def test_random_position_sequences_follow_the_table(
    rng: random.Random, kinds: list[PositionEventKind]
) -> None:
    pb = PositionBelief(symbol="BTCUSDT")
    now = 0.0
    for kind in kinds:
        now += rng.choice([0.0, 1.0])
        event = make_position_event(kind, rng, now)
        before = (pb.state, pb.evidence_at, len(pb.history))
        expected = POSITION_TRANSITIONS[pb.state].get(kind)
        try:
            t = pb.apply(event, now)
        except TransitionError:
            assert expected is None
            assert (pb.state, pb.evidence_at, len(pb.history)) == before
            continue
        if t.applied:
            assert t.to_state is expected
        else:
            assert t.reason == "stale_observation"
            assert (pb.state, pb.evidence_at, len(pb.history)) == before


def test_closed_order_count_is_final() -> None:
    tr = live_tracker()
    tr.apply(ev(K.CANCEL_REQUEST), 2.0)
    tr.apply(ev(K.CANCEL_ACK, cum=2), 2.1)
    assert tr.apply(ev(K.VENUE_CANCELED, cum=2), 2.2).to_state is S.CANCELED
    with pytest.raises(ContradictionError):
        tr.apply(ev(K.VENUE_CANCELED, cum=3), 2.3)
    assert tr.reported_filled_qty == lots(2)
