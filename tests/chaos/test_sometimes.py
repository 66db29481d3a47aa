"""Tests for scalper.chaos.sometimes: which dangerous paths a run's evidence shows it reached.

A label is the gate's only proof that a campaign exercised a dangerous path, so it must be
earned by the journal showing the system *went through* the situation (an unknown outcome
that was then resolved, a gap that was then backfilled and found lost fills), never by the
fault alone, and never by a look-alike (a resolution of an order that was never unknown,
a backfill that found nothing).
"""

from decimal import Decimal

import pytest

from scalper.chaos.sometimes import CATALOGUE, REQUIRED, reached
from scalper.core.ids import Role, client_order_id
from scalper.core.model import Fill, VenueOrder, VenueOrderStatus
from scalper.core.types import OrderType, PositionSide, Side
from scalper.crashpoints import CrashPoint
from scalper.messages import (
    ActorRestarted,
    BackfillCompleted,
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


def labels(*events: Event, fired: tuple[str, ...] = (), faults: tuple[InjectedFault, ...] = ()):
    return reached(list(events), fired, faults)


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


def test_cancel_unknown_but_live_needs_the_lie_and_a_completed_cancel():
    lie = InjectedFault(50.0, FaultKind.CANCEL_UNKNOWN_BUT_LIVE, "cancel", "-2011", 0, BTC)
    completed = CancelResolved("e-1", "e-1", COID, "query")
    assert labels(completed, faults=(lie,)) == {"cancel_unknown_but_live"}
    assert labels(completed) == set()  # a cancel without the lie proves nothing
    assert labels(faults=(lie,)) == set()  # a lie nobody went through proves nothing


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
        CancelResolved("e-1", "e-1", COID, "query"),
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
    lie = InjectedFault(50.0, FaultKind.CANCEL_UNKNOWN_BUT_LIVE, "cancel", "-2011", 0, BTC)
    fired = tuple(point.value for point in CrashPoint)
    assert reached(events, fired, (lie,)) == set(CATALOGUE)


def test_look_alike_events_reach_nothing():
    events: list[Event] = [
        SymbolFrozen(BTC, False, "operator cleared"),
        HaltChanged(True, "manual", "operator"),
        ReplaceFinished("e-1", "e-1", "r-1", "replaced", "done", "e-3"),
        RetryScheduled("e-1", "e-1", COID, "create", 1, 2.0, "timeout", "response lost"),
    ]
    assert reached(events, (), ()) == set()
