"""Tests for scalper.chaos.sometimes: which dangerous paths a run's evidence shows it reached.

A label is the gate's only proof that a campaign exercised a dangerous path, so it must be
earned by the journal showing the system *went through* the situation (an unknown outcome
that was then resolved, a gap that was then backfilled and found lost fills), never by the
fault alone, and never by a look-alike (a resolution of an order that was never unknown,
a backfill that found nothing).
"""

from decimal import Decimal

import pytest

from scalper.chaos.sometimes import CATALOGUE, REQUIRED, UNCLEAR_CANCEL_FAULTS, reached
from scalper.core.ids import Role, client_order_id
from scalper.core.model import Fill, OrderRequest, VenueOrder, VenueOrderStatus
from scalper.core.types import OrderType, PositionSide, Side, TimeInForce
from scalper.crashpoints import CrashPoint
from scalper.messages import (
    ActorRestarted,
    BackfillCompleted,
    CancelFailed,
    CancelRequested,
    CancelResolved,
    Event,
    FillApplied,
    HaltChanged,
    OrderAdopted,
    OrderObserved,
    OrderOutcomeUnknown,
    OrderResolved,
    ProtectionRepair,
    ReplaceFinished,
    Resolution,
    RetryScheduled,
    StreamGapObserved,
    SymbolFrozen,
)
from scalper.venues.sim.faults import FaultKind, InjectedFault
from scalper.venues.sim.records import (
    AlgoTriggered,
    CloseReason,
    FillRecorded,
    HistoryRecord,
    OrderAccepted,
    OrderClosed,
)

BTC = "BTCUSDT"
QTY = Decimal("0.002")
COID = client_order_id("sc", "e-1", Role.ENTRY)
OTHER = client_order_id("sc", "e-2", Role.ENTRY)


def order(client_id: str = COID) -> VenueOrder:
    return VenueOrder(BTC, "101", client_id, Side.BUY, OrderType.LIMIT, VenueOrderStatus.NEW, QTY)


def unknown(client_id: str = COID) -> OrderOutcomeUnknown:
    return OrderOutcomeUnknown("e-1", "e-1", client_id, "timeout", None, "response lost")


def resolved(
    resolution: Resolution, evidence: str = "query", client_id: str = COID
) -> OrderResolved:
    present = resolution is Resolution.PRESENT
    return OrderResolved(
        "e-1", "e-1", client_id, resolution, evidence, order(client_id) if present else None
    )


def observed(client_id: str = COID) -> OrderObserved:
    return OrderObserved("e-1", "e-1", client_id, order(client_id), "stream", 0)


def fill(client_id: str = COID, trade_id: str = "t-1") -> FillApplied:
    trade = Fill(BTC, trade_id, "101", client_id, Side.BUY, QTY, Decimal(60000))
    return FillApplied("e-1", "e-1", trade, "stream")


def cancel_requested(client_id: str = COID) -> CancelRequested:
    return CancelRequested("e-1", "e-1", client_id, "strategy")


def gap() -> StreamGapObserved:
    return StreamGapObserved(100.0, 130.0, "disconnect")


def backfill(new_fills: int) -> BackfillCompleted:
    return BackfillCompleted(BTC, "t-0", fetched=3, new_fills=new_fills, correlation_id="bf-1")


def labels(
    *events: Event,
    fired: tuple[str, ...] = (),
    faults: tuple[InjectedFault, ...] = (),
    history: tuple[HistoryRecord, ...] = (),
):
    return reached(list(events), fired, faults, history)


# --------------------------------------------------------------------------- unknown outcomes


def test_an_unknown_create_resolved_present_is_reached():
    assert labels(unknown(), resolved(Resolution.PRESENT)) == {"unknown_resolved_present"}


def test_an_unknown_create_resolved_absent_is_reached():
    evidence = "not_found_after_recv_window"
    assert labels(unknown(), resolved(Resolution.ABSENT, evidence)) == {"unknown_resolved_absent"}


def test_an_unknown_create_seen_by_the_stream_counts_as_resolved_present():
    assert labels(unknown(), observed()) == {"unknown_resolved_present"}


