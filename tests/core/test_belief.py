from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalper.core.belief import (
    ALL_STATES,
    NOT_OPEN_STATES,
    AmbiguousAction,
    AnchorMode,
    BeliefBook,
    BeliefConfig,
    BeliefUpdate,
    Effect,
    EvidenceKind,
    EvidenceStrength,
    LiveState,
    QtyInterval,
)
from scalper.core.errors_base import CoreValueError
from scalper.core.model import (
    AccountSnapshot,
    Fill,
    OrderRequest,
    VenueOrder,
    VenueOrderStatus,
    VenuePosition,
)
from scalper.core.types import ZERO, OrderType, PositionSide, Side, TimeInForce

SYM = "BTCUSDT"
PRICE = Decimal("60000")
D = Decimal


def req(cid, side=Side.BUY, qty="1", *, reduce_only=False, ps=PositionSide.BOTH, symbol=SYM):
    return OrderRequest(
        symbol=symbol,
        side=side,
        order_type=OrderType.LIMIT,
        client_order_id=cid,
        quantity=D(qty),
        price=PRICE,
        time_in_force=TimeInForce.GTC,
        reduce_only=reduce_only,
        position_side=ps,
    )


def vorder(cid, status, qty="1", filled="0", side=Side.BUY, ps=PositionSide.BOTH, symbol=SYM):
    return VenueOrder(
        symbol=symbol,
        order_id=f"o-{cid}",
        client_order_id=cid,
        side=side,
        order_type=OrderType.LIMIT,
        status=status,
        quantity=D(qty),
        filled_qty=D(filled),
        position_side=ps,
    )


def trade(cid, tid, qty, side=Side.BUY, ps=PositionSide.BOTH, symbol=SYM):
    return Fill(
        symbol=symbol,
        trade_id=tid,
        order_id=f"o-{cid}",
        client_order_id=cid,
        side=side,
        quantity=D(qty),
        price=PRICE,
        position_side=ps,
    )


def snap(taken_at, position="0", orders=(), legs=None):
    positions = legs if legs is not None else (VenuePosition(symbol=SYM, quantity=D(position)),)
    return AccountSnapshot(
        taken_at=taken_at, open_orders=tuple(orders), positions=positions, symbols=frozenset({SYM})
    )


def flat_book(position="0"):
    book = BeliefBook()
    book.on_snapshot(snap(0.0, position), 0.0)
    return book


def get(book, cid):
    o = book.order(cid)
    assert o is not None, cid
    return o


def env(book, ps=PositionSide.BOTH):
    return book.symbol(SYM, ps).interval


# -- rule 1: our own actions widen at once ---------------------------------------------------


@pytest.mark.parametrize(("side", "expected"), [(Side.BUY, ("2", "3")), (Side.SELL, ("1", "2"))])
def test_ambiguous_create_widens_position_by_q_in_the_side_direction(side, expected):
    book = flat_book("2")
    book.on_order_sent(req("e1", side), 1.0)
    u = book.on_ambiguous("e1", 2.0, action=AmbiguousAction.CREATE, reason="timeout")
    o = get(book, "e1")
    assert o.states >= {
        LiveState.ABSENT,
        LiveState.OPEN,
        LiveState.PARTIALLY_FILLED,
        LiveState.FILLED,
    }
    assert o.filled == QtyInterval(ZERO, D(1))
    assert o.ambiguous
    assert env(book) == QtyInterval(D(expected[0]), D(expected[1]))
    assert u.strength is EvidenceStrength.ACTION
    assert "ambiguous_create" in u.reasons


def test_sending_already_widens_before_any_response():
    book = flat_book()
    u = book.on_order_sent(req("e1", qty="0.5"), 1.0)
    assert u.effect is Effect.WIDENED
    assert env(book) == QtyInterval(ZERO, D("0.5"))
    assert book.symbol(SYM).point == ZERO
    [unc] = book.uncertain_orders(4.0)
    assert (unc.client_order_id, unc.cause, unc.age_s) == ("e1", "in_flight", 3.0)


def test_cancel_sent_makes_canceled_possible_and_live_quantity_uncertain():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_query_result("e1", vorder("e1", VenueOrderStatus.NEW), queried_at=2.0, now=2.1)
    assert get(book, "e1").states == {LiveState.OPEN}
    assert get(book, "e1").live == QtyInterval(D(1), D(1))
    u = book.on_cancel_sent("e1", 3.0)
    assert u.effect is Effect.WIDENED
    assert get(book, "e1").states == {LiveState.OPEN, LiveState.CANCELED}
    assert get(book, "e1").live == QtyInterval(ZERO, D(1))


# -- rule 2: weak evidence never narrows -----------------------------------------------------


def test_ack_alone_cannot_narrow_an_ambiguous_create():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_ambiguous("e1", 2.0, action=AmbiguousAction.CREATE, reason="http_503")
    before = get(book, "e1")
    u = book.on_ack("e1", 2.5, status=VenueOrderStatus.NEW, order_id="777")
    after = get(book, "e1")
    assert u.strength is EvidenceStrength.WEAK
    assert u.effect is Effect.UNCHANGED
    assert after.states == before.states == ALL_STATES
    assert after.filled == before.filled
    assert after.point_state is LiveState.OPEN
    assert after.order_id == "777"
    assert env(book) == QtyInterval(ZERO, D(1))


