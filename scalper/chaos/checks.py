"""The invariant checker: the journal and the exchange's ground truth, read step by step.

Theory of operation
-------------------

The system under test sees the exchange only through the Venue protocol, with faults in
between. The checker sees what really happened: the simulated engine's append-only
history (:class:`~scalper.venues.sim.records.SimHistory`: every accepted order, fill,
cancel, trigger and rejection) and the committed journal. It never reads an actor's
memory, so a bug that fools the system cannot fool the checker.

Both sources are read **incrementally**: each :meth:`InvariantChecker.step` folds the
journal entries and engine records that appeared since the previous step, in their own
order, and judges each one as it is folded. A violation is therefore pinned to the exact
record that broke the rule (its engine ``seq`` or journal ``seq``), not to the end of the
run where later, legitimate activity could hide it. The runner steps the checker every
``check_interval_s`` of simulated time and after every scripted action; time-based rules
(I9's gap clock) are judged at those steps.

**Safety checks** (judged continuously, every record):

* ``I7.one_order_per_intent``: at most one accepted risk-increasing exchange order per
  intent id (the engine's acceptances, mapped to intents through the journal).
* ``I5.journal_before_send``: every order the exchange accepted under our prefix was
  journaled (``order_sending``) first, unless the scenario planted it as an orphan.
* ``I7.resolve_before_resend``: no new generation for an intent while an earlier one's
  outcome is unknown (``order_outcome_unknown`` not yet resolved).
* ``E.no_entry_while_halted``: no risk-increasing ``order_sending`` while a halt is on.
* ``E.reduce_only_never_increases``: no fill of a reduce-only or close-position order
  (or of the order a stop triggered) grew |position| at the exchange.
* ``I10.fill_journaled_once``: no exchange trade id is journaled twice.
* ``I2.bounded_generations`` / ``I2.order_rate_cap`` / ``E.open_orders_cap``: the Router's
  generation limit, entry rate cap and open-entry-orders cap, judged on what was sent and
  what rests at the exchange.
* ``I8.cancel_before_create``: a replacement is accepted at the exchange only once the
  replaced intent has no live order there.
* ``I6.monotone_clamps``: a more severe posture never has looser knobs than a milder one.
* ``I1.exit_never_gated``: no exit (the script's, the ProtectionManager's) was refused
  because of posture, halt or the kill switch.
* ``I9.gap_escalates``: filled exposure uncovered by a stop at the exchange for longer
  than the gap TTL (plus the detection allowance) while the posture never left GREEN.
* ``I9.gap_within_ttl``: filled exposure uncovered for longer than the gap TTL (plus the
  detection allowance) although the exchange was healthy and the process up the whole
  time (no fault window, no crash or restart overlapped the gap). Escalating is the
  answer to a venue that refuses stops; with a healthy venue the ProtectionManager must
  simply close the gap.

**Quiescence checks** (:meth:`InvariantChecker.final`, after the fault-free tail):
``I10.every_trade_journaled`` (every exchange fill of ours journaled exactly once),
``I4.position_agrees`` (local = exchange, per symbol), ``E.no_phantom_order`` and
``E.no_orphan_order`` (live orders agree both ways; a planted foreign order must have been
cancelled or its symbol frozen), ``I7.all_resolved`` (no SENDING/UNKNOWN order left),
``I9.covered_at_quiescence`` (an open position has a stop at the exchange covering it),
``I5.replay_rebuilds`` (folding the journal from scratch gives the live state's
fingerprint), and the scenario's posture expectations (``posture.degrades``,
``posture.recovers``, ``posture.kill_switch_trips``).
"""

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from decimal import Decimal

import attrs

from scalper.core.posture import GuardKnobs, PostureMode
from scalper.core.types import ZERO, OrderType, Side
from scalper.messages import (
    Event,
    FillApplied,
    HaltChanged,
    IntentAccepted,
    IntentRejected,
    Lane,
    OrderAcked,
    OrderObserved,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderResolved,
    OrderSending,
    PostureChanged,
    PressureRaised,
    ReplaceAdmitted,
)
from scalper.state import AccountState
from scalper.venues.sim.engine import SimEngine
from scalper.venues.sim.records import (
    AlgoTriggered,
    FillRecorded,
    HistoryRecord,
    OrderAccepted,
    OrderClosed,
)

