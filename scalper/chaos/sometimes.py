"""The "sometimes" catalogue: proof that a campaign reached the dangerous paths.

A chaos run that never produces an unknown outcome proves nothing about unknown outcomes,
however many seeds it runs. Each label below names a dangerous situation and a rule that
recognises, from a finished run's evidence alone, that the situation really happened *and*
that the system went through it (the journal shows the resolution, not only the fault).
``pytest chaos/`` fails if a label in :data:`REQUIRED` was never reached by any run of
the campaign (the Antithesis "sometimes" assertion, see reliability_notes §1.3).

Most rules read the journal alone. Where the journal can only say what the system was
*told*, the rule also consults the exchange's ground truth (the simulated engine's
append-only history): ``cancel_unknown_but_live`` needs a cancel whose answer was "unknown
order" (-2011) or ambiguous (timeout, 503 unknown) while the order was, in fact, live at
the exchange at that instant. The system's status check saying "still open" is not
enough on its own: a lagged or wrong status read would say the same about an order that
had already filled, and a label earned that way would prove nothing about I3.
"""

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal

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
    FillRecorded,
    HistoryRecord,
    OrderAccepted,
    OrderClosed,
)

__all__ = ["CATALOGUE", "REQUIRED", "UNCLEAR_CANCEL_FAULTS", "reached"]

#: Every label with what it means.
CATALOGUE: dict[str, str] = {
    "unknown_resolved_present": "an unknown create outcome was resolved: the order existed",
    "unknown_resolved_absent": "an unknown create outcome was resolved: the order never existed",
    "fill_after_cancel": "a fill was journaled for an order after its cancel was requested",
    "crash_between_journal_and_send": "the process died after the intent was durable, "
    "before the request left",
    "crash_after_send_before_outcome": "the process died after the send, before its outcome "
    "was journaled",
    "crash_mid_fill": "the process died in the middle of applying backfilled fills",
    "crash_during_reconcile": "the process died during a reconcile pass",
    "stream_gap_backfilled": "a user-stream gap was backfilled and found fills the stream lost",
    "duplicate_client_id_rejected": "the exchange rejected a duplicate client order id (-4116)",
    "cancel_unknown_but_live": "a cancel was answered 'unknown order' or ambiguously while the "
    "order was live at the exchange; the status check found it open and the cancel then "
    "completed",
    "orphan_adopted": "an order the journal never saw was adopted",
    "orphan_cancelled": "an order the journal never saw was cancelled",
    "symbol_frozen": "a symbol was frozen because of a foreign order",
    "kill_switch_tripped": "the kill switch halted entries",
    "actor_restarted": "a crashed actor was restarted by its supervisor",
    "stop_repaired": "a protective stop was (re)placed by the ProtectionManager",
    "replace_filled_after_cancel": "a replace ended because the old order filled during cancel",
    "rate_limited_backoff": "a rate-limit answer led to a scheduled, backed-off retry",
}

#: The labels the chaos gate must reach at least once per campaign (the issue's list).
REQUIRED: tuple[str, ...] = (
    "unknown_resolved_present",
    "unknown_resolved_absent",
    "fill_after_cancel",
    "crash_between_journal_and_send",
    "stream_gap_backfilled",
    "duplicate_client_id_rejected",
)


#: Fault kinds whose answer to a cancel is "unknown order" (-2011) or ambiguous (the
#: outcome is unknown): the answers after which I3 demands a status check.
UNCLEAR_CANCEL_FAULTS: frozenset[FaultKind] = frozenset(
    {
        FaultKind.CANCEL_UNKNOWN_BUT_LIVE,
        FaultKind.DROP_REQUEST,
        FaultKind.LOSE_RESPONSE,
        FaultKind.UNKNOWN_503_PLACED,
        FaultKind.UNKNOWN_503_NOT_PLACED,
        FaultKind.ERROR_1006,
        FaultKind.ERROR_1007,
    }
)

#: The suffix the Router's status check gives a cancel it found still open
#: (``CancelFailed.reason`` is ``"<the unclear answer's reason>+still_open"``).
_STILL_OPEN = "+still_open"


