"""The BeliefController: belief debt to posture to GuardKnobs, plus the kill switch.

Theory of operation
-------------------

The controller turns what the Reconciler found (:class:`~scalper.actors.reconciler.BeliefState`),
what the journal's state says about unresolved orders, and what the journal stream shows
(venue request outcomes, stream gaps, backfills) into core's
:class:`~scalper.core.posture.BeliefDebt`, and feeds it to
:class:`~scalper.core.posture.PostureController` on every pass, on a steady tick (ages grow
while nothing happens) and when the journal shows a stream gap open or close. Every posture
*mode* change is journaled (:class:`~scalper.messages.PostureChanged`) with its cause tags
and the unlock conditions for the next step down. Knobs limit entries only; nothing here can
block an exit (I1). Posture boots ORANGE: after a restart the system earns its way back.

**Knobs reach the subscribers whenever their value changes**, not only on a mode change:
core's knobs are a function of the score *and* the mode (:func:`~scalper.core.posture.knobs_for`),
so within one mode a rising score tightens the notional, leverage, confidence floor,
cooldown and resting-entry limits, and the Router must enforce those. After every decision
each subscriber (the Router, strategies) is sent the current knobs if they differ, by value,
from the last knobs it accepted; nothing is sent while they are unchanged (no flood: at most
one send per decision, and decisions happen per tick, pass or journal trigger). A subscriber
whose buffer is full is retried at the next decision with the then-current knobs, so the
latest value always arrives and a stale one is never sent after a newer one.

The kill switch (:class:`~scalper.core.kill_switch.KillSwitch`) is evaluated on each
reconcile pass with the mismatch streak, RED posture, equity and the API requests and errors
counted since the previous evaluation. A trip, its expiry, an operator halt and an operator
resume are journaled as :class:`~scalper.messages.HaltChanged`; the journal's halts are what
the Router checks, so a halt survives a restart of any actor or of the process. Resume needs
a clean last reconcile and no active automatic trigger
(:meth:`BeliefController.reconcile_blocking` is that reconcile rule, shared with
``System.unfreeze``).

When an operator or kill-switch halt becomes active (and again when a restarted controller
finds one in the journal), the controller hands the halt's source to the ``on_halt`` hook
if ``cancel_entries_on_halt`` is set: the System cancels resting *entry* orders through the
Router's cancel path. A halt only stops new entries; without this, a resting limit entry
could still fill into a halted account. Protective stops and exits are never touched (I1):
which orders qualify is the hook's business, and it takes risk-increasing, non-reduce-only
orders only.

API requests and errors (the kill switch's ``api_error_burst`` / ``api_error_rate``)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~

The controller follows the journal and counts every journaled *outcome* of a venue request
(:func:`api_counts`): one request each, an error when the outcome's verdict reason is an API
error by :func:`scalper.core.kill_switch.is_api_error` (429/-1003 rate limits, 418 bans,
5xx, -1000/-1001/-1006/-1007/-1008, 408, the WAF's 403, -1021 timestamps, timeouts and
resets, unparseable answers). A business answer is a request but never an error: -2010
rejected, -2019 insufficient margin, filter failures, -2021 would trigger, -4116, -2011,
-2013 "not found". Per event:

====================  =====================================================================
OrderSending          nothing: the outcome event counts the request
OrderAcked            1 request
OrderRejected         1 request; error if its reason (after ``retries_exhausted:``) is one
OrderOutcomeUnknown   1 request; error if its reason is one (timeouts, 5xx: always)
RetryScheduled        1 request (the failed attempt); error if its reason is one
OrderResolved         1 request when settled by a query or -4116, else nothing
OrderObserved         1 request when ``source == "query"`` (stream reports are not requests)
CancelResolved        1 request; ``why+outcome`` evidence is an unclear cancel answer and
                      the status query after it: 2 requests, error if ``why`` is one
CancelFailed          ``retries_exhausted``: nothing (each attempt was a RetryScheduled);
                      ``why+outcome``: the status query, error if ``outcome`` is one (the
                      unclear ``why`` is counted by the RetryScheduled that follows it);
                      a plain reason: 1 request, error if it is one
BackfillCompleted     1 request (a trade-history read)
ReconcileCompleted    1 request (the snapshot); an error if the snapshot failed
DeadmanChanged        1 request; DeadmanFailed: 1 request, error if its reason is one
====================  =====================================================================

What the journal does not show is not counted: a failed backfill, collector query or routine
dead-man heartbeat is recorded only in the evidence health (which lowers source confidence)
or not at all. Counting starts when the controller starts; a restarted controller's window
starts empty.

Start-of-day equity (``daily_loss_limit``)
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~

:class:`~scalper.core.kill_switch.DayEquity` keeps the first equity observed at or after
each UTC midnight of the injected wall clock (``Clock.wall_ms``) and the peak. The first
equity of a new day is journaled as :class:`~scalper.messages.DayStartEquity`; a (re)started
controller takes today's record from the journal's state (``AccountState.day_start``, the
latest one folded), so a restart keeps the day's start and the peak journaled with it. What a
restart loses: a peak reached after today's record (the drawdown base falls back to the
record's peak), and, when the process was down at midnight and no record of today exists,
the loss between midnight and the first equity read after the restart.

Stream gaps
~~~~~~~~~~~

A :class:`~scalper.messages.StreamGapObserved` of at least ``stream_gap_grace_s`` means the
user stream may have missed fills; until a :class:`~scalper.messages.BackfillCompleted` has
been journaled after it for every symbol this controller has seen backfilled (the collector
backfills every traded symbol at start and every routine interval; a complete REST trade
read from the stored cursor covers the gap; with none seen yet, any one settles it), the
debt's source confidence is capped at ``stream_gap_confidence`` and tagged
``stream_gap_unbackfilled``: the knobs tighten at once, the mode follows if it persists,
and recovery waits for the backfill. A short reconnect raises nothing here (the evidence
health still records it).

The outage itself counts too: the collector journals :class:`~scalper.messages.StreamDown`
as soon as the adapter reports the connection lost, and from ``stream_gap_grace_s`` after
the outage began until the reconnect's gap is journaled, the same cap applies, tagged
``stream_down`` (the collector also stops counting the stream as fresh, so its evidence
health decays meanwhile). Entries tighten while the stream is blind, not only afterwards.

Frozen foreign orders
~~~~~~~~~~~~~~~~~~~~~

A foreign order (``foreign_order`` / ``foreign_exit_order``) classified FREEZE on a symbol
the journal shows frozen is a known, operator-owned condition: the Router already refuses
entries on that symbol. Reconcile keeps reporting it on every pass, but here it does not
count as fresh unexplained mismatch: it is left out of the mismatch streak (the kill switch's
``reconcile_mismatch_streak`` and the debt's), of breadth, depth and the unclean age, and
held instead as a bounded pressure (``frozen_order_pressure``, tag
``frozen_foreign_order``) that keeps it visible in the posture's causes: someone else
trades on the account, so entries everywhere tighten to YELLOW, but no halt and no ORANGE
follow from it alone. The streak this
controller uses is the reconcile streak without those mismatches: it grows on a pass with a
*significant* other mismatch (the reconcile summary's ``violations`` say which severities
were significant), resets on a pass whose only mismatches are operator-owned, and holds on
one with only minor ones. Venue liquidation, ADL and settlement orders, orphans that look
like our own orders and orphan positions keep counting in full.

Debt inputs, and how they are measured:

* ``unknown_intents`` / ``oldest_unknown_intent_s``: orders in SENDING or UNKNOWN, aged
  from their send time;
* ``mismatch_streak`` and ``breadth``: the streak above; mismatched symbols plus unknown
  orders;
* ``depth``: unknown orders' notional over ``reference_notional`` (a market order, whose
  price we do not hold, counts as one full reference entry), at least the worst mismatch
  severity;
* ``debt_age_s``: how long reconciles have been unclean, or the oldest unknown order;
* ``protection_gap_s``: how long a missing or undersized protection mismatch has
  persisted on any symbol (I9);
* ``source_confidence`` and ``contradiction_burn``: from the evidence health, confidence
  capped while a stream gap is unbackfilled;
* ``extra_pressure``: the strongest pressure other actors raised, and frozen foreign orders.
"""