def test_stream_event_alone_cannot_narrow_but_can_widen():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_query_result("e1", vorder("e1", VenueOrderStatus.NEW), queried_at=2.0, now=2.0)
    assert get(book, "e1").states == {LiveState.OPEN}
    # The stream claims the order was canceled: possible, not proven.
    u = book.on_stream_order(vorder("e1", VenueOrderStatus.CANCELED), 3.0)
    assert u.effect is Effect.WIDENED
    assert get(book, "e1").states == {LiveState.OPEN, LiveState.CANCELED}
    assert get(book, "e1").point_state is LiveState.CANCELED
    assert get(book, "e1").live.hi == D(1)  # still counts as possibly live for risk


def test_reject_response_is_weak_and_only_a_later_snapshot_settles_it():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_ack("e1", 1.2, status=VenueOrderStatus.REJECTED)
    assert get(book, "e1").states == ALL_STATES
    assert get(book, "e1").point_state is LiveState.ABSENT
    # Inside the absence window a snapshot without the order proves nothing ...
    book.on_snapshot(snap(5.0), 5.1)
    assert get(book, "e1").states == ALL_STATES
    assert env(book) == QtyInterval(ZERO, D(1))
    # ... after it, the order is not open and the anchored position is exact.
    book.on_snapshot(snap(12.0), 12.1)
    assert get(book, "e1").states == NOT_OPEN_STATES
    assert get(book, "e1").anchor_mode is AnchorMode.SETTLED
    assert env(book) == QtyInterval(ZERO, ZERO)
    assert book.uncertain_orders(13.0) == ()


def test_cancel_ack_is_weak_and_exposure_stays_until_authority_confirms():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_snapshot(snap(12.0, orders=[vorder("e1", VenueOrderStatus.NEW)]), 12.0)
    book.on_cancel_sent("e1", 20.0)
    book.on_ack("e1", 20.1, status=VenueOrderStatus.CANCELED)
    assert book.worst_case_exposure(SYM, PRICE).worst_qty == D(1)
    book.on_query_result("e1", vorder("e1", VenueOrderStatus.CANCELED), queried_at=21.0, now=21.1)
    assert get(book, "e1").states == {LiveState.CANCELED}
    assert book.worst_case_exposure(SYM, PRICE).worst_qty == ZERO


def test_cancel_rejected_as_unknown_order_widens_to_the_closed_states():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_query_result("e1", vorder("e1", VenueOrderStatus.NEW), queried_at=2.0, now=2.0)
    book.on_cancel_sent("e1", 3.0)
    u = book.on_ack("e1", 3.1, status=None)  # -2011: not open now, which may mean filled
    assert u.effect is Effect.WIDENED
    assert get(book, "e1").states >= {LiveState.OPEN, LiveState.FILLED, LiveState.CANCELED}


# -- rule 3: authoritative evidence narrows --------------------------------------------------


def test_query_result_resolves_an_ambiguous_create():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_ambiguous("e1", 2.0, action=AmbiguousAction.CREATE, reason="timeout")
    u = book.on_query_result(
        "e1", vorder("e1", VenueOrderStatus.PARTIALLY_FILLED, filled="0.3"), queried_at=3.0, now=3.2
    )
    o = get(book, "e1")
    assert u.effect is Effect.NARROWED
    assert o.states == {LiveState.PARTIALLY_FILLED}
    assert o.filled == QtyInterval(D("0.3"), D("0.3"))
    assert not o.ambiguous
    assert env(book) == QtyInterval(D("0.3"), D("0.3"))
    assert book.worst_case_exposure(SYM, PRICE).worst_qty == D(1)  # the rest may still fill


def test_not_found_needs_the_absence_window_and_two_confirmations():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_ambiguous("e1", 1.5, action=AmbiguousAction.CREATE, reason="timeout")
    u = book.on_query_result("e1", None, queried_at=2.0, now=2.1)
    assert "not_found_within_window" in u.reasons
    assert get(book, "e1").states == ALL_STATES
    book.on_query_result("e1", None, queried_at=11.5, now=11.6)
    assert get(book, "e1").states == ALL_STATES
    u = book.on_query_result("e1", None, queried_at=14.0, now=14.1)
    assert u.effect is Effect.NARROWED
    assert get(book, "e1").states == {LiveState.ABSENT}
    assert get(book, "e1").filled == QtyInterval(ZERO, ZERO)
    assert env(book) == QtyInterval(ZERO, ZERO)