def test_a_resolution_of_an_order_that_was_never_unknown_reaches_nothing():
    # An ordinary startup resolution of a SENDING order is not the ambiguous-outcome path.
    assert labels(resolved(Resolution.PRESENT), resolved(Resolution.ABSENT), observed()) == set()


def test_an_unknown_outcome_left_unresolved_reaches_nothing():
    # The fault alone proves nothing: the system must go through the resolution.
    assert labels(unknown()) == set()


def test_a_resolution_of_another_order_does_not_count():
    assert labels(unknown(), resolved(Resolution.ABSENT, client_id=OTHER), observed(OTHER)) == set()


def test_an_order_that_existed_and_vanished_is_not_resolved_absent():
    # CLOSED means the order existed: it must not be counted as "it never existed".
    assert labels(unknown(), resolved(Resolution.CLOSED, "vanished_after_existing")) == set()
    assert labels(
        unknown(),
        resolved(Resolution.PRESENT),
        resolved(Resolution.CLOSED, "vanished_after_existing"),
    ) == {"unknown_resolved_present"}


def test_duplicate_client_id_is_reached_with_or_without_a_prior_unknown():
    # -4116 proves the order is there: both the duplicate and the present label.
    assert labels(unknown(), resolved(Resolution.PRESENT, "duplicate_client_id")) == {
        "duplicate_client_id_rejected",
        "unknown_resolved_present",
    }
    # A zombie's order met by our own first send: no unknown before it, still a -4116.
    assert labels(resolved(Resolution.PRESENT, "duplicate_client_id")) == {
        "duplicate_client_id_rejected"
    }


# --------------------------------------------------------------------------- fills and gaps


def test_a_fill_after_its_cancel_was_requested_is_reached():
    assert labels(cancel_requested(), fill()) == {"fill_after_cancel"}


def test_a_fill_before_the_cancel_or_of_another_order_is_not():
    assert labels(fill(), cancel_requested()) == set()
    assert labels(cancel_requested(OTHER), fill()) == set()


def test_a_gap_backfilled_with_lost_fills_is_reached():
    assert labels(gap(), backfill(new_fills=2)) == {"stream_gap_backfilled"}


@pytest.mark.parametrize(
    "events",
    [
        (gap(), backfill(new_fills=0)),  # the backfill found nothing the stream had lost
        (backfill(new_fills=2), gap()),  # a scheduled backfill before any gap
        (backfill(new_fills=2),),
    ],
    ids=["nothing_lost", "backfill_before_gap", "no_gap"],
)
def test_a_backfill_that_recovered_nothing_after_a_gap_is_not_reached(events):
    assert labels(*events) == set()


# --------------------------------------------------------------------------- crash points


def test_each_fired_crash_point_reaches_its_label():
    fired = tuple(point.value for point in CrashPoint)
    assert labels(fired=fired) == {
        "crash_between_journal_and_send",
        "crash_after_send_before_outcome",
        "crash_mid_fill",
        "crash_during_reconcile",
    }
    assert labels(fired=(CrashPoint.AFTER_INTENT_DURABLE.value,)) == {
        "crash_between_journal_and_send"
    }
    assert labels(fired=("router.somewhere_else",)) == set()


# --------------------------------------------------------------------------- the lie
#
# cancel_unknown_but_live: a cancel answered -2011 "unknown order" (or ambiguously) while
# the order was in fact resting. The fault log says when a cancel got such an answer, the
# exchange's history says whether the order was live at that instant, and the journal
# says the system's status check found it open and the cancel then completed.

LIE_AT = 360.0


def lie(at: float = LIE_AT, kind: FaultKind = FaultKind.CANCEL_UNKNOWN_BUT_LIVE, symbol=BTC):
    return InjectedFault(at, kind, "cancel", "-2011", 0, symbol)


def accepted(at: float, client_id: str = COID, order_id: str = "101", algo: bool = False):
    request = OrderRequest(
        BTC, Side.BUY, OrderType.LIMIT, client_id, QTY, Decimal(59800), None, TimeInForce.GTC
    )
    return OrderAccepted(1, at, 0, order_id, client_id, request, algo)