import datetime
import math
from collections.abc import Awaitable, Callable
from decimal import Decimal

import attrs
import trio

from scalper.actors.journal import Journal
from scalper.actors.reconciler import BeliefState
from scalper.clock import Clock
from scalper.core.kill_switch import (
    DayEquity,
    KillReason,
    KillSwitch,
    KillSwitchInputs,
    KillSwitchState,
    is_api_error,
    utc_day,
)
from scalper.core.posture import (
    BeliefDebt,
    GuardKnobs,
    PostureController,
    PostureDecision,
    PostureMode,
)
from scalper.core.reconcile import ACCOUNT, Mismatch, MismatchKind
from scalper.core.types import ZERO
from scalper.messages import (
    BackfillCompleted,
    CancelFailed,
    CancelResolved,
    DayStartEquity,
    DeadmanChanged,
    DeadmanFailed,
    Event,
    Halt,
    HaltChanged,
    OrderAcked,
    OrderObserved,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderResolved,
    PostureChanged,
    PressureRaised,
    ReconcileCompleted,
    Resume,
    RetryScheduled,
    StreamDown,
    StreamGapObserved,
)
from scalper.store.records import JournalEntry, LedgerState

__all__ = ["BeliefConfig", "BeliefController", "HaltHook", "ResumeResult", "api_counts"]