def test_trade_narrows_and_is_applied_exactly_once():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    u = book.on_fill(trade("e1", "t1", "0.4"), 1.5)
    assert u.effect is Effect.NARROWED
    o = get(book, "e1")
    assert LiveState.ABSENT not in o.states
    assert LiveState.OPEN not in o.states
    assert o.filled == QtyInterval(D("0.4"), D(1))
    again = book.on_fill(trade("e1", "t1", "0.4"), 2.0)
    assert again.effect is Effect.UNCHANGED
    assert again.reasons == ("duplicate_trade",)
    assert get(book, "e1").fill_lo == D("0.4")
    book.on_fill(trade("e1", "t2", "0.6"), 2.5)
    o = get(book, "e1")
    assert o.states == {LiveState.FILLED}
    assert env(book) == QtyInterval(D(1), D(1))
    assert book.worst_case_exposure(SYM, PRICE).worst_qty == D(1)


def test_snapshot_within_a_pending_cancel_keeps_canceled_possible():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_snapshot(snap(15.0, orders=[vorder("e1", VenueOrderStatus.NEW)]), 15.0)
    book.on_cancel_sent("e1", 20.0)
    book.on_ambiguous("e1", 21.0, action=AmbiguousAction.CANCEL, reason="timeout")
    # Taken 2 s after the cancel: the cancel may still be in the queue.
    book.on_snapshot(snap(22.0, orders=[vorder("e1", VenueOrderStatus.NEW)]), 22.5)
    assert get(book, "e1").states == {LiveState.OPEN, LiveState.CANCELED}
    assert get(book, "e1").ambiguous
    # Past the window the cancel can no longer land: it failed.
    book.on_snapshot(snap(31.0, orders=[vorder("e1", VenueOrderStatus.NEW)]), 31.5)
    assert get(book, "e1").states == {LiveState.OPEN}
    assert not get(book, "e1").ambiguous


def test_stream_gap_widens_open_orders_until_a_snapshot_after_the_gap():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_snapshot(snap(15.0, orders=[vorder("e1", VenueOrderStatus.NEW)]), 15.0)
    assert env(book) == QtyInterval(ZERO, ZERO)
    [u] = book.on_stream_gap(40.0, reason="disconnect")
    assert u.effect is Effect.WIDENED
    assert get(book, "e1").states == {
        LiveState.OPEN,
        LiveState.PARTIALLY_FILLED,
        LiveState.FILLED,
        LiveState.CANCELED,
    }
    assert env(book) == QtyInterval(ZERO, D(1))
    # A snapshot taken before the gap was declared cannot undo it.
    book.on_snapshot(snap(39.0, orders=[vorder("e1", VenueOrderStatus.NEW)]), 41.0)
    assert env(book) == QtyInterval(ZERO, D(1))
    assert LiveState.FILLED in get(book, "e1").states
    # One taken after it can: the order partially filled while we were deaf.
    book.on_snapshot(
        snap(45.0, "0.2", orders=[vorder("e1", VenueOrderStatus.PARTIALLY_FILLED, filled="0.2")]),
        45.5,
    )
    assert get(book, "e1").states == {LiveState.PARTIALLY_FILLED}
    assert env(book) == QtyInterval(D("0.2"), D("0.2"))


def test_trade_received_after_the_snapshot_started_may_or_may_not_be_in_it():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_fill(trade("e1", "t1", "0.5"), 16.0)
    # The snapshot started at 15.0, before the trade reached us: is it in the position?
    book.on_snapshot(snap(15.0, "0", orders=[vorder("e1", VenueOrderStatus.NEW)]), 16.5)
    assert env(book) == QtyInterval(ZERO, D("0.5"))
    assert book.symbol(SYM).point == D("0.5")  # the stream usually leads REST
    book.on_snapshot(
        snap(30.0, "0.5", orders=[vorder("e1", VenueOrderStatus.PARTIALLY_FILLED, filled="0.5")]),
        30.5,
    )
    assert env(book) == QtyInterval(D("0.5"), D("0.5"))


def test_older_authority_only_adds_lasting_facts():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_query_result(
        "e1", vorder("e1", VenueOrderStatus.CANCELED, filled="0.2"), queried_at=20.0, now=20.5
    )
    assert get(book, "e1").states == {LiveState.CANCELED}
    u = book.on_query_result("e1", vorder("e1", VenueOrderStatus.NEW), queried_at=5.0, now=21.0)
    assert "older_than_authority" in u.reasons
    assert get(book, "e1").states == {LiveState.CANCELED}
    assert get(book, "e1").filled == QtyInterval(D("0.2"), D("0.2"))


# -- rule 4: contradictions widen, never overwrite ---------------------------------------------


def test_terminal_authority_below_our_trades_is_a_contradiction_that_keeps_the_trades():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_fill(trade("e1", "t1", "0.6"), 2.0)
    u = book.on_query_result(
        "e1", vorder("e1", VenueOrderStatus.CANCELED, filled="0.2"), queried_at=3.0, now=3.1
    )
    assert "authority_below_trades" in u.contradictions
    assert get(book, "e1").fill_lo == D("0.6")
    assert env(book).contains(D("0.6"))