__all__ = [
    "GATED_REASONS",
    "CheckLimits",
    "InvariantChecker",
    "Violation",
]

_SEVERITY = {PostureMode.GREEN: 0, PostureMode.YELLOW: 1, PostureMode.ORANGE: 2, PostureMode.RED: 3}
_STOP_TYPES = frozenset({OrderType.STOP_MARKET, OrderType.STOP})
#: Refusal reasons that mean "gated by posture, halt or kill switch" (I1 forbids them on exits).
GATED_REASONS = frozenset(
    {
        "halted",
        "posture_blocks_entries",
        "symbol_frozen",
        "confidence_below_posture",
        "notional_above_posture",
        "entry_cooldown",
        "open_orders_posture",
    }
)
#: At most this many violations are kept per check (the first is the one that matters).
_PER_CHECK = 5


@attrs.frozen
class Violation:
    """One broken rule: which check, when (run seconds), what, and the traceable ids."""

    check: str
    at: float
    detail: str
    intent_id: str = ""
    correlation_id: str = ""

    @property
    def invariant(self) -> str:
        """The invariant family (``I7``, ``E``, ``posture``) the check belongs to."""
        return self.check.split(".", 1)[0]

    def describe(self) -> str:
        """One line for the timeline and the exit message."""
        ids = f" [intent {self.intent_id}]" if self.intent_id else ""
        return f"{self.check} at t={self.at:.1f}s: {self.detail}{ids}"


@attrs.frozen
class CheckLimits:
    """The limits the checker judges against (taken from the system's config by the runner).

    Attributes:
        prefix: our client-order-id prefix.
        max_generations: Router generations per intent.
        max_orders_per_window: Router entry-rate cap, per ``rate_window_s``.
        rate_window_s: the rate cap's window.
        max_open_orders_per_symbol: Router cap on live entry orders per symbol.
        gap_ttl_s: the protection gap TTL (I9).
        gap_allowance_s: detection time added to the TTL before an un-escalated gap counts
            (a snapshot interval, a protection tick, a posture persist window).
        calm_gap_allowance_s: time added to the TTL before a gap with a healthy exchange
            and process counts (``I9.gap_within_ttl``): the stop's round trip and the
            stream report of the fill, nothing more.
    """

    prefix: str = "sc"
    max_generations: int = 3
    max_orders_per_window: int = 20
    rate_window_s: float = 10.0
    max_open_orders_per_symbol: int = 10
    gap_ttl_s: float = 10.0
    gap_allowance_s: float = 30.0
    calm_gap_allowance_s: float = 5.0


@attrs.define
class _VenueOrder:
    """The checker's own view of one exchange order, folded from the engine's history."""

    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal | None
    reduces: bool
    algo: bool
    filled: Decimal = ZERO
    open: bool = True


@attrs.define
class _Sent:
    intent_id: str
    correlation_id: str
    risk_increasing: bool
    generation: int
    unresolved: bool = True