def closed(at: float, client_id: str = COID, order_id: str = "101"):
    return OrderClosed(
        2,
        at,
        0,
        order_id,
        client_id,
        BTC,
        VenueOrderStatus.CANCELED,
        CloseReason.USER_CANCEL,
        Decimal(0),
    )


def venue_fill(at: float, quantity: Decimal = QTY, client_id: str = COID, order_id: str = "101"):
    trade = Fill(BTC, f"t-{at}", order_id, client_id, Side.BUY, quantity, Decimal(59800))
    return FillRecorded(3, at, trade)


def still_open(client_id: str = COID, why: str = "cancel_not_open") -> CancelFailed:
    return CancelFailed("e-1", "e-1", client_id, f"{why}+still_open", True)


def cancel_done(client_id: str = COID, evidence: str = "cancel_ack") -> CancelResolved:
    return CancelResolved("e-1", "e-1", client_id, evidence)


#: The journal of a cancel that met the lie, checked the status, retried and completed.
WENT_THROUGH = (cancel_requested(), still_open(), cancel_done())
#: The exchange's truth: the order rested from 300 s and was cancelled at 362 s.
LIVE_AT_LIE = (accepted(300.0), closed(362.0))


def test_cancel_unknown_but_live_is_reached_when_all_three_sources_agree():
    assert labels(*WENT_THROUGH, faults=(lie(),), history=LIVE_AT_LIE) == {
        "cancel_unknown_but_live"
    }


@pytest.mark.parametrize(
    "kind",
    sorted(UNCLEAR_CANCEL_FAULTS - {FaultKind.CANCEL_UNKNOWN_BUT_LIVE}),
)
def test_an_ambiguous_cancel_answer_while_live_also_counts(kind):
    # A dropped cancel times out (AMBIGUOUS): the status check must find the order live.
    why = "transport_after_write"
    events = (cancel_requested(), still_open(why=why), cancel_done())
    assert labels(*events, faults=(lie(kind=kind),), history=LIVE_AT_LIE) == {
        "cancel_unknown_but_live"
    }


def test_a_truthful_unknown_order_for_a_filled_order_is_not_the_lie():
    # The legal twin: the order filled at 359 s, so the -2011 at 360 s told the truth (the
    # fill-after-cancel race). Even if a stale status read had called it "still open", the
    # exchange's history says there was no live order to lie about.
    history = (accepted(300.0), venue_fill(359.0))
    assert labels(*WENT_THROUGH, faults=(lie(),), history=history) == set()
    # The same with the order cancelled (by someone else) just before the lie.
    assert labels(*WENT_THROUGH, faults=(lie(),), history=(accepted(300.0), closed(359.9))) == set()
    # Closed at the very instant of the answer: an executed cancel whose answer was lost.
    assert labels(*WENT_THROUGH, faults=(lie(),), history=(accepted(300.0), closed(360.0))) == set()


def test_a_partly_filled_order_is_still_live():
    history = (accepted(300.0), venue_fill(350.0, QTY / 2), closed(362.0))
    assert labels(*WENT_THROUGH, faults=(lie(),), history=history) == {"cancel_unknown_but_live"}


def test_a_triggered_stop_is_no_longer_live_as_an_algo_order():
    algo = accepted(300.0, order_id="algo-7", algo=True)
    triggered = AlgoTriggered(2, 355.0, 0, "algo-7", BTC, Decimal(59700), "triggered", "102")
    assert labels(*WENT_THROUGH, faults=(lie(),), history=(algo, triggered)) == set()
    assert labels(*WENT_THROUGH, faults=(lie(),), history=(algo,)) == {"cancel_unknown_but_live"}