def test_closed_order_seen_open_again_keeps_both_stories():
    book = flat_book()
    book.on_order_sent(req("e1"), 1.0)
    book.on_query_result("e1", vorder("e1", VenueOrderStatus.CANCELED), queried_at=12.0, now=12.0)
    assert book.worst_case_exposure(SYM, PRICE).worst_qty == ZERO
    u = book.on_query_result("e1", vorder("e1", VenueOrderStatus.NEW), queried_at=13.0, now=13.0)
    assert "authority_contradicts_belief" in u.contradictions
    assert get(book, "e1").states == {LiveState.OPEN, LiveState.CANCELED}
    assert book.worst_case_exposure(SYM, PRICE).worst_qty == D(1)


def test_trade_that_cannot_belong_to_its_order_widens_the_position_both_ways():
    book = flat_book()
    book.on_order_sent(req("e1", Side.BUY), 1.0)
    u = book.on_fill(trade("e1", "t1", "0.3", side=Side.SELL), 2.0)
    assert u.contradictions == ("trade_does_not_match_order",)
    assert env(book) == QtyInterval(D("-0.3"), D("1.3"))
    assert get(book, "e1").fills == ()


# -- positions, anchors and worst case -------------------------------------------------------


def test_foreign_trade_widens_until_the_next_snapshot():
    book = flat_book()
    u = book.on_fill(trade("web_123", "t9", "0.2", side=Side.SELL), 5.0)
    assert "foreign_fill" in u.reasons
    assert get(book, "web_123").foreign
    assert env(book) == QtyInterval(D("-0.2"), ZERO)
    book.on_snapshot(snap(15.0, "-0.2"), 15.5)
    assert env(book) == QtyInterval(D("-0.2"), D("-0.2"))
    assert get(book, "web_123").anchor_mode is AnchorMode.SETTLED


def test_foreign_open_order_in_a_snapshot_counts_in_the_worst_case():
    book = flat_book()
    book.on_snapshot(snap(15.0, orders=[vorder("manual1", VenueOrderStatus.NEW, qty="3")]), 15.0)
    o = get(book, "manual1")
    assert o.foreign
    assert o.states == {LiveState.OPEN}
    assert env(book) == QtyInterval(ZERO, ZERO)
    assert book.worst_case_exposure(SYM, PRICE).worst_qty == D(3)


def test_resting_entries_count_in_full_and_exits_only_where_they_could_flip():
    book = flat_book("1")
    book.on_order_sent(req("e2", Side.BUY, "2"), 1.0)
    book.on_order_sent(req("sl", Side.SELL, "1", reduce_only=True), 1.0)
    book.on_order_sent(req("tp", Side.SELL, "1", reduce_only=True), 1.0)
    wc = book.worst_case_exposure(SYM, PRICE)
    # Long 1, an entry of 2 resting, two protective exits of 1: at worst long 3; the exits
    # can at most close what could be long, never open a short.
    assert wc.long_qty == D(3)
    assert wc.short_qty == ZERO
    assert wc.worst_qty == D(3)
    assert wc.notional == D(3) * PRICE
    assert "live_orders:BOTH" in wc.reasons


def test_reduce_only_exits_do_not_double_count_on_a_long():
    book = flat_book("1")
    book.on_order_sent(req("sl", Side.SELL, "1", reduce_only=True), 1.0)
    book.on_order_sent(req("tp", Side.SELL, "1", reduce_only=True), 1.0)
    assert env(book) == QtyInterval(ZERO, D(1))
    assert book.worst_case_exposure(SYM, PRICE).worst_qty == D(1)


def test_hedge_mode_legs_are_separate_clamped_and_summed():
    legs = (
        VenuePosition(symbol=SYM, quantity=D("0.5"), position_side=PositionSide.LONG),
        VenuePosition(symbol=SYM, quantity=D("-0.2"), position_side=PositionSide.SHORT),
    )
    book = BeliefBook()
    book.on_snapshot(snap(0.0, legs=legs), 0.0)
    # Closing the long leg with a sell of 2 cannot take the LONG leg below zero.
    book.on_order_sent(req("x1", Side.SELL, "2", ps=PositionSide.LONG), 1.0)
    book.on_order_sent(req("e1", Side.SELL, "1", ps=PositionSide.SHORT), 1.0)
    assert env(book, PositionSide.LONG) == QtyInterval(ZERO, D("0.5"))
    assert env(book, PositionSide.SHORT) == QtyInterval(D("-1.2"), D("-0.2"))
    assert book.width(SYM) == D("0.5") + D(1)
    assert book.worst_case_exposure(SYM, PRICE).worst_qty == D("0.5") + D("1.2")


def test_a_stop_that_fills_before_a_reversal_lets_the_reversal_go_fully_short():
    # Long 1 with a reduce-only stop of 1 and a sell entry of 2 resting. If the stop fills
    # first (to flat) and the entry after, the account ends short 2, not short 1.
    book = flat_book("1")
    book.on_order_sent(req("sl", Side.SELL, "1", reduce_only=True), 1.0)
    book.on_order_sent(req("rev", Side.SELL, "2"), 1.0)
    assert book.worst_case_exposure(SYM, PRICE).short_qty == D(2)
    book.on_fill(trade("sl", "t1", "1", side=Side.SELL), 2.0)
    book.on_fill(trade("rev", "t2", "2", side=Side.SELL), 3.0)
    assert env(book) == QtyInterval(D(-2), D(-2))