def reached(
    events: Sequence[Event],
    crash_points_fired: Iterable[str],
    injected: Iterable[InjectedFault],
    history: Sequence[HistoryRecord],
) -> set[str]:
    """The labels a finished run reached.

    Args:
        events: the run's journal, decoded, in commit order.
        crash_points_fired: the crash points that fired, by value.
        injected: the fault injector's log (what the exchange was made to do).
        history: the exchange's ground truth (the engine's history records), on the
            same clock as ``injected``.
    """
    labels: set[str] = set()
    fired = set(crash_points_fired)
    for point, label in (
        (CrashPoint.AFTER_INTENT_DURABLE, "crash_between_journal_and_send"),
        (CrashPoint.AFTER_SEND_BEFORE_OUTCOME, "crash_after_send_before_outcome"),
        (CrashPoint.MID_FILL, "crash_mid_fill"),
        (CrashPoint.DURING_RECONCILE, "crash_during_reconcile"),
    ):
        if point.value in fired:
            labels.add(label)
    injected = tuple(injected)
    if _cancel_unknown_but_live(events, injected, history):
        labels.add("cancel_unknown_but_live")
    unknown: set[str] = set()
    cancel_requested: set[str] = set()
    gap_open = False
    backfilled_before_gap = False
    for event in events:
        match event:
            case OrderOutcomeUnknown():
                unknown.add(event.client_order_id)
            case OrderObserved() if event.client_order_id in unknown:
                # Evidence (a query or the stream) saw the order: resolved as present.
                unknown.discard(event.client_order_id)
                labels.add("unknown_resolved_present")
            case OrderResolved() if event.client_order_id in unknown:
                if event.evidence == "duplicate_client_id":
                    labels.add("duplicate_client_id_rejected")
                if event.resolution is Resolution.PRESENT:
                    labels.add("unknown_resolved_present")
                elif event.resolution is Resolution.ABSENT:
                    labels.add("unknown_resolved_absent")
            case OrderResolved() if event.evidence == "duplicate_client_id":
                labels.add("duplicate_client_id_rejected")
            case CancelRequested():
                cancel_requested.add(event.client_order_id)
            case FillApplied() if event.fill.client_order_id in cancel_requested:
                labels.add("fill_after_cancel")
            case FillApplied() if event.source == "backfill":
                backfilled_before_gap = True
            case StreamGapObserved():
                gap_open = True
                if backfilled_before_gap:
                    # The stream was down and a REST backfill (asked for by a reconcile that
                    # saw the position move) found the fill before the gap was announced.
                    labels.add("stream_gap_backfilled")
            case BackfillCompleted() if gap_open and event.new_fills > 0:
                labels.add("stream_gap_backfilled")
            case CancelResolved() if event.correlation_id.startswith("orphan:"):
                labels.add("orphan_cancelled")
            case OrderAdopted():
                labels.add("orphan_adopted")
            case SymbolFrozen() if event.frozen:
                labels.add("symbol_frozen")
            case HaltChanged() if event.halted and event.source == "kill_switch":
                labels.add("kill_switch_tripped")
            case ActorRestarted():
                labels.add("actor_restarted")
            case ProtectionRepair():
                labels.add("stop_repaired")
            case ReplaceFinished() if event.outcome == "filled_after_cancel":
                labels.add("replace_filled_after_cancel")
            case RetryScheduled() if "rate" in event.reason or "429" in event.reason:
                labels.add("rate_limited_backoff")
            case _:
                pass
    return labels


def _cancel_unknown_but_live(
    events: Sequence[Event],
    injected: Sequence[InjectedFault],
    history: Sequence[HistoryRecord],
) -> bool:
    """I3's exact case, proven from three sources that must agree.

    * The **fault log**: at an instant ``t`` a cancel on symbol ``s`` was answered "unknown
      order" or ambiguously (:data:`UNCLEAR_CANCEL_FAULTS`).
    * The **ground truth**: one of our orders on ``s`` was live at the exchange at ``t``
      (accepted at or before ``t``, not closed, triggered or completely filled by ``t``).
    * The **journal**, for that same order: the status check after an unclear cancel
      answer found it still open (``CancelFailed`` ``...+still_open``), and a later
      ``CancelResolved`` shows the cancel then completed. The system went through the lie
      instead of believing it.

    A truthful -2011 (the order had just filled: the fill-after-cancel race) fails the
    ground truth, and a lie that no journaled cancel went through fails the journal.
    """
    lies = [
        (f.at, f.symbol)
        for f in injected
        if f.op == "cancel" and f.kind in UNCLEAR_CANCEL_FAULTS and f.symbol is not None
    ]
    if not lies:
        return False
    candidates: set[str] = set()
    found_open: set[str] = set()
    for event in events:
        match event:
            case CancelFailed() if event.still_open and event.reason.endswith(_STILL_OPEN):
                found_open.add(event.client_order_id)
            case CancelResolved() if event.client_order_id in found_open:
                candidates.add(event.client_order_id)
            case _:
                pass
    if not candidates:
        return False
    spans = _live_spans(history, candidates)
    return any(
        start <= at < end and symbol == lie_symbol
        for at, lie_symbol in lies
        for symbol, start, end in spans
    )


def _live_spans(
    history: Sequence[HistoryRecord], client_order_ids: set[str]
) -> list[tuple[str, float, float]]:
    """``(symbol, from, until)`` of every exchange order with one of ``client_order_ids``.

    An order is live from its acceptance until the first of: closed (cancelled, expired,
    rejected), triggered (an algo order becomes its child, which has its own span) or
    completely filled. ``until`` is ``inf`` for an order still live at the end.
    """
    accepted: dict[str, OrderAccepted] = {}
    until: dict[str, float] = {}
    filled: dict[str, Decimal] = {}

    def end(order_id: str, ts: float) -> None:
        if order_id in accepted and order_id not in until:
            until[order_id] = ts

    for record in history:
        match record:
            case OrderAccepted() if record.client_order_id in client_order_ids:
                accepted[record.order_id] = record
            case OrderClosed():
                end(record.order_id, record.ts)
            case AlgoTriggered():
                end(record.algo_id, record.ts)
            case FillRecorded() if record.fill.order_id in accepted:
                order_id = record.fill.order_id
                filled[order_id] = filled.get(order_id, Decimal(0)) + record.fill.quantity
                quantity = accepted[order_id].request.quantity
                if quantity is not None and filled[order_id] >= quantity:
                    end(order_id, record.ts)
            case _:
                pass
    return [
        (a.request.symbol, a.ts, until.get(order_id, math.inf)) for order_id, a in accepted.items()
    ]