@pytest.mark.parametrize(
    ("events", "faults", "history"),
    [
        # An order that was not yet accepted at the lie: nothing was live to lie about.
        (WENT_THROUGH, (lie(),), (accepted(361.0), closed(362.0))),
        # The live order is another one; ours had no still-open check.
        (WENT_THROUGH, (lie(),), (accepted(300.0, OTHER, "102"),)),
        # The lie was on another symbol.
        (WENT_THROUGH, (lie(symbol="ETHUSDT"),), LIVE_AT_LIE),
        # A fault that is not an unclear cancel answer (a 429 is a definite "not now").
        (WENT_THROUGH, (lie(kind=FaultKind.RATE_LIMIT_429),), LIVE_AT_LIE),
        # The fill-after-cancel race is the exchange answering for itself, not a lie.
        (WENT_THROUGH, (lie(kind=FaultKind.FILL_AFTER_CANCEL),), LIVE_AT_LIE),
        # No fault at all: the journal alone proves nothing.
        (WENT_THROUGH, (), LIVE_AT_LIE),
        # No ground truth: the journal and the fault log alone prove nothing.
        (WENT_THROUGH, (lie(),), ()),
        # The status check never found it open: the cancel was simply acknowledged.
        ((cancel_requested(), cancel_done()), (lie(),), LIVE_AT_LIE),
        # Found open, but the cancel never completed (the system gave up): not gone through.
        ((cancel_requested(), still_open()), (lie(),), LIVE_AT_LIE),
        # Resolved before it was ever found open: the order matters, not the set of events.
        ((cancel_requested(), cancel_done(), still_open()), (lie(),), LIVE_AT_LIE),
        # Found open and resolved, but for two different orders.
        ((still_open(), cancel_done(OTHER)), (lie(),), LIVE_AT_LIE),
    ],
    ids=[
        "accepted_after_lie",
        "other_order_live",
        "other_symbol",
        "rate_limit",
        "fill_after_cancel_fault",
        "no_fault",
        "no_history",
        "no_status_check",
        "never_completed",
        "resolved_before_check",
        "different_orders",
    ],
)
def test_cancel_unknown_but_live_look_alikes_reach_nothing(events, faults, history):
    assert "cancel_unknown_but_live" not in labels(*events, faults=faults, history=history)


# --------------------------------------------------------------------------- the catalogue


def test_required_labels_are_in_the_catalogue_and_described():
    assert set(REQUIRED) <= set(CATALOGUE)
    assert len(set(REQUIRED)) == len(REQUIRED)
    for label, meaning in CATALOGUE.items():
        assert label == label.lower()
        assert " " not in label
        assert meaning


def test_every_catalogue_label_is_reachable_and_reached_names_only_catalogue_labels():
    orphan_order = order(client_id="sc-E-ffffffffffffffff-0")
    events: list[Event] = [
        unknown(),
        resolved(Resolution.PRESENT, "duplicate_client_id"),
        unknown(OTHER),
        resolved(Resolution.ABSENT, client_id=OTHER),
        cancel_requested(),
        fill(),
        gap(),
        backfill(new_fills=1),
        CancelResolved("", "orphan:sc-x", "sc-x", "cancelled"),
        still_open(),
        CancelResolved("e-1", "e-1", COID, "cancel_ack"),
        OrderAdopted("adopted-1", "orphan:a", orphan_order.client_order_id, orphan_order, "ours"),
        SymbolFrozen(BTC, True, "foreign order"),
        HaltChanged(True, "posture RED", "kill_switch"),
        ActorRestarted("evidence", 1),
        ProtectionRepair(
            BTC, PositionSide.BOTH, "resize_stop", "fill", "gap", QTY, Decimal(0), (), "p:1"
        ),
        ReplaceFinished("e-1", "e-1", "r-1", "filled_after_cancel", "filled", "e-3"),
        RetryScheduled("e-1", "e-1", COID, "create", 1, 2.0, "rate_limited", "429 too many"),
    ]
    fired = tuple(point.value for point in CrashPoint)
    assert reached(events, fired, (lie(),), LIVE_AT_LIE) == set(CATALOGUE)


def test_look_alike_events_reach_nothing():
    events: list[Event] = [
        SymbolFrozen(BTC, False, "operator cleared"),
        HaltChanged(True, "manual", "operator"),
        ReplaceFinished("e-1", "e-1", "r-1", "replaced", "done", "e-3"),
        RetryScheduled("e-1", "e-1", COID, "create", 1, 2.0, "timeout", "response lost"),
    ]
    assert reached(events, (), (), ()) == set()