def test_late_trade_of_a_recent_order_may_already_be_in_the_snapshot():
    book = flat_book()
    book.on_order_sent(req("m1"), 1.0)
    # The order filled at the venue; the snapshot at 3.0 already shows the position, but the
    # stream delivers the trade only at 4.0 and the order is too recent to be proven closed.
    book.on_snapshot(snap(3.0, "1"), 3.0)
    book.on_fill(trade("m1", "t1", "1"), 4.0)
    assert env(book) == QtyInterval(D(1), D(2))
    assert book.symbol(SYM).point == D(2)  # the point assumes REST lagged; the truth is 1
    book.on_snapshot(snap(15.0, "1"), 15.0)
    assert env(book) == QtyInterval(D(1), D(1))
    assert get(book, "m1").anchor_mode is AnchorMode.SETTLED


def test_widen_lasts_until_the_next_anchor():
    book = flat_book("1")
    u = book.widen(SYM, down=D("0.1"), up=D("0.3"), reason="suspected_manual_trade", now=3.0)
    assert u.effect is Effect.WIDENED
    assert env(book) == QtyInterval(D("0.9"), D("1.3"))
    assert book.worst_case_exposure(SYM, PRICE).reasons == ("widened:BOTH",)
    book.on_snapshot(snap(15.0, "1"), 15.0)
    assert env(book) == QtyInterval(D(1), D(1))


def test_stale_snapshot_does_not_reanchor():
    book = flat_book()
    book.on_snapshot(snap(30.0, "2"), 30.0)
    [u] = book.on_snapshot(snap(15.0, "1"), 31.0)
    assert u.reasons == ("stale_snapshot",)
    assert book.symbol(SYM).anchor_qty == D(2)


def test_unanchored_symbol_says_so():
    book = BeliefBook()
    book.on_order_sent(req("e1", symbol="ETHUSDT"), 1.0)
    wc = book.worst_case_exposure("ETHUSDT", D(3000))
    assert "unanchored:BOTH" in wc.reasons
    assert not book.symbol("ETHUSDT").anchored


def test_resend_after_a_possible_close_may_create_a_second_order():
    book = flat_book()
    book.on_order_sent(req("e1", qty="1"), 1.0)
    book.on_ambiguous("e1", 2.0, action=AmbiguousAction.CREATE, reason="timeout")
    u = book.on_order_sent(req("e1", qty="1"), 3.0)
    assert "resend_may_duplicate" in u.reasons
    assert get(book, "e1").copies == 2
    assert book.worst_case_exposure(SYM, PRICE).worst_qty == D(2)


def test_uncertain_orders_are_reported_oldest_first_with_causes():
    book = flat_book()
    book.on_order_sent(req("a"), 1.0)
    book.on_order_sent(req("b"), 2.0)
    book.on_ambiguous("b", 2.5, action=AmbiguousAction.CREATE, reason="timeout")
    book.on_order_sent(req("c"), 3.0)
    book.on_query_result("c", vorder("c", VenueOrderStatus.NEW), queried_at=3.5, now=3.5)
    out = book.uncertain_orders(10.0)
    assert [u.client_order_id for u in out] == ["a", "b"]
    assert [u.age_s for u in out] == [9.0, 8.0]
    assert [u.cause for u in out] == ["in_flight", "ambiguous_create"]
    assert out[1].ambiguous


def test_prune_forgets_only_settled_closed_orders_after_retention():
    book = BeliefBook(BeliefConfig(retain_settled_s=60.0))
    book.on_snapshot(snap(0.0), 0.0)
    book.on_order_sent(req("done"), 1.0)
    book.on_order_sent(req("live"), 1.0)
    book.on_fill(trade("done", "t1", "1"), 2.0)
    book.on_snapshot(snap(15.0, "1", orders=[vorder("live", VenueOrderStatus.NEW)]), 15.0)
    assert get(book, "done").anchor_mode is AnchorMode.SETTLED
    assert book.prune(30.0) == ()
    before = env(book)
    assert book.prune(80.0) == ("done",)
    assert book.order("done") is None
    assert get(book, "live") is not None
    assert env(book) == before


# -- input validation ------------------------------------------------------------------------


def test_bad_input_is_rejected_naming_the_field():
    book = flat_book()
    book.on_order_sent(req("e1"), 5.0)
    cases = [
        (lambda: book.on_ack("nope", 6.0, status=VenueOrderStatus.NEW), "client_order_id"),
        (lambda: book.on_order_sent(req("e1", qty="2"), 6.0), "client_order_id"),
        (lambda: book.worst_case_exposure(SYM, D(0)), "mark_price"),
        (lambda: book.on_query_result("e1", None, queried_at=9.0, now=8.0), "queried_at"),
        (lambda: book.on_snapshot(snap(99.0), 8.0), "taken_at"),
        (lambda: book.widen(SYM, down=D(-1), up=D(0), reason="x", now=8.0), "down"),
        (lambda: book.on_ack("e1", 4.0, status=VenueOrderStatus.NEW), "now"),
        (
            lambda: book.on_query_result(
                "e1", vorder("e2", VenueOrderStatus.NEW), queried_at=8.0, now=8.0
            ),
            "order",
        ),
    ]
    for call, field in cases:
        with pytest.raises(CoreValueError) as e:
            call()
        assert e.value.field == field