class InvariantChecker:
    """Folds the journal and the exchange history and reports violations (module doc)."""

    def __init__(
        self,
        limits: CheckLimits,
        *,
        epoch_ms: int,
        planted: Iterable[str] = (),
    ) -> None:
        self.limits = limits
        self._epoch_ms = epoch_ms
        self.planted = set(planted)
        #: Intent ids the script submitted as exits (the runner adds them as it submits).
        self.exits: set[str] = set()
        #: ``(start, end)`` windows when the exchange or the process was not healthy (fault
        #: windows, crashes and restarts): gaps overlapping them are judged by escalation
        #: only. The runner adds them (:meth:`disturbed`).
        self.disturbances: list[tuple[float, float]] = []
        self._gap_reported: dict[str, float] = {}
        self.violations: list[Violation] = []
        self._per_check: Counter[str] = Counter()
        # journal side
        self.journal_seq = 0
        self._sent: dict[str, _Sent] = {}
        self._last_coid: dict[str, str] = {}
        self._lanes: dict[str, Lane] = {}
        self._fill_keys: Counter[tuple[str, str]] = Counter()
        self._halts: dict[str, str] = {}
        self._entry_sends: deque[float] = deque()
        self._replaced_by: dict[str, str] = {}
        self._knobs: dict[PostureMode, GuardKnobs] = {}
        self.posture_trace: list[tuple[float, str, tuple[str, ...]]] = []
        self.halt_trace: list[tuple[float, bool, str, str]] = []
        self._escalations: list[float] = []
        # venue side
        self.venue_seq = 0
        self._orders: dict[str, _VenueOrder] = {}
        self._by_coid: dict[str, list[_VenueOrder]] = {}
        self._position: dict[str, Decimal] = {}
        self._accepted_entries: Counter[str] = Counter()
        self._gap_since: dict[str, float] = {}

    # ----------------------------------------------------------------- reporting

    def _violate(
        self, check: str, at: float, detail: str, intent: str = "", corr: str = ""
    ) -> None:
        self._per_check[check] += 1
        if self._per_check[check] <= _PER_CHECK:
            self.violations.append(Violation(check, at, detail, intent, corr))

    def _t(self, wall_ms: int) -> float:
        return (wall_ms - self._epoch_ms) / 1000.0

    # ----------------------------------------------------------------- stepping

    def step(
        self,
        journal: Sequence[tuple[int, int, Event]],
        history: Sequence[HistoryRecord],
        now: float,
    ) -> list[Violation]:
        """Fold new journal entries ``(seq, wall_ms, event)`` and engine records; judge.

        Journal entries are folded first: an order is journaled before it is sent, so the
        exchange's acceptance of it must find its ``order_sending`` already known.

        Returns:
            The violations found in this step (also appended to :attr:`violations`).
        """
        before = len(self.violations)
        for seq, wall_ms, event in journal:
            if seq <= self.journal_seq:
                continue
            self.journal_seq = seq
            self._journal(event, self._t(wall_ms))
        for record in history:
            if record.seq <= self.venue_seq:
                continue
            self.venue_seq = record.seq
            self._venue(record)
        self._gaps(now)
        return self.violations[before:]

    # ----------------------------------------------------------------- journal rules

    def _journal(self, event: Event, t: float) -> None:
        match event:
            case IntentAccepted():
                self._lanes[event.intent_id] = event.lane
            case IntentRejected():
                if event.reason in GATED_REASONS and self._is_exit(event.intent_id):
                    self._violate(
                        "I1.exit_never_gated",
                        t,
                        f"exit refused: {event.reason}",
                        event.intent_id,
                        event.correlation_id,
                    )
            case OrderSending():
                self._sending(event, t)
            case OrderOutcomeUnknown():
                sent = self._sent.get(event.client_order_id)
                if sent is not None:
                    sent.unresolved = True
            case OrderAcked() | OrderRejected() | OrderResolved() | OrderObserved():
                sent = self._sent.get(event.client_order_id)
                if sent is not None:
                    sent.unresolved = False
            case FillApplied():
                key = event.fill.key
                self._fill_keys[key] += 1
                if self._fill_keys[key] > 1:
                    self._violate(
                        "I10.fill_journaled_once",
                        t,
                        f"trade {key[1]} on {key[0]} journaled {self._fill_keys[key]} times",
                        event.intent_id,
                        event.correlation_id,
                    )
            case HaltChanged():
                if event.halted:
                    self._halts[event.source] = event.reason
                else:
                    self._halts.pop(event.source, None)
                self.halt_trace.append((t, event.halted, event.source, event.reason))
            case PostureChanged():
                self._posture(event, t)
            case PressureRaised():
                self._escalations.append(t)
            case ReplaceAdmitted():
                if event.decision != "give_up":
                    self._replaced_by[event.new_intent_id] = event.intent_id
            case _:
                pass

    def _is_exit(self, intent_id: str) -> bool:
        # The ProtectionManager's intents are exits by construction (``pm-...``).
        return (
            self._lanes.get(intent_id) is Lane.EXIT
            or intent_id in self.exits
            or intent_id.startswith("pm-")
        )

    def _sending(self, event: OrderSending, t: float) -> None:
        intent, corr = event.intent_id, event.correlation_id
        previous = self._last_coid.get(intent)
        if previous is not None and previous != event.client_order_id:
            earlier = self._sent.get(previous)
            if earlier is not None and earlier.unresolved:
                self._violate(
                    "I7.resolve_before_resend",
                    t,
                    f"generation {event.generation} ({event.client_order_id}) sent while "
                    f"{previous} was still unresolved",
                    intent,
                    corr,
                )
        if event.generation >= self.limits.max_generations:
            self._violate(
                "I2.bounded_generations",
                t,
                f"generation {event.generation} >= max_generations {self.limits.max_generations}",
                intent,
                corr,
            )
        self._last_coid[intent] = event.client_order_id
        self._sent[event.client_order_id] = _Sent(
            intent, corr, event.risk_increasing, event.generation
        )
        if not event.risk_increasing:
            return
        if self._halts:
            self._violate(
                "E.no_entry_while_halted",
                t,
                f"risk-increasing {event.client_order_id} sent while halted by "
                f"{sorted(self._halts)}",
                intent,
                corr,
            )
        window = self._entry_sends
        window.append(t)
        while window and window[0] <= t - self.limits.rate_window_s:
            window.popleft()
        if len(window) > self.limits.max_orders_per_window:
            self._violate(
                "I2.order_rate_cap",
                t,
                f"{len(window)} entry orders within {self.limits.rate_window_s}s "
                f"(cap {self.limits.max_orders_per_window})",
                intent,
                corr,
            )

    def _posture(self, event: PostureChanged, t: float) -> None:
        self.posture_trace.append((t, event.mode, event.causes))
        try:
            mode = PostureMode(event.mode)
        except ValueError:
            self._violate("I6.monotone_clamps", t, f"unknown posture mode {event.mode!r}")
            return
        knobs = event.knobs
        self._knobs[mode] = knobs
        for other in list(self._knobs):
            if _SEVERITY[other] == _SEVERITY[mode]:
                continue
            # Whichever was journaled first, the severer mode must be at least as tight.
            severe, mild = (mode, other) if _SEVERITY[mode] > _SEVERITY[other] else (other, mode)
            looser = _looser(self._knobs[severe], self._knobs[mild])
            if looser:
                self._violate(
                    "I6.monotone_clamps",
                    t,
                    f"{severe.value} is looser than {mild.value} on {', '.join(looser)}",
                )

    # ----------------------------------------------------------------- venue rules

    def _venue(self, record: HistoryRecord) -> None:
        match record:
            case OrderAccepted():
                self._accepted(record)
            case FillRecorded():
                self._filled(record)
            case OrderClosed():
                order = self._orders.get(record.order_id)
                if order is not None:
                    order.open = False
            case AlgoTriggered():
                algo = self._orders.get(record.algo_id)
                if algo is not None:
                    algo.open = False
            case _:
                pass

    def _accepted(self, record: OrderAccepted) -> None:
        req = record.request
        parent = self._orders.get(record.parent_algo_id or "")
        reduces = req.reduce_only or req.close_position or (parent is not None and parent.reduces)
        order = _VenueOrder(
            order_id=record.order_id,
            client_order_id=record.client_order_id,
            symbol=req.symbol,
            side=req.side,
            order_type=req.order_type,
            quantity=req.quantity,
            reduces=reduces,
            algo=record.algo,
        )
        self._orders[record.order_id] = order
        self._by_coid.setdefault(record.client_order_id, []).append(order)
        coid = record.client_order_id
        if record.parent_algo_id is not None:
            return  # a stop's triggered child: the stop was judged when it was accepted
        ours = coid.startswith(f"{self.limits.prefix}-")
        sent = self._sent.get(coid)
        if sent is None:
            if ours and coid not in self.planted:
                self._violate(
                    "I5.journal_before_send",
                    record.ts,
                    f"the exchange accepted {coid} but the journal never recorded sending it",
                )
            return
        if not sent.risk_increasing:
            return
        self._accepted_entries[sent.intent_id] += 1
        if self._accepted_entries[sent.intent_id] > 1:
            self._violate(
                "I7.one_order_per_intent",
                record.ts,
                f"{self._accepted_entries[sent.intent_id]} risk-increasing orders accepted "
                f"for one intent (latest {coid})",
                sent.intent_id,
                sent.correlation_id,
            )
        replaced = self._replaced_by.get(sent.intent_id)
        if replaced is not None:
            live = [o.client_order_id for o in self._live_of_intent(replaced)]
            if live:
                self._violate(
                    "I8.cancel_before_create",
                    record.ts,
                    f"replacement {coid} accepted while the replaced order {live} is live",
                    sent.intent_id,
                    sent.correlation_id,
                )
        resting = sum(
            1
            for o in self._orders.values()
            if o.open and o.symbol == req.symbol and not o.reduces and not o.algo
        )
        if resting > self.limits.max_open_orders_per_symbol:
            self._violate(
                "E.open_orders_cap",
                record.ts,
                f"{resting} entry orders rest on {req.symbol} "
                f"(cap {self.limits.max_open_orders_per_symbol})",
                sent.intent_id,
                sent.correlation_id,
            )

    def _live_of_intent(self, intent_id: str) -> list[_VenueOrder]:
        live: list[_VenueOrder] = []
        for coid, sent in self._sent.items():
            if sent.intent_id != intent_id:
                continue
            live.extend(o for o in self._by_coid.get(coid, []) if o.open)
        return live

    def _filled(self, record: FillRecorded) -> None:
        fill = record.fill
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        before = self._position.get(fill.symbol, ZERO)
        after = before + signed
        self._position[fill.symbol] = after
        order = self._orders.get(fill.order_id)
        if order is None:
            return
        order.filled += fill.quantity
        if order.quantity is not None and order.filled >= order.quantity:
            order.open = False
        if order.reduces and abs(after) > abs(before):
            sent = self._sent.get(order.client_order_id)
            self._violate(
                "E.reduce_only_never_increases",
                record.ts,
                f"reduce-only {order.client_order_id} moved {fill.symbol} from {before} to {after}",
                "" if sent is None else sent.intent_id,
                "" if sent is None else sent.correlation_id,
            )

    # ----------------------------------------------------------------- I9

    def coverage_gap(self, symbol: str) -> Decimal:
        """How much of the exchange position on ``symbol`` no live stop there covers."""
        position = self._position.get(symbol, ZERO)
        if position == 0:
            return ZERO
        closing = Side.SELL if position > 0 else Side.BUY
        covered = ZERO
        for order in self._orders.values():
            if not (order.open and order.algo and order.symbol == symbol):
                continue
            if order.side is not closing or order.order_type not in _STOP_TYPES:
                continue
            if not order.reduces:
                continue
            if order.quantity is None:  # close-position: covers whatever is open
                return ZERO
            covered += order.quantity
        return max(ZERO, abs(position) - covered)

    def disturbed(self, start: float, end: float) -> None:
        """Record that the exchange or the process was unhealthy over ``[start, end]``."""
        self.disturbances.append((start, end))

    def _calm(self, start: float, end: float) -> bool:
        return not any(s <= end and start <= e for s, e in self.disturbances)

    def _gaps(self, now: float) -> None:
        allowed = self.limits.gap_ttl_s + self.limits.gap_allowance_s
        for symbol in sorted(self._position):
            if self.coverage_gap(symbol) == 0:
                self._gap_since.pop(symbol, None)
                self._gap_reported.pop(symbol, None)
                continue
            since = self._gap_since.setdefault(symbol, now)
            opened = self._gap_reported.setdefault(symbol, since)
            calm_allowed = self.limits.gap_ttl_s + self.limits.calm_gap_allowance_s
            if now - opened > calm_allowed and self._calm(opened, now):
                self._violate(
                    "I9.gap_within_ttl",
                    now,
                    f"{symbol} position {self._position[symbol]} uncovered for "
                    f"{now - opened:.0f}s with a healthy exchange and process",
                )
                self._gap_reported[symbol] = now  # report again only after another window
            if now - since <= allowed or self._escalated_since(since):
                continue
            self._violate(
                "I9.gap_escalates",
                now,
                f"{symbol} position {self._position[symbol]} uncovered for {now - since:.0f}s "
                f"and the posture never escalated",
            )
            self._gap_since[symbol] = now  # report again only after another full window

    def _escalated_since(self, since: float) -> bool:
        if any(t >= since for t in self._escalations):
            return True
        mode_at_since = PostureMode.ORANGE  # boots ORANGE
        for t, mode, _causes in self.posture_trace:
            if t <= since:
                mode_at_since = PostureMode(mode)
            elif mode != PostureMode.GREEN.value:
                return True
        return mode_at_since is not PostureMode.GREEN

    # ----------------------------------------------------------------- quiescence

    def final(
        self,
        state: AccountState,
        replayed_fingerprint: str,
        engine: SimEngine,
        symbols: Sequence[str],
        now: float,
    ) -> list[Violation]:
        """The quiescence checks (module docstring), after the fault-free tail."""
        before = len(self.violations)
        self._final_fills(engine, now)
        for symbol in symbols:
            local, venue = state.position(symbol), engine.position_qty(symbol)
            if local != venue:
                self._violate(
                    "I4.position_agrees", now, f"{symbol}: local {local}, exchange {venue}"
                )
            gap = self.coverage_gap(symbol)
            if gap > 0:
                self._violate(
                    "I9.covered_at_quiescence",
                    now,
                    f"{symbol}: {gap} of position {venue} has no stop at the exchange",
                )
        self._final_orders(state, engine, symbols, now)
        for order in state.unresolved_orders():
            self._violate(
                "I7.all_resolved",
                now,
                f"{order.client_order_id} still {order.ledger_state.value} at quiescence",
                order.intent_id,
                order.correlation_id,
            )
        if replayed_fingerprint != state.fingerprint():
            self._violate("I5.replay_rebuilds", now, "replaying the journal gave a different state")
        return self.violations[before:]

    def _final_fills(self, engine: SimEngine, now: float) -> None:
        foreign = {
            o.order_id
            for coid in self.planted
            if not coid.startswith(f"{self.limits.prefix}-")
            for o in self._by_coid.get(coid, [])
        }
        for fill in engine.history.fills():
            if fill.order_id in foreign:
                continue
            count = self._fill_keys.get(fill.key, 0)
            if count != 1:
                sent = self._sent.get(fill.client_order_id)
                self._violate(
                    "I10.every_trade_journaled",
                    now,
                    f"trade {fill.trade_id} ({fill.client_order_id}) journaled {count} times",
                    "" if sent is None else sent.intent_id,
                    "" if sent is None else sent.correlation_id,
                )

    def _final_orders(
        self, state: AccountState, engine: SimEngine, symbols: Sequence[str], now: float
    ) -> None:
        venue_open: dict[str, str] = {}
        for symbol in symbols:
            for venue_order in engine.open_orders(symbol):
                venue_open[venue_order.client_order_id] = symbol
        local_live = {o.client_order_id: o for o in state.live_orders()}
        for coid, order in sorted(local_live.items()):
            if coid not in venue_open:
                self._violate(
                    "E.no_phantom_order",
                    now,
                    f"the ledger believes {coid} is live; the exchange has no such open order",
                    order.intent_id,
                    order.correlation_id,
                )
        for coid, symbol in sorted(venue_open.items()):
            if coid in local_live:
                continue
            if not coid.startswith(f"{self.limits.prefix}-") and symbol in state.frozen_symbols:
                continue  # a foreign order on a frozen symbol: left to the operator
            self._violate(
                "E.no_orphan_order",
                now,
                f"{coid} rests at the exchange and the ledger does not track it",
            )


def _looser(tight: GuardKnobs, mild: GuardKnobs) -> list[str]:
    """The knobs on which ``tight`` (the more severe mode) is looser than ``mild``."""
    looser = []
    if tight.allow_entries and not mild.allow_entries:
        looser.append("allow_entries")
    if tight.max_notional > mild.max_notional:
        looser.append("max_notional")
    if tight.max_leverage > mild.max_leverage:
        looser.append("max_leverage")
    if tight.min_entry_conf < mild.min_entry_conf:
        looser.append("min_entry_conf")
    if tight.entry_cooldown_s < mild.entry_cooldown_s:
        looser.append("entry_cooldown_s")
    if tight.max_open_orders_per_symbol > mild.max_open_orders_per_symbol:
        looser.append("max_open_orders_per_symbol")
    return looser
