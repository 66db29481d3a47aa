"""The "sometimes" catalogue: proof that a campaign reached the dangerous paths.

A chaos run that never produces an unknown outcome proves nothing about unknown outcomes,
however many seeds it runs. Each label below names a dangerous situation and a rule that
recognises, from a finished run's evidence alone, that the situation really happened *and*
that the system went through it (the journal shows the resolution, not only the fault).
``pytest chaos/`` fails if a label in :data:`REQUIRED` was never reached by any run of
the campaign (the Antithesis "sometimes" assertion, see reliability_notes §1.3).
"""

from collections.abc import Iterable, Sequence

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
from scalper.venues.sim.faults import InjectedFault

__all__ = ["CATALOGUE", "REQUIRED", "reached"]

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
    "cancel_unknown_but_live": "a cancel was answered 'unknown order' while the order was live",
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


def reached(
    events: Sequence[Event],
    crash_points_fired: Iterable[str],
    injected: Iterable[InjectedFault],
) -> set[str]:
    """The labels a finished run reached, from its journal, crash log and fault log."""
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
    # The lie is in the fault log; the system going through it is a cancel that then
    # really completed (its status check found the order live and cancelled it).
    lied_about_cancel = any(f.kind.value == "CANCEL_UNKNOWN_BUT_LIVE" for f in injected)
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
            case CancelResolved() if lied_about_cancel:
                labels.add("cancel_unknown_but_live")
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