def test_close_position_order_needs_an_explicit_bound():
    book = flat_book("0.7")
    stop = OrderRequest(
        symbol=SYM,
        side=Side.SELL,
        order_type=OrderType.STOP_MARKET,
        client_order_id="sl1",
        quantity=None,
        stop_price=D("59000"),
        close_position=True,
    )
    with pytest.raises(CoreValueError) as e:
        book.on_order_sent(stop, 1.0)
    assert e.value.field == "quantity"
    book.on_order_sent(stop, 1.0, quantity=D("0.7"))
    assert get(book, "sl1").reduce_only
    assert env(book) == QtyInterval(ZERO, D("0.7"))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"recv_window_s": -1.0}, "recv_window_s"),
        ({"settle_margin_s": float("nan")}, "settle_margin_s"),
        ({"absent_confirmations": 0}, "absent_confirmations"),
        ({"retain_settled_s": "x"}, "retain_settled_s"),
    ],
)
def test_config_validation(kwargs, field):
    with pytest.raises(CoreValueError) as e:
        BeliefConfig(**kwargs)
    assert e.value.field == field


def test_live_state_covers_every_venue_status():
    assert {LiveState.from_status(s) for s in VenueOrderStatus} == ALL_STATES - {LiveState.OPEN} | {
        LiveState.OPEN
    }
    assert LiveState.from_status(VenueOrderStatus.REJECTED) is LiveState.ABSENT
    assert LiveState.from_status(VenueOrderStatus.EXPIRED_IN_MATCH) is LiveState.CANCELED
    assert all(LiveState.from_status(s).is_open == s.is_open for s in VenueOrderStatus)


# -- the simulated venue: honest evidence, known truth ----------------------------------------
#
# The venue is the ground truth. It is honest (snapshots and query answers describe it as it
# is when they are taken) but has latency: a request may reach the book seconds after it was
# sent (inside recvWindow), a cancel may land late, and the stream may deliver a trade late
# or drop it (the evidence actor then declares a stream gap). The envelope must contain the
# truth whenever the stream has delivered everything it owes; while a late trade is still in
# flight the book cannot know about it, which is what evidence health is for.


@attrs.define
class SimOrder:
    cid: str
    side: Side
    qty: Decimal
    reduce_only: bool
    placed: bool
    status: VenueOrderStatus = VenueOrderStatus.NEW
    filled: Decimal = ZERO

    @property
    def truth(self):
        return LiveState.from_status(self.status) if self.placed else LiveState.ABSENT

    @property
    def is_open(self):
        return self.placed and self.status.is_open