#: Called with the halt's source (``operator``, ``kill_switch``) once it is journaled.
HaltHook = Callable[[str], Awaitable[None]]

#: Halt sources whose activation cancels resting entries (the supervisor's halt stops the
#: whole system; its resting orders are the dead-man switch's business).
_SWEPT_SOURCES = ("operator", "kill_switch")

_PROTECTION_KINDS = frozenset({MismatchKind.MISSING_PROTECTION, MismatchKind.UNDERSIZED_PROTECTION})

#: Orphan reasons that name an order someone else placed on the account (not the venue's
#: liquidation machinery, not an order that looks like ours).
_FOREIGN_ORPHAN_REASONS = frozenset({"foreign_order", "foreign_exit_order"})

#: Evidence that an OrderResolved came from a venue request (a query, or a -4116 answer).
_REQUESTED_RESOLUTIONS = frozenset({"query", "duplicate_client_id"})

_FROZEN_ORDER_TAG = "frozen_foreign_order"
_STREAM_GAP_TAG = "stream_gap_unbackfilled"
_STREAM_DOWN_TAG = "stream_down"
#: Journal entries read per step when looking back for today's DayStartEquity.


def _unit(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


@attrs.frozen
class BeliefConfig:
    """Controller settings.

    Attributes:
        tick_s: how often posture is re-evaluated without new evidence.
        reference_notional: the notional of one standard entry (depth's unit), quote asset.
        cancel_entries_on_halt: when an operator or kill-switch halt becomes active, cancel
            resting entry (risk-increasing, non-reduce-only) orders; stops and exits are
            never cancelled (I1).
        in_flight_grace_s: an order still SENDING (journaled, no answer yet) counts as an
            unknown intent only once it is this old. A normal send takes milliseconds; a
            belief pass that happens to land inside one must not read it as uncertainty
            (the chaos gate found every exit taken in RED that way). The Router's request
            timeout turns a send that hangs longer into an explicit UNKNOWN, which counts
            at once.
        stream_gap_grace_s: a journaled stream gap shorter than this (a quick reconnect)
            raises no debt here, and neither does an outage (``stream_down``) until it has
            lasted this long.
        stream_gap_confidence: the source confidence cap while the stream is down past the
            grace, or a longer gap's fills are not yet backfilled, in [0, 1] (0.5 scores 0.3
            with the default weights: YELLOW once it persists; 1 disables).
        frozen_order_pressure: the pressure, in [0, 1], held while a frozen foreign order
            rests: 0.6 scores 0.3 with the default weights, YELLOW (tighter entry limits on
            every symbol, entries still allowed) and never more on its own; 0 keeps only
            the cause tag.
    """

    tick_s: float = 1.0
    reference_notional: Decimal = Decimal("1000")
    cancel_entries_on_halt: bool = True
    in_flight_grace_s: float = 10.0
    stream_gap_grace_s: float = 5.0
    stream_gap_confidence: float = 0.5
    frozen_order_pressure: float = 0.6

    def __attrs_post_init__(self) -> None:
        if not (math.isfinite(self.tick_s) and self.tick_s > 0):
            raise ValueError(f"tick_s must be a positive number, got {self.tick_s!r}")
        if not (math.isfinite(self.in_flight_grace_s) and self.in_flight_grace_s >= 0):
            raise ValueError(
                f"in_flight_grace_s must be a number >= 0, got {self.in_flight_grace_s!r}"
            )
        if not self.reference_notional > 0:
            raise ValueError(f"reference_notional must be positive, got {self.reference_notional}")
        if not isinstance(self.cancel_entries_on_halt, bool):
            raise ValueError(
                f"cancel_entries_on_halt must be true or false, got {self.cancel_entries_on_halt!r}"
            )
        grace: object = self.stream_gap_grace_s
        if (
            isinstance(grace, bool)
            or not isinstance(grace, int | float)
            or not (math.isfinite(grace) and grace >= 0)
        ):
            raise ValueError(f"stream_gap_grace_s must be a number >= 0, got {grace!r}")
        _unit("stream_gap_confidence", self.stream_gap_confidence)
        _unit("frozen_order_pressure", self.frozen_order_pressure)


@attrs.frozen
class ResumeResult:
    """The answer to an operator resume: resumed, or what blocks it."""

    resumed: bool
    blocking: tuple[str, ...]


def _api(reason: str) -> int:
    return 1 if is_api_error(reason) else 0


def api_counts(event: Event) -> tuple[int, int]:
    """``(requests, api_errors)`` that one journaled event stands for.

    The table in the module docstring is the specification; an event that records no venue
    request is ``(0, 0)``.
    """
    match event:
        case OrderAcked() | BackfillCompleted() | DeadmanChanged():
            return (1, 0)
        case OrderRejected() | OrderOutcomeUnknown() | RetryScheduled():
            return (1, _api(event.reason))
        case DeadmanFailed():
            return (1, _api(event.error))
        case OrderResolved():
            return (1, 0) if event.evidence in _REQUESTED_RESOLUTIONS else (0, 0)
        case OrderObserved():
            return (1, 0) if event.source == "query" else (0, 0)
        case CancelResolved():
            why, joined, _ = event.evidence.partition("+")
            return (2, _api(why)) if joined else (1, 0)
        case CancelFailed():
            if event.reason == "retries_exhausted":
                return (0, 0)
            _, joined, outcome = event.reason.partition("+")
            return (1, _api(outcome if joined else event.reason))
        case ReconcileCompleted():
            failed = any(m.startswith(f"{MismatchKind.SNAPSHOT_FAILED}:") for m in event.mismatches)
            return (1, 1 if failed else 0)
        case _:
            return (0, 0)


def _operator_owned(mismatch: Mismatch, frozen_symbols: frozenset[str]) -> bool:
    """A foreign order reconcile chose to FREEZE, on a symbol the journal shows frozen."""
    return (
        mismatch.kind is MismatchKind.ORPHAN_VENUE_ORDER
        and mismatch.symbol in frozen_symbols
        and "action_freeze" in mismatch.reasons
        and not _FOREIGN_ORPHAN_REASONS.isdisjoint(mismatch.reasons)
    )


@attrs.define
class _StreamGap:
    """A journaled stream gap whose fills are not yet backfilled on every symbol."""

    reason: str
    duration_s: float
    #: Symbols still owing a backfill; empty means any symbol's backfill settles it.
    symbols: set[str]


class BeliefController:
    """Posture and kill switch (see the module docstring).

    Args:
        journal: the single writer (halts and posture changes are journaled).
        clock: the injected clock.
        beliefs: :class:`BeliefState` from the Reconciler.
        knobs_out: where new knobs go (the Router's knobs inbox, strategies).
        posture: core's posture controller (boots in its configured boot mode).
        kill_switch: core's kill switch.
        config: tick, depth unit, whether a halt cancels resting entries, stream-gap and
            frozen-order handling.
        protection_gap: the ProtectionManager's current gap (seconds), if one runs.
        on_halt: called with the source when an operator or kill-switch halt becomes active
            (and on start while one holds), if ``config.cancel_entries_on_halt``.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        clock: Clock,
        beliefs: trio.MemoryReceiveChannel[BeliefState],
        knobs_out: list[trio.MemorySendChannel[GuardKnobs]],
        posture: PostureController,
        kill_switch: KillSwitch,
        config: BeliefConfig | None = None,
        protection_gap: Callable[[], float] | None = None,
        on_halt: HaltHook | None = None,
    ) -> None:
        self._journal = journal
        self._on_halt = on_halt
        self._protection_gap = protection_gap
        self._pressures: dict[tuple[str, str, str], tuple[float, float, str]] = {}
        self._clock = clock
        self._beliefs = beliefs
        self._knobs_out = knobs_out
        #: The knobs each subscriber last accepted (None: nothing yet).
        self._delivered: list[GuardKnobs | None] = [None] * len(knobs_out)
        self.posture = posture
        self.kill_switch = kill_switch
        self._config = config or BeliefConfig()
        self.last_belief: BeliefState | None = None
        self.last_decision: PostureDecision | None = None
        self.last_debt = BeliefDebt()
        self._unclean_since: float | None = None
        self._gap_since: dict[str, float] = {}
        #: The mismatch streak without operator-owned mismatches (module docstring).
        self.mismatch_streak = 0
        self._unexplained: tuple[Mismatch, ...] = ()
        #: Symbols whose frozen foreign orders the last pass reported.
        self.frozen_order_symbols: tuple[str, ...] = ()
        self.day_equity = DayEquity()
        #: API requests and errors journaled since the last kill-switch evaluation.
        self.pending_api_requests = 0
        self.pending_api_errors = 0
        self._stream_gaps: list[_StreamGap] = []
        #: Since when the journal shows the user stream down (no reconnect gap yet).
        self._stream_down_since: float | None = None
        #: Symbols whose trade backfills this controller has seen journaled.
        self._backfilled_symbols: set[str] = set()

    @property
    def knobs(self) -> GuardKnobs:
        """The current entry limits."""
        return self.posture.knobs

    @property
    def stream_gap_open(self) -> bool:
        """True while a journaled stream gap's fills are not yet backfilled everywhere."""
        return bool(self._stream_gaps)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume beliefs and the journal, and tick, until cancelled."""
        subscription = self._journal.subscribe("belief")
        try:
            now = self._clock.now()
            self._restore_day_equity()
            down_ms = self._journal.state.stream_down_since_ms
            if down_ms is not None and self._stream_down_since is None:
                # An outage journaled before this controller started is still open.
                self._stream_down_since = self._clock.from_wall_ms(down_ms)
            operator = self._journal.state.halts.get("operator")
            if operator is not None:
                # The halt is durable: a restarted controller re-arms it from the journal.
                self.kill_switch.operator_halt(now, operator)
            for source in _SWEPT_SOURCES:
                if source in self._journal.state.halts:
                    # The process (or this actor) may have died between journaling the halt
                    # and cancelling the resting entries: sweep again (cancels are idempotent).
                    await self._halt_activated(source)
            # A (re)started controller owes every subscriber the current knobs.
            self._delivered = [None] * len(self._knobs_out)
            self._deliver()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._tick_loop)
                nursery.start_soon(self._follow_journal, subscription.receive)
                task_status.started()
                async for belief in self._beliefs:
                    self.last_belief = belief
                    await self._update(belief)
        finally:
            subscription.receive.close()

    async def _tick_loop(self) -> None:
        while True:
            await trio.sleep(self._config.tick_s)
            await self._update(None)

    def _deliver(self) -> None:
        """Send the current knobs to every subscriber that has not accepted them yet."""
        knobs = self.posture.knobs
        for i, send in enumerate(self._knobs_out):
            if self._delivered[i] == knobs:
                continue
            try:
                send.send_nowait(knobs)
            except trio.WouldBlock:
                # Behind: the next decision retries with the knobs current by then.
                continue
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                continue
            self._delivered[i] = knobs

    # ----------------------------------------------------------------- journal

    async def _follow_journal(
        self, receive: trio.MemoryReceiveChannel[tuple[JournalEntry, Event]]
    ) -> None:
        async for _entry, event in receive:
            requests, errors = api_counts(event)
            self.pending_api_requests += requests
            self.pending_api_errors += errors
            if isinstance(event, StreamDown):
                if self._stream_down_since is None:
                    self._stream_down_since = event.since
            elif isinstance(event, StreamGapObserved):
                was_down = self._stream_down_since is not None
                self._stream_down_since = None
                if self._open_stream_gap(event) or was_down:
                    await self._update(None)
            elif isinstance(event, BackfillCompleted):
                self._backfilled_symbols.add(event.symbol)
                if self._backfilled(event.symbol):
                    await self._update(None)

    def _open_stream_gap(self, event: StreamGapObserved) -> bool:
        duration = max(0.0, event.ended_at - event.started_at)
        if duration < self._config.stream_gap_grace_s:
            return False
        # The symbols the collector backfills, as this controller has seen them (every
        # symbol is backfilled at start and every routine interval). Not the journal's whole
        # history: a symbol traded once and since dropped would hold the gap open forever.
        symbols = set(self._backfilled_symbols)
        self._stream_gaps.append(_StreamGap(event.reason, duration, symbols))
        return True

    def _backfilled(self, symbol: str) -> bool:
        """Settle ``symbol`` in every open gap; True if a gap closed."""
        still_open = []
        for gap in self._stream_gaps:
            if gap.symbols:
                gap.symbols.discard(symbol)
                if gap.symbols:
                    still_open.append(gap)
            # A gap that owed no particular symbol is settled by any complete backfill.
        closed = len(still_open) < len(self._stream_gaps)
        self._stream_gaps = still_open
        return closed

    # ----------------------------------------------------------------- day equity

    def _restore_day_equity(self) -> None:
        """Take today's journaled :class:`DayStartEquity`, if there is one (module docstring)."""
        today = utc_day(self._clock.wall_ms() / 1000.0)
        if self.day_equity.day is not None and self.day_equity.day >= today:
            return  # this controller (restarted as an actor) already holds today
        record = self._journal.state.day_start  # the latest one journaled
        if record is not None and record.utc_day == today and record.equity > 0:
            self.day_equity.restore(
                record.utc_day, record.equity, max(record.peak_equity, record.equity)
            )

    # ----------------------------------------------------------------- debt

    def _absorb(self, belief: BeliefState) -> None:
        """Take one reconcile pass: the effective streak, unclean age and protection gaps."""
        result = belief.result
        frozen = frozenset(self._journal.state.frozen_symbols)
        owned = tuple(m for m in result.mismatches if _operator_owned(m, frozen))
        unexplained = tuple(m for m in result.mismatches if not _operator_owned(m, frozen))
        if result.clean or (result.snapshot_ok and not unexplained):
            self.mismatch_streak = 0
        elif any(m.significant for m in unexplained):
            self.mismatch_streak += 1
        self._unexplained = unexplained
        self.frozen_order_symbols = tuple(sorted({m.symbol for m in owned}))
        if not unexplained and result.snapshot_ok:
            self._unclean_since = None
        elif self._unclean_since is None:
            self._unclean_since = result.now
        gap_symbols = {m.symbol for m in result.mismatches if m.kind in _PROTECTION_KINDS}
        for symbol in list(self._gap_since):
            if symbol not in gap_symbols and result.snapshot_ok:
                del self._gap_since[symbol]
        for symbol in gap_symbols:
            self._gap_since.setdefault(symbol, result.now)

    def debt(self, now: float) -> BeliefDebt:
        """The belief debt at ``now`` from the last reconcile, the journal and the pressures."""
        state = self._journal.state
        wall_ms = self._clock.wall_ms()
        grace_ms = self._config.in_flight_grace_s * 1000.0
        unknown = [
            o
            for o in state.unresolved_orders()
            if o.ledger_state is not LedgerState.SENDING or wall_ms - o.sent_wall_ms >= grace_ms
        ]
        oldest = max((max(0.0, (wall_ms - o.sent_wall_ms) / 1000.0) for o in unknown), default=0.0)
        depth_unknown = Decimal(0)
        for o in unknown:
            price = state.price_hint(o)
            qty = o.request.quantity
            if price is None or qty is None:
                depth_unknown += self._config.reference_notional
            else:
                depth_unknown += price * qty
        belief = self.last_belief
        mismatched = {m.symbol for m in self._unexplained if m.symbol != ACCOUNT}
        severity = max((m.severity for m in self._unexplained), default=0.0)
        burn = 0.0 if belief is None else belief.evidence.contradiction_burn
        confidence = 1.0 if belief is None else belief.evidence.confidence
        tags: set[str] = set()
        if self._stream_gaps:
            confidence = min(confidence, self._config.stream_gap_confidence)
            tags.add(_STREAM_GAP_TAG)
        down = self._stream_down_since
        if down is not None and now - down >= self._config.stream_gap_grace_s:
            # Blind right now: a fill is learned only over REST until the reconnect.
            confidence = min(confidence, self._config.stream_gap_confidence)
            tags.add(_STREAM_DOWN_TAG)
        age = 0.0 if self._unclean_since is None else max(0.0, now - self._unclean_since)
        gap = max((now - t for t in self._gap_since.values()), default=0.0)
        if self._protection_gap is not None:
            # The ProtectionManager sees a gap from the fill on, before any reconcile does.
            gap = max(gap, self._protection_gap())
        for key, (_, until, _) in list(self._pressures.items()):
            if until <= now:
                del self._pressures[key]
        extra = max((sev for sev, _, _ in self._pressures.values()), default=0.0)
        tags.update(cause for _, _, cause in self._pressures.values())
        if self.frozen_order_symbols:
            extra = max(extra, self._config.frozen_order_pressure)
            tags.add(_FROZEN_ORDER_TAG)
        return BeliefDebt(
            debt_age_s=max(age, oldest),
            breadth=len(mismatched) + len(unknown),
            depth=max(float(depth_unknown / self._config.reference_notional), severity),
            contradiction_burn=burn,
            protection_gap_s=max(0.0, gap),
            mismatch_streak=self.mismatch_streak,
            source_confidence=min(1.0, max(0.0, confidence)),
            unknown_intents=len(unknown),
            oldest_unknown_intent_s=oldest if unknown else 0.0,
            extra_pressure=min(1.0, max(0.0, extra)),
            extra_tags=tuple(sorted(tags)),
        )

    async def _update(self, belief: BeliefState | None) -> None:
        now = self._clock.now()
        if belief is not None:
            self._absorb(belief)
        debt = self.debt(now)
        self.last_debt = debt
        decision = self.posture.update(debt, now)
        self.last_decision = decision
        if decision.changed:
            await self._journal.append(
                PostureChanged(
                    mode=decision.mode.value,
                    previous=decision.previous_mode.value,
                    score=round(decision.score, 6),
                    causes=decision.explanation.cause_tags,
                    unlock=tuple(c.describe() for c in decision.explanation.unlock_conditions),
                    knobs=decision.knobs,
                )
            )
        # Knobs follow the score within a mode too: every subscriber gets them on change
        # (after a mode change is durable, like every decision acted on).
        self._deliver()
        if belief is not None:
            await self._evaluate_kill_switch(belief, decision, now)

    # ----------------------------------------------------------------- kill switch

    async def _evaluate_kill_switch(
        self, belief: BeliefState, decision: PostureDecision, now: float
    ) -> None:
        equity = belief.equity
        book = self.day_equity
        new_day = (
            equity is not None
            and equity.is_finite()
            and book.observe(equity, self._clock.wall_ms() / 1000.0)
        )
        if (
            new_day
            and book.day is not None
            and book.day_start is not None
            and book.peak is not None
        ):
            # The day's base must outlive this process: a restart reads it back.
            date = datetime.date(1970, 1, 1) + datetime.timedelta(days=book.day)
            await self._journal.append(
                DayStartEquity(book.day, date.isoformat(), book.day_start, book.peak)
            )
        if book.equity is None or book.day_start is None or book.peak is None:
            # Without equity the loss triggers cannot be judged; the rest still can.
            equity_in = day_in = peak_in = Decimal(1)
        else:
            equity_in, day_in, peak_in = book.equity, book.day_start, book.peak
        requests, errors = self.pending_api_requests, self.pending_api_errors
        self.pending_api_requests = self.pending_api_errors = 0
        verdict = self.kill_switch.evaluate(
            KillSwitchInputs(
                equity=equity_in if equity_in > ZERO else Decimal(1),
                day_start_equity=day_in if day_in > ZERO else Decimal(1),
                peak_equity=peak_in if peak_in > ZERO else Decimal(1),
                reconcile_mismatch_streak=self.mismatch_streak,
                posture_red=decision.mode is PostureMode.RED,
                api_errors=errors,
                api_requests=requests,
            ),
            now,
        )
        await self._sync_halt(verdict)

    async def _sync_halt(self, verdict: KillSwitchState) -> None:
        automatic = verdict.halted and tuple(
            r for r in verdict.reasons if r is not KillReason.OPERATOR
        )
        journaled = "kill_switch" in self._journal.state.halts
        if automatic and not journaled:
            reasons = ",".join(r.value for r in verdict.reasons)
            await self._journal.append(HaltChanged(True, reasons, "kill_switch"))
            await self._halt_activated("kill_switch")
        elif not automatic and journaled:
            await self._journal.append(HaltChanged(False, "kill_switch_cleared", "kill_switch"))

    # ----------------------------------------------------------------- pressure

    async def raise_pressure(self, event: PressureRaised) -> None:
        """Hold an actor's pressure (already journaled by it) for ``hold_s`` and re-decide now."""
        now = self._clock.now()
        key = (event.source, event.symbol, event.cause)
        previous = self._pressures.get(key)
        severity = event.severity if previous is None else max(previous[0], event.severity)
        self._pressures[key] = (severity, now + event.hold_s, event.cause)
        await self._update(None)

    def active_pressures(self) -> dict[str, float]:
        """The pressures currently held, ``source:symbol:cause`` to severity."""
        now = self._clock.now()
        return {
            ":".join(key): sev
            for key, (sev, until, _) in sorted(self._pressures.items())
            if until > now
        }

    # ----------------------------------------------------------------- operator

    async def halt(self, command: Halt) -> None:
        """Operator halt: entries stop now (resting entries are cancelled); durable."""
        self.kill_switch.operator_halt(self._clock.now(), command.reason)
        await self._journal.append(HaltChanged(True, command.reason, "operator"))
        # Halting again re-sweeps: an entry placed before the first halt whose create was
        # still unresolved then may be cancellable now.
        await self._halt_activated("operator")

    async def _halt_activated(self, source: str) -> None:
        # After the HaltChanged is applied to the journal's state, so the Router refuses
        # every new entry before the sweep reads which entries rest.
        if self._config.cancel_entries_on_halt and self._on_halt is not None:
            await self._on_halt(source)

    def reconcile_blocking(self) -> tuple[str, ...]:
        """``("reconcile_not_clean",)`` unless the last reconcile pass was clean, else ``()``.

        The rule an operator command that lifts a restriction must meet (resume, unfreeze):
        the journal's last pass found no mismatch at all. None having run counts as unclean.
        """
        last = self._journal.state.last_reconcile
        if last is None or not last.clean:
            return ("reconcile_not_clean",)
        return ()

    async def resume(self, command: Resume) -> ResumeResult:
        """Operator resume: only after a clean reconcile and with no automatic trigger."""
        state = self._journal.state
        blocking = self.reconcile_blocking()
        if blocking:
            return ResumeResult(False, blocking)
        decision = self.kill_switch.operator_resume(self._clock.now())
        if not decision.resumed:
            return ResumeResult(False, tuple(r.value for r in decision.blocking))
        for source in ("operator", "kill_switch", "supervisor"):
            if source in state.halts:
                await self._journal.append(HaltChanged(False, command.reason, source))
        return ResumeResult(True, ())