@attrs.define
class Sim:
    book: BeliefBook = attrs.field(factory=BeliefBook)
    now: float = 0.0
    position: Decimal = ZERO
    orders: dict[str, SimOrder] = attrs.field(factory=dict)
    foreign: dict[str, Decimal] = attrs.field(factory=dict)
    dropped: list[Fill] = attrs.field(factory=list)
    # (due time, kind, payload): late arrivals, late cancels, late stream deliveries
    due: list[tuple[float, str, Any]] = attrs.field(factory=list)
    seq: int = 0
    updates: list[BeliefUpdate] = attrs.field(factory=list)

    @property
    def settled(self):
        """True when the stream owes the book nothing (no trade delivery in flight)."""
        return not any(kind == "deliver" for _, kind, _ in self.due)

    def venue_order(self, o):
        return VenueOrder(
            symbol=SYM,
            order_id=f"o-{o.cid}",
            client_order_id=o.cid,
            side=o.side,
            order_type=OrderType.LIMIT,
            status=o.status,
            quantity=o.qty,
            filled_qty=o.filled,
            reduce_only=o.reduce_only,
        )

    def snapshot(self):
        return AccountSnapshot(
            taken_at=self.now,
            open_orders=tuple(self.venue_order(o) for o in self.orders.values() if o.is_open),
            positions=(VenuePosition(symbol=SYM, quantity=self.position),),
            symbols=frozenset({SYM}),
        )

    def pick(self, i):
        if not self.orders:
            return None
        return list(self.orders.values())[i % len(self.orders)]

    def execute(self, o, amount):
        if o.reduce_only:  # the venue never lets a reduce-only order flip the position
            room = max(self.position, ZERO) if o.side is Side.SELL else max(-self.position, ZERO)
            amount = min(amount, room)
        amount = min(amount, o.qty - o.filled)
        if amount <= 0:
            return None
        o.filled += amount
        o.status = (
            VenueOrderStatus.FILLED if o.filled == o.qty else VenueOrderStatus.PARTIALLY_FILLED
        )
        self.position += o.side.sign * amount
        self.seq += 1
        return Fill(SYM, f"t{self.seq}", f"o-{o.cid}", o.cid, o.side, amount, PRICE)

    def run_due(self):
        ready = sorted((d for d in self.due if d[0] <= self.now), key=lambda d: (d[0], d[1]))
        self.due = [d for d in self.due if d[0] > self.now]
        for _, kind, payload in ready:
            if kind == "arrive":
                payload.placed = True
            elif kind == "cancel" and payload.is_open:
                payload.status = VenueOrderStatus.CANCELED
            elif kind == "deliver":
                self.updates.append(self.book.on_fill(payload, self.now))

    def step(self, action):
        self.now += 1.0
        self.run_due()
        kind, *args = action
        book = self.book
        if kind == "send":
            side, units, ro, outcome = args
            cid = f"c{len(self.orders)}"
            o = SimOrder(cid, side, D(units) / 10, ro, placed=outcome in ("ack", "lost_placed"))
            self.orders[cid] = o
            self.updates.append(
                book.on_order_sent(req(cid, side, str(o.qty), reduce_only=ro), self.now)
            )
            if outcome == "ack":
                self.updates.append(
                    book.on_ack(cid, self.now, status=VenueOrderStatus.NEW, order_id=f"o-{cid}")
                )
            elif outcome == "reject":
                self.updates.append(book.on_ack(cid, self.now, status=VenueOrderStatus.REJECTED))
            else:
                if outcome == "late":  # still in the gateway/matching queue, inside recvWindow
                    self.due.append((self.now + 3.5, "arrive", o))
                self.updates.append(
                    book.on_ambiguous(
                        cid, self.now, action=AmbiguousAction.CREATE, reason="timeout"
                    )
                )
        elif kind == "fill":
            i, units, delivery = args
            o = self.pick(i)
            if o is None or not o.is_open:
                return
            f = self.execute(o, D(units) / 10)
            if f is None:
                return
            if delivery == "now":
                self.updates.append(book.on_fill(f, self.now))
            elif delivery == "late":
                self.due.append((self.now + 2.5, "deliver", f))
            else:
                self.dropped.append(f)
                self.updates.extend(book.on_stream_gap(self.now, reason="dropped"))
        elif kind == "backfill":
            for f in self.dropped:
                self.updates.append(book.on_fill(f, self.now))
            self.dropped.clear()
        elif kind == "cancel":
            i, outcome = args
            o = self.pick(i)
            if o is None:
                return
            was_open = o.is_open
            self.updates.append(book.on_cancel_sent(o.cid, self.now))
            if outcome in ("ack", "lost_applied") and was_open:
                o.status = VenueOrderStatus.CANCELED
            if outcome == "late":
                self.due.append((self.now + 3.5, "cancel", o))
            if outcome == "ack":
                status = VenueOrderStatus.CANCELED if was_open else None
                self.updates.append(
                    book.on_ack(o.cid, self.now, status=status, filled_qty=o.filled)
                )
            else:
                self.updates.append(
                    book.on_ambiguous(
                        o.cid, self.now, action=AmbiguousAction.CANCEL, reason="timeout"
                    )
                )
        elif kind == "snapshot":
            self.updates.extend(book.on_snapshot(self.snapshot(), self.now))
        elif kind == "query":
            o = self.pick(args[0])
            if o is not None:
                answer = self.venue_order(o) if o.placed else None
                self.updates.append(
                    book.on_query_result(o.cid, answer, queried_at=self.now, now=self.now)
                )
        elif kind == "stream":
            o = self.pick(args[0])
            if o is not None and o.placed:
                self.updates.append(book.on_stream_order(self.venue_order(o), self.now))
        elif kind == "foreign":
            side, units = args
            self.seq += 1
            qty = D(units) / 10
            cid = f"web_{self.seq}"
            self.position += side.sign * qty
            self.foreign[cid] = qty
            self.updates.append(
                book.on_fill(Fill(SYM, f"t{self.seq}", "x", cid, side, qty, PRICE), self.now)
            )
        elif kind == "wait":
            self.now += args[0]
            self.run_due()

    def check_truth_inside(self):
        book = self.book
        for o in self.orders.values():
            b = get(book, o.cid)
            assert o.truth in b.states, (o, b)
            assert b.fill_lo <= o.filled <= b.fill_hi, (o, b)
            live = o.qty - o.filled if o.is_open else ZERO
            assert b.live.contains(live), (o, b)
        for cid in self.foreign:
            assert LiveState.FILLED in get(book, cid).states
        s = book.symbol(SYM)
        assert s.lo <= self.position <= s.hi, (self.position, s)
        assert s.lo <= s.point <= s.hi
        wc = book.worst_case_exposure(SYM, PRICE)
        assert wc.worst_qty >= abs(self.position)
        assert wc.notional >= abs(s.point) * PRICE

        # Everything that could still fill in one direction, on top of the true position.
        arriving = {id(o) for _, kind, o in self.due if kind == "arrive"}

        def rest(side):
            return sum(
                (
                    o.qty - o.filled
                    for o in self.orders.values()
                    if (o.is_open or id(o) in arriving) and o.side is side and not o.reduce_only
                ),
                ZERO,
            )

        assert wc.long_qty >= self.position + rest(Side.BUY)
        assert wc.short_qty >= -(self.position - rest(Side.SELL))


def sim_actions():
    side = st.sampled_from([Side.BUY, Side.SELL])
    idx = st.integers(min_value=0, max_value=20)
    send = st.tuples(
        st.just("send"),
        side,
        st.integers(min_value=1, max_value=10),
        st.booleans(),
        st.sampled_from(["ack", "ack", "lost_placed", "lost_unplaced", "late", "late", "reject"]),
    )
    fill = st.tuples(
        st.just("fill"),
        idx,
        st.integers(min_value=1, max_value=10),
        st.sampled_from(["now", "now", "late", "late", "drop"]),
    )
    cancel = st.tuples(
        st.just("cancel"), idx, st.sampled_from(["ack", "lost_applied", "lost_unapplied", "late"])
    )
    snapshot = st.just(("snapshot",))
    # Weighted: the interesting interleavings are sends, trades, cancels and snapshots.
    return st.one_of(
        send,
        send,
        fill,
        fill,
        fill,
        cancel,
        snapshot,
        snapshot,
        st.tuples(st.just("query"), idx),
        st.tuples(st.just("stream"), idx),
        st.just(("backfill",)),
        st.tuples(st.just("foreign"), side, st.integers(min_value=1, max_value=5)),
        st.tuples(st.just("wait"), st.sampled_from([2.0, 5.0, 12.0, 30.0])),
    )


def envelope_of(book):
    orders = {cid: (o.states, o.filled, o.live) for cid, o in book.orders.items()}
    return orders, book.symbol(SYM).interval


def assert_not_narrower(before, after):
    orders_b, pos_b = before
    orders_a, pos_a = after
    assert pos_a.encloses(pos_b)
    for cid, (states, filled, live) in orders_b.items():
        s2, f2, l2 = orders_a[cid]
        assert states <= s2
        assert f2.encloses(filled)
        assert l2.encloses(live)


@settings(max_examples=300, deadline=None)
@given(st.lists(sim_actions(), min_size=15, max_size=60))
def test_truth_stays_inside_the_envelope_under_honest_evidence(actions):
    sim = Sim()
    sim.book.on_snapshot(sim.snapshot(), 0.0)
    for action in actions:
        sim.step(action)
        if sim.settled:
            sim.check_truth_inside()
    sim.step(("wait", 5.0))  # let every late delivery land, then check once more
    sim.check_truth_inside()


@settings(max_examples=150, deadline=None)
@given(st.lists(sim_actions(), max_size=40))
def test_weak_evidence_and_actions_never_narrow(actions):
    sim = Sim()
    sim.book.on_snapshot(sim.snapshot(), 0.0)
    for action in actions:
        before = envelope_of(sim.book)
        n = len(sim.updates)
        sim.step(action)
        new = sim.updates[n:]
        for u in new:
            if u.strength is not EvidenceStrength.AUTHORITATIVE:
                assert u.effect in (Effect.UNCHANGED, Effect.WIDENED), u
        if new and all(u.strength is not EvidenceStrength.AUTHORITATIVE for u in new):
            assert_not_narrower(before, envelope_of(sim.book))


@settings(max_examples=60, deadline=None)
@given(st.lists(sim_actions(), max_size=40))
def test_replaying_the_same_evidence_gives_the_same_book(actions):
    def run():
        sim = Sim()
        sim.book.on_snapshot(sim.snapshot(), 0.0)
        for action in actions:
            sim.step(action)
        return sim.book.orders, sim.book.symbols(), sim.updates

    assert run() == run()


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["send", "ambiguous", "gap", "widen", "ack"]),
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(min_value=1, max_value=9),
        ),
        max_size=25,
    )
)
def test_widening_never_shrinks_the_position_interval_or_worst_case(ops):
    book = flat_book("0.5")
    prev_env, prev_worst = env(book), book.worst_case_exposure(SYM, PRICE).worst_qty
    n = 0
    for op, side, units in ops:
        qty = D(units) / 10
        if op == "send" or n == 0:
            n += 1
            book.on_order_sent(req(f"w{n}", side, str(qty)), float(n))
        elif op == "ambiguous":
            book.on_ambiguous(f"w{n}", float(n), action=AmbiguousAction.CREATE, reason="timeout")
        elif op == "gap":
            book.on_stream_gap(float(n), reason="disconnect")
        elif op == "widen":
            book.widen(SYM, down=qty, up=qty, reason="manual", now=float(n))
        else:
            book.on_ack(f"w{n}", float(n), status=VenueOrderStatus.NEW)
        cur_env, cur_worst = env(book), book.worst_case_exposure(SYM, PRICE).worst_qty
        assert cur_env.encloses(prev_env)
        assert cur_worst >= prev_worst
        prev_env, prev_worst = cur_env, cur_worst


def test_evidence_kinds_have_the_documented_strengths():
    assert {k for k in EvidenceKind if k.strength is EvidenceStrength.AUTHORITATIVE} == {
        EvidenceKind.FILL,
        EvidenceKind.QUERY,
        EvidenceKind.SNAPSHOT,
    }
